/*
 * spool/spool_ram.c - the "ram" backend: the spool's semantics in memory,
 * for unit tests of the stages around it.
 *
 * Durable means committed: an append is visible to sl_spool_read at once
 * but survives a close only once a commit covered it; progress takes
 * effect at commit.  A store is named by SpoolBase and outlives
 * sl_spool_close within the process, so a test can close (a crash: what
 * was not committed is dropped) and open the same name again and recover;
 * a spool opened without a directory gets a private store freed on close.
 * Opening a store that is open gives -EBUSY, like the segment lock.  Each
 * message is kept as the payload of a segment message record (the same
 * codec), so what recovery and read return went through that codec.
 *
 * Threads: writers append and commit on their threads and read may run on
 * any: a store is shared, so one mutex guards it (this backend is for
 * tests; the segment backend takes no lock).  The registry of stores has
 * its own mutex, taken only by open and close; never both at once.
 * Parses its own encoding only.  Ownership: the store owns its records;
 * messages handed out belong to the caller.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "spool/spool.h"
#include "spool/spool_int.h"

struct ram_msg {
	uint8_t *rec; /* owned: envelope, head, content */
	size_t len;
	uint32_t writer; /* the writer that appended it */
	bool is_committed;
	uint32_t rcpt_cnt;
	uint8_t status[]; /* committed statuses */
};

struct ram_store {
	struct ram_store *next; /* in the registry */
	char *name;             /* owned; NULL: private to one spool */
	bool is_open;
	pthread_mutex_t mu;    /* guards everything below */
	struct ram_msg **msgs; /* owned; index = loc.offset; NULL once finished */
	size_t cnt, cap;
};

struct ram_op {
	uint64_t slot;
	uint32_t rcpt_idx; /* UINT32_MAX: whole message */
	uint8_t status;
};

struct ram_writer {
	struct ram_op *ops; /* progress since the last commit */
	size_t op_cnt, op_cap;
	uint64_t *fresh; /* slots appended since the last commit */
	size_t fresh_cnt, fresh_cap;
};

static pthread_mutex_t ram_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ram_store *ram_registry; /* named stores, open or not */

static void *
ram_grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return arr;
	*cap = *cap ? *cap * 2 : 16;
	while (*cap < need)
		*cap *= 2;
	return sl_reallocarray(arr, *cap, elem);
}

static void
ram_msg_free(struct ram_msg *rm)
{
	if (rm == NULL)
		return;
	sl_free(rm->rec);
	sl_free(rm);
}

static void
ram_store_free(struct ram_store *st)
{
	for (size_t i = 0; i < st->cnt; i++)
		ram_msg_free(st->msgs[i]);
	sl_free(st->msgs);
	sl_free(st->name);
	pthread_mutex_destroy(&st->mu);
	sl_free(st);
}

static int
ram_open(struct sl_spool *sp, char *why, size_t why_len)
{
	struct ram_store *st = NULL;
	int err = 0;

	pthread_mutex_lock(&ram_registry_mu);
	if (sp->dir != NULL)
		for (st = ram_registry; st != NULL; st = st->next)
			if (strcmp(st->name, sp->dir) == 0)
				break;
	if (st != NULL && st->is_open) {
		snprintf(why, why_len, "ram spool %s is in use", sp->dir);
		err = -EBUSY;
		goto out;
	}
	if (st == NULL) {
		st = SL_NEW(st);
		pthread_mutex_init(&st->mu, NULL);
		if (sp->dir != NULL) {
			st->name = sl_strdup(sp->dir);
			st->next = ram_registry;
			ram_registry = st;
		}
	}
	st->is_open = true;
	sp->be_state = st;
out:
	pthread_mutex_unlock(&ram_registry_mu);
	return err;
}

static void
ram_close(struct sl_spool *sp)
{
	struct ram_store *st = sp->be_state;

	/* what no commit covered is lost, as in a crash */
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < st->cnt; i++) {
		if (st->msgs[i] != NULL && !st->msgs[i]->is_committed) {
			ram_msg_free(st->msgs[i]);
			st->msgs[i] = NULL;
		}
	}
	pthread_mutex_unlock(&st->mu);
	pthread_mutex_lock(&ram_registry_mu);
	st->is_open = false;
	pthread_mutex_unlock(&ram_registry_mu);
	if (st->name == NULL)
		ram_store_free(st);
	sp->be_state = NULL;
}

static void
ram_writer_init(struct sl_spool_writer *w)
{
	struct ram_writer *rw = SL_NEW(rw);

	w->be = rw;
}

static void
ram_writer_fini(struct sl_spool_writer *w)
{
	struct ram_writer *rw = w->be;

	sl_free(rw->ops);
	sl_free(rw->fresh);
	sl_free(rw);
	w->be = NULL;
}

/* A message built from its stored record; the caller holds st->mu. */
static int
ram_decode(const struct ram_msg *rm, uint32_t writer, uint64_t slot, struct sl_msg **out)
{
	struct sl_spool__env env;
	struct sl_msg *m = sl_msg_new();
	struct iovec *iov = NULL;
	const uint8_t *p;
	size_t cnt;
	int err;

	err = sl_spool__env_parse(rm->rec, rm->len, rm->len, &env, m);
	if (err < 0)
		goto fail;
	cnt = sl_spool__content_alloc(m, env.head_len, env.content_len, &iov);
	p = rm->rec + env.env_len;
	for (size_t i = 0; i < cnt; i++) {
		if (iov[i].iov_len > 0)
			memcpy(iov[i].iov_base, p, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	for (uint32_t i = 0; i < rm->rcpt_cnt; i++)
		m->rcpts[i].status = (enum sl_rcpt_status)rm->status[i];
	m->loc.writer = writer;
	m->loc.segment = 0;
	m->loc.offset = slot;
	m->loc.length = SL_SPOOL__REC_HDR_LEN + rm->len;
	sl_free(iov);
	*out = m;
	return 0;

fail:
	sl_msg_free(m);
	return err;
}

static int
ram_recover(struct sl_spool *sp, void (*fn)(struct sl_msg *m, void *arg), void *arg,
	    void (*log_fn)(const char *line, void *arg), struct sl_spool_recover_stats *stats)
{
	struct ram_store *st = sp->be_state;
	struct sl_msg **out = NULL;
	size_t n = 0;

	pthread_mutex_lock(&st->mu);
	out = sl_calloc(st->cnt + 1, sizeof(*out));
	for (size_t i = 0; i < st->cnt; i++) {
		struct ram_msg *rm = st->msgs[i];
		struct sl_msg *m;

		if (rm == NULL || !rm->is_committed)
			continue;
		stats->records++;
		if (ram_decode(rm, rm->writer, i, &m) < 0) {
			stats->damaged++;
			continue;
		}
		sl_spool__qid_seen(sp, m->qid);
		out[n++] = m;
	}
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < n; i++) {
		stats->messages++;
		fn(out[i], arg);
	}
	sl_free(out);
	return 0;
}

static int
ram_append(struct sl_spool_writer *w, struct sl_msg *m)
{
	struct ram_store *st = w->sp->be_state;
	struct ram_writer *rw = w->be;
	char qid[SL_MSG_QID_LEN];
	struct iovec *iov = NULL;
	struct ram_msg *rm;
	size_t cnt, len;
	uint8_t *p;
	int err;

	if (w->fail_write != 0) {
		err = -w->fail_write;
		w->fail_write = 0;
		return err;
	}
	sl_spool__qid_next(w, qid);
	sl_buf_reset(&w->scratch);
	err = sl_spool__env_encode(&w->scratch, m, qid, NULL);
	if (err < 0)
		return err;
	len = w->scratch.len + sl_msg_size(m);
	if (SL_SPOOL__REC_HDR_LEN + (uint64_t)len > SL_SPOOL_MAX_RECORD)
		return -EFBIG;
	rm = sl_calloc(1, sizeof(*rm) + m->rcpt_cnt);
	rm->rec = sl_malloc(len);
	rm->len = len;
	rm->writer = w->idx;
	rm->rcpt_cnt = (uint32_t)m->rcpt_cnt;
	for (size_t i = 0; i < m->rcpt_cnt; i++)
		rm->status[i] = (uint8_t)m->rcpts[i].status;
	memcpy(rm->rec, w->scratch.data, w->scratch.len);
	p = rm->rec + w->scratch.len;
	cnt = sl_msg_iov(m, NULL, 0);
	iov = sl_calloc(cnt + 1, sizeof(*iov));
	sl_msg_iov(m, iov, cnt);
	for (size_t i = 0; i < cnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	sl_free(iov);

	pthread_mutex_lock(&st->mu);
	st->msgs = ram_grow(st->msgs, &st->cap, st->cnt + 1, sizeof(*st->msgs));
	m->loc.offset = st->cnt;
	st->msgs[st->cnt++] = rm;
	pthread_mutex_unlock(&st->mu);

	rw->fresh = ram_grow(rw->fresh, &rw->fresh_cap, rw->fresh_cnt + 1, sizeof(*rw->fresh));
	rw->fresh[rw->fresh_cnt++] = m->loc.offset;
	memcpy(m->qid, qid, sizeof(m->qid));
	m->loc.writer = w->idx;
	m->loc.segment = 0;
	m->loc.length = SL_SPOOL__REC_HDR_LEN + len;
	sl_spool__fig_add(&w->appended, 1);
	sl_spool__fig_add(&w->live, 1);
	sl_spool__fig_add(&w->seg_bytes, (int64_t)len);
	return 0;
}

static int
ram_progress(struct sl_spool_writer *w, const struct sl_spool_loc *loc, uint32_t rcpt_idx,
	     enum sl_rcpt_status status)
{
	struct ram_store *st = w->sp->be_state;
	struct ram_writer *rw = w->be;
	struct ram_msg *rm;
	int err = 0;

	pthread_mutex_lock(&st->mu);
	rm = loc->segment == 0 && loc->offset < st->cnt ? st->msgs[loc->offset] : NULL;
	if (rm == NULL)
		err = -ENOENT;
	else if (rcpt_idx != UINT32_MAX && rcpt_idx >= rm->rcpt_cnt)
		err = -EINVAL;
	pthread_mutex_unlock(&st->mu);
	if (err < 0)
		return err;
	rw->ops = ram_grow(rw->ops, &rw->op_cap, rw->op_cnt + 1, sizeof(*rw->ops));
	rw->ops[rw->op_cnt].slot = loc->offset;
	rw->ops[rw->op_cnt].rcpt_idx = rcpt_idx;
	rw->ops[rw->op_cnt].status = (uint8_t)status;
	rw->op_cnt++;
	return 0;
}

static int
ram_commit(struct sl_spool_writer *w)
{
	struct ram_store *st = w->sp->be_state;
	struct ram_writer *rw = w->be;
	bool had_work = rw->fresh_cnt > 0 || rw->op_cnt > 0;
	int err = 0;

	if (!had_work)
		return 0;
	pthread_mutex_lock(&st->mu);
	if (w->fail_sync != 0) {
		/* as the segment backend: what this commit covered is abandoned */
		err = -w->fail_sync;
		w->fail_sync = 0;
		for (size_t i = 0; i < rw->fresh_cnt; i++) {
			struct ram_msg *rm = st->msgs[rw->fresh[i]];

			if (rm != NULL) {
				sl_spool__fig_add(&w->live, -1);
				sl_spool__fig_add(&w->seg_bytes, -(int64_t)rm->len);
			}
			ram_msg_free(rm);
			st->msgs[rw->fresh[i]] = NULL;
		}
		rw->fresh_cnt = 0;
		goto out; /* the progress stays queued for the next commit */
	}
	for (size_t i = 0; i < rw->fresh_cnt; i++)
		if (st->msgs[rw->fresh[i]] != NULL)
			st->msgs[rw->fresh[i]]->is_committed = true;
	for (size_t i = 0; i < rw->op_cnt; i++) {
		const struct ram_op *op = &rw->ops[i];
		struct ram_msg *rm = st->msgs[op->slot];
		bool is_done = op->rcpt_idx == UINT32_MAX;

		if (rm == NULL)
			continue;
		if (!is_done) {
			if (rm->status[op->rcpt_idx] == SL_RCPT_PENDING)
				rm->status[op->rcpt_idx] = op->status;
			is_done = true;
			for (uint32_t k = 0; k < rm->rcpt_cnt; k++)
				is_done = is_done && rm->status[k] != SL_RCPT_PENDING;
		}
		if (is_done) {
			sl_spool__fig_add(&w->live, -1);
			sl_spool__fig_add(&w->seg_bytes, -(int64_t)rm->len);
			ram_msg_free(rm);
			st->msgs[op->slot] = NULL;
		}
	}
	rw->fresh_cnt = rw->op_cnt = 0;
	sl_spool__fig_add(&w->commits, 1);
out:
	pthread_mutex_unlock(&st->mu);
	return err;
}

static int
ram_compact(struct sl_spool_writer *w, double live_ratio, uint64_t max_bytes,
	    void (*moved_fn)(const char *qid, const struct sl_spool_loc *to, void *arg), void *arg)
{
	return 0; /* memory has no dead space to reclaim */
}

static int
ram_read(struct sl_spool *sp, const struct sl_spool_loc *loc, struct sl_msg **out)
{
	struct ram_store *st = sp->be_state;
	struct ram_msg *rm;
	int err;

	pthread_mutex_lock(&st->mu);
	rm = loc->segment == 0 && loc->offset < st->cnt ? st->msgs[loc->offset] : NULL;
	err = rm == NULL ? -ENOENT : ram_decode(rm, rm->writer, loc->offset, out);
	pthread_mutex_unlock(&st->mu);
	return err;
}

const struct sl_spool__backend sl_spool__ram_backend = {
	.name = "ram",
	.open = ram_open,
	.close = ram_close,
	.writer_init = ram_writer_init,
	.writer_fini = ram_writer_fini,
	.recover = ram_recover,
	.append = ram_append,
	.progress = ram_progress,
	.commit = ram_commit,
	.compact = ram_compact,
	.read = ram_read,
};
