/*
 * conf/conf_acl.h - CIDR blocks for listener IP ACLs.
 *
 * Parses "1.2.3.4/32", "192.168.0.0/16", "::1/128", "2001:db8::/32" (and a
 * bare address, meaning a host route) and matches peer addresses against
 * them.  An IPv4 client seen on an IPv6 socket (::ffff:a.b.c.d) matches IPv4
 * blocks, so one ACL serves dual-stack listeners.
 *
 * Threads: pure functions over caller memory; any thread.  Parses untrusted
 * configuration text (bounded: at most 64 characters are considered).
 */
#ifndef SL_CONF_CONF_ACL_H
#define SL_CONF_CONF_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sl_cidr {
	uint8_t family;   /* AF_INET or AF_INET6 */
	uint8_t bits;     /* prefix length: 0..32 or 0..128 */
	uint8_t addr[16]; /* network address, host bits cleared (IPv4 in addr[0..3]) */
};

/*
 * Parse `text` into *out.  Returns 0, or -1 with a one-line reason in `why`
 * (e.g. "prefix length 33 out of range 0..32").  Host bits set beyond the
 * prefix are cleared, not refused (Momentum accepts 10.1.2.3/8).
 */
int sl_cidr_parse(const char *text, struct sl_cidr *out, char *why, size_t why_len);

/* True when the address in `sa` (AF_INET or AF_INET6) lies inside `c`. */
bool sl_cidr_match(const struct sl_cidr *c, const struct sockaddr *sa);

/* Format as "a.b.c.d/n" or "x::y/n" into buf (at least 52 bytes). */
void sl_cidr_format(const struct sl_cidr *c, char *buf, size_t len);

#endif /* SL_CONF_CONF_ACL_H */
