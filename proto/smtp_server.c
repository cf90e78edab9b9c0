/*
 * proto/smtp_server.c - the ESMTP server as a pure state machine (see smtp_server.h).
 *
 * Command lines are parsed in place in the caller's input: a partial line
 * stays there until its LF arrives, and a line over 512 octets is discarded
 * as it streams by.  Message content (DATA and BDAT) is scanned in place
 * and handed out as BODY events pointing into the caller's input; only a
 * constant "\r\n" (or "\r") is ever emitted from elsewhere.  The content
 * scanner keeps at most a '.' and a CR "held" (consumed but undecided) as
 * state bits, so the caller never buffers content for us.
 *
 * Choices the RFCs leave open are collected in the header's comment
 * "Replies the machine picks"; each rule below cites its source.
 *
 * Threads: the thread that owns the session; no globals, no I/O, no clock.
 * Untrusted input: all of `in`.  Every loop is bounded by the input length;
 * every copy into the session is bounded by SL_SMTP_MAX_CMD_LINE.
 * Ownership: the session owns itself (fixed-size buffers inside); events
 * borrow from the session or from the caller's input.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "proto/smtp_server.h"

#define SMTP_SERVER_MAGIC 0x53e7e5a1u

#define SMTP_MAX_ERRORS_DEFAULT 20
#define SMTP_MAX_HELO           255
#define SMTP_REPLY_MAX          (SL_SMTP_MAX_CMD_LINE - 2)  /* RFC 5321 §4.5.3.1.5, without CRLF */
#define SMTP_MAX_TEXT           (SL_SMTP_MAX_TEXT_LINE - 2) /* text line without its CRLF */
#define SMTP_MAX_PENDING        3
#define SMTP_HDR_NAME_MAX       10 /* strlen("message-id") */

/* The verbs, in one list: the enum and the names come from it. */
/* clang-format off */
#define SMTP_VERBS(X) \
	X(HELO) X(EHLO) X(MAIL) X(RCPT) X(DATA) X(BDAT) X(RSET) X(NOOP) \
	X(HELP) X(VRFY) X(EXPN) X(QUIT) X(XCLIENT) X(XREMOTEIP) X(XDUMPCONTEXT) X(STARTTLS)

enum smtp_verb {
	SMTP_VERB_NONE,
#define SMTP_VERB_ENUM(v) SMTP_VERB_##v,
	SMTP_VERBS(SMTP_VERB_ENUM)
#undef SMTP_VERB_ENUM
};

static const char *const smtp_verb_names[] = {
	NULL,
#define SMTP_VERB_NAME(v) #v,
	SMTP_VERBS(SMTP_VERB_NAME)
#undef SMTP_VERB_NAME
};
/* clang-format on */

enum smtp_state {
	SMTP_ST_CMD,       /* reading command lines */
	SMTP_ST_LONG_LINE, /* discarding a command line over 512 octets up to its LF */
	SMTP_ST_DATA,      /* DATA content, up to <CRLF>.<CRLF> */
	SMTP_ST_BDAT,      /* the octets of an accepted BDAT chunk */
	SMTP_ST_SKIP,      /* the octets of a refused BDAT chunk, discarded */
};

/* Where the Date:/Message-ID: detector is on the current header line. */
enum smtp_hdr {
	SMTP_HDR_DONE, /* not a header line start, or already decided */
	SMTP_HDR_NAME, /* reading the field name */
	SMTP_HDR_WSP,  /* white space between name and colon (RFC 5322 §4.5.3 obs-optional) */
};

/* The mail transaction (RFC 5321 §3.3): MAIL accepted until end of data or a reset. */
struct smtp_txn {
	bool is_active;      /* MAIL was accepted */
	bool is_smtputf8;    /* MAIL carried SMTPUTF8 (RFC 6531 §3.4) */
	bool has_data;       /* a DATA command was refused: BDAT is out of sequence */
	bool has_bdat;       /* the first BDAT was answered: DATA/RCPT are out of sequence */
	bool is_bdat_failed; /* a BDAT was refused: later chunks are discarded (RFC 3030 §2) */
	unsigned rcpt_cnt;   /* RCPTs accepted */
	unsigned rcpt_tried; /* RCPT commands seen, accepted or not */
};

/* The message content being read (DATA or BDAT). */
struct smtp_content {
	uint64_t msg_len;    /* octets as stored (after unstuffing and fixing) */
	uint64_t chunk_left; /* BDAT: octets of the current chunk still to come */
	uint64_t chunk_len;  /* BDAT: size of the current chunk */
	size_t line_len;     /* stored octets of the current line, terminator excluded */
	unsigned defects;    /* enum sl_smtp_defect bits */
	bool is_bdat;
	bool is_last;       /* BDAT: the current chunk is the LAST one */
	bool is_wire_bol;   /* DATA: at the start of a line on the wire (after a real CRLF) */
	bool is_stored_bol; /* at the start of a line of the stored message */
	bool in_header;     /* before the first empty stored line */
	bool has_held_dot;  /* DATA: a '.' at a wire line start was consumed, undecided */
	bool has_held_cr;   /* a CR was consumed, undecided (CRLF or bare CR) */
	bool has_date;
	bool has_msgid;
	enum smtp_hdr hdr;
	unsigned hdr_len;
	char hdr_name[SMTP_HDR_NAME_MAX];
};

struct sl_smtp_server {
	unsigned magic;
	struct sl_smtp_server_conf conf; /* copied; strings borrowed */
	enum smtp_state state;
	enum sl_smtp_ev_kind verdict; /* the event waiting for an answer, or NONE */
	bool is_closing;
	bool is_fresh;   /* no sl_smtp_server_next() yet: a connect-time refusal may come */
	bool is_refused; /* refused at connect with a non-421 code (RFC 5321 §3.1) */
	bool has_helo;
	bool is_esmtp;
	bool is_tls;        /* STARTTLS was accepted */
	bool is_after_rset; /* the last command was RSET */
	unsigned error_cnt; /* 5xx replies the machine chose itself */
	unsigned msg_cnt;   /* messages accepted */
	unsigned rcpt_cnt;  /* recipients accepted in the session */
	struct smtp_txn txn;
	struct smtp_content c;
	uint64_t skip_left; /* SMTP_ST_SKIP: octets still to discard */
	/* What the pending verdict needs once answered. */
	bool pend_is_ehlo;
	bool pend_is_smtputf8;
	bool pend_is_bdat;
	bool pend_is_last;
	uint64_t pend_chunk;
	/* Events queued behind the one just returned. */
	struct sl_smtp_ev pending[SMTP_MAX_PENDING];
	unsigned pending_cnt;
	/* Storage the events point into. */
	char helo[SMTP_MAX_HELO + 1];
	char arg[SL_SMTP_MAX_CMD_LINE];
	char reply[SL_SMTP_MAX_CMD_LINE];       /* the last reply line written, without CRLF */
	char close_reply[SL_SMTP_MAX_CMD_LINE]; /* the closing 421, without CRLF */
	struct sl_smtp_xclient_attr xattr[SL_SMTP_MAX_XCLIENT_ATTRS];
	size_t xattr_cnt;
	char xbuf[SL_SMTP_MAX_CMD_LINE + SL_SMTP_MAX_XCLIENT_ATTRS];
};

static const char smtp_crlf[] = "\r\n";

/* ------------------------------------------------------------ characters */

static bool
smtp_is_digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
smtp_is_alnum(unsigned char ch)
{
	return smtp_is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* RFC 5321 §4.1.2 atext (RFC 5322 §3.2.3). */
static bool
smtp_is_atext(unsigned char ch)
{
	return smtp_is_alnum(ch) || (ch != 0 && strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL);
}

static int
smtp_hex(unsigned char ch)
{
	if (smtp_is_digit(ch))
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Well-formed UTF-8 (RFC 3629 §4): no overlongs, no surrogates, at most U+10FFFF. */
static bool
smtp_utf8_ok(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char b = p[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t n;

		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf) {
			n = 1;
		} else if (b >= 0xe0 && b <= 0xef) {
			n = 2;
			if (b == 0xe0)
				lo = 0xa0;
			else if (b == 0xed)
				hi = 0x9f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			n = 3;
			if (b == 0xf0)
				lo = 0x90;
			else if (b == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (len - i - 1 < n || p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return false;
		i += n + 1;
	}
	return true;
}

/* Parse 1*20DIGIT into a uint64_t; false on anything else or overflow. */
static bool
smtp_parse_u64(const char *p, size_t len, uint64_t *v)
{
	uint64_t n = 0;

	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (!smtp_is_digit((unsigned char)p[i]))
			return false;
		d = (unsigned)(p[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*v = n;
	return true;
}

/* A domain name (RFC 5321 §4.1.2 Domain; with U-labels when utf8, RFC 6531 §3.3). */
static bool
smtp_domain_ok(const char *d, size_t len, bool utf8)
{
	size_t label = 0;
	unsigned char prev = '.';

	if (len == 0 || len > SL_SMTP_MAX_DOMAIN)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)d[i];

		if (ch == '.') {
			if (label == 0 || prev == '-')
				return false;
			label = 0;
		} else if (smtp_is_alnum(ch) || (utf8 && ch >= 0x80)) {
			label++;
		} else if (ch == '-' && label > 0) {
			label++;
		} else {
			return false;
		}
		if (label > 63) /* RFC 1035 §2.3.4 */
			return false;
		prev = ch;
	}
	return label > 0 && prev != '-';
}

/* RFC 5321 §4.1.3 IPv4-address-literal: Snum 3("." Snum), Snum 0..255. */
static bool
smtp_ipv4_ok(const char *p, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0, digits = 0;

		if (part > 0) {
			if (i >= len || p[i] != '.')
				return false;
			i++;
		}
		while (i < len && smtp_is_digit((unsigned char)p[i]) && digits < 3) {
			v = v * 10 + (unsigned)(p[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || v > 255)
			return false;
	}
	return i == len;
}

/* RFC 5321 §4.1.3 IPv6-addr (inet_pton accepts exactly the RFC 4291 text forms). */
static bool
smtp_ipv6_ok(const char *p, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];
	unsigned char bin[16];

	if (len == 0 || len >= sizeof(tmp) || memchr(p, '\0', len) != NULL)
		return false;
	memcpy(tmp, p, len);
	tmp[len] = '\0';
	return inet_pton(AF_INET6, tmp, bin) == 1;
}

static bool
smtp_has_prefix(const char *p, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(p, prefix, n) == 0;
}

/* ------------------------------------------------------------ replies */

/*
 * Write one reply line "CODE<sep>[ESC ]text\r\n", truncated to 512 octets
 * (RFC 5321 §4.5.3.1.5) with control characters turned into spaces, so no
 * text (ours, the caller's, or an echo of the client's) can break the
 * reply syntax.  The line without CRLF is kept in `copy` when not NULL.
 */
static void
smtp_line(struct sl_smtp_server *s, struct sl_buf *out, unsigned code, char sep, const char *esc,
	  const char *text, char *copy)
{
	char line[SL_SMTP_MAX_CMD_LINE];
	size_t n;

	SL_ASSERT(code >= 200 && code <= 599);
	n = (size_t)snprintf(line, sizeof(line), "%03u", code);
	if (esc != NULL && s->conf.has_enhancedstatuscodes) {
		line[n++] = sep;
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", esc);
		sep = ' ';
	}
	if (text != NULL && text[0] != '\0') {
		line[n++] = sep;
		for (const char *t = text; *t != '\0' && n < SMTP_REPLY_MAX; t++) {
			unsigned char ch = (unsigned char)*t;

			line[n++] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
		}
	} else if (sep == '-') {
		line[n++] = sep;
	}
	if (copy != NULL) {
		memcpy(copy, line, n);
		copy[n] = '\0';
	}
	line[n++] = '\r';
	line[n++] = '\n';
	sl_buf_append(out, line, n);
}

static void __attribute__((format(printf, 5, 6)))
smtp_replyf(struct sl_smtp_server *s, struct sl_buf *out, unsigned code, const char *esc,
	    const char *fmt, ...)
{
	char text[SL_SMTP_MAX_CMD_LINE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_line(s, out, code, ' ', esc, text, s->reply);
}

/* The caller's enhanced code when it is well-formed and of the reply's class, else class.0.0. */
static const char *
smtp_esc_for(unsigned code, const char *esc, char *buf, size_t len)
{
	if (esc != NULL && esc[0] == (char)('0' + code / 100) && esc[1] == '.') {
		const char *p = esc + 2;
		int parts = 1;

		for (;;) {
			size_t d = 0;

			while (smtp_is_digit((unsigned char)p[d]) && d < 3)
				d++;
			if (d == 0)
				break;
			p += d;
			if (*p == '.' && parts == 1) {
				p++;
				parts++;
				continue;
			}
			if (*p == '\0' && parts == 2)
				return esc;
			break;
		}
	}
	snprintf(buf, len, "%u.0.0", code / 100);
	return buf;
}

static void
smtp_push(struct sl_smtp_server *s, enum sl_smtp_ev_kind kind, unsigned code, const char *arg,
	  const char *reply)
{
	struct sl_smtp_ev *ev;

	SL_ASSERT(s->pending_cnt < SMTP_MAX_PENDING);
	ev = &s->pending[s->pending_cnt++];
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->reply_code = code;
	ev->arg = arg;
	ev->arg_len = arg ? strlen(arg) : 0;
	ev->reply = reply;
}

/*
 * Close on the machine's own account: a 421 with the hostname (RFC 5321
 * §3.8), then the CLOSE event.  Idempotent.
 */
static void
smtp_close(struct sl_smtp_server *s, struct sl_buf *out, const char *esc, const char *why,
	   const char *text)
{
	char line[SL_SMTP_MAX_CMD_LINE];

	if (s->is_closing)
		return;
	snprintf(line, sizeof(line), "%s %s", s->conf.hostname, text);
	smtp_line(s, out, 421, ' ', esc, line, s->close_reply);
	s->is_closing = true;
	s->verdict = SL_SMTP_EV_NONE;
	smtp_push(s, SL_SMTP_EV_CLOSE, 421, why, s->close_reply);
}

/*
 * The machine refuses a command by itself: write the reply, fill a REJECT
 * event for the rejectlog, count 5xx toward the hard error limit (unless
 * !counts), and close on a 421 or when the limit is reached.
 */
static enum sl_smtp_ev_kind __attribute__((format(printf, 8, 9)))
smtp_refuse_x(struct sl_smtp_server *s, struct sl_smtp_ev *ev, struct sl_buf *out, bool counts,
	      unsigned code, const char *esc, const char *what, const char *fmt, ...)
{
	char text[SL_SMTP_MAX_CMD_LINE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_line(s, out, code, ' ', esc, text, s->reply);
	memset(ev, 0, sizeof(*ev));
	ev->kind = SL_SMTP_EV_REJECT;
	ev->reply_code = code;
	ev->arg = what;
	ev->arg_len = strlen(what);
	ev->reply = s->reply;
	if (code == 421) {
		s->is_closing = true;
		s->verdict = SL_SMTP_EV_NONE;
		smtp_push(s, SL_SMTP_EV_CLOSE, 421, what, s->reply);
	} else if (counts && code >= 500 && ++s->error_cnt >= s->conf.max_errors) {
		smtp_close(s, out, "4.7.0", "too many errors", "Error: too many errors");
	}
	return SL_SMTP_EV_REJECT;
}

#define smtp_refuse(s, ev, out, ...) smtp_refuse_x(s, ev, out, true, __VA_ARGS__)

/* The 220 greeting (RFC 5321 §4.2): never an enhanced code (RFC 2034 §3). */
static void
smtp_banner(struct sl_smtp_server *s, const char *text, struct sl_buf *out)
{
	char line[SL_SMTP_MAX_CMD_LINE];
	const char *sb = s->conf.static_banner;

	if (text != NULL) {
		smtp_line(s, out, 220, ' ', NULL, text, s->reply);
	} else if (sb != NULL && sb[0] != '\0') {
		/* Momentum's static_banner holds the whole line, "220 " included. */
		if (strncmp(sb, "220", 3) == 0 && (sb[3] == '\0' || sb[3] == ' '))
			sb += sb[3] == ' ' ? 4 : 3;
		smtp_line(s, out, 220, ' ', NULL, sb, s->reply);
	} else {
		const char *g = s->conf.greeting ? s->conf.greeting : "ESMTP";

		snprintf(line, sizeof(line), "%s%s%s", s->conf.hostname, g[0] ? " " : "", g);
		smtp_line(s, out, 220, ' ', NULL, line, s->reply);
	}
}

/* The EHLO reply (RFC 5321 §4.1.1.1): hostname, then one keyword per line. */
static void
smtp_ehlo_reply(struct sl_smtp_server *s, const char *text, struct sl_buf *out)
{
	const char *kw[16];
	char size[32];
	size_t n = 0;

	kw[n++] = "PIPELINING"; /* RFC 2920 */
	if (s->conf.message_size != 0) {
		snprintf(size, sizeof(size), "SIZE %llu", (unsigned long long)s->conf.message_size);
		kw[n++] = size; /* RFC 1870 */
	} else {
		kw[n++] = "SIZE";
	}
	if (s->conf.has_8bitmime)
		kw[n++] = "8BITMIME"; /* RFC 6152 */
	if (s->conf.has_smtputf8)
		kw[n++] = "SMTPUTF8"; /* RFC 6531 */
	if (s->conf.has_chunking)
		kw[n++] = "CHUNKING"; /* RFC 3030 */
	if (s->conf.has_enhancedstatuscodes)
		kw[n++] = "ENHANCEDSTATUSCODES"; /* RFC 2034 */
	if (s->conf.has_xclient)
		kw[n++] = "XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT";
	if (s->conf.has_xremoteip)
		kw[n++] = "XREMOTEIP";
	if (s->conf.has_xdumpcontext)
		kw[n++] = "XDUMPCONTEXT";
	if (s->conf.has_starttls && !s->is_tls)
		kw[n++] = "STARTTLS"; /* RFC 3207 §4.2: not after TLS started */
	smtp_line(s, out, 250, '-', NULL, text ? text : s->conf.hostname, NULL);
	for (size_t i = 0; i < n; i++)
		smtp_line(s, out, 250, i + 1 < n ? '-' : ' ', NULL, kw[i], NULL);
}

/* ------------------------------------------------------------ transaction */

static void
smtp_content_init(struct sl_smtp_server *s, bool is_bdat)
{
	memset(&s->c, 0, sizeof(s->c));
	s->c.is_bdat = is_bdat;
	s->c.is_wire_bol = true;
	s->c.is_stored_bol = true;
	s->c.in_header = true;
	s->c.hdr = SMTP_HDR_NAME;
}

/* Forget the transaction (RSET, EHLO, end of data: RFC 5321 §4.1.1.5, §4.1.4). */
static void
smtp_txn_reset(struct sl_smtp_server *s)
{
	memset(&s->txn, 0, sizeof(s->txn));
	smtp_content_init(s, false);
}

/* Back to the state of a new connection (XCLIENT, STARTTLS). */
static void
smtp_restart(struct sl_smtp_server *s)
{
	smtp_txn_reset(s);
	s->has_helo = false;
	s->is_esmtp = false;
	s->helo[0] = '\0';
}

static enum sl_smtp_ev_kind
smtp_verdict(struct sl_smtp_server *s, struct sl_smtp_ev *ev, enum sl_smtp_ev_kind kind)
{
	ev->kind = kind;
	ev->needs_verdict = true;
	s->verdict = kind;
	return kind;
}

/* ------------------------------------------------------------ addresses */

enum smtp_path_rc {
	SMTP_PATH_OK,
	SMTP_PATH_SYNTAX,
	SMTP_PATH_TOO_LONG,
};

struct smtp_path {
	const char *mbox; /* local@domain inside the line; "" for <> */
	size_t mbox_len;
	const char *rest; /* what follows '>' */
	size_t rest_len;
	bool is_null;  /* <> */
	bool has_8bit; /* non-ASCII octets (only valid UTF-8 gets this far) */
};

/* Local-part (RFC 5321 §4.1.2): Dot-string or Quoted-string; UTF-8 allowed (RFC 6531 §3.3). */
static size_t
smtp_local_part(const char *p, size_t len, bool *has_8bit)
{
	size_t i = 0;

	if (len > 0 && p[0] == '"') {
		for (i = 1; i < len; i++) {
			unsigned char ch = (unsigned char)p[i];

			if (ch == '"')
				return i + 1;
			if (ch == '\\') {
				if (i + 1 >= len || (unsigned char)p[i + 1] < 32 ||
				    (unsigned char)p[i + 1] > 126)
					return 0;
				i++;
			} else if (ch >= 0x80) {
				*has_8bit = true;
			} else if (ch < 32 || ch > 126) {
				return 0;
			}
		}
		return 0;
	}
	for (;;) {
		size_t atom = 0;

		while (i < len &&
		       (smtp_is_atext((unsigned char)p[i]) || (unsigned char)p[i] >= 0x80)) {
			if ((unsigned char)p[i] >= 0x80)
				*has_8bit = true;
			i++;
			atom++;
		}
		if (atom == 0)
			return 0;
		if (i < len && p[i] == '.') {
			i++;
			continue;
		}
		return i;
	}
}

/* The domain after '@': a name or an address literal (RFC 5321 §4.1.3). */
static enum smtp_path_rc
smtp_domain_part(const char *p, size_t len, size_t *dlen, bool *has_8bit)
{
	size_t i = 0;

	if (len > 0 && p[0] == '[') {
		while (i < len && p[i] != ']')
			i++;
		if (i >= len)
			return SMTP_PATH_SYNTAX;
		*dlen = i + 1;
		if (smtp_has_prefix(p + 1, i - 1, "IPv6:"))
			return smtp_ipv6_ok(p + 6, i - 6) ? SMTP_PATH_OK : SMTP_PATH_SYNTAX;
		/* General-address-literal tags are not registered: refused. */
		return smtp_ipv4_ok(p + 1, i - 1) ? SMTP_PATH_OK : SMTP_PATH_SYNTAX;
	}
	while (i < len && (smtp_is_alnum((unsigned char)p[i]) || p[i] == '-' || p[i] == '.' ||
			   (unsigned char)p[i] >= 0x80)) {
		if ((unsigned char)p[i] >= 0x80)
			*has_8bit = true;
		i++;
	}
	*dlen = i;
	if (i > SL_SMTP_MAX_DOMAIN)
		return SMTP_PATH_TOO_LONG;
	return smtp_domain_ok(p, i, true) ? SMTP_PATH_OK : SMTP_PATH_SYNTAX;
}

static size_t
smtp_skip_sp(const char *p, size_t i, size_t len)
{
	while (i < len && p[i] == ' ')
		i++;
	return i;
}

/*
 * Reverse-path / Forward-path (RFC 5321 §4.1.2): "<" [A-d-l ":"] Mailbox ">".
 * `p` starts right after "FROM:" or "TO:".  The source route is checked
 * and dropped (RFC 5321 §4.1.1.3, Appendix C).
 */
static enum smtp_path_rc
smtp_path(const struct sl_smtp_server *s, const char *p, size_t len, bool is_rcpt,
	  struct smtp_path *path)
{
	bool tolerant = s->conf.allow_trailing_ws;
	size_t i = 0, route_len = 0, start, inner;
	enum smtp_path_rc rc;

	memset(path, 0, sizeof(*path));
	/* "MAIL FROM: <a@b>": one space is common in the wild (Postfix takes it too). */
	if (i < len && p[i] == ' ')
		i++;
	if (i >= len || p[i] != '<')
		return SMTP_PATH_SYNTAX;
	i++;
	if (tolerant)
		i = smtp_skip_sp(p, i, len);
	inner = i;
	if (i < len && p[i] == '@') {
		start = i;
		for (;;) {
			size_t dlen = 0;
			bool route_8bit = false;

			if (i >= len || p[i] != '@')
				return SMTP_PATH_SYNTAX;
			i++;
			rc = smtp_domain_part(p + i, len - i, &dlen, &route_8bit);
			if (rc != SMTP_PATH_OK)
				return rc;
			if (p[i] == '[') /* At-domain is a Domain, never a literal */
				return SMTP_PATH_SYNTAX;
			path->has_8bit |= route_8bit;
			i += dlen;
			if (i < len && p[i] == ',') {
				i++;
				continue;
			}
			if (i < len && p[i] == ':') {
				i++;
				break;
			}
			return SMTP_PATH_SYNTAX;
		}
		route_len = i - start;
	}
	start = i;
	if (i < len && p[i] == '>' && route_len == 0) {
		path->is_null = true;
	} else {
		size_t llen = smtp_local_part(p + i, len - i, &path->has_8bit), dlen = 0, j;

		if (llen == 0)
			return SMTP_PATH_SYNTAX;
		i += llen;
		j = tolerant ? smtp_skip_sp(p, i, len) : i;
		/* RFC 5321 §4.1.1.3: <Postmaster> needs no domain (RCPT only). */
		if (!(is_rcpt && route_len == 0 && llen == 10 &&
		      strncasecmp(p + start, "postmaster", 10) == 0 && j < len && p[j] == '>')) {
			if (i >= len || p[i] != '@')
				return SMTP_PATH_SYNTAX;
			i++;
			rc = smtp_domain_part(p + i, len - i, &dlen, &path->has_8bit);
			if (rc != SMTP_PATH_OK)
				return rc;
			i += dlen;
		}
		if (llen > SL_SMTP_MAX_LOCAL)
			return SMTP_PATH_TOO_LONG; /* RFC 5321 §4.5.3.1.1 */
	}
	path->mbox = p + start;
	path->mbox_len = i - start;
	if (tolerant)
		i = smtp_skip_sp(p, i, len);
	if (i >= len || p[i] != '>')
		return SMTP_PATH_SYNTAX;
	i++;
	if (2 + route_len + path->mbox_len > SL_SMTP_MAX_PATH)
		return SMTP_PATH_TOO_LONG; /* RFC 5321 §4.5.3.1.3, brackets included */
	if (path->has_8bit && !smtp_utf8_ok((const unsigned char *)p + inner, i - 1 - inner))
		return SMTP_PATH_SYNTAX;
	path->rest = p + i;
	path->rest_len = len - i;
	return SMTP_PATH_OK;
}

int
sl_smtp_mailbox_check(const char *p, size_t len, bool is_rcpt, bool *has_8bit)
{
	size_t llen, dlen = 0, i;
	enum smtp_path_rc rc;

	*has_8bit = false;
	if (len + 2 > SL_SMTP_MAX_PATH)
		return -2;
	llen = smtp_local_part(p, len, has_8bit);
	if (llen == 0)
		return -1;
	if (is_rcpt && llen == len && llen == 10 && strncasecmp(p, "postmaster", 10) == 0)
		return 0;
	if (llen > SL_SMTP_MAX_LOCAL)
		return -2;
	if (llen >= len || p[llen] != '@')
		return -1;
	i = llen + 1;
	rc = smtp_domain_part(p + i, len - i, &dlen, has_8bit);
	if (rc == SMTP_PATH_TOO_LONG)
		return -2;
	if (rc != SMTP_PATH_OK || i + dlen != len)
		return -1;
	if (*has_8bit && !smtp_utf8_ok((const unsigned char *)p, len))
		return -1;
	return 0;
}

struct smtp_param {
	const char *key;
	size_t key_len;
	const char *val; /* NULL when the parameter has no "=value" */
	size_t val_len;
};

/*
 * Mail-parameters / Rcpt-parameters (RFC 5321 §4.1.2): SP-separated
 * esmtp-keyword ["=" esmtp-value].  Returns the count, -1 on bad syntax,
 * -2 over SL_SMTP_MAX_PARAMS.
 */
static int
smtp_params(const char *p, size_t len, struct smtp_param *v)
{
	size_t i = 0;
	int cnt = 0;

	while (i < len) {
		struct smtp_param *pa;

		if (p[i] != ' ')
			return -1;
		i = smtp_skip_sp(p, i, len);
		if (i >= len)
			return -1; /* a trailing space (allow_trailing_ws strips those earlier) */
		if (cnt == SL_SMTP_MAX_PARAMS)
			return -2;
		pa = &v[cnt++];
		pa->key = p + i;
		if (!smtp_is_alnum((unsigned char)p[i]))
			return -1;
		while (i < len && (smtp_is_alnum((unsigned char)p[i]) || p[i] == '-'))
			i++;
		pa->key_len = (size_t)(p + i - pa->key);
		pa->val = NULL;
		pa->val_len = 0;
		if (i < len && p[i] == '=') {
			i++;
			pa->val = p + i;
			while (i < len && (unsigned char)p[i] >= 33 && (unsigned char)p[i] <= 126 &&
			       p[i] != '=')
				i++;
			pa->val_len = (size_t)(p + i - pa->val);
			if (pa->val_len == 0)
				return -1;
		}
	}
	return cnt;
}

static bool
smtp_key_is(const struct smtp_param *pa, const char *key)
{
	return pa->key_len == strlen(key) && strncasecmp(pa->key, key, pa->key_len) == 0;
}

static bool
smtp_val_is(const struct smtp_param *pa, const char *val)
{
	return pa->val != NULL && pa->val_len == strlen(val) &&
	       strncasecmp(pa->val, val, pa->val_len) == 0;
}

/* ------------------------------------------------------------ commands */

struct smtp_line {
	enum smtp_verb verb;
	const char *what; /* verb name for events */
	const char *args; /* after the verb's space; NULL when no space followed the verb */
	size_t args_len;
	bool has_more; /* input bytes follow this line (STARTTLS, CVE-2011-0411) */
};

static enum sl_smtp_ev_kind
smtp_cmd_helo(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
	      struct sl_buf *out)
{
	bool ok = l->args != NULL && l->args_len > 0 && l->args_len <= SMTP_MAX_HELO;

	/* RFC 5321 §4.1.1.1: Domain or address-literal; one printable token. */
	for (size_t i = 0; ok && i < l->args_len; i++)
		ok = (unsigned char)l->args[i] > 32 && (unsigned char)l->args[i] < 127;
	if (!ok)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Syntax: %s hostname",
				   l->what);
	memcpy(s->arg, l->args, l->args_len);
	s->arg[l->args_len] = '\0';
	s->pend_is_ehlo = l->verb == SMTP_VERB_EHLO;
	ev->arg = s->arg;
	ev->arg_len = l->args_len;
	ev->is_ehlo = s->pend_is_ehlo;
	return smtp_verdict(s, ev, SL_SMTP_EV_HELO);
}

static enum sl_smtp_ev_kind
smtp_cmd_mail(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
	      struct sl_buf *out)
{
	struct smtp_param params[SL_SMTP_MAX_PARAMS];
	bool has_size = false, has_body = false, is_utf8 = false;
	enum sl_smtp_body_type body = SL_SMTP_BODY_UNSPECIFIED;
	uint64_t size = 0;
	struct smtp_path path;
	enum smtp_path_rc rc;
	int cnt;

	if (s->conf.require_ehlo && !s->has_helo)
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what,
				   "Error: send HELO/EHLO first");
	if (s->txn.is_active)
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: nested MAIL command");
	if (l->args == NULL || !smtp_has_prefix(l->args, l->args_len, "FROM:"))
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
				   "Syntax: MAIL FROM:<address>");
	rc = smtp_path(s, l->args + 5, l->args_len - 5, false, &path);
	if (rc == SMTP_PATH_TOO_LONG)
		return smtp_refuse(s, ev, out, 501, "5.1.7", l->what, "Sender address too long");
	if (rc != SMTP_PATH_OK)
		return smtp_refuse(s, ev, out, 501, "5.1.7", l->what, "Bad sender address syntax");
	cnt = smtp_params(path.rest, path.rest_len, params);
	if (cnt == -2)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Too many parameters");
	if (cnt < 0)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Bad parameter syntax");
	for (int i = 0; i < cnt; i++) {
		const struct smtp_param *pa = &params[i];

		if (smtp_key_is(pa, "SIZE")) { /* RFC 1870 §6 */
			if (has_size || pa->val == NULL ||
			    !smtp_parse_u64(pa->val, pa->val_len, &size))
				return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
						   "Bad SIZE parameter");
			has_size = true;
		} else if (smtp_key_is(pa, "BODY")) { /* RFC 6152 §2, RFC 3030 §3 */
			if (has_body)
				return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
						   "Bad BODY parameter");
			has_body = true;
			if (smtp_val_is(pa, "7BIT")) {
				body = SL_SMTP_BODY_7BIT;
			} else if (smtp_val_is(pa, "8BITMIME") && s->conf.has_8bitmime) {
				body = SL_SMTP_BODY_8BITMIME;
			} else if (smtp_val_is(pa, "8BITMIME") || smtp_val_is(pa, "BINARYMIME")) {
				return smtp_refuse(s, ev, out, 555, "5.5.4", l->what,
						   "Unsupported option: BODY=%.*s",
						   (int)pa->val_len, pa->val);
			} else {
				return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
						   "Bad BODY parameter");
			}
		} else if (smtp_key_is(pa, "SMTPUTF8") &&
			   s->conf.has_smtputf8) { /* RFC 6531 §3.4 */
			if (is_utf8 || pa->val != NULL)
				return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
						   "Bad SMTPUTF8 parameter");
			is_utf8 = true;
		} else {
			return smtp_refuse(s, ev, out, 555, "5.5.4", l->what,
					   "Unsupported option: %.*s",
					   (int)(pa->key_len > 64 ? 64 : pa->key_len), pa->key);
		}
	}
	if (path.is_null && !s->conf.allow_null_sender)
		return smtp_refuse(s, ev, out, 553, "5.1.7", l->what, "Null sender not allowed");
	if (path.has_8bit && !is_utf8) /* RFC 6531 §3.5 */
		return smtp_refuse(s, ev, out, 553, "5.6.7", l->what,
				   "Non-ASCII addresses not permitted for that sender");
	if (has_size && s->conf.message_size != 0 &&
	    size > s->conf.message_size) /* RFC 1870 §6.1 */
		return smtp_refuse(s, ev, out, 552, "5.3.4", l->what,
				   "Message size exceeds fixed limit");
	if (s->conf.max_msgs_per_session != 0 && s->msg_cnt >= s->conf.max_msgs_per_session)
		return smtp_refuse(s, ev, out, 421, "4.7.0", l->what,
				   "%s Error: too many messages in this session", s->conf.hostname);
	memcpy(s->arg, path.mbox, path.mbox_len);
	s->arg[path.mbox_len] = '\0';
	s->pend_is_smtputf8 = is_utf8;
	ev->arg = s->arg;
	ev->arg_len = path.mbox_len;
	ev->declared_size = size;
	ev->body = body;
	ev->is_smtputf8 = is_utf8;
	return smtp_verdict(s, ev, SL_SMTP_EV_MAIL);
}

static enum sl_smtp_ev_kind
smtp_cmd_rcpt(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
	      struct sl_buf *out)
{
	struct smtp_param params[SL_SMTP_MAX_PARAMS];
	struct smtp_path path;
	enum smtp_path_rc rc;
	int cnt;

	if (!s->txn.is_active)
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: need MAIL command");
	if (s->txn.has_bdat)
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: RCPT after BDAT");
	s->txn.rcpt_tried++;
	if (l->args == NULL || !smtp_has_prefix(l->args, l->args_len, "TO:"))
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Syntax: RCPT TO:<address>");
	rc = smtp_path(s, l->args + 3, l->args_len - 3, true, &path);
	if (rc == SMTP_PATH_TOO_LONG)
		return smtp_refuse(s, ev, out, 501, "5.1.3", l->what, "Recipient address too long");
	if (rc != SMTP_PATH_OK || path.is_null)
		return smtp_refuse(s, ev, out, 501, "5.1.3", l->what,
				   "Bad recipient address syntax");
	cnt = smtp_params(path.rest, path.rest_len, params);
	if (cnt == -2)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Too many parameters");
	if (cnt < 0)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Bad parameter syntax");
	if (cnt > 0) /* NOTIFY/ORCPT (RFC 3461) are not offered: DSN is not advertised. */
		return smtp_refuse(s, ev, out, 555, "5.5.4", l->what, "Unsupported option: %.*s",
				   (int)(params[0].key_len > 64 ? 64 : params[0].key_len),
				   params[0].key);
	if (path.has_8bit && !s->txn.is_smtputf8) /* RFC 6531 §3.5 */
		return smtp_refuse(s, ev, out, 553, "5.6.7", l->what,
				   "Non-ASCII addresses not permitted for that recipient");
	if (s->conf.max_rcpt_per_session != 0 && s->rcpt_cnt >= s->conf.max_rcpt_per_session)
		return smtp_refuse(s, ev, out, 421, "4.7.0", l->what,
				   "%s Error: too many recipients in this session",
				   s->conf.hostname);
	if (s->conf.max_rcpt_per_message != 0 && s->txn.rcpt_cnt >= s->conf.max_rcpt_per_message)
		return smtp_refuse(s, ev, out, 452, "4.5.3", l->what, /* RFC 5321 §4.5.3.1.10 */
				   "Error: too many recipients");
	memcpy(s->arg, path.mbox, path.mbox_len);
	s->arg[path.mbox_len] = '\0';
	ev->arg = s->arg;
	ev->arg_len = path.mbox_len;
	return smtp_verdict(s, ev, SL_SMTP_EV_RCPT);
}

/* RFC 5321 §3.3: DATA (or BDAT) needs a transaction with an accepted recipient. */
static enum sl_smtp_ev_kind
smtp_need_rcpt(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
	       struct sl_buf *out)
{
	if (!s->txn.is_active)
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: need MAIL command");
	if (s->txn.rcpt_cnt == 0 && s->txn.rcpt_tried == 0)
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: need RCPT command");
	if (s->txn.rcpt_cnt == 0)
		return smtp_refuse(s, ev, out, 554, "5.5.1", l->what, "Error: no valid recipients");
	return SL_SMTP_EV_NONE;
}

static enum sl_smtp_ev_kind
smtp_cmd_data(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
	      struct sl_buf *out)
{
	if (s->txn.is_active && s->txn.has_bdat) /* RFC 3030 §2 */
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: DATA after BDAT");
	if (smtp_need_rcpt(s, l, ev, out) != SL_SMTP_EV_NONE)
		return SL_SMTP_EV_REJECT;
	if (l->args != NULL)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Syntax: DATA");
	s->pend_is_bdat = false;
	return smtp_verdict(s, ev, SL_SMTP_EV_DATA);
}

/* Discard the octets of a BDAT chunk we refuse (RFC 3030 §2: they follow regardless). */
static void
smtp_skip(struct sl_smtp_server *s, uint64_t n)
{
	if (n > 0 && !s->is_closing) {
		s->state = SMTP_ST_SKIP;
		s->skip_left = n;
	}
}

/* BDAT chunk-size [SP "LAST"] (RFC 3030 §2). */
static enum sl_smtp_ev_kind
smtp_cmd_bdat(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
	      struct sl_buf *out)
{
	const char *sp = l->args ? memchr(l->args, ' ', l->args_len) : NULL;
	size_t nlen = sp ? (size_t)(sp - l->args) : l->args ? l->args_len : 0;
	bool is_last = false;
	uint64_t n;

	if (l->args == NULL || !smtp_parse_u64(l->args, nlen, &n)) {
		/* The chunk's end is unknown: the session cannot go on (RFC 3030 §2). */
		smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Syntax: BDAT size [LAST]");
		smtp_close(s, out, "4.7.0", "BDAT size unknown",
			   "Error: BDAT size unknown, closing");
		return SL_SMTP_EV_REJECT;
	}
	if (sp != NULL) {
		if ((size_t)(l->args + l->args_len - sp) != 5 || strncasecmp(sp, " LAST", 5) != 0) {
			smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Syntax: BDAT size [LAST]");
			goto refused;
		}
		is_last = true;
	}
	if (s->txn.is_active && s->txn.has_data) {
		smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: BDAT after DATA");
		goto refused;
	}
	if (smtp_need_rcpt(s, l, ev, out) != SL_SMTP_EV_NONE)
		goto refused;
	if (s->txn.is_bdat_failed) {
		/* A pipelining client sends on before it sees the refusal: not its error. */
		smtp_refuse_x(s, ev, out, false, 503, "5.5.1", l->what,
			      "Error: earlier BDAT refused; send RSET");
		goto refused;
	}
	if (!s->txn.has_bdat) {
		s->pend_is_bdat = true;
		s->pend_is_last = is_last;
		s->pend_chunk = n;
		ev->is_bdat = true;
		return smtp_verdict(s, ev, SL_SMTP_EV_DATA);
	}
	s->state = SMTP_ST_BDAT;
	s->c.chunk_left = s->c.chunk_len = n;
	s->c.is_last = is_last;
	return SL_SMTP_EV_NONE;
refused:
	/*
	 * RFC 3030 §2: after a failed BDAT the client must RSET; chunks it sent
	 * on are discarded, never joined to the ones before the failure.
	 */
	if (s->txn.is_active)
		s->txn.has_bdat = s->txn.is_bdat_failed = true;
	smtp_skip(s, n);
	return SL_SMTP_EV_REJECT;
}

/* An xtext value (RFC 3461 §4) decoded into `dst`; returns its length or -1. */
static int
smtp_xtext(const char *p, size_t len, char *dst)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '+') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = smtp_hex((unsigned char)p[i + 1]);
			lo = smtp_hex((unsigned char)p[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			ch = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (ch < 33 || ch > 126 || ch == '=') {
			return -1;
		}
		dst[n++] = (char)ch;
	}
	dst[n] = '\0';
	return (int)n;
}

/* One XCLIENT attribute value, as Postfix's XCLIENT_README describes it. */
static bool
smtp_xclient_value_ok(const char *name, char *v, size_t len)
{
	bool is_tempunavail = strcasecmp(v, "[TEMPUNAVAIL]") == 0;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	if (strcasecmp(v, "[UNAVAILABLE]") == 0 || (is_tempunavail && strcmp(name, "NAME") == 0)) {
		for (char *p = v; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
		return true;
	}
	if (len == 0)
		return false;
	if (strcmp(name, "ADDR") == 0 || strcmp(name, "DESTADDR") == 0)
		return smtp_has_prefix(v, len, "IPV6:") ? smtp_ipv6_ok(v + 5, len - 5)
							: smtp_ipv4_ok(v, len);
	if (strcmp(name, "PORT") == 0 || strcmp(name, "DESTPORT") == 0) {
		uint64_t port;

		return len <= 5 && smtp_parse_u64(v, len, &port) && port <= 65535;
	}
	if (strcmp(name, "PROTO") == 0) {
		if (strcasecmp(v, "SMTP") != 0 && strcasecmp(v, "ESMTP") != 0)
			return false;
		for (char *p = v; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
		return true;
	}
	if (strcmp(name, "NAME") == 0)
		return smtp_domain_ok(v, len, false);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch < 0x20 || ch == 0x7f ||
		    (strcmp(name, "HELO") == 0 && (ch == ' ' || ch >= 0x80)))
			return false;
	}
	return strcmp(name, "HELO") != 0 || len <= SMTP_MAX_HELO;
}

static enum sl_smtp_ev_kind
smtp_cmd_xclient(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
		 struct sl_buf *out)
{
	static const char *const names[] = { "NAME", "ADDR",  "PORT",     "PROTO",
					     "HELO", "LOGIN", "DESTADDR", "DESTPORT" };
	const char *p = l->args;
	size_t len = l->args_len, i = 0, used = 0;

	if (s->txn.is_active) /* XCLIENT_README: not inside a mail transaction */
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what,
				   "Error: MAIL transaction in progress");
	if (p == NULL || len == 0)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
				   "Syntax: XCLIENT attribute=value ...");
	s->xattr_cnt = 0;
	while (i < len) {
		const char *tok, *eq, *name = NULL;
		size_t tlen;
		int vlen;

		if (i > 0) { /* a token ended at a space */
			i = smtp_skip_sp(p, i, len);
			if (i >= len)
				goto bad_syntax;
		}
		tok = p + i;
		while (i < len && p[i] != ' ')
			i++;
		tlen = (size_t)(p + i - tok);
		eq = memchr(tok, '=', tlen);
		if (eq == NULL)
			goto bad_syntax;
		for (size_t k = 0; k < SL_ARRAY_LEN(names); k++)
			if ((size_t)(eq - tok) == strlen(names[k]) &&
			    strncasecmp(tok, names[k], strlen(names[k])) == 0)
				name = names[k];
		if (name == NULL)
			return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
					   "Bad XCLIENT attribute name");
		if (s->xattr_cnt == SL_SMTP_MAX_XCLIENT_ATTRS)
			return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
					   "Too many XCLIENT attributes");
		vlen = smtp_xtext(eq + 1, (size_t)(tok + tlen - eq - 1), s->xbuf + used);
		if (vlen < 0 || !smtp_xclient_value_ok(name, s->xbuf + used, (size_t)vlen))
			return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
					   "Bad XCLIENT %s value", name);
		s->xattr[s->xattr_cnt].name = name;
		s->xattr[s->xattr_cnt].value = s->xbuf + used;
		s->xattr_cnt++;
		used += (size_t)vlen + 1;
	}
	ev->xclient = s->xattr;
	ev->xclient_cnt = s->xattr_cnt;
	return smtp_verdict(s, ev, SL_SMTP_EV_XCLIENT);
bad_syntax:
	return smtp_refuse(s, ev, out, 501, "5.5.4", l->what,
			   "Syntax: XCLIENT attribute=value ...");
}

static enum sl_smtp_ev_kind
smtp_cmd_xremoteip(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
		   struct sl_buf *out)
{
	const char *a = l->args;
	size_t len = l->args_len;
	bool ok = a != NULL && (smtp_ipv4_ok(a, len) || smtp_ipv6_ok(a, len) ||
				(smtp_has_prefix(a, len, "IPv6:") && smtp_ipv6_ok(a + 5, len - 5)));

	if (!ok)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Syntax: XREMOTEIP address");
	memcpy(s->arg, a, len);
	s->arg[len] = '\0';
	ev->arg = s->arg;
	ev->arg_len = len;
	return smtp_verdict(s, ev, SL_SMTP_EV_XREMOTEIP);
}

static enum sl_smtp_ev_kind
smtp_cmd_starttls(struct sl_smtp_server *s, const struct smtp_line *l, struct sl_smtp_ev *ev,
		  struct sl_buf *out)
{
	if (s->is_tls) /* RFC 3207 §4.2 */
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what, "Error: TLS already active");
	if (l->args != NULL)
		return smtp_refuse(s, ev, out, 501, "5.5.4", l->what, "Syntax: STARTTLS");
	if (s->txn.is_active)
		return smtp_refuse(s, ev, out, 503, "5.5.1", l->what,
				   "Error: MAIL transaction in progress");
	ev->has_pipelined_input = l->has_more;
	return smtp_verdict(s, ev, SL_SMTP_EV_STARTTLS);
}

/* Find the verb; extensions that are off are unknown commands. */
static enum smtp_verb
smtp_verb(const struct sl_smtp_server *s, const char *p, size_t len)
{
	for (size_t v = 1; v < SL_ARRAY_LEN(smtp_verb_names); v++) {
		if (strlen(smtp_verb_names[v]) != len ||
		    strncasecmp(p, smtp_verb_names[v], len) != 0)
			continue;
		switch ((enum smtp_verb)v) {
		case SMTP_VERB_BDAT:
			return s->conf.has_chunking ? SMTP_VERB_BDAT : SMTP_VERB_NONE;
		case SMTP_VERB_XCLIENT:
			return s->conf.has_xclient ? SMTP_VERB_XCLIENT : SMTP_VERB_NONE;
		case SMTP_VERB_XREMOTEIP:
			return s->conf.has_xremoteip ? SMTP_VERB_XREMOTEIP : SMTP_VERB_NONE;
		case SMTP_VERB_XDUMPCONTEXT:
			return s->conf.has_xdumpcontext ? SMTP_VERB_XDUMPCONTEXT : SMTP_VERB_NONE;
		case SMTP_VERB_STARTTLS:
			return s->conf.has_starttls ? SMTP_VERB_STARTTLS : SMTP_VERB_NONE;
		default:
			return (enum smtp_verb)v;
		}
	}
	return SMTP_VERB_NONE;
}

/* One complete command line, terminator removed. */
static enum sl_smtp_ev_kind
smtp_command(struct sl_smtp_server *s, const char *p, size_t len, bool has_more,
	     struct sl_smtp_ev *ev, struct sl_buf *out)
{
	struct smtp_line l;
	size_t vlen = 0;

	s->is_after_rset = false;
	if (s->conf.allow_trailing_ws)
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
	while (vlen < len && p[vlen] != ' ')
		vlen++;
	memset(&l, 0, sizeof(l));
	l.verb = smtp_verb(s, p, vlen);
	l.what = smtp_verb_names[l.verb];
	l.has_more = has_more;
	if (vlen < len) {
		l.args = p + vlen + 1;
		l.args_len = len - vlen - 1;
	}
	if (l.verb == SMTP_VERB_NONE)
		return smtp_refuse(s, ev, out, 500, "5.5.1", "unknown command",
				   "Error: command not recognized");
	if (s->is_refused && l.verb != SMTP_VERB_QUIT) /* RFC 5321 §3.1 */
		return smtp_refuse(s, ev, out, 503, "5.5.1", l.what, "Error: no SMTP service here");

	switch (l.verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
		return smtp_cmd_helo(s, &l, ev, out);
	case SMTP_VERB_MAIL:
		return smtp_cmd_mail(s, &l, ev, out);
	case SMTP_VERB_RCPT:
		return smtp_cmd_rcpt(s, &l, ev, out);
	case SMTP_VERB_DATA:
		return smtp_cmd_data(s, &l, ev, out);
	case SMTP_VERB_BDAT:
		return smtp_cmd_bdat(s, &l, ev, out);
	case SMTP_VERB_RSET:
		if (l.args != NULL)
			return smtp_refuse(s, ev, out, 501, "5.5.4", l.what, "Syntax: RSET");
		smtp_txn_reset(s);
		s->is_after_rset = true;
		smtp_replyf(s, out, 250, "2.0.0", "Ok");
		ev->kind = SL_SMTP_EV_RSET;
		return SL_SMTP_EV_RSET;
	case SMTP_VERB_NOOP: /* RFC 5321 §4.1.1.9: any argument is ignored */
		smtp_replyf(s, out, 250, "2.0.0", "Ok");
		return SL_SMTP_EV_NONE;
	case SMTP_VERB_HELP: /* RFC 5321 §4.1.1.8 */
		smtp_replyf(s, out, 214, "2.0.0",
			    "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY");
		return SL_SMTP_EV_NONE;
	case SMTP_VERB_VRFY: /* RFC 5321 §3.5.3, §7.3: 252, never a false 250 */
		if (l.args == NULL || l.args_len == 0)
			return smtp_refuse(s, ev, out, 501, "5.5.4", l.what,
					   "Syntax: VRFY address");
		smtp_replyf(s, out, 252, "2.5.2", "Cannot VRFY user, but will accept message");
		return SL_SMTP_EV_NONE;
	case SMTP_VERB_EXPN: /* RFC 5321 §4.5.1: not in the minimum; §4.2.4 502 */
		return smtp_refuse(s, ev, out, 502, "5.5.1", l.what, "Error: EXPN not implemented");
	case SMTP_VERB_QUIT:
		if (l.args != NULL)
			return smtp_refuse(s, ev, out, 501, "5.5.4", l.what, "Syntax: QUIT");
		smtp_replyf(s, out, 221, "2.0.0", "%s closing connection", s->conf.hostname);
		s->is_closing = true;
		ev->kind = SL_SMTP_EV_QUIT;
		ev->reply_code = 221;
		ev->reply = s->reply;
		return SL_SMTP_EV_QUIT;
	case SMTP_VERB_XCLIENT:
		return smtp_cmd_xclient(s, &l, ev, out);
	case SMTP_VERB_XREMOTEIP:
		return smtp_cmd_xremoteip(s, &l, ev, out);
	case SMTP_VERB_XDUMPCONTEXT:
		if (l.args != NULL)
			return smtp_refuse(s, ev, out, 501, "5.5.4", l.what,
					   "Syntax: XDUMPCONTEXT");
		return smtp_verdict(s, ev, SL_SMTP_EV_XDUMPCONTEXT);
	case SMTP_VERB_STARTTLS:
		return smtp_cmd_starttls(s, &l, ev, out);
	case SMTP_VERB_NONE:
		break;
	}
	SL_ASSERT(!"smtp_command: unhandled verb");
	return SL_SMTP_EV_NONE;
}

/* ------------------------------------------------------------ stepping */

/* What one step of the machine did. */
enum smtp_step {
	SMTP_STEP_EVENT, /* ev is filled */
	SMTP_STEP_AGAIN, /* made progress without an event: step again */
	SMTP_STEP_NEED,  /* needs more input */
};

static enum smtp_step
smtp_step_cmd(struct sl_smtp_server *s, const char *in, size_t in_len, size_t *used,
	      struct sl_smtp_ev *ev, struct sl_buf *out)
{
	size_t look = in_len < SL_SMTP_MAX_CMD_LINE ? in_len : SL_SMTP_MAX_CMD_LINE;
	const char *lf = memchr(in, '\n', look);
	size_t len;

	if (lf == NULL) {
		if (in_len < SL_SMTP_MAX_CMD_LINE)
			return SMTP_STEP_NEED;
		/* RFC 5321 §4.5.3.1.4: over 512 octets; drop it as it streams by. */
		s->state = SMTP_ST_LONG_LINE;
		*used = look;
		return SMTP_STEP_AGAIN;
	}
	/*
	 * A bare LF ends a command line too (as in Postfix): DATA only ever
	 * ends at <CRLF>.<CRLF>, so this cannot be used for smuggling.
	 */
	*used = (size_t)(lf - in) + 1;
	len = (size_t)(lf - in);
	if (len > 0 && in[len - 1] == '\r')
		len--;
	if (smtp_command(s, in, len, in_len > *used, ev, out) == SL_SMTP_EV_NONE)
		return SMTP_STEP_AGAIN;
	return SMTP_STEP_EVENT;
}

static enum smtp_step
smtp_step_long_line(struct sl_smtp_server *s, const char *in, size_t in_len, size_t *used,
		    struct sl_smtp_ev *ev, struct sl_buf *out)
{
	const char *lf = memchr(in, '\n', in_len);

	if (lf == NULL) {
		*used = in_len;
		return in_len > 0 ? SMTP_STEP_AGAIN : SMTP_STEP_NEED;
	}
	*used = (size_t)(lf - in) + 1;
	s->state = SMTP_ST_CMD;
	s->is_after_rset = false;
	smtp_refuse(s, ev, out, 500, "5.5.2", "command line too long",
		    "Error: command line too long");
	return SMTP_STEP_EVENT;
}

static enum smtp_step
smtp_step_skip(struct sl_smtp_server *s, size_t in_len, size_t *used)
{
	uint64_t n = in_len < s->skip_left ? in_len : s->skip_left;

	s->skip_left -= n;
	*used = (size_t)n;
	if (s->skip_left == 0)
		s->state = SMTP_ST_CMD;
	return n > 0 || s->skip_left == 0 ? SMTP_STEP_AGAIN : SMTP_STEP_NEED;
}

/*
 * The first CR or LF in [p, end), or end.  Eight octets at a time (the
 * "has a zero byte" test on w ^ CR and w ^ LF); one pass that stops at the
 * first hit, so a call costs what it consumes, however the input is split.
 */
static const char *
smtp_find_eol(const char *p, const char *end)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

	while (end - p >= 8) {
		uint64_t w, cr, lf;

		memcpy(&w, p, 8);
		cr = w ^ (ones * '\r');
		lf = w ^ (ones * '\n');
		if ((((cr - ones) & ~cr) | ((lf - ones) & ~lf)) & highs)
			break;
		p += 8;
	}
	while (p < end && *p != '\r' && *p != '\n')
		p++;
	return p;
}

/* Date:/Message-ID: detection, one octet at the start of a header line. */
static void
smtp_hdr_octet(struct smtp_content *c, unsigned char ch)
{
	if (c->hdr == SMTP_HDR_NAME && ch == ':') {
		if (c->hdr_len == 4 && strncasecmp(c->hdr_name, "date", 4) == 0)
			c->has_date = true;
		if (c->hdr_len == 10 && strncasecmp(c->hdr_name, "message-id", 10) == 0)
			c->has_msgid = true;
		c->hdr = SMTP_HDR_DONE;
	} else if (c->hdr == SMTP_HDR_NAME && (ch == ' ' || ch == '\t')) {
		/* a folded line (no name) or "Name :" (RFC 5322 §4.5.3 obsolete syntax) */
		c->hdr = c->hdr_len > 0 ? SMTP_HDR_WSP : SMTP_HDR_DONE;
	} else if (c->hdr == SMTP_HDR_NAME && ch > 32 && ch < 127 &&
		   c->hdr_len < SMTP_HDR_NAME_MAX) {
		c->hdr_name[c->hdr_len++] = (char)ch;
	} else if (c->hdr == SMTP_HDR_WSP && ch == ':') {
		c->hdr = SMTP_HDR_NAME;
		smtp_hdr_octet(c, ch);
	} else if (c->hdr != SMTP_HDR_WSP || (ch != ' ' && ch != '\t')) {
		c->hdr = SMTP_HDR_DONE;
	}
}

static void
smtp_check_size(struct sl_smtp_server *s)
{
	if (s->conf.message_size != 0 && s->c.msg_len > s->conf.message_size)
		s->c.defects |= SL_SMTP_DEFECT_TOO_BIG;
}

/* `n` stored octets of line text (no line terminator). */
static void
smtp_text(struct sl_smtp_server *s, size_t n)
{
	struct smtp_content *c = &s->c;

	if (n == 0)
		return;
	c->is_stored_bol = false;
	c->line_len += n;
	c->msg_len += n;
	if (c->line_len > SMTP_MAX_TEXT) /* RFC 5321 §4.5.3.1.6 */
		c->defects |= SL_SMTP_DEFECT_LONG_LINE;
	smtp_check_size(s);
}

/* A stored line ends with `n` octets of terminator. */
static void
smtp_eol(struct sl_smtp_server *s, size_t n)
{
	struct smtp_content *c = &s->c;

	if (c->in_header && c->is_stored_bol)
		c->in_header = false; /* the empty line ends the header section (RFC 5322 §2.1) */
	c->is_stored_bol = true;
	c->line_len = 0;
	c->hdr = c->in_header ? SMTP_HDR_NAME : SMTP_HDR_DONE;
	c->hdr_len = 0;
	c->msg_len += n;
	smtp_check_size(s);
}

static enum sl_smtp_bare_eol
smtp_policy(const struct sl_smtp_server *s)
{
	if (!s->c.in_header)
		return s->conf.body_bare_eol;
	return s->conf.header_bare_eol == SL_SMTP_BARE_EOL_FIX ? SL_SMTP_BARE_EOL_FIX
							       : SL_SMTP_BARE_EOL_REJECT;
}

/*
 * A bare CR or bare LF was consumed: apply the policy.  Returns the octets
 * to emit in its place ("\r\n" for FIX, "\r" or "\n" for IGNORE) or 0.
 */
static size_t
smtp_bare(struct sl_smtp_server *s, char ch, const char **emit)
{
	switch (smtp_policy(s)) {
	case SL_SMTP_BARE_EOL_FIX:
		smtp_eol(s, 2);
		*emit = smtp_crlf;
		return 2;
	case SL_SMTP_BARE_EOL_IGNORE:
		/* Passed through; it still ends a line for the length limit. */
		smtp_eol(s, 1);
		*emit = ch == '\r' ? smtp_crlf : smtp_crlf + 1;
		return 1;
	case SL_SMTP_BARE_EOL_REJECT:
		break;
	}
	s->c.defects |= SL_SMTP_DEFECT_BARE_EOL;
	smtp_eol(s, 1);
	return 0;
}

static enum smtp_step
smtp_body(struct sl_smtp_server *s, struct sl_smtp_ev *ev, const char *data, size_t len)
{
	if (s->c.defects != 0 || len == 0)
		return SMTP_STEP_AGAIN; /* a refused message is only counted */
	ev->kind = SL_SMTP_EV_BODY;
	ev->data = data;
	ev->data_len = len;
	return SMTP_STEP_EVENT;
}

/* The end of the content: a defective message is refused here, a good one waits for a verdict. */
static enum smtp_step
smtp_eom(struct sl_smtp_server *s, struct sl_smtp_ev *ev, struct sl_buf *out)
{
	struct smtp_content *c = &s->c;

	s->state = SMTP_ST_CMD;
	ev->kind = SL_SMTP_EV_EOM;
	ev->defects = c->defects;
	ev->message_len = c->msg_len;
	ev->has_date_header = c->has_date;
	ev->has_message_id_header = c->has_msgid;
	if (c->defects == 0) {
		smtp_verdict(s, ev, SL_SMTP_EV_EOM);
		return SMTP_STEP_EVENT;
	}
	if (c->defects & SL_SMTP_DEFECT_TOO_BIG) { /* RFC 5321 §4.5.3.1.10, RFC 1870 §6.3 */
		ev->reply_code = 552;
		smtp_replyf(s, out, 552, "5.3.4", "Message size exceeds fixed limit");
	} else if (c->defects & SL_SMTP_DEFECT_BARE_EOL) {
		ev->reply_code = 550;
		smtp_replyf(s, out, 550, "5.6.0",
			    "Message refused: bare CR or LF in message content; lines must end "
			    "with CRLF (SMTP smuggling protection)");
	} else {
		ev->reply_code = 500; /* RFC 5321 §4.5.3.1.9 "500 Line too long" */
		smtp_replyf(s, out, 500, "5.5.6",
			    "Message refused: text line longer than 1000 octets");
	}
	ev->reply = s->reply;
	smtp_txn_reset(s);
	smtp_push(s, SL_SMTP_EV_RSET, 0, NULL, NULL);
	return SMTP_STEP_EVENT;
}

/*
 * Message content, DATA or BDAT.  Runs of octets that need no change are
 * emitted as they stand in `in`; a stuffed dot, a bare CR/LF under FIX, a
 * held CR and the end end a run.
 */
static enum smtp_step
smtp_step_content(struct sl_smtp_server *s, const char *in, size_t in_len, size_t *used,
		  struct sl_smtp_ev *ev, struct sl_buf *out)
{
	struct smtp_content *c = &s->c;
	bool is_bdat = s->state == SMTP_ST_BDAT;
	size_t avail = in_len;
	const char *p = in, *end, *run, *emit = NULL;
	enum smtp_step rc;

	if (is_bdat) {
		if (c->chunk_left < avail)
			avail = (size_t)c->chunk_left;
		if (c->chunk_left == 0 && !c->is_last) {
			/* RFC 3030 §2: each chunk is answered; a held CR waits for the next one. */
			s->state = SMTP_ST_CMD;
			smtp_replyf(s, out, 250, "2.0.0", "Ok: %llu octets received",
				    (unsigned long long)c->chunk_len);
			return SMTP_STEP_AGAIN;
		}
		if (c->chunk_left == 0 && !c->has_held_cr)
			return smtp_eom(s, ev, out);
	}
	end = in + avail;

	/* What the last call left undecided: ".", ".\r" (DATA), "\r". */
	if (c->has_held_dot) {
		if (p == end)
			return SMTP_STEP_NEED;
		if (!c->has_held_cr && *p == '\r') {
			c->has_held_cr = true;
			p++;
			if (p == end) {
				rc = SMTP_STEP_AGAIN;
				goto done;
			}
		}
		c->has_held_dot = false;
		c->is_wire_bol = false;
		if (c->has_held_cr && *p == '\n') { /* RFC 5321 §4.1.1.4: <CRLF>.<CRLF> */
			c->has_held_cr = false;
			p++;
			*used = (size_t)(p - in);
			return smtp_eom(s, ev, out);
		}
		/* else: the dot was stuffing (RFC 5321 §4.5.2); it goes. */
	}
	if (c->has_held_cr) {
		size_t n;

		if (p == end && !(is_bdat && c->chunk_left == 0))
			return SMTP_STEP_NEED;
		c->has_held_cr = false;
		if (p < end && *p == '\n') {
			p++;
			smtp_eol(s, 2);
			c->is_wire_bol = !is_bdat;
			rc = smtp_body(s, ev, smtp_crlf, 2);
		} else {
			n = smtp_bare(s, '\r', &emit);
			rc = smtp_body(s, ev, emit, n);
		}
		goto done;
	}

	run = p;
	while (p < end) {
		const char *q;

		if (!is_bdat && c->is_wire_bol && *p == '.') {
			/* RFC 5321 §4.5.2: only at a real line start. */
			if (p > run) {
				rc = smtp_body(s, ev, run, (size_t)(p - run));
				goto done;
			}
			if (p + 1 == end || (p[1] == '\r' && p + 2 == end)) {
				c->has_held_dot = true;
				c->has_held_cr = p + 1 < end;
				p = end;
				rc = SMTP_STEP_AGAIN;
				goto done;
			}
			if (p[1] == '\r' && p[2] == '\n') {
				*used = (size_t)(p + 3 - in);
				return smtp_eom(s, ev, out);
			}
			run = ++p;
			c->is_wire_bol = false;
			continue;
		}
		c->is_wire_bol = false;
		while (c->hdr != SMTP_HDR_DONE && p < end && *p != '\r' && *p != '\n') {
			smtp_hdr_octet(c, (unsigned char)*p);
			smtp_text(s, 1);
			p++;
		}
		q = smtp_find_eol(p, end);
		smtp_text(s, (size_t)(q - p));
		p = q;
		if (p == end)
			break;
		if (*p == '\r' && p + 1 == end) {
			/* Decided by the next octet, which may come in the next chunk. */
			c->has_held_cr = true;
			rc = smtp_body(s, ev, run, (size_t)(p - run));
			p++;
			goto done;
		}
		if (*p == '\r' && p[1] == '\n') {
			p += 2;
			smtp_eol(s, 2);
			c->is_wire_bol = !is_bdat;
			continue;
		}
		/* A bare CR or LF: never a line start, never unstuffed, never the end. */
		if (smtp_policy(s) == SL_SMTP_BARE_EOL_FIX && p > run && c->defects == 0) {
			rc = smtp_body(s, ev, run, (size_t)(p - run));
			goto done;
		}
		{
			size_t n = smtp_bare(s, *p, &emit);

			p++;
			if (emit == smtp_crlf && n == 2) {
				rc = smtp_body(s, ev, emit, n);
				if (rc == SMTP_STEP_EVENT)
					goto done;
				run = p;
			}
		}
	}
	rc = smtp_body(s, ev, run, (size_t)(p - run));
done:
	*used = (size_t)(p - in);
	if (is_bdat)
		c->chunk_left -= *used;
	if (rc == SMTP_STEP_AGAIN && avail == 0 && !(is_bdat && c->chunk_left == 0))
		return SMTP_STEP_NEED;
	return rc;
}

/* ------------------------------------------------------------ the interface */

struct sl_smtp_server *
sl_smtp_server_new(const struct sl_smtp_server_conf *conf, struct sl_buf *out)
{
	struct sl_smtp_server *s = SL_NEW(s);

	SL_ASSERT(conf != NULL && conf->hostname != NULL);
	s->magic = SMTP_SERVER_MAGIC;
	s->conf = *conf;
	if (s->conf.max_errors == 0)
		s->conf.max_errors = SMTP_MAX_ERRORS_DEFAULT;
	s->state = SMTP_ST_CMD;
	s->is_fresh = true;
	smtp_txn_reset(s);
	smtp_banner(s, NULL, out);
	return s;
}

void
sl_smtp_server_free(struct sl_smtp_server *s)
{
	if (s == NULL)
		return;
	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	s->magic = 0;
	sl_free(s);
}

enum sl_smtp_ev_kind
sl_smtp_server_next(struct sl_smtp_server *s, const char *in, size_t in_len, size_t *used,
		    struct sl_smtp_ev *ev, struct sl_buf *out)
{
	size_t off = 0;

	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	SL_ASSERT(in != NULL || in_len == 0);
	if (in == NULL)
		in = ""; /* memchr() and friends want a pointer even for 0 octets */
	memset(ev, 0, sizeof(*ev));
	s->is_fresh = false;
	for (;;) {
		enum smtp_step rc = SMTP_STEP_NEED;
		size_t n = 0;

		if (s->pending_cnt > 0) {
			*ev = s->pending[0];
			memmove(&s->pending[0], &s->pending[1], --s->pending_cnt * sizeof(*ev));
			break;
		}
		if (s->verdict != SL_SMTP_EV_NONE || s->is_closing)
			break;
		switch (s->state) {
		case SMTP_ST_CMD:
			rc = smtp_step_cmd(s, in + off, in_len - off, &n, ev, out);
			break;
		case SMTP_ST_LONG_LINE:
			rc = smtp_step_long_line(s, in + off, in_len - off, &n, ev, out);
			break;
		case SMTP_ST_DATA:
		case SMTP_ST_BDAT:
			rc = smtp_step_content(s, in + off, in_len - off, &n, ev, out);
			break;
		case SMTP_ST_SKIP:
			rc = smtp_step_skip(s, in_len - off, &n);
			break;
		}
		off += n;
		SL_ASSERT(off <= in_len);
		if (rc == SMTP_STEP_EVENT)
			break;
		if (rc == SMTP_STEP_NEED) {
			memset(ev, 0, sizeof(*ev));
			break;
		}
	}
	*used = off;
	return ev->kind;
}

void
sl_smtp_server_accept(struct sl_smtp_server *s, const char *text, struct sl_buf *out)
{
	enum sl_smtp_ev_kind kind;

	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	if (s->is_closing)
		return;
	if (s->verdict == SL_SMTP_EV_NONE) {
		SL_ASSERT(s->is_fresh); /* accepting the connection: the banner is out already */
		return;
	}
	kind = s->verdict;
	s->verdict = SL_SMTP_EV_NONE;
	switch (kind) {
	case SL_SMTP_EV_HELO:
		if (s->pend_is_ehlo)
			smtp_ehlo_reply(s, text, out);
		else
			smtp_line(s, out, 250, ' ', NULL, text ? text : s->conf.hostname, s->reply);
		if (s->txn.is_active)
			smtp_push(s, SL_SMTP_EV_RSET, 0, NULL, NULL); /* RFC 5321 §4.1.4 */
		smtp_txn_reset(s);
		s->has_helo = true;
		s->is_esmtp = s->pend_is_ehlo;
		memcpy(s->helo, s->arg, strnlen(s->arg, SMTP_MAX_HELO)); /* checked <= 255 */
		s->helo[strnlen(s->arg, SMTP_MAX_HELO)] = '\0';
		break;
	case SL_SMTP_EV_MAIL:
		smtp_txn_reset(s);
		s->txn.is_active = true;
		s->txn.is_smtputf8 = s->pend_is_smtputf8;
		smtp_line(s, out, 250, ' ', "2.1.0", text ? text : "Ok", s->reply);
		break;
	case SL_SMTP_EV_RCPT:
		s->txn.rcpt_cnt++;
		s->rcpt_cnt++;
		smtp_line(s, out, 250, ' ', "2.1.5", text ? text : "Ok", s->reply);
		break;
	case SL_SMTP_EV_DATA:
		smtp_content_init(s, s->pend_is_bdat);
		if (s->pend_is_bdat) {
			/* The chunk is the answer's subject; its reply comes after it. */
			s->txn.has_bdat = true;
			s->state = SMTP_ST_BDAT;
			s->c.chunk_left = s->c.chunk_len = s->pend_chunk;
			s->c.is_last = s->pend_is_last;
		} else {
			s->state = SMTP_ST_DATA;
			smtp_line(s, out, 354, ' ', NULL,
				  text ? text : "End data with <CR><LF>.<CR><LF>", s->reply);
		}
		break;
	case SL_SMTP_EV_EOM:
		s->msg_cnt++;
		smtp_txn_reset(s);
		smtp_line(s, out, 250, ' ', "2.0.0", text ? text : "Ok", s->reply);
		break;
	case SL_SMTP_EV_XCLIENT:
		/* XCLIENT_README: back to the initial greeting stage. */
		smtp_restart(s);
		smtp_banner(s, text, out);
		break;
	case SL_SMTP_EV_XREMOTEIP:
		smtp_line(s, out, 250, ' ', "2.0.0", text ? text : "Ok", s->reply);
		break;
	case SL_SMTP_EV_XDUMPCONTEXT:
		s->verdict = kind;
		sl_smtp_server_reply_lines(s, NULL, 0, out);
		break;
	case SL_SMTP_EV_STARTTLS:
		/* RFC 3207 §4.2: forget everything; a new EHLO must come. */
		smtp_restart(s);
		s->is_tls = true;
		smtp_line(s, out, 220, ' ', "2.0.0", text ? text : "Ready to start TLS", s->reply);
		break;
	default:
		SL_ASSERT(!"sl_smtp_server_accept: no verdict pending");
	}
}

void
sl_smtp_server_reject(struct sl_smtp_server *s, unsigned code, const char *enhanced,
		      const char *text, struct sl_buf *out)
{
	enum sl_smtp_ev_kind kind;
	char esc[16];

	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	SL_ASSERT(code >= 400 && code <= 599);
	if (s->is_closing)
		return;
	if (text == NULL || text[0] == '\0')
		text = code == 421 ? "Service not available, closing transmission channel"
				   : "Error: command refused";
	enhanced = smtp_esc_for(code, enhanced, esc, sizeof(esc));
	kind = s->verdict;
	s->verdict = SL_SMTP_EV_NONE;
	if (kind == SL_SMTP_EV_NONE) {
		/* Refusing the connection instead of the banner (RFC 5321 §3.1). */
		SL_ASSERT(s->is_fresh);
		s->is_fresh = false;
		smtp_line(s, out, code, ' ', enhanced, text, s->reply);
		if (code == 421)
			s->is_closing = true;
		else
			s->is_refused = true;
		return;
	}
	smtp_line(s, out, code, ' ', enhanced, text, s->reply);
	if (code == 421) {
		s->is_closing = true;
		return;
	}
	switch (kind) {
	case SL_SMTP_EV_DATA:
		if (s->pend_is_bdat) {
			s->txn.has_bdat = true;
			s->txn.is_bdat_failed = true;
			smtp_skip(s, s->pend_chunk);
		} else {
			s->txn.has_data = true;
		}
		break;
	case SL_SMTP_EV_EOM:
		/* RFC 5321 §4.1.1.4: the end of data clears the transaction either way. */
		smtp_txn_reset(s);
		smtp_push(s, SL_SMTP_EV_RSET, 0, NULL, NULL);
		break;
	default:
		break;
	}
}

void
sl_smtp_server_reply_lines(struct sl_smtp_server *s, const char *const *lines, size_t line_cnt,
			   struct sl_buf *out)
{
	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	if (s->is_closing)
		return;
	SL_ASSERT(s->verdict == SL_SMTP_EV_XDUMPCONTEXT);
	s->verdict = SL_SMTP_EV_NONE;
	for (size_t i = 0; i < line_cnt; i++)
		smtp_line(s, out, 250, '-', "2.0.0", lines[i], NULL);
	smtp_line(s, out, 250, ' ', "2.0.0", "XDUMPCONTEXT complete", s->reply);
}

enum sl_smtp_wait
sl_smtp_server_waiting_for(const struct sl_smtp_server *s)
{
	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	if (s->verdict != SL_SMTP_EV_NONE)
		return SL_SMTP_WAIT_VERDICT;
	if (s->state == SMTP_ST_DATA || s->state == SMTP_ST_BDAT || s->state == SMTP_ST_SKIP ||
	    s->txn.has_bdat)
		return SL_SMTP_WAIT_BODY;
	if (s->is_after_rset)
		return SL_SMTP_WAIT_RSET;
	if (s->txn.is_active)
		return SL_SMTP_WAIT_RCPT;
	if (!s->has_helo)
		return SL_SMTP_WAIT_HELO;
	return SL_SMTP_WAIT_MAIL;
}

void
sl_smtp_server_timeout(struct sl_smtp_server *s, struct sl_buf *out)
{
	char line[SL_SMTP_MAX_CMD_LINE];

	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	if (s->is_closing)
		return;
	snprintf(line, sizeof(line), "%s Error: timeout exceeded", s->conf.hostname);
	smtp_line(s, out, 421, ' ', "4.4.2", line, s->close_reply);
	s->is_closing = true;
	s->verdict = SL_SMTP_EV_NONE;
}

void
sl_smtp_server_shutdown(struct sl_smtp_server *s, struct sl_buf *out)
{
	char line[SL_SMTP_MAX_CMD_LINE];

	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	if (s->is_closing)
		return;
	snprintf(line, sizeof(line), "%s Service shutting down", s->conf.hostname);
	smtp_line(s, out, 421, ' ', "4.3.2", line, s->close_reply);
	s->is_closing = true;
	s->verdict = SL_SMTP_EV_NONE;
}

bool
sl_smtp_server_is_closing(const struct sl_smtp_server *s)
{
	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	return s->is_closing;
}

const char *
sl_smtp_server_helo(const struct sl_smtp_server *s)
{
	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	return s->helo;
}

bool
sl_smtp_server_is_esmtp(const struct sl_smtp_server *s)
{
	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	return s->is_esmtp;
}

unsigned
sl_smtp_server_msg_cnt(const struct sl_smtp_server *s)
{
	SL_CHECK_OBJ(s, SMTP_SERVER_MAGIC);
	return s->msg_cnt;
}
