/*
 * engine/buf.c - growable byte buffer (see buf.h).
 * Threads: the owner of the buffer.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"

char *
sl_buf_reserve(struct sl_buf *b, size_t extra)
{
	if (b->cap - b->len < extra) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap - b->len < extra) {
			SL_ASSERT(cap < ((size_t)1 << 62));
			cap *= 2;
		}
		b->data = sl_realloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->len;
}

void
sl_buf_append(struct sl_buf *b, const void *p, size_t len)
{
	if (len == 0)
		return;
	memcpy(sl_buf_reserve(b, len), p, len);
	b->len += len;
}

void
sl_buf_puts(struct sl_buf *b, const char *s)
{
	sl_buf_append(b, s, strlen(s));
}

void
sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	/* Most lines fit in what is already there: format once, grow only if not. */
	sl_buf_reserve(b, 128);
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, room, fmt, ap);
	va_end(ap);
	SL_ASSERT(n >= 0);
	if ((size_t)n >= room) {
		sl_buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void
sl_buf_consume(struct sl_buf *b, size_t n)
{
	SL_ASSERT(n <= b->len);
	if (n < b->len)
		memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

const char *
sl_buf_cstr(struct sl_buf *b)
{
	sl_buf_reserve(b, 1);
	b->data[b->len] = '\0';
	return b->data;
}

void
sl_buf_free(struct sl_buf *b)
{
	sl_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
