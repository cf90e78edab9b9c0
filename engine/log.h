/*
 * engine/log.h - the one logging API: diagnostics and ec_logger-style streams.
 *
 * Two kinds of output share one logger thread:
 *  - diagnostics, sl_log(level, ...), go to the paniclog (and stderr when the
 *    daemon runs in the foreground) as "[Thu 26 Nov 2026 13:45:01] [level] text",
 *    time in UTC;
 *  - streams (mainlog, rejectlog, acctlog, ...) take preformatted lines that
 *    other modules build; the engine only appends them to their files.
 * Callers never block on disk: a line is copied into a record and queued to
 * the logger thread, which writes in batches.  sl_log_flush() and the fatal
 * path write synchronously.  A disabled level evaluates nothing.
 *
 * Threads: any thread may log or write a stream line after sl_log_start();
 * before it (and after sl_log_stop()) lines are written synchronously to
 * stderr/the paniclog so start-up errors are never lost.
 * Bounded: past 100,000 queued lines, diagnostics of level info and debug are
 * dropped and counted (a "N log lines dropped" warning follows); stream lines
 * and more severe diagnostics are never dropped.  CR and LF inside a line
 * become spaces: one event, one line.
 * Parses no input.  Never log credentials or message bodies.
 */
#ifndef SL_ENGINE_LOG_H
#define SL_ENGINE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum sl_log_level {
	SL_LOG_CRIT = 0,
	SL_LOG_ERR,
	SL_LOG_WARNING,
	SL_LOG_NOTICE,
	SL_LOG_INFO,
	SL_LOG_DEBUG,
};

/*
 * Highest level that is written; lines above it cost one compare and
 * evaluate none of their arguments.  Read with a relaxed atomic load because
 * a reload may change it while other threads log: set it with
 * sl_log_level_set() (any thread).
 */
extern int sl_log_level_max;
void sl_log_level_set(int level);

void sl__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sl_log(level, ...)                                                                \
	do {                                                                              \
		if ((int)(level) <= __atomic_load_n(&sl_log_level_max, __ATOMIC_RELAXED)) \
			sl__log((level), __VA_ARGS__);                                    \
	} while (0)
#define sl_log_crit(...)   sl_log(SL_LOG_CRIT, __VA_ARGS__)
#define sl_log_err(...)    sl_log(SL_LOG_ERR, __VA_ARGS__)
#define sl_log_warn(...)   sl_log(SL_LOG_WARNING, __VA_ARGS__)
#define sl_log_notice(...) sl_log(SL_LOG_NOTICE, __VA_ARGS__)
#define sl_log_info(...)   sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_log_debug(...)  sl_log(SL_LOG_DEBUG, __VA_ARGS__)

/* "crit", "err", ... for a level; "?" when out of range. */
const char *sl_log_level_name(int level);
/* Parse a level name (crit err warning notice info debug); -1 if unknown. */
int sl_log_level_parse(const char *name);

/*
 * Start the logger thread.  `paniclog` may be NULL (diagnostics go to stderr
 * only); `to_stderr` mirrors diagnostics to stderr (foreground mode).
 * Returns 0 or -errno (the paniclog could not be opened); on error nothing
 * is started.  Main thread only; once, or again after sl_log_stop().
 */
int sl_log_start(const char *paniclog, unsigned mode, bool to_stderr);

/*
 * Flush every queued line and stop the logger thread.  Main thread only.
 * The files stay open: later lines are written to them synchronously.
 */
void sl_log_stop(void);

/*
 * ec_logger's log_errors: with false, diagnostics below crit stay out of
 * the paniclog (they still reach stderr in the foreground); crit lines and
 * the fatal path are always written, so a dying daemon says why.  Default
 * true.  Any thread (the config thread, at start and on reload).
 */
void sl_log_paniclog_set(bool is_on);

/* Write every queued line now (synchronously, from the calling thread). */
void sl_log_flush(void);

/*
 * Streams.  sl_log_stream_open() opens (creates, append) `path` with `mode`
 * and returns a stream id >= 0, or -errno.  Opening a path that is already
 * open returns the same id.  Main/config thread only.
 */
int sl_log_stream_open(const char *path, unsigned mode);

/*
 * Queue one line (without its newline; `len` bytes are copied) for stream
 * `id`.  Never blocks.  Any thread.
 */
void sl_log_stream_write(int id, const char *line, size_t len);

/*
 * Close and reopen every file (paniclog and streams) by path, for logrotate.
 * Lines queued before the call are written to the old files first; a file
 * that cannot be reopened keeps its old descriptor.  Synchronous, on the
 * calling thread (the signal thread); returns 0 or the first -errno seen.
 */
int sl_log_reopen(void);

/*
 * Give every open file (paniclog and streams) to uid:gid ((uid_t)-1 /
 * (gid_t)-1: unchanged), so that they stay writable, and reopenable in
 * place, after root is given up.  Main thread; 0 or the first -errno seen.
 */
int sl_log_chown(uid_t uid, gid_t gid);

/*
 * Write every queued line, then the message (as a crit diagnostic) to stderr
 * and the paniclog, and exit(1).  For start-up errors.  Any thread.
 */
void sl_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn, cold));

#endif /* SL_ENGINE_LOG_H */
