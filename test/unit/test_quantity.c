#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "quantity.h"

struct qcase {
	const char *in;
	int64_t milli; /* expected quantity_parse_milli result, when ok_milli */
	int ok_milli;
	int64_t value; /* expected quantity_parse_value result, when ok_value */
	int ok_value;
};

static const struct qcase valid[] = {
	{"500m", 500, 1, 1, 1},
	{"1", 1000, 1, 1, 1},
	{"1.5", 1500, 1, 2, 1},
	{"1.5Gi", 1610612736000, 1, 1610612736, 1},
	{"128Mi", 134217728000, 1, 134217728, 1},
	{"1Gi", 1073741824000, 1, 1073741824, 1},
	{"1Ki", 1024000, 1, 1024, 1},
	{"1e3", 1000000, 1, 1000, 1},
	{"1E3", 1000000, 1, 1000, 1},
	{"1e+3", 1000000, 1, 1000, 1},
	{"1e-3", 1, 1, 1, 1},
	{"2k", 2000000, 1, 2000, 1},
	{"100M", 100000000000, 1, 100000000, 1},
	{"3G", 3000000000000, 1, 3000000000, 1},
	{"0.1", 100, 1, 1, 1},
	{".5", 500, 1, 1, 1},
	{"1.", 1000, 1, 1, 1},
	{"+1", 1000, 1, 1, 1},
	{"00012", 12000, 1, 12, 1},
	{"0", 0, 1, 0, 1},
	{"0m", 0, 1, 0, 1},
	{"0.000", 0, 1, 0, 1},
	{"0e1000", 0, 1, 0, 1},
	/* Fractions of the target unit round away from zero, as MilliValue() does. */
	{"100n", 1, 1, 1, 1},
	{"5u", 1, 1, 1, 1},
	{"1000000n", 1, 1, 1, 1},
	{"1000001n", 2, 1, 1, 1},
	{"0.0001m", 1, 1, 1, 1},
	{"0.000000000000000000000000001", 1, 1, 1, 1},
	{"1e-1000", 1, 1, 1, 1},
	{"1.0001Ki", 1024103, 1, 1025, 1},
	{"0.5Ki", 512000, 1, 512, 1},
	{"-500m", -500, 1, -1, 1},
	{"-100n", -1, 1, -1, 1},
	{"-1.5Gi", -1610612736000, 1, -1610612736, 1},
	/* Exa: whole units only; in milli it overflows. */
	{"1E", 0, 0, 1000000000000000000, 1},
	{"7Ei", 0, 0, 8070450532247928832, 1},
	{"8Ei", 0, 0, 0, 0},
	{"9223372036854775807m", INT64_MAX, 1, 9223372036854776, 1},
	{"9223372036854775.807", INT64_MAX, 1, 9223372036854776, 1},
	{"9223372036854775808m", 0, 0, 9223372036854776, 1},
	{"9223372036854775807", 0, 0, INT64_MAX, 1},
	{"9223372036854775808", 0, 0, 0, 0},
	{"-9223372036854775807", 0, 0, -INT64_MAX, 1},
	{"92233720368547758070000000000e-10", 0, 0, INT64_MAX, 1},
	{"92233720368547758080000000000e-10", 0, 0, 0, 0},
	{"1e1000", 0, 0, 0, 0},
	{"1e99999999999999999999", 0, 0, 0, 0},
};

static void parses_valid_quantities(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const struct qcase *c = &valid[i];
		struct kerr e = {0};
		int64_t v = 12345;
		int rc = quantity_parse_milli(c->in, strlen(c->in), &v, &e);
		if (c->ok_milli) {
			if (rc != 0 || v != c->milli)
				fail_msg("milli(\"%s\") = %d, %lld; want %lld (%s)", c->in, rc, (long long)v,
				         (long long)c->milli, e.message);
		} else {
			if (rc != KERR_PARSE || !strstr(e.message, "out of range") || !strstr(e.message, c->in))
				fail_msg("milli(\"%s\") = %d (%s); want an out-of-range error", c->in, rc, e.message);
		}
		kerr_clear(&e);
		rc = quantity_parse_value(c->in, strlen(c->in), &v, &e);
		if (c->ok_value) {
			if (rc != 0 || v != c->value)
				fail_msg("value(\"%s\") = %d, %lld; want %lld (%s)", c->in, rc, (long long)v,
				         (long long)c->value, e.message);
		} else if (rc != KERR_PARSE || !strstr(e.message, "out of range")) {
			fail_msg("value(\"%s\") = %d (%s); want an out-of-range error", c->in, rc, e.message);
		}
	}
}

static void rejects_garbage(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",     "abc",  "1.5.5", "1 ",   " 1",  "1Kb",  "1ki",   "m",    "--1",  "+-1",
		"1e",   "1e+",  "1e1.5", "1.5e", ".",   "+",    "1m5",   "Gi",   "1Gii", "0x10",
		"1e3m", "1,5",  "½",     "1i",   "NaN", "inf",  "-",     "1E+",  "e3",   "1 Gi",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kerr e = {0};
		int64_t v = 777;
		int rc = quantity_parse_milli(bad[i], strlen(bad[i]), &v, &e);
		if (rc != KERR_PARSE || e.code != KERR_PARSE || v != 777)
			fail_msg("\"%s\" accepted (rc %d, v %lld)", bad[i], rc, (long long)v);
		char quoted[80];
		snprintf(quoted, sizeof(quoted), "\"%s\"", bad[i]);
		if (!strstr(e.message, quoted) || !strstr(e.message, "expected"))
			fail_msg("message for \"%s\" does not quote it and the expected form: %s", bad[i], e.message);
		assert_int_equal(quantity_parse_value(bad[i], strlen(bad[i]), &v, NULL), KERR_PARSE);
	}
	/* Longer than any real quantity: rejected, and the message is truncated. */
	char longq[200];
	memset(longq, '1', sizeof(longq));
	struct kerr e = {0};
	int64_t v;
	assert_int_equal(quantity_parse_milli(longq, sizeof(longq), &v, &e), KERR_PARSE);
	assert_non_null(strstr(e.message, "..."));
	/* len bounds the input: "500mX" read as its first four bytes is valid. */
	assert_int_equal(quantity_parse_milli("500mX", 4, &v, NULL), 0);
	assert_int_equal(v, 500);
	assert_int_equal(quantity_parse_milli(NULL, 3, &v, NULL), KERR_PARSE);
}

static void formats_canonically(void **state)
{
	(void)state;
	char buf[QUANTITY_FMT_MAX];
	static const struct {
		int64_t milli;
		const char *want;
	} cpu[] = {{250, "250m"}, {2000, "2"}, {0, "0"}, {1500, "1500m"}, {-250, "-250m"}, {-3000, "-3"},
	           {INT64_MIN, "-9223372036854775808m"}};
	for (size_t i = 0; i < sizeof(cpu) / sizeof(cpu[0]); i++) {
		int n = quantity_format_cpu_milli(cpu[i].milli, buf, sizeof(buf));
		assert_string_equal(buf, cpu[i].want);
		assert_int_equal(n, (int)strlen(cpu[i].want));
	}
	static const struct {
		int64_t bytes;
		const char *want;
	} mem[] = {{536870912, "512Mi"}, {1610612736, "1536Mi"}, {1000, "1000"},   {0, "0"},
	           {1073741824, "1Gi"},  {1024, "1Ki"},          {(int64_t)1 << 60, "1Ei"},
	           {1536, "1536"},       {-2048, "-2Ki"},        {INT64_MIN, "-8Ei"}};
	for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
		int n = quantity_format_bytes(mem[i].bytes, buf, sizeof(buf));
		assert_string_equal(buf, mem[i].want);
		assert_int_equal(n, (int)strlen(mem[i].want));
	}
	/* Round trip through the parser. */
	for (size_t i = 0; i + 1 < sizeof(mem) / sizeof(mem[0]); i++) {
		int64_t v;
		quantity_format_bytes(mem[i].bytes, buf, sizeof(buf));
		assert_int_equal(quantity_parse_value(buf, strlen(buf), &v, NULL), 0);
		assert_int_equal(v, mem[i].bytes);
	}
	char small[4] = "zzz";
	assert_int_equal(quantity_format_bytes(536870912, small, sizeof(small)), KERR_INVAL);
	assert_string_equal(small, "");
	assert_int_equal(quantity_format_cpu_milli(250, small, sizeof(small)), KERR_INVAL);
	assert_int_equal(quantity_format_cpu_milli(250, buf, 5), 4);
	assert_string_equal(buf, "250m");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_valid_quantities),
		cmocka_unit_test(rejects_garbage),
		cmocka_unit_test(formats_canonically),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
