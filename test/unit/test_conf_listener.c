/*
 * test/unit/test_conf_listener.c - listener addresses, attributes, ACL
 * properties and the ACL walk (conf/conf_listener.c), through the real
 * parser and snapshot builder.
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

#include "conf/conf_snapshot.h"

static struct sl_conf_snapshot *
build(const char *text, struct sl_conf_errors *errs)
{
	struct sl_conf_tree *tree =
		sl_conf_parse_buffer("t.conf", "/base", text, strlen(text), errs);

	if (tree == NULL)
		return NULL;
	return sl_conf_snapshot_build(tree, "/base", 1, errs);
}

static const struct sl_conf_listener *
listener(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	const union sl_conf_val *v = sl_conf_global(s, opt);

	assert_non_null(v);
	return v->listener;
}

struct addr_case {
	const char *item;
	enum sl_listen_family family;
	const char *host;
	unsigned port;
	const char *path;
	unsigned backlog;
	unsigned threads;
	enum sl_listen_proto proto;
	bool is_disabled;
	const char *text;
};

static const struct addr_case addr_cases[] = {
	{ "*:25", SL_LISTEN_ANY, NULL, 25, NULL, 5, 1, SL_LISTEN_PROTO_BOTH, false, "*:25" },
	{ "127.0.0.1:25", SL_LISTEN_INET4, "127.0.0.1", 25, NULL, 5, 1, SL_LISTEN_PROTO_BOTH, false,
	  "127.0.0.1:25" },
	{ "[::1]:25", SL_LISTEN_INET6, "::1", 25, NULL, 5, 1, SL_LISTEN_PROTO_BOTH, false,
	  "[::1]:25" },
	{ "*:587,200", SL_LISTEN_ANY, NULL, 587, NULL, 200, 1, SL_LISTEN_PROTO_BOTH, false,
	  "*:587" },
	{ "*:587,200~20", SL_LISTEN_ANY, NULL, 587, NULL, 200, 20, SL_LISTEN_PROTO_BOTH, false,
	  "*:587" },
	{ "*:1825,5 <proto=ipv4>", SL_LISTEN_ANY, NULL, 1825, NULL, 5, 1, SL_LISTEN_PROTO_IPV4,
	  false, "*:1825" },
	{ "*:587 <proto=ipv6>", SL_LISTEN_ANY, NULL, 587, NULL, 5, 1, SL_LISTEN_PROTO_IPV6, false,
	  "*:587" },
	{ "*:587 <status=\"disabled\">", SL_LISTEN_ANY, NULL, 587, NULL, 5, 1, SL_LISTEN_PROTO_BOTH,
	  true, "*:587" },
	{ "/tmp/2025", SL_LISTEN_UNIX, NULL, 0, "/tmp/2025", 5, 1, SL_LISTEN_PROTO_BOTH, false,
	  "/tmp/2025" },
	{ "/tmp/2025,200", SL_LISTEN_UNIX, NULL, 0, "/tmp/2025", 200, 1, SL_LISTEN_PROTO_BOTH,
	  false, "/tmp/2025" },
	{ "/tmp/2025,200~20", SL_LISTEN_UNIX, NULL, 0, "/tmp/2025", 200, 20, SL_LISTEN_PROTO_BOTH,
	  false, "/tmp/2025" },
	{ "./run/ctl", SL_LISTEN_UNIX, NULL, 0, "/base/run/ctl", 5, 1, SL_LISTEN_PROTO_BOTH, false,
	  "/base/run/ctl" },
	{ "[2001:db8::1]:2525,64~4", SL_LISTEN_INET6, "2001:db8::1", 2525, NULL, 64, 4,
	  SL_LISTEN_PROTO_BOTH, false, "[2001:db8::1]:2525" },
};

static void
test_addresses(void **state)
{
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		const struct addr_case *c = &addr_cases[i];
		struct sl_conf_errors errs = { 0 };
		char text[256];
		struct sl_conf_snapshot *s;
		const struct sl_conf_listen_addr *a;

		print_message("case %zu: %s\n", i, c->item);
		snprintf(text, sizeof(text), "ESMTP_Listener = ( %s )\n", c->item);
		s = build(text, &errs);
		if (s == NULL)
			sl_conf_errors_print(&errs, stderr);
		assert_non_null(s);
		assert_int_equal(listener(s, SL_OPT_ESMTP_LISTENER)->addr_cnt, 1);
		a = &listener(s, SL_OPT_ESMTP_LISTENER)->addrs[0];
		assert_int_equal(a->kind, SL_LISTENER_ESMTP);
		assert_int_equal(a->family, c->family);
		if (c->host)
			assert_string_equal(a->host, c->host);
		else
			assert_null(a->host);
		assert_int_equal(a->port, c->port);
		if (c->path)
			assert_string_equal(a->path, c->path);
		assert_int_equal(a->backlog, c->backlog);
		assert_int_equal(a->accept_threads, c->threads);
		assert_int_equal(a->proto, c->proto);
		assert_int_equal(a->is_disabled, c->is_disabled);
		assert_string_equal(a->text, c->text);
		assert_int_equal(a->loc.line, 1);
		assert_int_equal(a->loc.col, 20);
		sl_conf_snapshot_put(s);
	}
}

struct err_case {
	const char *text;
	unsigned line, col;
	const char *msg;
};

static const struct err_case err_cases[] = {
	{ "Control_Listener = ( \\ecconsole )", 1, 22, "Windows named pipe" },
	{ "Control_Listener = ( \\ecconsole~10 )", 1, 22, "Windows named pipe" },
	{ "ESMTP_Listener = ( *:0 )", 1, 20, "port in listener address '*:0' must be 1..65535" },
	{ "ESMTP_Listener = ( *:65536 )", 1, 20, "must be 1..65535" },
	{ "ESMTP_Listener = ( *:25,0 )", 1, 20, "listen backlog" },
	{ "ESMTP_Listener = ( *:25,10~0 )", 1, 20, "accept concurrency" },
	{ "ESMTP_Listener = ( *:25,10~65 )", 1, 20, "accept concurrency" },
	{ "ESMTP_Listener = ( *:25x )", 1, 20, "is not a listener address" },
	{ "ESMTP_Listener = ( host.example:25 )", 1, 20, "is not * or an IPv4 address" },
	{ "ESMTP_Listener = ( [1::2::3]:25 )", 1, 20, "is not an IPv6 address" },
	{ "ESMTP_Listener = ( 25 )", 1, 20, "is not a listener address" },
	{ "ESMTP_Listener = ( *:25 <proto=ipx> )", 1, 32, "proto must be ipv4, ipv6 or both" },
	{ "ESMTP_Listener = ( *:25 <status=off> )", 1, 33, "status must be" },
	{ "ESMTP_Listener = ( 127.0.0.1:25 <proto=ipv6> )", 1, 20, "contradicts" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/33 = ( ) ] )", 1, 27, "out of range 0..32" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( bogus ) ] )", 1, 42,
	  "unknown ACL property 'bogus'" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( personality [ idle_time = soon ] ) ] )", 1, 68,
	  "bad value for 'idle_time'" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( personality [ no_such = 1 ] ) ] )", 1, 56,
	  "unknown option 'no_such'" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( personality [ spoolbase = \"/x\" ] ) ] )", 1,
	  56, "not valid in personality scope" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( TLS [ colour = blue ] ) ] )", 1, 48,
	  "unknown TLS parameter 'colour'" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( ALWAYS-ALLOW ) ] )", 1, 42,
	  "does not support the ALWAYS-ALLOW property" },
	{ "ECStream_Listener = ( *:1825 [ 10.0.0.0/8 = ( TLS [ extension = STARTTLS ] ) ] )", 1, 47,
	  "ECStream_Listener does not support the TLS property" },
	{ "Control_Listener = ( /tmp/c [ 0.0.0.0/0 = ( relay_for_sending_domains ) ] )", 1, 45,
	  "does not support relay_for_sending_domains" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( relay_for_sending_domains [ a.com = maybe ] ) "
	  "] )",
	  1, 78, "domain = true" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = personality ] )", 1, 40, "needs a list" },
	{ "ESMTP_Listener = ( *:25 [ 10.0.0.0/8 = ( continue [ x = 1 ] ) ] )", 1, 42,
	  "continue takes no parameters" },
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
		for (size_t k = 0; k < errs.cnt; k++) {
			const struct sl_conf_error *e = &errs.list[k];

			print_message("  -> %u:%u: %s\n", e->line, e->col, e->msg);
			if (e->line == c->line && e->col == c->col && strstr(e->msg, c->msg))
				is_found = true;
		}
		assert_true(is_found);
		sl_conf_errors_clear(&errs);
	}
}

/* The reference's ESMTP_Listener example with its ACL chain. */
static const char ref_listener[] =
	"Esmtp_Listener = (\n"
	"  *:25 [\n"
	"    0.0.0.0/0 = ( personality [ idle_time = 300 banner_hostname = \"example.com\"\n"
	"                  received_hostname = \"mx-0-1.example.com\"\n"
	"                  static_banner = \"220 my.mail.server ESMTP\" ]\n"
	"                  continue )\n"
	"    10.1.2.3/32 = ( relay_for_sending_domains )\n"
	"    10.1.2.4/32 = ( relay_for_sending_domains [ client1.com = true client2.com = true ]\n"
	"                    context [ client = \"ACME Inc.\" ] )\n"
	"    10.0.0.0/8 = ( DIGEST-MD5 [ extension = AUTH extension_argument = DIGEST-MD5\n"
	"                   uri = file:///opt/ecelerity/etc/smtp_passwd realm = \"SMTP Users\" ] "
	")\n"
	"  ]\n"
	")\n";

struct walk_case {
	const char *peer;
	size_t applied_cnt;
	const char *cidrs[3];
};

static const struct walk_case walk_cases[] = {
	{ "10.1.2.3", 2, { "0.0.0.0/0", "10.1.2.3/32" } },
	{ "10.1.2.4", 2, { "0.0.0.0/0", "10.1.2.4/32" } },
	{ "10.9.9.9", 2, { "0.0.0.0/0", "10.0.0.0/8" } },
	{ "192.0.2.1", 1, { "0.0.0.0/0" } },
	{ "::ffff:10.1.2.3", 2, { "0.0.0.0/0", "10.1.2.3/32" } },
	{ "2001:db8::1", 0, { NULL } },
};

static void
test_acl_walk(void **state)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = build(ref_listener, &errs);
	const struct sl_conf_listen_addr *a;
	const struct sl_conf_acl_entry *e;
	const struct sl_conf_setting *set;

	if (s == NULL)
		sl_conf_errors_print(&errs, stderr);
	assert_non_null(s);
	a = &listener(s, SL_OPT_ESMTP_LISTENER)->addrs[0];
	assert_int_equal(a->acl_cnt, 4);
	for (size_t i = 0; i < sizeof(walk_cases) / sizeof(walk_cases[0]); i++) {
		const struct walk_case *c = &walk_cases[i];
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
		struct sl_conf_acl_match m;
		const struct sockaddr *sa;

		print_message("peer %s\n", c->peer);
		if (strchr(c->peer, ':')) {
			assert_int_equal(inet_pton(AF_INET6, c->peer, &sin6.sin6_addr), 1);
			sa = (const struct sockaddr *)&sin6;
		} else {
			assert_int_equal(inet_pton(AF_INET, c->peer, &sin.sin_addr), 1);
			sa = (const struct sockaddr *)&sin;
		}
		sl_conf_acl_resolve(a, sa, &m);
		assert_int_equal(m.applied_cnt, c->applied_cnt);
		for (size_t k = 0; k < m.applied_cnt; k++) {
			char buf[64];

			sl_cidr_format(&m.applied[k]->cidr, buf, sizeof(buf));
			assert_string_equal(buf, c->cidrs[k]);
		}
	}
	/* The typed contents of each entry. */
	e = &a->acl[0];
	assert_true(e->has_continue);
	set = sl_conf_settings_find(e->personality, SL_OPT_IDLE_TIME);
	assert_non_null(set);
	assert_int_equal(set->v.i, 300);
	set = sl_conf_settings_find(e->personality, SL_OPT_STATIC_BANNER);
	assert_non_null(set);
	assert_string_equal(set->v.s, "220 my.mail.server ESMTP");
	e = &a->acl[1];
	assert_false(e->has_continue);
	assert_true(e->has_relay);
	assert_null(e->relay_domains[0]); /* open relay */
	e = &a->acl[2];
	assert_true(e->has_relay);
	assert_string_equal(e->relay_domains[0], "client1.com");
	assert_string_equal(e->relay_domains[1], "client2.com");
	assert_null(e->relay_domains[2]);
	assert_int_equal(e->context->cnt, 1);
	assert_string_equal(e->context->v[0].key, "client");
	assert_string_equal(e->context->v[0].val, "ACME Inc.");
	e = &a->acl[3];
	assert_int_equal(e->prop_cnt, 1);
	assert_string_equal(e->props[0].name, "DIGEST-MD5");
	assert_int_equal(e->props[0].params->cnt, 4);
	assert_string_equal(e->props[0].params->v[2].key, "uri");
	assert_string_equal(e->props[0].params->v[2].val, "file:///opt/ecelerity/etc/smtp_passwd");
	sl_conf_snapshot_put(s);
}

/* The reference's "continue" example: 192.168/16 continues into 0.0.0.0/0. */
static void
test_acl_continue_chain(void **state)
{
	static const char text[] = "Esmtp_Listener = ( *:25 [\n"
				   "  1.2.3.4/32 = ( )\n"
				   "  192.168.0.0/16 = ( continue )\n"
				   "  0.0.0.0/0 = ( )\n"
				   "] )\n";
	static const struct walk_case cases[] = {
		{ "1.2.3.4", 1, { "1.2.3.4/32" } },
		{ "192.168.7.7", 2, { "192.168.0.0/16", "0.0.0.0/0" } },
		{ "8.8.8.8", 1, { "0.0.0.0/0" } },
	};
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = build(text, &errs);
	const struct sl_conf_listen_addr *a;

	assert_non_null(s);
	a = &listener(s, SL_OPT_ESMTP_LISTENER)->addrs[0];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		struct sl_conf_acl_match m;

		assert_int_equal(inet_pton(AF_INET, cases[i].peer, &sin.sin_addr), 1);
		sl_conf_acl_resolve(a, (const struct sockaddr *)&sin, &m);
		assert_int_equal(m.applied_cnt, cases[i].applied_cnt);
		for (size_t k = 0; k < m.applied_cnt; k++) {
			char buf[64];

			sl_cidr_format(&m.applied[k]->cidr, buf, sizeof(buf));
			assert_string_equal(buf, cases[i].cidrs[k]);
		}
	}
	sl_conf_snapshot_put(s);
}

static void
test_kinds(void **state)
{
	static const char text[] =
		"Control_Listener = ( /tmp/2025 *:2025 <proto=ipv4> [\n"
		"  0.0.0.0/0 = ( DIGEST-MD5 [ uri = digest:///x ] ALWAYS-ALLOW ) ] )\n"
		"ECStream_Listener = ( *:1825,5 <proto=ipv4> [\n"
		"  10.0.0.0/8 = ( context [ a = b ] relay_for_sending_domains ) ] )\n";
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = build(text, &errs);
	const struct sl_conf_listener *l;

	if (s == NULL)
		sl_conf_errors_print(&errs, stderr);
	assert_non_null(s);
	l = listener(s, SL_OPT_CONTROL_LISTENER);
	assert_int_equal(l->kind, SL_LISTENER_CONTROL);
	assert_int_equal(l->addr_cnt, 2);
	assert_int_equal(l->addrs[1].acl[0].prop_cnt, 2);
	l = listener(s, SL_OPT_ECSTREAM_LISTENER);
	assert_int_equal(l->kind, SL_LISTENER_ECSTREAM);
	assert_int_equal(l->addrs[0].backlog, 5);
	assert_null(sl_conf_global(s, SL_OPT_ESMTP_LISTENER));
	sl_conf_snapshot_put(s);
}

/* Warnings do not refuse the configuration: unknown attributes, duplicate addresses. */
static void
test_warnings(void **state)
{
	static const char text[] = "Esmtp_Listener = (\n"
				   "  *:25\n"
				   "  *:587 <name=\"value\" othername=\"othervalue\">\n"
				   "  *:587,200~20\n"
				   ")\n";
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s = build(text, &errs);

	assert_non_null(s);
	assert_int_equal(errs.cnt, 0);
	assert_int_equal(errs.warn_cnt, 3);
	assert_int_equal(errs.warn[0].line, 3);
	assert_int_equal(errs.warn[0].col, 10);
	assert_non_null(strstr(errs.warn[0].msg, "unknown listener attribute 'name' is ignored"));
	assert_non_null(strstr(errs.warn[1].msg, "'othername'"));
	assert_int_equal(errs.warn[2].line, 4);
	assert_non_null(strstr(errs.warn[2].msg, "address *:587 is already listed at line 3"));
	assert_int_equal(listener(s, SL_OPT_ESMTP_LISTENER)->addr_cnt, 3);
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
		cmocka_unit_test(test_addresses), cmocka_unit_test(test_errors),
		cmocka_unit_test(test_acl_walk),  cmocka_unit_test(test_acl_continue_chain),
		cmocka_unit_test(test_kinds),     cmocka_unit_test(test_warnings),
	};

	return cmocka_run_group_tests_name("conf_listener", tests, NULL, teardown);
}
