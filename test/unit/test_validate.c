/*
 * test/unit/test_validate.c - the validation runner and the built-in
 * modules (proto/validate.c): domain globs, CIDR relay hosts, ACL relay
 * rights, <postmaster>, __bypass_ context variables, the chain's order
 * (built-ins, then loaded modules as declared), passive and named
 * instances, and the ehlo, require_ehlo, null_sender and rfc2822 checks.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto/validate.h"

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
test_domain_globs(void **state)
{
	static const char *const list[] = { "example.com", "*.example.net", "*suffix.org" };
	static const struct {
		const char *domain;
		bool is_in;
	} cases[] = {
		{ "example.com", true },      { "EXAMPLE.COM", true },
		{ "a.example.com", false },   { "a.example.net", true },
		{ "example.net", false },     { "x.y.example.net", true },
		{ "suffix.org", true },       { "badsuffix.org", true },
		{ "suffix.org.evil", false }, { "", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("%s\n", cases[i].domain);
		assert_int_equal(sl_validate_domain_in(cases[i].domain, list, 3), cases[i].is_in);
	}
}

static void
test_peer_in(void **state)
{
	static const char *const list[] = { "127.0.0.0/8", "10.1.2.3", "2001:db8::/32", "junk" };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

	inet_pton(AF_INET, "127.9.9.9", &sin.sin_addr);
	assert_true(sl_validate_peer_in((struct sockaddr *)&sin, list, 4));
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	assert_true(sl_validate_peer_in((struct sockaddr *)&sin, list, 4));
	inet_pton(AF_INET, "10.1.2.4", &sin.sin_addr);
	assert_false(sl_validate_peer_in((struct sockaddr *)&sin, list, 4));
	inet_pton(AF_INET6, "2001:db8:5::1", &sin6.sin6_addr);
	assert_true(sl_validate_peer_in((struct sockaddr *)&sin6, list, 4));
	assert_false(sl_validate_peer_in(NULL, list, 4));
}

struct relay_case {
	const char *peer;
	const char *sender;
	const char *rcpt;
	bool is_open;
	const char *sender_domain; /* relay_for_sending_domains [ this = true ], or NULL */
	const char *bypass;        /* __bypass_relay value, or NULL */
	enum sl_verdict_kind want;
};

static const struct relay_case relay_cases[] = {
	{ "192.0.2.1", "a@x.org", "u@ours.example", false, NULL, NULL, SL_VERDICT_ACCEPT },
	{ "192.0.2.1", "a@x.org", "u@sub.wild.example", false, NULL, NULL, SL_VERDICT_ACCEPT },
	{ "192.0.2.1", "a@x.org", "u@elsewhere.example", false, NULL, NULL, SL_VERDICT_REJECT },
	{ "192.0.2.1", "a@x.org", "PostMaster", false, NULL, NULL, SL_VERDICT_ACCEPT },
	{ "10.9.0.1", "a@x.org", "u@elsewhere.example", false, NULL, NULL, SL_VERDICT_ACCEPT },
	{ "192.0.2.1", "a@x.org", "u@elsewhere.example", true, NULL, NULL, SL_VERDICT_ACCEPT },
	{ "192.0.2.1", "a@client1.com", "u@elsewhere.example", false, "client1.com", NULL,
	  SL_VERDICT_ACCEPT },
	{ "192.0.2.1", "a@client3.com", "u@elsewhere.example", false, "client1.com", NULL,
	  SL_VERDICT_REJECT },
	{ "192.0.2.1", "", "u@elsewhere.example", false, "client1.com", NULL, SL_VERDICT_REJECT },
	{ "192.0.2.1", "a@x.org", "u@elsewhere.example", false, NULL, "true", SL_VERDICT_ACCEPT },
	{ "192.0.2.1", "a@x.org", "u@elsewhere.example", false, NULL, "false", SL_VERDICT_REJECT },
};

static const char *relay_bypass;

static const char *
ctx_get(void *arg, const char *key)
{
	return strcmp(key, "__bypass_relay") == 0 ? relay_bypass : NULL;
}

static void
test_relay(void **state)
{
	struct sl_conf_snapshot *s = build("Relay_Domains = ( ours.example *.wild.example )\n"
					   "Relay_Hosts = ( 10.9.0.0/16 )\n");
	struct sl_validate_chain ch;

	sl_validate_chain_build(s, &ch);

	for (size_t i = 0; i < sizeof(relay_cases) / sizeof(relay_cases[0]); i++) {
		const struct relay_case *c = &relay_cases[i];
		struct sockaddr_in sin = { .sin_family = AF_INET };
		const char *domains[] = { c->sender_domain, NULL };
		struct sl_validate_relay r = { .is_open = c->is_open,
					       .sender_domains = domains,
					       .sender_domain_cnt = c->sender_domain ? 1 : 0 };
		struct sl_validate_ctx ctx = { .snap = s,
					       .peer = (struct sockaddr *)&sin,
					       .peer_ip = c->peer,
					       .helo = "h",
					       .sender = c->sender,
					       .rcpt = c->rcpt,
					       .relay = &r,
					       .context_get = ctx_get };
		struct sl_verdict v;

		print_message("case %zu: %s -> %s\n", i, c->sender, c->rcpt);
		inet_pton(AF_INET, c->peer, &sin.sin_addr);
		relay_bypass = c->bypass;
		sl_validate_run(&ch, SL_VPHASE_RCPTTO, &ctx, true, &v);
		assert_int_equal(v.kind, c->want);
		if (v.kind == SL_VERDICT_REJECT) {
			assert_int_equal(v.code, 550);
			assert_string_equal(v.enhanced, "5.7.1");
			assert_string_equal(v.module, "relay");
		}
		/* Other phases have no opinion. */
		sl_validate_run(&ch, SL_VPHASE_MAILFROM, &ctx, true, &v);
		assert_int_equal(v.kind, SL_VERDICT_ACCEPT);
	}
	assert_false(ch.needs_pool[SL_VPHASE_RCPTTO]);
	assert_false(ch.needs_pool[SL_VPHASE_CONNECT]); /* rdns not loaded */
	assert_string_equal(sl_validate_phase_name(SL_VPHASE_MAILFROM), "awaiting mailfrom");
	sl_conf_snapshot_put(s);
}

static const char *const builtin_names[] = { "ehlo",         "require_ehlo", "null_sender",
					     "message_size", "relay",        "rfc2822" };

/* Built-ins first in their documented order, then loaded modules in declaration order. */
static void
test_chain(void **state)
{
	struct sl_conf_snapshot *plain = build("");
	struct sl_conf_snapshot *with =
		build("rdns <name=\"second\"> { }\n"
		      "Validate validate/rdns rdns passive { Require_PTR = true }\n"
		      "Validate validate/rdns rdns <name=\"third\"> { Require_PTR = true }\n");
	struct sl_validate_chain ch;
	const size_t nb = sizeof(builtin_names) / sizeof(builtin_names[0]);

	sl_validate_chain_build(plain, &ch);
	assert_int_equal(ch.cnt, nb);
	for (size_t i = 0; i < nb; i++) {
		assert_string_equal(ch.link[i].name, builtin_names[i]);
		assert_null(ch.link[i].block);
	}
	for (size_t p = 0; p < SL_VPHASE__COUNT; p++)
		assert_false(ch.needs_pool[p]); /* the built-ins never block */
	sl_validate_chain_build(with, &ch);
	/* The passive instance is left out: its hooks are never called. */
	assert_int_equal(ch.cnt, nb + 2);
	assert_string_equal(ch.link[nb].name, "second");
	assert_string_equal(ch.link[nb + 1].name, "third");
	assert_non_null(ch.link[nb + 1].block);
	assert_true(ch.needs_pool[SL_VPHASE_CONNECT]);
	assert_false(ch.needs_pool[SL_VPHASE_RCPTTO]);
	assert_false(ch.needs_pool[SL_VPHASE_DATA]);
	/* A Unix-socket client (no address) is not looked up, even with Require_PTR. */
	{
		struct sl_validate_ctx ctx = { .snap = with, .peer = NULL, .peer_ip = "unix" };
		struct sl_verdict v;

		sl_validate_run(&ch, SL_VPHASE_CONNECT, &ctx, false, &v);
		assert_int_equal(v.kind, SL_VERDICT_ACCEPT);
		sl_validate_run(&ch, SL_VPHASE_CONNECT, &ctx, true, &v);
		assert_int_equal(v.kind, SL_VERDICT_ACCEPT);
	}
	sl_conf_snapshot_put(plain);
	sl_conf_snapshot_put(with);
}

/* Loading the same instance twice, or too many, is a configuration error. */
static void
test_instances(void **state)
{
	static const char *const bad[] = {
		"rdns { }\nValidate validate/rdns rdns { }\n",
		"rdns <name=\"a\"> { }\nrdns <name=\"a\"> { }\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_conf_errors errs = { 0 };
		struct sl_conf_tree *tree =
			sl_conf_parse_buffer("t.conf", "/", bad[i], strlen(bad[i]), &errs);

		assert_non_null(tree);
		assert_null(sl_conf_snapshot_build(tree, "/", 1, &errs));
		sl_conf_errors_clear(&errs);
	}
}

static const char *ctx_bypass_key;

static const char *
ctx_get_bypass(void *arg, const char *key)
{
	return ctx_bypass_key != NULL && strcmp(key, ctx_bypass_key) == 0 ? "true" : NULL;
}

struct builtin_case {
	enum sl_validate_phase phase;
	bool require_ehlo, allow_null;
	const char *helo, *sender;
	bool has_date;
	unsigned want_code; /* 0: accept */
	const char *want_module;
};

static const struct builtin_case builtin_cases[] = {
	{ SL_VPHASE_EHLO, false, true, "client.test", NULL, false, 0, NULL },
	{ SL_VPHASE_EHLO, false, true, "[192.0.2.1]", NULL, false, 0, NULL },
	{ SL_VPHASE_EHLO, false, true, "my_pc", NULL, false, 0, NULL },
	{ SL_VPHASE_EHLO, false, true, "bad@name", NULL, false, 501, "ehlo" },
	{ SL_VPHASE_EHLO, false, true, "a..b", NULL, false, 501, "ehlo" },
	{ SL_VPHASE_EHLO, false, true, "[1.2.3.4", NULL, false, 501, "ehlo" },
	{ SL_VPHASE_MAILFROM, true, true, "", "a@x.test", false, 503, "require_ehlo" },
	{ SL_VPHASE_MAILFROM, true, true, "h.test", "a@x.test", false, 0, NULL },
	{ SL_VPHASE_MAILFROM, false, true, "", "a@x.test", false, 0, NULL },
	{ SL_VPHASE_MAILFROM, false, false, "h.test", "", false, 553, "null_sender" },
	{ SL_VPHASE_MAILFROM, false, true, "h.test", "", false, 0, NULL },
	/* Both objections: the earlier module in the chain decides. */
	{ SL_VPHASE_MAILFROM, true, false, "", "", false, 503, "require_ehlo" },
	{ SL_VPHASE_DATA, false, true, "h.test", "a@x.test", false, 550, "rfc2822" },
	{ SL_VPHASE_DATA, false, true, "h.test", "a@x.test", true, 0, NULL },
};

static void
test_builtins(void **state)
{
	struct sl_conf_snapshot *s = build("RFC2822 { Date_Header = pedantic }\n");
	struct sl_validate_chain ch;

	sl_validate_chain_build(s, &ch);
	for (size_t i = 0; i < sizeof(builtin_cases) / sizeof(builtin_cases[0]); i++) {
		const struct builtin_case *c = &builtin_cases[i];
		/* As the session derives it from the snapshot (Date_Header = pedantic). */
		struct sl_validate_policy pol = { c->require_ehlo, c->allow_null, true };
		struct sl_validate_ctx ctx = { .snap = s,
					       .peer_ip = "unix",
					       .helo = c->helo,
					       .sender = c->sender,
					       .policy = &pol,
					       .has_date_header = c->has_date,
					       .context_get = ctx_get_bypass };
		struct sl_verdict v;
		char key[64];

		print_message("case %zu\n", i);
		ctx_bypass_key = NULL;
		sl_validate_run(&ch, c->phase, &ctx, true, &v);
		assert_int_equal(v.code, c->want_code);
		if (c->want_code == 0) {
			assert_int_equal(v.kind, SL_VERDICT_ACCEPT);
			continue;
		}
		assert_int_equal(v.kind, SL_VERDICT_REJECT);
		assert_string_equal(v.module, c->want_module);
		/* Bypassing the module that objected lets the phase pass (or the next decide). */
		snprintf(key, sizeof(key), "__bypass_%s", c->want_module);
		ctx_bypass_key = key;
		assert_false(sl_validate_is_active(&ch, c->want_module, &ctx));
		sl_validate_run(&ch, c->phase, &ctx, true, &v);
		assert_true(v.kind == SL_VERDICT_ACCEPT || strcmp(v.module, c->want_module) != 0);
	}
	ctx_bypass_key = NULL;
	{
		struct sl_validate_ctx ctx = { .snap = s, .context_get = ctx_get_bypass };

		assert_true(sl_validate_is_active(&ch, "message_size", &ctx));
		assert_false(sl_validate_is_active(&ch, "rdns", &ctx)); /* not loaded */
	}
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
		cmocka_unit_test(test_domain_globs), cmocka_unit_test(test_peer_in),
		cmocka_unit_test(test_relay),        cmocka_unit_test(test_chain),
		cmocka_unit_test(test_instances),    cmocka_unit_test(test_builtins),
	};

	return cmocka_run_group_tests_name("validate", tests, NULL, teardown);
}
