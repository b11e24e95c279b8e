/* The decoder core shared by every kind: scratch arena, metadata, typed
 * values, the two-pass layout into one block, the kind table and Status. */
#include "kinds_internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kintern.h"
#include "quantity.h"
#include "timefmt.h"

/* The first block serves a typical object whole and is kept between objects. */
#define KD_BLOCK_SIZE 8192
/* Scratch per object; a bigger object is refused rather than cached. */
#define KD_MAX_SCRATCH ((size_t)64 << 20)

struct kblock {
	struct kblock *next; /* older block */
	size_t cap, used;
	max_align_t mem[];
};

struct kmeta_builder {
	const char *name, *ns, *uid, *resource_version;
	const char *kind_name; /* top-level "kind", when present */
	int64_t generation, created, deleted;
	struct klabels labels;
	struct kvec owners; /* of struct kobj_owner with scratch strings */
};

struct kdecode {
	const struct kind *kind;
	struct kblock *blocks; /* newest first */
	size_t scratch;        /* bytes of blocks allocated for this object */
	struct kerr err;
	struct kmeta_builder meta;
	void *state;
	/* References kintern_get gave the sizing pass of the layout, in call
	 * order; the fill pass hands them to the object (see ka_istr). */
	struct kvec interned; /* of const char * */
};

/* ---- scratch arena ---- */

static size_t kd_round(size_t n)
{
	size_t a = _Alignof(max_align_t);
	return (n + a - 1) / a * a;
}

void kd_fail(struct kdecode *d, int code, const char *fmt, ...)
{
	if (d->err.code)
		return;
	d->err.code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err.message, sizeof(d->err.message), fmt, ap);
	va_end(ap);
}

void *kd_alloc(struct kdecode *d, size_t size)
{
	size = kd_round(size ? size : 1);
	struct kblock *b = d->blocks;
	if (!b || b->cap - b->used < size) {
		size_t cap = size > KD_BLOCK_SIZE ? size : KD_BLOCK_SIZE;
		if (d->scratch + cap > KD_MAX_SCRATCH) {
			kd_fail(d, KERR_TOO_LARGE, "%s object needs more than %zu MiB to decode",
			        d->kind->name, KD_MAX_SCRATCH >> 20);
			return NULL;
		}
		b = malloc(sizeof(*b) + cap);
		if (!b) {
			kd_fail(d, KERR_NOMEM, "out of memory decoding a %s", d->kind->name);
			return NULL;
		}
		b->next = d->blocks;
		b->cap = cap;
		b->used = 0;
		d->blocks = b;
		d->scratch += cap;
	}
	void *p = (char *)b->mem + b->used;
	b->used += size;
	memset(p, 0, size);
	return p;
}

/* Keep only the oldest block, and only when it is of the usual size, so one
 * huge object does not pin its scratch forever. */
static void kd_reset(struct kdecode *d)
{
	while (d->blocks && (d->blocks->next || d->blocks->cap > KD_BLOCK_SIZE)) {
		struct kblock *b = d->blocks;
		d->blocks = b->next;
		free(b);
	}
	d->scratch = 0;
	if (d->blocks) {
		d->blocks->used = 0;
		d->scratch = d->blocks->cap;
	}
}

char *kd_strdup(struct kdecode *d, const char *s, size_t len)
{
	char *c = kd_alloc(d, len + 1);
	if (c)
		memcpy(c, s, len);
	return c;
}

void *kd_vec_at(struct kdecode *d, struct kvec *v, size_t i, size_t elsize)
{
	if (i >= v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		while (cap <= i)
			cap *= 2;
		void *items = kd_alloc(d, cap * elsize);
		if (!items)
			return NULL;
		if (v->n)
			memcpy(items, v->items, v->n * elsize);
		v->items = items;
		v->cap = cap;
	}
	if (i >= v->n)
		v->n = i + 1; /* the arena zeroed the new elements */
	return (char *)v->items + i * elsize;
}

static void *kd_vec_push(struct kdecode *d, struct kvec *v, size_t elsize)
{
	return kd_vec_at(d, v, v->n, elsize);
}

/* ---- paths ---- */

/* One pass over pat, byte against byte: this runs for most values of every
 * object, and a mismatch usually shows at a segment's first byte. */
int kpath_prefix(const struct json_path *p, const char *pat, size_t *idx, struct json_path *rest)
{
	size_t depth = 0, nidx = 0;
	const char *c = pat;
	while (*c) {
		if (depth >= p->depth)
			return 0;
		const struct json_seg *s = &p->seg[depth];
		int whole = c[1] == '.' || c[1] == '\0';
		if (whole && *c == '#') {
			if (s->key)
				return 0;
			if (idx)
				idx[nidx++] = s->index;
			c++;
		} else if (whole && *c == '*') {
			if (!s->key)
				return 0;
			c++;
		} else {
			if (!s->key)
				return 0;
			size_t i = 0;
			for (; *c && *c != '.'; c++, i++)
				if (i >= s->keylen || s->key[i] != *c)
					return 0;
			if (i != s->keylen)
				return 0;
		}
		depth++;
		if (*c == '.')
			c++;
	}
	if (rest) {
		rest->depth = p->depth - depth;
		rest->seg = p->seg + depth;
	}
	return 1;
}

int kpath_match(const struct json_path *p, const char *pat, size_t *idx)
{
	struct json_path rest;
	return kpath_prefix(p, pat, idx, &rest) && rest.depth == 0;
}

const char *kpath_last(const struct json_path *p)
{
	if (p->depth == 0 || !p->seg[p->depth - 1].key)
		return "";
	return p->seg[p->depth - 1].key;
}

const char *kd_path_text(struct kdecode *d, const struct json_path *p)
{
	size_t cap = 1;
	for (size_t i = 0; i < p->depth; i++)
		cap += (p->seg[i].key ? p->seg[i].keylen : 0) + 24;
	char *buf = kd_alloc(d, cap);
	if (!buf)
		return "?";
	size_t n = 0;
	for (size_t i = 0; i < p->depth; i++) {
		const struct json_seg *s = &p->seg[i];
		int w = s->key ? snprintf(buf + n, cap - n, "%s%s", i ? "." : "", s->key)
		               : snprintf(buf + n, cap - n, "[%zu]", s->index);
		if (w < 0 || (size_t)w >= cap - n)
			break;
		n += (size_t)w;
	}
	return buf;
}

/* ---- typed values ---- */

static const char *kd_type_name(enum json_type t)
{
	static const char *const names[] = {"null", "a boolean", "a number", "a string", "an object", "an array"};
	return names[t];
}

int kstr_eq(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

int kd_string(struct kdecode *d, const struct json_path *p, enum json_type type,
              const char *s, size_t len, const char **out)
{
	if (type != JSON_STRING) {
		kd_fail(d, KERR_PARSE, "%s %s: expected a string, got %s", d->kind->name,
		        kd_path_text(d, p), kd_type_name(type));
		return KERR_PARSE;
	}
	char *c = kd_strdup(d, s, len);
	if (!c)
		return KERR_NOMEM;
	*out = c;
	return 0;
}

int kparse_int(enum json_type type, const char *s, size_t len, int64_t *out)
{
	if (type != JSON_NUMBER || len == 0)
		return KERR_PARSE;
	size_t i = 0;
	int neg = s[0] == '-';
	if (neg)
		i++;
	if (i == len)
		return KERR_PARSE;
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return KERR_PARSE;
		unsigned dgt = (unsigned)(s[i] - '0');
		if (v > (limit - dgt) / 10)
			return KERR_PARSE;
		v = v * 10 + dgt;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int kd_int(struct kdecode *d, const struct json_path *p, enum json_type type,
           const char *s, size_t len, int64_t *out)
{
	if (kparse_int(type, s, len, out) == 0)
		return 0;
	kd_fail(d, KERR_PARSE, "%s %s: expected a 64-bit integer, got %s%s%.*s", d->kind->name,
	        kd_path_text(d, p), kd_type_name(type), type == JSON_NUMBER ? " " : "",
	        type == JSON_NUMBER ? (int)(len > 40 ? 40 : len) : 0, s ? s : "");
	return KERR_PARSE;
}

int kd_bool(struct kdecode *d, const struct json_path *p, enum json_type type,
            const char *s, size_t len, int *out)
{
	(void)len;
	if (type != JSON_BOOL) {
		kd_fail(d, KERR_PARSE, "%s %s: expected a boolean, got %s", d->kind->name,
		        kd_path_text(d, p), kd_type_name(type));
		return KERR_PARSE;
	}
	*out = s[0] == 't';
	return 0;
}

int kd_quantity(struct kdecode *d, const struct json_path *p, enum json_type type,
                const char *s, size_t len, int milli, int64_t *out)
{
	/* The apiserver writes quantities as strings; users' YAML may give numbers. */
	if (type != JSON_STRING && type != JSON_NUMBER) {
		kd_fail(d, KERR_PARSE, "%s %s: expected a quantity string, got %s", d->kind->name,
		        kd_path_text(d, p), kd_type_name(type));
		return KERR_PARSE;
	}
	struct kerr qe = {0};
	int rc = milli ? quantity_parse_milli(s, len, out, &qe) : quantity_parse_value(s, len, out, &qe);
	if (rc < 0)
		kd_fail(d, rc, "%s %s: %s", d->kind->name, kd_path_text(d, p), qe.message);
	return rc;
}

int kd_time(struct kdecode *d, const struct json_path *p, enum json_type type,
            const char *s, size_t len, int64_t *out)
{
	int64_t us;
	if (type == JSON_STRING && timefmt_parse(s, len, &us) == 0) {
		*out = timefmt_floor_div(us, 1000000);
		return 0;
	}
	kd_fail(d, KERR_PARSE, "%s %s: expected an RFC 3339 time such as \"2024-01-15T10:30:00Z\", got %s%.*s",
	        d->kind->name, kd_path_text(d, p), type == JSON_STRING ? "" : kd_type_name(type),
	        type == JSON_STRING ? (int)(len > 40 ? 40 : len) : 0, s ? s : "");
	return KERR_PARSE;
}

enum kcond kparse_cond(const char *s, size_t len)
{
	if (kstr_eq(s, len, "True"))
		return KCOND_TRUE;
	if (kstr_eq(s, len, "False"))
		return KCOND_FALSE;
	return KCOND_UNKNOWN;
}

enum keffect kparse_effect(const char *s, size_t len)
{
	if (len == 0)
		return KEFFECT_ANY;
	if (kstr_eq(s, len, "NoSchedule"))
		return KEFFECT_NO_SCHEDULE;
	if (kstr_eq(s, len, "PreferNoSchedule"))
		return KEFFECT_PREFER_NO_SCHEDULE;
	if (kstr_eq(s, len, "NoExecute"))
		return KEFFECT_NO_EXECUTE;
	return KEFFECT_OTHER;
}

void kd_label(struct kdecode *d, struct klabels *l, const struct json_path *p,
              enum json_type type, const char *s, size_t len)
{
	const char *value;
	if (kd_string(d, p, type, s, len, &value) < 0)
		return;
	const char *key = kpath_last(p);
	char *k = kd_strdup(d, key, strlen(key));
	struct kobj_label *lab = k ? kd_vec_push(d, &l->v, sizeof(*lab)) : NULL;
	if (!lab)
		return;
	lab->key = k;
	lab->value = value;
}

void kd_condition(struct kdecode *d, struct kvec *conditions, size_t idx, const struct json_path *r,
                  const struct json_path *p, enum json_type type, const char *s, size_t len)
{
	struct kcondition_scratch *c = kd_vec_at(d, conditions, idx, sizeof(*c));
	const char *word;
	if (!c || r->depth != 1)
		return;
	if (json_seg_is(&r->seg[0], "type"))
		kd_string(d, p, type, s, len, &c->type);
	else if (json_seg_is(&r->seg[0], "reason"))
		kd_string(d, p, type, s, len, &c->reason);
	else if (json_seg_is(&r->seg[0], "message"))
		kd_string(d, p, type, s, len, &c->message);
	else if (json_seg_is(&r->seg[0], "lastTransitionTime"))
		kd_string(d, p, type, s, len, &c->last_transition);
	else if (json_seg_is(&r->seg[0], "status") && kd_string(d, p, type, s, len, &word) == 0)
		c->status = (uint8_t)kparse_cond(s, len);
}

/* ---- metadata ---- */

static void kmeta_value(struct kdecode *d, const struct json_path *p, enum json_type type,
                        const char *s, size_t len)
{
	/* p is under "metadata": dispatch on the second key, not a pattern per field. */
	struct kmeta_builder *m = &d->meta;
	const struct json_seg *k = &p->seg[1];
	if (p->depth == 2) {
		if (json_seg_is(k, "name"))
			kd_string(d, p, type, s, len, &m->name);
		else if (json_seg_is(k, "namespace"))
			kd_string(d, p, type, s, len, &m->ns);
		else if (json_seg_is(k, "uid"))
			kd_string(d, p, type, s, len, &m->uid);
		else if (json_seg_is(k, "resourceVersion"))
			kd_string(d, p, type, s, len, &m->resource_version);
		else if (json_seg_is(k, "generation"))
			kd_int(d, p, type, s, len, &m->generation);
		else if (json_seg_is(k, "creationTimestamp"))
			kd_time(d, p, type, s, len, &m->created);
		else if (json_seg_is(k, "deletionTimestamp"))
			kd_time(d, p, type, s, len, &m->deleted);
	} else if (p->depth == 3 && json_seg_is(k, "labels") && p->seg[2].key) {
		kd_label(d, &m->labels, p, type, s, len);
	} else if (p->depth >= 3 && !p->seg[2].key && json_seg_is(k, "ownerReferences")) {
		struct kobj_owner *o = kd_vec_at(d, &m->owners, p->seg[2].index, sizeof(*o));
		const struct json_seg *f = &p->seg[3];
		if (!o || p->depth != 4)
			return;
		if (json_seg_is(f, "apiVersion"))
			kd_string(d, p, type, s, len, &o->api_version);
		else if (json_seg_is(f, "kind"))
			kd_string(d, p, type, s, len, &o->kind);
		else if (json_seg_is(f, "name"))
			kd_string(d, p, type, s, len, &o->name);
		else if (json_seg_is(f, "uid"))
			kd_string(d, p, type, s, len, &o->uid);
		else if (json_seg_is(f, "controller"))
			kd_bool(d, p, type, s, len, &o->controller);
	}
}

/* ---- decoder ---- */

struct kdecode *kdecode_new(const struct kind *k, struct kerr *e)
{
	if (!k) {
		kerr_set(e, KERR_INVAL, "kdecode_new: no kind");
		return NULL;
	}
	struct kdecode *d = calloc(1, sizeof(*d));
	if (!d) {
		kerr_set(e, KERR_NOMEM, "out of memory allocating a %s decoder", k->name);
		return NULL;
	}
	d->kind = k;
	kdecode_begin(d);
	return d;
}

void kdecode_free(struct kdecode *d)
{
	if (!d)
		return;
	while (d->blocks) {
		struct kblock *b = d->blocks;
		d->blocks = b->next;
		free(b);
	}
	free(d);
}

const struct kind *kdecode_kind(const struct kdecode *d)
{
	return d->kind;
}

void kdecode_begin(struct kdecode *d)
{
	kd_reset(d);
	kerr_clear(&d->err);
	memset(&d->meta, 0, sizeof(d->meta));
	memset(&d->interned, 0, sizeof(d->interned));
	d->state = NULL;
	if (d->kind->state_size) {
		d->state = kd_alloc(d, d->kind->state_size);
		if (d->state && d->kind->begin)
			d->kind->begin(d->state);
	}
}

int kseg_in(const struct json_seg *s, const char *const *keys)
{
	for (; *keys; keys++)
		if (json_seg_is(s, *keys))
			return 1;
	return 0;
}

/* A container under metadata that kmeta_value reads nothing in. The fields
 * it reads as scalars are not skipped, so that a wrong type stays an error. */
static int kmeta_skip(const struct json_path *p)
{
	static const char *const read[] = {"name", "namespace", "uid", "resourceVersion", "generation",
	                                   "creationTimestamp", "deletionTimestamp", "labels", "ownerReferences", NULL};
	return p->depth == 2 && !kseg_in(&p->seg[1], read);
}

int kdecode_value(struct kdecode *d, const struct json_path *p, enum json_type type,
                  const char *s, size_t len)
{
	int container = type == JSON_OBJECT || type == JSON_ARRAY;
	if (d->err.code || type == JSON_NULL || p->depth == 0)
		return 0;
	if (json_seg_is(&p->seg[0], "metadata")) {
		/* managedFields and annotations are the bulk of most objects'
		 * metadata and nothing reads them. */
		if (container)
			return kmeta_skip(p) ? JSON_STREAM_SKIP : 0;
		kmeta_value(d, p, type, s, len);
		return 0;
	}
	if (p->depth == 1 && json_seg_is(&p->seg[0], "kind")) {
		kd_string(d, p, type, s, len, &d->meta.kind_name);
		return 0;
	}
	if (container && d->kind->skip && d->kind->skip(p))
		return JSON_STREAM_SKIP;
	d->kind->value(d, d->state, p, type, s, len);
	return 0;
}

int kdecode_end(struct kdecode *d, struct kobj **out, struct kerr *e)
{
	*out = NULL;
	const struct kind *k = d->kind;
	if (!d->err.code && d->meta.kind_name && strcmp(d->meta.kind_name, k->name) != 0)
		kd_fail(d, KERR_PARSE, "expected a %s object, got kind \"%s\"", k->name, d->meta.kind_name);
	if (!d->err.code && (!d->meta.name || !d->meta.name[0]))
		kd_fail(d, KERR_PARSE, "%s object has no metadata.name%s%s", k->name,
		        d->meta.ns ? " (namespace " : "", d->meta.ns ? d->meta.ns : "");
	if (d->err.code)
		goto fail;
	struct kalloc size = {.d = d};
	if (!k->end(d, d->state, &size) || d->err.code)
		goto fail;
	size_t total = size.fixed + size.strings;
	char *block = malloc(total);
	if (!block) {
		kd_fail(d, KERR_NOMEM, "out of memory allocating a %zu-byte %s", total, k->name);
		goto fail;
	}
	struct kalloc fill = {.base = block, .d = d, .fixed_total = size.fixed, .strings_total = size.strings};
	struct kobj *o = k->end(d, d->state, &fill);
	if (!o || d->err.code || fill.fixed != size.fixed || fill.strings != size.strings ||
	    fill.interned != d->interned.n) {
		kd_fail(d, KERR_INVAL, "internal error: %s layout differs between passes", k->name);
		free(block);
		goto fail;
	}
	d->interned.n = 0; /* the object holds those references now */
	atomic_init(&o->refs, 1);
	o->kind = k;
	o->size = total;
	*out = o;
	return 0;
fail:
	for (size_t i = 0; i < d->interned.n; i++)
		kintern_put(((const char **)d->interned.items)[i]);
	d->interned.n = 0;
	if (e && e->code == 0)
		*e = d->err;
	return d->err.code;
}

/* ---- layout ---- */

void *ka_alloc(struct kalloc *a, size_t size)
{
	if (size == 0)
		return NULL;
	size_t n = kd_round(size);
	if (!a->base) {
		a->fixed += n;
		return kd_alloc(a->d, n);
	}
	if (n > a->fixed_total - a->fixed) {
		kd_fail(a->d, KERR_INVAL, "internal error: layout pass overflow");
		return NULL;
	}
	void *p = a->base + a->fixed;
	a->fixed += n;
	memset(p, 0, n);
	return p;
}

static char *ka_bytes(struct kalloc *a, size_t n)
{
	if (!a->base) {
		a->strings += n;
		return kd_alloc(a->d, n);
	}
	if (n > a->strings_total - a->strings) {
		kd_fail(a->d, KERR_INVAL, "internal error: layout pass overflow");
		return NULL;
	}
	char *p = a->base + a->fixed_total + a->strings;
	a->strings += n;
	return p;
}

const char *ka_str(struct kalloc *a, const char *s)
{
	if (!s || !s[0])
		return "";
	size_t n = strlen(s) + 1;
	char *c = ka_bytes(a, n);
	if (!c)
		return "";
	memcpy(c, s, n);
	return c;
}

const char *ka_istr(struct kalloc *a, const char *s)
{
	if (!s || !s[0])
		return "";
	struct kdecode *d = a->d;
	if (a->base) {
		if (a->interned >= d->interned.n) {
			kd_fail(d, KERR_INVAL, "internal error: layout pass overflow");
			return "";
		}
		return ((const char **)d->interned.items)[a->interned++];
	}
	const char **slot = kd_vec_at(d, &d->interned, d->interned.n, sizeof(*slot));
	if (!slot)
		return "";
	*slot = kintern_get(s, strlen(s));
	if (!*slot) {
		d->interned.n--;
		kd_fail(d, KERR_NOMEM, "out of memory sharing a string of a %s", d->kind->name);
		return "";
	}
	return *slot;
}

static int klabel_cmp(const void *x, const void *y)
{
	return strcmp(((const struct kobj_label *)x)->key, ((const struct kobj_label *)y)->key);
}

static const struct kobj_label *ka_labels_as(struct kalloc *a, struct klabels *l, size_t *n,
                                              const char *(*str)(struct kalloc *, const char *))
{
	*n = 0;
	if (l->v.n == 0)
		return NULL;
	struct kobj_label *src = l->v.items;
	/* Sorted once, while sizing: a second sort could swap two entries of
	 * one key (a JSON object may repeat a key) and hand the fill pass's
	 * ka_istr values in another order than the sizing pass took them. */
	if (!a->base)
		qsort(src, l->v.n, sizeof(*src), klabel_cmp);
	struct kobj_label *dst = ka_alloc(a, l->v.n * sizeof(*dst));
	if (!dst)
		return NULL;
	for (size_t i = 0; i < l->v.n; i++) {
		dst[i].key = str(a, src[i].key);
		dst[i].value = str(a, src[i].value);
	}
	*n = l->v.n;
	return dst;
}

const struct kobj_label *ka_labels(struct kalloc *a, struct klabels *l, size_t *n)
{
	return ka_labels_as(a, l, n, ka_str);
}

const struct kobj_label *ka_ilabels(struct kalloc *a, struct klabels *l, size_t *n)
{
	return ka_labels_as(a, l, n, ka_istr);
}

void kobj_put_labels(const struct kobj_label *labels, size_t n)
{
	for (size_t i = 0; labels && i < n; i++) {
		kintern_put(labels[i].key);
		kintern_put(labels[i].value);
	}
}

const struct kcondition *ka_conditions(struct kalloc *a, struct kvec *conditions, size_t *n)
{
	size_t count = conditions->n < KCONDITIONS_MAX ? conditions->n : KCONDITIONS_MAX;
	const struct kcondition_scratch *src = conditions->items;
	*n = 0;
	if (count == 0)
		return NULL;
	struct kcondition *c = ka_alloc(a, count * sizeof(*c));
	if (!c)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		c[i].type = ka_str(a, src[i].type);
		c[i].reason = ka_str(a, src[i].reason);
		c[i].message = ka_str(a, src[i].message);
		c[i].last_transition = ka_str(a, src[i].last_transition);
		c[i].status = src[i].status;
	}
	*n = count;
	return c;
}

void *ka_object(struct kalloc *a, size_t size)
{
	struct kobj *o = ka_alloc(a, size);
	if (!o)
		return NULL;
	struct kmeta_builder *m = &a->d->meta;
	const char *ns = m->ns ? m->ns : "";
	size_t nslen = a->d->kind->namespaced ? strlen(ns) : 0;
	size_t namelen = strlen(m->name);
	/* name is the tail of key, so it costs no bytes of its own. */
	char *key = ka_bytes(a, nslen + (nslen ? 1 : 0) + namelen + 1);
	if (!key)
		return NULL;
	if (nslen) {
		memcpy(key, ns, nslen);
		key[nslen] = '/';
		memcpy(key + nslen + 1, m->name, namelen + 1);
		o->name = key + nslen + 1;
	} else {
		memcpy(key, m->name, namelen + 1);
		o->name = key;
	}
	o->key = key;
	o->ns = a->d->kind->namespaced ? ka_istr(a, ns) : "";
	o->uid = ka_str(a, m->uid);
	o->resource_version = ka_str(a, m->resource_version);
	o->generation = m->generation;
	o->created = m->created;
	o->deleted = m->deleted;
	o->labels = ka_ilabels(a, &m->labels, &o->nlabels);
	struct kobj_owner *src = m->owners.items;
	struct kobj_owner *dst = ka_alloc(a, m->owners.n * sizeof(*dst));
	if (m->owners.n && !dst)
		return NULL;
	for (size_t i = 0; i < m->owners.n; i++) {
		dst[i].api_version = ka_istr(a, src[i].api_version);
		dst[i].kind = ka_istr(a, src[i].kind);
		dst[i].name = ka_str(a, src[i].name);
		dst[i].uid = ka_str(a, src[i].uid);
		dst[i].controller = src[i].controller;
	}
	o->owners = dst;
	o->nowners = m->owners.n;
	return o;
}

void kind_destroy_block(struct kobj *o)
{
	kintern_put(o->ns);
	kobj_put_labels(o->labels, o->nlabels);
	for (size_t i = 0; o->owners && i < o->nowners; i++) {
		kintern_put(o->owners[i].api_version);
		kintern_put(o->owners[i].kind);
	}
	free(o);
}

/* ---- whole documents ---- */

struct kdoc {
	struct kdecode *d;  /* decoding an object, or */
	struct kstatus *st; /* a Status */
	int roots;          /* top-level values seen */
};

static int kdoc_root(struct kdoc *doc, const struct json_path *p, enum json_type type, struct kerr *e)
{
	if (p->depth > 0)
		return 0;
	if (++doc->roots > 1)
		return kerr_set(e, KERR_PARSE, "expected one JSON object, found more data after it");
	if (type != JSON_OBJECT)
		return kerr_set(e, KERR_PARSE, "expected a JSON object, got %s", kd_type_name(type));
	return 0;
}

static int kdoc_scalar(void *ud, const struct json_path *p, enum json_type type,
                       const char *s, size_t len, struct kerr *e)
{
	struct kdoc *doc = ud;
	int rc = kdoc_root(doc, p, type, e);
	if (rc < 0)
		return rc;
	if (doc->d)
		return kdecode_value(doc->d, p, type, s, len);
	kstatus_value(doc->st, p, type, s, len);
	return 0;
}

static int kdoc_start(void *ud, const struct json_path *p, enum json_type type, struct kerr *e)
{
	return kdoc_scalar(ud, p, type, NULL, 0, e);
}

static int kdoc_parse(struct kdoc *doc, const char *json, size_t len, struct kerr *e)
{
	static const struct json_stream_cbs cbs = {.scalar = kdoc_scalar, .start = kdoc_start};
	struct json_stream *js = json_stream_new(&cbs, doc, 0, e);
	if (!js)
		return KERR_NOMEM;
	int rc = json_stream_feed(js, json, len, e);
	if (rc == 0)
		rc = json_stream_finish(js, e);
	if (rc == 0 && doc->roots == 0)
		rc = kerr_set(e, KERR_PARSE, "expected a JSON object, got an empty document");
	json_stream_free(js);
	return rc;
}

int kind_decode_json(const struct kind *k, const char *json, size_t len,
                     struct kobj **out, struct kerr *e)
{
	*out = NULL;
	struct kdoc doc = {.d = kdecode_new(k, e)};
	if (!doc.d)
		return e && e->code ? e->code : KERR_NOMEM;
	int rc = kdoc_parse(&doc, json, len, e);
	if (rc == 0)
		rc = kdecode_end(doc.d, out, e);
	kdecode_free(doc.d);
	return rc;
}

/* ---- Status ---- */

static void kstatus_copy(char *dst, size_t cap, const char *s, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

void kstatus_value(struct kstatus *st, const struct json_path *p, enum json_type type,
                   const char *s, size_t len)
{
	if (p->depth != 1 || !p->seg[0].key)
		return;
	const struct json_seg *k = &p->seg[0];
	int64_t code;
	if (json_seg_is(k, "code") && kparse_int(type, s, len, &code) == 0)
		st->code = (long)code;
	else if (type != JSON_STRING)
		return;
	else if (json_seg_is(k, "status"))
		kstatus_copy(st->status, sizeof(st->status), s, len);
	else if (json_seg_is(k, "reason"))
		kstatus_copy(st->reason, sizeof(st->reason), s, len);
	else if (json_seg_is(k, "message"))
		kstatus_copy(st->message, sizeof(st->message), s, len);
}

int kstatus_decode_json(const char *json, size_t len, struct kstatus *st, struct kerr *e)
{
	memset(st, 0, sizeof(*st));
	struct kdoc doc = {.st = st};
	return kdoc_parse(&doc, json, len, e);
}

/* ---- table ---- */

static const struct kind *const kind_table[] = {
	&kind_pod, &kind_node, &kind_namespace, &kind_deployment, &kind_resourcequota, &kind_computerequest,
};

size_t kind_count(void)
{
	return sizeof(kind_table) / sizeof(kind_table[0]);
}

const struct kind *kind_at(size_t i)
{
	return i < kind_count() ? kind_table[i] : NULL;
}

const struct kind *kind_by_name(const char *name)
{
	for (size_t i = 0; name && i < kind_count(); i++)
		if (strcmp(kind_table[i]->name, name) == 0)
			return kind_table[i];
	return NULL;
}
