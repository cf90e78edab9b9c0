/*
 * stages/deliver.c - the delivery stage: messages in, outcomes out.
 *
 * A message reaches delivery once it is durable: from the protocol stage
 * after its 250, from spool recovery at start, or as a bounce this stage
 * made and had spooled.  Here it is assigned a binding (the X-Binding:
 * header, which is then left out of what is delivered, a "binding" context
 * variable, or Match_Domain), split into one job per recipient domain, and
 * each job goes to the delivery thread that owns that domain
 * (sl_deliver_owner).  Every attempt's outcome per recipient is one
 * mainlog line (D, T, P); final outcomes are recorded in the spool; a
 * permanent failure or expiry produces a DSN to the sender (RFC 3464), and
 * when every recipient of a message is final the spool may release it.
 *
 * Threads: the stage's loop threads; each owns its queues (deliver_sched.c)
 * and connections (deliver_conn.c).  A message is shared read-only by its
 * jobs and freed by the last (sl_msg_unref); each job owns the status
 * entries of its own recipients.  Parses the header section of messages
 * (bounded) for X-Binding:.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf_holder.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "proto/bounce.h"
#include "proto/binding.h"
#include "proto/dsn.h"
#include "stages/deliver_int.h"
#include "stages/eclog.h"
#include "stages/stages.h"

/* main -> each delivery thread: stop starting transactions; then close what is left. */
#define DL_EV_QUIESCE 0x300
#define DL_EV_ABORT   0x301

static unsigned dl_quiesce_acks;
static unsigned dl_abort_acks;
static unsigned dl_ctr_delivered;
static unsigned dl_ctr_transient;
static unsigned dl_ctr_failed;
static unsigned dl_ctr_bounces;
static unsigned dl_ctr_queued;
static struct sl_stage *dl_stage;

uint64_t
dl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

unsigned
dl_owner(const char *binding, const char *domain, unsigned thread_cnt)
{
	/* By domain only: a domain's queues in every binding share one thread. */
	return sl_deliver_owner(domain, thread_cnt);
}

/* ------------------------------------------------------------ binding assignment */

/*
 * Binding (and its group) of a message arriving here.  It was chosen at
 * reception (proto/binding.h) and spooled with the message; if it is no
 * longer configured it leaves from "default".  The X-Binding: header is
 * found again (also after a restart) so delivery leaves it out.
 */
static void
dl_assign_binding(const struct sl_conf_snapshot *s, struct sl_msg *m)
{
	char header[SL_BINDING_NAME_MAX];
	bool has_header =
		m->chunks != NULL && sl_binding_header(m->chunks->data, m->chunks->len, header,
						       sizeof(header), &m->skip_off, &m->skip_len);
	const struct sl_conf_binding *b;
	const char *unknown = NULL;

	if (m->binding == NULL) {
		b = sl_binding_choose(s, has_header ? header : NULL,
				      sl_msg_context_get(m, "binding"), m->sender, &unknown);
	} else {
		b = sl_conf_binding_find(s, m->binding);
		if (b == NULL && strcasecmp(m->binding, "default") != 0)
			unknown = m->binding;
	}
	if (unknown != NULL)
		sl_log_notice("message %s: binding \"%s\" is not configured; using default", m->qid,
			      unknown);
	sl_msg_set_str(&m->binding, b ? b->name : "default");
	sl_msg_set_str(&m->binding_group, b && b->group ? b->group->name : "default");
}

/* ------------------------------------------------------------ jobs */

void
dl_job_free(struct dl_job *job)
{
	if (job == NULL)
		return;
	SL_CHECK_OBJ(job, DL_JOB_MAGIC);
	dl_job_unstore(job);
	for (size_t i = 0; i < job->fail_cnt; i++)
		sl_free(job->fail[i].text);
	sl_free(job->fail);
	sl_free(job->rcpt_idx);
	sl_free(job->domain);
	job->magic = 0;
	sl_free(job);
}

static struct dl_job *
dl_job_new(struct sl_msg *m, const char *domain)
{
	struct dl_job *job = SL_NEW(job);

	job->magic = DL_JOB_MAGIC;
	job->msg = m;
	job->domain = sl_strdup(domain);
	for (char *p = job->domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	job->heap_pos = SIZE_MAX;
	job->is_bounce =
		m->sender[0] == '\0' && m->protocol != NULL && strcmp(m->protocol, "internal") == 0;
	return job;
}

static void
dl_progress(struct dl_thread *dt, const struct sl_msg *m, uint32_t rcpt_idx,
	    enum sl_rcpt_status status)
{
	struct sl_spool_progress_ev *p = SL_NEW(p);

	sl_event_init(&p->ev, SL_EV_SPOOL_PROGRESS);
	p->loc = m->loc;
	p->rcpt_idx = rcpt_idx;
	p->status = status;
	sl_send(dt->spool, &p->ev);
}

/* A message arrives: assign its binding, split it by domain, route the jobs. */
static void
dl_message(struct dl_thread *dt, struct sl_msg *m)
{
	unsigned thread_cnt = sl_stage_thread_cnt(dl_stage);
	unsigned self = sl_thread_index(dt->t);
	struct dl_job **jobs = NULL;
	size_t job_cnt = 0;

	SL_CHECK_OBJ(m, SL_MSG_MAGIC);
	dl_assign_binding(dt->snap, m);
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		const char *domain = m->rcpts[i].addr + m->rcpts[i].domain_off;
		struct dl_job *job = NULL;

		if (m->rcpts[i].status != SL_RCPT_PENDING)
			continue; /* recovered: already final */
		for (size_t k = 0; k < job_cnt && job == NULL; k++)
			if (strcasecmp(jobs[k]->domain, domain) == 0)
				job = jobs[k];
		if (job == NULL) {
			jobs = sl_reallocarray(jobs, job_cnt + 1, sizeof(*jobs));
			job = jobs[job_cnt++] = dl_job_new(m, domain);
		}
		job->rcpt_idx =
			sl_reallocarray(job->rcpt_idx, job->rcpt_cnt + 1, sizeof(*job->rcpt_idx));
		job->rcpt_idx[job->rcpt_cnt++] = (uint32_t)i;
	}
	if (job_cnt == 0) {
		/* Nothing left to do (a recovered message whose recipients are all final). */
		dl_progress(dt, m, UINT32_MAX, SL_RCPT_DELIVERED);
		sl_msg_unref(m);
		return;
	}
	/* The arriving reference becomes the first job's; each other job takes one. */
	m->jobs_left = (uint32_t)job_cnt;
	for (size_t k = 1; k < job_cnt; k++)
		sl_msg_ref(m);
	sl_counter_add(dl_ctr_queued, 1);
	for (size_t k = 0; k < job_cnt; k++) {
		unsigned owner = dl_owner(m->binding, jobs[k]->domain, thread_cnt);

		if (owner == self) {
			dl_queue_add(dt, jobs[k]);
		} else {
			sl_event_init(&jobs[k]->ev, SL_EV_DELIVER_JOB);
			sl_send_thread(sl_stage_thread(dl_stage, owner), &jobs[k]->ev);
		}
	}
	sl_free(jobs);
}

/* ------------------------------------------------------------ outcomes and bounces */

/* One DSN for the recipients of `job` that failed permanently (RFC 3464). */
static void
dl_bounce(struct dl_thread *dt, struct dl_job *job)
{
	struct sl_msg *m = job->msg;
	struct sl_conf_where w = { m->binding, job->domain, NULL };
	const union sl_conf_val *gen = sl_conf_eval(dt->snap, SL_OPT_GENERATE_BOUNCES, &w);
	const union sl_conf_val *inl = sl_conf_eval(dt->snap, SL_OPT_BOUNCES_INLINE_ORIGINAL, &w);
	const union sl_conf_val *notify = sl_conf_eval(dt->snap, SL_OPT_MDN_FAILURES_NOTIFY, &w);
	struct sl_dsn_facts facts = {
		.sender = m->sender,
		.failures_notify = notify && notify->s ? notify->s : NULL,
		.is_generate_bounces = gen == NULL || gen->b,
		.is_report = job->is_bounce,
	};
	const char *host = sl_conf_str(dt->snap, SL_OPT_HOSTNAME);
	struct sl_dsn_rcpt *rcpts;
	struct sl_dsn_result res;
	struct sl_dsn_msg dsn;
	struct iovec *iov;
	struct sl_msg *b;
	const char *to = NULL;
	char(*status)[16];
	char unique[64];
	size_t iov_cnt;
	int rc;

	if (job->fail_cnt == 0 || job->is_dropped)
		return;
	/* Content that could not be read back from the spool: a DSN without it. */
	iov_cnt = m->is_swapped ? 0 : sl_msg_iov(m, NULL, 0);
	iov = sl_calloc(iov_cnt + 1, sizeof(*iov));
	if (!m->is_swapped)
		sl_msg_iov(m, iov, iov_cnt);
	facts.is_report = facts.is_report || sl_dsn_is_report(iov, iov_cnt);
	switch (sl_dsn_decide(&facts, &to)) {
	case SL_DSN_TO_SENDER:
	case SL_DSN_TO_NOTIFY:
		break;
	default:
		/* No DSN: the null sender, bounces disabled, or the message is a report. */
		sl_free(iov);
		return;
	}
	if (host == NULL || host[0] == '\0')
		host = dt->hostname;
	rcpts = sl_calloc(job->fail_cnt, sizeof(*rcpts));
	status = sl_calloc(job->fail_cnt, sizeof(*status));
	for (size_t i = 0; i < job->fail_cnt; i++) {
		const struct dl_failure *f = &job->fail[i];

		rcpts[i].addr = m->rcpts[f->rcpt].addr;
		rcpts[i].action = SL_DSN_ACTION_FAILED;
		rcpts[i].status = sl_dsn_status_from_reply(f->code, f->enhanced,
							   SL_DSN_ACTION_FAILED, status[i]);
		rcpts[i].remote_mta = f->ip[0] ? f->ip : NULL;
		rcpts[i].diagnostic = f->text;
		rcpts[i].is_smtp_diagnostic = f->ip[0] != '\0';
		rcpts[i].last_attempt = time(NULL);
	}
	snprintf(unique, sizeof(unique), "%s.bounce.%s", m->qid, job->domain);
	for (char *p = unique; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
			*p = '-';
	memset(&dsn, 0, sizeof(dsn));
	dsn.reporting_mta = host;
	{
		const union sl_conf_val *md = sl_conf_eval(dt->snap, SL_OPT_MAILERDAEMON, &w);

		dsn.mailer_daemon = md != NULL ? md->s : NULL;
	}
	dsn.to = to;
	dsn.unique_id = unique;
	dsn.qid = m->qid;
	dsn.arrival = m->received;
	dsn.now = time(NULL);
	dsn.rcpts = rcpts;
	dsn.rcpt_cnt = job->fail_cnt;
	dsn.orig = iov;
	dsn.orig_cnt = iov_cnt;
	dsn.inline_original = inl == NULL                       ? SL_DSN_INLINE_HEADERS
			      : strcasecmp(inl->s, "all") == 0  ? SL_DSN_INLINE_ALL
			      : strcasecmp(inl->s, "none") == 0 ? SL_DSN_INLINE_NONE
								: SL_DSN_INLINE_HEADERS;
	if (m->is_swapped)
		dsn.inline_original = SL_DSN_INLINE_NONE;
	dsn.is_smtputf8 = m->is_smtputf8;
	b = sl_msg_new();
	rc = sl_dsn_build(&dsn, &b->head, &res);
	sl_free(rcpts);
	sl_free(status);
	sl_free(iov);
	if (rc != 0) {
		sl_log_err("message %s: cannot build its bounce: %s", m->qid, strerror(-rc));
		sl_msg_free(b);
		return;
	}
	sl_msg_set_sender(b, "");
	sl_msg_add_rcpt(b, to);
	sl_msg_set_str(&b->protocol, "internal");
	sl_msg_set_str(&b->peer_ip, "127.0.0.1");
	sl_msg_set_str(&b->helo, "");
	sl_msg_set_str(&b->binding, m->binding);
	b->is_8bitmime = res.is_8bitmime;
	b->is_smtputf8 = res.is_smtputf8;
	snprintf(b->conn_id, sizeof(b->conn_id), "%s", m->qid);
	b->received = dsn.now;
	sl_event_init(&b->ev, SL_MSG_EV_SPOOL);
	sl_counter_add(dl_ctr_bounces, 1);
	sl_send(dt->spool, &b->ev);
}

void
dl_outcome(struct dl_thread *dt, struct dl_job *job, size_t i, unsigned code, const char *enhanced,
	   const char *text, const char *ip, enum dl_stage_code stage, enum dl_result result)
{
	static const enum sl_bounce_cause causes[] = {
		[DL_FAILED] = SL_BOUNCE_CAUSE_REPLY,
		[DL_FAILED_DNS] = SL_BOUNCE_CAUSE_DNS,
		[DL_FAILED_TIMEOUT] = SL_BOUNCE_CAUSE_TIMEOUT,
		[DL_FAILED_POLICY] = SL_BOUNCE_CAUSE_POLICY,
	};
	struct sl_msg *m = job->msg;
	uint32_t r = job->rcpt_idx[i];
	char response[1200];
	time_t now = time(NULL);

	snprintf(response, sizeof(response), "%u%s%s %s", code, enhanced && enhanced[0] ? " " : "",
		 enhanced ? enhanced : "", text ? text : "");
	if (job->q != NULL) {
		if (result == DL_DELIVERED)
			job->q->delivered_cnt++;
		else if (result == DL_TRANSIENT)
			job->q->transient_cnt++;
		else
			job->q->failed_cnt++;
	}
	/* SNMP (stats.h): the binding's group; codes also from replies without one (5.0.0). */
	if (result == DL_DELIVERED) {
		sl_group_add(job->group, SL_GS_TRANSMITTED_RCPTS, 1);
		sl_group_touch(job->group, false);
	} else {
		sl_group_add(job->group,
			     result == DL_TRANSIENT ? SL_GS_TRANSIENT_RCPTS : SL_GS_FAILED_RCPTS,
			     1);
		sl_group_error_reply(job->group, code, enhanced);
	}
	if (result != DL_TRANSIENT)
		dl_job_rcpt_final(job);
	if (result == DL_DELIVERED) {
		m->rcpts[r].status = SL_RCPT_DELIVERED;
		sl_eclog_outcome(m, SL_ECLOG_DELIVERED, job->domain, sl_msg_size(m) - m->skip_len,
				 stage, job->retries, ip, response, now);
		sl_counter_add(dl_ctr_delivered, 1);
		dl_progress(dt, m, r, SL_RCPT_DELIVERED);
		return;
	}
	if (result == DL_TRANSIENT) {
		sl_eclog_outcome(m, SL_ECLOG_TRANSIENT, job->domain, 0, stage, job->retries, ip,
				 response, now);
		sl_counter_add(dl_ctr_transient, 1);
		return;
	}
	m->rcpts[r].status = SL_RCPT_FAILED;
	sl_eclog_outcome(m, SL_ECLOG_PERMANENT, job->domain, 0, stage, job->retries, ip, response,
			 now);
	sl_counter_add(dl_ctr_failed, 1);
	dl_progress(dt, m, r, SL_RCPT_FAILED);
	{
		struct sl_buf line = SL_BUF_INIT;
		struct sl_bounce_log bl = {
			.when = now,
			.qid = m->qid,
			.conn_id = m->conn_id,
			.rcpt = m->rcpts[r].addr,
			.sender = m->sender,
			.binding_group = m->binding_group,
			.binding = m->binding,
			.stage = stage,
			.class_code = sl_bounce_classify(
				dl_bounce_rules(dt),
				&(struct sl_bounce_reply){ .text = response,
							   .code = code,
							   .enhanced = enhanced ? enhanced : "",
							   .domain = job->domain,
							   .cause = causes[result] },
				NULL),
			.size = sl_msg_size(m),
			.ip = ip,
			.text = response,
		};

		sl_bounce_log_format(&bl, &line);
		sl_eclog_bounce_line(line.data, line.len);
		sl_buf_free(&line);
	}
	/* The DSN is built when the job settles: one per message and domain. */
	job->fail = sl_reallocarray(job->fail, job->fail_cnt + 1, sizeof(*job->fail));
	{
		struct dl_failure *f = &job->fail[job->fail_cnt++];

		memset(f, 0, sizeof(*f));
		f->rcpt = r;
		f->code = code;
		snprintf(f->enhanced, sizeof(f->enhanced), "%s", enhanced ? enhanced : "");
		/* An SMTP diagnostic is the whole reply (RFC 3464 §2.3.6); ours is the text. */
		f->text = sl_strdup(ip != NULL && ip[0] != '\0' ? response : text ? text : "");
		snprintf(f->ip, sizeof(f->ip), "%s", ip ? ip : "");
	}
}

/* Drop the recipients that are final from the job; true when none is left. */
static bool
dl_job_compact(struct dl_job *job)
{
	size_t n = 0;

	for (size_t i = 0; i < job->rcpt_cnt; i++)
		if (job->msg->rcpts[job->rcpt_idx[i]].status == SL_RCPT_PENDING)
			job->rcpt_idx[n++] = job->rcpt_idx[i];
	job->rcpt_cnt = n;
	return n == 0;
}

static void
dl_job_bounce_and_forget(struct dl_thread *dt, struct dl_job *job)
{
	dl_bounce(dt, job);
	for (size_t i = 0; i < job->fail_cnt; i++)
		sl_free(job->fail[i].text);
	sl_free(job->fail);
	job->fail = NULL;
	job->fail_cnt = 0;
}

/*
 * max_retries = auto: the retries the back-off schedule makes within
 * Message_Expiration (conf.ref.max_retries): the waits dl_job_delay() makes
 * (Retry_Interval, doubled after each failure, at most max_retry_interval),
 * the last one when the message is due to expire.  So on schedule, auto
 * fails a message when Message_Expiration would; retries forced early
 * (`flush domain`) use the count up sooner.  UINT_MAX when nothing expires.
 */
static unsigned
dl_auto_retries(int64_t retry_interval, int64_t max_interval, int64_t expiration)
{
	int64_t t = 0;
	unsigned n = 0;

	if (expiration <= 0)
		return UINT_MAX;
	while (t < expiration && n < UINT_MAX - 1)
		t += (int64_t)dl_retry_wait_s(retry_interval, max_interval, ++n, expiration, t);
	return n; /* the last is the retry at expiry */
}

/* Is the job past Message_Expiration or max_retries?  Sets `why`. */
static bool
dl_job_expired(struct dl_thread *dt, const struct dl_job *job, char *why, size_t why_len)
{
	struct sl_conf_where w = { job->msg->binding, job->domain, NULL };
	const union sl_conf_val *exp = sl_conf_eval(dt->snap, SL_OPT_MESSAGE_EXPIRATION, &w);
	const union sl_conf_val *max = sl_conf_eval(dt->snap, SL_OPT_MAX_RETRIES, &w);
	const union sl_conf_val *ri = sl_conf_eval(dt->snap, SL_OPT_RETRY_INTERVAL, &w);
	const union sl_conf_val *rmax = sl_conf_eval(dt->snap, SL_OPT_MAX_RETRY_INTERVAL, &w);
	uint64_t age_s = (uint64_t)(time(NULL) - job->msg->received);
	unsigned limit = UINT_MAX;

	if (exp != NULL && exp->i > 0 && age_s >= (uint64_t)exp->i) {
		snprintf(why, why_len, "exceeded max time without delivery (%" PRIu64 " s)", age_s);
		return true;
	}
	/*
	 * A number caps the retries: the attempt that was retry number
	 * max_retries was the last.  "none" leaves it to Message_Expiration.
	 */
	if (max != NULL && max->iw.word == NULL)
		limit = max->iw.i > UINT_MAX ? UINT_MAX : (unsigned)max->iw.i;
	else if (max != NULL && strcasecmp(max->iw.word, "auto") == 0)
		limit = dl_auto_retries(ri != NULL ? ri->i : 1200, rmax != NULL ? rmax->i : 0,
					exp != NULL ? exp->i : 0);
	if (job->retries >= limit) {
		snprintf(why, why_len, "exceeded max retries (%u)", job->retries);
		return true;
	}
	return false;
}

void
dl_job_settle(struct dl_thread *dt, struct dl_job *job)
{
	char why[160];

	if (!dl_job_compact(job) && dl_job_expired(dt, job, why, sizeof(why))) {
		/* Give up on what is left: permanent failures with the reason. */
		for (size_t i = 0; i < job->rcpt_cnt; i++)
			dl_outcome(dt, job, i, 554, "5.4.7", why, "", DL_STAGE_UNKNOWN,
				   DL_FAILED_TIMEOUT);
		dl_job_compact(job);
	}
	dl_job_bounce_and_forget(dt, job);
	if (job->rcpt_cnt > 0) {
		dl_job_delay(dt, job);
		return;
	}
	/* Every recipient of this job is final; the last job finishes the message. */
	if (__atomic_sub_fetch(&job->msg->jobs_left, 1, __ATOMIC_ACQ_REL) == 0)
		dl_progress(dt, job->msg, UINT32_MAX, SL_RCPT_DELIVERED);
	sl_msg_unref(job->msg);
	dl_job_free(job);
}

/* ------------------------------------------------------------ the stage */

/*
 * A reload's new snapshot waits here while a libuv worker reads its
 * Resolv_Conf (file I/O stays off the loop); then the loop takes the
 * snapshot and, when the resolver configuration or min_dns_ttl changed, a
 * new resolver, together: the queues route again with the new generation,
 * through the new resolver.
 */
struct dl_dns_reload {
	uv_work_t req;                 /* data: this */
	struct dl_thread *dt;          /* borrowed: the loop thread waiting */
	struct sl_conf_snapshot *snap; /* a reference, handed to dt->snap */
	char *path;                    /* owned: the snapshot's Resolv_Conf, or NULL */
	struct sl_dns_conf conf;       /* what the worker read */
	int rc;                        /* of sl_dns_conf_load */
	char why[256];
};

/* A replaced resolver, so that its close finds the thread. */
struct dl_dns_old {
	struct dl_thread *dt;
	struct sl_dns *dns;
};

static void
dl_snapshot_adopt(struct dl_thread *dt, struct sl_conf_snapshot *s)
{
	sl_conf_snapshot_put(dt->snap);
	dt->snap = s;
}

static void
dl_dns_old_closed(void *arg)
{
	struct dl_dns_old *old = arg;

	old->dt->dns_old_cnt--;
	if (old->dt->dns_old == old->dns)
		old->dt->dns_old = NULL;
	sl_free(old);
}

static void
dl_dns_reload_work(uv_work_t *req)
{
	struct dl_dns_reload *r = req->data;

	r->rc = sl_dns_conf_load(r->path, &r->conf, r->why, sizeof(r->why));
}

/* Same file, same content, same min_dns_ttl: the running resolver stays (and its cache). */
static bool
dl_dns_unchanged(const struct dl_thread *dt, const struct dl_dns_reload *r, uint32_t min_ttl)
{
	bool same_path = (dt->dns_path == NULL) == (r->path == NULL) &&
			 (r->path == NULL || strcmp(dt->dns_path, r->path) == 0);

	return same_path && min_ttl == dt->dns_min_ttl &&
	       memcmp(dt->dns_conf, &r->conf, sizeof(r->conf)) == 0;
}

static void
dl_dns_reload_done(uv_work_t *req, int status)
{
	struct dl_dns_reload *r = req->data;
	struct dl_thread *dt = r->dt;
	uint32_t min_ttl = (uint32_t)sl_conf_int(r->snap, SL_OPT_MIN_DNS_TTL);
	struct sl_dns_opts opts = { .resolv_conf = r->path, .min_ttl = min_ttl };
	struct sl_dns *d;
	char why[256];

	dt->dns_reload = NULL;
	if (status != 0 || dt->is_stopping) {
		sl_conf_snapshot_put(r->snap);
		goto out;
	}
	if (r->rc != 0) {
		/* -t read it; it changed since.  Mail goes on with what the resolver had. */
		sl_log_err("delivery: the resolver keeps its configuration: %s", r->why);
	} else if (!dl_dns_unchanged(dt, r, min_ttl)) {
		d = sl_dns_new_conf(dt->loop, &opts, &r->conf, why, sizeof(why));
		if (d == NULL) {
			sl_log_err("delivery: the resolver keeps its configuration: %s", why);
		} else {
			struct dl_dns_old *old = SL_NEW(old);

			/* One replaced resolver at a time: an older one stops waiting. */
			if (dt->dns_old != NULL)
				sl_dns_close(dt->dns_old, NULL, NULL);
			old->dt = dt;
			old->dns = dt->dns;
			dt->dns_old = dt->dns;
			dt->dns_old_cnt++;
			sl_dns_retire(dt->dns, dl_dns_old_closed, old);
			dt->dns = d;
			*dt->dns_conf = r->conf;
			sl_free(dt->dns_path);
			dt->dns_path = r->path;
			r->path = NULL;
			dt->dns_min_ttl = min_ttl;
			sl_log_info("delivery: resolver reconfigured from %s (min_dns_ttl %" PRIu32
				    ")",
				    sl_dns_conf_path(dt->dns_path), min_ttl);
		}
	}
	dl_snapshot_adopt(dt, r->snap);
out:
	sl_free(r->path);
	sl_free(r);
}

/* Keep the thread's configuration reference current (options apply to the next attempt). */
static void
dl_refresh_snapshot(struct dl_thread *dt)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	struct dl_dns_reload *r;
	const char *path;

	if (s == NULL)
		return;
	if ((dt->snap != NULL && dt->snap->generation == s->generation) || dt->dns_reload != NULL ||
	    dt->is_stopping) {
		/* Nothing new, or a reload in progress (the next tick looks again). */
		sl_conf_snapshot_put(s);
		return;
	}
	if (dt->dns == NULL) {
		dl_snapshot_adopt(dt, s); /* the thread starts: its resolver follows */
		return;
	}
	r = SL_NEW(r);
	r->req.data = r;
	r->dt = dt;
	r->snap = s;
	path = sl_conf_str(s, SL_OPT_RESOLV_CONF);
	r->path = path != NULL ? sl_strdup(path) : NULL;
	dt->dns_reload = r;
	if (uv_queue_work(dt->loop, &r->req, dl_dns_reload_work, dl_dns_reload_done) != 0) {
		dt->dns_reload = NULL;
		dl_snapshot_adopt(dt, s);
		sl_free(r->path);
		sl_free(r);
	}
}

static void
dl_tick_cb(uv_timer_t *t)
{
	dl_refresh_snapshot(t->data);
}

static int
dl_thread_init(struct sl_thread *t)
{
	struct dl_thread *dt = SL_NEW(dt);
	struct sl_dns_opts opts = { 0 };
	const char *path;
	char why[256];

	dt->magic = DL_THREAD_MAGIC;
	dt->t = t;
	dt->loop = sl_thread_loop(t);
	dt->spool = sl_stage_find("spool");
	dt->deliver = sl_stage_find("deliver");
	SL_ASSERT(dt->spool != NULL && dt->deliver != NULL);
	if (gethostname(dt->hostname, sizeof(dt->hostname) - 1) != 0)
		snprintf(dt->hostname, sizeof(dt->hostname), "localhost");
	dl_refresh_snapshot(dt);
	SL_ASSERT(dt->snap != NULL);
	path = sl_conf_str(dt->snap, SL_OPT_RESOLV_CONF);
	dt->dns_path = path != NULL ? sl_strdup(path) : NULL;
	dt->dns_min_ttl = (uint32_t)sl_conf_int(dt->snap, SL_OPT_MIN_DNS_TTL);
	dt->dns_conf = SL_NEW(dt->dns_conf);
	opts.resolv_conf = dt->dns_path;
	opts.min_ttl = dt->dns_min_ttl;
	/* At the thread's start the file is read here; reloads read it off the loop. */
	if (sl_dns_conf_load(dt->dns_path, dt->dns_conf, why, sizeof(why)) == 0)
		dt->dns = sl_dns_new_conf(dt->loop, &opts, dt->dns_conf, why, sizeof(why));
	if (dt->dns == NULL) {
		sl_log_err("delivery: cannot start the resolver: %s", why);
		sl_conf_snapshot_put(dt->snap);
		sl_free(dt->dns_conf);
		sl_free(dt->dns_path);
		sl_free(dt);
		return -EINVAL;
	}
	uv_timer_init(dt->loop, &dt->tick_timer);
	dt->tick_timer.data = dt;
	uv_timer_start(&dt->tick_timer, dl_tick_cb, 1000, 1000);
	dt->dns_open = true;
	dl_sched_init(dt);
	sl_thread_set_data(t, dt);
	return 0;
}

static void
dl_spooled(struct dl_thread *dt, struct sl_msg *m)
{
	if (m->spool_result != 0) {
		/* A bounce that could not be made durable: say so, loudly. */
		sl_log_crit("a bounce to <%s> could not be spooled (%s); it is lost",
			    m->rcpts[0].addr, strerror(-m->spool_result));
		sl_msg_free(m);
		return;
	}
	dl_message(dt, m);
}

/* Close the connections of a queue: all of them (arg != NULL), or those without a transaction. */
static void
dl_quiesce_conns(struct sl_hnode *n, void *arg)
{
	struct dl_queue *q = (struct dl_queue *)n;
	struct dl_conn *c = q->conns;

	while (c != NULL) {
		struct dl_conn *next = c->next;

		if (arg != NULL)
			dl_conn_close(c, false);
		else if (c->job == NULL)
			dl_conn_close(c, true);
		c = next;
	}
}

void
dl_drained(struct dl_thread *dt)
{
	if (!dt->is_draining)
		return;
	dt->is_draining = false;
	__atomic_add_fetch(&dl_quiesce_acks, 1, __ATOMIC_RELEASE);
}

/*
 * Stop delivering: no transaction starts any more; idle connections say
 * QUIT; a transaction in flight may finish (its outcome reaches the spool,
 * so it is not sent again after a restart).  The thread reports drained
 * when its last connection is gone.
 */
static void
dl_quiesce(struct dl_thread *dt)
{
	dt->is_stopping = true;
	dt->is_draining = true;
	sl_htable_foreach(&dt->queues, dl_quiesce_conns, NULL);
	if (dt->conn_open == 0)
		dl_drained(dt);
}

/* The drain ran out of time: close every connection now; jobs stay in the spool. */
static void
dl_abort(struct dl_thread *dt)
{
	dt->is_stopping = true;
	dt->is_draining = false;
	sl_htable_foreach(&dt->queues, dl_quiesce_conns, dt);
	__atomic_add_fetch(&dl_abort_acks, 1, __ATOMIC_RELEASE);
}

/* After dl_quiesce nothing is delivered: what still arrives is dropped (it is in the spool). */
static void
dl_drop(struct sl_event *ev)
{
	if (ev->type == SL_EV_DELIVER_JOB) {
		struct dl_job *job = (struct dl_job *)ev;

		sl_msg_unref(job->msg);
		dl_job_free(job);
	} else if (ev->type == SL_MSG_EV_QUEUED || ev->type == SL_MSG_EV_SPOOLED) {
		sl_msg_unref((struct sl_msg *)ev);
	} else {
		sl_free(ev);
	}
}

static void
dl_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct dl_thread *dt = sl_thread_data(t);

	SL_CHECK_OBJ(dt, DL_THREAD_MAGIC);
	if (ev->type == DL_EV_QUIESCE || ev->type == DL_EV_ABORT) {
		bool is_abort = ev->type == DL_EV_ABORT;

		sl_free(ev);
		if (is_abort)
			dl_abort(dt);
		else
			dl_quiesce(dt);
		return;
	}
	if (dt->is_stopping) {
		dl_drop(ev);
		return;
	}
	switch (ev->type) {
	case SL_MSG_EV_QUEUED:
		dl_message(dt, (struct sl_msg *)ev);
		break;
	case SL_MSG_EV_SPOOLED:
		dl_spooled(dt, (struct sl_msg *)ev);
		break;
	case SL_EV_DELIVER_JOB:
		SL_CHECK_OBJ((struct dl_job *)ev, DL_JOB_MAGIC);
		dl_queue_add(dt, (struct dl_job *)ev);
		break;
	default:
		SL_ASSERT(!"deliver stage: unexpected event");
	}
}

static void
dl_dns_closed(void *arg)
{
	struct dl_thread *dt = arg;

	dt->dns_open = false;
}

static void
dl_thread_fini(struct sl_thread *t)
{
	struct dl_thread *dt = sl_thread_data(t);
	dt->is_stopping = true;
	/* A reload reading Resolv_Conf ends first (its worker needs no cancel). */
	while (dt->dns_reload != NULL)
		uv_run(dt->loop, UV_RUN_ONCE);
	/* The resolvers next: their callbacks (cancelled lookups) still find their queues. */
	sl_dns_close(dt->dns, dl_dns_closed, dt);
	if (dt->dns_old != NULL)
		sl_dns_close(dt->dns_old, NULL, NULL);
	while (dt->dns_open || dt->dns_old_cnt > 0)
		uv_run(dt->loop, UV_RUN_NOWAIT);
	sl_free(dt->dns_conf);
	sl_free(dt->dns_path);
	dl_sched_fini(dt);
	/* The runtime runs the loop until this close (and the timers') is done. */
	uv_close((uv_handle_t *)&dt->tick_timer, NULL);
	dl_bounce_rules_drop(dt);
	sl_conf_snapshot_put(dt->snap);
	dt->magic = 0;
	sl_free(dt);
}

/* Send `type` to every delivery thread; wait until `acks` reaches their count. */
static bool
dl_tell_all(unsigned type, unsigned *acks, unsigned timeout_ms)
{
	unsigned cnt = sl_stage_thread_cnt(dl_stage);
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	__atomic_store_n(acks, 0, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < cnt; i++) {
		struct sl_event *ev = SL_NEW(ev);

		sl_event_init(ev, type);
		sl_send_thread(sl_stage_thread(dl_stage, i), ev);
	}
	for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
		if (__atomic_load_n(acks, __ATOMIC_ACQUIRE) == cnt)
			return true;
		nanosleep(&ts, NULL);
	}
	return __atomic_load_n(acks, __ATOMIC_ACQUIRE) == cnt;
}

void
sl_deliver_quiesce(unsigned timeout_ms)
{
	if (dl_tell_all(DL_EV_QUIESCE, &dl_quiesce_acks, timeout_ms))
		return;
	sl_log_notice("delivery: transactions still in flight after %u ms; closing them (their "
		      "messages stay queued)",
		      timeout_ms);
	dl_tell_all(DL_EV_ABORT, &dl_abort_acks, 2000);
}

/* ------------------------------------------------------------ configuration checks */

/* One Routes item, as dl_route will parse it (its position only sets a default pref). */
static int
dl_check_route(const char *text, char *why, size_t why_len)
{
	struct sl_dns_route r;

	return sl_dns_route_parse(text, 0, &r, why, why_len);
}

static int
dl_check_gateway(const char *text, char *why, size_t why_len)
{
	struct sl_dns_route r;

	return sl_dns_gateway_parse(text, &r, why, why_len);
}

/* The file must be there and name a usable nameserver, or the stage cannot start. */
static int
dl_check_resolv_conf(const char *text, char *why, size_t why_len)
{
	struct sl_dns_conf *c = SL_NEW(c);
	int rc = sl_dns_conf_load(text, c, why, why_len);

	sl_free(c);
	return rc;
}

void
sl_deliver_conf_checks(void)
{
	sl_conf_check_set(SL_OPT_ROUTES, dl_check_route);
	sl_conf_check_set(SL_OPT_GATEWAY, dl_check_gateway);
	sl_conf_check_set(SL_OPT_RESOLV_CONF, dl_check_resolv_conf);
}

void
sl_deliver_init(struct sl_stage *st)
{
	dl_stage = st;
	dl_ctr_delivered = sl_counter_register("deliver.delivered");
	dl_ctr_transient = sl_counter_register("deliver.transient");
	dl_ctr_failed = sl_counter_register("deliver.failed");
	dl_ctr_bounces = sl_counter_register("deliver.bounces");
	dl_ctr_queued = sl_counter_register("deliver.queued");
	dl_sched_counters();
}

unsigned
sl_deliver_thread_cnt(const struct sl_conf_snapshot *s)
{
	size_t pos = 0;
	const struct sl_conf_block *b;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	/* ThreadPool "Deliver" { Concurrency = N }; else one loop per CPU. */
	while ((b = sl_conf_block_next(s, "ThreadPool", &pos)) != NULL) {
		if (b->name != NULL && strcasecmp(b->name, "Deliver") == 0) {
			const union sl_conf_val *v =
				sl_conf_block_get(s, b, SL_OPT_THREADPOOL_CONCURRENCY);

			return v != NULL && v->i > 0 ? (unsigned)v->i : 1;
		}
	}
	return n > 0 ? (unsigned)n : 1;
}

const struct sl_stage_def sl_deliver_stage = {
	.name = "deliver",
	.kind = SL_STAGE_LOOP,
	.batch_max = 64,
	.peers = (const char *const[]){ "deliver", "spool", NULL },
	.thread_init = dl_thread_init,
	.handle = dl_handle,
	.thread_fini = dl_thread_fini,
};
