/*
 * test/unit/test_msg.c - messages in flight (spool/msg.c): envelope,
 * context, chunked content and the iovec view the spool writes from.
 */
#include "config.h"

#include <string.h>
#include <sys/uio.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/alloc.h"
#include "spool/msg.h"

static void
test_envelope(void **state)
{
	struct sl_msg *m = sl_msg_new();

	assert_string_equal(m->sender, "");
	sl_msg_set_sender(m, "a@b.example");
	sl_msg_add_rcpt(m, "x@y.example");
	sl_msg_add_rcpt(m, "\"q@q\"@z.example");
	sl_msg_add_rcpt(m, "postmaster");
	for (int i = 0; i < 10; i++)
		sl_msg_add_rcpt(m, "many@r.example");
	assert_string_equal(m->sender, "a@b.example");
	assert_int_equal(m->rcpt_cnt, 13);
	assert_string_equal(m->rcpts[0].addr + m->rcpts[0].domain_off, "y.example");
	/* The domain is after the last '@', even with one in a quoted local part. */
	assert_string_equal(m->rcpts[1].addr + m->rcpts[1].domain_off, "z.example");
	assert_int_equal(m->rcpts[2].domain_off, strlen("postmaster"));
	assert_int_equal(m->rcpts[0].status, SL_RCPT_PENDING);
	sl_msg_add_context(m, "k", "v1");
	sl_msg_add_context(m, "k", "v2");
	sl_msg_add_context(m, "j", "w");
	assert_int_equal(m->context_cnt, 2);
	assert_string_equal(m->context[0].val, "v2");
	sl_msg_set_sender(m, NULL);
	assert_string_equal(m->sender, "");
	sl_msg_free(m);
	sl_msg_free(NULL);
}

static void
test_content_chunks(void **state)
{
	struct sl_msg *m = sl_msg_new();
	size_t total = 3 * SL_MSG_CHUNK_LEN + 123;
	char *data = sl_malloc(total);
	struct iovec iov[8];
	size_t n, off = 0;

	for (size_t i = 0; i < total; i++)
		data[i] = (char)(i * 7);
	/* Odd-sized appends across chunk boundaries. */
	for (size_t done = 0; done < total;) {
		size_t step = total - done < 4097 ? total - done : 4097;

		sl_msg_append(m, data + done, step);
		done += step;
	}
	sl_buf_puts(&m->head, "Received: x\r\n");
	assert_int_equal(m->content_len, total);
	assert_int_equal(sl_msg_size(m), total + 13);
	n = sl_msg_iov(m, iov, 8);
	assert_int_equal(n, 5);                     /* head + 4 chunks */
	assert_int_equal(sl_msg_iov(m, iov, 2), 5); /* asks for more room */
	assert_memory_equal(iov[0].iov_base, "Received: x\r\n", 13);
	for (size_t i = 1; i < n; i++) {
		assert_memory_equal(iov[i].iov_base, data + off, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	assert_int_equal(off, total);
	sl_msg_clear_content(m);
	assert_int_equal(sl_msg_size(m), 0);
	assert_int_equal(sl_msg_iov(m, iov, 8), 0);
	sl_free(data);
	sl_msg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_content_chunks),
	};

	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
