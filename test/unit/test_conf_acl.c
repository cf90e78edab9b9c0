/*
 * test/unit/test_conf_acl.c - CIDR parsing and matching (conf/conf_acl.c).
 * Table-driven: each row is an input and the exact expected outcome.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf/conf_acl.h"

struct parse_case {
	const char *text;
	int rc;
	const char *formatted; /* expected sl_cidr_format, or the reason substring on error */
};

static const struct parse_case parse_cases[] = {
	{ "1.2.3.4/32", 0, "1.2.3.4/32" },
	{ "192.168.0.0/16", 0, "192.168.0.0/16" },
	{ "0.0.0.0/0", 0, "0.0.0.0/0" },
	{ "10.1.2.3/8", 0, "10.0.0.0/8" }, /* host bits cleared */
	{ "10.1.2.3", 0, "10.1.2.3/32" },  /* bare address: host route */
	{ "172.16.255.1/12", 0, "172.16.0.0/12" },
	{ "::1/128", 0, "::1/128" },
	{ "::1/0", 0, "::/0" }, /* the reference's commented example */
	{ "2001:db8::/32", 0, "2001:db8::/32" },
	{ "2001:db8:ffff::1/33", 0, "2001:db8:8000::/33" },
	{ "1.2.3.4/33", -1, "out of range 0..32" },
	{ "::1/129", -1, "out of range 0..128" },
	{ "1.2.3.4/", -1, "out of range" },
	{ "1.2.3.4/-1", -1, "out of range" },
	{ "1.2.3.4/8x", -1, "out of range" },
	{ "1.2.3/8", -1, "not an IPv4 or IPv6 address" },
	{ "example.com/8", -1, "not an IPv4 or IPv6 address" },
	{ "", -1, "not an IPv4 or IPv6 address" },
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee/1", -1,
	  "too long" },
};

static void
test_parse_table(void **state)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct sl_cidr cidr;
		char why[160] = "", buf[64];
		int rc = sl_cidr_parse(c->text, &cidr, why, sizeof(why));

		print_message("case %zu: %s\n", i, c->text);
		assert_int_equal(rc, c->rc);
		if (rc == 0) {
			sl_cidr_format(&cidr, buf, sizeof(buf));
			assert_string_equal(buf, c->formatted);
		} else {
			assert_non_null(strstr(why, c->formatted));
		}
	}
}

static void
sa4(struct sockaddr_in *sin, const char *ip)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
}

static void
sa6(struct sockaddr_in6 *sin6, const char *ip)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
}

struct match_case {
	const char *cidr;
	const char *peer;
	bool is_match;
};

static const struct match_case match_cases[] = {
	{ "1.2.3.4/32", "1.2.3.4", true },
	{ "1.2.3.4/32", "1.2.3.5", false },
	{ "192.168.0.0/16", "192.168.200.1", true },
	{ "192.168.0.0/16", "192.169.0.1", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "10.0.0.0/7", "11.255.255.255", true }, /* partial byte */
	{ "10.0.0.0/7", "12.0.0.0", false },
	{ "0.0.0.0/0", "::1", false }, /* IPv4 block, IPv6 peer */
	{ "::/0", "10.0.0.1", false }, /* IPv6 block, IPv4 peer */
	{ "::1/128", "::1", true },
	{ "2001:db8::/32", "2001:db8:1:2::3", true },
	{ "2001:db8::/32", "2001:db9::1", false },
	{ "2001:db8:8000::/33", "2001:db8:7fff::1", false },
	{ "10.0.0.0/8", "::ffff:10.9.8.7", true }, /* IPv4 peer on a dual-stack socket */
	{ "10.0.0.0/8", "::ffff:11.9.8.7", false },
	{ "10.0.0.0/8", "::10.9.8.7", false }, /* compatible, not mapped */
};

static void
test_match_table(void **state)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		struct sl_cidr cidr;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
		const struct sockaddr *sa;
		char why[160];

		print_message("case %zu: %s in %s\n", i, c->peer, c->cidr);
		assert_int_equal(sl_cidr_parse(c->cidr, &cidr, why, sizeof(why)), 0);
		if (strchr(c->peer, ':') != NULL) {
			sa6(&sin6, c->peer);
			sa = (const struct sockaddr *)&sin6;
		} else {
			sa4(&sin, c->peer);
			sa = (const struct sockaddr *)&sin;
		}
		assert_int_equal(sl_cidr_match(&cidr, sa), c->is_match);
	}
}

static void
test_match_other_family(void **state)
{
	struct sl_cidr cidr;
	struct sockaddr sa = { .sa_family = AF_UNIX };
	char why[160];

	assert_int_equal(sl_cidr_parse("0.0.0.0/0", &cidr, why, sizeof(why)), 0);
	assert_false(sl_cidr_match(&cidr, &sa));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_other_family),
	};

	return cmocka_run_group_tests_name("conf_acl", tests, NULL, NULL);
}
