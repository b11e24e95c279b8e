#include "autoscaler.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include <yajl/yajl_tree.h>

#include "jsonb.h"
#include "kinds.h"
#include "kube_write.h"
#include "log.h"
#include "quantity.h"
#include "timefmt.h"
#include "workload.h"

#define LOGGER "autoscaler"
/* A namespace's PodMetricsList is about 400 bytes a pod: 16 MiB is ~40000
 * pods, far beyond a tenant's quota, and a bound on a misbehaving server. */
#define METRICS_MAX_BODY (16u << 20)
/* After a 409 on the scale write, sample again this soon instead of a
 * whole period later: the cache catches up within milliseconds. */
#define CONFLICT_RETRY_MS 1000
/* Seed's defaults, which the CRD also applies. */
#define DEFAULT_MIN 1
#define DEFAULT_MAX 5
#define DEFAULT_TARGET_CPU 70

/* What the autoscaler remembers of one ComputeRequest between samples. */
struct cr_state {
	char *key;                         /* "ns/name"; hash key */
	char *uid;                         /* a recreated request starts afresh */
	struct autoscale_history history;
	char *last_status;                 /* the status patch last written; NULL: none yet */
	char last_scale_time[32];          /* RFC 3339 of our last rescale; "" unknown */
	char last_quota[320];              /* message of the last QuotaLimited event; "" none */
	bool limited;                      /* the ScalingLimited condition's status */
	char limited_since[32];            /* its lastTransitionTime; "" before the first write */
	bool seen;                         /* in the current pass */
	UT_hash_handle hh;
};

struct autoscaler {
	struct kube_client *client;
	struct informer *crs, *pods, *quotas;
	struct autoscale_behavior behavior;
	int64_t period_ms;
	struct metrics_family *decisions, *desired;

	pthread_t thread;
	bool running;
	pthread_mutex_t mu;   /* guards the wait, with cond */
	pthread_cond_t cond;  /* wakes the sampler to stop */
	atomic_int stop;

	struct cr_state *states; /* sampler thread only */
	bool metrics_failing;    /* sampler thread only: for log-once */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- metrics.k8s.io --------------------------------------------------------- */

/* One pod's usage: the sum over its containers. */
struct pod_usage {
	char *name;
	int64_t cpu_milli, memory;
};

struct usage_set {
	struct pod_usage *v;
	size_t n;
};

static void usage_set_free(struct usage_set *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->v[i].name);
	free(u->v);
	u->v = NULL;
	u->n = 0;
}

static int usage_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pod_usage *)a)->name, ((const struct pod_usage *)b)->name);
}

static const struct pod_usage *usage_find(const struct usage_set *u, const char *name)
{
	struct pod_usage k = {.name = (char *)name};
	return u->n ? bsearch(&k, u->v, u->n, sizeof(*u->v), usage_cmp) : NULL;
}

/* Parse a PodMetricsList. A pod whose containers are missing or do not
 * parse counts as without a sample, as the HPA's metrics client treats it. */
static int usage_parse(const char *json, const char *what, struct usage_set *out, struct kerr *e)
{
	char err[256] = "";
	yajl_val root = yajl_tree_parse(json, err, sizeof(err));
	if (!root)
		return kerr_set(e, KERR_PARSE, "%s is not JSON: %s", what, err);
	yajl_val items = yajl_tree_get(root, (const char *[]){"items", NULL}, yajl_t_array);
	size_t n = items ? YAJL_GET_ARRAY(items)->len : 0;
	out->v = n ? calloc(n, sizeof(*out->v)) : NULL;
	out->n = 0;
	if (n && !out->v) {
		yajl_tree_free(root);
		return kerr_set(e, KERR_NOMEM, "autoscaler: out of memory reading pod metrics");
	}
	for (size_t i = 0; i < n; i++) {
		yajl_val it = YAJL_GET_ARRAY(items)->values[i];
		const char *name = YAJL_GET_STRING(yajl_tree_get(it, (const char *[]){"metadata", "name", NULL}, yajl_t_string));
		yajl_val cs = yajl_tree_get(it, (const char *[]){"containers", NULL}, yajl_t_array);
		if (!name || !cs || YAJL_GET_ARRAY(cs)->len == 0)
			continue;
		int64_t cpu = 0, mem = 0;
		bool ok = true;
		for (size_t c = 0; ok && c < YAJL_GET_ARRAY(cs)->len; c++) {
			yajl_val ct = YAJL_GET_ARRAY(cs)->values[c];
			const char *cq = YAJL_GET_STRING(yajl_tree_get(ct, (const char *[]){"usage", "cpu", NULL}, yajl_t_string));
			const char *mq = YAJL_GET_STRING(yajl_tree_get(ct, (const char *[]){"usage", "memory", NULL}, yajl_t_string));
			int64_t cv, mv;
			ok = cq && mq && quantity_parse_milli(cq, strlen(cq), &cv, NULL) == 0 &&
			     quantity_parse_value(mq, strlen(mq), &mv, NULL) == 0;
			cpu += ok ? cv : 0;
			mem += ok ? mv : 0;
		}
		if (!ok)
			continue;
		if (!(out->v[out->n].name = strdup(name))) {
			usage_set_free(out);
			yajl_tree_free(root);
			return kerr_set(e, KERR_NOMEM, "autoscaler: out of memory reading pod metrics");
		}
		out->v[out->n].cpu_milli = cpu;
		out->v[out->n++].memory = mem;
	}
	yajl_tree_free(root);
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), usage_cmp);
	return 0;
}

struct body {
	char *buf;
	size_t len, cap;
};

static int body_append(void *arg, const char *data, size_t len)
{
	struct body *b = arg;
	if (b->len + len + 1 > METRICS_MAX_BODY)
		return KERR_TOO_LARGE;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 16384;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (!nb)
			return KERR_NOMEM;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return 0;
}

/* The usage of the ComputeRequest pods of namespace ns, in one request. */
static int fetch_usage(struct autoscaler *a, const char *ns, struct usage_set *out, struct kerr *e)
{
	char path[512];
	int n = snprintf(path, sizeof(path),
			 "/apis/metrics.k8s.io/v1beta1/namespaces/%s/pods?labelSelector=nimbus.io%%2Fcomputerequest", ns);
	if (n < 0 || (size_t)n >= sizeof(path))
		return kerr_set(e, KERR_TOO_LARGE, "namespace name too long: %s", ns);
	struct body b = {0};
	struct kube_stream_options so = {.timeout_ms = 30000, .cancel = &a->stop};
	int rc = kube_client_stream(a->client, path, body_append, &b, &so, NULL, e);
	if (rc == KERR_TOO_LARGE || rc == KERR_NOMEM)
		kerr_set(e, rc, "GET %s: the body is too large or memory ran out", path);
	if (rc == 0 && !b.buf)
		rc = kerr_set(e, KERR_PARSE, "GET %s answered with an empty body", path);
	if (rc == 0)
		rc = usage_parse(b.buf, path, out, e);
	free(b.buf);
	return rc;
}

/* ---- state -------------------------------------------------------------------- */

static void state_free(struct cr_state *s)
{
	autoscale_history_free(&s->history);
	free(s->key);
	free(s->uid);
	free(s->last_status);
	free(s);
}

static struct cr_state *state_get(struct autoscaler *a, const struct kcomputerequest *cr)
{
	struct cr_state *s = NULL;
	HASH_FIND_STR(a->states, cr->meta.key, s);
	if (s && strcmp(s->uid, cr->meta.uid) != 0) {
		HASH_DEL(a->states, s);
		state_free(s);
		s = NULL;
	}
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->key = strdup(cr->meta.key)) || !(s->uid = strdup(cr->meta.uid))) {
		if (s)
			state_free(s);
		return NULL;
	}
	HASH_ADD_KEYPTR(hh, a->states, s->key, strlen(s->key), s);
	return s;
}

static void forget_gauge(struct autoscaler *a, const char *key)
{
	if (!a->desired)
		return;
	const char *slash = strchr(key, '/');
	if (!slash)
		return;
	char ns[256];
	snprintf(ns, sizeof(ns), "%.*s", (int)(slash - key), key);
	metrics_remove(a->desired, METRICS_LABELS(ns, slash + 1));
}

/* ---- one ComputeRequest --------------------------------------------------------- */

static bool autoscaled(const struct kcomputerequest *cr)
{
	return cr->has_autoscaling && !cr->meta.deleted && !cr->validation_error[0];
}

/* A request's pods and quotas, as autoscale_math wants them, and the cached
 * objects they point into (the quota names), held until release(). */
struct gathered {
	struct kobj **pods, **quotas;
	size_t npods, nquotas;
	struct autoscale_pod *ap;
	struct autoscale_quota *aq;
};

static void release(struct gathered *g)
{
	store_list_free(g->pods, g->npods);
	store_list_free(g->quotas, g->nquotas);
	free(g->ap);
	free(g->aq);
	memset(g, 0, sizeof(*g));
}

/* Fill in's pods, own usage and quotas from the caches and usage (NULL:
 * no samples). On error g is released. */
static int gather(struct autoscaler *a, const struct kcomputerequest *cr, const struct usage_set *usage,
		  struct autoscale_input *in, struct gathered *g, struct kerr *e)
{
	memset(g, 0, sizeof(*g));
	int rc = store_by_index(informer_store(a->pods), AUTOSCALER_NAMESPACE_INDEX, cr->meta.ns, &g->pods, &g->npods);
	if (rc == 0)
		rc = store_by_index(informer_store(a->quotas), AUTOSCALER_NAMESPACE_INDEX, cr->meta.ns, &g->quotas,
				    &g->nquotas);
	if (rc < 0) {
		release(g);
		return kerr_set(e, rc, "autoscaler: cannot read the pod or quota cache of %s", cr->meta.ns);
	}
	g->ap = g->npods ? calloc(g->npods, sizeof(*g->ap)) : NULL;
	g->aq = g->nquotas ? calloc(g->nquotas, sizeof(*g->aq)) : NULL;
	if ((g->npods && !g->ap) || (g->nquotas && !g->aq)) {
		release(g);
		return kerr_set(e, KERR_NOMEM, "autoscaler: out of memory");
	}
	size_t n = 0;
	struct kquota_values own = {0};
	for (size_t i = 0; i < g->npods; i++) {
		const struct kpod *p = (const struct kpod *)g->pods[i];
		const char *owner = kobj_label(&p->meta, WORKLOAD_CR_LABEL);
		if (!owner || strcmp(owner, cr->meta.name) != 0)
			continue;
		struct autoscale_pod *q = &g->ap[n++];
		bool terminal = p->phase == KPOD_SUCCEEDED || p->phase == KPOD_FAILED;
		q->ignored = p->meta.deleted != 0 || terminal;
		q->pending = p->phase == KPOD_PENDING || p->phase == KPOD_PHASE_NONE;
		q->ready = p->ready == KCOND_TRUE;
		q->requests[AUTOSCALE_CPU] = p->requests.cpu_milli;
		q->requests[AUTOSCALE_MEMORY] = p->requests.memory;
		const struct pod_usage *u = usage ? usage_find(usage, p->meta.name) : NULL;
		if (u) {
			q->has_metrics = true;
			q->usage[AUTOSCALE_CPU] = u->cpu_milli;
			q->usage[AUTOSCALE_MEMORY] = u->memory;
		}
		/* The quota system stops counting a pod once it is terminal. */
		if (!terminal) {
			own.requests_cpu_milli += p->requests.cpu_milli;
			own.requests_memory += p->requests.memory;
			own.limits_cpu_milli += p->limits.cpu_milli;
			own.limits_memory += p->limits.memory;
			own.pods++;
		}
	}
	for (size_t i = 0; i < g->nquotas; i++) {
		const struct kresourcequota *q = (const struct kresourcequota *)g->quotas[i];
		g->aq[i] = (struct autoscale_quota){q->meta.name, q->hard, q->used};
	}
	in->pods = g->ap;
	in->npods = n;
	in->own = own;
	in->quotas = g->aq;
	in->nquotas = g->nquotas;
	return 0;
}

static void event(struct autoscaler *a, const struct kcomputerequest *cr, enum kube_event_type type,
		  const char *reason, const char *message)
{
	struct kerr e = {0};
	if (kube_event(a->client, &cr->meta, type, reason, message, &e) < 0)
		log_warn(LOGGER, "cannot record an event", "object", cr->meta.key, "reason", reason, "error", e.message,
			 NULL);
}

static int send_doc(struct autoscaler *a, struct jsonb *b, const char *path, bool status, struct kerr *e)
{
	const char *doc;
	size_t len;
	int rc = jsonb_result(b, &doc, &len, e);
	if (rc < 0)
		return rc;
	if (status)
		return kube_patch_status(a->client, path, doc, len, e);
	struct kube_response r;
	rc = kube_client_request(a->client, "PATCH", path, KUBE_CONTENT_MERGE_PATCH, doc, len, &r, e);
	kube_response_free(&r);
	return rc;
}

/* PATCH the scale subresource, conditional on the cached resourceVersion. */
static int write_scale(struct autoscaler *a, const struct kcomputerequest *cr, int64_t replicas, struct kerr *e)
{
	char path[1024];
	int rc = kube_object_path(path, sizeof(path) - 8, kind_computerequest.path, "computerequests", cr->meta.ns,
				  cr->meta.name);
	if (rc < 0)
		return kerr_set(e, rc, "object path too long: %s", cr->meta.key);
	strcat(path, "/scale");
	struct jsonb *b = jsonb_new();
	if (!b)
		return kerr_set(e, KERR_NOMEM, "autoscaler: out of memory");
	jsonb_obj(b);
	jsonb_key(b, "metadata");
	jsonb_obj(b);
	jsonb_kstr(b, "resourceVersion", cr->meta.resource_version);
	jsonb_obj_end(b);
	jsonb_key(b, "spec");
	jsonb_obj(b);
	jsonb_kint(b, "replicas", replicas);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	rc = send_doc(a, b, path, false, e);
	jsonb_free(b);
	return rc;
}

/* status.autoscaling, written only when it differs from the last write. */
static void write_status(struct autoscaler *a, const struct kcomputerequest *cr, struct cr_state *s,
			 const struct autoscale_decision *d)
{
	static const char *const util_keys[AUTOSCALE_NRESOURCES] = {"currentCPUUtilizationPercentage",
								    "currentMemoryUtilizationPercentage"};
	struct kerr e = {0};
	struct jsonb *b = jsonb_new();
	if (!b) {
		log_warn(LOGGER, "cannot write status.autoscaling", "object", cr->meta.key, "error", "out of memory", NULL);
		return;
	}
	jsonb_obj(b);
	jsonb_key(b, "status");
	jsonb_obj(b);
	jsonb_key(b, "autoscaling");
	jsonb_obj(b);
	jsonb_kint(b, "currentReplicas", cr->status_replicas);
	jsonb_kint(b, "desiredReplicas", d->desired);
	for (int r = 0; r < AUTOSCALE_NRESOURCES; r++) {
		jsonb_key(b, util_keys[r]);
		if (d->utilization[r] >= 0)
			jsonb_int(b, d->utilization[r]);
		else
			jsonb_null(b);
	}
	if (s->last_scale_time[0])
		jsonb_kstr(b, "lastScaleTime", s->last_scale_time);
	jsonb_kstr(b, "reason", d->reason);
	/* As the HPA's ScalingLimited: the quota holds the size below what
	 * the metrics ask. Its own list, in the block only the autoscaler
	 * writes: status.conditions is the workload reconciler's, and a merge
	 * patch replaces a list whole. */
	if (!s->limited_since[0] || s->limited != d->quota_limited) {
		s->limited = d->quota_limited;
		kube_now_rfc3339(s->limited_since, sizeof(s->limited_since));
	}
	jsonb_key(b, "conditions");
	jsonb_arr(b);
	jsonb_obj(b);
	jsonb_kstr(b, "type", "ScalingLimited");
	jsonb_kstr(b, "status", s->limited ? "True" : "False");
	jsonb_kstr(b, "reason", s->limited ? "QuotaLimited" : "DesiredWithinQuota");
	jsonb_kstr(b, "message", s->limited ? d->quota_message : "the tenant's quota allows the desired replicas");
	jsonb_kstr(b, "lastTransitionTime", s->limited_since);
	jsonb_obj_end(b);
	jsonb_arr_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	jsonb_obj_end(b);
	const char *doc;
	size_t len;
	int rc = jsonb_result(b, &doc, &len, &e);
	if (rc == 0 && s->last_status && strcmp(s->last_status, doc) == 0) {
		jsonb_free(b);
		return;
	}
	char path[1024];
	if (rc == 0)
		rc = kube_object_path(path, sizeof(path), kind_computerequest.path, "computerequests", cr->meta.ns,
				      cr->meta.name);
	if (rc == 0)
		rc = kube_patch_status(a->client, path, doc, len, &e);
	if (rc == 0) {
		char *copy = strdup(doc);
		free(s->last_status);
		s->last_status = copy; /* NULL on no memory: written again next time */
	} else if (rc != KERR_NOT_FOUND) {
		log_warn(LOGGER, "cannot write status.autoscaling", "object", cr->meta.key, "error", e.message, "code",
			 kerr_name(rc), NULL);
	}
	jsonb_free(b);
}

/* Decide and act for one request. Returns true when the scale write met a
 * conflict and the request should be sampled again soon. */
static bool autoscale_one(struct autoscaler *a, const struct kcomputerequest *cr, const struct usage_set *usage,
			  const char *metrics_error)
{
	struct cr_state *s = state_get(a, cr);
	if (!s) {
		log_error(LOGGER, "out of memory; skipping this sample", "object", cr->meta.key, NULL);
		return false;
	}
	s->seen = true;
	int64_t current = cr->replicas >= 0 ? cr->replicas : 1;
	struct autoscale_input in = {
		.current = current,
		.min_replicas = cr->min_replicas > 0 ? cr->min_replicas : DEFAULT_MIN,
		.max_replicas = cr->max_replicas > 0 ? cr->max_replicas : DEFAULT_MAX,
		.replica_cpu_milli = cr->cpu.value,
		.replica_memory = cr->memory.value,
	};
	in.target[AUTOSCALE_CPU] = cr->target_cpu_percent > 0 ? cr->target_cpu_percent : 0;
	in.target[AUTOSCALE_MEMORY] = cr->target_memory_percent > 0 ? cr->target_memory_percent : 0;
	if (!in.target[AUTOSCALE_CPU] && !in.target[AUTOSCALE_MEMORY])
		in.target[AUTOSCALE_CPU] = DEFAULT_TARGET_CPU;

	struct gathered g;
	struct autoscale_decision d;
	struct kerr e = {0};
	int rc = gather(a, cr, usage, &in, &g, &e);
	if (rc == 0 && metrics_error) {
		memset(&d, 0, sizeof(d));
		d.desired = current;
		d.recommendation = -1;
		d.utilization[AUTOSCALE_CPU] = d.utilization[AUTOSCALE_MEMORY] = -1;
		snprintf(d.reason, sizeof(d.reason), "cannot read metrics: %.480s", metrics_error);
	} else if (rc == 0) {
		rc = autoscale_decide(&in, &a->behavior, &s->history, mono_ms(), &d, &e);
	}
	release(&g);
	if (rc < 0) {
		log_error(LOGGER, "cannot decide", "object", cr->meta.key, "error", e.message, NULL);
		return false;
	}

	bool conflict = false;
	char from_s[24], to_s[24];
	snprintf(from_s, sizeof(from_s), "%" PRId64, current);
	snprintf(to_s, sizeof(to_s), "%" PRId64, d.desired);
	if (d.desired != current) {
		rc = write_scale(a, cr, d.desired, &e);
		if (rc == 0) {
			if (autoscale_history_scaled(&s->history, mono_ms(), current, d.desired, &e) < 0)
				log_warn(LOGGER, "cannot record the rescale for the rate limits", "object", cr->meta.key,
					 "error", e.message, NULL);
			kube_now_rfc3339(s->last_scale_time, sizeof(s->last_scale_time));
			s->last_quota[0] = '\0'; /* a new size: a cap met from here is news */
			log_info(LOGGER, "rescaled", "object", cr->meta.key, "from", from_s, "to", to_s, "reason", d.reason,
				 NULL);
			char msg[700];
			snprintf(msg, sizeof(msg), "New size: %" PRId64 "; reason: %s", d.desired, d.reason);
			event(a, cr, KUBE_EVENT_NORMAL, "SuccessfulRescale", msg);
		} else if (rc == KERR_CONFLICT) {
			/* Changed meanwhile (kubectl scale, an edit): decide again on
			 * what it is now. */
			log_debug(LOGGER, "the request changed while rescaling; sampling it again", "object", cr->meta.key,
				  NULL);
			conflict = true;
		} else if (rc == KERR_NOT_FOUND) {
			return false;
		} else {
			log_warn(LOGGER, "cannot rescale", "object", cr->meta.key, "to", to_s, "error", e.message, "code",
				 kerr_name(rc), NULL);
		}
	}
	if (d.quota_limited && strcmp(s->last_quota, d.quota_message) != 0) {
		char msg[400];
		snprintf(msg, sizeof(msg), "scale-up capped by the tenant's quota: %s", d.quota_message);
		event(a, cr, KUBE_EVENT_WARNING, "QuotaLimited", msg);
		log_info(LOGGER, "scale-up capped by quota", "object", cr->meta.key, "quota", d.quota_message, NULL);
	}
	/* Kept across samples that are not capped (new pods still without a
	 * sample hold the size), so one cap makes one event. */
	if (d.quota_limited)
		snprintf(s->last_quota, sizeof(s->last_quota), "%s", d.quota_message);

	if (a->decisions)
		metrics_counter_inc(a->decisions, METRICS_LABELS(autoscale_direction_name(d.direction)));
	if (a->desired)
		metrics_gauge_set(a->desired, (double)d.desired, METRICS_LABELS(cr->meta.ns, cr->meta.name));
	if (!conflict)
		write_status(a, cr, s, &d);
	return conflict;
}

/* ---- the sampler ---------------------------------------------------------------- */

static int cr_cmp(const void *x, const void *y)
{
	const struct kobj *a = *(const struct kobj *const *)x, *b = *(const struct kobj *const *)y;
	int c = strcmp(a->ns, b->ns);
	return c ? c : strcmp(a->name, b->name);
}

/* One pass over every autoscaled request; true when one should be sampled
 * again soon. */
static bool sample(struct autoscaler *a)
{
	struct kobj **all = NULL;
	size_t nall = 0;
	if (store_list(informer_store(a->crs), &all, &nall) < 0) {
		log_error(LOGGER, "out of memory listing ComputeRequests", NULL);
		return false;
	}
	size_t n = 0;
	for (size_t i = 0; i < nall; i++) {
		if (autoscaled((const struct kcomputerequest *)all[i])) {
			struct kobj *t = all[n];
			all[n++] = all[i];
			all[i] = t;
		}
	}
	if (n)
		qsort(all, n, sizeof(*all), cr_cmp);
	struct cr_state *s, *tmp;
	HASH_ITER(hh, a->states, s, tmp) s->seen = false;

	bool again = false, complete = true, failed = false;
	struct kerr first_error = {0}; /* its message names the namespace's URL */
	for (size_t i = 0; i < n;) {
		if (atomic_load(&a->stop)) {
			complete = false;
			break;
		}
		size_t j = i;
		while (j < n && strcmp(all[j]->ns, all[i]->ns) == 0)
			j++;
		struct usage_set usage = {0};
		struct kerr e = {0};
		int rc = fetch_usage(a, all[i]->ns, &usage, &e);
		if (rc < 0 && atomic_load(&a->stop)) {
			complete = false;
			break;
		}
		if (rc < 0 && !failed) {
			failed = true;
			first_error = e;
		}
		for (; i < j; i++)
			again |= autoscale_one(a, (const struct kcomputerequest *)all[i], rc == 0 ? &usage : NULL,
					       rc < 0 ? e.message : NULL);
		usage_set_free(&usage);
	}
	if (complete) {
		/* Logged when a pass first fails and when one first succeeds
		 * again, not every period. */
		if (failed && !a->metrics_failing)
			log_warn(LOGGER, "cannot read pod usage from metrics.k8s.io; not scaling until it answers "
					 "(is metrics-server installed?)",
				 "error", first_error.message, NULL);
		else if (!failed && a->metrics_failing)
			log_info(LOGGER, "pod usage from metrics.k8s.io available again", NULL);
		a->metrics_failing = failed;
		HASH_ITER(hh, a->states, s, tmp) {
			if (!s->seen) {
				forget_gauge(a, s->key);
				HASH_DEL(a->states, s);
				state_free(s);
			}
		}
	}
	store_list_free(all, nall);
	return again;
}

static void *sampler_main(void *arg)
{
	struct autoscaler *a = arg;
	while (!atomic_load(&a->stop)) {
		int64_t wait_ms = sample(a) && a->period_ms > CONFLICT_RETRY_MS ? CONFLICT_RETRY_MS : a->period_ms;
		struct timespec until = timefmt_deadline(wait_ms);
		pthread_mutex_lock(&a->mu);
		while (!atomic_load(&a->stop) && pthread_cond_timedwait(&a->cond, &a->mu, &until) == 0)
			;
		pthread_mutex_unlock(&a->mu);
	}
	return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------- */

static bool has_ns_index(struct informer *inf)
{
	struct kobj **o = NULL;
	size_t n = 0;
	int rc = store_by_index(informer_store(inf), AUTOSCALER_NAMESPACE_INDEX, "", &o, &n);
	store_list_free(o, n);
	return rc != KERR_NOT_FOUND;
}

int autoscaler_new(struct autoscaler **out, const struct autoscaler_options *o, struct kerr *e)
{
	*out = NULL;
	if (!o->client || !o->computerequests || !o->pods || !o->quotas ||
	    informer_kind(o->computerequests) != &kind_computerequest || informer_kind(o->pods) != &kind_pod ||
	    informer_kind(o->quotas) != &kind_resourcequota)
		return kerr_set(e, KERR_INVAL,
				"autoscaler: needs a client and ComputeRequest, Pod and ResourceQuota informers");
	if (!has_ns_index(o->pods) || !has_ns_index(o->quotas))
		return kerr_set(e, KERR_INVAL,
				"autoscaler: the pod and quota stores need the \"%s\" index (store_index_namespace), "
				"registered before their informers start",
				AUTOSCALER_NAMESPACE_INDEX);
	struct autoscale_behavior b = o->behavior ? *o->behavior : autoscale_behavior_default();
	if (o->period_ms < 0 || b.tolerance < 0 || b.up_window_ms < 0 || b.down_window_ms < 0 || b.up_period_ms <= 0 ||
	    b.down_period_ms <= 0 || b.down_percent > 100)
		return kerr_set(e, KERR_INVAL, "autoscaler: negative period, window or tolerance, or a scale-down "
					       "percent above 100");
	struct autoscaler *a = calloc(1, sizeof(*a));
	if (!a)
		return kerr_set(e, KERR_NOMEM, "autoscaler: out of memory");
	a->client = o->client;
	a->crs = o->computerequests;
	a->pods = o->pods;
	a->quotas = o->quotas;
	a->behavior = b;
	a->period_ms = o->period_ms ? o->period_ms : AUTOSCALER_DEFAULT_PERIOD_MS;
	pthread_condattr_t ca;
	bool cond_ok = false;
	if (pthread_condattr_init(&ca) == 0) {
		cond_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&a->cond, &ca) == 0;
		pthread_condattr_destroy(&ca);
	}
	if (!cond_ok || pthread_mutex_init(&a->mu, NULL) != 0) {
		if (cond_ok)
			pthread_cond_destroy(&a->cond);
		free(a);
		return kerr_set(e, KERR_NOMEM, "autoscaler: cannot create its lock");
	}
	int rc = 0;
	if (o->metrics) {
		static const char *const dir[] = {"direction"};
		static const char *const target[] = {"namespace", "computerequest"};
		rc = metrics_counter_new(o->metrics, "nimbus_autoscaler_decisions_total",
					 "Autoscaler decisions per ComputeRequest and sample, by direction (up, down, none).",
					 dir, 1, &a->decisions, e);
		if (rc == 0)
			rc = metrics_gauge_new(o->metrics, "nimbus_autoscaler_desired_replicas",
					       "Replicas the autoscaler last decided for a ComputeRequest.", target, 2,
					       &a->desired, e);
	}
	if (rc < 0) {
		autoscaler_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

int autoscaler_start(struct autoscaler *a, struct kerr *e)
{
	if (a->running)
		return 0;
	atomic_store(&a->stop, 0);
	if (pthread_create(&a->thread, NULL, sampler_main, a) != 0)
		return kerr_set(e, KERR_NOMEM, "autoscaler: cannot start its sampler thread");
	a->running = true;
	char period[24];
	snprintf(period, sizeof(period), "%" PRId64 "ms", a->period_ms);
	char window[24];
	snprintf(window, sizeof(window), "%" PRId64 "ms", a->behavior.down_window_ms);
	log_info(LOGGER, "autoscaler started", "period", period, "downscaleStabilization", window, NULL);
	return 0;
}

void autoscaler_stop(struct autoscaler *a)
{
	if (!a || !a->running)
		return;
	pthread_mutex_lock(&a->mu);
	atomic_store(&a->stop, 1);
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	a->running = false;
}

void autoscaler_free(struct autoscaler *a)
{
	if (!a)
		return;
	autoscaler_stop(a);
	struct cr_state *s, *tmp;
	HASH_ITER(hh, a->states, s, tmp) {
		HASH_DEL(a->states, s);
		state_free(s);
	}
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
