/*
 * test/unit/test_stage.c - the stage runtime: hand-off, wake-ups, stop, peers.
 *
 * Real threads and real libuv loops, no mocks: events cross wfcqueues between
 * producer threads and POOL/LOOP stages, and every test checks what arrived
 * (exactly once, in order per producer), where (round-robin, reply_to) and
 * what the runtime reports (busy, stats).  Assertion failures that must abort
 * (undeclared peer, leaked loop handle) run in a forked child.
 *
 * Threads: cmocka runs on the main thread; handlers and producers only count
 * into per-thread slots, which main reads after joining (stop) them.
 * Parses no input.  Each test destroys every stage it creates.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/stage.h"

#define T_PRODUCERS_MAX 8
#define T_THREADS_MAX   4
#define T_WAIT_MS       15000

enum {
	TEV_DATA = 1,
	TEV_START,
	TEV_REQ,
	TEV_REPLY,
};

struct tev {
	struct sl_event ev; /* first: the common header */
	unsigned producer;
	unsigned seq;
	struct sl_thread *origin; /* REQ/REPLY: the asking thread */
};

static struct tev *
tev_new(unsigned type, unsigned producer, unsigned seq)
{
	struct tev *e = SL_NEW(e);

	sl_event_init(&e->ev, type);
	e->producer = producer;
	e->seq = seq;
	return e;
}

static void
tev_free(struct sl_event *ev)
{
	ev->magic = 0;
	sl_free(ev);
}

/* Per-consumer-thread tallies: each slot written by one stage thread only. */
static struct {
	unsigned events;     /* per producer */
	unsigned char *seen; /* [producer * events + seq] */
	unsigned next_seq[T_THREADS_MAX][T_PRODUCERS_MAX];
	unsigned order_errors[T_THREADS_MAX];
	unsigned self_errors[T_THREADS_MAX];
	unsigned handled[T_THREADS_MAX];
	unsigned batch_cnt[T_THREADS_MAX];
	unsigned batch_cur[T_THREADS_MAX];
	unsigned batch_biggest[T_THREADS_MAX];
	unsigned spin; /* busy-work per event */
} ho;

static void
ho_reset(unsigned producers, unsigned events)
{
	sl_free(ho.seen);
	memset(&ho, 0, sizeof(ho));
	ho.events = events;
	ho.seen = sl_calloc((size_t)producers * events + 1, 1);
}

static void
ho_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct tev *e = (struct tev *)ev;
	unsigned ti = sl_thread_index(t);
	volatile unsigned spin;

	if (sl_thread_self() != t)
		ho.self_errors[ti]++;
	if (e->seq < ho.next_seq[ti][e->producer])
		ho.order_errors[ti]++;
	ho.next_seq[ti][e->producer] = e->seq + 1;
	ho.seen[(size_t)e->producer * ho.events + e->seq]++;
	ho.handled[ti]++;
	ho.batch_cur[ti]++;
	for (spin = 0; spin < ho.spin; spin++)
		continue;
	tev_free(ev);
}

static void
ho_batch_end(struct sl_thread *t)
{
	unsigned ti = sl_thread_index(t);

	ho.batch_cnt[ti]++;
	if (ho.batch_cur[ti] > ho.batch_biggest[ti])
		ho.batch_biggest[ti] = ho.batch_cur[ti];
	ho.batch_cur[ti] = 0;
}

static void
ho_def(struct sl_stage_def *def, const char *name, enum sl_stage_kind kind, unsigned batch_max)
{
	memset(def, 0, sizeof(*def));
	def->name = name;
	def->kind = kind;
	def->batch_max = batch_max;
	def->handle = ho_handle;
	def->batch_end = ho_batch_end;
}

static void
ho_check_all_seen(unsigned producers)
{
	size_t i, n = (size_t)producers * ho.events;

	for (i = 0; i < n; i++) {
		if (ho.seen[i] != 1)
			fail_msg("event %zu (producer %zu seq %zu) seen %u times", i, i / ho.events,
				 i % ho.events, ho.seen[i]);
	}
}

static bool
wait_for(const unsigned *counter, unsigned want)
{
	int ms;

	for (ms = 0; ms < T_WAIT_MS; ms++) {
		if (__atomic_load_n(counter, __ATOMIC_ACQUIRE) >= want)
			return true;
		usleep(1000);
	}
	return false;
}

/* ---------------------------------------------------------------- hand-off */

struct ho_case {
	const char *name;
	enum sl_stage_kind kind;
	unsigned threads, producers, events, batch_max;
};

static const struct ho_case ho_cases[] = {
	{ "handoff pool 1 thread 4 producers", SL_STAGE_POOL, 1, 4, 20000, 0 },
	{ "handoff pool 2 threads 3 producers", SL_STAGE_POOL, 2, 3, 20000, 0 },
	{ "handoff loop 1 thread 4 producers", SL_STAGE_LOOP, 1, 4, 20000, 0 },
	{ "handoff loop 2 threads 3 producers batch 16", SL_STAGE_LOOP, 2, 3, 20000, 16 },
};

struct producer {
	pthread_t tid;
	unsigned id;
	unsigned events;
	struct sl_stage *to;
	pthread_barrier_t *go;
};

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	unsigned i;

	pthread_barrier_wait(p->go);
	for (i = 0; i < p->events; i++)
		sl_send(p->to, &tev_new(TEV_DATA, p->id, i)->ev);
	return NULL;
}

static void
test_handoff(void **state)
{
	const struct ho_case *c = *state;
	struct producer prod[T_PRODUCERS_MAX];
	struct sl_stage_stats stats;
	struct sl_stage_def def;
	pthread_barrier_t go;
	struct sl_stage *st;
	unsigned i, total = c->producers * c->events;

	ho_reset(c->producers, c->events);
	ho_def(&def, "handoff", c->kind, c->batch_max);
	st = sl_stage_create(&def, c->threads, NULL);
	assert_int_equal(sl_stage_start(st), 0);
	pthread_barrier_init(&go, NULL, c->producers);
	for (i = 0; i < c->producers; i++) {
		prod[i] = (struct producer){ 0, i, c->events, st, &go };
		assert_int_equal(pthread_create(&prod[i].tid, NULL, producer_main, &prod[i]), 0);
	}
	for (i = 0; i < c->producers; i++)
		pthread_join(prod[i].tid, NULL);
	/* Stop drains: every event queued so far is handled before it returns. */
	sl_stage_stop(st);

	ho_check_all_seen(c->producers);
	for (i = 0; i < c->threads; i++) {
		assert_int_equal(ho.order_errors[i], 0);
		assert_int_equal(ho.self_errors[i], 0);
		assert_int_equal(ho.batch_cur[i], 0); /* the last batch ended too */
		assert_true(ho.batch_biggest[i] <= (c->batch_max ? c->batch_max : 64));
	}
	sl_stage_stats(st, &stats);
	assert_int_equal(stats.thread_cnt, c->threads);
	assert_int_equal(stats.ops, total);
	assert_int_equal(stats.queue_depth, 0);
	assert_int_equal(stats.busy_cnt, 0);
	assert_true(stats.busy_ns > 0);
	sl_stage_destroy(st);
	pthread_barrier_destroy(&go);
}

/* ---------------------------------------------------------------- round-robin */

static void
test_round_robin(void **state)
{
	static const enum sl_stage_kind kinds[] = { SL_STAGE_POOL, SL_STAGE_LOOP };
	struct sl_stage_def def;
	struct sl_stage *st;
	unsigned k, i, per = 250, threads = 4;

	for (k = 0; k < SL_ARRAY_LEN(kinds); k++) {
		ho_reset(1, per * threads);
		ho_def(&def, "rr", kinds[k], 0);
		st = sl_stage_create(&def, threads, NULL);
		assert_int_equal(sl_stage_start(st), 0);
		for (i = 0; i < per * threads; i++)
			sl_send(st, &tev_new(TEV_DATA, 0, i)->ev);
		sl_stage_stop(st);
		/* One sender: a strict rotation gives each thread the same share. */
		for (i = 0; i < threads; i++)
			assert_int_equal(ho.handled[i], per);
		ho_check_all_seen(1);
		sl_stage_destroy(st);
	}
}

/* ---------------------------------------------------------------- batches, stop */

static void
test_batch_end(void **state)
{
	static const enum sl_stage_kind kinds[] = { SL_STAGE_POOL, SL_STAGE_LOOP };
	struct sl_stage_def def;
	struct sl_stage *st;
	unsigned k, i, n = 100, batch = 8;

	for (k = 0; k < SL_ARRAY_LEN(kinds); k++) {
		ho_reset(1, n);
		ho_def(&def, "batch", kinds[k], batch);
		st = sl_stage_create(&def, 1, NULL);
		/* Queued before start: the first wake-up finds all of them. */
		for (i = 0; i < n; i++)
			sl_send(st, &tev_new(TEV_DATA, 0, i)->ev);
		assert_int_equal(sl_stage_start(st), 0);
		sl_stage_stop(st);
		ho_check_all_seen(1);
		assert_int_equal(ho.batch_biggest[0], batch);
		assert_true(ho.batch_cnt[0] >= (n + batch - 1) / batch);
		assert_int_equal(ho.batch_cur[0], 0);
		sl_stage_destroy(st);
	}
}

static void
test_stop_drains(void **state)
{
	static const enum sl_stage_kind kinds[] = { SL_STAGE_POOL, SL_STAGE_LOOP };
	struct sl_stage_def def;
	struct sl_stage_stats stats;
	struct sl_stage *st;
	unsigned k, i, n = 3000;

	for (k = 0; k < SL_ARRAY_LEN(kinds); k++) {
		ho_reset(1, n);
		ho.spin = 2000; /* slow consumers: stop finds a full queue */
		ho_def(&def, "drain", kinds[k], 0);
		st = sl_stage_create(&def, 2, NULL);
		assert_int_equal(sl_stage_start(st), 0);
		for (i = 0; i < n; i++)
			sl_send(st, &tev_new(TEV_DATA, 0, i)->ev);
		sl_stage_stats(st, &stats);
		sl_stage_stop(st);
		ho_check_all_seen(1);
		sl_stage_stats(st, &stats);
		assert_int_equal(stats.ops, n);
		assert_int_equal(stats.queue_depth, 0);
		sl_stage_destroy(st);
	}
}

/* ---------------------------------------------------------------- reply_to */

#define RT_REQUESTS 2000

static struct {
	unsigned replies[T_THREADS_MAX]; /* per asker thread */
	unsigned errors[T_THREADS_MAX];  /* asker side */
	unsigned answer_errors[T_THREADS_MAX];
	unsigned done; /* atomic: askers that got every reply */
} rt;

static void
rt_asker_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct tev *e = (struct tev *)ev;
	struct sl_stage *answerer = sl_stage_arg(sl_thread_stage(t));
	unsigned ti = sl_thread_index(t), i;
	struct tev *r;

	switch (ev->type) {
	case TEV_START:
		/* From main, which is no stage thread: nobody to answer to. */
		if (ev->reply_to != NULL)
			rt.errors[ti]++;
		for (i = 0; i < RT_REQUESTS; i++) {
			r = tev_new(TEV_REQ, ti, i);
			r->origin = t;
			if (r->ev.reply_to != t)
				rt.errors[ti]++;
			sl_send(answerer, &r->ev);
		}
		break;
	case TEV_REPLY:
		if (e->origin != t || sl_thread_self() != t || e->producer != ti)
			rt.errors[ti]++;
		if (++rt.replies[ti] == RT_REQUESTS)
			__atomic_fetch_add(&rt.done, 1, __ATOMIC_RELEASE);
		break;
	default:
		rt.errors[ti]++;
	}
	if (ev->type != TEV_REQ)
		tev_free(ev);
}

static void
rt_answerer_handle(struct sl_thread *t, struct sl_event *ev)
{
	unsigned ti = sl_thread_index(t);

	if (ev->type != TEV_REQ || ev->reply_to == NULL) {
		rt.answer_errors[ti]++;
		tev_free(ev);
		return;
	}
	ev->type = TEV_REPLY;
	sl_send_thread(ev->reply_to, ev);
}

static void
test_reply_to(void **state)
{
	static const char *const asker_peers[] = { "answerer", NULL };
	static const char *const answerer_peers[] = { "asker", NULL };
	static const struct sl_stage_def asker_def = {
		.name = "asker",
		.kind = SL_STAGE_LOOP,
		.peers = asker_peers,
		.handle = rt_asker_handle,
	};
	static const struct sl_stage_def answerer_def = {
		.name = "answerer",
		.kind = SL_STAGE_POOL,
		.peers = answerer_peers,
		.handle = rt_answerer_handle,
	};
	struct sl_stage *asker, *answerer;
	unsigned i, askers = 2;

	memset(&rt, 0, sizeof(rt));
	answerer = sl_stage_create(&answerer_def, 2, NULL);
	asker = sl_stage_create(&asker_def, askers, answerer);
	assert_int_equal(sl_stage_start(answerer), 0);
	assert_int_equal(sl_stage_start(asker), 0);
	for (i = 0; i < askers; i++)
		sl_send_thread(sl_stage_thread(asker, i), &tev_new(TEV_START, 0, 0)->ev);
	assert_true(wait_for(&rt.done, askers));
	sl_stage_stop(asker);
	sl_stage_stop(answerer);
	for (i = 0; i < askers; i++) {
		assert_int_equal(rt.replies[i], RT_REQUESTS);
		assert_int_equal(rt.errors[i], 0);
		assert_int_equal(rt.answer_errors[i], 0);
	}
	sl_stage_destroy(asker);
	sl_stage_destroy(answerer);
}

/* ---------------------------------------------------------------- busy, stats */

static struct {
	unsigned entered; /* atomic */
	unsigned open;    /* atomic */
} gate;

static void
gate_handle(struct sl_thread *t, struct sl_event *ev)
{
	__atomic_store_n(&gate.entered, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&gate.open, __ATOMIC_ACQUIRE))
		usleep(200);
	tev_free(ev);
}

static void
test_busy_limit(void **state)
{
	static const struct sl_stage_def def = {
		.name = "gate",
		.kind = SL_STAGE_POOL,
		.queue_limit = 10,
		.handle = gate_handle,
	};
	struct sl_stage_stats stats;
	struct sl_stage *st;
	unsigned i;

	memset(&gate, 0, sizeof(gate));
	st = sl_stage_create(&def, 1, NULL);
	assert_int_equal(sl_stage_start(st), 0);
	assert_false(sl_stage_busy(st));
	sl_send(st, &tev_new(TEV_DATA, 0, 0)->ev);
	assert_true(wait_for(&gate.entered, 1));
	for (i = 1; i < 10; i++)
		sl_send(st, &tev_new(TEV_DATA, 0, i)->ev);
	sl_stage_stats(st, &stats);
	assert_int_equal(stats.busy_cnt, 1);
	assert_int_equal(stats.queue_depth, 9);
	assert_false(sl_stage_busy(st));
	sl_send(st, &tev_new(TEV_DATA, 0, 10)->ev);
	assert_true(sl_stage_busy(st));
	usleep(2000);
	__atomic_store_n(&gate.open, 1, __ATOMIC_RELEASE);
	sl_stage_stop(st);
	assert_false(sl_stage_busy(st));
	sl_stage_stats(st, &stats);
	assert_int_equal(stats.ops, 11);
	assert_int_equal(stats.busy_cnt, 0);
	assert_int_equal(stats.queue_depth, 0);
	assert_true(stats.busy_ns >= 2000000);
	sl_stage_destroy(st);
}

/* ---------------------------------------------------------------- OWN threads */

static struct {
	unsigned exited; /* atomic */
	unsigned errors; /* atomic */
	int pipe_fd[2];
} own;

static void
own_poll_fn(struct sl_thread *t)
{
	if (sl_thread_self() != t || sl_thread_arg(t) != &own ||
	    strcmp(sl_stage_name(sl_thread_stage(t)), "own") != 0)
		__atomic_fetch_add(&own.errors, 1, __ATOMIC_RELAXED);
	while (!sl_thread_stopping(t))
		usleep(1000);
	__atomic_fetch_add(&own.exited, 1, __ATOMIC_RELEASE);
}

/* Blocks in read(); the stage interrupts it by closing the pipe's write end. */
static void
own_block_fn(struct sl_thread *t)
{
	char c;

	while (read(own.pipe_fd[0], &c, 1) > 0)
		continue;
	__atomic_fetch_add(&own.exited, 1, __ATOMIC_RELEASE);
}

static void
test_own_threads(void **state)
{
	static const struct sl_stage_def def = { .name = "own", .kind = SL_STAGE_OWN };
	struct sl_stage *st;
	unsigned i;

	memset(&own, 0, sizeof(own));
	assert_int_equal(pipe(own.pipe_fd), 0);
	st = sl_stage_create(&def, 0, NULL);
	assert_int_equal(sl_stage_start(st), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(sl_stage_spawn(st, "own-poll", own_poll_fn, &own, NULL), 0);
	assert_int_equal(sl_stage_spawn(st, "own-block", own_block_fn, NULL, NULL), 0);
	assert_int_equal(sl_stage_thread_cnt(st), 4);
	assert_string_equal(sl_thread_name(sl_stage_thread(st, 3)), "own-block");
	usleep(5000);
	assert_int_equal(__atomic_load_n(&own.exited, __ATOMIC_ACQUIRE), 0);
	close(own.pipe_fd[1]);
	sl_stage_stop(st);
	assert_int_equal(own.exited, 4);
	assert_int_equal(own.errors, 0);
	assert_int_equal(sl_stage_spawn(st, "late", own_poll_fn, &own, NULL), -ESHUTDOWN);
	close(own.pipe_fd[0]);
	sl_stage_destroy(st);
}

/* One member told to return by a flag of the test's own (not sl_thread_stopping). */
struct own_member {
	unsigned is_told; /* atomic */
	unsigned ran;     /* atomic: fn started */
};

static void
own_told_fn(struct sl_thread *t)
{
	struct own_member *m = sl_thread_arg(t);

	__atomic_store_n(&m->ran, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&m->is_told, __ATOMIC_ACQUIRE) && !sl_thread_stopping(t))
		usleep(1000);
	__atomic_fetch_add(&own.exited, 1, __ATOMIC_RELEASE);
}

/* The live members' names by slot ("" for a free slot), for comparing. */
static void
own_slots(struct sl_stage *st, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < sl_stage_thread_cnt(st); i++) {
		struct sl_thread *t = sl_stage_thread(st, i);

		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
					t ? sl_thread_name(t) : "");
	}
}

static void
test_own_reap(void **state)
{
	static const struct sl_stage_def def = { .name = "own", .kind = SL_STAGE_OWN };
	struct own_member m[6] = { 0 };
	struct sl_thread *t[6];
	struct sl_stage_stats stats;
	struct sl_stage *st;
	char slots[128];

	memset(&own, 0, sizeof(own));
	st = sl_stage_create(&def, 0, NULL);
	assert_int_equal(sl_stage_start(st), 0);
	assert_int_equal(sl_stage_spawn(st, "m0", own_told_fn, &m[0], &t[0]), 0);
	assert_int_equal(sl_stage_spawn(st, "m1", own_told_fn, &m[1], &t[1]), 0);
	assert_int_equal(sl_stage_spawn(st, "m2", own_told_fn, &m[2], &t[2]), 0);
	assert_int_equal(sl_thread_index(t[1]), 1);

	/* Reaping waits for the member to return, then frees its slot. */
	__atomic_store_n(&m[1].is_told, 1, __ATOMIC_RELEASE);
	assert_int_equal(sl_stage_reap(st, t[1]), 0);
	assert_int_equal(__atomic_load_n(&own.exited, __ATOMIC_ACQUIRE), 1);
	own_slots(st, slots, sizeof(slots));
	assert_string_equal(slots, "m0,,m2");
	sl_stage_stats(st, &stats);
	assert_int_equal(stats.thread_cnt, 2);

	/* The next spawn takes the free slot; then the array grows again. */
	assert_int_equal(sl_stage_spawn(st, "m1-again", own_told_fn, &m[3], &t[3]), 0);
	assert_int_equal(sl_thread_index(t[3]), 1);
	assert_int_equal(sl_stage_spawn(st, "m3", own_told_fn, &m[4], &t[4]), 0);
	assert_int_equal(sl_thread_index(t[4]), 3);
	own_slots(st, slots, sizeof(slots));
	assert_string_equal(slots, "m0,m1-again,m2,m3");

	/* Told before it even runs: reaping still waits for it to have run. */
	__atomic_store_n(&m[5].is_told, 1, __ATOMIC_RELEASE);
	assert_int_equal(sl_stage_spawn(st, "m4", own_told_fn, &m[5], &t[5]), 0);
	assert_int_equal(sl_stage_reap(st, t[5]), 0);
	assert_int_equal(__atomic_load_n(&m[5].ran, __ATOMIC_ACQUIRE), 1);
	__atomic_store_n(&m[2].is_told, 1, __ATOMIC_RELEASE);
	assert_int_equal(sl_stage_reap(st, t[2]), 0);
	assert_int_equal(__atomic_load_n(&own.exited, __ATOMIC_ACQUIRE), 3);
	own_slots(st, slots, sizeof(slots));
	assert_string_equal(slots, "m0,m1-again,,m3,");
	sl_stage_stats(st, &stats);
	assert_int_equal(stats.thread_cnt, 3);

	/* The stop joins the rest; a reap after it began is refused. */
	sl_stage_stop(st);
	assert_int_equal(own.exited, 6);
	assert_int_equal(sl_stage_reap(st, t[0]), -ESHUTDOWN);
	sl_stage_destroy(st);
}

/* ---------------------------------------------------------------- names, lookup */

static char name_seen[T_THREADS_MAX][16];

static int
name_init(struct sl_thread *t)
{
	pthread_getname_np(pthread_self(), name_seen[sl_thread_index(t)], 16);
	return 0;
}

static void
collect_names(struct sl_stage *st, void *arg)
{
	char *buf = arg;

	strcat(buf, sl_stage_name(st));
	strcat(buf, ",");
}

static void
test_names_find_foreach(void **state)
{
	static const struct sl_stage_def long_def = {
		.name = "averylongstagename",
		.kind = SL_STAGE_POOL,
		.thread_init = name_init,
		.handle = ho_handle,
	};
	static const struct sl_stage_def short_def = {
		.name = "short",
		.kind = SL_STAGE_LOOP,
		.handle = ho_handle,
	};
	struct sl_stage *a, *b;
	char list[128] = "";

	a = sl_stage_create(&long_def, 2, &name_seen);
	b = sl_stage_create(&short_def, 1, NULL);
	assert_ptr_equal(sl_stage_find("averylongstagename"), a);
	assert_ptr_equal(sl_stage_find("short"), b);
	assert_null(sl_stage_find("nonesuch"));
	assert_ptr_equal(sl_stage_arg(a), &name_seen);
	sl_stage_foreach(collect_names, list);
	assert_string_equal(list, "averylongstagename,short,");
	assert_int_equal(sl_stage_start(a), 0);
	assert_int_equal(sl_stage_start(b), 0);
	assert_string_equal(sl_thread_name(sl_stage_thread(a, 1)), "averylongstagename/1");
	assert_string_equal(name_seen[0], "averylongstagen");
	assert_string_equal(name_seen[1], "averylongstagen");
	assert_int_equal(sl_thread_index(sl_stage_thread(a, 1)), 1);
	assert_ptr_equal(sl_thread_stage(sl_stage_thread(b, 0)), b);
	assert_non_null(sl_thread_loop(sl_stage_thread(b, 0)));
	assert_null(sl_thread_self());
	sl_stage_stop(b);
	sl_stage_stop(a);
	sl_stage_destroy(b);
	sl_stage_destroy(a);
	assert_null(sl_stage_find("short"));
}

/* ---------------------------------------------------------------- start failure */

static struct {
	unsigned inits, finis; /* atomic */
} sf;

static int
sf_init(struct sl_thread *t)
{
	__atomic_fetch_add(&sf.inits, 1, __ATOMIC_RELAXED);
	return sl_thread_index(t) == 1 ? -EIO : 0;
}

static void
sf_fini(struct sl_thread *t)
{
	__atomic_fetch_add(&sf.finis, 1, __ATOMIC_RELAXED);
}

static void
test_start_failure(void **state)
{
	static const enum sl_stage_kind kinds[] = { SL_STAGE_POOL, SL_STAGE_LOOP };
	struct sl_stage_def def;
	struct sl_stage *st;
	unsigned k;

	for (k = 0; k < SL_ARRAY_LEN(kinds); k++) {
		memset(&sf, 0, sizeof(sf));
		memset(&def, 0, sizeof(def));
		def.name = "failing";
		def.kind = kinds[k];
		def.thread_init = sf_init;
		def.thread_fini = sf_fini;
		def.handle = ho_handle;
		st = sl_stage_create(&def, 3, NULL);
		assert_int_equal(sl_stage_start(st), -EIO);
		/* Every thread ran init; the two that succeeded were stopped again. */
		assert_int_equal(sf.inits, 3);
		assert_int_equal(sf.finis, 2);
		sl_stage_stop(st); /* already stopped: a no-op */
		sl_stage_destroy(st);
	}
}

/* ---------------------------------------------------------------- loop handles */

struct tick {
	uv_timer_t timer;
	unsigned ticks; /* atomic: read by main */
	bool is_leaky;  /* thread_fini forgets to close the timer */
};

static void
tick_cb(uv_timer_t *timer)
{
	struct tick *tk = timer->data;

	__atomic_fetch_add(&tk->ticks, 1, __ATOMIC_RELEASE);
}

static int
tick_init(struct sl_thread *t)
{
	struct tick *tk = sl_stage_arg(sl_thread_stage(t));

	uv_timer_init(sl_thread_loop(t), &tk->timer);
	tk->timer.data = tk;
	uv_timer_start(&tk->timer, tick_cb, 1, 1);
	return 0;
}

static void
tick_fini(struct sl_thread *t)
{
	struct tick *tk = sl_stage_arg(sl_thread_stage(t));

	if (!tk->is_leaky)
		uv_close((uv_handle_t *)&tk->timer, NULL);
}

static const struct sl_stage_def tick_def = {
	.name = "tick",
	.kind = SL_STAGE_LOOP,
	.thread_init = tick_init,
	.handle = ho_handle,
	.thread_fini = tick_fini,
};

static void
test_loop_handles(void **state)
{
	struct tick tk = { .is_leaky = false };
	struct sl_stage *st;

	ho_reset(1, 10);
	st = sl_stage_create(&tick_def, 1, &tk);
	assert_int_equal(sl_stage_start(st), 0);
	sl_send(st, &tev_new(TEV_DATA, 0, 0)->ev);
	assert_true(wait_for(&tk.ticks, 3));
	sl_stage_stop(st);
	assert_int_equal(ho.handled[0], 1);
	sl_stage_destroy(st);
}

/* ---------------------------------------------------------------- gathering */

#define G_TARGETS 3
#define G_ROUNDS  40

/* One sl_gather: each target thread fills its slot; done checks them all. */
struct gq {
	unsigned slot[G_TARGETS]; /* written by target thread i only */
	unsigned sleep_ms;        /* each fn sleeps this long first */
};

static struct {
	unsigned handled[G_TARGETS]; /* target thread i's own count (its private state) */
	unsigned done;               /* atomic: gathers completed (caller thread) */
	unsigned bad;                /* atomic: done saw a slot not filled right */
	unsigned started;            /* atomic: sl_gather calls that returned 0 */
	int bad_caller_rc;           /* sl_gather from main: must fail */
	struct sl_stage *target;
} gt;

static void
gt_handle(struct sl_thread *t, struct sl_event *ev)
{
	gt.handled[sl_thread_index(t)]++;
	tev_free(ev);
}

static void
gt_fn(struct sl_thread *t, unsigned i, void *arg)
{
	struct gq *q = arg;

	if (q->sleep_ms)
		usleep(q->sleep_ms * 1000);
	/* Only this thread touches handled[i]: no lock, as a stage's own state. */
	q->slot[i] = i + 1 + 1000 * gt.handled[i];
	assert_true(sl_thread_stage(t) == gt.target);
}

static void
gt_done(void *arg)
{
	struct gq *q = arg;

	for (unsigned i = 0; i < G_TARGETS; i++)
		if (q->slot[i] == 0 || q->slot[i] % 1000 != i + 1)
			__atomic_fetch_add(&gt.bad, 1, __ATOMIC_RELAXED);
	sl_free(q);
	__atomic_fetch_add(&gt.done, 1, __ATOMIC_RELEASE);
}

static void
gc_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct tev *e = (struct tev *)ev;
	unsigned rounds = e->seq;
	unsigned sleep_ms = e->producer;

	tev_free(ev);
	for (unsigned r = 0; r < rounds; r++) {
		struct gq *q = SL_NEW(q);

		q->sleep_ms = sleep_ms;
		if (sl_gather(gt.target, gt_fn, gt_done, q) == 0)
			__atomic_fetch_add(&gt.started, 1, __ATOMIC_RELAXED);
		else
			sl_free(q);
	}
}

static void
gc_fini(struct sl_thread *t)
{
	sl_gather_drain(5000);
}

static const struct sl_stage_def gt_def = {
	.name = "gtarget",
	.kind = SL_STAGE_POOL,
	.handle = gt_handle,
};

static const struct sl_stage_def gc_def = {
	.name = "gcaller",
	.kind = SL_STAGE_LOOP,
	.peers = (const char *const[]){ "gtarget", NULL },
	.handle = gc_handle,
	.thread_fini = gc_fini,
};

/* Gathers run on every target thread, interleaved with its events, and complete once. */
static void
test_gather(void **state)
{
	struct sl_stage *caller;
	struct gq *q = SL_NEW(q);

	memset(&gt, 0, sizeof(gt));
	gt.target = sl_stage_create(&gt_def, G_TARGETS, NULL);
	caller = sl_stage_create(&gc_def, 1, NULL);
	assert_int_equal(sl_stage_start(gt.target), 0);
	assert_int_equal(sl_stage_start(caller), 0);
	/* Not from a loop stage thread: refused, nothing runs. */
	assert_int_equal(sl_gather(gt.target, gt_fn, gt_done, q), -EINVAL);
	sl_free(q);
	for (unsigned i = 0; i < 30; i++)
		sl_send(gt.target, &tev_new(TEV_DATA, 0, i)->ev);
	sl_send(caller, &tev_new(TEV_START, 0, G_ROUNDS)->ev);
	for (unsigned i = 0; i < 30; i++)
		sl_send(gt.target, &tev_new(TEV_DATA, 0, i)->ev);
	assert_true(wait_for(&gt.done, G_ROUNDS));
	assert_int_equal(__atomic_load_n(&gt.started, __ATOMIC_RELAXED), G_ROUNDS);
	assert_int_equal(__atomic_load_n(&gt.bad, __ATOMIC_RELAXED), 0);
	/* Slow fns still running when the caller stops: its fini drains them. */
	sl_send(caller, &tev_new(TEV_START, 50, 3)->ev);
	while (__atomic_load_n(&gt.started, __ATOMIC_RELAXED) < G_ROUNDS + 3)
		usleep(1000);
	sl_stage_stop(caller);
	assert_int_equal(__atomic_load_n(&gt.done, __ATOMIC_ACQUIRE), G_ROUNDS + 3);
	assert_int_equal(__atomic_load_n(&gt.bad, __ATOMIC_RELAXED), 0);
	sl_stage_stop(gt.target);
	/* The stage's own events were all handled, the gathers never reached handle. */
	assert_int_equal(gt.handled[0] + gt.handled[1] + gt.handled[2], 60);
	sl_stage_destroy(caller);
	sl_stage_destroy(gt.target);
}

/* ---------------------------------------------------------------- assertions (forked) */

/*
 * Run fn in a child with stderr on a pipe; returns its wait status and what
 * it wrote.  The parent has no other thread at this point, so the child may
 * start threads (TSan allows that only after a single-threaded fork).
 */
static int
run_child(void (*fn)(void), char *out, size_t out_size)
{
	int pfd[2], status = 0;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		alarm(20);
		fn();
		_exit(0);
	}
	close(pfd[1]);
	while (len + 1 < out_size && (n = read(pfd[0], out + len, out_size - len - 1)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static unsigned peer_sent; /* atomic, in the child */

static void
peer_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct sl_stage *other;

	if (ev->type != TEV_START) {
		tev_free(ev);
		return;
	}
	/* "b" is declared; "late" too, created after this stage started. */
	sl_send(sl_stage_find("b"), &tev_new(TEV_DATA, 0, 0)->ev);
	sl_send(sl_stage_find("late"), &tev_new(TEV_DATA, 0, 0)->ev);
	__atomic_fetch_add(&peer_sent, 1, __ATOMIC_RELEASE);
	other = sl_stage_find("c");
	tev_free(ev);
	sl_send(other, &tev_new(TEV_DATA, 0, 0)->ev); /* undeclared: aborts */
	__atomic_fetch_add(&peer_sent, 1, __ATOMIC_RELEASE);
}

static void
peer_child(void)
{
	static const char *const a_peers[] = { "b", "late", NULL };
	static const struct sl_stage_def a_def = {
		.name = "a", .kind = SL_STAGE_POOL, .peers = a_peers, .handle = peer_handle
	};
	static const struct sl_stage_def b_def = { .name = "b",
						   .kind = SL_STAGE_POOL,
						   .handle = peer_handle };
	static const struct sl_stage_def c_def = { .name = "c",
						   .kind = SL_STAGE_LOOP,
						   .handle = peer_handle };
	static const struct sl_stage_def late_def = { .name = "late",
						      .kind = SL_STAGE_POOL,
						      .handle = peer_handle };
	struct sl_stage *a, *b, *c, *late;

	a = sl_stage_create(&a_def, 1, NULL);
	b = sl_stage_create(&b_def, 1, NULL);
	c = sl_stage_create(&c_def, 1, NULL);
	if (sl_stage_start(a) != 0 || sl_stage_start(b) != 0 || sl_stage_start(c) != 0)
		_exit(3);
	late = sl_stage_create(&late_def, 1, NULL);
	if (sl_stage_start(late) != 0)
		_exit(3);
	/* Main is no stage thread: it may send anywhere. */
	sl_send(c, &tev_new(TEV_DATA, 0, 0)->ev);
	sl_send(a, &tev_new(TEV_START, 0, 0)->ev);
	sleep(15);
	_exit(__atomic_load_n(&peer_sent, __ATOMIC_ACQUIRE) == 2 ? 4 : 5);
}

static void
test_peers_assert(void **state)
{
	char out[4096];
	int status = run_child(peer_child, out, sizeof(out));

	if (!WIFSIGNALED(status))
		fail_msg("child exited %d instead of aborting; stderr: %s", WEXITSTATUS(status),
			 out);
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(out, "did not declare as a peer"));
	assert_non_null(strstr(out, "assertion failed: !\"send to an undeclared peer\""));
}

static void
leak_child(void)
{
	static struct tick tk = { .is_leaky = true };
	struct sl_stage *st = sl_stage_create(&tick_def, 1, &tk);

	if (sl_stage_start(st) != 0)
		_exit(3);
	sl_stage_stop(st);
	_exit(0);
}

static void
test_loop_leak_asserts(void **state)
{
	char out[4096];
	int status = run_child(leak_child, out, sizeof(out));

	if (!WIFSIGNALED(status))
		fail_msg("child exited %d instead of aborting; stderr: %s", WEXITSTATUS(status),
			 out);
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(out, "tick/0: a timer handle is still open after thread_fini"));
	assert_non_null(strstr(out, "assertion failed: t->loop_leak_cnt == 0"));
}

static int
group_teardown(void **state)
{
	sl_free(ho.seen);
	ho.seen = NULL;
	return 0;
}

#define T_CASE(c)                                            \
	{                                                    \
		c.name, test_handoff, NULL, NULL, (void *)&c \
	}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* Forked first, while this process has no other thread. */
		cmocka_unit_test(test_peers_assert),
		cmocka_unit_test(test_loop_leak_asserts),
		T_CASE(ho_cases[0]),
		T_CASE(ho_cases[1]),
		T_CASE(ho_cases[2]),
		T_CASE(ho_cases[3]),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_batch_end),
		cmocka_unit_test(test_stop_drains),
		cmocka_unit_test(test_reply_to),
		cmocka_unit_test(test_busy_limit),
		cmocka_unit_test(test_own_threads),
		cmocka_unit_test(test_own_reap),
		cmocka_unit_test(test_names_find_foreach),
		cmocka_unit_test(test_start_failure),
		cmocka_unit_test(test_loop_handles),
		cmocka_unit_test(test_gather),
	};

	return cmocka_run_group_tests(tests, NULL, group_teardown);
}
