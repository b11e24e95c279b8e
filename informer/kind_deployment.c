/* Deployment (apps/v1): what the workload reconciler writes and watches. */
#include <string.h>

#include "kinds_internal.h"

struct deployment_quantity {
	const char *raw;
	int64_t value;
};

struct deployment_state {
	int64_t replicas;
	const char *scheduler_name;
	struct klabels template_labels;
	struct klabels template_annotations;
	const char *container_name, *container_image;
	struct deployment_quantity cpu_request, memory_request, cpu_limit, memory_limit;
	int64_t status_replicas, ready_replicas, available_replicas, updated_replicas, observed_generation;
	struct kvec conditions; /* of struct kcondition_scratch */
};

static void deployment_begin(void *state)
{
	struct deployment_state *b = state;
	b->replicas = 1;
	b->cpu_request.value = b->memory_request.value = -1;
	b->cpu_limit.value = b->memory_limit.value = -1;
}

static void deployment_quantity(struct kdecode *d, struct deployment_quantity *q, int milli,
                                const struct json_path *p, enum json_type type, const char *s, size_t len)
{
	if (kd_quantity(d, p, type, s, len, milli, &q->value) == 0)
		q->raw = kd_strdup(d, s, len);
}

static void deployment_container(struct kdecode *d, struct deployment_state *b, const struct json_path *p,
                                 const struct json_path *r, enum json_type type, const char *s, size_t len)
{
	if (kpath_match(r, "name", NULL))
		kd_string(d, p, type, s, len, &b->container_name);
	else if (kpath_match(r, "image", NULL))
		kd_string(d, p, type, s, len, &b->container_image);
	else if (kpath_match(r, "resources.requests.cpu", NULL))
		deployment_quantity(d, &b->cpu_request, 1, p, type, s, len);
	else if (kpath_match(r, "resources.requests.memory", NULL))
		deployment_quantity(d, &b->memory_request, 0, p, type, s, len);
	else if (kpath_match(r, "resources.limits.cpu", NULL))
		deployment_quantity(d, &b->cpu_limit, 1, p, type, s, len);
	else if (kpath_match(r, "resources.limits.memory", NULL))
		deployment_quantity(d, &b->memory_limit, 0, p, type, s, len);
}

static void deployment_value(struct kdecode *d, void *state, const struct json_path *p,
                             enum json_type type, const char *s, size_t len)
{
	struct deployment_state *b = state;
	struct json_path r;
	size_t idx[1];
	if (kpath_prefix(p, "spec.template.spec.containers.#", idx, &r)) {
		if (idx[0] == 0)
			deployment_container(d, b, p, &r, type, s, len);
	} else if (kpath_match(p, "spec.template.metadata.labels.*", NULL)) {
		kd_label(d, &b->template_labels, p, type, s, len);
	} else if (kpath_match(p, "spec.template.metadata.annotations.*", NULL)) {
		kd_label(d, &b->template_annotations, p, type, s, len);
	} else if (kpath_match(p, "spec.template.spec.schedulerName", NULL)) {
		kd_string(d, p, type, s, len, &b->scheduler_name);
	} else if (kpath_match(p, "spec.replicas", NULL)) {
		kd_int(d, p, type, s, len, &b->replicas);
	} else if (kpath_match(p, "status.replicas", NULL)) {
		kd_int(d, p, type, s, len, &b->status_replicas);
	} else if (kpath_match(p, "status.readyReplicas", NULL)) {
		kd_int(d, p, type, s, len, &b->ready_replicas);
	} else if (kpath_match(p, "status.availableReplicas", NULL)) {
		kd_int(d, p, type, s, len, &b->available_replicas);
	} else if (kpath_match(p, "status.updatedReplicas", NULL)) {
		kd_int(d, p, type, s, len, &b->updated_replicas);
	} else if (kpath_match(p, "status.observedGeneration", NULL)) {
		kd_int(d, p, type, s, len, &b->observed_generation);
	} else if (kpath_prefix(p, "status.conditions.#", idx, &r)) {
		kd_condition(d, &b->conditions, idx[0], &r, p, type, s, len);
	}
}

static void deployment_layout_quantity(struct kalloc *a, struct kquantity *dst,
                                       const struct deployment_quantity *src)
{
	dst->raw = ka_str(a, src->raw);
	dst->value = src->value;
}

static struct kobj *deployment_end(struct kdecode *d, void *state, struct kalloc *a)
{
	(void)d;
	struct deployment_state *b = state;
	struct kdeployment *o = ka_object(a, sizeof(*o));
	if (!o)
		return NULL;
	o->replicas = b->replicas;
	o->scheduler_name = ka_str(a, b->scheduler_name);
	o->template_labels = ka_labels(a, &b->template_labels, &o->ntemplate_labels);
	o->template_annotations = ka_labels(a, &b->template_annotations, &o->ntemplate_annotations);
	o->container_name = ka_str(a, b->container_name);
	o->container_image = ka_str(a, b->container_image);
	deployment_layout_quantity(a, &o->cpu_request, &b->cpu_request);
	deployment_layout_quantity(a, &o->memory_request, &b->memory_request);
	deployment_layout_quantity(a, &o->cpu_limit, &b->cpu_limit);
	deployment_layout_quantity(a, &o->memory_limit, &b->memory_limit);
	o->status_replicas = b->status_replicas;
	o->ready_replicas = b->ready_replicas;
	o->available_replicas = b->available_replicas;
	o->updated_replicas = b->updated_replicas;
	o->observed_generation = b->observed_generation;

	o->conditions = ka_conditions(a, &b->conditions, &o->nconditions);
	if (b->conditions.n && !o->conditions)
		return NULL;
	return &o->meta;
}

const struct kind kind_deployment = {
	.name = "Deployment",
	.api_version = "apps/v1",
	.path = "/apis/apps/v1",
	.plural = "deployments",
	.namespaced = 1,
	.destroy = kind_destroy_block,
	.state_size = sizeof(struct deployment_state),
	.begin = deployment_begin,
	.value = deployment_value,
	.end = deployment_end,
};
