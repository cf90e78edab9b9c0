/*
 * proto/console.c - the control console's wire format (see console.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/console.h"

int
sl_console_split(const char *line, size_t len, char **argv, size_t max, char *buf, size_t buf_len,
		 const char **why)
{
	size_t i = 0, o = 0;
	int n = 0;

	*why = NULL;
	if (buf_len < len + 1) {
		*why = "command too long";
		return -1;
	}
	for (;;) {
		bool is_quoted = false;

		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i >= len)
			return n;
		if ((size_t)n >= max) {
			*why = "too many words";
			return -1;
		}
		argv[n++] = buf + o;
		if (line[i] == '"') {
			is_quoted = true;
			i++;
		}
		for (; i < len; i++) {
			unsigned char c = (unsigned char)line[i];

			if (c < 32 || c == 127) {
				*why = "control character in the command";
				return -1;
			}
			if (is_quoted && c == '\\' && i + 1 < len &&
			    (line[i + 1] == '"' || line[i + 1] == '\\')) {
				buf[o++] = line[++i];
				continue;
			}
			if (is_quoted && c == '"') {
				i++;
				is_quoted = false;
				break;
			}
			if (!is_quoted && (c == ' ' || c == '\t'))
				break;
			buf[o++] = (char)c;
		}
		if (is_quoted) {
			*why = "unterminated quote";
			return -1;
		}
		buf[o++] = '\0';
	}
}

void
sl_console_reply(struct sl_buf *out, bool is_ok, const char *text, size_t len)
{
	sl_buf_printf(out, "%s %zu\n", is_ok ? "OK" : "ERR", len);
	sl_buf_append(out, text, len);
}

long
sl_console_reply_parse(const char *p, size_t len, bool *is_ok, size_t *text_off, size_t *text_len)
{
	const char *nl = memchr(p, '\n', len < 32 ? len : 32);
	size_t word, n = 0, digits = 0;

	if (nl == NULL)
		return len < 32 ? 0 : -1;
	if ((size_t)(nl - p) > 3 && memcmp(p, "OK ", 3) == 0)
		word = 3, *is_ok = true;
	else if ((size_t)(nl - p) > 4 && memcmp(p, "ERR ", 4) == 0)
		word = 4, *is_ok = false;
	else
		return -1;
	for (const char *d = p + word; d < nl; d++, digits++) {
		if (*d < '0' || *d > '9' || digits >= 9)
			return -1;
		n = n * 10 + (size_t)(*d - '0');
	}
	if (digits == 0 || n > SL_CONSOLE_MAX_BODY)
		return -1;
	*text_off = (size_t)(nl - p) + 1;
	*text_len = n;
	if (len < *text_off + n)
		return 0;
	return (long)(*text_off + n);
}
