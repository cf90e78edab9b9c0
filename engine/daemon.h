/*
 * engine/daemon.h - process chores: pidfile, detaching, directories.
 *
 * Threads: main thread, before the stages start (sl_daemonize forks, so no
 * other thread may exist yet).  Return 0 or -errno; they never log.
 */
#ifndef SL_ENGINE_DAEMON_H
#define SL_ENGINE_DAEMON_H

#include <sys/types.h>

/*
 * Create `path` holding our pid, locked (flock) for the life of the process
 * (the lock survives sl_daemonize).  -EEXIST when another live process holds
 * it (its pid in *other_pid if not NULL, 0 if unreadable); a stale file
 * without a lock is taken over.  A symlink at `path` is refused (-ELOOP).
 */
int sl_pidfile_create(const char *path, pid_t *other_pid);
/* Rewrite the pidfile with the current pid (after sl_daemonize). */
int sl_pidfile_update(void);
/* Give the pidfile to uid:gid (before giving up root, so removal can work). */
int sl_pidfile_chown(uid_t uid, gid_t gid);
/*
 * Remove and unlock the pidfile we created.  Safe if none.  When the
 * directory does not let us remove it (root was given up), the file is
 * emptied instead, which the next start takes over as stale, and -errno
 * of the unlink is returned.
 */
int sl_pidfile_remove(void);

/*
 * Detach: fork (the parent exits 0 once the child says it started), setsid,
 * stdin/stdout/stderr to /dev/null.  Call sl_daemon_ready() in the child when
 * start-up has succeeded; if the child exits first the parent exits 1.
 */
int sl_daemonize(void);
void sl_daemon_ready(void);

/*
 * Tell the service manager our state (sd_notify(3)'s protocol, without
 * libsystemd): `state` ("READY=1", "RELOADING=1", "STOPPING=1") as one
 * datagram to the Unix socket $NOTIFY_SOCKET names ('@': the abstract
 * namespace).  0 when sent or when nobody asked (no NOTIFY_SOCKET); -errno.
 * Any thread.
 */
int sl_notify(const char *state);

/*
 * mkdir -p with `mode` for each missing component; each directory this call
 * creates is given to uid:gid ((uid_t)-1, (gid_t)-1: left as created, as
 * with chown(2)), so the user sluiced switches to can write in it.
 */
int sl_mkdir_p(const char *path, mode_t mode, uid_t uid, gid_t gid);

#endif /* SL_ENGINE_DAEMON_H */
