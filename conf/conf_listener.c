/*
 * conf/conf_listener.c - typed listener lists from the parse tree, and the ACL walk.
 *
 * Turns `ESMTP_Listener = ( *:25 <proto=ipv4> [ cidr = ( props ) ] ... )`
 * into struct sl_conf_listener (conf_listener.h), checking every address,
 * attribute, CIDR and property, and which properties each listener kind
 * supports: ESMTP all of them; ECStream only personality, context,
 * relay_for_sending_domains and continue (the reference: "no extended
 * properties"); Control only ALWAYS-ALLOW, LOGIN, DIGEST-MD5 and continue.
 *
 * Threads: the config thread builds; any thread may run sl_conf_acl_resolve
 * on a snapshot it holds.  Parses untrusted configuration.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "conf/conf_int.h"
#include "engine/alloc.h"
#include "engine/assert.h"

static const char *const listener_names[SL_LISTENER__COUNT] = {
	[SL_LISTENER_ESMTP] = "ESMTP_Listener",
	[SL_LISTENER_ECSTREAM] = "ECStream_Listener",
	[SL_LISTENER_CONTROL] = "Control_Listener",
};

const char *
sl_listener_kind_name(enum sl_listener_kind kind)
{
	return kind < SL_LISTENER__COUNT ? listener_names[kind] : "?";
}

/* Properties of ACL entries, and the listener kinds that accept them. */
#define L_ESMTP    (1u << SL_LISTENER_ESMTP)
#define L_ECSTREAM (1u << SL_LISTENER_ECSTREAM)
#define L_CONTROL  (1u << SL_LISTENER_CONTROL)

struct listener_prop_def {
	const char *name;
	unsigned kinds;
	const char *const *params; /* allowed [ ] keys; NULL: takes no [ ] */
};

static const char *const params_ext[] = { "extension", NULL };
static const char *const params_tls[] = { "extension", "certificate", "key",       "clientca",
					  "ciphers",   "verify",      "protocols", NULL };
static const char *const params_auth[] = { "extension", "extension_argument", "uri",
					   "realm",     "stored_cleartext",   NULL };

static const struct listener_prop_def listener_props[] = {
	{ "TLS", L_ESMTP, params_tls },
	{ "CRAM-MD5", L_ESMTP, params_auth },
	{ "DIGEST-MD5", L_ESMTP | L_CONTROL, params_auth },
	{ "LOGIN", L_ESMTP | L_CONTROL, params_auth },
	{ "PLAIN", L_ESMTP, params_auth },
	{ "XCLIENT", L_ESMTP, params_ext },
	{ "XREMOTEIP", L_ESMTP, params_ext },
	{ "XDUMPCONTEXT", L_ESMTP, params_ext },
	{ "ENHANCEDSTATUSCODES", L_ESMTP, params_ext },
	{ "ALWAYS-ALLOW", L_CONTROL, NULL },
};

struct listener_ctx {
	struct sl_arena *a;
	enum sl_listener_kind kind;
	const char *base_dir;
	struct sl_conf_errors *errs;
	size_t errs_before; /* errs->cnt when this listener started: more means refused */
};

/* ",backlog" and "~threads" after the address part; `p` points at ',' or '~' or NUL. */
static int
listener_tail(struct listener_ctx *c, const struct sl_conf_item *it, const char *p,
	      struct sl_conf_listen_addr *out)
{
	char *end;
	unsigned long n;

	out->backlog = SL_LISTEN_BACKLOG_DEFAULT;
	out->accept_threads = 1;
	if (*p == ',') {
		errno = 0;
		n = strtoul(p + 1, &end, 10);
		if (!isdigit((unsigned char)p[1]) || errno != 0 || n < 1 ||
		    n > SL_LISTEN_BACKLOG_MAX) {
			sl_conf_error_add(c->errs, &it->loc, "listen backlog in '%s' must be 1..%u",
					  it->text, SL_LISTEN_BACKLOG_MAX);
			return -1;
		}
		out->backlog = (unsigned)n;
		p = end;
	}
	if (*p == '~') {
		errno = 0;
		n = strtoul(p + 1, &end, 10);
		if (!isdigit((unsigned char)p[1]) || errno != 0 || n < 1 ||
		    n > SL_LISTEN_THREADS_MAX) {
			sl_conf_error_add(c->errs, &it->loc,
					  "accept concurrency in '%s' must be 1..%u", it->text,
					  SL_LISTEN_THREADS_MAX);
			return -1;
		}
		out->accept_threads = (unsigned)n;
		p = end;
	}
	if (*p != '\0') {
		sl_conf_error_add(
			c->errs, &it->loc,
			"'%s' is not a listener address (expected host:port[,backlog[~threads]] "
			"or /path[,backlog[~threads]])",
			it->text);
		return -1;
	}
	return 0;
}

static int
listener_port(struct listener_ctx *c, const struct sl_conf_item *it, const char *p,
	      const char **rest, uint16_t *port)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(p, &end, 10);
	if (!isdigit((unsigned char)*p) || errno != 0 || n < 1 || n > 65535) {
		sl_conf_error_add(c->errs, &it->loc,
				  "port in listener address '%s' must be 1..65535", it->text);
		return -1;
	}
	*port = (uint16_t)n;
	*rest = end;
	return 0;
}

static int
listener_address(struct listener_ctx *c, const struct sl_conf_item *it,
		 struct sl_conf_listen_addr *out)
{
	const char *t = it->text, *rest;
	char host[64];

	out->loc = it->loc;
	out->kind = c->kind;
	if (t[0] == '\\') {
		sl_conf_error_add(
			c->errs, &it->loc,
			"'%s' is a Windows named pipe; sluice runs on Unix: use a Unix socket "
			"path such as /var/run/sluice/control",
			t);
		return -1;
	}
	/* A path: absolute, ./relative, or any relative name with a '/' in it. */
	if (t[0] == '/' || t[0] == '.' || (t[0] != '[' && strchr(t, '/') != NULL)) {
		const char *tail = t + strcspn(t, ",~");
		char *path = sl_strndup(t, (size_t)(tail - t));
		struct sockaddr_un sun;
		int rc = 0;

		out->family = SL_LISTEN_UNIX;
		out->path = sl_conf__abspath(c->a, c->base_dir, path);
		sl_free(path);
		if (strlen(out->path) >= sizeof(sun.sun_path)) {
			sl_conf_error_add(c->errs, &it->loc,
					  "Unix socket path '%s' is longer than %zu bytes",
					  out->path, sizeof(sun.sun_path) - 1);
			rc = -1;
		}
		if (rc == 0)
			rc = listener_tail(c, it, tail, out);
		out->text = out->path;
		return rc;
	}
	if (t[0] == '[') {
		const char *close = strchr(t, ']');
		size_t n = close ? (size_t)(close - t - 1) : 0;
		struct in6_addr a6;

		if (close == NULL || close[1] != ':' || n == 0 || n >= sizeof(host)) {
			sl_conf_error_add(c->errs, &it->loc, "'%s' is not an [IPv6]:port address",
					  t);
			return -1;
		}
		memcpy(host, t + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			sl_conf_error_add(c->errs, &it->loc, "'%s' in '%s' is not an IPv6 address",
					  host, t);
			return -1;
		}
		out->family = SL_LISTEN_INET6;
		out->host = sl_arena_strdup(c->a, host);
		if (listener_port(c, it, close + 2, &rest, &out->port) != 0)
			return -1;
	} else {
		/* host:port, then an optional ",backlog~threads" tail. */
		const char *colon = memchr(t, ':', strcspn(t, ",~"));
		size_t n = colon ? (size_t)(colon - t) : 0;
		struct in_addr a4;

		if (colon == NULL || n == 0 || n >= sizeof(host)) {
			sl_conf_error_add(
				c->errs, &it->loc,
				"'%s' is not a listener address (expected *:port, ip:port, "
				"[ipv6]:port or /path)",
				t);
			return -1;
		}
		memcpy(host, t, n);
		host[n] = '\0';
		if (strcmp(host, "*") == 0) {
			out->family = SL_LISTEN_ANY;
		} else if (inet_pton(AF_INET, host, &a4) == 1) {
			out->family = SL_LISTEN_INET4;
			out->host = sl_arena_strdup(c->a, host);
		} else {
			sl_conf_error_add(c->errs, &it->loc,
					  "'%s' in '%s' is not * or an IPv4 address (IPv6 goes in "
					  "brackets: [::1]:25)",
					  host, t);
			return -1;
		}
		if (listener_port(c, it, colon + 1, &rest, &out->port) != 0)
			return -1;
	}
	if (listener_tail(c, it, rest, out) != 0)
		return -1;
	{
		char *s = out->family == SL_LISTEN_INET6
				  ? sl_asprintf("[%s]:%u", out->host, out->port)
				  : sl_asprintf("%s:%u", out->host ? out->host : "*", out->port);

		out->text = sl_arena_strdup(c->a, s);
		sl_free(s);
	}
	return 0;
}

static int
listener_attrs(struct listener_ctx *c, const struct sl_conf_item *it,
	       struct sl_conf_listen_addr *out)
{
	int rc = 0;

	for (size_t i = 0; i < it->attr_cnt; i++) {
		const struct sl_conf_pair *p = &it->attrs[i];
		const char *val = p->value.text;

		if (p->value.kind == SL_CONF_LIST) {
			sl_conf_error_add(c->errs, &p->value.loc,
					  "listener attribute '%s' takes one value", p->key);
			rc = -1;
		} else if (strcasecmp(p->key, "status") == 0) {
			if (strcasecmp(val, "disabled") == 0)
				out->is_disabled = true;
			else if (strcasecmp(val, "enabled") == 0)
				out->is_disabled = false;
			else {
				sl_conf_error_add(
					c->errs, &p->value.loc,
					"status must be \"enabled\" or \"disabled\", not '%s'",
					val);
				rc = -1;
			}
		} else if (strcasecmp(p->key, "proto") == 0) {
			if (strcasecmp(val, "ipv4") == 0)
				out->proto = SL_LISTEN_PROTO_IPV4;
			else if (strcasecmp(val, "ipv6") == 0)
				out->proto = SL_LISTEN_PROTO_IPV6;
			else if (strcasecmp(val, "both") == 0)
				out->proto = SL_LISTEN_PROTO_BOTH;
			else {
				sl_conf_error_add(c->errs, &p->value.loc,
						  "proto must be ipv4, ipv6 or both, not '%s'",
						  val);
				rc = -1;
			}
		} else {
			/* Momentum documents <name="value"> as open-ended syntax. */
			sl_conf_warning_add(c->errs, &p->loc,
					    "unknown listener attribute '%s' is ignored (known: "
					    "status, proto)",
					    p->key);
		}
	}
	if (rc == 0 && out->family != SL_LISTEN_ANY && out->proto != SL_LISTEN_PROTO_BOTH) {
		bool is_v6 = out->proto == SL_LISTEN_PROTO_IPV6;

		if (out->family == SL_LISTEN_UNIX || (out->family == SL_LISTEN_INET4 && is_v6) ||
		    (out->family == SL_LISTEN_INET6 && !is_v6)) {
			sl_conf_error_add(c->errs, &it->loc,
					  "proto=%s contradicts the address '%s'",
					  is_v6 ? "ipv6" : "ipv4", it->text);
			rc = -1;
		}
	}
	return rc;
}

static const struct sl_conf_kvlist *
listener_kvlist(struct listener_ctx *c, const struct sl_conf_pair *pairs, size_t cnt)
{
	struct sl_conf_kvlist *l = sl_arena_alloc(c->a, sizeof(*l));
	struct sl_conf_kv *v = sl_arena_alloc(c->a, cnt * sizeof(*v));

	for (size_t i = 0; i < cnt; i++) {
		v[i].loc = pairs[i].loc;
		v[i].key = pairs[i].key;
		v[i].val = sl_conf__value_text(c->a, &pairs[i].value);
	}
	l->v = v;
	l->cnt = cnt;
	return l;
}

static const struct listener_prop_def *
listener_prop_find(const char *name)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(listener_props); i++)
		if (strcasecmp(listener_props[i].name, name) == 0)
			return &listener_props[i];
	return NULL;
}

static int
listener_prop(struct listener_ctx *c, const struct sl_conf_item *it,
	      const struct listener_prop_def *def, struct sl_conf_prop *out)
{
	int rc = 0;

	if (!(def->kinds & (1u << c->kind))) {
		sl_conf_error_add(c->errs, &it->loc, "%s does not support the %s property",
				  listener_names[c->kind], def->name);
		return -1;
	}
	if (def->params == NULL && it->has_params) {
		sl_conf_error_add(c->errs, &it->loc, "%s takes no [ ... ] parameters", def->name);
		return -1;
	}
	for (size_t i = 0; i < it->param_cnt; i++) {
		const struct sl_conf_pair *p = &it->params[i];
		bool is_known = false;

		for (const char *const *k = def->params; *k != NULL; k++)
			is_known |= strcasecmp(*k, p->key) == 0;
		if (!is_known) {
			sl_conf_error_add(c->errs, &p->loc, "unknown %s parameter '%s'", def->name,
					  p->key);
			rc = -1;
		} else if (p->value.kind == SL_CONF_LIST) {
			sl_conf_error_add(c->errs, &p->value.loc,
					  "%s parameter '%s' takes one value", def->name, p->key);
			rc = -1;
		}
	}
	out->loc = it->loc;
	out->name = def->name;
	out->params = listener_kvlist(c, it->params, it->param_cnt);
	return rc;
}

static int
listener_relay(struct listener_ctx *c, const struct sl_conf_item *it, struct sl_conf_acl_entry *e)
{
	const char **v = sl_arena_alloc(c->a, (it->param_cnt + 1) * sizeof(*v));
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < it->param_cnt; i++) {
		const struct sl_conf_pair *p = &it->params[i];
		bool is_on;

		if (p->value.kind == SL_CONF_LIST || (strcasecmp(p->value.text, "true") != 0 &&
						      strcasecmp(p->value.text, "false") != 0)) {
			sl_conf_error_add(
				c->errs, &p->value.loc,
				"relay_for_sending_domains entries read 'domain = true' or "
				"'domain = false'");
			rc = -1;
			continue;
		}
		is_on = strcasecmp(p->value.text, "true") == 0;
		if (is_on)
			v[n++] = sl_arena_strdup(c->a, p->key);
	}
	/* Only "= false" entries: relay rights for nobody, which is not "open". */
	e->has_relay = it->param_cnt == 0 || n > 0;
	v[n] = NULL;
	e->relay_domains = v;
	return rc;
}

static int
listener_acl_entry(struct listener_ctx *c, const struct sl_conf_pair *pair,
		   struct sl_conf_acl_entry *e)
{
	char why[160];
	struct sl_conf_prop *props;
	size_t prop_cnt = 0;
	int rc = 0;
	bool has_personality = false, has_context = false;
	const struct sl_conf_item *pers = NULL;
	struct sl_conf_pair *opts;
	size_t opt_cnt = 0;
	static const struct sl_conf_settings empty_set = { NULL, 0 };
	static const struct sl_conf_kvlist empty_kv = { NULL, 0 };

	e->loc = pair->loc;
	e->personality = &empty_set;
	e->context = &empty_kv;
	if (pair->key_is_string || sl_cidr_parse(pair->key, &e->cidr, why, sizeof(why)) != 0) {
		if (pair->key_is_string)
			snprintf(why, sizeof(why), "ACL keys are written without quotes");
		if (strcasecmp(pair->key, "DENY") == 0 || strcasecmp(pair->key, "ALLOW") == 0)
			snprintf(why, sizeof(why),
				 "%s lists are Windows named-pipe ACLs; use CIDR entries",
				 pair->key);
		sl_conf_error_add(c->errs, &pair->loc, "bad ACL entry '%s': %s", pair->key, why);
		return -1;
	}
	if (pair->value.kind != SL_CONF_LIST) {
		sl_conf_error_add(c->errs, &pair->value.loc,
				  "ACL entry %s needs a list: %s = ( ... )", pair->key, pair->key);
		return -1;
	}
	props = sl_arena_alloc(c->a, pair->value.item_cnt * sizeof(*props));
	opts = sl_arena_alloc(c->a, pair->value.item_cnt * sizeof(*opts));
	for (size_t i = 0; i < pair->value.item_cnt; i++) {
		const struct sl_conf_item *it = &pair->value.items[i];
		const struct listener_prop_def *def;

		if (it->list != NULL) {
			/* The reference's `relay_hosts ( ... )` inside an entry: the
			 * personality option in another spelling. */
			if (strcasecmp(it->text, "relay_hosts") != 0 || it->is_string ||
			    it->has_attrs || it->has_params) {
				sl_conf_error_add(c->errs, &it->loc,
						  "'%s ( ... )' is not an ACL property (only "
						  "relay_hosts ( ... ) takes a list here)",
						  it->text);
				rc = -1;
			} else if (c->kind == SL_LISTENER_CONTROL) {
				sl_conf_error_add(c->errs, &it->loc,
						  "Control_Listener does not support relay_hosts");
				rc = -1;
			} else {
				opts[opt_cnt].loc = it->loc;
				opts[opt_cnt].key = it->text;
				opts[opt_cnt].value = *it->list;
				opt_cnt++;
			}
		} else if (it->is_string || it->has_attrs) {
			sl_conf_error_add(c->errs, &it->loc, "'%s' is not an ACL property",
					  it->text);
			rc = -1;
		} else if (strcasecmp(it->text, "continue") == 0) {
			if (it->has_params) {
				sl_conf_error_add(c->errs, &it->loc,
						  "continue takes no parameters");
				rc = -1;
			}
			e->has_continue = true;
		} else if (strcasecmp(it->text, "personality") == 0) {
			if (has_personality) {
				sl_conf_error_add(c->errs, &it->loc,
						  "personality given twice in one ACL entry");
				rc = -1;
			}
			has_personality = true;
			pers = it;
			if (c->kind == SL_LISTENER_CONTROL && it->param_cnt > 0) {
				sl_conf_error_add(c->errs, &it->loc,
						  "Control_Listener does not support personality");
				rc = -1;
			}
		} else if (strcasecmp(it->text, "context") == 0) {
			if (has_context) {
				sl_conf_error_add(c->errs, &it->loc,
						  "context given twice in one ACL entry");
				rc = -1;
			}
			has_context = true;
			for (size_t k = 0; k < it->param_cnt; k++) {
				if (it->params[k].value.kind == SL_CONF_LIST) {
					sl_conf_error_add(c->errs, &it->params[k].value.loc,
							  "context variable '%s' takes one value",
							  it->params[k].key);
					rc = -1;
				}
			}
			e->context = listener_kvlist(c, it->params, it->param_cnt);
		} else if (strcasecmp(it->text, "relay_for_sending_domains") == 0) {
			if (c->kind == SL_LISTENER_CONTROL) {
				sl_conf_error_add(c->errs, &it->loc,
						  "Control_Listener does not support "
						  "relay_for_sending_domains");
				rc = -1;
			} else if (listener_relay(c, it, e) != 0) {
				rc = -1;
			}
		} else if ((def = listener_prop_find(it->text)) != NULL) {
			if (listener_prop(c, it, def, &props[prop_cnt++]) != 0)
				rc = -1;
		} else {
			sl_conf_error_add(
				c->errs, &it->loc,
				"unknown ACL property '%s' (known: continue, personality, "
				"context, relay_for_sending_domains, TLS, CRAM-MD5, DIGEST-MD5, "
				"LOGIN, PLAIN, XCLIENT, XREMOTEIP, XDUMPCONTEXT, "
				"ENHANCEDSTATUSCODES, ALWAYS-ALLOW)",
				it->text);
			rc = -1;
		}
	}
	if (pers != NULL || opt_cnt > 0) {
		/* personality [ ... ] and the list-form options make one settings set
		 * (which reports an option given in both). */
		struct sl_conf_settings *set = sl_arena_alloc(c->a, sizeof(*set));
		size_t pcnt = pers != NULL ? pers->param_cnt : 0;
		struct sl_conf_pair *all =
			sl_arena_alloc(c->a, (pcnt + opt_cnt + 1) * sizeof(*all));

		if (pcnt > 0)
			memcpy(all, pers->params, pcnt * sizeof(*all));
		if (opt_cnt > 0)
			memcpy(all + pcnt, opts, opt_cnt * sizeof(*all));
		if (sl_conf__settings_from_pairs(c->a, SL_S_PERSONALITY, all, pcnt + opt_cnt,
						 c->base_dir, set, c->errs) != 0)
			rc = -1;
		e->personality = set;
	}
	e->props = props;
	e->prop_cnt = prop_cnt;
	return rc;
}

/*
 * Whether one client can match both blocks.  CIDR blocks of one family
 * overlap only when one holds the other; across families an IPv4 client on
 * a dual-stack socket may match both, so say yes.
 */
static bool
listener_cidr_overlap(const struct sl_cidr *a, const struct sl_cidr *b)
{
	unsigned bits = a->bits < b->bits ? a->bits : b->bits;
	unsigned full = bits / 8, rest = bits % 8;

	if (a->family != b->family)
		return true;
	if (memcmp(a->addr, b->addr, full) != 0)
		return false;
	return rest == 0 || ((a->addr[full] ^ b->addr[full]) & (0xff00u >> rest) & 0xff) == 0;
}

/*
 * At most SL_ACL_APPLIED_MAX entries apply to one client (through
 * `continue`); a longer chain is refused here rather than cut at run time.
 * chain[j] bounds how many entries can have applied when entry j does: one
 * more than the longest chain ending in an earlier `continue` entry whose
 * block overlaps j's.  An upper bound (a non-continue entry in between may
 * end the walk first), exact for the usual nested blocks.
 */
static void
listener_acl_depth(struct listener_ctx *c, const struct sl_conf_listen_addr *ad)
{
	size_t *chain = sl_calloc(ad->acl_cnt ? ad->acl_cnt : 1, sizeof(*chain));

	for (size_t j = 0; j < ad->acl_cnt; j++) {
		chain[j] = 1;
		for (size_t i = 0; i < j; i++)
			if (ad->acl[i].has_continue && chain[i] + 1 > chain[j] &&
			    listener_cidr_overlap(&ad->acl[i].cidr, &ad->acl[j].cidr))
				chain[j] = chain[i] + 1;
		if (chain[j] > SL_ACL_APPLIED_MAX) {
			char cidr[INET6_ADDRSTRLEN + 8];

			sl_cidr_format(&ad->acl[j].cidr, cidr, sizeof(cidr));
			sl_conf_error_add(c->errs, &ad->acl[j].loc,
					  "ACL entry %s of %s can be the %zuth to apply to one "
					  "client through 'continue'; at most %d can",
					  cidr, ad->text, chain[j], SL_ACL_APPLIED_MAX);
			break;
		}
	}
	sl_free(chain);
}

const struct sl_conf_listener *
sl_conf__listener_build(struct sl_arena *a, enum sl_listener_kind kind,
			const struct sl_conf_value *v, const char *base_dir,
			struct sl_conf_errors *errs)
{
	struct listener_ctx c = { a, kind, base_dir, errs, errs->cnt };
	struct sl_conf_listener *l = sl_arena_alloc(a, sizeof(*l));
	struct sl_conf_listen_addr *addrs;

	l->kind = kind;
	if (v->kind == SL_CONF_PAIRS) {
		sl_conf_error_add(c.errs, &v->loc, "%s takes a list of addresses: %s = ( ... )",
				  listener_names[kind], listener_names[kind]);
		return NULL;
	}
	if (v->kind != SL_CONF_LIST) {
		/* A single address without parentheses: accept it as a list of one. */
		struct sl_conf_item *it = sl_arena_alloc(a, sizeof(*it));

		it->loc = v->loc;
		it->text = v->text;
		it->is_string = v->kind == SL_CONF_STRING;
		addrs = sl_arena_alloc(a, sizeof(*addrs));
		if (listener_address(&c, it, &addrs[0]) == 0)
			l->addr_cnt = 1;
		l->addrs = addrs;
		return errs->cnt > c.errs_before ? NULL : l;
	}
	addrs = sl_arena_alloc(a, v->item_cnt * sizeof(*addrs));
	for (size_t i = 0; i < v->item_cnt; i++) {
		const struct sl_conf_item *it = &v->items[i];
		struct sl_conf_listen_addr *ad = &addrs[l->addr_cnt];
		struct sl_conf_acl_entry *acl;

		if (it->list != NULL) {
			sl_conf_error_add(c.errs, &it->list->loc,
					  "unexpected '(' after the address %s", it->text);
			continue;
		}
		if (listener_address(&c, it, ad) != 0)
			continue;
		listener_attrs(&c, it, ad);
		acl = sl_arena_alloc(a, it->param_cnt * sizeof(*acl));
		for (size_t k = 0; k < it->param_cnt; k++)
			listener_acl_entry(&c, &it->params[k], &acl[k]);
		ad->acl = acl;
		ad->acl_cnt = it->param_cnt;
		listener_acl_depth(&c, ad);
		/* The reference lists *:587 twice to show its syntax, so this is not an
		 * error here; opening the listeners refuses to bind it twice. */
		for (size_t k = 0; k < l->addr_cnt; k++) {
			if (strcmp(addrs[k].text, ad->text) == 0) {
				sl_conf_warning_add(errs, &it->loc,
						    "address %s is already listed at line %u; only "
						    "one of them can be opened",
						    ad->text, addrs[k].loc.line);
				break;
			}
		}
		l->addr_cnt++;
	}
	l->addrs = addrs;
	return errs->cnt > c.errs_before ? NULL : l;
}

void
sl_conf_acl_resolve(const struct sl_conf_listen_addr *a, const struct sockaddr *sa,
		    struct sl_conf_acl_match *m)
{
	m->applied_cnt = 0;
	for (size_t i = 0; i < a->acl_cnt; i++) {
		const struct sl_conf_acl_entry *e = &a->acl[i];

		if (!sl_cidr_match(&e->cidr, sa))
			continue;
		/* The configuration keeps every chain within the array. */
		SL_ASSERT(m->applied_cnt < SL_ACL_APPLIED_MAX);
		m->applied[m->applied_cnt++] = e;
		if (!e->has_continue)
			break;
	}
}
