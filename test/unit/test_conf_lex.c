/*
 * test/unit/test_conf_lex.c - unit tests for conf/conf_lex.c.
 *
 * Table-driven: each case lexes a text and compares a one-line rendering of
 * every token (kind, text, line:col) with the expected one, or compares the
 * single diagnostic with the expected "line:col: message".  Covers every
 * token kind, comments, string escapes, the IPv6-address-versus-bracket rule
 * and every lexer error.
 *
 * Threads: one.  Parses test input only.  Ownership: each case owns its
 * arena and error list and frees both.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf_lex.h"
#include "conf/conf_tree.h"
#include "engine/alloc.h"
#include "engine/arena.h"
#include "engine/assert.h"

/* Rendering of all tokens of one input, and the longest one a case may expect. */
#define DUMP_LEN 2048

struct lex_case {
	const char *name;
	const char *text;
	size_t text_len;  /* 0: strlen(text) */
	const char *want; /* tokens as rendered by lex_dump() */
};

/* Append `text` to the dump, showing newline, tab and CR as \n \t \r. */
static void
dump_text(char *out, size_t out_len, const char *text, size_t text_len)
{
	size_t pos = strlen(out);

	for (size_t i = 0; i < text_len && pos + 3 < out_len; i++) {
		const char *esc = text[i] == '\n'   ? "\\n"
				  : text[i] == '\t' ? "\\t"
				  : text[i] == '\r' ? "\\r"
						    : NULL;

		if (esc != NULL) {
			memcpy(out + pos, esc, 2);
			pos += 2;
		} else {
			out[pos++] = text[i];
		}
	}
	out[pos] = '\0';
}

/*
 * Lex `text` into "W(word)@1:1 S(string)@1:5 =@1:9 $@1:10": W word, S
 * string, punctuation as itself, $ end of file, ERR on a lexer error.
 * Returns the number of diagnostics added.
 */
static size_t
lex_dump(const char *text, size_t text_len, char *out, size_t out_len, char *err, size_t err_len)
{
	struct sl_arena arena = SL_ARENA_INIT;
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_lexer lx;
	struct sl_conf_token tok;
	size_t err_cnt;
	int guard = 0;

	out[0] = '\0';
	err[0] = '\0';
	assert_int_equal(sl_conf_lex_init(&lx, "t.conf", text, text_len, &arena, &errs), 0);
	for (;;) {
		char piece[32];
		int rc = sl_conf_lex_next(&lx, &tok);

		assert_true(++guard < 1000);
		if (out[0] != '\0')
			strncat(out, " ", out_len - strlen(out) - 1);
		if (rc < 0) {
			assert_int_equal(tok.kind, SL_CONF_TOK_ERROR);
			strncat(out, "ERR", out_len - strlen(out) - 1);
			break;
		}
		assert_true(tok.loc.line >= 1 && tok.loc.col >= 1);
		assert_string_equal(tok.loc.file, "t.conf");
		if (tok.kind == SL_CONF_TOK_WORD || tok.kind == SL_CONF_TOK_STRING) {
			assert_non_null(tok.text);
			assert_int_equal(strlen(tok.text), tok.text_len);
			strncat(out, tok.kind == SL_CONF_TOK_WORD ? "W(" : "S(",
				out_len - strlen(out) - 1);
			dump_text(out, out_len, tok.text, tok.text_len);
			strncat(out, ")", out_len - strlen(out) - 1);
		} else if (tok.kind == SL_CONF_TOK_EOF) {
			assert_null(tok.text);
			strncat(out, "$", out_len - strlen(out) - 1);
		} else {
			assert_null(tok.text);
			strncat(out, sl_conf_tok_name(tok.kind), out_len - strlen(out) - 1);
		}
		snprintf(piece, sizeof(piece), "@%u:%u", tok.loc.line, tok.loc.col);
		strncat(out, piece, out_len - strlen(out) - 1);
		if (tok.kind == SL_CONF_TOK_EOF) {
			/* EOF is sticky. */
			assert_int_equal(sl_conf_lex_next(&lx, &tok), 0);
			assert_int_equal(tok.kind, SL_CONF_TOK_EOF);
			break;
		}
	}
	if (errs.cnt > 0) {
		char *s = sl_conf_error_format(&errs.list[0]);

		snprintf(err, err_len, "%s", s);
		sl_free(s);
		/* Errors are sticky and reported once. */
		assert_int_equal(sl_conf_lex_next(&lx, &tok), -1);
		assert_int_equal(tok.kind, SL_CONF_TOK_ERROR);
	}
	err_cnt = errs.cnt;
	sl_conf_errors_clear(&errs);
	sl_arena_free(&arena);
	return err_cnt;
}

static void
run_cases(const struct lex_case *cases, size_t cnt, bool is_error)
{
	for (size_t i = 0; i < cnt; i++) {
		const struct lex_case *c = &cases[i];
		size_t len = c->text_len ? c->text_len : strlen(c->text);
		char out[DUMP_LEN];
		char err[256];
		size_t err_cnt = lex_dump(c->text, len, out, sizeof(out), err, sizeof(err));

		const char *got = is_error ? err : out;

		/* Name the case on failure: a table row has no line of its own. */
		if (err_cnt != (is_error ? 1u : 0u) || strcmp(got, c->want) != 0) {
			print_error("case '%s': %zu errors\n  got  %s\n  want %s\n", c->name,
				    err_cnt, got, c->want);
			fail();
		}
	}
}

static const struct lex_case good_cases[] = {
	{ "empty", "", 0, "$@1:1" },
	{ "blank only", " \t\r\n\v\f", 0, "$@2:3" },
	{ "every punctuation", "= ( ) { } [ ] < >", 0,
	  "=@1:1 (@1:3 )@1:5 {@1:7 }@1:9 [@1:11 ]@1:13 <@1:15 >@1:17 $@1:18" },
	{ "assignment", "Max_Outbound_Connections = 20\n", 0,
	  "W(Max_Outbound_Connections)@1:1 =@1:26 W(20)@1:28 $@2:1" },
	{ "delimiters end words", "a=b(c)d{e}f[g]h<i>j\"k\"l#m", 0,
	  "W(a)@1:1 =@1:2 W(b)@1:3 (@1:4 W(c)@1:5 )@1:6 W(d)@1:7 {@1:8 W(e)@1:9 }@1:10 "
	  "W(f)@1:11 [@1:12 W(g)@1:13 ]@1:14 W(h)@1:15 <@1:16 W(i)@1:17 >@1:18 W(j)@1:19 "
	  "S(k)@1:20 W(l)@1:23 $@1:26" },
	{ "listener words", "*:25 *:587,200~20 /tmp/2025,200~20 127.0.0.1:25", 0,
	  "W(*:25)@1:1 W(*:587,200~20)@1:6 W(/tmp/2025,200~20)@1:19 W(127.0.0.1:25)@1:36 $@1:48" },
	{ "uri words", "uri = digest:///opt/ecelerity/etc/console_passwd", 0,
	  "W(uri)@1:1 =@1:5 W(digest:///opt/ecelerity/etc/console_passwd)@1:7 $@1:49" },
	{ "windows names are words", "\\ecconsole~10 YOURDOMAIN\\JoeBloggs", 0,
	  "W(\\ecconsole~10)@1:1 W(YOURDOMAIN\\JoeBloggs)@1:15 $@1:35" },
	{ "case is kept", "Esmtp_Listener ESMTP_LISTENER esmtp_listener", 0,
	  "W(Esmtp_Listener)@1:1 W(ESMTP_LISTENER)@1:16 W(esmtp_listener)@1:31 $@1:45" },
	{ "utf-8 bytes are word bytes", "caf\xc3\xa9 x", 0, "W(caf\xc3\xa9)@1:1 W(x)@1:7 $@1:8" },
	{ "hash comment", "# whole line\nFoo # rest\nBar", 0, "W(Foo)@2:1 W(Bar)@3:1 $@3:4" },
	{ "hash comment at end without newline", "Foo # rest", 0, "W(Foo)@1:1 $@1:11" },
	{ "hash ends a word", "a#b\nc", 0, "W(a)@1:1 W(c)@2:1 $@2:2" },
	/* Only a token's first bytes can open a comment: the last word keeps its slash-stars. */
	{ "block comment", "/* one\ntwo */ Foo /**/ Bar/**/", 0,
	  "W(Foo)@2:8 W(Bar/**/)@2:17 $@2:24" },
	{ "block comment ends at first closer", "/* a * / b **/ x", 0, "W(x)@1:16 $@1:17" },
	{ "slash-star inside a word is not a comment", "a/*b*/c /var/*", 0,
	  "W(a/*b*/c)@1:1 W(/var/*)@1:9 $@1:15" },
	{ "hash inside a block comment", "/* # */ x", 0, "W(x)@1:9 $@1:10" },
	{ "string", "\"example.com\"", 0, "S(example.com)@1:1 $@1:14" },
	{ "empty string", "\"\" x", 0, "S()@1:1 W(x)@1:4 $@1:5" },
	{ "string escapes", "\"a\\\"b\\\\c\\nd\\te\\rf\"", 0, "S(a\"b\\c\\nd\\te\\rf)@1:1 $@1:19" },
	{ "other escapes kept", "\"/.*\\.example\\.com/\" \"C:\\Windows\\x\\0\"", 0,
	  "S(/.*\\.example\\.com/)@1:1 S(C:\\Windows\\x\\0)@1:22 $@1:38" },
	{ "delimiters inside a string",
	  "\"smtp://1.2.3.4?pref=10&ttl=300&type=mx # (x) [y] {z} <w>\"", 0,
	  "S(smtp://1.2.3.4?pref=10&ttl=300&type=mx # (x) [y] {z} <w>)@1:1 $@1:59" },
	{ "newline inside a string", "\"a\nb\" c", 0, "S(a\\nb)@1:1 W(c)@2:4 $@2:5" },
	{ "escaped newline inside a string", "\"a\\\nb\"", 0, "S(a\\\\nb)@1:1 $@2:3" },
	{ "crlf and tabs", "a\r\n\tb", 0, "W(a)@1:1 W(b)@2:2 $@2:3" },
	{ "ipv6 address", "[::1]:25", 0, "W([::1]:25)@1:1 $@1:9" },
	{ "ipv6 with backlog and threads", "[2001:db8::1]:587,200~20 x", 0,
	  "W([2001:db8::1]:587,200~20)@1:1 W(x)@1:26 $@1:27" },
	{ "ipv4 in brackets with port", "[10.0.0.1]:25", 0, "W([10.0.0.1]:25)@1:1 $@1:14" },
	{ "ipv6 word ends at delimiter", "[::1]:25<proto=ipv6>", 0,
	  "W([::1]:25)@1:1 <@1:9 W(proto)@1:10 =@1:15 W(ipv6)@1:16 >@1:20 $@1:21" },
	{ "acl bracket with blank", "[ ::1/0 = ( x ) ]", 0,
	  "[@1:1 W(::1/0)@1:3 =@1:9 (@1:11 W(x)@1:13 )@1:15 ]@1:17 $@1:18" },
	{ "acl bracket without blank", "[::1/128 = ( x )]", 0,
	  "[@1:1 W(::1/128)@1:2 =@1:10 (@1:12 W(x)@1:14 )@1:16 ]@1:17 $@1:18" },
	{ "param bracket", "[idle_time = 300]", 0,
	  "[@1:1 W(idle_time)@1:2 =@1:12 W(300)@1:14 ]@1:17 $@1:18" },
	{ "hex-looking param bracket", "[cafe = 1]", 0,
	  "[@1:1 W(cafe)@1:2 =@1:7 W(1)@1:9 ]@1:10 $@1:11" },
	{ "address without port is a bracket", "[::1]", 0, "[@1:1 W(::1)@1:2 ]@1:5 $@1:6" },
	{ "colon without digit is a bracket", "[::1]:x", 0,
	  "[@1:1 W(::1)@1:2 ]@1:5 W(:x)@1:6 $@1:8" },
	{ "empty brackets", "[]:25", 0, "[@1:1 ]@1:2 W(:25)@1:3 $@1:6" },
	{ "bracket at end of input", "[::1", 0, "[@1:1 W(::1)@1:2 $@1:5" },
	{ "include statement", "include \"/opt/ecelerity/etc/other.conf\"", 0,
	  "W(include)@1:1 S(/opt/ecelerity/etc/other.conf)@1:9 $@1:40" },
	{ "only text_len bytes are read", "ab", 1, "W(a)@1:1 $@1:2" },
};

static const struct lex_case error_cases[] = {
	{ "unterminated string", "Foo = \"abc", 0, "t.conf:1:7: unterminated string" },
	{ "unterminated multi-line string", "a\n  \"abc\ndef", 0,
	  "t.conf:2:3: unterminated string" },
	{ "string ending in backslash", "\"abc\\", 0, "t.conf:1:1: unterminated string" },
	{ "escaped quote does not close", "x \"abc\\\"", 0, "t.conf:1:3: unterminated string" },
	{ "unterminated comment", "x /* abc\n\n", 0, "t.conf:1:3: unterminated comment" },
	{ "comment closer needs its own star", "/*/", 0, "t.conf:1:1: unterminated comment" },
	{ "NUL byte", "a\0b", 3, "t.conf:1:2: NUL byte" },
	{ "NUL byte first", "\0", 1, "t.conf:1:1: NUL byte" },
	{ "NUL byte in hash comment", "# a\0", 4, "t.conf:1:4: NUL byte in comment" },
	{ "NUL byte in block comment", "/*\n\0*/", 5, "t.conf:2:1: NUL byte in comment" },
	{ "NUL byte in string", "\"a\0\"", 4, "t.conf:1:3: NUL byte in string" },
	{ "NUL byte after backslash in string", "\"a\\\0\"", 5, "t.conf:1:4: NUL byte in string" },
	{ "control byte", "a \x01", 0, "t.conf:1:3: control byte 0x01" },
	{ "escape byte in string", "\"\x1b[0m\"", 0, "t.conf:1:2: control byte 0x1b in string" },
	{ "DEL byte", "\x7f", 0, "t.conf:1:1: control byte 0x7f" },
	{ "comment closer outside a comment", "/* a /* b */ c */", 0,
	  "t.conf:1:16: '*/' outside a comment (comments do not nest)" },
};

static void
test_tokens(void **state)
{
	(void)state;
	run_cases(good_cases, SL_ARRAY_LEN(good_cases), false);
}

static void
test_errors(void **state)
{
	(void)state;
	run_cases(error_cases, SL_ARRAY_LEN(error_cases), true);
}

/* Tokens before an error are returned normally; the error comes in order. */
static void
test_error_after_tokens(void **state)
{
	char out[DUMP_LEN];
	char err[256];

	(void)state;
	assert_int_equal(lex_dump("Foo = ( a\n  \"b", 14, out, sizeof(out), err, sizeof(err)), 1);
	assert_string_equal(out, "W(Foo)@1:1 =@1:5 (@1:7 W(a)@1:9 ERR");
	assert_string_equal(err, "t.conf:2:3: unterminated string");
}

static void
test_size_limit(void **state)
{
	struct sl_arena arena = SL_ARENA_INIT;
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_lexer lx;
	struct sl_conf_token tok;
	char *msg;

	(void)state;
	/* The length alone is checked; the bytes are never read. */
	assert_int_equal(
		sl_conf_lex_init(&lx, "big.conf", "x", SL_CONF_MAX_FILE_LEN + 1u, &arena, &errs),
		-1);
	assert_int_equal(errs.cnt, 1);
	msg = sl_conf_error_format(&errs.list[0]);
	assert_string_equal(msg,
			    "big.conf:1:1: file is 67108865 bytes, over the limit of 67108864");
	sl_free(msg);
	assert_int_equal(sl_conf_lex_next(&lx, &tok), -1);
	assert_int_equal(tok.kind, SL_CONF_TOK_ERROR);
	assert_int_equal(errs.cnt, 1);
	sl_conf_errors_clear(&errs);
	sl_arena_free(&arena);
}

/* Token texts live in the arena, so the input may go away. */
static void
test_texts_outlive_input(void **state)
{
	struct sl_arena arena = SL_ARENA_INIT;
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_lexer lx;
	struct sl_conf_token word;
	struct sl_conf_token str;
	char *input = sl_strdup("Banner \"hello\\tworld\"");

	(void)state;
	assert_int_equal(sl_conf_lex_init(&lx, "t.conf", input, strlen(input), &arena, &errs), 0);
	assert_int_equal(sl_conf_lex_next(&lx, &word), 0);
	assert_int_equal(sl_conf_lex_next(&lx, &str), 0);
	memset(input, 'x', strlen(input));
	sl_free(input);
	assert_string_equal(word.text, "Banner");
	assert_int_equal(word.text_len, 6);
	assert_string_equal(str.text, "hello\tworld");
	assert_int_equal(str.text_len, 11);
	assert_int_equal(errs.cnt, 0);
	sl_arena_free(&arena);
}

struct describe_case {
	enum sl_conf_tok kind;
	const char *text;
	const char *want;
};

static void
test_describe(void **state)
{
	static const struct describe_case cases[] = {
		{ SL_CONF_TOK_EOF, NULL, "end of file" },
		{ SL_CONF_TOK_ERROR, NULL, "invalid token" },
		{ SL_CONF_TOK_EQUALS, NULL, "'='" },
		{ SL_CONF_TOK_LPAREN, NULL, "'('" },
		{ SL_CONF_TOK_RPAREN, NULL, "')'" },
		{ SL_CONF_TOK_LBRACE, NULL, "'{'" },
		{ SL_CONF_TOK_RBRACE, NULL, "'}'" },
		{ SL_CONF_TOK_LBRACKET, NULL, "'['" },
		{ SL_CONF_TOK_RBRACKET, NULL, "']'" },
		{ SL_CONF_TOK_LANGLE, NULL, "'<'" },
		{ SL_CONF_TOK_RANGLE, NULL, "'>'" },
		{ SL_CONF_TOK_WORD, "Esmtp_Listener", "'Esmtp_Listener'" },
		{ SL_CONF_TOK_WORD, "it's", "'it\\'s'" },
		{ SL_CONF_TOK_STRING, "a \"b\"\n", "string \"a \\\"b\\\"\\x0a\"" },
		{ SL_CONF_TOK_WORD, "0123456789012345678901234567890123456789abcdefghij",
		  "'0123456789012345678901234567890123456789ab...'" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		struct sl_conf_token tok = { cases[i].kind,
					     { "t.conf", 1, 1 },
					     cases[i].text,
					     cases[i].text ? strlen(cases[i].text) : 0 };

		assert_string_equal(sl_conf_tok_describe(&tok, out, sizeof(out)), cases[i].want);
	}
}

static void
test_quote(void **state)
{
	char out[16];
	char tiny[7];

	(void)state;
	assert_string_equal(sl_conf_lex_quote("abc", 3, '\'', out, sizeof(out)), "'abc'");
	assert_string_equal(sl_conf_lex_quote("a\\b", 3, '\'', out, sizeof(out)), "'a\\\\b'");
	assert_string_equal(sl_conf_lex_quote("\x80", 1, '"', out, sizeof(out)), "\"\\x80\"");
	/* 16 bytes: quote + text + "..." + quote + NUL. */
	assert_string_equal(sl_conf_lex_quote("abcdefghijklmnop", 16, '\'', out, sizeof(out)),
			    "'abcdefghij...'");
	assert_int_equal(strlen(out), sizeof(out) - 1);
	assert_string_equal(sl_conf_lex_quote("abc", 3, '\'', tiny, sizeof(tiny)), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_after_tokens),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_texts_outlive_input),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_quote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
