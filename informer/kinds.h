/*
 * kinds: the resource kinds the informer can decode, and their compact structs.
 *
 * Contract
 * - Each kind is a `const struct kind` (kind_pod, kind_node, ...) naming its
 *   REST location and its streaming decoder. kind_by_name() finds one.
 * - Decoding is SAX-style and incremental: a kdecode is fed the events of one
 *   object (paths relative to the object root, as json_stream reports them)
 *   and kdecode_end() builds the object. Only the fields below are kept;
 *   unknown fields are ignored, JSON null counts as absent.
 * - Memory: each object, with its arrays and its own strings, is ONE
 *   malloc'd block: the kind struct (which starts with struct kobj), then
 *   its arrays, then its strings. Strings that objects repeat (namespace,
 *   label keys and values, owner apiVersion and kind; a pod's node,
 *   scheduler, image, node selector and toleration keys and values) are
 *   shared copies instead (kintern.h), one reference each. The decoder
 *   builds into a reusable scratch arena, sizes the result in a first pass
 *   and copies into the block in a second, so a cached object costs its
 *   payload plus one malloc header (a typical pod with 3 labels, 1
 *   container, 1 owner and 2 tolerations: 545 bytes, kobj_size(); test_kinds
 *   checks it stays within 1 KiB). kind->destroy releases the shared strings
 *   and frees the block.
 * - Objects come out with refs == 1, owned by the caller of kdecode_end(),
 *   and are immutable from then on (see kobj.h).
 * - Absent values: strings are "", counts 0; numbers are documented per
 *   field (-1 where 0 is meaningful).
 * - A decode fails (KERR_PARSE, message naming the field) when metadata.name
 *   is missing, a kept field has the wrong JSON type or an unparsable value
 *   (a quantity, a timestamp), or the object's "kind" names another kind.
 *   ComputeRequest is the exception for user-written spec values: see
 *   struct kcomputerequest.validation_error.
 * - A kdecode is used by one thread at a time; kinds are immutable globals.
 */
#ifndef NIMBUS_KINDS_H
#define NIMBUS_KINDS_H

#include <stddef.h>
#include <stdint.h>

#include "json_stream.h"
#include "kerr.h"
#include "kobj.h"

struct kdecode;
struct kalloc;

struct kind {
	const char *name;        /* "Pod" */
	const char *api_version; /* "v1", "apps/v1", "nimbus.io/v1" */
	const char *path;        /* URL prefix: "/api/v1", "/apis/apps/v1" */
	const char *plural;      /* "pods" */
	int namespaced;
	/* Frees an object of this kind (its single block). */
	void (*destroy)(struct kobj *o);
	/* Decoder: state_size bytes of per-object state, zeroed, then begin()
	 * sets defaults; value() sees every scalar and container start of the
	 * object that is not under "metadata"; end() lays the object out through
	 * a (twice: sizing, then filling) and returns it. These are driven by
	 * kdecode_*; nothing else calls them. */
	size_t state_size;
	void (*begin)(void *state);
	void (*value)(struct kdecode *d, void *state, const struct json_path *p,
	              enum json_type type, const char *s, size_t len);
	struct kobj *(*end)(struct kdecode *d, void *state, struct kalloc *a);
	/* 1 when value() reads nothing under the container at p (outside
	 * "metadata"), so the parser need not report it; may be NULL. */
	int (*skip)(const struct json_path *p);
};

extern const struct kind kind_pod, kind_node, kind_namespace, kind_deployment,
	kind_resourcequota, kind_computerequest;

/* The kind called name ("Pod"), or NULL. */
const struct kind *kind_by_name(const char *name);
/* The i-th kind of the table, or NULL when i >= kind_count(). */
const struct kind *kind_at(size_t i);
size_t kind_count(void);

/* ---- decoding ---------------------------------------------------------- */

/* A decoder for objects of kind k, reusable across objects. Owned by the
 * caller; free with kdecode_free(). NULL with e set on allocation failure. */
struct kdecode *kdecode_new(const struct kind *k, struct kerr *e);
void kdecode_free(struct kdecode *d);
const struct kind *kdecode_kind(const struct kdecode *d);
/* Start a new object, forgetting any unfinished one. */
void kdecode_begin(struct kdecode *d);
/* One event of the object: a scalar, or the start of an object or array
 * (type JSON_OBJECT / JSON_ARRAY, s == NULL). p is relative to the object
 * root. Problems are recorded and reported by kdecode_end(), so that an
 * object that turns out not to matter (a watch ERROR) costs no error.
 * Returns JSON_STREAM_SKIP for a container in which nothing is read (the
 * caller may leave its contents out), else 0. */
int kdecode_value(struct kdecode *d, const struct json_path *p, enum json_type type,
                  const char *s, size_t len);
/* Finish the object: *out gets it (refs == 1, caller owns it), or the first
 * problem is returned with e set and *out = NULL. */
int kdecode_end(struct kdecode *d, struct kobj **out, struct kerr *e);

/* Decode one complete JSON object of kind k (a GET or POST response). */
int kind_decode_json(const struct kind *k, const char *json, size_t len,
                     struct kobj **out, struct kerr *e);

/* ---- shared value types ------------------------------------------------ */

enum kcond { KCOND_ABSENT, KCOND_TRUE, KCOND_FALSE, KCOND_UNKNOWN };

/* Taint effects; KEFFECT_ANY is a toleration's "" (tolerates every effect). */
enum keffect {
	KEFFECT_ANY,
	KEFFECT_NO_SCHEDULE,
	KEFFECT_PREFER_NO_SCHEDULE,
	KEFFECT_NO_EXECUTE,
	KEFFECT_OTHER, /* a value this code does not know */
};

enum ktol_op { KTOL_EQUAL, KTOL_EXISTS, KTOL_OTHER }; /* default Equal */

struct ktoleration {
	const char *key;       /* "" matches every key (with Exists) */
	const char *value;
	int64_t seconds;       /* tolerationSeconds; -1 when absent (forever) */
	uint8_t op;            /* enum ktol_op */
	uint8_t effect;        /* enum keffect */
};

struct ktaint {
	const char *key;
	const char *value;
	uint8_t effect;        /* enum keffect */
};

enum ksel_op { KSEL_IN, KSEL_NOT_IN, KSEL_EXISTS, KSEL_DOES_NOT_EXIST, KSEL_GT, KSEL_LT, KSEL_OTHER };

/* One nodeSelectorTerms[].matchExpressions[] entry. */
struct kselector_req {
	const char *key;
	uint8_t op;            /* enum ksel_op */
	size_t nvalues;
	const char *const *values;
};

/* A node matches a term when it matches all of the term's requirements, and
 * matches the affinity when it matches any term. */
struct kselector_term {
	size_t nreqs;
	const struct kselector_req *reqs;  /* matchExpressions: on node labels */
	size_t nfields;
	const struct kselector_req *fields;/* matchFields: key is a node field, "metadata.name" */
};

/* cpu in milli-cores, memory in bytes. */
struct kresources {
	int64_t cpu_milli;
	int64_t memory;
};

/* ---- Pod (v1) ---------------------------------------------------------- */

enum kpod_phase { KPOD_PHASE_NONE, KPOD_PENDING, KPOD_RUNNING, KPOD_SUCCEEDED, KPOD_FAILED, KPOD_PHASE_UNKNOWN };

struct kpod {
	struct kobj meta;
	const char *node_name;          /* "" while unscheduled */
	const char *scheduler_name;     /* "" when absent */
	const char *image;              /* first container's image */
	const char *ready_reason;       /* condition Ready's reason */
	const char *scheduled_reason;   /* condition PodScheduled's reason, e.g. "Unschedulable" */
	int64_t start_time;             /* status.startTime, unix seconds; 0 = absent */
	/* What the scheduler reserves, as the kubelet computes it:
	 * max(sum of containers + sidecars, max over init containers) + overhead.
	 * Containers without a value contribute 0. */
	struct kresources requests;
	struct kresources limits;
	int32_t priority;               /* spec.priority; 0 when absent */
	uint8_t phase;                  /* enum kpod_phase */
	uint8_t ready;                  /* enum kcond */
	uint8_t scheduled;              /* enum kcond */
	size_t nnode_selector;
	const struct kobj_label *node_selector;    /* sorted by key */
	size_t ntolerations;
	const struct ktoleration *tolerations;
	/* spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution */
	size_t naffinity_terms;
	const struct kselector_term *affinity_terms;
};

/* ---- Node (v1, cluster-scoped) ----------------------------------------- */

struct knode_resources {
	int64_t cpu_milli;  /* -1 when absent */
	int64_t memory;     /* bytes; -1 when absent */
	int64_t pods;       /* -1 when absent */
};

struct knode {
	struct kobj meta;
	struct knode_resources allocatable;
	struct knode_resources capacity;
	int unschedulable;  /* spec.unschedulable (cordoned) */
	uint8_t ready;      /* enum kcond, condition Ready */
	size_t ntaints;
	const struct ktaint *taints;
};

/* ---- Namespace (v1, cluster-scoped) ------------------------------------ */

enum kns_phase { KNS_PHASE_NONE, KNS_ACTIVE, KNS_TERMINATING, KNS_PHASE_OTHER };

struct knamespace {
	struct kobj meta;
	uint8_t phase;      /* enum kns_phase */
};

/* ---- Deployment (apps/v1) ---------------------------------------------- */

struct kcondition {
	const char *type;
	const char *reason;
	const char *message;
	const char *last_transition; /* lastTransitionTime as written (RFC 3339); "" when absent */
	uint8_t status;     /* enum kcond */
};

#define KCONDITIONS_MAX 4 /* conditions kept per object; further ones are dropped */

/* A resource value as written and as parsed. */
struct kquantity {
	const char *raw;    /* "" when absent */
	int64_t value;      /* milli-cores for cpu, bytes for memory; -1 when absent */
};

struct kdeployment {
	struct kobj meta;
	int64_t replicas;               /* spec.replicas; 1 when absent, as the apiserver defaults */
	const char *scheduler_name;     /* spec.template.spec.schedulerName; "" when absent */
	size_t ntemplate_labels;
	const struct kobj_label *template_labels; /* spec.template.metadata.labels, sorted */
	size_t ntemplate_annotations;
	const struct kobj_label *template_annotations; /* spec.template.metadata.annotations, sorted */
	/* The first container of the template. */
	const char *container_name;
	const char *container_image;
	struct kquantity cpu_request, memory_request, cpu_limit, memory_limit;
	/* status; 0 when absent */
	int64_t status_replicas;
	int64_t ready_replicas;
	int64_t available_replicas;
	int64_t updated_replicas;
	int64_t observed_generation;
	size_t nconditions;
	const struct kcondition *conditions;
};

/* ---- ResourceQuota (v1) ------------------------------------------------ */

/* Each value -1 when the quota does not name it. "cpu" and "requests.cpu"
 * are one value (likewise memory), as in the apiserver. */
struct kquota_values {
	int64_t requests_cpu_milli;
	int64_t requests_memory;
	int64_t limits_cpu_milli;
	int64_t limits_memory;
	int64_t pods;
};

struct kresourcequota {
	struct kobj meta;
	struct kquota_values hard;  /* spec.hard */
	struct kquota_values used;  /* status.used */
};

/* ---- ComputeRequest (nimbus.io/v1) ------------------------------------- */

struct kcomputerequest {
	struct kobj meta;
	const char *tenant_id;      /* spec.tenantId */
	const char *image;          /* spec.image */
	const char *scheduler_name; /* spec.schedulerName; "" when absent */
	struct kquantity cpu;       /* spec.cpu: raw string and milli-cores */
	struct kquantity memory;    /* spec.memory: raw string and bytes */
	int64_t replicas;           /* spec.replicas; -1 when absent */
	int has_autoscaling;        /* spec.autoscaling present */
	int64_t min_replicas;       /* spec.autoscaling.*; -1 when absent */
	int64_t max_replicas;
	int64_t target_cpu_percent;
	int64_t target_memory_percent;
	size_t npod_annotations;
	const struct kobj_label *pod_annotations; /* spec.podAnnotations, sorted: copied to the pods */
	int64_t observed_generation;/* status.observedGeneration; 0 when absent */
	const char *phase;          /* status.phase; "" when absent */
	int64_t status_replicas;    /* status.replicas; 0 when absent */
	int64_t ready_replicas;     /* status.readyReplicas; 0 when absent */
	size_t nconditions;
	const struct kcondition *conditions; /* status.conditions, at most KCONDITIONS_MAX */
	/* status.autoscaling, the autoscaler's last decision (the API shows it);
	 * each number -1 and each string "" when absent. */
	int has_autoscaling_status;
	int64_t as_current_replicas;
	int64_t as_desired_replicas;
	int64_t as_cpu_percent;       /* currentCPUUtilizationPercentage */
	int64_t as_memory_percent;    /* currentMemoryUtilizationPercentage */
	const char *as_last_scale_time; /* RFC 3339 */
	const char *as_reason;
	/* Spec values are written by users, so a bad one (cpu "lots", replicas
	 * "3") does not fail the decode: the first problem is described here for
	 * the operator to put on the object's status, and the value reads as
	 * absent. "" when the spec is valid. */
	const char *validation_error;
};

/* ---- Status (v1), the body of errors and of watch ERROR events ----------- */

struct kstatus {
	long code;              /* HTTP code, e.g. 410; 0 when absent */
	char status[16];        /* "Failure" / "Success" */
	char reason[64];        /* "Expired", "NotFound", ...; truncated to fit */
	char message[512];      /* truncated to fit */
};

/* Fold one event of a Status object (path relative to its root) into st,
 * which starts zeroed. Unknown fields and wrong types are ignored: a Status
 * is read to explain another failure and must not fail itself. */
void kstatus_value(struct kstatus *st, const struct json_path *p, enum json_type type,
                   const char *s, size_t len);
/* Decode a complete Status document (an error response body). */
int kstatus_decode_json(const char *json, size_t len, struct kstatus *st, struct kerr *e);

#endif
