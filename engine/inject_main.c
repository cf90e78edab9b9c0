/*
 * engine/inject_main.c - sluice-inject: send messages from files, a
 * directory or an mbox to an MTA over ECStream (sluice-ecstream(7)) or SMTP.
 *
 *   sluice-inject [-P ecstream|smtp] [-H host] [-p port] -f sender -t rcpt ...
 *                 [-b binding] [-w window] [-q] path ...
 *
 * Each path is a message file, a directory (its regular files in lexical
 * order, hidden ones skipped, each one message) or an mbox (a file whose
 * first line starts with "From ": split at "From " lines, ">From "
 * unquoted).  Line ends become CRLF.  Every message goes to the same
 * envelope (-f, -t).  One line per message on stdout: the source, then the
 * server's reply ("250 <queue id>" or the refusal).  Exit status: 0 when
 * every message was accepted, 1 when some were refused, 2 on an error
 * (connection, protocol, unreadable input).
 *
 * ECStream frames are pipelined (-w frames in flight, default 64); SMTP
 * sends one transaction at a time on one session.  Blocking sockets: a
 * command-line tool, not part of the daemon.  Parses untrusted input: the
 * server's replies (proto/ecstream.c for ECStream; SMTP reply lines bounded
 * here) and the input files (any bytes; lines of any length).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/buf.h"
#include "proto/ecstream.h"

#define INJ_LINE_MAX 4096 /* an SMTP reply line */

struct inj_msg {
	char *source;       /* "path" or "path#N" (owned) */
	struct sl_buf data; /* CRLF line ends */
};

struct inj {
	const char *proto, *host, *port, *sender, *binding;
	const char **rcpts;
	size_t rcpt_cnt;
	unsigned window;
	bool is_quiet;
	struct inj_msg *msgs;
	size_t msg_cnt;
	int fd;
	struct sl_buf in; /* bytes read, not yet used */
	unsigned refused;
};

static void
inj_usage(FILE *f)
{
	fprintf(f, "usage: sluice-inject [-P ecstream|smtp] [-H host] [-p port] -f sender -t rcpt "
		   "[-t rcpt ...]\n"
		   "                     [-b binding] [-w window] [-q] path ...\n"
		   "  path: a message file, a directory of message files, or an mbox\n"
		   "  -P  protocol (default ecstream; port 1825, smtp: 25)\n"
		   "  -w  ECStream frames in flight (default 64)\n"
		   "  -q  print only refusals\n");
}

/* ------------------------------------------------------------ input */

static void
inj_add(struct inj *j, const char *source, const char *p, size_t len)
{
	struct inj_msg *m;

	j->msgs = sl_reallocarray(j->msgs, j->msg_cnt + 1, sizeof(*j->msgs));
	m = &j->msgs[j->msg_cnt++];
	m->source = sl_strdup(source);
	m->data = (struct sl_buf)SL_BUF_INIT;
	/* CRLF line ends; a last line without one gets one. */
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(p + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - p) : len;
		size_t line_end = end > i && p[end - 1] == '\r' ? end - 1 : end;

		sl_buf_append(&m->data, p + i, line_end - i);
		sl_buf_append(&m->data, "\r\n", 2);
		i = end + 1;
	}
}

static int
inj_read_file(const char *path, struct sl_buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;

	if (f == NULL)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sl_buf_append(out, chunk, n);
	n = (size_t)ferror(f);
	fclose(f);
	return n ? -EIO : 0;
}

/* An mbox: messages start at "From " lines; ">From " loses its '>'. */
static void
inj_split_mbox(struct inj *j, const char *path, const char *p, size_t len)
{
	struct sl_buf cur = SL_BUF_INIT;
	unsigned n = 0;
	char source[4200];

	for (size_t i = 0; i <= len;) {
		const char *nl = i < len ? memchr(p + i, '\n', len - i) : NULL;
		size_t end = nl ? (size_t)(nl - p) + 1 : len;

		if (i == len || (end - i >= 5 && memcmp(p + i, "From ", 5) == 0)) {
			if (cur.len > 0) {
				snprintf(source, sizeof(source), "%s#%u", path, ++n);
				inj_add(j, source, cur.data, cur.len);
				sl_buf_reset(&cur);
			}
			if (i == len)
				break;
		} else if (end - i >= 6 && memcmp(p + i, ">From ", 6) == 0) {
			sl_buf_append(&cur, p + i + 1, end - i - 1);
		} else {
			sl_buf_append(&cur, p + i, end - i);
		}
		i = end;
	}
	sl_buf_free(&cur);
}

static int
inj_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
inj_load(struct inj *j, const char *path)
{
	struct stat st;
	struct sl_buf b = SL_BUF_INIT;
	int rc;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "sluice-inject: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		char **names = NULL;
		size_t cnt = 0;

		if (d == NULL) {
			fprintf(stderr, "sluice-inject: %s: %s\n", path, strerror(errno));
			return -1;
		}
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			names = sl_reallocarray(names, cnt + 1, sizeof(*names));
			names[cnt++] = sl_asprintf("%s/%s", path, e->d_name);
		}
		closedir(d);
		qsort(names, cnt, sizeof(*names), inj_name_cmp);
		rc = 0;
		for (size_t i = 0; i < cnt; i++) {
			if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && rc == 0)
				rc = inj_load(j, names[i]);
			sl_free(names[i]);
		}
		sl_free(names);
		return rc;
	}
	rc = inj_read_file(path, &b);
	if (rc != 0) {
		fprintf(stderr, "sluice-inject: %s: %s\n", path, strerror(-rc));
		sl_buf_free(&b);
		return -1;
	}
	if (b.len >= 5 && memcmp(b.data, "From ", 5) == 0)
		inj_split_mbox(j, path, b.data, b.len);
	else
		inj_add(j, path, b.data, b.len);
	sl_buf_free(&b);
	return 0;
}

/* ------------------------------------------------------------ the wire */

static int
inj_connect(struct inj *j)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *a;
	int rc = getaddrinfo(j->host, j->port, &hints, &res);

	if (rc != 0) {
		fprintf(stderr, "sluice-inject: %s:%s: %s\n", j->host, j->port, gai_strerror(rc));
		return -1;
	}
	j->fd = -1;
	for (a = res; a != NULL && j->fd < 0; a = a->ai_next) {
		j->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (j->fd >= 0 && connect(j->fd, a->ai_addr, a->ai_addrlen) != 0) {
			rc = errno;
			close(j->fd);
			j->fd = -1;
			errno = rc;
		}
	}
	freeaddrinfo(res);
	if (j->fd < 0) {
		fprintf(stderr, "sluice-inject: connect to %s:%s: %s\n", j->host, j->port,
			strerror(errno));
		return -1;
	}
	return 0;
}

static int
inj_write(struct inj *j, const void *p, size_t len)
{
	const char *c = p;

	while (len > 0) {
		ssize_t n = send(j->fd, c, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "sluice-inject: write: %s\n", strerror(errno));
			return -1;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One line (without its CRLF) into line[size]; -1 on EOF, error or an overlong line. */
static int
inj_line(struct inj *j, char *line, size_t size)
{
	for (;;) {
		char *nl = j->in.len ? memchr(j->in.data, '\n', j->in.len) : NULL;
		ssize_t n;

		if (nl != NULL) {
			size_t len = (size_t)(nl - j->in.data);

			if (len > 0 && j->in.data[len - 1] == '\r')
				len--;
			if (len >= size)
				return -1;
			memcpy(line, j->in.data, len);
			line[len] = '\0';
			sl_buf_consume(&j->in, (size_t)(nl - j->in.data) + 1);
			return 0;
		}
		if (j->in.len > INJ_LINE_MAX)
			return -1;
		n = recv(j->fd, sl_buf_reserve(&j->in, 4096), 4096, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		j->in.len += (size_t)n;
	}
}

static void
inj_result(struct inj *j, const struct inj_msg *m, const char *reply, bool is_ok)
{
	if (!is_ok)
		j->refused++;
	if (!is_ok || !j->is_quiet)
		printf("%s: %s\n", m->source, reply);
}

/* ------------------------------------------------------------ ECStream */

static int
inj_ecstream(struct inj *j)
{
	char line[INJ_LINE_MAX], why[160];
	size_t sent = 0, answered = 0;
	uint8_t hdr[SL_ECS_HDR_LEN];

	if (inj_line(j, line, sizeof(line)) != 0 ||
	    strncmp(line, SL_ECS_GREETING, strlen(SL_ECS_GREETING)) != 0) {
		fprintf(stderr, "sluice-inject: not an ECStream greeting: %.200s\n", line);
		return -1;
	}
	while (answered < j->msg_cnt) {
		while (sent < j->msg_cnt && sent - answered < j->window) {
			const struct inj_msg *m = &j->msgs[sent];
			struct sl_buf f = SL_BUF_INIT;
			int rc = sl_ecs_frame_begin(&f, j->sender, j->rcpts, j->rcpt_cnt,
						    j->binding, NULL, 0, m->data.len);

			if (rc != 0) {
				fprintf(stderr, "sluice-inject: the envelope cannot be sent (an "
						"address too long?)\n");
				sl_buf_free(&f);
				return -1;
			}
			rc = inj_write(j, f.data, f.len);
			sl_buf_free(&f);
			if (rc != 0 || inj_write(j, m->data.data, m->data.len) != 0)
				return -1;
			sent++;
		}
		{
			struct sl_ecs_reply r;
			long used;

			if (inj_line(j, line, sizeof(line) - 2) != 0) {
				fprintf(stderr,
					"sluice-inject: the server closed the connection "
					"after %zu replies\n",
					answered);
				return -1;
			}
			strcat(line, "\r\n");
			used = sl_ecs_reply_parse(line, strlen(line), &r, why, sizeof(why));
			if (used <= 0) {
				fprintf(stderr, "sluice-inject: bad reply: %s\n", why);
				return -1;
			}
			line[strlen(line) - 2] = '\0';
			inj_result(j, &j->msgs[answered++], line, r.code == 250);
		}
	}
	sl_ecs_hdr_encode(hdr, SL_ECS_QUIT, 0, 0);
	if (inj_write(j, hdr, sizeof(hdr)) == 0)
		(void)inj_line(j, line, sizeof(line));
	return 0;
}

/* ------------------------------------------------------------ SMTP */

/* A whole (multi-line) reply; its code, the last line in `line`; -1 on error. */
static int
inj_smtp_reply(struct inj *j, char *line, size_t size)
{
	for (;;) {
		if (inj_line(j, line, size) != 0 || strlen(line) < 3)
			return -1;
		if (line[3] != '-')
			return atoi(line);
	}
}

static int
inj_smtp_cmd(struct inj *j, const char *cmd, char *line, size_t size)
{
	if (inj_write(j, cmd, strlen(cmd)) != 0)
		return -1;
	return inj_smtp_reply(j, line, size);
}

static int
inj_smtp(struct inj *j)
{
	char line[INJ_LINE_MAX], cmd[700];
	int code;

	if (inj_smtp_reply(j, line, sizeof(line)) != 220 ||
	    inj_smtp_cmd(j, "EHLO sluice-inject\r\n", line, sizeof(line)) != 250) {
		fprintf(stderr, "sluice-inject: the server did not take EHLO: %.200s\n", line);
		return -1;
	}
	for (size_t i = 0; i < j->msg_cnt; i++) {
		const struct inj_msg *m = &j->msgs[i];
		struct sl_buf body = SL_BUF_INIT;

		snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\n", j->sender);
		code = inj_smtp_cmd(j, cmd, line, sizeof(line));
		for (size_t r = 0; code / 100 == 2 && r < j->rcpt_cnt; r++) {
			snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", j->rcpts[r]);
			code = inj_smtp_cmd(j, cmd, line, sizeof(line));
		}
		if (code / 100 == 2)
			code = inj_smtp_cmd(j, "DATA\r\n", line, sizeof(line));
		if (code < 0)
			return -1;
		if (code != 354) {
			inj_result(j, m, line, false);
			if (inj_smtp_cmd(j, "RSET\r\n", line, sizeof(line)) < 0)
				return -1;
			continue;
		}
		/* Dot-stuffing (RFC 5321 §4.5.2). */
		for (size_t k = 0; k < m->data.len;) {
			const char *nl = memchr(m->data.data + k, '\n', m->data.len - k);
			size_t end = nl ? (size_t)(nl - m->data.data) + 1 : m->data.len;

			if (m->data.data[k] == '.')
				sl_buf_append(&body, ".", 1);
			sl_buf_append(&body, m->data.data + k, end - k);
			k = end;
		}
		sl_buf_append(&body, ".\r\n", 3);
		code = inj_write(j, body.data, body.len) == 0
			       ? inj_smtp_reply(j, line, sizeof(line))
			       : -1;
		sl_buf_free(&body);
		if (code < 0)
			return -1;
		inj_result(j, m, line, code / 100 == 2);
	}
	(void)inj_smtp_cmd(j, "QUIT\r\n", line, sizeof(line));
	return 0;
}

int
main(int argc, char **argv)
{
	struct inj j = { .proto = "ecstream", .host = "127.0.0.1", .window = 64, .fd = -1 };
	int c, rc = 0;

	while ((c = getopt(argc, argv, "P:H:p:f:t:b:w:qh")) != -1) {
		switch (c) {
		case 'P':
			j.proto = optarg;
			break;
		case 'H':
			j.host = optarg;
			break;
		case 'p':
			j.port = optarg;
			break;
		case 'f':
			j.sender = optarg;
			break;
		case 't':
			j.rcpts = sl_reallocarray(j.rcpts, j.rcpt_cnt + 1, sizeof(*j.rcpts));
			j.rcpts[j.rcpt_cnt++] = optarg;
			break;
		case 'b':
			j.binding = optarg;
			break;
		case 'w':
			j.window = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'q':
			j.is_quiet = true;
			break;
		case 'h':
			inj_usage(stdout);
			sl_free(j.rcpts);
			return 0;
		default:
			inj_usage(stderr);
			sl_free(j.rcpts);
			return 2;
		}
	}
	if (strcmp(j.proto, "ecstream") != 0 && strcmp(j.proto, "smtp") != 0) {
		fprintf(stderr, "sluice-inject: -P: ecstream or smtp\n");
		sl_free(j.rcpts);
		return 2;
	}
	if (j.sender == NULL || j.rcpt_cnt == 0 || optind >= argc || j.window == 0) {
		inj_usage(stderr);
		sl_free(j.rcpts);
		return 2;
	}
	if (j.port == NULL)
		j.port = strcmp(j.proto, "smtp") == 0 ? "25" : "1825";
	for (int i = optind; i < argc && rc == 0; i++)
		if (inj_load(&j, argv[i]) != 0)
			rc = 2;
	if (rc == 0 && j.msg_cnt == 0) {
		fprintf(stderr, "sluice-inject: no message to send\n");
		rc = 2;
	}
	if (rc == 0 && inj_connect(&j) != 0)
		rc = 2;
	if (rc == 0) {
		rc = (strcmp(j.proto, "smtp") == 0 ? inj_smtp(&j) : inj_ecstream(&j)) != 0 ? 2
		     : j.refused > 0                                                       ? 1
											   : 0;
		close(j.fd);
	}
	fflush(stdout);
	for (size_t i = 0; i < j.msg_cnt; i++) {
		sl_free(j.msgs[i].source);
		sl_buf_free(&j.msgs[i].data);
	}
	sl_free(j.msgs);
	sl_free(j.rcpts);
	sl_buf_free(&j.in);
	return rc;
}
