/*
 * test/unit/test_arena.c - the bump allocator: alignment, zeroing, big
 * allocations, string and memory copies, release and reuse.
 *
 * Each allocation of a table of sizes (tiny, around the chunk size, far above
 * it) must be aligned, zeroed and independent of the others: every block is
 * filled with its own byte and checked after all were made.
 *
 * Threads: main only.  Parses no input.  Ownership: each test frees its arena.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "engine/arena.h"

#define ARENA_ALIGN 16

static const size_t sizes[] = { 1, 3, 15, 16, 17, 100, 4096, 16383, 16384, 16385, 100000, 0, 7 };
#define SIZE_CNT (sizeof(sizes) / sizeof(sizes[0]))

static void
test_alignment_and_independence(void **state)
{
	struct sl_arena a = SL_ARENA_INIT;
	unsigned char *p[SIZE_CNT];
	size_t i, j, total = 0;

	for (i = 0; i < SIZE_CNT; i++) {
		p[i] = sl_arena_alloc(&a, sizes[i]);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % ARENA_ALIGN, 0);
		for (j = 0; j < sizes[i]; j++) {
			if (p[i][j] != 0)
				fail_msg("size %zu: byte %zu not zeroed", sizes[i], j);
		}
		memset(p[i], (int)(i + 1), sizes[i]);
		total += sizes[i];
	}
	/* No block overlaps another: each still holds its own byte. */
	for (i = 0; i < SIZE_CNT; i++) {
		for (j = 0; j < sizes[i]; j++) {
			if (p[i][j] != (unsigned char)(i + 1))
				fail_msg("size %zu: byte %zu overwritten", sizes[i], j);
		}
	}
	assert_true(a.total >= total);
	sl_arena_free(&a);
	assert_null(a.head);
	assert_int_equal(a.total, 0);
}

static void
test_big_allocations(void **state)
{
	struct sl_arena a = SL_ARENA_INIT;
	unsigned char *small = sl_arena_alloc(&a, 10), *big, *after;

	big = sl_arena_alloc(&a, 1u << 20);
	memset(big, 0xab, 1u << 20);
	after = sl_arena_alloc(&a, 10);
	assert_int_equal((uintptr_t)big % ARENA_ALIGN, 0);
	assert_int_equal(after[0], 0);
	memset(small, 1, 10);
	memset(after, 2, 10);
	assert_int_equal(big[0], 0xab);
	assert_int_equal(big[(1u << 20) - 1], 0xab);
	sl_arena_free(&a);
}

static void
test_strings_and_memdup(void **state)
{
	static const int nums[] = { 1, 2, 3, 4 };
	struct sl_arena a = SL_ARENA_INIT;
	char *s, *n;
	int *m;
	void *empty;

	s = sl_arena_strdup(&a, "Esmtp_Listener");
	assert_string_equal(s, "Esmtp_Listener");
	n = sl_arena_strndup(&a, "127.0.0.1:25", 9);
	assert_string_equal(n, "127.0.0.1");
	n = sl_arena_strndup(&a, "", 0);
	assert_string_equal(n, "");
	m = sl_arena_memdup(&a, nums, 4, sizeof(nums[0]));
	assert_memory_equal(m, nums, sizeof(nums));
	assert_int_equal((uintptr_t)m % ARENA_ALIGN, 0);
	empty = sl_arena_memdup(&a, NULL, 0, sizeof(int));
	assert_non_null(empty);
	sl_arena_free(&a);
}

static void
test_free_and_reuse(void **state)
{
	struct sl_arena a = SL_ARENA_INIT;
	unsigned round, i;
	char *s;

	sl_arena_free(&a); /* an empty arena frees fine */
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 2000; i++) {
			s = sl_arena_strdup(&a, "a string that fills chunks");
			assert_string_equal(s, "a string that fills chunks");
		}
		assert_true(a.total >= 2000 * 27);
		sl_arena_free(&a);
		assert_null(a.head);
		assert_int_equal(a.used, 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alignment_and_independence),
		cmocka_unit_test(test_big_allocations),
		cmocka_unit_test(test_strings_and_memdup),
		cmocka_unit_test(test_free_and_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
