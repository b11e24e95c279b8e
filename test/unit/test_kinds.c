#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"
#include "kintern.h"
#include "kobj.h"

#ifndef FIXTURES
#error "FIXTURES must name the fixture directory"
#endif

static char *fixture(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", FIXTURES, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static struct kobj *decode_fixture(const struct kind *k, const char *name)
{
	size_t len;
	char *json = fixture(name, &len);
	struct kobj *o = NULL;
	struct kerr e = {0};
	int rc = kind_decode_json(k, json, len, &o, &e);
	free(json);
	if (rc != 0)
		fail_msg("decoding %s: %s", name, e.message);
	assert_non_null(o);
	assert_ptr_equal(o->kind, k);
	assert_int_equal(atomic_load(&o->refs), 1);
	return o;
}

/* The object and everything it points to live in its one block, but for
 * strings shared with other objects (kintern.h). */
static void assert_in_block(const struct kobj *o, const void *p)
{
	const char *c = p, *base = (const char *)o;
	if (c && !(c == (const char *)"" || (c >= base && c < base + o->size)) && *(const char *)p != '\0' &&
	    !kintern_holds(c))
		fail_msg("pointer %p outside the object's block [%p, +%zu)", p, (const void *)base, o->size);
}

static void assert_meta_in_block(const struct kobj *o)
{
	assert_in_block(o, o->key);
	assert_in_block(o, o->ns);
	assert_in_block(o, o->name);
	assert_in_block(o, o->uid);
	assert_in_block(o, o->resource_version);
	assert_in_block(o, o->labels);
	for (size_t i = 0; i < o->nlabels; i++) {
		assert_in_block(o, o->labels[i].key);
		assert_in_block(o, o->labels[i].value);
		if (i > 0)
			assert_true(strcmp(o->labels[i - 1].key, o->labels[i].key) < 0);
	}
	assert_in_block(o, o->owners);
	for (size_t i = 0; i < o->nowners; i++) {
		assert_in_block(o, o->owners[i].name);
		assert_in_block(o, o->owners[i].uid);
		assert_in_block(o, o->owners[i].kind);
		assert_in_block(o, o->owners[i].api_version);
	}
}

static void decodes_typical_pod(void **state)
{
	(void)state;
	struct kobj *o = decode_fixture(&kind_pod, "pod.json");
	const struct kpod *p = (const struct kpod *)o;
	assert_string_equal(o->key, "tenant-acme/web-7d4b9c8f6d-x2x9z");
	assert_string_equal(o->ns, "tenant-acme");
	assert_string_equal(o->name, "web-7d4b9c8f6d-x2x9z");
	assert_string_equal(o->uid, "5f0c3a8e-2b1d-4c6e-9a7f-1d2e3f4a5b6c");
	assert_string_equal(o->resource_version, "184467");
	assert_int_equal(o->generation, 0);
	assert_int_equal(o->created, 1709630127);
	assert_int_equal(o->deleted, 0);
	assert_int_equal(o->nlabels, 3);
	assert_string_equal(o->labels[0].key, "app");
	assert_string_equal(o->labels[1].key, "nimbus.io/tenant");
	assert_string_equal(o->labels[2].key, "pod-template-hash");
	assert_string_equal(kobj_label(o, "nimbus.io/tenant"), "acme");
	assert_string_equal(kobj_label(o, "pod-template-hash"), "7d4b9c8f6d");
	assert_null(kobj_label(o, "missing"));
	const struct kobj_owner *c = kobj_controller(o);
	assert_non_null(c);
	assert_string_equal(c->kind, "ReplicaSet");
	assert_string_equal(c->name, "web-7d4b9c8f6d");
	assert_string_equal(c->api_version, "apps/v1");
	assert_string_equal(c->uid, "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d");

	assert_string_equal(p->node_name, "worker-2");
	assert_string_equal(p->scheduler_name, "nimbus-scheduler");
	assert_string_equal(p->image, "registry.example.com/acme/web:1.4.2");
	assert_int_equal(p->requests.cpu_milli, 250);
	assert_int_equal(p->requests.memory, 256 << 20);
	assert_int_equal(p->limits.cpu_milli, 1000);
	assert_int_equal(p->limits.memory, 512 << 20);
	assert_int_equal(p->priority, 0);
	assert_int_equal(p->phase, KPOD_RUNNING);
	assert_int_equal(p->start_time, 1709630127);
	assert_int_equal(p->ready, KCOND_TRUE);
	assert_int_equal(p->scheduled, KCOND_TRUE);
	assert_string_equal(p->ready_reason, "");
	assert_int_equal(p->ntolerations, 2);
	assert_string_equal(p->tolerations[0].key, "node.kubernetes.io/not-ready");
	assert_int_equal(p->tolerations[0].op, KTOL_EXISTS);
	assert_int_equal(p->tolerations[0].effect, KEFFECT_NO_EXECUTE);
	assert_int_equal(p->tolerations[0].seconds, 300);
	assert_string_equal(p->tolerations[1].key, "node.kubernetes.io/unreachable");
	assert_int_equal(p->nnode_selector, 0);
	assert_int_equal(p->naffinity_terms, 0);

	assert_meta_in_block(o);
	assert_in_block(o, p->node_name);
	assert_in_block(o, p->image);
	assert_in_block(o, p->tolerations);
	assert_in_block(o, p->tolerations[1].key);
	/* The memory target: a typical pod costs at most 1 KiB in the cache. */
	print_message("typical pod: %zu bytes in its own allocation\n", kobj_size(o));
	assert_true(kobj_size(o) <= 1024);
	assert_true(kobj_size(o) >= sizeof(struct kpod));

	assert_ptr_equal(kobj_ref(o), o);
	assert_int_equal(atomic_load(&o->refs), 2);
	kobj_unref(o);
	assert_int_equal(atomic_load(&o->refs), 1);
	kobj_unref(o);
	kobj_unref(NULL);
	assert_null(kobj_ref(NULL));
	assert_int_equal(kobj_size(NULL), 0);
}

/* Strings pods repeat are one shared copy, released with the last pod. */
static void pods_share_repeated_strings(void **state)
{
	(void)state;
	size_t before = kintern_count();
	struct kobj *a = decode_fixture(&kind_pod, "pod.json");
	struct kobj *b = decode_fixture(&kind_pod, "pod.json");
	const struct kpod *pa = (const struct kpod *)a, *pb = (const struct kpod *)b;
	assert_true(kintern_count() > before);
	assert_ptr_equal(a->ns, b->ns);
	assert_ptr_equal(a->labels[0].key, b->labels[0].key);
	assert_ptr_equal(a->labels[0].value, b->labels[0].value);
	assert_ptr_equal(a->owners[0].kind, b->owners[0].kind);
	assert_ptr_equal(pa->image, pb->image);
	assert_ptr_equal(pa->node_name, pb->node_name);
	assert_ptr_equal(pa->scheduler_name, pb->scheduler_name);
	assert_ptr_equal(pa->tolerations[1].key, pb->tolerations[1].key);
	/* Per-object strings stay in each block. */
	assert_ptr_not_equal(a->uid, b->uid);
	assert_false(kintern_holds(a->uid));
	kobj_unref(a);
	assert_true(kintern_holds(pb->image));
	kobj_unref(b);
	assert_int_equal(kintern_count(), before);
}

static void decodes_pod_scheduling_fields(void **state)
{
	(void)state;
	struct kobj *o = decode_fixture(&kind_pod, "pod_complex.json");
	const struct kpod *p = (const struct kpod *)o;
	assert_string_equal(o->key, "tenant-zeta/trainer-0");
	assert_int_equal(o->generation, 1);
	assert_int_equal(o->created, 1709247599); /* +01:00 offset applied */
	assert_int_equal(o->deleted, 1709251230); /* fraction dropped */
	assert_string_equal(o->labels[0].key, "aa");
	assert_string_equal(o->labels[2].value, "last");
	assert_null(kobj_controller(o));
	assert_string_equal(p->image, "ghcr.io/zeta/train:2");
	/* Apps 1600m + sidecar 100m = 1700m < init step 2000m; memory: the last
	 * init container runs beside the sidecar, 2Gi + 64Mi; plus overhead. */
	assert_int_equal(p->requests.cpu_milli, 2010);
	assert_int_equal(p->requests.memory, 2215641088);
	assert_int_equal(p->limits.cpu_milli, 2010);
	assert_int_equal(p->limits.memory, 3222274048);
	assert_int_equal(p->priority, 1000000);
	assert_int_equal(p->phase, KPOD_PENDING);
	assert_int_equal(p->ready, KCOND_ABSENT);
	assert_int_equal(p->scheduled, KCOND_FALSE);
	assert_string_equal(p->scheduled_reason, "Unschedulable");
	assert_string_equal(p->node_name, "");
	assert_string_equal(p->scheduler_name, "");

	assert_int_equal(p->nnode_selector, 2);
	assert_string_equal(p->node_selector[0].key, "disktype");
	assert_string_equal(p->node_selector[1].key, "kubernetes.io/os");
	assert_string_equal(p->node_selector[1].value, "linux");

	assert_int_equal(p->ntolerations, 2);
	assert_string_equal(p->tolerations[0].key, "");
	assert_int_equal(p->tolerations[0].op, KTOL_EXISTS);
	assert_int_equal(p->tolerations[0].effect, KEFFECT_ANY);
	assert_int_equal(p->tolerations[0].seconds, -1);
	assert_string_equal(p->tolerations[1].key, "dedicated");
	assert_string_equal(p->tolerations[1].value, "ml");
	assert_int_equal(p->tolerations[1].op, KTOL_EQUAL);
	assert_int_equal(p->tolerations[1].effect, KEFFECT_NO_SCHEDULE);

	assert_int_equal(p->naffinity_terms, 2);
	const struct kselector_term *t = &p->affinity_terms[0];
	assert_int_equal(t->nreqs, 2);
	assert_int_equal(t->nfields, 0);
	assert_string_equal(t->reqs[0].key, "topology.kubernetes.io/zone");
	assert_int_equal(t->reqs[0].op, KSEL_IN);
	assert_int_equal(t->reqs[0].nvalues, 2);
	assert_string_equal(t->reqs[0].values[1], "eu-1b");
	assert_string_equal(t->reqs[1].key, "gpu");
	assert_int_equal(t->reqs[1].op, KSEL_DOES_NOT_EXIST);
	assert_int_equal(t->reqs[1].nvalues, 0);
	t = &p->affinity_terms[1];
	assert_int_equal(t->nreqs, 0);
	assert_int_equal(t->nfields, 1);
	assert_string_equal(t->fields[0].key, "metadata.name");
	assert_string_equal(t->fields[0].values[0], "worker-9");
	assert_in_block(o, t->fields[0].values);
	assert_in_block(o, t->fields[0].values[0]);
	kobj_unref(o);
}

static void decodes_node(void **state)
{
	(void)state;
	struct kobj *o = decode_fixture(&kind_node, "node.json");
	const struct knode *n = (const struct knode *)o;
	assert_string_equal(o->key, "worker-2");
	assert_string_equal(o->name, "worker-2");
	assert_string_equal(o->ns, "");
	assert_int_equal(o->nlabels, 4);
	assert_string_equal(kobj_label(o, "topology.kubernetes.io/zone"), "eu-1a");
	assert_int_equal(n->allocatable.cpu_milli, 7800);
	assert_int_equal(n->allocatable.memory, 16080564224);
	assert_int_equal(n->allocatable.pods, 110);
	assert_int_equal(n->capacity.cpu_milli, 8000);
	assert_int_equal(n->capacity.memory, 16697126912);
	assert_int_equal(n->capacity.pods, 110);
	assert_true(n->unschedulable);
	assert_int_equal(n->ready, KCOND_TRUE);
	assert_int_equal(n->ntaints, 2);
	assert_string_equal(n->taints[0].key, "node.kubernetes.io/unschedulable");
	assert_string_equal(n->taints[0].value, "");
	assert_int_equal(n->taints[0].effect, KEFFECT_NO_SCHEDULE);
	assert_string_equal(n->taints[1].value, "ml");
	assert_int_equal(n->taints[1].effect, KEFFECT_PREFER_NO_SCHEDULE);
	assert_meta_in_block(o);
	kobj_unref(o);

	/* Absent resources read -1; a node with no conditions is not Ready. */
	const char *bare = "{\"metadata\":{\"name\":\"n1\"},\"status\":{\"capacity\":{\"cpu\":\"4\"}}}";
	struct kerr e = {0};
	assert_int_equal(kind_decode_json(&kind_node, bare, strlen(bare), &o, &e), 0);
	n = (const struct knode *)o;
	assert_int_equal(n->capacity.cpu_milli, 4000);
	assert_int_equal(n->capacity.memory, -1);
	assert_int_equal(n->allocatable.cpu_milli, -1);
	assert_int_equal(n->ready, KCOND_ABSENT);
	assert_false(n->unschedulable);
	kobj_unref(o);
}

static void decodes_namespace(void **state)
{
	(void)state;
	struct kobj *o = decode_fixture(&kind_namespace, "namespace.json");
	assert_string_equal(o->key, "tenant-acme");
	assert_int_equal(((const struct knamespace *)o)->phase, KNS_TERMINATING);
	assert_int_equal(o->deleted, 1709726400);
	assert_string_equal(kobj_label(o, "nimbus.io/tenant"), "acme");
	kobj_unref(o);
}

static void decodes_deployment(void **state)
{
	(void)state;
	struct kobj *o = decode_fixture(&kind_deployment, "deployment.json");
	const struct kdeployment *d = (const struct kdeployment *)o;
	assert_string_equal(o->key, "tenant-acme/web");
	assert_int_equal(o->generation, 4);
	assert_string_equal(kobj_controller(o)->kind, "ComputeRequest");
	assert_int_equal(d->replicas, 3);
	assert_string_equal(d->scheduler_name, "nimbus-scheduler");
	assert_int_equal(d->ntemplate_labels, 2);
	assert_string_equal(d->template_labels[0].key, "app");
	assert_string_equal(d->template_labels[1].value, "acme");
	assert_int_equal(d->ntemplate_annotations, 1);
	assert_string_equal(d->template_annotations[0].value, "100m");
	assert_string_equal(d->container_name, "web");
	assert_string_equal(d->container_image, "registry.example.com/acme/web:1.4.2");
	assert_string_equal(d->cpu_request.raw, "250m");
	assert_int_equal(d->cpu_request.value, 250);
	assert_string_equal(d->memory_request.raw, "256Mi");
	assert_int_equal(d->memory_request.value, 268435456);
	assert_string_equal(d->cpu_limit.raw, "1");
	assert_int_equal(d->cpu_limit.value, 1000);
	assert_string_equal(d->memory_limit.raw, "512Mi");
	assert_int_equal(d->memory_limit.value, 536870912);
	assert_int_equal(d->status_replicas, 3);
	assert_int_equal(d->ready_replicas, 2);
	assert_int_equal(d->available_replicas, 2);
	assert_int_equal(d->updated_replicas, 3);
	assert_int_equal(d->observed_generation, 4);
	assert_int_equal(d->nconditions, KCONDITIONS_MAX);
	assert_string_equal(d->conditions[0].type, "Available");
	assert_int_equal(d->conditions[0].status, KCOND_FALSE);
	assert_string_equal(d->conditions[0].reason, "MinimumReplicasUnavailable");
	assert_string_equal(d->conditions[1].message, "ReplicaSet \"web-7d4b9c8f6d\" is progressing.");
	assert_int_equal(d->conditions[2].status, KCOND_UNKNOWN);
	assert_string_equal(d->conditions[3].type, "X2");
	assert_in_block(o, d->conditions[1].message);
	kobj_unref(o);

	/* replicas defaults to 1; absent quantities read "" and -1. */
	const char *bare = "{\"metadata\":{\"name\":\"w\",\"namespace\":\"n\"},\"spec\":{\"template\":{\"spec\":"
	                   "{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}}}";
	struct kerr e = {0};
	assert_int_equal(kind_decode_json(&kind_deployment, bare, strlen(bare), &o, &e), 0);
	d = (const struct kdeployment *)o;
	assert_int_equal(d->replicas, 1);
	assert_string_equal(d->cpu_request.raw, "");
	assert_int_equal(d->cpu_request.value, -1);
	assert_int_equal(d->memory_limit.value, -1);
	assert_int_equal(d->nconditions, 0);
	assert_null(d->conditions);
	kobj_unref(o);
}

static void decodes_resourcequota(void **state)
{
	(void)state;
	struct kobj *o = decode_fixture(&kind_resourcequota, "resourcequota.json");
	const struct kresourcequota *q = (const struct kresourcequota *)o;
	assert_string_equal(o->key, "tenant-acme/tenant-quota");
	assert_int_equal(q->hard.requests_cpu_milli, 4000);
	assert_int_equal(q->hard.requests_memory, (int64_t)8 << 30);
	assert_int_equal(q->hard.limits_cpu_milli, 8000);
	assert_int_equal(q->hard.limits_memory, (int64_t)16 << 30);
	assert_int_equal(q->hard.pods, 20);
	/* status.used says "cpu"/"memory", the same values as requests.*. */
	assert_int_equal(q->used.requests_cpu_milli, 750);
	assert_int_equal(q->used.requests_memory, (int64_t)768 << 20);
	assert_int_equal(q->used.limits_cpu_milli, 3000);
	assert_int_equal(q->used.limits_memory, -1);
	assert_int_equal(q->used.pods, 3);
	kobj_unref(o);
}

static void decodes_computerequest(void **state)
{
	(void)state;
	struct kobj *o = decode_fixture(&kind_computerequest, "computerequest.json");
	const struct kcomputerequest *c = (const struct kcomputerequest *)o;
	assert_string_equal(o->key, "tenant-acme/web");
	assert_int_equal(o->generation, 2);
	assert_string_equal(c->tenant_id, "acme");
	assert_string_equal(c->image, "registry.example.com/acme/web:1.4.2");
	assert_string_equal(c->cpu.raw, "250m");
	assert_int_equal(c->cpu.value, 250);
	assert_string_equal(c->memory.raw, "256Mi");
	assert_int_equal(c->memory.value, 268435456);
	assert_int_equal(c->replicas, 3);
	assert_string_equal(c->scheduler_name, "nimbus-scheduler");
	assert_true(c->has_autoscaling);
	assert_int_equal(c->min_replicas, 2);
	assert_int_equal(c->max_replicas, 10);
	assert_int_equal(c->target_cpu_percent, 70);
	assert_int_equal(c->target_memory_percent, 80);
	assert_int_equal(c->observed_generation, 1);
	assert_string_equal(c->phase, "Running");
	assert_int_equal(c->status_replicas, 3);
	assert_int_equal(c->ready_replicas, 2);
	assert_int_equal(c->nconditions, 1);
	assert_string_equal(c->conditions[0].type, "Ready");
	assert_int_equal(c->conditions[0].status, KCOND_TRUE);
	assert_string_equal(c->conditions[0].reason, "AllReplicasReady");
	assert_string_equal(c->conditions[0].last_transition, "2024-03-05T09:01:00Z");
	assert_int_equal(c->npod_annotations, 2);
	assert_string_equal(c->pod_annotations[0].key, "example.com/team");
	assert_string_equal(c->pod_annotations[1].key, "kwok.x-k8s.io/usage-cpu");
	assert_string_equal(c->pod_annotations[1].value, "150m");
	assert_string_equal(c->validation_error, "");
	kobj_unref(o);
}

static const struct kcomputerequest *decode_cr(const char *spec, struct kobj **o)
{
	char json[1024];
	snprintf(json, sizeof(json), "{\"kind\":\"ComputeRequest\",\"metadata\":{\"name\":\"x\",\"namespace\":\"t\"},"
	                             "\"spec\":%s}", spec);
	struct kerr e = {0};
	int rc = kind_decode_json(&kind_computerequest, json, strlen(json), o, &e);
	if (rc != 0)
		fail_msg("a bad spec must not fail the decode: %s", e.message);
	return (const struct kcomputerequest *)*o;
}

static void computerequest_records_validation_errors(void **state)
{
	(void)state;
	struct kobj *o;
	const struct kcomputerequest *c = decode_cr("{\"tenantId\":\"a\",\"cpu\":\"lots\",\"memory\":\"1Gi\"}", &o);
	assert_non_null(strstr(c->validation_error, "spec.cpu"));
	assert_non_null(strstr(c->validation_error, "\"lots\""));
	assert_string_equal(c->cpu.raw, "lots");
	assert_int_equal(c->cpu.value, -1);
	assert_int_equal(c->memory.value, (int64_t)1 << 30);
	assert_int_equal(c->replicas, -1);
	assert_false(c->has_autoscaling);
	assert_int_equal(c->min_replicas, -1);
	kobj_unref(o);

	c = decode_cr("{\"replicas\":\"3\",\"memory\":1073741824}", &o);
	assert_non_null(strstr(c->validation_error, "spec.replicas must be a non-negative integer"));
	assert_int_equal(c->replicas, -1);
	assert_string_equal(c->memory.raw, "1073741824");
	assert_int_equal(c->memory.value, 1073741824);
	kobj_unref(o);

	c = decode_cr("{\"autoscaling\":{\"maxReplicas\":2,\"minReplicas\":5}}", &o);
	assert_non_null(strstr(c->validation_error, "minReplicas (5) exceeds maxReplicas (2)"));
	assert_true(c->has_autoscaling);
	kobj_unref(o);

	c = decode_cr("{\"cpu\":\"-1\",\"image\":7}", &o);
	/* The first problem is the one reported. */
	assert_non_null(strstr(c->validation_error, "spec.cpu must be positive"));
	assert_string_equal(c->image, "");
	kobj_unref(o);
}

static void decodes_status(void **state)
{
	(void)state;
	size_t len;
	char *json = fixture("status_410.json", &len);
	struct kstatus st;
	struct kerr e = {0};
	assert_int_equal(kstatus_decode_json(json, len, &st, &e), 0);
	assert_int_equal(st.code, 410);
	assert_string_equal(st.status, "Failure");
	assert_string_equal(st.reason, "Expired");
	assert_string_equal(st.message, "too old resource version: 184000 (184467)");
	free(json);
	/* Oversized fields are truncated, wrong types ignored. */
	char big[2048];
	int n = snprintf(big, sizeof(big), "{\"code\":\"x\",\"reason\":\"");
	memset(big + n, 'r', 100);
	n += 100;
	n += snprintf(big + n, sizeof(big) - (size_t)n, "\",\"message\":7}");
	assert_int_equal(kstatus_decode_json(big, (size_t)n, &st, &e), 0);
	assert_int_equal(st.code, 0);
	assert_int_equal(strlen(st.reason), sizeof(st.reason) - 1);
	assert_string_equal(st.message, "");
	assert_int_equal(kstatus_decode_json("[1]", 3, &st, &e), KERR_PARSE);
}

static void expect_error(const struct kind *k, const char *json, const char *needle)
{
	struct kobj *o = (struct kobj *)1;
	struct kerr e = {0};
	int rc = kind_decode_json(k, json, strlen(json), &o, &e);
	if (rc != KERR_PARSE || e.code != KERR_PARSE || o != NULL || !strstr(e.message, needle))
		fail_msg("%s: rc %d, message \"%s\"; want KERR_PARSE mentioning \"%s\"", json, rc, e.message, needle);
}

static void rejects_bad_objects(void **state)
{
	(void)state;
	expect_error(&kind_pod, "{\"metadata\":{\"namespace\":\"a\"}}", "Pod object has no metadata.name");
	expect_error(&kind_pod, "{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"}}", "expected a Pod object, got kind \"Node\"");
	expect_error(&kind_pod, "{\"metadata\":{\"name\":5}}", "metadata.name: expected a string, got a number");
	expect_error(&kind_pod, "{\"metadata\":{\"name\":\"a\",\"creationTimestamp\":\"yesterday\"}}",
	             "metadata.creationTimestamp: expected an RFC 3339 time");
	expect_error(&kind_pod, "{\"metadata\":{\"name\":\"a\",\"creationTimestamp\":\"2024-02-30T00:00:00Z\"}}",
	             "RFC 3339");
	expect_error(&kind_pod,
	             "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"2 cores\"}}}]}}",
	             "spec.containers[0].resources.requests.cpu: invalid quantity \"2 cores\"");
	expect_error(&kind_pod, "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"priority\":1.5}}", "spec.priority: expected a 64-bit integer");
	expect_error(&kind_pod, "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"priority\":4294967296}}", "32-bit");
	expect_error(&kind_node, "{\"metadata\":{\"name\":\"a\"},\"spec\":{\"unschedulable\":\"yes\"}}", "expected a boolean");
	expect_error(&kind_pod, "[]", "expected a JSON object");
	expect_error(&kind_pod, "{\"metadata\":{\"name\":\"a\"}} {}", "more data");
	expect_error(&kind_pod, "  ", "empty document");
	expect_error(&kind_pod, "{\"metadata\":{\"name\":\"a\"}", "premature EOF");
	/* null is absent, unknown fields are ignored. */
	struct kobj *o;
	const char *ok = "{\"metadata\":{\"name\":\"a\",\"namespace\":null,\"labels\":null,\"x\":{\"y\":[1]}},"
	                 "\"spec\":null,\"novel\":[{\"deep\":{\"er\":true}}]}";
	assert_int_equal(kind_decode_json(&kind_pod, ok, strlen(ok), &o, NULL), 0);
	assert_string_equal(o->key, "a");
	assert_string_equal(o->ns, "");
	kobj_unref(o);
}

static void every_truncation_fails_cleanly(void **state)
{
	(void)state;
	size_t len;
	char *json = fixture("pod_complex.json", &len);
	size_t end = len;
	while (end > 0 && json[end - 1] != '}')
		end--;
	for (size_t n = 0; n < end; n++) {
		struct kobj *o = (struct kobj *)1;
		struct kerr e = {0};
		int rc = kind_decode_json(&kind_pod, json, n, &o, &e);
		if (rc != KERR_PARSE || o != NULL)
			fail_msg("prefix of %zu bytes: rc %d", n, rc);
	}
	struct kobj *o;
	assert_int_equal(kind_decode_json(&kind_pod, json, end, &o, NULL), 0);
	kobj_unref(o);
	free(json);
}

static void decoder_is_reusable(void **state)
{
	(void)state;
	struct kerr e = {0};
	struct kdecode *d = kdecode_new(&kind_pod, &e);
	assert_non_null(d);
	assert_ptr_equal(kdecode_kind(d), &kind_pod);
	struct json_seg seg[2] = {{"metadata", 8, 0}, {"name", 4, 0}};
	struct json_path p = {2, seg};
	struct kobj *o;
	/* A failed object leaves nothing behind for the next one. */
	kdecode_begin(d);
	seg[1] = (struct json_seg){"generation", 10, 0};
	kdecode_value(d, &p, JSON_STRING, "x", 1);
	assert_int_equal(kdecode_end(d, &o, &e), KERR_PARSE);
	assert_null(o);
	for (int i = 0; i < 3; i++) {
		char name[16];
		int n = snprintf(name, sizeof(name), "pod-%d", i);
		kdecode_begin(d);
		seg[1] = (struct json_seg){"name", 4, 0};
		kdecode_value(d, &p, JSON_STRING, name, (size_t)n);
		kerr_clear(&e);
		assert_int_equal(kdecode_end(d, &o, &e), 0);
		assert_string_equal(o->name, name);
		assert_int_equal(o->generation, 0);
		kobj_unref(o);
	}
	kdecode_free(d);
	kdecode_free(NULL);
}

static void kind_table(void **state)
{
	(void)state;
	assert_int_equal(kind_count(), 6);
	assert_ptr_equal(kind_by_name("Pod"), &kind_pod);
	assert_ptr_equal(kind_by_name("ComputeRequest"), &kind_computerequest);
	assert_null(kind_by_name("pod"));
	assert_null(kind_by_name(NULL));
	assert_null(kind_at(kind_count()));
	for (size_t i = 0; i < kind_count(); i++) {
		const struct kind *k = kind_at(i);
		assert_ptr_equal(kind_by_name(k->name), k);
		assert_non_null(k->destroy);
		assert_non_null(k->value);
		assert_non_null(k->end);
		assert_true(strncmp(k->path, "/api", 4) == 0);
	}
	assert_string_equal(kind_deployment.path, "/apis/apps/v1");
	assert_string_equal(kind_computerequest.path, "/apis/nimbus.io/v1");
	assert_string_equal(kind_computerequest.plural, "computerequests");
	assert_string_equal(kind_resourcequota.plural, "resourcequotas");
	assert_false(kind_node.namespaced);
	assert_false(kind_namespace.namespaced);
	assert_true(kind_pod.namespaced);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(decodes_typical_pod),
		cmocka_unit_test(pods_share_repeated_strings),
		cmocka_unit_test(decodes_pod_scheduling_fields),
		cmocka_unit_test(decodes_node),
		cmocka_unit_test(decodes_namespace),
		cmocka_unit_test(decodes_deployment),
		cmocka_unit_test(decodes_resourcequota),
		cmocka_unit_test(decodes_computerequest),
		cmocka_unit_test(computerequest_records_validation_errors),
		cmocka_unit_test(decodes_status),
		cmocka_unit_test(rejects_bad_objects),
		cmocka_unit_test(every_truncation_fails_cleanly),
		cmocka_unit_test(decoder_is_reusable),
		cmocka_unit_test(kind_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
