/*
 * test/unit/test_counter.c - per-thread counters: names, exact sums, gauges.
 *
 * Threads add concurrently (while a reader sums) and the totals must be exact
 * once they are joined; a gauge goes up and down, and below zero; counts of
 * exited threads stay in the totals, including a thread that forgot to call
 * sl_counter_thread_exit().
 *
 * Threads: main plus the adders and reader each test starts.  Parses no input.
 * Ownership: counters live for the process; each test uses its own names.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "engine/counter.h"

#define ADDERS 4
#define ADDS   100000

static void
test_register_find(void **state)
{
	static const char *const names[] = { "reg.one", "reg.two", "reg.three" };
	unsigned ids[3], i, cnt = sl_counter_cnt();

	for (i = 0; i < 3; i++) {
		ids[i] = sl_counter_register(names[i]);
		assert_int_equal(ids[i], cnt + i);
	}
	for (i = 0; i < 3; i++) {
		assert_int_equal(sl_counter_register(names[i]), ids[i]); /* same name, same id */
		assert_int_equal(sl_counter_find(names[i]), (int)ids[i]);
		assert_string_equal(sl_counter_name(ids[i]), names[i]);
	}
	assert_int_equal(sl_counter_find("reg.none"), -1);
	assert_int_equal(sl_counter_cnt(), cnt + 3);
	assert_int_equal(sl_counter_read(ids[0]), 0);
}

static struct {
	unsigned plain, triple, gauge;
	unsigned is_done;       /* atomic */
	unsigned went_backward; /* atomic: reader saw a sum decrease */
} cs;

static void *
adder_main(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, i;

	for (i = 0; i < ADDS; i++) {
		sl_counter_add(cs.plain, 1);
		sl_counter_add(cs.triple, 3);
		sl_counter_add(cs.gauge, 1);  /* a session opens */
		sl_counter_add(cs.gauge, -1); /* and closes */
	}
	sl_counter_add(cs.gauge, (int64_t)id - 2); /* ids 0..3: net -2 -1 0 +1 */
	sl_counter_thread_exit();
	return NULL;
}

static void *
reader_main(void *arg)
{
	uint64_t last = 0, now;

	while (!__atomic_load_n(&cs.is_done, __ATOMIC_ACQUIRE)) {
		now = sl_counter_read(cs.plain);
		if (now < last)
			__atomic_store_n(&cs.went_backward, 1, __ATOMIC_RELAXED);
		last = now;
	}
	return NULL;
}

static void
test_concurrent_adds(void **state)
{
	pthread_t adders[ADDERS], reader;
	uint64_t base_plain;
	unsigned i;

	cs.plain = sl_counter_register("conc.plain");
	cs.triple = sl_counter_register("conc.triple");
	cs.gauge = sl_counter_register("conc.gauge");
	base_plain = sl_counter_read(cs.plain);
	assert_int_equal(pthread_create(&reader, NULL, reader_main, NULL), 0);
	for (i = 0; i < ADDERS; i++)
		assert_int_equal(pthread_create(&adders[i], NULL, adder_main, (void *)(uintptr_t)i),
				 0);
	for (i = 0; i < ADDERS; i++)
		pthread_join(adders[i], NULL);
	__atomic_store_n(&cs.is_done, 1, __ATOMIC_RELEASE);
	pthread_join(reader, NULL);

	assert_int_equal(sl_counter_read(cs.plain) - base_plain, (uint64_t)ADDERS * ADDS);
	assert_int_equal(sl_counter_read(cs.triple), (uint64_t)ADDERS * ADDS * 3);
	/* A gauge reads back signed: -2 -1 +0 +1. */
	assert_int_equal((int64_t)sl_counter_read(cs.gauge), -2);
	assert_int_equal(cs.went_backward, 0);
}

static void
test_gauge_negative(void **state)
{
	unsigned g = sl_counter_register("gauge.neg");
	static const int64_t deltas[] = { 5, -7, 1, -1, -10, 3 };
	int64_t want = 0;
	unsigned i;

	for (i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
		sl_counter_add(g, deltas[i]);
		want += deltas[i];
		assert_int_equal((int64_t)sl_counter_read(g), want);
	}
	assert_int_equal((int64_t)sl_counter_read(g), -9);
}

static unsigned exit_id;

static void *
polite_main(void *arg)
{
	sl_counter_add(exit_id, 7);
	sl_counter_thread_exit();
	sl_counter_thread_exit(); /* twice is harmless */
	return NULL;
}

/* Forgets sl_counter_thread_exit(): the thread-exit hook folds its count. */
static void *
forgetful_main(void *arg)
{
	sl_counter_add(exit_id, 11);
	return NULL;
}

static void
test_exited_threads_retained(void **state)
{
	pthread_t tid;

	exit_id = sl_counter_register("exit.kept");
	assert_int_equal(pthread_create(&tid, NULL, polite_main, NULL), 0);
	pthread_join(tid, NULL);
	assert_int_equal(sl_counter_read(exit_id), 7);
	assert_int_equal(pthread_create(&tid, NULL, forgetful_main, NULL), 0);
	pthread_join(tid, NULL);
	assert_int_equal(sl_counter_read(exit_id), 18);
	sl_counter_add(exit_id, 2); /* main's own slots count too */
	assert_int_equal(sl_counter_read(exit_id), 20);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_find),
		cmocka_unit_test(test_concurrent_adds),
		cmocka_unit_test(test_gauge_negative),
		cmocka_unit_test(test_exited_threads_retained),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	sl_counter_thread_exit();
	return rc;
}
