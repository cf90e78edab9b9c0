/*
 * conf/conf_value.c - typed option values from configuration text.
 *
 * Each schema type (conf_schema.h) has one parser here.  Numbers may be
 * written bare or quoted (Momentum's own examples quote them), ranges come
 * from the option's constraint string, and every failure is a one-line
 * reason that the caller prefixes with file:line:col.
 *
 * Threads: the config thread.  Parses untrusted configuration text; every
 * number is range-checked, every string length is bounded by the lexer.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/conf_acl.h"
#include "conf/conf_int.h"
#include "engine/alloc.h"
#include "engine/assert.h"

static const char *const value_true[] = { "true", "yes", "on", "1", "enabled", "enable" };
static const char *const value_false[] = { "false", "no", "off", "0", "disabled", "disable" };

/* Parse "min..max" (either side may be empty) into bounds. */
static void
value_range(const char *constraint, int64_t *min, int64_t *max)
{
	const char *dots = constraint ? strstr(constraint, "..") : NULL;

	*min = INT64_MIN;
	*max = INT64_MAX;
	if (dots == NULL)
		return;
	if (dots != constraint)
		*min = strtoll(constraint, NULL, 10);
	if (dots[2] == '-' || isdigit((unsigned char)dots[2]))
		*max = strtoll(dots + 2, NULL, 10);
}

/*
 * Decimal integer with an optional one-letter suffix from `suffixes`
 * (multipliers in `mult`).  Returns 0 or -1 with a reason.
 */
static int
value_number(const char *text, const char *suffixes, const int64_t *mult, int64_t *out, char *why,
	     size_t why_len)
{
	const char *p = text;
	char *end;
	long long n;

	while (isspace((unsigned char)*p))
		p++;
	errno = 0;
	n = strtoll(p, &end, 10);
	if (end == p || (!isdigit((unsigned char)*p) && *p != '-' && *p != '+')) {
		snprintf(why, why_len, "'%s' is not a number", text);
		return -1;
	}
	if (errno == ERANGE) {
		snprintf(why, why_len, "'%s' is out of range", text);
		return -1;
	}
	if (*end != '\0' && suffixes != NULL) {
		const char *s = strchr(suffixes, tolower((unsigned char)*end));

		if (s != NULL && end[1] == '\0') {
			int64_t m = mult[s - suffixes];

			if (n > INT64_MAX / m || n < INT64_MIN / m) {
				snprintf(why, why_len, "'%s' is out of range", text);
				return -1;
			}
			n *= m;
			end++;
		}
	}
	if (*end != '\0') {
		if (suffixes != NULL)
			snprintf(why, why_len, "'%s' is not a number (allowed suffixes: %s)", text,
				 suffixes);
		else
			snprintf(why, why_len, "'%s' is not a whole number", text);
		return -1;
	}
	*out = n;
	return 0;
}

static int
value_in_range(const struct sl_conf_option *o, int64_t n, char *why, size_t why_len)
{
	int64_t min, max;

	value_range(o->constraint, &min, &max);
	if (n >= min && n <= max)
		return 0;
	if (max == INT64_MAX)
		snprintf(why, why_len, "%" PRId64 " is below the minimum %" PRId64, n, min);
	else if (min == INT64_MIN)
		snprintf(why, why_len, "%" PRId64 " is above the maximum %" PRId64, n, max);
	else
		snprintf(why, why_len, "%" PRId64 " is outside %" PRId64 "..%" PRId64, n, min, max);
	return -1;
}

static int
value_bool(const char *text, bool *out, char *why, size_t why_len)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(value_true); i++) {
		if (strcasecmp(text, value_true[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(text, value_false[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	snprintf(why, why_len, "'%s' is not a boolean (use true or false)", text);
	return -1;
}

static int
value_enum(const struct sl_conf_option *o, struct sl_arena *a, const char *text, const char **out,
	   char *why, size_t why_len)
{
	const char *p = o->constraint;
	size_t len = strlen(text);

	while (p != NULL && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (n == len && strncasecmp(p, text, n) == 0) {
			*out = sl_arena_strndup(a, p, n);
			return 0;
		}
		p = bar ? bar + 1 : NULL;
	}
	snprintf(why, why_len, "'%s' is not one of %s", text, o->constraint);
	return -1;
}

/* "min..max|word|word": a number in range, or one of the words. */
static int
value_int_or_word(const struct sl_conf_option *o, struct sl_arena *a, const char *text,
		  union sl_conf_val *out, char *why, size_t why_len)
{
	const char *words = strchr(o->constraint, '|');
	const char *p = words ? words + 1 : NULL;
	size_t len = strlen(text);
	int64_t n;

	while (p != NULL && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t wlen = bar ? (size_t)(bar - p) : strlen(p);

		if (wlen == len && strncasecmp(p, text, wlen) == 0) {
			out->iw.word = sl_arena_strndup(a, p, wlen);
			return 0;
		}
		p = bar ? bar + 1 : NULL;
	}
	if (value_number(text, NULL, NULL, &n, why, why_len) != 0) {
		snprintf(why, why_len, "'%s' is not a number or one of %s", text,
			 words ? words + 1 : "");
		return -1;
	}
	out->iw.i = n;
	return value_in_range(o, n, why, why_len);
}

static int
value_throttle(const char *text, struct sl_conf_throttle *out, char *why, size_t why_len)
{
	const char *slash = strchr(text, '/');
	char num[32];
	int64_t cnt, secs = 1;
	size_t n = slash ? (size_t)(slash - text) : strlen(text);

	if (n == 0 || n >= sizeof(num))
		goto fail;
	memcpy(num, text, n);
	num[n] = '\0';
	if (value_number(num, NULL, NULL, &cnt, why, why_len) != 0 || cnt < 0 || cnt > UINT32_MAX)
		goto fail;
	if (slash != NULL && (value_number(slash + 1, NULL, NULL, &secs, why, why_len) != 0 ||
			      secs < 1 || secs > UINT32_MAX))
		goto fail;
	out->cnt = (uint32_t)cnt;
	out->secs = (uint32_t)secs;
	return 0;
fail:
	snprintf(why, why_len, "'%s' is not a rate (use N or N/seconds, e.g. \"100/60\")", text);
	return -1;
}

static bool
value_hostname_ok(const char *h, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];

		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return false;
	}
	return true;
}

/* host, a.b.c.d, [v6], each with an optional :port. */
static int
value_hostport(const char *text, char *why, size_t why_len)
{
	const char *port = NULL;
	size_t hlen;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close == text + 1)
			goto fail;
		for (const char *p = text + 1; p < close; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				goto fail;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			goto fail;
	} else {
		const char *colon = strchr(text, ':');

		hlen = colon ? (size_t)(colon - text) : strlen(text);
		if (!(hlen == 1 && text[0] == '*') && !value_hostname_ok(text, hlen))
			goto fail;
		if (colon != NULL)
			port = colon + 1;
	}
	if (port != NULL) {
		int64_t n;

		if (value_number(port, NULL, NULL, &n, why, why_len) != 0 || n < 1 || n > 65535) {
			snprintf(why, why_len, "port '%s' is not in 1..65535", port);
			return -1;
		}
	}
	return 0;
fail:
	snprintf(why, why_len, "'%s' is not *, a host name, an address or an [IPv6] address", text);
	return -1;
}

const char *
sl_conf__abspath(struct sl_arena *a, const char *base_dir, const char *path)
{
	char cwd[PATH_MAX];
	char *full;
	const char *res;

	if (path[0] == '/')
		return sl_arena_strdup(a, path);
	if (base_dir == NULL)
		base_dir = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	if (strncmp(path, "./", 2) == 0)
		path += 2;
	full = sl_asprintf("%s/%s", base_dir, path);
	res = sl_arena_strdup(a, full);
	sl_free(full);
	return res;
}

int
sl_conf__scalar_parse(struct sl_arena *a, const struct sl_conf_option *o, const char *text,
		      const char *base_dir, union sl_conf_val *out, char *why, size_t why_len)
{
	static const int64_t size_mult[] = { 1024, 1024 * 1024, 1024 * 1024 * 1024 };
	static const int64_t secs_mult[] = { 1, 60, 3600, 86400 };
	int64_t n;

	memset(out, 0, sizeof(*out));
	switch (o->type) {
	case SL_T_BOOL:
		return value_bool(text, &out->b, why, why_len);
	case SL_T_INT:
		if (value_number(text, NULL, NULL, &n, why, why_len) != 0)
			return -1;
		out->i = n;
		return value_in_range(o, n, why, why_len);
	case SL_T_SIZE:
		if (value_number(text, "kmg", size_mult, &n, why, why_len) != 0)
			return -1;
		out->i = n;
		return value_in_range(o, n, why, why_len);
	case SL_T_SECONDS:
		if (value_number(text, "smhd", secs_mult, &n, why, why_len) != 0)
			return -1;
		out->i = n;
		return value_in_range(o, n, why, why_len);
	case SL_T_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(text, &end, 8);
		if (*text == '\0' || *end != '\0' || errno != 0 || m > 07777) {
			snprintf(why, why_len, "'%s' is not an octal file mode like 0644", text);
			return -1;
		}
		out->i = (int64_t)m;
		return 0;
	}
	case SL_T_STRING:
		out->s = sl_arena_strdup(a, text);
		return 0;
	case SL_T_PATH:
		if (text[0] == '\0') {
			snprintf(why, why_len, "an empty path");
			return -1;
		}
		out->s = sl_conf__abspath(a, base_dir, text);
		return 0;
	case SL_T_ENUM:
		return value_enum(o, a, text, &out->s, why, why_len);
	case SL_T_THROTTLE:
		return value_throttle(text, &out->thr, why, why_len);
	case SL_T_HOSTPORT:
		if (value_hostport(text, why, why_len) != 0)
			return -1;
		out->s = sl_arena_strdup(a, text);
		return 0;
	case SL_T_LIST: {
		const char **v = sl_arena_alloc(a, sizeof(*v));

		v[0] = sl_arena_strdup(a, text);
		out->list.v = v;
		out->list.cnt = 1;
		return 0;
	}
	case SL_T_INT_OR_WORD:
		return value_int_or_word(o, a, text, out, why, why_len);
	case SL_T_PARAMS:
	case SL_T_LISTENER:
		break;
	}
	snprintf(why, why_len, "'%s' needs a list: ( ... )", o->name);
	return -1;
}

/* "*", an IPv4 address, or an IPv6 address with or without brackets; no port. */
static int
value_source_addr(const char *text, char *why, size_t why_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char buf[sizeof(struct in6_addr)];
	size_t len = strlen(text);

	if (strcmp(text, "*") == 0)
		return 0;
	if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
		text++;
		len -= 2;
	}
	if (len < sizeof(host)) {
		memcpy(host, text, len);
		host[len] = '\0';
		if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
			return 0;
	}
	snprintf(why, why_len, "'%.80s' is not *, an IPv4 address or an [IPv6] address (no port)",
		 text);
	return -1;
}

int
sl_conf__value_check(const struct sl_conf_option *o, const char *text, char *why, size_t why_len)
{
	int (*check)(const char *, char *, size_t) = sl_conf_check_get(o->id);
	struct sl_cidr c;

	switch (o->id) {
	case SL_OPT_PROHIBITED_HOSTS:
		/* The stage skips what does not parse: a typo would lift the protection. */
		if (sl_cidr_parse(text, &c, why, why_len) != 0)
			return -1;
		break;
	case SL_OPT_BIND_ADDRESS:
		/* The source address is bound as given: a host name cannot be. */
		if (value_source_addr(text, why, why_len) != 0)
			return -1;
		break;
	default:
		break;
	}
	return check != NULL ? check(text, why, why_len) : 0;
}

const char *
sl_conf__value_text(struct sl_arena *a, const struct sl_conf_value *v)
{
	size_t len = 0;
	char *buf, *p;

	if (v->kind == SL_CONF_PAIRS)
		return "";
	if (v->kind != SL_CONF_LIST)
		return v->text;
	for (size_t i = 0; i < v->item_cnt; i++)
		len += strlen(v->items[i].text) + 1;
	p = buf = sl_arena_alloc(a, len + 1);
	for (size_t i = 0; i < v->item_cnt; i++) {
		size_t n = strlen(v->items[i].text);

		if (i > 0)
			*p++ = ' ';
		memcpy(p, v->items[i].text, n);
		p += n;
	}
	*p = '\0';
	return buf;
}

int
sl_conf__value_parse(struct sl_arena *a, const struct sl_conf_option *o,
		     const struct sl_conf_value *v, const char *base_dir, union sl_conf_val *out,
		     char *why, size_t why_len)
{
	SL_ASSERT(o->type != SL_T_LISTENER);
	if (o->type == SL_T_PARAMS || v->kind == SL_CONF_PAIRS) {
		struct sl_conf_kv *kv;

		if (o->type != SL_T_PARAMS || v->kind != SL_CONF_PAIRS) {
			snprintf(why, why_len, "'%s' takes %s", o->name,
				 o->type == SL_T_PARAMS ? "[ key = value ... ]"
							: "a value, not [ ... ]");
			return -1;
		}
		kv = sl_arena_alloc(a, v->pair_cnt * sizeof(*kv));
		for (size_t i = 0; i < v->pair_cnt; i++) {
			kv[i].loc = v->pairs[i].loc;
			kv[i].key = v->pairs[i].key;
			kv[i].val = sl_conf__value_text(a, &v->pairs[i].value);
		}
		memset(out, 0, sizeof(*out));
		out->kv.v = kv;
		out->kv.cnt = v->pair_cnt;
		return 0;
	}
	if (v->kind != SL_CONF_LIST)
		return sl_conf__scalar_parse(a, o, v->text, base_dir, out, why, why_len);
	if (o->type != SL_T_LIST) {
		snprintf(why, why_len, "'%s' takes a single value, not a list", o->name);
		return -1;
	}
	{
		const char **items = sl_arena_alloc(a, (v->item_cnt + 1) * sizeof(*items));

		for (size_t i = 0; i < v->item_cnt; i++) {
			const struct sl_conf_item *it = &v->items[i];

			if (it->has_attrs || it->has_params || it->list != NULL) {
				snprintf(why, why_len,
					 "list item '%s' of '%s' cannot carry <attributes>, [ "
					 "... ] or ( ... )",
					 it->text, o->name);
				return -1;
			}
			items[i] = it->text;
		}
		memset(out, 0, sizeof(*out));
		out->list.v = items;
		out->list.cnt = v->item_cnt;
	}
	return 0;
}
