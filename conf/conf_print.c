/*
 * conf/conf_print.c - print a snapshot back as configuration text (`sluiced -T`).
 *
 * The output is the normalised configuration: every global option with its
 * effective value (defaults filled in; options with no value appear as a
 * comment), then listeners, binding groups, bindings, Domain/Host scopes and
 * named blocks with every option of their scope.  Strings are always quoted
 * and escaped, so the output parses back to an equal snapshot (a unit test
 * checks that printing is a fixed point).
 *
 * Threads: any thread holding a reference to the snapshot.  Parses nothing.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_snapshot.h"
#include "engine/alloc.h"
#include "engine/assert.h"

/* Write `s` as a quoted configuration string. */
static void
print_quoted(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		switch (*s) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		default:
			fputc(*s, out);
		}
	}
	fputc('"', out);
}

static void print_listener(FILE *out, const struct sl_conf_listener *l, const char *indent);

static void
print_val(FILE *out, const struct sl_conf_option *o, const union sl_conf_val *v, const char *indent)
{
	switch (o->type) {
	case SL_T_BOOL:
		fputs(v->b ? "true" : "false", out);
		break;
	case SL_T_INT:
	case SL_T_SIZE:
	case SL_T_SECONDS:
		fprintf(out, "%" PRId64, v->i);
		break;
	case SL_T_MODE:
		fprintf(out, "%04" PRIo64, (uint64_t)v->i);
		break;
	case SL_T_STRING:
	case SL_T_PATH:
	case SL_T_ENUM:
	case SL_T_HOSTPORT:
		print_quoted(out, v->s);
		break;
	case SL_T_LIST:
		fputs("(", out);
		for (size_t i = 0; i < v->list.cnt; i++) {
			fputc(' ', out);
			print_quoted(out, v->list.v[i]);
		}
		fputs(" )", out);
		break;
	case SL_T_INT_OR_WORD:
		if (v->iw.word != NULL)
			print_quoted(out, v->iw.word);
		else
			fprintf(out, "%" PRId64, v->iw.i);
		break;
	case SL_T_THROTTLE:
		fprintf(out, "\"%" PRIu32 "/%" PRIu32 "\"", v->thr.cnt, v->thr.secs);
		break;
	case SL_T_PARAMS:
		fputs("(", out);
		for (size_t i = 0; i < v->kv.cnt; i++) {
			fputc(' ', out);
			print_quoted(out, v->kv.v[i].val);
		}
		fputs(" )", out);
		break;
	case SL_T_LISTENER:
		print_listener(out, v->listener, indent);
		break;
	}
}

char *
sl_conf_val_format(const struct sl_conf_option *o, const union sl_conf_val *v)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	SL_ASSERT(out != NULL);
	print_val(out, o, v, "");
	fclose(out);
	return buf;
}

static void
print_kv_params(FILE *out, const struct sl_conf_kvlist *kv)
{
	fputs(" [", out);
	for (size_t i = 0; i < kv->cnt; i++) {
		fprintf(out, " %s = ", kv->v[i].key);
		print_quoted(out, kv->v[i].val);
	}
	fputs(" ]", out);
}

static void
print_settings_inline(FILE *out, const struct sl_conf_settings *set)
{
	fputs(" [", out);
	for (size_t i = 0; i < set->cnt; i++) {
		const struct sl_conf_option *o = &sl_conf_options[set->v[i].id];

		fprintf(out, " %s = ", o->name);
		print_val(out, o, &set->v[i].v, "");
	}
	fputs(" ]", out);
}

static void
print_acl_entry(FILE *out, const struct sl_conf_acl_entry *e)
{
	char cidr[64];

	sl_cidr_format(&e->cidr, cidr, sizeof(cidr));
	fprintf(out, "%s = (", cidr);
	if (e->personality->cnt > 0) {
		fputs(" personality", out);
		print_settings_inline(out, e->personality);
	}
	if (e->context->cnt > 0) {
		fputs(" context", out);
		print_kv_params(out, e->context);
	}
	if (e->has_relay) {
		fputs(" relay_for_sending_domains", out);
		if (e->relay_domains[0] != NULL) {
			fputs(" [", out);
			for (const char *const *d = e->relay_domains; *d; d++) {
				fputc(' ', out);
				print_quoted(out, *d);
				fputs(" = true", out);
			}
			fputs(" ]", out);
		}
	}
	for (size_t i = 0; i < e->prop_cnt; i++) {
		fprintf(out, " %s", e->props[i].name);
		if (e->props[i].params->cnt > 0)
			print_kv_params(out, e->props[i].params);
	}
	if (e->has_continue)
		fputs(" continue", out);
	fputs(" )", out);
}

static void
print_listener(FILE *out, const struct sl_conf_listener *l, const char *indent)
{
	static const char *const protos[] = { "both", "ipv4", "ipv6" };

	fputs("(\n", out);
	for (size_t i = 0; i < l->addr_cnt; i++) {
		const struct sl_conf_listen_addr *a = &l->addrs[i];

		fprintf(out, "%s\t%s,%u~%u <status=\"%s\"", indent, a->text, a->backlog,
			a->accept_threads, a->is_disabled ? "disabled" : "enabled");
		if (a->family == SL_LISTEN_ANY)
			fprintf(out, " proto=%s", protos[a->proto]);
		fputs(">", out);
		if (a->acl_cnt > 0) {
			fputs(" [\n", out);
			for (size_t k = 0; k < a->acl_cnt; k++) {
				fprintf(out, "%s\t\t", indent);
				print_acl_entry(out, &a->acl[k]);
				fputc('\n', out);
			}
			fprintf(out, "%s\t]", indent);
		}
		fputc('\n', out);
	}
	fprintf(out, "%s)", indent);
}

/* One "Name = value" line; PARAMS options print as "Name [ key = value ... ]". */
static void
print_option(FILE *out, const struct sl_conf_option *o, const union sl_conf_val *v,
	     const char *indent)
{
	if (o->type == SL_T_PARAMS) {
		fprintf(out, "%s%s", indent, o->name);
		print_kv_params(out, &v->kv);
	} else {
		fprintf(out, "%s%s = ", indent, o->name);
		print_val(out, o, v, indent);
	}
	fputc('\n', out);
}

/*
 * An option that has no effect in sluice, at its default: as a comment, so
 * that loading the printed configuration draws no notice for what nobody
 * set (an explicit setting prints as it is, and gets its notice).
 */
static void
print_default(FILE *out, const struct sl_conf_option *o, const union sl_conf_val *v,
	      const char *indent)
{
	if (o->noeffect == NULL) {
		print_option(out, o, v, indent);
		return;
	}
	fprintf(out, "%s# ", indent);
	print_option(out, o, v, "");
}

static void
print_settings(FILE *out, const struct sl_conf_settings *set, const char *indent)
{
	for (size_t i = 0; i < set->cnt; i++)
		print_option(out, &sl_conf_options[set->v[i].id], &set->v[i].v, indent);
}

static void
print_container(FILE *out, const struct sl_conf_container *c, const char *indent)
{
	char inner[32];

	snprintf(inner, sizeof(inner), "%s\t", indent);
	for (size_t i = 0; i < c->host_cnt; i++) {
		fprintf(out, "%sHost ", indent);
		print_quoted(out, c->hosts[i].name);
		fputs(" {\n", out);
		print_settings(out, &c->hosts[i].set, inner);
		fprintf(out, "%s}\n", indent);
	}
	for (size_t i = 0; i < c->domain_cnt; i++) {
		fprintf(out, "%sDomain ", indent);
		print_quoted(out, c->domains[i].name);
		fputs(" {\n", out);
		print_settings(out, &c->domains[i].set, inner);
		fprintf(out, "%s}\n", indent);
	}
}

static void
print_binding(FILE *out, const struct sl_conf_binding *b, const char *indent)
{
	char inner[32];

	snprintf(inner, sizeof(inner), "%s\t", indent);
	fprintf(out, "%sBinding ", indent);
	print_quoted(out, b->name);
	fputs(" {\n", out);
	print_settings(out, &b->set, inner);
	print_container(out, &b->c, inner);
	fprintf(out, "%s}\n", indent);
}

static void
print_block(FILE *out, const struct sl_conf_snapshot *s, const struct sl_conf_block *b)
{
	fputs(b->kind, out);
	if (b->name != NULL) {
		fputc(' ', out);
		print_quoted(out, b->name);
	}
	if (b->is_passive)
		fputs(" passive", out);
	if (b->attrs->cnt > 0) {
		fputs(" <", out);
		for (size_t i = 0; i < b->attrs->cnt; i++) {
			fprintf(out, "%s%s=", i ? " " : "", b->attrs->v[i].key);
			print_quoted(out, b->attrs->v[i].val);
		}
		fputs(">", out);
	}
	fputs(" {\n", out);
	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];
		const union sl_conf_val *v;
		bool is_printed = false;

		if (!(o->scopes & b->scope))
			continue;
		/* Every occurrence of a repeatable PARAMS stanza, in order. */
		for (size_t k = 0; k < b->set.cnt; k++) {
			if (b->set.v[k].id == o->id && o->type == SL_T_PARAMS) {
				print_option(out, o, &b->set.v[k].v, "\t");
				is_printed = true;
			}
		}
		if (is_printed)
			continue;
		v = sl_conf_block_get(s, b, o->id);
		if (v == NULL)
			fprintf(out, "\t# %s is not set\n", o->name);
		else if (sl_conf_settings_find(&b->set, o->id) != NULL)
			print_option(out, o, v, "\t");
		else
			print_default(out, o, v, "\t");
	}
	fputs("}\n", out);
}

void
sl_conf_snapshot_print(const struct sl_conf_snapshot *s, FILE *out)
{
	SL_CHECK_OBJ(s, SL_CONF_SNAPSHOT_MAGIC);
	fprintf(out, "# sluice configuration from %s, generation %" PRIu64 ", defaults filled in\n",
		s->source, s->generation);
	for (size_t i = 0; i < SL_OPT__COUNT; i++) {
		const struct sl_conf_option *o = &sl_conf_options[i];

		if (!(o->scopes & SL_S_GLOBAL))
			continue;
		if (s->global[i] == NULL) {
			fprintf(out, "# %s is not set\n", o->name);
			continue;
		}
		if (s->global_loc[i] != NULL)
			print_option(out, o, s->global[i], "");
		else
			print_default(out, o, s->global[i], "");
	}
	print_container(out, &s->top, "");
	for (size_t g = 0; g < s->group_cnt; g++) {
		fputs("Binding_Group ", out);
		print_quoted(out, s->groups[g].name);
		fputs(" {\n", out);
		print_settings(out, &s->groups[g].set, "\t");
		print_container(out, &s->groups[g].c, "\t");
		for (size_t i = 0; i < s->binding_cnt; i++)
			if (s->bindings[i].group == &s->groups[g])
				print_binding(out, &s->bindings[i], "\t");
		fputs("}\n", out);
	}
	for (size_t i = 0; i < s->binding_cnt; i++)
		if (s->bindings[i].group == NULL)
			print_binding(out, &s->bindings[i], "");
	for (size_t i = 0; i < s->block_cnt; i++)
		print_block(out, s, &s->blocks[i]);
}
