/*
 * proto/validate.c - the validation module runner and sluice's built-in modules.
 *
 * Modules:
 *   relay  (rcptto, always loaded, inline)  a recipient whose domain is
 *          Blackhole = true/inline is refused (550 5.7.1); otherwise one is accepted when
 *          its domain is one we take mail for (Relay_Domains), or the
 *          client may relay: its address is in Relay_Hosts (global or the
 *          ACL's personality), or its ACL entry has
 *          relay_for_sending_domains (open, or listing the sender's domain).
 *          Anything else is 550 5.7.1.
 *   rdns   (connect, loaded by an rdns block, blocking)  looks up the
 *          client's reverse DNS name (and with Forward_Confirm checks that
 *          it resolves back to the client), sets the context variable
 *          "rdns" to it or to "unknown", and with Require_PTR refuses a
 *          client without one: 450 4.7.25 (RFC 7372).  It calls the
 *          blocking resolver, so it runs on the validation stage.
 *
 * Threads: relay on any thread; rdns on validation threads only (it
 * blocks in getnameinfo/getaddrinfo).  Parses resolver answers only
 * through the C library.
 */
#include "config.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_acl.h"
#include "engine/assert.h"
#include "proto/validate.h"

static const char *const validate_phase_names[SL_VPHASE__COUNT] = {
	[SL_VPHASE_CONNECT] = "connect",
	[SL_VPHASE_EHLO] = "awaiting ehlo",
	[SL_VPHASE_MAILFROM] = "awaiting mailfrom",
	[SL_VPHASE_RCPTTO] = "awaiting rcptto",
	[SL_VPHASE_DATA] = "data",
};

const char *
sl_validate_phase_name(enum sl_validate_phase phase)
{
	return phase < SL_VPHASE__COUNT ? validate_phase_names[phase] : "unknown";
}

bool
sl_validate_domain_in(const char *domain, const char *const *list, size_t cnt)
{
	size_t dlen = strlen(domain);

	for (size_t i = 0; i < cnt; i++) {
		const char *pat = list[i];

		if (pat[0] == '*') {
			/* "*.example.com" needs the dot; "*example.com" is a bare suffix. */
			size_t plen = strlen(pat + 1);

			if (dlen >= plen && strcasecmp(domain + dlen - plen, pat + 1) == 0 &&
			    (pat[1] != '.' || dlen > plen))
				return true;
		} else if (strcasecmp(domain, pat) == 0) {
			return true;
		}
	}
	return false;
}

bool
sl_validate_peer_in(const struct sockaddr *peer, const char *const *list, size_t cnt)
{
	if (peer == NULL)
		return false;
	for (size_t i = 0; i < cnt; i++) {
		struct sl_cidr c;
		char why[128];

		/* Relay_Hosts was checked at load time only as text: skip junk quietly. */
		if (sl_cidr_parse(list[i], &c, why, sizeof(why)) == 0 && sl_cidr_match(&c, peer))
			return true;
	}
	return false;
}

static const char *
validate_domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

static void
validate_set(struct sl_verdict *v, enum sl_verdict_kind kind, unsigned code, const char *enhanced,
	     const char *text)
{
	v->kind = kind;
	v->code = code;
	snprintf(v->enhanced, sizeof(v->enhanced), "%s", enhanced);
	snprintf(v->text, sizeof(v->text), "%s", text);
}

static void
relay_rcptto(const struct sl_validate_ctx *ctx, struct sl_verdict *v)
{
	const union sl_conf_val *val;
	const struct sl_validate_relay *r = ctx->relay;
	const char *rdomain = validate_domain_of(ctx->rcpt);

	/* Blackhole = true/inline fails a destination at RCPT (Momentum's "inline"). */
	{
		struct sl_conf_where w = { NULL, rdomain, NULL };
		const union sl_conf_val *bh = sl_conf_eval(ctx->snap, SL_OPT_BLACKHOLE, &w);

		if (bh != NULL &&
		    (strcasecmp(bh->s, "true") == 0 || strcasecmp(bh->s, "inline") == 0)) {
			validate_set(v, SL_VERDICT_REJECT, 550, "5.7.1",
				     "Delivery to this domain is disabled (blackholed)");
			return;
		}
	}
	/* Mail for a domain we accept (inbound) needs no relay rights. */
	val = sl_conf_global(ctx->snap, SL_OPT_RELAY_DOMAINS);
	if (val != NULL && sl_validate_domain_in(rdomain, val->list.v, val->list.cnt))
		return;
	/* Bare <postmaster> (RFC 5321 §4.5.1) is always ours. */
	if (strchr(ctx->rcpt, '@') == NULL && strcasecmp(ctx->rcpt, "postmaster") == 0)
		return;
	val = sl_conf_global(ctx->snap, SL_OPT_RELAY_HOSTS);
	if (val != NULL && sl_validate_peer_in(ctx->peer, val->list.v, val->list.cnt))
		return;
	if (r != NULL) {
		if (r->acl_relay_hosts != NULL &&
		    sl_validate_peer_in(ctx->peer, r->acl_relay_hosts->v, r->acl_relay_hosts->cnt))
			return;
		if (r->is_open)
			return;
		if (r->sender_domain_cnt > 0 && ctx->sender != NULL &&
		    sl_validate_domain_in(validate_domain_of(ctx->sender), r->sender_domains,
					  r->sender_domain_cnt))
			return;
	}
	validate_set(v, SL_VERDICT_REJECT, 550, "5.7.1", "Relaying denied");
}

static const struct sl_validate_module validate_relay = {
	.name = "relay",
	.block = NULL,
	.is_inline = true,
	.phase = { [SL_VPHASE_RCPTTO] = relay_rcptto },
};

/* The client's address as the resolver wants it: IPv4-mapped IPv6 becomes IPv4. */
static socklen_t
rdns_addr(const struct sockaddr *peer, struct sockaddr_storage *out)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(out, 0, sizeof(*out));
	if (peer->sa_family == AF_INET) {
		memcpy(out, peer, sizeof(struct sockaddr_in));
		return sizeof(struct sockaddr_in);
	}
	if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)peer;

		if (memcmp(&sin6->sin6_addr, v4mapped, sizeof(v4mapped)) == 0) {
			struct sockaddr_in *sin = (struct sockaddr_in *)out;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, (const uint8_t *)&sin6->sin6_addr + 12, 4);
			return sizeof(struct sockaddr_in);
		}
		memcpy(out, peer, sizeof(struct sockaddr_in6));
		return sizeof(struct sockaddr_in6);
	}
	return 0;
}

/* Does `name` resolve to the address in `sa` (forward-confirmed reverse DNS)? */
static bool
rdns_confirms(const char *name, const struct sockaddr_storage *sa)
{
	struct addrinfo hints = { .ai_family = sa->ss_family, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	bool is_match = false;

	if (getaddrinfo(name, NULL, &hints, &res) != 0)
		return false;
	for (const struct addrinfo *ai = res; ai != NULL && !is_match; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET && sa->ss_family == AF_INET)
			is_match = memcmp(&((const struct sockaddr_in *)ai->ai_addr)->sin_addr,
					  &((const struct sockaddr_in *)sa)->sin_addr, 4) == 0;
		else if (ai->ai_family == AF_INET6 && sa->ss_family == AF_INET6)
			is_match = memcmp(&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
					  &((const struct sockaddr_in6 *)sa)->sin6_addr, 16) == 0;
	}
	freeaddrinfo(res);
	return is_match;
}

static void
rdns_connect(const struct sl_validate_ctx *ctx, struct sl_verdict *v)
{
	size_t pos = 0;
	const struct sl_conf_block *b = sl_conf_block_next(ctx->snap, "rdns", &pos);
	const union sl_conf_val *req = sl_conf_block_get(ctx->snap, b, SL_OPT_RDNS_REQUIRE_PTR);
	const union sl_conf_val *fc = sl_conf_block_get(ctx->snap, b, SL_OPT_RDNS_FORWARD_CONFIRM);
	struct sockaddr_storage sa;
	socklen_t len;
	char host[NI_MAXHOST];
	bool is_known = false;

	if (ctx->peer == NULL)
		return; /* a Unix-socket client is local */
	len = rdns_addr(ctx->peer, &sa);
	if (len != 0 &&
	    getnameinfo((struct sockaddr *)&sa, len, host, sizeof(host), NULL, 0, NI_NAMEREQD) == 0)
		is_known = !(fc != NULL && fc->b) || rdns_confirms(host, &sa);
	if (ctx->context_set != NULL)
		ctx->context_set(ctx->ctx_arg, "rdns", is_known ? host : "unknown");
	if (!is_known && req != NULL && req->b)
		validate_set(v, SL_VERDICT_TEMPFAIL, 450, "4.7.25",
			     "Client host rejected: cannot find your reverse hostname");
}

static const struct sl_validate_module validate_rdns = {
	.name = "rdns",
	.block = "rdns",
	.is_inline = false,
	.phase = { [SL_VPHASE_CONNECT] = rdns_connect },
};

static const struct sl_validate_module *const validate_builtin[] = {
	&validate_relay,
	&validate_rdns,
};

const struct sl_validate_module *const *
sl_validate_modules(size_t *cnt)
{
	*cnt = SL_ARRAY_LEN(validate_builtin);
	return validate_builtin;
}

bool
sl_validate_is_loaded(const struct sl_validate_module *m, const struct sl_conf_snapshot *s)
{
	size_t pos = 0;

	return m->block == NULL || (s != NULL && sl_conf_block_next(s, m->block, &pos) != NULL);
}

bool
sl_validate_needs_pool(const struct sl_conf_snapshot *s, enum sl_validate_phase phase)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(validate_builtin); i++) {
		const struct sl_validate_module *m = validate_builtin[i];

		if (m->phase[phase] != NULL && !m->is_inline && sl_validate_is_loaded(m, s))
			return true;
	}
	return false;
}

static bool
validate_is_bypassed(const struct sl_validate_ctx *ctx, const char *name)
{
	char key[96];
	const char *val;

	if (ctx->context_get == NULL)
		return false;
	snprintf(key, sizeof(key), "__bypass_%s", name);
	val = ctx->context_get(ctx->ctx_arg, key);
	return val != NULL && (strcasecmp(val, "true") == 0 || strcmp(val, "1") == 0);
}

void
sl_validate_run(enum sl_validate_phase phase, const struct sl_validate_ctx *ctx,
		bool is_inline_only, struct sl_verdict *v)
{
	SL_ASSERT(phase < SL_VPHASE__COUNT);
	memset(v, 0, sizeof(*v));
	v->kind = SL_VERDICT_ACCEPT;
	for (size_t i = 0; i < SL_ARRAY_LEN(validate_builtin); i++) {
		const struct sl_validate_module *m = validate_builtin[i];
		if (m->phase[phase] == NULL || (is_inline_only && !m->is_inline) ||
		    !sl_validate_is_loaded(m, ctx->snap) || validate_is_bypassed(ctx, m->name))
			continue;
		m->phase[phase](ctx, v);
		if (v->kind != SL_VERDICT_ACCEPT) {
			v->module = m->name;
			return;
		}
	}
}
