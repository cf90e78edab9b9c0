/*
 * stages/deliver_int.h - private model of the delivery stage.
 *
 * Every delivery loop thread owns the queues of the (binding, domain)
 * pairs that hash to it, so a domain's limits, connections, DNS answers
 * and retry timers live on exactly one thread and need no lock.  A message
 * whose recipients span domains is split into one job per domain; the jobs
 * share the (read-only) message and each owns its recipients' status
 * entries.
 *
 *   struct dl_thread     one loop thread: its queues, timers, resolver
 *   struct dl_queue      one (binding, domain): active jobs, delayed jobs,
 *                        routes, connections, failure counters
 *   struct dl_job        one message's recipients for one domain
 *   struct dl_conn       one outbound SMTP/LMTP connection of a queue
 *
 * Threads: everything here belongs to one delivery loop thread, except the
 * message a job points to (shared read-only, reference-counted) and the
 * counters of deliver_shape.c (atomics and a mutex for shared throttles).
 */
#ifndef SL_STAGES_DELIVER_INT_H
#define SL_STAGES_DELIVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "conf/conf_snapshot.h"
#include "engine/buf.h"
#include "engine/htable.h"
#include "engine/stage.h"
#include "proto/smtp_client.h"
#include "spool/msg.h"
#include "stages/deliver_dns.h"
#include "stages/events.h"
#include "stages/stats.h"

#define DL_THREAD_MAGIC 0xde11ce01u
#define DL_QUEUE_MAGIC  0xde11ce02u
#define DL_JOB_MAGIC    0xde11ce03u
#define DL_CONN_MAGIC   0xde11ce04u

/* Connection stages of Momentum's logs (log_formats.connection.stages). */
enum dl_stage_code {
	DL_STAGE_NOT_CONNECTED = 0,
	DL_STAGE_IDLE = 1,
	DL_STAGE_MAIL = 2,
	DL_STAGE_RCPT = 4,
	DL_STAGE_DATA = 6,
	DL_STAGE_BODY = 8,
	DL_STAGE_CONFIRM = 9,
	DL_STAGE_EHLO = 10,
	DL_STAGE_BANNER = 12,
	DL_STAGE_UNKNOWN = 22,
};

struct dl_queue;
struct dl_conn;
struct dl_ecs;
struct dl_thread;

/* Which SNMP gauge of its group (stats.h) a job counts in now. */
enum dl_job_where {
	DL_JOB_NOWHERE, /* neither (not queued yet, or between two places) */
	DL_JOB_ACTIVE,  /* on its queue's active list or in a transaction */
	DL_JOB_DELAYED, /* in the delay heap */
};

/* A recipient that failed permanently in this job, for its DSN. */
struct dl_failure {
	uint32_t rcpt; /* index into msg->rcpts */
	unsigned code;
	char enhanced[16];
	char *text; /* owned */
	char ip[64];
};

/* One message's recipients for one domain; also the event that carries them. */
struct dl_job {
	struct sl_event ev; /* SL_EV_DELIVER_JOB when it travels between threads */
	unsigned magic;
	struct sl_msg *msg; /* a reference */
	uint32_t *rcpt_idx; /* owned: indices into msg->rcpts */
	size_t rcpt_cnt;
	char *domain;             /* owned, lower case */
	unsigned retries;         /* attempts that ended transiently */
	uint64_t next_attempt_ms; /* wall clock (ms) when it may go again */
	bool is_bounce;           /* a DSN we made: never bounced itself */
	bool is_dropped;          /* Blackhole = internal: failures get no DSN */
	bool is_loading;          /* its swapped-out content is being read back */
	struct dl_failure *fail;  /* owned: permanent failures waiting for the DSN */
	size_t fail_cnt;
	/* queue links (owner: the queue) */
	struct dl_queue *q;
	struct dl_job *next, *prev;
	size_t heap_pos; /* in the thread's delay heap; SIZE_MAX when not delayed */
	/* SNMP figures (stats.h): from when it first joins a queue until it is freed */
	struct sl_group *group;  /* its binding's group (process-long), NULL before */
	uint64_t stored_bytes;   /* what it added to SL_GS_STORED_BYTES */
	uint32_t stored_rcpts;   /* its recipients still counted in SL_GS_STORED_RCPTS */
	enum dl_job_where where; /* the gauge (SL_GS_ACTIVE, SL_GS_DELAYED) it counts in */
};

/* One target of a queue: an exchanger, gateway or route, and its addresses. */
struct dl_target {
	char *host; /* owned */
	uint16_t pref;
	uint16_t port;                  /* 0: the default for the delivery method */
	struct sockaddr_storage *addrs; /* owned, port set */
	size_t addr_cnt;
	unsigned round_failures; /* connection failures since the queue last connected or
				    was delayed (MX_Failures_To_Delay counts per host) */
};

struct dl_queue {
	struct sl_hnode node; /* key: "binding\0domain" */
	unsigned magic;
	struct dl_thread *dt;
	char *key; /* owned */
	size_t key_len;
	char *binding; /* points into key */
	char *domain;  /* points into key */
	/* jobs */
	struct dl_job *active_head, *active_tail;
	size_t active_cnt;
	size_t delayed_cnt;
	size_t inflight_cnt;   /* jobs in a transaction now */
	size_t resident_cnt;   /* active jobs whose content is in memory */
	size_t plain_conn_cnt; /* connections counted against Max_Outbound_Connections (no
				  Host stanza for their host) */
	size_t loading_cnt;    /* active jobs whose content is being read back */
	/* routes */
	enum { DL_ROUTE_NONE, DL_ROUTE_PENDING, DL_ROUTE_OK, DL_ROUTE_FAILED } route_state;
	enum sl_dns_status route_status;
	char route_why[192];
	size_t route_prohibited;   /* addresses Prohibited_Hosts left out of this route */
	bool is_route_partial;     /* fully_resolve_before_smtp = false: delivering to the
				    exchangers resolved so far, the rest still coming */
	struct dl_target *targets; /* owned, in preference order */
	size_t target_cnt;
	size_t next_target;        /* round robin among equal preferences */
	uint64_t route_expires_ms; /* loop time */
	uint64_t route_gen;        /* configuration generation the routes were made for */
	unsigned pending_lookups;
	unsigned mx_tempfails;  /* MX lookups in a row that failed transiently */
	uint64_t idle_since_ms; /* loop time it became empty (for freeing it) */
	/* connections */
	struct dl_conn *conns; /* list of this queue's connections */
	unsigned conn_cnt;
	unsigned connecting_cnt;
	/* failures */
	unsigned consecutive_failures;
	uint64_t first_failure_ms; /* wall clock of the first of the current run of failures */
	bool is_closing;
	/* for the console and SNMP (life of this queue record) */
	struct sl_group *group; /* its binding's group (stats.h; process-long) */
	uint64_t received_cnt;  /* jobs that reached it (not counting their retries) */
	uint64_t delivered_cnt; /* recipients delivered */
	uint64_t failed_cnt;    /* recipients failed for good */
	uint64_t transient_cnt; /* transient outcomes (every attempt's) */
	size_t console_slot;    /* deliver_console.c's scratch during one query (0: none) */
};

/* The shared connection counts (deliver_shape.c) one connection holds until it is freed. */
struct dl_slots {
	bool has_node; /* the node's Server_Max_Outbound_Connections count */
	char *binding; /* owned: its binding's count key, or NULL */
	char *group;   /* owned: its binding group's count key, or NULL */
	char *host;    /* owned: its Host stanza's count key, or NULL (the queue's own
			  Max_Outbound_Connections counts it: plain_conn_cnt) */
};

struct dl_conn {
	unsigned magic;
	struct dl_queue *q;
	struct dl_conn *next, *prev; /* in q->conns */
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	uv_timer_t timer;
	int handles_open;
	struct sockaddr_storage addr;
	char ip[64]; /* the peer, for logs */
	char host[256];
	struct dl_slots slots;       /* taken by the scheduler before it opened */
	struct sl_smtp_client *smtp; /* owned; NULL on an ECStream connection */
	struct dl_ecs *ecs;          /* owned: ECStream state (deliver_ecstream.c), or NULL */
	struct sl_buf in;
	struct sl_buf out;
	struct sl_buf wbuf;     /* the write in flight */
	struct iovec *body_iov; /* owned array while content is written */
	size_t body_iov_cnt;
	bool is_connected;
	bool is_writing;
	bool is_closing;
	bool is_idle;
	bool is_body;           /* a content write is in flight */
	bool is_body_wanted;    /* the content waits for the commands' write */
	struct dl_job *job;     /* the transaction in progress (owned while here) */
	const char **rcpt_ptrs; /* owned: addresses for the client's txn */
	struct sl_smtp_client_txn txn;
	unsigned deliveries;    /* transactions finished on it, whatever their outcome */
	unsigned delivered_cnt; /* transactions that delivered (Max_Deliveries_Per_Connection) */
	unsigned txn_delivered; /* recipients of the transaction in progress delivered */
	uint64_t started_ms;
};

/* A min-heap of delayed jobs by next_attempt_ms. */
struct dl_heap {
	struct dl_job **v; /* owned array */
	size_t cnt;
	size_t cap;
};

struct dl_dns_reload;

struct dl_thread {
	unsigned magic;
	struct sl_thread *t;
	uv_loop_t *loop;
	struct sl_htable queues;    /* struct dl_queue */
	struct sl_htable hostfails; /* struct dl_hostfail: addresses left alone for a while */
	struct sl_htable suspended; /* struct sl_hnode + name: domains the console suspended */
	struct dl_heap delayed;
	uv_timer_t delay_timer;
	uv_timer_t tick_timer;  /* periodic: refresh the configuration */
	uv_timer_t sched_timer; /* periodic: rerun queues held by limits or suspension */
	struct sl_dns *dns;
	struct sl_dns_conf *dns_conf;     /* owned: what dns was made from */
	char *dns_path;                   /* owned: its Resolv_Conf, or NULL */
	uint32_t dns_min_ttl;             /* and its min_dns_ttl */
	struct sl_dns *dns_old;           /* replaced by a reload, finishing its lookups */
	unsigned dns_old_cnt;             /* replaced resolvers not yet closed */
	struct dl_dns_reload *dns_reload; /* a reload reading Resolv_Conf, or NULL */
	struct sl_conf_snapshot *snap;    /* a reference, refreshed on every tick */
	char hostname[256];
	struct sl_stage *spool;
	struct sl_stage *deliver;
	bool is_stopping;     /* quiesced: no new transaction starts */
	bool is_draining;     /* quiesced, transactions in flight still finishing */
	bool dns_open;        /* until sl_dns_close says it is done */
	unsigned conn_open;   /* connections not yet freed, all queues */
	unsigned load_open;   /* reads of swapped-out content not yet finished */
	uint64_t dns_scan_ms; /* loop time of the last dns_expire_interval scan */
	/* SNMP: scratch (owned) for the rows of its queues' view (stats.h) */
	struct sl_domain_stat *view;
	size_t view_cap;
	struct dl_rules *rules; /* a reference to the bounce rules (deliver_bounce.c) */
};

/* ---- deliver.c: messages, outcomes, logs, bounces */

/* A draining thread's last connection is gone (deliver_conn.c calls it). */
void dl_drained(struct dl_thread *dt);

/* The thread that owns (binding, domain): the same answer on every thread. */
unsigned dl_owner(const char *binding, const char *domain, unsigned thread_cnt);
/* What became of a recipient, and for a failure what caused it (the bounce class). */
enum dl_result {
	DL_DELIVERED,
	DL_TRANSIENT,      /* tried again later */
	DL_FAILED,         /* a remote reply (or one shaped like it) failed it */
	DL_FAILED_DNS,     /* the destination's DNS said no */
	DL_FAILED_TIMEOUT, /* Message_Expiration or max_retries ran out */
	DL_FAILED_POLICY,  /* our own configuration failed it (Blackhole, Prohibited_Hosts) */
};
/* A recipient reached a final or transient outcome (logs, spool progress, bounces). */
void dl_outcome(struct dl_thread *dt, struct dl_job *job, size_t i, unsigned code,
		const char *enhanced, const char *text, const char *ip, enum dl_stage_code stage,
		enum dl_result result);
/* The job's transaction is over: free it if every recipient is final, else delay it. */
void dl_job_settle(struct dl_thread *dt, struct dl_job *job);
void dl_job_free(struct dl_job *job);
/* Current time in ms (wall clock, for retries and expiry). */
uint64_t dl_now_ms(void);

/* ---- deliver_sched.c: queues, routes, retries */

/* The queue of (binding, domain), made if new (its SNMP group from binding and binding_group). */
struct dl_queue *dl_queue_get(struct dl_thread *dt, const char *binding, const char *binding_group,
			      const char *domain);
/* A job arrives (new, recovered or due again): queue it and run the queue. */
void dl_queue_add(struct dl_thread *dt, struct dl_job *job);
/* Try to make progress on `q`: routes, connections, hand jobs to idle connections. */
void dl_queue_run(struct dl_queue *q);
/* Put a job back for a later attempt (retry_interval with back-off). */
void dl_job_delay(struct dl_thread *dt, struct dl_job *job);
/*
 * Seconds from failed attempt number `retries` (1: the first failure) to
 * the next: Retry_Interval `base`, doubled after each failure, at most
 * `max_interval` (max_retry_interval; 0: no cap), and no later than the
 * message's expiry (`expire` seconds of Message_Expiration, 0: none, for a
 * message `age` seconds old; at least 1 second).  Pure; any thread.
 */
uint64_t dl_retry_wait_s(int64_t base, int64_t max_interval, unsigned retries, int64_t expire,
			 int64_t age);
/*
 * Whether q's routes still lead to address `a`: an idle connection to an
 * address a reload or a DNS refresh dropped is not used again (NO), and
 * one whose queue is making new routes waits for them (UNKNOWN: the queue
 * feeds its idle connections again when they are in).
 */
enum dl_route_hold { DL_HOLD_YES, DL_HOLD_NO, DL_HOLD_UNKNOWN };
enum dl_route_hold dl_queue_route_holds(struct dl_queue *q, const struct sockaddr_storage *a);
/* The next active job of q for a connection, or NULL. */
struct dl_job *dl_queue_take(struct dl_queue *q);
/* A connection to target address `ip` failed: remember it (host_failure_retry). */
void dl_queue_conn_failed(struct dl_queue *q, const struct sockaddr_storage *addr, bool is_timeout);
/* A connection succeeded: reset the failure counters. */
void dl_queue_conn_ok(struct dl_queue *q);
void dl_sched_init(struct dl_thread *dt);
/* Open outbound connections (a gauge for the console; deliver_conn.c counts). */
extern unsigned dl_gauge_conns;
/* Register the gauges the console's summary reads (once, at stage set-up). */
void dl_sched_counters(void);
/* Count an active job put back on q's list outside dl_active_push (delta +1). */
void dl_active_count(struct dl_queue *q, int delta);
void dl_sched_fini(struct dl_thread *dt);
/*
 * SNMP gauges of a job (STORED_*, ACTIVE, DELAYED of its group): it counts
 * where `where` says now; a recipient of it reached its final outcome; it
 * is freed (it leaves every gauge).  No-ops for a job never queued.
 */
void dl_job_gauge(struct dl_job *job, enum dl_job_where where);
void dl_job_rcpt_final(struct dl_job *job);
void dl_job_unstore(struct dl_job *job);
/* Console actions (deliver_console.c), on the queue's own thread. */
/* Take a delayed job out of the delay heap: afterwards it is neither delayed nor active. */
void dl_job_undelay(struct dl_thread *dt, struct dl_job *job);
/* Take an active job off its queue; false (left alone) while its content is being read back. */
bool dl_job_unqueue(struct dl_queue *q, struct dl_job *job);
/* Suspend (or resume) delivery to `domain` on this thread, until resumed or restart. */
void dl_domain_suspend(struct dl_thread *dt, const char *domain, bool is_suspended);
bool dl_domain_is_suspended(const struct dl_thread *dt, const char *domain);
/* "192.0.2.1:25" of an address, for the console. */
void dl_addr_text(const struct sockaddr_storage *a, char *buf, size_t len);
/* Until when (loop ms) address `a` is left alone after failures; 0: usable. */
uint64_t dl_addr_retry_at(struct dl_thread *dt, const struct sockaddr_storage *a);
/* Option value for a queue (binding, domain) and optional host. */
const union sl_conf_val *dl_opt(const struct dl_queue *q, enum sl_opt opt, const char *host);

/* ---- deliver_conn.c: outbound connections */

/*
 * Open a new connection of q to `addr` (port set), using the slots the
 * caller took (dl_shape_conn_take, dl_shape_host_take): the connection
 * takes them over from `slots` (left empty) and gives them back when it is
 * freed, also when opening fails.  Without a Host slot it counts against
 * the queue's own Max_Outbound_Connections.  0 or -errno.
 */
int dl_conn_open(struct dl_queue *q, const struct sockaddr_storage *addr, const char *host,
		 struct dl_slots *slots);
/* Give an idle connection the next job of its queue, or start its idle timer. */
void dl_conn_feed(struct dl_conn *c);
/* Close (QUIT when possible); jobs in flight go back to the queue. */
void dl_conn_close(struct dl_conn *c, bool is_graceful);
/* What the connection is doing, in words (console: show outbound, domain). */
const char *dl_conn_state(const struct dl_conn *c);
/* (Re)start the connection's timer for what it waits for now. */
void dl_conn_arm(struct dl_conn *c);
/* Put the job in flight back at the front of its queue, not counted as an attempt. */
void dl_conn_requeue(struct dl_conn *c);
/* The job in flight ends transiently for its pending recipients, then settles. */
void dl_conn_job_fail(struct dl_conn *c, unsigned code, const char *enhanced, const char *text,
		      enum dl_stage_code stage);
/* The content of a message as delivered (without X-Binding:): an owned iovec array. */
size_t dl_conn_content(const struct sl_msg *m, struct iovec **out);

/* ---- deliver_ecstream.c: the ECStream client side (Delivery_Method = ECSTREAM) */

struct dl_ecs *dl_ecs_new(void);
void dl_ecs_free(struct dl_ecs *e);
/* Send the job dl_conn_feed just gave the connection (c->job, c->rcpt_ptrs). */
void dl_ecs_send(struct dl_conn *c);
/* Act on what was read (greeting, replies), then write and arm the timer. */
void dl_ecs_drive(struct dl_conn *c);
/* The server closed the connection or reading failed (nread < 0). */
void dl_ecs_eof(struct dl_conn *c, int nread);
/* Say goodbye on an idle connection (the quit frame), then close. */
void dl_ecs_quit(struct dl_conn *c);
uint64_t dl_ecs_timeout_ms(const struct dl_conn *c);
enum dl_stage_code dl_ecs_stage(const struct dl_conn *c);
const char *dl_ecs_state(const struct dl_conn *c);

/* ---- deliver_bounce.c: the bounce_classifier rules */

struct sl_bounce_rules;
struct dl_rules;
/*
 * The rule set (custom classes and override files of the bounce_classifier
 * block) to classify with on this thread: the one published for dt->snap
 * (sl_deliver_conf_prepare), shared by the delivery threads.  When it is
 * due (`refresh`), queues a rebuild on libuv's worker pool and goes on with
 * the set it has until the new one is published; never reads a file.
 * Valid until the next call on this thread or dl_bounce_rules_drop.  NULL
 * (the built-in rules only) when nothing was published.  Loop thread.
 */
const struct sl_bounce_rules *dl_bounce_rules(struct dl_thread *dt);
/* Let go of the thread's rule set (thread fini). */
void dl_bounce_rules_drop(struct dl_thread *dt);
/*
 * Build a new rule set from the bounce_classifier block of `s`, reading its
 * files (blocks: never on a loop thread).  A file that cannot be read or
 * has a bad line, or a bad custom class, is left out and reported: into
 * errs (an error with the setting's file:line:col; a datasource query is a
 * warning) or, with errs NULL, to the log.  Caller owns the result.
 */
struct sl_bounce_rules *dl_bounce_rules_build(const struct sl_conf_snapshot *s,
					      struct sl_conf_errors *errs);

/* ---- deliver_shape.c: limits shared between threads */

/*
 * Take the connection slots of a binding: Server_Max_Outbound_Connections
 * for the node (plus Server_Reserve_Outbound_Connections when `is_first`:
 * the destination has no connection yet), and the counts of `binding` and
 * of its Binding_Group, each limited by the Server_Max_Outbound_Connections
 * set in that scope itself.  All or nothing: false when one is full.
 */
bool dl_shape_conn_take(struct dl_slots *sl, const struct sl_conf_snapshot *s, const char *binding,
			bool is_first);
/*
 * Max_Outbound_Connections of a Host stanza: one count per host (name or
 * address, as the stanza names it) per container of the stanza (`scope`
 * 't' top level for the whole node, 'g' a binding group and 'b' a binding
 * named `scope_name`), whatever domains and threads connect to it.
 * `max` < 0: no limit (still counted).  False: the host is full.
 */
bool dl_shape_host_take(struct dl_slots *sl, char scope, const char *scope_name, const char *host,
			int64_t max);
/* Give back every slot `sl` holds (none is fine). */
void dl_shape_release(struct dl_slots *sl);
unsigned dl_shape_conn_cnt(void);
/*
 * Rate limits (Outbound_Throttle_Messages/_Connections): 0 if an event may
 * happen now (and counts it), else the ms to wait.  `v` identifies the
 * bucket: the setting's value in the snapshot, so a throttle set on a
 * binding group is one bucket for all its bindings.
 */
uint64_t dl_shape_throttle(const struct sl_conf_snapshot *s, const union sl_conf_val *v,
			   uint64_t now_ms);

#endif /* SL_STAGES_DELIVER_INT_H */
