/*
 * engine/ctl_main.c - sluicectl: the console client of sluiced's
 * Control_Listener (proto/console.h).
 *
 *   sluicectl [-s socket | -H host:port] [--json] [command words ...]
 *
 * With words, runs that one command and prints its output; without, reads
 * commands from standard input, one per line.  When standard input is a
 * terminal, that session is interactive: a "sluicectl> " prompt, line
 * editing and history through libedit's readline interface, the history
 * kept in $HOME/.sluicectl_history.  Otherwise (a script) the lines are read
 * as they come, without prompt or editing.
 * --json prints each reply as {"ok": bool, "output": "..."}.
 * Exit status: 0 when every command succeeded, 1 when one failed, 2 when
 * the console could not be reached or answered nonsense.
 *
 * Blocking sockets: a command-line tool.  Parses untrusted input: the
 * reply frames (proto/console.c; bounded by SL_CONSOLE_MAX_BODY).  The
 * history file is the user's own (libedit writes it mode 0600); only its
 * last CTL_HISTORY_MAX lines are kept.
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

#include <editline/readline.h>

#include "engine/buf.h"
#include "proto/console.h"

#define CTL_DEFAULT_SOCKET "./sluice-state/control.sock"
#define CTL_PROMPT         "sluicectl> "
#define CTL_HISTORY_FILE   ".sluicectl_history" /* in $HOME */
#define CTL_HISTORY_MAX    1000                 /* lines kept in it */

static void
ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: sluicectl [-s socket | -H host:port] [--json] [command ...]\n"
		"  -s socket     the Control_Listener's Unix socket (default %s)\n"
		"  -H host:port  a TCP Control_Listener instead\n"
		"  --json        print replies as JSON objects\n"
		"  without a command, commands are read from standard input (with line\n"
		"  editing and history on a terminal); try \"help\"\n",
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

/*
 * Run one line of a session and fold its status into *rc (the worst so
 * far).  Returns false when the session is over: quit, shutdown, or a
 * console that is gone.
 */
static bool
ctl_session_line(int fd, const char *line, bool is_json, struct sl_buf *in, int *rc)
{
	int r = ctl_command(fd, line, is_json, in);

	if (r == 2) {
		*rc = 2;
		return false;
	}
	if (r > *rc)
		*rc = r;
	return strcmp(line, "quit") != 0 && strcmp(line, "shutdown") != 0;
}

/* Tab completion: console commands are not file names (libedit's default
 * completion), so Tab completes nothing. */
static char *
ctl_complete_nothing(const char *text, int state)
{
	return NULL;
}

/*
 * The session on a terminal: libedit's readline() edits each line.  The
 * history (CTL_HISTORY_MAX lines) is read from $HOME/.sluicectl_history at
 * the start and written back after each command, so a session ended by
 * Ctrl-C or a closed terminal loses none of it (no file without HOME).
 * Returns the exit status.
 */
static int
ctl_interactive(int fd, bool is_json, struct sl_buf *in)
{
	const char *home = getenv("HOME");
	struct sl_buf hist = SL_BUF_INIT;
	bool is_more = true;
	int rc = 0;

	rl_readline_name = "sluicectl"; /* ~/.editrc lines "sluicectl:..." are ours */
	rl_completion_entry_function = ctl_complete_nothing;
	using_history();
	stifle_history(CTL_HISTORY_MAX);
	if (home != NULL && home[0] != '\0') {
		sl_buf_printf(&hist, "%s/%s", home, CTL_HISTORY_FILE);
		read_history(sl_buf_cstr(&hist)); /* none yet is fine */
	}
	while (is_more) {
		char *line = readline(CTL_PROMPT);

		if (line == NULL) {
			putchar('\n'); /* end of input (^D): leave the shell a fresh line */
			break;
		}
		/* The console answers a line without words with nothing at all
		 * (proto/console.c): it must not be sent. */
		if (line[strspn(line, " \t")] == '\0') {
			free(line);
			continue;
		}
		add_history(line);
		if (hist.len > 0) {
			int err = write_history(sl_buf_cstr(&hist));

			if (err != 0) {
				fprintf(stderr, "sluicectl: cannot write the history to %s: %s\n",
					sl_buf_cstr(&hist), strerror(err));
				sl_buf_reset(&hist); /* said once; kept in memory only */
			}
		}
		if (strlen(line) > SL_CONSOLE_MAX_LINE) {
			/* The console would end the session over it; refuse it here. */
			fprintf(stderr, "sluicectl: a command line is at most %d characters\n",
				SL_CONSOLE_MAX_LINE);
			if (rc < 1)
				rc = 1;
		} else {
			is_more = ctl_session_line(fd, line, is_json, in, &rc);
		}
		free(line);
	}
	sl_buf_free(&hist);
	return rc;
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
	} else if (isatty(STDIN_FILENO)) {
		rc = ctl_interactive(fd, is_json, &in);
	} else {
		char line[SL_CONSOLE_MAX_LINE + 2];

		for (;;) {
			size_t len;

			if (fgets(line, sizeof(line), stdin) == NULL)
				break;
			len = strlen(line);
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			/* The console answers a line of blanks with nothing: never send one. */
			if (line[strspn(line, " \t")] == '\0')
				continue;
			if (!ctl_session_line(fd, line, is_json, &in, &rc))
				break;
		}
	}
	close(fd);
	sl_buf_free(&in);
	return rc;
}
