/*
 * stages/protocol_transport.c - the plain transport of the protocol stage.
 *
 * Reads go straight into the session's input buffer (no copy before the
 * SMTP machine sees them); writes try the socket directly and queue only
 * what the kernel did not take, in a second buffer nobody appends to while
 * libuv owns it.
 *
 * Threads: the session's loop thread.  Parses nothing.
 */
#include "config.h"

#include "engine/assert.h"
#include "engine/log.h"
#include "stages/protocol_int.h"

static void
plain_read_buf(struct proto_session *ss, uv_buf_t *buf)
{
	buf->base = sl_buf_reserve(&ss->in, PROTO_READ_CHUNK);
	buf->len = ss->in.cap - ss->in.len;
}

static int
plain_received(struct proto_session *ss, size_t n)
{
	ss->in.len += n;
	return 0;
}

static void
plain_write_cb(uv_write_t *req, int status)
{
	struct proto_session *ss = req->data;

	SL_CHECK_OBJ(ss, PROTO_SESSION_MAGIC);
	ss->is_writing = false;
	sl_buf_reset(&ss->wbuf);
	if (status < 0) {
		sl_log_debug("session %s: write failed: %s", ss->id, uv_strerror(status));
		proto_close(ss);
		return;
	}
	proto_drive(ss);
}

/* Hand `out` to the socket: try a direct write first, queue the rest. */
static void
plain_flush(struct proto_session *ss)
{
	uv_buf_t b;
	int n;

	if (ss->is_writing || ss->out.len == 0 || ss->is_closed)
		return;
	b = uv_buf_init(ss->out.data, (unsigned)ss->out.len);
	n = uv_try_write(&ss->h.stream, &b, 1);
	if (n == UV_EAGAIN || n == UV_ENOSYS)
		n = 0;
	if (n < 0) {
		sl_log_debug("session %s: write failed: %s", ss->id, uv_strerror(n));
		sl_buf_reset(&ss->out);
		proto_close(ss);
		return;
	}
	if ((size_t)n == ss->out.len) {
		sl_buf_reset(&ss->out);
		return;
	}
	/* The rest goes out asynchronously from a buffer nobody appends to. */
	sl_buf_append(&ss->wbuf, ss->out.data + n, ss->out.len - (size_t)n);
	sl_buf_reset(&ss->out);
	b = uv_buf_init(ss->wbuf.data, (unsigned)ss->wbuf.len);
	ss->wreq.data = ss;
	ss->is_writing = true;
	n = uv_write(&ss->wreq, &ss->h.stream, &b, 1, plain_write_cb);
	if (n < 0) {
		ss->is_writing = false;
		proto_close(ss);
	}
}

const struct proto_transport proto_transport_plain = {
	.name = "plain",
	.read_buf = plain_read_buf,
	.received = plain_received,
	.flush = plain_flush,
};
