/*
 * engine/stage.h - stages: named thread pools joined by lock-free queues.
 *
 * A stage is a table entry (struct sl_stage_def): a name, a kind, the peers
 * it may send to, and callbacks.  The runtime gives each of its threads one
 * inbound queue (liburcu wfcqueue: many producers, one consumer, no lock) and
 * a wake-up:
 *   SL_STAGE_POOL  plain threads that sleep (futex) until work arrives and
 *                  drain their queue in bounded batches;
 *   SL_STAGE_LOOP  libuv loop threads; work arrives through the queue plus
 *                  uv_async_send, and the stage adds its own handles (sockets,
 *                  timers) to the thread's loop in thread_init;
 *   SL_STAGE_OWN   the runtime starts no threads; the stage makes its own with
 *                  sl_stage_spawn() (accept threads waiting for connections)
 *                  and may end one before the stage stops with sl_stage_reap().
 *
 * Events are typed structs that start with struct sl_event (made by the
 * sending module's constructors).  sl_send() transfers ownership: afterwards
 * the sender never touches the event.  Sending to a stage that is not in the
 * sender's declared peers asserts (a stage that sends to itself declares
 * itself too).  Queues have soft limits: producers ask sl_stage_busy() and
 * push back upstream (stop reading, answer 4xx) instead of buffering without
 * bound.
 *
 * Threads: sl_stage_create/start/stop/destroy from the main thread only;
 * sl_send*, sl_stage_busy and the accessors from any thread.  Every stage
 * thread is registered with RCU, has its own counter slots (folded when it
 * exits) and is named "<stage>/<i>" (cut to 15 characters for ps).  At most
 * 64 stages exist at once.
 */
#ifndef SL_ENGINE_STAGE_H
#define SL_ENGINE_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu/wfcqueue.h>
#include <uv.h>

#define SL_EVENT_MAGIC 0x5e1e7e47u

/* Common header of every event; embed it first in the event struct. */
struct sl_event {
	unsigned magic;             /* SL_EVENT_MAGIC while alive */
	unsigned type;              /* stage-defined discriminator */
	struct sl_thread *reply_to; /* thread that wants the answer, or NULL */
	struct cds_wfcq_node qnode; /* private to engine/stage.c */
};

/* Initialise the header: magic, type, reply_to = calling stage thread (or NULL). */
void sl_event_init(struct sl_event *ev, unsigned type);

enum sl_stage_kind {
	SL_STAGE_POOL,
	SL_STAGE_LOOP,
	SL_STAGE_OWN,
};

struct sl_stage;
struct sl_thread;

struct sl_stage_def {
	const char *name; /* short: "spool"; threads are named "<name>/<i>" */
	enum sl_stage_kind kind;
	unsigned queue_limit;     /* per-thread depth at which sl_stage_busy() says yes; 0: none */
	unsigned batch_max;       /* events handled per wake-up before yielding; 0: 64 */
	const char *const *peers; /* NULL-terminated stage names this stage may send to */
	/* On the new thread before any event; for LOOP the loop exists.  0 or -errno. */
	int (*thread_init)(struct sl_thread *t);
	/* One event; the handler owns it (frees it or sends it on). */
	void (*handle)(struct sl_thread *t, struct sl_event *ev);
	/* After handle() calls of one wake-up: a batch boundary (e.g. group commit). */
	void (*batch_end)(struct sl_thread *t);
	/* On the thread when stopping, after its queue is drained. */
	void (*thread_fini)(struct sl_thread *t);
};

/*
 * Make a stage with `thread_cnt` threads (ignored for SL_STAGE_OWN) and an
 * opaque `arg` for its callbacks.  The def must outlive the stage.  Stage
 * names are unique (asserted).  Nothing runs until sl_stage_start(), but the
 * queues exist: events sent before it wait for the threads.
 */
struct sl_stage *sl_stage_create(const struct sl_stage_def *def, unsigned thread_cnt, void *arg);

/*
 * Resolve def->peers and start the threads; returns when each has run
 * thread_init.  0, or the first thread_init error (then every thread that
 * started is stopped again, and the stage counts as stopped).  A peer name
 * that names no stage yet is looked up by name when sent to.
 */
int sl_stage_start(struct sl_stage *st);

/*
 * Stop: each thread finishes the events already queued, runs thread_fini and
 * exits; OWN threads are told through sl_thread_stopping() and joined (after
 * any sl_stage_reap already waiting for one has returned).
 * Returns when all have exited.  Stop producers before their consumers:
 * sending to a thread that has exited asserts.  A LOOP thread_fini must
 * close (uv_close) every handle the stage put on the loop; the runtime then
 * closes its own, runs the loop until all close callbacks ran, and asserts
 * that no handle was left open.  Stopping a stage that is not running is a
 * no-op.
 */
void sl_stage_stop(struct sl_stage *st);

/* Free a stage that is stopped or was never started; asserts that no event
 * is left in its queues.  NULL is fine. */
void sl_stage_destroy(struct sl_stage *st);

/* The stage named `name`, or NULL. */
struct sl_stage *sl_stage_find(const char *name);

/*
 * Hand `ev` to one thread of stage `to` (round-robin per sending thread).
 * Asserts that the calling stage declared `to` as a peer (threads that are
 * not stage threads, like main, may send anywhere).  Never blocks.
 */
void sl_send(struct sl_stage *to, struct sl_event *ev);

/* Hand `ev` to one particular thread (usually ev->reply_to).  Same rules. */
void sl_send_thread(struct sl_thread *to, struct sl_event *ev);

/*
 * True when the queues of `st` hold at least queue_limit events per thread
 * on average; always false without a limit and for OWN stages.  Approximate.
 */
bool sl_stage_busy(const struct sl_stage *st);

/*
 * SL_STAGE_OWN: start a member thread running fn(t) (named `name`, at most
 * 15 chars shown by ps).  It belongs to `st` for peers and counters, and
 * must return soon after sl_thread_stopping(t) becomes true (the stage may
 * also interrupt a blocking call, e.g. shutdown() a listening socket).
 * Its index (sl_thread_index) is the lowest slot free: one that
 * sl_stage_reap released is used again.  *thread_out, unless NULL, gets
 * the member (the engine's; valid until it is reaped or the stage
 * destroyed).  Between sl_stage_start() and sl_stage_stop(), from the main
 * or config thread.  0, -ESHUTDOWN (not running), -ENOSPC (1024 members at
 * once) or -errno.
 */
int sl_stage_spawn(struct sl_stage *st, const char *name, void (*fn)(struct sl_thread *t),
		   void *thread_arg, struct sl_thread **thread_out);

/*
 * SL_STAGE_OWN: end one member before the stage stops.  The stage first
 * makes t's fn return by its own means (a flag of its own and a wake-up;
 * sl_thread_stopping(t) stays false); this waits until t has exited, then
 * frees t and releases its slot for a later sl_stage_spawn.  From the
 * thread that spawns (never t itself), once per member; t must not wait
 * for anything the caller holds.  0, or -ESHUTDOWN when sl_stage_stop has
 * begun: then the stop joins t, which stays valid until sl_stage_destroy.
 */
int sl_stage_reap(struct sl_stage *st, struct sl_thread *t);

/* The calling thread's stage thread, or NULL for other threads. */
struct sl_thread *sl_thread_self(void);
struct sl_stage *sl_thread_stage(const struct sl_thread *t);
unsigned sl_thread_index(const struct sl_thread *t);
const char *sl_thread_name(const struct sl_thread *t);
uv_loop_t *sl_thread_loop(struct sl_thread *t); /* LOOP kind only */
void *sl_thread_arg(const struct sl_thread *t); /* sl_stage_spawn's thread_arg */
bool sl_thread_stopping(const struct sl_thread *t);
/* Per-thread slot for the stage's own state (owned by the stage). */
void *sl_thread_data(const struct sl_thread *t);
void sl_thread_set_data(struct sl_thread *t, void *data);
void *sl_stage_arg(const struct sl_stage *st);
const char *sl_stage_name(const struct sl_stage *st);
/* Threads of a POOL or LOOP stage; for an OWN stage, the highest slot index
 * in use + 1 (a slot that sl_stage_reap released reads NULL). */
unsigned sl_stage_thread_cnt(const struct sl_stage *st);
struct sl_thread *sl_stage_thread(struct sl_stage *st, unsigned i);

/* Figures for the console `threads` command; summed over the stage's threads. */
struct sl_stage_stats {
	unsigned thread_cnt;  /* OWN: members not reaped */
	unsigned busy_cnt;    /* threads inside handle() right now */
	uint64_t queue_depth; /* events queued, not yet handled */
	uint64_t ops;         /* events handled since start */
	uint64_t busy_ns;     /* time spent in handle() since start */
};
void sl_stage_stats(const struct sl_stage *st, struct sl_stage_stats *out);

/* Call fn for every stage in creation order (console, SNMP). */
void sl_stage_foreach(void (*fn)(struct sl_stage *st, void *arg), void *arg);

/*
 * Gathering (console queries): run fn(t, i, arg) on every thread i of the
 * POOL or LOOP stage `st`, each in that thread between two of its events
 * (so fn may read and change the thread's own state; the stage's handle
 * never sees it, also while the stage is quiescing), then done(arg) once on
 * the calling thread's loop after every fn returned.  What the fns wrote
 * (each its own slot of arg) is visible to done.  Call from a LOOP stage
 * thread; `st` need not be a declared peer, but it must stop after the
 * calling stage, whose thread_fini calls sl_gather_drain().  0, or -errno
 * (nothing runs).
 */
int sl_gather(struct sl_stage *st, void (*fn)(struct sl_thread *t, unsigned i, void *arg),
	      void (*done)(void *arg), void *arg);
/*
 * From the calling stage's thread_fini: wait for its gathers still running
 * (up to `timeout_ms`), call their done, and close their handles.  A
 * gather that did not finish in time is reported and left (its memory is
 * not freed: a thread may still write to it).
 */
void sl_gather_drain(unsigned timeout_ms);

#endif /* SL_ENGINE_STAGE_H */
