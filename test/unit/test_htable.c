/*
 * test/unit/test_htable.c - the string-keyed intrusive hash table (engine/htable.c).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/alloc.h"
#include "engine/htable.h"

struct rec {
	struct sl_hnode node;
	char key[32];
	int value;
};

static void
count_fn(struct sl_hnode *n, void *arg)
{
	*(int *)arg += ((struct rec *)n)->value;
}

static void
test_insert_find_remove(void **state)
{
	struct sl_htable t = SL_HTABLE_INIT;
	enum { N = 5000 };
	struct rec *recs = sl_calloc(N, sizeof(*recs));
	int sum = 0;

	assert_null(sl_htable_find(&t, "x", 1));
	for (int i = 0; i < N; i++) {
		/* Keys with an embedded NUL, as the delivery queues use ("binding\0domain"). */
		int len = snprintf(recs[i].key, sizeof(recs[i].key), "b%d", i % 7);

		len += 1 + snprintf(recs[i].key + len + 1, sizeof(recs[i].key) - (size_t)len - 1,
				    "d%d.example", i);
		recs[i].node.key = recs[i].key;
		recs[i].node.key_len = (size_t)len;
		recs[i].value = 1;
		sl_htable_insert(&t, &recs[i].node);
	}
	assert_int_equal(t.cnt, N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(sl_htable_find(&t, recs[i].key, recs[i].node.key_len),
				 &recs[i].node);
	/* Same prefix, different part after the NUL: not found. */
	assert_null(sl_htable_find(&t, "b0\0zzz", 6));
	sl_htable_foreach(&t, count_fn, &sum);
	assert_int_equal(sum, N);
	for (int i = 0; i < N; i += 2)
		sl_htable_remove(&t, &recs[i].node);
	assert_int_equal(t.cnt, N / 2);
	for (int i = 0; i < N; i++) {
		struct sl_hnode *n = sl_htable_find(&t, recs[i].key, recs[i].node.key_len);

		if (i % 2 == 0)
			assert_null(n);
		else
			assert_ptr_equal(n, &recs[i].node);
	}
	sl_htable_free(&t);
	assert_int_equal(t.cnt, 0);
	sl_free(recs);
}

static void
free_fn(struct sl_hnode *n, void *arg)
{
	(*(int *)arg)++;
	sl_free(n);
}

/* Teardown frees each record from inside foreach (as dl_sched_fini does);
 * every record is visited once and none is read after it is freed (ASan). */
static void
test_foreach_free(void **state)
{
	struct sl_htable t = SL_HTABLE_INIT;
	enum { N = 300 };
	int visited = 0;

	for (int i = 0; i < N; i++) {
		struct rec *r = sl_calloc(1, sizeof(*r));
		int len = snprintf(r->key, sizeof(r->key), "k%d", i);

		r->node.key = r->key;
		r->node.key_len = (size_t)len;
		sl_htable_insert(&t, &r->node);
	}
	sl_htable_foreach(&t, free_fn, &visited);
	assert_int_equal(visited, N);
	sl_htable_free(&t);
}

static void
test_hash_stable(void **state)
{
	/* FNV-1a 64 of "a" and of the empty string (published test vectors). */
	assert_true(sl_hash_bytes("", 0) == 0xcbf29ce484222325ull);
	assert_true(sl_hash_bytes("a", 1) == 0xaf63dc4c8601ec8cull);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_find_remove),
		cmocka_unit_test(test_foreach_free),
		cmocka_unit_test(test_hash_stable),
	};

	return cmocka_run_group_tests_name("htable", tests, NULL, NULL);
}
