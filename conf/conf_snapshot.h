/*
 * conf/conf_snapshot.h - the immutable, typed configuration a running sluice uses.
 *
 * sl_conf_snapshot_build() checks a parse tree against the schema
 * (conf_schema.h): unknown options, values of the wrong type or range, and
 * options in the wrong scope are errors with file:line:col.  The result is
 * immutable; it is published through an engine holder (struct sl_rcuobj is
 * its first member) and freed after the last reference is dropped.
 *
 * Scopes and fallback (Momentum's order, most specific first), for an
 * option looked up for a binding B (in group G, if any), a destination
 * domain D and, optionally, a host H (the MX host or IP):
 *
 *   B::H  B::D  G::H  G::D  B  G  H  D  global  default
 *
 * where "X::D" is a Domain stanza inside X and a plain D is a global
 * Domain stanza.  In each container, per option, the stanza of the exact
 * domain name wins if it sets the option; otherwise the first regex domain
 * ("/.../", in declaration order) that matches and sets it.  Host stanzas
 * are more specific than domain stanzas in the same container.
 *
 * Threads: built on the config thread; afterwards any thread holding a
 * reference may read it.  No function here blocks or allocates except the
 * builder and the printer.
 */
#ifndef SL_CONF_CONF_SNAPSHOT_H
#define SL_CONF_CONF_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf/conf_err.h"
#include "conf/conf_listener.h"
#include "conf/conf_schema.h"
#include "conf/conf_tree.h"
#include "engine/arena.h"
#include "engine/rcu.h"

#define SL_CONF_SNAPSHOT_MAGIC 0xc0f5a95du

struct sl_conf_strlist {
	const char *const *v; /* cnt strings */
	size_t cnt;
};

struct sl_conf_throttle {
	uint32_t cnt;  /* events per window; 0: unlimited */
	uint32_t secs; /* window length, >= 1 */
};

struct sl_conf_kv {
	struct sl_conf_loc loc;
	const char *key;
	const char *val; /* text of a word/string value; lists are joined with spaces */
};

struct sl_conf_kvlist {
	const struct sl_conf_kv *v;
	size_t cnt;
};

/* A typed value; which member is valid follows the option's type. */
union sl_conf_val {
	bool b;    /* BOOL */
	int64_t i; /* INT SIZE SECONDS MODE */
	struct {
		int64_t i;           /* the number, when word is NULL */
		const char *word;    /* the keyword as in the constraint, or NULL */
	} iw;                        /* INT_OR_WORD */
	const char *s;               /* STRING PATH ENUM HOSTPORT (ENUM: as in the constraint) */
	struct sl_conf_strlist list; /* LIST */
	struct sl_conf_throttle thr; /* THROTTLE */
	struct sl_conf_kvlist kv;    /* PARAMS */
	const struct sl_conf_listener *listener; /* LISTENER */
};

struct sl_conf_setting {
	enum sl_opt id;
	struct sl_conf_loc loc;
	union sl_conf_val v;
};

/* Settings made explicitly in one scope, sorted by id, at most one per id. */
struct sl_conf_settings {
	const struct sl_conf_setting *v;
	size_t cnt;
};

/* A Domain or Host stanza. */
struct sl_conf_dscope {
	struct sl_conf_loc loc;
	const char *name; /* as written; lower-cased for exact names */
	bool is_regex;    /* "/.../" */
	void *re;         /* pcre2_code * for regexes (owned by the snapshot) */
	struct sl_conf_settings set;
};

/* The Domain and Host stanzas of one container (global, a group or a binding). */
struct sl_conf_container {
	const struct sl_conf_dscope *domains; /* exact names sorted, then regexes in order */
	size_t domain_exact_cnt;
	size_t domain_cnt;
	const struct sl_conf_dscope *hosts; /* same layout */
	size_t host_exact_cnt;
	size_t host_cnt;
};

struct sl_conf_binding_group;

struct sl_conf_binding {
	struct sl_conf_loc loc;
	const char *name;
	const struct sl_conf_binding_group *group; /* NULL when not in a group */
	struct sl_conf_settings set;
	struct sl_conf_container c;
};

struct sl_conf_binding_group {
	struct sl_conf_loc loc;
	const char *name;
	struct sl_conf_settings set;
	struct sl_conf_container c;
};

/* A named block with its own options: ThreadPool "x", SNMP, ec_logger, ... */
struct sl_conf_block {
	struct sl_conf_loc loc;
	const char *kind;                   /* canonical: "ThreadPool", "SNMP", "ec_logger", ... */
	const char *name;                   /* instance name ("SwapOut", "ec_logger"); NULL for
					unnamed blocks (SNMP, SNMP_TRAPS, Security, RFC2822) */
	unsigned scope;                     /* SL_S_* bit of its options */
	bool is_passive;                    /* Validate ... passive { } */
	const struct sl_conf_kvlist *attrs; /* <name=... debug_level=...> */
	struct sl_conf_settings set;
};

struct sl_conf_snapshot {
	struct sl_rcuobj obj;      /* first: the holder publishes &snap->obj */
	unsigned magic;            /* SL_CONF_SNAPSHOT_MAGIC */
	uint64_t generation;       /* 1 for the first, +1 per successful reload */
	struct sl_arena arena;     /* owns everything below but the tree and the regexes */
	struct sl_conf_tree *tree; /* owned: names, strings and locations point into it */
	const char *source;        /* the main file, or "(built-in)" */
	const char *const *files;  /* every file read */
	size_t file_cnt;
	/* Global value of every option: explicit, else default, else NULL. */
	const union sl_conf_val *global[SL_OPT__COUNT];
	/* Where each global option was set (NULL: default). */
	const struct sl_conf_loc *global_loc[SL_OPT__COUNT];
	/* Defaults, typed once (NULL when the option has none). */
	const union sl_conf_val *dflt[SL_OPT__COUNT];
	struct sl_conf_container top;
	const struct sl_conf_binding *bindings; /* declaration order */
	size_t binding_cnt;
	const struct sl_conf_binding_group *groups;
	size_t group_cnt;
	const struct sl_conf_block *blocks; /* declaration order */
	size_t block_cnt;
	void **regexes; /* compiled patterns to free */
	size_t regex_cnt;
};

/*
 * Check `tree` and build a snapshot.  The snapshot takes ownership of the
 * tree in every case (names and locations point into it; it is freed with
 * the snapshot, or at once on error).  Relative paths (PATH options, Unix
 * listener sockets) are made absolute against `base_dir` (NULL: the current
 * directory).  Returns NULL with every problem found added to `errs`
 * (checking continues after an error so one run shows them all).
 * The caller owns the snapshot's one reference (sl_rcuobj_put(&s->obj)).
 */
struct sl_conf_snapshot *sl_conf_snapshot_build(struct sl_conf_tree *tree, const char *base_dir,
						uint64_t generation, struct sl_conf_errors *errs);

/*
 * Parse `path` (NULL: the built-in default) and build a snapshot in one
 * step; same contract as sl_conf_snapshot_build().
 */
struct sl_conf_snapshot *sl_conf_load(const char *path, const char *base_dir, uint64_t generation,
				      struct sl_conf_errors *errs);

/*
 * Snapshots built and not yet freed, in the whole process (a failed build
 * counts until it frees itself before returning).  A free happens after a
 * grace period, so call sl_rcu_barrier() first for an exact answer.  Tests
 * use it to see a released snapshot really go; any thread, one atomic load.
 */
size_t sl_conf_snapshot_live_cnt(void);

/* Drop the caller's reference (NULL is fine). */
static inline void
sl_conf_snapshot_put(struct sl_conf_snapshot *s)
{
	if (s != NULL)
		sl_rcuobj_put(&s->obj);
}

/* Where to look an option up. Any field may be NULL. */
struct sl_conf_where {
	const char *binding; /* "default" when NULL */
	const char *domain;
	const char *host;
};

/* The value of `opt` at `w` after fallback; NULL when unset with no default. */
const union sl_conf_val *sl_conf_eval(const struct sl_conf_snapshot *s, enum sl_opt opt,
				      const struct sl_conf_where *w);

/*
 * `opt` from the Host stanzas alone for w->host (binding, its group, then
 * top level; no fallback to Domain or wider scopes).  *is_declared tells
 * whether any Host stanza matches w->host at all.  For the options whose
 * Host value does not inherit (Max_Outbound_Connections: a Host stanza
 * that does not set it means no limit).
 */
const union sl_conf_val *sl_conf_host_eval(const struct sl_conf_snapshot *s, enum sl_opt opt,
					   const struct sl_conf_where *w, bool *is_declared);

/* Global value shortcuts (the option must have the matching type). */
static inline const union sl_conf_val *
sl_conf_global(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	return s->global[opt];
}
bool sl_conf_bool(const struct sl_conf_snapshot *s, enum sl_opt opt);
int64_t sl_conf_int(const struct sl_conf_snapshot *s, enum sl_opt opt);
const char *sl_conf_str(const struct sl_conf_snapshot *s, enum sl_opt opt); /* NULL if unset */

/* A binding by name (case-sensitive, as Momentum), or NULL. */
const struct sl_conf_binding *sl_conf_binding_find(const struct sl_conf_snapshot *s,
						   const char *name);

/* Blocks of one kind (case-insensitive), in order: iterate from *pos = 0. */
const struct sl_conf_block *sl_conf_block_next(const struct sl_conf_snapshot *s, const char *kind,
					       size_t *pos);
/* Value of `opt` inside a block: explicit there, else its default, else NULL. */
const union sl_conf_val *sl_conf_block_get(const struct sl_conf_snapshot *s,
					   const struct sl_conf_block *b, enum sl_opt opt);

/* Value of `opt` in one settings list, or NULL when not set there. */
const struct sl_conf_setting *sl_conf_settings_find(const struct sl_conf_settings *set,
						    enum sl_opt opt);

/*
 * Print the snapshot as configuration text with every default filled in
 * (`sluiced -T`).  The output parses back to an equal snapshot.
 */
void sl_conf_snapshot_print(const struct sl_conf_snapshot *s, FILE *out);

/* Format one value as configuration text (quoted where needed) into a new string. */
char *sl_conf_val_format(const struct sl_conf_option *o, const union sl_conf_val *v);

#endif /* SL_CONF_CONF_SNAPSHOT_H */
