/*
 * test/unit/test_msg.c - messages in flight (spool/msg.c): envelope,
 * context, chunked content and the iovec view the spool writes from.
 */
#include "config.h"

#include <errno.h>
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

static struct sl_msg *
swap_msg(const char *head, const char *body)
{
	struct sl_msg *m = sl_msg_new();

	sl_buf_append(&m->head, head, strlen(head));
	sl_msg_append(m, body, strlen(body));
	m->loc.length = 1;
	return m;
}

/* Max_Resident_Active_Queue: the content goes, the sizes stay; it comes back whole. */
static void
test_swap(void **state)
{
	struct sl_msg *m = swap_msg("Received: x\r\n", "Subject: s\r\n\r\nbody\r\n");
	struct sl_msg *same = swap_msg("Received: x\r\n", "Subject: s\r\n\r\nbody\r\n");
	struct sl_msg *other = swap_msg("Received: y\r\n", "Subject: s\r\n\r\nbody!\r\n");
	uint64_t size = sl_msg_size(m);
	struct iovec iov[4];
	char flat[128];
	size_t n, off = 0;

	sl_msg_swap_out(m);
	assert_true(m->is_swapped);
	assert_null(m->chunks);
	assert_null(m->head.data);
	assert_int_equal(sl_msg_size(m), size);
	/* A copy whose sizes differ is refused and changes nothing. */
	assert_int_equal(sl_msg_swap_in(m, other), -EIO);
	assert_true(m->is_swapped);
	assert_non_null(other->chunks);
	assert_int_equal(sl_msg_swap_in(m, same), 0);
	assert_false(m->is_swapped);
	assert_int_equal(sl_msg_size(m), size);
	assert_int_equal(sl_msg_size(same), 0);
	assert_null(same->chunks);
	n = sl_msg_iov(m, iov, 4);
	for (size_t i = 0; i < n; i++) {
		memcpy(flat + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	assert_int_equal(off, size);
	assert_memory_equal(flat, "Received: x\r\nSubject: s\r\n\r\nbody\r\n", size);
	sl_msg_free(m);
	sl_msg_free(same);
	sl_msg_free(other);
}

/* Context variables: exact names, a later set replaces, arrays outside a message too. */
static void
test_context(void **state)
{
	struct sl_msg *m = sl_msg_new();
	struct sl_msg_kv *kv = NULL;
	size_t cnt = 0;

	assert_null(sl_msg_context_get(m, "binding"));
	sl_msg_add_context(m, "binding", "b1");
	sl_msg_add_context(m, "client", "ACME");
	sl_msg_add_context(m, "binding", "b2");
	assert_int_equal(m->context_cnt, 2);
	assert_string_equal(sl_msg_context_get(m, "binding"), "b2");
	assert_string_equal(sl_msg_context_get(m, "client"), "ACME");
	assert_null(sl_msg_context_get(m, "Binding")); /* names are exact */
	sl_kv_set(&kv, &cnt, "k", "v1");
	sl_kv_set(&kv, &cnt, "k", "v2");
	sl_kv_set(&kv, &cnt, "j", "");
	assert_int_equal(cnt, 2);
	assert_string_equal(sl_kv_get(kv, cnt, "k"), "v2");
	assert_string_equal(sl_kv_get(kv, cnt, "j"), "");
	assert_null(sl_kv_get(kv, cnt, "x"));
	assert_null(sl_kv_get(NULL, 0, "k"));
	for (size_t i = 0; i < cnt; i++) {
		sl_free(kv[i].key);
		sl_free(kv[i].val);
	}
	sl_free(kv);
	sl_msg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_content_chunks),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_context),
	};

	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
