/*
 * engine/counter.c - per-thread counters, summed on read (see counter.h).
 *
 * Each counting thread owns one slot array, allocated on its first add and
 * linked into a global list so readers can find it.  Only the owner writes its
 * slots (relaxed atomic stores, no read-modify-write); readers load them
 * atomically, so a sum is slightly stale but never torn.  When a thread exits
 * its slots are folded into the retired totals, so counts outlive threads.
 *
 * Threads: any.  counter_lock is taken only on slot registration, thread exit,
 * name registration and read, never on sl_counter_add().  Parses no input.
 * Ownership: the list owns every slot array; a thread's TLS pointer borrows
 * its own until sl_counter_thread_exit().
 */
#include "config.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"

#define COUNTER_SLOTS_MAGIC 0xc0a7e125u

struct counter_slots {
	unsigned magic;                 /* COUNTER_SLOTS_MAGIC */
	struct counter_slots *next;     /* counter_threads list, under counter_lock */
	uint64_t slots[SL_COUNTER_MAX]; /* written by the owner thread only */
};

__thread uint64_t *sl__counter_slots;

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static struct counter_slots *counter_threads;    /* live threads' slots */
static uint64_t counter_retired[SL_COUNTER_MAX]; /* exited threads' totals */
static char *counter_names[SL_COUNTER_MAX];      /* owned, never freed */
static unsigned counter_name_cnt;                /* atomic: readers outside the lock */
static pthread_key_t counter_key;
static pthread_once_t counter_key_once = PTHREAD_ONCE_INIT;

/* Threads that forget sl_counter_thread_exit() still fold their counts. */
static void
counter_key_destroy(void *arg)
{
	if (sl__counter_slots != NULL)
		sl_counter_thread_exit();
}

static void
counter_key_init(void)
{
	int rc = pthread_key_create(&counter_key, counter_key_destroy);

	SL_ASSERT(rc == 0);
}

static int
counter_find_locked(const char *name)
{
	unsigned i;

	for (i = 0; i < counter_name_cnt; i++) {
		if (strcmp(counter_names[i], name) == 0)
			return (int)i;
	}
	return -1;
}

unsigned
sl_counter_register(const char *name)
{
	int id;

	SL_ASSERT(name != NULL);
	pthread_mutex_lock(&counter_lock);
	id = counter_find_locked(name);
	if (id < 0) {
		SL_ASSERT(counter_name_cnt < SL_COUNTER_MAX);
		id = (int)counter_name_cnt;
		counter_names[id] = sl_strdup(name);
		__atomic_store_n(&counter_name_cnt, counter_name_cnt + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&counter_lock);
	return (unsigned)id;
}

int
sl_counter_find(const char *name)
{
	int id;

	pthread_mutex_lock(&counter_lock);
	id = counter_find_locked(name);
	pthread_mutex_unlock(&counter_lock);
	return id;
}

const char *
sl_counter_name(unsigned id)
{
	SL_ASSERT(id < sl_counter_cnt());
	return counter_names[id];
}

unsigned
sl_counter_cnt(void)
{
	return __atomic_load_n(&counter_name_cnt, __ATOMIC_ACQUIRE);
}

uint64_t *
sl__counter_thread_slots(void)
{
	struct counter_slots *cs;

	if (sl__counter_slots != NULL)
		return sl__counter_slots;
	pthread_once(&counter_key_once, counter_key_init);
	cs = SL_NEW(cs);
	cs->magic = COUNTER_SLOTS_MAGIC;
	pthread_mutex_lock(&counter_lock);
	cs->next = counter_threads;
	counter_threads = cs;
	pthread_mutex_unlock(&counter_lock);
	/* Any non-NULL value makes the key destructor run at thread exit. */
	pthread_setspecific(counter_key, cs);
	sl__counter_slots = cs->slots;
	return cs->slots;
}

uint64_t
sl_counter_read(unsigned id)
{
	const struct counter_slots *cs;
	uint64_t sum;

	SL_ASSERT(id < SL_COUNTER_MAX);
	pthread_mutex_lock(&counter_lock);
	sum = counter_retired[id];
	for (cs = counter_threads; cs != NULL; cs = cs->next)
		sum += __atomic_load_n(&cs->slots[id], __ATOMIC_RELAXED);
	pthread_mutex_unlock(&counter_lock);
	return sum;
}

void
sl_counter_thread_exit(void)
{
	struct counter_slots *cs, **pp;
	unsigned i;

	if (sl__counter_slots == NULL)
		return;
	cs = (struct counter_slots *)((char *)sl__counter_slots -
				      offsetof(struct counter_slots, slots));
	SL_CHECK_OBJ(cs, COUNTER_SLOTS_MAGIC);
	pthread_mutex_lock(&counter_lock);
	for (pp = &counter_threads; *pp != cs; pp = &(*pp)->next)
		SL_ASSERT(*pp != NULL);
	*pp = cs->next;
	/* Fold and unlink under one lock: a reader never counts a thread twice. */
	for (i = 0; i < SL_COUNTER_MAX; i++)
		counter_retired[i] += cs->slots[i];
	pthread_mutex_unlock(&counter_lock);
	pthread_setspecific(counter_key, NULL);
	sl__counter_slots = NULL;
	cs->magic = 0;
	sl_free(cs);
}
