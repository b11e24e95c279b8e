/* What the fuzz targets share: hashing and checking decoded objects. */
#include <string.h>

#include "fuzz.h"
#include "kinds.h"
#include "kintern.h"
#include "kobj.h"

uint64_t fuzz_hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

uint64_t fuzz_hash_str(uint64_t h, const char *s)
{
	/* Include the NUL, so that "ab","c" and "a","bc" differ. */
	return fuzz_hash(h, s, strlen(s) + 1);
}

/* The object being checked: its block. */
struct fz_obj {
	const struct kobj *o;
	const char *lo, *hi;
	uint64_t h;
};

static void fz_in_block(struct fz_obj *z, const void *p, size_t n, const char *what)
{
	const char *c = p;
	if (!c)
		fuzz_fail("%s object %s: %s is NULL", z->o->kind->name, z->o->key, what);
	if (c < z->lo || c > z->hi || n > (size_t)(z->hi - c))
		fuzz_fail("%s object %s: %s (%zu bytes at %p) lies outside its block [%p, %p)",
		          z->o->kind->name, z->o->key, what, n, p, (const void *)z->lo, (const void *)z->hi);
}

static void fz_str(struct fz_obj *z, const char *s, const char *what)
{
	if (!s)
		fuzz_fail("%s object: string %s is NULL", z->o->kind->name, what);
	if (s[0] != '\0' && !kintern_holds(s)) {
		/* Find the NUL without reading past the block. */
		fz_in_block(z, s, 1, what);
		const char *nul = memchr(s, '\0', (size_t)(z->hi - s));
		if (!nul)
			fuzz_fail("%s object %s: string %s is not NUL-terminated in its block",
			          z->o->kind->name, z->o->key, what);
	}
	z->h = fuzz_hash_str(z->h, s);
}

static void fz_array(struct fz_obj *z, const void *a, size_t n, size_t elsize, const char *what)
{
	if (n == 0)
		return;
	fz_in_block(z, a, n * elsize, what);
}

static void fz_labels(struct fz_obj *z, const struct kobj_label *l, size_t n, const char *what)
{
	fz_array(z, l, n, sizeof(*l), what);
	for (size_t i = 0; i < n; i++) {
		fz_str(z, l[i].key, what);
		fz_str(z, l[i].value, what);
		if (i > 0 && strcmp(l[i - 1].key, l[i].key) > 0)
			fuzz_fail("%s object %s: %s not sorted by key (\"%s\" before \"%s\")", z->o->kind->name,
			          z->o->key, what, l[i - 1].key, l[i].key);
	}
}

static void fz_conditions(struct fz_obj *z, const struct kcondition *c, size_t n)
{
	if (n > KCONDITIONS_MAX)
		fuzz_fail("%s object %s: %zu conditions, more than KCONDITIONS_MAX", z->o->kind->name, z->o->key, n);
	fz_array(z, c, n, sizeof(*c), "conditions");
	for (size_t i = 0; i < n; i++) {
		fz_str(z, c[i].type, "condition type");
		fz_str(z, c[i].reason, "condition reason");
		fz_str(z, c[i].message, "condition message");
		fz_str(z, c[i].last_transition, "condition lastTransitionTime");
		z->h = fuzz_hash(z->h, &c[i].status, sizeof(c[i].status));
	}
}

static void fz_num(struct fz_obj *z, int64_t v)
{
	z->h = fuzz_hash(z->h, &v, sizeof(v));
}

static void fz_selector(struct fz_obj *z, const struct kselector_req *r, size_t n)
{
	fz_array(z, r, n, sizeof(*r), "selector requirements");
	for (size_t i = 0; i < n; i++) {
		fz_str(z, r[i].key, "selector key");
		fz_num(z, r[i].op);
		fz_array(z, r[i].values, r[i].nvalues, sizeof(*r[i].values), "selector values");
		for (size_t j = 0; j < r[i].nvalues; j++)
			fz_str(z, r[i].values[j], "selector value");
	}
}

static void fz_pod(struct fz_obj *z, const struct kpod *p)
{
	fz_str(z, p->node_name, "nodeName");
	fz_str(z, p->scheduler_name, "schedulerName");
	fz_str(z, p->image, "image");
	fz_str(z, p->ready_reason, "ready reason");
	fz_str(z, p->scheduled_reason, "scheduled reason");
	fz_num(z, p->start_time);
	fz_num(z, p->requests.cpu_milli);
	fz_num(z, p->requests.memory);
	fz_num(z, p->limits.cpu_milli);
	fz_num(z, p->limits.memory);
	fz_num(z, p->priority);
	fz_num(z, p->phase);
	fz_num(z, p->ready);
	fz_num(z, p->scheduled);
	fz_labels(z, p->node_selector, p->nnode_selector, "nodeSelector");
	fz_array(z, p->tolerations, p->ntolerations, sizeof(*p->tolerations), "tolerations");
	for (size_t i = 0; i < p->ntolerations; i++) {
		fz_str(z, p->tolerations[i].key, "toleration key");
		fz_str(z, p->tolerations[i].value, "toleration value");
		fz_num(z, p->tolerations[i].seconds);
		fz_num(z, p->tolerations[i].op);
		fz_num(z, p->tolerations[i].effect);
	}
	fz_array(z, p->affinity_terms, p->naffinity_terms, sizeof(*p->affinity_terms), "affinity terms");
	for (size_t i = 0; i < p->naffinity_terms; i++) {
		fz_selector(z, p->affinity_terms[i].reqs, p->affinity_terms[i].nreqs);
		fz_selector(z, p->affinity_terms[i].fields, p->affinity_terms[i].nfields);
	}
}

static void fz_node(struct fz_obj *z, const struct knode *n)
{
	const struct knode_resources *r[] = {&n->allocatable, &n->capacity};
	for (size_t i = 0; i < 2; i++) {
		fz_num(z, r[i]->cpu_milli);
		fz_num(z, r[i]->memory);
		fz_num(z, r[i]->pods);
	}
	fz_num(z, n->unschedulable);
	fz_num(z, n->ready);
	fz_array(z, n->taints, n->ntaints, sizeof(*n->taints), "taints");
	for (size_t i = 0; i < n->ntaints; i++) {
		fz_str(z, n->taints[i].key, "taint key");
		fz_str(z, n->taints[i].value, "taint value");
		fz_num(z, n->taints[i].effect);
	}
}

static void fz_quantity(struct fz_obj *z, const struct kquantity *q, const char *what)
{
	fz_str(z, q->raw, what);
	fz_num(z, q->value);
}

static void fz_deployment(struct fz_obj *z, const struct kdeployment *d)
{
	fz_num(z, d->replicas);
	fz_str(z, d->scheduler_name, "schedulerName");
	fz_labels(z, d->template_labels, d->ntemplate_labels, "template labels");
	fz_labels(z, d->template_annotations, d->ntemplate_annotations, "template annotations");
	fz_str(z, d->container_name, "container name");
	fz_str(z, d->container_image, "container image");
	fz_quantity(z, &d->cpu_request, "cpu request");
	fz_quantity(z, &d->memory_request, "memory request");
	fz_quantity(z, &d->cpu_limit, "cpu limit");
	fz_quantity(z, &d->memory_limit, "memory limit");
	fz_num(z, d->status_replicas);
	fz_num(z, d->ready_replicas);
	fz_num(z, d->available_replicas);
	fz_num(z, d->updated_replicas);
	fz_num(z, d->observed_generation);
	fz_conditions(z, d->conditions, d->nconditions);
}

static void fz_quota(struct fz_obj *z, const struct kquota_values *q)
{
	fz_num(z, q->requests_cpu_milli);
	fz_num(z, q->requests_memory);
	fz_num(z, q->limits_cpu_milli);
	fz_num(z, q->limits_memory);
	fz_num(z, q->pods);
}

static void fz_computerequest(struct fz_obj *z, const struct kcomputerequest *c)
{
	fz_str(z, c->tenant_id, "tenantId");
	fz_str(z, c->image, "image");
	fz_str(z, c->scheduler_name, "schedulerName");
	fz_quantity(z, &c->cpu, "cpu");
	fz_quantity(z, &c->memory, "memory");
	fz_num(z, c->replicas);
	fz_num(z, c->has_autoscaling);
	fz_num(z, c->min_replicas);
	fz_num(z, c->max_replicas);
	fz_num(z, c->target_cpu_percent);
	fz_num(z, c->target_memory_percent);
	fz_labels(z, c->pod_annotations, c->npod_annotations, "podAnnotations");
	fz_num(z, c->observed_generation);
	fz_str(z, c->phase, "phase");
	fz_num(z, c->status_replicas);
	fz_num(z, c->ready_replicas);
	fz_conditions(z, c->conditions, c->nconditions);
	fz_str(z, c->validation_error, "validation error");
}

uint64_t fuzz_hash_kobj(uint64_t h, const struct kobj *o)
{
	if (!o || !o->kind)
		fuzz_fail("a decoded object is NULL or has no kind");
	if (atomic_load(&o->refs) != 1)
		fuzz_fail("%s object comes out with refs %d, not 1", o->kind->name, atomic_load(&o->refs));
	struct fz_obj z = {.o = o, .lo = (const char *)o, .hi = (const char *)o + o->size, .h = h};
	if (kobj_size(o) < o->size)
		fuzz_fail("%s object: kobj_size %zu is less than its block (%zu)", o->kind->name, kobj_size(o), o->size);
	fz_str(&z, o->key, "key");
	fz_str(&z, o->ns, "namespace");
	fz_str(&z, o->name, "name");
	fz_str(&z, o->uid, "uid");
	fz_str(&z, o->resource_version, "resourceVersion");
	if (o->name[0] == '\0')
		fuzz_fail("%s object decoded without a name", o->kind->name);
	/* key is "ns/name", or "name" when cluster-scoped or without a namespace. */
	size_t kl = strlen(o->key), nl = strlen(o->name), sl = strlen(o->ns);
	if (kl < nl || strcmp(o->key + kl - nl, o->name) != 0 ||
	    (sl && (kl != sl + 1 + nl || memcmp(o->key, o->ns, sl) != 0 || o->key[sl] != '/')))
		fuzz_fail("%s object: key \"%s\" is not namespace \"%s\" / name \"%s\"", o->kind->name, o->key, o->ns,
		          o->name);
	if (!o->kind->namespaced && sl)
		fuzz_fail("cluster-scoped %s object has namespace \"%s\"", o->kind->name, o->ns);
	fz_num(&z, o->generation);
	fz_num(&z, o->created);
	fz_num(&z, o->deleted);
	fz_labels(&z, o->labels, o->nlabels, "labels");
	fz_array(&z, o->owners, o->nowners, sizeof(*o->owners), "ownerReferences");
	for (size_t i = 0; i < o->nowners; i++) {
		fz_str(&z, o->owners[i].api_version, "owner apiVersion");
		fz_str(&z, o->owners[i].kind, "owner kind");
		fz_str(&z, o->owners[i].name, "owner name");
		fz_str(&z, o->owners[i].uid, "owner uid");
		fz_num(&z, o->owners[i].controller);
	}
	if (o->kind == &kind_pod)
		fz_pod(&z, (const struct kpod *)o);
	else if (o->kind == &kind_node)
		fz_node(&z, (const struct knode *)o);
	else if (o->kind == &kind_namespace)
		fz_num(&z, ((const struct knamespace *)o)->phase);
	else if (o->kind == &kind_deployment)
		fz_deployment(&z, (const struct kdeployment *)o);
	else if (o->kind == &kind_resourcequota) {
		fz_quota(&z, &((const struct kresourcequota *)o)->hard);
		fz_quota(&z, &((const struct kresourcequota *)o)->used);
	} else if (o->kind == &kind_computerequest)
		fz_computerequest(&z, (const struct kcomputerequest *)o);
	else
		fuzz_fail("object of unknown kind %s", o->kind->name);
	return z.h;
}
