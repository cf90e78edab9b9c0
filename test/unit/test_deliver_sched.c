/*
 * test/unit/test_deliver_sched.c - the retry schedule of the delivery
 * stage (dl_retry_wait_s in stages/deliver_sched.c): Retry_Interval
 * doubled after each failure (conf.ref.retry_interval), held at
 * max_retry_interval (conf.ref.max_retries: equal values retry at a fixed
 * interval), never past Message_Expiration.
 *
 * Threads: one.  Ownership: nothing allocated.
 */
#include "config.h"

#include <stdint.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "stages/deliver_int.h"

struct wait_case {
	int64_t base, max_interval;
	unsigned retries;
	int64_t expire, age;
	uint64_t want;
	const char *why;
};

static const struct wait_case wait_cases[] = {
	{ 1200, 43200, 1, 86400, 0, 1200, "first failure: Retry_Interval" },
	{ 1200, 43200, 2, 86400, 0, 2400, "second: twice that" },
	{ 1200, 43200, 3, 86400, 0, 4800, "third: four times" },
	{ 1200, 43200, 4, 86400, 0, 9600, "fourth: eight times" },
	{ 1200, 43200, 6, 86400, 0, 38400, "sixth: 32 times, under the default cap" },
	{ 1200, 43200, 7, 864000, 0, 43200, "seventh: held at the default 12 hours" },
	{ 1, 2, 1, 86400, 0, 1, "retry_interval 1, max 2: 1" },
	{ 1, 2, 2, 86400, 0, 2, "then 2" },
	{ 1, 2, 3, 86400, 0, 2, "then 2 again: the back-off stops growing" },
	{ 1, 2, 40, 86400, 0, 2, "and stays 2" },
	{ 1200, 1200, 1, 0, 0, 1200, "Momentum's fixed interval: 1200" },
	{ 1200, 1200, 5, 0, 0, 1200, "still 1200 at the fifth" },
	{ 600, 300, 1, 0, 0, 300, "a cap below Retry_Interval caps the first wait too" },
	{ 1200, 0, 10, 0, 0, 1200ull << 9, "max 0: no cap" },
	{ 1, 0, 100, 0, 0, 1ull << 16, "the doubling stops after 16 steps" },
	{ 1200, 43200, 3, 5000, 1000, 4000, "never past Message_Expiration" },
	{ 1200, 43200, 3, 5000, 6000, 1, "already expired: come back at once" },
	{ 1200, 43200, 1, 0, 999999, 1200, "Message_Expiration 0: no expiry" },
	{ 0, 43200, 1, 0, 0, 1, "Retry_Interval 0 counts as 1" },
};

static void
test_retry_wait(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wait_cases) / sizeof(wait_cases[0]); i++) {
		const struct wait_case *c = &wait_cases[i];
		uint64_t got =
			dl_retry_wait_s(c->base, c->max_interval, c->retries, c->expire, c->age);

		print_message("case %zu: %s: %llu\n", i, c->why, (unsigned long long)got);
		assert_int_equal(got, c->want);
	}
}

/* With max_retry_interval set, consecutive waits never shrink and stop at the cap. */
static void
test_retry_wait_monotonic(void **state)
{
	uint64_t prev = 0;

	(void)state;
	for (unsigned r = 1; r <= 30; r++) {
		uint64_t w = dl_retry_wait_s(60, 3600, r, 0, 0);

		assert_true(w >= prev);
		assert_true(w <= 3600);
		prev = w;
	}
	assert_int_equal(prev, 3600);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_wait),
		cmocka_unit_test(test_retry_wait_monotonic),
	};

	return cmocka_run_group_tests_name("deliver_sched", tests, NULL, NULL);
}
