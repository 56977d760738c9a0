/*
 * test_hlc.c - the hybrid logical clock: monotonic whatever the wall clock
 * does, counter never wraps, observes remote timestamps, persisted
 * high-water mark restarts it above everything it issued.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/hlc.h"

static void test_follows_wall_clock(void **state)
{
	struct weft_hlc h;

	(void)state;
	weft__hlc_init(&h, 0);
	assert_int_equal(weft__hlc_now(&h, 1000), WEFT_HLC_MAKE(1000, 0));
	assert_int_equal(weft__hlc_now(&h, 1001), WEFT_HLC_MAKE(1001, 0));
	/* Same millisecond: the counter advances. */
	assert_int_equal(weft__hlc_now(&h, 1001), WEFT_HLC_MAKE(1001, 1));
}

static void test_clock_steps_back(void **state)
{
	struct weft_hlc h;
	uint64_t a, b;

	(void)state;
	weft__hlc_init(&h, 0);
	a = weft__hlc_now(&h, 5000);
	b = weft__hlc_now(&h, 10); /* wall clock jumped back */
	assert_true(b > a);
	assert_int_equal(WEFT_HLC_MS(b), 5000);
	assert_int_equal(WEFT_HLC_COUNTER(b), 1);
}

static void test_counter_never_wraps(void **state)
{
	struct weft_hlc h;
	uint64_t prev, t = 0;

	(void)state;
	weft__hlc_init(&h, 0);
	prev = weft__hlc_now(&h, 7);
	for (int i = 0; i < 70000; i++) {
		t = weft__hlc_now(&h, 7);
		assert_true(t > prev);
		prev = t;
	}
	/* 65,535 ticks exhaust the counter of ms 7; the physical part moved. */
	assert_int_equal(WEFT_HLC_MS(t), 8);
}

static void test_observe_and_restart(void **state)
{
	struct weft_hlc h, again;
	uint64_t remote = WEFT_HLC_MAKE(90000, 5), t;

	(void)state;
	weft__hlc_init(&h, 0);
	weft__hlc_observe(&h, remote);
	t = weft__hlc_now(&h, 100);
	assert_true(t > remote);
	weft__hlc_observe(&h, 1); /* older: ignored */
	assert_true(weft__hlc_now(&h, 100) > t);
	/* Restart from the persisted high-water mark with a clock behind it. */
	weft__hlc_init(&again, h.last);
	assert_true(weft__hlc_now(&again, 0) > h.last);
}

static void test_stamp_order(void **state)
{
	struct weft_stamp a = {10, 1}, b = {10, 2}, c = {11, 0}, z = {0, 0};

	(void)state;
	assert_true(weft__stamp_cmp(a, b) < 0);
	assert_true(weft__stamp_cmp(b, c) < 0);
	assert_true(weft__stamp_cmp(c, a) > 0);
	assert_int_equal(weft__stamp_cmp(a, a), 0);
	assert_true(weft__stamp_is_zero(z));
	assert_int_equal(weft__stamp_max(a, b).replica, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_follows_wall_clock),  cmocka_unit_test(test_clock_steps_back),
	    cmocka_unit_test(test_counter_never_wraps), cmocka_unit_test(test_observe_and_restart),
	    cmocka_unit_test(test_stamp_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
