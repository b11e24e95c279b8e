#include "sched_score.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sched_weights sched_weights_default(void)
{
	return (struct sched_weights){.cpu = 1.0, .memory = 1.0, .live = 0.3, .max_usage_age_ms = 60000};
}

int sched_weights_check(const struct sched_weights *w, struct kerr *e)
{
	/* The negated comparisons also refuse NaN. */
	if (!(w->cpu >= 0) || !(w->memory >= 0) || !(w->cpu + w->memory > 0))
		return kerr_set(e, KERR_INVAL, "scheduler weights cpu=%g memory=%g: both must be >= 0 and one > 0",
				w->cpu, w->memory);
	if (!(w->live >= 0 && w->live <= 1))
		return kerr_set(e, KERR_INVAL, "scheduler live-usage weight %g must be between 0 and 1", w->live);
	if (w->max_usage_age_ms < 0)
		return kerr_set(e, KERR_INVAL, "scheduler max usage age %lld ms must be >= 0",
				(long long)w->max_usage_age_ms);
	return 0;
}

/* ---- filter ---------------------------------------------------------------- */

bool sched_toleration_matches(const struct ktoleration *t, const struct ktaint *taint)
{
	if (t->effect != KEFFECT_ANY && t->effect != taint->effect)
		return false;
	if (t->key[0] && strcmp(t->key, taint->key) != 0)
		return false;
	switch (t->op) {
	case KTOL_EXISTS:
		return true;
	case KTOL_EQUAL:
		return strcmp(t->value, taint->value) == 0;
	default:
		return false;
	}
}

bool sched_tolerated(const struct kpod *p, const struct ktaint *taint)
{
	for (size_t i = 0; i < p->ntolerations; i++)
		if (sched_toleration_matches(&p->tolerations[i], taint))
			return true;
	return false;
}

/* A base-10 int64 with nothing around it, as Go's strconv.ParseInt. */
static bool parse_int(const char *s, long long *out)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool in_values(const struct kselector_req *r, const char *value)
{
	for (size_t i = 0; i < r->nvalues; i++)
		if (strcmp(r->values[i], value) == 0)
			return true;
	return false;
}

bool sched_requirement_matches(const struct kselector_req *r, const char *value)
{
	long long have, want;
	switch (r->op) {
	case KSEL_IN:
		return value && in_values(r, value);
	case KSEL_NOT_IN:
		return !value || !in_values(r, value);
	case KSEL_EXISTS:
		return value != NULL;
	case KSEL_DOES_NOT_EXIST:
		return value == NULL;
	case KSEL_GT:
	case KSEL_LT:
		if (!value || r->nvalues != 1 || !parse_int(value, &have) || !parse_int(r->values[0], &want))
			return false;
		return r->op == KSEL_GT ? have > want : have < want;
	default:
		return false;
	}
}

static bool term_matches(const struct kselector_term *t, const struct knode *n)
{
	if (t->nreqs == 0 && t->nfields == 0)
		return false;
	for (size_t i = 0; i < t->nreqs; i++)
		if (!sched_requirement_matches(&t->reqs[i], kobj_label(&n->meta, t->reqs[i].key)))
			return false;
	for (size_t i = 0; i < t->nfields; i++) {
		/* metadata.name is the one field node affinity may name; any
		 * other fails the term rather than reading as absent, so a
		 * NotIn on an unknown field does not match every node. */
		if (strcmp(t->fields[i].key, "metadata.name") != 0 ||
		    !sched_requirement_matches(&t->fields[i], n->meta.name))
			return false;
	}
	return true;
}

bool sched_affinity_matches(const struct kpod *p, const struct knode *n)
{
	for (size_t i = 0; i < p->nnode_selector; i++) {
		const char *v = kobj_label(&n->meta, p->node_selector[i].key);
		if (!v || strcmp(v, p->node_selector[i].value) != 0)
			return false;
	}
	if (p->naffinity_terms == 0)
		return true;
	for (size_t i = 0; i < p->naffinity_terms; i++)
		if (term_matches(&p->affinity_terms[i], n))
			return true;
	return false;
}

static int64_t or_zero(int64_t v) { return v < 0 ? 0 : v; }

unsigned sched_filter(const struct kpod *p, const struct sched_node *sn, const struct ktaint **taint)
{
	const struct knode *n = sn->node;
	if (n->ready != KCOND_TRUE)
		return 1u << SCHED_NOT_READY;
	if (n->unschedulable) {
		const struct ktaint cordon = {SCHED_TAINT_UNSCHEDULABLE, "", KEFFECT_NO_SCHEDULE};
		if (!sched_tolerated(p, &cordon))
			return 1u << SCHED_UNSCHEDULABLE;
	}
	for (size_t i = 0; i < n->ntaints; i++) {
		const struct ktaint *t = &n->taints[i];
		if ((t->effect == KEFFECT_NO_SCHEDULE || t->effect == KEFFECT_NO_EXECUTE) && !sched_tolerated(p, t)) {
			if (taint)
				*taint = t;
			return 1u << SCHED_TAINT;
		}
	}
	if (!sched_affinity_matches(p, n))
		return 1u << SCHED_AFFINITY;
	unsigned r = 0;
	if (p->requests.cpu_milli > 0 &&
	    p->requests.cpu_milli > or_zero(n->allocatable.cpu_milli) - sn->requested.cpu_milli)
		r |= 1u << SCHED_INSUFFICIENT_CPU;
	if (p->requests.memory > 0 && p->requests.memory > or_zero(n->allocatable.memory) - sn->requested.memory)
		r |= 1u << SCHED_INSUFFICIENT_MEMORY;
	if (sn->npods + 1 > or_zero(n->allocatable.pods))
		r |= 1u << SCHED_TOO_MANY_PODS;
	return r;
}

/* ---- score ----------------------------------------------------------------- */

static double ratio(int64_t num, int64_t den)
{
	if (den <= 0 || num <= 0)
		return 0.0;
	double r = (double)num / (double)den;
	return r > 1.0 ? 1.0 : r;
}

double sched_score(const struct kpod *p, const struct sched_node *sn, const struct sched_weights *w)
{
	const struct knode *n = sn->node;
	bool fresh = sn->usage_age_ms >= 0 && sn->usage_age_ms <= w->max_usage_age_ms;
	double live = fresh ? w->live : 0.0;
	double req_cpu = ratio(sn->requested.cpu_milli + p->requests.cpu_milli, n->allocatable.cpu_milli);
	double req_mem = ratio(sn->requested.memory + p->requests.memory, n->allocatable.memory);
	double live_cpu = ratio(sn->usage.cpu_milli, n->allocatable.cpu_milli);
	double live_mem = ratio(sn->usage.memory, n->allocatable.memory);
	double util_cpu = live * live_cpu + (1.0 - live) * req_cpu;
	double util_mem = live * live_mem + (1.0 - live) * req_mem;
	double wsum = w->cpu + w->memory;
	if (!(wsum > 0))
		return 0.0;
	return 100.0 * (w->cpu * util_cpu + w->memory * util_mem) / wsum;
}

/* ---- failures -------------------------------------------------------------- */

static const char *const reason_text[SCHED_REASON_COUNT] = {
	[SCHED_NOT_READY] = "node(s) were not ready",
	[SCHED_UNSCHEDULABLE] = "node(s) were unschedulable",
	[SCHED_TAINT] = "node(s) had untolerated taints",
	[SCHED_AFFINITY] = "node(s) didn't match Pod's node affinity/selector",
	[SCHED_INSUFFICIENT_CPU] = "Insufficient cpu",
	[SCHED_INSUFFICIENT_MEMORY] = "Insufficient memory",
	[SCHED_TOO_MANY_PODS] = "Too many pods",
};

void sched_failures_add(struct sched_failures *f, unsigned reasons, const struct ktaint *taint)
{
	f->nodes++;
	for (int i = 0; i < SCHED_REASON_COUNT; i++)
		if (reasons & (1u << i))
			f->count[i]++;
	if (!(reasons & (1u << SCHED_TAINT)))
		return;
	char text[sizeof(f->taints[0].text)];
	snprintf(text, sizeof(text), "{%s: %s}", taint ? taint->key : "", taint ? taint->value : "");
	for (size_t i = 0; i < f->ntaints; i++) {
		if (strcmp(f->taints[i].text, text) == 0) {
			f->taints[i].count++;
			return;
		}
	}
	if (f->ntaints == SCHED_MAX_TAINT_REASONS) {
		f->other_taints++;
		return;
	}
	memcpy(f->taints[f->ntaints].text, text, sizeof(text));
	f->taints[f->ntaints++].count = 1;
}

unsigned sched_failure_kinds(const struct sched_failures *f)
{
	unsigned kinds = 0;
	for (int i = 0; i < SCHED_REASON_COUNT; i++)
		if (f->count[i])
			kinds |= 1u << i;
	return kinds;
}

struct item {
	size_t count;
	const char *prefix; /* reason text, or the taint prefix */
	const char *suffix; /* the taint's "{k: v}", else "" */
};

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	int c = strcmp(x->prefix, y->prefix);
	return c ? c : strcmp(x->suffix, y->suffix);
}

/* Append to buf[*len..cap), keeping it NUL-terminated and *len <= cap - 1. */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	if (*len + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
}

void sched_failure_message(const struct sched_failures *f, char *buf, size_t cap)
{
	if (cap == 0)
		return;
	buf[0] = '\0';
	size_t len = 0;
	if (f->nodes == 0) {
		append(buf, cap, &len, "0/0 nodes are available: no nodes in the cluster.");
		return;
	}
	struct item items[SCHED_REASON_COUNT + SCHED_MAX_TAINT_REASONS];
	size_t n = 0;
	for (int i = 0; i < SCHED_REASON_COUNT; i++)
		if (i != SCHED_TAINT && f->count[i])
			items[n++] = (struct item){f->count[i], reason_text[i], ""};
	for (size_t i = 0; i < f->ntaints; i++)
		items[n++] = (struct item){f->taints[i].count, "node(s) had untolerated taint ", f->taints[i].text};
	if (f->other_taints)
		items[n++] = (struct item){f->other_taints, reason_text[SCHED_TAINT], ""};
	qsort(items, n, sizeof(items[0]), item_cmp);
	append(buf, cap, &len, "0/%zu nodes are available: ", f->nodes);
	for (size_t i = 0; i < n; i++)
		append(buf, cap, &len, "%s%zu %s%s", i ? ", " : "", items[i].count, items[i].prefix, items[i].suffix);
	append(buf, cap, &len, ".");
}

/* ---- choice ---------------------------------------------------------------- */

long sched_choose(const struct kpod *p, const struct sched_node *nodes, size_t n, const struct sched_weights *w,
		  double *score, struct sched_failures *f)
{
	if (f)
		memset(f, 0, sizeof(*f));
	long best = -1;
	double best_score = 0;
	for (size_t i = 0; i < n; i++) {
		const struct ktaint *taint = NULL;
		unsigned reasons = sched_filter(p, &nodes[i], &taint);
		if (reasons) {
			if (f)
				sched_failures_add(f, reasons, taint);
			continue;
		}
		if (f)
			f->nodes++;
		double s = sched_score(p, &nodes[i], w);
		if (best < 0 || s > best_score ||
		    (s == best_score && strcmp(nodes[i].node->meta.name, nodes[best].node->meta.name) < 0)) {
			best = (long)i;
			best_score = s;
		}
	}
	if (best >= 0 && score)
		*score = best_score;
	return best;
}
