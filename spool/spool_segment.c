/*
 * spool/spool_segment.c - the "segment" backend: SpoolBase as a log of
 * preallocated segment files of CRC'd records (sluice-spool(5)).
 *
 * Each writer appends to its own active segment, seg-<WW>-<NNNNNNNN>.sl,
 * created O_EXCL and preallocated (fallocate without KEEP_SIZE, so the
 * file size never changes and fdatasync has no size to journal; with fsync
 * on, the blocks are also overwritten with zeros once, so later appends
 * overwrite written blocks and fdatasync flushes data only, no extent
 * conversion: measured 35-50% cheaper per commit here).  Appends are
 * one pwritev of header + envelope + the message's own chunks (no copy of
 * the body); progress is buffered and written as one record at commit;
 * commit is one fdatasync per dirty segment (one, unless the group rotated)
 * and a directory fsync after a segment was created.
 *
 * Books (per writer, in memory): every unfinished message has a seg_msg
 * with its recipient statuses, found by any loc it ever had (a compaction
 * copy keeps old locs working).  A segment counts the messages homed in it
 * until their finish (or move) is durable.  A progress record must outlive
 * every segment holding a copy of the message it finishes, or recovery
 * would resurrect that message: each segment lists those segments (deps),
 * and is unlinked only when it is not active, nothing in it is live, and
 * its deps are gone (with a directory fsync between dependent unlinks).
 *
 * Recovery scans every segment in (writer, number) order, validating every
 * record, then joins message copies and progress by queue id, rebuilds the
 * books, removes dead segments and hands back the live messages, read
 * again from disk.  Writers then start new segments: nothing is appended to
 * a segment that may have a torn tail.  With keep_damaged (`spool import`
 * reading another node's spool) a segment with damage is never removed or
 * renamed.
 *
 * A full disk refuses new messages (ENOSPC when a segment cannot be
 * created) but never progress: messages leave 64 KiB of each segment to
 * progress records, and SpoolBase/reserve is given up when progress needs a
 * new segment (after a restart), so finishing messages can free space.
 *
 * Compaction copies the live messages of a mostly-dead sealed segment into
 * the active one; once the copy is durable the old segment counts the
 * message no more and goes like any dead segment.  Readers may hold a loc
 * of the old copy (delivery reads bodies back by loc): the writer
 * publishes old loc -> new home in a forwarding map before the old
 * segment can be unlinked, and read follows it when the old segment is
 * gone; the entries go when the message is finished.
 *
 * Threads: a writer's books and segments belong to its thread; read opens
 * the segment by name on the calling thread (an unlinked segment gives
 * -ENOENT, an open one stays readable), so no state is shared but the
 * reserve file's state (an atomic, taken by whichever writer needs it) and
 * the forwarding map (under fwd_lock, the file's only lock).  Parses
 * untrusted input: every segment file (lengths checked against the file,
 * SL_SPOOL_MAX_RECORD and the codec's limits).  Ownership: the writer owns
 * its segments and seg_msgs; messages handed out belong to the caller.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <urcu/list.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "spool/spool.h"
#include "spool/spool_int.h"

#define SEG_NAME_LEN  32
#define SEG_LOCK_NAME "lock"
#define SEG_RESERVE   (64u * 1024) /* kept free of messages for progress records */
#define SEG_RD_CAP    (1u << 20)   /* recovery read window */
#define SEG_ZERO_LEN  (64u * 1024)
#define SEG_IOV_MAX   1024

static const uint8_t seg_zeros[SEG_ZERO_LEN];

struct seg_id {
	uint32_t writer; /* the writer index in the file name */
	uint32_t number;
};

struct seg_key {
	uint64_t a, b, c;
};

struct seg_slot {
	struct seg_key k;
	void *val; /* NULL: empty slot */
};

/* Open addressing, linear probing, backward-shift deletion. */
struct seg_map {
	struct seg_slot *slots; /* owned */
	size_t cap;             /* power of two, or 0 */
	size_t cnt;
};

struct seg {
	struct cds_list_head node; /* in the owner's segs: oldest first */
	struct seg_id id;
	int fd;                    /* -1 while closed */
	uint64_t size;             /* allocated bytes */
	uint64_t end;              /* logical end: where the next record goes */
	uint64_t live;             /* messages homed here, finish or move not yet durable */
	uint64_t live_bytes;       /* their record bytes */
	struct cds_list_head msgs; /* seg_msgs homed here */
	struct cds_list_head dead; /* in the writer's dead list while is_dead */
	struct seg_id *deps;       /* owned: segments that must go first */
	size_t dep_cnt;
	size_t dep_cap;
	bool is_sealed; /* takes no more records */
	bool is_dirty;  /* written since the last good commit */
	bool is_dead;   /* sealed, clean, nothing live: waits for its deps */
	bool had_deps;  /* holds progress for another segment */
	bool is_doomed; /* sweep: to unlink this round */
	bool is_kept;   /* recovery found damage and opts.keep_damaged: never unlinked */
};

struct seg_msg {
	struct cds_list_head node; /* in home->msgs */
	struct seg *home;          /* segment of the newest copy */
	struct sl_spool_loc home_loc;
	uint64_t rec_len;          /* home record bytes with padding */
	struct sl_spool_loc *locs; /* owned: every copy; each is a key in the map */
	uint32_t loc_cnt;
	uint32_t rcpt_cnt;
	uint32_t pending_cnt;
	bool is_finished; /* in memory; durable at the next good commit */
	char qid[SL_SPOOL__QID_FIELD];
	uint8_t status[]; /* rcpt_cnt */
};

struct seg_op {
	struct seg_msg *msg; /* not owned */
	uint32_t rcpt_idx;   /* UINT32_MAX: whole message */
	uint8_t status;
};

struct seg_move {
	struct seg_msg *msg; /* not owned */
	struct seg *from;
	struct sl_spool_loc from_loc;
	uint64_t from_len;
};

struct seg_writer {
	struct cds_list_head segs; /* owned */
	struct seg *active;        /* not sealed; NULL until the next write creates one */
	uint32_t next_number;
	struct seg_map map;             /* loc -> seg_msg, segment id -> seg */
	struct cds_list_head dead;      /* segments that may go once their deps have */
	struct seg_op *ops;             /* progress since the last good commit */
	size_t op_cnt, op_cap, op_done; /* op_done: written to a segment */
	struct seg_msg **fresh;         /* appended since the last good commit */
	size_t fresh_cnt, fresh_cap;
	struct seg_msg **fin; /* finished since the last good commit */
	size_t fin_cnt, fin_cap;
	struct seg_move *moves; /* compaction copies since the last good commit */
	size_t move_cnt, move_cap;
	struct seg **dirty; /* segments written since the last good commit */
	size_t dirty_cnt, dirty_cap;
	struct iovec *iov; /* owned scratch */
	size_t iov_cap;
	struct sl_buf prog; /* progress record being written */
	bool has_created;   /* a segment file was created since the last good commit */
	bool needs_sweep;
};

struct seg_spool {
	int dirfd;            /* SpoolBase */
	int lockfd;           /* SpoolBase/lock, flock()ed */
	uint64_t reserve_len; /* of SpoolBase/reserve */
	int reserve_state;    /* atomic: SEG_RESERVE_* */
	/*
	 * Forwarding of messages moved by compaction: every older loc of a
	 * moved message -> its newest home (an owned struct sl_spool_loc), so
	 * that a reader holding an old loc (delivery reading a body back)
	 * finds the copy once the old segment is gone.  Written by the owning
	 * writer when a move is durable, before the old segment can be
	 * unlinked, and when the message is finished; read by seg_read on any
	 * thread.  fwd_lock guards fwd; it is held for map operations only,
	 * never across I/O, and no other lock is taken under it.
	 */
	pthread_mutex_t fwd_lock;
	struct seg_map fwd;
};

/*
 * SpoolBase/reserve: preallocated space given up when the disk is full and
 * progress needs a new segment (after a restart there is no active one to
 * write into), so messages can still be finished and their segments freed
 * instead of the spool locking up.  Made again once segments have gone.
 */
enum {
	SEG_RESERVE_ABSENT,
	SEG_RESERVE_PRESENT,
	SEG_RESERVE_BUSY, /* a writer is making it */
};
#define SEG_RESERVE_NAME "reserve"
#define SEG_RESERVE_FILE (1024u * 1024)

static uint64_t seg_seed;
static pthread_once_t seg_seed_once = PTHREAD_ONCE_INIT;

/* ---- small helpers ---- */

static void *
seg_grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	size_t n;

	if (need <= *cap)
		return arr;
	n = *cap ? *cap * 2 : 16;
	while (n < need)
		n *= 2;
	*cap = n;
	return sl_reallocarray(arr, n, elem);
}

static void
seg_name(char *buf, struct seg_id id)
{
	snprintf(buf, SEG_NAME_LEN, "seg-%02X-%08X.sl", id.writer, id.number);
}

/* "seg-WW-NNNNNNNN.sl" with upper-case hex digits, nothing else. */
static bool
seg_name_parse(const char *name, struct seg_id *out)
{
	uint32_t v[2] = { 0, 0 };
	const char *p = name + 4;

	if (strlen(name) != 18 || strncmp(name, "seg-", 4) != 0 || name[6] != '-' ||
	    strcmp(name + 15, ".sl") != 0)
		return false;
	for (int f = 0; f < 2; f++) {
		int digits = f == 0 ? 2 : 8;

		for (int i = 0; i < digits; i++, p++) {
			if (*p >= '0' && *p <= '9')
				v[f] = v[f] << 4 | (uint32_t)(*p - '0');
			else if (*p >= 'A' && *p <= 'F')
				v[f] = v[f] << 4 | (uint32_t)(*p - 'A' + 10);
			else
				return false;
		}
		p++; /* the '-' */
	}
	out->writer = v[0];
	out->number = v[1];
	return true;
}

static bool
seg_id_eq(struct seg_id a, struct seg_id b)
{
	return a.writer == b.writer && a.number == b.number;
}

static bool
seg_loc_eq(const struct sl_spool_loc *a, const struct sl_spool_loc *b)
{
	return a->writer == b->writer && a->segment == b->segment && a->offset == b->offset;
}

static uint64_t
seg_reserve(uint64_t size)
{
	uint64_t r = size / 8 < SEG_RESERVE ? size / 8 : SEG_RESERVE;

	return r & ~(uint64_t)(SL_SPOOL__REC_ALIGN - 1);
}

/* ---- the map ---- */

static void
seg_seed_init(void)
{
	if (getrandom(&seg_seed, sizeof(seg_seed), GRND_NONBLOCK) != sizeof(seg_seed))
		seg_seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&seg_seed;
}

static uint64_t
seg_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static size_t
seg_hash(const struct seg_key *k)
{
	uint64_t h = seg_mix(seg_seed ^ k->a);

	h = seg_mix(h ^ k->b);
	return (size_t)seg_mix(h ^ k->c);
}

static bool
seg_key_eq(const struct seg_key *x, const struct seg_key *y)
{
	return x->a == y->a && x->b == y->b && x->c == y->c;
}

static struct seg_key
seg_loc_key(uint32_t writer, uint32_t number, uint64_t offset)
{
	struct seg_key k = { (uint64_t)writer << 32 | number, offset, 1 };

	return k;
}

static struct seg_key
seg_seg_key(struct seg_id id)
{
	struct seg_key k = { (uint64_t)id.writer << 32 | id.number, 0, 2 };

	return k;
}

static struct seg_key
seg_qid_key(const char *qid)
{
	struct seg_key k;

	memcpy(&k, qid, sizeof(k)); /* SL_SPOOL__QID_FIELD bytes, NUL-padded */
	return k;
}

static void *
seg_map_get(const struct seg_map *m, struct seg_key k)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = seg_hash(&k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].val == NULL)
			return NULL;
		if (seg_key_eq(&m->slots[i].k, &k))
			return m->slots[i].val;
	}
}

static void seg_map_put(struct seg_map *m, struct seg_key k, void *val);

static void
seg_map_resize(struct seg_map *m, size_t cap)
{
	struct seg_slot *old = m->slots;
	size_t old_cap = m->cap;

	m->slots = sl_calloc(cap, sizeof(*m->slots));
	m->cap = cap;
	m->cnt = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].val != NULL)
			seg_map_put(m, old[i].k, old[i].val);
	sl_free(old);
}

/* Insert or replace. */
static void
seg_map_put(struct seg_map *m, struct seg_key k, void *val)
{
	size_t i;

	if ((m->cnt + 1) * 2 > m->cap)
		seg_map_resize(m, m->cap ? m->cap * 2 : 64);
	for (i = seg_hash(&k) & (m->cap - 1); m->slots[i].val != NULL; i = (i + 1) & (m->cap - 1))
		if (seg_key_eq(&m->slots[i].k, &k))
			break;
	if (m->slots[i].val == NULL)
		m->cnt++;
	m->slots[i].k = k;
	m->slots[i].val = val;
}

static void
seg_map_del(struct seg_map *m, struct seg_key k)
{
	size_t i, j, mask = m->cap - 1;

	if (m->cap == 0)
		return;
	for (i = seg_hash(&k) & mask;; i = (i + 1) & mask) {
		if (m->slots[i].val == NULL)
			return;
		if (seg_key_eq(&m->slots[i].k, &k))
			break;
	}
	m->slots[i].val = NULL;
	m->cnt--;
	/* pull back later entries of the run that could live at i */
	for (j = (i + 1) & mask; m->slots[j].val != NULL; j = (j + 1) & mask) {
		size_t h = seg_hash(&m->slots[j].k) & mask;

		if (((j - h) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].val = NULL;
			i = j;
		}
	}
}

static void
seg_map_free(struct seg_map *m)
{
	sl_free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* ---- I/O wrappers (fault injection for tests lives here) ---- */

static int
seg_write_all(struct sl_spool_writer *w, int fd, struct iovec *iov, size_t cnt, uint64_t off)
{
	if (w->fail_write != 0) {
		int err = -w->fail_write;

		w->fail_write = 0;
		/* like a real failure, leave part of it behind */
		if (cnt > 0 && iov[0].iov_len > 1)
			(void)!pwrite(fd, iov[0].iov_base, iov[0].iov_len / 2, (off_t)off);
		return err;
	}
	for (;;) {
		ssize_t n;

		while (cnt > 0 && iov->iov_len == 0) {
			iov++;
			cnt--;
		}
		if (cnt == 0)
			break;
		n = pwritev(fd, iov, cnt < SEG_IOV_MAX ? (int)cnt : SEG_IOV_MAX, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			/* a short write: the caller's iovec is scratch, adjust it in place */
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int
seg_sync(struct sl_spool_writer *w, int fd)
{
	if (w->fail_sync != 0) {
		int err = -w->fail_sync;

		w->fail_sync = 0;
		return err;
	}
	sl_spool__fig_add(&w->syncs, 1);
	return fdatasync(fd) < 0 ? -errno : 0;
}

static int
seg_dir_sync(struct sl_spool_writer *w)
{
	struct seg_spool *ss = w->sp->be_state;

	sl_spool__fig_add(&w->dir_syncs, 1);
	return fsync(ss->dirfd) < 0 ? -errno : 0;
}

static int
seg_pread_all(int fd, struct iovec *iov, size_t cnt, uint64_t off)
{
	for (;;) {
		ssize_t n;

		while (cnt > 0 && iov->iov_len == 0) {
			iov++;
			cnt--;
		}
		if (cnt == 0)
			break;
		n = preadv(fd, iov, cnt < SEG_IOV_MAX ? (int)cnt : SEG_IOV_MAX, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the file ends inside the record */
		off += (uint64_t)n;
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
	return 0;
}

/* ---- segments ---- */

static struct seg *
seg_new(struct seg_id id, uint64_t size, int fd)
{
	struct seg *s = SL_NEW(s);

	s->id = id;
	s->fd = fd;
	s->size = size;
	s->end = SL_SPOOL__SEG_HDR_LEN;
	CDS_INIT_LIST_HEAD(&s->msgs);
	CDS_INIT_LIST_HEAD(&s->dead);
	return s;
}

static void
seg_fd_close(struct seg *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

static void
seg_mark_dirty(struct seg_writer *sw, struct seg *s)
{
	if (s->is_dirty)
		return;
	sw->dirty = seg_grow(sw->dirty, &sw->dirty_cap, sw->dirty_cnt + 1, sizeof(*sw->dirty));
	sw->dirty[sw->dirty_cnt++] = s;
	s->is_dirty = true;
}

/* If nothing in s is needed any more, put it where the sweep looks. */
static void
seg_check_dead(struct seg_writer *sw, struct seg *s)
{
	if (s->is_dead || !s->is_sealed || s->is_dirty || s->live > 0 || s->is_kept)
		return;
	s->is_dead = true;
	cds_list_add_tail(&s->dead, &sw->dead);
	sw->needs_sweep = true;
}

/* No more records go to s. */
static void
seg_seal(struct seg_writer *sw, struct seg *s)
{
	s->is_sealed = true;
	if (sw->active == s)
		sw->active = NULL;
	if (!s->is_dirty)
		seg_fd_close(s);
	seg_check_dead(sw, s);
}

/* Forget a segment whose file is gone. */
static void
seg_drop(struct sl_spool_writer *w, struct seg *s)
{
	struct seg_writer *sw = w->be;

	SL_ASSERT(cds_list_empty(&s->msgs) && !s->is_dirty && sw->active != s);
	seg_map_del(&sw->map, seg_seg_key(s->id));
	cds_list_del(&s->node);
	if (s->is_dead)
		cds_list_del(&s->dead);
	seg_fd_close(s);
	sl_spool__fig_add(&w->seg_cnt, -1);
	sl_spool__fig_add(&w->seg_bytes, -(int64_t)s->size);
	sl_free(s->deps);
	sl_free(s);
}

static void
seg_dep_add(struct seg *s, struct seg_id id)
{
	if (seg_id_eq(s->id, id))
		return;
	/* newest first: progress mostly names the segments written just before */
	for (size_t i = s->dep_cnt; i-- > 0;)
		if (seg_id_eq(s->deps[i], id))
			return;
	s->deps = seg_grow(s->deps, &s->dep_cap, s->dep_cnt + 1, sizeof(*s->deps));
	s->deps[s->dep_cnt++] = id;
	s->had_deps = true;
}

static int
seg_zero_fill(struct sl_spool_writer *w, int fd, uint64_t size)
{
	struct iovec iov[16];
	uint64_t off = 0;
	int err = 0;

	while (err == 0 && off < size) {
		uint64_t start = off;
		size_t cnt = 0;

		for (; cnt < SL_ARRAY_LEN(iov) && off < size; cnt++) {
			uint64_t n = size - off < SEG_ZERO_LEN ? size - off : SEG_ZERO_LEN;

			iov[cnt].iov_base = (void *)seg_zeros;
			iov[cnt].iov_len = n;
			off += n;
		}
		err = seg_write_all(w, fd, iov, cnt, start);
	}
	return err;
}

/* Make SpoolBase/reserve if it is not there (best effort). */
static void
seg_reserve_make(struct seg_spool *ss)
{
	int expect = SEG_RESERVE_ABSENT, fd, state = SEG_RESERVE_ABSENT;

	if (!__atomic_compare_exchange_n(&ss->reserve_state, &expect, SEG_RESERVE_BUSY, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	fd = openat(ss->dirfd, SEG_RESERVE_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (fallocate(fd, 0, 0, (off_t)ss->reserve_len) == 0)
			state = SEG_RESERVE_PRESENT;
		else
			unlinkat(ss->dirfd, SEG_RESERVE_NAME, 0);
		close(fd);
	}
	__atomic_store_n(&ss->reserve_state, state, __ATOMIC_RELEASE);
}

/* Give up the reserve for a segment of progress; true if it was there. */
static bool
seg_reserve_take(struct seg_spool *ss)
{
	int expect = SEG_RESERVE_PRESENT;

	if (!__atomic_compare_exchange_n(&ss->reserve_state, &expect, SEG_RESERVE_BUSY, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false;
	unlinkat(ss->dirfd, SEG_RESERVE_NAME, 0);
	__atomic_store_n(&ss->reserve_state, SEG_RESERVE_ABSENT, __ATOMIC_RELEASE);
	return true;
}

/*
 * Create, preallocate and head a new segment of `size` bytes; it becomes
 * the active one.  For progress (prog_need: the bytes it needs, else 0) a
 * full disk gives up the reserve.  On failure nothing is left behind and
 * the active segment is unchanged.
 */
static int
seg_create(struct sl_spool_writer *w, uint64_t size, uint64_t prog_need)
{
	struct seg_writer *sw = w->be;
	struct seg_spool *ss = w->sp->be_state;
	uint8_t hdr[SL_SPOOL__SEG_HDR_LEN], *p = hdr + SL_SPOOL__REC_HDR_LEN;
	struct seg_id id = { w->idx, 0 };
	char name[SEG_NAME_LEN];
	struct iovec iov;
	struct timespec ts;
	struct seg *s;
	int fd = -1, err;

	for (int tries = 0;; tries++) {
		if (sw->next_number == UINT32_MAX) {
			err = -EOVERFLOW;
			goto fail;
		}
		id.number = sw->next_number++;
		seg_name(name, id);
		fd = openat(ss->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || tries >= 1000) {
			err = -errno;
			goto fail;
		}
	}
	sw->has_created = true;
	/* reserve the space now: appends can then not fail for want of it */
	err = fallocate(fd, 0, 0, (off_t)size) < 0 ? -errno : 0;
	if (err == -EOPNOTSUPP)
		err = -posix_fallocate(fd, 0, (off_t)size);
	if (err == -ENOSPC && prog_need > 0 && seg_reserve_take(ss)) {
		if (size > ss->reserve_len && prog_need <= ss->reserve_len)
			size = ss->reserve_len;
		err = fallocate(fd, 0, 0, (off_t)size) < 0 ? -errno : 0;
	}
	if (err < 0)
		goto fail_unlink;
	if (w->sp->opts.use_fsync && w->sp->is_prezero) {
		err = seg_zero_fill(w, fd, size);
		if (err < 0)
			goto fail_unlink;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	sl_spool__hdr_put(hdr, SL_SPOOL__REC_SEGMENT, 0, SL_SPOOL__SEG_PAYLOAD, 0);
	memcpy(p, SL_SPOOL__SEG_MAGIC, 8);
	sl_spool__put32(p + 8, SL_SPOOL__VERSION);
	sl_spool__put32(p + 12, id.writer);
	sl_spool__put32(p + 16, id.number);
	sl_spool__put32(p + 20, 0);
	sl_spool__put64(p + 24, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	sl_spool__put64(p + 32, size);
	sl_spool__put32(hdr + 4, sl_crc32c(sl_spool__hdr_crc(hdr), p, SL_SPOOL__SEG_PAYLOAD));
	iov.iov_base = hdr;
	iov.iov_len = sizeof(hdr);
	err = seg_write_all(w, fd, &iov, 1, 0);
	if (err < 0)
		goto fail_unlink;
	if (w->sp->opts.use_fsync && w->sp->is_prezero) {
		/* the zeros now, so the first commit does not flush the whole segment */
		if (fdatasync(fd) < 0) {
			err = -errno;
			goto fail_unlink;
		}
	}
	s = seg_new(id, size, fd);
	cds_list_add_tail(&s->node, &sw->segs);
	seg_map_put(&sw->map, seg_seg_key(id), s);
	sl_spool__fig_add(&w->seg_cnt, 1);
	sl_spool__fig_add(&w->seg_bytes, (int64_t)size);
	if (sw->active != NULL)
		seg_seal(sw, sw->active);
	sw->active = s;
	return 0;

fail_unlink:
	unlinkat(ss->dirfd, name, 0);
	close(fd);
fail:
	return err;
}

/*
 * Make sure the active segment has room for a record of `len` bytes (with
 * padding): a message must leave the reserve free, progress may use it.
 */
static int
seg_room(struct sl_spool_writer *w, uint64_t len, bool is_msg)
{
	struct seg_writer *sw = w->be;
	struct seg *s = sw->active;
	uint64_t size = w->sp->opts.segment_size;

	if (s != NULL && s->end + len + (is_msg ? seg_reserve(s->size) : 0) <= s->size)
		return 0;
	if (SL_SPOOL__SEG_HDR_LEN + len + (is_msg ? seg_reserve(size) : 0) > size) {
		/* larger than a segment: one sized to fit */
		size = (SL_SPOOL__SEG_HDR_LEN + len + SEG_RESERVE + 4095) & ~(uint64_t)4095;
	}
	return seg_create(w, size, is_msg ? 0 : SL_SPOOL__SEG_HDR_LEN + len);
}

/*
 * Write one record: iov[0] starts with SL_SPOOL__REC_HDR_LEN bytes of
 * header space (and may go on with payload); iov[1..cnt-1] the rest of the
 * payload; the array has room for one more (padding).  On success *seg_out
 * and *loc say where it went.  A failed write seals the segment: the next
 * record goes to a new one, never after garbage.
 */
static int
seg_write_rec(struct sl_spool_writer *w, uint16_t type, uint16_t flags, struct iovec *iov,
	      size_t cnt, uint64_t payload_len, bool is_msg, struct seg **seg_out,
	      struct sl_spool_loc *loc)
{
	struct seg_writer *sw = w->be;
	uint64_t rec_len = SL_SPOOL__REC_HDR_LEN + payload_len, padded = sl_spool__align(rec_len);
	uint8_t *h = iov[0].iov_base;
	struct seg *s;
	uint32_t crc;
	int err;

	if (rec_len > SL_SPOOL_MAX_RECORD)
		return -EFBIG;
	err = seg_room(w, padded, is_msg);
	if (err < 0)
		return err;
	s = sw->active;
	sl_spool__hdr_put(h, type, flags, (uint32_t)payload_len, s->end);
	crc = sl_spool__hdr_crc(h);
	crc = sl_crc32c(crc, h + SL_SPOOL__REC_HDR_LEN, iov[0].iov_len - SL_SPOOL__REC_HDR_LEN);
	for (size_t i = 1; i < cnt; i++)
		crc = sl_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	sl_spool__put32(h + 4, crc);
	if (padded > rec_len) {
		iov[cnt].iov_base = (void *)seg_zeros;
		iov[cnt].iov_len = padded - rec_len;
		cnt++;
	}
	err = seg_write_all(w, s->fd, iov, cnt, s->end);
	if (err < 0) {
		seg_seal(sw, s);
		return err;
	}
	loc->writer = s->id.writer;
	loc->segment = s->id.number;
	loc->offset = s->end;
	loc->length = rec_len;
	s->end += padded;
	seg_mark_dirty(sw, s);
	*seg_out = s;
	return 0;
}

/* Write message m as a record with queue id `qid` and statuses `status` (NULL: m's). */
static int
seg_write_msg(struct sl_spool_writer *w, const struct sl_msg *m, const char *qid,
	      const uint8_t *status, uint16_t flags, struct seg **seg_out, struct sl_spool_loc *loc)
{
	struct seg_writer *sw = w->be;
	size_t n;
	int err;

	sl_buf_reset(&w->scratch);
	sl_buf_reserve(&w->scratch, SL_SPOOL__REC_HDR_LEN);
	w->scratch.len = SL_SPOOL__REC_HDR_LEN;
	err = sl_spool__env_encode(&w->scratch, m, qid, status);
	if (err < 0)
		return err;
	n = sl_msg_iov(m, NULL, 0);
	sw->iov = seg_grow(sw->iov, &sw->iov_cap, n + 2, sizeof(*sw->iov));
	sw->iov[0].iov_base = w->scratch.data;
	sw->iov[0].iov_len = w->scratch.len;
	sl_msg_iov(m, sw->iov + 1, n);
	return seg_write_rec(w, SL_SPOOL__REC_MESSAGE, flags, sw->iov, n + 1,
			     w->scratch.len - SL_SPOOL__REC_HDR_LEN + sl_msg_size(m), true, seg_out,
			     loc);
}

/* ---- the books ---- */

static struct seg_msg *
seg_msg_new(uint32_t rcpt_cnt)
{
	struct seg_msg *e = sl_calloc(1, sizeof(*e) + rcpt_cnt);

	e->rcpt_cnt = rcpt_cnt;
	return e;
}

static void
seg_msg_add_loc(struct seg_writer *sw, struct seg_msg *e, const struct sl_spool_loc *loc)
{
	e->locs = sl_reallocarray(e->locs, e->loc_cnt + 1, sizeof(*e->locs));
	e->locs[e->loc_cnt++] = *loc;
	seg_map_put(&sw->map, seg_loc_key(loc->writer, loc->segment, loc->offset), e);
}

/* Home e in s (its record there is `len` bytes with padding, at loc). */
static void
seg_msg_home(struct seg_msg *e, struct seg *s, const struct sl_spool_loc *loc, uint64_t len)
{
	if (e->home != NULL)
		cds_list_del(&e->node);
	cds_list_add_tail(&e->node, &s->msgs);
	e->home = s;
	e->home_loc = *loc;
	e->rec_len = len;
	s->live++;
	s->live_bytes += len;
}

static void
seg_op_push(struct seg_writer *sw, struct seg_msg *e, uint32_t rcpt_idx, uint8_t status)
{
	sw->ops = seg_grow(sw->ops, &sw->op_cap, sw->op_cnt + 1, sizeof(*sw->ops));
	sw->ops[sw->op_cnt].msg = e;
	sw->ops[sw->op_cnt].rcpt_idx = rcpt_idx;
	sw->ops[sw->op_cnt].status = status;
	sw->op_cnt++;
}

static void
seg_msg_finish(struct seg_writer *sw, struct seg_msg *e)
{
	e->is_finished = true;
	sw->fin = seg_grow(sw->fin, &sw->fin_cap, sw->fin_cnt + 1, sizeof(*sw->fin));
	sw->fin[sw->fin_cnt++] = e;
}

/* A move of e is durable: its older locs now lead readers to its new home. */
static void
seg_fwd_publish(struct sl_spool_writer *w, const struct seg_msg *e)
{
	struct seg_spool *ss = w->sp->be_state;

	pthread_mutex_lock(&ss->fwd_lock);
	for (uint32_t i = 0; i < e->loc_cnt; i++) {
		const struct sl_spool_loc *l = &e->locs[i];
		struct seg_key k = seg_loc_key(l->writer, l->segment, l->offset);
		struct sl_spool_loc *to;

		if (seg_loc_eq(l, &e->home_loc))
			continue;
		to = seg_map_get(&ss->fwd, k);
		if (to == NULL) {
			to = sl_malloc(sizeof(*to));
			seg_map_put(&ss->fwd, k, to);
		}
		*to = e->home_loc;
	}
	pthread_mutex_unlock(&ss->fwd_lock);
}

/* e is finished for good: nobody may read it any more. */
static void
seg_fwd_forget(struct sl_spool_writer *w, const struct seg_msg *e)
{
	struct seg_spool *ss = w->sp->be_state;

	if (e->loc_cnt < 2)
		return; /* never moved: never published */
	pthread_mutex_lock(&ss->fwd_lock);
	for (uint32_t i = 0; i < e->loc_cnt; i++) {
		const struct sl_spool_loc *l = &e->locs[i];
		struct seg_key k = seg_loc_key(l->writer, l->segment, l->offset);
		struct sl_spool_loc *to = seg_map_get(&ss->fwd, k);

		if (to != NULL) {
			seg_map_del(&ss->fwd, k);
			sl_free(to);
		}
	}
	pthread_mutex_unlock(&ss->fwd_lock);
}

/* Its finish is durable: forget it. */
static void
seg_msg_release(struct sl_spool_writer *w, struct seg_msg *e)
{
	struct seg_writer *sw = w->be;

	seg_fwd_forget(w, e);

	e->home->live--;
	e->home->live_bytes -= e->rec_len;
	seg_check_dead(sw, e->home);
	for (uint32_t i = 0; i < e->loc_cnt; i++)
		seg_map_del(&sw->map,
			    seg_loc_key(e->locs[i].writer, e->locs[i].segment, e->locs[i].offset));
	cds_list_del(&e->node);
	sl_free(e->locs);
	sl_free(e);
	sl_spool__fig_add(&w->live, -1);
}

static bool
seg_dep_present(struct sl_spool_writer *w, struct seg_id id)
{
	struct seg_writer *sw = w->be;
	struct seg_spool *ss = w->sp->be_state;
	char name[SEG_NAME_LEN];

	if (id.writer % w->sp->opts.writer_cnt == w->idx)
		return seg_map_get(&sw->map, seg_seg_key(id)) != NULL;
	/* another writer's books: the directory is the truth */
	seg_name(name, id);
	return faccessat(ss->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
}

static bool
seg_removable(struct sl_spool_writer *w, struct seg *s)
{
	size_t i = 0;

	while (i < s->dep_cnt) {
		if (seg_dep_present(w, s->deps[i]))
			return false;
		s->deps[i] = s->deps[--s->dep_cnt]; /* gone for good */
	}
	return true;
}

/*
 * Unlink the dead segments whose deps are gone; returns how many went.  A
 * segment holding progress for others goes only after a directory fsync,
 * so its unlink cannot reach the disk before theirs (a dependent waits a
 * round for what it depends on).
 */
static unsigned
seg_sweep(struct sl_spool_writer *w)
{
	struct seg_writer *sw = w->be;
	struct seg_spool *ss = w->sp->be_state;
	unsigned removed = 0;
	char name[SEG_NAME_LEN];
	struct seg *s, *tmp;

	sw->needs_sweep = false;
	for (;;) {
		unsigned doomed = 0, gone = 0;
		bool had_deps = false;

		cds_list_for_each_entry (s, &sw->dead, dead) {
			s->is_doomed = seg_removable(w, s);
			doomed += s->is_doomed;
			had_deps = had_deps || (s->is_doomed && s->had_deps);
		}
		if (doomed == 0)
			break;
		if (had_deps && w->sp->opts.use_fsync && seg_dir_sync(w) < 0)
			break;
		cds_list_for_each_entry_safe (s, tmp, &sw->dead, dead) {
			if (!s->is_doomed)
				continue;
			s->is_doomed = false;
			seg_name(name, s->id);
			if (unlinkat(ss->dirfd, name, 0) == 0 || errno == ENOENT) {
				seg_drop(w, s);
				gone++;
			}
		}
		removed += gone;
		if (gone == 0)
			break; /* unlink fails: try again at a later sweep */
	}
	if (removed > 0)
		seg_reserve_make(ss);
	return removed;
}

/* ---- reading a message record ---- */

static int
seg_read_fd(int fd, const struct sl_spool_loc *loc, struct sl_msg **out)
{
	uint8_t first[SL_SPOOL__REC_HDR_LEN + 4096], *envbuf = NULL;
	const uint8_t *envp;
	struct sl_spool__hdr h;
	struct sl_spool__env env;
	struct sl_msg *m = NULL;
	struct iovec *iov = NULL;
	size_t want, cnt;
	uint32_t crc, env_len;
	ssize_t n;
	int err;

	if (loc->length < SL_SPOOL__REC_HDR_LEN + SL_SPOOL__ENV_FIXED ||
	    loc->length > SL_SPOOL_MAX_RECORD) {
		err = -EINVAL;
		goto fail;
	}
	want = loc->length < sizeof(first) ? (size_t)loc->length : sizeof(first);
	n = pread(fd, first, want, (off_t)loc->offset);
	if (n < 0 || (size_t)n < want) {
		err = n < 0 ? -errno : -EIO;
		goto fail;
	}
	if (!sl_spool__hdr_get(first, &h) || h.type != SL_SPOOL__REC_MESSAGE ||
	    h.offset != loc->offset || (uint64_t)h.len + SL_SPOOL__REC_HDR_LEN != loc->length) {
		err = -EIO;
		goto fail;
	}
	env_len = sl_spool__get32(first + SL_SPOOL__REC_HDR_LEN);
	if (env_len < SL_SPOOL__ENV_FIXED || env_len > h.len) {
		err = -EIO;
		goto fail;
	}
	if (SL_SPOOL__REC_HDR_LEN + env_len <= want) {
		envp = first + SL_SPOOL__REC_HDR_LEN;
	} else {
		envbuf = sl_malloc(env_len);
		n = pread(fd, envbuf, env_len, (off_t)(loc->offset + SL_SPOOL__REC_HDR_LEN));
		if (n < 0 || (size_t)n < env_len) {
			err = n < 0 ? -errno : -EIO;
			goto fail;
		}
		envp = envbuf;
	}
	m = sl_msg_new();
	if (sl_spool__env_parse(envp, env_len, h.len, &env, m) < 0) {
		err = -EIO;
		goto fail;
	}
	crc = sl_crc32c(sl_spool__hdr_crc(first), envp, env_len);
	cnt = sl_spool__content_alloc(m, env.head_len, env.content_len, &iov);
	{
		/* preadv consumes the iovecs: CRC from a copy of their bases */
		struct iovec *io = sl_calloc(cnt, sizeof(*io));

		memcpy(io, iov, cnt * sizeof(*io));
		err = seg_pread_all(fd, io, cnt, loc->offset + SL_SPOOL__REC_HDR_LEN + env_len);
		sl_free(io);
	}
	if (err < 0)
		goto fail;
	for (size_t i = 0; i < cnt; i++)
		crc = sl_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	if (crc != h.crc) {
		err = -EIO;
		goto fail;
	}
	m->loc = *loc;
	*out = m;
	sl_free(iov);
	sl_free(envbuf);
	return 0;

fail:
	sl_free(iov);
	sl_msg_free(m);
	sl_free(envbuf);
	return err;
}

static int
seg_read_file(int dirfd, const struct sl_spool_loc *loc, struct sl_msg **out)
{
	struct seg_id id = { loc->writer, loc->segment };
	char name[SEG_NAME_LEN];
	int fd, err;

	seg_name(name, id);
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = seg_read_fd(fd, loc, out);
	close(fd);
	return err;
}

/* ---- backend: open, close, writers ---- */

/* mkdir -p, syncing each parent a directory was created in. */
static int
seg_mkdirs(const char *dir)
{
	char *path = sl_strdup(dir), *p = path;
	int err = 0;

	while (err == 0) {
		char *slash = strchr(p + (*p == '/'), '/');
		char saved;

		if (slash != NULL) {
			saved = *slash;
			*slash = '\0';
		}
		if (mkdir(path, 0700) == 0) {
			char *parent = sl_strdup(path), *ps = strrchr(parent, '/');
			int fd;

			if (ps == parent)
				ps[1] = '\0';
			else if (ps != NULL)
				*ps = '\0';
			else
				strcpy(parent, ".");
			fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd >= 0) {
				fsync(fd);
				close(fd);
			}
			sl_free(parent);
		} else if (errno != EEXIST) {
			err = -errno;
		}
		if (slash == NULL)
			break;
		*slash = saved;
		p = slash + 1;
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
	}
	sl_free(path);
	return err;
}

static int
seg_open(struct sl_spool *sp, char *why, size_t why_len)
{
	struct seg_spool *ss = SL_NEW(ss);
	int err;

	pthread_once(&seg_seed_once, seg_seed_init);
	ss->dirfd = ss->lockfd = -1;
	err = seg_mkdirs(sp->dir);
	if (err < 0) {
		snprintf(why, why_len, "cannot create spool directory %s: %s", sp->dir,
			 strerror(-err));
		goto fail;
	}
	ss->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ss->dirfd < 0) {
		err = -errno;
		snprintf(why, why_len, "cannot open spool directory %s: %s", sp->dir,
			 strerror(-err));
		goto fail;
	}
	ss->lockfd = openat(ss->dirfd, SEG_LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ss->lockfd < 0) {
		err = -errno;
		snprintf(why, why_len, "cannot open %s/%s: %s", sp->dir, SEG_LOCK_NAME,
			 strerror(-err));
		goto fail_dir;
	}
	if (flock(ss->lockfd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(why, why_len, "spool directory %s is in use by another sluiced (lock %s)",
			 sp->dir, SEG_LOCK_NAME);
		goto fail_lock;
	}
	ss->reserve_len =
		sp->opts.segment_size < SEG_RESERVE_FILE ? sp->opts.segment_size : SEG_RESERVE_FILE;
	seg_reserve_make(ss);
	pthread_mutex_init(&ss->fwd_lock, NULL);
	sp->be_state = ss;
	return 0;

fail_lock:
	close(ss->lockfd);
fail_dir:
	close(ss->dirfd);
fail:
	sl_free(ss);
	return err;
}

static void
seg_close(struct sl_spool *sp)
{
	struct seg_spool *ss = sp->be_state;

	close(ss->lockfd); /* releases the flock */
	close(ss->dirfd);
	for (size_t i = 0; i < ss->fwd.cap; i++)
		sl_free(ss->fwd.slots[i].val);
	seg_map_free(&ss->fwd);
	pthread_mutex_destroy(&ss->fwd_lock);
	sl_free(ss);
	sp->be_state = NULL;
}

static void
seg_writer_init(struct sl_spool_writer *w)
{
	struct seg_writer *sw = SL_NEW(sw);

	CDS_INIT_LIST_HEAD(&sw->segs);
	CDS_INIT_LIST_HEAD(&sw->dead);
	sw->next_number = 1;
	w->be = sw;
}

static void
seg_writer_fini(struct sl_spool_writer *w)
{
	struct seg_writer *sw = w->be;
	struct seg *s, *stmp;
	struct seg_msg *e, *etmp;

	cds_list_for_each_entry_safe (s, stmp, &sw->segs, node) {
		cds_list_for_each_entry_safe (e, etmp, &s->msgs, node) {
			sl_free(e->locs);
			sl_free(e);
		}
		seg_fd_close(s);
		sl_free(s->deps);
		sl_free(s);
	}
	seg_map_free(&sw->map);
	sl_free(sw->ops);
	sl_free(sw->fresh);
	sl_free(sw->fin);
	sl_free(sw->moves);
	sl_free(sw->dirty);
	sl_free(sw->iov);
	sl_buf_free(&sw->prog);
	sl_free(sw);
	w->be = NULL;
}

/* ---- backend: append, progress, commit, compact, read ---- */

static int
seg_append(struct sl_spool_writer *w, struct sl_msg *m)
{
	struct seg_writer *sw = w->be;
	char qid[SL_MSG_QID_LEN];
	struct sl_spool_loc loc;
	struct seg_msg *e;
	struct seg *s;
	int err;

	sl_spool__qid_next(w, qid);
	err = seg_write_msg(w, m, qid, NULL, 0, &s, &loc);
	if (err < 0)
		return err;
	e = seg_msg_new((uint32_t)m->rcpt_cnt);
	memcpy(e->qid, qid, sizeof(e->qid));
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		e->status[i] = (uint8_t)m->rcpts[i].status;
		e->pending_cnt += m->rcpts[i].status == SL_RCPT_PENDING;
	}
	seg_msg_add_loc(sw, e, &loc);
	seg_msg_home(e, s, &loc, sl_spool__align(loc.length));
	sw->fresh = seg_grow(sw->fresh, &sw->fresh_cap, sw->fresh_cnt + 1, sizeof(*sw->fresh));
	sw->fresh[sw->fresh_cnt++] = e;
	memcpy(m->qid, qid, sizeof(m->qid));
	m->loc = loc;
	sl_spool__fig_add(&w->appended, 1);
	sl_spool__fig_add(&w->live, 1);
	return 0;
}

static int
seg_progress(struct sl_spool_writer *w, const struct sl_spool_loc *loc, uint32_t rcpt_idx,
	     enum sl_rcpt_status status)
{
	struct seg_writer *sw = w->be;
	struct seg_msg *e =
		seg_map_get(&sw->map, seg_loc_key(loc->writer, loc->segment, loc->offset));

	if (e == NULL)
		return -ENOENT;
	if (e->is_finished)
		return 0;
	if (rcpt_idx == UINT32_MAX) {
		seg_op_push(sw, e, rcpt_idx, (uint8_t)status);
		seg_msg_finish(sw, e);
		return 0;
	}
	if (rcpt_idx >= e->rcpt_cnt)
		return -EINVAL;
	if (e->status[rcpt_idx] != SL_RCPT_PENDING)
		return 0; /* a final outcome stays final */
	e->status[rcpt_idx] = (uint8_t)status;
	seg_op_push(sw, e, rcpt_idx, (uint8_t)status);
	if (--e->pending_cnt == 0)
		seg_msg_finish(sw, e);
	return 0;
}

/* Write the buffered progress as records; each remembers what it must outlive. */
static int
seg_flush_ops(struct sl_spool_writer *w)
{
	struct seg_writer *sw = w->be;

	while (sw->op_done < sw->op_cnt) {
		size_t n = sw->op_cnt - sw->op_done, plen;
		struct sl_spool_loc loc;
		struct iovec iov[2];
		struct seg *s;
		uint8_t *p;
		int err;

		if (n > SL_SPOOL__MAX_PROG)
			n = SL_SPOOL__MAX_PROG;
		plen = SL_SPOOL__PROG_FIXED + n * SL_SPOOL__PROG_ENTRY;
		sl_buf_reset(&sw->prog);
		p = (uint8_t *)sl_buf_reserve(&sw->prog, SL_SPOOL__REC_HDR_LEN + plen);
		memset(p, 0, SL_SPOOL__REC_HDR_LEN + plen);
		sw->prog.len = SL_SPOOL__REC_HDR_LEN + plen;
		p += SL_SPOOL__REC_HDR_LEN;
		sl_spool__put32(p, (uint32_t)n);
		p += SL_SPOOL__PROG_FIXED;
		for (size_t i = 0; i < n; i++, p += SL_SPOOL__PROG_ENTRY) {
			const struct seg_op *op = &sw->ops[sw->op_done + i];

			memcpy(p, op->msg->qid, SL_SPOOL__QID_FIELD);
			sl_spool__put32(p + 24, op->rcpt_idx);
			sl_spool__put32(p + 28, op->status);
		}
		iov[0].iov_base = sw->prog.data;
		iov[0].iov_len = sw->prog.len;
		err = seg_write_rec(w, SL_SPOOL__REC_PROGRESS, 0, iov, 1, plen, false, &s, &loc);
		if (err < 0)
			return err;
		for (size_t i = 0; i < n; i++) {
			const struct seg_msg *e = sw->ops[sw->op_done + i].msg;

			for (uint32_t k = 0; k < e->loc_cnt; k++) {
				struct seg_id id = { e->locs[k].writer, e->locs[k].segment };

				if (seg_dep_present(w, id))
					seg_dep_add(s, id);
			}
		}
		sw->op_done += n;
	}
	return 0;
}

/*
 * A commit failed: nothing since the last good one can be trusted to be on
 * disk (after a failed fdatasync the kernel may have dropped the pages, and
 * a retry can report success for data that is gone).  Start a new segment,
 * rewrite the progress there, undo the moves, and abandon the new messages
 * (the caller tells their clients 4xx): finish them, so that recovery does
 * not deliver what may or may not have reached the disk.
 */
static void
seg_commit_failed(struct sl_spool_writer *w)
{
	struct seg_writer *sw = w->be;

	if (sw->active != NULL)
		seg_seal(sw, sw->active);
	for (size_t i = sw->move_cnt; i-- > 0;) {
		struct seg_move *mv = &sw->moves[i];
		struct seg_msg *e = mv->msg;

		e->home->live--;
		e->home->live_bytes -= e->rec_len;
		mv->from->live--; /* seg_msg_home counts it again */
		mv->from->live_bytes -= mv->from_len;
		seg_msg_home(e, mv->from, &mv->from_loc, mv->from_len);
	}
	for (size_t i = 0; i < sw->dirty_cnt; i++) {
		sw->dirty[i]->is_dirty = false;
		if (sw->dirty[i]->is_sealed)
			seg_fd_close(sw->dirty[i]);
		seg_check_dead(sw, sw->dirty[i]);
	}
	sw->dirty_cnt = 0;
	sw->move_cnt = 0;
	for (size_t i = 0; i < sw->fresh_cnt; i++) {
		struct seg_msg *e = sw->fresh[i];

		if (!e->is_finished) {
			seg_op_push(sw, e, UINT32_MAX, SL_RCPT_FAILED);
			seg_msg_finish(sw, e);
		}
	}
	sw->fresh_cnt = 0;
	sw->op_done = 0;
}

static int
seg_commit(struct sl_spool_writer *w)
{
	struct seg_writer *sw = w->be;
	bool use_fsync = w->sp->opts.use_fsync, had_work;
	int err;

	had_work = sw->dirty_cnt > 0 || sw->op_done < sw->op_cnt || sw->fin_cnt > 0;
	if (!had_work && !sw->needs_sweep)
		return 0;
	err = seg_flush_ops(w);
	if (err < 0)
		goto fail;
	if (use_fsync) {
		for (size_t i = 0; i < sw->dirty_cnt; i++) {
			err = seg_sync(w, sw->dirty[i]->fd);
			if (err < 0)
				goto fail;
		}
		if (sw->has_created) {
			err = seg_dir_sync(w);
			if (err < 0)
				goto fail;
		}
	}
	/* durable: now the books may count it */
	sw->has_created = false;
	for (size_t i = 0; i < sw->dirty_cnt; i++) {
		sw->dirty[i]->is_dirty = false;
		if (sw->dirty[i]->is_sealed)
			seg_fd_close(sw->dirty[i]);
	}
	for (size_t i = 0; i < sw->move_cnt; i++) {
		sw->moves[i].from->live--;
		sw->moves[i].from->live_bytes -= sw->moves[i].from_len;
		seg_check_dead(sw, sw->moves[i].from);
		/* before the sweep below may unlink the old segment */
		seg_fwd_publish(w, sw->moves[i].msg);
	}
	for (size_t i = 0; i < sw->fin_cnt; i++)
		seg_msg_release(w, sw->fin[i]);
	for (size_t i = 0; i < sw->dirty_cnt; i++)
		seg_check_dead(sw, sw->dirty[i]);
	sw->dirty_cnt = 0;
	sw->move_cnt = sw->fin_cnt = sw->fresh_cnt = 0;
	sw->op_cnt = sw->op_done = 0;
	if (had_work)
		sl_spool__fig_add(&w->commits, 1);
	if (sw->needs_sweep)
		seg_sweep(w);
	return 0;

fail:
	seg_commit_failed(w);
	return err;
}

/* Copy e forward into the active segment with its current statuses. */
static int
seg_copy(struct sl_spool_writer *w, struct seg_msg *e)
{
	struct seg_writer *sw = w->be;
	struct seg_spool *ss = w->sp->be_state;
	struct sl_spool_loc loc;
	struct sl_msg *m;
	struct seg *s;
	int err;

	err = seg_read_file(ss->dirfd, &e->home_loc, &m);
	if (err < 0)
		return err;
	err = seg_write_msg(w, m, e->qid, e->status, SL_SPOOL__REC_F_COPY, &s, &loc);
	sl_msg_free(m);
	if (err < 0)
		return err;
	sw->moves = seg_grow(sw->moves, &sw->move_cap, sw->move_cnt + 1, sizeof(*sw->moves));
	sw->moves[sw->move_cnt].msg = e;
	sw->moves[sw->move_cnt].from = e->home;
	sw->moves[sw->move_cnt].from_loc = e->home_loc;
	sw->moves[sw->move_cnt].from_len = e->rec_len;
	sw->move_cnt++;
	seg_msg_add_loc(sw, e, &loc);
	/* the old home keeps counting it until the copy is durable */
	seg_msg_home(e, s, &loc, sl_spool__align(loc.length));
	return 0;
}

static bool
seg_compactable(const struct seg_writer *sw, const struct seg *s, double live_ratio)
{
	uint64_t used;

	if (s == sw->active || !s->is_sealed || s->is_dirty || s->live == 0)
		return false;
	used = s->end > SL_SPOOL__SEG_HDR_LEN ? s->end - SL_SPOOL__SEG_HDR_LEN : 1;
	return (double)s->live_bytes < live_ratio * (double)used;
}

static int
seg_compact(struct sl_spool_writer *w, double live_ratio, uint64_t max_bytes,
	    void (*moved_fn)(const char *qid, const struct sl_spool_loc *to, void *arg), void *arg)
{
	struct seg_writer *sw = w->be;
	struct seg *s, *last;
	struct seg_msg *e, *etmp;
	uint64_t bytes = 0;
	int moved = 0, err = 0;

	if (cds_list_empty(&sw->segs))
		return 0;
	/* copies may add segments at the tail: stop at the newest one of now */
	last = cds_list_entry(sw->segs.prev, struct seg, node);
	cds_list_for_each_entry (s, &sw->segs, node) {
		if (seg_compactable(sw, s, live_ratio)) {
			cds_list_for_each_entry_safe (e, etmp, &s->msgs, node) {
				if (e->is_finished || e->home != s)
					continue;
				if (bytes > 0 && bytes + e->rec_len > max_bytes)
					goto out;
				err = seg_copy(w, e);
				if (err < 0)
					goto out;
				bytes += e->rec_len;
				moved++;
				if (moved_fn != NULL)
					moved_fn(e->qid, &e->home_loc, arg);
			}
		}
		if (s == last)
			break;
	}
out:
	return err < 0 && moved == 0 ? err : moved;
}

/*
 * Read at loc; when its segment is gone, follow the message to where
 * compaction moved it.  The new home may itself be moved and its segment
 * removed between the look-up and the open: look again (the map always
 * names the newest home), a few times.
 */
static int
seg_read(struct sl_spool *sp, const struct sl_spool_loc *loc, struct sl_msg **out)
{
	struct seg_spool *ss = sp->be_state;
	struct seg_key k = seg_loc_key(loc->writer, loc->segment, loc->offset);
	struct sl_spool_loc at = *loc;
	int err;

	for (int hops = 0;; hops++) {
		const struct sl_spool_loc *to;
		bool is_new = false;

		err = seg_read_file(ss->dirfd, &at, out);
		if (err != -ENOENT || hops >= 8)
			break;
		pthread_mutex_lock(&ss->fwd_lock);
		to = seg_map_get(&ss->fwd, k);
		if (to != NULL && !seg_loc_eq(to, &at)) {
			at = *to;
			is_new = true;
		}
		pthread_mutex_unlock(&ss->fwd_lock);
		if (!is_new)
			break;
	}
	return err;
}

/* ---- recovery ---- */

struct rec_copy {
	struct seg *seg;
	struct sl_spool_loc loc;
	uint64_t padded;
};

struct rec_prog {
	uint32_t rcpt_idx;
	uint8_t status;
};

/* Everything recovery learnt about one queue id. */
struct rec_msg {
	char qid[SL_SPOOL__QID_FIELD];
	bool has_msg;  /* a message record was seen */
	bool is_whole; /* a "whole message finished" progress entry was seen */
	uint32_t rcpt_cnt;
	uint8_t *status;       /* owned, rcpt_cnt, once has_msg */
	struct rec_prog *pend; /* owned: progress seen before the message */
	size_t pend_cnt, pend_cap;
	struct rec_copy *copies; /* owned */
	size_t copy_cnt, copy_cap;
	struct seg **psegs; /* owned array: segments holding progress for it */
	size_t pseg_cnt, pseg_cap;
};

struct rec_rd {
	int fd;
	uint64_t size;
	uint8_t *buf; /* owned, SEG_RD_CAP */
	uint64_t base;
	size_t len;
};

struct rec_ctx {
	struct sl_spool *sp;
	struct seg_spool *ss;
	struct seg_map qids;   /* qid -> rec_msg */
	struct rec_msg **msgs; /* owned, first-seen order */
	size_t msg_cnt, msg_cap;
	struct seg **segs; /* loaded segments, (writer, number) order; handed to writers */
	size_t seg_cnt, seg_cap;
	struct sl_buf envbuf;
	const char *name; /* segment being read */
	void (*log_fn)(const char *line, void *arg);
	void *arg;
	struct sl_spool_recover_stats *stats;
};

static void __attribute__((format(printf, 2, 3))) rec_log(struct rec_ctx *rc, const char *fmt, ...)
{
	char line[256];
	int n;
	va_list ap;

	if (rc->log_fn == NULL)
		return;
	n = snprintf(line, sizeof(line), "spool %s: ", rc->name);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	rc->log_fn(line, rc->arg);
}

/* Bytes [off, off+len) of the file, len <= SEG_RD_CAP; NULL past the end or on error. */
static const uint8_t *
rec_get(struct rec_rd *r, uint64_t off, size_t len)
{
	size_t want, got = 0;

	if (len > SEG_RD_CAP || off > r->size || r->size - off < len)
		return NULL;
	if (off >= r->base && off + len <= r->base + r->len)
		return r->buf + (off - r->base);
	want = r->size - off < SEG_RD_CAP ? (size_t)(r->size - off) : SEG_RD_CAP;
	while (got < want) {
		ssize_t n = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	r->base = off;
	r->len = got;
	return got >= len ? r->buf : NULL;
}

/* Is there a whole, intact record at off?  Fills *h. */
static bool
rec_check(struct rec_rd *r, uint64_t off, struct sl_spool__hdr *h)
{
	const uint8_t *p = rec_get(r, off, SL_SPOOL__REC_HDR_LEN);
	uint64_t pos, left;
	uint32_t crc;

	if (p == NULL || !sl_spool__hdr_get(p, h) || h->offset != off ||
	    h->type < SL_SPOOL__REC_SEGMENT || h->type > SL_SPOOL__REC_PROGRESS ||
	    h->len > SL_SPOOL_MAX_RECORD - SL_SPOOL__REC_HDR_LEN ||
	    h->len > r->size - off - SL_SPOOL__REC_HDR_LEN)
		return false;
	crc = sl_spool__hdr_crc(p);
	for (pos = off + SL_SPOOL__REC_HDR_LEN, left = h->len; left > 0;) {
		size_t n = left < SEG_RD_CAP ? (size_t)left : SEG_RD_CAP;

		p = rec_get(r, pos, n);
		if (p == NULL)
			return false;
		crc = sl_crc32c(crc, p, n);
		pos += n;
		left -= n;
	}
	return crc == h->crc;
}

/*
 * From `off` (where no record is), find the next intact record at an
 * aligned offset after it.  Returns its offset, or UINT64_MAX; *nz_end is
 * then one past the last non-zero byte at or after off (off if none).
 */
static uint64_t
rec_seek(struct rec_rd *r, uint64_t off, uint64_t *nz_end)
{
	struct sl_spool__hdr h;
	uint64_t pos = off;

	*nz_end = off;
	while (pos < r->size) {
		size_t n = r->size - pos < SEG_RD_CAP ? (size_t)(r->size - pos) : SEG_RD_CAP;
		const uint8_t *p = rec_get(r, pos, n);

		if (p == NULL)
			break;
		for (size_t i = n; i > 0; i--) {
			if (p[i - 1] != 0) {
				*nz_end = pos + i > *nz_end ? pos + i : *nz_end;
				break;
			}
		}
		for (size_t i = 0; i + 4 <= n; i += SL_SPOOL__REC_ALIGN) {
			if (pos + i <= off || sl_spool__get32(p + i) != SL_SPOOL__REC_MAGIC)
				continue;
			if (rec_check(r, pos + i, &h))
				return pos + i;
			p = rec_get(r, pos, n); /* the check moved the window */
			if (p == NULL)
				return UINT64_MAX;
		}
		pos += n;
	}
	return UINT64_MAX;
}

static struct rec_msg *
rec_msg_get(struct rec_ctx *rc, const char *qid)
{
	struct seg_key k = seg_qid_key(qid);
	struct rec_msg *rm = seg_map_get(&rc->qids, k);

	if (rm == NULL) {
		rm = SL_NEW(rm);
		memcpy(rm->qid, qid, sizeof(rm->qid));
		seg_map_put(&rc->qids, k, rm);
		rc->msgs = seg_grow(rc->msgs, &rc->msg_cap, rc->msg_cnt + 1, sizeof(*rc->msgs));
		rc->msgs[rc->msg_cnt++] = rm;
	}
	return rm;
}

static void
rec_msg_free(struct rec_msg *rm)
{
	sl_free(rm->status);
	sl_free(rm->pend);
	sl_free(rm->copies);
	sl_free(rm->psegs);
	sl_free(rm);
}

static void
rec_apply(struct rec_ctx *rc, struct rec_msg *rm, uint32_t idx, uint8_t status)
{
	if (idx >= rm->rcpt_cnt) {
		rc->stats->damaged++;
		rec_log(rc, "progress for %s names recipient %u of %u; ignored", rm->qid, idx,
			rm->rcpt_cnt);
		return;
	}
	if (rm->status[idx] == SL_RCPT_PENDING)
		rm->status[idx] = status;
}

static void
rec_message(struct rec_ctx *rc, struct rec_rd *r, struct seg *s, uint64_t off,
	    const struct sl_spool__hdr *h)
{
	uint64_t body = off + SL_SPOOL__REC_HDR_LEN;
	struct sl_spool__env env;
	const uint8_t *p = rec_get(r, body, 4);
	struct rec_msg *rm;
	struct rec_copy *c;
	uint32_t env_len;

	if (h->len < SL_SPOOL__ENV_FIXED || p == NULL)
		goto fail_damaged;
	env_len = sl_spool__get32(p);
	if (env_len < SL_SPOOL__ENV_FIXED || env_len > h->len)
		goto fail_damaged;
	if (env_len <= SEG_RD_CAP) {
		p = rec_get(r, body, env_len);
	} else {
		sl_buf_reset(&rc->envbuf);
		for (uint64_t done = 0; done < env_len;) {
			size_t n =
				env_len - done < SEG_RD_CAP ? (size_t)(env_len - done) : SEG_RD_CAP;
			const uint8_t *q = rec_get(r, body + done, n);

			if (q == NULL)
				goto fail_damaged;
			sl_buf_append(&rc->envbuf, q, n);
			done += n;
		}
		p = (const uint8_t *)rc->envbuf.data;
	}
	if (p == NULL || sl_spool__env_parse(p, env_len, h->len, &env, NULL) < 0)
		goto fail_damaged;
	rm = rec_msg_get(rc, env.qid);
	if (rm->has_msg) {
		if (rm->rcpt_cnt != env.rcpt_cnt) {
			rc->stats->damaged++;
			rec_log(rc, "record at %llu: %s again with %u recipients, not %u; ignored",
				(unsigned long long)off, env.qid, env.rcpt_cnt, rm->rcpt_cnt);
			return;
		}
		for (uint32_t i = 0; i < env.rcpt_cnt; i++)
			if (env.status[i] != SL_RCPT_PENDING)
				rec_apply(rc, rm, i, env.status[i]);
	} else {
		rm->has_msg = true;
		rm->rcpt_cnt = env.rcpt_cnt;
		rm->status = sl_malloc(env.rcpt_cnt);
		memcpy(rm->status, env.status, env.rcpt_cnt);
		for (size_t i = 0; i < rm->pend_cnt; i++)
			rec_apply(rc, rm, rm->pend[i].rcpt_idx, rm->pend[i].status);
		sl_free(rm->pend);
		rm->pend = NULL;
		rm->pend_cnt = rm->pend_cap = 0;
	}
	rm->copies = seg_grow(rm->copies, &rm->copy_cap, rm->copy_cnt + 1, sizeof(*rm->copies));
	c = &rm->copies[rm->copy_cnt++];
	c->seg = s;
	c->loc.writer = s->id.writer;
	c->loc.segment = s->id.number;
	c->loc.offset = off;
	c->loc.length = SL_SPOOL__REC_HDR_LEN + (uint64_t)h->len;
	c->padded = sl_spool__align(c->loc.length);
	sl_spool__qid_seen(rc->sp, env.qid);
	return;

fail_damaged:
	rc->stats->damaged++;
	rec_log(rc, "message record at %llu has a bad envelope; skipped", (unsigned long long)off);
}

static bool
rec_qid_ok(const uint8_t *p)
{
	size_t len = strnlen((const char *)p, SL_SPOOL__QID_FIELD);

	if (len == 0 || len == SL_SPOOL__QID_FIELD)
		return false;
	for (size_t i = 0; i < SL_SPOOL__QID_FIELD; i++)
		if (i < len ? (p[i] <= ' ' || p[i] >= 0x7f) : p[i] != 0)
			return false;
	return true;
}

static void
rec_progress(struct rec_ctx *rc, struct rec_rd *r, struct seg *s, uint64_t off,
	     const struct sl_spool__hdr *h)
{
	const uint8_t *p = rec_get(r, off + SL_SPOOL__REC_HDR_LEN, h->len);
	uint32_t cnt;
	unsigned bad = 0;

	if (p == NULL || h->len < SL_SPOOL__PROG_FIXED)
		goto fail_damaged;
	cnt = sl_spool__get32(p);
	if (cnt > SL_SPOOL__MAX_PROG || sl_spool__get32(p + 4) != 0 ||
	    h->len != SL_SPOOL__PROG_FIXED + (uint64_t)cnt * SL_SPOOL__PROG_ENTRY)
		goto fail_damaged;
	p += SL_SPOOL__PROG_FIXED;
	for (uint32_t i = 0; i < cnt; i++, p += SL_SPOOL__PROG_ENTRY) {
		uint32_t idx = sl_spool__get32(p + 24), st = sl_spool__get32(p + 28);
		struct rec_msg *rm;

		if (!rec_qid_ok(p) ||
		    (idx != UINT32_MAX && (idx >= SL_SPOOL__MAX_RCPTS || st == SL_RCPT_PENDING ||
					   st > SL_RCPT_EXPIRED))) {
			bad++;
			continue;
		}
		rm = rec_msg_get(rc, (const char *)p);
		if (idx == UINT32_MAX) {
			rm->is_whole = true;
		} else if (rm->has_msg) {
			rec_apply(rc, rm, idx, (uint8_t)st);
		} else {
			rm->pend = seg_grow(rm->pend, &rm->pend_cap, rm->pend_cnt + 1,
					    sizeof(*rm->pend));
			rm->pend[rm->pend_cnt].rcpt_idx = idx;
			rm->pend[rm->pend_cnt].status = (uint8_t)st;
			rm->pend_cnt++;
		}
		if (rm->pseg_cnt == 0 || rm->psegs[rm->pseg_cnt - 1] != s) {
			rm->psegs = seg_grow(rm->psegs, &rm->pseg_cap, rm->pseg_cnt + 1,
					     sizeof(*rm->psegs));
			rm->psegs[rm->pseg_cnt++] = s;
		}
	}
	if (bad > 0) {
		rc->stats->damaged++;
		rec_log(rc, "progress record at %llu: %u bad entries skipped",
			(unsigned long long)off, bad);
	}
	return;

fail_damaged:
	rc->stats->damaged++;
	rec_log(rc, "progress record at %llu is malformed; skipped", (unsigned long long)off);
}

enum rec_head {
	REC_HEAD_OK,
	REC_HEAD_BAD,     /* unreadable: scan for records anyway */
	REC_HEAD_FOREIGN, /* another format version: leave the file alone */
};

static enum rec_head
rec_head(struct rec_ctx *rc, struct rec_rd *r, struct seg *s)
{
	struct sl_spool__hdr h;
	const uint8_t *p;
	uint32_t version;

	if (!rec_check(r, 0, &h) || h.type != SL_SPOOL__REC_SEGMENT ||
	    h.len != SL_SPOOL__SEG_PAYLOAD)
		return REC_HEAD_BAD;
	p = rec_get(r, SL_SPOOL__REC_HDR_LEN, SL_SPOOL__SEG_PAYLOAD);
	if (p == NULL || memcmp(p, SL_SPOOL__SEG_MAGIC, 8) != 0)
		return REC_HEAD_BAD;
	version = sl_spool__get32(p + 8);
	if (version > SL_SPOOL__VERSION)
		return REC_HEAD_FOREIGN;
	if (version != SL_SPOOL__VERSION)
		return REC_HEAD_BAD;
	if (sl_spool__get32(p + 12) != s->id.writer || sl_spool__get32(p + 16) != s->id.number) {
		rc->stats->damaged++;
		rec_log(rc, "segment header names writer %u segment %u; using the file name",
			sl_spool__get32(p + 12), sl_spool__get32(p + 16));
	}
	return REC_HEAD_OK;
}

/* Read every record of s; returns how many were intact (the header included). */
static uint64_t
rec_scan(struct rec_ctx *rc, struct rec_rd *r, struct seg *s, enum rec_head head)
{
	struct sl_spool__hdr h;
	uint64_t off = 0, good = 0;

	if (head == REC_HEAD_OK) {
		off = SL_SPOOL__SEG_HDR_LEN;
		good++;
	} else {
		rc->stats->damaged++;
		rec_log(rc, "no valid segment header; looking for records");
	}
	while (off < r->size) {
		const uint8_t *p;
		uint64_t next, nz_end;

		if (rec_check(r, off, &h)) {
			if (h.type == SL_SPOOL__REC_MESSAGE)
				rec_message(rc, r, s, off, &h);
			else if (h.type == SL_SPOOL__REC_PROGRESS)
				rec_progress(rc, r, s, off, &h);
			else if (off != 0) {
				rc->stats->damaged++;
				rec_log(rc, "segment header record at %llu; skipped",
					(unsigned long long)off);
			}
			good++;
			off += sl_spool__align(SL_SPOOL__REC_HDR_LEN + (uint64_t)h.len);
			continue;
		}
		/* a damaged record whose length still leads to an intact one */
		p = rec_get(r, off, SL_SPOOL__REC_HDR_LEN);
		if (p != NULL && sl_spool__hdr_get(p, &h) && h.offset == off &&
		    h.len <= SL_SPOOL_MAX_RECORD - SL_SPOOL__REC_HDR_LEN) {
			struct sl_spool__hdr h2;

			next = off + sl_spool__align(SL_SPOOL__REC_HDR_LEN + (uint64_t)h.len);
			if (next < r->size && rec_check(r, next, &h2)) {
				rc->stats->damaged +=
					off > 0 || head == REC_HEAD_OK; /* else counted */
				rec_log(rc, "damaged record at %llu (%u bytes); skipped",
					(unsigned long long)off, h.len);
				off = next;
				continue;
			}
		}
		next = rec_seek(r, off, &nz_end);
		if (next != UINT64_MAX) {
			rc->stats->damaged += off > 0 || head == REC_HEAD_OK;
			rec_log(rc, "damaged bytes at %llu..%llu; skipped", (unsigned long long)off,
				(unsigned long long)next);
			off = next;
			continue;
		}
		if (nz_end > off) {
			rc->stats->torn_bytes += nz_end - off;
			rec_log(rc, "torn tail: %llu bytes after the last good record at %llu",
				(unsigned long long)(nz_end - off), (unsigned long long)off);
		}
		break;
	}
	s->end = off < r->size ? off : r->size;
	return good;
}

struct rec_name {
	struct seg_id id;
	char name[SEG_NAME_LEN];
};

static int
rec_name_cmp(const void *a, const void *b)
{
	const struct rec_name *x = a, *y = b;

	if (x->id.writer != y->id.writer)
		return x->id.writer < y->id.writer ? -1 : 1;
	if (x->id.number != y->id.number)
		return x->id.number < y->id.number ? -1 : 1;
	return 0;
}

/* The segment names in SpoolBase, sorted; numbers raise each writer's next_number. */
static int
rec_list(struct rec_ctx *rc, struct rec_name **out, size_t *cnt)
{
	struct rec_name *names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	fd = dup(rc->ss->dirfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct seg_id id;

		if (!seg_name_parse(de->d_name, &id))
			continue;
		names = seg_grow(names, &cap, n + 1, sizeof(*names));
		names[n].id = id;
		memcpy(names[n].name, de->d_name, strlen(de->d_name) + 1); /* 18 + NUL, parsed */
		n++;
		if (id.writer < rc->sp->opts.writer_cnt) {
			struct seg_writer *sw = rc->sp->writers[id.writer]->be;

			if (id.number >= sw->next_number)
				sw->next_number =
					id.number == UINT32_MAX ? UINT32_MAX : id.number + 1;
		}
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), rec_name_cmp);
	*out = names;
	*cnt = n;
	return 0;
}

/* Read one segment file; on success it joins rc->segs. */
static void
rec_file(struct rec_ctx *rc, struct rec_rd *r, const struct rec_name *rn)
{
	enum rec_head head;
	struct stat st;
	struct seg *s;
	uint64_t good, nz_end, damaged = rc->stats->damaged;
	char bad[SEG_NAME_LEN + 16];

	rc->name = rn->name;
	rc->stats->segments++;
	r->fd = openat(rc->ss->dirfd, rn->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (r->fd < 0 || fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc->stats->unreadable++;
		rec_log(rc, "cannot read: %s; left alone",
			r->fd < 0 ? strerror(errno) : "not a file");
		goto out;
	}
	r->size = (uint64_t)st.st_size;
	r->base = 0;
	r->len = 0;
	s = seg_new(rn->id, r->size, -1);
	s->is_sealed = true;
	head = rec_head(rc, r, s);
	if (head == REC_HEAD_FOREIGN) {
		rc->stats->unreadable++;
		rec_log(rc, "format version newer than %d; left alone", SL_SPOOL__VERSION);
		sl_free(s);
		goto out;
	}
	if (head == REC_HEAD_BAD &&
	    (r->size == 0 || (rec_seek(r, 0, &nz_end) == UINT64_MAX && nz_end == 0))) {
		/* created, never headed: a crash right after the create */
		unlinkat(rc->ss->dirfd, rn->name, 0);
		sl_free(s);
		goto out;
	}
	good = rec_scan(rc, r, s, head);
	if (good == 0) {
		sl_free(s);
		snprintf(bad, sizeof(bad), "%s.damaged", rn->name);
		if (rc->sp->opts.keep_damaged)
			rec_log(rc, "nothing readable; left alone");
		else if (renameat(rc->ss->dirfd, rn->name, rc->ss->dirfd, bad) == 0)
			rec_log(rc, "nothing readable; renamed to %s", bad);
		goto out;
	}
	s->is_kept = rc->sp->opts.keep_damaged && rc->stats->damaged > damaged;
	rc->stats->records += good;
	rc->segs = seg_grow(rc->segs, &rc->seg_cap, rc->seg_cnt + 1, sizeof(*rc->segs));
	rc->segs[rc->seg_cnt++] = s;
out:
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* Books for one live message, kept by the writer owning its home segment. */
static void
rec_adopt(struct rec_ctx *rc, struct rec_msg *rm)
{
	const struct rec_copy *home = &rm->copies[rm->copy_cnt - 1];
	struct sl_spool_writer *w = rc->sp->writers[sl_spool__owner(rc->sp, &home->loc)];
	struct seg_writer *sw = w->be;
	struct seg_msg *e = seg_msg_new(rm->rcpt_cnt);

	memcpy(e->qid, rm->qid, sizeof(e->qid));
	memcpy(e->status, rm->status, rm->rcpt_cnt);
	for (uint32_t i = 0; i < rm->rcpt_cnt; i++)
		e->pending_cnt += e->status[i] == SL_RCPT_PENDING;
	for (size_t i = 0; i < rm->copy_cnt; i++)
		seg_msg_add_loc(sw, e, &rm->copies[i].loc);
	seg_msg_home(e, home->seg, &home->loc, home->padded);
	sl_spool__fig_add(&w->live, 1);
}

static int
rec_home_cmp(const void *a, const void *b)
{
	const struct seg_msg *x = *(struct seg_msg *const *)a, *y = *(struct seg_msg *const *)b;

	if (x->home_loc.writer != y->home_loc.writer)
		return x->home_loc.writer < y->home_loc.writer ? -1 : 1;
	if (x->home_loc.segment != y->home_loc.segment)
		return x->home_loc.segment < y->home_loc.segment ? -1 : 1;
	if (x->home_loc.offset != y->home_loc.offset)
		return x->home_loc.offset < y->home_loc.offset ? -1 : 1;
	return 0;
}

/* Read the live messages back and hand them out in spool order. */
static void
rec_hand_back(struct rec_ctx *rc, void (*fn)(struct sl_msg *m, void *arg), void *arg)
{
	struct seg_msg **all = NULL, *e;
	size_t n = 0, cap = 0;
	struct seg *s;

	for (unsigned i = 0; i < rc->sp->opts.writer_cnt; i++) {
		struct seg_writer *sw = rc->sp->writers[i]->be;

		cds_list_for_each_entry (s, &sw->segs, node) {
			cds_list_for_each_entry (e, &s->msgs, node) {
				all = seg_grow(all, &cap, n + 1, sizeof(*all));
				all[n++] = e;
			}
		}
	}
	if (n > 0)
		qsort(all, n, sizeof(*all), rec_home_cmp);
	for (size_t i = 0; i < n; i++) {
		struct sl_msg *m;
		char name[SEG_NAME_LEN];
		struct seg_id id;
		int err;

		e = all[i];
		err = seg_read_file(rc->ss->dirfd, &e->home_loc, &m);
		if (err < 0) {
			id.writer = e->home_loc.writer;
			id.number = e->home_loc.segment;
			seg_name(name, id);
			rc->name = name;
			rc->stats->damaged++;
			rec_log(rc, "%s at %llu cannot be read back: %s; kept for the next start",
				e->qid, (unsigned long long)e->home_loc.offset, strerror(-err));
			continue;
		}
		for (uint32_t k = 0; k < e->rcpt_cnt; k++)
			m->rcpts[k].status = (enum sl_rcpt_status)e->status[k];
		rc->stats->messages++;
		fn(m, arg);
	}
	sl_free(all);
}

static int
seg_recover(struct sl_spool *sp, void (*fn)(struct sl_msg *m, void *arg), void *arg,
	    void (*log_fn)(const char *line, void *arg), struct sl_spool_recover_stats *stats)
{
	struct rec_ctx rc = {
		.sp = sp, .ss = sp->be_state, .log_fn = log_fn, .arg = arg, .stats = stats
	};
	struct rec_rd r = { .fd = -1 };
	struct rec_name *names = NULL;
	size_t name_cnt = 0;
	unsigned removed;
	int err;

	err = rec_list(&rc, &names, &name_cnt);
	if (err < 0)
		goto out;
	r.buf = sl_malloc(SEG_RD_CAP);
	for (size_t i = 0; i < name_cnt; i++)
		rec_file(&rc, &r, &names[i]);
	sl_free(r.buf);

	/* segments to their owners, in (writer, number) order */
	for (size_t i = 0; i < rc.seg_cnt; i++) {
		struct seg *s = rc.segs[i];
		struct sl_spool_writer *w = sp->writers[s->id.writer % sp->opts.writer_cnt];
		struct seg_writer *sw = w->be;

		cds_list_add_tail(&s->node, &sw->segs);
		seg_map_put(&sw->map, seg_seg_key(s->id), s);
		sl_spool__fig_add(&w->seg_cnt, 1);
		sl_spool__fig_add(&w->seg_bytes, (int64_t)s->size);
	}
	/* join copies and progress by queue id */
	for (size_t i = 0; i < rc.msg_cnt; i++) {
		struct rec_msg *rm = rc.msgs[i];
		bool is_done = rm->is_whole;

		if (!rm->has_msg)
			continue; /* progress for a message whose segment is gone */
		if (!is_done) {
			is_done = true;
			for (uint32_t k = 0; k < rm->rcpt_cnt; k++)
				is_done = is_done && rm->status[k] != SL_RCPT_PENDING;
		}
		for (size_t p = 0; p < rm->pseg_cnt; p++)
			for (size_t c = 0; c < rm->copy_cnt; c++)
				seg_dep_add(rm->psegs[p], rm->copies[c].seg->id);
		if (is_done)
			stats->finished++;
		else
			rec_adopt(&rc, rm);
	}
	/* dead segments go, dependents after what they depend on */
	for (size_t i = 0; i < rc.seg_cnt; i++)
		seg_check_dead(sp->writers[rc.segs[i]->id.writer % sp->opts.writer_cnt]->be,
			       rc.segs[i]);
	do {
		removed = 0;
		for (unsigned i = 0; i < sp->opts.writer_cnt; i++)
			removed += seg_sweep(sp->writers[i]);
	} while (removed > 0);
	rec_hand_back(&rc, fn, arg);

out:
	for (size_t i = 0; i < rc.msg_cnt; i++)
		rec_msg_free(rc.msgs[i]);
	sl_free(rc.msgs);
	sl_free(rc.segs);
	seg_map_free(&rc.qids);
	sl_buf_free(&rc.envbuf);
	sl_free(names);
	return err;
}

const struct sl_spool__backend sl_spool__segment_backend = {
	.name = "segment",
	.open = seg_open,
	.close = seg_close,
	.writer_init = seg_writer_init,
	.writer_fini = seg_writer_fini,
	.recover = seg_recover,
	.append = seg_append,
	.progress = seg_progress,
	.commit = seg_commit,
	.compact = seg_compact,
	.read = seg_read,
};
