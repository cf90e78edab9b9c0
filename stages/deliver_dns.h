/*
 * stages/deliver_dns.h - DNS for delivery: c-ares on a delivery loop thread.
 *
 * Each delivery loop thread has one struct sl_dns: a c-ares channel whose
 * sockets and timeouts live on that thread's libuv loop (uv_poll and
 * uv_timer driven by ares_sock_state_cb), so a lookup never blocks the
 * loop.  On top of it:
 *
 *  - sl_dns_mx(): the mail exchangers of a domain with their addresses:
 *    MX records sorted by preference (equal preferences shuffled so that
 *    connections spread evenly), then A and AAAA for each exchanger.
 *    No MX record but the domain exists: the domain itself is the
 *    exchanger (implicit MX, RFC 5321 §5.1).  A single MX of preference 0
 *    with target "." is a null MX (RFC 7505): the domain takes no mail.
 *    NXDOMAIN and null MX are permanent; timeouts, SERVFAIL and refusals
 *    are transient (RFC 5321 §5.1: a temporary failure defers).
 *  - sl_dns_host(): the A/AAAA addresses of one host (gateways, routes).
 *  - a cache per thread: answers are kept for their TTL (raised to
 *    Min_DNS_TTL), negative answers too (the SOA minimum, bounded), and
 *    concurrent lookups of the same name share one query.
 *
 * Outcomes of sl_dns_mx() (result->status; the policy is in proto/dns.h):
 *   the MX query says NXDOMAIN                     NXDOMAIN, no hosts
 *   one MX, preference 0, exchange "."             NULL_MX, no hosts
 *   the MX query times out, SERVFAIL, REFUSED, ... TEMPFAIL, no hosts
 *   MX records (or, on NODATA, the implicit MX):   one host per exchanger, each
 *                                                  with its own status; then
 *     some exchanger has an address                OK
 *     none has; some lookup failed transiently     TEMPFAIL
 *     none has, every exchanger permanently        NODATA (permanent, as Postfix:
 *       (NXDOMAIN or NODATA for A and AAAA)          "Host or domain name not found")
 *     implicit MX                                  the domain's own host status
 *     MX records, none a usable host name          NODATA
 *   A host is OK when A or AAAA gave addresses, TEMPFAIL when either failed
 *   transiently, else NXDOMAIN or NODATA.  A name that is not a valid host
 *   name (labels of 1..63 letters, digits, '-' or '_'; at most 253 octets;
 *   the last label not all digits) is NXDOMAIN without a query.
 *   Exchangers: at most SL_DNS_MAX_MX (the lowest preferences); "." in a
 *   list of several, repeated names and invalid names are dropped.
 *   Addresses: at most SL_DNS_MAX_ADDRS per host, IPv4 first, then IPv6,
 *   then ordered by the resolv.conf sortlist.
 *
 * Names: mail domains and exchangers are absolute (RFC 5321 §2.3.5), so
 * they are asked as given, without the search list (ares_query: the
 * ARES_FLAG_NOSEARCH behaviour; the channel has ARES_FLAG_NOALIASES).
 * Only a single-label name given to sl_dns_host() ("mailhub" as a
 * Gateway) is completed with the resolv.conf search list (ares_search).
 * An address literal ("192.0.2.1", "[2001:db8::1]", "[IPv6:2001:db8::1]")
 * given to either call answers OK with that address and no query.
 *
 * Cache (per struct sl_dns): keyed by kind (MX, host, searched host) and
 * lower-cased name.  A result is kept until expires_ms (loop time, uv_now):
 * positive answers for the smallest TTL among the records used (the MX
 * records and every exchanger's A/AAAA answers, negative ones included),
 * raised to min_ttl, at most 7 days; NXDOMAIN and NODATA for
 * min(SOA TTL, SOA MINIMUM) of the answer (RFC 2308 §5), 60 s without an
 * SOA, raised to min_ttl, at most 3600 s; TEMPFAIL for 5 s (RFC 2308 §7.1),
 * so a dead server is not asked again by every queued message.  A lookup
 * of a name already being looked up joins it.  At most 100,000 results or
 * 64 MiB are kept; past that the least recently used go.
 *
 * Resolver configuration: Resolv_Conf (a resolv.conf-style file; NULL for
 * /etc/resolv.conf).  Its `nameserver` lines also accept `ip:port` and
 * `[ipv6]:port`, so tests can point at dnsmasq on 127.0.0.1:5353.  The
 * file alone configures c-ares (neither the environment nor
 * /etc/resolv.conf is read when another file is named).
 *
 * Threads: a struct sl_dns and every result it hands out belong to the loop
 * thread that created it.  Parses untrusted input: DNS answers (through
 * c-ares' parsers; names and counts bounded here) and the resolv.conf file.
 */
#ifndef SL_STAGES_DELIVER_DNS_H
#define SL_STAGES_DELIVER_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* enum sl_dns_status, SL_DNS_MAX_MX (32) and SL_DNS_MAX_ADDRS (16) live here: */
#include "proto/dns.h"

struct sl_dns_opts {
	const char *resolv_conf; /* NULL: /etc/resolv.conf */
	uint32_t min_ttl;        /* Min_DNS_TTL: answers are kept at least this long */
	unsigned timeout_ms;     /* per try; 0: resolv.conf's options timeout, else 2000 */
	unsigned tries;          /* 0: resolv.conf's options attempts, else 3 */
};

struct sl_dns_host {
	char *name;                     /* exchanger or host name (owned by the result) */
	uint16_t pref;                  /* MX preference (0 for implicit MX and hosts) */
	enum sl_dns_status status;      /* of its address lookup */
	struct sockaddr_storage *addrs; /* owned array, IPv4 then IPv6 (port unset) */
	size_t addr_cnt;
};

/* A result: immutable, reference-counted, owned by the loop thread. */
struct sl_dns_result {
	unsigned refs;
	enum sl_dns_status status; /* of the domain as a whole */
	/* For logs and bounces: "NXDOMAIN for example.invalid"; "" when OK. */
	char why[160];
	bool is_implicit_mx;       /* no MX: the domain is its own exchanger */
	bool is_partial;           /* sl_dns_mx_early's first answer: only the exchangers
				      resolved so far (those with addresses) */
	struct sl_dns_host *hosts; /* owned array, in preference order */
	size_t host_cnt;
	/* Loop time (uv_now) after which it is stale; UINT64_MAX for an address literal. */
	uint64_t expires_ms;
};

struct sl_dns;

/*
 * A resolver on `loop` (the calling thread's).  Reads the resolv.conf file
 * synchronously (call it when the thread starts, not per message).  NULL on
 * error with a reason in `why`: an unreadable resolv_conf ("path: No such
 * file or directory"), one without a usable nameserver ("path:line: ...").
 */
struct sl_dns *sl_dns_new(uv_loop_t *loop, const struct sl_dns_opts *opts, char *why,
			  size_t why_len);

/* The file a Resolv_Conf value names: itself, or /etc/resolv.conf for NULL or "". */
const char *sl_dns_conf_path(const char *resolv_conf);

/*
 * Read and parse the resolver configuration `resolv_conf` names
 * (sl_dns_conf_path) into *conf.  Blocking file I/O: the main thread
 * (configuration checks), a thread's start, or a worker off the loop.
 * Returns 0, or -1 with the reason sl_dns_new() would give.
 */
int sl_dns_conf_load(const char *resolv_conf, struct sl_dns_conf *conf, char *why, size_t why_len);

/*
 * sl_dns_new() with the configuration already read (sl_dns_conf_load): no
 * file I/O, so a loop may call it.  opts->resolv_conf only names the file in
 * messages.  NULL with a reason when c-ares refuses the configuration.
 */
struct sl_dns *sl_dns_new_conf(uv_loop_t *loop, const struct sl_dns_opts *opts,
			       const struct sl_dns_conf *conf, char *why, size_t why_len);

/*
 * Cancel every pending lookup (their callbacks run with SL_DNS_TEMPFAIL,
 * after this call returns), close the handles and free; `done` runs once
 * everything is closed, after the last lookup callback.  A lookup asked
 * from one of those callbacks is answered TEMPFAIL too; asking after `done`
 * ran is a programming error (the struct is gone).
 */
void sl_dns_close(struct sl_dns *d, void (*done)(void *arg), void *arg);

/*
 * Close `d` once the lookups in flight have ended (a reload replaced it):
 * they complete normally, their callers get their answers, then `d` closes
 * as sl_dns_close() does and `done` runs.  New lookups asked of `d` are
 * answered TEMPFAIL.  sl_dns_close(d, NULL, NULL) afterwards (a stop)
 * cancels what is left at once; `done` still runs, once.  c-ares' own
 * timeouts bound how long a retiring resolver lives.
 */
void sl_dns_retire(struct sl_dns *d, void (*done)(void *arg), void *arg);

/*
 * Look up the exchangers of `domain` (and their addresses).  `cb` runs on
 * the loop thread, never from inside this call, with a result the callee
 * owns a reference to (drop it with sl_dns_result_put).
 */
void sl_dns_mx(struct sl_dns *d, const char *domain, void (*cb)(void *arg, struct sl_dns_result *r),
	       void *arg);

/*
 * sl_dns_mx, and also, as soon as the first exchanger has addresses while
 * others are still being resolved, `early` once with a partial result
 * (is_partial: the exchangers with addresses so far, status OK).  `cb`
 * always follows with the complete result.  No early call when the answer
 * is complete at once (cached, or every exchanger answered together).
 */
void sl_dns_mx_early(struct sl_dns *d, const char *domain,
		     void (*early)(void *arg, struct sl_dns_result *r),
		     void (*cb)(void *arg, struct sl_dns_result *r), void *arg);

/* Look up the addresses of one host; the result has one host entry. */
void sl_dns_host(struct sl_dns *d, const char *host, void (*cb)(void *arg, struct sl_dns_result *r),
		 void *arg);

/*
 * Drop the cached results that have expired (dns_expire_interval): the
 * cache keeps only live answers.  Lookups in flight are left alone.
 * Returns how many were dropped.
 */
size_t sl_dns_expire(struct sl_dns *d);

void sl_dns_result_get(struct sl_dns_result *r);
void sl_dns_result_put(struct sl_dns_result *r);

/*
 * Queries sent to a server since start (for the console's summary): one per
 * question handed to c-ares (MX, A, AAAA); its retries are not counted, and
 * answers from the cache or joined lookups cost none.
 */
uint64_t sl_dns_query_cnt(const struct sl_dns *d);

#endif /* SL_STAGES_DELIVER_DNS_H */
