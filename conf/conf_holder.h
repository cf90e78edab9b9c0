/*
 * conf/conf_holder.h - the configuration snapshot currently in force.
 *
 * One process-wide RCU holder (engine/rcu.h) for struct sl_conf_snapshot.
 * The config thread publishes a new snapshot on start and after each
 * successful reload; everyone else takes a reference for as long as they
 * need a consistent view (a session holds one for its whole life) and
 * drops it with sl_conf_snapshot_put().
 *
 * Threads: sl_conf_current() from any RCU-registered thread (every stage
 * thread is); sl_conf_publish() from the config thread only.
 */
#ifndef SL_CONF_CONF_HOLDER_H
#define SL_CONF_CONF_HOLDER_H

#include "conf/conf_snapshot.h"

/* The current snapshot with a new reference (NULL before the first publish). */
struct sl_conf_snapshot *sl_conf_current(void);

/*
 * Publish `s` (the caller's reference moves to the holder; NULL clears it).
 * The previous snapshot is released once its last reader lets go.
 */
void sl_conf_publish(struct sl_conf_snapshot *s);

#endif /* SL_CONF_CONF_HOLDER_H */
