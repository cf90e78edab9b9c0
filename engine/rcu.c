/*
 * engine/rcu.c - reference-counted objects published through an RCU pointer.
 *
 * A holder owns one reference to its current object; readers take their own
 * inside a short read-side section, so a publish never waits for them.  The
 * last put hands the object to liburcu's call_rcu thread, which runs free_fn
 * after a grace period: a reader that loaded the old pointer just before the
 * publish may still be dereferencing it until its read section ends.
 *
 * Threads: sl_holder_get and sl_rcuobj_get/put from any registered thread;
 * sl_holder_publish from the config thread; free_fn on liburcu's call_rcu
 * thread.  Parses no input.  Ownership: see rcu.h (the holder's reference,
 * the readers' references; free_fn owns the object once it runs).
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>

#include "engine/assert.h"
#include "engine/rcu.h"

char sl__rcu_grace;

static void
rcuobj_free_cb(struct rcu_head *head)
{
	struct sl_rcuobj *obj = caa_container_of(head, struct sl_rcuobj, rcu);

	/* Every put released the object, every read section the grace object. */
	SL_TSAN_ACQUIRE(obj);
	SL_TSAN_ACQUIRE(&sl__rcu_grace);
	obj->free_fn(obj);
}

static void
rcuobj_release(struct urcu_ref *ref)
{
	struct sl_rcuobj *obj = caa_container_of(ref, struct sl_rcuobj, ref);

	urcu_memb_call_rcu(&obj->rcu, rcuobj_free_cb);
}

void
sl_rcuobj_init(struct sl_rcuobj *obj, void (*free_fn)(struct sl_rcuobj *obj))
{
	SL_ASSERT(obj != NULL);
	SL_ASSERT(free_fn != NULL);
	urcu_ref_init(&obj->ref);
	obj->free_fn = free_fn;
}

void
sl_rcuobj_get(struct sl_rcuobj *obj)
{
	bool is_taken;

	SL_ASSERT(obj != NULL);
	/* The caller holds a reference, so the count cannot be zero here. */
	is_taken = urcu_ref_get_unless_zero(&obj->ref);
	SL_ASSERT(is_taken);
}

void
sl_rcuobj_put(struct sl_rcuobj *obj)
{
	SL_ASSERT(obj != NULL);
	SL_ASSERT(uatomic_read(&obj->ref.refcount) > 0);
	SL_TSAN_RELEASE(obj);
	urcu_ref_put(&obj->ref, rcuobj_release);
}

struct sl_rcuobj *
sl_holder_get(struct sl_holder *h)
{
	struct sl_rcuobj *obj;

	sl_rcu_read_lock();
	for (;;) {
		obj = sl_holder_peek(h);
		if (obj == NULL || urcu_ref_get_unless_zero(&obj->ref))
			break;
		/*
		 * The count reached zero: a publish replaced the object and
		 * dropped the holder's reference after swapping the pointer,
		 * so reading the pointer again finds the new one.  The memory
		 * stays valid: we are still inside the read-side section.
		 */
		cmm_smp_rmb();
	}
	sl_rcu_read_unlock();
	return obj;
}

void
sl_holder_publish(struct sl_holder *h, struct sl_rcuobj *obj)
{
	struct sl_rcuobj *old;

	if (obj != NULL) {
		SL_ASSERT(uatomic_read(&obj->ref.refcount) > 0);
		/* Readers acquire in sl_holder_peek(): they see obj fully built. */
		SL_TSAN_RELEASE(obj);
	}
	/* Republishing the current object is fine: the caller's reference moves in. */
	old = rcu_xchg_pointer(&h->cur, obj);
	if (old != NULL)
		sl_rcuobj_put(old);
}
