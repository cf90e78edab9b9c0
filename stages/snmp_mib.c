/*
 * stages/snmp_mib.c - what the SNMP agent serves, built into sorted lists.
 *
 *   system        1.3.6.1.2.1.1   sysDescr .. sysServices (embedded agent only)
 *   application   1.3.6.1.2.1.27  RFC 2788 applTable: sluiced's row, applIndex 1
 *   mta           1.3.6.1.2.1.28  RFC 2789: mtaTable, mtaGroupTable, mtaGroupErrorTable
 *   sluice        SLUICE-MIB (man/SLUICE-MIB.txt): product, per-domain and
 *                 per-group figures, stages, configuration, spool
 *
 * The groups are stages/stats.h's (one per binding, "none/all" first, one
 * per listener); the per-domain rows are the delivery threads' published
 * views.  Each build reads the figures of the moment; snmp.c keeps a built
 * list for a second.
 *
 * Threads: the snmp thread.  No net-snmp here.
 */
#include "config.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf_holder.h"
#include "conf/conf_snapshot.h"
#include "engine/alloc.h"
#include "engine/counter.h"
#include "engine/stage.h"
#include "spool/spool.h"
#include "stages/snmp_int.h"
#include "stages/stages.h"
#include "stages/stats.h"

#define APPL_INDEX 1 /* sluiced's row in applTable (RFC 2788) and every MTA-MIB table */

/* ------------------------------------------------------------ helpers */

/* name = root + arcs... */
static struct sl_oid
mib_name(const struct sl_oid *root, const uint32_t *arc, size_t cnt)
{
	struct sl_oid o = *root;

	sl_oid_push(&o, arc, cnt);
	return o;
}

static void
mib_num(struct sl_oid_list *l, const struct sl_oid *root, const uint32_t *arc, size_t cnt,
	enum sl_snmp_type t, uint64_t v)
{
	struct sl_oid o = mib_name(root, arc, cnt);

	sl_oid_list_add_num(l, &o, t, v);
}

static void
mib_str(struct sl_oid_list *l, const struct sl_oid *root, const uint32_t *arc, size_t cnt,
	const char *s)
{
	struct sl_oid o = mib_name(root, arc, cnt);

	sl_oid_list_add_str(l, &o, s ? s : "", s ? strlen(s) : 0);
}

#define ARCS(...)                            \
	((const uint32_t[]){ __VA_ARGS__ }), \
		(sizeof((const uint32_t[]){ __VA_ARGS__ }) / sizeof(uint32_t))

static uint64_t
mib_counter(const char *name)
{
	int id = sl_counter_find(name);

	return id < 0 ? 0 : sl_counter_read((unsigned)id);
}

/* Hundredths of a second since `t` (wall clock), for TimeInterval; 0 if never. */
static uint64_t
mib_since(time_t t)
{
	time_t now = time(NULL);

	return t == 0 || t > now ? 0 : (uint64_t)(now - t) * 100;
}

/* TimeStamp of wall-clock time t: sysUpTime then, 0 when before the agent or never. */
static uint64_t
mib_stamp(time_t t)
{
	uint64_t up = sl_snmp_uptime_ticks(), ago = mib_since(t);

	return t == 0 || ago >= up ? 0 : up - ago;
}

void
sl_snmp_sluice_oid(struct sl_oid *o, const uint32_t *arc, size_t cnt)
{
	sl_oid_parse(SL_SNMP_SLUICE_ROOT, o);
	sl_oid_push(o, arc, cnt);
}

/* ------------------------------------------------------------ system */

static void
mib_system(struct sl_oid_list *l, const struct sl_oid *root)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	size_t pos = 0;
	const struct sl_conf_block *b = s ? sl_conf_block_next(s, "SNMP", &pos) : NULL;
	const union sl_conf_val *descr =
		b ? sl_conf_block_get(s, b, SL_OPT_SNMP_SYSDESCRIPTION) : NULL;
	const union sl_conf_val *contact =
		b ? sl_conf_block_get(s, b, SL_OPT_SNMP_SYSCONTACT) : NULL;
	const union sl_conf_val *loc = b ? sl_conf_block_get(s, b, SL_OPT_SNMP_SYSLOCATION) : NULL;
	const char *host = s ? sl_conf_str(s, SL_OPT_HOSTNAME) : NULL;
	char text[256], hostname[256] = "";
	struct sl_oid product;

	if (descr != NULL && descr->s != NULL)
		snprintf(text, sizeof(text), "%s", descr->s);
	else
		snprintf(text, sizeof(text), "sluice %s mail transfer agent", sl_snmp_version());
	if (host == NULL || host[0] == '\0') {
		if (gethostname(hostname, sizeof(hostname) - 1) != 0)
			snprintf(hostname, sizeof(hostname), "localhost");
		host = hostname;
	}
	mib_str(l, root, ARCS(1, 0), text);
	sl_snmp_sluice_oid(&product, NULL, 0);
	{
		struct sl_oid o = mib_name(root, ARCS(2, 0));

		sl_oid_list_add_oid(l, &o, &product);
	}
	mib_num(l, root, ARCS(3, 0), SL_SNMP_TIMETICKS, sl_snmp_uptime_ticks());
	mib_str(l, root, ARCS(4, 0), contact && contact->s ? contact->s : "");
	mib_str(l, root, ARCS(5, 0), host);
	mib_str(l, root, ARCS(6, 0), loc && loc->s ? loc->s : "");
	/* Application (64) and end-to-end (8) services (RFC 3418). */
	mib_num(l, root, ARCS(7, 0), SL_SNMP_INTEGER, 72);
	sl_conf_snapshot_put(s);
}

/* ------------------------------------------------------------ groups, once per build */

struct mib_groups {
	struct sl_group_info *v;
	size_t cnt, cap;
	struct sl_group_info in;  /* every listener group summed */
	struct sl_group_info out; /* "none/all" */
};

static void
mib_groups_cb(const struct sl_group_info *gi, void *arg)
{
	struct mib_groups *g = arg;

	if (g->cnt == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 16;
		g->v = sl_reallocarray(g->v, g->cap, sizeof(*g->v));
	}
	g->v[g->cnt++] = *gi;
	if (gi->kind == SL_GROUP_TOTAL)
		g->out = *gi;
	if (gi->kind == SL_GROUP_LISTENER) {
		for (unsigned k = 0; k < SL_GS__COUNT; k++)
			g->in.v[k] += gi->v[k];
		if (gi->last_in > g->in.last_in)
			g->in.last_in = gi->last_in;
	}
}

static void
mib_groups_read(struct mib_groups *g)
{
	memset(g, 0, sizeof(*g));
	sl_group_foreach(mib_groups_cb, g);
}

/* ------------------------------------------------------------ application (RFC 2788) */

static void
mib_application(struct sl_oid_list *l, const struct sl_oid *root)
{
	struct mib_groups g;
	const uint32_t i = APPL_INDEX;
	uint64_t last_in, last_out;

	mib_groups_read(&g);
	/* TimeStamp: the agent's sysUpTime at the event (0: before it started, or never). */
	last_in = mib_stamp(g.in.last_in);
	last_out = mib_stamp(g.out.last_out);
	mib_str(l, root, ARCS(1, 1, 2, i), "sluice");
	mib_str(l, root, ARCS(1, 1, 3, i), "");
	mib_str(l, root, ARCS(1, 1, 4, i), sl_snmp_version());
	mib_num(l, root, ARCS(1, 1, 5, i), SL_SNMP_TIMETICKS, 0);
	mib_num(l, root, ARCS(1, 1, 6, i), SL_SNMP_INTEGER, 1); /* up */
	mib_num(l, root, ARCS(1, 1, 7, i), SL_SNMP_TIMETICKS, 0);
	mib_num(l, root, ARCS(1, 1, 8, i), SL_SNMP_GAUGE32, g.in.v[SL_GS_IN_ASSOC]);
	mib_num(l, root, ARCS(1, 1, 9, i), SL_SNMP_GAUGE32, g.out.v[SL_GS_OUT_ASSOC]);
	mib_num(l, root, ARCS(1, 1, 10, i), SL_SNMP_COUNTER32, g.in.v[SL_GS_IN_ASSOC_TOTAL]);
	mib_num(l, root, ARCS(1, 1, 11, i), SL_SNMP_COUNTER32, g.out.v[SL_GS_OUT_ASSOC_TOTAL]);
	mib_num(l, root, ARCS(1, 1, 12, i), SL_SNMP_TIMETICKS, last_in);
	mib_num(l, root, ARCS(1, 1, 13, i), SL_SNMP_TIMETICKS, last_out);
	mib_num(l, root, ARCS(1, 1, 14, i), SL_SNMP_COUNTER32, g.in.v[SL_GS_IN_ASSOC_REFUSED]);
	mib_num(l, root, ARCS(1, 1, 15, i), SL_SNMP_COUNTER32, g.out.v[SL_GS_OUT_ASSOC_FAILED]);
	mib_str(l, root, ARCS(1, 1, 16, i), "sluice staged mail transfer engine");
	mib_str(l, root, ARCS(1, 1, 17, i), "");
	sl_free(g.v);
}

/* ------------------------------------------------------------ MTA-MIB (RFC 2789) */

struct mib_error_arg {
	struct sl_oid_list *l;
	const struct sl_oid *root;
	const struct mib_groups *g;
};

/* mtaGroupErrorTable: a listener's codes are inbound errors, a binding's outbound. */
static void
mib_error_cb(unsigned group, uint32_t code, uint64_t cnt, void *arg)
{
	const struct mib_error_arg *ea = arg;
	bool is_in = false;

	for (size_t k = 0; k < ea->g->cnt; k++)
		if (ea->g->v[k].index == group)
			is_in = ea->g->v[k].kind == SL_GROUP_LISTENER;
	mib_num(ea->l, ea->root, ARCS(5, 1, 1, APPL_INDEX, group, code), SL_SNMP_COUNTER32,
		is_in ? cnt : 0);
	mib_num(ea->l, ea->root, ARCS(5, 1, 2, APPL_INDEX, group, code), SL_SNMP_COUNTER32, 0);
	mib_num(ea->l, ea->root, ARCS(5, 1, 3, APPL_INDEX, group, code), SL_SNMP_COUNTER32,
		is_in ? 0 : cnt);
}

static void
mib_mta(struct sl_oid_list *l, const struct sl_oid *root)
{
	struct mib_groups g;
	const uint32_t a = APPL_INDEX;
	struct sl_oid smtp;

	mib_groups_read(&g);
	/* mtaTable: received over every listener, the rest over every binding. */
	mib_num(l, root, ARCS(1, 1, 1, a), SL_SNMP_COUNTER32, g.in.v[SL_GS_RECEIVED_MSGS]);
	mib_num(l, root, ARCS(1, 1, 2, a), SL_SNMP_GAUGE32, g.out.v[SL_GS_STORED_MSGS]);
	mib_num(l, root, ARCS(1, 1, 3, a), SL_SNMP_COUNTER32, g.out.v[SL_GS_TRANSMITTED_MSGS]);
	mib_num(l, root, ARCS(1, 1, 4, a), SL_SNMP_COUNTER32, g.in.v[SL_GS_RECEIVED_BYTES] / 1024);
	mib_num(l, root, ARCS(1, 1, 5, a), SL_SNMP_GAUGE32, g.out.v[SL_GS_STORED_BYTES] / 1024);
	mib_num(l, root, ARCS(1, 1, 6, a), SL_SNMP_COUNTER32,
		g.out.v[SL_GS_TRANSMITTED_BYTES] / 1024);
	mib_num(l, root, ARCS(1, 1, 7, a), SL_SNMP_COUNTER32, g.in.v[SL_GS_RECEIVED_RCPTS]);
	mib_num(l, root, ARCS(1, 1, 8, a), SL_SNMP_GAUGE32, g.out.v[SL_GS_STORED_RCPTS]);
	mib_num(l, root, ARCS(1, 1, 9, a), SL_SNMP_COUNTER32, g.out.v[SL_GS_TRANSMITTED_RCPTS]);
	mib_num(l, root, ARCS(1, 1, 10, a), SL_SNMP_COUNTER32, 0); /* sluice converts nothing */
	mib_num(l, root, ARCS(1, 1, 11, a), SL_SNMP_COUNTER32, 0);
	mib_num(l, root, ARCS(1, 1, 12, a), SL_SNMP_COUNTER32, g.in.v[SL_GS_LOOPS]);
	/* mtaGroupMailProtocol: applTCPProtoID.25 (SMTP over TCP port 25), RFC 2788. */
	sl_oid_parse("1.3.6.1.2.1.27.4.25", &smtp);
	for (size_t k = 0; k < g.cnt; k++) {
		const struct sl_group_info *gi = &g.v[k];
		uint32_t x = gi->index;
		bool is_in = gi->kind == SL_GROUP_LISTENER;

		mib_num(l, root, ARCS(2, 1, 2, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_RECEIVED_MSGS]);
		mib_num(l, root, ARCS(2, 1, 3, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_REJECTED_MSGS]);
		mib_num(l, root, ARCS(2, 1, 4, a, x), SL_SNMP_GAUGE32, gi->v[SL_GS_STORED_MSGS]);
		mib_num(l, root, ARCS(2, 1, 5, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_TRANSMITTED_MSGS]);
		mib_num(l, root, ARCS(2, 1, 6, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_RECEIVED_BYTES] / 1024);
		mib_num(l, root, ARCS(2, 1, 7, a, x), SL_SNMP_GAUGE32,
			gi->v[SL_GS_STORED_BYTES] / 1024);
		mib_num(l, root, ARCS(2, 1, 8, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_TRANSMITTED_BYTES] / 1024);
		mib_num(l, root, ARCS(2, 1, 9, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_RECEIVED_RCPTS]);
		mib_num(l, root, ARCS(2, 1, 10, a, x), SL_SNMP_GAUGE32, gi->v[SL_GS_STORED_RCPTS]);
		mib_num(l, root, ARCS(2, 1, 11, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_TRANSMITTED_RCPTS]);
		mib_num(l, root, ARCS(2, 1, 12, a, x), SL_SNMP_TIMETICKS, 0);
		mib_num(l, root, ARCS(2, 1, 13, a, x), SL_SNMP_GAUGE32, gi->v[SL_GS_IN_ASSOC]);
		mib_num(l, root, ARCS(2, 1, 14, a, x), SL_SNMP_GAUGE32, gi->v[SL_GS_OUT_ASSOC]);
		mib_num(l, root, ARCS(2, 1, 15, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_IN_ASSOC_TOTAL]);
		mib_num(l, root, ARCS(2, 1, 16, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_OUT_ASSOC_TOTAL]);
		mib_num(l, root, ARCS(2, 1, 17, a, x), SL_SNMP_TIMETICKS, mib_since(gi->last_in));
		mib_num(l, root, ARCS(2, 1, 18, a, x), SL_SNMP_TIMETICKS, mib_since(gi->last_out));
		mib_num(l, root, ARCS(2, 1, 19, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_IN_ASSOC_REFUSED]);
		mib_num(l, root, ARCS(2, 1, 20, a, x), SL_SNMP_COUNTER32,
			gi->v[SL_GS_OUT_ASSOC_FAILED]);
		mib_str(l, root, ARCS(2, 1, 21, a, x), "");
		mib_str(l, root, ARCS(2, 1, 22, a, x), "");
		mib_num(l, root, ARCS(2, 1, 23, a, x), SL_SNMP_TIMETICKS, 0);
		{
			struct sl_oid o = mib_name(root, ARCS(2, 1, 24, a, x));

			sl_oid_list_add_oid(l, &o, &smtp);
		}
		mib_str(l, root, ARCS(2, 1, 25, a, x), gi->name);
		mib_num(l, root, ARCS(2, 1, 26, a, x), SL_SNMP_COUNTER32, 0);
		mib_num(l, root, ARCS(2, 1, 27, a, x), SL_SNMP_COUNTER32, 0);
		mib_str(l, root, ARCS(2, 1, 28, a, x),
			gi->kind == SL_GROUP_TOTAL ? "every binding"
			: is_in                    ? "inbound: a listener"
						   : "outbound: a binding");
		mib_str(l, root, ARCS(2, 1, 29, a, x), "");
		mib_num(l, root, ARCS(2, 1, 30, a, x), SL_SNMP_TIMETICKS, mib_since(gi->created));
		/* Hierarchy: "none/all" is the parent of every binding group (RFC 2789 2.2). */
		mib_num(l, root, ARCS(2, 1, 31, a, x), SL_SNMP_INTEGER,
			gi->kind == SL_GROUP_BINDING ? 1 : 0);
		mib_str(l, root, ARCS(2, 1, 32, a, x), "");
		mib_num(l, root, ARCS(2, 1, 33, a, x), SL_SNMP_COUNTER32, gi->v[SL_GS_LOOPS]);
		mib_num(l, root, ARCS(2, 1, 34, a, x), SL_SNMP_TIMETICKS, mib_since(gi->last_out));
	}
	{
		struct mib_error_arg ea = { l, root, &g };

		sl_group_errors_foreach(mib_error_cb, &ea);
	}
	sl_free(g.v);
}

/* ------------------------------------------------------------ SLUICE-MIB */

struct mib_domain_arg {
	struct sl_oid_list *l;
	const struct sl_oid *root;
};

/* sluiceDomainTable, indexed by (domain name, group index). */
static void
mib_domain_cb(const struct sl_domain_stat *d, void *arg)
{
	const struct mib_domain_arg *da = arg;
	size_t len = strlen(d->domain);
	static const struct {
		uint32_t col;
		enum sl_snmp_type t;
		size_t off;
	} cols[] = {
		{ 4, SL_SNMP_COUNTER64, offsetof(struct sl_domain_stat, receptions) },
		{ 5, SL_SNMP_COUNTER64, offsetof(struct sl_domain_stat, failures) },
		{ 6, SL_SNMP_COUNTER64, offsetof(struct sl_domain_stat, deliveries) },
		{ 7, SL_SNMP_COUNTER64, offsetof(struct sl_domain_stat, transients) },
	};

	/* An index longer than an OID may hold: the domain is not listed (said in the MIB). */
	if (len == 0 || len > SL_SNMP_DOMAIN_MAX)
		return;
	for (uint32_t col = 3; col <= 10; col++) {
		struct sl_oid o = *da->root;

		sl_oid_push(&o, ARCS(2, 1, col));
		sl_oid_push_str(&o, d->domain, len);
		sl_oid_push1(&o, d->group);
		if (col == 3) {
			sl_oid_list_add_str(da->l, &o, d->domain, len);
		} else if (col <= 7) {
			for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
				if (cols[i].col == col)
					sl_oid_list_add_num(
						da->l, &o, cols[i].t,
						*(const uint64_t *)(const void *)((const char *)d +
										  cols[i].off));
		} else {
			uint64_t v = col == 8 ? d->conns : col == 9 ? d->active : d->delayed;

			sl_oid_list_add_num(da->l, &o, SL_SNMP_GAUGE32, v);
		}
	}
}

struct mib_stage_arg {
	struct sl_oid_list *l;
	const struct sl_oid *root;
	uint32_t next;
};

/* sluiceStageTable, indexed 1.. in creation order. */
static void
mib_stage_cb(struct sl_stage *st, void *arg)
{
	struct mib_stage_arg *sa = arg;
	struct sl_stage_stats ss;
	uint32_t x = ++sa->next;

	sl_stage_stats(st, &ss);
	mib_str(sa->l, sa->root, ARCS(4, 1, 2, x), sl_stage_name(st));
	mib_num(sa->l, sa->root, ARCS(4, 1, 3, x), SL_SNMP_GAUGE32, ss.thread_cnt);
	mib_num(sa->l, sa->root, ARCS(4, 1, 4, x), SL_SNMP_GAUGE32, ss.queue_depth);
	mib_num(sa->l, sa->root, ARCS(4, 1, 5, x), SL_SNMP_GAUGE32, ss.busy_cnt);
	mib_num(sa->l, sa->root, ARCS(4, 1, 6, x), SL_SNMP_COUNTER64, ss.ops);
}

void
sl_snmp_watch_read(struct sl_snmp_watch *w)
{
	int64_t active = (int64_t)mib_counter("deliver.active");
	int64_t delayed = (int64_t)mib_counter("deliver.delayed");

	w->active = active > 0 ? (uint64_t)active : 0;
	w->delayed = delayed > 0 ? (uint64_t)delayed : 0;
	w->global_queue = w->active + w->delayed;
	w->failed = mib_counter("deliver.failed");
}

static void
mib_sluice(struct sl_oid_list *l, const struct sl_oid *root)
{
	const struct sl_snmp_hooks *h = sl_snmp_hooks();
	struct mib_groups g;
	struct mib_stage_arg sa = { l, root, 0 };
	struct mib_domain_arg da = { l, root };
	struct sl_spool *sp = sl_spool_stage_store();

	mib_str(l, root, ARCS(1, 1, 0), "sluice");
	mib_str(l, root, ARCS(1, 2, 0), sl_snmp_version());
	mib_str(l, root, ARCS(1, 3, 0), SL_BUILD_DATE);
	sl_domain_stats_foreach(mib_domain_cb, &da);
	mib_groups_read(&g);
	for (size_t k = 0; k < g.cnt; k++) {
		const struct sl_group_info *gi = &g.v[k];

		mib_num(l, root, ARCS(3, 1, 2, gi->index), SL_SNMP_GAUGE32, gi->v[SL_GS_ACTIVE]);
		mib_num(l, root, ARCS(3, 1, 3, gi->index), SL_SNMP_GAUGE32, gi->v[SL_GS_DELAYED]);
		mib_num(l, root, ARCS(3, 1, 4, gi->index), SL_SNMP_COUNTER32,
			gi->v[SL_GS_FAILED_RCPTS]);
		mib_str(l, root, ARCS(3, 1, 5, gi->index), gi->name);
	}
	sl_free(g.v);
	sl_stage_foreach(mib_stage_cb, &sa);
	mib_num(l, root, ARCS(5, 1, 0), SL_SNMP_GAUGE32, h->generation ? h->generation() : 0);
	mib_num(l, root, ARCS(5, 2, 0), SL_SNMP_COUNTER32, h->reloads ? h->reloads() : 0);
	mib_num(l, root, ARCS(5, 3, 0), SL_SNMP_COUNTER32,
		h->reload_failures ? h->reload_failures() : 0);
	if (sp != NULL) {
		struct sl_spool_stats st;

		sl_spool_stats(sp, &st);
		mib_num(l, root, ARCS(6, 1, 0), SL_SNMP_GAUGE32, st.segment_cnt);
		mib_num(l, root, ARCS(6, 2, 0), SL_SNMP_GAUGE32, st.bytes / 1024);
		mib_num(l, root, ARCS(6, 3, 0), SL_SNMP_GAUGE32, st.live_msgs);
	}
}

/* ------------------------------------------------------------ the table */

static struct snmp_section mib_sections[] = {
	{ .name = "sluice-system", .is_master_only = true, .build = mib_system },
	{ .name = "sluice-application", .build = mib_application },
	{ .name = "sluice-mta", .build = mib_mta },
	{ .name = "sluice", .build = mib_sluice },
};

struct snmp_section *
sl_snmp_sections(size_t *cnt)
{
	static const char *const roots[] = {
		"1.3.6.1.2.1.1",
		"1.3.6.1.2.1.27",
		"1.3.6.1.2.1.28",
		SL_SNMP_SLUICE_ROOT,
	};

	for (size_t i = 0; i < sizeof(mib_sections) / sizeof(mib_sections[0]); i++)
		sl_oid_parse(roots[i], &mib_sections[i].root);
	*cnt = sizeof(mib_sections) / sizeof(mib_sections[0]);
	return mib_sections;
}
