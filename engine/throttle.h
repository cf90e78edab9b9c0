/*
 * engine/throttle.h - token buckets shared between threads.
 *
 * A rate "cnt events per secs seconds" as a token bucket that starts full
 * and holds at most cnt tokens.  Buckets are identified by the caller:
 * `key` (any stable pointer, e.g. the configuration value that defines the
 * rate) and `generation` (so a reused pointer from a newer configuration
 * is a different bucket).  One bucket serves every thread that names it,
 * which is how a throttle set on a binding group is one bucket for all its
 * bindings.  A small table under a mutex: only callers that have a rate
 * configured come here.
 *
 * Threads: any.  Parses nothing.
 */
#ifndef SL_ENGINE_THROTTLE_H
#define SL_ENGINE_THROTTLE_H

#include <stdint.h>

/*
 * Take one token of bucket (key, generation) with rate cnt/secs at time
 * now_ms (any monotonic millisecond clock, the same for every caller).
 * Returns 0 when the event may happen now (the token is taken), else the
 * milliseconds until a token will be there (nothing is taken).  cnt == 0
 * means unlimited (always 0).
 */
uint64_t sl_throttle_take(const void *key, uint64_t generation, uint32_t cnt, uint32_t secs,
			  uint64_t now_ms);

#endif /* SL_ENGINE_THROTTLE_H */
