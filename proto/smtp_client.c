/*
 * proto/smtp_client.c - the SMTP/LMTP client as a pure state machine (see smtp_client.h).
 *
 * Replies are read one complete line at a time from the caller's input (a
 * partial line stays there until its LF arrives or it passes
 * SL_SMTPC_MAX_LINE octets); the text of a reply is gathered into the
 * client, cleaned, joined and bounded, so a multi-line reply never has to
 * sit whole in the caller's buffer.  The commands of a transaction go out as
 * one pipelined group (RFC 2920) or one at a time; their replies are matched
 * in order through `expect` and a status per recipient.  Several events
 * that one reply causes (a refused MAIL answers every recipient) are queued
 * as flags and a cursor, and handed out one per call.  Content is never
 * copied: body_iov() returns iovecs into the caller's buffers with constant
 * pieces (stuffing dots, the end of data) or the BDAT header in between.
 *
 * Threads: the thread that owns the client; no globals, no I/O, no clock.
 * Untrusted input: all of `in` (the server's replies).  Every loop is
 * bounded by the input, the recipient count or the content; every copy into
 * the client by SMTPC_MAX_TEXT.
 * Ownership: the client owns itself (fixed-size buffers inside); it borrows
 * conf->helo_name for its life and each txn until that transaction's DONE.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "proto/smtp_client.h"

#define SMTP_CLIENT_MAGIC 0x53c11e7au

#define SMTPC_MAX_TEXT 1024 /* ev.text, NUL excluded */
#define SMTPC_MAX_ESC  9    /* "5.123.456" (RFC 3463 §2: 1-3 digits per field) */

enum smtpc_state {
	SMTPC_ST_GREETING, /* waiting for the 220 */
	SMTPC_ST_EHLO,     /* EHLO or LHLO sent */
	SMTPC_ST_HELO,     /* HELO sent after EHLO was refused */
	SMTPC_ST_READY,    /* idle: any reply now is unexpected */
	SMTPC_ST_TXN,      /* a transaction: reading the replies `expect` says */
	SMTPC_ST_BODY,     /* BODY was returned: waiting for body_done() */
	SMTPC_ST_RSET,     /* sl_smtp_client_rset() sent RSET */
	SMTPC_ST_QUIT,
	SMTPC_ST_FAILED,
	SMTPC_ST_CLOSED,
};

/* The next reply of a transaction. */
enum smtpc_expect {
	SMTPC_EX_RSET, /* the RSET that opens a transaction (the last one left one open) */
	SMTPC_EX_MAIL,
	SMTPC_EX_RCPT,
	SMTPC_EX_DATA,    /* the 354 */
	SMTPC_EX_FINAL,   /* the reply to the content; LMTP: one per accepted recipient */
	SMTPC_EX_SWALLOW, /* the reply to content no recipient takes (pipelined BDAT, or the
			     lone "." after a 354 that came without a recipient) */
};

/* Where each recipient of the transaction is. */
enum smtpc_rcpt_st {
	SMTPC_RS_WAIT, /* RCPT sent or to be sent, reply unread */
	SMTPC_RS_OK,   /* accepted: its outcome comes with the final reply */
	SMTPC_RS_BAD,  /* refused locally (control characters), event not given yet */
	SMTPC_RS_DONE, /* its RCPT event was given */
};

enum smtpc_step {
	SMTPC_STEP_EVENT, /* *ev is set: return it */
	SMTPC_STEP_AGAIN, /* progress without an event */
	SMTPC_STEP_NEED,  /* needs more input */
};

/* One reply as events show it. */
struct smtpc_reply {
	unsigned code;
	unsigned line_cnt;          /* lines read so far; 0 between replies */
	bool is_cut;                /* text went over SMTPC_MAX_TEXT */
	char enhanced[16];          /* RFC 3463 code of the first line, or "" */
	enum sl_smtpc_wait answers; /* what the reply answered (a local one: MAIL) */
	size_t text_len;
	char text[SMTPC_MAX_TEXT + 1]; /* joined, control characters as spaces */
};

struct sl_smtp_client {
	unsigned magic;
	struct sl_smtp_client_conf conf; /* copied; helo_name borrowed */
	struct sl_smtp_client_caps caps;
	enum smtpc_state state;
	enum smtpc_expect expect;
	unsigned txn_cnt;
	bool is_txn_open; /* the server may hold a transaction: RSET before the next MAIL */
	/* Events queued behind the one returned, given in this order. */
	bool is_emitting; /* RCPT events (outcome) for each recipient in emit_st */
	enum smtpc_rcpt_st emit_st;
	size_t emit_cursor;
	bool is_done_pending;
	bool is_ready_pending;
	bool is_body_pending;
	/* The transaction. */
	const struct sl_smtp_client_txn *txn; /* borrowed until DONE */
	bool is_pipelined;
	bool is_bdat;
	bool is_utf8;         /* SMTPUTF8 needed (and offered: else refused locally) */
	bool is_mail_sent;    /* commands went out: counts in txn_cnt */
	bool is_mail_refused; /* by the server or locally: every recipient has its outcome */
	bool has_iov;         /* body_iov() was called */
	bool is_content_sent;
	bool has_final_refusal; /* a reply to BDAT content was not 2xx */
	size_t rcpt_cursor;     /* no recipient before it is still SMTPC_RS_WAIT */
	size_t rcpt_left;       /* RCPT replies still to read */
	size_t accepted_cnt;
	size_t final_left;   /* replies to the content still to read */
	size_t final_cursor; /* LMTP: no accepted recipient before it waits for its reply */
	uint64_t content_len;
	unsigned char rcpt_st[SL_SMTPC_MAX_RCPTS]; /* enum smtpc_rcpt_st */
	struct smtpc_reply r;                      /* the reply being read */
	struct smtpc_reply outcome;                /* the reply several events share */
	char bdat_hdr[48];                         /* "BDAT <n> LAST\r\n" */
};

/* Constant pieces body_iov() puts between the caller's buffers. */
static const char smtpc_dot[] = ".";
static const char smtpc_eod[] = "\r\n.\r\n"; /* +2: ".\r\n" */

/* ------------------------------------------------------------ helpers */

static bool
smtpc_is_digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

/* Octets that would break a command line (CR, LF) or have no place in a path. */
static bool
smtpc_has_ctl(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

static bool
smtpc_has_8bit(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p >= 0x80)
			return true;
	return false;
}

/*
 * The length of an RFC 3463 code ("class.subject.detail", 1-3 digits after
 * the class) at the start of `t`, followed by a space or the end, whose
 * class is the reply's first digit (RFC 2034 §4); 0 when there is none.
 */
static size_t
smtpc_esc_len(const char *t, size_t len, unsigned code)
{
	size_t i = 2;

	if (len < 5 || t[0] != (char)('0' + code / 100) || t[1] != '.' ||
	    (t[0] != '2' && t[0] != '4' && t[0] != '5'))
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		while (i < len && d < 4 && smtpc_is_digit((unsigned char)t[i])) {
			i++;
			d++;
		}
		if (d == 0 || d > 3)
			return 0;
		if (part == 0) {
			if (i >= len || t[i] != '.')
				return 0;
			i++;
		}
	}
	return i == len || t[i] == ' ' ? i : 0;
}

static void
smtpc_reply_set(struct smtpc_reply *r, unsigned code, const char *esc, const char *text)
{
	size_t n = strlen(text);

	SL_ASSERT(n <= SMTPC_MAX_TEXT && strlen(esc) < sizeof(r->enhanced));
	r->code = code;
	r->line_cnt = 0;
	r->is_cut = false;
	r->answers = SL_SMTPC_WAIT_MAIL;
	strcpy(r->enhanced, esc);
	memcpy(r->text, text, n + 1);
	r->text_len = n;
}

/* Append reply text, control characters as spaces, up to SMTPC_MAX_TEXT. */
static void
smtpc_text_add(struct smtpc_reply *r, const char *t, size_t len)
{
	if (len == 0)
		return;
	if (r->text_len > 0 && r->text_len < SMTPC_MAX_TEXT)
		r->text[r->text_len++] = ' ';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)t[i];

		if (r->text_len == SMTPC_MAX_TEXT) {
			r->is_cut = true;
			break;
		}
		r->text[r->text_len++] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
	}
	r->text[r->text_len] = '\0';
}

/* A cut text must not end inside a UTF-8 sequence. */
static void
smtpc_text_trim(struct smtpc_reply *r)
{
	size_t i = r->text_len, back = 0, need;
	unsigned char lead;

	while (i > 0 && back < 3 && ((unsigned char)r->text[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0)
		return;
	lead = (unsigned char)r->text[i - 1];
	need = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
	if (lead >= 0xc0 && back < need) {
		r->text_len = i - 1;
		r->text[r->text_len] = '\0';
	}
}

/* The reply the session reads next, by its state alone. */
static enum sl_smtpc_wait
smtpc_waiting(const struct sl_smtp_client *c)
{
	switch (c->state) {
	case SMTPC_ST_GREETING:
		return SL_SMTPC_WAIT_GREETING;
	case SMTPC_ST_EHLO:
	case SMTPC_ST_HELO:
		return SL_SMTPC_WAIT_EHLO;
	case SMTPC_ST_TXN:
		switch (c->expect) {
		case SMTPC_EX_RSET:
			/*
			 * The RSET after a failed transaction, before the next
			 * MAIL: RSET_Timeout's case (conf.ref.rset_timeout).
			 */
			return SL_SMTPC_WAIT_RSET;
		case SMTPC_EX_MAIL:
			return SL_SMTPC_WAIT_MAIL;
		case SMTPC_EX_RCPT:
			return SL_SMTPC_WAIT_RCPT;
		case SMTPC_EX_DATA:
			return SL_SMTPC_WAIT_DATA;
		case SMTPC_EX_FINAL:
		case SMTPC_EX_SWALLOW:
			return SL_SMTPC_WAIT_BODY_END;
		}
		break;
	case SMTPC_ST_RSET:
		return SL_SMTPC_WAIT_RSET;
	case SMTPC_ST_QUIT:
		return SL_SMTPC_WAIT_QUIT;
	case SMTPC_ST_READY:
	case SMTPC_ST_BODY:
	case SMTPC_ST_FAILED:
	case SMTPC_ST_CLOSED:
		break;
	}
	return SL_SMTPC_WAIT_NONE;
}

static void
smtpc_ev_reply(struct sl_smtpc_ev *ev, enum sl_smtpc_ev_kind kind, const struct smtpc_reply *r)
{
	ev->kind = kind;
	ev->code = r->code;
	memcpy(ev->enhanced, r->enhanced, sizeof(ev->enhanced));
	ev->text = r->text;
	ev->answers = r->answers;
}

/* ------------------------------------------------------------ EHLO keywords */

static bool
smtpc_kw_is(const char *kw, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(kw, name, len) == 0;
}

/* One EHLO/LHLO reply line after the first: "KEYWORD [params]" (RFC 5321 §4.1.1.1). */
static void
smtpc_ehlo_line(struct sl_smtp_client_caps *caps, const char *t, size_t len)
{
	size_t k = 0, i;

	while (k < len && t[k] != ' ')
		k++;
	if (smtpc_kw_is(t, k, "PIPELINING")) {
		caps->has_pipelining = true;
	} else if (smtpc_kw_is(t, k, "8BITMIME")) {
		caps->has_8bitmime = true;
	} else if (smtpc_kw_is(t, k, "SMTPUTF8")) {
		caps->has_smtputf8 = true;
	} else if (smtpc_kw_is(t, k, "CHUNKING")) {
		caps->has_chunking = true;
	} else if (smtpc_kw_is(t, k, "STARTTLS")) {
		caps->has_starttls = true;
	} else if (smtpc_kw_is(t, k, "ENHANCEDSTATUSCODES")) {
		caps->has_enhancedstatuscodes = true;
	} else if (smtpc_kw_is(t, k, "SIZE")) {
		uint64_t n = 0;
		size_t d = 0;

		/* RFC 1870 §4: "SIZE" [SP 1*20DIGIT]; 0, absent or garbled: no known limit. */
		caps->has_size = true;
		for (i = k; i < len && t[i] == ' '; i++)
			;
		for (; i < len && smtpc_is_digit((unsigned char)t[i]) && d <= 20; i++, d++) {
			unsigned v = (unsigned)(t[i] - '0');

			if (n > (UINT64_MAX - v) / 10)
				break;
			n = n * 10 + v;
		}
		while (i < len && t[i] == ' ')
			i++;
		caps->size_limit = i == len && d > 0 && d <= 20 ? n : 0;
	}
}

/* ------------------------------------------------------------ commands */

static void
smtpc_put_mail(struct sl_smtp_client *c, struct sl_buf *out)
{
	const struct sl_smtp_client_txn *t = c->txn;

	sl_buf_puts(out, "MAIL FROM:<");
	sl_buf_puts(out, t->sender);
	sl_buf_puts(out, ">");
	if (c->caps.has_size)
		sl_buf_printf(out, " SIZE=%llu", (unsigned long long)t->size);
	if (t->is_8bitmime && c->caps.has_8bitmime)
		sl_buf_puts(out, " BODY=8BITMIME");
	if (c->is_utf8)
		sl_buf_puts(out, " SMTPUTF8");
	sl_buf_puts(out, "\r\n");
}

static void
smtpc_put_rcpt(struct sl_smtp_client *c, size_t i, struct sl_buf *out)
{
	sl_buf_puts(out, "RCPT TO:<");
	sl_buf_puts(out, c->txn->rcpts[i]);
	sl_buf_puts(out, ">\r\n");
}

/* The first recipient still waiting for its RCPT reply. */
static size_t
smtpc_next_wait(struct sl_smtp_client *c)
{
	size_t i = c->rcpt_cursor;

	while (i < c->txn->rcpt_cnt && c->rcpt_st[i] != SMTPC_RS_WAIT)
		i++;
	SL_ASSERT(i < c->txn->rcpt_cnt);
	c->rcpt_cursor = i;
	return i;
}

/* Queue an RCPT event with `outcome` for every recipient in status `st`. */
static void
smtpc_emit_all(struct sl_smtp_client *c, enum smtpc_rcpt_st st)
{
	c->is_emitting = true;
	c->emit_st = st;
	c->emit_cursor = 0;
}

/* ------------------------------------------------------------ failures */

static enum smtpc_step
smtpc_fail_proto(struct sl_smtp_client *c, struct sl_smtpc_ev *ev, const char *why)
{
	ev->answers = smtpc_waiting(c);
	c->state = SMTPC_ST_FAILED;
	ev->kind = SL_SMTPC_EV_FAIL;
	ev->code = 0;
	ev->enhanced[0] = '\0';
	ev->text = why;
	return SMTPC_STEP_EVENT;
}

/*
 * The server said no to the session.  QUIT is polite (RFC 5321 §3.1, §4.1.1.10)
 * except after a 421: the server is closing already (RFC 5321 §3.8).
 */
static enum smtpc_step
smtpc_fail_reply(struct sl_smtp_client *c, struct sl_smtpc_ev *ev, struct sl_buf *out)
{
	if (c->r.code != 421)
		sl_buf_puts(out, "QUIT\r\n");
	c->state = SMTPC_ST_FAILED;
	smtpc_ev_reply(ev, SL_SMTPC_EV_FAIL, &c->r);
	return SMTPC_STEP_EVENT;
}

/* ------------------------------------------------------------ replies */

static void
smtpc_finish(struct sl_smtp_client *c)
{
	c->is_done_pending = true;
}

static enum smtpc_step
smtpc_rcpt_reply(struct sl_smtp_client *c, struct sl_smtpc_ev *ev, struct sl_buf *out)
{
	enum smtpc_step rc = SMTPC_STEP_AGAIN;

	SL_ASSERT(c->rcpt_left > 0);
	c->rcpt_left--;
	if (!c->is_mail_refused) {
		size_t i = smtpc_next_wait(c);

		if (c->r.code / 100 == 2) {
			c->rcpt_st[i] = SMTPC_RS_OK;
			c->accepted_cnt++;
		} else {
			c->rcpt_st[i] = SMTPC_RS_DONE;
			smtpc_ev_reply(ev, SL_SMTPC_EV_RCPT, &c->r);
			ev->rcpt_idx = i;
			rc = SMTPC_STEP_EVENT;
		}
		c->rcpt_cursor = i + 1;
	}
	if (c->rcpt_left > 0) {
		if (!c->is_pipelined)
			smtpc_put_rcpt(c, smtpc_next_wait(c), out);
		return rc;
	}
	/* Every RCPT is answered. */
	if (c->is_pipelined) {
		if (!c->is_bdat) {
			c->expect = SMTPC_EX_DATA;
		} else if (c->accepted_cnt > 0) {
			c->expect = SMTPC_EX_FINAL;
			c->final_left = c->conf.is_lmtp ? c->accepted_cnt : 1;
		} else {
			c->expect = SMTPC_EX_SWALLOW;
		}
	} else if (c->accepted_cnt == 0) {
		smtpc_finish(c);
	} else if (c->is_bdat) {
		c->is_body_pending = true;
	} else {
		sl_buf_puts(out, "DATA\r\n");
		c->expect = SMTPC_EX_DATA;
	}
	return rc;
}

static enum smtpc_step
smtpc_final_reply(struct sl_smtp_client *c, struct sl_smtpc_ev *ev)
{
	bool is_ok = c->r.code / 100 == 2;

	if (!is_ok && c->is_bdat)
		c->has_final_refusal = true;
	if (!c->conf.is_lmtp) {
		c->outcome = c->r;
		smtpc_emit_all(c, SMTPC_RS_OK);
		c->is_txn_open = c->has_final_refusal;
		smtpc_finish(c);
		return SMTPC_STEP_AGAIN;
	}
	/* RFC 2033 §4.2: one reply per accepted recipient, in RCPT order. */
	{
		size_t i = c->final_cursor;

		while (i < c->txn->rcpt_cnt && c->rcpt_st[i] != SMTPC_RS_OK)
			i++;
		SL_ASSERT(i < c->txn->rcpt_cnt);
		c->rcpt_st[i] = SMTPC_RS_DONE;
		c->final_cursor = i + 1;
		smtpc_ev_reply(ev, SL_SMTPC_EV_RCPT, &c->r);
		ev->rcpt_idx = i;
	}
	if (--c->final_left == 0) {
		c->outcome = c->r;
		c->is_txn_open = c->has_final_refusal;
		smtpc_finish(c);
	}
	return SMTPC_STEP_EVENT;
}

static enum smtpc_step
smtpc_txn_reply(struct sl_smtp_client *c, struct sl_smtpc_ev *ev, struct sl_buf *out)
{
	bool is_ok = c->r.code / 100 == 2;

	switch (c->expect) {
	case SMTPC_EX_RSET:
		if (!is_ok)
			return smtpc_fail_reply(c, ev, out);
		c->is_txn_open = false;
		c->expect = SMTPC_EX_MAIL;
		if (!c->is_pipelined)
			smtpc_put_mail(c, out);
		return SMTPC_STEP_AGAIN;
	case SMTPC_EX_MAIL:
		c->expect = SMTPC_EX_RCPT;
		if (is_ok) {
			c->is_txn_open = true;
			if (!c->is_pipelined)
				smtpc_put_rcpt(c, smtpc_next_wait(c), out);
			return SMTPC_STEP_AGAIN;
		}
		c->is_mail_refused = true;
		c->outcome = c->r;
		smtpc_emit_all(c, SMTPC_RS_WAIT);
		/* Pipelined: the RCPT and DATA replies (503s) are still to come. */
		if (!c->is_pipelined)
			smtpc_finish(c);
		return SMTPC_STEP_AGAIN;
	case SMTPC_EX_RCPT:
		return smtpc_rcpt_reply(c, ev, out);
	case SMTPC_EX_DATA:
		if (c->r.code == 354) {
			if (c->accepted_cnt > 0) {
				c->state = SMTPC_ST_BODY;
				ev->kind = SL_SMTPC_EV_BODY;
				return SMTPC_STEP_EVENT;
			}
			/*
			 * Pipelined DATA was taken although nobody can receive:
			 * end the empty content (RFC 2920 §3.1).  An LMTP server
			 * answers it once per accepted recipient: not at all.
			 */
			sl_buf_puts(out, smtpc_eod + 2);
			if (c->conf.is_lmtp)
				smtpc_finish(c);
			else
				c->expect = SMTPC_EX_SWALLOW;
			return SMTPC_STEP_AGAIN;
		}
		if (is_ok)
			return smtpc_fail_proto(c, ev, "DATA answered 2xx instead of 354");
		if (c->r.code / 100 == 3)
			return smtpc_fail_proto(c, ev, "unexpected 3xx reply");
		if (c->accepted_cnt > 0) {
			c->outcome = c->r;
			smtpc_emit_all(c, SMTPC_RS_OK);
		}
		smtpc_finish(c);
		return SMTPC_STEP_AGAIN;
	case SMTPC_EX_FINAL:
		return smtpc_final_reply(c, ev);
	case SMTPC_EX_SWALLOW:
		smtpc_finish(c);
		return SMTPC_STEP_AGAIN;
	}
	SL_ASSERT(!"unknown expect");
	return SMTPC_STEP_AGAIN;
}

/* A complete reply in c->r: act on it. */
static enum smtpc_step
smtpc_reply(struct sl_smtp_client *c, struct sl_smtpc_ev *ev, struct sl_buf *out)
{
	unsigned cls = c->r.code / 100;
	bool is_refusal = cls == 4 || cls == 5;

	if (c->state == SMTPC_ST_QUIT) {
		/* Whatever the code: the session is over (RFC 5321 §4.1.1.10). */
		c->state = SMTPC_ST_CLOSED;
		smtpc_ev_reply(ev, SL_SMTPC_EV_CLOSED, &c->r);
		return SMTPC_STEP_EVENT;
	}
	/* RFC 5321 §3.8: 421 at any time means the server is closing. */
	if (c->r.code == 421)
		return smtpc_fail_reply(c, ev, out);
	if (cls == 3 && !(c->state == SMTPC_ST_TXN && c->expect == SMTPC_EX_DATA))
		return smtpc_fail_proto(c, ev, "unexpected 3xx reply");
	switch (c->state) {
	case SMTPC_ST_GREETING:
		if (is_refusal)
			return smtpc_fail_reply(c, ev, out);
		sl_buf_printf(out, "%s %s\r\n", c->conf.is_lmtp ? "LHLO" : "EHLO",
			      c->conf.helo_name);
		c->state = SMTPC_ST_EHLO;
		return SMTPC_STEP_AGAIN;
	case SMTPC_ST_EHLO:
		if (cls == 5 && !c->conf.is_lmtp) {
			/* RFC 5321 §3.2: a server that does not know EHLO gets HELO. */
			memset(&c->caps, 0, sizeof(c->caps));
			sl_buf_printf(out, "HELO %s\r\n", c->conf.helo_name);
			c->state = SMTPC_ST_HELO;
			return SMTPC_STEP_AGAIN;
		}
		if (is_refusal)
			return smtpc_fail_reply(c, ev, out);
		c->caps.is_esmtp = true;
		c->state = SMTPC_ST_READY;
		c->is_ready_pending = true;
		return SMTPC_STEP_AGAIN;
	case SMTPC_ST_HELO:
		if (is_refusal)
			return smtpc_fail_reply(c, ev, out);
		c->state = SMTPC_ST_READY;
		c->is_ready_pending = true;
		return SMTPC_STEP_AGAIN;
	case SMTPC_ST_READY:
		return smtpc_fail_proto(c, ev, "unexpected reply");
	case SMTPC_ST_TXN:
		return smtpc_txn_reply(c, ev, out);
	case SMTPC_ST_RSET:
		if (is_refusal)
			return smtpc_fail_reply(c, ev, out);
		c->is_txn_open = false;
		c->state = SMTPC_ST_READY;
		smtpc_ev_reply(ev, SL_SMTPC_EV_READY, &c->r);
		return SMTPC_STEP_EVENT;
	case SMTPC_ST_QUIT:
	case SMTPC_ST_BODY:
	case SMTPC_ST_FAILED:
	case SMTPC_ST_CLOSED:
		break;
	}
	SL_ASSERT(!"reply read in a state that reads none");
	return SMTPC_STEP_AGAIN;
}

/*
 * One reply line from `in` (RFC 5321 §4.2: Reply-code [ ("-" / SP) textstring ] CRLF,
 * the code %x32-35 %x30-35 %x30-39).  Consumes the line when it is complete.
 */
static enum smtpc_step
smtpc_step_line(struct sl_smtp_client *c, const char *in, size_t in_len, size_t *used,
		struct sl_smtpc_ev *ev, struct sl_buf *out)
{
	struct smtpc_reply *r = &c->r;
	size_t look = in_len < SL_SMTPC_MAX_LINE ? in_len : SL_SMTPC_MAX_LINE;
	const char *lf = memchr(in, '\n', look);
	const unsigned char *u = (const unsigned char *)in;
	const char *t;
	size_t n, tlen, esc;
	unsigned code;
	bool is_more;

	if (lf == NULL) {
		if (in_len >= SL_SMTPC_MAX_LINE)
			return smtpc_fail_proto(c, ev, "reply line too long");
		return SMTPC_STEP_NEED;
	}
	n = (size_t)(lf - in) + 1;
	*used = n;
	if (n < 2 || in[n - 2] != '\r')
		return smtpc_fail_proto(c, ev, "reply line not ended by CRLF");
	if (n < 5 || u[0] < '2' || u[0] > '5' || u[1] < '0' || u[1] > '5' ||
	    !smtpc_is_digit(u[2]) || (n > 5 && in[3] != ' ' && in[3] != '-'))
		return smtpc_fail_proto(c, ev, "malformed reply line");
	code = (unsigned)(u[0] - '0') * 100 + (unsigned)(u[1] - '0') * 10 + (unsigned)(u[2] - '0');
	is_more = n > 5 && in[3] == '-';
	if (r->line_cnt == 0) {
		r->code = code;
		r->is_cut = false;
		r->enhanced[0] = '\0';
		r->text_len = 0;
		r->text[0] = '\0';
	} else if (code != r->code) {
		return smtpc_fail_proto(c, ev, "reply lines with different codes");
	}
	r->line_cnt++;
	t = n > 5 ? in + 4 : in + 3;
	tlen = n > 5 ? n - 6 : 0;
	/*
	 * RFC 2034 §4: the enhanced code starts the text of every line; keep
	 * the first line's and drop it (and the same code on later lines) from
	 * the text.
	 */
	esc = smtpc_esc_len(t, tlen, code);
	if (esc > 0 && (r->line_cnt == 1 ||
			(strlen(r->enhanced) == esc && memcmp(r->enhanced, t, esc) == 0))) {
		if (r->line_cnt == 1) {
			memcpy(r->enhanced, t, esc);
			r->enhanced[esc] = '\0';
		}
		t += esc;
		tlen -= esc;
		if (tlen > 0) { /* the space after the code */
			t++;
			tlen--;
		}
	}
	if (c->state == SMTPC_ST_EHLO && code / 100 == 2 && r->line_cnt > 1)
		smtpc_ehlo_line(&c->caps, t, tlen);
	smtpc_text_add(r, t, tlen);
	if (is_more) {
		if (r->line_cnt >= SL_SMTPC_MAX_REPLY_LINES)
			return smtpc_fail_proto(c, ev, "reply with too many lines");
		return SMTPC_STEP_AGAIN;
	}
	r->line_cnt = 0;
	if (r->is_cut)
		smtpc_text_trim(r);
	r->answers = smtpc_waiting(c);
	return smtpc_reply(c, ev, out);
}

/* Hand out the next queued event, if any. */
static bool
smtpc_queued(struct sl_smtp_client *c, struct sl_smtpc_ev *ev)
{
	if (c->is_emitting) {
		for (size_t i = c->emit_cursor; i < c->txn->rcpt_cnt; i++) {
			if (c->rcpt_st[i] != c->emit_st)
				continue;
			c->rcpt_st[i] = SMTPC_RS_DONE;
			c->emit_cursor = i + 1;
			smtpc_ev_reply(ev, SL_SMTPC_EV_RCPT, &c->outcome);
			ev->rcpt_idx = i;
			return true;
		}
		c->is_emitting = false;
	}
	if (c->is_done_pending) {
		c->is_done_pending = false;
		if (c->accepted_cnt == 0 && !c->is_mail_refused) {
			ev->kind = SL_SMTPC_EV_DONE;
			ev->text = "no recipient accepted";
		} else {
			smtpc_ev_reply(ev, SL_SMTPC_EV_DONE, &c->outcome);
		}
		ev->bytes_sent = c->is_content_sent ? c->content_len : 0;
		if (c->is_mail_sent)
			c->txn_cnt++;
		c->txn = NULL;
		c->state = SMTPC_ST_READY;
		c->is_ready_pending = true;
		return true;
	}
	if (c->is_ready_pending) {
		c->is_ready_pending = false;
		ev->kind = SL_SMTPC_EV_READY;
		return true;
	}
	if (c->is_body_pending) {
		c->is_body_pending = false;
		c->state = SMTPC_ST_BODY;
		ev->kind = SL_SMTPC_EV_BODY;
		return true;
	}
	return false;
}

/* ------------------------------------------------------------ the interface */

struct sl_smtp_client *
sl_smtp_client_new(const struct sl_smtp_client_conf *conf)
{
	struct sl_smtp_client *c;

	SL_ASSERT(conf != NULL && conf->helo_name != NULL && conf->helo_name[0] != '\0');
	SL_ASSERT(!smtpc_has_ctl(conf->helo_name));
	c = SL_NEW(c);
	c->magic = SMTP_CLIENT_MAGIC;
	c->conf = *conf;
	c->state = SMTPC_ST_GREETING;
	return c;
}

void
sl_smtp_client_free(struct sl_smtp_client *c)
{
	if (c == NULL)
		return;
	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	c->magic = 0;
	sl_free(c);
}

enum sl_smtpc_ev_kind
sl_smtp_client_next(struct sl_smtp_client *c, const char *in, size_t in_len, size_t *used,
		    struct sl_smtpc_ev *ev, struct sl_buf *out)
{
	size_t off = 0;

	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	SL_ASSERT(in != NULL || in_len == 0);
	SL_ASSERT(used != NULL && ev != NULL && out != NULL);
	if (in == NULL)
		in = ""; /* memchr() wants a pointer even for 0 octets */
	memset(ev, 0, sizeof(*ev));
	ev->text = "";
	for (;;) {
		enum smtpc_step rc;
		size_t n = 0;

		if (smtpc_queued(c, ev))
			break;
		if (c->state == SMTPC_ST_BODY || c->state == SMTPC_ST_FAILED ||
		    c->state == SMTPC_ST_CLOSED)
			break;
		rc = smtpc_step_line(c, in + off, in_len - off, &n, ev, out);
		off += n;
		SL_ASSERT(off <= in_len);
		if (rc != SMTPC_STEP_AGAIN)
			break;
	}
	*used = off;
	return ev->kind;
}

/* Refuse the whole transaction here: every recipient gets `outcome`, then DONE. */
static void
smtpc_refuse_local(struct sl_smtp_client *c, unsigned code, const char *esc, const char *text)
{
	smtpc_reply_set(&c->outcome, code, esc, text);
	c->is_mail_refused = true;
	smtpc_emit_all(c, SMTPC_RS_WAIT);
	smtpc_finish(c);
}

void
sl_smtp_client_send(struct sl_smtp_client *c, const struct sl_smtp_client_txn *txn,
		    struct sl_buf *out)
{
	size_t sendable = 0, bad = 0;
	char text[128];

	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	SL_ASSERT(c->state == SMTPC_ST_READY);
	SL_ASSERT(txn != NULL && txn->sender != NULL && txn->rcpts != NULL);
	SL_ASSERT(txn->rcpt_cnt >= 1 && txn->rcpt_cnt <= SL_SMTPC_MAX_RCPTS);
	c->is_ready_pending = false;
	c->state = SMTPC_ST_TXN;
	c->txn = txn;
	c->is_pipelined = c->conf.use_pipelining && c->caps.has_pipelining;
	c->is_bdat = c->conf.use_chunking && c->caps.has_chunking;
	c->is_utf8 = txn->is_smtputf8 || smtpc_has_8bit(txn->sender);
	c->is_mail_sent = false;
	c->is_mail_refused = false;
	c->has_iov = false;
	c->is_content_sent = false;
	c->has_final_refusal = false;
	c->rcpt_cursor = 0;
	c->accepted_cnt = 0;
	c->final_left = 0;
	c->final_cursor = 0;
	c->content_len = 0;
	for (size_t i = 0; i < txn->rcpt_cnt; i++) {
		SL_ASSERT(txn->rcpts[i] != NULL);
		if (smtpc_has_ctl(txn->rcpts[i])) {
			c->rcpt_st[i] = SMTPC_RS_BAD;
			bad++;
			continue;
		}
		c->rcpt_st[i] = SMTPC_RS_WAIT;
		sendable++;
		if (!c->is_utf8 && smtpc_has_8bit(txn->rcpts[i]))
			c->is_utf8 = true;
	}

	/* What the server cannot take is refused here, without a word to it. */
	if (smtpc_has_ctl(txn->sender)) {
		for (size_t i = 0; i < txn->rcpt_cnt; i++)
			c->rcpt_st[i] = SMTPC_RS_WAIT;
		smtpc_refuse_local(c, 501, "5.1.7", "sender address with control characters");
		return;
	}
	if (c->caps.has_size && c->caps.size_limit > 0 && txn->size > c->caps.size_limit) {
		/* RFC 1870 §6.1: do not send what the server said it cannot take. */
		for (size_t i = 0; i < txn->rcpt_cnt; i++)
			c->rcpt_st[i] = SMTPC_RS_WAIT;
		snprintf(text, sizeof(text), "message size %llu exceeds the server's limit of %llu",
			 (unsigned long long)txn->size, (unsigned long long)c->caps.size_limit);
		smtpc_refuse_local(c, 552, "5.3.4", text);
		return;
	}
	if (c->is_utf8 && !c->caps.has_smtputf8) {
		/* RFC 6531 §3.2: no SMTPUTF8 envelope or content to a server without it. */
		for (size_t i = 0; i < txn->rcpt_cnt; i++)
			c->rcpt_st[i] = SMTPC_RS_WAIT;
		smtpc_refuse_local(c, 553, "5.6.7", "the server does not offer SMTPUTF8");
		return;
	}
	if (bad > 0) {
		smtpc_reply_set(&c->outcome, 501, "5.1.3",
				"recipient address with control characters");
		smtpc_emit_all(c, SMTPC_RS_BAD);
	}
	if (sendable == 0) {
		smtpc_finish(c); /* DONE "no recipient accepted" after the RCPT events */
		return;
	}

	c->rcpt_left = sendable;
	c->is_mail_sent = true;
	if (c->is_txn_open) {
		/* RFC 5321 §4.1.1.5: the last transaction may still be open on the server. */
		sl_buf_puts(out, "RSET\r\n");
		c->expect = SMTPC_EX_RSET;
		if (!c->is_pipelined)
			return;
	} else {
		c->expect = SMTPC_EX_MAIL;
	}
	smtpc_put_mail(c, out);
	if (!c->is_pipelined)
		return;
	for (size_t i = 0; i < txn->rcpt_cnt; i++)
		if (c->rcpt_st[i] == SMTPC_RS_WAIT)
			smtpc_put_rcpt(c, i, out);
	/*
	 * RFC 2920 §3.1: DATA ends a group; BDAT and its content may follow the
	 * RCPTs at once (RFC 3030 §4.2), so the content goes before any reply.
	 */
	if (c->is_bdat)
		c->is_body_pending = true;
	else
		sl_buf_puts(out, "DATA\r\n");
}

/* Append one iovec when there is room; count it either way. */
static void
smtpc_iov_put(struct iovec *iov, size_t max, size_t *n, const char *base, size_t len)
{
	if (len == 0)
		return;
	if (*n < max) {
		iov[*n].iov_base = (void *)base;
		iov[*n].iov_len = len;
	}
	(*n)++;
}

size_t
sl_smtp_client_body_iov(struct sl_smtp_client *c, const struct iovec *content, size_t cnt,
			struct iovec *iov, size_t max)
{
	bool is_bol = true; /* at the start of a line: the start, or after CRLF */
	bool is_cr = false; /* the octet before was CR */
	uint64_t total = 0;
	size_t n = 0;

	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	SL_ASSERT(c->state == SMTPC_ST_BODY);
	SL_ASSERT(content != NULL || cnt == 0);
	SL_ASSERT(iov != NULL || max == 0);
	c->has_iov = true;
	if (c->is_bdat) {
		/* RFC 3030 §2: one chunk of exactly the content, unstuffed. */
		for (size_t k = 0; k < cnt; k++)
			total += content[k].iov_len;
		snprintf(c->bdat_hdr, sizeof(c->bdat_hdr), "BDAT %llu LAST\r\n",
			 (unsigned long long)total);
		smtpc_iov_put(iov, max, &n, c->bdat_hdr, strlen(c->bdat_hdr));
		for (size_t k = 0; k < cnt; k++)
			smtpc_iov_put(iov, max, &n, content[k].iov_base, content[k].iov_len);
		c->content_len = total;
		return n;
	}
	/*
	 * RFC 5321 §4.5.2: a line that starts with "." gets one more.  Lines
	 * start after CRLF only: the stored content has CRLF line ends, and a
	 * bare LF is no line end to a strict server.
	 */
	for (size_t k = 0; k < cnt; k++) {
		const char *base = content[k].iov_base, *end = base + content[k].iov_len;
		const char *seg = base, *p = base;

		if (base == end)
			continue;
		total += content[k].iov_len;
		if (is_bol && *base == '.')
			smtpc_iov_put(iov, max, &n, smtpc_dot, 1);
		while (p < end && (p = memmem(p, (size_t)(end - p), "\n.", 2)) != NULL) {
			bool is_crlf = p > base ? p[-1] == '\r' : is_cr;

			if (is_crlf) {
				smtpc_iov_put(iov, max, &n, seg, (size_t)(p + 1 - seg));
				smtpc_iov_put(iov, max, &n, smtpc_dot, 1);
				seg = p + 1;
			}
			p += 2;
		}
		smtpc_iov_put(iov, max, &n, seg, (size_t)(end - seg));
		is_bol = end[-1] == '\n' && (end - base >= 2 ? end[-2] == '\r' : is_cr);
		is_cr = end[-1] == '\r';
	}
	/* The content's last line ends before the terminating "." (RFC 5321 §4.1.1.4). */
	if (is_bol)
		smtpc_iov_put(iov, max, &n, smtpc_eod + 2, 3);
	else
		smtpc_iov_put(iov, max, &n, smtpc_eod, 5);
	c->content_len = total;
	return n;
}

void
sl_smtp_client_body_done(struct sl_smtp_client *c)
{
	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	SL_ASSERT(c->state == SMTPC_ST_BODY && c->has_iov);
	c->state = SMTPC_ST_TXN;
	c->is_content_sent = true;
	/* Pipelined BDAT went out before any reply: those come first. */
	if (!(c->is_bdat && c->is_pipelined)) {
		c->expect = SMTPC_EX_FINAL;
		c->final_left = c->conf.is_lmtp ? c->accepted_cnt : 1;
	}
}

void
sl_smtp_client_rset(struct sl_smtp_client *c, struct sl_buf *out)
{
	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	SL_ASSERT(c->state == SMTPC_ST_READY);
	c->is_ready_pending = false;
	sl_buf_puts(out, "RSET\r\n");
	c->state = SMTPC_ST_RSET;
}

void
sl_smtp_client_quit(struct sl_smtp_client *c, struct sl_buf *out)
{
	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	SL_ASSERT(c->state == SMTPC_ST_READY);
	c->is_ready_pending = false;
	sl_buf_puts(out, "QUIT\r\n");
	c->state = SMTPC_ST_QUIT;
}

enum sl_smtpc_wait
sl_smtp_client_waiting_for(const struct sl_smtp_client *c)
{
	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	if (c->is_emitting || c->is_done_pending || c->is_ready_pending || c->is_body_pending)
		return SL_SMTPC_WAIT_NONE; /* events to hand out first */
	return smtpc_waiting(c);
}

const struct sl_smtp_client_caps *
sl_smtp_client_caps(const struct sl_smtp_client *c)
{
	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	return &c->caps;
}

unsigned
sl_smtp_client_txn_cnt(const struct sl_smtp_client *c)
{
	SL_CHECK_OBJ(c, SMTP_CLIENT_MAGIC);
	return c->txn_cnt;
}
