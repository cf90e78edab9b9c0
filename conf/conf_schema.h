/*
 * conf/conf_schema.h - every option sluice knows: name, type, default, scopes.
 *
 * The table is conf/conf_options.def, an X-macro list; it makes the option
 * ids (enum sl_opt), the schema table that the snapshot builder checks a
 * parse tree against, and (through test/check-man.sh) the list that
 * man/sluice.conf.5 must document exactly.
 *
 * Threads: the table is constant; any thread may read it.  The lookup index
 * behind sl_conf_option_find() is built once, on first use (pthread_once),
 * and is read-only afterwards, so every function here may be called from
 * any thread without locks.  Parses nothing: option values are checked
 * against type and constraint by the snapshot builder (conf_value.c).
 */
#ifndef SL_CONF_CONF_SCHEMA_H
#define SL_CONF_CONF_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf_tree.h"

/* Value types.  Every type accepts its text as a bare word or a quoted string. */
enum sl_conf_type {
	SL_T_BOOL,     /* true false yes no on off 1 0 enabled disabled (any case) */
	SL_T_INT,      /* decimal integer; constraint "min..max" (either side may be empty) */
	SL_T_SIZE,     /* bytes: integer with optional k/m/g suffix (1024-based); "min..max" */
	SL_T_SECONDS,  /* integer seconds, optional s/m/h/d suffix; "min..max" */
	SL_T_STRING,   /* any text */
	SL_T_PATH,     /* non-empty text naming a file or directory */
	SL_T_ENUM,     /* one of constraint "a|b|c" (compared case-insensitively) */
	SL_T_LIST,     /* ( word-or-string ... ); a single word or string is a list of one */
	SL_T_THROTTLE, /* "N" (per second) or "N/secs"; 0 means unlimited */
	SL_T_HOSTPORT, /* host, ip, [ipv6] or * (any address), with optional :port */
	SL_T_MODE,     /* octal file mode, e.g. 0644 */
	SL_T_LISTENER, /* ( address <attrs> [ acl ] ... ), see conf_listener.h */
	SL_T_PARAMS,   /* [ key = value ... ] (free-form pairs kept as text) */
	/*
	 * An integer or a keyword: constraint "min..max|word|word", the range
	 * first (either end may be empty), then at least one keyword compared
	 * case-insensitively.  Added for max_retries ("0..|auto|none").
	 */
	SL_T_INT_OR_WORD,
};

/* Where an option may appear (bit set).  Fallback order: conf_snapshot.h. */
enum sl_conf_scope {
	SL_S_GLOBAL = 1u << 0,
	SL_S_BINDING_GROUP = 1u << 1,
	SL_S_BINDING = 1u << 2,
	SL_S_DOMAIN = 1u << 3,
	SL_S_HOST = 1u << 4,
	SL_S_PERSONALITY = 1u << 5, /* a listener ACL entry: personality [ ] or relay_hosts */
	SL_S_SNMP = 1u << 6,        /* SNMP { } */
	SL_S_SNMP_TRAPS = 1u << 7,  /* SNMP_TRAPS { } */
	SL_S_THREADPOOL = 1u << 8,  /* ThreadPool "name" { } */
	SL_S_EC_LOGGER = 1u << 9,   /* ec_logger { } module block */
	SL_S_BOUNCE_CLASSIFIER = 1u << 10, /* bounce_classifier { } module block */
	/* Momentum 2.x keeps these options in their own blocks; so does sluice. */
	SL_S_SECURITY = 1u << 11, /* Security { user group chroot Capabilities } */
	SL_S_RFC2822 = 1u << 12,  /* RFC2822 { Date_Header Lone_LF_in_Body ... } */
	SL_S_RDNS = 1u << 13,     /* rdns { } validation module block */
};

/* Every scope bit above (for iteration and checks). */
#define SL_S__ALL ((1u << 14) - 1)

/* The usual outbound set: global, binding_group, binding, domain. */
#define SL_S_OUTBOUND (SL_S_GLOBAL | SL_S_BINDING_GROUP | SL_S_BINDING | SL_S_DOMAIN)

enum sl_opt {
#define SL_OPT(id, name, type, constraint, def, scopes, summary)                  SL_OPT_##id,
#define SL_OPT_NOEFFECT(id, name, type, constraint, def, scopes, summary, reason) SL_OPT_##id,
#include "conf/conf_options.def"
#undef SL_OPT_NOEFFECT
#undef SL_OPT
	SL_OPT__COUNT
};

struct sl_conf_option {
	enum sl_opt id;
	const char *name; /* canonical spelling, e.g. "Max_Outbound_Connections" */
	enum sl_conf_type type;
	const char *constraint; /* "min..max", "a|b|c", "min..max|w|w" or "" (per type) */
	const char *def;        /* default as configuration text; NULL: unset */
	unsigned scopes;        /* enum sl_conf_scope bits */
	const char *summary;    /* one line for `sluiced -T` and the man page check */
	/*
	 * Why setting the option does nothing in sluice (an SL_OPT_NOEFFECT
	 * row): it is accepted so that Momentum configurations load, and each
	 * setting gets a notice (conf_err.h).  NULL: the option takes effect.
	 */
	const char *noeffect;
};

/* The table, indexed by enum sl_opt. */
extern const struct sl_conf_option sl_conf_options[SL_OPT__COUNT];

/*
 * Find an option by name (case-insensitive) for use in `scope` (one
 * SL_S_* bit).  Several rows may share a name in different blocks (State in
 * SNMP and in SNMP_TRAPS): the row whose scopes include `scope` wins.  If no
 * row with that name allows `scope`, any row with that name is returned, so
 * the caller can say "not valid here" by testing (o->scopes & scope) == 0
 * and list o->scopes with sl_conf_scopes_format().  NULL: unknown name
 * (or NULL name).  The result points into sl_conf_options[].
 * Threads: any; the first call builds a sorted index once (pthread_once).
 */
const struct sl_conf_option *sl_conf_option_find(const char *name, unsigned scope);

/*
 * The configuration-text name of one scope bit: "global", "binding_group",
 * "binding", "domain", "host", "personality", "SNMP", "SNMP_TRAPS",
 * "ThreadPool", "ec_logger", "bounce_classifier", "Security", "RFC2822".
 * Anything that is not exactly one known bit gives "unknown".
 * Returns a static string.  Threads: any.
 */
const char *sl_conf_scope_name(unsigned scope_bit);

/*
 * Write the names of the bits in `scopes`, in bit order, separated by ", "
 * ("global, binding, domain") into buf (len bytes, always NUL-terminated
 * when len > 0; output that does not fit is cut short).  No bits: "none".
 * For error messages.  Threads: any.
 */
void sl_conf_scopes_format(unsigned scopes, char *buf, size_t len);

/*
 * A further check of one option's values, supplied by the code that owns
 * their syntax when that code lives outside conf/ (the delivery stage
 * checks Routes and Gateway with proto/dns.c's parser, and reads the
 * Resolv_Conf file), so `sluiced -t` and a reload refuse what the stage
 * would refuse later.  The snapshot builder calls `check_fn` after the type
 * check: once per list item, or once with the scalar's text (a PATH made
 * absolute).  It returns 0, or -1 with a one-line reason in `why`; the
 * error is reported at the item's (or value's) file:line:col.  NULL
 * removes the check.
 * Threads: the main thread, before any configuration is loaded and before
 * other threads start; the table is read-only afterwards.
 */
void sl_conf_check_set(enum sl_opt opt,
		       int (*check_fn)(const char *text, char *why, size_t why_len));

/* The check set for `opt`, or NULL (the snapshot builder; any thread). */
int (*sl_conf_check_get(enum sl_opt opt))(const char *text, char *why, size_t why_len);

#endif /* SL_CONF_CONF_SCHEMA_H */
