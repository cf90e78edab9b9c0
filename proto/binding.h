/*
 * proto/binding.h - which binding a message leaves from.
 *
 * A message is assigned its binding when it is received (so the reception
 * log line names it, and the spool keeps it): an X-Binding: header wins, then
 * a "binding" context variable set by the listener's ACL, then the binding
 * whose Match_Domain lists the sender's domain, else "default".  The header
 * is never delivered: the delivery stage finds it again (also after a
 * restart) to leave it out.
 *
 * Threads: any; no globals, no I/O, nothing allocated.  Parses untrusted
 * input (the client's header section), every length bounded.
 */
#ifndef SL_PROTO_BINDING_H
#define SL_PROTO_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf_snapshot.h"

#define SL_BINDING_NAME_MAX 256         /* a longer X-Binding: value names no binding */
#define SL_BINDING_SCAN_MAX (64 * 1024) /* header bytes searched for X-Binding: */

/*
 * Find "X-Binding: name" (any case, folded or not) in the header section at
 * the start of `data`.  On success copies the unfolded, trimmed value into
 * name[name_size] (truncated) and sets [*off, *off + *len) to the whole field,
 * its continuation lines and line end included; returns false when there is
 * none in the first SL_BINDING_SCAN_MAX bytes.
 */
bool sl_binding_header(const char *data, size_t len, char *name, size_t name_size, uint64_t *off,
		       uint64_t *field_len);

/* The binding whose Match_Domain lists the domain of `sender`, or NULL. */
const struct sl_conf_binding *sl_binding_match_domain(const struct sl_conf_snapshot *s,
						      const char *sender);

/*
 * The binding for a message: `header` (X-Binding: value or NULL), then
 * `context` (the "binding" context variable or NULL), then Match_Domain of
 * `sender`.  Returns NULL for the default binding; *unknown is set to the
 * name asked for when it is not configured (else NULL).
 */
const struct sl_conf_binding *sl_binding_choose(const struct sl_conf_snapshot *s,
						const char *header, const char *context,
						const char *sender, const char **unknown);

#endif /* SL_PROTO_BINDING_H */
