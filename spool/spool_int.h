/*
 * spool/spool_int.h - private declarations of the spool: the backend table,
 * the spool and writer structs both backends share, the record codec, the
 * on-disk constants of sluice-spool(5), and hooks for tests.
 *
 * spool.c holds the public API (it checks arguments and dispatches to
 * sp->be), the envelope codec and the queue ids; spool_segment.c and
 * spool_ram.c are the backends; crc32c.c the checksum.  Nothing outside
 * spool/ includes this file except the spool's own tests and benchmark.
 *
 * Threads: as spool.h says: a writer and its backend state belong to one
 * thread; struct sl_spool is written only by the main thread (open,
 * recover, close) and read by all.  The figures in struct sl_spool_writer
 * are written by their writer and read by anyone with relaxed atomics.
 * The codec parses untrusted input (records read from disk): every length
 * is checked against the bytes present and against the limits below.
 */
#ifndef SL_SPOOL_SPOOL_INT_H
#define SL_SPOOL_SPOOL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/buf.h"
#include "spool/msg.h"
#include "spool/spool.h"

#define SL_SPOOL_MAGIC        0x5b001a11u
#define SL_SPOOL_WRITER_MAGIC 0x5b00717eu

/* ---- on-disk format, version 1 (sluice-spool(5) is the reference) ---- */

#define SL_SPOOL__VERSION     1
#define SL_SPOOL__REC_MAGIC   0x43524c53u /* bytes "SLRC" */
#define SL_SPOOL__REC_HDR_LEN 24          /* magic crc type flags len offset */
#define SL_SPOOL__REC_ALIGN   8           /* records start at multiples of 8 */
#define SL_SPOOL__SEG_MAGIC   "SLUICESG"  /* first 8 bytes of a segment header payload */
#define SL_SPOOL__SEG_PAYLOAD 40          /* segment header payload */
#define SL_SPOOL__SEG_HDR_LEN (SL_SPOOL__REC_HDR_LEN + SL_SPOOL__SEG_PAYLOAD)

enum sl_spool__rec_type {
	SL_SPOOL__REC_SEGMENT = 1,  /* first record of every segment */
	SL_SPOOL__REC_MESSAGE = 2,  /* envelope + head + content */
	SL_SPOOL__REC_PROGRESS = 3, /* recipient outcomes / whole messages finished */
};
#define SL_SPOOL__REC_F_COPY 0x0001u /* message record: copied forward by compaction */

#define SL_SPOOL__ENV_FIXED      72 /* fixed part of a message record's envelope */
#define SL_SPOOL__QID_FIELD      24 /* on-disk qid field: NUL-padded, <= 23 characters */
#define SL_SPOOL__PROG_FIXED     8  /* progress record: count, reserved */
#define SL_SPOOL__PROG_ENTRY     32 /* qid[24] rcpt_idx status */
#define SL_SPOOL__ENV_F_8BITMIME 0x1u
#define SL_SPOOL__ENV_F_SMTPUTF8 0x2u

/* Limits: a record outside them is damage (reading) or refused (writing). */
#define SL_SPOOL__MAX_RCPTS   100000u
#define SL_SPOOL__MAX_CONTEXT 4096u
#define SL_SPOOL__MAX_STR     4096u  /* addresses, helo, binding, ip, protocol, keys */
#define SL_SPOOL__MAX_CTX_VAL 65536u /* a context value */
#define SL_SPOOL__MAX_PROG    4096u  /* entries per progress record */
#define SL_SPOOL__MAX_WRITERS 256u   /* the qid spends two hex digits on it */
#define SL_SPOOL__MIN_SEGMENT 4096u
#define SL_SPOOL__MAX_SEGMENT (1ull << 40)
#define SL_SPOOL__STR_ABSENT  0xffffffffu /* string length of a NULL field */

/* ---- shared structs ---- */

struct sl_spool__backend;

struct sl_spool_writer {
	unsigned magic;        /* SL_SPOOL_WRITER_MAGIC */
	struct sl_spool *sp;   /* not owned */
	unsigned idx;          /* 0 .. writer_cnt-1 */
	uint64_t qid_seq;      /* next queue id sequence (40 bits used) */
	struct sl_buf scratch; /* owned: record header + envelope being written */
	void *be;              /* owned by the backend (writer_init/writer_fini) */
	/* figures: written by the owner thread, read by anyone (relaxed atomics) */
	uint64_t appended;  /* messages appended */
	uint64_t durable;   /* `appended` when the last successful commit began */
	uint64_t commits;   /* commits that had something to make durable */
	uint64_t syncs;     /* fdatasync calls on segment files */
	uint64_t dir_syncs; /* fsync calls on SpoolBase */
	uint64_t live;      /* unfinished messages homed in this writer */
	uint64_t seg_cnt;   /* segment files this writer owns */
	uint64_t seg_bytes; /* their allocated bytes (or the ram backend's record bytes) */
	/* fault injection for tests: the next write / sync fails with this errno */
	int fail_write;
	int fail_sync;
};

struct sl_spool {
	unsigned magic;                     /* SL_SPOOL_MAGIC */
	struct sl_spool_opts opts;          /* copy; opts.dir points at `dir` */
	char *dir;                          /* owned: SpoolBase, or NULL (ram only) */
	const struct sl_spool__backend *be; /* static */
	void *be_state;                     /* owned by the backend (open/close) */
	struct sl_spool_writer **writers;   /* owned: writer_cnt of them */
	uint32_t qid_time;                  /* seconds when opened: the qid prefix */
	bool is_recovered;                  /* sl_spool_recover ran */
	bool is_prezero;                    /* segment backend: zero-fill new segments (fsync on) */
};

/*
 * The table each backend fills (OpenSMTPD's queue_backend idea).  spool.c
 * has checked the arguments; the backend returns 0 or -errno as spool.h
 * says for the public function of the same name.
 */
struct sl_spool__backend {
	const char *name;
	int (*open)(struct sl_spool *sp, char *why, size_t why_len);
	void (*close)(struct sl_spool *sp);
	void (*writer_init)(struct sl_spool_writer *w);
	void (*writer_fini)(struct sl_spool_writer *w);
	int (*recover)(struct sl_spool *sp, void (*fn)(struct sl_msg *m, void *arg), void *arg,
		       void (*log_fn)(const char *line, void *arg),
		       struct sl_spool_recover_stats *stats);
	int (*append)(struct sl_spool_writer *w, struct sl_msg *m);
	int (*progress)(struct sl_spool_writer *w, const struct sl_spool_loc *loc,
			uint32_t rcpt_idx, enum sl_rcpt_status status);
	int (*commit)(struct sl_spool_writer *w);
	int (*compact)(struct sl_spool_writer *w, double live_ratio, uint64_t max_bytes,
		       void (*moved_fn)(const char *qid, const struct sl_spool_loc *to, void *arg),
		       void *arg);
	int (*read)(struct sl_spool *sp, const struct sl_spool_loc *loc, struct sl_msg **out);
};

extern const struct sl_spool__backend sl_spool__segment_backend;
extern const struct sl_spool__backend sl_spool__ram_backend;

/* ---- little-endian field access (the format is little-endian everywhere) ---- */

static inline void
sl_spool__put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
sl_spool__put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void
sl_spool__put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t
sl_spool__get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t
sl_spool__get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t
sl_spool__get64(const uint8_t *p)
{
	return (uint64_t)sl_spool__get32(p) | (uint64_t)sl_spool__get32(p + 4) << 32;
}

static inline uint64_t
sl_spool__align(uint64_t n)
{
	return (n + SL_SPOOL__REC_ALIGN - 1) & ~(uint64_t)(SL_SPOOL__REC_ALIGN - 1);
}

/* ---- records ---- */

struct sl_spool__hdr {
	uint32_t crc;
	uint16_t type;
	uint16_t flags;
	uint32_t len;    /* payload bytes, without the header and the padding */
	uint64_t offset; /* where the record starts in its segment */
};

/* Write a record header (crc 0) into h[SL_SPOOL__REC_HDR_LEN]. */
void sl_spool__hdr_put(uint8_t *h, uint16_t type, uint16_t flags, uint32_t len, uint64_t offset);
/* The CRC of a record starts over header bytes 8..23; continue it over the payload. */
uint32_t sl_spool__hdr_crc(const uint8_t *h);
/* Decode h; false when the magic is wrong.  Checks nothing else. */
bool sl_spool__hdr_get(const uint8_t *h, struct sl_spool__hdr *out);

/* What a message record's envelope says, as far as bookkeeping needs it. */
struct sl_spool__env {
	uint32_t env_len;
	char qid[SL_SPOOL__QID_FIELD]; /* NUL-terminated */
	uint32_t rcpt_cnt;
	const uint8_t *status; /* rcpt_cnt bytes inside the parsed buffer */
	uint64_t head_len;
	uint64_t content_len;
};

/*
 * Append the envelope of `m` to `b` with queue id `qid` and recipient
 * statuses `status` (NULL: m's own).  0, or -EINVAL (no recipient, none
 * pending, a bad status) or -E2BIG (a field over its limit); `b` is then
 * left as it was.
 */
int sl_spool__env_encode(struct sl_buf *b, const struct sl_msg *m, const char *qid,
			 const uint8_t *status);
/*
 * Parse and check the envelope at p[0..len) of a message record whose
 * payload is `payload_len` bytes (len may be shorter: only the envelope is
 * needed).  With `m` non-NULL also fill its envelope fields (sender,
 * recipients with their status, context, session facts, qid).  0 or -EBADMSG
 * on any inconsistency; `m` may then be partly filled (free it).
 */
int sl_spool__env_parse(const uint8_t *p, size_t len, uint64_t payload_len,
			struct sl_spool__env *out, struct sl_msg *m);

/*
 * Give `m` empty chunks for `len` content bytes and point iov[1..] at them
 * after iov[0] = the head buffer of `head_len` bytes (reserved in m->head).
 * Returns the iovec count; *iov is owned by the caller (sl_free).
 */
size_t sl_spool__content_alloc(struct sl_msg *m, uint64_t head_len, uint64_t len,
			       struct iovec **iov);

/* ---- queue ids ---- */

/* Next queue id of writer w into qid[SL_MSG_QID_LEN], NUL-padded. */
void sl_spool__qid_next(struct sl_spool_writer *w, char *qid);
/* Split a queue id of our format; false if it is not one. */
bool sl_spool__qid_parse(const char *qid, uint32_t *time, uint32_t *writer, uint64_t *seq);
/* After recovery saw `qid`: never hand out a sequence at or below it again. */
void sl_spool__qid_seen(struct sl_spool *sp, const char *qid);

/* ---- CRC32C implementations (sl_crc32c picks one) ---- */

uint32_t sl_spool__crc32c_sw(uint32_t crc, const void *data, size_t len);
/* Only when sl_spool__crc32c_has_hw(). */
uint32_t sl_spool__crc32c_hw(uint32_t crc, const void *data, size_t len);
bool sl_spool__crc32c_has_hw(void);

/* ---- relaxed figures ---- */

static inline void
sl_spool__fig_add(uint64_t *fig, int64_t delta)
{
	/* one writer per figure: a load and a store, atomic only for the readers */
	__atomic_store_n(fig, __atomic_load_n(fig, __ATOMIC_RELAXED) + (uint64_t)delta,
			 __ATOMIC_RELAXED);
}

static inline uint64_t
sl_spool__fig(const uint64_t *fig)
{
	return __atomic_load_n(fig, __ATOMIC_RELAXED);
}

/*
 * Which writer records progress and compacts for a message at `loc`: the
 * writer that wrote its segment, or, for segments found at recovery that
 * an earlier run with more writers wrote, writer % writer_cnt.
 */
static inline unsigned
sl_spool__owner(const struct sl_spool *sp, const struct sl_spool_loc *loc)
{
	return loc->writer % sp->opts.writer_cnt;
}

#endif /* SL_SPOOL_SPOOL_INT_H */
