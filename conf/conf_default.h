/*
 * conf/conf_default.h - the shipped configuration, compiled in.
 *
 * conf/sluice.conf is embedded at build time (conf/embed.sh) so `sluiced`
 * without -c runs on exactly the file the repository ships.
 * Threads: constant data.
 */
#ifndef SL_CONF_CONF_DEFAULT_H
#define SL_CONF_CONF_DEFAULT_H

extern const char sl_conf_default_text[];
extern const unsigned long sl_conf_default_text_len;

#endif /* SL_CONF_CONF_DEFAULT_H */
