/*
 * stages/accept.c - the accept stage: listening sockets and accept threads.
 *
 * sl_accept_open() binds every enabled address of ESMTP_Listener,
 * ECStream_Listener and Control_Listener before the daemon detaches, so a
 * busy port is a start-up error on the operator's terminal.  Each address
 * then gets `~N` accept threads (named "acc:<port>/<i>", visible in
 * /proc/PID/task/ * /comm) that block in accept4(), walk the listener's IP
 * ACL for the peer once (first match; `continue` lets the next match apply
 * on top), enforce listener_sessions and service_sessions (421 and close),
 * and hand the connection with its snapshot reference to a protocol thread.
 *
 * Unix-socket clients have no IP address: the ACL sees them as 127.0.0.1.
 * ESMTP and ECStream connections go to the protocol stage, Control
 * connections to the control stage (sluicectl).
 *
 * Threads: open/start/interrupt/close on the main thread; the accept
 * threads own nothing but the connection they are handing over.  Session
 * counters are atomics per listener (touched once per connection).
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

/*
 * One listening address.  Allocated on its own (accept threads hold the
 * pointer) and kept until sl_accept_close(): a reload that removes it shuts
 * its socket down (accept4() fails, its threads end) and the last of its
 * threads closes the descriptor, so no thread ever accepts on a reused one.
 */
struct accept_listener {
	struct sl_listener_rt rt;
	int fd;
	char text[128]; /* the address as configured (normalised) */
	unsigned thread_cnt;
	unsigned thread_base;   /* index of its first accept thread, for session ids */
	struct sl_conf_loc loc; /* where it was configured, for messages */
	bool is_removed;        /* a reload took it out: its threads are ending */
	unsigned threads_alive; /* atomic: accept threads still running */
};

/* The listeners (owned); accept_lock guards the array against reloads and the stop. */
static pthread_mutex_t accept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct accept_listener **accept_listeners;
static size_t accept_listener_cnt;
static unsigned accept_thread_total; /* accept threads ever started (session id bases) */
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
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 && family == AF_INET6 && a->family == SL_LISTEN_ANY &&
	    a->proto == SL_LISTEN_PROTO_BOTH && errno == EAFNOSUPPORT) {
		/* No IPv6 on this host: "*" means every IPv4 address then. */
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		memset(&ss, 0, sizeof(ss));
		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		family = AF_INET;
		len = sizeof(*sin);
		fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
	l->thread_cnt = a->accept_threads;
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
accept_handle(struct sl_thread *t, struct accept_listener *l, int fd,
	      const struct sockaddr_storage *peer, socklen_t peer_len, uint64_t seq)
{
	struct sl_conf_snapshot *s = sl_conf_current();
	const struct sl_conf_listen_addr *a;
	struct sl_session_new_ev *ev;
	struct sockaddr_in loopback = { .sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const struct sockaddr *acl_peer = (const struct sockaddr *)peer;
	int64_t max_listener, max_service;
	uint32_t n_listener, n_service;
	char id[SL_SESSION_ID_LEN];

	snprintf(id, sizeof(id), "%08" PRIX32 "-%02X%010" PRIX64, accept_start_time,
		 (l->thread_base + sl_thread_index(t)) & 0xff, seq & (uint64_t)0xffffffffff);
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

static void
accept_thread(struct sl_thread *t)
{
	struct accept_listener *l = sl_thread_arg(t);
	uint64_t seq = 0;

	SL_CHECK_OBJ(&l->rt, SL_LISTENER_RT_MAGIC);
	while (!sl_thread_stopping(t)) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (sl_thread_stopping(t) || errno == EINVAL || errno == EBADF)
				break;
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN ||
			    errno == EPROTO || errno == ENETDOWN || errno == EHOSTUNREACH)
				continue;
			/* Out of descriptors or memory: back off instead of spinning. */
			sl_log_err("accept on %s: %s", l->text, strerror(errno));
			nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
			continue;
		}
		if (peer.ss_family != AF_UNIX) {
			int on = 1;

			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		}
		accept_handle(t, l, fd, &peer, plen, ++seq);
	}
	/* A listener a reload removed: its last thread closes the socket. */
	if (__atomic_sub_fetch(&l->threads_alive, 1, __ATOMIC_ACQ_REL) == 0 &&
	    __atomic_load_n(&l->is_removed, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&accept_lock);
		if (l->fd >= 0) {
			close(l->fd);
			l->fd = -1;
			if (l->text[0] == '/')
				unlink(l->text);
		}
		pthread_mutex_unlock(&accept_lock);
	}
}

/* Start accept threads first..last-1 of `l`.  0, or -1 with why set. */
static int
accept_spawn_range(struct sl_stage *st, struct accept_listener *l, unsigned first, unsigned last,
		   char *why, size_t why_len)
{
	const char *tag = strrchr(l->text, l->text[0] == '/' ? '/' : ':');

	for (unsigned k = first; k < last; k++) {
		char name[160];
		int rc;

		snprintf(name, sizeof(name), "acc:%s/%u", tag ? tag + 1 : l->text, k);
		__atomic_add_fetch(&l->threads_alive, 1, __ATOMIC_ACQ_REL);
		rc = sl_stage_spawn(st, name, accept_thread, l, NULL);
		if (rc < 0) {
			__atomic_sub_fetch(&l->threads_alive, 1, __ATOMIC_ACQ_REL);
			snprintf(why, why_len, "cannot start accept thread %s: %s", name,
				 strerror(-rc));
			return -1;
		}
	}
	return 0;
}

/* Start the accept threads of a new listener. */
static int
accept_spawn(struct sl_stage *st, struct accept_listener *l, char *why, size_t why_len)
{
	l->thread_base = accept_thread_total;
	accept_thread_total += l->thread_cnt;
	return accept_spawn_range(st, l, 0, l->thread_cnt, why, why_len);
}

int
sl_accept_start(struct sl_stage *st, char *why, size_t why_len)
{
	accept_protocol = sl_stage_find("protocol");
	accept_control = sl_stage_find("control");
	SL_ASSERT(accept_protocol != NULL && accept_control != NULL);
	accept_start_time = (uint32_t)time(NULL);
	accept_counter_accepted = sl_counter_register("accept.sessions");
	accept_counter_refused = sl_counter_register("accept.refused");
	accept_stage = st;
	for (size_t i = 0; i < accept_listener_cnt; i++)
		if (accept_spawn(st, accept_listeners[i], why, why_len) != 0)
			return -1;
	return 0;
}

/*
 * After a reload: listeners the new configuration keeps go on untouched
 * (their sockets, so no connection is refused); new ones are bound and get
 * their threads; removed ones are shut down.  0, or -1 with why naming the
 * first address that could not be bound (the others are applied).
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

		if (l->is_removed)
			continue;
		if (a != NULL && !a->is_disabled) {
			/* Kept.  A larger ~N starts more accept threads now. */
			if (a->accept_threads > l->thread_cnt &&
			    accept_spawn_range(accept_stage, l, l->thread_cnt, a->accept_threads,
					       err, sizeof(err)) == 0) {
				sl_log_notice("listener %s: %u accept threads now", l->text,
					      a->accept_threads);
				l->thread_cnt = a->accept_threads;
			} else if (a->accept_threads < l->thread_cnt) {
				sl_log_notice(
					"listener %s keeps its %u accept threads until the next "
					"start",
					l->text, l->thread_cnt);
			}
			continue;
		}
		__atomic_store_n(&l->is_removed, true, __ATOMIC_RELEASE);
		shutdown(l->fd, SHUT_RD); /* its accept4() calls fail: the threads end */
		sl_log_notice("listener %s (%s) removed by the reload", l->text,
			      sl_listener_kind_name(l->rt.kind));
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
			if (l == NULL || accept_spawn(accept_stage, l, err, sizeof(err)) != 0) {
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
	/* accept4() returns EINVAL on a socket shut down for reading. */
	pthread_mutex_lock(&accept_lock);
	for (size_t i = 0; i < accept_listener_cnt; i++)
		if (accept_listeners[i]->fd >= 0)
			shutdown(accept_listeners[i]->fd, SHUT_RD);
	pthread_mutex_unlock(&accept_lock);
}

void
sl_accept_close(void)
{
	pthread_mutex_lock(&accept_lock);
	for (size_t i = 0; i < accept_listener_cnt; i++) {
		struct accept_listener *l = accept_listeners[i];

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
