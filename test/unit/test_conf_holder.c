/*
 * test/unit/test_conf_holder.c - the process-wide configuration holder
 * (conf/conf_holder.c) with real snapshots.
 *
 * Every snapshot here is parsed and built from text that depends on its
 * generation g (Hostname "g<g>.example", Server_Max_Outbound_Connections
 * 7g+3, a Domain "d<g>.example" stanza setting MX_Failures_To_Delay to g),
 * so a reader can tell from a snapshot's content alone whether it is the
 * generation it claims to be and still intact.  Frees are counted with
 * sl_conf_snapshot_live_cnt(), read after sl_rcu_barrier().
 *
 * test_publish_current: sl_conf_current() before and after a publish, the
 * reference it hands out, an old snapshot staying whole while referenced
 * and going once its last reference is dropped, and no earlier than the
 * grace period of a reader that may still be looking at it.
 * test_stress_swap (the one the TSan build must pass): readers take the
 * current snapshot, check it, and either drop it or keep it until a few
 * newer generations have appeared, while a writer builds and publishes
 * thousands of replacements; each reader must have taken references, seen
 * several generations, never one older than the one before, and held
 * snapshots across swaps; afterwards every snapshot but the current one
 * is freed.
 *
 * Threads: main (registered with RCU) plus the threads a test starts, all
 * registered; liburcu's call_rcu thread frees snapshots.  Parses only the
 * test's own configuration text.  Ownership: the holder owns one reference
 * to the current snapshot; every reference a test takes it drops.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_holder.h"
#include "conf/conf_snapshot.h"
#include "engine/rcu.h"

#define STRESS_PUBLISHES 3000 /* generations 2 .. STRESS_PUBLISHES + 1 */
#define STRESS_READERS   4
#define STRESS_SLOTS     4  /* snapshots one reader may keep at once */
#define STRESS_KEEP_ONE  16 /* a reader keeps about one snapshot in this many */
#define STRESS_SPAN_MAX  8  /* ... until this many newer generations appeared */
#define STRESS_PACE      64 /* the writer pauses 1 ms after this many publishes */

/* ---------------------------------------------------------------- snapshots */

static struct sl_conf_snapshot *
snap_build(uint64_t gen)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree;
	struct sl_conf_snapshot *s;
	char text[256];
	int len;

	len = snprintf(text, sizeof(text),
		       "Hostname = \"g%llu.example\"\n"
		       "Server_Max_Outbound_Connections = %llu\n"
		       "Domain \"d%llu.example\" { MX_Failures_To_Delay = %llu }\n",
		       (unsigned long long)gen, (unsigned long long)(gen * 7 + 3),
		       (unsigned long long)gen, (unsigned long long)gen);
	SL_ASSERT(len > 0 && (size_t)len < sizeof(text));
	tree = sl_conf_parse_buffer("t.conf", "/", text, (size_t)len, &errs);
	s = tree != NULL ? sl_conf_snapshot_build(tree, "/", gen, &errs) : NULL;
	if (s == NULL)
		sl_conf_errors_print(&errs, stderr);
	SL_ASSERT(s != NULL);
	sl_conf_errors_clear(&errs);
	return s;
}

/* Magic intact and the content is the one its generation was built from. */
static bool
snap_is_good(const struct sl_conf_snapshot *s)
{
	unsigned long long gen = (unsigned long long)s->generation;
	const union sl_conf_val *v;
	const char *host;
	char want[64];
	struct sl_conf_where w = { .domain = want };

	if (s->magic != SL_CONF_SNAPSHOT_MAGIC)
		return false;
	if (sl_conf_int(s, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS) != (int64_t)(gen * 7 + 3))
		return false;
	snprintf(want, sizeof(want), "g%llu.example", gen);
	host = sl_conf_str(s, SL_OPT_HOSTNAME);
	if (host == NULL || strcmp(host, want) != 0)
		return false;
	snprintf(want, sizeof(want), "d%llu.example", gen);
	v = sl_conf_eval(s, SL_OPT_MX_FAILURES_TO_DELAY, &w);
	return v != NULL && v->i == (int64_t)gen;
}

static unsigned
snap_refs(const struct sl_conf_snapshot *s)
{
	return (unsigned)uatomic_read(&s->obj.ref.refcount);
}

/* Snapshots not yet freed, once every free already due has run. */
static size_t
live_now(void)
{
	sl_rcu_barrier();
	return sl_conf_snapshot_live_cnt();
}

static int
setup(void **state)
{
	(void)state;
	sl_rcu_register_thread();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sl_conf_publish(NULL);
	sl_rcu_barrier();
	sl_rcu_unregister_thread();
	return 0;
}

/* ---------------------------------------------------------------- semantics */

static struct {
	unsigned phase; /* atomic: 1 reader inside its section, 2 it may leave */
} gp;

static void
gp_wait(unsigned want)
{
	while (__atomic_load_n(&gp.phase, __ATOMIC_ACQUIRE) < want)
		usleep(100);
}

/* Sits in a read-side section: no grace period can end until it leaves. */
static void *
gp_reader(void *arg)
{
	(void)arg;
	sl_rcu_register_thread();
	sl_rcu_read_lock();
	__atomic_store_n(&gp.phase, 1, __ATOMIC_RELEASE);
	gp_wait(2);
	sl_rcu_read_unlock();
	sl_rcu_unregister_thread();
	return NULL;
}

static void
test_publish_current(void **state)
{
	struct sl_conf_snapshot *a, *b, *cur, *old;
	pthread_t tid;

	(void)state;
	assert_int_equal(live_now(), 0);
	assert_null(sl_conf_current());

	a = snap_build(1);
	assert_true(snap_is_good(a));
	assert_int_equal(live_now(), 1);
	sl_conf_publish(a); /* our reference moves into the holder */
	assert_int_equal(snap_refs(a), 1);

	/* current hands out a new reference of its own: the holder's plus ours. */
	cur = sl_conf_current();
	assert_ptr_equal(cur, a);
	assert_int_equal(snap_refs(a), 2);
	assert_int_equal(cur->generation, 1);
	old = cur;

	b = snap_build(2);
	assert_int_equal(live_now(), 2);
	sl_conf_publish(b); /* the holder drops a; we still hold it */
	assert_int_equal(snap_refs(a), 1);
	cur = sl_conf_current();
	assert_ptr_equal(cur, b);
	assert_int_equal(cur->generation, 2);
	assert_int_equal(snap_refs(b), 2);
	sl_conf_snapshot_put(cur);
	assert_int_equal(snap_refs(b), 1);

	/* Replaced but referenced: still there and still whole. */
	assert_int_equal(live_now(), 2);
	assert_true(snap_is_good(old));
	assert_int_equal(old->generation, 1);
	sl_conf_snapshot_put(old); /* the last reference to a */
	assert_int_equal(live_now(), 1);

	/*
	 * The holder's reference is b's last.  Dropping it while a reader
	 * sits in a read-side section (it could have loaded the pointer just
	 * before) must not free b until that reader leaves.
	 */
	memset(&gp, 0, sizeof(gp));
	assert_int_equal(pthread_create(&tid, NULL, gp_reader, NULL), 0);
	gp_wait(1);
	sl_conf_publish(NULL);
	assert_null(sl_conf_current());
	usleep(50000);
	assert_int_equal(sl_conf_snapshot_live_cnt(), 1);
	__atomic_store_n(&gp.phase, 2, __ATOMIC_RELEASE);
	pthread_join(tid, NULL);
	assert_int_equal(live_now(), 0);
}

/* ---------------------------------------------------------------- stress */

struct reader {
	unsigned id;
	uint32_t rng;        /* xorshift state */
	uint64_t gets;       /* references taken */
	uint64_t gens_seen;  /* distinct generations, counted at each change */
	uint64_t last_gen;   /* generation of the previous get */
	uint64_t backwards;  /* gets older than the previous one */
	uint64_t bad;        /* gets or kept snapshots not intact */
	uint64_t kept;       /* snapshots kept past their get */
	uint64_t kept_swaps; /* ... and dropped after a newer one was current */
	struct {
		struct sl_conf_snapshot *s;
		uint64_t until_gen; /* drop once a get returns this or newer */
	} slot[STRESS_SLOTS];
};

static struct {
	unsigned started; /* atomic: readers in their loop */
	unsigned is_done; /* atomic: the writer has published its last */
	struct reader r[STRESS_READERS];
} st;

static uint32_t
reader_rand(struct reader *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 17;
	r->rng ^= r->rng << 5;
	return r->rng;
}

static void
reader_drop(struct reader *r, unsigned i)
{
	struct sl_conf_snapshot *s = r->slot[i].s;

	/* Whole after newer generations were published and read. */
	if (!snap_is_good(s))
		r->bad++;
	if (s->generation < r->last_gen)
		r->kept_swaps++;
	sl_conf_snapshot_put(s);
	r->slot[i].s = NULL;
}

static void
reader_step(struct reader *r)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	bool is_kept = false;
	unsigned i;

	if (s == NULL) {
		r->bad++; /* the holder is never empty during the run */
		return;
	}
	r->gets++;
	if (!snap_is_good(s))
		r->bad++;
	if (s->generation < r->last_gen)
		r->backwards++;
	if (s->generation != r->last_gen)
		r->gens_seen++;
	r->last_gen = s->generation;

	for (i = 0; i < STRESS_SLOTS; i++) {
		if (r->slot[i].s != NULL && r->last_gen >= r->slot[i].until_gen)
			reader_drop(r, i);
	}
	/* Keep some, as a session does for its whole life. */
	if (reader_rand(r) % STRESS_KEEP_ONE == 0) {
		for (i = 0; i < STRESS_SLOTS && !is_kept; i++) {
			if (r->slot[i].s != NULL)
				continue;
			r->slot[i].s = s;
			r->slot[i].until_gen = s->generation + 1 + reader_rand(r) % STRESS_SPAN_MAX;
			r->kept++;
			is_kept = true;
		}
	}
	if (!is_kept)
		sl_conf_snapshot_put(s);
}

static void *
stress_reader(void *arg)
{
	struct reader *r = arg;
	unsigned i;

	sl_rcu_register_thread();
	__atomic_add_fetch(&st.started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&st.is_done, __ATOMIC_ACQUIRE))
		reader_step(r);
	for (i = 0; i < STRESS_SLOTS; i++) {
		if (r->slot[i].s != NULL)
			reader_drop(r, i);
	}
	sl_rcu_unregister_thread();
	return NULL;
}

/* The config thread: build, publish, now and then let a reload's worth of time pass. */
static void *
stress_writer(void *arg)
{
	uint64_t gen;

	(void)arg;
	sl_rcu_register_thread();
	/* Readers start slowly under the sanitizers; publish once they run. */
	while (__atomic_load_n(&st.started, __ATOMIC_ACQUIRE) < STRESS_READERS)
		usleep(100);
	for (gen = 2; gen <= STRESS_PUBLISHES + 1; gen++) {
		sl_conf_publish(snap_build(gen));
		if (gen % STRESS_PACE == 0)
			usleep(1000);
	}
	__atomic_store_n(&st.is_done, 1, __ATOMIC_RELEASE);
	sl_rcu_unregister_thread();
	return NULL;
}

static void
test_stress_swap(void **state)
{
	pthread_t readers[STRESS_READERS], writer;
	struct sl_conf_snapshot *cur;
	uint64_t gets = 0;
	unsigned i;

	(void)state;
	assert_int_equal(live_now(), 0);
	memset(&st, 0, sizeof(st));
	sl_conf_publish(snap_build(1)); /* readers never find the holder empty */
	for (i = 0; i < STRESS_READERS; i++) {
		st.r[i].id = i;
		st.r[i].rng = 0x9e3779b9u * (i + 1);
		assert_int_equal(pthread_create(&readers[i], NULL, stress_reader, &st.r[i]), 0);
	}
	assert_int_equal(pthread_create(&writer, NULL, stress_writer, NULL), 0);
	pthread_join(writer, NULL);
	for (i = 0; i < STRESS_READERS; i++)
		pthread_join(readers[i], NULL);

	for (i = 0; i < STRESS_READERS; i++) {
		const struct reader *r = &st.r[i];

		print_message("# reader %u: %llu references, %llu generation changes, "
			      "%llu kept (%llu across a swap)\n",
			      i, (unsigned long long)r->gets, (unsigned long long)r->gens_seen,
			      (unsigned long long)r->kept, (unsigned long long)r->kept_swaps);
		if (r->bad != 0)
			fail_msg("reader %u saw %llu missing, dead or torn snapshots", i,
				 (unsigned long long)r->bad);
		if (r->backwards != 0)
			fail_msg("reader %u saw the generation go backwards %llu times", i,
				 (unsigned long long)r->backwards);
		assert_true(r->gets > 0);
		assert_true(r->gens_seen > 1);
		assert_true(r->kept_swaps > 0);
		gets += r->gets;
	}

	/* Only the current snapshot is left, with the holder's reference alone. */
	assert_int_equal(live_now(), 1);
	cur = sl_conf_current();
	assert_non_null(cur);
	assert_int_equal(cur->generation, STRESS_PUBLISHES + 1);
	assert_true(snap_is_good(cur));
	assert_int_equal(snap_refs(cur), 2);
	sl_conf_snapshot_put(cur);
	sl_conf_publish(NULL);
	assert_int_equal(live_now(), 0);
	print_message("# %llu references taken by %d readers over %d publishes\n",
		      (unsigned long long)gets, STRESS_READERS, STRESS_PUBLISHES);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish_current, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stress_swap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
