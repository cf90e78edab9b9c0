/*
 * proto/smtp_client.h - the SMTP/LMTP client as a pure state machine (RFC 5321, 2033).
 *
 * One struct sl_smtp_client is one outbound connection: the greeting,
 * EHLO (HELO when EHLO is refused; LHLO for LMTP), then any number of
 * transactions, each MAIL FROM, RCPT TO for every recipient, and the
 * content (BDAT when the server offers CHUNKING, else DATA with
 * dot-stuffing), then QUIT.  Bytes in, events and bytes out; no I/O, no
 * clock.  The delivery loop owns the socket:
 *
 *   c = sl_smtp_client_new(&conf);                 after connect()
 *   for (;;) {
 *           k = sl_smtp_client_next(c, in, in_len, &used, &ev, &out);
 *           drop `used` bytes of `in`; handle ev (ev.text lives in the client
 *           until the next call);
 *           switch (k) {
 *           case SL_SMTPC_EV_NONE:    read more (or nothing to do); break loop
 *           case SL_SMTPC_EV_READY:   the session can take a transaction:
 *                                     sl_smtp_client_send(c, &txn, &out) or _quit()
 *           case SL_SMTPC_EV_RCPT:    one recipient's answer (ev.rcpt_idx, code)
 *           case SL_SMTPC_EV_BODY:    write out, then write the content
 *                                     (sl_smtp_client_body_iov); once it is all
 *                                     written, sl_smtp_client_body_done()
 *           case SL_SMTPC_EV_DONE:    the transaction's outcome (LMTP: per recipient RCPT
 *                                     events come first, then DONE)
 *           case SL_SMTPC_EV_FAIL:    the connection failed or the server said no to
 *                                     the session; close it (after writing out)
 *           case SL_SMTPC_EV_CLOSED:  QUIT was answered; close it
 *           }
 *           write `out` to the socket
 *   }
 *
 * Replies are parsed strictly (RFC 5321 §4.2: code %x32-35 %x30-35 %x30-39,
 * then '-' or ' ' or the end, CRLF-terminated lines, one code for all lines,
 * at most SL_SMTPC_MAX_REPLY_LINES lines of SL_SMTPC_MAX_LINE octets); a
 * reply when none is awaited (READY), a 3xx to anything but DATA, or a
 * 2xx to DATA is a protocol failure too (FAIL with code 0 and a short
 * description; nothing is written).  A 421 at any time is FAIL with that
 * reply (RFC 5321 §3.8).  next() consumes complete reply lines only: a
 * partial line stays in `in` (so the caller buffers at most
 * SL_SMTPC_MAX_LINE octets of it); nothing is consumed after BODY until
 * body_done(), nor after FAIL or CLOSED.  NONE means every complete line
 * was used.
 *
 * With PIPELINING (RFC 2920) [RSET,] MAIL, every RCPT and DATA go in one
 * write, and their replies are matched in order; with CHUNKING as well,
 * BODY comes at once and the BDAT command and content follow the RCPTs
 * before any reply (RFC 3030 §4.2).  The caller keeps reading while it
 * writes (a group of 1000 RCPTs is larger than socket buffers).
 *
 * Event texts: the reply's lines joined with single spaces, control
 * characters as spaces, at most 1024 octets (never cut inside a UTF-8
 * sequence).  When the first line's text starts with an RFC 3463 code of
 * the reply's class ("d.ddd.ddd" then a space or the end), it goes to
 * ev.enhanced and leaves the text, and so does the same code on later
 * lines (RFC 2034 §4; whether or not ENHANCEDSTATUSCODES was offered).
 *
 * Choices where the RFCs leave room: any 2xx greeting is taken; EHLO
 * refused with any 5xx falls back to HELO (SMTP only), a 4xx is FAIL;
 * QUIT is written before FAIL after a refused greeting, EHLO/HELO/LHLO or
 * RSET, but not after a 421 or a protocol failure; any reply to QUIT is
 * CLOSED; no MIME downgrade: BODY=8BITMIME is sent only when offered, and
 * 8-bit content goes as is otherwise (as Postfix does with
 * disable_mime_output_conversion).
 *
 * Threads: one client belongs to one thread.  Parses untrusted input (the
 * remote server's replies), every length bounded.
 */
#ifndef SL_PROTO_SMTP_CLIENT_H
#define SL_PROTO_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "engine/buf.h"

#define SL_SMTPC_MAX_LINE        2048 /* one reply line, CRLF included */
#define SL_SMTPC_MAX_REPLY_LINES 100  /* lines of one multi-line reply */
#define SL_SMTPC_MAX_RCPTS       1000 /* recipients in one transaction */

struct sl_smtp_client_conf {
	const char *helo_name; /* our name for EHLO/HELO/LHLO (borrowed) */
	bool is_lmtp;          /* LMTP (RFC 2033): LHLO, one reply per recipient after DATA */
	bool use_chunking;     /* send content with BDAT when the server offers CHUNKING */
	bool use_pipelining;   /* pipeline when the server offers PIPELINING */
};

/* What the server offered in its EHLO reply. */
struct sl_smtp_client_caps {
	bool is_esmtp; /* EHLO was accepted (false: fell back to HELO) */
	bool has_pipelining;
	bool has_8bitmime;
	bool has_smtputf8;
	bool has_chunking;
	bool has_size;
	uint64_t size_limit; /* SIZE n; 0 when none was given */
	bool has_starttls;
	bool has_enhancedstatuscodes;
};

/*
 * One transaction: the caller keeps these alive until its DONE (or FAIL).
 * An address with a control character (< 0x20 or 0x7f) is never sent: the
 * sender refuses the whole transaction locally (501 5.1.7), a recipient
 * just itself (501 5.1.3).  SMTPUTF8 is needed when is_smtputf8 is set or
 * an address has an octet >= 0x80.
 */
struct sl_smtp_client_txn {
	const char *sender;       /* reverse-path without <> ("" = null) */
	const char *const *rcpts; /* forward-paths without <> */
	size_t rcpt_cnt;          /* 1..SL_SMTPC_MAX_RCPTS (asserted) */
	uint64_t size;            /* content size, for SIZE= and the local SIZE check
				     (BDAT sizes come from the content itself) */
	bool is_8bitmime;         /* BODY=8BITMIME when offered */
	bool is_smtputf8;         /* SMTPUTF8 (refused locally when not offered) */
};

enum sl_smtpc_ev_kind {
	SL_SMTPC_EV_NONE,   /* need more input, or waiting for the caller */
	SL_SMTPC_EV_READY,  /* ready for a transaction (after the greeting and EHLO, or after
			       the previous transaction's DONE) */
	SL_SMTPC_EV_RCPT,   /* one recipient's outcome: rcpt_idx, code, enhanced, text.
			       Every recipient gets exactly one RCPT event per transaction:
			       its RCPT reply if that was not 2xx, else (SMTP) the final
			       reply to the content, or (LMTP) its own reply after DATA */
	SL_SMTPC_EV_BODY,   /* the server wants the content now: after the 354 (DATA);
			       with BDAT after the RCPT replies when one was accepted, or
			       right after send() when pipelining */
	SL_SMTPC_EV_DONE,   /* the transaction is over; code/text is the final reply (LMTP:
			       the last recipient's), or the MAIL refusal (also a local
			       one), or code 0 "no recipient accepted"; READY follows */
	SL_SMTPC_EV_FAIL,   /* the session failed: code/text of the server's reply, or code 0
			       and a description for a protocol error; the connection must be
			       closed (after writing `out`, which may hold a QUIT) */
	SL_SMTPC_EV_CLOSED, /* QUIT answered; close */
};

/* Which reply the client waits for (the caller maps it to a configured timeout). */
enum sl_smtpc_wait {
	SL_SMTPC_WAIT_GREETING,
	SL_SMTPC_WAIT_EHLO, /* EHLO, LHLO or HELO */
	SL_SMTPC_WAIT_MAIL, /* also the RSET a transaction may start with (see send) */
	SL_SMTPC_WAIT_RCPT,
	SL_SMTPC_WAIT_DATA,     /* the 354 */
	SL_SMTPC_WAIT_BODY_END, /* the reply after the content, DATA or BDAT (data_timeout /
				   body_timeout) */
	SL_SMTPC_WAIT_RSET,
	SL_SMTPC_WAIT_QUIT,
	SL_SMTPC_WAIT_NONE, /* idle (READY), waiting for the caller (events to take,
			       content being written), or over */
};

struct sl_smtpc_ev {
	enum sl_smtpc_ev_kind kind;
	unsigned code;     /* reply code (0: protocol error, or DONE "no recipient accepted") */
	char enhanced[16]; /* "5.1.1" when the reply carried one, else "" */
	const char *text;  /* the reply text, lines joined with " "; NUL-terminated;
				never NULL ("" for NONE/READY/BODY); in the client,
				valid until the next call */
	size_t rcpt_idx;   /* RCPT: index into txn.rcpts */
	enum sl_smtpc_wait answers; /* RCPT, DONE, FAIL: which command the reply answered
				       (a local refusal: MAIL); the stage of the logs */
	uint64_t bytes_sent;        /* DONE: content octets (as stored, before stuffing) written
				in this transaction; 0 when none was */
};

struct sl_smtp_client;

/*
 * A new session (expects the greeting first).  conf is copied; helo_name
 * (non-empty, no control characters: asserted) must outlive the client.
 * Never NULL.
 */
struct sl_smtp_client *sl_smtp_client_new(const struct sl_smtp_client_conf *conf);
void sl_smtp_client_free(struct sl_smtp_client *c);

/*
 * Consume server input; one event per call (see the loop above); commands
 * it decides on (EHLO, HELO, the next RCPT or DATA without pipelining, QUIT
 * before FAIL) go to `out`.  Returns ev->kind.
 */
enum sl_smtpc_ev_kind sl_smtp_client_next(struct sl_smtp_client *c, const char *in, size_t in_len,
					  size_t *used, struct sl_smtpc_ev *ev, struct sl_buf *out);

/*
 * Start transaction `txn` (only in READY, which includes right after DONE):
 * writes MAIL (without pipelining), or MAIL, every RCPT and, unless BDAT
 * is used, DATA (with pipelining) to `out`.  RSET goes first when the
 * previous transaction may still be open on the server (MAIL was accepted
 * but no content was taken: no recipient accepted, DATA or BDAT refused),
 * so the next MAIL is not a "nested MAIL" (RFC 5321 §4.1.1.5); within the
 * group when pipelining.  A transaction the server cannot take is refused
 * locally, nothing written: the next calls to next() return a RCPT event
 * for every recipient, then DONE, all with that reply (sender with control
 * characters: 501 5.1.7; SIZE over the server's limit: 552 5.3.4 (RFC 1870
 * §6.1); SMTPUTF8 needed but not offered: 553 5.6.7 (RFC 6531 §3.2)), and
 * the session stays READY.  Local refusals are not counted by txn_cnt.
 */
void sl_smtp_client_send(struct sl_smtp_client *c, const struct sl_smtp_client_txn *txn,
			 struct sl_buf *out);

/*
 * After SL_SMTPC_EV_BODY: the content to write, as iovecs into the
 * caller's buffers plus the small pieces the client adds, so the body is
 * never copied.  `content` is the message as stored (`cnt` iovecs, empty
 * ones allowed, CRLF line ends).  DATA: a '.' before every line that
 * starts with '.' (a line starts at the content's start and after CRLF
 * only; bare CR or LF are sent as they are), then "\r\n.\r\n", or ".\r\n"
 * when the content is empty or ends with CRLF (RFC 5321 §4.5.2).  BDAT:
 * "BDAT <n> LAST\r\n" then the content unchanged, n its length (one chunk,
 * RFC 3030).  Fills `iov` (capacity `max`; NULL with max 0 to ask) and
 * returns how many it used, or the number needed when that is more than
 * `max` (call again with the same content and more room).  Needed: the
 * non-empty content iovecs + 2 per stuffed line inside an iovec (1 at an
 * iovec's start) + 1.  The added pieces are constants or the BDAT header
 * inside the client: valid until sl_smtp_client_body_done().  Every
 * iovec has iov_len > 0.  Writes larger than IOV_MAX are the caller's.
 */
size_t sl_smtp_client_body_iov(struct sl_smtp_client *c, const struct iovec *content, size_t cnt,
			       struct iovec *iov, size_t max);

/* `out` and the content iovecs were written in full: wait for the replies. */
void sl_smtp_client_body_done(struct sl_smtp_client *c);

/*
 * Only in READY: RSET (its 2xx gives READY; 4xx/5xx FAIL) or QUIT (any reply
 * gives CLOSED; a server that just closes is the caller's EOF), written to `out`.
 */
void sl_smtp_client_rset(struct sl_smtp_client *c, struct sl_buf *out);
void sl_smtp_client_quit(struct sl_smtp_client *c, struct sl_buf *out);

enum sl_smtpc_wait sl_smtp_client_waiting_for(const struct sl_smtp_client *c);
const struct sl_smtp_client_caps *sl_smtp_client_caps(const struct sl_smtp_client *c);
/* Transactions that went to the server and reached DONE (max_deliveries_per_connection). */
unsigned sl_smtp_client_txn_cnt(const struct sl_smtp_client *c);

#endif /* SL_PROTO_SMTP_CLIENT_H */
