/*
 * test/unit/test_smtp_server.c - the ESMTP server machine (proto/smtp_server.c).
 *
 * Table-driven: each case is a conf, the client's bytes, the verdicts to
 * give (in order; an exhausted list accepts), and the exact reply
 * transcript and event sequence expected.  Every case runs with the input
 * whole, byte by byte, and (when short) split in two at every position;
 * all runs must give the same transcript and events (consecutive BODY
 * events are merged, so only the content is compared).
 *
 * Threads: one.  Parses nothing itself.  Ownership: each run frees what it
 * made.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "proto/smtp_server.h"

/* Conf switches; the base has ESC, 8BITMIME, SMTPUTF8, CHUNKING and <> allowed. */
enum {
	F_NOESC = 1u << 0,
	F_NO8BIT = 1u << 1,
	F_NOUTF8 = 1u << 2,
	F_NOCHUNK = 1u << 3,
	F_NONULL = 1u << 4,
	F_REQEHLO = 1u << 5,
	F_TRAILWS = 1u << 6,
	F_XCLIENT = 1u << 7,
	F_XREMOTEIP = 1u << 8,
	F_XDUMP = 1u << 9,
	F_TLS = 1u << 10,
	F_WAIT = 1u << 11, /* log sl_smtp_server_waiting_for() at the end */
};

struct verdict {
	char op; /* 'A' accept, 'R' reject, 'L' reply_lines (text: lines split by '\n') */
	unsigned code;
	const char *esc;
	const char *text;
};

struct tcase {
	const char *name;
	unsigned flags;
	uint64_t size;
	unsigned rcpt_msg, rcpt_sess, msgs, errors;
	enum sl_smtp_bare_eol body, hdr;
	const char *banner;
	const char *in;
	size_t in_len;          /* 0: strlen(in) */
	struct verdict connect; /* op 'R': refuse at connect */
	struct verdict v[12];
	char final; /* 'T' timeout, 'S' shutdown, after the input */
	const char *out;
	const char *ev;
};

#define BANNER "220 mx.example ESMTP\r\n"
#define EHLO_REPLY                                                                         \
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" \
	"250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_REPLY_TLS                                                                     \
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" \
	"250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define GO      "354 End data with <CR><LF>.<CR><LF>\r\n"
#define OK      "250 2.0.0 Ok\r\n"
#define BYE     "221 2.0.0 mx.example closing connection\r\n"

/* A transaction up to the 354. */
#define TX_IN  "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
#define TX_OUT BANNER EHLO_REPLY OK_MAIL OK_RCPT GO
#define TX_EV  "HELO ehlo c.example\nMAIL a@x.example\nRCPT b@y.example\nDATA\n"
/* The same with HELO (whose reply does not show the SIZE limit). */
#define TH_IN  "HELO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
#define TH_OUT BANNER "250 mx.example\r\n" OK_MAIL OK_RCPT GO
#define TH_EV  "HELO helo c.example\nMAIL a@x.example\nRCPT b@y.example\nDATA\n"
/* Up to the first BDAT. */
#define TB_IN  "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
#define TB_OUT BANNER EHLO_REPLY OK_MAIL OK_RCPT
#define TB_EV  "HELO ehlo c.example\nMAIL a@x.example\nRCPT b@y.example\n"

#define BARE_REFUSED                                                                        \
	"550 5.6.0 Message refused: bare CR or LF in message content; lines must end with " \
	"CRLF (SMTP smuggling protection)\r\n"
#define BARE_EV "EOM defects=4 550\nRSET\n"

/* ------------------------------------------------------------ the driver */

static void
conf_for(const struct tcase *t, struct sl_smtp_server_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->hostname = "mx.example";
	c->greeting = "ESMTP";
	c->static_banner = t->banner;
	c->message_size = t->size;
	c->max_rcpt_per_message = t->rcpt_msg;
	c->max_rcpt_per_session = t->rcpt_sess;
	c->max_msgs_per_session = t->msgs;
	c->max_errors = t->errors;
	c->body_bare_eol = t->body;
	c->header_bare_eol = t->hdr;
	c->require_ehlo = t->flags & F_REQEHLO;
	c->allow_null_sender = !(t->flags & F_NONULL);
	c->allow_trailing_ws = t->flags & F_TRAILWS;
	c->has_8bitmime = !(t->flags & F_NO8BIT);
	c->has_smtputf8 = !(t->flags & F_NOUTF8);
	c->has_chunking = !(t->flags & F_NOCHUNK);
	c->has_enhancedstatuscodes = !(t->flags & F_NOESC);
	c->has_xclient = t->flags & F_XCLIENT;
	c->has_xremoteip = t->flags & F_XREMOTEIP;
	c->has_xdumpcontext = t->flags & F_XDUMP;
	c->has_starttls = t->flags & F_TLS;
}

/* C-escape for readable diffs. */
static void
escape(struct sl_buf *b, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\r')
			sl_buf_puts(b, "\\r");
		else if (ch == '\n')
			sl_buf_puts(b, "\\n");
		else if (ch == '\\')
			sl_buf_puts(b, "\\\\");
		else if (ch < 32 || ch > 126)
			sl_buf_printf(b, "\\x%02x", ch);
		else
			sl_buf_append(b, p + i, 1);
	}
}

static const char *const ev_names[] = {
	[SL_SMTP_EV_NONE] = "NONE",
	[SL_SMTP_EV_HELO] = "HELO",
	[SL_SMTP_EV_MAIL] = "MAIL",
	[SL_SMTP_EV_RCPT] = "RCPT",
	[SL_SMTP_EV_DATA] = "DATA",
	[SL_SMTP_EV_BODY] = "BODY",
	[SL_SMTP_EV_EOM] = "EOM",
	[SL_SMTP_EV_RSET] = "RSET",
	[SL_SMTP_EV_XCLIENT] = "XCLIENT",
	[SL_SMTP_EV_XREMOTEIP] = "XREMOTEIP",
	[SL_SMTP_EV_XDUMPCONTEXT] = "XDUMPCONTEXT",
	[SL_SMTP_EV_STARTTLS] = "STARTTLS",
	[SL_SMTP_EV_QUIT] = "QUIT",
	[SL_SMTP_EV_CLOSE] = "CLOSE",
	[SL_SMTP_EV_REJECT] = "REJECT",
};

static const char *const wait_names[] = {
	[SL_SMTP_WAIT_HELO] = "helo", [SL_SMTP_WAIT_MAIL] = "mail",
	[SL_SMTP_WAIT_RCPT] = "rcpt", [SL_SMTP_WAIT_BODY] = "body",
	[SL_SMTP_WAIT_RSET] = "rset", [SL_SMTP_WAIT_VERDICT] = "verdict",
};

/* One line per event, BODY excluded (merged by the caller). */
static void
ev_log(struct sl_buf *b, const struct sl_smtp_ev *ev)
{
	sl_buf_puts(b, ev_names[ev->kind]);
	switch (ev->kind) {
	case SL_SMTP_EV_HELO:
		sl_buf_printf(b, " %s %s", ev->is_ehlo ? "ehlo" : "helo", ev->arg);
		break;
	case SL_SMTP_EV_MAIL:
		sl_buf_puts(b, " ");
		escape(b, ev->arg, ev->arg_len);
		if (ev->declared_size)
			sl_buf_printf(b, " size=%llu", (unsigned long long)ev->declared_size);
		if (ev->body)
			sl_buf_printf(b, " body=%s",
				      ev->body == SL_SMTP_BODY_7BIT ? "7bit" : "8bitmime");
		if (ev->is_smtputf8)
			sl_buf_puts(b, " smtputf8");
		break;
	case SL_SMTP_EV_RCPT:
	case SL_SMTP_EV_XREMOTEIP:
		sl_buf_puts(b, " ");
		escape(b, ev->arg, ev->arg_len);
		break;
	case SL_SMTP_EV_DATA:
		if (ev->is_bdat)
			sl_buf_puts(b, " bdat");
		break;
	case SL_SMTP_EV_EOM:
		if (ev->defects)
			sl_buf_printf(b, " defects=%u %u", ev->defects, ev->reply_code);
		else
			sl_buf_printf(b, " len=%llu", (unsigned long long)ev->message_len);
		if (ev->has_date_header)
			sl_buf_puts(b, " date");
		if (ev->has_message_id_header)
			sl_buf_puts(b, " msgid");
		break;
	case SL_SMTP_EV_XCLIENT:
		for (size_t i = 0; i < ev->xclient_cnt; i++) {
			sl_buf_printf(b, " %s=", ev->xclient[i].name);
			escape(b, ev->xclient[i].value, strlen(ev->xclient[i].value));
		}
		break;
	case SL_SMTP_EV_STARTTLS:
		if (ev->has_pipelined_input)
			sl_buf_puts(b, " pipelined");
		break;
	case SL_SMTP_EV_REJECT:
	case SL_SMTP_EV_CLOSE:
		sl_buf_printf(b, " %u %s", ev->reply_code, ev->arg);
		break;
	default:
		break;
	}
	sl_buf_puts(b, "\n");
}

static void
answer(struct sl_smtp_server *s, const struct verdict *v, struct sl_buf *out)
{
	if (v->op == 'R') {
		sl_smtp_server_reject(s, v->code, v->esc, v->text, out);
	} else if (v->op == 'L') {
		const char *lines[16];
		char buf[1024];
		size_t n = 0;

		snprintf(buf, sizeof(buf), "%s", v->text);
		for (char *p = buf, *nl; p != NULL && n < 16; p = nl) {
			nl = strchr(p, '\n');
			if (nl != NULL)
				*nl++ = '\0';
			lines[n++] = p;
		}
		sl_smtp_server_reply_lines(s, lines, v->text[0] ? n : 0, out);
	} else {
		sl_smtp_server_accept(s, v->text, out);
	}
}

/* The reply's line must be one line of the transcript, and it must match reply_code. */
static void
check_reply(const struct sl_smtp_ev *ev, const struct sl_buf *out)
{
	char code[8];

	if (ev->reply == NULL)
		return;
	snprintf(code, sizeof(code), "%u", ev->reply_code);
	assert_int_equal(strncmp(ev->reply, code, 3), 0);
	assert_non_null(memmem(out->data, out->len, ev->reply, strlen(ev->reply)));
}

/*
 * Run one case.  piece == 0: the input whole; piece == 1: byte by byte;
 * piece > 1: two pieces, the first `piece` octets long.
 */
static void
run(const struct tcase *t, size_t piece, struct sl_buf *out, struct sl_buf *evs)
{
	struct sl_smtp_server_conf conf;
	struct sl_buf in = SL_BUF_INIT, body = SL_BUF_INIT;
	size_t len = t->in_len ? t->in_len : strlen(t->in), fed = 0, vi = 0;
	struct sl_smtp_server *s;

	conf_for(t, &conf);
	s = sl_smtp_server_new(&conf, out);
	if (t->connect.op) {
		sl_buf_reset(out);
		answer(s, &t->connect, out);
	}
	for (int guard = 0; guard < 1000000; guard++) {
		struct sl_smtp_ev ev;
		size_t used = 0;
		enum sl_smtp_ev_kind k = sl_smtp_server_next(s, in.data, in.len, &used, &ev, out);

		assert_int_equal(k, ev.kind);
		assert_true(used <= in.len);
		if (k == SL_SMTP_EV_BODY) {
			assert_true(ev.data_len > 0);
			sl_buf_append(&body, ev.data, ev.data_len);
		} else if (k != SL_SMTP_EV_NONE) {
			/*
			 * How much of a refused message came out before its defect
			 * showed depends on the split; the stage drops it anyway.
			 */
			if (k == SL_SMTP_EV_EOM && ev.defects != 0)
				sl_buf_reset(&body);
			if (body.len > 0) {
				sl_buf_puts(evs, "BODY ");
				escape(evs, body.data, body.len);
				sl_buf_puts(evs, "\n");
				sl_buf_reset(&body);
			}
			if (ev.arg != NULL)
				assert_int_equal(strlen(ev.arg), ev.arg_len);
			check_reply(&ev, out);
			ev_log(evs, &ev);
		}
		sl_buf_consume(&in, used);
		if (ev.needs_verdict) {
			struct sl_smtp_ev ev2;
			size_t used2 = 1;

			/* While a verdict is pending the machine takes nothing. */
			assert_int_equal(sl_smtp_server_waiting_for(s), SL_SMTP_WAIT_VERDICT);
			assert_int_equal(sl_smtp_server_next(s, in.data, in.len, &used2, &ev2, out),
					 SL_SMTP_EV_NONE);
			assert_int_equal(used2, 0);
			if (vi < SL_ARRAY_LEN(t->v))
				answer(s, &t->v[vi++], out); /* { 0 } accepts */
			else
				sl_smtp_server_accept(s, NULL, out);
			continue;
		}
		if (k != SL_SMTP_EV_NONE || used > 0)
			continue;
		/* Nothing happened: the machine needs input (or it is closing). */
		if (sl_smtp_server_is_closing(s))
			break;
		if (fed < len) {
			size_t n = piece == 0   ? len - fed
				   : piece == 1 ? 1
				   : fed == 0   ? piece
						: len - fed;

			sl_buf_append(&in, t->in + fed, n);
			fed += n;
			continue;
		}
		break;
	}
	if (body.len > 0) {
		sl_buf_puts(evs, "BODY ");
		escape(evs, body.data, body.len);
		sl_buf_puts(evs, "\n");
	}
	if (t->flags & F_WAIT)
		sl_buf_printf(evs, "WAIT %s\n", wait_names[sl_smtp_server_waiting_for(s)]);
	if (t->final == 'T')
		sl_smtp_server_timeout(s, out);
	else if (t->final == 'S')
		sl_smtp_server_shutdown(s, out);
	if (t->final)
		assert_true(sl_smtp_server_is_closing(s));
	sl_smtp_server_free(s);
	sl_buf_free(&in);
	sl_buf_free(&body);
}

/* Drop " pipelined": whether bytes follow STARTTLS in one read depends on the split. */
static void
strip_pipelined(char *s)
{
	char *p;

	while ((p = strstr(s, " pipelined")) != NULL)
		memmove(p, p + 10, strlen(p + 10) + 1);
}

static void
check_case(const struct tcase *t)
{
	size_t len = t->in_len ? t->in_len : strlen(t->in);
	struct sl_buf eout = SL_BUF_INIT, got = SL_BUF_INIT;
	char *want_ev = sl_strdup(t->ev);

	print_message("case: %s\n", t->name);
	/* Expected transcript, escaped like the events for readable diffs. */
	escape(&eout, t->out, strlen(t->out));
	sl_buf_cstr(&eout);
	strip_pipelined(want_ev);
	for (size_t piece = 0; piece < len; piece = piece == 0 ? 1 : piece + 1) {
		struct sl_buf out = SL_BUF_INIT, evs = SL_BUF_INIT;

		if (piece > 1 && len > 600)
			break;
		run(t, piece, &out, &evs);
		escape(&got, out.data, out.len);
		if (strcmp(sl_buf_cstr(&got), eout.data) != 0)
			print_message("case %s, piece %zu: transcript differs\n", t->name, piece);
		assert_string_equal(got.data, eout.data);
		sl_buf_cstr(&evs);
		if (piece > 0)
			strip_pipelined(evs.data);
		if (strcmp(evs.data, piece > 0 ? want_ev : t->ev) != 0)
			print_message("case %s, piece %zu: events differ\n", t->name, piece);
		assert_string_equal(evs.data, piece > 0 ? want_ev : t->ev);
		sl_buf_reset(&got);
		sl_buf_free(&out);
		sl_buf_free(&evs);
	}
	sl_free(want_ev);
	sl_buf_free(&eout);
	sl_buf_free(&got);
}

static void
check_table(const struct tcase *tab, size_t n)
{
	for (size_t i = 0; i < n; i++)
		check_case(&tab[i]);
}

/* ------------------------------------------------------------ greeting, HELO, basics */

static const struct tcase basic_cases[] = {
	{ .name = "banner and QUIT", .in = "QUIT\r\n", .out = BANNER BYE, .ev = "QUIT\n" },
	{ .name = "static banner with 220",
	  .banner = "220 my.mail.server ESMTP",
	  .in = "QUIT\r\n",
	  .out = "220 my.mail.server ESMTP\r\n" BYE,
	  .ev = "QUIT\n" },
	{ .name = "static banner without 220",
	  .banner = "my.mail.server ESMTP",
	  .in = "QUIT\r\n",
	  .out = "220 my.mail.server ESMTP\r\n" BYE,
	  .ev = "QUIT\n" },
	{ .name = "static banner: just 220",
	  .banner = "220",
	  .in = "QUIT\r\n",
	  .out = "220\r\n" BYE,
	  .ev = "QUIT\n" },
	{ .name = "static banner: control characters become spaces",
	  .banner = "220 a\r\nb",
	  .in = "QUIT\r\n",
	  .out = "220 a  b\r\n" BYE,
	  .ev = "QUIT\n" },
	{ .name = "EHLO with every extension",
	  .flags = F_XCLIENT | F_XREMOTEIP | F_XDUMP | F_TLS,
	  .size = 10240000,
	  .in = "EHLO c.example\r\n",
	  .out = BANNER "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
			"250-SMTPUTF8\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
			"250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n"
			"250-XREMOTEIP\r\n250-XDUMPCONTEXT\r\n250 STARTTLS\r\n",
	  .ev = "HELO ehlo c.example\n" },
	{ .name = "EHLO with no extension but PIPELINING and SIZE",
	  .flags = F_NOESC | F_NO8BIT | F_NOUTF8 | F_NOCHUNK,
	  .in = "ehlo c.example\r\n",
	  .out = BANNER "250-mx.example\r\n250-PIPELINING\r\n250 SIZE\r\n",
	  .ev = "HELO ehlo c.example\n" },
	{ .name = "EHLO accepted with a text",
	  .in = "EHLO c.example\r\n",
	  .v = { { 'A', 0, NULL, "mx.example says EHLO to 192.0.2.1" } },
	  .out = BANNER
	  "250-mx.example says EHLO to 192.0.2.1\r\n250-PIPELINING\r\n250-SIZE\r\n"
	  "250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n",
	  .ev = "HELO ehlo c.example\n" },
	{ .name = "HELO",
	  .in = "HELO c.example\r\n",
	  .out = BANNER "250 mx.example\r\n",
	  .ev = "HELO helo c.example\n" },
	{ .name = "HELO with an address literal",
	  .in = "HELO [192.0.2.1]\r\n",
	  .out = BANNER "250 mx.example\r\n",
	  .ev = "HELO helo [192.0.2.1]\n" },
	{ .name = "EHLO/HELO without argument",
	  .in = "EHLO\r\nHELO\r\nEHLO \r\nEHLO a b\r\n",
	  .out = BANNER "501 5.5.4 Syntax: EHLO hostname\r\n501 5.5.4 Syntax: HELO hostname\r\n"
			"501 5.5.4 Syntax: EHLO hostname\r\n501 5.5.4 Syntax: EHLO hostname\r\n",
	  .ev = "REJECT 501 EHLO\nREJECT 501 HELO\nREJECT 501 EHLO\nREJECT 501 EHLO\n" },
	{ .name = "EHLO refused, then HELO",
	  .in = "EHLO c.example\r\nHELO c.example\r\n",
	  .v = { { 'R', 550, "5.7.1", "go away" } },
	  .out = BANNER "550 5.7.1 go away\r\n250 mx.example\r\n",
	  .ev = "HELO ehlo c.example\nHELO helo c.example\n" },
	{ .name = "EHLO inside a transaction resets it (RFC 5321 4.1.4)",
	  .in = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nEHLO d.example\r\nRCPT "
		"TO:<b@y.example>\r\n",
	  .out = BANNER EHLO_REPLY OK_MAIL EHLO_REPLY "503 5.5.1 Error: need MAIL command\r\n",
	  .ev = "HELO ehlo c.example\nMAIL a@x.example\nHELO ehlo d.example\nRSET\nREJECT 503 "
		"RCPT\n" },
	{ .name = "refused EHLO inside a transaction keeps it",
	  .in = "HELO c.example\r\nMAIL FROM:<a@x.example>\r\nEHLO d.example\r\nRCPT "
		"TO:<b@y.example>\r\n",
	  .v = { { 0 }, { 0 }, { 'R', 550, NULL, "no" } },
	  .out = BANNER "250 mx.example\r\n" OK_MAIL "550 5.0.0 no\r\n" OK_RCPT,
	  .ev = "HELO helo c.example\nMAIL a@x.example\nHELO ehlo d.example\nRCPT b@y.example\n" },
	{ .name = "NOOP, HELP, VRFY, EXPN, RSET",
	  .in = "NOOP\r\nNOOP anything at all\r\nHELP\r\nHELP MAIL\r\nVRFY user\r\nVRFY\r\nEXPN "
		"list\r\nRSET\r\nRSET x\r\n",
	  .out = BANNER OK OK
	  "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY\r\n"
	  "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY\r\n"
	  "252 2.5.2 Cannot VRFY user, but will accept message\r\n"
	  "501 5.5.4 Syntax: VRFY address\r\n"
	  "502 5.5.1 Error: EXPN not implemented\r\n" OK "501 5.5.4 Syntax: RSET\r\n",
	  .ev = "REJECT 501 VRFY\nREJECT 502 EXPN\nRSET\nREJECT 501 RSET\n" },
	{ .name = "commands are case-insensitive",
	  .in = "hElO c.example\r\nmail from:<a@x.example>\r\nrcpt to:<b@y.example>\r\nnoop\r\n"
		"rset\r\nquit\r\n",
	  .out = BANNER "250 mx.example\r\n" OK_MAIL OK_RCPT OK OK BYE,
	  .ev = "HELO helo c.example\nMAIL a@x.example\nRCPT b@y.example\nRSET\nQUIT\n" },
	{ .name = "unknown commands",
	  .in = "FOO\r\n\r\nMAILX FROM:<a@b.example>\r\nETRN x\r\nAUTH PLAIN\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n"
			"500 5.5.1 Error: command not recognized\r\n"
			"500 5.5.1 Error: command not recognized\r\n"
			"500 5.5.1 Error: command not recognized\r\n"
			"500 5.5.1 Error: command not recognized\r\n",
	  .ev = "REJECT 500 unknown command\nREJECT 500 unknown command\nREJECT 500 unknown "
		"command\nREJECT 500 unknown command\nREJECT 500 unknown command\n" },
	{ .name = "trailing space after a command without argument",
	  .in = "QUIT \r\nDATA \r\nRSET \r\nNOOP \r\nQUIT\r\n",
	  .out = BANNER "501 5.5.4 Syntax: QUIT\r\n503 5.5.1 Error: need MAIL command\r\n"
			"501 5.5.4 Syntax: RSET\r\n" OK BYE,
	  .ev = "REJECT 501 QUIT\nREJECT 503 DATA\nREJECT 501 RSET\nQUIT\n" },
	{ .name = "allow_trailing_ws: trailing spaces and tabs ignored",
	  .flags = F_TRAILWS,
	  .in = "EHLO c.example  \r\nMAIL FROM:<a@x.example> \t\r\nRSET   \r\nQUIT \r\n",
	  .out = BANNER EHLO_REPLY OK_MAIL OK BYE,
	  .ev = "HELO ehlo c.example\nMAIL a@x.example\nRSET\nQUIT\n" },
	{ .name = "bare LF ends a command line; a stray CR is part of the line",
	  .in = "NOOP\nHELO c.example\nNOOP\r\r\nQUIT\n",
	  .out = BANNER OK "250 mx.example\r\n500 5.5.1 Error: command not recognized\r\n" BYE,
	  .ev = "HELO helo c.example\nREJECT 500 unknown command\nQUIT\n" },
	{ .name = "CR inside a command line is a syntax error",
	  .in = "HELO c.example\r\nMAIL FROM:<a@x.example>\r\r\nQUIT\r\n",
	  .out = BANNER "250 mx.example\r\n501 5.5.4 Bad parameter syntax\r\n" BYE,
	  .ev = "HELO helo c.example\nREJECT 501 MAIL\nQUIT\n" },
	{ .name = "enhanced status codes off",
	  .flags = F_NOESC,
	  .in = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nRCPT "
		"TO:<c@y.example>\r\nDATA\r\nx\r\n.\r\nFOO\r\nVRFY x\r\nQUIT\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 'R', 550, "5.1.1", "no such user" } },
	  .out = BANNER
	  "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
	  "250-SMTPUTF8\r\n250 CHUNKING\r\n250 Ok\r\n250 Ok\r\n550 no such user\r\n" GO
	  "250 Ok\r\n500 Error: command not recognized\r\n"
	  "252 Cannot VRFY user, but will accept message\r\n"
	  "221 mx.example closing connection\r\n",
	  .ev = "HELO ehlo c.example\nMAIL a@x.example\nRCPT b@y.example\nRCPT "
		"c@y.example\nDATA\nBODY x\\r\\n\nEOM len=3\nREJECT 500 unknown command\nQUIT\n" },
	{ .name = "caller texts: defaults, bad enhanced codes, control characters",
	  .in = "HELO c.example\r\nMAIL FROM:<a@x.example>\r\nMAIL FROM:<a@x.example>\r\n"
		"MAIL FROM:<a@x.example>\r\nMAIL FROM:<a@x.example>\r\n",
	  .v = { { 0 },
		 { 'R', 550, NULL, NULL },
		 { 'R', 451, "5.1.1", "wrong class" },
		 { 'R', 550, "5.1", "bad\r\ncode" },
		 { 'R', 550, "5.7.26", "" } },
	  .out = BANNER "250 mx.example\r\n550 5.0.0 Error: command refused\r\n"
			"451 4.0.0 wrong class\r\n550 5.0.0 bad  code\r\n"
			"550 5.7.26 Error: command refused\r\n",
	  .ev = "HELO helo c.example\nMAIL a@x.example\nMAIL a@x.example\nMAIL a@x.example\nMAIL "
		"a@x.example\n" },
	{ .name = "QUIT stops the input",
	  .in = "QUIT\r\nNOOP\r\n",
	  .out = BANNER BYE,
	  .ev = "QUIT\n" },
	{ .name = "timeout before HELO",
	  .flags = F_WAIT,
	  .in = "",
	  .final = 'T',
	  .out = BANNER "421 4.4.2 mx.example Error: timeout exceeded\r\n",
	  .ev = "WAIT helo\n" },
	{ .name = "timeout in DATA without enhanced codes",
	  .flags = F_WAIT | F_NOESC,
	  .in = "HELO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT "
		"TO:<b@y.example>\r\nDATA\r\nhalf",
	  .final = 'T',
	  .out = BANNER "250 mx.example\r\n250 Ok\r\n250 Ok\r\n" GO
			"421 mx.example Error: timeout exceeded\r\n",
	  .ev = "HELO helo c.example\nMAIL a@x.example\nRCPT b@y.example\nDATA\nBODY half\nWAIT "
		"body\n" },
	{ .name = "shutdown",
	  .flags = F_WAIT,
	  .in = "HELO c.example\r\n",
	  .final = 'S',
	  .out = BANNER "250 mx.example\r\n421 4.3.2 mx.example Service shutting down\r\n",
	  .ev = "HELO helo c.example\nWAIT mail\n" },
	{ .name = "waiting for: rcpt",
	  .flags = F_WAIT,
	  .in = "HELO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n",
	  .out = BANNER "250 mx.example\r\n" OK_MAIL OK_RCPT,
	  .ev = "HELO helo c.example\nMAIL a@x.example\nRCPT b@y.example\nWAIT rcpt\n" },
	{ .name = "waiting for: rset",
	  .flags = F_WAIT,
	  .in = "HELO c.example\r\nRSET\r\n",
	  .out = BANNER "250 mx.example\r\n" OK,
	  .ev = "HELO helo c.example\nRSET\nWAIT rset\n" },
	{ .name = "waiting for: between BDAT chunks",
	  .flags = F_WAIT,
	  .in = TB_IN "BDAT 2\r\nab",
	  .out = TB_OUT "250 2.0.0 Ok: 2 octets received\r\n",
	  .ev = TB_EV "DATA bdat\nBODY ab\nWAIT body\n" },
	{ .name = "waiting for: helo after a partial command",
	  .flags = F_WAIT,
	  .in = "HELO c.exa",
	  .out = BANNER,
	  .ev = "WAIT helo\n" },
	{ .name = "refused at connect with 554: 503 until QUIT (RFC 5321 3.1)",
	  .connect = { 'R', 554, "5.7.1", "no service for you" },
	  .in = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nQUIT\r\n",
	  .out = "554 5.7.1 no service for you\r\n503 5.5.1 Error: no SMTP service here\r\n"
		 "503 5.5.1 Error: no SMTP service here\r\n" BYE,
	  .ev = "REJECT 503 EHLO\nREJECT 503 MAIL\nQUIT\n" },
	{ .name = "refused at connect with 421",
	  .connect = { 'R', 421, "4.7.0", "mx.example too busy" },
	  .in = "EHLO c.example\r\n",
	  .out = "421 4.7.0 mx.example too busy\r\n",
	  .ev = "" },
	{ .name = "accepted at connect: nothing changes",
	  .connect = { 'A', 0, NULL, NULL },
	  .in = "QUIT\r\n",
	  .out = "" BYE,
	  .ev = "QUIT\n" },
};

static void
test_basic(void **state)
{
	check_table(basic_cases, SL_ARRAY_LEN(basic_cases));
}

/* ------------------------------------------------------------ MAIL and RCPT syntax */

struct addr_case {
	unsigned flags;
	const char *cmd;   /* one MAIL (or MAIL + RCPT) command line, without CRLF */
	const char *reply; /* the reply to the last command, without CRLF */
	const char *ev;    /* its event line, without "\n" */
};

#define MOK      "250 2.1.0 Ok"
#define ROK      "250 2.1.5 Ok"
#define BAD_FROM "501 5.1.7 Bad sender address syntax"
#define BAD_TO   "501 5.1.3 Bad recipient address syntax"
#define REJ_MAIL "REJECT 501 MAIL"
#define REJ_RCPT "REJECT 501 RCPT"
#define L64      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"
#define L62      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij"
#define D63      "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk"
/* 63 + 1 + 63 + 1 + 63 + 1 + 63 = 255 */
#define D255     D63 "." D63 "." D63 "." D63
/* "<a@" + 252 + ">" = 256 */
#define D252     D63 "." D63 "." D63 ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefgh"

static const struct addr_case mail_cases[] = {
	{ 0, "MAIL FROM:<a@b.example>", MOK, "MAIL a@b.example" },
	{ 0, "MAIL FROM: <a@b.example>", MOK, "MAIL a@b.example" },
	{ 0, "MAIL FROM:  <a@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:a@b.example", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example>>", "501 5.5.4 Bad parameter syntax", REJ_MAIL },
	{ 0, "MAIL FROM:", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<>", MOK, "MAIL " },
	{ F_NONULL, "MAIL FROM:<>", "553 5.1.7 Null sender not allowed", "REJECT 553 MAIL" },
	{ 0, "MAIL FROM:<@r1.example,@r2.example:a@b.example>", MOK, "MAIL a@b.example" },
	{ 0, "MAIL FROM:<@r1.example:a@b.example>", MOK, "MAIL a@b.example" },
	{ 0, "MAIL FROM:<@[192.0.2.1]:a@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<@r1.example,a@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<@r1.example:>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<\"john doe\"@b.example>", MOK, "MAIL \"john doe\"@b.example" },
	{ 0, "MAIL FROM:<\"a\\\"b\"@b.example>", MOK, "MAIL \"a\\\\\"b\"@b.example" },
	{ 0, "MAIL FROM:<\"a>b\"@b.example>", MOK, "MAIL \"a>b\"@b.example" },
	{ 0, "MAIL FROM:<\"\"@b.example>", MOK, "MAIL \"\"@b.example" },
	{ 0, "MAIL FROM:<\"open@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<\"a\tb\"@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<\"a\\\tb\"@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<\"a\\", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[192.0.2.1>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[IPv6:" D63 "]>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<@" D255 "x:a@b.example>", "501 5.1.7 Sender address too long", REJ_MAIL },
	{ 0, "MAIL FROM:<@-r.example:a@b.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[192.0.2.1]>", MOK, "MAIL a@[192.0.2.1]" },
	{ 0, "MAIL FROM:<a@[256.0.2.1]>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[192.0.2]>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[192.0.2.1.5]>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[IPv6:2001:db8::1]>", MOK, "MAIL a@[IPv6:2001:db8::1]" },
	{ 0, "MAIL FROM:<a@[ipv6:::ffff:192.0.2.1]>", MOK, "MAIL a@[ipv6:::ffff:192.0.2.1]" },
	{ 0, "MAIL FROM:<a@[IPv6:2001:db8::g]>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[x-tag:stuff]>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@[]>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a.b+c=d@e-f.example>", MOK, "MAIL a.b+c=d@e-f.example" },
	{ 0, "MAIL FROM:<a..b@d.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<.a@d.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a.@d.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a(b)@d.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@-d.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@d-.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@d..example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@d.example.>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@d_e.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<postmaster>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<a@b c.example>", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:< a@b.example >", BAD_FROM, REJ_MAIL },
	{ F_TRAILWS, "MAIL FROM:< a@b.example >", MOK, "MAIL a@b.example" },
	{ F_TRAILWS, "MAIL FROM:<  >", MOK, "MAIL " },
	{ F_TRAILWS, "MAIL FROM:<a@b.example>  ", MOK, "MAIL a@b.example" },
	{ 0, "MAIL FROM:<a@b.example> ", "501 5.5.4 Bad parameter syntax", REJ_MAIL },
	{ 0, "MAIL TO:<a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>", REJ_MAIL },
	{ 0, "MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>", REJ_MAIL },
	{ 0, "MAIL FROM<a@b.example>", "501 5.5.4 Syntax: MAIL FROM:<address>", REJ_MAIL },
	{ 0, "mail from:<a@b.example>", MOK, "MAIL a@b.example" },
	/* Limits: RFC 5321 §4.5.3.1.1-3. */
	{ 0, "MAIL FROM:<" L64 "@b.example>", MOK, "MAIL " L64 "@b.example" },
	{ 0, "MAIL FROM:<" L64 "m@b.example>", "501 5.1.7 Sender address too long", REJ_MAIL },
	{ 0, "MAIL FROM:<a@" D252 ">", MOK, "MAIL a@" D252 },
	{ 0, "MAIL FROM:<a@" D252 "x>", "501 5.1.7 Sender address too long", REJ_MAIL },
	{ 0, "MAIL FROM:<a@" D255 ">", "501 5.1.7 Sender address too long", REJ_MAIL },
	{ 0, "MAIL FROM:<a@" D255 "x>", "501 5.1.7 Sender address too long", REJ_MAIL },
	{ 0, "MAIL FROM:<a@" D63 "l." D63 ">", BAD_FROM, REJ_MAIL }, /* a 64-octet label */
	/* path = "<" + 62 + "@" + 191 + ">" = 256 */
	{ 0, "MAIL FROM:<" L62 "@" D63 "." D63 "." D63 ">", MOK,
	  "MAIL " L62 "@" D63 "." D63 "." D63 },
	{ 0, "MAIL FROM:<" L62 "x@" D63 "." D63 "." D63 ">", "501 5.1.7 Sender address too long",
	  REJ_MAIL },
	{ 0, "MAIL FROM:<@" D63 ":" L64 "@" D63 "." D63 ">", "501 5.1.7 Sender address too long",
	  REJ_MAIL },
	/* Parameters. */
	{ 0, "MAIL FROM:<a@b.example> SIZE=1000", MOK, "MAIL a@b.example size=1000" },
	{ 0, "MAIL FROM:<a@b.example>   SIZE=1000", MOK, "MAIL a@b.example size=1000" },
	{ 0, "MAIL FROM:<a@b.example> size=1000 BODY=8bitmime SMTPUTF8", MOK,
	  "MAIL a@b.example size=1000 body=8bitmime smtputf8" },
	{ 0, "MAIL FROM:<a@b.example> SIZE=", "501 5.5.4 Bad parameter syntax", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> SIZE", "501 5.5.4 Bad SIZE parameter", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> SIZE=1k", "501 5.5.4 Bad SIZE parameter", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> SIZE=18446744073709551615", MOK,
	  "MAIL a@b.example size=18446744073709551615" },
	{ 0, "MAIL FROM:<a@b.example> SIZE=18446744073709551616", "501 5.5.4 Bad SIZE parameter",
	  REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4 Bad SIZE parameter", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> BODY=7BIT", MOK, "MAIL a@b.example body=7bit" },
	{ 0, "MAIL FROM:<a@b.example> BODY=8BITMIME", MOK, "MAIL a@b.example body=8bitmime" },
	{ F_NO8BIT, "MAIL FROM:<a@b.example> BODY=8BITMIME",
	  "555 5.5.4 Unsupported option: BODY=8BITMIME", "REJECT 555 MAIL" },
	{ 0, "MAIL FROM:<a@b.example> BODY=BINARYMIME",
	  "555 5.5.4 Unsupported option: BODY=BINARYMIME", "REJECT 555 MAIL" },
	{ 0, "MAIL FROM:<a@b.example> BODY=9BIT", "501 5.5.4 Bad BODY parameter", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> BODY", "501 5.5.4 Bad BODY parameter", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> BODY=7BIT BODY=7BIT", "501 5.5.4 Bad BODY parameter",
	  REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> SMTPUTF8", MOK, "MAIL a@b.example smtputf8" },
	{ 0, "MAIL FROM:<a@b.example> SMTPUTF8=yes", "501 5.5.4 Bad SMTPUTF8 parameter", REJ_MAIL },
	{ F_NOUTF8, "MAIL FROM:<a@b.example> SMTPUTF8", "555 5.5.4 Unsupported option: SMTPUTF8",
	  "REJECT 555 MAIL" },
	{ 0, "MAIL FROM:<a@b.example> AUTH=<>", "555 5.5.4 Unsupported option: AUTH",
	  "REJECT 555 MAIL" },
	{ 0, "MAIL FROM:<a@b.example> X-ONE", "555 5.5.4 Unsupported option: X-ONE",
	  "REJECT 555 MAIL" },
	{ 0, "MAIL FROM:<a@b.example> =1", "501 5.5.4 Bad parameter syntax", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> A_B=1", "501 5.5.4 Bad parameter syntax", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> A=b=c", "501 5.5.4 Bad parameter syntax", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> SIZE=1 A B C D E F G H I J K L M N O",
	  "555 5.5.4 Unsupported option: A", "REJECT 555 MAIL" },
	{ 0, "MAIL FROM:<a@b.example> SIZE=1 A B C D E F G H I J K L M N O P",
	  "501 5.5.4 Too many parameters", REJ_MAIL },
	{ 0, "MAIL FROM:<a@b.example> SIZE=99999999999 BODY=7BIT", MOK,
	  "MAIL a@b.example size=99999999999 body=7bit" },
	/* Internationalised addresses (RFC 6531). */
	{ 0, "MAIL FROM:<\xc3\xbc@b.example>",
	  "553 5.6.7 Non-ASCII addresses not permitted for that sender", "REJECT 553 MAIL" },
	{ 0, "MAIL FROM:<\xc3\xbc@b.example> SMTPUTF8", MOK, "MAIL \\xc3\\xbc@b.example smtputf8" },
	{ 0, "MAIL FROM:<a@\xc3\xbc.example> SMTPUTF8", MOK, "MAIL a@\\xc3\\xbc.example smtputf8" },
	{ 0, "MAIL FROM:<\"\xc3\xbc\"@b.example> SMTPUTF8", MOK,
	  "MAIL \"\\xc3\\xbc\"@b.example smtputf8" },
	{ 0, "MAIL FROM:<\xe2\x82\xac\xf0\x9f\x93\xa7@b.example> SMTPUTF8", MOK,
	  "MAIL \\xe2\\x82\\xac\\xf0\\x9f\\x93\\xa7@b.example smtputf8" },
	{ 0, "MAIL FROM:<\xe0\xa4\x85\xf4\x8f\xbf\xbf@b.example> SMTPUTF8", MOK,
	  "MAIL \\xe0\\xa4\\x85\\xf4\\x8f\\xbf\\xbf@b.example smtputf8" },
	{ 0, "MAIL FROM:<\xf4\x90\x80\x80@b.example> SMTPUTF8", BAD_FROM,
	  REJ_MAIL },                                                             /* > U+10FFFF */
	{ 0, "MAIL FROM:<\xe0\x80\x80@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL }, /* overlong */
	{ 0, "MAIL FROM:<\xf0\x9f\x93@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL }, /* cut short */
	{ 0, "MAIL FROM:<\xe2\x82\x41@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<@r\xc3\xbc.example:a@b.example> SMTPUTF8", MOK,
	  "MAIL a@b.example smtputf8" },
	{ 0, "MAIL FROM:<@r\xc3.example:a@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<@r\xc3\xbc.example:a@b.example>",
	  "553 5.6.7 Non-ASCII addresses not permitted for that sender", "REJECT 553 MAIL" },
	{ 0, "MAIL FROM:<\xff@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<\xc3@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL },
	{ 0, "MAIL FROM:<\xed\xa0\x80@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL }, /* surrogate */
	{ 0, "MAIL FROM:<\xc0\xaf@b.example> SMTPUTF8", BAD_FROM, REJ_MAIL },     /* overlong */
	{ F_NOUTF8, "MAIL FROM:<\xc3\xbc@b.example>",
	  "553 5.6.7 Non-ASCII addresses not permitted for that sender", "REJECT 553 MAIL" },
	{ 0, "MAIL FROM:<a@b.example> SIZE=1\xc3\xbc", "501 5.5.4 Bad parameter syntax", REJ_MAIL },
	/* Limits checked after syntax. */
	{ F_NONULL, "MAIL FROM:<> BODY=FOO", "501 5.5.4 Bad BODY parameter", REJ_MAIL },
};

static const struct addr_case rcpt_cases[] = {
	{ 0, "RCPT TO:<b@y.example>", ROK, "RCPT b@y.example" },
	{ 0, "RCPT TO: <b@y.example>", ROK, "RCPT b@y.example" },
	{ 0, "RCPT TO:b@y.example", BAD_TO, REJ_RCPT },
	{ 0, "RCPT TO:<>", BAD_TO, REJ_RCPT },
	{ 0, "RCPT TO:<postmaster>", ROK, "RCPT postmaster" },
	{ 0, "RCPT TO:<PostMaster>", ROK, "RCPT PostMaster" },
	{ 0, "RCPT TO:<postmaster@y.example>", ROK, "RCPT postmaster@y.example" },
	{ 0, "RCPT TO:<postmaster >", BAD_TO, REJ_RCPT },
	{ F_TRAILWS, "RCPT TO:< postmaster >", ROK, "RCPT postmaster" },
	{ 0, "RCPT TO:<postmistress>", BAD_TO, REJ_RCPT },
	{ 0, "RCPT TO:<\"postmaster\">", BAD_TO, REJ_RCPT },
	{ 0, "RCPT TO:<@r.example:postmaster>", BAD_TO, REJ_RCPT },
	{ 0, "RCPT TO:<@r.example:b@y.example>", ROK, "RCPT b@y.example" },
	{ 0, "RCPT TO:<" L64 "m@y.example>", "501 5.1.3 Recipient address too long", REJ_RCPT },
	{ 0, "RCPT TO:<b@y.example> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY",
	  "REJECT 555 RCPT" },
	{ 0, "RCPT TO:<b@y.example> ORCPT=rfc822;b@y.example",
	  "555 5.5.4 Unsupported option: ORCPT", "REJECT 555 RCPT" },
	{ 0, "RCPT TO:<b@y.example> =x", "501 5.5.4 Bad parameter syntax", REJ_RCPT },
	{ 0, "RCPT TO:<b@y.example> A B C D E F G H I J K L M N O P Q",
	  "501 5.5.4 Too many parameters", REJ_RCPT },
	{ 0, "RCPT TO:<\xc3\xbc@y.example>",
	  "553 5.6.7 Non-ASCII addresses not permitted for that recipient", "REJECT 553 RCPT" },
	{ 0, "RCPT FROM:<b@y.example>", "501 5.5.4 Syntax: RCPT TO:<address>", REJ_RCPT },
	{ 0, "RCPT", "501 5.5.4 Syntax: RCPT TO:<address>", REJ_RCPT },
};

static void
check_addr(const struct addr_case *tab, size_t n, const char *prefix_in, const char *prefix_out,
	   const char *prefix_ev)
{
	for (size_t i = 0; i < n; i++) {
		const struct addr_case *a = &tab[i];
		struct tcase t = { 0 };
		char *in = sl_asprintf("%s%s\r\n", prefix_in, a->cmd);
		char *out = sl_asprintf(BANNER "%s%s\r\n", prefix_out, a->reply);
		char *ev = sl_asprintf("%s%s\n", prefix_ev, a->ev);

		t.name = a->cmd;
		t.flags = a->flags;
		t.in = in;
		t.out = out;
		t.ev = ev;
		check_case(&t);
		sl_free(in);
		sl_free(out);
		sl_free(ev);
	}
}

static void
test_mail_syntax(void **state)
{
	check_addr(mail_cases, SL_ARRAY_LEN(mail_cases), "", "", "");
}

static void
test_rcpt_syntax(void **state)
{
	check_addr(rcpt_cases, SL_ARRAY_LEN(rcpt_cases), "MAIL FROM:<a@x.example>\r\n", OK_MAIL,
		   "MAIL a@x.example\n");
}

static void
test_rcpt_utf8(void **state)
{
	static const struct addr_case c[] = {
		{ 0, "RCPT TO:<\xc3\xbc@y.example>", ROK, "RCPT \\xc3\\xbc@y.example" },
	};

	check_addr(c, 1, "MAIL FROM:<a@x.example> SMTPUTF8\r\n", OK_MAIL,
		   "MAIL a@x.example smtputf8\n");
}

/* ------------------------------------------------------------ sequence and limits */

static const struct tcase seq_cases[] = {
	{ .name = "RCPT before MAIL; DATA before MAIL",
	  .in = "RCPT TO:<b@y.example>\r\nDATA\r\n",
	  .out = BANNER "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL "
			"command\r\n",
	  .ev = "REJECT 503 RCPT\nREJECT 503 DATA\n" },
	{ .name = "MAIL without HELO: allowed, unless require_ehlo",
	  .in = "MAIL FROM:<a@x.example>\r\n",
	  .out = BANNER OK_MAIL,
	  .ev = "MAIL a@x.example\n" },
	{ .name = "require_ehlo",
	  .flags = F_REQEHLO,
	  .in = "MAIL FROM:<a@x.example>\r\nHELO c.example\r\nMAIL FROM:<a@x.example>\r\n",
	  .out = BANNER "503 5.5.1 Error: send HELO/EHLO first\r\n250 mx.example\r\n" OK_MAIL,
	  .ev = "REJECT 503 MAIL\nHELO helo c.example\nMAIL a@x.example\n" },
	{ .name = "nested MAIL",
	  .in = "MAIL FROM:<a@x.example>\r\nMAIL FROM:<a@x.example>\r\n",
	  .out = BANNER OK_MAIL "503 5.5.1 Error: nested MAIL command\r\n",
	  .ev = "MAIL a@x.example\nREJECT 503 MAIL\n" },
	{ .name = "refused MAIL: no transaction",
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nMAIL FROM:<a@x.example>\r\n",
	  .v = { { 'R', 550, "5.7.1", "sender refused" } },
	  .out = BANNER
	  "550 5.7.1 sender refused\r\n503 5.5.1 Error: need MAIL command\r\n" OK_MAIL,
	  .ev = "MAIL a@x.example\nREJECT 503 RCPT\nMAIL a@x.example\n" },
	{ .name = "DATA without RCPT: 503; after refused RCPTs: 554",
	  .in = "MAIL FROM:<a@x.example>\r\nDATA\r\nRCPT TO:<b@y.example>\r\nRCPT "
		"TO:bad\r\nDATA\r\n",
	  .v = { { 0 }, { 'R', 550, "5.1.1", "unknown user" } },
	  .out = BANNER OK_MAIL
	  "503 5.5.1 Error: need RCPT command\r\n550 5.1.1 unknown user\r\n" BAD_TO
	  "\r\n554 5.5.1 Error: no valid recipients\r\n",
	  .ev = "MAIL a@x.example\nREJECT 503 DATA\nRCPT b@y.example\nREJECT 501 RCPT\nREJECT 554 "
		"DATA\n" },
	{ .name = "DATA with an argument",
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA x\r\n",
	  .out = BANNER OK_MAIL OK_RCPT "501 5.5.4 Syntax: DATA\r\n",
	  .ev = "MAIL a@x.example\nRCPT b@y.example\nREJECT 501 DATA\n" },
	{ .name = "refused DATA keeps the transaction",
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\nRCPT "
		"TO:<c@y.example>\r\nDATA\r\n.\r\n",
	  .v = { { 0 }, { 0 }, { 'R', 554, "5.7.1", "not now" } },
	  .out = BANNER OK_MAIL OK_RCPT "554 5.7.1 not now\r\n" OK_RCPT GO OK,
	  .ev = "MAIL a@x.example\nRCPT b@y.example\nDATA\nRCPT c@y.example\nDATA\nEOM len=0\n" },
	{ .name = "refused EOM ends the transaction; RSET event",
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\nx\r\n.\r\nDATA\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 'R', 451, "4.3.0", "queue trouble" } },
	  .out = BANNER OK_MAIL OK_RCPT GO "451 4.3.0 queue trouble\r\n503 5.5.1 Error: need MAIL "
					   "command\r\n",
	  .ev = "MAIL a@x.example\nRCPT b@y.example\nDATA\nBODY x\\r\\n\nEOM len=3\nRSET\nREJECT "
		"503 DATA\n" },
	{ .name = "two messages, msg count",
	  .in = TX_IN "one\r\n.\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
		      "two\r\n.\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 0 }, { 'A', 0, NULL, "Ok: queued as ABC" } },
	  .out = TX_OUT "250 2.0.0 Ok: queued as ABC\r\n" OK_MAIL OK_RCPT GO OK,
	  .ev = TX_EV "BODY one\\r\\n\nEOM len=5\nMAIL a@x.example\nRCPT b@y.example\nDATA\nBODY "
		      "two\\r\\n\nEOM len=5\n" },
	{ .name = "RSET drops the transaction",
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nRSET\r\nDATA\r\n",
	  .out = BANNER OK_MAIL OK_RCPT OK "503 5.5.1 Error: need MAIL command\r\n",
	  .ev = "MAIL a@x.example\nRCPT b@y.example\nRSET\nREJECT 503 DATA\n" },
	{ .name = "max_rcpt_per_message: 452 and the session goes on",
	  .rcpt_msg = 2,
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b1@y.example>\r\nRCPT "
		"TO:<b2@y.example>\r\nRCPT "
		"TO:<b3@y.example>\r\nDATA\r\n.\r\nMAIL FROM:<a@x.example>\r\nRCPT "
		"TO:<b3@y.example>\r\n",
	  .out = BANNER OK_MAIL OK_RCPT OK_RCPT
	  "452 4.5.3 Error: too many recipients\r\n" GO OK OK_MAIL OK_RCPT,
	  .ev = "MAIL a@x.example\nRCPT b1@y.example\nRCPT b2@y.example\nREJECT 452 "
		"RCPT\nDATA\nEOM len=0\nMAIL a@x.example\nRCPT b3@y.example\n" },
	{ .name = "max_rcpt_per_message: refused RCPTs do not count",
	  .rcpt_msg = 1,
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b1@y.example>\r\nRCPT "
		"TO:<b2@y.example>\r\nRCPT "
		"TO:<b3@y.example>\r\n",
	  .v = { { 0 }, { 'R', 550, "5.1.1", "no" } },
	  .out = BANNER OK_MAIL "550 5.1.1 no\r\n" OK_RCPT
				"452 4.5.3 Error: too many recipients\r\n",
	  .ev = "MAIL a@x.example\nRCPT b1@y.example\nRCPT b2@y.example\nREJECT 452 RCPT\n" },
	{ .name = "max_rcpt_per_session: 421 and close",
	  .rcpt_sess = 2,
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b1@y.example>\r\nDATA\r\n.\r\nMAIL "
		"FROM:<a@x.example>\r\nRCPT TO:<b2@y.example>\r\nRCPT "
		"TO:<b3@y.example>\r\nNOOP\r\n",
	  .out = BANNER OK_MAIL OK_RCPT GO OK OK_MAIL OK_RCPT
	  "421 4.7.0 mx.example Error: too many recipients in this session\r\n",
	  .ev = "MAIL a@x.example\nRCPT b1@y.example\nDATA\nEOM len=0\nMAIL a@x.example\nRCPT "
		"b2@y.example\nREJECT 421 RCPT\nCLOSE 421 RCPT\n" },
	{ .name = "max_msgs_per_session: the next MAIL gets 421",
	  .msgs = 1,
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n.\r\nMAIL "
		"FROM:<a@x.example>\r\n",
	  .out = BANNER OK_MAIL OK_RCPT GO OK
	  "421 4.7.0 mx.example Error: too many messages in this session\r\n",
	  .ev = "MAIL a@x.example\nRCPT b@y.example\nDATA\nEOM len=0\nREJECT 421 MAIL\nCLOSE 421 "
		"MAIL\n" },
	{ .name = "max_msgs_per_session: refused messages do not count",
	  .msgs = 1,
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n.\r\nMAIL "
		"FROM:<a@x.example>\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 'R', 554, NULL, "spam" } },
	  .out = BANNER OK_MAIL OK_RCPT GO "554 5.0.0 spam\r\n" OK_MAIL,
	  .ev = "MAIL a@x.example\nRCPT b@y.example\nDATA\nEOM len=0\nRSET\nMAIL a@x.example\n" },
	{ .name = "SIZE over message_size: 552 at once; exact size is fine",
	  .size = 1000,
	  .in = "MAIL FROM:<a@x.example> SIZE=1001\r\nMAIL FROM:<a@x.example> SIZE=1000\r\n",
	  .out = BANNER "552 5.3.4 Message size exceeds fixed limit\r\n" OK_MAIL,
	  .ev = "REJECT 552 MAIL\nMAIL a@x.example size=1000\n" },
	{ .name = "error limit: the 3rd error is followed by 421",
	  .errors = 3,
	  .in = "FOO\r\nRCPT TO:<b@y.example>\r\nNOOP\r\nBAR\r\nBAZ\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n503 5.5.1 Error: need MAIL "
			"command\r\n" OK "500 5.5.1 Error: command not recognized\r\n"
			"421 4.7.0 mx.example Error: too many errors\r\n",
	  .ev = "REJECT 500 unknown command\nREJECT 503 RCPT\nREJECT 500 unknown command\nCLOSE "
		"421 too many errors\n" },
	{ .name = "error limit: 4xx and verdict refusals do not count",
	  .errors = 2,
	  .rcpt_msg = 1,
	  .in = "MAIL FROM:<a@x.example>\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
		"RCPT TO:<c@y.example>\r\nRCPT TO:<c@y.example>\r\nFOO\r\nFOO\r\n",
	  .v = { { 'R', 550, NULL, "no" } },
	  .out = BANNER "550 5.0.0 no\r\n" OK_MAIL OK_RCPT
			"452 4.5.3 Error: too many recipients\r\n"
			"452 4.5.3 Error: too many recipients\r\n"
			"500 5.5.1 Error: command not recognized\r\n"
			"500 5.5.1 Error: command not recognized\r\n"
			"421 4.7.0 mx.example Error: too many errors\r\n",
	  .ev = "MAIL a@x.example\nMAIL a@x.example\nRCPT b@y.example\nREJECT 452 RCPT\nREJECT 452 "
		"RCPT\nREJECT 500 unknown command\nREJECT 500 unknown command\nCLOSE 421 too many "
		"errors\n" },
	{ .name = "error limit: default 20",
	  .in = "A\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA\r\nA"
		"\r\nA"
		"\r\nA\r\nA\r\nA\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n500 5.5.1 Error: command not "
			"recognized\r\n500 5.5.1 Error: command not recognized\r\n500 5.5.1 Error: "
			"command not recognized\r\n500 5.5.1 Error: command not recognized\r\n500 "
			"5.5.1 Error: command not recognized\r\n500 5.5.1 Error: command not "
			"recognized\r\n500 5.5.1 Error: command not recognized\r\n500 5.5.1 Error: "
			"command not recognized\r\n500 5.5.1 Error: command not recognized\r\n500 "
			"5.5.1 Error: command not recognized\r\n500 5.5.1 Error: command not "
			"recognized\r\n500 5.5.1 Error: command not recognized\r\n500 5.5.1 Error: "
			"command not recognized\r\n500 5.5.1 Error: command not recognized\r\n500 "
			"5.5.1 Error: command not recognized\r\n500 5.5.1 Error: command not "
			"recognized\r\n500 5.5.1 Error: command not recognized\r\n500 5.5.1 Error: "
			"command not recognized\r\n500 5.5.1 Error: command not recognized\r\n"
			"421 4.7.0 mx.example Error: too many errors\r\n",
	  .ev = "REJECT 500 unknown command\nREJECT 500 unknown command\nREJECT 500 unknown "
		"command\nREJECT 500 unknown command\nREJECT 500 unknown command\nREJECT 500 "
		"unknown "
		"command\nREJECT 500 unknown command\nREJECT 500 unknown command\nREJECT 500 "
		"unknown "
		"command\nREJECT 500 unknown command\nREJECT 500 unknown command\nREJECT 500 "
		"unknown "
		"command\nREJECT 500 unknown command\nREJECT 500 unknown command\nREJECT 500 "
		"unknown "
		"command\nREJECT 500 unknown command\nREJECT 500 unknown command\nREJECT 500 "
		"unknown "
		"command\nREJECT 500 unknown command\nREJECT 500 unknown command\nCLOSE 421 too "
		"many "
		"errors\n" },
	{ .name = "a verdict 421 closes",
	  .in = "MAIL FROM:<a@x.example>\r\nNOOP\r\n",
	  .v = { { 'R', 421, "4.3.2", "mx.example shutting down" } },
	  .out = BANNER "421 4.3.2 mx.example shutting down\r\n",
	  .ev = "MAIL a@x.example\n" },
	{ .name = "pipelining: a whole session in one buffer, verdicts one at a time",
	  .in = "EHLO c.example\r\nMAIL FROM:<a@x.example> SIZE=12\r\nRCPT "
		"TO:<b@y.example>\r\nRCPT "
		"TO:<c@y.example>\r\nRCPT TO:<d@y.example>\r\nDATA\r\nSubject: p\r\n\r\nhi\r\n.\r\n"
		"MAIL FROM:<a@x.example>\r\nRCPT TO:<e@y.example>\r\nDATA\r\n..\r\n.\r\nQUIT\r\n",
	  .v = { { 0 },
		 { 0 },
		 { 0 },
		 { 'R', 450, "4.2.1", "mailbox busy" },
		 { 0 },
		 { 0 },
		 { 'A', 0, NULL, "Ok: queued as 1" },
		 { 0 },
		 { 0 },
		 { 0 },
		 { 'A', 0, NULL, "Ok: queued as 2" } },
	  .out = BANNER EHLO_REPLY OK_MAIL OK_RCPT
	  "450 4.2.1 mailbox busy\r\n" OK_RCPT GO "250 2.0.0 Ok: queued as 1\r\n" OK_MAIL OK_RCPT GO
	  "250 2.0.0 Ok: queued as 2\r\n" BYE,
	  .ev = "HELO ehlo c.example\nMAIL a@x.example size=12\nRCPT b@y.example\nRCPT "
		"c@y.example\nRCPT d@y.example\nDATA\nBODY Subject: p\\r\\n\\r\\nhi\\r\\n\nEOM "
		"len=18\nMAIL a@x.example\nRCPT e@y.example\nDATA\nBODY .\\r\\n\nEOM "
		"len=3\nQUIT\n" },
};

static void
test_sequence(void **state)
{
	check_table(seq_cases, SL_ARRAY_LEN(seq_cases));
}

/* ------------------------------------------------------------ DATA content */

static const struct tcase data_cases[] = {
	{ .name = "empty message",
	  .in = TX_IN ".\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "EOM len=0\n" },
	{ .name = "dot-stuffing: only at real line starts",
	  .in = TX_IN "..a\r\n...\r\nb.\r\n. c\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY .a\\r\\n..\\r\\nb.\\r\\n c\\r\\n\nEOM len=16\n" },
	{ .name = "a line of one stuffed dot",
	  .in = TX_IN "a\r\n..\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY a\\r\\n.\\r\\n\nEOM len=6\n" },
	{ .name = "the end needs CRLF before the dot",
	  .in = TX_IN "a\r\nb.\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY a\\r\\nb.\\r\\n\nEOM len=7\n" },
	{ .name = "commands pipelined after the end",
	  .in = TX_IN "a\r\n.\r\nQUIT\r\n",
	  .out = TX_OUT OK BYE,
	  .ev = TX_EV "BODY a\\r\\n\nEOM len=3\nQUIT\n" },
	{ .name = "Date and Message-ID in the header section",
	  .in = TX_IN "Subject: x\r\ndate: now\r\nMESSAGE-ID: <1@x>\r\n\r\nbody\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY Subject: x\\r\\ndate: now\\r\\nMESSAGE-ID: "
		      "<1@x>\\r\\n\\r\\nbody\\r\\n\nEOM len=50 date msgid\n" },
	{ .name = "Date with white space before the colon (obsolete syntax)",
	  .in = TX_IN "Date : now\r\n\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY Date : now\\r\\n\\r\\n\nEOM len=14 date\n" },
	{ .name = "not Date or Message-ID",
	  .in = TX_IN "X-Date: a\r\nDates: b\r\nMessage-IDs: c\r\nSubject: d\r\n Date: folded\r\n"
		      "Message-I: e\r\n\r\nDate: in the body\r\nMessage-ID: <2@x>\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY X-Date: a\\r\\nDates: b\\r\\nMessage-IDs: c\\r\\nSubject: d\\r\\n "
		      "Date: folded\\r\\nMessage-I: e\\r\\n\\r\\nDate: in the "
		      "body\\r\\nMessage-ID: <2@x>\\r\\n\nEOM len=118\n" },
	{ .name = "no header section at all: Date in the body",
	  .in = TX_IN "\r\nDate: x\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY \\r\\nDate: x\\r\\n\nEOM len=11\n" },
	{ .name = "a stuffed dot before a header name",
	  .in = TX_IN "..Date: x\r\n.Message-ID: y\r\n\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY .Date: x\\r\\nMessage-ID: y\\r\\n\\r\\n\nEOM len=27 msgid\n" },
	{ .name = "message_size: exact fits",
	  .size = 10,
	  .in = TH_IN "12345678\r\n.\r\n",
	  .out = TH_OUT OK,
	  .ev = TH_EV "BODY 12345678\\r\\n\nEOM len=10\n" },
	{ .name = "message_size: one over is read to the end and refused",
	  .size = 10,
	  .in = TH_IN "123456789\r\n.\r\nQUIT\r\n",
	  .out = TH_OUT "552 5.3.4 Message size exceeds fixed limit\r\n" BYE,
	  .ev = TH_EV "EOM defects=1 552\nRSET\nQUIT\n" },
	{ .name = "message_size counts unstuffed octets",
	  .size = 3,
	  .in = TH_IN "..\r\n.\r\n",
	  .out = TH_OUT OK,
	  .ev = TH_EV "BODY .\\r\\n\nEOM len=3\n" },
	{ .name = "message in several pieces with verdict text",
	  .in = TX_IN "l1\r\nl2\r\n.\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 0 }, { 'A', 0, NULL, "Ok: queued as 6926A1B2" } },
	  .out = TX_OUT "250 2.0.0 Ok: queued as 6926A1B2\r\n",
	  .ev = TX_EV "BODY l1\\r\\nl2\\r\\n\nEOM len=8\n" },
	{ .name = "NUL and 8-bit octets pass",
	  .in = TX_IN "a\0b\xff\r\n.\r\n",
	  .in_len = sizeof(TX_IN "a\0b\xff\r\n.\r\n") - 1,
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY a\\x00b\\xff\\r\\n\nEOM len=6\n" },
};

static void
test_data(void **state)
{
	check_table(data_cases, SL_ARRAY_LEN(data_cases));
}

/* ------------------------------------------------------------ SMTP smuggling */

/*
 * SEC Consult's sequences (CVE-2023-51764/5/6) between "a" and "b" in the
 * body, followed by commands that must stay message content.  Only the
 * final <CRLF>.<CRLF> ends the message.
 */
#define SMUG_TAIL "MAIL FROM:<evil@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
#define SMUG(seq) TX_IN "Subject: s\r\n\r\na" seq "b\r\n" SMUG_TAIL ".\r\nQUIT\r\n"
#define SMUG_HEAD "Subject: s\\r\\n\\r\\na"
#define SMUG_REST "b\\r\\nMAIL FROM:<evil@x.example>\\r\\nRCPT TO:<b@y.example>\\r\\nDATA\\r\\n\n"

#define SMUG_CASE(label, seq, ign, ign_len, fix, fix_len)                                      \
	{ .name = label " reject",                                                             \
	  .in = SMUG(seq),                                                                     \
	  .out = TX_OUT BARE_REFUSED BYE,                                                      \
	  .ev = TX_EV BARE_EV "QUIT\n" },                                                      \
		{ .name = label " ignore",                                                     \
		  .body = SL_SMTP_BARE_EOL_IGNORE,                                             \
		  .in = SMUG(seq),                                                             \
		  .out = TX_OUT OK BYE,                                                        \
		  .ev = TX_EV "BODY " SMUG_HEAD ign SMUG_REST "EOM len=" ign_len "\nQUIT\n" }, \
	{                                                                                      \
		.name = label " fix", .body = SL_SMTP_BARE_EOL_FIX, .in = SMUG(seq),           \
		.out = TX_OUT OK BYE,                                                          \
		.ev = TX_EV "BODY " SMUG_HEAD fix SMUG_REST "EOM len=" fix_len "\nQUIT\n"      \
	}

/* "Subject: s\r\n\r\na" is 15, "b\r\n" and the commands 60: 75 + the stored sequence. */
static const struct tcase smuggling_cases[] = {
	SMUG_CASE("\\n.\\n", "\n.\n", "\\n.\\n", "78", "\\r\\n.\\r\\n", "80"),
	SMUG_CASE("\\n.\\r\\n", "\n.\r\n", "\\n.\\r\\n", "79", "\\r\\n.\\r\\n", "80"),
	SMUG_CASE("\\r.\\r", "\r.\r", "\\r.\\r", "78", "\\r\\n.\\r\\n", "80"),
	SMUG_CASE("\\r\\n.\\r", "\r\n.\r", "\\r\\n\\r", "78", "\\r\\n\\r\\n", "79"),
	SMUG_CASE("\\r\\n.\\n", "\r\n.\n", "\\r\\n\\n", "78", "\\r\\n\\r\\n", "79"),
	SMUG_CASE("\\r.\\r\\n", "\r.\r\n", "\\r.\\r\\n", "79", "\\r\\n.\\r\\n", "80"),
	SMUG_CASE("\\n.\\r", "\n.\r", "\\n.\\r", "78", "\\r\\n.\\r\\n", "80"),
	SMUG_CASE("\\r.\\n", "\r.\n", "\\r.\\n", "78", "\\r\\n.\\r\\n", "80"),
	SMUG_CASE("\\r\\n.\\r\\r\\n", "\r\n.\r\r\n", "\\r\\n\\r\\r\\n", "80", "\\r\\n\\r\\n\\r\\n",
		  "81"),
	SMUG_CASE("\\n\\r\\n.\\n", "\n\r\n.\n", "\\n\\r\\n\\n", "79", "\\r\\n\\r\\n\\r\\n", "81"),
	{ .name = "a bare CR right before the real end",
	  .body = SL_SMTP_BARE_EOL_FIX,
	  .hdr = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "a\r\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY a\\r\\n\\r\\n\nEOM len=5\n" },
	{ .name = "a bare LF right before the dot",
	  .body = SL_SMTP_BARE_EOL_IGNORE,
	  .in = TX_IN "\r\na\n.\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY \\r\\na\\n.\\r\\n\nEOM len=7\n" },
	{ .name = "data starting with a bare LF and a dot",
	  .body = SL_SMTP_BARE_EOL_FIX,
	  .hdr = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "\n.\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY \\r\\n.\\r\\n\nEOM len=5\n" },
	{ .name = "a dot line ending in a bare CR at data start",
	  .body = SL_SMTP_BARE_EOL_IGNORE,
	  .hdr = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN ".\r.\r\n",
	  .out = TX_OUT,
	  .ev = TX_EV "BODY \\r\\n.\\r\\n\n" },
};

static void
test_smuggling(void **state)
{
	check_table(smuggling_cases, SL_ARRAY_LEN(smuggling_cases));
}

/* ------------------------------------------------------------ header / body policy */

static const struct tcase policy_cases[] = {
	{ .name = "header FIX, body REJECT: a fixed header passes",
	  .hdr = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "A: 1\nB: 2\r\nDate: 3\r\r\nbody\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY A: 1\\r\\nB: 2\\r\\nDate: 3\\r\\n\\r\\nbody\\r\\n\nEOM len=29 date\n" },
	{ .name = "header FIX, body REJECT: a bare LF in the body is refused",
	  .hdr = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "A: 1\n\r\nbo\ndy\r\n.\r\n",
	  .out = TX_OUT BARE_REFUSED,
	  .ev = TX_EV BARE_EV },
	{ .name = "header REJECT, body FIX",
	  .body = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "A: 1\nB: 2\r\n\r\nbody\r\n.\r\n",
	  .out = TX_OUT BARE_REFUSED,
	  .ev = TX_EV BARE_EV },
	{ .name = "header REJECT, body FIX: the body is fixed",
	  .body = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "A: 1\r\n\r\nb\no\rd\r\ry\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY A: 1\\r\\n\\r\\nb\\r\\no\\r\\nd\\r\\n\\r\\ny\\r\\n\nEOM len=22\n" },
	{ .name = "header IGNORE acts as REJECT",
	  .hdr = SL_SMTP_BARE_EOL_IGNORE,
	  .body = SL_SMTP_BARE_EOL_IGNORE,
	  .in = TX_IN "A: 1\nB: 2\r\n\r\nbody\r\n.\r\n",
	  .out = TX_OUT BARE_REFUSED,
	  .ev = TX_EV BARE_EV },
	{ .name = "body IGNORE passes bare octets",
	  .body = SL_SMTP_BARE_EOL_IGNORE,
	  .in = TX_IN "A: 1\r\n\r\nb\no\rd\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY A: 1\\r\\n\\r\\nb\\no\\rd\\r\\n\nEOM len=15\n" },
	{ .name = "a fixed empty line ends the header section",
	  .hdr = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "A: 1\n\nDate: 2\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY A: 1\\r\\n\\r\\nDate: 2\\r\\n\nEOM len=17\n" },
	{ .name = "a header line fixed at its end still counts",
	  .hdr = SL_SMTP_BARE_EOL_FIX,
	  .in = TX_IN "Message-ID: <x>\rDate: now\n\r\n.\r\n",
	  .out = TX_OUT OK,
	  .ev = TX_EV "BODY Message-ID: <x>\\r\\nDate: now\\r\\n\\r\\n\nEOM len=30 date msgid\n" },
	{ .name = "REJECT: read to the end, session goes on",
	  .in = TX_IN "a\nb\r\n.\r\nMAIL FROM:<a@x.example>\r\n",
	  .out = TX_OUT BARE_REFUSED OK_MAIL,
	  .ev = TX_EV BARE_EV "MAIL a@x.example\n" },
};

static void
test_policy(void **state)
{
	check_table(policy_cases, SL_ARRAY_LEN(policy_cases));
}

/* ------------------------------------------------------------ BDAT */

static const struct tcase bdat_cases[] = {
	{ .name = "BDAT LAST",
	  .in = TB_IN "BDAT 5 LAST\r\nhello",
	  .out = TB_OUT OK,
	  .ev = TB_EV "DATA bdat\nBODY hello\nEOM len=5\n" },
	{ .name = "BDAT chunks, pipelined, with text on the final reply",
	  .in = TB_IN "BDAT 3\r\nabcBDAT 4\r\nd\r\neBDAT 2 last\r\nfgQUIT\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 0 }, { 'A', 0, NULL, "Ok: 9 octets queued as X" } },
	  .out = TB_OUT "250 2.0.0 Ok: 3 octets received\r\n250 2.0.0 Ok: 4 octets received\r\n"
			"250 2.0.0 Ok: 9 octets queued as X\r\n" BYE,
	  .ev = TB_EV "DATA bdat\nBODY abcd\\r\\nefg\nEOM len=9\nQUIT\n" },
	{ .name = "BDAT 0 LAST",
	  .in = TB_IN "BDAT 0 LAST\r\n",
	  .out = TB_OUT OK,
	  .ev = TB_EV "DATA bdat\nEOM len=0\n" },
	{ .name = "BDAT: empty chunks",
	  .in = TB_IN "BDAT 0\r\nBDAT 1\r\nxBDAT 0 LAST\r\n",
	  .out = TB_OUT "250 2.0.0 Ok: 0 octets received\r\n250 2.0.0 Ok: 1 octets received\r\n" OK,
	  .ev = TB_EV "DATA bdat\nBODY x\nEOM len=1\n" },
	{ .name = "BDAT: no dot-unstuffing, no end at <CRLF>.<CRLF>",
	  .in = TB_IN "BDAT 11 LAST\r\n..a\r\n.\r\nb\r\n",
	  .out = TB_OUT OK,
	  .ev = TB_EV "DATA bdat\nBODY ..a\\r\\n.\\r\\nb\\r\\n\nEOM len=11\n" },
	{ .name = "BDAT: CRLF split across chunks is no bare CR",
	  .in = TB_IN "BDAT 2\r\na\rBDAT 2 LAST\r\n\nb",
	  .out = TB_OUT "250 2.0.0 Ok: 2 octets received\r\n" OK,
	  .ev = TB_EV "DATA bdat\nBODY a\\r\\nb\nEOM len=4\n" },
	{ .name = "BDAT: CR at the end of the last chunk is bare",
	  .in = TB_IN "BDAT 2\r\na\rBDAT 0 LAST\r\n",
	  .out = TB_OUT "250 2.0.0 Ok: 2 octets received\r\n" BARE_REFUSED,
	  .ev = TB_EV "DATA bdat\n" BARE_EV },
	{ .name = "BDAT: CR at the end of the last chunk, FIX",
	  .body = SL_SMTP_BARE_EOL_FIX,
	  .in = TB_IN "BDAT 4 LAST\r\n\r\na\r",
	  .out = TB_OUT OK,
	  .ev = TB_EV "DATA bdat\nBODY \\r\\na\\r\\n\nEOM len=5\n" },
	{ .name = "BDAT: CR before a non-LF next chunk, IGNORE",
	  .body = SL_SMTP_BARE_EOL_IGNORE,
	  .in = TB_IN "BDAT 4\r\n\r\na\rBDAT 1 LAST\r\nb",
	  .out = TB_OUT "250 2.0.0 Ok: 4 octets received\r\n" OK,
	  .ev = TB_EV "DATA bdat\nBODY \\r\\na\\rb\nEOM len=5\n" },
	{ .name = "BDAT: bare LF refused at LAST",
	  .in = TB_IN "BDAT 3\r\na\nbBDAT 0 LAST\r\nQUIT\r\n",
	  .out = TB_OUT "250 2.0.0 Ok: 3 octets received\r\n" BARE_REFUSED BYE,
	  .ev = TB_EV "DATA bdat\n" BARE_EV "QUIT\n" },
	{ .name = "BDAT: message_size",
	  .size = 4,
	  .in = TB_IN "BDAT 3\r\nabcBDAT 2 LAST\r\nde",
	  .out = BANNER
	  "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 4\r\n250-8BITMIME\r\n"
	  "250-SMTPUTF8\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n" OK_MAIL OK_RCPT
	  "250 2.0.0 Ok: 3 octets received\r\n552 5.3.4 Message size exceeds fixed "
	  "limit\r\n",
	  .ev = TB_EV "DATA bdat\nEOM defects=1 552\nRSET\n" },
	{ .name = "BDAT: Date and Message-ID",
	  .in = TB_IN "BDAT 7\r\nDate: 1BDAT 20 LAST\r\n\r\nMessage-ID: 2\r\n\r\nb",
	  .out = TB_OUT "250 2.0.0 Ok: 7 octets received\r\n" OK,
	  .ev = TB_EV "DATA bdat\nBODY Date: 1\\r\\nMessage-ID: 2\\r\\n\\r\\nb\nEOM len=27 date "
		      "msgid\n" },
	{ .name = "BDAT: refused first chunk is discarded; later chunks too",
	  .in = TB_IN "BDAT 4\r\nRSETBDAT 3 LAST\r\nxyzRSET\r\nNOOP\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 'R', 554, "5.7.1", "no chunks" } },
	  .out = TB_OUT "554 5.7.1 no chunks\r\n503 5.5.1 Error: earlier BDAT refused; send "
			"RSET\r\n" OK OK,
	  .ev = TB_EV "DATA bdat\nREJECT 503 BDAT\nRSET\n" },
	{ .name = "BDAT before MAIL: 503, chunk discarded",
	  .in = "BDAT 6\r\nNOOP\r\nQUIT\r\n",
	  .out = BANNER "503 5.5.1 Error: need MAIL command\r\n" BYE,
	  .ev = "REJECT 503 BDAT\nQUIT\n" },
	{ .name = "BDAT without RCPT",
	  .in = "MAIL FROM:<a@x.example>\r\nBDAT 2\r\nxyNOOP\r\n",
	  .out = BANNER OK_MAIL "503 5.5.1 Error: need RCPT command\r\n" OK,
	  .ev = "MAIL a@x.example\nREJECT 503 BDAT\n" },
	{ .name = "BDAT non-numeric size: 501 then 421",
	  .in = TB_IN "BDAT x\r\nQUIT\r\n",
	  .out = TB_OUT "501 5.5.4 Syntax: BDAT size [LAST]\r\n421 4.7.0 mx.example Error: BDAT "
			"size unknown, closing\r\n",
	  .ev = TB_EV "REJECT 501 BDAT\nCLOSE 421 BDAT size unknown\n" },
	{ .name = "BDAT without size",
	  .in = "BDAT\r\n",
	  .out = BANNER "501 5.5.4 Syntax: BDAT size [LAST]\r\n421 4.7.0 mx.example Error: BDAT "
			"size unknown, closing\r\n",
	  .ev = "REJECT 501 BDAT\nCLOSE 421 BDAT size unknown\n" },
	{ .name = "BDAT size unknown when the error limit is reached: one 421",
	  .errors = 1,
	  .in = "BDAT 1x\r\n",
	  .out = BANNER
	  "501 5.5.4 Syntax: BDAT size [LAST]\r\n421 4.7.0 mx.example Error: too many "
	  "errors\r\n",
	  .ev = "REJECT 501 BDAT\nCLOSE 421 too many errors\n" },
	{ .name = "BDAT size too big to parse",
	  .in = "BDAT 99999999999999999999\r\n",
	  .out = BANNER "501 5.5.4 Syntax: BDAT size [LAST]\r\n421 4.7.0 mx.example Error: BDAT "
			"size unknown, closing\r\n",
	  .ev = "REJECT 501 BDAT\nCLOSE 421 BDAT size unknown\n" },
	{ .name = "BDAT with a bad end marker: 501, chunk discarded, later chunks 503",
	  .in = TB_IN "BDAT 5 LUST\r\nhelloBDAT 3 LAST\r\nabcNOOP\r\nRSET\r\n",
	  .out = TB_OUT "501 5.5.4 Syntax: BDAT size [LAST]\r\n503 5.5.1 Error: earlier BDAT "
			"refused; send RSET\r\n" OK OK,
	  .ev = TB_EV "REJECT 501 BDAT\nREJECT 503 BDAT\nRSET\n" },
	{ .name = "a refused BDAT in the middle: no message from the chunks around it",
	  .in = TB_IN "BDAT 5\r\nfirstBDAT 6 LUST\r\nsecondBDAT 5 LAST\r\nthirdDATA\r\nRSET\r\n",
	  .out = TB_OUT "250 2.0.0 Ok: 5 octets received\r\n501 5.5.4 Syntax: BDAT size [LAST]\r\n"
			"503 5.5.1 Error: earlier BDAT refused; send RSET\r\n"
			"503 5.5.1 Error: DATA after BDAT\r\n" OK,
	  .ev = TB_EV "DATA bdat\nBODY first\nREJECT 501 BDAT\nREJECT 503 BDAT\nREJECT 503 "
		      "DATA\nRSET\n" },
	{ .name = "BDAT after all RCPTs were refused: 554, chunk discarded",
	  .in = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nBDAT 5 LAST\r\nhelloNOOP\r\n",
	  .v = { { 0 }, { 'R', 550, "5.7.1", "relaying denied" } },
	  .out = BANNER OK_MAIL "550 5.7.1 relaying denied\r\n554 5.5.1 Error: no valid "
				"recipients\r\n" OK,
	  .ev = "MAIL a@x.example\nRCPT b@y.example\nREJECT 554 BDAT\n" },
	{ .name = "DATA after BDAT",
	  .in = TB_IN "BDAT 1\r\nxDATA\r\nBDAT 0 LAST\r\n",
	  .out = TB_OUT
	  "250 2.0.0 Ok: 1 octets received\r\n503 5.5.1 Error: DATA after BDAT\r\n" OK,
	  .ev = TB_EV "DATA bdat\nBODY x\nREJECT 503 DATA\nEOM len=1\n" },
	{ .name = "RCPT and MAIL after BDAT",
	  .in = TB_IN "BDAT 1\r\nxRCPT TO:<c@y.example>\r\nMAIL FROM:<a@x.example>\r\nBDAT 0 "
		      "LAST\r\n",
	  .out = TB_OUT "250 2.0.0 Ok: 1 octets received\r\n503 5.5.1 Error: RCPT after BDAT\r\n"
			"503 5.5.1 Error: nested MAIL command\r\n" OK,
	  .ev = TB_EV "DATA bdat\nBODY x\nREJECT 503 RCPT\nREJECT 503 MAIL\nEOM len=1\n" },
	{ .name = "BDAT after a refused DATA",
	  .in = TB_IN "DATA\r\nBDAT 2\r\nxyNOOP\r\n",
	  .v = { { 0 }, { 0 }, { 0 }, { 'R', 451, "4.3.0", "later" } },
	  .out = TB_OUT "451 4.3.0 later\r\n503 5.5.1 Error: BDAT after DATA\r\n" OK,
	  .ev = TB_EV "DATA\nREJECT 503 BDAT\n" },
	{ .name = "BDAT not offered: unknown command",
	  .flags = F_NOCHUNK,
	  .in = "BDAT 1 LAST\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n",
	  .ev = "REJECT 500 unknown command\n" },
	{ .name = "BDAT: RSET between chunks",
	  .in = TB_IN "BDAT 2\r\na\rRSET\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
		      "BDAT 1 LAST\r\n\n",
	  .out = TB_OUT "250 2.0.0 Ok: 2 octets received\r\n" OK OK_MAIL OK_RCPT BARE_REFUSED,
	  .ev = TB_EV
	  "DATA bdat\nBODY a\nRSET\nMAIL a@x.example\nRCPT b@y.example\nDATA bdat\n" BARE_EV },
	{ .name = "BDAT: a refused EOM",
	  .in = TB_IN "BDAT 1 LAST\r\nx",
	  .v = { { 0 }, { 0 }, { 0 }, { 0 }, { 'R', 550, "5.7.1", "spam" } },
	  .out = TB_OUT "550 5.7.1 spam\r\n",
	  .ev = TB_EV "DATA bdat\nBODY x\nEOM len=1\nRSET\n" },
};

static void
test_bdat(void **state)
{
	check_table(bdat_cases, SL_ARRAY_LEN(bdat_cases));
}

/* ------------------------------------------------------------ extensions */

static const struct tcase ext_cases[] = {
	{ .name = "XCLIENT accepted: new banner, HELO forgotten",
	  .flags = F_XCLIENT | F_WAIT,
	  .in = "EHLO c.example\r\nXCLIENT NAME=spike.porcupine.org ADDR=168.100.189.2\r\n",
	  .out = BANNER "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
			"250-SMTPUTF8\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
			"250 XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n" BANNER,
	  .ev = "HELO ehlo c.example\nXCLIENT NAME=spike.porcupine.org ADDR=168.100.189.2\nWAIT "
		"helo\n" },
	{ .name = "XCLIENT: every attribute, xtext, [UNAVAILABLE]/[TEMPUNAVAIL]",
	  .flags = F_XCLIENT,
	  .in = "xclient name=[tempunavail] addr=IPV6:2001:db8::1 PORT=4711 proto=esmtp "
		"HELO=a+2bb.example LOGIN=j+20doe DESTADDR=[unavailable] DESTPORT=25\r\n",
	  .v = { { 'A', 0, NULL, "mx.example ESMTP again" } },
	  .out = BANNER "220 mx.example ESMTP again\r\n",
	  .ev = "XCLIENT NAME=[TEMPUNAVAIL] ADDR=IPV6:2001:db8::1 PORT=4711 PROTO=ESMTP "
		"HELO=a+b.example LOGIN=j doe DESTADDR=[UNAVAILABLE] DESTPORT=25\n" },
	{ .name = "XCLIENT: bad values",
	  .flags = F_XCLIENT,
	  .in = "XCLIENT ADDR=1.2.3\r\nXCLIENT PORT=65536\r\nXCLIENT PROTO=LMTP\r\nXCLIENT "
		"NAME=a_b\r\nXCLIENT ADDR=[TEMPUNAVAIL]\r\nXCLIENT HELO=a+0Db\r\nXCLIENT "
		"LOGIN=a+2\r\nXCLIENT LOGIN=a=b\r\nXCLIENT ADDR=2001:db8::1\r\nXCLIENT "
		"LOGIN=\r\nXCLIENT HELO=a+20b\r\nXCLIENT LOGIN=a+gg\r\nXCLIENT LOGIN=+00\r\n"
		"XCLIENT HELO=" D63 D63 D63 D63 D63 "\r\n",
	  .out = BANNER "501 5.5.4 Bad XCLIENT ADDR value\r\n501 5.5.4 Bad XCLIENT PORT value\r\n"
			"501 5.5.4 Bad XCLIENT PROTO value\r\n501 5.5.4 Bad XCLIENT NAME value\r\n"
			"501 5.5.4 Bad XCLIENT ADDR value\r\n501 5.5.4 Bad XCLIENT HELO value\r\n"
			"501 5.5.4 Bad XCLIENT LOGIN value\r\n501 5.5.4 Bad XCLIENT LOGIN value\r\n"
			"501 5.5.4 Bad XCLIENT ADDR value\r\n501 5.5.4 Bad XCLIENT LOGIN value\r\n"
			"501 5.5.4 Bad XCLIENT HELO value\r\n501 5.5.4 Bad XCLIENT LOGIN value\r\n"
			"501 5.5.4 Bad XCLIENT LOGIN value\r\n501 5.5.4 Bad XCLIENT HELO value\r\n",
	  .errors = 100,
	  .ev = "REJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 "
		"XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 "
		"XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 "
		"XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\n" },
	{ .name = "XCLIENT: syntax",
	  .flags = F_XCLIENT,
	  .in = "XCLIENT\r\nXCLIENT \r\nXCLIENT NAME\r\nXCLIENT FOO=bar\r\nXCLIENT NAME=a  "
		"ADDR=1.2.3.4\r\nXCLIENT NAME=a \r\n"
		"XCLIENT NAME=a NAME=a NAME=a NAME=a NAME=a NAME=a NAME=a NAME=a NAME=a NAME=a "
		"NAME=a NAME=a NAME=a NAME=a NAME=a NAME=a NAME=a\r\n",
	  .errors = 100,
	  .out = BANNER "501 5.5.4 Syntax: XCLIENT attribute=value ...\r\n"
			"501 5.5.4 Syntax: XCLIENT attribute=value ...\r\n"
			"501 5.5.4 Syntax: XCLIENT attribute=value ...\r\n"
			"501 5.5.4 Bad XCLIENT attribute name\r\n" BANNER
			"501 5.5.4 Syntax: XCLIENT attribute=value ...\r\n"
			"501 5.5.4 Too many XCLIENT attributes\r\n",
	  .ev = "REJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\nREJECT 501 "
		"XCLIENT\nXCLIENT NAME=a ADDR=1.2.3.4\nREJECT 501 XCLIENT\nREJECT 501 XCLIENT\n" },
	{ .name = "XCLIENT inside a transaction",
	  .flags = F_XCLIENT,
	  .in = "MAIL FROM:<a@x.example>\r\nXCLIENT NAME=a.example\r\n",
	  .out = BANNER OK_MAIL "503 5.5.1 Error: MAIL transaction in progress\r\n",
	  .ev = "MAIL a@x.example\nREJECT 503 XCLIENT\n" },
	{ .name = "XCLIENT refused",
	  .flags = F_XCLIENT,
	  .in = "HELO c.example\r\nXCLIENT NAME=a.example\r\nMAIL FROM:<a@x.example>\r\n",
	  .v = { { 0 }, { 'R', 550, "5.7.0", "insufficient authorization" } },
	  .out = BANNER "250 mx.example\r\n550 5.7.0 insufficient authorization\r\n" OK_MAIL,
	  .ev = "HELO helo c.example\nXCLIENT NAME=a.example\nMAIL a@x.example\n" },
	{ .name = "XCLIENT not enabled",
	  .in = "XCLIENT NAME=a.example\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n",
	  .ev = "REJECT 500 unknown command\n" },
	{ .name = "XREMOTEIP",
	  .flags = F_XREMOTEIP,
	  .in = "XREMOTEIP 192.0.2.7\r\nXREMOTEIP 2001:db8::7\r\nXREMOTEIP IPv6:::1\r\nXREMOTEIP "
		"foo\r\nXREMOTEIP\r\nMAIL FROM:<a@x.example>\r\nXREMOTEIP 192.0.2.8\r\n",
	  .v = { { 0 }, { 'R', 550, "5.7.1", "not you" } },
	  .out = BANNER OK
	  "550 5.7.1 not you\r\n" OK
	  "501 5.5.4 Syntax: XREMOTEIP address\r\n501 5.5.4 Syntax: XREMOTEIP address\r\n" OK_MAIL
		  OK,
	  .ev = "XREMOTEIP 192.0.2.7\nXREMOTEIP 2001:db8::7\nXREMOTEIP IPv6:::1\nREJECT 501 "
		"XREMOTEIP\nREJECT 501 XREMOTEIP\nMAIL a@x.example\nXREMOTEIP 192.0.2.8\n" },
	{ .name = "NUL octets in command lines (found by fuzzing)",
	  .flags = F_XREMOTEIP | F_XCLIENT,
	  .in = "XREMOTEIP 191::1\0\r\nXREMOTEIP 10.0.0.1\0\r\nMAIL FROM:<a@[IPv6:::1\0]>\r\n"
		"MAIL FROM:<a\0@b.example>\r\nXCLIENT ADDR=IPV6:::1\0\r\nHELO a\0\r\n",
	  .in_len =
		  sizeof("XREMOTEIP 191::1\0\r\nXREMOTEIP 10.0.0.1\0\r\nMAIL FROM:<a@[IPv6:::1\0]>"
			 "\r\nMAIL FROM:<a\0@b.example>\r\nXCLIENT ADDR=IPV6:::1\0\r\nHELO "
			 "a\0\r\n") -
		  1,
	  .out = BANNER "501 5.5.4 Syntax: XREMOTEIP address\r\n501 5.5.4 Syntax: XREMOTEIP "
			"address\r\n" BAD_FROM "\r\n" BAD_FROM "\r\n"
			"501 5.5.4 Bad XCLIENT ADDR value\r\n"
			"501 5.5.4 Syntax: HELO hostname\r\n",
	  .ev = "REJECT 501 XREMOTEIP\nREJECT 501 XREMOTEIP\nREJECT 501 MAIL\nREJECT 501 "
		"MAIL\nREJECT 501 XCLIENT\nREJECT 501 HELO\n" },
	{ .name = "XREMOTEIP not enabled",
	  .in = "XREMOTEIP 192.0.2.7\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n",
	  .ev = "REJECT 500 unknown command\n" },
	{ .name = "XDUMPCONTEXT",
	  .flags = F_XDUMP | F_NOESC,
	  .in = "EHLO there\r\nXDUMPCONTEXT\r\nXDUMPCONTEXT\r\nXDUMPCONTEXT x\r\n",
	  .v = { { 0 },
		 { 'L', 0, NULL,
		   "[connection] ehlo_domain there\n[connection] ehlo_string ehlo there" },
		 { 'A', 0, NULL, NULL } },
	  .out = BANNER "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n"
			"250-SMTPUTF8\r\n250-CHUNKING\r\n250 XDUMPCONTEXT\r\n"
			"250-[connection] ehlo_domain there\r\n250-[connection] ehlo_string ehlo "
			"there\r\n250 XDUMPCONTEXT complete\r\n250 XDUMPCONTEXT complete\r\n"
			"501 Syntax: XDUMPCONTEXT\r\n",
	  .ev = "HELO ehlo there\nXDUMPCONTEXT\nXDUMPCONTEXT\nREJECT 501 XDUMPCONTEXT\n" },
	{ .name = "XDUMPCONTEXT with enhanced codes, refused",
	  .flags = F_XDUMP,
	  .in = "XDUMPCONTEXT\r\nXDUMPCONTEXT\r\n",
	  .v = { { 'L', 0, NULL, "[connection] a b\n" }, { 'R', 502, "5.5.1x", "not for you" } },
	  .out = BANNER "250-2.0.0 [connection] a b\r\n250-2.0.0\r\n250 2.0.0 XDUMPCONTEXT "
			"complete\r\n502 5.0.0 not for you\r\n",
	  .ev = "XDUMPCONTEXT\nXDUMPCONTEXT\n" },
	{ .name = "XDUMPCONTEXT without enhanced codes, an empty line",
	  .flags = F_XDUMP | F_NOESC,
	  .in = "XDUMPCONTEXT\r\n",
	  .v = { { 'L', 0, NULL, "\n" } },
	  .out = BANNER "250-\r\n250-\r\n250 XDUMPCONTEXT complete\r\n",
	  .ev = "XDUMPCONTEXT\n" },
	{ .name = "XDUMPCONTEXT not enabled",
	  .in = "XDUMPCONTEXT\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n",
	  .ev = "REJECT 500 unknown command\n" },
	{ .name = "STARTTLS with pipelined input; then no STARTTLS in EHLO",
	  .flags = F_TLS | F_WAIT,
	  .in = "EHLO c.example\r\nSTARTTLS\r\nEHLO c.example\r\nSTARTTLS\r\n",
	  .out = BANNER EHLO_REPLY_TLS "220 2.0.0 Ready to start TLS\r\n" EHLO_REPLY
				       "503 5.5.1 Error: TLS already active\r\n",
	  .ev = "HELO ehlo c.example\nSTARTTLS pipelined\nHELO ehlo c.example\nREJECT 503 "
		"STARTTLS\nWAIT mail\n" },
	{ .name = "STARTTLS: arguments, transaction, refusal",
	  .flags = F_TLS | F_WAIT,
	  .in = "STARTTLS x\r\nMAIL FROM:<a@x.example>\r\nSTARTTLS\r\nRSET\r\nSTARTTLS\r\n",
	  .v = { { 0 }, { 'R', 454, "4.7.0", "TLS not available" } },
	  .out = BANNER "501 5.5.4 Syntax: STARTTLS\r\n" OK_MAIL
			"503 5.5.1 Error: MAIL transaction in progress\r\n" OK
			"454 4.7.0 TLS not available\r\n",
	  .ev = "REJECT 501 STARTTLS\nMAIL a@x.example\nREJECT 503 STARTTLS\nRSET\nSTARTTLS\nWAIT "
		"helo\n" },
	{ .name = "STARTTLS not offered",
	  .in = "STARTTLS\r\n",
	  .out = BANNER "500 5.5.1 Error: command not recognized\r\n",
	  .ev = "REJECT 500 unknown command\n" },
};

static void
test_extensions(void **state)
{
	check_table(ext_cases, SL_ARRAY_LEN(ext_cases));
}

/* ------------------------------------------------------------ long lines */

static char *
fill(char ch, size_t n)
{
	char *s = sl_malloc(n + 1);

	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* Command lines of 511, 512 and 513 octets including CRLF (RFC 5321 §4.5.3.1.4). */
static void
test_command_line_limit(void **state)
{
	for (size_t total = 510; total <= 514; total++) {
		char *x = fill('x', total - 7);  /* "NOOP " + x + CRLF */
		char *lf = fill('y', total - 6); /* "NOOP " + y + LF */
		struct tcase t = { 0 };
		bool ok = total <= 512;
		char *in = sl_asprintf("NOOP %s\r\nNOOP %s\nQUIT\r\n", x, lf);
		const char *reply = ok ? OK : "500 5.5.2 Error: command line too long\r\n";
		char *out = sl_asprintf(BANNER "%s%s" BYE, reply, reply);

		t.name = "command line limit";
		t.in = in;
		t.out = out;
		t.ev = ok ? "QUIT\n"
			  : "REJECT 500 command line too long\nREJECT 500 command line too "
			    "long\nQUIT\n";
		print_message("total %zu\n", total);
		check_case(&t);
		sl_free(x);
		sl_free(lf);
		sl_free(in);
		sl_free(out);
	}
}

/* A command line of 100000 octets, then a good one: streamed, never buffered. */
static void
test_command_line_huge(void **state)
{
	char *x = fill('x', 100000);
	char *in = sl_asprintf("HELO %s\r\nNOOP\r\n", x);
	struct sl_smtp_server_conf conf = { .hostname = "mx.example", .greeting = "ESMTP" };
	struct sl_buf out = SL_BUF_INIT;
	struct sl_smtp_server *s = sl_smtp_server_new(&conf, &out);
	struct sl_smtp_ev ev;
	size_t off = 0, used, total = strlen(in);

	/* 4096-octet reads: each is consumed whole while the line streams by. */
	for (;;) {
		size_t n = total - off < 4096 ? total - off : 4096;
		enum sl_smtp_ev_kind k = sl_smtp_server_next(s, in + off, n, &used, &ev, &out);

		off += used;
		if (k == SL_SMTP_EV_REJECT)
			break;
		assert_int_equal(k, SL_SMTP_EV_NONE);
		assert_int_equal(used, n);
	}
	assert_int_equal(ev.reply_code, 500);
	assert_int_equal(sl_smtp_server_next(s, in + off, strlen(in) - off, &used, &ev, &out),
			 SL_SMTP_EV_NONE);
	assert_int_equal(off + used, strlen(in));
	sl_buf_cstr(&out);
	assert_string_equal(out.data, BANNER "500 Error: command line too long\r\n250 Ok\r\n");
	sl_smtp_server_free(s);
	sl_buf_free(&out);
	sl_free(x);
	sl_free(in);
}

/* Text lines of 999, 1000 and 1001 octets including CRLF (RFC 5321 §4.5.3.1.6). */
static void
test_text_line_limit(void **state)
{
	for (int bdat = 0; bdat <= 1; bdat++) {
		for (size_t total = 999; total <= 1001; total++) {
			char *x = fill('x', total - 2);
			struct tcase t = { 0 };
			bool ok = total <= 1000;
			char *in, *out, *ev;

			if (bdat) {
				in = sl_asprintf(TB_IN "BDAT %zu LAST\r\n%s\r\n", total, x);
				out = sl_asprintf(TB_OUT "%s",
						  ok ? OK
						     : "500 5.5.6 Message refused: text line "
						       "longer than 1000 octets\r\n");
				ev = ok ? sl_asprintf(TB_EV
						      "DATA bdat\nBODY %s\\r\\n\nEOM len=%zu\n",
						      x, total)
					: sl_asprintf(TB_EV "DATA bdat\nEOM defects=2 500\nRSET\n");
			} else {
				/* A stuffed dot does not count. */
				in = sl_asprintf(TX_IN ".%s\r\n.\r\n", x);
				out = sl_asprintf(TX_OUT "%s",
						  ok ? OK
						     : "500 5.5.6 Message refused: text line "
						       "longer than 1000 octets\r\n");
				ev = ok ? sl_asprintf(TX_EV "BODY %s\\r\\n\nEOM len=%zu\n", x,
						      total)
					: sl_asprintf(TX_EV "EOM defects=2 500\nRSET\n");
			}
			t.name = bdat ? "text line limit, BDAT" : "text line limit, DATA";
			t.in = in;
			t.out = out;
			t.ev = ev;
			print_message("total %zu\n", total);
			check_case(&t);
			sl_free(x);
			sl_free(in);
			sl_free(out);
			sl_free(ev);
		}
	}
}

/* A bare LF resets the line length (IGNORE); several defects: size wins. */
static void
test_text_line_mixed(void **state)
{
	char *x = fill('x', 900);
	char *in = sl_asprintf(TX_IN "\r\n%s\n%s\r\n.\r\n", x, x);
	char *ev = sl_asprintf(TX_EV "BODY \\r\\n%s\\n%s\\r\\n\nEOM len=1805\n", x, x);
	struct tcase t = { .name = "long lines split by a bare LF",
			   .body = SL_SMTP_BARE_EOL_IGNORE,
			   .in = in,
			   .out = TX_OUT OK,
			   .ev = ev };
	char *in2 = sl_asprintf(TX_IN "%s%s\n\r\n.\r\n", x, x);
	struct tcase t2 = { .name = "all three defects",
			    .size = 100,
			    .in = in2,
			    .out = BANNER "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 100\r\n"
					  "250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
					  "250 ENHANCEDSTATUSCODES\r\n" OK_MAIL OK_RCPT GO
					  "552 5.3.4 Message size exceeds fixed limit\r\n",
			    .ev = TX_EV "EOM defects=7 552\nRSET\n" };

	check_case(&t);
	check_case(&t2);
	sl_free(x);
	sl_free(in);
	sl_free(ev);
	sl_free(in2);
}

/*
 * Every bare CR fixed is one BODY event; each call must cost what it
 * consumes, not a scan of the rest of the input (found by benchmarking:
 * this took minutes when the LF search was redone per call).
 */
static void
test_fix_linear(void **state)
{
	struct sl_smtp_server_conf conf = { .hostname = "mx.example",
					    .body_bare_eol = SL_SMTP_BARE_EOL_FIX,
					    .header_bare_eol = SL_SMTP_BARE_EOL_FIX };
	struct sl_buf out = SL_BUF_INIT, msg = SL_BUF_INIT;
	struct sl_smtp_server *s = sl_smtp_server_new(&conf, &out);
	struct sl_smtp_ev ev;
	size_t used, off = 0, events = 0, octets = 0;

	sl_buf_puts(&msg, "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n");
	for (int i = 0; i < 4 * 65536; i++)
		sl_buf_puts(&msg, "x\r");
	sl_buf_puts(&msg, "\r\n.\r\n");
	for (;;) {
		enum sl_smtp_ev_kind k =
			sl_smtp_server_next(s, msg.data + off, msg.len - off, &used, &ev, &out);

		off += used;
		if (k == SL_SMTP_EV_BODY) {
			events++;
			octets += ev.data_len;
		}
		if (ev.needs_verdict)
			sl_smtp_server_accept(s, NULL, &out);
		else if (k == SL_SMTP_EV_NONE)
			break;
	}
	assert_int_equal(off, msg.len);
	assert_int_equal(octets, 4 * 65536 * 3 + 2);
	assert_true(events >= 4 * 65536);
	assert_int_equal(sl_smtp_server_msg_cnt(s), 1);
	sl_smtp_server_free(s);
	sl_buf_free(&out);
	sl_buf_free(&msg);
}

/* Large messages come out as few, large BODY events pointing into the input. */
static void
test_body_zero_copy(void **state)
{
	struct sl_smtp_server_conf conf = { .hostname = "mx.example", .has_chunking = true };
	struct sl_buf out = SL_BUF_INIT, msg = SL_BUF_INIT;
	struct sl_smtp_server *s = sl_smtp_server_new(&conf, &out);
	struct sl_smtp_ev ev;
	size_t used, off = 0, events = 0;

	sl_buf_puts(&msg, TX_IN);
	for (int i = 0; i < 1000; i++)
		sl_buf_puts(&msg, "A line of text that needs no change at all.\r\n");
	sl_buf_puts(&msg, ".\r\n");
	for (;;) {
		enum sl_smtp_ev_kind k =
			sl_smtp_server_next(s, msg.data + off, msg.len - off, &used, &ev, &out);

		if (k == SL_SMTP_EV_BODY) {
			assert_true(ev.data >= msg.data + off &&
				    ev.data + ev.data_len <= msg.data + off + used);
			events++;
		}
		off += used;
		if (ev.needs_verdict)
			sl_smtp_server_accept(s, NULL, &out);
		else if (k == SL_SMTP_EV_NONE)
			break;
	}
	assert_int_equal(off, msg.len);
	assert_int_equal(events, 1);
	assert_int_equal(sl_smtp_server_msg_cnt(s), 1);
	sl_smtp_server_free(s);
	sl_buf_free(&out);
	sl_buf_free(&msg);
}

/* Facts for logs: HELO name, ESMTP, messages. */
static void
test_facts(void **state)
{
	struct sl_smtp_server_conf conf = { .hostname = "mx.example", .has_xclient = true };
	struct sl_buf out = SL_BUF_INIT;
	struct sl_smtp_server *s = sl_smtp_server_new(&conf, &out);
	const char *in = "EHLO c.example\r\nXCLIENT ADDR=192.0.2.1\r\nHELO d.example\r\n";
	struct sl_smtp_ev ev;
	size_t used, off = 0;

	assert_string_equal(sl_smtp_server_helo(s), "");
	assert_false(sl_smtp_server_is_esmtp(s));
	assert_int_equal(sl_smtp_server_next(s, in, strlen(in), &used, &ev, &out), SL_SMTP_EV_HELO);
	off += used;
	sl_smtp_server_accept(s, NULL, &out);
	assert_string_equal(sl_smtp_server_helo(s), "c.example");
	assert_true(sl_smtp_server_is_esmtp(s));
	assert_int_equal(sl_smtp_server_next(s, in + off, strlen(in) - off, &used, &ev, &out),
			 SL_SMTP_EV_XCLIENT);
	off += used;
	sl_smtp_server_accept(s, NULL, &out);
	assert_string_equal(sl_smtp_server_helo(s), "");
	assert_false(sl_smtp_server_is_esmtp(s));
	assert_int_equal(sl_smtp_server_next(s, in + off, strlen(in) - off, &used, &ev, &out),
			 SL_SMTP_EV_HELO);
	sl_smtp_server_accept(s, NULL, &out);
	assert_string_equal(sl_smtp_server_helo(s), "d.example");
	assert_false(sl_smtp_server_is_esmtp(s));
	assert_int_equal(sl_smtp_server_msg_cnt(s), 0);
	/* Closing: no more events, answers ignored. */
	sl_smtp_server_shutdown(s, &out);
	assert_true(sl_smtp_server_is_closing(s));
	assert_int_equal(sl_smtp_server_next(s, "NOOP\r\n", 6, &used, &ev, &out), SL_SMTP_EV_NONE);
	assert_int_equal(used, 0);
	sl_smtp_server_timeout(s, &out);
	sl_smtp_server_free(s);
	sl_smtp_server_free(NULL);
	sl_buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_mail_syntax),
		cmocka_unit_test(test_rcpt_syntax),
		cmocka_unit_test(test_rcpt_utf8),
		cmocka_unit_test(test_sequence),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_command_line_limit),
		cmocka_unit_test(test_command_line_huge),
		cmocka_unit_test(test_text_line_limit),
		cmocka_unit_test(test_text_line_mixed),
		cmocka_unit_test(test_body_zero_copy),
		cmocka_unit_test(test_fix_linear),
		cmocka_unit_test(test_facts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
