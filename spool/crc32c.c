/*
 * spool/crc32c.c - CRC32C (Castagnoli, reflected polynomial 0x82F63B78),
 * the checksum of every spool record.
 *
 * On x86-64 CPUs with SSE4.2 the crc32 instruction does 8 bytes at a time;
 * elsewhere a slicing-by-8 table does.  Both give the standard results
 * (crc32c("123456789") = 0xE3069283, RFC 3720 B.4); the choice is made once,
 * on first use.  The running value is kept pre- and post-inverted so that
 * sl_crc32c(sl_crc32c(0, a), b) equals the CRC of a followed by b.
 *
 * Threads: any (the one-time set-up is under pthread_once).  Parses
 * nothing; reads `len` bytes of the caller's buffer.  Owns only its tables.
 */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "spool/spool.h"
#include "spool/spool_int.h"

#define CRC32C_POLY 0x82f63b78u

static uint32_t crc_table[8][256];
static bool crc_is_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_is_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t
sl_spool__crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		/* the little-endian value of the next 8 bytes, on any host */
		uint64_t v = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
			     (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
			     (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
		v ^= crc;
		crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
		      crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
		      crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
		      crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t
sl_spool__crc32c_hw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t c = ~crc;

	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#else
uint32_t
sl_spool__crc32c_hw(uint32_t crc, const void *data, size_t len)
{
	return sl_spool__crc32c_sw(crc, data, len);
}
#endif

bool
sl_spool__crc32c_has_hw(void)
{
	pthread_once(&crc_once, crc_init);
	return crc_is_hw;
}

uint32_t
sl_crc32c(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return crc_is_hw ? sl_spool__crc32c_hw(crc, data, len)
			 : sl_spool__crc32c_sw(crc, data, len);
}
