/*
 * proto/ecstream.h - sluice's ECStream injection protocol, version 1, as a
 * pure codec (see sluice-ecstream(7) for the wire format in full).
 *
 * Momentum calls ECStream a bare-bones, high-performance injection protocol;
 * its wire format is not public, so sluice defines its own:
 *
 *   server:  "ECS1 <hostname> ready\r\n"                   greeting, once
 *            (or "ECS1-ERR <code> <enhanced> <text>\r\n" and close)
 *   client:  frame, frame, ...                              pipelined
 *   server:  one reply line per message frame, in order:
 *            "250 <queue id>\r\n"                           durable
 *            "<4xx|5xx> <enhanced> <text>\r\n"              refused
 *
 * A frame is a 16-octet header, then the envelope, then the content:
 *
 *   octets 0-3   magic "ECSM" (a message) or "ECSQ" (quit: the server
 *                answers the messages before it, then "221 2.0.0 bye\r\n",
 *                and closes; the other fields are 0)
 *   octets 4-7   envelope length E, unsigned 32-bit big-endian
 *   octets 8-15  content length C, unsigned 64-bit big-endian
 *   E octets     envelope: items, each a tag octet, a 16-bit big-endian
 *                length L and L octets of value (no NUL inside):
 *                  'F' sender (exactly one; empty: the null sender <>)
 *                  'R' recipient (one or more)
 *                  'B' binding name (at most one)
 *                  'K' context variable name, followed at once by
 *                  'V' its value
 *                addresses without angle brackets, as in the SMTP path
 *   C octets     content: the RFC 5322 message as it is to be stored, lines
 *                ending in CRLF; no dot-stuffing (the length delimits it).
 *                A bare CR or LF is refused (554 5.6.0): it could not be
 *                relayed over SMTP safely.
 *
 * A frame the parser cannot make sense of (bad magic, an envelope item that
 * overruns the envelope or stray octets after the last one, an unknown tag,
 * a missing or repeated 'F', no 'R', a second 'B', 'K' without 'V' or 'V'
 * without 'K', a NUL in a value, E over SL_ECS_MAX_ENVELOPE) is malformed: the server
 * replies "554 5.5.2 <why>" for it and closes the connection after the
 * replies owed for the frames before it.  A well-formed frame whose message
 * breaks a limit (message_size: 552 5.3.4; too many recipients: 452 4.5.3;
 * a bad address: 501 5.1.3 / 553 5.1.7) gets its refusal and the session
 * goes on: its content is skipped, the stream stays in step.
 *
 * This header holds the parts both ends share: the frame header and
 * envelope codec (client: encode; server: decode) and the reply line codec.
 * No I/O, no allocation except where a function says so.
 */
#ifndef SL_PROTO_ECSTREAM_H
#define SL_PROTO_ECSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"

#define SL_ECS_HDR_LEN      16
#define SL_ECS_MAX_ENVELOPE (1u << 20) /* octets of one frame's envelope */
#define SL_ECS_MAX_ITEM     65535      /* octets of one envelope item */
#define SL_ECS_GREETING     "ECS1 "    /* the greeting's first five octets */

enum sl_ecs_kind {
	SL_ECS_MESSAGE, /* "ECSM" */
	SL_ECS_QUIT,    /* "ECSQ" */
};

/* A frame header, decoded. */
struct sl_ecs_hdr {
	enum sl_ecs_kind kind;
	uint32_t env_len;
	uint64_t content_len;
};

/*
 * Decode a frame header from `p` (SL_ECS_HDR_LEN octets).  0, or -1 when it
 * is malformed (bad magic, E over SL_ECS_MAX_ENVELOPE, a QUIT with nonzero
 * lengths); then why[why_len] says what is wrong.
 */
int sl_ecs_hdr_decode(const uint8_t *p, struct sl_ecs_hdr *out, char *why, size_t why_len);
/* Encode a frame header into p[SL_ECS_HDR_LEN]. */
void sl_ecs_hdr_encode(uint8_t *p, enum sl_ecs_kind kind, uint32_t env_len, uint64_t content_len);

/* A decoded envelope: pointers into the caller's envelope buffer (not NUL-terminated). */
struct sl_ecs_str {
	const char *p;
	size_t len;
};
struct sl_ecs_env {
	struct sl_ecs_str sender;
	struct sl_ecs_str *rcpts; /* owned array (sl_ecs_env_free) */
	size_t rcpt_cnt;
	struct sl_ecs_str binding; /* len 0, p NULL: none */
	struct sl_ecs_str *ctx;    /* owned array of 2 * ctx_cnt: name, value, name, value ... */
	size_t ctx_cnt;
};

/*
 * Decode an envelope of `len` octets.  0, or -1 when it is malformed (why
 * says how).  The result points into `p`, which must outlive it; free it
 * with sl_ecs_env_free (also after a failure).
 */
int sl_ecs_env_decode(const uint8_t *p, size_t len, struct sl_ecs_env *out, char *why,
		      size_t why_len);
void sl_ecs_env_free(struct sl_ecs_env *env);

/*
 * Append a whole message frame's header and envelope to `out` (the content
 * follows from the caller: content_len octets).  `binding` may be NULL;
 * ctx holds ctx_cnt name/value pairs.  -1 (nothing appended) when an item
 * is over SL_ECS_MAX_ITEM, has a NUL, or the envelope would be over
 * SL_ECS_MAX_ENVELOPE, or rcpt_cnt is 0.
 */
int sl_ecs_frame_begin(struct sl_buf *out, const char *sender, const char *const *rcpts,
		       size_t rcpt_cnt, const char *binding, const char *const *ctx, size_t ctx_cnt,
		       uint64_t content_len);

/*
 * Check content for bare CR or LF (every CR followed by LF, every LF after
 * a CR), across calls: `state` starts at 0 and is carried from one piece
 * to the next; the last piece needs `is_last`.  true while it is clean.
 */
bool sl_ecs_content_clean(const char *p, size_t len, unsigned *state, bool is_last);

/* One reply line, decoded. */
struct sl_ecs_reply {
	unsigned code;     /* 250, 4xx, 5xx, 221 */
	char qid[64];      /* 250: the queue id */
	char enhanced[16]; /* otherwise: "5.3.4" (may be "") */
	char text[512];    /* otherwise: the text */
};

/*
 * Parse one reply line from `p` (up to len octets): the octets used
 * (through its LF), 0 when the line is not complete yet, -1 when it is not
 * a reply line (then why says how).  Lines over 1000 octets are malformed.
 */
long sl_ecs_reply_parse(const char *p, size_t len, struct sl_ecs_reply *out, char *why,
			size_t why_len);

#endif /* SL_PROTO_ECSTREAM_H */
