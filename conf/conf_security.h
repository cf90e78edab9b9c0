/*
 * conf/conf_security.h - the Security block: user, group, Capabilities, chroot.
 *
 * Checks the block's values against the system (the passwd and group
 * databases, cap_from_text(3)) so that `sluiced -t`, start-up and reload
 * all refuse the same mistakes with the option's file:line, and turns them
 * into the struct sl_priv that engine/priv.h applies.  `chroot` is always
 * refused: see sl_conf_security().
 *
 * Threads: the config thread (start-up, reload).  Parses configuration
 * values (user and group names, capability text).
 */
#ifndef SL_CONF_CONF_SECURITY_H
#define SL_CONF_CONF_SECURITY_H

#include "conf/conf_err.h"
#include "conf/conf_snapshot.h"
#include "engine/priv.h"

/*
 * Fill `p` (empty on entry; the caller clears it) from the Security block
 * of `s`; without a block `p` stays empty.  Each problem is added to `errs`
 * at its option's position: an unknown user or group, a capability list
 * cap_from_text(3) refuses, a numeric user with no passwd entry and no
 * group, and any `chroot`.  Returns the number of errors added.
 */
size_t sl_conf_security(const struct sl_conf_snapshot *s, struct sl_priv *p,
			struct sl_conf_errors *errs);

#endif /* SL_CONF_CONF_SECURITY_H */
