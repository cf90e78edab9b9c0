/*
 * test/unit/test_console.c - the console's wire format (proto/console.c):
 * splitting command lines (blanks, quotes, escapes, bad input) and reply
 * frames (complete, partial, malformed).
 */
#include "config.h"

#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto/console.h"

static void
test_split(void **state)
{
	static const struct {
		const char *line;
		int argc;
		const char *argv[4];
	} cases[] = {
		{ "summary", 1, { "summary" } },
		{ "  config   reload  ", 2, { "config", "reload" } },
		{ "domain \"a b\"", 2, { "domain", "a b" } },
		{ "x \"q\\\"uote\\\\\"", 2, { "x", "q\"uote\\" } },
		{ "", 0, { NULL } },
		{ "\t \t", 0, { NULL } },
		{ "a \"unterminated", -1, { NULL } },
		{ "ctl\x01char", -1, { NULL } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[SL_CONSOLE_MAX_ARGS], buf[256];
		const char *why = NULL;
		int n = sl_console_split(cases[i].line, strlen(cases[i].line), argv,
					 SL_CONSOLE_MAX_ARGS, buf, sizeof(buf), &why);

		print_message("case %zu\n", i);
		assert_int_equal(n, cases[i].argc);
		if (n < 0) {
			assert_non_null(why);
			continue;
		}
		for (int k = 0; k < n; k++)
			assert_string_equal(argv[k], cases[i].argv[k]);
	}
}

static void
test_split_limits(void **state)
{
	char *argv[2], buf[64];
	const char *why;

	assert_int_equal(sl_console_split("a b c", 5, argv, 2, buf, sizeof(buf), &why), -1);
	assert_string_equal(why, "too many words");
	assert_int_equal(sl_console_split("abcdef", 6, argv, 2, buf, 4, &why), -1);
	assert_string_equal(why, "command too long");
}

static void
test_reply(void **state)
{
	struct sl_buf b = SL_BUF_INIT;
	size_t off, len;
	bool is_ok;

	sl_console_reply(&b, true, "hello\n", 6);
	sl_console_reply(&b, false, "no\n", 3);
	assert_int_equal(b.len, 5 + 6 + 6 + 3);
	assert_int_equal(sl_console_reply_parse(b.data, b.len, &is_ok, &off, &len), 11);
	assert_true(is_ok);
	assert_memory_equal(b.data + off, "hello\n", len);
	assert_int_equal(sl_console_reply_parse(b.data + 11, b.len - 11, &is_ok, &off, &len), 9);
	assert_false(is_ok);
	/* Partial frames: not complete yet, at every cut. */
	for (size_t cut = 0; cut < 11; cut++)
		assert_int_equal(sl_console_reply_parse(b.data, cut, &is_ok, &off, &len), 0);
	sl_buf_free(&b);
	assert_int_equal(sl_console_reply_parse("HELLO 5\nabcde", 13, &is_ok, &off, &len), -1);
	assert_int_equal(sl_console_reply_parse("OK x\n", 5, &is_ok, &off, &len), -1);
	assert_int_equal(sl_console_reply_parse("OK \n", 4, &is_ok, &off, &len), -1);
	assert_int_equal(sl_console_reply_parse("OK 99999999999\n", 15, &is_ok, &off, &len), -1);
	assert_int_equal(sl_console_reply_parse("OK 1234567890123456789012345678901234", 36, &is_ok,
						&off, &len),
			 -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_limits),
		cmocka_unit_test(test_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
