/*
 * conf/conf_parse.c - recursive-descent parser for ecelerity.conf (see conf_tree.h).
 *
 * Reads a file (or a buffer), follows `include` statements into files,
 * file:// URIs and directories, and builds one tree whose nodes keep the
 * text as written and the file:line:col where it was written.  The parse
 * stops at the first error, which is reported with its position and a short
 * reason; nothing is half-built for the caller to see.
 *
 * Threads: the config thread (start-up, reload, `sluiced -t`).
 * Parses untrusted input: configuration text.  Every recursion is bounded:
 * brackets and blocks by SL_CONF_MAX_NEST_DEPTH, includes by
 * SL_CONF_MAX_INCLUDE_DEPTH, and the work by SL_CONF_MAX_FILES and
 * SL_CONF_MAX_TOTAL_LEN (SL_CONF_MAX_FILE_LEN per file).
 * Ownership: every node, string and file name lives in the tree's arena;
 * the arrays are collected in heap vectors while a construct is open and
 * copied into the arena when it closes, so a failed parse frees the vectors
 * on its way out and the tree (with its arena) in one call.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "conf/conf_lex.h"
#include "conf/conf_tree.h"
#include "engine/alloc.h"
#include "engine/assert.h"

/* Bytes of a quoted path or name in a diagnostic. */
#define PARSE_QUOTE_LEN 160
/* Bytes of the include chain shown in an include-loop diagnostic. */
#define PARSE_CHAIN_LEN 1024

/* A growable array on the heap, copied into the arena when complete. */
struct parse_vec {
	char *data; /* owned: cnt elements of elem_len bytes */
	size_t cnt;
	size_t cap;
	size_t elem_len;
};

/* One file (or the buffer) on the include stack, outermost first. */
struct parse_frame {
	const char *name;               /* as opened (arena) */
	bool has_id;                    /* false for a buffer: it has no inode */
	dev_t dev;                      /* identity, to find include loops */
	ino_t ino;                      /* (dev, ino) names one file however it was reached */
	struct sl_conf_loc include_loc; /* the include this file is running now */
};

/* Everything one sl_conf_parse_* call shares. */
struct parse_state {
	struct sl_conf_tree *tree;   /* being built; owns the arena */
	struct sl_conf_errors *errs; /* borrowed */
	struct parse_vec files;      /* const char *, names in the arena */
	size_t total_len;            /* bytes read so far, all files */
	struct parse_frame stack[SL_CONF_MAX_INCLUDE_DEPTH + 1];
	size_t stack_cnt;
};

/* Parsing one file's text. */
struct parse_ctx {
	struct parse_state *st;
	struct sl_conf_lexer lx;
	struct sl_conf_token tok; /* the current token */
	const char *dir;          /* relative includes resolve here; "" = cwd */
};

static int parse_stanzas(struct parse_ctx *ctx, struct parse_vec *out, unsigned depth,
			 const struct sl_conf_token *opener);
static int parse_value(struct parse_ctx *ctx, struct sl_conf_value *value, bool may_nest,
		       unsigned depth, const char *name, const struct sl_conf_loc *eq_loc);
static int parse_path(struct parse_state *st, const char *path, const struct sl_conf_loc *loc,
		      struct parse_vec *out, unsigned depth);

static void *
parse_vec_push(struct parse_vec *v)
{
	void *slot;

	if (v->cnt == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 8;
		v->data = sl_reallocarray(v->data, v->cap, v->elem_len);
	}
	slot = v->data + v->cnt * v->elem_len;
	v->cnt++;
	memset(slot, 0, v->elem_len);
	return slot;
}

/* Move the elements into the arena (NULL when empty) and free the heap copy. */
static void *
parse_vec_finish(struct parse_vec *v, struct sl_arena *arena, size_t *cnt)
{
	void *arr = NULL;

	if (v->cnt > 0)
		arr = sl_arena_memdup(arena, v->data, v->cnt, v->elem_len);
	*cnt = v->cnt;
	sl_free(v->data);
	v->data = NULL;
	v->cnt = v->cap = 0;
	return arr;
}

static void
parse_vec_free(struct parse_vec *v)
{
	sl_free(v->data);
	v->data = NULL;
	v->cnt = v->cap = 0;
}

static const char *
parse_quote(const char *text, char *out, size_t out_len)
{
	return sl_conf_lex_quote(text, strlen(text), '\'', out, out_len);
}

static int
parse_next(struct parse_ctx *ctx)
{
	return sl_conf_lex_next(&ctx->lx, &ctx->tok);
}

/* "unexpected X" at the current token, with an optional explanation. */
static void
parse_unexpected(struct parse_ctx *ctx, const char *why)
{
	char what[64];

	sl_conf_tok_describe(&ctx->tok, what, sizeof(what));
	sl_conf_error_add(ctx->st->errs, &ctx->tok.loc, "unexpected %s%s", what, why);
}

/* The construct opened at `opener` reached the end of the file. */
static void
parse_unclosed(struct parse_ctx *ctx, const struct sl_conf_token *opener)
{
	sl_conf_error_add(ctx->st->errs, &opener->loc, "'%s' is never closed",
			  sl_conf_tok_name(opener->kind));
}

/* A wrong token where `closer` (or more content) was expected. */
static void
parse_expected_closer(struct parse_ctx *ctx, const struct sl_conf_token *opener,
		      enum sl_conf_tok closer)
{
	char what[64];

	if (ctx->tok.kind == SL_CONF_TOK_EOF) {
		parse_unclosed(ctx, opener);
	} else {
		sl_conf_tok_describe(&ctx->tok, what, sizeof(what));
		sl_conf_error_add(ctx->st->errs, &ctx->tok.loc,
				  "expected '%s' for the '%s' at %u:%u, got %s",
				  sl_conf_tok_name(closer), sl_conf_tok_name(opener->kind),
				  opener->loc.line, opener->loc.col, what);
	}
}

/* Opening one more ( [ < { at the current token: is it within the limit? */
static int
parse_enter(struct parse_ctx *ctx, unsigned depth)
{
	bool is_too_deep = depth + 1 > SL_CONF_MAX_NEST_DEPTH;

	if (is_too_deep)
		sl_conf_error_add(ctx->st->errs, &ctx->tok.loc, "nested deeper than %u levels",
				  SL_CONF_MAX_NEST_DEPTH);
	return is_too_deep ? -1 : 0;
}

/*
 * pair* up to `closer`, the current token being the opener ('<' or '[').
 * On success the closer is consumed and the pairs are in the arena.
 */
static int
parse_pairs(struct parse_ctx *ctx, enum sl_conf_tok closer, bool is_item_params, unsigned depth,
	    struct sl_conf_pair **pairs, size_t *pair_cnt)
{
	struct sl_conf_token opener = ctx->tok;
	struct parse_vec vec = { .elem_len = sizeof(struct sl_conf_pair) };
	struct sl_conf_pair pair;
	struct sl_conf_loc eq_loc;
	char key[64];
	char what[64];
	int rc = -1;

	if (parse_enter(ctx, depth) < 0 || parse_next(ctx) < 0)
		goto fail_pairs;
	while (ctx->tok.kind != closer) {
		if (ctx->tok.kind == SL_CONF_TOK_EQUALS) {
			sl_conf_error_add(ctx->st->errs, &ctx->tok.loc, "'=' without a name");
			goto fail_pairs;
		}
		if (ctx->tok.kind != SL_CONF_TOK_WORD && ctx->tok.kind != SL_CONF_TOK_STRING) {
			parse_expected_closer(ctx, &opener, closer);
			goto fail_pairs;
		}
		memset(&pair, 0, sizeof(pair));
		pair.loc = ctx->tok.loc;
		pair.key = ctx->tok.text;
		pair.key_is_string = ctx->tok.kind == SL_CONF_TOK_STRING;
		if (parse_next(ctx) < 0)
			goto fail_pairs;
		if (ctx->tok.kind != SL_CONF_TOK_EQUALS) {
			if (ctx->tok.kind == SL_CONF_TOK_EOF) {
				parse_unclosed(ctx, &opener);
			} else {
				sl_conf_error_add(
					ctx->st->errs, &ctx->tok.loc,
					"expected '=' after %s, got %s",
					parse_quote(pair.key, key, sizeof(key)),
					sl_conf_tok_describe(&ctx->tok, what, sizeof(what)));
			}
			goto fail_pairs;
		}
		eq_loc = ctx->tok.loc;
		if (parse_next(ctx) < 0 ||
		    parse_value(ctx, &pair.value, is_item_params, depth + 1, pair.key, &eq_loc) < 0)
			goto fail_pairs;
		*(struct sl_conf_pair *)parse_vec_push(&vec) = pair;
	}
	if (parse_next(ctx) < 0)
		goto fail_pairs;
	*pairs = parse_vec_finish(&vec, &ctx->st->tree->arena, pair_cnt);
	rc = 0;
fail_pairs:
	parse_vec_free(&vec);
	return rc;
}

static int parse_list(struct parse_ctx *ctx, unsigned depth, struct sl_conf_value *value,
		      bool may_nest);

/*
 * item := (WORD | STRING) attrs? bracket? sublist?  The current token is the
 * word or string.  A sublist (`relay_hosts ( 1.2.3.4 10.0.0.0/24 )`, the
 * reference's option-in-an-ACL-entry form) only where `may_list`: in the
 * list that is a value inside an item's [ ], i.e. an ACL entry's.
 */
static int
parse_item(struct parse_ctx *ctx, unsigned depth, struct parse_vec *items, bool may_list)
{
	struct sl_conf_item item;
	int rc = -1;

	memset(&item, 0, sizeof(item));
	item.loc = ctx->tok.loc;
	item.text = ctx->tok.text;
	item.is_string = ctx->tok.kind == SL_CONF_TOK_STRING;
	if (parse_next(ctx) < 0)
		goto fail_item;
	if (ctx->tok.kind == SL_CONF_TOK_LANGLE) {
		item.has_attrs = true;
		if (parse_pairs(ctx, SL_CONF_TOK_RANGLE, false, depth, &item.attrs,
				&item.attr_cnt) < 0)
			goto fail_item;
	}
	if (ctx->tok.kind == SL_CONF_TOK_LBRACKET) {
		item.has_params = true;
		if (parse_pairs(ctx, SL_CONF_TOK_RBRACKET, true, depth, &item.params,
				&item.param_cnt) < 0)
			goto fail_item;
	}
	if (may_list && ctx->tok.kind == SL_CONF_TOK_LPAREN) {
		item.list = sl_arena_alloc(&ctx->st->tree->arena, sizeof(*item.list));
		if (parse_list(ctx, depth, item.list, false) < 0)
			goto fail_item;
	}
	*(struct sl_conf_item *)parse_vec_push(items) = item;
	rc = 0;
fail_item:
	return rc;
}

/* list := '(' item* ')'  The current token is the '('. */
static int
parse_list(struct parse_ctx *ctx, unsigned depth, struct sl_conf_value *value, bool may_nest)
{
	struct sl_conf_token opener = ctx->tok;
	struct parse_vec items = { .elem_len = sizeof(struct sl_conf_item) };
	int rc = -1;

	if (parse_enter(ctx, depth) < 0 || parse_next(ctx) < 0)
		goto fail_list;
	while (ctx->tok.kind != SL_CONF_TOK_RPAREN) {
		if (ctx->tok.kind != SL_CONF_TOK_WORD && ctx->tok.kind != SL_CONF_TOK_STRING) {
			parse_expected_closer(ctx, &opener, SL_CONF_TOK_RPAREN);
			goto fail_list;
		}
		if (parse_item(ctx, depth + 1, &items, may_nest) < 0)
			goto fail_list;
	}
	if (parse_next(ctx) < 0)
		goto fail_list;
	value->kind = SL_CONF_LIST;
	value->loc = opener.loc;
	value->items = parse_vec_finish(&items, &ctx->st->tree->arena, &value->item_cnt);
	rc = 0;
fail_list:
	parse_vec_free(&items);
	return rc;
}

/*
 * value := WORD | STRING | list, after `name =` (the '=' at
 * eq_loc).  A word on a later line followed by another '=' is really the
 * next name (`Foo =` then `Bar = 1`): report the missing value at the '=' of
 * Foo rather than a puzzling '=' without a name on the next line.
 */
static int
parse_value(struct parse_ctx *ctx, struct sl_conf_value *value, bool may_nest, unsigned depth,
	    const char *name, const struct sl_conf_loc *eq_loc)
{
	char quoted[PARSE_QUOTE_LEN];
	bool is_missing = false;
	int rc = -1;

	memset(value, 0, sizeof(*value));
	switch (ctx->tok.kind) {
	case SL_CONF_TOK_WORD:
	case SL_CONF_TOK_STRING:
		value->kind = ctx->tok.kind == SL_CONF_TOK_WORD ? SL_CONF_WORD : SL_CONF_STRING;
		value->loc = ctx->tok.loc;
		value->text = ctx->tok.text;
		value->text_len = ctx->tok.text_len;
		if (parse_next(ctx) < 0)
			break;
		is_missing = ctx->tok.kind == SL_CONF_TOK_EQUALS && value->loc.line != eq_loc->line;
		rc = is_missing ? -1 : 0;
		break;
	case SL_CONF_TOK_LPAREN:
		rc = parse_list(ctx, depth, value, may_nest);
		break;
	case SL_CONF_TOK_LBRACKET:
		sl_conf_error_add(ctx->st->errs, &ctx->tok.loc,
				  "unexpected '[' after %s = (only an option's value can be "
				  "[ key = value ... ])",
				  parse_quote(name, quoted, sizeof(quoted)));
		break;
	case SL_CONF_TOK_ERROR:
		break;
	default:
		is_missing = true;
		break;
	}
	if (is_missing)
		sl_conf_error_add(ctx->st->errs, eq_loc, "missing value after %s =",
				  parse_quote(name, quoted, sizeof(quoted)));
	return rc;
}

/*
 * An option's value written as a bracket, the current token being the '[':
 * custom_classes = [ 99 = "x" ], Trap_Destination [ Port = 162 ].  Only a
 * stanza's value may be one; inside lists and brackets '[' follows an item.
 */
static int
parse_bracket_value(struct parse_ctx *ctx, unsigned depth, struct sl_conf_value *value)
{
	memset(value, 0, sizeof(*value));
	value->kind = SL_CONF_PAIRS;
	value->loc = ctx->tok.loc;
	return parse_pairs(ctx, SL_CONF_TOK_RBRACKET, false, depth, &value->pairs,
			   &value->pair_cnt);
}

/*
 * NAME arg* attrs? '{' stanza* '}'.  The current token is the first thing
 * after the name.  Fills the block fields of `s`.
 */
static int
parse_block(struct parse_ctx *ctx, unsigned depth, struct sl_conf_stanza *s)
{
	struct parse_vec args = { .elem_len = sizeof(struct sl_conf_value) };
	struct parse_vec children = { .elem_len = sizeof(struct sl_conf_stanza) };
	struct sl_conf_token opener;
	char quoted[PARSE_QUOTE_LEN];
	char what[64];
	int rc = -1;

	while (ctx->tok.kind == SL_CONF_TOK_WORD || ctx->tok.kind == SL_CONF_TOK_STRING) {
		struct sl_conf_value *arg = parse_vec_push(&args);

		arg->kind = ctx->tok.kind == SL_CONF_TOK_WORD ? SL_CONF_WORD : SL_CONF_STRING;
		arg->loc = ctx->tok.loc;
		arg->text = ctx->tok.text;
		arg->text_len = ctx->tok.text_len;
		if (parse_next(ctx) < 0)
			goto fail_block;
	}
	/*
	 * `Foo` then `Bar = 1`: the words after the name were the next stanza.
	 * With one word, Foo itself lacks its '='; with more, the last word
	 * is the name of the next stanza and the block lacks its '{'.
	 */
	if (ctx->tok.kind == SL_CONF_TOK_EQUALS && args.cnt > 0) {
		const struct sl_conf_value *last =
			(const struct sl_conf_value *)args.data + (args.cnt - 1);

		if (args.cnt == 1)
			sl_conf_error_add(ctx->st->errs, &last->loc, "expected '=' or '{' after %s",
					  parse_quote(s->name, quoted, sizeof(quoted)));
		else
			sl_conf_error_add(ctx->st->errs, &last->loc,
					  "expected '{' to open block %s before %s",
					  parse_quote(s->name, quoted, sizeof(quoted)),
					  sl_conf_lex_quote(last->text, last->text_len, '\'', what,
							    sizeof(what)));
		goto fail_block;
	}
	if (ctx->tok.kind == SL_CONF_TOK_LANGLE &&
	    parse_pairs(ctx, SL_CONF_TOK_RANGLE, false, depth, &s->attrs, &s->attr_cnt) < 0)
		goto fail_block;
	if (ctx->tok.kind != SL_CONF_TOK_LBRACE) {
		sl_conf_error_add(ctx->st->errs, &ctx->tok.loc,
				  "expected '{' to open block %s, got %s",
				  parse_quote(s->name, quoted, sizeof(quoted)),
				  sl_conf_tok_describe(&ctx->tok, what, sizeof(what)));
		goto fail_block;
	}
	opener = ctx->tok;
	if (parse_enter(ctx, depth) < 0 || parse_next(ctx) < 0 ||
	    parse_stanzas(ctx, &children, depth + 1, &opener) < 0 || parse_next(ctx) < 0)
		goto fail_block;
	s->kind = SL_CONF_BLOCK;
	s->args = parse_vec_finish(&args, &ctx->st->tree->arena, &s->arg_cnt);
	s->children = parse_vec_finish(&children, &ctx->st->tree->arena, &s->child_cnt);
	rc = 0;
fail_block:
	parse_vec_free(&children);
	parse_vec_free(&args);
	return rc;
}

/* One stanza that starts with a name (the current token, a WORD). */
static int
parse_stanza(struct parse_ctx *ctx, unsigned depth, struct parse_vec *out)
{
	struct sl_conf_stanza s;
	struct sl_conf_loc eq_loc;
	char quoted[PARSE_QUOTE_LEN];
	int rc = -1;

	memset(&s, 0, sizeof(s));
	s.loc = ctx->tok.loc;
	s.name = ctx->tok.text;
	if (parse_next(ctx) < 0)
		goto fail_stanza;
	switch (ctx->tok.kind) {
	case SL_CONF_TOK_EQUALS:
		s.kind = SL_CONF_ASSIGN;
		eq_loc = ctx->tok.loc;
		if (parse_next(ctx) < 0)
			goto fail_stanza;
		if (ctx->tok.kind == SL_CONF_TOK_LBRACKET) {
			if (parse_bracket_value(ctx, depth, &s.value) < 0)
				goto fail_stanza;
		} else if (parse_value(ctx, &s.value, false, depth, s.name, &eq_loc) < 0) {
			goto fail_stanza;
		}
		break;
	case SL_CONF_TOK_LBRACKET:
		/* Trap_Destination [ ... ]: the same as Trap_Destination = [ ... ]. */
		s.kind = SL_CONF_ASSIGN;
		if (parse_bracket_value(ctx, depth, &s.value) < 0)
			goto fail_stanza;
		break;
	case SL_CONF_TOK_WORD:
	case SL_CONF_TOK_STRING:
	case SL_CONF_TOK_LANGLE:
	case SL_CONF_TOK_LBRACE:
		if (parse_block(ctx, depth, &s) < 0)
			goto fail_stanza;
		break;
	default:
		sl_conf_error_add(ctx->st->errs, &ctx->tok.loc, "expected '=' or '{' after %s",
				  parse_quote(s.name, quoted, sizeof(quoted)));
		goto fail_stanza;
	}
	*(struct sl_conf_stanza *)parse_vec_push(out) = s;
	rc = 0;
fail_stanza:
	return rc;
}

/*
 * Report "<what> '<path>': <detail>" at the include statement `loc`, or with
 * no position for the top-level file (the message names it).
 */
static void
parse_fail_path(struct parse_state *st, const struct sl_conf_loc *loc, const char *what,
		const char *path, const char *detail)
{
	char quoted[PARSE_QUOTE_LEN];
	struct sl_conf_loc none = { NULL, 0, 0 };

	sl_conf_error_add(st->errs, loc != NULL ? loc : &none, "%s %s: %s", what,
			  parse_quote(path, quoted, sizeof(quoted)), detail);
}

static const char *
parse_join(struct sl_arena *arena, const char *dir, const char *path)
{
	size_t dir_len = strlen(dir);
	size_t path_len = strlen(path);
	char *joined;

	if (path[0] == '/' || dir_len == 0) {
		joined = sl_arena_strndup(arena, path, path_len);
	} else {
		joined = sl_arena_alloc(arena, dir_len + 1 + path_len + 1);
		memcpy(joined, dir, dir_len);
		if (dir[dir_len - 1] != '/')
			joined[dir_len++] = '/';
		memcpy(joined + dir_len, path, path_len + 1);
	}
	return joined;
}

/* The directory part of `path`: "" for a bare name (the current directory). */
static const char *
parse_dirname(struct sl_arena *arena, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dir = "";

	if (slash == path)
		dir = "/";
	else if (slash != NULL)
		dir = sl_arena_strndup(arena, path, (size_t)(slash - path));
	return dir;
}

static bool
parse_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Length of a URI scheme followed by "://" at the start of `text`, else 0. */
static size_t
parse_scheme_len(const char *text)
{
	size_t len = 0;

	if (parse_is_alpha(text[0])) {
		while (parse_is_alpha(text[len]) || (text[len] >= '0' && text[len] <= '9') ||
		       text[len] == '+' || text[len] == '-' || text[len] == '.')
			len++;
	}
	return len > 0 && strncmp(text + len, "://", 3) == 0 ? len : 0;
}

/*
 * Turn an include target into a path to open: file:// URIs become their
 * absolute path, relative paths are joined to `dir`, other schemes are
 * refused.  The message names the scheme only: URIs such as eccmgr:// carry
 * credentials, which never go into a diagnostic.
 */
static int
parse_resolve(struct parse_state *st, const char *text, const char *dir,
	      const struct sl_conf_loc *loc, const char **path)
{
	size_t scheme_len = parse_scheme_len(text);
	struct sl_conf_loc none = { NULL, 0, 0 };
	const char *rest;
	int rc = -1;

	if (loc == NULL)
		loc = &none;
	if (text[0] == '\0') {
		sl_conf_error_add(st->errs, loc, "empty include path");
	} else if (scheme_len == 0) {
		*path = parse_join(&st->tree->arena, dir, text);
		rc = 0;
	} else if (scheme_len != 4 || strncasecmp(text, "file", 4) != 0) {
		sl_conf_error_add(st->errs, loc,
				  "unsupported include scheme '%.*s' (only files, directories and "
				  "file:// URIs can be included)",
				  scheme_len > 32 ? 32 : (int)scheme_len, text);
	} else {
		rest = text + scheme_len + 3; /* past "file://" */
		if (strncasecmp(rest, "localhost/", 10) == 0)
			rest += 9;
		if (rest[0] == '/') {
			*path = sl_arena_strdup(&st->tree->arena, rest);
			rc = 0;
		} else {
			sl_conf_error_add(st->errs, loc,
					  "file:// URI must name an absolute local path "
					  "(file:///path)");
		}
	}
	return rc;
}

/* Read all of `fd` into a new heap buffer, at most SL_CONF_MAX_FILE_LEN bytes. */
static int
parse_read_fd(struct parse_state *st, int fd, const struct stat *sb, const char *name,
	      const struct sl_conf_loc *loc, char **text, size_t *text_len)
{
	size_t cap = (size_t)sb->st_size + 1;
	size_t len = 0;
	char *buf = sl_malloc(cap);
	char detail[64];
	int rc = 1; /* still reading */

	while (rc > 0) {
		ssize_t n;

		if (len == cap) {
			cap = cap > SL_CONF_MAX_FILE_LEN / 2 ? SL_CONF_MAX_FILE_LEN + 1u : cap * 2;
			buf = sl_realloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			parse_fail_path(st, loc, "cannot read", name, strerror(errno));
			rc = -1;
		} else if (n == 0) {
			rc = 0;
		} else if ((len += (size_t)n) > SL_CONF_MAX_FILE_LEN) {
			snprintf(detail, sizeof(detail), "over the limit of %u bytes",
				 SL_CONF_MAX_FILE_LEN);
			parse_fail_path(st, loc, "cannot read", name, detail);
			rc = -1;
		}
	}
	if (rc < 0) {
		sl_free(buf);
		buf = NULL;
		len = 0;
	}
	*text = buf;
	*text_len = len;
	return rc;
}

/* Write "'a' -> 'b' -> 'a'" for the frames from `first` on, then `name`. */
static void
parse_format_chain(const struct parse_state *st, size_t first, const char *name, char *out,
		   size_t out_len)
{
	char quoted[PARSE_QUOTE_LEN];
	size_t pos = 0;

	out[0] = '\0';
	for (size_t i = first; i <= st->stack_cnt && pos + 1 < out_len; i++) {
		const char *n = i < st->stack_cnt ? st->stack[i].name : name;
		int w = snprintf(out + pos, out_len - pos, "%s%s", i > first ? " -> " : "",
				 parse_quote(n, quoted, sizeof(quoted)));

		if (w < 0 || (size_t)w >= out_len - pos)
			break;
		pos += (size_t)w;
	}
}

/* Parse `len` bytes of `text` named `name`, appending its stanzas to `out`. */
static int
parse_text(struct parse_state *st, const char *name, const char *dir, const char *text, size_t len,
	   struct parse_vec *out, unsigned depth)
{
	struct parse_ctx ctx;
	int rc = -1;

	memset(&ctx, 0, sizeof(ctx));
	ctx.st = st;
	ctx.dir = dir;
	if (sl_conf_lex_init(&ctx.lx, name, text, len, &st->tree->arena, st->errs) == 0 &&
	    parse_next(&ctx) == 0)
		rc = parse_stanzas(&ctx, out, depth, NULL);
	return rc;
}

/*
 * Parse the regular file open on `fd` (identity in `sb`) as `name`, checking
 * for include loops and every limit first.  `loc` is the include statement
 * (NULL for the top-level file).
 */
static int
parse_file_fd(struct parse_state *st, int fd, const struct stat *sb, const char *name,
	      const struct sl_conf_loc *loc, struct parse_vec *out, unsigned depth)
{
	struct parse_frame *frame;
	char *text = NULL;
	size_t text_len = 0;
	const char *stored;
	char detail[64];
	int rc = -1;

	for (size_t i = 0; i < st->stack_cnt; i++) {
		char chain[PARSE_CHAIN_LEN];
		char closer[PARSE_QUOTE_LEN];

		if (!st->stack[i].has_id || st->stack[i].dev != sb->st_dev ||
		    st->stack[i].ino != sb->st_ino)
			continue;
		/*
		 * Reported where the loop starts, in the outermost file that
		 * repeats; the chain and the position of the closing include say
		 * the rest.
		 */
		SL_ASSERT(loc != NULL);
		parse_format_chain(st, i, name, chain, sizeof(chain));
		sl_conf_error_add(
			st->errs, &st->stack[i].include_loc,
			"include loop: %s (closed by the include at %u:%u in %s)", chain, loc->line,
			loc->col,
			parse_quote(st->stack[st->stack_cnt - 1].name, closer, sizeof(closer)));
		goto fail_file;
	}
	if (st->stack_cnt > SL_CONF_MAX_INCLUDE_DEPTH) {
		snprintf(detail, sizeof(detail), "includes nested deeper than %u files",
			 SL_CONF_MAX_INCLUDE_DEPTH);
		parse_fail_path(st, loc, "cannot include", name, detail);
		goto fail_file;
	}
	if (st->files.cnt >= SL_CONF_MAX_FILES) {
		snprintf(detail, sizeof(detail), "over the limit of %u files read",
			 SL_CONF_MAX_FILES);
		parse_fail_path(st, loc, "cannot include", name, detail);
		goto fail_file;
	}
	if ((size_t)sb->st_size > SL_CONF_MAX_FILE_LEN) {
		snprintf(detail, sizeof(detail), "over the limit of %u bytes",
			 SL_CONF_MAX_FILE_LEN);
		parse_fail_path(st, loc, "cannot read", name, detail);
		goto fail_file;
	}
	if (parse_read_fd(st, fd, sb, name, loc, &text, &text_len) < 0)
		goto fail_file;
	if (st->total_len + text_len > SL_CONF_MAX_TOTAL_LEN) {
		snprintf(detail, sizeof(detail), "over the limit of %u bytes read in all",
			 SL_CONF_MAX_TOTAL_LEN);
		parse_fail_path(st, loc, "cannot include", name, detail);
		goto fail_read;
	}
	st->total_len += text_len;
	stored = sl_arena_strdup(&st->tree->arena, name);
	*(const char **)parse_vec_push(&st->files) = stored;

	frame = &st->stack[st->stack_cnt++];
	memset(frame, 0, sizeof(*frame));
	frame->name = stored;
	frame->has_id = true;
	frame->dev = sb->st_dev;
	frame->ino = sb->st_ino;
	rc = parse_text(st, stored, parse_dirname(&st->tree->arena, stored), text, text_len, out,
			depth);
	st->stack_cnt--;
fail_read:
	sl_free(text);
fail_file:
	return rc;
}

static int
parse_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Open the regular file `name` in `dir` (`full` for messages) and parse it. */
static int
parse_dir_entry(struct parse_state *st, DIR *dir, const char *name, const char *full,
		const struct sl_conf_loc *loc, struct parse_vec *out, unsigned depth)
{
	struct stat sb;
	int fd = openat(dirfd(dir), name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int rc = -1;

	if (fd < 0) {
		parse_fail_path(st, loc, "cannot include", full, strerror(errno));
		goto fail_open;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		parse_fail_path(st, loc, "cannot include", full, "not a regular file");
		goto fail_stat;
	}
	rc = parse_file_fd(st, fd, &sb, full, loc, out, depth);
fail_stat:
	close(fd);
fail_open:
	return rc;
}

/*
 * Include every regular file in the directory open on `fd`, in strcmp()
 * order (never the locale's), skipping hidden names and sub-directories as
 * Momentum does.
 */
static int
parse_dir(struct parse_state *st, int fd, const char *path, const struct sl_conf_loc *loc,
	  struct parse_vec *out, unsigned depth)
{
	struct parse_vec names = { .elem_len = sizeof(char *) };
	struct dirent *de;
	DIR *dir = NULL;
	int dir_fd = dup(fd);
	char detail[64];
	int rc = -1;

	if (dir_fd >= 0)
		dir = fdopendir(dir_fd);
	if (dir == NULL) {
		parse_fail_path(st, loc, "cannot read directory", path, strerror(errno));
		if (dir_fd >= 0)
			close(dir_fd);
		goto fail_open;
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (de == NULL)
			break;
		if (de->d_name[0] == '.')
			continue;
		if (names.cnt >= SL_CONF_MAX_FILES) {
			snprintf(detail, sizeof(detail), "over %u entries", SL_CONF_MAX_FILES);
			parse_fail_path(st, loc, "cannot read directory", path, detail);
			goto fail_read;
		}
		*(char **)parse_vec_push(&names) = sl_strdup(de->d_name);
	}
	if (errno != 0) {
		parse_fail_path(st, loc, "cannot read directory", path, strerror(errno));
		goto fail_read;
	}
	if (names.cnt > 0)
		qsort(names.data, names.cnt, sizeof(char *), parse_cmp_names);
	for (size_t i = 0; i < names.cnt; i++) {
		const char *name = ((char **)names.data)[i];
		const char *full = parse_join(&st->tree->arena, path, name);
		struct stat sb;

		/* stat, not open, first: a sub-directory need not be readable to be skipped. */
		if (fstatat(dirfd(dir), name, &sb, 0) < 0) {
			parse_fail_path(st, loc, "cannot include", full, strerror(errno));
			goto fail_read;
		}
		if (S_ISREG(sb.st_mode) &&
		    parse_dir_entry(st, dir, name, full, loc, out, depth) < 0)
			goto fail_read;
	}
	rc = 0;
fail_read:
	for (size_t i = 0; i < names.cnt; i++)
		sl_free(((char **)names.data)[i]);
	parse_vec_free(&names);
	closedir(dir);
fail_open:
	return rc;
}

/*
 * Include `path`: a regular file or a directory.  `loc` is the include
 * statement (NULL for the top-level file).  Opened non-blocking so a FIFO
 * named by mistake is refused instead of hanging the config thread.
 */
static int
parse_path(struct parse_state *st, const char *path, const struct sl_conf_loc *loc,
	   struct parse_vec *out, unsigned depth)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int rc = -1;

	if (fd < 0) {
		parse_fail_path(st, loc, loc != NULL ? "cannot include" : "cannot read", path,
				strerror(errno));
		goto fail_open;
	}
	if (fstat(fd, &sb) < 0) {
		parse_fail_path(st, loc, "cannot read", path, strerror(errno));
		goto fail_stat;
	}
	if (S_ISDIR(sb.st_mode))
		rc = parse_dir(st, fd, path, loc, out, depth);
	else if (S_ISREG(sb.st_mode))
		rc = parse_file_fd(st, fd, &sb, path, loc, out, depth);
	else
		parse_fail_path(st, loc, loc != NULL ? "cannot include" : "cannot read", path,
				"not a regular file or directory");
fail_stat:
	close(fd);
fail_open:
	return rc;
}

/* include (STRING | WORD), the current token being the keyword. */
static int
parse_include(struct parse_ctx *ctx, unsigned depth, struct parse_vec *out)
{
	struct sl_conf_loc kw_loc = ctx->tok.loc;
	struct parse_state *st = ctx->st;
	const char *path;
	char what[64];
	int rc = -1;

	if (parse_next(ctx) < 0)
		goto fail_include;
	if (ctx->tok.kind != SL_CONF_TOK_STRING && ctx->tok.kind != SL_CONF_TOK_WORD) {
		sl_conf_error_add(st->errs, &ctx->tok.loc,
				  "expected a file name after 'include', got %s",
				  sl_conf_tok_describe(&ctx->tok, what, sizeof(what)));
		goto fail_include;
	}
	if (parse_resolve(st, ctx->tok.text, ctx->dir, &kw_loc, &path) < 0)
		goto fail_include;
	/* Every text being parsed has its frame: the buffer's, or its file's. */
	SL_ASSERT(st->stack_cnt > 0);
	st->stack[st->stack_cnt - 1].include_loc = kw_loc;
	if (parse_path(st, path, &kw_loc, out, depth) < 0)
		goto fail_include;
	rc = parse_next(ctx);
fail_include:
	return rc;
}

/*
 * stanza* until the end of the file (opener NULL) or the '}' that closes
 * `opener`, which is left as the current token for the caller.
 */
static int
parse_stanzas(struct parse_ctx *ctx, struct parse_vec *out, unsigned depth,
	      const struct sl_conf_token *opener)
{
	int rc = 1; /* still going */

	while (rc > 0) {
		switch (ctx->tok.kind) {
		case SL_CONF_TOK_EOF:
			if (opener != NULL) {
				parse_unclosed(ctx, opener);
				rc = -1;
			} else {
				rc = 0;
			}
			break;
		case SL_CONF_TOK_RBRACE:
			if (opener != NULL) {
				rc = 0;
			} else {
				parse_unexpected(ctx, " (no block is open)");
				rc = -1;
			}
			break;
		case SL_CONF_TOK_WORD:
			if (strcasecmp(ctx->tok.text, "include") == 0) {
				if (parse_include(ctx, depth, out) < 0)
					rc = -1;
			} else if (parse_stanza(ctx, depth, out) < 0) {
				rc = -1;
			}
			break;
		case SL_CONF_TOK_EQUALS:
			sl_conf_error_add(ctx->st->errs, &ctx->tok.loc, "'=' without a name");
			rc = -1;
			break;
		case SL_CONF_TOK_ERROR:
			rc = -1;
			break;
		default:
			parse_unexpected(ctx, "");
			rc = -1;
			break;
		}
	}
	return rc;
}

/* A new empty tree in `st`, ready to parse into. */
static void
parse_state_init(struct parse_state *st, struct sl_conf_errors *errs)
{
	struct parse_vec files = { .elem_len = sizeof(const char *) };

	memset(st, 0, sizeof(*st));
	st->tree = SL_NEW(st->tree);
	st->errs = errs;
	st->files = files;
}

/* Finish the tree after a parse that returned `rc`, or free everything. */
static struct sl_conf_tree *
parse_tree_finish(struct parse_state *st, struct parse_vec *top, int rc)
{
	struct sl_conf_tree *tree = st->tree;

	if (rc < 0) {
		parse_vec_free(top);
		parse_vec_free(&st->files);
		sl_conf_tree_free(tree);
		tree = NULL;
	} else {
		tree->stanzas = parse_vec_finish(top, &tree->arena, &tree->stanza_cnt);
		tree->files = parse_vec_finish(&st->files, &tree->arena, &tree->file_cnt);
	}
	return tree;
}

struct sl_conf_tree *
sl_conf_parse_file(const char *path, struct sl_conf_errors *errs)
{
	struct parse_state st;
	struct parse_vec top = { .elem_len = sizeof(struct sl_conf_stanza) };
	const char *resolved;
	int rc;

	parse_state_init(&st, errs);
	rc = parse_resolve(&st, path, "", NULL, &resolved);
	if (rc == 0)
		rc = parse_path(&st, resolved, NULL, &top, 0);
	return parse_tree_finish(&st, &top, rc);
}

struct sl_conf_tree *
sl_conf_parse_buffer(const char *name, const char *base_dir, const char *text, size_t len,
		     struct sl_conf_errors *errs)
{
	struct parse_state st;
	struct parse_vec top = { .elem_len = sizeof(struct sl_conf_stanza) };
	const char *stored;
	int rc;

	parse_state_init(&st, errs);
	stored = sl_arena_strdup(&st.tree->arena, name);
	st.stack[0].name = stored;
	st.stack_cnt = 1;
	rc = parse_text(&st, stored,
			base_dir != NULL ? sl_arena_strdup(&st.tree->arena, base_dir) : "", text,
			len, &top, 0);
	return parse_tree_finish(&st, &top, rc);
}

void
sl_conf_tree_free(struct sl_conf_tree *tree)
{
	if (tree != NULL) {
		sl_arena_free(&tree->arena);
		sl_free(tree);
	}
}
