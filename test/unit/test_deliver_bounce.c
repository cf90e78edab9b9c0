/*
 * test/unit/test_deliver_bounce.c - the bounce_classifier block as the
 * delivery stage compiles it (stages/deliver_bounce.c).
 *
 * Configurations with a bounce_classifier block name override files written
 * to a temporary directory; the rule set built from them must classify
 * replies by the site's rules before the built-in ones (a domain's rule
 * before a global one, custom classes), leave out a file with a bad line
 * or a datasource query, read the system files only with
 * enable_system_updates, and be shared by the delivery threads: built once
 * per snapshot on the config thread (sl_deliver_conf_prepare, which
 * refuses an unreadable file or a bad line with file:line), published
 * before the snapshot, and read again every `refresh` seconds on libuv's
 * worker pool while the loop goes on with the set it had.
 *
 * Threads: the test's (registered with RCU) and libuv's workers (the
 * refresh).  Ownership: each test frees what it made.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf/conf_snapshot.h"
#include "engine/alloc.h"
#include "engine/rcu.h"
#include "proto/bounce.h"
#include "stages/deliver_int.h"
#include "stages/stages.h"

static char tmp[] = "/tmp/sl-test-dlbounce-XXXXXX";

static void
write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct sl_conf_snapshot *
build(const char *text, uint64_t generation)
{
	struct sl_conf_errors errs = { 0 };
	char conf_name[256];
	struct sl_conf_tree *tree;
	struct sl_conf_snapshot *s;

	/* Named inside tmp: relative override paths are found beside it. */
	snprintf(conf_name, sizeof(conf_name), "%s/t.conf", tmp);
	tree = sl_conf_parse_buffer(conf_name, tmp, text, strlen(text), &errs);
	assert_non_null(tree);
	s = sl_conf_snapshot_build(tree, tmp, generation, &errs);
	if (s == NULL)
		sl_conf_errors_print(&errs, stderr);
	assert_non_null(s);
	return s;
}

static unsigned
classify(const struct sl_bounce_rules *r, const char *text, const char *domain)
{
	struct sl_bounce_reply in = { .text = text, .domain = domain };

	return sl_bounce_classify(r, &in, NULL);
}

/* Whether one of the list's diagnostics, formatted, contains every `want`. */
static bool
has_diag(const struct sl_conf_error *list, size_t cnt, const char *want1, const char *want2)
{
	for (size_t i = 0; i < cnt; i++) {
		char *line = sl_conf_error_format(&list[i]);
		bool is_it = strstr(line, want1) != NULL && strstr(line, want2) != NULL;

		sl_free(line);
		if (is_it)
			return true;
	}
	return false;
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmp) == NULL)
		return -1;
	write_file("user.ovr", "# site rules\n"
			       ",99,naughty|words\n"
			       "strict.test,51,mailbox unavailable\n"
			       ",22,over|quota\n");
	write_file("system.ovr", ",52,phrase zork\n");
	write_file("bad.ovr", ",10,fine\nnot-a-rule-line\n");
	return 0;
}

static int
teardown(void **state)
{
	const char *names[] = { "user.ovr", "system.ovr", "bad.ovr", "refresh.ovr" };
	char path[256];

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp, names[i]);
		unlink(path);
	}
	rmdir(tmp);
	return 0;
}

static void
test_site_rules(void **state)
{
	struct sl_conf_snapshot *s =
		build("bounce_classifier {\n"
		      "  custom_classes = [ 99 = \"profanity\" ]\n"
		      "  user_smtp_classification_overide = \"user.ovr\"\n"
		      "  system_smtp_classification_override = \"system.ovr\"\n"
		      "}\n",
		      1);
	struct sl_conf_errors errs = { 0 };
	struct sl_bounce_rules *r = dl_bounce_rules_build(s, &errs);

	(void)state;
	assert_int_equal(errs.cnt + errs.warn_cnt, 0);
	assert_int_equal(sl_bounce_rules_count(r), 3);
	assert_string_equal(sl_bounce_rules_class_name(r, 99), "profanity");
	/* A custom class by a wildcard rule, before the built-in table (5.7.1: 50). */
	assert_int_equal(classify(r, "550 5.7.1 your naughty little words", "x.test"), 99);
	assert_int_equal(classify(NULL, "550 5.7.1 your naughty little words", "x.test"), 50);
	/* A domain's rule only for that domain. */
	assert_int_equal(classify(r, "550 5.1.1 mailbox unavailable", "strict.test"), 51);
	assert_int_equal(classify(r, "550 5.1.1 mailbox unavailable", "other.test"), 10);
	/* The site's rule overrides what the reply's enhanced code says. */
	assert_int_equal(classify(r, "550 5.1.1 user is over their quota", "x.test"), 22);
	/* System rules are off without enable_system_updates. */
	assert_int_equal(classify(r, "550 5.0.0 odd phrase zork here", "x.test"),
			 classify(NULL, "550 5.0.0 odd phrase zork here", "x.test"));
	assert_int_not_equal(classify(NULL, "550 5.0.0 odd phrase zork here", "x.test"), 52);
	sl_bounce_rules_free(r);
	sl_conf_snapshot_put(s);
}

static void
test_system_rules(void **state)
{
	struct sl_conf_snapshot *s =
		build("bounce_classifier {\n"
		      "  enable_system_updates = true\n"
		      "  user_smtp_classification_overide = \"" /* absolute */
		      "/nonexistent/user.ovr\"\n"
		      "  system_smtp_classification_override = \"system.ovr\"\n"
		      "}\n",
		      1);
	struct sl_conf_errors errs = { 0 };
	struct sl_bounce_rules *r = dl_bounce_rules_build(s, &errs);

	(void)state;
	/* The missing user file is reported at its setting and left out; the system file counts. */
	assert_int_equal(errs.cnt, 1);
	assert_true(has_diag(errs.list, errs.cnt, "t.conf:3:3: ",
			     "user_smtp_classification_overide: cannot read "
			     "/nonexistent/user.ovr: No such file or directory"));
	assert_int_equal(sl_bounce_rules_count(r), 1);
	assert_int_equal(classify(r, "550 5.0.0 odd phrase zork here", "x.test"), 52);
	sl_conf_errors_clear(&errs);
	sl_bounce_rules_free(r);
	sl_conf_snapshot_put(s);
}

static void
test_left_out(void **state)
{
	/* A file with a bad line, a datasource query, an unknown custom code: none used. */
	struct sl_conf_snapshot *s =
		build("Module generic/bounce_classifier bounce_classifier {\n"
		      "  custom_classes = [ 10 = \"again\" 99 = \"profanity\" ]\n"
		      "  user_smtp_classification_overide = \"bad.ovr\"\n"
		      "  user_mdn_classification_overide = \":datasource:sqlite:SELECT 1\"\n"
		      "}\n",
		      1);
	struct sl_conf_errors errs = { 0 };
	struct sl_bounce_rules *r = dl_bounce_rules_build(s, &errs);
	char want[256];

	(void)state;
	assert_int_equal(sl_bounce_rules_count(r), 0);
	assert_string_equal(sl_bounce_rules_class_name(r, 10), "Invalid Recipient");
	assert_string_equal(sl_bounce_rules_class_name(r, 99), "profanity");
	/* Each problem once, with where it is set and what is wrong. */
	assert_int_equal(errs.cnt, 2);
	assert_true(has_diag(errs.list, errs.cnt,
			     "t.conf:2:", "custom class 10: a built-in or repeated code"));
	snprintf(want, sizeof(want), "user_smtp_classification_overide: %s/bad.ovr:2: expected",
		 tmp);
	assert_true(has_diag(errs.list, errs.cnt, "t.conf:3:3: ", want));
	assert_int_equal(errs.warn_cnt, 1);
	assert_true(has_diag(errs.warn, errs.warn_cnt,
			     "t.conf:4:3: ", "datasource queries are not supported"));
	sl_conf_errors_clear(&errs);
	sl_bounce_rules_free(r);
	sl_conf_snapshot_put(s);

	/* Without a list (a refresh), the same set, the problems logged. */
	s = build("bounce_classifier {\n"
		  "  user_smtp_classification_overide = \"bad.ovr\"\n"
		  "}\n",
		  1);
	r = dl_bounce_rules_build(s, NULL);
	assert_int_equal(sl_bounce_rules_count(r), 0);
	sl_bounce_rules_free(r);
	sl_conf_snapshot_put(s);

	/* No block: an empty set. */
	s = build("", 1);
	r = dl_bounce_rules_build(s, &errs);
	assert_int_equal(errs.cnt + errs.warn_cnt, 0);
	assert_int_equal(sl_bounce_rules_count(r), 0);
	assert_int_equal(classify(r, "550 5.1.1 no such user", "x.test"), 10);
	sl_bounce_rules_free(r);
	sl_conf_snapshot_put(s);
}

static void
test_prepare_refuses(void **state)
{
	struct sl_conf_snapshot *good = build("bounce_classifier {\n"
					      "  custom_classes = [ 99 = \"profanity\" ]\n"
					      "  user_smtp_classification_overide = \"user.ovr\"\n"
					      "}\n",
					      1);
	struct sl_conf_snapshot *bad = build("bounce_classifier {\n"
					     "  user_smtp_classification_overide = \"bad.ovr\"\n"
					     "}\n",
					     2);
	struct sl_conf_errors errs = { 0 };
	struct dl_thread a = { .snap = good };
	const struct sl_bounce_rules *r;

	(void)state;
	/* Nothing published: the built-in rules. */
	assert_null(dl_bounce_rules(&a));
	/* A check (sluiced -t) publishes nothing. */
	assert_int_equal(sl_deliver_conf_prepare(good, false, &errs), 0);
	assert_null(dl_bounce_rules(&a));
	assert_int_equal(sl_deliver_conf_prepare(good, true, &errs), 0);
	assert_int_equal(errs.cnt, 0);
	r = dl_bounce_rules(&a);
	assert_non_null(r);
	assert_int_equal(classify(r, "550 5.7.1 naughty words", "x.test"), 99);
	/* A bad line refuses the snapshot with file:line and keeps the published set. */
	assert_int_equal(sl_deliver_conf_prepare(bad, true, &errs), -1);
	assert_int_equal(errs.cnt, 1);
	assert_true(has_diag(errs.list, errs.cnt, "t.conf:2:3: ", "bad.ovr:2: expected"));
	a.snap = bad;
	assert_ptr_equal(dl_bounce_rules(&a), r);
	sl_conf_errors_clear(&errs);
	dl_bounce_rules_drop(&a);
	sl_deliver_conf_release();
	sl_conf_snapshot_put(good);
	sl_conf_snapshot_put(bad);
}

static void
test_shared(void **state)
{
	static const char conf[] = "bounce_classifier {\n"
				   "  custom_classes = [ 99 = \"profanity\" ]\n"
				   "  user_smtp_classification_overide = \"user.ovr\"\n"
				   "}\n";
	struct sl_conf_snapshot *s1 = build(conf, 1), *s2 = build(conf, 2);
	struct sl_conf_errors errs = { 0 };
	struct dl_thread a = { .snap = s1 }, b = { .snap = s1 };
	const struct sl_bounce_rules *ra, *rb;

	(void)state;
	assert_int_equal(sl_deliver_conf_prepare(s1, true, &errs), 0);
	ra = dl_bounce_rules(&a);
	rb = dl_bounce_rules(&b);
	assert_non_null(ra);
	/* One set per snapshot, shared: the second thread did not build its own. */
	assert_ptr_equal(ra, rb);
	assert_ptr_equal(dl_bounce_rules(&a), ra);
	assert_int_equal(classify(ra, "550 5.7.1 naughty words", "x.test"), 99);
	/* A reload publishes the next set before the snapshot... */
	assert_int_equal(sl_deliver_conf_prepare(s2, true, &errs), 0);
	/* ...a thread still on the old snapshot keeps the old set... */
	assert_ptr_equal(dl_bounce_rules(&b), rb);
	/* ...and one that took the new snapshot takes the new set, shared as well. */
	a.snap = s2;
	ra = dl_bounce_rules(&a);
	assert_ptr_not_equal(ra, rb);
	b.snap = s2;
	assert_ptr_equal(dl_bounce_rules(&b), ra);
	assert_int_equal(sl_bounce_rules_count(ra), 3);
	/* A set of an older generation never replaces a newer one. */
	assert_int_equal(sl_deliver_conf_prepare(s1, true, &errs), 0);
	assert_ptr_equal(dl_bounce_rules(&a), ra);
	dl_bounce_rules_drop(&a);
	dl_bounce_rules_drop(&b);
	assert_null(a.rules);
	sl_deliver_conf_release();
	sl_conf_snapshot_put(s1);
	sl_conf_snapshot_put(s2);
}

static void
test_refresh(void **state)
{
	struct sl_conf_snapshot *s =
		build("bounce_classifier {\n"
		      "  custom_classes = [ 98 = \"renamed\" 99 = \"profanity\" ]\n"
		      "  user_smtp_classification_overide = \"refresh.ovr\"\n"
		      "  refresh = 1\n"
		      "}\n",
		      1);
	struct sl_conf_errors errs = { 0 };
	uv_loop_t loop;
	struct dl_thread a = { .snap = s }, b = { .snap = s };
	const struct sl_bounce_rules *r0, *r1;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	a.loop = b.loop = &loop;
	write_file("refresh.ovr", ",99,naughty words\n");
	assert_int_equal(sl_deliver_conf_prepare(s, true, &errs), 0);
	r0 = dl_bounce_rules(&a);
	assert_int_equal(classify(r0, "550 5.7.1 naughty words", "x.test"), 99);

	/* Not due yet: nothing is queued. */
	write_file("refresh.ovr", ",98,naughty words\n");
	assert_ptr_equal(dl_bounce_rules(&a), r0);
	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);

	/*
	 * Due: the call queues the reading on the worker pool and returns the
	 * set it had, although the file changed; the new one is published when
	 * the loop runs the work's end.
	 */
	usleep(1100 * 1000);
	assert_ptr_equal(dl_bounce_rules(&a), r0);
	assert_int_equal(classify(dl_bounce_rules(&b), "550 5.7.1 naughty words", "x.test"), 99);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	r1 = dl_bounce_rules(&b);
	assert_ptr_not_equal(r1, r0);
	assert_int_equal(classify(r1, "550 5.7.1 naughty words", "x.test"), 98);
	assert_ptr_equal(dl_bounce_rules(&a), r1);

	/* A file gone bad between reloads: logged, its rules left out, no error to refuse. */
	write_file("refresh.ovr", ",98,naughty words\nbroken line\n");
	usleep(1100 * 1000);
	assert_ptr_equal(dl_bounce_rules(&a), r1);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	r0 = dl_bounce_rules(&a);
	assert_ptr_not_equal(r0, r1);
	assert_int_equal(sl_bounce_rules_count(r0), 0);
	assert_int_equal(classify(r0, "550 5.7.1 naughty words", "x.test"), 50);

	dl_bounce_rules_drop(&a);
	dl_bounce_rules_drop(&b);
	assert_int_equal(uv_loop_close(&loop), 0);
	sl_deliver_conf_release();
	sl_conf_snapshot_put(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_site_rules), cmocka_unit_test(test_system_rules),
		cmocka_unit_test(test_left_out),   cmocka_unit_test(test_prepare_refuses),
		cmocka_unit_test(test_shared),     cmocka_unit_test(test_refresh),
	};
	int rc;

	sl_rcu_register_thread();
	rc = cmocka_run_group_tests_name("deliver_bounce", tests, setup, teardown);
	/* Let the call_rcu thread free the sets (leak checkers look after this). */
	sl_rcu_barrier();
	sl_rcu_unregister_thread();
	return rc;
}
