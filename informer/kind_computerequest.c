/* ComputeRequest (nimbus.io/v1): a tenant's request for a workload. */
#include <stdarg.h>
#include <stdio.h>

#include "kinds_internal.h"
#include "quantity.h"

struct cr_quantity {
	const char *raw;
	int64_t value;
};

struct cr_state {
	const char *tenant_id, *image, *scheduler_name, *phase;
	struct cr_quantity cpu, memory;
	int64_t replicas;
	int has_autoscaling;
	int64_t min_replicas, max_replicas, target_cpu_percent, target_memory_percent;
	int64_t observed_generation, status_replicas, ready_replicas;
	int has_as_status;
	int64_t as_current, as_desired, as_cpu, as_memory;
	const char *as_last_scale, *as_reason;
	struct klabels pod_annotations;
	struct kvec conditions; /* of struct kcondition_scratch */
	const char *validation_error; /* first problem in the spec */
};

static void cr_begin(void *state)
{
	struct cr_state *b = state;
	b->cpu.value = b->memory.value = -1;
	b->replicas = -1;
	b->min_replicas = b->max_replicas = -1;
	b->target_cpu_percent = b->target_memory_percent = -1;
	b->as_current = b->as_desired = b->as_cpu = b->as_memory = -1;
}

static void cr_invalid(struct kdecode *d, struct cr_state *b, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cr_invalid(struct kdecode *d, struct cr_state *b, const char *fmt, ...)
{
	if (b->validation_error)
		return;
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	b->validation_error = kd_strdup(d, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

static void cr_string(struct kdecode *d, struct cr_state *b, const struct json_path *p,
                      enum json_type type, const char *s, size_t len, const char **out)
{
	if (type == JSON_STRING)
		*out = kd_strdup(d, s, len);
	else
		cr_invalid(d, b, "%s must be a string", kd_path_text(d, p));
}

static void cr_int(struct kdecode *d, struct cr_state *b, const struct json_path *p,
                   enum json_type type, const char *s, size_t len, int64_t *out)
{
	int64_t v;
	if (kparse_int(type, s, len, &v) == 0 && v >= 0)
		*out = v;
	else
		cr_invalid(d, b, "%s must be a non-negative integer", kd_path_text(d, p));
}

static void cr_quantity(struct kdecode *d, struct cr_state *b, const struct json_path *p,
                        enum json_type type, const char *s, size_t len, int milli, struct cr_quantity *q)
{
	if (type != JSON_STRING && type != JSON_NUMBER) {
		cr_invalid(d, b, "%s must be a quantity string such as \"%s\"", kd_path_text(d, p),
		           milli ? "500m" : "512Mi");
		return;
	}
	q->raw = kd_strdup(d, s, len);
	struct kerr qe = {0};
	int64_t v;
	int rc = milli ? quantity_parse_milli(s, len, &v, &qe) : quantity_parse_value(s, len, &v, &qe);
	if (rc < 0)
		cr_invalid(d, b, "%s: %s", kd_path_text(d, p), qe.message);
	else if (v <= 0)
		cr_invalid(d, b, "%s must be positive, got \"%.*s\"", kd_path_text(d, p), (int)(len > 64 ? 64 : len), s);
	else
		q->value = v;
}

static void cr_value(struct kdecode *d, void *state, const struct json_path *p,
                     enum json_type type, const char *s, size_t len)
{
	struct cr_state *b = state;
	struct json_path r;
	size_t idx[1];
	if (kpath_prefix(p, "spec.autoscaling", NULL, &r)) {
		b->has_autoscaling = 1;
		if (r.depth == 0 && type != JSON_OBJECT)
			cr_invalid(d, b, "spec.autoscaling must be an object");
		else if (kpath_match(&r, "minReplicas", NULL))
			cr_int(d, b, p, type, s, len, &b->min_replicas);
		else if (kpath_match(&r, "maxReplicas", NULL))
			cr_int(d, b, p, type, s, len, &b->max_replicas);
		else if (kpath_match(&r, "targetCPUUtilizationPercentage", NULL))
			cr_int(d, b, p, type, s, len, &b->target_cpu_percent);
		else if (kpath_match(&r, "targetMemoryUtilizationPercentage", NULL))
			cr_int(d, b, p, type, s, len, &b->target_memory_percent);
		/* Checked as soon as both bounds are known: end() must stay pure. */
		if (b->min_replicas >= 0 && b->max_replicas >= 0 && b->min_replicas > b->max_replicas)
			cr_invalid(d, b, "spec.autoscaling.minReplicas (%lld) exceeds maxReplicas (%lld)",
			           (long long)b->min_replicas, (long long)b->max_replicas);
	} else if (kpath_match(p, "spec.tenantId", NULL)) {
		cr_string(d, b, p, type, s, len, &b->tenant_id);
	} else if (kpath_match(p, "spec.image", NULL)) {
		cr_string(d, b, p, type, s, len, &b->image);
	} else if (kpath_match(p, "spec.schedulerName", NULL)) {
		cr_string(d, b, p, type, s, len, &b->scheduler_name);
	} else if (kpath_match(p, "spec.cpu", NULL)) {
		cr_quantity(d, b, p, type, s, len, 1, &b->cpu);
	} else if (kpath_match(p, "spec.memory", NULL)) {
		cr_quantity(d, b, p, type, s, len, 0, &b->memory);
	} else if (kpath_match(p, "spec.replicas", NULL)) {
		cr_int(d, b, p, type, s, len, &b->replicas);
	} else if (kpath_match(p, "status.observedGeneration", NULL)) {
		kd_int(d, p, type, s, len, &b->observed_generation);
	} else if (kpath_match(p, "status.phase", NULL)) {
		kd_string(d, p, type, s, len, &b->phase);
	} else if (kpath_match(p, "spec.podAnnotations.*", NULL)) {
		if (type == JSON_STRING)
			kd_label(d, &b->pod_annotations, p, type, s, len);
		else
			cr_invalid(d, b, "%s must be a string", kd_path_text(d, p));
	} else if (kpath_match(p, "status.replicas", NULL)) {
		kd_int(d, p, type, s, len, &b->status_replicas);
	} else if (kpath_match(p, "status.readyReplicas", NULL)) {
		kd_int(d, p, type, s, len, &b->ready_replicas);
	} else if (kpath_prefix(p, "status.autoscaling", NULL, &r)) {
		b->has_as_status = 1;
		if (kpath_match(&r, "currentReplicas", NULL))
			kd_int(d, p, type, s, len, &b->as_current);
		else if (kpath_match(&r, "desiredReplicas", NULL))
			kd_int(d, p, type, s, len, &b->as_desired);
		else if (kpath_match(&r, "currentCPUUtilizationPercentage", NULL))
			kd_int(d, p, type, s, len, &b->as_cpu);
		else if (kpath_match(&r, "currentMemoryUtilizationPercentage", NULL))
			kd_int(d, p, type, s, len, &b->as_memory);
		else if (kpath_match(&r, "lastScaleTime", NULL))
			kd_string(d, p, type, s, len, &b->as_last_scale);
		else if (kpath_match(&r, "reason", NULL))
			kd_string(d, p, type, s, len, &b->as_reason);
	} else if (kpath_prefix(p, "status.conditions.#", idx, &r)) {
		kd_condition(d, &b->conditions, idx[0], &r, p, type, s, len);
	}
}

static struct kobj *cr_end(struct kdecode *d, void *state, struct kalloc *a)
{
	(void)d;
	struct cr_state *b = state;
	struct kcomputerequest *o = ka_object(a, sizeof(*o));
	if (!o)
		return NULL;
	o->tenant_id = ka_str(a, b->tenant_id);
	o->image = ka_str(a, b->image);
	o->scheduler_name = ka_str(a, b->scheduler_name);
	o->cpu.raw = ka_str(a, b->cpu.raw);
	o->cpu.value = b->cpu.value;
	o->memory.raw = ka_str(a, b->memory.raw);
	o->memory.value = b->memory.value;
	o->replicas = b->replicas;
	o->has_autoscaling = b->has_autoscaling;
	o->min_replicas = b->min_replicas;
	o->max_replicas = b->max_replicas;
	o->target_cpu_percent = b->target_cpu_percent;
	o->target_memory_percent = b->target_memory_percent;
	o->observed_generation = b->observed_generation;
	o->phase = ka_str(a, b->phase);
	o->status_replicas = b->status_replicas;
	o->ready_replicas = b->ready_replicas;
	o->pod_annotations = ka_labels(a, &b->pod_annotations, &o->npod_annotations);
	o->conditions = ka_conditions(a, &b->conditions, &o->nconditions);
	if (b->conditions.n && !o->conditions)
		return NULL;
	o->has_autoscaling_status = b->has_as_status;
	o->as_current_replicas = b->as_current;
	o->as_desired_replicas = b->as_desired;
	o->as_cpu_percent = b->as_cpu;
	o->as_memory_percent = b->as_memory;
	o->as_last_scale_time = ka_str(a, b->as_last_scale);
	o->as_reason = ka_str(a, b->as_reason);
	o->validation_error = ka_str(a, b->validation_error);
	return &o->meta;
}

const struct kind kind_computerequest = {
	.name = "ComputeRequest",
	.api_version = "nimbus.io/v1",
	.path = "/apis/nimbus.io/v1",
	.plural = "computerequests",
	.namespaced = 1,
	.destroy = kind_destroy_block,
	.state_size = sizeof(struct cr_state),
	.begin = cr_begin,
	.value = cr_value,
	.end = cr_end,
};
