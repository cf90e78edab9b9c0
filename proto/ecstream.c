/*
 * proto/ecstream.c - the ECStream v1 codec (see ecstream.h and sluice-ecstream(7)).
 *
 * Frame headers and envelopes are decoded in place: the envelope's strings
 * point into the caller's buffer, and only the recipient and context arrays
 * are allocated (growing by doubling, bounded by the envelope length, which
 * the header check bounds by SL_ECS_MAX_ENVELOPE).  The content is never
 * copied; it is only scanned for bare CR and LF, piece by piece, with the
 * one octet of look-behind a split CRLF needs carried in the caller's state.
 * Reply lines are parsed one at a time from the caller's input.
 *
 * Threads: any; no globals, no I/O, no clock.
 * Untrusted input: frame headers, envelopes and content on the server (from
 * the client), reply lines on the client (from the server).  Every read is
 * checked against the length given; every copy out against its destination.
 * Ownership: a decoded envelope borrows the caller's envelope octets and owns
 * its two arrays (sl_ecs_env_free); frame_begin only appends to the caller's
 * buffer.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "proto/ecstream.h"

#define ECS_ITEM_HDR_LEN 3    /* tag, 16-bit length */
#define ECS_MAX_REPLY    1000 /* octets of one reply line, its CR LF included */

/* sl_ecs_content_clean's *state. */
enum ecs_clean {
	ECS_CLEAN_LINE = 0, /* the last octet was not a CR */
	ECS_CLEAN_CR,       /* the last octet was a CR: the next must be LF */
	ECS_CLEAN_DIRTY,    /* a bare CR or LF was seen; it stays so */
};

/* Say why in why[why_len] (truncated, NUL-terminated when why_len > 0); -1. */
static int __attribute__((format(printf, 3, 4)))
ecs_why(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why_len > 0) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static uint32_t
ecs_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
ecs_get64(const uint8_t *p)
{
	return (uint64_t)ecs_get32(p) << 32 | ecs_get32(p + 4);
}

static void
ecs_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int
sl_ecs_hdr_decode(const uint8_t *p, struct sl_ecs_hdr *out, char *why, size_t why_len)
{
	struct sl_ecs_hdr h;

	if (memcmp(p, "ECSM", 4) == 0)
		h.kind = SL_ECS_MESSAGE;
	else if (memcmp(p, "ECSQ", 4) == 0)
		h.kind = SL_ECS_QUIT;
	else /* in hex: the reply line must not carry what the peer sent */
		return ecs_why(why, why_len, "bad frame magic %02x%02x%02x%02x", p[0], p[1], p[2],
			       p[3]);
	h.env_len = ecs_get32(p + 4);
	h.content_len = ecs_get64(p + 8);
	if (h.kind == SL_ECS_QUIT && (h.env_len != 0 || h.content_len != 0))
		return ecs_why(why, why_len, "quit frame with nonzero lengths");
	if (h.env_len > SL_ECS_MAX_ENVELOPE)
		return ecs_why(why, why_len, "envelope of %" PRIu32 " octets over the limit of %u",
			       h.env_len, SL_ECS_MAX_ENVELOPE);
	*out = h;
	return 0;
}

void
sl_ecs_hdr_encode(uint8_t *p, enum sl_ecs_kind kind, uint32_t env_len, uint64_t content_len)
{
	memcpy(p, kind == SL_ECS_QUIT ? "ECSQ" : "ECSM", 4);
	ecs_put32(p + 4, env_len);
	ecs_put32(p + 8, (uint32_t)(content_len >> 32));
	ecs_put32(p + 12, (uint32_t)content_len);
}

/* Make *arr (*cap slots) hold at least `need` slots, doubling. */
static void
ecs_reserve(struct sl_ecs_str **arr, size_t need, size_t *cap)
{
	if (need <= *cap)
		return;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 8;
	*arr = sl_reallocarray(*arr, *cap, sizeof(**arr));
}

int
sl_ecs_env_decode(const uint8_t *p, size_t len, struct sl_ecs_env *out, char *why, size_t why_len)
{
	size_t off = 0, key_off = 0, rcpt_cap = 0, ctx_cap = 0;
	bool has_sender = false, has_binding = false, wants_value = false;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > SL_ECS_MAX_ENVELOPE) {
		ecs_why(why, why_len, "envelope of %zu octets over the limit of %u", len,
			SL_ECS_MAX_ENVELOPE);
		goto fail_malformed;
	}
	while (off < len) {
		struct sl_ecs_str v;
		uint8_t tag;

		if (len - off < ECS_ITEM_HDR_LEN) {
			ecs_why(why, why_len, "%zu stray octets at the end of the envelope",
				len - off);
			goto fail_malformed;
		}
		tag = p[off];
		v.len = (size_t)p[off + 1] << 8 | p[off + 2];
		v.p = (const char *)p + off + ECS_ITEM_HDR_LEN;
		if (v.len > len - off - ECS_ITEM_HDR_LEN) {
			ecs_why(why, why_len, "envelope item at offset %zu overruns the envelope",
				off);
			goto fail_malformed;
		}
		if (memchr(v.p, '\0', v.len) != NULL) {
			ecs_why(why, why_len, "NUL in the envelope item at offset %zu", off);
			goto fail_malformed;
		}
		if (wants_value && tag != 'V') {
			ecs_why(why, why_len, "'K' at offset %zu not followed by 'V'", key_off);
			goto fail_malformed;
		}
		switch (tag) {
		case 'F':
			if (has_sender) {
				ecs_why(why, why_len, "second 'F' at offset %zu", off);
				goto fail_malformed;
			}
			has_sender = true;
			out->sender = v;
			break;
		case 'R':
			ecs_reserve(&out->rcpts, out->rcpt_cnt + 1, &rcpt_cap);
			out->rcpts[out->rcpt_cnt++] = v;
			break;
		case 'B':
			if (has_binding) {
				ecs_why(why, why_len, "second 'B' at offset %zu", off);
				goto fail_malformed;
			}
			has_binding = true;
			out->binding = v;
			break;
		case 'K':
			/* Both slots of the pair now: the 'V' only fills in. */
			ecs_reserve(&out->ctx, 2 * out->ctx_cnt + 2, &ctx_cap);
			out->ctx[2 * out->ctx_cnt] = v;
			key_off = off;
			wants_value = true;
			break;
		case 'V':
			if (!wants_value) {
				ecs_why(why, why_len, "'V' at offset %zu without 'K'", off);
				goto fail_malformed;
			}
			out->ctx[2 * out->ctx_cnt + 1] = v;
			out->ctx_cnt++;
			wants_value = false;
			break;
		default:
			ecs_why(why, why_len, "unknown envelope tag 0x%02x at offset %zu", tag,
				off);
			goto fail_malformed;
		}
		off += ECS_ITEM_HDR_LEN + v.len;
	}
	if (wants_value)
		ecs_why(why, why_len, "'K' at offset %zu not followed by 'V'", key_off);
	else if (!has_sender)
		ecs_why(why, why_len, "no 'F' (sender) in the envelope");
	else if (out->rcpt_cnt == 0)
		ecs_why(why, why_len, "no 'R' (recipient) in the envelope");
	else
		rc = 0;
fail_malformed:
	return rc;
}

void
sl_ecs_env_free(struct sl_ecs_env *env)
{
	if (env == NULL)
		return;
	sl_free(env->rcpts);
	sl_free(env->ctx);
	memset(env, 0, sizeof(*env));
}

/* Count item `s` into *env_len; false when it or the envelope would be too long. */
static bool
ecs_item_fits(const char *s, size_t *env_len)
{
	size_t n;

	SL_ASSERT(s != NULL);
	n = strnlen(s, SL_ECS_MAX_ITEM + 1);
	if (n > SL_ECS_MAX_ITEM || SL_ECS_MAX_ENVELOPE - *env_len < ECS_ITEM_HDR_LEN + n)
		return false;
	*env_len += ECS_ITEM_HDR_LEN + n;
	return true;
}

/* Write item `s` (already counted by ecs_item_fits) at w; the octet after it. */
static uint8_t *
ecs_item_put(uint8_t *w, char tag, const char *s)
{
	size_t n = strlen(s);

	w[0] = (uint8_t)tag;
	w[1] = (uint8_t)(n >> 8);
	w[2] = (uint8_t)n;
	memcpy(w + ECS_ITEM_HDR_LEN, s, n);
	return w + ECS_ITEM_HDR_LEN + n;
}

int
sl_ecs_frame_begin(struct sl_buf *out, const char *sender, const char *const *rcpts,
		   size_t rcpt_cnt, const char *binding, const char *const *ctx, size_t ctx_cnt,
		   uint64_t content_len)
{
	size_t env_len = 0;
	bool fits = rcpt_cnt > 0 && ecs_item_fits(sender, &env_len);
	uint8_t *start, *w;

	/* Measure everything first: nothing is appended unless it all fits. */
	for (size_t i = 0; fits && i < rcpt_cnt; i++)
		fits = ecs_item_fits(rcpts[i], &env_len);
	if (fits && binding != NULL)
		fits = ecs_item_fits(binding, &env_len);
	for (size_t i = 0; fits && i < ctx_cnt; i++)
		fits = ecs_item_fits(ctx[2 * i], &env_len) &&
		       ecs_item_fits(ctx[2 * i + 1], &env_len);
	if (!fits)
		return -1;

	start = (uint8_t *)sl_buf_reserve(out, SL_ECS_HDR_LEN + env_len);
	sl_ecs_hdr_encode(start, SL_ECS_MESSAGE, (uint32_t)env_len, content_len);
	w = ecs_item_put(start + SL_ECS_HDR_LEN, 'F', sender);
	for (size_t i = 0; i < rcpt_cnt; i++)
		w = ecs_item_put(w, 'R', rcpts[i]);
	if (binding != NULL)
		w = ecs_item_put(w, 'B', binding);
	for (size_t i = 0; i < ctx_cnt; i++) {
		w = ecs_item_put(w, 'K', ctx[2 * i]);
		w = ecs_item_put(w, 'V', ctx[2 * i + 1]);
	}
	SL_ASSERT((size_t)(w - start) == SL_ECS_HDR_LEN + env_len);
	out->len += SL_ECS_HDR_LEN + env_len;
	return 0;
}

/*
 * Clean content is lines of anything but CR and LF, each ended by CR LF.
 * Rather than a state machine per octet, find each LF with memchr and check
 * that the octet before it is the only CR since the last LF; a CR at the
 * very end of a piece is left to the next one through *state.
 */
bool
sl_ecs_content_clean(const char *p, size_t len, unsigned *state, bool is_last)
{
	const char *end = len > 0 ? p + len : p; /* p may be NULL when len is 0 */
	unsigned st = *state;

	while (st != ECS_CLEAN_DIRTY && p < end) {
		const char *lf, *cr;

		if (st == ECS_CLEAN_CR) {
			st = *p++ == '\n' ? ECS_CLEAN_LINE : ECS_CLEAN_DIRTY;
			continue;
		}
		lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL) {
			cr = memchr(p, '\r', (size_t)(end - p));
			if (cr != NULL)
				st = cr == end - 1 ? ECS_CLEAN_CR : ECS_CLEAN_DIRTY;
			break;
		}
		if (lf == p || lf[-1] != '\r' || memchr(p, '\r', (size_t)(lf - 1 - p)) != NULL)
			st = ECS_CLEAN_DIRTY;
		p = lf + 1;
	}
	if (is_last && st == ECS_CLEAN_CR)
		st = ECS_CLEAN_DIRTY;
	*state = st;
	return st != ECS_CLEAN_DIRTY;
}

/*
 * The length of an RFC 3463 code ("class.subject.detail", 1-3 digits after
 * the class) at the start of t[len], followed by a space or the end, whose
 * class is the reply's first digit (RFC 2034 §4); 0 when there is none.
 */
static size_t
ecs_esc_len(const char *t, size_t len, unsigned code)
{
	size_t i = 2;

	if (len < 5 || t[0] != (char)('0' + code / 100) || t[1] != '.')
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		while (i < len && d < 4 && t[i] >= '0' && t[i] <= '9') {
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

long
sl_ecs_reply_parse(const char *p, size_t len, struct sl_ecs_reply *out, char *why, size_t why_len)
{
	/* An empty buffer may be NULL (an sl_buf never written to). */
	const char *lf =
		len > 0 ? memchr(p, '\n', len < ECS_MAX_REPLY ? len : ECS_MAX_REPLY) : NULL;
	const char *t;
	size_t n, line_len, tlen, esc;
	unsigned code;

	if (lf == NULL) {
		if (len >= ECS_MAX_REPLY)
			return ecs_why(why, why_len, "reply line over %d octets", ECS_MAX_REPLY);
		return 0;
	}
	n = (size_t)(lf - p) + 1;
	line_len = n - 1;
	if (line_len > 0 && p[line_len - 1] == '\r')
		line_len--;
	for (size_t i = 0; i < line_len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return ecs_why(why, why_len, "control character 0x%02x in a reply line",
				       (unsigned char)p[i]);
	if (line_len < 3 || p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' || p[2] < '0' ||
	    p[2] > '9')
		return ecs_why(why, why_len, "reply line without a reply code");
	code = (unsigned)(p[0] - '0') * 100 + (unsigned)(p[1] - '0') * 10 + (unsigned)(p[2] - '0');
	if (code != 221 && code != 250 && (code < 400 || code > 599))
		return ecs_why(why, why_len, "unexpected reply code %u", code);
	if (line_len > 3 && p[3] != ' ')
		return ecs_why(why, why_len, "no space after the reply code");
	t = p + (line_len > 3 ? 4 : 3);
	tlen = line_len > 3 ? line_len - 4 : 0;

	memset(out, 0, sizeof(*out));
	out->code = code;
	if (code == 250) {
		if (tlen == 0 || tlen >= sizeof(out->qid) || memchr(t, ' ', tlen) != NULL)
			return ecs_why(why, why_len, "250 without one queue id of 1-%zu octets",
				       sizeof(out->qid) - 1);
		memcpy(out->qid, t, tlen);
		return (long)n;
	}
	esc = ecs_esc_len(t, tlen, code);
	if (esc > 0) {
		memcpy(out->enhanced, t, esc);
		t += esc;
		tlen -= esc;
		if (tlen > 0) { /* the space after the code */
			t++;
			tlen--;
		}
	}
	/* A line may hold more text than out->text: keep its start. */
	if (tlen >= sizeof(out->text))
		tlen = sizeof(out->text) - 1;
	memcpy(out->text, t, tlen);
	return (long)n;
}
