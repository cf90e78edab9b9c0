/*
 * proto/dns.h - pure DNS helpers for delivery: resolv.conf, answers, MX order, routes.
 *
 * Everything the delivery stage's resolver (stages/deliver_dns.c) and the
 * scheduler decide about DNS without doing I/O: the resolv.conf subset
 * Momentum's Resolv_Conf honours, the TTL and status policies, the walk of a
 * raw DNS message for its TTLs, MX ordering (preference, shuffled ties, cap,
 * null MX, implicit MX), address ordering (sortlist), and the values of the
 * Routes and Gateway options.
 *
 * Threads: any; no globals, no I/O, no clock (callers pass what they need,
 * randomness included, so tests are deterministic).  Parses untrusted input:
 * DNS messages and names from answers (every length bounded and checked) and
 * configuration text (resolv.conf, Routes, Gateway).  Ownership: callers
 * own every buffer; nothing here allocates.
 */
#ifndef SL_PROTO_DNS_H
#define SL_PROTO_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SL_DNS_MAX_MX    32  /* exchangers kept per domain (lowest preferences) */
#define SL_DNS_MAX_ADDRS 16  /* addresses kept per host */
#define SL_DNS_NAME_MAX  253 /* a name in text form: 255 octets on the wire (RFC 1035 §2.3.4) */

/* TTL policy, in seconds (see sl_dns_ttl_positive / sl_dns_ttl_negative). */
#define SL_DNS_TTL_MAX         604800 /* positive answers: at most 7 days (RFC 8767 §4) */
#define SL_DNS_NEG_TTL_DEFAULT 60     /* negative answer without an SOA */
#define SL_DNS_NEG_TTL_MAX     3600   /* negative answers: at most an hour */
#define SL_DNS_TEMPFAIL_TTL    5      /* failures: held briefly (RFC 2308 §7.1 allows 5 min) */

/*
 * The outcome of a lookup.  For one query (MX, A or AAAA) and for one host
 * the first four apply; for a domain as a whole see sl_dns_domain_status().
 */
enum sl_dns_status {
	SL_DNS_OK,
	SL_DNS_NXDOMAIN, /* the name does not exist: permanent */
	SL_DNS_NULL_MX,  /* RFC 7505: the domain accepts no mail: permanent */
	SL_DNS_NODATA,   /* the name has no records of the type asked: permanent.
			    For a domain: no exchanger has an address */
	SL_DNS_TEMPFAIL, /* timeout, SERVFAIL, refused, network down: try again later */
};

/* "OK", "NXDOMAIN", "NULL_MX", "NODATA", "TEMPFAIL" ("?" when out of range). */
const char *sl_dns_status_name(enum sl_dns_status s);

/* ---------------------------------------------------------------- names */

/*
 * Normalise a host or domain name for lookups and cache keys: one trailing
 * dot dropped, ASCII lower-cased into `out` (out_len >= SL_DNS_NAME_MAX + 1).
 * Accepted: labels of 1..63 letters, digits, '-' and '_', at most
 * SL_DNS_NAME_MAX octets, and a last label that is not all digits (so an
 * IPv4 address is not a name, RFC 3696 §2).  Returns the length, or -1
 * (out is then "").
 */
int sl_dns_name_norm(const char *name, char *out, size_t out_len);

/*
 * An address literal: "1.2.3.4", "::1", "[::1]", "[1.2.3.4]" or the
 * RFC 5321 §4.1.3 form "[IPv6:::1]".  Fills `ss` (port 0).  Returns 0, or
 * -1 when `s` is none of those.
 */
int sl_dns_addr_parse(const char *s, struct sockaddr_storage *ss);

/* ---------------------------------------------------------------- resolv.conf */

#define SL_DNS_CONF_MAX_LEN     65536 /* bytes of resolv.conf read */
#define SL_DNS_CONF_MAX_SERVERS 8
#define SL_DNS_CONF_MAX_SEARCH  6  /* as glibc's MAXDNSRCH */
#define SL_DNS_CONF_MAX_SORT    10 /* as glibc's MAXRESOLVSORT */
#define SL_DNS_CONF_SERVER_LEN  56 /* "[1111:...:8888]:65535," */

/* One sortlist entry: an address matches when (addr & mask) == this.addr. */
struct sl_dns_sortpat {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network, masked; IPv4 in the first 4 bytes */
	uint8_t mask[16];
};

struct sl_dns_conf {
	/* "127.0.0.1:53,[::1]:5353": what ares_set_servers_ports_csv() takes */
	char servers_csv[SL_DNS_CONF_MAX_SERVERS * SL_DNS_CONF_SERVER_LEN];
	size_t server_cnt;
	char search[SL_DNS_CONF_MAX_SEARCH][SL_DNS_NAME_MAX + 1]; /* `search` or `domain` */
	size_t search_cnt;
	int ndots;      /* options ndots:N (0..15); -1 when not given */
	int timeout_s;  /* options timeout:N or retrans:N (1..30); -1 when not given */
	int attempts;   /* options attempts:N or retry:N (1..5); -1 when not given */
	bool is_rotate; /* options rotate */
	struct sl_dns_sortpat sort[SL_DNS_CONF_MAX_SORT];
	size_t sort_cnt;
	char warning[192]; /* "file:line: ..." of the first line skipped as unusable, or "" */
};

/*
 * Parse resolv.conf text (`len` bytes, at most SL_DNS_CONF_MAX_LEN; need
 * not be NUL-terminated) in the subset Momentum honours (resolv.conf(5)):
 *   nameserver ADDR      IPv4 or IPv6; sluice also takes ADDR:PORT and
 *                        [IPv6]:PORT.  More than SL_DNS_CONF_MAX_SERVERS
 *                        are ignored, as glibc ignores more than three.
 *   domain NAME          the search list is NAME (the last domain/search wins)
 *   search NAME...       up to SL_DNS_CONF_MAX_SEARCH names
 *   sortlist ADDR[/MASK] up to SL_DNS_CONF_MAX_SORT; MASK dotted or a prefix
 *                        length; no mask: the IPv4 class mask (or /128)
 *   options ndots:N timeout:N attempts:N rotate, and Momentum's aliases
 *                        retrans:N (timeout) and retry:N (attempts);
 *                        values are clamped as glibc does
 * Comments (# or ; first on a line), `lookup` and unknown lines and options
 * are ignored.  An unusable nameserver line (bad address or port, an IPv6
 * zone id) is skipped and reported in `c->warning`; a file without any
 * usable nameserver is an error.  `file` names the file in messages.
 * Returns 0, or -1 with "file:line: reason" (or "file: reason") in `why`.
 */
int sl_dns_conf_parse(const char *text, size_t len, const char *file, struct sl_dns_conf *c,
		      char *why, size_t why_len);

/* ---------------------------------------------------------------- answers */

/* What sl_dns_msg_scan() learns from a DNS message. */
struct sl_dns_msg_info {
	unsigned rcode;   /* RCODE of the header */
	unsigned an_cnt;  /* records in the answer section */
	uint32_t an_ttl;  /* smallest TTL in the answer section; UINT32_MAX if none */
	uint32_t neg_ttl; /* min(SOA TTL, SOA MINIMUM) from the authority section
			     (RFC 2308 §5); UINT32_MAX if there is no SOA */
};

/*
 * Walk a DNS message (`len` bytes) for its TTLs.  A TTL with the top bit
 * set counts as 0 (RFC 2181 §8).  Returns 0, or -1 when the message is
 * truncated or malformed (info is then unusable).
 */
int sl_dns_msg_scan(const unsigned char *msg, size_t len, struct sl_dns_msg_info *info);

/* Seconds a positive answer is kept: `ttl` raised to `min_ttl`, at most SL_DNS_TTL_MAX. */
uint32_t sl_dns_ttl_positive(uint32_t ttl, uint32_t min_ttl);

/*
 * Seconds a negative answer (NXDOMAIN, NODATA) is kept: the SOA-derived
 * `neg_ttl` (UINT32_MAX: none, SL_DNS_NEG_TTL_DEFAULT), raised to `min_ttl`,
 * at most SL_DNS_NEG_TTL_MAX.
 */
uint32_t sl_dns_ttl_negative(uint32_t neg_ttl, uint32_t min_ttl);

/* ---------------------------------------------------------------- MX */

/* One MX record (or the implicit one). */
struct sl_dns_rr_mx {
	uint16_t pref;
	char name[SL_DNS_NAME_MAX + 1]; /* as received; normalised by sl_dns_mx_plan() */
};

enum sl_dns_mx_plan {
	SL_DNS_MX_LIST,     /* resolve rr[0..cnt) in that order */
	SL_DNS_MX_IMPLICIT, /* no MX records: rr[0] is the domain itself, pref 0 (RFC 5321 §5.1) */
	SL_DNS_MX_NULL,     /* a null MX (RFC 7505): the domain takes no mail */
	SL_DNS_MX_UNUSABLE, /* MX records, but not one names a usable host */
	SL_DNS_MX_FAIL,     /* the MX query failed (NXDOMAIN, TEMPFAIL): nothing to resolve */
};

/*
 * Decide what to resolve after an MX query for `domain` answered `ans`
 * (SL_DNS_OK with rr[0..*cnt), NODATA, NXDOMAIN or TEMPFAIL).  rr has room
 * for at least one entry.
 *  - NODATA, or OK without records: IMPLICIT, rr[0] = { 0, domain }.
 *  - exactly one record, preference 0, exchange "" or ".": NULL.
 *  - otherwise names are normalised (sl_dns_name_norm); invalid ones, "."
 *    (a null MX mixed with others) and repeats of a name (the lowest
 *    preference stays) are dropped; the rest are sorted by preference, each
 *    run of equal preferences shuffled with `rand_fn` (Fisher-Yates), and
 *    cut to `max`: LIST, or UNUSABLE when nothing is left.
 * *cnt is updated.
 */
enum sl_dns_mx_plan sl_dns_mx_plan(const char *domain, enum sl_dns_status ans,
				   struct sl_dns_rr_mx *rr, size_t *cnt, size_t max,
				   uint32_t (*rand_fn)(void *arg), void *rand_arg);

/*
 * A host's status from its A and AAAA answers: OK when it has addresses;
 * else TEMPFAIL when either failed transiently (a transient failure may
 * hide addresses, so it never becomes a bounce); else NXDOMAIN when either
 * says the name does not exist; else NODATA.
 */
enum sl_dns_status sl_dns_host_status(enum sl_dns_status a, enum sl_dns_status aaaa,
				      size_t addr_cnt);

/*
 * A domain's status from its exchangers' statuses (preference order).
 * Implicit MX: the single host's status (NXDOMAIN stays NXDOMAIN).
 * Otherwise OK if any exchanger is OK; else TEMPFAIL if any failed
 * transiently; else NODATA: every exchanger is permanently without an
 * address, which RFC 5321 §5.1 says is an error, and sluice (like Postfix)
 * treats as permanent.
 */
enum sl_dns_status sl_dns_domain_status(const enum sl_dns_status *hosts, size_t cnt,
					bool is_implicit);

/* ---------------------------------------------------------------- addresses */

/*
 * Merge a host's IPv4 and IPv6 addresses into `out` (room for `max`):
 * IPv4 first (outbound mail reputation is mostly built on IPv4; the
 * scheduler filters by the binding's family anyway), then IPv6, each in
 * answer order.  When both do not fit, each family keeps at least half of
 * `max` (or all it has).  Returns the count.
 */
size_t sl_dns_addrs_merge(const struct sockaddr_storage *v4, size_t v4_cnt,
			  const struct sockaddr_storage *v6, size_t v6_cnt,
			  struct sockaddr_storage *out, size_t max);

/*
 * Order addresses by the first sortlist pattern each matches (stable;
 * those matching none last), as resolv.conf(5) sortlist does.
 */
void sl_dns_addrs_sort(struct sockaddr_storage *a, size_t cnt, const struct sl_dns_sortpat *pats,
		       size_t pat_cnt);

/* ---------------------------------------------------------------- Routes, Gateway */

enum sl_dns_route_lookup {
	SL_DNS_ROUTE_A,  /* the host is the mail server: look up its A/AAAA (sl_dns_host) */
	SL_DNS_ROUTE_MX, /* type=mx: the host is a domain: use its exchangers (sl_dns_mx) */
};

struct sl_dns_route {
	char host[SL_DNS_NAME_MAX + 1];  /* normalised name, or address text without
					    brackets; "" for __mx__ */
	bool is_addr;                    /* host is an address literal: nothing to look up */
	bool is_mx_of_domain;            /* "__mx__": the destination domain's own exchangers
					    (with their DNS preferences) */
	enum sl_dns_route_lookup lookup; /* type=a (the default) or type=mx */
	uint16_t port;                   /* 0: Remote_SMTP_Port */
	uint16_t pref;                   /* pref=P, else the item's position in the list */
	bool has_pref;                   /* pref= was given */
	uint32_t ttl;                    /* ttl=T seconds: how long the resolved entry is kept */
	bool has_ttl;                    /* false: the DNS TTLs */
};

#define SL_DNS_ROUTE_MAX_LEN 1024 /* one Routes or Gateway value */

/*
 * Parse one Routes item at position `pos` (0-based): "__mx__", a host name,
 * an IPv4 address, "[IPv6]", or "smtp://HOST[:PORT][/][?pref=P&ttl=T&port=O&type=mx|a]"
 * (HOST a name, IPv4 or [IPv6]; parameters in any order, each at most
 * once; P and O 0..65535 (O not 0), T 0..2147483647 seconds).  Returns 0,
 * or -1 with a one-line reason in `why` naming the item.
 */
int sl_dns_route_parse(const char *item, unsigned pos, struct sl_dns_route *r, char *why,
		       size_t why_len);

/* Parse a Routes list of `cnt` items into out[0..cnt).  As above; the first error wins. */
int sl_dns_routes_parse(const char *const *items, size_t cnt, struct sl_dns_route *out, char *why,
			size_t why_len);

/*
 * Parse a Gateway value: "host", "host:25", "1.2.3.4", "1.2.3.4:25",
 * "[IPv6]", "[IPv6]:25" or a bare IPv6 address.  The result looks up A/AAAA
 * (lookup SL_DNS_ROUTE_A, pref 0).  Returns 0, or -1 with a reason in `why`.
 */
int sl_dns_gateway_parse(const char *value, struct sl_dns_route *r, char *why, size_t why_len);

#endif /* SL_PROTO_DNS_H */
