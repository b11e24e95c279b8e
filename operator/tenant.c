#include "tenant.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An allocation failure inside uthash leaves the item out of its table
 * (hh.tbl == NULL) instead of exiting the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "kube_write.h"
#include "log.h"
#include "quantity.h"

/* LimitRange defaults for containers that state nothing: a small web
 * process. Each is capped by the tenant's quota. */
#define DEFAULT_REQUEST_CPU_MILLI 100
#define DEFAULT_REQUEST_MEMORY (INT64_C(128) << 20)
#define DEFAULT_LIMIT_CPU_MILLI 500
#define DEFAULT_LIMIT_MEMORY (INT64_C(512) << 20)

/* While a namespace terminates, or before the caches are filled: check
 * again after a second. */
#define WAIT_MS 1000
/* The listener's wait for a notification before it checks for stop. */
#define LISTEN_POLL_MS 500

const char *tenant_status_name(enum tenant_status s)
{
	return s == TENANT_DELETING ? "deleting" : "active";
}

/* ---- validation ---------------------------------------------------------- */

static bool is_alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int tenant_validate_name(const char *name, struct kerr *e)
{
	static const char *const reserved[] = {"admin", "default", "nimbus", "system"};
	static const char form[] = "use 1 to 56 lowercase letters, digits and '-', starting and ending with a letter "
				   "or digit (the tenant's namespace nimbus-<name> must be a DNS-1123 label)";
	if (!name || !*name)
		return kerr_set(e, KERR_INVAL, "tenant name is empty; %s", form);
	size_t n = strlen(name);
	if (n > TENANT_NAME_MAX)
		return kerr_set(e, KERR_INVAL, "tenant name \"%.64s%s\" is %zu characters long; %s", name,
				n > 64 ? "..." : "", n, form);
	for (size_t i = 0; i < n; i++)
		if (!is_alnum_lower(name[i]) && name[i] != '-')
			return kerr_set(e, KERR_INVAL, "tenant name \"%s\" contains '%c'; %s", name, name[i], form);
	if (name[0] == '-' || name[n - 1] == '-')
		return kerr_set(e, KERR_INVAL, "tenant name \"%s\" starts or ends with '-'; %s", name, form);
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(name, reserved[i]) == 0)
			return kerr_set(e, KERR_INVAL,
					"tenant name \"%s\" is reserved (admin, default, nimbus, system and kube-* "
					"are); choose another name",
					name);
	if (strncmp(name, "kube-", 5) == 0)
		return kerr_set(e, KERR_INVAL,
				"tenant name \"%s\" is reserved: names starting with \"kube-\" belong to Kubernetes; "
				"choose another name",
				name);
	return 0;
}

int tenant_parse_quota(const char *cpu, const char *memory, int64_t pods, struct tenant_quota *out, struct kerr *e)
{
	struct kerr qe = {0};
	if (!cpu)
		cpu = TENANT_DEFAULT_CPU;
	if (!memory)
		memory = TENANT_DEFAULT_MEMORY;
	if (pods < 0)
		pods = TENANT_DEFAULT_PODS;
	if (quantity_parse_milli(cpu, strlen(cpu), &out->cpu_milli, &qe) < 0)
		return kerr_set(e, KERR_INVAL, "cpu quota \"%.64s\" is not a Kubernetes quantity (%s); use cores such as "
				"\"2\" or milli-cores such as \"500m\"", cpu, qe.message);
	if (out->cpu_milli <= 0)
		return kerr_set(e, KERR_INVAL, "cpu quota \"%s\" must be more than zero; use e.g. \"500m\" or \"2\"", cpu);
	if (quantity_parse_value(memory, strlen(memory), &out->memory, &qe) < 0)
		return kerr_set(e, KERR_INVAL, "memory quota \"%.64s\" is not a Kubernetes quantity (%s); use bytes with "
				"a suffix such as \"512Mi\" or \"4Gi\"", memory, qe.message);
	if (out->memory <= 0)
		return kerr_set(e, KERR_INVAL, "memory quota \"%s\" must be more than zero; use e.g. \"512Mi\" or \"4Gi\"",
				memory);
	if (pods > TENANT_PODS_MAX)
		return kerr_set(e, KERR_INVAL, "pods quota %" PRId64 " is too large; use 0 to %d", pods, TENANT_PODS_MAX);
	out->pods = pods;
	return 0;
}

/* ---- desired objects ------------------------------------------------------- */

int tenant_namespace_name(const char *id, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, TENANT_NS_PREFIX "%s", id);
	return n < 0 || (size_t)n >= cap ? KERR_TOO_LARGE : 0;
}

static void labels(struct jsonb *b, const struct tenant *t, bool pod_security)
{
	jsonb_key(b, "labels");
	jsonb_obj(b);
	jsonb_kstr(b, TENANT_MANAGED_BY_LABEL, TENANT_MANAGED_BY);
	jsonb_kstr(b, TENANT_LABEL, t->id);
	/* baseline refuses privileged pods, host namespaces and host paths: a
	 * tenant must not reach the node or its neighbours through them. */
	if (pod_security)
		jsonb_kstr(b, "pod-security.kubernetes.io/enforce", "baseline");
	jsonb_obj_end(b);
}

/* {"apiVersion":..,"kind":..,"metadata":{"name":..,["namespace":..,]"labels":{..}} with the
 * object left open for the spec. */
static void head(struct jsonb *b, const struct tenant *t, const char *api_version, const char *kind, const char *name,
		 bool namespaced)
{
	char ns[TENANT_NS_MAX + 64];
	snprintf(ns, sizeof(ns), TENANT_NS_PREFIX "%s", t->id);
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", api_version);
	jsonb_kstr(b, "kind", kind);
	jsonb_key(b, "metadata");
	jsonb_obj(b);
	jsonb_kstr(b, "name", namespaced ? name : ns);
	if (namespaced)
		jsonb_kstr(b, "namespace", ns);
	labels(b, t, !namespaced);
	jsonb_obj_end(b);
}

void tenant_build_namespace(const struct tenant *t, struct jsonb *b)
{
	head(b, t, "v1", "Namespace", NULL, false);
	jsonb_obj_end(b);
}

void tenant_build_quota(const struct tenant *t, struct jsonb *b)
{
	char pods[24];
	snprintf(pods, sizeof(pods), "%" PRId64, t->pods);
	head(b, t, "v1", "ResourceQuota", TENANT_QUOTA_NAME, true);
	jsonb_key(b, "spec");
	jsonb_obj(b);
	jsonb_key(b, "hard");
	jsonb_obj(b);
	jsonb_kstr(b, "requests.cpu", t->cpu);
	jsonb_kstr(b, "requests.memory", t->memory);
	jsonb_kstr(b, "limits.cpu", t->cpu);
	jsonb_kstr(b, "limits.memory", t->memory);
	jsonb_kstr(b, "pods", pods);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void resources(struct jsonb *b, const char *key, int64_t cpu_milli, int64_t memory)
{
	char cpu[QUANTITY_FMT_MAX], mem[QUANTITY_FMT_MAX];
	quantity_format_cpu_milli(cpu_milli, cpu, sizeof(cpu));
	quantity_format_bytes(memory, mem, sizeof(mem));
	jsonb_key(b, key);
	jsonb_obj(b);
	jsonb_kstr(b, "cpu", cpu);
	jsonb_kstr(b, "memory", mem);
	jsonb_obj_end(b);
}

void tenant_build_limitrange(const struct tenant *t, const struct tenant_quota *q, struct jsonb *b)
{
	head(b, t, "v1", "LimitRange", TENANT_LIMITRANGE_NAME, true);
	jsonb_key(b, "spec");
	jsonb_obj(b);
	jsonb_key(b, "limits");
	jsonb_arr(b);
	jsonb_obj(b);
	jsonb_kstr(b, "type", "Container");
	/* Capping both by the quota keeps request <= limit, which the
	 * apiserver requires of a LimitRange. */
	resources(b, "default", min64(DEFAULT_LIMIT_CPU_MILLI, q->cpu_milli), min64(DEFAULT_LIMIT_MEMORY, q->memory));
	resources(b, "defaultRequest", min64(DEFAULT_REQUEST_CPU_MILLI, q->cpu_milli),
		  min64(DEFAULT_REQUEST_MEMORY, q->memory));
	jsonb_obj_end(b);
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
}

void tenant_build_networkpolicy(const struct tenant *t, struct jsonb *b)
{
	head(b, t, "networking.k8s.io/v1", "NetworkPolicy", TENANT_NETPOL_NAME, true);
	jsonb_key(b, "spec");
	jsonb_obj(b);
	/* Every pod of the namespace, ingress only: egress stays open so that
	 * workloads can reach DNS and outside services. */
	jsonb_key(b, "podSelector");
	jsonb_obj(b);
	jsonb_obj_end(b);
	jsonb_key(b, "policyTypes");
	jsonb_arr(b);
	jsonb_str(b, "Ingress");
	jsonb_arr_end(b);
	jsonb_key(b, "ingress");
	jsonb_arr(b);
	jsonb_obj(b);
	jsonb_key(b, "from");
	jsonb_arr(b);
	jsonb_obj(b);
	jsonb_key(b, "podSelector");
	jsonb_obj(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
}

void tenant_build_rolebinding(const struct tenant *t, struct jsonb *b)
{
	char group[sizeof(TENANT_GROUP_PREFIX) + TENANT_NS_MAX + 64];
	snprintf(group, sizeof(group), TENANT_GROUP_PREFIX "%s", t->id);
	head(b, t, "rbac.authorization.k8s.io/v1", "RoleBinding", TENANT_ROLEBINDING_NAME, true);
	jsonb_key(b, "roleRef");
	jsonb_obj(b);
	jsonb_kstr(b, "apiGroup", "rbac.authorization.k8s.io");
	jsonb_kstr(b, "kind", "ClusterRole");
	jsonb_kstr(b, "name", "edit");
	jsonb_obj_end(b);
	jsonb_key(b, "subjects");
	jsonb_arr(b);
	jsonb_obj(b);
	jsonb_kstr(b, "apiGroup", "rbac.authorization.k8s.io");
	jsonb_kstr(b, "kind", "Group");
	jsonb_kstr(b, "name", group);
	jsonb_obj_end(b);
	jsonb_arr_end(b);
	jsonb_obj_end(b);
}

static bool label_is(const struct kobj *o, const char *key, const char *value)
{
	const char *v = kobj_label(o, key);
	return v && strcmp(v, value) == 0;
}

bool tenant_namespace_drifted(const struct tenant *t, const struct knamespace *ns, const char **what)
{
	if (ns->meta.deleted || ns->phase == KNS_TERMINATING)
		return *what = "terminating", true;
	if (!label_is(&ns->meta, TENANT_LABEL, t->id))
		return *what = "label " TENANT_LABEL, true;
	if (!label_is(&ns->meta, TENANT_MANAGED_BY_LABEL, TENANT_MANAGED_BY))
		return *what = "label " TENANT_MANAGED_BY_LABEL, true;
	if (!label_is(&ns->meta, "pod-security.kubernetes.io/enforce", "baseline"))
		return *what = "label pod-security.kubernetes.io/enforce", true;
	return false;
}

bool tenant_quota_drifted(const struct tenant *t, const struct tenant_quota *q, const struct kresourcequota *rq,
			  const char **what)
{
	if (rq->hard.requests_cpu_milli != q->cpu_milli)
		return *what = "requests.cpu", true;
	if (rq->hard.limits_cpu_milli != q->cpu_milli)
		return *what = "limits.cpu", true;
	if (rq->hard.requests_memory != q->memory)
		return *what = "requests.memory", true;
	if (rq->hard.limits_memory != q->memory)
		return *what = "limits.memory", true;
	if (rq->hard.pods != q->pods)
		return *what = "pods", true;
	if (!label_is(&rq->meta, TENANT_LABEL, t->id))
		return *what = "label " TENANT_LABEL, true;
	return false;
}

/* ---- the database ------------------------------------------------------------ */

/* The columns a struct tenant is read from, in tenant_from_row's order. */
#define TENANT_COLUMNS                                                                          \
	"id, name, cpu_quota, memory_quota, pods_quota, status, "                               \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "            \
	"coalesce(to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"

/* Row i of r as one allocation: the struct, then its strings. */
static int tenant_from_row(const PGresult *r, int i, struct tenant **out, struct kerr *e)
{
	/* What a NULL reads as; an empty quota too, as an API may store
	 * "" for a value not given. */
	static const char *const defaults[8] = {"", "", TENANT_DEFAULT_CPU, TENANT_DEFAULT_MEMORY, NULL, "", "", ""};
	const char *col[8];
	size_t len[8], total = sizeof(struct tenant);
	for (int c = 0; c < 8; c++) {
		const char *v = PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c);
		if ((c == 2 || c == 3) && v && !*v)
			v = NULL;
		col[c] = v ? v : defaults[c];
		len[c] = col[c] ? strlen(col[c]) + 1 : 0;
		total += len[c];
	}
	struct tenant *t = malloc(total);
	if (!t)
		return kerr_set(e, KERR_NOMEM, "out of memory reading a tenant");
	char *p = (char *)(t + 1);
	const char **dst[8] = {&t->id, &t->name, &t->cpu, &t->memory, NULL, NULL, &t->created_at, &t->updated_at};
	for (int c = 0; c < 8; c++) {
		if (!dst[c])
			continue;
		memcpy(p, col[c], len[c]);
		*dst[c] = p;
		p += len[c];
	}
	t->pods = col[4] ? strtoll(col[4], NULL, 10) : TENANT_DEFAULT_PODS;
	t->status = strcmp(col[5], "deleting") == 0 ? TENANT_DELETING : TENANT_ACTIVE;
	*out = t;
	return 0;
}

void tenant_free(struct tenant *t)
{
	free(t);
}

void tenant_list_free(struct tenant **ts, size_t n)
{
	if (!ts)
		return;
	for (size_t i = 0; i < n; i++)
		tenant_free(ts[i]);
	free(ts);
}

int tenant_get(struct db *db, const char *id, struct tenant **out, struct kerr *e)
{
	*out = NULL;
	PGresult *r;
	const char *params[1] = {id};
	int rc = db_exec_params(db, "SELECT " TENANT_COLUMNS " FROM tenants WHERE id = $1", 1, params, &r, e);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0)
		rc = kerr_set(e, KERR_NOT_FOUND, "tenant %s does not exist", id);
	else
		rc = tenant_from_row(r, 0, out, e);
	PQclear(r);
	return rc;
}

int tenant_list(struct db *db, struct tenant ***out, size_t *n, struct kerr *e)
{
	*out = NULL;
	*n = 0;
	PGresult *r;
	int rc = db_exec_params(db, "SELECT " TENANT_COLUMNS " FROM tenants ORDER BY id", 0, NULL, &r, e);
	if (rc < 0)
		return rc;
	int rows = PQntuples(r);
	struct tenant **ts = rows ? calloc((size_t)rows, sizeof(*ts)) : NULL;
	if (rows && !ts)
		rc = kerr_set(e, KERR_NOMEM, "out of memory listing %d tenants", rows);
	for (int i = 0; rc == 0 && i < rows; i++)
		rc = tenant_from_row(r, i, &ts[i], e);
	PQclear(r);
	if (rc < 0) {
		tenant_list_free(ts, (size_t)rows);
		return rc;
	}
	*out = ts;
	*n = (size_t)rows;
	return 0;
}

int tenant_create(struct db *db, const char *name, const char *cpu, const char *memory, int64_t pods,
		  struct tenant **out, struct kerr *e)
{
	if (out)
		*out = NULL;
	struct tenant_quota q;
	int rc = tenant_validate_name(name, e);
	if (rc == 0)
		rc = tenant_parse_quota(cpu, memory, pods, &q, e);
	if (rc < 0)
		return rc;
	char pods_s[24];
	snprintf(pods_s, sizeof(pods_s), "%" PRId64, q.pods);
	const char *params[4] = {name, cpu ? cpu : TENANT_DEFAULT_CPU, memory ? memory : TENANT_DEFAULT_MEMORY, pods_s};
	PGresult *r;
	struct kerr de = {0};
	rc = db_exec_params(db,
			    "INSERT INTO tenants (id, name, cpu_quota, memory_quota, pods_quota) "
			    "VALUES ($1, $1, $2, $3, $4::integer) RETURNING " TENANT_COLUMNS,
			    4, params, &r, &de);
	if (rc == KERR_ALREADY_EXISTS) {
		struct tenant *old = NULL;
		bool deleting = tenant_get(db, name, &old, NULL) == 0 && old->status == TENANT_DELETING;
		tenant_free(old);
		return deleting ? kerr_set(e, rc, "tenant %s is still being deleted; create it again once "
					      "`nimbus-operator tenant list` no longer shows it", name)
				: kerr_set(e, rc, "tenant %s already exists; choose another name, or delete it first "
					      "(nimbus-operator tenant delete %s)", name, name);
	}
	if (rc < 0)
		return kerr_set(e, rc, "cannot create tenant %s: %s", name, de.message);
	if (out)
		rc = tenant_from_row(r, 0, out, e);
	PQclear(r);
	return rc;
}

int tenant_mark_deleted(struct db *db, const char *id, struct kerr *e)
{
	PGresult *r;
	const char *params[1] = {id};
	int rc = db_exec_params(db, "UPDATE tenants SET status = 'deleting', updated_at = now() WHERE id = $1", 1,
				params, &r, e);
	if (rc < 0)
		return rc;
	if (strcmp(PQcmdTuples(r), "0") == 0)
		rc = kerr_set(e, KERR_NOT_FOUND, "tenant %s does not exist; `nimbus-operator tenant list` shows the tenants",
			      id);
	PQclear(r);
	return rc;
}

/* ---- the reconciler ------------------------------------------------------------- */

/* The resync epoch in which this process last applied all five objects
 * of a tenant. */
struct applied {
	UT_hash_handle hh; /* in tenant_reconciler.applied, keyed by id */
	uint64_t epoch;
	char id[];
};

struct tenant_reconciler {
	struct kube_client *client;
	struct informer *namespaces, *quotas;
	struct controller *ctl;
	int64_t resync_ms;

	pthread_mutex_t db_lock; /* guards db */
	struct db *db;           /* the workers' connection */

	struct db *listen_db;    /* the listener thread's alone */
	pthread_t listener;
	int listening;           /* the listener thread runs (start/stop only) */
	atomic_int stopping;

	/* Each resync of the listener starts an epoch, in which every tenant
	 * gets one full apply, so that the uncached objects are restored
	 * within a resync period. */
	atomic_uint_fast64_t epoch;
	pthread_mutex_t applied_lock; /* guards applied */
	struct applied *applied;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether id was applied in full in the current epoch. */
static bool applied_recently(struct tenant_reconciler *t, const char *id)
{
	struct applied *a;
	pthread_mutex_lock(&t->applied_lock);
	HASH_FIND_STR(t->applied, id, a);
	bool fresh = a && a->epoch == atomic_load(&t->epoch);
	pthread_mutex_unlock(&t->applied_lock);
	return fresh;
}

/* Record a full apply of id. Out of memory only costs a later re-apply. */
static void applied_mark(struct tenant_reconciler *t, const char *id)
{
	struct applied *a;
	pthread_mutex_lock(&t->applied_lock);
	HASH_FIND_STR(t->applied, id, a);
	if (!a) {
		size_t len = strlen(id);
		a = calloc(1, sizeof(*a) + len + 1);
		if (a) {
			memcpy(a->id, id, len + 1);
			HASH_ADD_KEYPTR(hh, t->applied, a->id, len, a);
			if (!a->hh.tbl) {
				free(a);
				a = NULL;
			}
		}
	}
	if (a)
		a->epoch = atomic_load(&t->epoch);
	pthread_mutex_unlock(&t->applied_lock);
}

/* Forget id; whether it was known. */
static bool applied_forget(struct tenant_reconciler *t, const char *id)
{
	struct applied *a;
	pthread_mutex_lock(&t->applied_lock);
	HASH_FIND_STR(t->applied, id, a);
	bool known = a != NULL;
	if (a) {
		HASH_DEL(t->applied, a);
		free(a);
	}
	pthread_mutex_unlock(&t->applied_lock);
	return known;
}

static int apply(struct tenant_reconciler *t, struct jsonb *b, const char *path, struct kerr *e)
{
	const char *doc;
	size_t len;
	int rc = jsonb_result(b, &doc, &len, e);
	if (rc == 0)
		rc = kube_apply(t->client, path, doc, len, e);
	jsonb_reset(b);
	return rc;
}

static int apply_all(struct tenant_reconciler *t, const struct tenant *tn, const struct tenant_quota *q,
		     const char *ns, struct kerr *e)
{
	struct jsonb *b = jsonb_new();
	if (!b)
		return kerr_set(e, KERR_NOMEM, "out of memory building tenant %s's objects", tn->id);
	/* The namespace first: the others live in it. */
	static const struct {
		const char *api, *plural, *name; /* name NULL: the namespace's */
	} objs[] = {
		{"/api/v1", "namespaces", NULL},
		{"/api/v1", "resourcequotas", TENANT_QUOTA_NAME},
		{"/api/v1", "limitranges", TENANT_LIMITRANGE_NAME},
		{"/apis/networking.k8s.io/v1", "networkpolicies", TENANT_NETPOL_NAME},
		{"/apis/rbac.authorization.k8s.io/v1", "rolebindings", TENANT_ROLEBINDING_NAME},
	};
	char path[512];
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(objs) / sizeof(objs[0]); i++) {
		switch (i) {
		case 0: tenant_build_namespace(tn, b); break;
		case 1: tenant_build_quota(tn, b); break;
		case 2: tenant_build_limitrange(tn, q, b); break;
		case 3: tenant_build_networkpolicy(tn, b); break;
		default: tenant_build_rolebinding(tn, b); break;
		}
		rc = objs[i].name ? kube_object_path(path, sizeof(path), objs[i].api, objs[i].plural, ns, objs[i].name)
				  : kube_object_path(path, sizeof(path), objs[i].api, objs[i].plural, NULL, ns);
		if (rc < 0)
			kerr_set(e, rc, "tenant %s: object path too long", tn->id);
		else
			rc = apply(t, b, path, e);
	}
	jsonb_free(b);
	return rc;
}

/* The namespace as the apiserver has it now, for decisions the cache
 * could get wrong by lagging: *out NULL when it does not exist. */
static int namespace_live(struct tenant_reconciler *t, const char *ns, struct kobj **out, struct kerr *e)
{
	char path[256];
	struct kube_response r;
	*out = NULL;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
	struct kerr ge = {0};
	int rc = kube_client_request(t->client, "GET", path, NULL, NULL, 0, &r, &ge);
	if (rc == 0)
		rc = kind_decode_json(&kind_namespace, r.body, r.len, out, e);
	else if (rc == KERR_NOT_FOUND)
		rc = 0;
	else
		kerr_set(e, rc, "%s", ge.message);
	kube_response_free(&r);
	return rc;
}

static struct reconcile_result reconcile_active(struct tenant_reconciler *t, const struct tenant *tn, const char *ns,
						 struct kerr *e)
{
	struct tenant_quota q;
	struct kerr qe = {0};
	if (tenant_parse_quota(tn->cpu, tn->memory, tn->pods, &q, &qe) < 0) {
		/* The row changes only by a write, which notifies: no retry. */
		log_error("tenant", "cannot apply the tenant: its row is invalid; fix the row", "tenant", tn->id,
			  "error", qe.message, NULL);
		return reconcile_done();
	}
	struct kobj *nso = store_get(informer_store(t->namespaces), ns);
	char qkey[TENANT_NS_MAX + sizeof(TENANT_QUOTA_NAME) + 2];
	snprintf(qkey, sizeof(qkey), "%s/" TENANT_QUOTA_NAME, ns);
	struct kobj *qo = store_get(informer_store(t->quotas), qkey);
	struct reconcile_result res = reconcile_done();
	const char *what = NULL;
	if (nso && (nso->deleted || ((struct knamespace *)nso)->phase == KNS_TERMINATING)) {
		/* Someone deleted the namespace: nothing can be created in it
		 * until the namespace controller has emptied and removed it.
		 * Said once at info, then at debug on every check. */
		log_fields(applied_forget(t, tn->id) ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, "tenant",
			   "namespace is terminating; recreating it once it is gone", "tenant", tn->id, "namespace", ns,
			   NULL);
		res = reconcile_after(WAIT_MS);
		goto out;
	}
	if (!nso)
		what = "namespace missing";
	else if (tenant_namespace_drifted(tn, (const struct knamespace *)nso, &what))
		;
	else if (!qo)
		what = "quota missing";
	else if (tenant_quota_drifted(tn, &q, (const struct kresourcequota *)qo, &what))
		;
	else if (!applied_recently(t, tn->id))
		what = "first apply of this resync period";
	if (!what)
		goto out;
	if (apply_all(t, tn, &q, ns, e) < 0) {
		res = reconcile_error();
		goto out;
	}
	applied_mark(t, tn->id);
	log_info("tenant", "tenant applied", "tenant", tn->id, "namespace", ns, "reason", what, "cpu", tn->cpu,
		 "memory", tn->memory, NULL);
out:
	kobj_unref(qo);
	kobj_unref(nso);
	return res;
}

static int delete_row(struct tenant_reconciler *t, const char *id, struct kerr *e)
{
	const char *params[1] = {id};
	pthread_mutex_lock(&t->db_lock);
	int rc = db_exec_params(t->db, "DELETE FROM tenants WHERE id = $1 AND status = 'deleting'", 1, params, NULL, e);
	pthread_mutex_unlock(&t->db_lock);
	return rc;
}

static struct reconcile_result reconcile_deleting(struct tenant_reconciler *t, const struct tenant *tn,
						   const char *ns, bool valid, struct kerr *e)
{
	applied_forget(t, tn->id);
	struct kobj *nso = NULL;
	/* An invalid id never got a namespace, and nimbus-<reserved> may be
	 * somebody else's (nimbus-system is the operator's own). */
	if (valid) {
		nso = store_get(informer_store(t->namespaces), ns);
		if (!nso && namespace_live(t, ns, &nso, e) < 0)
			return reconcile_error();
	}
	if (nso && !label_is(nso, TENANT_LABEL, tn->id)) {
		log_warn("tenant", "namespace is not labelled as the tenant's; deleting the tenant but keeping it",
			 "tenant", tn->id, "namespace", ns, NULL);
		kobj_unref(nso);
		nso = NULL;
	}
	if (nso) {
		char path[256];
		int rc = 0;
		if (!nso->deleted) {
			snprintf(path, sizeof(path), "/api/v1/namespaces/%s", ns);
			rc = kube_delete(t->client, path, e);
			/* 409: the namespace started terminating since the cache saw it. */
			if (rc == KERR_CONFLICT) {
				kerr_clear(e);
				rc = 0;
			}
			if (rc == 0)
				log_info("tenant", "deleting the tenant's namespace", "tenant", tn->id, "namespace", ns,
					 NULL);
		}
		kobj_unref(nso);
		return rc < 0 ? reconcile_error() : reconcile_after(WAIT_MS);
	}
	if (delete_row(t, tn->id, e) < 0)
		return reconcile_error();
	log_info("tenant", "tenant deleted", "tenant", tn->id, "namespace", ns, NULL);
	return reconcile_done();
}

/* No row: see the contract on orphans. */
static void reconcile_absent(struct tenant_reconciler *t, const char *id, const char *ns)
{
	applied_forget(t, id);
	struct kobj *nso = store_get(informer_store(t->namespaces), ns);
	if (nso && !nso->deleted && label_is(nso, TENANT_LABEL, id) &&
	    label_is(nso, TENANT_MANAGED_BY_LABEL, TENANT_MANAGED_BY))
		log_warn("tenant",
			 "orphaned tenant namespace: no tenant row has this id; keeping it (delete it with kubectl "
			 "once checked, or create the tenant again)",
			 "tenant", id, "namespace", ns, NULL);
	kobj_unref(nso);
}

static struct reconcile_result tenant_reconcile(void *arg, const char *key, struct kerr *e)
{
	struct tenant_reconciler *t = arg;
	if (!informer_has_synced(t->namespaces) || !informer_has_synced(t->quotas))
		return reconcile_after(WAIT_MS);
	struct tenant *tn = NULL;
	pthread_mutex_lock(&t->db_lock);
	int rc = tenant_get(t->db, key, &tn, e);
	pthread_mutex_unlock(&t->db_lock);
	bool valid = tenant_validate_name(key, NULL) == 0;
	char ns[TENANT_NS_MAX];
	if (valid)
		tenant_namespace_name(key, ns, sizeof(ns));
	else
		snprintf(ns, sizeof(ns), "(none)");
	if (rc == KERR_NOT_FOUND) {
		kerr_clear(e);
		if (valid)
			reconcile_absent(t, key, ns);
		return reconcile_done();
	}
	if (rc < 0)
		return reconcile_error();
	struct reconcile_result res;
	if (tn->status == TENANT_DELETING) {
		res = reconcile_deleting(t, tn, ns, valid, e);
	} else if (!valid) {
		struct kerr ve = {0};
		tenant_validate_name(key, &ve);
		log_error("tenant", "tenant row has an invalid id; it gets no namespace: delete the row and create the "
			  "tenant with a valid name", "tenant", key, "error", ve.message, NULL);
		res = reconcile_done();
	} else {
		res = reconcile_active(t, tn, ns, e);
	}
	tenant_free(tn);
	return res;
}

/* ---- events ---------------------------------------------------------------------- */

static void enqueue_valid(struct tenant_reconciler *t, const char *id)
{
	if (id && tenant_validate_name(id, NULL) == 0)
		controller_enqueue(t->ctl, id);
}

/* The tenant a namespace (name) or its label names. */
static void enqueue_for_namespace(struct tenant_reconciler *t, const char *name, const char *label)
{
	size_t plen = strlen(TENANT_NS_PREFIX);
	if (strncmp(name, TENANT_NS_PREFIX, plen) == 0)
		enqueue_valid(t, name + plen);
	if (label && (strncmp(name, TENANT_NS_PREFIX, plen) != 0 || strcmp(label, name + plen) != 0))
		enqueue_valid(t, label);
}

static void ns_add(void *arg, struct kobj *o)
{
	enqueue_for_namespace(arg, o->name, kobj_label(o, TENANT_LABEL));
}

static void ns_update(void *arg, struct kobj *old, struct kobj *o)
{
	const char *was = kobj_label(old, TENANT_LABEL), *is = kobj_label(o, TENANT_LABEL);
	ns_add(arg, o);
	/* A label moved away from a tenant: that tenant must put it back. */
	if (was && (!is || strcmp(was, is) != 0))
		enqueue_valid(arg, was);
}

static void quota_event(struct tenant_reconciler *t, struct kobj *o)
{
	if (strcmp(o->name, TENANT_QUOTA_NAME) == 0)
		enqueue_for_namespace(t, o->ns, kobj_label(o, TENANT_LABEL));
}

static void quota_add(void *arg, struct kobj *o)
{
	quota_event(arg, o);
}

/* status.used changes with every pod in the namespace; only spec and
 * labels are the reconciler's business. */
static void quota_update(void *arg, struct kobj *old, struct kobj *o)
{
	const struct kresourcequota *a = (const struct kresourcequota *)old, *b = (const struct kresourcequota *)o;
	const char *la = kobj_label(old, TENANT_LABEL), *lb = kobj_label(o, TENANT_LABEL);
	if (a->hard.requests_cpu_milli != b->hard.requests_cpu_milli ||
	    a->hard.requests_memory != b->hard.requests_memory || a->hard.limits_cpu_milli != b->hard.limits_cpu_milli ||
	    a->hard.limits_memory != b->hard.limits_memory || a->hard.pods != b->hard.pods || !la != !lb ||
	    (la && strcmp(la, lb) != 0) || old->deleted != o->deleted)
		quota_event(arg, o);
}

/* ---- the listener ------------------------------------------------------------------- */

/* Start an epoch and enqueue every tenant in the table. */
static int resync(struct tenant_reconciler *t, struct kerr *e)
{
	PGresult *r;
	int rc = db_exec_params(t->listen_db, "SELECT id FROM tenants", 0, NULL, &r, e);
	if (rc < 0)
		return rc;
	atomic_fetch_add(&t->epoch, 1);
	int n = PQntuples(r);
	for (int i = 0; i < n; i++)
		controller_enqueue(t->ctl, PQgetvalue(r, i, 0));
	PQclear(r);
	char count[16];
	snprintf(count, sizeof(count), "%d", n);
	log_debug("tenant", "resynced every tenant", "tenants", count, NULL);
	return 0;
}

/* The schema, before the first resync: when the database was away at
 * start, main could not apply it (db_migrate serialises the replicas and
 * the other users, so applying it twice is harmless). */
static int migrate(struct tenant_reconciler *t, struct kerr *e)
{
	size_t n;
	const struct db_migration *m = db_migrations(&n);
	return db_migrate(t->listen_db, m, n, NULL, e);
}

static void *listen_main(void *arg)
{
	struct tenant_reconciler *t = arg;
	uint64_t synced_gen = 0;
	int64_t next_resync = 0;
	bool need_resync = true, failing = false, migrated = false;
	while (!atomic_load(&t->stopping)) {
		struct kerr e = {0};
		int rc = 0;
		/* A new connection may have missed notifications: read the
		 * table first. The SELECT itself reconnects a lost connection,
		 * which LISTENs again before the SELECT runs. */
		if (!migrated && (rc = migrate(t, &e)) == 0)
			migrated = true;
		if (rc == 0 && (need_resync || db_generation(t->listen_db) != synced_gen || now_ms() >= next_resync)) {
			rc = resync(t, &e);
			if (rc == 0) {
				need_resync = false;
				synced_gen = db_generation(t->listen_db);
				next_resync = now_ms() + t->resync_ms;
			}
		}
		/* While the database is down this waits out the reconnect
		 * backoff (up to the poll time), so the loop does not spin. */
		PGnotify *n = NULL;
		int wrc = db_wait_notify(t->listen_db, LISTEN_POLL_MS, &n, rc == 0 ? &e : NULL);
		if (n) {
			if (n->extra && *n->extra)
				controller_enqueue(t->ctl, n->extra);
			PQfreemem(n);
		}
		if (wrc < 0) {
			need_resync = true;
			if (rc == 0)
				rc = wrc;
		}
		/* One line per outage, not one per poll. */
		if (rc < 0 && !failing)
			log_warn("tenant", "tenant notifications interrupted; retrying with backoff", "error",
				 e.message[0] ? e.message : kerr_strerror(rc), NULL);
		else if (rc == 0 && failing)
			log_info("tenant", "tenant notifications restored; every tenant resynced", NULL);
		failing = rc < 0;
	}
	return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

int tenant_reconciler_new(struct tenant_reconciler **out, const struct tenant_reconciler_options *o,
			  struct kerr *e)
{
	*out = NULL;
	struct tenant_reconciler *t = calloc(1, sizeof(*t));
	if (!t)
		return kerr_set(e, KERR_NOMEM, "tenant reconciler: out of memory");
	t->client = o->client;
	t->namespaces = o->namespaces;
	t->quotas = o->quotas;
	t->resync_ms = o->resync_ms > 0 ? o->resync_ms : TENANT_DEFAULT_RESYNC_MS;
	if (pthread_mutex_init(&t->db_lock, NULL) != 0) {
		free(t);
		return kerr_set(e, KERR_NOMEM, "tenant reconciler: cannot create a mutex");
	}
	if (pthread_mutex_init(&t->applied_lock, NULL) != 0) {
		pthread_mutex_destroy(&t->db_lock);
		free(t);
		return kerr_set(e, KERR_NOMEM, "tenant reconciler: cannot create a mutex");
	}
	struct controller_options co = {
		.name = "tenant",
		.workers = o->workers,
		.reconcile = tenant_reconcile,
		.arg = t,
		.metrics = o->metrics,
	};
	/* A database that is away at start must not stop the operator: the
	 * handles connect when it is back, and the listener then migrates and
	 * resyncs every tenant. */
	struct db_options dbo = *o->db;
	dbo.defer_connect = true;
	int rc = controller_new(&t->ctl, &co, e);
	if (rc == 0)
		rc = db_open(&dbo, &t->db, e);
	if (rc == 0)
		rc = db_open(&dbo, &t->listen_db, e);
	if (rc == 0)
		rc = db_listen(t->listen_db, TENANT_CHANNEL, e);
	struct informer_handlers nh = {ns_add, ns_update, ns_add, t}, qh = {quota_add, quota_update, quota_add, t};
	if (rc == 0 && (informer_add_handlers(t->namespaces, &nh) < 0 || informer_add_handlers(t->quotas, &qh) < 0))
		rc = kerr_set(e, KERR_INVAL, "tenant reconciler: cannot add informer handlers; create the reconciler "
					    "before starting the informers");
	if (rc < 0) {
		tenant_reconciler_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int tenant_reconciler_start(struct tenant_reconciler *t, struct kerr *e)
{
	int rc = controller_start(t->ctl, e);
	if (rc < 0)
		return rc;
	atomic_store(&t->stopping, 0);
	if (pthread_create(&t->listener, NULL, listen_main, t) != 0) {
		controller_stop(t->ctl);
		return kerr_set(e, KERR_NOMEM, "tenant reconciler: cannot start the listener thread");
	}
	t->listening = 1;
	return 0;
}

void tenant_reconciler_stop(struct tenant_reconciler *t)
{
	if (!t)
		return;
	if (t->listening) {
		atomic_store(&t->stopping, 1);
		pthread_join(t->listener, NULL);
		t->listening = 0;
	}
	controller_stop(t->ctl);
}

void tenant_reconciler_free(struct tenant_reconciler *t)
{
	if (!t)
		return;
	tenant_reconciler_stop(t);
	controller_free(t->ctl);
	db_close(t->listen_db);
	db_close(t->db);
	struct applied *a, *tmp;
	HASH_ITER(hh, t->applied, a, tmp) {
		HASH_DEL(t->applied, a);
		free(a);
	}
	pthread_mutex_destroy(&t->applied_lock);
	pthread_mutex_destroy(&t->db_lock);
	free(t);
}
