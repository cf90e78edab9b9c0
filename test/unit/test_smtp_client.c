/*
 * test/unit/test_smtp_client.c - the SMTP/LMTP client machine (proto/smtp_client.c).
 *
 * Table-driven: each case is a conf, the server's bytes, what the caller
 * does at each READY (start the next transaction, RSET, QUIT or nothing),
 * the transactions, and the exact client transcript (commands and content
 * as the iovecs give it) and event sequence expected.  Every case runs
 * with the server's bytes whole, byte by byte, and (when short) split in
 * two at every position; all runs must give the same transcript and
 * events.  Separate tests split message content into iovecs at every pair
 * of positions and compare the stuffed result with a plain reference.
 *
 * Threads: one.  Parses nothing itself.  Ownership: each run frees what it
 * made.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "proto/smtp_client.h"

/* Conf switches; the base pipelines when offered and does not use BDAT. */
enum {
	F_LMTP = 1u << 0,
	F_NOPIPE = 1u << 1, /* use_pipelining off */
	F_CHUNK = 1u << 2,  /* use_chunking on */
	F_CAPS = 1u << 3,   /* log the caps at the first READY */
	F_WAIT = 1u << 4,   /* log sl_smtp_client_waiting_for() after every event */
	F_ANS = 1u << 5,    /* log ev.answers of RCPT, DONE and FAIL */
};

struct ttxn {
	const char *sender;
	const char *rcpts[8]; /* NULL-terminated */
	uint64_t size;        /* 0: the content's length */
	bool is_8bit;
	bool is_utf8;
	const char *content;
	size_t split; /* content in iovecs of this many octets (0: one iovec) */
};

struct tcase {
	const char *name;
	unsigned flags;
	const char *srv; /* the server's bytes */
	size_t srv_len;  /* 0: strlen(srv) */
	const char *ops; /* one per READY: 'T' next txn, 'R' RSET, 'Q' QUIT; else nothing */
	struct ttxn t[4];
	const char *out; /* the client's bytes */
	const char *ev;
};

#define GREET  "220 mx.example ESMTP\r\n"
#define EHLO   "EHLO client.example\r\n"
#define E_PIPE "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
#define E_NONE "250-mx.example\r\n250 8BITMIME\r\n"
#define E_CHP  "250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
#define E_CH   "250-mx.example\r\n250 CHUNKING\r\n"
#define E_ALL                                                                                    \
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n" \
	"250-CHUNKING\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"
#define OKM    "250 2.1.0 Ok\r\n"
#define OKR    "250 2.1.5 Ok\r\n"
#define GO     "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED "250 2.0.0 Ok: queued as ABC\r\n"
#define BYE    "221 2.0.0 Bye\r\n"
#define MAILC  "MAIL FROM:<a@x.example>\r\n"
#define RCPTB  "RCPT TO:<b@y.example>\r\n"
#define RCPTC  "RCPT TO:<c@y.example>\r\n"
#define RCPTD  "RCPT TO:<d@y.example>\r\n"
#define DATA   "DATA\r\n"
#define QUIT   "QUIT\r\n"
#define RSET   "RSET\r\n"
#define C1     "Subject: hi\r\n\r\nhello\r\n" /* 22 octets */
#define C1_END C1 ".\r\n"
#define EV_Q   "250 2.0.0 Ok: queued as ABC"
#define CAPS_ALL                                                                \
	"CAPS esmtp pipelining 8bitmime smtputf8 chunking size=10000 starttls " \
	"enhancedstatuscodes\n"

#define TX1                                                                        \
	{                                                                          \
		.sender = "a@x.example", .rcpts = { "b@y.example" }, .content = C1 \
	}
#define TX3                                                                                        \
	{                                                                                          \
		.sender = "a@x.example", .rcpts = { "b@y.example", "c@y.example", "d@y.example" }, \
		.content = C1                                                                      \
	}

/* ------------------------------------------------------------ the driver */

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
	[SL_SMTPC_EV_NONE] = "NONE",     [SL_SMTPC_EV_READY] = "READY", [SL_SMTPC_EV_RCPT] = "RCPT",
	[SL_SMTPC_EV_BODY] = "BODY",     [SL_SMTPC_EV_DONE] = "DONE",   [SL_SMTPC_EV_FAIL] = "FAIL",
	[SL_SMTPC_EV_CLOSED] = "CLOSED",
};

static const char *const wait_names[] = {
	[SL_SMTPC_WAIT_GREETING] = "greeting", [SL_SMTPC_WAIT_EHLO] = "ehlo",
	[SL_SMTPC_WAIT_MAIL] = "mail",         [SL_SMTPC_WAIT_RCPT] = "rcpt",
	[SL_SMTPC_WAIT_DATA] = "data",         [SL_SMTPC_WAIT_BODY_END] = "body_end",
	[SL_SMTPC_WAIT_RSET] = "rset",         [SL_SMTPC_WAIT_QUIT] = "quit",
	[SL_SMTPC_WAIT_NONE] = "none",
};

static void
ev_log(struct sl_buf *b, const struct sl_smtpc_ev *ev)
{
	sl_buf_puts(b, ev_names[ev->kind]);
	switch (ev->kind) {
	case SL_SMTPC_EV_RCPT:
		sl_buf_printf(b, " %zu", ev->rcpt_idx);
		/* fall through */
	case SL_SMTPC_EV_READY:
	case SL_SMTPC_EV_DONE:
	case SL_SMTPC_EV_FAIL:
	case SL_SMTPC_EV_CLOSED:
		sl_buf_printf(b, " %u %s", ev->code, ev->enhanced[0] ? ev->enhanced : "-");
		if (ev->text[0] != '\0') {
			sl_buf_puts(b, " ");
			escape(b, ev->text, strlen(ev->text));
		}
		if (ev->kind == SL_SMTPC_EV_DONE)
			sl_buf_printf(b, " bytes=%llu", (unsigned long long)ev->bytes_sent);
		break;
	default:
		break;
	}
}

static void
caps_log(struct sl_buf *b, const struct sl_smtp_client_caps *k)
{
	sl_buf_puts(b, "CAPS");
	sl_buf_puts(b, k->is_esmtp ? " esmtp" : " smtp");
	if (k->has_pipelining)
		sl_buf_puts(b, " pipelining");
	if (k->has_8bitmime)
		sl_buf_puts(b, " 8bitmime");
	if (k->has_smtputf8)
		sl_buf_puts(b, " smtputf8");
	if (k->has_chunking)
		sl_buf_puts(b, " chunking");
	if (k->has_size)
		sl_buf_printf(b, " size=%llu", (unsigned long long)k->size_limit);
	if (k->has_starttls)
		sl_buf_puts(b, " starttls");
	if (k->has_enhancedstatuscodes)
		sl_buf_puts(b, " enhancedstatuscodes");
	sl_buf_puts(b, "\n");
}

/* The content of `t` as iovecs of t->split octets. */
static size_t
content_iov(const struct ttxn *t, struct iovec *iov, size_t max)
{
	size_t len = strlen(t->content), n = 0;
	size_t step = t->split ? t->split : len;

	for (size_t off = 0; off < len && n < max; off += step) {
		iov[n].iov_base = (void *)(t->content + off);
		iov[n++].iov_len = off + step <= len ? step : len - off;
	}
	return n;
}

/* Ask for the iovecs the way a caller does, check the count contract, write them to `out`. */
static void
write_body(struct sl_smtp_client *c, const struct ttxn *t, struct sl_buf *out)
{
	struct iovec content[64], *iov;
	size_t cnt = content_iov(t, content, SL_ARRAY_LEN(content));
	size_t need = sl_smtp_client_body_iov(c, content, cnt, NULL, 0);

	assert_true(need >= 1);
	iov = sl_calloc(need + 1, sizeof(*iov));
	if (need > 1)
		assert_int_equal(sl_smtp_client_body_iov(c, content, cnt, iov, need - 1), need);
	assert_int_equal(sl_smtp_client_body_iov(c, content, cnt, iov, need + 1), need);
	for (size_t i = 0; i < need; i++) {
		assert_true(iov[i].iov_len > 0);
		sl_buf_append(out, iov[i].iov_base, iov[i].iov_len);
	}
	sl_free(iov);
	sl_smtp_client_body_done(c);
}

/*
 * Run one case.  piece == 0: the server's bytes whole; piece == 1: byte by
 * byte; piece > 1: two pieces, the first `piece` octets long.
 */
static void
run(const struct tcase *t, size_t piece, struct sl_buf *out, struct sl_buf *evs)
{
	struct sl_smtp_client_conf conf = {
		.helo_name = "client.example",
		.is_lmtp = t->flags & F_LMTP,
		.use_chunking = t->flags & F_CHUNK,
		.use_pipelining = !(t->flags & F_NOPIPE),
	};
	struct sl_smtp_client_txn txn[SL_ARRAY_LEN(t->t)];
	struct sl_buf in = SL_BUF_INIT;
	size_t len = t->srv_len ? t->srv_len : strlen(t->srv), fed = 0, opi = 0, ti = 0;
	const struct ttxn *cur = NULL;
	struct sl_smtp_client *c = sl_smtp_client_new(&conf);
	bool has_caps = false;

	for (size_t i = 0; i < SL_ARRAY_LEN(t->t); i++) {
		const struct ttxn *x = &t->t[i];
		size_t n = 0;

		while (n < SL_ARRAY_LEN(x->rcpts) && x->rcpts[n] != NULL)
			n++;
		txn[i] = (struct sl_smtp_client_txn){
			.sender = x->sender,
			.rcpts = x->rcpts,
			.rcpt_cnt = n,
			.size = x->size ? x->size : (x->content ? strlen(x->content) : 0),
			.is_8bitmime = x->is_8bit,
			.is_smtputf8 = x->is_utf8,
		};
	}
	assert_int_equal(sl_smtp_client_waiting_for(c), SL_SMTPC_WAIT_GREETING);
	for (int guard = 0; guard < 100000; guard++) {
		struct sl_smtpc_ev ev;
		size_t used = 99;
		enum sl_smtpc_ev_kind k = sl_smtp_client_next(c, in.data, in.len, &used, &ev, out);

		assert_int_equal(k, ev.kind);
		assert_true(used <= in.len);
		assert_non_null(ev.text);
		sl_buf_consume(&in, used);
		if (k == SL_SMTPC_EV_NONE) {
			if (fed < len) {
				size_t n = piece == 0   ? len - fed
					   : piece == 1 ? 1
					   : fed == 0   ? piece
							: len - fed;

				sl_buf_append(&in, t->srv + fed, n);
				fed += n;
				continue;
			}
			break;
		}
		if (k == SL_SMTPC_EV_READY && (t->flags & F_CAPS) && !has_caps) {
			caps_log(evs, sl_smtp_client_caps(c));
			has_caps = true;
		}
		ev_log(evs, &ev);
		if ((t->flags & F_ANS) &&
		    (k == SL_SMTPC_EV_RCPT || k == SL_SMTPC_EV_DONE || k == SL_SMTPC_EV_FAIL))
			sl_buf_printf(evs, " ans=%s", wait_names[ev.answers]);
		if (t->flags & F_WAIT)
			sl_buf_printf(evs, " wait=%s", wait_names[sl_smtp_client_waiting_for(c)]);
		sl_buf_puts(evs, "\n");
		if (k == SL_SMTPC_EV_READY) {
			char op = t->ops != NULL ? t->ops[opi] : '\0';

			if (op != '\0')
				opi++;
			if (op == 'T') {
				assert_true(ti < SL_ARRAY_LEN(t->t));
				cur = &t->t[ti];
				sl_smtp_client_send(c, &txn[ti++], out);
			} else if (op == 'R') {
				sl_smtp_client_rset(c, out);
			} else if (op == 'Q') {
				sl_smtp_client_quit(c, out);
			}
		} else if (k == SL_SMTPC_EV_BODY) {
			struct sl_smtpc_ev ev2;
			size_t used2 = 1;

			/* Until the content is written the machine takes nothing. */
			assert_int_equal(sl_smtp_client_waiting_for(c), SL_SMTPC_WAIT_NONE);
			assert_int_equal(sl_smtp_client_next(c, in.data, in.len, &used2, &ev2, out),
					 SL_SMTPC_EV_NONE);
			assert_int_equal(used2, 0);
			assert_non_null(cur);
			write_body(c, cur, out);
		} else if (k == SL_SMTPC_EV_FAIL || k == SL_SMTPC_EV_CLOSED) {
			struct sl_smtpc_ev ev2;
			size_t used2 = 1;

			assert_int_equal(sl_smtp_client_next(c, in.data, in.len, &used2, &ev2, out),
					 SL_SMTPC_EV_NONE);
			assert_int_equal(used2, 0);
			break;
		}
	}
	sl_buf_printf(evs, "END %s %u\n", wait_names[sl_smtp_client_waiting_for(c)],
		      sl_smtp_client_txn_cnt(c));
	sl_smtp_client_free(c);
	sl_buf_free(&in);
}

static void
check_case(const struct tcase *t)
{
	size_t len = t->srv_len ? t->srv_len : strlen(t->srv);
	struct sl_buf eout = SL_BUF_INIT, got = SL_BUF_INIT;

	print_message("case: %s\n", t->name);
	escape(&eout, t->out, strlen(t->out));
	sl_buf_cstr(&eout);
	for (size_t piece = 0; piece < len; piece = piece == 0 ? 1 : piece + 1) {
		struct sl_buf out = SL_BUF_INIT, evs = SL_BUF_INIT;

		if (piece > 1 && len > 400)
			break;
		run(t, piece, &out, &evs);
		escape(&got, out.data, out.len);
		if (strcmp(sl_buf_cstr(&got), eout.data) != 0)
			print_message("case %s, piece %zu: transcript differs\n", t->name, piece);
		assert_string_equal(got.data, eout.data);
		if (strcmp(sl_buf_cstr(&evs), t->ev) != 0)
			print_message("case %s, piece %zu: events differ\n", t->name, piece);
		assert_string_equal(evs.data, t->ev);
		sl_buf_reset(&got);
		sl_buf_free(&out);
		sl_buf_free(&evs);
	}
	sl_buf_free(&eout);
	sl_buf_free(&got);
}

static void
check_table(const struct tcase *tab, size_t n)
{
	for (size_t i = 0; i < n; i++)
		check_case(&tab[i]);
}

/* ------------------------------------------------------------ greeting and EHLO */

static const struct tcase greeting_cases[] = {
	{ .name = "multi-line 220, EHLO with every capability, QUIT",
	  .flags = F_CAPS | F_WAIT,
	  .srv = "220-mx.example ESMTP\r\n220-more\r\n220 end\r\n" E_ALL BYE,
	  .ops = "Q",
	  .out = EHLO QUIT,
	  .ev = CAPS_ALL "READY 0 - wait=none\nCLOSED 221 2.0.0 Bye wait=none\nEND none 0\n" },
	{ .name = "greeting 421: FAIL, no QUIT",
	  .srv = "421 4.3.2 mx.example busy, try later\r\n",
	  .out = "",
	  .ev = "FAIL 421 4.3.2 mx.example busy, try later\nEND none 0\n" },
	{ .name = "greeting 554: QUIT, FAIL",
	  .srv = "554-5.7.1 mx.example: no\r\n554 5.7.1 not for you\r\n",
	  .out = QUIT,
	  .ev = "FAIL 554 5.7.1 mx.example: no not for you\nEND none 0\n" },
	{ .name = "greeting 450",
	  .srv = "450 later\r\n",
	  .out = QUIT,
	  .ev = "FAIL 450 - later\nEND none 0\n" },
	{ .name = "any 2xx greets",
	  .srv = "250 mx.example\r\n" E_NONE,
	  .out = EHLO,
	  .ev = "READY 0 -\nEND none 0\n" },
	{ .name = "3xx greeting: protocol error",
	  .srv = "354 what\r\n",
	  .out = "",
	  .ev = "FAIL 0 - unexpected 3xx reply\nEND none 0\n" },
	{ .name = "EHLO refused 502: HELO, no extensions",
	  .flags = F_CAPS,
	  .srv = GREET "502 5.5.1 Error: command not implemented\r\n250 mx.example\r\n" OKM OKR
		       "354 go\r\n" QUEUED BYE,
	  .ops = "TQ",
	  .t = { TX1 },
	  .out = EHLO "HELO client.example\r\n" MAILC RCPTB DATA C1_END QUIT,
	  .ev = "CAPS smtp\nREADY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nCLOSED 221 2.0.0 Bye\nEND none 1\n" },
	{ .name = "EHLO refused 500: HELO, waiting for its reply",
	  .flags = F_WAIT,
	  .srv = GREET "500 5.5.2 what\r\n",
	  .out = EHLO "HELO client.example\r\n",
	  .ev = "END ehlo 0\n" },
	{ .name = "EHLO 550, HELO 550: QUIT, FAIL",
	  .srv = GREET "550 no EHLO\r\n550 5.7.1 no HELO either\r\n",
	  .out = EHLO "HELO client.example\r\n" QUIT,
	  .ev = "FAIL 550 5.7.1 no HELO either\nEND none 0\n" },
	{ .name = "EHLO 451: QUIT, FAIL (no HELO)",
	  .srv = GREET "451 4.3.0 later\r\n",
	  .out = EHLO QUIT,
	  .ev = "FAIL 451 4.3.0 later\nEND none 0\n" },
	{ .name = "EHLO 421: FAIL without QUIT",
	  .srv = GREET "421 4.7.0 go away\r\n",
	  .out = EHLO,
	  .ev = "FAIL 421 4.7.0 go away\nEND none 0\n" },
	{ .name = "HELO 421: FAIL without QUIT",
	  .srv = GREET "502 no\r\n421 closing\r\n",
	  .out = EHLO "HELO client.example\r\n",
	  .ev = "FAIL 421 - closing\nEND none 0\n" },
	{ .name = "LMTP: LHLO",
	  .flags = F_LMTP | F_CAPS,
	  .srv = "220 lmtp.example LMTP\r\n250-lmtp.example\r\n250-PIPELINING\r\n250 "
		 "ENHANCEDSTATUSCODES\r\n" BYE,
	  .ops = "Q",
	  .out = "LHLO client.example\r\n" QUIT,
	  .ev = "CAPS esmtp pipelining enhancedstatuscodes\nREADY 0 -\nCLOSED 221 2.0.0 "
		"Bye\nEND none 0\n" },
	{ .name = "LMTP: LHLO refused 500 is FAIL (no HELO)",
	  .flags = F_LMTP,
	  .srv = GREET "500 5.5.1 unknown command\r\n",
	  .out = "LHLO client.example\r\n" QUIT,
	  .ev = "FAIL 500 5.5.1 unknown command\nEND none 0\n" },
	{ .name = "EHLO keywords in any case; SIZE 0 is no limit",
	  .flags = F_CAPS,
	  .srv = GREET
	  "250-mx.example hello\r\n250-pipelining\r\n250-Size 0\r\n250-8bitMIME\r\n"
	  "250-smtputf8\r\n250-chunking\r\n250-StartTLS\r\n250 enhancedStatusCodes\r\n",
	  .out = EHLO,
	  .ev = "CAPS esmtp pipelining 8bitmime smtputf8 chunking size=0 starttls "
		"enhancedstatuscodes\nREADY 0 -\nEND none 0\n" },
	{ .name = "EHLO: SIZE without a number, garbled, huge; unknown and look-alike keywords",
	  .flags = F_CAPS,
	  .srv = GREET "250-mx.example\r\n250-SIZE\r\n250-SIZE 12x\r\n250-AUTH PLAIN LOGIN\r\n"
		       "250-PIPELININGX\r\n250-XPIPELINING\r\n250-DSN\r\n250 SIZE "
		       "99999999999999999999999\r\n",
	  .out = EHLO,
	  .ev = "CAPS esmtp size=0\nREADY 0 -\nEND none 0\n" },
	{ .name = "EHLO: SIZE with a limit; keywords on the first line do not count",
	  .flags = F_CAPS,
	  .srv = GREET "250-PIPELINING\r\n250-SIZE  52428800 \r\n250 8BITMIME\r\n",
	  .out = EHLO,
	  .ev = "CAPS esmtp 8bitmime size=52428800\nREADY 0 -\nEND none 0\n" },
	{ .name = "EHLO: a one-line reply has no extensions",
	  .flags = F_CAPS,
	  .srv = GREET "250 mx.example PIPELINING\r\n",
	  .out = EHLO,
	  .ev = "CAPS esmtp\nREADY 0 -\nEND none 0\n" },
};

static void
test_greeting(void **state)
{
	check_table(greeting_cases, SL_ARRAY_LEN(greeting_cases));
}

/* ------------------------------------------------------------ transactions */

static const struct tcase txn_cases[] = {
	{ .name = "pipelined, one recipient, delivered",
	  .flags = F_WAIT,
	  .srv = GREET E_PIPE OKM OKR GO QUEUED BYE,
	  .ops = "TQ",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END QUIT,
	  .ev = "READY 0 - wait=none\nBODY wait=none\nRCPT 0 " EV_Q " wait=none\nDONE " EV_Q
		" bytes=22 wait=none\nREADY 0 - wait=none\nCLOSED 221 2.0.0 Bye wait=none\nEND "
		"none 1\n" },
	{ .name = "waiting_for through a pipelined transaction",
	  .flags = F_WAIT,
	  .srv = GREET E_PIPE OKM,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 - wait=none\nEND rcpt 0\n" },
	{ .name = "waiting_for: 354",
	  .srv = GREET E_PIPE OKM OKR,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nEND data 0\n" },
	{ .name = "waiting_for: the reply to the content",
	  .srv = GREET E_PIPE OKM OKR GO,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nEND body_end 0\n" },
	{ .name = "waiting_for: MAIL",
	  .srv = GREET E_PIPE,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nEND mail 0\n" },
	{ .name = "not pipelined (not offered): one command at a time, mixed RCPT outcomes",
	  .flags = F_WAIT,
	  .srv = GREET E_NONE OKM OKR "450 4.2.0 mailbox busy\r\n550 5.1.1 no such user\r\n" GO
				      "250 ok\r\n" BYE,
	  .ops = "TQ",
	  .t = { TX3 },
	  .out = EHLO MAILC RCPTB RCPTC RCPTD DATA C1_END QUIT,
	  .ev = "READY 0 - wait=none\nRCPT 1 450 4.2.0 mailbox busy wait=rcpt\nRCPT 2 550 5.1.1 "
		"no such user wait=data\nBODY wait=none\nRCPT 0 250 - ok wait=none\nDONE 250 - ok "
		"bytes=22 wait=none\nREADY 0 - wait=none\nCLOSED 221 2.0.0 Bye wait=none\nEND none "
		"1\n" },
	{ .name = "pipelining offered but not used",
	  .flags = F_NOPIPE,
	  .srv = GREET E_PIPE OKM OKR GO QUEUED,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q " bytes=22\nREADY 0 -\nEND "
		"none 1\n" },
	{ .name = "pipelined, many recipients, 2xx/4xx/5xx per RCPT, final 250",
	  .srv = GREET E_PIPE OKM OKR
	  "550 5.1.1 <c@y.example>: unknown\r\n250 2.1.5 Ok\r\n"
	  "451 4.7.1 greylisted\r\n552 5.2.2 mailbox full\r\n" GO QUEUED,
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example", "d@y.example", "e@y.example",
			      "f@y.example" },
		   .content = C1 } },
	  .out = EHLO MAILC RCPTB RCPTC RCPTD
	  "RCPT TO:<e@y.example>\r\nRCPT TO:<f@y.example>\r\n" DATA C1_END,
	  .ev = "READY 0 -\nRCPT 1 550 5.1.1 <c@y.example>: unknown\nRCPT 3 451 4.7.1 "
		"greylisted\nRCPT 4 552 5.2.2 mailbox full\nBODY\nRCPT 0 " EV_Q "\nRCPT 2 " EV_Q
		"\nDONE " EV_Q " bytes=22\nREADY 0 -\nEND none 1\n" },
	{ .name = "final 4xx goes to every accepted recipient",
	  .srv = GREET E_PIPE OKM OKR "550 no\r\n" OKR GO "451 4.3.0 try later\r\n",
	  .ops = "T",
	  .t = { TX3 },
	  .out = EHLO MAILC RCPTB RCPTC RCPTD DATA C1_END,
	  .ev = "READY 0 -\nRCPT 1 550 - no\nBODY\nRCPT 0 451 4.3.0 try later\nRCPT 2 451 4.3.0 "
		"try later\nDONE 451 4.3.0 try later bytes=22\nREADY 0 -\nEND none 1\n" },
	{ .name = "final 5xx, multi-line",
	  .srv = GREET E_PIPE OKM OKR GO "554-5.7.1 spam\r\n554 5.7.1 see http://x/\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 554 5.7.1 spam see http://x/\nDONE 554 5.7.1 spam see "
		"http://x/ bytes=22\nREADY 0 -\nEND none 1\n" },
	{ .name = "MAIL refused, pipelined: every recipient gets it, the 503s are read",
	  .srv = GREET E_PIPE "550 5.7.1 sender refused\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 "
			      "5.5.1 no\r\n503 5.5.1 no\r\n" OKM OKR GO QUEUED,
	  .ops = "TT",
	  .t = { TX3, TX1 },
	  .out = EHLO MAILC RCPTB RCPTC RCPTD DATA MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nRCPT 0 550 5.7.1 sender refused\nRCPT 1 550 5.7.1 sender "
		"refused\nRCPT 2 550 5.7.1 sender refused\nDONE 550 5.7.1 sender refused "
		"bytes=0\nREADY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nEND none 2\n" },
	{ .name = "MAIL refused, pipelined, and DATA answered 354 anyway: a lone dot",
	  .srv = GREET E_PIPE "451 4.3.0 later\r\n503 no\r\n" GO "554 no valid recipients\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA ".\r\n",
	  .ev = "READY 0 -\nRCPT 0 451 4.3.0 later\nDONE 451 4.3.0 later bytes=0\nREADY 0 -"
		"\nEND none 1\n" },
	{ .name = "MAIL refused, not pipelined",
	  .flags = F_NOPIPE,
	  .srv = GREET E_PIPE "553 5.1.8 bad sender domain\r\n",
	  .ops = "TQ",
	  .t = { TX3 },
	  .out = EHLO MAILC QUIT,
	  .ev = "READY 0 -\nRCPT 0 553 5.1.8 bad sender domain\nRCPT 1 553 5.1.8 bad sender "
		"domain\nRCPT 2 553 5.1.8 bad sender domain\nDONE 553 5.1.8 bad sender domain "
		"bytes=0\nREADY 0 -\nEND quit 1\n" },
	{ .name = "all RCPTs refused, pipelined: DATA's 554 read, no content, RSET before the next",
	  .srv = GREET E_PIPE OKM "550 5.1.1 no\r\n550 5.1.1 nope\r\n"
				  "554 5.5.1 Error: no valid recipients\r\n" OKR OKM OKR GO QUEUED,
	  .ops = "TT",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example" },
		   .content = C1 },
		 TX1 },
	  .out = EHLO MAILC RCPTB RCPTC DATA RSET MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nRCPT 0 550 5.1.1 no\nRCPT 1 550 5.1.1 nope\nDONE 0 - no recipient "
		"accepted bytes=0\nREADY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nEND none 2\n" },
	{ .name = "all RCPTs refused, pipelined, DATA answered 354: a lone dot, its reply read",
	  .srv = GREET E_PIPE OKM "550 5.1.1 no\r\n" GO "554 5.5.1 no recipients\r\n" BYE,
	  .ops = "TQ",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA ".\r\n" QUIT,
	  .ev = "READY 0 -\nRCPT 0 550 5.1.1 no\nDONE 0 - no recipient accepted bytes=0\nREADY 0 "
		"-\nCLOSED 221 2.0.0 Bye\nEND none 1\n" },
	{ .name = "all RCPTs refused, not pipelined: no DATA; RSET before the next MAIL",
	  .srv = GREET E_NONE OKM "550 5.1.1 no\r\n" OKR OKM OKR GO QUEUED,
	  .ops = "TT",
	  .t = { TX1, TX1 },
	  .out = EHLO MAILC RCPTB RSET MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nRCPT 0 550 5.1.1 no\nDONE 0 - no recipient accepted "
		"bytes=0\nREADY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nEND none 2\n" },
	{ .name = "DATA refused: the accepted recipients get it; RSET before the next",
	  .srv = GREET E_PIPE OKM OKR "550 5.1.1 no\r\n" OKR
				      "451 4.3.1 insufficient storage\r\n" OKR OKM OKR GO QUEUED,
	  .ops = "TT",
	  .t = { TX3, TX1 },
	  .out = EHLO MAILC RCPTB RCPTC RCPTD DATA RSET MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nRCPT 1 550 5.1.1 no\nRCPT 0 451 4.3.1 insufficient storage\nRCPT 2 "
		"451 4.3.1 insufficient storage\nDONE 451 4.3.1 insufficient storage "
		"bytes=0\nREADY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nEND none 2\n" },
	{ .name = "RSET before the next MAIL, not pipelined; waiting_for says rset (RSET_Timeout)",
	  .flags = F_NOPIPE | F_WAIT,
	  .srv = GREET E_PIPE OKM "550 no\r\n",
	  .ops = "TT",
	  .t = { TX1, TX1 },
	  .out = EHLO MAILC RCPTB RSET,
	  .ev = "READY 0 - wait=none\nRCPT 0 550 - no wait=none\nDONE 0 - no recipient accepted "
		"bytes=0 wait=none\nREADY 0 - wait=none\nEND rset 1\n" },
	{ .name = "the RSET before MAIL refused: FAIL",
	  .srv = GREET E_PIPE OKM "550 no\r\n554 no\r\n"
				  "502 5.5.1 no RSET here\r\n",
	  .ops = "TT",
	  .t = { TX1, TX1 },
	  .out = EHLO MAILC RCPTB DATA RSET MAILC RCPTB DATA QUIT,
	  .ev = "READY 0 -\nRCPT 0 550 - no\nDONE 0 - no recipient accepted bytes=0\nREADY 0 -"
		"\nFAIL 502 5.5.1 no RSET here\nEND none 1\n" },
	{ .name = "LMTP: one reply per accepted recipient after the content",
	  .flags = F_LMTP,
	  .srv = "220 lmtp\r\n250-lmtp\r\n250 PIPELINING\r\n" OKM OKR "550 5.1.1 unknown\r\n" OKR GO
		 "250 2.0.0 <b> delivered\r\n452 4.2.2 <d> over quota\r\n" BYE,
	  .ops = "TQ",
	  .t = { TX3 },
	  .out = "LHLO client.example\r\n" MAILC RCPTB RCPTC RCPTD DATA C1_END QUIT,
	  .ev = "READY 0 -\nRCPT 1 550 5.1.1 unknown\nBODY\nRCPT 0 250 2.0.0 <b> delivered\nRCPT "
		"2 452 4.2.2 <d> over quota\nDONE 452 4.2.2 <d> over quota bytes=22\nREADY 0 -"
		"\nCLOSED 221 2.0.0 Bye\nEND none 1\n" },
	{ .name = "LMTP: DATA refused is one reply",
	  .flags = F_LMTP,
	  .srv = "220 lmtp\r\n250-lmtp\r\n250 PIPELINING\r\n" OKM OKR OKR "554 no\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example" },
		   .content = C1 } },
	  .out = "LHLO client.example\r\n" MAILC RCPTB RCPTC DATA,
	  .ev = "READY 0 -\nRCPT 0 554 - no\nRCPT 1 554 - no\nDONE 554 - no bytes=0\nREADY 0 -"
		"\nEND none 1\n" },
	{ .name = "LMTP: 354 without a recipient: the lone dot has no reply",
	  .flags = F_LMTP,
	  .srv = "220 lmtp\r\n250-lmtp\r\n250 PIPELINING\r\n" OKM "550 no\r\n" GO BYE,
	  .ops = "TQ",
	  .t = { TX1 },
	  .out = "LHLO client.example\r\n" MAILC RCPTB DATA ".\r\n" QUIT,
	  .ev = "READY 0 -\nRCPT 0 550 - no\nDONE 0 - no recipient accepted bytes=0\nREADY 0 -"
		"\nCLOSED 221 2.0.0 Bye\nEND none 1\n" },
	{ .name = "reuse: three transactions, then QUIT",
	  .srv = GREET E_PIPE OKM OKR GO QUEUED OKM OKR GO "250 2.0.0 second\r\n" OKM OKR GO
							   "250 2.0.0 third\r\n" BYE,
	  .ops = "TTTQ",
	  .t = { TX1,
		 { .sender = "", .rcpts = { "c@y.example" }, .content = "x\r\n" },
		 { .sender = "a@x.example", .rcpts = { "d@y.example" }, .content = "" } },
	  .out = EHLO MAILC RCPTB DATA C1_END "MAIL FROM:<>\r\n" RCPTC DATA
					      "x\r\n.\r\n" MAILC RCPTD DATA ".\r\n" QUIT,
	  .ev = "READY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nBODY\nRCPT 0 250 2.0.0 second\nDONE 250 2.0.0 second "
		"bytes=3\nREADY 0 -\nBODY\nRCPT 0 250 2.0.0 third\nDONE 250 2.0.0 third "
		"bytes=0\nREADY 0 -\nCLOSED 221 2.0.0 Bye\nEND none 3\n" },
	{ .name = "RSET, then QUIT",
	  .flags = F_WAIT,
	  .srv = GREET E_PIPE OKM OKR GO QUEUED "250 2.0.0 reset\r\n" BYE,
	  .ops = "TRQ",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END RSET QUIT,
	  .ev = "READY 0 - wait=none\nBODY wait=none\nRCPT 0 " EV_Q " wait=none\nDONE " EV_Q
		" bytes=22 wait=none\nREADY 0 - wait=none\nREADY 250 2.0.0 reset wait=none\nCLOSED "
		"221 2.0.0 Bye wait=none\nEND none 1\n" },
	{ .name = "waiting_for: RSET",
	  .srv = GREET E_PIPE,
	  .ops = "R",
	  .out = EHLO RSET,
	  .ev = "READY 0 -\nEND rset 0\n" },
	{ .name = "RSET refused: QUIT, FAIL",
	  .srv = GREET E_PIPE "500 5.5.1 what\r\n",
	  .ops = "R",
	  .out = EHLO RSET QUIT,
	  .ev = "READY 0 -\nFAIL 500 5.5.1 what\nEND none 0\n" },
	{ .name = "QUIT answered with something else: CLOSED all the same",
	  .srv = GREET E_PIPE "500 5.5.1 what\r\n",
	  .ops = "Q",
	  .out = EHLO QUIT,
	  .ev = "READY 0 -\nCLOSED 500 5.5.1 what\nEND none 0\n" },
	{ .name = "QUIT answered 421: CLOSED",
	  .srv = GREET E_PIPE "421 4.4.2 bye\r\n",
	  .ops = "Q",
	  .out = EHLO QUIT,
	  .ev = "READY 0 -\nCLOSED 421 4.4.2 bye\nEND none 0\n" },
	{ .name = "waiting_for: QUIT",
	  .srv = GREET E_PIPE,
	  .ops = "Q",
	  .out = EHLO QUIT,
	  .ev = "READY 0 -\nEND quit 0\n" },
};

static void
test_transactions(void **state)
{
	check_table(txn_cases, SL_ARRAY_LEN(txn_cases));
}

/* ------------------------------------------------------------ which command a reply answered */

static const struct tcase answer_cases[] = {
	{ .name = "pipelined: RCPT refusal, then the final reply",
	  .flags = F_ANS,
	  .srv = GREET E_PIPE OKM "550 5.1.1 no\r\n" OKR GO QUEUED BYE,
	  .ops = "TQ",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example" },
		   .content = C1 } },
	  .out = EHLO MAILC RCPTB RCPTC DATA C1_END QUIT,
	  .ev = "READY 0 -\nRCPT 0 550 5.1.1 no ans=rcpt\nBODY\nRCPT 1 " EV_Q
		" ans=body_end\nDONE " EV_Q " bytes=22 ans=body_end\nREADY 0 -\nCLOSED 221 "
		"2.0.0 Bye\nEND none 1\n" },
	{ .name = "MAIL refused: every recipient and DONE answer MAIL",
	  .flags = F_ANS | F_NOPIPE,
	  .srv = GREET E_PIPE "452 4.3.1 full\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC,
	  .ev = "READY 0 -\nRCPT 0 452 4.3.1 full ans=mail\nDONE 452 4.3.1 full bytes=0 "
		"ans=mail\nREADY 0 -\nEND none 1\n" },
	{ .name = "LMTP: per-recipient replies answer the content",
	  .flags = F_ANS | F_LMTP,
	  .srv = "220 lmtp\r\n250-lmtp\r\n250 PIPELINING\r\n" OKM OKR OKR GO
		 "250 2.0.0 one\r\n452 4.2.2 full\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example" },
		   .content = C1 } },
	  .out = "LHLO client.example\r\n" MAILC RCPTB RCPTC DATA C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 2.0.0 one ans=body_end\nRCPT 1 452 4.2.2 full "
		"ans=body_end\nDONE 452 4.2.2 full bytes=22 ans=body_end\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "a reply that breaks the protocol: FAIL answers what was awaited",
	  .flags = F_ANS,
	  .srv = GREET E_PIPE OKM "2x0 what\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nFAIL 0 - malformed reply line ans=rcpt\nEND none 0\n" },
	{ .name = "greeting refused: FAIL answers the greeting",
	  .flags = F_ANS,
	  .srv = "421 4.3.2 busy\r\n",
	  .out = "",
	  .ev = "FAIL 421 4.3.2 busy ans=greeting\nEND none 0\n" },
};

static void
test_answers(void **state)
{
	check_table(answer_cases, SL_ARRAY_LEN(answer_cases));
}

/* ------------------------------------------------------------ BDAT */

#define BDAT22 "BDAT 22 LAST\r\n"

static const struct tcase bdat_cases[] = {
	{ .name = "BDAT pipelined: command and content right after the RCPTs",
	  .flags = F_CHUNK | F_WAIT,
	  .srv = GREET E_CHP OKM OKR QUEUED BYE,
	  .ops = "TQ",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB BDAT22 C1 QUIT,
	  .ev = "READY 0 - wait=none\nBODY wait=none\nRCPT 0 " EV_Q " wait=none\nDONE " EV_Q
		" bytes=22 wait=none\nREADY 0 - wait=none\nCLOSED 221 2.0.0 Bye wait=none\nEND "
		"none 1\n" },
	{ .name = "BDAT not pipelined: after the RCPT replies",
	  .flags = F_CHUNK | F_WAIT,
	  .srv = GREET E_CH OKM OKR "550 5.1.1 no\r\n" QUEUED,
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example" },
		   .content = C1,
		   .split = 5 } },
	  .out = EHLO MAILC RCPTB RCPTC BDAT22 C1,
	  .ev = "READY 0 - wait=none\nRCPT 1 550 5.1.1 no wait=none\nBODY wait=none\nRCPT 0 " EV_Q
		" wait=none\nDONE " EV_Q " bytes=22 wait=none\nREADY 0 - wait=none\nEND none 1\n" },
	{ .name = "BDAT pipelined: waiting_for the RCPT replies after the content",
	  .flags = F_CHUNK,
	  .srv = GREET E_CHP OKM,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB BDAT22 C1,
	  .ev = "READY 0 -\nBODY\nEND rcpt 0\n" },
	{ .name = "BDAT pipelined: waiting_for the reply to the chunk",
	  .flags = F_CHUNK,
	  .srv = GREET E_CHP OKM OKR,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB BDAT22 C1,
	  .ev = "READY 0 -\nBODY\nEND body_end 0\n" },
	{ .name = "BDAT pipelined, every RCPT refused: the chunk's reply is read; RSET next",
	  .flags = F_CHUNK,
	  .srv = GREET E_CHP OKM
	  "550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n" OKR OKM OKR QUEUED,
	  .ops = "TT",
	  .t = { TX1, TX1 },
	  .out = EHLO MAILC RCPTB BDAT22 C1 RSET MAILC RCPTB BDAT22 C1,
	  .ev = "READY 0 -\nBODY\nRCPT 0 550 5.1.1 no\nDONE 0 - no recipient accepted "
		"bytes=22\nREADY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nEND none 2\n" },
	{ .name = "BDAT pipelined, MAIL refused",
	  .flags = F_CHUNK,
	  .srv = GREET E_CHP "550 5.7.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n" OKM OKR QUEUED,
	  .ops = "TT",
	  .t = { TX1, TX1 },
	  .out = EHLO MAILC RCPTB BDAT22 C1 MAILC RCPTB BDAT22 C1,
	  .ev = "READY 0 -\nBODY\nRCPT 0 550 5.7.1 no\nDONE 550 5.7.1 no bytes=22\nREADY 0 -"
		"\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q " bytes=22\nREADY 0 -\nEND none 2\n" },
	{ .name = "BDAT not pipelined, every RCPT refused: no content",
	  .flags = F_CHUNK,
	  .srv = GREET E_CH OKM "550 5.1.1 no\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB,
	  .ev = "READY 0 -\nRCPT 0 550 5.1.1 no\nDONE 0 - no recipient accepted bytes=0\nREADY 0 "
		"-\nEND none 1\n" },
	{ .name = "BDAT refused 5xx: RSET before the next MAIL",
	  .flags = F_CHUNK,
	  .srv = GREET E_CHP OKM OKR "554 5.6.0 bad content\r\n" OKR OKM OKR QUEUED,
	  .ops = "TT",
	  .t = { TX1, TX1 },
	  .out = EHLO MAILC RCPTB BDAT22 C1 RSET MAILC RCPTB BDAT22 C1,
	  .ev = "READY 0 -\nBODY\nRCPT 0 554 5.6.0 bad content\nDONE 554 5.6.0 bad content "
		"bytes=22\nREADY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nEND none 2\n" },
	{ .name = "BDAT: no stuffing, no added CRLF, empty content",
	  .flags = F_CHUNK,
	  .srv = GREET E_CHP OKM OKR "250 one\r\n" OKM OKR "250 two\r\n",
	  .ops = "TT",
	  .t = { { .sender = "a@x.example", .rcpts = { "b@y.example" }, .content = ".x\r\n.\r\ny" },
		 { .sender = "a@x.example", .rcpts = { "b@y.example" }, .content = "" } },
	  .out = EHLO MAILC RCPTB "BDAT 8 LAST\r\n.x\r\n.\r\ny" MAILC RCPTB "BDAT 0 LAST\r\n",
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - one\nDONE 250 - one bytes=8\nREADY 0 -"
		"\nBODY\nRCPT 0 250 - two\nDONE 250 - two bytes=0\nREADY 0 -\nEND none 2\n" },
	{ .name = "CHUNKING offered but not used: DATA",
	  .srv = GREET E_CHP OKM OKR GO QUEUED,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q " bytes=22\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "LMTP with BDAT: one reply per accepted recipient after the chunk",
	  .flags = F_LMTP | F_CHUNK,
	  .srv = "220 lmtp\r\n250-lmtp\r\n250-PIPELINING\r\n250 CHUNKING\r\n" OKM OKR OKR
		 "250 2.0.0 b ok\r\n450 4.2.0 c busy\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example" },
		   .content = C1 } },
	  .out = "LHLO client.example\r\n" MAILC RCPTB RCPTC BDAT22 C1,
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 2.0.0 b ok\nRCPT 1 450 4.2.0 c busy\nDONE 450 4.2.0 "
		"c busy bytes=22\nREADY 0 -\nEND none 1\n" },
};

static void
test_bdat(void **state)
{
	check_table(bdat_cases, SL_ARRAY_LEN(bdat_cases));
}

/* ------------------------------------------------------------ dot-stuffing (table) */

static const struct tcase stuff_cases[] = {
	{ .name = "a line \".\", a line \"..x\", a body that starts with \".\"",
	  .srv = GREET E_PIPE OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example" },
		   .content = ".start\r\n.\r\n..x\r\nmid.dle\r\n.\r\n" } },
	  .out = EHLO MAILC RCPTB DATA "..start\r\n..\r\n...x\r\nmid.dle\r\n..\r\n.\r\n",
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=28\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "content without a final CRLF, ending in a dot line",
	  .srv = GREET E_PIPE OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example", .rcpts = { "b@y.example" }, .content = "a\r\n." } },
	  .out = EHLO MAILC RCPTB DATA "a\r\n..\r\n.\r\n",
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=4\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "bare LF and bare CR start no line; a trailing CR gets the CRLF",
	  .srv = GREET E_PIPE OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example" },
		   .content = "a\n.b\r.c\r\r\n.d\r" } },
	  .out = EHLO MAILC RCPTB DATA "a\n.b\r.c\r\r\n..d\r\r\n.\r\n",
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=13\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "stuffing across iovecs of 1 octet",
	  .srv = GREET E_PIPE OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example" },
		   .content = ".\r\n.\r\n\r\n..\r\nx",
		   .split = 1 } },
	  .out = EHLO MAILC RCPTB DATA "..\r\n..\r\n\r\n...\r\nx\r\n.\r\n",
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=13\nREADY 0 -\nEND none "
		"1\n" },
};

static void
test_stuffing_table(void **state)
{
	check_table(stuff_cases, SL_ARRAY_LEN(stuff_cases));
}

/* ------------------------------------------------------------ MAIL parameters, local refusals */

#define E_SIZE(n) \
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE " n "\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"

static const struct tcase param_cases[] = {
	{ .name = "SIZE=, BODY=8BITMIME and SMTPUTF8 when offered and needed",
	  .srv = GREET E_SIZE("1000") OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example" },
		   .size = 1000,
		   .is_8bit = true,
		   .is_utf8 = true,
		   .content = C1 } },
	  .out = EHLO
	  "MAIL FROM:<a@x.example> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n" RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=22\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "SIZE= without a limit; 7-bit, ASCII: no BODY, no SMTPUTF8",
	  .srv = GREET "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250 "
		       "SMTPUTF8\r\n" OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO "MAIL FROM:<a@x.example> SIZE=22\r\n" RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=22\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "a UTF-8 address needs SMTPUTF8 without the flag",
	  .srv = GREET E_SIZE("0") OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "j\xc3\xb6rg@y.example" },
		   .size = 5,
		   .content = C1 } },
	  .out = EHLO
	  "MAIL FROM:<a@x.example> SIZE=5 SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@y.example>\r\n" DATA
		  C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=22\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "8-bit content to a server without 8BITMIME: sent as is, no BODY=",
	  .srv = GREET "250-mx.example\r\n250 PIPELINING\r\n" OKM OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example" },
		   .is_8bit = true,
		   .content = "\xe9t\xe9\r\n" } },
	  .out = EHLO MAILC RCPTB DATA "\xe9t\xe9\r\n.\r\n",
	  .ev = "READY 0 -\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=5\nREADY 0 -\nEND none "
		"1\n" },
	{ .name = "over the server's SIZE: 552 5.3.4 here, nothing sent; the session goes on",
	  .srv = GREET E_SIZE("1000") OKM OKR GO "250 ok\r\n",
	  .ops = "TT",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example" },
		   .size = 1001,
		   .content = C1 },
		 TX1 },
	  .out = EHLO "MAIL FROM:<a@x.example> SIZE=22\r\n" RCPTB DATA C1_END,
	  .ev = "READY 0 -\nRCPT 0 552 5.3.4 message size 1001 exceeds the server's limit of "
		"1000\nRCPT 1 552 5.3.4 message size 1001 exceeds the server's limit of 1000\nDONE "
		"552 5.3.4 message size 1001 exceeds the server's limit of 1000 bytes=0\nREADY 0 -"
		"\nBODY\nRCPT 0 250 - ok\nDONE 250 - ok bytes=22\nREADY 0 -\nEND none 1\n" },
	{ .name = "SMTPUTF8 needed, not offered: 553 5.6.7 here",
	  .flags = F_WAIT,
	  .srv = GREET E_PIPE,
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example" },
		   .is_utf8 = true,
		   .content = C1 } },
	  .out = EHLO,
	  .ev = "READY 0 - wait=none\nRCPT 0 553 5.6.7 the server does not offer SMTPUTF8 "
		"wait=none\nDONE 553 5.6.7 the server does not offer SMTPUTF8 bytes=0 "
		"wait=none\nREADY 0 - wait=none\nEND none 0\n" },
	{ .name = "a UTF-8 sender, SMTPUTF8 not offered (HELO): 553 here",
	  .srv = GREET "502 no\r\n250 mx.example\r\n",
	  .ops = "T",
	  .t = { { .sender = "\xc3\xa9@x.example", .rcpts = { "b@y.example" }, .content = C1 } },
	  .out = EHLO "HELO client.example\r\n",
	  .ev = "READY 0 -\nRCPT 0 553 5.6.7 the server does not offer SMTPUTF8\nDONE 553 5.6.7 "
		"the server does not offer SMTPUTF8 bytes=0\nREADY 0 -\nEND none 0\n" },
	{ .name = "a sender with a control character: 501 5.1.7 here",
	  .srv = GREET E_PIPE,
	  .ops = "T",
	  .t = { { .sender = "a@x.example>\r\nRSET", .rcpts = { "b@y.example" }, .content = C1 } },
	  .out = EHLO,
	  .ev = "READY 0 -\nRCPT 0 501 5.1.7 sender address with control characters\nDONE 501 "
		"5.1.7 sender address with control characters bytes=0\nREADY 0 -\nEND none 0\n" },
	{ .name = "a recipient with a control character: 501 5.1.3 for it alone",
	  .srv = GREET E_PIPE OKM OKR OKR GO "250 ok\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "x\ty@y.example", "d@y.example" },
		   .content = C1 } },
	  .out = EHLO MAILC RCPTB RCPTD DATA C1_END,
	  .ev = "READY 0 -\nRCPT 1 501 5.1.3 recipient address with control "
		"characters\nBODY\nRCPT 0 250 - ok\nRCPT 2 250 - ok\nDONE 250 - ok bytes=22\nREADY "
		"0 "
		"-\nEND none 1\n" },
	{ .name = "every recipient with a control character: nothing sent",
	  .srv = GREET E_PIPE,
	  .ops = "T",
	  .t = { { .sender = "a@x.example", .rcpts = { "b\r@y", "c\n@y" }, .content = C1 } },
	  .out = EHLO,
	  .ev = "READY 0 -\nRCPT 0 501 5.1.3 recipient address with control characters\nRCPT 1 "
		"501 5.1.3 recipient address with control characters\nDONE 0 - no recipient "
		"accepted bytes=0\nREADY 0 -\nEND none 0\n" },
};

static void
test_params(void **state)
{
	check_table(param_cases, SL_ARRAY_LEN(param_cases));
}

/* ------------------------------------------------------------ reply texts */

#define X100                                                                                       \
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
	"xx"                                                                                       \
	"xxxxxxxxxx"
#define X500 X100 X100 X100 X100 X100

static const struct tcase text_cases[] = {
	{ .name = "enhanced code on every line: kept once, dropped from the text",
	  .srv = GREET E_PIPE OKM "550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example", .rcpts = { "b@y.example" }, .content = C1 } },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nRCPT 0 550 5.1.1 first second third\nEND data 0\n" },
	{ .name = "enhanced codes: wrong class, bad forms, alone, a different one later",
	  .srv = GREET E_PIPE OKM "550 4.1.1 wrong class\r\n550 5.1 short\r\n550 5.1.1.1 long\r\n"
				  "550 5.1234.1 wide\r\n550 5.1.1x glued\r\n550 5.1.1\r\n"
				  "550-5.7.1 a\r\n550 5.7.2 b\r\n554 5.5.1 no\r\n",
	  .ops = "T",
	  .t = { { .sender = "a@x.example",
		   .rcpts = { "b@y.example", "c@y.example", "d@y.example", "e@y.example",
			      "f@y.example", "g@y.example", "h@y.example" },
		   .content = C1 } },
	  .out = EHLO MAILC RCPTB RCPTC RCPTD
	  "RCPT TO:<e@y.example>\r\nRCPT TO:<f@y.example>\r\nRCPT TO:<g@y.example>\r\nRCPT "
	  "TO:<h@y.example>\r\n" DATA,
	  .ev = "READY 0 -\nRCPT 0 550 - 4.1.1 wrong class\nRCPT 1 550 - 5.1 short\nRCPT 2 550 - "
		"5.1.1.1 long\nRCPT 3 550 - 5.1234.1 wide\nRCPT 4 550 - 5.1.1x glued\nRCPT 5 550 "
		"5.1.1\nRCPT 6 550 5.7.1 a 5.7.2 b\nDONE 0 - no recipient accepted "
		"bytes=0\nREADY 0 -\nEND none 1\n" },
	{ .name = "enhanced code with three-digit fields; empty lines join without extra spaces",
	  .srv = GREET E_PIPE OKM "452-4.5.300 a\r\n452-\r\n452-4.5.300\r\n452 b\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nRCPT 0 452 4.5.300 a b\nEND data 0\n" },
	{ .name = "control characters in the text become spaces",
	  .srv = GREET E_PIPE OKM "550 5.1.1 a\tb\x01"
				  "c\x7f"
				  "d\re\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nRCPT 0 550 5.1.1 a b c d e\nEND data 0\n" },
	{ .name = "text bounded to 1024 octets",
	  .srv = GREET E_PIPE OKM "550-" X500 "\r\n550-" X500 "\r\n550 " X500 "\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nRCPT 0 550 - " X500 " " X500 " xxxxxxxxxxxxxxxxxxxxxx\nEND data 0\n" },
	{ .name = "text cut before a split UTF-8 sequence",
	  .srv = GREET E_PIPE OKM "550-" X500 "\r\n550-" X500
				  "\r\n550 xxxxxxxxxxxxxxxxxxxxx\xc3\xa9z\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nRCPT 0 550 - " X500 " " X500 " xxxxxxxxxxxxxxxxxxxxx\nEND data 0\n" },
	{ .name = "text cut after a whole UTF-8 sequence",
	  .srv = GREET E_PIPE OKM "550-" X500 "\r\n550-" X500
				  "\r\n550 xxxxxxxxxxxxxxxxxxxx\xc3\xa9z\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nRCPT 0 550 - " X500 " " X500
		" xxxxxxxxxxxxxxxxxxxx\\xc3\\xa9\nEND data 0\n" },
	{ .name = "reply code only; separator without text",
	  .srv = GREET E_PIPE "250\r\n250-\r\n250 \r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nEND data 0\n" },
};

static void
test_texts(void **state)
{
	check_table(text_cases, SL_ARRAY_LEN(text_cases));
}

/* ------------------------------------------------------------ 421 and protocol errors */

static const struct tcase error_cases[] = {
	{ .name = "421 to a pipelined RCPT: FAIL with it, the rest unread",
	  .srv = GREET E_PIPE OKM "421 4.7.0 too many errors\r\n503 no\r\n",
	  .ops = "T",
	  .t = { TX3 },
	  .out = EHLO MAILC RCPTB RCPTC RCPTD DATA,
	  .ev = "READY 0 -\nFAIL 421 4.7.0 too many errors\nEND none 0\n" },
	{ .name = "421 to the content",
	  .srv = GREET E_PIPE OKM OKR GO "421-4.4.2 timeout\r\n421 4.4.2 closing\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nFAIL 421 4.4.2 timeout closing\nEND none 0\n" },
	{ .name = "421 while idle",
	  .srv = GREET E_PIPE "421 4.4.2 idle too long\r\n",
	  .out = EHLO,
	  .ev = "READY 0 -\nFAIL 421 4.4.2 idle too long\nEND none 0\n" },
	{ .name = "a reply while idle: protocol error",
	  .srv = GREET E_PIPE "250-surprise\r\n250 ok\r\n",
	  .out = EHLO,
	  .ev = "READY 0 -\nFAIL 0 - unexpected reply\nEND none 0\n" },
	{ .name = "a reply after the transaction's: protocol error",
	  .srv = GREET E_PIPE OKM OKR GO QUEUED "250 extra\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nRCPT 0 " EV_Q "\nDONE " EV_Q
		" bytes=22\nREADY 0 -\nFAIL 0 - unexpected reply\nEND none 1\n" },
	{ .name = "garbage",
	  .srv = "hello there\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "bad codes: 1xx",
	  .srv = "199 x\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "bad codes: 6xx",
	  .srv = "600 x\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "bad codes: second digit 6",
	  .srv = "260 x\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "bad codes: letters",
	  .srv = "2a0 x\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "bad separator",
	  .srv = "220x\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "too short",
	  .srv = "22\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "empty line",
	  .srv = "\r\n",
	  .out = "",
	  .ev = "FAIL 0 - malformed reply line\nEND none 0\n" },
	{ .name = "bare LF",
	  .srv = "220 mx.example\n",
	  .out = "",
	  .ev = "FAIL 0 - reply line not ended by CRLF\nEND none 0\n" },
	{ .name = "LF alone",
	  .srv = "\n",
	  .out = "",
	  .ev = "FAIL 0 - reply line not ended by CRLF\nEND none 0\n" },
	{ .name = "a NUL in the text is a space",
	  .srv = "220 a\0b\r\n",
	  .srv_len = 9,
	  .out = EHLO,
	  .ev = "END ehlo 0\n" },
	{ .name = "mixed codes in a multi-line reply",
	  .srv = GREET "250-mx.example\r\n251 PIPELINING\r\n",
	  .out = EHLO,
	  .ev = "FAIL 0 - reply lines with different codes\nEND none 0\n" },
	{ .name = "3xx to MAIL",
	  .srv = GREET E_PIPE "354 go\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nFAIL 0 - unexpected 3xx reply\nEND none 0\n" },
	{ .name = "3xx to RSET",
	  .srv = GREET E_PIPE "334 what\r\n",
	  .ops = "R",
	  .out = EHLO RSET,
	  .ev = "READY 0 -\nFAIL 0 - unexpected 3xx reply\nEND none 0\n" },
	{ .name = "3xx to EHLO",
	  .srv = GREET "334 what\r\n",
	  .out = EHLO,
	  .ev = "FAIL 0 - unexpected 3xx reply\nEND none 0\n" },
	{ .name = "3xx to the content",
	  .srv = GREET E_PIPE OKM OKR GO GO,
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA C1_END,
	  .ev = "READY 0 -\nBODY\nFAIL 0 - unexpected 3xx reply\nEND none 0\n" },
	{ .name = "2xx to DATA",
	  .srv = GREET E_PIPE OKM OKR "250 ok\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nFAIL 0 - DATA answered 2xx instead of 354\nEND none 0\n" },
	{ .name = "another 3xx to DATA",
	  .srv = GREET E_PIPE OKM OKR "334 go\r\n",
	  .ops = "T",
	  .t = { TX1 },
	  .out = EHLO MAILC RCPTB DATA,
	  .ev = "READY 0 -\nFAIL 0 - unexpected 3xx reply\nEND none 0\n" },
};

static void
test_errors(void **state)
{
	check_table(error_cases, SL_ARRAY_LEN(error_cases));
}

/* ------------------------------------------------------------ limits */

/* A client fed `srv` whole; returns the last event. */
static enum sl_smtpc_ev_kind
feed(struct sl_smtp_client *c, const char *srv, size_t len, struct sl_smtpc_ev *ev,
     struct sl_buf *out)
{
	size_t off = 0, used;
	enum sl_smtpc_ev_kind k;

	do {
		k = sl_smtp_client_next(c, srv + off, len - off, &used, ev, out);
		off += used;
	} while (k != SL_SMTPC_EV_NONE && k != SL_SMTPC_EV_FAIL && k != SL_SMTPC_EV_READY);
	return k;
}

static void
test_line_limits(void **state)
{
	struct sl_smtp_client_conf conf = { .helo_name = "client.example" };
	struct sl_buf srv = SL_BUF_INIT, out = SL_BUF_INIT;
	struct sl_smtpc_ev ev;
	struct sl_smtp_client *c;
	size_t used;

	/* A line of exactly SL_SMTPC_MAX_LINE octets, CRLF included, is fine. */
	sl_buf_puts(&srv, "220 ");
	while (srv.len < SL_SMTPC_MAX_LINE - 2)
		sl_buf_puts(&srv, "y");
	sl_buf_puts(&srv, "\r\n");
	c = sl_smtp_client_new(&conf);
	assert_int_equal(feed(c, srv.data, srv.len, &ev, &out), SL_SMTPC_EV_NONE);
	assert_int_equal(sl_smtp_client_waiting_for(c), SL_SMTPC_WAIT_EHLO);
	sl_smtp_client_free(c);

	/* One more octet: FAIL as soon as SL_SMTPC_MAX_LINE octets came without an LF. */
	c = sl_smtp_client_new(&conf);
	sl_buf_reset(&srv);
	sl_buf_puts(&srv, "220 ");
	while (srv.len < SL_SMTPC_MAX_LINE - 1)
		sl_buf_puts(&srv, "y");
	assert_int_equal(sl_smtp_client_next(c, srv.data, srv.len, &used, &ev, &out),
			 SL_SMTPC_EV_NONE);
	assert_int_equal(used, 0);
	sl_buf_puts(&srv, "\r");
	assert_int_equal(sl_smtp_client_next(c, srv.data, srv.len, &used, &ev, &out),
			 SL_SMTPC_EV_FAIL);
	assert_int_equal(ev.code, 0);
	assert_string_equal(ev.text, "reply line too long");
	sl_smtp_client_free(c);

	/* SL_SMTPC_MAX_REPLY_LINES lines are fine, one more is not. */
	for (int extra = 0; extra < 2; extra++) {
		c = sl_smtp_client_new(&conf);
		sl_buf_reset(&srv);
		for (int i = 0; i < SL_SMTPC_MAX_REPLY_LINES - 1 + extra; i++)
			sl_buf_puts(&srv, "220-line\r\n");
		sl_buf_puts(&srv, "220 last\r\n");
		if (extra == 0) {
			assert_int_equal(feed(c, srv.data, srv.len, &ev, &out), SL_SMTPC_EV_NONE);
			assert_int_equal(sl_smtp_client_waiting_for(c), SL_SMTPC_WAIT_EHLO);
		} else {
			assert_int_equal(feed(c, srv.data, srv.len, &ev, &out), SL_SMTPC_EV_FAIL);
			assert_string_equal(ev.text, "reply with too many lines");
		}
		sl_smtp_client_free(c);
	}
	sl_buf_free(&srv);
	sl_buf_free(&out);
}

/* SL_SMTPC_MAX_RCPTS recipients, pipelined, every other one refused. */
static void
test_max_rcpts(void **state)
{
	struct sl_smtp_client_conf conf = { .helo_name = "c", .use_pipelining = true };
	struct sl_smtp_client *c = sl_smtp_client_new(&conf);
	static char names[SL_SMTPC_MAX_RCPTS][16];
	static const char *rcpts[SL_SMTPC_MAX_RCPTS];
	struct sl_smtp_client_txn txn = { .sender = "a@x",
					  .rcpts = rcpts,
					  .rcpt_cnt = SL_SMTPC_MAX_RCPTS };
	struct sl_buf srv = SL_BUF_INIT, out = SL_BUF_INIT;
	struct sl_smtpc_ev ev;
	size_t off = 0, used, rcpt_ev = 0, refused = 0;
	bool seen[SL_SMTPC_MAX_RCPTS] = { false };

	for (size_t i = 0; i < SL_SMTPC_MAX_RCPTS; i++) {
		snprintf(names[i], sizeof(names[i]), "r%zu@y", i);
		rcpts[i] = names[i];
	}
	sl_buf_puts(&srv, GREET E_PIPE);
	assert_int_equal(feed(c, srv.data, srv.len, &ev, &out), SL_SMTPC_EV_READY);
	sl_smtp_client_send(c, &txn, &out);
	sl_buf_reset(&srv);
	sl_buf_puts(&srv, OKM);
	for (size_t i = 0; i < SL_SMTPC_MAX_RCPTS; i++)
		sl_buf_puts(&srv, i % 2 ? "550 no\r\n" : OKR);
	sl_buf_puts(&srv, GO);
	for (;;) {
		enum sl_smtpc_ev_kind k =
			sl_smtp_client_next(c, srv.data + off, srv.len - off, &used, &ev, &out);

		off += used;
		if (k == SL_SMTPC_EV_RCPT) {
			assert_false(seen[ev.rcpt_idx]);
			seen[ev.rcpt_idx] = true;
			rcpt_ev++;
			refused += ev.code == 550;
		} else if (k == SL_SMTPC_EV_BODY) {
			struct iovec content = { .iov_base = (void *)"x\r\n", .iov_len = 3 },
				     iov[4];

			assert_int_equal(refused, SL_SMTPC_MAX_RCPTS / 2);
			assert_int_equal(sl_smtp_client_body_iov(c, &content, 1, iov, 4), 2);
			sl_smtp_client_body_done(c);
			sl_buf_reset(&srv);
			off = 0;
			sl_buf_puts(&srv, QUEUED);
		} else if (k == SL_SMTPC_EV_DONE) {
			break;
		} else {
			assert_int_equal(k, SL_SMTPC_EV_NONE);
			fail_msg("stalled");
		}
	}
	assert_int_equal(rcpt_ev, SL_SMTPC_MAX_RCPTS);
	assert_int_equal(ev.code, 250);
	assert_int_equal(sl_smtp_client_txn_cnt(c), 1);
	sl_smtp_client_free(c);
	sl_smtp_client_free(NULL);
	sl_buf_free(&srv);
	sl_buf_free(&out);
}

/* ------------------------------------------------------------ body_iov at every split */

/* RFC 5321 §4.5.2, one octet at a time. */
static void
ref_stuff(const char *p, size_t len, struct sl_buf *b)
{
	bool bol = true;

	for (size_t i = 0; i < len; i++) {
		if (bol && p[i] == '.')
			sl_buf_puts(b, ".");
		sl_buf_append(b, p + i, 1);
		bol = p[i] == '\n' && i > 0 && p[i - 1] == '\r';
	}
	if (len == 0 || bol)
		sl_buf_puts(b, ".\r\n");
	else
		sl_buf_puts(b, "\r\n.\r\n");
}

/* A client that just returned BODY (BDAT when `is_bdat`). */
static struct sl_smtp_client *
client_at_body(bool is_bdat, struct sl_smtp_client_txn *txn)
{
	struct sl_smtp_client_conf conf = { .helo_name = "c",
					    .use_pipelining = true,
					    .use_chunking = is_bdat };
	struct sl_smtp_client *c = sl_smtp_client_new(&conf);
	const char *srv = is_bdat ? GREET E_CHP : GREET E_PIPE OKM OKR GO;
	struct sl_buf out = SL_BUF_INIT;
	struct sl_smtpc_ev ev;
	size_t off = 0, used;

	assert_int_equal(feed(c, srv, strlen(srv), &ev, &out), SL_SMTPC_EV_READY);
	off = strlen(GREET E_PIPE);
	if (is_bdat)
		off = strlen(srv);
	sl_smtp_client_send(c, txn, &out);
	for (;;) {
		enum sl_smtpc_ev_kind k =
			sl_smtp_client_next(c, srv + off, strlen(srv) - off, &used, &ev, &out);

		off += used;
		if (k == SL_SMTPC_EV_BODY)
			break;
		assert_int_not_equal(k, SL_SMTPC_EV_NONE);
	}
	sl_buf_free(&out);
	return c;
}

static void
check_split(struct sl_smtp_client *c, const char *s, size_t len, size_t i, size_t j, bool is_bdat)
{
	struct iovec content[3] = {
		{ .iov_base = (void *)s, .iov_len = i },
		{ .iov_base = (void *)(s + i), .iov_len = j - i },
		{ .iov_base = (void *)(s + j), .iov_len = len - j },
	};
	struct iovec iov[64];
	struct sl_buf want = SL_BUF_INIT, got = SL_BUF_INIT;
	size_t n = sl_smtp_client_body_iov(c, content, 3, NULL, 0);

	assert_true(n <= SL_ARRAY_LEN(iov));
	assert_int_equal(sl_smtp_client_body_iov(c, content, 3, iov, n), n);
	for (size_t k = 0; k < n; k++) {
		assert_true(iov[k].iov_len > 0);
		sl_buf_append(&got, iov[k].iov_base, iov[k].iov_len);
	}
	if (is_bdat) {
		sl_buf_printf(&want, "BDAT %zu LAST\r\n", len);
		sl_buf_append(&want, s, len);
	} else {
		ref_stuff(s, len, &want);
	}
	sl_buf_cstr(&want);
	sl_buf_cstr(&got);
	if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0)
		print_message("split %zu/%zu of \"%s\"\n", i, j, s);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, got.len);
	sl_buf_free(&want);
	sl_buf_free(&got);
}

static void
test_stuffing_splits(void **state)
{
	static const char *const contents[] = {
		".a\r\n..b\r\n.\r\nc.\r\n\r\n.",
		"\r\n.\r\n",
		".",
		"",
		"x\r",
		"a\r\n.",
		"\r\r\n.\n.\r.\r\n\n\r\n..",
		"no dots at all\r\nin here\r\n",
		"..\r\n..\r\n..\r\n",
	};
	struct sl_smtp_client_txn txn = { .sender = "a@x",
					  .rcpts = (const char *const[]){ "b@y" },
					  .rcpt_cnt = 1 };

	for (int is_bdat = 0; is_bdat < 2; is_bdat++) {
		struct sl_smtp_client *c = client_at_body(is_bdat, &txn);

		for (size_t t = 0; t < SL_ARRAY_LEN(contents); t++) {
			size_t len = strlen(contents[t]);

			for (size_t i = 0; i <= len; i++)
				for (size_t j = i; j <= len; j++)
					check_split(c, contents[t], len, i, j, is_bdat);
		}
		sl_smtp_client_free(c);
	}
}

/* The count formula: non-empty iovecs + 2 per stuffed line inside one (1 at its start) + 1. */
static void
test_iov_count(void **state)
{
	struct sl_smtp_client_txn txn = { .sender = "a@x",
					  .rcpts = (const char *const[]){ "b@y" },
					  .rcpt_cnt = 1 };
	struct sl_smtp_client *c = client_at_body(false, &txn);
	struct iovec content[3] = {
		{ .iov_base = (void *)".a\r\n.b\r\n", .iov_len = 8 }, /* 1 + 1 at start + 2 */
		{ .iov_base = (void *)"", .iov_len = 0 },             /* 0 */
		{ .iov_base = (void *)".c\r\n", .iov_len = 4 },       /* 1 + 1 at start */
	};
	struct iovec iov[16];

	assert_int_equal(sl_smtp_client_body_iov(c, content, 3, NULL, 0), 7);
	assert_int_equal(sl_smtp_client_body_iov(c, content, 3, iov, 3), 7);
	assert_int_equal(sl_smtp_client_body_iov(c, content, 3, iov, 16), 7);
	assert_int_equal(sl_smtp_client_body_iov(c, NULL, 0, iov, 16), 1);
	assert_int_equal(iov[0].iov_len, 3);
	assert_memory_equal(iov[0].iov_base, ".\r\n", 3);
	sl_smtp_client_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),  cmocka_unit_test(test_transactions),
		cmocka_unit_test(test_bdat),      cmocka_unit_test(test_stuffing_table),
		cmocka_unit_test(test_params),    cmocka_unit_test(test_texts),
		cmocka_unit_test(test_errors),    cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_max_rcpts), cmocka_unit_test(test_stuffing_splits),
		cmocka_unit_test(test_iov_count), cmocka_unit_test(test_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
