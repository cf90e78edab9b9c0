/*
 * conf/conf_listener.h - listener lists: addresses, attributes and IP ACLs.
 *
 * ESMTP_Listener, ECStream_Listener and Control_Listener take a list of
 * addresses, each with optional <attributes> and an optional [ ACL ]:
 *
 *   *:25  127.0.0.1:25  [::1]:25  *:587,200  *:587,200~20        TCP
 *   /path  /path,200  /path,200~20                                Unix socket
 *   ./run/smtp  run/smtp                       relative to the state directory
 *   <status="disabled"> <proto=ipv4|ipv6|both>                    attributes
 *   [ 10.0.0.0/8 = ( personality [ ... ] context [ ... ] continue ) ]
 *
 * Backlog defaults to 5 and accept concurrency (~N) to 1.  Named pipes
 * (\name) are Windows-only and refused.  The ACL keeps declaration order:
 * the first matching entry applies, and while the applied entry holds
 * `continue` the next matching one applies on top (sl_conf_acl_resolve).
 *
 * Threads: built by the config thread into a snapshot's arena, then read-only
 * for every thread that holds the snapshot.  Parses untrusted configuration.
 */
#ifndef SL_CONF_CONF_LISTENER_H
#define SL_CONF_CONF_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conf/conf_acl.h"
#include "conf/conf_err.h"
#include "conf/conf_tree.h"

struct sl_conf_settings;
struct sl_conf_kvlist;

enum sl_listener_kind {
	SL_LISTENER_ESMTP,
	SL_LISTENER_ECSTREAM,
	SL_LISTENER_CONTROL,
	SL_LISTENER__COUNT
};

enum sl_listen_family {
	SL_LISTEN_ANY,   /* "*": INADDR_ANY and/or in6addr_any per proto */
	SL_LISTEN_INET4, /* a literal IPv4 address */
	SL_LISTEN_INET6, /* a literal [IPv6] address */
	SL_LISTEN_UNIX,  /* a filesystem path */
};

enum sl_listen_proto {
	SL_LISTEN_PROTO_BOTH,
	SL_LISTEN_PROTO_IPV4,
	SL_LISTEN_PROTO_IPV6,
};

#define SL_LISTEN_BACKLOG_DEFAULT 5
#define SL_LISTEN_BACKLOG_MAX     65535
#define SL_LISTEN_THREADS_MAX     64

/* One ACL property other than personality/context/relay/continue. */
struct sl_conf_prop {
	struct sl_conf_loc loc;
	const char *name;                    /* canonical upper case: "TLS", "DIGEST-MD5", ... */
	const struct sl_conf_kvlist *params; /* its [ key = value ] pairs (never NULL) */
};

struct sl_conf_acl_entry {
	struct sl_conf_loc loc;
	struct sl_cidr cidr;
	bool has_continue;
	const struct sl_conf_settings *personality; /* never NULL (may be empty) */
	const struct sl_conf_kvlist *context;       /* never NULL (may be empty) */
	bool has_relay;                             /* relay_for_sending_domains present */
	const char *const *relay_domains;           /* its "domain = true" names; NULL-terminated;
					     empty list with has_relay: open relay */
	const struct sl_conf_prop *props; /* TLS, AUTH mechanisms, X* extensions, ALWAYS-ALLOW */
	size_t prop_cnt;
};

struct sl_conf_listen_addr {
	struct sl_conf_loc loc;
	const char *text; /* normalised "host:port" or path, for logs and reconcile */
	enum sl_listener_kind kind;
	enum sl_listen_family family;
	const char *host; /* INET4/INET6 literal (no brackets); NULL for ANY/UNIX */
	uint16_t port;    /* TCP */
	const char *path; /* UNIX, absolute */
	unsigned backlog;
	unsigned accept_threads; /* ~N, >= 1 */
	enum sl_listen_proto proto;
	bool is_disabled; /* status="disabled" */
	const struct sl_conf_acl_entry *acl;
	size_t acl_cnt;
};

struct sl_conf_listener {
	enum sl_listener_kind kind;
	const struct sl_conf_listen_addr *addrs;
	size_t addr_cnt;
};

/* "ESMTP_Listener" etc. */
const char *sl_listener_kind_name(enum sl_listener_kind kind);

/*
 * Result of walking an ACL for one peer: every entry that applied, in
 * order (first match, then each next match while the last applied entry
 * said `continue`).  Later entries override earlier ones where they overlap.
 */
/* A configuration whose ACL could apply more entries to one client is refused. */
#define SL_ACL_APPLIED_MAX 16
struct sl_conf_acl_match {
	const struct sl_conf_acl_entry *applied[SL_ACL_APPLIED_MAX];
	size_t applied_cnt;
};

/* Walk `a`'s ACL for peer `sa`; fills *m (applied_cnt 0 when nothing matched). */
void sl_conf_acl_resolve(const struct sl_conf_listen_addr *a, const struct sockaddr *sa,
			 struct sl_conf_acl_match *m);

#endif /* SL_CONF_CONF_LISTENER_H */
