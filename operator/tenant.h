/*
 * tenant: tenants in PostgreSQL, and the reconciler that gives each one its
 * namespace in the cluster.
 *
 * Contract
 * - A tenant is a row of table tenants (migration 0001). Its id is its
 *   name (the seed API uses the name as the id), so a tenant is created
 *   with tenant_create(), which validates both (see below) and inserts the
 *   row; the table's trigger announces the id on channel nimbus_tenants,
 *   and the reconciler does the rest. Rows written any other way are
 *   reconciled too, but a row whose id is not a valid tenant name gets no
 *   namespace (an error is logged) and, once marked deleting, is deleted
 *   without touching the cluster.
 * - Names: a DNS-1123 label (lowercase letters, digits and '-', starting
 *   and ending with a letter or digit) of at most TENANT_NAME_MAX
 *   characters, so that "nimbus-" + name is a valid namespace name, and not
 *   reserved. Reserved: "system" (nimbus-system is the operator's own
 *   namespace), "admin" (the API's administrator scope), "default" and
 *   "nimbus" (read as Nimbus' own, not a customer's), and every name
 *   starting with "kube-" (Kubernetes' prefix for its own namespaces).
 * - Quotas: cpu and memory are Kubernetes quantities greater than zero
 *   ("500m", "2", "512Mi", "4Gi"), kept in the row and the ResourceQuota
 *   exactly as given; pods is 0 to TENANT_PODS_MAX. A row's NULL quota
 *   reads as its default: cpu TENANT_DEFAULT_CPU, memory
 *   TENANT_DEFAULT_MEMORY, pods TENANT_DEFAULT_PODS (the seed's POST
 *   /tenants gives cpu and memory but never pods).
 * - In the cluster an active tenant has, all applied with server-side
 *   apply (kube_apply):
 *     Namespace nimbus-<id>, labelled nimbus.io/tenant=<id>,
 *       app.kubernetes.io/managed-by=nimbus and
 *       pod-security.kubernetes.io/enforce=baseline;
 *     ResourceQuota nimbus-quota: hard requests.cpu = limits.cpu = cpu,
 *       requests.memory = limits.memory = memory, pods;
 *     LimitRange nimbus-defaults: each container without its own values
 *       gets requests 100m / 128Mi and limits 500m / 512Mi, each capped
 *       by the quota, so that such pods are admitted and counted against
 *       the quota (the quota names limits, and the apiserver refuses pods
 *       that do not state what a quota counts);
 *     NetworkPolicy nimbus-default-deny: ingress only from pods of the
 *       same namespace;
 *     RoleBinding nimbus-tenant: ClusterRole edit for Group
 *       nimbus:tenant:<id> (the operator needs the edit permissions itself,
 *       or the bind verb on that ClusterRole, to create it).
 *   All carry the tenant and managed-by labels.
 * - Reconcile (key: the tenant id), level-triggered and idempotent:
 *   - row active: when the cached Namespace or ResourceQuota is missing or
 *     differs from the row, or the tenant has not been applied in full
 *     since the listener's last resync (see Events), apply all five
 *     objects; otherwise write nothing. LimitRange, NetworkPolicy and
 *     RoleBinding are not cached, so an edit of one of them is undone at
 *     the next resync, within a resync period (TENANT_DEFAULT_RESYNC_MS).
 *     A terminating namespace is waited for (requeue after 1 s) and then
 *     created again.
 *   - row deleting: delete the namespace (the namespace controller deletes
 *     everything in it), requeue every second until it is gone (checked
 *     with a GET, not only the cache), then delete the row. A crash midway
 *     resumes at start, since the row still says deleting.
 *   - no row: nothing. A namespace still labelled for that tenant and
 *     managed by Nimbus is an orphan (the row was deleted by hand): it is
 *     logged as a warning and kept, because deleting orphans would delete
 *     every tenant's workloads the day the operator is pointed at an empty
 *     or wrong database. Delete it with kubectl once checked.
 * - Events: the table's NOTIFY on channel nimbus_tenants, read by a
 *   listener thread on its own connection; on every (re)connection, and
 *   every resync period, it resyncs: enqueues every tenant id in the
 *   table, so that nothing announced while disconnected is missed, and
 *   starts a new period in which each tenant gets one full apply. And the
 *   Namespace and ResourceQuota informers: a Namespace labelled
 *   nimbus.io/tenant=<id> or named nimbus-<id>, and the ResourceQuota
 *   nimbus-quota in such a namespace, enqueue <id>, so that a deleted or
 *   edited namespace or quota is repaired at once. (Quota status updates,
 *   which every pod start causes, are ignored.)
 * - Database handles: libpq connections are single-threaded. The
 *   reconciler opens two: one for the listener thread alone, and one that
 *   the workers share under a mutex, held only for a single primary-key
 *   SELECT or DELETE (well under a millisecond on a local database), never
 *   while talking to the apiserver. Tenants change rarely; one connection
 *   is plenty and keeps the operator's footprint on the database small.
 *   The db module reconnects both (with backoff) after the database
 *   restarts.
 * - The tenant_* database functions take the caller's handle and use it
 *   on the calling thread; SQL reaches the server only with parameters.
 *   Errors are 0 or a negative KERR_* with a message for people: KERR_INVAL
 *   for a bad name or quota, KERR_ALREADY_EXISTS, KERR_NOT_FOUND, KERR_DB.
 */
#ifndef NIMBUS_TENANT_H
#define NIMBUS_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller.h"
#include "db.h"
#include "informer.h"
#include "jsonb.h"
#include "kerr.h"
#include "kinds.h"
#include "kube_client.h"

#define TENANT_LABEL "nimbus.io/tenant"
#define TENANT_MANAGED_BY_LABEL "app.kubernetes.io/managed-by"
#define TENANT_MANAGED_BY "nimbus"
#define TENANT_NS_PREFIX "nimbus-"
#define TENANT_QUOTA_NAME "nimbus-quota"
#define TENANT_LIMITRANGE_NAME "nimbus-defaults"
#define TENANT_NETPOL_NAME "nimbus-default-deny"
#define TENANT_ROLEBINDING_NAME "nimbus-tenant"
/* The tenant's users: a group the API's authentication maps them to. */
#define TENANT_GROUP_PREFIX "nimbus:tenant:"
#define TENANT_CHANNEL "nimbus_tenants"

/* 63 (a namespace name) minus strlen("nimbus-"). */
#define TENANT_NAME_MAX 56
/* Room for "nimbus-" + a name + NUL. */
#define TENANT_NS_MAX 64

#define TENANT_DEFAULT_CPU "2"
#define TENANT_DEFAULT_MEMORY "4Gi"
#define TENANT_DEFAULT_PODS 20
/* The pods_quota column is an integer. */
#define TENANT_PODS_MAX INT32_MAX
/* How often every tenant is applied in full even without a change: 10 min.
 * Bounds how long an edit of an uncached object (LimitRange,
 * NetworkPolicy, RoleBinding) lasts, at 5 requests per tenant per period. */
#define TENANT_DEFAULT_RESYNC_MS (10 * 60 * 1000)

enum tenant_status { TENANT_ACTIVE, TENANT_DELETING };

/* "active" or "deleting". */
const char *tenant_status_name(enum tenant_status s);

/* One tenant row. From tenant_get/tenant_list/tenant_create it is one
 * allocation owned by the caller (tenant_free); tests may build one by
 * hand with string literals. Strings are never NULL. */
struct tenant {
	const char *id;
	const char *name;
	const char *cpu;        /* cpu_quota as written; TENANT_DEFAULT_CPU when NULL */
	const char *memory;     /* memory_quota as written; TENANT_DEFAULT_MEMORY when NULL */
	int64_t pods;           /* pods_quota; TENANT_DEFAULT_PODS when NULL */
	enum tenant_status status;
	const char *created_at; /* RFC 3339 UTC, seconds: "2026-11-25T14:00:00Z" */
	const char *updated_at; /* the same, or "" when never updated */
};

/* A tenant's quota as numbers. */
struct tenant_quota {
	int64_t cpu_milli; /* milli-cores */
	int64_t memory;    /* bytes */
	int64_t pods;
};

/* ---- validation (pure) ---------------------------------------------------- */

/* 0 if name can be a tenant (see the contract), else KERR_INVAL with a
 * message quoting it and saying what is accepted. */
int tenant_validate_name(const char *name, struct kerr *e);
/* Parse and check a quota (NULL cpu or memory: the default; pods < 0: the
 * default) into *out. KERR_INVAL with a message naming the value. */
int tenant_parse_quota(const char *cpu, const char *memory, int64_t pods, struct tenant_quota *out, struct kerr *e);

/* ---- desired objects (pure) ------------------------------------------------ */

/* "nimbus-<id>" into buf; KERR_TOO_LARGE if it does not fit. */
int tenant_namespace_name(const char *id, char *buf, size_t cap);
/* The apply documents of the five objects, appended to b (check with
 * jsonb_result). q is t's quota as tenant_parse_quota gives it. */
void tenant_build_namespace(const struct tenant *t, struct jsonb *b);
void tenant_build_quota(const struct tenant *t, struct jsonb *b);
void tenant_build_limitrange(const struct tenant *t, const struct tenant_quota *q, struct jsonb *b);
void tenant_build_networkpolicy(const struct tenant *t, struct jsonb *b);
void tenant_build_rolebinding(const struct tenant *t, struct jsonb *b);
/* True when the cached namespace lacks a label Nimbus sets or is
 * terminating; *what names the first difference. */
bool tenant_namespace_drifted(const struct tenant *t, const struct knamespace *ns, const char **what);
/* True when the cached quota's hard values differ from q (compared as
 * numbers, so "2" and "2000m" are equal) or it lacks the tenant label. */
bool tenant_quota_drifted(const struct tenant *t, const struct tenant_quota *q, const struct kresourcequota *rq,
			  const char **what);

/* ---- the database ----------------------------------------------------------- */

/*
 * Insert tenant name (id = name) with the given quota (NULL cpu or memory,
 * pods < 0: the defaults), after validating both. *out (out may be NULL)
 * gets the new row, owned by the caller. KERR_INVAL, KERR_ALREADY_EXISTS
 * (also while a tenant of that name is still being deleted; the message
 * says which), KERR_DB.
 */
int tenant_create(struct db *db, const char *name, const char *cpu, const char *memory, int64_t pods,
		  struct tenant **out, struct kerr *e);
/* Set status deleting (idempotent): the reconciler then deletes the
 * namespace and the row. KERR_NOT_FOUND if there is no such tenant. */
int tenant_mark_deleted(struct db *db, const char *id, struct kerr *e);
/* The row of id into *out (caller frees with tenant_free); KERR_NOT_FOUND
 * when absent. */
int tenant_get(struct db *db, const char *id, struct tenant **out, struct kerr *e);
/* Every row, ordered by id: *out is a malloc'd array of *n tenants (NULL
 * when *n == 0); free it with tenant_list_free. */
int tenant_list(struct db *db, struct tenant ***out, size_t *n, struct kerr *e);
void tenant_free(struct tenant *t);
/* Free the n tenants of an array from tenant_list and the array. NULL-safe. */
void tenant_list_free(struct tenant **ts, size_t n);

/* ---- the reconciler ---------------------------------------------------------- */

struct tenant_reconciler_options {
	struct kube_client *client;          /* borrowed; must outlive the reconciler */
	struct informer *namespaces;         /* kind_namespace; borrowed, not yet started */
	struct informer *quotas;             /* kind_resourcequota; borrowed, not yet started */
	const struct db_options *db;         /* for the two connections; used during tenant_reconciler_new only */
	int workers;                         /* reconcile workers; 0 = 2 */
	const struct controller_metrics *metrics; /* may be NULL; must outlive the reconciler */
	int64_t resync_ms;                   /* 0 = TENANT_DEFAULT_RESYNC_MS */
};

struct tenant_reconciler;

/*
 * Create the reconciler: its controller ("tenant"), its two database
 * connections (the listener's LISTENs on nimbus_tenants), and its
 * handlers on both informers, which must not be started yet. A database
 * that cannot be reached now is not an error: the connections are made
 * when it is back (with the db module's backoff), and the listener then
 * applies the migrations and resyncs every tenant. The caller owns *out
 * (tenant_reconciler_free). On failure, free the informers without
 * starting them: one may already hold a handler pointing to the freed
 * reconciler.
 */
int tenant_reconciler_new(struct tenant_reconciler **out, const struct tenant_reconciler_options *o,
			  struct kerr *e);
/* Start the workers and the listener thread. Call once, after both
 * informers have synced, so that a reconcile does not take an empty cache
 * for missing objects. */
int tenant_reconciler_start(struct tenant_reconciler *t, struct kerr *e);
/* Stop the listener (within half a second), then the workers, letting
 * in-flight reconciles finish. Idempotent. Stop the informers afterwards:
 * their handlers enqueue into the stopped controller harmlessly. */
void tenant_reconciler_stop(struct tenant_reconciler *t);
/* Stop if needed and free everything. NULL-safe. Only after both
 * informers are stopped: their handlers point to the reconciler. */
void tenant_reconciler_free(struct tenant_reconciler *t);

#endif
