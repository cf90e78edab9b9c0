/*
 * conf/conf_err.h - configuration diagnostics with file:line:col.
 *
 * Every problem found while reading a configuration (syntax, include, schema,
 * value) becomes one diagnostic "file:line:col: reason" collected here, so
 * `sluiced -t`, a reload and the console can all report the same text.
 *
 * Threads: a list is owned by the thread that parses.  Parses nothing.
 */
#ifndef SL_CONF_CONF_ERR_H
#define SL_CONF_CONF_ERR_H

#include <stddef.h>
#include <stdio.h>

/* A position in a configuration file: 1-based line and column (in bytes). */
struct sl_conf_loc {
	const char *file; /* borrowed: owned by the tree or snapshot that made it */
	unsigned line;
	unsigned col;
};

struct sl_conf_error {
	char *file; /* owned */
	unsigned line;
	unsigned col;
	char *msg; /* owned: one line, no trailing newline */
};

/* A message longer than this is cut (with "..."); control bytes become '?'. */
#define SL_CONF_ERROR_MAX_LEN 480

/* Parsing stops adding after this many diagnostics (the last one says so). */
#define SL_CONF_MAX_ERRORS 50

struct sl_conf_errors {
	struct sl_conf_error *list; /* owned array: errors (the configuration is refused) */
	size_t cnt;
	size_t cap;
	struct sl_conf_error *warn; /* owned array: warnings (accepted, but worth a look) */
	size_t warn_cnt;
	size_t warn_cap;
	struct sl_conf_error *note; /* owned array: notices (fine, but not what it seems) */
	size_t note_cnt;
	size_t note_cap;
};

/* Append "loc: fmt..." (loc may be NULL for errors with no position). */
void sl_conf_error_add(struct sl_conf_errors *errs, const struct sl_conf_loc *loc, const char *fmt,
		       ...) __attribute__((format(printf, 3, 4)));
/* Append a warning: the configuration is accepted but this is probably a mistake. */
void sl_conf_warning_add(struct sl_conf_errors *errs, const struct sl_conf_loc *loc,
			 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/*
 * Append a notice: the configuration is fine, but the reader should know
 * something about it (an option accepted for compatibility that has no
 * effect in sluice).
 */
void sl_conf_notice_add(struct sl_conf_errors *errs, const struct sl_conf_loc *loc, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));
/* Write each notice as "file:line:col: msg\n" (no prefix: the message says what it is). */
void sl_conf_notices_print(const struct sl_conf_errors *errs, FILE *out);
/* Write each warning as "file:line:col: warning: msg\n". */
void sl_conf_warnings_print(const struct sl_conf_errors *errs, FILE *out);
/* Write each error as "file:line:col: msg\n". */
void sl_conf_errors_print(const struct sl_conf_errors *errs, FILE *out);
/* Format diagnostic `i` as "file:line:col: msg" into a new string (caller frees). */
char *sl_conf_error_format(const struct sl_conf_error *e);
/* Free every error, warning and notice; the lists are empty and reusable afterwards. */
void sl_conf_errors_clear(struct sl_conf_errors *errs);

#endif /* SL_CONF_CONF_ERR_H */
