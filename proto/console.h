/*
 * proto/console.h - the control console's wire format, as a pure codec.
 *
 * A client (sluicectl) sends one command per line (at most
 * SL_CONSOLE_MAX_LINE octets, LF or CRLF ended); the server answers each
 * with one frame:
 *
 *   "OK <length>\n" <length octets of text>      the command's output
 *   "ERR <length>\n" <length octets of text>     why it failed
 *
 * Commands are Momentum ec_console names ("summary", "config reload",
 * "reopen logs"); words are separated by blanks, and a double-quoted word
 * may hold blanks ("\"" and "\\" escape inside quotes).
 *
 * Threads: any; no globals, no I/O.  Parses untrusted input (command lines
 * and frames), every length bounded.
 */
#ifndef SL_PROTO_CONSOLE_H
#define SL_PROTO_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/buf.h"

#define SL_CONSOLE_MAX_LINE 4096        /* a command line */
#define SL_CONSOLE_MAX_ARGS 16          /* words of a command */
#define SL_CONSOLE_MAX_BODY (16u << 20) /* a reply's text */

/*
 * Split a command line (without its line end) into at most max words,
 * copied NUL-terminated into buf[buf_len] (buf_len >= len + 1 suffices).
 * Returns the number of words, or -1 (an unterminated quote, control
 * characters, too many words); why says what.
 */
int sl_console_split(const char *line, size_t len, char **argv, size_t max, char *buf,
		     size_t buf_len, const char **why);

/* Append one reply frame. */
void sl_console_reply(struct sl_buf *out, bool is_ok, const char *text, size_t len);

/*
 * Parse one reply frame at p[len]: the octets it takes (header and text),
 * 0 when it is not complete yet, -1 when it is not a frame.  *is_ok and
 * the text's offset and length are set on success.
 */
long sl_console_reply_parse(const char *p, size_t len, bool *is_ok, size_t *text_off,
			    size_t *text_len);

#endif /* SL_PROTO_CONSOLE_H */
