/*
 * conf/conf_int.h - declarations shared inside conf/ only.
 *
 * Threads: the config thread (snapshot building).  The functions parse
 * untrusted configuration values and report problems as one-line reasons.
 */
#ifndef SL_CONF_CONF_INT_H
#define SL_CONF_CONF_INT_H

#include <stddef.h>

#include "conf/conf_err.h"
#include "conf/conf_listener.h"
#include "conf/conf_schema.h"
#include "conf/conf_snapshot.h"
#include "conf/conf_tree.h"
#include "engine/arena.h"

/*
 * Convert the tree value `v` to option `o`'s type into *out (allocating in
 * `a`).  Relative PATH values are made absolute against `base_dir`.
 * Returns 0, or -1 with a reason in `why` (the caller adds the location).
 * LISTENER options are built by sl_conf__listener_build() instead.
 */
int sl_conf__value_parse(struct sl_arena *a, const struct sl_conf_option *o,
			 const struct sl_conf_value *v, const char *base_dir,
			 union sl_conf_val *out, char *why, size_t why_len);

/* Parse the text of a scalar for option `o` (for defaults and PARAMS). */
int sl_conf__scalar_parse(struct sl_arena *a, const struct sl_conf_option *o, const char *text,
			  const char *base_dir, union sl_conf_val *out, char *why, size_t why_len);

/*
 * The checks of option `o`'s values beyond their type (each list item's
 * text, or a scalar's text after the type check): CIDR blocks of
 * Prohibited_Hosts, the address of Bind_Address, then any check set with
 * sl_conf_check_set().  Returns 0, or -1 with a reason in `why`.
 */
int sl_conf__value_check(const struct sl_conf_option *o, const char *text, char *why,
			 size_t why_len);

/* Make `path` absolute against base_dir (NULL: cwd) in `a`; absolute paths are copied. */
const char *sl_conf__abspath(struct sl_arena *a, const char *base_dir, const char *path);

/*
 * Build the typed listener for option `o` (kind) from tree value `v`.
 * Adds errors (with locations) to `errs`; returns NULL if any.
 */
const struct sl_conf_listener *sl_conf__listener_build(struct sl_arena *a,
						       enum sl_listener_kind kind,
						       const struct sl_conf_value *v,
						       const char *base_dir,
						       struct sl_conf_errors *errs);

/*
 * Build a settings list for scope bit `scope` from `[ key = value ... ]`
 * pairs (listener personality).  Errors go to `errs`.
 */
int sl_conf__settings_from_pairs(struct sl_arena *a, unsigned scope,
				 const struct sl_conf_pair *pairs, size_t pair_cnt,
				 const char *base_dir, struct sl_conf_settings *out,
				 struct sl_conf_errors *errs);

/* Text of a WORD/STRING value, or of a list joined by single spaces (in `a`). */
const char *sl_conf__value_text(struct sl_arena *a, const struct sl_conf_value *v);

#endif /* SL_CONF_CONF_INT_H */
