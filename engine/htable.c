/*
 * engine/htable.c - string-keyed intrusive hash table (see htable.h).
 * Threads: the table's owner.
 */
#include "config.h"

#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/htable.h"

uint64_t
sl_hash_bytes(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a offset basis */

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ull; /* FNV prime */
	}
	return h;
}

static void
htable_grow(struct sl_htable *t)
{
	size_t cnt = t->bucket_cnt ? t->bucket_cnt * 2 : 64;
	struct sl_hnode **b = sl_calloc(cnt, sizeof(*b));

	for (size_t i = 0; i < t->bucket_cnt; i++) {
		struct sl_hnode *n = t->buckets[i];

		while (n != NULL) {
			struct sl_hnode *next = n->next;
			size_t k = n->hash & (cnt - 1);

			n->next = b[k];
			b[k] = n;
			n = next;
		}
	}
	sl_free(t->buckets);
	t->buckets = b;
	t->bucket_cnt = cnt;
}

struct sl_hnode *
sl_htable_find(const struct sl_htable *t, const char *key, size_t key_len)
{
	uint64_t h;

	if (t->bucket_cnt == 0)
		return NULL;
	h = sl_hash_bytes(key, key_len);
	for (struct sl_hnode *n = t->buckets[h & (t->bucket_cnt - 1)]; n != NULL; n = n->next)
		if (n->hash == h && n->key_len == key_len && memcmp(n->key, key, key_len) == 0)
			return n;
	return NULL;
}

void
sl_htable_insert(struct sl_htable *t, struct sl_hnode *n)
{
	size_t k;

	if (t->cnt >= t->bucket_cnt)
		htable_grow(t);
	n->hash = sl_hash_bytes(n->key, n->key_len);
	k = n->hash & (t->bucket_cnt - 1);
	n->next = t->buckets[k];
	t->buckets[k] = n;
	t->cnt++;
}

void
sl_htable_remove(struct sl_htable *t, struct sl_hnode *n)
{
	struct sl_hnode **pp = &t->buckets[n->hash & (t->bucket_cnt - 1)];

	while (*pp != n) {
		SL_ASSERT(*pp != NULL);
		pp = &(*pp)->next;
	}
	*pp = n->next;
	n->next = NULL;
	t->cnt--;
}

void
sl_htable_foreach(const struct sl_htable *t, void (*fn)(struct sl_hnode *n, void *arg), void *arg)
{
	for (size_t i = 0; i < t->bucket_cnt; i++) {
		struct sl_hnode *next;

		/* Read the link first: fn may free the node. */
		for (struct sl_hnode *n = t->buckets[i]; n != NULL; n = next) {
			next = n->next;
			fn(n, arg);
		}
	}
}

void
sl_htable_free(struct sl_htable *t)
{
	sl_free(t->buckets);
	t->buckets = NULL;
	t->bucket_cnt = t->cnt = 0;
}
