/*
 * engine/priv.c - the Security block's user, group and Capabilities (see priv.h).
 *
 * The order of sl_priv_drop() is the one that cannot fail open: groups
 * while still root, then the user; capabilities survive the user switch
 * only through PR_SET_KEEPCAPS and are then cut down to the configured set
 * with cap_set_proc(3).  Afterwards it proves the result instead of
 * trusting it: ids read back, capability sets compared, setuid(0) tried.
 *
 * Threads: see priv.h.  Parses user, group and capability text (lengths
 * bounded by the configuration lexer).  Ownership: struct sl_priv owns its
 * two strings; cap_t values live only inside one call.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/priv.h"

#define PRIV_PWBUF_LEN 16384 /* getpwnam_r/getgrnam_r scratch; ERANGE beyond */

/* A decimal id, the whole string; false if `text` is not one. */
static bool
priv_number(const char *text, unsigned long *out)
{
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	*out = strtoul(text, &end, 10);
	return errno == 0 && *end == '\0' && *out < (unsigned long)UINT32_MAX;
}

int
sl_priv_user_parse(struct sl_priv *p, const char *text, char *why, size_t why_len)
{
	char *buf = sl_malloc(PRIV_PWBUF_LEN);
	struct passwd pw, *found = NULL;
	unsigned long n;
	bool is_number = priv_number(text, &n);
	int rc;

	if (text[0] == '\0') {
		snprintf(why, why_len, "user is empty");
		rc = -EINVAL;
		goto out;
	}
	rc = is_number ? getpwuid_r((uid_t)n, &pw, buf, PRIV_PWBUF_LEN, &found)
		       : getpwnam_r(text, &pw, buf, PRIV_PWBUF_LEN, &found);
	if (rc != 0) {
		snprintf(why, why_len, "cannot look up user '%s': %s", text, strerror(rc));
		rc = -rc;
		goto out;
	}
	if (found == NULL && !is_number) {
		snprintf(why, why_len, "unknown user '%s' (no such passwd entry)", text);
		rc = -ENOENT;
		goto out;
	}
	p->has_user = true;
	p->uid = found != NULL ? found->pw_uid : (uid_t)n;
	p->has_user_gid = found != NULL;
	p->user_gid = found != NULL ? found->pw_gid : 0;
	sl_free(p->user_name);
	p->user_name = found != NULL ? sl_strdup(found->pw_name) : NULL;
out:
	sl_free(buf);
	return rc;
}

int
sl_priv_group_parse(struct sl_priv *p, const char *text, char *why, size_t why_len)
{
	char *buf = sl_malloc(PRIV_PWBUF_LEN);
	struct group gr, *found = NULL;
	unsigned long n;
	int rc = 0;

	if (text[0] == '\0') {
		snprintf(why, why_len, "group is empty");
		rc = -EINVAL;
		goto out;
	}
	if (priv_number(text, &n)) {
		/* A number needs no group entry: setgid(2) takes any. */
		p->has_group = true;
		p->gid = (gid_t)n;
		goto out;
	}
	rc = getgrnam_r(text, &gr, buf, PRIV_PWBUF_LEN, &found);
	if (rc != 0) {
		snprintf(why, why_len, "cannot look up group '%s': %s", text, strerror(rc));
		rc = -rc;
		goto out;
	}
	if (found == NULL) {
		snprintf(why, why_len, "unknown group '%s' (no such group entry)", text);
		rc = -ENOENT;
		goto out;
	}
	p->has_group = true;
	p->gid = found->gr_gid;
out:
	sl_free(buf);
	return rc;
}

int
sl_priv_caps_parse(struct sl_priv *p, const char *text, char *why, size_t why_len)
{
	cap_t caps = cap_from_text(text);

	if (caps == NULL) {
		snprintf(why, why_len,
			 "'%s' is not a capability list in cap_from_text(3) form, such as "
			 "\"cap_net_bind_service+ep\"",
			 text);
		return -EINVAL;
	}
	cap_free(caps);
	sl_free(p->caps);
	p->caps = sl_strdup(text);
	return 0;
}

int
sl_priv_check(const struct sl_priv *p, char *why, size_t why_len)
{
	if (p->has_user && !p->has_user_gid && !p->has_group) {
		snprintf(why, why_len,
			 "user %u has no passwd entry, so it has no group: set group as well",
			 (unsigned)p->uid);
		return -EINVAL;
	}
	return 0;
}

bool
sl_priv_is_set(const struct sl_priv *p)
{
	return p->has_user || p->has_group || p->caps != NULL;
}

uid_t
sl_priv_uid(const struct sl_priv *p)
{
	return p->has_user ? p->uid : (uid_t)-1;
}

gid_t
sl_priv_gid(const struct sl_priv *p)
{
	if (p->has_group)
		return p->gid;
	return p->has_user && p->has_user_gid ? p->user_gid : (gid_t)-1;
}

void
sl_priv_clear(struct sl_priv *p)
{
	sl_free(p->user_name);
	sl_free(p->caps);
	memset(p, 0, sizeof(*p));
}

/* True when `caps` has `cap` in its permitted set. */
static bool
priv_caps_permit(cap_t caps, cap_value_t cap)
{
	cap_flag_value_t v = CAP_CLEAR;

	return caps != NULL && cap_get_flag(caps, cap, CAP_PERMITTED, &v) == 0 && v == CAP_SET;
}

/* Read back ids and capabilities; prove root cannot come back. */
static int
priv_verify(const struct sl_priv *p, cap_t want, char *why, size_t why_len)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg, gid = sl_priv_gid(p);
	cap_t have = cap_get_proc(), none = cap_init();
	int rc = 0;

	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) {
		rc = -errno;
		snprintf(why, why_len, "cannot read the ids back: %s", strerror(errno));
		goto out;
	}
	if (p->has_user && (ru != p->uid || eu != p->uid || su != p->uid)) {
		snprintf(why, why_len, "uids are %u/%u/%u, not %u", (unsigned)ru, (unsigned)eu,
			 (unsigned)su, (unsigned)p->uid);
		rc = -EPERM;
		goto out;
	}
	if (gid != (gid_t)-1 && (rg != gid || eg != gid || sg != gid)) {
		snprintf(why, why_len, "gids are %u/%u/%u, not %u", (unsigned)rg, (unsigned)eg,
			 (unsigned)sg, (unsigned)gid);
		rc = -EPERM;
		goto out;
	}
	if (have == NULL || none == NULL) {
		rc = -errno;
		snprintf(why, why_len, "cannot read the capabilities back: %s", strerror(errno));
		goto out;
	}
	if ((want != NULL || p->has_user) && cap_compare(have, want != NULL ? want : none) != 0) {
		char *text = cap_to_text(have, NULL);

		snprintf(why, why_len, "capabilities are \"%s\", not \"%s\"",
			 text != NULL ? text : "?", p->caps != NULL ? p->caps : "");
		cap_free(text);
		rc = -EPERM;
		goto out;
	}
	if (p->has_user && p->uid != 0 && !priv_caps_permit(want, CAP_SETUID) && setuid(0) == 0) {
		snprintf(why, why_len, "setuid(0) still succeeds");
		rc = -EPERM;
		goto out;
	}
	if (p->has_user && p->uid != 0 && gid != 0 && gid != (gid_t)-1 &&
	    !priv_caps_permit(want, CAP_SETGID) && setgid(0) == 0) {
		snprintf(why, why_len, "setgid(0) still succeeds");
		rc = -EPERM;
		goto out;
	}
out:
	cap_free(have);
	cap_free(none);
	return rc;
}

int
sl_priv_drop(const struct sl_priv *p, char *why, size_t why_len)
{
	gid_t gid = sl_priv_gid(p);
	cap_t want = NULL;
	int rc = 0;

	if (!sl_priv_is_set(p) || geteuid() != 0)
		return 1;
	if (p->caps != NULL && (want = cap_from_text(p->caps)) == NULL) {
		rc = -EINVAL;
		snprintf(why, why_len, "Capabilities '%s' do not parse", p->caps);
		goto out;
	}
	/* Without it, setuid() below empties the permitted set for good. */
	if (want != NULL && p->has_user && prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) != 0) {
		rc = -errno;
		snprintf(why, why_len, "prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
		goto out;
	}
	/* Groups first: once the user is switched, they can no longer change. */
	if (p->has_user && p->user_name != NULL && gid != (gid_t)-1) {
		if (initgroups(p->user_name, gid) != 0) {
			rc = -errno;
			snprintf(why, why_len, "initgroups(%s, %u): %s", p->user_name,
				 (unsigned)gid, strerror(errno));
			goto out;
		}
	} else if ((p->has_user || p->has_group) && setgroups(0, NULL) != 0) {
		rc = -errno;
		snprintf(why, why_len, "setgroups: %s", strerror(errno));
		goto out;
	}
	if (gid != (gid_t)-1 && setresgid(gid, gid, gid) != 0) {
		rc = -errno;
		snprintf(why, why_len, "setgid(%u): %s", (unsigned)gid, strerror(errno));
		goto out;
	}
	if (p->has_user && setresuid(p->uid, p->uid, p->uid) != 0) {
		rc = -errno;
		snprintf(why, why_len, "setuid(%u): %s", (unsigned)p->uid, strerror(errno));
		goto out;
	}
	if (want != NULL && cap_set_proc(want) != 0) {
		rc = -errno;
		snprintf(why, why_len, "cap_set_proc(\"%s\"): %s", p->caps, strerror(errno));
		goto out;
	}
	if (want != NULL && p->has_user && prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L) != 0) {
		rc = -errno;
		snprintf(why, why_len, "prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
		goto out;
	}
	rc = priv_verify(p, want, why, why_len);
out:
	cap_free(want);
	return rc;
}

/* nftw(3) passes no argument to its callback: the main thread's walk state. */
static struct {
	uid_t uid;
	gid_t gid;
	int err;
	char path[PATH_MAX];
} priv_walk;

static int
priv_walk_fn(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	if (type == FTW_NS || type == FTW_DNR) {
		priv_walk.err = EACCES;
		snprintf(priv_walk.path, sizeof(priv_walk.path), "%s", path);
		return 1;
	}
	if ((sb->st_uid != priv_walk.uid && priv_walk.uid != (uid_t)-1) ||
	    (sb->st_gid != priv_walk.gid && priv_walk.gid != (gid_t)-1)) {
		if (lchown(path, priv_walk.uid, priv_walk.gid) != 0) {
			priv_walk.err = errno;
			snprintf(priv_walk.path, sizeof(priv_walk.path), "%s", path);
			return 1;
		}
	}
	return 0;
}

int
sl_priv_chown_tree(const char *path, uid_t uid, gid_t gid, char *why, size_t why_len)
{
	int rc;

	priv_walk.uid = uid;
	priv_walk.gid = gid;
	priv_walk.err = 0;
	rc = nftw(path, priv_walk_fn, 16, FTW_PHYS);
	if (rc < 0) {
		rc = -errno;
		snprintf(why, why_len, "cannot walk %s: %s", path, strerror(errno));
	} else if (rc > 0) {
		rc = -priv_walk.err;
		snprintf(why, why_len, "cannot give %s to %d:%d: %s", priv_walk.path, (int)uid,
			 (int)gid, strerror(priv_walk.err));
	}
	return rc;
}

void
sl_priv_describe(char *out, size_t out_len)
{
	cap_t have = cap_get_proc();
	char *text = have != NULL ? cap_to_text(have, NULL) : NULL;
	struct passwd *pw = getpwuid(geteuid());
	int groups = getgroups(0, NULL);

	/* getpwuid's static result: only the main thread calls this. */
	snprintf(out, out_len, "uid %u (%s), gid %u, %d supplementary groups, capabilities \"%s\"",
		 (unsigned)geteuid(), pw != NULL ? pw->pw_name : "?", (unsigned)getegid(), groups,
		 text != NULL ? text : "?");
	cap_free(text);
	cap_free(have);
}
