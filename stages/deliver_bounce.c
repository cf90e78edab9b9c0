/*
 * stages/deliver_bounce.c - the bounce_classifier rules the delivery stage
 * classifies its bounces with.
 *
 * The bounce_classifier block names the site's override files
 * (user_smtp_classification_overide, user_mdn_classification_overide, and
 * with enable_system_updates the system_* pair) and its custom_classes.
 * They are read and compiled (proto/bounce.c) once per configuration
 * snapshot, and again every `refresh` seconds, into one rule set that every
 * delivery thread shares: the first thread that finds the shared set stale
 * builds the next one (outside the lock), publishes it, and the others take
 * it.  A set is freed when the last thread lets go of it.  A file that
 * cannot be read or has a bad line is logged with its line number and left
 * out; the rest still apply.  Momentum's ":datasource:" queries are not
 * supported: such a setting is logged and ignored.
 *
 * Threads: the delivery loop threads.  The lock only guards the shared
 * pointer and the reference counts, never a file read.  Reads files the
 * site wrote (bounded by SL_BOUNCE_MAX_RULE_LINE and SL_BOUNCE_MAX_RULES in
 * the parser, and DL_RULES_MAX_FILE here).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"
#include "proto/bounce.h"
#include "stages/deliver_int.h"

#define DL_RULES_MAGIC    0xde11ce05u
#define DL_RULES_MAX_FILE (64u << 20) /* octets of one override file */

struct dl_rules {
	unsigned magic;
	struct sl_bounce_rules *rules; /* owned */
	uint64_t generation;           /* of the snapshot it was built from */
	uint64_t built_ms;             /* dl_now_ms() when it was built */
	unsigned refs;                 /* under dl_rules_lock: the cache's and threads' */
};

static pthread_mutex_t dl_rules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dl_rules *dl_rules_cache; /* a reference, under dl_rules_lock */

/* Read a whole file into a new NUL-terminated buffer: 0 or -errno. */
static int
dl_rules_read(const char *path, char **out, size_t *out_len)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail_fd;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > DL_RULES_MAX_FILE) {
		rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto fail_fd;
	}
	buf = sl_malloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : 0;
			break;
		}
		len += (size_t)n;
	}
	if (rc != 0) {
		sl_free(buf);
		goto fail_fd;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
fail_fd:
	close(fd);
	return rc;
}

/* The path of a setting: relative to the directory of the file that set it. */
static void
dl_rules_path(const struct sl_conf_block *b, enum sl_opt opt, const char *val, char *out,
	      size_t out_len)
{
	const struct sl_conf_setting *set = sl_conf_settings_find(&b->set, opt);
	const char *file = set != NULL ? set->loc.file : NULL;
	const char *slash = file != NULL ? strrchr(file, '/') : NULL;

	if (val[0] == '/' || slash == NULL)
		snprintf(out, out_len, "%s", val);
	else
		snprintf(out, out_len, "%.*s/%s", (int)(slash - file), file, val);
}

/* Append the rules of the file an option names (when set) to r. */
static void
dl_rules_load(const struct sl_conf_snapshot *s, const struct sl_conf_block *b, enum sl_opt opt,
	      enum sl_bounce_rules_kind kind, struct sl_bounce_rules *r)
{
	const union sl_conf_val *v = sl_conf_block_get(s, b, opt);
	const char *name = sl_conf_options[opt].name;
	struct sl_bounce_rules_error err = { 0 };
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (v == NULL || v->s == NULL || v->s[0] == '\0')
		return;
	if (strncasecmp(v->s, ":datasource:", 12) == 0) {
		sl_log_warn("bounce_classifier: %s: datasource queries are not supported; "
			    "name a file instead (its rules are not used)",
			    name);
		return;
	}
	dl_rules_path(b, opt, v->s, path, sizeof(path));
	rc = dl_rules_read(path, &text, &len);
	if (rc != 0) {
		sl_log_err("bounce_classifier: %s: cannot read %s: %s (its rules are not used)",
			   name, path, strerror(-rc));
		return;
	}
	rc = sl_bounce_rules_parse(r, kind, path, text, len, &err);
	if (rc == -EINVAL)
		sl_log_err("bounce_classifier: %s:%u: %s (the file's rules are not used)", path,
			   err.line, err.msg);
	else if (rc < 0)
		sl_log_err("bounce_classifier: %s: %s (the file's rules are not used)", path,
			   strerror(-rc));
	sl_free(text);
}

struct sl_bounce_rules *
dl_bounce_rules_build(const struct sl_conf_snapshot *s)
{
	struct sl_bounce_rules *r = sl_bounce_rules_new();
	size_t pos = 0;
	const struct sl_conf_block *b = sl_conf_block_next(s, "bounce_classifier", &pos);
	const union sl_conf_val *v;
	bool is_system;

	if (b == NULL)
		return r;
	/* Classes first: the rules may name them. */
	v = sl_conf_block_get(s, b, SL_OPT_BOUNCE_CLASSIFIER_CUSTOM_CLASSES);
	for (size_t i = 0; v != NULL && i < v->kv.cnt; i++) {
		const struct sl_conf_kv *kv = &v->kv.v[i];
		char *end = NULL;
		unsigned long code = strtoul(kv->key, &end, 10);
		int rc = end != kv->key && *end == '\0'
				 ? sl_bounce_rules_add_class(r, (unsigned)code, kv->val)
				 : -EINVAL;

		if (rc != 0)
			sl_log_err("bounce_classifier: %s:%u: custom class %s: %s", kv->loc.file,
				   kv->loc.line, kv->key,
				   rc == -EEXIST ? "a built-in or repeated code"
						 : "not a code from 1 to 99 with a description");
	}
	/* Precedence order: the site's file before the system's. */
	v = sl_conf_block_get(s, b, SL_OPT_BOUNCE_CLASSIFIER_ENABLE_SYSTEM_UPDATES);
	is_system = v != NULL && v->b;
	dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_USER_SMTP, SL_BOUNCE_RULES_SMTP, r);
	if (is_system)
		dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_SYSTEM_SMTP, SL_BOUNCE_RULES_SMTP, r);
	dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_USER_MDN, SL_BOUNCE_RULES_MDN, r);
	if (is_system)
		dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_SYSTEM_MDN, SL_BOUNCE_RULES_MDN, r);
	return r;
}

/* Drop a reference; the last one frees. */
static void
dl_rules_put_locked(struct dl_rules *dr)
{
	if (dr == NULL)
		return;
	SL_CHECK_OBJ(dr, DL_RULES_MAGIC);
	if (--dr->refs > 0)
		return;
	sl_bounce_rules_free(dr->rules);
	dr->magic = 0;
	sl_free(dr);
}

/* Whether a set is still good for snapshot s at now_ms. */
static bool
dl_rules_is_fresh(const struct dl_rules *dr, const struct sl_conf_snapshot *s, uint64_t now_ms)
{
	size_t pos = 0;
	const struct sl_conf_block *b;
	const union sl_conf_val *v;

	if (dr == NULL || dr->generation != s->generation)
		return false;
	b = sl_conf_block_next(s, "bounce_classifier", &pos);
	if (b == NULL)
		return true; /* no block: nothing to read again */
	v = sl_conf_block_get(s, b, SL_OPT_BOUNCE_CLASSIFIER_REFRESH);
	return v == NULL || v->i <= 0 || now_ms < dr->built_ms + (uint64_t)v->i * 1000;
}

const struct sl_bounce_rules *
dl_bounce_rules(struct dl_thread *dt)
{
	uint64_t now_ms = dl_now_ms();
	struct dl_rules *mine = NULL, *old = dt->rules;

	if (dl_rules_is_fresh(old, dt->snap, now_ms))
		return old->rules;
	pthread_mutex_lock(&dl_rules_lock);
	if (dl_rules_is_fresh(dl_rules_cache, dt->snap, now_ms)) {
		mine = dl_rules_cache;
		mine->refs++;
	}
	pthread_mutex_unlock(&dl_rules_lock);
	if (mine == NULL) {
		/* Build outside the lock; another thread may have been quicker. */
		struct dl_rules *built = SL_NEW(built);

		built->magic = DL_RULES_MAGIC;
		built->rules = dl_bounce_rules_build(dt->snap);
		built->generation = dt->snap->generation;
		built->built_ms = now_ms;
		built->refs = 1;
		pthread_mutex_lock(&dl_rules_lock);
		if (dl_rules_is_fresh(dl_rules_cache, dt->snap, now_ms)) {
			mine = dl_rules_cache;
			mine->refs++;
			dl_rules_put_locked(built);
		} else {
			/* Newer generations win; an older thread keeps its own set. */
			if (dl_rules_cache == NULL ||
			    dl_rules_cache->generation <= built->generation) {
				dl_rules_put_locked(dl_rules_cache);
				built->refs++;
				dl_rules_cache = built;
			}
			mine = built;
		}
		pthread_mutex_unlock(&dl_rules_lock);
	}
	pthread_mutex_lock(&dl_rules_lock);
	dl_rules_put_locked(old);
	pthread_mutex_unlock(&dl_rules_lock);
	dt->rules = mine;
	return mine->rules;
}

void
dl_bounce_rules_drop(struct dl_thread *dt)
{
	pthread_mutex_lock(&dl_rules_lock);
	dl_rules_put_locked(dt->rules);
	dt->rules = NULL;
	/* The last thread to stop takes the shared set with it. */
	if (dl_rules_cache != NULL && dl_rules_cache->refs == 1) {
		dl_rules_put_locked(dl_rules_cache);
		dl_rules_cache = NULL;
	}
	pthread_mutex_unlock(&dl_rules_lock);
}
