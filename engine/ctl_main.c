/*
 * engine/ctl_main.c - sluicectl: the console client of sluiced's
 * Control_Listener (proto/console.h).
 *
 *   sluicectl [-s socket | -H host:port] [--json] [command words ...]
 *
 * With words, runs that one command and prints its output; without, reads
 * commands from standard input, one per line (a "sluice> " prompt when it
 * is a terminal).  --json prints each reply as {"ok": bool, "output": "..."}.
 * Exit status: 0 when every command succeeded, 1 when one failed, 2 when
 * the console could not be reached or answered nonsense.
 *
 * Blocking sockets: a command-line tool.  Parses untrusted input: the
 * reply frames (proto/console.c; bounded by SL_CONSOLE_MAX_BODY).
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/buf.h"
#include "proto/console.h"

#define CTL_DEFAULT_SOCKET "./sluice-state/control.sock"

static void
ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: sluicectl [-s socket | -H host:port] [--json] [command ...]\n"
		"  -s socket     the Control_Listener's Unix socket (default %s)\n"
		"  -H host:port  a TCP Control_Listener instead\n"
		"  --json        print replies as JSON objects\n"
		"  without a command, commands are read from standard input; try \"help\"\n",
		CTL_DEFAULT_SOCKET);
}

static int
ctl_connect(const char *path, const char *hostport)
{
	int fd;

	if (hostport != NULL) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *a;
		char host[256];
		const char *colon = strrchr(hostport, ':');
		size_t hl = colon ? (size_t)(colon - hostport) : 0;
		int rc;

		if (colon == NULL || hl == 0 || hl >= sizeof(host)) {
			fprintf(stderr, "sluicectl: -H wants host:port\n");
			return -1;
		}
		memcpy(host, hostport, hl);
		host[hl] = '\0';
		if (host[0] == '[' && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		rc = getaddrinfo(host, colon + 1, &hints, &res);
		if (rc != 0) {
			fprintf(stderr, "sluicectl: %s: %s\n", hostport, gai_strerror(rc));
			return -1;
		}
		fd = -1;
		for (a = res; a != NULL && fd < 0; a = a->ai_next) {
			fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
			if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
				rc = errno;
				close(fd);
				fd = -1;
				errno = rc;
			}
		}
		freeaddrinfo(res);
		if (fd < 0)
			fprintf(stderr, "sluicectl: connect to %s: %s\n", hostport,
				strerror(errno));
		return fd;
	}
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		if (strlen(path) >= sizeof(sa.sun_path)) {
			fprintf(stderr, "sluicectl: socket path too long: %s\n", path);
			return -1;
		}
		strcpy(sa.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			fprintf(stderr, "sluicectl: connect to %s: %s\n", path, strerror(errno));
			close(fd);
			fd = -1;
		}
		return fd;
	}
}

static void
ctl_json_string(const char *p, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 32)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* Send one command line, print its reply; 0 ok, 1 failed, 2 broken. */
static int
ctl_command(int fd, const char *line, bool is_json, struct sl_buf *in)
{
	size_t len = strlen(line), off = 0, text_off, text_len;
	bool is_ok;
	long used;

	while (off < len + 1) {
		const char *p = off < len ? line + off : "\n";
		ssize_t n = send(fd, p, off < len ? len - off : 1, MSG_NOSIGNAL);

		if (n <= 0) {
			fprintf(stderr, "sluicectl: write: %s\n", strerror(errno));
			return 2;
		}
		off += (size_t)n;
	}
	for (;;) {
		ssize_t n;

		used = sl_console_reply_parse(in->data ? in->data : "", in->len, &is_ok, &text_off,
					      &text_len);
		if (used != 0)
			break;
		n = recv(fd, sl_buf_reserve(in, 65536), 65536, 0);
		if (n <= 0) {
			fprintf(stderr, "sluicectl: the console closed the connection\n");
			return 2;
		}
		in->len += (size_t)n;
	}
	if (used < 0) {
		fprintf(stderr, "sluicectl: not a console reply\n");
		return 2;
	}
	if (is_json) {
		printf("{\"ok\": %s, \"output\": ", is_ok ? "true" : "false");
		ctl_json_string(in->data + text_off, text_len);
		printf("}\n");
	} else {
		fwrite(in->data + text_off, 1, text_len, is_ok ? stdout : stderr);
	}
	fflush(stdout);
	sl_buf_consume(in, (size_t)used);
	return is_ok ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *path = CTL_DEFAULT_SOCKET, *hostport = NULL;
	bool is_json = false;
	struct sl_buf in = SL_BUF_INIT;
	int i, fd, rc = 0;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			is_json = true;
		} else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) {
			hostport = argv[++i];
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			ctl_usage(stdout);
			return 0;
		} else {
			ctl_usage(stderr);
			return 2;
		}
	}
	fd = ctl_connect(path, hostport);
	if (fd < 0)
		return 2;
	if (i < argc) {
		struct sl_buf cmd = SL_BUF_INIT;

		for (int k = i; k < argc; k++) {
			bool has_space = strpbrk(argv[k], " \t") != NULL;

			if (k > i)
				sl_buf_append(&cmd, " ", 1);
			if (has_space)
				sl_buf_append(&cmd, "\"", 1);
			for (const char *p = argv[k]; *p; p++) {
				if (has_space && (*p == '"' || *p == '\\'))
					sl_buf_append(&cmd, "\\", 1);
				sl_buf_append(&cmd, p, 1);
			}
			if (has_space)
				sl_buf_append(&cmd, "\"", 1);
		}
		rc = ctl_command(fd, sl_buf_cstr(&cmd), is_json, &in);
		sl_buf_free(&cmd);
	} else {
		char line[SL_CONSOLE_MAX_LINE + 2];
		bool is_tty = isatty(STDIN_FILENO);

		for (;;) {
			size_t len;
			int r;

			if (is_tty) {
				fputs("sluice> ", stdout);
				fflush(stdout);
			}
			if (fgets(line, sizeof(line), stdin) == NULL)
				break;
			len = strlen(line);
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (len == 0)
				continue;
			r = ctl_command(fd, line, is_json, &in);
			if (r == 2) {
				rc = 2;
				break;
			}
			if (r > rc)
				rc = r;
			if (strcmp(line, "quit") == 0 || strcmp(line, "shutdown") == 0)
				break;
		}
	}
	close(fd);
	sl_buf_free(&in);
	return rc;
}
