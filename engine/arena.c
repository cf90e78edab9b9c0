/*
 * engine/arena.c - bump allocator (see arena.h).
 * Threads: one owner per arena.  Chunks grow with the largest request.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/arena.h"
#include "engine/assert.h"

#define ARENA_CHUNK 16384
#define ARENA_ALIGN 16

struct sl_arena_chunk {
	struct sl_arena_chunk *next;
	size_t size;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

void *
sl_arena_alloc(struct sl_arena *a, size_t len)
{
	size_t need = (len + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	SL_ASSERT(need >= len);
	if (a->head == NULL || a->head->size - a->used < need) {
		size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
		struct sl_arena_chunk *c = sl_malloc(sizeof(*c) + size);

		c->next = a->head;
		c->size = size;
		a->head = c;
		a->used = 0;
	}
	p = a->head->data + a->used;
	a->used += need;
	a->total += need;
	memset(p, 0, len);
	return p;
}

char *
sl_arena_strndup(struct sl_arena *a, const char *s, size_t len)
{
	char *p = sl_arena_alloc(a, len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
sl_arena_strdup(struct sl_arena *a, const char *s)
{
	return sl_arena_strndup(a, s, strlen(s));
}

void *
sl_arena_memdup(struct sl_arena *a, const void *src, size_t cnt, size_t len)
{
	void *p;

	SL_ASSERT(len == 0 || cnt <= SIZE_MAX / len);
	p = sl_arena_alloc(a, cnt * len);
	if (cnt != 0 && len != 0)
		memcpy(p, src, cnt * len);
	return p;
}

void
sl_arena_free(struct sl_arena *a)
{
	struct sl_arena_chunk *c = a->head;

	while (c != NULL) {
		struct sl_arena_chunk *next = c->next;

		sl_free(c);
		c = next;
	}
	a->head = NULL;
	a->used = 0;
	a->total = 0;
}
