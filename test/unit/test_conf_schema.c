/*
 * test/unit/test_conf_schema.c - the option table (conf_options.def) and its lookup.
 *
 * Checks the table itself: every row at its own id, names unique within each
 * scope, constraints well-formed for their type, every default valid for its
 * type and constraint (with checkers written here, independent of the value
 * parser), and every option the reference lists present.  Then the lookup:
 * case-insensitive, scope-aware, and safe when many threads use it first.
 *
 * Threads: the cmocka runner, plus a few lookup threads in one test.
 * Parses only the table's own strings.  Owns nothing beyond the test.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_schema.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- checkers */

/* Decimal integer, optional sign, the whole string.  Returns 0 or -1. */
static int
parse_int(const char *s, size_t len, int64_t *out)
{
	char buf[32];
	char *end;
	long long n;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!isdigit((unsigned char)buf[0]) && !(buf[0] == '-' && isdigit((unsigned char)buf[1])))
		return -1;
	errno = 0;
	n = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

/* "min..max" with either end empty; returns 0 and the bounds, or -1. */
static int
parse_range(const char *s, size_t len, int64_t *min, int64_t *max)
{
	const char *dots = NULL;

	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] == '.' && s[i + 1] == '.') {
			dots = s + i;
			break;
		}
	}
	if (dots == NULL)
		return -1;
	*min = INT64_MIN;
	*max = INT64_MAX;
	if (dots != s && parse_int(s, (size_t)(dots - s), min) != 0)
		return -1;
	if (dots + 2 != s + len && parse_int(dots + 2, (size_t)(s + len - dots - 2), max) != 0)
		return -1;
	return *min <= *max ? 0 : -1;
}

/* A word of an enum or keyword list: letters, digits, '_' and '-' only. */
static bool
is_word(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* "a|b|c" from `s`: at least `min_cnt` words, none empty, no repeats. */
static bool
words_ok(const char *s, size_t min_cnt)
{
	const char *seen[32];
	size_t seen_len[32];
	size_t cnt = 0;

	for (const char *p = s;;) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (!is_word(p, n) || cnt == ARRAY_LEN(seen))
			return false;
		for (size_t i = 0; i < cnt; i++)
			if (seen_len[i] == n && strncasecmp(seen[i], p, n) == 0)
				return false;
		seen[cnt] = p;
		seen_len[cnt++] = n;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return cnt >= min_cnt;
}

static bool
word_in(const char *words, const char *w)
{
	size_t len = strlen(w);

	for (const char *p = words; p != NULL;) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (n == len && strncasecmp(p, w, n) == 0)
			return true;
		p = bar ? bar + 1 : NULL;
	}
	return false;
}

static bool
constraint_ok(const struct sl_conf_option *o)
{
	const char *c = o->constraint;
	int64_t min, max;

	if (c == NULL)
		return false;
	switch (o->type) {
	case SL_T_INT:
	case SL_T_SIZE:
	case SL_T_SECONDS:
		return parse_range(c, strlen(c), &min, &max) == 0;
	case SL_T_ENUM:
		return words_ok(c, 2);
	case SL_T_INT_OR_WORD: {
		const char *bar = strchr(c, '|');

		return bar != NULL && parse_range(c, (size_t)(bar - c), &min, &max) == 0 &&
		       words_ok(bar + 1, 1);
	}
	case SL_T_BOOL:
	case SL_T_STRING:
	case SL_T_PATH:
	case SL_T_LIST:
	case SL_T_THROTTLE:
	case SL_T_HOSTPORT:
	case SL_T_MODE:
	case SL_T_LISTENER:
	case SL_T_PARAMS:
		return c[0] == '\0';
	}
	return false;
}

/* Integer with an optional one-letter suffix from `suffixes` (multipliers `mult`). */
static int
parse_scaled(const char *s, const char *suffixes, const int64_t *mult, int64_t *out)
{
	size_t len = strlen(s);
	int64_t m = 1;

	if (len > 0 && suffixes != NULL && isalpha((unsigned char)s[len - 1])) {
		const char *p = strchr(suffixes, tolower((unsigned char)s[len - 1]));

		if (p == NULL)
			return -1;
		m = mult[p - suffixes];
		len--;
	}
	if (parse_int(s, len, out) != 0 || *out > INT64_MAX / m || *out < INT64_MIN / m)
		return -1;
	*out *= m;
	return 0;
}

static bool
in_range(const struct sl_conf_option *o, size_t range_len, int64_t n)
{
	int64_t min, max;

	return parse_range(o->constraint, range_len, &min, &max) == 0 && n >= min && n <= max;
}

static bool
hostname_ok(const char *s, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	if (len == 1 && s[0] == '*')
		return true;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return false;
	return true;
}

static bool
hostport_ok(const char *s)
{
	const char *port = NULL;
	int64_t n;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close == s + 1)
			return false;
		for (const char *p = s + 1; p < close; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return false;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return false;
	} else {
		const char *colon = strchr(s, ':');

		if (!hostname_ok(s, colon ? (size_t)(colon - s) : strlen(s)))
			return false;
		port = colon ? colon + 1 : NULL;
	}
	return port == NULL || (parse_int(port, strlen(port), &n) == 0 && n >= 1 && n <= 65535);
}

static bool
default_ok(const struct sl_conf_option *o)
{
	static const char bool_words[] = "true|false|yes|no|on|off|1|0|enabled|disabled";
	static const int64_t size_mult[] = { 1024, 1024 * 1024, 1024 * 1024 * 1024 };
	static const int64_t secs_mult[] = { 1, 60, 3600, 86400 };
	const char *d = o->def;
	int64_t n;

	if (d == NULL)
		return true;
	switch (o->type) {
	case SL_T_BOOL:
		return word_in(bool_words, d);
	case SL_T_INT:
		return parse_int(d, strlen(d), &n) == 0 && in_range(o, strlen(o->constraint), n);
	case SL_T_SIZE:
		return parse_scaled(d, "kmg", size_mult, &n) == 0 &&
		       in_range(o, strlen(o->constraint), n);
	case SL_T_SECONDS:
		return parse_scaled(d, "smhd", secs_mult, &n) == 0 &&
		       in_range(o, strlen(o->constraint), n);
	case SL_T_ENUM:
		return word_in(o->constraint, d);
	case SL_T_INT_OR_WORD: {
		const char *bar = strchr(o->constraint, '|');

		if (bar == NULL)
			return false;
		if (parse_int(d, strlen(d), &n) == 0)
			return in_range(o, (size_t)(bar - o->constraint), n);
		return word_in(bar + 1, d);
	}
	case SL_T_THROTTLE: {
		const char *slash = strchr(d, '/');
		int64_t secs;

		if (parse_int(d, slash ? (size_t)(slash - d) : strlen(d), &n) != 0 || n < 0)
			return false;
		return slash == NULL ||
		       (parse_int(slash + 1, strlen(slash + 1), &secs) == 0 && secs >= 1);
	}
	case SL_T_MODE:
		if (d[0] != '0' || strlen(d) < 2 || strlen(d) > 5)
			return false;
		for (const char *p = d; *p != '\0'; p++)
			if (*p < '0' || *p > '7')
				return false;
		return true;
	case SL_T_PATH:
		/* A default cannot be relative: there is no file to be relative to. */
		return d[0] == '/';
	case SL_T_HOSTPORT:
		return hostport_ok(d);
	case SL_T_STRING:
	case SL_T_LIST:
		return d[0] != '\0';
	case SL_T_LISTENER:
	case SL_T_PARAMS:
		return false; /* structured values have no textual default */
	}
	return false;
}

/* ---------------------------------------------------------------- table shape */

static void
test_rows_at_their_ids(void **state)
{
	size_t bad = 0;

	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];

		if (o->name == NULL || (size_t)o->id != i) {
			print_error("row %zu: id %d name %s\n", i, (int)o->id,
				    o->name ? o->name : "(null)");
			bad++;
		}
	}
	assert_int_equal(bad, 0);
	assert_true(SL_OPT__COUNT > 100);
}

static void
test_row_fields(void **state)
{
	size_t bad = 0;

	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];
		size_t len = strlen(o->name);
		bool name_ok = len > 0 && len < 64;

		for (size_t k = 0; k < len; k++)
			if (!isalnum((unsigned char)o->name[k]) && o->name[k] != '_')
				name_ok = false;
		if (!name_ok) {
			print_error("%s: name is not a configuration word\n", o->name);
			bad++;
		}
		if (o->scopes == 0 || (o->scopes & ~SL_S__ALL) != 0) {
			print_error("%s: scopes 0x%x\n", o->name, o->scopes);
			bad++;
		}
		if (o->summary == NULL || o->summary[0] == '\0' || strchr(o->summary, '\n') ||
		    strlen(o->summary) > 100) {
			print_error("%s: summary must be one line of at most 100 bytes\n", o->name);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_ids_unique(void **state)
{
	/* The enum makes ids distinct; the table must hold each exactly once. */
	unsigned char seen[SL_OPT__COUNT] = { 0 };

	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		assert_in_range(sl_conf_options[i].id, 0, SL_OPT__COUNT - 1);
		seen[sl_conf_options[i].id]++;
	}
	for (size_t i = 0; i < SL_OPT__COUNT; i++)
		assert_int_equal(seen[i], 1);
}

static void
test_name_scope_unique(void **state)
{
	size_t bad = 0;

	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		for (size_t j = i + 1; j < SL_OPT__COUNT; j++) {
			const struct sl_conf_option *a = &sl_conf_options[i],
						    *b = &sl_conf_options[j];

			if (strcasecmp(a->name, b->name) == 0 && (a->scopes & b->scopes) != 0) {
				print_error("%s: rows %zu and %zu share scopes 0x%x\n", a->name, i,
					    j, a->scopes & b->scopes);
				bad++;
			}
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_constraints_well_formed(void **state)
{
	size_t bad = 0;

	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];

		if (!constraint_ok(o)) {
			print_error("%s: constraint \"%s\" does not fit its type %d\n", o->name,
				    o->constraint ? o->constraint : "(null)", (int)o->type);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void
test_defaults_valid(void **state)
{
	size_t bad = 0;

	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];

		if (!default_ok(o)) {
			print_error(
				"%s: default \"%s\" is not valid for type %d constraint \"%s\"\n",
				o->name, o->def, (int)o->type, o->constraint);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* The checkers above must themselves catch bad text. */
static void
test_checkers_reject(void **state)
{
	static const struct {
		enum sl_conf_type type;
		const char *constraint;
		const char *def;
		bool constraint_good;
		bool def_good;
	} cases[] = {
		{ SL_T_INT, "1..65535", "25", true, true },
		{ SL_T_INT, "1..65535", "0", true, false },
		{ SL_T_INT, "1..65535", "70000", true, false },
		{ SL_T_INT, "-1..", "-1", true, true },
		{ SL_T_INT, "-1..", "12x", true, false },
		{ SL_T_INT, "5..1", NULL, false, true },
		{ SL_T_INT, "", NULL, false, true },
		{ SL_T_INT, "a..b", NULL, false, true },
		{ SL_T_SIZE, "0..", "32k", true, true },
		{ SL_T_SIZE, "0..", "32q", true, false },
		{ SL_T_SIZE, "0..1023", "1k", true, false },
		{ SL_T_SECONDS, "1..", "5m", true, true },
		{ SL_T_SECONDS, "1..", "0", true, false },
		{ SL_T_ENUM, "a|b", "B", true, true },
		{ SL_T_ENUM, "a|b", "c", true, false },
		{ SL_T_ENUM, "a", NULL, false, true },
		{ SL_T_ENUM, "a||b", NULL, false, true },
		{ SL_T_ENUM, "a|A", NULL, false, true },
		{ SL_T_INT_OR_WORD, "0..|auto|none", "auto", true, true },
		{ SL_T_INT_OR_WORD, "0..|auto|none", "7", true, true },
		{ SL_T_INT_OR_WORD, "0..|auto|none", "-7", true, false },
		{ SL_T_INT_OR_WORD, "0..|auto|none", "often", true, false },
		{ SL_T_INT_OR_WORD, "0..", NULL, false, true },
		{ SL_T_BOOL, "", "Enabled", true, true },
		{ SL_T_BOOL, "", "maybe", true, false },
		{ SL_T_BOOL, "x", NULL, false, true },
		{ SL_T_THROTTLE, "", "3/60", true, true },
		{ SL_T_THROTTLE, "", "3/0", true, false },
		{ SL_T_THROTTLE, "", "fast", true, false },
		{ SL_T_MODE, "", "0644", true, true },
		{ SL_T_MODE, "", "644", true, false },
		{ SL_T_MODE, "", "0698", true, false },
		{ SL_T_PATH, "", "relative/x", true, false },
		{ SL_T_HOSTPORT, "", "*", true, true },
		{ SL_T_HOSTPORT, "", "[::1]:25", true, true },
		{ SL_T_HOSTPORT, "", "10.0.0.1:0", true, false },
		{ SL_T_HOSTPORT, "", "bad host", true, false },
		{ SL_T_PARAMS, "", "x", true, false },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct sl_conf_option o = {
			.name = "case",
			.type = cases[i].type,
			.constraint = cases[i].constraint,
			.def = cases[i].def,
			.scopes = SL_S_GLOBAL,
			.summary = "case",
		};

		if (constraint_ok(&o) != cases[i].constraint_good ||
		    default_ok(&o) != cases[i].def_good)
			fail_msg("case %zu: type %d \"%s\" \"%s\"", i, (int)cases[i].type,
				 cases[i].constraint, cases[i].def ? cases[i].def : "(null)");
	}
}

/* ---------------------------------------------------------------- coverage */

/*
 * Every option named in the reference's option lists (RFC compliance,
 * timeouts, traffic shaping, resource budgeting, security, routing, outbound
 * TLS, bounce processing, virtual hosting), taken from
 * ../shared/spec/ecelerity.conf-reference.txt with
 *   sed -n '/RFC Compliance.Conformance Options/,/## Miscellaneous/p' |
 *   grep -o '\[[A-Za-z_]*\](conf\.ref'
 * less the stanza kinds domain, host, binding and binding_group; then the
 * personality options and the three listener lists of the same text.
 */
static const struct {
	const char *name;
	unsigned scope; /* one scope the reference uses it in */
} reference_names[] = {
	{ "allow_null_envelope_sender", SL_S_GLOBAL },
	{ "date_header", SL_S_RFC2822 },
	{ "generate_bounces", SL_S_GLOBAL },
	{ "generate_bounces_for_multi_recipient_policy_rejections", SL_S_GLOBAL },
	{ "lone_lf_in_body", SL_S_RFC2822 },
	{ "lone_lf_in_headers", SL_S_RFC2822 },
	{ "require_ehlo", SL_S_GLOBAL },
	{ "messageid_header", SL_S_RFC2822 },
	{ "trace_headers", SL_S_RFC2822 },
	{ "body_timeout", SL_S_GLOBAL },
	{ "connect_timeout", SL_S_GLOBAL },
	{ "connect_timeout_to_delay", SL_S_GLOBAL },
	{ "dns_expire_interval", SL_S_GLOBAL },
	{ "ehlo_timeout", SL_S_GLOBAL },
	{ "host_failure_retry", SL_S_GLOBAL },
	{ "idle_timeout", SL_S_GLOBAL },
	{ "mailfrom_timeout", SL_S_GLOBAL },
	{ "max_retries", SL_S_GLOBAL },
	{ "message_expiration", SL_S_GLOBAL },
	{ "min_dns_ttl", SL_S_GLOBAL },
	{ "mx_failures_to_delay", SL_S_GLOBAL },
	{ "rcptto_timeout", SL_S_GLOBAL },
	{ "retry_interval", SL_S_GLOBAL },
	{ "rset_timeout", SL_S_GLOBAL },
	{ "connection_allocation_aggressiveness", SL_S_GLOBAL },
	{ "inbound_throttle_messages", SL_S_GLOBAL },
	{ "max_deliveries_per_connection", SL_S_GLOBAL },
	{ "max_outbound_connections", SL_S_GLOBAL },
	{ "outbound_throttle_connections", SL_S_GLOBAL },
	{ "outbound_throttle_messages", SL_S_GLOBAL },
	{ "server_max_outbound_connections", SL_S_GLOBAL },
	{ "server_reserve_outbound_connections", SL_S_GLOBAL },
	{ "async_close_concurrency", SL_S_GLOBAL },
	{ "async_swap_in", SL_S_GLOBAL },
	{ "async_swap_out", SL_S_GLOBAL },
	{ "async_unlink_concurrency", SL_S_GLOBAL },
	{ "disk_queue_drain_rate", SL_S_GLOBAL },
	{ "drop_body_after_trans_fail", SL_S_GLOBAL },
	{ "force_fsync", SL_S_GLOBAL },
	{ "max_resident_active_queue", SL_S_GLOBAL },
	{ "tcp_buffer_size", SL_S_GLOBAL },
	{ "_unsafe_spool", SL_S_GLOBAL },
	{ "Use_MMAP", SL_S_GLOBAL },
	{ "worker_cpu_concurrency", SL_S_GLOBAL },
	{ "worker_io_concurrency", SL_S_GLOBAL },
	{ "capabilities", SL_S_SECURITY },
	{ "chroot", SL_S_SECURITY },
	{ "user", SL_S_SECURITY },
	{ "blackhole", SL_S_GLOBAL },
	{ "delivery_method", SL_S_GLOBAL },
	{ "fully_resolve_before_smtp", SL_S_GLOBAL },
	{ "gateway", SL_S_GLOBAL },
	{ "lmtp_port", SL_S_GLOBAL },
	{ "prohibited_hosts", SL_S_GLOBAL },
	{ "relay_domains", SL_S_GLOBAL },
	{ "relay_hosts", SL_S_GLOBAL },
	{ "remote_smtp_port", SL_S_GLOBAL },
	{ "suspend_delivery", SL_S_GLOBAL },
	{ "xclient", SL_S_GLOBAL },
	{ "tls", SL_S_GLOBAL },
	{ "tls_ca", SL_S_GLOBAL },
	{ "tls_certificate", SL_S_GLOBAL },
	{ "tls_ciphers", SL_S_GLOBAL },
	{ "tls_key", SL_S_GLOBAL },
	{ "tls_verify", SL_S_GLOBAL },
	{ "bounce_behavior", SL_S_GLOBAL },
	{ "bounce_domains", SL_S_GLOBAL },
	{ "bounce_pattern", SL_S_GLOBAL },
	{ "bounce_suppress_list", SL_S_GLOBAL },
	{ "bounces_inline_original", SL_S_GLOBAL },
	{ "mailerdaemon", SL_S_GLOBAL },
	{ "mdn_failures_notify", SL_S_GLOBAL },
	{ "bind_address", SL_S_BINDING },
	{ "hostname", SL_S_GLOBAL },
	{ "match_domain", SL_S_BINDING },
	/* personality [ ... ] */
	{ "starttls_injection_policy", SL_S_PERSONALITY },
	{ "listener_sessions", SL_S_PERSONALITY },
	{ "service_sessions", SL_S_PERSONALITY },
	{ "idle_time", SL_S_PERSONALITY },
	{ "max_receptions_per_connection", SL_S_PERSONALITY },
	{ "max_recipients_per_connection", SL_S_PERSONALITY },
	{ "max_recipients_per_message", SL_S_PERSONALITY },
	{ "message_size", SL_S_PERSONALITY },
	{ "banner_hostname", SL_S_PERSONALITY },
	{ "static_banner", SL_S_PERSONALITY },
	{ "received_hostname", SL_S_PERSONALITY },
	{ "Allow_Trailing_Whitespace_In_Commands", SL_S_PERSONALITY },
	/* listeners, as the reference spells them */
	{ "Esmtp_Listener", SL_S_GLOBAL },
	{ "ECStream_Listener", SL_S_GLOBAL },
	{ "Control_Listener", SL_S_GLOBAL },
};

static void
test_reference_options_present(void **state)
{
	size_t bad = 0;

	for (size_t i = 0; i < ARRAY_LEN(reference_names); i++) {
		const struct sl_conf_option *o =
			sl_conf_option_find(reference_names[i].name, reference_names[i].scope);

		if (o == NULL || (o->scopes & reference_names[i].scope) == 0) {
			print_error("%s: %s in %s\n", reference_names[i].name,
				    o ? "not valid" : "missing",
				    sl_conf_scope_name(reference_names[i].scope));
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/*
 * Stanza kinds are blocks, never options, except Binding_Group: also
 * Momentum's older option inside a Binding (binding_group = "name"), and
 * only there.
 */
static void
test_stanza_kinds_absent(void **state)
{
	static const char *const kinds[] = {
		"domain",   "host",     "binding",     "threadpool",        "snmp",       "module",
		"logger",   "validate", "interpreter", "io_system",         "snmp_traps", "include",
		"security", "rfc2822",  "ec_logger",   "bounce_classifier",
	};

	for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
		if (sl_conf_option_find(kinds[i], 0) != NULL)
			fail_msg("%s is a stanza kind, not an option", kinds[i]);
	assert_non_null(sl_conf_option_find("binding_group", SL_S_BINDING));
	assert_int_equal(sl_conf_option_find("binding_group", SL_S_BINDING)->scopes, SL_S_BINDING);
}

/* Defaults and types that sluice depends on (deliberate ones included). */
static void
test_known_rows(void **state)
{
	static const struct {
		const char *name;
		unsigned scope;
		enum sl_conf_type type;
		const char *def; /* NULL: none */
	} cases[] = {
		{ "force_fsync", SL_S_GLOBAL, SL_T_BOOL, "true" },
		{ "spoolbase", SL_S_GLOBAL, SL_T_PATH, "/var/spool/sluice" },
		{ "pidfile", SL_S_GLOBAL, SL_T_PATH, "/var/run/sluiced.pid" },
		{ "mainlog", SL_S_EC_LOGGER, SL_T_PATH, "/var/log/sluice/mainlog.ec" },
		{ "paniclog", SL_S_EC_LOGGER, SL_T_PATH, "/var/log/sluice/paniclog.ec" },
		{ "rejectlog", SL_S_EC_LOGGER, SL_T_PATH, "/var/log/sluice/rejectlog.ec" },
		{ "acctlog", SL_S_EC_LOGGER, SL_T_PATH, "/var/log/sluice/acctlog.ec" },
		{ "bouncelog", SL_S_EC_LOGGER, SL_T_PATH, "/var/log/sluice/bouncelog.ec" },
		{ "heartbeat", SL_S_EC_LOGGER, SL_T_SECONDS, "60" },
		{ "ECStream_Idle_Time", SL_S_GLOBAL, SL_T_SECONDS, "300" },
		{ "ECStream_Max_Batch_Size", SL_S_GLOBAL, SL_T_INT, "10000" },
		{ "starttls_injection_policy", SL_S_PERSONALITY, SL_T_ENUM, "reject" },
		{ "max_outbound_connections", SL_S_HOST, SL_T_INT, "32" },
		{ "message_expiration", SL_S_DOMAIN, SL_T_SECONDS, "86400" },
		{ "outbound_throttle_messages", SL_S_BINDING_GROUP, SL_T_THROTTLE, NULL },
		{ "max_retries", SL_S_DOMAIN, SL_T_INT_OR_WORD, "auto" },
		{ "bind_address", SL_S_BINDING_GROUP, SL_T_HOSTPORT, "*" },
		{ "State", SL_S_SNMP, SL_T_BOOL, "enabled" },
		{ "State", SL_S_SNMP_TRAPS, SL_T_BOOL, "disabled" },
		{ "AgentX", SL_S_SNMP, SL_T_STRING, NULL },
		{ "Concurrency", SL_S_THREADPOOL, SL_T_INT, NULL },
		{ "refresh", SL_S_BOUNCE_CLASSIFIER, SL_T_SECONDS, "300" },
		{ "ESMTP_Listener", SL_S_GLOBAL, SL_T_LISTENER, NULL },
		{ "lone_lf_in_body", SL_S_RFC2822, SL_T_ENUM, "pedantic" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct sl_conf_option *o = sl_conf_option_find(cases[i].name, cases[i].scope);

		assert_non_null(o);
		assert_true((o->scopes & cases[i].scope) != 0);
		assert_int_equal(o->type, cases[i].type);
		if (cases[i].def == NULL)
			assert_null(o->def);
		else
			assert_string_equal(o->def, cases[i].def);
	}
}

/* ---------------------------------------------------------------- lookup */

static void
test_find_case_insensitive(void **state)
{
	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];
		char up[64], low[64];
		size_t len = strlen(o->name);
		unsigned bit = o->scopes & -o->scopes; /* lowest scope bit */

		assert_true(len < sizeof(up));
		for (size_t k = 0; k <= len; k++) {
			up[k] = (char)toupper((unsigned char)o->name[k]);
			low[k] = (char)tolower((unsigned char)o->name[k]);
		}
		assert_ptr_equal(sl_conf_option_find(o->name, bit), o);
		assert_ptr_equal(sl_conf_option_find(up, bit), o);
		assert_ptr_equal(sl_conf_option_find(low, bit), o);
		/* Every scope bit of the row finds the row itself. */
		for (unsigned b = 1; b & SL_S__ALL; b <<= 1)
			if (o->scopes & b)
				assert_ptr_equal(sl_conf_option_find(low, b), o);
	}
}

static void
test_find_scope(void **state)
{
	static const struct {
		const char *name;
		unsigned scope;
		bool found;
		bool valid; /* the row found allows `scope` */
		enum sl_opt id;
	} cases[] = {
		{ "Max_Outbound_Connections", SL_S_DOMAIN, true, true,
		  SL_OPT_MAX_OUTBOUND_CONNECTIONS },
		{ "max_outbound_connections", SL_S_SNMP, true, false,
		  SL_OPT_MAX_OUTBOUND_CONNECTIONS },
		{ "IDLE_TIME", SL_S_PERSONALITY, true, true, SL_OPT_IDLE_TIME },
		{ "idle_time", SL_S_GLOBAL, true, false, SL_OPT_IDLE_TIME },
		{ "match_domain", SL_S_GLOBAL, true, false, SL_OPT_MATCH_DOMAIN },
		{ "state", SL_S_SNMP, true, true, SL_OPT_SNMP_STATE },
		{ "STATE", SL_S_SNMP_TRAPS, true, true, SL_OPT_SNMP_TRAPS_STATE },
		{ "State", SL_S_GLOBAL, true, false, SL_OPT_SNMP_STATE },
		{ "Community", SL_S_SNMP_TRAPS, true, false, SL_OPT_SNMP_COMMUNITY },
		{ "user", SL_S_GLOBAL, true, false, SL_OPT_USER },
		{ "user", SL_S_SECURITY, true, true, SL_OPT_USER },
		{ "no_such_option", SL_S_GLOBAL, false, false, 0 },
		{ "", SL_S_GLOBAL, false, false, 0 },
		{ "Max_Outbound_Connection", SL_S_GLOBAL, false, false, 0 },
		{ "Max_Outbound_Connectionsx", SL_S_GLOBAL, false, false, 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct sl_conf_option *o = sl_conf_option_find(cases[i].name, cases[i].scope);

		if (!cases[i].found) {
			assert_null(o);
			continue;
		}
		assert_non_null(o);
		assert_int_equal(o->id, cases[i].id);
		assert_int_equal((o->scopes & cases[i].scope) != 0, cases[i].valid);
	}
	assert_null(sl_conf_option_find(NULL, SL_S_GLOBAL));
	/* Scope 0: any row with the name. */
	assert_non_null(sl_conf_option_find("state", 0));
}

/* The first and last names in sort order, and every name as a prefix of nothing. */
static void
test_find_edges(void **state)
{
	assert_null(sl_conf_option_find("\x01", SL_S_GLOBAL));
	assert_null(sl_conf_option_find("~~~~", SL_S_GLOBAL));
	assert_null(sl_conf_option_find("zzzzzzzz", SL_S_GLOBAL));
	assert_non_null(sl_conf_option_find("_unsafe_spool", SL_S_GLOBAL));
	assert_non_null(sl_conf_option_find("XCLIENT", SL_S_BINDING));
}

#define FIND_THREADS 8

static void *
find_thread(void *arg)
{
	size_t *bad = arg;

	for (int round = 0; round < 50; round++)
		for (size_t i = 0; i < SL_OPT__COUNT; i++)
			if (sl_conf_option_find(sl_conf_options[i].name,
						sl_conf_options[i].scopes &
							-sl_conf_options[i].scopes) !=
			    &sl_conf_options[i])
				(*bad)++;
	return NULL;
}

/* First use from many threads at once: the index is built exactly once. */
static void
test_find_threads(void **state)
{
	pthread_t t[FIND_THREADS];
	size_t bad[FIND_THREADS] = { 0 };

	for (size_t i = 0; i < FIND_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, find_thread, &bad[i]), 0);
	for (size_t i = 0; i < FIND_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(bad[i], 0);
	}
}

/* ---------------------------------------------------------------- scope names */

static void
test_scope_names(void **state)
{
	static const struct {
		unsigned bit;
		const char *name;
	} cases[] = {
		{ SL_S_GLOBAL, "global" },
		{ SL_S_BINDING_GROUP, "binding_group" },
		{ SL_S_BINDING, "binding" },
		{ SL_S_DOMAIN, "domain" },
		{ SL_S_HOST, "host" },
		{ SL_S_PERSONALITY, "personality" },
		{ SL_S_SNMP, "SNMP" },
		{ SL_S_SNMP_TRAPS, "SNMP_TRAPS" },
		{ SL_S_THREADPOOL, "ThreadPool" },
		{ SL_S_EC_LOGGER, "ec_logger" },
		{ SL_S_BOUNCE_CLASSIFIER, "bounce_classifier" },
		{ SL_S_SECURITY, "Security" },
		{ SL_S_RFC2822, "RFC2822" },
		{ 0, "unknown" },
		{ SL_S_GLOBAL | SL_S_DOMAIN, "unknown" },
		{ 1u << 31, "unknown" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		assert_string_equal(sl_conf_scope_name(cases[i].bit), cases[i].name);
}

static void
test_scopes_format(void **state)
{
	static const struct {
		unsigned scopes;
		size_t len;
		const char *want;
	} cases[] = {
		{ SL_S_GLOBAL | SL_S_BINDING | SL_S_DOMAIN, 64, "global, binding, domain" },
		{ SL_S_OUTBOUND | SL_S_HOST, 64, "global, binding_group, binding, domain, host" },
		{ SL_S_PERSONALITY, 64, "personality" },
		{ SL_S_SNMP | SL_S_SNMP_TRAPS, 64, "SNMP, SNMP_TRAPS" },
		{ 0, 64, "none" },
		{ SL_S_GLOBAL | SL_S_BINDING, 10, "global, b" },
		{ SL_S_GLOBAL, 1, "" },
	};
	char buf[64];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		memset(buf, 'x', sizeof(buf));
		sl_conf_scopes_format(cases[i].scopes, buf, cases[i].len);
		assert_string_equal(buf, cases[i].want);
	}
	/* len 0 writes nothing. */
	buf[0] = 'x';
	sl_conf_scopes_format(SL_S_GLOBAL, buf, 0);
	assert_int_equal(buf[0], 'x');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* First: it is the first use of the lookup index. */
		cmocka_unit_test(test_find_threads),
		cmocka_unit_test(test_rows_at_their_ids),
		cmocka_unit_test(test_row_fields),
		cmocka_unit_test(test_ids_unique),
		cmocka_unit_test(test_name_scope_unique),
		cmocka_unit_test(test_constraints_well_formed),
		cmocka_unit_test(test_defaults_valid),
		cmocka_unit_test(test_checkers_reject),
		cmocka_unit_test(test_reference_options_present),
		cmocka_unit_test(test_stanza_kinds_absent),
		cmocka_unit_test(test_known_rows),
		cmocka_unit_test(test_find_case_insensitive),
		cmocka_unit_test(test_find_scope),
		cmocka_unit_test(test_find_edges),
		cmocka_unit_test(test_scope_names),
		cmocka_unit_test(test_scopes_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
