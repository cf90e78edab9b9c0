/*
 * test/unit/test_log.c - the logger: streams, rotation, diagnostics, limits.
 *
 * Files live in a fresh directory under /tmp.  Stream lines from several
 * threads must all be in the file, whole and in each thread's order, once
 * sl_log_stop() returns; a rename plus sl_log_reopen() moves later lines to
 * a new file; diagnostics carry a UTC timestamp whatever TZ says; a disabled
 * level evaluates none of its arguments; a logger stuck on a full FIFO drops
 * chatter (and says so) but no stream line.  sl_fatal and a failed
 * SL_ASSERT run in forked children and must have flushed what was queued.
 *
 * Threads: main plus writer threads and the logger.  Parses the files it
 * made (bounded by their size).  Ownership: the directory and every file in
 * it belong to the test group, which removes them at the end.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/log.h"

#define WRITERS    4
#define LINES      5000
#define FLOOD      110000
#define FIFO_LINES 2000

static char dir[] = "/tmp/test_log.XXXXXX";

static char *
path_of(const char *name)
{
	return sl_asprintf("%s/%s", dir, name);
}

/* The whole file as a string (NULL if missing). */
static char *
slurp(const char *name)
{
	char *path = path_of(name), *buf = NULL;
	struct stat sb;
	FILE *f = fopen(path, "r");

	if (f != NULL && fstat(fileno(f), &sb) == 0) {
		buf = sl_malloc((size_t)sb.st_size + 1);
		buf[fread(buf, 1, (size_t)sb.st_size, f)] = '\0';
	}
	if (f != NULL)
		fclose(f);
	sl_free(path);
	return buf;
}

static unsigned
count_lines(const char *s, const char *needle)
{
	unsigned n = 0;
	const char *line, *end;

	for (line = s; *line != '\0'; line = end + 1) {
		end = strchr(line, '\n');
		if (end == NULL)
			break;
		if (needle == NULL || memmem(line, (size_t)(end - line), needle, strlen(needle)))
			n++;
	}
	return n;
}

static int
group_setup(void **state)
{
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	char *cmd = sl_asprintf("rm -rf '%s'", dir);
	int rc = system(cmd);

	sl_free(cmd);
	return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- levels */

static void
test_level_names(void **state)
{
	static const struct {
		const char *name;
		int level;
	} cases[] = {
		{ "crit", SL_LOG_CRIT },     { "err", SL_LOG_ERR },   { "warning", SL_LOG_WARNING },
		{ "notice", SL_LOG_NOTICE }, { "info", SL_LOG_INFO }, { "debug", SL_LOG_DEBUG },
		{ "DEBUG", SL_LOG_DEBUG },   { "warn", -1 },          { "", -1 },
	};
	unsigned i;

	for (i = 0; i < SL_ARRAY_LEN(cases); i++) {
		assert_int_equal(sl_log_level_parse(cases[i].name), cases[i].level);
		if (cases[i].level >= 0 && strcmp(cases[i].name, "DEBUG") != 0)
			assert_string_equal(sl_log_level_name(cases[i].level), cases[i].name);
	}
	assert_string_equal(sl_log_level_name(-1), "?");
	assert_string_equal(sl_log_level_name(99), "?");
}

static unsigned side_effects;

static int
side_effect(void)
{
	return (int)++side_effects;
}

static void
test_level_filter_evaluates_nothing(void **state)
{
	char *panic = path_of("filter.panic"), *text;

	assert_int_equal(sl_log_start(panic, 0600, false), 0);
	sl_log_level_set(SL_LOG_WARNING);
	side_effects = 0;
	sl_log_info("filtered %d", side_effect());
	sl_log_debug("filtered %d", side_effect());
	sl_log_notice("filtered %d", side_effect());
	assert_int_equal(side_effects, 0);
	sl_log_warn("kept %d", side_effect());
	sl_log_crit("kept %d", side_effect());
	assert_int_equal(side_effects, 2);
	sl_log_level_set(SL_LOG_INFO);
	sl_log_stop();
	text = slurp("filter.panic");
	assert_non_null(text);
	assert_int_equal(count_lines(text, "filtered"), 0);
	assert_int_equal(count_lines(text, "] [warning] kept 1"), 1);
	assert_int_equal(count_lines(text, "] [crit] kept 2"), 1);
	sl_free(text);
	sl_free(panic);
}

/* ---------------------------------------------------------------- diagnostics */

static bool
stamp_in_range(const char *line, time_t from, time_t to)
{
	char want[64];
	struct tm tm;
	time_t t;

	for (t = from; t <= to; t++) {
		gmtime_r(&t, &tm);
		strftime(want, sizeof(want), "[%a %d %b %Y %H:%M:%S] ", &tm);
		if (strncmp(line, want, strlen(want)) == 0)
			return true;
	}
	return false;
}

static void
test_diagnostic_format_utc(void **state)
{
	char *panic = path_of("format.panic"), *text, *nl;
	char *old_tz = getenv("TZ") ? sl_strdup(getenv("TZ")) : NULL;
	time_t before, after;

	/* Five hours east of UTC: a local-time stamp would be visibly wrong. */
	setenv("TZ", "XYZ-5", 1);
	tzset();
	assert_int_equal(sl_log_start(panic, 0600, false), 0);
	before = time(NULL);
	sl_log_err("disk %s is %d%% full", "/var/spool", 97);
	sl_log_notice("two\nlines\rbecome one");
	after = time(NULL);
	sl_log_stop();
	if (old_tz != NULL)
		setenv("TZ", old_tz, 1);
	else
		unsetenv("TZ");
	tzset();

	text = slurp("format.panic");
	assert_non_null(text);
	assert_int_equal(count_lines(text, NULL), 2);
	assert_true(stamp_in_range(text, before, after));
	nl = strchr(text, '\n');
	assert_non_null(strstr(text, "] [err] disk /var/spool is 97% full\n"));
	assert_true(stamp_in_range(nl + 1, before, after));
	assert_non_null(strstr(nl + 1, "] [notice] two lines become one\n"));
	/* "[Thu 26 Nov 2026 13:45:01] [err] ": fixed widths. */
	assert_int_equal(text[0], '[');
	assert_int_equal(text[25], ']');
	sl_free(text);
	sl_free(panic);
	sl_free(old_tz);
}

/* After stop, lines are written at once (to the paniclog and, here, stderr). */
static void
test_synchronous_after_stop(void **state)
{
	char *panic = path_of("sync.panic"), *errpath = path_of("sync.stderr"), *text;
	int saved = dup(STDERR_FILENO), fd;

	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	assert_int_equal(sl_log_start(panic, 0600, true), 0);
	sl_log_err("while running");
	sl_log_stop();
	sl_log_err("after stop");
	text = slurp("sync.panic");
	assert_int_equal(count_lines(text, "while running"), 1);
	assert_int_equal(count_lines(text, "after stop"), 1);
	sl_free(text);
	dup2(saved, STDERR_FILENO);
	close(saved);
	text = slurp("sync.stderr");
	assert_int_equal(count_lines(text, NULL), 2); /* to_stderr mirrors diagnostics */
	sl_free(text);
	sl_free(panic);
	sl_free(errpath);
}

/* ---------------------------------------------------------------- streams */

static int stream_id;

static void *
writer_main(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, i;
	char line[128];
	int n;

	for (i = 0; i < LINES; i++) {
		n = snprintf(line, sizeof(line), "w%u %05u some accounting fields@example.com", id,
			     i);
		sl_log_stream_write(stream_id, line, (size_t)n);
	}
	return NULL;
}

static void
test_stream_order_complete(void **state)
{
	char *panic = path_of("stream.panic"), *mainlog = path_of("main.log"), *text, *line;
	unsigned next[WRITERS] = { 0 }, id, seq, i, total = 0;
	pthread_t tid[WRITERS];

	assert_int_equal(sl_log_start(panic, 0600, false), 0);
	stream_id = sl_log_stream_open(mainlog, 0640);
	assert_true(stream_id >= 0);
	assert_int_equal(sl_log_stream_open(mainlog, 0640), stream_id); /* same path, same id */
	for (i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, writer_main, (void *)(uintptr_t)i),
				 0);
	for (i = 0; i < WRITERS; i++)
		pthread_join(tid[i], NULL);
	sl_log_stop(); /* everything queued is in the file when this returns */

	text = slurp("main.log");
	assert_non_null(text);
	for (line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
		char tail[64];

		if (strchr(line, '\n') == NULL)
			fail_msg("last line cut: %.60s", line);
		if (sscanf(line, "w%u %05u %63[^\n]", &id, &seq, tail) != 3 || id >= WRITERS ||
		    strcmp(tail, "some accounting fields@example.com") != 0)
			fail_msg("bad line: %.60s", line);
		if (seq != next[id])
			fail_msg("writer %u: line %u where %u was due", id, seq, next[id]);
		next[id]++;
		total++;
	}
	assert_int_equal(total, WRITERS * LINES);
	sl_free(text);
	sl_free(panic);
	sl_free(mainlog);
}

static void
test_reopen_after_rename(void **state)
{
	char *panic = path_of("rot.panic"), *log = path_of("rot.log");
	char *old_panic = path_of("rot.panic.1"), *old_log = path_of("rot.log.1"), *text;
	int id;

	assert_int_equal(sl_log_start(panic, 0600, false), 0);
	id = sl_log_stream_open(log, 0640);
	assert_true(id >= 0);
	sl_log_stream_write(id, "first", 5);
	sl_log_err("first diagnostic");
	/* logrotate: rename, then tell us (SIGUSR1 -> sl_log_reopen). */
	assert_int_equal(rename(log, old_log), 0);
	assert_int_equal(rename(panic, old_panic), 0);
	assert_int_equal(sl_log_reopen(), 0);
	sl_log_stream_write(id, "second", 6);
	sl_log_err("second diagnostic");
	sl_log_stop();

	text = slurp("rot.log.1");
	assert_string_equal(text, "first\n");
	sl_free(text);
	text = slurp("rot.log");
	assert_string_equal(text, "second\n");
	sl_free(text);
	text = slurp("rot.panic.1");
	assert_int_equal(count_lines(text, "first diagnostic"), 1);
	assert_int_equal(count_lines(text, "second"), 0);
	sl_free(text);
	text = slurp("rot.panic");
	assert_int_equal(count_lines(text, "second diagnostic"), 1);
	assert_int_equal(count_lines(text, NULL), 1);
	sl_free(text);
	sl_free(panic);
	sl_free(log);
	sl_free(old_panic);
	sl_free(old_log);
}

static void
test_stream_open_errors(void **state)
{
	char *missing = path_of("no/such/dir/x.log");

	assert_int_equal(sl_log_stream_open(missing, 0640), -ENOENT);
	assert_int_equal(sl_log_stream_open(dir, 0640), -EISDIR);
	assert_int_equal(sl_log_start(missing, 0600, false), -ENOENT);
	sl_free(missing);
}

/* ---------------------------------------------------------------- memory bound */

struct fifo_reader {
	int fd;
	size_t want; /* bytes of stream lines expected */
	char *buf;   /* what arrived */
	size_t len;
};

static void *
fifo_reader_main(void *arg)
{
	struct fifo_reader *r = arg;
	struct timespec deadline;
	ssize_t n;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 15;
	while (r->len < r->want) {
		struct timespec now;

		n = read(r->fd, r->buf + r->len, r->want - r->len);
		if (n > 0) {
			r->len += (size_t)n;
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec)
			break;
		usleep(1000);
	}
	return NULL;
}

static void
test_flood_drops_chatter_not_streams(void **state)
{
	char *panic = path_of("flood.panic"), *fifo = path_of("flood.fifo"), *text;
	struct fifo_reader r = { -1, 0, NULL, 0 };
	char line[64];
	pthread_t tid;
	unsigned i, info_cnt;
	int id, n;

	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* Our read end exists but nobody reads yet: the logger will block. */
	r.fd = open(fifo, O_RDONLY | O_NONBLOCK);
	assert_true(r.fd >= 0);
	assert_int_equal(sl_log_start(panic, 0600, false), 0);
	id = sl_log_stream_open(fifo, 0600);
	assert_true(id >= 0);
	for (i = 0; i < FIFO_LINES; i++) {
		n = snprintf(line, sizeof(line), "stream %05u padding padding padding padding", i);
		sl_log_stream_write(id, line, (size_t)n);
		r.want += (size_t)n + 1;
	}
	usleep(100000); /* the logger fills the pipe and blocks in writev */
	for (i = 0; i < FLOOD; i++)
		sl_log_info("chatter %u", i);
	sl_log_err("this error survives");
	sl_log_stream_write(id, "stream last", 11);
	r.want += 12;

	r.buf = sl_malloc(r.want + 1);
	assert_int_equal(pthread_create(&tid, NULL, fifo_reader_main, &r), 0);
	pthread_join(tid, NULL);
	sl_log_stop();
	close(r.fd);

	r.buf[r.len] = '\0';
	assert_int_equal(r.len, r.want);
	assert_int_equal(count_lines(r.buf, "stream "), FIFO_LINES + 1);
	text = slurp("flood.panic");
	info_cnt = count_lines(text, "] [info] chatter ");
	assert_true(info_cnt < FLOOD);
	assert_true(info_cnt > 50000);
	assert_int_equal(count_lines(text, "this error survives"), 1);
	assert_non_null(strstr(text, " log lines dropped: logger queue over 100000 lines\n"));
	print_message("# %u of %u info lines kept\n", info_cnt, FLOOD);
	sl_free(text);
	sl_free(r.buf);
	sl_free(panic);
	sl_free(fifo);
}

/* ---------------------------------------------------------------- fatal paths (forked) */

static void
fatal_child(void)
{
	char *panic = path_of("fatal.panic");

	if (sl_log_start(panic, 0600, false) != 0)
		_exit(3);
	sl_free(panic); /* exit() runs the leak checker */
	sl_log_notice("queued before the fatal error");
	sl_fatal("cannot open %s: %s", "/etc/nowhere", "No such file");
}

/* Never started: a diagnostic goes straight to stderr, before we exit. */
static void
early_child(void)
{
	sl_log_err("before start %d", 1);
	_exit(0);
}

static void
assert_child(void)
{
	char *panic = path_of("assert.panic");
	int two = 2;

	if (sl_log_start(panic, 0600, false) != 0)
		_exit(3);
	sl_log_notice("queued before the assertion");
	SL_ASSERT(two == 3);
	_exit(0);
}

/* Run fn in a child with stderr to a file; return its wait status. */
static int
run_child(void (*fn)(void), const char *errname)
{
	char *errpath = path_of(errname);
	int status = 0, fd;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, STDERR_FILENO);
		alarm(20);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	sl_free(errpath);
	return status;
}

static void
test_fatal_flushes(void **state)
{
	int status = run_child(fatal_child, "fatal.stderr");
	char *text, *queued, *fatal;

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	text = slurp("fatal.panic");
	assert_non_null(text);
	queued = strstr(text, "] [notice] queued before the fatal error\n");
	fatal = strstr(text, "] [crit] cannot open /etc/nowhere: No such file\n");
	assert_non_null(queued);
	assert_non_null(fatal);
	assert_true(queued < fatal);
	sl_free(text);
	text = slurp("fatal.stderr");
	assert_int_equal(count_lines(text, "cannot open /etc/nowhere"), 1);
	sl_free(text);
}

static void
test_synchronous_before_start(void **state)
{
	int status = run_child(early_child, "early.stderr");
	char *text;

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	text = slurp("early.stderr");
	assert_int_equal(count_lines(text, "] [err] before start 1"), 1);
	sl_free(text);
}

static void
test_assert_flushes_and_aborts(void **state)
{
	int status = run_child(assert_child, "assert.stderr");
	char *text, *queued, *failed;

	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	text = slurp("assert.panic");
	assert_non_null(text);
	queued = strstr(text, "queued before the assertion\n");
	failed = strstr(text, "] [crit] assertion failed: two == 3 at test/unit/test_log.c:");
	assert_non_null(queued);
	assert_non_null(failed);
	assert_true(queued < failed);
	assert_non_null(strstr(failed, " (assert_child)\n"));
	sl_free(text);
	text = slurp("assert.stderr");
	assert_int_equal(count_lines(text, "assertion failed: two == 3"), 1);
	sl_free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* Forked first, while this process has no other thread. */
		cmocka_unit_test(test_synchronous_before_start),
		cmocka_unit_test(test_fatal_flushes),
		cmocka_unit_test(test_assert_flushes_and_aborts),
		cmocka_unit_test(test_level_names),
		cmocka_unit_test(test_level_filter_evaluates_nothing),
		cmocka_unit_test(test_diagnostic_format_utc),
		cmocka_unit_test(test_synchronous_after_stop),
		cmocka_unit_test(test_stream_order_complete),
		cmocka_unit_test(test_reopen_after_rename),
		cmocka_unit_test(test_stream_open_errors),
		cmocka_unit_test(test_flood_drops_chatter_not_streams),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
