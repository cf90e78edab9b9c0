/*
 * test/unit/test_throttle.c - shared token buckets (engine/throttle.c).
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/throttle.h"

/* 10 per second: a full bucket of 10, then one token every 100 ms. */
static void
test_rate(void **state)
{
	static const int key;
	uint64_t now = 1000;

	for (int i = 0; i < 10; i++)
		assert_int_equal(sl_throttle_take(&key, 1, 10, 1, now), 0);
	uint64_t wait = sl_throttle_take(&key, 1, 10, 1, now);

	assert_true(wait >= 100 && wait <= 101);
	/* A refusal takes nothing: the same wait 50 ms later is half as long. */
	wait = sl_throttle_take(&key, 1, 10, 1, now + 50);
	assert_true(wait >= 50 && wait <= 51);
	assert_int_equal(sl_throttle_take(&key, 1, 10, 1, now + 100), 0);
	assert_true(sl_throttle_take(&key, 1, 10, 1, now + 100) > 0);
	/* A long pause refills to the burst size, never beyond it. */
	now += 60000;
	for (int i = 0; i < 10; i++)
		assert_int_equal(sl_throttle_take(&key, 1, 10, 1, now), 0);
	assert_true(sl_throttle_take(&key, 1, 10, 1, now) > 0);
}

/* Another generation (a reloaded configuration) is another bucket, and so is another key. */
static void
test_buckets_apart(void **state)
{
	static const int key_a, key_b;

	assert_int_equal(sl_throttle_take(&key_a, 1, 1, 60, 5000), 0);
	assert_true(sl_throttle_take(&key_a, 1, 1, 60, 5000) > 1000);
	assert_int_equal(sl_throttle_take(&key_a, 2, 1, 60, 5000), 0);
	assert_int_equal(sl_throttle_take(&key_b, 1, 1, 60, 5000), 0);
	assert_true(sl_throttle_take(&key_b, 1, 1, 60, 5000) > 0);
}

/* cnt 0 is "no limit". */
static void
test_unlimited(void **state)
{
	static const int key;

	for (int i = 0; i < 1000; i++)
		assert_int_equal(sl_throttle_take(&key, 1, 0, 1, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_buckets_apart),
		cmocka_unit_test(test_unlimited),
	};

	return cmocka_run_group_tests_name("throttle", tests, NULL, NULL);
}
