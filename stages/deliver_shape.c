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

#include <stdint.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/throttle.h"
#include "stages/deliver_int.h"

static uint32_t shape_conns;

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
