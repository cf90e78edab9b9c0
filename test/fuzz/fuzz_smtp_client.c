/*
 * test/fuzz/fuzz_smtp_client.c - libFuzzer harness for the SMTP/LMTP client machine.
 *
 * The first FUZZ_HDR octets pick the configuration (LMTP, BDAT,
 * pipelining) and seed the harness's choices (how the rest is split into
 * reads, the transactions and their content); the rest is what the server
 * sends.  The harness drives one client like the delivery stage does:
 * whenever READY it starts a transaction (alternately one and several
 * recipients; now and then an RSET, and QUIT after a few), writes content
 * with dot-leading lines, bare CR/LF and random iovec splits through
 * body_iov(), and checks the contract:
 *   - everything written to `out` is whole command lines ending in CRLF,
 *     with no other CR or LF;
 *   - the content on the wire equals an independent reference: dot-stuffed
 *     with one "." terminator at the very end (DATA), or "BDAT n LAST"
 *     and the content unchanged; body_iov() counts right when short;
 *   - every recipient gets exactly one RCPT event per transaction, all
 *     before DONE; BODY at most once per transaction, and (unless BDAT goes
 *     before the replies) not after every recipient was refused; no event
 *     outside a transaction;
 *   - `used` never exceeds the input; nothing is consumed after FAIL or
 *     CLOSED; NONE never leaves a complete line unread; events without
 *     consumption are bounded (no stall, no spin);
 *   - event texts are NUL-terminated, at most 1024 octets, free of control
 *     characters; enhanced codes are "class.subject.detail" of the reply's
 *     class.
 * Build and run with test/fuzz/run-smtpc.sh.
 *
 * Threads: one (libFuzzer's).  Parses untrusted input: that is the point.
 * Ownership: each run frees its client and buffers.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "proto/smtp_client.h"

#define FUZZ_HDR       4
#define FUZZ_MAX_TXN   6
#define FUZZ_MAX_RCPTS 7
#define FUZZ_MAX_IOV   8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void sl__assert_fail(const char *expr, const char *file, int line, const char *func);

/*
 * The harness links only the machine's sources; the daemon's real handler
 * lives in the engine.  Weak, so a build that links the engine keeps its own.
 */
__attribute__((weak, noreturn)) void
sl__assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func, expr);
	abort();
}

static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

static uint32_t
fuzz_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Command lines from `*checked` on: complete, CRLF-terminated, no stray CR or LF. */
static void
fuzz_check_out(const struct sl_buf *out, size_t *checked)
{
	while (*checked < out->len) {
		const char *p = out->data + *checked;
		const char *lf = memchr(p, '\n', out->len - *checked);
		size_t n;

		fuzz_check(lf != NULL, "command without LF");
		n = (size_t)(lf - p) + 1;
		fuzz_check(n >= 3 && p[n - 2] == '\r',
			   "command without CRLF"); /* ".\r\n" is the shortest */
		fuzz_check(memchr(p, '\r', n - 2) == NULL, "CR inside a command");
		fuzz_check(
			strncmp(p, "EHLO ", 5) == 0 || strncmp(p, "LHLO ", 5) == 0 ||
				strncmp(p, "HELO ", 5) == 0 || strncmp(p, "MAIL FROM:<", 11) == 0 ||
				strncmp(p, "RCPT TO:<", 9) == 0 || strncmp(p, "DATA\r\n", 6) == 0 ||
				strncmp(p, "RSET\r\n", 6) == 0 || strncmp(p, "QUIT\r\n", 6) == 0 ||
				strncmp(p, ".\r\n", 3) == 0,
			"unknown command");
		*checked += n;
	}
}

static void
fuzz_check_ev(const struct sl_smtpc_ev *ev)
{
	size_t len;

	fuzz_check(ev->text != NULL, "NULL text");
	len = strlen(ev->text);
	fuzz_check(len <= 1024, "text over 1024 octets");
	for (size_t i = 0; i < len; i++)
		fuzz_check((unsigned char)ev->text[i] >= 0x20 && ev->text[i] != 0x7f,
			   "control character in a text");
	fuzz_check(ev->code == 0 || (ev->code >= 200 && ev->code <= 559), "reply code range");
	if (ev->enhanced[0] != '\0') {
		const char *e = ev->enhanced;
		int dots = 0;

		fuzz_check(strlen(e) <= 9 && e[0] == (char)('0' + ev->code / 100) && e[1] == '.',
			   "enhanced code class");
		for (const char *p = e + 2; *p != '\0'; p++) {
			if (*p == '.')
				dots++;
			else
				fuzz_check(*p >= '0' && *p <= '9', "enhanced code digits");
		}
		fuzz_check(dots == 1, "enhanced code form");
	}
}

/* RFC 5321 §4.5.2, one octet at a time: the wire form of DATA content. */
static void
ref_stuff(const char *p, size_t len, struct sl_buf *b)
{
	bool bol = true;

	for (size_t i = 0; i < len; i++) {
		if (bol && p[i] == '.')
			sl_buf_append(b, ".", 1);
		sl_buf_append(b, p + i, 1);
		bol = p[i] == '\n' && i > 0 && p[i - 1] == '\r';
	}
	if (len == 0 || bol)
		sl_buf_puts(b, ".\r\n");
	else
		sl_buf_puts(b, "\r\n.\r\n");
}

/* Message content: lines, many with a leading dot, some with bare CR or LF. */
static void
make_content(uint32_t *rnd, struct sl_buf *b)
{
	static const char *const lines[] = { ".",   "..",    ".x",   "abc",     "",
					     "a.b", "x\n.y", "z\r.", "..\r\n.", "." };
	unsigned n = fuzz_rand(rnd) % 9;

	sl_buf_reset(b);
	for (unsigned i = 0; i < n; i++) {
		sl_buf_puts(b, lines[fuzz_rand(rnd) % SL_ARRAY_LEN(lines)]);
		if (i + 1 < n || (fuzz_rand(rnd) & 3) != 0)
			sl_buf_puts(b, "\r\n");
	}
}

/* Split `b` into up to FUZZ_MAX_IOV iovecs at random points (empty ones too). */
static size_t
split_content(uint32_t *rnd, const struct sl_buf *b, struct iovec *iov)
{
	size_t cnt = 1 + fuzz_rand(rnd) % FUZZ_MAX_IOV, off = 0;

	for (size_t i = 0; i < cnt; i++) {
		size_t rest = b->len - off;
		size_t n = i + 1 == cnt ? rest : (rest ? fuzz_rand(rnd) % (rest + 1) : 0);

		iov[i].iov_base = b->data != NULL ? b->data + off : (void *)"";
		iov[i].iov_len = n;
		off += n;
	}
	return cnt;
}

struct fuzz_txn {
	struct sl_smtp_client_txn txn;
	const char *rcpts[FUZZ_MAX_RCPTS];
	unsigned rcpt_ev[FUZZ_MAX_RCPTS];
	bool is_active;
	bool has_body;
};

static void
make_txn(uint32_t *rnd, unsigned nth, struct fuzz_txn *t)
{
	static const char *const senders[] = { "a@x.example", "", "\xc3\xa9@x.example",
					       "a@x.example", "bad\r\n@x" };
	static const char *const rcpts[] = { "b@y.example",  "c@y.example",         "d@y.example",
					     "e@y.example",  "f\xc3\xbc@y.example", "g@y.example",
					     "h\t@y.example" };
	uint32_t r = fuzz_rand(rnd);

	memset(t, 0, sizeof(*t));
	t->txn.sender = senders[(r & 0xff) < 240 ? 0 : r % SL_ARRAY_LEN(senders)];
	t->txn.rcpt_cnt = nth % 2 == 0 ? 1 : 2 + fuzz_rand(rnd) % (FUZZ_MAX_RCPTS - 1);
	for (size_t i = 0; i < t->txn.rcpt_cnt; i++) {
		uint32_t k = fuzz_rand(rnd);

		t->rcpts[i] = rcpts[(k & 0xff) < 224 ? i % 4 : k % SL_ARRAY_LEN(rcpts)];
	}
	t->txn.rcpts = t->rcpts;
	t->txn.size = (r >> 8) & 1 ? 100000 : 100;
	t->txn.is_8bitmime = (r >> 9) & 1;
	t->txn.is_smtputf8 = ((r >> 10) & 7) == 0;
	t->is_active = true;
}

/* Write the content through body_iov() and check what would go on the wire. */
static void
write_body(struct sl_smtp_client *c, uint32_t *rnd, bool is_bdat)
{
	struct sl_buf content = SL_BUF_INIT, wire = SL_BUF_INIT, want = SL_BUF_INIT;
	struct iovec in[FUZZ_MAX_IOV], *iov;
	size_t cnt, need;

	make_content(rnd, &content);
	cnt = split_content(rnd, &content, in);
	need = sl_smtp_client_body_iov(c, in, cnt, NULL, 0);
	fuzz_check(need >= 1, "no iovecs");
	iov = sl_calloc(need, sizeof(*iov));
	if (need > 1)
		fuzz_check(sl_smtp_client_body_iov(c, in, cnt, iov, need - 1) == need,
			   "short body_iov did not ask for more");
	fuzz_check(sl_smtp_client_body_iov(c, in, cnt, iov, need) == need, "body_iov count");
	for (size_t i = 0; i < need; i++) {
		fuzz_check(iov[i].iov_len > 0, "empty iovec");
		sl_buf_append(&wire, iov[i].iov_base, iov[i].iov_len);
	}
	if (is_bdat) {
		sl_buf_printf(&want, "BDAT %zu LAST\r\n", content.len);
		sl_buf_append(&want, content.data, content.len);
	} else {
		struct sl_buf w2 = SL_BUF_INIT;
		const char *end;

		ref_stuff(content.data, content.len, &want);
		/* No "." line before the end: the server sees one message, whole. */
		sl_buf_puts(&w2, "\r\n");
		sl_buf_append(&w2, wire.data, wire.len);
		end = memmem(w2.data, w2.len, "\r\n.\r\n", 5);
		fuzz_check(end != NULL && end + 5 == w2.data + w2.len, "early end of data");
		sl_buf_free(&w2);
	}
	fuzz_check(wire.len == want.len && memcmp(wire.data, want.data, want.len) == 0,
		   "content differs from the reference");
	sl_free(iov);
	sl_buf_free(&content);
	sl_buf_free(&wire);
	sl_buf_free(&want);
	sl_smtp_client_body_done(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_smtp_client_conf conf = { .helo_name = "client.example" };
	struct sl_buf out = SL_BUF_INIT, in = SL_BUF_INIT;
	struct fuzz_txn t;
	struct sl_smtp_client *c;
	const uint8_t *st;
	size_t len, fed = 0, checked = 0;
	unsigned txn_cnt = 0, spins = 0;
	bool is_bdat = false, is_early = false, is_over = false;
	uint32_t rnd;

	if (size < FUZZ_HDR)
		return 0;
	conf.is_lmtp = data[0] & 1;
	conf.use_chunking = data[0] & 2;
	conf.use_pipelining = !(data[0] & 4);
	rnd = (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3] | 1u << 24;
	st = data + FUZZ_HDR;
	len = size - FUZZ_HDR;
	memset(&t, 0, sizeof(t));
	c = sl_smtp_client_new(&conf);
	while (!is_over) {
		struct sl_smtpc_ev ev;
		size_t used = 99;
		enum sl_smtpc_ev_kind k = sl_smtp_client_next(c, in.data, in.len, &used, &ev, &out);

		fuzz_check(k == ev.kind, "return value and ev->kind differ");
		fuzz_check(used <= in.len, "consumed more than the input");
		fuzz_check_ev(&ev);
		fuzz_check_out(&out, &checked);
		sl_buf_consume(&in, used);
		if (used > 0 || k == SL_SMTPC_EV_NONE)
			spins = 0;
		else
			fuzz_check(++spins <= FUZZ_MAX_RCPTS + 4, "the machine spins");

		switch (k) {
		case SL_SMTPC_EV_NONE:
			/* Every complete line was used: only a partial one may wait. */
			fuzz_check(in.len == 0 || memchr(in.data, '\n', in.len) == NULL,
				   "a complete line left unread");
			fuzz_check(in.len < SL_SMTPC_MAX_LINE, "an overlong line left unread");
			if (fed == len) {
				is_over = true;
				break;
			}
			{
				static const size_t pieces[] = { 1, 2, 3, 7, 64, 512, 4096, 0 };
				size_t n = pieces[fuzz_rand(&rnd) % 8];

				if (n == 0 || n > len - fed)
					n = len - fed;
				sl_buf_append(&in, st + fed, n);
				fed += n;
			}
			break;
		case SL_SMTPC_EV_READY:
			fuzz_check(!t.is_active, "READY inside a transaction");
			spins = 0; /* the caller acts: a local refusal answers without input */
			{
				uint32_t r = fuzz_rand(&rnd);
				const struct sl_smtp_client_caps *caps = sl_smtp_client_caps(c);

				if (txn_cnt >= FUZZ_MAX_TXN) {
					sl_smtp_client_quit(c, &out);
				} else if ((r & 15) == 0) {
					/* Idle: what the server says now is unexpected. */
				} else if ((r & 7) == 1) {
					sl_smtp_client_rset(c, &out);
				} else {
					make_txn(&rnd, txn_cnt++, &t);
					is_bdat = conf.use_chunking && caps->has_chunking;
					is_early = is_bdat && conf.use_pipelining &&
						   caps->has_pipelining;
					sl_smtp_client_send(c, &t.txn, &out);
				}
			}
			break;
		case SL_SMTPC_EV_RCPT:
			fuzz_check(t.is_active, "RCPT outside a transaction");
			fuzz_check(ev.rcpt_idx < t.txn.rcpt_cnt, "rcpt_idx out of range");
			fuzz_check(++t.rcpt_ev[ev.rcpt_idx] == 1,
				   "two RCPT events for a recipient");
			break;
		case SL_SMTPC_EV_BODY:
			fuzz_check(t.is_active && !t.has_body,
				   "BODY outside a transaction or twice");
			fuzz_check(sl_smtp_client_waiting_for(c) == SL_SMTPC_WAIT_NONE,
				   "waiting for a reply while the content is due");
			t.has_body = true;
			if (!is_early) {
				/* Content only goes when someone may take it. */
				size_t answered = 0;

				for (size_t i = 0; i < t.txn.rcpt_cnt; i++)
					answered += t.rcpt_ev[i];
				fuzz_check(answered < t.txn.rcpt_cnt,
					   "content with every RCPT refused");
			}
			{
				struct sl_smtpc_ev ev2;
				size_t used2 = 1;

				fuzz_check(sl_smtp_client_next(c, in.data, in.len, &used2, &ev2,
							       &out) == SL_SMTPC_EV_NONE &&
						   used2 == 0,
					   "input taken before the content was written");
			}
			write_body(c, &rnd, is_bdat);
			spins = 0;
			break;
		case SL_SMTPC_EV_DONE:
			fuzz_check(t.is_active, "DONE outside a transaction");
			for (size_t i = 0; i < t.txn.rcpt_cnt; i++)
				fuzz_check(t.rcpt_ev[i] == 1, "DONE before every recipient's RCPT");
			fuzz_check(ev.code != 0 || strcmp(ev.text, "no recipient accepted") == 0,
				   "DONE code 0");
			fuzz_check(ev.bytes_sent == 0 || t.has_body, "bytes without content");
			t.is_active = false;
			break;
		case SL_SMTPC_EV_FAIL:
		case SL_SMTPC_EV_CLOSED: {
			struct sl_smtpc_ev ev2;
			size_t used2 = 1;

			fuzz_check(sl_smtp_client_next(c, in.data, in.len, &used2, &ev2, &out) ==
						   SL_SMTPC_EV_NONE &&
					   used2 == 0,
				   "input taken after FAIL or CLOSED");
			fuzz_check(sl_smtp_client_waiting_for(c) == SL_SMTPC_WAIT_NONE,
				   "waiting after FAIL or CLOSED");
			fuzz_check_out(&out, &checked);
			is_over = true;
			break;
		}
		}
		(void)sl_smtp_client_waiting_for(c);
	}
	fuzz_check(sl_smtp_client_txn_cnt(c) <= txn_cnt, "txn_cnt over the transactions sent");
	sl_smtp_client_free(c);
	sl_buf_free(&out);
	sl_buf_free(&in);
	return 0;
}
