/*
 * proto/validate.h - validation modules: policy callbacks per SMTP phase.
 * * A validation module is a table of phase callbacks (connect, ehlo,
 * mailfrom, rcptto, data) that look at the session's facts and answer
 * accept, tempfail or reject with a reply.  Built-in modules are always
 * loaded; the others are loaded by naming them in the configuration
 * (`Validate validate/rdns rdns { ... }` or `rdns { ... }`).  Modules run in their declared
 * order; the first that does not accept decides.  A module that never
 * blocks (pure policy, like the built-in relay check) is marked inline and
 * runs on the protocol thread; one that may block (disk, network) runs on
 * the validation stage's threads while the session waits.  A context
 * variable __bypass_<module> = true skips a module for that session
 * (Momentum's convention).
 *
 * Threads: modules are constant tables; sl_validate_run() runs on whichever
 * thread the caller is (protocol thread for inline modules, a validation
 * thread otherwise) over a context that thread owns for the call.
 * Parses nothing beyond the envelope strings it is given (bounded by the
 * SMTP machine's limits).
 */
#ifndef SL_PROTO_VALIDATE_H
#define SL_PROTO_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "conf/conf_snapshot.h"

enum sl_validate_phase {
	SL_VPHASE_CONNECT,
	SL_VPHASE_EHLO,
	SL_VPHASE_MAILFROM,
	SL_VPHASE_RCPTTO,
	SL_VPHASE_DATA,
	SL_VPHASE__COUNT
};

enum sl_verdict_kind {
	SL_VERDICT_ACCEPT,   /* no objection; the next module runs */
	SL_VERDICT_TEMPFAIL, /* 4xx */
	SL_VERDICT_REJECT,   /* 5xx */
};

struct sl_verdict {
	enum sl_verdict_kind kind;
	unsigned code;      /* 4xx/5xx when not ACCEPT */
	char enhanced[12];  /* "5.7.1" */
	char text[256];     /* reply text without codes */
	const char *module; /* which module decided (for the rejectlog) */
};

/* One session's relay rights, resolved from its listener ACL walk. */
struct sl_validate_relay {
	bool is_open;                      /* relay_for_sending_domains without a list */
	const char *const *sender_domains; /* relay_for_sending_domains [ d = true ]; may be NULL */
	size_t sender_domain_cnt;
	const struct sl_conf_strlist *acl_relay_hosts; /* personality relay_hosts, or NULL */
};

/* What a module may look at; the caller owns it for the duration of a call. */
struct sl_validate_ctx {
	const struct sl_conf_snapshot *snap;
	const struct sockaddr *peer; /* NULL for Unix-socket clients */
	const char *peer_ip;         /* "192.0.2.1", "::1" or "unix" */
	const char *helo;            /* "" before HELO/EHLO */
	const char *sender;          /* reverse-path ("" null); NULL before MAIL */
	const char *rcpt;            /* the RCPT being checked (rcptto phase) */
	size_t rcpt_cnt;             /* recipients accepted so far */
	const struct sl_validate_relay *relay;
	/* Session context variables (listener ACL context, module results). */ const char *(
		*context_get)(void *ctx_arg, const char *key);
	/* Set one for the rest of the session (may be NULL: results are dropped). */
	void (*context_set)(void *ctx_arg, const char *key, const char *val);
	void *ctx_arg;
};

struct sl_validate_module {
	const char *name;  /* "relay"; __bypass_<name> skips it */
	const char *block; /* the configuration block that loads it; NULL: always loaded */
	bool is_inline;    /* never blocks: may run on the protocol thread */
	/* One callback per phase; NULL: no opinion in that phase. */
	void (*phase[SL_VPHASE__COUNT])(const struct sl_validate_ctx *ctx, struct sl_verdict *v);
};

/* Every module sluice has, in the order they run (loaded or not). */
const struct sl_validate_module *const *sl_validate_modules(size_t *cnt);

/* True when `m` is loaded in snapshot `s` (always-on, or its block is configured). */
bool sl_validate_is_loaded(const struct sl_validate_module *m, const struct sl_conf_snapshot *s);

/*
 * True when some module loaded in `s` with an opinion on `phase` may block,
 * so the phase must run on the validation stage.
 */
bool sl_validate_needs_pool(const struct sl_conf_snapshot *s, enum sl_validate_phase phase);

/*
 * Run the modules of `phase` loaded in ctx->snap (only the inline ones when
 * `is_inline_only`), skipping bypassed ones; *v is ACCEPT or the first
 * objection.
 */
void sl_validate_run(enum sl_validate_phase phase, const struct sl_validate_ctx *ctx,
		     bool is_inline_only, struct sl_verdict *v);

/* "awaiting mailfrom" etc.: the phase name the rejectlog uses. */
const char *sl_validate_phase_name(enum sl_validate_phase phase);

/*
 * True when `domain` matches one entry of a Relay_Domains-style list:
 * "example.com" exactly, "*.example.com" any sub-domain, "*example.com" any
 * suffix (case-insensitive).
 */
bool sl_validate_domain_in(const char *domain, const char *const *list, size_t cnt);

/* True when `peer` lies in one of the CIDR blocks (or addresses) of `list`. */
bool sl_validate_peer_in(const struct sockaddr *peer, const char *const *list, size_t cnt);

#endif /* SL_PROTO_VALIDATE_H */
