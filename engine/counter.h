/*
 * engine/counter.h - per-thread counters, summed on read.
 *
 * Hot paths never touch a shared cache line: each thread adds into its own
 * slot array, and a reader (console, SNMP) sums the slots of every thread
 * that ever counted, plus what exited threads left behind.  A counter may go
 * down as well as up (a gauge: sessions open) by adding a negative delta.
 *
 * Threads: sl_counter_register() from the main thread before the stages
 * start; sl_counter_add() from any thread (each thread gets its slots on first
 * use); sl_counter_read() from any thread, slightly stale by design.
 */
#ifndef SL_ENGINE_COUNTER_H
#define SL_ENGINE_COUNTER_H

#include <stddef.h>
#include <stdint.h>

#define SL_COUNTER_MAX 512

/* Id for `name` (registering the same name twice returns the same id). */
unsigned sl_counter_register(const char *name);
/* Id of a registered name, or -1. */
int sl_counter_find(const char *name);
const char *sl_counter_name(unsigned id);
unsigned sl_counter_cnt(void);

extern __thread uint64_t *sl__counter_slots;
uint64_t *sl__counter_thread_slots(void);

static inline void
sl_counter_add(unsigned id, int64_t delta)
{
	uint64_t *s = sl__counter_slots;

	if (__builtin_expect(s == NULL, 0))
		s = sl__counter_thread_slots();
	/* Only this thread writes the slot; readers load it atomically. */
	__atomic_store_n(&s[id], s[id] + (uint64_t)delta, __ATOMIC_RELAXED);
}

/* Sum over all threads (two's complement: a gauge reads back signed). */
uint64_t sl_counter_read(unsigned id);

/*
 * Fold the calling thread's slots into the retired totals and release them.
 * Stage threads do this on exit; other threads that counted should too (a
 * thread-exit hook does it for those that forget).  Calling it twice is fine.
 */
void sl_counter_thread_exit(void);

#endif /* SL_ENGINE_COUNTER_H */
