/*
 * billing's database side against a real PostgreSQL, given by DB_* in the
 * environment (as hack/postgres env prints them); exits 77 (skipped)
 * without DB_HOST.
 *
 * Each test migrates a schema of its own (search_path through the libpq
 * "options"), dropped at the end: idempotent writes and the forward-only
 * state, all-or-nothing batches, usage per tenant, invoices for open and
 * closed periods (issued once, then frozen), and the period rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "billing.h"
#include "config.h"
#include "db.h"

extern char **environ;

static struct config cfg;
static PGconn *admin;
static int nschemas;

#define MIB (1024LL * 1024)
#define GIB (1024LL * MIB)
/* 2025-01-01T00:00:00Z and 2025-02-01T00:00:00Z: a long-closed month. */
#define JAN 1735689600000LL
#define FEB 1738368000000LL

static void must(int rc, const struct kerr *e)
{
	if (rc != 0)
		fail_msg("rc %d (%s): %s", rc, kerr_name(rc), e->message);
}

/* A fresh schema with every migration applied, and a handle on it. */
static int setup(void **state)
{
	char schema[64], sql[128], opts[128];
	snprintf(schema, sizeof(schema), "nimbus_billingtest_%d_%d", (int)getpid(), ++nschemas);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	PQclear(PQexec(admin, sql));
	struct db_options o;
	db_options_from_config(&o, &cfg);
	snprintf(opts, sizeof(opts), "-c search_path=%s", schema);
	o.pg_options = opts;
	o.application_name = "nimbus-test-billing";
	struct db *d = NULL;
	struct kerr e = {0};
	size_t n;
	const struct db_migration *m = db_migrations(&n);
	if (db_open(&o, &d, &e) != 0 || db_migrate(d, m, n, NULL, &e) != 0) {
		fprintf(stderr, "setup: %s\n", e.message);
		db_close(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	db_close(*state);
	return 0;
}

static int64_t scalar(struct db *d, const char *what)
{
	PGresult *r;
	struct kerr e = {0};
	int rc;
	/* Only these fixed queries: SQL is a literal (db.h). */
	if (strcmp(what, "rows") == 0)
		rc = db_exec_params(d, "SELECT count(*) FROM billing_usage", 0, NULL, &r, &e);
	else if (strcmp(what, "states") == 0)
		rc = db_exec_params(d, "SELECT count(*) FROM billing_pod_state WHERE NOT closed", 0, NULL, &r, &e);
	else if (strcmp(what, "invoices") == 0)
		rc = db_exec_params(d, "SELECT count(*) FROM invoices", 0, NULL, &r, &e);
	else
		rc = db_exec_params(d,
				    "SELECT coalesce(max((extract(epoch FROM last_sample) * 1000)::bigint), -1) "
				    "FROM billing_pod_state",
				    0, NULL, &r, &e);
	must(rc, &e);
	int64_t v = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* A row of pod uid for tenant over [start, end] at constant cpu and mem. */
static struct billing_row row(const char *tenant, const char *uid, int64_t start, int64_t end, int64_t cpu_nano,
			      int64_t mem, bool closed)
{
	struct billing_row r = {tenant, uid, "nimbus-x", "pod", start, end, {{0, 0}, {0, 0}}, cpu_nano, mem, closed};
	struct billing_point a = {start, cpu_nano, mem}, b = {end, cpu_nano, mem};
	struct kerr e = {0};
	must(billing_trapezoid(&a, &b, &r.usage, &e), &e);
	return r;
}

static size_t put(struct db *d, const struct billing_row *rows, size_t n)
{
	size_t inserted = 99;
	struct kerr e = {0};
	must(billing_write_rows(d, rows, n, &inserted, &e), &e);
	return inserted;
}

static void writes_are_idempotent(void **state)
{
	struct db *d = *state;
	struct billing_row rows[] = {row("a", "uid-1", JAN, JAN + 10000, 500000000, 256 * MIB, false),
				     row("a", "uid-1", JAN + 10000, JAN + 20000, 500000000, 256 * MIB, false)};
	assert_int_equal(put(d, rows, 2), 2);
	assert_int_equal(scalar(d, "rows"), 2);
	assert_int_equal(scalar(d, "last_sample"), JAN + 20000);
	/* The same rows again (a commit whose answer was lost): nothing changes. */
	assert_int_equal(put(d, rows, 2), 0);
	assert_int_equal(scalar(d, "rows"), 2);
	/* An older row replayed alone does not move the state back. */
	assert_int_equal(put(d, rows, 1), 0);
	assert_int_equal(scalar(d, "last_sample"), JAN + 20000);
	assert_int_equal(put(d, NULL, 0), 0);

	/* The pod ends: its last row closes the state, also when replayed. */
	struct billing_row last = row("a", "uid-1", JAN + 20000, JAN + 25000, 500000000, 256 * MIB, true);
	assert_int_equal(put(d, &last, 1), 1);
	assert_int_equal(scalar(d, "states"), 0);
	assert_int_equal(put(d, &last, 1), 0);
	assert_int_equal(scalar(d, "states"), 0);
	/* A zero-length close writes no usage row, only the state change. */
	struct billing_row open = row("a", "uid-2", JAN, JAN + 5000, 0, 0, false);
	struct billing_row none = row("a", "uid-2", JAN + 5000, JAN + 5000, 0, 0, true);
	assert_int_equal(put(d, &open, 1), 1);
	assert_int_equal(scalar(d, "states"), 1);
	assert_int_equal(put(d, &none, 1), 0);
	assert_int_equal(scalar(d, "states"), 0);
	assert_int_equal(scalar(d, "rows"), 4);
}

/* Rows that would overlap committed ones are refused, whoever writes them:
 * a second replica, or a state re-created for a pod already billed. */
static void overlapping_rows_are_refused(void **state)
{
	struct db *d = *state;
	struct billing_row a1 = row("a", "uid-1", JAN, JAN + 10000, 1000000, 1, false);
	assert_int_equal(put(d, &a1, 1), 1);
	/* Another writer's timeline for the same pod, from an older state. */
	struct billing_row b1 = row("a", "uid-1", JAN + 5000, JAN + 15000, 1000000, 1, false);
	assert_int_equal(put(d, &b1, 1), 0);
	assert_int_equal(scalar(d, "last_sample"), JAN + 10000);
	/* The committed timeline goes on. */
	struct billing_row a2 = row("a", "uid-1", JAN + 10000, JAN + 20000, 1000000, 1, false);
	assert_int_equal(put(d, &a2, 1), 1);
	assert_int_equal(scalar(d, "last_sample"), JAN + 20000);
	/* After the pod is closed, a first interval from its start again
	 * is refused; later time (a pod that came back) is billed. */
	struct billing_row close = row("a", "uid-1", JAN + 20000, JAN + 22000, 1000000, 1, true);
	assert_int_equal(put(d, &close, 1), 1);
	assert_int_equal(scalar(d, "states"), 0);
	struct billing_row again = row("a", "uid-1", JAN, JAN + 30000, 1000000, 1, false);
	assert_int_equal(put(d, &again, 1), 0);
	assert_int_equal(scalar(d, "states"), 0);
	struct billing_row later = row("a", "uid-1", JAN + 40000, JAN + 50000, 1000000, 1, false);
	assert_int_equal(put(d, &later, 1), 1);
	assert_int_equal(scalar(d, "states"), 1);
	assert_int_equal(scalar(d, "last_sample"), JAN + 50000);
	/* Rows of one pod never overlap. */
	PGresult *r;
	struct kerr e = {0};
	must(db_exec_params(d,
			    "SELECT count(*) FROM billing_usage x JOIN billing_usage y ON x.pod_uid = y.pod_uid "
			    "AND x.window_start < y.window_start AND y.window_start < x.window_end",
			    0, NULL, &r, &e),
	     &e);
	assert_string_equal(PQgetvalue(r, 0, 0), "0");
	PQclear(r);
	assert_int_equal(scalar(d, "rows"), 4);
}

static void a_batch_is_all_or_nothing(void **state)
{
	struct db *d = *state;
	struct billing_row rows[] = {row("a", "uid-1", JAN, JAN + 10000, 1, 1, false),
				     row("a", "uid-1", JAN + 10000, JAN + 20000, 1, 1, false)};
	rows[1].end_ms = JAN; /* ends before it starts */
	struct kerr e = {0};
	size_t inserted = 99;
	assert_int_equal(billing_write_rows(d, rows, 2, &inserted, &e), KERR_INVAL);
	assert_non_null(strstr(e.message, "ends before it starts"));
	assert_int_equal(inserted, 0);
	assert_int_equal(scalar(d, "rows"), 0);
	assert_int_equal(scalar(d, "states"), 0);
	/* The handle is usable afterwards (the transaction was rolled back). */
	assert_int_equal(put(d, rows, 1), 1);
}

/* A batch as a pass writes it: many pods, one statement per run of
 * distinct pods. A pod's second row in the same batch is written after its
 * first, and a refused row leaves the other pods' rows alone. */
static void a_batch_of_many_pods_keeps_each_pods_order(void **state)
{
	struct db *d = *state;
	struct billing_row stale = row("a", "uid-9", JAN + 60000, JAN + 70000, 1, 1, false);
	assert_int_equal(put(d, &stale, 1), 1);
	enum { PODS = 300 };
	static char uids[PODS][16];
	struct billing_row rows[2 * PODS + 1];
	size_t n = 0;
	for (int i = 0; i < PODS; i++) {
		snprintf(uids[i], sizeof(uids[i]), "pod-%03d", i);
		rows[n++] = row(i % 2 ? "a" : "b", uids[i], JAN, JAN + 10000, 250000000, 64 * MIB, false);
	}
	/* uid-9 is already past this window: refused in the middle. */
	rows[n++] = row("a", "uid-9", JAN, JAN + 10000, 1, 1, false);
	for (int i = 0; i < PODS; i++)
		rows[n++] = row(i % 2 ? "a" : "b", uids[i], JAN + 10000, JAN + 20000, 250000000, 64 * MIB, i == 7);
	assert_int_equal(put(d, rows, n), 2 * PODS);
	assert_int_equal(scalar(d, "rows"), 2 * PODS + 1);
	/* Open: 299 pods (pod-007 closed) and uid-9. */
	assert_int_equal(scalar(d, "states"), PODS);
	/* The same batch again changes nothing. */
	assert_int_equal(put(d, rows, n), 0);
	assert_int_equal(scalar(d, "rows"), 2 * PODS + 1);
	PGresult *r;
	struct kerr e = {0};
	must(db_exec_params(d,
			    "SELECT count(*) FROM billing_pod_state WHERE pod_uid LIKE 'pod-%' "
			    "AND last_sample = '2025-01-01T00:00:20Z'",
			    0, NULL, &r, &e),
	     &e);
	assert_string_equal(PQgetvalue(r, 0, 0), "300");
	PQclear(r);
	must(db_exec_params(d, "SELECT sum(cpu_milli_seconds)::text FROM billing_usage WHERE pod_uid LIKE 'pod-%'", 0,
			    NULL, &r, &e),
	     &e);
	/* 300 pods x 20 s x 250 milli-cores, exactly. */
	assert_string_equal(PQgetvalue(r, 0, 0), "1500000.000000");
	PQclear(r);
}

static void usage_per_tenant(void **state)
{
	struct db *d = *state;
	struct billing_tenant_usage *u = (void *)1;
	size_t n = 99;
	struct kerr e = {0};
	must(billing_usage(d, &u, &n, &e), &e);
	assert_int_equal(n, 0);
	assert_null(u);

	/* Tenant b: 1 core and 1 GiB for 60 s; tenant a: two pods. */
	struct billing_row rows[] = {row("b", "uid-3", JAN + 1000, JAN + 61000, 1000000000, GIB, false),
				     row("a", "uid-1", JAN, JAN + 10000, 500000000, 256 * MIB, false),
				     row("a", "uid-2", JAN + 5000, JAN + 15000, 250000000, 3, false)};
	assert_int_equal(put(d, rows, 3), 3);
	must(billing_usage(d, &u, &n, &e), &e);
	assert_int_equal(n, 2);
	char buf[BILLING_DEC_MAX];
	assert_string_equal(u[0].tenant, "a");
	billing_dec_format(u[0].cpu_milli_seconds, buf, sizeof(buf));
	assert_string_equal(buf, "7500.000000"); /* 5000 + 2500 */
	billing_dec_format(u[0].memory_mb_seconds, buf, sizeof(buf));
	assert_string_equal(buf, "2560.000029"); /* (256 MiB x 10 s + 30 B-s) / 1 MiB, half up */
	assert_int_equal(u[0].since_ms, JAN);
	assert_int_equal(u[0].until_ms, JAN + 15000);
	assert_string_equal(u[1].tenant, "b");
	billing_dec_format(u[1].cpu_milli_seconds, buf, sizeof(buf));
	assert_string_equal(buf, "60000.000000");
	billing_dec_format(u[1].memory_mb_seconds, buf, sizeof(buf));
	assert_string_equal(buf, "61440.000000");
	free(u);
}

static const struct billing_prices usd = {50000, 10000, "USD"};

static void invoice_of_a_closed_period_is_frozen(void **state)
{
	struct db *d = *state;
	/* Periods are [start, end) by window_end: the row ending at JAN is
	 * January's, the one ending at FEB is February's. */
	struct billing_row rows[] = {row("a", "uid-1", JAN, JAN + 3600000, 10000000000LL, 100 * GIB, false),
				     row("a", "uid-9", JAN - 1000, JAN, 1000000000, 0, false),
				     row("a", "uid-8", FEB - 1, FEB, 1000000000, 0, false),
				     /* Another tenant's usage is not on a's invoice. */
				     row("z", "uid-5", JAN, JAN + 3600000, 1000000000, GIB, false)};
	assert_int_equal(put(d, rows, 4), 4);

	struct billing_invoice inv;
	struct kerr e = {0};
	must(billing_invoice(d, "a", JAN, FEB, &usd, &inv, &e), &e);
	assert_true(inv.issued);
	assert_true(inv.issued_at_ms > 0);
	assert_string_equal(inv.tenant, "a");
	assert_int_equal(inv.period_start_ms, JAN);
	assert_int_equal(inv.period_end_ms, FEB);
	const struct billing_charges *c = &inv.charges;
	assert_string_equal(c->currency, "USD");
	/* 10 core-hours + 1 core-second. */
	assert_string_equal(c->lines[BILLING_ITEM_CPU].quantity, "10.000278");
	assert_int_equal(c->lines[BILLING_ITEM_CPU].amount_minor, 50);
	assert_string_equal(c->lines[BILLING_ITEM_MEMORY].quantity, "100.000000");
	assert_int_equal(c->lines[BILLING_ITEM_MEMORY].amount_minor, 100);
	assert_int_equal(c->total_minor, 150);
	assert_string_equal(c->total, "1.50");
	assert_int_equal(scalar(d, "invoices"), 1);

	/* Late usage and new prices change nothing on an issued invoice. */
	struct billing_row late = row("a", "uid-7", JAN + 7200000, JAN + 10800000, 4000000000LL, 0, false);
	assert_int_equal(put(d, &late, 1), 1);
	struct billing_prices dear = {900000, 900000, "EUR"};
	struct billing_invoice again;
	must(billing_invoice(d, "a", JAN, FEB, &dear, &again, &e), &e);
	assert_true(again.issued);
	assert_int_equal(again.issued_at_ms, inv.issued_at_ms);
	assert_string_equal(again.charges.currency, "USD");
	assert_int_equal(again.charges.total_minor, 150);
	assert_string_equal(again.charges.lines[BILLING_ITEM_CPU].unit_price, "0.05");
	assert_int_equal(billing_dec_cmp(again.cpu_milli_seconds, inv.cpu_milli_seconds), 0);
	assert_int_equal(scalar(d, "invoices"), 1);

	/* February: the row that ended at FEB, 1 ms at one core. */
	must(billing_invoice(d, "a", FEB, FEB + 28LL * 86400000, &usd, &inv, &e), &e);
	char buf[BILLING_DEC_MAX];
	billing_dec_format(inv.cpu_milli_seconds, buf, sizeof(buf));
	assert_string_equal(buf, "1.000000");
	assert_int_equal(scalar(d, "invoices"), 2);
}

static void invoice_of_an_open_period_is_computed(void **state)
{
	struct db *d = *state;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, start, end;
	billing_month_bounds(now, &start, &end);
	struct billing_row r = row("a", "uid-1", now - 3600000, now - 1000, 1000000000, GIB, false);
	assert_int_equal(put(d, &r, 1), 1);

	/* 0, 0: the current month, computed and not stored. */
	struct billing_invoice inv;
	struct kerr e = {0};
	must(billing_invoice(d, "a", 0, 0, &usd, &inv, &e), &e);
	assert_false(inv.issued);
	assert_int_equal(inv.issued_at_ms, 0);
	assert_int_equal(inv.period_start_ms, start);
	assert_int_equal(inv.period_end_ms, end);
	assert_int_equal(scalar(d, "invoices"), 0);
	/* A period that ended less than the settle time ago is still open. */
	must(billing_invoice(d, "a", now - 7200000, now - 60000, &usd, &inv, &e), &e);
	assert_false(inv.issued);
	assert_int_equal(scalar(d, "invoices"), 0);
	/* Prices apply as given while open. */
	struct billing_prices jpy = {10000000, 0, "JPY"};
	must(billing_invoice(d, "a", start, end, &jpy, &inv, &e), &e);
	assert_string_equal(inv.charges.currency, "JPY");
	assert_int_equal(inv.charges.minor_digits, 0);

	/* Bad arguments. */
	assert_int_equal(billing_invoice(d, "", JAN, FEB, &usd, &inv, &e), KERR_INVAL);
	kerr_clear(&e);
	assert_int_equal(billing_invoice(d, "a", FEB, JAN, &usd, &inv, &e), KERR_INVAL);
	assert_non_null(strstr(e.message, "must end after it starts"));
	kerr_clear(&e);
	struct billing_prices bad = {1, 1, "usd"};
	assert_int_equal(billing_invoice(d, "a", start, end, &bad, &inv, &e), KERR_INVAL);
}

static int group_setup(void **state)
{
	struct kerr e = {0};
	(void)state;
	if (config_load(&cfg, 1, (char *[]){"test_billing_db", NULL}, environ, &e) != 0) {
		fprintf(stderr, "config: %s\n", e.message);
		return -1;
	}
	const char *keys[] = {"host", "port", "dbname", "user", "sslmode", "password", NULL};
	const char *vals[] = {cfg.db_host, cfg.db_port, cfg.db_name, cfg.db_user, cfg.db_sslmode, cfg.db_password, NULL};
	admin = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect to the test database: %s", PQerrorMessage(admin));
		return -1;
	}
	PQclear(PQexec(admin, "SET client_min_messages = warning"));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 1; i <= nschemas; i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS nimbus_billingtest_%d_%d CASCADE", (int)getpid(), i);
		PQclear(PQexec(admin, sql));
	}
	PQfinish(admin);
	config_free(&cfg);
	return 0;
}

int main(void)
{
	if (!getenv("DB_HOST") || !*getenv("DB_HOST")) {
		printf("SKIP: DB_HOST is not set; start a database with hack/postgres up and "
		       "eval \"$(hack/postgres env)\" to run this test\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(writes_are_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(overlapping_rows_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(a_batch_is_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(a_batch_of_many_pods_keeps_each_pods_order, setup, teardown),
		cmocka_unit_test_setup_teardown(usage_per_tenant, setup, teardown),
		cmocka_unit_test_setup_teardown(invoice_of_a_closed_period_is_frozen, setup, teardown),
		cmocka_unit_test_setup_teardown(invoice_of_an_open_period_is_computed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
