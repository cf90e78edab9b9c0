/*
 * test/unit/test_conf_parse.c - unit tests for conf/conf_parse.c.
 *
 * Table-driven: good inputs are parsed and the tree is rendered on one line
 * (see tree_dump()) and compared with the expected rendering; bad inputs
 * must fail with exactly one diagnostic, compared in full (file:line:col:
 * message).  Includes are tested on files made in a fresh mkdtemp()
 * directory under /tmp that each test removes.  The last test checks every
 * fixture under test/fixtures (ref: must parse; neg: must fail where the
 * first line "# expect: LINE:COL: text" says).
 *
 * Threads: one.  Parses test input only.  Ownership: each case frees its
 * tree and error list; each include test removes its directory.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf_tree.h"
#include "engine/alloc.h"
#include "engine/assert.h"

#define DUMP_LEN 8192

/* ---------------------------------------------------------------- rendering */

struct dump {
	char buf[DUMP_LEN];
	size_t len;
};

static void __attribute__((format(printf, 2, 3))) dump_add(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(d->buf + d->len, sizeof(d->buf) - d->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(d->buf) - d->len);
	d->len += (size_t)n;
}

static void dump_value(struct dump *d, const struct sl_conf_value *v);

/* Every node must carry a usable position. */
static void
check_loc(const struct sl_conf_loc *loc)
{
	assert_non_null(loc->file);
	assert_true(loc->line >= 1);
	assert_true(loc->col >= 1);
}

static void
dump_pairs(struct dump *d, const struct sl_conf_pair *pairs, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++) {
		check_loc(&pairs[i].loc);
		dump_add(d, pairs[i].key_is_string ? "%s\"%s\"=" : "%s%s=", i ? " " : "",
			 pairs[i].key);
		dump_value(d, &pairs[i].value);
	}
}

/* WORD as is, "STRING", (item ...), [key=value ...]. */
static void
dump_value(struct dump *d, const struct sl_conf_value *v)
{
	check_loc(&v->loc);
	switch (v->kind) {
	case SL_CONF_WORD:
	case SL_CONF_STRING:
		assert_non_null(v->text);
		assert_int_equal(strlen(v->text), v->text_len);
		dump_add(d, v->kind == SL_CONF_WORD ? "%s" : "\"%s\"", v->text);
		break;
	case SL_CONF_LIST:
		assert_null(v->text);
		dump_add(d, "(");
		for (size_t i = 0; i < v->item_cnt; i++) {
			const struct sl_conf_item *it = &v->items[i];

			check_loc(&it->loc);
			dump_add(d, it->is_string ? "%s\"%s\"" : "%s%s", i ? " " : "", it->text);
			assert_true(it->has_attrs || it->attr_cnt == 0);
			assert_true(it->has_params || it->param_cnt == 0);
			if (it->has_attrs) {
				dump_add(d, "<");
				dump_pairs(d, it->attrs, it->attr_cnt);
				dump_add(d, ">");
			}
			if (it->has_params) {
				dump_add(d, "[");
				dump_pairs(d, it->params, it->param_cnt);
				dump_add(d, "]");
			}
		}
		dump_add(d, ")");
		break;
	case SL_CONF_PAIRS:
		assert_null(v->text);
		dump_add(d, "[");
		dump_pairs(d, v->pairs, v->pair_cnt);
		dump_add(d, "]");
		break;
	}
}

/* name=value, or name arg "arg" <k=v> {child; child}; stanzas joined by "; ". */
static void
dump_stanzas(struct dump *d, const struct sl_conf_stanza *s, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++) {
		check_loc(&s[i].loc);
		dump_add(d, "%s%s", i ? "; " : "", s[i].name);
		if (s[i].kind == SL_CONF_ASSIGN) {
			assert_int_equal(s[i].arg_cnt + s[i].attr_cnt + s[i].child_cnt, 0);
			dump_add(d, "=");
			dump_value(d, &s[i].value);
			continue;
		}
		assert_int_equal(s[i].kind, SL_CONF_BLOCK);
		for (size_t a = 0; a < s[i].arg_cnt; a++) {
			assert_true(s[i].args[a].kind != SL_CONF_LIST);
			dump_add(d, " ");
			dump_value(d, &s[i].args[a]);
		}
		if (s[i].attr_cnt > 0) {
			dump_add(d, " <");
			dump_pairs(d, s[i].attrs, s[i].attr_cnt);
			dump_add(d, ">");
		}
		dump_add(d, " {");
		dump_stanzas(d, s[i].children, s[i].child_cnt);
		dump_add(d, "}");
	}
}

static const char *
tree_dump(const struct sl_conf_tree *tree, struct dump *d)
{
	d->len = 0;
	d->buf[0] = '\0';
	dump_stanzas(d, tree->stanzas, tree->stanza_cnt);
	return d->buf;
}

/* The one diagnostic of a failed parse, formatted; the caller frees it. */
static char *
only_error(const struct sl_conf_errors *errs)
{
	assert_int_equal(errs->cnt, 1);
	return sl_conf_error_format(&errs->list[0]);
}

/* ---------------------------------------------------------------- buffers */

struct parse_case {
	const char *name;
	const char *text;
	const char *want; /* good: tree_dump(); bad: the diagnostic */
};

static const struct parse_case good_cases[] = {
	{ "empty", "", "" },
	{ "comments only", "# a\n/* b */\n", "" },
	{ "word value", "Max_Outbound_Connections = 20", "Max_Outbound_Connections=20" },
	{ "string value", "Outbound_Throttle_Messages = \"1/60\"",
	  "Outbound_Throttle_Messages=\"1/60\"" },
	{ "names keep their case", "ESMTP_LISTENER = ( *:25 )\nesmtp_listener = ( *:26 )",
	  "ESMTP_LISTENER=(*:25); esmtp_listener=(*:26)" },
	{ "several stanzas on one line", "A = ( a ) B = 1 C = \"c\"", "A=(a); B=1; C=\"c\"" },
	{ "list of words", "Relay_Domains = ( example.com *.example.com )",
	  "Relay_Domains=(example.com *.example.com)" },
	{ "empty list", "Relay_Domains = ( )", "Relay_Domains=()" },
	{ "list of strings", "Routes = ( \"smtp://1.2.3.4?pref=10&ttl=300&type=mx\" \"__mx__\" )",
	  "Routes=(\"smtp://1.2.3.4?pref=10&ttl=300&type=mx\" \"__mx__\")" },
	{ "esmtp listener with acl",
	  "Esmtp_Listener = ( *:25 [ 0.0.0.0/0 = ( personality [ idle_time = 300 "
	  "banner_hostname = \"example.com\" ] continue ) 10.1.2.3/32 = ( "
	  "relay_for_sending_domains ) 10.1.2.4/32 = ( relay_for_sending_domains [ client1.com = "
	  "true client2.com = true ] context [ client = \"ACME Inc.\" ] ) ] )",
	  "Esmtp_Listener=(*:25[0.0.0.0/0=(personality[idle_time=300 "
	  "banner_hostname=\"example.com\"] continue) 10.1.2.3/32=(relay_for_sending_domains) "
	  "10.1.2.4/32=(relay_for_sending_domains[client1.com=true client2.com=true] "
	  "context[client=\"ACME Inc.\"])])" },
	{ "listener attributes",
	  "Esmtp_Listener = ( *:25  <proto=ipv4>\n  *:587 <status=\"disabled\"> "
	  "*:588 <name=\"value\" othername=\"othervalue\"> )",
	  "Esmtp_Listener=(*:25<proto=ipv4> *:587<status=\"disabled\"> "
	  "*:588<name=\"value\" othername=\"othervalue\">)" },
	{ "attributes then acl",
	  "Esmtp_Listener = ( *:25,200 <proto=ipv4> [ 0.0.0.0/0 = ( ENHANCEDSTATUSCODES [ "
	  "extension = ENHANCEDSTATUSCODES ] ) ] )",
	  "Esmtp_Listener=(*:25,200<proto=ipv4>[0.0.0.0/0=(ENHANCEDSTATUSCODES["
	  "extension=ENHANCEDSTATUSCODES])])" },
	{ "control listener",
	  "Control_Listener = ( /tmp/2025 /tmp/2025,200~20 *:2025 <proto=ipv4> [ 0.0.0.0/0 = ( "
	  "DIGEST-MD5 [ uri = digest:///opt/ecelerity/etc/console_passwd ] ) ] )",
	  "Control_Listener=(/tmp/2025 /tmp/2025,200~20 *:2025<proto=ipv4>[0.0.0.0/0=(DIGEST-MD5["
	  "uri=digest:///opt/ecelerity/etc/console_passwd])])" },
	{ "file uri in a string", "x = ( LOGIN [ uri = \"file:///opt/x\" ] )",
	  "x=(LOGIN[uri=\"file:///opt/x\"])" },
	{ "named pipes are words", "Control_Listener = ( \\ecconsole \\ecconsole~10 )",
	  "Control_Listener=(\\ecconsole \\ecconsole~10)" },
	{ "ipv6 listener addresses",
	  "Esmtp_Listener = ( [::1]:25 [2001:db8::1]:587,200~20 <proto=ipv6> [::1]:26 [ ::1/128 "
	  "= ( continue ) ] )",
	  "Esmtp_Listener=([::1]:25 [2001:db8::1]:587,200~20<proto=ipv6> "
	  "[::1]:26[::1/128=(continue)])" },
	{ "empty attributes and params", "X = ( a <> b [] c <> [] )", "X=(a<> b[] c<>[])" },
	{ "quoted keys and items", "X = ( \"a b\" [ \"k k\" = v ] )", "X=(\"a b\"[\"k k\"=v])" },
	{ "params nest through lists", "a = ( b [ c = ( d [ e = f ] ) ] )", "a=(b[c=(d[e=f])])" },
	{ "logger module block, brace on next line",
	  "Logger logging/ec_logger ec_logger\n{\n  mainlog = /var/log/ecelerity/mainlog.ec\n  "
	  "heartbeat = 60\n}",
	  "Logger logging/ec_logger ec_logger {mainlog=/var/log/ecelerity/mainlog.ec; "
	  "heartbeat=60}" },
	{ "module block with attributes",
	  "Module generic/module_name module_name <name=\"my_name\" debug_level=\"DEBUG\"> { x = 1 "
	  "}",
	  "Module generic/module_name module_name <name=\"my_name\" debug_level=\"DEBUG\"> {x=1}" },
	{ "block with attributes and no args", "Foo <a=b> { }", "Foo <a=b> {}" },
	{ "validate module", "Validate validate/module_name module_name passive { }",
	  "Validate validate/module_name module_name passive {}" },
	{ "quoted block arg", "ec_logger \"ec_logger\" { }", "ec_logger \"ec_logger\" {}" },
	{ "block without args",
	  "SNMP { State = enabled Address = 192.168.1.2:8162 "
	  "Community = \"Public\" }",
	  "SNMP {State=enabled; Address=192.168.1.2:8162; Community=\"Public\"}" },
	{ "scopes", "Domain \"example.com\" { }\ndomain example.com { }",
	  "Domain \"example.com\" {}; domain example.com {}" },
	{ "nested scopes",
	  "binding_group \"g\" { binding \"b\" { domain \"x\" { Max_Outbound_Connections = 5 } } }",
	  "binding_group \"g\" {binding \"b\" {domain \"x\" {Max_Outbound_Connections=5}}}" },
	{ "threadpool", "ThreadPool \"SwapOut\" { Concurrency = 5 }",
	  "ThreadPool \"SwapOut\" {Concurrency=5}" },
	{ "regex domain", "domain \"/(?:^|[.])example[.](?:com|co[.]uk)$/\" { }",
	  "domain \"/(?:^|[.])example[.](?:com|co[.]uk)$/\" {}" },
	{ "bracket stanza reads as a bracket value",
	  "SNMP_TRAPS { Trap_Destination [ Address = 192.168.1.2 Port = 162 ] }",
	  "SNMP_TRAPS {Trap_Destination=[Address=192.168.1.2 Port=162]}" },
	{ "bracket value", "custom_classes = [ 99 = \"profanity\" ]",
	  "custom_classes=[99=\"profanity\"]" },
	{ "empty bracket value", "sqlite [ ]", "sqlite=[]" },
	{ "lists inside a bracket value", "X = [ a = ( b [ c = d ] ) e = \"f\" ]",
	  "X=[a=(b[c=d]) e=\"f\"]" },
	{ "string escapes in values", "b = \"220 a\\tb \\\"c\\\"\"", "b=\"220 a\tb \"c\"\"" },
};

static const struct parse_case error_cases[] = {
	{ "name at end of file", "Foo", "t.conf:1:4: expected '=' or '{' after 'Foo'" },
	{ "name then next stanza", "Foo\nBar = 1", "t.conf:2:1: expected '=' or '{' after 'Foo'" },
	{ "name then close paren", "Foo )", "t.conf:1:5: expected '=' or '{' after 'Foo'" },
	{ "missing value at end of file", "Foo =", "t.conf:1:5: missing value after 'Foo' =" },
	{ "missing value before close", "D { Foo = }", "t.conf:1:9: missing value after 'Foo' =" },
	{ "missing value, next line", "Foo =\nBar = 1", "t.conf:1:5: missing value after 'Foo' =" },
	{ "missing value in params", "X = ( a [ k = ] )",
	  "t.conf:1:13: missing value after 'k' =" },
	{ "equals without name", "Foo = 20\n= 3", "t.conf:2:1: '=' without a name" },
	{ "equals without name, one line", "Foo = Bar = 1", "t.conf:1:11: '=' without a name" },
	{ "equals first", "= 1", "t.conf:1:1: '=' without a name" },
	{ "equals without name in params", "X = ( a [ = v ] )", "t.conf:1:11: '=' without a name" },
	{ "list where a stanza starts", "( a )", "t.conf:1:1: unexpected '('" },
	{ "stray close paren", "A = 1 )", "t.conf:1:7: unexpected ')'" },
	{ "stray close brace", "}", "t.conf:1:1: unexpected '}' (no block is open)" },
	{ "stray close bracket", "]", "t.conf:1:1: unexpected ']'" },
	{ "stray angle", ">", "t.conf:1:1: unexpected '>'" },
	{ "string as name", "\"Foo\" = 1", "t.conf:1:1: unexpected string \"Foo\"" },
	{ "unclosed list", "X = ( a", "t.conf:1:5: '(' is never closed" },
	{ "unclosed params", "X = ( a [ k = v", "t.conf:1:9: '[' is never closed" },
	{ "unclosed params after key", "X = ( a [ k", "t.conf:1:9: '[' is never closed" },
	{ "unclosed attributes", "X = ( a <k=v", "t.conf:1:9: '<' is never closed" },
	{ "unclosed block", "D \"x\" {\n  A = 1\n", "t.conf:1:7: '{' is never closed" },
	{ "wrong closer for list", "X = ( a ]",
	  "t.conf:1:9: expected ')' for the '(' at 1:5, got ']'" },
	{ "wrong closer for params", "X = ( a [ k = v )",
	  "t.conf:1:17: expected ']' for the '[' at 1:9, got ')'" },
	{ "wrong closer for attributes", "X = ( a <k=v )",
	  "t.conf:1:14: expected '>' for the '<' at 1:9, got ')'" },
	{ "pair in a list", "X = ( a = b )",
	  "t.conf:1:9: expected ')' for the '(' at 1:5, got '='" },
	{ "list in a list", "X = ( ( a ) )",
	  "t.conf:1:7: expected ')' for the '(' at 1:5, got '('" },
	{ "params before attributes", "X = ( a [ ] < > )",
	  "t.conf:1:13: expected ')' for the '(' at 1:5, got '<'" },
	{ "bracket as a parameter value", "X = ( a [ k = [ b = c ] ] )",
	  "t.conf:1:15: unexpected '[' after 'k' = (only an option's value can be [ key = value "
	  "... ])" },
	{ "bracket as an attribute value", "X = ( a <k=[b=c]> )",
	  "t.conf:1:12: unexpected '[' after 'k' = (only an option's value can be [ key = value "
	  "... ])" },
	{ "bracket inside a bracket value", "X = [ k = [ b = c ] ]",
	  "t.conf:1:11: unexpected '[' after 'k' = (only an option's value can be [ key = value "
	  "... ])" },
	{ "key without equals", "X = ( a [ k v ] )",
	  "t.conf:1:13: expected '=' after 'k', got 'v'" },
	{ "block without brace", "D x",
	  "t.conf:1:4: expected '{' to open block 'D', got end of file" },
	{ "block closed without opening", "D \"x\" }",
	  "t.conf:1:7: expected '{' to open block 'D', got '}'" },
	{ "block args then next stanza", "D \"x\"\nY = 1",
	  "t.conf:2:1: expected '{' to open block 'D' before 'Y'" },
	{ "block args after attributes", "D <a=b> x",
	  "t.conf:1:9: expected '{' to open block 'D', got 'x'" },
	{ "bracket after block args", "D x [ a = b ]",
	  "t.conf:1:5: expected '{' to open block 'D', got '['" },
	{ "include without path", "include",
	  "t.conf:1:8: expected a file name after 'include', got end of file" },
	{ "include with equals", "Include = x",
	  "t.conf:1:9: expected a file name after 'include', got '='" },
	{ "include empty path", "include \"\"", "t.conf:1:1: empty include path" },
	{ "include eccmgr", "A = 1\ninclude \"eccmgr://user:passwd@10.10.10.11:2026/boot/default\"",
	  "t.conf:2:1: unsupported include scheme 'eccmgr' (only files, directories and file:// "
	  "URIs can be included)" },
	{ "include http word", "INCLUDE http://example.com/x.conf",
	  "t.conf:1:1: unsupported include scheme 'http' (only files, directories and file:// URIs "
	  "can be included)" },
	{ "include file uri with host", "include \"file://example.com/etc/x.conf\"",
	  "t.conf:1:1: file:// URI must name an absolute local path (file:///path)" },
	{ "include file uri, relative", "include file://x.conf",
	  "t.conf:1:1: file:// URI must name an absolute local path (file:///path)" },
	{ "unterminated string", "X = \"abc", "t.conf:1:5: unterminated string" },
	{ "unterminated comment", "X = 1 /* a", "t.conf:1:7: unterminated comment" },
	{ "lexer error inside a list", "X = ( a \x01 )", "t.conf:1:9: control byte 0x01" },
	{ "nested comment", "/* a /* b */ X = 1 */",
	  "t.conf:1:20: '*/' outside a comment (comments do not nest)" },
};

static void
run_good(const struct parse_case *c)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree =
		sl_conf_parse_buffer("t.conf", NULL, c->text, strlen(c->text), &errs);
	struct dump d;

	if (tree == NULL) {
		sl_conf_errors_print(&errs, stderr);
		print_error("case '%s' failed to parse\n", c->name);
		fail();
	}
	assert_int_equal(errs.cnt, 0);
	assert_int_equal(tree->file_cnt, 0);
	if (strcmp(tree_dump(tree, &d), c->want) != 0) {
		print_error("case '%s':\n  got  %s\n  want %s\n", c->name, d.buf, c->want);
		fail();
	}
	sl_conf_tree_free(tree);
}

static void
run_bad(const struct parse_case *c)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree =
		sl_conf_parse_buffer("t.conf", NULL, c->text, strlen(c->text), &errs);
	char *msg;

	if (tree != NULL || errs.cnt != 1) {
		print_error("case '%s': tree %p, %zu errors\n", c->name, (void *)tree, errs.cnt);
		fail();
	}
	msg = only_error(&errs);
	if (strcmp(msg, c->want) != 0) {
		print_error("case '%s':\n  got  %s\n  want %s\n", c->name, msg, c->want);
		fail();
	}
	sl_free(msg);
	sl_conf_errors_clear(&errs);
}

static void
test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < SL_ARRAY_LEN(good_cases); i++)
		run_good(&good_cases[i]);
}

static void
test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < SL_ARRAY_LEN(error_cases); i++)
		run_bad(&error_cases[i]);
}

/* A NUL byte cannot sit in a C string table; pass the length. */
static void
test_nul_byte(void **state)
{
	static const char text[] = "A = 1\nB = x\0y\n";
	struct sl_conf_errors errs = { 0 };
	char *msg;

	(void)state;
	assert_null(sl_conf_parse_buffer("t.conf", NULL, text, sizeof(text) - 1, &errs));
	msg = only_error(&errs);
	assert_string_equal(msg, "t.conf:2:6: NUL byte");
	sl_free(msg);
	sl_conf_errors_clear(&errs);
}

static void
test_locations(void **state)
{
	static const char text[] = "# header\n"
				   "Esmtp_Listener = (\n"
				   "  *:25 <proto=ipv4> [\n"
				   "    0.0.0.0/0 = ( continue )\n"
				   "  ]\n"
				   ")\n"
				   "Domain \"example.com\" <a=b> {\n"
				   "\tMax = 5\n"
				   "}\n";
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree;
	const struct sl_conf_stanza *s;
	const struct sl_conf_item *it;

	(void)state;
	tree = sl_conf_parse_buffer("loc.conf", NULL, text, strlen(text), &errs);
	assert_non_null(tree);
	assert_int_equal(tree->stanza_cnt, 2);
	s = &tree->stanzas[0];
	assert_int_equal(s->kind, SL_CONF_ASSIGN);
	assert_string_equal(s->loc.file, "loc.conf");
	assert_int_equal(s->loc.line, 2);
	assert_int_equal(s->loc.col, 1);
	assert_int_equal(s->value.kind, SL_CONF_LIST);
	assert_int_equal(s->value.loc.line, 2);
	assert_int_equal(s->value.loc.col, 18);
	assert_int_equal(s->value.item_cnt, 1);
	it = &s->value.items[0];
	assert_string_equal(it->text, "*:25");
	assert_false(it->is_string);
	assert_int_equal(it->loc.line, 3);
	assert_int_equal(it->loc.col, 3);
	assert_int_equal(it->attr_cnt, 1);
	assert_int_equal(it->attrs[0].loc.line, 3);
	assert_int_equal(it->attrs[0].loc.col, 9);
	assert_int_equal(it->attrs[0].value.loc.col, 15);
	assert_int_equal(it->param_cnt, 1);
	assert_string_equal(it->params[0].key, "0.0.0.0/0");
	assert_int_equal(it->params[0].loc.line, 4);
	assert_int_equal(it->params[0].loc.col, 5);
	assert_int_equal(it->params[0].value.kind, SL_CONF_LIST);
	assert_int_equal(it->params[0].value.item_cnt, 1);
	assert_int_equal(it->params[0].value.items[0].loc.line, 4);
	assert_int_equal(it->params[0].value.items[0].loc.col, 19);
	s = &tree->stanzas[1];
	assert_int_equal(s->kind, SL_CONF_BLOCK);
	assert_string_equal(s->name, "Domain");
	assert_int_equal(s->loc.line, 7);
	assert_int_equal(s->arg_cnt, 1);
	assert_int_equal(s->args[0].kind, SL_CONF_STRING);
	assert_string_equal(s->args[0].text, "example.com");
	assert_int_equal(s->args[0].loc.col, 8);
	assert_int_equal(s->attr_cnt, 1);
	assert_int_equal(s->attrs[0].loc.col, 23);
	assert_int_equal(s->child_cnt, 1);
	assert_int_equal(s->children[0].loc.line, 8);
	assert_int_equal(s->children[0].loc.col, 2);
	assert_int_equal(s->children[0].value.loc.col, 8);
	sl_conf_tree_free(tree);
	assert_int_equal(errs.cnt, 0);
	sl_conf_tree_free(NULL);
}

/* Text of `cnt` nested `open` ... `close` pieces around `core`. */
static char *
nested(const char *open, const char *core, const char *close, unsigned cnt)
{
	size_t len = (strlen(open) + strlen(close)) * cnt + strlen(core) + 1;
	char *s = sl_malloc(len);

	s[0] = '\0';
	for (unsigned i = 0; i < cnt; i++)
		strcat(s, open);
	strcat(s, core);
	for (unsigned i = 0; i < cnt; i++)
		strcat(s, close);
	return s;
}

static void
test_nesting_limits(void **state)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree;
	char *text;
	char *msg;
	char want[128];

	(void)state;
	/* 64 blocks: at the limit. */
	text = nested("b { ", "x = 1", " }", SL_CONF_MAX_NEST_DEPTH);
	tree = sl_conf_parse_buffer("t.conf", NULL, text, strlen(text), &errs);
	assert_non_null(tree);
	sl_conf_tree_free(tree);
	sl_free(text);

	/* 65 blocks: the 65th '{' is reported. */
	text = nested("b { ", "x = 1", " }", SL_CONF_MAX_NEST_DEPTH + 1);
	assert_null(sl_conf_parse_buffer("t.conf", NULL, text, strlen(text), &errs));
	msg = only_error(&errs);
	snprintf(want, sizeof(want), "t.conf:1:%u: nested deeper than 64 levels",
		 SL_CONF_MAX_NEST_DEPTH * 4 + 3);
	assert_string_equal(msg, want);
	sl_free(msg);
	sl_conf_errors_clear(&errs);
	sl_free(text);

	/* ( and [ count too: "a = " then 32 x "( i [ k = " is 64 levels. */
	text = nested("( i [ k = ", "v", " ] )", SL_CONF_MAX_NEST_DEPTH / 2);
	msg = sl_asprintf("a = %s", text);
	tree = sl_conf_parse_buffer("t.conf", NULL, msg, strlen(msg), &errs);
	assert_non_null(tree);
	sl_conf_tree_free(tree);
	sl_free(msg);
	sl_free(text);

	/* One more '(' inside the deepest bracket is level 65. */
	text = nested("( i [ k = ", "( v )", " ] )", SL_CONF_MAX_NEST_DEPTH / 2);
	msg = sl_asprintf("a = %s", text);
	assert_null(sl_conf_parse_buffer("t.conf", NULL, msg, strlen(msg), &errs));
	sl_free(msg);
	msg = only_error(&errs);
	snprintf(want, sizeof(want), "t.conf:1:%u: nested deeper than 64 levels",
		 5 + 10 * SL_CONF_MAX_NEST_DEPTH / 2);
	assert_string_equal(msg, want);
	sl_free(msg);
	sl_conf_errors_clear(&errs);
	sl_free(text);

	/* Attributes count: 63 blocks, then a '<' at level 64 is fine, '(' in it is 65. */
	text = nested("b { ", "X <a=( v )> { }", " }", SL_CONF_MAX_NEST_DEPTH - 1);
	assert_null(sl_conf_parse_buffer("t.conf", NULL, text, strlen(text), &errs));
	msg = only_error(&errs);
	snprintf(want, sizeof(want), "t.conf:1:%u: nested deeper than 64 levels",
		 (SL_CONF_MAX_NEST_DEPTH - 1) * 4 + 6);
	assert_string_equal(msg, want);
	sl_free(msg);
	sl_conf_errors_clear(&errs);
	sl_free(text);
}

/* ---------------------------------------------------------------- includes */

/* Each include test runs in its own directory, made here and removed after. */
static int
tmpdir_setup(void **state)
{
	char *dir = sl_strdup("/tmp/sl-conf-parse-XXXXXX");

	if (mkdtemp(dir) == NULL) {
		sl_free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
tmpdir_teardown(void **state)
{
	char *dir = *state;
	int rc = nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	sl_free(dir);
	return rc;
}

/* Write `text` to dir/rel, making parent directories.  Returns the full path (free it). */
static char *
put_file(const char *dir, const char *rel, const char *text)
{
	char *path = sl_asprintf("%s/%s", dir, rel);
	FILE *f;

	for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Parse dir/rel as a file; return the tree (must succeed). */
static struct sl_conf_tree *
parse_ok(const char *dir, const char *rel)
{
	struct sl_conf_errors errs = { 0 };
	char *path = sl_asprintf("%s/%s", dir, rel);
	struct sl_conf_tree *tree = sl_conf_parse_file(path, &errs);

	if (tree == NULL) {
		sl_conf_errors_print(&errs, stderr);
		fail_msg("%s did not parse", path);
	}
	assert_int_equal(errs.cnt, 0);
	sl_free(path);
	return tree;
}

/* Parse dir/rel; it must fail with one diagnostic equal to `want` (with every %s = dir). */
static void
parse_fails(const char *dir, const char *rel, const char *want)
{
	struct sl_conf_errors errs = { 0 };
	char *path = sl_asprintf("%s/%s", dir, rel);
	char *expect = sl_strdup(want);
	char *msg;

	/* Replace each "%s" by the directory. */
	for (char *p; (p = strstr(expect, "%s")) != NULL;) {
		char *next = sl_asprintf("%.*s%s%s", (int)(p - expect), expect, dir, p + 2);

		sl_free(expect);
		expect = next;
	}
	assert_null(sl_conf_parse_file(path, &errs));
	msg = only_error(&errs);
	if (strcmp(msg, expect) != 0) {
		print_error("parsing %s:\n  got  %s\n  want %s\n", path, msg, expect);
		fail();
	}
	sl_free(msg);
	sl_free(expect);
	sl_free(path);
	sl_conf_errors_clear(&errs);
}

static void
test_include_file(void **state)
{
	const char *dir = *state;
	struct sl_conf_tree *tree;
	struct dump d;
	char *want;

	sl_free(put_file(dir, "main.conf", "A = 1\ninclude \"sub/a.conf\"\nB = 2\n"));
	/* A bare word path, relative to sub/ (the including file's directory). */
	sl_free(put_file(dir, "sub/a.conf", "C = 3\n  include b.conf\n"));
	sl_free(put_file(dir, "sub/b.conf", "\n D = 4\n"));
	tree = parse_ok(dir, "main.conf");
	assert_string_equal(tree_dump(tree, &d), "A=1; C=3; D=4; B=2");
	assert_int_equal(tree->file_cnt, 3);
	want = sl_asprintf("%s/main.conf", dir);
	assert_string_equal(tree->files[0], want);
	assert_string_equal(tree->stanzas[0].loc.file, want);
	sl_free(want);
	want = sl_asprintf("%s/sub/a.conf", dir);
	assert_string_equal(tree->files[1], want);
	assert_string_equal(tree->stanzas[1].loc.file, want);
	sl_free(want);
	want = sl_asprintf("%s/sub/b.conf", dir);
	assert_string_equal(tree->files[2], want);
	assert_string_equal(tree->stanzas[2].loc.file, want);
	assert_int_equal(tree->stanzas[2].loc.line, 2);
	assert_int_equal(tree->stanzas[2].loc.col, 2);
	sl_free(want);
	assert_int_equal(tree->stanzas[3].loc.line, 3);
	sl_conf_tree_free(tree);
}

static void
test_include_in_block(void **state)
{
	const char *dir = *state;
	struct sl_conf_tree *tree;
	struct dump d;

	sl_free(put_file(dir, "main.conf",
			 "Domain \"x\" {\n  A = 1\n  Include \"inner.conf\"\n  B = 2\n}\n"));
	sl_free(put_file(dir, "inner.conf", "Max = 5\nbinding b { }\n"));
	tree = parse_ok(dir, "main.conf");
	assert_string_equal(tree_dump(tree, &d), "Domain \"x\" {A=1; Max=5; binding b {}; B=2}");
	sl_conf_tree_free(tree);
}

static void
test_include_directory(void **state)
{
	const char *dir = *state;
	struct sl_conf_tree *tree;
	struct dump d;
	char *path;

	sl_free(put_file(dir, "main.conf", "First = 1\ninclude \"conf.d\"\nLast = 1\n"));
	/* strcmp order: digits, then upper case, then lower case; never the locale's. */
	sl_free(put_file(dir, "conf.d/b.conf", "Lower_B = 1\n"));
	sl_free(put_file(dir, "conf.d/a.conf", "Lower_A = 1\n"));
	sl_free(put_file(dir, "conf.d/B.conf", "Upper_B = 1\n"));
	sl_free(put_file(dir, "conf.d/10.conf", "Ten = 1\n"));
	sl_free(put_file(dir, "conf.d/a.conf~", "Backup = 1\n"));
	/* Skipped: hidden files, sub-directories (and what is in them), FIFOs. */
	sl_free(put_file(dir, "conf.d/.hidden.conf", "( broken\n"));
	sl_free(put_file(dir, "conf.d/sub/x.conf", "( broken\n"));
	sl_free(put_file(dir, "conf.d/.hiddendir/x.conf", "( broken\n"));
	path = sl_asprintf("%s/conf.d/fifo.conf", dir);
	assert_int_equal(mkfifo(path, 0644), 0);
	sl_free(path);
	tree = parse_ok(dir, "main.conf");
	assert_string_equal(tree_dump(tree, &d),
			    "First=1; Ten=1; Upper_B=1; Lower_A=1; Backup=1; Lower_B=1; Last=1");
	assert_int_equal(tree->file_cnt, 6);
	path = sl_asprintf("%s/conf.d/10.conf", dir);
	assert_string_equal(tree->files[1], path);
	assert_string_equal(tree->stanzas[1].loc.file, path);
	sl_free(path);
	sl_conf_tree_free(tree);

	/* The top-level path may itself be a directory; an empty one is fine. */
	tree = parse_ok(dir, "conf.d");
	assert_int_equal(tree->stanza_cnt, 5);
	assert_int_equal(tree->file_cnt, 5);
	sl_conf_tree_free(tree);
	path = sl_asprintf("%s/empty.d", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	sl_free(path);
	tree = parse_ok(dir, "empty.d");
	assert_int_equal(tree->stanza_cnt, 0);
	assert_int_equal(tree->file_cnt, 0);
	sl_conf_tree_free(tree);
}

static void
test_include_file_uri(void **state)
{
	const char *dir = *state;
	struct sl_conf_tree *tree;
	struct sl_conf_errors errs = { 0 };
	struct dump d;
	char *text;
	char *path;

	sl_free(put_file(dir, "x.conf", "X = 1\n"));
	sl_free(put_file(dir, "y.conf", "Y = 1\n"));
	text = sl_asprintf("include \"file://%s/x.conf\"\ninclude file://localhost%s/y.conf\n", dir,
			   dir);
	sl_free(put_file(dir, "main.conf", text));
	sl_free(text);
	tree = parse_ok(dir, "main.conf");
	assert_string_equal(tree_dump(tree, &d), "X=1; Y=1");
	path = sl_asprintf("%s/y.conf", dir);
	assert_string_equal(tree->files[2], path);
	sl_free(path);
	sl_conf_tree_free(tree);

	/* The top-level file may be a file:// URI too. */
	path = sl_asprintf("file://%s/main.conf", dir);
	tree = sl_conf_parse_file(path, &errs);
	sl_free(path);
	assert_non_null(tree);
	assert_string_equal(tree_dump(tree, &d), "X=1; Y=1");
	sl_conf_tree_free(tree);
	assert_int_equal(errs.cnt, 0);
}

static void
test_include_from_buffer(void **state)
{
	const char *dir = *state;
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree;
	struct dump d;
	char cwd[PATH_MAX];
	const char *text = "A = 1\ninclude \"x.conf\"\n";
	char *path;

	sl_free(put_file(dir, "x.conf", "X = 1\n"));
	/* Relative to base_dir; the buffer itself is not a file read. */
	tree = sl_conf_parse_buffer("<buffer>", dir, text, strlen(text), &errs);
	assert_non_null(tree);
	assert_string_equal(tree_dump(tree, &d), "A=1; X=1");
	assert_string_equal(tree->stanzas[0].loc.file, "<buffer>");
	assert_int_equal(tree->file_cnt, 1);
	path = sl_asprintf("%s/x.conf", dir);
	assert_string_equal(tree->files[0], path);
	sl_free(path);
	sl_conf_tree_free(tree);

	/* base_dir NULL: relative to the current directory. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	tree = sl_conf_parse_buffer("<buffer>", NULL, text, strlen(text), &errs);
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(tree);
	assert_string_equal(tree->files[0], "x.conf");
	sl_conf_tree_free(tree);
	assert_int_equal(errs.cnt, 0);
}

static void
test_include_errors(void **state)
{
	const char *dir = *state;
	char *path;

	sl_free(put_file(dir, "missing.conf", "A = 1\ninclude \"nope.conf\"\n"));
	parse_fails(
		dir, "missing.conf",
		"%s/missing.conf:2:1: cannot include '%s/nope.conf': No such file or directory");

	sl_free(put_file(dir, "self.conf", "include \"self.conf\"\n"));
	parse_fails(dir, "self.conf",
		    "%s/self.conf:1:1: include loop: '%s/self.conf' -> '%s/self.conf' (closed by "
		    "the include at 1:1 in '%s/self.conf')");

	/* Two files: reported where the loop starts, naming where it closes. */
	sl_free(put_file(dir, "loop-a.conf", "X = 1\ninclude \"loop-b.conf\"\n"));
	sl_free(put_file(dir, "loop-b.conf", "\n\n  include \"loop-a.conf\"\n"));
	parse_fails(dir, "loop-a.conf",
		    "%s/loop-a.conf:2:1: include loop: '%s/loop-a.conf' -> '%s/loop-b.conf' -> "
		    "'%s/loop-a.conf' (closed by the include at 3:3 in '%s/loop-b.conf')");

	/* A loop that does not pass through the top-level file. */
	sl_free(put_file(dir, "top.conf", "include \"loop-a.conf\"\n"));
	parse_fails(dir, "top.conf",
		    "%s/loop-a.conf:2:1: include loop: '%s/loop-a.conf' -> '%s/loop-b.conf' -> "
		    "'%s/loop-a.conf' (closed by the include at 3:3 in '%s/loop-b.conf')");

	/* Through a directory. */
	sl_free(put_file(dir, "dirloop.conf", "include \"dl.d\"\n"));
	sl_free(put_file(dir, "dl.d/x.conf", "include \"../dirloop.conf\"\n"));
	parse_fails(dir, "dirloop.conf",
		    "%s/dirloop.conf:1:1: include loop: '%s/dirloop.conf' -> '%s/dl.d/x.conf' -> "
		    "'%s/dl.d/../dirloop.conf' (closed by the include at 1:1 in '%s/dl.d/x.conf')");

	/* A syntax error in an included file is reported in that file. */
	sl_free(put_file(dir, "outer.conf", "A = 1\ninclude \"bad.conf\"\n"));
	sl_free(put_file(dir, "bad.conf", "B = 2\nC = (\n"));
	parse_fails(dir, "outer.conf", "%s/bad.conf:2:5: '(' is never closed");

	/* Braces must balance within each file. */
	sl_free(put_file(dir, "half.conf", "D {\ninclude \"closer.conf\"\n"));
	sl_free(put_file(dir, "closer.conf", "}\n"));
	parse_fails(dir, "half.conf", "%s/closer.conf:1:1: unexpected '}' (no block is open)");

	sl_free(put_file(dir, "scheme.conf",
			 "include \"eccmgr://u:secret@host:2026/boot/default\"\n"));
	parse_fails(dir, "scheme.conf",
		    "%s/scheme.conf:1:1: unsupported include scheme 'eccmgr' (only files, "
		    "directories and file:// URIs can be included)");

	path = sl_asprintf("%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0644), 0);
	sl_free(path);
	sl_free(put_file(dir, "fifo.conf", "include fifo\n"));
	parse_fails(dir, "fifo.conf",
		    "%s/fifo.conf:1:1: cannot include '%s/fifo': not a regular file or directory");

	sl_free(put_file(dir, "dangling.d/a.conf", "A = 1\n"));
	path = sl_asprintf("%s/dangling.d/b.conf", dir);
	assert_int_equal(symlink("no-such-target", path), 0);
	sl_free(path);
	sl_free(put_file(dir, "dangling.conf", "include dangling.d\n"));
	parse_fails(dir, "dangling.conf",
		    "%s/dangling.conf:1:1: cannot include '%s/dangling.d/b.conf': No such file or "
		    "directory");

	/* The top-level file: no include statement to point at. */
	parse_fails(dir, "none.conf", "cannot read '%s/none.conf': No such file or directory");
	parse_fails(dir, "fifo", "cannot read '%s/fifo': not a regular file or directory");
}

static void
test_top_level_scheme(void **state)
{
	struct sl_conf_errors errs = { 0 };
	char *msg;

	(void)state;
	assert_null(sl_conf_parse_file("http://example.com/ecelerity.conf", &errs));
	msg = only_error(&errs);
	assert_string_equal(msg, "unsupported include scheme 'http' (only files, directories and "
				 "file:// URIs can be included)");
	sl_free(msg);
	sl_conf_errors_clear(&errs);
}

static void
test_include_depth_limit(void **state)
{
	const char *dir = *state;
	struct sl_conf_tree *tree;
	char name[32];

	/* f0 includes f1 ... includes f33. */
	for (unsigned i = 0; i <= SL_CONF_MAX_INCLUDE_DEPTH + 1; i++) {
		char *text = i <= SL_CONF_MAX_INCLUDE_DEPTH
				     ? sl_asprintf("include f%u.conf\n", i + 1)
				     : sl_strdup("Z = 1\n");

		snprintf(name, sizeof(name), "f%u.conf", i);
		sl_free(put_file(dir, name, text));
		sl_free(text);
	}
	/* From f1, f33 is 32 includes deep: allowed. */
	tree = parse_ok(dir, "f1.conf");
	assert_int_equal(tree->stanza_cnt, 1);
	assert_int_equal(tree->file_cnt, SL_CONF_MAX_INCLUDE_DEPTH + 1);
	sl_conf_tree_free(tree);
	/* From f0 it is 33 deep. */
	parse_fails(dir, "f0.conf",
		    "%s/f32.conf:1:1: cannot include '%s/f33.conf': includes nested deeper than 32 "
		    "files");
}

static void
test_file_count_limit(void **state)
{
	const char *dir = *state;
	struct sl_conf_tree *tree;
	size_t len = strlen("include e.conf\n");
	char *text = sl_malloc(len * SL_CONF_MAX_FILES + 1);

	sl_free(put_file(dir, "e.conf", "E = 1\n"));
	/* The top file and 1023 includes: 1024 files read, the limit. */
	text[0] = '\0';
	for (unsigned i = 0; i < SL_CONF_MAX_FILES - 1; i++)
		memcpy(text + i * len, "include e.conf\n", len + 1);
	sl_free(put_file(dir, "max.conf", text));
	tree = parse_ok(dir, "max.conf");
	assert_int_equal(tree->file_cnt, SL_CONF_MAX_FILES);
	assert_int_equal(tree->stanza_cnt, SL_CONF_MAX_FILES - 1);
	sl_conf_tree_free(tree);
	/* One more include is refused, at its own line. */
	memcpy(text + (SL_CONF_MAX_FILES - 1) * len, "include e.conf\n", len + 1);
	sl_free(put_file(dir, "over.conf", text));
	sl_free(text);
	parse_fails(dir, "over.conf",
		    "%s/over.conf:1024:1: cannot include '%s/e.conf': over the limit of 1024 files "
		    "read");
}

/* ---------------------------------------------------------------- fixtures */

static const char *
srcdir(void)
{
	const char *top = getenv("top_srcdir");

	return top != NULL && top[0] != '\0' ? top : ".";
}

static int
name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
is_conf(const struct dirent *de)
{
	size_t len = strlen(de->d_name);

	return len > 5 && strcmp(de->d_name + len - 5, ".conf") == 0;
}

/* Every reference example parses. */
static void
test_fixtures_ref(void **state)
{
	char *dir = sl_asprintf("%s/test/fixtures/ref", srcdir());
	struct dirent **list;
	int cnt = scandir(dir, &list, is_conf, name_cmp);

	(void)state;
	if (cnt < 0)
		fail_msg("cannot read %s: %s (set top_srcdir)", dir, strerror(errno));
	assert_true(cnt >= 21);
	for (int i = 0; i < cnt; i++) {
		struct sl_conf_tree *tree = parse_ok(dir, list[i]->d_name);

		assert_true(tree->stanza_cnt > 0);
		sl_conf_tree_free(tree);
		free(list[i]);
	}
	free(list);
	sl_free(dir);
}

/*
 * Every negative fixture fails at the position its first line names; those
 * whose expected text is "Windows" parse here (the schema pass rejects them).
 */
static void
test_fixtures_neg(void **state)
{
	char *dir = sl_asprintf("%s/test/fixtures/neg", srcdir());
	struct dirent **list;
	int cnt = scandir(dir, &list, is_conf, name_cmp);

	(void)state;
	if (cnt < 0)
		fail_msg("cannot read %s: %s (set top_srcdir)", dir, strerror(errno));
	assert_true(cnt >= 20);
	for (int i = 0; i < cnt; i++) {
		char *path = sl_asprintf("%s/%s", dir, list[i]->d_name);
		struct sl_conf_errors errs = { 0 };
		struct sl_conf_tree *tree;
		char header[256];
		unsigned line;
		unsigned col;
		int text_at = 0;
		FILE *f = fopen(path, "r");

		assert_non_null(f);
		assert_non_null(fgets(header, sizeof(header), f));
		fclose(f);
		header[strcspn(header, "\n")] = '\0';
		if (sscanf(header, "# expect: %u:%u: %n", &line, &col, &text_at) != 2 ||
		    text_at == 0)
			fail_msg("%s: bad header '%s'", path, header);
		tree = sl_conf_parse_file(path, &errs);
		if (strcmp(header + text_at, "Windows") == 0) {
			assert_non_null(tree);
			sl_conf_tree_free(tree);
		} else {
			if (tree != NULL || errs.cnt != 1 || errs.list[0].file == NULL ||
			    strcmp(errs.list[0].file, path) != 0 || errs.list[0].line != line ||
			    errs.list[0].col != col ||
			    strstr(errs.list[0].msg, header + text_at) == NULL) {
				sl_conf_errors_print(&errs, stderr);
				fail_msg("%s: want %u:%u: %s", path, line, col, header + text_at);
			}
		}
		sl_conf_errors_clear(&errs);
		sl_free(path);
		free(list[i]);
	}
	free(list);
	sl_free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_locations),
		cmocka_unit_test(test_nesting_limits),
		cmocka_unit_test_setup_teardown(test_include_file, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_include_in_block, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_include_directory, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_include_file_uri, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_include_from_buffer, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_include_errors, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test(test_top_level_scheme),
		cmocka_unit_test_setup_teardown(test_include_depth_limit, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_file_count_limit, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test(test_fixtures_ref),
		cmocka_unit_test(test_fixtures_neg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
