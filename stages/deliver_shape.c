/*
 * stages/deliver_shape.c - limits the delivery threads share.
 *
 * Server_Max_Outbound_Connections is one count for the node (an atomic:
 * taken when a connection is opened, given back when it is freed).  The
 * throttles (Outbound_Throttle_Messages, Outbound_Throttle_Connections,
 * "N" per second or "N/secs") are token buckets keyed by the setting that
 * defines them: a throttle written in a Binding_Group is one bucket for
 * every binding of the group (Momentum's "throttles are by reference"),
 * whichever delivery thread sends.  Buckets live in a small table under a
 * mutex, touched only when a throttle is configured.
 *
 * Threads: any delivery thread.  Parses nothing.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "stages/deliver_int.h"

#define SHAPE_BUCKETS_MAX 4096

struct shape_bucket {
	uint64_t generation;          /* of the snapshot the setting belongs to */
	const union sl_conf_val *key; /* the setting's value in that snapshot */
	double tokens;
	uint64_t last_ms;
};

static uint32_t shape_conns;
static pthread_mutex_t shape_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shape_bucket shape_buckets[SHAPE_BUCKETS_MAX];
static size_t shape_bucket_cnt;

bool
dl_shape_conn_take(const struct sl_conf_snapshot *s)
{
	int64_t max = s != NULL ? sl_conf_int(s, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS) : 0;
	uint32_t n = __atomic_add_fetch(&shape_conns, 1, __ATOMIC_RELAXED);

	if (max > 0 && n > (uint64_t)max) {
		__atomic_sub_fetch(&shape_conns, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

void
dl_shape_conn_release(void)
{
	uint32_t n = __atomic_sub_fetch(&shape_conns, 1, __ATOMIC_RELAXED);

	SL_ASSERT(n != UINT32_MAX);
}

unsigned
dl_shape_conn_cnt(void)
{
	return __atomic_load_n(&shape_conns, __ATOMIC_RELAXED);
}

static struct shape_bucket *
shape_find(uint64_t generation, const union sl_conf_val *v, uint64_t now_ms)
{
	struct shape_bucket *oldest = NULL;

	for (size_t i = 0; i < shape_bucket_cnt; i++) {
		struct shape_bucket *b = &shape_buckets[i];

		if (b->key == v && b->generation == generation)
			return b;
		if (oldest == NULL || b->last_ms < oldest->last_ms)
			oldest = b;
	}
	/* A new bucket starts full; when the table is full the least recently used goes. */
	if (shape_bucket_cnt < SHAPE_BUCKETS_MAX)
		oldest = &shape_buckets[shape_bucket_cnt++];
	oldest->generation = generation;
	oldest->key = v;
	oldest->tokens = v->thr.cnt;
	oldest->last_ms = now_ms;
	return oldest;
}

uint64_t
dl_shape_throttle(const struct sl_conf_snapshot *s, const union sl_conf_val *v, uint64_t now_ms)
{
	struct shape_bucket *b;
	double rate, wait;
	uint64_t result = 0;

	if (v == NULL || v->thr.cnt == 0)
		return 0;
	/* cnt tokens per secs seconds, at most cnt saved up. */
	rate = (double)v->thr.cnt / ((double)v->thr.secs * 1000.0);
	pthread_mutex_lock(&shape_lock);
	b = shape_find(s->generation, v, now_ms);
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * rate;
		if (b->tokens > v->thr.cnt)
			b->tokens = v->thr.cnt;
		b->last_ms = now_ms;
	}
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
	} else {
		wait = (1.0 - b->tokens) / rate;
		result = (uint64_t)wait + 1;
	}
	pthread_mutex_unlock(&shape_lock);
	return result;
}
