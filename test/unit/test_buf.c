/*
 * test/unit/test_buf.c - the growable byte buffer (engine/buf.c).
 */
#include "config.h"

#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/buf.h"

static void
test_append_grow(void **state)
{
	struct sl_buf b = SL_BUF_INIT;
	char big[5000];

	memset(big, 'x', sizeof(big));
	sl_buf_append(&b, "abc", 3);
	sl_buf_append(&b, big, sizeof(big));
	sl_buf_append(&b, "", 0);
	assert_int_equal(b.len, 5003);
	assert_true(b.cap >= b.len);
	assert_memory_equal(b.data, "abcxx", 5);
	assert_int_equal(b.data[5002], 'x');
	sl_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void
test_printf_consume(void **state)
{
	struct sl_buf b = SL_BUF_INIT;

	sl_buf_printf(&b, "%d-%s", 42, "x");
	sl_buf_puts(&b, "yz");
	assert_string_equal(sl_buf_cstr(&b), "42-xyz");
	assert_int_equal(b.len, 6);
	sl_buf_consume(&b, 3);
	assert_string_equal(sl_buf_cstr(&b), "xyz");
	sl_buf_consume(&b, 3);
	assert_int_equal(b.len, 0);
	sl_buf_printf(&b, "%0300d", 7); /* longer than the first allocation step */
	assert_int_equal(b.len, 300);
	assert_int_equal(b.data[299], '7');
	sl_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_non_null(b.data);
	sl_buf_free(&b);
}

static void
test_reserve(void **state)
{
	struct sl_buf b = SL_BUF_INIT;
	char *p = sl_buf_reserve(&b, 100000);

	assert_ptr_equal(p, b.data);
	assert_true(b.cap >= 100000);
	memcpy(p, "hi", 2);
	b.len = 2;
	p = sl_buf_reserve(&b, 10);
	assert_ptr_equal(p, b.data + 2);
	sl_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_grow),
		cmocka_unit_test(test_printf_consume),
		cmocka_unit_test(test_reserve),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
