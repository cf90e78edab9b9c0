/*
 * test/fuzz/fuzz_conf_snapshot.c - libFuzzer harness for the schema pass.
 *
 * Parses the input, builds a snapshot (schema, values, listeners, ACLs,
 * scopes, regex domains), and for every accepted input prints it with
 * sl_conf_snapshot_print and checks that the printed text builds again
 * (the `sluiced -T` fixed point).  A rejected input must come with at least
 * one one-line error.  Crashes, leaks and UB are what the fuzzer looks for.
 *
 * Threads: libFuzzer's one thread.
 * Parses untrusted input: the whole point.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_snapshot.h"
#include "engine/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

/*
 * These snapshots are never published, so no reader can hold them: free at
 * once instead of after a grace period (sl_rcuobj_put would defer through
 * call_rcu and cost a grace period per input).
 */
static void
fuzz_free(struct sl_conf_snapshot *s)
{
	if (s != NULL)
		s->obj.free_fn(&s->obj);
}

static struct sl_conf_snapshot *
fuzz_build(const char *text, size_t len, struct sl_conf_errors *errs)
{
	struct sl_conf_tree *tree =
		sl_conf_parse_buffer("fuzz.conf", "/nonexistent-sluice-fuzz", text, len, errs);

	if (tree == NULL)
		return NULL;
	return sl_conf_snapshot_build(tree, "/nonexistent-sluice-fuzz", 1, errs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s;

	s = fuzz_build((const char *)data, size, &errs);
	if (s == NULL) {
		fuzz_check(errs.cnt >= 1, "a rejected input has an error");
		for (size_t i = 0; i < errs.cnt; i++)
			fuzz_check(strchr(errs.list[i].msg, '\n') == NULL, "one-line message");
	} else {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		struct sl_conf_errors errs2 = { 0 };
		struct sl_conf_snapshot *s2;

		fuzz_check(errs.cnt == 0, "an accepted input has no errors");
		fuzz_check(f != NULL, "open_memstream");
		sl_conf_snapshot_print(s, f);
		fclose(f);
		s2 = fuzz_build(buf, len, &errs2);
		if (s2 == NULL) {
			sl_conf_errors_print(&errs2, stderr);
			fprintf(stderr, "--- printed text:\n%s", buf);
		}
		fuzz_check(s2 != NULL, "the printed snapshot builds again");
		fuzz_free(s2);
		sl_conf_errors_clear(&errs2);
		free(buf);
		fuzz_free(s);
	}
	sl_conf_errors_clear(&errs);
	return 0;
}
