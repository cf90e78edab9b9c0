/*
 * stages/stats.c - figures kept for SNMP: per-group counters, the enhanced
 * status codes each group met, and the delivery threads' per-domain views
 * (see stats.h).
 *
 * A group's counters are sharded: STATS_SHARDS cache-line-aligned rows of
 * every statistic, and a thread adds (relaxed atomic adds) into the row of
 * its ordinal, handed out at its first count, so threads rarely share a
 * line; readers sum the rows.  Adds to a binding group go to "none/all" as
 * well.  Error codes live in a fixed table per group, open addressing on
 * the code: a thread claims a free slot with a compare-and-swap and counts
 * with atomic adds; once the table is full, codes not in it are counted in
 * one catch-all (errors_other), so counting never allocates or locks.
 *
 * Groups are made under stats_lock (cold: listener set-up, queue creation)
 * and linked at the end of a list with a release store; readers walk it
 * without the lock.  They are never freed: an index keeps its meaning while
 * the process runs (RFC 2789).
 *
 * Per-domain views: one struct sl_holder (engine/rcu.h) per delivery
 * thread; the thread publishes an immutable block (rows and their strings)
 * and the holder's previous block goes through call_rcu.  Readers peek at
 * every slot inside one read-side section.
 *
 * Threads: counting from any thread, lock-free; group making under
 * stats_lock (the only lock, taken alone); readers anywhere (the domain
 * views: threads registered with RCU).  Parses enhanced status codes
 * (bounded: three numbers of at most three digits).  Ownership: this file
 * owns the groups and the published views.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/htable.h"
#include "engine/rcu.h"
#include "stages/stats.h"

#define STATS_SHARDS      16 /* counter rows per group; threads beyond share them */
#define STATS_LINE        64 /* a cache line */
#define STATS_GROUP_MAGIC 0x57a75001u
#define STATS_VIEW_MAGIC  0x57a75002u

struct stats_shard {
	uint64_t v[SL_GS__COUNT]; /* relaxed atomic adds; a gauge's row may wrap below 0 */
} __attribute__((aligned(STATS_LINE)));

struct stats_err {
	uint32_t code; /* 0: free; set once (CAS), never changes after */
	uint64_t cnt;  /* atomic */
};

struct sl_group {
	struct stats_shard shard[STATS_SHARDS];
	unsigned magic;
	unsigned index;
	enum sl_group_kind kind;
	struct sl_group *total; /* "none/all" for a binding group, else NULL */
	struct sl_group *next;  /* in index order; atomic (readers walk without the lock) */
	struct sl_hnode node;   /* stats_names; key: kind letter + name */
	char *key;              /* owned: "B" or "L" or "T", then the name */
	time_t created;
	time_t last_in, last_out; /* atomic */
	uint64_t errors_other;    /* atomic: codes met with the table full */
	struct stats_err err[SL_GROUP_ERRORS_MAX];
};

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_htable stats_names = SL_HTABLE_INIT; /* stats_lock */
static struct sl_group *stats_head;                   /* "none/all"; atomic */
static struct sl_group *stats_tail;                   /* stats_lock */
static struct sl_group *stats_default;                /* "none/default"; stats_lock */
static unsigned stats_group_cnt;                      /* stats_lock */
static unsigned stats_next_ordinal;                   /* atomic */
static __thread unsigned stats_ordinal;               /* 0: none yet */

/* Gauges: a reader's sum below zero (a race between rows) reads as 0. */
static const bool stats_is_gauge[SL_GS__COUNT] = {
	[SL_GS_STORED_MSGS] = true, [SL_GS_STORED_BYTES] = true, [SL_GS_STORED_RCPTS] = true,
	[SL_GS_ACTIVE] = true,      [SL_GS_DELAYED] = true,      [SL_GS_IN_ASSOC] = true,
	[SL_GS_OUT_ASSOC] = true,
};

/* ------------------------------------------------------------ making groups */

/* stats_lock held: the group keyed `key` (kind letter + name), made if new. */
static struct sl_group *
stats_group_locked(enum sl_group_kind kind, const char *key)
{
	size_t len = strlen(key);
	struct sl_hnode *n = sl_htable_find(&stats_names, key, len);
	struct sl_group *g;

	if (n != NULL)
		return caa_container_of(n, struct sl_group, node);
	/* Never freed (see the head comment), so the unaligned start need not be kept. */
	g = (struct sl_group *)(((uintptr_t)sl_calloc(1, sizeof(*g) + STATS_LINE - 1) + STATS_LINE -
				 1) &
				~(uintptr_t)(STATS_LINE - 1));
	g->magic = STATS_GROUP_MAGIC;
	g->kind = kind;
	g->index = ++stats_group_cnt;
	g->key = sl_strdup(key);
	g->node.key = g->key;
	g->node.key_len = len;
	g->created = time(NULL);
	if (kind == SL_GROUP_BINDING)
		g->total = stats_head;
	sl_htable_insert(&stats_names, &g->node);
	/* Readers walk the list without the lock: link it whole. */
	if (stats_tail == NULL)
		__atomic_store_n(&stats_head, g, __ATOMIC_RELEASE);
	else
		__atomic_store_n(&stats_tail->next, g, __ATOMIC_RELEASE);
	stats_tail = g;
	return g;
}

/* stats_lock held: "none/all" (1) and "none/default" (2) come first. */
static void
stats_init_locked(void)
{
	if (stats_head != NULL)
		return;
	stats_group_locked(SL_GROUP_TOTAL, "Tnone/all");
	stats_default = stats_group_locked(SL_GROUP_BINDING, "Bnone/default");
}

static struct sl_group *
stats_group(enum sl_group_kind kind, const char *key)
{
	struct sl_group *g;

	pthread_mutex_lock(&stats_lock);
	stats_init_locked();
	g = stats_group_locked(kind, key);
	pthread_mutex_unlock(&stats_lock);
	return g;
}

struct sl_group *
sl_group_of_binding(const char *binding, const char *binding_group)
{
	struct sl_group *g;
	char *key;

	if (binding == NULL || strcasecmp(binding, "default") == 0) {
		pthread_mutex_lock(&stats_lock);
		stats_init_locked();
		g = stats_default;
		pthread_mutex_unlock(&stats_lock);
		return g;
	}
	if (binding_group == NULL || strcasecmp(binding_group, "default") == 0)
		binding_group = "none";
	key = sl_asprintf("B%s/%s", binding_group, binding);
	g = stats_group(SL_GROUP_BINDING, key);
	sl_free(key);
	return g;
}

struct sl_group *
sl_group_of_listener(const char *address)
{
	char *key = sl_asprintf("Llistener/%s", address);
	struct sl_group *g = stats_group(SL_GROUP_LISTENER, key);

	sl_free(key);
	return g;
}

unsigned
sl_group_index(const struct sl_group *g)
{
	return g != NULL ? g->index : 0;
}

/* ------------------------------------------------------------ counting */

static inline struct stats_shard *
stats_shard(struct sl_group *g)
{
	unsigned o = stats_ordinal;

	if (__builtin_expect(o == 0, 0))
		o = stats_ordinal = __atomic_add_fetch(&stats_next_ordinal, 1, __ATOMIC_RELAXED);
	return &g->shard[(o - 1) % STATS_SHARDS];
}

void
sl_group_add(struct sl_group *g, enum sl_gstat s, int64_t delta)
{
	if (g == NULL)
		return;
	SL_ASSERT((unsigned)s < SL_GS__COUNT);
	__atomic_fetch_add(&stats_shard(g)->v[s], (uint64_t)delta, __ATOMIC_RELAXED);
	if (g->total != NULL)
		__atomic_fetch_add(&stats_shard(g->total)->v[s], (uint64_t)delta, __ATOMIC_RELAXED);
}

static void
stats_touch(time_t *at, time_t now)
{
	/* Once a second at most: the line is not written by every count. */
	if (__atomic_load_n(at, __ATOMIC_RELAXED) != now)
		__atomic_store_n(at, now, __ATOMIC_RELAXED);
}

void
sl_group_touch(struct sl_group *g, bool is_inbound)
{
	time_t now = time(NULL);

	if (g == NULL)
		return;
	stats_touch(is_inbound ? &g->last_in : &g->last_out, now);
	if (g->total != NULL)
		stats_touch(is_inbound ? &g->total->last_in : &g->total->last_out, now);
}

/* "C.S.D" (the whole of s[0..len)) as class*1000000+subject*1000+detail; 0 if it is not one. */
static uint32_t
stats_code_parse(const char *s, size_t len)
{
	uint32_t part[3] = { 0, 0, 0 };
	size_t i = 0;

	for (unsigned k = 0; k < 3; k++) {
		size_t digits = 0;

		if (k > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			part[k] = part[k] * 10 + (uint32_t)(s[i] - '0');
			digits++;
			i++;
		}
		/* RFC 3463 §2: class one digit, subject and detail one to three. */
		if (digits == 0 || digits > (k == 0 ? 1u : 3u))
			return 0;
	}
	if (i != len || (part[0] != 2 && part[0] != 4 && part[0] != 5))
		return 0;
	return part[0] * 1000000 + part[1] * 1000 + part[2];
}

static void
stats_error_count(struct sl_group *g, uint32_t code)
{
	size_t h = (code * 2654435761u) % SL_GROUP_ERRORS_MAX;

	for (size_t probe = 0; probe < SL_GROUP_ERRORS_MAX; probe++) {
		struct stats_err *e = &g->err[(h + probe) % SL_GROUP_ERRORS_MAX];
		uint32_t cur = __atomic_load_n(&e->code, __ATOMIC_ACQUIRE);

		if (cur == 0) {
			uint32_t expect = 0;

			/* Claim it; a thread that claimed it first for the same code is fine too. */
			if (__atomic_compare_exchange_n(&e->code, &expect, code, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				cur = code;
			else
				cur = expect;
		}
		if (cur == code) {
			__atomic_fetch_add(&e->cnt, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	/* The table is full (SL_GROUP_ERRORS_MAX distinct codes): the catch-all. */
	__atomic_fetch_add(&g->errors_other, 1, __ATOMIC_RELAXED);
}

static void
stats_error(struct sl_group *g, uint32_t code)
{
	if (g == NULL || code == 0)
		return;
	stats_error_count(g, code);
	if (g->total != NULL)
		stats_error_count(g->total, code);
}

void
sl_group_error(struct sl_group *g, const char *enhanced)
{
	if (g == NULL || enhanced == NULL)
		return;
	stats_error(g, stats_code_parse(enhanced, strlen(enhanced)));
}

void
sl_group_error_reply(struct sl_group *g, unsigned code, const char *text)
{
	unsigned cls = code / 100;
	uint32_t c = 0;

	if (g == NULL || code < 200 || code > 599 || (cls != 2 && cls != 4 && cls != 5))
		return;
	if (text != NULL) {
		size_t len = strcspn(text, " \t\r\n");

		c = stats_code_parse(text, len);
		if (c / 1000000 != cls)
			c = 0; /* none, or not of the reply's class (RFC 3463 §2) */
	}
	stats_error(g, c != 0 ? c : cls * 1000000);
}

/* ------------------------------------------------------------ readers */

static struct sl_group *
stats_first(void)
{
	struct sl_group *g = __atomic_load_n(&stats_head, __ATOMIC_ACQUIRE);

	if (g == NULL) {
		pthread_mutex_lock(&stats_lock);
		stats_init_locked();
		pthread_mutex_unlock(&stats_lock);
		g = __atomic_load_n(&stats_head, __ATOMIC_ACQUIRE);
	}
	return g;
}

void
sl_group_foreach(void (*fn)(const struct sl_group_info *gi, void *arg), void *arg)
{
	for (struct sl_group *g = stats_first(); g != NULL;
	     g = __atomic_load_n(&g->next, __ATOMIC_ACQUIRE)) {
		struct sl_group_info gi = {
			.index = g->index,
			.kind = g->kind,
			.name = g->key + 1,
			.created = g->created,
			.last_in = __atomic_load_n(&g->last_in, __ATOMIC_RELAXED),
			.last_out = __atomic_load_n(&g->last_out, __ATOMIC_RELAXED),
			.errors_other = __atomic_load_n(&g->errors_other, __ATOMIC_RELAXED),
		};

		for (unsigned k = 0; k < STATS_SHARDS; k++)
			for (unsigned s = 0; s < SL_GS__COUNT; s++)
				gi.v[s] += __atomic_load_n(&g->shard[k].v[s], __ATOMIC_RELAXED);
		for (unsigned s = 0; s < SL_GS__COUNT; s++)
			if (stats_is_gauge[s] && (int64_t)gi.v[s] < 0)
				gi.v[s] = 0;
		fn(&gi, arg);
	}
}

static int
stats_err_cmp(const void *x, const void *y)
{
	const struct stats_err *a = x, *b = y;

	return a->code < b->code ? -1 : a->code > b->code;
}

void
sl_group_errors_foreach(void (*fn)(unsigned group, uint32_t code, uint64_t cnt, void *arg),
			void *arg)
{
	for (struct sl_group *g = stats_first(); g != NULL;
	     g = __atomic_load_n(&g->next, __ATOMIC_ACQUIRE)) {
		struct stats_err copy[SL_GROUP_ERRORS_MAX];
		size_t n = 0;

		for (size_t i = 0; i < SL_GROUP_ERRORS_MAX; i++) {
			uint32_t code = __atomic_load_n(&g->err[i].code, __ATOMIC_ACQUIRE);
			uint64_t cnt = __atomic_load_n(&g->err[i].cnt, __ATOMIC_RELAXED);

			/* A slot just claimed may not be counted yet: next time. */
			if (code != 0 && cnt != 0) {
				copy[n].code = code;
				copy[n++].cnt = cnt;
			}
		}
		qsort(copy, n, sizeof(copy[0]), stats_err_cmp);
		for (size_t i = 0; i < n; i++)
			fn(g->index, copy[i].code, copy[i].cnt, arg);
	}
}

/* ------------------------------------------------------------ per-domain views */

/* One published view: rows, then their strings, in one block. */
struct stats_view {
	struct sl_rcuobj obj;
	unsigned magic;
	size_t cnt;
	struct sl_domain_stat rows[];
};

static struct sl_holder stats_views[SL_DOMAIN_VIEW_SLOTS];
static unsigned stats_view_hw; /* atomic: slots 0..hw-1 were ever published */

static void
stats_view_free(struct sl_rcuobj *obj)
{
	struct stats_view *v = caa_container_of(obj, struct stats_view, obj);

	SL_CHECK_OBJ(v, STATS_VIEW_MAGIC);
	v->magic = 0;
	sl_free(v);
}

static bool
stats_row_same(const struct sl_domain_stat *a, const struct sl_domain_stat *b)
{
	return a->group == b->group && a->receptions == b->receptions &&
	       a->deliveries == b->deliveries && a->failures == b->failures &&
	       a->transients == b->transients && a->conns == b->conns && a->active == b->active &&
	       a->delayed == b->delayed && strcmp(a->domain, b->domain) == 0 &&
	       strcmp(a->binding, b->binding) == 0;
}

bool
sl_domain_stats_publish(unsigned slot, const struct sl_domain_stat *rows, size_t cnt)
{
	struct stats_view *cur, *v;
	size_t str_len = 0;
	char *p;

	if (slot >= SL_DOMAIN_VIEW_SLOTS)
		return false;
	/* Only this thread publishes here, so its current view cannot go away under it. */
	{
		struct sl_rcuobj *o = __atomic_load_n(&stats_views[slot].cur, __ATOMIC_RELAXED);

		cur = o != NULL ? caa_container_of(o, struct stats_view, obj) : NULL;
	}
	if (cnt == 0) {
		if (cur == NULL)
			return false;
		sl_holder_publish(&stats_views[slot], NULL);
		return true;
	}
	if (cur != NULL && cur->cnt == cnt) {
		size_t i = 0;

		while (i < cnt && stats_row_same(&cur->rows[i], &rows[i]))
			i++;
		if (i == cnt)
			return false;
	}
	for (size_t i = 0; i < cnt; i++)
		str_len += strlen(rows[i].domain) + 1 + strlen(rows[i].binding) + 1;
	v = sl_malloc(sizeof(*v) + cnt * sizeof(v->rows[0]) + str_len);
	sl_rcuobj_init(&v->obj, stats_view_free);
	v->magic = STATS_VIEW_MAGIC;
	v->cnt = cnt;
	p = (char *)&v->rows[cnt];
	for (size_t i = 0; i < cnt; i++) {
		size_t dl = strlen(rows[i].domain) + 1, bl = strlen(rows[i].binding) + 1;

		v->rows[i] = rows[i];
		v->rows[i].domain = memcpy(p, rows[i].domain, dl);
		p += dl;
		v->rows[i].binding = memcpy(p, rows[i].binding, bl);
		p += bl;
	}
	{
		unsigned hw = __atomic_load_n(&stats_view_hw, __ATOMIC_RELAXED);

		while (hw <= slot &&
		       !__atomic_compare_exchange_n(&stats_view_hw, &hw, slot + 1, false,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	sl_holder_publish(&stats_views[slot], &v->obj);
	return true;
}

void
sl_domain_stats_unpublish(unsigned slot)
{
	if (slot < SL_DOMAIN_VIEW_SLOTS)
		sl_holder_publish(&stats_views[slot], NULL);
}

void
sl_domain_stats_foreach(void (*fn)(const struct sl_domain_stat *d, void *arg), void *arg)
{
	unsigned hw = __atomic_load_n(&stats_view_hw, __ATOMIC_RELAXED);

	for (unsigned i = 0; i < hw; i++) {
		/* A reference, not a read-side section: fn runs once per queue. */
		struct sl_rcuobj *o = sl_holder_get(&stats_views[i]);
		const struct stats_view *v;

		if (o == NULL)
			continue;
		v = caa_container_of(o, struct stats_view, obj);
		SL_CHECK_OBJ(v, STATS_VIEW_MAGIC);
		for (size_t k = 0; k < v->cnt; k++)
			fn(&v->rows[k], arg);
		sl_rcuobj_put(o);
	}
}
