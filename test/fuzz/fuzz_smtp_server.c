/*
 * test/fuzz/fuzz_smtp_server.c - libFuzzer harness for the ESMTP server machine.
 *
 * The first FUZZ_HDR octets pick the configuration, the verdicts
 * (accept or refuse, by bit) and how the rest is split into reads; the rest
 * is what the client sends.  The harness drives one session like the
 * protocol stage does and checks the contract:
 *   - every reply line ends in CRLF, holds no other CR or LF, is at most
 *     512 octets and starts with a 3-digit code and ' ', '-' or the end;
 *   - `used` never exceeds the input; a pending verdict consumes nothing;
 *     the machine never spins (events without consumption are bounded);
 *   - a DATA message ends exactly at the first <CRLF>.<CRLF> after the
 *     354 (or at a '.' CRLF right after it), never before or after;
 *   - a DATA message's content, length and defects equal those of an
 *     independent reference decoder below; a BDAT message's length equals
 *     its BODY octets;
 *   - event strings are NUL-terminated, of their stated length, free of
 *     control characters.
 * Build and run with test/fuzz/run-smtp.sh.
 *
 * Threads: one (libFuzzer's).  Parses untrusted input: that is the point.
 * Ownership: each run frees its session and buffers.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/buf.h"
#include "proto/smtp_server.h"

#define FUZZ_HDR 6

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

/* Reply lines from `*checked` on: complete, short, coded. */
static void
fuzz_check_out(const struct sl_buf *out, size_t *checked)
{
	while (*checked < out->len) {
		const char *p = out->data + *checked;
		size_t rest = out->len - *checked;
		const char *lf = memchr(p, '\n', rest);
		size_t n;

		fuzz_check(lf != NULL, "reply line without LF");
		n = (size_t)(lf - p) + 1;
		fuzz_check(n <= SL_SMTP_MAX_CMD_LINE, "reply line over 512 octets");
		fuzz_check(n >= 5 && p[n - 2] == '\r', "reply line without CRLF");
		fuzz_check(memchr(p, '\r', n - 2) == NULL, "CR inside a reply line");
		fuzz_check(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
				   p[2] >= '0' && p[2] <= '9',
			   "reply code");
		fuzz_check(n == 5 || p[3] == ' ' || p[3] == '-', "reply code separator");
		*checked += n;
	}
}

static void
fuzz_check_str(const char *s, size_t len, const char *what)
{
	fuzz_check(s != NULL && strlen(s) == len, what);
	for (size_t i = 0; i < len; i++)
		fuzz_check((unsigned char)s[i] >= 0x20 && s[i] != 0x7f, what);
}

struct ref_result {
	struct sl_buf content;
	unsigned defects;
};

/*
 * The reference: what a DATA message of wire octets w[0..n) (the final
 * "." CRLF excluded) must store, written as plainly as possible, one octet
 * at a time.
 */
static void
ref_decode(const unsigned char *w, size_t n, const struct sl_smtp_server_conf *c,
	   struct ref_result *r)
{
	bool wire_bol = true, stored_bol = true, in_header = true;
	size_t line = 0;
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = w[i];
		enum sl_smtp_bare_eol pol;

		if (wire_bol && ch == '.') {
			wire_bol = false; /* stuffing: dropped */
			continue;
		}
		wire_bol = false;
		if (ch == '\r' && i + 1 < n && w[i + 1] == '\n') {
			sl_buf_append(&r->content, "\r\n", 2);
			total += 2;
			if (in_header && stored_bol)
				in_header = false;
			stored_bol = true;
			line = 0;
			wire_bol = true;
			i++;
			continue;
		}
		if (ch == '\r' || ch == '\n') {
			pol = in_header ? (c->header_bare_eol == SL_SMTP_BARE_EOL_FIX
						   ? SL_SMTP_BARE_EOL_FIX
						   : SL_SMTP_BARE_EOL_REJECT)
					: c->body_bare_eol;
			if (pol == SL_SMTP_BARE_EOL_FIX) {
				sl_buf_append(&r->content, "\r\n", 2);
				total += 2;
			} else if (pol == SL_SMTP_BARE_EOL_IGNORE) {
				sl_buf_append(&r->content, &ch, 1);
				total += 1;
			} else {
				r->defects |= SL_SMTP_DEFECT_BARE_EOL;
				total += 1;
			}
			if (in_header && stored_bol)
				in_header = false;
			stored_bol = true;
			line = 0;
			continue;
		}
		sl_buf_append(&r->content, &ch, 1);
		total++;
		stored_bol = false;
		if (++line > SL_SMTP_MAX_TEXT_LINE - 2)
			r->defects |= SL_SMTP_DEFECT_LONG_LINE;
	}
	if (c->message_size != 0 && total > c->message_size)
		r->defects |= SL_SMTP_DEFECT_TOO_BIG;
}

/* The first real terminator at or after `start`: returns the offset of its '.', or -1. */
static long
first_end(const uint8_t *st, size_t start, size_t len)
{
	for (size_t p = start; p + 3 <= len; p++) {
		bool bol = p == start || (p >= start + 2 && st[p - 2] == '\r' && st[p - 1] == '\n');

		if (bol && st[p] == '.' && st[p + 1] == '\r' && st[p + 2] == '\n')
			return (long)p;
	}
	return -1;
}

static uint32_t
fuzz_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[] = { 0, 10, 100, 2000 };
	static const enum sl_smtp_bare_eol pols[] = { SL_SMTP_BARE_EOL_REJECT, SL_SMTP_BARE_EOL_FIX,
						      SL_SMTP_BARE_EOL_IGNORE,
						      SL_SMTP_BARE_EOL_FIX };
	static const unsigned codes[] = { 550, 451, 554, 421 };
	static const char *const lines[] = { "[connection] a b", "[message] c\r\nd" };
	struct sl_smtp_server_conf conf;
	struct sl_buf out = SL_BUF_INIT, in = SL_BUF_INIT, body = SL_BUF_INIT;
	struct ref_result ref = { SL_BUF_INIT, 0 };
	struct sl_smtp_server *s;
	const uint8_t *st;
	size_t len, fed = 0, consumed = 0, checked = 0, data_start = 0;
	unsigned verdicts = 0, spins = 0;
	bool in_data = false, is_bdat = false;
	uint32_t rnd;

	if (size < FUZZ_HDR)
		return 0;
	memset(&conf, 0, sizeof(conf));
	conf.hostname = "mx.example";
	conf.greeting = (data[0] & 1) ? "ESMTP sluice" : NULL;
	conf.has_enhancedstatuscodes = data[0] & 2;
	conf.allow_trailing_ws = data[0] & 4;
	conf.require_ehlo = data[0] & 8;
	conf.allow_null_sender = data[0] & 16;
	conf.has_xclient = data[0] & 32;
	conf.has_xremoteip = data[0] & 64;
	conf.has_xdumpcontext = data[0] & 64;
	conf.has_starttls = data[0] & 128;
	conf.body_bare_eol = pols[data[1] & 3];
	conf.header_bare_eol = pols[(data[1] >> 2) & 3];
	conf.has_chunking = !(data[1] & 16);
	conf.has_8bitmime = !(data[1] & 32);
	conf.has_smtputf8 = !(data[1] & 64);
	conf.static_banner = (data[1] & 128) ? "banner\r\nwith CRLF" : NULL;
	conf.message_size = sizes[data[2] & 3];
	conf.max_rcpt_per_message = (data[2] >> 2) & 3;
	conf.max_rcpt_per_session = (data[2] >> 4) & 7;
	conf.max_msgs_per_session = data[3] & 3;
	conf.max_errors = (data[3] >> 2) & 7;
	rnd = (uint32_t)data[4] << 8 | data[5] | 1u << 24;
	st = data + FUZZ_HDR;
	len = size - FUZZ_HDR;

	s = sl_smtp_server_new(&conf, &out);
	if (data[3] & 0x20) { /* refused at connect */
		sl_buf_reset(&out);
		sl_smtp_server_reject(s, (data[3] & 0x40) ? 421 : 554, NULL, "no", &out);
	}
	for (;;) {
		struct sl_smtp_ev ev;
		size_t used = 99;
		enum sl_smtp_ev_kind k = sl_smtp_server_next(s, in.data, in.len, &used, &ev, &out);

		fuzz_check(used <= in.len, "consumed more than the input");
		fuzz_check(k == ev.kind, "return value and ev->kind differ");
		fuzz_check_out(&out, &checked);
		if (k == SL_SMTP_EV_BODY) {
			fuzz_check(ev.data_len > 0, "empty BODY");
			fuzz_check(in_data, "BODY outside a message");
			sl_buf_append(&body, ev.data, ev.data_len); /* before the input goes */
		}
		if (ev.arg != NULL)
			fuzz_check_str(ev.arg, ev.arg_len, "event arg");
		if (ev.reply != NULL)
			fuzz_check_str(ev.reply, strlen(ev.reply), "event reply");
		for (size_t i = 0; i < ev.xclient_cnt; i++)
			fuzz_check_str(ev.xclient[i].value, strlen(ev.xclient[i].value), "xclient");
		if (k == SL_SMTP_EV_MAIL || k == SL_SMTP_EV_RCPT)
			fuzz_check(ev.arg_len < SL_SMTP_MAX_PATH, "address too long");
		consumed += used;
		sl_buf_consume(&in, used);

		if (k == SL_SMTP_EV_EOM) {
			fuzz_check(in_data, "EOM outside a message");
			in_data = false;
			if (!is_bdat) {
				long end = first_end(st, data_start, len);

				fuzz_check(end >= 0 && (size_t)end + 3 == consumed,
					   "DATA did not end at the first <CRLF>.<CRLF>");
				ref_decode(st + data_start, (size_t)end - data_start, &conf, &ref);
				fuzz_check(ref.defects == ev.defects,
					   "defects differ from the reference");
				if (ev.defects == 0) {
					fuzz_check(ref.content.len == body.len &&
							   (body.len == 0 ||
							    memcmp(ref.content.data, body.data,
								   body.len) == 0),
						   "content differs from the reference");
				}
				sl_buf_reset(&ref.content);
				ref.defects = 0;
			}
			if (ev.defects == 0)
				fuzz_check(ev.message_len == body.len,
					   "message_len is not the BODY length");
			fuzz_check(ev.defects != SL_SMTP_DEFECT_BDAT_SIZE, "BDAT_SIZE set");
		}
		if (k == SL_SMTP_EV_RSET || k == SL_SMTP_EV_CLOSE)
			in_data = false;

		if (ev.needs_verdict) {
			struct sl_smtp_ev ev2;
			size_t used2 = 1;
			bool is_accept = (rnd >> (verdicts++ % 16)) & 1;

			fuzz_check(sl_smtp_server_waiting_for(s) == SL_SMTP_WAIT_VERDICT,
				   "wait state");
			fuzz_check(sl_smtp_server_next(s, in.data, in.len, &used2, &ev2, &out) ==
						   SL_SMTP_EV_NONE &&
					   used2 == 0,
				   "a pending verdict consumed input");
			if (k == SL_SMTP_EV_DATA && is_accept) {
				in_data = true;
				is_bdat = ev.is_bdat;
				data_start = consumed;
				sl_buf_reset(&body);
			}
			if (is_accept && k == SL_SMTP_EV_XDUMPCONTEXT && (verdicts & 2))
				sl_smtp_server_reply_lines(s, lines, 2, &out);
			else if (is_accept)
				sl_smtp_server_accept(
					s, (verdicts & 4) ? "Ok: queued as X\r\n" : NULL, &out);
			else
				sl_smtp_server_reject(s,
						      codes[verdicts % 4 == 3 && !(data[3] & 0x80)
								    ? 0
								    : verdicts % 4],
						      (verdicts & 8) ? "5.7.1" : NULL,
						      (verdicts & 16) ? NULL : "refused", &out);
			fuzz_check_out(&out, &checked);
			spins = 0;
			continue;
		}
		if (used > 0) {
			spins = 0;
		} else if (k != SL_SMTP_EV_NONE) {
			/* Events without input: queued ones, a settled CR, a chunk's end. */
			fuzz_check(++spins < 8, "the machine spins");
			continue;
		}
		if (k != SL_SMTP_EV_NONE)
			continue;
		if (used > 0)
			continue;
		/* NONE without consuming: the machine needs input, or is closing. */
		if (sl_smtp_server_is_closing(s))
			break;
		if (fed == len) {
			/* Stalled on complete input?  Only a partial command line may wait. */
			fuzz_check(memchr(in.data ? in.data : "", '\n', in.len) == NULL &&
					   in.len < SL_SMTP_MAX_CMD_LINE,
				   "the machine left a complete line unread");
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
	}
	if (data[3] & 0x10)
		sl_smtp_server_timeout(s, &out);
	else
		sl_smtp_server_shutdown(s, &out);
	fuzz_check_out(&out, &checked);
	fuzz_check(sl_smtp_server_is_closing(s), "not closing after shutdown");
	sl_smtp_server_free(s);
	sl_buf_free(&out);
	sl_buf_free(&in);
	sl_buf_free(&body);
	sl_buf_free(&ref.content);
	return 0;
}
