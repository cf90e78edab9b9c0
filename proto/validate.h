/*
 * proto/validate.h - validation modules: policy callbacks per SMTP phase.
 *
 * A validation module is a table of phase callbacks (connect, ehlo,
 * mailfrom, rcptto, data) that look at the session's facts and answer
 * accept, tempfail or reject with a reply.  Built-in modules (ehlo,
 * require_ehlo, null_sender, message_size, relay, rfc2822) are always
 * loaded and run first, in that order; the others are loaded by naming
 * them in the configuration (`Validate validate/rdns rdns { ... }` or
 * `rdns { ... }`) and run after them in the order they are declared
 * (Momentum: "called in the order that they are declared").  A module
 * loaded `passive` is configured but its hooks are never called.  The
 * first module that does not accept decides.  A module that never blocks
 * (pure policy) is marked inline and runs on the protocol thread; when a
 * module that may block (disk, network) has an opinion on a phase, the
 * whole phase runs on the validation stage's threads while the session
 * waits.  A context variable __bypass_<name> = true skips a module for
 * that session (Momentum's convention); <name> is the module's, or the
 * instance name given by `<name="...">`.
 *
 * The session resolves its chain once, from the snapshot it holds
 * (sl_validate_chain_build), so a reload never changes the rules of a
 * session in flight; the chain travels by value with verdict requests.
 *
 * Threads: modules are constant tables; a chain points into them and into
 * its snapshot.  sl_validate_run() runs on whichever thread the caller is
 * (protocol thread for inline modules, a validation thread otherwise) over
 * a context that thread owns for the call.  Parses nothing beyond the
 * envelope strings it is given (bounded by the SMTP machine's limits).
 */
#ifndef SL_PROTO_VALIDATE_H
#define SL_PROTO_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* One session's settings the built-in modules need, resolved from its ACL walk. */
struct sl_validate_policy {
	bool require_ehlo;      /* Require_EHLO */
	bool allow_null_sender; /* Allow_Null_Envelope_Sender */
	bool date_pedantic;     /* RFC2822 { Date_Header = pedantic } */
};

struct sl_validate_chain;

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
	const struct sl_validate_policy *policy; /* NULL: Require_EHLO off, null sender allowed */
	/* data phase: facts about the complete message */
	bool has_date_header; /* the client's content had a Date: header */
	uint64_t message_len; /* content octets */
	/* Set by the runner for each module: its configuration block (NULL for built-ins). */
	const struct sl_conf_block *block;
	/* Session context variables (listener ACL context, module results). */
	const char *(*context_get)(void *ctx_arg, const char *key);
	/* Set one for the rest of the session (may be NULL: results are dropped). */
	void (*context_set)(void *ctx_arg, const char *key, const char *val);
	void *ctx_arg;
};

struct sl_validate_module {
	const char *name;  /* "relay"; __bypass_<name> skips it */
	const char *block; /* the configuration block kind that loads it; NULL: built-in */
	bool is_inline;    /* never blocks: may run on the protocol thread */
	/* One callback per phase; NULL: no opinion in that phase. */
	void (*phase[SL_VPHASE__COUNT])(const struct sl_validate_ctx *ctx, struct sl_verdict *v);
};

/* Most modules one chain holds: the built-ins plus loaded instances (conf caps those). */
#define SL_VALIDATE_CHAIN_MAX 24

/* The modules a session runs, in order: built-ins, then loaded ones as declared. */
struct sl_validate_chain {
	struct sl_validate_link {
		const struct sl_validate_module *mod;
		const struct sl_conf_block *block; /* in the snapshot; NULL for built-ins */
		const char *name;                  /* for __bypass_ and the rejectlog */
	} link[SL_VALIDATE_CHAIN_MAX];
	size_t cnt;
	bool needs_pool[SL_VPHASE__COUNT]; /* a blocking module has an opinion on it */
};

/* Every module sluice has: the built-ins in their order, then the loadable ones. */
const struct sl_validate_module *const *sl_validate_modules(size_t *cnt);

/*
 * Resolve the chain of snapshot `s` into *ch: the built-ins, then every
 * configured, non-passive block of a loadable module in declaration order.
 * *ch points into `s`: it is valid while the caller holds `s`.
 */
void sl_validate_chain_build(const struct sl_conf_snapshot *s, struct sl_validate_chain *ch);

/*
 * Append module `m` to *ch under instance `name` (for __bypass_ and the
 * rejectlog) with its configuration block `b` (NULL: none), and mark the
 * phases it has an opinion on as needing the validation stage when `m` is
 * not inline.  sl_validate_chain_build() adds every module this way; tests
 * add modules of their own to a built chain.  `m`, `b` and `name` must
 * outlive the chain and the requests it is copied into.  A chain already
 * holding SL_VALIDATE_CHAIN_MAX modules is left as it is.
 */
void sl_validate_chain_add(struct sl_validate_chain *ch, const struct sl_validate_module *m,
			   const struct sl_conf_block *b, const char *name);

/* True when module instance `name` is in `ch` and ctx does not bypass it. */
bool sl_validate_is_active(const struct sl_validate_chain *ch, const char *name,
			   const struct sl_validate_ctx *ctx);

/*
 * Run the modules of `phase` in `ch` (only the inline ones when
 * `is_inline_only`), skipping bypassed ones; *v is ACCEPT or the first
 * objection (v->module names the instance that objected).
 */
void sl_validate_run(const struct sl_validate_chain *ch, enum sl_validate_phase phase,
		     const struct sl_validate_ctx *ctx, bool is_inline_only, struct sl_verdict *v);

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
