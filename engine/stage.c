/*
 * engine/stage.c - stages: thread pools and loop threads joined by queues.
 *
 * Every POOL or LOOP thread owns one liburcu wfcqueue (many producers, one
 * consumer, no lock) and a wake-up: a futex word for POOL threads, a
 * uv_async_t for LOOP threads.  A producer wakes the consumer only when its
 * enqueue found the queue empty, and a POOL producer makes no system call at
 * all unless the consumer announced that it sleeps.  Consumers handle at most
 * batch_max events per wake-up, then call batch_end.  This is the only file
 * that calls cds_wfcq_* on stage queues or uv_async_send.
 *
 * Threads: stage threads run the loops below; sl_send* run on any thread;
 * create/start/stop/destroy on the main thread.  stage_lock guards the stage
 * table (create, destroy, find, foreach); a stage's start_lock guards its
 * start handshake and the member slots of an OWN stage (spawn, reap, stop,
 * stats: a reaped member is freed, so nobody reads a slot without it).
 * Order: stage_lock before start_lock; no thread is joined while holding
 * either.  Parses no input.
 * Ownership: a queued event belongs to the queue until a handler gets it; the
 * stage owns its threads (and each LOOP thread's uv_loop_t and async handle);
 * the stage's handles on a loop belong to the stage and must be closed by
 * thread_fini.
 */
#include "config.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <urcu/arch.h>
#include <urcu/wfcqueue.h>
#include <uv.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "engine/rcu.h"
#include "engine/stage.h"

#define SL_STAGE_MAGIC  0x57a6e001u
#define SL_THREAD_MAGIC 0x7e4ead01u
#define STAGE_MAX       64   /* stages alive at once: one bit each in a peer mask */
#define STAGE_OWN_MAX   1024 /* member threads of one OWN stage */
#define STAGE_BATCH_DEF 64
#define STAGE_NAME_MAX  64

/*
 * A queue's futex word.  INIT: no consumer yet, nobody to wake (it looks at
 * its queue when it starts).  AWAKE: a POOL consumer will look again before it
 * sleeps; a LOOP consumer wants uv_async_send.  SLEEPING: a POOL consumer
 * waits on the futex.  CLOSED: the consumer has exited; sending is a bug.
 */
enum stage_qstate {
	STAGE_Q_INIT = 0,
	STAGE_Q_AWAKE,
	STAGE_Q_SLEEPING,
	STAGE_Q_CLOSED,
};

enum stage_state {
	STAGE_CREATED = 0,
	STAGE_STARTED,
	STAGE_STOPPED,
};

struct sl_thread {
	unsigned magic;            /* SL_THREAD_MAGIC */
	struct sl_stage *st;       /* owner */
	unsigned idx;              /* index in st->threads */
	char name[STAGE_NAME_MAX]; /* "<stage>/<i>", or the spawn name */
	pthread_t tid;
	bool has_tid;                        /* pthread_create succeeded: join it */
	bool is_reaping;                     /* OWN: sl_stage_reap joins it; start_lock */
	void (*own_fn)(struct sl_thread *t); /* OWN members */
	void *thread_arg;                    /* sl_stage_spawn's */
	void *data;                          /* sl_thread_set_data; owned by the stage */
	int is_stopping;                     /* atomic: set by sl_stage_stop */
	int init_rc;                         /* thread_init's result, under start_lock */
	char pad0[64];

	/* Producers' cache lines. */
	struct cds_wfcq_tail q_tail;
	uint64_t q_enq; /* atomic: events ever enqueued */
	char pad1[64];

	/* Written by the consumer; producers only read q_state. */
	int32_t q_state; /* atomic futex word, enum stage_qstate */
	int wakers;      /* atomic, LOOP: uv_async_send calls in flight */
	char pad2[64];

	/* The consumer's own lines. */
	struct __cds_wfcq_head q_head;
	uint64_t q_deq;         /* events dequeued; consumer stores, others load */
	uint64_t ops;           /* events handled; consumer stores, others load */
	uint64_t busy_ns;       /* time in handle(); consumer stores, others load */
	int is_busy;            /* inside handle(); consumer stores, others load */
	uv_loop_t loop;         /* LOOP: owned by the thread while it runs */
	uv_async_t async;       /* LOOP: the wake-up handle */
	unsigned loop_leak_cnt; /* LOOP: handles found open at exit */
};

struct sl_stage {
	unsigned magic;                 /* SL_STAGE_MAGIC */
	const struct sl_stage_def *def; /* borrowed; outlives the stage */
	void *arg;                      /* sl_stage_create's, for the stage */
	unsigned id;                    /* slot in stage_tab: bit in peer masks */
	unsigned batch_max;
	int state;          /* enum stage_state; main thread only */
	uint64_t peer_mask; /* resolved at start: 1 << id of each peer */
	/* Owned; POOL/LOOP: thread_cnt, OWN: STAGE_OWN_MAX slots, NULL when free. */
	struct sl_thread **threads;
	unsigned thread_cnt; /* OWN: highest slot used + 1, atomic (grows); fixed otherwise */
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned start_cnt;    /* threads that ran thread_init */
	bool is_own_closed;    /* OWN: no more spawns or reaps */
	unsigned own_reap_cnt; /* OWN: sl_stage_reap calls joining, outside start_lock */
};

static pthread_mutex_t stage_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_stage *stage_tab[STAGE_MAX];   /* by id */
static struct sl_stage *stage_order[STAGE_MAX]; /* creation order */
static unsigned stage_cnt;

static __thread struct sl_thread *stage_self;
/* Round-robin position per destination stage, per sending thread. */
static __thread unsigned stage_rr[STAGE_MAX];

/* ---------------------------------------------------------------- small helpers */

static uint64_t
stage_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
stage_futex_wait(int32_t *word, int32_t val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void
stage_futex_wake(int32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Owner-only statistics: a plain read of our own value, a relaxed store for readers. */
static void
stage_stat_add(uint64_t *stat, uint64_t delta)
{
	__atomic_store_n(stat, *stat + delta, __ATOMIC_RELAXED);
}

static bool
stage_queue_empty(struct sl_thread *t)
{
	return cds_wfcq_empty(&t->q_head, &t->q_tail);
}

/*
 * Wake a LOOP thread unless its queue is closed.  The consumer closes its
 * async handle only when no call is in flight (stage_loop_wait_wakers), so a
 * send never hits a closed loop: it either sees CLOSED here or finishes first.
 */
static void
stage_loop_wake(struct sl_thread *t)
{
	__atomic_fetch_add(&t->wakers, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&t->q_state, __ATOMIC_SEQ_CST) != STAGE_Q_CLOSED)
		uv_async_send(&t->async);
	__atomic_fetch_sub(&t->wakers, 1, __ATOMIC_SEQ_CST);
}

static void
stage_loop_wait_wakers(struct sl_thread *t)
{
	/* A sender is between its check and the end of one write(): brief. */
	while (__atomic_load_n(&t->wakers, __ATOMIC_SEQ_CST) != 0)
		sched_yield();
}

/* Wake a POOL thread if it announced that it sleeps. */
static void
stage_pool_wake(struct sl_thread *t)
{
	int32_t state = STAGE_Q_SLEEPING;

	/* A compare-exchange: never turn CLOSED back into AWAKE. */
	if (__atomic_compare_exchange_n(&t->q_state, &state, STAGE_Q_AWAKE, false, __ATOMIC_SEQ_CST,
					__ATOMIC_SEQ_CST))
		stage_futex_wake(&t->q_state);
}

/* ---------------------------------------------------------------- sending */

static bool
stage_def_names_peer(const struct sl_stage_def *def, const char *name)
{
	const char *const *p;
	bool is_peer = false;

	for (p = def->peers; p != NULL && *p != NULL && !is_peer; p++)
		is_peer = strcmp(*p, name) == 0;
	return is_peer;
}

static void
stage_check_peer(const struct sl_stage *to)
{
	const struct sl_thread *self = stage_self;

	/*
	 * Threads that are not stage threads (main, config) may send anywhere.
	 * A peer created after our start is not in the mask: ask by name.
	 */
	if (self == NULL || (self->st->peer_mask & (1ull << to->id)) != 0 ||
	    stage_def_names_peer(self->st->def, to->def->name))
		goto out;
	sl_log_crit("stage %s (thread %s) sent an event to %s, which it did not declare as a "
		    "peer",
		    self->st->def->name, self->name, to->def->name);
	SL_ASSERT(!"send to an undeclared peer");
out:
	return;
}

static void
stage_enqueue(struct sl_thread *t, struct sl_event *ev)
{
	bool was_nonempty;
	int32_t state;

	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	SL_CHECK_OBJ(ev, SL_EVENT_MAGIC);
	SL_ASSERT(t->st->def->kind != SL_STAGE_OWN);
	__atomic_fetch_add(&t->q_enq, 1, __ATOMIC_RELAXED);
	cds_wfcq_node_init(&ev->qnode);
	SL_TSAN_RELEASE(ev);
	was_nonempty = cds_wfcq_enqueue(&t->q_head, &t->q_tail, &ev->qnode);
	/* ev belongs to the consumer now: do not touch it again. */
	if (was_nonempty)
		goto out; /* whoever made the queue non-empty did the waking */
	/*
	 * Dekker with the consumer: we pushed, then read its state; it wrote
	 * its state, then looks at the queue.  One of us sees the other.  The
	 * xchg inside the enqueue is already a full barrier; cmm_smp_mb (not
	 * a C11 fence, which TSan rejects) states the need.
	 */
	cmm_smp_mb();
	state = __atomic_load_n(&t->q_state, __ATOMIC_SEQ_CST);
	switch (state) {
	case STAGE_Q_INIT:
		break;
	case STAGE_Q_AWAKE:
		if (t->st->def->kind == SL_STAGE_LOOP)
			stage_loop_wake(t);
		break;
	case STAGE_Q_SLEEPING:
		stage_pool_wake(t);
		break;
	default:
		sl_log_crit("event sent to %s after it stopped", t->name);
		SL_ASSERT(state != STAGE_Q_CLOSED);
	}
out:
	return;
}

void
sl_event_init(struct sl_event *ev, unsigned type)
{
	ev->magic = SL_EVENT_MAGIC;
	ev->type = type;
	ev->reply_to = stage_self;
	cds_wfcq_node_init(&ev->qnode);
}

void
sl_send(struct sl_stage *to, struct sl_event *ev)
{
	unsigned cnt, i;

	SL_CHECK_OBJ(to, SL_STAGE_MAGIC);
	SL_CHECK_OBJ(ev, SL_EVENT_MAGIC);
	SL_ASSERT(to->def->kind != SL_STAGE_OWN);
	stage_check_peer(to);
	cnt = to->thread_cnt;
	i = stage_rr[to->id]++ % cnt;
	stage_enqueue(to->threads[i], ev);
}

void
sl_send_thread(struct sl_thread *to, struct sl_event *ev)
{
	SL_CHECK_OBJ(to, SL_THREAD_MAGIC);
	SL_CHECK_OBJ(ev, SL_EVENT_MAGIC);
	stage_check_peer(to->st);
	stage_enqueue(to, ev);
}

bool
sl_stage_busy(const struct sl_stage *st)
{
	struct sl_stage_stats s;
	bool is_busy = false;

	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	if (st->def->queue_limit != 0 && st->def->kind != SL_STAGE_OWN) {
		sl_stage_stats(st, &s);
		is_busy = s.queue_depth >= (uint64_t)st->def->queue_limit * s.thread_cnt;
	}
	return is_busy;
}

/* ---------------------------------------------------------------- consuming */

/*
 * Gathering (sl_gather): one call event per thread of the target stage; the
 * last fn to finish wakes the caller's loop through the gather's own async
 * handle.  The caller keeps its gathers in a per-thread list for
 * sl_gather_drain.  The gather is freed by whichever lets go last: each
 * target thread (after its fn, and for the last one its wake-up) and the
 * caller (once the handle is closed) hold a reference.
 */
#define STAGE_EV_GATHER 0x5e1e0001u /* far above the stages' own event types */

struct stage_gather {
	uv_async_t async; /* on the caller's loop */
	unsigned pending; /* fns not yet returned; atomic */
	unsigned refs;    /* target threads still to let go, plus the caller; atomic */
	void (*fn)(struct sl_thread *t, unsigned i, void *arg);
	void (*done)(void *arg);
	void *arg;
	struct stage_gather *next; /* the caller's list */
};

struct stage_gather_ev {
	struct sl_event ev;
	struct stage_gather *g;
};

static __thread struct stage_gather *stage_gathers; /* the calling thread's, in flight */

static void
stage_gather_unref(struct stage_gather *g)
{
	if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
		sl_free(g);
}

static void
stage_gather_run(struct sl_thread *t, struct sl_event *ev)
{
	struct stage_gather *g = ((struct stage_gather_ev *)ev)->g;

	sl_free(ev);
	g->fn(t, sl_thread_index(t), g->arg);
	/* Release what fn wrote; the last one wakes the caller. */
	if (__atomic_sub_fetch(&g->pending, 1, __ATOMIC_ACQ_REL) == 0)
		uv_async_send(&g->async);
	stage_gather_unref(g);
}

static void
stage_gather_free_cb(uv_handle_t *h)
{
	stage_gather_unref(h->data);
}

static void
stage_gather_unlink(struct stage_gather *g)
{
	for (struct stage_gather **pp = &stage_gathers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			return;
		}
	}
}

static void
stage_gather_cb(uv_async_t *async)
{
	struct stage_gather *g = async->data;

	/* Acquire what every fn wrote (pairs with their decrement). */
	if (__atomic_load_n(&g->pending, __ATOMIC_ACQUIRE) != 0)
		return; /* cannot happen: only the last fn sends */
	stage_gather_unlink(g);
	g->done(g->arg);
	uv_close((uv_handle_t *)&g->async, stage_gather_free_cb);
}

int
sl_gather(struct sl_stage *st, void (*fn)(struct sl_thread *t, unsigned i, void *arg),
	  void (*done)(void *arg), void *arg)
{
	struct sl_thread *self = stage_self;
	struct stage_gather *g;
	unsigned cnt;
	int rc;

	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	if (self == NULL || self->st->def->kind != SL_STAGE_LOOP || st->def->kind == SL_STAGE_OWN)
		return -EINVAL;
	cnt = st->thread_cnt;
	if (cnt == 0)
		return -ESRCH;
	g = SL_NEW(g);
	rc = uv_async_init(&self->loop, &g->async, stage_gather_cb);
	if (rc != 0) {
		sl_free(g);
		return rc;
	}
	g->async.data = g;
	g->fn = fn;
	g->done = done;
	g->arg = arg;
	g->pending = cnt;
	g->refs = cnt + 1;
	g->next = stage_gathers;
	stage_gathers = g;
	for (unsigned i = 0; i < cnt; i++) {
		struct stage_gather_ev *e = SL_NEW(e);

		sl_event_init(&e->ev, STAGE_EV_GATHER);
		e->g = g;
		stage_enqueue(st->threads[i], &e->ev);
	}
	return 0;
}

void
sl_gather_drain(unsigned timeout_ms)
{
	struct timespec ts = { 0, 1000 * 1000 };

	while (stage_gathers != NULL) {
		struct stage_gather *g = stage_gathers;
		unsigned waited = 0;

		stage_gathers = g->next;
		/* Until every target thread let go: the last one's wake-up is done too. */
		while (__atomic_load_n(&g->refs, __ATOMIC_ACQUIRE) != 1 && waited < timeout_ms) {
			nanosleep(&ts, NULL);
			waited++;
		}
		if (__atomic_load_n(&g->refs, __ATOMIC_ACQUIRE) != 1) {
			sl_log_crit("a console query is still running after %u ms; left behind",
				    timeout_ms);
			continue;
		}
		g->done(g->arg);
		uv_close((uv_handle_t *)&g->async, stage_gather_free_cb);
	}
}

/* Dequeue the next event, or NULL; *is_blocked when a producer is mid-push. */
static struct sl_event *
stage_dequeue(struct sl_thread *t, bool can_block, bool *is_blocked)
{
	struct cds_wfcq_node *node;
	struct sl_event *ev;

	/*
	 * The blocking variant may sleep a few milliseconds waiting for a
	 * preempted producer to link its node; a loop thread must not.
	 */
	if (can_block)
		node = __cds_wfcq_dequeue_blocking(&t->q_head, &t->q_tail);
	else
		node = __cds_wfcq_dequeue_nonblocking(&t->q_head, &t->q_tail);
	*is_blocked = node == CDS_WFCQ_WOULDBLOCK;
	if (node == NULL || node == CDS_WFCQ_WOULDBLOCK) {
		ev = NULL;
	} else {
		ev = caa_container_of(node, struct sl_event, qnode);
		SL_TSAN_ACQUIRE(ev);
		SL_CHECK_OBJ(ev, SL_EVENT_MAGIC);
		__atomic_store_n(&t->q_deq, t->q_deq + 1, __ATOMIC_RELAXED);
	}
	return ev;
}

/*
 * Handle up to batch_max events, then call batch_end if any were handled.
 * Returns how many; *is_more when the batch stopped before the queue was
 * seen empty.
 */
static unsigned
stage_drain(struct sl_thread *t, bool can_block, bool *is_more)
{
	const struct sl_stage_def *def = t->st->def;
	unsigned n = 0;
	uint64_t t0, t1;
	struct sl_event *ev;
	bool is_blocked = false;

	*is_more = false;
	while (n < t->st->batch_max) {
		ev = stage_dequeue(t, can_block, &is_blocked);
		if (ev == NULL)
			break;
		__atomic_store_n(&t->is_busy, 1, __ATOMIC_RELAXED);
		t0 = stage_now_ns();
		if (ev->type == STAGE_EV_GATHER)
			stage_gather_run(t, ev);
		else
			def->handle(t, ev);
		t1 = stage_now_ns();
		__atomic_store_n(&t->is_busy, 0, __ATOMIC_RELAXED);
		stage_stat_add(&t->ops, 1);
		stage_stat_add(&t->busy_ns, t1 - t0);
		n++;
	}
	if (n > 0 && def->batch_end != NULL)
		def->batch_end(t);
	*is_more = is_blocked || (n == t->st->batch_max && !stage_queue_empty(t));
	return n;
}

/*
 * The queue was seen empty while stopping: mark it closed, then look once
 * more (Dekker with stage_enqueue).  False if an event slipped in: drain on.
 */
static bool
stage_close_queue(struct sl_thread *t)
{
	bool is_closed;

	__atomic_store_n(&t->q_state, STAGE_Q_CLOSED, __ATOMIC_SEQ_CST);
	is_closed = stage_queue_empty(t);
	if (!is_closed)
		__atomic_store_n(&t->q_state, STAGE_Q_AWAKE, __ATOMIC_SEQ_CST);
	return is_closed;
}

static void
stage_pool_run(struct sl_thread *t)
{
	bool is_more;

	for (;;) {
		if (stage_drain(t, true, &is_more) > 0 || is_more)
			continue;
		if (__atomic_load_n(&t->is_stopping, __ATOMIC_SEQ_CST)) {
			if (stage_close_queue(t))
				break;
			continue;
		}
		/* Announce the sleep, then look again (Dekker with stage_enqueue). */
		__atomic_store_n(&t->q_state, STAGE_Q_SLEEPING, __ATOMIC_SEQ_CST);
		if (!stage_queue_empty(t) || __atomic_load_n(&t->is_stopping, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&t->q_state, STAGE_Q_AWAKE, __ATOMIC_SEQ_CST);
			continue;
		}
		while (__atomic_load_n(&t->q_state, __ATOMIC_SEQ_CST) == STAGE_Q_SLEEPING)
			stage_futex_wait(&t->q_state, STAGE_Q_SLEEPING);
	}
}

static void
stage_async_cb(uv_async_t *async)
{
	struct sl_thread *t = async->data;
	const struct sl_stage_def *def = t->st->def;
	bool is_more;

	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	stage_drain(t, false, &is_more);
	if (!is_more && __atomic_load_n(&t->is_stopping, __ATOMIC_SEQ_CST))
		is_more = !stage_close_queue(t);
	if (is_more) {
		/* Stopped early (or an event slipped in): yield, then resume. */
		uv_async_send(&t->async);
	} else if (__atomic_load_n(&t->q_state, __ATOMIC_SEQ_CST) == STAGE_Q_CLOSED) {
		if (def->thread_fini != NULL)
			def->thread_fini(t);
		stage_loop_wait_wakers(t);
		uv_close((uv_handle_t *)&t->async, NULL);
		uv_stop(&t->loop);
	}
}

static void
stage_walk_leak(uv_handle_t *h, void *arg)
{
	struct sl_thread *t = arg;

	if (uv_is_closing(h))
		return;
	sl_log_crit("%s: a %s handle is still open after thread_fini", t->name,
		    uv_handle_type_name(uv_handle_get_type(h)));
	t->loop_leak_cnt++;
}

/* After the async handle is closed: every handle must be closing, then done. */
static void
stage_loop_finish(struct sl_thread *t)
{
	int rc;

	uv_walk(&t->loop, stage_walk_leak, t);
	SL_ASSERT(t->loop_leak_cnt == 0);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&t->loop);
	SL_ASSERT(rc == 0);
}

/* ---------------------------------------------------------------- threads */

static void
stage_thread_enter(struct sl_thread *t)
{
	char name[16];
	size_t len = strlen(t->name);

	stage_self = t;
	/* The kernel keeps 15 characters: cut the rest. */
	if (len > sizeof(name) - 1)
		len = sizeof(name) - 1;
	memcpy(name, t->name, len);
	name[len] = '\0';
	pthread_setname_np(pthread_self(), name);
	sl_rcu_register_thread();
}

static void
stage_thread_leave(struct sl_thread *t)
{
	sl_counter_thread_exit();
	sl_rcu_unregister_thread();
	stage_self = NULL;
}

/* Tell sl_stage_start how thread_init went. */
static void
stage_report_init(struct sl_thread *t, int rc)
{
	struct sl_stage *st = t->st;

	pthread_mutex_lock(&st->start_lock);
	t->init_rc = rc;
	st->start_cnt++;
	pthread_cond_broadcast(&st->start_cond);
	pthread_mutex_unlock(&st->start_lock);
}

/*
 * After a failed thread_init: wait for sl_stage_start to stop the stage
 * before tearing down.  Loops are then only ever closed after every loop of
 * the stage was created, which keeps descriptor reuse ordered (libuv closes
 * with a raw syscall that ThreadSanitizer does not see).
 */
static void
stage_wait_stop(struct sl_thread *t)
{
	struct sl_stage *st = t->st;

	pthread_mutex_lock(&st->start_lock);
	while (!__atomic_load_n(&t->is_stopping, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&st->start_cond, &st->start_lock);
	pthread_mutex_unlock(&st->start_lock);
}

static void *
stage_pool_main(void *arg)
{
	struct sl_thread *t = arg;
	const struct sl_stage_def *def = t->st->def;
	int rc;

	stage_thread_enter(t);
	rc = def->thread_init != NULL ? def->thread_init(t) : 0;
	if (rc != 0)
		goto fail_init;
	stage_report_init(t, 0);
	stage_pool_run(t);
	if (def->thread_fini != NULL)
		def->thread_fini(t);
	goto out;
fail_init:
	/* Closed before reporting: sl_stage_start then sees it and sends no wake-up. */
	__atomic_store_n(&t->q_state, STAGE_Q_CLOSED, __ATOMIC_SEQ_CST);
	stage_report_init(t, rc);
	stage_wait_stop(t);
out:
	stage_thread_leave(t);
	return NULL;
}

static void *
stage_loop_main(void *arg)
{
	struct sl_thread *t = arg;
	const struct sl_stage_def *def = t->st->def;
	int rc;

	stage_thread_enter(t);
	rc = uv_loop_init(&t->loop);
	SL_ASSERT(rc == 0);
	rc = uv_async_init(&t->loop, &t->async, stage_async_cb);
	SL_ASSERT(rc == 0);
	t->async.data = t;
	/* From here producers wake us; anything queued before start is seen
	 * by the first callback, which the send below guarantees. */
	__atomic_store_n(&t->q_state, STAGE_Q_AWAKE, __ATOMIC_SEQ_CST);
	rc = def->thread_init != NULL ? def->thread_init(t) : 0;
	if (rc != 0)
		goto fail_init;
	stage_report_init(t, 0);
	uv_async_send(&t->async);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	goto out;
fail_init:
	/* Closed before reporting: sl_stage_start then sees it and sends no wake-up. */
	__atomic_store_n(&t->q_state, STAGE_Q_CLOSED, __ATOMIC_SEQ_CST);
	stage_report_init(t, rc);
	stage_wait_stop(t);
	stage_loop_wait_wakers(t);
	uv_close((uv_handle_t *)&t->async, NULL);
out:
	stage_loop_finish(t);
	stage_thread_leave(t);
	return NULL;
}

static void *
stage_own_main(void *arg)
{
	struct sl_thread *t = arg;

	stage_thread_enter(t);
	t->own_fn(t);
	stage_thread_leave(t);
	return NULL;
}

static struct sl_thread *
stage_thread_new(struct sl_stage *st, unsigned idx, const char *name)
{
	struct sl_thread *t = SL_NEW(t);

	t->magic = SL_THREAD_MAGIC;
	t->st = st;
	t->idx = idx;
	if (name != NULL)
		snprintf(t->name, sizeof(t->name), "%s", name);
	else
		snprintf(t->name, sizeof(t->name), "%s/%u", st->def->name, idx);
	__cds_wfcq_init(&t->q_head, &t->q_tail);
	t->q_state = STAGE_Q_INIT;
	return t;
}

static void
stage_thread_free(struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	/* An event left here would leak: stop producers before consumers. */
	SL_ASSERT(t->st->def->kind == SL_STAGE_OWN || stage_queue_empty(t));
	t->magic = 0;
	sl_free(t);
}

/* Ask one thread to stop and wake it if needed. */
static void
stage_thread_signal_stop(struct sl_thread *t)
{
	/* Dekker again: the consumer announces its sleep, then reads is_stopping. */
	__atomic_store_n(&t->is_stopping, 1, __ATOMIC_SEQ_CST);
	switch (t->st->def->kind) {
	case SL_STAGE_POOL:
		stage_pool_wake(t);
		break;
	case SL_STAGE_LOOP:
		stage_loop_wake(t);
		break;
	case SL_STAGE_OWN:
		break;
	}
}

/* ---------------------------------------------------------------- stages */

struct sl_stage *
sl_stage_create(const struct sl_stage_def *def, unsigned thread_cnt, void *arg)
{
	struct sl_stage *st;
	unsigned i, id;

	SL_ASSERT(def != NULL && def->name != NULL);
	SL_ASSERT(strlen(def->name) < STAGE_NAME_MAX - 12);
	SL_ASSERT(def->kind == SL_STAGE_OWN || (thread_cnt > 0 && def->handle != NULL));
	st = SL_NEW(st);
	st->magic = SL_STAGE_MAGIC;
	st->def = def;
	st->arg = arg;
	st->batch_max = def->batch_max != 0 ? def->batch_max : STAGE_BATCH_DEF;
	st->state = STAGE_CREATED;
	pthread_mutex_init(&st->start_lock, NULL);
	pthread_cond_init(&st->start_cond, NULL);
	if (def->kind == SL_STAGE_OWN) {
		st->threads = sl_calloc(STAGE_OWN_MAX, sizeof(*st->threads));
	} else {
		st->threads = sl_calloc(thread_cnt, sizeof(*st->threads));
		for (i = 0; i < thread_cnt; i++)
			st->threads[i] = stage_thread_new(st, i, NULL);
		st->thread_cnt = thread_cnt;
	}

	pthread_mutex_lock(&stage_lock);
	for (i = 0; i < stage_cnt; i++)
		SL_ASSERT(strcmp(stage_order[i]->def->name, def->name) != 0);
	SL_ASSERT(stage_cnt < STAGE_MAX);
	for (id = 0; stage_tab[id] != NULL; id++)
		continue;
	st->id = id;
	stage_tab[id] = st;
	stage_order[stage_cnt++] = st;
	pthread_mutex_unlock(&stage_lock);
	return st;
}

/* Peers by name to a mask of stage ids; names not created yet are looked up on send. */
static void
stage_resolve_peers(struct sl_stage *st)
{
	const char *const *p;
	unsigned i;

	st->peer_mask = 0;
	pthread_mutex_lock(&stage_lock);
	for (p = st->def->peers; p != NULL && *p != NULL; p++) {
		for (i = 0; i < stage_cnt; i++) {
			if (strcmp(stage_order[i]->def->name, *p) == 0)
				st->peer_mask |= 1ull << stage_order[i]->id;
		}
	}
	pthread_mutex_unlock(&stage_lock);
}

static void
stage_join_all(struct sl_stage *st)
{
	unsigned i, cnt = __atomic_load_n(&st->thread_cnt, __ATOMIC_ACQUIRE);

	/* An OWN stage is closed by now: its slots no longer change. */
	for (i = 0; i < cnt; i++)
		if (st->threads[i] != NULL)
			stage_thread_signal_stop(st->threads[i]);
	/* Threads whose thread_init failed wait here (stage_wait_stop). */
	pthread_mutex_lock(&st->start_lock);
	pthread_cond_broadcast(&st->start_cond);
	pthread_mutex_unlock(&st->start_lock);
	for (i = 0; i < cnt; i++) {
		if (st->threads[i] == NULL)
			continue;
		if (st->threads[i]->has_tid)
			pthread_join(st->threads[i]->tid, NULL);
		st->threads[i]->has_tid = false;
	}
}

int
sl_stage_start(struct sl_stage *st)
{
	void *(*main_fn)(void *);
	unsigned i, started = 0;
	int rc = 0;

	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	SL_ASSERT(st->state == STAGE_CREATED);
	stage_resolve_peers(st);
	st->state = STAGE_STARTED;
	if (st->def->kind == SL_STAGE_OWN)
		goto out;
	main_fn = st->def->kind == SL_STAGE_POOL ? stage_pool_main : stage_loop_main;
	for (i = 0; i < st->thread_cnt; i++) {
		rc = -pthread_create(&st->threads[i]->tid, NULL, main_fn, st->threads[i]);
		if (rc != 0)
			break;
		st->threads[i]->has_tid = true;
		started++;
	}
	pthread_mutex_lock(&st->start_lock);
	while (st->start_cnt < started)
		pthread_cond_wait(&st->start_cond, &st->start_lock);
	for (i = 0; i < started && rc == 0; i++)
		rc = st->threads[i]->init_rc;
	pthread_mutex_unlock(&st->start_lock);
	if (rc != 0)
		goto fail_threads;
	goto out;

fail_threads:
	sl_log_err("stage %s: starting its threads failed: %s", st->def->name, strerror(-rc));
	stage_join_all(st);
	st->state = STAGE_STOPPED;
out:
	return rc;
}

void
sl_stage_stop(struct sl_stage *st)
{
	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	if (st->state != STAGE_STARTED)
		goto out;
	if (st->def->kind == SL_STAGE_OWN) {
		/* No spawn or reap from here; one already joining finishes first. */
		pthread_mutex_lock(&st->start_lock);
		st->is_own_closed = true;
		while (st->own_reap_cnt > 0)
			pthread_cond_wait(&st->start_cond, &st->start_lock);
		pthread_mutex_unlock(&st->start_lock);
	}
	stage_join_all(st);
	st->state = STAGE_STOPPED;
out:
	return;
}

void
sl_stage_destroy(struct sl_stage *st)
{
	unsigned i;

	if (st == NULL)
		goto out;
	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	SL_ASSERT(st->state != STAGE_STARTED);
	pthread_mutex_lock(&stage_lock);
	for (i = 0; stage_order[i] != st; i++)
		SL_ASSERT(i + 1 < stage_cnt);
	memmove(&stage_order[i], &stage_order[i + 1], (stage_cnt - i - 1) * sizeof(*stage_order));
	stage_cnt--;
	stage_tab[st->id] = NULL;
	pthread_mutex_unlock(&stage_lock);
	for (i = 0; i < st->thread_cnt; i++)
		if (st->threads[i] != NULL)
			stage_thread_free(st->threads[i]);
	sl_free(st->threads);
	pthread_cond_destroy(&st->start_cond);
	pthread_mutex_destroy(&st->start_lock);
	st->magic = 0;
	sl_free(st);
out:
	return;
}

struct sl_stage *
sl_stage_find(const char *name)
{
	struct sl_stage *found = NULL;
	unsigned i;

	pthread_mutex_lock(&stage_lock);
	for (i = 0; i < stage_cnt && found == NULL; i++) {
		if (strcmp(stage_order[i]->def->name, name) == 0)
			found = stage_order[i];
	}
	pthread_mutex_unlock(&stage_lock);
	return found;
}

void
sl_stage_foreach(void (*fn)(struct sl_stage *st, void *arg), void *arg)
{
	unsigned i;

	pthread_mutex_lock(&stage_lock);
	for (i = 0; i < stage_cnt; i++)
		fn(stage_order[i], arg);
	pthread_mutex_unlock(&stage_lock);
}

int
sl_stage_spawn(struct sl_stage *st, const char *name, void (*fn)(struct sl_thread *t),
	       void *thread_arg, struct sl_thread **thread_out)
{
	struct sl_thread *t = NULL;
	unsigned cnt, slot;
	int rc = 0;

	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	SL_ASSERT(st->def->kind == SL_STAGE_OWN);
	SL_ASSERT(fn != NULL && name != NULL);
	pthread_mutex_lock(&st->start_lock);
	cnt = st->thread_cnt;
	if (st->state != STAGE_STARTED || st->is_own_closed) {
		rc = -ESHUTDOWN;
		goto out;
	}
	/* The lowest free slot: one that sl_stage_reap released, or a new one. */
	for (slot = 0; slot < cnt && st->threads[slot] != NULL; slot++)
		continue;
	if (slot == STAGE_OWN_MAX) {
		rc = -ENOSPC;
		goto out;
	}
	t = stage_thread_new(st, slot, name);
	t->own_fn = fn;
	t->thread_arg = thread_arg;
	rc = -pthread_create(&t->tid, NULL, stage_own_main, t);
	if (rc != 0)
		goto fail_create;
	t->has_tid = true;
	st->threads[slot] = t;
	if (slot == cnt)
		__atomic_store_n(&st->thread_cnt, cnt + 1, __ATOMIC_RELEASE);
	if (thread_out != NULL)
		*thread_out = t;
	goto out;

fail_create:
	t->magic = 0;
	sl_free(t);
out:
	pthread_mutex_unlock(&st->start_lock);
	return rc;
}

int
sl_stage_reap(struct sl_stage *st, struct sl_thread *t)
{
	int rc = 0;

	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	SL_ASSERT(st->def->kind == SL_STAGE_OWN && t->st == st && t != stage_self);
	pthread_mutex_lock(&st->start_lock);
	if (st->is_own_closed) {
		rc = -ESHUTDOWN;
		goto out;
	}
	SL_ASSERT(st->threads[t->idx] == t && t->has_tid && !t->is_reaping);
	t->is_reaping = true;
	st->own_reap_cnt++;
	/* Join without the lock: spawns, stats and the stop go on meanwhile. */
	pthread_mutex_unlock(&st->start_lock);
	pthread_join(t->tid, NULL);
	pthread_mutex_lock(&st->start_lock);
	t->has_tid = false;
	st->threads[t->idx] = NULL;
	st->own_reap_cnt--;
	pthread_cond_broadcast(&st->start_cond); /* a stop may wait for us */
	stage_thread_free(t);
out:
	pthread_mutex_unlock(&st->start_lock);
	return rc;
}

/* ---------------------------------------------------------------- accessors */

struct sl_thread *
sl_thread_self(void)
{
	return stage_self;
}

struct sl_stage *
sl_thread_stage(const struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	return t->st;
}

unsigned
sl_thread_index(const struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	return t->idx;
}

const char *
sl_thread_name(const struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	return t->name;
}

uv_loop_t *
sl_thread_loop(struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	SL_ASSERT(t->st->def->kind == SL_STAGE_LOOP);
	return &t->loop;
}

void *
sl_thread_arg(const struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	return t->thread_arg;
}

bool
sl_thread_stopping(const struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	return __atomic_load_n(&t->is_stopping, __ATOMIC_ACQUIRE) != 0;
}

void *
sl_thread_data(const struct sl_thread *t)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	return t->data;
}

void
sl_thread_set_data(struct sl_thread *t, void *data)
{
	SL_CHECK_OBJ(t, SL_THREAD_MAGIC);
	t->data = data;
}

void *
sl_stage_arg(const struct sl_stage *st)
{
	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	return st->arg;
}

const char *
sl_stage_name(const struct sl_stage *st)
{
	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	return st->def->name;
}

unsigned
sl_stage_thread_cnt(const struct sl_stage *st)
{
	SL_CHECK_OBJ(st, SL_STAGE_MAGIC);
	return __atomic_load_n(&st->thread_cnt, __ATOMIC_ACQUIRE);
}

struct sl_thread *
sl_stage_thread(struct sl_stage *st, unsigned i)
{
	struct sl_thread *t;

	SL_ASSERT(i < sl_stage_thread_cnt(st));
	if (st->def->kind != SL_STAGE_OWN)
		return st->threads[i];
	pthread_mutex_lock(&st->start_lock);
	t = st->threads[i];
	pthread_mutex_unlock(&st->start_lock);
	return t;
}

void
sl_stage_stats(const struct sl_stage *st, struct sl_stage_stats *out)
{
	const struct sl_thread *t;
	uint64_t deq;
	unsigned i, cnt = sl_stage_thread_cnt(st);
	bool is_own = st->def->kind == SL_STAGE_OWN;

	memset(out, 0, sizeof(*out));
	/*
	 * An OWN member may be reaped (freed) meanwhile: read its slots
	 * locked.  The lock is not part of the stage's value: casting the
	 * const away is how a const reader takes it.
	 */
	if (is_own)
		pthread_mutex_lock((pthread_mutex_t *)&st->start_lock);
	for (i = 0; i < cnt; i++) {
		t = st->threads[i];
		if (t == NULL)
			continue;
		out->thread_cnt++;
		/* Dequeued first: the enqueue count read after it is never smaller. */
		deq = __atomic_load_n(&t->q_deq, __ATOMIC_ACQUIRE);
		out->queue_depth += __atomic_load_n(&t->q_enq, __ATOMIC_ACQUIRE) - deq;
		out->ops += __atomic_load_n(&t->ops, __ATOMIC_RELAXED);
		out->busy_ns += __atomic_load_n(&t->busy_ns, __ATOMIC_RELAXED);
		out->busy_cnt += __atomic_load_n(&t->is_busy, __ATOMIC_RELAXED) != 0;
	}
	if (is_own)
		pthread_mutex_unlock((pthread_mutex_t *)&st->start_lock);
}
