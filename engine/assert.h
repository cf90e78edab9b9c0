/*
 * engine/assert.h - always-on assertions and object magic checks.
 *
 * Programming errors (a broken invariant, a struct handed to the wrong
 * consumer, a use after free caught by a zeroed magic) abort the process
 * after flushing the log.  These checks are never compiled out: a mail
 * server that keeps running on a broken invariant loses mail.
 *
 * Threads: any.  Parses no input.  Owns nothing.
 */
#ifndef SL_ENGINE_ASSERT_H
#define SL_ENGINE_ASSERT_H

/*
 * Report a failed assertion and abort.  Flushes the log synchronously first.
 * Never returns.
 */
void sl__assert_fail(const char *expr, const char *file, int line, const char *func)
	__attribute__((noreturn, cold));

#define SL_LIKELY(x)   __builtin_expect(!!(x), 1)
#define SL_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Abort with file:line when `expr` is false.  Always evaluated. */
#define SL_ASSERT(expr)                                                       \
	do {                                                                  \
		if (SL_UNLIKELY(!(expr)))                                     \
			sl__assert_fail(#expr, __FILE__, __LINE__, __func__); \
	} while (0)

/*
 * Long-lived structs that cross threads start with `unsigned magic`; the
 * constructor sets it, the destructor zeroes it, and every hand-off checks it
 * (Varnish's miniobj idea).
 */
#define SL_CHECK_OBJ(ptr, type_magic)                    \
	do {                                             \
		SL_ASSERT((ptr) != NULL);                \
		SL_ASSERT((ptr)->magic == (type_magic)); \
	} while (0)

#define SL_CHECK_OBJ_OR_NULL(ptr, type_magic)                    \
	do {                                                     \
		if ((ptr) != NULL)                               \
			SL_ASSERT((ptr)->magic == (type_magic)); \
	} while (0)

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Happens-before edges ThreadSanitizer cannot see.  liburcu 0.13 hands
 * pointers between threads with inline assembly and its own futexes, none of
 * which TSan instruments, so a queued event or a published snapshot looks
 * unsynchronised to it.  The engine marks each hand-off instead: RELEASE on
 * an object before its pointer leaves a thread (enqueue, publish, put),
 * ACQUIRE where the pointer arrives (dequeue, dereference, free).  TSan then
 * checks the code around the hand-off rather than needing suppressions.
 * Empty in every other build.
 */
#if defined(__SANITIZE_THREAD__)
#define SL_HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SL_HAVE_TSAN 1
#endif
#endif
#ifdef SL_HAVE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define SL_TSAN_ACQUIRE(ptr) __tsan_acquire((void *)(ptr))
#define SL_TSAN_RELEASE(ptr) __tsan_release((void *)(ptr))
#else
#define SL_TSAN_ACQUIRE(ptr) ((void)(ptr))
#define SL_TSAN_RELEASE(ptr) ((void)(ptr))
#endif

#endif /* SL_ENGINE_ASSERT_H */
