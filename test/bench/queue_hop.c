/*
 * test/bench/queue_hop.c - what one stage-to-stage hop costs (a benchmark,
 * not a test: it asserts nothing about speed).
 *
 * Throughput: a POOL thread sends a burst of preallocated events to another
 * POOL thread, which counts them; events per second from the first send to
 * the last receipt, median of several runs.  Latency: one event bounces
 * POOL -> LOOP -> POOL (request, then reply to ev->reply_to) and the POOL side
 * times each round trip; p50/p99 after a warm-up.  The same bounce against a
 * POOL and against a LOOP also gives one hop: the receiver times the way
 * there (sender's clock stamp to its own, CLOCK_MONOTONIC on one machine).
 * Both include the wake-ups
 * (futex, eventfd) that a quiet system pays on every hop.  Each figure is
 * printed on one line with the command that produced it.
 *
 * Threads: main, the stage threads.  Parses its command line only.
 * Ownership: main owns the throughput events and lends them to the stages
 * for one run; the one ping event travels and is freed by the ping side.
 */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/stage.h"

#define RUNS   5
#define WARMUP 2000

enum {
	BEV_GO = 1,
	BEV_DATA,
	BEV_PING,
};

struct bev {
	struct sl_event ev;
	uint64_t sent_ns; /* PING: when it left the POOL side */
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool
wait_flag(const unsigned *flag)
{
	int ms;

	for (ms = 0; ms < 120000; ms++) {
		if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
			return true;
		usleep(1000);
	}
	return false;
}

/* ---------------------------------------------------------------- throughput */

static struct {
	struct bev *evs; /* owned by main; lent to the stages for one run */
	unsigned cnt;
	struct sl_stage *dst;
	uint64_t t_first; /* written by src, read by main after done */
	uint64_t t_last;  /* written by dst */
	unsigned seen;    /* dst only */
	unsigned done;    /* atomic */
} tp;

static void
src_handle(struct sl_thread *t, struct sl_event *ev)
{
	unsigned i;

	tp.t_first = now_ns();
	for (i = 0; i < tp.cnt; i++) {
		sl_event_init(&tp.evs[i].ev, BEV_DATA);
		sl_send(tp.dst, &tp.evs[i].ev);
	}
	sl_free(ev);
}

static void
dst_handle(struct sl_thread *t, struct sl_event *ev)
{
	if (++tp.seen == tp.cnt) {
		tp.t_last = now_ns();
		__atomic_store_n(&tp.done, 1, __ATOMIC_RELEASE);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Events per second of RUNS runs, sorted: [0] slowest, [RUNS / 2] median. */
static void
bench_throughput(unsigned cnt, uint64_t *rates)
{
	static const char *const src_peers[] = { "dst", NULL };
	static const struct sl_stage_def src_def = {
		.name = "src", .kind = SL_STAGE_POOL, .peers = src_peers, .handle = src_handle
	};
	static const struct sl_stage_def dst_def = { .name = "dst",
						     .kind = SL_STAGE_POOL,
						     .handle = dst_handle };
	struct sl_stage *src;
	struct sl_event *go;
	unsigned r;

	tp.evs = sl_calloc(cnt, sizeof(*tp.evs));
	tp.cnt = cnt;
	for (r = 0; r < RUNS; r++) {
		tp.seen = 0;
		tp.done = 0;
		tp.dst = sl_stage_create(&dst_def, 1, NULL);
		src = sl_stage_create(&src_def, 1, NULL);
		SL_ASSERT(sl_stage_start(tp.dst) == 0 && sl_stage_start(src) == 0);
		go = sl_malloc(sizeof(*go));
		sl_event_init(go, BEV_GO);
		sl_send(src, go);
		SL_ASSERT(wait_flag(&tp.done));
		sl_stage_stop(src);
		sl_stage_stop(tp.dst);
		sl_stage_destroy(src);
		sl_stage_destroy(tp.dst);
		rates[r] = (uint64_t)cnt * 1000000000u / (tp.t_last - tp.t_first);
	}
	sl_free(tp.evs);
	qsort(rates, RUNS, sizeof(rates[0]), cmp_u64);
}

/* ---------------------------------------------------------------- latency */

static struct {
	struct sl_stage *pong;
	uint64_t *rtt;    /* ping thread only; main reads after done */
	uint64_t *oneway; /* pong thread only; main reads after done */
	unsigned want, got;
	unsigned pong_seen; /* pong thread only */
	unsigned done;      /* atomic */
} pp;

static void
ping_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct bev *b = (struct bev *)ev;
	uint64_t now = now_ns();

	if (ev->type == BEV_PING) {
		if (pp.got >= WARMUP)
			pp.rtt[pp.got - WARMUP] = now - b->sent_ns;
		if (++pp.got == pp.want + WARMUP) {
			sl_free(b);
			__atomic_store_n(&pp.done, 1, __ATOMIC_RELEASE);
			return;
		}
	}
	sl_event_init(ev, BEV_PING); /* reply_to: this thread */
	b->sent_ns = now_ns();
	sl_send(pp.pong, ev);
}

static void
pong_handle(struct sl_thread *t, struct sl_event *ev)
{
	struct bev *b = (struct bev *)ev;
	uint64_t now = now_ns();

	if (pp.pong_seen >= WARMUP && pp.pong_seen - WARMUP < pp.want)
		pp.oneway[pp.pong_seen - WARMUP] = now - b->sent_ns;
	pp.pong_seen++;
	sl_send_thread(ev->reply_to, ev);
}

struct lat {
	uint64_t rtt_p50, rtt_p99, hop_p50, hop_p99;
};

static void
bench_latency(unsigned cnt, enum sl_stage_kind pong_kind, struct lat *l)
{
	static const char *const ping_peers[] = { "pong", NULL };
	static const char *const pong_peers[] = { "ping", NULL };
	static const struct sl_stage_def ping_def = {
		.name = "ping", .kind = SL_STAGE_POOL, .peers = ping_peers, .handle = ping_handle
	};
	struct sl_stage_def pong_def = {
		.name = "pong", .kind = pong_kind, .peers = pong_peers, .handle = pong_handle
	};
	struct sl_stage *ping;
	struct bev *b;

	pp.want = cnt;
	pp.got = 0;
	pp.pong_seen = 0;
	pp.done = 0;
	pp.rtt = sl_calloc(cnt, sizeof(*pp.rtt));
	pp.oneway = sl_calloc(cnt, sizeof(*pp.oneway));
	pp.pong = sl_stage_create(&pong_def, 1, NULL);
	ping = sl_stage_create(&ping_def, 1, NULL);
	SL_ASSERT(sl_stage_start(pp.pong) == 0 && sl_stage_start(ping) == 0);
	b = SL_NEW(b);
	sl_event_init(&b->ev, BEV_GO);
	sl_send(ping, &b->ev);
	SL_ASSERT(wait_flag(&pp.done));
	sl_stage_stop(ping);
	sl_stage_stop(pp.pong);
	sl_stage_destroy(ping);
	sl_stage_destroy(pp.pong);
	qsort(pp.rtt, cnt, sizeof(pp.rtt[0]), cmp_u64);
	qsort(pp.oneway, cnt, sizeof(pp.oneway[0]), cmp_u64);
	l->rtt_p50 = pp.rtt[cnt / 2];
	l->rtt_p99 = pp.rtt[(size_t)cnt * 99 / 100];
	l->hop_p50 = pp.oneway[cnt / 2];
	l->hop_p99 = pp.oneway[(size_t)cnt * 99 / 100];
	sl_free(pp.rtt);
	sl_free(pp.oneway);
}

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--events N] [--pings N]\n", prog);
	exit(2);
}

int
main(int argc, char **argv)
{
	unsigned events = 1000000, pings = 100000;
	char cmd[256];
	size_t len = 0;
	uint64_t rates[RUNS];
	struct lat to_pool, to_loop;
	int i;

	for (i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--events") == 0)
			events = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (i + 1 < argc && strcmp(argv[i], "--pings") == 0)
			pings = (unsigned)strtoul(argv[++i], NULL, 10);
		else
			usage(argv[0]);
	}
	if (events == 0 || pings == 0)
		usage(argv[0]);
	/* The command as a reader would type it (without the build directory). */
	len = (size_t)snprintf(cmd, sizeof(cmd), "queue_hop --events %u --pings %u", events, pings);
	SL_ASSERT(len < sizeof(cmd));

	bench_throughput(events, rates);
	printf("queue hop POOL->POOL throughput: median %.2f Mevents/s, min %.2f, max %.2f "
	       "(%d runs of %u events)  [%s]\n",
	       rates[RUNS / 2] / 1e6, rates[0] / 1e6, rates[RUNS - 1] / 1e6, RUNS, events, cmd);
	fflush(stdout);
	bench_latency(pings, SL_STAGE_POOL, &to_pool);
	bench_latency(pings, SL_STAGE_LOOP, &to_loop);
	printf("queue hop POOL->POOL one hop: p50 %" PRIu64 " ns, p99 %" PRIu64
	       " ns (%u hops after %d warm-up, timed by the receiver)  [%s]\n",
	       to_pool.hop_p50, to_pool.hop_p99, pings, WARMUP, cmd);
	printf("queue hop POOL->LOOP one hop: p50 %" PRIu64 " ns, p99 %" PRIu64
	       " ns (%u hops after %d warm-up, timed by the receiver)  [%s]\n",
	       to_loop.hop_p50, to_loop.hop_p99, pings, WARMUP, cmd);
	printf("queue hop POOL->LOOP->POOL round trip: p50 %" PRIu64 " ns, p99 %" PRIu64
	       " ns (%u round trips after %d warm-up)  [%s]\n",
	       to_loop.rtt_p50, to_loop.rtt_p99, pings, WARMUP, cmd);
	return 0;
}
