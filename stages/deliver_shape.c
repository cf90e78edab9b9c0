/*
 * stages/deliver_shape.c - limits the delivery threads share.
 *
 * Server_Max_Outbound_Connections is one count for the node (an atomic:
 * taken when a connection is opened, given back when it is freed).  The
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

/* Connections per Host stanza key (lower case), node-wide; freed at zero. */
struct shape_host {
	struct sl_hnode node;
	char *key; /* owned */
	unsigned conns;
};
static pthread_mutex_t shape_host_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_htable shape_hosts = SL_HTABLE_INIT;

bool
dl_shape_host_take(const char *key, int64_t max)
{
	size_t len = strlen(key);
	struct shape_host *h;
	bool is_ok = true;

	pthread_mutex_lock(&shape_host_lock);
	h = (struct shape_host *)sl_htable_find(&shape_hosts, key, len);
	if (h == NULL) {
		h = SL_NEW(h);
		h->key = sl_strdup(key);
		h->node.key = h->key;
		h->node.key_len = len;
		sl_htable_insert(&shape_hosts, &h->node);
	}
	if (max >= 0 && h->conns >= (uint64_t)max)
		is_ok = false;
	else
		h->conns++;
	if (h->conns == 0) {
		sl_htable_remove(&shape_hosts, &h->node);
		sl_free(h->key);
		sl_free(h);
	}
	pthread_mutex_unlock(&shape_host_lock);
	return is_ok;
}

void
dl_shape_host_release(const char *key)
{
	struct shape_host *h;

	pthread_mutex_lock(&shape_host_lock);
	h = (struct shape_host *)sl_htable_find(&shape_hosts, key, strlen(key));
	SL_ASSERT(h != NULL && h->conns > 0);
	if (--h->conns == 0) {
		sl_htable_remove(&shape_hosts, &h->node);
		sl_free(h->key);
		sl_free(h);
	}
	pthread_mutex_unlock(&shape_host_lock);
}

bool
dl_shape_conn_take(const struct sl_conf_snapshot *s, bool is_first)
{
	int64_t max = sl_conf_int(s, SL_OPT_SERVER_MAX_OUTBOUND_CONNECTIONS);
	int64_t reserve = sl_conf_int(s, SL_OPT_SERVER_RESERVE_OUTBOUND_CONNECTIONS);
	uint32_t n = __atomic_add_fetch(&shape_conns, 1, __ATOMIC_RELAXED);

	/*
	 * Server_Max_Outbound_Connections for everyone; the reserve above it
	 * only for a destination's first connection, so that a few busy
	 * domains cannot starve the others (Momentum's reserve).
	 */
	if (is_first && reserve > 0 && max > 0)
		max += reserve;
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

uint64_t
dl_shape_throttle(const struct sl_conf_snapshot *s, const union sl_conf_val *v, uint64_t now_ms)
{
	if (v == NULL || v->thr.cnt == 0)
		return 0;
	return sl_throttle_take(v, s->generation, v->thr.cnt, v->thr.secs, now_ms);
}
