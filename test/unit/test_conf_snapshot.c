/*
 * test/unit/test_conf_snapshot.c - schema checking, scopes and fallback,
 * blocks, printing and freeing of configuration snapshots
 * (conf/conf_snapshot.c, conf/conf_value.c, conf/conf_print.c).
 * The fallback cases are Momentum's own documented examples.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf/conf_snapshot.h"
#include "engine/alloc.h"

static struct sl_conf_snapshot *
build(const char *text, struct sl_conf_errors *errs)
{
	struct sl_conf_tree *tree =
		sl_conf_parse_buffer("t.conf", "/base", text, strlen(text), errs);

	if (tree == NULL)
		return NULL;
	return sl_conf_snapshot_build(tree, "/base", 7, errs);
}

static struct sl_conf_snapshot *
build_ok(const char *text)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = build(text, &errs);

	if (s == NULL)
		sl_conf_errors_print(&errs, stderr);
	assert_non_null(s);
	assert_int_equal(errs.cnt, 0);
	sl_conf_errors_clear(&errs); /* warnings and notices */
	return s;
}

static int64_t
eval_int(const struct sl_conf_snapshot *s, enum sl_opt opt, const char *binding, const char *domain)
{
	struct sl_conf_where w = { binding, domain, NULL };
	const union sl_conf_val *v = sl_conf_eval(s, opt, &w);

	assert_non_null(v);
	return v->i;
}

static void
test_defaults(void **state)
{
	struct sl_conf_snapshot *s = build_ok("");

	assert_int_equal(s->generation, 7);
	assert_int_equal(s->magic, SL_CONF_SNAPSHOT_MAGIC);
	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		/* Every option with a default has it typed, and global sees it. */
		if (sl_conf_options[i].def != NULL) {
			assert_non_null(s->dflt[i]);
			if (sl_conf_options[i].scopes & SL_S_GLOBAL)
				assert_ptr_equal(s->global[i], s->dflt[i]);
		} else {
			assert_null(s->dflt[i]);
		}
		assert_null(s->global_loc[i]);
	}
	assert_int_equal(sl_conf_int(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS), 32);
	/* An implicit ec_logger block exists with its defaults. */
	{
		size_t pos = 0;

		assert_non_null(sl_conf_block_next(s, "ec_logger", &pos));
	}
	sl_conf_snapshot_put(s);
}

static void
test_values(void **state)
{
	struct sl_conf_snapshot *s = build_ok("Max_Outbound_Connections = \"30\"\n"
					      "message_expiration = 2h\n"
					      "Outbound_Throttle_Messages = \"100/60\"\n"
					      "Relay_Domains = ( example.com *.example.com )\n"
					      "Gateway = \"[fe80::a00]:1\"\n"
					      "SpoolBase = spool/here\n");
	const union sl_conf_val *v;

	assert_int_equal(sl_conf_int(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS), 30);
	assert_int_equal(sl_conf_int(s, SL_OPT_MESSAGE_EXPIRATION), 7200);
	v = sl_conf_global(s, SL_OPT_OUTBOUND_THROTTLE_MESSAGES);
	assert_int_equal(v->thr.cnt, 100);
	assert_int_equal(v->thr.secs, 60);
	v = sl_conf_global(s, SL_OPT_RELAY_DOMAINS);
	assert_int_equal(v->list.cnt, 2);
	assert_string_equal(v->list.v[1], "*.example.com");
	assert_string_equal(sl_conf_str(s, SL_OPT_GATEWAY), "[fe80::a00]:1");
	assert_string_equal(sl_conf_str(s, SL_OPT_SPOOLBASE), "/base/spool/here");
	assert_non_null(s->global_loc[SL_OPT_SPOOLBASE]);
	assert_int_equal(s->global_loc[SL_OPT_SPOOLBASE]->line, 6);
	sl_conf_snapshot_put(s);
}

/* Momentum's "Domain scope and fallback" example. */
static void
test_fallback_domain(void **state)
{
	struct sl_conf_snapshot *s = build_ok("max_outbound_connections = 40\n"
					      "domain \"example.com\" {\n"
					      "  max_outbound_connections = 20\n"
					      "}\n");

	assert_int_equal(eval_int(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, NULL, "example.com"), 20);
	assert_int_equal(eval_int(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, NULL, "EXAMPLE.com"), 20);
	assert_int_equal(eval_int(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, NULL, "other.com"), 40);
	assert_int_equal(eval_int(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, NULL, NULL), 40);
	sl_conf_snapshot_put(s);
}

/* Momentum's "Binding scope and fallback" example, every case its text names. */
static void
test_fallback_binding(void **state)
{
	struct sl_conf_snapshot *s = build_ok("message_expiration = 86400\n"
					      "binding \"example\" {\n"
					      "  message_expiration = 3600\n"
					      "}\n"
					      "domain \"example.com\" {\n"
					      "  message_expiration = 120\n"
					      "}\n"
					      "binding \"example2\" {\n"
					      "  message_expiration = 7200\n"
					      "  domain example.com {\n"
					      "    message_expiration = 86400\n"
					      "  }\n"
					      "  domain \"anotherexample.com\" {\n"
					      "    max_outbound_connections = 500\n"
					      "  }\n"
					      "}\n"
					      "binding \"example3\" {\n"
					      "  domain \"example.com\" {\n"
					      "    max_outbound_connections = 500\n"
					      "  }\n"
					      "  domain \"anotherexample.com\" {\n"
					      "    message_expiration = 86400\n"
					      "  }\n"
					      "}\n");
	enum sl_opt me = SL_OPT_MESSAGE_EXPIRATION;

	assert_int_equal(eval_int(s, me, NULL, "x.org"), 86400);
	assert_int_equal(eval_int(s, me, NULL, "example.com"), 120);
	assert_int_equal(eval_int(s, me, "example", "x.org"), 3600);
	assert_int_equal(eval_int(s, me, "example", "example.com"), 3600);
	assert_int_equal(eval_int(s, me, "example2", "x.org"), 7200);
	assert_int_equal(eval_int(s, me, "example2", "example.com"), 86400);
	assert_int_equal(eval_int(s, me, "example2", "anotherexample.com"), 7200);
	assert_int_equal(eval_int(s, me, "example3", "anotherexample.com"), 86400);
	assert_int_equal(eval_int(s, me, "example3", "example.com"), 120);
	assert_int_equal(eval_int(s, me, "example3", "x.org"), 86400);
	assert_int_equal(eval_int(s, me, "no-such-binding", "example.com"), 120);
	sl_conf_snapshot_put(s);
}

/* Momentum's Binding_Group example and the yahoofriends example. */
static void
test_fallback_group(void **state)
{
	struct sl_conf_snapshot *s =
		build_ok("max_outbound_connections = 30\n"
			 "binding_group \"group1\" {\n"
			 "  max_outbound_connections = 5\n"
			 "  binding \"example\" {\n"
			 "    bind_address = 10.10.10.10\n"
			 "    max_outbound_connections = 15\n"
			 "    domain \"example.com\" {\n"
			 "    }\n"
			 "  }\n"
			 "  binding \"other\" { }\n"
			 "  domain \"g.example\" { max_outbound_connections = 9 }\n"
			 "}\n"
			 "binding \"yahoofriends\" {\n"
			 "  domain \"yahoo.com\" { max_outbound_connections = 30 }\n"
			 "}\n"
			 "domain \"yahoo.com\" { max_outbound_connections = 10 }\n");
	enum sl_opt mo = SL_OPT_MAX_OUTBOUND_CONNECTIONS;
	const struct sl_conf_binding *b;

	assert_int_equal(eval_int(s, mo, "example", "example.com"), 15);
	assert_int_equal(eval_int(s, mo, "other", "example.com"), 5);
	assert_int_equal(eval_int(s, mo, NULL, "example.com"), 30);
	/* binding_group::domain beats binding and group values */
	assert_int_equal(eval_int(s, mo, "example", "g.example"), 9);
	assert_int_equal(eval_int(s, mo, "yahoofriends", "yahoo.com"), 30);
	assert_int_equal(eval_int(s, mo, "other", "yahoo.com"), 5);
	assert_int_equal(eval_int(s, mo, NULL, "yahoo.com"), 10);
	assert_int_equal(eval_int(s, mo, NULL, "example.org"), 30);
	b = sl_conf_binding_find(s, "example");
	assert_non_null(b);
	assert_non_null(b->group);
	assert_string_equal(b->group->name, "group1");
	assert_null(sl_conf_binding_find(s, "yahoofriends")->group);
	assert_null(sl_conf_binding_find(s, "EXAMPLE")); /* binding names are case-sensitive */
	sl_conf_snapshot_put(s);
}

/*
 * binding_group = "name" inside a Binding (conf.ref.binding_group, before
 * 2.2.1.26) puts it in the group as if it were declared inside: the group's
 * options and Domain stanzas apply in the same order, whether the group is
 * declared before, after, or not at all (then it is made, empty).
 */
static void
test_group_named_inside(void **state)
{
	struct sl_conf_snapshot *s = build_ok(
		"max_outbound_connections = 30\n"
		"binding \"example\" {\n"
		"  binding_group = \"group1\"\n"
		"  bind_address = \"10.10.10.10\"\n"
		"}\n"
		"binding_group \"group1\" {\n"
		"  max_outbound_connections = 5\n"
		"  domain \"g.example\" { max_outbound_connections = 9 }\n"
		"  binding \"nested\" { }\n"
		"}\n"
		"binding \"lone\" { Binding_Group = solo }\n"
		"binding \"same\" { }\n"
		"binding_group \"group1\" { binding \"again\" { binding_group = group1 } }\n");
	enum sl_opt mo = SL_OPT_MAX_OUTBOUND_CONNECTIONS;
	const struct sl_conf_binding *b = sl_conf_binding_find(s, "example");
	const struct sl_conf_binding *n = sl_conf_binding_find(s, "nested");

	assert_non_null(b);
	assert_non_null(b->group);
	assert_ptr_equal(b->group, n->group); /* one group, not two of one name */
	assert_ptr_equal(sl_conf_binding_find(s, "again")->group, n->group);
	assert_int_equal(s->group_cnt, 2);
	assert_int_equal(eval_int(s, mo, "example", "x.org"), 5);
	assert_int_equal(eval_int(s, mo, "example", "g.example"), 9);
	assert_int_equal(eval_int(s, mo, "same", "x.org"), 30);
	assert_null(sl_conf_binding_find(s, "same")->group);
	b = sl_conf_binding_find(s, "lone");
	assert_non_null(b->group);
	assert_string_equal(b->group->name, "solo");
	assert_int_equal(eval_int(s, mo, "lone", "x.org"), 30);
	/* Not a value of the binding: evaluating it gives nothing. */
	assert_null(sl_conf_eval(s, SL_OPT_BINDING_GROUP,
				 &(struct sl_conf_where){ "example", NULL, NULL }));
	sl_conf_snapshot_put(s);
}

/*
 * One Binding_Group declared twice (say split over included files) is one
 * group: the first part's options apply to the bindings of the second.
 */
static void
test_group_twice(void **state)
{
	struct sl_conf_snapshot *s =
		build_ok("binding_group \"group1\" {\n"
			 "  max_outbound_connections = 5\n"
			 "  domain \"a.example\" { retry_interval = 60 }\n"
			 "  binding \"example\" { bind_address = \"10.10.10.10\" }\n"
			 "}\n"
			 "binding_group \"Group1\" { }\n" /* names are case-sensitive */
			 "binding_group \"group1\" {\n"
			 "  ehlo_hostname = \"g.example\"\n"
			 "  binding \"example2\" { bind_address = \"10.10.10.11\" }\n"
			 "}\n");
	const struct sl_conf_binding *b1 = sl_conf_binding_find(s, "example");
	const struct sl_conf_binding *b2 = sl_conf_binding_find(s, "example2");
	struct sl_conf_where w = { "example", NULL, NULL };

	assert_int_equal(s->group_cnt, 2);
	assert_non_null(b2->group);
	assert_ptr_equal(b1->group, b2->group);
	assert_int_equal(b2->group->loc.line, 1); /* where it was first declared */
	assert_int_equal(eval_int(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, "example2", "x.org"), 5);
	assert_int_equal(eval_int(s, SL_OPT_RETRY_INTERVAL, "example2", "a.example"), 60);
	assert_string_equal(sl_conf_eval(s, SL_OPT_EHLO_HOSTNAME, &w)->s, "g.example");
	sl_conf_snapshot_put(s);
}

/* Privileges (Solaris) is accepted with the no-effect notice, at its file:line. */
static void
test_security_warnings(void **state)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = build("Security {\n"
					   "  Capabilities = \"cap_net_bind_service+ep\"\n"
					   "  Privileges = \"basic net_privaddr\"\n"
					   "}\n",
					   &errs);
	bool has_priv = false;

	assert_non_null(s);
	assert_int_equal(errs.cnt, 0);
	for (size_t i = 0; i < errs.note_cnt; i++) {
		const struct sl_conf_error *e = &errs.note[i];

		if (e->line == 3 && strstr(e->msg, "Privileges is accepted for compatibility"))
			has_priv = true;
		assert_false(strncmp(e->msg, "Capabilities ", 13) == 0); /* applied: no notice */
	}
	assert_int_equal(errs.warn_cnt, 0);
	assert_true(has_priv);
	sl_conf_errors_clear(&errs);
	sl_conf_snapshot_put(s);
	/* Without a Security block, no warning. */
	s = build("max_outbound_connections = 3\n", &errs);
	assert_non_null(s);
	assert_int_equal(errs.warn_cnt, 0);
	sl_conf_snapshot_put(s);
}

/* Momentum's regex domain example: exact names first, then regexes in order. */
static void
test_regex_domains(void **state)
{
	struct sl_conf_snapshot *s =
		build_ok("domain \"example.com\" {\n"
			 "  max_outbound_connections = 20\n"
			 "}\n"
			 "domain \"/(?:^|[.])example[.](?:com|co[.]uk)$/\" {\n"
			 "  max_outbound_connections = 15\n"
			 "  max_deliveries_per_connection = 5\n"
			 "}\n"
			 "domain \"/uk$/\" { max_outbound_connections = 3 }\n");
	enum sl_opt mo = SL_OPT_MAX_OUTBOUND_CONNECTIONS;
	enum sl_opt md = SL_OPT_MAX_DELIVERIES_PER_CONNECTION;

	assert_int_equal(eval_int(s, mo, NULL, "example.com"), 20);
	assert_int_equal(eval_int(s, md, NULL, "example.com"), 5);
	assert_int_equal(eval_int(s, mo, NULL, "example.co.uk"), 15);
	assert_int_equal(eval_int(s, mo, NULL, "mail.example.com"), 15);
	assert_int_equal(eval_int(s, mo, NULL, "badexample.com"), 32);
	assert_int_equal(eval_int(s, mo, NULL, "other.co.uk"), 3);
	assert_int_equal(s->top.domain_exact_cnt, 1);
	assert_int_equal(s->top.domain_cnt, 3);
	sl_conf_snapshot_put(s);
}

static void
test_host_scope(void **state)
{
	struct sl_conf_snapshot *s =
		build_ok("domain \"example.com\" { max_outbound_connections = 20 }\n"
			 "host \"mx1.example.com\" { max_outbound_connections = 2 }\n");
	struct sl_conf_where w = { NULL, "example.com", "mx1.example.com" };

	assert_int_equal(sl_conf_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w)->i, 2);
	w.host = "mx2.example.com";
	assert_int_equal(sl_conf_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w)->i, 20);
	sl_conf_snapshot_put(s);
}

/* Host stanzas alone, no fallback: declared or not, set or not, in a binding or a regex. */
static void
test_host_eval(void **state)
{
	struct sl_conf_snapshot *s = build_ok(
		"max_outbound_connections = 32\n"
		"host \"mx1.example.com\" { max_outbound_connections = 2 }\n"
		"host \"mx2.example.com\" { }\n"
		"host \"/^mx[0-9]+\\.regex\\.test$/\" { max_outbound_connections = 7 }\n"
		"binding \"b\" { host \"mx1.example.com\" { max_outbound_connections = 5 } }\n");
	struct sl_conf_where w = { NULL, "example.com", "MX1.example.com" };
	const union sl_conf_val *v;
	bool is_declared;

	v = sl_conf_host_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w, &is_declared);
	assert_true(is_declared);
	assert_int_equal(v->i, 2);
	w.host = "mx2.example.com"; /* declared, not set: no value (no inheritance) */
	assert_null(sl_conf_host_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w, &is_declared));
	assert_true(is_declared);
	w.host = "mx3.example.com";
	assert_null(sl_conf_host_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w, &is_declared));
	assert_false(is_declared);
	w.host = "mx12.regex.test";
	v = sl_conf_host_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w, &is_declared);
	assert_true(is_declared);
	assert_int_equal(v->i, 7);
	w.binding = "b";
	w.host = "mx1.example.com";
	v = sl_conf_host_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w, &is_declared);
	assert_int_equal(v->i, 5);
	w.host = NULL;
	assert_null(sl_conf_host_eval(s, SL_OPT_MAX_OUTBOUND_CONNECTIONS, &w, &is_declared));
	assert_false(is_declared);
	sl_conf_snapshot_put(s);
}

static void
test_blocks(void **state)
{
	struct sl_conf_snapshot *s = build_ok(
		"ThreadPool \"SwapOut\" { Concurrency = 5 }\n"
		"ThreadPool \"IO\" { Concurrency = 50 }\n"
		"SNMP { State = enabled Address = 127.0.0.1:8162 Community = \"public\" }\n"
		"Logger logging/ec_logger ec_logger\n"
		"{\n"
		"   mainlog = /var/log/ecelerity/mainlog.ec\n"
		"   heartbeat = 30\n"
		"}\n");
	const struct sl_conf_block *b;
	size_t pos = 0;

	b = sl_conf_block_next(s, "threadpool", &pos);
	assert_non_null(b);
	assert_string_equal(b->name, "SwapOut");
	assert_int_equal(sl_conf_block_get(s, b, SL_OPT_THREADPOOL_CONCURRENCY)->i, 5);
	b = sl_conf_block_next(s, "ThreadPool", &pos);
	assert_non_null(b);
	assert_string_equal(b->name, "IO");
	assert_null(sl_conf_block_next(s, "ThreadPool", &pos));
	pos = 0;
	b = sl_conf_block_next(s, "snmp", &pos);
	assert_non_null(b);
	assert_string_equal(sl_conf_block_get(s, b, SL_OPT_SNMP_COMMUNITY)->s, "public");
	pos = 0;
	b = sl_conf_block_next(s, "ec_logger", &pos);
	assert_non_null(b);
	assert_string_equal(sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_MAINLOG)->s,
			    "/var/log/ecelerity/mainlog.ec");
	assert_int_equal(sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_HEARTBEAT)->i, 30);
	assert_null(sl_conf_block_next(s, "ec_logger", &pos)); /* no implicit second one */
	sl_conf_snapshot_put(s);
}

struct err_case {
	const char *text;
	unsigned line, col;
	const char *msg;
};

static const struct err_case err_cases[] = {
	{ "No_Such = 1", 1, 1, "unknown option 'No_Such'" },
	{ "Max_Outbound_Connections = lots", 1, 28, "bad value for 'Max_Outbound_Connections'" },
	{ "Max_Outbound_Connections = 1 2", 1, 31, "expected '='" }, /* the parser's */
	{ "Max_Outbound_Connections = ( 1 2 )", 1, 28, "takes a single value, not a list" },
	{ "Max_Outbound_Connections = 3\nmax_outbound_connections = 4", 2, 1,
	  "already set at t.conf:1" },
	{ "Domain \"a.com\" { SpoolBase = \"/x\" }", 1, 18, "not valid in domain scope" },
	{ "Domain \"a.com\" { Domain \"b.com\" { } }", 1, 18, "Domain is not valid inside domain" },
	{ "Domain \"a.com\" { }\nDOMAIN \"A.com\" { }", 2, 1, "already defined" },
	{ "Domain \"/(unclosed/\" { }", 1, 8, "bad regular expression" },
	{ "Domain { }", 1, 1, "needs exactly one name" },
	{ "Binding \"has space\" { }", 1, 9, "without spaces or colons" },
	{ "Binding \"b\" { }\nBinding \"b\" { }", 2, 1, "already defined at t.conf:1" },
	{ "Binding \"b\" { Binding_Group \"g\" { } }", 1, 15, "valid only at top level" },
	{ "Binding_Group \"g\" { Binding \"b\" { Binding \"c\" { } } }", 1, 35,
	  "Binding is valid only at top level or inside a Binding_Group" },
	/* A group declared twice is one group: an option or Domain set in both
	 * parts is set twice. */
	{ "Binding_Group \"g\" { Retry_Interval = 5 }\nBinding_Group \"g\" { Retry_Interval = 6 }",
	  2, 21, "option 'Retry_Interval' is already set at t.conf:1" },
	{ "Binding_Group \"g\" { Domain \"a\" { } }\nBinding_Group \"g\" { Domain \"A\" { } }", 2,
	  21, "Domain \"A\" is already defined at t.conf:1" },
	{ "binding_group = \"g\"", 1, 1, "not valid in global scope (valid in: binding)" },
	{ "Binding_Group \"g\" { binding_group = \"g\" }", 1, 21,
	  "not valid in binding_group scope" },
	{ "Binding \"b\" { binding_group = \"g\"\nbinding_group = \"h\" }", 2, 1,
	  "option 'binding_group' is already set at t.conf:1" },
	{ "Binding \"b\" { binding_group = \"a b\" }", 1, 31, "bad value for 'binding_group'" },
	{ "Binding_Group \"g\" { Binding \"b\" { binding_group = \"h\" } }", 1, 35,
	  "binding_group \"h\" names another group than the Binding_Group \"g\"" },
	{ "SNMP { }\nSNMP { }", 2, 1, "SNMP is already defined" },
	{ "SNMP { Concurrency = 3 }", 1, 8, "not valid in SNMP scope (valid in: ThreadPool)" },
	{ "ThreadPool { Concurrency = 3 }", 1, 1, "ThreadPool needs a name" },
	{ "Frobnicate \"x\" { }", 1, 1, "unknown block 'Frobnicate'" },
	{ "Max_Outbound_Connections { }", 1, 1, "is an option, not a block" },
	{ "Validate validate/spf_v1 spf_v1 { }", 1, 10, "unknown module 'spf_v1'" },
	{ "ec_logger \"a\" <colour=\"red\"> { }", 1, 16, "unknown module attribute 'colour'" },
	{ "Domain \"a.com\" <x=1> { }", 1, 17, "takes no <attributes>" },
};

static void
test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *c = &err_cases[i];
		struct sl_conf_errors errs = { 0 };
		struct sl_conf_snapshot *s;
		bool is_found = false;

		print_message("case %zu: %s\n", i, c->text);
		s = build(c->text, &errs);
		assert_null(s);
		assert_true(errs.cnt > 0);
		for (size_t k = 0; k < errs.cnt; k++) {
			const struct sl_conf_error *e = &errs.list[k];

			print_message("  -> %u:%u: %s\n", e->line, e->col, e->msg);
			if (e->line == c->line && e->col == c->col && strstr(e->msg, c->msg))
				is_found = true;
			assert_string_equal(e->file, "t.conf");
		}
		assert_true(is_found);
		sl_conf_errors_clear(&errs);
	}
}

/* All errors of a file are reported, not just the first. */
static void
test_all_errors(void **state)
{
	struct sl_conf_errors errs = { 0 };

	assert_null(build("a = 1\nb = 2\nDomain \"x\" { c = 3 }\nMax_Retries = -5\n", &errs));
	assert_int_equal(errs.cnt, 4);
	assert_int_equal(errs.list[0].line, 1);
	assert_int_equal(errs.list[1].line, 2);
	assert_int_equal(errs.list[2].line, 3);
	assert_int_equal(errs.list[3].line, 4);
	sl_conf_errors_clear(&errs);
}

static char *
print_to_string(const struct sl_conf_snapshot *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	sl_conf_snapshot_print(s, f);
	fclose(f);
	return buf;
}

/* Printing is a fixed point: print -> parse -> print gives the same text. */
static void
test_print_fixed_point(void **state)
{
	static const char text[] =
		"ESMTP_Listener = ( *:25,200~4 <proto=ipv4> [\n"
		"  0.0.0.0/0 = ( personality [ idle_time = 300 static_banner = \"220 a \\\"q\\\" "
		"b\" ]\n"
		"                continue )\n"
		"  10.1.2.4/32 = ( relay_for_sending_domains [ client1.com = true ]\n"
		"                  context [ client = \"ACME Inc.\" ] TLS [ certificate = "
		"\"/c.pem\" ] )\n"
		"] /tmp/x.sock,10 )\n"
		"Relay_Domains = ( example.com \"*.example.net\" )\n"
		"binding_group \"g\" { max_outbound_connections = 5\n"
		"  binding \"b\" { bind_address = \"10.0.0.1\" domain \"a.com\" { retry_interval = "
		"60 } } }\n"
		"binding \"solo\" { host \"mx.a.com\" { max_outbound_connections = 1 } }\n"
		"domain \"/x$/\" { max_retries = 2 }\n"
		"ThreadPool \"IO\" { Concurrency = 8 }\n"
		"ec_logger { mainlog = \"/tmp/m.ec\" }\n";
	struct sl_conf_snapshot *s1 = build_ok(text), *s2;
	char *p1 = print_to_string(s1), *p2;

	s2 = build_ok(p1);
	p2 = print_to_string(s2);
	assert_string_equal(p1, p2);
	assert_non_null(strstr(p1, "Max_Outbound_Connections = 32\n"));
	assert_non_null(strstr(p1, "static_banner") || strstr(p1, "Static_Banner"));
	sl_free(p1);
	sl_free(p2);
	sl_conf_snapshot_put(s1);
	sl_conf_snapshot_put(s2);
}

static void
test_builtin_default(void **state)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = sl_conf_load(NULL, "/state", 1, &errs);
	const union sl_conf_val *v;

	if (s == NULL)
		sl_conf_errors_print(&errs, stderr);
	assert_non_null(s);
	v = sl_conf_global(s, SL_OPT_ESMTP_LISTENER);
	assert_non_null(v);
	assert_string_equal(v->listener->addrs[0].text, "127.0.0.1:2525");
	assert_string_equal(sl_conf_str(s, SL_OPT_SPOOLBASE), "/state/sluice-state/spool");
	v = sl_conf_global(s, SL_OPT_CONTROL_LISTENER);
	assert_non_null(v);
	assert_string_equal(v->listener->addrs[0].path, "/state/sluice-state/control.sock");
	sl_conf_snapshot_put(s);
}

/* Line and column (1-based) of `what` in `text`, which must hold it. */
static struct sl_conf_loc
loc_of(const char *text, const char *what)
{
	const char *at = strstr(text, what);
	struct sl_conf_loc l = { "t.conf", 1, 1 };

	assert_non_null(at);
	for (const char *p = text; p < at; p++) {
		l.col++;
		if (*p == '\n') {
			l.line++;
			l.col = 1;
		}
	}
	return l;
}

/*
 * A configuration that sets option `o` once, with a valid value, in the
 * first scope of its row that this test knows how to write.
 */
static char *
noeffect_text(const struct sl_conf_option *o)
{
	char *v, *text = NULL;

	if (o->def != NULL)
		v = sl_asprintf("\"%s\"", o->def);
	else if (o->type == SL_T_INT || o->type == SL_T_SIZE || o->type == SL_T_SECONDS)
		v = sl_strdup("20000");
	else if (o->type == SL_T_LIST)
		v = sl_strdup("( a.test \"*.b.test\" )");
	else
		v = sl_strdup("\"/x\"");
	if (o->scopes & SL_S_GLOBAL)
		text = sl_asprintf("# only %s\n  %s = %s\n", o->name, o->name, v);
	else if (o->scopes & SL_S_THREADPOOL)
		text = sl_asprintf("ThreadPool \"p\" {\n  Concurrency = 1\n  %s = %s\n}\n", o->name,
				   v);
	else if (o->scopes & SL_S_EC_LOGGER)
		text = sl_asprintf("ec_logger {\n  %s = %s\n}\n", o->name, v);
	else if (o->scopes & SL_S_SECURITY)
		text = sl_asprintf("Security {\n  %s = %s\n}\n", o->name, v);
	else if (o->scopes & SL_S_PERSONALITY)
		text = sl_asprintf(
			"ESMTP_Listener = ( 127.0.0.1:25 127.0.0.1:26 [\n  0.0.0.0/0 = ( "
			"personality [ idle_time = 30 %s = %s ] )\n] )\n",
			o->name, v);
	else
		fail_msg("no configuration text for %s's scopes %#x", o->name, o->scopes);
	sl_free(v);
	return text;
}

/*
 * Every option flagged as having no effect (SL_OPT_NOEFFECT) loads, and
 * each setting of it gives exactly one notice naming it, its place and why;
 * sluiced -t and start-up print these.
 */
static void
test_noeffect_notices(void **state)
{
	size_t flagged = 0;

	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];
		struct sl_conf_errors errs = { 0 };
		struct sl_conf_snapshot *s;
		struct sl_conf_loc l;
		char *text, *got, *want, *needle;

		if (o->noeffect == NULL)
			continue;
		flagged++;
		assert_true(strlen(o->noeffect) > 0);
		text = noeffect_text(o);
		s = build(text, &errs);
		if (s == NULL)
			sl_conf_errors_print(&errs, stderr);
		assert_non_null(s);
		assert_int_equal(errs.cnt, 0);
		assert_int_equal(errs.warn_cnt, 0);
		if (errs.note_cnt != 1)
			fail_msg("%s: %zu notices for one setting", o->name, errs.note_cnt);
		/* The notice points at the name where it is set (not in the comment). */
		needle = sl_asprintf(" %s =", o->name);
		l = loc_of(text, needle);
		l.col++;
		sl_free(needle);
		got = sl_conf_error_format(&errs.note[0]);
		want = sl_asprintf("t.conf:%u:%u: %s is accepted for compatibility and has no "
				   "effect in sluice (%s)",
				   l.line, l.col, o->name, o->noeffect);
		assert_string_equal(got, want);
		sl_free(got);
		sl_free(want);
		sl_free(text);
		sl_conf_errors_clear(&errs);
		sl_conf_snapshot_put(s);
	}
	/* TLS and its kind: STARTTLS is not built; the list must not silently empty. */
	assert_true(flagged >= 6);
	assert_non_null(sl_conf_options[SL_OPT_TLS].noeffect);
}

/* A flagged option set in two scopes gives a notice for each; read options give none. */
static void
test_noeffect_scopes(void **state)
{
	static const char text[] =
		"Retry_Interval = 60\n"
		"Domain \"a.test\" { Retry_Interval = 5 TLS = required }\n"
		"Binding \"b\" { TLS = ifavailable Max_Outbound_Connections = 3 }\n"
		"ThreadPool \"Spool\" { Concurrency = 2 }\n"
		"ec_logger { mainlog = \"/m.ec\" }\n"
		"ESMTP_Listener = ( 127.0.0.1:25 [\n"
		"  0.0.0.0/0 = ( personality [ idle_time = 30 ] ) ] )\n";
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = build(text, &errs);
	char *line;

	assert_non_null(s);
	assert_int_equal(errs.cnt, 0);
	assert_int_equal(errs.note_cnt, 2);
	line = sl_conf_error_format(&errs.note[0]);
	assert_string_equal(line, "t.conf:2:38: TLS is accepted for compatibility and has no "
				  "effect in sluice (outbound STARTTLS is not built yet)");
	sl_free(line);
	line = sl_conf_error_format(&errs.note[1]);
	assert_non_null(strstr(line, "t.conf:3:15: TLS is accepted for compatibility"));
	sl_free(line);
	sl_conf_errors_clear(&errs);
	sl_conf_snapshot_put(s);

	/* Without them: options sluice reads give no notice anywhere. */
	s = build("Retry_Interval = 60\n"
		  "Domain \"a.test\" { Retry_Interval = 5 }\n"
		  "ThreadPool \"Spool\" { Concurrency = 2 }\n"
		  "ec_logger { mainlog = \"/m.ec\" }\n"
		  "control_listener_timeout = 30\n"
		  "tcp_buffer_size = 16k\n"
		  "ESMTP_Listener = ( 127.0.0.1:25 [\n"
		  "  0.0.0.0/0 = ( personality [ idle_time = 30 ] ) ] )\n",
		  &errs);
	assert_non_null(s);
	assert_int_equal(errs.cnt, 0);
	assert_int_equal(errs.note_cnt, 0);
	sl_conf_errors_clear(&errs);
	sl_conf_snapshot_put(s);
}

static int
teardown(void **state)
{
	sl_rcu_barrier();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),         cmocka_unit_test(test_values),
		cmocka_unit_test(test_fallback_domain),  cmocka_unit_test(test_fallback_binding),
		cmocka_unit_test(test_fallback_group),   cmocka_unit_test(test_regex_domains),
		cmocka_unit_test(test_host_scope),       cmocka_unit_test(test_host_eval),
		cmocka_unit_test(test_blocks),           cmocka_unit_test(test_errors),
		cmocka_unit_test(test_all_errors),       cmocka_unit_test(test_print_fixed_point),
		cmocka_unit_test(test_builtin_default),  cmocka_unit_test(test_group_named_inside),
		cmocka_unit_test(test_group_twice),      cmocka_unit_test(test_security_warnings),
		cmocka_unit_test(test_noeffect_notices), cmocka_unit_test(test_noeffect_scopes),
	};

	return cmocka_run_group_tests_name("conf_snapshot", tests, NULL, teardown);
}
