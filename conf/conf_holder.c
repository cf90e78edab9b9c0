/*
 * conf/conf_holder.c - the process-wide snapshot holder (see conf_holder.h).
 * Threads: readers anywhere, one publisher (the config thread).
 */
#include "config.h"

#include <stddef.h>

#include "conf/conf_holder.h"
#include "engine/rcu.h"

static struct sl_holder conf_holder;

struct sl_conf_snapshot *
sl_conf_current(void)
{
	/* obj is the first member of the snapshot (conf_snapshot.h). */
	return (struct sl_conf_snapshot *)sl_holder_get(&conf_holder);
}

void
sl_conf_publish(struct sl_conf_snapshot *s)
{
	sl_holder_publish(&conf_holder, s ? &s->obj : NULL);
}
