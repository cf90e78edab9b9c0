/*
 * proto/smtp_server.h - the ESMTP server as a pure state machine (RFC 5321).
 *
 * Bytes in, events and reply text out; no I/O, no threads, no clock, no
 * allocation beyond the session struct.  The protocol stage owns the
 * socket and calls this machine:
 *
 *   off = 0;
 *   while (!sl_smtp_server_is_closing(s)) {
 *           k = sl_smtp_server_next(s, in + off, in_len - off, &used, &ev, &out);
 *           off += used;          (consumed, but keep the bytes until the event is handled)
 *           switch (k) {
 *           case SL_SMTP_EV_NONE:  read more input (or wait for a verdict); break loop
 *           case SL_SMTP_EV_BODY:  append ev.data/ev.data_len to the message
 *           case SL_SMTP_EV_MAIL:  ... decide (now or later, e.g. after a
 *                                  validation stage answered), then
 *                                  sl_smtp_server_accept() or _reject()
 *           ...
 *           }
 *   }
 *   drop the first `off` bytes of input;
 *   write `out` to the client when the input is used up (RFC 2920 §3.1);
 *   close after writing when sl_smtp_server_is_closing().
 *
 * A BODY event's data usually points into the bytes it just consumed: use
 * it before those bytes are dropped or overwritten.
 *
 * An event with needs_verdict set stops the machine: until the caller calls
 * sl_smtp_server_accept/reject/reply_lines, sl_smtp_server_next() returns
 * SL_SMTP_EV_NONE and consumes nothing, so pipelined commands wait in the
 * caller's input buffer.
 *
 * What the machine decides on its own (the RFCs leave no choice): command
 * syntax (501/500/555), sequence (503), unknown commands (500), NOOP, HELP
 * (214), VRFY (252), RSET, QUIT (221), command lines over 512 octets (500
 * 5.5.2, the session stays usable), the SIZE limit, recipient and message
 * limits of the session, the hard error limit (421, close) and how DATA
 * and BDAT content ends.  Only <CR><LF>.<CR><LF> ends DATA: a bare LF or
 * bare CR never starts a line, never ends data and is never dot-unstuffed,
 * so no second message can be smuggled (CVE-2023-51764/5/6).  A message
 * that breaks a limit is read to its end and then refused with the RFC
 * code; the session goes on.
 *
 * With has_enhancedstatuscodes every reply carries an RFC 3463 code
 * (RFC 2034), the machine's own and the caller's, except the 220 greeting,
 * the HELO/EHLO 250 and the 354 (RFC 2034 §3).  Every reply line the
 * machine writes is at most 512 octets (RFC 5321 §4.5.3.1.5): longer texts
 * are cut, control characters in texts become spaces.
 *
 * Replies the machine picks where the RFCs leave a choice:
 *   unknown command 500 5.5.1; command line over 512 octets 500 5.5.2;
 *   syntax 501 5.5.4; bad sequence 503 5.5.1; unknown or unoffered
 *   MAIL/RCPT parameter (also BODY=BINARYMIME, and every RCPT parameter:
 *   DSN is not offered) 555 5.5.4; bad or too long address 501 5.1.7
 *   (MAIL) / 501 5.1.3 (RCPT) (RFC 5321 §4.5.3.1.9 "501 Path too long";
 *   RFC 3463 X.1.7/X.1.3); MAIL FROM:<> when not allowed 553 5.1.7;
 *   non-ASCII address without SMTPUTF8 553 5.6.7 (RFC 6531 §3.5); SIZE=
 *   over message_size 552 5.3.4; DATA/BDAT without any RCPT 503 5.5.1,
 *   after RCPTs that were all refused 554 5.5.1 (RFC 5321 §3.3 allows
 *   both); too many recipients in a message 452 4.5.3 (RFC 5321
 *   §4.5.3.1.10), in a session 421 4.7.0; too many messages 421 4.7.0;
 *   VRFY 252 2.5.2 (RFC 5321 §7.3); EXPN 502 5.5.1 (not implemented,
 *   RFC 5321 §4.5.1); HELP 214 2.0.0; NOOP and RSET 250 2.0.0; QUIT 221
 *   2.0.0.  At the end of a defective message: over message_size 552 5.3.4,
 *   else bare CR/LF 550 5.6.0, else a long text line 500 5.5.6.
 *
 * Other rules worth knowing:
 *   - A command line may end in a bare LF (as Postfix allows); content
 *     never does.  Any other CR in a command line makes it unrecognised or
 *     a syntax error.
 *   - Sequence is checked before syntax, syntax before limits (only BDAT's
 *     size comes first: without it the chunk could not be skipped).
 *   - "MAIL FROM: <a@b>" (one space after the colon) is accepted; with
 *     allow_trailing_ws spaces inside the brackets and trailing spaces and
 *     tabs at the end of any command line are ignored, otherwise an
 *     argument (even a space) after RSET/DATA/QUIT/STARTTLS/XDUMPCONTEXT
 *     is a 501.
 *   - The hard error limit: the max_errors-th 5xx the machine chooses
 *     itself is followed at once by 421 4.7.0 and the close.  Verdict
 *     refusals do not count, nor do the 503s for BDAT chunks a pipelining
 *     client sent after a refused BDAT.
 *   - A message's defects stop its BODY events (nothing is emitted for a
 *     message that will be refused); counting goes on to the end.
 *   - For the 1000-octet text line limit a bare CR or LF also ends a line;
 *     stuffing dots are not counted (RFC 5321 §4.5.3.1.6).  SL_SMTP_DEFECT_
 *     BDAT_SIZE is never set: the MAIL SIZE= value is an estimate (RFC 1870
 *     §5); only message_size limits a message.
 *   - A BDAT whose size does not parse is answered 501, then 421, and the
 *     session closes (the chunk's end is unknown, RFC 3030 §2).  Any other
 *     refused BDAT has its chunk read and discarded; after a refused BDAT
 *     inside a transaction, later BDATs (their chunks discarded), DATA and
 *     RCPT get 503 until RSET: no message is ever made of the chunks
 *     around a refused one.
 *   - XCLIENT and STARTTLS are refused (503) inside a transaction; their
 *     acceptance forgets HELO and the transaction but keeps the session's
 *     counters (messages, recipients, errors).
 *   - Once closing, next() returns the events still queued (a CLOSE after
 *     a REJECT), then SL_SMTP_EV_NONE without consuming; accept/reject
 *     are then ignored.
 *
 * Threads: one session belongs to one thread; the functions are pure over
 * the session struct.  Parses untrusted input: every input has a limit
 * (command line 512, text line 1000, address 256, domain 255, local part 64,
 * at most SL_SMTP_MAX_PARAMS parameters, at most SL_SMTP_MAX_XCLIENT_ATTRS
 * XCLIENT attributes).
 */
#ifndef SL_PROTO_SMTP_SERVER_H
#define SL_PROTO_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"

#define SL_SMTP_MAX_CMD_LINE      512  /* RFC 5321 §4.5.3.1.4, including CRLF */
#define SL_SMTP_MAX_TEXT_LINE     1000 /* RFC 5321 §4.5.3.1.6, including CRLF */
#define SL_SMTP_MAX_PATH          256  /* RFC 5321 §4.5.3.1.3 */
#define SL_SMTP_MAX_DOMAIN        255  /* RFC 5321 §4.5.3.1.2 */
#define SL_SMTP_MAX_LOCAL         64   /* RFC 5321 §4.5.3.1.1 */
#define SL_SMTP_MAX_PARAMS        16   /* ESMTP parameters on MAIL or RCPT */
#define SL_SMTP_MAX_XCLIENT_ATTRS 16

/* What to do with a bare CR or bare LF inside message content. */
enum sl_smtp_bare_eol {
	SL_SMTP_BARE_EOL_REJECT, /* refuse the message at its end: 550 5.6.0 (default) */
	SL_SMTP_BARE_EOL_FIX,    /* turn each bare CR or LF into CRLF */
	SL_SMTP_BARE_EOL_IGNORE, /* pass it through unchanged (it still never ends data) */
};

/*
 * Per-session settings, resolved by the caller from the configuration
 * snapshot and the listener ACL.  Strings are borrowed: they must outlive
 * the session (the session holds its snapshot).
 */
struct sl_smtp_server_conf {
	const char *hostname;          /* in the banner, EHLO reply and 221/421 texts */
	const char *static_banner;     /* complete banner line ("220 ..."), or NULL */
	const char *greeting;          /* banner text after the hostname, e.g. "ESMTP sluice" */
	uint64_t message_size;         /* SIZE limit in octets; 0: none (EHLO says "SIZE") */
	unsigned max_rcpt_per_message; /* 0: none; over it 452 4.5.3 (RFC 5321 §4.5.3.1.10) */
	unsigned max_rcpt_per_session; /* 0: none; over it (accepted RCPTs) 421 4.7.0, close */
	unsigned max_msgs_per_session; /* 0: none; MAIL after that many accepted messages:
					  421 4.7.0 and close */
	unsigned max_errors;           /* bad commands before 421 4.7.0 and close; 0: 20 */
	enum sl_smtp_bare_eol body_bare_eol;
	enum sl_smtp_bare_eol header_bare_eol; /* FIX and REJECT only (IGNORE acts as REJECT) */
	bool require_ehlo;                     /* MAIL before HELO/EHLO is 503 5.5.1 */
	bool allow_null_sender;                /* MAIL FROM:<> allowed */
	bool allow_trailing_ws;                /* "MAIL FROM: < a@b >" tolerated */
	bool has_8bitmime;                     /* advertise and accept BODY=8BITMIME */
	bool has_smtputf8;                     /* advertise and accept SMTPUTF8 (RFC 6531) */
	bool has_chunking;                     /* advertise and accept BDAT (RFC 3030) */
	bool has_enhancedstatuscodes;
	bool has_xclient; /* XCLIENT allowed (Postfix semantics) */
	bool has_xremoteip;
	bool has_xdumpcontext;
	bool has_starttls; /* advertise STARTTLS */
};

enum sl_smtp_ev_kind {
	SL_SMTP_EV_NONE,         /* no event: need input, or a verdict is pending */
	SL_SMTP_EV_HELO,         /* verdict: arg = domain or address literal; is_ehlo */
	SL_SMTP_EV_MAIL,         /* verdict: arg = reverse-path without <> ("" = null sender) */
	SL_SMTP_EV_RCPT,         /* verdict: arg = forward-path without <> */
	SL_SMTP_EV_DATA,         /* verdict: DATA, or the first BDAT of a message (is_bdat);
				    accept -> 354 for DATA, or reading the chunk for BDAT */
	SL_SMTP_EV_BODY,         /* content bytes, already unstuffed: data/data_len */
	SL_SMTP_EV_EOM,          /* end of message.  Good: verdict (the final 250/4xx/5xx).
				    Defective (defects != 0): already refused (reply_code,
				    reply), no verdict; an RSET event follows */
	SL_SMTP_EV_RSET,         /* the transaction was dropped: every RSET command, an
				    accepted HELO/EHLO inside a transaction, a refused EOM;
				    informational */
	SL_SMTP_EV_XCLIENT,      /* verdict: xclient[] attributes; accept -> new 220 banner */
	SL_SMTP_EV_XREMOTEIP,    /* verdict: arg = the address */
	SL_SMTP_EV_XDUMPCONTEXT, /* verdict: answer with sl_smtp_server_reply_lines() */
	SL_SMTP_EV_STARTTLS,     /* verdict: accept -> 220, then the caller starts TLS;
				    has_pipelined_input tells of bytes sent after it in the
				    same input.  The machine consumed exactly the STARTTLS
				    line: after accept, the caller must drop what followed
				    (plaintext injection, CVE-2011-0411), never feed it as if
				    it came over TLS.  A new EHLO is expected */
	SL_SMTP_EV_QUIT,         /* 221 is in `out`; close after writing it */
	SL_SMTP_EV_CLOSE,        /* a 421 the machine chose is in `out` (error limit, session
				    limits, lost BDAT framing); close after writing it.
				    reply_code/arg/reply as for REJECT */
	SL_SMTP_EV_REJECT,       /* the machine refused a command by itself, 4xx or 5xx (reply
				    in `out`): for the rejectlog; reply_code, arg (the verb,
				    or "unknown command" / "command line too long") and reply
				    say what.  A REJECT with a 421 is followed by a CLOSE */
};

/* Why a message was refused at its end (bit set in ev->defects). */
enum sl_smtp_defect {
	SL_SMTP_DEFECT_TOO_BIG = 1u << 0,   /* over message_size: 552 5.3.4 */
	SL_SMTP_DEFECT_LONG_LINE = 1u << 1, /* a text line over 1000 octets: 500 5.5.6 */
	SL_SMTP_DEFECT_BARE_EOL = 1u << 2,  /* bare CR or LF under REJECT: 550 5.6.0 */
	SL_SMTP_DEFECT_BDAT_SIZE = 1u << 3, /* reserved, never set (see above) */
};

enum sl_smtp_body_type {
	SL_SMTP_BODY_UNSPECIFIED,
	SL_SMTP_BODY_7BIT,
	SL_SMTP_BODY_8BITMIME,
};

struct sl_smtp_xclient_attr {
	const char *name;  /* upper case: NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT */
	const char *value; /* xtext-decoded; "[UNAVAILABLE]"/"[TEMPUNAVAIL]" kept as such
			      (any case on the wire, upper case here).  Checked: ADDR and
			      DESTADDR an IPv4 address or "IPV6:" + an IPv6 address, PORT and
			      DESTPORT 0..65535, PROTO SMTP or ESMTP (upper case here), NAME
			      a host name ([TEMPUNAVAIL] only here), HELO one printable word,
			      no control characters anywhere */
};

/*
 * One event.  Pointers (arg, data, xclient, reply) point into the session
 * or the caller's input and are valid until the next call on the session.
 */
struct sl_smtp_ev {
	enum sl_smtp_ev_kind kind;
	bool needs_verdict;
	const char *arg; /* NUL-terminated; NULL when the event has none */
	size_t arg_len;
	bool is_ehlo; /* HELO: EHLO rather than HELO */
	bool is_bdat; /* DATA: started with BDAT */
	/* MAIL parameters */
	uint64_t declared_size; /* SIZE=, 0 when absent */
	enum sl_smtp_body_type body;
	bool is_smtputf8;
	/* BODY */
	const char *data;
	size_t data_len;
	/* EOM */
	unsigned defects;           /* enum sl_smtp_defect bits */
	uint64_t message_len;       /* content octets as stored (after unstuffing/fixing) */
	bool has_date_header;       /* a Date: header was seen */
	bool has_message_id_header; /* a Message-ID: header was seen */
	/* XCLIENT */
	const struct sl_smtp_xclient_attr *xclient;
	size_t xclient_cnt;
	/* STARTTLS */
	bool has_pipelined_input; /* bytes followed the STARTTLS line (CVE-2011-0411) */
	/* REJECT, CLOSE, QUIT, defective EOM */
	unsigned reply_code; /* the code the machine answered with */
	const char *reply;   /* that reply line without CRLF ("501 5.5.4 Syntax: ...") */
};

struct sl_smtp_server;

/*
 * A new session: writes the 220 banner to `out`.  `conf` is copied (its
 * strings are borrowed; hostname must not be NULL; greeting NULL means
 * "ESMTP"; a static_banner not starting with "220" gets "220 " in front).
 * Never NULL.
 *
 * To refuse the connection instead (a connect-time policy), drop the
 * banner from `out` and call sl_smtp_server_reject() before the first
 * sl_smtp_server_next(): a 421 closes; any other code leaves a session
 * that answers every command but QUIT with 503 5.5.1 (RFC 5321 §3.1).
 * sl_smtp_server_accept() at that point does nothing.
 */
struct sl_smtp_server *sl_smtp_server_new(const struct sl_smtp_server_conf *conf,
					  struct sl_buf *out);
void sl_smtp_server_free(struct sl_smtp_server *s);

/*
 * Consume input from `in` (in_len bytes) until one event is ready; sets
 * *used to the bytes consumed (the caller drops them; unconsumed bytes must
 * be offered again, followed by new input).  Replies go to `out`.
 * Returns ev->kind.  In DATA/BDAT every offered content octet is consumed
 * (a '.' or CR whose meaning depends on the next octet is kept as state);
 * in command state a partial line stays until its LF arrives or it passes
 * 512 octets (then it is discarded as it comes and answered 500 5.5.2 when
 * its end arrives).  Each call costs time in proportion to what it
 * consumes; several events may come without consuming (queued events).
 */
enum sl_smtp_ev_kind sl_smtp_server_next(struct sl_smtp_server *s, const char *in, size_t in_len,
					 size_t *used, struct sl_smtp_ev *ev, struct sl_buf *out);

/*
 * Answer the pending verdict positively.  `text` replaces the default text
 * after the codes (e.g. "Ok: queued as 6926A1B2-000000000F1A" for EOM; for
 * HELO/EHLO the hostname on the first line; for XCLIENT the banner after
 * "220 "); NULL keeps the default.  The machine picks the code (250, 354,
 * 220); a DATA verdict for BDAT writes nothing (the chunk's reply follows
 * it).  Calling it with no verdict pending is a programming error
 * (asserted), except at connect time (see above) or once closing (ignored).
 */
void sl_smtp_server_accept(struct sl_smtp_server *s, const char *text, struct sl_buf *out);

/*
 * Answer the pending verdict negatively with `code` (4xx or 5xx),
 * `enhanced` ("5.7.1"; NULL, or one not of the code's class, becomes
 * "<class>.0.0") and `text` (NULL or "": a default).  A 421 also closes the
 * session.  A refused RCPT does not count as a recipient; a refused DATA
 * keeps the transaction (the client may RSET); a refused first BDAT has its
 * chunk discarded; a refused EOM ends the transaction (an RSET event
 * follows).
 */
void sl_smtp_server_reject(struct sl_smtp_server *s, unsigned code, const char *enhanced,
			   const char *text, struct sl_buf *out);

/*
 * Answer the pending verdict (XDUMPCONTEXT) with a 250 multi-line reply:
 * one "250-" line per entry of `lines`, then "250 XDUMPCONTEXT complete".
 * sl_smtp_server_accept() gives the last line alone.
 */
void sl_smtp_server_reply_lines(struct sl_smtp_server *s, const char *const *lines, size_t line_cnt,
				struct sl_buf *out);

/* Which timeout applies now (the caller maps it to a configured value). */
enum sl_smtp_wait {
	SL_SMTP_WAIT_HELO,    /* before HELO/EHLO: ehlo_timeout */
	SL_SMTP_WAIT_MAIL,    /* between transactions: mailfrom_timeout */
	SL_SMTP_WAIT_RCPT,    /* after MAIL: rcptto_timeout */
	SL_SMTP_WAIT_BODY,    /* in DATA or between BDAT chunks: body_timeout */
	SL_SMTP_WAIT_RSET,    /* right after RSET: rset_timeout */
	SL_SMTP_WAIT_VERDICT, /* the machine waits for the caller: no client timeout */
};
enum sl_smtp_wait sl_smtp_server_waiting_for(const struct sl_smtp_server *s);

/* The client took too long: writes 421 4.4.2 to `out`; the session is closing. */
void sl_smtp_server_timeout(struct sl_smtp_server *s, struct sl_buf *out);

/* The server is going away (shutdown): 421 4.3.2, closing. */
void sl_smtp_server_shutdown(struct sl_smtp_server *s, struct sl_buf *out);

/* True once a QUIT, 421 or error limit means: write `out`, then close. */
bool sl_smtp_server_is_closing(const struct sl_smtp_server *s);

/* Facts for logs and Received headers. */
const char *sl_smtp_server_helo(const struct sl_smtp_server *s); /* "" before HELO */
bool sl_smtp_server_is_esmtp(const struct sl_smtp_server *s);
/*
 * The syntax of a bare mailbox "local@domain" (no angle brackets, no
 * source route) as MAIL and RCPT check it, for other ways in (ECStream):
 * 0, -1 bad syntax, -2 too long.  <Postmaster> alone passes when is_rcpt.
 * *has_8bit tells whether it needs SMTPUTF8.
 */
int sl_smtp_mailbox_check(const char *p, size_t len, bool is_rcpt, bool *has_8bit);
unsigned sl_smtp_server_msg_cnt(const struct sl_smtp_server *s); /* messages accepted */

#endif /* SL_PROTO_SMTP_SERVER_H */
