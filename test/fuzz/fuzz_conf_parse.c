/*
 * test/fuzz/fuzz_conf_parse.c - libFuzzer harness for the configuration parser.
 *
 * Feeds each input to sl_conf_parse_buffer() with an empty temporary
 * directory as base_dir (so relative includes fail cleanly), then checks the
 * contract: a tree xor exactly one diagnostic (the parse stops at the first
 * error), every diagnostic one line with a position inside the input, every
 * node with a position and NUL-terminated text of the stated length.  Build
 * and run with test/fuzz/run.sh.
 *
 * Threads: one (libFuzzer's).  Parses untrusted input: that is the point.
 * Ownership: each run frees its tree and diagnostics; the temporary
 * directory is made once and removed at exit.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_tree.h"
#include "engine/alloc.h"

#define FUZZ_NAME "fuzz.conf"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void sl__assert_fail(const char *expr, const char *file, int line, const char *func);

static char fuzz_dir[] = "/tmp/sl-fuzz-conf-XXXXXX";

/*
 * The harness links only the parser's sources; the daemon's real handler
 * lives in the engine.  Weak, so a build that links the engine keeps its own.
 */
__attribute__((weak, noreturn)) void
sl__assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func, expr);
	abort();
}

static void
fuzz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

static void
fuzz_check_loc(const struct sl_conf_loc *loc)
{
	fuzz_check(loc->file != NULL && loc->line >= 1 && loc->col >= 1, "node position");
}

static void
fuzz_check_text(const char *text, size_t len)
{
	fuzz_check(text != NULL && strlen(text) == len, "text length");
}

static void fuzz_check_value(const struct sl_conf_value *v, unsigned depth, bool is_stanza_value);

static void
fuzz_check_pairs(const struct sl_conf_pair *pairs, size_t cnt, unsigned depth)
{
	fuzz_check(cnt == 0 || pairs != NULL, "pair array");
	for (size_t i = 0; i < cnt; i++) {
		fuzz_check_loc(&pairs[i].loc);
		fuzz_check(pairs[i].key != NULL, "pair key");
		fuzz_check_value(&pairs[i].value, depth + 1, false);
	}
}

/*
 * Recursion is bounded by the parser's own nesting limit, checked here too.
 * A [ key = value ] bracket is only ever a stanza's value.
 */
static void
fuzz_check_value(const struct sl_conf_value *v, unsigned depth, bool is_stanza_value)
{
	fuzz_check(depth <= SL_CONF_MAX_NEST_DEPTH + 1, "nesting depth");
	fuzz_check_loc(&v->loc);
	switch (v->kind) {
	case SL_CONF_WORD:
	case SL_CONF_STRING:
		fuzz_check_text(v->text, v->text_len);
		fuzz_check(v->kind == SL_CONF_STRING || v->text_len > 0, "empty word");
		break;
	case SL_CONF_LIST:
		fuzz_check(v->item_cnt == 0 || v->items != NULL, "item array");
		for (size_t i = 0; i < v->item_cnt; i++) {
			const struct sl_conf_item *it = &v->items[i];

			fuzz_check_loc(&it->loc);
			fuzz_check(it->text != NULL, "item text");
			fuzz_check(it->has_attrs || it->attr_cnt == 0, "attrs flag");
			fuzz_check(it->has_params || it->param_cnt == 0, "params flag");
			fuzz_check_pairs(it->attrs, it->attr_cnt, depth + 1);
			fuzz_check_pairs(it->params, it->param_cnt, depth + 1);
		}
		break;
	case SL_CONF_PAIRS:
		fuzz_check(is_stanza_value && v->text == NULL, "bracket value");
		fuzz_check_pairs(v->pairs, v->pair_cnt, depth);
		break;
	default:
		fuzz_check(0, "value kind");
	}
}

static void
fuzz_check_stanzas(const struct sl_conf_stanza *s, size_t cnt, unsigned depth)
{
	fuzz_check(depth <= SL_CONF_MAX_NEST_DEPTH, "block depth");
	fuzz_check(cnt == 0 || s != NULL, "stanza array");
	for (size_t i = 0; i < cnt; i++) {
		fuzz_check_loc(&s[i].loc);
		fuzz_check(s[i].name != NULL && s[i].name[0] != '\0', "stanza name");
		if (s[i].kind == SL_CONF_ASSIGN) {
			fuzz_check_value(&s[i].value, depth, true);
			continue;
		}
		fuzz_check(s[i].kind == SL_CONF_BLOCK, "stanza kind");
		for (size_t a = 0; a < s[i].arg_cnt; a++) {
			fuzz_check(s[i].args[a].kind != SL_CONF_LIST, "block arg kind");
			fuzz_check_value(&s[i].args[a], depth, false);
		}
		fuzz_check_pairs(s[i].attrs, s[i].attr_cnt, depth);
		fuzz_check_stanzas(s[i].children, s[i].child_cnt, depth + 1);
	}
}

static void
fuzz_cleanup(void)
{
	rmdir(fuzz_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (mkdtemp(fuzz_dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	atexit(fuzz_cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sl_conf_errors errs = { 0 };
	struct sl_conf_tree *tree;

	tree = sl_conf_parse_buffer(FUZZ_NAME, fuzz_dir, (const char *)data, size, &errs);
	if (tree != NULL) {
		fuzz_check(errs.cnt == 0, "tree and errors");
		fuzz_check_stanzas(tree->stanzas, tree->stanza_cnt, 0);
		for (size_t i = 0; i < tree->file_cnt; i++)
			fuzz_check(tree->files[i] != NULL, "file name");
	} else {
		const struct sl_conf_error *e = &errs.list[0];

		fuzz_check(errs.cnt == 1, "exactly one error");
		fuzz_check(e->msg != NULL && strchr(e->msg, '\n') == NULL, "one-line message");
		/* An error in the input itself points inside it (or just past its end). */
		if (e->file != NULL && strcmp(e->file, FUZZ_NAME) == 0)
			fuzz_check(e->line >= 1 && e->col >= 1 && e->line <= size + 1 &&
					   e->col <= size + 1,
				   "error position");
	}
	sl_conf_tree_free(tree);
	sl_conf_errors_clear(&errs);
	return 0;
}
