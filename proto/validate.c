/*
 * proto/validate.c - the validation module runner and sluice's modules.
 *
 * Built-in modules (always loaded; they run first, in this order):
 *   ehlo          (ehlo)  the HELO/EHLO argument must be a domain (letters,
 *                 digits, '-', '_', dot-separated labels) or an address
 *                 literal "[...]" (RFC 5321 §4.1.1.1): else 501 5.5.2.
 *   require_ehlo  (mailfrom)  with Require_EHLO, MAIL before HELO/EHLO is
 *                 503 5.5.1.
 *   null_sender   (mailfrom)  with Allow_Null_Envelope_Sender = false,
 *                 MAIL FROM:<> is 553 5.1.7.
 *   message_size  (no callback)  Message_Size is enforced by the SMTP
 *                 machine while the content streams in; the protocol stage
 *                 asks sl_validate_is_active() when the session starts, so
 *                 __bypass_message_size lifts the limit for the session.
 *   relay         (rcptto)  a recipient whose domain is Blackhole =
 *                 true/inline is refused (550 5.7.1); otherwise one is
 *                 accepted when its domain is one we take mail for
 *                 (Relay_Domains), or the client may relay: its address is
 *                 in Relay_Hosts (global or the ACL's personality), or its
 *                 ACL entry has relay_for_sending_domains (open, or listing
 *                 the sender's domain).  Anything else is 550 5.7.1.
 *   rfc2822       (data)  Date_Header = pedantic refuses a message without
 *                 Date: (550 5.6.0).  Lone CR/LF (Lone_LF_In_Body/Headers)
 *                 is found by the machine while reading; like message_size
 *                 the protocol stage asks at session start, and a bypassed
 *                 rfc2822 passes lone CR/LF through (headers: fixed).
 * Loadable modules (run after the built-ins, as declared):
 *   rdns   (connect, loaded by an rdns block, blocking)  looks up the
 *          client's reverse DNS name (and with Forward_Confirm checks that
 *          it resolves back to the client), sets the context variable
 *          "rdns" to it or to "unknown", and with Require_PTR refuses a
 *          client without one: 450 4.7.25 (RFC 7372).  It calls the
 *          blocking resolver, so it runs on the validation stage.  Several
 *          instances may be loaded with <name="...">.
 *
 * Threads: the built-ins on any thread; rdns on validation threads only
 * (it blocks in getnameinfo/getaddrinfo).  Parses resolver answers only
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

/* RFC 5321 §4.1.1.1: Domain or address-literal (underscores tolerated: common in the wild). */
static bool
ehlo_is_valid(const char *arg)
{
	size_t len = strlen(arg), label = 0;

	if (len >= 2 && arg[0] == '[' && arg[len - 1] == ']')
		return strchr(arg + 1, '[') == NULL && strchr(arg + 1, ']') == arg + len - 1;
	for (const char *p = arg; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return false; /* an empty label */
			label = 0;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			   (*p >= '0' && *p <= '9') || *p == '-' || *p == '_') {
			label++;
		} else {
			return false;
		}
	}
	return len > 0;
}

static void
ehlo_ehlo(const struct sl_validate_ctx *ctx, struct sl_verdict *v)
{
	if (!ehlo_is_valid(ctx->helo))
		validate_set(v, SL_VERDICT_REJECT, 501, "5.5.2",
			     "Syntax: HELO/EHLO argument is not a domain or address literal");
}

static const struct sl_validate_module validate_ehlo = {
	.name = "ehlo",
	.is_inline = true,
	.phase = { [SL_VPHASE_EHLO] = ehlo_ehlo },
};

static void
require_ehlo_mailfrom(const struct sl_validate_ctx *ctx, struct sl_verdict *v)
{
	if (ctx->policy != NULL && ctx->policy->require_ehlo &&
	    (ctx->helo == NULL || ctx->helo[0] == '\0'))
		validate_set(v, SL_VERDICT_REJECT, 503, "5.5.1", "Error: send HELO/EHLO first");
}

static const struct sl_validate_module validate_require_ehlo = {
	.name = "require_ehlo",
	.is_inline = true,
	.phase = { [SL_VPHASE_MAILFROM] = require_ehlo_mailfrom },
};

static void
null_sender_mailfrom(const struct sl_validate_ctx *ctx, struct sl_verdict *v)
{
	if (ctx->policy != NULL && !ctx->policy->allow_null_sender && ctx->sender != NULL &&
	    ctx->sender[0] == '\0')
		validate_set(v, SL_VERDICT_REJECT, 553, "5.1.7", "Null sender not allowed");
}

static const struct sl_validate_module validate_null_sender = {
	.name = "null_sender",
	.is_inline = true,
	.phase = { [SL_VPHASE_MAILFROM] = null_sender_mailfrom },
};

static const struct sl_validate_module validate_message_size = {
	.name = "message_size",
	.is_inline = true,
};

static void
rfc2822_data(const struct sl_validate_ctx *ctx, struct sl_verdict *v)
{
	if (!ctx->has_date_header && ctx->policy != NULL && ctx->policy->date_pedantic)
		validate_set(v, SL_VERDICT_REJECT, 550, "5.6.0", "Message has no Date: header");
}

static const struct sl_validate_module validate_rfc2822 = {
	.name = "rfc2822",
	.is_inline = true,
	.phase = { [SL_VPHASE_DATA] = rfc2822_data },
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
	const struct sl_conf_block *b = ctx->block;
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

/* Built-ins first, in their documented order; then the loadable ones. */
static const struct sl_validate_module *const validate_all[] = {
	&validate_ehlo,  &validate_require_ehlo, &validate_null_sender, &validate_message_size,
	&validate_relay, &validate_rfc2822,      &validate_rdns,
};

const struct sl_validate_module *const *
sl_validate_modules(size_t *cnt)
{
	*cnt = SL_ARRAY_LEN(validate_all);
	return validate_all;
}

void
sl_validate_chain_add(struct sl_validate_chain *ch, const struct sl_validate_module *m,
		      const struct sl_conf_block *b, const char *name)
{
	if (ch->cnt == SL_VALIDATE_CHAIN_MAX)
		return; /* the configuration check caps loaded instances well below this */
	ch->link[ch->cnt].mod = m;
	ch->link[ch->cnt].block = b;
	ch->link[ch->cnt].name = name;
	ch->cnt++;
	for (size_t p = 0; p < SL_VPHASE__COUNT; p++)
		if (m->phase[p] != NULL && !m->is_inline)
			ch->needs_pool[p] = true;
}

void
sl_validate_chain_build(const struct sl_conf_snapshot *s, struct sl_validate_chain *ch)
{
	memset(ch, 0, sizeof(*ch));
	for (size_t i = 0; i < SL_ARRAY_LEN(validate_all); i++)
		if (validate_all[i]->block == NULL)
			sl_validate_chain_add(ch, validate_all[i], NULL, validate_all[i]->name);
	if (s == NULL)
		return;
	/* Blocks are kept in declaration order: that is the order modules run in. */
	for (size_t k = 0; k < s->block_cnt; k++) {
		const struct sl_conf_block *b = &s->blocks[k];

		if (b->is_passive)
			continue; /* loaded, but its hooks are not called (conf.ref.validate) */
		for (size_t i = 0; i < SL_ARRAY_LEN(validate_all); i++) {
			const struct sl_validate_module *m = validate_all[i];

			if (m->block != NULL && strcasecmp(m->block, b->kind) == 0)
				sl_validate_chain_add(ch, m, b, b->name ? b->name : m->name);
		}
	}
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

bool
sl_validate_is_active(const struct sl_validate_chain *ch, const char *name,
		      const struct sl_validate_ctx *ctx)
{
	for (size_t i = 0; i < ch->cnt; i++)
		if (strcmp(ch->link[i].name, name) == 0)
			return !validate_is_bypassed(ctx, name);
	return false;
}

void
sl_validate_run(const struct sl_validate_chain *ch, enum sl_validate_phase phase,
		const struct sl_validate_ctx *ctx, bool is_inline_only, struct sl_verdict *v)
{
	SL_ASSERT(phase < SL_VPHASE__COUNT);
	memset(v, 0, sizeof(*v));
	v->kind = SL_VERDICT_ACCEPT;
	for (size_t i = 0; i < ch->cnt; i++) {
		const struct sl_validate_link *l = &ch->link[i];
		struct sl_validate_ctx c;

		if (l->mod->phase[phase] == NULL || (is_inline_only && !l->mod->is_inline) ||
		    validate_is_bypassed(ctx, l->name))
			continue;
		c = *ctx;
		c.block = l->block;
		l->mod->phase[phase](&c, v);
		if (v->kind != SL_VERDICT_ACCEPT) {
			v->module = l->name;
			return;
		}
	}
}
