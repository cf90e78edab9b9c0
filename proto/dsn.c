/*
 * proto/dsn.c - RFC 3464 delivery status notifications (see dsn.h).
 *
 * sl_dsn_build() works in three steps: it copies what is returned of the
 * original into a scratch buffer (normalising line ends, watching for
 * 8-bit octets, NULs and long lines), writes the text and delivery-status
 * parts into two more, picks a boundary none of the three contains, then
 * assembles the message into the caller's buffer.  The extra copy of the
 * original is what lets the boundary be checked against exactly the bytes
 * sent; the original is bounded by max_inline_len.
 *
 * Threads: any; pure.  Parses untrusted input (the original, remote texts).
 * Ownership: scratch buffers are freed before returning.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "proto/dsn.h"

#define DSN_FOLD_COLS 78 /* RFC 5322 §2.1.1: lines SHOULD be at most 78 characters */
#define DSN_TEXT_COLS 76

/* ---------------------------------------------------------------- decisions */

enum sl_dsn_verdict
sl_dsn_decide(const struct sl_dsn_facts *f, const char **to)
{
	enum sl_dsn_verdict v;

	SL_ASSERT(f != NULL && to != NULL);
	*to = NULL;
	if (f->is_report)
		v = SL_DSN_NO_REPORT;
	else if (!f->is_generate_bounces)
		v = SL_DSN_NO_DISABLED;
	else if (f->is_partial_policy && !f->is_multi_policy_bounces)
		v = SL_DSN_NO_POLICY;
	else if (f->sender != NULL && f->sender[0] != '\0')
		v = SL_DSN_TO_SENDER;
	else if (f->failures_notify != NULL && f->failures_notify[0] != '\0')
		v = SL_DSN_TO_NOTIFY;
	else
		v = SL_DSN_NO_NULL_SENDER;
	if (v == SL_DSN_TO_SENDER)
		*to = f->sender;
	else if (v == SL_DSN_TO_NOTIFY)
		*to = f->failures_notify;
	return v;
}

const char *
sl_dsn_verdict_name(enum sl_dsn_verdict v)
{
	switch (v) {
	case SL_DSN_TO_SENDER:
		return "to sender";
	case SL_DSN_TO_NOTIFY:
		return "to MDN_Failures_Notify";
	case SL_DSN_NO_DISABLED:
		return "generate_bounces is off";
	case SL_DSN_NO_NULL_SENDER:
		return "null sender";
	case SL_DSN_NO_REPORT:
		return "message is a report";
	case SL_DSN_NO_POLICY:
		return "partial policy rejection";
	}
	return "?";
}

/* ---------------------------------------------------------------- reading the original */

/* A cursor over iovecs that may split the message anywhere. */
struct dsn_reader {
	const struct iovec *iov;
	size_t cnt;
	size_t i;   /* current iovec */
	size_t off; /* offset in it */
};

static int
dsn_peek(struct dsn_reader *r)
{
	while (r->i < r->cnt && r->off >= r->iov[r->i].iov_len) {
		r->i++;
		r->off = 0;
	}
	return r->i < r->cnt ? ((const unsigned char *)r->iov[r->i].iov_base)[r->off] : -1;
}

static int
dsn_getc(struct dsn_reader *r)
{
	int c = dsn_peek(r);

	if (c >= 0)
		r->off++;
	return c;
}

/* One line of the original: its first SL_DSN_MAX_LINE octets and what it held. */
struct dsn_line {
	char s[SL_DSN_MAX_LINE];
	size_t kept;  /* octets in s */
	size_t total; /* octets in the line, line end excluded */
	bool has_nul;
	bool has_8bit;
};

/*
 * Read one line; CRLF, a bare LF or a bare CR ends it (the bare ones are
 * how Lone_LF "ignore" content looks).  False at the end of input.
 */
static bool
dsn_read_line(struct dsn_reader *r, struct dsn_line *l)
{
	int c;

	l->kept = l->total = 0;
	l->has_nul = l->has_8bit = false;
	if (dsn_peek(r) < 0)
		return false;
	while ((c = dsn_getc(r)) >= 0) {
		if (c == '\n')
			break;
		if (c == '\r') {
			if (dsn_peek(r) == '\n')
				dsn_getc(r);
			break;
		}
		if (c == 0)
			l->has_nul = true;
		if (c >= 0x80)
			l->has_8bit = true;
		if (l->kept < sizeof(l->s))
			l->s[l->kept++] = (char)c;
		l->total++;
	}
	return true;
}

/* Length of s[0..len) cut back so that no UTF-8 sequence is split at len. */
static size_t
dsn_utf8_cut(const char *s, size_t len, size_t full)
{
	if (len >= full)
		return full;
	while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
		len--;
	return len;
}

/* What sl_dsn_build returns of the original. */
struct dsn_orig {
	struct sl_buf data; /* owned: the normalised copy */
	enum sl_dsn_inline included;
	bool is_8bit;
	bool is_reduced_size;  /* ALL became HEADERS: over max_inline_len */
	bool is_reduced_shape; /* ALL became HEADERS: NUL or a line over 998 octets */
	bool is_headers_cut;   /* the header section was shortened */
};

static void
dsn_copy_original(const struct sl_dsn_msg *m, struct dsn_orig *o)
{
	struct dsn_reader r = { m->orig, m->orig_cnt, 0, 0 };
	struct dsn_line line, *l = &line;
	uint64_t hdr_limit = SL_DSN_MAX_HEADERS;
	bool has_blank = false, is_hdr_8bit = false, is_body_8bit = false;
	size_t hdr_end;

	o->included = m->inline_original;
	if (m->max_inline_len != 0 && m->max_inline_len < hdr_limit)
		hdr_limit = m->max_inline_len;
	while (dsn_read_line(&r, l)) {
		if (l->total == 0) {
			has_blank = true;
			break;
		}
		if (l->has_nul) {
			for (size_t i = 0; i < l->kept; i++)
				if (l->s[i] == '\0')
					l->s[i] = '?';
		}
		if (l->total > l->kept)
			l->kept = dsn_utf8_cut(l->s, l->kept, l->total);
		if (l->has_nul || l->total > l->kept)
			o->is_reduced_shape = true;
		if (o->data.len + l->kept + 2 > hdr_limit) {
			o->is_headers_cut = true;
			break;
		}
		sl_buf_append(&o->data, l->s, l->kept);
		sl_buf_append(&o->data, "\r\n", 2);
		is_hdr_8bit |= l->has_8bit;
	}
	hdr_end = o->data.len;
	if (o->included == SL_DSN_INLINE_ALL) {
		if (o->is_headers_cut)
			o->is_reduced_size = true;
		if (has_blank && !o->is_reduced_shape && !o->is_reduced_size) {
			sl_buf_append(&o->data, "\r\n", 2);
			while (dsn_read_line(&r, l)) {
				if (l->has_nul || l->total > SL_DSN_MAX_LINE) {
					o->is_reduced_shape = true;
					break;
				}
				if (m->max_inline_len != 0 &&
				    o->data.len + l->total + 2 > m->max_inline_len) {
					o->is_reduced_size = true;
					break;
				}
				sl_buf_append(&o->data, l->s, l->kept);
				sl_buf_append(&o->data, "\r\n", 2);
				is_body_8bit |= l->has_8bit;
			}
		}
		if (o->is_reduced_shape || o->is_reduced_size) {
			o->data.len = hdr_end;
			o->included = SL_DSN_INLINE_HEADERS;
			is_body_8bit = false;
		} else {
			o->is_reduced_shape = false;
		}
	} else {
		o->is_reduced_shape = false;
	}
	if (o->data.len == 0)
		o->included = SL_DSN_INLINE_NONE;
	o->is_8bit = is_hdr_8bit || is_body_8bit;
}

bool
sl_dsn_is_report(const struct iovec *orig, size_t orig_cnt)
{
	static const char *const types[] = { "delivery-status", "global-delivery-status",
					     "disposition-notification",
					     "global-disposition-notification" };
	struct dsn_reader r = { orig, orig_cnt, 0, 0 };
	struct dsn_line line, *l = &line;
	struct sl_buf ct = SL_BUF_INIT;
	bool is_ct = false, has_ct = false, is_report = false;
	size_t seen = 0;
	const char *p, *end;

	/* The unfolded value of the first Content-Type field. */
	while (seen < SL_DSN_MAX_HEADERS && dsn_read_line(&r, l) && l->total > 0) {
		seen += l->total + 2;
		if (l->s[0] == ' ' || l->s[0] == '\t') {
			if (is_ct && ct.len < 4096)
				sl_buf_append(&ct, l->s, l->kept);
			continue;
		}
		if (is_ct)
			has_ct = true;
		is_ct = !has_ct && l->kept >= 13 && strncasecmp(l->s, "content-type:", 13) == 0;
		if (is_ct)
			sl_buf_append(&ct, l->s + 13, l->kept - 13);
	}
	sl_buf_append(&ct, "", 1);
	p = ct.data;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "multipart/report", 16) != 0 ||
	    (p[16] != ';' && p[16] != ' ' && p[16] != '\t' && p[16] != '\0'))
		goto done;
	for (p += 16; (p = strcasestr(p, "report-type")) != NULL; p += 11) {
		if (p[-1] != ';' && p[-1] != ' ' && p[-1] != '\t')
			continue;
		p += 11;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p++ != '=')
			break;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '"')
			p++;
		end = p + strcspn(p, "\"; \t");
		for (size_t i = 0; i < SL_ARRAY_LEN(types); i++)
			if ((size_t)(end - p) == strlen(types[i]) &&
			    strncasecmp(p, types[i], (size_t)(end - p)) == 0)
				is_report = true;
		break;
	}
done:
	sl_buf_free(&ct);
	return is_report;
}

/* ---------------------------------------------------------------- status codes */

/* Parse "c.s.d" (the whole string); false when it is not RFC 3463 syntax. */
static bool
dsn_parse_status(const char *s, int *cls, int *subject, int *detail)
{
	int *v[3] = { cls, subject, detail };

	for (int f = 0; f < 3; f++) {
		int n = 0, digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 4) {
			n = n * 10 + (*s++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || (f == 0 && digits != 1))
			return false;
		*v[f] = n;
		if (f < 2 && *s++ != '.')
			return false;
	}
	return *s == '\0' && (*cls == 2 || *cls == 4 || *cls == 5);
}

char *
sl_dsn_status_from_reply(unsigned code, const char *enhanced, enum sl_dsn_action action, char *out)
{
	int c, s, d;

	if (enhanced != NULL && strlen(enhanced) <= 11 && dsn_parse_status(enhanced, &c, &s, &d)) {
		snprintf(out, 12, "%d.%d.%d", c, s, d);
		return out;
	}
	if (code >= 400 && code < 500)
		strcpy(out, "4.0.0");
	else if (code >= 500 && code < 600)
		strcpy(out, "5.0.0");
	else
		strcpy(out, action == SL_DSN_ACTION_DELAYED ? "4.0.0" : "5.0.0");
	return out;
}

/* RFC 3463 §3 subjects and details, said plainly. */
static const struct {
	int subject;
	int detail; /* -1: the subject's general meaning */
	const char *text;
} dsn_status_words[] = {
	{ 0, -1, "an unspecified problem" },
	{ 1, -1, "a problem with an address" },
	{ 1, 1, "the mailbox does not exist" },
	{ 1, 2, "the recipient's domain does not exist or takes no mail" },
	{ 1, 3, "the recipient address is not valid" },
	{ 1, 4, "the recipient address is ambiguous" },
	{ 1, 6, "the mailbox has moved" },
	{ 1, 7, "the sender address is not valid" },
	{ 1, 8, "the sender's domain is not valid" },
	{ 1, 10, "the recipient's domain accepts no mail (null MX)" },
	{ 2, -1, "a problem with the mailbox" },
	{ 2, 1, "the mailbox is disabled" },
	{ 2, 2, "the mailbox is full" },
	{ 2, 3, "the message is larger than the mailbox accepts" },
	{ 2, 4, "a mailing list could not be expanded" },
	{ 3, -1, "a problem with the receiving mail system" },
	{ 3, 1, "the receiving mail system is full" },
	{ 3, 2, "the receiving system does not accept mail now" },
	{ 3, 3, "the receiving system lacks a feature the message needs" },
	{ 3, 4, "the message is too large" },
	{ 3, 5, "the receiving system is misconfigured" },
	{ 4, -1, "a network or routing problem" },
	{ 4, 1, "the receiving server did not answer" },
	{ 4, 2, "the connection was lost" },
	{ 4, 3, "a routing or DNS server failed" },
	{ 4, 4, "no way to reach the recipient's domain was found" },
	{ 4, 5, "the network is congested" },
	{ 4, 6, "the message went around in a loop" },
	{ 4, 7, "the message could not be delivered in the time allowed" },
	{ 5, -1, "a problem in the mail protocol" },
	{ 5, 3, "the message has too many recipients" },
	{ 6, -1, "a problem with the message's content or format" },
	{ 6, 7, "the address has non-ASCII characters the receiver does not accept" },
	{ 7, -1, "a security or policy problem" },
	{ 7, 1, "the receiving system refused the message by its policy" },
	{ 7, 2, "the mailing list refused the message" },
	{ 7, 7, "a message integrity check failed" },
};

const char *
sl_dsn_status_text(const char *status)
{
	const char *general = "an unspecified problem";
	int c, s, d;

	if (status == NULL || strlen(status) > 11 || !dsn_parse_status(status, &c, &s, &d))
		return general;
	for (size_t i = 0; i < SL_ARRAY_LEN(dsn_status_words); i++) {
		if (dsn_status_words[i].subject != s)
			continue;
		if (dsn_status_words[i].detail == d)
			return dsn_status_words[i].text;
		if (dsn_status_words[i].detail == -1)
			general = dsn_status_words[i].text;
	}
	return general;
}

/* ---------------------------------------------------------------- texts */

static bool
dsn_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 §4), 0 if there is none. */
static size_t
dsn_utf8_len(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	size_t n;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

static bool
dsn_is_utf8(const char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0, n; i < len; i += n)
		if ((n = dsn_utf8_len((const unsigned char *)s + i, len - i)) == 0)
			return false;
	return true;
}

/*
 * Append a remote or local text made safe for a header field or a text
 * line: control characters become spaces, runs of spaces one space, no
 * space at either end; non-ASCII octets '?' (ASCII form) or invalid UTF-8
 * '?' (global form).  Cut at `max` octets with " [...]".
 */
static void
dsn_clean(struct sl_buf *b, const char *s, size_t max, bool is_utf8)
{
	size_t len = strlen(s), start = b->len;
	bool is_space = true; /* drops leading spaces */

	for (size_t i = 0, n; i < len; i += n) {
		unsigned char c = (unsigned char)s[i];

		n = 1;
		if (b->len - start >= max) {
			while (b->len > start && b->data[b->len - 1] == ' ')
				b->len--;
			sl_buf_puts(b, " [...]");
			return;
		}
		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (!is_space)
				sl_buf_append(b, " ", 1);
			is_space = true;
			continue;
		}
		is_space = false;
		if (c < 0x80) {
			sl_buf_append(b, &s[i], 1);
		} else if (is_utf8 &&
			   (n = dsn_utf8_len((const unsigned char *)s + i, len - i)) > 0) {
			sl_buf_append(b, &s[i], n);
		} else {
			n = 1;
			sl_buf_append(b, "?", 1);
		}
	}
	while (b->len > start && b->data[b->len - 1] == ' ')
		b->len--;
}

/* Cut point <= want in s[0..len) that does not split a UTF-8 sequence (at least 1). */
static size_t
dsn_cut(const char *s, size_t len, size_t want)
{
	size_t n = dsn_utf8_cut(s, want, len);

	return n > 0 ? n : (want < len ? want : len);
}

/*
 * Append "Name: value" CRLF, folded (RFC 5322 §2.2.3): before a space so a
 * line stays within DSN_FOLD_COLS when it can, within SL_DSN_MAX_LINE
 * always; a run with no space that cannot fit is broken with CRLF SP.
 * `v` has no control characters, no double spaces, no space at its ends.
 */
static void
dsn_field(struct sl_buf *b, const char *name, const char *v, size_t len)
{
	size_t col = strlen(name) + 2, pos = 0;

	sl_buf_puts(b, name);
	sl_buf_append(b, ": ", 2);
	while (len - pos + col > DSN_FOLD_COLS) {
		size_t soft = DSN_FOLD_COLS > col ? DSN_FOLD_COLS - col : 0;
		size_t hard = SL_DSN_MAX_LINE - col, brk = 0;

		/* The last space within the soft limit, else the first within the hard one. */
		for (size_t i = pos + 1; i <= pos + soft && i < len; i++)
			if (v[i] == ' ')
				brk = i;
		for (size_t i = pos + 1; brk == 0 && i <= pos + hard && i < len; i++)
			if (v[i] == ' ')
				brk = i;
		if (brk == 0 && len - pos <= hard)
			break; /* the rest fits on this line */
		if (brk == 0) {
			brk = pos + dsn_cut(v + pos, len - pos, hard);
			sl_buf_append(b, v + pos, brk - pos);
			sl_buf_append(b, "\r\n ", 3);
			col = 1;
		} else {
			sl_buf_append(b, v + pos, brk - pos);
			sl_buf_append(b, "\r\n", 2);
			col = 0; /* the space at brk starts the next line */
		}
		pos = brk;
	}
	sl_buf_append(b, v + pos, len - pos);
	sl_buf_append(b, "\r\n", 2);
}

/*
 * Append `v` (cleaned as for dsn_field) as text lines: the first starts with
 * `first`, the others with `indent`; words wrap at DSN_TEXT_COLS; a word too
 * long for a line of SL_DSN_MAX_LINE octets is broken.
 */
static void
dsn_wrap(struct sl_buf *b, const char *first, const char *indent, const char *v, size_t len)
{
	size_t pos = 0;
	const char *lead = first;

	do {
		size_t col = strlen(lead), room = DSN_TEXT_COLS > col ? DSN_TEXT_COLS - col : 1;
		size_t hard = SL_DSN_MAX_LINE - col, end;

		while (pos < len && v[pos] == ' ')
			pos++;
		end = len;
		if (len - pos > room) {
			size_t brk = 0;

			for (size_t i = pos + 1; i <= pos + room && i < len; i++)
				if (v[i] == ' ')
					brk = i;
			for (size_t i = pos + room + 1; brk == 0 && i <= pos + hard && i < len; i++)
				if (v[i] == ' ')
					brk = i;
			if (brk == 0 && len - pos > hard)
				brk = pos + dsn_cut(v + pos, len - pos, hard);
			if (brk != 0)
				end = brk;
		}
		sl_buf_puts(b, lead);
		sl_buf_append(b, v + pos, end - pos);
		sl_buf_append(b, "\r\n", 2);
		pos = end;
		lead = indent;
	} while (pos < len);
}

/* RFC 5322 §3.3 date-time in UTC, independent of the locale. */
static void
dsn_date(struct sl_buf *b, time_t t)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	sl_buf_printf(b, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
		      months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
dsn_date_field(struct sl_buf *b, const char *name, time_t t)
{
	sl_buf_printf(b, "%s: ", name);
	dsn_date(b, t);
	sl_buf_append(b, "\r\n", 2);
}

/* ---------------------------------------------------------------- checking input */

static bool
dsn_valid_host(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > SL_DSN_MAX_HOST)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    !strchr(".-_[]:", c))
			return false;
	}
	return true;
}

static bool
dsn_valid_addr(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > SL_DSN_MAX_ADDR)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '<' || s[i] == '>')
			return false;
	return dsn_is_utf8(s);
}

/* dot-atom-text (RFC 5322 §3.2.3) characters, for the Message-ID; or any printable. */
static bool
dsn_valid_id(const char *s, bool is_atext)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > SL_DSN_MAX_ID)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f)
			return false;
		if (is_atext && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && !strchr("!#$%&'*+-/=?^_`{|}~.", c))
			return false;
	}
	return true;
}

static int
dsn_check(const struct sl_dsn_msg *m)
{
	if (m->rcpt_cnt == 0 || m->rcpt_cnt > SL_DSN_MAX_RCPTS || m->rcpts == NULL)
		return -EINVAL;
	if (!dsn_valid_host(m->reporting_mta) || (m->msgid_host && !dsn_valid_host(m->msgid_host)))
		return -EINVAL;
	if (!dsn_valid_addr(m->to) || (m->mailer_daemon && !dsn_valid_addr(m->mailer_daemon)))
		return -EINVAL;
	if (!dsn_valid_id(m->unique_id, true) || !dsn_valid_id(m->qid, false))
		return -EINVAL;
	if (m->orig_cnt > 0 && m->orig == NULL)
		return -EINVAL;
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		const struct sl_dsn_rcpt *rc = &m->rcpts[i];
		int c, s, d;

		if (!dsn_valid_addr(rc->addr) || (rc->orcpt && !dsn_valid_addr(rc->orcpt)))
			return -EINVAL;
		if (rc->status == NULL || strlen(rc->status) > 11 ||
		    !dsn_parse_status(rc->status, &c, &s, &d) || c == 2)
			return -EINVAL;
		if (rc->action != SL_DSN_ACTION_FAILED && rc->action != SL_DSN_ACTION_DELAYED)
			return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- the parts */

/* Everything the parts are built from, once. */
struct dsn_ctx {
	const struct sl_dsn_msg *m;
	bool is_global;
	struct dsn_orig orig;
	struct sl_buf text;   /* owned: part 1 content */
	struct sl_buf status; /* owned: part 2 content */
	struct sl_buf tmp;    /* owned: scratch */
};

/* Remote-MTA value: an IP address becomes an address literal (RFC 5321 §4.1.3). */
static void
dsn_remote_mta(struct dsn_ctx *c, const char *mta)
{
	unsigned char a[16];
	size_t start = c->tmp.len;

	if (inet_pton(AF_INET, mta, a) == 1)
		sl_buf_printf(&c->tmp, "[%s]", mta);
	else if (inet_pton(AF_INET6, mta, a) == 1)
		sl_buf_printf(&c->tmp, "[IPv6:%s]", mta);
	else
		dsn_clean(&c->tmp, mta, SL_DSN_MAX_HOST, false);
	for (size_t i = start; i < c->tmp.len; i++)
		if (c->tmp.data[i] == ' ')
			c->tmp.data[i] = '?';
}

static void
dsn_addr_field(struct dsn_ctx *c, const char *name, const char *addr)
{
	sl_buf_reset(&c->tmp);
	sl_buf_puts(&c->tmp, dsn_is_ascii(addr) ? "rfc822; " : "utf-8; ");
	sl_buf_puts(&c->tmp, addr);
	dsn_field(&c->status, name, c->tmp.data, c->tmp.len);
}

static void
dsn_status_part(struct dsn_ctx *c)
{
	const struct sl_dsn_msg *m = c->m;
	struct sl_buf *b = &c->status;

	sl_buf_printf(b, "Reporting-MTA: dns; %s\r\n", m->reporting_mta);
	sl_buf_printf(b, "X-Sluice-Queue-ID: %s\r\n", m->qid);
	if (m->arrival != 0)
		dsn_date_field(b, "Arrival-Date", m->arrival);
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		const struct sl_dsn_rcpt *rc = &m->rcpts[i];

		sl_buf_append(b, "\r\n", 2);
		if (rc->orcpt != NULL)
			dsn_addr_field(c, "Original-Recipient", rc->orcpt);
		dsn_addr_field(c, "Final-Recipient", rc->addr);
		sl_buf_printf(b, "Action: %s\r\n",
			      rc->action == SL_DSN_ACTION_FAILED ? "failed" : "delayed");
		sl_buf_printf(b, "Status: %s\r\n", rc->status);
		if (rc->remote_mta != NULL && rc->remote_mta[0] != '\0') {
			sl_buf_reset(&c->tmp);
			sl_buf_puts(&c->tmp, "dns; ");
			dsn_remote_mta(c, rc->remote_mta);
			dsn_field(b, "Remote-MTA", c->tmp.data, c->tmp.len);
		}
		if (rc->diagnostic != NULL && rc->diagnostic[0] != '\0') {
			sl_buf_reset(&c->tmp);
			sl_buf_puts(&c->tmp, rc->is_smtp_diagnostic ? "smtp; " : "X-Sluice; ");
			dsn_clean(&c->tmp, rc->diagnostic, SL_DSN_MAX_DIAG, c->is_global);
			dsn_field(b, "Diagnostic-Code", c->tmp.data, c->tmp.len);
		}
		if (rc->last_attempt != 0)
			dsn_date_field(b, "Last-Attempt-Date", rc->last_attempt);
		if (rc->action == SL_DSN_ACTION_DELAYED && rc->will_retry_until != 0)
			dsn_date_field(b, "Will-Retry-Until", rc->will_retry_until);
	}
}

static void
dsn_text_part(struct dsn_ctx *c)
{
	const struct sl_dsn_msg *m = c->m;
	struct sl_buf *b = &c->text;
	size_t n_failed = 0, n_delayed = 0;

	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		if (m->rcpts[i].action == SL_DSN_ACTION_FAILED)
			n_failed++;
		else
			n_delayed++;
	}
	sl_buf_printf(b, "This is the mail system at %s.\r\n\r\n", m->reporting_mta);
	if (n_failed > 0)
		sl_buf_printf(b,
			      "Your message could not be delivered to %s listed below.\r\n"
			      "The mail system has given up on %s and will not try again.\r\n",
			      n_failed == 1 ? "the recipient" : "the recipients",
			      n_failed == 1 ? "it" : "them");
	if (n_delayed > 0)
		sl_buf_printf(b,
			      "%sYour message has not yet reached %s listed below as delayed.\r\n"
			      "The mail system is still trying; you need not send it again.\r\n",
			      n_failed > 0 ? "\r\n" : "",
			      n_delayed == 1 ? "the recipient" : "the recipients");
	sl_buf_printf(b, "\r\nIts queue id here is %s.\r\n", m->qid);
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		const struct sl_dsn_rcpt *rc = &m->rcpts[i];

		sl_buf_append(b, "\r\n", 2);
		sl_buf_reset(&c->tmp);
		sl_buf_printf(&c->tmp, "<%s>: ", rc->addr);
		if (rc->action == SL_DSN_ACTION_FAILED) {
			sl_buf_puts(&c->tmp, "delivery failed.");
		} else {
			sl_buf_puts(&c->tmp, "delivery is delayed.");
			if (rc->will_retry_until != 0) {
				sl_buf_puts(&c->tmp, " The mail system will keep trying until ");
				dsn_date(&c->tmp, rc->will_retry_until);
				sl_buf_puts(&c->tmp, ".");
			}
		}
		dsn_wrap(b, "", "    ", c->tmp.data, c->tmp.len);
		sl_buf_reset(&c->tmp);
		sl_buf_printf(&c->tmp, "Reason: %s (%s).", sl_dsn_status_text(rc->status),
			      rc->status);
		dsn_wrap(b, "    ", "    ", c->tmp.data, c->tmp.len);
		if (rc->diagnostic != NULL && rc->diagnostic[0] != '\0') {
			sl_buf_reset(&c->tmp);
			if (!rc->is_smtp_diagnostic) {
				sl_buf_puts(&c->tmp, "Details: ");
			} else if (rc->remote_mta != NULL && rc->remote_mta[0] != '\0') {
				sl_buf_puts(&c->tmp, "The server ");
				dsn_remote_mta(c, rc->remote_mta);
				sl_buf_puts(&c->tmp, " answered: ");
			} else {
				sl_buf_puts(&c->tmp, "The receiving server answered: ");
			}
			dsn_clean(&c->tmp, rc->diagnostic, SL_DSN_MAX_DIAG, c->is_global);
			dsn_wrap(b, "    ", "    ", c->tmp.data, c->tmp.len);
		}
	}
	sl_buf_append(b, "\r\n", 2);
	switch (c->orig.included) {
	case SL_DSN_INLINE_ALL:
		sl_buf_puts(b, "Your message is attached below.\r\n");
		break;
	case SL_DSN_INLINE_HEADERS:
		if (c->orig.is_reduced_size)
			sl_buf_puts(b,
				    "Only the header section of your message is attached below:\r\n"
				    "the whole message is larger than returned mail may be.\r\n");
		else if (c->orig.is_reduced_shape)
			sl_buf_puts(b,
				    "Only the header section of your message is attached below:\r\n"
				    "it has lines too long or bytes that cannot be returned "
				    "unchanged.\r\n");
		else
			sl_buf_puts(b, "The header section of your message is attached below.\r\n");
		if (c->orig.is_headers_cut)
			sl_buf_puts(b, "It has been shortened.\r\n");
		break;
	case SL_DSN_INLINE_NONE:
		sl_buf_puts(b, "Your message is not attached.\r\n");
		break;
	}
}

/* ---------------------------------------------------------------- boundary */

static uint64_t
dsn_hash(const char *a, const char *b)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (; *a != '\0'; a++)
		h = (h ^ (unsigned char)*a) * 0x100000001b3ull;
	h = (h ^ 0xff) * 0x100000001b3ull;
	for (; *b != '\0'; b++)
		h = (h ^ (unsigned char)*b) * 0x100000001b3ull;
	return h;
}

static int
dsn_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Note every n for which "<prefix>n=" occurs in `b`: the boundary
 * "<prefix>n=" then occurs in no part exactly when n was not noted.
 */
static void
dsn_note_used(const struct sl_buf *b, const char *prefix, uint64_t **used, size_t *cnt)
{
	size_t plen = strlen(prefix), pos = 0;
	const char *hit;

	while (pos < b->len && (hit = memmem(b->data + pos, b->len - pos, prefix, plen)) != NULL) {
		const char *p = hit + plen, *end = b->data + b->len;
		uint64_t n = 0;
		int digits = 0;

		while (p < end && *p >= '0' && *p <= '9' && digits < 19) {
			n = n * 10 + (uint64_t)(*p++ - '0');
			digits++;
		}
		if (digits > 0 && p < end && *p == '=') {
			*used = sl_reallocarray(*used, *cnt + 1, sizeof(**used));
			(*used)[(*cnt)++] = n;
		}
		pos = (size_t)(hit - b->data) + 1;
	}
}

static void
dsn_boundary(struct dsn_ctx *c, char *out, size_t out_len)
{
	char prefix[40];
	uint64_t *used = NULL, n = 0;
	size_t cnt = 0;

	snprintf(prefix, sizeof(prefix), "=_sluice_%016llx_",
		 (unsigned long long)dsn_hash(c->m->unique_id, c->m->qid));
	dsn_note_used(&c->text, prefix, &used, &cnt);
	dsn_note_used(&c->status, prefix, &used, &cnt);
	dsn_note_used(&c->orig.data, prefix, &used, &cnt);
	if (cnt > 0)
		qsort(used, cnt, sizeof(*used), dsn_cmp_u64);
	for (size_t i = 0; i < cnt && used[i] <= n; i++)
		if (used[i] == n)
			n++;
	snprintf(out, out_len, "%s%llu=", prefix, (unsigned long long)n);
	sl_free(used);
}

/* ---------------------------------------------------------------- assembly */

static bool
dsn_has_8bit(const struct sl_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			return true;
	return false;
}

int
sl_dsn_build(const struct sl_dsn_msg *m, struct sl_buf *out, struct sl_dsn_result *res)
{
	struct dsn_ctx c = { .m = m };
	char boundary[72];
	bool is_text_8bit, is_status_8bit, is_8bit, has_failed = false;
	const char *md = m->mailer_daemon;
	const char *orig_type;
	int rc;

	SL_ASSERT(m != NULL && out != NULL);
	if ((rc = dsn_check(m)) < 0)
		return rc;
	c.is_global = m->is_smtputf8;
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		if (!dsn_is_ascii(m->rcpts[i].addr) ||
		    (m->rcpts[i].orcpt && !dsn_is_ascii(m->rcpts[i].orcpt)))
			c.is_global = true;
		has_failed |= m->rcpts[i].action == SL_DSN_ACTION_FAILED;
	}
	if (m->inline_original != SL_DSN_INLINE_NONE && m->orig_cnt > 0)
		dsn_copy_original(m, &c.orig);
	else
		c.orig.included = SL_DSN_INLINE_NONE;
	dsn_status_part(&c);
	dsn_text_part(&c);
	dsn_boundary(&c, boundary, sizeof(boundary));
	is_text_8bit = dsn_has_8bit(&c.text);
	is_status_8bit = dsn_has_8bit(&c.status);
	is_8bit = is_text_8bit || is_status_8bit ||
		  (c.orig.included != SL_DSN_INLINE_NONE && c.orig.is_8bit);

	/* RFC 5322 header section */
	if (md != NULL)
		sl_buf_printf(out, "From: Mail Delivery System <%s>\r\n", md);
	else
		sl_buf_printf(out, "From: Mail Delivery System <mailer-daemon@%s>\r\n",
			      m->reporting_mta);
	sl_buf_printf(out, "To: <%s>\r\n", m->to);
	sl_buf_printf(out, "Subject: %s\r\n",
		      has_failed ? "Mail delivery failed" : "Mail delivery delayed");
	dsn_date_field(out, "Date", m->now);
	sl_buf_printf(out, "Message-ID: <%s@%s>\r\n", m->unique_id,
		      m->msgid_host ? m->msgid_host : m->reporting_mta);
	sl_buf_puts(out, "Auto-Submitted: auto-replied\r\n");
	sl_buf_puts(out, "MIME-Version: 1.0\r\n");
	sl_buf_printf(out,
		      "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n",
		      c.is_global ? "global-delivery-status" : "delivery-status", boundary);
	if (is_8bit)
		sl_buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	sl_buf_puts(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* 1: the explanation (RFC 6522 §3: first part, human-readable) */
	sl_buf_printf(out, "--%s\r\nContent-Description: Notification\r\n", boundary);
	sl_buf_printf(out, "Content-Type: text/plain; charset=%s\r\n",
		      is_text_8bit ? "utf-8" : "us-ascii");
	if (is_text_8bit)
		sl_buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	sl_buf_append(out, "\r\n", 2);
	sl_buf_append(out, c.text.data, c.text.len);

	/* 2: the report (RFC 3464 §2; the global form RFC 6533) */
	sl_buf_printf(out, "\r\n--%s\r\nContent-Description: Delivery report\r\n", boundary);
	sl_buf_printf(out, "Content-Type: message/%s\r\n",
		      c.is_global ? "global-delivery-status" : "delivery-status");
	if (is_status_8bit)
		sl_buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	sl_buf_append(out, "\r\n", 2);
	sl_buf_append(out, c.status.data, c.status.len);

	/* 3: the original (RFC 6522 §4, RFC 2046 §5.2.1; the global forms RFC 6533) */
	if (c.orig.included != SL_DSN_INLINE_NONE) {
		if (c.orig.included == SL_DSN_INLINE_ALL)
			orig_type = c.is_global ? "message/global" : "message/rfc822";
		else
			orig_type = c.is_global ? "message/global-headers" : "text/rfc822-headers";
		sl_buf_printf(out, "\r\n--%s\r\nContent-Description: Undelivered message%s\r\n",
			      boundary, c.orig.included == SL_DSN_INLINE_ALL ? "" : " headers");
		sl_buf_printf(out, "Content-Type: %s\r\n", orig_type);
		if (c.orig.is_8bit)
			sl_buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
		sl_buf_append(out, "\r\n", 2);
		sl_buf_append(out, c.orig.data.data, c.orig.data.len);
	}
	sl_buf_printf(out, "\r\n--%s--\r\n", boundary);

	if (res != NULL) {
		res->is_8bitmime = is_8bit;
		res->is_smtputf8 = !dsn_is_ascii(m->to) || (md != NULL && !dsn_is_ascii(md));
		res->is_global = c.is_global;
		res->included = c.orig.included;
	}
	sl_buf_free(&c.orig.data);
	sl_buf_free(&c.text);
	sl_buf_free(&c.status);
	sl_buf_free(&c.tmp);
	return 0;
}
