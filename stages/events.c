/*
 * stages/events.c - constructors and destructors of shared inter-stage events.
 * Threads: whichever thread owns the event.
 */
#include "config.h"

#include <ctype.h>

#include "engine/alloc.h"
#include "engine/htable.h"
#include "stages/events.h"

const char *
sl_verdict_req_context_get(void *arg, const char *key)
{
	const struct sl_verdict_req_ev *r = arg;

	return sl_kv_get(r->context, r->context_cnt, key);
}

void
sl_verdict_req_context_set(void *arg, const char *key, const char *val)
{
	struct sl_verdict_req_ev *r = arg;

	sl_kv_set(&r->context, &r->context_cnt, key, val);
}

void
sl_verdict_req_ctx(struct sl_verdict_req_ev *r, struct sl_validate_ctx *ctx)
{
	*ctx = (struct sl_validate_ctx){
		.snap = r->snap,
		.peer = r->has_peer ? (const struct sockaddr *)&r->peer : NULL,
		.peer_ip = r->peer_ip,
		.helo = r->helo,
		.sender = r->sender,
		.rcpt = r->rcpt,
		.rcpt_cnt = r->rcpt_cnt,
		.relay = &r->relay,
		.policy = &r->policy,
		.has_date_header = r->has_date_header,
		.message_len = r->msg ? r->msg->content_len : 0,
		.context_get = sl_verdict_req_context_get,
		.context_set = sl_verdict_req_context_set,
		.ctx_arg = r,
	};
}

void
sl_verdict_req_free(struct sl_verdict_req_ev *r)
{
	if (r == NULL)
		return;
	sl_free(r->peer_ip);
	sl_free(r->helo);
	sl_free(r->sender);
	sl_free(r->rcpt);
	for (size_t i = 0; i < r->context_cnt; i++) {
		sl_free(r->context[i].key);
		sl_free(r->context[i].val);
	}
	sl_free(r->context);
	sl_msg_free(r->msg);
	sl_conf_snapshot_put(r->snap);
	r->ev.magic = 0;
	sl_free(r);
}

unsigned
sl_deliver_owner(const char *domain, unsigned thread_cnt)
{
	char lower[256];
	size_t n = 0;

	for (; domain[n] != '\0' && n < sizeof(lower); n++)
		lower[n] = (char)tolower((unsigned char)domain[n]);
	return thread_cnt ? (unsigned)(sl_hash_bytes(lower, n) % thread_cnt) : 0;
}
