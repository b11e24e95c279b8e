/*
 * db against a real PostgreSQL, given by DB_* in the environment (as
 * hack/postgres env prints them); exits 77 (skipped) without DB_HOST.
 *
 * Each test works in a schema of its own (search_path through the libpq
 * "options"), dropped at the end, so runs never see each other's tables.
 * A small TCP proxy in this program stands between the driver and the
 * server where a test needs the database to go away and come back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"

extern char **environ;

static struct config cfg;
static PGconn *admin;   /* raw libpq: schemas and pg_terminate_backend */
static int nschemas;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Run admin SQL (built here from numbers only); fails the test on error. */
static PGresult *admin_exec(const char *fmt, ...)
{
	char sql[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(admin, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		fail_msg("admin SQL '%s' failed: %s", sql, PQerrorMessage(admin));
	return r;
}

/* A fresh schema's name in out; dropped by the group teardown. */
static void new_schema(char *out, size_t size)
{
	snprintf(out, size, "nimbus_dbtest_%d_%d", (int)getpid(), ++nschemas);
	PQclear(admin_exec("CREATE SCHEMA %s", out));
}

/* Open a handle on schema (may be NULL) at host:port (NULL: the config's). */
static struct db *open_db(const char *schema, const char *port, struct kerr *e)
{
	struct db_options o;
	char opts[128];
	struct db *d = NULL;

	db_options_from_config(&o, &cfg);
	if (schema) {
		snprintf(opts, sizeof(opts), "-c search_path=%s", schema);
		o.pg_options = opts;
	}
	if (port) {
		o.host = "127.0.0.1";
		o.port = port;
	}
	o.backoff_initial_ms = 200;
	o.backoff_max_ms = 800;
	o.application_name = "nimbus-test-db";
	kerr_clear(e);
	if (db_open(&o, &d, e) != 0)
		return NULL;
	return d;
}

static struct db *must_open(const char *schema)
{
	struct kerr e;
	struct db *d = open_db(schema, NULL, &e);
	if (!d)
		fail_msg("db_open: %s", e.message);
	return d;
}

static void must(int rc, const struct kerr *e)
{
	if (rc != 0)
		fail_msg("rc %d (%s): %s", rc, kerr_name(rc), e->message);
}

/* The message of e contains want. */
static void expect_msg(const struct kerr *e, const char *want)
{
	if (!strstr(e->message, want))
		fail_msg("message '%s' lacks '%s'", e->message, want);
}

static int backend_pid(struct db *d)
{
	PGresult *r;
	struct kerr e = {0};
	must(db_exec_params(d, "SELECT pg_backend_pid()", 0, NULL, &r, &e), &e);
	int pid = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return pid;
}

/* Terminate backend pid and wait until it is gone, so that its FATAL and
 * the end of the stream are waiting on the client's socket. */
static void kill_backend(int pid)
{
	PQclear(admin_exec("SELECT pg_terminate_backend(%d)", pid));
	for (int i = 0; i < 100; i++) {
		PGresult *r = admin_exec("SELECT 1 FROM pg_stat_activity WHERE pid = %d", pid);
		int rows = PQntuples(r);
		PQclear(r);
		if (rows == 0)
			return;
		sleep_ms(50);
	}
	fail_msg("backend %d did not exit", pid);
}

static int count_rows(struct db *d, const char *table_is_tenants_or_migrations)
{
	PGresult *r;
	struct kerr e = {0};
	if (strcmp(table_is_tenants_or_migrations, "tenants") == 0)
		must(db_exec_params(d, "SELECT count(*) FROM tenants", 0, NULL, &r, &e), &e);
	else
		must(db_exec_params(d, "SELECT count(*) FROM schema_migrations", 0, NULL, &r, &e), &e);
	int n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

static void migrations_apply_once(void **state)
{
	(void)state;
	char schema[64];
	size_t n;
	int applied = -1;
	struct kerr e = {0};
	const struct db_migration *list = db_migrations(&n);

	assert_true(n >= 1);
	assert_int_equal(list[0].version, 1);
	assert_string_equal(list[0].name, "tenants");
	new_schema(schema, sizeof(schema));
	struct db *d = must_open(schema);
	must(db_migrate(d, list, n, &applied, &e), &e);
	assert_int_equal(applied, (int)n);

	PGresult *r;
	must(db_exec_params(d, "SELECT version, name FROM schema_migrations ORDER BY version", 0, NULL, &r, &e), &e);
	assert_int_equal(PQntuples(r), (int)n);
	assert_string_equal(PQgetvalue(r, 0, 0), "1");
	assert_string_equal(PQgetvalue(r, 0, 1), "tenants");
	PQclear(r);

	/* Again on the same connection, and as a second start would. */
	must(db_migrate(d, list, n, &applied, &e), &e);
	assert_int_equal(applied, 0);
	db_close(d);
	d = must_open(schema);
	must(db_migrate(d, list, n, &applied, &e), &e);
	assert_int_equal(applied, 0);
	assert_int_equal(count_rows(d, "schema_migrations"), (int)n);
	/* The lock was released: another session can take it at once. */
	r = admin_exec("SELECT pg_try_advisory_lock(121399085790579)");
	assert_string_equal(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	PQclear(admin_exec("SELECT pg_advisory_unlock(121399085790579)"));
	db_close(d);
}

/* The built-in migrations plus a slow one, which widens the window in
 * which two unguarded migrators would both apply version 1. */
static struct db_migration slow_list[16];
static size_t slow_n;

struct migrator {
	const char *schema;
	pthread_barrier_t *start;
	int rc, applied;
	struct kerr e;
};

static void *migrate_thread(void *arg)
{
	struct migrator *m = arg;
	struct db *d = open_db(m->schema, NULL, &m->e);
	pthread_barrier_wait(m->start);
	if (!d) {
		m->rc = m->e.code;
		return NULL;
	}
	m->rc = db_migrate(d, slow_list, slow_n, &m->applied, &m->e);
	db_close(d);
	return NULL;
}

static void concurrent_migrators_do_not_conflict(void **state)
{
	(void)state;
	char schema[64];
	const struct db_migration *list = db_migrations(&slow_n);
	memcpy(slow_list, list, slow_n * sizeof(*list));
	slow_list[slow_n++] = (struct db_migration){1000, "slow", "SELECT pg_sleep(0.3); CREATE TABLE slow_done (x int);"};

	new_schema(schema, sizeof(schema));
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, 2);
	struct migrator m[2] = {{.schema = schema, .start = &start}, {.schema = schema, .start = &start}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &m[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < 2; i++)
		must(m[i].rc, &m[i].e);
	/* One applied everything, the other waited for the lock and found
	 * nothing left to do. */
	assert_int_equal(m[0].applied + m[1].applied, (int)slow_n);
	assert_true(m[0].applied == 0 || m[1].applied == 0);
	struct db *d = must_open(schema);
	assert_int_equal(count_rows(d, "schema_migrations"), (int)slow_n);
	db_close(d);
}

static void failed_migration_rolls_back(void **state)
{
	(void)state;
	char schema[64];
	size_t n;
	int applied;
	struct kerr e = {0};
	const struct db_migration *builtin = db_migrations(&n);
	struct db_migration list[16];

	new_schema(schema, sizeof(schema));
	struct db *d = must_open(schema);
	memcpy(list, builtin, n * sizeof(*list));
	list[n] = (struct db_migration){2000, "broken", "CREATE TABLE half_done (x int); SELECT nope FROM half_done;"};
	assert_int_equal(db_migrate(d, list, n + 1, &applied, &e), KERR_DB);
	assert_int_equal(applied, (int)n);
	expect_msg(&e, "migration 2000 (broken) failed and was rolled back: SQL 'CREATE TABLE "
					  "half_done (x int); SELECT nope FROM half_done;' failed: ERROR: column "
					  "\"nope\" does not exist");
	assert_string_equal(e.reason, "42703");
	PGresult *r;
	kerr_clear(&e);
	must(db_exec_params(d, "SELECT to_regclass('half_done') IS NULL", 0, NULL, &r, &e), &e);
	assert_string_equal(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	assert_int_equal(count_rows(d, "schema_migrations"), (int)n);

	/* A recorded version under another name: a renumbered file. */
	struct db_migration renamed = {1, "renamed", "SELECT 1"};
	kerr_clear(&e);
	assert_int_equal(db_migrate(d, &renamed, 1, &applied, &e), KERR_DB);
	assert_string_equal(e.message, "schema_migrations records version 1 as 'tenants' but this binary has it "
				       "as 'renamed'; migration files must never be renumbered");
	/* A list out of order is refused before anything runs. */
	struct db_migration disorder[2] = {{2, "b", "SELECT 1"}, {1, "a", "SELECT 1"}};
	kerr_clear(&e);
	assert_int_equal(db_migrate(d, disorder, 2, &applied, &e), KERR_INVAL);
	/* The connection is still usable afterwards. */
	kerr_clear(&e);
	must(db_ping(d, &e), &e);
	db_close(d);
}

static struct db *migrated(char *schema, size_t size)
{
	size_t n;
	int applied;
	struct kerr e = {0};
	const struct db_migration *list = db_migrations(&n);
	new_schema(schema, size);
	struct db *d = must_open(schema);
	must(db_migrate(d, list, n, &applied, &e), &e);
	return d;
}

static void parameterized_statements(void **state)
{
	(void)state;
	char schema[64];
	struct kerr e = {0};
	PGresult *r;
	struct db *d = migrated(schema, sizeof(schema));

	/* Input that would break string-built SQL is stored as it is. */
	const char *evil = "x'); DROP TABLE tenants; --";
	const char *ins[] = {"t1", evil, "500m", NULL, "10"};
	must(db_exec_params(d,
			    "INSERT INTO tenants (id, name, cpu_quota, memory_quota, pods_quota) "
			    "VALUES ($1, $2, $3, $4, $5)",
			    5, ins, NULL, &e),
	     &e);
	const char *id[] = {"t1"};
	must(db_exec_params(d, "SELECT name, cpu_quota, memory_quota, pods_quota, status FROM tenants WHERE id = $1", 1,
			    id, &r, &e),
	     &e);
	assert_int_equal(PQntuples(r), 1);
	assert_string_equal(PQgetvalue(r, 0, 0), evil);
	assert_string_equal(PQgetvalue(r, 0, 1), "500m");
	assert_true(PQgetisnull(r, 0, 2));
	assert_string_equal(PQgetvalue(r, 0, 3), "10");
	assert_string_equal(PQgetvalue(r, 0, 4), "active");
	PQclear(r);

	/* A duplicate name is a unique violation: ALREADY_EXISTS, SQLSTATE kept. */
	const char *dup[] = {"t2", evil, NULL, NULL, NULL};
	assert_int_equal(db_exec_params(d,
					"INSERT INTO tenants (id, name, cpu_quota, memory_quota, pods_quota) "
					"VALUES ($1, $2, $3, $4, $5)",
					5, dup, &r, &e),
			 KERR_ALREADY_EXISTS);
	assert_null(r);
	assert_string_equal(e.reason, "23505");
	expect_msg(&e, "SQL 'INSERT INTO tenants (id, name, cpu_quota, memory_quota, pods_qu...' "
					  "failed: ERROR: duplicate key value violates unique constraint");
	/* A bad status violates the check constraint. */
	const char *bad[] = {"t3", "n3", "bogus"};
	kerr_clear(&e);
	assert_int_equal(db_exec_params(d, "INSERT INTO tenants (id, name, status) VALUES ($1, $2, $3)", 3, bad, NULL,
					&e),
			 KERR_DB);
	assert_string_equal(e.reason, "23514");
	kerr_clear(&e);
	assert_int_equal(db_exec_params(d, "SELECT $1", 1, NULL, NULL, &e), KERR_INVAL);

	/* Prepared statements. */
	kerr_clear(&e);
	must(db_prepare(d, "tenant_name", "SELECT name FROM tenants WHERE id = $1", 1, &e), &e);
	must(db_exec_prepared(d, "tenant_name", 1, id, &r, &e), &e);
	assert_string_equal(PQgetvalue(r, 0, 0), evil);
	PQclear(r);
	assert_int_equal(db_prepare(d, "tenant_name", "SELECT 1", 0, &e), KERR_ALREADY_EXISTS);
	kerr_clear(&e);
	assert_int_equal(db_exec_prepared(d, "tenant_name", 0, NULL, &r, &e), KERR_INVAL);
	assert_string_equal(e.message, "statement 'tenant_name' takes 1 parameters, got 0");
	kerr_clear(&e);
	assert_int_equal(db_exec_prepared(d, "nope", 0, NULL, &r, &e), KERR_NOT_FOUND);
	kerr_clear(&e);
	assert_int_equal(db_prepare(d, "broken", "SELECT FROM WHERE", 0, &e), KERR_DB);
	expect_msg(&e, "preparing statement 'broken' failed: ERROR: syntax error");
	kerr_clear(&e);
	assert_int_equal(db_exec_prepared(d, "broken", 0, NULL, &r, &e), KERR_NOT_FOUND);
	db_close(d);
}

/* Wait up to 5 s for a notification on channel with payload; others (from
 * other runs sharing the database) are skipped. */
static void expect_notify(struct db *l, const char *payload)
{
	int64_t deadline = now_ms() + 5000;
	struct kerr e = {0};
	while (now_ms() < deadline) {
		PGnotify *n;
		must(db_wait_notify(l, 500, &n, &e), &e);
		if (!n)
			continue;
		bool match = strcmp(n->relname, "nimbus_tenants") == 0 && strcmp(n->extra, payload) == 0;
		PQfreemem(n);
		if (match)
			return;
	}
	fail_msg("no notification with payload '%s' within 5 s", payload);
}

static void notify_on_tenant_changes(void **state)
{
	(void)state;
	char schema[64], tid[64], tid2[64];
	struct kerr e = {0};
	struct db *w = migrated(schema, sizeof(schema));
	struct db *l = must_open(schema);

	must(db_listen(l, "nimbus_tenants", &e), &e);
	must(db_listen(l, "nimbus_tenants", &e), &e); /* twice is once */
	assert_int_equal(db_listen(l, "", &e), KERR_INVAL);
	kerr_clear(&e);

	/* Nothing sent: the wait times out with no notification. */
	PGnotify *n = (PGnotify *)1;
	int64_t t0 = now_ms();
	must(db_wait_notify(l, 150, &n, &e), &e);
	assert_null(n);
	assert_true(now_ms() - t0 >= 140);

	snprintf(tid, sizeof(tid), "notify-%d", (int)getpid());
	snprintf(tid2, sizeof(tid2), "renamed-%d", (int)getpid());
	const char *ins[] = {tid, tid};
	must(db_exec_params(w, "INSERT INTO tenants (id, name) VALUES ($1, $2)", 2, ins, NULL, &e), &e);
	expect_notify(l, tid);
	const char *upd[] = {tid};
	must(db_exec_params(w, "UPDATE tenants SET status = 'deleting', updated_at = now() WHERE id = $1", 1, upd, NULL,
			    &e),
	     &e);
	expect_notify(l, tid);
	/* A changed id announces both ids. */
	const char *ren[] = {tid, tid2};
	must(db_exec_params(w, "UPDATE tenants SET id = $2 WHERE id = $1", 2, ren, NULL, &e), &e);
	expect_notify(l, tid2);
	expect_notify(l, tid);
	const char *del[] = {tid2};
	must(db_exec_params(w, "DELETE FROM tenants WHERE id = $1", 1, del, NULL, &e), &e);
	expect_notify(l, tid2);

	/* The listener's backend dies: the handle reconnects, LISTENs again and
	 * says so through its generation. */
	uint64_t gen = db_generation(l);
	kill_backend(backend_pid(l));
	int64_t deadline = now_ms() + 5000;
	while (db_generation(l) == gen && now_ms() < deadline) {
		kerr_clear(&e);
		if (db_wait_notify(l, 200, &n, &e) == 0 && n)
			PQfreemem(n);
	}
	assert_int_equal(db_generation(l), gen + 1);
	must(db_exec_params(w, "INSERT INTO tenants (id, name) VALUES ($1, $2)", 2, ins, NULL, &e), &e);
	expect_notify(l, tid);
	db_close(l);
	db_close(w);
}

static void reconnect_after_terminate(void **state)
{
	(void)state;
	char schema[64];
	struct kerr e = {0};
	PGresult *r;
	struct db *d = migrated(schema, sizeof(schema));
	const char *ins[] = {"r1", "r1"};
	const char *id[] = {"r1"};

	must(db_exec_params(d, "INSERT INTO tenants (id, name) VALUES ($1, $2)", 2, ins, NULL, &e), &e);
	must(db_prepare(d, "tenant_status", "SELECT status FROM tenants WHERE id = $1", 1, &e), &e);
	assert_int_equal(db_generation(d), 1);

	/* Killed while idle: found before the next statement, which then runs
	 * on a new connection with the statement prepared again. */
	int pid = backend_pid(d);
	kill_backend(pid);
	must(db_exec_prepared(d, "tenant_status", 1, id, &r, &e), &e);
	assert_string_equal(PQgetvalue(r, 0, 0), "active");
	PQclear(r);
	assert_int_equal(db_generation(d), 2);
	assert_int_not_equal(backend_pid(d), pid);

	/* Killed during a statement: that statement fails, the next works. */
	assert_int_equal(db_exec_params(d, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, NULL, &e), KERR_DB);
	expect_msg(&e, "broke during SQL 'SELECT pg_terminate_backend(pg_backend_pid())', which "
					  "may or may not have taken effect");
	kerr_clear(&e);
	must(db_exec_prepared(d, "tenant_status", 1, id, &r, &e), &e);
	PQclear(r);
	assert_int_equal(db_generation(d), 3);

	/* Killed inside a transaction: the next call says the transaction is
	 * gone; the one after starts afresh outside any transaction. */
	must(db_exec_params(d, "BEGIN", 0, NULL, NULL, &e), &e);
	const char *upd[] = {"r1"};
	must(db_exec_params(d, "UPDATE tenants SET status = 'deleting' WHERE id = $1", 1, upd, NULL, &e), &e);
	kill_backend(backend_pid(d));
	assert_int_equal(db_exec_params(d, "COMMIT", 0, NULL, NULL, &e), KERR_DB);
	expect_msg(&e, "lost inside a transaction, which the server rolled back");
	kerr_clear(&e);
	must(db_exec_prepared(d, "tenant_status", 1, id, &r, &e), &e);
	assert_string_equal(PQgetvalue(r, 0, 0), "active");
	PQclear(r);
	db_close(d);
}

static void unreachable_server(void **state)
{
	(void)state;
	struct kerr e;
	/* Port 1 on loopback: nothing listens, the connection is refused. */
	struct db *d = open_db(NULL, "1", &e);
	assert_null(d);
	assert_int_equal(e.code, KERR_DB);
	char want[128];
	snprintf(want, sizeof(want), "database at 127.0.0.1:1 (database %s, user %s) is unreachable: ", cfg.db_name,
		 cfg.db_user);
	if (!strstr(e.message, want) || !strstr(e.message, "Connection refused") ||
	    !strstr(e.message, "next attempt in"))
		fail_msg("message: %s", e.message);
	if (cfg.db_password)
		assert_null(strstr(e.message, cfg.db_password));
}

/* A TCP proxy to the server that can be switched off: then it closes
 * every connection it carries and every new one at once. */
static struct {
	int lfd, port;
	int wake[2];
	atomic_bool down, stop;
	atomic_int cuts;
	struct addrinfo *upstream;
	pthread_t thread;
} px;

#define PX_MAX 32

static void *proxy_run(void *arg)
{
	int pair[PX_MAX][2], npairs = 0, seen_cuts = 0;
	char buf[16384];
	(void)arg;
	while (!atomic_load(&px.stop)) {
		struct pollfd p[2 + 2 * PX_MAX];
		int n = 0;
		p[n++] = (struct pollfd){.fd = px.lfd, .events = POLLIN};
		p[n++] = (struct pollfd){.fd = px.wake[0], .events = POLLIN};
		for (int i = 0; i < npairs; i++) {
			p[n++] = (struct pollfd){.fd = pair[i][0], .events = POLLIN};
			p[n++] = (struct pollfd){.fd = pair[i][1], .events = POLLIN};
		}
		if (poll(p, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			ssize_t ignored = read(px.wake[0], buf, sizeof(buf));
			(void)ignored;
		}
		int cuts = atomic_load(&px.cuts);
		bool cut = cuts != seen_cuts;
		seen_cuts = cuts;
		for (int i = 0; i < npairs; i++) {
			bool close_it = cut;
			for (int side = 0; side < 2 && !close_it; side++) {
				if (!(p[2 + 2 * i + side].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				ssize_t got = read(pair[i][side], buf, sizeof(buf));
				if (got <= 0 || write(pair[i][1 - side], buf, (size_t)got) != got)
					close_it = true;
			}
			if (close_it) {
				close(pair[i][0]);
				close(pair[i][1]);
				pair[i][0] = -1;
			}
		}
		int kept = 0;
		for (int i = 0; i < npairs; i++) {
			if (pair[i][0] >= 0) {
				pair[kept][0] = pair[i][0];
				pair[kept][1] = pair[i][1];
				kept++;
			}
		}
		npairs = kept;
		if (p[0].revents & POLLIN) {
			int c = accept(px.lfd, NULL, NULL);
			if (c < 0)
				continue;
			int u = -1;
			if (!atomic_load(&px.down) && npairs < PX_MAX) {
				u = socket(px.upstream->ai_family, SOCK_STREAM, 0);
				if (u >= 0 && connect(u, px.upstream->ai_addr, px.upstream->ai_addrlen) != 0) {
					close(u);
					u = -1;
				}
			}
			if (u < 0) {
				close(c);
				continue;
			}
			pair[npairs][0] = c;
			pair[npairs][1] = u;
			npairs++;
		}
	}
	for (int i = 0; i < npairs; i++) {
		close(pair[i][0]);
		close(pair[i][1]);
	}
	return NULL;
}

static void proxy_set(bool down)
{
	atomic_store(&px.down, down);
	if (down)
		atomic_fetch_add(&px.cuts, 1);
	ssize_t ignored = write(px.wake[1], "x", 1);
	(void)ignored;
}

static void proxy_start(void)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	assert_int_equal(getaddrinfo(cfg.db_host, cfg.db_port, &hints, &px.upstream), 0);
	px.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(px.lfd >= 0);
	assert_int_equal(bind(px.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(px.lfd, 16), 0);
	assert_int_equal(getsockname(px.lfd, (struct sockaddr *)&a, &len), 0);
	px.port = ntohs(a.sin_port);
	assert_int_equal(pipe(px.wake), 0);
	atomic_store(&px.down, false);
	atomic_store(&px.stop, false);
	assert_int_equal(pthread_create(&px.thread, NULL, proxy_run, NULL), 0);
}

static void proxy_stop(void)
{
	atomic_store(&px.stop, true);
	proxy_set(false);
	pthread_join(px.thread, NULL);
	close(px.lfd);
	close(px.wake[0]);
	close(px.wake[1]);
	freeaddrinfo(px.upstream);
}

/* Next-attempt delay the message names, in ms. */
static long next_attempt(const struct kerr *e)
{
	const char *p = strstr(e->message, "next attempt in ");
	if (!p)
		fail_msg("no next attempt in: %s", e->message);
	return atol(p + strlen("next attempt in "));
}

static void backoff_while_down_then_recover(void **state)
{
	(void)state;
	char port[16], want[64];
	struct kerr e;
	proxy_start();
	snprintf(port, sizeof(port), "%d", px.port);
	snprintf(want, sizeof(want), "database at 127.0.0.1:%d", px.port);
	struct db *d = open_db(NULL, port, &e);
	if (!d)
		fail_msg("db_open through the proxy: %s", e.message);
	struct db *l = open_db(NULL, port, &e);
	if (!l)
		fail_msg("db_open through the proxy: %s", e.message);
	must(db_listen(l, "nimbus_tenants", &e), &e);

	proxy_set(true);
	sleep_ms(100);
	/* The loss is found, one attempt is made at once and fails; the next
	 * is 200 ms away (backoff_initial_ms). */
	kerr_clear(&e);
	assert_int_equal(db_ping(d, &e), KERR_DB);
	expect_msg(&e, want);
	expect_msg(&e, "is unreachable");
	long first = next_attempt(&e);
	assert_true(first > 150 && first <= 200);
	/* Within the backoff, calls fail at once without trying. */
	int64_t t0 = now_ms();
	kerr_clear(&e);
	assert_int_equal(db_ping(d, &e), KERR_DB);
	assert_true(now_ms() - t0 < 50);
	assert_true(next_attempt(&e) <= first);
	/* After it, one more attempt fails and the delay doubles. */
	sleep_ms(220);
	kerr_clear(&e);
	assert_int_equal(db_ping(d, &e), KERR_DB);
	long second = next_attempt(&e);
	assert_true(second > 350 && second <= 400);

	/* A listener waits for its next attempt instead of spinning: each call
	 * takes about its timeout while the database is away. */
	PGnotify *n;
	int calls = 0;
	t0 = now_ms();
	while (now_ms() - t0 < 600) {
		kerr_clear(&e);
		int rc = db_wait_notify(l, 100, &n, &e);
		if (rc == 0 && n)
			PQfreemem(n);
		calls++;
	}
	assert_true(calls <= 12);

	/* Back up: the next attempt after the backoff succeeds. */
	proxy_set(false);
	uint64_t gen = db_generation(d);
	int64_t deadline = now_ms() + 3000;
	int rc;
	do {
		kerr_clear(&e);
		rc = db_ping(d, &e);
		if (rc)
			sleep_ms(50);
	} while (rc && now_ms() < deadline);
	must(rc, &e);
	assert_int_equal(db_generation(d), gen + 1);
	db_close(d);
	db_close(l);
	proxy_stop();
}

/* A handle opened with defer_connect while the database is away: it is
 * returned disconnected, its LISTEN is kept, and once the database is back
 * the next use connects and notifications arrive. */
static void deferred_open_while_down(void **state)
{
	(void)state;
	char port[16];
	struct kerr e = {0};
	struct db_options o;
	struct db *l = NULL;
	proxy_start();
	proxy_set(true);
	snprintf(port, sizeof(port), "%d", px.port);
	db_options_from_config(&o, &cfg);
	o.host = "127.0.0.1";
	o.port = port;
	o.backoff_initial_ms = 100;
	o.backoff_max_ms = 200;
	/* Without defer_connect the same open fails. */
	assert_int_equal(db_open(&o, &l, &e), KERR_DB);
	assert_null(l);
	expect_msg(&e, "is unreachable");
	o.defer_connect = true;
	kerr_clear(&e);
	must(db_open(&o, &l, &e), &e);
	assert_non_null(l);
	assert_int_equal(db_generation(l), 0);
	must(db_listen(l, "nimbus_tenants", &e), &e);
	assert_int_equal(db_ping(l, &e), KERR_DB);

	proxy_set(false);
	PGnotify *n = NULL;
	int64_t deadline = now_ms() + 3000;
	while (db_generation(l) == 0 && now_ms() < deadline) {
		kerr_clear(&e);
		if (db_wait_notify(l, 100, &n, &e) == 0 && n)
			PQfreemem(n);
	}
	assert_int_equal(db_generation(l), 1);
	char payload[32];
	snprintf(payload, sizeof(payload), "deferred-%d", (int)getpid());
	PQclear(admin_exec("NOTIFY nimbus_tenants, '%s'", payload));
	expect_notify(l, payload);
	db_close(l);
	proxy_stop();
}

static int group_setup(void **state)
{
	struct kerr e = {0};
	(void)state;
	if (config_load(&cfg, 1, (char *[]){"test_db", NULL}, environ, &e) != 0) {
		fprintf(stderr, "config: %s\n", e.message);
		return -1;
	}
	/* The password last, so that without one the list simply ends there. */
	const char *keys[] = {"host", "port", "dbname", "user", "sslmode", "password", NULL};
	const char *vals[] = {cfg.db_host, cfg.db_port, cfg.db_name, cfg.db_user, cfg.db_sslmode, cfg.db_password, NULL};
	admin = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect to the test database: %s", PQerrorMessage(admin));
		return -1;
	}
	/* Keep DROP SCHEMA ... CASCADE from listing every object it drops. */
	PQclear(admin_exec("SET client_min_messages = warning"));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 1; i <= nschemas; i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS nimbus_dbtest_%d_%d CASCADE", (int)getpid(), i);
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
		cmocka_unit_test(migrations_apply_once),
		cmocka_unit_test(concurrent_migrators_do_not_conflict),
		cmocka_unit_test(failed_migration_rolls_back),
		cmocka_unit_test(parameterized_statements),
		cmocka_unit_test(notify_on_tenant_changes),
		cmocka_unit_test(reconnect_after_terminate),
		cmocka_unit_test(unreachable_server),
		cmocka_unit_test(backoff_while_down_then_recover),
		cmocka_unit_test(deferred_open_while_down),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
