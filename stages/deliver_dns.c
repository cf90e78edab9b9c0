/*
 * stages/deliver_dns.c - DNS for delivery: c-ares driven by a delivery loop, with a cache.
 *
 * One struct sl_dns per delivery loop thread.  Its c-ares channel tells us
 * through the socket-state callback which sockets to watch (one uv_poll each)
 * and ares_timeout() when to wake (one uv_timer); readiness and expiry both
 * go to ares_process_fd(), so nothing blocks the loop.  Above the channel:
 * a cache of results by (kind, name), lookups that join one in flight, and
 * the MX procedure (MX query, then A and AAAA of every exchanger, all in
 * parallel) whose policy lives in proto/dns.c.  Callers' callbacks always
 * run from an idle handle, never inside their own call.
 *
 * Threads: the loop thread that made the struct sl_dns, only.  Parses
 * untrusted input: DNS answers, through c-ares' parsers and
 * sl_dns_msg_scan(); names are checked with sl_dns_name_norm() and counts
 * capped at SL_DNS_MAX_MX and SL_DNS_MAX_ADDRS.  Reads the resolv.conf file.
 * Ownership: the struct sl_dns owns its channel, handles (freed in their
 * close callbacks), cache entries, in-flight jobs and waiters; a result is
 * shared by reference count between the cache and every caller holding it.
 */
#include "config.h"

#include <ares.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <urcu/compiler.h>
#include <urcu/list.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/htable.h"
#include "engine/log.h"
#include "proto/dns.h"
#include "stages/deliver_dns.h"

#define DNS_MAGIC 0x444e5352u /* "DNSR" */
/* The cache's bounds; d0001-dns builds a probe with a tiny one to see eviction work. */
#ifndef DNS_CACHE_MAX_ENTRIES
#define DNS_CACHE_MAX_ENTRIES 100000
#endif
#define DNS_CACHE_MAX_BYTES (64u << 20)
#define DNS_EDNS_SIZE       1232 /* DNS flag day 2020: no IP fragmentation */
#define DNS_TIMEOUT_MS      2000
#define DNS_TRIES           3

#define DNS_CLASS_IN  1
#define DNS_TYPE_A    1
#define DNS_TYPE_MX   15
#define DNS_TYPE_AAAA 28

/* The first byte of a cache key. */
enum dns_kind {
	DNS_KIND_MX = 'M',     /* sl_dns_mx(): the domain's result */
	DNS_KIND_HOST = 'H',   /* A + AAAA of an absolute name (ares_query) */
	DNS_KIND_SEARCH = 'S', /* A + AAAA of a single label, with the search list (ares_search) */
};

struct sl_dns {
	unsigned magic;
	uv_loop_t *loop;            /* borrowed: the owning thread's */
	ares_channel channel;       /* owned; NULL once destroyed by sl_dns_close() */
	uv_timer_t timer;           /* c-ares' next timeout */
	uv_idle_t soon;             /* calls back d->ready outside the callers' stacks */
	struct cds_list_head socks; /* owned struct dns_sock, one per socket c-ares watches */
	struct cds_list_head ready; /* owned struct dns_waiter holding a result, to call back */
	struct sl_htable cache;     /* owned struct dns_entry by key */
	struct cds_list_head lru;   /* the entries holding a result, least recently used first */
	size_t lru_cnt;
	size_t cache_bytes; /* estimated size of the cached results */
	uint32_t min_ttl;   /* seconds */
	struct sl_dns_sortpat sort[SL_DNS_CONF_MAX_SORT];
	size_t sort_cnt;
	uint64_t rand_state; /* xorshift64*, shuffles equal MX preferences */
	uint64_t query_cnt;
	unsigned handle_cnt; /* timer + polls not yet closed (not `soon`) */
	size_t job_cnt;      /* lookups in flight (struct dns_job) */
	bool is_retiring;    /* sl_dns_retire: close once job_cnt is 0 */
	bool is_closing;
	void (*done)(void *arg);
	void *done_arg;
};

struct dns_sock {
	uv_poll_t poll;            /* data: the struct sl_dns */
	struct cds_list_head link; /* in d->socks until c-ares lets go of fd */
	ares_socket_t fd;
};

/* Someone waiting for an entry: a caller's callback, or an MX job for one exchanger. */
struct dns_waiter {
	struct cds_list_head link; /* in job->waiters, then d->ready (which own it) */
	void (*cb)(void *arg, struct sl_dns_result *r);
	void (*early)(void *arg, struct sl_dns_result *r); /* sl_dns_mx_early, or NULL */
	void *arg;                                         /* the caller's */
	struct sl_dns_result *result; /* one reference, once answered; passed to cb */
	struct dns_job *mx_job; /* borrowed: the MX job waiting (internal); NULL for callers */
	size_t mx_idx;          /* the exchanger it waits for */
};

/* One question handed to c-ares: the callback's argument. */
struct dns_query {
	struct dns_job *job; /* the job it is part of (the job holds this struct) */
	int type;            /* DNS_TYPE_* */
};

struct dns_entry {
	struct sl_hnode node;         /* in d->cache, keyed by key[] */
	struct cds_list_head lru;     /* in d->lru exactly while result != NULL */
	struct sl_dns_result *result; /* owned reference, or NULL */
	struct dns_job *job;          /* borrowed: the lookup in flight (result is NULL), or NULL */
	size_t bytes;                 /* charged to d->cache_bytes */
	char key[SL_DNS_NAME_MAX + 2]; /* enum dns_kind, then the lower-cased name */
};

/*
 * A lookup in flight for one entry.  It owns itself: c-ares holds &q[i]
 * until it calls back, exchanger waiters hold the job, and dns_job_done()
 * frees it once the last of them has answered.
 */
struct dns_job {
	struct sl_dns *d;             /* borrowed */
	struct dns_entry *entry;      /* borrowed: the entry it fills (entry->job == this) */
	struct cds_list_head waiters; /* struct dns_waiter */
	unsigned pending;             /* questions or exchanger lookups outstanding */
	struct dns_query q[2];        /* MX: q[0]; host: q[0] A, q[1] AAAA */
	uint64_t expires_ms;          /* the earliest expiry of what was used so far */
	int err;                      /* ARES_* of the last transient failure */
	/* A + AAAA */
	enum sl_dns_status st[2];
	struct sockaddr_storage addrs[2][SL_DNS_MAX_ADDRS];
	size_t addr_cnt[2];
	/* MX */
	bool is_implicit;
	bool is_early_sent;      /* the partial answer went to the early waiters */
	struct sl_dns_rr_mx *rr; /* owned: the exchangers, rr_cnt of them */
	size_t rr_cnt;
	struct sl_dns_result *host_res[SL_DNS_MAX_MX]; /* references, one per exchanger */
};

static pthread_once_t dns_lib_once = PTHREAD_ONCE_INIT;
static int dns_lib_rc;
static unsigned dns_ctr_queries; /* questions sent, all resolvers (the console's summary) */

static void dns_answer_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen);
static void dns_lookup(struct sl_dns *d, enum dns_kind kind, const char *name,
		       struct dns_waiter *w);

/* ------------------------------------------------------------ results */

static struct sl_dns_result *
dns_result_new(size_t host_cnt, uint64_t expires_ms)
{
	struct sl_dns_result *r = SL_NEW(r);

	r->refs = 1;
	r->host_cnt = host_cnt;
	r->hosts = host_cnt > 0 ? sl_calloc(host_cnt, sizeof(*r->hosts)) : NULL;
	r->expires_ms = expires_ms;
	return r;
}

static struct sl_dns_result *
dns_result_fail(enum sl_dns_status status, uint64_t expires_ms, const char *why)
{
	struct sl_dns_result *r = dns_result_new(0, expires_ms);

	r->status = status;
	snprintf(r->why, sizeof(r->why), "%s", why);
	return r;
}

void
sl_dns_result_get(struct sl_dns_result *r)
{
	SL_ASSERT(r->refs > 0);
	r->refs++;
}

void
sl_dns_result_put(struct sl_dns_result *r)
{
	if (r == NULL)
		return;
	SL_ASSERT(r->refs > 0);
	if (--r->refs > 0)
		return;
	for (size_t i = 0; i < r->host_cnt; i++) {
		sl_free(r->hosts[i].name);
		sl_free(r->hosts[i].addrs);
	}
	sl_free(r->hosts);
	sl_free(r);
}

static size_t
dns_result_bytes(const struct sl_dns_result *r)
{
	size_t n = sizeof(*r) + r->host_cnt * sizeof(r->hosts[0]);

	for (size_t i = 0; i < r->host_cnt; i++)
		n += strlen(r->hosts[i].name) + 1 +
		     r->hosts[i].addr_cnt * sizeof(r->hosts[i].addrs[0]);
	return n;
}

static void
dns_host_set(struct sl_dns_host *h, const char *name, uint16_t pref, enum sl_dns_status status,
	     const struct sockaddr_storage *addrs, size_t addr_cnt)
{
	h->name = sl_strdup(name);
	h->pref = pref;
	h->status = status;
	h->addr_cnt = addr_cnt;
	if (addr_cnt > 0) {
		h->addrs = sl_calloc(addr_cnt, sizeof(*h->addrs));
		memcpy(h->addrs, addrs, addr_cnt * sizeof(*h->addrs));
	}
}

/* A name from a caller, printable for a log line or a bounce. */
static void
dns_printable(const char *in, char *out, size_t out_len)
{
	size_t n = 0;

	for (; *in != '\0' && n + 1 < out_len; in++)
		out[n++] = (*in > ' ' && *in < 0x7f) ? *in : '?';
	out[n] = '\0';
}

/* ------------------------------------------------------------ calling back */

static void dns_close_step(struct sl_dns *d);

static void
dns_drain_ready(struct sl_dns *d)
{
	struct cds_list_head batch;
	struct dns_waiter *w, *tmp;

	/* Only what is ready now: answers queued by these callbacks wait a turn. */
	CDS_INIT_LIST_HEAD(&batch);
	cds_list_splice(&d->ready, &batch);
	CDS_INIT_LIST_HEAD(&d->ready);
	cds_list_for_each_entry_safe (w, tmp, &batch, link) {
		cds_list_del(&w->link);
		w->cb(w->arg, w->result);
		sl_free(w);
	}
}

static void
dns_soon_cb(uv_idle_t *h)
{
	struct sl_dns *d = h->data;

	uv_idle_stop(h);
	dns_drain_ready(d);
	if (d->is_retiring && !d->is_closing && d->job_cnt == 0)
		sl_dns_close(d, d->done, d->done_arg);
	if (!cds_list_empty(&d->ready) && !uv_is_closing((uv_handle_t *)h))
		uv_idle_start(h, dns_soon_cb);
	dns_close_step(d);
}

/* Hand `r` (the waiter's own reference) to a caller, from the idle handle. */
static void
dns_ready(struct sl_dns *d, struct dns_waiter *w, struct sl_dns_result *r)
{
	w->result = r;
	cds_list_add_tail(&w->link, &d->ready);
	/* While `soon` closes, its close callback drains d->ready instead. */
	if (!uv_is_closing((uv_handle_t *)&d->soon))
		uv_idle_start(&d->soon, dns_soon_cb);
}

static void dns_mx_host_done(struct dns_job *job, size_t idx, struct sl_dns_result *r);

/* Answer a waiter with `r` (a reference it now owns). */
static void
dns_waiter_answer(struct sl_dns *d, struct dns_waiter *w, struct sl_dns_result *r)
{
	if (w->mx_job != NULL) {
		struct dns_job *job = w->mx_job;
		size_t idx = w->mx_idx;

		sl_free(w);
		dns_mx_host_done(job, idx, r);
		return;
	}
	dns_ready(d, w, r);
}

/* ------------------------------------------------------------ the channel on the loop */

static void dns_timer_cb(uv_timer_t *t);

static void
dns_timer_update(struct sl_dns *d)
{
	struct timeval tv, *tvp;
	uint64_t ms;

	if (d->channel == NULL)
		return;
	tvp = ares_timeout(d->channel, NULL, &tv);
	if (tvp == NULL) {
		uv_timer_stop(&d->timer);
		return;
	}
	ms = (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000;
	uv_timer_start(&d->timer, dns_timer_cb, ms > 0 ? ms : 1, 0);
}

static void
dns_timer_cb(uv_timer_t *t)
{
	struct sl_dns *d = t->data;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(d);
}

static void
dns_poll_cb(uv_poll_t *p, int status, int events)
{
	struct sl_dns *d = p->data;
	struct dns_sock *s = caa_container_of(p, struct dns_sock, poll);
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	/* On a poll error let c-ares read and write: it sees the error and moves on. */
	if (status < 0 || (events & UV_READABLE))
		rfd = s->fd;
	if (status < 0 || (events & UV_WRITABLE))
		wfd = s->fd;
	/* May close s (through the socket-state callback); s is freed later. */
	ares_process_fd(d->channel, rfd, wfd);
	dns_timer_update(d);
}

static void
dns_sock_closed(uv_handle_t *h)
{
	struct sl_dns *d = h->data;
	struct dns_sock *s = caa_container_of((uv_poll_t *)h, struct dns_sock, poll);

	sl_free(s);
	d->handle_cnt--;
	dns_close_step(d);
}

static void
dns_sock_close(struct sl_dns *d, struct dns_sock *s)
{
	cds_list_del(&s->link);
	/* Stops polling now, before c-ares closes the descriptor. */
	uv_close((uv_handle_t *)&s->poll, dns_sock_closed);
}

/* ARES_OPT_SOCK_STATE_CB: watch fd for what c-ares asks; (0, 0): it is about to close it. */
static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct sl_dns *d = data;
	struct dns_sock *s = NULL, *it;
	int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
	int rc;

	cds_list_for_each_entry (it, &d->socks, link) {
		if (it->fd == fd) {
			s = it;
			break;
		}
	}
	if (events == 0) {
		if (s != NULL)
			dns_sock_close(d, s);
		return;
	}
	if (s == NULL) {
		s = SL_NEW(s);
		rc = uv_poll_init_socket(d->loop, &s->poll, fd);
		if (rc < 0) {
			/* The query still ends: c-ares' timeout runs from the timer. */
			sl_log_err("resolver: cannot watch socket %d: %s", (int)fd,
				   uv_strerror(rc));
			sl_free(s);
			return;
		}
		s->fd = fd;
		s->poll.data = d;
		cds_list_add_tail(&s->link, &d->socks);
		d->handle_cnt++;
	}
	rc = uv_poll_start(&s->poll, events, dns_poll_cb);
	if (rc < 0)
		sl_log_err("resolver: cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
}

/* ------------------------------------------------------------ the cache */

static void
dns_entry_drop_result(struct sl_dns *d, struct dns_entry *e)
{
	if (e->result == NULL)
		return;
	cds_list_del(&e->lru);
	d->lru_cnt--;
	d->cache_bytes -= e->bytes;
	e->bytes = 0;
	sl_dns_result_put(e->result);
	e->result = NULL;
}

static void
dns_entry_free(struct sl_dns *d, struct dns_entry *e)
{
	SL_ASSERT(e->job == NULL);
	dns_entry_drop_result(d, e);
	sl_htable_remove(&d->cache, &e->node);
	sl_free(e);
}

static void
dns_entry_keep(struct sl_dns *d, struct dns_entry *e, struct sl_dns_result *r)
{
	e->result = r;
	e->bytes = dns_result_bytes(r) + sizeof(*e);
	cds_list_add_tail(&e->lru, &d->lru);
	d->lru_cnt++;
	d->cache_bytes += e->bytes;
	/* Bounded: the least recently used go first (in-flight entries are not listed). */
	while (d->lru_cnt > DNS_CACHE_MAX_ENTRIES || d->cache_bytes > DNS_CACHE_MAX_BYTES) {
		struct dns_entry *old = cds_list_first_entry(&d->lru, struct dns_entry, lru);

		if (old == e)
			break;
		dns_entry_free(d, old);
	}
}

size_t
sl_dns_expire(struct sl_dns *d)
{
	struct dns_entry *e, *tmp;
	uint64_t now = uv_now(d->loop);
	size_t n = 0;

	SL_CHECK_OBJ(d, DNS_MAGIC);
	cds_list_for_each_entry_safe (e, tmp, &d->lru, lru) {
		if (e->job == NULL && e->result->expires_ms <= now) {
			dns_entry_free(d, e);
			n++;
		}
	}
	return n;
}

static uint64_t
dns_expiry(const struct sl_dns *d, uint32_t ttl_s)
{
	return uv_now(d->loop) + (uint64_t)ttl_s * 1000;
}

static void
dns_job_expire(struct dns_job *job, uint64_t expires_ms)
{
	if (expires_ms < job->expires_ms)
		job->expires_ms = expires_ms;
}

/*
 * The job's result `r` (one reference, given) is complete: keep it in the
 * cache (unless it is already stale or the resolver is closing), answer
 * every waiter, free the job.
 */
static void
dns_job_done(struct dns_job *job, struct sl_dns_result *r)
{
	struct sl_dns *d = job->d;
	struct dns_entry *e = job->entry;
	struct dns_waiter *w, *tmp;
	bool is_kept = !d->is_closing && r->expires_ms > uv_now(d->loop);

	SL_ASSERT(e->job == job && e->result == NULL);
	e->job = NULL;
	if (is_kept) {
		sl_dns_result_get(r);
		dns_entry_keep(d, e, r);
	} else {
		dns_entry_free(d, e); /* before any waiter runs: nobody may find it half-done */
	}
	cds_list_for_each_entry_safe (w, tmp, &job->waiters, link) {
		cds_list_del(&w->link);
		sl_dns_result_get(r);
		dns_waiter_answer(d, w, r);
	}
	sl_dns_result_put(r);
	sl_free(job->rr);
	sl_free(job);
	/* A retired resolver closes from `soon`: never inside a c-ares callback. */
	if (--d->job_cnt == 0 && d->is_retiring && !uv_is_closing((uv_handle_t *)&d->soon))
		uv_idle_start(&d->soon, dns_soon_cb);
}

/* ------------------------------------------------------------ asking c-ares */

static void
dns_ask(struct dns_job *job, int idx, int type)
{
	struct sl_dns *d = job->d;
	const char *name = job->entry->key + 1;

	job->q[idx].job = job;
	job->q[idx].type = type;
	d->query_cnt++;
	sl_counter_add(dns_ctr_queries, 1);
	/* c-ares may call back from inside these (a bad name, no server). */
	if (job->entry->key[0] == DNS_KIND_SEARCH)
		ares_search(d->channel, name, DNS_CLASS_IN, type, dns_answer_cb, &job->q[idx]);
	else
		ares_query(d->channel, name, DNS_CLASS_IN, type, dns_answer_cb, &job->q[idx]);
}

static void
dns_job_start(struct sl_dns *d, struct dns_entry *e, struct dns_waiter *w)
{
	struct dns_job *job = SL_NEW(job);

	job->d = d;
	d->job_cnt++;
	job->entry = e;
	job->expires_ms = UINT64_MAX;
	CDS_INIT_LIST_HEAD(&job->waiters);
	cds_list_add_tail(&w->link, &job->waiters);
	e->job = job;
	if (e->key[0] == DNS_KIND_MX) {
		job->pending = 1;
		dns_ask(job, 0, DNS_TYPE_MX);
	} else {
		/* Both counted first: the A answer may arrive before AAAA is asked. */
		job->pending = 2;
		dns_ask(job, 0, DNS_TYPE_A);
		dns_ask(job, 1, DNS_TYPE_AAAA);
	}
}

/* Find or start the lookup of (kind, name); `w` is answered from the cache or when it ends. */
static void
dns_lookup(struct sl_dns *d, enum dns_kind kind, const char *name, struct dns_waiter *w)
{
	char key[SL_DNS_NAME_MAX + 2];
	struct sl_hnode *n;
	struct dns_entry *e = NULL;
	size_t len = strlen(name);

	SL_ASSERT(len <= SL_DNS_NAME_MAX);
	key[0] = (char)kind;
	memcpy(key + 1, name, len + 1);
	n = sl_htable_find(&d->cache, key, len + 1);
	if (n != NULL)
		e = caa_container_of(n, struct dns_entry, node);
	if (e != NULL && e->result != NULL) {
		if (e->result->expires_ms > uv_now(d->loop)) {
			struct sl_dns_result *r = e->result;

			cds_list_del(&e->lru);
			cds_list_add_tail(&e->lru, &d->lru);
			sl_dns_result_get(r);
			dns_waiter_answer(d, w, r);
			return;
		}
		dns_entry_drop_result(d, e);
	}
	if (e != NULL && e->job != NULL) {
		cds_list_add_tail(&w->link, &e->job->waiters);
		return;
	}
	if (e == NULL) {
		e = SL_NEW(e);
		memcpy(e->key, key, len + 2);
		e->node.key = e->key;
		e->node.key_len = len + 1;
		CDS_INIT_LIST_HEAD(&e->lru);
		sl_htable_insert(&d->cache, &e->node);
	}
	dns_job_start(d, e, w);
}

/* ------------------------------------------------------------ hosts: A and AAAA */

static void
dns_host_finish(struct dns_job *job)
{
	struct sl_dns *d = job->d;
	const char *name = job->entry->key + 1;
	struct sockaddr_storage addrs[SL_DNS_MAX_ADDRS];
	struct sl_dns_result *r = dns_result_new(1, job->expires_ms);
	size_t n;

	n = sl_dns_addrs_merge(job->addrs[0], job->addr_cnt[0], job->addrs[1], job->addr_cnt[1],
			       addrs, SL_DNS_MAX_ADDRS);
	sl_dns_addrs_sort(addrs, n, d->sort, d->sort_cnt);
	r->status = sl_dns_host_status(job->st[0], job->st[1], n);
	dns_host_set(&r->hosts[0], name, 0, r->status, addrs, n);
	switch (r->status) {
	case SL_DNS_OK:
		break;
	case SL_DNS_NXDOMAIN:
		snprintf(r->why, sizeof(r->why), "NXDOMAIN for %s", name);
		break;
	case SL_DNS_TEMPFAIL:
		snprintf(r->why, sizeof(r->why), "A/AAAA lookup for %s: %s", name,
			 ares_strerror(job->err));
		break;
	default:
		snprintf(r->why, sizeof(r->why), "no A/AAAA records for %s", name);
		break;
	}
	dns_job_done(job, r);
}

static void
dns_host_answered(struct dns_job *job, int idx, enum sl_dns_status st, unsigned char *abuf,
		  int alen)
{
	struct sockaddr_storage *out = job->addrs[idx];
	int n = SL_DNS_MAX_ADDRS, rc;

	if (st == SL_DNS_OK && idx == 0) {
		struct ares_addrttl ttls[SL_DNS_MAX_ADDRS];

		rc = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
		for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&out[i];

			sin->sin_family = AF_INET;
			sin->sin_addr = ttls[i].ipaddr;
		}
	} else if (st == SL_DNS_OK) {
		struct ares_addr6ttl ttls[SL_DNS_MAX_ADDRS];

		rc = ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &n);
		for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out[i];

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, &ttls[i].ip6addr, sizeof(sin6->sin6_addr));
		}
	} else {
		rc = ARES_ENODATA;
		n = 0;
	}
	if (st == SL_DNS_OK && rc != ARES_SUCCESS) {
		/* Only a CNAME (ENODATA), or an answer c-ares cannot read. */
		st = rc == ARES_ENODATA ? SL_DNS_NODATA : SL_DNS_TEMPFAIL;
		if (st == SL_DNS_TEMPFAIL) {
			job->err = rc;
			dns_job_expire(job, dns_expiry(job->d, SL_DNS_TEMPFAIL_TTL));
		}
	}
	job->st[idx] = st;
	job->addr_cnt[idx] = st == SL_DNS_OK ? (size_t)n : 0;
}

/* ------------------------------------------------------------ MX */

static uint32_t
dns_rand(void *arg)
{
	struct sl_dns *d = arg;

	d->rand_state ^= d->rand_state >> 12;
	d->rand_state ^= d->rand_state << 25;
	d->rand_state ^= d->rand_state >> 27;
	return (uint32_t)((d->rand_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void
dns_mx_finish(struct dns_job *job)
{
	const char *domain = job->entry->key + 1;
	enum sl_dns_status st[SL_DNS_MAX_MX];
	struct sl_dns_result *r = dns_result_new(job->rr_cnt, job->expires_ms);
	const char *first_tempfail = "";

	SL_ASSERT(job->rr_cnt <= SL_DNS_MAX_MX);
	for (size_t i = 0; i < job->rr_cnt; i++) {
		const struct sl_dns_result *hr = job->host_res[i];
		const struct sl_dns_host *h = &hr->hosts[0];

		SL_ASSERT(hr->host_cnt == 1);
		dns_host_set(&r->hosts[i], job->rr[i].name, job->rr[i].pref, h->status, h->addrs,
			     h->addr_cnt);
		st[i] = h->status;
		if (h->status == SL_DNS_TEMPFAIL && first_tempfail[0] == '\0')
			first_tempfail = hr->why;
	}
	r->is_implicit_mx = job->is_implicit;
	r->status = sl_dns_domain_status(st, job->rr_cnt, job->is_implicit);
	switch (r->status) {
	case SL_DNS_OK:
		break;
	case SL_DNS_TEMPFAIL:
		/* The first exchanger's failure says it best ("... Timeout while ..."). */
		snprintf(r->why, sizeof(r->why), "%s%.120s",
			 job->is_implicit ? "" : "no MX host resolved: ", first_tempfail);
		break;
	case SL_DNS_NXDOMAIN:
		snprintf(r->why, sizeof(r->why), "NXDOMAIN for %s", domain);
		break;
	default:
		if (job->is_implicit)
			snprintf(r->why, sizeof(r->why), "no MX and no A/AAAA records for %s",
				 domain);
		else
			snprintf(r->why, sizeof(r->why), "no A/AAAA records for any MX host of %s",
				 domain);
		break;
	}
	for (size_t i = 0; i < job->rr_cnt; i++)
		sl_dns_result_put(job->host_res[i]);
	dns_job_done(job, r);
}

/*
 * The first exchanger with addresses while others are outstanding: waiters
 * that asked (sl_dns_mx_early) get a partial result now.
 */
static void
dns_mx_early(struct dns_job *job)
{
	struct sl_dns_result *r;
	struct dns_waiter *w;
	size_t n = 0, k = 0;

	cds_list_for_each_entry (w, &job->waiters, link)
		n += w->early != NULL;
	job->is_early_sent = true;
	if (n == 0)
		return;
	n = 0;
	for (size_t i = 0; i < job->rr_cnt; i++)
		n += job->host_res[i] != NULL && job->host_res[i]->hosts[0].addr_cnt > 0;
	r = dns_result_new(n, job->expires_ms);
	r->is_partial = true;
	r->is_implicit_mx = job->is_implicit;
	for (size_t i = 0; i < job->rr_cnt; i++) {
		const struct sl_dns_result *hr = job->host_res[i];

		if (hr != NULL && hr->hosts[0].addr_cnt > 0)
			dns_host_set(&r->hosts[k++], job->rr[i].name, job->rr[i].pref, SL_DNS_OK,
				     hr->hosts[0].addrs, hr->hosts[0].addr_cnt);
	}
	cds_list_for_each_entry (w, &job->waiters, link) {
		struct dns_waiter *e;

		if (w->early == NULL)
			continue;
		e = SL_NEW(e);
		e->cb = w->early;
		e->arg = w->arg;
		sl_dns_result_get(r);
		dns_ready(job->d, e, r);
	}
	sl_dns_result_put(r);
}

/* An exchanger's addresses are in (r: a reference for the job). */
static void
dns_mx_host_done(struct dns_job *job, size_t idx, struct sl_dns_result *r)
{
	SL_ASSERT(idx < job->rr_cnt && job->host_res[idx] == NULL);
	job->host_res[idx] = r;
	dns_job_expire(job, r->expires_ms);
	if (--job->pending == 0) {
		dns_mx_finish(job);
		return;
	}
	if (!job->is_early_sent && r->host_cnt == 1 && r->hosts[0].addr_cnt > 0)
		dns_mx_early(job);
}

static void
dns_mx_answered(struct dns_job *job, enum sl_dns_status st, unsigned char *abuf, int alen, int err)
{
	struct sl_dns *d = job->d;
	const char *domain = job->entry->key + 1;
	struct ares_mx_reply *mx = NULL;
	struct sl_dns_rr_mx *rr;
	size_t cnt = 0, cap = 1;
	struct sl_dns_result *r = NULL;
	enum sl_dns_mx_plan plan;
	char why[sizeof(r->why)];

	if (st == SL_DNS_OK) {
		int rc = ares_parse_mx_reply(abuf, alen, &mx);

		if (rc == ARES_ENODATA) {
			st = SL_DNS_NODATA; /* a CNAME to a name without MX */
		} else if (rc != ARES_SUCCESS) {
			st = SL_DNS_TEMPFAIL;
			err = rc;
			dns_job_expire(job, dns_expiry(d, SL_DNS_TEMPFAIL_TTL));
		}
		for (struct ares_mx_reply *m = mx; m != NULL; m = m->next)
			cap++;
	}
	rr = sl_calloc(cap, sizeof(*rr));
	for (struct ares_mx_reply *m = mx; m != NULL; m = m->next, cnt++) {
		rr[cnt].pref = m->priority;
		/* Too long for a host name (c-ares escapes odd octets): never a usable one. */
		snprintf(rr[cnt].name, sizeof(rr[cnt].name), "%s",
			 strlen(m->host) <= SL_DNS_NAME_MAX ? m->host : "[too long]");
	}
	ares_free_data(mx);
	plan = sl_dns_mx_plan(domain, st, rr, &cnt, SL_DNS_MAX_MX, dns_rand, d);
	switch (plan) {
	case SL_DNS_MX_FAIL:
		if (st == SL_DNS_NXDOMAIN)
			snprintf(why, sizeof(why), "NXDOMAIN for %s", domain);
		else
			snprintf(why, sizeof(why), "MX lookup for %s: %s", domain,
				 ares_strerror(err));
		r = dns_result_fail(st, job->expires_ms, why);
		break;
	case SL_DNS_MX_NULL:
		snprintf(why, sizeof(why), "null MX (RFC 7505) for %s: it accepts no mail", domain);
		r = dns_result_fail(SL_DNS_NULL_MX, job->expires_ms, why);
		break;
	case SL_DNS_MX_UNUSABLE:
		snprintf(why, sizeof(why), "no usable MX host name for %s", domain);
		r = dns_result_fail(SL_DNS_NODATA, job->expires_ms, why);
		break;
	case SL_DNS_MX_IMPLICIT:
	case SL_DNS_MX_LIST:
		if (d->is_closing) {
			r = dns_result_fail(SL_DNS_TEMPFAIL, 0, "DNS resolver shutting down");
			break;
		}
		job->is_implicit = plan == SL_DNS_MX_IMPLICIT;
		job->rr = rr;
		job->rr_cnt = cnt;
		/* One extra count: exchangers answered from the cache finish at once. */
		job->pending = 1;
		for (size_t i = 0; i < cnt; i++) {
			struct dns_waiter *w = SL_NEW(w);

			w->mx_job = job;
			w->mx_idx = i;
			job->pending++;
			dns_lookup(d, DNS_KIND_HOST, rr[i].name, w);
		}
		if (--job->pending == 0)
			dns_mx_finish(job);
		return;
	}
	sl_free(rr);
	dns_job_done(job, r);
}

/* ------------------------------------------------------------ answers */

static enum sl_dns_status
dns_status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS:
		return SL_DNS_OK;
	case ARES_ENODATA:
		return SL_DNS_NODATA;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME: /* names are checked before asking: only a name c-ares refuses */
		return SL_DNS_NXDOMAIN;
	default:
		/* ETIMEOUT, ECONNREFUSED, ESERVFAIL, EREFUSED, EFORMERR, ENOTIMP,
		 * EBADRESP, ECANCELLED, EDESTRUCTION, ENOMEM: ask again later. */
		return SL_DNS_TEMPFAIL;
	}
}

static void
dns_answer_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dns_job *job = q->job;
	struct sl_dns *d = job->d;
	enum sl_dns_status st = dns_status_of(status);
	struct sl_dns_msg_info info;
	bool has_info = abuf != NULL && alen > 0 && sl_dns_msg_scan(abuf, (size_t)alen, &info) == 0;
	uint32_t ttl;

	if (st == SL_DNS_OK && !has_info) {
		st = SL_DNS_TEMPFAIL;
		status = ARES_EBADRESP;
	}
	switch (st) {
	case SL_DNS_OK:
		ttl = sl_dns_ttl_positive(info.an_ttl == UINT32_MAX ? 0 : info.an_ttl, d->min_ttl);
		break;
	case SL_DNS_NXDOMAIN:
	case SL_DNS_NODATA:
		ttl = sl_dns_ttl_negative(has_info ? info.neg_ttl : UINT32_MAX, d->min_ttl);
		break;
	default:
		job->err = status;
		ttl = SL_DNS_TEMPFAIL_TTL;
		break;
	}
	dns_job_expire(job, dns_expiry(d, ttl));
	if (q->type == DNS_TYPE_MX) {
		dns_mx_answered(job, st, abuf, alen, status);
		return;
	}
	dns_host_answered(job, q->type == DNS_TYPE_A ? 0 : 1, st, abuf, alen);
	if (--job->pending == 0)
		dns_host_finish(job);
}

/* ------------------------------------------------------------ the API */

static void
dns_lib_init(void)
{
	dns_lib_rc = ares_library_init(ARES_LIB_INIT_ALL);
	dns_ctr_queries = sl_counter_register("dns.queries");
}

/* Read all of `path` (at most SL_DNS_CONF_MAX_LEN bytes) into a new buffer. */
static int
dns_read_file(const char *path, char **text, size_t *len, char *why, size_t why_len)
{
	char *buf = sl_malloc(SL_DNS_CONF_MAX_LEN + 1);
	size_t n = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		goto fail_open;
	}
	for (;;) {
		ssize_t got = read(fd, buf + n, SL_DNS_CONF_MAX_LEN + 1 - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(why, why_len, "%s: %s", path, strerror(errno));
			goto fail_read;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > SL_DNS_CONF_MAX_LEN) {
			snprintf(why, why_len, "%s: larger than %u bytes", path,
				 SL_DNS_CONF_MAX_LEN);
			goto fail_read;
		}
	}
	*text = buf;
	*len = n;
	buf = NULL;
	rc = 0;
fail_read:
	close(fd);
fail_open:
	sl_free(buf);
	return rc;
}

const char *
sl_dns_conf_path(const char *resolv_conf)
{
	return resolv_conf != NULL && resolv_conf[0] != '\0' ? resolv_conf : "/etc/resolv.conf";
}

int
sl_dns_conf_load(const char *resolv_conf, struct sl_dns_conf *conf, char *why, size_t why_len)
{
	const char *path = sl_dns_conf_path(resolv_conf);
	char *text = NULL;
	size_t len;
	int rc = -1;

	memset(conf, 0, sizeof(*conf));
	if (dns_read_file(path, &text, &len, why, why_len) == 0 &&
	    sl_dns_conf_parse(text, len, path, conf, why, why_len) == 0)
		rc = 0;
	sl_free(text);
	return rc;
}

struct sl_dns *
sl_dns_new(uv_loop_t *loop, const struct sl_dns_opts *opts, char *why, size_t why_len)
{
	struct sl_dns_conf *conf = SL_NEW(conf);
	struct sl_dns *d = NULL;

	if (sl_dns_conf_load(opts->resolv_conf, conf, why, why_len) == 0)
		d = sl_dns_new_conf(loop, opts, conf, why, why_len);
	sl_free(conf);
	return d;
}

struct sl_dns *
sl_dns_new_conf(uv_loop_t *loop, const struct sl_dns_opts *opts, const struct sl_dns_conf *conf,
		char *why, size_t why_len)
{
	const char *path = sl_dns_conf_path(opts->resolv_conf);
	char *domains[SL_DNS_CONF_MAX_SEARCH];
	struct ares_options ao;
	struct sl_dns *d, *ret = NULL;
	int rc, optmask;

	if (conf->warning[0] != '\0')
		sl_log_warn("resolver: %s", conf->warning);
	/* Not thread-safe in c-ares 1.18: once for every delivery thread. */
	pthread_once(&dns_lib_once, dns_lib_init);
	if (dns_lib_rc != ARES_SUCCESS) {
		snprintf(why, why_len, "c-ares: %s", ares_strerror(dns_lib_rc));
		goto out;
	}

	d = SL_NEW(d);
	d->magic = DNS_MAGIC;
	d->loop = loop;
	d->min_ttl = opts->min_ttl;
	CDS_INIT_LIST_HEAD(&d->socks);
	CDS_INIT_LIST_HEAD(&d->ready);
	CDS_INIT_LIST_HEAD(&d->lru);
	memcpy(d->sort, conf->sort, sizeof(d->sort));
	d->sort_cnt = conf->sort_cnt;
	if (getrandom(&d->rand_state, sizeof(d->rand_state), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(d->rand_state))
		d->rand_state = uv_hrtime() ^ (uint64_t)(uintptr_t)d;
	d->rand_state |= 1; /* xorshift never leaves 0 */

	/*
	 * Every field given, so c-ares reads neither /etc/resolv.conf nor the
	 * environment (LOCALDOMAIN, RES_OPTIONS): the file is the whole
	 * configuration.  The servers come after, with their ports.
	 */
	memset(&ao, 0, sizeof(ao));
	ao.flags = ARES_FLAG_NOALIASES | ARES_FLAG_EDNS;
	ao.timeout = (int)(opts->timeout_ms != 0 ? opts->timeout_ms
			   : conf->timeout_s > 0 ? (unsigned)conf->timeout_s * 1000
						 : DNS_TIMEOUT_MS);
	ao.tries = (int)(opts->tries != 0     ? opts->tries
			 : conf->attempts > 0 ? (unsigned)conf->attempts
					      : DNS_TRIES);
	ao.ndots = conf->ndots >= 0 ? conf->ndots : 1;
	for (size_t i = 0; i < conf->search_cnt; i++)
		domains[i] = (char *)conf->search[i]; /* c-ares copies them */
	ao.domains = domains;
	ao.ndomains = (int)conf->search_cnt;
	ao.lookups = (char *)"b";
	ao.sock_state_cb = dns_sock_state_cb;
	ao.sock_state_cb_data = d;
	ao.ednspsz = DNS_EDNS_SIZE;
	optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS |
		  ARES_OPT_SERVERS | ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_SORTLIST |
		  ARES_OPT_SOCK_STATE_CB | ARES_OPT_EDNSPSZ |
		  (conf->is_rotate ? ARES_OPT_ROTATE : ARES_OPT_NOROTATE);
	rc = ares_init_options(&d->channel, &ao, optmask);
	if (rc != ARES_SUCCESS) {
		snprintf(why, why_len, "c-ares: %s", ares_strerror(rc));
		goto fail_channel;
	}
	rc = ares_set_servers_ports_csv(d->channel, conf->servers_csv);
	if (rc != ARES_SUCCESS) {
		snprintf(why, why_len, "%s: nameservers \"%s\": %s", path, conf->servers_csv,
			 ares_strerror(rc));
		goto fail_servers;
	}
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	uv_idle_init(loop, &d->soon);
	d->soon.data = d;
	d->handle_cnt = 1; /* the timer; `soon` is closed last, on its own */
	ret = d;
	goto out;

fail_servers:
	ares_destroy(d->channel);
fail_channel:
	d->magic = 0;
	sl_free(d);
out:
	return ret;
}

/* Closing: once the timer and every poll are closed and nobody waits, close `soon`. */
static void
dns_soon_closed(uv_handle_t *h)
{
	struct sl_dns *d = h->data;
	void (*done)(void *arg) = d->done;
	void *arg = d->done_arg;

	/* Answers queued while `soon` was closing (a late lookup: TEMPFAIL). */
	while (!cds_list_empty(&d->ready))
		dns_drain_ready(d);
	SL_ASSERT(d->handle_cnt == 0 && d->cache.cnt == 0);
	sl_htable_free(&d->cache);
	d->magic = 0;
	sl_free(d);
	if (done != NULL)
		done(arg);
}

static void
dns_close_step(struct sl_dns *d)
{
	if (d->is_closing && d->handle_cnt == 0 && cds_list_empty(&d->ready) &&
	    !uv_is_closing((uv_handle_t *)&d->soon))
		uv_close((uv_handle_t *)&d->soon, dns_soon_closed);
}

static void
dns_timer_closed(uv_handle_t *h)
{
	struct sl_dns *d = h->data;

	d->handle_cnt--;
	dns_close_step(d);
}

void
sl_dns_close(struct sl_dns *d, void (*done)(void *arg), void *arg)
{
	struct dns_sock *s, *stmp;
	struct dns_entry *e, *etmp;

	SL_CHECK_OBJ(d, DNS_MAGIC);
	if (d->is_retiring && d->is_closing)
		return; /* its lookups ended: already closing */
	SL_ASSERT(!d->is_closing);
	d->is_closing = true;
	if (!d->is_retiring) {
		d->done = done;
		d->done_arg = arg;
	}
	/*
	 * Every query is called back with ARES_ECANCELLED (then any left with
	 * ARES_EDESTRUCTION): each job ends TEMPFAIL, uncached, and its callers
	 * are queued on d->ready.  c-ares says (0, 0) for each socket it closes.
	 */
	ares_cancel(d->channel);
	ares_destroy(d->channel);
	d->channel = NULL;
	cds_list_for_each_entry_safe (s, stmp, &d->socks, link)
		dns_sock_close(d, s);
	cds_list_for_each_entry_safe (e, etmp, &d->lru, lru)
		dns_entry_free(d, e);
	uv_timer_stop(&d->timer);
	uv_close((uv_handle_t *)&d->timer, dns_timer_closed);
}

void
sl_dns_retire(struct sl_dns *d, void (*done)(void *arg), void *arg)
{
	SL_CHECK_OBJ(d, DNS_MAGIC);
	SL_ASSERT(!d->is_closing && !d->is_retiring);
	d->is_retiring = true;
	d->done = done;
	d->done_arg = arg;
	/* Nothing in flight: close from `soon`, after this call returns. */
	if (d->job_cnt == 0)
		uv_idle_start(&d->soon, dns_soon_cb);
}

static void
dns_call(struct sl_dns *d, bool is_mx, const char *name,
	 void (*early)(void *arg, struct sl_dns_result *r),
	 void (*cb)(void *arg, struct sl_dns_result *r), void *arg)
{
	char norm[SL_DNS_NAME_MAX + 1], shown[96], why[160];
	struct sockaddr_storage ss;
	size_t len = strlen(name);
	enum dns_kind kind = is_mx ? DNS_KIND_MX : DNS_KIND_HOST;
	struct dns_waiter *w;

	SL_CHECK_OBJ(d, DNS_MAGIC);
	SL_ASSERT(cb != NULL);
	w = SL_NEW(w);
	w->cb = cb;
	w->early = early;
	w->arg = arg;
	if (d->is_closing || d->is_retiring) {
		dns_ready(d, w, dns_result_fail(SL_DNS_TEMPFAIL, 0, "DNS resolver shutting down"));
		return;
	}
	/* An address literal needs no DNS (a domain only in brackets, RFC 5321 §4.1.3). */
	if ((!is_mx || name[0] == '[') && sl_dns_addr_parse(name, &ss) == 0) {
		struct sl_dns_result *r = dns_result_new(1, UINT64_MAX);

		r->is_implicit_mx = is_mx;
		dns_host_set(&r->hosts[0], name, 0, SL_DNS_OK, &ss, 1);
		dns_ready(d, w, r);
		return;
	}
	if (sl_dns_name_norm(name, norm, sizeof(norm)) < 0) {
		dns_printable(name, shown, sizeof(shown));
		snprintf(why, sizeof(why), "invalid %s name \"%s\"", is_mx ? "domain" : "host",
			 shown);
		dns_ready(d, w, dns_result_fail(SL_DNS_NXDOMAIN, 0, why));
		return;
	}
	/* A single label from sl_dns_host ("mailhub"): resolv.conf's search list applies. */
	if (!is_mx && strchr(norm, '.') == NULL && name[len - 1] != '.')
		kind = DNS_KIND_SEARCH;
	dns_lookup(d, kind, norm, w);
	dns_timer_update(d);
}

void
sl_dns_mx(struct sl_dns *d, const char *domain, void (*cb)(void *arg, struct sl_dns_result *r),
	  void *arg)
{
	dns_call(d, true, domain, NULL, cb, arg);
}

void
sl_dns_mx_early(struct sl_dns *d, const char *domain,
		void (*early)(void *arg, struct sl_dns_result *r),
		void (*cb)(void *arg, struct sl_dns_result *r), void *arg)
{
	dns_call(d, true, domain, early, cb, arg);
}

void
sl_dns_host(struct sl_dns *d, const char *host, void (*cb)(void *arg, struct sl_dns_result *r),
	    void *arg)
{
	dns_call(d, false, host, NULL, cb, arg);
}

uint64_t
sl_dns_query_cnt(const struct sl_dns *d)
{
	SL_CHECK_OBJ(d, DNS_MAGIC);
	return d->query_cnt;
}
