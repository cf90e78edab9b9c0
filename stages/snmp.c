/*
 * stages/snmp.c - the SNMP agent: net-snmp on one thread of its own.
 *
 * The `SNMP { }` stanza (conf.ref.snmp) runs an embedded SNMPv2c
 * read-only agent on its UDP Address, answering the configured Community
 * and no other (v1 and v2c; SETs are refused: every object is read-only).
 * With `AgentX = "/path"` sluiced is instead an AgentX sub-agent of a
 * running snmpd (its master): net-snmp pings the master every few seconds
 * and reconnects when it comes back, and nothing else waits for it.
 * Unlike Momentum, a reload applies SNMP changes without a restart: the
 * thread looks at the published configuration every second and restarts
 * its agent when the stanza changed (the community alone is applied in
 * place).
 *
 * What is served (stages/snmp_mib.c builds it): the system group (embedded
 * agent only; a master has its own), the applTable row of RFC 2788, the
 * MTA-MIB of RFC 2789 and SLUICE-MIB (man/SLUICE-MIB.txt).  Each MIB
 * section is answered from a sorted list of its variables (proto/oidlist.h)
 * rebuilt from the counters when older than a second, so every table is
 * walkable with GETNEXT and a walk sees one consistent picture per second.
 *
 * Threads: net-snmp is not thread-safe, so every net-snmp call happens on
 * the "snmp" thread (an OWN stage member), which reads only counters and
 * RCU-published views (stages/stats.h, engine/counter.h, the stage
 * statistics), never a lock on a hot path.  sl_snmp_interrupt wakes it (an
 * eventfd) for the stop.  Parses untrusted input: SNMP PDUs, through
 * net-snmp; the OIDs of requests are bounded by SL_OID_MAX.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf_holder.h"
#include "conf/conf_snapshot.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"
#include "proto/oidlist.h"
#include "stages/snmp_int.h"
#include "stages/stages.h"
#include "stages/stats.h"

/* Our own package's figures, before net-snmp's config header redefines the names. */
static const char snmp_version[] = PACKAGE_VERSION;
#undef PACKAGE_BUGREPORT
#undef PACKAGE_NAME
#undef PACKAGE_STRING
#undef PACKAGE_TARNAME
#undef PACKAGE_URL
#undef PACKAGE_VERSION
#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/agent/net-snmp-agent-includes.h>
#include <net-snmp/agent/agent_callbacks.h>
#include <net-snmp/library/large_fd_set.h>

#define SNMP_APP         "sluiced"
#define SNMP_CACHE_MS    1000 /* a section's list is rebuilt when older */
#define SNMP_CHECK_MS    1000 /* the configuration is looked at this often */
#define SNMP_AGENTX_PING 5    /* seconds between pings of (reconnects to) a master */

/* What the stanza says; compared as a whole to decide a restart. */
struct snmp_conf {
	bool is_enabled;
	char address[128]; /* net-snmp transport: "udp:127.0.0.1:8162" */
	char agentx[256];  /* AgentX master socket, or "" */
	char community[128];
};

static struct {
	int wake_fd;
	struct sl_snmp_hooks hooks;
	/* the snmp thread's own */
	bool is_running;
	bool is_logging;
	struct snmp_conf conf;
	uint64_t generation; /* of the configuration last looked at */
	uint64_t started_ms; /* monotonic: agent start, for sysUpTime */
	struct snmp_section *sections;
	size_t section_cnt;
} snmp = { .wake_fd = -1 };

void
sl_snmp_preinit(void)
{
	/*
	 * The agent answers by number and needs no MIB text: without these,
	 * net-snmp's init parses every MIB of /usr/share/snmp/mibs (seconds,
	 * and pages of warnings when the IETF ones are not installed).  Set
	 * here, before any thread exists: setenv is not thread-safe.
	 */
	setenv("MIBS", "", 1);
	setenv("MIBDIRS", "", 1);
}

void
sl_snmp_set_hooks(const struct sl_snmp_hooks *h)
{
	snmp.hooks = *h;
}

const struct sl_snmp_hooks *
sl_snmp_hooks(void)
{
	return &snmp.hooks;
}

const char *
sl_snmp_version(void)
{
	return snmp_version;
}

uint64_t
sl_snmp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint32_t
sl_snmp_uptime_ticks(void)
{
	return (uint32_t)((sl_snmp_now_ms() - snmp.started_ms) / 10);
}

/* ------------------------------------------------------------ logging */

/* net-snmp's log lines go to the paniclog. */
static int
snmp_log_cb(int major, int minor, void *serverarg, void *clientarg)
{
	const struct snmp_log_message *m = serverarg;
	size_t len = m->msg ? strlen(m->msg) : 0;

	while (len > 0 && (m->msg[len - 1] == '\n' || m->msg[len - 1] == '\r'))
		len--;
	if (len == 0)
		return 0;
	/* Its VACM finds no tables; snmp_access_cb is the access control here. */
	if (strstr(m->msg, "no access control information configured") != NULL)
		return 0;
	if (m->priority <= LOG_ERR)
		sl_log_err("snmp: %.*s", (int)len, m->msg);
	else if (m->priority <= LOG_NOTICE)
		sl_log_notice("snmp: %.*s", (int)len, m->msg);
	else
		sl_log_debug("snmp: %.*s", (int)len, m->msg);
	return 0;
}

/* ------------------------------------------------------------ access */

/*
 * The embedded agent answers the configured community and nothing else:
 * no VACM tables, one check.  net-snmp asks this callback before it looks
 * at any variable; an errorcode makes it drop a v1/v2c request (counted in
 * snmpInBadCommunityNames).  SETs pass here and fail with notWritable: the
 * handlers are registered read-only.
 */
static int
snmp_access_cb(int major, int minor, void *serverarg, void *clientarg)
{
	struct view_parameters *vp = serverarg;
	const netsnmp_pdu *pdu = vp->pdu;
	size_t len = strlen(snmp.conf.community);

	/*
	 * net-snmp's own VACM callbacks run first and, with no VACM tables,
	 * refuse everything: the verdict here replaces theirs.
	 */
	if (pdu->version != SNMP_VERSION_1 && pdu->version != SNMP_VERSION_2c)
		vp->errorcode = VACM_NOSECNAME;
	else if (pdu->community == NULL || pdu->community_len != len ||
		 memcmp(pdu->community, snmp.conf.community, len) != 0)
		vp->errorcode = VACM_NOSECNAME;
	else
		vp->errorcode =
			VACM_SUCCESS; /* a SET gets notWritable: every object is read-only */
	return 0;
}

/* ------------------------------------------------------------ answering */

static void
snmp_set_value(netsnmp_variable_list *vb, const struct sl_snmp_var *v)
{
	switch (v->type) {
	case SL_SNMP_INTEGER: {
		long x = (long)(int64_t)v->num;

		snmp_set_var_typed_value(vb, ASN_INTEGER, &x, sizeof(x));
		break;
	}
	case SL_SNMP_COUNTER32:
	case SL_SNMP_GAUGE32:
	case SL_SNMP_TIMETICKS: {
		/* Counter32 wraps; Gauge32 sticks at its maximum (RFC 2578). */
		u_long x = v->type == SL_SNMP_GAUGE32 && v->num > UINT32_MAX
				   ? UINT32_MAX
				   : (u_long)(uint32_t)v->num;

		snmp_set_var_typed_value(vb,
					 v->type == SL_SNMP_COUNTER32 ? ASN_COUNTER
					 : v->type == SL_SNMP_GAUGE32 ? ASN_GAUGE
								      : ASN_TIMETICKS,
					 &x, sizeof(x));
		break;
	}
	case SL_SNMP_COUNTER64: {
		struct counter64 c = { (u_long)(v->num >> 32), (u_long)(v->num & 0xffffffffu) };

		snmp_set_var_typed_value(vb, ASN_COUNTER64, &c, sizeof(c));
		break;
	}
	case SL_SNMP_STRING:
		snmp_set_var_typed_value(vb, ASN_OCTET_STR, v->str, v->str_len);
		break;
	case SL_SNMP_OID: {
		oid o[SL_OID_MAX];
		const uint32_t *arc = (const uint32_t *)(const void *)v->str;

		for (size_t i = 0; i < v->str_len; i++)
			o[i] = arc[i];
		snmp_set_var_typed_value(vb, ASN_OBJECT_ID, o, v->str_len * sizeof(oid));
		break;
	}
	}
}

/* The section's list, rebuilt when stale. */
static struct sl_oid_list *
snmp_section_list(struct snmp_section *sec)
{
	uint64_t now = sl_snmp_now_ms();

	if (sec->built_ms == 0 || now - sec->built_ms >= SNMP_CACHE_MS) {
		sl_oid_list_clear(&sec->list);
		sec->build(&sec->list, &sec->root);
		sl_oid_list_sort(&sec->list);
		sec->built_ms = now;
	}
	return &sec->list;
}

static int
snmp_handler(netsnmp_mib_handler *handler, netsnmp_handler_registration *reg,
	     netsnmp_agent_request_info *reqinfo, netsnmp_request_info *requests)
{
	struct snmp_section *sec = handler->myvoid;
	struct sl_oid_list *l = snmp_section_list(sec);

	for (netsnmp_request_info *r = requests; r != NULL; r = r->next) {
		netsnmp_variable_list *vb = r->requestvb;
		const struct sl_snmp_var *v;
		uint32_t arc[SL_OID_MAX];
		size_t len = vb->name_length < SL_OID_MAX ? vb->name_length : SL_OID_MAX;

		if (r->processed)
			continue;
		for (size_t i = 0; i < len; i++)
			arc[i] = vb->name[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)vb->name[i];
		switch (reqinfo->mode) {
		case MODE_GET:
			v = vb->name_length <= SL_OID_MAX ? sl_oid_list_get(l, arc, len) : NULL;
			if (v == NULL)
				netsnmp_set_request_error(reqinfo, r, SNMP_NOSUCHINSTANCE);
			else
				snmp_set_value(vb, v);
			break;
		case MODE_GETNEXT:
			v = sl_oid_list_next(l, arc, len);
			if (v != NULL) {
				oid name[SL_OID_MAX];

				for (size_t i = 0; i < v->len; i++)
					name[i] = v->arc[i];
				snmp_set_var_objid(vb, name, v->len);
				snmp_set_value(vb, v);
			}
			/* Else nothing: the agent goes on to the next subtree. */
			break;
		default:
			netsnmp_set_request_error(reqinfo, r, SNMP_ERR_NOTWRITABLE);
			break;
		}
	}
	return SNMP_ERR_NOERROR;
}

static void
snmp_register(struct snmp_section *sec)
{
	oid root[SL_OID_MAX];
	netsnmp_handler_registration *reg;

	for (size_t i = 0; i < sec->root.len; i++)
		root[i] = sec->root.arc[i];
	reg = netsnmp_create_handler_registration(sec->name, snmp_handler, root, sec->root.len,
						  HANDLER_CAN_RONLY);
	if (reg == NULL) {
		sl_log_err("snmp: cannot register %s", sec->name);
		return;
	}
	reg->handler->myvoid = sec;
	/*
	 * Ahead of a master's own objects in the same subtree (lower is
	 * preferred; net-snmp's default is 127): Debian's snmpd serves a
	 * sendmail MTA-MIB of its own (mta_sendmail) under mib-2.28.
	 */
	reg->priority = 100;
	if (netsnmp_register_handler(reg) != MIB_REGISTERED_OK)
		sl_log_err("snmp: cannot register %s", sec->name);
}

/* ------------------------------------------------------------ traps */

#define SNMP_TRAP_DEST_MAX 8

/* The watched figures of Watch_Variables, in the order of sl_snmp_watch. */
static const char *const snmp_watch_names[] = { "GlobalMailQueue", "ActiveQueue", "DelayedQueue",
						"FailedMessages" };
#define SNMP_WATCH_CNT 4

static struct {
	bool is_enabled;
	unsigned watch_s, trap_s;
	struct {
		char peer[160];
		char community[128];
	} dest[SNMP_TRAP_DEST_MAX];
	size_t dest_cnt;
	uint64_t limit[SNMP_WATCH_CNT];
	bool has_limit[SNMP_WATCH_CNT];
	/* the snmp thread's state */
	uint64_t watched_ms;
	uint64_t sent_ms[SNMP_WATCH_CNT]; /* last trap for a condition that lasts; 0: none */
	bool is_start_sent;
} traps;

static const char *
snmp_kv(const struct sl_conf_kvlist *kv, const char *key)
{
	for (size_t i = 0; i < kv->cnt; i++)
		if (strcasecmp(kv->v[i].key, key) == 0)
			return kv->v[i].val;
	return NULL;
}

void
sl_snmp_traps_config(const struct sl_conf_snapshot *s)
{
	size_t pos = 0;
	const struct sl_conf_block *b = sl_conf_block_next(s, "SNMP_TRAPS", &pos);
	const union sl_conf_val *v;

	traps.is_enabled = false;
	traps.dest_cnt = 0;
	memset(traps.has_limit, 0, sizeof(traps.has_limit));
	if (b == NULL)
		return;
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_TRAPS_STATE);
	traps.is_enabled = v != NULL && v->b;
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_TRAPS_WATCH_INTERVAL);
	traps.watch_s = v != NULL && v->i > 0 ? (unsigned)v->i : 10;
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_TRAPS_TRAP_INTERVAL);
	traps.trap_s = v != NULL && v->i > 0 ? (unsigned)v->i : 60;
	/* Trap_Destination repeats: one setting per sink, in order. */
	for (size_t i = 0; i < b->set.cnt; i++) {
		const struct sl_conf_setting *st = &b->set.v[i];
		const char *addr, *port, *comm;

		if (st->id != SL_OPT_SNMP_TRAPS_TRAP_DESTINATION)
			continue;
		addr = snmp_kv(&st->v.kv, "Address");
		port = snmp_kv(&st->v.kv, "Port");
		comm = snmp_kv(&st->v.kv, "Community");
		if (addr == NULL || traps.dest_cnt == SNMP_TRAP_DEST_MAX) {
			sl_log_err("snmp: %s:%u: a Trap_Destination %s", st->loc.file, st->loc.line,
				   addr == NULL ? "without an Address is ignored"
						: "too many: ignored");
			continue;
		}
		if (strchr(addr, ':') != NULL)
			snprintf(traps.dest[traps.dest_cnt].peer, sizeof(traps.dest[0].peer),
				 "udp6:[%s]:%s", addr, port ? port : "162");
		else
			snprintf(traps.dest[traps.dest_cnt].peer, sizeof(traps.dest[0].peer),
				 "udp:%s:%s", addr, port ? port : "162");
		snprintf(traps.dest[traps.dest_cnt].community, sizeof(traps.dest[0].community),
			 "%s", comm ? comm : "Public");
		traps.dest_cnt++;
	}
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_TRAPS_WATCH_VARIABLES);
	if (v != NULL) {
		for (size_t k = 0; k < SNMP_WATCH_CNT; k++) {
			const char *x = snmp_kv(&v->kv, snmp_watch_names[k]);

			/* Momentum's page also says "FailMessages" once. */
			if (x == NULL && k == 3)
				x = snmp_kv(&v->kv, "FailMessages");
			if (x != NULL) {
				traps.limit[k] = strtoull(x, NULL, 10);
				traps.has_limit[k] = true;
			}
		}
	}
}

/* One SNMPv2 trap to every destination: sysUpTime.0, snmpTrapOID.0, then `var` if given. */
static void
snmp_trap_send(uint32_t trap, const char *what, uint64_t value, uint64_t limit)
{
	static const oid uptime_oid[] = { 1, 3, 6, 1, 2, 1, 1, 3, 0 };
	static const oid trapoid_oid[] = { 1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0 };
	struct sl_oid t, o;
	oid trap_name[SL_OID_MAX], name[SL_OID_MAX];

	sl_snmp_sluice_oid(&t, (const uint32_t[]){ 0, trap }, 2);
	for (size_t i = 0; i < t.len; i++)
		trap_name[i] = t.arc[i];
	for (size_t d = 0; d < traps.dest_cnt; d++) {
		netsnmp_session sess, *ss;
		netsnmp_pdu *pdu;
		u_long ticks = sl_snmp_uptime_ticks();

		snmp_sess_init(&sess);
		sess.version = SNMP_VERSION_2c;
		sess.peername = traps.dest[d].peer;
		sess.community = (u_char *)traps.dest[d].community;
		sess.community_len = strlen(traps.dest[d].community);
		ss = snmp_open(&sess);
		if (ss == NULL) {
			sl_log_err("snmp: cannot send a trap to %s", traps.dest[d].peer);
			continue;
		}
		pdu = snmp_pdu_create(SNMP_MSG_TRAP2);
		snmp_pdu_add_variable(pdu, uptime_oid, OID_LENGTH(uptime_oid), ASN_TIMETICKS,
				      &ticks, sizeof(ticks));
		snmp_pdu_add_variable(pdu, trapoid_oid, OID_LENGTH(trapoid_oid), ASN_OBJECT_ID,
				      trap_name, t.len * sizeof(oid));
		if (what != NULL) {
			u_long x;

			sl_snmp_sluice_oid(&o, (const uint32_t[]){ 7, 1, 0 }, 3);
			for (size_t i = 0; i < o.len; i++)
				name[i] = o.arc[i];
			snmp_pdu_add_variable(pdu, name, o.len, ASN_OCTET_STR, what, strlen(what));
			x = value > UINT32_MAX ? UINT32_MAX : (u_long)value;
			name[o.len - 2] = 2;
			snmp_pdu_add_variable(pdu, name, o.len, ASN_GAUGE, &x, sizeof(x));
			x = limit > UINT32_MAX ? UINT32_MAX : (u_long)limit;
			name[o.len - 2] = 3;
			snmp_pdu_add_variable(pdu, name, o.len, ASN_GAUGE, &x, sizeof(x));
		}
		if (snmp_send(ss, pdu) == 0) {
			sl_log_err("snmp: cannot send a trap to %s", traps.dest[d].peer);
			snmp_free_pdu(pdu);
		}
		snmp_close(ss);
	}
}

void
sl_snmp_traps_tick(bool is_stopping)
{
	uint64_t now = sl_snmp_now_ms();
	struct sl_snmp_watch w;
	uint64_t val[SNMP_WATCH_CNT];

	if (!traps.is_enabled || !snmp.is_running || traps.dest_cnt == 0)
		return;
	if (is_stopping) {
		snmp_trap_send(2, NULL, 0, 0);
		return;
	}
	if (!traps.is_start_sent) {
		snmp_trap_send(1, NULL, 0, 0);
		traps.is_start_sent = true;
	}
	if (traps.watched_ms != 0 && now - traps.watched_ms < (uint64_t)traps.watch_s * 1000)
		return;
	traps.watched_ms = now;
	sl_snmp_watch_read(&w);
	val[0] = w.global_queue;
	val[1] = w.active;
	val[2] = w.delayed;
	val[3] = w.failed;
	for (size_t k = 0; k < SNMP_WATCH_CNT; k++) {
		if (!traps.has_limit[k] || val[k] < traps.limit[k]) {
			traps.sent_ms[k] = 0; /* the condition is over */
			continue;
		}
		if (traps.sent_ms[k] != 0 && now - traps.sent_ms[k] < (uint64_t)traps.trap_s * 1000)
			continue;
		sl_log_notice("snmp: %s is %" PRIu64 " (limit %" PRIu64 "): trap sent",
			      snmp_watch_names[k], val[k], traps.limit[k]);
		snmp_trap_send(3, snmp_watch_names[k], val[k], traps.limit[k]);
		traps.sent_ms[k] = now;
	}
}

/* ------------------------------------------------------------ starting and stopping */

/* The stanza of snapshot s, as a struct snmp_conf (disabled without one). */
static void
snmp_conf_of(const struct sl_conf_snapshot *s, struct snmp_conf *c)
{
	size_t pos = 0;
	const struct sl_conf_block *b = s ? sl_conf_block_next(s, "SNMP", &pos) : NULL;
	const union sl_conf_val *v;

	memset(c, 0, sizeof(*c));
	if (b == NULL)
		return;
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_STATE);
	c->is_enabled = v == NULL || v->b;
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_AGENTX);
	if (v != NULL && v->s != NULL)
		snprintf(c->agentx, sizeof(c->agentx), "%s", v->s);
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_COMMUNITY);
	snprintf(c->community, sizeof(c->community), "%s", v && v->s ? v->s : "Public");
	v = sl_conf_block_get(s, b, SL_OPT_SNMP_ADDRESS);
	if (v != NULL && v->s != NULL) {
		const char *a = v->s;

		/* "*:8162" is every address; "[::1]:8162" IPv6; else IPv4. */
		if (a[0] == '*' && a[1] == ':')
			snprintf(c->address, sizeof(c->address), "udp:%s", a + 2);
		else if (a[0] == '[')
			snprintf(c->address, sizeof(c->address), "udp6:%s", a);
		else
			snprintf(c->address, sizeof(c->address), "udp:%s", a);
	} else if (c->agentx[0] == '\0') {
		/* Momentum names no default; 8162 is the port it suggests. */
		snprintf(c->address, sizeof(c->address), "udp:127.0.0.1:8162");
	}
}

static void
snmp_stop_agent(void)
{
	if (!snmp.is_running)
		return;
	snmp_shutdown(SNMP_APP);
	snmp.is_logging = false; /* the shutdown dropped every callback */
	for (size_t i = 0; i < snmp.section_cnt; i++) {
		sl_oid_list_clear(&snmp.sections[i].list);
		snmp.sections[i].built_ms = 0;
	}
	snmp.is_running = false;
	sl_log_notice("snmp: agent stopped");
}

static void
snmp_start_agent(void)
{
	bool is_sub = snmp.conf.agentx[0] != '\0';

	if (!snmp.is_logging) {
		snmp_disable_log();
		snmp_register_callback(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_LOGGING, snmp_log_cb,
				       NULL);
		snmp_enable_calllog();
		snmp.is_logging = true;
	}
	/* No configuration files, no persistent state: the stanza says it all. */
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_ROLE, is_sub);
	if (is_sub) {
		netsnmp_ds_set_string(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_X_SOCKET,
				      snmp.conf.agentx);
		netsnmp_ds_set_int(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_AGENTX_PING_INTERVAL,
				   SNMP_AGENTX_PING);
	} else {
		netsnmp_ds_set_string(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_PORTS,
				      snmp.conf.address);
	}
	if (getenv("SL_SNMP_DEBUG")) {
		debug_register_tokens(getenv("SL_SNMP_DEBUG"));
		snmp_set_do_debugging(1);
	}
	if (init_agent(SNMP_APP) != 0) {
		sl_log_err("snmp: cannot initialise the agent library");
		return;
	}
	snmp.started_ms = sl_snmp_now_ms();
	snmp.is_running = true;
	for (size_t i = 0; i < snmp.section_cnt; i++)
		if (!is_sub || !snmp.sections[i].is_master_only)
			snmp_register(&snmp.sections[i]);
	init_snmp(SNMP_APP);
	if (!is_sub) {
		snmp_register_callback(SNMP_CALLBACK_APPLICATION, SNMPD_CALLBACK_ACM_CHECK,
				       snmp_access_cb, NULL);
		snmp_register_callback(SNMP_CALLBACK_APPLICATION, SNMPD_CALLBACK_ACM_CHECK_INITIAL,
				       snmp_access_cb, NULL);
		snmp_register_callback(SNMP_CALLBACK_APPLICATION, SNMPD_CALLBACK_ACM_CHECK_SUBTREE,
				       snmp_access_cb, NULL);
		if (init_master_agent() != 0) {
			sl_log_err("snmp: cannot listen on %s", snmp.conf.address);
			snmp_stop_agent();
			return;
		}
		sl_log_notice("snmp: agent listening on %s", snmp.conf.address);
	} else {
		sl_log_notice("snmp: AgentX sub-agent of %s", snmp.conf.agentx);
	}
}

/* Compare the published configuration with the running agent; start, stop or restart it. */
static void
snmp_apply_config(void)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	struct snmp_conf c;

	if (s == NULL)
		return;
	if (s->generation == snmp.generation) {
		sl_conf_snapshot_put(s);
		return;
	}
	snmp.generation = s->generation;
	/*
	 * Every configured binding has its mtaGroupTable row from the start,
	 * not only once mail used it (listeners get theirs when opened).
	 */
	for (size_t i = 0; i < s->binding_cnt; i++)
		sl_group_of_binding(s->bindings[i].name,
				    s->bindings[i].group ? s->bindings[i].group->name : NULL);
	snmp_conf_of(s, &c);
	sl_snmp_traps_config(s);
	sl_conf_snapshot_put(s);
	if (c.is_enabled == snmp.conf.is_enabled && strcmp(c.address, snmp.conf.address) == 0 &&
	    strcmp(c.agentx, snmp.conf.agentx) == 0) {
		/* The community (and the texts, read at each request) apply in place. */
		memcpy(snmp.conf.community, c.community, sizeof(c.community));
		return;
	}
	if (snmp.is_running && c.is_enabled && c.agentx[0] == '\0' && snmp.conf.agentx[0] == '\0') {
		/*
		 * The embedded agent moves: close its transport and open the new
		 * one, the library staying up (a full restart would re-initialise
		 * it, which leaks some of its tables each time).
		 */
		shutdown_master_agent();
		snmp.conf = c;
		netsnmp_ds_set_string(NETSNMP_DS_APPLICATION_ID, NETSNMP_DS_AGENT_PORTS, c.address);
		if (init_master_agent() != 0) {
			sl_log_err("snmp: cannot listen on %s", c.address);
			snmp_stop_agent();
			return;
		}
		sl_log_notice("snmp: agent listening on %s", c.address);
		return;
	}
	snmp_stop_agent();
	snmp.conf = c;
	if (c.is_enabled)
		snmp_start_agent();
}

/* Wait for requests, timeouts (AgentX pings, retries) and the wake-up; at most SNMP_CHECK_MS. */
static void
snmp_wait(void)
{
	netsnmp_large_fd_set fds;
	struct timeval tv = { SNMP_CHECK_MS / 1000, (SNMP_CHECK_MS % 1000) * 1000 }, cap = tv;
	int numfds = snmp.wake_fd + 1, block = 0, n;

	netsnmp_large_fd_set_init(&fds, FD_SETSIZE);
	NETSNMP_LARGE_FD_SET(snmp.wake_fd, &fds);
	snmp_select_info2(&numfds, &fds, &tv, &block);
	if (block || timercmp(&tv, &cap, >))
		tv = cap;
	n = netsnmp_large_fd_set_select(numfds, &fds, NULL, NULL, &tv);
	if (n > 0) {
		if (NETSNMP_LARGE_FD_ISSET(snmp.wake_fd, &fds)) {
			uint64_t x;

			if (read(snmp.wake_fd, &x, sizeof(x)) < 0 && errno != EAGAIN)
				sl_log_err("snmp: wake-up: %s", strerror(errno));
		}
		snmp_read2(&fds);
	} else if (n == 0) {
		snmp_timeout();
	}
	run_alarms();
	netsnmp_check_outstanding_agent_requests();
	netsnmp_large_fd_set_cleanup(&fds);
}

static void
snmp_thread(struct sl_thread *t)
{
	snmp.sections = sl_snmp_sections(&snmp.section_cnt);
	while (!sl_thread_stopping(t)) {
		snmp_apply_config();
		if (snmp.is_running) {
			snmp_wait();
			sl_snmp_traps_tick(false);
		} else {
			struct pollfd p = { .fd = snmp.wake_fd, .events = POLLIN };

			if (poll(&p, 1, SNMP_CHECK_MS) > 0) {
				uint64_t x;

				if (read(snmp.wake_fd, &x, sizeof(x)) < 0 && errno != EAGAIN)
					sl_log_err("snmp: wake-up: %s", strerror(errno));
			}
		}
	}
	sl_snmp_traps_tick(true);
	snmp_stop_agent();
	for (size_t i = 0; i < snmp.section_cnt; i++)
		sl_oid_list_clear(&snmp.sections[i].list);
}

int
sl_snmp_start(struct sl_stage *st)
{
	int rc;

	snmp.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (snmp.wake_fd < 0)
		return -errno;
	rc = sl_stage_spawn(st, "snmp", snmp_thread, NULL, NULL);
	if (rc < 0) {
		close(snmp.wake_fd);
		snmp.wake_fd = -1;
	}
	return rc;
}

void
sl_snmp_interrupt(void)
{
	uint64_t one = 1;

	if (snmp.wake_fd >= 0 && write(snmp.wake_fd, &one, sizeof(one)) < 0)
		sl_log_err("snmp: wake-up: %s", strerror(errno));
}

void
sl_snmp_close(void)
{
	if (snmp.wake_fd >= 0)
		close(snmp.wake_fd);
	snmp.wake_fd = -1;
}

const struct sl_stage_def sl_snmp_stage = {
	.name = "snmp",
	.kind = SL_STAGE_OWN,
};
