/*
 * proto/oidlist.c - a sorted list of SNMP variables (see proto/oidlist.h).
 *
 * Threads: a list belongs to one thread.  Parses untrusted input: OID text
 * (sl_oid_parse; bounded by SL_OID_MAX arcs of 32 bits each).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "proto/oidlist.h"

int
sl_oid_cmp(const uint32_t *a, size_t alen, const uint32_t *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int
sl_oid_parse(const char *text, struct sl_oid *o)
{
	const char *p = text;

	o->len = 0;
	if (*p == '.')
		p++;
	if (*p == '\0')
		return -1;
	while (*p != '\0') {
		uint64_t v = 0;

		if (*p < '0' || *p > '9' || o->len == SL_OID_MAX)
			return -1;
		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (uint64_t)(*p++ - '0');
			if (v > UINT32_MAX)
				return -1;
		}
		o->arc[o->len++] = (uint32_t)v;
		if (*p == '.') {
			p++;
			if (*p == '\0')
				return -1;
		} else if (*p != '\0') {
			return -1;
		}
	}
	return 0;
}

int
sl_oid_push(struct sl_oid *o, const uint32_t *arc, size_t cnt)
{
	if (cnt > SL_OID_MAX - o->len)
		return -1;
	if (cnt == 0)
		return 0; /* arc may be NULL */
	memcpy(&o->arc[o->len], arc, cnt * sizeof(*arc));
	o->len += (uint32_t)cnt;
	return 0;
}

int
sl_oid_push1(struct sl_oid *o, uint32_t arc)
{
	return sl_oid_push(o, &arc, 1);
}

int
sl_oid_push_str(struct sl_oid *o, const char *s, size_t len)
{
	if (len + 1 > SL_OID_MAX - o->len)
		return -1;
	o->arc[o->len++] = (uint32_t)len;
	for (size_t i = 0; i < len; i++)
		o->arc[o->len++] = (unsigned char)s[i];
	return 0;
}

static struct sl_snmp_var *
oidlist_new(struct sl_oid_list *l, const struct sl_oid *name, enum sl_snmp_type t)
{
	struct sl_snmp_var *v;

	if (name->len == 0 || name->len > SL_OID_MAX)
		return NULL;
	if (l->cnt == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = sl_reallocarray(l->v, l->cap, sizeof(*l->v));
	}
	v = &l->v[l->cnt];
	memset(v, 0, sizeof(*v));
	v->arc = sl_arena_memdup(&l->arena, name->arc, name->len, sizeof(name->arc[0]));
	v->len = name->len;
	v->type = t;
	v->seq = l->cnt++;
	l->is_sorted = false;
	return v;
}

int
sl_oid_list_add_num(struct sl_oid_list *l, const struct sl_oid *name, enum sl_snmp_type t,
		    uint64_t num)
{
	struct sl_snmp_var *v = oidlist_new(l, name, t);

	if (v == NULL)
		return -1;
	v->num = num;
	return 0;
}

int
sl_oid_list_add_str(struct sl_oid_list *l, const struct sl_oid *name, const char *s, size_t len)
{
	struct sl_snmp_var *v = oidlist_new(l, name, SL_SNMP_STRING);

	if (v == NULL)
		return -1;
	v->str = sl_arena_strndup(&l->arena, s, len);
	v->str_len = len;
	return 0;
}

int
sl_oid_list_add_oid(struct sl_oid_list *l, const struct sl_oid *name, const struct sl_oid *val)
{
	struct sl_snmp_var *v = oidlist_new(l, name, SL_SNMP_OID);

	if (v == NULL)
		return -1;
	v->str = sl_arena_memdup(&l->arena, val->arc, val->len, sizeof(val->arc[0]));
	v->str_len = val->len;
	return 0;
}

static int
oidlist_var_cmp(const void *x, const void *y)
{
	const struct sl_snmp_var *a = x, *b = y;
	int c = sl_oid_cmp(a->arc, a->len, b->arc, b->len);

	if (c != 0)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void
sl_oid_list_sort(struct sl_oid_list *l)
{
	size_t out = 0;

	if (l->is_sorted)
		return;
	if (l->cnt > 1)
		qsort(l->v, l->cnt, sizeof(*l->v), oidlist_var_cmp);
	/* Of equal names keep the last added (sorted last among them). */
	for (size_t i = 0; i < l->cnt; i++) {
		if (i + 1 < l->cnt &&
		    sl_oid_cmp(l->v[i].arc, l->v[i].len, l->v[i + 1].arc, l->v[i + 1].len) == 0)
			continue;
		l->v[out++] = l->v[i];
	}
	l->cnt = out;
	l->is_sorted = true;
}

/* Index of the first variable whose name is >= arc (or > when `after`). */
static size_t
oidlist_bound(struct sl_oid_list *l, const uint32_t *arc, size_t len, bool after)
{
	size_t lo = 0, hi = l->cnt;

	sl_oid_list_sort(l);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = sl_oid_cmp(l->v[mid].arc, l->v[mid].len, arc, len);

		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct sl_snmp_var *
sl_oid_list_get(struct sl_oid_list *l, const uint32_t *arc, size_t len)
{
	size_t i = oidlist_bound(l, arc, len, false);

	if (i < l->cnt && sl_oid_cmp(l->v[i].arc, l->v[i].len, arc, len) == 0)
		return &l->v[i];
	return NULL;
}

const struct sl_snmp_var *
sl_oid_list_next(struct sl_oid_list *l, const uint32_t *arc, size_t len)
{
	size_t i = oidlist_bound(l, arc, len, true);

	return i < l->cnt ? &l->v[i] : NULL;
}

void
sl_oid_list_clear(struct sl_oid_list *l)
{
	sl_free(l->v);
	l->v = NULL;
	l->cnt = l->cap = 0;
	l->is_sorted = false;
	sl_arena_free(&l->arena);
}
