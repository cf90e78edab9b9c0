/*
 * stages/deliver_ecstream.c - delivery over ECStream (Delivery_Method =
 * "ECSTREAM"): the client side of sluice-ecstream(7), to ecstream_port.
 *
 * An ECStream connection is an ordinary delivery connection
 * (deliver_conn.c: queue, slots, timers, reuse, closing) whose protocol is
 * this file's instead of the SMTP client's.  After the greeting, each job
 * becomes one message frame (the sender, the job's pending recipients, the
 * content as stored, written from the message's own buffers) and waits for
 * its one reply line: 250 delivers every recipient of the frame, 4xx is
 * transient and 5xx permanent for them, as SMTP replies are.  ECStream
 * answers for the whole message, so when a frame of several recipients is
 * refused, those recipients are sent again one frame each (pipelined, in
 * one write) and each gets its own outcome: one bad address does not fail
 * the others.  No binding or context variables are sent: the receiving
 * node chooses them by its own configuration.
 *
 * Replies are read only while no write is in flight: a server refuses a
 * frame on its envelope before it has read the content, and the job (with
 * the message the write points into) must not settle under libuv's write.
 *
 * Threads: the queue's delivery loop thread.  Parses untrusted input (the
 * server's greeting and reply lines) through proto/ecstream.c, at most
 * SL_ECS_GREETING_MAX octets a line.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"
#include "proto/ecstream.h"
#include "stages/deliver_int.h"

#define DL_ECS_MAGIC        0xde11ce06u
#define DL_ECS_LINE_MAX     1000 /* octets of a greeting or reply line, CRLF included */
#define DL_ECS_QUIT_TIMEOUT 10000

struct dl_ecs {
	unsigned magic;
	bool is_ready;    /* the greeting was read */
	bool is_quitting; /* the quit frame went out */
	bool has_reply;   /* a reply for the job in flight came */
	/* The frames of the job in flight: frame k carries job recipients
	   idx[start[k]] .. idx[start[k + 1] - 1]; replies answer them in order. */
	size_t *idx;   /* owned */
	size_t *start; /* owned, frame_cnt + 1 entries */
	size_t frame_cnt;
	size_t frame_next; /* the frame the next reply answers */
	size_t *split;     /* owned: recipients of refused frames, to send one by one */
	size_t split_cnt;
	uint8_t quit[SL_ECS_HDR_LEN];
};

struct dl_ecs *
dl_ecs_new(void)
{
	struct dl_ecs *e = SL_NEW(e);

	e->magic = DL_ECS_MAGIC;
	return e;
}

void
dl_ecs_free(struct dl_ecs *e)
{
	if (e == NULL)
		return;
	SL_CHECK_OBJ(e, DL_ECS_MAGIC);
	sl_free(e->idx);
	sl_free(e->start);
	sl_free(e->split);
	e->magic = 0;
	sl_free(e);
}

uint64_t
dl_ecs_timeout_ms(const struct dl_conn *c)
{
	const struct dl_ecs *e = c->ecs;
	const union sl_conf_val *v;

	if (c->is_closing)
		return 0;
	if (e->is_quitting)
		return DL_ECS_QUIT_TIMEOUT;
	if (!e->is_ready)
		v = dl_opt(c->q, SL_OPT_ECSTREAM_TIMEOUT, c->host);
	else if (c->job != NULL)
		v = dl_opt(c->q, SL_OPT_BODY_TIMEOUT, c->host);
	else if (c->is_idle)
		v = dl_opt(c->q, SL_OPT_IDLE_TIMEOUT, c->host);
	else
		return 0;
	return v != NULL && v->i > 0 ? (uint64_t)v->i * 1000 : (c->is_idle ? 1 : 0);
}

enum dl_stage_code
dl_ecs_stage(const struct dl_conn *c)
{
	if (!c->ecs->is_ready)
		return DL_STAGE_BANNER;
	if (c->job != NULL)
		return DL_STAGE_CONFIRM; /* ECStream's one reply follows the whole message */
	return c->is_connected ? DL_STAGE_IDLE : DL_STAGE_NOT_CONNECTED;
}

const char *
dl_ecs_state(const struct dl_conn *c)
{
	if (!c->ecs->is_ready)
		return "reading banner";
	if (c->ecs->is_quitting)
		return "after QUIT";
	if (c->job != NULL)
		return c->is_writing ? "sending" : "reading confirmation";
	return "connected";
}

/* ------------------------------------------------------------ writing */

static void
dl_ecs_write_cb(uv_write_t *req, int status)
{
	struct dl_conn *c = req->data;

	SL_CHECK_OBJ(c, DL_CONN_MAGIC);
	c->is_writing = false;
	sl_buf_reset(&c->wbuf);
	sl_free(c->body_iov);
	c->body_iov = NULL;
	c->body_iov_cnt = 0;
	if (c->is_closing)
		return;
	if (status < 0) {
		if (c->job != NULL)
			dl_conn_job_fail(c, 451, "4.4.2", uv_strerror(status), dl_ecs_stage(c));
		dl_conn_close(c, false);
		return;
	}
	dl_ecs_drive(c);
}

/* Write bufs (c->wbuf and the content they point into); false when it failed (closed). */
static bool
dl_ecs_write(struct dl_conn *c, const uv_buf_t *bufs, unsigned cnt)
{
	int rc;

	c->wreq.data = c;
	c->is_writing = true;
	rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, cnt, dl_ecs_write_cb);
	if (rc < 0) {
		c->is_writing = false;
		if (c->job != NULL)
			dl_conn_job_fail(c, 451, "4.4.2", uv_strerror(rc), dl_ecs_stage(c));
		dl_conn_close(c, false);
		return false;
	}
	return true;
}

/*
 * Write the frames e->idx/e->start describe for the job in flight, all in
 * one write: each a header and envelope (in c->wbuf), then the content.
 * A frame the codec cannot encode (an address over its limits) fails its
 * recipients for good and is left out.
 */
static void
dl_ecs_write_frames(struct dl_conn *c)
{
	struct dl_ecs *e = c->ecs;
	struct dl_job *job = c->job;
	struct sl_msg *m = job->msg;
	struct iovec *content;
	size_t content_cnt = dl_conn_content(m, &content);
	uint64_t content_len = 0;
	const char **rcpts = sl_calloc(job->rcpt_cnt, sizeof(*rcpts));
	size_t *env_off = sl_calloc(e->frame_cnt + 1, sizeof(*env_off));
	uv_buf_t *bufs;
	size_t n = 0, kept = 0;

	for (size_t i = 0; i < content_cnt; i++)
		content_len += content[i].iov_len;
	c->txn.size = content_len;
	sl_buf_reset(&c->wbuf);
	for (size_t k = 0; k < e->frame_cnt; k++) {
		size_t cnt = e->start[k + 1] - e->start[k];

		for (size_t j = 0; j < cnt; j++)
			rcpts[j] = c->rcpt_ptrs[e->idx[e->start[k] + j]];
		env_off[k] = c->wbuf.len;
		if (sl_ecs_frame_begin(&c->wbuf, m->sender, rcpts, cnt, NULL, NULL, 0,
				       content_len) == 0)
			continue;
		for (size_t j = 0; j < cnt; j++)
			dl_outcome(c->q->dt, job, e->idx[e->start[k] + j], 554, "5.3.0",
				   "the envelope cannot be sent over ECStream", c->ip,
				   DL_STAGE_NOT_CONNECTED, DL_FAILED);
	}
	env_off[e->frame_cnt] = c->wbuf.len;
	/* Keep only the frames that were encoded (they have an envelope in wbuf). */
	bufs = sl_calloc(e->frame_cnt * (content_cnt + 1) + 1, sizeof(*bufs));
	for (size_t k = 0; k < e->frame_cnt; k++) {
		if (env_off[k + 1] == env_off[k])
			continue;
		bufs[n++] = uv_buf_init(c->wbuf.data + env_off[k],
					(unsigned)(env_off[k + 1] - env_off[k]));
		for (size_t i = 0; i < content_cnt; i++)
			bufs[n++] = uv_buf_init(content[i].iov_base, (unsigned)content[i].iov_len);
		/* Frame k moves to position `kept` (the replies come for the kept ones). */
		memmove(e->idx + e->start[kept], e->idx + e->start[k],
			(e->start[k + 1] - e->start[k]) * sizeof(*e->idx));
		e->start[kept + 1] = e->start[kept] + (e->start[k + 1] - e->start[k]);
		kept++;
	}
	e->frame_cnt = kept;
	e->frame_next = 0;
	sl_free(rcpts);
	sl_free(env_off);
	sl_free(content);
	if (n > 0)
		(void)dl_ecs_write(c, bufs, (unsigned)n);
	sl_free(bufs);
}

/* The job in flight is answered: settle it, then take the next one. */
static void
dl_ecs_job_done(struct dl_conn *c)
{
	struct dl_job *job = c->job;

	c->job = NULL;
	c->q->inflight_cnt--;
	c->deliveries++;
	dl_job_settle(c->q->dt, job);
	dl_conn_feed(c);
}

/* Send the recipients in e->split one frame each, or settle the job when there are none. */
static void
dl_ecs_next_batch(struct dl_conn *c)
{
	struct dl_ecs *e = c->ecs;

	if (e->split_cnt == 0) {
		dl_ecs_job_done(c);
		return;
	}
	sl_free(e->idx);
	sl_free(e->start);
	e->idx = e->split;
	e->frame_cnt = e->split_cnt;
	e->start = sl_calloc(e->frame_cnt + 1, sizeof(*e->start));
	for (size_t k = 0; k <= e->frame_cnt; k++)
		e->start[k] = k;
	e->split = NULL;
	e->split_cnt = 0;
	dl_ecs_write_frames(c);
	if (!c->is_closing && e->frame_cnt == 0)
		dl_ecs_job_done(c); /* every frame failed to encode */
}

void
dl_ecs_send(struct dl_conn *c)
{
	struct dl_ecs *e = c->ecs;
	struct dl_job *job = c->job;
	size_t n = 0;

	SL_CHECK_OBJ(e, DL_ECS_MAGIC);
	sl_free(e->idx);
	sl_free(e->start);
	sl_free(e->split);
	e->split = NULL;
	e->split_cnt = 0;
	e->has_reply = false;
	e->idx = sl_calloc(job->rcpt_cnt ? job->rcpt_cnt : 1, sizeof(*e->idx));
	for (size_t i = 0; i < job->rcpt_cnt; i++)
		if (job->msg->rcpts[job->rcpt_idx[i]].status == SL_RCPT_PENDING)
			e->idx[n++] = i;
	e->start = sl_calloc(2, sizeof(*e->start));
	e->start[1] = n;
	e->frame_cnt = n > 0 ? 1 : 0;
	if (e->frame_cnt > 0)
		dl_ecs_write_frames(c);
	if (c->is_closing)
		return;
	if (e->frame_cnt == 0) {
		dl_ecs_job_done(c);
		return;
	}
	dl_conn_arm(c);
}

void
dl_ecs_quit(struct dl_conn *c)
{
	struct dl_ecs *e = c->ecs;
	uv_buf_t b;

	SL_CHECK_OBJ(e, DL_ECS_MAGIC);
	if (e->is_quitting)
		return;
	e->is_quitting = true;
	c->is_idle = false;
	sl_ecs_hdr_encode(e->quit, SL_ECS_QUIT, 0, 0);
	b = uv_buf_init((char *)e->quit, sizeof(e->quit));
	if (dl_ecs_write(c, &b, 1))
		dl_conn_arm(c);
}

/* ------------------------------------------------------------ reading */

/* One reply for frame e->frame_next of the job in flight. */
static void
dl_ecs_reply(struct dl_conn *c, const struct sl_ecs_reply *r)
{
	struct dl_ecs *e = c->ecs;
	struct dl_job *job = c->job;
	size_t from = e->start[e->frame_next], to = e->start[e->frame_next + 1];
	bool is_delivered = r->code == 250;
	char text[96];

	e->has_reply = true;
	e->frame_next++;
	if (!is_delivered && r->code != 421 && to - from > 1) {
		/* ECStream refuses a whole message: ask again for each recipient alone. */
		e->split = sl_reallocarray(e->split, e->split_cnt + (to - from), sizeof(*e->split));
		for (size_t j = from; j < to; j++)
			e->split[e->split_cnt++] = e->idx[j];
		return;
	}
	if (is_delivered && c->txn_delivered++ == 0) {
		sl_group_add(c->q->group, SL_GS_TRANSMITTED_MSGS, 1);
		sl_group_add(c->q->group, SL_GS_TRANSMITTED_BYTES, (int64_t)c->txn.size);
	}
	snprintf(text, sizeof(text), "%s", r->qid);
	for (size_t j = from; j < to; j++)
		dl_outcome(c->q->dt, job, e->idx[j], r->code, is_delivered ? "" : r->enhanced,
			   is_delivered ? text : r->text, c->ip, DL_STAGE_CONFIRM,
			   is_delivered     ? DL_DELIVERED
			   : r->code >= 500 ? DL_FAILED
					    : DL_TRANSIENT);
}

/* A greeting or reply line the client cannot use: the job waits, the connection goes. */
static void
dl_ecs_protocol_error(struct dl_conn *c, const char *why)
{
	char text[256];

	snprintf(text, sizeof(text), "bad ECStream line from the server: %s", why);
	sl_log_warn("delivery to %s: %s: %s", c->q->domain, c->ip, text);
	if (c->job != NULL)
		dl_conn_job_fail(c, 451, "4.5.0", text, dl_ecs_stage(c));
	if (!c->ecs->is_ready)
		dl_queue_conn_failed(c->q, &c->addr, false);
	dl_conn_close(c, false);
}

/* The greeting line (p[0..len), its line end included): false when the connection went. */
static bool
dl_ecs_greeting(struct dl_conn *c, const char *p, size_t len)
{
	struct sl_ecs_reply r;
	char why[128];

	if (len >= 5 && memcmp(p, SL_ECS_GREETING, 5) == 0) {
		c->ecs->is_ready = true;
		if (c->deliveries == 0)
			dl_queue_conn_ok(c->q);
		c->is_connected = true;
		return true;
	}
	if (len > 9 && memcmp(p, "ECS1-ERR ", 9) == 0 &&
	    sl_ecs_reply_parse(p + 9, len - 9, &r, why, sizeof(why)) > 0) {
		/* Refused at connect (ACL, too many sessions, shutting down): a failed connection. */
		sl_log_debug("delivery to %s: %s refused the connection: %u %s %s", c->q->domain,
			     c->ip, r.code, r.enhanced, r.text);
		dl_queue_conn_failed(c->q, &c->addr, false);
		dl_conn_close(c, false);
		return false;
	}
	dl_ecs_protocol_error(c, "not an ECStream greeting");
	return false;
}

void
dl_ecs_drive(struct dl_conn *c)
{
	struct dl_ecs *e = c->ecs;

	SL_CHECK_OBJ(e, DL_ECS_MAGIC);
	/* Nothing settles under a write in flight; its callback drives again. */
	while (!c->is_closing && !c->is_writing && c->in.len > 0) {
		const char *lf = memchr(c->in.data, '\n', c->in.len);
		size_t len = lf != NULL ? (size_t)(lf - c->in.data) + 1 : 0;
		struct sl_ecs_reply r;
		char why[128];
		long used;

		if (lf == NULL) {
			if (c->in.len >= DL_ECS_LINE_MAX)
				dl_ecs_protocol_error(c, "line too long");
			break;
		}
		if (!e->is_ready) {
			if (!dl_ecs_greeting(c, c->in.data, len))
				return;
			sl_buf_consume(&c->in, len);
			dl_conn_feed(c);
			continue;
		}
		used = sl_ecs_reply_parse(c->in.data, c->in.len, &r, why, sizeof(why));
		if (used < 0) {
			dl_ecs_protocol_error(c, why);
			return;
		}
		sl_buf_consume(&c->in, (size_t)used);
		if (r.code == 221 || c->job == NULL || e->frame_next >= e->frame_cnt) {
			/* The goodbye, or an idle notice (421 4.4.2): the close follows. */
			if (r.code == 221)
				dl_conn_close(c, false);
			continue;
		}
		dl_ecs_reply(c, &r);
		if (e->frame_next == e->frame_cnt)
			dl_ecs_next_batch(c);
	}
	if (!c->is_closing)
		dl_conn_arm(c);
}

void
dl_ecs_eof(struct dl_conn *c, int nread)
{
	struct dl_ecs *e = c->ecs;
	const char *why = nread == UV_EOF ? "connection closed by the server" : uv_strerror(nread);

	SL_CHECK_OBJ(e, DL_ECS_MAGIC);
	/* Replies that came before the close still count. */
	if (!c->is_writing)
		dl_ecs_drive(c);
	if (c->is_closing)
		return;
	if (c->job != NULL && c->deliveries > 0 && !e->has_reply && e->frame_next == 0) {
		/* The server closed a reused connection before our frame: not the message's fault. */
		dl_conn_requeue(c);
	} else if (c->job != NULL) {
		dl_conn_job_fail(c, 451, "4.4.2", why, dl_ecs_stage(c));
	}
	if (!e->is_ready)
		dl_queue_conn_failed(c->q, &c->addr, false);
	dl_conn_close(c, false);
}
