#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "token_bucket.h"

#define MS 1000000LL
#define SEC 1000000000LL

static struct token_bucket *mk(double qps, int burst)
{
	struct token_bucket *b = NULL;
	struct kerr e = { 0 };
	assert_int_equal(token_bucket_new(&b, qps, burst, &e), 0);
	assert_non_null(b);
	return b;
}

static void burst_then_spaced(void **state)
{
	(void)state;
	struct token_bucket *b = mk(10, 3);
	int64_t t0 = 5 * SEC;
	assert_int_equal(token_bucket_reserve(b, t0), 0);
	assert_int_equal(token_bucket_reserve(b, t0), 0);
	assert_int_equal(token_bucket_reserve(b, t0), 0);
	assert_int_equal(token_bucket_reserve(b, t0), 100 * MS);
	assert_int_equal(token_bucket_reserve(b, t0), 200 * MS);
	/* 1 s later the debt of 2 is paid and the bucket refills to burst, no more. */
	int64_t t1 = t0 + SEC;
	assert_int_equal(token_bucket_reserve(b, t1), 0);
	assert_int_equal(token_bucket_reserve(b, t1), 0);
	assert_int_equal(token_bucket_reserve(b, t1), 0);
	assert_int_equal(token_bucket_reserve(b, t1), 100 * MS);
	token_bucket_free(b);
}

static void fractional_refill(void **state)
{
	(void)state;
	struct token_bucket *b = mk(2, 1);
	assert_int_equal(token_bucket_reserve(b, 0), 0);
	/* A quarter second earns half a token: the next waits the other quarter. */
	assert_int_equal(token_bucket_reserve(b, 250 * MS), 250 * MS);
	/* The one after that waits for its own full token on top. */
	assert_int_equal(token_bucket_reserve(b, 250 * MS), 750 * MS);
	token_bucket_free(b);
}

static void time_going_backwards_adds_nothing(void **state)
{
	(void)state;
	struct token_bucket *b = mk(1, 1);
	assert_int_equal(token_bucket_reserve(b, 10 * SEC), 0);
	assert_int_equal(token_bucket_reserve(b, 3 * SEC), SEC);
	/* Refill is measured from the latest time seen (10 s), not from 3 s. */
	assert_int_equal(token_bucket_reserve(b, 11 * SEC), SEC);
	token_bucket_free(b);
}

static void unlimited_and_bad_arguments(void **state)
{
	(void)state;
	struct token_bucket *b = mk(0, 1);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(token_bucket_reserve(b, 0), 0);
	token_bucket_free(b);

	b = mk(-1, 0);
	assert_int_equal(token_bucket_reserve(b, 0), 0);
	token_bucket_free(b);

	/* burst below 1 still lets one request through at once. */
	b = mk(4, 0);
	assert_int_equal(token_bucket_reserve(b, 0), 0);
	assert_int_equal(token_bucket_reserve(b, 0), 250 * MS);
	token_bucket_free(b);

	struct kerr e = { 0 };
	assert_int_equal(token_bucket_new(&b, NAN, 1, &e), KERR_INVAL);
	assert_null(b);
	assert_non_null(strstr(e.message, "qps"));
}

struct many {
	struct token_bucket *b;
	int64_t waits[25];
};

static void *reserve_many(void *p)
{
	struct many *m = p;
	for (int i = 0; i < 25; i++)
		m->waits[i] = token_bucket_reserve(m->b, SEC);
	return NULL;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void concurrent_reservations_are_serialized(void **state)
{
	(void)state;
	struct token_bucket *b = mk(100, 10);
	struct many m[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		m[i].b = b;
		assert_int_equal(pthread_create(&th[i], NULL, reserve_many, &m[i]), 0);
	}
	int64_t all[100];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		memcpy(all + 25 * i, m[i].waits, sizeof(m[i].waits));
	}
	qsort(all, 100, sizeof(all[0]), cmp64);
	/* 10 free tokens, then one slot every 10 ms, none handed out twice. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(all[i], 0);
	for (int i = 10; i < 100; i++)
		assert_int_equal(all[i], (int64_t)(i - 9) * 10 * MS);
	token_bucket_free(b);
}

static void wait_sleeps(void **state)
{
	(void)state;
	struct token_bucket *b = mk(50, 1);
	struct timespec a, z;
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &a), 0);
	assert_int_equal(token_bucket_wait(b), 0);
	int64_t slept = token_bucket_wait(b);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &z), 0);
	int64_t elapsed = (z.tv_sec - a.tv_sec) * SEC + (z.tv_nsec - a.tv_nsec);
	assert_true(slept > 10 * MS && slept <= 20 * MS);
	assert_true(elapsed >= slept);
	token_bucket_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_spaced),
		cmocka_unit_test(fractional_refill),
		cmocka_unit_test(time_going_backwards_adds_nothing),
		cmocka_unit_test(unlimited_and_bad_arguments),
		cmocka_unit_test(concurrent_reservations_are_serialized),
		cmocka_unit_test(wait_sleeps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
