/*
 * stages/spool.c - the spool stage: group commit between the client and its 250.
 *
 * Each spool thread owns one spool writer (spool/spool.h).  It appends
 * every message that reaches it in a batch (the stage runtime drains its
 * queue in bounded batches), then at the batch boundary commits them all
 * with one fdatasync, writes their mainlog reception lines and sends each
 * back to the protocol thread that is holding its client: only now may the
 * client see 250.  With _unsafe_spool the answer goes back right after the
 * append, before the sync (and the daemon says so at start).
 *
 * Compaction: after each commit the thread looks for sealed segments of
 * its writer whose live messages fill less than a quarter of what was
 * written to them (a few long-deferred messages pinning a whole segment)
 * and copies at most SPOOL_COMPACT_ROUND bytes of them forward into the
 * active segment, then commits again, so the old segment goes once the
 * copies are durable (sl_spool_compact; a crash at any point leaves one
 * copy or both, and recovery joins them).  Reads that hold the old loc
 * (delivery reading a body back) are followed to the copy by the spool.
 * When a round copied something the thread sends itself a compaction
 * event and goes on after the events already queued, so a large backlog
 * is moved in bounded rounds between group commits.  A segment's live
 * share only falls when a commit finishes messages, so checking after
 * commits (and once at start, for what recovery found) misses nothing.
 *
 * `spool import` (stages/spool_import.c) sends batches of messages read
 * from another spool: they are appended and committed in the same group as
 * everything else, and only after that commit sent to delivery and
 * reported back to the import thread (never before, even with
 * _unsafe_spool: the import removes its source copy on that report).
 *
 * Threads: sl_spool_stage_open/close on the main thread; the spool threads
 * own their writer and their pending lists.  Reads spool files only in
 * recovery, through spool/ (which checks every length and CRC).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "spool/spool.h"
#include "stages/eclog.h"
#include "stages/events.h"
#include "stages/spool_int.h"
#include "stages/stages.h"

/* Compaction: a sealed segment whose live bytes are under this share of it is copied from. */
#define SPOOL_COMPACT_RATIO 0.25
/* Bytes copied forward per round (between two group commits). */
#define SPOOL_COMPACT_ROUND (1024u * 1024)

/* The spool thread's own event: go on compacting (struct spool_compact_ev). */
struct spool_compact_ev {
	struct sl_event ev; /* SPOOL_EV_COMPACT */
};

struct spool_thread {
	struct sl_spool_writer *w;
	struct sl_thread *t;
	bool is_dirty;           /* progress recorded since the last commit */
	bool is_appended;        /* appended since the last commit */
	bool wants_compact;      /* run a compaction round at the batch end */
	bool has_compact_ev;     /* a SPOOL_EV_COMPACT is on its way to this thread */
	struct sl_msg **pending; /* appended, waiting for the commit; owned */
	uint64_t *pending_seq;   /* owned: each one's append number (writer's `appended`) */
	size_t pending_cnt;
	size_t pending_cap;
	struct spool_import_batch **imports; /* appended, waiting for the commit; not owned */
	size_t import_cnt;
	size_t import_cap;
};

static struct sl_spool *spool_store;
static char *spool_dir;                   /* SpoolBase as configured */
static struct sl_msg **spool_recovered_v; /* recovered at open, handed to delivery at start */
static size_t spool_recovered_cnt;
static bool spool_is_unsafe;
static unsigned spool_ctr_msgs;
static unsigned spool_ctr_commits;
static unsigned spool_ctr_errors;
static unsigned spool_ctr_syncs;     /* fdatasync calls on segments */
static unsigned spool_ctr_dir_syncs; /* fsync calls on SpoolBase */
static unsigned spool_ctr_committed; /* messages made durable by a commit */
static unsigned spool_ctr_early;     /* answered 250 before their commit (_unsafe_spool) */
static unsigned spool_ctr_copied;    /* messages copied forward by compaction */

static void
spool_recovered(struct sl_msg *m, void *arg)
{
	uint64_t *cnt = arg;

	/* Kept until the delivery stage runs (sl_spool_stage_requeue). */
	spool_recovered_v = sl_reallocarray(spool_recovered_v, spool_recovered_cnt + 1,
					    sizeof(*spool_recovered_v));
	spool_recovered_v[spool_recovered_cnt++] = m;
	(*cnt)++;
}

void
spool_to_deliver(struct sl_stage *deliver, struct sl_msg *m)
{
	const char *domain = m->rcpt_cnt ? m->rcpts[0].addr + m->rcpts[0].domain_off : "";

	sl_event_init(&m->ev, SL_MSG_EV_QUEUED);
	sl_send_thread(
		sl_stage_thread(deliver, sl_deliver_owner(domain, sl_stage_thread_cnt(deliver))),
		&m->ev);
}

void
sl_spool_stage_requeue(struct sl_stage *deliver)
{
	for (size_t i = 0; i < spool_recovered_cnt; i++)
		spool_to_deliver(deliver, spool_recovered_v[i]);
	sl_free(spool_recovered_v);
	spool_recovered_v = NULL;
	spool_recovered_cnt = 0;
}

static void
spool_recover_log(const char *line, void *arg)
{
	sl_log_warn("spool recovery: %s", line);
}

unsigned
sl_spool_thread_cnt(const struct sl_conf_snapshot *s)
{
	size_t pos = 0;
	const struct sl_conf_block *b;

	/* ThreadPool "Spool" { Concurrency = N } sets the writers; one keeps commits grouped. */
	while ((b = sl_conf_block_next(s, "ThreadPool", &pos)) != NULL) {
		if (b->name != NULL && strcasecmp(b->name, "Spool") == 0) {
			const union sl_conf_val *v =
				sl_conf_block_get(s, b, SL_OPT_THREADPOOL_CONCURRENCY);

			return v != NULL && v->i > 0 ? (unsigned)v->i : 1;
		}
	}
	return 1;
}

int
sl_spool_stage_open(const struct sl_conf_snapshot *s, char *why, size_t why_len)
{
	struct sl_spool_opts opts = {
		.dir = sl_conf_str(s, SL_OPT_SPOOLBASE),
		.backend = "segment",
		.use_fsync = sl_conf_bool(s, SL_OPT_FORCE_FSYNC),
		.writer_cnt = sl_spool_thread_cnt(s),
		.segment_size = (uint64_t)sl_conf_int(s, SL_OPT_SPOOL_SEGMENT_SIZE),
	};
	struct sl_spool_recover_stats st;
	uint64_t cnt = 0;
	char reason[256] = "";
	int rc;

	rc = sl_spool_open(&opts, &spool_store, reason, sizeof(reason));
	if (rc < 0) {
		snprintf(why, why_len, "cannot open SpoolBase %s: %s", opts.dir, reason);
		return -1;
	}
	spool_is_unsafe = sl_conf_bool(s, SL_OPT_UNSAFE_SPOOL);
	if (spool_is_unsafe)
		sl_log_warn("_unsafe_spool is on: clients get 250 before their message is on "
			    "disk; a crash loses what was not yet synced");
	if (!opts.use_fsync)
		sl_log_warn("Force_Fsync is off: accepted mail is written but not synced; a "
			    "power loss can lose it");
	memset(&st, 0, sizeof(st));
	rc = sl_spool_recover(spool_store, spool_recovered, &cnt, spool_recover_log, &st);
	if (rc < 0) {
		snprintf(why, why_len, "cannot recover SpoolBase %s: %s", opts.dir, strerror(-rc));
		sl_spool_close(spool_store);
		spool_store = NULL;
		return -1;
	}
	sl_log_notice("spool %s: %" PRIu64 " segments, %" PRIu64 " messages to deliver, %" PRIu64
		      " finished, %" PRIu64 " damaged records skipped, %" PRIu64 " torn bytes",
		      opts.dir, st.segments, st.messages, st.finished, st.damaged, st.torn_bytes);
	spool_ctr_msgs = sl_counter_register("spool.messages");
	spool_ctr_commits = sl_counter_register("spool.commits");
	spool_ctr_errors = sl_counter_register("spool.errors");
	spool_ctr_syncs = sl_counter_register("spool.syncs");
	spool_ctr_dir_syncs = sl_counter_register("spool.dir_syncs");
	spool_ctr_committed = sl_counter_register("spool.committed");
	spool_ctr_early = sl_counter_register("spool.acked_before_sync");
	spool_ctr_copied = sl_counter_register("spool.copied");
	spool_dir = sl_strdup(opts.dir);
	return 0;
}

struct sl_spool *
sl_spool_stage_store(void)
{
	return spool_store;
}

const char *
spool_stage_dir(void)
{
	return spool_dir;
}

void
sl_spool_stage_close(void)
{
	for (size_t i = 0; i < spool_recovered_cnt; i++)
		sl_msg_free(spool_recovered_v[i]);
	sl_free(spool_recovered_v);
	spool_recovered_v = NULL;
	spool_recovered_cnt = 0;
	sl_spool_close(spool_store);
	spool_store = NULL;
	sl_free(spool_dir);
	spool_dir = NULL;
}

/*
 * The message is durable (result 0) or not (-errno): tell its protocol
 * thread.  `seq` is its append number: a 250 for a message the writer's
 * last good commit did not cover goes out before its sync (_unsafe_spool),
 * and is counted as such.
 */
static void
spool_answer(struct spool_thread *st, struct sl_msg *m, uint64_t seq, int result)
{
	m->spool_result = result;
	if (result == 0) {
		struct sl_spool_stats ws;

		sl_spool_writer_stats(st->w, &ws);
		if (seq > ws.durable)
			sl_counter_add(spool_ctr_early, 1);
		sl_eclog_reception(m, m->conn_id);
		sl_counter_add(spool_ctr_msgs, 1);
	} else {
		sl_counter_add(spool_ctr_errors, 1);
	}
	m->ev.type = SL_MSG_EV_SPOOLED;
	sl_send_thread(m->ev.reply_to, &m->ev);
}

/* Another compaction round after the events queued now (at most one such event in flight). */
static void
spool_compact_later(struct spool_thread *st)
{
	struct spool_compact_ev *ce;

	if (st->has_compact_ev)
		return;
	ce = SL_NEW(ce);
	sl_event_init(&ce->ev, SPOOL_EV_COMPACT);
	st->has_compact_ev = true;
	sl_send_thread(st->t, &ce->ev);
}

/* sl_spool_commit, counting what it did. */
static int
spool_commit(struct spool_thread *st)
{
	struct sl_spool_stats a, b;
	int rc;

	sl_spool_writer_stats(st->w, &a);
	rc = sl_spool_commit(st->w);
	sl_spool_writer_stats(st->w, &b);
	if (b.commits > a.commits)
		sl_counter_add(spool_ctr_commits, (int64_t)(b.commits - a.commits));
	sl_counter_add(spool_ctr_syncs, (int64_t)(b.syncs - a.syncs));
	sl_counter_add(spool_ctr_dir_syncs, (int64_t)(b.dir_syncs - a.dir_syncs));
	sl_counter_add(spool_ctr_committed, (int64_t)(b.durable - a.durable));
	return rc;
}

/*
 * One bounded round: copy live messages out of mostly-dead segments, make
 * the copies durable (the old segments go in that commit's sweep), and
 * come back for more if there may be more.
 */
static void
spool_compact(struct spool_thread *st)
{
	int n, rc;

	n = sl_spool_compact(st->w, SPOOL_COMPACT_RATIO, SPOOL_COMPACT_ROUND, NULL, NULL);
	if (n < 0) {
		/* the copies wait for the next commit's check: nothing is lost */
		sl_log_err("spool: compaction cannot copy a message forward: %s", strerror(-n));
		return;
	}
	if (n == 0)
		return;
	sl_counter_add(spool_ctr_copied, n);
	rc = spool_commit(st);
	if (rc < 0) {
		/* the moves are undone; the old copies stay where they were */
		sl_log_err("spool: commit of %d messages copied forward failed: %s", n,
			   strerror(-rc));
		return;
	}
	sl_log_debug("spool: %d messages copied forward out of mostly-dead segments", n);
	spool_compact_later(st);
}

static int
spool_thread_init(struct sl_thread *t)
{
	struct spool_thread *st = SL_NEW(st);

	st->w = sl_spool_writer_get(spool_store, sl_thread_index(t));
	SL_ASSERT(st->w != NULL);
	st->t = t;
	sl_thread_set_data(t, st);
	/* what recovery found may be worth compacting before anything else happens */
	spool_compact_later(st);
	return 0;
}

/* deliver -> spool: a recipient (or the whole message) is final. */
static void
spool_progress(struct sl_thread *t, struct spool_thread *st, struct sl_spool_progress_ev *p)
{
	unsigned owner = sl_spool_owner(spool_store, &p->loc);
	int rc;

	if (owner != sl_thread_index(t)) {
		/* Progress goes to the writer that owns the message's segment. */
		sl_send_thread(sl_stage_thread(sl_thread_stage(t), owner), &p->ev);
		return;
	}
	rc = sl_spool_progress(st->w, &p->loc, p->rcpt_idx, p->status);
	if (rc < 0 && rc != -ENOENT)
		sl_log_err("spool: cannot record progress for a message at %u/%u: %s",
			   p->loc.writer, p->loc.segment, strerror(-rc));
	st->is_dirty = true;
	sl_free(p);
}

/* import -> spool: append a batch; it is answered after the group commit (spool_batch_end). */
static void
spool_import_append(struct spool_thread *st, struct spool_import_batch *b)
{
	SL_CHECK_OBJ(b, SPOOL_IMPORT_MAGIC);
	for (size_t i = 0; i < b->cnt; i++) {
		struct spool_import_item *it = &b->items[i];

		it->result = sl_spool_append(st->w, it->msg);
		if (it->result < 0)
			sl_log_err("spool import: cannot append %s: %s", it->from_qid,
				   strerror(-it->result));
	}
	if (st->import_cnt == st->import_cap) {
		st->import_cap = st->import_cap ? st->import_cap * 2 : 8;
		st->imports = sl_reallocarray(st->imports, st->import_cap, sizeof(*st->imports));
	}
	st->imports[st->import_cnt++] = b;
}

/* The commit of the group returned `rc`: the durable imports go to delivery. */
static void
spool_import_answer(struct spool_import_batch *b, int rc)
{
	for (size_t i = 0; i < b->cnt; i++) {
		struct spool_import_item *it = &b->items[i];

		if (it->result == 0)
			it->result = rc;
		if (it->result == 0) {
			sl_eclog_reception(it->msg, it->msg->conn_id);
			sl_counter_add(spool_ctr_msgs, 1);
			sl_log_debug("spool import: %s is now %s", it->from_qid, it->msg->qid);
			spool_to_deliver(b->deliver, it->msg);
		} else {
			sl_counter_add(spool_ctr_errors, 1);
			sl_msg_free(it->msg);
		}
		it->msg = NULL;
	}
	spool_import_done(b);
}

static void
spool_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct spool_thread *st = sl_thread_data(t);
	struct sl_msg *m = (struct sl_msg *)ev;
	struct sl_spool_stats ws;
	int rc;

	if (ev->type == SPOOL_EV_COMPACT) {
		st->has_compact_ev = false;
		st->wants_compact = true;
		sl_free(ev);
		return;
	}
	if (ev->type == SL_EV_SPOOL_PROGRESS) {
		spool_progress(t, st, (struct sl_spool_progress_ev *)ev);
		return;
	}
	if (ev->type == SPOOL_EV_IMPORT) {
		spool_import_append(st, (struct spool_import_batch *)ev);
		return;
	}
	SL_ASSERT(ev->type == SL_MSG_EV_SPOOL);
	SL_CHECK_OBJ(m, SL_MSG_MAGIC);
	rc = sl_spool_append(st->w, m);
	if (rc < 0) {
		sl_log_err("spool: cannot append a message from %s: %s", m->peer_ip, strerror(-rc));
		spool_answer(st, m, 0, rc);
		return;
	}
	st->is_appended = true;
	sl_spool_writer_stats(st->w, &ws);
	if (spool_is_unsafe) {
		spool_answer(st, m, ws.appended, 0);
		return;
	}
	if (st->pending_cnt == st->pending_cap) {
		st->pending_cap = st->pending_cap ? st->pending_cap * 2 : 64;
		st->pending = sl_reallocarray(st->pending, st->pending_cap, sizeof(*st->pending));
		st->pending_seq =
			sl_reallocarray(st->pending_seq, st->pending_cap, sizeof(*st->pending_seq));
	}
	st->pending_seq[st->pending_cnt] = ws.appended;
	st->pending[st->pending_cnt++] = m;
}

/*
 * The batch boundary: one commit (one fdatasync) for every message appended
 * since the last, then the answers, then (the clients served) a bounded
 * round of compaction.
 */
static void
spool_batch_end(struct sl_thread *t)
{
	struct spool_thread *st = sl_thread_data(t);
	bool wants_compact = st->wants_compact;
	int rc;

	st->wants_compact = false;
	if (st->pending_cnt > 0 || st->import_cnt > 0 || st->is_appended || st->is_dirty) {
		st->is_dirty = false;
		st->is_appended = false;
		rc = spool_commit(st);
		if (rc < 0)
			sl_log_err("spool: commit of %zu messages failed: %s", st->pending_cnt,
				   strerror(-rc));
		for (size_t i = 0; i < st->pending_cnt; i++)
			spool_answer(st, st->pending[i], st->pending_seq[i], rc);
		st->pending_cnt = 0;
		for (size_t i = 0; i < st->import_cnt; i++)
			spool_import_answer(st->imports[i], rc);
		st->import_cnt = 0;
		wants_compact = wants_compact || rc == 0;
	}
	if (wants_compact && !sl_thread_stopping(t))
		spool_compact(st);
}

static void
spool_thread_fini(struct sl_thread *t)
{
	struct spool_thread *st = sl_thread_data(t);

	spool_batch_end(t);
	sl_free(st->pending);
	sl_free(st->pending_seq);
	sl_free(st->imports);
	sl_free(st);
}

const struct sl_stage_def sl_spool_stage = {
	.name = "spool",
	.kind = SL_STAGE_POOL,
	.batch_max = 256,
	.peers = (const char *const[]){ "protocol", "deliver", "spool", NULL },
	.thread_init = spool_thread_init,
	.handle = spool_handle,
	.batch_end = spool_batch_end,
	.thread_fini = spool_thread_fini,
};
