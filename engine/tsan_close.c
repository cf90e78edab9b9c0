/*
 * tsan_close.c - let ThreadSanitizer see libuv's close of a descriptor.
 *
 * libuv closes descriptors with syscall(SYS_close, fd) unless libuv itself
 * was built with -fsanitize=thread (uv__close_nocancel); Debian's is not.
 * TSan intercepts close() but not syscall(), so it never learns that the
 * number was freed: when the kernel hands the same number to a spool
 * segment opened on another thread, TSan compares that thread's open, pread
 * and close with the old socket's accept4 and epoll_ctl and reports races
 * that the kernel's descriptor table rules out.
 *
 * In a TSan build only, sluiced defines syscall() itself: SYS_close goes
 * through close(), which TSan intercepts (it forgets the old descriptor,
 * then closes), which is what libuv does in its own TSan builds; every other
 * call goes on to the C library's syscall() with its arguments untouched.
 * Other builds compile nothing here.
 */
#if defined(__SANITIZE_THREAD__)

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*syscall_fn)(long, ...);

long
syscall(long nr, ...)
{
	static _Atomic(syscall_fn) real;
	va_list ap;
	long a[6];

	/* The kernel takes at most six arguments, each a register wide. */
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_close)
		return close((int)a[0]);
	syscall_fn fn = atomic_load_explicit(&real, memory_order_acquire);
	if (fn == NULL) {
		fn = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
		atomic_store_explicit(&real, fn, memory_order_release);
	}
	return fn(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

#else

/* ISO C wants at least one declaration in a translation unit. */
typedef int sl_tsan_close_unused;

#endif
