/*
 * test/unit/test_crc32c.c - CRC32C: the standard vectors (the "123456789"
 * check value and RFC 3720 appendix B.4), continuation across split
 * buffers, and the SSE4.2 path equal to the table path on random buffers
 * of random lengths and alignments.
 *
 * Threads: main only.  Parses no input.  Ownership: static buffers.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"
#include "spool/spool_int.h"

static const uint8_t rfc3720_read_pdu[48] = {
	0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
	0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

enum fill {
	FILL_BYTES, /* the given bytes */
	FILL_ZERO,  /* 32 x 0x00 */
	FILL_ONES,  /* 32 x 0xff */
	FILL_UP,    /* 0x00 .. 0x1f */
	FILL_DOWN,  /* 0x1f .. 0x00 */
};

static const struct {
	const char *name;
	enum fill fill;
	const void *bytes;
	size_t len;
	uint32_t crc;
} vectors[] = {
	{ "check value", FILL_BYTES, "123456789", 9, 0xe3069283u },
	{ "empty", FILL_BYTES, "", 0, 0x00000000u },
	{ "B.4 32 zeros", FILL_ZERO, NULL, 32, 0x8a9136aau },
	{ "B.4 32 ones", FILL_ONES, NULL, 32, 0x62a8ab43u },
	{ "B.4 incrementing", FILL_UP, NULL, 32, 0x46dd794eu },
	{ "B.4 decrementing", FILL_DOWN, NULL, 32, 0x113fdb5cu },
	{ "B.4 iSCSI read PDU", FILL_BYTES, rfc3720_read_pdu, 48, 0xd9963a56u },
};

static void
fill(uint8_t *buf, size_t i)
{
	for (size_t k = 0; k < vectors[i].len; k++) {
		switch (vectors[i].fill) {
		case FILL_BYTES:
			buf[k] = ((const uint8_t *)vectors[i].bytes)[k];
			break;
		case FILL_ZERO:
			buf[k] = 0;
			break;
		case FILL_ONES:
			buf[k] = 0xff;
			break;
		case FILL_UP:
			buf[k] = (uint8_t)k;
			break;
		case FILL_DOWN:
			buf[k] = (uint8_t)(31 - k);
			break;
		}
	}
}

static void
test_vectors(void **state)
{
	uint8_t buf[64 + 8];

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		/* at every misalignment, through every implementation */
		for (size_t shift = 0; shift < 8; shift++) {
			fill(buf + shift, i);
			assert_int_equal(sl_crc32c(0, buf + shift, vectors[i].len), vectors[i].crc);
			assert_int_equal(sl_spool__crc32c_sw(0, buf + shift, vectors[i].len),
					 vectors[i].crc);
			if (sl_spool__crc32c_has_hw())
				assert_int_equal(
					sl_spool__crc32c_hw(0, buf + shift, vectors[i].len),
					vectors[i].crc);
		}
	}
}

static void
test_continuation(void **state)
{
	static uint8_t buf[4096];
	uint32_t whole;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	whole = sl_crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= 64; cut++) {
		uint32_t c = sl_crc32c(0, buf, cut);

		assert_int_equal(sl_crc32c(c, buf + cut, sizeof(buf) - cut), whole);
	}
	assert_int_equal(sl_crc32c(sl_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void
test_hw_equals_sw(void **state)
{
	static uint8_t buf[70000];
	unsigned seed = 12345;

	if (!sl_spool__crc32c_has_hw())
		skip();
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand_r(&seed);
	for (int round = 0; round < 2000; round++) {
		size_t off = (size_t)rand_r(&seed) % 64;
		size_t len = (size_t)rand_r(&seed) % (round < 1000 ? 100 : sizeof(buf) - 64);
		uint32_t init = (uint32_t)rand_r(&seed);

		assert_int_equal(sl_spool__crc32c_hw(init, buf + off, len),
				 sl_spool__crc32c_sw(init, buf + off, len));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_hw_equals_sw),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
