/*
 * engine/priv.h - giving up root after start-up (the Security block).
 *
 * sluiced does everything that needs root first (binding listeners,
 * creating the pidfile, logs and spool), hands the state it created to the
 * configured user, then switches group, supplementary groups and user for
 * every thread and keeps only the configured Linux capabilities
 * (cap_from_text(3) syntax, applied with cap_set_proc(3), as Momentum does).
 *
 * Threads: the lookups and the checks may run on any thread (the
 * configuration is checked on reload too); sl_priv_drop() and
 * sl_priv_chown_tree() on the main thread at start-up only.  Threads that
 * exist when sl_priv_drop() runs change identity with it (glibc applies
 * set*id to every thread) but keep no capability: capabilities are per
 * thread, and only the caller's are set.  Threads created afterwards
 * inherit the caller's.  Functions return 0 or -errno and never log; a
 * failure explains itself in `why`.  Parses `user`, `group` and
 * `Capabilities` values from the configuration (bounded by the caller's
 * strings).
 */
#ifndef SL_ENGINE_PRIV_H
#define SL_ENGINE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What to become.  Filled by the parse functions; released by sl_priv_clear(). */
struct sl_priv {
	bool has_user;     /* `user` was given */
	bool has_group;    /* `group` was given */
	bool has_user_gid; /* the user has a passwd entry: user_gid is its group */
	uid_t uid;         /* when has_user */
	gid_t gid;         /* when has_group */
	gid_t user_gid;    /* when has_user_gid: the group used when `group` is not given */
	char *user_name;   /* owned: the passwd name for initgroups(3); NULL: no entry */
	char *caps;        /* owned: the Capabilities text, checked; NULL: none kept */
};

/*
 * `text` is a user name or a number.  Sets uid and, when the passwd
 * database knows it, user_name and user_gid.  -ENOENT (unknown name),
 * -EINVAL (empty, or not a valid number).  A number without a passwd entry
 * is taken; then `group` is needed (sl_priv_check).
 */
int sl_priv_user_parse(struct sl_priv *p, const char *text, char *why, size_t why_len);

/* `text` is a group name or a number: sets gid.  -ENOENT, -EINVAL. */
int sl_priv_group_parse(struct sl_priv *p, const char *text, char *why, size_t why_len);

/* `text` in cap_from_text(3) syntax ("cap_net_bind_service+ep"): kept.  -EINVAL. */
int sl_priv_caps_parse(struct sl_priv *p, const char *text, char *why, size_t why_len);

/* After the parse calls: -EINVAL when a numeric user has no passwd entry and no group. */
int sl_priv_check(const struct sl_priv *p, char *why, size_t why_len);

/* The user sl_priv_drop() switches to; (uid_t)-1 when none (chown(2)'s "unchanged"). */
uid_t sl_priv_uid(const struct sl_priv *p);
/* The group it switches to (`group`, else the user's); (gid_t)-1 when none. */
gid_t sl_priv_gid(const struct sl_priv *p);

/* True when `p` asks for a change of identity or capabilities. */
bool sl_priv_is_set(const struct sl_priv *p);

/* Free what the parse functions allocated; `p` is empty and reusable. */
void sl_priv_clear(struct sl_priv *p);

/*
 * Switch to `p`: supplementary groups (the user's, or none), group, user,
 * then the capabilities (none unless `caps`), and verify: every id is the
 * new one, the capability sets are exactly `caps`, and unless `caps` keeps
 * cap_setuid/cap_setgid, setuid(0)/setgid(0) fail.  1 (nothing done) when
 * the process is not root; 0 when done; -errno with `why` when a step
 * failed (the caller must not go on: the process may be half switched).
 */
int sl_priv_drop(const struct sl_priv *p, char *why, size_t why_len);

/*
 * Give `path` and everything under it (not following symbolic links) to
 * uid:gid, touching only entries owned by someone else.  -errno with `why`.
 */
int sl_priv_chown_tree(const char *path, uid_t uid, gid_t gid, char *why, size_t why_len);

/* "uid 65534 (nobody), gid 65534, capabilities =ep cap_net_bind_service" for logs. */
void sl_priv_describe(char *out, size_t out_len);

#endif /* SL_ENGINE_PRIV_H */
