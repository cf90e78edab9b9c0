/*
 * engine/alloc.c - allocation wrappers that abort instead of returning NULL.
 *
 * With jemalloc linked (the default) malloc() and friends resolve to it; the
 * sanitizer builds configure --without-jemalloc so ASan sees libc's malloc.
 * Threads: any.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/alloc.h"

static void __attribute__((noreturn, cold)) alloc_fail(size_t len)
{
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "sluice: out of memory allocating %zu bytes\n", len);

	/* No logging here: the logger itself allocates. */
	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
		abort();
	abort();
}

void *
sl_malloc(size_t len)
{
	void *p = malloc(len ? len : 1);

	if (p == NULL)
		alloc_fail(len);
	return p;
}

void *
sl_calloc(size_t cnt, size_t len)
{
	void *p = calloc(cnt ? cnt : 1, len ? len : 1);

	if (p == NULL)
		alloc_fail(cnt * len);
	return p;
}

void *
sl_realloc(void *ptr, size_t len)
{
	void *p = realloc(ptr, len ? len : 1);

	if (p == NULL)
		alloc_fail(len);
	return p;
}

void *
sl_reallocarray(void *ptr, size_t cnt, size_t len)
{
	if (len != 0 && cnt > SIZE_MAX / len)
		alloc_fail(SIZE_MAX);
	return sl_realloc(ptr, cnt * len);
}

char *
sl_strdup(const char *s)
{
	return sl_strndup(s, strlen(s));
}

char *
sl_strndup(const char *s, size_t len)
{
	char *p = sl_malloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
sl_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		alloc_fail(0);
	return p;
}

void
sl_free(void *ptr)
{
	free(ptr);
}
