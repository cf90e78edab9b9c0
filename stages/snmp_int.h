/*
 * stages/snmp_int.h - private parts of the SNMP stage (stages/snmp*.c).
 *
 * snmp.c runs net-snmp on the snmp thread and answers requests from the
 * sections that snmp_mib.c builds: each section is a subtree (its root)
 * whose variables are built into a sorted list (proto/oidlist.h) from the
 * counters of the moment.  snmp_mib.c includes no net-snmp header.
 *
 * Threads: all of it runs on the snmp thread, but the hooks (set by main
 * before the stage starts).
 */
#ifndef SL_STAGES_SNMP_INT_H
#define SL_STAGES_SNMP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/oidlist.h"

struct snmp_section {
	const char *name;
	struct sl_oid root;
	bool is_master_only; /* the system group: a master agent has its own */
	/* Add every variable of the section to l (root: the section's root OID). */
	void (*build)(struct sl_oid_list *l, const struct sl_oid *root);
	/* snmp.c's */
	struct sl_oid_list list;
	uint64_t built_ms;
};

/* The sections served (a static table, snmp_mib.c). */
struct snmp_section *sl_snmp_sections(size_t *cnt);

/* The OIDs of SLUICE-MIB (man/SLUICE-MIB.txt): sluiceMIB, arc 1 of the root
 * SLUICE-SMI places (netSnmpPlaypen.2789 until sluice has a PEN). */
#define SL_SNMP_SLUICE_ROOT "1.3.6.1.4.1.8072.9999.9999.2789.1"
void sl_snmp_sluice_oid(struct sl_oid *o, const uint32_t *arc, size_t cnt);
/* Longest domain listed in sluiceDomainTable: its name is OID arcs of the index. */
#define SL_SNMP_DOMAIN_MAX 100

/* Our version (the one PACKAGE_VERSION had before net-snmp's header). */
const char *sl_snmp_version(void);
/* Monotonic milliseconds; hundredths of a second since the agent started. */
uint64_t sl_snmp_now_ms(void);
uint32_t sl_snmp_uptime_ticks(void);
const struct sl_snmp_hooks *sl_snmp_hooks(void);

/* Figures the traps watch (snmp_mib.c reads them the same way as the MIB). */
struct sl_snmp_watch {
	uint64_t global_queue; /* active + delayed */
	uint64_t active;
	uint64_t delayed;
	uint64_t failed; /* recipients failed for good since the start */
};
void sl_snmp_watch_read(struct sl_snmp_watch *w);

/* snmp.c: traps (the SNMP_TRAPS stanza). */
struct sl_conf_snapshot;
void sl_snmp_traps_config(const struct sl_conf_snapshot *s);
/* Sample the watched figures when due and send what is due; at the stop, the shutdown trap. */
void sl_snmp_traps_tick(bool is_stopping);

#endif /* SL_STAGES_SNMP_INT_H */
