/*
 * engine/rcu.h - RCU (liburcu, memb flavour) and reference-counted published objects.
 *
 * The one RCU flavour of sluice is liburcu's memb; everything goes through
 * these wrappers.  A published object (a configuration snapshot, a route
 * table) embeds struct sl_rcuobj and is reached through a struct sl_holder:
 *
 *   reader, short:   sl_rcu_read_lock(); p = sl_holder_peek(&h); ... ; sl_rcu_read_unlock();
 *   reader, long:    o = sl_holder_get(&h);  ... keep it across callbacks ...  sl_rcuobj_put(o);
 *   writer:          sl_holder_publish(&h, &new->obj);   (config thread only)
 *
 * The holder owns one reference to its current object.  When the last
 * reference is dropped, the object's free function runs after an RCU grace
 * period (call_rcu), because a reader may still be looking at the pointer
 * it loaded inside its read-side section.
 *
 * Threads: every thread that reads must call sl_rcu_register_thread() first
 * (the stage runtime does it for its threads) and sl_rcu_unregister_thread()
 * before exit.  Read sections are short and never span a callback, a
 * sl_send() or a blocking call.  Only the config thread publishes.
 */
#ifndef SL_ENGINE_RCU_H
#define SL_ENGINE_RCU_H

#include <stdbool.h>
#include <stdint.h>

#include <urcu/urcu-memb.h>
#include <urcu/ref.h>

#include "engine/assert.h"

/*
 * For ThreadSanitizer only: a grace period orders every read-side section
 * that ended before it ahead of whatever follows it (a free).  TSan cannot
 * see that inside liburcu, so each unlock releases this object and each
 * grace-period waiter (sl_rcu_synchronize, the call_rcu callback) acquires it.
 */
extern char sl__rcu_grace;

static inline void
sl_rcu_register_thread(void)
{
	urcu_memb_register_thread();
}
static inline void
sl_rcu_unregister_thread(void)
{
	urcu_memb_unregister_thread();
}
static inline void
sl_rcu_read_lock(void)
{
	urcu_memb_read_lock();
}
static inline void
sl_rcu_read_unlock(void)
{
	SL_TSAN_RELEASE(&sl__rcu_grace);
	urcu_memb_read_unlock();
}
/* Wait for a grace period.  Config thread only; never from a loop thread. */
static inline void
sl_rcu_synchronize(void)
{
	urcu_memb_synchronize_rcu();
	SL_TSAN_ACQUIRE(&sl__rcu_grace);
}
/* Wait until every pending call_rcu callback has run (shutdown, tests). */
static inline void
sl_rcu_barrier(void)
{
	urcu_memb_barrier();
}

struct sl_rcuobj {
	struct urcu_ref ref;
	struct rcu_head rcu;
	void (*free_fn)(struct sl_rcuobj *obj); /* runs after a grace period, once */
};

/* Initialise with one reference (the creator's). */
void sl_rcuobj_init(struct sl_rcuobj *obj, void (*free_fn)(struct sl_rcuobj *obj));
/* Take another reference; the caller must already hold one.  Any thread. */
void sl_rcuobj_get(struct sl_rcuobj *obj);
/*
 * Drop a reference; the last one schedules free_fn after a grace period
 * (call_rcu).  A registered thread only (liburcu's call_rcu requires it);
 * free_fn runs on liburcu's call_rcu thread, which is registered, so it may
 * put other objects in turn.
 */
void sl_rcuobj_put(struct sl_rcuobj *obj);

struct sl_holder {
	struct sl_rcuobj *cur; /* RCU-published; the holder owns one reference */
};

/* Inside a read-side section only: the current object, no reference taken. */
static inline struct sl_rcuobj *
sl_holder_peek(struct sl_holder *h)
{
	struct sl_rcuobj *obj = rcu_dereference(h->cur);

	if (obj != NULL)
		SL_TSAN_ACQUIRE(obj); /* pairs with the release in sl_holder_publish() */
	return obj;
}

/*
 * Return the current object with a new reference (NULL if none).  Opens and
 * closes its own short read-side section; the caller drops the reference
 * with sl_rcuobj_put() when done.  Any registered thread.
 */
struct sl_rcuobj *sl_holder_get(struct sl_holder *h);

/*
 * Publish `obj` (the caller's reference moves to the holder) and drop the
 * holder's reference to the previous object.  NULL clears the holder.
 * Config thread only (one publisher at a time), registered with RCU.
 */
void sl_holder_publish(struct sl_holder *h, struct sl_rcuobj *obj);

#endif /* SL_ENGINE_RCU_H */
