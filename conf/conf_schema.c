/*
 * conf/conf_schema.c - the option table and name lookup (see conf_schema.h).
 *
 * sl_conf_options[] is generated from conf_options.def with designated
 * initializers, so a row always sits at its own enum index.  Lookups go
 * through an index of row numbers sorted by case-folded name, built once by
 * pthread_once() on first use and never changed afterwards: readers need no
 * lock, and a lookup costs a binary search (a few string compares).
 *
 * Threads: any.  Parses nothing: names come from the parse tree and are only
 * compared.  Ownership: everything here is static and read-only.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_schema.h"

const struct sl_conf_option sl_conf_options[SL_OPT__COUNT] = {
#define SL_OPT(id_, name_, type_, constraint_, def_, scopes_, summary_) \
	SL_OPT_NOEFFECT(id_, name_, type_, constraint_, def_, scopes_, summary_, NULL)
#define SL_OPT_NOEFFECT(id_, name_, type_, constraint_, def_, scopes_, summary_, reason_) \
	[SL_OPT_##id_] = {                                                                \
		.id = SL_OPT_##id_,                                                       \
		.name = name_,                                                            \
		.type = type_,                                                            \
		.constraint = constraint_,                                                \
		.def = def_,                                                              \
		.scopes = scopes_,                                                        \
		.summary = summary_,                                                      \
		.noeffect = reason_,                                                      \
	},
#include "conf/conf_options.def"
#undef SL_OPT_NOEFFECT
#undef SL_OPT
};

/* Row numbers sorted by name (strcasecmp), ties by row number. */
static unsigned short schema_index[SL_OPT__COUNT];
static pthread_once_t schema_index_once = PTHREAD_ONCE_INIT;

_Static_assert(SL_OPT__COUNT <= 65535, "schema_index holds row numbers in unsigned short");

static int
schema_cmp(const void *a, const void *b)
{
	unsigned ia = *(const unsigned short *)a;
	unsigned ib = *(const unsigned short *)b;
	int c = strcasecmp(sl_conf_options[ia].name, sl_conf_options[ib].name);

	if (c != 0)
		return c;
	return ia < ib ? -1 : ia > ib;
}

static void
schema_index_build(void)
{
	for (size_t i = 0; i < SL_OPT__COUNT; i++)
		schema_index[i] = (unsigned short)i;
	qsort(schema_index, SL_OPT__COUNT, sizeof(schema_index[0]), schema_cmp);
}

/*
 * Other spellings Momentum's own documents use for an option.  Its scope
 * fallback page writes max_resident_active_queue_size for
 * Max_Resident_Active_Queue.
 */
static const struct {
	const char *alias;
	const char *name;
} schema_aliases[] = {
	{ "max_resident_active_queue_size", "Max_Resident_Active_Queue" },
};

const struct sl_conf_option *
sl_conf_option_find(const char *name, unsigned scope)
{
	size_t lo = 0, hi = SL_OPT__COUNT;
	const struct sl_conf_option *first;

	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(schema_aliases) / sizeof(schema_aliases[0]); i++)
		if (strcasecmp(name, schema_aliases[i].alias) == 0)
			name = schema_aliases[i].name;
	pthread_once(&schema_index_once, schema_index_build);
	/* Lower bound: the first index entry whose name is not below `name`. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcasecmp(sl_conf_options[schema_index[mid]].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == SL_OPT__COUNT || strcasecmp(sl_conf_options[schema_index[lo]].name, name) != 0)
		return NULL;
	first = &sl_conf_options[schema_index[lo]];
	for (size_t i = lo; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[schema_index[i]];

		if (strcasecmp(o->name, name) != 0)
			break;
		if (scope != 0 && (o->scopes & scope) == scope)
			return o;
	}
	return first;
}

/* Indexed by bit number; the spelling a configuration file uses. */
static const char *const scope_names[] = {
	"global",
	"binding_group",
	"binding",
	"domain",
	"host",
	"personality",
	"SNMP",
	"SNMP_TRAPS",
	"ThreadPool",
	"ec_logger",
	"bounce_classifier",
	"Security",
	"RFC2822",
	"rdns",
};

_Static_assert(SL_S__ALL == (1u << (sizeof(scope_names) / sizeof(scope_names[0]))) - 1,
	       "scope_names must name every SL_S_* bit");

const char *
sl_conf_scope_name(unsigned scope_bit)
{
	if (scope_bit == 0 || (scope_bit & (scope_bit - 1)) != 0 || (scope_bit & ~SL_S__ALL) != 0)
		return "unknown";
	return scope_names[__builtin_ctz(scope_bit)];
}

void
sl_conf_scopes_format(unsigned scopes, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (scopes == 0) {
		snprintf(buf, len, "none");
		return;
	}
	for (unsigned bit = 1; bit != 0 && used < len; bit <<= 1) {
		int n;

		if ((scopes & bit) == 0)
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
			     sl_conf_scope_name(bit));
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* Checks supplied from outside conf/ (sl_conf_check_set); set before threads start. */
static int (*schema_checks[SL_OPT__COUNT])(const char *text, char *why, size_t why_len);

void
sl_conf_check_set(enum sl_opt opt, int (*check_fn)(const char *text, char *why, size_t why_len))
{
	if ((unsigned)opt < SL_OPT__COUNT)
		schema_checks[opt] = check_fn;
}

int (*sl_conf_check_get(enum sl_opt opt))(const char *text, char *why, size_t why_len)
{
	return (unsigned)opt < SL_OPT__COUNT ? schema_checks[opt] : NULL;
}
