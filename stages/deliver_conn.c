/*
 * stages/deliver_conn.c - outbound SMTP/LMTP connections of the delivery stage
 * (ECStream connections share the connection and its life cycle; their
 * protocol is deliver_ecstream.c).
 *
 * A connection belongs to one queue (binding, domain).  It connects from
 * the binding's Bind_Address, runs the client state machine
 * (proto/smtp_client.c) with the binding's EHLO name, and takes one job at
 * a time from its queue: a transaction carries every pending recipient of
 * one message for that domain.  The content is written straight from the
 * message's buffers (iovecs; the client only adds dot-stuffing dots or the
 * BDAT header), leaving out the X-Binding: header.  After a transaction the
 * connection takes the next job, until Max_Deliveries_Per_Connection
 * transactions have delivered (refused ones do not count), or
 * waits idle for idle_timeout seconds while still reading, so a server
 * that closes an idle connection is noticed before the connection is used
 * again.  A transaction that fails before any reply on a reused
 * connection (the server had just closed it) goes back to the queue
 * without counting as an attempt.
 *
 * Threads: the queue's delivery loop thread.  Parses untrusted input (the
 * server's replies) only through the client state machine.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "stages/deliver_int.h"

#define DL_CONN_READ_CHUNK (16 * 1024)
#define DL_QUIT_TIMEOUT_MS 10000

static void dl_conn_drive(struct dl_conn *c);
static void dl_conn_body(struct dl_conn *c);

static const char *
dl_conn_ehlo_name(const struct dl_queue *q)
{
	const union sl_conf_val *v = dl_opt(q, SL_OPT_EHLO_HOSTNAME, NULL);

	if (v != NULL && v->s != NULL && v->s[0] != '\0')
		return v->s;
	v = sl_conf_global(q->dt->snap, SL_OPT_HOSTNAME);
	if (v != NULL && v->s != NULL && v->s[0] != '\0')
		return v->s;
	return q->dt->hostname;
}

static uint64_t
dl_conn_timeout_ms(const struct dl_conn *c)
{
	enum sl_opt opt;
	const union sl_conf_val *v;

	if (c->ecs != NULL)
		return dl_ecs_timeout_ms(c);
	switch (sl_smtp_client_waiting_for(c->smtp)) {
	case SL_SMTPC_WAIT_GREETING:
		opt = SL_OPT_CONNECT_TIMEOUT;
		break;
	case SL_SMTPC_WAIT_EHLO:
		opt = SL_OPT_EHLO_TIMEOUT;
		break;
	case SL_SMTPC_WAIT_MAIL:
		opt = SL_OPT_MAILFROM_TIMEOUT;
		break;
	case SL_SMTPC_WAIT_RCPT:
	case SL_SMTPC_WAIT_DATA:
		opt = SL_OPT_RCPTTO_TIMEOUT;
		break;
	case SL_SMTPC_WAIT_BODY_END:
		opt = SL_OPT_BODY_TIMEOUT;
		break;
	case SL_SMTPC_WAIT_RSET:
		opt = SL_OPT_RSET_TIMEOUT;
		break;
	case SL_SMTPC_WAIT_QUIT:
		return DL_QUIT_TIMEOUT_MS;
	case SL_SMTPC_WAIT_NONE:
	default:
		if (c->is_idle) {
			opt = SL_OPT_IDLE_TIMEOUT;
			break;
		}
		return 0;
	}
	v = dl_opt(c->q, opt, c->host);
	return v != NULL && v->i > 0 ? (uint64_t)v->i * 1000 : (c->is_idle ? 1 : 0);
}

/* The connection stage of Momentum's logs for a reply the client waits for (or had). */
static enum dl_stage_code
dl_stage_of(const struct dl_conn *c, enum sl_smtpc_wait w)
{
	switch (w) {
	case SL_SMTPC_WAIT_GREETING:
		return DL_STAGE_BANNER;
	case SL_SMTPC_WAIT_EHLO:
		return DL_STAGE_EHLO;
	case SL_SMTPC_WAIT_MAIL:
		return DL_STAGE_MAIL;
	case SL_SMTPC_WAIT_RCPT:
		return DL_STAGE_RCPT;
	case SL_SMTPC_WAIT_DATA:
		return DL_STAGE_DATA;
	case SL_SMTPC_WAIT_BODY_END:
		return DL_STAGE_CONFIRM;
	default:
		return c->is_connected ? DL_STAGE_IDLE : DL_STAGE_NOT_CONNECTED;
	}
}

/* The stage for what the client waits for now. */
static enum dl_stage_code
dl_conn_stage(const struct dl_conn *c)
{
	if (c->ecs != NULL)
		return dl_ecs_stage(c);
	return dl_stage_of(c, sl_smtp_client_waiting_for(c->smtp));
}

const char *
dl_conn_state(const struct dl_conn *c)
{
	if (c->is_closing)
		return "closing";
	if (!c->is_connected)
		return "connecting";
	if (c->is_idle)
		return "idle";
	if (c->ecs != NULL)
		return dl_ecs_state(c);
	switch (sl_smtp_client_waiting_for(c->smtp)) {
	case SL_SMTPC_WAIT_GREETING:
		return "reading banner";
	case SL_SMTPC_WAIT_EHLO:
		return "after EHLO";
	case SL_SMTPC_WAIT_MAIL:
		return "after MAIL FROM";
	case SL_SMTPC_WAIT_RCPT:
		return "after RCPT TO";
	case SL_SMTPC_WAIT_DATA:
		return "after DATA";
	case SL_SMTPC_WAIT_BODY_END:
		return "reading confirmation";
	case SL_SMTPC_WAIT_RSET:
		return "after RSET";
	case SL_SMTPC_WAIT_QUIT:
		return "after QUIT";
	default:
		return c->job != NULL ? "sending" : "connected";
	}
}

/* ------------------------------------------------------------ closing */

static void
dl_conn_free(struct dl_conn *c)
{
	struct dl_queue *q = c->q;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		q->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	q->conn_cnt--;
	q->dt->conn_open--;
	sl_counter_add(dl_gauge_conns, -1);
	sl_group_add(q->group, SL_GS_OUT_ASSOC, -1);
	if (c->slots.host == NULL)
		q->plain_conn_cnt--;
	dl_shape_release(&c->slots);
	sl_smtp_client_free(c->smtp);
	dl_ecs_free(c->ecs);
	sl_buf_free(&c->in);
	sl_buf_free(&c->out);
	sl_buf_free(&c->wbuf);
	sl_free(c->body_iov);
	sl_free(c->rcpt_ptrs);
	c->magic = 0;
	sl_free(c);
	/* A slot is free: the queue may have work for it. */
	if (!q->dt->is_stopping)
		dl_queue_run(q);
	else if (q->dt->is_draining && q->dt->conn_open == 0)
		dl_drained(q->dt);
}

static void
dl_conn_close_cb(uv_handle_t *h)
{
	struct dl_conn *c = h->data;

	if (--c->handles_open == 0)
		dl_conn_free(c);
}

/* Put the job in flight back at the front of its queue, not counted as an attempt. */
void
dl_conn_requeue(struct dl_conn *c)
{
	struct dl_queue *q = c->q;
	struct dl_job *job = c->job;

	if (job == NULL)
		return;
	c->job = NULL;
	q->inflight_cnt--;
	job->q = q;
	job->prev = NULL;
	job->next = q->active_head;
	if (q->active_head != NULL)
		q->active_head->prev = job;
	else
		q->active_tail = job;
	q->active_head = job;
	dl_active_count(q, 1);
	q->resident_cnt++;
}

void
dl_conn_close(struct dl_conn *c, bool is_graceful)
{
	if (c->is_closing)
		return;
	if (is_graceful && c->is_connected && c->job == NULL && !c->is_writing) {
		if (c->ecs != NULL) {
			dl_ecs_quit(c);
			return;
		}
		sl_smtp_client_quit(c->smtp, &c->out);
		c->is_idle = false;
		dl_conn_drive(c);
		return;
	}
	c->is_closing = true;
	dl_conn_requeue(c);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->tcp, dl_conn_close_cb);
	uv_close((uv_handle_t *)&c->timer, dl_conn_close_cb);
}

/*
 * The job in flight ends transiently for every recipient still pending
 * (a connection or protocol failure), then waits for its next attempt.
 */
void
dl_conn_job_fail(struct dl_conn *c, unsigned code, const char *enhanced, const char *text,
		 enum dl_stage_code stage)
{
	struct dl_job *job = c->job;
	struct dl_queue *q = c->q;

	if (job == NULL)
		return;
	c->job = NULL;
	q->inflight_cnt--;
	for (size_t i = 0; i < job->rcpt_cnt; i++)
		if (job->msg->rcpts[job->rcpt_idx[i]].status == SL_RCPT_PENDING)
			dl_outcome(q->dt, job, i, code, enhanced, text, c->ip, stage, DL_TRANSIENT);
	dl_job_settle(q->dt, job);
}

/* ------------------------------------------------------------ I/O */

static void
dl_conn_timer_cb(uv_timer_t *t)
{
	struct dl_conn *c = t->data;

	SL_CHECK_OBJ(c, DL_CONN_MAGIC);
	if (c->is_idle) {
		/* Nothing came for idle_timeout: say goodbye. */
		dl_conn_close(c, true);
		return;
	}
	if (c->job != NULL)
		dl_conn_job_fail(c, 451, "4.4.2", "timeout waiting for the server",
				 dl_conn_stage(c));
	if (!c->is_connected || dl_conn_stage(c) == DL_STAGE_BANNER)
		dl_queue_conn_failed(c->q, &c->addr, true);
	dl_conn_close(c, false);
}

void
dl_conn_arm(struct dl_conn *c)
{
	uint64_t ms;

	if (c->is_closing)
		return;
	ms = dl_conn_timeout_ms(c);
	if (ms > 0)
		uv_timer_start(&c->timer, dl_conn_timer_cb, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

static void
dl_conn_write_cb(uv_write_t *req, int status)
{
	struct dl_conn *c = req->data;

	SL_CHECK_OBJ(c, DL_CONN_MAGIC);
	c->is_writing = false;
	sl_buf_reset(&c->wbuf);
	if (c->is_body) {
		c->is_body = false;
		if (status == 0)
			sl_smtp_client_body_done(c->smtp);
	}
	if (status < 0) {
		if (c->job != NULL)
			dl_conn_job_fail(c, 451, "4.4.2", uv_strerror(status), dl_conn_stage(c));
		dl_conn_close(c, false);
		return;
	}
	if (c->is_body_wanted) {
		c->is_body_wanted = false;
		dl_conn_body(c);
		return;
	}
	dl_conn_drive(c);
}

/* Write `out` (commands) unless a write is in flight. */
static void
dl_conn_flush(struct dl_conn *c)
{
	uv_buf_t b;
	int rc;

	if (c->is_writing || c->out.len == 0 || c->is_closing)
		return;
	sl_buf_append(&c->wbuf, c->out.data, c->out.len);
	sl_buf_reset(&c->out);
	b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	c->wreq.data = c;
	c->is_writing = true;
	rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, dl_conn_write_cb);
	if (rc < 0) {
		c->is_writing = false;
		if (c->job != NULL)
			dl_conn_job_fail(c, 451, "4.4.2", uv_strerror(rc), dl_conn_stage(c));
		dl_conn_close(c, false);
	}
}

/*
 * The content of the job's message as iovecs: the added headers, then the
 * client's data without the X-Binding: header.
 */
size_t
dl_conn_content(const struct sl_msg *m, struct iovec **out)
{
	size_t cnt = sl_msg_iov(m, NULL, 0) + 1, n = 0;
	struct iovec *raw = sl_calloc(cnt, sizeof(*raw));
	struct iovec *iov = sl_calloc(cnt + 1, sizeof(*iov));
	uint64_t off = 0; /* offset in the client's data (after head) */
	size_t raw_cnt = sl_msg_iov(m, raw, cnt);

	for (size_t i = 0; i < raw_cnt; i++) {
		char *base = raw[i].iov_base;
		size_t len = raw[i].iov_len;
		uint64_t start, end;

		if (i == 0 && m->head.len > 0 && base == m->head.data) {
			iov[n++] = raw[i];
			continue;
		}
		start = off;
		end = off + len;
		off = end;
		if (m->skip_len == 0 || end <= m->skip_off || start >= m->skip_off + m->skip_len) {
			iov[n++] = raw[i];
			continue;
		}
		/* This piece holds (part of) the skipped header: keep what is around it. */
		if (m->skip_off > start) {
			iov[n].iov_base = base;
			iov[n++].iov_len = (size_t)(m->skip_off - start);
		}
		if (m->skip_off + m->skip_len < end) {
			size_t from = (size_t)(m->skip_off + m->skip_len - start);

			iov[n].iov_base = base + from;
			iov[n++].iov_len = len - from;
		}
	}
	sl_free(raw);
	*out = iov;
	return n;
}

/* The server wants the content: write it as iovecs from the message's own buffers. */
static void
dl_conn_body(struct dl_conn *c)
{
	struct iovec *content;
	size_t content_cnt = dl_conn_content(c->job->msg, &content);
	size_t need = sl_smtp_client_body_iov(c->smtp, content, content_cnt, NULL, 0);
	uv_buf_t *bufs;
	int rc;

	sl_free(c->body_iov);
	c->body_iov = sl_calloc(need ? need : 1, sizeof(*c->body_iov));
	c->body_iov_cnt = sl_smtp_client_body_iov(c->smtp, content, content_cnt, c->body_iov, need);
	sl_free(content);
	/* Commands queued before the content go first. */
	if (c->out.len > 0) {
		sl_buf_append(&c->wbuf, c->out.data, c->out.len);
		sl_buf_reset(&c->out);
	}
	bufs = sl_calloc(c->body_iov_cnt + 1, sizeof(*bufs));
	{
		size_t n = 0;

		if (c->wbuf.len > 0)
			bufs[n++] = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
		for (size_t i = 0; i < c->body_iov_cnt; i++)
			bufs[n++] = uv_buf_init(c->body_iov[i].iov_base,
						(unsigned)c->body_iov[i].iov_len);
		c->wreq.data = c;
		c->is_writing = true;
		c->is_body = true;
		rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, (unsigned)n,
			      dl_conn_write_cb);
	}
	sl_free(bufs);
	if (rc < 0) {
		c->is_writing = false;
		c->is_body = false;
		dl_conn_job_fail(c, 451, "4.4.2", uv_strerror(rc), dl_conn_stage(c));
		dl_conn_close(c, false);
	}
}

void
dl_conn_feed(struct dl_conn *c)
{
	struct dl_queue *q = c->q;
	const union sl_conf_val *maxd;
	const union sl_conf_val *thr;
	struct dl_job *job;
	struct sl_msg *m;

	SL_CHECK_OBJ(c, DL_CONN_MAGIC);
	if (c->is_closing || c->job != NULL || c->is_writing)
		return;
	if (q->dt->is_stopping) {
		/* Stopping: the transaction in flight was the last; say goodbye. */
		dl_conn_close(c, true);
		return;
	}
	switch (dl_queue_route_holds(q, &c->addr)) {
	case DL_HOLD_NO: /* routes changed (a reload, a DNS refresh) and no longer lead here */
		dl_conn_close(c, true);
		return;
	case DL_HOLD_UNKNOWN: /* new routes coming: wait idle until the queue runs again */
		c->is_idle = true;
		dl_conn_arm(c);
		return;
	case DL_HOLD_YES:
		break;
	}
	/* Successful deliveries only (Momentum's page): refusals do not use the connection up. */
	maxd = dl_opt(q, SL_OPT_MAX_DELIVERIES_PER_CONNECTION, c->host);
	if (maxd != NULL && maxd->i > 0 && c->delivered_cnt >= (unsigned)maxd->i) {
		dl_conn_close(c, true);
		return;
	}
	job = dl_queue_take(q);
	if (job == NULL) {
		c->is_idle = true;
		dl_conn_arm(c);
		return;
	}
	/* The message's token only once there is a message to send: none is wasted. */
	thr = dl_opt(q, SL_OPT_OUTBOUND_THROTTLE_MESSAGES, NULL);
	if (thr != NULL && thr->thr.cnt > 0 &&
	    dl_shape_throttle(q->dt->snap, thr, uv_now(q->dt->loop)) > 0) {
		/* Throttled: the job goes back to the front; the scheduler's tick feeds us again. */
		c->job = job;
		dl_conn_requeue(c);
		c->is_idle = true;
		dl_conn_arm(c);
		return;
	}
	c->is_idle = false;
	c->job = job;
	c->txn_delivered = 0;
	m = job->msg;
	sl_free(c->rcpt_ptrs);
	c->rcpt_ptrs = sl_calloc(job->rcpt_cnt, sizeof(*c->rcpt_ptrs));
	for (size_t i = 0; i < job->rcpt_cnt; i++)
		c->rcpt_ptrs[i] = m->rcpts[job->rcpt_idx[i]].addr;
	if (c->ecs != NULL) {
		dl_ecs_send(c);
		return;
	}
	memset(&c->txn, 0, sizeof(c->txn));
	c->txn.sender = m->sender;
	c->txn.rcpts = c->rcpt_ptrs;
	c->txn.rcpt_cnt = job->rcpt_cnt;
	c->txn.size = sl_msg_size(m) - m->skip_len;
	c->txn.is_8bitmime = m->is_8bitmime;
	c->txn.is_smtputf8 = m->is_smtputf8;
	sl_smtp_client_send(c->smtp, &c->txn, &c->out);
	dl_conn_flush(c);
	dl_conn_arm(c);
}

/* One recipient's answer: 2xx delivered, 4xx (or none) transient, 5xx permanent. */
static void
dl_conn_rcpt(struct dl_conn *c, const struct sl_smtpc_ev *ev)
{
	struct dl_job *job = c->job;
	bool is_delivered = ev->code >= 200 && ev->code < 300;

	if (job == NULL || ev->rcpt_idx >= job->rcpt_cnt)
		return;
	/* SNMP: a transaction that delivered (to its first recipient delivered), and its octets. */
	if (is_delivered && c->txn_delivered++ == 0) {
		sl_group_add(c->q->group, SL_GS_TRANSMITTED_MSGS, 1);
		sl_group_add(c->q->group, SL_GS_TRANSMITTED_BYTES, (int64_t)c->txn.size);
	}
	dl_outcome(c->q->dt, job, ev->rcpt_idx, ev->code, ev->enhanced, ev->text, c->ip,
		   dl_stage_of(c, ev->answers),
		   is_delivered      ? DL_DELIVERED
		   : ev->code >= 500 ? DL_FAILED
				     : DL_TRANSIENT);
}

static void
dl_conn_done(struct dl_conn *c, const struct sl_smtpc_ev *ev)
{
	struct dl_job *job = c->job;

	if (job == NULL)
		return;
	c->job = NULL;
	c->q->inflight_cnt--;
	c->deliveries++;
	if (c->txn_delivered > 0)
		c->delivered_cnt++;
	dl_job_settle(c->q->dt, job);
}

static void
dl_conn_fail(struct dl_conn *c, const struct sl_smtpc_ev *ev)
{
	bool is_reused_unanswered = c->deliveries > 0 && c->job != NULL && ev->code == 0 &&
				    ev->answers == SL_SMTPC_WAIT_MAIL;

	if (is_reused_unanswered) {
		/* The server closed a cached connection under us: not the message's fault. */
		dl_conn_requeue(c);
	} else if (c->job != NULL) {
		dl_conn_job_fail(c, ev->code ? ev->code : 451,
				 ev->enhanced[0] ? ev->enhanced : "4.4.2",
				 ev->text && ev->text[0] ? ev->text : "connection failed",
				 dl_stage_of(c, ev->answers));
	}
	if (c->deliveries == 0)
		dl_queue_conn_failed(c->q, &c->addr, false);
	dl_conn_flush(c);
	dl_conn_close(c, false);
}

static void
dl_conn_drive(struct dl_conn *c)
{
	if (c->ecs != NULL) {
		dl_ecs_drive(c);
		return;
	}
	while (!c->is_closing && !c->is_body && !c->is_body_wanted) {
		struct sl_smtpc_ev ev;
		size_t used = 0;
		enum sl_smtpc_ev_kind k =
			sl_smtp_client_next(c->smtp, c->in.data, c->in.len, &used, &ev, &c->out);
		bool is_stop = false;

		switch (k) {
		case SL_SMTPC_EV_NONE:
			is_stop = true;
			break;
		case SL_SMTPC_EV_READY:
			if (c->deliveries == 0 && c->job == NULL)
				dl_queue_conn_ok(c->q);
			c->is_connected = true;
			sl_buf_consume(&c->in, used);
			dl_conn_feed(c);
			continue;
		case SL_SMTPC_EV_RCPT:
			dl_conn_rcpt(c, &ev);
			break;
		case SL_SMTPC_EV_BODY:
			sl_buf_consume(&c->in, used);
			used = 0;
			/* Commands still being written go first; the content follows them. */
			if (c->is_writing)
				c->is_body_wanted = true;
			else
				dl_conn_body(c);
			is_stop = true;
			break;
		case SL_SMTPC_EV_DONE:
			dl_conn_done(c, &ev);
			break;
		case SL_SMTPC_EV_FAIL:
			sl_buf_consume(&c->in, used);
			dl_conn_fail(c, &ev);
			return;
		case SL_SMTPC_EV_CLOSED:
			sl_buf_consume(&c->in, used);
			dl_conn_close(c, false);
			return;
		}
		sl_buf_consume(&c->in, used);
		if (is_stop)
			break;
	}
	dl_conn_flush(c);
	dl_conn_arm(c);
}

static void
dl_conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct dl_conn *c = h->data;

	buf->base = sl_buf_reserve(&c->in, DL_CONN_READ_CHUNK);
	buf->len = c->in.cap - c->in.len;
}

static void
dl_conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct dl_conn *c = s->data;

	SL_CHECK_OBJ(c, DL_CONN_MAGIC);
	if (nread > 0) {
		c->in.len += (size_t)nread;
		dl_conn_drive(c);
		return;
	}
	if (nread == 0)
		return;
	if (c->ecs != NULL) {
		dl_ecs_eof(c, (int)nread);
		return;
	}
	/* EOF or error.  Idle: the server closed a cached connection, nothing lost. */
	if (c->job != NULL) {
		struct sl_smtpc_ev ev = { .kind = SL_SMTPC_EV_FAIL,
					  .code = 0,
					  .text = nread == UV_EOF
							  ? "connection closed by the server"
							  : uv_strerror((int)nread),
					  .answers = sl_smtp_client_waiting_for(c->smtp) };

		dl_conn_fail(c, &ev);
		return;
	}
	if (!c->is_connected)
		dl_queue_conn_failed(c->q, &c->addr, false);
	dl_conn_close(c, false);
}

static void
dl_conn_connect_cb(uv_connect_t *req, int status)
{
	struct dl_conn *c = req->data;

	SL_CHECK_OBJ(c, DL_CONN_MAGIC);
	c->q->connecting_cnt--;
	if (c->is_closing)
		return;
	if (status < 0) {
		sl_log_debug("delivery to %s: connect to %s failed: %s", c->q->domain, c->ip,
			     uv_strerror(status));
		dl_queue_conn_failed(c->q, &c->addr, status == UV_ETIMEDOUT);
		dl_conn_close(c, false);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, dl_conn_alloc_cb, dl_conn_read_cb);
	dl_conn_arm(c);
	/* Established: Connection_Allocation_Aggressiveness "normal" may open the next now. */
	if (!c->q->dt->is_stopping)
		dl_queue_run(c->q);
}

/* Bind the socket to the binding's Bind_Address (when it is not "*" and fits the family). */
/*
 * tcp_buffer_size: Momentum's upper bound on the socket buffers of an
 * outbound connection.  Set on the new socket before it connects, so the
 * receive window offered in the SYN already respects it; a fixed size also
 * turns off the kernel's autotuning, which could grow past it.  (Linux
 * doubles the value for its bookkeeping, as socket(7) says.)
 */
static int
dl_conn_buffers(struct dl_conn *c)
{
	const union sl_conf_val *v = dl_opt(c->q, SL_OPT_TCP_BUFFER_SIZE, NULL);
	int size;
	int rc;

	if (v == NULL || v->i <= 0)
		return 0;
	size = v->i > INT_MAX / 2 ? INT_MAX / 2 : (int)v->i;
	rc = uv_send_buffer_size((uv_handle_t *)&c->tcp, &size);
	if (rc == 0) {
		size = v->i > INT_MAX / 2 ? INT_MAX / 2 : (int)v->i;
		rc = uv_recv_buffer_size((uv_handle_t *)&c->tcp, &size);
	}
	return rc;
}

static int
dl_conn_bind(struct dl_conn *c)
{
	const union sl_conf_val *v = dl_opt(c->q, SL_OPT_BIND_ADDRESS, NULL);
	struct sockaddr_storage a;
	char host[INET6_ADDRSTRLEN + 2];
	size_t n;

	if (v == NULL || v->s == NULL || strcmp(v->s, "*") == 0 || v->s[0] == '\0')
		return 0;
	n = strcspn(v->s[0] == '[' ? v->s + 1 : v->s, "]");
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, v->s[0] == '[' ? v->s + 1 : v->s, n);
	host[n] = '\0';
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&a)->sin_addr) == 1)
		a.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&a)->sin6_addr) == 1)
		a.ss_family = AF_INET6;
	else
		return -EINVAL;
	if (a.ss_family != c->addr.ss_family)
		return 0; /* no source address of that family: let the kernel choose */
	return uv_tcp_bind(&c->tcp, (struct sockaddr *)&a, 0);
}

int
dl_conn_open(struct dl_queue *q, const struct sockaddr_storage *addr, const char *host,
	     struct dl_slots *slots)
{
	struct dl_thread *dt = q->dt;
	struct dl_conn *c = SL_NEW(c);
	const union sl_conf_val *method = dl_opt(q, SL_OPT_DELIVERY_METHOD, host);
	struct sl_smtp_client_conf conf = {
		.helo_name = dl_conn_ehlo_name(q),
		.is_lmtp = method != NULL && strcasecmp(method->s, "LMTP") == 0,
		.use_chunking = true,
		.use_pipelining = true,
	};
	bool is_ecs = method != NULL && strcasecmp(method->s, "ECSTREAM") == 0;
	int rc;

	c->magic = DL_CONN_MAGIC;
	c->q = q;
	c->started_ms = uv_now(q->dt->loop);
	c->addr = *addr;
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->slots = *slots;
	memset(slots, 0, sizeof(*slots));
	if (c->slots.host == NULL)
		q->plain_conn_cnt++;
	if (addr->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, c->ip,
			  sizeof(c->ip));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, c->ip,
			  sizeof(c->ip));
	c->smtp = is_ecs ? NULL : sl_smtp_client_new(&conf);
	c->ecs = is_ecs ? dl_ecs_new() : NULL;
	/* The socket now (not at connect), so its buffers can be sized first. */
	rc = uv_tcp_init_ex(dt->loop, &c->tcp, addr->ss_family);
	if (rc != 0)
		uv_tcp_init(dt->loop, &c->tcp); /* no socket (EMFILE...): a handle to close */
	uv_timer_init(dt->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	c->next = q->conns;
	if (q->conns != NULL)
		q->conns->prev = c;
	q->conns = c;
	q->conn_cnt++;
	q->connecting_cnt++;
	dt->conn_open++;
	sl_counter_add(dl_gauge_conns, 1);
	sl_group_add(q->group, SL_GS_OUT_ASSOC, 1);
	sl_group_add(q->group, SL_GS_OUT_ASSOC_TOTAL, 1);
	c->creq.data = c;
	if (rc == 0)
		rc = dl_conn_buffers(c);
	if (rc == 0)
		rc = dl_conn_bind(c);
	if (rc == 0)
		rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)addr,
				    dl_conn_connect_cb);
	if (rc != 0) {
		sl_log_warn("delivery to %s: cannot connect to %s: %s", q->domain, c->ip,
			    uv_strerror(rc));
		q->connecting_cnt--;
		/* Closing frees the connection and the slot the caller took for it. */
		dl_conn_close(c, false);
		return rc;
	}
	uv_timer_start(&c->timer, dl_conn_timer_cb, dl_conn_timeout_ms(c), 0);
	return 0;
}
