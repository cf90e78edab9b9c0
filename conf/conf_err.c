/*
 * conf/conf_err.c - diagnostics lists (see conf_err.h).
 * Threads: the parsing thread.  Parses nothing; formats caller text.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf_err.h"
#include "engine/alloc.h"

static void
err_vadd(struct sl_conf_error **list, size_t *cnt, size_t *cap, const struct sl_conf_loc *loc,
	 const char *fmt, va_list ap)
{
	struct sl_conf_error *e;
	char *msg = NULL;

	if (*cnt > SL_CONF_MAX_ERRORS)
		return;
	if (*cnt == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*list = sl_reallocarray(*list, *cap, sizeof(**list));
	}
	e = &(*list)[(*cnt)++];
	memset(e, 0, sizeof(*e));
	if (*cnt > SL_CONF_MAX_ERRORS) {
		e->msg = sl_strdup("too many errors, stopping");
		return;
	}
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	e->msg = msg ? msg : sl_strdup(fmt);
	/*
	 * Messages quote configuration text, which may hold newlines or
	 * control bytes: keep every diagnostic on one printable line, and short.
	 */
	for (char *p = e->msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (strlen(e->msg) > SL_CONF_ERROR_MAX_LEN)
		strcpy(e->msg + SL_CONF_ERROR_MAX_LEN - 3, "...");
	if (loc != NULL && loc->file != NULL) {
		e->file = sl_strdup(loc->file);
		e->line = loc->line;
		e->col = loc->col;
	}
}

void
sl_conf_error_add(struct sl_conf_errors *errs, const struct sl_conf_loc *loc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vadd(&errs->list, &errs->cnt, &errs->cap, loc, fmt, ap);
	va_end(ap);
}

void
sl_conf_warning_add(struct sl_conf_errors *errs, const struct sl_conf_loc *loc, const char *fmt,
		    ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vadd(&errs->warn, &errs->warn_cnt, &errs->warn_cap, loc, fmt, ap);
	va_end(ap);
}

void
sl_conf_notice_add(struct sl_conf_errors *errs, const struct sl_conf_loc *loc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vadd(&errs->note, &errs->note_cnt, &errs->note_cap, loc, fmt, ap);
	va_end(ap);
}

char *
sl_conf_error_format(const struct sl_conf_error *e)
{
	if (e->file == NULL)
		return sl_strdup(e->msg);
	if (e->col == 0)
		return sl_asprintf("%s:%u: %s", e->file, e->line, e->msg);
	return sl_asprintf("%s:%u:%u: %s", e->file, e->line, e->col, e->msg);
}

static void
err_print(const struct sl_conf_error *list, size_t cnt, const char *prefix, FILE *out)
{
	for (size_t i = 0; i < cnt; i++) {
		const struct sl_conf_error *e = &list[i];

		if (e->file == NULL)
			fprintf(out, "%s%s\n", prefix, e->msg);
		else if (e->col == 0)
			fprintf(out, "%s:%u: %s%s\n", e->file, e->line, prefix, e->msg);
		else
			fprintf(out, "%s:%u:%u: %s%s\n", e->file, e->line, e->col, prefix, e->msg);
	}
}

void
sl_conf_errors_print(const struct sl_conf_errors *errs, FILE *out)
{
	err_print(errs->list, errs->cnt, "", out);
}

void
sl_conf_warnings_print(const struct sl_conf_errors *errs, FILE *out)
{
	err_print(errs->warn, errs->warn_cnt, "warning: ", out);
}

void
sl_conf_notices_print(const struct sl_conf_errors *errs, FILE *out)
{
	err_print(errs->note, errs->note_cnt, "", out);
}

static void
err_free(struct sl_conf_error *list, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++) {
		sl_free(list[i].file);
		sl_free(list[i].msg);
	}
	sl_free(list);
}

void
sl_conf_errors_clear(struct sl_conf_errors *errs)
{
	err_free(errs->list, errs->cnt);
	err_free(errs->warn, errs->warn_cnt);
	err_free(errs->note, errs->note_cnt);
	memset(errs, 0, sizeof(*errs));
}
