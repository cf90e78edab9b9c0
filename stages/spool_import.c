/*
 * stages/spool_import.c - the console's `spool import PATH [concurrency]`:
 * bring the messages of another, stopped sluice's spool into this node's.
 *
 * The command itself only checks PATH and opens it as a second spool
 * (spool/spool.h: the same segment format; opening takes its lock file, so
 * a sluiced still running on it is refused).  An import of a big spool
 * takes long and the console session should not wait on it, so the work
 * goes to an import thread started for it, and the answer is "import of
 * PATH started"; the outcome goes to the paniclog and to `spool import
 * status`.  The import thread:
 *   1. runs the spool's own recovery over PATH, with keep_damaged: what it
 *      cannot read (damaged records, unreadable or newer-format files) is
 *      logged, counted as skipped and left where it is, under its name.
 *      It keeps the envelope and location of each live message, not its
 *      content;
 *   2. reads the messages back in batches (IMP_BATCH_MSGS messages or
 *      IMP_BATCH_BYTES of content; `concurrency` batches in flight, 1 by
 *      default) and sends each batch to a spool thread, which appends the
 *      messages with new queue ids and their recipients' statuses (final
 *      ones stay final), commits them in its group commit, writes their
 *      R lines and queues them for delivery like recovered messages;
 *   3. once a batch is durable here, records in PATH that its messages are
 *      finished (a progress record, fdatasync'ed): PATH's segments are
 *      removed as soon as nothing in them is live, as in a recovery;
 *   4. closes PATH and recovers it once more without handing anything on,
 *      which removes the segments that held only that progress and counts
 *      the messages left there;
 *   5. logs "imported N messages from PATH (S skipped: damaged or
 *      unreadable, F failed)".
 * A message leaves PATH only after its copy here is durable, so a crash
 * loses nothing.  A crash between the two steps, or a failure to write the
 * progress into PATH (which stops the import), leaves up to `concurrency`
 * batches of messages in both spools: importing PATH again delivers those
 * twice.  A message that cannot be appended here (failed) stays in PATH.
 *
 * Why a thread of its own: step 1 reads every segment of PATH once, which
 * takes long for a big spool; on a spool thread it would hold up the 250
 * of every SMTP client waiting for that thread's commit, and on a loop
 * thread it would stop the loop.  The appends stay on the spool threads,
 * which own this node's writers, so imported mail shares their group
 * commits and nothing else writes to our spool.  The envelopes of PATH's
 * live messages are kept in memory for the length of the import (start-up
 * recovery keeps whole messages).  A shutdown stops the import at the next
 * batch (sl_spool_stage_import_stop); it waits for step 1 to end, which
 * cannot be interrupted.
 *
 * Threads: sl_spool_stage_import on the control thread (it stats and opens
 * PATH and starts the thread: no scan, no message I/O there); the import
 * thread owns the PATH spool, its message list and the batches; a spool
 * thread calls spool_import_done.  One lock, imp.lock, guards the fields
 * marked so; it is held for a few instructions, never across I/O or while
 * taking another lock.  imp.path, imp.src* and imp.concurrency are written
 * only while no import thread exists.  Parses untrusted input: the files
 * of PATH, through spool/ (every length and CRC is checked there).
 * Ownership: see stages/spool_int.h for the batches.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"
#include "spool/spool.h"
#include "stages/spool_int.h"
#include "stages/stages.h"

#define IMP_BATCH_MSGS      256
#define IMP_BATCH_BYTES     (16u * 1024 * 1024)
#define IMP_MAX_CONCURRENCY 64
#define IMP_SEGMENT_SIZE    (1024u * 1024) /* for the progress written into PATH */

enum imp_phase {
	IMP_IDLE,      /* none has run */
	IMP_SCANNING,  /* recovering PATH */
	IMP_IMPORTING, /* batches */
	IMP_CLEANING,  /* the second recovery of PATH */
	IMP_DONE,      /* result holds the outcome */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a batch is done */
	/* under lock */
	enum imp_phase phase;
	bool is_cancelled;
	time_t started, ended;
	uint64_t found, imported, skipped, failed;
	char result[1024]; /* the outcome, once IMP_DONE */
	/* written only while no import thread exists */
	char *path; /* owned */
	unsigned concurrency;
	struct sl_spool_opts src_opts; /* dir points at path */
	struct sl_stage *spool, *deliver;
	pthread_t thread;
	bool has_thread; /* started, not yet joined */
	/* the import thread's */
	struct sl_spool *src; /* PATH, open */
	struct sl_msg **msgs; /* owned: envelopes of the live messages of PATH */
	size_t msg_cnt, msg_cap;
} imp = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void
imp_add(uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&imp.lock);
	*field += n;
	pthread_mutex_unlock(&imp.lock);
}

static bool
imp_is_cancelled(void)
{
	bool is;

	pthread_mutex_lock(&imp.lock);
	is = imp.is_cancelled;
	pthread_mutex_unlock(&imp.lock);
	return is;
}

static void
imp_set_phase(enum imp_phase phase)
{
	pthread_mutex_lock(&imp.lock);
	imp.phase = phase;
	pthread_mutex_unlock(&imp.lock);
}

void
spool_import_done(struct spool_import_batch *b)
{
	SL_CHECK_OBJ(b, SPOOL_IMPORT_MAGIC);
	pthread_mutex_lock(&imp.lock);
	b->is_done = true;
	pthread_cond_broadcast(&imp.cond);
	pthread_mutex_unlock(&imp.lock);
}

/* Recovery of PATH: one line per damaged record or file it skipped. */
static void
imp_log(const char *line, void *arg)
{
	sl_log_warn("spool import %s: %s", imp.path, line);
}

/* Recovery of PATH hands back a live message: keep its envelope and location. */
static void
imp_found(struct sl_msg *m, void *arg)
{
	sl_msg_clear_content(m);
	sl_buf_free(&m->head); /* its capacity too: a big spool has many envelopes */
	if (imp.msg_cnt == imp.msg_cap) {
		imp.msg_cap = imp.msg_cap ? imp.msg_cap * 2 : 1024;
		imp.msgs = sl_reallocarray(imp.msgs, imp.msg_cap, sizeof(*imp.msgs));
	}
	imp.msgs[imp.msg_cnt++] = m;
	imp_add(&imp.found, 1);
}

/* The second recovery of PATH: count what is left there. */
static void
imp_left(struct sl_msg *m, void *arg)
{
	uint64_t *left = arg;

	(*left)++;
	sl_msg_free(m);
}

static void
imp_batch_free(struct spool_import_batch *b)
{
	for (size_t i = 0; i < b->cnt; i++)
		sl_msg_free(b->items[i].msg);
	sl_free(b->items);
	b->magic = 0;
	sl_free(b);
}

/* Read the next messages of PATH back into a batch (maybe empty: all unreadable). */
static struct spool_import_batch *
imp_batch_fill(size_t *next)
{
	struct spool_import_batch *b = SL_NEW(b);
	uint64_t bytes = 0;

	b->magic = SPOOL_IMPORT_MAGIC;
	b->deliver = imp.deliver;
	b->items = sl_calloc(IMP_BATCH_MSGS, sizeof(*b->items));
	while (*next < imp.msg_cnt && b->cnt < IMP_BATCH_MSGS && bytes < IMP_BATCH_BYTES) {
		struct sl_msg *env = imp.msgs[*next], *m = NULL;
		struct spool_import_item *it;
		int rc;

		imp.msgs[(*next)++] = NULL;
		rc = sl_spool_read(imp.src, &env->loc, &m);
		if (rc == 0 && m->rcpt_cnt != env->rcpt_cnt)
			rc = -EIO;
		if (rc < 0) {
			sl_log_warn(
				"spool import %s: %s cannot be read back: %s; skipped, left there",
				imp.path, env->qid, strerror(-rc));
			imp_add(&imp.skipped, 1);
			sl_msg_free(m);
			sl_msg_free(env);
			continue;
		}
		/* the statuses recovery joined from the progress records, not those first written */
		for (size_t k = 0; k < m->rcpt_cnt; k++)
			m->rcpts[k].status = env->rcpts[k].status;
		it = &b->items[b->cnt++];
		it->msg = m;
		it->from = env->loc;
		memcpy(it->from_qid, env->qid, sizeof(it->from_qid));
		bytes += sl_msg_size(m);
		sl_msg_free(env);
	}
	return b;
}

/*
 * Send up to imp.concurrency batches to the spool threads, wait until they
 * are durable here, and record in PATH that those messages are finished.
 * 0, or -errno when PATH could not be written (reason in why).
 */
static int
imp_round(size_t *next, char *why, size_t why_len)
{
	struct spool_import_batch *batches[IMP_MAX_CONCURRENCY];
	struct sl_spool_writer *w = sl_spool_writer_get(imp.src, 0);
	uint64_t ok_cnt = 0, fail_cnt = 0;
	size_t nb = 0;
	int rc;

	while (nb < imp.concurrency && *next < imp.msg_cnt) {
		struct spool_import_batch *b = imp_batch_fill(next);

		if (b->cnt == 0) {
			imp_batch_free(b);
			continue;
		}
		batches[nb++] = b;
		sl_event_init(&b->ev, SPOOL_EV_IMPORT);
		sl_send(imp.spool, &b->ev);
	}
	pthread_mutex_lock(&imp.lock);
	for (size_t i = 0; i < nb; i++)
		while (!batches[i]->is_done)
			pthread_cond_wait(&imp.cond, &imp.lock);
	pthread_mutex_unlock(&imp.lock);
	for (size_t i = 0; i < nb; i++) {
		for (size_t k = 0; k < batches[i]->cnt; k++) {
			const struct spool_import_item *it = &batches[i]->items[k];

			if (it->result < 0) {
				sl_log_warn("spool import %s: %s not imported: %s; left there",
					    imp.path, it->from_qid, strerror(-it->result));
				fail_cnt++;
				continue;
			}
			rc = sl_spool_progress(w, &it->from, UINT32_MAX, SL_RCPT_DELIVERED);
			if (rc < 0)
				sl_log_err("spool import %s: cannot mark %s finished there: %s",
					   imp.path, it->from_qid, strerror(-rc));
			ok_cnt++;
		}
		imp_batch_free(batches[i]);
	}
	/* durable here first (the batches are answered after the commit), only then gone there */
	rc = sl_spool_commit(w);
	pthread_mutex_lock(&imp.lock);
	imp.imported += ok_cnt;
	imp.failed += fail_cnt;
	pthread_mutex_unlock(&imp.lock);
	if (rc < 0)
		snprintf(why, why_len,
			 "cannot record in %s that the last %" PRIu64
			 " messages were imported (%s): they are queued here and still there; "
			 "importing %s again would deliver them twice",
			 imp.path, ok_cnt, strerror(-rc), imp.path);
	return rc;
}

static void *
imp_main(void *arg)
{
	struct sl_spool_recover_stats st;
	struct sl_spool *again = NULL;
	char why[768] = "", result[sizeof(imp.result)], tail[64] = "";
	size_t next = 0;
	uint64_t left = 0, total;
	bool is_cancelled = false;
	int rc;

	pthread_setname_np(pthread_self(), "spool/import");
	memset(&st, 0, sizeof(st));
	rc = sl_spool_recover(imp.src, imp_found, NULL, imp_log, &st);
	imp_add(&imp.skipped, st.damaged + st.unreadable);
	total = imp.msg_cnt;
	if (rc < 0) {
		snprintf(why, sizeof(why), "cannot read %s: %s", imp.path, strerror(-rc));
		goto out_close;
	}
	sl_log_notice("spool import %s: %" PRIu64 " segments, %" PRIu64
		      " messages to import, %" PRIu64 " finished, %" PRIu64
		      " damaged records or files skipped",
		      imp.path, st.segments, st.messages, st.finished, st.damaged + st.unreadable);
	imp_set_phase(IMP_IMPORTING);
	while (next < imp.msg_cnt) {
		is_cancelled = imp_is_cancelled();
		if (is_cancelled || imp_round(&next, why, sizeof(why)) < 0)
			break;
	}

out_close:
	for (size_t i = next; i < imp.msg_cnt; i++)
		sl_msg_free(imp.msgs[i]);
	sl_free(imp.msgs);
	imp.msgs = NULL;
	imp.msg_cnt = imp.msg_cap = 0;
	sl_spool_close(imp.src);
	imp.src = NULL;
	if (why[0] == '\0' && !is_cancelled) {
		char reason[256] = "";

		imp_set_phase(IMP_CLEANING);
		rc = sl_spool_open(&imp.src_opts, &again, reason, sizeof(reason));
		if (rc == 0)
			rc = sl_spool_recover(again, imp_left, &left, NULL, NULL);
		else
			sl_log_warn("spool import %s: cannot open it again to clean up: %s",
				    imp.path, reason);
		sl_spool_close(again);
	}

	if (left > 0)
		snprintf(tail, sizeof(tail), "; %" PRIu64 " messages left there", left);
	pthread_mutex_lock(&imp.lock);
	if (why[0] != '\0')
		snprintf(result, sizeof(result),
			 "import of %s stopped: %s; imported %" PRIu64 " of %" PRIu64
			 " messages (%" PRIu64 " skipped: damaged or unreadable, %" PRIu64
			 " failed)",
			 imp.path, why, imp.imported, total, imp.skipped, imp.failed);
	else if (is_cancelled)
		snprintf(result, sizeof(result),
			 "import of %s stopped by shutdown: imported %" PRIu64 " of %" PRIu64
			 " messages (%" PRIu64 " skipped: damaged or unreadable, %" PRIu64
			 " failed); the rest stay there",
			 imp.path, imp.imported, total, imp.skipped, imp.failed);
	else
		snprintf(result, sizeof(result),
			 "imported %" PRIu64 " messages from %s (%" PRIu64
			 " skipped: damaged or unreadable, %" PRIu64 " failed)%s",
			 imp.imported, imp.path, imp.skipped, imp.failed, tail);
	memcpy(imp.result, result, sizeof(imp.result));
	imp.ended = time(NULL);
	imp.phase = IMP_DONE;
	pthread_mutex_unlock(&imp.lock);
	if (why[0] != '\0')
		sl_log_err("spool import: %s", result);
	else
		sl_log_notice("spool import: %s", result);
	return NULL;
}

static void
imp_status(char *msg, size_t msg_len)
{
	time_t now = time(NULL);

	pthread_mutex_lock(&imp.lock);
	switch (imp.phase) {
	case IMP_IDLE:
		snprintf(msg, msg_len, "no spool import has run");
		break;
	case IMP_SCANNING:
		snprintf(msg, msg_len,
			 "import of %s running for %llds: reading it, %" PRIu64
			 " messages found so far, %" PRIu64 " skipped",
			 imp.path, (long long)(now - imp.started), imp.found, imp.skipped);
		break;
	case IMP_IMPORTING:
		snprintf(msg, msg_len,
			 "import of %s running for %llds: %" PRIu64 " of %" PRIu64
			 " messages imported, %" PRIu64 " skipped, %" PRIu64 " failed",
			 imp.path, (long long)(now - imp.started), imp.imported, imp.found,
			 imp.skipped, imp.failed);
		break;
	case IMP_CLEANING:
		snprintf(msg, msg_len,
			 "import of %s running for %llds: %" PRIu64
			 " messages imported, removing what is left of it",
			 imp.path, (long long)(now - imp.started), imp.imported);
		break;
	case IMP_DONE:
		snprintf(msg, msg_len, "import of %s finished after %llds: %s", imp.path,
			 (long long)(imp.ended - imp.started), imp.result);
		break;
	}
	pthread_mutex_unlock(&imp.lock);
}

/* Does dir look like a SpoolBase (its lock file, or a segment)?  Not a full check. */
static bool
imp_is_spool(const char *dir)
{
	char *lock = sl_asprintf("%s/lock", dir);
	bool is = access(lock, F_OK) == 0;
	struct dirent *de;
	DIR *d;

	sl_free(lock);
	d = is ? NULL : opendir(dir);
	while (d != NULL && !is && (de = readdir(d)) != NULL)
		is = strncmp(de->d_name, "seg-", 4) == 0;
	if (d != NULL)
		closedir(d);
	return is;
}

/* Check the arguments and PATH; 0, or -1 with the refusal in msg. */
static int
imp_check(int argc, char **argv, unsigned *concurrency, char *msg, size_t msg_len)
{
	const char *path = argv[0], *own = spool_stage_dir();
	struct stat st, ost;
	bool is_running;

	*concurrency = 1;
	if (argc > 2) {
		snprintf(msg, msg_len,
			 "usage: spool import PATH [concurrency] | spool import status");
		return -1;
	}
	if (argc == 2) {
		char *end;
		unsigned long n = strtoul(argv[1], &end, 10);

		if (argv[1][0] < '0' || argv[1][0] > '9' || *end != '\0' || n < 1 ||
		    n > IMP_MAX_CONCURRENCY) {
			snprintf(msg, msg_len, "spool import: concurrency \"%s\" is not 1..%d",
				 argv[1], IMP_MAX_CONCURRENCY);
			return -1;
		}
		*concurrency = (unsigned)n;
	}
	pthread_mutex_lock(&imp.lock);
	is_running = imp.phase != IMP_IDLE && imp.phase != IMP_DONE;
	pthread_mutex_unlock(&imp.lock);
	if (is_running) {
		snprintf(msg, msg_len,
			 "an import of %s is already running; see spool import status", imp.path);
		return -1;
	}
	if (path[0] != '/') {
		snprintf(msg, msg_len, "spool import: %s is not an absolute path", path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		snprintf(msg, msg_len, "spool import: %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(msg, msg_len, "spool import: %s is not a directory", path);
		return -1;
	}
	if (own == NULL || imp.spool == NULL || imp.deliver == NULL) {
		snprintf(msg, msg_len, "spool import: the spool is not running");
		return -1;
	}
	if (stat(own, &ost) == 0 && ost.st_dev == st.st_dev && ost.st_ino == st.st_ino) {
		snprintf(msg, msg_len, "spool import: %s is this node's own spool (SpoolBase)",
			 path);
		return -1;
	}
	if (!imp_is_spool(path)) {
		snprintf(msg, msg_len,
			 "spool import: %s holds no sluice spool (no lock or seg-*.sl)", path);
		return -1;
	}
	return 0;
}

int
sl_spool_stage_import(int argc, char **argv, char *msg, size_t msg_len)
{
	struct sl_spool_opts opts = {
		.backend = "segment",
		.segment_size = IMP_SEGMENT_SIZE,
		.use_fsync = true, /* the progress must be on disk before segments go */
		.writer_cnt = 1,
		.keep_damaged = true,
	};
	struct sl_spool *src = NULL;
	unsigned concurrency;
	char why[512] = "", *path;
	int rc;

	if (argc == 0 || (argc == 1 && strcasecmp(argv[0], "status") == 0)) {
		imp_status(msg, msg_len);
		return 0;
	}
	if (imp.spool == NULL) {
		imp.spool = sl_stage_find("spool");
		imp.deliver = sl_stage_find("deliver");
	}
	if (imp_check(argc, argv, &concurrency, msg, msg_len) < 0)
		return -1;
	if (imp.has_thread) {
		/* the last import is done: its thread has returned or is about to */
		pthread_join(imp.thread, NULL);
		imp.has_thread = false;
	}
	path = sl_strdup(argv[0]);
	opts.dir = path;
	rc = sl_spool_open(&opts, &src, why, sizeof(why));
	if (rc < 0) {
		snprintf(msg, msg_len, "spool import: cannot open %s: %s", path, why);
		sl_free(path);
		return -1;
	}
	sl_free(imp.path);
	imp.path = path;
	imp.src_opts = opts;
	imp.concurrency = concurrency;
	imp.src = src;
	pthread_mutex_lock(&imp.lock);
	imp.phase = IMP_SCANNING;
	imp.is_cancelled = false;
	imp.started = time(NULL);
	imp.ended = 0;
	imp.found = imp.imported = imp.skipped = imp.failed = 0;
	imp.result[0] = '\0';
	pthread_mutex_unlock(&imp.lock);
	rc = pthread_create(&imp.thread, NULL, imp_main, NULL);
	if (rc != 0) {
		sl_spool_close(imp.src);
		imp.src = NULL;
		imp_set_phase(IMP_IDLE);
		snprintf(msg, msg_len, "spool import: cannot start its thread: %s", strerror(rc));
		return -1;
	}
	imp.has_thread = true;
	sl_log_notice("spool import of %s started (concurrency %u)", imp.path, concurrency);
	snprintf(msg, msg_len, "import of %s started", imp.path);
	return 0;
}

void
sl_spool_stage_import_stop(void)
{
	if (!imp.has_thread)
		return;
	pthread_mutex_lock(&imp.lock);
	imp.is_cancelled = true;
	pthread_mutex_unlock(&imp.lock);
	pthread_join(imp.thread, NULL);
	imp.has_thread = false;
	sl_free(imp.path);
	imp.path = NULL;
}
