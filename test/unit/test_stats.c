/*
 * test/unit/test_stats.c - SNMP figures: groups, their counts and error
 * codes, and the per-domain views.
 *
 * Groups: "none/all" and "none/default" come first (indexes 1 and 2), then
 * groups in the order their names are first asked for; a binding group's
 * counts are in "none/all" too, a listener's are not; threads counting at
 * once (while a reader sums) give exact totals; gauges go down and never
 * read below zero; enhanced status codes are parsed strictly, counted per
 * code, listed in code order, and past the table's capacity land in the
 * catch-all.  Views: rows are copied when published, an unchanged view is
 * not published again, and readers walking the views while a thread keeps
 * publishing only ever see whole, live views.
 *
 * Threads: main (registered with RCU) plus the counters, publishers and
 * readers a test starts.  Parses no input.  Ownership: groups live for the
 * process, so each test uses names of its own; the first test must run
 * first (it checks the first indexes).
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/rcu.h"
#include "stages/stats.h"

#define COUNTERS 8
#define ADDS     100000

/* ------------------------------------------------------------ reading helpers */

struct find {
	unsigned index; /* in: the group wanted */
	bool is_found;
	struct sl_group_info gi;
	char name[128];
	unsigned last_index; /* every group seen, in order */
	bool is_ordered;
	unsigned cnt;
};

static void
find_cb(const struct sl_group_info *gi, void *arg)
{
	struct find *f = arg;

	if (gi->index <= f->last_index)
		f->is_ordered = false;
	f->last_index = gi->index;
	f->cnt++;
	if (gi->index == f->index) {
		f->is_found = true;
		f->gi = *gi;
		snprintf(f->name, sizeof(f->name), "%s", gi->name);
	}
}

/* A reader's copy of group `g`. */
static struct sl_group_info
info(const struct sl_group *g)
{
	struct find f = { .index = sl_group_index(g), .is_ordered = true };

	sl_group_foreach(find_cb, &f);
	assert_true(f.is_found);
	assert_true(f.is_ordered);
	return f.gi;
}

static const char *
name_of(const struct sl_group *g)
{
	static struct find f;

	memset(&f, 0, sizeof(f));
	f.index = sl_group_index(g);
	sl_group_foreach(find_cb, &f);
	assert_true(f.is_found);
	return f.name;
}

struct errs {
	unsigned group;
	uint32_t code[300];
	uint64_t cnt[300];
	size_t n;
	bool is_ordered; /* groups ascending, codes ascending within a group */
	unsigned last_group;
	uint32_t last_code;
};

static void
errs_cb(unsigned group, uint32_t code, uint64_t cnt, void *arg)
{
	struct errs *e = arg;

	if (group < e->last_group || (group == e->last_group && code <= e->last_code))
		e->is_ordered = false;
	e->last_group = group;
	e->last_code = code;
	if (group != e->group)
		return;
	assert_true(e->n < 300);
	e->code[e->n] = code;
	e->cnt[e->n++] = cnt;
}

static void
errs_of(const struct sl_group *g, struct errs *e)
{
	memset(e, 0, sizeof(*e));
	e->group = sl_group_index(g);
	e->is_ordered = true;
	sl_group_errors_foreach(errs_cb, e);
	assert_true(e->is_ordered);
}

static uint64_t
errs_cnt(const struct errs *e, uint32_t code)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->code[i] == code)
			return e->cnt[i];
	return 0;
}

/* ------------------------------------------------------------ groups */

static void
test_indexes_and_names(void **state)
{
	struct sl_group *l = sl_group_of_listener("127.0.0.1:25");
	struct sl_group *b1 = sl_group_of_binding("b1", NULL);
	struct sl_group *b2 = sl_group_of_binding("b2", "grp");
	struct sl_group *b3 = sl_group_of_binding("b3", "default");
	struct sl_group *d = sl_group_of_binding(NULL, NULL);
	struct find all = { .index = 1, .is_ordered = true };

	/* The first use of anything makes "none/all" and "none/default" first. */
	assert_int_equal(sl_group_index(l), 3);
	assert_int_equal(sl_group_index(b1), 4);
	assert_int_equal(sl_group_index(b2), 5);
	assert_int_equal(sl_group_index(b3), 6);
	assert_int_equal(sl_group_index(d), 2);
	assert_int_equal(sl_group_index(NULL), 0);
	assert_string_equal(name_of(d), "none/default");
	assert_string_equal(name_of(l), "listener/127.0.0.1:25");
	assert_string_equal(name_of(b1), "none/b1");
	assert_string_equal(name_of(b2), "grp/b2");
	assert_string_equal(name_of(b3), "none/b3");
	/* Asked again: the same group, whatever spells the default. */
	assert_ptr_equal(sl_group_of_listener("127.0.0.1:25"), l);
	assert_ptr_equal(sl_group_of_binding("b2", "grp"), b2);
	assert_ptr_equal(sl_group_of_binding("b1", "default"), b1);
	assert_ptr_equal(sl_group_of_binding("default", "grp"), d);
	assert_ptr_equal(sl_group_of_binding("DEFAULT", NULL), d);
	/* Another binding group is another group. */
	assert_int_equal(sl_group_index(sl_group_of_binding("b2", "other")), 7);
	/* A listener and a binding may share a spelling; they are not one group. */
	assert_int_equal(sl_group_index(sl_group_of_binding("127.0.0.1:25", "listener")), 8);

	sl_group_foreach(find_cb, &all);
	assert_true(all.is_found);
	assert_true(all.is_ordered);
	assert_int_equal(all.cnt, 8);
	assert_string_equal(all.name, "none/all");
	assert_int_equal(all.gi.kind, SL_GROUP_TOTAL);
	assert_int_equal(info(d).kind, SL_GROUP_BINDING);
	assert_int_equal(info(l).kind, SL_GROUP_LISTENER);
	assert_true(info(l).created > 0 && info(l).created <= time(NULL));
}

static void
test_totals(void **state)
{
	struct sl_group *b = sl_group_of_binding("tot1", "g");
	struct sl_group *c = sl_group_of_binding("tot2", NULL);
	struct sl_group *l = sl_group_of_listener("10.0.0.1:25");
	struct find f0 = { .index = 1 }, f1 = { .index = 1 };
	struct sl_group_info gi;

	sl_group_foreach(find_cb, &f0);
	sl_group_add(b, SL_GS_TRANSMITTED_MSGS, 3);
	sl_group_add(c, SL_GS_TRANSMITTED_MSGS, 4);
	sl_group_add(b, SL_GS_TRANSMITTED_BYTES, 1000);
	sl_group_add(l, SL_GS_RECEIVED_MSGS, 9); /* not a binding's: not in none/all */
	sl_group_add(NULL, SL_GS_RECEIVED_MSGS, 9);
	sl_group_foreach(find_cb, &f1);
	assert_int_equal(f1.gi.v[SL_GS_TRANSMITTED_MSGS] - f0.gi.v[SL_GS_TRANSMITTED_MSGS], 7);
	assert_int_equal(f1.gi.v[SL_GS_TRANSMITTED_BYTES] - f0.gi.v[SL_GS_TRANSMITTED_BYTES], 1000);
	assert_int_equal(f1.gi.v[SL_GS_RECEIVED_MSGS], f0.gi.v[SL_GS_RECEIVED_MSGS]);
	gi = info(b);
	assert_int_equal(gi.v[SL_GS_TRANSMITTED_MSGS], 3);
	assert_int_equal(gi.v[SL_GS_TRANSMITTED_BYTES], 1000);
	assert_int_equal(info(c).v[SL_GS_TRANSMITTED_MSGS], 4);
	assert_int_equal(info(l).v[SL_GS_RECEIVED_MSGS], 9);

	/* Activity times: a binding's also go to none/all. */
	assert_int_equal(info(l).last_in, 0);
	assert_int_equal(info(b).last_out, 0);
	sl_group_touch(l, true);
	sl_group_touch(b, false);
	gi = info(l);
	assert_true(gi.last_in > 0 && gi.last_in <= time(NULL));
	assert_int_equal(gi.last_out, 0);
	assert_true(info(b).last_out > 0);
	assert_int_equal(info(b).last_in, 0);
	memset(&f1, 0, sizeof(f1));
	f1.index = 1;
	sl_group_foreach(find_cb, &f1);
	assert_true(f1.gi.last_out > 0);
	sl_group_touch(NULL, true);
}

static void
test_gauges_down(void **state)
{
	struct sl_group *g = sl_group_of_binding("gauge", NULL);
	static const int64_t deltas[] = { 5, -3, 4, -6, 2, -2 };
	int64_t want = 0;

	for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
		sl_group_add(g, SL_GS_ACTIVE, deltas[i]);
		sl_group_add(g, SL_GS_STORED_BYTES, deltas[i] * 1000);
		want += deltas[i];
		assert_int_equal(info(g).v[SL_GS_ACTIVE], want);
		assert_int_equal(info(g).v[SL_GS_STORED_BYTES], want * 1000);
	}
	assert_int_equal(info(g).v[SL_GS_ACTIVE], 0);
	/* Below zero (a reader's race between rows) reads as zero; a counter wraps as it is. */
	sl_group_add(g, SL_GS_IN_ASSOC, -1);
	assert_int_equal(info(g).v[SL_GS_IN_ASSOC], 0);
	sl_group_add(g, SL_GS_IN_ASSOC, 3);
	assert_int_equal(info(g).v[SL_GS_IN_ASSOC], 2);
	sl_group_add(g, SL_GS_FAILED_RCPTS, -1);
	assert_int_equal(info(g).v[SL_GS_FAILED_RCPTS], UINT64_MAX);
}

/* ------------------------------------------------------------ concurrency */

static struct {
	struct sl_group *a, *b, *l;
	unsigned is_done;   /* atomic */
	unsigned bad_gauge; /* atomic: a reader saw a gauge out of its range */
} cc;

static void *
counter_main(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	struct sl_group *g = id % 2 ? cc.a : cc.b;

	for (unsigned i = 0; i < ADDS; i++) {
		sl_group_add(g, SL_GS_TRANSMITTED_RCPTS, 1);
		sl_group_add(g, SL_GS_TRANSMITTED_BYTES, 3);
		sl_group_add(g, SL_GS_OUT_ASSOC, 1); /* a connection opens */
		sl_group_add(cc.l, SL_GS_IN_ASSOC, 1);
		sl_group_add(g, SL_GS_OUT_ASSOC, -1); /* and closes */
		sl_group_add(cc.l, SL_GS_IN_ASSOC, -1);
		if (i % 100 == 0) {
			sl_group_error(g, i % 200 ? "4.4.1" : "5.1.1");
			sl_group_touch(g, false);
		}
	}
	return NULL;
}

static void *
summer_main(void *arg)
{
	while (!__atomic_load_n(&cc.is_done, __ATOMIC_ACQUIRE)) {
		struct sl_group_info a = info(cc.a);

		/* At most one open connection per counting thread, never "negative". */
		if (a.v[SL_GS_OUT_ASSOC] > COUNTERS)
			__atomic_store_n(&cc.bad_gauge, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void
test_concurrent_exact(void **state)
{
	pthread_t th[COUNTERS], reader;
	struct sl_group_info a, b, all0, all1;
	struct errs ea;
	struct find f = { .index = 1 };

	cc.a = sl_group_of_binding("conc-a", NULL);
	cc.b = sl_group_of_binding("conc-b", "conc");
	cc.l = sl_group_of_listener("conc:25");
	sl_group_foreach(find_cb, &f);
	all0 = f.gi;
	assert_int_equal(pthread_create(&reader, NULL, summer_main, NULL), 0);
	for (unsigned i = 0; i < COUNTERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, counter_main, (void *)(uintptr_t)i),
				 0);
	for (unsigned i = 0; i < COUNTERS; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&cc.is_done, 1, __ATOMIC_RELEASE);
	pthread_join(reader, NULL);

	a = info(cc.a);
	b = info(cc.b);
	assert_int_equal(a.v[SL_GS_TRANSMITTED_RCPTS], (uint64_t)COUNTERS / 2 * ADDS);
	assert_int_equal(b.v[SL_GS_TRANSMITTED_RCPTS], (uint64_t)COUNTERS / 2 * ADDS);
	assert_int_equal(a.v[SL_GS_TRANSMITTED_BYTES], (uint64_t)COUNTERS / 2 * ADDS * 3);
	assert_int_equal(a.v[SL_GS_OUT_ASSOC], 0);
	assert_int_equal(info(cc.l).v[SL_GS_IN_ASSOC], 0);
	assert_true(a.last_out > 0);
	memset(&f, 0, sizeof(f));
	f.index = 1;
	sl_group_foreach(find_cb, &f);
	all1 = f.gi;
	assert_int_equal(all1.v[SL_GS_TRANSMITTED_RCPTS] - all0.v[SL_GS_TRANSMITTED_RCPTS],
			 (uint64_t)COUNTERS * ADDS);
	assert_int_equal(all1.v[SL_GS_OUT_ASSOC], all0.v[SL_GS_OUT_ASSOC]);
	errs_of(cc.a, &ea);
	assert_int_equal(ea.n, 2);
	assert_int_equal(ea.code[0], 4004001);
	assert_int_equal(ea.cnt[0], (uint64_t)COUNTERS / 2 * ADDS / 200);
	assert_int_equal(ea.code[1], 5001001);
	assert_int_equal(ea.cnt[1], (uint64_t)COUNTERS / 2 * ADDS / 200);
	assert_int_equal(cc.bad_gauge, 0);
}

/* ------------------------------------------------------------ error codes */

static void
test_error_codes(void **state)
{
	struct sl_group *g = sl_group_of_listener("errors:25");
	struct sl_group *b = sl_group_of_binding("errors", NULL);
	static const char *const bad[] = {
		"",         "5",        "5.1",    "5.1.1.1", "6.1.1", "3.1.1",  "1.0.0",
		"5.1000.1", "5.1.1000", "55.1.1", "5..1",    ".1.1",  "5.1.1 ", " 5.1.1",
		"5.1.x",    "5.-1.1",   "x.y.z",  "5.1.",    "5:1:1", "0.0.0",
	};
	struct errs e, all;

	sl_group_error(g, "5.1.1");
	sl_group_error(g, "4.2.2");
	sl_group_error(g, "5.1.1");
	sl_group_error(g, "2.0.0");
	sl_group_error(g, "5.999.999");
	sl_group_error(g, "4.07.010"); /* leading zeros: RFC 3463 numbers, still 4.7.10 */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		sl_group_error(g, bad[i]);
	sl_group_error(g, NULL);
	sl_group_error(NULL, "5.1.1");
	/* From replies: the leading code of the reply's class, else class.0.0. */
	sl_group_error_reply(g, 550, "5.1.1 User unknown");
	sl_group_error_reply(g, 550, "User unknown");
	sl_group_error_reply(g, 451, "5.1.1 class mismatch");
	sl_group_error_reply(g, 250, NULL);
	sl_group_error_reply(g, 421, "4.7.0\tToo many");
	sl_group_error_reply(g, 354, "go ahead"); /* 3xx: not counted */
	sl_group_error_reply(g, 0, "5.1.1");
	sl_group_error_reply(g, 650, "6.1.1");
	sl_group_error_reply(NULL, 550, "5.1.1");

	errs_of(g, &e);
	assert_int_equal(e.n, 8);
	assert_int_equal(e.code[0], 2000000);
	assert_int_equal(e.cnt[0], 2); /* "2.0.0" and 250 without a code */
	assert_int_equal(e.code[1], 4000000);
	assert_int_equal(e.code[2], 4002002);
	assert_int_equal(e.code[3], 4007000);
	assert_int_equal(e.code[4], 4007010);
	assert_int_equal(e.code[5], 5000000);
	assert_int_equal(e.cnt[5], 1);
	assert_int_equal(e.code[6], 5001001);
	assert_int_equal(e.cnt[6], 3);
	assert_int_equal(e.code[7], 5999999);

	/* A binding's codes are in none/all too; a listener's are not. */
	memset(&all, 0, sizeof(all));
	all.group = 1;
	all.is_ordered = true;
	sl_group_errors_foreach(errs_cb, &all);
	assert_int_equal(errs_cnt(&all, 5002002), 0);
	sl_group_error(b, "5.2.2");
	sl_group_error_reply(b, 552, "5.2.2 full");
	errs_of(b, &e);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.cnt[0], 2);
	memset(&all, 0, sizeof(all));
	all.group = 1;
	all.is_ordered = true;
	sl_group_errors_foreach(errs_cb, &all);
	assert_true(all.is_ordered);
	assert_int_equal(errs_cnt(&all, 5002002), 2);
	assert_int_equal(info(g).errors_other, 0);
}

static void
test_error_overflow(void **state)
{
	struct sl_group *g = sl_group_of_listener("overflow:25");
	unsigned extra = 40;
	struct errs e;
	char code[32];

	/* Descending, so the listing has to sort them. */
	for (unsigned i = SL_GROUP_ERRORS_MAX + extra; i > 0; i--) {
		snprintf(code, sizeof(code), "5.%u.%u", i / 10, i % 10);
		sl_group_error(g, code);
		sl_group_error(g, code);
	}
	errs_of(g, &e);
	assert_int_equal(e.n, SL_GROUP_ERRORS_MAX);
	for (size_t i = 0; i < e.n; i++)
		assert_int_equal(e.cnt[i], 2);
	assert_int_equal(info(g).errors_other, 2 * extra);
	/* A code already in the table still counts there. */
	snprintf(code, sizeof(code), "5.%u.%u", (unsigned)(e.code[0] / 1000 % 1000),
		 (unsigned)(e.code[0] % 1000));
	sl_group_error(g, code);
	errs_of(g, &e);
	assert_int_equal(e.cnt[0], 3);
	assert_int_equal(info(g).errors_other, 2 * extra);
}

/* ------------------------------------------------------------ per-domain views */

struct rows {
	char text[4096];
	size_t n;
};

static void
rows_cb(const struct sl_domain_stat *d, void *arg)
{
	struct rows *r = arg;
	size_t len = strlen(r->text);

	snprintf(r->text + len, sizeof(r->text) - len, "%s/%s:%u:%llu:%llu:%llu:%llu:%u:%u:%u\n",
		 d->binding, d->domain, d->group, (unsigned long long)d->receptions,
		 (unsigned long long)d->deliveries, (unsigned long long)d->failures,
		 (unsigned long long)d->transients, d->conns, d->active, d->delayed);
	r->n++;
}

static void
rows_read(struct rows *r)
{
	memset(r, 0, sizeof(*r));
	sl_domain_stats_foreach(rows_cb, r);
}

static void
test_views(void **state)
{
	char dom[32] = "example.com", bind[32] = "default";
	struct sl_domain_stat rows[2] = {
		{ .domain = dom,
		  .binding = bind,
		  .group = 2,
		  .receptions = 5,
		  .deliveries = 3,
		  .failures = 1,
		  .transients = 2,
		  .conns = 1,
		  .active = 1,
		  .delayed = 0 },
		{ .domain = "example.org", .binding = "b1", .group = 4, .receptions = 1 },
	};
	struct rows r;

	rows_read(&r);
	assert_int_equal(r.n, 0);
	assert_true(sl_domain_stats_publish(3, rows, 2));
	/* Copied: the caller's strings may change afterwards. */
	snprintf(dom, sizeof(dom), "changed.example");
	rows_read(&r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.text, "default/example.com:2:5:3:1:2:1:1:0\n"
				    "b1/example.org:4:1:0:0:0:0:0:0\n");
	/* The same rows again: nothing is published. */
	snprintf(dom, sizeof(dom), "example.com");
	assert_false(sl_domain_stats_publish(3, rows, 2));
	/* A count changed, a string changed, a row fewer: a new view each time. */
	rows[0].delayed = 1;
	assert_true(sl_domain_stats_publish(3, rows, 2));
	snprintf(bind, sizeof(bind), "other");
	assert_true(sl_domain_stats_publish(3, rows, 2));
	assert_true(sl_domain_stats_publish(3, rows, 1));
	assert_true(sl_domain_stats_publish(0, &rows[1], 1));
	rows_read(&r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.text, "b1/example.org:4:1:0:0:0:0:0:0\n"
				    "other/example.com:2:5:3:1:2:1:1:1\n");
	/* Emptied: by no rows, or by its thread's end. */
	assert_true(sl_domain_stats_publish(3, rows, 0));
	assert_false(sl_domain_stats_publish(3, rows, 0));
	sl_domain_stats_unpublish(0);
	sl_domain_stats_unpublish(0);
	rows_read(&r);
	assert_int_equal(r.n, 0);
	assert_false(sl_domain_stats_publish(SL_DOMAIN_VIEW_SLOTS, rows, 1));
	sl_domain_stats_unpublish(SL_DOMAIN_VIEW_SLOTS);
	sl_rcu_barrier();
}

#define PUBLISHERS 2
#define VIEWS      5000

static struct {
	unsigned is_done; /* atomic */
	unsigned bad;     /* atomic: a reader saw a torn or dead view */
	uint64_t seen;    /* atomic */
} vc;

/* Every row of a view says the same generation three ways. */
static void *
publisher_main(void *arg)
{
	unsigned slot = (unsigned)(uintptr_t)arg;
	struct sl_domain_stat rows[8];
	char doms[8][32];

	sl_rcu_register_thread();
	for (uint64_t gen = 1; gen <= VIEWS; gen++) {
		size_t cnt = 1 + gen % 8;

		for (size_t i = 0; i < cnt; i++) {
			snprintf(doms[i], sizeof(doms[i]), "d%llu.example",
				 (unsigned long long)gen);
			rows[i] = (struct sl_domain_stat){ .domain = doms[i],
							   .binding = "default",
							   .group = 2,
							   .receptions = gen,
							   .deliveries = gen * 2,
							   .failures = cnt };
		}
		assert_true(sl_domain_stats_publish(slot, rows, cnt));
	}
	sl_domain_stats_unpublish(slot);
	sl_rcu_unregister_thread();
	return NULL;
}

static void
check_cb(const struct sl_domain_stat *d, void *arg)
{
	char want[32];

	(void)arg;
	snprintf(want, sizeof(want), "d%llu.example", (unsigned long long)d->receptions);
	if (d->deliveries != d->receptions * 2 || d->failures != 1 + d->receptions % 8 ||
	    strcmp(d->domain, want) != 0 || strcmp(d->binding, "default") != 0)
		__atomic_store_n(&vc.bad, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&vc.seen, 1, __ATOMIC_RELAXED);
}

static void *
walker_main(void *arg)
{
	sl_rcu_register_thread();
	while (!__atomic_load_n(&vc.is_done, __ATOMIC_ACQUIRE))
		sl_domain_stats_foreach(check_cb, NULL);
	sl_rcu_unregister_thread();
	return NULL;
}

static void
test_views_concurrent(void **state)
{
	pthread_t pub[PUBLISHERS], walkers[2];
	struct rows r;

	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&walkers[i], NULL, walker_main, NULL), 0);
	for (unsigned i = 0; i < PUBLISHERS; i++)
		assert_int_equal(
			pthread_create(&pub[i], NULL, publisher_main, (void *)(uintptr_t)(10 + i)),
			0);
	for (unsigned i = 0; i < PUBLISHERS; i++)
		pthread_join(pub[i], NULL);
	__atomic_store_n(&vc.is_done, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(walkers[i], NULL);
	assert_int_equal(vc.bad, 0);
	rows_read(&r);
	assert_int_equal(r.n, 0);
	sl_rcu_barrier();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_indexes_and_names), /* first: it checks the first indexes */
		cmocka_unit_test(test_totals),
		cmocka_unit_test(test_gauges_down),
		cmocka_unit_test(test_concurrent_exact),
		cmocka_unit_test(test_error_codes),
		cmocka_unit_test(test_error_overflow),
		cmocka_unit_test(test_views),
		cmocka_unit_test(test_views_concurrent),
	};
	int rc;

	sl_rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	sl_rcu_barrier();
	sl_rcu_unregister_thread();
	return rc;
}
