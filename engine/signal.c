/*
 * engine/signal.c - the signal thread (see signal.h).
 *
 * The handled signals are blocked in every thread, so the kernel queues them
 * on the process and a signalfd delivers them to one thread as ordinary
 * reads; an eventfd beside it lets sl_signal_stop() wake that thread.  The
 * hooks therefore run in thread context and may do anything a thread may.
 *
 * Threads: sl_signal_block/start/stop on the main thread; the hooks on the
 * signal thread.  Parses no input (siginfo records from the kernel).
 * Ownership: the signal thread owns both descriptors; stop closes them.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "engine/rcu.h"
#include "engine/signal.h"

static struct sl_signal_hooks signal_hooks;
static pthread_t signal_thread;
static bool signal_is_started;
static int signal_fd = -1;
static int signal_stop_fd = -1;

static void
signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGUSR1);
}

void
sl_signal_block(void)
{
	sigset_t set;
	int rc;

	signal_set(&set);
	rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	SL_ASSERT(rc == 0);
	signal(SIGPIPE, SIG_IGN);
}

static void
signal_dispatch(int signo)
{
	switch (signo) {
	case SIGHUP:
		if (signal_hooks.reload_fn != NULL)
			signal_hooks.reload_fn(signal_hooks.arg);
		break;
	case SIGTERM:
	case SIGINT:
		if (signal_hooks.stop_fn != NULL)
			signal_hooks.stop_fn(signo, signal_hooks.arg);
		break;
	case SIGUSR1:
		if (signal_hooks.reopen_fn != NULL)
			signal_hooks.reopen_fn(signal_hooks.arg);
		break;
	default:
		break;
	}
}

static void *
signal_main(void *arg)
{
	struct pollfd pfd[2] = { { signal_fd, POLLIN, 0 }, { signal_stop_fd, POLLIN, 0 } };
	struct signalfd_siginfo si;
	ssize_t n;

	pthread_setname_np(pthread_self(), "signal");
	/* Hooks publish snapshots (sl_holder_publish needs a registered thread). */
	sl_rcu_register_thread();
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			SL_ASSERT(errno == EINTR);
			continue;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents == 0)
			continue;
		n = read(signal_fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			continue; /* EAGAIN: another reader cannot exist, but be calm */
		signal_dispatch((int)si.ssi_signo);
	}
	sl_counter_thread_exit();
	sl_rcu_unregister_thread();
	return NULL;
}

int
sl_signal_start(const struct sl_signal_hooks *hooks)
{
	sigset_t set;
	int rc = 0;

	SL_ASSERT(!signal_is_started);
	signal_hooks = *hooks;
	signal_set(&set);
	signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (signal_fd < 0) {
		rc = -errno;
		goto fail_signalfd;
	}
	signal_stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (signal_stop_fd < 0) {
		rc = -errno;
		goto fail_eventfd;
	}
	rc = -pthread_create(&signal_thread, NULL, signal_main, NULL);
	if (rc != 0)
		goto fail_thread;
	signal_is_started = true;
	goto out;

fail_thread:
	close(signal_stop_fd);
	signal_stop_fd = -1;
fail_eventfd:
	close(signal_fd);
	signal_fd = -1;
fail_signalfd:
out:
	return rc;
}

void
sl_signal_stop(void)
{
	uint64_t one = 1;

	if (!signal_is_started)
		goto out;
	if (write(signal_stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		sl_log_err("signal thread: cannot wake it to stop: %s", strerror(errno));
	pthread_join(signal_thread, NULL);
	close(signal_stop_fd);
	close(signal_fd);
	signal_stop_fd = -1;
	signal_fd = -1;
	signal_is_started = false;
out:
	return;
}
