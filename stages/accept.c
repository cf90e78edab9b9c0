/*
 * stages/accept.c - the accept stage: listening sockets and accept threads.
 *
 * sl_accept_open() binds every enabled address of ESMTP_Listener,
 * ECStream_Listener and Control_Listener before the daemon detaches, so a
 * busy port is a start-up error on the operator's terminal.  Each address
 * then gets `~N` accept threads (named "acc:<port>/<i>", visible in
 * /proc/PID/task/ * /comm) that wait for a connection, accept4() it, walk
 * the listener's IP ACL for the peer once (first match; `continue` lets the
 * next match apply on top), enforce listener_sessions and service_sessions
 * (421 and close), and hand the connection with its snapshot reference to a
 * protocol thread.  A reload reconciles the listeners with the new file:
 * kept addresses keep their socket, new ones are bound, removed ones shut
 * down, and a changed ~N starts or ends accept threads at once.
 *
 * Unix-socket clients have no IP address: the ACL sees them as 127.0.0.1.
 * ESMTP and ECStream connections go to the protocol stage, Control
 * connections to the control stage (sluicectl).
 *
 * Threads: open/start/interrupt/close on the main thread, reconcile on the
 * thread that reloads (signal or control); the accept threads own nothing
 * but the connection they are handing over.  Session counters are atomics
 * per listener (touched once per connection).  Locks: accept_lock, then
 * the engine's own inside sl_stage_spawn/sl_stage_reap; an accept thread
 * takes neither, so reaping one under accept_lock cannot deadlock.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf_holder.h"
#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/counter.h"
#include "engine/log.h"
#include "stages/eclog.h"
#include "stages/events.h"
#include "stages/stages.h"
#include "stages/stats.h"

/*
 * How an accept thread is stopped alone.  shutdown() of the shared socket
 * would stop every thread of the listener (it is how a removed listener
 * ends).  A signal can land between the thread's look at its flag and its
 * accept4(), and is then lost.  A connection to ourselves goes to whichever
 * thread has waited longest, usually one that stays, and would be a
 * session.  So each thread waits in an epoll set of its own that holds the
 * shared socket with EPOLLEXCLUSIVE (a connection wakes one waiting thread,
 * as a blocking accept4() did: no thundering herd) and an eventfd that only
 * this thread watches: writing it wakes that thread and no other.  The
 * socket is non-blocking, so a thread woken with another one finds nothing
 * (EAGAIN) instead of blocking where its eventfd cannot reach it, and a
 * thread accepts until EAGAIN before it looks at its flag, so no connection
 * whose wake-up it took is left waiting for the others.
 */

struct accept_listener;

/*
 * One accept thread, "acc:<port>/<k>": made under accept_lock by whoever
 * starts it (start, reload), freed under accept_lock once its thread is
 * reaped (a reload) or after the stage stopped (sl_accept_close).
 */
struct accept_worker {
	struct accept_listener *l; /* its listener (which owns this) */
	struct sl_thread *t;       /* its thread (the engine's) */
	int listen_fd;             /* l->fd at the start: open while this thread lives */
	int epoll_fd;              /* owned: listen_fd (EPOLLEXCLUSIVE) and wake_fd */
	int wake_fd;               /* owned: eventfd, written once to stop this thread */
	unsigned tag;              /* session id byte (accept_tag_take) */
	uint64_t seq;              /* sessions numbered; the thread's own while it runs */
	bool is_stopping;          /* atomic: end after the connections at hand */
};

/*
 * One listening address.  Allocated on its own and kept until
 * sl_accept_close().  Its descriptor is closed only when no accept thread
 * of it is left (a reload that removes it reaps them first), so no thread
 * ever accepts on a reused one.  Every field but the immutable rt, text
 * and loc is accept_lock's.
 */
struct accept_listener {
	struct sl_listener_rt rt;
	int fd;
	char text[128];         /* the address as configured (normalised) */
	unsigned thread_cnt;    /* accept threads: workers[0..thread_cnt-1] */
	unsigned open_threads;  /* ~N when it was opened: what starting it starts */
	struct sl_conf_loc loc; /* where it was configured, for messages */
	bool is_removed;        /* a reload took it out: threads reaped, socket closed */
	struct accept_worker *workers[SL_LISTEN_THREADS_MAX]; /* owned */
};

/* The listeners (owned); accept_lock guards the array against reloads and the stop. */
static pthread_mutex_t accept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct accept_listener **accept_listeners;
static size_t accept_listener_cnt;
/*
 * Session ids are "<start time>-<tag><sequence>".  A running accept thread
 * holds a tag no other running one has (while fewer than 256 run), and a
 * tag given again goes on with its last holder's sequence, so ids stay
 * unique however often reloads end and start threads.  accept_lock.
 */
static bool accept_tag_is_used[256];
static uint64_t accept_tag_seq[256];
static unsigned accept_tag_next; /* more than 256 threads: tags are shared */
static uint32_t accept_service_sessions[SL_LISTENER__COUNT];
static struct sl_stage *accept_stage;
static struct sl_stage *accept_protocol;
static struct sl_stage *accept_control;
static uint32_t accept_start_time;
static unsigned accept_counter_refused;
static unsigned accept_counter_accepted;

static const enum sl_opt accept_opts[SL_LISTENER__COUNT] = {
	[SL_LISTENER_ESMTP] = SL_OPT_ESMTP_LISTENER,
	[SL_LISTENER_ECSTREAM] = SL_OPT_ECSTREAM_LISTENER,
	[SL_LISTENER_CONTROL] = SL_OPT_CONTROL_LISTENER,
};

/* Remove a stale Unix socket (nobody accepts on it); refuse to touch anything else. */
static int
accept_unix_stale(const char *path, char *why, size_t why_len)
{
	struct stat st;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, why_len, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0) {
		snprintf(why, why_len, "another process listens on %s", path);
		return -EADDRINUSE;
	}
	return unlink(path) == 0 ? 0 : -errno;
}

static int
accept_socket(const struct sl_conf_listen_addr *a, char *why, size_t why_len)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int family, fd, on = 1, off = 0, rc;

	memset(&ss, 0, sizeof(ss));
	switch (a->family) {
	case SL_LISTEN_UNIX: {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;

		rc = accept_unix_stale(a->path, why, why_len);
		if (rc < 0) {
			if (why[0] == '\0')
				snprintf(why, why_len, "%s: %s", a->path, strerror(-rc));
			return rc;
		}
		sun->sun_family = AF_UNIX;
		snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", a->path);
		family = AF_UNIX;
		len = sizeof(*sun);
		break;
	}
	case SL_LISTEN_INET4: {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		inet_pton(AF_INET, a->host, &sin->sin_addr);
		family = AF_INET;
		len = sizeof(*sin);
		break;
	}
	case SL_LISTEN_INET6: {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		inet_pton(AF_INET6, a->host, &sin6->sin6_addr);
		family = AF_INET6;
		len = sizeof(*sin6);
		break;
	}
	case SL_LISTEN_ANY:
	default:
		if (a->proto == SL_LISTEN_PROTO_IPV4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_family = AF_INET;
			sin->sin_port = htons(a->port);
			family = AF_INET;
			len = sizeof(*sin);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(a->port);
			sin6->sin6_addr = in6addr_any;
			family = AF_INET6;
			len = sizeof(*sin6);
		}
		break;
	}
	/* Non-blocking: see "How an accept thread is stopped alone". */
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && family == AF_INET6 && a->family == SL_LISTEN_ANY &&
	    a->proto == SL_LISTEN_PROTO_BOTH && errno == EAFNOSUPPORT) {
		/* No IPv6 on this host: "*" means every IPv4 address then. */
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		memset(&ss, 0, sizeof(ss));
		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		family = AF_INET;
		len = sizeof(*sin);
		fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0) {
		rc = -errno;
		snprintf(why, why_len, "socket: %s", strerror(errno));
		return rc;
	}
	if (family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (family == AF_INET6) {
		int v6only =
			a->family == SL_LISTEN_ANY && a->proto == SL_LISTEN_PROTO_BOTH ? off : on;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
		rc = -errno;
		snprintf(why, why_len, "bind: %s", strerror(errno));
		goto fail_fd;
	}
	if (family == AF_UNIX &&
	    chmod(a->path, a->kind == SL_LISTENER_CONTROL ? 0600 : 0666) != 0) {
		rc = -errno;
		snprintf(why, why_len, "chmod %s: %s", a->path, strerror(errno));
		goto fail_fd;
	}
	if (listen(fd, (int)a->backlog) != 0) {
		rc = -errno;
		snprintf(why, why_len, "listen: %s", strerror(errno));
		goto fail_fd;
	}
	return fd;
fail_fd:
	close(fd);
	return rc;
}

/* Bind a new listener for `a` and add it to the array (no threads yet); NULL on failure. */
static struct accept_listener *
accept_listener_new(const struct sl_conf_listen_addr *a, char *why, size_t why_len)
{
	struct accept_listener *l;
	char reason[256] = "";
	int fd = accept_socket(a, reason, sizeof(reason));

	if (fd < 0) {
		snprintf(why, why_len, "%s:%u: cannot listen on %s (%s): %s", a->loc.file,
			 a->loc.line, a->text, sl_listener_kind_name(a->kind), reason);
		return NULL;
	}
	l = SL_NEW(l);
	l->fd = fd;
	l->rt.magic = SL_LISTENER_RT_MAGIC;
	l->rt.kind = a->kind;
	l->rt.service_sessions = &accept_service_sessions[a->kind];
	snprintf(l->text, sizeof(l->text), "%s", a->text);
	l->rt.name = l->text;
	/* A listener removed and added again finds its group (and counts) again. */
	if (a->kind != SL_LISTENER_CONTROL)
		l->rt.group = sl_group_of_listener(l->text);
	l->open_threads = a->accept_threads;
	l->loc = a->loc;
	accept_listeners = sl_reallocarray(accept_listeners, accept_listener_cnt + 1,
					   sizeof(*accept_listeners));
	accept_listeners[accept_listener_cnt++] = l;
	return l;
}

int
sl_accept_open(const struct sl_conf_snapshot *s, char *why, size_t why_len)
{
	size_t cnt = 0;

	SL_ASSERT(accept_listeners == NULL);
	for (int k = 0; k < SL_LISTENER__COUNT; k++) {
		const union sl_conf_val *v = sl_conf_global(s, accept_opts[k]);

		cnt += v ? v->listener->addr_cnt : 0;
	}
	accept_listeners = sl_calloc(cnt ? cnt : 1, sizeof(*accept_listeners));
	for (int k = 0; k < SL_LISTENER__COUNT; k++) {
		const union sl_conf_val *v = sl_conf_global(s, accept_opts[k]);

		for (size_t i = 0; v != NULL && i < v->listener->addr_cnt; i++) {
			const struct sl_conf_listen_addr *a = &v->listener->addrs[i];

			if (a->is_disabled)
				continue;
			for (size_t j = 0; j < accept_listener_cnt; j++) {
				if (strcmp(accept_listeners[j]->text, a->text) == 0) {
					snprintf(why, why_len,
						 "%s:%u: %s %s is listed twice (also at %s:%u)",
						 a->loc.file, a->loc.line,
						 sl_listener_kind_name(a->kind), a->text,
						 accept_listeners[j]->loc.file,
						 accept_listeners[j]->loc.line);
					goto fail;
				}
			}
			if (accept_listener_new(a, why, why_len) == NULL)
				goto fail;
		}
	}
	return 0;
fail:
	sl_accept_close();
	return -1;
}

size_t
sl_accept_listener_cnt(void)
{
	size_t n = 0;

	pthread_mutex_lock(&accept_lock);
	for (size_t i = 0; i < accept_listener_cnt; i++)
		n += !accept_listeners[i]->is_removed;
	pthread_mutex_unlock(&accept_lock);
	return n;
}

/* The current configuration's entry for listener `l`, or NULL if a reload removed it. */
static const struct sl_conf_listen_addr *
accept_find_addr(const struct sl_conf_snapshot *s, const struct accept_listener *l)
{
	const union sl_conf_val *v = sl_conf_global(s, accept_opts[l->rt.kind]);

	for (size_t i = 0; v != NULL && i < v->listener->addr_cnt; i++)
		if (strcmp(v->listener->addrs[i].text, l->text) == 0)
			return &v->listener->addrs[i];
	return NULL;
}

/* An integer personality option after the ACL walk: the last entry that sets it. */
static int64_t
accept_personality_int(const struct sl_conf_snapshot *s, const struct sl_conf_acl_match *m,
		       enum sl_opt opt)
{
	const union sl_conf_val *v = s->dflt[opt];

	for (size_t i = 0; i < m->applied_cnt; i++) {
		const struct sl_conf_setting *set =
			sl_conf_settings_find(m->applied[i]->personality, opt);

		if (set != NULL)
			v = &set->v;
	}
	return v ? v->i : 0;
}

static void
accept_refuse(int fd, const char *text)
{
	/* Best effort on a fresh socket: the client may already be gone. */
	if (send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		sl_log_debug("refusal not sent: %s", strerror(errno));
	close(fd);
}

static void
accept_format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "unix");
	}
}

static void
accept_handle(struct accept_worker *w, int fd, const struct sockaddr_storage *peer,
	      socklen_t peer_len)
{
	struct accept_listener *l = w->l;
	struct sl_conf_snapshot *s = sl_conf_current();
	const struct sl_conf_listen_addr *a;
	struct sl_session_new_ev *ev;
	struct sockaddr_in loopback = { .sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const struct sockaddr *acl_peer = (const struct sockaddr *)peer;
	int64_t max_listener, max_service;
	uint32_t n_listener, n_service;
	char id[SL_SESSION_ID_LEN];

	snprintf(id, sizeof(id), "%08" PRIX32 "-%02X%010" PRIX64, accept_start_time, w->tag,
		 ++w->seq & (uint64_t)0xffffffffff);
	a = s ? accept_find_addr(s, l) : NULL;
	if (a == NULL) {
		/* Removed by a reload. */
		sl_log_debug("closing connection %s on %s: no protocol serves it", id, l->text);
		close(fd);
		sl_conf_snapshot_put(s);
		return;
	}
	ev = SL_NEW(ev);
	sl_event_init(&ev->ev, SL_EV_SESSION_NEW);
	if (peer->ss_family == AF_UNIX)
		acl_peer = (const struct sockaddr *)&loopback;
	sl_conf_acl_resolve(a, acl_peer, &ev->acl);

	max_listener = accept_personality_int(s, &ev->acl, SL_OPT_LISTENER_SESSIONS);
	max_service = accept_personality_int(s, &ev->acl, SL_OPT_SERVICE_SESSIONS);
	sl_group_add(l->rt.group, SL_GS_IN_ASSOC_TOTAL, 1);
	n_listener = __atomic_add_fetch(&l->rt.sessions, 1, __ATOMIC_RELAXED);
	n_service = __atomic_add_fetch(l->rt.service_sessions, 1, __ATOMIC_RELAXED);
	if ((max_listener > 0 && n_listener > max_listener) ||
	    (max_service > 0 && n_service > max_service)) {
		char remote[80], local[80];
		struct sockaddr_storage lss;
		socklen_t llen = sizeof(lss);

		__atomic_sub_fetch(&l->rt.sessions, 1, __ATOMIC_RELAXED);
		__atomic_sub_fetch(l->rt.service_sessions, 1, __ATOMIC_RELAXED);
		accept_format_addr(peer, remote, sizeof(remote));
		if (getsockname(fd, (struct sockaddr *)&lss, &llen) != 0)
			lss.ss_family = AF_UNSPEC;
		accept_format_addr(&lss, local, sizeof(local));
		sl_eclog_reject(remote, local, id, "connect", 421, "accept",
				n_listener > max_listener && max_listener > 0
					? "too many sessions on this listener (listener_sessions)"
					: "too many sessions for this service (service_sessions)");
		accept_refuse(fd,
			      l->rt.kind == SL_LISTENER_ECSTREAM
				      ? "ECS1-ERR 421 4.7.0 Too many sessions, try again later\r\n"
				      : "421 4.7.0 Too many sessions, try again later\r\n");
		sl_counter_add(accept_counter_refused, 1);
		sl_group_add(l->rt.group, SL_GS_IN_ASSOC_REFUSED, 1);
		sl_group_error(l->rt.group, "4.7.0");
		sl_conf_snapshot_put(s);
		sl_free(ev);
		return;
	}
	ev->fd = fd;
	memcpy(&ev->peer, peer, sizeof(*peer));
	ev->peer_len = peer_len;
	ev->local_len = sizeof(ev->local);
	if (getsockname(fd, (struct sockaddr *)&ev->local, &ev->local_len) != 0)
		ev->local.ss_family = AF_UNSPEC;
	ev->snap = s;
	ev->addr = a;
	ev->lrt = &l->rt;
	memcpy(ev->id, id, sizeof(id));
	sl_counter_add(accept_counter_accepted, 1);
	sl_send(l->rt.kind == SL_LISTENER_CONTROL ? accept_control : accept_protocol, &ev->ev);
}

/*
 * Accept until nothing waits (EAGAIN).  -1 when the socket is shut down
 * (EINVAL: its listener was removed, or sluiced stops).
 */
static int
accept_drain(struct accept_worker *w)
{
	int rc = 0;

	for (;;) {
		struct sockaddr_storage peer = { .ss_family = AF_UNSPEC };
		socklen_t plen = sizeof(peer);
		int fd = accept4(w->listen_fd, (struct sockaddr *)&peer, &plen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINVAL || errno == EBADF) {
				rc = -1;
				break;
			}
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO ||
			    errno == ENETDOWN || errno == EHOSTUNREACH)
				continue;
			/* Out of descriptors or memory: back off instead of spinning. */
			sl_log_err("accept on %s: %s", w->l->text, strerror(errno));
			nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
			break;
		}
		if (peer.ss_family != AF_UNIX) {
			int on = 1;

			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		}
		accept_handle(w, fd, &peer, plen);
	}
	return rc;
}

static void
accept_thread(struct sl_thread *t)
{
	struct accept_worker *w = sl_thread_arg(t);

	SL_CHECK_OBJ(&w->l->rt, SL_LISTENER_RT_MAGIC);
	while (!__atomic_load_n(&w->is_stopping, __ATOMIC_ACQUIRE) && !sl_thread_stopping(t)) {
		struct epoll_event evs[2];

		/* The socket has a connection, or wake_fd says stop. */
		if (epoll_wait(w->epoll_fd, evs, 2, -1) < 0)
			SL_ASSERT(errno == EINTR);
		if (accept_drain(w) != 0)
			break;
	}
}

/* Give w a session id tag (see accept_tag_is_used). */
static void
accept_tag_take(struct accept_worker *w)
{
	unsigned tag = 0;

	while (tag < 256 && accept_tag_is_used[tag])
		tag++;
	if (tag == 256)
		tag = accept_tag_next++ & 0xff;
	accept_tag_is_used[tag] = true;
	w->tag = tag;
	w->seq = accept_tag_seq[tag];
}

/* After w's thread ended: its tag goes back with the sequence reached. */
static void
accept_tag_put(struct accept_worker *w)
{
	accept_tag_is_used[w->tag] = false;
	if (w->seq > accept_tag_seq[w->tag])
		accept_tag_seq[w->tag] = w->seq;
}

static void
accept_worker_free(struct accept_worker *w)
{
	if (w == NULL)
		return;
	if (w->epoll_fd >= 0)
		close(w->epoll_fd);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	sl_free(w);
}

/* Start accept thread k of `l` (accept_lock held).  0, or -1 with why set. */
static int
accept_worker_start(struct accept_listener *l, unsigned k, char *why, size_t why_len)
{
	const char *tag = strrchr(l->text, l->text[0] == '/' ? '/' : ':');
	struct accept_worker *w = SL_NEW(w);
	struct epoll_event sock_ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
	struct epoll_event wake_ev = { .events = EPOLLIN };
	char name[160];
	int rc = 0;

	SL_ASSERT(k < SL_LISTEN_THREADS_MAX && l->workers[k] == NULL && l->fd >= 0);
	snprintf(name, sizeof(name), "acc:%s/%u", tag ? tag + 1 : l->text, k);
	w->l = l;
	w->listen_fd = l->fd;
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epoll_fd < 0)
		rc = -errno;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rc == 0 && w->wake_fd < 0)
		rc = -errno;
	if (rc == 0 && (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->listen_fd, &sock_ev) != 0 ||
			epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->wake_fd, &wake_ev) != 0))
		rc = -errno;
	if (rc != 0)
		goto fail;
	accept_tag_take(w);
	rc = sl_stage_spawn(accept_stage, name, accept_thread, w, &w->t);
	if (rc < 0) {
		accept_tag_put(w);
		goto fail;
	}
	l->workers[k] = w;
	return 0;
fail:
	snprintf(why, why_len, "cannot start accept thread %s: %s", name, strerror(-rc));
	accept_worker_free(w);
	return -1;
}

/* Tell w's thread to end and wake it; the other threads of its listener sleep on. */
static void
accept_worker_stop(struct accept_worker *w)
{
	uint64_t one = 1;

	__atomic_store_n(&w->is_stopping, true, __ATOMIC_RELEASE);
	/* Adding 1 to an eventfd fails only when its counter would overflow. */
	if (write(w->wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		sl_log_err("waking %s: %s", sl_thread_name(w->t), strerror(errno));
}

/*
 * Set the accept threads of `l` to `want` (accept_lock held): start the
 * missing ones, or stop the surplus (threads want.. end after the
 * connections at hand; the socket stays open and threads 0..want-1 keep
 * accepting), wait for them and release their slots.  0, or -1 with why
 * set when a thread cannot be started (those that could run).  A stage that
 * is stopping ends the surplus itself; sl_accept_close frees them then.
 */
static int
accept_set_threads(struct accept_listener *l, unsigned want, char *why, size_t why_len)
{
	int rc = 0;

	SL_ASSERT(want <= SL_LISTEN_THREADS_MAX);
	while (l->thread_cnt < want && rc == 0) {
		rc = accept_worker_start(l, l->thread_cnt, why, why_len);
		if (rc == 0)
			l->thread_cnt++;
	}
	for (unsigned k = want; k < l->thread_cnt; k++)
		accept_worker_stop(l->workers[k]);
	while (l->thread_cnt > want) {
		struct accept_worker *w = l->workers[l->thread_cnt - 1];

		if (sl_stage_reap(accept_stage, w->t) != 0)
			break;
		accept_tag_put(w);
		accept_worker_free(w);
		l->workers[--l->thread_cnt] = NULL;
	}
	return rc;
}

int
sl_accept_start(struct sl_stage *st, char *why, size_t why_len)
{
	int rc = 0;

	accept_protocol = sl_stage_find("protocol");
	accept_control = sl_stage_find("control");
	SL_ASSERT(accept_protocol != NULL && accept_control != NULL);
	accept_start_time = (uint32_t)time(NULL);
	accept_counter_accepted = sl_counter_register("accept.sessions");
	accept_counter_refused = sl_counter_register("accept.refused");
	accept_stage = st;
	pthread_mutex_lock(&accept_lock);
	for (size_t i = 0; i < accept_listener_cnt && rc == 0; i++)
		rc = accept_set_threads(accept_listeners[i], accept_listeners[i]->open_threads, why,
					why_len);
	pthread_mutex_unlock(&accept_lock);
	return rc;
}

/* A reload took `l` out (accept_lock held): end its threads, then close it. */
static void
accept_remove(struct accept_listener *l)
{
	l->is_removed = true;
	/* Told before the shutdown: a shut Unix socket stays readable, and a
	 * thread not told yet would go round on it.  Telling twice is harmless. */
	for (unsigned k = 0; k < l->thread_cnt; k++)
		accept_worker_stop(l->workers[k]);
	/* Connections waiting in the backlog are refused; accept4() fails. */
	shutdown(l->fd, SHUT_RD);
	(void)accept_set_threads(l, 0, NULL, 0);
	if (l->thread_cnt == 0) {
		close(l->fd);
		l->fd = -1;
		if (l->text[0] == '/')
			unlink(l->text);
	}
	sl_log_notice("listener %s (%s) removed by the reload", l->text,
		      sl_listener_kind_name(l->rt.kind));
}

/*
 * After a reload: listeners the new configuration keeps go on untouched
 * (their sockets, so no connection is refused) with the new ~N; new ones
 * are bound and get their threads; removed ones are shut down.  0, or -1
 * with why naming the first address that could not be bound or thread
 * that could not start (the rest is applied).
 */
int
sl_accept_reconcile(const struct sl_conf_snapshot *s, char *why, size_t why_len)
{
	char err[512];
	int rc = 0;

	pthread_mutex_lock(&accept_lock);
	for (size_t i = 0; i < accept_listener_cnt; i++) {
		struct accept_listener *l = accept_listeners[i];
		const struct sl_conf_listen_addr *a = l->is_removed ? NULL : accept_find_addr(s, l);
		unsigned was = l->thread_cnt;

		if (l->is_removed)
			continue;
		if (a == NULL || a->is_disabled) {
			accept_remove(l);
			continue;
		}
		/* Kept; a changed ~N applies now. */
		if (a->accept_threads == was)
			continue;
		if (accept_set_threads(l, a->accept_threads, err, sizeof(err)) != 0) {
			sl_log_err("reload: %s", err);
			if (rc == 0)
				snprintf(why, why_len, "%s", err);
			rc = -1;
		}
		sl_log_notice("listener %s: %u accept threads (was %u)", l->text, l->thread_cnt,
			      was);
	}
	for (int k = 0; k < SL_LISTENER__COUNT; k++) {
		const union sl_conf_val *v = sl_conf_global(s, accept_opts[k]);

		for (size_t i = 0; v != NULL && i < v->listener->addr_cnt; i++) {
			const struct sl_conf_listen_addr *a = &v->listener->addrs[i];
			struct accept_listener *l;
			bool is_known = false;

			if (a->is_disabled)
				continue;
			for (size_t j = 0; j < accept_listener_cnt && !is_known; j++)
				is_known = !accept_listeners[j]->is_removed &&
					   accept_listeners[j]->rt.kind == a->kind &&
					   strcmp(accept_listeners[j]->text, a->text) == 0;
			if (is_known)
				continue;
			l = accept_listener_new(a, err, sizeof(err));
			if (l == NULL ||
			    accept_set_threads(l, a->accept_threads, err, sizeof(err)) != 0) {
				sl_log_err("reload: %s", err);
				if (rc == 0)
					snprintf(why, why_len, "%s", err);
				rc = -1;
				continue;
			}
			sl_log_notice("listener %s (%s) opened by the reload", l->text,
				      sl_listener_kind_name(l->rt.kind));
		}
	}
	pthread_mutex_unlock(&accept_lock);
	return rc;
}

void
sl_accept_interrupt(void)
{
	pthread_mutex_lock(&accept_lock);
	for (size_t i = 0; i < accept_listener_cnt; i++) {
		struct accept_listener *l = accept_listeners[i];

		for (unsigned k = 0; k < l->thread_cnt; k++)
			accept_worker_stop(l->workers[k]);
		/* Connections waiting in the backlog are refused; accept4() fails. */
		if (l->fd >= 0)
			shutdown(l->fd, SHUT_RD);
	}
	pthread_mutex_unlock(&accept_lock);
}

void
sl_accept_close(void)
{
	pthread_mutex_lock(&accept_lock);
	for (size_t i = 0; i < accept_listener_cnt; i++) {
		struct accept_listener *l = accept_listeners[i];

		/* The stage has stopped: every thread has ended. */
		for (unsigned k = 0; k < l->thread_cnt; k++)
			accept_worker_free(l->workers[k]);
		if (l->fd >= 0) {
			close(l->fd);
			if (l->text[0] == '/')
				unlink(l->text);
		}
		sl_free(l);
	}
	sl_free(accept_listeners);
	accept_listeners = NULL;
	accept_listener_cnt = 0;
	pthread_mutex_unlock(&accept_lock);
}

const struct sl_stage_def sl_accept_stage = {
	.name = "accept",
	.kind = SL_STAGE_OWN,
	.peers = (const char *const[]){ "protocol", "control", NULL },
};
