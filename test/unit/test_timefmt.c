/* timefmt: RFC 3339 text both ways, and the civil-date arithmetic under it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "kerr.h"
#include "timefmt.h"

/* 2023-11-14T22:13:20.123456Z */
#define T0 1700000000123456LL

static void assert_formats(int64_t us, int digits, const char *want)
{
	char buf[TIMEFMT_MAX_LEN + 1];
	assert_int_equal(timefmt_format(us, digits, buf, sizeof(buf)), (int)strlen(want));
	assert_string_equal(buf, want);
	int64_t back = 0;
	assert_int_equal(timefmt_parse(buf, strlen(buf), &back), 0);
	if (digits == 6)
		assert_int_equal(back, us);
}

static void formats_utc_with_0_3_or_6_digits(void **state)
{
	(void)state;
	assert_formats(0, 6, "1970-01-01T00:00:00.000000Z");
	assert_formats(T0, 6, "2023-11-14T22:13:20.123456Z");
	assert_formats(T0, 3, "2023-11-14T22:13:20.123Z");
	assert_formats(T0, 0, "2023-11-14T22:13:20Z");
	assert_formats(1709164800000001LL, 6, "2024-02-29T00:00:00.000001Z"); /* leap day */
	assert_formats(951782400000000LL, 6, "2000-02-29T00:00:00.000000Z");  /* leap century */
	assert_formats(-1, 6, "1969-12-31T23:59:59.999999Z");                 /* floor, not truncation */
	assert_formats(-1000, 3, "1969-12-31T23:59:59.999Z");
	assert_formats(-1, 0, "1969-12-31T23:59:59Z");
	assert_formats(-62167219200LL * 1000000, 6, "0000-01-01T00:00:00.000000Z");
	assert_formats(253402300799LL * 1000000 + 999999, 6, "9999-12-31T23:59:59.999999Z");
}

static void format_refuses_what_does_not_fit(void **state)
{
	(void)state;
	char buf[TIMEFMT_MAX_LEN + 1];
	assert_int_equal(timefmt_format(253402300800LL * 1000000, 6, buf, sizeof(buf)), KERR_INVAL);
	assert_string_equal(buf, "");
	assert_int_equal(timefmt_format(-62167219200LL * 1000000 - 1, 6, buf, sizeof(buf)), KERR_INVAL);
	assert_int_equal(timefmt_format(T0, 6, buf, TIMEFMT_MAX_LEN), KERR_INVAL);
	assert_string_equal(buf, "");
	assert_int_equal(timefmt_format(T0, 0, buf, 21), 20);
	assert_int_equal(timefmt_format(T0, 0, buf, 20), KERR_INVAL);
	assert_int_equal(timefmt_format(T0, 2, buf, sizeof(buf)), KERR_INVAL);
	assert_int_equal(timefmt_format(T0, 0, NULL, 0), KERR_INVAL);
}

static void assert_parses(const char *s, int64_t want)
{
	int64_t got = -42;
	if (timefmt_parse(s, strlen(s), &got) != 0)
		fail_msg("refused \"%s\"", s);
	assert_int_equal(got, want);
}

static void parses_rfc3339_variants(void **state)
{
	(void)state;
	assert_parses("2023-11-14T22:13:20Z", 1700000000000000LL);
	assert_parses("2023-11-14T22:13:20.5Z", 1700000000500000LL);
	assert_parses("2023-11-14T22:13:20.123456789Z", T0); /* nanoseconds truncated */
	assert_parses("2023-11-14t22:13:20.123456z", T0);
	assert_parses("2023-11-15T00:13:20.123456+02:00", T0);
	assert_parses("2023-11-14T20:43:20.123456-01:30", T0);
	assert_parses("2028-02-29T23:59:59Z", 1835481599000000LL);
	assert_parses("1969-12-31T23:59:59Z", -1000000);
	assert_parses("1969-12-31T23:59:59.5Z", -500000);
	/* Only the given bytes count: no NUL is needed. */
	int64_t got;
	assert_int_equal(timefmt_parse("2023-11-14T22:13:20Zjunk", 20, &got), 0);
	assert_int_equal(got, 1700000000000000LL);
}

static void rejects_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "2023-11-14", "2023-11-14 22:13:20Z", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z",
		"2023-13-01T00:00:00Z", "2023-00-01T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2023-04-31T00:00:00Z", "2023-11-00T00:00:00Z", "2023-11-14T24:00:00Z", "2023-11-14T22:60:00Z",
		"2023-11-14T22:13:60Z", "2023-11-14T22:13:20+0200", "2023-11-14T22:13:20+24:00",
		"2023-11-14T22:13:20Zjunk", "2023-11-14T22:13:2xZ", "+2023-11-14T22:13:20Z", "2023-11-14T22:13:20.5",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t got = 7;
		if (timefmt_parse(bad[i], strlen(bad[i]), &got) != KERR_PARSE)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(got, 7);
	}
	int64_t got;
	assert_int_equal(timefmt_parse(NULL, 0, &got), KERR_PARSE);
	/* A prefix of a valid time is not one. */
	assert_int_equal(timefmt_parse("2023-11-14T22:13:20Z", 19, &got), KERR_PARSE);
}

static void civil_days_round_trip(void **state)
{
	(void)state;
	assert_int_equal(timefmt_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(timefmt_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(timefmt_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(timefmt_days_from_civil(0, 1, 1), -719528);
	/* Every day from year 0 to 2400 and back, month lengths included. */
	int64_t want = timefmt_days_from_civil(0, 1, 1);
	for (int64_t y = 0; y <= 2400; y++)
		for (int m = 1; m <= 12; m++)
			for (int d = 1; d <= timefmt_days_in_month(y, m); d++, want++) {
				int64_t yy;
				int mm, dd;
				if (timefmt_days_from_civil(y, m, d) != want)
					fail_msg("%lld-%d-%d is not day %lld", (long long)y, m, d, (long long)want);
				timefmt_civil_from_days(want, &yy, &mm, &dd);
				if (yy != y || mm != m || dd != d)
					fail_msg("day %lld came back as %lld-%d-%d", (long long)want, (long long)yy, mm, dd);
			}
	assert_int_equal(timefmt_days_in_month(2024, 2), 29);
	assert_int_equal(timefmt_days_in_month(2100, 2), 28);
	assert_int_equal(timefmt_days_in_month(2000, 2), 29);
	assert_int_equal(timefmt_days_in_month(2023, 4), 30);
}

static void floor_division(void **state)
{
	(void)state;
	assert_int_equal(timefmt_floor_div(7, 2), 3);
	assert_int_equal(timefmt_floor_div(-7, 2), -4);
	assert_int_equal(timefmt_floor_div(-8, 2), -4);
	assert_int_equal(timefmt_floor_div(0, 86400), 0);
	assert_int_equal(timefmt_floor_div(-1, 86400), -1);
}

static void deadline_is_now_plus_ms(void **state)
{
	(void)state;
	struct timespec before, after;
	clock_gettime(CLOCK_MONOTONIC, &before);
	struct timespec d = timefmt_deadline(1999);
	clock_gettime(CLOCK_MONOTONIC, &after);
	assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
	int64_t ns = (int64_t)d.tv_sec * 1000000000 + d.tv_nsec;
	assert_true(ns >= (int64_t)before.tv_sec * 1000000000 + before.tv_nsec + 1999000000LL);
	assert_true(ns <= (int64_t)after.tv_sec * 1000000000 + after.tv_nsec + 1999000000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(formats_utc_with_0_3_or_6_digits),
		cmocka_unit_test(format_refuses_what_does_not_fit),
		cmocka_unit_test(parses_rfc3339_variants),
		cmocka_unit_test(rejects_malformed),
		cmocka_unit_test(civil_days_round_trip),
		cmocka_unit_test(floor_division),
		cmocka_unit_test(deadline_is_now_plus_ms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
