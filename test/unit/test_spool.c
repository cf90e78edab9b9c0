/*
 * test/unit/test_spool.c - the spool: round trips through both backends,
 * group commit, rotation, removal of finished segments (and its crash
 * ordering), progress across a restart, torn tails at every byte, damaged
 * and random files (and keeping them in place for `spool import`), the
 * lock, queue ids across a restart, write and sync failures, ENOSPC on a
 * tiny tmpfs, compaction, and writers racing readers.
 *
 * Every test works in its own mkdtemp directory (removed afterwards) with
 * small segments so that it stays fast; files are damaged by hand through
 * the documented format (sluice-spool(5)), using the spool's own record
 * helpers from spool_int.h.
 *
 * Threads: main; test_threads adds writer, reader and stats threads; the
 * ENOSPC test runs in a forked child in its own mount namespace.  Parses
 * no untrusted input itself (it feeds the spool damaged files).
 * Ownership: each test frees the messages it makes and gets back.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "spool/msg.h"
#include "spool/spool.h"
#include "spool/spool_int.h"

#define SEG_SMALL (64u * 1024)

/* ---- helpers ---- */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
tmp_dir(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *d = sl_asprintf("%s/test_spool.XXXXXX", base);

	assert_non_null(mkdtemp(d));
	return d;
}

static void
tmp_dir_free(char *d)
{
	rm_rf(d);
	sl_free(d);
}

static char *
path_of(const char *dir, const char *name)
{
	return sl_asprintf("%s/%s", dir, name);
}

static struct sl_spool *
spool_open_ok(const char *backend, const char *dir, uint64_t seg_size, bool use_fsync,
	      unsigned writers)
{
	struct sl_spool_opts o = { dir, backend, seg_size, use_fsync, writers, false };
	struct sl_spool *sp = NULL;
	char why[256] = "";
	int err = sl_spool_open(&o, &sp, why, sizeof(why));

	if (err != 0)
		fail_msg("open %s: %d %s", dir, err, why);
	return sp;
}

/* A message with every field set from `seed`; content bytes include NUL. */
static struct sl_msg *
make_msg_full(unsigned seed, size_t content_len, size_t rcpt_cnt, bool is_nonzero)
{
	struct sl_msg *m = sl_msg_new();
	char buf[128];
	size_t done = 0;

	m->session_id = 1000 + seed;
	if (seed % 3 != 1)
		snprintf(m->conn_id, sizeof(m->conn_id), "c%u.%u", seed, seed * 7);
	m->received = 1700000000 + (time_t)seed;
	if (seed % 5 == 0) {
		sl_msg_set_sender(m, ""); /* the null reverse-path */
	} else {
		snprintf(buf, sizeof(buf), "s%u@sender.example", seed);
		sl_msg_set_sender(m, buf);
	}
	for (size_t i = 0; i < rcpt_cnt; i++) {
		snprintf(buf, sizeof(buf), "r%zu.%u@d%zu.example", i, seed, i % 3);
		sl_msg_add_rcpt(m, buf);
	}
	if (seed % 3 != 0) {
		snprintf(buf, sizeof(buf), "binding%u", seed % 4);
		sl_msg_set_str(&m->binding, buf);
	}
	if (seed % 2 != 0)
		sl_msg_set_str(&m->binding_group, "group");
	for (unsigned i = 0; i < seed % 4; i++) {
		char key[32];

		snprintf(key, sizeof(key), "k%u", i);
		snprintf(buf, sizeof(buf), "value %u of %u: ünïcode", i, seed);
		sl_msg_add_context(m, key, buf);
	}
	if (seed % 7 != 0) {
		snprintf(buf, sizeof(buf), "192.0.2.%u", seed % 250);
		sl_msg_set_str(&m->peer_ip, buf);
	}
	if (seed % 6 == 0) {
		sl_msg_set_str(&m->helo, "");
	} else {
		snprintf(buf, sizeof(buf), "helo%u.example", seed);
		sl_msg_set_str(&m->helo, buf);
	}
	sl_msg_set_str(&m->protocol, seed % 2 ? "esmtp" : "ecstream");
	m->is_8bitmime = seed & 1;
	m->is_smtputf8 = (seed & 2) != 0;
	if (seed % 4 != 3)
		sl_buf_printf(&m->head, "Received: from helo%u by test; id %u\r\n", seed, seed);
	while (done < content_len) {
		uint8_t piece[3000];
		size_t n = content_len - done;

		if (n > sizeof(piece) - seed % 1000)
			n = sizeof(piece) - seed % 1000;
		for (size_t i = 0; i < n; i++) {
			unsigned v = (seed * 131u + (unsigned)(done + i) * 7u +
				      (unsigned)((done + i) >> 8));

			piece[i] = (uint8_t)(is_nonzero ? 1 + v % 255 : v);
		}
		sl_msg_append(m, piece, n);
		done += n;
	}
	return m;
}

static struct sl_msg *
make_msg(unsigned seed, size_t content_len, size_t rcpt_cnt)
{
	return make_msg_full(seed, content_len, rcpt_cnt, false);
}

static void
assert_str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static uint8_t *
flatten(const struct sl_msg *m, size_t *len)
{
	uint8_t *p = sl_malloc(sl_msg_size(m) + 1);
	size_t off = 0;

	memcpy(p, m->head.data ? m->head.data : "", m->head.len);
	off = m->head.len;
	for (const struct sl_msg_chunk *c = m->chunks; c != NULL; c = c->next) {
		memcpy(p + off, c->data, c->len);
		off += c->len;
	}
	*len = off;
	return p;
}

/* Same envelope and bytes (statuses are checked by the callers). */
static void
assert_msg_same(const struct sl_msg *a, const struct sl_msg *b)
{
	size_t alen, blen;
	uint8_t *ap, *bp;

	assert_string_equal(a->qid, b->qid);
	assert_int_equal(a->session_id, b->session_id);
	assert_string_equal(a->conn_id, b->conn_id);
	assert_int_equal(a->received, b->received);
	assert_str_same(a->sender, b->sender);
	assert_int_equal(a->rcpt_cnt, b->rcpt_cnt);
	for (size_t i = 0; i < a->rcpt_cnt; i++) {
		assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
		assert_int_equal(a->rcpts[i].domain_off, b->rcpts[i].domain_off);
	}
	assert_str_same(a->binding, b->binding);
	assert_str_same(a->binding_group, b->binding_group);
	assert_int_equal(a->context_cnt, b->context_cnt);
	for (size_t i = 0; i < a->context_cnt; i++) {
		assert_string_equal(a->context[i].key, b->context[i].key);
		assert_string_equal(a->context[i].val, b->context[i].val);
	}
	assert_str_same(a->peer_ip, b->peer_ip);
	assert_str_same(a->helo, b->helo);
	assert_str_same(a->protocol, b->protocol);
	assert_int_equal(a->is_8bitmime, b->is_8bitmime);
	assert_int_equal(a->is_smtputf8, b->is_smtputf8);
	assert_int_equal(a->head.len, b->head.len);
	assert_int_equal(a->content_len, b->content_len);
	ap = flatten(a, &alen);
	bp = flatten(b, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(ap, bp, alen);
	sl_free(ap);
	sl_free(bp);
}

struct got {
	struct sl_msg **m; /* owned */
	size_t cnt, cap;
	unsigned logs;
};

static void
got_fn(struct sl_msg *m, void *arg)
{
	struct got *g = arg;

	if (g->cnt == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->m = sl_reallocarray(g->m, g->cap, sizeof(*g->m));
	}
	g->m[g->cnt++] = m;
}

static void
log_fn(const char *line, void *arg)
{
	struct got *g = arg;

	g->logs++;
	if (getenv("TEST_SPOOL_VERBOSE") != NULL)
		fprintf(stderr, "# %s\n", line);
}

static void
got_free(struct got *g)
{
	for (size_t i = 0; i < g->cnt; i++)
		sl_msg_free(g->m[i]);
	sl_free(g->m);
	memset(g, 0, sizeof(*g));
}

static struct sl_msg *
got_find(const struct got *g, const char *qid)
{
	for (size_t i = 0; i < g->cnt; i++)
		if (strcmp(g->m[i]->qid, qid) == 0)
			return g->m[i];
	return NULL;
}

/* Open `dir`, recover into *g; the caller closes. */
static struct sl_spool *
reopen(const char *backend, const char *dir, uint64_t seg_size, unsigned writers, struct got *g,
       struct sl_spool_recover_stats *st)
{
	struct sl_spool *sp = spool_open_ok(backend, dir, seg_size, true, writers);

	assert_int_equal(sl_spool_recover(sp, got_fn, g, log_fn, st), 0);
	return sp;
}

static unsigned
count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name), sl = strlen(suffix);

		if (strncmp(de->d_name, "seg-", 4) == 0 && l > sl &&
		    strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static bool
seg_exists(const char *dir, uint32_t writer, uint32_t number)
{
	char name[64];
	char *p;
	bool is;

	snprintf(name, sizeof(name), "seg-%02X-%08X.sl", writer, number);
	p = path_of(dir, name);
	is = access(p, F_OK) == 0;
	sl_free(p);
	return is;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = sl_malloc((size_t)n + 1);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static void
write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
}

/* Remove every segment file (damaged ones too) from dir, keeping the directory. */
static void
clear_segments(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "seg-", 4) == 0) {
			char *p = path_of(dir, de->d_name);

			assert_int_equal(unlink(p), 0);
			sl_free(p);
		}
	}
	closedir(d);
}

static char *
seg_path(const char *dir, uint32_t writer, uint32_t number)
{
	char name[64];

	snprintf(name, sizeof(name), "seg-%02X-%08X.sl", writer, number);
	return path_of(dir, name);
}

/* Append `cnt` messages (seeds seed0..) on writer 0 and commit; locs/qids out. */
static void
append_n(struct sl_spool *sp, unsigned seed0, unsigned cnt, size_t len, size_t rcpts,
	 struct sl_msg **keep)
{
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);

	for (unsigned i = 0; i < cnt; i++) {
		struct sl_msg *m = make_msg(seed0 + i, len, rcpts);

		assert_int_equal(sl_spool_append(w, m), 0);
		if (keep != NULL)
			keep[i] = m;
		else
			sl_msg_free(m);
	}
	assert_int_equal(sl_spool_commit(w), 0);
}

static void
free_n(struct sl_msg **m, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		sl_msg_free(m[i]);
}

/* ---- round trip ---- */

static const struct {
	const char *backend;
	bool use_fsync;
	uint64_t seg_size;
} rt_cases[] = {
	{ "segment", true, 0 },
	{ "segment", false, 0 },
	{ "segment", true, SEG_SMALL },
	{ "ram", true, 0 },
};

static void
test_roundtrip(void **state)
{
	static const size_t lens[] = { 0, 1, 100, 65535, 65536, 65537, 200000 };
	static const size_t rcpts[] = { 1, 2, 7, 1, 3, 1000, 2 };

	for (size_t c = 0; c < SL_ARRAY_LEN(rt_cases); c++) {
		char *dir = tmp_dir();
		struct sl_spool *sp = spool_open_ok(rt_cases[c].backend, dir, rt_cases[c].seg_size,
						    rt_cases[c].use_fsync, 1);
		struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
		struct sl_msg *sent[SL_ARRAY_LEN(lens)];
		struct sl_spool_recover_stats st;
		struct sl_spool_stats ss;
		struct got g = { 0 };

		for (size_t i = 0; i < SL_ARRAY_LEN(lens); i++) {
			sent[i] = make_msg((unsigned)(i + 1) * 11, lens[i], rcpts[i]);
			assert_int_equal(sl_spool_append(w, sent[i]), 0);
			assert_int_equal(strlen(sent[i]->qid), 21);
		}
		assert_int_equal(sl_spool_commit(w), 0);
		sl_spool_stats(sp, &ss);
		assert_int_equal(ss.appended, SL_ARRAY_LEN(lens));
		assert_int_equal(ss.live_msgs, SL_ARRAY_LEN(lens));
		assert_int_equal(ss.commits, 1);
		/* read back before the restart, too */
		for (size_t i = 0; i < SL_ARRAY_LEN(lens); i++) {
			struct sl_msg *r = NULL;

			assert_int_equal(sl_spool_read(sp, &sent[i]->loc, &r), 0);
			assert_msg_same(sent[i], r);
			assert_memory_equal(&r->loc, &sent[i]->loc, sizeof(r->loc));
			sl_msg_free(r);
		}
		sl_spool_close(sp);

		sp = reopen(rt_cases[c].backend, dir, rt_cases[c].seg_size, 1, &g, &st);
		assert_int_equal(g.cnt, SL_ARRAY_LEN(lens));
		assert_int_equal(st.messages, SL_ARRAY_LEN(lens));
		assert_int_equal(st.damaged, 0);
		assert_int_equal(st.torn_bytes, 0);
		for (size_t i = 0; i < SL_ARRAY_LEN(lens); i++) {
			/* spool order is append order here */
			assert_msg_same(sent[i], g.m[i]);
			assert_memory_equal(&g.m[i]->loc, &sent[i]->loc, sizeof(g.m[i]->loc));
			for (size_t k = 0; k < g.m[i]->rcpt_cnt; k++)
				assert_int_equal(g.m[i]->rcpts[k].status, SL_RCPT_PENDING);
		}
		got_free(&g);
		free_n(sent, SL_ARRAY_LEN(lens));
		sl_spool_close(sp);
		tmp_dir_free(dir);
	}
}

/* ---- group commit ---- */

static void
test_group_commit(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL * 16, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	uint64_t syncs, dsyncs;
	struct got g = { 0 };

	/* the first group creates the segment: one fdatasync plus one directory fsync */
	append_n(sp, 1, 50, 1000, 2, NULL);
	assert_int_equal(sl_spool__fig(&w->syncs), 1);
	assert_int_equal(sl_spool__fig(&w->dir_syncs), 1);
	/* later groups: one fdatasync each, no directory fsync */
	for (int round = 0; round < 5; round++) {
		syncs = sl_spool__fig(&w->syncs);
		dsyncs = sl_spool__fig(&w->dir_syncs);
		append_n(sp, 100 + (unsigned)round * 10, 10, 1000, 1, NULL);
		assert_int_equal(sl_spool__fig(&w->syncs), syncs + 1);
		assert_int_equal(sl_spool__fig(&w->dir_syncs), dsyncs);
	}
	/* nothing to do: nothing synced */
	syncs = sl_spool__fig(&w->syncs);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_int_equal(sl_spool__fig(&w->syncs), syncs);
	sl_spool_close(sp);

	/* without fsync: nothing synced, but written (the page cache has it) */
	sp = spool_open_ok("segment", dir, SEG_SMALL * 16, false, 1);
	assert_int_equal(sl_spool_recover(sp, got_fn, &g, log_fn, NULL), 0);
	assert_int_equal(g.cnt, 100);
	got_free(&g);
	w = sl_spool_writer_get(sp, 0);
	append_n(sp, 500, 20, 1000, 1, NULL);
	assert_int_equal(sl_spool__fig(&w->syncs), 0);
	assert_int_equal(sl_spool__fig(&w->dir_syncs), 0);
	sl_spool_close(sp);
	sp = reopen("segment", dir, SEG_SMALL * 16, 1, &g, NULL);
	assert_int_equal(g.cnt, 120);
	got_free(&g);
	sl_spool_close(sp);
	tmp_dir_free(dir);
}

/* ---- rotation ---- */

static void
test_rotation(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, 16 * 1024, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *sent[21];
	struct sl_spool_stats ss;
	struct got g = { 0 };

	for (unsigned i = 0; i < 20; i++) {
		sent[i] = make_msg(i + 1, 3000, 1);
		assert_int_equal(sl_spool_append(w, sent[i]), 0);
	}
	/* larger than a segment: a segment sized to fit */
	sent[20] = make_msg(99, 100000, 2);
	assert_int_equal(sl_spool_append(w, sent[20]), 0);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_true(count_files(dir, ".sl") >= 5);
	sl_spool_stats(sp, &ss);
	assert_int_equal(ss.segment_cnt, count_files(dir, ".sl"));
	for (unsigned i = 1; i < 21; i++)
		assert_true(sent[i]->loc.segment >= sent[i - 1]->loc.segment);
	{
		struct stat st;
		char *p = seg_path(dir, 0, sent[20]->loc.segment);

		assert_int_equal(stat(p, &st), 0);
		assert_true((uint64_t)st.st_size >= sent[20]->loc.length);
		sl_free(p);
	}
	sl_spool_close(sp);
	sp = reopen("segment", dir, 16 * 1024, 1, &g, NULL);
	assert_int_equal(g.cnt, 21);
	for (unsigned i = 0; i < 21; i++)
		assert_msg_same(sent[i], g.m[i]);
	got_free(&g);
	free_n(sent, 21);
	sl_spool_close(sp);
	tmp_dir_free(dir);
}

/* ---- finishing removes segments ---- */

static void
test_finish_removes_segment(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, 16 * 1024, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *m[12];
	uint32_t first, last;
	struct got g = { 0 };

	append_n(sp, 1, 12, 3000, 2, m);
	first = m[0]->loc.segment;
	last = m[11]->loc.segment;
	assert_true(last > first);
	/* finish every message of the first segment: per recipient and whole */
	for (unsigned i = 0; i < 12 && m[i]->loc.segment == first; i++) {
		if (i % 2 == 0) {
			assert_int_equal(sl_spool_progress(w, &m[i]->loc, 0, SL_RCPT_DELIVERED), 0);
			assert_int_equal(sl_spool_progress(w, &m[i]->loc, 1, SL_RCPT_FAILED), 0);
		} else {
			assert_int_equal(
				sl_spool_progress(w, &m[i]->loc, UINT32_MAX, SL_RCPT_DELIVERED), 0);
		}
	}
	assert_true(seg_exists(dir, 0, first));
	assert_int_equal(sl_spool_commit(w), 0);
	assert_false(seg_exists(dir, 0, first));
	/* a finished, committed message is gone from the books */
	assert_int_equal(sl_spool_progress(w, &m[0]->loc, 0, SL_RCPT_DELIVERED), -ENOENT);
	{
		struct sl_msg *r = NULL;

		assert_int_equal(sl_spool_read(sp, &m[0]->loc, &r), -ENOENT);
	}
	/* the active segment stays even when all its messages finish */
	for (unsigned i = 0; i < 12; i++)
		if (m[i]->loc.segment == last)
			assert_int_equal(
				sl_spool_progress(w, &m[i]->loc, UINT32_MAX, SL_RCPT_DELIVERED), 0);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_true(seg_exists(dir, 0, last));
	sl_spool_close(sp);

	sp = reopen("segment", dir, 16 * 1024, 1, &g, NULL);
	for (size_t i = 0; i < g.cnt; i++) {
		assert_int_not_equal(g.m[i]->loc.segment, first);
		assert_int_not_equal(g.m[i]->loc.segment, last);
	}
	/* recovery removed the fully finished (last) segment */
	assert_false(seg_exists(dir, 0, last));
	got_free(&g);
	free_n(m, 12);
	sl_spool_close(sp);
	tmp_dir_free(dir);
}

/* ---- progress across a restart ---- */

static void
test_progress_survives(void **state)
{
	static const char *const backends[] = { "segment", "ram" };

	for (size_t b = 0; b < SL_ARRAY_LEN(backends); b++) {
		char *dir = tmp_dir();
		struct sl_spool *sp = spool_open_ok(backends[b], dir, 0, true, 1);
		struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
		struct sl_msg *m[3], *r;
		struct got g = { 0 };

		append_n(sp, 1, 3, 500, 4, m);
		assert_int_equal(sl_spool_progress(w, &m[0]->loc, 1, SL_RCPT_DELIVERED), 0);
		assert_int_equal(sl_spool_progress(w, &m[0]->loc, 3, SL_RCPT_FAILED), 0);
		assert_int_equal(sl_spool_progress(w, &m[1]->loc, UINT32_MAX, SL_RCPT_DELIVERED),
				 0);
		for (uint32_t k = 0; k < 4; k++)
			assert_int_equal(sl_spool_progress(w, &m[2]->loc, k, SL_RCPT_EXPIRED), 0);
		/* bad calls */
		assert_int_equal(sl_spool_progress(w, &m[0]->loc, 4, SL_RCPT_DELIVERED), -EINVAL);
		assert_int_equal(sl_spool_progress(w, &m[0]->loc, 0, SL_RCPT_PENDING), -EINVAL);
		assert_int_equal(sl_spool_commit(w), 0);
		/* a final status stays final */
		assert_int_equal(sl_spool_progress(w, &m[0]->loc, 1, SL_RCPT_FAILED), 0);
		assert_int_equal(sl_spool_commit(w), 0);
		sl_spool_close(sp);

		sp = reopen(backends[b], dir, 0, 1, &g, NULL);
		assert_int_equal(g.cnt, 1);
		r = g.m[0];
		assert_msg_same(m[0], r);
		assert_int_equal(r->rcpts[0].status, SL_RCPT_PENDING);
		assert_int_equal(r->rcpts[1].status, SL_RCPT_DELIVERED);
		assert_int_equal(r->rcpts[2].status, SL_RCPT_PENDING);
		assert_int_equal(r->rcpts[3].status, SL_RCPT_FAILED);
		/* the rest, through the recovered loc; then nothing is left */
		w = sl_spool_writer_get(sp, sl_spool_owner(sp, &r->loc));
		assert_int_equal(sl_spool_progress(w, &r->loc, 0, SL_RCPT_DELIVERED), 0);
		assert_int_equal(sl_spool_progress(w, &r->loc, 2, SL_RCPT_DELIVERED), 0);
		assert_int_equal(sl_spool_commit(w), 0);
		got_free(&g);
		sl_spool_close(sp);
		sp = reopen(backends[b], dir, 0, 1, &g, NULL);
		assert_int_equal(g.cnt, 0);
		if (strcmp(backends[b], "segment") == 0)
			assert_int_equal(count_files(dir, ".sl"), 0);
		sl_spool_close(sp);
		free_n(m, 3);
		tmp_dir_free(dir);
	}
}

/* ---- torn tails ---- */

static size_t
nonzero_end(const uint8_t *p, size_t from, size_t to)
{
	size_t end = from;

	for (size_t i = from; i < to; i++)
		if (p[i] != 0)
			end = i + 1;
	return end;
}

static void
test_torn_tail_every_offset(void **state)
{
	char *dir = tmp_dir(), *seg, *d2, *p2;
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *m[3];
	struct sl_spool_loc last;
	uint8_t *img;
	size_t img_len;

	for (unsigned i = 0; i < 3; i++) {
		m[i] = make_msg_full(i + 7, 600, 2, true);
		assert_int_equal(sl_spool_append(w, m[i]), 0);
	}
	assert_int_equal(sl_spool_commit(w), 0);
	last = m[2]->loc;
	sl_spool_close(sp);
	seg = seg_path(dir, 0, last.segment);
	img = read_file(seg, &img_len);
	assert_int_equal(img_len, SEG_SMALL);

	/* cut the file at every byte of the last record; or keep its size, zeros after the cut */
	d2 = tmp_dir();
	p2 = seg_path(d2, 0, last.segment);
	for (int zero_tail = 0; zero_tail < 2; zero_tail++) {
		for (size_t cut = last.offset; cut <= last.offset + last.length; cut++) {
			struct sl_spool_recover_stats st;
			bool is_whole = cut == last.offset + last.length;
			struct got g = { 0 };

			if (zero_tail) {
				uint8_t *copy = sl_malloc(img_len);

				memcpy(copy, img, cut);
				memset(copy + cut, 0, img_len - cut);
				write_file(p2, copy, img_len);
				sl_free(copy);
			} else {
				write_file(p2, img, cut);
			}
			sp = reopen("segment", d2, SEG_SMALL, 1, &g, &st);
			assert_int_equal(g.cnt, is_whole ? 3 : 2);
			for (size_t i = 0; i < g.cnt; i++)
				assert_msg_same(m[i], g.m[i]);
			assert_int_equal(st.damaged, 0);
			assert_int_equal(
				st.torn_bytes,
				is_whole ? 0 : nonzero_end(img, last.offset, cut) - last.offset);
			got_free(&g);
			sl_spool_close(sp);
			clear_segments(d2);
		}
	}
	sl_free(p2);
	tmp_dir_free(d2);
	sl_free(img);
	sl_free(seg);
	free_n(m, 3);
	tmp_dir_free(dir);
}

/* ---- damage in the middle ---- */

static const struct {
	const char *what;
	size_t at; /* byte of the record; SIZE_MAX: its last byte */
	uint8_t bit;
} flips[] = {
	{ "magic", 0, 0x01 },       { "crc", 5, 0x80 },
	{ "type", 8, 0x02 },        { "flags", 10, 0x01 },
	{ "length low", 12, 0x04 }, { "length high", 15, 0x40 },
	{ "offset", 17, 0x01 },     { "env length", 24, 0x01 },
	{ "qid", 24 + 9, 0x20 },    { "rcpt count", 24 + 64, 0x01 },
	{ "content", 400, 0x10 },   { "last byte", SIZE_MAX, 0x01 },
};

static void
test_flipped_bits(void **state)
{
	char *dir = tmp_dir(), *seg;
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL, false, 1);
	struct sl_msg *m[5];
	struct sl_spool_loc mid;
	uint8_t *img;
	size_t img_len;

	append_n(sp, 20, 5, 700, 2, m);
	mid = m[2]->loc;
	sl_spool_close(sp);
	seg = seg_path(dir, 0, mid.segment);
	img = read_file(seg, &img_len);
	for (size_t f = 0; f < SL_ARRAY_LEN(flips); f++) {
		char *d2 = tmp_dir(), *p2 = seg_path(d2, 0, mid.segment);
		size_t at = flips[f].at == SIZE_MAX ? mid.length - 1 : flips[f].at;
		struct sl_spool_recover_stats st;
		struct got g = { 0 };

		img[mid.offset + at] ^= flips[f].bit;
		write_file(p2, img, img_len);
		img[mid.offset + at] ^= flips[f].bit;
		sp = reopen("segment", d2, SEG_SMALL, 1, &g, &st);
		if (g.cnt != 4 || st.damaged != 1)
			fail_msg("%s: %zu messages, %llu damaged", flips[f].what, g.cnt,
				 (unsigned long long)st.damaged);
		assert_msg_same(m[0], g.m[0]);
		assert_msg_same(m[1], g.m[1]);
		assert_msg_same(m[3], g.m[2]);
		assert_msg_same(m[4], g.m[3]);
		assert_int_equal(st.torn_bytes, 0);
		assert_true(g.logs >= 1);
		got_free(&g);
		sl_spool_close(sp);
		sl_free(p2);
		tmp_dir_free(d2);
	}
	sl_free(img);
	sl_free(seg);
	free_n(m, 5);
	tmp_dir_free(dir);
}

/* Random damage of every kind: whatever comes back is exactly a message that went in. */
static void
test_random_damage(void **state)
{
	char *dir = tmp_dir(), *seg, *d2, *p2;
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL, false, 1);
	struct sl_msg *m[8];
	unsigned seed = 4242;
	uint8_t *img;
	size_t img_len, used;

	append_n(sp, 40, 8, 1500, 3, m);
	used = (size_t)(m[7]->loc.offset + m[7]->loc.length);
	sl_spool_close(sp);
	seg = seg_path(dir, 0, m[0]->loc.segment);
	img = read_file(seg, &img_len);
	d2 = tmp_dir();
	p2 = seg_path(d2, 0, m[0]->loc.segment);
	for (int round = 0; round < 300; round++) {
		uint8_t *copy = sl_malloc(img_len);
		size_t len = img_len, a = (size_t)rand_r(&seed) % used, n;
		struct sl_spool_recover_stats st;
		struct got g = { 0 };

		memcpy(copy, img, img_len);
		switch (round % 4) {
		case 0: /* bit flips */
			for (int k = 0; k < 1 + round % 5; k++)
				copy[(size_t)rand_r(&seed) % used] ^=
					(uint8_t)(1u << (rand_r(&seed) % 8));
			break;
		case 1: /* a run of garbage */
			n = 1 + (size_t)rand_r(&seed) % 3000;
			for (size_t i = a; i < a + n && i < img_len; i++)
				copy[i] = (uint8_t)rand_r(&seed);
			break;
		case 2: /* a run of zeros (a lost block) */
			n = 1 + (size_t)rand_r(&seed) % 4096;
			memset(copy + a, 0, a + n < img_len ? n : img_len - a);
			break;
		case 3: /* truncated */
			len = a;
			break;
		}
		write_file(p2, copy, len);
		sp = reopen("segment", d2, SEG_SMALL, 1, &g, &st);
		for (size_t i = 0; i < g.cnt; i++) {
			const struct sl_msg *orig = NULL;

			for (size_t k = 0; k < 8; k++)
				if (strcmp(m[k]->qid, g.m[i]->qid) == 0)
					orig = m[k];
			if (orig == NULL)
				fail_msg("round %d: unknown message %s", round, g.m[i]->qid);
			assert_msg_same(orig, g.m[i]);
			for (size_t k = 0; k < i; k++)
				assert_string_not_equal(g.m[k]->qid, g.m[i]->qid);
		}
		got_free(&g);
		sl_spool_close(sp);
		sl_free(copy);
		clear_segments(d2);
	}
	sl_free(p2);
	tmp_dir_free(d2);
	sl_free(img);
	sl_free(seg);
	free_n(m, 8);
	tmp_dir_free(dir);
}

/* ---- garbage files ---- */

static void
make_foreign_segment(const char *path)
{
	uint8_t hdr[SL_SPOOL__SEG_HDR_LEN] = { 0 }, *p = hdr + SL_SPOOL__REC_HDR_LEN;

	sl_spool__hdr_put(hdr, SL_SPOOL__REC_SEGMENT, 0, SL_SPOOL__SEG_PAYLOAD, 0);
	memcpy(p, SL_SPOOL__SEG_MAGIC, 8);
	sl_spool__put32(p + 8, SL_SPOOL__VERSION + 1);
	sl_spool__put32(p + 16, 4);
	sl_spool__put32(hdr + 4, sl_crc32c(sl_spool__hdr_crc(hdr), p, SL_SPOOL__SEG_PAYLOAD));
	write_file(path, hdr, sizeof(hdr));
}

static void
test_garbage_files(void **state)
{
	static const struct {
		const char *name;
		size_t len;
		int kind;          /* 0 random, 1 zeros, 2 a newer format */
		const char *after; /* where it is afterwards, NULL: gone */
	} files[] = {
		{ "seg-00-00000001.sl", 10, 0, "seg-00-00000001.sl.damaged" },
		{ "seg-00-00000002.sl", 0, 1, NULL },
		{ "seg-00-00000003.sl", 5000, 0, "seg-00-00000003.sl.damaged" },
		{ "seg-01-00000001.sl", 100000, 1, NULL },
		{ "seg-00-00000004.sl", 0, 2, "seg-00-00000004.sl" },
		{ "seg-00-0000000g.sl", 100, 0, "seg-00-0000000g.sl" },
		{ "seg-0-1.sl", 100, 0, "seg-0-1.sl" },
		{ "notes.txt", 100, 0, "notes.txt" },
		{ "seg-02-00000009.sl", 300000, 0, "seg-02-00000009.sl.damaged" },
	};
	char *dir = tmp_dir();
	unsigned seed = 7;
	struct sl_spool_recover_stats st;
	struct got g = { 0 };
	struct sl_spool *sp;
	struct sl_msg *m;

	for (size_t i = 0; i < SL_ARRAY_LEN(files); i++) {
		char *p = path_of(dir, files[i].name);
		uint8_t *buf = sl_calloc(1, files[i].len + 1);

		if (files[i].kind == 0)
			for (size_t k = 0; k < files[i].len; k++)
				buf[k] = (uint8_t)rand_r(&seed);
		if (files[i].kind == 2)
			make_foreign_segment(p);
		else
			write_file(p, buf, files[i].len);
		sl_free(buf);
		sl_free(p);
	}
	sp = reopen("segment", dir, SEG_SMALL, 2, &g, &st);
	assert_int_equal(g.cnt, 0);
	assert_int_equal(st.messages, 0);
	assert_true(st.damaged >= 3);
	assert_true(st.torn_bytes >= 5000);
	for (size_t i = 0; i < SL_ARRAY_LEN(files); i++) {
		char *p = path_of(dir, files[i].name);

		if (files[i].after == NULL) {
			assert_int_not_equal(access(p, F_OK), 0);
		} else {
			char *q = path_of(dir, files[i].after);

			if (access(q, F_OK) != 0)
				fail_msg("%s: %s missing", files[i].name, files[i].after);
			sl_free(q);
		}
		sl_free(p);
	}
	/* the writers go on past every number seen */
	m = make_msg(1, 100, 1);
	assert_int_equal(sl_spool_append(sl_spool_writer_get(sp, 0), m), 0);
	assert_int_equal(m->loc.segment, 5);
	assert_int_equal(sl_spool_commit(sl_spool_writer_get(sp, 0)), 0);
	sl_msg_free(m);
	sl_spool_close(sp);
	tmp_dir_free(dir);
}

/* ---- the lock ---- */

static void
test_lock(void **state)
{
	static const char *const backends[] = { "segment", "ram" };

	for (size_t b = 0; b < SL_ARRAY_LEN(backends); b++) {
		char *dir = tmp_dir();
		struct sl_spool_opts o = { dir, backends[b], 0, true, 1, false };
		struct sl_spool *sp = spool_open_ok(backends[b], dir, 0, true, 1), *sp2 = NULL;
		char why[256] = "";

		assert_int_equal(sl_spool_open(&o, &sp2, why, sizeof(why)), -EBUSY);
		assert_null(sp2);
		assert_non_null(strstr(why, "in use"));
		sl_spool_close(sp);
		assert_int_equal(sl_spool_open(&o, &sp2, why, sizeof(why)), 0);
		sl_spool_close(sp2);
		tmp_dir_free(dir);
	}
}

static void
test_bad_opts(void **state)
{
	static const struct sl_spool_opts bad[] = {
		{ "/tmp/x", "tape", 0, true, 1, false },
		{ "/tmp/x", "segment", 0, true, 0, false },
		{ "/tmp/x", "segment", 0, true, 257, false },
		{ "/tmp/x", "segment", 100, true, 1, false },
		{ NULL, "segment", 0, true, 1, false },
	};

	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		struct sl_spool *sp = NULL;
		char why[256] = "";

		assert_int_equal(sl_spool_open(&bad[i], &sp, why, sizeof(why)), -EINVAL);
		assert_null(sp);
		assert_true(why[0] != '\0');
	}
}

/* ---- queue ids ---- */

static void
test_qid_unique_restart(void **state)
{
	static const char *const backends[] = { "segment", "ram" };

	for (size_t b = 0; b < SL_ARRAY_LEN(backends); b++) {
		char *dir = tmp_dir();
		char qids[3][40][SL_MSG_QID_LEN];

		for (int tries = 0; tries < 5; tries++) {
			time_t t0 = time(NULL);

			/* three runs in one second; the second finishes everything (segments removed) */
			for (int run = 0; run < 3; run++) {
				struct sl_spool *sp =
					spool_open_ok(backends[b], dir, SEG_SMALL, false, 2);
				struct got g = { 0 };

				assert_int_equal(sl_spool_recover(sp, got_fn, &g, NULL, NULL), 0);
				for (int i = 0; i < 40; i++) {
					struct sl_spool_writer *w =
						sl_spool_writer_get(sp, (unsigned)i % 2);
					struct sl_msg *m = make_msg((unsigned)i, 10, 1);

					assert_int_equal(sl_spool_append(w, m), 0);
					memcpy(qids[run][i], m->qid, SL_MSG_QID_LEN);
					if (run == 1)
						assert_int_equal(
							sl_spool_progress(w, &m->loc, 0,
									  SL_RCPT_DELIVERED),
							0);
					sl_msg_free(m);
				}
				for (unsigned k = 0; k < 2; k++)
					assert_int_equal(
						sl_spool_commit(sl_spool_writer_get(sp, k)), 0);
				got_free(&g);
				sl_spool_close(sp);
			}
			if (time(NULL) != t0)
				continue; /* crossed a second: not the case under test; again */
			for (int r = 0; r < 3; r++) {
				for (int i = 0; i < 40; i++) {
					uint32_t t, wr;
					uint64_t seq;

					assert_true(sl_spool__qid_parse(qids[r][i], &t, &wr, &seq));
					assert_int_equal(wr, (unsigned)i % 2);
					for (int r2 = 0; r2 <= r; r2++)
						for (int k = 0; k < (r2 == r ? i : 40); k++)
							assert_string_not_equal(qids[r2][k],
										qids[r][i]);
				}
			}
			break;
		}
		tmp_dir_free(dir);
	}
}

/* ---- write and sync failures ---- */

static void
test_write_failure(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *a = make_msg(1, 2000, 1), *b = make_msg(2, 2000, 1),
		      *c = make_msg(3, 2000, 1);
	struct got g = { 0 };

	assert_int_equal(sl_spool_append(w, a), 0);
	w->fail_write = EIO;
	assert_int_equal(sl_spool_append(w, b), -EIO);
	assert_string_equal(b->qid, "");
	/* the next message goes to a new segment, after no garbage */
	assert_int_equal(sl_spool_append(w, c), 0);
	assert_int_not_equal(c->loc.segment, a->loc.segment);
	assert_int_equal(sl_spool_commit(w), 0);
	sl_spool_close(sp);
	sp = reopen("segment", dir, SEG_SMALL, 1, &g, NULL);
	assert_int_equal(g.cnt, 2);
	assert_msg_same(a, g.m[0]);
	assert_msg_same(c, g.m[1]);
	got_free(&g);
	sl_spool_close(sp);
	sl_msg_free(a);
	sl_msg_free(b);
	sl_msg_free(c);
	tmp_dir_free(dir);
}

static void
test_sync_failure(void **state)
{
	static const char *const backends[] = { "segment", "ram" };

	for (size_t bk = 0; bk < SL_ARRAY_LEN(backends); bk++) {
		char *dir = tmp_dir();
		struct sl_spool *sp = spool_open_ok(backends[bk], dir, SEG_SMALL, true, 1);
		struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
		struct sl_msg *a = make_msg(1, 900, 2), *b = make_msg(2, 900, 1);
		struct sl_msg *c = make_msg(3, 900, 1);
		struct got g = { 0 };

		assert_int_equal(sl_spool_append(w, a), 0);
		assert_int_equal(sl_spool_commit(w), 0);
		assert_int_equal(sl_spool_progress(w, &a->loc, 0, SL_RCPT_DELIVERED), 0);
		assert_int_equal(sl_spool_append(w, b), 0);
		w->fail_sync = EIO;
		assert_int_equal(sl_spool_commit(w), -EIO);
		/* b was abandoned (its client hears 4xx); a's progress is kept */
		assert_int_equal(sl_spool_append(w, c), 0);
		assert_int_equal(sl_spool_commit(w), 0);
		sl_spool_close(sp);
		sp = reopen(backends[bk], dir, SEG_SMALL, 1, &g, NULL);
		assert_int_equal(g.cnt, 2);
		assert_non_null(got_find(&g, a->qid));
		assert_null(got_find(&g, b->qid));
		assert_non_null(got_find(&g, c->qid));
		assert_int_equal(got_find(&g, a->qid)->rcpts[0].status, SL_RCPT_DELIVERED);
		assert_int_equal(got_find(&g, a->qid)->rcpts[1].status, SL_RCPT_PENDING);
		got_free(&g);
		sl_spool_close(sp);
		sl_msg_free(a);
		sl_msg_free(b);
		sl_msg_free(c);
		tmp_dir_free(dir);
	}
}

static void
test_limits(void **state)
{
	static const char *const backends[] = { "segment", "ram" };

	for (size_t bk = 0; bk < SL_ARRAY_LEN(backends); bk++) {
		char *dir = tmp_dir();
		struct sl_spool *sp = spool_open_ok(backends[bk], dir, SEG_SMALL, false, 1);
		struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
		struct sl_msg *m = make_msg(1, 10, 0);
		char *big = sl_calloc(1, 70000);
		struct got g = { 0 };

		assert_int_equal(sl_spool_append(w, m), -EINVAL); /* no recipient */
		sl_msg_add_rcpt(m, "a@b.example");
		m->rcpts[0].status = SL_RCPT_DELIVERED;
		assert_int_equal(sl_spool_append(w, m), -EINVAL); /* nothing pending */
		m->rcpts[0].status = SL_RCPT_PENDING;
		memset(big, 'x', 5000);
		sl_msg_set_str(&m->helo, big);
		assert_int_equal(sl_spool_append(w, m), -E2BIG);
		sl_msg_set_str(&m->helo, "ok");
		memset(big, 'y', 69999);
		sl_msg_add_context(m, "k", big);
		assert_int_equal(sl_spool_append(w, m), -E2BIG);
		sl_msg_add_context(m, "k", "small");
		assert_int_equal(sl_spool_append(w, m), 0);
		assert_int_equal(sl_spool_commit(w), 0);
		sl_spool_close(sp);
		sp = reopen(backends[bk], dir, SEG_SMALL, 1, &g, NULL);
		assert_int_equal(g.cnt, 1);
		assert_msg_same(m, g.m[0]);
		got_free(&g);
		sl_spool_close(sp);
		sl_free(big);
		sl_msg_free(m);
		tmp_dir_free(dir);
	}
}

/* ---- ENOSPC on a 1 MiB tmpfs (a forked child in its own mount namespace) ---- */

#define ECHECK(x)                                                                 \
	do {                                                                      \
		if (!(x)) {                                                       \
			fprintf(stderr, "# enospc: line %d: %s\n", __LINE__, #x); \
			_exit(1);                                                 \
		}                                                                 \
	} while (0)

static void
enospc_recover_fn(struct sl_msg *m, void *arg)
{
	struct got *g = arg;

	got_fn(m, g);
}

static void
enospc_child(const char *dir)
{
	struct sl_spool_opts o = { dir, "segment", 256 * 1024, true, 1, false };
	struct sl_spool *sp = NULL;
	struct sl_spool_writer *w;
	struct sl_msg *m[64];
	struct got g = { 0 };
	char why[256];
	int n = 0, err = 0, first_seg;

	ECHECK(sl_spool_open(&o, &sp, why, sizeof(why)) == 0);
	w = sl_spool_writer_get(sp, 0);
	while (n < 64) {
		m[n] = make_msg((unsigned)n, 40000, 1);
		err = sl_spool_append(w, m[n]);
		if (err < 0)
			break;
		n++;
	}
	ECHECK(err == -ENOSPC);
	ECHECK(n >= 8);
	ECHECK(sl_spool_commit(w) == 0);
	ECHECK(sl_spool_append(w, m[n]) == -ENOSPC); /* still full */
	/* finishing the first segment's messages frees its space */
	first_seg = (int)m[0]->loc.segment;
	for (int i = 0; i < n && (int)m[i]->loc.segment == first_seg; i++)
		ECHECK(sl_spool_progress(w, &m[i]->loc, 0, SL_RCPT_DELIVERED) == 0);
	ECHECK(sl_spool_commit(w) == 0);
	ECHECK(sl_spool_append(w, m[n]) == 0);
	n++;
	while (n < 64) {
		m[n] = make_msg((unsigned)n, 40000, 1);
		err = sl_spool_append(w, m[n]);
		if (err < 0)
			break;
		n++;
	}
	ECHECK(err == -ENOSPC);
	ECHECK(sl_spool_commit(w) == 0);
	sl_spool_close(sp);

	/* a restart on a full disk: progress still has somewhere to go */
	ECHECK(sl_spool_open(&o, &sp, why, sizeof(why)) == 0);
	ECHECK(sl_spool_recover(sp, enospc_recover_fn, &g, NULL, NULL) == 0);
	ECHECK(g.cnt > 0);
	w = sl_spool_writer_get(sp, 0);
	first_seg = (int)g.m[0]->loc.segment;
	for (size_t i = 0; i < g.cnt && (int)g.m[i]->loc.segment == first_seg; i++)
		ECHECK(sl_spool_progress(w, &g.m[i]->loc, UINT32_MAX, SL_RCPT_DELIVERED) == 0);
	ECHECK(sl_spool_commit(w) == 0);
	ECHECK(!seg_exists(dir, 0, (uint32_t)first_seg));
	{
		struct sl_msg *x = make_msg(999, 40000, 1);

		ECHECK(sl_spool_append(w, x) == 0);
		ECHECK(sl_spool_commit(w) == 0);
		sl_msg_free(x);
	}
	got_free(&g);
	sl_spool_close(sp);
	for (int i = 0; i <= n && i < 64; i++)
		sl_msg_free(m[i]);
	_exit(0);
}

static void
test_enospc(void **state)
{
	char *dir = tmp_dir();
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=1m") < 0)
			_exit(77);
		enospc_child(dir);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	tmp_dir_free(dir);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip(); /* no mount namespace for us: not root, or no CAP_SYS_ADMIN */
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- compaction ---- */

struct moved {
	char qid[64][SL_MSG_QID_LEN];
	struct sl_spool_loc to[64];
	size_t cnt;
};

static void
moved_fn(const char *qid, const struct sl_spool_loc *to, void *arg)
{
	struct moved *mv = arg;

	snprintf(mv->qid[mv->cnt], SL_MSG_QID_LEN, "%s", qid);
	mv->to[mv->cnt++] = *to;
}

static void
test_compaction(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, 16 * 1024, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *m[20];
	struct moved mv = { .cnt = 0 };
	uint32_t old_segs[20];
	size_t keep_cnt = 0, last_cnt = 0;
	struct got g = { 0 };
	int moved;

	append_n(sp, 60, 20, 3000, 2, m);
	/* keep one message in each old segment (and one recipient done); finish the rest */
	for (unsigned i = 0; i < 20; i++) {
		bool is_first = i == 0 || m[i]->loc.segment != m[i - 1]->loc.segment;

		if (is_first && m[i]->loc.segment != m[19]->loc.segment) {
			old_segs[keep_cnt++] = m[i]->loc.segment;
			assert_int_equal(sl_spool_progress(w, &m[i]->loc, 1, SL_RCPT_DELIVERED), 0);
			continue;
		}
		if (m[i]->loc.segment != m[19]->loc.segment)
			assert_int_equal(
				sl_spool_progress(w, &m[i]->loc, UINT32_MAX, SL_RCPT_DELIVERED), 0);
	}
	assert_true(keep_cnt >= 3);
	assert_int_equal(sl_spool_commit(w), 0);
	for (size_t k = 0; k < keep_cnt; k++)
		assert_true(seg_exists(dir, 0, old_segs[k]));

	moved = sl_spool_compact(w, 0.5, UINT64_MAX, moved_fn, &mv);
	assert_int_equal(moved, (int)keep_cnt);
	assert_int_equal(mv.cnt, keep_cnt);
	/* not durable yet: the old segments stay until the commit */
	for (size_t k = 0; k < keep_cnt; k++)
		assert_true(seg_exists(dir, 0, old_segs[k]));
	assert_int_equal(sl_spool_commit(w), 0);
	for (size_t k = 0; k < keep_cnt; k++)
		assert_false(seg_exists(dir, 0, old_segs[k]));
	/* the new loc reads the same bytes; so does the old one, its segment gone: followed */
	for (size_t k = 0; k < mv.cnt; k++) {
		struct sl_msg *r = NULL, *orig = NULL;

		for (unsigned i = 0; i < 20; i++)
			if (strcmp(m[i]->qid, mv.qid[k]) == 0)
				orig = m[i];
		assert_non_null(orig);
		assert_int_equal(sl_spool_read(sp, &mv.to[k], &r), 0);
		assert_msg_same(orig, r);
		assert_int_equal(r->rcpts[1].status, SL_RCPT_DELIVERED);
		sl_msg_free(r);
		assert_int_equal(sl_spool_read(sp, &orig->loc, &r), 0);
		assert_msg_same(orig, r);
		assert_int_equal(r->loc.segment, mv.to[k].segment);
		assert_int_equal(r->loc.offset, mv.to[k].offset);
		sl_msg_free(r);
	}
	/*
	 * Moved twice: fill segments with messages that then finish, so the
	 * segment holding the copies is sealed, and move everything live out
	 * of it again; the first loc still leads to the newest copy.
	 */
	{
		struct sl_msg *r = NULL, *orig = NULL, *fill[12];
		struct moved mv2 = { .cnt = 0 };
		int again, is_again = 0;

		for (unsigned i = 0; i < 20; i++)
			if (strcmp(m[i]->qid, mv.qid[1]) == 0)
				orig = m[i];
		append_n(sp, 200, 12, 3000, 1, fill);
		for (unsigned i = 0; i < 12; i++)
			assert_int_equal(
				sl_spool_progress(w, &fill[i]->loc, UINT32_MAX, SL_RCPT_DELIVERED),
				0);
		assert_int_equal(sl_spool_commit(w), 0);
		free_n(fill, 12);
		again = sl_spool_compact(w, 1.01, UINT64_MAX, moved_fn, &mv2);
		assert_true(again >= 1);
		assert_int_equal(sl_spool_commit(w), 0);
		for (size_t k = 0; k < mv2.cnt; k++)
			is_again += strcmp(mv2.qid[k], mv.qid[1]) == 0;
		assert_int_equal(is_again, 1);
		assert_false(seg_exists(dir, 0, mv.to[1].segment));
		assert_int_equal(sl_spool_read(sp, &orig->loc, &r), 0);
		assert_msg_same(orig, r);
		for (size_t k = 0; k < mv2.cnt; k++)
			if (strcmp(mv2.qid[k], mv.qid[1]) == 0)
				assert_int_equal(r->loc.segment, mv2.to[k].segment);
		sl_msg_free(r);
	}
	/* progress through an old loc still reaches the message; finished, it reads no more */
	for (unsigned i = 0; i < 20; i++) {
		if (strcmp(m[i]->qid, mv.qid[0]) == 0) {
			struct sl_msg *r = NULL;

			assert_int_equal(sl_spool_progress(w, &m[i]->loc, 0, SL_RCPT_FAILED), 0);
			assert_int_equal(sl_spool_commit(w), 0);
			assert_int_equal(sl_spool_read(sp, &m[i]->loc, &r), -ENOENT);
		}
	}
	assert_int_equal(sl_spool_commit(w), 0);
	sl_spool_close(sp);

	/* the kept ones but the one just finished, and the untouched newest segment */
	for (unsigned i = 0; i < 20; i++)
		last_cnt += m[i]->loc.segment == m[19]->loc.segment;
	sp = reopen("segment", dir, 16 * 1024, 1, &g, NULL);
	assert_int_equal(g.cnt, keep_cnt - 1 + last_cnt);
	for (size_t k = 1; k < mv.cnt; k++) {
		const struct sl_msg *r = got_find(&g, mv.qid[k]);

		assert_non_null(r);
		assert_int_equal(r->rcpts[1].status, SL_RCPT_DELIVERED);
		assert_int_equal(r->rcpts[0].status, SL_RCPT_PENDING);
	}
	assert_null(got_find(&g, mv.qid[0]));
	got_free(&g);
	sl_spool_close(sp);
	free_n(m, 20);
	tmp_dir_free(dir);
}

/* A crash after compaction wrote its copies, before the commit: one message each. */
static void
test_compaction_crash(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, 16 * 1024, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *m[12];
	uint32_t first;
	struct got g = { 0 };

	append_n(sp, 80, 12, 3000, 2, m);
	first = m[0]->loc.segment;
	assert_int_equal(sl_spool_progress(w, &m[0]->loc, 0, SL_RCPT_DELIVERED), 0);
	for (unsigned i = 1; i < 12 && m[i]->loc.segment == first; i++)
		assert_int_equal(sl_spool_progress(w, &m[i]->loc, UINT32_MAX, SL_RCPT_DELIVERED),
				 0);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_int_equal(sl_spool_compact(w, 0.5, UINT64_MAX, NULL, NULL), 1);
	sl_spool_close(sp); /* no commit: the copy may or may not be on disk */

	sp = reopen("segment", dir, 16 * 1024, 1, &g, NULL);
	for (size_t i = 0; i < g.cnt; i++)
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(g.m[i]->qid, g.m[k]->qid);
	assert_non_null(got_find(&g, m[0]->qid));
	assert_msg_same(m[0], got_find(&g, m[0]->qid));
	assert_int_equal(got_find(&g, m[0]->qid)->rcpts[0].status, SL_RCPT_DELIVERED);
	assert_int_equal(got_find(&g, m[0]->qid)->rcpts[1].status, SL_RCPT_PENDING);
	/* finishing it lets both copies' segments go */
	w = sl_spool_writer_get(sp, 0);
	assert_int_equal(sl_spool_progress(w, &got_find(&g, m[0]->qid)->loc, 1, SL_RCPT_DELIVERED),
			 0);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_false(seg_exists(dir, 0, first));
	got_free(&g);
	sl_spool_close(sp);
	free_n(m, 12);
	tmp_dir_free(dir);
}

/* A damaged segment header loses nothing; a damaged record reads as -EIO. */
static void
test_damaged_header(void **state)
{
	char *dir = tmp_dir(), *seg;
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL, false, 1);
	struct sl_spool_recover_stats st;
	struct sl_msg *m[3], *r = NULL;
	struct got g = { 0 };
	uint8_t *img;
	size_t img_len;

	append_n(sp, 90, 3, 800, 1, m);
	seg = seg_path(dir, 0, m[0]->loc.segment);
	img = read_file(seg, &img_len);
	img[m[1]->loc.offset + m[1]->loc.length - 10] ^= 0x08;
	write_file(seg, img, img_len);
	assert_int_equal(sl_spool_read(sp, &m[1]->loc, &r), -EIO);
	assert_null(r);
	assert_int_equal(sl_spool_read(sp, &m[2]->loc, &r), 0);
	sl_msg_free(r);
	sl_spool_close(sp);
	img[m[1]->loc.offset + m[1]->loc.length - 10] ^= 0x08;
	img[SL_SPOOL__REC_HDR_LEN + 3] ^= 0x01; /* the segment header's magic */
	write_file(seg, img, img_len);
	sp = reopen("segment", dir, SEG_SMALL, 1, &g, &st);
	assert_int_equal(g.cnt, 3);
	for (size_t i = 0; i < 3; i++)
		assert_msg_same(m[i], g.m[i]);
	assert_int_equal(st.damaged, 1);
	assert_true(g.logs >= 1);
	got_free(&g);
	sl_spool_close(sp);
	sl_free(img);
	sl_free(seg);
	free_n(m, 3);
	tmp_dir_free(dir);
}

/* Recovery for `spool import` (keep_damaged): what it cannot read stays under its name. */
static void
test_keep_damaged(void **state)
{
	struct sl_spool_opts o = { NULL, "segment", SEG_SMALL, false, 1, true };
	char *dir = tmp_dir(), *seg, *junk, *sub;
	struct sl_spool_recover_stats st;
	struct sl_spool_writer *w;
	struct sl_msg *m[3];
	struct got g = { 0 };
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL, false, 1);
	char why[256];
	uint8_t *img;
	size_t img_len;

	append_n(sp, 70, 3, 900, 1, m);
	sl_spool_close(sp);
	seg = seg_path(dir, 0, m[0]->loc.segment);
	img = read_file(seg, &img_len);
	img[m[1]->loc.offset + m[1]->loc.length - 20] ^= 0x10; /* the middle message */
	write_file(seg, img, img_len);
	junk = path_of(dir, "seg-00-00000040.sl");
	memset(img, 0x5a, 5000);
	write_file(junk, img, 5000);
	sub = path_of(dir, "seg-00-00000041.sl");
	assert_int_equal(mkdir(sub, 0700), 0);

	o.dir = dir;
	assert_int_equal(sl_spool_open(&o, &sp, why, sizeof(why)), 0);
	assert_int_equal(sl_spool_recover(sp, got_fn, &g, log_fn, &st), 0);
	assert_int_equal(g.cnt, 2);
	assert_msg_same(m[0], g.m[0]);
	assert_msg_same(m[2], g.m[1]);
	assert_int_equal(st.damaged, 2); /* the record and the junk file */
	assert_int_equal(st.unreadable, 1);
	assert_int_equal(access(junk, F_OK), 0); /* not renamed */
	assert_int_equal(count_files(dir, ".damaged"), 0);
	/* both live messages finish: the damaged segment stays all the same */
	w = sl_spool_writer_get(sp, 0);
	for (size_t i = 0; i < g.cnt; i++)
		assert_int_equal(sl_spool_progress(w, &g.m[i]->loc, UINT32_MAX, SL_RCPT_DELIVERED),
				 0);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_int_equal(access(seg, F_OK), 0);
	got_free(&g);
	sl_spool_close(sp);

	/* again: nothing live, the damage reported again, the files still there */
	assert_int_equal(sl_spool_open(&o, &sp, why, sizeof(why)), 0);
	assert_int_equal(sl_spool_recover(sp, got_fn, &g, log_fn, &st), 0);
	assert_int_equal(g.cnt, 0);
	assert_int_equal(st.finished, 2);
	assert_int_equal(st.damaged, 2);
	assert_int_equal(st.unreadable, 1);
	assert_int_equal(access(seg, F_OK), 0);
	sl_spool_close(sp);

	/* an ordinary recovery removes the dead segment and renames the junk */
	sp = reopen("segment", dir, SEG_SMALL, 1, &g, &st);
	assert_int_equal(g.cnt, 0);
	assert_int_not_equal(access(seg, F_OK), 0);
	assert_int_not_equal(access(junk, F_OK), 0);
	assert_int_equal(count_files(dir, ".damaged"), 1);
	assert_int_equal(st.unreadable, 1);
	sl_spool_close(sp);
	rmdir(sub);
	sl_free(sub);
	sl_free(junk);
	sl_free(img);
	sl_free(seg);
	free_n(m, 3);
	tmp_dir_free(dir);
}

/* The ram backend: what no commit covered is gone after a close. */
static void
test_ram_crash(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("ram", dir, 0, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *a = make_msg(1, 100, 2), *b = make_msg(2, 100, 1), *r = NULL;
	struct got g = { 0 };

	assert_int_equal(sl_spool_append(w, a), 0);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_int_equal(sl_spool_append(w, b), 0);
	assert_int_equal(sl_spool_read(sp, &b->loc, &r), 0); /* readable before the commit */
	assert_msg_same(b, r);
	sl_msg_free(r);
	assert_int_equal(sl_spool_progress(w, &a->loc, 0, SL_RCPT_DELIVERED), 0);
	sl_spool_close(sp); /* a crash: b and the progress were not committed */
	sp = reopen("ram", dir, 0, 1, &g, NULL);
	assert_int_equal(g.cnt, 1);
	assert_msg_same(a, g.m[0]);
	assert_int_equal(g.m[0]->rcpts[0].status, SL_RCPT_PENDING);
	got_free(&g);
	sl_spool_close(sp);
	sl_msg_free(a);
	sl_msg_free(b);
	tmp_dir_free(dir);
}

/* ---- crash ordering: progress records outlive what they finish ---- */

static void
test_dependency_order(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, 16 * 1024, true, 1);
	struct sl_spool_writer *w = sl_spool_writer_get(sp, 0);
	struct sl_msg *a[4], *b[4], *filler[8];
	uint32_t s0, s1;
	struct got g = { 0 };

	/* S0 holds a[0..]; S1 holds b[0..] and the progress that finishes a[1..] */
	append_n(sp, 1, 4, 3000, 1, a);
	s0 = a[0]->loc.segment;
	for (int i = 1; i < 4; i++)
		if (a[i]->loc.segment == s0)
			assert_int_equal(sl_spool_progress(w, &a[i]->loc, 0, SL_RCPT_DELIVERED), 0);
	append_n(sp, 10, 4, 3000, 1, b);
	s1 = b[3]->loc.segment;
	assert_true(s1 > s0);
	/* fill on until S1 is sealed, then finish everything in S1 */
	append_n(sp, 20, 8, 3000, 1, filler);
	assert_true(filler[7]->loc.segment > s1);
	for (int i = 0; i < 4; i++)
		if (b[i]->loc.segment == s1)
			assert_int_equal(sl_spool_progress(w, &b[i]->loc, 0, SL_RCPT_DELIVERED), 0);
	for (int i = 0; i < 4; i++)
		if (a[i]->loc.segment == s1)
			assert_int_equal(sl_spool_progress(w, &a[i]->loc, 0, SL_RCPT_DELIVERED), 0);
	assert_int_equal(sl_spool_commit(w), 0);
	/* if S1 held progress for S0, S1 must stay while S0 (a[0] live) does */
	assert_true(seg_exists(dir, 0, s0));
	sl_spool_close(sp);
	sp = reopen("segment", dir, 16 * 1024, 1, &g, NULL);
	for (int i = 1; i < 4; i++)
		assert_null(got_find(&g, a[i]->qid)); /* never resurrected */
	assert_non_null(got_find(&g, a[0]->qid));
	/* finishing a[0] lets S0 go, then everything that waited for it */
	assert_int_equal(sl_spool_progress(w = sl_spool_writer_get(sp, 0),
					   &got_find(&g, a[0]->qid)->loc, 0, SL_RCPT_DELIVERED),
			 0);
	assert_int_equal(sl_spool_commit(w), 0);
	assert_false(seg_exists(dir, 0, s0));
	assert_false(seg_exists(dir, 0, s1));
	got_free(&g);
	sl_spool_close(sp);
	free_n(a, 4);
	free_n(b, 4);
	free_n(filler, 8);
	tmp_dir_free(dir);
}

/* ---- a run with more writers, recovered by fewer ---- */

static void
test_writer_cnt_change(void **state)
{
	char *dir = tmp_dir();
	struct sl_spool *sp = spool_open_ok("segment", dir, SEG_SMALL, true, 3);
	struct got g = { 0 };

	for (unsigned k = 0; k < 3; k++) {
		struct sl_spool_writer *w = sl_spool_writer_get(sp, k);

		for (unsigned i = 0; i < 5; i++) {
			struct sl_msg *m = make_msg(k * 10 + i, 500, 1);

			assert_int_equal(sl_spool_append(w, m), 0);
			sl_msg_free(m);
		}
		assert_int_equal(sl_spool_commit(w), 0);
	}
	sl_spool_close(sp);
	sp = reopen("segment", dir, SEG_SMALL, 2, &g, NULL);
	assert_int_equal(g.cnt, 15);
	for (size_t i = 0; i < g.cnt; i++) {
		unsigned owner = sl_spool_owner(sp, &g.m[i]->loc);

		assert_int_equal(owner, g.m[i]->loc.writer % 2);
		assert_int_equal(sl_spool_progress(sl_spool_writer_get(sp, owner), &g.m[i]->loc, 0,
						   SL_RCPT_DELIVERED),
				 0);
	}
	for (unsigned k = 0; k < 2; k++)
		assert_int_equal(sl_spool_commit(sl_spool_writer_get(sp, k)), 0);
	assert_int_equal(count_files(dir, ".sl"), 2); /* each writer's new segment of progress */
	got_free(&g);
	sl_spool_close(sp);
	sp = reopen("segment", dir, SEG_SMALL, 2, &g, NULL);
	assert_int_equal(g.cnt, 0);
	assert_int_equal(count_files(dir, ".sl"), 0);
	sl_spool_close(sp);
	tmp_dir_free(dir);
}

/* ---- writers, readers and stats on their own threads ---- */

#define TH_WRITERS 2
#define TH_MSGS    400
#define TH_SLOTS   64

struct th_slot {
	struct sl_spool_loc loc;
	unsigned seed;
	bool is_set;
};

struct th_ctx {
	struct sl_spool *sp;
	pthread_mutex_t mu; /* the test's own shared ring, not the spool's */
	struct th_slot slots[TH_SLOTS];
	unsigned writers_done; /* under mu */
	unsigned reads_ok, reads_gone, reads_bad;
};

struct th_writer {
	struct th_ctx *ctx;
	unsigned idx;
	int err;
};

static void *
th_writer_main(void *arg)
{
	struct th_writer *tw = arg;
	struct th_ctx *c = tw->ctx;
	struct sl_spool_writer *w = sl_spool_writer_get(c->sp, tw->idx);
	struct sl_spool_loc locs[TH_MSGS];

	for (unsigned i = 0; i < TH_MSGS && tw->err == 0; i++) {
		unsigned seed = tw->idx * 100000 + i;
		struct sl_msg *m = make_msg(seed, 1500 + (i % 7) * 1000, 1);

		tw->err = sl_spool_append(w, m);
		locs[i] = m->loc;
		sl_msg_free(m);
		if (tw->err == 0 && i % 10 == 9)
			tw->err = sl_spool_commit(w);
		if (tw->err == 0 && i % 10 == 9) {
			pthread_mutex_lock(&c->mu);
			c->slots[(tw->idx * TH_SLOTS / 2 + i / 10) % TH_SLOTS] =
				(struct th_slot){ locs[i], seed, true };
			pthread_mutex_unlock(&c->mu);
		}
		/* finish what is 50 messages old: segments come and go under the readers */
		if (tw->err == 0 && i >= 50)
			tw->err = sl_spool_progress(w, &locs[i - 50], 0, SL_RCPT_DELIVERED);
	}
	if (tw->err == 0)
		tw->err = sl_spool_commit(w);
	pthread_mutex_lock(&c->mu);
	c->writers_done++;
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void *
th_reader_main(void *arg)
{
	struct th_ctx *c = arg;
	unsigned seed = 99, done, reads = 0;

	do {
		struct th_slot s;
		struct sl_msg *r = NULL, *want;
		int err;

		pthread_mutex_lock(&c->mu);
		s = c->slots[(unsigned)rand_r(&seed) % TH_SLOTS];
		done = c->writers_done;
		pthread_mutex_unlock(&c->mu);
		if (!s.is_set)
			continue;
		reads++;
		err = sl_spool_read(c->sp, &s.loc, &r);
		if (err == -ENOENT) {
			__atomic_add_fetch(&c->reads_gone, 1, __ATOMIC_RELAXED);
			continue;
		}
		want = make_msg(s.seed, 1500 + (s.seed % TH_MSGS % 7) * 1000, 1);
		if (err == 0 && r->content_len == want->content_len &&
		    strcmp(r->sender, want->sender) == 0)
			__atomic_add_fetch(&c->reads_ok, 1, __ATOMIC_RELAXED);
		else
			__atomic_add_fetch(&c->reads_bad, 1, __ATOMIC_RELAXED);
		sl_msg_free(want);
		sl_msg_free(r);
	} while (done < TH_WRITERS || reads < 200); /* the newest messages stay live */
	return NULL;
}

static void *
th_stats_main(void *arg)
{
	struct th_ctx *c = arg;
	unsigned done;

	do {
		struct sl_spool_stats st;

		sl_spool_stats(c->sp, &st);
		pthread_mutex_lock(&c->mu);
		done = c->writers_done;
		pthread_mutex_unlock(&c->mu);
	} while (done < TH_WRITERS);
	return NULL;
}

static void
test_threads(void **state)
{
	static const char *const backends[] = { "segment", "ram" };

	for (size_t b = 0; b < SL_ARRAY_LEN(backends); b++) {
		char *dir = tmp_dir();
		struct th_ctx c = { .sp = spool_open_ok(backends[b], dir, 32 * 1024, true,
							TH_WRITERS) };
		struct th_writer tw[TH_WRITERS];
		pthread_t wt[TH_WRITERS], rt, st;
		struct sl_spool_stats ss;
		struct got g = { 0 };

		pthread_mutex_init(&c.mu, NULL);
		assert_int_equal(sl_spool_recover(c.sp, got_fn, &g, NULL, NULL), 0);
		for (unsigned i = 0; i < TH_WRITERS; i++) {
			tw[i] = (struct th_writer){ &c, i, 0 };
			pthread_create(&wt[i], NULL, th_writer_main, &tw[i]);
		}
		pthread_create(&rt, NULL, th_reader_main, &c);
		pthread_create(&st, NULL, th_stats_main, &c);
		for (unsigned i = 0; i < TH_WRITERS; i++)
			pthread_join(wt[i], NULL);
		pthread_join(rt, NULL);
		pthread_join(st, NULL);
		for (unsigned i = 0; i < TH_WRITERS; i++)
			assert_int_equal(tw[i].err, 0);
		assert_int_equal(c.reads_bad, 0);
		assert_true(c.reads_ok > 0);
		sl_spool_stats(c.sp, &ss);
		assert_int_equal(ss.appended, TH_WRITERS * TH_MSGS);
		assert_int_equal(ss.live_msgs, TH_WRITERS * 50);
		sl_spool_close(c.sp);
		c.sp = reopen(backends[b], dir, 32 * 1024, TH_WRITERS, &g, NULL);
		assert_int_equal(g.cnt, TH_WRITERS * 50);
		got_free(&g);
		sl_spool_close(c.sp);
		pthread_mutex_destroy(&c.mu);
		tmp_dir_free(dir);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_finish_removes_segment),
		cmocka_unit_test(test_progress_survives),
		cmocka_unit_test(test_torn_tail_every_offset),
		cmocka_unit_test(test_flipped_bits),
		cmocka_unit_test(test_random_damage),
		cmocka_unit_test(test_garbage_files),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_bad_opts),
		cmocka_unit_test(test_qid_unique_restart),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_sync_failure),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_compaction),
		cmocka_unit_test(test_compaction_crash),
		cmocka_unit_test(test_damaged_header),
		cmocka_unit_test(test_keep_damaged),
		cmocka_unit_test(test_ram_crash),
		cmocka_unit_test(test_dependency_order),
		cmocka_unit_test(test_writer_cnt_change),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
