/*
 * stages/validate.c - the validation stage: checks that may block, and the
 * data-phase checks every message passes on its way to the spool.
 *
 * Phases whose modules are all inline run on the protocol thread
 * (proto/validate.h) and never come here; when a module may block, the
 * protocol thread sends the phase here as a verdict request (in the data
 * phase with the complete message) and waits for it to come back.  The
 * request carries the session's module chain and holds its snapshot, so
 * the session's rules hold even across a reload.  An accepted message goes
 * back with its verdict too: the session sends it on to the spool.
 *
 * Threads: a pool of plain threads (ThreadPool "IO" or worker_io_concurrency);
 * each request is owned by the thread handling it until it is sent back.
 * Parses nothing itself.
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

static void
validate_request(struct sl_verdict_req_ev *r)
{
	struct sl_validate_ctx ctx;

	sl_verdict_req_ctx(r, &ctx);
	/* The session's chain and snapshot: a reload since does not change its rules. */
	if (r->envelope_first && r->msg != NULL) {
		sl_validate_run(&r->chain, SL_VPHASE_MAILFROM, &ctx, false, &r->verdict);
		for (size_t i = 0; i < r->msg->rcpt_cnt && r->verdict.kind == SL_VERDICT_ACCEPT;
		     i++) {
			ctx.rcpt = r->msg->rcpts[i].addr;
			sl_validate_run(&r->chain, SL_VPHASE_RCPTTO, &ctx, false, &r->verdict);
		}
		ctx.rcpt = r->rcpt;
		if (r->verdict.kind != SL_VERDICT_ACCEPT)
			goto out;
	}
	sl_validate_run(&r->chain, r->phase, &ctx, false, &r->verdict);
out:
	sl_send_thread(r->ev.reply_to, &r->ev);
}

static void
validate_handle(struct sl_thread *t, struct sl_event *ev)
{
	(void)t;
	switch (ev->type) {
	case SL_EV_VERDICT_REQ:
		if (((struct sl_verdict_req_ev *)ev)->msg != NULL)
			SL_CHECK_OBJ(((struct sl_verdict_req_ev *)ev)->msg, SL_MSG_MAGIC);
		validate_request((struct sl_verdict_req_ev *)ev);
		break;
	default:
		SL_ASSERT(!"validate stage: unexpected event");
	}
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
	.peers = (const char *const[]){ "protocol", NULL },
	.handle = validate_handle,
};
