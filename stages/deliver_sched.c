/*
 * stages/deliver_sched.c - the scheduler of one delivery thread: queues,
 * routes, connection allocation, retries.
 *
 * A queue is one (binding, domain).  Its jobs are active (ready to go) or
 * delayed (in the thread's heap until their next attempt).  Running a queue
 * means: know where to send (Gateway, Routes, or the domain's MX records,
 * resolved with c-ares and kept for their TTL), hand active jobs to idle
 * connections, and open new connections while the limits allow:
 * Max_Outbound_Connections for the queue (or the Host scope for one MX),
 * Server_Max_Outbound_Connections for the whole node, the connection
 * throttle (its token taken last, only for a connection that goes), and
 * Connection_Allocation_Aggressiveness (normal: one connection for every
 * few jobs of the backlog, opened one after the other; high: one per job,
 * opened at once).  An address that failed is left alone for
 * Host_Failure_Retry seconds; when every address of a queue has failed
 * MX_Failures_To_Delay times in a row, or failures have gone on for
 * Connect_Timeout_To_Delay seconds, the queue's active jobs are delayed.
 * A delayed job waits Retry_Interval seconds, doubled after each failed
 * attempt up to max_retry_interval (never beyond Message_Expiration).
 * SNMP (stages/stats.h): a job counts in its binding group's stored,
 * active and delayed gauges from the time it first joins a queue until it
 * is freed, and once a second the thread publishes the per-domain view of
 * its queues.
 *
 * Threads: the owning delivery loop thread only.  Parses configuration
 * values (Gateway, Routes) and DNS results (through deliver_dns.c).
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/conf_acl.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "proto/validate.h"
#include "spool/spool.h"
#include "stages/deliver_int.h"
#include "stages/stages.h"

/* Stop opening connections in one run after this many (the next run continues). */
#define DL_OPEN_PER_RUN     16
/* connection_allocation_aggressiveness "normal": one connection for this many jobs. */
#define DL_AGGR_NORMAL_JOBS 4
/* A queue with nothing in it is freed after this long. */
#define DL_QUEUE_IDLE_MS    (300 * 1000)
/* Swapped-out jobs: reads in flight per queue, and jobs looked at per take. */
#define DL_LOAD_MAX         8

/* Gauges for the console's summary (sums over the delivery threads). */
static unsigned dl_gauge_active;  /* jobs in active queues */
static unsigned dl_gauge_delayed; /* jobs waiting for their next attempt */
static unsigned dl_gauge_domains; /* queues with active jobs */
unsigned dl_gauge_conns;          /* outbound connections open */

/* An active job came back to q's list outside dl_active_push (a requeue). */
void
dl_active_count(struct dl_queue *q, int delta)
{
	if (delta > 0 && q->active_cnt == 0)
		sl_counter_add(dl_gauge_domains, 1);
	q->active_cnt += (size_t)delta;
	sl_counter_add(dl_gauge_active, delta);
}

void
dl_sched_counters(void)
{
	dl_gauge_active = sl_counter_register("deliver.active");
	dl_gauge_delayed = sl_counter_register("deliver.delayed");
	dl_gauge_domains = sl_counter_register("deliver.active_domains");
	dl_gauge_conns = sl_counter_register("deliver.connections");
}
#define DL_TAKE_SCAN 64

/* ------------------------------------------------------------ options */

const union sl_conf_val *
dl_opt(const struct dl_queue *q, enum sl_opt opt, const char *host)
{
	struct sl_conf_where w = { q->binding, q->domain, host };

	return sl_conf_eval(q->dt->snap, opt, &w);
}

static int64_t
dl_opt_int(const struct dl_queue *q, enum sl_opt opt, int64_t dflt)
{
	const union sl_conf_val *v = dl_opt(q, opt, NULL);

	return v ? v->i : dflt;
}

static bool
dl_opt_bool(const struct dl_queue *q, enum sl_opt opt)
{
	const union sl_conf_val *v = dl_opt(q, opt, NULL);

	return v != NULL && v->b;
}

/* ------------------------------------------------------------ the delay heap */

static void
heap_swap(struct dl_heap *h, size_t a, size_t b)
{
	struct dl_job *t = h->v[a];

	h->v[a] = h->v[b];
	h->v[b] = t;
	h->v[a]->heap_pos = a;
	h->v[b]->heap_pos = b;
}

static void
heap_up(struct dl_heap *h, size_t i)
{
	while (i > 0 && h->v[(i - 1) / 2]->next_attempt_ms > h->v[i]->next_attempt_ms) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct dl_heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->cnt && h->v[l]->next_attempt_ms < h->v[m]->next_attempt_ms)
			m = l;
		if (r < h->cnt && h->v[r]->next_attempt_ms < h->v[m]->next_attempt_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

static void
heap_push(struct dl_heap *h, struct dl_job *job)
{
	if (h->cnt == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->v = sl_reallocarray(h->v, h->cap, sizeof(*h->v));
	}
	h->v[h->cnt] = job;
	job->heap_pos = h->cnt++;
	heap_up(h, job->heap_pos);
}

static struct dl_job *
heap_pop(struct dl_heap *h)
{
	struct dl_job *top = h->v[0];

	heap_swap(h, 0, h->cnt - 1);
	h->cnt--;
	if (h->cnt > 0)
		heap_down(h, 0);
	top->heap_pos = SIZE_MAX;
	return top;
}

/* Take `job` out from anywhere in the heap. */
static void
heap_remove(struct dl_heap *h, struct dl_job *job)
{
	size_t i = job->heap_pos;

	SL_ASSERT(i < h->cnt && h->v[i] == job);
	heap_swap(h, i, h->cnt - 1);
	h->cnt--;
	job->heap_pos = SIZE_MAX;
	if (i < h->cnt) {
		heap_down(h, i);
		heap_up(h, i);
	}
}

static void dl_delay_arm(struct dl_thread *dt);

static void
dl_delay_cb(uv_timer_t *t)
{
	struct dl_thread *dt = t->data;
	uint64_t now = dl_now_ms();

	while (dt->delayed.cnt > 0 && dt->delayed.v[0]->next_attempt_ms <= now) {
		struct dl_job *job = heap_pop(&dt->delayed);

		job->q->delayed_cnt--;
		sl_counter_add(dl_gauge_delayed, -1);
		dl_job_gauge(job, DL_JOB_NOWHERE);
		dl_queue_add(dt, job);
	}
	dl_delay_arm(dt);
}

static void
dl_delay_arm(struct dl_thread *dt)
{
	uint64_t now, wait;

	if (dt->delayed.cnt == 0 || dt->is_stopping) {
		uv_timer_stop(&dt->delay_timer);
		return;
	}
	now = dl_now_ms();
	wait = dt->delayed.v[0]->next_attempt_ms > now ? dt->delayed.v[0]->next_attempt_ms - now
						       : 0;
	uv_timer_start(&dt->delay_timer, dl_delay_cb, wait, 0);
}

/* ------------------------------------------------------------ queues */

struct dl_queue *
dl_queue_get(struct dl_thread *dt, const char *binding, const char *binding_group,
	     const char *domain)
{
	size_t blen = strlen(binding), dlen = strlen(domain);
	char *key = sl_malloc(blen + 1 + dlen + 1);
	struct sl_hnode *n;
	struct dl_queue *q;

	memcpy(key, binding, blen + 1);
	memcpy(key + blen + 1, domain, dlen + 1);
	n = sl_htable_find(&dt->queues, key, blen + 1 + dlen);
	if (n != NULL) {
		sl_free(key);
		return (struct dl_queue *)n;
	}
	q = SL_NEW(q);
	q->magic = DL_QUEUE_MAGIC;
	q->dt = dt;
	q->key = key;
	q->key_len = blen + 1 + dlen;
	q->binding = key;
	q->domain = key + blen + 1;
	q->node.key = key;
	q->node.key_len = q->key_len;
	/* Cold (a queue is made once per binding and domain): the group's lock is fine here. */
	q->group = sl_group_of_binding(binding, binding_group);
	sl_htable_insert(&dt->queues, &q->node);
	return q;
}

static void
dl_targets_free(struct dl_queue *q)
{
	for (size_t i = 0; i < q->target_cnt; i++) {
		sl_free(q->targets[i].host);
		sl_free(q->targets[i].addrs);
	}
	sl_free(q->targets);
	q->targets = NULL;
	q->target_cnt = 0;
	q->next_target = 0;
}

/*
 * Max_Resident_Active_Queue: past that many resident active jobs, a job
 * joining the queue drops its content (when it is the message's only
 * holder) and reads it back from the spool shortly before its turn.
 */
static void
dl_active_push(struct dl_queue *q, struct dl_job *job)
{
	struct sl_msg *m = job->msg;

	job->q = q;
	job->next = NULL;
	job->prev = q->active_tail;
	if (q->active_tail != NULL)
		q->active_tail->next = job;
	else
		q->active_head = job;
	q->active_tail = job;
	if (q->active_cnt++ == 0)
		sl_counter_add(dl_gauge_domains, 1);
	sl_counter_add(dl_gauge_active, 1);
	dl_job_gauge(job, DL_JOB_ACTIVE);
	if (!m->is_swapped) {
		int64_t max = dl_opt_int(q, SL_OPT_MAX_RESIDENT_ACTIVE_QUEUE, 250);

		if (max >= 0 && q->resident_cnt >= (uint64_t)max && m->loc.length > 0 &&
		    __atomic_load_n(&m->refs, __ATOMIC_ACQUIRE) == 1) {
			sl_msg_swap_out(m);
			sl_log_debug("message %s: content dropped from memory (%zu resident in "
				     "queue %s)",
				     m->qid, q->resident_cnt, q->domain);
		} else
			q->resident_cnt++;
	}
}

static void
dl_active_unlink(struct dl_queue *q, struct dl_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		q->active_head = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	else
		q->active_tail = job->prev;
	job->next = job->prev = NULL;
	if (--q->active_cnt == 0)
		sl_counter_add(dl_gauge_domains, -1);
	sl_counter_add(dl_gauge_active, -1);
}

/* A read of swapped-out content, on libuv's thread pool. */
struct dl_load {
	uv_work_t req;
	struct dl_job *job;
	struct sl_msg *got;
	int err;
};

static void
dl_load_work(uv_work_t *req)
{
	struct dl_load *ld = req->data;

	ld->err = sl_spool_read(sl_spool_stage_store(), &ld->job->msg->loc, &ld->got);
}

static void
dl_load_done(uv_work_t *req, int status)
{
	struct dl_load *ld = req->data;
	struct dl_job *job = ld->job;
	struct dl_queue *q = job->q;
	struct sl_msg *m = job->msg;
	int err = status < 0 ? status : ld->err;

	q->dt->load_open--;
	q->loading_cnt--;
	job->is_loading = false;
	if (err == 0)
		err = sl_msg_swap_in(m, ld->got);
	sl_msg_free(ld->got);
	sl_free(ld);
	if (err == 0) {
		q->resident_cnt++;
		sl_log_debug("message %s: content read back from the spool", m->qid);
	} else {
		/* Nothing is lost: it stays in the spool; this attempt fails for now. */
		sl_log_err("message %s: cannot read its content back from the spool: %s", m->qid,
			   strerror(-err));
		dl_active_unlink(q, job);
		for (size_t i = 0; i < job->rcpt_cnt; i++)
			dl_outcome(q->dt, job, i, 451, "4.3.0",
				   "cannot read the message back from the spool", "",
				   DL_STAGE_NOT_CONNECTED, DL_TRANSIENT);
		dl_job_settle(q->dt, job);
	}
	if (!q->dt->is_stopping)
		dl_queue_run(q);
}

static void
dl_load_start(struct dl_queue *q, struct dl_job *job)
{
	struct dl_load *ld = SL_NEW(ld);

	ld->req.data = ld;
	ld->job = job;
	job->is_loading = true;
	q->loading_cnt++;
	q->dt->load_open++;
	SL_ASSERT(uv_queue_work(q->dt->loop, &ld->req, dl_load_work, dl_load_done) == 0);
}

/*
 * The next job to work on: the first whose content is in memory.  The
 * swapped-out jobs passed on the way start reading theirs back (a few at a
 * time); when they are in, the queue runs again.
 */
struct dl_job *
dl_queue_take(struct dl_queue *q)
{
	struct dl_job *job = q->active_head;

	for (unsigned seen = 0; job != NULL && job->msg->is_swapped; job = job->next) {
		if (!job->is_loading && q->loading_cnt < DL_LOAD_MAX && !q->dt->is_stopping)
			dl_load_start(q, job);
		if (++seen >= DL_TAKE_SCAN)
			return NULL;
	}
	if (job == NULL)
		return NULL;
	dl_active_unlink(q, job);
	q->resident_cnt--;
	q->inflight_cnt++;
	return job;
}

void
dl_queue_add(struct dl_thread *dt, struct dl_job *job)
{
	struct dl_queue *q =
		dl_queue_get(dt, job->msg->binding, job->msg->binding_group, job->domain);

	/* A new job (not one due again): a reception of q, stored in its group until freed. */
	if (job->group == NULL) {
		q->received_cnt++;
		job->group = q->group;
		job->stored_bytes = sl_msg_size(job->msg);
		job->stored_rcpts = (uint32_t)job->rcpt_cnt;
		sl_group_add(job->group, SL_GS_STORED_MSGS, 1);
		sl_group_add(job->group, SL_GS_STORED_BYTES, (int64_t)job->stored_bytes);
		sl_group_add(job->group, SL_GS_STORED_RCPTS, job->stored_rcpts);
	}
	dl_active_push(q, job);
	dl_queue_run(q);
}

void
dl_job_gauge(struct dl_job *job, enum dl_job_where where)
{
	static const enum sl_gstat gauge[] = {
		[DL_JOB_ACTIVE] = SL_GS_ACTIVE,
		[DL_JOB_DELAYED] = SL_GS_DELAYED,
	};

	if (job->where == where || job->group == NULL)
		return;
	if (job->where != DL_JOB_NOWHERE)
		sl_group_add(job->group, gauge[job->where], -1);
	if (where != DL_JOB_NOWHERE)
		sl_group_add(job->group, gauge[where], 1);
	job->where = where;
}

void
dl_job_rcpt_final(struct dl_job *job)
{
	if (job->group == NULL || job->stored_rcpts == 0)
		return;
	job->stored_rcpts--;
	sl_group_add(job->group, SL_GS_STORED_RCPTS, -1);
}

void
dl_job_unstore(struct dl_job *job)
{
	if (job->group == NULL)
		return;
	dl_job_gauge(job, DL_JOB_NOWHERE);
	sl_group_add(job->group, SL_GS_STORED_MSGS, -1);
	sl_group_add(job->group, SL_GS_STORED_BYTES, -(int64_t)job->stored_bytes);
	sl_group_add(job->group, SL_GS_STORED_RCPTS, -(int64_t)job->stored_rcpts);
	job->stored_rcpts = 0;
	job->group = NULL;
}

/*
 * drop_body_after_trans_fail: a message that keeps failing transiently
 * should not hold its body in memory for the hours it may wait; after that
 * many transient attempts the content is dropped (when the job is its only
 * holder) and read back from the spool before the next attempt, as
 * Max_Resident_Active_Queue does.  0 drops it at the first.
 */
static void
dl_job_drop_body(struct dl_queue *q, struct dl_job *job)
{
	struct sl_msg *m = job->msg;
	int64_t after = dl_opt_int(q, SL_OPT_DROP_BODY_AFTER_TRANS_FAIL, 3);

	if (m->is_swapped || m->loc.length == 0 || (int64_t)job->retries < after ||
	    __atomic_load_n(&m->refs, __ATOMIC_ACQUIRE) != 1)
		return;
	sl_msg_swap_out(m);
	sl_log_debug("message %s: content dropped from memory after %u transient failures "
		     "(drop_body_after_trans_fail)",
		     m->qid, job->retries);
}

uint64_t
dl_retry_wait_s(int64_t base, int64_t max_interval, unsigned retries, int64_t expire, int64_t age)
{
	/* Retry_Interval, doubled after each failed attempt (Momentum's back-off). */
	unsigned shift = retries > 16 ? 16 : retries > 0 ? retries - 1 : 0;
	uint64_t wait_s = (uint64_t)(base > 0 ? base : 1) << shift;

	if (max_interval > 0 && wait_s > (uint64_t)max_interval)
		wait_s = (uint64_t)max_interval;
	if (expire > 0) {
		uint64_t left = expire > age ? (uint64_t)(expire - (age > 0 ? age : 0)) : 0;

		/* Come back in time to expire it, not long after. */
		if (wait_s > left)
			wait_s = left > 0 ? left : 1;
	}
	return wait_s;
}

void
dl_job_delay(struct dl_thread *dt, struct dl_job *job)
{
	struct dl_queue *q = job->q;
	uint64_t wait_s;

	job->retries++;
	dl_job_drop_body(q, job);
	wait_s = dl_retry_wait_s(dl_opt_int(q, SL_OPT_RETRY_INTERVAL, 1200),
				 dl_opt_int(q, SL_OPT_MAX_RETRY_INTERVAL, 43200), job->retries,
				 dl_opt_int(q, SL_OPT_MESSAGE_EXPIRATION, 86400),
				 (int64_t)(time(NULL) - job->msg->received));
	job->next_attempt_ms = dl_now_ms() + wait_s * 1000;
	job->q = q;
	q->delayed_cnt++;
	heap_push(&dt->delayed, job);
	sl_counter_add(dl_gauge_delayed, 1);
	dl_job_gauge(job, DL_JOB_DELAYED);
	if (job->heap_pos == 0)
		dl_delay_arm(dt);
}

/* Every active job of q ends this attempt transiently (T lines) and waits. */
static void
dl_queue_delay_all(struct dl_queue *q, unsigned code, const char *enhanced, const char *why,
		   const char *ip, enum dl_stage_code stage)
{
	struct dl_job *job;

	while ((job = dl_queue_take(q)) != NULL) {
		q->inflight_cnt--;
		for (size_t i = 0; i < job->rcpt_cnt; i++)
			dl_outcome(q->dt, job, i, code, enhanced, why, ip, stage, DL_TRANSIENT);
		dl_job_settle(q->dt, job);
	}
	q->consecutive_failures = 0;
	q->first_failure_ms = 0;
	for (size_t i = 0; i < q->target_cnt; i++)
		q->targets[i].round_failures = 0; /* the next round starts afresh */
}

/* Every active job of q fails for good (P lines, bounces). */
static void
dl_queue_fail_all(struct dl_queue *q, unsigned code, const char *enhanced, const char *why,
		  enum dl_result result)
{
	struct dl_job *job;

	while ((job = dl_queue_take(q)) != NULL) {
		q->inflight_cnt--;
		for (size_t i = 0; i < job->rcpt_cnt; i++)
			dl_outcome(q->dt, job, i, code, enhanced, why, "", DL_STAGE_NOT_CONNECTED,
				   result);
		dl_job_settle(q->dt, job);
	}
}

/* ------------------------------------------------------------ console actions */

void
dl_job_undelay(struct dl_thread *dt, struct dl_job *job)
{
	heap_remove(&dt->delayed, job);
	job->q->delayed_cnt--;
	sl_counter_add(dl_gauge_delayed, -1);
	dl_job_gauge(job, DL_JOB_NOWHERE);
	dl_delay_arm(dt);
}

bool
dl_job_unqueue(struct dl_queue *q, struct dl_job *job)
{
	if (job->is_loading)
		return false; /* dl_load_done still needs it where it is */
	dl_active_unlink(q, job);
	if (!job->msg->is_swapped)
		q->resident_cnt--;
	dl_job_gauge(job, DL_JOB_NOWHERE);
	return true;
}

bool
dl_domain_is_suspended(const struct dl_thread *dt, const char *domain)
{
	return dt->suspended.cnt > 0 &&
	       sl_htable_find(&dt->suspended, domain, strlen(domain)) != NULL;
}

void
dl_domain_suspend(struct dl_thread *dt, const char *domain, bool is_suspended)
{
	struct sl_hnode *n = sl_htable_find(&dt->suspended, domain, strlen(domain));
	size_t len = strlen(domain);

	if (is_suspended && n == NULL) {
		n = sl_malloc(sizeof(*n) + len + 1);
		memset(n, 0, sizeof(*n));
		memcpy((char *)(n + 1), domain, len + 1);
		n->key = (const char *)(n + 1);
		n->key_len = len;
		sl_htable_insert(&dt->suspended, n);
	} else if (!is_suspended && n != NULL) {
		sl_htable_remove(&dt->suspended, n);
		sl_free(n);
	}
}

/* ------------------------------------------------------------ host failures */

/* Addresses that failed, and until when they are left alone (per thread). */
struct dl_hostfail {
	struct sl_hnode node;
	char key[64];
	uint64_t until_ms;
};

static void
dl_addr_key(const struct sockaddr_storage *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (a->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in *)a)->sin_port);
	} else if (a->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
	}
	snprintf(buf, len, "%s/%u", ip, port);
}

static struct dl_hostfail *
dl_hostfail_find(struct dl_thread *dt, const struct sockaddr_storage *a)
{
	char key[64];

	dl_addr_key(a, key, sizeof(key));
	return (struct dl_hostfail *)sl_htable_find(&dt->hostfails, key, strlen(key));
}

void
dl_addr_text(const struct sockaddr_storage *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(((const struct sockaddr_in *)a)->sin_port));
	} else if (a->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip,
			 ntohs(((const struct sockaddr_in6 *)a)->sin6_port));
	} else {
		snprintf(buf, len, "?");
	}
}

uint64_t
dl_addr_retry_at(struct dl_thread *dt, const struct sockaddr_storage *a)
{
	struct dl_hostfail *f = dl_hostfail_find(dt, a);

	return f != NULL && f->until_ms > uv_now(dt->loop) ? f->until_ms : 0;
}

static bool
dl_addr_usable(struct dl_thread *dt, const struct sockaddr_storage *a, uint64_t now)
{
	struct dl_hostfail *f = dl_hostfail_find(dt, a);

	return f == NULL || f->until_ms <= now;
}

static bool
dl_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* The target (MX host, gateway or route) `a` belongs to, or NULL. */
static struct dl_target *
dl_target_of(struct dl_queue *q, const struct sockaddr_storage *a)
{
	for (size_t i = 0; i < q->target_cnt; i++)
		for (size_t k = 0; k < q->targets[i].addr_cnt; k++)
			if (dl_addr_same(&q->targets[i].addrs[k], a))
				return &q->targets[i];
	return NULL;
}

enum dl_route_hold
dl_queue_route_holds(struct dl_queue *q, const struct sockaddr_storage *a)
{
	if (q->is_route_partial)
		return DL_HOLD_YES; /* the rest is still coming: keep what works */
	if (q->route_state != DL_ROUTE_OK || q->route_gen != q->dt->snap->generation)
		return DL_HOLD_UNKNOWN;
	return dl_target_of(q, a) != NULL ? DL_HOLD_YES : DL_HOLD_NO;
}

/* Has every host with an address failed MX_Failures_To_Delay times this round? */
static bool
dl_all_hosts_failed(const struct dl_queue *q, int64_t to_delay)
{
	size_t hosts = 0;

	for (size_t i = 0; i < q->target_cnt; i++) {
		if (q->targets[i].addr_cnt == 0)
			continue;
		hosts++;
		if (q->targets[i].round_failures < (uint64_t)to_delay)
			return false;
	}
	return hosts > 0;
}

static void
dl_round_reset(struct dl_queue *q)
{
	for (size_t i = 0; i < q->target_cnt; i++)
		q->targets[i].round_failures = 0;
}

void
dl_queue_conn_failed(struct dl_queue *q, const struct sockaddr_storage *addr, bool is_timeout)
{
	struct dl_thread *dt = q->dt;
	struct dl_hostfail *f = dl_hostfail_find(dt, addr);
	uint64_t now = dl_now_ms();
	int64_t retry = dl_opt_int(q, SL_OPT_HOST_FAILURE_RETRY, 120);
	int64_t to_delay = dl_opt_int(q, SL_OPT_MX_FAILURES_TO_DELAY, 50);
	int64_t time_to_delay = dl_opt_int(q, SL_OPT_CONNECT_TIMEOUT_TO_DELAY, 900);

	if (f == NULL) {
		f = SL_NEW(f);
		dl_addr_key(addr, f->key, sizeof(f->key));
		f->node.key = f->key;
		f->node.key_len = strlen(f->key);
		sl_htable_insert(&dt->hostfails, &f->node);
	}
	f->until_ms = now + (uint64_t)(retry > 0 ? retry : 0) * 1000;
	/* Refused, timed out, or the session failed before its first delivery. */
	sl_group_add(q->group, SL_GS_OUT_ASSOC_FAILED, 1);
	if (q->consecutive_failures++ == 0)
		q->first_failure_ms = now;
	{
		struct dl_target *t = dl_target_of(q, addr);

		if (t != NULL)
			t->round_failures++;
	}
	/*
	 * Every MX host failed MX_Failures_To_Delay times (a host that has is
	 * skipped meanwhile, so the next preference gets its turn), or failing
	 * for longer than Connect_Timeout_To_Delay: the destination is down.
	 */
	if ((to_delay > 0 && dl_all_hosts_failed(q, to_delay)) ||
	    (is_timeout && time_to_delay > 0 &&
	     now - q->first_failure_ms >= (uint64_t)time_to_delay * 1000)) {
		dl_round_reset(q);
		dl_queue_delay_all(q, 451, "4.4.1", "no adequate servers (all failed)", "",
				   DL_STAGE_NOT_CONNECTED);
	}
}

void
dl_queue_conn_ok(struct dl_queue *q)
{
	q->consecutive_failures = 0;
	q->first_failure_ms = 0;
	dl_round_reset(q);
}

/* ------------------------------------------------------------ routes */

/* The port deliveries of q use unless a route says otherwise. */
static uint16_t
dl_default_port(const struct dl_queue *q)
{
	const union sl_conf_val *method = dl_opt(q, SL_OPT_DELIVERY_METHOD, NULL);

	if (method != NULL && strcasecmp(method->s, "LMTP") == 0)
		return (uint16_t)dl_opt_int(q, SL_OPT_LMTP_PORT, 24);
	if (method != NULL && strcasecmp(method->s, "ECSTREAM") == 0)
		return (uint16_t)dl_opt_int(q, SL_OPT_ECSTREAM_PORT, 1825);
	return (uint16_t)dl_opt_int(q, SL_OPT_REMOTE_SMTP_PORT, 25);
}

static bool
dl_prohibited(const struct dl_queue *q, const struct sockaddr_storage *a)
{
	const union sl_conf_val *v = dl_opt(q, SL_OPT_PROHIBITED_HOSTS, NULL);

	for (size_t i = 0; v != NULL && i < v->list.cnt; i++) {
		struct sl_cidr c;
		char why[96];

		if (sl_cidr_parse(v->list.v[i], &c, why, sizeof(why)) == 0 &&
		    sl_cidr_match(&c, (const struct sockaddr *)a))
			return true;
	}
	return false;
}

/* Add a target with the usable addresses of DNS host `h` (or literal addresses). */
static void
dl_target_add(struct dl_queue *q, const char *host, uint16_t pref, uint16_t port,
	      const struct sockaddr_storage *addrs, size_t addr_cnt)
{
	struct dl_target *t;

	q->targets = sl_reallocarray(q->targets, q->target_cnt + 1, sizeof(*q->targets));
	t = &q->targets[q->target_cnt++];
	t->host = sl_strdup(host);
	t->round_failures = 0;
	t->pref = pref;
	t->port = port ? port : dl_default_port(q);
	t->addrs = sl_calloc(addr_cnt ? addr_cnt : 1, sizeof(*t->addrs));
	t->addr_cnt = 0;
	for (size_t i = 0; i < addr_cnt; i++) {
		struct sockaddr_storage a = addrs[i];

		if (dl_prohibited(q, &a)) {
			q->route_prohibited++;
			continue;
		}
		if (a.ss_family == AF_INET)
			((struct sockaddr_in *)&a)->sin_port = htons(t->port);
		else if (a.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&a)->sin6_port = htons(t->port);
		else
			continue;
		t->addrs[t->addr_cnt++] = a;
	}
}

static int
dl_target_cmp(const void *x, const void *y)
{
	const struct dl_target *a = x, *b = y;

	return (int)a->pref - (int)b->pref;
}

/* Every lookup is in: decide the queue's route state and run it. */
static void
dl_route_done(struct dl_queue *q)
{
	size_t usable = 0;

	/* Stable order by preference (insertion sort: routes keep their list order). */
	for (size_t i = 1; i < q->target_cnt; i++) {
		struct dl_target t = q->targets[i];
		size_t k = i;

		for (; k > 0 && dl_target_cmp(&q->targets[k - 1], &t) > 0; k--)
			q->targets[k] = q->targets[k - 1];
		q->targets[k] = t;
	}
	for (size_t i = 0; i < q->target_cnt; i++)
		usable += q->targets[i].addr_cnt;
	if (usable > 0) {
		q->route_status = SL_DNS_OK;
	} else if (q->route_status == SL_DNS_OK) {
		/* Lookups answered, but every address was prohibited or there was none. */
		q->route_status = SL_DNS_NODATA;
		if (q->route_prohibited > 0)
			snprintf(q->route_why, sizeof(q->route_why),
				 "every address for %s is in Prohibited_Hosts", q->domain);
		else
			snprintf(q->route_why, sizeof(q->route_why),
				 "no usable address for %s (no A/AAAA record)", q->domain);
	}
	q->route_state = q->route_status == SL_DNS_OK ? DL_ROUTE_OK : DL_ROUTE_FAILED;
	/* A transient failure is asked again soon; answers live for their TTL. */
	if (q->route_status == SL_DNS_TEMPFAIL)
		q->route_expires_ms = uv_now(q->dt->loop) + 5000;
	dl_queue_run(q);
}

/* One lookup of a route: which queue, the preference and port its targets get. */
struct dl_lookup {
	struct dl_queue *q;
	uint16_t pref;
	uint16_t port;
	bool is_dns_pref; /* MX lookups keep the DNS preferences */
	uint32_t ttl_s;   /* Routes ttl=, 0: the DNS TTL */
	bool is_mx;       /* the destination domain's own MX (counts mx_tempfails) */
};

/* Fold one lookup's outcome into the queue's: any success wins, then TEMPFAIL. */
static void
dl_route_status(struct dl_queue *q, enum sl_dns_status st, const char *why)
{
	if (q->route_status == SL_DNS_OK && q->target_cnt > 0)
		return;
	if (st == SL_DNS_OK || q->route_status == (enum sl_dns_status) - 1 ||
	    st == SL_DNS_TEMPFAIL) {
		q->route_status = st;
		snprintf(q->route_why, sizeof(q->route_why), "%s", why ? why : "");
	}
}

static void
dl_lookup_cb(void *arg, struct sl_dns_result *r)
{
	struct dl_lookup *l = arg;
	struct dl_queue *q = l->q;

	SL_CHECK_OBJ(q, DL_QUEUE_MAGIC);
	q->pending_lookups--;
	if (!q->dt->is_stopping && q->is_route_partial) {
		/* The complete answer replaces the partial one. */
		dl_targets_free(q);
		q->is_route_partial = false;
		q->route_status = (enum sl_dns_status) - 1;
		q->route_prohibited = 0;
	}
	if (!q->dt->is_stopping) {
		uint64_t now = uv_now(q->dt->loop);
		uint64_t expires = l->ttl_s ? now + (uint64_t)l->ttl_s * 1000 : r->expires_ms;

		for (size_t i = 0; i < r->host_cnt; i++)
			dl_target_add(q, r->hosts[i].name,
				      l->is_dns_pref ? r->hosts[i].pref : l->pref, l->port,
				      r->hosts[i].addrs, r->hosts[i].addr_cnt);
		if (expires < q->route_expires_ms)
			q->route_expires_ms = expires;
		if (l->is_mx)
			q->mx_tempfails = r->status == SL_DNS_TEMPFAIL ? q->mx_tempfails + 1 : 0;
		dl_route_status(q, r->status, r->why);
		if (q->pending_lookups == 0)
			dl_route_done(q);
	}
	sl_dns_result_put(r);
	sl_free(l);
}

/*
 * fully_resolve_before_smtp = false: the first exchangers with addresses
 * are in while others are still being resolved; deliver to them now.
 */
static void
dl_lookup_early_cb(void *arg, struct sl_dns_result *r)
{
	struct dl_lookup *l = arg;
	struct dl_queue *q = l->q;

	SL_CHECK_OBJ(q, DL_QUEUE_MAGIC);
	if (!q->dt->is_stopping && q->route_state == DL_ROUTE_PENDING && q->pending_lookups == 1) {
		size_t usable = 0;

		for (size_t i = 0; i < r->host_cnt; i++)
			dl_target_add(q, r->hosts[i].name, r->hosts[i].pref, l->port,
				      r->hosts[i].addrs, r->hosts[i].addr_cnt);
		for (size_t i = 0; i < q->target_cnt; i++)
			usable += q->targets[i].addr_cnt;
		if (usable > 0) {
			q->is_route_partial = true;
			q->route_status = SL_DNS_OK;
			q->route_state = DL_ROUTE_OK;
			sl_log_debug("delivery to %s: starting with %zu of its exchangers resolved",
				     q->domain, q->target_cnt);
			dl_queue_run(q);
		} else {
			dl_targets_free(q);
			q->route_prohibited = 0;
		}
	}
	sl_dns_result_put(r);
}

/* Does the domain wait for every exchanger (fully_resolve_before_smtp, Relay_Domains)? */
static bool
dl_fully_resolve(const struct dl_queue *q)
{
	const union sl_conf_val *relay = sl_conf_global(q->dt->snap, SL_OPT_RELAY_DOMAINS);

	if (dl_opt_bool(q, SL_OPT_FULLY_RESOLVE_BEFORE_SMTP))
		return true;
	/* Momentum: domains in Relay_Domains always wait for every exchanger. */
	return relay != NULL && sl_validate_domain_in(q->domain, relay->list.v, relay->list.cnt);
}

/* Resolve one route item (or the domain's MX when `route` is NULL). */
static void
dl_route_item(struct dl_queue *q, const struct sl_dns_route *route)
{
	struct dl_lookup *l = SL_NEW(l);

	l->q = q;
	q->pending_lookups++;
	if (route == NULL || route->is_mx_of_domain) {
		int64_t fallback = dl_opt_int(q, SL_OPT_MX_FAILURES_FALLBACK_TO_A, 3);

		l->is_dns_pref = true;
		l->is_mx = true;
		l->port = route ? route->port : 0;
		l->ttl_s = route && route->has_ttl ? route->ttl : 0;
		/* MX_Failures_Fallback_To_A: after that many failed MX lookups, try A/AAAA. */
		if (fallback > 0 && q->mx_tempfails >= (uint64_t)fallback)
			sl_dns_host(q->dt->dns, q->domain, dl_lookup_cb, l);
		else if (route == NULL && !dl_fully_resolve(q))
			sl_dns_mx_early(q->dt->dns, q->domain, dl_lookup_early_cb, dl_lookup_cb, l);
		else
			sl_dns_mx(q->dt->dns, q->domain, dl_lookup_cb, l);
		return;
	}
	l->pref = route->pref;
	l->port = route->port;
	l->ttl_s = route->has_ttl ? route->ttl : 0;
	if (route->lookup == SL_DNS_ROUTE_MX) {
		l->is_dns_pref = true;
		sl_dns_mx(q->dt->dns, route->host, dl_lookup_cb, l);
	} else {
		/* Address literals are answered by the resolver without a query. */
		sl_dns_host(q->dt->dns, route->host, dl_lookup_cb, l);
	}
}

/*
 * Work out where q's mail goes: Gateway (a smarthost), else Routes, else
 * the domain's MX records.  Lookups run in parallel; dl_route_done runs
 * the queue when the last one is in.
 */
static void
dl_route(struct dl_queue *q)
{
	const union sl_conf_val *gw = dl_opt(q, SL_OPT_GATEWAY, NULL);
	const union sl_conf_val *routes = dl_opt(q, SL_OPT_ROUTES, NULL);
	struct sl_dns_route r;
	char why[160];

	dl_targets_free(q);
	q->route_state = DL_ROUTE_PENDING;
	q->route_gen = q->dt->snap->generation;
	q->route_status = (enum sl_dns_status) - 1;
	q->route_why[0] = '\0';
	q->route_prohibited = 0;
	q->route_expires_ms = UINT64_MAX;
	if (gw != NULL && gw->s != NULL && gw->s[0] != '\0') {
		if (sl_dns_gateway_parse(gw->s, &r, why, sizeof(why)) != 0) {
			sl_log_err("delivery to %s: Gateway %s: %s", q->domain, gw->s, why);
			q->route_status = SL_DNS_TEMPFAIL;
			snprintf(q->route_why, sizeof(q->route_why), "bad Gateway: %s", why);
			dl_route_done(q);
			return;
		}
		dl_route_item(q, &r);
		return;
	}
	if (routes != NULL && routes->list.cnt > 0) {
		struct sl_dns_route *v = sl_calloc(routes->list.cnt, sizeof(*v));

		if (sl_dns_routes_parse(routes->list.v, routes->list.cnt, v, why, sizeof(why)) !=
		    0) {
			sl_log_err("delivery to %s: Routes: %s", q->domain, why);
			q->route_status = SL_DNS_TEMPFAIL;
			snprintf(q->route_why, sizeof(q->route_why), "bad Routes: %s", why);
			sl_free(v);
			dl_route_done(q);
			return;
		}
		/* Count them all first: a cached answer could complete the set too early. */
		q->pending_lookups++;
		for (size_t i = 0; i < routes->list.cnt; i++)
			dl_route_item(q, &v[i]);
		sl_free(v);
		if (--q->pending_lookups == 0)
			dl_route_done(q);
		return;
	}
	/* The domain's exchangers; the resolver handles [address] literals itself. */
	dl_route_item(q, NULL);
}

/* ------------------------------------------------------------ running a queue */

/* Connection_Allocation_Aggressiveness = "high" for q? */
static bool
dl_aggr_is_high(const struct dl_queue *q)
{
	const union sl_conf_val *aggr =
		dl_opt(q, SL_OPT_CONNECTION_ALLOCATION_AGGRESSIVENESS, NULL);

	return aggr != NULL && aggr->s != NULL && strcasecmp(aggr->s, "high") == 0;
}

/*
 * How many connections q may have now, for its backlog (jobs waiting and
 * in flight) and Max_Outbound_Connections: "high" one per job, "normal"
 * one for every DL_AGGR_NORMAL_JOBS jobs, so a small backlog goes over a
 * few reused connections and a large one still reaches the maximum (at
 * the pace dl_queue_run allows "normal": one connection being set up at a
 * time).
 */
static unsigned
dl_conn_wanted(const struct dl_queue *q)
{
	int64_t max = dl_opt_int(q, SL_OPT_MAX_OUTBOUND_CONNECTIONS, 32);
	uint64_t backlog = q->active_cnt + q->inflight_cnt;
	uint64_t want;

	if (dl_aggr_is_high(q))
		want = backlog;
	else
		want = (backlog + DL_AGGR_NORMAL_JOBS - 1) / DL_AGGR_NORMAL_JOBS;
	/* Connections to hosts with a Host stanza have that stanza's limit instead. */
	if (max >= 0 && want > (uint64_t)max + (q->conn_cnt - q->plain_conn_cnt))
		want = (uint64_t)max + (q->conn_cnt - q->plain_conn_cnt);
	return (unsigned)want;
}

/* Is `v` one of the settings of the Host stanzas of container `c`? */
static bool
dl_host_in(const struct sl_conf_container *c, const union sl_conf_val *v)
{
	for (size_t i = 0; i < c->host_cnt; i++)
		for (size_t k = 0; k < c->hosts[i].set.cnt; k++)
			if (&c->hosts[i].set.v[k].v == v)
				return true;
	return false;
}

/*
 * Is there a Host stanza for the host (its name, else its address)?  Then
 * take its slot (dl_shape_host_take): its Max_Outbound_Connections (-1, no
 * limit, when it does not set it) replaces the domain's for connections to
 * that host, counted over what the stanza's container covers (the binding,
 * its group, or the node).  *is_host says whether there was one; false
 * when its limit is reached.
 */
static bool
dl_host_take(const struct dl_queue *q, const char *host, const struct sockaddr_storage *a,
	     struct dl_slots *sl, bool *is_host)
{
	char ip[64];
	const char *names[2] = { host, ip };
	bool is_declared;

	*is_host = false;
	if (a->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, ip, sizeof(ip));
	for (size_t i = 0; i < 2; i++) {
		struct sl_conf_where w = { q->binding, q->domain, names[i] };
		const struct sl_conf_binding *bd;
		const union sl_conf_val *v;

		if (names[i] == NULL || names[i][0] == '\0')
			continue;
		v = sl_conf_host_eval(q->dt->snap, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w,
				      &is_declared);
		if (!is_declared)
			continue;
		*is_host = true;
		if (v == NULL)
			return dl_shape_host_take(sl, 't', "", names[i], -1);
		bd = sl_conf_binding_find(q->dt->snap, q->binding);
		if (bd != NULL && dl_host_in(&bd->c, v))
			return dl_shape_host_take(sl, 'b', bd->name, names[i], v->i);
		if (bd != NULL && bd->group != NULL && dl_host_in(&bd->group->c, v))
			return dl_shape_host_take(sl, 'g', bd->group->name, names[i], v->i);
		return dl_shape_host_take(sl, 't', "", names[i], v->i);
	}
	return true;
}

/* The next address to connect to: lowest preference first, spread over equals. */
static const struct sockaddr_storage *
dl_next_addr(struct dl_queue *q, const char **host)
{
	uint64_t now = dl_now_ms();
	int64_t to_delay = dl_opt_int(q, SL_OPT_MX_FAILURES_TO_DELAY, 50);

	for (size_t i = 0; i < q->target_cnt;) {
		uint16_t pref = q->targets[i].pref;
		size_t end = i, total = 0;

		while (end < q->target_cnt && q->targets[end].pref == pref)
			total += q->targets[end++].addr_cnt;
		/* Round robin over every address of this preference. */
		for (size_t tries = 0; tries < total; tries++) {
			size_t k = q->next_target++ % total;

			for (size_t t = i; t < end; t++) {
				if (k < q->targets[t].addr_cnt) {
					const struct sockaddr_storage *a = &q->targets[t].addrs[k];

					/* A host that failed MX_Failures_To_Delay times waits. */
					if (dl_addr_usable(q->dt, a, now) &&
					    (to_delay <= 0 ||
					     q->targets[t].round_failures < (uint64_t)to_delay)) {
						*host = q->targets[t].host;
						return a;
					}
					break;
				}
				k -= q->targets[t].addr_cnt;
			}
		}
		i = end;
	}
	return NULL;
}

void
dl_queue_run(struct dl_queue *q)
{
	struct dl_thread *dt = q->dt;
	unsigned opened = 0;
	bool is_high;

	SL_CHECK_OBJ(q, DL_QUEUE_MAGIC);
	if (dt->is_stopping || q->active_cnt == 0)
		return;
	if (dl_opt_bool(q, SL_OPT_SUSPEND_DELIVERY) || dl_domain_is_suspended(dt, q->domain))
		return; /* the jobs wait; the tick (or resume) runs the queue again */
	{
		/*
		 * Blackhole: "true"/"inline" refuse at RCPT (proto/validate.c) and fail
		 * what is queued (with bounces); "internal" drops it, logged, no bounce.
		 */
		const union sl_conf_val *bh = dl_opt(q, SL_OPT_BLACKHOLE, NULL);

		if (bh != NULL && strcasecmp(bh->s, "false") != 0) {
			bool is_internal = strcasecmp(bh->s, "internal") == 0;
			struct dl_job *job;

			while ((job = dl_queue_take(q)) != NULL) {
				q->inflight_cnt--;
				for (size_t i = 0; i < job->rcpt_cnt; i++)
					dl_outcome(dt, job, i, 550, "5.7.1", "blackholed", "",
						   DL_STAGE_NOT_CONNECTED, DL_FAILED_POLICY);
				job->is_dropped = is_internal;
				dl_job_settle(dt, job);
			}
			return;
		}
	}
	if (q->route_state == DL_ROUTE_PENDING)
		return;
	if (q->route_state == DL_ROUTE_NONE || uv_now(dt->loop) >= q->route_expires_ms ||
	    (q->route_gen != dt->snap->generation && !q->is_route_partial)) {
		dl_route(q);
		if (q->route_state == DL_ROUTE_PENDING)
			return;
	}
	if (q->route_state == DL_ROUTE_FAILED) {
		if (q->route_status == SL_DNS_TEMPFAIL)
			dl_queue_delay_all(q, 451, "4.4.3", q->route_why, "",
					   DL_STAGE_NOT_CONNECTED);
		else if (q->route_status == SL_DNS_NULL_MX)
			/* RFC 7505 section 3.2: a null MX is reported as 556 5.1.10. */
			dl_queue_fail_all(q, 556, "5.1.10", q->route_why, DL_FAILED);
		else if (q->route_prohibited > 0)
			dl_queue_fail_all(q, 550, "5.4.4", q->route_why, DL_FAILED_POLICY);
		else
			dl_queue_fail_all(q, 550, "5.1.2", q->route_why, DL_FAILED_DNS);
		return;
	}
	/* Idle connections first: they cost nothing to use. */
	for (struct dl_conn *c = q->conns; c != NULL && q->active_cnt > 0; c = c->next)
		if (c->is_idle)
			dl_conn_feed(c);
	is_high = dl_aggr_is_high(q);
	while (q->active_cnt > 0 && q->conn_cnt < dl_conn_wanted(q) && opened < DL_OPEN_PER_RUN) {
		const char *host = NULL;
		const struct sockaddr_storage *a = dl_next_addr(q, &host);
		struct dl_slots slots = { 0 };
		bool is_host;
		const union sl_conf_val *thr =
			dl_opt(q, SL_OPT_OUTBOUND_THROTTLE_CONNECTIONS, NULL);
		int64_t max = dl_opt_int(q, SL_OPT_MAX_OUTBOUND_CONNECTIONS, 32);

		/* "normal": the next connection once the one before is established. */
		if (!is_high && q->connecting_cnt > 0)
			return;
		if (a == NULL) {
			if (q->conn_cnt == 0)
				dl_queue_delay_all(
					q, 451, "4.4.1",
					"no adequate servers (every address failed recently)", "",
					DL_STAGE_NOT_CONNECTED);
			return;
		}
		/*
		 * Every limit first, the throttle's token last: a connection
		 * a limit stops costs no token, so a throttle and a limit both
		 * binding still give the throttle's full rate.
		 */
		if (!dl_host_take(q, host, a, &slots, &is_host))
			return; /* the host's limit: a connection closing runs us again */
		if (!is_host && max >= 0 && q->plain_conn_cnt >= (uint64_t)max)
			return;
		if (!dl_shape_conn_take(&slots, dt->snap, q->binding, q->conn_cnt == 0)) {
			dl_shape_release(&slots);
			return; /* Server_Max_Outbound_Connections: the tick comes back */
		}
		if (thr != NULL && thr->thr.cnt > 0 &&
		    dl_shape_throttle(dt->snap, thr, uv_now(dt->loop)) > 0) {
			dl_shape_release(&slots);
			return; /* throttled: the scheduler's tick comes back */
		}
		if (dl_conn_open(q, a, host, &slots) != 0) {
			dl_queue_conn_failed(q, a, false);
			continue;
		}
		opened++;
	}
}

/* ------------------------------------------------------------ the thread's housekeeping */

struct dl_tick {
	uint64_t now;
	bool is_dns_scan;       /* dns_expire_interval has passed: refresh expired routes */
	struct dl_queue **idle; /* queues to free after the walk */
	size_t idle_cnt;
};

static void
dl_tick_queue(struct sl_hnode *n, void *arg)
{
	struct dl_queue *q = (struct dl_queue *)n;
	struct dl_tick *t = arg;

	/*
	 * dns_expire_interval: a queue with mail whose route has expired looks
	 * it up again now, so its next attempt does not wait for DNS.
	 */
	if (t->is_dns_scan && q->route_state == DL_ROUTE_OK && t->now >= q->route_expires_ms &&
	    q->active_cnt + q->delayed_cnt > 0 && !q->dt->is_stopping) {
		dl_route(q);
		if (q->route_state == DL_ROUTE_PENDING)
			return;
	}
	/* Suspended, throttled or short of connection slots: try again. */
	if (q->active_cnt > 0)
		dl_queue_run(q);
	/* A queue with nothing left in it is forgotten after a while. */
	if (q->active_cnt + q->delayed_cnt + q->inflight_cnt + q->conn_cnt + q->pending_lookups >
	    0) {
		q->idle_since_ms = 0;
	} else if (q->idle_since_ms == 0) {
		q->idle_since_ms = t->now;
	} else if (t->now - q->idle_since_ms >= DL_QUEUE_IDLE_MS) {
		t->idle = sl_reallocarray(t->idle, t->idle_cnt + 1, sizeof(*t->idle));
		t->idle[t->idle_cnt++] = q;
	}
}

static void dl_free_queue(struct sl_hnode *n, void *arg);

static void
dl_view_row(struct sl_hnode *n, void *arg)
{
	struct dl_queue *q = (struct dl_queue *)n;
	struct dl_thread *dt = q->dt;
	size_t *cnt = arg;

	dt->view[(*cnt)++] = (struct sl_domain_stat){
		.domain = q->domain,
		.binding = q->binding,
		.group = sl_group_index(q->group),
		.receptions = q->received_cnt,
		.deliveries = q->delivered_cnt,
		.failures = q->failed_cnt,
		.transients = q->transient_cnt,
		.conns = q->conn_cnt,
		.active = (uint32_t)(q->active_cnt + q->inflight_cnt),
		.delayed = (uint32_t)q->delayed_cnt,
	};
}

/*
 * The SNMP per-domain view of this thread's queues (stats.h), once a
 * second; sl_domain_stats_publish leaves it alone when nothing changed.
 * Queues freed as idle just before are no longer in it.
 */
static void
dl_view_publish(struct dl_thread *dt)
{
	size_t cnt = 0;

	if (dt->queues.cnt > dt->view_cap) {
		dt->view_cap = dt->queues.cnt + dt->queues.cnt / 2 + 16;
		sl_free(dt->view);
		dt->view = sl_calloc(dt->view_cap, sizeof(*dt->view));
	}
	sl_htable_foreach(&dt->queues, dl_view_row, &cnt);
	sl_domain_stats_publish(sl_thread_index(dt->t), dt->view, cnt);
}

static void
dl_sched_tick_cb(uv_timer_t *timer)
{
	struct dl_thread *dt = timer->data;
	struct dl_tick t = { .now = uv_now(dt->loop) };
	uint64_t every = (uint64_t)sl_conf_int(dt->snap, SL_OPT_DNS_EXPIRE_INTERVAL) * 1000;

	if (t.now - dt->dns_scan_ms >= every) {
		dt->dns_scan_ms = t.now;
		t.is_dns_scan = true;
		if (dt->dns != NULL && dt->dns_open && !dt->is_stopping) {
			size_t n = sl_dns_expire(dt->dns);

			if (n > 0)
				sl_log_debug("delivery: %zu expired DNS answers dropped", n);
		}
	}
	sl_htable_foreach(&dt->queues, dl_tick_queue, &t);
	for (size_t i = 0; i < t.idle_cnt; i++) {
		sl_htable_remove(&dt->queues, &t.idle[i]->node);
		dl_free_queue(&t.idle[i]->node, NULL);
	}
	sl_free(t.idle);
	dl_view_publish(dt);
}

void
dl_sched_init(struct dl_thread *dt)
{
	uv_timer_init(dt->loop, &dt->delay_timer);
	dt->delay_timer.data = dt;
	uv_timer_init(dt->loop, &dt->sched_timer);
	dt->sched_timer.data = dt;
	uv_timer_start(&dt->sched_timer, dl_sched_tick_cb, 1000, 1000);
}

static void
dl_free_node(struct sl_hnode *n, void *arg)
{
	sl_free(n);
}

static void
dl_close_queue(struct sl_hnode *n, void *arg)
{
	struct dl_queue *q = (struct dl_queue *)n;
	struct dl_conn *c = q->conns;

	while (c != NULL) {
		struct dl_conn *next = c->next;

		dl_conn_close(c, false);
		c = next;
	}
}

static void
dl_free_queue(struct sl_hnode *n, void *arg)
{
	struct dl_queue *q = (struct dl_queue *)n;
	struct dl_job *job = q->active_head;

	/* Jobs still here stay in the spool; the next start delivers them. */
	while (job != NULL) {
		struct dl_job *next = job->next;

		sl_msg_unref(job->msg);
		dl_job_free(job);
		job = next;
	}
	dl_targets_free(q);
	q->magic = 0;
	sl_free(q->key);
	sl_free(q);
}

void
dl_sched_fini(struct dl_thread *dt)
{
	uv_timer_stop(&dt->delay_timer);
	uv_timer_stop(&dt->sched_timer);
	/* Readers may still be walking the last view: it goes after a grace period. */
	sl_domain_stats_unpublish(sl_thread_index(dt->t));
	sl_free(dt->view);
	dt->view = NULL;
	dt->view_cap = 0;
	uv_close((uv_handle_t *)&dt->delay_timer, NULL);
	uv_close((uv_handle_t *)&dt->sched_timer, NULL);
	sl_htable_foreach(&dt->queues, dl_close_queue, NULL);
	/* Connections hand their jobs back as they close; their queues must outlive them. */
	while (dt->conn_open > 0 || dt->load_open > 0)
		uv_run(dt->loop, UV_RUN_NOWAIT);
	while (dt->delayed.cnt > 0) {
		struct dl_job *job = heap_pop(&dt->delayed);

		sl_msg_unref(job->msg);
		dl_job_free(job);
	}
	sl_free(dt->delayed.v);
	sl_htable_foreach(&dt->queues, dl_free_queue, NULL);
	sl_htable_free(&dt->queues);
	sl_htable_foreach(&dt->hostfails, dl_free_node, NULL);
	sl_htable_free(&dt->hostfails);
	sl_htable_foreach(&dt->suspended, dl_free_node, NULL);
	sl_htable_free(&dt->suspended);
}
