/*
 * The tenant reconciler and CLI against the real apiserver and PostgreSQL:
 * KUBECONFIG and DB_* from the environment (hack/cluster env, hack/postgres
 * env); exits 77 (skipped) without them.
 *
 * It builds what nimbus-operator builds for tenants (kube client, Namespace
 * and ResourceQuota informers, the tenant reconciler with its listener) on
 * a schema of its own, so that its rows and NOTIFYs never meet another
 * run's, and then checks, with GETs through the kube client:
 *   1. tenant_create -> the five objects exist within 5 s, as the row says;
 *   2. the quota deleted -> recreated (a new uid) within 2 s;
 *   3. the quota's hard cpu edited -> restored within 2 s;
 *   4. the namespace's tenant label removed -> restored within 2 s;
 *   5. the LimitRange (not cached) deleted -> restored by the periodic
 *      full apply (a resync period of 3 s here) within 5 s;
 *   6. the namespace deleted -> recreated, with its quota, once the
 *      namespace controller has finished with the old one (30 s);
 *   7. the database connections killed, then a tenant created -> its
 *      namespace within 5 s (reconnect, LISTEN again, resync);
 *   8. the CLI (tenant_cli_main) in-process: create, list, duplicate,
 *      invalid name, delete of a missing tenant, delete;
 *   9. a row deleted by hand -> its namespace is kept (an orphan);
 *  10. tenant_mark_deleted -> namespace and row gone within 60 s (the
 *      namespace controller finalizes the namespace first).
 * Every step prints "ok - ..." or "FAIL: ..." with what it saw.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "config.h"
#include "db.h"
#include "informer.h"
#include "kinds.h"
#include "kube_client.h"
#include "kube_write.h"
#include "kubeconfig.h"
#include "log.h"
#include "tenant.h"
#include "tenant_cli.h"

extern char **environ;

static struct config cfg;
static PGconn *admin; /* raw libpq: the schema and pg_terminate_backend */
static struct kube_client *kc;
static char schema[64], app_name[64];
static int failures;

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

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	failures++;
}

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ok(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("ok - ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

/* Admin SQL built here from the pid only. */
static bool admin_exec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool admin_exec(const char *fmt, ...)
{
	char sql[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	PGresult *r = PQexec(admin, sql);
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		fail("admin SQL '%s': %s", sql, PQerrorMessage(admin));
		return false;
	}
	return true;
}

/* GET path and decode it as k: the object (caller unrefs) or NULL on 404.
 * *rc gets the request's result. */
static struct kobj *get(const char *path, const struct kind *k, int *rc)
{
	struct kube_response r;
	struct kerr e = {0};
	struct kobj *o = NULL;
	*rc = kube_client_request(kc, "GET", path, NULL, NULL, 0, &r, &e);
	if (*rc == 0 && k && kind_decode_json(k, r.body, r.len, &o, &e) < 0)
		*rc = e.code;
	if (*rc < 0 && *rc != KERR_NOT_FOUND)
		fail("GET %s: %s", path, e.message);
	kube_response_free(&r);
	return o;
}

static bool exists(const char *path)
{
	int rc;
	get(path, NULL, &rc);
	return rc == 0;
}

static void paths(const char *id, char p[5][256])
{
	snprintf(p[0], 256, "/api/v1/namespaces/nimbus-%s", id);
	snprintf(p[1], 256, "/api/v1/namespaces/nimbus-%s/resourcequotas/nimbus-quota", id);
	snprintf(p[2], 256, "/api/v1/namespaces/nimbus-%s/limitranges/nimbus-defaults", id);
	snprintf(p[3], 256, "/apis/networking.k8s.io/v1/namespaces/nimbus-%s/networkpolicies/nimbus-default-deny", id);
	snprintf(p[4], 256, "/apis/rbac.authorization.k8s.io/v1/namespaces/nimbus-%s/rolebindings/nimbus-tenant", id);
}

/* Wait up to ms for all five objects of id; how long it took, or -1. */
static int64_t wait_all_objects(const char *id, int ms)
{
	char p[5][256];
	paths(id, p);
	int64_t t0 = now_ms();
	while (now_ms() - t0 < ms) {
		int n = 0;
		for (int i = 0; i < 5; i++)
			n += exists(p[i]);
		if (n == 5)
			return now_ms() - t0;
		sleep_ms(100);
	}
	for (int i = 0; i < 5; i++)
		if (!exists(p[i]))
			fail("%s is missing after %d ms", p[i], ms);
	return -1;
}

static struct kresourcequota *get_quota(const char *id)
{
	char p[5][256];
	int rc;
	paths(id, p);
	return (struct kresourcequota *)get(p[1], &kind_resourcequota, &rc);
}

static int patch(const char *path, const char *merge_patch)
{
	struct kube_response r;
	struct kerr e = {0};
	int rc = kube_client_request(kc, "PATCH", path, KUBE_CONTENT_MERGE_PATCH, merge_patch, strlen(merge_patch), &r,
				     &e);
	if (rc < 0)
		fail("PATCH %s: %s", path, e.message);
	kube_response_free(&r);
	return rc;
}

static void step_create(struct db *db, const char *id)
{
	struct kerr e = {0};
	struct tenant *t = NULL;
	if (tenant_create(db, id, "500m", "512Mi", 5, &t, &e) < 0) {
		fail("tenant_create %s: %s", id, e.message);
		return;
	}
	if (strcmp(t->id, id) != 0 || strcmp(t->cpu, "500m") != 0 || t->pods != 5 || t->status != TENANT_ACTIVE ||
	    strlen(t->created_at) != 20)
		fail("tenant_create returned id %s cpu %s pods %lld status %s created %s", t->id, t->cpu,
		     (long long)t->pods, tenant_status_name(t->status), t->created_at);
	tenant_free(t);
	int64_t took = wait_all_objects(id, 5000);
	if (took < 0)
		return;
	ok("tenant %s: namespace, quota, limitrange, networkpolicy and rolebinding in %lld ms", id, (long long)took);

	char p[5][256];
	int rc;
	paths(id, p);
	struct kobj *ns = get(p[0], &kind_namespace, &rc);
	const char *label = ns ? kobj_label(ns, TENANT_LABEL) : NULL;
	const char *by = ns ? kobj_label(ns, TENANT_MANAGED_BY_LABEL) : NULL;
	if (!label || strcmp(label, id) != 0 || !by || strcmp(by, "nimbus") != 0)
		fail("namespace labels: tenant %s, managed-by %s", label ? label : "(none)", by ? by : "(none)");
	kobj_unref(ns);
	struct kresourcequota *q = get_quota(id);
	if (!q || q->hard.requests_cpu_milli != 500 || q->hard.limits_cpu_milli != 500 ||
	    q->hard.requests_memory != (INT64_C(512) << 20) || q->hard.limits_memory != (INT64_C(512) << 20) ||
	    q->hard.pods != 5)
		fail("quota hard values differ from the row");
	else
		ok("quota hard: requests/limits cpu 500m, memory 512Mi, pods 5");
	kobj_unref(q ? &q->meta : NULL);

	/* A second create of the same name is refused, saying so. */
	kerr_clear(&e);
	if (tenant_create(db, id, NULL, NULL, -1, NULL, &e) != KERR_ALREADY_EXISTS || !strstr(e.message, "already exists"))
		fail("duplicate tenant_create: %s (%s)", kerr_name(e.code), e.message);
	else
		ok("duplicate create refused: %s", e.message);
}

static void step_quota_deleted(const char *id)
{
	char p[5][256];
	paths(id, p);
	struct kresourcequota *q = get_quota(id);
	if (!q) {
		fail("no quota to delete");
		return;
	}
	char uid[64];
	snprintf(uid, sizeof(uid), "%s", q->meta.uid);
	kobj_unref(&q->meta);
	struct kerr e = {0};
	if (kube_delete(kc, p[1], &e) < 0) {
		fail("deleting the quota: %s", e.message);
		return;
	}
	int64_t t0 = now_ms();
	while (now_ms() - t0 < 2000) {
		q = get_quota(id);
		bool back = q && strcmp(q->meta.uid, uid) != 0 && q->hard.requests_cpu_milli == 500;
		kobj_unref(q ? &q->meta : NULL);
		if (back) {
			ok("deleted quota recreated in %lld ms", (long long)(now_ms() - t0));
			return;
		}
		sleep_ms(50);
	}
	fail("the deleted quota was not recreated within 2 s");
}

static void step_quota_edited(const char *id)
{
	char p[5][256];
	paths(id, p);
	if (patch(p[1], "{\"spec\":{\"hard\":{\"requests.cpu\":\"3\"}}}") < 0)
		return;
	int64_t t0 = now_ms();
	while (now_ms() - t0 < 2000) {
		struct kresourcequota *q = get_quota(id);
		bool back = q && q->hard.requests_cpu_milli == 500;
		kobj_unref(q ? &q->meta : NULL);
		if (back) {
			ok("edited quota (requests.cpu 3) restored to 500m in %lld ms", (long long)(now_ms() - t0));
			return;
		}
		sleep_ms(50);
	}
	fail("the edited quota was not restored within 2 s");
}

static void step_label_removed(const char *id)
{
	char p[5][256];
	paths(id, p);
	if (patch(p[0], "{\"metadata\":{\"labels\":{\"nimbus.io/tenant\":null}}}") < 0)
		return;
	int64_t t0 = now_ms();
	while (now_ms() - t0 < 2000) {
		int rc;
		struct kobj *ns = get(p[0], &kind_namespace, &rc);
		const char *label = ns ? kobj_label(ns, TENANT_LABEL) : NULL;
		bool back = label && strcmp(label, id) == 0;
		kobj_unref(ns);
		if (back) {
			ok("removed namespace label restored in %lld ms", (long long)(now_ms() - t0));
			return;
		}
		sleep_ms(50);
	}
	fail("the namespace's tenant label was not restored within 2 s");
}

static void step_limitrange_deleted(const char *id)
{
	char p[5][256];
	paths(id, p);
	struct kerr e = {0};
	if (kube_delete(kc, p[2], &e) < 0) {
		fail("deleting the limitrange: %s", e.message);
		return;
	}
	int64_t t0 = now_ms();
	while (now_ms() - t0 < 5000) {
		if (exists(p[2])) {
			ok("deleted limitrange restored by the periodic apply in %lld ms", (long long)(now_ms() - t0));
			return;
		}
		sleep_ms(100);
	}
	fail("the deleted limitrange was not restored within 5 s (resync period 3 s)");
}

static void step_namespace_deleted(const char *id)
{
	char p[5][256];
	int rc;
	paths(id, p);
	struct kobj *ns = get(p[0], &kind_namespace, &rc);
	if (!ns) {
		fail("no namespace to delete");
		return;
	}
	char uid[64];
	snprintf(uid, sizeof(uid), "%s", ns->uid);
	kobj_unref(ns);
	struct kerr e = {0};
	if (kube_delete(kc, p[0], &e) < 0) {
		fail("deleting the namespace: %s", e.message);
		return;
	}
	int64_t t0 = now_ms();
	while (now_ms() - t0 < 30000) {
		ns = get(p[0], &kind_namespace, &rc);
		bool back = ns && strcmp(ns->uid, uid) != 0 && !ns->deleted;
		kobj_unref(ns);
		if (back && exists(p[1])) {
			ok("deleted namespace recreated with its quota in %lld ms", (long long)(now_ms() - t0));
			return;
		}
		sleep_ms(250);
	}
	fail("the deleted namespace was not recreated within 30 s");
}

static void step_orphan(const char *id)
{
	char p[5][256];
	paths(id, p);
	if (!admin_exec("DELETE FROM %s.tenants WHERE id = 'drv-%d-b'", schema, (int)getpid()))
		return;
	sleep_ms(2000);
	int rc;
	struct kobj *ns = get(p[0], &kind_namespace, &rc);
	if (!ns || ns->deleted)
		fail("the namespace of tenant %s, whose row was deleted by hand, was deleted", id);
	else
		ok("row of %s deleted by hand: namespace kept as an orphan", id);
	kobj_unref(ns);
}

static void step_reconnect(struct db *db, const char *id)
{
	/* Both of the reconciler's connections; the driver's own has another
	 * application name. */
	if (!admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '%s'",
			app_name))
		return;
	struct kerr e = {0};
	if (tenant_create(db, id, "1", "1Gi", 3, NULL, &e) < 0) {
		fail("tenant_create %s: %s", id, e.message);
		return;
	}
	int64_t took = wait_all_objects(id, 5000);
	if (took >= 0)
		ok("after the database connections were killed, tenant %s applied in %lld ms", id, (long long)took);
}

/* Run the CLI with the words given; its stdout into out. Exit status. */
static int cli(char *out, size_t cap, int argc, ...)
{
	char *argv[12] = {"nimbus-operator", "tenant"};
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc && i < 10; i++)
		argv[2 + i] = va_arg(ap, char *);
	va_end(ap);
	char tmpl[] = "/tmp/tenant-cli-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0) {
		fail("mkstemp: cannot capture the CLI's output");
		return -1;
	}
	unlink(tmpl);
	fflush(stdout);
	int saved = dup(1);
	if (saved < 0 || dup2(fd, 1) < 0) {
		fail("dup: cannot capture the CLI's output");
		close(fd);
		return -1;
	}
	int status = tenant_cli_main(argc + 2, argv, &cfg);
	fflush(stdout);
	if (dup2(saved, 1) < 0)
		fail("dup2: cannot restore stdout");
	close(saved);
	ssize_t n = pread(fd, out, cap - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return status;
}

static void step_cli(const char *id, const char *other)
{
	char out[4096];
	/* The CLI connects with DB_* only: libpq takes the schema from here. */
	char opts[96];
	snprintf(opts, sizeof(opts), "-c search_path=%s", schema);
	setenv("PGOPTIONS", opts, 1);
	int st = cli(out, sizeof(out), 5, "create", (char *)id, "--cpu", "250m", "--memory=256Mi");
	if (st != 0 || !strstr(out, "created (cpu 250m, memory 256Mi, pods 20)"))
		fail("cli create: status %d, output: %s", st, out);
	else
		ok("cli create: %s", strtok(out, "\n"));
	int64_t took = wait_all_objects(id, 5000);
	if (took >= 0)
		ok("tenant %s created by the CLI applied in %lld ms (NOTIFY from another connection)", id,
		   (long long)took);
	st = cli(out, sizeof(out), 1, "list");
	if (st != 0 || !strstr(out, "NAME") || !strstr(out, id) || !strstr(out, other) || !strstr(out, "250m"))
		fail("cli list: status %d, output: %s", st, out);
	else
		ok("cli list:\n%s", out);
	st = cli(out, sizeof(out), 2, "create", (char *)id);
	if (st != 1)
		fail("cli create of an existing tenant: status %d", st);
	st = cli(out, sizeof(out), 2, "create", "Bad_Name");
	if (st != 1)
		fail("cli create of an invalid name: status %d", st);
	st = cli(out, sizeof(out), 2, "delete", "no-such-tenant");
	if (st != 1)
		fail("cli delete of a missing tenant: status %d", st);
	st = cli(out, sizeof(out), 2, "delete", (char *)id);
	if (st != 0 || !strstr(out, "marked for deletion"))
		fail("cli delete: status %d, output: %s", st, out);
	else
		ok("cli delete: %s", strtok(out, "\n"));
	unsetenv("PGOPTIONS");
}

/* Wait until the namespace and the row of each id are gone. */
static void wait_deleted(struct db *db, const char *const *ids, size_t n, int ms)
{
	int64_t t0 = now_ms();
	size_t gone = 0;
	while (now_ms() - t0 < ms && gone < n) {
		gone = 0;
		for (size_t i = 0; i < n; i++) {
			char p[5][256];
			struct tenant *t = NULL;
			paths(ids[i], p);
			int rc = tenant_get(db, ids[i], &t, NULL);
			tenant_free(t);
			gone += !exists(p[0]) && rc == KERR_NOT_FOUND;
		}
		if (gone < n)
			sleep_ms(250);
	}
	for (size_t i = 0; i < n; i++) {
		char p[5][256];
		struct tenant *t = NULL;
		paths(ids[i], p);
		int rc = tenant_get(db, ids[i], &t, NULL);
		if (rc == 0)
			fail("tenant %s still has its row (status %s) after %d ms", ids[i], tenant_status_name(t->status),
			     ms);
		else if (exists(p[0]))
			fail("namespace nimbus-%s still exists after %d ms", ids[i], ms);
		else
			ok("tenant %s: namespace and row gone within %lld ms", ids[i], (long long)(now_ms() - t0));
		tenant_free(t);
	}
}

static void step_delete(struct db *db, const char *const *ids, size_t n)
{
	struct kerr e = {0};
	for (size_t i = 0; i < n; i++) {
		kerr_clear(&e);
		if (tenant_mark_deleted(db, ids[i], &e) < 0)
			fail("tenant_mark_deleted %s: %s", ids[i], e.message);
	}
	kerr_clear(&e);
	if (tenant_mark_deleted(db, "no-such-tenant", &e) != KERR_NOT_FOUND)
		fail("tenant_mark_deleted of a missing tenant: %s", kerr_name(e.code));
}

static int open_admin(void)
{
	const char *keys[] = {"host", "port", "dbname", "user", "password", NULL};
	const char *vals[] = {cfg.db_host, cfg.db_port, cfg.db_name, cfg.db_user, cfg.db_password, NULL};
	if (!cfg.db_password)
		keys[4] = NULL;
	admin = PQconnectdbParams(keys, vals, 0);
	if (PQstatus(admin) != CONNECTION_OK) {
		fail("cannot connect to PostgreSQL: %s", PQerrorMessage(admin));
		return -1;
	}
	/* DROP SCHEMA ... CASCADE lists what it drops as NOTICEs: noise here. */
	return admin_exec("SET client_min_messages = warning") ? 0 : -1;
}

int main(int argc, char **argv)
{
	(void)argc;
	if (!getenv("DB_HOST") || !*getenv("DB_HOST") || !getenv("KUBECONFIG") || !*getenv("KUBECONFIG")) {
		printf("SKIP: DB_HOST and KUBECONFIG must be set (eval \"$(hack/postgres env)\" and "
		       "eval \"$(hack/cluster env)\")\n");
		return 77;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct kerr e = {0};
	char *args[] = {argv[0], NULL};
	if (config_load(&cfg, 1, args, environ, &e) < 0) {
		printf("FAIL: config: %s\n", e.message);
		return 1;
	}
	log_set_level(LOG_LEVEL_INFO);

	int pid = (int)getpid();
	snprintf(schema, sizeof(schema), "nimbus_tenant_drv_%d", pid);
	snprintf(app_name, sizeof(app_name), "tenant-driver-%d", pid);
	char opts[96], t1[32], t2[32], t3[32];
	snprintf(opts, sizeof(opts), "-c search_path=%s", schema);
	snprintf(t1, sizeof(t1), "drv-%d", pid);
	snprintf(t2, sizeof(t2), "drv-%d-b", pid);
	snprintf(t3, sizeof(t3), "drv-%d-cli", pid);

	struct db *db = NULL;
	struct kube_config kcfg = {0};
	struct informer *nsi = NULL, *qi = NULL;
	struct tenant_reconciler *tr = NULL;
	if (open_admin() < 0 || !admin_exec("CREATE SCHEMA %s", schema))
		goto out;

	struct db_options dbo;
	db_options_from_config(&dbo, &cfg);
	dbo.pg_options = opts;
	dbo.application_name = "tenant-driver-test";
	size_t nmig;
	const struct db_migration *mig = db_migrations(&nmig);
	if (db_open(&dbo, &db, &e) < 0 || db_migrate(db, mig, nmig, NULL, &e) < 0) {
		fail("database: %s", e.message);
		goto out;
	}
	if (kubeconfig_load_default(&kcfg, NULL, &e) < 0 || kube_client_new(&kc, &kcfg, NULL, &e) < 0) {
		fail("kube client: %s", e.message);
		goto out;
	}
	if (informer_new(&nsi, kc, &kind_namespace, NULL, &e) < 0 ||
	    informer_new(&qi, kc, &kind_resourcequota, NULL, &e) < 0 ||
	    store_add_index(informer_store(qi), "namespace", store_index_namespace, NULL) < 0) {
		fail("informers: %s", e.message);
		goto out;
	}
	struct db_options rdo = dbo;
	rdo.application_name = app_name;
	/* Short backoff so that step 5 does not wait out the default's. */
	rdo.backoff_initial_ms = 100;
	rdo.backoff_max_ms = 1000;
	struct tenant_reconciler_options ro = {
		.client = kc, .namespaces = nsi, .quotas = qi, .db = &rdo, .workers = 2, .resync_ms = 3000};
	if (tenant_reconciler_new(&tr, &ro, &e) < 0 || informer_start(nsi, &e) < 0 || informer_start(qi, &e) < 0) {
		fail("tenant reconciler: %s", e.message);
		goto out;
	}
	if (informer_wait_synced(nsi, 10000) < 0 || informer_wait_synced(qi, 10000) < 0) {
		fail("informers did not sync within 10 s");
		goto out;
	}
	if (tenant_reconciler_start(tr, &e) < 0) {
		fail("tenant_reconciler_start: %s", e.message);
		goto out;
	}
	ok("reconciler started (schema %s)", schema);

	step_create(db, t1);
	step_quota_deleted(t1);
	step_quota_edited(t1);
	step_label_removed(t1);
	step_limitrange_deleted(t1);
	step_namespace_deleted(t1);
	step_reconnect(db, t2);
	step_cli(t3, t1);
	step_orphan(t2);
	const char *ids[] = {t1};
	step_delete(db, ids, 1);
	const char *all[] = {t1, t3};
	wait_deleted(db, all, 2, 60000);

out:
	tenant_reconciler_stop(tr);
	informer_stop(nsi);
	informer_stop(qi);
	tenant_reconciler_free(tr);
	informer_free(nsi);
	informer_free(qi);
	/* Leave nothing behind in the cluster, whatever failed. */
	if (kc) {
		const char *left[] = {t1, t2, t3};
		for (int i = 0; i < 3; i++) {
			char p[5][256];
			struct kerr de = {0};
			paths(left[i], p);
			kube_delete(kc, p[0], &de);
		}
	}
	kube_client_free(kc);
	kube_config_free(&kcfg);
	db_close(db);
	if (admin) {
		if (PQstatus(admin) == CONNECTION_OK)
			admin_exec("DROP SCHEMA IF EXISTS %s CASCADE", schema);
		PQfinish(admin);
	}
	config_free(&cfg);
	if (failures)
		printf("%d check(s) failed\n", failures);
	else
		printf("all checks passed\n");
	return failures ? 1 : 0;
}
