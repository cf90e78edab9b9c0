/*
 * stages/protocol_int.h - private declarations of the protocol stage.
 *
 * A session's bytes pass through a transport between the socket and the
 * SMTP machine: the plain one reads straight into the session's input
 * buffer and writes its output buffer to the socket; TLS (STARTTLS) will
 * be another table of the same functions, decrypting into that buffer and
 * encrypting out of it, on the same loop thread.
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
	PROTO_EV_SHUTDOWN = 0x200, /* main -> each protocol thread */
};

struct proto_session;

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
	const char *received_hostname;
	int64_t idle_secs;
	struct sl_msg_kv *ctx; /* owned context variables */
	size_t ctx_cnt;
	char *helo; /* owned */
	enum sl_validate_phase pending_phase;
	char *pending_rcpt; /* owned: the RCPT a pool verdict is for */
	/* protocol */
	struct sl_smtp_server *smtp;
	struct sl_buf in;
	size_t in_off;
	struct sl_buf out;  /* replies not yet handed to the socket */
	struct sl_buf wbuf; /* the write in flight */
	struct sl_msg *msg; /* the transaction being received */
	unsigned msg_seq;
};

/* Run the SMTP machine over the input; answer, flush, re-arm (protocol.c). */
void proto_drive(struct proto_session *ss);
/* Close the session's handles; it is freed once nothing it sent is outstanding. */
void proto_close(struct proto_session *ss);

#endif /* SL_STAGES_PROTOCOL_INT_H */
