/*
 * spool/spool.h - the durable message store: a log of segment files.
 *
 * SpoolBase holds append-only segment files, preallocated with fallocate
 * and rotated at a size limit.  Every record has a header, a length and a
 * CRC32C: a message record holds the envelope (sender, recipients, context,
 * binding, session facts, times) and the content as stored (added headers
 * then the client's data); progress records say that a recipient reached a
 * final outcome, and a message record is finished when all its recipients
 * have.  The record format is versioned and documented in sluice-spool(5).
 *
 * Group commit: a writer appends every message that is ready
 * (sl_spool_append), then one sl_spool_commit() issues one fdatasync (and a
 * directory fsync when a segment was created) for all of them.  Nothing
 * appended is durable before commit returns 0, and a client must not see
 * 250 before that (unless _unsafe_spool).  Creating files costs 65-500 us of
 * kernel CPU here, an append plus fdatasync about 100 us for the whole group.
 *
 * A segment is removed when every message in it is finished and it is not
 * the active one; live messages in old, mostly-dead segments are copied
 * forward (sl_spool_compact) so disk use stays bounded.
 *
 * Recovery (sl_spool_recover) reads the segments in order, applies the
 * progress records, and hands back every committed message that is not
 * finished.  A torn tail or a record with a bad CRC is skipped and counted,
 * never crashes recovery and never yields a partial message.
 *
 * Backends: "segment" (the files above) and "ram" (memory only, for unit
 * tests), behind one table of functions.
 *
 * Threads: a struct sl_spool is shared; each struct sl_spool_writer belongs
 * to one thread (a spool stage thread), which alone appends, commits,
 * records progress and compacts for the segments it wrote: progress for a
 * message goes to writer sl_spool_owner(loc) (segments found at recovery
 * that a run with more writers wrote are kept by writer % writer_cnt).
 * The append/commit path takes no lock (the ram backend, for tests, does).
 * sl_spool_open,
 * sl_spool_recover and sl_spool_close run on the main thread before the
 * writers start / after they stop.  sl_spool_read may run on any thread.
 * Parses untrusted input: the segment files (they may be torn or damaged);
 * every length read from disk is checked against the file and a limit.
 */
#ifndef SL_SPOOL_SPOOL_H
#define SL_SPOOL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/msg.h"

#define SL_SPOOL_SEGMENT_SIZE_DEFAULT (64u * 1024 * 1024)
#define SL_SPOOL_MAX_RECORD           (1u << 30) /* a record larger than this is damage */

struct sl_spool_opts {
	const char *dir;       /* SpoolBase; created if missing */
	const char *backend;   /* "segment" (default when NULL) or "ram" */
	uint64_t segment_size; /* preallocation and rotation size; 0: default */
	bool use_fsync;        /* Force_Fsync: commit calls fdatasync */
	unsigned writer_cnt;   /* number of writers (spool threads), >= 1 */
	/*
	 * Recovery leaves a segment in which it found damage where it is, under
	 * its name, even once nothing in it is live (normally such a segment
	 * goes with its last message, and one with nothing readable is renamed
	 * to NAME.damaged): for `spool import`, which must not touch what it
	 * could not read.
	 */
	bool keep_damaged;
};

struct sl_spool;
struct sl_spool_writer;

/*
 * Open the spool (creating the directory and a lock file; a second process
 * on the same directory gets -EBUSY).  Returns 0 or -errno with a one-line
 * reason in `why`: -EINVAL for an unknown backend, writer_cnt outside
 * 1..256 or segment_size outside 4 KiB..1 TiB (0 is the default).  The ram
 * backend keeps its store under `dir` (any name; NULL: private) for the
 * life of the process, so it can be closed and opened again like a disk.
 */
int sl_spool_open(const struct sl_spool_opts *opts, struct sl_spool **out, char *why,
		  size_t why_len);
/* Close: writers must be gone.  NULL is fine. */
void sl_spool_close(struct sl_spool *sp);

struct sl_spool_recover_stats {
	uint64_t segments;   /* segment files read */
	uint64_t records;    /* records read */
	uint64_t messages;   /* unfinished messages handed back */
	uint64_t finished;   /* finished messages skipped */
	uint64_t damaged;    /* records skipped: bad CRC, bad length, bad fields */
	uint64_t torn_bytes; /* bytes after the last good record of a segment */
	uint64_t unreadable; /* segment files left alone: cannot be opened, not a regular
				file, or a newer format version */
};

/*
 * Hand every committed, unfinished message to fn (the callee owns it; its
 * rcpts carry their status, its loc says where it lives, its content is
 * loaded: the callee may drop it, sl_msg_clear_content, and sl_spool_read
 * it later), in spool order.  Segments with nothing live are removed; the
 * writers then start new segments.  Call at most once, before any append.
 * Returns 0 or -errno (an unreadable directory); damaged records only count.
 * `log_fn` (may be NULL) gets one line per damaged record or torn tail;
 * both callbacks get `arg`.  `stats` may be NULL.
 */
int sl_spool_recover(struct sl_spool *sp, void (*fn)(struct sl_msg *m, void *arg), void *arg,
		     void (*log_fn)(const char *line, void *arg),
		     struct sl_spool_recover_stats *stats);

/* Writer number `idx` (0 .. writer_cnt-1), for the calling thread. */
struct sl_spool_writer *sl_spool_writer_get(struct sl_spool *sp, unsigned idx);

/* The writer that must record progress for (and compacts) the message at loc.  Any thread. */
unsigned sl_spool_owner(const struct sl_spool *sp, const struct sl_spool_loc *loc);

/*
 * Append message `m` (envelope and content) to the writer's active segment,
 * rotating to a new segment first if it would not fit.  Sets m->qid and
 * m->loc.  Not durable until sl_spool_commit().  The caller keeps `m`; the
 * bytes are in the kernel when this returns.  0 or -errno: -EINVAL (no
 * recipient, or none pending), -E2BIG (more than 100000 recipients or 4096
 * context pairs, a string over 4 KiB, a context value over 64 KiB), -EFBIG
 * (record over SL_SPOOL_MAX_RECORD), -ENOSPC, -EIO...; after a failure
 * nothing of `m` counts and a later append may succeed.
 */
int sl_spool_append(struct sl_spool_writer *w, struct sl_msg *m);

/*
 * Record that recipient `rcpt_idx` of the message at `loc` reached
 * `status` (final), or with rcpt_idx == UINT32_MAX that the whole message
 * is finished; when every recipient is final the message is finished too.
 * Only on writer sl_spool_owner(loc) (asserted).  Any loc the message had
 * works (compaction moves it).  A final status is never changed: a repeat
 * is a no-op.  Not durable until commit.  0, -ENOENT (no such message, or
 * finished by an earlier commit) or -EINVAL (bad index or non-final status).
 */
int sl_spool_progress(struct sl_spool_writer *w, const struct sl_spool_loc *loc, uint32_t rcpt_idx,
		      enum sl_rcpt_status status);

/*
 * Make everything appended so far durable: flush, fdatasync (when
 * use_fsync), directory fsync after a segment was created, then remove
 * segments whose messages are all finished.  Cheap when there is nothing
 * to do.  0 or -errno; on error nothing appended since the last successful
 * commit may be reported durable: those messages are abandoned (recorded
 * finished by the next successful commit, so recovery does not deliver
 * them), the progress since then is kept and written again, and the writer
 * continues in a new segment.
 */
int sl_spool_commit(struct sl_spool_writer *w);

/*
 * Copy the live messages of this writer's old segments whose live share
 * is below `live_ratio` (0..1) forward into the active segment, at most
 * `max_bytes` per call (but at least one message); their locs change
 * (reported through moved_fn, may be NULL, on this thread).  Durable after
 * the next commit, and the old segment goes after that; the old loc stays
 * good for sl_spool_progress, and for sl_spool_read until the segment goes.
 * Returns the number of messages copied, or -errno when none could be.
 */
int sl_spool_compact(struct sl_spool_writer *w, double live_ratio, uint64_t max_bytes,
		     void (*moved_fn)(const char *qid, const struct sl_spool_loc *to, void *arg),
		     void *arg);

/*
 * Read a message back (for delivery of bodies not kept in memory): a new
 * message owned by the caller, its content checked against the record CRC.
 * Statuses are those it had when written.  Any loc the message had works
 * until it is finished: when compaction moved it and its old segment is
 * gone, the read follows it to the copy (the new message's loc says where
 * it was read).  0 or -errno: -ENOENT (finished), -EIO (damaged).
 */
int sl_spool_read(struct sl_spool *sp, const struct sl_spool_loc *loc, struct sl_msg **out);

struct sl_spool_stats {
	uint64_t segment_cnt; /* files in the spool */
	uint64_t bytes;       /* bytes on disk (allocated size) */
	uint64_t live_msgs;   /* unfinished messages */
	uint64_t commits;     /* commits that had something to make durable */
	uint64_t appended;    /* messages appended */
	uint64_t durable;     /* of those, covered by a successful commit */
	uint64_t syncs;       /* fdatasync calls on segment files */
	uint64_t dir_syncs;   /* fsync calls on SpoolBase */
};
/* Figures of the whole spool (approximate while writers run).  Any thread. */
void sl_spool_stats(struct sl_spool *sp, struct sl_spool_stats *out);
/*
 * Figures of one writer; exact on its own thread (a message appended there
 * is durable once `durable` has passed the `appended` it saw after the
 * append), approximate elsewhere.
 */
void sl_spool_writer_stats(const struct sl_spool_writer *w, struct sl_spool_stats *out);

/* CRC32C (Castagnoli) of `len` bytes, continuing from `crc` (start with 0). */
uint32_t sl_crc32c(uint32_t crc, const void *data, size_t len);

#endif /* SL_SPOOL_SPOOL_H */
