/*
 * engine/log.c - diagnostics and stream lines, written by one logger thread.
 *
 * A caller formats its line into a record and appends it to a wait-free
 * queue (liburcu wfcqueue, many producers, one consumer); the logger thread
 * drains the queue in batches and writes each destination's lines with one
 * writev().  Callers never take a lock or touch a file while the logger runs;
 * before sl_log_start() and after sl_log_stop() lines are written
 * synchronously instead.  The fatal paths (sl_fatal, sl__assert_fail) drain
 * the queue themselves, then write and die.
 *
 * Threads: producers on any thread; the logger thread; flush, reopen and the
 * fatal paths on the calling thread.  Lock: log_wlock serialises everything
 * that dequeues or writes (the logger's batches, flush, reopen, synchronous
 * writes, stream opening) and guards the file table; producers in queued
 * mode never take it.  It is the only lock here.
 * Parses no input; text is copied as given except CR/LF, which become spaces
 * so one event stays one line.  Ownership: a record belongs to the queue from
 * submit until the writer frees it; the file table owns paths and fds.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <urcu/arch.h>
#include <urcu/wfcqueue.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"

#define LOG_REC_MAGIC    0x10ec0bedu
#define LOG_STREAM_MAX   64
#define LOG_QUEUE_LIMIT  100000 /* queued lines before INFO/DEBUG are dropped */
#define LOG_BATCH_MAX    256    /* records per writev pass */
#define LOG_LINE_MAX     8192   /* diagnostic text beyond this is cut */
#define LOG_PREFIX_MAX   48     /* "[Thu 26 Nov 2026 13:45:01] [warning] " */
#define LOG_DEST_DIAG    (-1)
#define LOG_DEST_STDERR  (-2) /* a diagnostic kept out of the paniclog (log_errors = false) */
#define LOG_LOCK_WAIT_NS 2000000000L /* fatal path: how long to wait for the writer */

enum log_qstate {
	LOG_AWAKE = 0,
	LOG_SLEEPING = 1,
};

struct log_rec {
	unsigned magic;             /* LOG_REC_MAGIC while queued */
	int dest;                   /* LOG_DEST_DIAG, LOG_DEST_STDERR or a stream id */
	size_t len;                 /* bytes of text, newline included */
	struct cds_wfcq_node qnode; /* queue link */
	char text[];
};

struct log_file {
	char *path;    /* owned; NULL when unused */
	int fd;        /* -1 when closed */
	unsigned mode; /* creation mode, reused by reopen */
};

int sl_log_level_max = SL_LOG_INFO;

/* The queue: producers write the tail line, the consumer the head line. */
static struct {
	struct __cds_wfcq_head head;
	char pad0[64];
	struct cds_wfcq_tail tail;
	uint64_t depth;   /* atomic: queued, not yet written */
	uint64_t dropped; /* atomic: diagnostics dropped over the limit */
	char pad1[64];
	int32_t state;   /* atomic futex word: enum log_qstate */
	int is_started;  /* atomic: producers queue instead of writing */
	int is_stopping; /* atomic: the logger thread exits when idle */
} log_q = { .tail = { &log_q.head.node } };

static pthread_t log_thread;

/* Everything below is guarded by log_wlock. */
static pthread_mutex_t log_wlock = PTHREAD_MUTEX_INITIALIZER;
static __thread bool log_holds_wlock;
static struct log_file log_panic = { NULL, -1, 0 };
static bool log_to_stderr = true;
static struct log_file log_streams[LOG_STREAM_MAX];
static int log_stream_cnt;      /* atomic: read by producers to check ids */
static int log_panic_is_on = 1; /* atomic: sl_log_paniclog_set() */
static time_t log_note_last;

static const char *const log_level_names[] = {
	[SL_LOG_CRIT] = "crit",     [SL_LOG_ERR] = "err",   [SL_LOG_WARNING] = "warning",
	[SL_LOG_NOTICE] = "notice", [SL_LOG_INFO] = "info", [SL_LOG_DEBUG] = "debug",
};

const char *
sl_log_level_name(int level)
{
	bool is_known = level >= 0 && level < (int)SL_ARRAY_LEN(log_level_names);

	return is_known ? log_level_names[level] : "?";
}

int
sl_log_level_parse(const char *name)
{
	int i, found = -1;

	for (i = 0; i < (int)SL_ARRAY_LEN(log_level_names) && found < 0; i++) {
		if (strcasecmp(name, log_level_names[i]) == 0)
			found = i;
	}
	return found;
}

void
sl_log_level_set(int level)
{
	SL_ASSERT(level >= SL_LOG_CRIT && level <= SL_LOG_DEBUG);
	__atomic_store_n(&sl_log_level_max, level, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- formatting */

/*
 * "[Thu 26 Nov 2026 13:45:01] [err] " in UTC.  Computed by hand: gmtime_r()
 * takes glibc's timezone lock, which has no place on a logging fast path.
 */
static size_t
log_fmt_prefix(char *buf, size_t size, int level)
{
	static const char wday[7][4] = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" };
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timespec ts;
	int64_t secs, days, era, doe, yoe, doy, mp, y, m, d;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	secs = ts.tv_sec;
	days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	secs -= days * 86400;
	/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm). */
	era = (days + 719468 >= 0 ? days + 719468 : days + 719468 - 146096) / 146097;
	doe = days + 719468 - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y = yoe + era * 400 + (m <= 2);
	n = snprintf(buf, size, "[%s %02d %s %04d %02d:%02d:%02d] [%s] ",
		     wday[((days % 7) + 7) % 7], (int)d, mon[m - 1], (int)y, (int)(secs / 3600),
		     (int)(secs / 60 % 60), (int)(secs % 60), sl_log_level_name(level));
	SL_ASSERT(n > 0 && (size_t)n < size);
	return (size_t)n;
}

/* One event is one line: CR and LF inside the text become spaces. */
static void
log_flatten(char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\n' || s[i] == '\r')
			s[i] = ' ';
	}
}

static struct log_rec *
log_rec_vformat(int level, const char *fmt, va_list ap)
{
	char prefix[LOG_PREFIX_MAX], small[512];
	char *body = small;
	size_t prefix_len;
	struct log_rec *r;
	va_list aq;
	int n;

	prefix_len = log_fmt_prefix(prefix, sizeof(prefix), level);
	va_copy(aq, ap);
	n = vsnprintf(small, sizeof(small), fmt, aq);
	va_end(aq);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(small)) {
		if (n > LOG_LINE_MAX)
			n = LOG_LINE_MAX;
		body = sl_malloc((size_t)n + 1);
		vsnprintf(body, (size_t)n + 1, fmt, ap);
	}
	r = sl_malloc(sizeof(*r) + prefix_len + (size_t)n + 1);
	r->magic = LOG_REC_MAGIC;
	r->dest = LOG_DEST_DIAG;
	r->len = prefix_len + (size_t)n + 1;
	memcpy(r->text, prefix, prefix_len);
	memcpy(r->text + prefix_len, body, (size_t)n);
	log_flatten(r->text + prefix_len, (size_t)n);
	r->text[r->len - 1] = '\n';
	if (body != small)
		sl_free(body);
	return r;
}

static struct log_rec *
log_rec_format(int level, const char *fmt, ...)
{
	struct log_rec *r;
	va_list ap;

	va_start(ap, fmt);
	r = log_rec_vformat(level, fmt, ap);
	va_end(ap);
	return r;
}

/* ---------------------------------------------------------------- writing (log_wlock held) */

static void
log_writev_all(int fd, struct iovec *iov, int cnt)
{
	ssize_t n;

	while (cnt > 0) {
		n = writev(fd, iov, cnt);
		if (n < 0 && errno == EINTR)
			continue;
		/* Nowhere left to report a failing log file: drop the lines. */
		if (n < 0)
			break;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
}

/* Write `cnt` iovecs of destination `dest` to its file(s). */
static void
log_write_dest(int dest, struct iovec *iov, int cnt)
{
	struct iovec copy[LOG_BATCH_MAX];

	if (dest == LOG_DEST_DIAG) {
		bool is_stderr = log_to_stderr || log_panic.fd < 0;

		if (log_panic.fd >= 0) {
			/* writev advances the array it is given: keep one for stderr. */
			if (is_stderr)
				memcpy(copy, iov, sizeof(*iov) * (size_t)cnt);
			log_writev_all(log_panic.fd, iov, cnt);
			iov = copy;
		}
		if (is_stderr)
			log_writev_all(STDERR_FILENO, iov, cnt);
	} else if (dest == LOG_DEST_STDERR) {
		if (log_to_stderr || log_panic.fd < 0)
			log_writev_all(STDERR_FILENO, iov, cnt);
	} else {
		SL_ASSERT(dest >= 0 && dest < LOG_STREAM_MAX);
		if (log_streams[dest].fd >= 0)
			log_writev_all(log_streams[dest].fd, iov, cnt);
	}
}

/* Write `cnt` records, each destination's lines in their queued order. */
static void
log_write_recs(struct log_rec **recs, int cnt)
{
	struct iovec iov[LOG_BATCH_MAX];
	bool is_done[LOG_BATCH_MAX];
	int i, j, iov_cnt, dest;

	SL_ASSERT(cnt <= LOG_BATCH_MAX);
	memset(is_done, 0, sizeof(is_done));
	for (i = 0; i < cnt; i++) {
		if (is_done[i])
			continue;
		dest = recs[i]->dest;
		iov_cnt = 0;
		for (j = i; j < cnt; j++) {
			if (is_done[j] || recs[j]->dest != dest)
				continue;
			iov[iov_cnt].iov_base = recs[j]->text;
			iov[iov_cnt].iov_len = recs[j]->len;
			iov_cnt++;
			is_done[j] = true;
		}
		log_write_dest(dest, iov, iov_cnt);
	}
}

static void
log_rec_free(struct log_rec *r)
{
	r->magic = 0;
	sl_free(r);
}

/* Say how many lines were dropped, at most once a second unless `is_forced`. */
static void
log_note_dropped(bool is_forced)
{
	struct log_rec *r;
	uint64_t n;
	time_t now;

	if (__atomic_load_n(&log_q.dropped, __ATOMIC_RELAXED) == 0)
		goto out;
	now = time(NULL);
	if (!is_forced && now - log_note_last < 1)
		goto out;
	log_note_last = now;
	n = __atomic_exchange_n(&log_q.dropped, 0, __ATOMIC_RELAXED);
	r = log_rec_format(SL_LOG_WARNING, "%llu log lines dropped: logger queue over %d lines",
			   (unsigned long long)n, LOG_QUEUE_LIMIT);
	log_write_recs(&r, 1);
	log_rec_free(r);
out:
	return;
}

/*
 * Dequeue and write up to `max` records (0: until empty).  Returns how many.
 * The caller holds log_wlock, which makes it the queue's only consumer.
 */
static size_t
log_drain_locked(size_t max)
{
	struct log_rec *recs[LOG_BATCH_MAX];
	struct cds_wfcq_node *node;
	size_t total = 0;
	int i, cnt;

	SL_ASSERT(log_holds_wlock);
	do {
		cnt = 0;
		while (cnt < LOG_BATCH_MAX && (max == 0 || total + (size_t)cnt < max)) {
			node = __cds_wfcq_dequeue_blocking(&log_q.head, &log_q.tail);
			if (node == NULL)
				break;
			recs[cnt] = caa_container_of(node, struct log_rec, qnode);
			SL_TSAN_ACQUIRE(recs[cnt]);
			SL_CHECK_OBJ(recs[cnt], LOG_REC_MAGIC);
			cnt++;
		}
		if (cnt == 0)
			break;
		__atomic_fetch_sub(&log_q.depth, (uint64_t)cnt, __ATOMIC_RELAXED);
		log_write_recs(recs, cnt);
		for (i = 0; i < cnt; i++)
			log_rec_free(recs[i]);
		total += (size_t)cnt;
	} while (max == 0 || total < max);
	log_note_dropped(false);
	return total;
}

static void
log_lock(void)
{
	pthread_mutex_lock(&log_wlock);
	log_holds_wlock = true;
}

static void
log_unlock(void)
{
	log_holds_wlock = false;
	pthread_mutex_unlock(&log_wlock);
}

/*
 * The fatal paths: take the writer lock unless this thread already holds it
 * (an assertion inside the writer) or it stays busy too long (a writer stuck
 * on a dead disk must not stop us from reporting).  Returns whether to unlock.
 */
static bool
log_lock_fatal(void)
{
	struct timespec until;

	if (log_holds_wlock)
		return false;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LOG_LOCK_WAIT_NS / 1000000000L;
	if (pthread_mutex_timedlock(&log_wlock, &until) != 0)
		return false;
	log_holds_wlock = true;
	return true;
}

/* ---------------------------------------------------------------- the queue */

static long
log_futex(int32_t *word, int op, int32_t val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

/* Write `r` now: drain what is queued first so lines stay in order. */
static void
log_write_sync(struct log_rec *r)
{
	bool is_locked = !log_holds_wlock;

	if (is_locked)
		log_lock();
	log_drain_locked(0);
	log_write_recs(&r, 1);
	log_rec_free(r);
	if (is_locked)
		log_unlock();
}

/* Queue `r` for the logger thread (which owns it from then on). */
static void
log_enqueue(struct log_rec *r)
{
	bool was_nonempty;

	__atomic_fetch_add(&log_q.depth, 1, __ATOMIC_RELAXED);
	cds_wfcq_node_init(&r->qnode);
	SL_TSAN_RELEASE(r);
	was_nonempty = cds_wfcq_enqueue(&log_q.head, &log_q.tail, &r->qnode);
	/* Full barrier (Dekker with sl_log_stop and with the logger's sleep). */
	cmm_smp_mb();
	if (!__atomic_load_n(&log_q.is_started, __ATOMIC_SEQ_CST)) {
		/* sl_log_stop() raced with us: its last drain may have missed r. */
		sl_log_flush();
	} else if (!was_nonempty &&
		   __atomic_load_n(&log_q.state, __ATOMIC_SEQ_CST) == LOG_SLEEPING &&
		   __atomic_exchange_n(&log_q.state, LOG_AWAKE, __ATOMIC_SEQ_CST) == LOG_SLEEPING) {
		/* Only a push onto an empty queue can find the logger asleep. */
		log_futex(&log_q.state, FUTEX_WAKE_PRIVATE, 1, NULL);
	}
}

static void
log_submit(struct log_rec *r, int level)
{
	if (!__atomic_load_n(&log_q.is_started, __ATOMIC_ACQUIRE)) {
		log_write_sync(r);
	} else if (r->dest < 0 && level >= SL_LOG_INFO &&
		   __atomic_load_n(&log_q.depth, __ATOMIC_RELAXED) >= LOG_QUEUE_LIMIT) {
		/* Stream lines are accounting and never dropped; chatter is. */
		__atomic_fetch_add(&log_q.dropped, 1, __ATOMIC_RELAXED);
		log_rec_free(r);
	} else {
		log_enqueue(r);
	}
}

static void *
log_main(void *arg)
{
	const struct timespec note_wait = { 1, 0 };
	size_t n;

	pthread_setname_np(pthread_self(), "log");
	for (;;) {
		log_lock();
		n = log_drain_locked(LOG_BATCH_MAX);
		log_unlock();
		if (n > 0)
			continue;
		if (__atomic_load_n(&log_q.is_stopping, __ATOMIC_SEQ_CST))
			break;
		/* Announce the sleep, then look again: a producer that pushed
		 * before seeing LOG_SLEEPING is seen here, one after wakes us. */
		__atomic_store_n(&log_q.state, LOG_SLEEPING, __ATOMIC_SEQ_CST);
		if (!cds_wfcq_empty(&log_q.head, &log_q.tail) ||
		    __atomic_load_n(&log_q.is_stopping, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&log_q.state, LOG_AWAKE, __ATOMIC_SEQ_CST);
			continue;
		}
		while (__atomic_load_n(&log_q.state, __ATOMIC_SEQ_CST) == LOG_SLEEPING) {
			/* With lines dropped, wake up to report them even if idle. */
			bool is_noting = __atomic_load_n(&log_q.dropped, __ATOMIC_RELAXED) != 0;

			if (log_futex(&log_q.state, FUTEX_WAIT_PRIVATE, LOG_SLEEPING,
				      is_noting ? &note_wait : NULL) < 0 &&
			    errno == ETIMEDOUT)
				__atomic_store_n(&log_q.state, LOG_AWAKE, __ATOMIC_SEQ_CST);
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------- API */

void
sl__log(int level, const char *fmt, ...)
{
	struct log_rec *r;
	va_list ap;

	va_start(ap, fmt);
	r = log_rec_vformat(level, fmt, ap);
	va_end(ap);
	if (level > SL_LOG_CRIT && !__atomic_load_n(&log_panic_is_on, __ATOMIC_RELAXED))
		r->dest = LOG_DEST_STDERR;
	log_submit(r, level);
}

void
sl_log_paniclog_set(bool is_on)
{
	__atomic_store_n(&log_panic_is_on, is_on ? 1 : 0, __ATOMIC_RELAXED);
}

static int
log_file_open(const char *path, unsigned mode)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, (mode_t)mode);

	return fd < 0 ? -errno : fd;
}

int
sl_log_start(const char *paniclog, unsigned mode, bool to_stderr)
{
	int fd = -1, rc = 0;

	SL_ASSERT(!__atomic_load_n(&log_q.is_started, __ATOMIC_ACQUIRE));
	if (paniclog != NULL) {
		fd = log_file_open(paniclog, mode);
		if (fd < 0) {
			rc = fd;
			goto out;
		}
	}
	log_lock();
	if (log_panic.fd >= 0)
		close(log_panic.fd);
	sl_free(log_panic.path);
	log_panic.path = paniclog != NULL ? sl_strdup(paniclog) : NULL;
	log_panic.fd = fd;
	log_panic.mode = mode;
	log_to_stderr = to_stderr;
	log_unlock();
	__atomic_store_n(&log_q.is_stopping, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&log_q.state, LOG_AWAKE, __ATOMIC_SEQ_CST);
	/* On failure the new paniclog stays: synchronous writes go there. */
	rc = -pthread_create(&log_thread, NULL, log_main, NULL);
	if (rc == 0)
		__atomic_store_n(&log_q.is_started, 1, __ATOMIC_SEQ_CST);
out:
	return rc;
}

void
sl_log_stop(void)
{
	if (!__atomic_load_n(&log_q.is_started, __ATOMIC_ACQUIRE))
		goto out;
	/* From here producers write synchronously (see log_submit). */
	__atomic_store_n(&log_q.is_started, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&log_q.is_stopping, 1, __ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&log_q.state, LOG_AWAKE, __ATOMIC_SEQ_CST) == LOG_SLEEPING)
		log_futex(&log_q.state, FUTEX_WAKE_PRIVATE, 1, NULL);
	pthread_join(log_thread, NULL);
	log_lock();
	log_drain_locked(0);
	log_note_dropped(true);
	log_unlock();
out:
	return;
}

void
sl_log_flush(void)
{
	bool is_locked = !log_holds_wlock;

	if (is_locked)
		log_lock();
	log_drain_locked(0);
	if (is_locked)
		log_unlock();
}

int
sl_log_stream_open(const char *path, unsigned mode)
{
	int id, fd, cnt;

	SL_ASSERT(path != NULL);
	log_lock();
	cnt = __atomic_load_n(&log_stream_cnt, __ATOMIC_RELAXED);
	for (id = 0; id < cnt; id++) {
		if (strcmp(log_streams[id].path, path) == 0)
			goto out;
	}
	if (cnt == LOG_STREAM_MAX) {
		id = -EMFILE;
		goto out;
	}
	fd = log_file_open(path, mode);
	if (fd < 0) {
		id = fd;
		goto out;
	}
	log_streams[cnt].path = sl_strdup(path);
	log_streams[cnt].fd = fd;
	log_streams[cnt].mode = mode;
	id = cnt;
	__atomic_store_n(&log_stream_cnt, cnt + 1, __ATOMIC_RELEASE);
out:
	log_unlock();
	return id;
}

void
sl_log_stream_write(int id, const char *line, size_t len)
{
	struct log_rec *r;

	SL_ASSERT(id >= 0 && id < __atomic_load_n(&log_stream_cnt, __ATOMIC_ACQUIRE));
	r = sl_malloc(sizeof(*r) + len + 1);
	r->magic = LOG_REC_MAGIC;
	r->dest = id;
	r->len = len + 1;
	memcpy(r->text, line, len);
	log_flatten(r->text, len);
	r->text[len] = '\n';
	log_submit(r, SL_LOG_CRIT);
}

static int
log_file_reopen(struct log_file *f)
{
	int fd, rc = 0;

	if (f->path == NULL)
		goto out;
	fd = log_file_open(f->path, f->mode);
	if (fd < 0) {
		rc = fd; /* keep writing to the old file rather than nowhere */
		goto out;
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = fd;
out:
	return rc;
}

int
sl_log_reopen(void)
{
	int i, rc, first = 0;

	log_lock();
	/* Lines queued before the rotation belong to the old files. */
	log_drain_locked(0);
	rc = log_file_reopen(&log_panic);
	if (rc < 0 && first == 0)
		first = rc;
	for (i = 0; i < __atomic_load_n(&log_stream_cnt, __ATOMIC_RELAXED); i++) {
		rc = log_file_reopen(&log_streams[i]);
		if (rc < 0 && first == 0)
			first = rc;
	}
	log_unlock();
	return first;
}

int
sl_log_chown(uid_t uid, gid_t gid)
{
	int rc = 0;

	log_lock();
	if (log_panic.fd >= 0 && fchown(log_panic.fd, uid, gid) != 0)
		rc = -errno;
	for (int i = 0; i < __atomic_load_n(&log_stream_cnt, __ATOMIC_RELAXED); i++)
		if (log_streams[i].fd >= 0 && fchown(log_streams[i].fd, uid, gid) != 0 && rc == 0)
			rc = -errno;
	log_unlock();
	return rc;
}

/* Drain the queue, then write `r` to stderr and the paniclog, on this thread. */
static void
log_write_fatal(struct log_rec *r)
{
	struct iovec iov = { r->text, r->len };
	bool is_locked = log_lock_fatal();

	/* Not locked and not ours: the writer is stuck; write past it. */
	if (is_locked || log_holds_wlock)
		log_drain_locked(0);
	if (log_panic.fd >= 0)
		log_writev_all(log_panic.fd, &iov, 1);
	iov.iov_base = r->text;
	iov.iov_len = r->len;
	log_writev_all(STDERR_FILENO, &iov, 1);
	log_rec_free(r);
	if (is_locked)
		log_unlock();
}

void
sl_fatal(const char *fmt, ...)
{
	struct log_rec *r;
	va_list ap;

	va_start(ap, fmt);
	r = log_rec_vformat(SL_LOG_CRIT, fmt, ap);
	va_end(ap);
	log_write_fatal(r);
	exit(1);
}

void
sl__assert_fail(const char *expr, const char *file, int line, const char *func)
{
	static __thread bool is_failing;
	static const char nested[] = "assertion failed while reporting an assertion\n";

	/* An assertion inside the reporting below must not recurse forever. */
	if (!is_failing) {
		is_failing = true;
		log_write_fatal(log_rec_format(SL_LOG_CRIT, "assertion failed: %s at %s:%d (%s)",
					       expr, file, line, func));
	} else if (write(STDERR_FILENO, nested, sizeof(nested) - 1) < 0) {
		abort();
	}
	abort();
}
