/*
 * engine/signal.h - signals become calls on one dedicated thread.
 *
 * The main thread blocks the signals sluice handles before it starts any
 * other thread, so every thread inherits the mask; one signal thread then
 * sigwait()s and calls the hooks: SIGHUP reloads, SIGTERM and SIGINT stop
 * gracefully, SIGUSR1 reopens logs.  SIGPIPE is ignored (writes return EPIPE).
 * The hooks run on the signal thread, never in signal context, so they may
 * take locks, parse files and call sl_rcu_synchronize(); the signal thread is
 * registered with RCU, so they may also publish and put snapshots.
 *
 * Threads: sl_signal_block() and sl_signal_start()/stop() from main only.
 */
#ifndef SL_ENGINE_SIGNAL_H
#define SL_ENGINE_SIGNAL_H

struct sl_signal_hooks {
	void (*reload_fn)(void *arg);          /* SIGHUP */
	void (*stop_fn)(int signo, void *arg); /* SIGTERM, SIGINT */
	void (*reopen_fn)(void *arg);          /* SIGUSR1 */
	void *arg;
};

/* Block the handled signals in the calling thread and ignore SIGPIPE. */
void sl_signal_block(void);

/* Start the signal thread with `hooks` (copied).  0 or -errno. */
int sl_signal_start(const struct sl_signal_hooks *hooks);

/* Stop and join the signal thread.  Safe if never started. */
void sl_signal_stop(void);

#endif /* SL_ENGINE_SIGNAL_H */
