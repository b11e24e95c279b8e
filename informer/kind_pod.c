/* Pod (v1): what a scheduler and the workload reconcilers read. */
#include <string.h>

#include "kinds_internal.h"
#include "kintern.h"

struct pod_init {
	struct kresources req, lim;
	int sidecar; /* restartPolicy: Always, runs beside the app containers */
};

struct pod_toleration {
	struct ktoleration t; /* scratch strings */
	int has_seconds;
};

struct pod_selector_req {
	const char *key;
	uint8_t op;
	struct kvec values; /* of const char * */
};

struct pod_term {
	struct kvec reqs;   /* of struct pod_selector_req */
	struct kvec fields; /* of struct pod_selector_req */
};

struct pod_condition {
	const char *type, *reason;
	uint8_t status;
};

struct pod_state {
	const char *node_name, *scheduler_name, *image;
	int64_t priority, start_time;
	uint8_t phase;
	struct kresources req, lim; /* summed over app containers */
	struct kresources overhead;
	struct kvec init;           /* of struct pod_init */
	struct klabels node_selector;
	struct kvec tolerations;    /* of struct pod_toleration */
	struct kvec terms;          /* of struct pod_term */
	struct kvec conditions;     /* of struct pod_condition */
};

/* Saturating: quantities may be negative (the apiserver refuses them in a
 * pod, but the decoder must not overflow on one). */
static int64_t pod_add(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

static int64_t pod_max(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* resources.{requests,limits}.{cpu,memory} of one container into req/lim. */
static void pod_resources(struct kdecode *d, const struct json_path *p, const struct json_path *r,
                          enum json_type type, const char *s, size_t len,
                          struct kresources *req, struct kresources *lim)
{
	struct kresources *dst;
	struct json_path q;
	if (kpath_prefix(r, "resources.requests", NULL, &q))
		dst = req;
	else if (kpath_prefix(r, "resources.limits", NULL, &q))
		dst = lim;
	else
		return;
	if (q.depth != 1)
		return;
	int64_t v;
	if (json_seg_is(&q.seg[0], "cpu")) {
		if (kd_quantity(d, p, type, s, len, 1, &v) == 0)
			dst->cpu_milli = pod_add(dst->cpu_milli, v);
	} else if (json_seg_is(&q.seg[0], "memory")) {
		if (kd_quantity(d, p, type, s, len, 0, &v) == 0)
			dst->memory = pod_add(dst->memory, v);
	}
}

static uint8_t pod_sel_op(const char *s, size_t len)
{
	static const char *const ops[] = {
		[KSEL_IN] = "In", [KSEL_NOT_IN] = "NotIn", [KSEL_EXISTS] = "Exists",
		[KSEL_DOES_NOT_EXIST] = "DoesNotExist", [KSEL_GT] = "Gt", [KSEL_LT] = "Lt",
	};
	for (uint8_t i = 0; i < KSEL_OTHER; i++)
		if (kstr_eq(s, len, ops[i]))
			return i;
	return KSEL_OTHER;
}

static void pod_selector_req(struct kdecode *d, struct kvec *reqs, size_t i, const struct json_path *p,
                             const struct json_path *r, enum json_type type, const char *s, size_t len)
{
	struct pod_selector_req *q = kd_vec_at(d, reqs, i, sizeof(*q));
	size_t idx[1];
	if (!q || r->depth == 0)
		return;
	if (kpath_match(r, "key", NULL)) {
		kd_string(d, p, type, s, len, &q->key);
	} else if (kpath_match(r, "operator", NULL)) {
		const char *op;
		if (kd_string(d, p, type, s, len, &op) == 0)
			q->op = pod_sel_op(s, len);
	} else if (kpath_match(r, "values.#", idx)) {
		const char **v = kd_vec_at(d, &q->values, idx[0], sizeof(*v));
		if (v)
			kd_string(d, p, type, s, len, v);
	}
}

static void pod_affinity(struct kdecode *d, struct pod_state *b, const struct json_path *p,
                         enum json_type type, const char *s, size_t len)
{
	struct json_path r, q;
	size_t idx[2];
	if (!kpath_prefix(p, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
	                     ".nodeSelectorTerms.#", idx, &r))
		return;
	struct pod_term *t = kd_vec_at(d, &b->terms, idx[0], sizeof(*t));
	if (!t)
		return;
	if (kpath_prefix(&r, "matchExpressions.#", idx + 1, &q))
		pod_selector_req(d, &t->reqs, idx[1], p, &q, type, s, len);
	else if (kpath_prefix(&r, "matchFields.#", idx + 1, &q))
		pod_selector_req(d, &t->fields, idx[1], p, &q, type, s, len);
}

static void pod_toleration(struct kdecode *d, struct pod_state *b, size_t i, const struct json_path *p,
                           const struct json_path *r, enum json_type type, const char *s, size_t len)
{
	struct pod_toleration *t = kd_vec_at(d, &b->tolerations, i, sizeof(*t));
	const char *word;
	if (!t || r->depth != 1)
		return;
	if (json_seg_is(&r->seg[0], "key")) {
		kd_string(d, p, type, s, len, &t->t.key);
	} else if (json_seg_is(&r->seg[0], "value")) {
		kd_string(d, p, type, s, len, &t->t.value);
	} else if (json_seg_is(&r->seg[0], "operator")) {
		if (kd_string(d, p, type, s, len, &word) == 0)
			t->t.op = len == 0 || kstr_eq(s, len, "Equal") ? KTOL_EQUAL
			          : kstr_eq(s, len, "Exists")          ? KTOL_EXISTS
			                                               : KTOL_OTHER;
	} else if (json_seg_is(&r->seg[0], "effect")) {
		if (kd_string(d, p, type, s, len, &word) == 0)
			t->t.effect = (uint8_t)kparse_effect(s, len);
	} else if (json_seg_is(&r->seg[0], "tolerationSeconds")) {
		if (kd_int(d, p, type, s, len, &t->t.seconds) == 0)
			t->has_seconds = 1;
	}
}

static uint8_t pod_phase(const char *s, size_t len)
{
	if (kstr_eq(s, len, "Pending"))
		return KPOD_PENDING;
	if (kstr_eq(s, len, "Running"))
		return KPOD_RUNNING;
	if (kstr_eq(s, len, "Succeeded"))
		return KPOD_SUCCEEDED;
	if (kstr_eq(s, len, "Failed"))
		return KPOD_FAILED;
	return KPOD_PHASE_UNKNOWN;
}

/* The keys of spec that pod_value reads, in or under. */
static const char *const pod_spec_read[] = {"containers", "initContainers", "tolerations", "nodeSelector", "nodeName",
                                            "schedulerName", "priority", "overhead", "affinity", NULL};

static void pod_value(struct kdecode *d, void *state, const struct json_path *p,
                      enum json_type type, const char *s, size_t len)
{
	struct pod_state *b = state;
	struct json_path r;
	size_t idx[1];
	const char *word;
	if (json_seg_is(&p->seg[0], "spec")) {
		/* A spec scalar not read (dnsPolicy...) ends here, not after every pattern below. */
		if (p->depth < 2 || !kseg_in(&p->seg[1], pod_spec_read))
			return;
		if (kpath_prefix(p, "spec.containers.#", idx, &r)) {
			if (idx[0] == 0 && kpath_match(&r, "image", NULL))
				kd_string(d, p, type, s, len, &b->image);
			else
				pod_resources(d, p, &r, type, s, len, &b->req, &b->lim);
		} else if (kpath_prefix(p, "spec.initContainers.#", idx, &r)) {
			struct pod_init *c = kd_vec_at(d, &b->init, idx[0], sizeof(*c));
			if (!c)
				return;
			if (kpath_match(&r, "restartPolicy", NULL)) {
				if (kd_string(d, p, type, s, len, &word) == 0)
					c->sidecar = kstr_eq(s, len, "Always");
			} else {
				pod_resources(d, p, &r, type, s, len, &c->req, &c->lim);
			}
		} else if (kpath_prefix(p, "spec.tolerations.#", idx, &r)) {
			pod_toleration(d, b, idx[0], p, &r, type, s, len);
		} else if (kpath_match(p, "spec.nodeSelector.*", NULL)) {
			kd_label(d, &b->node_selector, p, type, s, len);
		} else if (kpath_match(p, "spec.nodeName", NULL)) {
			kd_string(d, p, type, s, len, &b->node_name);
		} else if (kpath_match(p, "spec.schedulerName", NULL)) {
			kd_string(d, p, type, s, len, &b->scheduler_name);
		} else if (kpath_match(p, "spec.priority", NULL)) {
			if (kd_int(d, p, type, s, len, &b->priority) == 0 &&
			    (b->priority < INT32_MIN || b->priority > INT32_MAX))
				kd_fail(d, KERR_PARSE, "Pod spec.priority %lld is outside the 32-bit range",
				        (long long)b->priority);
		} else if (kpath_match(p, "spec.overhead.cpu", NULL) || kpath_match(p, "spec.overhead.memory", NULL)) {
			int cpu = json_seg_is(&p->seg[2], "cpu");
			int64_t v;
			if (kd_quantity(d, p, type, s, len, cpu, &v) == 0) {
				if (cpu)
					b->overhead.cpu_milli = v;
				else
					b->overhead.memory = v;
			}
		} else {
			pod_affinity(d, b, p, type, s, len);
		}
	} else if (json_seg_is(&p->seg[0], "status")) {
		if (kpath_prefix(p, "status.conditions.#", idx, &r)) {
			struct pod_condition *c = kd_vec_at(d, &b->conditions, idx[0], sizeof(*c));
			if (!c || r.depth != 1)
				return;
			if (json_seg_is(&r.seg[0], "type"))
				kd_string(d, p, type, s, len, &c->type);
			else if (json_seg_is(&r.seg[0], "reason"))
				kd_string(d, p, type, s, len, &c->reason);
			else if (json_seg_is(&r.seg[0], "status") && kd_string(d, p, type, s, len, &word) == 0)
				c->status = (uint8_t)kparse_cond(s, len);
		} else if (kpath_match(p, "status.phase", NULL)) {
			if (kd_string(d, p, type, s, len, &word) == 0)
				b->phase = pod_phase(s, len);
		} else if (kpath_match(p, "status.startTime", NULL)) {
			kd_time(d, p, type, s, len, &b->start_time);
		}
	}
}

/* Containers pod_value reads nothing in: most of a pod (volumes, env,
 * probes, mounts, container statuses). Keys it reads as scalars are kept,
 * so that a wrong type stays an error. */
static int pod_skip(const struct json_path *p)
{
	static const char *const top[] = {"spec", "status", NULL};
	static const char *const container[] = {"image", "resources", "restartPolicy", NULL};
	static const char *const resources[] = {"requests", "limits", NULL};
	static const char *const status[] = {"conditions", "phase", "startTime", NULL};
	const struct json_seg *s = p->seg;
	if (p->depth == 1)
		return !kseg_in(&s[0], top);
	if (json_seg_is(&s[0], "status"))
		return p->depth == 2 && !kseg_in(&s[1], status);
	if (p->depth == 2)
		return !kseg_in(&s[1], pod_spec_read);
	if (json_seg_is(&s[1], "containers") || json_seg_is(&s[1], "initContainers")) {
		if (p->depth == 4)
			return !kseg_in(&s[3], container);
		return p->depth == 5 && json_seg_is(&s[3], "resources") && !kseg_in(&s[4], resources);
	}
	if (json_seg_is(&s[1], "affinity")) {
		if (p->depth == 3)
			return !json_seg_is(&s[2], "nodeAffinity");
		return p->depth == 4 && !json_seg_is(&s[3], "requiredDuringSchedulingIgnoredDuringExecution");
	}
	return 0;
}

/* The kubelet's effective pod resources (k8s.io/component-helpers
 * resource.PodRequests): sidecars add to the app containers and to every
 * init container started after them; the pod needs the larger of the app
 * phase and its largest init step, plus the runtime overhead. */
static void pod_effective(const struct pod_state *b, struct kresources *req, struct kresources *lim)
{
	const struct pod_init *init = b->init.items;
	struct kresources r = b->req, l = b->lim, side_r = {0, 0}, side_l = {0, 0}, max_r = {0, 0},
	                  max_l = {0, 0};
	for (size_t i = 0; i < b->init.n; i++) {
		struct kresources step_r, step_l;
		if (init[i].sidecar) {
			r.cpu_milli = pod_add(r.cpu_milli, init[i].req.cpu_milli);
			r.memory = pod_add(r.memory, init[i].req.memory);
			l.cpu_milli = pod_add(l.cpu_milli, init[i].lim.cpu_milli);
			l.memory = pod_add(l.memory, init[i].lim.memory);
			side_r.cpu_milli = pod_add(side_r.cpu_milli, init[i].req.cpu_milli);
			side_r.memory = pod_add(side_r.memory, init[i].req.memory);
			side_l.cpu_milli = pod_add(side_l.cpu_milli, init[i].lim.cpu_milli);
			side_l.memory = pod_add(side_l.memory, init[i].lim.memory);
			step_r = side_r;
			step_l = side_l;
		} else {
			step_r.cpu_milli = pod_add(init[i].req.cpu_milli, side_r.cpu_milli);
			step_r.memory = pod_add(init[i].req.memory, side_r.memory);
			step_l.cpu_milli = pod_add(init[i].lim.cpu_milli, side_l.cpu_milli);
			step_l.memory = pod_add(init[i].lim.memory, side_l.memory);
		}
		max_r.cpu_milli = pod_max(max_r.cpu_milli, step_r.cpu_milli);
		max_r.memory = pod_max(max_r.memory, step_r.memory);
		max_l.cpu_milli = pod_max(max_l.cpu_milli, step_l.cpu_milli);
		max_l.memory = pod_max(max_l.memory, step_l.memory);
	}
	req->cpu_milli = pod_add(pod_max(r.cpu_milli, max_r.cpu_milli), b->overhead.cpu_milli);
	req->memory = pod_add(pod_max(r.memory, max_r.memory), b->overhead.memory);
	lim->cpu_milli = pod_add(pod_max(l.cpu_milli, max_l.cpu_milli), b->overhead.cpu_milli);
	lim->memory = pod_add(pod_max(l.memory, max_l.memory), b->overhead.memory);
}

static const struct kselector_req *pod_layout_reqs(struct kalloc *a, const struct kvec *v)
{
	const struct pod_selector_req *src = v->items;
	struct kselector_req *dst = ka_alloc(a, v->n * sizeof(*dst));
	if (!dst)
		return NULL;
	for (size_t i = 0; i < v->n; i++) {
		dst[i].key = ka_str(a, src[i].key);
		dst[i].op = src[i].op;
		const char *const *vals = src[i].values.items;
		const char **out = ka_alloc(a, src[i].values.n * sizeof(*out));
		if (src[i].values.n && !out)
			return NULL;
		for (size_t j = 0; j < src[i].values.n; j++)
			out[j] = ka_str(a, vals[j]);
		dst[i].values = out;
		dst[i].nvalues = src[i].values.n;
	}
	return dst;
}

static struct kobj *pod_end(struct kdecode *d, void *state, struct kalloc *a)
{
	(void)d;
	struct pod_state *b = state;
	struct kpod *p = ka_object(a, sizeof(*p));
	if (!p)
		return NULL;
	/* Pods of one workload repeat these: one shared copy of each. */
	p->node_name = ka_istr(a, b->node_name);
	p->scheduler_name = ka_istr(a, b->scheduler_name);
	p->image = ka_istr(a, b->image);
	p->start_time = b->start_time;
	p->priority = (int32_t)b->priority;
	p->phase = b->phase;
	pod_effective(b, &p->requests, &p->limits);
	p->node_selector = ka_ilabels(a, &b->node_selector, &p->nnode_selector);

	const struct pod_toleration *tol = b->tolerations.items;
	struct ktoleration *t = ka_alloc(a, b->tolerations.n * sizeof(*t));
	if (b->tolerations.n && !t)
		return NULL;
	for (size_t i = 0; i < b->tolerations.n; i++) {
		t[i] = tol[i].t;
		t[i].key = ka_istr(a, tol[i].t.key);
		t[i].value = ka_istr(a, tol[i].t.value);
		t[i].seconds = tol[i].has_seconds ? tol[i].t.seconds : -1;
	}
	p->tolerations = t;
	p->ntolerations = b->tolerations.n;

	const struct pod_term *terms = b->terms.items;
	struct kselector_term *term = ka_alloc(a, b->terms.n * sizeof(*term));
	if (b->terms.n && !term)
		return NULL;
	for (size_t i = 0; i < b->terms.n; i++) {
		term[i].reqs = pod_layout_reqs(a, &terms[i].reqs);
		term[i].fields = pod_layout_reqs(a, &terms[i].fields);
		if ((terms[i].reqs.n && !term[i].reqs) || (terms[i].fields.n && !term[i].fields))
			return NULL;
		term[i].nreqs = terms[i].reqs.n;
		term[i].nfields = terms[i].fields.n;
	}
	p->affinity_terms = term;
	p->naffinity_terms = b->terms.n;

	const struct pod_condition *c = b->conditions.items;
	p->ready_reason = p->scheduled_reason = "";
	for (size_t i = 0; i < b->conditions.n; i++) {
		if (c[i].type && strcmp(c[i].type, "Ready") == 0) {
			p->ready = c[i].status;
			p->ready_reason = ka_str(a, c[i].reason);
		} else if (c[i].type && strcmp(c[i].type, "PodScheduled") == 0) {
			p->scheduled = c[i].status;
			p->scheduled_reason = ka_str(a, c[i].reason);
		}
	}
	return &p->meta;
}

static void pod_destroy(struct kobj *o)
{
	struct kpod *p = (struct kpod *)o;
	kintern_put(p->node_name);
	kintern_put(p->scheduler_name);
	kintern_put(p->image);
	kobj_put_labels(p->node_selector, p->nnode_selector);
	for (size_t i = 0; p->tolerations && i < p->ntolerations; i++) {
		kintern_put(p->tolerations[i].key);
		kintern_put(p->tolerations[i].value);
	}
	kind_destroy_block(o);
}

const struct kind kind_pod = {
	.name = "Pod",
	.api_version = "v1",
	.path = "/api/v1",
	.plural = "pods",
	.namespaced = 1,
	.destroy = pod_destroy,
	.state_size = sizeof(struct pod_state),
	.value = pod_value,
	.end = pod_end,
	.skip = pod_skip,
};
