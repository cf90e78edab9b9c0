/*
 * engine/daemon.c - pidfile, detaching and directory creation (see daemon.h).
 *
 * The pidfile is held with flock() for the life of the process: the lock,
 * not the file's existence, says whether an instance runs, so a stale file
 * left by a crash never blocks a restart.  sl_daemonize() keeps the parent
 * waiting on a pipe until the child reports a successful start-up, so the
 * shell that started sluiced learns whether it came up.
 *
 * Threads: main thread only, before other threads exist.  Parses a pid
 * number from the pidfile of another instance (bounded read).  Ownership:
 * this file owns the pidfile descriptor and path and the ready pipe.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/daemon.h"

static int pidfile_fd = -1;
static char *pidfile_path;       /* owned while pidfile_fd is open */
static int daemon_ready_fd = -1; /* child: write end of the parent's pipe */

/* Read the pid another instance wrote; 0 if unreadable. */
static pid_t
pidfile_read_other(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid = 0;
	char *end;

	if (n > 0) {
		buf[n] = '\0';
		errno = 0;
		pid = strtol(buf, &end, 10);
		if (errno != 0 || end == buf || pid <= 0 || pid > INT_MAX)
			pid = 0;
	}
	return (pid_t)pid;
}

static int
pidfile_write(int fd)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid()), rc = 0;

	errno = 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len)
		rc = errno != 0 ? -errno : -EIO;
	return rc;
}

int
sl_pidfile_create(const char *path, pid_t *other_pid)
{
	struct stat fst, pst;
	int fd = -1, rc = 0;

	if (other_pid != NULL)
		*other_pid = 0;
	for (;;) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0) {
			rc = -errno;
			goto fail_open;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			rc = errno == EWOULDBLOCK ? -EEXIST : -errno;
			if (rc == -EEXIST && other_pid != NULL)
				*other_pid = pidfile_read_other(fd);
			goto fail_lock;
		}
		/*
		 * The holder we waited for may have unlinked the file before
		 * releasing it: then we locked an orphan.  Retry on the path.
		 */
		if (fstat(fd, &fst) == 0 && stat(path, &pst) == 0 && fst.st_dev == pst.st_dev &&
		    fst.st_ino == pst.st_ino)
			break;
		close(fd);
	}
	rc = pidfile_write(fd);
	if (rc < 0)
		goto fail_lock;
	pidfile_fd = fd;
	pidfile_path = sl_strdup(path);
	goto out;

fail_lock:
	close(fd);
fail_open:
out:
	return rc;
}

int
sl_pidfile_update(void)
{
	return pidfile_fd < 0 ? 0 : pidfile_write(pidfile_fd);
}

int
sl_pidfile_chown(uid_t uid, gid_t gid)
{
	return pidfile_fd < 0 || fchown(pidfile_fd, uid, gid) == 0 ? 0 : -errno;
}

int
sl_pidfile_remove(void)
{
	int rc = 0;

	if (pidfile_fd >= 0) {
		/* Unlink while still locked, so no one can lock the name in between. */
		if (unlink(pidfile_path) != 0 && errno != ENOENT) {
			rc = -errno;
			/* An empty file with no lock is stale to the next sl_pidfile_create. */
			if (ftruncate(pidfile_fd, 0) != 0)
				rc = -errno;
		}
		close(pidfile_fd);
		pidfile_fd = -1;
		sl_free(pidfile_path);
		pidfile_path = NULL;
	}
	return rc;
}

int
sl_daemonize(void)
{
	int pfd[2], null_fd, rc = 0;
	pid_t pid;
	char c;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail_pipe;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto fail_fork;
	}
	if (pid > 0) {
		/* Parent: one byte means started; EOF means the child died first. */
		close(pfd[1]);
		do
			n = read(pfd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? 0 : 1);
	}
	close(pfd[0]);
	daemon_ready_fd = pfd[1];
	if (setsid() < 0) {
		rc = -errno;
		goto fail_child;
	}
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0) {
		rc = -errno;
		goto fail_child;
	}
	/* dup2 clears O_CLOEXEC on the copies, as standard streams want. */
	if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(null_fd, STDOUT_FILENO) < 0 ||
	    dup2(null_fd, STDERR_FILENO) < 0)
		rc = -errno;
	if (null_fd > STDERR_FILENO)
		close(null_fd);
	goto out;

fail_fork:
	close(pfd[0]);
	close(pfd[1]);
fail_pipe:
fail_child:
	/* In the child, the parent reads EOF when we exit; our caller reports rc. */
out:
	return rc;
}

void
sl_daemon_ready(void)
{
	char c = 1;

	if (daemon_ready_fd >= 0) {
		/* A failed write means the parent is gone: nobody is left to tell. */
		if (write(daemon_ready_fd, &c, 1) != 1)
			c = 0;
		close(daemon_ready_fd);
		daemon_ready_fd = -1;
	}
}

int
sl_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	socklen_t sa_len;
	ssize_t n;
	int fd, err = 0;

	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* the abstract namespace */
	sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}

int
sl_mkdir_p(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat sb;
	char *copy, *p, saved;
	int rc = 0;

	if (path[0] == '\0')
		return -ENOENT; /* nothing allocated yet */
	copy = sl_strdup(path);
	/* Create each prefix that ends before a '/' (or the end), skipping "//". */
	for (p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (p[-1] == '/') {
			if (*p == '\0')
				break;
			continue;
		}
		saved = *p;
		*p = '\0';
		if (mkdir(copy, mode) == 0) {
			if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(copy, uid, gid) < 0) {
				rc = -errno;
				goto out;
			}
		} else {
			rc = -errno;
			if (rc == -EEXIST)
				rc = stat(copy, &sb) < 0   ? -errno
				     : S_ISDIR(sb.st_mode) ? 0
							   : -ENOTDIR;
			if (rc < 0)
				goto out;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
out:
	sl_free(copy);
	return rc;
}
