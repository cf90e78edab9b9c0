/*
 * test/integration/dns_probe.c - drive stages/deliver_dns.c from the command line.
 *
 * Built by d0001-dns.py from the repository sources; runs a list of steps
 * on a libuv loop with one struct sl_dns and prints one line per result, so
 * the test can check statuses, hosts, addresses, expiry and how many
 * queries were sent:
 *
 *   dns_probe -r RESOLV_CONF [-m MIN_TTL] [-t TIMEOUT_MS] [-n TRIES] [-j THREADS] STEP...
 *   STEP    := LOOKUP['+'LOOKUP...]['+close['+late']] | sleep:MS
 *   LOOKUP  := mx:NAME | host:NAME
 *
 * The lookups of one step start together (so equal names must join one
 * query); the next step starts when all have answered.  `close` closes the
 * resolver right after starting them (their callbacks must say TEMPFAIL);
 * `late` asks once more from the first callback after the close.  Output:
 *   result KIND NAME status=S implicit=0|1 ttl=SECONDS|inf queries=Q hosts=H;H... why=TEXT
 *     with H = name/pref/status/addr,addr
 *   step N queries=Q          all lookups of step N answered
 *   end queries=Q             sl_dns_close is called
 *   closed                    its done callback ran
 *   loop closed rc=0          every handle is closed
 * With -j N the same steps run in N threads, each with its own loop and
 * resolver; their lines are printed afterwards, prefixed "tI ".
 *
 * Threads: one per -j.  Parses only its command line.  Test code.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engine/alloc.h"
#include "stages/deliver_dns.h"

#define PROBE_MAX_THREADS 8

/*
 * With -j, no thread closes its loop before every thread has finished its
 * lookups.  The system libuv (not built for TSan) closes descriptors with
 * syscall(SYS_close), which TSan does not see, so a descriptor number one
 * thread's loop gave up and another thread's socket then reused would be
 * reported as a race.
 */
static pthread_barrier_t probe_barrier;
static int probe_threads = 1;

struct probe {
	uv_loop_t loop;
	struct sl_dns *dns;
	struct sl_dns_opts opts;
	FILE *out;
	char *out_text; /* open_memstream buffer (-j > 1) */
	size_t out_len;
	char *const *steps;
	int step_cnt;
	int step;
	int outstanding; /* lookups of this step not yet answered */
	bool in_call;    /* inside sl_dns_mx/sl_dns_host: a callback now is a bug */
	bool is_closing; /* sl_dns_close was called */
	bool want_late;  /* ask once more from a callback after close */
	uv_timer_t sleep;
	int rc;
};

struct probe_lookup {
	struct probe *p;
	bool is_mx;
	char name[512];
};

static void probe_next(struct probe *p);

static const char *
probe_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a = &((const struct sockaddr_in *)ss)->sin_addr;

	if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	return inet_ntop(ss->ss_family, a, buf, (socklen_t)len);
}

static void
probe_print_result(struct probe *p, const struct probe_lookup *l, const struct sl_dns_result *r)
{
	uint64_t now = uv_now(&p->loop);
	char ttl[32], a[INET6_ADDRSTRLEN];

	if (r->expires_ms == UINT64_MAX)
		snprintf(ttl, sizeof(ttl), "inf");
	else if (r->expires_ms <= now)
		snprintf(ttl, sizeof(ttl), "0");
	else
		snprintf(ttl, sizeof(ttl), "%llu",
			 (unsigned long long)(r->expires_ms - now + 999) / 1000);
	fprintf(p->out, "result %s %s status=%s implicit=%d ttl=%s queries=%llu hosts=",
		l->is_mx ? "mx" : "host", l->name, sl_dns_status_name(r->status),
		r->is_implicit_mx ? 1 : 0, ttl, (unsigned long long)sl_dns_query_cnt(p->dns));
	for (size_t i = 0; i < r->host_cnt; i++) {
		const struct sl_dns_host *h = &r->hosts[i];

		fprintf(p->out, "%s%s/%u/%s/", i ? ";" : "", h->name, h->pref,
			sl_dns_status_name(h->status));
		for (size_t j = 0; j < h->addr_cnt; j++)
			fprintf(p->out, "%s%s", j ? "," : "",
				probe_addr(&h->addrs[j], a, sizeof(a)));
	}
	fprintf(p->out, " why=%s\n", r->why);
	fflush(p->out);
}

static void probe_lookup(struct probe *p, const char *spec);

static void
probe_cb(void *arg, struct sl_dns_result *r)
{
	struct probe_lookup *l = arg;
	struct probe *p = l->p;

	if (p->in_call) {
		fprintf(p->out, "BUG: callback from inside the lookup call\n");
		p->rc = 1;
	}
	if (r->refs < 1) {
		fprintf(p->out, "BUG: result without a reference\n");
		p->rc = 1;
	}
	probe_print_result(p, l, r);
	sl_dns_result_put(r);
	sl_free(l);
	if (p->want_late) {
		p->want_late = false;
		probe_lookup(p, "mx:late.test");
	}
	if (--p->outstanding == 0 && !p->is_closing) {
		fprintf(p->out, "step %d queries=%llu\n", p->step,
			(unsigned long long)sl_dns_query_cnt(p->dns));
		p->step++;
		probe_next(p);
	}
}

static void
probe_lookup(struct probe *p, const char *spec)
{
	struct probe_lookup *l = SL_NEW(l);

	l->p = p;
	l->is_mx = strncmp(spec, "mx:", 3) == 0;
	if (!l->is_mx && strncmp(spec, "host:", 5) != 0) {
		fprintf(stderr, "dns_probe: bad lookup \"%s\"\n", spec);
		exit(2);
	}
	snprintf(l->name, sizeof(l->name), "%s", spec + (l->is_mx ? 3 : 5));
	p->outstanding++;
	p->in_call = true;
	if (l->is_mx)
		sl_dns_mx(p->dns, l->name, probe_cb, l);
	else
		sl_dns_host(p->dns, l->name, probe_cb, l);
	p->in_call = false;
}

static void
probe_closed(void *arg)
{
	struct probe *p = arg;

	if (p->outstanding != 0) {
		fprintf(p->out, "BUG: done ran before %d lookup callbacks\n", p->outstanding);
		p->rc = 1;
	}
	fprintf(p->out, "closed\n");
	p->dns = NULL;
	uv_close((uv_handle_t *)&p->sleep, NULL);
}

static void
probe_close(struct probe *p)
{
	p->is_closing = true;
	fprintf(p->out, "end queries=%llu\n", (unsigned long long)sl_dns_query_cnt(p->dns));
	sl_dns_close(p->dns, probe_closed, p);
}

static void
probe_sleep_cb(uv_timer_t *t)
{
	struct probe *p = t->data;

	p->step++;
	probe_next(p);
}

static void
probe_next(struct probe *p)
{
	char buf[2048], *save = NULL, *tok;
	bool want_close = false;

	if (p->step >= p->step_cnt) {
		probe_close(p);
		return;
	}
	if (strncmp(p->steps[p->step], "sleep:", 6) == 0) {
		uv_timer_start(&p->sleep, probe_sleep_cb, strtoull(p->steps[p->step] + 6, NULL, 10),
			       0);
		return;
	}
	snprintf(buf, sizeof(buf), "%s", p->steps[p->step]);
	/* Count every lookup first: a callback never runs inside the calls anyway. */
	for (tok = strtok_r(buf, "+", &save); tok != NULL; tok = strtok_r(NULL, "+", &save)) {
		if (strcmp(tok, "close") == 0)
			want_close = true;
		else if (strcmp(tok, "late") == 0)
			p->want_late = true;
		else
			probe_lookup(p, tok);
	}
	if (want_close)
		probe_close(p);
}

static void *
probe_run(void *arg)
{
	struct probe *p = arg;
	char why[256];
	int rc;

	uv_loop_init(&p->loop);
	uv_timer_init(&p->loop, &p->sleep);
	p->sleep.data = p;
	p->dns = sl_dns_new(&p->loop, &p->opts, why, sizeof(why));
	if (p->dns == NULL) {
		fprintf(p->out, "error: %s\n", why);
		p->rc = 3;
		uv_close((uv_handle_t *)&p->sleep, NULL);
		uv_run(&p->loop, UV_RUN_DEFAULT);
		if (probe_threads > 1)
			pthread_barrier_wait(&probe_barrier);
		uv_loop_close(&p->loop);
		return NULL;
	}
	probe_next(p);
	uv_run(&p->loop, UV_RUN_DEFAULT);
	if (probe_threads > 1)
		pthread_barrier_wait(&probe_barrier);
	rc = uv_loop_close(&p->loop);
	fprintf(p->out, "loop closed rc=%d\n", rc);
	if (rc != 0)
		p->rc = 1;
	return NULL;
}

int
main(int argc, char **argv)
{
	static struct probe probes[PROBE_MAX_THREADS];
	pthread_t tids[PROBE_MAX_THREADS];
	struct sl_dns_opts opts = { 0 };
	int c, threads = 1, rc = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "r:m:t:n:j:")) != -1) {
		switch (c) {
		case 'r':
			opts.resolv_conf = optarg;
			break;
		case 'm':
			opts.min_ttl = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 't':
			opts.timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			opts.tries = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'j':
			threads = (int)strtol(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr,
				"usage: dns_probe -r RESOLV_CONF [-m MIN_TTL] [-t TIMEOUT_MS] "
				"[-n TRIES] [-j THREADS] STEP...\n");
			return 2;
		}
	}
	if (threads < 1 || threads > PROBE_MAX_THREADS)
		threads = 1;
	probe_threads = threads;
	if (threads > 1)
		pthread_barrier_init(&probe_barrier, NULL, (unsigned)threads);
	for (int i = 0; i < threads; i++) {
		struct probe *p = &probes[i];

		p->opts = opts;
		p->steps = argv + optind;
		p->step_cnt = argc - optind;
		p->out = threads == 1 ? stdout : open_memstream(&p->out_text, &p->out_len);
		if (threads == 1)
			probe_run(p);
		else
			pthread_create(&tids[i], NULL, probe_run, p);
	}
	for (int i = 0; i < threads; i++) {
		struct probe *p = &probes[i];

		if (threads > 1) {
			pthread_join(tids[i], NULL);
			fclose(p->out);
			for (char *line = p->out_text, *nl; line != NULL && *line != '\0';
			     line = nl) {
				nl = strchr(line, '\n');
				if (nl != NULL)
					*nl++ = '\0';
				printf("t%d %s\n", i, line);
			}
			free(p->out_text);
		}
		if (p->rc != 0)
			rc = p->rc;
	}
	return rc;
}
