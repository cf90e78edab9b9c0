/*
 * stages/deliver_bounce.c - the bounce_classifier rules the delivery stage
 * classifies its bounces with.
 *
 * The bounce_classifier block names the site's override files
 * (user_smtp_classification_overide, user_mdn_classification_overide, and
 * with enable_system_updates the system_* pair) and its custom_classes.
 * They are compiled (proto/bounce.c) into one rule set per configuration
 * snapshot, which every delivery thread shares:
 *
 *  - On the config thread, before a snapshot is published (start, reload),
 *    sl_deliver_conf_prepare() reads and compiles them; an unreadable file,
 *    a bad line or a bad custom class is a configuration error with the
 *    setting's file:line:col and the rules file's line, so `sluiced -t`
 *    reports it and a reload with it is refused.  The set is published in
 *    dl_rules_holder before the snapshot, so a thread that takes the new
 *    snapshot finds its rules already there.
 *  - Every `refresh` seconds the first delivery thread that notices the
 *    set is due queues a rebuild on libuv's worker pool (uv_queue_work):
 *    the files are read there, never on a loop thread, and the loop
 *    publishes the result when it is ready.  Until then bounces are
 *    classified by the set in use.  A file that has gone bad since the
 *    reload is logged with its line and left out; the rest still apply.
 *
 * A delivery thread keeps a reference to the set it uses and compares it
 * with the published one at each classification (a short read section);
 * a set is freed after a grace period once the holder and the last
 * thread let go of it.  Momentum's ":datasource:" queries are not
 * supported: such a setting is a warning and ignored.
 *
 * Threads: the config thread (prepare, release), the delivery loop threads
 * (dl_bounce_rules, the end of a refresh), a libuv worker (the refresh's
 * reading and compiling).  dl_rules_publish_lock only serialises the two
 * publishers around the pointer swap; nobody holds it across a file read.
 * Reads files the site wrote (bounded by SL_BOUNCE_MAX_RULE_LINE and
 * SL_BOUNCE_MAX_RULES in the parser, and DL_RULES_MAX_FILE here).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"
#include "engine/rcu.h"
#include "proto/bounce.h"
#include "stages/deliver_int.h"
#include "stages/stages.h"

#define DL_RULES_MAGIC    0xde11ce05u
#define DL_RULES_MAX_FILE (64u << 20) /* octets of one override file */

struct dl_rules {
	struct sl_rcuobj obj;          /* first: the holder publishes &dr->obj */
	unsigned magic;                /* DL_RULES_MAGIC */
	struct sl_bounce_rules *rules; /* owned */
	uint64_t generation;           /* of the snapshot it was built from */
	uint64_t built_ms;             /* dl_now_ms() when its files were read */
};

/* The current set (the holder owns a reference); newer generations only. */
static struct sl_holder dl_rules_holder;
/* Serialises publishers (config thread, the loop ending a refresh); the swap only. */
static pthread_mutex_t dl_rules_publish_lock = PTHREAD_MUTEX_INITIALIZER;
/* A refresh is queued or running (__atomic): one at a time for the whole stage. */
static bool dl_rules_is_refreshing;

/*
 * Report a problem with the rules: into errs (a configuration check: an
 * error, or a warning with is_warning) or, without errs, to the log (a
 * refresh: the file's rules are left out).
 */
static void __attribute__((format(printf, 4, 5)))
dl_rules_report(struct sl_conf_errors *errs, const struct sl_conf_loc *loc, bool is_warning,
		const char *fmt, ...)
{
	char msg[SL_CONF_ERROR_MAX_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (errs != NULL && is_warning)
		sl_conf_warning_add(errs, loc, "bounce_classifier: %s", msg);
	else if (errs != NULL)
		sl_conf_error_add(errs, loc, "bounce_classifier: %s", msg);
	else if (is_warning)
		sl_log_warn("bounce_classifier: %s (its rules are not used)", msg);
	else
		sl_log_err("bounce_classifier: %s (its rules are not used)", msg);
}

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
dl_rules_path(const struct sl_conf_setting *set, const char *val, char *out, size_t out_len)
{
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
	      enum sl_bounce_rules_kind kind, struct sl_bounce_rules *r,
	      struct sl_conf_errors *errs)
{
	const union sl_conf_val *v = sl_conf_block_get(s, b, opt);
	const struct sl_conf_setting *set = sl_conf_settings_find(&b->set, opt);
	const struct sl_conf_loc *loc = set != NULL ? &set->loc : NULL;
	const char *name = sl_conf_options[opt].name;
	struct sl_bounce_rules_error err = { 0 };
	char path[4096];
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (v == NULL || v->s == NULL || v->s[0] == '\0')
		return;
	if (strncasecmp(v->s, ":datasource:", 12) == 0) {
		dl_rules_report(errs, loc, true,
				"%s: datasource queries are not supported; name a file instead "
				"(its rules are not used)",
				name);
		return;
	}
	dl_rules_path(set, v->s, path, sizeof(path));
	rc = dl_rules_read(path, &text, &len);
	if (rc != 0) {
		dl_rules_report(errs, loc, false, "%s: cannot read %s: %s", name, path,
				strerror(-rc));
		return;
	}
	rc = sl_bounce_rules_parse(r, kind, path, text, len, &err);
	if (rc == -EINVAL)
		dl_rules_report(errs, loc, false, "%s: %s:%u: %s", name, path, err.line, err.msg);
	else if (rc == -E2BIG)
		dl_rules_report(errs, loc, false, "%s: %s: more than %u rules in all", name, path,
				(unsigned)SL_BOUNCE_MAX_RULES);
	else if (rc < 0)
		dl_rules_report(errs, loc, false, "%s: %s: %s", name, path, strerror(-rc));
	sl_free(text);
}

struct sl_bounce_rules *
dl_bounce_rules_build(const struct sl_conf_snapshot *s, struct sl_conf_errors *errs)
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
			dl_rules_report(errs, &kv->loc, false, "custom class %s: %s", kv->key,
					rc == -EEXIST
						? "a built-in or repeated code"
						: "not a code from 1 to 99 with a description");
	}
	/* Precedence order: the site's file before the system's. */
	v = sl_conf_block_get(s, b, SL_OPT_BOUNCE_CLASSIFIER_ENABLE_SYSTEM_UPDATES);
	is_system = v != NULL && v->b;
	dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_USER_SMTP, SL_BOUNCE_RULES_SMTP, r, errs);
	if (is_system)
		dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_SYSTEM_SMTP, SL_BOUNCE_RULES_SMTP, r,
			      errs);
	dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_USER_MDN, SL_BOUNCE_RULES_MDN, r, errs);
	if (is_system)
		dl_rules_load(s, b, SL_OPT_BOUNCE_CLASSIFIER_SYSTEM_MDN, SL_BOUNCE_RULES_MDN, r,
			      errs);
	return r;
}

/* After the grace period: on liburcu's call_rcu thread. */
static void
dl_rules_free(struct sl_rcuobj *obj)
{
	struct dl_rules *dr = (struct dl_rules *)obj;

	SL_CHECK_OBJ(dr, DL_RULES_MAGIC);
	sl_bounce_rules_free(dr->rules);
	dr->magic = 0;
	sl_free(dr);
}

/* A set with one reference (the caller's); takes `rules`.  Any thread. */
static struct dl_rules *
dl_rules_new(struct sl_bounce_rules *rules, uint64_t generation, uint64_t built_ms)
{
	struct dl_rules *dr = SL_NEW(dr);

	sl_rcuobj_init(&dr->obj, dl_rules_free);
	dr->magic = DL_RULES_MAGIC;
	dr->rules = rules;
	dr->generation = generation;
	dr->built_ms = built_ms;
	return dr;
}

/*
 * Publish dr (the caller's reference moves to the holder) unless the
 * holder has a set of a newer generation: a refresh that ends after a
 * reload must not bring the old rules back.  Registered thread.
 */
static void
dl_rules_publish(struct dl_rules *dr)
{
	struct sl_rcuobj *cur;
	bool is_newer;

	pthread_mutex_lock(&dl_rules_publish_lock);
	sl_rcu_read_lock();
	cur = sl_holder_peek(&dl_rules_holder);
	is_newer = cur != NULL && ((struct dl_rules *)cur)->generation > dr->generation;
	sl_rcu_read_unlock();
	if (is_newer)
		sl_rcuobj_put(&dr->obj);
	else
		sl_holder_publish(&dl_rules_holder, &dr->obj);
	pthread_mutex_unlock(&dl_rules_publish_lock);
}

int
sl_deliver_conf_prepare(const struct sl_conf_snapshot *s, bool is_publish,
			struct sl_conf_errors *errs)
{
	size_t err_cnt = errs->cnt;
	struct sl_bounce_rules *r = dl_bounce_rules_build(s, errs);

	if (errs->cnt != err_cnt || !is_publish) {
		sl_bounce_rules_free(r);
		return errs->cnt != err_cnt ? -1 : 0;
	}
	dl_rules_publish(dl_rules_new(r, s->generation, dl_now_ms()));
	return 0;
}

void
sl_deliver_conf_release(void)
{
	pthread_mutex_lock(&dl_rules_publish_lock);
	sl_holder_publish(&dl_rules_holder, NULL);
	pthread_mutex_unlock(&dl_rules_publish_lock);
}

/* ---- refresh: read the files again on libuv's worker pool */

struct dl_refresh {
	uv_work_t req;
	struct sl_conf_snapshot *snap; /* a reference, dropped on the loop */
	struct dl_rules *built;        /* made by the worker; published on the loop */
};

/* On a libuv worker: may block on the files.  Problems go to the log. */
static void
dl_refresh_work(uv_work_t *req)
{
	struct dl_refresh *rf = req->data;
	uint64_t now_ms = dl_now_ms();

	rf->built =
		dl_rules_new(dl_bounce_rules_build(rf->snap, NULL), rf->snap->generation, now_ms);
}

/* Back on the loop that queued it. */
static void
dl_refresh_done(uv_work_t *req, int status)
{
	struct dl_refresh *rf = req->data;

	(void)status; /* cancelled: nothing was built */
	if (rf->built != NULL) {
		sl_log_debug("bounce_classifier: rules of generation %" PRIu64 " read again",
			     rf->built->generation);
		dl_rules_publish(rf->built);
	}
	sl_conf_snapshot_put(rf->snap);
	sl_free(rf);
	__atomic_store_n(&dl_rules_is_refreshing, false, __ATOMIC_RELEASE);
}

/* Whether the set the thread uses is due to be read again. */
static bool
dl_rules_is_due(const struct dl_rules *dr, const struct sl_conf_snapshot *s, uint64_t now_ms)
{
	size_t pos = 0;
	const struct sl_conf_block *b;
	const union sl_conf_val *v;

	if (dr->generation != s->generation)
		return false; /* a newer snapshot brings its own */
	b = sl_conf_block_next(s, "bounce_classifier", &pos);
	if (b == NULL)
		return false; /* no block: nothing to read again */
	v = sl_conf_block_get(s, b, SL_OPT_BOUNCE_CLASSIFIER_REFRESH);
	return v != NULL && v->i > 0 && now_ms >= dr->built_ms + (uint64_t)v->i * 1000;
}

static void
dl_refresh_start(struct dl_thread *dt)
{
	struct dl_refresh *rf;
	bool is_idle = false;

	if (!__atomic_compare_exchange_n(&dl_rules_is_refreshing, &is_idle, true, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return; /* another thread's is under way */
	rf = SL_NEW(rf);
	rf->req.data = rf;
	rf->snap = dt->snap;
	sl_rcuobj_get(&rf->snap->obj);
	if (uv_queue_work(dt->loop, &rf->req, dl_refresh_work, dl_refresh_done) != 0) {
		sl_conf_snapshot_put(rf->snap);
		sl_free(rf);
		__atomic_store_n(&dl_rules_is_refreshing, false, __ATOMIC_RELEASE);
	}
}

const struct sl_bounce_rules *
dl_bounce_rules(struct dl_thread *dt)
{
	struct dl_rules *cur = dt->rules;
	struct sl_rcuobj *pub, *mine = cur != NULL ? &cur->obj : NULL;
	bool is_switch;

	sl_rcu_read_lock();
	pub = sl_holder_peek(&dl_rules_holder);
	/* A thread still on an older snapshot keeps its set until it takes the new one. */
	is_switch = pub != mine && pub != NULL &&
		    (cur == NULL || ((struct dl_rules *)pub)->generation <= dt->snap->generation);
	sl_rcu_read_unlock();
	if (is_switch) {
		pub = sl_holder_get(&dl_rules_holder);
		if (pub != NULL) {
			if (mine != NULL)
				sl_rcuobj_put(mine);
			dt->rules = cur = (struct dl_rules *)pub;
			SL_CHECK_OBJ(cur, DL_RULES_MAGIC);
			mine = pub;
		}
	}
	if (cur == NULL)
		return NULL; /* nothing published: the built-in rules */
	if (!dt->is_stopping && pub == mine && dl_rules_is_due(cur, dt->snap, dl_now_ms()))
		dl_refresh_start(dt);
	return cur->rules;
}

void
dl_bounce_rules_drop(struct dl_thread *dt)
{
	if (dt->rules != NULL)
		sl_rcuobj_put(&dt->rules->obj);
	dt->rules = NULL;
}
