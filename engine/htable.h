/*
 * engine/htable.h - a string-keyed hash table for one thread's lookups.
 *
 * Intrusive and single-threaded: the caller embeds struct sl_hnode in its
 * record and owns both; the table only links them.  It grows by doubling
 * when it gets full and never shrinks.  For maps shared between threads
 * use RCU-published snapshots instead.
 *
 * Threads: the owner of the table only.  Parses nothing.
 */
#ifndef SL_ENGINE_HTABLE_H
#define SL_ENGINE_HTABLE_H

#include <stddef.h>
#include <stdint.h>

struct sl_hnode {
	struct sl_hnode *next; /* bucket chain (private) */
	uint64_t hash;         /* private */
	const char *key;       /* the record's key, owned by the record, NUL-terminated */
	size_t key_len;
};

struct sl_htable {
	struct sl_hnode **buckets; /* owned */
	size_t bucket_cnt;         /* a power of two */
	size_t cnt;                /* records linked */
};

/* An empty table (allocates on first insert). */
#define SL_HTABLE_INIT     \
	{                  \
		NULL, 0, 0 \
	}

/* The hash the table uses (FNV-1a over the bytes). */
uint64_t sl_hash_bytes(const void *p, size_t len);

/* The record with this key, or NULL. */
struct sl_hnode *sl_htable_find(const struct sl_htable *t, const char *key, size_t key_len);

/* Link `n` (n->key/key_len set by the caller; the key must not be present). */
void sl_htable_insert(struct sl_htable *t, struct sl_hnode *n);

/* Unlink `n` (it must be linked). */
void sl_htable_remove(struct sl_htable *t, struct sl_hnode *n);

/* Call fn for every record; fn may free its own record (for teardown) but may
 * not insert or remove others. */
void sl_htable_foreach(const struct sl_htable *t, void (*fn)(struct sl_hnode *n, void *arg),
		       void *arg);

/* Free the bucket array (records are the caller's). */
void sl_htable_free(struct sl_htable *t);

#endif /* SL_ENGINE_HTABLE_H */
