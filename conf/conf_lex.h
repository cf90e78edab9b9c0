/*
 * conf/conf_lex.h - tokens of the ecelerity.conf language.
 *
 * The lexer turns one file's bytes into words, strings and the punctuation
 * = ( ) { } [ ] < >, dropping whitespace, `#` line comments and C-style
 * (slash-star) block comments, which do not nest.  Every token carries the file:line:col where it starts so
 * each later diagnostic can point at the text.  conf_parse.c is its only
 * production caller; the unit tests drive it directly.
 *
 * Threads: a lexer belongs to the thread that made it (the config thread).
 * Parses untrusted input: configuration text, bounded by SL_CONF_MAX_FILE_LEN.
 * Ownership: the lexer borrows the input buffer, the file name, the arena and
 * the error list; token texts are copied into the arena (they live as long
 * as it does), so the input buffer may be freed once lexing is done.
 */
#ifndef SL_CONF_CONF_LEX_H
#define SL_CONF_CONF_LEX_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf_err.h"
#include "engine/arena.h"

enum sl_conf_tok {
	SL_CONF_TOK_EOF,      /* end of input; loc is just past the last byte */
	SL_CONF_TOK_WORD,     /* bare run of non-delimiters: 300, *:25, [::1]:25, \ecconsole~10 */
	SL_CONF_TOK_STRING,   /* "quoted", escapes resolved */
	SL_CONF_TOK_EQUALS,   /* = */
	SL_CONF_TOK_LPAREN,   /* ( */
	SL_CONF_TOK_RPAREN,   /* ) */
	SL_CONF_TOK_LBRACE,   /* { */
	SL_CONF_TOK_RBRACE,   /* } */
	SL_CONF_TOK_LBRACKET, /* [ */
	SL_CONF_TOK_RBRACKET, /* ] */
	SL_CONF_TOK_LANGLE,   /* < */
	SL_CONF_TOK_RANGLE,   /* > */
	SL_CONF_TOK_ERROR,    /* lexing failed; the diagnostic is in the error list */
};

struct sl_conf_token {
	enum sl_conf_tok kind;
	struct sl_conf_loc loc; /* where the token starts; loc.file is the lexer's file */
	const char *text;       /* WORD/STRING: NUL-terminated copy in the arena; else NULL */
	size_t text_len;        /* bytes before the NUL (input has no NUL bytes) */
};

/* Lexer state.  Fields are private to conf_lex.c; callers only embed it. */
struct sl_conf_lexer {
	const char *buf;             /* borrowed: buf_len bytes, not NUL-terminated */
	size_t buf_len;              /* bytes in buf, at most SL_CONF_MAX_FILE_LEN */
	size_t pos;                  /* next byte to read */
	unsigned line;               /* of buf[pos], 1-based */
	unsigned col;                /* of buf[pos], 1-based, in bytes */
	const char *file;            /* borrowed: name for every loc */
	struct sl_arena *arena;      /* borrowed: token texts are copied here */
	struct sl_conf_errors *errs; /* borrowed: diagnostics go here */
	bool has_failed;             /* an error was reported; every later call fails */
};

/*
 * Prepare `lx` to read `len` bytes of `buf`, naming locations after `file`.
 * Returns 0, or -1 with a diagnostic added when `len` is over
 * SL_CONF_MAX_FILE_LEN (the lexer then only returns errors).
 */
int sl_conf_lex_init(struct sl_conf_lexer *lx, const char *file, const char *buf, size_t len,
		     struct sl_arena *arena, struct sl_conf_errors *errs);

/*
 * Read the next token into `tok`.  Returns 0, or -1 after adding one
 * diagnostic (unterminated string or comment, NUL or control byte, a
 * comment terminator outside a comment); then tok->kind is SL_CONF_TOK_ERROR and every later
 * call fails the same way without adding more.  After SL_CONF_TOK_EOF every
 * later call returns EOF again.
 */
int sl_conf_lex_next(struct sl_conf_lexer *lx, struct sl_conf_token *tok);

/*
 * Describe a token for a one-line diagnostic: "'='", "end of file",
 * "'Esmtp_Listener'", "string \"abc\"".  Texts are quoted as by
 * sl_conf_lex_quote() and cut to about 40 characters.  Writes at most
 * `out_len` bytes (NUL included) and returns `out`.
 */
const char *sl_conf_tok_describe(const struct sl_conf_token *tok, char *out, size_t out_len);

/*
 * Write `text_len` bytes of `text` between two `quote` characters for a
 * diagnostic: bytes that are not printable ASCII become \xNN, the quote and
 * backslash are escaped with a backslash, and text that does not fit in
 * `out_len` bytes (NUL included) ends in "...".  Returns `out` (empty if
 * out_len < 8).  Configuration text may hold anything; a diagnostic is one line.
 */
const char *sl_conf_lex_quote(const char *text, size_t text_len, char quote, char *out,
			      size_t out_len);

/* The spelling of a punctuation kind ("(", "]", ...), or a short name for the others. */
const char *sl_conf_tok_name(enum sl_conf_tok kind);

#endif /* SL_CONF_CONF_LEX_H */
