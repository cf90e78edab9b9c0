/*
 * conf/conf_security.c - check the Security block (see conf_security.h).
 *
 * chroot is refused rather than half done: after start-up sluiced opens
 * files by the names in its configuration again (the configuration file
 * and its includes on every reload, the logs on SIGUSR1, new spool
 * segments, Unix sockets of listeners a reload adds), and inside a chroot
 * each of those names would mean another file, or none.
 *
 * Threads: the config thread.  Parses user, group and capability values.
 * Ownership: strings in `p` are its own copies (engine/priv.c).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "conf/conf_int.h"
#include "conf/conf_security.h"

size_t
sl_conf_security(const struct sl_conf_snapshot *s, struct sl_priv *p, struct sl_conf_errors *errs)
{
	const struct sl_conf_block *blk = NULL;
	const struct sl_conf_loc *where = NULL;
	size_t before = errs->cnt;
	char why[256];

	for (size_t i = 0; i < s->block_cnt && blk == NULL; i++)
		if (strcmp(s->blocks[i].kind, "Security") == 0)
			blk = &s->blocks[i];
	for (size_t i = 0; blk != NULL && i < blk->set.cnt; i++) {
		const struct sl_conf_setting *set = &blk->set.v[i];
		int rc = 0;

		switch (set->id) {
		case SL_OPT_USER:
			rc = sl_priv_user_parse(p, set->v.s, why, sizeof(why));
			where = &set->loc;
			break;
		case SL_OPT_GROUP:
			rc = sl_priv_group_parse(p, set->v.s, why, sizeof(why));
			break;
		case SL_OPT_CAPABILITIES:
			rc = sl_priv_caps_parse(p, set->v.s, why, sizeof(why));
			break;
		case SL_OPT_CHROOT:
			snprintf(why, sizeof(why),
				 "chroot is not supported: after start-up sluiced opens files by "
				 "their configured names again (this file and its includes on "
				 "reload, logs on reopen, spool segments, new Unix sockets), and "
				 "inside %s they would name other files; see sluice.conf(5)",
				 set->v.s);
			rc = -1;
			break;
		default:
			break;
		}
		if (rc < 0 && set->id == SL_OPT_CHROOT)
			sl_conf_error_add(errs, &set->loc, "%s", why);
		else if (rc < 0)
			sl_conf_error_add(errs, &set->loc, "bad value for '%s': %s",
					  sl_conf_options[set->id].name, why);
	}
	if (errs->cnt == before && sl_priv_check(p, why, sizeof(why)) < 0)
		sl_conf_error_add(errs, where, "%s", why);
	return errs->cnt - before;
}
