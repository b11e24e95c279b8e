#include "autoscale_math.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quantity.h"

const char *autoscale_resource_name(enum autoscale_resource r)
{
	return r == AUTOSCALE_CPU ? "cpu" : "memory";
}

const char *autoscale_direction_name(enum autoscale_direction d)
{
	return d == AUTOSCALE_UP ? "up" : d == AUTOSCALE_DOWN ? "down" : "none";
}

struct autoscale_behavior autoscale_behavior_default(void)
{
	return (struct autoscale_behavior){
		.tolerance = 0.1,
		.up_window_ms = 0,
		.down_window_ms = 300000,
		.up_percent = 100,
		.up_pods = 4,
		.up_period_ms = 15000,
		.down_percent = 100,
		.down_period_ms = 15000,
	};
}

/* ---- one metric ------------------------------------------------------------- */

/* |util / target - 1| <= tolerance, edges included, computed as |util -
 * target| <= tolerance × target so that both edges behave alike (in the
 * HPA's float64 ratio 55/50 - 1 exceeds 0.1 while 1 - 45/50 does not).
 * The epsilon absorbs the binary rounding of tolerance × target. */
static bool within_tolerance(int64_t util, int64_t target, double tolerance)
{
	double diff = (double)(util > target ? util - target : target - util);
	return diff <= tolerance * (double)target + 1e-9;
}

/* ceil(util × n / target) in integers: the HPA computes it in float64,
 * where 77/70 × 10 comes out as 11.000000000000002 and rounds up to 12. */
static int64_t ceil_replicas(int64_t util, int64_t n, int64_t target)
{
	return (util * n + target - 1) / target;
}

void autoscale_metric_replicas(const struct autoscale_pod *pods, size_t npods, enum autoscale_resource r,
			       int64_t target, double tolerance, int64_t current, struct autoscale_metric *out)
{
	memset(out, 0, sizeof(*out));
	out->utilization = -1;
	const char *name = autoscale_resource_name(r);
	int64_t usage = 0, requests = 0;
	size_t ready = 0, unready = 0, missing = 0;
	for (size_t i = 0; i < npods; i++) {
		const struct autoscale_pod *p = &pods[i];
		if (p->ignored)
			continue;
		if (p->pending) {
			unready++;
		} else if (!p->has_metrics) {
			missing++;
		} else if (r == AUTOSCALE_CPU && !p->ready) {
			unready++;
		} else {
			ready++;
			usage += p->usage[r];
			requests += p->requests[r];
		}
		if (p->requests[r] <= 0) {
			snprintf(out->message, sizeof(out->message), "a pod has no %s request, so %s utilization is undefined",
				 name, name);
			return;
		}
	}
	if (ready == 0) {
		snprintf(out->message, sizeof(out->message),
			 "no ready pod with a %s sample yet (%zu unready or pending, %zu without a sample)", name, unready,
			 missing);
		return;
	}
	int64_t util = usage * 100 / requests;
	double ratio = (double)util / (double)target;
	out->valid = true;
	out->utilization = util;
	out->unready = unready;
	out->missing = missing;
	if (missing == 0 && (unready == 0 || ratio <= 1.0)) {
		out->replicas = within_tolerance(util, target, tolerance) ? current : ceil_replicas(util, (int64_t)ready, target);
		return;
	}
	/* Unknowns damp a change, never drive one: on the way down a pod without
	 * a sample counts as fully used, on the way up as idle, and so do
	 * unready pods on the way up. */
	int64_t usage2 = usage, requests2 = requests, counted = (int64_t)ready;
	for (size_t i = 0; i < npods; i++) {
		const struct autoscale_pod *p = &pods[i];
		if (p->ignored)
			continue;
		bool is_missing = !p->pending && !p->has_metrics;
		bool is_unready = p->pending || (!is_missing && r == AUTOSCALE_CPU && !p->ready);
		if (is_missing && ratio != 1.0) {
			usage2 += ratio < 1.0 ? p->requests[r] : 0;
			requests2 += p->requests[r];
			counted++;
		} else if (is_unready && ratio > 1.0) {
			requests2 += p->requests[r];
			counted++;
		}
	}
	int64_t util2 = usage2 * 100 / requests2;
	double ratio2 = (double)util2 / (double)target;
	int64_t n = ceil_replicas(util2, counted, target);
	if (within_tolerance(util2, target, tolerance) || (ratio < 1.0 && ratio2 > 1.0) || (ratio > 1.0 && ratio2 < 1.0) ||
	    (ratio2 < 1.0 && n > current) || (ratio2 > 1.0 && n < current))
		n = current;
	out->replicas = n;
	out->held = n == current && !within_tolerance(util, target, tolerance);
}

/* ---- history ---------------------------------------------------------------- */

void autoscale_history_free(struct autoscale_history *h)
{
	if (!h)
		return;
	free(h->recs);
	free(h->scales);
	memset(h, 0, sizeof(*h));
}

static int push(struct autoscale_sample **a, size_t *n, size_t *cap, int64_t at, int64_t value, struct kerr *e)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct autoscale_sample *na = realloc(*a, ncap * sizeof(*na));
		if (!na)
			return kerr_set(e, KERR_NOMEM, "autoscaler: out of memory recording its history");
		*a = na;
		*cap = ncap;
	}
	(*a)[(*n)++] = (struct autoscale_sample){at, value};
	return 0;
}

/* Drop samples at or before cutoff; the arrays are in time order. */
static void prune(struct autoscale_sample *a, size_t *n, int64_t cutoff)
{
	size_t k = 0;
	while (k < *n && a[k].at_ms <= cutoff)
		k++;
	if (k == 0)
		return;
	memmove(a, a + k, (*n - k) * sizeof(*a));
	*n -= k;
}

int autoscale_history_scaled(struct autoscale_history *h, int64_t now_ms, int64_t from, int64_t to, struct kerr *e)
{
	return from == to ? 0 : push(&h->scales, &h->nscales, &h->capscales, now_ms, to - from, e);
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The replicas at the start of the last period_ms: current minus what was
 * added plus what was removed since. */
static int64_t period_start(const struct autoscale_history *h, int64_t now, int64_t period_ms, int64_t current)
{
	int64_t start = current;
	for (size_t i = 0; i < h->nscales; i++)
		if (h->scales[i].at_ms > now - period_ms)
			start -= h->scales[i].value;
	return start;
}

static int64_t up_limit(const struct autoscale_history *h, const struct autoscale_behavior *b, int64_t now,
			int64_t current)
{
	if (b->up_percent <= 0 && b->up_pods <= 0)
		return current;
	int64_t start = period_start(h, now, b->up_period_ms, current), limit = INT64_MIN;
	if (b->up_percent > 0)
		limit = start + (start * b->up_percent + 99) / 100;
	if (b->up_pods > 0)
		limit = max64(limit, start + b->up_pods);
	return limit;
}

static int64_t down_limit(const struct autoscale_history *h, const struct autoscale_behavior *b, int64_t now,
			  int64_t current)
{
	if (b->down_percent <= 0)
		return current;
	int64_t start = period_start(h, now, b->down_period_ms, current);
	return start * (100 - min64(b->down_percent, 100)) / 100;
}

/* ---- the decision ----------------------------------------------------------- */

static void append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t cap, const char *fmt, ...)
{
	size_t len = strlen(buf);
	if (len + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + len, cap - len, fmt, ap);
	va_end(ap);
}

struct quota_cap {
	int64_t replicas; /* INT64_MAX: no limit */
	const char *quota, *resource;
	int64_t hard, others, each;
	bool bytes, cpu;
};

static void cap_by(struct quota_cap *c, const char *quota, const char *resource, int64_t hard, int64_t used,
		   int64_t own, int64_t each, bool cpu, bool bytes)
{
	if (hard < 0 || each <= 0)
		return;
	/* used counts this workload's pods too; what the others use is what
	 * the replicas of this one cannot have. An unknown used (a quota the
	 * apiserver has not counted yet) counts as nothing used. */
	int64_t others = used >= 0 ? used - (own > 0 ? own : 0) : 0;
	if (others < 0)
		others = 0;
	int64_t room = hard - others;
	int64_t n = room > 0 ? room / each : 0;
	if (n < c->replicas)
		*c = (struct quota_cap){n, quota, resource, hard, others, each, bytes, cpu};
}

static void format_amount(const struct quota_cap *c, int64_t v, char *buf, size_t cap)
{
	if (c->cpu)
		quantity_format_cpu_milli(v, buf, cap);
	else if (c->bytes)
		quantity_format_bytes(v, buf, cap);
	else
		snprintf(buf, cap, "%" PRId64, v);
}

static struct quota_cap quota_cap(const struct autoscale_input *in)
{
	struct quota_cap c = {.replicas = INT64_MAX};
	for (size_t i = 0; i < in->nquotas; i++) {
		const struct autoscale_quota *q = &in->quotas[i];
		const char *n = q->name ? q->name : "";
		cap_by(&c, n, "requests.cpu", q->hard.requests_cpu_milli, q->used.requests_cpu_milli,
		       in->own.requests_cpu_milli, in->replica_cpu_milli, true, false);
		cap_by(&c, n, "limits.cpu", q->hard.limits_cpu_milli, q->used.limits_cpu_milli, in->own.limits_cpu_milli,
		       in->replica_cpu_milli, true, false);
		cap_by(&c, n, "requests.memory", q->hard.requests_memory, q->used.requests_memory,
		       in->own.requests_memory, in->replica_memory, false, true);
		cap_by(&c, n, "limits.memory", q->hard.limits_memory, q->used.limits_memory, in->own.limits_memory,
		       in->replica_memory, false, true);
		cap_by(&c, n, "pods", q->hard.pods, q->used.pods, in->own.pods, 1, false, false);
	}
	return c;
}

/* The deciding metric's phrase: why the metrics recommend what they do. */
static void metric_phrase(const struct autoscale_input *in, const struct autoscale_metric *m, int best,
			  int64_t rec, double tolerance, char *buf, size_t cap)
{
	const char *name = autoscale_resource_name((enum autoscale_resource)best);
	int64_t util = m[best].utilization, target = in->target[best];
	/* Also when rounding up lands on the current size (10 % of 70 % on one
	 * replica still needs one). */
	if (rec > in->current || (rec == in->current && !m[best].held && !within_tolerance(util, target, tolerance)))
		snprintf(buf, cap, "%s utilization %" PRId64 "%% %s target %" PRId64 "%%", name, util,
			 util > target ? "above" : "below", target);
	else if (rec < in->current)
		snprintf(buf, cap, "%s utilization %" PRId64 "%% below target %" PRId64 "%%", name, util, target);
	else if (m[best].held)
		snprintf(buf, cap,
			 "%s utilization %" PRId64 "%% %s target %" PRId64 "%% on ready pods; holding %" PRId64
			 " replicas until new pods report (%zu without a sample, %zu not ready)",
			 name, util, util > target ? "above" : "below", target, rec, m[best].missing, m[best].unready);
	else
		snprintf(buf, cap, "within tolerance: %s utilization %" PRId64 "%% (target %" PRId64 "%%)", name, util,
			 target);
}

/* The current replicas moved toward rec no further than the recommendations
 * of the windows allow; records rec. */
static int stabilize(struct autoscale_history *h, const struct autoscale_behavior *b, int64_t now, int64_t current,
		     int64_t rec, int64_t *out, struct kerr *e)
{
	int64_t up = rec, down = rec;
	for (size_t i = 0; i < h->nrecs; i++) {
		if (h->recs[i].at_ms > now - b->up_window_ms)
			up = min64(up, h->recs[i].value);
		if (h->recs[i].at_ms > now - b->down_window_ms)
			down = max64(down, h->recs[i].value);
	}
	int64_t r = current;
	if (r < up)
		r = up;
	if (r > down)
		r = down;
	*out = r;
	return push(&h->recs, &h->nrecs, &h->caprecs, now, rec, e);
}

int autoscale_decide(const struct autoscale_input *in, const struct autoscale_behavior *bp,
		     struct autoscale_history *h, int64_t now, struct autoscale_decision *out, struct kerr *e)
{
	struct autoscale_behavior b = bp ? *bp : autoscale_behavior_default();
	memset(out, 0, sizeof(*out));
	out->desired = in->current;
	out->recommendation = -1;
	prune(h->recs, &h->nrecs, now - max64(b.up_window_ms, b.down_window_ms));
	prune(h->scales, &h->nscales, now - max64(b.up_period_ms, b.down_period_ms));
	int rc;
	/* A workload first seen starts its scale-down window at its current
	 * size: a restarted operator must not forget why it scaled up. */
	if (!h->seeded) {
		if ((rc = push(&h->recs, &h->nrecs, &h->caprecs, now, in->current, e)) < 0)
			return rc;
		h->seeded = true;
	}

	struct autoscale_metric m[AUTOSCALE_NRESOURCES];
	int best = -1, nmetrics = 0, ninvalid = 0, first_invalid = -1;
	for (int r = 0; r < AUTOSCALE_NRESOURCES; r++) {
		out->utilization[r] = -1;
		if (in->target[r] <= 0)
			continue;
		nmetrics++;
		autoscale_metric_replicas(in->pods, in->npods, (enum autoscale_resource)r, in->target[r], b.tolerance,
					  in->current, &m[r]);
		out->utilization[r] = m[r].utilization;
		if (!m[r].valid) {
			ninvalid++;
			if (first_invalid < 0)
				first_invalid = r;
		} else if (best < 0 || m[r].replicas > m[best].replicas) {
			best = r;
		}
	}
	out->metrics_ok = nmetrics > 0 && ninvalid == 0;

	char limit[400] = "", metric[200] = "";
	int64_t d = in->current;
	if (in->current == 0 && in->min_replicas > 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "autoscaling is off while spec.replicas is 0; scale to %" PRId64 " or more to turn it on",
			 in->min_replicas);
		out->desired = 0;
		return 0;
	} else if (in->current > in->max_replicas) {
		d = in->max_replicas;
		snprintf(metric, sizeof(metric), "current replicas %" PRId64 " above maxReplicas %" PRId64, in->current,
			 in->max_replicas);
	} else if (in->current < in->min_replicas) {
		d = in->min_replicas;
		snprintf(metric, sizeof(metric), "current replicas %" PRId64 " below minReplicas %" PRId64, in->current,
			 in->min_replicas);
	} else if (nmetrics == 0) {
		snprintf(out->reason, sizeof(out->reason), "no metric to scale on: set a utilization target");
		return 0;
	} else if (best < 0 || (ninvalid > 0 && m[best].replicas < in->current)) {
		/* Scaling down on partial information could starve the metric
		 * that cannot be read. */
		snprintf(out->reason, sizeof(out->reason), "%s%s: %s",
			 best < 0 ? "no usable metrics: " : "not scaling down on partial metrics: ",
			 autoscale_resource_name((enum autoscale_resource)first_invalid), m[first_invalid].message);
		return 0;
	} else {
		int64_t rec = m[best].replicas;
		out->recommendation = rec;
		metric_phrase(in, m, best, rec, b.tolerance, metric, sizeof(metric));
		if ((rc = stabilize(h, &b, now, in->current, rec, &d, e)) < 0)
			return rc;
		if (d != rec)
			append(limit, sizeof(limit), "%sstabilization window holds %" PRId64 " replicas",
			       d > rec ? "" : "scale-up ", d);
		if (d > in->current) {
			int64_t lim = max64(up_limit(h, &b, now, in->current), in->current);
			int64_t allowed = min64(in->max_replicas, lim);
			if (d > allowed) {
				d = allowed;
				if (lim < in->max_replicas)
					append(limit, sizeof(limit), "%sscale-up rate limit allows %" PRId64 " replicas now",
					       limit[0] ? "; " : "", d);
				else
					append(limit, sizeof(limit), "%slimited to maxReplicas %" PRId64,
					       limit[0] ? "; " : "", d);
			}
		} else if (d < in->current) {
			int64_t lim = min64(down_limit(h, &b, now, in->current), in->current);
			int64_t allowed = max64(in->min_replicas, lim);
			if (d < allowed) {
				d = allowed;
				if (lim > in->min_replicas)
					append(limit, sizeof(limit), "%sscale-down rate limit allows %" PRId64 " replicas now",
					       limit[0] ? "; " : "", d);
				else
					append(limit, sizeof(limit), "%slimited to minReplicas %" PRId64,
					       limit[0] ? "; " : "", d);
			}
		}
	}

	if (d > in->current) {
		struct quota_cap c = quota_cap(in);
		if (d > c.replicas) {
			int64_t capped = max64(in->current, c.replicas);
			char hard[QUANTITY_FMT_MAX], others[QUANTITY_FMT_MAX], each[QUANTITY_FMT_MAX];
			format_amount(&c, c.hard, hard, sizeof(hard));
			format_amount(&c, c.others, others, sizeof(others));
			format_amount(&c, c.each, each, sizeof(each));
			snprintf(out->quota_message, sizeof(out->quota_message),
				 "quota %s allows %" PRId64 " replicas (%s hard %s, %s used by other pods, %s per replica)",
				 c.quota, c.replicas, c.resource, hard, others, each);
			out->quota_limited = true;
			d = capped;
		}
	}

	out->desired = d;
	out->direction = d > in->current ? AUTOSCALE_UP : d < in->current ? AUTOSCALE_DOWN : AUTOSCALE_NONE;
	if (out->quota_limited)
		snprintf(out->reason, sizeof(out->reason), "capped by tenant quota: %s; ", out->quota_message);
	if (limit[0])
		append(out->reason, sizeof(out->reason), "%s; ", limit);
	append(out->reason, sizeof(out->reason), "%s", metric);
	return 0;
}
