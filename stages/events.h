/*
 * stages/events.h - the typed messages stages send each other.
 *
 * Stages couple only through sl_send() of these events (and struct sl_msg,
 * spool/msg.h, which is itself an event).  This file is the table of
 * contents of who tells whom what; it is shared declarations, not a stage,
 * so every stage may include it (test/check-layout.sh knows).
 *
 *   accept   -> protocol  SL_EV_SESSION_NEW   a connection and its policy
 *   protocol -> validate  SL_EV_VERDICT_REQ   a phase whose modules may block (connect,
 *                                             envelope, or data with the complete message)
 *   validate -> protocol  SL_EV_VERDICT_REQ   ... answered (same event back)
 *   protocol -> spool     SL_MSG_EV_SPOOL     a checked message, to be made durable
 *   spool    -> protocol  SL_MSG_EV_SPOOLED   ... durable (or not): answer the client
 *   protocol -> deliver   SL_MSG_EV_QUEUED    ... and answered: deliver it
 *   spool    -> deliver   SL_MSG_EV_QUEUED    recovered at start: deliver it
 *   deliver  -> spool     SL_MSG_EV_SPOOL     a bounce (DSN) to make durable
 *   spool    -> deliver   SL_MSG_EV_SPOOLED   ... durable: deliver it
 *   deliver  -> deliver   SL_EV_DELIVER_JOB   a message's recipients for a domain owned
 *                                             by another delivery thread
 *   deliver  -> spool     SL_EV_SPOOL_PROGRESS a recipient reached its final outcome
 *
 * Ownership: an event belongs to exactly one thread at a time; sl_send()
 * hands it over.  Pointers inside an event that point into a configuration
 * snapshot are valid because the event (or the session it names) holds a
 * reference to that snapshot.
 *
 * Threads: declarations only.
 */
#ifndef SL_STAGES_EVENTS_H
#define SL_STAGES_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf_listener.h"
#include "conf/conf_snapshot.h"
#include "engine/stage.h"
#include "proto/validate.h"
#include "spool/msg.h"

#define SL_SESSION_ID_LEN 24

enum sl_ev_type {
	SL_EV_SESSION_NEW = 1,
	SL_EV_VERDICT_REQ,
	SL_EV_DELIVER_JOB,
	SL_EV_SPOOL_PROGRESS,
};

#define SL_LISTENER_RT_MAGIC 0x115e7e42u

struct sl_group; /* stages/stats.h */

/*
 * A listening socket at run time: its session count for listener_sessions,
 * and the count of its service (ESMTP, ECStream, Control) for
 * service_sessions.  Owned by the accept stage; it lives until shutdown, so
 * sessions may keep a plain pointer to it.
 */
struct sl_listener_rt {
	unsigned magic;
	const char *name; /* "127.0.0.1:2525", "/run/ctl" */
	enum sl_listener_kind kind;
	uint32_t sessions;          /* open sessions (atomic) */
	uint32_t *service_sessions; /* open sessions of the kind (atomic) */
	struct sl_group *group;     /* its SNMP group "listener/NAME" (stats.h; process-long);
				       NULL for a Control_Listener (not mail) */
};

/* accept -> protocol: a new connection.  The receiver owns fd and snap. */
struct sl_session_new_ev {
	struct sl_event ev; /* SL_EV_SESSION_NEW */
	int fd;             /* accepted, non-blocking, close-on-exec */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct sockaddr_storage local;
	socklen_t local_len;
	struct sl_conf_snapshot *snap;          /* a reference, now the session's */
	const struct sl_conf_listen_addr *addr; /* inside snap */
	struct sl_listener_rt *lrt;             /* counted: sessions already incremented */
	struct sl_conf_acl_match acl;           /* entries inside snap */
	char id[SL_SESSION_ID_LEN];             /* connection id for logs */
};

/*
 * protocol <-> validate: a verdict from the modules that may block.  The
 * strings are copies owned by the event; so is `msg` in the data phase
 * (it goes back with the verdict: the protocol stage sends an accepted one
 * to the spool, so a message reaches the spool only from its session).
 */
struct sl_verdict_req_ev {
	struct sl_event ev;      /* SL_EV_VERDICT_REQ; reply_to = the session's thread */
	void *session;           /* opaque to validate; only its thread uses it */
	uint64_t session_serial; /* to tell a reused session apart */
	enum sl_validate_phase phase;
	struct sl_conf_snapshot *snap; /* a reference for the request's life */
	struct sockaddr_storage peer;
	bool has_peer;
	char *peer_ip;
	char *helo;
	char *sender; /* NULL before MAIL */
	char *rcpt;
	size_t rcpt_cnt;
	struct sl_validate_relay relay;   /* points into snap */
	struct sl_validate_policy policy; /* the session's */
	struct sl_validate_chain chain;   /* the session's modules; points into snap */
	struct sl_msg_kv *context;        /* copies */
	size_t context_cnt;
	struct sl_msg *msg;   /* data phase: the complete message (owned), else NULL */
	bool has_date_header; /* data phase: the content had a Date: header */
	/*
	 * data phase of an ECStream frame, which brings the envelope and the
	 * content at once: the mailfrom phase and each recipient's rcptto phase
	 * run first, every module of them (the session ran only the inline ones).
	 */
	bool envelope_first;
	struct sl_verdict verdict; /* filled by validate */
};

/* Free a verdict request and drop its snapshot reference. */
void sl_verdict_req_free(struct sl_verdict_req_ev *r);
/*
 * A validation context's context_get/context_set (struct sl_validate_ctx)
 * over a verdict request's context variables; `arg` is the request.  The
 * thread that holds the request.
 */
const char *sl_verdict_req_context_get(void *arg, const char *key);
void sl_verdict_req_context_set(void *arg, const char *key, const char *val);
/* The validation context of request `r` (pointing into r) for its modules. */
void sl_verdict_req_ctx(struct sl_verdict_req_ev *r, struct sl_validate_ctx *ctx);

/*
 * deliver -> spool: recipient `rcpt_idx` of the message at `loc` is final
 * (rcpt_idx UINT32_MAX: the whole message is finished).  Any spool thread
 * may receive it; the spool stage passes it to the writer that owns loc.
 */
struct sl_spool_progress_ev {
	struct sl_event ev; /* SL_EV_SPOOL_PROGRESS */
	struct sl_spool_loc loc;
	uint32_t rcpt_idx;
	enum sl_rcpt_status status;
};

/*
 * The delivery thread (of `thread_cnt`) that owns the queues of `domain`
 * (case-insensitive).  Every stage that hands a message to delivery picks
 * the thread of its first recipient's domain this way, so most messages
 * arrive where they will be delivered.
 */
unsigned sl_deliver_owner(const char *domain, unsigned thread_cnt);

#endif /* SL_STAGES_EVENTS_H */
