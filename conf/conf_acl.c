/*
 * conf/conf_acl.c - CIDR parsing and matching (see conf_acl.h).
 * Threads: any (pure).  Parses configuration text with inet_pton.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_acl.h"

#define CIDR_TEXT_MAX 64

static void
cidr_mask(uint8_t *addr, unsigned bytes, unsigned bits)
{
	for (unsigned i = 0; i < bytes; i++) {
		unsigned keep = bits >= 8 ? 8 : bits;

		addr[i] &= (uint8_t)(0xffu << (8 - keep));
		bits -= keep;
	}
}

int
sl_cidr_parse(const char *text, struct sl_cidr *out, char *why, size_t why_len)
{
	char buf[CIDR_TEXT_MAX + 1];
	const char *slash;
	size_t alen;
	unsigned max_bits;
	unsigned long bits;

	memset(out, 0, sizeof(*out));
	if (strlen(text) > CIDR_TEXT_MAX) {
		snprintf(why, why_len, "'%.20s...' is too long for an address", text);
		return -1;
	}
	slash = strchr(text, '/');
	alen = slash ? (size_t)(slash - text) : strlen(text);
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max_bits = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max_bits = 128;
	} else {
		snprintf(why, why_len, "'%s' is not an IPv4 or IPv6 address", buf);
		return -1;
	}
	bits = max_bits;
	if (slash != NULL) {
		char *end;

		errno = 0;
		bits = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 ||
		    bits > max_bits) {
			snprintf(why, why_len, "prefix length '%s' out of range 0..%u", slash + 1,
				 max_bits);
			return -1;
		}
	}
	out->bits = (uint8_t)bits;
	cidr_mask(out->addr, max_bits / 8, out->bits);
	return 0;
}

static bool
cidr_prefix_eq(const uint8_t *net, const uint8_t *addr, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(net, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((net[full] ^ addr[full]) & (uint8_t)(0xffu << (8 - rest))) == 0;
}

bool
sl_cidr_match(const struct sl_cidr *c, const struct sockaddr *sa)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const uint8_t *addr;

	if (sa->sa_family == AF_INET) {
		addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		return c->family == AF_INET && cidr_prefix_eq(c->addr, addr, c->bits);
	}
	if (sa->sa_family != AF_INET6)
		return false;
	addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (c->family == AF_INET6)
		return cidr_prefix_eq(c->addr, addr, c->bits);
	/* An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d. */
	return memcmp(addr, v4mapped, sizeof(v4mapped)) == 0 &&
	       cidr_prefix_eq(c->addr, addr + 12, c->bits);
}

void
sl_cidr_format(const struct sl_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, c->bits);
}
