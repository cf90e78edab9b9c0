/*
 * test/fuzz/fuzz_ecstream.c - libFuzzer harness for the ECStream v1 codec.
 *
 * Each input goes whole to every decoder, and each checks its contract:
 *   - sl_ecs_hdr_decode (on the first 16 octets): a header it accepts is
 *     one of the two magics, a quit has zero lengths, E is within its limit,
 *     and encoding it again gives the same 16 octets;
 *   - sl_ecs_env_decode: an accepted envelope has one sender, recipients,
 *     strings inside the input without NUL; encoded again with
 *     sl_ecs_frame_begin and decoded, it gives the same strings;
 *   - sl_ecs_reply_parse, line after line: a line it takes ends in LF, is
 *     at most 1000 octets and has the fields of its code (a 250 a queue id,
 *     others an RFC 3463 code of their class or none, control-free text);
 *     0 only while no LF is in sight and fewer than 1000 octets wait;
 *   - sl_ecs_content_clean, in pieces cut where a seed from the input says:
 *     the same verdict as a one-octet-at-a-time reference.
 * Every refusal comes with a one-line, printable reason.
 * Build and run with test/fuzz/run-ecstream.sh.
 *
 * Threads: one (libFuzzer's).  Parses untrusted input: that is the point.
 * Ownership: each run frees its envelopes and buffers.
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
#include "proto/ecstream.h"

#define FUZZ_MAX_REPLY 1000 /* octets of a reply line, LF included */
#define FUZZ_MAX_CUTS  16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void sl__assert_fail(const char *expr, const char *file, int line, const char *func);

/*
 * The harness links only the codec's sources; the daemon's real handler
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

static bool
fuzz_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* A reason: NUL-terminated inside its buffer, not empty, one printable line. */
static void
fuzz_check_why(const char *why, size_t why_len)
{
	const char *nul = memchr(why, '\0', why_len);

	fuzz_check(nul != NULL && nul > why, "reason empty or not terminated");
	fuzz_check(fuzz_printable(why, (size_t)(nul - why)), "reason not printable");
}

static void
fuzz_hdr(const uint8_t *data, size_t size)
{
	struct sl_ecs_hdr h;
	uint8_t again[SL_ECS_HDR_LEN];
	char why[128];
	bool is_good;

	if (size < SL_ECS_HDR_LEN)
		return;
	/* The header rules, said again independently. */
	is_good = (memcmp(data, "ECSM", 4) == 0 &&
		   ((uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 |
		    data[7]) <= SL_ECS_MAX_ENVELOPE) ||
		  (memcmp(data, "ECSQ", 4) == 0 &&
		   memcmp(data + 4, "\0\0\0\0\0\0\0\0\0\0\0\0", 12) == 0);
	memset(why, 'x', sizeof(why));
	if (sl_ecs_hdr_decode(data, &h, why, sizeof(why)) != 0) {
		fuzz_check(!is_good, "a good header refused");
		fuzz_check_why(why, sizeof(why));
		return;
	}
	fuzz_check(is_good, "a bad header accepted");
	fuzz_check(h.kind == SL_ECS_MESSAGE || h.kind == SL_ECS_QUIT, "header kind");
	fuzz_check(h.env_len <= SL_ECS_MAX_ENVELOPE, "envelope over the limit");
	fuzz_check(h.kind == SL_ECS_MESSAGE || (h.env_len == 0 && h.content_len == 0),
		   "quit with lengths");
	sl_ecs_hdr_encode(again, h.kind, h.env_len, h.content_len);
	fuzz_check(memcmp(again, data, SL_ECS_HDR_LEN) == 0, "header encodes differently");
}

static bool
fuzz_str_inside(struct sl_ecs_str s, const uint8_t *data, size_t size)
{
	const char *lo = (const char *)data;

	return s.p != NULL && s.p >= lo && s.len <= size && s.p - lo <= (ptrdiff_t)(size - s.len) &&
	       memchr(s.p, '\0', s.len) == NULL;
}

static bool
fuzz_str_eq(struct sl_ecs_str a, struct sl_ecs_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Encode `env` again and decode the result: the same strings must come back. */
static void
fuzz_env_again(const struct sl_ecs_env *env)
{
	size_t cnt = 1 + env->rcpt_cnt + 1 + 2 * env->ctx_cnt, k = 0;
	char **s = sl_calloc(cnt, sizeof(*s));
	struct sl_buf b = SL_BUF_INIT;
	struct sl_ecs_env again;
	struct sl_ecs_hdr h;
	char why[128];

	s[k++] = sl_strndup(env->sender.p, env->sender.len);
	for (size_t i = 0; i < env->rcpt_cnt; i++)
		s[k++] = sl_strndup(env->rcpts[i].p, env->rcpts[i].len);
	s[k++] = env->binding.p ? sl_strndup(env->binding.p, env->binding.len) : NULL;
	for (size_t i = 0; i < 2 * env->ctx_cnt; i++)
		s[k++] = sl_strndup(env->ctx[i].p, env->ctx[i].len);
	/* The same items in canonical order: never longer than what was decoded. */
	fuzz_check(sl_ecs_frame_begin(&b, s[0], (const char *const *)s + 1, env->rcpt_cnt,
				      s[1 + env->rcpt_cnt],
				      (const char *const *)s + 2 + env->rcpt_cnt, env->ctx_cnt,
				      42) == 0,
		   "a decoded envelope does not encode");
	fuzz_check(sl_ecs_hdr_decode((const uint8_t *)b.data, &h, why, sizeof(why)) == 0 &&
			   h.kind == SL_ECS_MESSAGE && h.content_len == 42 &&
			   h.env_len == b.len - SL_ECS_HDR_LEN,
		   "encoded header");
	fuzz_check(sl_ecs_env_decode((const uint8_t *)b.data + SL_ECS_HDR_LEN, h.env_len, &again,
				     why, sizeof(why)) == 0,
		   "an encoded envelope does not decode");
	fuzz_check(fuzz_str_eq(again.sender, env->sender), "sender changed");
	fuzz_check(again.rcpt_cnt == env->rcpt_cnt, "recipient count changed");
	for (size_t i = 0; i < env->rcpt_cnt; i++)
		fuzz_check(fuzz_str_eq(again.rcpts[i], env->rcpts[i]), "recipient changed");
	fuzz_check((again.binding.p == NULL) == (env->binding.p == NULL) &&
			   fuzz_str_eq(again.binding, env->binding),
		   "binding changed");
	fuzz_check(again.ctx_cnt == env->ctx_cnt, "context count changed");
	for (size_t i = 0; i < 2 * env->ctx_cnt; i++)
		fuzz_check(fuzz_str_eq(again.ctx[i], env->ctx[i]), "context changed");
	sl_ecs_env_free(&again);
	sl_buf_free(&b);
	for (size_t i = 0; i < cnt; i++)
		sl_free(s[i]);
	sl_free(s);
}

static void
fuzz_env(const uint8_t *data, size_t size)
{
	struct sl_ecs_env env;
	char why[128];

	memset(why, 'x', sizeof(why));
	if (sl_ecs_env_decode(data, size, &env, why, sizeof(why)) != 0) {
		fuzz_check_why(why, sizeof(why));
		sl_ecs_env_free(&env);
		return;
	}
	fuzz_check(fuzz_str_inside(env.sender, data, size), "sender");
	fuzz_check(env.rcpt_cnt >= 1 && env.rcpts != NULL, "no recipient");
	for (size_t i = 0; i < env.rcpt_cnt; i++)
		fuzz_check(fuzz_str_inside(env.rcpts[i], data, size), "recipient");
	fuzz_check(env.binding.p == NULL ? env.binding.len == 0
					 : fuzz_str_inside(env.binding, data, size),
		   "binding");
	fuzz_check(env.ctx_cnt == 0 || env.ctx != NULL, "context array");
	for (size_t i = 0; i < 2 * env.ctx_cnt; i++)
		fuzz_check(fuzz_str_inside(env.ctx[i], data, size), "context");
	fuzz_env_again(&env);
	sl_ecs_env_free(&env);
}

/* "c.s.d" with c the class and 1-3 digits in s and d (RFC 3463 §2), or "". */
static bool
fuzz_enhanced_ok(const char *e, unsigned code)
{
	size_t i = 2;

	if (e[0] == '\0')
		return true;
	if (e[0] != (char)('0' + code / 100) || e[1] != '.')
		return false;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		while (e[i] >= '0' && e[i] <= '9') {
			i++;
			d++;
		}
		if (d < 1 || d > 3 || e[i] != (part == 0 ? '.' : '\0'))
			return false;
		i++;
	}
	return true;
}

static void
fuzz_reply(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t off = 0;

	while (off < size) {
		struct sl_ecs_reply r;
		char why[128];
		size_t rest = size - off;
		long n;

		memset(&r, 'x', sizeof(r));
		memset(why, 'x', sizeof(why));
		n = sl_ecs_reply_parse(p + off, rest, &r, why, sizeof(why));
		if (n < 0) {
			fuzz_check(n == -1, "reply result");
			fuzz_check_why(why, sizeof(why));
			break;
		}
		if (n == 0) {
			fuzz_check(rest < FUZZ_MAX_REPLY && memchr(p + off, '\n', rest) == NULL,
				   "a complete reply line left unread");
			break;
		}
		fuzz_check((size_t)n <= rest && n <= FUZZ_MAX_REPLY, "reply line length");
		fuzz_check(p[off + (size_t)n - 1] == '\n' &&
				   memchr(p + off, '\n', (size_t)n - 1) == NULL,
			   "reply line not one line");
		fuzz_check(r.code == 221 || r.code == 250 || (r.code >= 400 && r.code <= 599),
			   "reply code");
		fuzz_check(memcmp(p + off,
				  (char[3]){ (char)('0' + r.code / 100),
					     (char)('0' + r.code / 10 % 10),
					     (char)('0' + r.code % 10) },
				  3) == 0,
			   "reply code is not the line's");
		fuzz_check(memchr(r.qid, '\0', sizeof(r.qid)) != NULL &&
				   memchr(r.enhanced, '\0', sizeof(r.enhanced)) != NULL &&
				   memchr(r.text, '\0', sizeof(r.text)) != NULL,
			   "reply fields not terminated");
		if (r.code == 250) {
			fuzz_check(r.qid[0] != '\0' && strchr(r.qid, ' ') == NULL &&
					   fuzz_printable(r.qid, strlen(r.qid)),
				   "queue id");
			fuzz_check(r.enhanced[0] == '\0' && r.text[0] == '\0', "250 fields");
		} else {
			fuzz_check(r.qid[0] == '\0', "queue id outside a 250");
			fuzz_check(fuzz_enhanced_ok(r.enhanced, r.code), "enhanced code");
			fuzz_check(fuzz_printable(r.text, strlen(r.text)), "reply text");
		}
		off += (size_t)n;
	}
}

/* One octet at a time, as the header says it: every CR before a LF, every LF after a CR. */
static bool
ref_clean(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			return false;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return false;
	}
	return true;
}

static void
fuzz_content(const uint8_t *data, size_t size)
{
	bool want = ref_clean(data, size), is_clean = true;
	uint32_t seed = 0x9e3779b9u ^ (uint32_t)size;
	size_t cut_cnt, from = 0;
	unsigned st = 0;

	for (size_t i = 0; i < size && i < 4; i++)
		seed = seed * 31 + data[i];
	if (seed == 0)
		seed = 1;
	fuzz_check(sl_ecs_content_clean((const char *)data, size, &st, true) == want,
		   "content verdict, whole");
	/* Pieces, cut at random (empty ones too); each in its own exact-size copy. */
	st = 0;
	cut_cnt = fuzz_rand(&seed) % (FUZZ_MAX_CUTS + 1);
	for (size_t i = 0; i <= cut_cnt; i++) {
		size_t rest = size - from;
		size_t n = i == cut_cnt ? rest : (rest ? fuzz_rand(&seed) % (rest + 1) : 0);
		char *piece = sl_malloc(n);
		bool r;

		if (n > 0)
			memcpy(piece, data + from, n);
		r = sl_ecs_content_clean(piece, n, &st, i == cut_cnt);
		fuzz_check(is_clean || !r, "dirty content became clean");
		is_clean = r;
		sl_free(piece);
		from += n;
	}
	fuzz_check(is_clean == want, "content verdict, in pieces");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_hdr(data, size);
	fuzz_env(data, size);
	if (size >= SL_ECS_HDR_LEN)
		fuzz_env(data + SL_ECS_HDR_LEN, size - SL_ECS_HDR_LEN); /* after a header */
	fuzz_reply(data, size);
	fuzz_content(data, size);
	return 0;
}
