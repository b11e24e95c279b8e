#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An allocation failure inside uthash leaves the item out of its table
 * (hh.tbl == NULL) instead of exiting the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

const double metrics_default_buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
const size_t metrics_default_buckets_count = sizeof(metrics_default_buckets) / sizeof(metrics_default_buckets[0]);

enum mf_type { MF_COUNTER, MF_GAUGE, MF_HISTOGRAM };

static const char *const mf_type_names[] = {
	[MF_COUNTER] = "counter",
	[MF_GAUGE] = "gauge",
	[MF_HISTOGRAM] = "histogram",
};

/*
 * One label combination. key holds the label values, each followed by its
 * NUL, so that it is both the hash key and, compared with memcmp, sorts by
 * the first value, then the second (NUL sorts before every other byte).
 * One allocation: the struct, counts[nbounds], then key[keylen].
 */
struct mchild {
	UT_hash_handle hh;  /* in metrics_family.children, keyed by key */
	const char *key;
	size_t keylen;
	double value;       /* counter or gauge */
	double sum;         /* histogram: sum of observations */
	uint64_t count;     /* histogram: number of observations (the +Inf bucket) */
	uint64_t counts[];  /* histogram: observations per bucket, not cumulative */
};

struct metrics_family {
	UT_hash_handle hh;  /* in metrics_registry.families, keyed by name */
	pthread_mutex_t mu; /* guards children and every child's numbers */
	enum mf_type type;
	char *name;
	char *help;
	char **label_names;
	size_t nlabels;
	double *bounds;     /* histogram bucket upper bounds, increasing */
	size_t nbounds;
	struct mchild *children;
	size_t nchildren;
};

struct metrics_registry {
	pthread_mutex_t mu; /* guards families (the table, not their contents) */
	struct metrics_family *families;
};

/* A growing output buffer; after an allocation failure it stays failed. */
struct mbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void mb_put(struct mbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len < n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void mb_puts(struct mbuf *b, const char *s)
{
	mb_put(b, s, strlen(s));
}

/* Append s with backslash and newline escaped, and also the double quote
 * when quote is set: the HELP text and label value rules of format 0.0.4. */
static void mb_put_escaped(struct mbuf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			mb_put(b, "\\\\", 2);
		else if (*s == '\n')
			mb_put(b, "\\n", 2);
		else if (*s == '"' && quote)
			mb_put(b, "\\\"", 2);
		else
			mb_put(b, s, 1);
	}
}

/* The shortest of %.15g, %.16g and %.17g that reads back as v, close to
 * how Prometheus clients print floats (0.1, not 0.10000000000000001);
 * integers below 10^15 print without an exponent. */
static void mb_put_double(struct mbuf *b, double v)
{
	char s[32];

	if (isnan(v)) {
		snprintf(s, sizeof(s), "NaN");
	} else if (isinf(v)) {
		snprintf(s, sizeof(s), v > 0 ? "+Inf" : "-Inf");
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(s, sizeof(s), "%.*g", prec, v);
			if (strtod(s, NULL) == v)
				break;
		}
	}
	mb_puts(b, s);
}

static bool valid_name(const char *s, bool colon_ok)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static int mf_check_names(enum mf_type type, const char *name, const char *const *label_names, size_t nlabels,
			  struct kerr *e)
{
	size_t n = name ? strlen(name) : 0;

	if (!valid_name(name, true))
		return kerr_set(e, KERR_INVAL, "metric name '%s' is invalid: use [a-zA-Z_:][a-zA-Z0-9_:]*",
				name ? name : "(null)");
	if (type == MF_COUNTER && (n < 6 || strcmp(name + n - 6, "_total") != 0))
		return kerr_set(e, KERR_INVAL, "counter '%s' must end in _total (Prometheus naming)", name);
	if (nlabels > 0 && !label_names)
		return kerr_set(e, KERR_INVAL, "metric '%s': %zu label names expected, got none", name, nlabels);
	for (size_t i = 0; i < nlabels; i++) {
		const char *l = label_names[i];
		if (!valid_name(l, false) || strncmp(l, "__", 2) == 0)
			return kerr_set(e, KERR_INVAL,
					"metric '%s': label name '%s' is invalid: use [a-zA-Z_][a-zA-Z0-9_]* "
					"not starting with __",
					name, l ? l : "(null)");
		if (type == MF_HISTOGRAM && strcmp(l, "le") == 0)
			return kerr_set(e, KERR_INVAL, "histogram '%s': the label 'le' is reserved for buckets", name);
		for (size_t k = 0; k < i; k++) {
			if (strcmp(label_names[k], l) == 0)
				return kerr_set(e, KERR_INVAL, "metric '%s': label '%s' appears twice", name, l);
		}
	}
	return 0;
}

/* Join values into *key (a NUL after each) and return its length, with
 * *rc 0; *rc is KERR_INVAL or KERR_NOMEM when that fails. *key is buf when
 * the key fits in it, else allocated: the caller frees it if *key != buf. */
static size_t mf_key(const struct metrics_family *f, const char *const *values, size_t nvalues, char *buf,
		     size_t bufsize, char **key, int *rc)
{
	size_t len = 0;

	*rc = KERR_INVAL;
	if (nvalues != f->nlabels || (nvalues > 0 && !values))
		return 0;
	for (size_t i = 0; i < nvalues; i++) {
		if (!values[i])
			return 0;
		len += strlen(values[i]) + 1;
	}
	*key = buf;
	if (len > bufsize) {
		*key = malloc(len);
		if (!*key) {
			*rc = KERR_NOMEM;
			return 0;
		}
	}
	char *p = *key;
	for (size_t i = 0; i < nvalues; i++) {
		size_t n = strlen(values[i]) + 1;
		memcpy(p, values[i], n);
		p += n;
	}
	*rc = 0;
	return len;
}

static struct mchild *mf_child_new(struct metrics_family *f, const char *key, size_t keylen)
{
	size_t counts = f->nbounds * sizeof(uint64_t);
	struct mchild *c = calloc(1, sizeof(*c) + counts + keylen);

	if (!c)
		return NULL;
	char *k = (char *)c->counts + counts;
	memcpy(k, key, keylen);
	c->key = k;
	c->keylen = keylen;
	HASH_ADD_KEYPTR(hh, f->children, c->key, keylen, c);
	if (!c->hh.tbl) {
		free(c);
		return NULL;
	}
	f->nchildren++;
	return c;
}

/* Find or create the child for values with f->mu held; 0 or a KERR_*. */
static int mf_child(struct metrics_family *f, const char *const *values, size_t nvalues, struct mchild **out)
{
	char buf[256], *key;
	int rc;
	size_t len = mf_key(f, values, nvalues, buf, sizeof(buf), &key, &rc);
	struct mchild *c = NULL;

	if (rc)
		return rc;
	HASH_FIND(hh, f->children, key, len, c);
	if (!c && f->nchildren >= METRICS_MAX_CHILDREN)
		rc = KERR_TOO_LARGE;
	else if (!c && !(c = mf_child_new(f, key, len)))
		rc = KERR_NOMEM;
	if (key != buf)
		free(key);
	*out = c;
	return rc;
}

static void mf_free(struct metrics_family *f)
{
	struct mchild *c, *tmp;

	if (!f)
		return;
	HASH_ITER(hh, f->children, c, tmp) {
		HASH_DEL(f->children, c);
		free(c);
	}
	for (size_t i = 0; f->label_names && i < f->nlabels; i++)
		free(f->label_names[i]);
	free(f->label_names);
	free(f->bounds);
	free(f->name);
	free(f->help);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static int mf_register(struct metrics_registry *r, enum mf_type type, const char *name, const char *help,
		       const char *const *label_names, size_t nlabels, const double *bounds, size_t nbounds,
		       struct metrics_family **out, struct kerr *e)
{
	struct metrics_family *f, *dup;
	struct mchild *c;
	int rc = mf_check_names(type, name, label_names, nlabels, e);

	if (rc)
		return rc;
	f = calloc(1, sizeof(*f));
	if (!f)
		return kerr_set(e, KERR_NOMEM, "out of memory registering metric '%s'", name);
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		return kerr_set(e, KERR_NOMEM, "cannot create the mutex of metric '%s'", name);
	}
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	f->label_names = nlabels ? calloc(nlabels, sizeof(char *)) : NULL;
	f->nlabels = nlabels;
	f->bounds = nbounds ? malloc(nbounds * sizeof(double)) : NULL;
	f->nbounds = nbounds;
	if (!f->name || !f->help || (nlabels && !f->label_names) || (nbounds && !f->bounds))
		goto nomem;
	for (size_t i = 0; i < nlabels; i++) {
		if (!(f->label_names[i] = strdup(label_names[i])))
			goto nomem;
	}
	if (nbounds)
		memcpy(f->bounds, bounds, nbounds * sizeof(double));
	/* Without labels the family's one child exists from the start, so the
	 * metric is scraped as 0 before its first observation. */
	if (nlabels == 0 && mf_child(f, NULL, 0, &c) != 0)
		goto nomem;

	pthread_mutex_lock(&r->mu);
	HASH_FIND_STR(r->families, name, dup);
	if (!dup)
		HASH_ADD_KEYPTR(hh, r->families, f->name, strlen(f->name), f);
	pthread_mutex_unlock(&r->mu);
	if (dup) {
		mf_free(f);
		return kerr_set(e, KERR_ALREADY_EXISTS, "metric '%s' is already registered", name);
	}
	if (!f->hh.tbl)
		goto nomem;
	*out = f;
	return 0;
nomem:
	mf_free(f);
	return kerr_set(e, KERR_NOMEM, "out of memory registering metric '%s'", name);
}

int metrics_registry_new(struct metrics_registry **out, struct kerr *e)
{
	struct metrics_registry *r = calloc(1, sizeof(*r));

	if (!r)
		return kerr_set(e, KERR_NOMEM, "out of memory creating the metrics registry");
	if (pthread_mutex_init(&r->mu, NULL) != 0) {
		free(r);
		return kerr_set(e, KERR_NOMEM, "cannot create the metrics registry mutex");
	}
	*out = r;
	return 0;
}

void metrics_registry_free(struct metrics_registry *r)
{
	struct metrics_family *f, *tmp;

	if (!r)
		return;
	HASH_ITER(hh, r->families, f, tmp) {
		HASH_DEL(r->families, f);
		mf_free(f);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int metrics_counter_new(struct metrics_registry *r, const char *name, const char *help,
			const char *const *label_names, size_t nlabels, struct metrics_family **out,
			struct kerr *e)
{
	return mf_register(r, MF_COUNTER, name, help, label_names, nlabels, NULL, 0, out, e);
}

int metrics_gauge_new(struct metrics_registry *r, const char *name, const char *help,
		      const char *const *label_names, size_t nlabels, struct metrics_family **out,
		      struct kerr *e)
{
	return mf_register(r, MF_GAUGE, name, help, label_names, nlabels, NULL, 0, out, e);
}

int metrics_histogram_new(struct metrics_registry *r, const char *name, const char *help,
			  const char *const *label_names, size_t nlabels, const double *buckets,
			  size_t nbuckets, struct metrics_family **out, struct kerr *e)
{
	if (!buckets || nbuckets == 0) {
		buckets = metrics_default_buckets;
		nbuckets = metrics_default_buckets_count;
	}
	for (size_t i = 0; i < nbuckets; i++) {
		if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
			return kerr_set(e, KERR_INVAL,
					"histogram '%s': bucket bounds must be finite and strictly increasing "
					"(bound %zu breaks that)",
					name ? name : "(null)", i);
	}
	return mf_register(r, MF_HISTOGRAM, name, help, label_names, nlabels, buckets, nbuckets, out, e);
}

/* The operations an observation can apply to a child. */
enum mf_op { OP_ADD, OP_SET, OP_OBSERVE };

static int mf_observe(struct metrics_family *f, enum mf_type type, enum mf_op op, double v,
		      const char *const *values, size_t nvalues)
{
	struct mchild *c;

	if (!f || f->type != type)
		return KERR_INVAL;
	pthread_mutex_lock(&f->mu);
	int rc = mf_child(f, values, nvalues, &c);
	if (rc == 0) {
		switch (op) {
		case OP_ADD:
			c->value += v;
			break;
		case OP_SET:
			c->value = v;
			break;
		case OP_OBSERVE: {
			size_t i = 0;
			while (i < f->nbounds && v > f->bounds[i])
				i++;
			if (i < f->nbounds)
				c->counts[i]++;
			c->count++;
			c->sum += v;
			break;
		}
		}
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int metrics_counter_add(struct metrics_family *f, double v, const char *const *values, size_t nvalues)
{
	if (!(v >= 0) || isinf(v))
		return KERR_INVAL;
	return mf_observe(f, MF_COUNTER, OP_ADD, v, values, nvalues);
}

int metrics_counter_inc(struct metrics_family *f, const char *const *values, size_t nvalues)
{
	return mf_observe(f, MF_COUNTER, OP_ADD, 1, values, nvalues);
}

int metrics_gauge_set(struct metrics_family *f, double v, const char *const *values, size_t nvalues)
{
	return mf_observe(f, MF_GAUGE, OP_SET, v, values, nvalues);
}

int metrics_gauge_add(struct metrics_family *f, double v, const char *const *values, size_t nvalues)
{
	return mf_observe(f, MF_GAUGE, OP_ADD, v, values, nvalues);
}

int metrics_histogram_observe(struct metrics_family *f, double v, const char *const *values, size_t nvalues)
{
	if (isnan(v))
		return KERR_INVAL;
	return mf_observe(f, MF_HISTOGRAM, OP_OBSERVE, v, values, nvalues);
}

int metrics_remove(struct metrics_family *f, const char *const *values, size_t nvalues)
{
	char buf[256], *key;
	int rc;
	struct mchild *c = NULL;

	if (!f)
		return KERR_INVAL;
	size_t len = mf_key(f, values, nvalues, buf, sizeof(buf), &key, &rc);
	if (rc)
		return rc;
	pthread_mutex_lock(&f->mu);
	HASH_FIND(hh, f->children, key, len, c);
	if (c) {
		HASH_DEL(f->children, c);
		f->nchildren--;
		free(c);
	}
	pthread_mutex_unlock(&f->mu);
	if (key != buf)
		free(key);
	return c ? 0 : KERR_NOT_FOUND;
}

/* Write `{a="x",b="y"` (no closing brace) for c's labels, plus le when
 * given; writes nothing for no labels and no le. */
static void render_labels(struct mbuf *b, const struct metrics_family *f, const struct mchild *c, const char *le)
{
	const char *v = c->key;

	for (size_t i = 0; i < f->nlabels; i++) {
		mb_puts(b, i == 0 ? "{" : ",");
		mb_puts(b, f->label_names[i]);
		mb_puts(b, "=\"");
		mb_put_escaped(b, v, true);
		mb_puts(b, "\"");
		v += strlen(v) + 1;
	}
	if (le) {
		mb_puts(b, f->nlabels ? ",le=\"" : "{le=\"");
		mb_puts(b, le);
		mb_puts(b, "\"");
	}
	if (f->nlabels || le)
		mb_puts(b, "}");
}

static void render_sample(struct mbuf *b, const struct metrics_family *f, const char *suffix,
			  const struct mchild *c, const char *le, double v)
{
	mb_puts(b, f->name);
	mb_puts(b, suffix);
	render_labels(b, f, c, le);
	mb_puts(b, " ");
	mb_put_double(b, v);
	mb_puts(b, "\n");
}

static int cmp_child(const void *a, const void *b)
{
	const struct mchild *x = *(const struct mchild *const *)a, *y = *(const struct mchild *const *)b;
	int d = memcmp(x->key, y->key, x->keylen < y->keylen ? x->keylen : y->keylen);
	return d ? d : (x->keylen > y->keylen) - (x->keylen < y->keylen);
}

static int cmp_family(const void *a, const void *b)
{
	return strcmp((*(const struct metrics_family *const *)a)->name, (*(const struct metrics_family *const *)b)->name);
}

/* Render one family with f->mu held. False on allocation failure. */
static bool render_family(struct mbuf *b, struct metrics_family *f)
{
	struct mchild **kids, *c, *tmp;
	size_t n = 0;

	if (f->nchildren == 0)
		return true;
	kids = malloc(f->nchildren * sizeof(*kids));
	if (!kids)
		return false;
	HASH_ITER(hh, f->children, c, tmp) {
		kids[n++] = c;
	}
	qsort(kids, n, sizeof(*kids), cmp_child);

	mb_puts(b, "# HELP ");
	mb_puts(b, f->name);
	mb_puts(b, " ");
	mb_put_escaped(b, f->help, false);
	mb_puts(b, "\n# TYPE ");
	mb_puts(b, f->name);
	mb_puts(b, " ");
	mb_puts(b, mf_type_names[f->type]);
	mb_puts(b, "\n");
	for (size_t i = 0; i < n; i++) {
		c = kids[i];
		if (f->type != MF_HISTOGRAM) {
			render_sample(b, f, "", c, NULL, c->value);
			continue;
		}
		uint64_t cum = 0;
		for (size_t k = 0; k < f->nbounds; k++) {
			struct mbuf le = {0};
			cum += c->counts[k];
			mb_put_double(&le, f->bounds[k]);
			if (le.failed) {
				free(kids);
				return false;
			}
			render_sample(b, f, "_bucket", c, le.p, (double)cum);
			free(le.p);
		}
		render_sample(b, f, "_bucket", c, "+Inf", (double)c->count);
		render_sample(b, f, "_sum", c, NULL, c->sum);
		render_sample(b, f, "_count", c, NULL, (double)c->count);
	}
	free(kids);
	return true;
}

int metrics_render(struct metrics_registry *r, char **out, size_t *len, struct kerr *e)
{
	struct mbuf b = {0};
	struct metrics_family **fams, *f, *tmp;
	size_t n = 0;
	bool ok = true;

	pthread_mutex_lock(&r->mu);
	size_t count = HASH_COUNT(r->families);
	fams = malloc((count ? count : 1) * sizeof(*fams));
	if (fams) {
		HASH_ITER(hh, r->families, f, tmp) {
			fams[n++] = f;
		}
		qsort(fams, n, sizeof(*fams), cmp_family);
		for (size_t i = 0; ok && i < n; i++) {
			pthread_mutex_lock(&fams[i]->mu);
			ok = render_family(&b, fams[i]);
			pthread_mutex_unlock(&fams[i]->mu);
		}
	}
	pthread_mutex_unlock(&r->mu);
	free(fams);
	mb_put(&b, "", 0);
	if (!fams || !ok || b.failed) {
		free(b.p);
		return kerr_set(e, KERR_NOMEM, "out of memory rendering metrics");
	}
	*out = b.p;
	*len = b.len;
	return 0;
}
