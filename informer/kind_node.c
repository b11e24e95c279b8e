/* Cluster capacity kinds: Node, Namespace (v1) and ResourceQuota (v1). */
#include <string.h>

#include "kinds_internal.h"

/* ---- Node ---- */

struct node_condition {
	const char *type;
	uint8_t status;
};

struct node_state {
	struct knode_resources allocatable, capacity;
	int unschedulable;
	struct kvec taints;     /* of struct ktaint with scratch strings */
	struct kvec conditions; /* of struct node_condition */
};

static void node_begin(void *state)
{
	struct node_state *b = state;
	b->allocatable = b->capacity = (struct knode_resources){-1, -1, -1};
}

static void node_resource(struct kdecode *d, struct knode_resources *res, const struct json_path *p,
                          enum json_type type, const char *s, size_t len)
{
	const char *name = kpath_last(p);
	if (strcmp(name, "cpu") == 0)
		kd_quantity(d, p, type, s, len, 1, &res->cpu_milli);
	else if (strcmp(name, "memory") == 0)
		kd_quantity(d, p, type, s, len, 0, &res->memory);
	else if (strcmp(name, "pods") == 0)
		kd_quantity(d, p, type, s, len, 0, &res->pods);
}

static void node_value(struct kdecode *d, void *state, const struct json_path *p,
                       enum json_type type, const char *s, size_t len)
{
	struct node_state *b = state;
	struct json_path r;
	size_t idx[1];
	const char *word;
	if (kpath_match(p, "status.allocatable.*", NULL)) {
		node_resource(d, &b->allocatable, p, type, s, len);
	} else if (kpath_match(p, "status.capacity.*", NULL)) {
		node_resource(d, &b->capacity, p, type, s, len);
	} else if (kpath_match(p, "spec.unschedulable", NULL)) {
		kd_bool(d, p, type, s, len, &b->unschedulable);
	} else if (kpath_prefix(p, "spec.taints.#", idx, &r)) {
		struct ktaint *t = kd_vec_at(d, &b->taints, idx[0], sizeof(*t));
		if (!t || r.depth != 1)
			return;
		if (json_seg_is(&r.seg[0], "key"))
			kd_string(d, p, type, s, len, &t->key);
		else if (json_seg_is(&r.seg[0], "value"))
			kd_string(d, p, type, s, len, &t->value);
		else if (json_seg_is(&r.seg[0], "effect") && kd_string(d, p, type, s, len, &word) == 0)
			t->effect = (uint8_t)kparse_effect(s, len);
	} else if (kpath_prefix(p, "status.conditions.#", idx, &r)) {
		struct node_condition *c = kd_vec_at(d, &b->conditions, idx[0], sizeof(*c));
		if (!c || r.depth != 1)
			return;
		if (json_seg_is(&r.seg[0], "type"))
			kd_string(d, p, type, s, len, &c->type);
		else if (json_seg_is(&r.seg[0], "status") && kd_string(d, p, type, s, len, &word) == 0)
			c->status = (uint8_t)kparse_cond(s, len);
	}
}

static struct kobj *node_end(struct kdecode *d, void *state, struct kalloc *a)
{
	(void)d;
	struct node_state *b = state;
	struct knode *n = ka_object(a, sizeof(*n));
	if (!n)
		return NULL;
	n->allocatable = b->allocatable;
	n->capacity = b->capacity;
	n->unschedulable = b->unschedulable;
	const struct node_condition *c = b->conditions.items;
	for (size_t i = 0; i < b->conditions.n; i++)
		if (c[i].type && strcmp(c[i].type, "Ready") == 0)
			n->ready = c[i].status;
	const struct ktaint *src = b->taints.items;
	struct ktaint *t = ka_alloc(a, b->taints.n * sizeof(*t));
	if (b->taints.n && !t)
		return NULL;
	for (size_t i = 0; i < b->taints.n; i++) {
		t[i].key = ka_str(a, src[i].key);
		t[i].value = ka_str(a, src[i].value);
		t[i].effect = src[i].effect;
	}
	n->taints = t;
	n->ntaints = b->taints.n;
	return &n->meta;
}

const struct kind kind_node = {
	.name = "Node",
	.api_version = "v1",
	.path = "/api/v1",
	.plural = "nodes",
	.namespaced = 0,
	.destroy = kind_destroy_block,
	.state_size = sizeof(struct node_state),
	.begin = node_begin,
	.value = node_value,
	.end = node_end,
};

/* ---- Namespace ---- */

struct namespace_state {
	uint8_t phase;
};

static void namespace_value(struct kdecode *d, void *state, const struct json_path *p,
                            enum json_type type, const char *s, size_t len)
{
	struct namespace_state *b = state;
	const char *word;
	if (kpath_match(p, "status.phase", NULL) && kd_string(d, p, type, s, len, &word) == 0)
		b->phase = kstr_eq(s, len, "Active")        ? KNS_ACTIVE
		           : kstr_eq(s, len, "Terminating") ? KNS_TERMINATING
		                                            : KNS_PHASE_OTHER;
}

static struct kobj *namespace_end(struct kdecode *d, void *state, struct kalloc *a)
{
	(void)d;
	struct namespace_state *b = state;
	struct knamespace *n = ka_object(a, sizeof(*n));
	if (!n)
		return NULL;
	n->phase = b->phase;
	return &n->meta;
}

const struct kind kind_namespace = {
	.name = "Namespace",
	.api_version = "v1",
	.path = "/api/v1",
	.plural = "namespaces",
	.namespaced = 0,
	.destroy = kind_destroy_block,
	.state_size = sizeof(struct namespace_state),
	.value = namespace_value,
	.end = namespace_end,
};

/* ---- ResourceQuota ---- */

struct quota_state {
	struct kquota_values hard, used;
};

static void quota_begin(void *state)
{
	struct quota_state *b = state;
	b->hard = b->used = (struct kquota_values){-1, -1, -1, -1, -1};
}

static void quota_resource(struct kdecode *d, struct kquota_values *q, const struct json_path *p,
                           enum json_type type, const char *s, size_t len)
{
	const char *name = kpath_last(p);
	if (strcmp(name, "cpu") == 0 || strcmp(name, "requests.cpu") == 0)
		kd_quantity(d, p, type, s, len, 1, &q->requests_cpu_milli);
	else if (strcmp(name, "memory") == 0 || strcmp(name, "requests.memory") == 0)
		kd_quantity(d, p, type, s, len, 0, &q->requests_memory);
	else if (strcmp(name, "limits.cpu") == 0)
		kd_quantity(d, p, type, s, len, 1, &q->limits_cpu_milli);
	else if (strcmp(name, "limits.memory") == 0)
		kd_quantity(d, p, type, s, len, 0, &q->limits_memory);
	else if (strcmp(name, "pods") == 0)
		kd_quantity(d, p, type, s, len, 0, &q->pods);
}

static void quota_value(struct kdecode *d, void *state, const struct json_path *p,
                        enum json_type type, const char *s, size_t len)
{
	struct quota_state *b = state;
	if (kpath_match(p, "spec.hard.*", NULL))
		quota_resource(d, &b->hard, p, type, s, len);
	else if (kpath_match(p, "status.used.*", NULL))
		quota_resource(d, &b->used, p, type, s, len);
}

static struct kobj *quota_end(struct kdecode *d, void *state, struct kalloc *a)
{
	(void)d;
	struct quota_state *b = state;
	struct kresourcequota *q = ka_object(a, sizeof(*q));
	if (!q)
		return NULL;
	q->hard = b->hard;
	q->used = b->used;
	return &q->meta;
}

const struct kind kind_resourcequota = {
	.name = "ResourceQuota",
	.api_version = "v1",
	.path = "/api/v1",
	.plural = "resourcequotas",
	.namespaced = 1,
	.destroy = kind_destroy_block,
	.state_size = sizeof(struct quota_state),
	.begin = quota_begin,
	.value = quota_value,
	.end = quota_end,
};
