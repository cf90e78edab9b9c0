/*
 * stages/validate.c - the validation stage: checks that may block, and the
 * data-phase checks every message passes on its way to the spool.
 *
 * Envelope phases whose modules are all inline run on the protocol thread
 * (proto/validate.h); when a module may block, the protocol thread sends the
 * phase here as a verdict request and waits for it to come back.  Likewise
 * a complete message passes through here on its way to the spool when a
 * data-phase module may block (protocol -> validate -> spool); a refusal is
 * turned into the message's answer without touching the spool.
 *
 * Threads: a pool of plain threads (ThreadPool "IO" or worker_io_concurrency);
 * each request or message is owned by the thread handling it until it is
 * sent on.  Parses nothing itself.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_holder.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"
#include "proto/validate.h"
#include "stages/eclog.h"
#include "stages/events.h"
#include "stages/stages.h"

struct validate_thread {
	struct sl_stage *spool;
};

static const char *
validate_context_get(void *arg, const char *key)
{
	const struct sl_verdict_req_ev *r = arg;

	return sl_kv_get(r->context, r->context_cnt, key);
}

static void
validate_context_set(void *arg, const char *key, const char *val)
{
	struct sl_verdict_req_ev *r = arg;

	sl_kv_set(&r->context, &r->context_cnt, key, val);
}

static const char *
validate_msg_context_get(void *arg, const char *key)
{
	return sl_msg_context_get(arg, key);
}

static void
validate_request(struct sl_verdict_req_ev *r)
{
	struct sl_validate_ctx ctx = {
		.snap = r->snap,
		.peer = r->has_peer ? (const struct sockaddr *)&r->peer : NULL,
		.peer_ip = r->peer_ip,
		.helo = r->helo,
		.sender = r->sender,
		.rcpt = r->rcpt,
		.rcpt_cnt = r->rcpt_cnt,
		.relay = &r->relay,
		.context_get = validate_context_get,
		.context_set = validate_context_set,
		.ctx_arg = r,
	};

	sl_validate_run(r->phase, &ctx, false, &r->verdict);
	sl_send_thread(r->ev.reply_to, &r->ev);
}

static void
validate_message(struct validate_thread *vt, struct sl_msg *m)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	struct sl_validate_ctx ctx = {
		.snap = s,
		.peer_ip = m->peer_ip,
		.helo = m->helo,
		.sender = m->sender,
		.rcpt_cnt = m->rcpt_cnt,
		.context_get = validate_msg_context_get,
		.ctx_arg = m,
	};
	struct sl_verdict v;

	sl_validate_run(SL_VPHASE_DATA, &ctx, false, &v);
	sl_conf_snapshot_put(s);
	if (v.kind != SL_VERDICT_ACCEPT) {
		/* Refused: the answer goes straight back; nothing is spooled. */
		m->spool_result = v.kind == SL_VERDICT_REJECT ? -EPERM : -EAGAIN;
		m->ev.type = SL_MSG_EV_SPOOLED;
		sl_send_thread(m->ev.reply_to, &m->ev);
		return;
	}
	m->ev.type = SL_MSG_EV_SPOOL;
	sl_send(vt->spool, &m->ev);
}

static int
validate_thread_init(struct sl_thread *t)
{
	struct validate_thread *vt = SL_NEW(vt);

	vt->spool = sl_stage_find("spool");
	SL_ASSERT(vt->spool != NULL);
	sl_thread_set_data(t, vt);
	return 0;
}

static void
validate_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct validate_thread *vt = sl_thread_data(t);

	switch (ev->type) {
	case SL_EV_VERDICT_REQ:
		validate_request((struct sl_verdict_req_ev *)ev);
		break;
	case SL_MSG_EV_VALIDATE:
		SL_CHECK_OBJ((struct sl_msg *)ev, SL_MSG_MAGIC);
		validate_message(vt, (struct sl_msg *)ev);
		break;
	default:
		SL_ASSERT(!"validate stage: unexpected event");
	}
}

static void
validate_thread_fini(struct sl_thread *t)
{
	sl_free(sl_thread_data(t));
}

static unsigned
validate_at_least_one(const union sl_conf_val *v)
{
	return v != NULL && v->i > 0 ? (unsigned)v->i : 1;
}

unsigned
sl_validate_thread_cnt(const struct sl_conf_snapshot *s)
{
	size_t pos = 0;
	const struct sl_conf_block *b;

	while ((b = sl_conf_block_next(s, "ThreadPool", &pos)) != NULL)
		if (b->name != NULL && strcasecmp(b->name, "IO") == 0)
			return validate_at_least_one(
				sl_conf_block_get(s, b, SL_OPT_THREADPOOL_CONCURRENCY));
	return validate_at_least_one(sl_conf_global(s, SL_OPT_WORKER_IO_CONCURRENCY));
}

const struct sl_stage_def sl_validate_stage = {
	.name = "validate",
	.kind = SL_STAGE_POOL,
	.batch_max = 64,
	.peers = (const char *const[]){ "spool", "protocol", NULL },
	.thread_init = validate_thread_init,
	.handle = validate_handle,
	.thread_fini = validate_thread_fini,
};
