/*
 * proto/oidlist.h - a sorted list of SNMP variables, for an agent's GET and
 * GETNEXT.
 *
 * The SNMP agent (stages/snmp.c) answers from lists like this one: a MIB
 * section builds every (OID, value) it has into a list from the figures of
 * the moment, the list is sorted once, and each request is a binary search
 * (GET: the exact OID; GETNEXT: the first OID after the one asked).  So
 * tables are walkable with GETNEXT whatever their indexes, and no handler
 * keeps state between requests but the list, rebuilt when it is older than
 * its owner wants.
 *
 * Values are copied into the list's arena; the list owns everything.
 * Pure: no I/O, no net-snmp (the agent converts to net-snmp's types).
 * Threads: a list belongs to one thread.
 */
#ifndef SL_PROTO_OIDLIST_H
#define SL_PROTO_OIDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/arena.h"

#define SL_OID_MAX 128 /* arcs in an OID (SNMP allows 128) */

enum sl_snmp_type {
	SL_SNMP_INTEGER,   /* Integer32 */
	SL_SNMP_COUNTER32, /* Counter32 (wraps at 2^32) */
	SL_SNMP_GAUGE32,   /* Gauge32 (sticks at 2^32-1) */
	SL_SNMP_TIMETICKS, /* hundredths of a second */
	SL_SNMP_COUNTER64,
	SL_SNMP_STRING, /* OCTET STRING (DisplayString, SnmpAdminString) */
	SL_SNMP_OID,    /* OBJECT IDENTIFIER */
};

struct sl_oid {
	uint32_t len;
	uint32_t arc[SL_OID_MAX];
};

struct sl_snmp_var {
	const uint32_t *arc; /* in the list's arena */
	uint32_t len;
	enum sl_snmp_type type;
	uint64_t num;    /* INTEGER (as int64_t), counters, gauge, ticks */
	const char *str; /* STRING (not NUL-terminated: str_len octets); OID: arcs as uint32_t */
	size_t str_len;  /* STRING octets; OID arcs */
	size_t seq;      /* order of the add (private: the last add of a name wins) */
};

struct sl_oid_list {
	struct sl_snmp_var *v; /* owned */
	size_t cnt, cap;
	bool is_sorted;
	struct sl_arena arena; /* arcs and strings */
};

#define SL_OID_LIST_INIT                         \
	{                                        \
		NULL, 0, 0, false, SL_ARENA_INIT \
	}

/* Compare two OIDs lexicographically by arc (a prefix sorts first): <0, 0, >0. */
int sl_oid_cmp(const uint32_t *a, size_t alen, const uint32_t *b, size_t blen);

/*
 * Parse "1.3.6.1.2.1.28" (a leading '.' allowed) into `o`.  0, or -1 for a
 * malformed or too long OID.
 */
int sl_oid_parse(const char *text, struct sl_oid *o);
/* Append arcs to `o`; -1 (o unchanged) when it would exceed SL_OID_MAX. */
int sl_oid_push(struct sl_oid *o, const uint32_t *arc, size_t cnt);
int sl_oid_push1(struct sl_oid *o, uint32_t arc);
/* A string as an index: its length, then one arc per octet (RFC 2578 7.7). */
int sl_oid_push_str(struct sl_oid *o, const char *s, size_t len);

/*
 * Add a variable named prefix + suffix (the suffix may be empty).  A later
 * add of the same OID replaces the value (the list keeps the last).
 * Overlong names are dropped (returns -1).
 */
int sl_oid_list_add_num(struct sl_oid_list *l, const struct sl_oid *name, enum sl_snmp_type t,
			uint64_t v);
int sl_oid_list_add_str(struct sl_oid_list *l, const struct sl_oid *name, const char *s,
			size_t len);
int sl_oid_list_add_oid(struct sl_oid_list *l, const struct sl_oid *name, const struct sl_oid *v);

/* Sort (once; adds after it sort again on the next lookup). */
void sl_oid_list_sort(struct sl_oid_list *l);
/* The variable named exactly `arc`, or NULL. */
const struct sl_snmp_var *sl_oid_list_get(struct sl_oid_list *l, const uint32_t *arc, size_t len);
/* The first variable whose name sorts after `arc`, or NULL (end of the list). */
const struct sl_snmp_var *sl_oid_list_next(struct sl_oid_list *l, const uint32_t *arc, size_t len);
/* Empty the list (keep nothing). */
void sl_oid_list_clear(struct sl_oid_list *l);

#endif /* SL_PROTO_OIDLIST_H */
