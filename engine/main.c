/*
 * engine/main.c - sluiced: start-up, stages, reload and shutdown.
 *
 * This is the daemon's assembly point and the one engine file that knows
 * the rest of the tree (conf/ and the stage table in stages/stages.h): it
 * loads and checks the configuration (`-t`, `-T`), binds the listeners and
 * prepares the state directories while errors still reach the terminal,
 * detaches, starts logging, opens and recovers the spool, publishes the
 * snapshot, starts the stages (spool, validate, protocol, accept) and the
 * signal thread, and then waits: SIGHUP reloads (a bad configuration is
 * reported and the running one kept), SIGUSR1 reopens logs, SIGTERM/SIGINT
 * stop.  Stopping goes backwards so that no stage ever sends to one that
 * has stopped: accept, then protocol stops taking commands, then validate
 * and spool drain (their answers land in protocol's queues), then protocol.
 * The main thread writes the ec_logger heartbeat while it waits.
 *
 * Threads: main (start-up, wait, shutdown) and the signal thread (reload,
 * reopen, stop request).  Parses command-line arguments.  The published
 * snapshot belongs to the conf holder (conf/conf_holder.h).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf_holder.h"
#include "conf/conf_security.h"
#include "conf/conf_snapshot.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/daemon.h"
#include "engine/log.h"
#include "engine/priv.h"
#include "engine/rcu.h"
#include "engine/signal.h"
#include "engine/stage.h"
#include "stages/eclog.h"
#include "stages/stages.h"

struct main_opts {
	const char *conf_path; /* -c; NULL: the built-in sluice.conf */
	const char *state_dir; /* -D; relative paths resolve here */
	const char *pidfile;   /* -p; overrides Pidfile */
	int log_level;         /* -d */
	bool is_check;         /* -t */
	bool is_dump;          /* -T */
	bool is_foreground;    /* -F */
};

/* State shared by main and the signal thread; guarded by `lock`. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool is_stopping;
	int stop_signal;
	struct main_opts opts;
	uint64_t generation; /* of the published snapshot */
	uint64_t reload_ok_cnt;
	uint64_t reload_fail_cnt;
	/* The Security block of generation 1: what the process became; set before threads. */
	struct sl_priv priv;
	uid_t owner_uid; /* whom directories and files sluiced creates go to; -1: as made */
	gid_t owner_gid;
} main_state = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void
main_usage(FILE *out)
{
	fprintf(out, "usage: sluiced [-FtTVh] [-c file] [-D dir] [-p pidfile] [-d level]\n"
		     "  -c file     configuration file (default: the built-in sluice.conf)\n"
		     "  -D dir      state directory: relative paths in the configuration are\n"
		     "              taken from here (default: the current directory)\n"
		     "  -F          stay in the foreground and copy diagnostics to stderr\n"
		     "  -t          check the configuration, print errors as file:line:col, exit 0 "
		     "or 1\n"
		     "  -T          check, then print the configuration with defaults filled in\n"
		     "  -p pidfile  write the pid here instead of the configured Pidfile\n"
		     "  -d level    diagnostics level: crit err warning notice info debug\n"
		     "              (default: info)\n"
		     "  -V          print the version and exit\n"
		     "  -h          print this help and exit\n"
		     "Signals: HUP reloads the configuration, USR1 reopens the logs,\n"
		     "TERM and INT stop after in-flight work is finished.\n");
}

static int
main_parse_args(int argc, char **argv, struct main_opts *o)
{
	int c;

	o->log_level = SL_LOG_INFO;
	while ((c = getopt(argc, argv, "c:D:Fp:d:tTVh")) != -1) {
		switch (c) {
		case 'c':
			o->conf_path = optarg;
			break;
		case 'D':
			o->state_dir = optarg;
			break;
		case 'F':
			o->is_foreground = true;
			break;
		case 'p':
			o->pidfile = optarg;
			break;
		case 'd':
			o->log_level = sl_log_level_parse(optarg);
			if (o->log_level < 0) {
				fprintf(stderr, "sluiced: unknown level '%s' for -d\n", optarg);
				return 2;
			}
			break;
		case 't':
			o->is_check = true;
			break;
		case 'T':
			o->is_dump = true;
			break;
		case 'V':
			printf("sluiced %s (built %s)\n", PACKAGE_VERSION, SL_BUILD_DATE);
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluiced: unexpected argument '%s'\n", argv[optind]);
		main_usage(stderr);
		return 2;
	}
	return -1;
}

/* The state directory as an absolute path (in static storage). */
static const char *
main_state_dir(const char *dir)
{
	static char buf[PATH_MAX];

	if (dir == NULL) {
		if (getcwd(buf, sizeof(buf)) == NULL)
			sl_fatal("cannot read the current directory: %s", strerror(errno));
		return buf;
	}
	if (realpath(dir, buf) == NULL)
		sl_fatal("state directory %s: %s", dir, strerror(errno));
	return buf;
}

static struct sl_conf_snapshot *
main_load(uint64_t generation, struct sl_conf_errors *errs)
{
	return sl_conf_load(main_state.opts.conf_path, main_state.opts.state_dir, generation, errs);
}

static const struct sl_conf_block *
main_logger(const struct sl_conf_snapshot *s)
{
	size_t pos = 0;

	return sl_conf_block_next(s, "ec_logger", &pos);
}

static const char *
main_logger_path(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	const union sl_conf_val *v = sl_conf_block_get(s, main_logger(s), opt);

	return v ? v->s : NULL;
}

static unsigned
main_logger_mode(const struct sl_conf_snapshot *s, enum sl_opt opt)
{
	const union sl_conf_val *v = sl_conf_block_get(s, main_logger(s), opt);

	return v ? (unsigned)v->i : 0644;
}

/* Make the parent directory of `path` (0750), reporting failure fatally. */
static void
main_mkparent(const char *what, const char *path)
{
	char *dir;
	char *slash;
	int rc;

	if (path == NULL)
		return;
	dir = sl_strdup(path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		rc = sl_mkdir_p(dir, 0750, main_state.owner_uid, main_state.owner_gid);
		if (rc < 0)
			sl_fatal("cannot create the directory %s for %s: %s", dir, what,
				 strerror(-rc));
	}
	sl_free(dir);
}

static const enum sl_opt main_listener_opts[] = { SL_OPT_ESMTP_LISTENER, SL_OPT_ECSTREAM_LISTENER,
						  SL_OPT_CONTROL_LISTENER };

/* Directories every configured path needs, created before anything opens. */
static void
main_prepare_dirs(const struct sl_conf_snapshot *s)
{
	const char *spool = sl_conf_str(s, SL_OPT_SPOOLBASE);
	int rc;

	if (spool != NULL &&
	    (rc = sl_mkdir_p(spool, 0750, main_state.owner_uid, main_state.owner_gid)) < 0)
		sl_fatal("cannot create SpoolBase %s: %s", spool, strerror(-rc));
	main_mkparent("the mainlog", main_logger_path(s, SL_OPT_EC_LOGGER_MAINLOG));
	main_mkparent("the rejectlog", main_logger_path(s, SL_OPT_EC_LOGGER_REJECTLOG));
	main_mkparent("the paniclog", main_logger_path(s, SL_OPT_EC_LOGGER_PANICLOG));
	main_mkparent("the acctlog", main_logger_path(s, SL_OPT_EC_LOGGER_ACCTLOG));
	for (size_t k = 0; k < SL_ARRAY_LEN(main_listener_opts); k++) {
		const union sl_conf_val *v = sl_conf_global(s, main_listener_opts[k]);

		for (size_t i = 0; v != NULL && i < v->listener->addr_cnt; i++)
			if (v->listener->addrs[i].family == SL_LISTEN_UNIX)
				main_mkparent("a Unix socket", v->listener->addrs[i].path);
	}
}

/*
 * The identity cannot change without a restart: root is gone.  When the
 * reloaded Security block asks for another user, group or capability set,
 * say so in the paniclog (and in `note`, for the console) and keep the
 * running one; the rest of the reload applies.
 */
static void
main_security_changed(const struct sl_conf_snapshot *s, char *note, size_t note_len)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_priv now = { 0 };
	const struct sl_priv *was = &main_state.priv;
	char running[256];

	(void)sl_conf_security(s, &now, &errs);
	sl_conf_errors_clear(&errs);
	if (sl_priv_uid(&now) != sl_priv_uid(was) || sl_priv_gid(&now) != sl_priv_gid(was) ||
	    (now.caps == NULL) != (was->caps == NULL) ||
	    (now.caps != NULL && strcmp(now.caps, was->caps) != 0)) {
		sl_priv_describe(running, sizeof(running));
		sl_log_err("reload: the Security block's user, group or Capabilities changed; "
			   "that needs a restart, so sluiced keeps running as %s (the rest of "
			   "the configuration applies)",
			   running);
		snprintf(note, note_len,
			 " (Security user/group/Capabilities changes need a "
			 "restart: not applied)");
	}
	sl_priv_clear(&now);
}

/* SIGHUP: load and check the file again; publish it or keep the old one. */
/* Reload (SIGHUP, or the console: `msg` gets the outcome or the first error). */
static int
main_reload_msg(char *msg, size_t msg_len)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s;
	char refused[160] = "";
	uint64_t gen;

	pthread_mutex_lock(&main_state.lock);
	gen = main_state.generation + 1;
	pthread_mutex_unlock(&main_state.lock);
	(void)sl_notify("RELOADING=1");
	s = main_load(gen, &errs);
	/* The files the configuration names are part of it: published before it. */
	if (s != NULL && sl_deliver_conf_prepare(s, true, &errs) != 0) {
		sl_conf_snapshot_put(s);
		s = NULL;
	}
	if (s == NULL) {
		(void)sl_notify("READY=1");
		sl_log_err("configuration reload failed; still running generation %" PRIu64,
			   gen - 1);
		for (size_t i = 0; i < errs.cnt; i++) {
			char *line = sl_conf_error_format(&errs.list[i]);

			sl_log_err("%s", line);
			if (i == 0 && msg != NULL)
				snprintf(msg, msg_len,
					 "reload failed, still running generation %" PRIu64
					 ": %s%s",
					 gen - 1, line,
					 errs.cnt > 1 ? " (and more in the paniclog)" : "");
			sl_free(line);
		}
		sl_conf_errors_clear(&errs);
		pthread_mutex_lock(&main_state.lock);
		main_state.reload_fail_cnt++;
		pthread_mutex_unlock(&main_state.lock);
		return -1;
	}
	for (size_t i = 0; i < errs.warn_cnt; i++) {
		char *line = sl_conf_error_format(&errs.warn[i]);

		sl_log_warn("%s", line);
		sl_free(line);
	}
	for (size_t i = 0; i < errs.note_cnt; i++) {
		char *line = sl_conf_error_format(&errs.note[i]);

		sl_log_notice("%s", line);
		sl_free(line);
	}
	sl_conf_errors_clear(&errs);
	main_security_changed(s, refused, sizeof(refused));
	main_prepare_dirs(s);
	sl_eclog_open(s);
	sl_conf_publish(s);
	pthread_mutex_lock(&main_state.lock);
	main_state.generation = gen;
	main_state.reload_ok_cnt++;
	pthread_mutex_unlock(&main_state.lock);
	sl_log_notice("configuration reloaded from %s: generation %" PRIu64, s->source, gen);
	sl_eclog_config(gen, s->source);
	{
		char why[512];
		int rc = sl_accept_reconcile(s, why, sizeof(why));

		if (msg != NULL && rc == 0)
			snprintf(msg, msg_len,
				 "configuration reloaded from %s: generation %" PRIu64 "%s",
				 s->source, gen, refused);
		else if (msg != NULL)
			snprintf(msg, msg_len,
				 "configuration generation %" PRIu64 " is running, but a listener "
				 "failed: %s",
				 gen, why);
		(void)sl_notify("READY=1");
		return rc;
	}
}

static void
main_reload(void *arg)
{
	(void)main_reload_msg(NULL, 0);
}

static int
main_reopen_msg(char *msg, size_t msg_len)
{
	int rc = sl_log_reopen();

	if (rc < 0)
		sl_log_err("reopening logs failed: %s", strerror(-rc));
	else
		sl_log_notice("logs reopened");
	if (msg != NULL)
		snprintf(msg, msg_len, rc < 0 ? "reopening logs failed: %s" : "logs reopened%s",
			 rc < 0 ? strerror(-rc) : "");
	return rc < 0 ? -1 : 0;
}

static void
main_reopen(void *arg)
{
	(void)main_reopen_msg(NULL, 0);
}

static void main_stop_request(int signo, void *arg);

static void
main_console_shutdown(void)
{
	main_stop_request(SIGTERM, NULL);
}

/* A figure of main_state, read under its lock (the console and SNMP threads ask). */
static uint64_t
main_state_read(const uint64_t *field)
{
	uint64_t v;

	pthread_mutex_lock(&main_state.lock);
	v = *field;
	pthread_mutex_unlock(&main_state.lock);
	return v;
}

static uint64_t
main_reloads(void)
{
	return main_state_read(&main_state.reload_ok_cnt);
}

static uint64_t
main_reload_failures(void)
{
	return main_state_read(&main_state.reload_fail_cnt);
}

static uint64_t
main_generation(void)
{
	return main_state_read(&main_state.generation);
}

static void
main_stop_request(int signo, void *arg)
{
	pthread_mutex_lock(&main_state.lock);
	main_state.is_stopping = true;
	main_state.stop_signal = signo;
	pthread_cond_broadcast(&main_state.cond);
	pthread_mutex_unlock(&main_state.lock);
}

/* The current heartbeat interval in seconds (0: none). */
static int64_t
main_heartbeat_secs(void)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	const union sl_conf_val *v;
	int64_t secs = 0;

	if (s == NULL)
		return 0;
	v = sl_conf_block_get(s, main_logger(s), SL_OPT_EC_LOGGER_HEARTBEAT);
	if (v != NULL)
		secs = v->i;
	sl_conf_snapshot_put(s);
	return secs;
}

/* Wait for a stop request, writing the ec_logger heartbeats (mainlog, bouncelog) meanwhile. */
static void
main_wait(void)
{
	time_t next_beat = 0;

	pthread_mutex_lock(&main_state.lock);
	while (!main_state.is_stopping) {
		int64_t beat = main_heartbeat_secs();
		time_t now = time(NULL);
		struct timespec until;

		if (beat > 0 && now >= next_beat) {
			sl_eclog_heartbeat();
			next_beat = now + beat;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&main_state.cond, &main_state.lock, &until);
	}
	pthread_mutex_unlock(&main_state.lock);
}

/* Start order: spool, deliver, validate, protocol, accept. */
enum {
	MAIN_SPOOL,
	MAIN_DELIVER,
	MAIN_VALIDATE,
	MAIN_PROTOCOL,
	MAIN_CONTROL,
	MAIN_ACCEPT,
	MAIN_SNMP,
	MAIN__STAGES
};
static struct sl_stage *main_stages[MAIN__STAGES];

static struct sl_stage *
main_stage(const struct sl_stage_def *def, unsigned thread_cnt)
{
	struct sl_stage *st = sl_stage_create(def, thread_cnt, NULL);
	int rc;
	if (def == &sl_protocol_stage)
		sl_protocol_init(st);
	if (def == &sl_deliver_stage)
		sl_deliver_init(st);
	rc = sl_stage_start(st);
	if (rc < 0)
		sl_fatal("cannot start the %s stage: %s", def->name, strerror(-rc));
	return st;
}

/* Consumers first, so nothing is ever sent to a stage that is not running. */
static void
main_start_stages(const struct sl_conf_snapshot *s)
{
	char why[256];
	main_stages[MAIN_SPOOL] = main_stage(&sl_spool_stage, sl_spool_thread_cnt(s));
	main_stages[MAIN_DELIVER] = main_stage(&sl_deliver_stage, sl_deliver_thread_cnt(s));
	main_stages[MAIN_VALIDATE] = main_stage(&sl_validate_stage, sl_validate_thread_cnt(s));
	main_stages[MAIN_PROTOCOL] = main_stage(&sl_protocol_stage, sl_protocol_thread_cnt(s));
	{
		struct sl_control_hooks h = { main_reload_msg, main_reopen_msg,
					      main_console_shutdown, main_generation,
					      sl_spool_stage_import };

		sl_control_set_hooks(&h);
	}
	main_stages[MAIN_CONTROL] = main_stage(&sl_control_stage, 1);
	main_stages[MAIN_ACCEPT] = main_stage(&sl_accept_stage, 0);
	/* What recovery found goes to delivery before new mail comes in. */
	sl_spool_stage_requeue(main_stages[MAIN_DELIVER]);
	if (sl_accept_start(main_stages[MAIN_ACCEPT], why, sizeof(why)) != 0)
		sl_fatal("%s", why);
	{
		struct sl_snmp_hooks h = { main_generation, main_reloads, main_reload_failures };
		int rc;

		sl_snmp_set_hooks(&h);
		main_stages[MAIN_SNMP] = main_stage(&sl_snmp_stage, 0);
		rc = sl_snmp_start(main_stages[MAIN_SNMP]);
		if (rc < 0)
			sl_fatal("cannot start the snmp thread: %s", strerror(-rc));
	}
}

/*
 * Stop so that no stage ever sends to one that has stopped, although
 * protocol, spool and delivery send to each other: first nothing new comes
 * in, then what is in flight between protocol and spool is answered, then
 * delivery stops sending, then the spool drains, then delivery goes.
 */
static void
main_stop_stages(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	struct sl_conf_snapshot *s = sl_conf_current();
	/* Shutdown_Timeout, read now: a reload may have changed it. */
	unsigned timeout_ms =
		s != NULL ? (unsigned)sl_conf_int(s, SL_OPT_SHUTDOWN_TIMEOUT) * 1000u : 5000u;

	/* The agent first: it reads every stage's figures (and sends the shutdown trap). */
	sl_snmp_interrupt();
	sl_stage_stop(main_stages[MAIN_SNMP]);
	sl_accept_interrupt();
	sl_stage_stop(main_stages[MAIN_ACCEPT]);
	sl_stage_stop(main_stages[MAIN_CONTROL]);
	sl_conf_snapshot_put(s);
	/* No console command can start one now; it sends to spool and delivery. */
	sl_spool_stage_import_stop();
	/*
	 * Sessions between commands get 421; a session with a transaction under
	 * way may finish it, up to the timeout; messages in flight get answered.
	 */
	sl_protocol_shutdown(timeout_ms);
	sl_stage_stop(main_stages[MAIN_VALIDATE]);
	for (int waited = 0; sl_protocol_inflight() > 0 && waited < 10000; waited += 10)
		nanosleep(&ts, NULL);
	sl_stage_stop(main_stages[MAIN_PROTOCOL]);
	sl_deliver_quiesce(timeout_ms);
	sl_stage_stop(main_stages[MAIN_SPOOL]);
	sl_stage_stop(main_stages[MAIN_DELIVER]);
	for (int i = MAIN__STAGES - 1; i >= 0; i--)
		sl_stage_destroy(main_stages[i]);
	sl_accept_close();
	sl_snmp_close();
	sl_spool_stage_close();
}

/*
 * Give up root (the Security block): everything that needs it is done --
 * listeners bound, pidfile, logs and spool open -- and no stage thread
 * exists yet, so every thread started from here inherits the new identity
 * and the kept capabilities.  What sluiced goes on writing is handed over
 * first: the open log files, the pidfile, the spool directory and all in
 * it, the Unix sockets of listeners (directories it created already are).
 */
static void
main_drop_root(const struct sl_conf_snapshot *s)
{
	const struct sl_priv *p = &main_state.priv;
	uid_t uid = main_state.owner_uid;
	gid_t gid = main_state.owner_gid;
	const char *spool = sl_conf_str(s, SL_OPT_SPOOLBASE);
	char why[PATH_MAX + 128];
	int rc;

	if (!sl_priv_is_set(p))
		return;
	if (geteuid() != 0) {
		sl_log_warn("not started as root: the Security block (user, group, "
			    "Capabilities) is not applied; running as uid %u",
			    (unsigned)geteuid());
		return;
	}
	if ((rc = sl_log_chown(uid, gid)) < 0)
		sl_fatal("cannot give the log files to uid %d gid %d: %s", (int)uid, (int)gid,
			 strerror(-rc));
	if ((rc = sl_pidfile_chown(uid, gid)) < 0)
		sl_fatal("cannot give the pidfile to uid %d gid %d: %s", (int)uid, (int)gid,
			 strerror(-rc));
	if (spool != NULL && sl_priv_chown_tree(spool, uid, gid, why, sizeof(why)) < 0)
		sl_fatal("SpoolBase: %s", why);
	for (size_t k = 0; k < SL_ARRAY_LEN(main_listener_opts); k++) {
		const union sl_conf_val *v = sl_conf_global(s, main_listener_opts[k]);

		for (size_t i = 0; v != NULL && i < v->listener->addr_cnt; i++)
			if (v->listener->addrs[i].family == SL_LISTEN_UNIX &&
			    lchown(v->listener->addrs[i].path, uid, gid) != 0)
				sl_fatal("cannot give the socket %s to uid %d gid %d: %s",
					 v->listener->addrs[i].path, (int)uid, (int)gid,
					 strerror(errno));
	}
	rc = sl_priv_drop(p, why, sizeof(why));
	if (rc < 0)
		sl_fatal("cannot give up root as the Security block asks: %s", why);
	sl_priv_describe(why, sizeof(why));
	sl_log_notice("gave up root: running as %s", why);
	/* Find out now, not at the first logrotate, whether the log directories let us. */
	if ((rc = sl_log_reopen()) < 0)
		sl_log_warn("as uid %u, a log file cannot be reopened (%s): SIGUSR1 and reopen "
			    "will keep writing to the old files until its directory is "
			    "writable by this user",
			    (unsigned)uid, strerror(-rc));
}

int
main(int argc, char **argv)
{
	struct main_opts *o = &main_state.opts;
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_snapshot *s;
	struct sl_signal_hooks hooks = { main_reload, main_stop_request, main_reopen, NULL };
	const char *pidfile;
	char why[512];
	pid_t other;
	int rc;

	rc = main_parse_args(argc, argv, o);
	if (rc >= 0)
		return rc;
	sl_log_level_set(o->log_level);
	/* Before any thread exists, so every thread inherits the mask. */
	sl_signal_block();
	sl_snmp_preinit();
	sl_rcu_register_thread();
	o->state_dir = main_state_dir(o->state_dir);
	sl_deliver_conf_checks();

	s = main_load(1, &errs);
	if (s != NULL && sl_deliver_conf_prepare(s, !o->is_check && !o->is_dump, &errs) != 0) {
		sl_conf_snapshot_put(s);
		sl_rcu_barrier();
		s = NULL;
	}
	if (s == NULL) {
		sl_conf_errors_print(&errs, stderr);
		fprintf(stderr, "sluiced: configuration %s is not valid\n",
			o->conf_path ? o->conf_path : "(built-in)");
		sl_conf_errors_clear(&errs);
		return 1;
	}
	sl_conf_warnings_print(&errs, stderr);
	sl_conf_notices_print(&errs, stderr);
	sl_conf_errors_clear(&errs);
	/* Checked by the load: an error here means the databases changed meanwhile. */
	if (sl_conf_security(s, &main_state.priv, &errs) > 0) {
		sl_conf_errors_print(&errs, stderr);
		sl_conf_errors_clear(&errs);
		return 1;
	}
	main_state.owner_uid = (uid_t)-1;
	main_state.owner_gid = (gid_t)-1;
	if (geteuid() == 0) {
		main_state.owner_uid = sl_priv_uid(&main_state.priv);
		main_state.owner_gid = sl_priv_gid(&main_state.priv);
	}
	if (o->is_check || o->is_dump) {
		if (o->is_dump)
			sl_conf_snapshot_print(s, stdout);
		else
			printf("sluiced: configuration %s is valid\n", s->source);
		sl_conf_snapshot_put(s);
		sl_rcu_barrier();
		return 0;
	}

	main_prepare_dirs(s);
	pidfile = o->pidfile ? o->pidfile : sl_conf_str(s, SL_OPT_PIDFILE);
	if (pidfile != NULL) {
		main_mkparent("the pidfile", pidfile);
		rc = sl_pidfile_create(pidfile, &other);
		if (rc == -EEXIST)
			sl_fatal("another sluiced (pid %d) is running with pidfile %s", (int)other,
				 pidfile);
		if (rc < 0)
			sl_fatal("cannot create the pidfile %s: %s", pidfile, strerror(-rc));
	}
	/* Bind before detaching: a busy port is reported on the terminal. */
	if (sl_accept_open(s, why, sizeof(why)) != 0) {
		sl_pidfile_remove();
		sl_fatal("%s", why);
	}
	if (!o->is_foreground) {
		rc = sl_daemonize();
		if (rc < 0)
			sl_fatal("cannot detach: %s", strerror(-rc));
		sl_pidfile_update();
	}
	rc = sl_log_start(main_logger_path(s, SL_OPT_EC_LOGGER_PANICLOG),
			  main_logger_mode(s, SL_OPT_EC_LOGGER_PANICLOG_MODE), o->is_foreground);
	if (rc < 0)
		sl_fatal("cannot open the paniclog %s: %s",
			 main_logger_path(s, SL_OPT_EC_LOGGER_PANICLOG), strerror(-rc));
	sl_eclog_open(s);
	main_state.generation = 1;
	sl_conf_publish(s);
	sl_eclog_config(1, s->source);
	if (sl_spool_stage_open(s, why, sizeof(why)) != 0)
		sl_fatal("%s", why);
	main_drop_root(s);
	main_start_stages(s);
	rc = sl_signal_start(&hooks);
	if (rc < 0)
		sl_fatal("cannot start the signal thread: %s", strerror(-rc));

	sl_log_notice("sluiced %s started (pid %d), configuration %s generation 1, %zu listeners",
		      PACKAGE_VERSION, (int)getpid(), s->source, sl_accept_listener_cnt());
	if (!o->is_foreground)
		sl_daemon_ready();
	{
		char state[64];

		/* systemd (Type=notify): ready once every listener accepts. */
		snprintf(state, sizeof(state), "READY=1\nMAINPID=%d", (int)getpid());
		rc = sl_notify(state);
		if (rc < 0)
			sl_log_warn("cannot notify the service manager: %s", strerror(-rc));
	}

	main_wait();

	(void)sl_notify("STOPPING=1");
	sl_log_notice("sluiced stopping on signal %d", main_state.stop_signal);
	sl_signal_stop();
	main_stop_stages();
	sl_deliver_conf_release();
	sl_conf_publish(NULL);
	sl_rcu_barrier();
	sl_log_notice("sluiced stopped");
	sl_log_stop();
	rc = sl_pidfile_remove();
	if (rc < 0)
		sl_log_warn("cannot remove the pidfile (emptied it instead): %s", strerror(-rc));
	sl_priv_clear(&main_state.priv);
	sl_rcu_unregister_thread();
	return 0;
}
