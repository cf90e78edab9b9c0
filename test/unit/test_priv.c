/*
 * test/unit/test_priv.c - the Security block's parsing: users, groups,
 * capability text, and the checks that need no root.
 *
 * The lookups use the passwd and group databases of the machine: root
 * (uid 0, group root) exists everywhere; names that cannot exist are used
 * for the unknown cases.  sl_priv_drop() itself is exercised as root by
 * test/integration/c0008-security.py; here only its "nothing to do" case.
 *
 * Threads: main only.  Parses the test's literals.  Ownership: each test
 * clears the struct sl_priv it filled.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "engine/priv.h"

static void
test_user(void **state)
{
	struct sl_priv p = { 0 };
	char why[256];

	assert_int_equal(sl_priv_user_parse(&p, "root", why, sizeof(why)), 0);
	assert_true(p.has_user && p.has_user_gid);
	assert_int_equal(p.uid, 0);
	assert_int_equal(sl_priv_uid(&p), 0);
	assert_int_equal(sl_priv_gid(&p), 0); /* root's primary group */
	assert_string_equal(p.user_name, "root");
	assert_int_equal(sl_priv_check(&p, why, sizeof(why)), 0);
	sl_priv_clear(&p);

	assert_int_equal(sl_priv_user_parse(&p, "0", why, sizeof(why)), 0);
	assert_string_equal(p.user_name, "root"); /* a number finds its entry */
	sl_priv_clear(&p);

	assert_int_equal(sl_priv_user_parse(&p, "no-such-user-sluice", why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "unknown user 'no-such-user-sluice'"));
	assert_false(sl_priv_is_set(&p));
	assert_int_equal(sl_priv_user_parse(&p, "", why, sizeof(why)), -EINVAL);
	assert_int_equal(sl_priv_user_parse(&p, "12x", why, sizeof(why)), -ENOENT);

	/* A number without an entry is taken, but has no group of its own. */
	assert_int_equal(sl_priv_user_parse(&p, "3999999999", why, sizeof(why)), 0);
	assert_true(p.has_user && !p.has_user_gid);
	assert_null(p.user_name);
	assert_int_equal(sl_priv_gid(&p), (gid_t)-1);
	assert_int_equal(sl_priv_check(&p, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "set group as well"));
	assert_int_equal(sl_priv_group_parse(&p, "4000", why, sizeof(why)), 0);
	assert_int_equal(sl_priv_check(&p, why, sizeof(why)), 0);
	assert_int_equal(sl_priv_gid(&p), 4000);
	sl_priv_clear(&p);
}

static void
test_group(void **state)
{
	struct sl_priv p = { 0 };
	char why[256];

	assert_int_equal(sl_priv_group_parse(&p, "root", why, sizeof(why)), 0);
	assert_true(p.has_group);
	assert_int_equal(sl_priv_gid(&p), 0);
	assert_int_equal(sl_priv_uid(&p), (uid_t)-1);
	assert_true(sl_priv_is_set(&p));
	sl_priv_clear(&p);

	assert_int_equal(sl_priv_group_parse(&p, "no-such-group-sluice", why, sizeof(why)),
			 -ENOENT);
	assert_non_null(strstr(why, "unknown group"));
	assert_int_equal(sl_priv_group_parse(&p, "", why, sizeof(why)), -EINVAL);

	/* `group` wins over the user's primary group, whichever came first. */
	assert_int_equal(sl_priv_group_parse(&p, "4001", why, sizeof(why)), 0);
	assert_int_equal(sl_priv_user_parse(&p, "root", why, sizeof(why)), 0);
	assert_int_equal(sl_priv_gid(&p), 4001);
	sl_priv_clear(&p);
}

static void
test_caps(void **state)
{
	static const char *const good[] = { "cap_net_bind_service+ep",
					    "cap_net_admin+ep cap_net_bind_service+ep "
					    "cap_net_raw+ep cap_sys_resource+ep",
					    "cap_net_bind_service,cap_net_raw=ep", "=" };
	static const char *const bad[] = { "linux capability set", "cap_no_such_cap+ep",
					   "cap_net_bind_service+q" };
	struct sl_priv p = { 0 };
	char why[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(sl_priv_caps_parse(&p, good[i], why, sizeof(why)), 0);
		assert_string_equal(p.caps, good[i]);
		assert_true(sl_priv_is_set(&p));
	}
	sl_priv_clear(&p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sl_priv_caps_parse(&p, bad[i], why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "cap_from_text"));
		assert_null(p.caps);
	}
}

static void
test_drop_nothing(void **state)
{
	struct sl_priv p = { 0 };
	char why[64];

	/* Nothing asked: nothing done, whoever runs the test. */
	assert_int_equal(sl_priv_drop(&p, why, sizeof(why)), 1);
	if (geteuid() != 0) {
		/* Not root: the block is not applied (1), never half applied. */
		assert_int_equal(sl_priv_user_parse(&p, "root", why, sizeof(why)), 0);
		assert_int_equal(sl_priv_drop(&p, why, sizeof(why)), 1);
		sl_priv_clear(&p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_group),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_drop_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
