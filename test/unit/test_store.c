#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kerr.h"
#include "kinds.h"
#include "kobj.h"
#include "store.h"

/*
 * Test objects: a kobj with up to four labels and a node name, in one
 * allocation. The test kind counts destructions so that each test can check
 * that every object is freed exactly once.
 */
#define TEST_MAX_LABELS 4

struct tobj {
	struct kobj o;
	const char *node;
	struct kobj_label labels[TEST_MAX_LABELS];
	char buf[512];
};

static atomic_int created, destroyed;

static void tobj_destroy(struct kobj *o)
{
	atomic_fetch_add(&destroyed, 1);
	free(o);
}

static const struct kind test_kind = {.name = "Test", .destroy = tobj_destroy};

static char *tobj_str(struct tobj *t, size_t *used, const char *s, size_t len)
{
	char *p = t->buf + *used;
	assert_true(*used + len + 1 <= sizeof(t->buf));
	memcpy(p, s, len);
	p[len] = '\0';
	*used += len + 1;
	return p;
}

/* labels: "k=v,k=v" sorted by key, or "". */
static struct kobj *mk(const char *ns, const char *name, const char *rv, const char *node,
		       const char *labels)
{
	struct tobj *t = calloc(1, sizeof(*t));
	size_t used = 0;
	char key[128];
	assert_non_null(t);
	atomic_init(&t->o.refs, 1);
	t->o.kind = &test_kind;
	snprintf(key, sizeof(key), "%s%s%s", ns, *ns ? "/" : "", name);
	t->o.key = tobj_str(t, &used, key, strlen(key));
	t->o.ns = tobj_str(t, &used, ns, strlen(ns));
	t->o.name = tobj_str(t, &used, name, strlen(name));
	t->o.uid = "";
	t->o.resource_version = tobj_str(t, &used, rv, strlen(rv));
	t->node = tobj_str(t, &used, node, strlen(node));
	const char *p = labels;
	while (*p) {
		const char *eq = strchr(p, '=');
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		assert_non_null(eq);
		assert_true(t->o.nlabels < TEST_MAX_LABELS);
		struct kobj_label *l = &t->labels[t->o.nlabels++];
		l->key = tobj_str(t, &used, p, (size_t)(eq - p));
		l->value = tobj_str(t, &used, eq + 1, (size_t)(end - eq - 1));
		p = *end ? end + 1 : end;
	}
	t->o.labels = t->labels;
	atomic_fetch_add(&created, 1);
	return &t->o;
}

static int reset_counts(void **state)
{
	(void)state;
	atomic_store(&created, 0);
	atomic_store(&destroyed, 0);
	return 0;
}

/* Stands in for the kinds module's pod-by-node index. */
static size_t index_node(const struct kobj *o, void *arg, const char **values, size_t max)
{
	(void)arg;
	const struct tobj *t = (const struct tobj *)o;
	if (!*t->node || max == 0)
		return 0;
	values[0] = t->node;
	return 1;
}

/* Multi-valued, with duplicates: every label value. */
static size_t index_label_values(const struct kobj *o, void *arg, const char **values, size_t max)
{
	(void)arg;
	size_t n = 0;
	for (size_t i = 0; i < o->nlabels && n < max; i++)
		values[n++] = o->labels[i].value;
	return n;
}

static struct store *new_store(void)
{
	struct store *s = NULL;
	assert_int_equal(store_new(&s), 0);
	assert_int_equal(store_add_index(s, "namespace", store_index_namespace, NULL), 0);
	assert_int_equal(store_add_index(s, "tenant", store_index_label, (void *)"nimbus.io/tenant"), 0);
	assert_int_equal(store_add_index(s, "node", index_node, NULL), 0);
	assert_int_equal(store_add_index(s, "values", index_label_values, NULL), 0);
	return s;
}

static size_t count_by(struct store *s, const char *index, const char *value)
{
	struct kobj **objs;
	size_t n;
	assert_int_equal(store_by_index(s, index, value, &objs, &n), 0);
	for (size_t i = 0; i < n; i++) {
		/* Every object of a bucket is distinct. */
		for (size_t j = i + 1; j < n; j++)
			assert_ptr_not_equal(objs[i], objs[j]);
	}
	store_list_free(objs, n);
	return n;
}

static size_t count_keys(struct store *s, const char *index)
{
	char **values;
	size_t n;
	assert_int_equal(store_index_keys(s, index, &values, &n), 0);
	free(values);
	return n;
}

static bool has_key(struct store *s, const char *index, const char *value)
{
	char **values;
	size_t n;
	bool found = false;
	assert_int_equal(store_index_keys(s, index, &values, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (strcmp(values[i], value) == 0)
			found = true;
	free(values);
	return found;
}

static void upsert_get_delete_list(void **state)
{
	(void)state;
	struct store *s = new_store();
	struct kobj *old = (struct kobj *)1;

	struct kobj *a1 = mk("ns1", "a", "1", "", "");
	assert_int_equal(store_upsert(s, a1, &old), 0);
	assert_null(old);
	assert_int_equal(store_upsert(s, mk("", "cluster", "1", "", ""), NULL), 0);
	assert_int_equal(store_len(s), 2);

	struct kobj *got = store_get(s, "ns1/a");
	assert_ptr_equal(got, a1);
	assert_int_equal(atomic_load(&got->refs), 2);
	kobj_unref(got);
	assert_non_null(got = store_get(s, "cluster"));
	assert_string_equal(got->ns, "");
	kobj_unref(got);
	assert_null(store_get(s, "ns1/missing"));
	assert_null(store_get(s, "a"));

	struct kobj *a2 = mk("ns1", "a", "2", "", "");
	assert_int_equal(store_upsert(s, a2, &old), 0);
	assert_ptr_equal(old, a1);
	assert_int_equal(atomic_load(&destroyed), 0);
	kobj_unref(old);
	assert_int_equal(atomic_load(&destroyed), 1);
	assert_int_equal(store_len(s), 2);
	/* The key now lives in a2: a1's memory is gone, the lookup still works. */
	assert_non_null(got = store_get(s, "ns1/a"));
	assert_string_equal(got->resource_version, "2");
	kobj_unref(got);

	/* Without old, the store drops the replaced object itself. */
	assert_int_equal(store_upsert(s, mk("ns1", "a", "3", "", ""), NULL), 0);
	assert_int_equal(atomic_load(&destroyed), 2);

	struct kobj **objs;
	size_t n;
	assert_int_equal(store_list(s, &objs, &n), 0);
	assert_int_equal(n, 2);
	int seen_a = 0, seen_cluster = 0;
	for (size_t i = 0; i < n; i++) {
		seen_a += strcmp(objs[i]->key, "ns1/a") == 0;
		seen_cluster += strcmp(objs[i]->key, "cluster") == 0;
	}
	assert_int_equal(seen_a, 1);
	assert_int_equal(seen_cluster, 1);
	store_list_free(objs, n);

	struct kobj *del = store_delete(s, "ns1/a");
	assert_non_null(del);
	assert_string_equal(del->resource_version, "3");
	assert_int_equal(store_len(s), 1);
	assert_null(store_get(s, "ns1/a"));
	assert_int_equal(atomic_load(&destroyed), 2);
	kobj_unref(del);
	assert_int_equal(atomic_load(&destroyed), 3);
	assert_null(store_delete(s, "ns1/a"));

	assert_int_equal(store_list(s, &objs, &n), 0);
	assert_int_equal(n, 1);
	store_list_free(objs, n);

	store_free(s);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
}

static void empty_store_reads(void **state)
{
	(void)state;
	struct store *s = new_store();
	struct kobj **objs = (struct kobj **)1;
	size_t n = 7;
	assert_int_equal(store_list(s, &objs, &n), 0);
	assert_null(objs);
	assert_int_equal(n, 0);
	assert_int_equal(store_by_index(s, "node", "n1", &objs, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(count_keys(s, "node"), 0);
	assert_false(store_synced(s));
	store_list_free(NULL, 0);
	store_free(s);
}

static void a_held_reference_outlives_delete(void **state)
{
	(void)state;
	struct store *s = new_store();
	assert_int_equal(store_upsert(s, mk("ns", "a", "1", "", ""), NULL), 0);
	struct kobj *reader = store_get(s, "ns/a");
	kobj_unref(store_delete(s, "ns/a"));
	assert_int_equal(atomic_load(&destroyed), 0);
	assert_string_equal(reader->name, "a");
	kobj_unref(reader);
	assert_int_equal(atomic_load(&destroyed), 1);
	store_free(s);
	assert_int_equal(atomic_load(&destroyed), 1);
}

static void index_registration_rules(void **state)
{
	(void)state;
	struct store *s = NULL;
	char name[16];
	assert_int_equal(store_new(&s), 0);
	for (int i = 0; i < STORE_MAX_INDEXES; i++) {
		snprintf(name, sizeof(name), "i%d", i);
		assert_int_equal(store_add_index(s, name, store_index_namespace, NULL), 0);
	}
	assert_int_equal(store_add_index(s, "one-too-many", store_index_namespace, NULL), KERR_INVAL);
	store_free(s);

	s = new_store();
	assert_int_equal(store_add_index(s, "node", index_node, NULL), KERR_INVAL);
	struct kobj **objs;
	size_t n;
	char **values;
	assert_int_equal(store_by_index(s, "nope", "x", &objs, &n), KERR_NOT_FOUND);
	assert_int_equal(store_index_keys(s, "nope", &values, &n), KERR_NOT_FOUND);
	assert_int_equal(store_upsert(s, mk("ns", "a", "1", "", ""), NULL), 0);
	assert_int_equal(store_add_index(s, "late", index_node, NULL), KERR_INVAL);
	store_free(s);
}

static void namespace_and_node_indexes(void **state)
{
	(void)state;
	struct store *s = new_store();
	assert_int_equal(store_upsert(s, mk("ns1", "a", "1", "n1", ""), NULL), 0);
	assert_int_equal(store_upsert(s, mk("ns1", "b", "1", "n2", ""), NULL), 0);
	assert_int_equal(store_upsert(s, mk("ns2", "c", "1", "n1", ""), NULL), 0);
	assert_int_equal(store_upsert(s, mk("", "node-x", "1", "", ""), NULL), 0);

	assert_int_equal(count_by(s, "namespace", "ns1"), 2);
	assert_int_equal(count_by(s, "namespace", "ns2"), 1);
	assert_int_equal(count_by(s, "namespace", ""), 1);
	assert_int_equal(count_by(s, "namespace", "ns3"), 0);
	assert_int_equal(count_by(s, "node", "n1"), 2);
	assert_int_equal(count_by(s, "node", "n2"), 1);
	/* An object with no value is in no bucket. */
	assert_int_equal(count_keys(s, "node"), 2);

	/* A pod scheduled onto another node moves bucket. */
	assert_int_equal(store_upsert(s, mk("ns1", "b", "2", "n1", ""), NULL), 0);
	assert_int_equal(count_by(s, "node", "n1"), 3);
	assert_false(has_key(s, "node", "n2"));

	struct kobj **objs;
	size_t n;
	assert_int_equal(store_by_index(s, "namespace", "ns2", &objs, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(objs[0]->key, "ns2/c");
	assert_int_equal(atomic_load(&objs[0]->refs), 2);
	store_list_free(objs, n);

	kobj_unref(store_delete(s, "ns2/c"));
	assert_false(has_key(s, "namespace", "ns2"));
	assert_int_equal(count_by(s, "node", "n1"), 2);
	store_free(s);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
}

static void label_index_follows_label_changes(void **state)
{
	(void)state;
	struct store *s = new_store();
	assert_int_equal(store_upsert(s, mk("ns", "a", "1", "", "nimbus.io/tenant=t1"), NULL), 0);
	assert_int_equal(store_upsert(s, mk("ns", "b", "1", "", "nimbus.io/tenant=t1"), NULL), 0);
	assert_int_equal(store_upsert(s, mk("ns", "c", "1", "", "app=web"), NULL), 0);
	assert_int_equal(count_by(s, "tenant", "t1"), 2);
	assert_int_equal(count_keys(s, "tenant"), 1);

	/* Label value changed: out of t1, into t2. */
	assert_int_equal(store_upsert(s, mk("ns", "a", "2", "", "nimbus.io/tenant=t2"), NULL), 0);
	assert_int_equal(count_by(s, "tenant", "t1"), 1);
	assert_int_equal(count_by(s, "tenant", "t2"), 1);
	/* Label removed: out of the index altogether, and t1 empties. */
	assert_int_equal(store_upsert(s, mk("ns", "b", "2", "", "app=web"), NULL), 0);
	assert_int_equal(count_by(s, "tenant", "t1"), 0);
	assert_false(has_key(s, "tenant", "t1"));
	/* Label added. */
	assert_int_equal(store_upsert(s, mk("ns", "c", "2", "", "app=web,nimbus.io/tenant=t2"), NULL), 0);
	assert_int_equal(count_by(s, "tenant", "t2"), 2);
	/* Unchanged value across an update: still exactly once in its bucket. */
	assert_int_equal(store_upsert(s, mk("ns", "c", "3", "", "app=api,nimbus.io/tenant=t2"), NULL), 0);
	assert_int_equal(count_by(s, "tenant", "t2"), 2);
	assert_int_equal(count_keys(s, "tenant"), 1);
	assert_true(has_key(s, "tenant", "t2"));
	store_free(s);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
}

static void multi_valued_index(void **state)
{
	(void)state;
	struct store *s = new_store();
	/* Values x, x, y: the duplicate counts once. */
	assert_int_equal(store_upsert(s, mk("ns", "a", "1", "", "a=x,b=x,c=y"), NULL), 0);
	assert_int_equal(store_upsert(s, mk("ns", "b", "1", "", "a=y"), NULL), 0);
	assert_int_equal(count_by(s, "values", "x"), 1);
	assert_int_equal(count_by(s, "values", "y"), 2);
	assert_int_equal(count_keys(s, "values"), 2);

	/* x goes (old only), y stays (both), z comes (new only). */
	assert_int_equal(store_upsert(s, mk("ns", "a", "2", "", "a=y,b=z"), NULL), 0);
	assert_int_equal(count_by(s, "values", "x"), 0);
	assert_int_equal(count_by(s, "values", "y"), 2);
	assert_int_equal(count_by(s, "values", "z"), 1);
	assert_int_equal(count_keys(s, "values"), 2);
	assert_false(has_key(s, "values", "x"));
	assert_true(has_key(s, "values", "z"));

	kobj_unref(store_delete(s, "ns/a"));
	assert_int_equal(count_by(s, "values", "y"), 1);
	assert_int_equal(count_keys(s, "values"), 1);
	store_free(s);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
}

static void empty_buckets_are_removed(void **state)
{
	(void)state;
	struct store *s = new_store();
	char name[32], node[32], labels[64];
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		snprintf(node, sizeof(node), "node-%d", i);
		snprintf(labels, sizeof(labels), "nimbus.io/tenant=t%d", i);
		assert_int_equal(store_upsert(s, mk(name, name, "1", node, labels), NULL), 0);
	}
	assert_int_equal(count_keys(s, "node"), 200);
	assert_int_equal(count_keys(s, "namespace"), 200);
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "p%d/p%d", i, i);
		kobj_unref(store_delete(s, name));
	}
	/* Moving the rest off their node and tenant empties those buckets too. */
	for (int i = 100; i < 200; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		assert_int_equal(store_upsert(s, mk(name, name, "2", "shared", ""), NULL), 0);
	}
	assert_int_equal(count_keys(s, "node"), 1);
	assert_int_equal(count_by(s, "node", "shared"), 100);
	assert_int_equal(count_keys(s, "tenant"), 0);
	assert_int_equal(count_keys(s, "namespace"), 100);
	assert_int_equal(count_keys(s, "values"), 0);
	store_free(s);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
}

struct diff_log {
	int added, updated, deleted;
	char lines[16][64];
	int n;
};

static void record_diff(void *arg, enum store_diff op, struct kobj *old, struct kobj *new_obj)
{
	struct diff_log *log = arg;
	assert_true(log->n < 16);
	switch (op) {
	case STORE_ADDED:
		assert_null(old);
		log->added++;
		snprintf(log->lines[log->n++], 64, "add %s %s", new_obj->key, new_obj->resource_version);
		break;
	case STORE_UPDATED:
		assert_string_equal(old->key, new_obj->key);
		log->updated++;
		snprintf(log->lines[log->n++], 64, "update %s %s->%s", new_obj->key,
			 old->resource_version, new_obj->resource_version);
		break;
	case STORE_DELETED:
		assert_null(new_obj);
		log->deleted++;
		snprintf(log->lines[log->n++], 64, "delete %s %s", old->key, old->resource_version);
		break;
	}
}

static bool logged(const struct diff_log *log, const char *line)
{
	for (int i = 0; i < log->n; i++)
		if (strcmp(log->lines[i], line) == 0)
			return true;
	return false;
}

static void replace_reports_the_difference(void **state)
{
	(void)state;
	struct store *s = new_store();
	struct diff_log log = {0};

	assert_int_equal(store_upsert(s, mk("ns1", "a", "1", "n1", ""), NULL), 0);
	assert_int_equal(store_upsert(s, mk("ns1", "b", "1", "n1", ""), NULL), 0);
	assert_int_equal(store_upsert(s, mk("ns2", "c", "1", "n2", ""), NULL), 0);
	assert_false(store_synced(s));

	assert_int_equal(store_replace_begin(s), 0);
	assert_int_equal(store_replace_add(s, mk("ns1", "a", "1", "n1", "")), 0);
	assert_int_equal(store_replace_add(s, mk("ns1", "b", "2", "n3", "")), 0);
	assert_int_equal(store_replace_add(s, mk("ns3", "d", "1", "n3", "")), 0);
	/* A key listed twice keeps the later object. */
	assert_int_equal(store_replace_add(s, mk("ns3", "d", "5", "n3", "")), 0);
	assert_int_equal(atomic_load(&destroyed), 1);

	/* Readers still see the old contents. */
	assert_int_equal(store_len(s), 3);
	assert_null(store_get(s, "ns3/d"));
	assert_int_equal(count_by(s, "node", "n3"), 0);
	assert_int_equal(count_by(s, "namespace", "ns2"), 1);
	assert_false(store_synced(s));

	assert_int_equal(store_replace_commit(s, record_diff, &log), 0);
	assert_true(store_synced(s));
	assert_int_equal(log.added, 1);
	assert_int_equal(log.updated, 1);
	assert_int_equal(log.deleted, 1);
	assert_true(logged(&log, "add ns3/d 5"));
	assert_true(logged(&log, "update ns1/b 1->2"));
	assert_true(logged(&log, "delete ns2/c 1"));

	/* The first d, then the previous a, b and c are released. */
	assert_int_equal(atomic_load(&destroyed), 4);
	assert_int_equal(store_len(s), 3);
	assert_null(store_get(s, "ns2/c"));
	assert_int_equal(count_by(s, "node", "n3"), 2);
	assert_int_equal(count_by(s, "node", "n1"), 1);
	assert_false(has_key(s, "node", "n2"));
	assert_false(has_key(s, "namespace", "ns2"));

	/* Writes go on after a relist. */
	assert_int_equal(store_upsert(s, mk("ns1", "a", "2", "n2", ""), NULL), 0);
	assert_int_equal(count_by(s, "node", "n2"), 1);

	/* An identical relist reports nothing; a second one keeps synced. */
	memset(&log, 0, sizeof(log));
	assert_int_equal(store_replace_begin(s), 0);
	assert_int_equal(store_replace_add(s, mk("ns1", "a", "2", "n2", "")), 0);
	assert_int_equal(store_replace_add(s, mk("ns1", "b", "2", "n3", "")), 0);
	assert_int_equal(store_replace_add(s, mk("ns3", "d", "5", "n3", "")), 0);
	assert_int_equal(store_replace_commit(s, record_diff, &log), 0);
	assert_int_equal(log.n, 0);
	assert_true(store_synced(s));

	/* An empty relist deletes everything. */
	assert_int_equal(store_replace_begin(s), 0);
	assert_int_equal(store_replace_commit(s, record_diff, &log), 0);
	assert_int_equal(log.deleted, 3);
	assert_int_equal(store_len(s), 0);
	assert_int_equal(count_keys(s, "node"), 0);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
	store_free(s);
}

static void replace_abort_and_misuse(void **state)
{
	(void)state;
	struct store *s = new_store();
	struct kobj *x = mk("ns", "x", "1", "", "");
	assert_int_equal(store_replace_add(s, x), KERR_INVAL);
	assert_int_equal(store_replace_commit(s, NULL, NULL), KERR_INVAL);
	kobj_unref(x);

	assert_int_equal(store_upsert(s, mk("ns", "a", "1", "", ""), NULL), 0);
	assert_int_equal(store_replace_begin(s), 0);
	assert_int_equal(store_add_index(s, "late", index_node, NULL), KERR_INVAL);
	assert_int_equal(store_replace_add(s, mk("ns", "b", "1", "", "")), 0);
	store_replace_abort(s);
	assert_int_equal(atomic_load(&destroyed), 2);
	assert_int_equal(store_replace_commit(s, NULL, NULL), KERR_INVAL);
	assert_int_equal(store_len(s), 1);
	assert_false(store_synced(s));

	/* A begin discards an unfinished relist; a NULL callback is allowed. */
	assert_int_equal(store_replace_begin(s), 0);
	assert_int_equal(store_replace_add(s, mk("ns", "c", "1", "", "")), 0);
	assert_int_equal(store_replace_begin(s), 0);
	assert_int_equal(atomic_load(&destroyed), 3);
	assert_int_equal(store_replace_add(s, mk("ns", "d", "1", "", "")), 0);
	assert_int_equal(store_replace_commit(s, NULL, NULL), 0);
	assert_true(store_synced(s));
	assert_int_equal(store_len(s), 1);
	assert_non_null(x = store_get(s, "ns/d"));
	kobj_unref(x);

	/* Freeing during a relist frees the buffer too. */
	assert_int_equal(store_replace_begin(s), 0);
	assert_int_equal(store_replace_add(s, mk("ns", "e", "1", "", "")), 0);
	store_free(s);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
}

/* ---- readers against a churning writer ---------------------------------- */

#define CHURN_KEYS 64
#define CHURN_WRITES 20000
#define CHURN_READERS 3

struct churn {
	struct store *s;
	atomic_bool stop;
	atomic_int errors;
	atomic_long reads;
};

static const char *const tenants[] = {"t0", "t1", "t2"};

static void *churn_writer(void *arg)
{
	struct churn *c = arg;
	char name[16], labels[64];
	for (int i = 0; i < CHURN_WRITES; i++) {
		int k = i % CHURN_KEYS;
		snprintf(name, sizeof(name), "k%d", k);
		if (i % 7 == 0) {
			char key[32];
			snprintf(key, sizeof(key), "ns/%s", name);
			kobj_unref(store_delete(c->s, key));
			continue;
		}
		char rv[16];
		snprintf(rv, sizeof(rv), "%d", i);
		snprintf(labels, sizeof(labels), "nimbus.io/tenant=%s", tenants[(i / CHURN_KEYS) % 3]);
		if (store_upsert(c->s, mk("ns", name, rv, "", labels), NULL) != 0)
			atomic_fetch_add(&c->errors, 1);
		if (i % 2000 == 0) {
			/* A relist in the middle of the churn. */
			if (store_replace_begin(c->s) != 0 ||
			    store_replace_add(c->s, mk("ns", "k0", rv, "", "nimbus.io/tenant=t0")) != 0 ||
			    store_replace_commit(c->s, NULL, NULL) != 0)
				atomic_fetch_add(&c->errors, 1);
		}
	}
	atomic_store(&c->stop, true);
	return NULL;
}

static void *churn_reader(void *arg)
{
	struct churn *c = arg;
	unsigned seed = 1;
	char key[32];
	while (!atomic_load(&c->stop)) {
		seed = seed * 1103515245 + 12345;
		snprintf(key, sizeof(key), "ns/k%u", (seed >> 8) % CHURN_KEYS);
		struct kobj *o = store_get(c->s, key);
		if (o && (strcmp(o->key, key) != 0 || atomic_load(&o->refs) < 1))
			atomic_fetch_add(&c->errors, 1);
		kobj_unref(o);

		const char *t = tenants[(seed >> 4) % 3];
		struct kobj **objs;
		size_t n;
		if (store_by_index(c->s, "tenant", t, &objs, &n) != 0 || n > CHURN_KEYS)
			atomic_fetch_add(&c->errors, 1);
		for (size_t i = 0; i < n; i++) {
			const char *v = kobj_label(objs[i], "nimbus.io/tenant");
			if (!v || strcmp(v, t) != 0)
				atomic_fetch_add(&c->errors, 1);
		}
		store_list_free(objs, n);

		if (store_list(c->s, &objs, &n) != 0 || n > CHURN_KEYS)
			atomic_fetch_add(&c->errors, 1);
		for (size_t i = 0; i < n; i++)
			if (strncmp(objs[i]->key, "ns/k", 4) != 0)
				atomic_fetch_add(&c->errors, 1);
		store_list_free(objs, n);
		atomic_fetch_add(&c->reads, 1);
	}
	return NULL;
}

static void readers_and_a_churning_writer(void **state)
{
	(void)state;
	struct churn c = {.s = new_store()};
	pthread_t readers[CHURN_READERS], writer;
	atomic_init(&c.stop, false);
	atomic_init(&c.errors, 0);
	atomic_init(&c.reads, 0);
	for (int i = 0; i < CHURN_READERS; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, churn_reader, &c), 0);
	assert_int_equal(pthread_create(&writer, NULL, churn_writer, &c), 0);
	assert_int_equal(pthread_join(writer, NULL), 0);
	for (int i = 0; i < CHURN_READERS; i++)
		assert_int_equal(pthread_join(readers[i], NULL), 0);
	assert_int_equal(atomic_load(&c.errors), 0);
	assert_true(atomic_load(&c.reads) > 0);
	assert_true(store_len(c.s) <= CHURN_KEYS);
	assert_true(count_keys(c.s, "tenant") <= 3);
	store_free(c.s);
	assert_int_equal(atomic_load(&destroyed), atomic_load(&created));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(upsert_get_delete_list, reset_counts),
		cmocka_unit_test_setup(empty_store_reads, reset_counts),
		cmocka_unit_test_setup(a_held_reference_outlives_delete, reset_counts),
		cmocka_unit_test_setup(index_registration_rules, reset_counts),
		cmocka_unit_test_setup(namespace_and_node_indexes, reset_counts),
		cmocka_unit_test_setup(label_index_follows_label_changes, reset_counts),
		cmocka_unit_test_setup(multi_valued_index, reset_counts),
		cmocka_unit_test_setup(empty_buckets_are_removed, reset_counts),
		cmocka_unit_test_setup(replace_reports_the_difference, reset_counts),
		cmocka_unit_test_setup(replace_abort_and_misuse, reset_counts),
		cmocka_unit_test_setup(readers_and_a_churning_writer, reset_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
