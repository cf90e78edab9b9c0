/*
 * engine/alloc.h - the one allocator interface.
 *
 * Thin wrappers over malloc (jemalloc when linked) that never return NULL:
 * running out of memory is prevented by admission limits upstream, so an
 * allocation failure here is fatal (logged, then abort).
 *
 * Threads: any.  Ownership: the caller owns what these return and frees it
 * with sl_free(); sl_free(NULL) is a no-op.
 */
#ifndef SL_ENGINE_ALLOC_H
#define SL_ENGINE_ALLOC_H

#include <stddef.h>

void *sl_malloc(size_t len) __attribute__((malloc, returns_nonnull, alloc_size(1)));
void *sl_calloc(size_t cnt, size_t len) __attribute__((malloc, returns_nonnull, alloc_size(1, 2)));
void *sl_realloc(void *ptr, size_t len) __attribute__((returns_nonnull, alloc_size(2)));
/* Overflow-checked sl_realloc(ptr, cnt * len). */
void *sl_reallocarray(void *ptr, size_t cnt, size_t len) __attribute__((returns_nonnull));
char *sl_strdup(const char *s) __attribute__((malloc, returns_nonnull));
/* Copy of the first `len` bytes of `s`, NUL-terminated. */
char *sl_strndup(const char *s, size_t len) __attribute__((malloc, returns_nonnull));
/* printf into a new string. */
char *sl_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));
void sl_free(void *ptr);

/* Allocate one zeroed object of the pointee's type: p = SL_NEW(p). */
#define SL_NEW(ptr) ((__typeof__(ptr))sl_calloc(1, sizeof(*(ptr))))

#endif /* SL_ENGINE_ALLOC_H */
