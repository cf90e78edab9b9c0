/*
 * test/unit/test_oidlist.c - the SNMP agent's sorted variable lists:
 * OID order, parsing, string indexes, GET and GETNEXT, last add wins.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/oidlist.h"

static struct sl_oid
oid(const char *text)
{
	struct sl_oid o;

	assert_int_equal(sl_oid_parse(text, &o), 0);
	return o;
}

static void
test_parse_cmp(void **state)
{
	struct sl_oid a = oid("1.3.6.1.2.1.28"), b = oid(".1.3.6.1.2.1.28.1"), c;
	char big[SL_OID_MAX * 3 + 8];
	size_t n = 0;

	assert_int_equal(a.len, 7);
	assert_int_equal(a.arc[6], 28);
	assert_true(sl_oid_cmp(a.arc, a.len, b.arc, b.len) < 0); /* a prefix first */
	assert_true(sl_oid_cmp(b.arc, b.len, a.arc, a.len) > 0);
	assert_int_equal(sl_oid_cmp(a.arc, a.len, a.arc, a.len), 0);
	c = oid("1.3.6.1.2.1.9");
	assert_true(sl_oid_cmp(c.arc, c.len, a.arc, a.len) < 0); /* by number, not text */
	assert_int_equal(oid("1.4294967295").arc[1], 4294967295u);
	assert_int_equal(sl_oid_parse("1.4294967296", &c), -1);
	assert_int_equal(sl_oid_parse("", &c), -1);
	assert_int_equal(sl_oid_parse("1..3", &c), -1);
	assert_int_equal(sl_oid_parse("1.3.", &c), -1);
	assert_int_equal(sl_oid_parse("1.x", &c), -1);
	for (int i = 0; i <= SL_OID_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s1", i ? "." : "");
	assert_int_equal(sl_oid_parse(big, &c), -1); /* 129 arcs */
}

static void
test_push(void **state)
{
	struct sl_oid o = oid("1.3.6.1.4.1.99999.1.2");

	assert_int_equal(sl_oid_push_str(&o, "aol.com", 7), 0);
	assert_int_equal(o.len, 9 + 8);
	assert_int_equal(o.arc[9], 7);
	assert_int_equal(o.arc[10], 'a');
	assert_int_equal(o.arc[16], 'm');
	assert_int_equal(sl_oid_push(&o, NULL, 0), 0); /* nothing to add: no pointer needed */
	assert_int_equal(o.len, 9 + 8);
	assert_int_equal(sl_oid_push1(&o, 3), 0);
	assert_int_equal(o.arc[17], 3);
	while (o.len < SL_OID_MAX)
		assert_int_equal(sl_oid_push1(&o, 0), 0);
	assert_int_equal(sl_oid_push1(&o, 0), -1);
	assert_int_equal(o.len, SL_OID_MAX);
}

static void
test_get_next(void **state)
{
	struct sl_oid_list l = SL_OID_LIST_INIT;
	struct sl_oid n, v = oid("1.3.6.1.4.1.8072");
	const struct sl_snmp_var *x;

	/* Added out of order; a later add of the same name wins. */
	n = oid("1.3.6.1.2.1.28.1.1.2.1");
	sl_oid_list_add_num(&l, &n, SL_SNMP_COUNTER32, 20);
	n = oid("1.3.6.1.2.1.28.1.1.1.1");
	sl_oid_list_add_num(&l, &n, SL_SNMP_COUNTER32, 10);
	n = oid("1.3.6.1.2.1.28.1.1.10.1");
	sl_oid_list_add_str(&l, &n, "abc", 3);
	n = oid("1.3.6.1.2.1.28.1.1.2.1");
	sl_oid_list_add_num(&l, &n, SL_SNMP_COUNTER32, 21);
	n = oid("1.3.6.1.2.1.1.2.0");
	sl_oid_list_add_oid(&l, &n, &v);
	assert_int_equal(l.cnt, 5);
	sl_oid_list_sort(&l);
	assert_int_equal(l.cnt, 4);

	n = oid("1.3.6.1.2.1.28.1.1.2.1");
	x = sl_oid_list_get(&l, n.arc, n.len);
	assert_non_null(x);
	assert_int_equal(x->num, 21);
	n = oid("1.3.6.1.2.1.28.1.1.2");
	assert_null(sl_oid_list_get(&l, n.arc, n.len)); /* not a leaf */
	x = sl_oid_list_next(&l, n.arc, n.len);
	assert_non_null(x);
	assert_int_equal(x->num, 21);
	/* GETNEXT from the very start, through every variable, then the end. */
	n = oid("0");
	x = sl_oid_list_next(&l, n.arc, n.len);
	assert_int_equal(x->type, SL_SNMP_OID);
	assert_int_equal(x->str_len, 7);
	x = sl_oid_list_next(&l, x->arc, x->len);
	assert_int_equal(x->num, 10);
	x = sl_oid_list_next(&l, x->arc, x->len);
	assert_int_equal(x->num, 21);
	x = sl_oid_list_next(&l, x->arc, x->len); /* .10 after .2: numbers, not text */
	assert_int_equal(x->type, SL_SNMP_STRING);
	assert_memory_equal(x->str, "abc", 3);
	assert_null(sl_oid_list_next(&l, x->arc, x->len));
	/* Adding after a lookup sorts again. */
	n = oid("1.3.6.1.2.1.28.1.1.3.1");
	sl_oid_list_add_num(&l, &n, SL_SNMP_GAUGE32, 7);
	n = oid("1.3.6.1.2.1.28.1.1.2.1");
	x = sl_oid_list_next(&l, n.arc, n.len);
	assert_int_equal(x->num, 7);
	sl_oid_list_clear(&l);
	assert_int_equal(l.cnt, 0);
	n = oid("1");
	assert_null(sl_oid_list_next(&l, n.arc, n.len));
	sl_oid_list_clear(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cmp),
		cmocka_unit_test(test_push),
		cmocka_unit_test(test_get_next),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
