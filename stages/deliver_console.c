/*
 * stages/deliver_console.c - the console commands the delivery stage answers.
 *
 * Queues belong to the delivery loop threads (deliver_int.h), so a console
 * command about them runs on every delivery thread through sl_gather: each
 * thread looks at (or acts on) its own queues and writes its part; the
 * control thread then merges the parts into one reply.  A domain's queues
 * all live on one thread (dl_owner hashes the domain), so a domain command
 * finds it on exactly one; a message split over domains may have jobs on
 * several.
 *
 *   active N, delayed N          domains whose active (delayed) queue
 *                                exceeds N, and the totals
 *   showqueue [binding B|all] D [limit,offset]   the messages queued for D
 *   mailq [limit[,offset]]       every queued message
 *   domain D                     routes, queues, counts and connections of D
 *   flush domain D|all           delayed messages of D due now
 *   fail domain [quiet] D        fail what is queued for D (bounces unless quiet)
 *   suspend domain D, resume domain D
 *   message details [full|body] ID, message fail [quiet] ID, message retry ID
 *   show outbound                every outbound connection
 *
 * A transaction in flight is never interrupted: fail and retry leave its
 * job alone and say so.  `message details body|full` reads the message from
 * the spool on the control thread's libuv work pool (never on a loop).
 *
 * Threads: sl_deliver_console and the merge run on the control stage's
 * loop thread; dlc_run on each delivery thread, writing only its own part.
 * Parses untrusted input: console arguments (bounded by the console's line
 * limit).  Ownership: the query is the gather's argument, freed after done.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "engine/log.h"
#include "spool/spool.h"
#include "stages/deliver_int.h"
#include "stages/stages.h"

#define DLC_SHOW_DEFAULT 100    /* showqueue and mailq: entries shown by default */
#define DLC_REC          '\036' /* ends one entry of a part (record separator) */

enum dlc_kind {
	DLC_ACTIVE,
	DLC_DELAYED,
	DLC_SHOWQUEUE,
	DLC_MAILQ,
	DLC_DOMAIN,
	DLC_FLUSH,
	DLC_FAIL,
	DLC_SUSPEND,
	DLC_RESUME,
	DLC_DETAILS,
	DLC_MSG_FAIL,
	DLC_MSG_RETRY,
	DLC_OUTBOUND,
};

/* One delivery thread's answer. */
struct dlc_part {
	struct sl_buf text; /* rows or entries (DLC_REC-terminated where merged) */
	struct sl_buf head; /* message details: the message's own lines */
	uint64_t n[4];      /* kind-specific counts */
	struct sl_spool_loc loc;
	bool has_loc;
};

struct dlc_query {
	enum dlc_kind kind;
	char domain[256];  /* lower case; "" with is_all */
	char binding[128]; /* showqueue: "" = every binding */
	char qid[64];
	bool is_all;
	bool is_quiet;
	int details; /* 0 metadata, 1 body, 2 both */
	uint64_t threshold;
	size_t limit, offset;
	unsigned part_cnt;
	struct dlc_part *parts;
	void (*done)(void *arg, bool is_ok, const char *text);
	void *arg;
	/* message details body: the spool read */
	uv_work_t work;
	struct sl_spool_loc loc;
	struct sl_msg *got;
	int read_err;
	struct sl_buf out;
};

/* ------------------------------------------------------------ parsing */

static bool
dlc_domain_arg(struct dlc_query *q, const char *arg, bool can_all, struct sl_buf *err)
{
	size_t len = strlen(arg);

	if (can_all && strcasecmp(arg, "all") == 0) {
		q->is_all = true;
		return true;
	}
	if (len == 0 || len >= sizeof(q->domain)) {
		sl_buf_printf(err, "not a domain name: \"%s\"\n", arg);
		return false;
	}
	for (size_t i = 0; i <= len; i++)
		q->domain[i] = (char)tolower((unsigned char)arg[i]);
	if (q->domain[len - 1] == '.')
		q->domain[len - 1] = '\0';
	return true;
}

static bool
dlc_number(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

/* "limit" or "limit,offset" */
static bool
dlc_window(struct dlc_query *q, const char *s)
{
	char buf[64], *comma;
	uint64_t l, o = 0;

	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	comma = strchr(buf, ',');
	if (comma != NULL) {
		*comma = '\0';
		if (!dlc_number(comma + 1, &o))
			return false;
	}
	if (!dlc_number(buf, &l))
		return false;
	q->limit = (size_t)l;
	q->offset = (size_t)o;
	return true;
}

/*
 * Which command argv is: 1 (q filled), 0 (not one of ours), -1 (ours but
 * malformed: usage in err).
 */
static int
dlc_parse(int argc, char **argv, struct dlc_query *q, struct sl_buf *err)
{
	const char *a0 = argv[0];
	int i;

	q->limit = DLC_SHOW_DEFAULT;
	if (strcasecmp(a0, "active") == 0 || strcasecmp(a0, "delayed") == 0) {
		q->kind = strcasecmp(a0, "active") == 0 ? DLC_ACTIVE : DLC_DELAYED;
		if (argc > 2 || (argc == 2 && !dlc_number(argv[1], &q->threshold))) {
			sl_buf_printf(err, "usage: %s [threshold]\n", a0);
			return -1;
		}
		return 1;
	}
	if (strcasecmp(a0, "showqueue") == 0) {
		q->kind = DLC_SHOWQUEUE;
		snprintf(q->binding, sizeof(q->binding), "default");
		i = 1;
		if (argc >= 3 && strcasecmp(argv[1], "binding") == 0) {
			if (strcasecmp(argv[2], "all") == 0)
				q->binding[0] = '\0';
			else if (strlen(argv[2]) < sizeof(q->binding))
				snprintf(q->binding, sizeof(q->binding), "%s", argv[2]);
			i = 3;
		}
		if (argc - i < 1 || argc - i > 2 || !dlc_domain_arg(q, argv[i], false, err) ||
		    (argc - i == 2 && !dlc_window(q, argv[i + 1]))) {
			sl_buf_puts(err,
				    "usage: showqueue [binding NAME|all] DOMAIN [limit,offset]\n");
			return -1;
		}
		return 1;
	}
	if (strcasecmp(a0, "mailq") == 0) {
		q->kind = DLC_MAILQ;
		if (argc > 2 || (argc == 2 && !dlc_window(q, argv[1]))) {
			sl_buf_puts(err, "usage: mailq [limit[,offset]]\n");
			return -1;
		}
		return 1;
	}
	if (strcasecmp(a0, "domain") == 0) {
		q->kind = DLC_DOMAIN;
		if (argc != 2 || !dlc_domain_arg(q, argv[1], false, err)) {
			sl_buf_puts(err, "usage: domain DOMAIN\n");
			return -1;
		}
		return 1;
	}
	if (argc >= 2 && strcasecmp(argv[1], "domain") == 0 &&
	    (strcasecmp(a0, "flush") == 0 || strcasecmp(a0, "fail") == 0 ||
	     strcasecmp(a0, "suspend") == 0 || strcasecmp(a0, "resume") == 0)) {
		const char *name = NULL;

		q->kind = strcasecmp(a0, "flush") == 0     ? DLC_FLUSH
			  : strcasecmp(a0, "fail") == 0    ? DLC_FAIL
			  : strcasecmp(a0, "suspend") == 0 ? DLC_SUSPEND
							   : DLC_RESUME;
		/* fail domain [quiet] D, and fail domain D quiet */
		for (i = 2; i < argc; i++) {
			if (q->kind == DLC_FAIL && strcasecmp(argv[i], "quiet") == 0 &&
			    !q->is_quiet && (name == NULL || i == argc - 1))
				q->is_quiet = true;
			else if (name == NULL)
				name = argv[i];
			else
				name = "";
		}
		if (name == NULL || name[0] == '\0' ||
		    !dlc_domain_arg(q, name, q->kind == DLC_FLUSH, err)) {
			sl_buf_printf(err, "usage: %s domain %sDOMAIN%s\n", a0,
				      q->kind == DLC_FAIL ? "[quiet] " : "",
				      q->kind == DLC_FLUSH ? "|all" : "");
			return -1;
		}
		return 1;
	}
	if (argc >= 2 && strcasecmp(a0, "message") == 0 &&
	    (strcasecmp(argv[1], "details") == 0 || strcasecmp(argv[1], "fail") == 0 ||
	     strcasecmp(argv[1], "retry") == 0)) {
		const char *sub = argv[1];

		q->kind = strcasecmp(sub, "details") == 0 ? DLC_DETAILS
			  : strcasecmp(sub, "fail") == 0  ? DLC_MSG_FAIL
							  : DLC_MSG_RETRY;
		i = 2;
		if (q->kind == DLC_DETAILS && argc == 4) {
			if (strcasecmp(argv[2], "body") == 0)
				q->details = 1;
			else if (strcasecmp(argv[2], "full") == 0)
				q->details = 2;
			else
				i = argc; /* malformed */
			i++;
		} else if (q->kind == DLC_MSG_FAIL && argc == 4 &&
			   strcasecmp(argv[2], "quiet") == 0) {
			q->is_quiet = true;
			i++;
		}
		if (argc != i + 1 || strlen(argv[i]) >= sizeof(q->qid)) {
			sl_buf_printf(err, "usage: message %s\n",
				      q->kind == DLC_DETAILS    ? "details [full|body] ID"
				      : q->kind == DLC_MSG_FAIL ? "fail [quiet] ID"
								: "retry ID");
			return -1;
		}
		snprintf(q->qid, sizeof(q->qid), "%s", argv[i]);
		return 1;
	}
	if (argc == 2 && strcasecmp(a0, "show") == 0 && strcasecmp(argv[1], "outbound") == 0) {
		q->kind = DLC_OUTBOUND;
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ on a delivery thread */

/*
 * The thread's queues that match (a copy: actions may change the table),
 * by domain then binding, each with its delayed jobs (a copy, in
 * next-attempt order), found in one pass over the delay heap.
 */
struct dlc_pick {
	const struct dlc_query *q;
	struct dl_queue **v;
	size_t cnt, cap;
	struct dlc_jobv {
		struct dl_job **v;
		size_t cnt, cap;
	} * delayed; /* per picked queue */
};

static void
dlc_push(void ***v, size_t *cnt, size_t *cap, void *x)
{
	if (*cnt == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = sl_reallocarray(*v, *cap, sizeof(**v));
	}
	(*v)[(*cnt)++] = x;
}

static bool
dlc_queue_matches(const struct dlc_query *q, const struct dl_queue *dq)
{
	if (q->kind == DLC_SHOWQUEUE && q->binding[0] != '\0' &&
	    strcasecmp(q->binding, dq->binding) != 0)
		return false;
	return q->is_all || q->domain[0] == '\0' || strcmp(q->domain, dq->domain) == 0;
}

static void
dlc_pick_cb(struct sl_hnode *n, void *arg)
{
	struct dlc_pick *p = arg;
	struct dl_queue *dq = (struct dl_queue *)n;

	dq->console_slot = 0;
	if (dlc_queue_matches(p->q, dq))
		dlc_push((void ***)&p->v, &p->cnt, &p->cap, dq);
}

static int
dlc_queue_cmp(const void *a, const void *b)
{
	const struct dl_queue *x = *(struct dl_queue *const *)a, *y = *(struct dl_queue *const *)b;
	int c = strcmp(x->domain, y->domain);

	return c != 0 ? c : strcmp(x->binding, y->binding);
}

static int
dlc_job_cmp(const void *a, const void *b)
{
	const struct dl_job *x = *(struct dl_job *const *)a, *y = *(struct dl_job *const *)b;

	return x->next_attempt_ms < y->next_attempt_ms ? -1
						       : x->next_attempt_ms > y->next_attempt_ms;
}

static void
dlc_pick(struct dl_thread *dt, const struct dlc_query *q, struct dlc_pick *p)
{
	memset(p, 0, sizeof(*p));
	p->q = q;
	sl_htable_foreach(&dt->queues, dlc_pick_cb, p);
	if (p->cnt > 1)
		qsort(p->v, p->cnt, sizeof(*p->v), dlc_queue_cmp);
	p->delayed = sl_calloc(p->cnt + 1, sizeof(*p->delayed));
	for (size_t k = 0; k < p->cnt; k++)
		p->v[k]->console_slot = k + 1;
	for (size_t i = 0; i < dt->delayed.cnt; i++) {
		struct dl_job *job = dt->delayed.v[i];
		size_t slot = job->q->console_slot;

		if (slot != 0) {
			struct dlc_jobv *jv = &p->delayed[slot - 1];

			dlc_push((void ***)&jv->v, &jv->cnt, &jv->cap, job);
		}
	}
	for (size_t k = 0; k < p->cnt; k++) {
		p->v[k]->console_slot = 0;
		if (p->delayed[k].cnt > 1)
			qsort(p->delayed[k].v, p->delayed[k].cnt, sizeof(*p->delayed[k].v),
			      dlc_job_cmp);
	}
}

static void
dlc_pick_free(struct dlc_pick *p)
{
	for (size_t k = 0; k < p->cnt; k++)
		sl_free(p->delayed[k].v);
	sl_free(p->delayed);
	sl_free(p->v);
}

static void
dlc_job_entry(struct sl_buf *b, const char *state, const struct dl_job *job)
{
	const struct sl_msg *m = job->msg;

	sl_buf_printf(b, "[%s/%s] %s Created: %lld\n  From: <%s> To:", state, job->q->binding,
		      m->qid, (long long)m->received, m->sender ? m->sender : "");
	for (size_t i = 0; i < job->rcpt_cnt; i++)
		sl_buf_printf(b, "%s <%s>", i ? "," : "", m->rcpts[job->rcpt_idx[i]].addr);
	sl_buf_printf(b, "\n%c", DLC_REC);
}

/* Whether the next entry is shown: `skip` entries first, then at most `cap`. */
static bool
dlc_take(size_t *seen, size_t *shown, size_t skip, size_t cap)
{
	if ((*seen)++ < skip || *shown >= cap)
		return false;
	(*shown)++;
	return true;
}

/*
 * showqueue and mailq: entries of the picked queues (in flight, active,
 * delayed), n[0] how many there are.  showqueue's domain lives on this
 * thread alone, so its window applies here; mailq's applies to all
 * threads' entries in the merge, so each sends its first offset+limit.
 */
static void
dlc_list(struct dl_thread *dt, const struct dlc_query *q, struct dlc_part *part)
{
	bool is_mailq = q->kind == DLC_MAILQ;
	size_t skip = is_mailq ? 0 : q->offset;
	size_t cap = is_mailq ? q->offset + q->limit : q->limit;
	size_t shown = 0, seen = 0;
	struct dlc_pick p;

	dlc_pick(dt, q, &p);
	for (size_t k = 0; k < p.cnt; k++) {
		struct dl_queue *dq = p.v[k];
		const struct dlc_jobv *dv = &p.delayed[k];

		for (struct dl_conn *c = dq->conns; c != NULL; c = c->next)
			if (c->job != NULL && dlc_take(&seen, &shown, skip, cap))
				dlc_job_entry(&part->text, "inflight", c->job);
		for (struct dl_job *job = dq->active_head; job != NULL; job = job->next)
			if (dlc_take(&seen, &shown, skip, cap))
				dlc_job_entry(&part->text, "active", job);
		for (size_t i = 0; i < dv->cnt; i++)
			if (dlc_take(&seen, &shown, skip, cap))
				dlc_job_entry(&part->text, "delayed", dv->v[i]);
	}
	part->n[0] = seen;
	dlc_pick_free(&p);
}

/* active/delayed: one row per queue, "domain\tC\tA\tD\tS\n"; merged per domain. */
static void
dlc_counts(struct dl_thread *dt, const struct dlc_query *q, struct dlc_part *part)
{
	struct dlc_pick p;

	dlc_pick(dt, q, &p);
	for (size_t k = 0; k < p.cnt; k++) {
		const struct dl_queue *dq = p.v[k];

		sl_buf_printf(&part->text, "%s\t%u\t%zu\t%zu\t%" PRIu64 "\n", dq->domain,
			      dq->conn_cnt, dq->active_cnt + dq->inflight_cnt, dq->delayed_cnt,
			      dq->delivered_cnt);
	}
	dlc_pick_free(&p);
}

static void
dlc_domain(struct dl_thread *dt, const struct dlc_query *q, struct dlc_part *part)
{
	struct dlc_pick p;
	uint64_t now = uv_now(dt->loop);
	struct sl_buf *b = &part->text;

	dlc_pick(dt, q, &p);
	for (size_t k = 0; k < p.cnt; k++) {
		const struct dl_queue *dq = p.v[k];
		unsigned n = 0;

		part->n[0]++;
		sl_buf_printf(b, "Domain '%s' (binding %s)%s\n", dq->domain, dq->binding,
			      dl_domain_is_suspended(dt, dq->domain) ? " [suspended]" : "");
		switch (dq->route_state) {
		case DL_ROUTE_NONE:
			sl_buf_puts(b, "  Routes: not looked up yet\n");
			break;
		case DL_ROUTE_PENDING:
			sl_buf_puts(b, "  Routes: being looked up\n");
			break;
		case DL_ROUTE_FAILED:
			sl_buf_printf(b, "  Routes: failed: %s\n", dq->route_why);
			break;
		case DL_ROUTE_OK:
			sl_buf_printf(b, "  Routes: %zu host%s", dq->target_cnt,
				      dq->target_cnt == 1 ? "" : "s");
			if (dq->route_expires_ms == UINT64_MAX)
				sl_buf_puts(b, " (configured)");
			else
				sl_buf_printf(b, ", kept %" PRIu64 " s more",
					      dq->route_expires_ms > now
						      ? (dq->route_expires_ms - now) / 1000
						      : 0);
			sl_buf_puts(b, dq->is_route_partial ? " (still resolving)\n" : "\n");
			break;
		}
		for (size_t t = 0; t < dq->target_cnt; t++) {
			const struct dl_target *tg = &dq->targets[t];

			sl_buf_printf(b, "    [%u %s]\n", tg->pref, tg->host);
			for (size_t a = 0; a < tg->addr_cnt; a++) {
				char addr[80];
				uint64_t until = dl_addr_retry_at(dt, &tg->addrs[a]);

				dl_addr_text(&tg->addrs[a], addr, sizeof(addr));
				if (until > 0)
					sl_buf_printf(b,
						      "      %s (failed; left alone %" PRIu64
						      " s more)\n",
						      addr, (until - now + 999) / 1000);
				else
					sl_buf_printf(b, "      %s\n", addr);
			}
		}
		sl_buf_printf(b, "  Consecutive connection failures: %u\n",
			      dq->consecutive_failures);
		sl_buf_printf(b,
			      "  Queue:\n    Active: %zu\n    In flight: %zu\n    Delayed: %zu\n",
			      dq->active_cnt, dq->inflight_cnt, dq->delayed_cnt);
		sl_buf_printf(b, "  Deliveries: %" PRIu64 "\n  Failures: %" PRIu64 "\n",
			      dq->delivered_cnt, dq->failed_cnt);
		sl_buf_printf(b, "  Active Connections: %u\n", dq->conn_cnt);
		for (const struct dl_conn *c = dq->conns; c != NULL; c = c->next)
			sl_buf_printf(b,
				      "  [%2u] IP: %s  Host: %s  State: %s (open %.2f s)  "
				      "Deliveries: %u\n",
				      ++n, c->ip, c->host, dl_conn_state(c),
				      (double)(now - c->started_ms) / 1000.0, c->deliveries);
	}
	dlc_pick_free(&p);
	/* Every thread keeps the suspension, so any may say it (the merge asks one). */
	part->n[2] = dl_domain_is_suspended(dt, q->domain);
}

/* Fail every pending recipient of a job taken off its queue (554, quiet: no DSN). */
static size_t
dlc_fail_job(struct dl_thread *dt, struct dl_job *job, const char *why, bool is_quiet)
{
	size_t n = job->rcpt_cnt;

	for (size_t i = 0; i < job->rcpt_cnt; i++)
		dl_outcome(dt, job, i, 554, "5.0.0", why, "", DL_STAGE_NOT_CONNECTED,
			   DL_FAILED_POLICY);
	if (is_quiet)
		job->is_dropped = true;
	dl_job_settle(dt, job);
	return n;
}

/* flush, fail: n[0] messages acted on, n[1] left alone (in flight or being read back). */
static void
dlc_domain_action(struct dl_thread *dt, const struct dlc_query *q, struct dlc_part *part)
{
	struct dlc_pick p;

	dlc_pick(dt, q, &p);
	for (size_t k = 0; k < p.cnt; k++) {
		struct dl_queue *dq = p.v[k];
		const struct dlc_jobv *dv = &p.delayed[k];

		for (size_t i = 0; i < dv->cnt; i++) {
			dl_job_undelay(dt, dv->v[i]);
			if (q->kind == DLC_FLUSH)
				dl_queue_add(dt, dv->v[i]);
			else
				dlc_fail_job(dt, dv->v[i], "Message manually purged.", q->is_quiet);
			part->n[0]++;
		}
		if (q->kind == DLC_FAIL) {
			struct dl_job *job = dq->active_head;

			while (job != NULL) {
				struct dl_job *next = job->next;

				if (dl_job_unqueue(dq, job)) {
					dlc_fail_job(dt, job, "Message manually purged.",
						     q->is_quiet);
					part->n[0]++;
				} else {
					part->n[1]++;
				}
				job = next;
			}
			part->n[1] += dq->inflight_cnt;
		}
	}
	dlc_pick_free(&p);
}

static void
dlc_suspend(struct dl_thread *dt, const struct dlc_query *q, struct dlc_part *part)
{
	struct dlc_pick p;

	dl_domain_suspend(dt, q->domain, q->kind == DLC_SUSPEND);
	dlc_pick(dt, q, &p);
	for (size_t k = 0; k < p.cnt; k++) {
		part->n[0] += p.v[k]->active_cnt + p.v[k]->delayed_cnt;
		if (q->kind == DLC_RESUME)
			dl_queue_run(p.v[k]);
	}
	dlc_pick_free(&p);
}

/* Every job of message q->qid on this thread: active, delayed and in flight. */
struct dlc_jobs {
	struct dl_job **v;
	const char **state;
	size_t cnt;
	const char *qid;
};

static void
dlc_jobs_add(struct dlc_jobs *j, struct dl_job *job, const char *state)
{
	/* A message has a job per destination domain: few. */
	j->v = sl_reallocarray(j->v, j->cnt + 1, sizeof(*j->v));
	j->state = sl_reallocarray(j->state, j->cnt + 1, sizeof(*j->state));
	j->v[j->cnt] = job;
	j->state[j->cnt++] = state;
}

static void
dlc_jobs_cb(struct sl_hnode *n, void *arg)
{
	struct dlc_jobs *j = arg;
	struct dl_queue *dq = (struct dl_queue *)n;

	for (struct dl_job *job = dq->active_head; job != NULL; job = job->next)
		if (strcmp(job->msg->qid, j->qid) == 0)
			dlc_jobs_add(j, job, "active");
	for (struct dl_conn *c = dq->conns; c != NULL; c = c->next)
		if (c->job != NULL && strcmp(c->job->msg->qid, j->qid) == 0)
			dlc_jobs_add(j, c->job, "inflight");
}

static void
dlc_jobs_find(struct dl_thread *dt, const char *qid, struct dlc_jobs *j)
{
	memset(j, 0, sizeof(*j));
	j->qid = qid;
	sl_htable_foreach(&dt->queues, dlc_jobs_cb, j);
	for (size_t i = 0; i < dt->delayed.cnt; i++)
		if (strcmp(dt->delayed.v[i]->msg->qid, qid) == 0)
			dlc_jobs_add(j, dt->delayed.v[i], "delayed");
}

static void
dlc_time(char *buf, size_t len, time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
dlc_message(struct dl_thread *dt, const struct dlc_query *q, struct dlc_part *part)
{
	struct dlc_jobs j;

	dlc_jobs_find(dt, q->qid, &j);
	for (size_t k = 0; k < j.cnt; k++) {
		struct dl_job *job = j.v[k];
		struct dl_queue *dq = job->q;
		const struct sl_msg *m = job->msg;
		bool is_delayed = strcmp(j.state[k], "delayed") == 0;
		bool is_inflight = strcmp(j.state[k], "inflight") == 0;

		switch (q->kind) {
		case DLC_DETAILS: {
			char when[32];

			if (part->head.len == 0) {
				dlc_time(when, sizeof(when), m->received);
				sl_buf_printf(&part->head,
					      "Message: %s\n"
					      "               Created: %s\n"
					      "          Received Via: %s %s\n"
					      "                Sender: %s\n"
					      "               Binding: %s\n"
					      "                  Size: %" PRIu64 "\n"
					      "            Recipients: %zu\n",
					      m->qid, when, m->protocol ? m->protocol : "esmtp",
					      m->peer_ip ? m->peer_ip : "",
					      m->sender ? m->sender : "",
					      m->binding ? m->binding : "default", sl_msg_size(m),
					      m->rcpt_cnt);
				part->loc = m->loc;
				part->has_loc = true;
			}
			sl_buf_printf(&part->text, "  Domain %s [%s/%s] Retries: %u", job->domain,
				      j.state[k], dq->binding, job->retries);
			if (is_delayed) {
				dlc_time(when, sizeof(when), (time_t)(job->next_attempt_ms / 1000));
				sl_buf_printf(&part->text, " Next Attempt: %s", when);
			}
			sl_buf_puts(&part->text, "\n");
			for (size_t i = 0; i < job->rcpt_cnt; i++)
				sl_buf_printf(&part->text, "             Recipient: %s\n",
					      m->rcpts[job->rcpt_idx[i]].addr);
			part->n[0]++;
			break;
		}
		case DLC_MSG_FAIL:
			if (is_inflight || (!is_delayed && !dl_job_unqueue(dq, job))) {
				part->n[1]++;
				break;
			}
			if (is_delayed)
				dl_job_undelay(dt, job);
			part->n[0] += dlc_fail_job(dt, job, "manually failed", q->is_quiet);
			break;
		case DLC_MSG_RETRY:
			if (!is_delayed) {
				part->n[1]++;
				break;
			}
			dl_job_undelay(dt, job);
			dl_queue_add(dt, job);
			part->n[0]++;
			break;
		default:
			break;
		}
	}
	sl_free(j.v);
	sl_free(j.state);
}

static void
dlc_outbound_cb(struct sl_hnode *n, void *arg)
{
	struct dl_queue *dq = (struct dl_queue *)n;
	struct dlc_part *part = arg;
	uint64_t now = uv_now(dq->dt->loop);

	for (const struct dl_conn *c = dq->conns; c != NULL; c = c->next) {
		uv_os_fd_t fd = -1;

		if (c->handles_open > 0)
			uv_fileno((const uv_handle_t *)&c->tcp, &fd);
		sl_buf_printf(&part->text, "%d: [outbound/%s] %s %s %s (%s, open %.2f s)\n%c",
			      (int)fd, dl_conn_state(c), dq->domain,
			      c->addr.ss_family == AF_INET6 ? "IPv6" : "IPv4", c->ip, c->host,
			      (double)(now - c->started_ms) / 1000.0, DLC_REC);
		part->n[0]++;
	}
}

static void
dlc_run(struct sl_thread *t, unsigned idx, void *arg)
{
	struct dl_thread *dt = sl_thread_data(t);
	struct dlc_query *q = arg;
	struct dlc_part *part = &q->parts[idx];

	SL_CHECK_OBJ(dt, DL_THREAD_MAGIC);
	/* Stopping: the queues are being taken apart; answer with nothing. */
	if (dt->is_stopping && q->kind != DLC_OUTBOUND)
		return;
	switch (q->kind) {
	case DLC_ACTIVE:
	case DLC_DELAYED:
		dlc_counts(dt, q, part);
		break;
	case DLC_SHOWQUEUE:
	case DLC_MAILQ:
		dlc_list(dt, q, part);
		break;
	case DLC_DOMAIN:
		dlc_domain(dt, q, part);
		break;
	case DLC_FLUSH:
	case DLC_FAIL:
		dlc_domain_action(dt, q, part);
		break;
	case DLC_SUSPEND:
	case DLC_RESUME:
		dlc_suspend(dt, q, part);
		break;
	case DLC_DETAILS:
	case DLC_MSG_FAIL:
	case DLC_MSG_RETRY:
		dlc_message(dt, q, part);
		break;
	case DLC_OUTBOUND:
		sl_htable_foreach(&dt->queues, dlc_outbound_cb, part);
		break;
	}
}

/* ------------------------------------------------------------ merging (control thread) */

struct dlc_row {
	char *domain; /* points into a part's text */
	uint64_t c, a, d, s;
};

static int
dlc_row_cmp(const void *x, const void *y)
{
	return strcmp(((const struct dlc_row *)x)->domain, ((const struct dlc_row *)y)->domain);
}

static void
dlc_merge_counts(struct dlc_query *q, struct sl_buf *out)
{
	struct dlc_row *rows = NULL, tot = { 0 };
	size_t cnt = 0, merged = 0;

	for (unsigned p = 0; p < q->part_cnt; p++) {
		struct sl_buf *b = &q->parts[p].text;
		char *line = b->data, *end = b->data + b->len;

		while (line != NULL && line < end) {
			char *nl = memchr(line, '\n', (size_t)(end - line));
			struct dlc_row r = { 0 };
			char *tab = memchr(line, '\t', (size_t)(nl - line));

			*nl = '\0';
			*tab = '\0';
			r.domain = line;
			sscanf(tab + 1, "%" SCNu64 "\t%" SCNu64 "\t%" SCNu64 "\t%" SCNu64, &r.c,
			       &r.a, &r.d, &r.s);
			rows = sl_reallocarray(rows, cnt + 1, sizeof(*rows));
			rows[cnt++] = r;
			line = nl + 1;
		}
	}
	if (cnt > 1)
		qsort(rows, cnt, sizeof(*rows), dlc_row_cmp);
	/* One row per domain: its bindings' queues summed. */
	for (size_t i = 0; i < cnt; i++) {
		if (merged > 0 && strcmp(rows[merged - 1].domain, rows[i].domain) == 0) {
			rows[merged - 1].c += rows[i].c;
			rows[merged - 1].a += rows[i].a;
			rows[merged - 1].d += rows[i].d;
			rows[merged - 1].s += rows[i].s;
		} else {
			rows[merged++] = rows[i];
		}
	}
	for (size_t i = 0; i < merged; i++) {
		const struct dlc_row *r = &rows[i];
		uint64_t v = q->kind == DLC_ACTIVE ? r->a : r->d;

		tot.c += r->c;
		tot.a += r->a;
		tot.d += r->d;
		tot.s += r->s;
		if (v > q->threshold)
			sl_buf_printf(out,
				      "Domain: %30s  C: %3" PRIu64 "  A: %6" PRIu64 "  D: %6" PRIu64
				      "  S: %6" PRIu64 "\n",
				      r->domain, r->c, r->a, r->d, r->s);
	}
	sl_buf_printf(out,
		      "%38s  C: %3" PRIu64 "  A: %6" PRIu64 "  D: %6" PRIu64 "  S: %6" PRIu64 "\n",
		      "Total:", tot.c, tot.a, tot.d, tot.s);
	sl_free(rows);
}

/* Entries (DLC_REC-terminated) of every part in order, `offset` skipped, `limit` kept. */
static size_t
dlc_merge_entries(struct dlc_query *q, struct sl_buf *out, size_t skip, size_t limit)
{
	size_t seen = 0, shown = 0;

	for (unsigned p = 0; p < q->part_cnt; p++) {
		const struct sl_buf *b = &q->parts[p].text;
		const char *e = b->data, *end = b->data + b->len;

		while (e != NULL && e < end) {
			const char *rs = memchr(e, DLC_REC, (size_t)(end - e));

			if (rs == NULL)
				break;
			if (seen++ >= skip && shown < limit) {
				sl_buf_append(out, e, (size_t)(rs - e));
				shown++;
			}
			e = rs + 1;
		}
	}
	return shown;
}

static uint64_t
dlc_sum(const struct dlc_query *q, unsigned k)
{
	uint64_t n = 0;

	for (unsigned p = 0; p < q->part_cnt; p++)
		n += q->parts[p].n[k];
	return n;
}

static void
dlc_free(struct dlc_query *q)
{
	for (unsigned p = 0; p < q->part_cnt; p++) {
		sl_buf_free(&q->parts[p].text);
		sl_buf_free(&q->parts[p].head);
	}
	sl_free(q->parts);
	sl_msg_free(q->got);
	sl_buf_free(&q->out);
	sl_free(q);
}

static void
dlc_finish(struct dlc_query *q, bool is_ok)
{
	sl_buf_append(&q->out, "", 1); /* the NUL, not part of the text */
	q->done(q->arg, is_ok, q->out.data);
	dlc_free(q);
}

static void
dlc_read_work(uv_work_t *req)
{
	struct dlc_query *q = req->data;

	q->read_err = sl_spool_read(sl_spool_stage_store(), &q->loc, &q->got);
}

static void
dlc_read_done(uv_work_t *req, int status)
{
	struct dlc_query *q = req->data;
	int err = status < 0 ? status : q->read_err;

	if (err != 0) {
		sl_buf_printf(&q->out, "cannot read message %s from the spool: %s\n", q->qid,
			      err == -ENOENT ? "it is no longer there" : strerror(-err));
		dlc_finish(q, false);
		return;
	}
	if (q->details == 2)
		sl_buf_puts(&q->out, "\n");
	sl_buf_append(&q->out, q->got->head.data, q->got->head.len);
	for (const struct sl_msg_chunk *c = q->got->chunks; c != NULL; c = c->next)
		sl_buf_append(&q->out, c->data, c->len);
	if (q->out.len > 0 && q->out.data[q->out.len - 1] != '\n')
		sl_buf_puts(&q->out, "\n");
	dlc_finish(q, true);
}

static void
dlc_details(struct dlc_query *q)
{
	const struct dlc_part *first = NULL;

	for (unsigned p = 0; p < q->part_cnt && first == NULL; p++)
		if (q->parts[p].head.len > 0)
			first = &q->parts[p];
	if (first == NULL) {
		sl_buf_printf(&q->out, "message %s is not queued (delivered, failed, or unknown)\n",
			      q->qid);
		dlc_finish(q, false);
		return;
	}
	if (q->details != 1) {
		sl_buf_append(&q->out, first->head.data, first->head.len);
		for (unsigned p = 0; p < q->part_cnt; p++)
			sl_buf_append(&q->out, q->parts[p].text.data, q->parts[p].text.len);
	}
	if (q->details == 0) {
		dlc_finish(q, true);
		return;
	}
	q->loc = first->loc;
	q->work.data = q;
	if (uv_queue_work(sl_thread_loop(sl_thread_self()), &q->work, dlc_read_work,
			  dlc_read_done) != 0) {
		sl_buf_puts(&q->out, "cannot start reading the message from the spool\n");
		dlc_finish(q, false);
	}
}

static void
dlc_done(void *arg)
{
	struct dlc_query *q = arg;
	const char *d = q->is_all ? "all domains" : q->domain;
	uint64_t n0 = dlc_sum(q, 0), n1 = dlc_sum(q, 1);
	bool is_ok = true;

	switch (q->kind) {
	case DLC_ACTIVE:
	case DLC_DELAYED:
		dlc_merge_counts(q, &q->out);
		break;
	case DLC_SHOWQUEUE:
	case DLC_MAILQ: {
		size_t skip = q->kind == DLC_MAILQ ? q->offset : 0;
		size_t shown = dlc_merge_entries(q, &q->out, skip, q->limit);

		if (q->kind == DLC_MAILQ || n0 > shown)
			sl_buf_printf(&q->out, "%" PRIu64 " message%s queued%s%s; %zu shown\n", n0,
				      n0 == 1 ? "" : "s", q->kind == DLC_SHOWQUEUE ? " for " : "",
				      q->kind == DLC_SHOWQUEUE ? d : "", shown);
		else if (n0 == 0)
			sl_buf_printf(&q->out, "nothing queued for %s\n", d);
		break;
	}
	case DLC_DOMAIN:
		for (unsigned p = 0; p < q->part_cnt; p++)
			sl_buf_append(&q->out, q->parts[p].text.data, q->parts[p].text.len);
		if (q->out.len == 0)
			sl_buf_printf(&q->out, "Domain '%s': nothing queued, no connection%s\n", d,
				      q->parts[0].n[2] ? " [suspended]" : "");
		break;
	case DLC_FLUSH:
		sl_buf_printf(&q->out, "%s flushed.  %" PRIu64 " messages requeued.\n", d, n0);
		break;
	case DLC_FAIL:
		sl_buf_printf(&q->out, "%s purged, %" PRIu64 " messages failed%s.\n", d, n0,
			      q->is_quiet ? " (no bounces)" : "");
		if (n1 > 0)
			sl_buf_printf(&q->out,
				      "%" PRIu64 " message%s in a transaction now were left to "
				      "finish it.\n",
				      n1, n1 == 1 ? "" : "s");
		break;
	case DLC_SUSPEND:
		sl_buf_printf(&q->out, "%s suspended (%" PRIu64 " messages queued wait).\n", d, n0);
		break;
	case DLC_RESUME:
		sl_buf_printf(&q->out, "%s resumed (%" PRIu64 " messages queued).\n", d, n0);
		break;
	case DLC_DETAILS:
		dlc_details(q);
		return;
	case DLC_MSG_FAIL:
		if (n0 == 0 && n1 == 0) {
			sl_buf_printf(&q->out, "message %s is not queued\n", q->qid);
			is_ok = false;
			break;
		}
		sl_buf_printf(&q->out, "message %s failed: %" PRIu64 " recipient%s%s\n", q->qid, n0,
			      n0 == 1 ? "" : "s", q->is_quiet ? " (no bounce)" : "");
		if (n1 > 0)
			sl_buf_printf(&q->out,
				      "%" PRIu64 " part%s in a transaction now left to "
				      "finish it\n",
				      n1, n1 == 1 ? "" : "s");
		break;
	case DLC_MSG_RETRY:
		if (n0 == 0) {
			sl_buf_printf(&q->out, "message %s is %s\n", q->qid,
				      n1 > 0 ? "not delayed (already active or in flight)"
					     : "not queued");
			is_ok = false;
			break;
		}
		sl_buf_puts(&q->out, "Message requeued for delivery\n");
		break;
	case DLC_OUTBOUND:
		dlc_merge_entries(q, &q->out, 0, SIZE_MAX);
		if (n0 == 0)
			sl_buf_puts(&q->out, "no outbound connections\n");
		break;
	}
	dlc_finish(q, is_ok);
}

int
sl_deliver_console(int argc, char **argv, struct sl_buf *err,
		   void (*done)(void *arg, bool is_ok, const char *text), void *arg)
{
	struct dlc_query *q;
	struct sl_stage *st = sl_stage_find("deliver");
	int rc;

	if (argc < 1)
		return 0;
	q = SL_NEW(q);
	rc = dlc_parse(argc, argv, q, err);
	if (rc <= 0) {
		sl_free(q);
		return rc;
	}
	if (st == NULL || sl_stage_thread_cnt(st) == 0) {
		sl_buf_puts(err, "the delivery stage is not running\n");
		sl_free(q);
		return -1;
	}
	q->part_cnt = sl_stage_thread_cnt(st);
	q->parts = sl_calloc(q->part_cnt, sizeof(*q->parts));
	q->done = done;
	q->arg = arg;
	rc = sl_gather(st, dlc_run, dlc_done, q);
	if (rc != 0) {
		sl_buf_printf(err, "cannot ask the delivery stage: %s\n", strerror(-rc));
		dlc_free(q);
		return -1;
	}
	if (q->kind == DLC_FLUSH || q->kind == DLC_FAIL || q->kind == DLC_SUSPEND ||
	    q->kind == DLC_RESUME || q->kind == DLC_MSG_FAIL || q->kind == DLC_MSG_RETRY)
		sl_log_notice("console: %s%s%s%s%s", argv[0], argc > 1 ? " " : "",
			      argc > 1 ? argv[1] : "", argc > 2 ? " " : "",
			      argc > 2 ? argv[2] : "");
	return 1;
}
