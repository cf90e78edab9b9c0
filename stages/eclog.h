/*
 * stages/eclog.h - Momentum's ec_logger formats: mainlog, rejectlog and acctlog lines.
 *
 * The mainlog gets one '@'-separated line per event (receptions now;
 * deliveries and failures with delivery), in the field order of Momentum
 * 4's mainlog.ec so existing tooling reads it:
 * *   time@msgid@batchid@connid@R@rcpt_local@rcpt_domain@sender_local@sender_domain@
 *       peer_ip@size@protocol@binding_group@binding
 *   time@msgid@batchid@connid@D@domain@size@binding_group@binding@retries@secs@ip
 *   time@msgid@batchid@connid@T@domain@bytes@binding_group@binding@stage@retries@secs@ip@response
 *   time@msgid@batchid@connid@P@domain@bytes@binding_group@binding@stage@retries@secs@ip@response
 *
 * (D, T and P: one line per recipient; secs is the time since reception with
 * two decimals; stage is the connection stage of Momentum's table.)
 * '@', '\' and line breaks inside a field are escaped as "\@", "\\", "\n".
 * The batch id is the message id (sluice has no injection batches).  The
 * rejectlog gets one line per refused command, in Momentum's field order
 * (log_formats C.1.3):
 *
 *   time: R="ip:port" L="ip:port" C="connid" PATH="default" PATH_GRP="default"
 *     P="phase" E=550 M=module CTXCONN=[k=v,...] CTXMESS=[k=v,...] text
 *
 * (one line; a value with a space, quote, comma, '=' or bracket is written
 * in double quotes with '"' and '\' escaped; control bytes become '?').
 *
 * Lines are queued to the logger thread (engine/log.h), so writing never
 * blocks.  Shared code, not a stage: every stage may include it.
 *
 * Threads: sl_eclog_open() on the config thread; the writers from any thread.
 */
#ifndef SL_STAGES_ECLOG_H
#define SL_STAGES_ECLOG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/conf_snapshot.h"
#include "spool/msg.h"

/*
 * Open (or switch to, after a reload) the mainlog, rejectlog, bouncelog and
 * acctlog of `s`'s ec_logger block and read its log_* switches (log_errors
 * goes to the engine: sl_log_paniclog_set()).
 * Returns 0 or -errno (an error is also logged).
 */
int sl_eclog_open(const struct sl_conf_snapshot *s);

/* One R line per recipient of a message that was just made durable. */
void sl_eclog_reception(const struct sl_msg *m, const char *conn_id);

/* The outcome of one recipient's delivery attempt. */
enum sl_eclog_outcome {
	SL_ECLOG_DELIVERED, /* D */
	SL_ECLOG_TRANSIENT, /* T */
	SL_ECLOG_PERMANENT, /* P */
};

/*
 * One D, T or P line for recipient `rcpt_idx` of `m` to `domain`: `bytes`
 * sent (the message size for D), the connection stage, retries so far,
 * the remote IP ("" when none was reached) and the server's response.
 */
void sl_eclog_outcome(const struct sl_msg *m, enum sl_eclog_outcome kind, const char *domain,
		      uint64_t bytes, unsigned stage, unsigned retries, const char *ip,
		      const char *response, time_t now);

/* One preformatted bouncelog line (proto/bounce.h formats it). */
void sl_eclog_bounce_line(const char *line, size_t len);

/* The context variables a rejectlog line shows; arrays borrowed, may be NULL/0. */
struct sl_eclog_ctx {
	const struct sl_msg_kv *conn; /* CTXCONN: the session's */
	size_t conn_cnt;
	const struct sl_msg_kv *mess; /* CTXMESS: the transaction's */
	size_t mess_cnt;
};

/*
 * One rejectlog line.  `module` may be NULL ("smtp"); `ctx` NULL writes
 * empty CTXCONN=[] and CTXMESS=[] (no session yet, e.g. at accept).
 */
void sl_eclog_reject_ctx(const char *remote, const char *local, const char *conn_id,
			 const char *phase, unsigned code, const char *module, const char *text,
			 const struct sl_eclog_ctx *ctx);
void sl_eclog_reject(const char *remote, const char *local, const char *conn_id, const char *phase,
		     unsigned code, const char *module, const char *text);

/*
 * The acctlog (Momentum's acctlog.ec): authentication and authorization
 * events, '@'-separated, fields escaped as in the mainlog:
 *
 *   time@N@endpoint@peer@user@result
 *   time@Z@endpoint@peer@user@result@command[@role]
 *
 * `endpoint` is the listener address as configured ("*:2025", "/tmp/2025"),
 * `peer` the client's "ip:port" ("" for a Unix-socket client), `user` who
 * it is ("" when unknown); `result` 1 granted, 0 refused, -1 an error;
 * `role` (NULL: none, the field is left out) what granted the command.
 * Not written when no acctlog is configured.  Any thread; never blocks.
 */
void sl_eclog_authn(const char *endpoint, const char *peer, const char *user, int result);
void sl_eclog_authz(const char *endpoint, const char *peer, const char *user, int result,
		    const char *command, const char *role);

/* The heartbeat lines: "time@@@@M" in the mainlog, "time@@@@M1" in the bouncelog (Momentum's). */
void sl_eclog_heartbeat(void);

/*
 * A sluice addition: "time@@@@C@generation@file" when a configuration
 * generation starts running (at start and after each successful reload),
 * so the lines after it can be read against the configuration they ran on.
 */
void sl_eclog_config(uint64_t generation, const char *source);

#endif /* SL_STAGES_ECLOG_H */
