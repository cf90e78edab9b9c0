/*
 * test/bench/sluice-bench.c - a load generator and an SMTP sink in one
 * binary, for benchmark harness runs against any MTA on loopback.
 *
 *   sluice-bench inject -H ADDR -p PORT [-P smtp|ecstream] [-n N] [-s SESSIONS]
 *                       [-l SIZE] [-m MSGS_PER_SESSION] [-x] [-w WINDOW]
 *                       [-f SENDER] [-t RCPT] [-r RCPTS] [-T SECS] [-j FILE]
 *   sluice-bench sink   -p PORT [-H ADDR] [-c COUNTER_FILE] [-T SECS] [-j FILE]
 *   sluice-bench idle   -H ADDR -p PORT [-P smtp|ecstream] [-s SESSIONS]
 *                       [-d HOLD_SECS] [-T SECS] [-j FILE]
 *
 * inject sends N messages of exactly SIZE octets (an RFC 5322 message: Date,
 * From, To, a Message-ID unique to the message and the run, Subject, body
 * lines of at most 78 printable characters, CRLF) over SESSIONS concurrent
 * sessions, MSGS_PER_SESSION messages per connection (1, the default, is one
 * connection per message as smtp-source does it; 0 reuses a connection until
 * the work runs out).  SMTP: EHLO (HELO if refused), MAIL, RCPT, DATA, the
 * dot-stuffed content, "."; with -x the commands of a transaction go out as
 * one group when the server offers PIPELINING (RFC 2920 §3.1), and the next
 * group follows the end of data in the same write.  ECStream (proto/
 * ecstream.h): frames pipelined up to WINDOW per session, "ECSQ" to end.
 * A message counts as accepted on a 2xx to its content, refused on a 4xx or
 * 5xx at any step (the first few such replies go to stderr), lost when its
 * connection broke after its end of data went out (it may or may not have
 * been taken; it is not sent again).  A message whose connection broke
 * before its end of data went out is sent again on a new connection.
 * Latency is measured per message from the moment the write carrying its
 * end of data (".\r\n", or its last content octet for ECStream) completed to
 * the reply to it, for accepted and refused messages alike.  A refused or
 * reset connection counts in errors and is tried again after a backoff
 * (10 ms doubling to 1 s); -T (default 300 s) bounds the whole run.
 *
 * sink is an SMTP server that takes everything (220; EHLO offers PIPELINING,
 * 8BITMIME, SIZE; 250 to MAIL and RCPT; 354; 250 after CRLF.CRLF), answers
 * pipelined commands in order, counts messages, and keeps the count in
 * COUNTER_FILE (decimal and a newline, rewritten in place at most every
 * 10 ms, so a harness can poll it).  It stops on SIGTERM, SIGINT or after -T
 * seconds (default 3600) and prints its totals.
 *
 * idle opens SESSIONS connections (at most 256 being set up at a time),
 * reads the greeting (SMTP: and the reply to EHLO), holds them HOLD seconds
 * (default 10), reports how many were established and still open at the
 * end, and closes them (with QUIT or ECSQ).  -T bounds the set-up.
 *
 * Every mode prints one line of key=value figures on stdout, and with -j
 * writes the same fields as one JSON object to FILE.  Only numeric loopback
 * addresses (127.0.0.0/8, ::1) are accepted unless --any-host is given.
 * The soft RLIMIT_NOFILE is raised to what the sessions need (the sink: to
 * the hard limit); inject and idle stop with a message when the hard limit
 * is too low.  Exit status: 0 when the run completed (inject: every message
 * accepted or refused, none lost, within -T; idle: every session established
 * and held), 1 when not, 2 for a usage error.
 *
 * Threads: one; one libuv loop owns every handle.
 * Untrusted input: the peer's replies (inject, idle) and commands and
 * content (sink); a line is bounded by BENCH_MAX_LINE octets, unsent sink
 * output by BENCH_SINK_OUT_MAX (reading stops above it), everything else by
 * the options' limits.  Every loop is bounded by its input, the message
 * count, the session count or the window; every run by -T.
 * Ownership: main() owns the one struct bench and everything hanging off it.
 * A connection (struct conn, struct sconn) owns its buffers and is freed in
 * its close callback; a write (struct wreq) owns its own octets and borrows
 * the shared message body from the bench until its callback.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "proto/ecstream.h"

#define BENCH_MAX_LINE       4096        /* a reply or command line, CRLF included */
#define BENCH_MAX_N          10000000ull /* messages of one run (latencies kept in memory) */
#define BENCH_MAX_SESSIONS   100000u
#define BENCH_MAX_SIZE       (100u << 20)
#define BENCH_MAX_RCPTS      100u
#define BENCH_MAX_WINDOW     1024u
#define BENCH_MAX_SECS       604800u
#define BENCH_SHOW_MAX       5            /* refusals, and errors, printed to stderr */
#define BENCH_IDLE_RAMP      256u         /* idle: connections being set up at once */
#define BENCH_SINK_OUT_MAX   (256u << 10) /* sink: unsent replies above which reading stops */
#define BENCH_SINK_BACKLOG   4096
#define BENCH_BACKOFF_MIN_MS 10u
#define BENCH_BACKOFF_MAX_MS 1000u
#define BENCH_FD_SPARE       64u /* descriptors beyond one per session */
#define BENCH_COUNTER_MS     10u
#define BENCH_HELO           "sluice-bench.localdomain"
#define BENCH_ID_DOMAIN      "sluice-bench.invalid"

#define BENCH_CONN_MAGIC  0x5b3c0a11u
#define BENCH_SCONN_MAGIC 0x5b35117cu

enum bench_mode {
	BENCH_INJECT,
	BENCH_SINK,
	BENCH_IDLE,
};

enum bench_proto {
	BENCH_SMTP,
	BENCH_ECS,
};

enum bench_status {
	BENCH_ST_RUNNING,
	BENCH_ST_OK,
	BENCH_ST_TIMEOUT,
	BENCH_ST_INTERRUPTED,
};

static const char *const bench_status_name[] = {
	[BENCH_ST_RUNNING] = "running",
	[BENCH_ST_OK] = "ok",
	[BENCH_ST_TIMEOUT] = "timeout",
	[BENCH_ST_INTERRUPTED] = "interrupted",
};

/* The SMTP replies a client connection waits for, in the order they come. */
enum smtp_wait {
	SMTP_W_GREETING,
	SMTP_W_EHLO,
	SMTP_W_HELO,
	SMTP_W_MAIL,
	SMTP_W_RCPT,
	SMTP_W_DATA,
	SMTP_W_FINAL, /* the reply to a message's content */
	SMTP_W_DOT,   /* the reply to an empty content after a 354 no recipient takes */
	SMTP_W_RSET,
	SMTP_W_QUIT,
};

static const char *const smtp_wait_name[] = {
	[SMTP_W_GREETING] = "greeting", [SMTP_W_EHLO] = "EHLO",       [SMTP_W_HELO] = "HELO",
	[SMTP_W_MAIL] = "MAIL",         [SMTP_W_RCPT] = "RCPT",       [SMTP_W_DATA] = "DATA",
	[SMTP_W_FINAL] = "end of data", [SMTP_W_DOT] = "end of data", [SMTP_W_RSET] = "RSET",
	[SMTP_W_QUIT] = "QUIT",
};

/* How a client connection ends. */
enum conn_end {
	CONN_END_NORMAL, /* QUIT answered, or nothing owed: the slot goes on at once */
	CONN_END_ERROR,  /* counted in errors: the slot goes on after a backoff */
	CONN_END_STOP,   /* the run is over: nothing is counted */
};

struct bench_opts {
	enum bench_mode mode;
	enum bench_proto proto;
	const char *host;
	unsigned port;
	uint64_t n;
	unsigned sessions;
	size_t size;
	unsigned per_session; /* 0: unlimited */
	bool is_pipelining;   /* -x */
	unsigned window;
	const char *sender;
	const char *rcpt;
	unsigned rcpt_cnt;
	unsigned timeout_s;
	unsigned hold_s;
	const char *json_path;    /* borrowed from argv, or NULL */
	const char *counter_path; /* borrowed from argv, or NULL */
	bool is_any_host;
};

/* One message on a client connection, from MAIL (or its frame) to its reply. */
struct msgrec {
	uint64_t msg;      /* 0 .. n-1 */
	uint64_t seq;      /* per connection, consecutive along the ring; 1 is the first */
	uint64_t t_queued; /* uv_hrtime() when the write with its end of data was queued */
	uint64_t t_eod;    /* uv_hrtime() when that write completed; 0 until then */
	unsigned rcpt_sent;
	unsigned rcpt_ok;
	bool is_mail_ok;
	bool is_eod_sent;
};

struct slot;

/* A client connection (inject, idle). */
struct conn {
	uv_tcp_t tcp; /* tcp.data = this */
	unsigned magic;
	struct bench *b;          /* borrowed: outlives every connection */
	struct slot *slot;        /* inject: the slot it serves; idle: NULL */
	struct conn *prev, *next; /* on b->conns */
	uv_connect_t connect_req;
	enum conn_end end;
	bool is_closing;
	bool is_ready;      /* SMTP: EHLO answered; ECStream: greeting read */
	bool is_held;       /* idle: counted as established */
	bool is_quit_sent;  /* QUIT or ECSQ went out: nothing more will */
	bool is_next_sent;  /* SMTP -x: the next group went out with the last content */
	bool is_pipelining; /* SMTP: offered by the server and asked for by -x */
	unsigned msgs_begun;
	unsigned reserved; /* inject: messages it will still claim, counted in b->reserved_cnt */
	uint64_t seq_next;
	struct sl_buf in; /* owned: the start of a line not complete yet */
	/* The SMTP reply being read. */
	unsigned reply_code;
	unsigned reply_line_cnt;
	bool reply_has_pipelining;
	char reply_text[160]; /* its first line, control characters as '?' */
	/* The SMTP replies owed, oldest first (a ring). */
	unsigned char *wait; /* owned */
	unsigned wait_cap, wait_head, wait_cnt;
	/* The messages in flight, oldest first (a ring). */
	struct msgrec *msgs; /* owned */
	unsigned msg_cap, msg_head, msg_cnt;
};

/* One of the -s SESSIONS of inject: a connection after another until the work runs out. */
struct slot {
	struct bench *b;   /* borrowed */
	uv_timer_t timer;  /* reconnect backoff */
	struct conn *conn; /* the current connection, or NULL */
	unsigned backoff_ms;
};

/* A sink connection. */
struct sconn {
	uv_tcp_t tcp; /* tcp.data = this */
	unsigned magic;
	struct bench *b;           /* borrowed */
	struct sconn *prev, *next; /* on b->sconns */
	uv_write_t write_req;
	bool is_closing;
	bool is_data;    /* between 354 and the end of data */
	bool is_bol;     /* in data: at the start of a line */
	bool is_quit;    /* QUIT read: close once the replies are out */
	bool is_writing; /* write_req is in flight with wbuf */
	bool is_reading;
	struct sl_buf in;   /* owned: the start of a line not complete yet */
	struct sl_buf out;  /* owned: replies not yet handed to a write */
	struct sl_buf wbuf; /* owned: the replies being written */
};

/* A write from a client connection: its own octets, and borrowed ones between them. */
struct wseg {
	const char *ext; /* borrowed octets, or NULL: own.data + off */
	size_t off;
	size_t len;
};

struct wreq {
	uv_write_t req;
	struct conn *c;    /* borrowed: alive until this callback (close cancels writes first) */
	struct sl_buf own; /* owned */
	struct wseg *seg;  /* owned */
	unsigned seg_cnt, seg_cap;
	uint64_t eod_first; /* seq of the first message whose end of data it carries, or 0 */
	unsigned eod_cnt;
	bool is_close_after; /* close the connection once written (idle's QUIT) */
};

struct bench {
	struct bench_opts o;
	uv_loop_t *loop;
	struct sockaddr_storage addr;
	enum bench_status status;
	bool is_done;      /* inject: every message resolved */
	bool is_stopping;  /* no new work; connections are being closed */
	bool is_finishing; /* the long-lived handles are being closed */
	uint64_t t_start, t_end;
	uv_timer_t deadline;
	uv_signal_t sig_int, sig_term;
	uv_buf_t *iov; /* owned: scratch for uv_write, iov_cap entries */
	unsigned iov_cap;
	/* inject */
	struct slot *slots;      /* owned, o.sessions of them */
	char **rcpts;            /* owned, o.rcpt_cnt strings */
	struct sl_buf body;      /* owned: the content after the header, as it is */
	struct sl_buf body_wire; /* owned: the same, dot-stuffed (RFC 5321 §4.5.2) */
	bool is_subject_padded;  /* one octet more in the Subject to reach SIZE */
	char run_token[17];
	time_t date_sec;
	char date[40];
	uint64_t next_msg;
	uint64_t reserved_cnt; /* the sum of the connections' reserved */
	uint64_t *retry;       /* owned: messages to send again */
	size_t retry_cnt, retry_cap;
	uint64_t accepted, refused, lost;
	uint64_t resolved; /* accepted + refused + lost */
	uint64_t errors;   /* connections refused, broken or failed (also idle) */
	uint64_t connections;
	uint32_t *lat; /* owned: o.n latencies in microseconds */
	size_t lat_cnt;
	unsigned shown_refusals, shown_errors;
	/* client connections (inject, idle) */
	struct conn *conns;
	unsigned conn_cnt;
	/* idle */
	uv_timer_t hold;       /* -d: runs once every session is set up or failed */
	bool is_holding;       /* hold is running */
	bool is_in_idle_step;  /* idle_step() is on the stack */
	unsigned idle_started; /* connections begun */
	unsigned idle_setup;   /* begun, neither set up nor failed yet */
	unsigned idle_established, idle_failed;
	unsigned idle_dropped; /* established, then closed by the server */
	unsigned idle_open;    /* established and still open */
	unsigned idle_held_at_end;
	uint64_t t_setup; /* when the last session was set up or failed */
	/* sink */
	uv_tcp_t server;
	uv_timer_t counter_timer; /* -c: every BENCH_COUNTER_MS */
	struct sconn *sconns;
	unsigned sconn_cnt;
	int counter_fd; /* owned; -1 without -c */
	uint64_t sink_msgs, sink_sessions;
	uint64_t sink_count_written; /* what counter_fd holds */
};

/* One read buffer for the whole loop: each read is consumed before the next one. */
static char bench_rbuf[65536];

static void conn_close(struct conn *c, enum conn_end how);
static void bench_maybe_finish(struct bench *b);
static void smtp_next(struct conn *c);
static void ecs_fill(struct conn *c);

/* ------------------------------------------------------------ helpers */

static void bench_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
bench_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sluice-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (sluice-bench -h for help)\n", stderr);
	exit(2);
}

static void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
bench_die(const char *fmt, ...)
{
	va_list ap;

	fputs("sluice-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Print one of the first BENCH_SHOW_MAX lines of a kind; count the rest. */
static void bench_show(unsigned *shown, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
bench_show(unsigned *shown, const char *kind, const char *fmt, ...)
{
	va_list ap;

	if (*shown < BENCH_SHOW_MAX) {
		fputs("sluice-bench: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	} else if (*shown == BENCH_SHOW_MAX) {
		fprintf(stderr, "sluice-bench: further %s are counted, not shown\n", kind);
	}
	if (*shown <= BENCH_SHOW_MAX)
		(*shown)++;
}

static double
bench_secs(uint64_t from_ns, uint64_t to_ns)
{
	return to_ns > from_ns ? (double)(to_ns - from_ns) / 1e9 : 0.0;
}

static uint64_t
bench_parse_num(const char *arg, uint64_t min, uint64_t max, char opt)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || arg[0] == '-')
		bench_usage_error("-%c: '%s' is not a number", opt, arg);
	if (*end == 'k' || *end == 'K') {
		v = v > UINT64_MAX / 1024 ? UINT64_MAX : v * 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v = v > UINT64_MAX / 1048576 ? UINT64_MAX : v * 1048576;
		end++;
	}
	if (*end != '\0')
		bench_usage_error("-%c: '%s' is not a number", opt, arg);
	if (v < min || v > max)
		bench_usage_error("-%c: %llu is outside %" PRIu64 "..%" PRIu64, opt, v, min, max);
	return v;
}

/* A numeric address; loopback only (127.0.0.0/8, ::1) unless is_any. */
static void
bench_parse_addr(const char *host, unsigned port, bool is_any, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	bool is_loopback;

	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, (int)port, sin) == 0) {
		is_loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	} else if (uv_ip6_addr(host, (int)port, sin6) == 0) {
		const uint8_t *a = sin6->sin6_addr.s6_addr;

		is_loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
			      (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && a[12] == 127);
	} else {
		bench_usage_error("-H: '%s' is not a numeric IPv4 or IPv6 address", host);
	}
	if (!is_loopback && !is_any)
		bench_usage_error("-H: %s is not a loopback address (127.0.0.0/8, ::1); "
				  "--any-host allows it",
				  host);
}

/*
 * Raise the soft descriptor limit to `need` (0: to the hard limit).  -1 with
 * a message when the hard limit is lower than need.
 */
static int
bench_raise_nofile(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "sluice-bench: getrlimit(RLIMIT_NOFILE): %s\n", strerror(errno));
		return -1;
	}
	if (need == 0)
		need = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fprintf(stderr,
			"sluice-bench: needs %llu file descriptors, the hard limit "
			"(RLIMIT_NOFILE) is %llu: raise it (ulimit -Hn, as root) or use fewer "
			"sessions\n",
			(unsigned long long)need, (unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "sluice-bench: setrlimit(RLIMIT_NOFILE, %llu): %s\n",
			(unsigned long long)need, strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ the message */

/* Fixed width: "Thu, 26 Nov 2026 12:00:00 +0000" (the C locale; RFC 5322 §3.3). */
static const char *
msg_date(struct bench *b)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != b->date_sec) {
		gmtime_r(&now, &tm);
		strftime(b->date, sizeof(b->date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
		b->date_sec = now;
	}
	return b->date;
}

/* Every header has the same length: fixed-width date and message numbers. */
static void
msg_header(struct bench *b, struct sl_buf *out, uint64_t msg)
{
	const char *from = b->o.sender[0] != '\0' ? b->o.sender : "MAILER-DAEMON@" BENCH_ID_DOMAIN;

	sl_buf_printf(out,
		      "Date: %s\r\n"
		      "From: <%s>\r\n"
		      "To: <%s>\r\n"
		      "Message-ID: <%010" PRIu64 ".%s@" BENCH_ID_DOMAIN ">\r\n"
		      "Subject: sluice-bench message %010" PRIu64 "%s\r\n"
		      "\r\n",
		      msg_date(b), from, b->rcpts[0], msg, b->run_token, msg,
		      b->is_subject_padded ? "." : "");
}

/*
 * `len` octets of body: lines of at most 78 printable characters and CRLF
 * (RFC 5322 §2.1.1).  Every 16th line starts with a dot, so the client's
 * dot-stuffing and the server's undoing of it are exercised.  len is not 1.
 */
static void
msg_body_make(struct sl_buf *out, size_t len)
{
	static const char text[] = "The quick brown fox jumps over the lazy dog; sphinx of "
				   "black quartz, judge my vow! 0123456789 ";
	size_t k = 0;

	SL_ASSERT(len != 1);
	while (len > 0) { /* each line takes at least 2 octets */
		size_t line = len <= 80 ? len - 2 : len == 81 ? 77 : 78;
		char *p = sl_buf_reserve(out, line + 2);

		for (size_t j = 0; j < line; j++)
			p[j] = text[(k * 13 + j) % (sizeof(text) - 1)];
		if (line > 0) {
			if (p[0] == ' ')
				p[0] = '-';
			if (k % 16 == 15)
				p[0] = '.';
			if (p[line - 1] == ' ')
				p[line - 1] = '.';
		}
		p[line] = '\r';
		p[line + 1] = '\n';
		out->len += line + 2;
		len -= line + 2;
		k++;
	}
}

/* Append p[len] with a dot before every line that starts with one (RFC 5321 §4.5.2). */
static void
msg_dot_stuff(struct sl_buf *out, const char *p, size_t len)
{
	size_t i = 0;
	bool is_bol = true;

	while (i < len) { /* each round takes one line */
		const char *lf = memchr(p + i, '\n', len - i);
		size_t end = lf != NULL ? (size_t)(lf - p) + 1 : len;

		if (is_bol && p[i] == '.')
			sl_buf_append(out, ".", 1);
		sl_buf_append(out, p + i, end - i);
		is_bol = lf != NULL;
		i = end;
	}
}

/* Build the shared body so that header + body is exactly o.size octets. */
static void
msg_prepare(struct bench *b)
{
	struct sl_buf hdr = SL_BUF_INIT;
	size_t body_len;

	msg_header(b, &hdr, 0);
	if (b->o.size < hdr.len)
		bench_usage_error("-l: %zu octets is less than the header (%zu octets with these "
				  "addresses)",
				  b->o.size, hdr.len);
	body_len = b->o.size - hdr.len;
	if (body_len == 1) {
		b->is_subject_padded = true;
		body_len = 0;
	}
	msg_body_make(&b->body, body_len);
	msg_dot_stuff(&b->body_wire, b->body.data, b->body.len);
	sl_buf_reset(&hdr);
	msg_header(b, &hdr, 0);
	SL_ASSERT(hdr.len + b->body.len == b->o.size);
	sl_buf_free(&hdr);
}

/* ------------------------------------------------------------ inject bookkeeping */

/*
 * Whether a new connection would find a message: more are unclaimed than
 * the connections already open will take (each reserves MSGS_PER_SESSION,
 * or 1 with -m 0, and gives a reservation back with each claim), so the
 * end of a run does not open sessions that only say QUIT.
 */
static bool
bench_has_work(const struct bench *b)
{
	return !b->is_stopping && b->retry_cnt + (b->o.n - b->next_msg) > b->reserved_cnt;
}

/* The connection claims no more: give back what it still reserves. */
static void
conn_unreserve(struct conn *c)
{
	c->b->reserved_cnt -= c->reserved;
	c->reserved = 0;
}

/* The connection's next message, if it may have one (-m) and one is left. */
static bool
conn_claim(struct conn *c, uint64_t *msg)
{
	struct bench *b = c->b;
	bool has_msg = false;

	if (b->is_stopping || (b->o.per_session != 0 && c->msgs_begun >= b->o.per_session)) {
		has_msg = false;
	} else if (b->retry_cnt > 0) {
		*msg = b->retry[--b->retry_cnt];
		has_msg = true;
	} else if (b->next_msg < b->o.n) {
		*msg = b->next_msg++;
		has_msg = true;
	}
	if (!has_msg) {
		conn_unreserve(c);
	} else if (c->reserved > 0) {
		c->reserved--;
		b->reserved_cnt--;
	}
	return has_msg;
}

static void
bench_unclaim(struct bench *b, uint64_t msg)
{
	if (b->retry_cnt == b->retry_cap) {
		b->retry_cap = b->retry_cap ? 2 * b->retry_cap : 64;
		b->retry = sl_reallocarray(b->retry, b->retry_cap, sizeof(*b->retry));
	}
	b->retry[b->retry_cnt++] = msg;
}

static void
bench_resolved(struct bench *b)
{
	b->resolved++;
	SL_ASSERT(b->resolved <= b->o.n);
	if (b->resolved == b->o.n) {
		b->is_done = true;
		b->t_end = uv_hrtime();
		b->status = BENCH_ST_OK;
		uv_timer_stop(&b->deadline);
	}
}

/* ------------------------------------------------------------ rings */

static void
wait_push(struct conn *c, enum smtp_wait w)
{
	SL_ASSERT(c->wait_cnt < c->wait_cap);
	c->wait[(c->wait_head + c->wait_cnt++) % c->wait_cap] = (unsigned char)w;
}

static enum smtp_wait
wait_pop(struct conn *c)
{
	enum smtp_wait w;

	SL_ASSERT(c->wait_cnt > 0);
	w = (enum smtp_wait)c->wait[c->wait_head];
	c->wait_head = (c->wait_head + 1) % c->wait_cap;
	c->wait_cnt--;
	return w;
}

static struct msgrec *
msg_push(struct conn *c, uint64_t msg)
{
	struct msgrec *m;

	SL_ASSERT(c->msg_cnt < c->msg_cap);
	m = &c->msgs[(c->msg_head + c->msg_cnt++) % c->msg_cap];
	memset(m, 0, sizeof(*m));
	m->msg = msg;
	m->seq = ++c->seq_next;
	c->msgs_begun++;
	return m;
}

static struct msgrec *
msg_head(struct conn *c)
{
	return c->msg_cnt > 0 ? &c->msgs[c->msg_head] : NULL;
}

static void
msg_pop(struct conn *c)
{
	SL_ASSERT(c->msg_cnt > 0);
	c->msg_head = (c->msg_head + 1) % c->msg_cap;
	c->msg_cnt--;
}

/* The message with sequence number seq, if it is still in flight. */
static struct msgrec *
msg_by_seq(struct conn *c, uint64_t seq)
{
	struct msgrec *h = msg_head(c);

	if (h == NULL || seq < h->seq || seq - h->seq >= c->msg_cnt)
		return NULL;
	return &c->msgs[(c->msg_head + (seq - h->seq)) % c->msg_cap];
}

/* The head message got its final answer. */
static void
msg_done(struct conn *c, bool is_accepted, bool has_latency)
{
	struct bench *b = c->b;
	struct msgrec *m = msg_head(c);

	SL_ASSERT(m != NULL);
	if (has_latency) {
		uint64_t from = m->t_eod != 0 ? m->t_eod : m->t_queued;
		uint64_t us = (uv_hrtime() - from) / 1000;

		SL_ASSERT(b->lat_cnt < b->o.n);
		b->lat[b->lat_cnt++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	}
	if (is_accepted)
		b->accepted++;
	else
		b->refused++;
	msg_pop(c);
	bench_resolved(b);
}

/* ------------------------------------------------------------ writes */

static struct wreq *
wreq_new(struct conn *c)
{
	struct wreq *w = SL_NEW(w);

	w->c = c;
	w->req.data = w;
	return w;
}

static void
wreq_free(struct wreq *w)
{
	sl_buf_free(&w->own);
	sl_free(w->seg);
	sl_free(w);
}

static void
wreq_seg_add(struct wreq *w, const char *ext, size_t off, size_t len)
{
	if (w->seg_cnt >= w->seg_cap) {
		w->seg_cap = w->seg_cap ? 2 * w->seg_cap : 4;
		w->seg = sl_reallocarray(w->seg, w->seg_cap, sizeof(*w->seg));
	}
	SL_ASSERT(w->seg != NULL);
	w->seg[w->seg_cnt++] = (struct wseg){ ext, off, len };
}

/* The octets appended to w->own since `from` go out next. */
static void
wreq_own_done(struct wreq *w, size_t from)
{
	struct wseg *last = w->seg_cnt > 0 ? &w->seg[w->seg_cnt - 1] : NULL;

	if (w->own.len == from)
		return;
	if (last != NULL && last->ext == NULL && last->off + last->len == from)
		last->len += w->own.len - from;
	else
		wreq_seg_add(w, NULL, from, w->own.len - from);
}

#define WREQ_PRINTF(w, ...)                            \
	do {                                           \
		size_t wreq_at_ = (w)->own.len;        \
		sl_buf_printf(&(w)->own, __VA_ARGS__); \
		wreq_own_done((w), wreq_at_);          \
	} while (0)

static void
wreq_written(uv_write_t *req, int status)
{
	struct wreq *w = req->data;
	struct conn *c = w->c;

	SL_CHECK_OBJ(c, BENCH_CONN_MAGIC);
	if (status == 0) {
		uint64_t now = uv_hrtime();

		for (unsigned i = 0; i < w->eod_cnt; i++) {
			struct msgrec *m = msg_by_seq(c, w->eod_first + i);

			if (m != NULL && m->t_eod == 0)
				m->t_eod = now;
		}
		if (w->is_close_after)
			conn_close(c, CONN_END_STOP);
	} else if (status != UV_ECANCELED && !c->is_closing) {
		c->b->errors++;
		bench_show(&c->b->shown_errors, "errors", "write: %s", uv_strerror(status));
		conn_close(c, CONN_END_ERROR);
	}
	wreq_free(w);
}

static void
wreq_send(struct wreq *w)
{
	struct conn *c = w->c;
	struct bench *b = c->b;
	int rc;

	if (c->is_closing || w->seg_cnt == 0) {
		wreq_free(w);
		return;
	}
	if (w->seg_cnt > b->iov_cap) {
		b->iov_cap = w->seg_cnt;
		b->iov = sl_reallocarray(b->iov, b->iov_cap, sizeof(*b->iov));
	}
	for (unsigned i = 0; i < w->seg_cnt; i++) {
		const struct wseg *s = &w->seg[i];

		b->iov[i] = uv_buf_init((char *)(s->ext != NULL ? s->ext : w->own.data + s->off),
					(unsigned)s->len);
	}
	/* libuv copies the iovec array; the octets stay ours until wreq_written. */
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, b->iov, w->seg_cnt, wreq_written);
	if (rc < 0) {
		wreq_free(w);
		b->errors++;
		bench_show(&b->shown_errors, "errors", "write: %s", uv_strerror(rc));
		conn_close(c, CONN_END_ERROR);
	}
}

/* ------------------------------------------------------------ client connections */

static void slot_connect(struct slot *s);

static void
slot_timer_fired(uv_timer_t *t)
{
	slot_connect(t->data);
}

/* The slot's connection ended: go on with the next one if there is work. */
static void
slot_next(struct slot *s, bool is_error)
{
	struct bench *b = s->b;

	if (!bench_has_work(b))
		return;
	if (!is_error) {
		slot_connect(s);
		return;
	}
	s->backoff_ms = s->backoff_ms == 0 ? BENCH_BACKOFF_MIN_MS : 2 * s->backoff_ms;
	if (s->backoff_ms > BENCH_BACKOFF_MAX_MS)
		s->backoff_ms = BENCH_BACKOFF_MAX_MS;
	uv_timer_start(&s->timer, slot_timer_fired, s->backoff_ms, 0);
}

static void
conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct bench *b = c->b;
	struct slot *s = c->slot;
	enum conn_end end = c->end;

	SL_CHECK_OBJ(c, BENCH_CONN_MAGIC);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	b->conn_cnt--;
	sl_buf_free(&c->in);
	sl_free(c->wait);
	sl_free(c->msgs);
	c->magic = 0;
	sl_free(c);
	if (s != NULL) {
		s->conn = NULL;
		slot_next(s, end == CONN_END_ERROR);
	}
	bench_maybe_finish(b);
}

static void idle_step(struct bench *b);
static void sink_close(struct sconn *sc);

static void
conn_close(struct conn *c, enum conn_end how)
{
	struct bench *b = c->b;

	if (c->is_closing)
		return;
	c->is_closing = true;
	c->end = how;
	conn_unreserve(c);
	while (c->msg_cnt > 0) { /* bounded by the ring */
		struct msgrec *m = msg_head(c);

		if (how != CONN_END_STOP) {
			if (m->is_eod_sent) {
				b->lost++;
				msg_pop(c);
				bench_resolved(b);
				continue;
			}
			bench_unclaim(b, m->msg);
		}
		msg_pop(c);
	}
	if (b->o.mode == BENCH_IDLE) {
		if (c->is_held) {
			b->idle_open--;
			if (!b->is_stopping)
				b->idle_dropped++;
		} else {
			b->idle_setup--;
			b->idle_failed++;
		}
	}
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
	if (b->o.mode == BENCH_IDLE && !c->is_held && !b->is_stopping)
		idle_step(b);
}

static void conn_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
conn_error(struct conn *c, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	c->b->errors++;
	bench_show(&c->b->shown_errors, "errors", "%s", text);
	conn_close(c, CONN_END_ERROR);
}

/* The peer closed, or the connection broke. */
static void
conn_eof(struct conn *c, ssize_t err)
{
	if (c->is_quit_sent && c->msg_cnt == 0) {
		conn_close(c, CONN_END_NORMAL);
		return;
	}
	if (c->is_held) { /* idle: the server dropped a held session */
		conn_close(c, CONN_END_ERROR);
		return;
	}
	conn_error(c, "connection: %s, %u message(s) in flight",
		   err == UV_EOF ? "closed by the server" : uv_strerror((int)err), c->msg_cnt);
}

/* Session set up (SMTP: EHLO answered; ECStream: greeting read). */
static void
conn_ready(struct conn *c)
{
	struct bench *b = c->b;

	c->is_ready = true;
	if (c->slot != NULL)
		c->slot->backoff_ms = 0;
	if (b->o.mode == BENCH_IDLE) {
		c->is_held = true;
		b->idle_setup--;
		b->idle_established++;
		b->idle_open++;
		idle_step(b);
		return;
	}
	if (b->o.proto == BENCH_SMTP)
		smtp_next(c);
	else
		ecs_fill(c);
}

/* ------------------------------------------------------------ SMTP client */

/* One command in its own write, answered by a reply of kind w. */
static void smtp_send(struct conn *c, enum smtp_wait w, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
smtp_send(struct conn *c, enum smtp_wait w, const char *fmt, ...)
{
	struct wreq *r = wreq_new(c);
	char line[BENCH_MAX_LINE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	SL_ASSERT(n > 0 && (size_t)n < sizeof(line));
	sl_buf_append(&r->own, line, (size_t)n);
	wreq_own_done(r, 0);
	wait_push(c, w);
	wreq_send(r);
}

/* Append the next transaction (or QUIT when there is none) to write w. */
static void
smtp_begin(struct conn *c, struct wreq *w)
{
	struct bench *b = c->b;
	struct msgrec *m;
	uint64_t msg;

	if (!conn_claim(c, &msg)) {
		WREQ_PRINTF(w, "QUIT\r\n");
		wait_push(c, SMTP_W_QUIT);
		c->is_quit_sent = true;
		return;
	}
	m = msg_push(c, msg);
	WREQ_PRINTF(w, "MAIL FROM:<%s>\r\n", b->o.sender);
	wait_push(c, SMTP_W_MAIL);
	if (!c->is_pipelining)
		return;
	/* RFC 2920 §3.1: MAIL, RCPT and DATA may go as one group; DATA ends it. */
	for (unsigned i = 0; i < b->o.rcpt_cnt; i++) {
		WREQ_PRINTF(w, "RCPT TO:<%s>\r\n", b->rcpts[i]);
		wait_push(c, SMTP_W_RCPT);
	}
	m->rcpt_sent = b->o.rcpt_cnt;
	WREQ_PRINTF(w, "DATA\r\n");
	wait_push(c, SMTP_W_DATA);
}

static void
smtp_next(struct conn *c)
{
	struct wreq *w = wreq_new(c);

	smtp_begin(c, w);
	wreq_send(w);
}

/*
 * The content after the 354, and the end of data.  With pipelining the next
 * group (or QUIT) follows in the same write: RFC 2920 §3.1 allows the
 * content to start a group.
 */
static void
smtp_content(struct conn *c, struct msgrec *m)
{
	struct bench *b = c->b;
	struct wreq *w = wreq_new(c);
	size_t at = w->own.len;

	msg_header(b, &w->own, m->msg); /* no header line starts with a dot */
	wreq_own_done(w, at);
	wreq_seg_add(w, b->body_wire.data, 0, b->body_wire.len);
	WREQ_PRINTF(w, ".\r\n");
	m->is_eod_sent = true;
	m->t_queued = uv_hrtime();
	w->eod_first = m->seq;
	w->eod_cnt = 1;
	wait_push(c, SMTP_W_FINAL);
	if (c->is_pipelining) {
		smtp_begin(c, w);
		c->is_next_sent = true;
	}
	wreq_send(w);
}

static void
smtp_refusal(struct conn *c, const struct msgrec *m, enum smtp_wait w)
{
	bench_show(&c->b->shown_refusals, "refusals", "message %" PRIu64 ": %s refused: %u %s",
		   m->msg, smtp_wait_name[w], c->reply_code, c->reply_text);
}

/* The head message is refused; the server may hold a transaction: RSET. */
static void
smtp_txn_failed(struct conn *c)
{
	msg_done(c, false, false);
	smtp_send(c, SMTP_W_RSET, "RSET\r\n");
}

static void
smtp_on_reply(struct conn *c)
{
	struct bench *b = c->b;
	unsigned code = c->reply_code;
	bool is_ok = code / 100 == 2;
	enum smtp_wait w;
	struct msgrec *m;

	if (c->wait_cnt == 0) {
		conn_error(c, "unexpected reply: %u %s", code, c->reply_text);
		return;
	}
	w = wait_pop(c);
	m = msg_head(c);
	switch (w) {
	case SMTP_W_GREETING:
		if (!is_ok) {
			conn_error(c, "greeting: %u %s", code, c->reply_text);
			break;
		}
		smtp_send(c, SMTP_W_EHLO, "EHLO %s\r\n", BENCH_HELO);
		break;
	case SMTP_W_EHLO:
		if (!is_ok) {
			smtp_send(c, SMTP_W_HELO, "HELO %s\r\n", BENCH_HELO);
			break;
		}
		c->is_pipelining = c->reply_has_pipelining && b->o.is_pipelining;
		conn_ready(c);
		break;
	case SMTP_W_HELO:
		if (!is_ok) {
			conn_error(c, "HELO: %u %s", code, c->reply_text);
			break;
		}
		conn_ready(c);
		break;
	case SMTP_W_MAIL:
		SL_ASSERT(m != NULL);
		m->is_mail_ok = is_ok;
		if (!is_ok)
			smtp_refusal(c, m, w);
		if (c->is_pipelining)
			break; /* the RCPT and DATA replies follow */
		if (!is_ok) {
			smtp_txn_failed(c);
			break;
		}
		m->rcpt_sent = 1;
		smtp_send(c, SMTP_W_RCPT, "RCPT TO:<%s>\r\n", b->rcpts[0]);
		break;
	case SMTP_W_RCPT:
		SL_ASSERT(m != NULL);
		if (is_ok)
			m->rcpt_ok++;
		else if (m->is_mail_ok)
			smtp_refusal(c, m, w);
		if (c->is_pipelining)
			break;
		if (m->rcpt_sent < b->o.rcpt_cnt) {
			smtp_send(c, SMTP_W_RCPT, "RCPT TO:<%s>\r\n", b->rcpts[m->rcpt_sent++]);
		} else if (m->rcpt_ok > 0) {
			smtp_send(c, SMTP_W_DATA, "DATA\r\n");
		} else {
			smtp_txn_failed(c);
		}
		break;
	case SMTP_W_DATA:
		SL_ASSERT(m != NULL);
		if (code == 354 && m->is_mail_ok && m->rcpt_ok > 0) {
			smtp_content(c, m);
			break;
		}
		if (code == 354) {
			/* Nobody takes it, but the data phase must end (RFC 2920 §3.1). */
			msg_done(c, false, false);
			smtp_send(c, SMTP_W_DOT, ".\r\n");
			break;
		}
		if (m->is_mail_ok && m->rcpt_ok > 0)
			smtp_refusal(c, m, w);
		smtp_txn_failed(c);
		break;
	case SMTP_W_FINAL:
		SL_ASSERT(m != NULL && m->is_eod_sent);
		if (!is_ok)
			smtp_refusal(c, m, w);
		msg_done(c, is_ok, true);
		if (c->is_next_sent)
			c->is_next_sent = false;
		else
			smtp_next(c);
		break;
	case SMTP_W_DOT:
	case SMTP_W_RSET:
		smtp_next(c);
		break;
	case SMTP_W_QUIT:
		conn_close(c, CONN_END_NORMAL);
		break;
	}
}

/* One reply line, CRLF removed (RFC 5321 §4.2: "ddd-text" continues, "ddd text" ends). */
static void
smtp_line(struct conn *c, const char *p, size_t len)
{
	unsigned code;

	if (len < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' ||
	    p[2] > '9' || (len > 3 && p[3] != ' ' && p[3] != '-')) {
		conn_error(c, "not an SMTP reply line: %.*s", (int)(len < 80 ? len : 80), p);
		return;
	}
	code = (unsigned)(p[0] - '0') * 100 + (unsigned)(p[1] - '0') * 10 + (unsigned)(p[2] - '0');
	if (c->reply_line_cnt++ == 0) {
		size_t n = len > 4 ? len - 4 : 0;

		if (n >= sizeof(c->reply_text))
			n = sizeof(c->reply_text) - 1;
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)p[4 + i];

			c->reply_text[i] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
		}
		c->reply_text[n] = '\0';
		c->reply_code = code;
		c->reply_has_pipelining = false;
	}
	/* RFC 2920 §3: the EHLO keyword, alone on its line. */
	if (c->reply_line_cnt > 1 && len == 14 && strncasecmp(p + 4, "PIPELINING", 10) == 0)
		c->reply_has_pipelining = true;
	if (len > 3 && p[3] == '-')
		return;
	c->reply_line_cnt = 0;
	smtp_on_reply(c);
}

static size_t
smtp_input(struct conn *c, const char *p, size_t len)
{
	size_t used = 0;

	while (!c->is_closing && !c->is_held && used < len) { /* each round takes one line */
		const char *lf = memchr(p + used, '\n', len - used);
		size_t end, n;

		if (lf == NULL)
			break;
		end = (size_t)(lf - p) + 1;
		n = end - used - 1;
		if (n > 0 && p[used + n - 1] == '\r')
			n--;
		smtp_line(c, p + used, n);
		used = end;
	}
	return used;
}

/* ------------------------------------------------------------ ECStream client */

static void
ecs_quit(struct conn *c)
{
	struct wreq *w = wreq_new(c);
	uint8_t *p = (uint8_t *)sl_buf_reserve(&w->own, SL_ECS_HDR_LEN);

	sl_ecs_hdr_encode(p, SL_ECS_QUIT, 0, 0);
	w->own.len += SL_ECS_HDR_LEN;
	wreq_own_done(w, 0);
	c->is_quit_sent = true;
	wreq_send(w);
}

/* Send frames until WINDOW are unanswered; all in one write. */
static void
ecs_fill(struct conn *c)
{
	struct bench *b = c->b;
	struct wreq *w = NULL;

	while (!c->is_closing && !c->is_quit_sent && c->msg_cnt < b->o.window) {
		struct msgrec *m;
		uint64_t msg;
		size_t at;

		if (!conn_claim(c, &msg))
			break;
		if (w == NULL)
			w = wreq_new(c);
		at = w->own.len;
		if (sl_ecs_frame_begin(&w->own, b->o.sender, (const char *const *)b->rcpts,
				       b->o.rcpt_cnt, NULL, NULL, 0, b->o.size) < 0)
			bench_die("ECStream: the envelope does not encode"); /* checked in main */
		msg_header(b, &w->own, msg);
		wreq_own_done(w, at);
		wreq_seg_add(w, b->body.data, 0, b->body.len);
		m = msg_push(c, msg);
		m->is_eod_sent = true;
		m->t_queued = uv_hrtime();
		if (w->eod_cnt++ == 0)
			w->eod_first = m->seq;
	}
	if (w != NULL)
		wreq_send(w);
	/* Nothing more for this connection: ECSQ; the server answers what is owed first. */
	if (!c->is_closing && !c->is_quit_sent && c->msg_cnt < b->o.window)
		ecs_quit(c);
}

static void
ecs_on_reply(struct conn *c, const struct sl_ecs_reply *r)
{
	struct msgrec *m = msg_head(c);

	if (r->code == 221 && c->is_quit_sent && m == NULL) {
		conn_close(c, CONN_END_NORMAL);
		return;
	}
	if (m == NULL || r->code == 221) {
		conn_error(c, "ECStream: unexpected reply %u %s %s", r->code, r->enhanced, r->text);
		return;
	}
	if (r->code != 250)
		bench_show(&c->b->shown_refusals, "refusals",
			   "message %" PRIu64 " refused: %u %s %s", m->msg, r->code, r->enhanced,
			   r->text);
	msg_done(c, r->code == 250, true);
	ecs_fill(c);
}

static size_t
ecs_input(struct conn *c, const char *p, size_t len)
{
	size_t used = 0;

	if (!c->is_ready) {
		const char *lf = memchr(p, '\n', len);
		size_t n;

		if (lf == NULL)
			return 0;
		used = (size_t)(lf - p) + 1;
		n = used - 1;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n < strlen(SL_ECS_GREETING) ||
		    memcmp(p, SL_ECS_GREETING, strlen(SL_ECS_GREETING)) != 0) {
			conn_error(c, "ECStream greeting: %.*s", (int)(n < 200 ? n : 200), p);
			return used;
		}
		conn_ready(c);
	}
	while (!c->is_closing && used < len) { /* each round takes one reply line */
		struct sl_ecs_reply r;
		char why[128];
		long n;

		if (c->is_held)
			return len;
		n = sl_ecs_reply_parse(p + used, len - used, &r, why, sizeof(why));
		if (n == 0)
			break;
		if (n < 0) {
			conn_error(c, "ECStream: %s", why);
			break;
		}
		used += (size_t)n;
		ecs_on_reply(c, &r);
	}
	return used;
}

/* ------------------------------------------------------------ client I/O */

static void
bench_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	(void)h;
	(void)hint;
	*buf = uv_buf_init(bench_rbuf, sizeof(bench_rbuf));
}

static void
conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	const char *p = buf->base;
	size_t len, used;

	SL_CHECK_OBJ(c, BENCH_CONN_MAGIC);
	if (c->is_closing || nread == 0)
		return;
	if (nread < 0) {
		conn_eof(c, nread);
		return;
	}
	if (c->is_held)
		return; /* idle: nothing is owed, whatever the server says */
	len = (size_t)nread;
	if (c->in.len > 0) {
		sl_buf_append(&c->in, p, len);
		p = c->in.data;
		len = c->in.len;
	}
	used = c->b->o.proto == BENCH_SMTP ? smtp_input(c, p, len) : ecs_input(c, p, len);
	if (c->is_closing || c->is_held)
		return;
	if (c->in.len > 0)
		sl_buf_consume(&c->in, used);
	else if (used < len)
		sl_buf_append(&c->in, p + used, len - used);
	if (c->in.len > BENCH_MAX_LINE)
		conn_error(c, "a reply line over %d octets", BENCH_MAX_LINE);
}

static void
conn_connected(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	int rc;

	SL_CHECK_OBJ(c, BENCH_CONN_MAGIC);
	if (c->is_closing)
		return;
	if (status < 0) {
		conn_error(c, "connect: %s", uv_strerror(status));
		return;
	}
	c->b->connections++;
	uv_tcp_nodelay(&c->tcp, 1);
	rc = uv_read_start((uv_stream_t *)&c->tcp, bench_alloc, conn_read);
	if (rc < 0) {
		conn_error(c, "read: %s", uv_strerror(rc));
		return;
	}
	if (c->b->o.proto == BENCH_SMTP)
		wait_push(c, SMTP_W_GREETING);
}

static struct conn *
conn_start(struct bench *b, struct slot *s)
{
	struct conn *c = SL_NEW(c);
	int rc;

	c->magic = BENCH_CONN_MAGIC;
	c->b = b;
	c->slot = s;
	c->wait_cap = 2 * b->o.rcpt_cnt + 16;
	c->wait = sl_calloc(c->wait_cap, 1);
	c->msg_cap = b->o.proto == BENCH_ECS ? b->o.window : 2;
	c->msgs = sl_calloc(c->msg_cap, sizeof(*c->msgs));
	c->next = b->conns;
	if (b->conns != NULL)
		b->conns->prev = c;
	b->conns = c;
	b->conn_cnt++;
	rc = uv_tcp_init(b->loop, &c->tcp);
	SL_ASSERT(rc == 0);
	c->tcp.data = c;
	c->connect_req.data = c;
	rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&b->addr,
			    conn_connected);
	if (rc < 0)
		conn_error(c, "connect: %s", uv_strerror(rc));
	return c;
}

static void
slot_connect(struct slot *s)
{
	struct bench *b = s->b;

	if (s->conn != NULL || !bench_has_work(b))
		return;
	s->conn = conn_start(b, s);
	if (!s->conn->is_closing) {
		s->conn->reserved = b->o.per_session != 0 ? b->o.per_session : 1;
		b->reserved_cnt += s->conn->reserved;
	}
}

/* ------------------------------------------------------------ stopping */

static void
bench_stop(struct bench *b, enum bench_status status)
{
	if (b->is_stopping)
		return;
	b->is_stopping = true;
	if (b->status == BENCH_ST_RUNNING)
		b->status = status;
	if (b->t_end == 0)
		b->t_end = uv_hrtime();
	for (struct conn *c = b->conns; c != NULL; c = c->next) /* bounded by conn_cnt */
		conn_close(c, CONN_END_STOP);
	for (struct sconn *sc = b->sconns; sc != NULL; sc = sc->next) /* bounded by sconn_cnt */
		sink_close(sc);
	bench_maybe_finish(b);
}

static void
bench_close_handle(uv_handle_t *h)
{
	if (h->loop != NULL && !uv_is_closing(h))
		uv_close(h, NULL);
}

/* Once no connection is left, close the long-lived handles: uv_run then returns. */
static void
bench_maybe_finish(struct bench *b)
{
	if (b->is_finishing || !(b->is_done || b->is_stopping) || b->conn_cnt > 0 ||
	    b->sconn_cnt > 0)
		return;
	b->is_finishing = true;
	if (b->t_end == 0)
		b->t_end = uv_hrtime();
	bench_close_handle((uv_handle_t *)&b->deadline);
	bench_close_handle((uv_handle_t *)&b->sig_int);
	bench_close_handle((uv_handle_t *)&b->sig_term);
	bench_close_handle((uv_handle_t *)&b->hold);
	bench_close_handle((uv_handle_t *)&b->counter_timer);
	bench_close_handle((uv_handle_t *)&b->server);
	for (unsigned i = 0; b->slots != NULL && i < b->o.sessions; i++)
		bench_close_handle((uv_handle_t *)&b->slots[i].timer);
}

static void
bench_deadline_fired(uv_timer_t *t)
{
	struct bench *b = t->data;

	fprintf(stderr, "sluice-bench: -T %u s reached, stopping\n", b->o.timeout_s);
	bench_stop(b, BENCH_ST_TIMEOUT);
}

static void
bench_signalled(uv_signal_t *h, int signum)
{
	struct bench *b = h->data;

	(void)signum;
	if (b->o.mode == BENCH_SINK)
		bench_stop(b, BENCH_ST_OK);
	else
		bench_stop(b, BENCH_ST_INTERRUPTED);
}

/* ------------------------------------------------------------ idle */

static void
idle_hold_done(uv_timer_t *t)
{
	struct bench *b = t->data;

	b->idle_held_at_end = b->idle_open;
	b->status = BENCH_ST_OK;
	b->t_end = uv_hrtime();
	b->is_stopping = true;
	/* Say goodbye: QUIT or ECSQ, and close once it is written. */
	for (struct conn *c = b->conns; c != NULL; c = c->next) { /* bounded by conn_cnt */
		struct wreq *w;

		if (c->is_closing)
			continue;
		if (!c->is_held) {
			conn_close(c, CONN_END_STOP);
			continue;
		}
		w = wreq_new(c);
		if (b->o.proto == BENCH_SMTP) {
			WREQ_PRINTF(w, "QUIT\r\n");
		} else {
			sl_ecs_hdr_encode((uint8_t *)sl_buf_reserve(&w->own, SL_ECS_HDR_LEN),
					  SL_ECS_QUIT, 0, 0);
			w->own.len += SL_ECS_HDR_LEN;
			wreq_own_done(w, 0);
		}
		w->is_close_after = true;
		c->is_quit_sent = true;
		wreq_send(w);
	}
	bench_maybe_finish(b);
}

/* Start more connections while fewer than BENCH_IDLE_RAMP are being set up; hold when all are. */
static void
idle_step(struct bench *b)
{
	/* A connect that fails at once calls back in here: the outer call goes on. */
	if (b->is_in_idle_step)
		return;
	b->is_in_idle_step = true;
	while (!b->is_stopping && b->idle_started < b->o.sessions &&
	       b->idle_setup < BENCH_IDLE_RAMP) {
		b->idle_started++;
		b->idle_setup++;
		conn_start(b, NULL);
	}
	b->is_in_idle_step = false;
	if (!b->is_holding && !b->is_stopping &&
	    b->idle_established + b->idle_failed == b->o.sessions) {
		b->is_holding = true;
		b->t_setup = uv_hrtime();
		uv_timer_stop(&b->deadline);
		fprintf(stderr,
			"sluice-bench: idle: %u established, %u failed in %.3f s; holding %u s\n",
			b->idle_established, b->idle_failed, bench_secs(b->t_start, b->t_setup),
			b->o.hold_s);
		uv_timer_start(&b->hold, idle_hold_done, (uint64_t)b->o.hold_s * 1000, 0);
	}
}

/* ------------------------------------------------------------ sink */

static const char sink_ehlo[] = "250-localhost\r\n"
				"250-PIPELINING\r\n"
				"250-8BITMIME\r\n"
				"250 SIZE\r\n";

static void
sink_closed(uv_handle_t *h)
{
	struct sconn *sc = h->data;
	struct bench *b = sc->b;

	SL_CHECK_OBJ(sc, BENCH_SCONN_MAGIC);
	if (sc->prev != NULL)
		sc->prev->next = sc->next;
	else
		b->sconns = sc->next;
	if (sc->next != NULL)
		sc->next->prev = sc->prev;
	b->sconn_cnt--;
	sl_buf_free(&sc->in);
	sl_buf_free(&sc->out);
	sl_buf_free(&sc->wbuf);
	sc->magic = 0;
	sl_free(sc);
	bench_maybe_finish(b);
}

static void
sink_close(struct sconn *sc)
{
	if (sc->is_closing)
		return;
	sc->is_closing = true;
	uv_close((uv_handle_t *)&sc->tcp, sink_closed);
}

static void sink_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void sink_flush(struct sconn *sc);

static void
sink_written(uv_write_t *req, int status)
{
	struct sconn *sc = req->data;

	SL_CHECK_OBJ(sc, BENCH_SCONN_MAGIC);
	sc->is_writing = false;
	sl_buf_reset(&sc->wbuf);
	if (sc->is_closing)
		return;
	if (status < 0) {
		sink_close(sc);
		return;
	}
	if (sc->out.len > 0) {
		sink_flush(sc);
		return;
	}
	if (sc->is_quit) {
		sink_close(sc);
		return;
	}
	if (!sc->is_reading) {
		sc->is_reading = true;
		if (uv_read_start((uv_stream_t *)&sc->tcp, bench_alloc, sink_read) < 0)
			sink_close(sc);
	}
}

/* Hand the queued replies to one write; the next waits for it (replies stay in order). */
static void
sink_flush(struct sconn *sc)
{
	struct sl_buf t;
	uv_buf_t buf;

	if (sc->is_writing || sc->is_closing || sc->out.len == 0)
		return;
	t = sc->wbuf;
	sc->wbuf = sc->out;
	sc->out = t;
	buf = uv_buf_init(sc->wbuf.data, (unsigned)sc->wbuf.len);
	sc->is_writing = true;
	if (uv_write(&sc->write_req, (uv_stream_t *)&sc->tcp, &buf, 1, sink_written) < 0) {
		sc->is_writing = false;
		sink_close(sc);
	}
}

static void
sink_reply(struct sconn *sc, const char *s)
{
	sl_buf_puts(&sc->out, s);
}

/* One command line, CRLF removed. */
static void
sink_command(struct sconn *sc, const char *p, size_t len)
{
	static const struct {
		const char *verb;
		const char *reply;
	} table[] = {
		{ "EHLO", sink_ehlo },
		{ "HELO", "250 localhost\r\n" },
		{ "MAIL", "250 2.1.0 Ok\r\n" },
		{ "RCPT", "250 2.1.5 Ok\r\n" },
		{ "DATA", "354 End data with <CR><LF>.<CR><LF>\r\n" },
		{ "RSET", "250 2.0.0 Ok\r\n" },
		{ "NOOP", "250 2.0.0 Ok\r\n" },
		{ "VRFY", "252 2.0.0 Ok\r\n" },
		{ "QUIT", "221 2.0.0 Bye\r\n" },
	};

	if (len >= 4 && (len == 4 || p[4] == ' ')) {
		for (size_t i = 0; i < SL_ARRAY_LEN(table); i++) {
			if (strncasecmp(p, table[i].verb, 4) != 0)
				continue;
			sink_reply(sc, table[i].reply);
			if (table[i].verb[0] == 'D') {
				sc->is_data = true;
				sc->is_bol = true;
			} else if (table[i].verb[0] == 'Q') {
				sc->is_quit = true;
			}
			return;
		}
	}
	sink_reply(sc, "502 5.5.2 Error: command not recognized\r\n");
}

/*
 * Message content: skip lines until "." alone (RFC 5321 §4.1.1.4).  The
 * octets used; 0 when what is left may be the start of the end of data.
 */
static size_t
sink_data(struct sconn *sc, const char *p, size_t len)
{
	size_t pos = 0;

	while (pos < len) { /* each round takes one line */
		const char *lf;

		if (sc->is_bol) {
			size_t rem = len - pos;

			if (rem >= 3 && memcmp(p + pos, ".\r\n", 3) == 0) {
				char reply[64];

				sc->b->sink_msgs++;
				snprintf(reply, sizeof(reply),
					 "250 2.0.0 Ok: queued as %" PRIu64 "\r\n",
					 sc->b->sink_msgs);
				sink_reply(sc, reply);
				sc->is_data = false;
				return pos + 3;
			}
			if (rem < 3 && memcmp(p + pos, ".\r\n", rem) == 0)
				return pos;
		}
		lf = memchr(p + pos, '\n', len - pos);
		if (lf == NULL) {
			sc->is_bol = false;
			return len;
		}
		pos = (size_t)(lf - p) + 1;
		sc->is_bol = true;
	}
	return pos;
}

static size_t
sink_input(struct sconn *sc, const char *p, size_t len)
{
	size_t used = 0;

	while (used < len && !sc->is_quit) { /* each round takes a line or all of the data */
		const char *lf;
		size_t end, n;

		if (sc->is_data) {
			n = sink_data(sc, p + used, len - used);
			if (n == 0)
				break;
			used += n;
			continue;
		}
		lf = memchr(p + used, '\n', len - used);
		if (lf == NULL)
			break;
		end = (size_t)(lf - p) + 1;
		n = end - used - 1;
		if (n > 0 && p[used + n - 1] == '\r')
			n--;
		sink_command(sc, p + used, n);
		used = end;
	}
	return sc->is_quit ? len : used; /* after QUIT nothing more is read */
}

static void
sink_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct sconn *sc = s->data;
	const char *p = buf->base;
	size_t len, used;

	SL_CHECK_OBJ(sc, BENCH_SCONN_MAGIC);
	if (sc->is_closing || nread == 0)
		return;
	if (nread < 0 || sc->is_quit) {
		if (nread < 0)
			sink_close(sc);
		return;
	}
	len = (size_t)nread;
	if (sc->in.len > 0) {
		sl_buf_append(&sc->in, p, len);
		p = sc->in.data;
		len = sc->in.len;
	}
	used = sink_input(sc, p, len);
	if (sc->in.len > 0)
		sl_buf_consume(&sc->in, used);
	else if (used < len)
		sl_buf_append(&sc->in, p + used, len - used);
	if (sc->in.len > BENCH_MAX_LINE) {
		/* Only a command line can be this long: data never keeps more than ".\r". */
		sl_buf_reset(&sc->in);
		sink_reply(sc, "500 5.5.2 Error: line too long\r\n");
		sc->is_quit = true;
	}
	sink_flush(sc);
	if (sc->out.len + sc->wbuf.len > BENCH_SINK_OUT_MAX || sc->is_quit) {
		uv_read_stop(s);
		sc->is_reading = false;
	}
}

static void
sink_accepted(uv_stream_t *server, int status)
{
	struct bench *b = server->data;
	struct sconn *sc;
	int rc;

	if (status < 0 || b->is_stopping) {
		if (status < 0)
			bench_show(&b->shown_errors, "errors", "accept: %s", uv_strerror(status));
		return;
	}
	sc = SL_NEW(sc);
	sc->magic = BENCH_SCONN_MAGIC;
	sc->b = b;
	sc->write_req.data = sc;
	rc = uv_tcp_init(b->loop, &sc->tcp);
	SL_ASSERT(rc == 0);
	sc->tcp.data = sc;
	sc->next = b->sconns;
	if (b->sconns != NULL)
		b->sconns->prev = sc;
	b->sconns = sc;
	b->sconn_cnt++;
	if (uv_accept(server, (uv_stream_t *)&sc->tcp) < 0) {
		sink_close(sc);
		return;
	}
	b->sink_sessions++;
	uv_tcp_nodelay(&sc->tcp, 1);
	sc->is_reading = true;
	if (uv_read_start((uv_stream_t *)&sc->tcp, bench_alloc, sink_read) < 0) {
		sink_close(sc);
		return;
	}
	sink_reply(sc, "220 localhost ESMTP sluice-bench sink\r\n");
	sink_flush(sc);
}

static void
sink_counter_write(struct bench *b)
{
	char text[32];
	int n;

	if (b->counter_fd < 0 || b->sink_msgs == b->sink_count_written)
		return;
	/* The count only grows, so the file never needs truncating. */
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", b->sink_msgs);
	if (pwrite(b->counter_fd, text, (size_t)n, 0) == n)
		b->sink_count_written = b->sink_msgs;
}

static void
sink_counter_fired(uv_timer_t *t)
{
	sink_counter_write(t->data);
}

static void
sink_start(struct bench *b)
{
	int rc;

	if (b->o.counter_path != NULL) {
		b->counter_fd =
			open(b->o.counter_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (b->counter_fd < 0)
			bench_die("-c %s: %s", b->o.counter_path, strerror(errno));
		if (pwrite(b->counter_fd, "0\n", 2, 0) != 2)
			bench_die("-c %s: %s", b->o.counter_path, strerror(errno));
		uv_timer_init(b->loop, &b->counter_timer);
		b->counter_timer.data = b;
		uv_timer_start(&b->counter_timer, sink_counter_fired, BENCH_COUNTER_MS,
			       BENCH_COUNTER_MS);
	}
	uv_tcp_init(b->loop, &b->server);
	b->server.data = b;
	rc = uv_tcp_bind(&b->server, (const struct sockaddr *)&b->addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&b->server, BENCH_SINK_BACKLOG, sink_accepted);
	if (rc < 0)
		bench_die("sink: listen on %s port %u: %s", b->o.host, b->o.port, uv_strerror(rc));
}

/* ------------------------------------------------------------ report */

struct report {
	unsigned cnt;
	struct {
		const char *key;
		char val[48];
		bool is_str;
	} f[32];
};

static void report_add(struct report *r, const char *key, bool is_str, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
report_add(struct report *r, const char *key, bool is_str, const char *fmt, ...)
{
	va_list ap;

	SL_ASSERT(r->cnt < SL_ARRAY_LEN(r->f));
	r->f[r->cnt].key = key;
	r->f[r->cnt].is_str = is_str;
	va_start(ap, fmt);
	vsnprintf(r->f[r->cnt].val, sizeof(r->f[r->cnt].val), fmt, ap);
	va_end(ap);
	r->cnt++;
}

/* The key=value line on stdout, and the JSON object to path (if not NULL). */
static int
report_emit(const struct report *r, const char *path)
{
	FILE *f;

	for (unsigned i = 0; i < r->cnt; i++)
		printf("%s%s=%s", i > 0 ? " " : "", r->f[i].key, r->f[i].val);
	printf("\n");
	fflush(stdout);
	if (path == NULL)
		return 0;
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "sluice-bench: -j %s: %s\n", path, strerror(errno));
		return -1;
	}
	fputs("{", f);
	for (unsigned i = 0; i < r->cnt; i++) /* values are ours: no quotes or backslashes */
		fprintf(f, "%s\"%s\": %s%s%s", i > 0 ? ", " : "", r->f[i].key,
			r->f[i].is_str ? "\"" : "", r->f[i].val, r->f[i].is_str ? "\"" : "");
	fputs("}\n", f);
	if (fclose(f) != 0) {
		fprintf(stderr, "sluice-bench: -j %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
lat_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted latencies; 0 when there are none. */
static uint32_t
lat_pct(const struct bench *b, unsigned pct)
{
	size_t rank;

	if (b->lat_cnt == 0)
		return 0;
	rank = (b->lat_cnt * pct + 99) / 100;
	return b->lat[rank > 0 ? rank - 1 : 0];
}

static const char *
proto_name(const struct bench *b)
{
	return b->o.proto == BENCH_SMTP ? "smtp" : "ecstream";
}

static int
report_inject(struct bench *b)
{
	struct report r = { 0 };
	double secs = bench_secs(b->t_start, b->t_end);

	qsort(b->lat, b->lat_cnt, sizeof(*b->lat), lat_cmp);
	report_add(&r, "mode", true, "inject");
	report_add(&r, "proto", true, "%s", proto_name(b));
	report_add(&r, "n", false, "%" PRIu64, b->o.n);
	report_add(&r, "size", false, "%zu", b->o.size);
	report_add(&r, "sessions", false, "%u", b->o.sessions);
	report_add(&r, "accepted", false, "%" PRIu64, b->accepted);
	report_add(&r, "refused", false, "%" PRIu64, b->refused);
	report_add(&r, "errors", false, "%" PRIu64, b->errors);
	report_add(&r, "elapsed_s", false, "%.3f", secs);
	report_add(&r, "accept_mps", false, "%.0f", secs > 0 ? (double)b->accepted / secs : 0.0);
	report_add(&r, "lat_p50_us", false, "%" PRIu32, lat_pct(b, 50));
	report_add(&r, "lat_p99_us", false, "%" PRIu32, lat_pct(b, 99));
	report_add(&r, "lat_max_us", false, "%" PRIu32, b->lat_cnt ? b->lat[b->lat_cnt - 1] : 0);
	report_add(&r, "lost", false, "%" PRIu64, b->lost);
	report_add(&r, "unsent", false, "%" PRIu64, b->o.n - b->resolved);
	report_add(&r, "connections", false, "%" PRIu64, b->connections);
	report_add(&r, "msgs_per_session", false, "%u", b->o.per_session);
	report_add(&r, "rcpts", false, "%u", b->o.rcpt_cnt);
	if (b->o.proto == BENCH_SMTP)
		report_add(&r, "pipelining", true, "%s", b->o.is_pipelining ? "yes" : "no");
	else
		report_add(&r, "window", false, "%u", b->o.window);
	report_add(&r, "status", true, "%s", bench_status_name[b->status]);
	if (report_emit(&r, b->o.json_path) < 0)
		return 1;
	return b->status == BENCH_ST_OK && b->lost == 0 ? 0 : 1;
}

static int
report_idle(struct bench *b)
{
	struct report r = { 0 };
	uint64_t t_setup = b->t_setup ? b->t_setup : b->t_end;

	report_add(&r, "mode", true, "idle");
	report_add(&r, "proto", true, "%s", proto_name(b));
	report_add(&r, "sessions", false, "%u", b->o.sessions);
	report_add(&r, "established", false, "%u", b->idle_established);
	report_add(&r, "held", false, "%u", b->idle_held_at_end);
	report_add(&r, "failed", false, "%u", b->idle_failed);
	report_add(&r, "dropped", false, "%u", b->idle_dropped);
	report_add(&r, "errors", false, "%" PRIu64, b->errors);
	report_add(&r, "setup_s", false, "%.3f", bench_secs(b->t_start, t_setup));
	report_add(&r, "hold_s", false, "%.3f", bench_secs(t_setup, b->t_end));
	report_add(&r, "status", true, "%s", bench_status_name[b->status]);
	if (report_emit(&r, b->o.json_path) < 0)
		return 1;
	return b->status == BENCH_ST_OK && b->idle_held_at_end == b->o.sessions ? 0 : 1;
}

static int
report_sink(struct bench *b)
{
	struct report r = { 0 };

	report_add(&r, "mode", true, "sink");
	report_add(&r, "messages", false, "%" PRIu64, b->sink_msgs);
	report_add(&r, "sessions", false, "%" PRIu64, b->sink_sessions);
	report_add(&r, "elapsed_s", false, "%.3f", bench_secs(b->t_start, b->t_end));
	report_add(&r, "status", true, "%s", bench_status_name[b->status]);
	return report_emit(&r, b->o.json_path) < 0 ? 1 : 0;
}

/* ------------------------------------------------------------ options */

static const char bench_usage_text[] =
	"usage:\n"
	"  sluice-bench inject -H ADDR -p PORT [-P smtp|ecstream] [-n N] [-s SESSIONS] [-l SIZE]\n"
	"                      [-m MSGS_PER_SESSION] [-x] [-w WINDOW] [-f SENDER] [-t RCPT]\n"
	"                      [-r RCPTS] [-T SECS] [-j FILE]\n"
	"  sluice-bench sink   -p PORT [-H ADDR] [-c COUNTER_FILE] [-T SECS] [-j FILE]\n"
	"  sluice-bench idle   -H ADDR -p PORT [-P smtp|ecstream] [-s SESSIONS] [-d SECS]\n"
	"                      [-T SECS] [-j FILE]\n"
	"\n"
	"inject: send N messages of SIZE octets over SESSIONS concurrent sessions.\n"
	"  -P smtp|ecstream  protocol (smtp)\n"
	"  -n N              messages (1000; at most 10M)\n"
	"  -s SESSIONS       concurrent sessions (10)\n"
	"  -l SIZE           octets per message, header included (1024; k/M suffixes)\n"
	"  -m MSGS           messages per connection (1: one connection per message,\n"
	"                    as smtp-source; 0: reuse connections as long as there is work)\n"
	"  -x                SMTP PIPELINING (RFC 2920) when the server offers it\n"
	"  -w WINDOW         ECStream frames in flight per session (32)\n"
	"  -f SENDER         envelope sender (sender@bench.example; \"\" for <>)\n"
	"  -t RCPT           recipient (rcpt@sink.example); with -r R > 1 the others\n"
	"                    are local+1@domain .. local+(R-1)@domain\n"
	"  -r RCPTS          recipients per message (1; at most 100)\n"
	"  -T SECS           give up after SECS overall (300); reconnects are bounded by it\n"
	"  output: mode proto n size sessions accepted refused errors elapsed_s accept_mps\n"
	"          lat_p50_us lat_p99_us lat_max_us lost unsent connections msgs_per_session\n"
	"          rcpts pipelining|window status; latency runs from the completed write of\n"
	"          the end of data to the reply, for every message answered after its content\n"
	"sink: accept every message over SMTP and count them.\n"
	"  -c FILE           keep the message count in FILE (rewritten at most every 10 ms)\n"
	"  -T SECS           stop after SECS (3600); SIGTERM/SIGINT stop it too\n"
	"  output: mode messages sessions elapsed_s status\n"
	"idle: open SESSIONS connections, hold them, report, close.\n"
	"  -s SESSIONS       connections (100)\n"
	"  -d SECS           hold time once all are set up (10)\n"
	"  -T SECS           bound on the set-up (300)\n"
	"  output: mode proto sessions established held failed dropped errors setup_s hold_s "
	"status\n"
	"common:\n"
	"  -H ADDR           numeric IPv4 or IPv6 address to connect to (inject, idle: required)\n"
	"                    or listen on (sink: 127.0.0.1)\n"
	"  -p PORT           TCP port (required)\n"
	"  -j FILE           also write the figures as a JSON object to FILE\n"
	"  --any-host        allow a non-loopback -H (default: 127.0.0.0/8 and ::1 only)\n"
	"  -h                this text\n"
	"exit: 0 complete, 1 incomplete (timeout, lost messages, sessions not held), 2 usage\n";

static void
bench_parse_opts(struct bench *b, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "any-host", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const allowed[] = {
		[BENCH_INJECT] = "HpPnslmxwftrTjA",
		[BENCH_SINK] = "HpcTjA",
		[BENCH_IDLE] = "HpPsdTjA",
	};
	struct bench_opts *o = &b->o;
	bool has_host = false;
	int ch;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(bench_usage_text, argc < 2 ? stderr : stdout);
		exit(argc < 2 ? 2 : 0);
	}
	if (strcmp(argv[1], "inject") == 0)
		o->mode = BENCH_INJECT;
	else if (strcmp(argv[1], "sink") == 0)
		o->mode = BENCH_SINK;
	else if (strcmp(argv[1], "idle") == 0)
		o->mode = BENCH_IDLE;
	else
		bench_usage_error("unknown mode '%s' (inject, sink or idle)", argv[1]);

	o->proto = BENCH_SMTP;
	o->host = "127.0.0.1";
	o->n = 1000;
	o->sessions = o->mode == BENCH_IDLE ? 100 : 10;
	o->size = 1024;
	o->per_session = 1;
	o->window = 32;
	o->sender = "sender@bench.example";
	o->rcpt = "rcpt@sink.example";
	o->rcpt_cnt = 1;
	o->timeout_s = o->mode == BENCH_SINK ? 3600 : 300;
	o->hold_s = 10;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "H:p:P:n:s:l:m:xw:f:t:r:T:j:c:d:h", longopts, NULL)) !=
	       -1) {
		if (ch == 'h') {
			fputs(bench_usage_text, stdout);
			exit(0);
		}
		if (ch == '?')
			bench_usage_error("bad option for mode %s", argv[1]);
		if (strchr(allowed[o->mode], ch) == NULL)
			bench_usage_error("-%c is not an option of mode %s", ch == 'A' ? '-' : ch,
					  argv[1]);
		switch (ch) {
		case 'H':
			o->host = optarg;
			has_host = true;
			break;
		case 'p':
			o->port = (unsigned)bench_parse_num(optarg, 1, 65535, 'p');
			break;
		case 'P':
			if (strcmp(optarg, "smtp") == 0)
				o->proto = BENCH_SMTP;
			else if (strcmp(optarg, "ecstream") == 0)
				o->proto = BENCH_ECS;
			else
				bench_usage_error("-P: smtp or ecstream, not '%s'", optarg);
			break;
		case 'n':
			o->n = bench_parse_num(optarg, 1, BENCH_MAX_N, 'n');
			break;
		case 's':
			o->sessions = (unsigned)bench_parse_num(optarg, 1, BENCH_MAX_SESSIONS, 's');
			break;
		case 'l':
			o->size = (size_t)bench_parse_num(optarg, 1, BENCH_MAX_SIZE, 'l');
			break;
		case 'm':
			o->per_session = (unsigned)bench_parse_num(optarg, 0, 100000000, 'm');
			break;
		case 'x':
			o->is_pipelining = true;
			break;
		case 'w':
			o->window = (unsigned)bench_parse_num(optarg, 1, BENCH_MAX_WINDOW, 'w');
			break;
		case 'f':
			o->sender = optarg;
			break;
		case 't':
			o->rcpt = optarg;
			break;
		case 'r':
			o->rcpt_cnt = (unsigned)bench_parse_num(optarg, 1, BENCH_MAX_RCPTS, 'r');
			break;
		case 'T':
			o->timeout_s = (unsigned)bench_parse_num(optarg, 1, BENCH_MAX_SECS, 'T');
			break;
		case 'j':
			o->json_path = optarg;
			break;
		case 'c':
			o->counter_path = optarg;
			break;
		case 'd':
			o->hold_s = (unsigned)bench_parse_num(optarg, 0, BENCH_MAX_SECS, 'd');
			break;
		case 'A':
			o->is_any_host = true;
			break;
		}
	}
	if (optind != argc)
		bench_usage_error("unexpected argument '%s'", argv[optind]);
	if (o->port == 0)
		bench_usage_error("-p PORT is required");
	if (o->mode != BENCH_SINK && !has_host)
		bench_usage_error("-H ADDR is required");
	bench_parse_addr(o->host, o->port, o->is_any_host, &b->addr);
	for (const char *s = o->sender; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '<' || *s == '>')
			bench_usage_error("-f: control characters, spaces or <> in '%s'",
					  o->sender);
	/* RFC 5321 §4.5.3.1.3: a path is at most 256 octets, brackets included. */
	if (strlen(o->sender) > 254 || strlen(o->rcpt) > 240)
		bench_usage_error("-f or -t: an address over 254 octets (-t: 240, for +N)");
	if (strchr(o->rcpt, '@') == NULL || o->rcpt[0] == '@')
		bench_usage_error("-t: '%s' is not local@domain", o->rcpt);
	for (const char *s = o->rcpt; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '<' || *s == '>')
			bench_usage_error("-t: control characters, spaces or <> in '%s'", o->rcpt);
}

/* The recipients: -t as given, then local+1@domain and on. */
static void
bench_make_rcpts(struct bench *b)
{
	const char *at = strrchr(b->o.rcpt, '@');

	b->rcpts = sl_calloc(b->o.rcpt_cnt, sizeof(*b->rcpts));
	b->rcpts[0] = sl_strdup(b->o.rcpt);
	for (unsigned i = 1; i < b->o.rcpt_cnt; i++)
		b->rcpts[i] = sl_asprintf("%.*s+%u%s", (int)(at - b->o.rcpt), b->o.rcpt, i, at);
}

static void
bench_free(struct bench *b)
{
	for (unsigned i = 0; b->rcpts != NULL && i < b->o.rcpt_cnt; i++)
		sl_free(b->rcpts[i]);
	sl_free(b->rcpts);
	sl_free(b->slots);
	sl_free(b->lat);
	sl_free(b->retry);
	sl_free(b->iov);
	sl_buf_free(&b->body);
	sl_buf_free(&b->body_wire);
	if (b->counter_fd >= 0)
		close(b->counter_fd);
}

int
main(int argc, char **argv)
{
	struct bench *b = SL_NEW(b);
	int rc;

	b->counter_fd = -1;
	bench_parse_opts(b, argc, argv);
	signal(SIGPIPE, SIG_IGN);

	if (b->o.mode == BENCH_INJECT) {
		bench_make_rcpts(b);
		snprintf(b->run_token, sizeof(b->run_token), "%08x%08x",
			 (unsigned)getpid() ^ (unsigned)time(NULL), (unsigned)uv_hrtime());
		msg_prepare(b);
		if (b->o.proto == BENCH_ECS) {
			struct sl_buf t = SL_BUF_INIT;

			if (sl_ecs_frame_begin(&t, b->o.sender, (const char *const *)b->rcpts,
					       b->o.rcpt_cnt, NULL, NULL, 0, b->o.size) < 0)
				bench_usage_error(
					"-f/-t: the envelope does not fit an ECStream frame");
			sl_buf_free(&t);
		}
		b->lat = sl_calloc(b->o.n, sizeof(*b->lat));
	}
	if (b->o.mode == BENCH_SINK) {
		if (bench_raise_nofile(0) < 0)
			bench_die("cannot raise the descriptor limit");
	} else if (bench_raise_nofile((rlim_t)b->o.sessions + BENCH_FD_SPARE) < 0) {
		return 1;
	}

	b->loop = uv_default_loop();
	b->status = BENCH_ST_RUNNING;
	uv_timer_init(b->loop, &b->deadline);
	b->deadline.data = b;
	uv_timer_init(b->loop, &b->hold);
	b->hold.data = b;
	uv_signal_init(b->loop, &b->sig_int);
	b->sig_int.data = b;
	uv_signal_start(&b->sig_int, bench_signalled, SIGINT);
	uv_signal_init(b->loop, &b->sig_term);
	b->sig_term.data = b;
	uv_signal_start(&b->sig_term, bench_signalled, SIGTERM);
	uv_timer_start(&b->deadline, bench_deadline_fired, (uint64_t)b->o.timeout_s * 1000, 0);
	b->t_start = uv_hrtime();

	switch (b->o.mode) {
	case BENCH_INJECT:
		b->slots = sl_calloc(b->o.sessions, sizeof(*b->slots));
		for (unsigned i = 0; i < b->o.sessions; i++) {
			uv_timer_init(b->loop, &b->slots[i].timer);
			b->slots[i].timer.data = &b->slots[i];
			b->slots[i].b = b;
		}
		for (unsigned i = 0; i < b->o.sessions; i++)
			slot_connect(&b->slots[i]);
		break;
	case BENCH_IDLE:
		idle_step(b);
		break;
	case BENCH_SINK:
		sink_start(b);
		break;
	}

	uv_run(b->loop, UV_RUN_DEFAULT);
	if (b->o.mode == BENCH_SINK) {
		sink_counter_write(b);
		rc = report_sink(b);
	} else if (b->o.mode == BENCH_IDLE) {
		rc = report_idle(b);
	} else {
		rc = report_inject(b);
	}
	uv_loop_close(b->loop);
	bench_free(b);
	sl_free(b);
	return rc;
}
