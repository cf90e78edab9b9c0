/*
 * test/bench/spool_commit.c - what a group commit into the segment spool
 * costs (a benchmark, not a test: it asserts nothing about speed).
 *
 * One writer thread appends groups of N messages and commits each group,
 * for N in 1, 8, 32, 128, messages of 1 KiB and 50 KiB, with fsync on and
 * off, on a real disk (a fresh directory under --dir, default /var/tmp;
 * never use tmpfs for this).  As in a relay, every message is finished
 * (one progress entry) 1000 messages after it was appended, so segments
 * fill, rotate and are removed during the run.  Each configuration runs for
 * --seconds and prints messages/s, commits/s and the mean commit time on
 * one line with the command that produced it.
 *
 * Threads: main only.  Parses its command line only.  Ownership: one
 * message is built per size and appended again and again (append does not
 * keep it); the spool directory is removed afterwards.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/buf.h"
#include "spool/msg.h"
#include "spool/spool.h"

#define FINISH_LAG 1000

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static struct sl_msg *
bench_msg(size_t size)
{
	struct sl_msg *m = sl_msg_new();
	char *body = sl_malloc(size);

	sl_msg_set_sender(m, "bench@sender.example");
	sl_msg_add_rcpt(m, "sink@receiver.example");
	sl_msg_set_str(&m->peer_ip, "127.0.0.1");
	sl_msg_set_str(&m->helo, "bench.example");
	sl_msg_set_str(&m->protocol, "esmtp");
	sl_buf_printf(&m->head, "Received: from bench.example ([127.0.0.1]) by sluice; "
				"Thu, 26 Nov 2026 12:00:00 +0000\r\n");
	for (size_t i = 0; i < size; i++)
		body[i] = (char)(i % 78 == 76 ? '\r' : i % 78 == 77 ? '\n' : 'a' + i % 26);
	sl_msg_append(m, body, size);
	sl_free(body);
	return m;
}

struct result {
	double msgs_s;
	double commits_s;
	double us_per_commit;
	uint64_t msgs;
	double secs;
};

static int
bench_one(const char *base, size_t size, bool use_fsync, unsigned group, double seconds,
	  struct result *res)
{
	char *dir = sl_asprintf("%s/spool-bench.XXXXXX", base);
	struct sl_spool_opts o = { NULL, "segment", 0, use_fsync, 1, false };
	struct sl_spool_loc ring[FINISH_LAG];
	struct sl_spool *sp = NULL;
	struct sl_spool_writer *w;
	struct sl_msg *m = bench_msg(size);
	uint64_t t0, t_end, n = 0, commits = 0, commit_ns = 0;
	char why[256];
	int err;

	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
		err = -errno;
		goto fail;
	}
	o.dir = dir;
	err = sl_spool_open(&o, &sp, why, sizeof(why));
	if (err < 0) {
		fprintf(stderr, "%s\n", why);
		goto fail_dir;
	}
	w = sl_spool_writer_get(sp, 0);
	t0 = now_ns();
	t_end = t0 + (uint64_t)(seconds * 1e9);
	while (now_ns() < t_end) {
		uint64_t c0;

		for (unsigned i = 0; i < group; i++, n++) {
			if (n >= FINISH_LAG) {
				err = sl_spool_progress(w, &ring[n % FINISH_LAG], UINT32_MAX,
							SL_RCPT_DELIVERED);
				if (err < 0)
					goto fail_spool;
			}
			err = sl_spool_append(w, m);
			if (err < 0)
				goto fail_spool;
			ring[n % FINISH_LAG] = m->loc;
		}
		c0 = now_ns();
		err = sl_spool_commit(w);
		if (err < 0)
			goto fail_spool;
		commit_ns += now_ns() - c0;
		commits++;
	}
	res->secs = (double)(now_ns() - t0) / 1e9;
	res->msgs = n;
	res->msgs_s = (double)n / res->secs;
	res->commits_s = (double)commits / res->secs;
	res->us_per_commit = (double)commit_ns / 1e3 / (double)commits;
	err = 0;
fail_spool:
	if (err < 0)
		fprintf(stderr, "spool: %s\n", strerror(-err));
	sl_spool_close(sp);
fail_dir:
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
fail:
	sl_msg_free(m);
	sl_free(dir);
	return err;
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = { 1024, 50 * 1024 };
	static const unsigned groups[] = { 1, 8, 32, 128 };
	const char *dir = "/var/tmp";
	double seconds = 2.0;
	char cmd[512];
	int n;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--dir DIR] [--seconds S]\n", argv[0]);
			return 2;
		}
	}
	if (seconds <= 0 || seconds > 600) {
		fprintf(stderr, "--seconds: 0 < S <= 600\n");
		return 2;
	}
	n = snprintf(cmd, sizeof(cmd), "spool_commit --dir %s --seconds %g", dir, seconds);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return 2;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (int f = 1; f >= 0; f--) {
			for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
				struct result r;

				if (bench_one(dir, sizes[s], f, groups[g], seconds, &r) < 0)
					return 1;
				printf("spool commit size=%zu fsync=%s group=%u: %.0f msgs/s, "
				       "%.0f commits/s, %.1f us/commit (%" PRIu64
				       " msgs in %.1f s)  [%s]\n",
				       sizes[s], f ? "on" : "off", groups[g], r.msgs_s, r.commits_s,
				       r.us_per_commit, r.msgs, r.secs, cmd);
				fflush(stdout);
			}
		}
	}
	return 0;
}
