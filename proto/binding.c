/*
 * proto/binding.c - which binding a message leaves from (see binding.h).
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "proto/binding.h"

static bool
binding_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool
sl_binding_header(const char *data, size_t len, char *name, size_t name_size, uint64_t *off,
		  uint64_t *field_len)
{
	const char *p = data;
	const char *end = data + (len < SL_BINDING_SCAN_MAX ? len : SL_BINDING_SCAN_MAX);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *next;

		if (eol == NULL || p[0] == '\r' || p[0] == '\n')
			return false; /* the end of the header section (or of what we scan) */
		next = eol + 1;
		while (next < end && (*next == ' ' || *next == '\t')) {
			eol = memchr(next, '\n', (size_t)(end - next));
			if (eol == NULL)
				return false;
			next = eol + 1;
		}
		if ((size_t)(next - p) > 10 && strncasecmp(p, "X-Binding:", 10) == 0) {
			size_t n = 0;

			/* Unfold: drop line breaks, keep one space per run of white space. */
			for (const char *v = p + 10; v < next; v++) {
				if (binding_ws(*v)) {
					if (n > 0 && name[n - 1] != ' ' && n + 1 < name_size)
						name[n++] = ' ';
				} else if (n + 1 < name_size) {
					name[n++] = *v;
				}
			}
			while (n > 0 && name[n - 1] == ' ')
				n--;
			if (name_size > 0)
				name[n] = '\0';
			*off = (uint64_t)(p - data);
			*field_len = (uint64_t)(next - p);
			return true;
		}
		p = next;
	}
	return false;
}

const struct sl_conf_binding *
sl_binding_match_domain(const struct sl_conf_snapshot *s, const char *sender)
{
	const char *at = sender ? strrchr(sender, '@') : NULL;

	if (at == NULL)
		return NULL;
	for (size_t i = 0; i < s->binding_cnt; i++) {
		const struct sl_conf_setting *set =
			sl_conf_settings_find(&s->bindings[i].set, SL_OPT_MATCH_DOMAIN);

		if (set == NULL)
			continue;
		for (size_t k = 0; k < set->v.list.cnt; k++)
			if (strcasecmp(set->v.list.v[k], at + 1) == 0)
				return &s->bindings[i];
	}
	return NULL;
}

const struct sl_conf_binding *
sl_binding_choose(const struct sl_conf_snapshot *s, const char *header, const char *context,
		  const char *sender, const char **unknown)
{
	const char *name = header && header[0] ? header : context;
	const struct sl_conf_binding *b;

	*unknown = NULL;
	if (name == NULL || name[0] == '\0')
		return sl_binding_match_domain(s, sender);
	b = sl_conf_binding_find(s, name);
	if (b == NULL && strcasecmp(name, "default") != 0)
		*unknown = name;
	return b;
}
