/*
 * test/unit/test_ecstream.c - the ECStream v1 codec (proto/ecstream.c):
 * frame headers (both magics, bad magic, the limits), envelopes encoded and
 * decoded again (many recipients, binding, context, the null sender, the
 * exact octets, the example of sluice-ecstream(7)), every kind of malformed
 * envelope with its reason, the bare CR/LF check across every split of its
 * input, and reply lines (complete, incomplete, malformed, overlong).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/alloc.h"
#include "proto/ecstream.h"

/* A string literal and its length, NULs inside included. */
#define RAW(s) s, sizeof(s) - 1

static bool
str_is(struct sl_ecs_str s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void
assert_why(const char *why, const char *want)
{
	if (strstr(why, want) == NULL)
		fail_msg("why \"%s\" does not say \"%s\"", why, want);
}

static void
test_hdr(void **state)
{
	static const struct {
		const char *p; /* SL_ECS_HDR_LEN octets */
		int rc;
		enum sl_ecs_kind kind;
		uint32_t env_len;
		uint64_t content_len;
		const char *why; /* rc -1: part of the reason */
	} cases[] = {
		{ "ECSM\0\0\0\x10\0\0\0\0\0\0\x01\x02", 0, SL_ECS_MESSAGE, 16, 258, NULL },
		{ "ECSM\0\x10\0\0\xff\xff\xff\xff\xff\xff\xff\xff", 0, SL_ECS_MESSAGE,
		  SL_ECS_MAX_ENVELOPE, UINT64_MAX, NULL },
		{ "ECSM\0\0\0\0\0\0\0\0\0\0\0\0", 0, SL_ECS_MESSAGE, 0, 0, NULL },
		{ "ECSQ\0\0\0\0\0\0\0\0\0\0\0\0", 0, SL_ECS_QUIT, 0, 0, NULL },
		{ "ECSQ\0\0\0\x01\0\0\0\0\0\0\0\0", -1, 0, 0, 0,
		  "quit frame with nonzero lengths" },
		{ "ECSQ\0\0\0\0\x80\0\0\0\0\0\0\0", -1, 0, 0, 0,
		  "quit frame with nonzero lengths" },
		{ "ECSM\0\x10\0\x01\0\0\0\0\0\0\0\0", -1, 0, 0, 0,
		  "envelope of 1048577 octets over the limit of 1048576" },
		{ "ECSM\xff\xff\xff\xff\0\0\0\0\0\0\0\0", -1, 0, 0, 0, "over the limit" },
		{ "ECSX\0\0\0\0\0\0\0\0\0\0\0\0", -1, 0, 0, 0, "bad frame magic 45435358" },
		{ "ecsm\0\0\0\0\0\0\0\0\0\0\0\0", -1, 0, 0, 0, "bad frame magic 6563736d" },
		{ "EHLO x.example\r\n", -1, 0, 0, 0, "bad frame magic 45484c4f" },
		{ "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", -1, 0, 0, 0, "bad frame magic 00000000" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sl_ecs_hdr h = { SL_ECS_QUIT, 7, 7 };
		char why[128] = "";
		int rc = sl_ecs_hdr_decode((const uint8_t *)cases[i].p, &h, why, sizeof(why));

		print_message("case %zu\n", i);
		assert_int_equal(rc, cases[i].rc);
		if (rc < 0) {
			assert_why(why, cases[i].why);
			continue;
		}
		assert_int_equal(h.kind, cases[i].kind);
		assert_int_equal(h.env_len, cases[i].env_len);
		assert_true(h.content_len == cases[i].content_len);
	}
}

static void
test_hdr_encode(void **state)
{
	static const struct {
		enum sl_ecs_kind kind;
		uint32_t env_len;
		uint64_t content_len;
	} cases[] = {
		{ SL_ECS_MESSAGE, 0, 0 },
		{ SL_ECS_MESSAGE, 1, 1 },
		{ SL_ECS_MESSAGE, 0x000f0304, 0x05060708090a0b0cull },
		{ SL_ECS_MESSAGE, SL_ECS_MAX_ENVELOPE, UINT64_MAX },
		{ SL_ECS_QUIT, 0, 0 },
	};
	uint8_t p[SL_ECS_HDR_LEN];

	sl_ecs_hdr_encode(p, SL_ECS_MESSAGE, 0x01020304, 0x05060708090a0b0cull);
	assert_memory_equal(p, "ECSM\1\2\3\4\5\6\7\x08\x09\x0a\x0b\x0c", SL_ECS_HDR_LEN);
	sl_ecs_hdr_encode(p, SL_ECS_QUIT, 0, 0);
	assert_memory_equal(p, "ECSQ\0\0\0\0\0\0\0\0\0\0\0\0", SL_ECS_HDR_LEN);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sl_ecs_hdr h;
		char why[128];

		sl_ecs_hdr_encode(p, cases[i].kind, cases[i].env_len, cases[i].content_len);
		assert_int_equal(sl_ecs_hdr_decode(p, &h, why, sizeof(why)), 0);
		assert_int_equal(h.kind, cases[i].kind);
		assert_int_equal(h.env_len, cases[i].env_len);
		assert_true(h.content_len == cases[i].content_len);
	}
}

/* The octets of a small frame, as sluice-ecstream(7) shows them. */
static void
test_frame_octets(void **state)
{
	static const char want[] = "ECSM\0\0\0\x29\0\0\0\0\0\0\0\x0c"
				   "F\0\x0b"
				   "a@x.example"
				   "R\0\x0b"
				   "b@y.example"
				   "B\0\x02"
				   "b1"
				   "K\0\x01"
				   "k"
				   "V\0\x01"
				   "v";
	const char *rcpts[] = { "b@y.example" };
	const char *ctx[] = { "k", "v" };
	struct sl_buf b = SL_BUF_INIT;

	sl_buf_puts(&b, "before");
	assert_int_equal(sl_ecs_frame_begin(&b, "a@x.example", rcpts, 1, "b1", ctx, 1, 12), 0);
	assert_int_equal(b.len, 6 + sizeof(want) - 1);
	assert_memory_equal(b.data, "before", 6);
	assert_memory_equal(b.data + 6, want, sizeof(want) - 1);
	sl_buf_free(&b);
}

/* The frame of sluice-ecstream(7) EXAMPLES, octet for octet, and its malformed twin. */
static void
test_man_example(void **state)
{
	static const char want[] = "ECSM\0\0\0\x45\0\0\0\0\0\0\0\x6a"
				   "F\0\x0f"
				   "ann@example.com"
				   "R\0\x0f"
				   "bob@example.net"
				   "R\0\x0e"
				   "cy@example.org"
				   "K\0\x08"
				   "campaign"
				   "V\0\x02"
				   "42";
	static const char content[] = "From: ann@example.com\r\n"
				      "To: bob@example.net\r\n"
				      "Subject: hi\r\n"
				      "Date: Thu, 26 Nov 2026 13:45:01 +0000\r\n"
				      "\r\n"
				      "Hello.\r\n";
	const char *rcpts[] = { "bob@example.net", "cy@example.org" };
	const char *ctx[] = { "campaign", "42" };
	struct sl_buf b = SL_BUF_INIT;
	struct sl_ecs_env env;
	unsigned st = 0;
	char why[128] = "";

	assert_int_equal(sizeof(content) - 1, 106);
	assert_int_equal(sl_ecs_frame_begin(&b, "ann@example.com", rcpts, 2, NULL, ctx, 1,
					    sizeof(content) - 1),
			 0);
	assert_int_equal(b.len, sizeof(want) - 1);
	assert_memory_equal(b.data, want, sizeof(want) - 1);
	assert_true(sl_ecs_content_clean(content, sizeof(content) - 1, &st, true));
	sl_buf_append(&b, content, sizeof(content) - 1);
	assert_int_equal(b.len, 191);

	/* With "X" 00 00 after the 'V' item. */
	sl_buf_reset(&b);
	sl_buf_append(&b, want + SL_ECS_HDR_LEN, sizeof(want) - 1 - SL_ECS_HDR_LEN);
	sl_buf_append(&b, "X\0\0", 3);
	assert_int_equal(b.len, 72);
	assert_int_equal(sl_ecs_env_decode((const uint8_t *)b.data, b.len, &env, why, sizeof(why)),
			 -1);
	assert_string_equal(why, "unknown envelope tag 0x58 at offset 69");
	sl_ecs_env_free(&env);
	sl_buf_free(&b);
}

/* Encode, then decode the header and envelope, and compare. */
static void
roundtrip(const char *sender, const char *const *rcpts, size_t rcpt_cnt, const char *binding,
	  const char *const *ctx, size_t ctx_cnt, uint64_t content_len)
{
	struct sl_buf b = SL_BUF_INIT;
	struct sl_ecs_hdr h;
	struct sl_ecs_env env;
	char why[128] = "";

	assert_int_equal(
		sl_ecs_frame_begin(&b, sender, rcpts, rcpt_cnt, binding, ctx, ctx_cnt, content_len),
		0);
	assert_true(b.len >= SL_ECS_HDR_LEN);
	assert_int_equal(sl_ecs_hdr_decode((const uint8_t *)b.data, &h, why, sizeof(why)), 0);
	assert_int_equal(h.kind, SL_ECS_MESSAGE);
	assert_int_equal(h.env_len, b.len - SL_ECS_HDR_LEN);
	assert_true(h.content_len == content_len);
	if (sl_ecs_env_decode((const uint8_t *)b.data + SL_ECS_HDR_LEN, h.env_len, &env, why,
			      sizeof(why)) != 0)
		fail_msg("decode: %s", why);
	assert_true(str_is(env.sender, sender));
	assert_int_equal(env.rcpt_cnt, rcpt_cnt);
	for (size_t i = 0; i < rcpt_cnt; i++)
		assert_true(str_is(env.rcpts[i], rcpts[i]));
	if (binding == NULL) {
		assert_null(env.binding.p);
		assert_int_equal(env.binding.len, 0);
	} else {
		assert_non_null(env.binding.p);
		assert_true(str_is(env.binding, binding));
	}
	assert_int_equal(env.ctx_cnt, ctx_cnt);
	for (size_t i = 0; i < 2 * ctx_cnt; i++)
		assert_true(str_is(env.ctx[i], ctx[i]));
	sl_ecs_env_free(&env);
	assert_null(env.rcpts);
	assert_null(env.ctx);
	sl_buf_free(&b);
}

static void
test_roundtrip(void **state)
{
	const char *one[] = { "b@y.example" };
	const char *ctx[] = { "binding", "b2", "client", "ACME Inc.", "empty", "", "", "no name" };
	char names[1000][24];
	const char *many[1000];
	char keys[300][16], vals[300][16];
	const char *many_ctx[600];

	for (size_t i = 0; i < 1000; i++) {
		snprintf(names[i], sizeof(names[i]), "r%zu@d%zu.example", i, i % 7);
		many[i] = names[i];
	}
	for (size_t i = 0; i < 300; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		snprintf(vals[i], sizeof(vals[i]), "v%zu", i * 31);
		many_ctx[2 * i] = keys[i];
		many_ctx[2 * i + 1] = vals[i];
	}
	roundtrip("a@x.example", one, 1, NULL, NULL, 0, 0);
	roundtrip("", one, 1, NULL, NULL, 0, 100); /* the null sender */
	roundtrip("a@x.example", one, 1, "b1", NULL, 0, 1);
	roundtrip("a@x.example", one, 1, "", NULL, 0, 1); /* an empty 'B' is there */
	roundtrip("a@x.example", one, 1, NULL, ctx, 4, 2);
	roundtrip("\xc3\xa9@x.example", many, 1000, "b1", ctx, 4, UINT64_MAX);
	roundtrip("", many, 1000, NULL, many_ctx, 300, 12345);
	roundtrip("a@x.example", many, 2, "grp", many_ctx, 1, 0);
}

static void
test_encode_limits(void **state)
{
	static char big[SL_ECS_MAX_ITEM + 2];
	static char rest[65500 + 1];
	const char *rcpts[17];
	const char *ctx[] = { "k", big };
	struct sl_buf b = SL_BUF_INIT;
	struct sl_ecs_hdr h;
	struct sl_ecs_env env;
	char why[128];

	sl_buf_puts(&b, "x");
	/* No recipient. */
	assert_int_equal(sl_ecs_frame_begin(&b, "a", rcpts, 0, NULL, NULL, 0, 0), -1);
	assert_int_equal(b.len, 1);

	/* One item over SL_ECS_MAX_ITEM, in each place an item can be. */
	memset(big, 'x', SL_ECS_MAX_ITEM + 1);
	rcpts[0] = "b";
	assert_int_equal(sl_ecs_frame_begin(&b, big, rcpts, 1, NULL, NULL, 0, 0), -1);
	rcpts[0] = big;
	assert_int_equal(sl_ecs_frame_begin(&b, "a", rcpts, 1, NULL, NULL, 0, 0), -1);
	rcpts[0] = "b";
	assert_int_equal(sl_ecs_frame_begin(&b, "a", rcpts, 1, big, NULL, 0, 0), -1);
	assert_int_equal(sl_ecs_frame_begin(&b, "a", rcpts, 1, NULL, ctx, 1, 0), -1);
	assert_int_equal(b.len, 1);

	/* SL_ECS_MAX_ITEM itself is fine. */
	big[SL_ECS_MAX_ITEM] = '\0';
	assert_int_equal(sl_ecs_frame_begin(&b, "a", rcpts, 1, NULL, ctx, 1, 0), 0);
	assert_int_equal(b.len, 1 + SL_ECS_HDR_LEN + 3 + 1 + 3 + 1 + 3 + 1 + 3 + SL_ECS_MAX_ITEM);
	sl_buf_reset(&b);

	/*
	 * An envelope of exactly SL_ECS_MAX_ENVELOPE: 'F' with nothing (3),
	 * 15 'R' of SL_ECS_MAX_ITEM (15 * 65538) and one of 65500.
	 */
	for (size_t i = 0; i < 15; i++)
		rcpts[i] = big;
	memset(rest, 'r', sizeof(rest) - 1);
	rcpts[15] = rest;
	assert_int_equal(3 + 15 * (3 + SL_ECS_MAX_ITEM) + 3 + 65500, SL_ECS_MAX_ENVELOPE);
	assert_int_equal(sl_ecs_frame_begin(&b, "", rcpts, 16, NULL, NULL, 0, 0), 0);
	assert_int_equal(b.len, SL_ECS_HDR_LEN + SL_ECS_MAX_ENVELOPE);
	assert_int_equal(sl_ecs_hdr_decode((const uint8_t *)b.data, &h, why, sizeof(why)), 0);
	assert_int_equal(h.env_len, SL_ECS_MAX_ENVELOPE);
	assert_int_equal(sl_ecs_env_decode((const uint8_t *)b.data + SL_ECS_HDR_LEN, h.env_len,
					   &env, why, sizeof(why)),
			 0);
	assert_int_equal(env.rcpt_cnt, 16);
	assert_int_equal(env.rcpts[15].len, 65500);
	sl_ecs_env_free(&env);

	/* One octet more is refused, and nothing is appended. */
	sl_buf_reset(&b);
	assert_int_equal(sl_ecs_frame_begin(&b, "a", rcpts, 16, NULL, NULL, 0, 0), -1);
	rcpts[16] = "b";
	assert_int_equal(sl_ecs_frame_begin(&b, "", rcpts, 17, NULL, NULL, 0, 0), -1);
	assert_int_equal(b.len, 0);
	sl_buf_free(&b);
}

static void
test_env_decode_ok(void **state)
{
	static const uint8_t rev[] = "R\0\x01"
				     "b"
				     "K\0\0"
				     "V\0\0"
				     "B\0\0"
				     "R\0\x01"
				     "c"
				     "F\0\0";
	struct sl_ecs_env env;
	char why[128] = "";

	/* Any order, empty values, an empty 'B' (present, empty). */
	assert_int_equal(sl_ecs_env_decode(rev, sizeof(rev) - 1, &env, why, sizeof(why)), 0);
	assert_true(str_is(env.sender, ""));
	assert_int_equal(env.rcpt_cnt, 2);
	assert_true(str_is(env.rcpts[0], "b"));
	assert_true(str_is(env.rcpts[1], "c"));
	assert_ptr_equal(env.rcpts[1].p, (const char *)rev + 16); /* in place */
	assert_non_null(env.binding.p);
	assert_int_equal(env.binding.len, 0);
	assert_int_equal(env.ctx_cnt, 1);
	assert_true(str_is(env.ctx[0], ""));
	assert_true(str_is(env.ctx[1], ""));
	sl_ecs_env_free(&env);
	sl_ecs_env_free(NULL);
}

static void
test_env_decode_malformed(void **state)
{
	static const struct {
		const char *p;
		size_t len;
		const char *why;
	} cases[] = {
		{ RAW(""), "no 'F' (sender)" },
		{ RAW("F\0\0"), "no 'R' (recipient)" },
		{ RAW("R\0\x01"
		      "b"),
		  "no 'F' (sender)" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "F\0\x01"
		      "a"),
		  "second 'F' at offset 7" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "B\0\x01"
		      "x"
		      "B\0\x01"
		      "y"),
		  "second 'B' at offset 11" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "K\0\x01"
		      "k"),
		  "'K' at offset 7 not followed by 'V'" },
		{ RAW("F\0\0"
		      "K\0\x01"
		      "k"
		      "R\0\x01"
		      "b"
		      "V\0\0"),
		  "'K' at offset 3 not followed by 'V'" },
		{ RAW("F\0\0"
		      "K\0\x01"
		      "k"
		      "K\0\x01"
		      "j"
		      "V\0\0"),
		  "'K' at offset 3 not followed by 'V'" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "V\0\x01"
		      "v"),
		  "'V' at offset 7 without 'K'" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "K\0\x01"
		      "k"
		      "V\0\0"
		      "V\0\0"),
		  "'V' at offset 14 without 'K'" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "X\0\0"),
		  "unknown envelope tag 0x58 at offset 7" },
		{ RAW("f\0\0"
		      "R\0\x01"
		      "b"),
		  "unknown envelope tag 0x66 at offset 0" },
		{ RAW("\0\0\0"), "unknown envelope tag 0x00 at offset 0" },
		{ RAW("\r\0\0"), "unknown envelope tag 0x0d at offset 0" },
		{ RAW("F\0\x0a"
		      "ab"),
		  "envelope item at offset 0 overruns the envelope" },
		{ RAW("F\0\0"
		      "R\xff\xff"
		      "b"),
		  "envelope item at offset 3 overruns the envelope" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "R"),
		  "1 stray octets at the end of the envelope" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "R\0"),
		  "2 stray octets at the end of the envelope" },
		{ RAW("F"), "1 stray octets" },
		{ RAW("F\0\x03"
		      "a\0b"
		      "R\0\x01"
		      "b"),
		  "NUL in the envelope item at offset 0" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "\0"),
		  "NUL in the envelope item at offset 3" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "B\0\x01"
		      "\0"),
		  "NUL in the envelope item at offset 7" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "K\0\x02"
		      "k\0"
		      "V\0\0"),
		  "NUL in the envelope item at offset 7" },
		{ RAW("F\0\0"
		      "R\0\x01"
		      "b"
		      "K\0\x01"
		      "k"
		      "V\0\x02"
		      "\0v"),
		  "NUL in the envelope item at offset 11" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sl_ecs_env env;
		char why[128] = "";
		int rc;

		print_message("case %zu\n", i);
		rc = sl_ecs_env_decode((const uint8_t *)cases[i].p, cases[i].len, &env, why,
				       sizeof(why));
		assert_int_equal(rc, -1);
		assert_why(why, cases[i].why);
		sl_ecs_env_free(&env); /* also after a failure: nothing leaks */
	}
}

static void
test_env_decode_limits(void **state)
{
	size_t len = SL_ECS_MAX_ENVELOPE + 1;
	uint8_t *p = sl_calloc(1, len);
	struct sl_ecs_env env;
	char why[128] = "";
	size_t off = 0;

	/* Over the limit: refused before it is read. */
	assert_int_equal(sl_ecs_env_decode(p, len, &env, why, sizeof(why)), -1);
	assert_why(why, "envelope of 1048577 octets over the limit of 1048576");
	sl_ecs_env_free(&env);

	/* As many recipients as fit: the arrays grow as far as they must. */
	memcpy(p, "F\0\0", 3);
	for (off = 3; off + 3 <= SL_ECS_MAX_ENVELOPE; off += 3)
		memcpy(p + off, "R\0\0", 3);
	assert_int_equal(sl_ecs_env_decode(p, off, &env, why, sizeof(why)), 0);
	assert_int_equal(env.rcpt_cnt, (off - 3) / 3);
	sl_ecs_env_free(&env);
	for (off = 3; off + 6 + 3 <= SL_ECS_MAX_ENVELOPE; off += 6)
		memcpy(p + off, "K\0\0V\0\0", 6);
	memcpy(p + off, "R\0\0", 3);
	assert_int_equal(sl_ecs_env_decode(p, off + 3, &env, why, sizeof(why)), 0);
	assert_int_equal(env.ctx_cnt, (off - 3) / 6);
	sl_ecs_env_free(&env);

	/* A `why` too small is truncated, never overrun; none at all is fine. */
	assert_int_equal(sl_ecs_env_decode(p, 0, &env, why, 4), -1);
	assert_string_equal(why, "no ");
	assert_int_equal(sl_ecs_env_decode(p, 0, &env, NULL, 0), -1);
	sl_ecs_env_free(&env);
	assert_int_equal(sl_ecs_env_decode(NULL, 0, &env, why, sizeof(why)), -1);
	assert_why(why, "no 'F' (sender)");
	sl_ecs_env_free(&env);
	sl_free(p);
}

/* Feed `s` in pieces cut at cuts[0..cut_cnt) (ascending); the verdict. */
static bool
clean_split(const char *s, size_t len, const size_t *cuts, size_t cut_cnt)
{
	unsigned st = 0;
	size_t from = 0;
	bool is_clean = true;

	for (size_t i = 0; i <= cut_cnt; i++) {
		size_t to = i < cut_cnt ? cuts[i] : len;
		bool r = sl_ecs_content_clean(s + from, to - from, &st, i == cut_cnt);

		/* Once dirty, it stays dirty. */
		assert_true(is_clean || !r);
		is_clean = r;
		from = to;
	}
	return is_clean;
}

static void
test_content_clean(void **state)
{
	static const struct {
		const char *s;
		bool is_clean;
	} cases[] = {
		{ "", true },
		{ "a", true },
		{ "\r\n", true },
		{ "\r\n\r\n", true },
		{ "a\r\nb\r\n", true },
		{ "a\r\nb", true }, /* no bare CR or LF; the last line just has no end */
		{ "Subject: x\r\n\r\nbody\r\n.\r\n..\r\n", true },
		{ "a\nb", false },
		{ "a\rb", false },
		{ "a\r", false }, /* a CR at the very end is bare */
		{ "\r", false },
		{ "\n", false },
		{ "\n\r", false },
		{ "\r\r\n", false },
		{ "\r\n\n", false },
		{ "a\r\n\rb\r\n", false },
		{ "a\r\nb\n\r\n", false },
		{ "a\r\r", false },
		{ "a\r\n\r", false },
		{ "abc\r\ndef\nghi\r\n", false },
		{ "\r\n\r\n\r\n\r", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = cases[i].s;
		size_t len = strlen(s);
		size_t cuts[64];

		print_message("case %zu\n", i);
		/* Whole, then an empty last piece after it. */
		assert_int_equal(clean_split(s, len, NULL, 0), cases[i].is_clean);
		cuts[0] = len;
		assert_int_equal(clean_split(s, len, cuts, 1), cases[i].is_clean);
		/* Every split in two and in three (empty pieces too). */
		for (size_t a = 0; a <= len; a++) {
			cuts[0] = a;
			assert_int_equal(clean_split(s, len, cuts, 1), cases[i].is_clean);
			for (size_t b = a; b <= len; b++) {
				cuts[1] = b;
				assert_int_equal(clean_split(s, len, cuts, 2), cases[i].is_clean);
			}
		}
		/* One octet at a time. */
		for (size_t k = 0; k < len; k++)
			cuts[k] = k + 1;
		assert_int_equal(clean_split(s, len, cuts, len), cases[i].is_clean);
	}
}

static void
test_content_clean_pieces(void **state)
{
	unsigned st = 0;

	/* A CR ending a piece waits for the next. */
	assert_true(sl_ecs_content_clean("a\r", 2, &st, false));
	assert_true(sl_ecs_content_clean("\nb", 2, &st, true));
	st = 0;
	assert_true(sl_ecs_content_clean("a\r", 2, &st, false));
	assert_false(sl_ecs_content_clean("b", 1, &st, false));
	assert_false(sl_ecs_content_clean("\r\n", 2, &st, true)); /* it stays dirty */
	st = 0;
	assert_true(sl_ecs_content_clean("a\r", 2, &st, false));
	assert_false(sl_ecs_content_clean("", 0, &st, true)); /* nothing came to resolve it */
	st = 0;
	assert_true(sl_ecs_content_clean("a\r", 2, &st, false));
	assert_true(sl_ecs_content_clean("", 0, &st, false));
	assert_true(sl_ecs_content_clean("\n", 1, &st, true));
	st = 0;
	assert_true(sl_ecs_content_clean("", 0, &st, true));
	st = 0;
	assert_true(sl_ecs_content_clean(NULL, 0, &st, true)); /* an empty sl_buf's data */
}

static void
test_reply_parse(void **state)
{
	static const struct {
		const char *line;
		long rc;
		unsigned code;
		const char *qid;
		const char *enhanced;
		const char *text;
		const char *why; /* rc -1: part of the reason */
	} cases[] = {
		{ "250 6926A1B2-000000000F1A\r\n", 27, 250, "6926A1B2-000000000F1A", "", "", NULL },
		{ "250 q1\n", 7, 250, "q1", "", "", NULL },
		{ "250 q1\r\n250 q2\r\n", 8, 250, "q1", "", "", NULL },
		{ "221 2.0.0 bye\r\n", 15, 221, "", "2.0.0", "bye", NULL },
		{ "421 4.3.2 shutting down\r\n", 25, 421, "", "4.3.2", "shutting down", NULL },
		{ "554 5.6.0 bare CR or LF in the content\r\n", 40, 554, "", "5.6.0",
		  "bare CR or LF in the content", NULL },
		{ "552 5.123.456 big\r\n", 19, 552, "", "5.123.456", "big", NULL },
		{ "421 4.3.2\r\n", 11, 421, "", "4.3.2", "", NULL },
		{ "421 4.3.2 \r\n", 12, 421, "", "4.3.2", "", NULL },
		{ "554\r\n", 5, 554, "", "", "", NULL },
		{ "554 \r\n", 6, 554, "", "", "", NULL },
		{ "451 no code here\r\n", 18, 451, "", "", "no code here", NULL },
		{ "451 4.3 short\r\n", 15, 451, "", "", "4.3 short", NULL },
		{ "451 5.3.0 other class\r\n", 23, 451, "", "", "5.3.0 other class", NULL },
		{ "451 4.3.0x glued\r\n", 18, 451, "", "", "4.3.0x glued", NULL },
		{ "451 4.1234.0 long\r\n", 19, 451, "", "", "4.1234.0 long", NULL },
		{ "451 4..0 empty\r\n", 16, 451, "", "", "4..0 empty", NULL },
		{ "599 5.0.0 \xc3\xa9t\xc3\xa9\r\n", 17, 599, "", "5.0.0", "\xc3\xa9t\xc3\xa9",
		  NULL },
		/* Not complete yet. */
		{ "", 0, 0, NULL, NULL, NULL, NULL },
		{ "2", 0, 0, NULL, NULL, NULL, NULL },
		{ "250 q1", 0, 0, NULL, NULL, NULL, NULL },
		{ "250 q1\r", 0, 0, NULL, NULL, NULL, NULL },
		/* Malformed. */
		{ "250\r\n", -1, 0, NULL, NULL, NULL, "250 without one queue id" },
		{ "250 \r\n", -1, 0, NULL, NULL, NULL, "250 without one queue id" },
		{ "250 q1 q2\r\n", -1, 0, NULL, NULL, NULL, "250 without one queue id" },
		{ "250 0123456789012345678901234567890123456789012345678901234567890123\r\n", -1, 0,
		  NULL, NULL, NULL, "queue id of 1-63 octets" },
		{ "\r\n", -1, 0, NULL, NULL, NULL, "without a reply code" },
		{ "\n", -1, 0, NULL, NULL, NULL, "without a reply code" },
		{ "25\r\n", -1, 0, NULL, NULL, NULL, "without a reply code" },
		{ "OK 250\r\n", -1, 0, NULL, NULL, NULL, "without a reply code" },
		{ "ECS1 mx.example ready\r\n", -1, 0, NULL, NULL, NULL, "without a reply code" },
		{ "220 mx.example ESMTP\r\n", -1, 0, NULL, NULL, NULL,
		  "unexpected reply code 220" },
		{ "354 go ahead\r\n", -1, 0, NULL, NULL, NULL, "unexpected reply code 354" },
		{ "600 5.0.0 x\r\n", -1, 0, NULL, NULL, NULL, "unexpected reply code 600" },
		{ "251 x\r\n", -1, 0, NULL, NULL, NULL, "unexpected reply code 251" },
		{ "2500 q\r\n", -1, 0, NULL, NULL, NULL, "no space after the reply code" },
		{ "250-q1\r\n", -1, 0, NULL, NULL, NULL, "no space after the reply code" },
		{ "554 a\rb\r\n", -1, 0, NULL, NULL, NULL, "control character 0x0d" },
		{ "554 a\tb\r\n", -1, 0, NULL, NULL, NULL, "control character 0x09" },
		{ "554 a\x7f\r\n", -1, 0, NULL, NULL, NULL, "control character 0x7f" },
		{ "554 a\r\r\n", -1, 0, NULL, NULL, NULL, "control character 0x0d" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sl_ecs_reply r;
		char why[128] = "";
		long rc = sl_ecs_reply_parse(cases[i].line, strlen(cases[i].line), &r, why,
					     sizeof(why));

		print_message("case %zu\n", i);
		assert_int_equal(rc, cases[i].rc);
		if (rc == -1)
			assert_why(why, cases[i].why);
		if (rc <= 0)
			continue;
		assert_int_equal(r.code, cases[i].code);
		assert_string_equal(r.qid, cases[i].qid);
		assert_string_equal(r.enhanced, cases[i].enhanced);
		assert_string_equal(r.text, cases[i].text);
	}
}

static void
test_reply_parse_bounds(void **state)
{
	char line[1600];
	struct sl_ecs_reply r;
	char why[128] = "";

	/* Nothing yet, not even a buffer (an sl_buf never written to). */
	assert_int_equal(sl_ecs_reply_parse(NULL, 0, &r, why, sizeof(why)), 0);

	/* A NUL is a control character too (strlen could not say so). */
	assert_int_equal(sl_ecs_reply_parse(RAW("554 a\0b\r\n"), &r, why, sizeof(why)), -1);
	assert_why(why, "control character 0x00");

	/* 1000 octets with the CR LF: fine; the text is cut to fit r.text. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "554 5.0.0 ", 10);
	memcpy(line + 998, "\r\n", 2);
	assert_int_equal(sl_ecs_reply_parse(line, 1000, &r, why, sizeof(why)), 1000);
	assert_int_equal(r.code, 554);
	assert_string_equal(r.enhanced, "5.0.0");
	assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
	assert_int_equal(sl_ecs_reply_parse(line, sizeof(line), &r, why, sizeof(why)), 1000);

	/* Just a LF: 999 octets. */
	line[998] = '\n';
	assert_int_equal(sl_ecs_reply_parse(line, 999, &r, why, sizeof(why)), 999);

	/* 1001 octets, complete or not, and more without a LF: malformed. */
	memcpy(line + 998, "x\r\n", 3);
	assert_int_equal(sl_ecs_reply_parse(line, 1001, &r, why, sizeof(why)), -1);
	assert_why(why, "reply line over 1000 octets");
	memset(line + 998, 'x', 3);
	assert_int_equal(sl_ecs_reply_parse(line, 999, &r, why, sizeof(why)), 0);
	assert_int_equal(sl_ecs_reply_parse(line, 1000, &r, why, sizeof(why)), -1);
	assert_int_equal(sl_ecs_reply_parse(line, sizeof(line), &r, why, sizeof(why)), -1);
	assert_why(why, "reply line over 1000 octets");
}

/*
 * A pipelined stream of frames as a server reads it: headers, envelopes,
 * content (one refused for a bare LF, the stream still in step) and quit.
 */
static void
test_stream(void **state)
{
	static const struct {
		const char *rcpt;
		const char *content;
		bool is_clean;
	} msgs[] = {
		{ "b@y.example", "Subject: 1\r\n\r\none\r\n", true },
		{ "c@y.example", "Subject: 2\r\n\r\nbare\nLF\r\n", false },
		{ "d@y.example", "", true },
		{ "e@y.example", "Subject: 4\r\n\r\n.\r\n", true },
	};
	struct sl_buf b = SL_BUF_INIT;
	size_t off = 0, n = 0;

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		const char *c = msgs[i].content;

		assert_int_equal(sl_ecs_frame_begin(&b, "a@x.example", &msgs[i].rcpt, 1, NULL, NULL,
						    0, strlen(c)),
				 0);
		sl_buf_puts(&b, c);
	}
	sl_ecs_hdr_encode((uint8_t *)sl_buf_reserve(&b, SL_ECS_HDR_LEN), SL_ECS_QUIT, 0, 0);
	b.len += SL_ECS_HDR_LEN;

	for (;;) {
		struct sl_ecs_hdr h;
		struct sl_ecs_env env;
		unsigned st = 0;
		char why[128];

		assert_true(b.len - off >= SL_ECS_HDR_LEN);
		assert_int_equal(
			sl_ecs_hdr_decode((const uint8_t *)b.data + off, &h, why, sizeof(why)), 0);
		off += SL_ECS_HDR_LEN;
		if (h.kind == SL_ECS_QUIT)
			break;
		assert_int_equal(sl_ecs_env_decode((const uint8_t *)b.data + off, h.env_len, &env,
						   why, sizeof(why)),
				 0);
		assert_true(str_is(env.rcpts[0], msgs[n].rcpt));
		sl_ecs_env_free(&env);
		off += h.env_len;
		assert_int_equal(h.content_len, strlen(msgs[n].content));
		assert_int_equal(sl_ecs_content_clean(b.data + off, h.content_len, &st, true),
				 msgs[n].is_clean);
		off += h.content_len;
		n++;
	}
	assert_int_equal(n, sizeof(msgs) / sizeof(msgs[0]));
	assert_int_equal(off, b.len);
	sl_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr),
		cmocka_unit_test(test_hdr_encode),
		cmocka_unit_test(test_frame_octets),
		cmocka_unit_test(test_man_example),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_env_decode_ok),
		cmocka_unit_test(test_env_decode_malformed),
		cmocka_unit_test(test_env_decode_limits),
		cmocka_unit_test(test_content_clean),
		cmocka_unit_test(test_content_clean_pieces),
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_parse_bounds),
		cmocka_unit_test(test_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
