/*
 * test/unit/test_dsn.c - delivery status notifications (proto/dsn.c).
 *
 * Every DSN built here is read back by a small strict checker: CRLF line
 * ends and at most 998 octets a line everywhere, the multipart/report
 * structure (the boundary only on delimiter lines, the parts and their
 * types), the delivery-status fields of every recipient, and the returned
 * original compared octet for octet.  Then the rules around it: when no
 * DSN is sent, folding and cutting of diagnostics, 8-bit and UTF-8
 * originals, "all" reduced to headers, boundary collisions, input split
 * across iovecs, and refused input.
 *
 * Threads: one.  Parses only what the code under test wrote.  Ownership:
 * each test frees what it made.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "proto/dsn.h"

#define T_NOW     1709640000 /* Tue, 05 Mar 2024 12:00:00 +0000 */
#define T_ARRIVAL 1709553600 /* Mon, 04 Mar 2024 12:00:00 +0000 */

static const char orig_headers[] = "Return-Path: <alice@example.org>\r\n"
				   "Received: from client.example.org by mta.example.com\r\n"
				   "\tfor <bob@example.net>; Mon, 4 Mar 2024 12:00:00 +0000\r\n"
				   "From: Alice <alice@example.org>\r\n"
				   "To: Bob <bob@example.net>\r\n"
				   "Subject: hello\r\n"
				   "Message-ID: <m1@example.org>\r\n";
static const char orig_body[] = "Hi Bob,\r\n\r\nsee you.\r\n";

/* ---------------------------------------------------------------- the checker */

/* Every line ends in CRLF and has at most 998 octets; no bare CR or LF. */
static void
check_lines(const char *s, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r') {
			assert_true(i + 1 < len && s[i + 1] == '\n');
			if (i - start > 998)
				fail_msg("line of %zu octets at offset %zu", i - start, start);
			start = i + 2;
			i++;
		} else if (s[i] == '\n') {
			fail_msg("bare LF at offset %zu", i);
		}
	}
	assert_int_equal(start, len);
}

/*
 * The unfolded value of the first field `name` in a header-like block, its
 * leading white space dropped; NULL when absent.  Caller frees.
 */
static char *
field(const char *h, size_t len, const char *name)
{
	size_t nlen = strlen(name), pos = 0;
	struct sl_buf v = SL_BUF_INIT;
	bool is_in = false, is_found = false;

	while (pos < len) {
		const char *e = memmem(h + pos, len - pos, "\r\n", 2);
		size_t llen = e ? (size_t)(e - h) - pos : len - pos;
		const char *l = h + pos;

		pos += llen + 2;
		if (llen > 0 && (l[0] == ' ' || l[0] == '\t')) {
			if (is_in)
				sl_buf_append(&v, l, llen);
			continue;
		}
		if (is_in)
			break;
		if (llen > nlen && l[nlen] == ':' && strncasecmp(l, name, nlen) == 0) {
			is_in = is_found = true;
			l += nlen + 1;
			llen -= nlen + 1;
			while (llen > 0 && (*l == ' ' || *l == '\t'))
				l++, llen--;
			sl_buf_append(&v, l, llen);
		}
	}
	if (!is_found) {
		sl_buf_free(&v);
		return NULL;
	}
	sl_buf_append(&v, "", 1);
	return v.data;
}

/* Assert that field `name` of a block is exactly `want` (NULL: absent). */
static void
assert_field(const char *h, size_t len, const char *name, const char *want)
{
	char *v = field(h, len, name);

	if (want == NULL) {
		if (v != NULL)
			fail_msg("%s: unexpected \"%s\"", name, v);
	} else if (v == NULL) {
		fail_msg("%s: missing", name);
	} else if (strcmp(v, want) != 0) {
		fail_msg("%s: \"%s\", expected \"%s\"", name, v, want);
	}
	free(v);
}

struct part {
	const char *hdr; /* header lines, each with its CRLF */
	size_t hdr_len;
	const char *body;
	size_t body_len;
};

struct dsn {
	const char *msg;
	size_t len;
	const char *hdr;
	size_t hdr_len;
	char boundary[80];
	struct part parts[6];
	size_t part_cnt;
};

/* Parse and check the structure common to every DSN. */
static void
parse_dsn(struct dsn *d, const char *msg, size_t len)
{
	const char *sep, *body, *p, *q, *part_start = NULL;
	char *ct;
	size_t blen, pos;
	bool is_closed = false;

	memset(d, 0, sizeof(*d));
	d->msg = msg;
	d->len = len;
	check_lines(msg, len);
	sep = memmem(msg, len, "\r\n\r\n", 4);
	assert_non_null(sep);
	d->hdr = msg;
	d->hdr_len = (size_t)(sep - msg) + 2;

	/* RFC 5322 / 3464 header fields */
	ct = field(d->hdr, d->hdr_len, "Content-Type");
	assert_non_null(ct);
	assert_true(strncmp(ct, "multipart/report; report-type=", 30) == 0);
	p = strstr(ct, "boundary=\"");
	assert_non_null(p);
	p += 10;
	q = strchr(p, '"');
	assert_non_null(q);
	assert_true(q - p > 0 && q - p < 70);
	memcpy(d->boundary, p, (size_t)(q - p));
	free(ct);
	assert_field(d->hdr, d->hdr_len, "MIME-Version", "1.0");
	assert_field(d->hdr, d->hdr_len, "Auto-Submitted", "auto-replied");
	for (const char *const *n =
		     (const char *const[]){ "From", "To", "Subject", "Date", "Message-ID", NULL };
	     *n != NULL; n++) {
		char *v = field(d->hdr, d->hdr_len, *n);

		if (v == NULL)
			fail_msg("header %s missing", *n);
		free(v);
	}

	/* The body: preamble, delimiter lines, parts, close delimiter. */
	blen = strlen(d->boundary);
	body = sep + 4;
	pos = 0;
	while (body + pos < msg + len) {
		const char *l = body + pos, *e = memmem(l, (size_t)(msg + len - l), "\r\n", 2);
		size_t llen = (size_t)(e - l);

		assert_non_null(e);
		if (llen >= blen + 2 && l[0] == '-' && l[1] == '-' &&
		    memcmp(l + 2, d->boundary, blen) == 0) {
			assert_false(is_closed);
			if (part_start != NULL) {
				/* The CRLF before the delimiter belongs to it (RFC 2046 §5.1.1). */
				struct part *pt = &d->parts[d->part_cnt++];
				const char *pe = l - 2, *hs;

				assert_true(pe >= part_start);
				hs = memmem(part_start, (size_t)(pe - part_start) + 2, "\r\n\r\n",
					    4);
				assert_non_null(hs);
				pt->hdr = part_start;
				pt->hdr_len = (size_t)(hs - part_start) + 2;
				pt->body = hs + 4;
				pt->body_len = pe > hs + 4 ? (size_t)(pe - (hs + 4)) : 0;
			}
			if (llen == blen + 4 && l[blen + 2] == '-' && l[blen + 3] == '-') {
				is_closed = true;
			} else {
				assert_int_equal(llen, blen + 2);
				assert_true(d->part_cnt < 5);
			}
			part_start = e + 2;
		} else if (part_start != NULL) {
			/* Inside a part the boundary never occurs, not even mid-line. */
			if (memmem(l, llen, d->boundary, blen) != NULL)
				fail_msg("boundary inside a part: %.*s", (int)llen, l);
		}
		pos += llen + 2;
	}
	assert_true(is_closed);
}

/* A part's Content-Type without parameters, lower case. */
static void
assert_part_type(const struct part *pt, const char *type)
{
	char *v = field(pt->hdr, pt->hdr_len, "Content-Type");

	assert_non_null(v);
	v[strcspn(v, ";")] = '\0';
	if (strcasecmp(v, type) != 0)
		fail_msg("part type %s, expected %s", v, type);
	free(v);
}

/* The blocks of a delivery-status body, separated by blank lines. */
static size_t
split_blocks(const struct part *pt, const char **blk, size_t *blk_len, size_t max)
{
	const char *p = pt->body, *end = pt->body + pt->body_len;
	size_t n = 0;

	while (p < end && n < max) {
		const char *e = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);

		blk[n] = p;
		blk_len[n] = e ? (size_t)(e - p) + 2 : (size_t)(end - p);
		n++;
		p = e ? e + 4 : end;
	}
	return n;
}

/* Fields of one recipient block that a DSN must carry well-formed (RFC 3464 §2.3). */
static void
check_rcpt_block(const char *b, size_t len)
{
	char *v = field(b, len, "Final-Recipient");
	int c, s, dd, n = 0;

	assert_non_null(v);
	assert_true(strncmp(v, "rfc822; ", 8) == 0 || strncmp(v, "utf-8; ", 7) == 0);
	free(v);
	v = field(b, len, "Action");
	assert_non_null(v);
	assert_true(strcmp(v, "failed") == 0 || strcmp(v, "delayed") == 0);
	free(v);
	v = field(b, len, "Status");
	assert_non_null(v);
	assert_int_equal(sscanf(v, "%1d.%3d.%3d%n", &c, &s, &dd, &n), 3);
	assert_int_equal((size_t)n, strlen(v));
	assert_true(c == 4 || c == 5);
	free(v);
	v = field(b, len, "Remote-MTA");
	if (v != NULL)
		assert_true(strncmp(v, "dns; ", 5) == 0);
	free(v);
	v = field(b, len, "Diagnostic-Code");
	if (v != NULL)
		assert_true(strncmp(v, "smtp; ", 6) == 0 || strncmp(v, "X-Sluice; ", 10) == 0);
	free(v);
}

/* ---------------------------------------------------------------- building */

struct fixture {
	struct sl_dsn_rcpt rcpts[4];
	struct sl_dsn_msg m;
	struct iovec iov[2];
	struct sl_buf out;
	struct sl_dsn_result res;
	struct dsn d;
	char *orig; /* owned: the whole original */
	size_t orig_len;
};

static void
fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->orig_len = strlen(orig_headers) + 2 + strlen(orig_body);
	f->orig = sl_malloc(f->orig_len + 1);
	snprintf(f->orig, f->orig_len + 1, "%s\r\n%s", orig_headers, orig_body);
	f->iov[0].iov_base = f->orig;
	f->iov[0].iov_len = f->orig_len;
	f->rcpts[0] = (struct sl_dsn_rcpt){
		.addr = "bob@example.net",
		.action = SL_DSN_ACTION_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx1.example.net",
		.diagnostic =
			"550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
		.is_smtp_diagnostic = true,
		.last_attempt = T_NOW - 60,
	};
	f->m = (struct sl_dsn_msg){
		.reporting_mta = "mta.example.com",
		.to = "alice@example.org",
		.unique_id = "6926A1B2-0000000000000F1B",
		.qid = "6926A1B2-0000000000000F1A",
		.arrival = T_ARRIVAL,
		.now = T_NOW,
		.rcpts = f->rcpts,
		.rcpt_cnt = 1,
		.orig = f->iov,
		.orig_cnt = 1,
		.inline_original = SL_DSN_INLINE_HEADERS,
	};
}

static void
fixture_set_orig(struct fixture *f, const char *s, size_t len)
{
	sl_free(f->orig);
	f->orig = sl_malloc(len + 1);
	memcpy(f->orig, s, len);
	f->orig_len = len;
	f->iov[0].iov_base = f->orig;
	f->iov[0].iov_len = len;
}

static void
fixture_build(struct fixture *f)
{
	sl_buf_reset(&f->out);
	assert_int_equal(sl_dsn_build(&f->m, &f->out, &f->res), 0);
	parse_dsn(&f->d, f->out.data, f->out.len);
}

static void
fixture_free(struct fixture *f)
{
	sl_buf_free(&f->out);
	sl_free(f->orig);
}

/* The parts' types and the delivery-status blocks of a built DSN. */
static void
check_report(struct fixture *f, const char *report_type, const char *orig_type)
{
	const char *blk[SL_DSN_MAX_RCPTS + 1];
	size_t blk_len[SL_DSN_MAX_RCPTS + 1], n;
	char *ct = field(f->d.hdr, f->d.hdr_len, "Content-Type"), want[64];

	snprintf(want, sizeof(want), "multipart/report; report-type=%s;", report_type);
	assert_true(strncmp(ct, want, strlen(want)) == 0);
	free(ct);
	assert_int_equal(f->d.part_cnt, orig_type ? 3 : 2);
	assert_part_type(&f->d.parts[0], "text/plain");
	snprintf(want, sizeof(want), "message/%s", report_type);
	assert_part_type(&f->d.parts[1], want);
	if (orig_type != NULL)
		assert_part_type(&f->d.parts[2], orig_type);
	n = split_blocks(&f->d.parts[1], blk, blk_len, SL_ARRAY_LEN(blk));
	assert_int_equal(n, f->m.rcpt_cnt + 1);
	assert_field(blk[0], blk_len[0], "Reporting-MTA", "dns; mta.example.com");
	assert_field(blk[0], blk_len[0], "X-Sluice-Queue-ID", f->m.qid);
	for (size_t i = 1; i < n; i++)
		check_rcpt_block(blk[i], blk_len[i]);
}

/* ---------------------------------------------------------------- tests */

static void
test_headers_only(void **state)
{
	struct fixture f;
	const char *blk[4];
	size_t blk_len[4];
	char *v;

	fixture_init(&f);
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_field(f.d.hdr, f.d.hdr_len, "From",
		     "Mail Delivery System <mailer-daemon@mta.example.com>");
	assert_field(f.d.hdr, f.d.hdr_len, "To", "<alice@example.org>");
	assert_field(f.d.hdr, f.d.hdr_len, "Subject", "Mail delivery failed");
	assert_field(f.d.hdr, f.d.hdr_len, "Date", "Tue, 05 Mar 2024 12:00:00 +0000");
	assert_field(f.d.hdr, f.d.hdr_len, "Message-ID",
		     "<6926A1B2-0000000000000F1B@mta.example.com>");
	assert_field(f.d.hdr, f.d.hdr_len, "Content-Transfer-Encoding", NULL);
	split_blocks(&f.d.parts[1], blk, blk_len, 4);
	assert_field(blk[0], blk_len[0], "Arrival-Date", "Mon, 04 Mar 2024 12:00:00 +0000");
	assert_field(blk[1], blk_len[1], "Original-Recipient", NULL);
	assert_field(blk[1], blk_len[1], "Final-Recipient", "rfc822; bob@example.net");
	assert_field(blk[1], blk_len[1], "Action", "failed");
	assert_field(blk[1], blk_len[1], "Status", "5.1.1");
	assert_field(blk[1], blk_len[1], "Remote-MTA", "dns; mx1.example.net");
	assert_field(blk[1], blk_len[1], "Diagnostic-Code",
		     "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown");
	assert_field(blk[1], blk_len[1], "Last-Attempt-Date", "Tue, 05 Mar 2024 11:59:00 +0000");
	assert_field(blk[1], blk_len[1], "Will-Retry-Until", NULL);
	/* Exactly the header section comes back, without the blank line. */
	assert_int_equal(f.d.parts[2].body_len, strlen(orig_headers));
	assert_memory_equal(f.d.parts[2].body, orig_headers, strlen(orig_headers));
	/* The explanation names the recipient, the reason and the answer. */
	v = sl_strndup(f.d.parts[0].body, f.d.parts[0].body_len);
	assert_non_null(strstr(v, "<bob@example.net>: delivery failed."));
	assert_non_null(strstr(v, "Reason: the mailbox does not exist (5.1.1)."));
	assert_non_null(strstr(v, "The server mx1.example.net answered: 550 5.1.1"));
	assert_non_null(strstr(v, "The header section of your message is attached below."));
	assert_null(strstr(v, "<html"));
	sl_free(v);
	assert_false(f.res.is_8bitmime);
	assert_false(f.res.is_smtputf8);
	assert_false(f.res.is_global);
	assert_int_equal(f.res.included, SL_DSN_INLINE_HEADERS);
	fixture_free(&f);
}

static void
test_inline_modes(void **state)
{
	struct fixture f;
	char *v;

	/* all: the whole message, unchanged */
	fixture_init(&f);
	f.m.inline_original = SL_DSN_INLINE_ALL;
	f.m.mailer_daemon = "postmaster@example.com";
	f.m.msgid_host = "dsn.example.com";
	fixture_build(&f);
	check_report(&f, "delivery-status", "message/rfc822");
	assert_int_equal(f.d.parts[2].body_len, f.orig_len);
	assert_memory_equal(f.d.parts[2].body, f.orig, f.orig_len);
	assert_field(f.d.hdr, f.d.hdr_len, "From", "Mail Delivery System <postmaster@example.com>");
	assert_field(f.d.hdr, f.d.hdr_len, "Message-ID",
		     "<6926A1B2-0000000000000F1B@dsn.example.com>");
	assert_int_equal(f.res.included, SL_DSN_INLINE_ALL);
	v = sl_strndup(f.d.parts[0].body, f.d.parts[0].body_len);
	assert_non_null(strstr(v, "Your message is attached below."));
	sl_free(v);

	/* none: two parts */
	f.m.inline_original = SL_DSN_INLINE_NONE;
	fixture_build(&f);
	check_report(&f, "delivery-status", NULL);
	assert_int_equal(f.res.included, SL_DSN_INLINE_NONE);

	/* headers of a message that has no body and no blank line */
	fixture_set_orig(&f, "Subject: x\r\nFrom: <a@b>", 23);
	f.m.inline_original = SL_DSN_INLINE_HEADERS;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_int_equal(f.d.parts[2].body_len, 25);
	assert_memory_equal(f.d.parts[2].body, "Subject: x\r\nFrom: <a@b>\r\n", 25);

	/* nothing to return at all */
	f.m.orig_cnt = 0;
	f.m.inline_original = SL_DSN_INLINE_ALL;
	fixture_build(&f);
	check_report(&f, "delivery-status", NULL);
	assert_int_equal(f.res.included, SL_DSN_INLINE_NONE);
	fixture_free(&f);
}

static void
test_recipients(void **state)
{
	struct fixture f;
	const char *blk[5];
	size_t blk_len[5];
	char *v;

	fixture_init(&f);
	f.rcpts[1] = (struct sl_dsn_rcpt){
		.addr = "carol@example.net",
		.orcpt = "Carol@Example.NET",
		.action = SL_DSN_ACTION_DELAYED,
		.status = "4.2.2",
		.remote_mta = "192.0.2.25",
		.diagnostic = "452 4.2.2 Mailbox full",
		.is_smtp_diagnostic = true,
		.last_attempt = T_NOW - 30,
		.will_retry_until = T_ARRIVAL + 5 * 86400,
	};
	f.rcpts[2] = (struct sl_dsn_rcpt){
		.addr = "dave@nx.example",
		.action = SL_DSN_ACTION_FAILED,
		.status = "5.1.2",
		.diagnostic = "Host or domain name not found (NXDOMAIN)",
	};
	f.rcpts[3] = (struct sl_dsn_rcpt){
		.addr = "erin@example.net",
		.action = SL_DSN_ACTION_FAILED,
		.status = "5.4.7",
		.remote_mta = "2001:db8::25",
		.diagnostic = "554 5.4.7 [internal] exceeded max time without delivery",
		.is_smtp_diagnostic = true,
	};
	f.m.rcpt_cnt = 4;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_int_equal(split_blocks(&f.d.parts[1], blk, blk_len, 5), 5);
	assert_field(blk[2], blk_len[2], "Original-Recipient", "rfc822; Carol@Example.NET");
	assert_field(blk[2], blk_len[2], "Final-Recipient", "rfc822; carol@example.net");
	assert_field(blk[2], blk_len[2], "Action", "delayed");
	assert_field(blk[2], blk_len[2], "Remote-MTA", "dns; [192.0.2.25]");
	assert_field(blk[2], blk_len[2], "Will-Retry-Until", "Sat, 09 Mar 2024 12:00:00 +0000");
	assert_field(blk[3], blk_len[3], "Remote-MTA", NULL);
	assert_field(blk[3], blk_len[3], "Diagnostic-Code",
		     "X-Sluice; Host or domain name not found (NXDOMAIN)");
	assert_field(blk[3], blk_len[3], "Last-Attempt-Date", NULL);
	assert_field(blk[4], blk_len[4], "Remote-MTA", "dns; [IPv6:2001:db8::25]");
	assert_field(f.d.hdr, f.d.hdr_len, "Subject", "Mail delivery failed");
	v = sl_strndup(f.d.parts[0].body, f.d.parts[0].body_len);
	assert_non_null(
		strstr(v, "<carol@example.net>: delivery is delayed. The mail system will"));
	assert_non_null(strstr(v, "still trying"));
	assert_non_null(strstr(v, "Details: Host or domain name not found"));
	assert_non_null(
		strstr(v, "Reason: the message could not be delivered in the time allowed"));
	sl_free(v);

	/* Only delays: the subject says so. */
	f.rcpts[0] = f.rcpts[1];
	f.m.rcpt_cnt = 1;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_field(f.d.hdr, f.d.hdr_len, "Subject", "Mail delivery delayed");
	fixture_free(&f);
}

static void
test_long_diagnostics(void **state)
{
	struct fixture f;
	struct sl_buf words = SL_BUF_INIT;
	const char *blk[3];
	size_t blk_len[3];
	char *v, *long_word;

	fixture_init(&f);
	/* 3000 octets of words, with tabs, CR LF and double spaces to clean. */
	sl_buf_puts(&words, "550-5.7.1 ");
	while (words.len < 3000)
		sl_buf_puts(&words, "policy\t words\r\n550-5.7.1  more ");
	sl_buf_append(&words, "", 1);
	f.rcpts[0].diagnostic = words.data;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	split_blocks(&f.d.parts[1], blk, blk_len, 3);
	/* Folded: no line of the field over 78 columns. */
	{
		const char *p = strstr(blk[1], "Diagnostic-Code: "), *end = blk[1] + blk_len[1];
		size_t lines = 0;

		assert_non_null(p);
		do {
			const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);

			assert_non_null(e);
			assert_true(e - p <= 78);
			lines++;
			p = e + 2;
		} while (p < end && (*p == ' ' || *p == '\t'));
		assert_true(lines > 20);
	}
	/* Unfolded, it is the cleaned text cut at SL_DSN_MAX_DIAG with a marker. */
	v = field(blk[1], blk_len[1], "Diagnostic-Code");
	assert_non_null(v);
	assert_true(strlen(v) <= 6 + SL_DSN_MAX_DIAG + 8);
	assert_true(strlen(v) > 6 + SL_DSN_MAX_DIAG - 20);
	assert_string_equal(v + strlen(v) - 6, " [...]");
	assert_null(strchr(v, '\t'));
	assert_null(strstr(v, "  "));
	assert_true(strncmp(v, "smtp; 550-5.7.1 policy words 550-5.7.1 more policy words", 56) ==
		    0);
	free(v);

	/* A run of 1500 octets without a space: broken to stay within 998. */
	long_word = sl_malloc(1600);
	memcpy(long_word, "550 5.1.1 ", 10);
	memset(long_word + 10, 'x', 1500);
	long_word[1510] = '\0';
	f.rcpts[0].diagnostic = long_word;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	split_blocks(&f.d.parts[1], blk, blk_len, 3);
	v = field(blk[1], blk_len[1], "Diagnostic-Code");
	/* Unfolding shows the one space added where the run was broken. */
	assert_true(strncmp(v, "smtp; 550 5.1.1 xxx", 19) == 0);
	assert_int_equal(strlen(v), 16 + 1500 + 1);
	assert_int_equal(strspn(v + 16, "x "), 1501);
	assert_non_null(strchr(v + 16, ' '));
	free(v);
	sl_free(long_word);
	sl_buf_free(&words);
	fixture_free(&f);
}

static void
test_eight_bit(void **state)
{
	static const char latin1[] = "Subject: caf\xe9\r\nFrom: <a@example.org>\r\n\r\n"
				     "na\xefve body\r\n";
	static const char body8[] = "Subject: plain\r\nFrom: <a@example.org>\r\n\r\n"
				    "Gr\xc3\xbc\xc3\x9f"
				    "e\r\n";
	struct fixture f;

	fixture_init(&f);
	/* An 8-bit body, returned whole: 8bit encoding, BODY=8BITMIME. */
	fixture_set_orig(&f, body8, sizeof(body8) - 1);
	f.m.inline_original = SL_DSN_INLINE_ALL;
	fixture_build(&f);
	check_report(&f, "delivery-status", "message/rfc822");
	assert_field(f.d.parts[2].hdr, f.d.parts[2].hdr_len, "Content-Transfer-Encoding", "8bit");
	assert_field(f.d.hdr, f.d.hdr_len, "Content-Transfer-Encoding", "8bit");
	assert_field(f.d.parts[0].hdr, f.d.parts[0].hdr_len, "Content-Transfer-Encoding", NULL);
	assert_true(f.res.is_8bitmime);
	assert_false(f.res.is_smtputf8);

	/* Its headers only are 7-bit: nothing 8-bit is sent. */
	f.m.inline_original = SL_DSN_INLINE_HEADERS;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_field(f.d.parts[2].hdr, f.d.parts[2].hdr_len, "Content-Transfer-Encoding", NULL);
	assert_false(f.res.is_8bitmime);

	/* Raw Latin-1 in the header section: returned as it is, marked 8bit. */
	fixture_set_orig(&f, latin1, sizeof(latin1) - 1);
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_field(f.d.parts[2].hdr, f.d.parts[2].hdr_len, "Content-Transfer-Encoding", "8bit");
	assert_memory_equal(f.d.parts[2].body, "Subject: caf\xe9\r\n", 15);
	assert_true(f.res.is_8bitmime);

	/* Non-ASCII and control octets in a remote text of an ASCII DSN become '?'/' '. */
	f.m.inline_original = SL_DSN_INLINE_NONE;
	f.rcpts[0].diagnostic = "550 5.1.1 Benutzer unbekannt: M\xc3\xbcller\x01gone";
	fixture_build(&f);
	check_report(&f, "delivery-status", NULL);
	assert_false(f.res.is_8bitmime);
	{
		const char *blk[3];
		size_t blk_len[3];

		split_blocks(&f.d.parts[1], blk, blk_len, 3);
		assert_field(blk[1], blk_len[1], "Diagnostic-Code",
			     "smtp; 550 5.1.1 Benutzer unbekannt: M??ller gone");
	}
	fixture_free(&f);
}

static void
test_smtputf8(void **state)
{
	static const char orig[] = "From: J\xc3\xbcrgen <j\xc3\xbcrgen@example.org>\r\n"
				   "Subject: Gr\xc3\xbc\xc3\x9f"
				   "e\r\n\r\nHallo\r\n";
	struct fixture f;
	const char *blk[3];
	size_t blk_len[3];

	fixture_init(&f);
	fixture_set_orig(&f, orig, sizeof(orig) - 1);
	f.m.is_smtputf8 = true;
	f.m.to = "j\xc3\xbcrgen@example.org";
	f.rcpts[0].addr = "\xe7\x94\xa8\xe6\x88\xb7@example.net";
	f.rcpts[0].diagnostic = "553 5.6.7 \xc3\x9cnicode \xff not here";
	fixture_build(&f);
	/* RFC 6533: global types, utf-8 address type, UTF-8 kept (invalid octets '?'). */
	check_report(&f, "global-delivery-status", "message/global-headers");
	split_blocks(&f.d.parts[1], blk, blk_len, 3);
	assert_field(blk[1], blk_len[1], "Final-Recipient",
		     "utf-8; \xe7\x94\xa8\xe6\x88\xb7@example.net");
	assert_field(blk[1], blk_len[1], "Diagnostic-Code",
		     "smtp; 553 5.6.7 \xc3\x9cnicode ? not here");
	assert_field(f.d.parts[1].hdr, f.d.parts[1].hdr_len, "Content-Transfer-Encoding", "8bit");
	assert_field(f.d.parts[0].hdr, f.d.parts[0].hdr_len, "Content-Type",
		     "text/plain; charset=utf-8");
	assert_true(f.res.is_global);
	assert_true(f.res.is_8bitmime);
	assert_true(f.res.is_smtputf8); /* To: and RCPT TO are UTF-8 */

	/* An ASCII sender: the DSN itself needs no SMTPUTF8, only 8BITMIME. */
	f.m.to = "juergen@example.org";
	f.m.inline_original = SL_DSN_INLINE_ALL;
	fixture_build(&f);
	check_report(&f, "global-delivery-status", "message/global");
	assert_memory_equal(f.d.parts[2].body, orig, sizeof(orig) - 1);
	assert_true(f.res.is_8bitmime);
	assert_false(f.res.is_smtputf8);

	/* A non-ASCII recipient alone makes the report global. */
	f.m.is_smtputf8 = false;
	fixture_set_orig(&f, "Subject: x\r\n\r\nbody\r\n", 20);
	fixture_build(&f);
	check_report(&f, "global-delivery-status", "message/global");
	assert_false(f.res.is_smtputf8);
	fixture_free(&f);
}

static void
test_reduced_original(void **state)
{
	struct fixture f;
	struct sl_buf big = SL_BUF_INIT;
	char *v;

	fixture_init(&f);
	f.m.inline_original = SL_DSN_INLINE_ALL;

	/* A body line over 998 octets: headers only, and the text says why. */
	sl_buf_puts(&big, "Subject: long\r\n\r\n");
	for (int i = 0; i < 1200; i++)
		sl_buf_append(&big, "y", 1);
	sl_buf_puts(&big, "\r\n");
	fixture_set_orig(&f, big.data, big.len);
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_int_equal(f.res.included, SL_DSN_INLINE_HEADERS);
	assert_int_equal(f.d.parts[2].body_len, 15);
	v = sl_strndup(f.d.parts[0].body, f.d.parts[0].body_len);
	assert_non_null(strstr(v, "lines too long"));
	sl_free(v);

	/* A NUL in the body: the same. */
	fixture_set_orig(&f, "Subject: nul\r\n\r\na\0b\r\n", 21);
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_int_equal(f.res.included, SL_DSN_INLINE_HEADERS);

	/* Over max_inline_len: headers only. */
	sl_buf_reset(&big);
	sl_buf_puts(&big, "Subject: big\r\n\r\n");
	for (int i = 0; i < 100; i++)
		sl_buf_puts(&big, "0123456789012345678901234567890123456789\r\n");
	fixture_set_orig(&f, big.data, big.len);
	f.m.max_inline_len = 1000;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_int_equal(f.res.included, SL_DSN_INLINE_HEADERS);
	v = sl_strndup(f.d.parts[0].body, f.d.parts[0].body_len);
	assert_non_null(strstr(v, "larger than returned mail may be"));
	sl_free(v);
	/* ... and within it, whole. */
	f.m.max_inline_len = big.len;
	fixture_build(&f);
	check_report(&f, "delivery-status", "message/rfc822");
	assert_int_equal(f.d.parts[2].body_len, big.len);

	/* A header line over 998 octets is cut in headers mode, never split. */
	sl_buf_reset(&big);
	sl_buf_puts(&big, "X-Long: ");
	for (int i = 0; i < 1500; i++)
		sl_buf_append(&big, "z", 1);
	sl_buf_puts(&big, "\r\nSubject: after\r\n\r\nbody\r\n");
	fixture_set_orig(&f, big.data, big.len);
	f.m.max_inline_len = 0;
	f.m.inline_original = SL_DSN_INLINE_HEADERS;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_int_equal(f.d.parts[2].body_len, 998 + 2 + 16);
	assert_memory_equal(f.d.parts[2].body + 1000, "Subject: after\r\n", 16);

	/* Headers over max_inline_len are cut at a line boundary. */
	fixture_free(&f);
	fixture_init(&f);
	f.m.max_inline_len = 60;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_int_equal(f.d.parts[2].body_len, 34); /* only the Return-Path line fits */
	v = sl_strndup(f.d.parts[0].body, f.d.parts[0].body_len);
	assert_non_null(strstr(v, "It has been shortened."));
	sl_free(v);
	sl_buf_free(&big);
	fixture_free(&f);
}

static void
test_line_ends_and_nul(void **state)
{
	static const char normalised[] =
		"Subject: a\r\nFrom: <a@b>\r\nTo: <c@d>\r\n\r\nbody\r\nend\r\n";
	struct fixture f;

	fixture_init(&f);
	/* Bare LF and bare CR become CRLF; a missing final CRLF is added. */
	fixture_set_orig(&f, "Subject: a\nFrom: <a@b>\rTo: <c@d>\r\n\nbody\nend", 43);
	f.m.inline_original = SL_DSN_INLINE_ALL;
	fixture_build(&f);
	check_report(&f, "delivery-status", "message/rfc822");
	assert_int_equal(f.d.parts[2].body_len, strlen(normalised));
	assert_memory_equal(f.d.parts[2].body, normalised, strlen(normalised));
	/* A NUL in a header line becomes '?' (headers mode). */
	fixture_set_orig(&f, "Subject: a\0b\r\n\r\nx\r\n", 19);
	f.m.inline_original = SL_DSN_INLINE_HEADERS;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	assert_memory_equal(f.d.parts[2].body, "Subject: a?b\r\n", 14);
	fixture_free(&f);
}

static void
test_boundary_collision(void **state)
{
	struct fixture f;
	char b0[80], prefix[80], *orig;
	size_t plen;

	fixture_init(&f);
	fixture_build(&f);
	snprintf(b0, sizeof(b0), "%s", f.d.boundary);
	/* "=_sluice_<hash>_0=" */
	assert_true(strncmp(b0, "=_sluice_", 9) == 0);
	plen = strlen(b0) - 2;
	assert_string_equal(b0 + plen, "0=");
	memcpy(prefix, b0, plen);
	prefix[plen] = '\0';

	/* Deterministic: the same input gives the same octets. */
	{
		struct sl_buf again = SL_BUF_INIT;

		assert_int_equal(sl_dsn_build(&f.m, &again, NULL), 0);
		assert_int_equal(again.len, f.out.len);
		assert_memory_equal(again.data, f.out.data, again.len);
		sl_buf_free(&again);
	}

	/* An original that holds boundaries 0 and 1 (and 10, which does not
	 * contain 1=): the DSN takes 2; the checker verifies no part has it. */
	orig = sl_asprintf("Subject: %s0=\r\nX-A: --%s1=\r\n\r\n--%s10=\r\n--%s1\r\n", prefix,
			   prefix, prefix, prefix);
	fixture_set_orig(&f, orig, strlen(orig));
	f.m.inline_original = SL_DSN_INLINE_ALL;
	fixture_build(&f);
	check_report(&f, "delivery-status", "message/rfc822");
	assert_true(strncmp(f.d.boundary, prefix, plen) == 0);
	assert_string_equal(f.d.boundary + plen, "2=");
	assert_memory_equal(f.d.parts[2].body, orig, strlen(orig));
	sl_free(orig);

	/* A remote text can carry it too. */
	orig = sl_asprintf("550 5.1.1 %s0= %s2=", prefix, prefix);
	f.rcpts[0].diagnostic = orig;
	fixture_build(&f);
	check_report(&f, "delivery-status", "message/rfc822");
	assert_string_equal(f.d.boundary + plen, "3=");
	sl_free(orig);
	fixture_free(&f);
}

static void
test_iovec_splits(void **state)
{
	struct fixture f;
	struct sl_buf whole = SL_BUF_INIT;
	struct iovec *iov;
	static const char orig[] = "Subject: split\r\nContent-Type: text/plain\r\n\r\n"
				   "line one\r\n\r\nline three\r\n";
	size_t n = sizeof(orig) - 1;

	fixture_init(&f);
	fixture_set_orig(&f, orig, n);
	f.m.inline_original = SL_DSN_INLINE_ALL;
	assert_int_equal(sl_dsn_build(&f.m, &whole, NULL), 0);
	/* One octet per iovec, with empty iovecs between: the same DSN. */
	iov = sl_calloc(2 * n, sizeof(*iov));
	for (size_t i = 0; i < n; i++) {
		iov[2 * i].iov_base = f.orig + i;
		iov[2 * i].iov_len = 1;
		iov[2 * i + 1].iov_base = f.orig;
		iov[2 * i + 1].iov_len = 0;
	}
	f.m.orig = iov;
	f.m.orig_cnt = 2 * n;
	fixture_build(&f);
	assert_int_equal(f.out.len, whole.len);
	assert_memory_equal(f.out.data, whole.data, whole.len);
	/* Split between CR and LF of every line end. */
	for (size_t cut = 1; cut < n; cut++) {
		struct iovec two[2] = { { f.orig, cut }, { f.orig + cut, n - cut } };

		f.m.orig = two;
		f.m.orig_cnt = 2;
		fixture_build(&f);
		assert_int_equal(f.out.len, whole.len);
		assert_memory_equal(f.out.data, whole.data, whole.len);
	}
	sl_free(iov);
	sl_buf_free(&whole);
	fixture_free(&f);
}

static void
test_bad_input(void **state)
{
	static const struct {
		const char *name;
		int what;
	} cases[] = {
		{ "no recipients", 0 },
		{ "bad status 5.1", 1 },
		{ "success status", 2 },
		{ "CR in address", 3 },
		{ "empty to", 4 },
		{ "space in unique id", 5 },
		{ "bad reporting host", 6 },
		{ "status 5.1.1234", 7 },
		{ "invalid UTF-8 address", 8 },
		{ "<> in mailer-daemon", 9 },
		{ "too many recipients", 10 },
	};

	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		struct fixture f;

		print_message("%s\n", cases[i].name);
		fixture_init(&f);
		sl_buf_puts(&f.out, "keep");
		switch (cases[i].what) {
		case 0:
			f.m.rcpt_cnt = 0;
			break;
		case 1:
			f.rcpts[0].status = "5.1";
			break;
		case 2:
			f.rcpts[0].status = "2.0.0";
			break;
		case 3:
			f.rcpts[0].addr = "bob@example.net\r\nBcc: x@y";
			break;
		case 4:
			f.m.to = "";
			break;
		case 5:
			f.m.unique_id = "a b";
			break;
		case 6:
			f.m.reporting_mta = "mta example";
			break;
		case 7:
			f.rcpts[0].status = "5.1.1234";
			break;
		case 8:
			f.rcpts[0].addr = "\xff@example.net";
			break;
		case 9:
			f.m.mailer_daemon = "Postmaster <pm@example.com>";
			break;
		case 10:
			f.m.rcpt_cnt = SL_DSN_MAX_RCPTS + 1;
			break;
		}
		assert_int_equal(sl_dsn_build(&f.m, &f.out, &f.res), -EINVAL);
		assert_int_equal(f.out.len, 4);
		fixture_free(&f);
	}
}

static void
test_decide(void **state)
{
	static const struct {
		const char *sender;
		const char *notify;
		bool gen, report, partial, multi;
		enum sl_dsn_verdict want;
		const char *to;
	} cases[] = {
		{ "a@b", NULL, true, false, false, true, SL_DSN_TO_SENDER, "a@b" },
		/* RFC 5321 §6.1: never to the null sender */
		{ "", NULL, true, false, false, true, SL_DSN_NO_NULL_SENDER, NULL },
		{ "", "", true, false, false, true, SL_DSN_NO_NULL_SENDER, NULL },
		{ NULL, NULL, true, false, false, true, SL_DSN_NO_NULL_SENDER, NULL },
		/* ... unless MDN_Failures_Notify names a mailbox */
		{ "", "postmaster@x", true, false, false, true, SL_DSN_TO_NOTIFY, "postmaster@x" },
		/* generate_bounces off for the scope */
		{ "a@b", NULL, false, false, false, true, SL_DSN_NO_DISABLED, NULL },
		{ "", "postmaster@x", false, false, false, true, SL_DSN_NO_DISABLED, NULL },
		/* no bounce of a bounce, even with a sender, even to notify */
		{ "a@b", NULL, true, true, false, true, SL_DSN_NO_REPORT, NULL },
		{ "", "postmaster@x", true, true, false, true, SL_DSN_NO_REPORT, NULL },
		/* partial policy refusals */
		{ "a@b", NULL, true, false, true, false, SL_DSN_NO_POLICY, NULL },
		{ "a@b", NULL, true, false, true, true, SL_DSN_TO_SENDER, "a@b" },
		{ "a@b", NULL, true, false, false, false, SL_DSN_TO_SENDER, "a@b" },
	};

	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		struct sl_dsn_facts f = {
			.sender = cases[i].sender,
			.failures_notify = cases[i].notify,
			.is_generate_bounces = cases[i].gen,
			.is_report = cases[i].report,
			.is_partial_policy = cases[i].partial,
			.is_multi_policy_bounces = cases[i].multi,
		};
		const char *to = "junk";

		print_message("case %zu\n", i);
		assert_int_equal(sl_dsn_decide(&f, &to), cases[i].want);
		if (cases[i].to == NULL)
			assert_null(to);
		else
			assert_string_equal(to, cases[i].to);
		assert_non_null(sl_dsn_verdict_name(cases[i].want));
	}
}

static void
test_is_report(void **state)
{
	static const struct {
		const char *msg;
		bool want;
	} cases[] = {
		{ "From: MAILER-DAEMON@x\r\nContent-Type: multipart/report; "
		  "report-type=delivery-status;\r\n\tboundary=\"b\"\r\n\r\n--b\r\n",
		  true },
		{ "Content-Type: Multipart/Report;\r\n boundary=x;\r\n "
		  "Report-Type=\"Delivery-Status\"\r\n\r\n",
		  true },
		{ "content-type: multipart/report; report-type=global-delivery-status; b=x\r\n\r\n",
		  true },
		{ "Content-Type: multipart/report; report-type=disposition-notification\r\n\r\n",
		  true },
		{ "Content-Type: multipart/report; report-type=feedback-report\r\n\r\n", false },
		{ "Content-Type: multipart/mixed; report-type=delivery-status\r\n\r\n", false },
		{ "Content-Type: multipart/reports; report-type=delivery-status\r\n\r\n", false },
		{ "Content-Type: multipart/report; x-report-type=delivery-status\r\n\r\n", false },
		{ "Subject: x\r\n\r\nContent-Type: multipart/report; "
		  "report-type=delivery-status\r\n",
		  false },
		{ "Content-Type: text/plain\r\nContent-Type: multipart/report; "
		  "report-type=delivery-status\r\n\r\n",
		  false },
		{ "Auto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nbody\r\n", false },
		{ "", false },
	};

	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		size_t n = strlen(cases[i].msg);
		struct iovec one = { (void *)cases[i].msg, n };

		print_message("case %zu\n", i);
		assert_int_equal(sl_dsn_is_report(&one, 1), cases[i].want);
		for (size_t cut = 0; cut <= n; cut++) {
			struct iovec two[2] = { { (void *)cases[i].msg, cut },
						{ (void *)(cases[i].msg + cut), n - cut } };

			assert_int_equal(sl_dsn_is_report(two, 2), cases[i].want);
		}
	}
}

static void
test_status_helpers(void **state)
{
	static const struct {
		unsigned code;
		const char *enhanced;
		enum sl_dsn_action action;
		const char *want;
	} from[] = {
		{ 550, "5.1.1", SL_DSN_ACTION_FAILED, "5.1.1" },
		{ 452, "4.2.2", SL_DSN_ACTION_DELAYED, "4.2.2" },
		{ 550, "", SL_DSN_ACTION_FAILED, "5.0.0" },
		{ 550, NULL, SL_DSN_ACTION_FAILED, "5.0.0" },
		{ 421, "1", SL_DSN_ACTION_DELAYED, "4.0.0" },
		{ 554, "5.7.500", SL_DSN_ACTION_FAILED, "5.7.500" },
		{ 554, "5.7.5000", SL_DSN_ACTION_FAILED, "5.0.0" },
		{ 550, "6.1.1", SL_DSN_ACTION_FAILED, "5.0.0" },
		{ 0, NULL, SL_DSN_ACTION_FAILED, "5.0.0" },
		{ 0, NULL, SL_DSN_ACTION_DELAYED, "4.0.0" },
	};
	static const struct {
		const char *status;
		const char *want;
	} words[] = {
		{ "5.1.1", "the mailbox does not exist" },
		{ "4.2.2", "the mailbox is full" },
		{ "5.3.4", "the message is too large" },
		{ "5.1.10", "the recipient's domain accepts no mail (null MX)" },
		{ "5.1.99", "a problem with an address" },
		{ "5.7.26", "a security or policy problem" },
		{ "5.9.9", "an unspecified problem" },
		{ "junk", "an unspecified problem" },
		{ NULL, "an unspecified problem" },
	};
	char buf[16];

	for (size_t i = 0; i < SL_ARRAY_LEN(from); i++)
		assert_string_equal(sl_dsn_status_from_reply(from[i].code, from[i].enhanced,
							     from[i].action, buf),
				    from[i].want);
	for (size_t i = 0; i < SL_ARRAY_LEN(words); i++)
		assert_string_equal(sl_dsn_status_text(words[i].status), words[i].want);
}

static void
test_many_recipients(void **state)
{
	struct fixture f;
	struct sl_dsn_rcpt *r = sl_calloc(SL_DSN_MAX_RCPTS, sizeof(*r));
	char(*addr)[40] = sl_calloc(SL_DSN_MAX_RCPTS, sizeof(*addr));

	fixture_init(&f);
	for (size_t i = 0; i < SL_DSN_MAX_RCPTS; i++) {
		snprintf(addr[i], sizeof(addr[i]), "user%zu@example.net", i);
		r[i] = f.rcpts[0];
		r[i].addr = addr[i];
	}
	f.m.rcpts = r;
	f.m.rcpt_cnt = SL_DSN_MAX_RCPTS;
	fixture_build(&f);
	check_report(&f, "delivery-status", "text/rfc822-headers");
	sl_free(r);
	sl_free(addr);
	fixture_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers_only),       cmocka_unit_test(test_inline_modes),
		cmocka_unit_test(test_recipients),         cmocka_unit_test(test_long_diagnostics),
		cmocka_unit_test(test_eight_bit),          cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_reduced_original),   cmocka_unit_test(test_line_ends_and_nul),
		cmocka_unit_test(test_boundary_collision), cmocka_unit_test(test_iovec_splits),
		cmocka_unit_test(test_bad_input),          cmocka_unit_test(test_decide),
		cmocka_unit_test(test_is_report),          cmocka_unit_test(test_status_helpers),
		cmocka_unit_test(test_many_recipients),
	};

	return cmocka_run_group_tests_name("dsn", tests, NULL, NULL);
}
