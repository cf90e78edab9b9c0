/*
 * test/unit/test_rcu.c - published objects: references, grace periods, swaps.
 *
 * The semantic tests count free_fn calls around each get/put/publish; the
 * grace-period test keeps a reader inside its read-side section while the
 * last reference goes away.  The stress test is the one the TSan build must
 * pass: four readers take, check and drop snapshots while a writer publishes
 * 20,000 replacements; a freed snapshot is poisoned (not released until the
 * end), so a reader that ever held a dead one would see the poison, and TSan
 * sees the poisoning write race with the reader's loads.
 *
 * Threads: main (registered with RCU) plus the readers and writer a test
 * starts; liburcu's call_rcu thread runs free_fn.  Parses no input.
 * Ownership: each test owns its snapshots and frees them at its end, after
 * sl_rcu_barrier() (free_fn only poisons).
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
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/rcu.h"

#define SNAP_LIVE   0x5a9b0001u
#define SNAP_POISON 0xdeadbeefu
#define SNAP_CNT    20000
#define READERS     4
#define SNAP_PACE   1000 /* the writer pauses 1 ms after this many publishes */

struct snap {
	unsigned magic;    /* SNAP_LIVE until free_fn poisons it */
	uint64_t gen;      /* publication order */
	uint64_t check;    /* gen * 7 + 3, written before publish */
	unsigned free_cnt; /* atomic: times free_fn ran */
	struct sl_rcuobj obj;
};

static unsigned freed_total; /* atomic */

static void
snap_free(struct sl_rcuobj *obj)
{
	struct snap *s = caa_container_of(obj, struct snap, obj);

	/*
	 * Poison, but keep the memory: the tests look at it afterwards.  The
	 * count is poisoned too, so a reader that reached a dead snapshot
	 * (a missing grace period) would take a reference and see the magic.
	 */
	s->magic = SNAP_POISON;
	s->check = 0;
	s->obj.ref.refcount = 1000000;
	__atomic_fetch_add(&s->free_cnt, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&freed_total, 1, __ATOMIC_RELEASE);
}

static struct snap *
snap_new(uint64_t gen)
{
	struct snap *s = SL_NEW(s);

	s->magic = SNAP_LIVE;
	s->gen = gen;
	s->check = gen * 7 + 3;
	sl_rcuobj_init(&s->obj, snap_free);
	return s;
}

static struct snap *
snap_of(struct sl_rcuobj *obj)
{
	return obj != NULL ? caa_container_of(obj, struct snap, obj) : NULL;
}

static unsigned
freed_now(void)
{
	/* Every callback queued so far has run after this. */
	sl_rcu_barrier();
	return __atomic_load_n(&freed_total, __ATOMIC_ACQUIRE);
}

static int
setup(void **state)
{
	sl_rcu_register_thread();
	__atomic_store_n(&freed_total, 0, __ATOMIC_RELAXED);
	return 0;
}

static int
teardown(void **state)
{
	sl_rcu_barrier();
	sl_rcu_unregister_thread();
	return 0;
}

/* ---------------------------------------------------------------- semantics */

static void
test_get_put_publish(void **state)
{
	struct sl_holder h = { NULL };
	struct snap *a = snap_new(1), *b = snap_new(2);
	struct sl_rcuobj *o;

	assert_null(sl_holder_get(&h));
	sl_holder_publish(&h, &a->obj); /* our reference moves into the holder */
	o = sl_holder_get(&h);
	assert_ptr_equal(o, &a->obj);
	sl_rcuobj_get(o); /* a second reference of our own */

	sl_holder_publish(&h, &b->obj); /* the holder drops a: we still hold two */
	assert_int_equal(freed_now(), 0);
	assert_ptr_equal(sl_holder_get(&h), &b->obj);
	sl_rcuobj_put(&b->obj);
	sl_rcuobj_put(o);
	assert_int_equal(freed_now(), 0);
	assert_int_equal(a->magic, SNAP_LIVE);
	sl_rcuobj_put(o); /* the last reference to a */
	assert_int_equal(freed_now(), 1);
	assert_int_equal(a->free_cnt, 1);
	assert_int_equal(a->magic, SNAP_POISON);
	assert_int_equal(b->free_cnt, 0);

	/* Republishing the current object: our reference moves in, no free. */
	sl_rcuobj_get(&b->obj);
	sl_holder_publish(&h, &b->obj);
	assert_int_equal(freed_now(), 1);

	sl_holder_publish(&h, NULL); /* clears: the holder's reference was the last */
	assert_null(sl_holder_get(&h));
	assert_int_equal(freed_now(), 2);
	assert_int_equal(b->free_cnt, 1);
	sl_free(a);
	sl_free(b);
}

/* ---------------------------------------------------------------- grace period */

static struct {
	struct sl_holder h;
	unsigned phase;      /* atomic: 1 reader inside, 2 reader may leave, 3 left */
	unsigned saw_poison; /* atomic */
} gp;

static void
wait_phase(unsigned want)
{
	while (__atomic_load_n(&gp.phase, __ATOMIC_ACQUIRE) < want)
		usleep(100);
}

static void *
gp_reader(void *arg)
{
	struct snap *s;

	sl_rcu_register_thread();
	sl_rcu_read_lock();
	s = snap_of(sl_holder_peek(&gp.h));
	__atomic_store_n(&gp.phase, 1, __ATOMIC_RELEASE);
	wait_phase(2);
	/* The holder let go long ago, but our read section pins the memory. */
	if (s == NULL || s->magic != SNAP_LIVE)
		__atomic_store_n(&gp.saw_poison, 1, __ATOMIC_RELAXED);
	sl_rcu_read_unlock();
	__atomic_store_n(&gp.phase, 3, __ATOMIC_RELEASE);
	sl_rcu_unregister_thread();
	return NULL;
}

static void
test_free_after_grace_period(void **state)
{
	struct snap *s = snap_new(1);
	pthread_t tid;

	memset(&gp, 0, sizeof(gp));
	sl_holder_publish(&gp.h, &s->obj);
	assert_int_equal(pthread_create(&tid, NULL, gp_reader, NULL), 0);
	wait_phase(1);
	sl_holder_publish(&gp.h, NULL); /* last reference: free_fn is queued */
	usleep(50000);
	/* The call_rcu thread is waiting for the reader's grace period. */
	assert_int_equal(__atomic_load_n(&s->free_cnt, __ATOMIC_RELAXED), 0);
	__atomic_store_n(&gp.phase, 2, __ATOMIC_RELEASE);
	pthread_join(tid, NULL);
	assert_int_equal(gp.saw_poison, 0);
	assert_int_equal(freed_now(), 1);
	assert_int_equal(s->free_cnt, 1);
	sl_free(s);
}

/* ---------------------------------------------------------------- stress */

static struct {
	struct sl_holder h;
	struct snap **all;      /* every snapshot published, by gen */
	unsigned started;       /* atomic: readers in their loop */
	unsigned is_done;       /* atomic: writer finished */
	unsigned bad[READERS];  /* per reader: poisoned or inconsistent sightings */
	uint64_t gets[READERS]; /* per reader: references taken */
} st;

static bool
snap_is_good(const struct snap *s)
{
	return s->magic == SNAP_LIVE && s->check == s->gen * 7 + 3;
}

static void *
stress_reader(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	struct snap *s, *held = NULL;
	uint64_t last_gen = 0;

	sl_rcu_register_thread();
	__atomic_add_fetch(&st.started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&st.is_done, __ATOMIC_ACQUIRE)) {
		s = snap_of(sl_holder_get(&st.h));
		if (s == NULL)
			continue;
		st.gets[id]++;
		/* Publication order: a later get never returns an older snapshot. */
		if (!snap_is_good(s) || s->gen < last_gen)
			st.bad[id]++;
		last_gen = s->gen;
		/* Hold one snapshot across the next get, as a session would. */
		if (held != NULL) {
			if (!snap_is_good(held))
				st.bad[id]++;
			sl_rcuobj_put(&held->obj);
		}
		held = s;
	}
	if (held != NULL) {
		if (!snap_is_good(held))
			st.bad[id]++;
		sl_rcuobj_put(&held->obj);
	}
	sl_rcu_unregister_thread();
	return NULL;
}

static void *
stress_writer(void *arg)
{
	unsigned i;

	sl_rcu_register_thread();
	/*
	 * All the publishes take about 2 ms: without the wait and the pauses
	 * the writer was often done before any reader ran (most runs under
	 * ASan, some plain ones), and the test checked nothing.
	 */
	while (__atomic_load_n(&st.started, __ATOMIC_ACQUIRE) < READERS)
		usleep(100);
	for (i = 0; i < SNAP_CNT; i++) {
		st.all[i] = snap_new(i + 1);
		sl_holder_publish(&st.h, &st.all[i]->obj);
		if ((i + 1) % SNAP_PACE == 0)
			usleep(1000);
	}
	sl_holder_publish(&st.h, NULL);
	__atomic_store_n(&st.is_done, 1, __ATOMIC_RELEASE);
	sl_rcu_unregister_thread();
	return NULL;
}

static void
test_stress_swap(void **state)
{
	pthread_t readers[READERS], writer;
	uint64_t gets = 0;
	unsigned i;

	memset(&st, 0, sizeof(st));
	__atomic_store_n(&freed_total, 0, __ATOMIC_RELAXED);
	st.all = sl_calloc(SNAP_CNT, sizeof(*st.all));
	for (i = 0; i < READERS; i++)
		assert_int_equal(
			pthread_create(&readers[i], NULL, stress_reader, (void *)(uintptr_t)i), 0);
	assert_int_equal(pthread_create(&writer, NULL, stress_writer, NULL), 0);
	pthread_join(writer, NULL);
	for (i = 0; i < READERS; i++)
		pthread_join(readers[i], NULL);

	for (i = 0; i < READERS; i++) {
		if (st.bad[i] != 0)
			fail_msg("reader %u saw %u dead or torn snapshots", i, st.bad[i]);
		gets += st.gets[i];
	}
	/* Readers that never got a snapshot would have checked nothing above. */
	assert_true(gets > 0);
	assert_int_equal(freed_now(), SNAP_CNT);
	for (i = 0; i < SNAP_CNT; i++) {
		if (st.all[i]->free_cnt != 1)
			fail_msg("snapshot %u freed %u times", i + 1, st.all[i]->free_cnt);
		assert_int_equal(st.all[i]->magic, SNAP_POISON);
	}
	print_message("# %llu references taken by %d readers over %d publishes\n",
		      (unsigned long long)gets, READERS, SNAP_CNT);
	for (i = 0; i < SNAP_CNT; i++)
		sl_free(st.all[i]);
	sl_free(st.all);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_put_publish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_after_grace_period, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stress_swap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
