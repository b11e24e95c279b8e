/*
 * kobj: a Kubernetes object as the cache holds it.
 *
 * Contract
 * - A kobj is decoded once from JSON into a compact struct with only the
 *   fields the reconcilers use (see kinds.h); whole documents and parse trees
 *   are never kept.
 * - A kobj is immutable once published to a store, and reference counted.
 *   Anyone may read it from any thread while holding a reference. An update
 *   to an object creates a new kobj; the old one lives until its last
 *   reference is dropped.
 * - kobj_ref()/kobj_unref() are thread-safe (atomic). The last kobj_unref()
 *   calls kind->destroy, which frees the object and everything it points to
 *   (strings shared with other objects lose one reference; see kinds.h).
 * - All strings are NUL-terminated and never NULL (cluster-scoped objects
 *   have ns == "").
 */
#ifndef NIMBUS_KOBJ_H
#define NIMBUS_KOBJ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct kobj;
struct kind;

struct kobj_label {
	const char *key;
	const char *value;
};

struct kobj_owner {
	const char *api_version;
	const char *kind;
	const char *name;
	const char *uid;
	int controller; /* ownerReferences[].controller == true */
};

struct kobj {
	atomic_int refs;
	const struct kind *kind;
	size_t size;            /* bytes of the object's own allocation, shared strings not counted (see kinds.h) */
	const char *key;        /* "ns/name", or "name" when cluster-scoped */
	const char *ns;         /* "" when cluster-scoped */
	const char *name;
	const char *uid;
	const char *resource_version;
	int64_t generation;     /* metadata.generation, 0 if absent */
	int64_t created;        /* metadata.creationTimestamp, unix seconds */
	int64_t deleted;        /* metadata.deletionTimestamp, unix seconds; 0 = not terminating */
	size_t nlabels;
	const struct kobj_label *labels;  /* sorted by key */
	size_t nowners;
	const struct kobj_owner *owners;
};

/* Take one more reference; returns o. NULL-safe. */
struct kobj *kobj_ref(struct kobj *o);
/* Drop a reference; frees the object with kind->destroy at zero. NULL-safe. */
void kobj_unref(struct kobj *o);

/* Bytes of the object's own allocation, for cache accounting; strings it
 * shares with other objects are not counted. */
size_t kobj_size(const struct kobj *o);

/* Value of label key, or NULL. O(log n) in the number of labels. */
const char *kobj_label(const struct kobj *o, const char *key);
/* The controller ownerReference, or NULL. */
const struct kobj_owner *kobj_controller(const struct kobj *o);

#endif
