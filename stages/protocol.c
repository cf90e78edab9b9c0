/*
 * stages/protocol.c - the protocol stage: SMTP sessions on libuv loop threads.
 *
 * Each loop thread owns its sessions: the socket, a timer, the SMTP state
 * machine (proto/smtp_server.c), the input and output buffers, and the
 * message being received.  Bytes read from the socket go through the
 * transport (plain for now; TLS slots in with STARTTLS) into the machine;
 * its events are answered at once for inline policy checks, or after a
 * round trip through the validation stage for checks that may block.  A
 * complete message travels to the spool (through the validation stage when
 * a data-phase module may block) and comes back durable; only then does
 * the client get its 250 and the queue id.
 *
 * Session policy (personality, context, relay rights, extensions) is
 * resolved once, when the session starts, from the ACL entries the accept
 * thread matched; the session keeps its configuration snapshot for life.
 *
 * Threads: the loop threads of this stage only; a session and everything
 * it points to belong to one thread.  Parses untrusted input through the
 * SMTP machine (which enforces every limit); XCLIENT/XREMOTEIP addresses
 * are checked with inet_pton.
 * Ownership: a session is freed in the close callback of its last handle
 * once no event it sent out (a message, a verdict request) is outstanding.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf_holder.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "engine/throttle.h"
#include "proto/binding.h"
#include "proto/smtp_server.h"
#include "proto/validate.h"
#include "stages/eclog.h"
#include "stages/events.h"
#include "stages/stages.h"
#include "stages/stats.h"

#include "stages/protocol_int.h"

static unsigned proto_ctr_sessions;
static unsigned proto_ctr_received;
static unsigned proto_ctr_rejected;
static unsigned proto_ctr_inflight;
static unsigned proto_shutdown_acks;
static unsigned proto_finishing; /* sessions finishing their transaction at a stop; atomic */
static struct sl_stage *proto_stage;

/* ------------------------------------------------------------ policy */

/* A personality value after the ACL walk (last applied entry wins), else global/default. */
static const union sl_conf_val *
proto_pers(const struct proto_session *ss, enum sl_opt opt)
{
	const union sl_conf_val *v = sl_conf_global(ss->snap, opt);

	if (v == NULL)
		v = ss->snap->dflt[opt];
	for (size_t i = 0; i < ss->acl.applied_cnt; i++) {
		const struct sl_conf_setting *set =
			sl_conf_settings_find(ss->acl.applied[i]->personality, opt);

		if (set != NULL)
			v = &set->v;
	}
	return v;
}

int64_t
proto_pers_int(const struct proto_session *ss, enum sl_opt opt)
{
	const union sl_conf_val *v = proto_pers(ss, opt);

	return v ? v->i : 0;
}

static const char *
proto_pers_str(const struct proto_session *ss, enum sl_opt opt)
{
	const union sl_conf_val *v = proto_pers(ss, opt);

	return v && v->s && v->s[0] ? v->s : NULL;
}

static bool
proto_has_prop(const struct proto_session *ss, const char *name)
{
	for (size_t i = 0; i < ss->acl.applied_cnt; i++)
		for (size_t k = 0; k < ss->acl.applied[i]->prop_cnt; k++)
			if (strcmp(ss->acl.applied[i]->props[k].name, name) == 0)
				return true;
	return false;
}

static const union sl_conf_val *proto_rfc2822(const struct sl_conf_snapshot *s, enum sl_opt opt);
static bool proto_throttled(struct proto_session *ss);
static void proto_check(struct proto_session *ss, enum sl_validate_phase phase, const char *rcpt);

static enum sl_smtp_bare_eol
proto_bare_eol(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	const union sl_conf_val *v = proto_rfc2822(s, opt);

	if (v == NULL || strcasecmp(v->s, "pedantic") == 0)
		return SL_SMTP_BARE_EOL_REJECT;
	return strcasecmp(v->s, "fix") == 0 ? SL_SMTP_BARE_EOL_FIX : SL_SMTP_BARE_EOL_IGNORE;
}

/* An option of the RFC2822 block (always present, with defaults). */
static const union sl_conf_val *
proto_rfc2822(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	size_t pos = 0;
	const struct sl_conf_block *b = sl_conf_block_next(s, "RFC2822", &pos);

	return sl_conf_block_get(s, b, opt);
}

static const char *
proto_rfc2822_str(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	const union sl_conf_val *v = proto_rfc2822(s, opt);

	return v ? v->s : "";
}

static void
proto_context_set(struct proto_session *ss, const char *key, const char *val)
{
	for (size_t i = 0; i < ss->ctx_cnt; i++) {
		if (strcmp(ss->ctx[i].key, key) == 0) {
			sl_msg_set_str(&ss->ctx[i].val, val);
			return;
		}
	}
	ss->ctx = sl_reallocarray(ss->ctx, ss->ctx_cnt + 1, sizeof(*ss->ctx));
	ss->ctx[ss->ctx_cnt].key = sl_strdup(key);
	ss->ctx[ss->ctx_cnt].val = sl_strdup(val);
	ss->ctx_cnt++;
}

void
proto_context_put(void *arg, const char *key, const char *val)
{
	proto_context_set(arg, key, val);
}

const char *
proto_context_get(void *arg, const char *key)
{
	const struct proto_session *ss = arg;

	for (size_t i = 0; i < ss->ctx_cnt; i++)
		if (strcmp(ss->ctx[i].key, key) == 0)
			return ss->ctx[i].val;
	return NULL;
}

/* Resolve the session's policy once, from its snapshot and ACL walk. */
static void
proto_policy(struct proto_session *ss)
{
	struct sl_smtp_server_conf *c = &ss->sconf;
	const char *hostname = sl_conf_str(ss->snap, SL_OPT_HOSTNAME);

	if (hostname == NULL || hostname[0] == '\0')
		hostname = ss->pt->hostname;
	memset(c, 0, sizeof(*c));
	c->hostname = proto_pers_str(ss, SL_OPT_BANNER_HOSTNAME);
	if (c->hostname == NULL)
		c->hostname = hostname;
	c->static_banner = proto_pers_str(ss, SL_OPT_STATIC_BANNER);
	c->greeting = "ESMTP " PROTO_SOFTWARE;
	c->message_size = (uint64_t)proto_pers_int(ss, SL_OPT_MESSAGE_SIZE);
	c->max_rcpt_per_message = (unsigned)proto_pers_int(ss, SL_OPT_MAX_RECIPIENTS_PER_MESSAGE);
	c->max_rcpt_per_session =
		(unsigned)proto_pers_int(ss, SL_OPT_MAX_RECIPIENTS_PER_CONNECTION);
	c->max_msgs_per_session =
		(unsigned)proto_pers_int(ss, SL_OPT_MAX_RECEPTIONS_PER_CONNECTION);
	c->body_bare_eol = proto_bare_eol(ss->snap, SL_OPT_LONE_LF_IN_BODY);
	c->header_bare_eol = proto_bare_eol(ss->snap, SL_OPT_LONE_LF_IN_HEADERS);
	/* The require_ehlo and null_sender modules decide these, not the machine. */
	ss->vpolicy.require_ehlo = sl_conf_bool(ss->snap, SL_OPT_REQUIRE_EHLO);
	ss->vpolicy.allow_null_sender = proto_pers(ss, SL_OPT_ALLOW_NULL_ENVELOPE_SENDER) == NULL ||
					proto_pers(ss, SL_OPT_ALLOW_NULL_ENVELOPE_SENDER)->b;
	ss->vpolicy.date_pedantic =
		strcasecmp(proto_rfc2822_str(ss->snap, SL_OPT_DATE_HEADER), "pedantic") == 0;
	c->require_ehlo = false;
	c->allow_null_sender = true;
	c->allow_trailing_ws = proto_pers(ss, SL_OPT_ALLOW_TRAILING_WHITESPACE_IN_COMMANDS) &&
			       proto_pers(ss, SL_OPT_ALLOW_TRAILING_WHITESPACE_IN_COMMANDS)->b;
	c->has_8bitmime = true;
	c->has_smtputf8 = true;
	c->has_chunking = true;
	c->has_enhancedstatuscodes = proto_has_prop(ss, "ENHANCEDSTATUSCODES");
	c->has_xclient = proto_has_prop(ss, "XCLIENT");
	c->has_xremoteip = proto_has_prop(ss, "XREMOTEIP");
	c->has_xdumpcontext = proto_has_prop(ss, "XDUMPCONTEXT");
	ss->received_hostname = proto_pers_str(ss, SL_OPT_RECEIVED_HOSTNAME);
	if (ss->received_hostname == NULL)
		ss->received_hostname = hostname;
	ss->idle_secs = proto_pers_int(ss, SL_OPT_IDLE_TIME);

	memset(&ss->relay, 0, sizeof(ss->relay));
	for (size_t i = 0; i < ss->acl.applied_cnt; i++) {
		const struct sl_conf_acl_entry *e = ss->acl.applied[i];

		if (e->has_relay) {
			size_t n = 0;

			while (e->relay_domains[n] != NULL)
				n++;
			ss->relay.is_open = n == 0;
			ss->relay.sender_domains = e->relay_domains;
			ss->relay.sender_domain_cnt = n;
		}
		for (size_t k = 0; k < e->context->cnt; k++)
			proto_context_set(ss, e->context->v[k].key, e->context->v[k].val);
	}
	{
		const union sl_conf_val *rh = proto_pers(ss, SL_OPT_RELAY_HOSTS);

		ss->relay.acl_relay_hosts = rh ? &rh->list : NULL;
	}
	sl_validate_chain_build(ss->snap, &ss->chain);
	/*
	 * message_size and rfc2822's lone CR/LF rule are enforced by the machine
	 * while the content streams in; a bypass (from the listener's context)
	 * lifts them for the whole session.
	 */
	{
		struct sl_validate_ctx ctx;

		proto_vctx(ss, NULL, NULL, &ctx);
		if (!sl_validate_is_active(&ss->chain, "message_size", &ctx))
			c->message_size = 0;
		if (!sl_validate_is_active(&ss->chain, "rfc2822", &ctx)) {
			c->body_bare_eol = SL_SMTP_BARE_EOL_IGNORE;
			c->header_bare_eol = SL_SMTP_BARE_EOL_FIX;
		}
	}
}

/* ------------------------------------------------------------ timers, reading */

static void proto_rejectlog(const struct proto_session *ss, const char *phase, unsigned code,
			    const char *module, const char *text);

static void
proto_timeout_cb(uv_timer_t *timer)
{
	struct proto_session *ss = timer->data;

	SL_CHECK_OBJ(ss, PROTO_SESSION_MAGIC);
	sl_log_info("session %s from %s: timeout", ss->id, ss->remote);
	proto_rejectlog(ss, "timeout", 421, ss->ecs != NULL ? "ecstream" : "smtp",
			"timeout exceeded");
	if (ss->ecs != NULL)
		proto_ecs_timeout(ss);
	else
		sl_smtp_server_timeout(ss->smtp, &ss->out);
	proto_drive(ss);
}

/* The timeout for what the client is expected to send now, in ms (0: none). */
static uint64_t
proto_timeout_ms(const struct proto_session *ss)
{
	enum sl_opt opt;
	int64_t secs = ss->idle_secs;
	const union sl_conf_val *v;

	if (ss->ecs != NULL)
		return proto_ecs_timeout_ms(ss);
	switch (sl_smtp_server_waiting_for(ss->smtp)) {
	case SL_SMTP_WAIT_HELO:
		opt = SL_OPT_EHLO_TIMEOUT;
		break;
	case SL_SMTP_WAIT_MAIL:
		opt = SL_OPT_MAILFROM_TIMEOUT;
		break;
	case SL_SMTP_WAIT_RCPT:
		opt = SL_OPT_RCPTTO_TIMEOUT;
		break;
	case SL_SMTP_WAIT_BODY:
		opt = SL_OPT_BODY_TIMEOUT;
		break;
	case SL_SMTP_WAIT_RSET:
		opt = SL_OPT_RSET_TIMEOUT;
		break;
	case SL_SMTP_WAIT_VERDICT:
	default:
		return 0;
	}
	v = sl_conf_global(ss->snap, opt);
	if (v != NULL && v->i > 0 && (secs <= 0 || v->i < secs))
		secs = v->i;
	return secs > 0 ? (uint64_t)secs * 1000 : 0;
}

static void
proto_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct proto_session *ss = h->data;

	ss->transport->read_buf(ss, buf);
}

static void
proto_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct proto_session *ss = stream->data;

	SL_CHECK_OBJ(ss, PROTO_SESSION_MAGIC);
	if (nread > 0) {
		if (ss->transport->received(ss, (size_t)nread) != 0) {
			proto_close(ss);
			return;
		}
		proto_drive(ss);
	} else if (nread < 0) {
		if (nread != UV_EOF)
			sl_log_debug("session %s: read: %s", ss->id, uv_strerror((int)nread));
		proto_close(ss);
	}
}

/* Is the protocol machine done with the session (it closes once its output is out)? */
bool
proto_is_closing(const struct proto_session *ss)
{
	return ss->ecs != NULL ? proto_ecs_is_closing(ss) : sl_smtp_server_is_closing(ss->smtp);
}

/* Start or stop reading and re-arm the timer for the current state. */
void
proto_arm(struct proto_session *ss)
{
	bool is_full =
		ss->in.len > PROTO_INPUT_HIGH || ss->out.len + ss->wbuf.len > PROTO_OUTPUT_HIGH;
	bool is_busy = ss->is_waiting || ss->is_writing || (ss->ecs && proto_ecs_is_busy(ss));
	bool want = !ss->is_closed && !proto_is_closing(ss) &&
		    (!ss->pt->is_shutting_down || ss->is_finishing) && !(is_full && is_busy);
	uint64_t ms;

	if (ss->is_closed)
		return;
	if (want && !ss->is_reading) {
		if (uv_read_start(&ss->h.stream, proto_alloc_cb, proto_read_cb) == 0)
			ss->is_reading = true;
	} else if (!want && ss->is_reading) {
		uv_read_stop(&ss->h.stream);
		ss->is_reading = false;
	}
	if (ss->is_throttled)
		return; /* the timer waits for a throttle token */
	ms = ss->is_waiting ? 0 : proto_timeout_ms(ss);
	if (ms > 0)
		uv_timer_start(&ss->timer, proto_timeout_cb, ms, 0);
	else
		uv_timer_stop(&ss->timer);
}

/* ------------------------------------------------------------ verdicts */

/*
 * One rejectlog line for the session, with its context (Momentum's CTXCONN
 * and CTXMESS): the HELO/EHLO facts and the session's context variables;
 * the MAIL facts and the message's variables once a transaction is open.
 */
static void
proto_rejectlog(const struct proto_session *ss, const char *phase, unsigned code,
		const char *module, const char *text)
{
	struct sl_msg_kv *conn = NULL, *mess = NULL;
	size_t conn_cnt = 0, mess_cnt = 0;
	struct sl_eclog_ctx ctx;

	if (ss->helo != NULL) {
		char *s = sl_asprintf(
			"%s %s",
			ss->smtp == NULL || sl_smtp_server_is_esmtp(ss->smtp) ? "EHLO" : "HELO",
			ss->helo);

		sl_kv_set(&conn, &conn_cnt, "ehlo_string", s);
		sl_kv_set(&conn, &conn_cnt, "ehlo_domain", ss->helo);
		sl_free(s);
	}
	for (size_t i = 0; i < ss->ctx_cnt; i++)
		sl_kv_set(&conn, &conn_cnt, ss->ctx[i].key, ss->ctx[i].val);
	if (ss->msg != NULL && ss->msg->sender != NULL) {
		const char *from = ss->msg->sender, *at = strrchr(from, '@');
		char *s = sl_asprintf("MAIL FROM:<%s>", from);
		char *local = sl_strndup(from, at != NULL ? (size_t)(at - from) : strlen(from));

		sl_kv_set(&mess, &mess_cnt, "mailfrom_string", s);
		sl_kv_set(&mess, &mess_cnt, "mailfrom_localpart", local);
		sl_kv_set(&mess, &mess_cnt, "mailfrom_domain", at != NULL ? at + 1 : "");
		for (size_t i = 0; i < ss->msg->context_cnt; i++)
			sl_kv_set(&mess, &mess_cnt, ss->msg->context[i].key,
				  ss->msg->context[i].val);
		sl_free(s);
		sl_free(local);
	}
	ctx = (struct sl_eclog_ctx){ conn, conn_cnt, mess, mess_cnt };
	sl_eclog_reject_ctx(ss->remote, ss->local, ss->id, phase, code, module, text, &ctx);
	for (size_t i = 0; i < conn_cnt; i++) {
		sl_free(conn[i].key);
		sl_free(conn[i].val);
	}
	for (size_t i = 0; i < mess_cnt; i++) {
		sl_free(mess[i].key);
		sl_free(mess[i].val);
	}
	sl_free(conn);
	sl_free(mess);
}

static void
proto_reject(struct proto_session *ss, enum sl_validate_phase phase, const struct sl_verdict *v)
{
	sl_smtp_server_reject(ss->smtp, v->code, v->enhanced[0] ? v->enhanced : NULL, v->text,
			      &ss->out);
	proto_rejectlog(ss, sl_validate_phase_name(phase), v->code, v->module, v->text);
	proto_count_rejected(ss, v->code, v->enhanced);
}

/*
 * A refusal that is not a policy decision (no rejectlog line, not counted
 * as rejected: bad XCLIENT syntax, shutting down): the reply, and its
 * status code for SNMP.
 */
static void
proto_refuse(struct proto_session *ss, unsigned code, const char *enhanced, const char *text)
{
	sl_smtp_server_reject(ss->smtp, code, enhanced, text, &ss->out);
	sl_group_error(ss->lrt->group, enhanced);
}

/* Apply a verdict on HELO/MAIL/RCPT/connect. */
static void
proto_apply(struct proto_session *ss, enum sl_validate_phase phase, const struct sl_verdict *v,
	    const char *rcpt)
{
	if (ss->ecs != NULL) {
		/* ECStream: only the connect phase comes here. */
		proto_ecs_connect(ss, v);
		return;
	}
	if (v->kind != SL_VERDICT_ACCEPT) {
		if (phase == SL_VPHASE_MAILFROM) {
			sl_msg_free(ss->msg);
			ss->msg = NULL;
		}
		/* Refused at connect: the refusal replaces the banner. */
		if (phase == SL_VPHASE_CONNECT) {
			sl_buf_reset(&ss->out);
			sl_group_add(ss->lrt->group, SL_GS_IN_ASSOC_REFUSED, 1);
		}
		proto_reject(ss, phase, v);
		return;
	}
	if (phase == SL_VPHASE_RCPTTO)
		sl_msg_add_rcpt(ss->msg, rcpt);
	if (phase != SL_VPHASE_CONNECT)
		sl_smtp_server_accept(ss->smtp, NULL, &ss->out);
}

void
proto_vctx(struct proto_session *ss, const struct sl_msg *m, const char *rcpt,
	   struct sl_validate_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->snap = ss->snap;
	ctx->peer = ss->has_peer ? (const struct sockaddr *)&ss->peer : NULL;
	ctx->peer_ip = ss->peer_ip;
	ctx->helo = ss->helo ? ss->helo : "";
	ctx->sender = m ? m->sender : NULL;
	ctx->rcpt = rcpt;
	ctx->rcpt_cnt = m ? m->rcpt_cnt : 0;
	ctx->relay = &ss->relay;
	ctx->policy = &ss->vpolicy;
	ctx->context_get = proto_context_get;
	ctx->context_set = proto_context_put;
	ctx->ctx_arg = ss;
}

/*
 * A verdict request for `phase` of the session's current state; the
 * session waits for it and holds a reference until it comes back.
 */
static struct sl_verdict_req_ev *
proto_vreq(struct proto_session *ss, enum sl_validate_phase phase, const char *rcpt)
{
	struct sl_verdict_req_ev *r = SL_NEW(r);

	sl_event_init(&r->ev, SL_EV_VERDICT_REQ);
	r->session = ss;
	r->session_serial = ss->serial;
	r->phase = phase;
	sl_rcuobj_get(&ss->snap->obj);
	r->snap = ss->snap;
	r->has_peer = ss->has_peer;
	memcpy(&r->peer, &ss->peer, sizeof(r->peer));
	r->peer_ip = sl_strdup(ss->peer_ip);
	r->helo = sl_strdup(ss->helo ? ss->helo : "");
	r->sender = ss->msg ? sl_strdup(ss->msg->sender) : NULL;
	r->rcpt = rcpt ? sl_strdup(rcpt) : NULL;
	r->rcpt_cnt = ss->msg ? ss->msg->rcpt_cnt : 0;
	r->relay = ss->relay;
	r->policy = ss->vpolicy;
	r->chain = ss->chain;
	r->context = sl_calloc(ss->ctx_cnt ? ss->ctx_cnt : 1, sizeof(*r->context));
	for (size_t i = 0; i < ss->ctx_cnt; i++) {
		r->context[i].key = sl_strdup(ss->ctx[i].key);
		r->context[i].val = sl_strdup(ss->ctx[i].val);
	}
	r->context_cnt = ss->ctx_cnt;
	ss->pending_phase = phase;
	ss->refs++;
	return r;
}

/*
 * Check `phase`: inline modules here and now; if a module may block, the
 * whole phase goes to the validation stage and the session waits.
 */
static void
proto_check(struct proto_session *ss, enum sl_validate_phase phase, const char *rcpt)
{
	struct sl_validate_ctx ctx;
	struct sl_verdict v;

	if (ss->chain.needs_pool[phase]) {
		struct sl_verdict_req_ev *r = proto_vreq(ss, phase, rcpt);

		sl_msg_set_str(&ss->pending_rcpt, rcpt);
		ss->is_waiting = true;
		sl_send(ss->pt->validate, &r->ev);
		return;
	}
	proto_vctx(ss, ss->msg, rcpt, &ctx);
	sl_validate_run(&ss->chain, phase, &ctx, true, &v);
	proto_apply(ss, phase, &v, rcpt);
}

/* An ECStream frame's envelope, checked by the inline modules only, needs the stage too. */
static bool
proto_ecs_envelope_needs_pool(const struct proto_session *ss)
{
	return ss->ecs != NULL &&
	       (ss->chain.needs_pool[SL_VPHASE_MAILFROM] || ss->chain.needs_pool[SL_VPHASE_RCPTTO]);
}

bool
proto_data_needs_pool(const struct proto_session *ss)
{
	return ss->chain.needs_pool[SL_VPHASE_DATA] || proto_ecs_envelope_needs_pool(ss);
}

bool
proto_check_data(struct proto_session *ss, struct sl_msg *m, bool has_date_header,
		 struct sl_verdict *v)
{
	struct sl_validate_ctx ctx;
	struct sl_verdict_req_ev *r;

	if (!proto_data_needs_pool(ss)) {
		/* Every data-phase module is inline: check here, skip a hop. */
		proto_vctx(ss, m, NULL, &ctx);
		ctx.has_date_header = has_date_header;
		ctx.message_len = m->content_len;
		sl_validate_run(&ss->chain, SL_VPHASE_DATA, &ctx, true, v);
		return true;
	}
	r = proto_vreq(ss, SL_VPHASE_DATA, NULL);
	sl_free(r->sender);
	r->sender = sl_strdup(m->sender);
	r->rcpt_cnt = m->rcpt_cnt;
	r->msg = m;
	r->has_date_header = has_date_header;
	r->envelope_first = proto_ecs_envelope_needs_pool(ss);
	m->origin = ss;
	m->origin_serial = ss->serial;
	sl_send(ss->pt->validate, &r->ev);
	return false;
}

/* ------------------------------------------------------------ inbound throttle */

static void
proto_throttle_cb(uv_timer_t *timer)
{
	struct proto_session *ss = timer->data;

	SL_CHECK_OBJ(ss, PROTO_SESSION_MAGIC);
	ss->is_throttled = false;
	if (proto_throttled(ss))
		return; /* still no token: the timer is armed again */
	ss->is_waiting = false;
	proto_check(ss, SL_VPHASE_MAILFROM, NULL);
	proto_drive(ss);
}

/*
 * Inbound_Throttle_Messages: one token per message, shared by every
 * session of the node.  Without a token the session waits (its MAIL is
 * answered later) instead of being refused: the client just sees a slower
 * server.  True when it must wait (the timer is set).
 */
static bool
proto_throttled(struct proto_session *ss)
{
	const union sl_conf_val *v = sl_conf_global(ss->snap, SL_OPT_INBOUND_THROTTLE_MESSAGES);
	uint64_t wait;

	if (v == NULL || v->thr.cnt == 0)
		return false;
	wait = sl_throttle_take(v, ss->snap->generation, v->thr.cnt, v->thr.secs,
				uv_now(ss->pt->loop));
	if (wait == 0)
		return false;
	ss->is_waiting = true;
	ss->is_throttled = true;
	uv_timer_start(&ss->timer, proto_throttle_cb, wait, 0);
	return true;
}

/* ------------------------------------------------------------ messages */

static void
proto_date(char *buf, size_t len, time_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * The Received: line (RFC 5321 §4.4, `with` its protocol name) and any
 * Message-ID:/Date: the message lacks (Date_Header = pedantic adds none: the
 * rfc2822 module refuses the message).  Returns 0.
 */
void
proto_headers(struct proto_session *ss, struct sl_msg *m, const char *with, bool has_message_id,
	      bool has_date)
{
	char date[64];
	const char *rdns;

	proto_date(date, sizeof(date), m->received);
	if (proto_rfc2822(ss->snap, SL_OPT_TRACE_HEADERS) == NULL ||
	    proto_rfc2822(ss->snap, SL_OPT_TRACE_HEADERS)->b) {
		rdns = proto_context_get(ss, "rdns");
		sl_buf_printf(&m->head,
			      "Received: from %s (%s%s%s%s%s)\r\n\tby %s (%s) with %s id %s.%u",
			      ss->helo && ss->helo[0] ? ss->helo : "unknown", rdns ? rdns : "",
			      rdns && ss->has_peer ? " " : "", ss->has_peer ? "[" : "", ss->peer_ip,
			      ss->has_peer ? "]" : "", ss->received_hostname, PROTO_SOFTWARE, with,
			      ss->id, ss->msg_seq);
		if (m->rcpt_cnt == 1)
			sl_buf_printf(&m->head, "\r\n\tfor <%s>", m->rcpts[0].addr);
		sl_buf_printf(&m->head, ";\r\n\t%s\r\n", date);
	}
	if (!has_message_id &&
	    strcasecmp(proto_rfc2822_str(ss->snap, SL_OPT_MESSAGEID_HEADER), "ifneeded") == 0)
		sl_buf_printf(&m->head, "Message-ID: <%s.%u@%s>\r\n", ss->id, ss->msg_seq,
			      ss->received_hostname);
	if (!has_date) {
		const char *policy = proto_rfc2822_str(ss->snap, SL_OPT_DATE_HEADER);

		if (strcasecmp(policy, "ifneeded") == 0)
			sl_buf_printf(&m->head, "Date: %s\r\n", date);
	}
}

/*
 * The binding the message will leave from (proto/binding.h), decided now so
 * the R line names it; `context` is the "binding" context variable, if any.
 */
void
proto_binding(struct proto_session *ss, struct sl_msg *m, const char *context)
{
	char header[SL_BINDING_NAME_MAX];
	uint64_t off, len;
	const struct sl_conf_binding *b;
	const char *unknown;
	bool has_header =
		m->chunks != NULL && sl_binding_header(m->chunks->data, m->chunks->len, header,
						       sizeof(header), &off, &len);

	b = sl_binding_choose(ss->snap, has_header ? header : NULL, context, m->sender, &unknown);
	if (unknown != NULL)
		sl_log_notice("session %s: binding \"%s\" is not configured; the message from <%s> "
			      "uses default",
			      ss->id, unknown, m->sender);
	sl_msg_set_str(&m->binding, b ? b->name : "default");
	sl_msg_set_str(&m->binding_group, b && b->group ? b->group->name : "default");
}

/* A complete, well-formed message: add headers, validate it, send it to be spooled. */
static void
proto_message(struct proto_session *ss, const struct sl_smtp_ev *ev)
{
	struct sl_msg *m = ss->msg;
	struct sl_verdict v;

	SL_CHECK_OBJ(m, SL_MSG_MAGIC);
	ss->msg_seq++;
	m->received = time(NULL);
	sl_msg_set_str(&m->peer_ip, ss->peer_ip);
	sl_msg_set_str(&m->helo, ss->helo ? ss->helo : "");
	sl_msg_set_str(&m->protocol, "esmtp");
	for (size_t i = 0; i < ss->ctx_cnt; i++)
		sl_msg_add_context(m, ss->ctx[i].key, ss->ctx[i].val);
	proto_headers(ss, m,
		      sl_smtp_server_is_esmtp(ss->smtp) ? (m->is_smtputf8 ? "UTF8ESMTP" : "ESMTP")
		      : m->is_smtputf8                  ? "UTF8SMTP"
							: "SMTP",
		      ev->has_message_id_header, ev->has_date_header);
	proto_binding(ss, m, proto_context_get(ss, "binding"));
	ss->msg = NULL;
	ss->is_waiting = true;
	if (!proto_check_data(ss, m, ev->has_date_header, &v))
		return; /* the validation stage has it; proto_verdict_back goes on */
	if (v.kind != SL_VERDICT_ACCEPT) {
		ss->is_waiting = false;
		proto_reject(ss, SL_VPHASE_DATA, &v);
		sl_msg_free(m);
		return;
	}
	proto_submit(ss, m);
}

/*
 * Send a complete, checked message to the spool.  It comes back as
 * SL_MSG_EV_SPOOLED; the session holds a reference until then.
 */
void
proto_submit(struct proto_session *ss, struct sl_msg *m)
{
	sl_event_init(&m->ev, SL_MSG_EV_SPOOL);
	m->origin = ss;
	m->origin_serial = ss->serial;
	ss->refs++;
	sl_counter_add(proto_ctr_inflight, 1);
	sl_send(ss->pt->spool, &m->ev);
}

void
proto_count_rejected(struct proto_session *ss, unsigned code, const char *text)
{
	sl_counter_add(proto_ctr_rejected, 1);
	sl_group_add(ss->lrt->group, SL_GS_REJECTED_MSGS, 1);
	sl_group_error_reply(ss->lrt->group, code, text);
}

void
proto_count_received(struct proto_session *ss, const struct sl_msg *m)
{
	struct sl_group *g = ss->lrt->group;

	sl_counter_add(proto_ctr_received, 1);
	sl_group_add(g, SL_GS_RECEIVED_MSGS, 1);
	sl_group_add(g, SL_GS_RECEIVED_BYTES, (int64_t)sl_msg_size(m));
	sl_group_add(g, SL_GS_RECEIVED_RCPTS, (int64_t)m->rcpt_cnt);
	sl_group_touch(g, true);
}

/* What follows the code in a reply line the machine gave ("501 5.5.4 Syntax": "5.5.4 Syntax"). */
static const char *
proto_reply_text(const char *reply)
{
	if (reply == NULL || strlen(reply) < 4 || (reply[3] != ' ' && reply[3] != '-'))
		return NULL;
	return reply + 4;
}

/* XCLIENT / XREMOTEIP: the proxy in front of us says who the client really is. */
static int
proto_set_peer(struct proto_session *ss, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss->peer;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss->peer;
	struct sockaddr_storage tmp;

	memset(&tmp, 0, sizeof(tmp));
	if (strncasecmp(ip, "IPV6:", 5) == 0)
		ip += 5;
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&tmp)->sin_addr) == 1) {
		memset(&ss->peer, 0, sizeof(ss->peer));
		sin->sin_family = AF_INET;
		sin->sin_addr = ((struct sockaddr_in *)&tmp)->sin_addr;
	} else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&tmp)->sin6_addr) == 1) {
		memset(&ss->peer, 0, sizeof(ss->peer));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = ((struct sockaddr_in6 *)&tmp)->sin6_addr;
	} else {
		return -1;
	}
	ss->has_peer = true;
	snprintf(ss->peer_ip, sizeof(ss->peer_ip), "%s", ip);
	snprintf(ss->remote, sizeof(ss->remote), "%s:0", ip);
	return 0;
}

static void
proto_xclient(struct proto_session *ss, const struct sl_smtp_ev *ev)
{
	const char *port = NULL;

	for (size_t i = 0; i < ev->xclient_cnt; i++) {
		const struct sl_smtp_xclient_attr *a = &ev->xclient[i];

		if (a->value[0] == '[' &&
		    strchr(a->value, ']') == a->value + strlen(a->value) - 1 &&
		    strcmp(a->name, "ADDR") != 0)
			continue; /* [UNAVAILABLE], [TEMPUNAVAIL] */
		if (strcmp(a->name, "ADDR") == 0) {
			if (a->value[0] != '[' && proto_set_peer(ss, a->value) != 0) {
				proto_refuse(ss, 501, "5.5.4", "Bad ADDR syntax");
				return;
			}
		} else if (strcmp(a->name, "HELO") == 0) {
			sl_msg_set_str(&ss->helo, a->value);
		} else if (strcmp(a->name, "NAME") == 0) {
			proto_context_set(ss, "xclient_name", a->value);
		} else if (strcmp(a->name, "LOGIN") == 0) {
			proto_context_set(ss, "xclient_login", a->value);
		} else if (strcmp(a->name, "PORT") == 0) {
			port = a->value;
		}
	}
	if (port != NULL && port[0] != '[' && strspn(port, "0123456789") == strlen(port) &&
	    strlen(port) <= 5) {
		char *colon = strrchr(ss->remote, ':');

		if (colon != NULL)
			snprintf(colon + 1, sizeof(ss->remote) - (size_t)(colon + 1 - ss->remote),
				 "%s", port);
	}
	sl_smtp_server_accept(ss->smtp, NULL, &ss->out);
}

/*
 * XDUMPCONTEXT: the connection context (as the reference's example shows:
 * ehlo_domain, ehlo_string, then the context variables) and, inside a
 * transaction, the message's: its envelope so far.
 */
static void
proto_dumpcontext(struct proto_session *ss)
{
	size_t cap = ss->ctx_cnt + 6 + (ss->msg ? ss->msg->rcpt_cnt : 0), n = 0;
	const char **lines = sl_calloc(cap, sizeof(*lines));

	lines[n++] = sl_asprintf("[connection] remote_ip %s", ss->peer_ip);
	lines[n++] = sl_asprintf("[connection] session_id %s", ss->id);
	if (ss->helo != NULL)
		lines[n++] = sl_asprintf("[connection] ehlo_domain %s", ss->helo);
	if (ss->ehlo_string != NULL)
		lines[n++] = sl_asprintf("[connection] ehlo_string %s", ss->ehlo_string);
	for (size_t i = 0; i < ss->ctx_cnt; i++)
		lines[n++] = sl_asprintf("[connection] %s %s", ss->ctx[i].key, ss->ctx[i].val);
	if (ss->msg != NULL) {
		lines[n++] = sl_asprintf("[message] mailfrom %s", ss->msg->sender);
		for (size_t i = 0; i < ss->msg->rcpt_cnt; i++)
			lines[n++] = sl_asprintf("[message] rcptto %s", ss->msg->rcpts[i].addr);
	}
	SL_ASSERT(n <= cap);
	sl_smtp_server_reply_lines(ss->smtp, lines, n, &ss->out);
	for (size_t i = 0; i < n; i++)
		sl_free((void *)lines[i]);
	sl_free(lines);
}

/*
 * Keep the HELO/EHLO line as the client sent it (XDUMPCONTEXT's
 * ehlo_string): the last line of what the machine consumed for the event.
 */
static void
proto_ehlo_string(struct proto_session *ss, const char *data, size_t len)
{
	const char *line;

	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	line = memrchr(data, '\n', len);
	line = line ? line + 1 : data;
	sl_free(ss->ehlo_string);
	ss->ehlo_string = sl_strndup(line, len - (size_t)(line - data));
}

static void
proto_event(struct proto_session *ss, struct sl_smtp_ev *ev)
{
	switch (ev->kind) {
	case SL_SMTP_EV_HELO:
		sl_msg_set_str(&ss->helo, ev->arg);
		proto_check(ss, SL_VPHASE_EHLO, NULL);
		break;
	case SL_SMTP_EV_MAIL:
		sl_msg_free(ss->msg);
		ss->msg = sl_msg_new();
		sl_msg_set_sender(ss->msg, ev->arg);
		ss->msg->session_id = ss->serial;
		snprintf(ss->msg->conn_id, sizeof(ss->msg->conn_id), "%s", ss->id);
		ss->msg->is_8bitmime = ev->body == SL_SMTP_BODY_8BITMIME;
		ss->msg->is_smtputf8 = ev->is_smtputf8;
		if (proto_throttled(ss))
			break; /* the MAIL answer waits for a token (Inbound_Throttle_Messages) */
		proto_check(ss, SL_VPHASE_MAILFROM, NULL);
		break;
	case SL_SMTP_EV_RCPT:
		proto_check(ss, SL_VPHASE_RCPTTO, ev->arg);
		break;
	case SL_SMTP_EV_DATA:
		sl_smtp_server_accept(ss->smtp, NULL, &ss->out);
		break;
	case SL_SMTP_EV_BODY:
		if (ss->msg != NULL)
			sl_msg_append(ss->msg, ev->data, ev->data_len);
		break;
	case SL_SMTP_EV_EOM:
		if (ev->defects != 0 || ss->msg == NULL) {
			char text[640];

			snprintf(text, sizeof(text), "message of %" PRIu64 " octets refused: %s",
				 ev->message_len, ev->reply ? ev->reply : "");
			proto_rejectlog(ss, "data", ev->reply_code ? ev->reply_code : 550,
					(ev->defects & SL_SMTP_DEFECT_TOO_BIG)    ? "message_size"
					: (ev->defects & SL_SMTP_DEFECT_BARE_EOL) ? "rfc2822"
										  : "smtp",
					text);
			proto_count_rejected(ss, ev->reply_code ? ev->reply_code : 550,
					     proto_reply_text(ev->reply));
			if (ss->msg != NULL)
				sl_msg_clear_content(ss->msg);
			break;
		}
		if (ss->pt->is_shutting_down && !ss->is_finishing) {
			proto_refuse(ss, 421, "4.3.2", "Service shutting down");
			break;
		}
		proto_message(ss, ev);
		break;
	case SL_SMTP_EV_RSET:
		sl_msg_free(ss->msg);
		ss->msg = NULL;
		break;
	case SL_SMTP_EV_XCLIENT:
		proto_xclient(ss, ev);
		break;
	case SL_SMTP_EV_XREMOTEIP:
		if (proto_set_peer(ss, ev->arg) != 0)
			proto_refuse(ss, 501, "5.5.4", "Bad address syntax");
		else
			sl_smtp_server_accept(ss->smtp, NULL, &ss->out);
		break;
	case SL_SMTP_EV_XDUMPCONTEXT:
		proto_dumpcontext(ss);
		break;
	case SL_SMTP_EV_STARTTLS:
		/* Not advertised until TLS is configured; the machine should not get here. */
		proto_refuse(ss, 454, "4.7.0", "TLS not available");
		break;
	case SL_SMTP_EV_REJECT:
		/* The reply the machine gave, e.g. "503 5.5.1 Error: need MAIL first" for "RCPT". */
		{
			char text[640];

			snprintf(text, sizeof(text), "%s: %s", ev->arg ? ev->arg : "?",
				 ev->reply ? ev->reply : "");
			proto_rejectlog(ss, "command", ev->reply_code, "smtp", text);
		}
		proto_count_rejected(ss, ev->reply_code, proto_reply_text(ev->reply));
		break;
	case SL_SMTP_EV_QUIT:
	case SL_SMTP_EV_CLOSE:
	case SL_SMTP_EV_NONE:
		break;
	}
}

/* A transaction is under way: after MAIL, in DATA/BDAT, or its answer is awaited. */
static bool
proto_txn_open(const struct proto_session *ss)
{
	enum sl_smtp_wait w = sl_smtp_server_waiting_for(ss->smtp);

	return ss->is_waiting || w == SL_SMTP_WAIT_RCPT || w == SL_SMTP_WAIT_BODY ||
	       w == SL_SMTP_WAIT_VERDICT;
}

static void
proto_finished(struct proto_session *ss)
{
	if (ss->is_finishing) {
		ss->is_finishing = false;
		__atomic_sub_fetch(&proto_finishing, 1, __ATOMIC_RELEASE);
	}
}

/*
 * Shutting down: may the session take another command?  One that had a
 * transaction under way when the stop began finishes it (the stop waits up
 * to Shutdown_Timeout, sl_protocol_shutdown); any other, and that one once
 * its message is answered, gets 421 and no further command (they could
 * need stages that have stopped).
 */
static bool
proto_may_go_on(struct proto_session *ss)
{
	if (!ss->pt->is_shutting_down || (ss->is_finishing && proto_txn_open(ss)))
		return true;
	proto_finished(ss);
	if (!ss->is_waiting && !ss->is_closed && !sl_smtp_server_is_closing(ss->smtp))
		sl_smtp_server_shutdown(ss->smtp, &ss->out);
	return false;
}

/* Run the machine over the input until it needs more bytes or an answer. */
void
proto_drive(struct proto_session *ss)
{
	if (ss->ecs != NULL) {
		proto_ecs_drive(ss);
		return;
	}
	proto_may_go_on(ss);
	while (!ss->is_closed && !ss->is_waiting && !sl_smtp_server_is_closing(ss->smtp) &&
	       proto_may_go_on(ss)) {
		struct sl_smtp_ev ev;
		size_t used = 0;
		enum sl_smtp_ev_kind k;
		const char *start = ss->in.data + ss->in_off;

		k = sl_smtp_server_next(ss->smtp, start, ss->in.len - ss->in_off, &used, &ev,
					&ss->out);
		ss->in_off += used;
		if (k == SL_SMTP_EV_NONE)
			break;
		if (k == SL_SMTP_EV_HELO)
			proto_ehlo_string(ss, start, used);
		proto_event(ss, &ev);
	}
	if (ss->in_off > 0) {
		sl_buf_consume(&ss->in, ss->in_off);
		ss->in_off = 0;
	}
	ss->transport->flush(ss);
	if (!ss->is_closed && sl_smtp_server_is_closing(ss->smtp) && !ss->is_writing &&
	    ss->out.len == 0) {
		proto_close(ss);
		return;
	}
	proto_arm(ss);
}

/* ------------------------------------------------------------ session life */

static void
proto_session_free(struct proto_session *ss)
{
	SL_ASSERT(ss->refs == 0);
	if (ss->ecs != NULL)
		proto_ecs_free(ss);
	else
		sl_smtp_server_free(ss->smtp);
	sl_buf_free(&ss->in);
	sl_buf_free(&ss->out);
	sl_buf_free(&ss->wbuf);
	sl_msg_free(ss->msg);
	for (size_t i = 0; i < ss->ctx_cnt; i++) {
		sl_free(ss->ctx[i].key);
		sl_free(ss->ctx[i].val);
	}
	sl_free(ss->ctx);
	sl_free(ss->helo);
	sl_free(ss->ehlo_string);
	sl_free(ss->pending_rcpt);
	sl_conf_snapshot_put(ss->snap);
	ss->magic = 0;
	sl_free(ss);
}

static void
proto_unref(struct proto_session *ss)
{
	SL_ASSERT(ss->refs > 0);
	if (--ss->refs == 0)
		proto_session_free(ss);
}

static void
proto_close_cb(uv_handle_t *h)
{
	proto_unref(h->data);
}

void
proto_close(struct proto_session *ss)
{
	struct proto_thread *pt = ss->pt;

	if (ss->is_closed)
		return;
	ss->is_closed = true;
	proto_finished(ss);
	if (ss->prev != NULL)
		ss->prev->next = ss->next;
	else
		pt->sessions = ss->next;
	if (ss->next != NULL)
		ss->next->prev = ss->prev;
	ss->prev = ss->next = NULL;
	__atomic_sub_fetch(&ss->lrt->sessions, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(ss->lrt->service_sessions, 1, __ATOMIC_RELAXED);
	sl_counter_add(proto_ctr_sessions, -1);
	sl_group_add(ss->lrt->group, SL_GS_IN_ASSOC, -1);
	uv_timer_stop(&ss->timer);
	uv_close(&ss->h.handle, proto_close_cb);
	uv_close((uv_handle_t *)&ss->timer, proto_close_cb);
}

static void
proto_format_addr(const struct sockaddr_storage *ss, char *ip, size_t ip_len, char *full,
		  size_t full_len)
{
	unsigned port = 0;

	snprintf(ip, ip_len, "unix");
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)ip_len);
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, (socklen_t)ip_len);
		/* An IPv4 client on a dual-stack socket: log it as IPv4. */
		if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
			memmove(ip, ip + 7, strlen(ip + 7) + 1);
		port = ntohs(sin6->sin6_port);
	}
	if (full != NULL)
		snprintf(full, full_len, "%s:%u", ip, port);
}

static void
proto_session_start(struct proto_thread *pt, struct sl_session_new_ev *ev)
{
	struct proto_session *ss = SL_NEW(ss);
	struct sl_validate_ctx ctx;
	struct sl_verdict v;
	int rc;

	ss->magic = PROTO_SESSION_MAGIC;
	ss->serial = ++pt->serial;
	ss->pt = pt;
	ss->snap = ev->snap;
	ss->lrt = ev->lrt;
	ss->acl = ev->acl;
	memcpy(ss->id, ev->id, sizeof(ss->id));
	memcpy(&ss->peer, &ev->peer, sizeof(ss->peer));
	if (ev->peer.ss_family == AF_UNIX) {
		/* A Unix-socket client is local: 127.0.0.1 for Relay_Hosts, the
		 * validation modules, logs and trace headers, as for the ACL. */
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss->peer;

		memset(&ss->peer, 0, sizeof(ss->peer));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	ss->has_peer = ss->peer.ss_family == AF_INET || ss->peer.ss_family == AF_INET6;
	proto_format_addr(&ss->peer, ss->peer_ip, sizeof(ss->peer_ip), ss->remote,
			  sizeof(ss->remote));
	{
		char lip[INET6_ADDRSTRLEN];

		proto_format_addr(&ev->local, lip, sizeof(lip), ss->local, sizeof(ss->local));
	}
	if (ev->peer.ss_family == AF_UNIX)
		rc = uv_pipe_init(pt->loop, &ss->h.pipe, 0);
	else
		rc = uv_tcp_init(pt->loop, &ss->h.tcp);
	/* Initialising a handle on a running loop cannot fail for these arguments. */
	SL_ASSERT(rc == 0);
	if (ev->peer.ss_family == AF_UNIX)
		rc = uv_pipe_open(&ss->h.pipe, ev->fd);
	else
		rc = uv_tcp_open(&ss->h.tcp, ev->fd);
	if (rc != 0)
		close(ev->fd); /* libuv did not take it */
	ss->h.handle.data = ss;
	uv_timer_init(pt->loop, &ss->timer);
	ss->timer.data = ss;
	ss->refs = 2;
	ss->opened_ms = uv_now(pt->loop);
	ss->transport = &proto_transport_plain;
	ss->next = pt->sessions;
	if (pt->sessions != NULL)
		pt->sessions->prev = ss;
	pt->sessions = ss;
	sl_counter_add(proto_ctr_sessions, 1);
	sl_group_add(ss->lrt->group, SL_GS_IN_ASSOC, 1);
	sl_free(ev);
	if (rc != 0) {
		sl_log_err("session %s: cannot use the connection: %s", ss->id, uv_strerror(rc));
		proto_close(ss);
		return;
	}
	proto_policy(ss);
	if (ss->lrt->kind == SL_LISTENER_ECSTREAM) {
		proto_ecs_start(ss);
		if (ss->chain.needs_pool[SL_VPHASE_CONNECT]) {
			proto_check(ss, SL_VPHASE_CONNECT, NULL); /* the greeting waits */
			return;
		}
		proto_vctx(ss, ss->msg, NULL, &ctx);
		sl_validate_run(&ss->chain, SL_VPHASE_CONNECT, &ctx, true, &v);
		proto_apply(ss, SL_VPHASE_CONNECT, &v, NULL);
		proto_drive(ss);
		return;
	}
	ss->smtp = sl_smtp_server_new(&ss->sconf, &ss->out);
	if (pt->is_shutting_down) {
		sl_buf_reset(&ss->out);
		sl_smtp_server_shutdown(ss->smtp, &ss->out);
		proto_drive(ss);
		return;
	}
	if (ss->chain.needs_pool[SL_VPHASE_CONNECT]) {
		/* The banner waits in `out` until the connect verdict is back. */
		proto_check(ss, SL_VPHASE_CONNECT, NULL);
		return;
	}
	proto_vctx(ss, ss->msg, NULL, &ctx);
	sl_validate_run(&ss->chain, SL_VPHASE_CONNECT, &ctx, true, &v);
	proto_apply(ss, SL_VPHASE_CONNECT, &v, NULL);
	proto_drive(ss);
}

/* ------------------------------------------------------------ answers from other stages */

static struct proto_session *
proto_origin(struct proto_thread *pt, void *origin, uint64_t serial)
{
	struct proto_session *ss = origin;

	SL_CHECK_OBJ(ss, PROTO_SESSION_MAGIC);
	SL_ASSERT(ss->pt == pt && ss->serial == serial);
	return ss;
}

/* An event the session sent out came back: drop its reference, go on if still open. */
static void
proto_release(struct proto_session *ss)
{
	bool is_closed = ss->is_closed;

	/* While the handles are open they hold references, so ss outlives this. */
	proto_unref(ss);
	if (!is_closed)
		proto_drive(ss);
}

static void
proto_verdict_back(struct proto_thread *pt, struct sl_verdict_req_ev *r)
{
	struct proto_session *ss = proto_origin(pt, r->session, r->session_serial);

	if (ss->ecs == NULL)
		ss->is_waiting = false;
	if (!ss->is_closed) {
		/* Modules may have set context variables (rdns): they hold for the session. */
		for (size_t i = 0; i < r->context_cnt; i++)
			proto_context_set(ss, r->context[i].key, r->context[i].val);
	}
	if (r->phase != SL_VPHASE_DATA) {
		if (ss->ecs != NULL)
			ss->is_waiting = false;
		if (!ss->is_closed)
			proto_apply(ss, r->phase, &r->verdict, ss->pending_rcpt);
	} else if (!ss->is_closed && r->verdict.kind == SL_VERDICT_ACCEPT) {
		/* Checked: on to the spool; the session waits for it now. */
		if (ss->ecs == NULL)
			ss->is_waiting = true;
		proto_submit(ss, r->msg);
		r->msg = NULL;
	} else if (!ss->is_closed && ss->ecs != NULL) {
		r->msg->spool_result = r->verdict.kind == SL_VERDICT_REJECT ? -EPERM : -EAGAIN;
		proto_ecs_answer(ss, r->msg);
	} else if (!ss->is_closed) {
		proto_reject(ss, SL_VPHASE_DATA, &r->verdict);
	}
	sl_verdict_req_free(r);
	proto_release(ss);
}

static void
proto_spooled(struct proto_thread *pt, struct sl_msg *m)
{
	struct proto_session *ss = proto_origin(pt, m->origin, m->origin_serial);

	sl_counter_add(proto_ctr_inflight, -1);
	if (ss->ecs == NULL)
		ss->is_waiting = false;
	if (ss->ecs != NULL) {
		if (!ss->is_closed)
			proto_ecs_answer(ss, m);
	} else if (!ss->is_closed) {
		if (m->spool_result == 0) {
			char text[96];

			snprintf(text, sizeof(text), "Ok: queued as %s", m->qid);
			sl_smtp_server_accept(ss->smtp, text, &ss->out);
			proto_count_received(ss, m);
		} else {
			struct sl_verdict v = { .kind = SL_VERDICT_TEMPFAIL,
						.code = 451,
						.module = "spool" };

			snprintf(v.enhanced, sizeof(v.enhanced), "4.3.0");
			snprintf(v.text, sizeof(v.text),
				 "Error: queue file write error, try again later");
			proto_reject(ss, SL_VPHASE_DATA, &v);
		}
	}
	if (m->spool_result == 0) {
		/* Durable and answered: the delivery thread of its first domain takes it. */
		unsigned cnt = sl_stage_thread_cnt(pt->deliver);
		const char *domain = m->rcpts[0].addr + m->rcpts[0].domain_off;

		m->ev.type = SL_MSG_EV_QUEUED;
		sl_send_thread(sl_stage_thread(pt->deliver, sl_deliver_owner(domain, cnt)), &m->ev);
	} else {
		sl_msg_free(m);
	}
	proto_release(ss);
}

static void
proto_shutdown(struct proto_thread *pt)
{
	struct proto_session *ss = pt->sessions;

	pt->is_shutting_down = true;
	while (ss != NULL) {
		struct proto_session *next = ss->next;

		/* Sessions waiting for the spool answer first, then close. */
		if (ss->ecs != NULL) {
			proto_ecs_shutdown(ss);
			proto_drive(ss);
		} else if (proto_txn_open(ss)) {
			/* It may finish its message (its answer, if awaited, comes). */
			ss->is_finishing = true;
			__atomic_add_fetch(&proto_finishing, 1, __ATOMIC_RELEASE);
			if (!ss->is_waiting)
				proto_drive(ss);
			else
				proto_arm(ss);
		} else {
			sl_smtp_server_shutdown(ss->smtp, &ss->out);
			proto_drive(ss);
		}
		ss = next;
	}
	__atomic_add_fetch(&proto_shutdown_acks, 1, __ATOMIC_RELEASE);
}

/* The time to finish is over: a session still in its transaction gets 421 (it is not answered 250). */
static void
proto_shutdown_now(struct proto_thread *pt)
{
	struct proto_session *ss = pt->sessions;

	while (ss != NULL) {
		struct proto_session *next = ss->next;

		if (ss->is_finishing) {
			proto_finished(ss);
			if (!ss->is_waiting)
				proto_drive(ss);
		}
		ss = next;
	}
	__atomic_add_fetch(&proto_shutdown_acks, 1, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------ the stage */

static int
proto_thread_init(struct sl_thread *t)
{
	struct proto_thread *pt = SL_NEW(pt);

	pt->magic = PROTO_THREAD_MAGIC;
	pt->t = t;
	pt->loop = sl_thread_loop(t);
	pt->validate = sl_stage_find("validate");
	pt->spool = sl_stage_find("spool");
	pt->deliver = sl_stage_find("deliver");
	SL_ASSERT(pt->validate != NULL && pt->spool != NULL && pt->deliver != NULL);
	if (gethostname(pt->hostname, sizeof(pt->hostname) - 1) != 0)
		snprintf(pt->hostname, sizeof(pt->hostname), "localhost");
	sl_thread_set_data(t, pt);
	return 0;
}

static void
proto_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct proto_thread *pt = sl_thread_data(t);

	SL_CHECK_OBJ(pt, PROTO_THREAD_MAGIC);
	switch (ev->type) {
	case SL_EV_SESSION_NEW:
		proto_session_start(pt, (struct sl_session_new_ev *)ev);
		break;
	case SL_EV_VERDICT_REQ:
		proto_verdict_back(pt, (struct sl_verdict_req_ev *)ev);
		break;
	case SL_MSG_EV_SPOOLED:
		proto_spooled(pt, (struct sl_msg *)ev);
		break;
	case PROTO_EV_SHUTDOWN:
		sl_free(ev);
		proto_shutdown(pt);
		break;
	case PROTO_EV_SHUTDOWN_NOW:
		sl_free(ev);
		proto_shutdown_now(pt);
		break;
	default:
		SL_ASSERT(!"protocol stage: unexpected event");
	}
}

static void
proto_thread_fini(struct sl_thread *t)
{
	struct proto_thread *pt = sl_thread_data(t);

	while (pt->sessions != NULL) {
		struct proto_session *ss = pt->sessions;

		if (ss->ecs != NULL)
			proto_ecs_shutdown(ss);
		else if (!sl_smtp_server_is_closing(ss->smtp))
			sl_smtp_server_shutdown(ss->smtp, &ss->out);
		ss->transport->flush(ss);
		/* Anything still outstanding was answered before this stage stopped. */
		proto_close(ss);
	}
	uv_run(pt->loop, UV_RUN_NOWAIT);
	pt->magic = 0;
	sl_free(pt);
}

/* Send `type` to every protocol thread; wait (up to 5 s) until each handled it. */
static void
proto_tell_all(unsigned type)
{
	unsigned cnt = sl_stage_thread_cnt(proto_stage);
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	__atomic_store_n(&proto_shutdown_acks, 0, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < cnt; i++) {
		struct sl_event *ev = SL_NEW(ev);

		sl_event_init(ev, type);
		sl_send_thread(sl_stage_thread(proto_stage, i), ev);
	}
	for (unsigned waited = 0; waited < 5000; waited += 10) {
		if (__atomic_load_n(&proto_shutdown_acks, __ATOMIC_ACQUIRE) == cnt)
			return;
		nanosleep(&ts, NULL);
	}
}

void
sl_protocol_shutdown(unsigned timeout_ms)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	unsigned left;

	proto_tell_all(PROTO_EV_SHUTDOWN);
	for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
		if (__atomic_load_n(&proto_finishing, __ATOMIC_ACQUIRE) == 0)
			return;
		nanosleep(&ts, NULL);
	}
	left = __atomic_load_n(&proto_finishing, __ATOMIC_ACQUIRE);
	if (left == 0)
		return;
	sl_log_notice("stopping: %u session%s still in a transaction after %u ms; they get 421",
		      left, left == 1 ? "" : "s", timeout_ms);
	/* Before the validation stage stops: no message may be sent to it after. */
	proto_tell_all(PROTO_EV_SHUTDOWN_NOW);
}

void
sl_protocol_init(struct sl_stage *st)
{
	proto_stage = st;
	proto_ctr_sessions = sl_counter_register("protocol.sessions");
	proto_ctr_received = sl_counter_register("protocol.received");
	proto_ctr_rejected = sl_counter_register("protocol.rejected");
	proto_ctr_inflight = sl_counter_register("protocol.inflight");
}

uint64_t
sl_protocol_inflight(void)
{
	return sl_counter_read(proto_ctr_inflight);
}

unsigned
sl_protocol_thread_cnt(const struct sl_conf_snapshot *s)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	/* worker_cpu_concurrency when the operator set it, else one loop per CPU. */
	if (s->global_loc[SL_OPT_WORKER_CPU_CONCURRENCY] != NULL)
		return (unsigned)sl_conf_int(s, SL_OPT_WORKER_CPU_CONCURRENCY);
	return n > 0 ? (unsigned)n : 1;
}

const struct sl_stage_def sl_protocol_stage = {
	.name = "protocol",
	.kind = SL_STAGE_LOOP,
	.batch_max = 64,
	.peers = (const char *const[]){ "validate", "spool", "deliver", NULL },
	.thread_init = proto_thread_init,
	.handle = proto_handle,
	.thread_fini = proto_thread_fini,
};

/* ------------------------------------------------------------ console: show inbound */

/* One line per session of every protocol thread. */
struct proto_inbound {
	struct sl_buf *parts; /* one per protocol thread */
	unsigned part_cnt;
	void (*done)(void *arg, bool is_ok, const char *text);
	void *arg;
};

static const char *
proto_state(const struct proto_session *ss)
{
	if (ss->ecs != NULL)
		return ss->is_waiting ? "ecstream: waiting for the spool" : "ecstream";
	if (ss->smtp == NULL)
		return "opening";
	if (ss->is_waiting)
		return ss->msg != NULL && ss->pending_rcpt == NULL ? "waiting for the spool"
								   : "waiting for a verdict";
	switch (sl_smtp_server_waiting_for(ss->smtp)) {
	case SL_SMTP_WAIT_HELO:
		return "before HELO";
	case SL_SMTP_WAIT_MAIL:
		return "waiting for MAIL FROM";
	case SL_SMTP_WAIT_RCPT:
		return "after MAIL FROM";
	case SL_SMTP_WAIT_BODY:
		return "receiving the message";
	case SL_SMTP_WAIT_RSET:
		return "after RSET";
	default:
		return "busy";
	}
}

static void
proto_inbound_run(struct sl_thread *t, unsigned idx, void *arg)
{
	struct proto_thread *pt = sl_thread_data(t);
	struct proto_inbound *in = arg;
	uint64_t now = uv_now(pt->loop);

	SL_CHECK_OBJ(pt, PROTO_THREAD_MAGIC);
	for (const struct proto_session *ss = pt->sessions; ss != NULL; ss = ss->next) {
		uv_os_fd_t fd = -1;

		if (!ss->is_closed)
			uv_fileno(&ss->h.handle, &fd);
		sl_buf_printf(&in->parts[idx], "%d: [inbound/%s] %s %s %s (for %.3fs) session %s\n",
			      (int)fd, ss->ecs != NULL ? "ecstream" : "esmtp",
			      ss->peer.ss_family == AF_INET6  ? "IPv6"
			      : ss->peer.ss_family == AF_UNIX ? "unix"
							      : "IPv4",
			      ss->remote, proto_state(ss), (double)(now - ss->opened_ms) / 1000.0,
			      ss->id);
	}
}

static void
proto_inbound_done(void *arg)
{
	struct proto_inbound *in = arg;
	struct sl_buf out = SL_BUF_INIT;

	for (unsigned i = 0; i < in->part_cnt; i++) {
		sl_buf_append(&out, in->parts[i].data, in->parts[i].len);
		sl_buf_free(&in->parts[i]);
	}
	if (out.len == 0)
		sl_buf_puts(&out, "no inbound sessions\n");
	sl_buf_append(&out, "", 1);
	in->done(in->arg, true, out.data);
	sl_buf_free(&out);
	sl_free(in->parts);
	sl_free(in);
}

int
sl_protocol_console(int argc, char **argv, struct sl_buf *err,
		    void (*done)(void *arg, bool is_ok, const char *text), void *arg)
{
	struct proto_inbound *in;
	int rc;

	if (argc != 2 || strcasecmp(argv[0], "show") != 0 || strcasecmp(argv[1], "inbound") != 0)
		return 0;
	if (proto_stage == NULL || sl_stage_thread_cnt(proto_stage) == 0) {
		sl_buf_puts(err, "the protocol stage is not running\n");
		return -1;
	}
	in = SL_NEW(in);
	in->part_cnt = sl_stage_thread_cnt(proto_stage);
	in->parts = sl_calloc(in->part_cnt, sizeof(*in->parts));
	in->done = done;
	in->arg = arg;
	rc = sl_gather(proto_stage, proto_inbound_run, proto_inbound_done, in);
	if (rc != 0) {
		sl_buf_printf(err, "cannot ask the protocol stage: %s\n", strerror(-rc));
		sl_free(in->parts);
		sl_free(in);
		return -1;
	}
	return 1;
}
