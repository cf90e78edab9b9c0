/*
 * stages/stages.h - what the daemon's assembly (engine/main.c) needs of the stages.
 *
 * Each stage is a struct sl_stage_def plus a few set-up calls made on the
 * main thread before the stages start (opening listening sockets, opening
 * and recovering the spool) and after they stop.  Shared declarations,
 * not a stage: stages do not include it.
 *
 * Threads: every function here runs on the main thread.
 */
#ifndef SL_STAGES_STAGES_H
#define SL_STAGES_STAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf_snapshot.h"
#include "engine/buf.h"
#include "engine/stage.h"

extern const struct sl_stage_def sl_accept_stage;
extern const struct sl_stage_def sl_protocol_stage;
extern const struct sl_stage_def sl_validate_stage;
extern const struct sl_stage_def sl_spool_stage;
extern const struct sl_stage_def sl_deliver_stage;
extern const struct sl_stage_def sl_control_stage;

/*
 * Open every enabled listening socket of `s` (bind + listen).  Returns 0,
 * or -1 with an operator-ready reason (address, file:line, strerror) in
 * `why`.  Nothing is left open on error.
 */
int sl_accept_open(const struct sl_conf_snapshot *s, char *why, size_t why_len);
/* Start the accept threads on the opened sockets (the accept stage is running). */
int sl_accept_start(struct sl_stage *st, char *why, size_t why_len);
/* Wake the accept threads so they notice a stop (before stopping the stage). */
void sl_accept_interrupt(void);
/* Close the listening sockets (after the accept stage stopped). */
void sl_accept_close(void);
/*
 * After a reload published `s`: keep the listeners it keeps, bind and start
 * the new ones, shut the removed ones down.  0, or -1 with why naming the
 * first address that could not be bound (the rest is applied).
 */
int sl_accept_reconcile(const struct sl_conf_snapshot *s, char *why, size_t why_len);
/* Open listening sockets (for logs and tests). */
size_t sl_accept_listener_cnt(void);

/*
 * Open the spool of `s` and recover what it holds.  0, or -1 with a
 * reason in `why`.  Logs what recovery found.
 */
int sl_spool_stage_open(const struct sl_conf_snapshot *s, char *why, size_t why_len);
/* Close the spool (after the spool stage stopped). */
void sl_spool_stage_close(void);
/*
 * The control stage (Control_Listener sessions, sluicectl) runs what the
 * daemon's main provides: each hook writes a one-line result into msg and
 * returns 0 or -1.  Set before the stage starts.
 */
struct sl_control_hooks {
	int (*reload)(char *msg, size_t msg_len);
	int (*reopen)(char *msg, size_t msg_len);
	void (*shutdown)(void);
	uint64_t (*generation)(void);
	/* `spool import ARGS...` (argc words after "spool import"); see sl_spool_stage_import. */
	int (*spool_import)(int argc, char **argv, char *msg, size_t msg_len);
};
void sl_control_set_hooks(const struct sl_control_hooks *h);

/* The SNMP agent (stages/snmp.c): an OWN stage whose one thread runs net-snmp. */
extern const struct sl_stage_def sl_snmp_stage;
struct sl_snmp_hooks {
	uint64_t (*generation)(void);      /* configuration generation running */
	uint64_t (*reloads)(void);         /* successful reloads */
	uint64_t (*reload_failures)(void); /* refused reloads */
};
/* Before any thread exists (main): what must be set up single-threaded. */
void sl_snmp_preinit(void);
/* Before the stage starts (main). */
void sl_snmp_set_hooks(const struct sl_snmp_hooks *h);
/* Start the snmp thread (it follows the configuration: agent or not); 0 or -errno. */
int sl_snmp_start(struct sl_stage *st);
/* Wake it to notice the stop (before sl_stage_stop), and free what it left. */
void sl_snmp_interrupt(void);
void sl_snmp_close(void);

/* The open spool, for reading messages back (sl_spool_read: any thread). */
struct sl_spool *sl_spool_stage_store(void);
/* Hand the messages recovery found to the delivery stage (once it runs). */
void sl_spool_stage_requeue(struct sl_stage *deliver);
/*
 * The console's `spool import` (stages/spool_import.c), with the words
 * after "spool import": PATH [concurrency] checks PATH (an absolute path
 * to another sluice's SpoolBase, not ours, not in use), opens it and starts
 * importing it in the background: each message is made durable here with
 * a new queue id and queued for delivery, then removed from PATH.  No word
 * or "status": the state of the running or last import.  Writes a
 * one-line answer into msg; 0, or -1 for a refusal.  Runs on the control
 * thread (a stage thread) and never blocks on the import.  Between the
 * start of the spool and delivery stages and sl_spool_stage_import_stop.
 */
int sl_spool_stage_import(int argc, char **argv, char *msg, size_t msg_len);
/*
 * Stop a running import after the batches in flight (what is not yet
 * imported stays in its PATH) and wait for its thread.  Main thread, while
 * the spool and delivery stages still run and after the control stage
 * stopped.  A no-op when none runs.
 */
void sl_spool_stage_import_stop(void);

/*
 * Give conf the delivery stage's checks of option values (Routes, Gateway,
 * Resolv_Conf; sl_conf_check_set), so that `sluiced -t` and a reload
 * refuse what delivery would refuse.  Before the first configuration is
 * loaded.
 */
void sl_deliver_conf_checks(void);

/*
 * Read and compile what the delivery stage takes from files the
 * configuration names (the bounce_classifier block's custom_classes and
 * rules files) for snapshot `s`, before `s` is published.  Each unreadable
 * file, bad rule line (as "FILE:LINE: reason") or bad custom class is an
 * error in errs at the setting's file:line:col; a datasource query is a
 * warning.  Returns 0, or -1 when it added errors (nothing is published:
 * refuse `s`).  With is_publish, a good set becomes the one the delivery
 * threads use with `s` (and later snapshots until the next publish).
 * Config thread (main at start, the reload caller): reads files.
 */
int sl_deliver_conf_prepare(const struct sl_conf_snapshot *s, bool is_publish,
			    struct sl_conf_errors *errs);
/* Drop the published rule set (main, after the delivery stage stopped). */
void sl_deliver_conf_release(void);

/* Remember the delivery stage and register its counters (before it starts). */
void sl_deliver_init(struct sl_stage *st);
/*
 * Tell every delivery thread to stop: no new transaction starts, idle
 * connections say QUIT, and transactions in flight may finish for up to
 * timeout_ms (their outcomes reach the spool).  Then whatever is still
 * open is closed at once (its jobs stay in the spool for the next start).
 * Returns when every thread has stopped delivering.
 */
void sl_deliver_quiesce(unsigned timeout_ms);
/*
 * The console commands about queues and outbound connections
 * (stages/deliver_console.c: active, delayed, showqueue, mailq, domain,
 * flush/fail/suspend/resume domain, message details/fail/retry, show
 * outbound).  From the control stage's loop thread.  0: argv is none of
 * them; -1: it is one but malformed (why in err); 1: it runs on every
 * delivery thread, then done(arg, is_ok, text) is called once on the
 * calling loop (text NUL-terminated, valid during the call).
 */
int sl_deliver_console(int argc, char **argv, struct sl_buf *err,
		       void (*done)(void *arg, bool is_ok, const char *text), void *arg);
/* Messages between the protocol stage and its spool answer (for shutdown). */
uint64_t sl_protocol_inflight(void);
/* The console's `show inbound` (as sl_deliver_console: 0 not it, -1 error, 1 started). */
int sl_protocol_console(int argc, char **argv, struct sl_buf *err,
			void (*done)(void *arg, bool is_ok, const char *text), void *arg);

/* Remember the protocol stage and register its counters (before it starts). */
void sl_protocol_init(struct sl_stage *st);
/*
 * Tell every protocol thread to stop taking commands: sessions between
 * commands get 421 4.3.2 and close; a session with a transaction under way
 * (after MAIL, in DATA, its answer awaited) may finish it and gets 421
 * after its answer.  Returns when no session is still finishing, or after
 * timeout_ms (Shutdown_Timeout): then those left get 421 without their
 * message being taken, before this returns.
 */
void sl_protocol_shutdown(unsigned timeout_ms);

/* Stage thread counts chosen from the configuration (see sluiced(8)). */
unsigned sl_protocol_thread_cnt(const struct sl_conf_snapshot *s);
unsigned sl_validate_thread_cnt(const struct sl_conf_snapshot *s);
unsigned sl_spool_thread_cnt(const struct sl_conf_snapshot *s);
unsigned sl_deliver_thread_cnt(const struct sl_conf_snapshot *s);

#endif /* SL_STAGES_STAGES_H */
