/*
 * engine/arena.h - a bump allocator for data that dies all at once.
 *
 * Used for parse trees and configuration snapshots: thousands of small
 * strings and arrays that share one lifetime.  Allocations are never freed
 * one by one; sl_arena_free() releases everything.
 *
 * Threads: an arena is owned by one thread while it is being filled; once
 * published (e.g. inside an immutable snapshot) it is only read.
 */
#ifndef SL_ENGINE_ARENA_H
#define SL_ENGINE_ARENA_H

#include <stddef.h>

struct sl_arena_chunk;

struct sl_arena {
	struct sl_arena_chunk *head; /* owned: chunks, newest first */
	size_t used;                 /* bytes used in head */
	size_t total;                /* bytes handed out, for statistics */
};

/* An empty arena; nothing is allocated until the first sl_arena_alloc(). */
#define SL_ARENA_INIT      \
	{                  \
		NULL, 0, 0 \
	}

/* `len` zeroed bytes aligned for any type; never NULL (aborts on OOM). */
void *sl_arena_alloc(struct sl_arena *a, size_t len) __attribute__((returns_nonnull));
/* Copy of `len` bytes of `s`, NUL-terminated. */
char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t len)
	__attribute__((returns_nonnull));
char *sl_arena_strdup(struct sl_arena *a, const char *s) __attribute__((returns_nonnull));
/* Copy of `cnt` objects of `len` bytes each (cnt may be 0: returns a valid pointer). */
void *sl_arena_memdup(struct sl_arena *a, const void *src, size_t cnt, size_t len)
	__attribute__((returns_nonnull));
/* Release every allocation; the arena is empty and reusable afterwards. */
void sl_arena_free(struct sl_arena *a);

#endif /* SL_ENGINE_ARENA_H */
