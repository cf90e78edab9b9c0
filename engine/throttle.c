/*
 * engine/throttle.c - shared token buckets (see throttle.h).
 *
 * Threads: any; one mutex guards the table (taken only by callers with a
 * rate configured).  When the table is full the least recently used
 * bucket is reused.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>

#include "engine/throttle.h"

#define THROTTLE_BUCKETS_MAX 4096

struct throttle_bucket {
	const void *key;
	uint64_t generation;
	double tokens;
	uint64_t last_ms;
};

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct throttle_bucket throttle_buckets[THROTTLE_BUCKETS_MAX];
static unsigned throttle_cnt;

static struct throttle_bucket *
throttle_find(const void *key, uint64_t generation, uint32_t cnt, uint64_t now_ms)
{
	struct throttle_bucket *oldest = NULL;

	for (unsigned i = 0; i < throttle_cnt; i++) {
		struct throttle_bucket *b = &throttle_buckets[i];

		if (b->key == key && b->generation == generation)
			return b;
		if (oldest == NULL || b->last_ms < oldest->last_ms)
			oldest = b;
	}
	if (throttle_cnt < THROTTLE_BUCKETS_MAX)
		oldest = &throttle_buckets[throttle_cnt++];
	oldest->key = key;
	oldest->generation = generation;
	oldest->tokens = cnt;
	oldest->last_ms = now_ms;
	return oldest;
}

uint64_t
sl_throttle_take(const void *key, uint64_t generation, uint32_t cnt, uint32_t secs, uint64_t now_ms)
{
	struct throttle_bucket *b;
	double rate;
	uint64_t wait = 0;

	if (cnt == 0)
		return 0;
	rate = (double)cnt / ((double)(secs ? secs : 1) * 1000.0); /* tokens per ms */
	pthread_mutex_lock(&throttle_lock);
	b = throttle_find(key, generation, cnt, now_ms);
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * rate;
		if (b->tokens > cnt)
			b->tokens = cnt;
		b->last_ms = now_ms;
	}
	if (b->tokens >= 1.0)
		b->tokens -= 1.0;
	else
		wait = (uint64_t)((1.0 - b->tokens) / rate) + 1;
	pthread_mutex_unlock(&throttle_lock);
	return wait;
}
