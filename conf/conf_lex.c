/*
 * conf/conf_lex.c - tokenizer for ecelerity.conf text (see conf_lex.h).
 *
 * One pass over a byte buffer, one token per call, no lookahead beyond the
 * token being read.  The only context-dependent rule is the IPv6 listener
 * address: `[::1]:25` is one word, while `[ 0.0.0.0/0 = ( ... ) ]` and
 * `[ idle_time = 300 ]` are brackets; the rule below tells them apart
 * without any parser state.
 *
 * Threads: the config thread (whoever owns the lexer).
 * Parses untrusted input: every byte is checked; NUL and control bytes are
 * errors, and the input length is bounded by SL_CONF_MAX_FILE_LEN at init.
 * Ownership: token texts are copied into the borrowed arena.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf_lex.h"
#include "conf/conf_tree.h"

/* Bytes of a quoted token text in a diagnostic (about 40 characters shown). */
#define LEX_DESCRIBE_MAX 48

static bool
lex_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Control bytes other than whitespace never belong in a configuration. */
static bool
lex_is_ctrl(unsigned char c)
{
	return (c < 0x20 && !lex_is_space(c)) || c == 0x7f;
}

static bool
lex_is_delim(unsigned char c)
{
	return lex_is_space(c) || strchr("=(){}[]<>\"#", c) != NULL;
}

static bool
lex_is_word_byte(unsigned char c)
{
	/* strchr() would match the terminating NUL, so test it first. */
	return c != '\0' && !lex_is_delim(c) && !lex_is_ctrl(c);
}

static bool
lex_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
lex_is_hex(unsigned char c)
{
	return lex_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Byte at `pos`, or NUL past the end (input never holds a real NUL that gets this far). */
static unsigned char
lex_peek(const struct sl_conf_lexer *lx, size_t pos)
{
	return pos < lx->buf_len ? (unsigned char)lx->buf[pos] : '\0';
}

/* Consume `cnt` bytes, keeping line and column in step. */
static void
lex_advance(struct sl_conf_lexer *lx, size_t cnt)
{
	while (cnt-- > 0 && lx->pos < lx->buf_len) {
		if (lx->buf[lx->pos] == '\n') {
			lx->line++;
			lx->col = 1;
		} else {
			lx->col++;
		}
		lx->pos++;
	}
}

static struct sl_conf_loc
lex_here(const struct sl_conf_lexer *lx)
{
	struct sl_conf_loc loc = { lx->file, lx->line, lx->col };

	return loc;
}

/* Report a bad byte at the current position; the lexer fails from now on. */
static void
lex_fail_byte(struct sl_conf_lexer *lx, unsigned char c, const char *where)
{
	struct sl_conf_loc loc = lex_here(lx);

	if (c == '\0')
		sl_conf_error_add(lx->errs, &loc, "NUL byte%s", where);
	else
		sl_conf_error_add(lx->errs, &loc, "control byte 0x%02x%s", c, where);
	lx->has_failed = true;
}

/* Skip a `#` comment up to (not including) the newline.  Returns -1 on a NUL byte. */
static int
lex_skip_line_comment(struct sl_conf_lexer *lx)
{
	int rc = 0;

	while (rc == 0 && lx->pos < lx->buf_len && lx->buf[lx->pos] != '\n') {
		if (lx->buf[lx->pos] == '\0') {
			lex_fail_byte(lx, '\0', " in comment");
			rc = -1;
		} else {
			lex_advance(lx, 1);
		}
	}
	return rc;
}

/*
 * Skip a C-style comment starting at lx->pos.  Comments do not nest: the
 * first star-slash ends it.  Returns -1 if it never ends (reported at its
 * start, where the reader must look) or holds a NUL byte.
 */
static int
lex_skip_block_comment(struct sl_conf_lexer *lx)
{
	struct sl_conf_loc start = lex_here(lx);
	int rc = 1; /* still inside */

	lex_advance(lx, 2);
	while (rc > 0) {
		if (lx->pos >= lx->buf_len) {
			sl_conf_error_add(lx->errs, &start, "unterminated comment");
			lx->has_failed = true;
			rc = -1;
		} else if (lx->buf[lx->pos] == '\0') {
			lex_fail_byte(lx, '\0', " in comment");
			rc = -1;
		} else if (lx->buf[lx->pos] == '*' && lex_peek(lx, lx->pos + 1) == '/') {
			lex_advance(lx, 2);
			rc = 0;
		} else {
			lex_advance(lx, 1);
		}
	}
	return rc;
}

/* Skip whitespace and comments.  Returns 0, or -1 after reporting an error. */
static int
lex_skip_blank(struct sl_conf_lexer *lx)
{
	int rc = 0;

	while (rc == 0 && lx->pos < lx->buf_len) {
		unsigned char c = lex_peek(lx, lx->pos);

		if (lex_is_space(c))
			lex_advance(lx, 1);
		else if (c == '#')
			rc = lex_skip_line_comment(lx);
		else if (c == '/' && lex_peek(lx, lx->pos + 1) == '*')
			rc = lex_skip_block_comment(lx);
		else
			break;
	}
	return rc;
}

/*
 * Length of an IPv6 listener address starting at the '[' at lx->pos, or 0 if
 * this '[' opens a bracket.  It is an address when the '[' is immediately
 * followed by hex digits, colons and dots, then "]:" and a digit (a port);
 * ACL and parameter brackets are followed by blanks or names instead.
 */
static size_t
lex_ipv6_len(const struct sl_conf_lexer *lx)
{
	size_t end = lx->pos + 1;
	unsigned char c;

	while ((c = lex_peek(lx, end)) != '\0' && (lex_is_hex(c) || c == ':' || c == '.'))
		end++;
	if (end == lx->pos + 1 || lex_peek(lx, end) != ']' || lex_peek(lx, end + 1) != ':' ||
	    !lex_is_digit(lex_peek(lx, end + 2))) {
		end = lx->pos; /* a bracket */
	} else {
		/* Past ']': the port and any ",backlog~threads" follow as word bytes. */
		end++;
		while (lex_is_word_byte(lex_peek(lx, end)))
			end++;
	}
	return end - lx->pos;
}

static void
lex_word(struct sl_conf_lexer *lx, struct sl_conf_token *tok, size_t len)
{
	tok->kind = SL_CONF_TOK_WORD;
	tok->text = sl_arena_strndup(lx->arena, lx->buf + lx->pos, len);
	tok->text_len = len;
	lex_advance(lx, len);
}

/*
 * A double-quoted string.  Escapes \" \\ \n \t \r are resolved; any other
 * backslash pair is kept as written so regexes ("/.*\.example\.com/") and
 * Windows names survive.  Newlines inside are allowed (Momentum configs
 * wrap long strings).  Returns -1 on an unterminated string (reported at the
 * opening quote) or a NUL or control byte inside it.
 */
static int
lex_string(struct sl_conf_lexer *lx, struct sl_conf_token *tok)
{
	size_t start = lx->pos + 1;
	size_t end = start;
	size_t out_len = 0;
	char *out;
	int rc = -1;

	/* First pass: find the closing quote and check every byte. */
	while (end < lx->buf_len && lx->buf[end] != '"') {
		unsigned char c = lex_peek(lx, end);
		size_t bad = c == '\\' ? end + 1 : end;

		if (bad < lx->buf_len && lex_is_ctrl(lex_peek(lx, bad))) {
			lex_advance(lx, bad - lx->pos);
			lex_fail_byte(lx, lex_peek(lx, bad), " in string");
			goto fail_string;
		}
		end += c == '\\' ? 2 : 1;
	}
	if (end >= lx->buf_len) {
		sl_conf_error_add(lx->errs, &tok->loc, "unterminated string");
		lx->has_failed = true;
		goto fail_string;
	}

	/* Second pass: copy, resolving escapes. */
	out = sl_arena_alloc(lx->arena, end - start + 1);
	for (size_t i = start; i < end; i++) {
		char c = lx->buf[i];

		if (c == '\\') {
			char e = lx->buf[++i];

			switch (e) {
			case '"':
			case '\\':
				c = e;
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			default:
				out[out_len++] = '\\';
				c = e;
				break;
			}
		}
		out[out_len++] = c;
	}
	out[out_len] = '\0';
	tok->kind = SL_CONF_TOK_STRING;
	tok->text = out;
	tok->text_len = out_len;
	lex_advance(lx, end + 1 - lx->pos);
	rc = 0;
fail_string:
	return rc;
}

int
sl_conf_lex_init(struct sl_conf_lexer *lx, const char *file, const char *buf, size_t len,
		 struct sl_arena *arena, struct sl_conf_errors *errs)
{
	memset(lx, 0, sizeof(*lx));
	lx->buf = buf;
	lx->buf_len = len;
	lx->line = 1;
	lx->col = 1;
	lx->file = file;
	lx->arena = arena;
	lx->errs = errs;
	if (len > SL_CONF_MAX_FILE_LEN) {
		struct sl_conf_loc loc = { file, 1, 1 };

		sl_conf_error_add(errs, &loc, "file is %zu bytes, over the limit of %u", len,
				  SL_CONF_MAX_FILE_LEN);
		lx->has_failed = true;
	}
	return lx->has_failed ? -1 : 0;
}

/* The kind of a one-byte punctuation token, or SL_CONF_TOK_ERROR for any other byte. */
static enum sl_conf_tok
lex_punct_kind(unsigned char c)
{
	switch (c) {
	case '=':
		return SL_CONF_TOK_EQUALS;
	case '(':
		return SL_CONF_TOK_LPAREN;
	case ')':
		return SL_CONF_TOK_RPAREN;
	case '{':
		return SL_CONF_TOK_LBRACE;
	case '}':
		return SL_CONF_TOK_RBRACE;
	case '[':
		return SL_CONF_TOK_LBRACKET;
	case ']':
		return SL_CONF_TOK_RBRACKET;
	case '<':
		return SL_CONF_TOK_LANGLE;
	case '>':
		return SL_CONF_TOK_RANGLE;
	default:
		return SL_CONF_TOK_ERROR;
	}
}

/* Read the token starting at lx->pos (blanks already skipped). */
static int
lex_token(struct sl_conf_lexer *lx, struct sl_conf_token *tok)
{
	unsigned char c = lex_peek(lx, lx->pos);
	enum sl_conf_tok punct = lex_punct_kind(c);
	size_t len = 0;
	int rc = 0;

	if (lx->pos >= lx->buf_len) {
		tok->kind = SL_CONF_TOK_EOF;
	} else if (c == '"') {
		rc = lex_string(lx, tok);
	} else if (c == '[' && (len = lex_ipv6_len(lx)) > 0) {
		lex_word(lx, tok, len);
	} else if (punct != SL_CONF_TOK_ERROR) {
		tok->kind = punct;
		lex_advance(lx, 1);
	} else if (lex_is_ctrl(c)) {
		lex_fail_byte(lx, c, "");
		rc = -1;
	} else if (c == '*' && lex_peek(lx, lx->pos + 1) == '/') {
		/* A closer with no opener: most often a nested comment that ended early. */
		sl_conf_error_add(lx->errs, &tok->loc,
				  "'*/' outside a comment (comments do not nest)");
		lx->has_failed = true;
		rc = -1;
	} else {
		while (lx->pos + len < lx->buf_len && lex_is_word_byte(lex_peek(lx, lx->pos + len)))
			len++;
		lex_word(lx, tok, len);
	}
	return rc;
}

int
sl_conf_lex_next(struct sl_conf_lexer *lx, struct sl_conf_token *tok)
{
	int rc = -1;

	memset(tok, 0, sizeof(*tok));
	if (!lx->has_failed && lex_skip_blank(lx) == 0) {
		tok->loc = lex_here(lx);
		rc = lex_token(lx, tok);
	}
	if (rc < 0) {
		memset(tok, 0, sizeof(*tok));
		tok->kind = SL_CONF_TOK_ERROR;
		tok->loc = lex_here(lx);
	}
	return rc;
}

const char *
sl_conf_tok_name(enum sl_conf_tok kind)
{
	switch (kind) {
	case SL_CONF_TOK_EOF:
		return "end of file";
	case SL_CONF_TOK_WORD:
		return "word";
	case SL_CONF_TOK_STRING:
		return "string";
	case SL_CONF_TOK_EQUALS:
		return "=";
	case SL_CONF_TOK_LPAREN:
		return "(";
	case SL_CONF_TOK_RPAREN:
		return ")";
	case SL_CONF_TOK_LBRACE:
		return "{";
	case SL_CONF_TOK_RBRACE:
		return "}";
	case SL_CONF_TOK_LBRACKET:
		return "[";
	case SL_CONF_TOK_RBRACKET:
		return "]";
	case SL_CONF_TOK_LANGLE:
		return "<";
	case SL_CONF_TOK_RANGLE:
		return ">";
	case SL_CONF_TOK_ERROR:
		break;
	}
	return "invalid token";
}

const char *
sl_conf_lex_quote(const char *text, size_t text_len, char quote, char *out, size_t out_len)
{
	bool has_room = out_len >= 8; /* the quotes, "..." and the NUL */
	size_t pos = 0;
	char piece[8];

	if (has_room)
		out[pos++] = quote;
	/* After each piece pos + 5 <= out_len: "..." + quote + NUL always fit. */
	for (size_t i = 0; has_room && i < text_len; i++) {
		unsigned char c = (unsigned char)text[i];
		size_t piece_len;

		if (c < 0x20 || c >= 0x7f)
			snprintf(piece, sizeof(piece), "\\x%02x", c);
		else if (c == (unsigned char)quote || c == '\\')
			snprintf(piece, sizeof(piece), "\\%c", c);
		else
			snprintf(piece, sizeof(piece), "%c", c);
		piece_len = strlen(piece);
		if (pos + piece_len + 5 > out_len) {
			memcpy(out + pos, "...", 3);
			pos += 3;
			break;
		}
		memcpy(out + pos, piece, piece_len);
		pos += piece_len;
	}
	if (has_room)
		out[pos++] = quote;
	if (out_len > 0)
		out[pos] = '\0';
	return out;
}

const char *
sl_conf_tok_describe(const struct sl_conf_token *tok, char *out, size_t out_len)
{
	/* Cut long words and strings so a diagnostic stays one short line. */
	size_t quote_len = out_len < LEX_DESCRIBE_MAX ? out_len : LEX_DESCRIBE_MAX;
	static const char string_prefix[] = "string ";

	if (out_len == 0)
		return out;
	switch (tok->kind) {
	case SL_CONF_TOK_WORD:
		sl_conf_lex_quote(tok->text, tok->text_len, '\'', out, quote_len);
		break;
	case SL_CONF_TOK_STRING:
		if (out_len <= sizeof(string_prefix)) {
			out[0] = '\0';
			break;
		}
		memcpy(out, string_prefix, sizeof(string_prefix) - 1);
		sl_conf_lex_quote(tok->text, tok->text_len, '"', out + sizeof(string_prefix) - 1,
				  quote_len < out_len - (sizeof(string_prefix) - 1)
					  ? quote_len
					  : out_len - (sizeof(string_prefix) - 1));
		break;
	case SL_CONF_TOK_EOF:
	case SL_CONF_TOK_ERROR:
		snprintf(out, out_len, "%s", sl_conf_tok_name(tok->kind));
		break;
	default:
		snprintf(out, out_len, "'%s'", sl_conf_tok_name(tok->kind));
		break;
	}
	return out;
}
