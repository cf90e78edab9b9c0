/*
 * stages/control.c - the control stage: Control_Listener sessions (sluicectl).
 *
 * The accept stage hands Control_Listener connections here (its ACL
 * decides who may connect: ALWAYS-ALLOW; a Unix socket is mode 0600).  One
 * loop thread reads command lines (proto/console.h), runs each and writes
 * its reply frame.  Commands read the node's counters and the published
 * configuration, or call the hooks the daemon's main registered (reload,
 * reopen logs, shutdown): nothing here blocks for long.
 *
 * Commands (Momentum's ec_console names): help, version, pid, summary
 * [reset], threads, memory, config show/get/eval/reload, reopen logs,
 * spool import (a hook: stages/spool_import.c), shutdown, quit here; the queue commands and show outbound are answered
 * by the delivery stage (sl_deliver_console), show inbound by the protocol
 * stage (sl_protocol_console), both through sl_gather: the session waits
 * (ctl_session.wait) and its next lines stay unread until the answer
 * comes.  The control stage stops before those stages, and drains the
 * gathers still running in its thread_fini.
 *
 * control_listener_timeout closes a session whose client has sent nothing
 * for that many seconds, unless a command of it is still being answered;
 * the once-a-second rate timer checks, so the bound is exact to a second.
 *
 * The acctlog (stages/eclog.h) gets an N record when a client connects
 * (the ACL's ALWAYS-ALLOW admits it or not) and a Z record for each
 * command; a Unix-socket client is named by its uid (SO_PEERCRED).
 *
 * Threads: the stage's one loop thread; sessions belong to it.  Parses
 * untrusted input: command lines, bounded by SL_CONSOLE_MAX_LINE.
 * Ownership: a session is freed in its handles' close callbacks.
 */
#include "config.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "conf/conf_holder.h"
#include "conf/conf_schema.h"
#include "conf/conf_snapshot.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "proto/console.h"
#include "stages/eclog.h"
#include "stages/events.h"
#include "stages/stages.h"

#define CTL_SESSION_MAGIC 0xc0501e55u

struct ctl_session {
	unsigned magic;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_write_t wreq;
	struct sl_buf in;
	struct sl_buf out;  /* replies not yet handed to the socket */
	struct sl_buf wbuf; /* the write in flight */
	bool is_writing;
	bool is_closing;
	bool is_quitting;      /* close once the replies are out */
	bool is_refused;       /* the ACL gives no ALWAYS-ALLOW: the first command is refused */
	struct ctl_wait *wait; /* a command answered later (queues): lines wait behind it */
	uint64_t active_ms;    /* uv_now() when the client last sent bytes, or connected */
	struct ctl_session *prev, *next; /* the thread's sessions */
	struct sl_listener_rt *lrt;
	struct sl_conf_snapshot *snap;
	char id[SL_SESSION_ID_LEN];
	/* Who, for the acctlog: */
	const char *endpoint;            /* the listener address as configured; inside snap */
	char peer[INET6_ADDRSTRLEN + 8]; /* TCP "ip:port"; "" for a Unix socket */
	char user[24];                   /* Unix socket: the client's uid (SO_PEERCRED) */
};

/* A session's command that another stage answers; outlives the session if need be. */
struct ctl_wait {
	struct ctl_session *cs; /* NULL once the session is gone */
};

static struct sl_control_hooks ctl_hooks;
static time_t ctl_started;

/* Received and delivered counts, sampled every second: the last minute's rates. */
#define CTL_RATE_SLOTS 61
static struct {
	uv_timer_t timer;
	uint64_t received[CTL_RATE_SLOTS], delivered[CTL_RATE_SLOTS];
	unsigned next, cnt;
} ctl_rate;
static struct ctl_session *ctl_sessions; /* the loop thread's only */

static void ctl_close(struct ctl_session *cs);
static void ctl_idle_sweep(uv_loop_t *loop);

void
sl_control_set_hooks(const struct sl_control_hooks *h)
{
	ctl_hooks = *h;
	ctl_started = time(NULL);
}

/* ------------------------------------------------------------ commands */

static uint64_t
ctl_counter(const char *name)
{
	int id = sl_counter_find(name);

	return id < 0 ? 0 : sl_counter_read((unsigned)id);
}

static void
ctl_rate_cb(uv_timer_t *t)
{
	ctl_rate.received[ctl_rate.next] = ctl_counter("protocol.received");
	ctl_rate.delivered[ctl_rate.next] = ctl_counter("deliver.delivered");
	ctl_rate.next = (ctl_rate.next + 1) % CTL_RATE_SLOTS;
	if (ctl_rate.cnt < CTL_RATE_SLOTS)
		ctl_rate.cnt++;
	ctl_idle_sweep(t->loop);
}

/* Per second over the samples kept (up to a minute): the newest minus the oldest. */
static double
ctl_rate_of(const uint64_t *v)
{
	unsigned newest = (ctl_rate.next + CTL_RATE_SLOTS - 1) % CTL_RATE_SLOTS;
	unsigned oldest = ctl_rate.cnt < CTL_RATE_SLOTS ? 0 : ctl_rate.next;

	if (ctl_rate.cnt < 2)
		return 0.0;
	return (double)(v[newest] - v[oldest]) / (double)(ctl_rate.cnt - 1);
}

/* Cumulative counters `summary` shows, and their values at the last `summary reset`. */
static const char *const ctl_cumulative[] = {
	"dns.queries",       "protocol.received", "protocol.rejected", "deliver.delivered",
	"deliver.transient", "deliver.failed",    "deliver.bounces",   "spool.commits",
	"spool.syncs",       "spool.dir_syncs",   "spool.committed",   "spool.acked_before_sync",
	"spool.copied",
};
#define CTL_CUMULATIVE (sizeof(ctl_cumulative) / sizeof(ctl_cumulative[0]))
static uint64_t ctl_base[CTL_CUMULATIVE];
static time_t ctl_reset_at; /* 0: never reset */

/* A cumulative counter since the last reset. */
static uint64_t
ctl_since(const char *name)
{
	for (size_t i = 0; i < CTL_CUMULATIVE; i++)
		if (strcmp(ctl_cumulative[i], name) == 0)
			return ctl_counter(name) - ctl_base[i];
	return ctl_counter(name);
}

static void
ctl_summary_reset(void)
{
	for (size_t i = 0; i < CTL_CUMULATIVE; i++)
		ctl_base[i] = ctl_counter(ctl_cumulative[i]);
	ctl_reset_at = time(NULL);
	/* The rates start over from now too. */
	ctl_rate.next = ctl_rate.cnt = 0;
	ctl_rate_cb(&ctl_rate.timer);
}

static void
ctl_summary(struct sl_buf *b)
{
	time_t up = time(NULL) - ctl_started;
	int64_t active = (int64_t)ctl_counter("deliver.active");
	int64_t delayed = (int64_t)ctl_counter("deliver.delayed");

	sl_buf_printf(b, "version: %s\n", PACKAGE_VERSION);
	sl_buf_printf(b, "pid: %d\n", (int)getpid());
	sl_buf_printf(b, "uptime: %lldd %02lld:%02lld:%02lld\n", (long long)up / 86400,
		      (long long)up % 86400 / 3600, (long long)up % 3600 / 60, (long long)up % 60);
	sl_buf_printf(b, "configuration generation: %" PRIu64 "\n",
		      ctl_hooks.generation ? ctl_hooks.generation() : 0);
	sl_buf_printf(b, "inbound sessions: %" PRId64 "\n",
		      (int64_t)ctl_counter("protocol.sessions"));
	sl_buf_printf(b, "outbound connections: %" PRId64 "\n",
		      (int64_t)ctl_counter("deliver.connections"));
	sl_buf_printf(b, "active domains: %" PRId64 "\n",
		      (int64_t)ctl_counter("deliver.active_domains"));
	sl_buf_printf(b, "active queue: %" PRId64 "\n", active);
	sl_buf_printf(b, "delayed queue: %" PRId64 "\n", delayed);
	sl_buf_printf(b, "total queue: %" PRId64 "\n", active + delayed);
	sl_buf_printf(b, "dns queries: %" PRIu64 "\n", ctl_since("dns.queries"));
	sl_buf_printf(b, "received: %" PRIu64 "\n", ctl_since("protocol.received"));
	sl_buf_printf(b, "rejected: %" PRIu64 "\n", ctl_since("protocol.rejected"));
	sl_buf_printf(b, "delivered: %" PRIu64 "\n", ctl_since("deliver.delivered"));
	sl_buf_printf(b, "transient failures: %" PRIu64 "\n", ctl_since("deliver.transient"));
	sl_buf_printf(b, "failed: %" PRIu64 "\n", ctl_since("deliver.failed"));
	sl_buf_printf(b, "bounces: %" PRIu64 "\n", ctl_since("deliver.bounces"));
	sl_buf_printf(b, "spool commits: %" PRIu64 "\n", ctl_since("spool.commits"));
	sl_buf_printf(b, "spool syncs: %" PRIu64 "\n", ctl_since("spool.syncs"));
	sl_buf_printf(b, "spool directory syncs: %" PRIu64 "\n", ctl_since("spool.dir_syncs"));
	sl_buf_printf(b, "spool messages committed: %" PRIu64 "\n", ctl_since("spool.committed"));
	sl_buf_printf(b, "spool acknowledged before sync: %" PRIu64 "\n",
		      ctl_since("spool.acked_before_sync"));
	sl_buf_printf(b, "spool messages copied forward: %" PRIu64 "\n", ctl_since("spool.copied"));
	if (ctl_reset_at != 0) {
		struct tm tm;
		char when[32];

		localtime_r(&ctl_reset_at, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		sl_buf_printf(b, "counted since: %s (summary reset)\n", when);
	}
	sl_buf_printf(b, "received per second (last minute): %.1f\n",
		      ctl_rate_of(ctl_rate.received));
	sl_buf_printf(b, "delivered per second (last minute): %.1f\n",
		      ctl_rate_of(ctl_rate.delivered));
}

/* One stage's row of `threads`. */
static void
ctl_thread_row(struct sl_stage *st, void *arg)
{
	struct sl_buf *b = arg;
	struct sl_stage_stats x;

	sl_stage_stats(st, &x);
	sl_buf_printf(b, "%-10s %7u %5u %11" PRIu64 " %12" PRIu64 " %12.1f\n", sl_stage_name(st),
		      x.thread_cnt, x.busy_cnt, x.queue_depth, x.ops,
		      x.ops ? (double)x.busy_ns / (double)x.ops / 1000.0 : 0.0);
}

static void
ctl_memory(struct sl_buf *b)
{
#ifdef HAVE_JEMALLOC
	static const char *const keys[] = { "stats.allocated", "stats.active", "stats.metadata",
					    "stats.resident",  "stats.mapped", "stats.retained" };
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch);

	/* jemalloc's statistics are refreshed when the epoch advances. */
	mallctl("epoch", &epoch, &sz, &epoch, sz);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t v = 0;

		sz = sizeof(v);
		if (mallctl(keys[i], &v, &sz, NULL, 0) == 0)
			sl_buf_printf(b, "%-16s %zu\n", keys[i] + 6, v);
	}
#else
	sl_buf_puts(b, "built without jemalloc: no allocator statistics\n");
#endif
	{
		FILE *f = fopen("/proc/self/status", "r");
		char line[256];

		while (f != NULL && fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "VmRSS:", 6) == 0 || strncmp(line, "VmHWM:", 6) == 0)
				sl_buf_puts(b, line);
		if (f != NULL)
			fclose(f);
	}
}

/*
 * config get OPTION (its global value) and config eval [binding B] [domain D]
 * [host H] OPTION (the value after Momentum's scope fallback).
 */
static bool
ctl_config_value(int argc, char **argv, struct sl_buf *b)
{
	struct sl_conf_where w = { NULL, NULL, NULL };
	const struct sl_conf_option *o;
	struct sl_conf_snapshot *s;
	const union sl_conf_val *v;
	bool is_eval = strcasecmp(argv[1], "eval") == 0;
	int i = 2;

	for (; is_eval && i + 1 < argc - 1; i += 2) {
		if (strcasecmp(argv[i], "binding") == 0)
			w.binding = argv[i + 1];
		else if (strcasecmp(argv[i], "domain") == 0)
			w.domain = argv[i + 1];
		else if (strcasecmp(argv[i], "host") == 0)
			w.host = argv[i + 1];
		else
			break;
	}
	if (i != argc - 1) {
		sl_buf_puts(b,
			    is_eval ? "usage: config eval [binding B] [domain D] [host H] OPTION\n"
				    : "usage: config get OPTION\n");
		return false;
	}
	o = sl_conf_option_find(argv[i], SL_S_GLOBAL);
	if (o == NULL) {
		sl_buf_printf(b, "unknown option \"%s\"\n", argv[i]);
		return false;
	}
	s = sl_conf_current();
	v = is_eval ? sl_conf_eval(s, o->id, &w) : sl_conf_global(s, o->id);
	if (v == NULL && !is_eval)
		v = s->dflt[o->id];
	if (v == NULL) {
		sl_buf_printf(b, "%s is not set\n", o->name);
	} else {
		char *text = sl_conf_val_format(o, v);

		sl_buf_printf(b, "%s = %s\n", o->name, text);
		sl_free(text);
	}
	sl_conf_snapshot_put(s);
	return true;
}

static void
ctl_config_show(struct sl_buf *b)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (f != NULL) {
		sl_conf_snapshot_print(s, f);
		fclose(f);
		sl_buf_append(b, text, len);
	}
	free(text); /* open_memstream's buffer comes from the C library's malloc */
	sl_conf_snapshot_put(s);
}

static const char ctl_help[] =
	"help                this list\n"
	"version             the version of sluiced\n"
	"pid                 its process id\n"
	"summary             counters, uptime, configuration generation\n"
	"threads             per stage: threads, busy, queued, ops, us/op\n"
	"memory              allocator statistics and resident memory\n"
	"config show         the running configuration, defaults filled in\n"
	"config get OPTION   an option's global value\n"
	"config eval [binding B] [domain D] [host H] OPTION\n"
	"                    its value after scope fallback\n"
	"config reload       read the configuration file again\n"
	"summary reset       count received/delivered/... from zero again\n"
	"active [N]          domains with more than N active messages\n"
	"delayed [N]         domains with more than N delayed messages\n"
	"showqueue [binding B|all] D [limit,offset]\n"
	"                    the messages queued for domain D\n"
	"mailq [limit[,offset]]  every queued message\n"
	"domain D            routes, queues and connections of domain D\n"
	"flush domain D|all  retry D's delayed messages now\n"
	"fail domain [quiet] D   fail what is queued for D (quiet: no bounces)\n"
	"suspend domain D    hold delivery to D; resume domain D to go on\n"
	"message details [full|body] ID   a queued message\n"
	"message fail [quiet] ID          fail it (quiet: no bounce)\n"
	"message retry ID    retry a delayed message now\n"
	"show inbound        every inbound session\n"
	"show outbound       every outbound connection\n"
	"reopen logs         reopen the log files (after rotation)\n"
	"spool import PATH [concurrency]\n"
	"                    bring in another node's spool (background)\n"
	"spool import status the running or last import and its counts\n"
	"shutdown            stop sluiced (as SIGTERM)\n"
	"quit                close this session\n";

enum ctl_result {
	CTL_ERR,
	CTL_OK,
	CTL_WAIT, /* answered later through ctl_wait_done */
};

static void ctl_drive(struct ctl_session *cs);

static void
ctl_wait_done(void *arg, bool is_ok, const char *text)
{
	struct ctl_wait *w = arg;
	struct ctl_session *cs = w->cs;

	sl_free(w);
	if (cs == NULL)
		return; /* the session went away meanwhile */
	cs->wait = NULL;
	sl_console_reply(&cs->out, is_ok, text, strlen(text));
	ctl_drive(cs);
}

/* Run one command; its output or error into `b`. */
static enum ctl_result
ctl_run(struct ctl_session *cs, int argc, char **argv, struct sl_buf *b)
{
	char msg[4096] = "";
	struct ctl_wait *w;
	int rc;

	if (argc == 1 && strcasecmp(argv[0], "help") == 0) {
		sl_buf_puts(b, ctl_help);
		return CTL_OK;
	}
	if (argc == 1 && strcasecmp(argv[0], "version") == 0) {
		sl_buf_printf(b, "sluiced %s\n", PACKAGE_VERSION);
		return CTL_OK;
	}
	if (argc == 1 && strcasecmp(argv[0], "pid") == 0) {
		sl_buf_printf(b, "%d\n", (int)getpid());
		return CTL_OK;
	}
	if (argc == 1 && strcasecmp(argv[0], "summary") == 0) {
		ctl_summary(b);
		return CTL_OK;
	}
	if (argc == 2 && strcasecmp(argv[0], "summary") == 0 && strcasecmp(argv[1], "reset") == 0) {
		ctl_summary_reset();
		sl_log_notice("console session %s: summary reset", cs->id);
		sl_buf_puts(b, "statistics cleared.\n");
		return CTL_OK;
	}
	if (argc == 1 && strcasecmp(argv[0], "threads") == 0) {
		sl_buf_printf(b, "%-10s %7s %5s %11s %12s %12s\n", "stage", "threads", "busy",
			      "queued", "ops", "us/op");
		sl_stage_foreach(ctl_thread_row, b);
		return CTL_OK;
	}
	if (argc == 1 && strcasecmp(argv[0], "memory") == 0) {
		ctl_memory(b);
		return CTL_OK;
	}
	if (argc == 2 && strcasecmp(argv[0], "config") == 0 && strcasecmp(argv[1], "show") == 0) {
		ctl_config_show(b);
		return CTL_OK;
	}
	if (argc >= 3 && strcasecmp(argv[0], "config") == 0 &&
	    (strcasecmp(argv[1], "get") == 0 || strcasecmp(argv[1], "eval") == 0))
		return ctl_config_value(argc, argv, b) ? CTL_OK : CTL_ERR;
	if (argc == 2 && strcasecmp(argv[0], "config") == 0 && strcasecmp(argv[1], "reload") == 0) {
		rc = ctl_hooks.reload ? ctl_hooks.reload(msg, sizeof(msg)) : -1;

		sl_buf_printf(b, "%s\n", msg[0] ? msg : rc == 0 ? "reloaded" : "reload failed");
		return rc == 0 ? CTL_OK : CTL_ERR;
	}
	if (argc == 2 && strcasecmp(argv[0], "reopen") == 0 && strcasecmp(argv[1], "logs") == 0) {
		rc = ctl_hooks.reopen ? ctl_hooks.reopen(msg, sizeof(msg)) : -1;

		sl_buf_printf(b, "%s\n", msg[0] ? msg : rc == 0 ? "logs reopened" : "failed");
		return rc == 0 ? CTL_OK : CTL_ERR;
	}
	if (argc >= 2 && strcasecmp(argv[0], "spool") == 0 && strcasecmp(argv[1], "import") == 0) {
		rc = ctl_hooks.spool_import
			     ? ctl_hooks.spool_import(argc - 2, argv + 2, msg, sizeof(msg))
			     : -1;

		sl_buf_printf(b, "%s\n", msg[0] ? msg : "spool import is not available");
		return rc == 0 ? CTL_OK : CTL_ERR;
	}
	if (argc == 1 && strcasecmp(argv[0], "shutdown") == 0) {
		sl_buf_puts(b, "shutting down\n");
		sl_log_notice("console session %s: shutdown", cs->id);
		if (ctl_hooks.shutdown)
			ctl_hooks.shutdown();
		return CTL_OK;
	}
	w = SL_NEW(w);
	w->cs = cs;
	rc = sl_protocol_console(argc, argv, b, ctl_wait_done, w);
	if (rc == 0)
		rc = sl_deliver_console(argc, argv, b, ctl_wait_done, w);
	if (rc > 0) {
		cs->wait = w;
		return CTL_WAIT;
	}
	sl_free(w);
	if (rc < 0)
		return CTL_ERR;
	sl_buf_printf(b, "unknown command \"%s\"; try help\n", argc > 0 ? argv[0] : "");
	return CTL_ERR;
}

/* ------------------------------------------------------------ sessions */

static void
ctl_close_cb(uv_handle_t *h)
{
	struct ctl_session *cs = h->data;

	if (cs->prev != NULL)
		cs->prev->next = cs->next;
	else
		ctl_sessions = cs->next;
	if (cs->next != NULL)
		cs->next->prev = cs->prev;
	sl_buf_free(&cs->in);
	sl_buf_free(&cs->out);
	sl_buf_free(&cs->wbuf);
	sl_conf_snapshot_put(cs->snap);
	__atomic_sub_fetch(&cs->lrt->sessions, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(cs->lrt->service_sessions, 1, __ATOMIC_RELAXED);
	cs->magic = 0;
	sl_free(cs);
}

static void
ctl_close(struct ctl_session *cs)
{
	if (cs->is_closing)
		return;
	cs->is_closing = true;
	if (cs->wait != NULL) {
		cs->wait->cs = NULL; /* its answer is dropped when it comes */
		cs->wait = NULL;
	}
	uv_close(&cs->h.handle, ctl_close_cb);
}

static void
ctl_write_cb(uv_write_t *req, int status)
{
	struct ctl_session *cs = req->data;

	cs->is_writing = false;
	sl_buf_reset(&cs->wbuf);
	if (status < 0) {
		ctl_close(cs);
		return;
	}
	ctl_drive(cs);
}

static void
ctl_flush(struct ctl_session *cs)
{
	uv_buf_t b;

	if (cs->is_writing || cs->out.len == 0 || cs->is_closing)
		return;
	sl_buf_append(&cs->wbuf, cs->out.data, cs->out.len);
	sl_buf_reset(&cs->out);
	b = uv_buf_init(cs->wbuf.data, (unsigned)cs->wbuf.len);
	cs->wreq.data = cs;
	cs->is_writing = true;
	if (uv_write(&cs->wreq, &cs->h.stream, &b, 1, ctl_write_cb) < 0) {
		cs->is_writing = false;
		ctl_close(cs);
	}
}

/*
 * The acctlog's authorization record for a command: granted by the ACL's
 * ALWAYS-ALLOW (the role written), or refused.  Momentum's console checks
 * every command against the client's roles; here the ACL decides once per
 * session, and every command is recorded against that decision.
 */
static void
ctl_acct_command(const struct ctl_session *cs, int argc, char **argv)
{
	struct sl_buf cmd = SL_BUF_INIT;

	for (int i = 0; i < argc; i++)
		sl_buf_printf(&cmd, "%s%s", i > 0 ? " " : "", argv[i]);
	sl_eclog_authz(cs->endpoint, cs->peer, cs->user, cs->is_refused ? 0 : 1, cmd.data,
		       cs->is_refused ? NULL : "ALWAYS-ALLOW");
	sl_buf_free(&cmd);
}

/* Run every complete command line in the input. */
static void
ctl_drive(struct ctl_session *cs)
{
	while (!cs->is_quitting && !cs->is_closing && cs->wait == NULL) {
		char *nl = cs->in.len ? memchr(cs->in.data, '\n', cs->in.len) : NULL;
		char *argv[SL_CONSOLE_MAX_ARGS], words[SL_CONSOLE_MAX_LINE + 1];
		struct sl_buf text = SL_BUF_INIT;
		const char *why;
		size_t len;
		int argc;
		bool is_ok;
		enum ctl_result r;

		if (nl == NULL) {
			if (cs->in.len > SL_CONSOLE_MAX_LINE) {
				static const char e[] = "command line too long\n";

				sl_console_reply(&cs->out, false, e, sizeof(e) - 1);
				cs->is_quitting = true;
			}
			break;
		}
		len = (size_t)(nl - cs->in.data);
		if (len > 0 && cs->in.data[len - 1] == '\r')
			len--;
		argc = sl_console_split(cs->in.data, len, argv, SL_CONSOLE_MAX_ARGS, words,
					sizeof(words), &why);
		sl_buf_consume(&cs->in, (size_t)(nl - cs->in.data) + 1);
		if (argc == 0)
			continue;
		if (argc > 0)
			ctl_acct_command(cs, argc, argv);
		if (cs->is_refused) {
			sl_buf_puts(&text,
				    "not allowed: the Control_Listener ACL gives this client no "
				    "ALWAYS-ALLOW\n");
			is_ok = false;
			cs->is_quitting = true;
		} else if (argc < 0) {
			sl_buf_printf(&text, "%s\n", why);
			is_ok = false;
		} else if (argc == 1 && strcasecmp(argv[0], "quit") == 0) {
			sl_buf_puts(&text, "bye\n");
			is_ok = true;
			cs->is_quitting = true;
		} else {
			r = ctl_run(cs, argc, argv, &text);
			if (r == CTL_WAIT) {
				sl_buf_free(&text);
				break; /* the reply, then the next lines, come in ctl_wait_done */
			}
			is_ok = r == CTL_OK;
		}
		sl_console_reply(&cs->out, is_ok, text.data ? text.data : "", text.len);
		sl_buf_free(&text);
	}
	ctl_flush(cs);
	/* Quitting: close once the last reply is out. */
	if (cs->is_quitting && !cs->is_closing) {
		uv_read_stop(&cs->h.stream);
		if (!cs->is_writing && cs->out.len == 0)
			ctl_close(cs);
	}
}

/* control_listener_timeout: close the sessions idle that long (0: never). */
static void
ctl_idle_sweep(uv_loop_t *loop)
{
	uint64_t now = uv_now(loop);

	for (struct ctl_session *cs = ctl_sessions; cs != NULL; cs = cs->next) {
		int64_t timeout = sl_conf_int(cs->snap, SL_OPT_CONTROL_LISTENER_TIMEOUT);

		if (timeout <= 0 || cs->is_closing || cs->wait != NULL || cs->is_writing ||
		    now - cs->active_ms < (uint64_t)timeout * 1000)
			continue;
		sl_log_notice("console session %s: closed after %" PRId64
			      " seconds idle (control_listener_timeout)",
			      cs->id, timeout);
		ctl_close(cs);
	}
}

static void
ctl_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_session *cs = h->data;

	buf->base = sl_buf_reserve(&cs->in, 4096);
	buf->len = cs->in.cap - cs->in.len;
}

static void
ctl_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_session *cs = s->data;

	SL_CHECK_OBJ(cs, CTL_SESSION_MAGIC);
	if (nread > 0) {
		cs->in.len += (size_t)nread;
		cs->active_ms = uv_now(s->loop);
		ctl_drive(cs);
	} else if (nread < 0) {
		ctl_close(cs);
	}
}

/* Only ALWAYS-ALLOW admits now (LOGIN and DIGEST-MD5 need AUTH, a later issue). */
static bool
ctl_is_allowed(const struct sl_session_new_ev *ev)
{
	for (size_t i = 0; i < ev->acl.applied_cnt; i++)
		for (size_t k = 0; k < ev->acl.applied[i]->prop_cnt; k++)
			if (strcmp(ev->acl.applied[i]->props[k].name, "ALWAYS-ALLOW") == 0)
				return true;
	return false;
}

/* Who the client is, for the acctlog: its peer address, or its uid on a Unix socket. */
static void
ctl_identify(struct ctl_session *cs, const struct sl_session_new_ev *ev)
{
	char ip[INET6_ADDRSTRLEN] = "";

	cs->endpoint = ev->addr != NULL ? ev->addr->text : "";
	if (ev->peer.ss_family == AF_UNIX) {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		/* The kernel's record of the connecting process: nothing to trust it for but this. */
		if (getsockopt(ev->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			snprintf(cs->user, sizeof(cs->user), "%u", (unsigned)cred.uid);
	} else if (ev->peer.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ev->peer;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(cs->peer, sizeof(cs->peer), "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ev->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ev->peer;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(cs->peer, sizeof(cs->peer), "%s:%u", ip, ntohs(sin6->sin6_port));
	}
}

static void
ctl_session_start(struct sl_thread *t, struct sl_session_new_ev *ev)
{
	struct ctl_session *cs = SL_NEW(cs);
	uv_loop_t *loop = sl_thread_loop(t);
	bool is_allowed = ctl_is_allowed(ev);
	int rc;

	cs->magic = CTL_SESSION_MAGIC;
	cs->next = ctl_sessions;
	if (ctl_sessions != NULL)
		ctl_sessions->prev = cs;
	ctl_sessions = cs;
	cs->lrt = ev->lrt;
	cs->snap = ev->snap;
	memcpy(cs->id, ev->id, sizeof(cs->id));
	ctl_identify(cs, ev);
	if (ev->peer.ss_family == AF_UNIX) {
		uv_pipe_init(loop, &cs->h.pipe, 0);
		rc = uv_pipe_open(&cs->h.pipe, ev->fd);
	} else {
		uv_tcp_init(loop, &cs->h.tcp);
		rc = uv_tcp_open(&cs->h.tcp, ev->fd);
	}
	cs->h.handle.data = cs;
	cs->active_ms = uv_now(loop);
	sl_free(ev);
	if (rc != 0 || uv_read_start(&cs->h.stream, ctl_alloc_cb, ctl_read_cb) != 0) {
		sl_log_err("console session %s: cannot use the connection", cs->id);
		ctl_close(cs);
		return;
	}
	/* Admission by the ACL is the console's authentication today (no LOGIN yet). */
	sl_eclog_authn(cs->endpoint, cs->peer, cs->user, is_allowed ? 1 : 0);
	if (!is_allowed) {
		sl_log_notice("console session %s: refused (no ALWAYS-ALLOW)", cs->id);
		cs->is_refused = true;
	}
}

static void
ctl_handle(struct sl_thread *t, struct sl_event *ev)
{
	SL_ASSERT(ev->type == SL_EV_SESSION_NEW);
	ctl_session_start(t, (struct sl_session_new_ev *)ev);
}

static int
ctl_thread_init(struct sl_thread *t)
{
	uv_timer_init(sl_thread_loop(t), &ctl_rate.timer);
	ctl_rate_cb(&ctl_rate.timer);
	uv_timer_start(&ctl_rate.timer, ctl_rate_cb, 1000, 1000);
	return 0;
}

static void
ctl_thread_fini(struct sl_thread *t)
{
	uv_close((uv_handle_t *)&ctl_rate.timer, NULL);
	for (struct ctl_session *cs = ctl_sessions; cs != NULL; cs = cs->next)
		ctl_close(cs);
	/* Queries still running on other stages: their answers go nowhere now. */
	sl_gather_drain(10000);
	/* The runtime runs the loop until the close callbacks are done. */
}

const struct sl_stage_def sl_control_stage = {
	.name = "control",
	.kind = SL_STAGE_LOOP,
	.thread_init = ctl_thread_init,
	.handle = ctl_handle,
	.thread_fini = ctl_thread_fini,
};
