/*
 * test/unit/test_binding.c - which binding a message leaves from
 * (proto/binding.c): the X-Binding: header (any case, folded, where it is),
 * the context variable, Match_Domain, and their order.
 */
#include "config.h"

#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto/binding.h"

static struct sl_conf_snapshot *
build(const char *text)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree = sl_conf_parse_buffer("t.conf", "/", text, strlen(text), &errs);
	struct sl_conf_snapshot *s = tree ? sl_conf_snapshot_build(tree, "/", 1, &errs) : NULL;

	if (s == NULL)
		sl_conf_errors_print(&errs, stderr);
	assert_non_null(s);
	return s;
}

static void
test_header_found(void **state)
{
	static const struct {
		const char *data;
		const char *name;  /* NULL: not found */
		const char *field; /* the bytes left out */
	} cases[] = {
		{ "X-Binding: b\r\nSubject: x\r\n\r\nbody\r\n", "b", "X-Binding: b\r\n" },
		{ "Subject: x\r\nx-binding:   two  \r\n\r\n", "two", "x-binding:   two  \r\n" },
		{ "Subject: x\r\nx-binding:\r\n c\r\nX-Other: y\r\n\r\n", "c",
		  "x-binding:\r\n c\r\n" },
		{ "X-BINDING: a\r\n\tb\r\n\r\n", "a b", "X-BINDING: a\r\n\tb\r\n" },
		{ "X-Binding: lf\n\n", "lf", "X-Binding: lf\n" },
		{ "X-Binding:\r\n\r\n", "", "X-Binding:\r\n" },
		{ "Subject: x\r\n\r\nX-Binding: inbody\r\n", NULL, NULL },
		{ "X-Bindings: no\r\n\r\n", NULL, NULL },
		{ "X-Binding: unterminated", NULL, NULL },
		{ "", NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[SL_BINDING_NAME_MAX];
		uint64_t off = 99, len = 99;
		const char *d = cases[i].data;
		bool found = sl_binding_header(d, strlen(d), name, sizeof(name), &off, &len);

		print_message("case %zu\n", i);
		assert_int_equal(found, cases[i].name != NULL);
		if (!found)
			continue;
		assert_string_equal(name, cases[i].name);
		assert_int_equal(len, strlen(cases[i].field));
		assert_memory_equal(d + off, cases[i].field, len);
	}
}

static void
test_header_bounds(void **state)
{
	char data[SL_BINDING_SCAN_MAX + 64];
	char name[8];
	uint64_t off, len;
	size_t n = 0;

	/* A long value is truncated to the buffer, never overrun. */
	assert_true(sl_binding_header("X-Binding: abcdefghijkl\r\n\r\n", 27, name, sizeof(name),
				      &off, &len));
	assert_string_equal(name, "abcdefg");
	/* Past the scan limit it is not looked for. */
	while (n + 16 < SL_BINDING_SCAN_MAX) {
		memcpy(data + n, "X-Pad: 12345678\n", 16);
		n += 16;
	}
	memcpy(data + n, "X-Binding: late\r\n\r\n", 19);
	assert_false(sl_binding_header(data, n + 19, name, sizeof(name), &off, &len));
}

static void
test_choose(void **state)
{
	struct sl_conf_snapshot *s = build("Binding \"b\" { }\n"
					   "Binding \"c\" { Match_Domain = ( \"match.test\" ) }\n"
					   "Binding_Group \"grp\" { Binding \"g1\" { } }\n");
	const struct sl_conf_binding *b;
	const char *unknown = "x";

	b = sl_binding_choose(s, NULL, NULL, "a@src.test", &unknown);
	assert_null(b);
	assert_null(unknown);
	b = sl_binding_choose(s, "b", "c", "a@match.test", &unknown);
	assert_string_equal(b->name, "b"); /* the header wins */
	b = sl_binding_choose(s, NULL, "c", "a@src.test", &unknown);
	assert_string_equal(b->name, "c"); /* then the context */
	b = sl_binding_choose(s, "", NULL, "a@MATCH.test", &unknown);
	assert_string_equal(b->name, "c"); /* then Match_Domain, any case */
	b = sl_binding_choose(s, NULL, NULL, "a@sub.match.test", &unknown);
	assert_null(b); /* exact domains only */
	b = sl_binding_choose(s, "g1", NULL, "", &unknown);
	assert_string_equal(b->name, "g1");
	assert_string_equal(b->group->name, "grp");
	b = sl_binding_choose(s, "nosuch", "b", "a@src.test", &unknown);
	assert_null(b);
	assert_string_equal(unknown, "nosuch");
	b = sl_binding_choose(s, "default", NULL, "", &unknown);
	assert_null(b);
	assert_null(unknown);
	sl_conf_snapshot_put(s);
}

/* Match_Domain given several times in one Binding: every domain counts. */
static void
test_match_domain_repeated(void **state)
{
	struct sl_conf_snapshot *s = build("Binding \"m\" {\n"
					   "  Match_Domain = \"one.test\"\n"
					   "  Match_Domain = ( \"two.test\" \"three.test\" )\n"
					   "}\n");
	const char *unknown = NULL;
	static const char *const senders[] = { "a@one.test", "a@two.test", "a@three.test" };

	(void)state;
	for (size_t i = 0; i < SL_ARRAY_LEN(senders); i++) {
		const struct sl_conf_binding *b =
			sl_binding_choose(s, NULL, NULL, senders[i], &unknown);

		assert_non_null(b);
		assert_string_equal(b->name, "m");
	}
	assert_null(sl_binding_choose(s, NULL, NULL, "a@four.test", &unknown));
	sl_conf_snapshot_put(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_found),
		cmocka_unit_test(test_header_bounds),
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_match_domain_repeated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
