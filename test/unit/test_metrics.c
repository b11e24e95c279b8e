/*
 * metrics: the exact exposition text (format 0.0.4), labels, histogram
 * buckets, escaping, name rules, limits, and exact totals under
 * concurrent observation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static int setup(void **state)
{
	struct metrics_registry *r;
	if (metrics_registry_new(&r, NULL) != 0)
		return -1;
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	metrics_registry_free(*state);
	return 0;
}

static void expect_render(struct metrics_registry *r, const char *want)
{
	char *out = NULL;
	size_t len = 0;
	struct kerr e = {0};
	assert_int_equal(metrics_render(r, &out, &len, &e), 0);
	assert_int_equal(len, strlen(out));
	if (strcmp(out, want) != 0)
		fail_msg("rendered:\n%s\nwanted:\n%s", out, want);
	free(out);
}

static void empty_registry_renders_nothing(void **state)
{
	expect_render(*state, "");
}

static void counters_and_gauges(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *reqs, *up, *tenants;
	struct kerr e = {0};
	const char *labels[] = {"tenant", "result"};

	assert_int_equal(metrics_counter_new(r, "nimbus_reconcile_total", "Reconciles by tenant and result.", labels, 2,
					     &reqs, &e), 0);
	assert_int_equal(metrics_gauge_new(r, "nimbus_up", "Whether the operator runs.", NULL, 0, &up, &e), 0);
	assert_int_equal(metrics_gauge_new(r, "nimbus_tenants", "Tenants known.", NULL, 0, &tenants, &e), 0);

	/* Families sorted by name; a labelled family with no children is left
	 * out; one without labels shows 0 from the start. */
	expect_render(r, "# HELP nimbus_tenants Tenants known.\n"
			 "# TYPE nimbus_tenants gauge\n"
			 "nimbus_tenants 0\n"
			 "# HELP nimbus_up Whether the operator runs.\n"
			 "# TYPE nimbus_up gauge\n"
			 "nimbus_up 0\n");

	assert_int_equal(metrics_counter_inc(reqs, METRICS_LABELS("b", "ok")), 0);
	assert_int_equal(metrics_counter_inc(reqs, METRICS_LABELS("a", "error")), 0);
	assert_int_equal(metrics_counter_add(reqs, 2.5, METRICS_LABELS("a", "ok")), 0);
	assert_int_equal(metrics_counter_inc(reqs, METRICS_LABELS("a", "ok")), 0);
	assert_int_equal(metrics_gauge_set(up, 1, NULL, 0), 0);
	assert_int_equal(metrics_gauge_set(tenants, 7, NULL, 0), 0);
	assert_int_equal(metrics_gauge_add(tenants, -2, NULL, 0), 0);

	/* Children sorted by label values, first label first. */
	expect_render(r, "# HELP nimbus_reconcile_total Reconciles by tenant and result.\n"
			 "# TYPE nimbus_reconcile_total counter\n"
			 "nimbus_reconcile_total{tenant=\"a\",result=\"error\"} 1\n"
			 "nimbus_reconcile_total{tenant=\"a\",result=\"ok\"} 3.5\n"
			 "nimbus_reconcile_total{tenant=\"b\",result=\"ok\"} 1\n"
			 "# HELP nimbus_tenants Tenants known.\n"
			 "# TYPE nimbus_tenants gauge\n"
			 "nimbus_tenants 5\n"
			 "# HELP nimbus_up Whether the operator runs.\n"
			 "# TYPE nimbus_up gauge\n"
			 "nimbus_up 1\n");

	/* A removed child is no longer rendered; removing it twice is NOT_FOUND. */
	assert_int_equal(metrics_remove(reqs, METRICS_LABELS("a", "error")), 0);
	assert_int_equal(metrics_remove(reqs, METRICS_LABELS("a", "error")), KERR_NOT_FOUND);
	assert_int_equal(metrics_remove(tenants, NULL, 0), 0);
	expect_render(r, "# HELP nimbus_reconcile_total Reconciles by tenant and result.\n"
			 "# TYPE nimbus_reconcile_total counter\n"
			 "nimbus_reconcile_total{tenant=\"a\",result=\"ok\"} 3.5\n"
			 "nimbus_reconcile_total{tenant=\"b\",result=\"ok\"} 1\n"
			 "# HELP nimbus_up Whether the operator runs.\n"
			 "# TYPE nimbus_up gauge\n"
			 "nimbus_up 1\n");
}

static void label_prefixes_sort_first(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *g;
	const char *labels[] = {"a", "b"};
	assert_int_equal(metrics_gauge_new(r, "g", "h", labels, 2, &g, NULL), 0);
	assert_int_equal(metrics_gauge_set(g, 3, METRICS_LABELS("xy", "")), 0);
	assert_int_equal(metrics_gauge_set(g, 2, METRICS_LABELS("x", "z")), 0);
	assert_int_equal(metrics_gauge_set(g, 1, METRICS_LABELS("x", "")), 0);
	expect_render(r, "# HELP g h\n# TYPE g gauge\n"
			 "g{a=\"x\",b=\"\"} 1\n"
			 "g{a=\"x\",b=\"z\"} 2\n"
			 "g{a=\"xy\",b=\"\"} 3\n");
}

static void histograms(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *h, *d;
	struct kerr e = {0};
	const double buckets[] = {0.125, 0.5, 1};
	const char *labels[] = {"controller"};

	assert_int_equal(metrics_histogram_new(r, "nimbus_reconcile_duration_seconds", "Time per reconcile.", labels, 1,
					       buckets, 3, &h, &e), 0);
	assert_int_equal(metrics_histogram_new(r, "plain_seconds", "Default buckets.", NULL, 0, NULL, 0, &d, &e), 0);
	/* Binary fractions, so that the sum is exact. */
	const double obs[] = {0.0625, 0.125, 0.25, 0.75, 2, 0.5};
	for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
		assert_int_equal(metrics_histogram_observe(h, obs[i], METRICS_LABELS("tenant")), 0);
	assert_int_equal(metrics_histogram_observe(d, 0.02, NULL, 0), 0);

	/* Buckets are cumulative and an observation equal to a bound is in it
	 * (le means <=). */
	expect_render(r, "# HELP nimbus_reconcile_duration_seconds Time per reconcile.\n"
			 "# TYPE nimbus_reconcile_duration_seconds histogram\n"
			 "nimbus_reconcile_duration_seconds_bucket{controller=\"tenant\",le=\"0.125\"} 2\n"
			 "nimbus_reconcile_duration_seconds_bucket{controller=\"tenant\",le=\"0.5\"} 4\n"
			 "nimbus_reconcile_duration_seconds_bucket{controller=\"tenant\",le=\"1\"} 5\n"
			 "nimbus_reconcile_duration_seconds_bucket{controller=\"tenant\",le=\"+Inf\"} 6\n"
			 "nimbus_reconcile_duration_seconds_sum{controller=\"tenant\"} 3.6875\n"
			 "nimbus_reconcile_duration_seconds_count{controller=\"tenant\"} 6\n"
			 "# HELP plain_seconds Default buckets.\n"
			 "# TYPE plain_seconds histogram\n"
			 "plain_seconds_bucket{le=\"0.005\"} 0\n"
			 "plain_seconds_bucket{le=\"0.01\"} 0\n"
			 "plain_seconds_bucket{le=\"0.025\"} 1\n"
			 "plain_seconds_bucket{le=\"0.05\"} 1\n"
			 "plain_seconds_bucket{le=\"0.1\"} 1\n"
			 "plain_seconds_bucket{le=\"0.25\"} 1\n"
			 "plain_seconds_bucket{le=\"0.5\"} 1\n"
			 "plain_seconds_bucket{le=\"1\"} 1\n"
			 "plain_seconds_bucket{le=\"2.5\"} 1\n"
			 "plain_seconds_bucket{le=\"5\"} 1\n"
			 "plain_seconds_bucket{le=\"10\"} 1\n"
			 "plain_seconds_bucket{le=\"+Inf\"} 1\n"
			 "plain_seconds_sum 0.02\n"
			 "plain_seconds_count 1\n");

	const double bad1[] = {1, 1}, bad2[] = {1, INFINITY}, bad3[] = {2, 1};
	struct metrics_family *x;
	kerr_clear(&e);
	assert_int_equal(metrics_histogram_new(r, "x1", "h", NULL, 0, bad1, 2, &x, &e), KERR_INVAL);
	assert_string_equal(e.message,
			    "histogram 'x1': bucket bounds must be finite and strictly increasing (bound 1 breaks that)");
	assert_int_equal(metrics_histogram_new(r, "x2", "h", NULL, 0, bad2, 2, &x, NULL), KERR_INVAL);
	assert_int_equal(metrics_histogram_new(r, "x3", "h", NULL, 0, bad3, 2, &x, NULL), KERR_INVAL);
	assert_int_equal(metrics_histogram_observe(h, NAN, METRICS_LABELS("tenant")), KERR_INVAL);
}

static void escaping_and_numbers(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *g;
	const char *labels[] = {"path"};
	assert_int_equal(metrics_gauge_new(r, "esc", "Help with \\ backslash\nand \"quotes\".", labels, 1, &g, NULL), 0);
	assert_int_equal(metrics_gauge_set(g, 0.1, METRICS_LABELS("a\"b\\c\nd")), 0);
	assert_int_equal(metrics_gauge_set(g, 1.0 / 3, METRICS_LABELS("third")), 0);
	assert_int_equal(metrics_gauge_set(g, 1e21, METRICS_LABELS("big")), 0);
	assert_int_equal(metrics_gauge_set(g, 1234567, METRICS_LABELS("int")), 0);
	assert_int_equal(metrics_gauge_set(g, -2.5e-7, METRICS_LABELS("small")), 0);
	assert_int_equal(metrics_gauge_set(g, INFINITY, METRICS_LABELS("inf")), 0);
	assert_int_equal(metrics_gauge_set(g, -INFINITY, METRICS_LABELS("ninf")), 0);
	assert_int_equal(metrics_gauge_set(g, NAN, METRICS_LABELS("nan")), 0);
	assert_int_equal(metrics_gauge_set(g, 1, METRICS_LABELS("caf\xc3\xa9")), 0);
	expect_render(r, "# HELP esc Help with \\\\ backslash\\nand \"quotes\".\n"
			 "# TYPE esc gauge\n"
			 "esc{path=\"a\\\"b\\\\c\\nd\"} 0.1\n"
			 "esc{path=\"big\"} 1e+21\n"
			 "esc{path=\"caf\xc3\xa9\"} 1\n"
			 "esc{path=\"inf\"} +Inf\n"
			 "esc{path=\"int\"} 1234567\n"
			 "esc{path=\"nan\"} NaN\n"
			 "esc{path=\"ninf\"} -Inf\n"
			 "esc{path=\"small\"} -2.5e-07\n"
			 "esc{path=\"third\"} 0.3333333333333333\n");
}

static void names_are_checked(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *f;
	struct kerr e = {0};
	const char *ok[] = {"tenant"}, *reserved[] = {"__name"}, *bad[] = {"1abc"}, *colon[] = {"a:b"},
		   *twice[] = {"a", "a"}, *le[] = {"le"}, *nul[] = {NULL};

	assert_int_equal(metrics_gauge_new(r, "9lives", "h", NULL, 0, &f, &e), KERR_INVAL);
	assert_string_equal(e.message, "metric name '9lives' is invalid: use [a-zA-Z_:][a-zA-Z0-9_:]*");
	kerr_clear(&e);
	assert_int_equal(metrics_gauge_new(r, "has-dash", "h", NULL, 0, &f, NULL), KERR_INVAL);
	assert_int_equal(metrics_gauge_new(r, "", "h", NULL, 0, &f, NULL), KERR_INVAL);
	assert_int_equal(metrics_gauge_new(r, NULL, "h", NULL, 0, &f, NULL), KERR_INVAL);
	assert_int_equal(metrics_gauge_new(r, "ns:sub_ok", "h", NULL, 0, &f, NULL), 0);
	assert_int_equal(metrics_counter_new(r, "requests", "h", NULL, 0, &f, &e), KERR_INVAL);
	assert_string_equal(e.message, "counter 'requests' must end in _total (Prometheus naming)");
	kerr_clear(&e);
	assert_int_equal(metrics_gauge_new(r, "g1", "h", reserved, 1, &f, &e), KERR_INVAL);
	assert_string_equal(e.message,
			    "metric 'g1': label name '__name' is invalid: use [a-zA-Z_][a-zA-Z0-9_]* not starting with __");
	assert_int_equal(metrics_gauge_new(r, "g2", "h", bad, 1, &f, NULL), KERR_INVAL);
	assert_int_equal(metrics_gauge_new(r, "g3", "h", colon, 1, &f, NULL), KERR_INVAL);
	assert_int_equal(metrics_gauge_new(r, "g4", "h", nul, 1, &f, NULL), KERR_INVAL);
	assert_int_equal(metrics_gauge_new(r, "g5", "h", NULL, 1, &f, NULL), KERR_INVAL);
	kerr_clear(&e);
	assert_int_equal(metrics_gauge_new(r, "g6", "h", twice, 2, &f, &e), KERR_INVAL);
	assert_string_equal(e.message, "metric 'g6': label 'a' appears twice");
	kerr_clear(&e);
	assert_int_equal(metrics_histogram_new(r, "h1", "h", le, 1, NULL, 0, &f, &e), KERR_INVAL);
	assert_string_equal(e.message, "histogram 'h1': the label 'le' is reserved for buckets");
	assert_int_equal(metrics_gauge_new(r, "g7", "h", le, 1, &f, NULL), 0);

	kerr_clear(&e);
	assert_int_equal(metrics_counter_new(r, "dup_total", "h", ok, 1, &f, &e), 0);
	assert_int_equal(metrics_gauge_new(r, "dup_total", "h", NULL, 0, &f, &e), KERR_ALREADY_EXISTS);
	assert_string_equal(e.message, "metric 'dup_total' is already registered");
}

static void observations_are_checked(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *c, *g;
	const char *labels[] = {"a", "b"};
	assert_int_equal(metrics_counter_new(r, "c_total", "h", labels, 2, &c, NULL), 0);
	assert_int_equal(metrics_gauge_new(r, "g", "h", NULL, 0, &g, NULL), 0);

	assert_int_equal(metrics_counter_inc(c, METRICS_LABELS("only-one")), KERR_INVAL);
	assert_int_equal(metrics_counter_inc(c, METRICS_LABELS("1", "2", "3")), KERR_INVAL);
	assert_int_equal(metrics_counter_inc(c, NULL, 2), KERR_INVAL);
	assert_int_equal(metrics_counter_inc(c, METRICS_LABELS("x", NULL)), KERR_INVAL);
	assert_int_equal(metrics_counter_add(c, -1, METRICS_LABELS("x", "y")), KERR_INVAL);
	assert_int_equal(metrics_counter_add(c, NAN, METRICS_LABELS("x", "y")), KERR_INVAL);
	assert_int_equal(metrics_counter_add(c, INFINITY, METRICS_LABELS("x", "y")), KERR_INVAL);
	/* The wrong kind of family. */
	assert_int_equal(metrics_gauge_set(c, 1, METRICS_LABELS("x", "y")), KERR_INVAL);
	assert_int_equal(metrics_counter_inc(g, NULL, 0), KERR_INVAL);
	assert_int_equal(metrics_histogram_observe(g, 1, NULL, 0), KERR_INVAL);
	assert_int_equal(metrics_remove(c, METRICS_LABELS("x")), KERR_INVAL);
	/* Nothing above created a child. */
	expect_render(r, "# HELP g h\n# TYPE g gauge\ng 0\n");
}

static void children_are_capped(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *g;
	const char *labels[] = {"id"};
	char id[32];
	assert_int_equal(metrics_gauge_new(r, "many", "h", labels, 1, &g, NULL), 0);
	for (int i = 0; i < METRICS_MAX_CHILDREN; i++) {
		snprintf(id, sizeof(id), "%d", i);
		assert_int_equal(metrics_gauge_set(g, i, METRICS_LABELS(id)), 0);
	}
	assert_int_equal(metrics_gauge_set(g, 1, METRICS_LABELS("one-more")), KERR_TOO_LARGE);
	/* Existing children still update; removing one makes room. */
	assert_int_equal(metrics_gauge_add(g, 1, METRICS_LABELS("7")), 0);
	assert_int_equal(metrics_remove(g, METRICS_LABELS("7")), 0);
	assert_int_equal(metrics_gauge_set(g, 1, METRICS_LABELS("one-more")), 0);

	/* A long label value takes the heap path for its key. */
	char big[600];
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(metrics_remove(g, METRICS_LABELS("8")), 0);
	assert_int_equal(metrics_gauge_set(g, 1, METRICS_LABELS(big)), 0);
	assert_int_equal(metrics_remove(g, METRICS_LABELS(big)), 0);
}

#define THREADS 4
#define ROUNDS 20000

struct conc {
	struct metrics_family *c, *h;
	struct metrics_registry *r;
	int id;
};

static void *observer(void *arg)
{
	struct conc *x = arg;
	char label[8];
	snprintf(label, sizeof(label), "t%d", x->id % 2);
	for (int i = 0; i < ROUNDS; i++) {
		if (metrics_counter_inc(x->c, METRICS_LABELS(label)) != 0 ||
		    metrics_histogram_observe(x->h, (i % 4) * 0.5, NULL, 0) != 0)
			return (void *)1;
		if (i % 5000 == 0) {
			char *out;
			size_t len;
			if (metrics_render(x->r, &out, &len, NULL) != 0)
				return (void *)1;
			free(out);
		}
	}
	return NULL;
}

static void concurrent_observations_add_up(void **state)
{
	struct metrics_registry *r = *state;
	struct metrics_family *c, *h;
	const char *labels[] = {"worker"};
	const double buckets[] = {0.5, 1};
	assert_int_equal(metrics_counter_new(r, "ops_total", "Ops.", labels, 1, &c, NULL), 0);
	assert_int_equal(metrics_histogram_new(r, "op_seconds", "Op time.", NULL, 0, buckets, 2, &h, NULL), 0);

	pthread_t t[THREADS];
	struct conc args[THREADS];
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct conc){.c = c, .h = h, .r = r, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, observer, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		pthread_join(t[i], &ret);
		assert_null(ret);
	}
	/* Per thread: 20000 observations of 0, 0.5, 1, 1.5 in turn, so a
	 * quarter each; sum 20000 * 0.75 = 15000. */
	expect_render(r, "# HELP op_seconds Op time.\n"
			 "# TYPE op_seconds histogram\n"
			 "op_seconds_bucket{le=\"0.5\"} 40000\n"
			 "op_seconds_bucket{le=\"1\"} 60000\n"
			 "op_seconds_bucket{le=\"+Inf\"} 80000\n"
			 "op_seconds_sum 60000\n"
			 "op_seconds_count 80000\n"
			 "# HELP ops_total Ops.\n"
			 "# TYPE ops_total counter\n"
			 "ops_total{worker=\"t0\"} 40000\n"
			 "ops_total{worker=\"t1\"} 40000\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(empty_registry_renders_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(counters_and_gauges, setup, teardown),
		cmocka_unit_test_setup_teardown(label_prefixes_sort_first, setup, teardown),
		cmocka_unit_test_setup_teardown(histograms, setup, teardown),
		cmocka_unit_test_setup_teardown(escaping_and_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(names_are_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(observations_are_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(children_are_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(concurrent_observations_add_up, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
