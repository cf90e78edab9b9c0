/*
 * stages/deliver_shape.c - limits the delivery threads share.
 *
 * Server_Max_Outbound_Connections is one count for the node (an atomic:
 * taken when a connection is opened, given back when it is freed).  The
 * other shared connection counts are slots in one table keyed by what
 * they count: every binding and binding group (their own
 * Server_Max_Outbound_Connections), and every Host stanza's host, per
 * container of the stanza (a Host inside a Binding counts that binding's
 * connections to the host, one inside a Binding_Group its bindings'
 * together, a top-level one the whole node's).  A connection holds its
 * slots (struct dl_slots) from before it opens until it is freed.  The
 * throttles (Outbound_Throttle_Messages, Outbound_Throttle_Connections,
 * "N" per second or "N/secs") are token buckets keyed by the setting that
 * defines them: a throttle written in a Binding_Group is one bucket for
 * every binding of the group (Momentum's "throttles are by reference"),
 * whichever delivery thread sends (engine/throttle.c keeps the buckets).
 *
 * Threads: any delivery thread.  Parses nothing.
 */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/htable.h"
#include "engine/throttle.h"
#include "stages/deliver_int.h"

static uint32_t shape_conns;

/* Connections per slot key, node-wide; a slot is freed when its count drops to zero. */
struct shape_slot {
	struct sl_hnode node;
	char *key; /* owned */
	unsigned conns;
};
static pthread_mutex_t shape_slot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_htable shape_slots = SL_HTABLE_INIT;

/* Count one more connection on `key` unless `max` is reached (< 0: no limit). */
static bool
shape_slot_take(const char *key, int64_t max)
{
	size_t len = strlen(key);
	struct shape_slot *h;
	bool is_ok = true;

	pthread_mutex_lock(&shape_slot_lock);
	h = (struct shape_slot *)sl_htable_find(&shape_slots, key, len);
	if (h == NULL) {
		h = SL_NEW(h);
		h->key = sl_strdup(key);
		h->node.key = h->key;
		h->node.key_len = len;
		sl_htable_insert(&shape_slots, &h->node);
	}
	if (max >= 0 && h->conns >= (uint64_t)max)
		is_ok = false;
	else
		h->conns++;
	if (h->conns == 0) {
		sl_htable_remove(&shape_slots, &h->node);
		sl_free(h->key);
		sl_free(h);
	}
	pthread_mutex_unlock(&shape_slot_lock);
	return is_ok;
}

static void
shape_slot_release(const char *key)
{
	struct shape_slot *h;

	pthread_mutex_lock(&shape_slot_lock);
	h = (struct shape_slot *)sl_htable_find(&shape_slots, key, strlen(key));
	SL_ASSERT(h != NULL && h->conns > 0);
	if (--h->conns == 0) {
		sl_htable_remove(&shape_slots, &h->node);
		sl_free(h->key);
		sl_free(h);
	}
	pthread_mutex_unlock(&shape_slot_lock);
}

/*
 * "<kind>\x1f<name>[\x1f<name2>]": kind 'b' a binding, 'g' a binding group,
 * 'T', 'G', 'B' a Host stanza's host at top level, in a group, in a
 * binding; the separator is a control character names do not contain.
 */
static char *
shape_key(char kind, const char *name, const char *name2)
{
	size_t n = strlen(name), n2 = name2 ? strlen(name2) : 0;
	char *k = sl_malloc(2 + n + (name2 ? 1 + n2 : 0) + 1);
	char *p = k;

	*p++ = kind;
	*p++ = '\x1f';
	memcpy(p, name, n);
	p += n;
	if (name2 != NULL) {
		*p++ = '\x1f';
		memcpy(p, name2, n2);
		p += n2;
	}
	*p = '\0';
	return k;
}

bool
dl_shape_host_take(struct dl_slots *sl, char scope, const char *scope_name, const char *host,
		   int64_t max)
{
	char *key = shape_key((char)toupper((unsigned char)scope), scope_name, host);

	SL_ASSERT(sl->host == NULL);
	/* Host names compare without case; binding names with it (as Momentum). */
	for (char *p = key + 2 + strlen(scope_name) + 1; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!shape_slot_take(key, max)) {
		sl_free(key);
		return false;
	}
	sl->host = key;
	return true;
}

/* Server_Max_Outbound_Connections set explicitly in `set`: its limit (0: none), else -1. */
static int64_t
shape_set_max(const struct sl_conf_settings *set)
{
	const struct sl_conf_setting *v =
		sl_conf_settings_find(set, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);

	return v != NULL && v->v.i > 0 ? v->v.i : -1;
}

bool
dl_shape_conn_take(struct dl_slots *sl, const struct sl_conf_snapshot *s, const char *binding,
		   bool is_first)
{
	int64_t max = sl_conf_int(s, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
	int64_t reserve = sl_conf_int(s, SL_OPT_SERVER_RESERVE_OUTBOUND_CONNECTIONS);
	const struct sl_conf_binding *bd = sl_conf_binding_find(s, binding);
	uint32_t n = __atomic_add_fetch(&shape_conns, 1, __ATOMIC_RELAXED);
	char *bkey = NULL, *gkey = NULL;

	SL_ASSERT(!sl->has_node && sl->binding == NULL && sl->group == NULL);
	/*
	 * Server_Max_Outbound_Connections for everyone; the reserve above it
	 * only for a destination's first connection, so that a few busy
	 * domains cannot starve the others (Momentum's reserve, server-wide:
	 * a binding's or group's own limit has none).
	 */
	if (is_first && reserve > 0 && max > 0)
		max += reserve;
	if (max > 0 && n > (uint64_t)max)
		goto fail_node;
	/*
	 * Set in a Binding: the connections through that binding; in a
	 * Binding_Group: through its bindings together.  Counted whether set
	 * or not, so that a reload that sets one finds the count right.
	 */
	bkey = shape_key('b', binding, NULL);
	if (!shape_slot_take(bkey, bd != NULL ? shape_set_max(&bd->set) : -1))
		goto fail_binding;
	if (bd != NULL && bd->group != NULL) {
		gkey = shape_key('g', bd->group->name, NULL);
		if (!shape_slot_take(gkey, shape_set_max(&bd->group->set)))
			goto fail_group;
	}
	sl->has_node = true;
	sl->binding = bkey;
	sl->group = gkey;
	return true;

fail_group:
	sl_free(gkey);
	shape_slot_release(bkey);
fail_binding:
	sl_free(bkey);
fail_node:
	__atomic_sub_fetch(&shape_conns, 1, __ATOMIC_RELAXED);
	return false;
}

void
dl_shape_release(struct dl_slots *sl)
{
	if (sl->has_node) {
		uint32_t n = __atomic_sub_fetch(&shape_conns, 1, __ATOMIC_RELAXED);

		SL_ASSERT(n != UINT32_MAX);
		sl->has_node = false;
	}
	if (sl->binding != NULL)
		shape_slot_release(sl->binding);
	if (sl->group != NULL)
		shape_slot_release(sl->group);
	if (sl->host != NULL)
		shape_slot_release(sl->host);
	sl_free(sl->binding);
	sl_free(sl->group);
	sl_free(sl->host);
	sl->binding = sl->group = sl->host = NULL;
}

unsigned
dl_shape_conn_cnt(void)
{
	return __atomic_load_n(&shape_conns, __ATOMIC_RELAXED);
}

uint64_t
dl_shape_throttle(const struct sl_conf_snapshot *s, const union sl_conf_val *v, uint64_t now_ms)
{
	if (v == NULL || v->thr.cnt == 0)
		return 0;
	return sl_throttle_take(v, s->generation, v->thr.cnt, v->thr.secs, now_ms);
}
