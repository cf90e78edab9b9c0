/*
 * conf/conf_snapshot.c - check a parse tree against the schema and build the snapshot.
 *
 * One pass over the tree: every `name = value` is looked up in the schema
 * for the scope it appears in, typed, and stored; every block opens a scope
 * (Binding_Group, Binding, Domain, Host) or a named block with its own
 * options (ThreadPool, SNMP, SNMP_TRAPS, module blocks such as ec_logger).
 * Errors do not stop the pass, so one `sluiced -t` shows them all.  The
 * result lives in one arena owned by the snapshot, plus the compiled regex
 * domains, freed by snapshot_free after the last reference is dropped.
 *
 * Threads: the config thread builds; readers use sl_conf_eval() and friends
 * on snapshots they hold a reference to.  Parses untrusted configuration.
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_default.h"
#include "conf/conf_int.h"
#include "conf/conf_security.h"
#include "engine/alloc.h"
#include "engine/assert.h"

/* A growable array used while building; copied into the arena at the end. */
struct build_vec {
	void *v;
	size_t cnt;
	size_t cap;
};

static void *
vec_push(struct build_vec *vec, size_t elem_len)
{
	if (vec->cnt == vec->cap) {
		vec->cap = vec->cap ? vec->cap * 2 : 8;
		vec->v = sl_reallocarray(vec->v, vec->cap, elem_len);
	}
	memset((char *)vec->v + vec->cnt * elem_len, 0, elem_len);
	return (char *)vec->v + vec->cnt++ * elem_len;
}

/* Domain and Host stanzas of one container while it is being built. */
struct build_cont {
	struct build_vec domains; /* struct sl_conf_dscope */
	struct build_vec hosts;
};

struct build {
	struct sl_conf_snapshot *s;
	struct sl_arena *a;
	const char *base_dir;
	struct sl_conf_errors *errs;
	size_t errs_before;        /* errs->cnt when building began: more means refused */
	struct build_vec bindings; /* struct sl_conf_binding */
	struct build_vec groups;   /* struct sl_conf_binding_group */
	struct build_vec blocks;   /* struct sl_conf_block */
	struct build_vec regexes;  /* pcre2_code * */
	/* Group index of each binding (SIZE_MAX: none), parallel to bindings. */
	struct build_vec binding_group_idx;
	/* Settings and Domain/Host stanzas of each group, parallel to groups:
	 * frozen only at the end, as a group may be declared more than once. */
	struct build_vec group_parts; /* struct group_part */
	/* binding_group = "name" of each binding, parallel to bindings. */
	struct build_vec group_refs; /* struct group_ref */
};

/* What the blocks of one Binding_Group have added so far. */
struct group_part {
	struct build_vec set; /* struct sl_conf_setting */
	struct build_cont cont;
};

/* binding_group = "name" inside a Binding (Momentum before 2.2.1.26). */
struct group_ref {
	const char *name; /* NULL: not set */
	struct sl_conf_loc loc;
};

static int
setting_cmp(const void *x, const void *y)
{
	const struct sl_conf_setting *p = x, *q = y;

	return (int)p->id - (int)q->id;
}

/* Freeze a vector of settings into the arena, sorted by id. */
static struct sl_conf_settings
settings_freeze(struct build *b, struct build_vec *vec)
{
	struct sl_conf_settings out;

	/* Insertion sort: stable, so repeated PARAMS stanzas keep their order. */
	for (size_t i = 1; i < vec->cnt; i++) {
		struct sl_conf_setting *v = vec->v, tmp = v[i];
		size_t k = i;

		for (; k > 0 && setting_cmp(&v[k - 1], &tmp) > 0; k--)
			v[k] = v[k - 1];
		v[k] = tmp;
	}
	out.v = sl_arena_memdup(b->a, vec->v, vec->cnt, sizeof(struct sl_conf_setting));
	out.cnt = vec->cnt;
	sl_free(vec->v);
	memset(vec, 0, sizeof(*vec));
	return out;
}

const struct sl_conf_setting *
sl_conf_settings_find(const struct sl_conf_settings *set, enum sl_opt opt)
{
	size_t lo = 0, hi = set->cnt;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (set->v[mid].id == opt)
			return &set->v[mid];
		if (set->v[mid].id < opt)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static const char *
scope_label(unsigned scope)
{
	const char *name = sl_conf_scope_name(scope);

	return name ? name : "this";
}

static enum sl_listener_kind
listener_kind(enum sl_opt id)
{
	if (id == SL_OPT_ESMTP_LISTENER)
		return SL_LISTENER_ESMTP;
	if (id == SL_OPT_ECSTREAM_LISTENER)
		return SL_LISTENER_ECSTREAM;
	SL_ASSERT(id == SL_OPT_CONTROL_LISTENER);
	return SL_LISTENER_CONTROL;
}

/* The checks beyond the type (sl_conf__value_check), at each item's location. */
static void
build_check(struct build *b, const struct sl_conf_option *o, const struct sl_conf_value *value,
	    const union sl_conf_val *v)
{
	char why[256];

	if (o->type == SL_T_LIST) {
		for (size_t i = 0; i < v->list.cnt; i++) {
			const struct sl_conf_loc *loc =
				value->kind == SL_CONF_LIST ? &value->items[i].loc : &value->loc;

			if (sl_conf__value_check(o, v->list.v[i], why, sizeof(why)) != 0)
				sl_conf_error_add(b->errs, loc, "bad value for '%s': %s", o->name,
						  why);
		}
		return;
	}
	if (o->type != SL_T_PATH && o->type != SL_T_HOSTPORT && o->type != SL_T_STRING)
		return;
	if (sl_conf__value_check(o, v->s, why, sizeof(why)) != 0)
		sl_conf_error_add(b->errs, &value->loc, "bad value for '%s': %s", o->name, why);
}

/* A repeated list option: `value`'s items go after those `prev` already holds. */
static void
build_list_append(struct build *b, const struct sl_conf_option *o,
		  const struct sl_conf_value *value, struct sl_conf_setting *prev)
{
	union sl_conf_val more;
	const char **v;
	char why[256];

	if (sl_conf__value_parse(b->a, o, value, b->base_dir, &more, why, sizeof(why)) != 0) {
		sl_conf_error_add(b->errs, &value->loc, "bad value for '%s': %s", o->name, why);
		return;
	}
	v = sl_arena_alloc(b->a, (prev->v.list.cnt + more.list.cnt + 1) * sizeof(*v));
	for (size_t k = 0; k < prev->v.list.cnt; k++)
		v[k] = prev->v.list.v[k];
	for (size_t k = 0; k < more.list.cnt; k++)
		v[prev->v.list.cnt + k] = more.list.v[k];
	v[prev->v.list.cnt + more.list.cnt] = NULL;
	prev->v.list.v = v;
	prev->v.list.cnt += more.list.cnt;
}

/*
 * Look `name` up for `scope`, type `value` and append it to `vec`.
 * Reports unknown options, wrong scopes, duplicates and bad values.
 */
static void
build_setting(struct build *b, unsigned scope, const char *name, const struct sl_conf_loc *loc,
	      const struct sl_conf_value *value, struct build_vec *vec)
{
	const struct sl_conf_option *o = sl_conf_option_find(name, scope);
	struct sl_conf_setting *set;
	char why[256];

	if (o == NULL) {
		sl_conf_error_add(b->errs, loc, "unknown option '%s'", name);
		return;
	}
	if (!(o->scopes & scope)) {
		char valid[160];

		sl_conf_scopes_format(o->scopes, valid, sizeof(valid));
		sl_conf_error_add(b->errs, loc,
				  "option '%s' is not valid in %s scope (valid in: %s)", o->name,
				  scope_label(scope), valid);
		return;
	}
	for (size_t i = 0; i < vec->cnt && o->type != SL_T_PARAMS; i++) {
		struct sl_conf_setting *prev = (struct sl_conf_setting *)vec->v + i;

		/* Match_Domain may be given several times: the domains add up. */
		if (prev->id == o->id && o->id == SL_OPT_MATCH_DOMAIN) {
			build_list_append(b, o, value, prev);
			return;
		}
		/* PARAMS stanzas repeat by design: one Trap_Destination [ ] per sink. */
		if (prev->id == o->id) {
			sl_conf_error_add(b->errs, loc, "option '%s' is already set at %s:%u",
					  o->name, prev->loc.file, prev->loc.line);
			return;
		}
	}
	set = vec_push(vec, sizeof(*set));
	set->id = o->id;
	set->loc = *loc;
	if (o->type == SL_T_LISTENER) {
		set->v.listener = sl_conf__listener_build(b->a, listener_kind(o->id), value,
							  b->base_dir, b->errs);
		if (set->v.listener == NULL)
			vec->cnt--;
		return;
	}
	if (sl_conf__value_parse(b->a, o, value, b->base_dir, &set->v, why, sizeof(why)) != 0) {
		sl_conf_error_add(b->errs, &value->loc, "bad value for '%s': %s", o->name, why);
		vec->cnt--;
		return;
	}
	build_check(b, o, value, &set->v);
	/* Accepted so that Momentum configurations load; the reader should not think it works. */
	if (o->noeffect != NULL)
		sl_conf_notice_add(
			b->errs, loc,
			"%s is accepted for compatibility and has no effect in sluice (%s)",
			o->name, o->noeffect);
}

int
sl_conf__settings_from_pairs(struct sl_arena *a, unsigned scope, const struct sl_conf_pair *pairs,
			     size_t pair_cnt, const char *base_dir, struct sl_conf_settings *out,
			     struct sl_conf_errors *errs)
{
	struct build b = { .a = a, .base_dir = base_dir, .errs = errs, .errs_before = errs->cnt };
	struct build_vec vec = { 0 };

	for (size_t i = 0; i < pair_cnt; i++)
		build_setting(&b, scope, pairs[i].key, &pairs[i].loc, &pairs[i].value, &vec);
	*out = settings_freeze(&b, &vec);
	return errs->cnt > b.errs_before ? -1 : 0;
}

/* ------------------------------------------------------------------ blocks */

enum block_kind {
	BK_NONE,
	BK_DOMAIN,
	BK_HOST,
	BK_BINDING,
	BK_BINDING_GROUP,
	BK_NAMED, /* ThreadPool, SNMP, SNMP_TRAPS, modules: own option scope */
};

/* Instances of one module kind (rdns <name="a">, rdns <name="b">, ...). */
#define SL_CONF_MODULE_INSTANCES_MAX 8

/* Blocks with their own options, and the module names sluice knows. */
struct block_def {
	const char *kind; /* canonical */
	unsigned scope;   /* SL_S_* of its options */
	int arg_cnt;      /* required instance-name args: 0, 1, or -1 (0 or 1) */
	bool is_module;   /* loaded as a module (accepts Module/Logger/... syntax) */
	bool is_single;   /* at most one per configuration */
	bool is_implicit; /* present with its defaults when not configured */
};

static const struct block_def block_defs[] = {
	{ "ThreadPool", SL_S_THREADPOOL, 1, false, false, false },
	{ "SNMP", SL_S_SNMP, 0, false, true, false },
	{ "SNMP_TRAPS", SL_S_SNMP_TRAPS, 0, false, true, false },
	{ "Security", SL_S_SECURITY, 0, false, true, false },
	{ "RFC2822", SL_S_RFC2822, 0, false, true, true },
	{ "ec_logger", SL_S_EC_LOGGER, -1, true, false, true },
	{ "bounce_classifier", SL_S_BOUNCE_CLASSIFIER, -1, true, true, false },
	{ "rdns", SL_S_RDNS, -1, true, false, false }, /* instances: <name="..."> */
};

/* Momentum's module-loading keywords: `Logger logging/ec_logger ec_logger { }`. */
static const char *const module_keywords[] = { "module", "logger", "validate", "interpreter",
					       "io_system" };

static const struct block_def *
block_def_find(const char *kind)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(block_defs); i++)
		if (strcasecmp(block_defs[i].kind, kind) == 0)
			return &block_defs[i];
	return NULL;
}

static bool
is_module_keyword(const char *name)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(module_keywords); i++)
		if (strcasecmp(module_keywords[i], name) == 0)
			return true;
	return false;
}

struct scope_out {
	unsigned scope;          /* SL_S_* of this level */
	struct build_vec set;    /* struct sl_conf_setting */
	struct build_cont *cont; /* Domain/Host go here (NULL: not allowed) */
	size_t group_idx;        /* the enclosing group (SIZE_MAX: none) */
	size_t binding_idx;      /* a Binding's body: its index, for binding_group = */
};

static void build_body(struct build *b, const struct sl_conf_stanza *st, size_t cnt,
		       struct scope_out *out);

static void
build_dscope(struct build *b, const struct sl_conf_stanza *st, enum block_kind kind,
	     struct build_cont *cont)
{
	struct build_vec *vec = kind == BK_DOMAIN ? &cont->domains : &cont->hosts;
	struct scope_out inner = { .scope = kind == BK_DOMAIN ? SL_S_DOMAIN : SL_S_HOST,
				   .group_idx = SIZE_MAX };
	const char *name = st->args[0].text;
	struct sl_conf_dscope *d;
	size_t len = strlen(name);

	for (size_t i = 0; i < vec->cnt; i++) {
		const struct sl_conf_dscope *prev = (const struct sl_conf_dscope *)vec->v + i;

		if (strcasecmp(prev->name, name) == 0) {
			sl_conf_error_add(b->errs, &st->loc,
					  "%s \"%s\" is already defined at %s:%u",
					  kind == BK_DOMAIN ? "Domain" : "Host", name,
					  prev->loc.file, prev->loc.line);
			return;
		}
	}
	d = vec_push(vec, sizeof(*d));
	d->loc = st->loc;
	if (len >= 2 && name[0] == '/' && name[len - 1] == '/') {
		int code;
		PCRE2_SIZE off;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)name + 1, len - 2, PCRE2_CASELESS, &code,
					       &off, NULL);

		d->is_regex = true;
		d->name = sl_arena_strdup(b->a, name);
		if (re == NULL) {
			PCRE2_UCHAR msg[160];

			pcre2_get_error_message(code, msg, sizeof(msg));
			sl_conf_error_add(b->errs, &st->args[0].loc,
					  "bad regular expression %s: %s at offset %zu", name,
					  (const char *)msg, (size_t)off);
		} else {
			*(pcre2_code **)vec_push(&b->regexes, sizeof(pcre2_code *)) = re;
			d->re = re;
		}
	} else {
		char *lower = sl_arena_strdup(b->a, name);

		for (char *p = lower; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		d->name = lower;
	}
	build_body(b, st->children, st->child_cnt, &inner);
	/* vec may have moved while the body was built: find d again. */
	d = (struct sl_conf_dscope *)vec->v + (vec->cnt - 1);
	d->set = settings_freeze(b, &inner.set);
}

static int
dscope_cmp(const void *x, const void *y)
{
	const struct sl_conf_dscope *p = x, *q = y;

	return strcmp(p->name, q->name);
}

/* Exact names sorted for bsearch, then the regexes in declaration order. */
static const struct sl_conf_dscope *
dscopes_freeze(struct build *b, struct build_vec *vec, size_t *exact_cnt)
{
	const struct sl_conf_dscope *in = vec->v;
	struct sl_conf_dscope *out = sl_arena_alloc(b->a, vec->cnt * sizeof(*out));
	size_t n = 0;

	for (size_t i = 0; i < vec->cnt; i++)
		if (!in[i].is_regex)
			out[n++] = in[i];
	*exact_cnt = n;
	if (n > 1)
		qsort(out, n, sizeof(*out), dscope_cmp);
	for (size_t i = 0; i < vec->cnt; i++)
		if (in[i].is_regex)
			out[n++] = in[i];
	sl_free(vec->v);
	memset(vec, 0, sizeof(*vec));
	return out;
}

static void
cont_freeze(struct build *b, struct build_cont *bc, struct sl_conf_container *c)
{
	c->domain_cnt = bc->domains.cnt;
	c->domains = dscopes_freeze(b, &bc->domains, &c->domain_exact_cnt);
	c->host_cnt = bc->hosts.cnt;
	c->hosts = dscopes_freeze(b, &bc->hosts, &c->host_exact_cnt);
}

static bool
binding_name_ok(const char *name)
{
	if (*name == '\0')
		return false;
	for (const char *p = name; *p; p++)
		if (isspace((unsigned char)*p) || *p == ':')
			return false;
	return true;
}

static size_t
group_find(const struct build *b, const char *name)
{
	const struct sl_conf_binding_group *g = b->groups.v;

	/* Group names are case-sensitive (conf.ref.binding_group). */
	for (size_t i = 0; i < b->groups.cnt; i++)
		if (strcmp(g[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static size_t
group_add(struct build *b, const char *name, const struct sl_conf_loc *loc)
{
	struct sl_conf_binding_group *g = vec_push(&b->groups, sizeof(*g));

	g->loc = *loc;
	g->name = name;
	vec_push(&b->group_parts, sizeof(struct group_part));
	return b->groups.cnt - 1;
}

/*
 * Binding_Group "name" { }.  A group declared again (say in an included
 * file) continues the first declaration, as Momentum's page allows: its
 * options and stanzas join the group's, and an option or Domain set in
 * both is the usual "already set" error, naming where.
 */
static void
build_group(struct build *b, const struct sl_conf_stanza *st)
{
	const char *name = st->args[0].text;
	struct scope_out inner = { .scope = SL_S_BINDING_GROUP,
				   .group_idx = SIZE_MAX,
				   .binding_idx = SIZE_MAX };
	struct group_part *part;
	struct build_cont cont;
	size_t idx;

	if (!binding_name_ok(name)) {
		sl_conf_error_add(b->errs, &st->args[0].loc,
				  "Binding_Group name \"%s\" must be non-empty, without spaces or "
				  "colons",
				  name);
		return;
	}
	idx = group_find(b, name);
	if (idx == SIZE_MAX)
		idx = group_add(b, name, &st->loc);
	/* Groups do not nest, so group_parts cannot move while the body is built. */
	part = (struct group_part *)b->group_parts.v + idx;
	inner.set = part->set;
	cont = part->cont;
	inner.cont = &cont;
	inner.group_idx = idx;
	build_body(b, st->children, st->child_cnt, &inner);
	part = (struct group_part *)b->group_parts.v + idx;
	part->set = inner.set;
	part->cont = cont;
}

static void
build_binding(struct build *b, const struct sl_conf_stanza *st, size_t group_idx)
{
	const char *name = st->args[0].text;
	struct build_cont cont = { 0 };
	struct scope_out inner = { .scope = SL_S_BINDING,
				   .cont = &cont,
				   .group_idx = SIZE_MAX,
				   .binding_idx = b->bindings.cnt };
	struct sl_conf_binding *bd;

	if (!binding_name_ok(name)) {
		sl_conf_error_add(b->errs, &st->args[0].loc,
				  "Binding name \"%s\" must be non-empty, without spaces or colons",
				  name);
		return;
	}
	for (size_t i = 0; i < b->bindings.cnt; i++) {
		const struct sl_conf_binding *prev = (struct sl_conf_binding *)b->bindings.v + i;

		if (strcmp(prev->name, name) == 0) {
			sl_conf_error_add(b->errs, &st->loc,
					  "Binding \"%s\" is already defined at %s:%u", name,
					  prev->loc.file, prev->loc.line);
			return;
		}
	}
	bd = vec_push(&b->bindings, sizeof(*bd));
	bd->loc = st->loc;
	bd->name = name;
	*(size_t *)vec_push(&b->binding_group_idx, sizeof(size_t)) = group_idx;
	vec_push(&b->group_refs, sizeof(struct group_ref));
	build_body(b, st->children, st->child_cnt, &inner);
	bd = (struct sl_conf_binding *)b->bindings.v + inner.binding_idx;
	bd->set = settings_freeze(b, &inner.set);
	cont_freeze(b, &cont, &bd->c);
}

/*
 * binding_group = "name" inside a Binding: Momentum's way, before 2.2.1.26,
 * of putting a Binding in a group.  Noted here, resolved by groups_link()
 * once every group is known (the group may be declared later, or not at all).
 */
static void
build_group_ref(struct build *b, const struct sl_conf_stanza *st, size_t binding_idx)
{
	struct group_ref *ref = (struct group_ref *)b->group_refs.v + binding_idx;
	const struct sl_conf_value *v = &st->value;

	if (v->kind == SL_CONF_LIST || v->kind == SL_CONF_PAIRS || !binding_name_ok(v->text)) {
		sl_conf_error_add(b->errs, &v->loc,
				  "bad value for 'binding_group': a group name, non-empty, without "
				  "spaces or colons");
		return;
	}
	if (ref->name != NULL) {
		sl_conf_error_add(b->errs, &st->loc,
				  "option 'binding_group' is already set at %s:%u", ref->loc.file,
				  ref->loc.line);
		return;
	}
	ref->name = v->text;
	ref->loc = st->loc;
}

/*
 * Put each Binding that names its group with binding_group = into that
 * group, exactly as if it were declared inside it; a group no Binding_Group
 * block declares is made, empty.  A Binding inside one group that names
 * another is an error.
 */
static void
groups_link(struct build *b)
{
	for (size_t i = 0; i < b->bindings.cnt; i++) {
		const struct group_ref *ref = (struct group_ref *)b->group_refs.v + i;
		size_t *gi = (size_t *)b->binding_group_idx.v + i;
		size_t idx;

		if (ref->name == NULL)
			continue;
		if (*gi != SIZE_MAX) {
			const struct sl_conf_binding_group *g =
				(struct sl_conf_binding_group *)b->groups.v + *gi;

			if (strcmp(g->name, ref->name) != 0)
				sl_conf_error_add(b->errs, &ref->loc,
						  "binding_group \"%s\" names another group than "
						  "the Binding_Group \"%s\" it is declared in",
						  ref->name, g->name);
			continue;
		}
		idx = group_find(b, ref->name);
		if (idx == SIZE_MAX)
			idx = group_add(b, ref->name, &ref->loc);
		*gi = idx;
	}
}

static const struct sl_conf_kvlist *
attrs_kvlist(struct build *b, const struct sl_conf_pair *pairs, size_t cnt)
{
	struct sl_conf_kvlist *l = sl_arena_alloc(b->a, sizeof(*l));
	struct sl_conf_kv *v = sl_arena_alloc(b->a, cnt * sizeof(*v));

	for (size_t i = 0; i < cnt; i++) {
		v[i].loc = pairs[i].loc;
		v[i].key = pairs[i].key;
		v[i].val = sl_conf__value_text(b->a, &pairs[i].value);
	}
	l->v = v;
	l->cnt = cnt;
	return l;
}

/*
 * A named block: ThreadPool "x" { }, SNMP { }, ec_logger [ "name" ] { },
 * or the Momentum module syntax `Logger logging/ec_logger ec_logger [passive] { }`.
 */
static void
build_named(struct build *b, const struct sl_conf_stanza *st)
{
	const struct block_def *def;
	const char *instance = NULL;
	bool is_passive = false;
	size_t argi = 0;
	struct sl_conf_block *blk;
	struct scope_out inner = { .group_idx = SIZE_MAX };

	if (is_module_keyword(st->name)) {
		const char *path, *slash;

		if (st->arg_cnt < 1) {
			sl_conf_error_add(
				b->errs, &st->loc,
				"%s needs a module name: %s logging/ec_logger ec_logger { }",
				st->name, st->name);
			return;
		}
		path = st->args[0].text;
		slash = strrchr(path, '/');
		def = block_def_find(slash ? slash + 1 : path);
		if (def == NULL || !def->is_module) {
			sl_conf_error_add(b->errs, &st->args[0].loc,
					  "unknown module '%s' (sluice provides: ec_logger, "
					  "bounce_classifier, rdns)",
					  slash ? slash + 1 : path);
			return;
		}
		argi = 1;
	} else {
		def = block_def_find(st->name);
		SL_ASSERT(def != NULL);
	}
	if (argi < st->arg_cnt && def->arg_cnt != 0 &&
	    strcasecmp(st->args[argi].text, "passive") != 0)
		instance = st->args[argi++].text;
	if (argi < st->arg_cnt && def->is_module &&
	    strcasecmp(st->args[argi].text, "passive") == 0) {
		is_passive = true;
		argi++;
	}
	if (argi < st->arg_cnt) {
		sl_conf_error_add(b->errs, &st->args[argi].loc, "unexpected '%s' after %s",
				  st->args[argi].text, def->kind);
		return;
	}
	if (def->arg_cnt == 1 && instance == NULL) {
		sl_conf_error_add(b->errs, &st->loc, "%s needs a name: %s \"name\" { ... }",
				  def->kind, def->kind);
		return;
	}
	if (!def->is_module && st->attr_cnt > 0) {
		sl_conf_error_add(b->errs, &st->attrs[0].loc, "%s takes no <attributes>",
				  def->kind);
		return;
	}
	for (size_t i = 0; i < st->attr_cnt; i++) {
		if (strcasecmp(st->attrs[i].key, "name") != 0 &&
		    strcasecmp(st->attrs[i].key, "debug_level") != 0)
			sl_conf_error_add(
				b->errs, &st->attrs[i].loc,
				"unknown module attribute '%s' (known: name, debug_level)",
				st->attrs[i].key);
	}
	/* A module instance is named by <name="..."> (conf.ref.validate), else by its module. */
	for (size_t i = 0; def->is_module && i < st->attr_cnt; i++)
		if (strcasecmp(st->attrs[i].key, "name") == 0)
			instance = sl_conf__value_text(b->a, &st->attrs[i].value);
	if (instance == NULL && def->is_module)
		instance = def->kind;
	for (size_t i = 0, n = 0; i < b->blocks.cnt; i++) {
		const struct sl_conf_block *prev = (const struct sl_conf_block *)b->blocks.v + i;

		if (strcasecmp(prev->kind, def->kind) != 0)
			continue;
		if (++n == SL_CONF_MODULE_INSTANCES_MAX) {
			sl_conf_error_add(b->errs, &st->loc, "at most %d instances of %s",
					  SL_CONF_MODULE_INSTANCES_MAX, def->kind);
			return;
		}
		if (def->is_single || strcmp(prev->name, instance) == 0) {
			sl_conf_error_add(b->errs, &st->loc, "%s%s%s%s is already defined at %s:%u",
					  def->kind, def->is_single ? "" : " \"",
					  def->is_single ? "" : instance,
					  def->is_single ? "" : "\"", prev->loc.file,
					  prev->loc.line);
			return;
		}
	}
	inner.scope = def->scope;
	build_body(b, st->children, st->child_cnt, &inner);
	blk = vec_push(&b->blocks, sizeof(*blk));
	blk->loc = st->loc;
	blk->kind = def->kind;
	blk->name = instance;
	blk->scope = def->scope;
	blk->is_passive = is_passive;
	blk->attrs = attrs_kvlist(b, st->attrs, st->attr_cnt);
	blk->set = settings_freeze(b, &inner.set);
}

static enum block_kind
block_kind(const char *name)
{
	if (strcasecmp(name, "domain") == 0)
		return BK_DOMAIN;
	if (strcasecmp(name, "host") == 0)
		return BK_HOST;
	if (strcasecmp(name, "binding") == 0)
		return BK_BINDING;
	if (strcasecmp(name, "binding_group") == 0)
		return BK_BINDING_GROUP;
	if (block_def_find(name) != NULL || is_module_keyword(name))
		return BK_NAMED;
	return BK_NONE;
}

static void
build_block(struct build *b, const struct sl_conf_stanza *st, struct scope_out *out)
{
	enum block_kind kind = block_kind(st->name);
	bool is_global = out->scope == SL_S_GLOBAL;

	switch (kind) {
	case BK_NONE:
		if (sl_conf_option_find(st->name, out->scope) != NULL)
			sl_conf_error_add(b->errs, &st->loc,
					  "'%s' is an option, not a block: write %s = value",
					  st->name, st->name);
		else if (st->arg_cnt == 0)
			sl_conf_error_add(b->errs, &st->loc, "unknown block or module '%s'",
					  st->name);
		else
			sl_conf_error_add(b->errs, &st->loc, "unknown block '%s'", st->name);
		return;
	case BK_DOMAIN:
	case BK_HOST:
		if (out->cont == NULL) {
			sl_conf_error_add(b->errs, &st->loc,
					  "%s is not valid inside %s scope (only global, "
					  "Binding_Group and Binding)",
					  kind == BK_DOMAIN ? "Domain" : "Host",
					  scope_label(out->scope));
			return;
		}
		break;
	case BK_BINDING:
		if (!is_global && out->scope != SL_S_BINDING_GROUP) {
			sl_conf_error_add(
				b->errs, &st->loc,
				"Binding is valid only at top level or inside a Binding_Group");
			return;
		}
		break;
	case BK_BINDING_GROUP:
	case BK_NAMED:
		if (!is_global) {
			sl_conf_error_add(b->errs, &st->loc, "%s is valid only at top level",
					  st->name);
			return;
		}
		break;
	}
	if (kind != BK_NAMED && st->arg_cnt != 1) {
		sl_conf_error_add(b->errs, &st->loc,
				  "%s needs exactly one name: %s \"name\" { ... }", st->name,
				  st->name);
		return;
	}
	if (kind != BK_NAMED && st->attr_cnt > 0) {
		sl_conf_error_add(b->errs, &st->attrs[0].loc, "%s takes no <attributes>", st->name);
		return;
	}
	switch (kind) {
	case BK_DOMAIN:
	case BK_HOST:
		build_dscope(b, st, kind, out->cont);
		break;
	case BK_BINDING:
		build_binding(b, st, out->group_idx);
		break;
	case BK_BINDING_GROUP:
		build_group(b, st);
		break;
	case BK_NAMED:
		build_named(b, st);
		break;
	case BK_NONE:
		break;
	}
}

static void
build_body(struct build *b, const struct sl_conf_stanza *st, size_t cnt, struct scope_out *out)
{
	for (size_t i = 0; i < cnt; i++) {
		if (st[i].kind == SL_CONF_ASSIGN && out->scope == SL_S_BINDING &&
		    strcasecmp(st[i].name, "binding_group") == 0)
			build_group_ref(b, &st[i], out->binding_idx);
		else if (st[i].kind == SL_CONF_ASSIGN)
			build_setting(b, out->scope, st[i].name, &st[i].loc, &st[i].value,
				      &out->set);
		else
			build_block(b, &st[i], out);
	}
}

/* ------------------------------------------------------------------ defaults */

static void
build_defaults(struct build *b)
{
	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];
		union sl_conf_val *v;
		char why[256];

		if (o->def == NULL)
			continue;
		v = sl_arena_alloc(b->a, sizeof(*v));
		if (o->type == SL_T_LIST) {
			/* A list default is written as space-separated words; "" is empty. */
			size_t n = 0;
			const char **items;
			char *copy = sl_arena_strdup(b->a, o->def), *save = NULL;

			for (const char *p = o->def; *p; p++)
				n += *p == ' ';
			items = sl_arena_alloc(b->a, (n + 2) * sizeof(*items));
			n = 0;
			for (char *t = strtok_r(copy, " ", &save); t;
			     t = strtok_r(NULL, " ", &save))
				items[n++] = t;
			v->list.v = items;
			v->list.cnt = n;
		} else if (sl_conf__scalar_parse(b->a, o, o->def, b->base_dir, v, why,
						 sizeof(why)) != 0) {
			/* The schema test proves every default parses; this is a bug. */
			sl_conf_error_add(b->errs, NULL, "internal: default of %s: %s", o->name,
					  why);
			SL_ASSERT(!"schema default does not parse");
		}
		b->s->dflt[i] = v;
	}
}

/* ------------------------------------------------------------------ snapshot */

/*
 * Atomic: built minus freed.  Builds run on the config thread, frees on
 * liburcu's call_rcu thread; one add and one subtract per reload is cheap
 * enough to keep in every build.
 */
static size_t snapshot_live_cnt;

size_t
sl_conf_snapshot_live_cnt(void)
{
	return __atomic_load_n(&snapshot_live_cnt, __ATOMIC_ACQUIRE);
}

static void
snapshot_free(struct sl_rcuobj *obj)
{
	struct sl_conf_snapshot *s = (struct sl_conf_snapshot *)obj;

	SL_CHECK_OBJ(s, SL_CONF_SNAPSHOT_MAGIC);
	for (size_t i = 0; i < s->regex_cnt; i++)
		pcre2_code_free(s->regexes[i]);
	sl_free(s->regexes);
	s->magic = 0;
	sl_conf_tree_free(s->tree);
	sl_arena_free(&s->arena);
	sl_free(s);
	__atomic_fetch_sub(&snapshot_live_cnt, 1, __ATOMIC_RELEASE);
}

static void
build_free_partial(struct build *b)
{
	for (size_t i = 0; i < b->regexes.cnt; i++)
		pcre2_code_free(((pcre2_code **)b->regexes.v)[i]);
	sl_free(b->regexes.v);
	sl_free(b->bindings.v);
	sl_free(b->groups.v);
	sl_free(b->blocks.v);
	sl_free(b->binding_group_idx.v);
	for (size_t i = 0; i < b->group_parts.cnt; i++) {
		struct group_part *part = (struct group_part *)b->group_parts.v + i;

		sl_free(part->set.v);
		sl_free(part->cont.domains.v);
		sl_free(part->cont.hosts.v);
	}
	sl_free(b->group_parts.v);
	sl_free(b->group_refs.v);
}

struct sl_conf_snapshot *
sl_conf_snapshot_build(struct sl_conf_tree *tree, const char *base_dir, uint64_t generation,
		       struct sl_conf_errors *errs)
{
	struct sl_conf_snapshot *s = SL_NEW(s);
	struct build b = {
		.s = s, .a = &s->arena, .base_dir = base_dir, .errs = errs, .errs_before = errs->cnt
	};
	struct build_cont top = { 0 };
	struct scope_out global = {
		.scope = SL_S_GLOBAL, .cont = &top, .group_idx = SIZE_MAX, .binding_idx = SIZE_MAX
	};
	struct sl_conf_settings gset;
	struct sl_conf_binding *bindings;

	__atomic_fetch_add(&snapshot_live_cnt, 1, __ATOMIC_RELAXED);
	s->magic = SL_CONF_SNAPSHOT_MAGIC;
	s->generation = generation;
	s->tree = tree;
	sl_rcuobj_init(&s->obj, snapshot_free);
	s->files = tree->files;
	s->file_cnt = tree->file_cnt;
	s->source = tree->file_cnt ? tree->files[0] : "(buffer)";
	build_defaults(&b);
	build_body(&b, tree->stanzas, tree->stanza_cnt, &global);
	gset = settings_freeze(&b, &global.set);
	cont_freeze(&b, &top, &s->top);

	for (size_t i = 0; i < SL_OPT__COUNT; i++)
		s->global[i] = s->dflt[i];
	for (size_t i = 0; i < gset.cnt; i++) {
		s->global[gset.v[i].id] = &gset.v[i].v;
		s->global_loc[gset.v[i].id] = &gset.v[i].loc;
	}

	/* Implicit blocks (ec_logger, RFC2822) exist with their defaults when not configured. */
	for (size_t k = 0; k < SL_ARRAY_LEN(block_defs); k++) {
		const struct block_def *def = &block_defs[k];
		bool is_present = false;

		if (!def->is_implicit)
			continue;
		for (size_t i = 0; i < b.blocks.cnt; i++)
			is_present |= strcmp(((struct sl_conf_block *)b.blocks.v)[i].kind,
					     def->kind) == 0;
		if (!is_present) {
			static const struct sl_conf_kvlist empty = { NULL, 0 };
			struct sl_conf_block *blk = vec_push(&b.blocks, sizeof(*blk));

			blk->kind = def->kind;
			blk->name = def->is_module ? def->kind : NULL;
			blk->scope = def->scope;
			blk->attrs = &empty;
		}
	}

	groups_link(&b);
	for (size_t i = 0; i < b.groups.cnt; i++) {
		struct sl_conf_binding_group *g = (struct sl_conf_binding_group *)b.groups.v + i;
		struct group_part *part = (struct group_part *)b.group_parts.v + i;

		g->set = settings_freeze(&b, &part->set);
		cont_freeze(&b, &part->cont, &g->c);
	}
	bindings = sl_arena_memdup(b.a, b.bindings.v, b.bindings.cnt, sizeof(*bindings));
	s->groups = sl_arena_memdup(b.a, b.groups.v, b.groups.cnt, sizeof(*s->groups));
	s->group_cnt = b.groups.cnt;
	for (size_t i = 0; i < b.bindings.cnt; i++) {
		size_t g = ((size_t *)b.binding_group_idx.v)[i];

		bindings[i].group = g == SIZE_MAX ? NULL : &s->groups[g];
	}
	s->bindings = bindings;
	s->binding_cnt = b.bindings.cnt;
	s->blocks = sl_arena_memdup(b.a, b.blocks.v, b.blocks.cnt, sizeof(*s->blocks));
	s->block_cnt = b.blocks.cnt;
	s->regexes = b.regexes.v; /* moves to the snapshot */
	s->regex_cnt = b.regexes.cnt;
	memset(&b.regexes, 0, sizeof(b.regexes));
	build_free_partial(&b);
	{
		struct sl_priv priv = { 0 };

		(void)sl_conf_security(s, &priv, errs);
		sl_priv_clear(&priv);
	}
	if (errs->cnt > b.errs_before) {
		/* Never published: no reader can hold it, free it now. */
		snapshot_free(&s->obj);
		return NULL;
	}
	return s;
}

struct sl_conf_snapshot *
sl_conf_load(const char *path, const char *base_dir, uint64_t generation,
	     struct sl_conf_errors *errs)
{
	struct sl_conf_tree *tree;
	struct sl_conf_snapshot *s;

	if (path != NULL)
		tree = sl_conf_parse_file(path, errs);
	else
		tree = sl_conf_parse_buffer("(built-in sluice.conf)", base_dir,
					    sl_conf_default_text, sl_conf_default_text_len, errs);
	if (tree == NULL)
		return NULL;
	s = sl_conf_snapshot_build(tree, base_dir, generation, errs);
	if (s != NULL && path == NULL)
		s->source = "(built-in sluice.conf)";
	return s;
}

/* ------------------------------------------------------------------ lookups */

static bool
dscope_matches(const struct sl_conf_dscope *d, const char *name)
{
	pcre2_match_data *md;
	int rc;

	if (d->re == NULL)
		return false;
	md = pcre2_match_data_create_from_pattern(d->re, NULL);
	rc = pcre2_match(d->re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

/*
 * `opt` from the Domain (or Host) stanzas of one list: the exact name if it
 * sets the option, else the first regex stanza in declaration order that
 * matches and sets it (Momentum resolves each option this way).
 */
static const union sl_conf_val *
dscope_eval(const struct sl_conf_dscope *v, size_t exact_cnt, size_t cnt, const char *name,
	    enum sl_opt opt)
{
	const struct sl_conf_setting *set;
	size_t lo = 0, hi = exact_cnt;

	if (name == NULL || cnt == 0)
		return NULL;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcasecmp(name, v[mid].name);

		if (c == 0) {
			if ((set = sl_conf_settings_find(&v[mid].set, opt)) != NULL)
				return &set->v;
			break;
		}
		if (c > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = exact_cnt; i < cnt; i++) {
		set = sl_conf_settings_find(&v[i].set, opt);
		if (set != NULL && dscope_matches(&v[i], name))
			return &set->v;
	}
	return NULL;
}

/* Host, then Domain, of one container. */
static const union sl_conf_val *
cont_eval(const struct sl_conf_container *c, enum sl_opt opt, const struct sl_conf_where *w)
{
	const union sl_conf_val *v;

	v = dscope_eval(c->hosts, c->host_exact_cnt, c->host_cnt, w->host, opt);
	if (v == NULL)
		v = dscope_eval(c->domains, c->domain_exact_cnt, c->domain_cnt, w->domain, opt);
	return v;
}

const struct sl_conf_binding *
sl_conf_binding_find(const struct sl_conf_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->binding_cnt; i++)
		if (strcmp(s->bindings[i].name, name) == 0)
			return &s->bindings[i];
	return NULL;
}

const union sl_conf_val *
sl_conf_eval(const struct sl_conf_snapshot *s, enum sl_opt opt, const struct sl_conf_where *w)
{
	static const struct sl_conf_where nowhere = { NULL, NULL, NULL };
	const struct sl_conf_binding *bd;
	const struct sl_conf_binding_group *g = NULL;
	const struct sl_conf_setting *set;
	const union sl_conf_val *v;

	SL_CHECK_OBJ(s, SL_CONF_SNAPSHOT_MAGIC);
	SL_ASSERT(opt < SL_OPT__COUNT);
	if (w == NULL)
		w = &nowhere;
	bd = sl_conf_binding_find(s, w->binding ? w->binding : "default");
	if (bd != NULL) {
		g = bd->group;
		if ((v = cont_eval(&bd->c, opt, w)) != NULL)
			return v;
	}
	if (g != NULL && (v = cont_eval(&g->c, opt, w)) != NULL)
		return v;
	if (bd != NULL && (set = sl_conf_settings_find(&bd->set, opt)) != NULL)
		return &set->v;
	if (g != NULL && (set = sl_conf_settings_find(&g->set, opt)) != NULL)
		return &set->v;
	if ((v = cont_eval(&s->top, opt, w)) != NULL)
		return v;
	return s->global[opt];
}

/* Does any Host stanza of the list (exact or regex) match `name`? */
static bool
dscope_declared(const struct sl_conf_dscope *v, size_t exact_cnt, size_t cnt, const char *name)
{
	for (size_t i = 0; i < exact_cnt; i++)
		if (strcasecmp(name, v[i].name) == 0)
			return true;
	for (size_t i = exact_cnt; i < cnt; i++)
		if (dscope_matches(&v[i], name))
			return true;
	return false;
}

const union sl_conf_val *
sl_conf_host_eval(const struct sl_conf_snapshot *s, enum sl_opt opt, const struct sl_conf_where *w,
		  bool *is_declared)
{
	const struct sl_conf_binding *bd;
	const struct sl_conf_container *conts[3];
	size_t n = 0;

	SL_CHECK_OBJ(s, SL_CONF_SNAPSHOT_MAGIC);
	*is_declared = false;
	if (w == NULL || w->host == NULL)
		return NULL;
	bd = sl_conf_binding_find(s, w->binding ? w->binding : "default");
	if (bd != NULL) {
		conts[n++] = &bd->c;
		if (bd->group != NULL)
			conts[n++] = &bd->group->c;
	}
	conts[n++] = &s->top;
	for (size_t i = 0; i < n; i++) {
		const struct sl_conf_container *c = conts[i];
		const union sl_conf_val *v =
			dscope_eval(c->hosts, c->host_exact_cnt, c->host_cnt, w->host, opt);

		if (v != NULL) {
			*is_declared = true;
			return v;
		}
		if (!*is_declared && c->host_cnt > 0)
			*is_declared =
				dscope_declared(c->hosts, c->host_exact_cnt, c->host_cnt, w->host);
	}
	return NULL;
}

bool
sl_conf_bool(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	SL_ASSERT(sl_conf_options[opt].type == SL_T_BOOL);
	return s->global[opt] != NULL && s->global[opt]->b;
}

int64_t
sl_conf_int(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	enum sl_conf_type t = sl_conf_options[opt].type;

	SL_ASSERT(t == SL_T_INT || t == SL_T_SIZE || t == SL_T_SECONDS || t == SL_T_MODE);
	return s->global[opt] != NULL ? s->global[opt]->i : 0;
}

const char *
sl_conf_str(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	enum sl_conf_type t = sl_conf_options[opt].type;

	SL_ASSERT(t == SL_T_STRING || t == SL_T_PATH || t == SL_T_ENUM || t == SL_T_HOSTPORT);
	return s->global[opt] != NULL ? s->global[opt]->s : NULL;
}

const struct sl_conf_block *
sl_conf_block_next(const struct sl_conf_snapshot *s, const char *kind, size_t *pos)
{
	while (*pos < s->block_cnt) {
		const struct sl_conf_block *b = &s->blocks[(*pos)++];

		if (strcasecmp(b->kind, kind) == 0)
			return b;
	}
	return NULL;
}

const union sl_conf_val *
sl_conf_block_get(const struct sl_conf_snapshot *s, const struct sl_conf_block *b, enum sl_opt opt)
{
	const struct sl_conf_setting *set;

	SL_ASSERT(opt < SL_OPT__COUNT);
	if (b != NULL && (set = sl_conf_settings_find(&b->set, opt)) != NULL)
		return &set->v;
	return s->dflt[opt];
}
