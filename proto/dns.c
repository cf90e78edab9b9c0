/*
 * proto/dns.c - pure DNS helpers for delivery: resolv.conf, answers, MX order, routes.
 *
 * The decisions stages/deliver_dns.c and the scheduler make about DNS,
 * kept apart from c-ares and libuv so they can be tested one row at a
 * time: parsing resolv.conf and the Routes/Gateway values, walking a DNS
 * message for its TTLs, the TTL and status policies, MX and address order.
 *
 * Threads: any (no globals, no I/O, no clock).  Parses untrusted input:
 * DNS messages and names (every read bounds-checked against the message
 * length; names at most SL_DNS_NAME_MAX) and configuration text (bounded by
 * SL_DNS_CONF_MAX_LEN and SL_DNS_ROUTE_MAX_LEN).  Owns nothing: callers
 * pass every buffer.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/assert.h"
#include "proto/dns.h"

const char *
sl_dns_status_name(enum sl_dns_status s)
{
	switch (s) {
	case SL_DNS_OK:
		return "OK";
	case SL_DNS_NXDOMAIN:
		return "NXDOMAIN";
	case SL_DNS_NULL_MX:
		return "NULL_MX";
	case SL_DNS_NODATA:
		return "NODATA";
	case SL_DNS_TEMPFAIL:
		return "TEMPFAIL";
	}
	return "?";
}

/* ---------------------------------------------------------------- names */

static bool
dns_is_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Lower-case `name` (len bytes, no trailing dot) into out; its length or -1. */
static int
dns_name_copy(const char *name, size_t len, char *out)
{
	size_t label = 0;
	bool is_numeric = true;

	if (len == 0 || len > SL_DNS_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
			is_numeric = true;
			out[i] = '.';
			continue;
		}
		if (!dns_is_label_char(c) || ++label > 63)
			return -1;
		if (c < '0' || c > '9')
			is_numeric = false;
		out[i] = (char)((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
	}
	/* An empty last label ("a..") was caught above; an all-digit one is an address. */
	if (label == 0 || is_numeric)
		return -1;
	out[len] = '\0';
	return (int)len;
}

int
sl_dns_name_norm(const char *name, char *out, size_t out_len)
{
	size_t len = strlen(name);
	int rc;

	SL_ASSERT(out_len >= SL_DNS_NAME_MAX + 1);
	if (len > 1 && name[len - 1] == '.')
		len--;
	rc = dns_name_copy(name, len, out);
	if (rc < 0)
		out[0] = '\0';
	return rc;
}

int
sl_dns_addr_parse(const char *s, struct sockaddr_storage *ss)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(s);
	bool is_v6_tagged = false;

	memset(ss, 0, sizeof(*ss));
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (len >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
			s += 5;
			len -= 5;
			is_v6_tagged = true;
		}
	}
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!is_v6_tagged && inet_pton(AF_INET, buf, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return 0;
	}
	return -1;
}

/* ---------------------------------------------------------------- numbers */

/* A decimal number of 1..10 digits, no sign, at most `max`.  0 or -1. */
static int
dns_parse_uint(const char *s, size_t len, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* ---------------------------------------------------------------- resolv.conf */

/* One whitespace-separated token of a line. */
struct dns_tok {
	const char *p;
	size_t len;
};

/* Next token of [*pos, end); false at the end of the line or at a comment. */
static bool
dns_next_tok(const char **pos, const char *end, struct dns_tok *t)
{
	const char *p = *pos;

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v'))
		p++;
	if (p == end || *p == '#' || *p == ';') {
		*pos = end;
		return false;
	}
	t->p = p;
	while (p < end && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\f' && *p != '\v')
		p++;
	t->len = (size_t)(p - t->p);
	*pos = p;
	return true;
}

static bool
dns_tok_is(const struct dns_tok *t, const char *word)
{
	return t->len == strlen(word) && memcmp(t->p, word, t->len) == 0;
}

/*
 * A nameserver token: ADDR, ADDR:PORT (IPv4), [IPv6] or [IPv6]:PORT, or a
 * bare IPv6 address.  Appends "ip:port" or "[ip]:port" to the CSV.
 */
static int
dns_conf_server(struct sl_dns_conf *c, const struct dns_tok *t, char *why, size_t why_len)
{
	char addr[INET6_ADDRSTRLEN + 8], text[INET6_ADDRSTRLEN];
	const char *port_p = NULL;
	size_t addr_len, port_len = 0, used;
	uint32_t port = 53;
	unsigned char bin[16];
	int family = AF_INET;

	if (t->len > 0 && t->p[0] == '[') {
		const char *close = memchr(t->p, ']', t->len);

		if (close == NULL) {
			snprintf(why, why_len, "\"%.*s\": missing ']'", (int)t->len, t->p);
			return -1;
		}
		addr_len = (size_t)(close - t->p) - 1;
		if (addr_len >= sizeof(addr))
			goto bad_addr;
		memcpy(addr, t->p + 1, addr_len);
		if ((size_t)(close - t->p) + 1 < t->len) {
			if (close[1] != ':')
				goto bad_addr;
			port_p = close + 2;
			port_len = t->len - (size_t)(port_p - t->p);
		}
		family = AF_INET6;
	} else {
		const char *colon = memchr(t->p, ':', t->len);

		/* One colon: IPv4:port.  More: a bare IPv6 address. */
		if (colon != NULL &&
		    memchr(colon + 1, ':', t->len - (size_t)(colon + 1 - t->p)) == NULL) {
			addr_len = (size_t)(colon - t->p);
			port_p = colon + 1;
			port_len = t->len - addr_len - 1;
		} else {
			addr_len = t->len;
			if (colon != NULL)
				family = AF_INET6;
		}
		if (addr_len >= sizeof(addr))
			goto bad_addr;
		memcpy(addr, t->p, addr_len);
	}
	addr[addr_len] = '\0';
	if (memchr(addr, '%', addr_len) != NULL) {
		snprintf(why, why_len, "\"%.*s\": IPv6 zone ids are not supported", (int)t->len,
			 t->p);
		return -1;
	}
	if (inet_pton(family, addr, bin) != 1)
		goto bad_addr;
	if (port_p != NULL && (dns_parse_uint(port_p, port_len, 65535, &port) < 0 || port == 0)) {
		snprintf(why, why_len, "\"%.*s\": port must be 1..65535", (int)t->len, t->p);
		return -1;
	}
	if (c->server_cnt == SL_DNS_CONF_MAX_SERVERS)
		return 0; /* glibc ignores nameservers past its MAXNS too */
	inet_ntop(family, bin, text, sizeof(text));
	used = strlen(c->servers_csv);
	snprintf(c->servers_csv + used, sizeof(c->servers_csv) - used,
		 family == AF_INET6 ? "%s[%s]:%u" : "%s%s:%u", used > 0 ? "," : "", text,
		 (unsigned)port);
	c->server_cnt++;
	return 0;
bad_addr:
	snprintf(why, why_len, "\"%.*s\": not an IPv4 or IPv6 address", (int)t->len, t->p);
	return -1;
}

static void
dns_mask_bits(uint8_t *mask, unsigned bits, size_t len)
{
	memset(mask, 0, 16);
	for (size_t i = 0; i < len && bits > 0; i++) {
		unsigned b = bits >= 8 ? 8 : bits;

		mask[i] = (uint8_t)(0xff00u >> b);
		bits -= b;
	}
}

/* A sortlist token: ADDR, ADDR/NETMASK, ADDR/PREFIXLEN, IPv6[/PREFIXLEN]. */
static int
dns_conf_sortpat(const struct dns_tok *t, struct sl_dns_sortpat *pat)
{
	char addr[INET6_ADDRSTRLEN + 1], mask[INET6_ADDRSTRLEN + 1];
	const char *slash = memchr(t->p, '/', t->len);
	size_t addr_len = slash != NULL ? (size_t)(slash - t->p) : t->len;
	size_t mask_len = slash != NULL ? t->len - addr_len - 1 : 0;
	uint32_t bits;

	if (addr_len >= sizeof(addr) || mask_len >= sizeof(mask))
		return -1;
	memcpy(addr, t->p, addr_len);
	addr[addr_len] = '\0';
	if (slash != NULL)
		memcpy(mask, slash + 1, mask_len);
	mask[mask_len] = '\0';
	memset(pat, 0, sizeof(*pat));
	if (inet_pton(AF_INET, addr, pat->addr) == 1) {
		pat->family = AF_INET;
		if (slash == NULL) {
			/* The classful mask resolv.conf(5) implies. */
			bits = pat->addr[0] < 128 ? 8 : pat->addr[0] < 192 ? 16 : 24;
			dns_mask_bits(pat->mask, bits, 4);
		} else if (inet_pton(AF_INET, mask, pat->mask) != 1) {
			if (dns_parse_uint(mask, mask_len, 32, &bits) < 0)
				return -1;
			dns_mask_bits(pat->mask, bits, 4);
		}
	} else if (inet_pton(AF_INET6, addr, pat->addr) == 1) {
		pat->family = AF_INET6;
		bits = 128;
		if (slash != NULL && dns_parse_uint(mask, mask_len, 128, &bits) < 0)
			return -1;
		dns_mask_bits(pat->mask, bits, 16);
	} else {
		return -1;
	}
	for (size_t i = 0; i < 16; i++)
		pat->addr[i] &= pat->mask[i];
	return 0;
}

/* "name:N" -> N clamped to max (glibc clamps too); false if not that option. */
static bool
dns_conf_opt_num(const struct dns_tok *t, const char *name, uint32_t max, int *out)
{
	size_t n = strlen(name);
	uint32_t v;

	if (t->len <= n || memcmp(t->p, name, n) != 0 || t->p[n] != ':')
		return false;
	if (dns_parse_uint(t->p + n + 1, t->len - n - 1, UINT32_MAX, &v) == 0)
		*out = (int)(v > max ? max : v);
	return true;
}

static void
dns_conf_options(struct sl_dns_conf *c, const char **pos, const char *end)
{
	struct dns_tok t;

	while (dns_next_tok(pos, end, &t)) {
		if (dns_conf_opt_num(&t, "ndots", 15, &c->ndots))
			continue;
		if (dns_conf_opt_num(&t, "timeout", 30, &c->timeout_s) ||
		    dns_conf_opt_num(&t, "retrans", 30, &c->timeout_s))
			continue;
		if (dns_conf_opt_num(&t, "attempts", 5, &c->attempts) ||
		    dns_conf_opt_num(&t, "retry", 5, &c->attempts))
			continue;
		if (dns_tok_is(&t, "rotate"))
			c->is_rotate = true;
	}
	/* timeout:0 and attempts:0 mean the minimum, as in glibc. */
	if (c->timeout_s == 0)
		c->timeout_s = 1;
	if (c->attempts == 0)
		c->attempts = 1;
}

/* Replace the search list with the names in [*pos, end); false if one is invalid. */
static bool
dns_conf_search(struct sl_dns_conf *c, const char **pos, const char *end, bool is_domain)
{
	struct dns_tok t;
	char name[SL_DNS_NAME_MAX + 2];
	bool is_ok = true;

	c->search_cnt = 0;
	while (dns_next_tok(pos, end, &t)) {
		if (t.len >= sizeof(name) || c->search_cnt == SL_DNS_CONF_MAX_SEARCH) {
			is_ok = false;
			continue;
		}
		memcpy(name, t.p, t.len);
		name[t.len] = '\0';
		if (sl_dns_name_norm(name, c->search[c->search_cnt], sizeof(c->search[0])) < 0) {
			is_ok = false;
			continue;
		}
		c->search_cnt++;
		if (is_domain)
			break; /* `domain` takes one name */
	}
	return is_ok;
}

int
sl_dns_conf_parse(const char *text, size_t len, const char *file, struct sl_dns_conf *c, char *why,
		  size_t why_len)
{
	const char *p = text, *end = text + len;
	unsigned line = 0, bad_ns_line = 0;
	char bad_ns[160] = "";
	int rc = -1;

	memset(c, 0, sizeof(*c));
	c->ndots = c->timeout_s = c->attempts = -1;
	if (len > SL_DNS_CONF_MAX_LEN) {
		snprintf(why, why_len, "%s: larger than %u bytes", file, SL_DNS_CONF_MAX_LEN);
		goto out;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *lend = eol != NULL ? eol : end;
		struct dns_tok kw, t;
		char reason[160] = "";

		line++;
		if (!dns_next_tok(&p, lend, &kw))
			goto next;
		if (dns_tok_is(&kw, "nameserver")) {
			if (!dns_next_tok(&p, lend, &t))
				snprintf(reason, sizeof(reason), "nameserver without an address");
			else
				dns_conf_server(c, &t, reason, sizeof(reason));
			if (reason[0] != '\0' && bad_ns_line == 0) {
				bad_ns_line = line;
				snprintf(bad_ns, sizeof(bad_ns), "%s", reason);
			}
		} else if (dns_tok_is(&kw, "domain") || dns_tok_is(&kw, "search")) {
			if (!dns_conf_search(c, &p, lend, dns_tok_is(&kw, "domain")))
				snprintf(reason, sizeof(reason), "%.*s: invalid or too many names",
					 (int)kw.len, kw.p);
		} else if (dns_tok_is(&kw, "sortlist")) {
			c->sort_cnt = 0;
			while (dns_next_tok(&p, lend, &t)) {
				if (c->sort_cnt < SL_DNS_CONF_MAX_SORT &&
				    dns_conf_sortpat(&t, &c->sort[c->sort_cnt]) == 0)
					c->sort_cnt++;
				else
					snprintf(reason, sizeof(reason),
						 "sortlist \"%.*s\": not ADDR[/MASK] or too many",
						 (int)(t.len > 64 ? 64 : t.len), t.p);
			}
		} else if (dns_tok_is(&kw, "options")) {
			dns_conf_options(c, &p, lend);
		}
		/* `lookup` (Momentum's DNS/hosts order) and anything else: ignored. */
		if (reason[0] != '\0' && c->warning[0] == '\0')
			snprintf(c->warning, sizeof(c->warning), "%s:%u: %s (ignored)", file, line,
				 reason);
next:
		p = eol != NULL ? eol + 1 : end;
	}
	if (c->server_cnt == 0) {
		if (bad_ns_line != 0)
			snprintf(why, why_len, "%s:%u: no usable nameserver: %s", file, bad_ns_line,
				 bad_ns);
		else
			snprintf(why, why_len, "%s:%u: no nameserver line", file, line);
		goto out;
	}
	rc = 0;
out:
	return rc;
}

/* ---------------------------------------------------------------- answers */

static uint16_t
dns_get16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
dns_get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* RFC 2181 §8: a TTL with the most significant bit set is treated as zero. */
static uint32_t
dns_ttl_value(uint32_t ttl)
{
	return (ttl & 0x80000000u) ? 0 : ttl;
}

/* Skip a (possibly compressed) name at msg[*pos]; -1 if it runs off the end. */
static int
dns_skip_name(const unsigned char *msg, size_t len, size_t *pos)
{
	size_t p = *pos;

	for (unsigned labels = 0; labels < 128; labels++) {
		unsigned c;

		if (p >= len)
			return -1;
		c = msg[p];
		if ((c & 0xc0) == 0xc0) {
			if (p + 2 > len)
				return -1;
			*pos = p + 2;
			return 0;
		}
		if (c & 0xc0)
			return -1; /* extended label types (RFC 6891 §5) */
		if (c == 0) {
			*pos = p + 1;
			return 0;
		}
		p += 1 + c;
	}
	return -1;
}

int
sl_dns_msg_scan(const unsigned char *msg, size_t len, struct sl_dns_msg_info *info)
{
	unsigned qd, an, ns;
	size_t pos = 12;

	info->rcode = 0;
	info->an_cnt = 0;
	info->an_ttl = UINT32_MAX;
	info->neg_ttl = UINT32_MAX;
	if (len < 12)
		return -1;
	info->rcode = msg[3] & 0x0f;
	qd = dns_get16(msg + 4);
	an = dns_get16(msg + 6);
	ns = dns_get16(msg + 8);
	info->an_cnt = an;
	for (unsigned i = 0; i < qd; i++) {
		if (dns_skip_name(msg, len, &pos) < 0 || pos + 4 > len)
			return -1;
		pos += 4;
	}
	for (unsigned i = 0; i < an + ns; i++) {
		uint16_t type, rdlen;
		uint32_t ttl;
		size_t rdata;

		if (dns_skip_name(msg, len, &pos) < 0 || pos + 10 > len)
			return -1;
		type = dns_get16(msg + pos);
		ttl = dns_ttl_value(dns_get32(msg + pos + 4));
		rdlen = dns_get16(msg + pos + 8);
		rdata = pos + 10;
		if (rdata + rdlen > len)
			return -1;
		if (i < an) {
			if (ttl < info->an_ttl)
				info->an_ttl = ttl;
		} else if (type == 6 /* SOA */) {
			size_t p = rdata;
			uint32_t minimum;

			/* MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM. */
			for (int name = 0; name < 2; name++)
				if (dns_skip_name(msg, rdata + rdlen, &p) < 0)
					return -1;
			if (p + 20 > rdata + rdlen)
				return -1;
			minimum = dns_ttl_value(dns_get32(msg + p + 16));
			if (minimum < ttl)
				ttl = minimum;
			if (ttl < info->neg_ttl)
				info->neg_ttl = ttl;
		}
		pos = rdata + rdlen;
	}
	return 0;
}

uint32_t
sl_dns_ttl_positive(uint32_t ttl, uint32_t min_ttl)
{
	if (ttl < min_ttl)
		ttl = min_ttl;
	return ttl > SL_DNS_TTL_MAX ? SL_DNS_TTL_MAX : ttl;
}

uint32_t
sl_dns_ttl_negative(uint32_t neg_ttl, uint32_t min_ttl)
{
	uint32_t ttl = neg_ttl == UINT32_MAX ? SL_DNS_NEG_TTL_DEFAULT : neg_ttl;

	if (ttl < min_ttl)
		ttl = min_ttl;
	return ttl > SL_DNS_NEG_TTL_MAX ? SL_DNS_NEG_TTL_MAX : ttl;
}

/* ---------------------------------------------------------------- MX */

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct sl_dns_rr_mx *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name); /* deterministic before the shuffle */
}

enum sl_dns_mx_plan
sl_dns_mx_plan(const char *domain, enum sl_dns_status ans, struct sl_dns_rr_mx *rr, size_t *cnt,
	       size_t max, uint32_t (*rand_fn)(void *arg), void *rand_arg)
{
	size_t n = 0, kept;

	if (ans == SL_DNS_NXDOMAIN || ans == SL_DNS_TEMPFAIL || ans == SL_DNS_NULL_MX) {
		*cnt = 0;
		return SL_DNS_MX_FAIL;
	}
	if (ans == SL_DNS_NODATA || *cnt == 0) {
		/* RFC 5321 §5.1: no MX, the domain is its own exchanger. */
		rr[0].pref = 0;
		snprintf(rr[0].name, sizeof(rr[0].name), "%s", domain);
		*cnt = 1;
		return SL_DNS_MX_IMPLICIT;
	}
	if (*cnt == 1 && rr[0].pref == 0 && (rr[0].name[0] == '\0' || strcmp(rr[0].name, ".") == 0))
		return SL_DNS_MX_NULL; /* RFC 7505 §3 */
	for (size_t i = 0; i < *cnt; i++) {
		char name[SL_DNS_NAME_MAX + 1];

		if (sl_dns_name_norm(rr[i].name, name, sizeof(name)) < 0)
			continue; /* ".", an address, junk: not a host to connect to */
		rr[n].pref = rr[i].pref;
		memcpy(rr[n].name, name, strlen(name) + 1); /* name is a copy: rr[n] may be rr[i] */
		n++;
	}
	qsort(rr, n, sizeof(rr[0]), dns_mx_cmp);
	/* The same name twice: keep the first (lowest preference). */
	kept = 0;
	for (size_t i = 0; i < n; i++) {
		bool is_dup = false;

		for (size_t j = 0; j < kept && !is_dup; j++)
			is_dup = strcmp(rr[j].name, rr[i].name) == 0;
		if (is_dup)
			continue;
		if (kept != i)
			rr[kept] = rr[i];
		kept++;
	}
	n = kept;
	/* Shuffle each run of equal preferences so load spreads over them. */
	for (size_t start = 0; start < n;) {
		size_t end = start + 1;

		while (end < n && rr[end].pref == rr[start].pref)
			end++;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + rand_fn(rand_arg) % (i - start + 1);
			struct sl_dns_rr_mx tmp = rr[i];

			rr[i] = rr[j];
			rr[j] = tmp;
		}
		start = end;
	}
	*cnt = n < max ? n : max;
	return *cnt > 0 ? SL_DNS_MX_LIST : SL_DNS_MX_UNUSABLE;
}

enum sl_dns_status
sl_dns_host_status(enum sl_dns_status a, enum sl_dns_status aaaa, size_t addr_cnt)
{
	if (addr_cnt > 0)
		return SL_DNS_OK;
	if (a == SL_DNS_TEMPFAIL || aaaa == SL_DNS_TEMPFAIL)
		return SL_DNS_TEMPFAIL;
	if (a == SL_DNS_NXDOMAIN || aaaa == SL_DNS_NXDOMAIN)
		return SL_DNS_NXDOMAIN;
	return SL_DNS_NODATA;
}

enum sl_dns_status
sl_dns_domain_status(const enum sl_dns_status *hosts, size_t cnt, bool is_implicit)
{
	bool has_tempfail = false;

	if (is_implicit && cnt == 1)
		return hosts[0];
	for (size_t i = 0; i < cnt; i++) {
		if (hosts[i] == SL_DNS_OK)
			return SL_DNS_OK;
		if (hosts[i] == SL_DNS_TEMPFAIL)
			has_tempfail = true;
	}
	return has_tempfail ? SL_DNS_TEMPFAIL : SL_DNS_NODATA;
}

/* ---------------------------------------------------------------- addresses */

size_t
sl_dns_addrs_merge(const struct sockaddr_storage *v4, size_t v4_cnt,
		   const struct sockaddr_storage *v6, size_t v6_cnt, struct sockaddr_storage *out,
		   size_t max)
{
	size_t half = max / 2, n4 = v4_cnt, n6 = v6_cnt, n = 0;

	if (n4 + n6 > max) {
		if (n4 <= half)
			n6 = max - n4;
		else if (n6 <= max - half)
			n4 = max - n6;
		else
			n4 = max - half, n6 = half;
		if (n6 > v6_cnt)
			n6 = v6_cnt;
	}
	for (size_t i = 0; i < n4; i++)
		out[n++] = v4[i];
	for (size_t i = 0; i < n6; i++)
		out[n++] = v6[i];
	return n;
}

static size_t
dns_sort_rank(const struct sockaddr_storage *ss, const struct sl_dns_sortpat *pats, size_t cnt)
{
	const uint8_t *a;
	size_t alen;

	if (ss->ss_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		alen = 4;
	} else {
		a = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		alen = 16;
	}
	for (size_t i = 0; i < cnt; i++) {
		bool is_match = pats[i].family == ss->ss_family;

		for (size_t b = 0; b < alen && is_match; b++)
			is_match = (a[b] & pats[i].mask[b]) == pats[i].addr[b];
		if (is_match)
			return i;
	}
	return cnt;
}

void
sl_dns_addrs_sort(struct sockaddr_storage *a, size_t cnt, const struct sl_dns_sortpat *pats,
		  size_t pat_cnt)
{
	if (pat_cnt == 0)
		return;
	/* Insertion sort: stable, and cnt is at most SL_DNS_MAX_ADDRS. */
	for (size_t i = 1; i < cnt; i++) {
		struct sockaddr_storage x = a[i];
		size_t rank = dns_sort_rank(&x, pats, pat_cnt), j = i;

		while (j > 0 && dns_sort_rank(&a[j - 1], pats, pat_cnt) > rank) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = x;
	}
}

/* ---------------------------------------------------------------- Routes, Gateway */

/*
 * A host with an optional port: "name", "1.2.3.4", "[v6]", a bare IPv6
 * address, and when `allow_port` also "name:P", "1.2.3.4:P", "[v6]:P".
 * `s` is `len` bytes.  Fills r->host, r->is_addr, *port (0 if none).
 */
static int
dns_route_host(const char *s, size_t len, bool allow_port, struct sl_dns_route *r, uint32_t *port,
	       char *why, size_t why_len)
{
	char host[SL_DNS_NAME_MAX + 2];
	const char *port_p = NULL;
	size_t host_len = len;
	struct sockaddr_storage ss;

	*port = 0;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL) {
			snprintf(why, why_len, "missing ']'");
			return -1;
		}
		host_len = (size_t)(close - s) + 1;
		if (host_len < len) {
			if (close[1] != ':') {
				snprintf(why, why_len, "junk after ']'");
				return -1;
			}
			port_p = close + 2;
		}
	} else {
		const char *colon = memchr(s, ':', len);

		/* Two colons or more: a bare IPv6 address, never host:port. */
		if (colon != NULL &&
		    memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) == NULL) {
			host_len = (size_t)(colon - s);
			port_p = colon + 1;
		}
	}
	if (port_p != NULL) {
		if (!allow_port) {
			snprintf(why, why_len, "a port belongs in port=");
			return -1;
		}
		if (dns_parse_uint(port_p, len - (size_t)(port_p - s), 65535, port) < 0 ||
		    *port == 0) {
			snprintf(why, why_len, "port must be 1..65535");
			return -1;
		}
	}
	if (host_len == 0 || host_len >= sizeof(host)) {
		snprintf(why, why_len, host_len == 0 ? "no host" : "host name too long");
		return -1;
	}
	memcpy(host, s, host_len);
	host[host_len] = '\0';
	r->is_addr = sl_dns_addr_parse(host, &ss) == 0;
	if (r->is_addr) {
		if (host[0] != '[' && ss.ss_family == AF_INET6 && port_p != NULL) {
			snprintf(why, why_len, "an IPv6 address with a port needs [brackets]");
			return -1;
		}
		if (host[0] == '[' && ss.ss_family == AF_INET) {
			snprintf(why, why_len, "brackets are for IPv6 addresses");
			return -1;
		}
		inet_ntop(ss.ss_family,
			  ss.ss_family == AF_INET
				  ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
				  : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr,
			  r->host, sizeof(r->host));
		return 0;
	}
	if (host[0] == '[') {
		snprintf(why, why_len, "\"%.60s\" is not an IPv6 address", host);
		return -1;
	}
	if (sl_dns_name_norm(host, r->host, sizeof(r->host)) < 0) {
		snprintf(why, why_len, "\"%.60s\" is neither a host name nor an address", host);
		return -1;
	}
	return 0;
}

/* The query string of smtp://: "pref=P&ttl=T&port=O&type=mx|a". */
static int
dns_route_query(const char *q, size_t len, struct sl_dns_route *r, bool has_port, char *why,
		size_t why_len)
{
	bool has_type = false;

	while (len > 0) {
		const char *amp = memchr(q, '&', len);
		size_t plen = amp != NULL ? (size_t)(amp - q) : len;
		const char *eq = memchr(q, '=', plen);
		size_t nlen = eq != NULL ? (size_t)(eq - q) : plen;
		const char *v = eq != NULL ? eq + 1 : q + plen;
		size_t vlen = eq != NULL ? plen - nlen - 1 : 0;
		uint32_t n;

		if (eq == NULL || vlen == 0) {
			snprintf(why, why_len, "parameter \"%.*s\" needs a value",
				 (int)(nlen > 40 ? 40 : nlen), q);
			return -1;
		}
		if (nlen == 4 && strncasecmp(q, "pref", 4) == 0) {
			if (r->has_pref)
				goto dup;
			if (dns_parse_uint(v, vlen, 65535, &n) < 0) {
				snprintf(why, why_len, "pref must be a number 0..65535");
				return -1;
			}
			r->pref = (uint16_t)n;
			r->has_pref = true;
		} else if (nlen == 3 && strncasecmp(q, "ttl", 3) == 0) {
			if (r->has_ttl)
				goto dup;
			if (dns_parse_uint(v, vlen, 0x7fffffff, &n) < 0) {
				snprintf(why, why_len,
					 "ttl must be a number of seconds 0..2147483647");
				return -1;
			}
			r->ttl = n;
			r->has_ttl = true;
		} else if (nlen == 4 && strncasecmp(q, "port", 4) == 0) {
			if (has_port)
				goto dup;
			if (dns_parse_uint(v, vlen, 65535, &n) < 0 || n == 0) {
				snprintf(why, why_len, "port must be 1..65535");
				return -1;
			}
			r->port = (uint16_t)n;
			has_port = true;
		} else if (nlen == 4 && strncasecmp(q, "type", 4) == 0) {
			if (has_type)
				goto dup;
			if (vlen == 2 && strncasecmp(v, "mx", 2) == 0)
				r->lookup = SL_DNS_ROUTE_MX;
			else if (vlen == 1 && (v[0] == 'a' || v[0] == 'A'))
				r->lookup = SL_DNS_ROUTE_A;
			else {
				snprintf(why, why_len, "type must be mx or a");
				return -1;
			}
			has_type = true;
		} else {
			snprintf(why, why_len, "unknown parameter \"%.*s\" (pref, ttl, port, type)",
				 (int)(nlen > 40 ? 40 : nlen), q);
			return -1;
		}
		q += plen;
		len -= plen;
		if (len > 0) { /* the '&' */
			q++;
			len--;
			if (len == 0) {
				snprintf(why, why_len, "empty parameter after '&'");
				return -1;
			}
		}
		continue;
dup:
		snprintf(why, why_len, "parameter \"%.*s\" given twice", (int)nlen, q);
		return -1;
	}
	if (r->lookup == SL_DNS_ROUTE_MX && r->is_addr) {
		snprintf(why, why_len, "type=mx needs a domain name, not an address");
		return -1;
	}
	return 0;
}

static int
dns_route_item(const char *item, unsigned pos, struct sl_dns_route *r, char *why, size_t why_len)
{
	size_t len = strlen(item);
	uint32_t port = 0;

	memset(r, 0, sizeof(*r));
	r->pref = (uint16_t)(pos > 65535 ? 65535 : pos);
	r->lookup = SL_DNS_ROUTE_A;
	if (len > SL_DNS_ROUTE_MAX_LEN) {
		snprintf(why, why_len, "longer than %u characters", SL_DNS_ROUTE_MAX_LEN);
		return -1;
	}
	if (strcasecmp(item, "__mx__") == 0) {
		r->is_mx_of_domain = true;
		return 0;
	}
	if (len >= 7 && strncasecmp(item, "smtp://", 7) == 0) {
		const char *h = item + 7, *end = item + len;
		const char *q = h;

		while (q < end && *q != '?' && *q != '/')
			q++;
		if (dns_route_host(h, (size_t)(q - h), true, r, &port, why, why_len) < 0)
			return -1;
		r->port = (uint16_t)port;
		if (q < end && *q == '/')
			q++;
		if (q < end && *q != '?') {
			snprintf(why, why_len, "junk after the host (a path?)");
			return -1;
		}
		if (q < end)
			q++; /* '?' */
		return dns_route_query(q, (size_t)(end - q), r, port != 0, why, why_len);
	}
	if (memchr(item, '/', len) != NULL || memchr(item, '?', len) != NULL) {
		snprintf(why, why_len, "not a host, an address, __mx__ or smtp://...");
		return -1;
	}
	return dns_route_host(item, len, false, r, &port, why, why_len);
}

int
sl_dns_route_parse(const char *item, unsigned pos, struct sl_dns_route *r, char *why,
		   size_t why_len)
{
	char reason[160];

	if (dns_route_item(item, pos, r, reason, sizeof(reason)) == 0)
		return 0;
	snprintf(why, why_len, "route \"%.80s\": %s", item, reason);
	return -1;
}

int
sl_dns_routes_parse(const char *const *items, size_t cnt, struct sl_dns_route *out, char *why,
		    size_t why_len)
{
	for (size_t i = 0; i < cnt; i++)
		if (sl_dns_route_parse(items[i], (unsigned)i, &out[i], why, why_len) < 0)
			return -1;
	return 0;
}

int
sl_dns_gateway_parse(const char *value, struct sl_dns_route *r, char *why, size_t why_len)
{
	char reason[160];
	size_t len = strlen(value);
	uint32_t port = 0;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	r->lookup = SL_DNS_ROUTE_A;
	if (len > SL_DNS_ROUTE_MAX_LEN)
		snprintf(reason, sizeof(reason), "longer than %u characters", SL_DNS_ROUTE_MAX_LEN);
	else if (memchr(value, '/', len) != NULL || memchr(value, '?', len) != NULL)
		snprintf(reason, sizeof(reason), "host[:port], not a URL");
	else if (dns_route_host(value, len, true, r, &port, reason, sizeof(reason)) == 0)
		rc = 0;
	r->port = (uint16_t)port;
	if (rc < 0)
		snprintf(why, why_len, "gateway \"%.80s\": %s", value, reason);
	return rc;
}
