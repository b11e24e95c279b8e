/*
 * config: defaults, the environment, every flag in both forms, and the
 * message of every kind of bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char *const no_env[] = {NULL};

/* Load argv (NULL-terminated, without the program name) with envp. */
static int load(struct config *c, struct kerr *e, char *const envp[], const char *const *args)
{
	char *argv[48] = {"nimbus-operator"};
	int argc = 1;
	while (args && args[argc - 1]) {
		argv[argc] = (char *)args[argc - 1];
		argc++;
	}
	kerr_clear(e);
	return config_load(c, argc, argv, envp, e);
}

#define LOAD(c, e, envp, ...) load((c), (e), (envp), (const char *const[]){__VA_ARGS__, NULL})

/* Expect KERR_CONFIG and a message containing want. */
static void expect_error(char *const envp[], const char *want, const char *const *args)
{
	struct config c;
	struct kerr e;
	int rc = load(&c, &e, envp, args);
	config_free(&c);
	if (rc != KERR_CONFIG || !strstr(e.message, want))
		fail_msg("args starting '%s': rc %d, message '%s', wanted one containing '%s'",
			 args ? args[0] : "(none)", rc,
			 e.message, want);
}

#define EXPECT_ERROR(want, ...) expect_error(no_env, (want), (const char *const[]){__VA_ARGS__, NULL})

static void defaults(void **state)
{
	(void)state;
	struct config c;
	struct kerr e;
	assert_int_equal(load(&c, &e, no_env, NULL), 0);
	assert_string_equal(c.db_host, "localhost");
	assert_string_equal(c.db_port, "5432");
	assert_string_equal(c.db_name, "nimbus");
	assert_string_equal(c.db_user, "nimbus");
	assert_null(c.db_password);
	assert_string_equal(c.db_sslmode, "disable");
	assert_null(c.jwt_secret);
	assert_null(c.kubeconfig);
	assert_string_equal(c.metrics_addr.host, "127.0.0.1");
	assert_int_equal(c.metrics_addr.port, 9090);
	assert_string_equal(c.health_addr.host, "127.0.0.1");
	assert_int_equal(c.health_addr.port, 9091);
	assert_string_equal(c.api_addr.host, "127.0.0.1");
	assert_int_equal(c.api_addr.port, 8080);
	assert_false(c.leader_elect);
	assert_string_equal(c.leader_election_namespace, "nimbus-system");
	assert_string_equal(c.leader_election_id, "nimbus-operator-leader");
	assert_int_equal(c.workers, 16);
	assert_int_equal(c.scheduler_workers, 64);
	assert_int_equal(c.kube_api_qps, 200);
	assert_int_equal(c.kube_api_burst, 400);
	assert_int_equal(c.log_level, LOG_LEVEL_INFO);
	assert_int_equal(c.controllers, CONFIG_CTRL_ALL);
	assert_null(c.dashboard_dir);
	assert_int_equal(c.billing_period_ms, 30000);
	assert_int_equal(c.autoscaler_period_ms, 15000);
	assert_int_equal(c.price_cpu_core_hour_micro, 50000);
	assert_int_equal(c.price_memory_gib_hour_micro, 10000);
	assert_string_equal(c.currency, "USD");
	assert_int_equal(c.autoscaler_downscale_stabilization_ms, 300000);
	assert_false(c.help);
	config_free(&c);
	config_free(&c); /* zeroed: safe twice */
	config_free(NULL);
}

static void environment(void **state)
{
	(void)state;
	char *env[] = {"PATH=/bin", "DB_HOST=db.example", "DB_PORT=6543", "DB_NAME=n2", "DB_USER=u2",
		       "DB_PASSWORD=pw", "DB_SSLMODE=verify-full", "JWT_SECRET=s3cret",
		       "KUBECONFIG=/etc/kube.conf", NULL};
	struct config c;
	struct kerr e;
	assert_int_equal(load(&c, &e, env, NULL), 0);
	assert_string_equal(c.db_host, "db.example");
	assert_string_equal(c.db_port, "6543");
	assert_string_equal(c.db_name, "n2");
	assert_string_equal(c.db_user, "u2");
	assert_string_equal(c.db_password, "pw");
	assert_string_equal(c.db_sslmode, "verify-full");
	assert_string_equal(c.jwt_secret, "s3cret");
	assert_string_equal(c.kubeconfig, "/etc/kube.conf");
	config_free(&c);

	/* --kubeconfig wins over KUBECONFIG. */
	assert_int_equal(LOAD(&c, &e, env, "--kubeconfig=/tmp/other"), 0);
	assert_string_equal(c.kubeconfig, "/tmp/other");
	config_free(&c);

	/* An empty variable counts as unset, as in the seed. */
	char *empty[] = {"DB_HOST=", "DB_PASSWORD=", "DB_PORTX=1", NULL};
	assert_int_equal(load(&c, &e, empty, NULL), 0);
	assert_string_equal(c.db_host, "localhost");
	assert_null(c.db_password);
	assert_string_equal(c.db_port, "5432");
	config_free(&c);
}

static void environment_errors(void **state)
{
	(void)state;
	char *port[] = {"DB_PORT=54x", NULL};
	expect_error(port, "DB_PORT: '54x' is not a port number; use a whole number from 1 to 65535", NULL);
	char *port0[] = {"DB_PORT=0", NULL};
	expect_error(port0, "DB_PORT: '0'", NULL);
	char *ssl[] = {"DB_SSLMODE=on", NULL};
	expect_error(ssl, "DB_SSLMODE: 'on' is not an sslmode; use disable, allow, prefer, require, verify-ca or "
			  "verify-full",
		     NULL);
}

/* Every flag, as --flag=value; then the same as --flag value. */
static void every_flag_both_forms(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_config_XXXXXX";
	assert_non_null(mkdtemp(dir));
	const char *kv[][2] = {
		{"--metrics-bind-address", "0.0.0.0:19090"},
		{"--health-probe-bind-address", ":19091"},
		{"--api-bind-address", "[::1]:18080"},
		{"--leader-election-namespace", "ops"},
		{"--leader-election-id", "nimbus-lock"},
		{"--workers", "12"},
		{"--scheduler-workers", "8"},
		{"--kube-api-qps", "1000"},
		{"--kube-api-burst", "2000"},
		{"--log-level", "debug"},
		{"--controllers", "tenant,billing"},
		{"--kubeconfig", "/root/.kube/config"},
		{"--dashboard-dir", dir},
		{"--billing-period", "1m"},
		{"--autoscaler-period", "45s"},
		{"--price-cpu-core-hour", "0.1"},
		{"--price-memory-gib-hour", "0.002"},
		{"--currency", "EUR"},
		{"--autoscaler-downscale-stabilization", "30s"},
	};
	const size_t n = sizeof(kv) / sizeof(kv[0]);

	for (int form = 0; form < 2; form++) {
		const char *args[2 * sizeof(kv) / sizeof(kv[0]) + 2];
		char joined[sizeof(kv) / sizeof(kv[0])][128];
		size_t a = 0;
		for (size_t i = 0; i < n; i++) {
			if (form == 0) {
				snprintf(joined[i], sizeof(joined[i]), "%s=%s", kv[i][0], kv[i][1]);
				args[a++] = joined[i];
			} else {
				args[a++] = kv[i][0];
				args[a++] = kv[i][1];
			}
		}
		args[a++] = "--leader-elect";
		args[a] = NULL;

		struct config c;
		struct kerr e;
		assert_int_equal(load(&c, &e, no_env, args), 0);
		assert_string_equal(c.metrics_addr.host, "0.0.0.0");
		assert_int_equal(c.metrics_addr.port, 19090);
		assert_string_equal(c.health_addr.host, "");
		assert_int_equal(c.health_addr.port, 19091);
		assert_string_equal(c.api_addr.host, "::1");
		assert_int_equal(c.api_addr.port, 18080);
		assert_true(c.leader_elect);
		assert_string_equal(c.leader_election_namespace, "ops");
		assert_string_equal(c.leader_election_id, "nimbus-lock");
		assert_int_equal(c.workers, 12);
		assert_int_equal(c.scheduler_workers, 8);
		assert_int_equal(c.kube_api_qps, 1000);
		assert_int_equal(c.kube_api_burst, 2000);
		assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
		assert_int_equal(c.controllers, CONFIG_CTRL_TENANT | CONFIG_CTRL_BILLING);
		assert_string_equal(c.kubeconfig, "/root/.kube/config");
		assert_string_equal(c.dashboard_dir, dir);
		assert_int_equal(c.billing_period_ms, 60000);
		assert_int_equal(c.autoscaler_period_ms, 45000);
		assert_int_equal(c.price_cpu_core_hour_micro, 100000);
		assert_int_equal(c.price_memory_gib_hour_micro, 2000);
		assert_string_equal(c.currency, "EUR");
		assert_int_equal(c.autoscaler_downscale_stabilization_ms, 30000);
		config_free(&c);
	}
	rmdir(dir);
}

static void booleans_and_repeats(void **state)
{
	(void)state;
	struct config c;
	struct kerr e;
	assert_int_equal(LOAD(&c, &e, no_env, "--leader-elect=true"), 0);
	assert_true(c.leader_elect);
	config_free(&c);
	assert_int_equal(LOAD(&c, &e, no_env, "--leader-elect", "--leader-elect=false"), 0);
	assert_false(c.leader_elect);
	config_free(&c);
	/* A bool never takes the next argument: "--workers" stays a flag. */
	assert_int_equal(LOAD(&c, &e, no_env, "--leader-elect", "--workers", "2"), 0);
	assert_true(c.leader_elect);
	assert_int_equal(c.workers, 2);
	config_free(&c);
	/* The last of a repeated flag wins. */
	assert_int_equal(LOAD(&c, &e, no_env, "--workers=2", "--workers", "3", "--log-level=warn", "--log-level=error"),
			 0);
	assert_int_equal(c.workers, 3);
	assert_int_equal(c.log_level, LOG_LEVEL_ERROR);
	config_free(&c);
	/* All five controllers by name, in any order, repeats allowed. */
	assert_int_equal(LOAD(&c, &e, no_env, "--controllers=billing,autoscaler,scheduler,workload,tenant,tenant"), 0);
	assert_int_equal(c.controllers, CONFIG_CTRL_ALL);
	config_free(&c);
	/* 0 disables a listener, as in controller-runtime. */
	assert_int_equal(LOAD(&c, &e, no_env, "--metrics-bind-address=0", "--health-probe-bind-address", "localhost:1"),
			 0);
	assert_int_equal(c.metrics_addr.port, 0);
	assert_string_equal(c.health_addr.host, "localhost");
	assert_int_equal(c.health_addr.port, 1);
	config_free(&c);
}

static void help_stops_parsing(void **state)
{
	(void)state;
	struct config c;
	struct kerr e;
	assert_int_equal(LOAD(&c, &e, no_env, "--workers=2", "--help", "--no-such-flag"), 0);
	assert_true(c.help);
	config_free(&c);
	assert_int_equal(LOAD(&c, &e, no_env, "-h"), 0);
	assert_true(c.help);
	config_free(&c);

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	config_usage(f);
	fclose(f);
	const char *want[] = {"--metrics-bind-address=ADDR", "--health-probe-bind-address=ADDR", "--api-bind-address=ADDR",
			      "--leader-elect ", "--leader-election-namespace=NS", "--leader-election-id=NAME",
			      "--workers=N", "--scheduler-workers=N", "--log-level=LEVEL", "--controllers=LIST", "--kubeconfig=PATH",
			      "--dashboard-dir=DIR", "--billing-period=DURATION", "--autoscaler-period=DURATION",
			      "--price-cpu-core-hour=PRICE", "--price-memory-gib-hour=PRICE", "--currency=CODE",
			      "NIMBUS_PRICE_CPU_CORE_HOUR", "NIMBUS_CURRENCY",
			      "--help", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DB_SSLMODE",
			      "JWT_SECRET", "KUBECONFIG", "default 127.0.0.1:9090", "(default 16)"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(text, want[i]))
			fail_msg("usage lacks '%s':\n%s", want[i], text);
	}
	free(text);
}

static void leader_election_timings(void **state)
{
	(void)state;
	struct config c;
	struct kerr e;
	assert_int_equal(LOAD(&c, &e, no_env, "--leader-elect"), 0);
	assert_int_equal(c.leader_elect_lease_duration_ms, 15000);
	assert_int_equal(c.leader_elect_renew_deadline_ms, 10000);
	assert_int_equal(c.leader_elect_retry_period_ms, 2000);
	config_free(&c);

	assert_int_equal(LOAD(&c, &e, no_env, "--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline",
			      "3s", "--leader-elect-retry-period=500ms"),
			 0);
	assert_int_equal(c.leader_elect_lease_duration_ms, 4000);
	assert_int_equal(c.leader_elect_renew_deadline_ms, 3000);
	assert_int_equal(c.leader_elect_retry_period_ms, 500);
	config_free(&c);

	EXPECT_ERROR("--leader-elect-lease-duration: 1500 ms is not whole seconds", "--leader-elect-lease-duration=1500ms",
		     "--leader-elect-renew-deadline=1s", "--leader-elect-retry-period=100ms");
	EXPECT_ERROR("--leader-elect-renew-deadline (15000 ms) must be below --leader-elect-lease-duration (15000 ms)",
		     "--leader-elect-renew-deadline=15s");
	EXPECT_ERROR("--leader-elect-renew-deadline (10000 ms) must be below --leader-elect-lease-duration (5000 ms)",
		     "--leader-elect-lease-duration=5s");
	EXPECT_ERROR("--leader-elect-renew-deadline (2000 ms) must exceed 1.2 x --leader-elect-retry-period (2000 ms)",
		     "--leader-elect-renew-deadline=2s");
	EXPECT_ERROR("--leader-elect-retry-period: 'soon' is not a duration", "--leader-elect-retry-period=soon");
	/* --help is answered even with timings that would not start. */
	assert_int_equal(LOAD(&c, &e, no_env, "--leader-elect-renew-deadline=1m", "--help"), 0);
	assert_true(c.help);
	config_free(&c);
}

static void flag_errors(void **state)
{
	(void)state;
	EXPECT_ERROR("unknown flag '--frobnicate' (see --help for the accepted flags)", "--frobnicate=1");
	EXPECT_ERROR("unknown flag '--worker'", "--worker", "3");
	EXPECT_ERROR("unexpected argument 'serve': nimbus-operator takes only --flags", "serve");
	EXPECT_ERROR("unexpected argument '-workers=3'", "-workers=3");
	EXPECT_ERROR("--workers needs a value: --workers=N or --workers N", "--workers");
	EXPECT_ERROR("--workers: '-1' is not a whole number from 1 to 1024; use e.g. --workers=4", "--workers=-1");
	EXPECT_ERROR("--kube-api-qps: '0' is not a whole number from 1 to 100000; use e.g. --kube-api-qps=200",
		     "--kube-api-qps=0");
	EXPECT_ERROR("--workers: '0' is not a whole number", "--workers", "0");
	EXPECT_ERROR("--workers: 'four' is not", "--workers=four");
	EXPECT_ERROR("--workers: '4x' is not", "--workers=4x");
	EXPECT_ERROR("--workers: '99999999999999999999' is not", "--workers=99999999999999999999");
	EXPECT_ERROR("--leader-elect: 'yes' is not a boolean; use --leader-elect, --leader-elect=true or "
		     "--leader-elect=false",
		     "--leader-elect=yes");
	EXPECT_ERROR("--log-level: 'verbose' is not a log level; use debug, info, warn or error", "--log-level=verbose");
	EXPECT_ERROR("--controllers: 'foo' is not a controller; use a comma-separated list of tenant, workload, "
		     "scheduler, autoscaler, billing",
		     "--controllers=tenant,foo");
	EXPECT_ERROR("--controllers: '' is not a controller", "--controllers=");
	EXPECT_ERROR("--controllers: '' is not a controller", "--controllers=tenant,");
	EXPECT_ERROR("--leader-election-namespace: the value is empty; use --leader-election-namespace=NS",
		     "--leader-election-namespace=");
	EXPECT_ERROR("--kubeconfig: the value is empty", "--kubeconfig", "");
	EXPECT_ERROR("--dashboard-dir: cannot use '/nonexistent/dist': No such file or directory",
		     "--dashboard-dir=/nonexistent/dist");
	EXPECT_ERROR("--dashboard-dir: '/dev/null' is not a directory", "--dashboard-dir=/dev/null");
}

static void duration_errors(void **state)
{
	(void)state;
	const char *bad[] = {"15", "s", "1x", "0s", "-1s", "1.5s", "25h", "1h61m0s0ms9999999999999999", "15 s", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[96], want[256];
		snprintf(arg, sizeof(arg), "--billing-period=%s", bad[i]);
		snprintf(want, sizeof(want), "--billing-period: '%s' is not a duration; use whole numbers with units "
					     "ms, s, m or h, e.g. 500ms, 15s, 1m30s (more than 0, at most 24h)",
			 bad[i]);
		EXPECT_ERROR(want, arg);
	}
	EXPECT_ERROR("--autoscaler-period: '1d' is not a duration", "--autoscaler-period", "1d");
	EXPECT_ERROR("--autoscaler-period needs a value", "--autoscaler-period");
}

static void durations(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t ms;
	} ok[] = {{"500ms", 500}, {"15s", 15000}, {"1m", 60000}, {"1m30s", 90000}, {"2h", 7200000},
		  {"1h1m1s1ms", 3661001}, {"24h", 86400000}, {"0m1ms", 1}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t ms = -1;
		struct kerr e = {0};
		assert_int_equal(config_parse_duration("d", ok[i].s, &ms, &e), 0);
		assert_int_equal(ms, ok[i].ms);
	}
}

/* Prices: exact millionths, from flags or the environment (the flag wins),
 * and a message naming the flag or the variable for anything else. */
static void prices_and_currency(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int64_t micro;
	} ok[] = {{"0", 0},	      {"0.05", 50000},	 {"1", 1000000}, {".5", 500000}, {"3.", 3000000},
		  {"0.000001", 1},    {"12.345678", 12345678}, {"1000000000", 1000000000000000}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t micro = -1;
		struct kerr e = {0};
		assert_int_equal(config_parse_price("p", ok[i].s, &micro, &e), 0);
		assert_int_equal(micro, ok[i].micro);
	}
	const char *bad[] = {"", ".", "-1", "+1", "0.0000001", "1e3", "$5", "5 ", "1,5", "1000000000.000001",
			     "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[96], want[256];
		snprintf(arg, sizeof(arg), "--price-cpu-core-hour=%s", bad[i]);
		snprintf(want, sizeof(want),
			 "--price-cpu-core-hour: '%s' is not a price; use a non-negative decimal with at most 6 "
			 "decimals and no currency sign, e.g. 0.05 (at most 1000000000)",
			 bad[i]);
		EXPECT_ERROR(want, arg);
	}
	EXPECT_ERROR("--price-memory-gib-hour: 'x' is not a price", "--price-memory-gib-hour", "x");
	const char *bad_cur[] = {"usd", "US", "USDX", "U1D", ""};
	for (size_t i = 0; i < sizeof(bad_cur) / sizeof(bad_cur[0]); i++) {
		char arg[96], want[256];
		snprintf(arg, sizeof(arg), "--currency=%s", bad_cur[i]);
		snprintf(want, sizeof(want),
			 "--currency: '%s' is not a currency; use an ISO 4217 code in capitals, e.g. USD or EUR",
			 bad_cur[i]);
		EXPECT_ERROR(want, arg);
	}

	char *env[] = {"NIMBUS_PRICE_CPU_CORE_HOUR=0.031", "NIMBUS_PRICE_MEMORY_GIB_HOUR=0.004",
		       "NIMBUS_CURRENCY=JPY", NULL};
	struct config c;
	struct kerr e;
	assert_int_equal(load(&c, &e, env, NULL), 0);
	assert_int_equal(c.price_cpu_core_hour_micro, 31000);
	assert_int_equal(c.price_memory_gib_hour_micro, 4000);
	assert_string_equal(c.currency, "JPY");
	config_free(&c);
	assert_int_equal(LOAD(&c, &e, env, "--price-cpu-core-hour=2", "--currency", "EUR"), 0);
	assert_int_equal(c.price_cpu_core_hour_micro, 2000000);
	assert_int_equal(c.price_memory_gib_hour_micro, 4000);
	assert_string_equal(c.currency, "EUR");
	config_free(&c);
	/* An empty variable counts as unset. */
	char *empty[] = {"NIMBUS_PRICE_CPU_CORE_HOUR=", "NIMBUS_CURRENCY=", NULL};
	assert_int_equal(load(&c, &e, empty, NULL), 0);
	assert_int_equal(c.price_cpu_core_hour_micro, 50000);
	assert_string_equal(c.currency, "USD");
	config_free(&c);
	char *bad_env[] = {"NIMBUS_PRICE_MEMORY_GIB_HOUR=cheap", NULL};
	expect_error(bad_env, "NIMBUS_PRICE_MEMORY_GIB_HOUR: 'cheap' is not a price", NULL);
	char *bad_env2[] = {"NIMBUS_CURRENCY=euro", NULL};
	expect_error(bad_env2, "NIMBUS_CURRENCY: 'euro' is not a currency", NULL);
}

static void address_errors(void **state)
{
	(void)state;
	const char *bad[] = {"localhost",  "9090",          "1.2.3.4:99999", "1.2.3.4:0", "[::1:80",  "[::1]80",
			     "::1:80",      "a b:80",        "300.1.1.1:80",  "host:",     "host:8o",  "-bad.host:80",
			     "bad-.host:80", "a..b:80",      "[zz]:80",       ":+80",      ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char arg[96], want[256];
		snprintf(arg, sizeof(arg), "--api-bind-address=%s", bad[i]);
		snprintf(want, sizeof(want),
			 "--api-bind-address: '%s' is not a listen address; use host:port with a port from 1 to "
			 "65535 (e.g. 127.0.0.1:9090, :9090 for every interface, [::1]:9090), or 0 to disable",
			 bad[i]);
		EXPECT_ERROR(want, arg);
	}
	EXPECT_ERROR("--metrics-bind-address: 'x' is not a listen address", "--metrics-bind-address", "x");
	EXPECT_ERROR("--health-probe-bind-address: 'x' is not a listen address", "--health-probe-bind-address=x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(leader_election_timings),
		cmocka_unit_test(environment),
		cmocka_unit_test(environment_errors),
		cmocka_unit_test(every_flag_both_forms),
		cmocka_unit_test(booleans_and_repeats),
		cmocka_unit_test(help_stops_parsing),
		cmocka_unit_test(flag_errors),
		cmocka_unit_test(duration_errors),
		cmocka_unit_test(durations),
		cmocka_unit_test(address_errors),
		cmocka_unit_test(prices_and_currency),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
