/*
 * store: the local cache of one resource kind, with secondary indexes.
 *
 * Contract
 * - Holds struct kobj pointers keyed by kobj->key ("ns/name" or "name").
 *   The store owns one reference to every object it contains and drops it
 *   when the object is replaced, deleted, or the store is freed.
 * - One writer, many readers. The write functions (store_upsert,
 *   store_delete, store_replace_*) must be called by one thread at a time
 *   (the reflector); the read functions are safe from any thread at any
 *   time. Readers receive objects with a reference already taken, so the
 *   lock is held only for the lookup, never while the caller uses the
 *   object. Returned objects are immutable: never modify them.
 * - Indexes: an index maps each object to zero or more string values
 *   (namespace, node name, a label's value...) and answers "which objects
 *   have value V" in time proportional to the answer. Indexes are
 *   registered while the store is empty, then kept up to date by every
 *   write; a value with no objects left is removed, so the index never
 *   outgrows the objects it describes.
 * - Relist: store_replace_begin, store_replace_add for each listed object,
 *   then store_replace_commit swaps the new contents in at once. Readers
 *   see the old contents until the commit and the new ones after it, never
 *   a mix. The commit reports the difference (added, updated, deleted) so
 *   that the informer can turn a relist into events. store_synced() becomes
 *   true at the first commit.
 * - Errors: 0 or a negative KERR_* code (kerr.h). A failed write changes
 *   nothing.
 */
#ifndef NIMBUS_STORE_H
#define NIMBUS_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "kobj.h"

struct store;

/* Most indexes a store can have. */
#define STORE_MAX_INDEXES 8
/* Most values one object can have in one index; extra values are ignored. */
#define STORE_INDEX_MAX_VALUES 16

/*
 * An index function: writes up to max values of object o into values and
 * returns how many. Values are pointers into o (or strings that outlive the
 * store); duplicates and NULLs are ignored. Called by the writer thread
 * only, with the store locked: it must not call into the store.
 */
typedef size_t (*store_index_fn)(const struct kobj *o, void *arg, const char **values, size_t max);

/* Built-in index functions. */
/* One value: o->ns ("" for cluster-scoped objects). arg is unused. */
size_t store_index_namespace(const struct kobj *o, void *arg, const char **values, size_t max);
/* One value, the value of label arg (a const char * key such as
 * "nimbus.io/tenant", which must outlive the store), or none. */
size_t store_index_label(const struct kobj *o, void *arg, const char **values, size_t max);

/* Create an empty store in *out; free it with store_free. */
int store_new(struct store **out);
/* Drop the store's references to its objects and free it. No thread may use
 * the store during or after this call. NULL-safe. */
void store_free(struct store *s);

/*
 * Register index name (copied) computed by fn(o, arg, ...). KERR_INVAL if
 * the store is not empty, a relist is in progress, the name is taken or
 * STORE_MAX_INDEXES are registered already.
 */
int store_add_index(struct store *s, const char *name, store_index_fn fn, void *arg);

/* --- Reads: any thread. --- */

/* The object with key, with a reference for the caller (kobj_unref it), or
 * NULL if absent. */
struct kobj *store_get(struct store *s, const char *key);
/*
 * All objects, in no particular order: *objs is a malloc'd array of *n
 * referenced objects (NULL when *n == 0); release it with store_list_free.
 */
int store_list(struct store *s, struct kobj ***objs, size_t *n);
/* The objects whose index named index has value; as store_list.
 * KERR_NOT_FOUND if no such index is registered. */
int store_by_index(struct store *s, const char *index, const char *value, struct kobj ***objs,
		   size_t *n);
/* Unreference the n objects of an array from store_list/store_by_index and
 * free the array. NULL-safe. */
void store_list_free(struct kobj **objs, size_t n);
/*
 * The distinct values of index, in no particular order: *values is one
 * malloc'd block holding the array of *n pointers and the strings they point
 * to; free(*values) releases all of it (NULL when *n == 0).
 * KERR_NOT_FOUND if no such index is registered.
 */
int store_index_keys(struct store *s, const char *index, char ***values, size_t *n);
/* Number of objects. */
size_t store_len(struct store *s);
/* True once the first relist has been committed. */
bool store_synced(struct store *s);

/* --- Writes: the writer thread only. --- */

/*
 * Insert obj, or replace the object with the same key. Takes over the
 * caller's reference to obj on success (on error the caller keeps it).
 * If old is not NULL, *old receives the replaced object with a reference
 * for the caller, or NULL if the key was new; if old is NULL the store drops
 * the replaced object itself.
 */
int store_upsert(struct store *s, struct kobj *obj, struct kobj **old);
/* Remove the object with key and return it with the store's reference now
 * the caller's (kobj_unref it), or NULL if absent. */
struct kobj *store_delete(struct store *s, const char *key);

enum store_diff {
	STORE_ADDED,   /* in the relist, not in the store before: old == NULL */
	STORE_UPDATED, /* in both, resourceVersion differs */
	STORE_DELETED, /* in the store before, not in the relist: new_obj == NULL */
};

/*
 * Called by store_replace_commit once per difference, after the new
 * contents are visible to readers. old and new_obj are valid for the call
 * only (kobj_ref to keep one). The callback may read the store; it must not
 * write to it.
 */
typedef void (*store_diff_fn)(void *arg, enum store_diff op, struct kobj *old,
			      struct kobj *new_obj);

/* Start a relist into an empty side buffer, discarding any relist begun and
 * not committed. Readers keep seeing the current contents. */
int store_replace_begin(struct store *s);
/* Add obj to the side buffer, taking over the caller's reference on success
 * (on error the caller keeps it). A key added twice keeps the later object.
 * KERR_INVAL without store_replace_begin. */
int store_replace_add(struct store *s, struct kobj *obj);
/*
 * Make the side buffer the store's contents, mark the store synced, then
 * call fn (may be NULL) for each difference from the previous contents;
 * objects with an unchanged resourceVersion are not reported. The objects
 * of the previous contents are released after the last callback.
 * KERR_INVAL without store_replace_begin.
 */
int store_replace_commit(struct store *s, store_diff_fn fn, void *arg);
/* Discard the side buffer (a relist that failed part-way). NULL-safe. */
void store_replace_abort(struct store *s);

#endif
