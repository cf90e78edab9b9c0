/*
 * test/unit/test_validate_stage.c - the validation stage (stages/validate.c)
 * with its real thread pool and queues, driven the way the protocol stage
 * drives it.
 *
 * A stand-in "protocol" stage (two POOL threads; the name is the real
 * stage's, so the validation stage's declared peer resolves to it) builds
 * verdict requests as stages/protocol.c does (proto_vreq: a snapshot
 * reference, copies of the envelope and context, the session's chain, the
 * message in the data phase) and sends a phase to the validation stage
 * exactly when the chain says a module in it may block (needs_pool);
 * otherwise it runs the inline modules itself.  The chains are the
 * built-ins of a real snapshot followed by modules defined here, appended
 * with sl_validate_chain_add() (the function sl_validate_chain_build() uses,
 * so needs_pool is the runner's own answer).  The modules decide from
 * context variables what to answer in each phase (accept, tempfail, reject,
 * or wait for the test to open a gate), and log every call with the thread
 * it ran on.
 *
 * The tests check each verdict, its code, enhanced code, text and deciding
 * module as it reaches its owner; that the answer arrives on the thread
 * that asked, for the session that asked; which thread ran each module
 * (a validation thread for a phase with a blocking module, the asking
 * thread otherwise); declared order and __bypass_<module> in every phase;
 * context set by a module travelling back; the message's facts and
 * ownership in the data phase; and that a session's thread keeps working
 * while a blocking module holds a validation thread.
 *
 * What this does not cover: the branch in stages/protocol.c itself
 * (proto_check/proto_check_data test needs_pool as the stand-in here does);
 * b0020 drives that with a real daemon.
 *
 * Threads: cmocka on main; the stand-in's threads and the validation
 * threads write results and the call log under t_lock, main reads them
 * under it.  Parses no input.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf_snapshot.h"
#include "engine/alloc.h"
#include "engine/rcu.h"
#include "engine/stage.h"
#include "proto/validate.h"
#include "spool/msg.h"
#include "stages/events.h"
#include "stages/stages.h"

#define T_WAIT_MS       15000
#define T_PROTO_THREADS 2
#define T_VAL_THREADS   2
#define T_CALLS_MAX     4096
#define T_KV_MAX        4

enum { TEV_POST = 100 };

/* ------------------------------------------------------------ shared state */

static pthread_mutex_t t_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_cond = PTHREAD_COND_INITIALIZER;

/* One module call, logged by the module. */
struct t_call {
	unsigned req;       /* the request's index (its peer_ip) */
	const char *module; /* the module's own name */
	enum sl_validate_phase phase;
	const struct sl_thread *on; /* the thread it ran on */
	uint64_t message_len;       /* data phase */
	bool has_date_header;       /* data phase */
	size_t rcpt_cnt;
};
static struct t_call t_calls[T_CALLS_MAX];
static size_t t_call_cnt;
static bool t_gate_open = true; /* "wait" modules block until it is */

static struct sl_stage *t_proto;    /* the stand-in */
static struct sl_stage *t_validate; /* the real stage */
static struct sl_conf_snapshot *t_snap;

/* One verdict request: inputs set by main, results by the stand-in (under t_lock). */
struct t_req {
	unsigned idx;
	unsigned proto_thread; /* which stand-in thread asks */
	const struct sl_validate_chain *chain;
	enum sl_validate_phase phase;
	const char *rcpt;
	struct {
		const char *key, *val;
	} kv[T_KV_MAX];
	char tag[16];     /* peer_ip: the request's index, for the call log */
	char key_buf[64]; /* a context key made by the test */
	/* results */
	bool is_done;
	bool was_sent;       /* went to the validation stage */
	bool envelope_first; /* data phase of an ECStream frame: the envelope phases too */
	bool is_owner_ok;    /* came back with our session, serial, magic */
	bool has_msg_back;   /* the data phase's message came back with it */
	const struct sl_thread *answered_on;
	struct sl_verdict v;
	char module[64];   /* v.module copied while the request lived */
	char set_back[32]; /* context "t_block_ran" as it came back */
};

static struct t_req *
t_req_new(unsigned idx, unsigned thread, const struct sl_validate_chain *ch,
	  enum sl_validate_phase phase)
{
	struct t_req *q = SL_NEW(q);

	q->idx = idx;
	q->proto_thread = thread;
	q->chain = ch;
	q->phase = phase;
	q->rcpt = "user@ours.example";
	snprintf(q->tag, sizeof(q->tag), "%u", idx);
	return q;
}

static void
t_req_kv(struct t_req *q, const char *key, const char *val)
{
	for (size_t i = 0; i < T_KV_MAX; i++)
		if (q->kv[i].key == NULL) {
			q->kv[i].key = key;
			q->kv[i].val = val;
			return;
		}
	fail_msg("too many context variables");
}

/* ------------------------------------------------------------ the modules */

static const char *const t_phase_keys[SL_VPHASE__COUNT] = {
	[SL_VPHASE_CONNECT] = "connect",   [SL_VPHASE_EHLO] = "ehlo",
	[SL_VPHASE_MAILFROM] = "mailfrom", [SL_VPHASE_RCPTTO] = "rcptto",
	[SL_VPHASE_DATA] = "data",
};

static bool
t_wait_locked(bool (*is_ready)(void *), void *arg)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += T_WAIT_MS / 1000;
	while (!is_ready(arg))
		if (pthread_cond_timedwait(&t_cond, &t_lock, &until) == ETIMEDOUT)
			return is_ready(arg);
	return true;
}

static bool
t_is_gate_open(void *arg)
{
	(void)arg;
	return t_gate_open;
}

/*
 * What every test module does: log the call, then answer as the context
 * variable "<module>.<phase>" says: "tempfail", "reject", "wait" (block
 * until the gate opens, then accept) or nothing (accept).  A blocking
 * module also takes a little time and records that it ran in the context.
 */
static void
t_act(const char *name, bool is_blocking, enum sl_validate_phase phase,
      const struct sl_validate_ctx *ctx, struct sl_verdict *v)
{
	char key[64];
	const char *want;

	snprintf(key, sizeof(key), "%s.%s", name, t_phase_keys[phase]);
	want = ctx->context_get(ctx->ctx_arg, key);
	pthread_mutex_lock(&t_lock);
	if (t_call_cnt < T_CALLS_MAX)
		t_calls[t_call_cnt++] = (struct t_call){
			.req = (unsigned)strtoul(ctx->peer_ip, NULL, 10),
			.module = name,
			.phase = phase,
			.on = sl_thread_self(),
			.message_len = ctx->message_len,
			.has_date_header = ctx->has_date_header,
			.rcpt_cnt = ctx->rcpt_cnt,
		};
	pthread_cond_broadcast(&t_cond);
	if (want != NULL && strcmp(want, "wait") == 0)
		t_wait_locked(t_is_gate_open, NULL);
	pthread_mutex_unlock(&t_lock);
	if (is_blocking) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };

		nanosleep(&ts, NULL); /* a blocking call, briefly */
		ctx->context_set(ctx->ctx_arg, "t_block_ran", name);
	}
	if (want == NULL)
		return;
	if (strcmp(want, "tempfail") == 0) {
		v->kind = SL_VERDICT_TEMPFAIL;
		v->code = 451;
		snprintf(v->enhanced, sizeof(v->enhanced), "4.7.0");
		snprintf(v->text, sizeof(v->text), "%s tempfail at %s", name, t_phase_keys[phase]);
	} else if (strcmp(want, "reject") == 0) {
		v->kind = SL_VERDICT_REJECT;
		v->code = 554;
		snprintf(v->enhanced, sizeof(v->enhanced), "5.7.1");
		snprintf(v->text, sizeof(v->text), "%s reject at %s", name, t_phase_keys[phase]);
	}
}

#define T_MODULE(NAME, IS_BLOCKING)                                                        \
	static void NAME##_ehlo(const struct sl_validate_ctx *c, struct sl_verdict *v)     \
	{                                                                                  \
		t_act(#NAME, IS_BLOCKING, SL_VPHASE_EHLO, c, v);                           \
	}                                                                                  \
	static void NAME##_mailfrom(const struct sl_validate_ctx *c, struct sl_verdict *v) \
	{                                                                                  \
		t_act(#NAME, IS_BLOCKING, SL_VPHASE_MAILFROM, c, v);                       \
	}                                                                                  \
	static void NAME##_rcptto(const struct sl_validate_ctx *c, struct sl_verdict *v)   \
	{                                                                                  \
		t_act(#NAME, IS_BLOCKING, SL_VPHASE_RCPTTO, c, v);                         \
	}                                                                                  \
	static void NAME##_data(const struct sl_validate_ctx *c, struct sl_verdict *v)     \
	{                                                                                  \
		t_act(#NAME, IS_BLOCKING, SL_VPHASE_DATA, c, v);                           \
	}

T_MODULE(t_first, false)
T_MODULE(t_second, false)
T_MODULE(t_block, true)

static void
t_slow_data(const struct sl_validate_ctx *c, struct sl_verdict *v)
{
	t_act("t_slow", true, SL_VPHASE_DATA, c, v);
}

/* Inline, with an opinion on every envelope phase and the data phase. */
static const struct sl_validate_module t_first = {
	.name = "t_first",
	.block = "t_first",
	.is_inline = true,
	.phase = { [SL_VPHASE_EHLO] = t_first_ehlo,
		   [SL_VPHASE_MAILFROM] = t_first_mailfrom,
		   [SL_VPHASE_RCPTTO] = t_first_rcptto,
		   [SL_VPHASE_DATA] = t_first_data },
};
static const struct sl_validate_module t_second = {
	.name = "t_second",
	.block = "t_second",
	.is_inline = true,
	.phase = { [SL_VPHASE_EHLO] = t_second_ehlo,
		   [SL_VPHASE_MAILFROM] = t_second_mailfrom,
		   [SL_VPHASE_RCPTTO] = t_second_rcptto,
		   [SL_VPHASE_DATA] = t_second_data },
};
/* May block in every phase but connect. */
static const struct sl_validate_module t_block = {
	.name = "t_block",
	.block = "t_block",
	.is_inline = false,
	.phase = { [SL_VPHASE_EHLO] = t_block_ehlo,
		   [SL_VPHASE_MAILFROM] = t_block_mailfrom,
		   [SL_VPHASE_RCPTTO] = t_block_rcptto,
		   [SL_VPHASE_DATA] = t_block_data },
};
/* May block, only in the data phase (a content scanner). */
static const struct sl_validate_module t_slow = {
	.name = "t_slow",
	.block = "t_slow",
	.is_inline = false,
	.phase = { [SL_VPHASE_DATA] = t_slow_data },
};

/* The chains: the snapshot's built-ins, then ours in the order given. */
enum { CH_INLINE, CH_DATA, CH_ALL, CH_REVERSED, CH__COUNT };
static struct sl_validate_chain t_chains[CH__COUNT];
static const char *const t_chain_names[CH__COUNT] = { "inline", "data-blocks", "all-block",
						      "reversed" };
/* Our modules in each chain, as declared (NULL-terminated). */
static const struct sl_validate_module *const t_chain_mods[CH__COUNT][4] = {
	[CH_INLINE] = { &t_first, &t_second, NULL },
	[CH_DATA] = { &t_first, &t_slow, &t_second, NULL },
	[CH_ALL] = { &t_first, &t_block, &t_second, NULL },
	[CH_REVERSED] = { &t_second, &t_block, &t_first, NULL },
};

/* ------------------------------------------------------------ the stand-in protocol stage */

struct t_post_ev {
	struct sl_event ev; /* TEV_POST */
	struct t_req *req;
};

/* As proto_vreq() makes it; the data phase carries the complete message. */
static struct sl_verdict_req_ev *
t_vreq(struct t_req *q)
{
	struct sl_verdict_req_ev *r = SL_NEW(r);
	size_t n = 0;

	sl_event_init(&r->ev, SL_EV_VERDICT_REQ);
	r->session = q;
	r->session_serial = 1000 + q->idx;
	r->phase = q->phase;
	sl_rcuobj_get(&t_snap->obj);
	r->snap = t_snap;
	r->peer_ip = sl_strdup(q->tag);
	r->helo = sl_strdup("client.example");
	r->sender = q->phase >= SL_VPHASE_MAILFROM ? sl_strdup("from@sender.example") : NULL;
	r->rcpt = q->phase == SL_VPHASE_RCPTTO ? sl_strdup(q->rcpt) : NULL;
	r->rcpt_cnt = q->phase == SL_VPHASE_DATA ? 2 : 0;
	r->policy.allow_null_sender = true;
	r->chain = *q->chain;
	while (n < T_KV_MAX && q->kv[n].key != NULL)
		n++;
	r->context = sl_calloc(n ? n : 1, sizeof(*r->context));
	for (size_t i = 0; i < n; i++) {
		r->context[i].key = sl_strdup(q->kv[i].key);
		r->context[i].val = sl_strdup(q->kv[i].val);
	}
	r->context_cnt = n;
	if (q->phase == SL_VPHASE_DATA) {
		static const char body[] = "Date: Thu, 26 Nov 2026 22:00:00 +0000\r\n\r\nhello\r\n";
		struct sl_msg *m = sl_msg_new();

		sl_msg_set_sender(m, "from@sender.example");
		sl_msg_add_rcpt(m, "a@ours.example");
		sl_msg_add_rcpt(m, "b@ours.example");
		sl_msg_append(m, body, sizeof(body) - 1);
		r->msg = m;
		r->has_date_header = true;
		r->envelope_first = q->envelope_first;
		m->origin = q;
		m->origin_serial = r->session_serial;
	}
	return r;
}

static void
t_done(struct t_req *q, const struct sl_verdict *v)
{
	q->v = *v;
	snprintf(q->module, sizeof(q->module), "%s", v->module ? v->module : "");
	q->answered_on = sl_thread_self();
	q->is_done = true;
	pthread_cond_broadcast(&t_cond);
}

/* A session's thread checks a phase: inline, or through the validation stage. */
static void
t_post(struct t_req *q)
{
	struct sl_verdict_req_ev *r = t_vreq(q);
	struct sl_validate_ctx ctx;
	struct sl_verdict v;

	sl_verdict_req_ctx(r, &ctx);
	if (q->chain->needs_pool[q->phase] || q->envelope_first) {
		pthread_mutex_lock(&t_lock);
		q->was_sent = true;
		pthread_mutex_unlock(&t_lock);
		sl_send(t_validate, &r->ev);
		return;
	}
	sl_validate_run(q->chain, q->phase, &ctx, true, &v);
	pthread_mutex_lock(&t_lock);
	q->is_owner_ok = true;
	t_done(q, &v);
	pthread_mutex_unlock(&t_lock);
	sl_verdict_req_free(r);
}

/* As proto_verdict_back(): the answer must be ours, on the thread that asked. */
static void
t_back(struct sl_verdict_req_ev *r)
{
	struct t_req *q = r->session;
	const char *ran = sl_kv_get(r->context, r->context_cnt, "t_block_ran");

	pthread_mutex_lock(&t_lock);
	q->is_owner_ok = r->ev.magic == SL_EVENT_MAGIC && r->session_serial == 1000 + q->idx &&
			 r->phase == q->phase && r->ev.reply_to == sl_thread_self();
	q->has_msg_back = r->msg != NULL && r->msg->origin == q && r->msg->content_len > 0;
	snprintf(q->set_back, sizeof(q->set_back), "%s", ran ? ran : "");
	t_done(q, &r->verdict);
	pthread_mutex_unlock(&t_lock);
	sl_verdict_req_free(r);
}

static void
t_proto_handle(struct sl_thread *t, struct sl_event *ev)
{
	(void)t;
	if (ev->type == TEV_POST) {
		struct t_post_ev *p = (struct t_post_ev *)ev;

		t_post(p->req);
		ev->magic = 0;
		sl_free(p);
	} else {
		assert_int_equal(ev->type, SL_EV_VERDICT_REQ);
		t_back((struct sl_verdict_req_ev *)ev);
	}
}

static const struct sl_stage_def t_proto_def = {
	.name = "protocol", /* the validation stage's declared peer */
	.kind = SL_STAGE_POOL,
	.peers = (const char *const[]){ "validate", NULL },
	.handle = t_proto_handle,
};

/* ------------------------------------------------------------ helpers for main */

static void
t_send(struct t_req *q)
{
	struct t_post_ev *p = SL_NEW(p);

	sl_event_init(&p->ev, TEV_POST);
	p->req = q;
	sl_send_thread(sl_stage_thread(t_proto, q->proto_thread), &p->ev);
}

static bool
t_is_done(void *arg)
{
	return ((struct t_req *)arg)->is_done;
}

/* Wait for q's answer; false on timeout. */
static bool
t_wait(struct t_req *q)
{
	bool is_ok;

	pthread_mutex_lock(&t_lock);
	is_ok = t_wait_locked(t_is_done, q);
	pthread_mutex_unlock(&t_lock);
	return is_ok;
}

/* The calls logged for request `idx` (module names in call order, space-separated). */
static void
t_calls_of(unsigned idx, char *out, size_t out_len, const struct sl_thread **on,
	   bool *is_same_thread)
{
	size_t n = 0;

	out[0] = '\0';
	*on = NULL;
	*is_same_thread = true;
	pthread_mutex_lock(&t_lock);
	for (size_t i = 0; i < t_call_cnt; i++) {
		if (t_calls[i].req != idx)
			continue;
		n += (size_t)snprintf(out + n, out_len - n, "%s%s", n ? " " : "",
				      t_calls[i].module);
		if (*on == NULL)
			*on = t_calls[i].on;
		else if (*on != t_calls[i].on)
			*is_same_thread = false;
	}
	pthread_mutex_unlock(&t_lock);
}

/* Post `q`, wait for it and check where it ran and that its owner got it. */
static void
t_run(struct t_req *q)
{
	char calls[256];
	const struct sl_thread *on;
	bool is_same;

	t_send(q);
	/* Once done, the stand-in never touches q again: read it without the lock. */
	assert_true(t_wait(q));
	assert_true(q->is_owner_ok);
	/* Back on the very thread that asked. */
	assert_ptr_equal(q->answered_on, sl_stage_thread(t_proto, q->proto_thread));
	/* Through the stage exactly when a module of the phase may block. */
	assert_int_equal(q->was_sent, q->chain->needs_pool[q->phase] || q->envelope_first);
	if (q->was_sent && q->phase == SL_VPHASE_DATA)
		assert_true(q->has_msg_back);
	t_calls_of(q->idx, calls, sizeof(calls), &on, &is_same);
	if (on != NULL) {
		assert_true(is_same);
		if (q->was_sent)
			assert_ptr_equal(sl_thread_stage(on), t_validate);
		else
			assert_ptr_equal(on, sl_stage_thread(t_proto, q->proto_thread));
	}
}

static unsigned t_next_idx = 1;

/* ------------------------------------------------------------ tests */

static const enum sl_validate_phase t_phases[] = { SL_VPHASE_EHLO, SL_VPHASE_MAILFROM,
						   SL_VPHASE_RCPTTO, SL_VPHASE_DATA };

static void
test_needs_pool(void **state)
{
	(void)state;
	for (size_t p = 0; p < SL_VPHASE__COUNT; p++) {
		print_message("phase %s\n", t_phase_keys[p]);
		assert_false(t_chains[CH_INLINE].needs_pool[p]);
		assert_int_equal(t_chains[CH_DATA].needs_pool[p], p == SL_VPHASE_DATA);
		assert_int_equal(t_chains[CH_ALL].needs_pool[p], p != SL_VPHASE_CONNECT);
	}
}

/* Every module accepts: each chain's modules run in declared order, where they should. */
static void
test_accept_paths(void **state)
{
	static const char *const expect[CH__COUNT][SL_VPHASE__COUNT] = {
		[CH_INLINE] = { [SL_VPHASE_EHLO] = "t_first t_second",
				[SL_VPHASE_MAILFROM] = "t_first t_second",
				[SL_VPHASE_RCPTTO] = "t_first t_second",
				[SL_VPHASE_DATA] = "t_first t_second" },
		[CH_DATA] = { [SL_VPHASE_EHLO] = "t_first t_second",
			      [SL_VPHASE_MAILFROM] = "t_first t_second",
			      [SL_VPHASE_RCPTTO] = "t_first t_second",
			      [SL_VPHASE_DATA] = "t_first t_slow t_second" },
		[CH_ALL] = { [SL_VPHASE_EHLO] = "t_first t_block t_second",
			     [SL_VPHASE_MAILFROM] = "t_first t_block t_second",
			     [SL_VPHASE_RCPTTO] = "t_first t_block t_second",
			     [SL_VPHASE_DATA] = "t_first t_block t_second" },
		[CH_REVERSED] = { [SL_VPHASE_EHLO] = "t_second t_block t_first",
				  [SL_VPHASE_MAILFROM] = "t_second t_block t_first",
				  [SL_VPHASE_RCPTTO] = "t_second t_block t_first",
				  [SL_VPHASE_DATA] = "t_second t_block t_first" },
	};

	(void)state;
	for (size_t c = 0; c < CH__COUNT; c++)
		for (size_t p = 0; p < SL_ARRAY_LEN(t_phases); p++) {
			enum sl_validate_phase ph = t_phases[p];
			struct t_req *q =
				t_req_new(t_next_idx++, (unsigned)(c + p) % 2, &t_chains[c], ph);
			char calls[256];
			const struct sl_thread *on;
			bool is_same;

			print_message("chain %s phase %s\n", t_chain_names[c], t_phase_keys[ph]);
			t_run(q);
			assert_int_equal(q->v.kind, SL_VERDICT_ACCEPT);
			assert_int_equal(q->v.code, 0);
			assert_string_equal(q->module, "");
			t_calls_of(q->idx, calls, sizeof(calls), &on, &is_same);
			assert_string_equal(calls, expect[c][ph]);
			/* A blocking module's context variable comes back with the verdict. */
			if (q->was_sent)
				assert_string_equal(q->set_back,
						    c == CH_DATA ? "t_slow" : "t_block");
			sl_free(q);
		}
}

/* The data phase's facts reach a module on the validation thread. */
static void
test_data_facts(void **state)
{
	struct t_req *q = t_req_new(t_next_idx++, 1, &t_chains[CH_DATA], SL_VPHASE_DATA);
	struct t_call mine[8];
	size_t seen = 0;

	(void)state;
	t_run(q);
	assert_true(q->was_sent);
	pthread_mutex_lock(&t_lock);
	for (size_t i = 0; i < t_call_cnt && seen < SL_ARRAY_LEN(mine); i++)
		if (t_calls[i].req == q->idx)
			mine[seen++] = t_calls[i];
	pthread_mutex_unlock(&t_lock);
	assert_int_equal(seen, 3);
	for (size_t i = 0; i < seen; i++) {
		assert_int_equal(mine[i].message_len, 48);
		assert_true(mine[i].has_date_header);
		assert_int_equal(mine[i].rcpt_cnt, 2);
		assert_ptr_equal(sl_thread_stage(mine[i].on), t_validate);
	}
	sl_free(q);
}

/*
 * Each objection in each phase of each chain: the verdict, its reply and
 * the deciding module reach the owner, and modules after it do not run.
 */
static void
test_objections(void **state)
{
	static const struct {
		size_t chain;
		const char *module; /* which module objects */
		const char *action;
		const char *calls; /* modules that ran */
	} cases[] = {
		{ CH_INLINE, "t_first", "tempfail", "t_first" },
		{ CH_INLINE, "t_first", "reject", "t_first" },
		{ CH_INLINE, "t_second", "tempfail", "t_first t_second" },
		{ CH_INLINE, "t_second", "reject", "t_first t_second" },
		{ CH_ALL, "t_first", "tempfail", "t_first" },
		{ CH_ALL, "t_block", "tempfail", "t_first t_block" },
		{ CH_ALL, "t_block", "reject", "t_first t_block" },
		{ CH_ALL, "t_second", "tempfail", "t_first t_block t_second" },
		{ CH_ALL, "t_second", "reject", "t_first t_block t_second" },
		{ CH_REVERSED, "t_second", "tempfail", "t_second" },
		{ CH_REVERSED, "t_first", "reject", "t_second t_block t_first" },
		{ CH_DATA, "t_first", "tempfail", "t_first" },
		{ CH_DATA, "t_second", "tempfail", "t_first t_second" },
	};

	(void)state;
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
		for (size_t p = 0; p < SL_ARRAY_LEN(t_phases); p++) {
			enum sl_validate_phase ph = t_phases[p];
			struct t_req *q = t_req_new(t_next_idx++, (unsigned)(i + p) % 2,
						    &t_chains[cases[i].chain], ph);
			bool is_temp = strcmp(cases[i].action, "tempfail") == 0;
			char key[64], text[128], calls[256];
			const char *expect_calls = cases[i].calls;
			const struct sl_thread *on;
			bool is_same;

			print_message("chain %s: %s %s at %s\n", t_chain_names[cases[i].chain],
				      cases[i].module, cases[i].action, t_phase_keys[ph]);
			snprintf(key, sizeof(key), "%s.%s", cases[i].module, t_phase_keys[ph]);
			t_req_kv(q, key, cases[i].action);
			t_run(q);
			assert_int_equal(q->v.kind,
					 is_temp ? SL_VERDICT_TEMPFAIL : SL_VERDICT_REJECT);
			assert_int_equal(q->v.code, is_temp ? 451 : 554);
			assert_string_equal(q->v.enhanced, is_temp ? "4.7.0" : "5.7.1");
			snprintf(text, sizeof(text), "%s %s at %s", cases[i].module,
				 cases[i].action, t_phase_keys[ph]);
			assert_string_equal(q->v.text, text);
			assert_string_equal(q->module, cases[i].module);
			/* In chain "data-blocks", t_slow runs between them in the data phase. */
			if (cases[i].chain == CH_DATA && ph == SL_VPHASE_DATA &&
			    strcmp(cases[i].module, "t_second") == 0)
				expect_calls = "t_first t_slow t_second";
			t_calls_of(q->idx, calls, sizeof(calls), &on, &is_same);
			assert_string_equal(calls, expect_calls);
			sl_free(q);
		}
}

/* How many calls request `idx` made in `phase`. */
static size_t
t_calls_in(unsigned idx, enum sl_validate_phase phase)
{
	size_t n = 0;

	pthread_mutex_lock(&t_lock);
	for (size_t i = 0; i < t_call_cnt; i++)
		if (t_calls[i].req == idx && t_calls[i].phase == phase)
			n++;
	pthread_mutex_unlock(&t_lock);
	return n;
}

/*
 * An ECStream frame brings its envelope with the content: the stage runs
 * the mailfrom phase and each recipient's rcptto phase (every module) before
 * the data phase, and an objection there decides.
 */
static void
test_envelope_first(void **state)
{
	struct t_req *q = t_req_new(t_next_idx++, 0, &t_chains[CH_ALL], SL_VPHASE_DATA);

	(void)state;
	q->envelope_first = true;
	t_run(q);
	assert_int_equal(q->v.kind, SL_VERDICT_ACCEPT);
	assert_int_equal(t_calls_in(q->idx, SL_VPHASE_MAILFROM), 3);
	assert_int_equal(t_calls_in(q->idx, SL_VPHASE_RCPTTO), 6); /* 3 modules x 2 rcpts */
	assert_int_equal(t_calls_in(q->idx, SL_VPHASE_DATA), 3);
	sl_free(q);

	q = t_req_new(t_next_idx++, 1, &t_chains[CH_ALL], SL_VPHASE_DATA);
	q->envelope_first = true;
	t_req_kv(q, "t_block.rcptto", "reject");
	t_run(q);
	assert_int_equal(q->v.kind, SL_VERDICT_REJECT);
	assert_string_equal(q->v.text, "t_block reject at rcptto");
	assert_string_equal(q->module, "t_block");
	assert_int_equal(t_calls_in(q->idx, SL_VPHASE_RCPTTO),
			 2); /* first rcpt: t_first, t_block */
	assert_int_equal(t_calls_in(q->idx, SL_VPHASE_DATA), 0);
	sl_free(q);
}

/* __bypass_<module> skips a module in every phase, on either path; built-ins too. */
static void
test_bypass(void **state)
{
	static const struct {
		size_t chain;
		const char *bypass; /* __bypass_ this */
		const char *module; /* which module would object */
		const char *calls;
	} cases[] = {
		{ CH_INLINE, "t_first", "t_first", "t_second" },
		{ CH_INLINE, "t_second", "t_second", "t_first" },
		{ CH_ALL, "t_first", "t_first", "t_block t_second" },
		{ CH_ALL, "t_block", "t_block", "t_first t_second" },
		{ CH_REVERSED, "t_second", "t_second", "t_block t_first" },
		{ CH_DATA, "t_first", "t_first", NULL /* depends on the phase */ },
	};

	(void)state;
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
		for (size_t p = 0; p < SL_ARRAY_LEN(t_phases); p++) {
			enum sl_validate_phase ph = t_phases[p];
			struct t_req *q = t_req_new(t_next_idx++, (unsigned)p % 2,
						    &t_chains[cases[i].chain], ph);
			char key[64], bkey[64], calls[256];
			const struct sl_thread *on;
			bool is_same;

			print_message("chain %s: __bypass_%s at %s\n",
				      t_chain_names[cases[i].chain], cases[i].bypass,
				      t_phase_keys[ph]);
			snprintf(key, sizeof(key), "%s.%s", cases[i].module, t_phase_keys[ph]);
			snprintf(bkey, sizeof(bkey), "__bypass_%s", cases[i].bypass);
			t_req_kv(q, key, "reject");
			t_req_kv(q, bkey, "true");
			t_run(q);
			assert_int_equal(q->v.kind, SL_VERDICT_ACCEPT);
			t_calls_of(q->idx, calls, sizeof(calls), &on, &is_same);
			if (cases[i].calls != NULL)
				assert_string_equal(calls, cases[i].calls);
			else
				assert_string_equal(calls, ph == SL_VPHASE_DATA ? "t_slow t_second"
										: "t_second");
			sl_free(q);
		}
	/* A built-in on the stage's path: relay refuses, unless bypassed. */
	for (size_t c = 0; c < 2; c++) {
		struct t_req *q =
			t_req_new(t_next_idx++, (unsigned)c, &t_chains[CH_ALL], SL_VPHASE_RCPTTO);
		char calls[256];
		const struct sl_thread *on;
		bool is_same;

		q->rcpt = "user@elsewhere.example";
		if (c == 1)
			t_req_kv(q, "__bypass_relay", "1");
		t_run(q);
		assert_true(q->was_sent);
		t_calls_of(q->idx, calls, sizeof(calls), &on, &is_same);
		if (c == 0) {
			assert_int_equal(q->v.kind, SL_VERDICT_REJECT);
			assert_int_equal(q->v.code, 550);
			assert_string_equal(q->v.text, "Relaying denied");
			assert_string_equal(q->module, "relay");
			assert_string_equal(calls, ""); /* the built-in ran first and decided */
		} else {
			assert_int_equal(q->v.kind, SL_VERDICT_ACCEPT);
			assert_string_equal(calls, "t_first t_block t_second");
		}
		sl_free(q);
	}
}

/*
 * While a blocking module holds a validation thread, the session's thread
 * goes on (another session's inline phase is answered), and the blocked
 * phase's verdict comes back once the module returns.
 */
static void
test_caller_not_blocked(void **state)
{
	struct t_req *slow = t_req_new(t_next_idx++, 0, &t_chains[CH_DATA], SL_VPHASE_DATA);
	struct t_req *fast = t_req_new(t_next_idx++, 0, &t_chains[CH_INLINE], SL_VPHASE_EHLO);
	const struct sl_thread *entered = NULL;
	bool was_sent, is_done;
	struct timespec until;

	(void)state;
	t_req_kv(slow, "t_slow.data", "wait");
	t_req_kv(slow, "t_second.data", "tempfail");
	pthread_mutex_lock(&t_lock);
	t_gate_open = false;
	pthread_mutex_unlock(&t_lock);
	t_send(slow);
	/* Wait until t_slow is inside its call. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += T_WAIT_MS / 1000;
	pthread_mutex_lock(&t_lock);
	while (entered == NULL) {
		for (size_t i = 0; i < t_call_cnt; i++)
			if (t_calls[i].req == slow->idx && strcmp(t_calls[i].module, "t_slow") == 0)
				entered = t_calls[i].on;
		if (entered == NULL &&
		    pthread_cond_timedwait(&t_cond, &t_lock, &until) == ETIMEDOUT)
			break;
	}
	was_sent = slow->was_sent;
	is_done = slow->is_done;
	pthread_mutex_unlock(&t_lock);
	assert_non_null(entered);
	assert_ptr_equal(sl_thread_stage(entered), t_validate);
	assert_true(was_sent);
	assert_false(is_done);
	/* The same session thread answers another phase meanwhile. */
	t_run(fast);
	assert_int_equal(fast->v.kind, SL_VERDICT_ACCEPT);
	pthread_mutex_lock(&t_lock);
	is_done = slow->is_done;
	t_gate_open = true;
	pthread_cond_broadcast(&t_cond);
	pthread_mutex_unlock(&t_lock);
	assert_false(is_done);
	assert_true(t_wait(slow));
	assert_true(slow->is_owner_ok);
	assert_ptr_equal(slow->answered_on, sl_stage_thread(t_proto, 0));
	assert_int_equal(slow->v.kind, SL_VERDICT_TEMPFAIL);
	assert_int_equal(slow->v.code, 451);
	assert_string_equal(slow->v.text, "t_second tempfail at data");
	assert_string_equal(slow->module, "t_second");
	assert_string_equal(slow->set_back, "t_slow");
	sl_free(slow);
	sl_free(fast);
}

/* Many sessions on both threads at once: each answer reaches its own asker. */
static void
test_many_owners(void **state)
{
	enum { N = 64 };
	struct t_req *q[N];
	static const char *const actions[] = { NULL, "tempfail", "reject" };

	(void)state;
	for (size_t i = 0; i < N; i++) {
		enum sl_validate_phase ph = t_phases[i % SL_ARRAY_LEN(t_phases)];
		const char *act = actions[i % 3];

		q[i] = t_req_new(t_next_idx++, (unsigned)(i / 4) % 2, &t_chains[CH_ALL], ph);
		if (act != NULL) {
			snprintf(q[i]->key_buf, sizeof(q[i]->key_buf), "t_block.%s",
				 t_phase_keys[ph]);
			t_req_kv(q[i], q[i]->key_buf, act);
		}
		t_send(q[i]);
	}
	for (size_t i = 0; i < N; i++) {
		const char *act = actions[i % 3];

		assert_true(t_wait(q[i]));
		assert_true(q[i]->was_sent);
		assert_true(q[i]->is_owner_ok);
		assert_ptr_equal(q[i]->answered_on, sl_stage_thread(t_proto, q[i]->proto_thread));
		if (act == NULL) {
			assert_int_equal(q[i]->v.kind, SL_VERDICT_ACCEPT);
		} else {
			char text[96];

			snprintf(text, sizeof(text), "t_block %s at %s", act,
				 t_phase_keys[q[i]->phase]);
			assert_string_equal(q[i]->v.text, text);
			assert_string_equal(q[i]->module, "t_block");
		}
		sl_free(q[i]);
	}
}

/* ------------------------------------------------------------ set-up */

static int
group_setup(void **state)
{
	static const char conf[] = "Relay_Domains = ( ours.example )\n";
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree;

	(void)state;
	sl_rcu_register_thread();
	tree = sl_conf_parse_buffer("t.conf", "/", conf, strlen(conf), &errs);
	t_snap = tree ? sl_conf_snapshot_build(tree, "/", 1, &errs) : NULL;
	if (t_snap == NULL) {
		sl_conf_errors_print(&errs, stderr);
		return -1;
	}
	for (size_t c = 0; c < CH__COUNT; c++) {
		sl_validate_chain_build(t_snap, &t_chains[c]);
		for (size_t i = 0; t_chain_mods[c][i] != NULL; i++)
			sl_validate_chain_add(&t_chains[c], t_chain_mods[c][i], NULL,
					      t_chain_mods[c][i]->name);
	}
	/* As engine/main.c: the consumer first; both before any request. */
	t_proto = sl_stage_create(&t_proto_def, T_PROTO_THREADS, NULL);
	t_validate = sl_stage_create(&sl_validate_stage, T_VAL_THREADS, NULL);
	if (sl_stage_start(t_validate) != 0 || sl_stage_start(t_proto) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	/* As engine/main.c: validation first, its answers still find their threads. */
	sl_stage_stop(t_validate);
	sl_stage_stop(t_proto);
	sl_stage_destroy(t_proto);
	sl_stage_destroy(t_validate);
	sl_conf_snapshot_put(t_snap);
	sl_rcu_barrier();
	sl_rcu_unregister_thread();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needs_pool),  cmocka_unit_test(test_accept_paths),
		cmocka_unit_test(test_data_facts),  cmocka_unit_test(test_objections),
		cmocka_unit_test(test_bypass),      cmocka_unit_test(test_caller_not_blocked),
		cmocka_unit_test(test_many_owners), cmocka_unit_test(test_envelope_first),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
