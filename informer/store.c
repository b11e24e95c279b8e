/* For pthread_rwlockattr_setkind_np: see store_new. */
#define _GNU_SOURCE

#include "store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* An allocation failure inside uthash leaves the item out of its table
 * (hh.tbl == NULL) instead of exiting the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "kerr.h"

/*
 * Memory per cached object, besides the object itself (x86-64; glibc malloc
 * rounds a request up to a multiple of 16 with 8 bytes of header):
 *   store_entry    72 B -> 80 B     one per object
 *   store_member   40 B -> 48 B     one per (index, value) of the object
 *   hash slots     ~8 B             uthash keeps chains short, 16 B/slot
 * A pod in three single-valued indexes (namespace, node, tenant) costs
 * 80 + 3 * 48 + 8 = 232 B; measured with mallinfo2: 235 B per object for
 * 10k and 100k objects over 50 namespaces, 200 nodes and 50 tenants. With a
 * ~700 B pod that stays under 1 KB. Keys are not copied (an entry's hash key
 * points into its object), and members form plain lists, not hash tables.
 * Each distinct index value adds one store_bucket (~90 B + the value) shared
 * by all objects with that value.
 */

struct store_entry;
struct store_bucket;

/* One object's membership in one index value. */
struct store_member {
	struct store_member *prev, *next; /* in bucket->members, doubly linked for O(1) removal */
	struct store_member *entry_next;  /* in entry->members */
	struct store_bucket *bucket;
	struct store_entry *entry;
};

/* The objects that have one value in one index; freed when it empties. */
struct store_bucket {
	UT_hash_handle hh; /* in store_map.buckets[index], keyed by value */
	struct store_member *members;
	size_t count;
	unsigned index;
	char value[]; /* a copy: the object it came from may go first */
};

struct store_entry {
	UT_hash_handle hh;            /* in store_map.entries, keyed by obj->key */
	struct kobj *obj;             /* the store's reference */
	struct store_member *members; /* every index value of obj, few: a list */
};

/* A complete set of contents: the live one, or a relist being filled. */
struct store_map {
	struct store_entry *entries;
	struct store_bucket *buckets[STORE_MAX_INDEXES];
};

struct store_index {
	char *name; /* owned */
	store_index_fn fn;
	void *arg;
};

struct store {
	/* Guards live and the index definitions. Readers hold it only for a
	 * lookup; the writer for one change, or for the swap of a relist. */
	pthread_rwlock_t lock;
	struct store_map live;
	/* Relist buffer: touched only by the writer, never seen by readers,
	 * so it needs no lock. NULL outside store_replace_begin..commit. */
	struct store_map *side;
	size_t nindexes;
	struct store_index indexes[STORE_MAX_INDEXES];
	atomic_bool synced;
};

/* The index values of one object, deduplicated. */
struct store_values {
	size_t n[STORE_MAX_INDEXES];
	const char *v[STORE_MAX_INDEXES][STORE_INDEX_MAX_VALUES];
};

static int store_rdlock(struct store *s)
{
	/* Fails only on misuse, such as a read from inside an index function. */
	return pthread_rwlock_rdlock(&s->lock) == 0 ? 0 : KERR_INVAL;
}

static int store_wrlock(struct store *s)
{
	return pthread_rwlock_wrlock(&s->lock) == 0 ? 0 : KERR_INVAL;
}

static void store_unlock(struct store *s)
{
	/* Unlocking a lock this thread holds cannot fail. */
	(void)pthread_rwlock_unlock(&s->lock);
}

static int store_find_index(const struct store *s, const char *name)
{
	for (size_t i = 0; i < s->nindexes; i++)
		if (strcmp(s->indexes[i].name, name) == 0)
			return (int)i;
	return -1;
}

static bool store_values_has(const char *const *v, size_t n, const char *value)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], value) == 0)
			return true;
	return false;
}

/* obj == NULL (a delete) has no values. */
static void store_values_of(const struct store *s, const struct kobj *obj, struct store_values *out)
{
	for (size_t i = 0; i < s->nindexes; i++) {
		out->n[i] = 0;
		if (!obj)
			continue;
		const char *raw[STORE_INDEX_MAX_VALUES];
		size_t n = s->indexes[i].fn(obj, s->indexes[i].arg, raw, STORE_INDEX_MAX_VALUES);
		if (n > STORE_INDEX_MAX_VALUES)
			n = STORE_INDEX_MAX_VALUES;
		for (size_t j = 0; j < n; j++)
			if (raw[j] && !store_values_has(out->v[i], out->n[i], raw[j]))
				out->v[i][out->n[i]++] = raw[j];
	}
}

static bool store_entry_has(const struct store_entry *e, unsigned index, const char *value)
{
	for (const struct store_member *mb = e->members; mb; mb = mb->entry_next)
		if (mb->bucket->index == index && strcmp(mb->bucket->value, value) == 0)
			return true;
	return false;
}

static void store_bucket_drop(struct store_map *m, struct store_bucket *b)
{
	HASH_DEL(m->buckets[b->index], b);
	free(b);
}

/* Frees mb, and its bucket if mb was the last member: an empty bucket would
 * otherwise live as long as the store (the leak client-go once had). */
static void store_member_unlink(struct store_map *m, struct store_member *mb)
{
	struct store_bucket *b = mb->bucket;
	if (mb->prev)
		mb->prev->next = mb->next;
	else
		b->members = mb->next;
	if (mb->next)
		mb->next->prev = mb->prev;
	free(mb);
	if (--b->count == 0)
		store_bucket_drop(m, b);
}

/*
 * The one place indexes change, as client-go's updateIndices: move entry
 * e's memberships from the values of its current object to those of obj
 * (NULL for a delete): values of obj only are added, values of both are
 * left alone, values of the current object only are removed. The current
 * values are read from e's membership list rather than recomputed, so an
 * index function is called once per write. Every allocation happens before
 * the first change: on KERR_NOMEM nothing has changed.
 */
static int store_update_indices(struct store *s, struct store_map *m, struct store_entry *e,
				const struct kobj *obj)
{
	struct store_values nv;
	struct {
		struct store_bucket *bucket;
		struct store_member *member;
		bool created;
	} add[STORE_MAX_INDEXES * STORE_INDEX_MAX_VALUES];
	size_t nadd = 0;

	store_values_of(s, obj, &nv);
	for (unsigned i = 0; i < s->nindexes; i++) {
		for (size_t j = 0; j < nv.n[i]; j++) {
			const char *v = nv.v[i][j];
			if (store_entry_has(e, i, v))
				continue;
			struct store_bucket *b;
			bool created = false;
			HASH_FIND_STR(m->buckets[i], v, b);
			if (!b) {
				size_t len = strlen(v);
				b = malloc(sizeof(*b) + len + 1);
				if (!b)
					goto nomem;
				memcpy(b->value, v, len + 1);
				b->members = NULL;
				b->count = 0;
				b->index = i;
				HASH_ADD_KEYPTR(hh, m->buckets[i], b->value, len, b);
				if (!b->hh.tbl) {
					free(b);
					goto nomem;
				}
				created = true;
			}
			struct store_member *mb = malloc(sizeof(*mb));
			if (!mb) {
				if (created)
					store_bucket_drop(m, b);
				goto nomem;
			}
			add[nadd].bucket = b;
			add[nadd].member = mb;
			add[nadd].created = created;
			nadd++;
		}
	}

	/* Nothing below can fail. */
	for (size_t k = 0; k < nadd; k++) {
		struct store_member *mb = add[k].member;
		struct store_bucket *b = add[k].bucket;
		mb->bucket = b;
		mb->entry = e;
		mb->prev = NULL;
		mb->next = b->members;
		if (b->members)
			b->members->prev = mb;
		b->members = mb;
		b->count++;
		mb->entry_next = e->members;
		e->members = mb;
	}
	struct store_member **pp = &e->members;
	while (*pp) {
		struct store_member *mb = *pp;
		unsigned i = mb->bucket->index;
		if (store_values_has(nv.v[i], nv.n[i], mb->bucket->value)) {
			pp = &mb->entry_next;
			continue;
		}
		*pp = mb->entry_next;
		store_member_unlink(m, mb);
	}
	return 0;

nomem:
	while (nadd-- > 0) {
		free(add[nadd].member);
		if (add[nadd].created)
			store_bucket_drop(m, add[nadd].bucket);
	}
	return KERR_NOMEM;
}

/* Insert or replace obj in m; *old gets the replaced object or NULL. */
static int store_map_upsert(struct store *s, struct store_map *m, struct kobj *obj,
			    struct kobj **old)
{
	struct store_entry *e;
	int rc;

	HASH_FIND_STR(m->entries, obj->key, e);
	if (e) {
		rc = store_update_indices(s, m, e, obj);
		if (rc)
			return rc;
		*old = e->obj;
		e->obj = obj;
		/* The hash key pointed into the old object, which may be freed
		 * before the entry: point it at the same bytes in the new one
		 * (same length, same hash, so the table is unaffected). */
		e->hh.key = obj->key;
		return 0;
	}

	e = malloc(sizeof(*e));
	if (!e)
		return KERR_NOMEM;
	e->obj = obj;
	e->members = NULL;
	HASH_ADD_KEYPTR(hh, m->entries, obj->key, strlen(obj->key), e);
	if (!e->hh.tbl) {
		free(e);
		return KERR_NOMEM;
	}
	rc = store_update_indices(s, m, e, obj);
	if (rc) {
		HASH_DEL(m->entries, e);
		free(e);
		return rc;
	}
	*old = NULL;
	return 0;
}

/* Remove e from m; returns its object with the store's reference. */
static struct kobj *store_map_remove(struct store *s, struct store_map *m, struct store_entry *e)
{
	struct kobj *obj = e->obj;
	/* Removing index values allocates nothing, so this cannot fail. */
	(void)store_update_indices(s, m, e, NULL);
	HASH_DEL(m->entries, e);
	free(e);
	return obj;
}

static void store_map_clear(struct store_map *m)
{
	struct store_entry *e, *etmp;
	HASH_ITER(hh, m->entries, e, etmp) {
		struct store_member *mb = e->members;
		while (mb) {
			struct store_member *next = mb->entry_next;
			free(mb);
			mb = next;
		}
		HASH_DEL(m->entries, e);
		kobj_unref(e->obj);
		free(e);
	}
	for (size_t i = 0; i < STORE_MAX_INDEXES; i++) {
		struct store_bucket *b, *btmp;
		HASH_ITER(hh, m->buckets[i], b, btmp) {
			HASH_DEL(m->buckets[i], b);
			free(b);
		}
	}
}

size_t store_index_namespace(const struct kobj *o, void *arg, const char **values, size_t max)
{
	(void)arg;
	if (max == 0)
		return 0;
	values[0] = o->ns;
	return 1;
}

size_t store_index_label(const struct kobj *o, void *arg, const char **values, size_t max)
{
	const char *v = kobj_label(o, arg);
	if (!v || max == 0)
		return 0;
	values[0] = v;
	return 1;
}

int store_new(struct store **out)
{
	pthread_rwlockattr_t attr;
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return KERR_NOMEM;
	if (pthread_rwlockattr_init(&attr) != 0)
		goto err;
#ifdef __GLIBC__
	/* glibc prefers readers by default: API threads listing the cache
	 * back to back could then hold off the reflector indefinitely and the
	 * cache would fall behind the apiserver. */
	if (pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP) != 0) {
		pthread_rwlockattr_destroy(&attr);
		goto err;
	}
#endif
	int rc = pthread_rwlock_init(&s->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0)
		goto err;
	atomic_init(&s->synced, false);
	*out = s;
	return 0;
err:
	free(s);
	return KERR_NOMEM;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	store_replace_abort(s);
	store_map_clear(&s->live);
	for (size_t i = 0; i < s->nindexes; i++)
		free(s->indexes[i].name);
	pthread_rwlock_destroy(&s->lock);
	free(s);
}

int store_add_index(struct store *s, const char *name, store_index_fn fn, void *arg)
{
	if (!s || !name || !fn)
		return KERR_INVAL;
	int rc = store_wrlock(s);
	if (rc)
		return rc;
	if (s->live.entries || s->side || s->nindexes == STORE_MAX_INDEXES ||
	    store_find_index(s, name) >= 0) {
		rc = KERR_INVAL;
		goto out;
	}
	char *copy = strdup(name);
	if (!copy) {
		rc = KERR_NOMEM;
		goto out;
	}
	s->indexes[s->nindexes].name = copy;
	s->indexes[s->nindexes].fn = fn;
	s->indexes[s->nindexes].arg = arg;
	s->nindexes++;
out:
	store_unlock(s);
	return rc;
}

struct kobj *store_get(struct store *s, const char *key)
{
	struct store_entry *e;
	struct kobj *obj = NULL;
	if (!key || store_rdlock(s) != 0)
		return NULL;
	HASH_FIND_STR(s->live.entries, key, e);
	if (e)
		obj = kobj_ref(e->obj);
	store_unlock(s);
	return obj;
}

int store_list(struct store *s, struct kobj ***objs, size_t *n)
{
	*objs = NULL;
	*n = 0;
	int rc = store_rdlock(s);
	if (rc)
		return rc;
	size_t count = HASH_COUNT(s->live.entries);
	if (count > 0) {
		struct kobj **a = malloc(count * sizeof(*a));
		if (!a) {
			store_unlock(s);
			return KERR_NOMEM;
		}
		size_t i = 0;
		for (struct store_entry *e = s->live.entries; e; e = e->hh.next)
			a[i++] = kobj_ref(e->obj);
		*objs = a;
		*n = count;
	}
	store_unlock(s);
	return 0;
}

int store_by_index(struct store *s, const char *index, const char *value, struct kobj ***objs,
		   size_t *n)
{
	*objs = NULL;
	*n = 0;
	if (!index || !value)
		return KERR_INVAL;
	int rc = store_rdlock(s);
	if (rc)
		return rc;
	int i = store_find_index(s, index);
	if (i < 0) {
		store_unlock(s);
		return KERR_NOT_FOUND;
	}
	struct store_bucket *b;
	HASH_FIND_STR(s->live.buckets[i], value, b);
	if (b) {
		/* Buckets are never empty. */
		struct kobj **a = malloc(b->count * sizeof(*a));
		if (!a) {
			store_unlock(s);
			return KERR_NOMEM;
		}
		size_t k = 0;
		for (struct store_member *mb = b->members; mb; mb = mb->next)
			a[k++] = kobj_ref(mb->entry->obj);
		*objs = a;
		*n = k;
	}
	store_unlock(s);
	return 0;
}

void store_list_free(struct kobj **objs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kobj_unref(objs[i]);
	free(objs);
}

int store_index_keys(struct store *s, const char *index, char ***values, size_t *n)
{
	*values = NULL;
	*n = 0;
	if (!index)
		return KERR_INVAL;
	int rc = store_rdlock(s);
	if (rc)
		return rc;
	int i = store_find_index(s, index);
	if (i < 0) {
		store_unlock(s);
		return KERR_NOT_FOUND;
	}
	size_t count = HASH_COUNT(s->live.buckets[i]);
	if (count > 0) {
		size_t size = count * sizeof(char *);
		struct store_bucket *b;
		for (b = s->live.buckets[i]; b; b = b->hh.next)
			size += strlen(b->value) + 1;
		char **a = malloc(size);
		if (!a) {
			store_unlock(s);
			return KERR_NOMEM;
		}
		char *p = (char *)(a + count);
		size_t k = 0;
		for (b = s->live.buckets[i]; b; b = b->hh.next) {
			size_t len = strlen(b->value) + 1;
			memcpy(p, b->value, len);
			a[k++] = p;
			p += len;
		}
		*values = a;
		*n = count;
	}
	store_unlock(s);
	return 0;
}

size_t store_len(struct store *s)
{
	if (store_rdlock(s) != 0)
		return 0;
	size_t n = HASH_COUNT(s->live.entries);
	store_unlock(s);
	return n;
}

bool store_synced(struct store *s)
{
	return atomic_load(&s->synced);
}

int store_upsert(struct store *s, struct kobj *obj, struct kobj **old)
{
	struct kobj *prev = NULL;
	if (!obj || !obj->key)
		return KERR_INVAL;
	int rc = store_wrlock(s);
	if (rc)
		return rc;
	rc = store_map_upsert(s, &s->live, obj, &prev);
	store_unlock(s);
	if (rc)
		return rc;
	/* Outside the lock: the last unref runs the kind's destructor. */
	if (old)
		*old = prev;
	else
		kobj_unref(prev);
	return 0;
}

struct kobj *store_delete(struct store *s, const char *key)
{
	struct store_entry *e;
	struct kobj *obj = NULL;
	if (!key || store_wrlock(s) != 0)
		return NULL;
	HASH_FIND_STR(s->live.entries, key, e);
	if (e)
		obj = store_map_remove(s, &s->live, e);
	store_unlock(s);
	return obj;
}

int store_replace_begin(struct store *s)
{
	store_replace_abort(s);
	s->side = calloc(1, sizeof(*s->side));
	return s->side ? 0 : KERR_NOMEM;
}

int store_replace_add(struct store *s, struct kobj *obj)
{
	struct kobj *dup = NULL;
	if (!s->side || !obj || !obj->key)
		return KERR_INVAL;
	int rc = store_map_upsert(s, s->side, obj, &dup);
	if (rc)
		return rc;
	kobj_unref(dup);
	return 0;
}

int store_replace_commit(struct store *s, store_diff_fn fn, void *arg)
{
	if (!s->side)
		return KERR_INVAL;
	int rc = store_wrlock(s);
	if (rc)
		return rc;
	struct store_map prev = s->live;
	s->live = *s->side;
	atomic_store(&s->synced, true);
	store_unlock(s);
	free(s->side);
	s->side = NULL;

	/* The writer is the only thread that changes live, so it can read it
	 * here unlocked while the callbacks run. */
	if (fn) {
		struct store_entry *e, *pe;
		for (e = s->live.entries; e; e = e->hh.next) {
			HASH_FIND_STR(prev.entries, e->obj->key, pe);
			if (!pe)
				fn(arg, STORE_ADDED, NULL, e->obj);
			else if (strcmp(pe->obj->resource_version, e->obj->resource_version) != 0)
				fn(arg, STORE_UPDATED, pe->obj, e->obj);
		}
		for (pe = prev.entries; pe; pe = pe->hh.next) {
			HASH_FIND_STR(s->live.entries, pe->obj->key, e);
			if (!e)
				fn(arg, STORE_DELETED, pe->obj, NULL);
		}
	}
	store_map_clear(&prev);
	return 0;
}

void store_replace_abort(struct store *s)
{
	if (!s || !s->side)
		return;
	store_map_clear(s->side);
	free(s->side);
	s->side = NULL;
}
