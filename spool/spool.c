/*
 * spool/spool.c - the spool's public API: argument checks, dispatch to the
 * backend table, the message record envelope codec and queue ids.
 *
 * Both backends store a message as the same record payload (envelope, then
 * head, then content; sluice-spool(5)), so the ram backend exercises the
 * codec the segment files use.  Queue ids are "%08X-%02X%010llX": the
 * second the spool was opened, the writer, and a 40-bit per-writer
 * sequence that starts at the microsecond of opening times 2^20, so a
 * restart within the same second starts far above anything the previous
 * run could have issued (it would need a million messages per writer per
 * microsecond of its life); recovery also raises it past any id it sees.
 *
 * Threads: open/recover/close on the main thread; the writer functions on
 * their writer's thread; read and stats on any.  Parses untrusted input:
 * sl_spool__env_parse checks every length of a record read from disk.
 * Ownership: the spool owns its writers; messages passed in stay the
 * caller's, messages handed out (recover, read) become the caller's.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "spool/spool.h"
#include "spool/spool_int.h"

static const struct sl_spool__backend *const spool_backends[] = {
	&sl_spool__segment_backend,
	&sl_spool__ram_backend,
};

int
sl_spool_open(const struct sl_spool_opts *opts, struct sl_spool **out, char *why, size_t why_len)
{
	const char *name = opts->backend ? opts->backend : "segment";
	const struct sl_spool__backend *be = NULL;
	struct sl_spool *sp;
	struct timeval tv;
	int err;

	*out = NULL;
	for (size_t i = 0; i < SL_ARRAY_LEN(spool_backends); i++)
		if (strcmp(spool_backends[i]->name, name) == 0)
			be = spool_backends[i];
	if (be == NULL) {
		snprintf(why, why_len, "unknown spool backend \"%s\"", name);
		err = -EINVAL;
		goto fail;
	}
	if (opts->writer_cnt < 1 || opts->writer_cnt > SL_SPOOL__MAX_WRITERS) {
		snprintf(why, why_len, "spool writers: %u, not 1..%u", opts->writer_cnt,
			 SL_SPOOL__MAX_WRITERS);
		err = -EINVAL;
		goto fail;
	}
	if (opts->segment_size != 0 && (opts->segment_size < SL_SPOOL__MIN_SEGMENT ||
					opts->segment_size > SL_SPOOL__MAX_SEGMENT)) {
		snprintf(why, why_len, "spool segment size %llu, not %u..%llu",
			 (unsigned long long)opts->segment_size, SL_SPOOL__MIN_SEGMENT,
			 (unsigned long long)SL_SPOOL__MAX_SEGMENT);
		err = -EINVAL;
		goto fail;
	}
	if (be == &sl_spool__segment_backend && (opts->dir == NULL || opts->dir[0] == '\0')) {
		snprintf(why, why_len, "no spool directory");
		err = -EINVAL;
		goto fail;
	}

	sp = SL_NEW(sp);
	sp->magic = SL_SPOOL_MAGIC;
	sp->opts = *opts;
	sp->dir = opts->dir ? sl_strdup(opts->dir) : NULL;
	sp->opts.dir = sp->dir;
	sp->opts.backend = be->name;
	if (sp->opts.segment_size == 0)
		sp->opts.segment_size = SL_SPOOL_SEGMENT_SIZE_DEFAULT;
	sp->be = be;
	sp->is_prezero = true;
	gettimeofday(&tv, NULL);
	sp->qid_time = (uint32_t)tv.tv_sec;
	sp->writers = sl_calloc(opts->writer_cnt, sizeof(*sp->writers));
	err = be->open(sp, why, why_len);
	if (err < 0)
		goto fail_sp;
	for (unsigned i = 0; i < opts->writer_cnt; i++) {
		struct sl_spool_writer *w = SL_NEW(w);

		w->magic = SL_SPOOL_WRITER_MAGIC;
		w->sp = sp;
		w->idx = i;
		w->qid_seq = (uint64_t)tv.tv_usec << 20;
		be->writer_init(w);
		sp->writers[i] = w;
	}
	*out = sp;
	return 0;

fail_sp:
	sl_free(sp->writers);
	sl_free(sp->dir);
	sp->magic = 0;
	sl_free(sp);
fail:
	return err;
}

void
sl_spool_close(struct sl_spool *sp)
{
	if (sp == NULL)
		return;
	SL_CHECK_OBJ(sp, SL_SPOOL_MAGIC);
	for (unsigned i = 0; i < sp->opts.writer_cnt; i++) {
		struct sl_spool_writer *w = sp->writers[i];

		SL_CHECK_OBJ(w, SL_SPOOL_WRITER_MAGIC);
		sp->be->writer_fini(w);
		sl_buf_free(&w->scratch);
		w->magic = 0;
		sl_free(w);
	}
	sp->be->close(sp);
	sl_free(sp->writers);
	sl_free(sp->dir);
	sp->magic = 0;
	sl_free(sp);
}

int
sl_spool_recover(struct sl_spool *sp, void (*fn)(struct sl_msg *m, void *arg), void *arg,
		 void (*log_fn)(const char *line, void *arg), struct sl_spool_recover_stats *stats)
{
	struct sl_spool_recover_stats dummy;
	int err;

	SL_CHECK_OBJ(sp, SL_SPOOL_MAGIC);
	SL_ASSERT(fn != NULL);
	SL_ASSERT(!sp->is_recovered);
	if (stats == NULL)
		stats = &dummy;
	memset(stats, 0, sizeof(*stats));
	err = sp->be->recover(sp, fn, arg, log_fn, stats);
	sp->is_recovered = true;
	return err;
}

struct sl_spool_writer *
sl_spool_writer_get(struct sl_spool *sp, unsigned idx)
{
	SL_CHECK_OBJ(sp, SL_SPOOL_MAGIC);
	SL_ASSERT(idx < sp->opts.writer_cnt);
	return sp->writers[idx];
}

unsigned
sl_spool_owner(const struct sl_spool *sp, const struct sl_spool_loc *loc)
{
	SL_CHECK_OBJ(sp, SL_SPOOL_MAGIC);
	return sl_spool__owner(sp, loc);
}

int
sl_spool_append(struct sl_spool_writer *w, struct sl_msg *m)
{
	SL_CHECK_OBJ(w, SL_SPOOL_WRITER_MAGIC);
	SL_CHECK_OBJ(m, SL_MSG_MAGIC);
	return w->sp->be->append(w, m);
}

int
sl_spool_progress(struct sl_spool_writer *w, const struct sl_spool_loc *loc, uint32_t rcpt_idx,
		  enum sl_rcpt_status status)
{
	SL_CHECK_OBJ(w, SL_SPOOL_WRITER_MAGIC);
	/* the owner alone keeps the books of a segment: routing is the caller's job */
	SL_ASSERT(sl_spool__owner(w->sp, loc) == w->idx);
	if (rcpt_idx != UINT32_MAX && (status <= SL_RCPT_PENDING || status > SL_RCPT_EXPIRED))
		return -EINVAL;
	return w->sp->be->progress(w, loc, rcpt_idx, status);
}

int
sl_spool_commit(struct sl_spool_writer *w)
{
	uint64_t appended;
	int rc;

	SL_CHECK_OBJ(w, SL_SPOOL_WRITER_MAGIC);
	appended = sl_spool__fig(&w->appended); /* only this thread appends */
	rc = w->sp->be->commit(w);
	if (rc == 0)
		__atomic_store_n(&w->durable, appended, __ATOMIC_RELAXED);
	return rc;
}

int
sl_spool_compact(struct sl_spool_writer *w, double live_ratio, uint64_t max_bytes,
		 void (*moved_fn)(const char *qid, const struct sl_spool_loc *to, void *arg),
		 void *arg)
{
	SL_CHECK_OBJ(w, SL_SPOOL_WRITER_MAGIC);
	return w->sp->be->compact(w, live_ratio, max_bytes, moved_fn, arg);
}

int
sl_spool_read(struct sl_spool *sp, const struct sl_spool_loc *loc, struct sl_msg **out)
{
	SL_CHECK_OBJ(sp, SL_SPOOL_MAGIC);
	*out = NULL;
	return sp->be->read(sp, loc, out);
}

static void
spool_stats_add(const struct sl_spool_writer *w, struct sl_spool_stats *out)
{
	out->segment_cnt += sl_spool__fig(&w->seg_cnt);
	out->bytes += sl_spool__fig(&w->seg_bytes);
	out->live_msgs += sl_spool__fig(&w->live);
	out->commits += sl_spool__fig(&w->commits);
	out->appended += sl_spool__fig(&w->appended);
	out->durable += sl_spool__fig(&w->durable);
	out->syncs += sl_spool__fig(&w->syncs);
	out->dir_syncs += sl_spool__fig(&w->dir_syncs);
}

void
sl_spool_stats(struct sl_spool *sp, struct sl_spool_stats *out)
{
	SL_CHECK_OBJ(sp, SL_SPOOL_MAGIC);
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < sp->opts.writer_cnt; i++)
		spool_stats_add(sp->writers[i], out);
}

void
sl_spool_writer_stats(const struct sl_spool_writer *w, struct sl_spool_stats *out)
{
	SL_CHECK_OBJ(w, SL_SPOOL_WRITER_MAGIC);
	memset(out, 0, sizeof(*out));
	spool_stats_add(w, out);
}

/* ---- record headers ---- */

void
sl_spool__hdr_put(uint8_t *h, uint16_t type, uint16_t flags, uint32_t len, uint64_t offset)
{
	sl_spool__put32(h, SL_SPOOL__REC_MAGIC);
	sl_spool__put32(h + 4, 0);
	sl_spool__put16(h + 8, type);
	sl_spool__put16(h + 10, flags);
	sl_spool__put32(h + 12, len);
	sl_spool__put64(h + 16, offset);
}

uint32_t
sl_spool__hdr_crc(const uint8_t *h)
{
	return sl_crc32c(0, h + 8, SL_SPOOL__REC_HDR_LEN - 8);
}

bool
sl_spool__hdr_get(const uint8_t *h, struct sl_spool__hdr *out)
{
	if (sl_spool__get32(h) != SL_SPOOL__REC_MAGIC)
		return false;
	out->crc = sl_spool__get32(h + 4);
	out->type = sl_spool__get16(h + 8);
	out->flags = sl_spool__get16(h + 10);
	out->len = sl_spool__get32(h + 12);
	out->offset = sl_spool__get64(h + 16);
	return true;
}

/* ---- envelope codec ---- */

static int
spool_put_str(struct sl_buf *b, const char *s, size_t max)
{
	size_t len;
	uint8_t *p;

	if (s == NULL) {
		p = (uint8_t *)sl_buf_reserve(b, 4);
		sl_spool__put32(p, SL_SPOOL__STR_ABSENT);
		b->len += 4;
		return 0;
	}
	len = strlen(s);
	if (len > max)
		return -E2BIG;
	p = (uint8_t *)sl_buf_reserve(b, 4 + len);
	sl_spool__put32(p, (uint32_t)len);
	memcpy(p + 4, s, len);
	b->len += 4 + len;
	return 0;
}

int
sl_spool__env_encode(struct sl_buf *b, const struct sl_msg *m, const char *qid,
		     const uint8_t *status)
{
	const char *strs[] = { m->sender, m->binding,  m->binding_group, m->peer_ip,
			       m->helo,   m->protocol, m->conn_id };
	size_t start = b->len, pending = 0;
	uint8_t *p;
	int err;

	if (memchr(m->conn_id, '\0', sizeof(m->conn_id)) == NULL) {
		err = -EINVAL;
		goto fail;
	}
	if (m->rcpt_cnt < 1 || m->rcpt_cnt > SL_SPOOL__MAX_RCPTS ||
	    m->context_cnt > SL_SPOOL__MAX_CONTEXT || strlen(qid) >= SL_SPOOL__QID_FIELD) {
		err = m->rcpt_cnt < 1 ? -EINVAL : -E2BIG;
		goto fail;
	}
	p = (uint8_t *)sl_buf_reserve(b, SL_SPOOL__ENV_FIXED + m->rcpt_cnt);
	memset(p, 0, SL_SPOOL__ENV_FIXED);
	sl_spool__put32(p + 4, (m->is_8bitmime ? SL_SPOOL__ENV_F_8BITMIME : 0) |
				       (m->is_smtputf8 ? SL_SPOOL__ENV_F_SMTPUTF8 : 0));
	memcpy(p + 8, qid, strlen(qid));
	sl_spool__put64(p + 32, m->session_id);
	sl_spool__put64(p + 40, (uint64_t)(int64_t)m->received);
	sl_spool__put64(p + 48, m->head.len);
	sl_spool__put64(p + 56, m->content_len);
	sl_spool__put32(p + 64, (uint32_t)m->rcpt_cnt);
	sl_spool__put32(p + 68, (uint32_t)m->context_cnt);
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		unsigned st = status ? status[i] : (unsigned)m->rcpts[i].status;

		if (st > SL_RCPT_EXPIRED) {
			err = -EINVAL;
			goto fail;
		}
		pending += st == SL_RCPT_PENDING;
		p[SL_SPOOL__ENV_FIXED + i] = (uint8_t)st;
	}
	b->len += SL_SPOOL__ENV_FIXED + m->rcpt_cnt;
	if (pending == 0) {
		err = -EINVAL; /* finished already: recovery would drop it */
		goto fail;
	}
	for (size_t i = 0; i < SL_ARRAY_LEN(strs); i++) {
		/* the last, conn_id, is a fixed-size field in memory */
		err = spool_put_str(b, strs[i],
				    i == SL_ARRAY_LEN(strs) - 1 ? SL_MSG_QID_LEN - 1
								: SL_SPOOL__MAX_STR);
		if (err < 0)
			goto fail;
	}
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		err = spool_put_str(b, m->rcpts[i].addr ? m->rcpts[i].addr : "", SL_SPOOL__MAX_STR);
		if (err < 0)
			goto fail;
	}
	for (size_t i = 0; i < m->context_cnt; i++) {
		err = spool_put_str(b, m->context[i].key ? m->context[i].key : "",
				    SL_SPOOL__MAX_STR);
		if (err < 0)
			goto fail;
		err = spool_put_str(b, m->context[i].val ? m->context[i].val : "",
				    SL_SPOOL__MAX_CTX_VAL);
		if (err < 0)
			goto fail;
	}
	if (b->len - start > SL_SPOOL_MAX_RECORD) {
		err = -E2BIG;
		goto fail;
	}
	sl_spool__put32((uint8_t *)b->data + start, (uint32_t)(b->len - start));
	return 0;

fail:
	b->len = start;
	return err;
}

struct spool_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
};

/* A string field: *out is NULL for an absent one; false on damage. */
static bool
spool_get_str(struct spool_rd *r, size_t max, bool may_be_absent, const char **out, uint32_t *len)
{
	uint32_t n;

	if (r->len - r->off < 4)
		return false;
	n = sl_spool__get32(r->p + r->off);
	r->off += 4;
	if (n == SL_SPOOL__STR_ABSENT) {
		*out = NULL;
		*len = 0;
		return may_be_absent;
	}
	if (n > max || r->len - r->off < n || memchr(r->p + r->off, '\0', n) != NULL)
		return false;
	*out = (const char *)r->p + r->off;
	*len = n;
	r->off += n;
	return true;
}

static char *
spool_str_dup(const char *s, uint32_t len)
{
	return s ? sl_strndup(s, len) : NULL;
}

int
sl_spool__env_parse(const uint8_t *p, size_t len, uint64_t payload_len, struct sl_spool__env *out,
		    struct sl_msg *m)
{
	struct spool_rd r = { p, len, SL_SPOOL__ENV_FIXED };
	char **fields[6] = { NULL };
	uint32_t flags, slen, ctx_cnt;
	const char *s, *v;
	size_t qlen;

	if (len < SL_SPOOL__ENV_FIXED)
		return -EBADMSG;
	out->env_len = sl_spool__get32(p);
	flags = sl_spool__get32(p + 4);
	out->head_len = sl_spool__get64(p + 48);
	out->content_len = sl_spool__get64(p + 56);
	out->rcpt_cnt = sl_spool__get32(p + 64);
	if (out->env_len < SL_SPOOL__ENV_FIXED || out->env_len > len ||
	    out->env_len > payload_len ||
	    (flags & ~(SL_SPOOL__ENV_F_8BITMIME | SL_SPOOL__ENV_F_SMTPUTF8)) != 0 ||
	    out->head_len > payload_len || out->content_len > payload_len ||
	    out->env_len + out->head_len + out->content_len != payload_len)
		return -EBADMSG;
	r.len = out->env_len;
	/* the qid: 1..23 printable characters, then NUL padding */
	qlen = strnlen((const char *)p + 8, SL_SPOOL__QID_FIELD);
	if (qlen == 0 || qlen == SL_SPOOL__QID_FIELD)
		return -EBADMSG;
	for (size_t i = 0; i < SL_SPOOL__QID_FIELD; i++) {
		uint8_t c = p[8 + i];

		if (i < qlen ? (c <= ' ' || c >= 0x7f) : c != 0)
			return -EBADMSG;
	}
	memcpy(out->qid, p + 8, SL_SPOOL__QID_FIELD);
	ctx_cnt = sl_spool__get32(p + 68);
	if (out->rcpt_cnt < 1 || out->rcpt_cnt > SL_SPOOL__MAX_RCPTS ||
	    ctx_cnt > SL_SPOOL__MAX_CONTEXT || r.len - r.off < out->rcpt_cnt)
		return -EBADMSG;
	out->status = p + r.off;
	for (uint32_t i = 0; i < out->rcpt_cnt; i++)
		if (out->status[i] > SL_RCPT_EXPIRED)
			return -EBADMSG;
	r.off += out->rcpt_cnt;
	if (m != NULL) {
		fields[0] = &m->sender;
		fields[1] = &m->binding;
		fields[2] = &m->binding_group;
		fields[3] = &m->peer_ip;
		fields[4] = &m->helo;
		fields[5] = &m->protocol;
		memcpy(m->qid, out->qid, SL_SPOOL__QID_FIELD);
		m->session_id = sl_spool__get64(p + 32);
		m->received = (time_t)(int64_t)sl_spool__get64(p + 40);
		m->is_8bitmime = (flags & SL_SPOOL__ENV_F_8BITMIME) != 0;
		m->is_smtputf8 = (flags & SL_SPOOL__ENV_F_SMTPUTF8) != 0;
	}
	for (size_t i = 0; i < SL_ARRAY_LEN(fields); i++) {
		/* the sender is "" for the null reverse-path, never absent */
		if (!spool_get_str(&r, SL_SPOOL__MAX_STR, i != 0, &s, &slen))
			return -EBADMSG;
		if (m != NULL) {
			sl_free(*fields[i]);
			*fields[i] = spool_str_dup(s, slen);
		}
	}
	/* the connection id of the logs: a fixed-size field in memory */
	if (!spool_get_str(&r, SL_MSG_QID_LEN - 1, false, &s, &slen))
		return -EBADMSG;
	if (m != NULL) {
		memset(m->conn_id, 0, sizeof(m->conn_id));
		memcpy(m->conn_id, s, slen);
	}
	for (uint32_t i = 0; i < out->rcpt_cnt; i++) {
		if (!spool_get_str(&r, SL_SPOOL__MAX_STR, false, &s, &slen))
			return -EBADMSG;
		if (m != NULL) {
			char *addr = sl_strndup(s, slen);

			sl_msg_add_rcpt(m, addr);
			m->rcpts[m->rcpt_cnt - 1].status = (enum sl_rcpt_status)out->status[i];
			sl_free(addr);
		}
	}
	for (uint32_t i = 0; i < ctx_cnt; i++) {
		uint32_t vlen;

		if (!spool_get_str(&r, SL_SPOOL__MAX_STR, false, &s, &slen) ||
		    !spool_get_str(&r, SL_SPOOL__MAX_CTX_VAL, false, &v, &vlen))
			return -EBADMSG;
		if (m != NULL) {
			/* not sl_msg_add_context: a damaged record may repeat a key */
			m->context = sl_reallocarray(m->context, m->context_cnt + 1,
						     sizeof(*m->context));
			m->context[m->context_cnt].key = sl_strndup(s, slen);
			m->context[m->context_cnt].val = sl_strndup(v, vlen);
			m->context_cnt++;
		}
	}
	if (r.off != r.len)
		return -EBADMSG;
	return 0;
}

size_t
sl_spool__content_alloc(struct sl_msg *m, uint64_t head_len, uint64_t len, struct iovec **iov)
{
	size_t cnt = 1 + (size_t)((len + SL_MSG_CHUNK_LEN - 1) / SL_MSG_CHUNK_LEN), i = 1;

	*iov = sl_calloc(cnt, sizeof(**iov));
	sl_buf_reset(&m->head);
	if (head_len > 0) {
		(*iov)[0].iov_base = sl_buf_reserve(&m->head, head_len);
		(*iov)[0].iov_len = head_len;
		m->head.len = head_len;
	}
	while (len > 0) {
		struct sl_msg_chunk *c = sl_malloc(sizeof(*c) + SL_MSG_CHUNK_LEN);

		c->next = NULL;
		c->cap = SL_MSG_CHUNK_LEN;
		c->len = len < SL_MSG_CHUNK_LEN ? len : SL_MSG_CHUNK_LEN;
		if (m->tail != NULL)
			m->tail->next = c;
		else
			m->chunks = c;
		m->tail = c;
		m->content_len += c->len;
		(*iov)[i].iov_base = c->data;
		(*iov)[i].iov_len = c->len;
		i++;
		len -= c->len;
	}
	return i;
}

/* ---- queue ids ---- */

void
sl_spool__qid_next(struct sl_spool_writer *w, char *qid)
{
	uint64_t seq = w->qid_seq++ & 0xffffffffffull;

	memset(qid, 0, SL_MSG_QID_LEN); /* the padding is written to disk too */
	snprintf(qid, SL_MSG_QID_LEN, "%08X-%02X%010llX", w->sp->qid_time, w->idx,
		 (unsigned long long)seq);
}

static bool
spool_hex(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			v = v << 4 | (uint64_t)(c - 'A' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

bool
sl_spool__qid_parse(const char *qid, uint32_t *time, uint32_t *writer, uint64_t *seq)
{
	uint64_t t, wr;

	if (strlen(qid) != 21 || qid[8] != '-' || !spool_hex(qid, 8, &t) ||
	    !spool_hex(qid + 9, 2, &wr) || !spool_hex(qid + 11, 10, seq))
		return false;
	*time = (uint32_t)t;
	*writer = (uint32_t)wr;
	return true;
}

void
sl_spool__qid_seen(struct sl_spool *sp, const char *qid)
{
	uint32_t t, wr;
	uint64_t seq;

	if (!sl_spool__qid_parse(qid, &t, &wr, &seq) || t != sp->qid_time ||
	    wr >= sp->opts.writer_cnt)
		return;
	if (sp->writers[wr]->qid_seq <= seq)
		sp->writers[wr]->qid_seq = seq + 1;
}
