#include "workload.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kube_write.h"
#include "log.h"
#include "quantity.h"

#define TENANT_NS_PREFIX "nimbus-"

static int64_t desired_replicas(const struct kcomputerequest *cr)
{
	return cr->replicas >= 0 ? cr->replicas : 1;
}

static const char *scheduler_of(const struct kcomputerequest *cr)
{
	return cr->scheduler_name[0] ? cr->scheduler_name : WORKLOAD_DEFAULT_SCHEDULER;
}

void workload_deployment_name(const char *cr_name, char *buf, size_t cap)
{
	snprintf(buf, cap, "nimbus-%s", cr_name);
}

/* ---- checks ------------------------------------------------------------- */

static void problem(struct workload_problem *p, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct workload_problem *p, const char *reason, const char *fmt, ...)
{
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
}

/* Quota headroom check: a request that could never fit is refused up front
 * with the numbers, rather than left to fail pod by pod in the ReplicaSet. */
static void check_quota(const struct kcomputerequest *cr, const struct kresourcequota *q, struct workload_problem *p)
{
	int64_t n = desired_replicas(cr);
	char need[QUANTITY_FMT_MAX], have[QUANTITY_FMT_MAX];
	if (q->hard.requests_cpu_milli >= 0 && cr->cpu.value > 0 && n * cr->cpu.value > q->hard.requests_cpu_milli) {
		quantity_format_cpu_milli(n * cr->cpu.value, need, sizeof(need));
		quantity_format_cpu_milli(q->hard.requests_cpu_milli, have, sizeof(have));
		problem(p, "QuotaExceeded",
			"%" PRId64 " replicas of cpu %s need %s CPU but tenant %s's quota (%s) allows %s; "
			"lower spec.replicas or spec.cpu, or raise the tenant's cpu_quota",
			n, cr->cpu.raw, need, cr->tenant_id, q->meta.name, have);
	} else if (q->hard.requests_memory >= 0 && cr->memory.value > 0 &&
		   n * cr->memory.value > q->hard.requests_memory) {
		quantity_format_bytes(n * cr->memory.value, need, sizeof(need));
		quantity_format_bytes(q->hard.requests_memory, have, sizeof(have));
		problem(p, "QuotaExceeded",
			"%" PRId64 " replicas of memory %s need %s but tenant %s's quota (%s) allows %s; "
			"lower spec.replicas or spec.memory, or raise the tenant's memory_quota",
			n, cr->memory.raw, need, cr->tenant_id, q->meta.name, have);
	} else if (q->hard.pods >= 0 && n > q->hard.pods) {
		problem(p, "QuotaExceeded",
			"%" PRId64 " replicas exceed tenant %s's pod quota of %" PRId64 "; lower spec.replicas",
			n, cr->tenant_id, q->hard.pods);
	}
}

void workload_check(const struct kcomputerequest *cr, const struct knamespace *ns,
		    const struct kresourcequota *const *quotas, size_t nquotas, struct workload_problem *out)
{
	memset(out, 0, sizeof(*out));
	if (cr->validation_error[0]) {
		problem(out, "InvalidSpec", "%s; fix the ComputeRequest's spec", cr->validation_error);
		return;
	}
	if (!cr->tenant_id[0]) {
		problem(out, "InvalidSpec", "spec.tenantId is empty; set it to the tenant that owns this workload");
		return;
	}
	char want_ns[320];
	snprintf(want_ns, sizeof(want_ns), TENANT_NS_PREFIX "%s", cr->tenant_id);
	if (strcmp(cr->meta.ns, want_ns) != 0) {
		problem(out, "WrongNamespace",
			"a ComputeRequest of tenant %s must live in namespace %s, not %s; recreate it there",
			cr->tenant_id, want_ns, cr->meta.ns);
		return;
	}
	const char *owner = ns ? kobj_label(&ns->meta, WORKLOAD_TENANT_LABEL) : NULL;
	if (!ns || !owner || strcmp(owner, cr->tenant_id) != 0 || ns->phase == KNS_TERMINATING) {
		problem(out, "TenantNotFound",
			"tenant %s does not exist (no active namespace %s labelled %s=%s); create the tenant "
			"(POST /tenants or nimbus-operator tenant create %s) and this request will start",
			cr->tenant_id, want_ns, WORKLOAD_TENANT_LABEL, cr->tenant_id, cr->tenant_id);
		return;
	}
	for (size_t i = 0; i < nquotas && !out->reason[0]; i++)
		check_quota(cr, quotas[i], out);
}

/* ---- the Deployment ----------------------------------------------------- */

static void labels(struct jsonb *b, const struct kcomputerequest *cr)
{
	jsonb_obj(b);
	jsonb_kstr(b, "app.kubernetes.io/managed-by", "nimbus");
	jsonb_kstr(b, WORKLOAD_CR_LABEL, cr->meta.name);
	jsonb_kstr(b, WORKLOAD_TENANT_LABEL, cr->tenant_id);
	jsonb_obj_end(b);
}

static void resources(struct jsonb *b, const struct kcomputerequest *cr)
{
	jsonb_obj(b);
	jsonb_kstr(b, "cpu", cr->cpu.raw);
	jsonb_kstr(b, "memory", cr->memory.raw);
	jsonb_obj_end(b);
}

void workload_build_deployment(const struct kcomputerequest *cr, struct jsonb *b)
{
	char name[300];
	workload_deployment_name(cr->meta.name, name, sizeof(name));
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", "apps/v1");
	jsonb_kstr(b, "kind", "Deployment");
	jsonb_key(b, "metadata");
	jsonb_obj(b);
	jsonb_kstr(b, "name", name);
	jsonb_kstr(b, "namespace", cr->meta.ns);
	jsonb_key(b, "labels");
	labels(b, cr);
	jsonb_key(b, "ownerReferences");
	jsonb_arr(b);
	jsonb_obj(b);
	jsonb_kstr(b, "apiVersion", "nimbus.io/v1");
	jsonb_kstr(b, "kind", "ComputeRequest");
	jsonb_kstr(b, "name", cr->meta.name);
	jsonb_kstr(b, "uid", cr->meta.uid);
	jsonb_kbool(b, "controller", 1);
	jsonb_kbool(b, "blockOwnerDeletion", 1);
	jsonb_obj_end(b);
	jsonb_arr_end(b);
	jsonb_obj_end(b);

	jsonb_key(b, "spec");
	jsonb_obj(b);
	jsonb_kint(b, "replicas", desired_replicas(cr));
	jsonb_key(b, "selector");
	jsonb_obj(b);
	jsonb_key(b, "matchLabels");
	jsonb_obj(b);
	jsonb_kstr(b, WORKLOAD_CR_LABEL, cr->meta.name);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	jsonb_key(b, "template");
	jsonb_obj(b);
	jsonb_key(b, "metadata");
	jsonb_obj(b);
	jsonb_key(b, "labels");
	labels(b, cr);
	if (cr->npod_annotations) {
		jsonb_key(b, "annotations");
		jsonb_obj(b);
		for (size_t i = 0; i < cr->npod_annotations; i++)
			jsonb_kstr(b, cr->pod_annotations[i].key, cr->pod_annotations[i].value);
		jsonb_obj_end(b);
	}
	jsonb_obj_end(b);
	jsonb_key(b, "spec");
	jsonb_obj(b);
	jsonb_kstr(b, "schedulerName", scheduler_of(cr));
	jsonb_key(b, "containers");
	jsonb_arr(b);
	jsonb_obj(b);
	jsonb_kstr(b, "name", "workload");
	jsonb_kstr(b, "image", cr->image);
	jsonb_key(b, "resources");
	jsonb_obj(b);
	/* Requests equal limits: the tenant pays for what it reserves, and the
	 * pods get the Guaranteed QoS class. */
	jsonb_key(b, "requests");
	resources(b, cr);
	jsonb_key(b, "limits");
	resources(b, cr);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
}

static bool label_is(const struct kobj_label *ls, size_t n, const char *key, const char *value)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ls[i].key, key) == 0)
			return strcmp(ls[i].value, value) == 0;
	return false;
}

bool workload_deployment_drifted(const struct kcomputerequest *cr, const struct kdeployment *d, const char **what)
{
	const struct kobj_owner *owner = kobj_controller(&d->meta);
	if (!owner || strcmp(owner->uid, cr->meta.uid) != 0)
		return *what = "owner", true;
	if (d->replicas != desired_replicas(cr))
		return *what = "replicas", true;
	if (strcmp(d->container_image, cr->image) != 0)
		return *what = "image", true;
	if (d->cpu_request.value != cr->cpu.value || d->cpu_limit.value != cr->cpu.value)
		return *what = "cpu", true;
	if (d->memory_request.value != cr->memory.value || d->memory_limit.value != cr->memory.value)
		return *what = "memory", true;
	if (strcmp(d->scheduler_name, scheduler_of(cr)) != 0)
		return *what = "schedulerName", true;
	if (!label_is(d->template_labels, d->ntemplate_labels, WORKLOAD_CR_LABEL, cr->meta.name) ||
	    !label_is(d->template_labels, d->ntemplate_labels, WORKLOAD_TENANT_LABEL, cr->tenant_id))
		return *what = "pod labels", true;
	for (size_t i = 0; i < cr->npod_annotations; i++)
		if (!label_is(d->template_annotations, d->ntemplate_annotations, cr->pod_annotations[i].key,
			      cr->pod_annotations[i].value))
			return *what = "pod annotations", true;
	return false;
}

/* ---- status ------------------------------------------------------------- */

bool workload_deployment_unobserved(const struct kdeployment *d, int64_t now)
{
	/* Both clocks, ours and the apiserver's, must agree on "just now":
	 * under skew the status is written at once, as it would be anyway. */
	int64_t age = now - d->meta.created;
	return d->observed_generation < d->meta.generation && age >= -WORKLOAD_UNOBSERVED_WINDOW_S &&
	       age <= WORKLOAD_UNOBSERVED_WINDOW_S;
}

static const struct kcondition *find_condition(const struct kcondition *cs, size_t n, const char *type)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cs[i].type, type) == 0)
			return &cs[i];
	return NULL;
}

static void set_condition(struct workload_status *st, int i, const struct kcomputerequest *cr, const char *type,
			  uint8_t status, const char *reason, const char *message, const char *now)
{
	st->conditions[i].type = type;
	st->conditions[i].status = status;
	snprintf(st->conditions[i].reason, sizeof(st->conditions[i].reason), "%s", reason);
	snprintf(st->conditions[i].message, sizeof(st->conditions[i].message), "%s", message);
	const struct kcondition *old = find_condition(cr->conditions, cr->nconditions, type);
	const char *since = old && old->status == status && old->last_transition[0] ? old->last_transition : now;
	snprintf(st->conditions[i].last_transition, sizeof(st->conditions[i].last_transition), "%s", since);
}

void workload_compute_status(const struct kcomputerequest *cr, const struct kdeployment *d,
			     const struct workload_problem *p, const char *now, struct workload_status *st)
{
	memset(st, 0, sizeof(*st));
	st->observed_generation = cr->meta.generation;
	snprintf(st->selector, sizeof(st->selector), WORKLOAD_CR_LABEL "=%s", cr->meta.name);
	workload_deployment_name(cr->meta.name, st->deployment, sizeof(st->deployment));
	int64_t want = desired_replicas(cr);
	if (d) {
		st->replicas = d->status_replicas;
		st->ready_replicas = d->ready_replicas;
	}
	/* A ReplicaSet that cannot create pods (quota, admission) says so in
	 * the Deployment's ReplicaFailure condition; that is a Degraded cause. */
	const struct kcondition *failure = d ? find_condition(d->conditions, d->nconditions, "ReplicaFailure") : NULL;
	char msg[512];
	if (p->reason[0]) {
		st->phase = "Degraded";
		set_condition(st, 0, cr, "Ready", KCOND_FALSE, p->reason, p->message, now);
		set_condition(st, 1, cr, "Progressing", KCOND_FALSE, p->reason, "blocked until the problem is fixed", now);
		set_condition(st, 2, cr, "Degraded", KCOND_TRUE, p->reason, p->message, now);
		return;
	}
	if (failure && failure->status == KCOND_TRUE) {
		st->phase = "Degraded";
		snprintf(msg, sizeof(msg), "pods cannot be created: %s", failure->message);
		set_condition(st, 0, cr, "Ready", st->ready_replicas >= want ? KCOND_TRUE : KCOND_FALSE,
			      failure->reason, msg, now);
		set_condition(st, 1, cr, "Progressing", KCOND_FALSE, failure->reason, msg, now);
		set_condition(st, 2, cr, "Degraded", KCOND_TRUE, failure->reason, msg, now);
		return;
	}
	bool rolled_out = d && d->observed_generation >= d->meta.generation && d->updated_replicas >= want &&
			  d->status_replicas == want;
	if (d && st->ready_replicas >= want && rolled_out) {
		st->phase = "Running";
		snprintf(msg, sizeof(msg), "%" PRId64 " of %" PRId64 " replicas ready", st->ready_replicas, want);
		set_condition(st, 0, cr, "Ready", KCOND_TRUE, "AllReplicasReady", msg, now);
		set_condition(st, 1, cr, "Progressing", KCOND_FALSE, "RolloutComplete", "the Deployment is rolled out", now);
	} else {
		st->phase = d ? "Progressing" : "Pending";
		snprintf(msg, sizeof(msg), "%" PRId64 " of %" PRId64 " replicas ready", st->ready_replicas, want);
		set_condition(st, 0, cr, "Ready", KCOND_FALSE, d ? "ReplicasNotReady" : "DeploymentPending", msg, now);
		set_condition(st, 1, cr, "Progressing", KCOND_TRUE, d ? "RollingOut" : "DeploymentPending",
			      d ? "waiting for the Deployment's pods" : "creating the Deployment", now);
	}
	set_condition(st, 2, cr, "Degraded", KCOND_FALSE, "AsExpected", "", now);
}

bool workload_status_current(const struct kcomputerequest *cr, const struct workload_status *st)
{
	if (cr->observed_generation != st->observed_generation || cr->status_replicas != st->replicas ||
	    cr->ready_replicas != st->ready_replicas || strcmp(cr->phase, st->phase) != 0 ||
	    cr->nconditions != WORKLOAD_NCONDITIONS)
		return false;
	for (int i = 0; i < WORKLOAD_NCONDITIONS; i++) {
		const struct kcondition *c = find_condition(cr->conditions, cr->nconditions, st->conditions[i].type);
		if (!c || c->status != st->conditions[i].status || strcmp(c->reason, st->conditions[i].reason) != 0 ||
		    strcmp(c->message, st->conditions[i].message) != 0)
			return false;
	}
	return true;
}

static const char *cond_word(uint8_t s)
{
	return s == KCOND_TRUE ? "True" : s == KCOND_FALSE ? "False" : "Unknown";
}

void workload_build_status(const struct workload_status *st, struct jsonb *b)
{
	jsonb_obj(b);
	jsonb_key(b, "status");
	jsonb_obj(b);
	jsonb_kint(b, "observedGeneration", st->observed_generation);
	jsonb_kint(b, "replicas", st->replicas);
	jsonb_kint(b, "readyReplicas", st->ready_replicas);
	jsonb_kstr(b, "selector", st->selector);
	jsonb_kstr(b, "phase", st->phase);
	jsonb_kstr(b, "deployment", st->deployment);
	jsonb_key(b, "conditions");
	jsonb_arr(b);
	for (int i = 0; i < WORKLOAD_NCONDITIONS; i++) {
		jsonb_obj(b);
		jsonb_kstr(b, "type", st->conditions[i].type);
		jsonb_kstr(b, "status", cond_word(st->conditions[i].status));
		jsonb_kint(b, "observedGeneration", st->observed_generation);
		jsonb_kstr(b, "lastTransitionTime", st->conditions[i].last_transition);
		jsonb_kstr(b, "reason", st->conditions[i].reason);
		jsonb_kstr(b, "message", st->conditions[i].message);
		jsonb_obj_end(b);
	}
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
}

/* ---- the reconciler ----------------------------------------------------- */

static int write_doc(struct jsonb *b, int (*send)(struct kube_client *, const char *, const char *, size_t, struct kerr *),
		     struct kube_client *c, const char *path, struct kerr *e)
{
	const char *doc;
	size_t len;
	int rc = jsonb_result(b, &doc, &len, e);
	return rc < 0 ? rc : send(c, path, doc, len, e);
}

static void event(struct workload_deps *d, struct kcomputerequest *cr, enum kube_event_type type, const char *reason,
		  const char *message)
{
	event_recorder_record(d->events, &cr->meta, type, reason, message);
}

struct reconcile_result workload_reconcile(void *arg, const char *key, struct kerr *e)
{
	struct workload_deps *d = arg;
	struct kcomputerequest *cr = (struct kcomputerequest *)store_get(informer_store(d->computerequests), key);
	if (!cr || cr->meta.deleted) {
		/* Gone or going: the garbage collector removes the Deployment. */
		kobj_unref(cr ? &cr->meta : NULL);
		return reconcile_done();
	}
	struct reconcile_result result = reconcile_done();
	struct jsonb *b = jsonb_new();
	struct kobj *ns = NULL, *dep = NULL, **quotas = NULL;
	size_t nquotas = 0;
	if (!b) {
		kerr_set(e, KERR_NOMEM, "out of memory");
		result = reconcile_error();
		goto out;
	}
	char tenant_ns[320];
	snprintf(tenant_ns, sizeof(tenant_ns), TENANT_NS_PREFIX "%s", cr->tenant_id);
	ns = store_get(informer_store(d->namespaces), tenant_ns);
	if (store_by_index(informer_store(d->quotas), "namespace", cr->meta.ns, &quotas, &nquotas) < 0) {
		kerr_set(e, KERR_NOMEM, "out of memory");
		result = reconcile_error();
		goto out;
	}
	struct workload_problem p;
	workload_check(cr, (const struct knamespace *)ns, (const struct kresourcequota *const *)quotas, nquotas, &p);

	char dep_name[300], dep_key[700], path[1024];
	workload_deployment_name(cr->meta.name, dep_name, sizeof(dep_name));
	snprintf(dep_key, sizeof(dep_key), "%s/%s", cr->meta.ns, dep_name);
	dep = store_get(informer_store(d->deployments), dep_key);
	const char *what = "missing";
	if (!p.reason[0] && (!dep || workload_deployment_drifted(cr, (const struct kdeployment *)dep, &what))) {
		workload_build_deployment(cr, b);
		kube_object_path(path, sizeof(path), "/apis/apps/v1", "deployments", cr->meta.ns, dep_name);
		int rc = KERR_ALREADY_EXISTS;
		bool created = false;
		if (!dep) {
			/* It exists after all only when the cache lags behind; the
			 * apply then makes it what it should be, and the reconcile
			 * that created it has said so already. */
			char collection[512];
			snprintf(collection, sizeof(collection), "/apis/apps/v1/namespaces/%s/deployments", cr->meta.ns);
			rc = write_doc(b, kube_create, d->client, collection, e);
			if (rc == KERR_ALREADY_EXISTS)
				kerr_clear(e);
			created = rc == 0;
		}
		if (rc == KERR_ALREADY_EXISTS)
			rc = write_doc(b, kube_apply, d->client, path, e);
		if (rc < 0) {
			if (e->code == KERR_FORBIDDEN || e->code == KERR_INVALID)
				event(d, cr, KUBE_EVENT_WARNING, "DeploymentFailed", e->message);
			result = reconcile_error();
			goto out;
		}
		if (created) {
			char msg[400];
			snprintf(msg, sizeof(msg), "Deployment %s created", dep_name);
			log_info("workload", "deployment created", "object", key, "deployment", dep_name, NULL);
			event(d, cr, KUBE_EVENT_NORMAL, "DeploymentCreated", msg);
		} else if (dep) {
			char msg[400];
			snprintf(msg, sizeof(msg), "Deployment %s updated (%s differed from the request)", dep_name, what);
			log_info("workload", "deployment updated", "object", key, "deployment", dep_name, "field", what,
				 NULL);
			event(d, cr, KUBE_EVENT_NORMAL, "DeploymentUpdated", msg);
		} else {
			log_debug("workload", "deployment existed before the cache showed it; applied", "object", key,
				  "deployment", dep_name, NULL);
		}
		/* The new Deployment's watch event brings this key back with the
		 * Deployment in the cache, and the status is written then: a
		 * status written now would say only "creating" and be replaced
		 * at once, and would hold up the next request's Deployment. */
		if (!dep)
			goto out;
		jsonb_reset(b);
	}

	if (!p.reason[0] && dep && workload_deployment_unobserved((const struct kdeployment *)dep, time(NULL))) {
		result = reconcile_after(WORKLOAD_UNOBSERVED_RECHECK_MS);
		goto out;
	}
	char now[32];
	kube_now_rfc3339(now, sizeof(now));
	struct workload_status st;
	workload_compute_status(cr, (const struct kdeployment *)dep, &p, now, &st);
	if (!workload_status_current(cr, &st)) {
		if (p.reason[0] && strcmp(cr->phase, "Degraded") != 0)
			event(d, cr, KUBE_EVENT_WARNING, p.reason, p.message);
		workload_build_status(&st, b);
		kube_object_path(path, sizeof(path), kind_computerequest.path, "computerequests", cr->meta.ns, cr->meta.name);
		int rc = write_doc(b, kube_patch_status, d->client, path, e);
		if (rc == KERR_NOT_FOUND) {
			kerr_clear(e);
		} else if (rc < 0) {
			result = reconcile_error();
		}
	}
out:
	jsonb_free(b);
	store_list_free(quotas, nquotas);
	kobj_unref(dep);
	kobj_unref(ns);
	kobj_unref(&cr->meta);
	return result;
}

/* ---- mapping other kinds' events to ComputeRequest keys ------------------- */

static void enqueue_owner(struct workload_deps *d, const struct kobj *o)
{
	const struct kobj_owner *own = kobj_controller(o);
	if (!own || strcmp(own->kind, "ComputeRequest") != 0 || strncmp(own->api_version, "nimbus.io/", 10) != 0)
		return;
	char key[600];
	snprintf(key, sizeof(key), "%s/%s", o->ns, own->name);
	controller_enqueue(d->controller, key);
}

static void dep_add(void *arg, struct kobj *o) { enqueue_owner(arg, o); }
static void dep_update(void *arg, struct kobj *old, struct kobj *o) { (void)old; enqueue_owner(arg, o); }
static void dep_delete(void *arg, struct kobj *o) { enqueue_owner(arg, o); }

struct informer_handlers workload_deployment_handlers(struct workload_deps *d)
{
	return (struct informer_handlers){dep_add, dep_update, dep_delete, d};
}

/* A tenant namespace appearing, changing or going, or its quota changing,
 * can unblock or block every request in it. A Namespace's own name is the
 * namespace; a quota's is its ns. */
static void ns_event(void *arg, struct kobj *o)
{
	struct workload_deps *d = arg;
	struct kobj **crs = NULL;
	size_t n = 0;
	if (store_by_index(informer_store(d->computerequests), "namespace", o->ns[0] ? o->ns : o->name, &crs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		controller_enqueue(d->controller, crs[i]->key);
	store_list_free(crs, n);
}

static void ns_update(void *arg, struct kobj *old, struct kobj *o) { (void)old; ns_event(arg, o); }

struct informer_handlers workload_namespace_handlers(struct workload_deps *d)
{
	return (struct informer_handlers){ns_event, ns_update, ns_event, d};
}
