/*
 * test/unit/test_validate.c - the validation runner and the built-in relay
 * module (proto/validate.c): domain globs, CIDR relay hosts, ACL relay
 * rights, <postmaster>, and __bypass_ context variables.
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
		sl_validate_run(SL_VPHASE_RCPTTO, &ctx, true, &v);
		assert_int_equal(v.kind, c->want);
		if (v.kind == SL_VERDICT_REJECT) {
			assert_int_equal(v.code, 550);
			assert_string_equal(v.enhanced, "5.7.1");
			assert_string_equal(v.module, "relay");
		}
		/* Other phases have no opinion. */
		sl_validate_run(SL_VPHASE_MAILFROM, &ctx, true, &v);
		assert_int_equal(v.kind, SL_VERDICT_ACCEPT);
	}
	assert_false(sl_validate_needs_pool(s, SL_VPHASE_RCPTTO));
	assert_false(sl_validate_needs_pool(s, SL_VPHASE_CONNECT)); /* rdns not loaded */
	assert_string_equal(sl_validate_phase_name(SL_VPHASE_MAILFROM), "awaiting mailfrom");
	sl_conf_snapshot_put(s);
}

/* Modules loaded by name: rdns only with its block, and then the connect phase needs the pool. */
static void
test_loading(void **state)
{
	struct sl_conf_snapshot *plain = build("");
	struct sl_conf_snapshot *with =
		build("Validate validate/rdns rdns { Require_PTR = true }\n");
	const struct sl_validate_module *const *mods;
	size_t cnt, n_loaded_plain = 0, n_loaded_with = 0;

	mods = sl_validate_modules(&cnt);
	assert_true(cnt >= 2);
	for (size_t i = 0; i < cnt; i++) {
		n_loaded_plain += sl_validate_is_loaded(mods[i], plain);
		n_loaded_with += sl_validate_is_loaded(mods[i], with);
	}
	assert_int_equal(n_loaded_plain, cnt - 1);
	assert_int_equal(n_loaded_with, cnt);
	assert_false(sl_validate_needs_pool(plain, SL_VPHASE_CONNECT));
	assert_true(sl_validate_needs_pool(with, SL_VPHASE_CONNECT));
	assert_false(sl_validate_needs_pool(with, SL_VPHASE_RCPTTO));
	/* A Unix-socket client (no address) is not looked up, even with Require_PTR. */
	{
		struct sl_validate_ctx ctx = { .snap = with, .peer = NULL, .peer_ip = "unix" };
		struct sl_verdict v;

		sl_validate_run(SL_VPHASE_CONNECT, &ctx, false, &v);
		assert_int_equal(v.kind, SL_VERDICT_ACCEPT);
		/* Inline-only runs skip the blocking module altogether. */
		sl_validate_run(SL_VPHASE_CONNECT, &ctx, true, &v);
		assert_int_equal(v.kind, SL_VERDICT_ACCEPT);
	}
	sl_conf_snapshot_put(plain);
	sl_conf_snapshot_put(with);
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
		cmocka_unit_test(test_domain_globs),
		cmocka_unit_test(test_peer_in),
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_loading),
	};

	return cmocka_run_group_tests_name("validate", tests, NULL, teardown);
}
