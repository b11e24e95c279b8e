/* api_cache: hits, expiry, invalidation, the lost-update guard, eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_cache.h"

static void expect_hit(struct api_cache *c, const char *key, int64_t now, const char *want)
{
	char *body;
	size_t len;
	assert_int_equal(api_cache_get(c, key, now, true, &body, &len), 1);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(body, want, len);
	free(body);
}

static void expect_miss(struct api_cache *c, const char *key, int64_t now)
{
	char *body;
	size_t len;
	assert_int_equal(api_cache_get(c, key, now, true, &body, &len), 0);
	assert_null(body);
}

static void test_hit_and_expiry(void **state)
{
	(void)state;
	struct api_cache *c;
	assert_int_equal(api_cache_new(&c, 4, 1000, NULL), 0);
	expect_miss(c, "a", 0);
	assert_int_equal(api_cache_put(c, "a", api_cache_generation(c), 100, "{\"x\":1}", 7), 1);
	expect_hit(c, "a", 100, "{\"x\":1}");
	expect_hit(c, "a", 1099, "{\"x\":1}");
	expect_miss(c, "b", 500);
	/* ttl_ms old: the first caller recomputes it, the others meanwhile get
	 * the old answer, until that caller is ttl_ms late. */
	char *body;
	size_t len;
	assert_int_equal(api_cache_get(c, "a", 1100, false, &body, &len), 0); /* a miss that claims nothing */
	expect_miss(c, "a", 1100);
	expect_hit(c, "a", 1101, "{\"x\":1}");
	expect_hit(c, "a", 2099, "{\"x\":1}");
	expect_miss(c, "a", 2100);
	/* A newer answer replaces the older one under the same key. */
	assert_int_equal(api_cache_put(c, "a", api_cache_generation(c), 2000, "one", 3), 1);
	assert_int_equal(api_cache_put(c, "a", api_cache_generation(c), 2001, "two", 3), 1);
	expect_hit(c, "a", 2002, "two");
	api_cache_free(c);
}

static void test_invalidation_and_lost_update(void **state)
{
	(void)state;
	struct api_cache *c;
	assert_int_equal(api_cache_new(&c, 4, 1000, NULL), 0);
	uint64_t g = api_cache_generation(c);
	assert_int_equal(api_cache_put(c, "a", g, 0, "old", 3), 1);
	/* A reader computed its answer from before a write; the write's
	 * invalidation lands first: the reader's answer is not stored. */
	uint64_t reader = api_cache_generation(c);
	api_cache_invalidate(c);
	expect_miss(c, "a", 1);
	assert_int_equal(api_cache_put(c, "a", reader, 2, "stale", 5), 0);
	expect_miss(c, "a", 3);
	assert_int_equal(api_cache_put(c, "a", api_cache_generation(c), 4, "fresh", 5), 1);
	expect_hit(c, "a", 5, "fresh");
	api_cache_free(c);
}

static void test_bounded_and_long_keys(void **state)
{
	(void)state;
	struct api_cache *c;
	assert_int_equal(api_cache_new(&c, 2, 1000, NULL), 0);
	uint64_t g = api_cache_generation(c);
	assert_int_equal(api_cache_put(c, "a", g, 10, "A", 1), 1);
	assert_int_equal(api_cache_put(c, "b", g, 20, "B", 1), 1);
	assert_int_equal(api_cache_put(c, "c", g, 30, "C", 1), 1); /* replaces a, the oldest */
	expect_miss(c, "a", 31);
	expect_hit(c, "b", 31, "B");
	expect_hit(c, "c", 31, "C");
	char key[API_CACHE_KEY_MAX + 1];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(api_cache_put(c, key, g, 40, "K", 1), 0);
	expect_hit(c, "b", 41, "B");
	api_cache_free(c);
	assert_int_equal(api_cache_new(&c, 0, 1000, NULL), KERR_INVAL);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hit_and_expiry),
		cmocka_unit_test(test_invalidation_and_lost_update),
		cmocka_unit_test(test_bounded_and_long_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
