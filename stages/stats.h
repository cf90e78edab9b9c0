/*
 * stages/stats.h - figures kept for SNMP: counters per mail group, the
 * enhanced status codes each group met, and per-domain views.
 *
 * Groups are RFC 2789's mtaGroupTable rows.  sluice keeps one group per
 * binding for its outbound figures, named as Momentum names them
 * ("none/default" for the default binding, "GROUP/BINDING" or
 * "none/BINDING" for the others), one total group "none/all" over every
 * binding, and one group per listener for its inbound figures
 * ("listener/ADDRESS", e.g. "listener/127.0.0.1:25").  A group gets its
 * index (1, 2, ...; "none/all" is 1, "none/default" 2) the first time its
 * name is asked for and keeps it, with its counts, for the life of the
 * process: a binding a reload removes keeps its row (MTA-MIB: an index
 * never changes meaning while the agent runs).
 *
 * Per-domain views: every delivery thread publishes, at most once a
 * second, a read-only table of its queues (binding, domain, counts);
 * readers walk the last published tables under RCU.
 *
 * Threads: counting (sl_group_add, sl_group_error, sl_group_touch) from any
 * thread, lock-free (per-thread-sharded atomics; no shared line written by
 * every thread); finding or making a group (sl_group_of_*) takes a lock:
 * do it once (listener set-up, queue creation) and keep the pointer.
 * Groups are freed only at exit.  Readers (the SNMP thread, the console)
 * from any thread; what they read is slightly stale by design.  A gauge is
 * summed from per-thread parts that are not read at one instant, so a
 * reader could see one going below zero for a moment: readers get 0 then.
 *
 * sl_domain_stats_publish/_unpublish: the delivery threads, each in its own
 * slot; sl_domain_stats_foreach: any thread registered with RCU
 * (sl_rcu_register_thread).  Parses enhanced status codes, also from
 * remote servers' replies: strictly, a few bounded digits.
 */
#ifndef SL_STAGES_STATS_H
#define SL_STAGES_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * What a group counts (RFC 2789 names in brackets).  IN_ASSOC_TOTAL counts
 * every connection accepted, those then refused (IN_ASSOC_REFUSED) too.
 * LOOPS stays 0: sluice has no hop-count (too many Received:) check yet.
 */
enum sl_gstat {
	SL_GS_RECEIVED_MSGS,     /* messages accepted, 250 given [mtaGroupReceivedMessages] */
	SL_GS_RECEIVED_BYTES,    /* their octets [mtaGroupReceivedVolume, in KB] */
	SL_GS_RECEIVED_RCPTS,    /* their recipients [mtaGroupReceivedRecipients] */
	SL_GS_REJECTED_MSGS,     /* transactions refused [mtaGroupRejectedMessages] */
	SL_GS_TRANSMITTED_MSGS,  /* transactions that delivered [mtaGroupTransmittedMessages] */
	SL_GS_TRANSMITTED_BYTES, /* their octets [mtaGroupTransmittedVolume] */
	SL_GS_TRANSMITTED_RCPTS, /* recipients delivered [mtaGroupTransmittedRecipients] */
	SL_GS_FAILED_RCPTS,      /* recipients failed for good (bounced or dropped) */
	SL_GS_TRANSIENT_RCPTS,   /* transient failures (each attempt) */
	SL_GS_STORED_MSGS,      /* gauge: jobs queued, active or delayed [mtaGroupStoredMessages] */
	SL_GS_STORED_BYTES,     /* gauge: their octets [mtaGroupStoredVolume] */
	SL_GS_STORED_RCPTS,     /* gauge: their pending recipients [mtaGroupStoredRecipients] */
	SL_GS_ACTIVE,           /* gauge: jobs active (waiting or in a transaction) */
	SL_GS_DELAYED,          /* gauge: jobs waiting for a retry */
	SL_GS_IN_ASSOC,         /* gauge: open inbound sessions [mtaGroupInboundAssociations] */
	SL_GS_OUT_ASSOC,        /* gauge: open outbound connections [...OutboundAssociations] */
	SL_GS_IN_ASSOC_TOTAL,   /* [mtaGroupAccumulatedInboundAssociations] */
	SL_GS_OUT_ASSOC_TOTAL,  /* [mtaGroupAccumulatedOutboundAssociations] */
	SL_GS_IN_ASSOC_REFUSED, /* sessions refused at connect [...RejectedInboundAssociations] */
	SL_GS_OUT_ASSOC_FAILED, /* outbound connects that failed [...FailedOutboundAssociations] */
	SL_GS_LOOPS,            /* messages refused as looping (too many Received:) */
	SL_GS__COUNT
};

enum sl_group_kind {
	SL_GROUP_TOTAL,    /* "none/all": every binding group's counts, summed as they happen */
	SL_GROUP_BINDING,  /* outbound figures of one binding */
	SL_GROUP_LISTENER, /* inbound figures of one listener */
};

struct sl_group;

/*
 * The group of binding `binding` (NULL or "default": the default binding)
 * in binding group `binding_group` (NULL or "default": none), made on
 * first use.  Counts added to it are added to "none/all" too.  The default
 * binding's group is "none/default" whatever binding group is named.
 * Names are kept as given (the configuration's spelling).  Never NULL.
 */
struct sl_group *sl_group_of_binding(const char *binding, const char *binding_group);
/* The group of listener `address` (as configured, e.g. "127.0.0.1:25", "/run/s.sock"). */
struct sl_group *sl_group_of_listener(const char *address);
/* The group's index (1..), for struct sl_domain_stat.group; 0 for NULL. */
unsigned sl_group_index(const struct sl_group *g);

/* Count; a gauge takes negative deltas.  NULL g: nothing. */
void sl_group_add(struct sl_group *g, enum sl_gstat s, int64_t delta);
/* Remember now as the group's last inbound (or outbound) activity. */
void sl_group_touch(struct sl_group *g, bool is_inbound);
/*
 * An enhanced status code ("4.2.2", "5.1.1") was met: a refusal given
 * (inbound) or a reply received / a failure decided (outbound).  Codes
 * that do not parse as class.subject.detail are not counted.
 */
void sl_group_error(struct sl_group *g, const char *enhanced);
/*
 * The same for a reply: `text` is what follows the basic code `code` (e.g.
 * 550, "5.1.1 User unknown"; NULL is fine).  Its leading enhanced code is
 * counted when there is one of the code's class, else class.0.0 (RFC 3463
 * "other or undefined status": 550 without one counts as 5.0.0).  Codes
 * outside 2xx, 4xx and 5xx are not counted.
 */
void sl_group_error_reply(struct sl_group *g, unsigned code, const char *text);

/* A reader's copy of one group. */
struct sl_group_info {
	unsigned index; /* 1.. */
	enum sl_group_kind kind;
	const char *name; /* valid for the life of the process */
	uint64_t v[SL_GS__COUNT];
	time_t created;        /* when the group was made */
	time_t last_in;        /* last inbound activity, 0: none */
	time_t last_out;       /* last outbound activity, 0: none */
	uint64_t errors_other; /* codes met after the group's error table was full
				  (SL_GROUP_ERRORS_MAX distinct codes): counted here only */
};
/* Distinct enhanced status codes a group keeps a count for. */
#define SL_GROUP_ERRORS_MAX 128
/* fn for every group in index order. */
void sl_group_foreach(void (*fn)(const struct sl_group_info *gi, void *arg), void *arg);
/*
 * fn for every (group, code) counted, in group index order then code
 * order; code is RFC 2789's mtaStatusCode: class * 1000000 + subject *
 * 1000 + detail (e.g. 5.1.1 -> 5001001).
 */
void sl_group_errors_foreach(void (*fn)(unsigned group, uint32_t code, uint64_t cnt, void *arg),
			     void *arg);

/* One (binding, domain) queue of a delivery thread's last published view. */
struct sl_domain_stat {
	const char *domain;  /* lower case; valid during the callback */
	const char *binding; /* "default", ...; valid during the callback */
	unsigned group;      /* the binding's group index */
	uint64_t receptions; /* jobs that reached this queue */
	uint64_t deliveries; /* recipients delivered */
	uint64_t failures;   /* recipients failed for good */
	uint64_t transients; /* transient failures */
	uint32_t conns;      /* outbound connections open now */
	uint32_t active;     /* jobs active (waiting or in a transaction) */
	uint32_t delayed;    /* jobs delayed */
};
/*
 * fn for every queue of every delivery thread's last published view (at
 * most about a second old).  Each view is held by a reference while fn
 * runs over its rows, so the RCU read-side sections stay short whatever the
 * number of queues; fn must not block (the caller's thread is the SNMP one).
 */
void sl_domain_stats_foreach(void (*fn)(const struct sl_domain_stat *d, void *arg), void *arg);

/* Slots for delivery threads' views (thread indexes 0..SL_DOMAIN_VIEW_SLOTS-1). */
#define SL_DOMAIN_VIEW_SLOTS 1024
/*
 * Publish `rows` (cnt of them, strings included, are copied; the caller
 * keeps its own) as slot `slot`'s view, unless they equal the view slot
 * already has (then nothing happens: false).  The previous view is freed
 * after an RCU grace period.  cnt 0: the slot is emptied.  Only the slot's
 * own thread (a delivery thread, its thread index as the slot), registered
 * with RCU.  A slot beyond SL_DOMAIN_VIEW_SLOTS is not published (false).
 * True when a new view was published (or the slot emptied).
 */
bool sl_domain_stats_publish(unsigned slot, const struct sl_domain_stat *rows, size_t cnt);
/* Empty slot `slot` (its thread ends); the view is freed after a grace period. */
void sl_domain_stats_unpublish(unsigned slot);

#endif /* SL_STAGES_STATS_H */
