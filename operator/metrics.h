/*
 * metrics: a small Prometheus registry (counters, gauges, histograms with
 * labels) rendered in the text exposition format 0.0.4.
 *
 * Contract
 * - A family is one metric name with fixed label names; its children are
 *   the label value combinations seen so far, created on first use (a
 *   family without labels has its one child from the start, so it renders
 *   0 before anything is observed). Label values are given at observe time
 *   as an array and a count, which must match the family's label names;
 *   METRICS_LABELS("a", "b") writes both.
 * - Names are checked at registration, so a typo fails at start, not in
 *   Prometheus: metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 *   [a-zA-Z_][a-zA-Z0-9_]* without a leading "__" (reserved) and not
 *   repeated; counter names end in "_total"; a histogram may not use the
 *   label "le"; a name is registered once.
 * - Counters only go up (a negative add is KERR_INVAL); gauges go both
 *   ways; histograms count observations into cumulative buckets whose
 *   upper bounds are finite and strictly increasing (+Inf is implicit).
 * - A family holds at most METRICS_MAX_CHILDREN label combinations; past
 *   that, observing a new one is refused with KERR_TOO_LARGE, so that a
 *   label fed from user input cannot eat the process's memory.
 * - Thread-safe: observations take only their family's mutex; rendering
 *   takes the registry's and then each family's in turn.
 * - Families are owned by the registry and live until metrics_registry_free.
 * - Errors: 0 or a negative KERR_* (kerr.h), with a message where a
 *   struct kerr is passed.
 */
#ifndef NIMBUS_METRICS_H
#define NIMBUS_METRICS_H

#include <stddef.h>

#include "kerr.h"

#define METRICS_MAX_CHILDREN 10000

struct metrics_registry;
struct metrics_family;

/* Label values for one observation, as the two arguments (array, count)
 * the observe functions take: METRICS_LABELS("tenant-a", "created"). */
#define METRICS_LABELS(...) \
	(const char *const[]){__VA_ARGS__}, (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* The Go client's default buckets, in seconds, for latencies from 5 ms to
 * 10 s; used when a histogram is created with no buckets. */
extern const double metrics_default_buckets[];
extern const size_t metrics_default_buckets_count;

/* Create an empty registry in *out; free it with metrics_registry_free(). */
int metrics_registry_new(struct metrics_registry **out, struct kerr *e);
/* Free the registry and all its families. Only once no thread observes
 * into it any more. NULL-safe. */
void metrics_registry_free(struct metrics_registry *r);

/*
 * Register a family. name and help are copied; label_names (nlabels of
 * them, copied) may be NULL when nlabels is 0. *out is owned by r.
 * Returns 0, KERR_INVAL (bad name, see the contract), KERR_ALREADY_EXISTS
 * (name taken) or KERR_NOMEM.
 */
int metrics_counter_new(struct metrics_registry *r, const char *name, const char *help,
			const char *const *label_names, size_t nlabels, struct metrics_family **out,
			struct kerr *e);
int metrics_gauge_new(struct metrics_registry *r, const char *name, const char *help,
		      const char *const *label_names, size_t nlabels, struct metrics_family **out,
		      struct kerr *e);
/* buckets: nbuckets finite, strictly increasing upper bounds (copied), or
 * NULL and 0 for metrics_default_buckets. */
int metrics_histogram_new(struct metrics_registry *r, const char *name, const char *help,
			  const char *const *label_names, size_t nlabels, const double *buckets,
			  size_t nbuckets, struct metrics_family **out, struct kerr *e);

/*
 * Observe. values are the nvalues label values, in the order of the
 * family's label names (NULL and 0 for a family without labels).
 * Returns 0, KERR_INVAL (wrong family type, wrong label count, a NULL
 * value, a negative or NaN counter increment, a NaN observation),
 * KERR_TOO_LARGE (METRICS_MAX_CHILDREN reached) or KERR_NOMEM.
 */
int metrics_counter_add(struct metrics_family *f, double v, const char *const *values, size_t nvalues);
int metrics_counter_inc(struct metrics_family *f, const char *const *values, size_t nvalues);
int metrics_gauge_set(struct metrics_family *f, double v, const char *const *values, size_t nvalues);
int metrics_gauge_add(struct metrics_family *f, double v, const char *const *values, size_t nvalues);
int metrics_histogram_observe(struct metrics_family *f, double v, const char *const *values, size_t nvalues);
/* Forget one label combination (a deleted tenant's gauge, say), so it is no
 * longer rendered. KERR_NOT_FOUND if it was never observed. */
int metrics_remove(struct metrics_family *f, const char *const *values, size_t nvalues);

/*
 * Render every family in text format 0.0.4: families sorted by name, each
 * with # HELP and # TYPE, children sorted by label values; a labelled
 * family with no children is left out. *out is a NUL-terminated string
 * (length in *len) that the caller frees with free().
 * Returns 0 or KERR_NOMEM.
 */
int metrics_render(struct metrics_registry *r, char **out, size_t *len, struct kerr *e);

/* The Content-Type for what metrics_render returns. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
