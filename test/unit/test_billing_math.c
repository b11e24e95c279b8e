/*
 * billing_math: the trapezoid with known numbers, the first and last
 * interval bounds, exact decimals, pricing and its rounding rule, times,
 * durations, and the PodMetricsList parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing_math.h"

#define GIB (1024LL * 1024 * 1024)
#define MIB (1024LL * 1024)

static void assert_dec(struct billing_dec v, const char *want)
{
	char buf[BILLING_DEC_MAX];
	assert_true(billing_dec_format(v, buf, sizeof(buf)) > 0);
	if (strcmp(buf, want) != 0)
		fail_msg("decimal %s, wanted %s", buf, want);
}

static struct billing_integral integrate(struct billing_point a, struct billing_point b)
{
	struct billing_integral u;
	struct kerr e = {0};
	assert_int_equal(billing_trapezoid(&a, &b, &u, &e), 0);
	return u;
}

static void trapezoid_known_numbers(void **state)
{
	(void)state;
	/* Constant 500m and 256Mi for 10 s: 5000 milli-core-seconds and
	 * 2684354560 byte-seconds. */
	struct billing_integral u = integrate((struct billing_point){1000, 500000000, 256 * MIB},
					      (struct billing_point){11000, 500000000, 256 * MIB});
	assert_dec(u.cpu_milli_seconds, "5000.000000");
	assert_dec(u.memory_byte_seconds, "2684354560.000000");

	/* A ramp from 0 to one core and 0 to 1 GiB over 10 s: the mean. */
	u = integrate((struct billing_point){0, 0, 0}, (struct billing_point){10000, 1000000000, GIB});
	assert_dec(u.cpu_milli_seconds, "5000.000000");
	assert_dec(u.memory_byte_seconds, "5368709120.000000");

	/* 250m -> 750m over 4 s = 500m x 4 s; 100 -> 300 bytes over 1.5 s. */
	u = integrate((struct billing_point){0, 250000000, 100}, (struct billing_point){4000, 750000000, 100});
	assert_dec(u.cpu_milli_seconds, "2000.000000");
	u = integrate((struct billing_point){0, 0, 100}, (struct billing_point){1500, 0, 300});
	assert_dec(u.memory_byte_seconds, "300.000000");

	/* Memory is exact to the sixth decimal: 1 byte for 1 ms, halved. */
	u = integrate((struct billing_point){0, 0, 1}, (struct billing_point){1, 0, 0});
	assert_dec(u.memory_byte_seconds, "0.000500");

	/* CPU rounds half up at the sixth decimal (a nano-core-second):
	 * 1000 nano-cores for 1 ms halved is 0.0000005 -> 0.000001, 999 is
	 * 0.0000004995 -> 0. */
	u = integrate((struct billing_point){0, 1000, 0}, (struct billing_point){1, 0, 0});
	assert_dec(u.cpu_milli_seconds, "0.000001");
	u = integrate((struct billing_point){0, 999, 0}, (struct billing_point){1, 0, 0});
	assert_dec(u.cpu_milli_seconds, "0.000000");

	/* A zero-length interval is nothing. */
	u = integrate((struct billing_point){5000, 1000000000, GIB}, (struct billing_point){5000, 1000000000, GIB});
	assert_dec(u.cpu_milli_seconds, "0.000000");
	assert_dec(u.memory_byte_seconds, "0.000000");

	/* 1 PiB for 30 days does not overflow: 2^50 x 2592000 byte-seconds. */
	u = integrate((struct billing_point){0, INT64_MAX, 1LL << 50},
		      (struct billing_point){2592000000LL, INT64_MAX, 1LL << 50});
	assert_dec(u.memory_byte_seconds, "2918332558536081408000.000000");
	/* INT64_MAX nano-cores (9.2 G cores) for 30 days: still exact. */
	assert_dec(u.cpu_milli_seconds, "23906980319527578891.744000");
}

static void trapezoid_rejects(void **state)
{
	(void)state;
	struct billing_integral u;
	struct kerr e = {0};
	struct billing_point a = {2000, 1, 1}, b = {1000, 1, 1};
	assert_int_equal(billing_trapezoid(&a, &b, &u, &e), KERR_INVAL);
	assert_non_null(strstr(e.message, "time goes backwards or a value is negative"));
	struct billing_point c = {0, -1, 0}, d = {1, 0, 0};
	assert_int_equal(billing_trapezoid(&c, &d, &u, NULL), KERR_INVAL);
	struct billing_point f = {0, 0, -5}, g = {1, 0, 0};
	assert_int_equal(billing_trapezoid(&f, &g, &u, NULL), KERR_INVAL);
}

/* Splitting an interval at constant usage changes nothing, exactly: the
 * sum of 3600 one-second rows is one core-hour to the last digit. */
static void rows_add_up_exactly(void **state)
{
	(void)state;
	struct billing_dec cpu = {0, 0}, mem = {0, 0};
	for (int i = 0; i < 3600; i++) {
		struct billing_integral u = integrate((struct billing_point){i * 1000LL, 1000000000, GIB},
						      (struct billing_point){(i + 1) * 1000LL, 1000000000, GIB});
		assert_int_equal(billing_dec_add(&cpu, u.cpu_milli_seconds), 0);
		assert_int_equal(billing_dec_add(&mem, u.memory_byte_seconds), 0);
	}
	struct billing_integral whole = integrate((struct billing_point){0, 1000000000, GIB},
						  (struct billing_point){3600000, 1000000000, GIB});
	assert_int_equal(billing_dec_cmp(cpu, whole.cpu_milli_seconds), 0);
	assert_int_equal(billing_dec_cmp(mem, whole.memory_byte_seconds), 0);
	assert_dec(cpu, "3600000.000000");
	/* Irregular intervals too: 333 ms, 667 ms, ... sum to the whole. */
	struct billing_dec irregular = {0, 0};
	int64_t t = 0;
	while (t < 3600000) {
		int64_t next = t + (t % 2 ? 667 : 333);
		if (next > 3600000)
			next = 3600000;
		struct billing_integral u = integrate((struct billing_point){t, 1000000000, GIB},
						      (struct billing_point){next, 1000000000, GIB});
		billing_dec_add(&irregular, u.memory_byte_seconds);
		t = next;
	}
	assert_int_equal(billing_dec_cmp(irregular, whole.memory_byte_seconds), 0);
}

static void first_and_last_interval(void **state)
{
	(void)state;
	/* First: from the start time; without one, from the window start; not
	 * before the epoch; never after the sample. */
	assert_int_equal(billing_first_start(100000, 10000, 0, 130000), 100000);
	assert_int_equal(billing_first_start(0, 10000, 0, 130000), 120000);
	assert_int_equal(billing_first_start(0, 0, 0, 130000), 130000);
	assert_int_equal(billing_first_start(100000, 10000, 110000, 130000), 110000);
	assert_int_equal(billing_first_start(100000, 10000, 140000, 130000), 130000);
	assert_int_equal(billing_first_start(150000, 10000, 0, 130000), 130000);

	/* Last: the earlier of deletionTimestamp and the informer's sighting,
	 * when between the last sample and now. */
	assert_int_equal(billing_end_time(100000, 130000, 115000, 0), 115000);
	assert_int_equal(billing_end_time(100000, 130000, 0, 112000), 112000);
	assert_int_equal(billing_end_time(100000, 130000, 125000, 112000), 112000);
	assert_int_equal(billing_end_time(100000, 130000, 111000, 112000), 111000);
	/* A grace period still running (deletionTimestamp ahead) and no
	 * sighting: the midpoint. */
	assert_int_equal(billing_end_time(100000, 130000, 160000, 0), 115000);
	/* Nothing known: the midpoint. */
	assert_int_equal(billing_end_time(100000, 130000, 0, 0), 115000);
	assert_int_equal(billing_end_time(100000, 100001, 0, 0), 100000);
	/* Deleted before the last sample: nothing more to bill. */
	assert_int_equal(billing_end_time(100000, 130000, 90000, 0), 100000);
	assert_int_equal(billing_end_time(100000, 130000, 100000, 0), 100000);
	/* A clock step back: never before the last sample. */
	assert_int_equal(billing_end_time(100000, 90000, 0, 0), 100000);
}

static void decimals(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} ok[] = {{"0", "0.000000"},
		  {"12.5", "12.500000"},
		  {"0.000001", "0.000001"},
		  {"123456789012345678901234567890.123456", "123456789012345678901234567890.123456"},
		  {"007", "7.000000"},
		  {".5", "0.500000"}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct billing_dec v;
		assert_int_equal(billing_dec_parse(ok[i].in, &v, NULL), 0);
		assert_dec(v, ok[i].out);
	}
	const char *bad[] = {"", ".", "-1", "+1", "1e5", "NaN", "1.0000001", "1.2.3", " 1", "1 "};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct billing_dec v;
		struct kerr e = {0};
		if (billing_dec_parse(bad[i], &v, &e) != KERR_PARSE)
			fail_msg("'%s' parsed", bad[i]);
	}
	struct billing_dec v;
	struct kerr e = {0};
	assert_int_equal(billing_dec_parse("999999999999999999999999999999999999999999", &v, &e), KERR_TOO_LARGE);
	/* Adding past 2^128 fails and leaves the sum alone. */
	struct billing_dec max = {UINT64_MAX, UINT64_MAX}, one = billing_dec_from_int(1), acc = max;
	assert_int_equal(billing_dec_add(&acc, one), KERR_TOO_LARGE);
	assert_int_equal(billing_dec_cmp(acc, max), 0);
	assert_dec(max, "340282366920938463463374607431768.211455");
	assert_dec(billing_dec_from_int(42), "42.000000");
	assert_int_equal(billing_dec_cmp(billing_dec_from_int(1), billing_dec_from_int(2)), -1);
	char small[4];
	assert_int_equal(billing_dec_format(one, small, sizeof(small)), KERR_INVAL);
	assert_string_equal(small, "");
}

static struct billing_charges charge(const char *cpu, const char *mem, int64_t cpu_price, int64_t mem_price,
				     const char *currency)
{
	struct billing_prices p = {cpu_price, mem_price, ""};
	struct billing_dec c, m;
	struct billing_charges out;
	struct kerr e = {0};
	snprintf(p.currency, sizeof(p.currency), "%s", currency);
	assert_int_equal(billing_dec_parse(cpu, &c, NULL), 0);
	assert_int_equal(billing_dec_parse(mem, &m, NULL), 0);
	if (billing_charge(c, m, &p, &out, &e) != 0)
		fail_msg("charge: %s", e.message);
	return out;
}

static void pricing(void **state)
{
	(void)state;
	/* One core-hour at 0.05 and one GiB-hour at 0.01: 5 + 1 cents. */
	struct billing_charges c = charge("3600000", "3865470566400", 50000, 10000, "USD");
	assert_string_equal(c.currency, "USD");
	assert_int_equal(c.minor_digits, 2);
	assert_string_equal(c.lines[BILLING_ITEM_CPU].item, "cpu");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].unit, "core-hour");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].quantity, "1.000000");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].unit_price, "0.05");
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 5);
	assert_string_equal(c.lines[BILLING_ITEM_CPU].amount, "0.05");
	assert_string_equal(c.lines[BILLING_ITEM_MEMORY].item, "memory");
	assert_string_equal(c.lines[BILLING_ITEM_MEMORY].unit, "GiB-hour");
	assert_string_equal(c.lines[BILLING_ITEM_MEMORY].quantity, "1.000000");
	assert_int_equal(c.lines[BILLING_ITEM_MEMORY].amount_minor, 1);
	assert_int_equal(c.total_minor, 6);
	assert_string_equal(c.total, "0.06");

	/* A month of 1000 cores and 1 TiB: 36000.00 + 7372.80. */
	c = charge("2592000000000", "2849934139195392000", 50000, 10000, "USD");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].quantity, "720000.000000");
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 3600000);
	assert_string_equal(c.lines[BILLING_ITEM_MEMORY].quantity, "737280.000000");
	assert_int_equal(c.lines[BILLING_ITEM_MEMORY].amount_minor, 737280);
	assert_string_equal(c.total, "43372.80");

	/* Nothing used: zero everywhere. */
	c = charge("0", "0", 50000, 10000, "USD");
	assert_int_equal(c.total_minor, 0);
	assert_string_equal(c.total, "0.00");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].quantity, "0.000000");
}

static void rounding_rule(void **state)
{
	(void)state;
	/* 0.1 core-hour at 0.05 is exactly half a cent: rounded up to 1. */
	struct billing_charges c = charge("360000", "0", 50000, 10000, "USD");
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 1);
	/* 0.09 core-hour: 0.45 cent, down to 0. */
	c = charge("324000", "0", 50000, 10000, "USD");
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 0);
	/* Just under half a cent by one millionth of a milli-core-second. */
	c = charge("359999.999999", "0", 50000, 10000, "USD");
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 0);
	/* Each line is rounded once and the total is their sum: 0.5 + 0.5
	 * cent is 1 + 1 = 2 cents, so the lines add up to the total. */
	c = charge("360000", "1932735283200", 50000, 10000, "USD");
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 1);
	assert_int_equal(c.lines[BILLING_ITEM_MEMORY].amount_minor, 1);
	assert_int_equal(c.total_minor, 2);
	/* Quantities shown to people round half up at 6 decimals:
	 * 1 milli-core-second is 0.000000277... core-hours. */
	c = charge("1", "0", 50000, 10000, "USD");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].quantity, "0.000000");
	c = charge("1.8", "0", 50000, 10000, "USD");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].quantity, "0.000001");
	/* No float drift: 10 core-hours at 0.1 is exactly 1.00, where
	 * 0.1 * 10 in binary floating point is not. */
	c = charge("36000000", "0", 100000, 0, "USD");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].amount, "1.00");
	/* Currencies without cents, and with three digits. */
	c = charge("3600000", "0", 6500000, 0, "JPY");
	assert_int_equal(c.minor_digits, 0);
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 7);
	assert_string_equal(c.total, "7");
	c = charge("3600000", "0", 1234500, 0, "BHD");
	assert_int_equal(c.minor_digits, 3);
	assert_int_equal(c.lines[BILLING_ITEM_CPU].amount_minor, 1235);
	assert_string_equal(c.total, "1.235");
	assert_string_equal(c.lines[BILLING_ITEM_CPU].unit_price, "1.2345");
}

static void pricing_errors(void **state)
{
	(void)state;
	struct billing_prices p = {50000, 10000, "usd"};
	struct billing_charges out;
	struct kerr e = {0};
	assert_int_equal(billing_charge(billing_dec_from_int(1), billing_dec_from_int(1), &p, &out, &e), KERR_INVAL);
	assert_non_null(strstr(e.message, "currency 'usd' is not an ISO 4217 code"));
	struct billing_prices neg = {-1, 0, "USD"};
	assert_int_equal(billing_charge(billing_dec_from_int(1), billing_dec_from_int(1), &neg, &out, NULL), KERR_INVAL);
	/* An amount past int64 minor units is refused, not wrapped. */
	struct billing_prices dear = {1000000000000000LL, 0, "USD"};
	struct billing_dec huge;
	assert_int_equal(billing_dec_parse("100000000000000000000000", &huge, NULL), 0);
	kerr_clear(&e);
	assert_int_equal(billing_charge(huge, billing_dec_from_int(0), &dear, &out, &e), KERR_TOO_LARGE);

	assert_int_equal(billing_currency_digits("USD"), 2);
	assert_int_equal(billing_currency_digits("EUR"), 2);
	assert_int_equal(billing_currency_digits("KRW"), 0);
	assert_int_equal(billing_currency_digits("KWD"), 3);
	assert_int_equal(billing_currency_digits("US"), KERR_INVAL);
	assert_int_equal(billing_currency_digits("USDX"), KERR_INVAL);
	assert_int_equal(billing_currency_digits("US1"), KERR_INVAL);
	assert_int_equal(billing_currency_digits(NULL), KERR_INVAL);
}

static void money_text(void **state)
{
	(void)state;
	char buf[BILLING_MONEY_MAX];
	static const struct {
		int64_t micro;
		const char *s;
	} prices[] = {{50000, "0.05"}, {1234567, "1.234567"}, {1000000, "1.00"}, {0, "0.00"}, {10, "0.00001"}};
	for (size_t i = 0; i < sizeof(prices) / sizeof(prices[0]); i++) {
		assert_int_equal(billing_format_price(prices[i].micro, buf, sizeof(buf)), (int)strlen(prices[i].s));
		assert_string_equal(buf, prices[i].s);
	}
	assert_int_equal(billing_format_price(-1, buf, sizeof(buf)), KERR_INVAL);
	assert_int_equal(billing_format_minor(1234, 2, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "12.34");
	billing_format_minor(5, 2, buf, sizeof(buf));
	assert_string_equal(buf, "0.05");
	billing_format_minor(5, 0, buf, sizeof(buf));
	assert_string_equal(buf, "5");
	billing_format_minor(1234, 3, buf, sizeof(buf));
	assert_string_equal(buf, "1.234");
	assert_int_equal(billing_format_minor(-5, 2, buf, sizeof(buf)), KERR_INVAL);
	assert_int_equal(billing_format_minor(5, 4, buf, sizeof(buf)), KERR_INVAL);
	char tiny[3];
	assert_int_equal(billing_format_minor(1234, 2, tiny, sizeof(tiny)), KERR_INVAL);
	assert_string_equal(tiny, "");
}

static void times(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = {{"2026-11-25T15:14:32Z", 1795619672000},
		  {"2026-11-25T15:14:32.5Z", 1795619672500},
		  {"2026-11-25T15:14:32.123456789Z", 1795619672123},
		  {"2026-11-25T16:14:32+01:00", 1795619672000},
		  {"2026-11-25T14:44:32-00:30", 1795619672000},
		  {"2028-02-29T23:59:59Z", 1835481599000},
		  {"1969-12-31T23:59:59Z", -1000}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t ms = 0;
		struct kerr e = {0};
		if (billing_parse_time(ok[i].s, strlen(ok[i].s), &ms, &e) != 0 || ms != ok[i].ms)
			fail_msg("'%s': %lld (%s)", ok[i].s, (long long)ms, e.message);
	}
	const char *bad[] = {"", "2026-11-25", "2026-11-25T15:14:32", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
			     "2026-11-25T24:00:00Z", "2026-11-25 15:14:32Z", "2026-11-25T15:14:32.Z",
			     "2026-11-25T15:14:32Zjunk", "2026-11-25T15:14:32+0100"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms;
		struct kerr e = {0};
		if (billing_parse_time(bad[i], strlen(bad[i]), &ms, &e) != KERR_PARSE)
			fail_msg("'%s' parsed", bad[i]);
	}
	char buf[BILLING_TIME_MAX];
	billing_format_time(1795619672123, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-25T15:14:32.123Z");
	billing_format_time(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	billing_format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");

	int64_t s, e;
	billing_month_bounds(1795619672000, &s, &e);
	assert_int_equal(s, 1793491200000);
	assert_int_equal(e, 1796083200000);
	billing_month_bounds(1796083200000, &s, &e); /* 1 December, 00:00: its own month */
	assert_int_equal(s, 1796083200000);
	assert_int_equal(e, 1798761600000);
	billing_month_bounds(1835481599000, &s, &e); /* leap February */
	assert_int_equal(s, 1832976000000);
	assert_int_equal(e, 1835481600000);
}

static void durations(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = {{"10.005s", 10005}, {"9.996s", 9996}, {"1m0.5s", 60500}, {"500ms", 500}, {"2h", 7200000},
		  {"0", 0},	      {"1.5\xc2\xb5s", 0}, {"1500us", 2},    {"1499999ns", 1}, {"0.0004s", 0},
		  {"1.2345678901234s", 1235}, {"1.000000001h", 3600000}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t ms = -1;
		struct kerr e = {0};
		if (billing_parse_duration(ok[i].s, strlen(ok[i].s), &ms, &e) != 0 || ms != ok[i].ms)
			fail_msg("'%s': %lld (%s)", ok[i].s, (long long)ms, e.message);
	}
	const char *bad[] = {"", "10", "s", "1x", "1.s5", "-1s", "99999999999999999999h"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms;
		if (billing_parse_duration(bad[i], strlen(bad[i]), &ms, NULL) != KERR_PARSE)
			fail_msg("'%s' parsed", bad[i]);
	}
}

static void cpu_quantities(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t nano;
	} ok[] = {{"500005911n", 500005911}, {"250u", 250000},	 {"500m", 500000000},
		  {"2", 2000000000},	     {"0", 0},		 {"1.5n", 1000000}, /* rounded to a milli-core */
		  {"0n", 0}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t nano = -1;
		struct kerr e = {0};
		if (billing_parse_cpu_nano(ok[i].s, strlen(ok[i].s), &nano, &e) != 0 || nano != ok[i].nano)
			fail_msg("'%s': %lld (%s)", ok[i].s, (long long)nano, e.message);
	}
	const char *bad[] = {"", "abc", "n", "-1", "-5n", "99999999999999999999n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t nano;
		struct kerr e = {0};
		if (billing_parse_cpu_nano(bad[i], strlen(bad[i]), &nano, &e) == 0)
			fail_msg("'%s' parsed as %lld", bad[i], (long long)nano);
	}
}

static const char podmetrics_json[] =
	"{\"kind\":\"PodMetricsList\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{},\"items\":["
	"{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"nimbus-a\",\"creationTimestamp\":\"2026-11-25T15:14:39Z\","
	"\"labels\":{\"app\":\"web\"}},\"timestamp\":\"2026-11-25T15:14:32Z\",\"window\":\"10.005s\","
	"\"containers\":[{\"name\":\"c\",\"usage\":{\"cpu\":\"500005911n\",\"memory\":\"256Mi\"}},"
	"{\"name\":\"sidecar\",\"usage\":{\"cpu\":\"1m\",\"memory\":\"1Ki\"}}]},"
	"{\"metadata\":{\"name\":\"bad\",\"namespace\":\"nimbus-a\"},\"timestamp\":\"2026-11-25T15:14:32Z\","
	"\"window\":\"10s\",\"containers\":[{\"name\":\"c\",\"usage\":{\"cpu\":\"lots\",\"memory\":\"1Mi\"}}]},"
	"{\"metadata\":{\"name\":\"nots\",\"namespace\":\"nimbus-a\"},\"window\":\"10s\",\"containers\":[]},"
	"{\"metadata\":{\"name\":\"idle\",\"namespace\":\"nimbus-b\"},\"timestamp\":\"2026-11-25T15:14:40Z\","
	"\"window\":null,\"containers\":[]}"
	"]}";

static void podmetrics(void **state)
{
	(void)state;
	/* Whole, then one byte at a time: the same result. */
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct billing_podmetrics *p;
		struct kerr e = {0};
		assert_int_equal(billing_podmetrics_new(&p, &e), 0);
		size_t len = strlen(podmetrics_json);
		if (bytewise) {
			for (size_t i = 0; i < len; i++)
				assert_int_equal(billing_podmetrics_feed(p, podmetrics_json + i, 1, &e), 0);
		} else {
			assert_int_equal(billing_podmetrics_feed(p, podmetrics_json, len, &e), 0);
		}
		struct billing_pod_sample *s;
		size_t n, skipped;
		char reason[256];
		assert_int_equal(billing_podmetrics_finish(p, &s, &n, &skipped, reason, sizeof(reason), &e), 0);
		assert_int_equal(n, 2);
		assert_int_equal(skipped, 2);
		assert_non_null(strstr(reason, "item 1: bad cpu usage"));
		assert_string_equal(s[0].key, "nimbus-a/web-1");
		assert_int_equal(s[0].ns_len, 8);
		assert_int_equal(s[0].t_ms, 1795619672000);
		assert_int_equal(s[0].window_ms, 10005);
		assert_int_equal(s[0].cpu_nano, 501005911);
		assert_int_equal(s[0].mem_bytes, 256 * MIB + 1024);
		assert_string_equal(s[1].key, "nimbus-b/idle");
		assert_int_equal(s[1].t_ms, 1795619680000);
		assert_int_equal(s[1].window_ms, 0);
		assert_int_equal(s[1].cpu_nano, 0);
		billing_samples_free(s, n);
		billing_podmetrics_free(p);
	}

	/* Malformed JSON fails the whole parse; the parser frees what it has. */
	struct billing_podmetrics *p;
	struct kerr e = {0};
	assert_int_equal(billing_podmetrics_new(&p, &e), 0);
	const char *broken = "{\"items\":[{\"metadata\":{\"name\":\"a\",\"namespace\":\"b\"},"
			     "\"timestamp\":\"2026-11-25T15:14:32Z\"},{\"metadata\":";
	assert_int_equal(billing_podmetrics_feed(p, broken, strlen(broken), &e), 0);
	struct billing_pod_sample *s;
	size_t n, skipped;
	assert_int_equal(billing_podmetrics_finish(p, &s, &n, &skipped, NULL, 0, &e), KERR_PARSE);
	billing_podmetrics_free(p);

	/* An empty list. */
	assert_int_equal(billing_podmetrics_new(&p, &e), 0);
	const char *empty = "{\"kind\":\"PodMetricsList\",\"items\":[]}";
	assert_int_equal(billing_podmetrics_feed(p, empty, strlen(empty), &e), 0);
	assert_int_equal(billing_podmetrics_finish(p, &s, &n, &skipped, NULL, 0, &e), 0);
	assert_int_equal(n, 0);
	assert_null(s);
	billing_podmetrics_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(trapezoid_known_numbers),
		cmocka_unit_test(trapezoid_rejects),
		cmocka_unit_test(rows_add_up_exactly),
		cmocka_unit_test(first_and_last_interval),
		cmocka_unit_test(decimals),
		cmocka_unit_test(pricing),
		cmocka_unit_test(rounding_rule),
		cmocka_unit_test(pricing_errors),
		cmocka_unit_test(money_text),
		cmocka_unit_test(times),
		cmocka_unit_test(durations),
		cmocka_unit_test(cpu_quantities),
		cmocka_unit_test(podmetrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
