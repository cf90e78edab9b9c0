/*
 * stages/protocol_int.h - private declarations of the protocol stage.
 *
 * A session's bytes pass through a transport between the socket and the
 * SMTP machine: the plain one reads straight into the session's input
 * buffer and writes its output buffer to the socket; TLS (STARTTLS) will
 * be another table of the same functions, decrypting into that buffer and
 * encrypting out of it, on the same loop thread.
 *
 * An ECStream session (stages/protocol_ecstream.c) shares the session
 * struct, its handles, transport, buffers and policy; it has `ecs` instead
 * of the SMTP machine (`smtp` is NULL).
 *
 * Threads: the protocol stage's loop threads; a session and its transport
 * state belong to one of them.
 */
#ifndef SL_STAGES_PROTOCOL_INT_H
#define SL_STAGES_PROTOCOL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "conf/conf_snapshot.h"
#include "engine/buf.h"
#include "proto/smtp_server.h"
#include "proto/validate.h"
#include "stages/events.h"

#define PROTO_THREAD_MAGIC  0x9e0707d1u
#define PROTO_SESSION_MAGIC 0x5e55a011u
#define PROTO_READ_CHUNK    (64 * 1024)
/* Stop reading when this much input waits for a verdict or output waits for the client. */
#define PROTO_INPUT_HIGH    (256 * 1024)
#define PROTO_OUTPUT_HIGH   (1024 * 1024)
#define PROTO_SOFTWARE      "sluice"

enum proto_ev {
	PROTO_EV_SHUTDOWN = 0x200, /* main -> each protocol thread: stop taking commands */
	PROTO_EV_SHUTDOWN_NOW,     /* ... Shutdown_Timeout is over: no transaction finishes */
};

struct proto_session;
struct proto_ecs;

/* Moves bytes between the socket and the session's plaintext buffers. */
struct proto_transport {
	const char *name;
	/* Where the next socket read goes (libuv alloc callback). */
	void (*read_buf)(struct proto_session *ss, uv_buf_t *buf);
	/* `n` bytes were read there: make them plaintext in ss->in.  0, or -1 to close. */
	int (*received)(struct proto_session *ss, size_t n);
	/* Send ss->out (plaintext) to the client; never blocks. */
	void (*flush)(struct proto_session *ss);
};

extern const struct proto_transport proto_transport_plain;

struct proto_thread {
	unsigned magic;
	struct sl_thread *t;
	uv_loop_t *loop;
	struct sl_stage *validate;
	struct sl_stage *spool;
	struct sl_stage *deliver;
	struct proto_session *sessions; /* doubly linked list of open sessions */
	char hostname[256];
	uint64_t serial;
	bool is_shutting_down;
};

struct proto_session {
	unsigned magic;
	uint64_t serial;
	struct proto_thread *pt;
	struct proto_session *prev, *next;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_timer_t timer;
	uv_write_t wreq;
	const struct proto_transport *transport;
	int refs; /* open handles + events out */
	bool is_reading;
	bool is_writing;
	bool is_closed;                /* uv_close called on the handles */
	bool is_waiting;               /* a verdict or the spool's answer is outstanding */
	bool is_throttled;             /* waiting for an Inbound_Throttle_Messages token */
	bool is_finishing;             /* shutting down: may finish the transaction it had */
	struct sl_conf_snapshot *snap; /* owned reference */
	struct sl_listener_rt *lrt;
	struct sl_conf_acl_match acl;
	struct sockaddr_storage peer;
	bool has_peer; /* false for Unix-socket clients */
	char peer_ip[INET6_ADDRSTRLEN];
	char remote[80]; /* "ip:port" for the rejectlog */
	char local[80];
	char id[SL_SESSION_ID_LEN];
	/* policy */
	struct sl_smtp_server_conf sconf;
	struct sl_validate_relay relay;
	struct sl_validate_policy vpolicy; /* what the built-in modules check */
	struct sl_validate_chain chain;    /* the modules it runs; points into snap */
	const char *received_hostname;
	int64_t idle_secs;
	struct sl_msg_kv *ctx; /* owned context variables */
	size_t ctx_cnt;
	char *helo;        /* owned */
	char *ehlo_string; /* owned: the HELO/EHLO command line as sent (XDUMPCONTEXT) */
	enum sl_validate_phase pending_phase;
	char *pending_rcpt; /* owned: the RCPT a pool verdict is for */
	/* protocol */
	struct sl_smtp_server *smtp; /* ESMTP sessions */
	struct proto_ecs *ecs;       /* ECStream sessions (owned) */
	struct sl_buf in;
	size_t in_off;
	struct sl_buf out;  /* replies not yet handed to the socket */
	struct sl_buf wbuf; /* the write in flight */
	struct sl_msg *msg; /* the transaction being received */
	unsigned msg_seq;
	uint64_t opened_ms; /* loop time the session began (show inbound) */
};

/* ---- protocol.c */

/* Run the session's machine over the input; answer, flush, re-arm. */
void proto_drive(struct proto_session *ss);
/* Close the session's handles; it is freed once nothing it sent is outstanding. */
void proto_close(struct proto_session *ss);
/* Start or stop reading, re-arm the timer, for the session's state. */
void proto_arm(struct proto_session *ss);
bool proto_is_closing(const struct proto_session *ss);
/* A personality value (the ACL entries' over the global one) as an integer. */
int64_t proto_pers_int(const struct proto_session *ss, enum sl_opt opt);
/* Context variables of the session (validation context callbacks). */
const char *proto_context_get(void *arg, const char *key);
void proto_context_put(void *arg, const char *key, const char *val);
/*
 * Fill `ctx` for a validation of the session's message `m` (NULL before
 * MAIL) and recipient `rcpt` (NULL outside RCPT); ctx borrows from both.
 */
void proto_vctx(struct proto_session *ss, const struct sl_msg *m, const char *rcpt,
		struct sl_validate_ctx *ctx);
/* Received: (protocol name `with`), and Message-ID:/Date: when missing (as configured). */
void proto_headers(struct proto_session *ss, struct sl_msg *m, const char *with,
		   bool has_message_id, bool has_date);
/* Choose the message's binding (`context`: the binding context variable or NULL). */
void proto_binding(struct proto_session *ss, struct sl_msg *m, const char *context);
/*
 * The data phase of complete message `m` (headers added).  When every
 * data-phase module of the session is inline they run now: true, and *v is
 * the verdict (m is still the caller's).  Otherwise m goes to the
 * validation stage with a verdict request (false; m is no longer the
 * caller's): the verdict comes back to the session, which sends an
 * accepted m to the spool or answers the refusal (ECStream: through
 * proto_ecs_answer with -EPERM/-EAGAIN).
 */
bool proto_check_data(struct proto_session *ss, struct sl_msg *m, bool has_date_header,
		      struct sl_verdict *v);
/*
 * Whether a message's checks go to the validation stage: a data-phase module
 * may block, or (ECStream, whose frame brings the envelope with the content)
 * a mailfrom or rcptto one may.
 */
bool proto_data_needs_pool(const struct proto_session *ss);
/* Send a complete, checked message to be spooled; it comes back SL_MSG_EV_SPOOLED. */
void proto_submit(struct proto_session *ss, struct sl_msg *m);
/*
 * Count a refusal the session gave (protocol.rejected; the listener's SNMP
 * REJECTED_MSGS and the status code): `code` and what followed it in the
 * reply ("5.7.1 Relaying denied", or just an enhanced code; NULL is fine).
 */
void proto_count_rejected(struct proto_session *ss, unsigned code, const char *text);
/* Count message `m` acknowledged: the 250 after the spool's answer (protocol.received, SNMP). */
void proto_count_received(struct proto_session *ss, const struct sl_msg *m);

/* ---- protocol_ecstream.c: ECStream sessions (proto/ecstream.h) */

/* The session is an ECStream one: set up its state (no greeting yet). */
void proto_ecs_start(struct proto_session *ss);
/* The connect verdict: the greeting, or the refusal and close. */
void proto_ecs_connect(struct proto_session *ss, const struct sl_verdict *v);
void proto_ecs_drive(struct proto_session *ss);
/* A message of the session came back from the spool (or validation): its reply. */
void proto_ecs_answer(struct proto_session *ss, const struct sl_msg *m);
/* Shutting down: read no more frames; close once every reply is out. */
void proto_ecs_shutdown(struct proto_session *ss);
void proto_ecs_timeout(struct proto_session *ss);
uint64_t proto_ecs_timeout_ms(const struct proto_session *ss);
bool proto_ecs_is_closing(const struct proto_session *ss);
/* Replies owed up to ECStream_Max_Batch_Size: read nothing more for now. */
bool proto_ecs_is_busy(const struct proto_session *ss);
void proto_ecs_free(struct proto_session *ss);

#endif /* SL_STAGES_PROTOCOL_INT_H */
