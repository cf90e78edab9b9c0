/*
 * spool/msg.h - a message in flight: envelope, session facts and content.
 *
 * The protocol stage builds a struct sl_msg while a client sends it, hands
 * it to validation and the spool (which makes it durable and gives it its
 * queue id), and the spool stage answers the protocol thread and passes it
 * on to delivery.  Exactly one stage owns a message at a time: the event
 * header inside it is what travels through the queues (sl_send transfers
 * ownership).  After recovery the spool rebuilds messages from disk in the
 * same shape.
 *
 * Content is kept as a list of large chunks filled straight from the
 * client's (unstuffed) data: one copy from socket buffer to chunk, and the
 * spool writes the chunks with writev.  Headers sluice adds (Received,
 * Message-ID, Date) live in `head`, written before the chunks.
 *
 * Threads: the owning thread only.  Parses nothing.
 */
#ifndef SL_SPOOL_MSG_H
#define SL_SPOOL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "engine/buf.h"
#include "engine/stage.h"

#define SL_MSG_MAGIC     0x6d5a6e11u
#define SL_MSG_QID_LEN   24 /* "6926A1B2-000000000F1A" plus NUL, with room */
#define SL_MSG_CHUNK_LEN (64u * 1024)

/* Event types a message travels as (sl_event.type). */
enum sl_msg_ev {
	SL_MSG_EV_SPOOL = 0x101, /* validate -> spool: make it durable */
	SL_MSG_EV_SPOOLED,       /* spool -> protocol: durable (or failed: result) */
	SL_MSG_EV_QUEUED,        /* spool -> deliver: a new message to deliver */
};

enum sl_rcpt_status {
	SL_RCPT_PENDING = 0,
	SL_RCPT_DELIVERED,
	SL_RCPT_FAILED,  /* permanent failure (bounced) */
	SL_RCPT_EXPIRED, /* gave up: message_expiration or max_retries */
};

struct sl_msg_rcpt {
	char *addr;          /* owned: forward-path without <> */
	uint32_t domain_off; /* offset of the domain in addr (after '@'), or len */
	enum sl_rcpt_status status;
};

struct sl_msg_chunk {
	struct sl_msg_chunk *next; /* owned */
	size_t len;
	size_t cap;
	char data[];
};

struct sl_msg_kv {
	char *key; /* owned */
	char *val; /* owned */
};

/* Where the spool put a message (spool-private meaning; opaque to others). */
struct sl_spool_loc {
	uint32_t writer;  /* spool writer (thread) that owns the segment */
	uint32_t segment; /* segment number */
	uint64_t offset;  /* of the message record */
	uint64_t length;  /* of the message record */
};

struct sl_msg {
	struct sl_event ev;           /* first: the queue hand-off header */
	unsigned magic;               /* SL_MSG_MAGIC */
	char qid[SL_MSG_QID_LEN];     /* set by the spool; "" until then */
	uint64_t session_id;          /* the connection it came on */
	char conn_id[SL_MSG_QID_LEN]; /* that connection's id in logs */
	time_t received;              /* wall clock at end of DATA */
	/* envelope */
	char *sender;              /* owned: reverse-path without <>; "" = null */
	struct sl_msg_rcpt *rcpts; /* owned array */
	size_t rcpt_cnt;
	size_t rcpt_cap;
	char *binding;             /* owned; NULL: "default" */
	char *binding_group;       /* owned; may be NULL */
	struct sl_msg_kv *context; /* owned: session/message context variables */
	size_t context_cnt;
	/* session facts for logs and trace headers */
	char *peer_ip;  /* owned: "192.0.2.1", "::1", "unix" */
	char *helo;     /* owned; may be "" */
	char *protocol; /* owned: "esmtp", "ecstream" */
	bool is_8bitmime;
	bool is_smtputf8;
	/* content: head (added headers) then the chunks */
	struct sl_buf head;
	struct sl_msg_chunk *chunks; /* owned list */
	struct sl_msg_chunk *tail;
	uint64_t content_len; /* bytes in the chunks */
	/*
	 * Swapped out (delivery's Max_Resident_Active_Queue): head and chunks
	 * are freed, the sizes kept, until sl_msg_swap_in gives the content
	 * back from the spool.  Only the message's sole holder swaps it.
	 */
	bool is_swapped;
	uint64_t swapped_head_len;
	/* the protocol session that sent it (only its thread may use this) */
	void *origin;
	uint64_t origin_serial;
	uint64_t origin_tag; /* the session's own number for it (ECStream: its frame) */
	/*
	 * Delivery: the message is shared read-only by its per-domain jobs
	 * (each owns its recipients' status entries); the last reference frees.
	 */
	uint32_t refs;      /* atomic: holders (sl_msg_ref/sl_msg_unref) */
	uint32_t jobs_left; /* atomic: domain jobs not yet final */
	uint64_t skip_off;  /* content bytes [skip_off, skip_off+skip_len) are not */
	uint64_t skip_len;  /*   delivered: the X-Binding: header line */
	/* spool */
	struct sl_spool_loc loc; /* valid once spooled */
	int spool_result;        /* SL_MSG_EV_SPOOLED: 0 durable, or -errno */
};

/* A new empty message owned by the caller (refs = 1).  Never NULL. */
struct sl_msg *sl_msg_new(void);
/* Free it and everything it owns.  NULL is fine. */
void sl_msg_free(struct sl_msg *m);
/* Another holder (any thread that already holds one). */
void sl_msg_ref(struct sl_msg *m);
/* Drop a holder; the last one frees.  NULL is fine. */
void sl_msg_unref(struct sl_msg *m);

/* Envelope helpers: copies of the strings are made. */
void sl_msg_set_sender(struct sl_msg *m, const char *addr);
void sl_msg_add_rcpt(struct sl_msg *m, const char *addr);
void sl_msg_add_context(struct sl_msg *m, const char *key, const char *val);
/* The value of context variable `key` (exact name), or NULL. */
const char *sl_msg_context_get(const struct sl_msg *m, const char *key);

/*
 * Context arrays (struct sl_msg_kv) outside a message, e.g. in a verdict
 * request: the value of `key` (exact name) or NULL; set `key` to a copy of
 * `val`, replacing an earlier value or appending to *kv (grown as needed).
 */
const char *sl_kv_get(const struct sl_msg_kv *kv, size_t cnt, const char *key);
void sl_kv_set(struct sl_msg_kv **kv, size_t *cnt, const char *key, const char *val);
/* Replace a string field (m->helo, m->peer_ip, ...) with a copy of `val`. */
void sl_msg_set_str(char **field, const char *val);

/* Append `len` content bytes (one copy into the chunk list). */
void sl_msg_append(struct sl_msg *m, const void *data, size_t len);
/* Drop the content (RSET or a refused message) but keep the envelope. */
void sl_msg_clear_content(struct sl_msg *m);

/* Size of the stored message: head + chunks. */
static inline uint64_t
sl_msg_size(const struct sl_msg *m)
{
	return (m->is_swapped ? m->swapped_head_len : m->head.len) + m->content_len;
}

/* Free the content of a spooled message, keeping its sizes (see is_swapped). */
void sl_msg_swap_out(struct sl_msg *m);
/*
 * Give a swapped message its content back from `from` (the same message
 * read from the spool), which is left empty.  -EIO when the sizes differ
 * (then nothing changes).
 */
int sl_msg_swap_in(struct sl_msg *m, struct sl_msg *from);

/*
 * Fill at most `max` iovecs with head then chunks; returns how many were
 * needed in all (may exceed max: call again with a larger array).  Not for
 * a swapped-out message (asserted).
 */
size_t sl_msg_iov(const struct sl_msg *m, struct iovec *iov, size_t max);

#endif /* SL_SPOOL_MSG_H */
