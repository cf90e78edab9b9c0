/*
 * stages/protocol_ecstream.c - ECStream sessions of the protocol stage.
 *
 * An ECStream_Listener connection (the wire format is proto/ecstream.h and
 * sluice-ecstream(7)) shares everything of an ESMTP session but the
 * machine: after the connect verdict it is greeted, then reads frames
 * straight out of the session's input buffer.  A frame's envelope is
 * checked as MAIL and RCPT would be (address syntax, message_size,
 * max_recipients_per_message, the listener's relay rights and the other
 * inline modules); its content is appended to a new message (the one copy
 * from socket to spool) while bare CR or LF is looked for; the complete
 * message gets its trace header, binding and data-phase checks and goes to
 * the spool like an SMTP one.  Many frames may be in flight: each gets a
 * reply line in frame order, written once it and every earlier one are
 * answered; at ECStream_Max_Batch_Size replies owed the session reads no
 * further until they go out.
 *
 * A malformed frame is answered 554 5.5.2 and the session closes after
 * the replies owed before it; a refused message's content is skipped so
 * the stream stays in step.
 *
 * Threads: the session's loop thread.  Parses untrusted input: frame
 * headers and envelopes through proto/ecstream.c, addresses through
 * sl_smtp_mailbox_check(), the content's header section (bounded) for
 * Message-ID: and Date:.  Ownership: struct proto_ecs belongs to its
 * session; the message being read belongs to it until proto_submit() hands
 * it on; replies owed are its list.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"
#include "proto/ecstream.h"
#include "proto/smtp_server.h"
#include "proto/validate.h"
#include "stages/eclog.h"
#include "stages/protocol_int.h"
#include "stages/stats.h"

/* Header octets looked at for Message-ID: and Date: (they come first). */
#define ECS_HEADER_SCAN_MAX (64 * 1024)

enum ecs_state {
	ECS_GREETING, /* the connect verdict is outstanding */
	ECS_HDR,      /* waiting for a frame header */
	ECS_ENV,      /* waiting for its envelope */
	ECS_CONTENT,  /* reading its content into the message */
	ECS_SKIP,     /* skipping the content of a refused message */
	ECS_STOPPED,  /* no more frames: close once every reply is written */
};

/* A reply owed for one frame, in frame order. */
struct ecs_reply {
	struct ecs_reply *next;
	uint64_t tag; /* the message's origin_tag while it is away */
	bool is_done;
	char line[600];
};

struct proto_ecs {
	enum ecs_state state;
	struct sl_ecs_hdr hdr;
	uint64_t left; /* content octets still to read or skip */
	unsigned clean_state;
	bool is_dirty;                 /* a bare CR or LF was seen */
	struct sl_msg *msg;            /* the message being read (owned) */
	char *binding;                 /* its 'B' item (owned), or NULL */
	struct ecs_reply *head, *tail; /* replies owed (owned) */
	size_t owed;
	uint64_t next_tag;
	size_t max_batch;
};

/* ------------------------------------------------------------ replies */

static struct ecs_reply *
ecs_reply_push(struct proto_ecs *e)
{
	struct ecs_reply *r = SL_NEW(r);

	if (e->tail != NULL)
		e->tail->next = r;
	else
		e->head = r;
	e->tail = r;
	e->owed++;
	return r;
}

/* A reply decided now (a refusal, a malformed frame, the quit). */
static void ecs_reply_now(struct proto_ecs *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
ecs_reply_now(struct proto_ecs *e, const char *fmt, ...)
{
	struct ecs_reply *r = ecs_reply_push(e);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->line, sizeof(r->line), fmt, ap);
	va_end(ap);
	r->is_done = true;
}

/* Write the replies that are due: done ones, up to the first that is not. */
static void
ecs_replies_out(struct proto_session *ss)
{
	struct proto_ecs *e = ss->ecs;

	while (e->head != NULL && e->head->is_done) {
		struct ecs_reply *r = e->head;

		sl_buf_printf(&ss->out, "%s\r\n", r->line);
		e->head = r->next;
		if (e->head == NULL)
			e->tail = NULL;
		e->owed--;
		sl_free(r);
	}
}

/* A refused message: its reply, the rejectlog line, the counter. */
static void
ecs_refuse(struct proto_session *ss, unsigned code, const char *enhanced, const char *text)
{
	struct ecs_reply *r;

	ecs_reply_now(ss->ecs, "%u %s %s", code, enhanced, text);
	/* Module texts may hold anything: a reply line holds no control character. */
	r = ss->ecs->tail;
	for (char *p = r->line; *p != '\0'; p++)
		if ((unsigned char)*p < 32 || *p == 127)
			*p = ' ';
	sl_eclog_reject(ss->remote, ss->local, ss->id, "data", code, "ecstream", text);
	proto_count_rejected(ss, code, enhanced);
}

/* A frame that cannot be parsed: answer it, read nothing more. */
static void
ecs_malformed(struct proto_session *ss, const char *why)
{
	char text[256];

	snprintf(text, sizeof(text), "malformed frame: %s", why);
	ecs_refuse(ss, 554, "5.5.2", text);
	sl_log_info("session %s from %s: %s", ss->id, ss->remote, text);
	ss->ecs->state = ECS_STOPPED;
}

/* ------------------------------------------------------------ frames */

static char *
ecs_strdup(const struct sl_ecs_str *s)
{
	return sl_strndup(s->p ? s->p : "", s->len);
}

/* A mailbox as the SMTP path would take it; 0, or the refusal (code set). */
static int
ecs_check_addr(const struct sl_ecs_str *a, bool is_rcpt, unsigned *code, const char **enhanced,
	       const char **text)
{
	bool has_8bit;
	int rc;

	if (!is_rcpt && a->len == 0)
		return 0; /* the null sender */
	rc = sl_smtp_mailbox_check(a->p, a->len, is_rcpt, &has_8bit);
	if (rc == 0)
		return 0;
	*code = is_rcpt ? 501 : 553;
	*enhanced = is_rcpt ? "5.1.3" : "5.1.7";
	*text = rc == -2 ? (is_rcpt ? "Recipient address too long" : "Sender address too long")
			 : (is_rcpt ? "Bad recipient address syntax" : "Bad sender address syntax");
	return -1;
}

/*
 * The envelope is in: check it as MAIL and RCPT would be checked, then
 * read the content into a new message, or skip it after the refusal.
 */
static void
ecs_envelope(struct proto_session *ss, const struct sl_ecs_env *env)
{
	struct proto_ecs *e = ss->ecs;
	const char *enhanced = NULL, *text = NULL;
	unsigned code = 0;
	struct sl_msg *m;
	struct sl_validate_ctx ctx;
	struct sl_verdict v;
	char refusal[sizeof(v.text) + 320] = "";

	e->left = e->hdr.content_len;
	e->state = ECS_SKIP;
	if (ss->sconf.message_size > 0 && e->hdr.content_len > ss->sconf.message_size) {
		ecs_refuse(ss, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		return;
	}
	if (ss->sconf.max_rcpt_per_message > 0 && env->rcpt_cnt > ss->sconf.max_rcpt_per_message) {
		ecs_refuse(ss, 452, "4.5.3", "Too many recipients");
		return;
	}
	if (ss->pt->is_shutting_down) {
		ecs_refuse(ss, 421, "4.3.2", "Service shutting down");
		return;
	}
	if (env->sender.len == 0 && !ss->sconf.allow_null_sender) {
		ecs_refuse(ss, 553, "5.1.7", "Null sender not allowed");
		return;
	}
	if (ecs_check_addr(&env->sender, false, &code, &enhanced, &text) != 0) {
		ecs_refuse(ss, code, enhanced, text);
		return;
	}
	for (size_t i = 0; i < env->rcpt_cnt; i++) {
		if (ecs_check_addr(&env->rcpts[i], true, &code, &enhanced, &text) != 0) {
			ecs_refuse(ss, code, enhanced, text);
			return;
		}
	}
	m = sl_msg_new();
	{
		char *s = ecs_strdup(&env->sender);

		sl_msg_set_sender(m, s);
		sl_free(s);
	}
	m->session_id = ss->serial;
	snprintf(m->conn_id, sizeof(m->conn_id), "%s", ss->id);
	/* The envelope phases, as for MAIL and each RCPT (relay rights among them). */
	proto_vctx(ss, m, NULL, &ctx);
	sl_validate_run(&ss->chain, SL_VPHASE_MAILFROM, &ctx, true, &v);
	for (size_t i = 0; i < env->rcpt_cnt && v.kind == SL_VERDICT_ACCEPT; i++) {
		char *r = ecs_strdup(&env->rcpts[i]);

		proto_vctx(ss, m, r, &ctx);
		sl_validate_run(&ss->chain, SL_VPHASE_RCPTTO, &ctx, true, &v);
		if (v.kind == SL_VERDICT_ACCEPT)
			sl_msg_add_rcpt(m, r);
		else
			snprintf(refusal, sizeof(refusal), "<%.300s>: %s", r, v.text);
		sl_free(r);
	}
	if (v.kind != SL_VERDICT_ACCEPT) {
		ecs_refuse(ss, v.code,
			   v.enhanced[0] ? v.enhanced : (v.code >= 500 ? "5.7.1" : "4.7.1"),
			   refusal[0] ? refusal : v.text);
		sl_msg_free(m);
		return;
	}
	for (size_t i = 0; i < env->ctx_cnt; i++) {
		char *k = ecs_strdup(&env->ctx[2 * i]), *val = ecs_strdup(&env->ctx[2 * i + 1]);

		sl_msg_add_context(m, k, val);
		sl_free(k);
		sl_free(val);
	}
	sl_free(e->binding);
	e->binding = env->binding.p != NULL ? ecs_strdup(&env->binding) : NULL;
	e->msg = m;
	e->clean_state = 0;
	e->is_dirty = false;
	e->state = ECS_CONTENT;
}

/* Does the header section (of the first chunk) have a field `name` ("Date:")? */
static bool
ecs_has_header(const struct sl_msg *m, const char *name)
{
	const struct sl_msg_chunk *c = m->chunks;
	size_t nlen = strlen(name);
	const char *p, *end;

	if (c == NULL)
		return false;
	p = c->data;
	end = c->data + (c->len < ECS_HEADER_SCAN_MAX ? c->len : ECS_HEADER_SCAN_MAX);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (p[0] == '\r' || p[0] == '\n')
			return false; /* the blank line: end of the header section */
		if ((size_t)(end - p) > nlen && strncasecmp(p, name, nlen) == 0)
			return true;
		if (eol == NULL)
			return false;
		p = eol + 1;
	}
	return false;
}

/* The content is in: finish the message and send it to the spool. */
static void
ecs_message(struct proto_session *ss)
{
	struct proto_ecs *e = ss->ecs;
	struct sl_msg *m = e->msg;
	const char *binding;
	struct ecs_reply *r;
	struct sl_verdict v;
	bool has_date = ecs_has_header(m, "Date:");

	e->msg = NULL;
	e->state = ECS_HDR;
	if (e->is_dirty) {
		ecs_refuse(ss, 554, "5.6.0", "Message contains a bare CR or LF");
		sl_msg_free(m);
		return;
	}
	ss->msg_seq++;
	m->received = time(NULL);
	sl_msg_set_str(&m->peer_ip, ss->peer_ip);
	sl_msg_set_str(&m->helo, "");
	sl_msg_set_str(&m->protocol, "ecstream");
	for (size_t i = 0; i < ss->ctx_cnt; i++)
		sl_msg_add_context(m, ss->ctx[i].key, ss->ctx[i].val);
	proto_headers(ss, m, "ECSTREAM", ecs_has_header(m, "Message-ID:"), has_date);
	/* The frame's binding, else a "binding" context variable (the frame's or the ACL's). */
	binding = e->binding ? e->binding : sl_msg_context_get(m, "binding");
	proto_binding(ss, m, binding);
	if (!proto_data_needs_pool(ss)) {
		proto_check_data(ss, m, has_date, &v);
		if (v.kind != SL_VERDICT_ACCEPT) {
			ecs_refuse(ss, v.code,
				   v.enhanced[0] ? v.enhanced : (v.code >= 500 ? "5.7.1" : "4.7.1"),
				   v.text);
			sl_msg_free(m);
			return;
		}
	}
	r = ecs_reply_push(e);
	r->tag = ++e->next_tag;
	m->origin_tag = r->tag;
	if (!proto_data_needs_pool(ss))
		proto_submit(ss, m);
	else
		proto_check_data(ss, m, has_date, &v); /* answered by proto_verdict_back */
}

/* Parse what the input holds; false when more input (or replies going out) is needed. */
static bool
ecs_step(struct proto_session *ss)
{
	struct proto_ecs *e = ss->ecs;
	const uint8_t *p = (const uint8_t *)ss->in.data + ss->in_off;
	size_t avail = ss->in.len - ss->in_off;
	char why[160];

	switch (e->state) {
	case ECS_HDR:
		if (e->owed >= e->max_batch || avail < SL_ECS_HDR_LEN)
			return false;
		ss->in_off += SL_ECS_HDR_LEN;
		if (sl_ecs_hdr_decode(p, &e->hdr, why, sizeof(why)) != 0) {
			ecs_malformed(ss, why);
			return true;
		}
		if (e->hdr.kind == SL_ECS_QUIT) {
			ecs_reply_now(e, "221 2.0.0 bye");
			e->state = ECS_STOPPED;
			return true;
		}
		e->state = ECS_ENV;
		return true;
	case ECS_ENV: {
		struct sl_ecs_env env;

		if (avail < e->hdr.env_len)
			return false;
		ss->in_off += e->hdr.env_len;
		if (sl_ecs_env_decode(p, e->hdr.env_len, &env, why, sizeof(why)) != 0) {
			sl_ecs_env_free(&env);
			ecs_malformed(ss, why);
			return true;
		}
		ecs_envelope(ss, &env);
		sl_ecs_env_free(&env);
		if (e->left == 0 && e->state == ECS_CONTENT) {
			e->is_dirty = !sl_ecs_content_clean("", 0, &e->clean_state, true);
			ecs_message(ss);
		} else if (e->left == 0) {
			e->state = ECS_HDR;
		}
		return true;
	}
	case ECS_CONTENT:
	case ECS_SKIP: {
		size_t n = avail < e->left ? avail : (size_t)e->left;

		if (n == 0)
			return false;
		if (e->state == ECS_CONTENT) {
			sl_msg_append(e->msg, p, n);
			if (!sl_ecs_content_clean((const char *)p, n, &e->clean_state,
						  n == e->left))
				e->is_dirty = true;
		}
		ss->in_off += n;
		e->left -= n;
		if (e->left > 0)
			return true;
		if (e->state == ECS_CONTENT)
			ecs_message(ss);
		else
			e->state = ECS_HDR;
		return true;
	}
	case ECS_GREETING:
	case ECS_STOPPED:
		return false;
	}
	return false;
}

/* ------------------------------------------------------------ the session */

void
proto_ecs_start(struct proto_session *ss)
{
	struct proto_ecs *e = SL_NEW(e);
	int64_t batch = proto_pers_int(ss, SL_OPT_ECSTREAM_MAX_BATCH_SIZE);

	e->state = ECS_GREETING;
	e->max_batch = batch > 0 ? (size_t)batch : 10000;
	ss->ecs = e;
	ss->idle_secs = proto_pers_int(ss, SL_OPT_ECSTREAM_IDLE_TIME);
}

void
proto_ecs_connect(struct proto_session *ss, const struct sl_verdict *v)
{
	struct proto_ecs *e = ss->ecs;

	if (e->state == ECS_STOPPED)
		return; /* stopped (shutting down) while the verdict was out */
	if (v->kind != SL_VERDICT_ACCEPT) {
		sl_buf_printf(&ss->out, "ECS1-ERR %u %s %s\r\n", v->code,
			      v->enhanced[0] ? v->enhanced : "5.7.1", v->text);
		sl_eclog_reject(ss->remote, ss->local, ss->id, "connect", v->code, v->module,
				v->text);
		proto_count_rejected(ss, v->code, v->enhanced[0] ? v->enhanced : "5.7.1");
		sl_group_add(ss->lrt->group, SL_GS_IN_ASSOC_REFUSED, 1);
		e->state = ECS_STOPPED;
		return;
	}
	if (ss->pt->is_shutting_down) {
		sl_buf_printf(&ss->out, "ECS1-ERR 421 4.3.2 Service shutting down\r\n");
		e->state = ECS_STOPPED;
		return;
	}
	sl_buf_printf(&ss->out, "%s%s ready\r\n", SL_ECS_GREETING, ss->sconf.hostname);
	e->state = ECS_HDR;
}

void
proto_ecs_drive(struct proto_session *ss)
{
	struct proto_ecs *e = ss->ecs;

	while (!ss->is_closed && !ss->is_waiting && ecs_step(ss))
		;
	if (ss->in_off > 0) {
		sl_buf_consume(&ss->in, ss->in_off);
		ss->in_off = 0;
	}
	ecs_replies_out(ss);
	ss->transport->flush(ss);
	if (!ss->is_closed && e->state == ECS_STOPPED && e->head == NULL && !ss->is_writing &&
	    ss->out.len == 0) {
		proto_close(ss);
		return;
	}
	proto_arm(ss);
}

void
proto_ecs_answer(struct proto_session *ss, const struct sl_msg *m)
{
	struct ecs_reply *r;

	for (r = ss->ecs->head; r != NULL && r->tag != m->origin_tag; r = r->next)
		;
	SL_ASSERT(r != NULL && !r->is_done);
	r->is_done = true;
	if (m->spool_result == 0) {
		snprintf(r->line, sizeof(r->line), "250 %s", m->qid);
		proto_count_received(ss, m);
		return;
	}
	if (m->spool_result == -EPERM)
		snprintf(r->line, sizeof(r->line), "550 5.7.1 Message refused by policy");
	else if (m->spool_result == -EAGAIN)
		snprintf(r->line, sizeof(r->line), "451 4.7.1 Message deferred by policy");
	else
		snprintf(r->line, sizeof(r->line),
			 "451 4.3.0 Error: queue file write error, try again later");
	sl_eclog_reject(ss->remote, ss->local, ss->id, "data",
			m->spool_result == -EPERM ? 550 : 451, "ecstream", r->line + 10);
	proto_count_rejected(ss, m->spool_result == -EPERM ? 550 : 451, r->line + 4);
}

void
proto_ecs_shutdown(struct proto_session *ss)
{
	struct proto_ecs *e = ss->ecs;

	/* Frames not read yet get no reply: nothing of theirs was acknowledged. */
	sl_msg_free(e->msg);
	e->msg = NULL;
	e->state = ECS_STOPPED;
}

void
proto_ecs_timeout(struct proto_session *ss)
{
	struct proto_ecs *e = ss->ecs;

	/* Only when nothing is owed: the line answers no frame. */
	sl_buf_printf(&ss->out, "421 4.4.2 %s idle timeout\r\n", ss->sconf.hostname);
	sl_msg_free(e->msg);
	e->msg = NULL;
	e->state = ECS_STOPPED;
}

uint64_t
proto_ecs_timeout_ms(const struct proto_session *ss)
{
	const struct proto_ecs *e = ss->ecs;

	if (e->owed > 0 || e->state == ECS_GREETING || e->state == ECS_STOPPED)
		return 0; /* waiting for the spool, a verdict, or the close */
	return ss->idle_secs > 0 ? (uint64_t)ss->idle_secs * 1000 : 0;
}

bool
proto_ecs_is_closing(const struct proto_session *ss)
{
	return ss->ecs->state == ECS_STOPPED;
}

bool
proto_ecs_is_busy(const struct proto_session *ss)
{
	return ss->ecs->owed >= ss->ecs->max_batch;
}

void
proto_ecs_free(struct proto_session *ss)
{
	struct proto_ecs *e = ss->ecs;

	while (e->head != NULL) {
		struct ecs_reply *r = e->head;

		e->head = r->next;
		sl_free(r);
	}
	sl_msg_free(e->msg);
	sl_free(e->binding);
	sl_free(e);
	ss->ecs = NULL;
}
