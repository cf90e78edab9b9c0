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
 * per snapshot, rebuilt for a new one.
 *
 * Threads: one.  Ownership: each test frees what it made.
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
#include "proto/bounce.h"
#include "stages/deliver_int.h"

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
	const char *names[] = { "user.ovr", "system.ovr", "bad.ovr" };
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
	struct sl_bounce_rules *r = dl_bounce_rules_build(s);

	(void)state;
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
	struct sl_bounce_rules *r = dl_bounce_rules_build(s);

	(void)state;
	/* The missing user file is left out; the system file counts. */
	assert_int_equal(sl_bounce_rules_count(r), 1);
	assert_int_equal(classify(r, "550 5.0.0 odd phrase zork here", "x.test"), 52);
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
	struct sl_bounce_rules *r = dl_bounce_rules_build(s);

	(void)state;
	assert_int_equal(sl_bounce_rules_count(r), 0);
	assert_string_equal(sl_bounce_rules_class_name(r, 10), "Invalid Recipient");
	assert_string_equal(sl_bounce_rules_class_name(r, 99), "profanity");
	sl_bounce_rules_free(r);
	sl_conf_snapshot_put(s);

	/* No block: an empty set. */
	s = build("", 1);
	r = dl_bounce_rules_build(s);
	assert_int_equal(sl_bounce_rules_count(r), 0);
	assert_int_equal(classify(r, "550 5.1.1 no such user", "x.test"), 10);
	sl_bounce_rules_free(r);
	sl_conf_snapshot_put(s);
}

static void
test_shared(void **state)
{
	static const char conf[] = "bounce_classifier {\n"
				   "  custom_classes = [ 99 = \"profanity\" ]\n"
				   "  user_smtp_classification_overide = \"user.ovr\"\n"
				   "}\n";
	struct sl_conf_snapshot *s1 = build(conf, 1), *s2 = build(conf, 2);
	struct dl_thread a = { .snap = s1 }, b = { .snap = s1 };
	const struct sl_bounce_rules *ra, *rb;

	(void)state;
	ra = dl_bounce_rules(&a);
	rb = dl_bounce_rules(&b);
	assert_non_null(ra);
	/* One set per snapshot, shared: the second thread did not build its own. */
	assert_ptr_equal(ra, rb);
	assert_ptr_equal(dl_bounce_rules(&a), ra);
	assert_int_equal(classify(ra, "550 5.7.1 naughty words", "x.test"), 99);
	/* A new snapshot: a new set, also shared. */
	a.snap = s2;
	ra = dl_bounce_rules(&a);
	assert_ptr_not_equal(ra, rb);
	b.snap = s2;
	assert_ptr_equal(dl_bounce_rules(&b), ra);
	assert_int_equal(sl_bounce_rules_count(ra), 3);
	dl_bounce_rules_drop(&a);
	dl_bounce_rules_drop(&b);
	assert_null(a.rules);
	sl_conf_snapshot_put(s1);
	sl_conf_snapshot_put(s2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_site_rules),
		cmocka_unit_test(test_system_rules),
		cmocka_unit_test(test_left_out),
		cmocka_unit_test(test_shared),
	};

	return cmocka_run_group_tests_name("deliver_bounce", tests, setup, teardown);
}
