/*
 * engine/buf.h - a growable byte buffer.
 *
 * The one buffer type for bytes on their way in or out: protocol replies,
 * partial input lines, formatted log lines.  It grows by doubling and never
 * shrinks until reset or freed; callers bound what they put in it.
 *
 * Threads: a buffer belongs to one thread at a time (it may travel inside
 * an event).  Parses nothing.
 */
#ifndef SL_ENGINE_BUF_H
#define SL_ENGINE_BUF_H

#include <stddef.h>

struct sl_buf {
	char *data; /* owned; not NUL-terminated unless sl_buf_cstr() was called */
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated */
};

#define SL_BUF_INIT        \
	{                  \
		NULL, 0, 0 \
	}

/* Make room for `extra` more bytes; returns a pointer to data + len. */
char *sl_buf_reserve(struct sl_buf *b, size_t extra);
/* Append `len` bytes. */
void sl_buf_append(struct sl_buf *b, const void *p, size_t len);
/* Append a NUL-terminated string. */
void sl_buf_puts(struct sl_buf *b, const char *s);
/* Append printf output. */
void sl_buf_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first `n` bytes (n <= len), moving the rest to the front. */
void sl_buf_consume(struct sl_buf *b, size_t n);
/* NUL-terminate (not counted in len) and return data. */
const char *sl_buf_cstr(struct sl_buf *b);
/* Empty it, keeping the allocation. */
static inline void
sl_buf_reset(struct sl_buf *b)
{
	b->len = 0;
}
/* Release the memory; the buffer is empty and reusable.  NULL-safe contents. */
void sl_buf_free(struct sl_buf *b);

#endif /* SL_ENGINE_BUF_H */
