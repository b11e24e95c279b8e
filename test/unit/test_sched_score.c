/*
 * sched_score: the scheduler's filter (readiness, cordon, taints and
 * tolerations, nodeSelector, required node affinity, resources), its
 * bin-packing score with live usage and its fallback when usage is stale,
 * the choice with its tie-break, and the FailedScheduling message. Pods
 * and nodes are decoded from small JSON documents, as the informer would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"
#include "sched_score.h"

/* ---- building objects -------------------------------------------------------- */

static struct kobj *decode(const struct kind *k, const char *json)
{
	struct kobj *o = NULL;
	struct kerr e = {0};
	if (kind_decode_json(k, json, strlen(json), &o, &e) != 0)
		fail_msg("decoding %s: %s\n%s", k->name, e.message, json);
	return o;
}

/* A Ready node; extra is spliced into the document after "spec" and
 * "status" have been written (e.g. labels in metadata via `labels`). */
static struct knode *node_full(const char *name, const char *cpu, const char *memory, const char *pods,
			       const char *labels, const char *spec, const char *ready)
{
	char json[4096];
	snprintf(json, sizeof(json),
		 "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\",\"labels\":{%s}},"
		 "\"spec\":{%s},\"status\":{\"allocatable\":{\"cpu\":\"%s\",\"memory\":\"%s\",\"pods\":\"%s\"},"
		 "\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\"}]}}",
		 name, labels, spec, cpu, memory, pods, ready);
	return (struct knode *)decode(&kind_node, json);
}

static struct knode *node(const char *name, const char *cpu, const char *memory)
{
	return node_full(name, cpu, memory, "110", "", "", "True");
}

/* A pending pod; spec_extra is added to its spec (tolerations, affinity...). */
static struct kpod *pod_spec(const char *cpu, const char *memory, const char *spec_extra)
{
	char json[4096];
	snprintf(json, sizeof(json),
		 "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},"
		 "\"spec\":{\"schedulerName\":\"nimbus-scheduler\",\"containers\":[{\"name\":\"c\",\"image\":\"i\","
		 "\"resources\":{\"requests\":{\"cpu\":\"%s\",\"memory\":\"%s\"}}}]%s%s},"
		 "\"status\":{\"phase\":\"Pending\"}}",
		 cpu, memory, spec_extra[0] ? "," : "", spec_extra);
	return (struct kpod *)decode(&kind_pod, json);
}

static struct kpod *pod(const char *cpu, const char *memory) { return pod_spec(cpu, memory, ""); }

static void unref_node(struct knode *n) { kobj_unref(&n->meta); }
static void unref_pod(struct kpod *p) { kobj_unref(&p->meta); }

static struct sched_node snode(const struct knode *n)
{
	return (struct sched_node){.node = n, .usage_age_ms = -1};
}

#define GiB (1024LL * 1024 * 1024)

/* ---- resources ------------------------------------------------------------------ */

static void fits_until_allocatable_is_used(void **state)
{
	(void)state;
	struct knode *n = node("n1", "4", "16Gi");
	struct kpod *p = pod("1", "4Gi");
	static const struct {
		int64_t cpu, mem, npods;
		unsigned want;
	} table[] = {
		{0, 0, 0, 0},
		{3000, 12 * GiB, 5, 0},                                   /* exactly full after placing */
		{3001, 0, 0, 1u << SCHED_INSUFFICIENT_CPU},
		{0, 12 * GiB + 1, 0, 1u << SCHED_INSUFFICIENT_MEMORY},
		{3500, 13 * GiB, 0, (1u << SCHED_INSUFFICIENT_CPU) | (1u << SCHED_INSUFFICIENT_MEMORY)},
		{0, 0, 109, 0},
		{0, 0, 110, 1u << SCHED_TOO_MANY_PODS},
		{5000, 0, 0, 1u << SCHED_INSUFFICIENT_CPU},                /* over-committed by others */
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct sched_node sn = snode(n);
		sn.requested = (struct kresources){table[i].cpu, table[i].mem};
		sn.npods = table[i].npods;
		unsigned got = sched_filter(p, &sn, NULL);
		if (got != table[i].want)
			fail_msg("row %zu: reasons %#x, want %#x", i, got, table[i].want);
	}
	unref_pod(p);
	unref_node(n);
}

static void zero_requests_fit_a_full_node(void **state)
{
	(void)state;
	/* As kube-scheduler: only a positive request is checked, so a
	 * best-effort pod still fits where others over-committed. */
	struct knode *n = node("n1", "4", "16Gi");
	struct kpod *p = pod("0", "0");
	struct sched_node sn = snode(n);
	sn.requested = (struct kresources){4000, 16 * GiB};
	assert_int_equal(sched_filter(p, &sn, NULL), 0);
	unref_pod(p);
	unref_node(n);
}

static void readiness_and_cordon(void **state)
{
	(void)state;
	struct knode *notready = node_full("a", "4", "16Gi", "110", "", "", "False");
	struct knode *unknown = node_full("b", "4", "16Gi", "110", "", "", "Unknown");
	struct knode *cordoned = node_full("c", "4", "16Gi", "110", "", "\"unschedulable\":true", "True");
	struct kpod *p = pod("1", "1Gi");
	struct kpod *tolerant = pod_spec("1", "1Gi",
					 "\"tolerations\":[{\"key\":\"node.kubernetes.io/unschedulable\","
					 "\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]");
	struct sched_node a = snode(notready), b = snode(unknown), c = snode(cordoned);
	assert_int_equal(sched_filter(p, &a, NULL), 1u << SCHED_NOT_READY);
	assert_int_equal(sched_filter(p, &b, NULL), 1u << SCHED_NOT_READY);
	assert_int_equal(sched_filter(p, &c, NULL), 1u << SCHED_UNSCHEDULABLE);
	/* A pod that tolerates the cordon taint may go to a cordoned node. */
	assert_int_equal(sched_filter(tolerant, &c, NULL), 0);
	/* ...but not to a node that is not ready. */
	assert_int_equal(sched_filter(tolerant, &a, NULL), 1u << SCHED_NOT_READY);
	unref_pod(tolerant);
	unref_pod(p);
	unref_node(notready);
	unref_node(unknown);
	unref_node(cordoned);
}

/* ---- taints ----------------------------------------------------------------------- */

static void toleration_table(void **state)
{
	(void)state;
	static const struct {
		const char *tolerations; /* JSON array body */
		const char *taint;       /* one taint object */
		bool fits;
	} table[] = {
		{"", "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoSchedule\"}", false},
		{"", "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoExecute\"}", false},
		/* PreferNoSchedule is a preference, not a filter. */
		{"", "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"PreferNoSchedule\"}", true},
		/* Equal: key and value must match; operator defaults to Equal. */
		{"{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoSchedule\"}", true},
		{"{\"key\":\"gpu\",\"operator\":\"Equal\",\"value\":\"h100\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoSchedule\"}", false},
		{"{\"key\":\"tpu\",\"operator\":\"Equal\",\"value\":\"a100\"}",
		 "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoSchedule\"}", false},
		/* Exists ignores the value. */
		{"{\"key\":\"gpu\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoSchedule\"}", true},
		/* Effect must match unless empty. */
		{"{\"key\":\"gpu\",\"operator\":\"Exists\",\"effect\":\"NoExecute\"}",
		 "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoSchedule\"}", false},
		{"{\"key\":\"gpu\",\"operator\":\"Exists\"}",
		 "{\"key\":\"gpu\",\"value\":\"a100\",\"effect\":\"NoExecute\"}", true},
		/* Empty key with Exists tolerates every taint. */
		{"{\"operator\":\"Exists\"}", "{\"key\":\"anything\",\"value\":\"x\",\"effect\":\"NoExecute\"}", true},
		{"{\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"anything\",\"value\":\"x\",\"effect\":\"NoExecute\"}", false},
		/* A taint without a value and an Equal toleration without one. */
		{"{\"key\":\"dedicated\",\"operator\":\"Equal\",\"effect\":\"NoSchedule\"}",
		 "{\"key\":\"dedicated\",\"effect\":\"NoSchedule\"}", true},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char spec[512], tol[512];
		snprintf(spec, sizeof(spec), "\"taints\":[%s]", table[i].taint);
		snprintf(tol, sizeof(tol), "\"tolerations\":[%s]", table[i].tolerations);
		struct knode *n = node_full("n", "4", "16Gi", "110", "", spec, "True");
		struct kpod *p = pod_spec("1", "1Gi", table[i].tolerations[0] ? tol : "");
		struct sched_node sn = snode(n);
		const struct ktaint *taint = NULL;
		unsigned got = sched_filter(p, &sn, &taint);
		if ((got == 0) != table[i].fits)
			fail_msg("row %zu: reasons %#x, want %s", i, got, table[i].fits ? "fit" : "untolerated taint");
		if (!table[i].fits) {
			assert_int_equal(got, 1u << SCHED_TAINT);
			assert_ptr_equal(taint, &n->taints[0]);
		}
		unref_pod(p);
		unref_node(n);
	}
}

static void every_blocking_taint_must_be_tolerated(void **state)
{
	(void)state;
	struct knode *n = node_full("n", "4", "16Gi", "110", "",
				    "\"taints\":[{\"key\":\"a\",\"value\":\"1\",\"effect\":\"NoSchedule\"},"
				    "{\"key\":\"b\",\"value\":\"2\",\"effect\":\"NoExecute\"}]",
				    "True");
	struct kpod *one = pod_spec("1", "1Gi", "\"tolerations\":[{\"key\":\"a\",\"operator\":\"Exists\"}]");
	struct kpod *both = pod_spec("1", "1Gi",
				     "\"tolerations\":[{\"key\":\"a\",\"operator\":\"Exists\"},"
				     "{\"key\":\"b\",\"value\":\"2\"}]");
	struct sched_node sn = snode(n);
	const struct ktaint *taint = NULL;
	assert_int_equal(sched_filter(one, &sn, &taint), 1u << SCHED_TAINT);
	assert_string_equal(taint->key, "b");
	assert_int_equal(sched_filter(both, &sn, NULL), 0);
	unref_pod(one);
	unref_pod(both);
	unref_node(n);
}

/* ---- selectors and affinity ---------------------------------------------------------- */

static void node_selector_matches_labels(void **state)
{
	(void)state;
	struct knode *n = node_full("n", "4", "16Gi", "110", "\"disk\":\"ssd\",\"zone\":\"a\"", "", "True");
	static const struct {
		const char *selector;
		bool fits;
	} table[] = {
		{"\"disk\":\"ssd\"", true},
		{"\"disk\":\"ssd\",\"zone\":\"a\"", true},
		{"\"disk\":\"hdd\"", false},
		{"\"disk\":\"ssd\",\"zone\":\"b\"", false},
		{"\"gpu\":\"true\"", false},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char spec[256];
		snprintf(spec, sizeof(spec), "\"nodeSelector\":{%s}", table[i].selector);
		struct kpod *p = pod_spec("1", "1Gi", spec);
		struct sched_node sn = snode(n);
		unsigned got = sched_filter(p, &sn, NULL);
		if (got != (table[i].fits ? 0 : 1u << SCHED_AFFINITY))
			fail_msg("row %zu (%s): reasons %#x", i, table[i].selector, got);
		unref_pod(p);
	}
	unref_node(n);
}

static void affinity_operators(void **state)
{
	(void)state;
	/* Node labels: zone=a, cores=16, ssd="" ; node name "n-7". */
	struct knode *n = node_full("n-7", "4", "16Gi", "110", "\"zone\":\"a\",\"cores\":\"16\",\"ssd\":\"\"", "", "True");
	static const struct {
		const char *terms; /* nodeSelectorTerms array body */
		bool fits;
	} table[] = {
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]}]}", true},
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"b\"]}]}", false},
		{"{\"matchExpressions\":[{\"key\":\"rack\",\"operator\":\"In\",\"values\":[\"r1\"]}]}", false},
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"NotIn\",\"values\":[\"b\"]}]}", true},
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"NotIn\",\"values\":[\"a\"]}]}", false},
		/* NotIn holds when the label is absent. */
		{"{\"matchExpressions\":[{\"key\":\"rack\",\"operator\":\"NotIn\",\"values\":[\"r1\"]}]}", true},
		{"{\"matchExpressions\":[{\"key\":\"ssd\",\"operator\":\"Exists\"}]}", true},
		{"{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":\"Exists\"}]}", false},
		{"{\"matchExpressions\":[{\"key\":\"gpu\",\"operator\":\"DoesNotExist\"}]}", true},
		{"{\"matchExpressions\":[{\"key\":\"ssd\",\"operator\":\"DoesNotExist\"}]}", false},
		{"{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Gt\",\"values\":[\"8\"]}]}", true},
		{"{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Gt\",\"values\":[\"16\"]}]}", false},
		{"{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Lt\",\"values\":[\"32\"]}]}", true},
		{"{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Lt\",\"values\":[\"16\"]}]}", false},
		/* Gt/Lt on a label that is not an integer, or absent, never match. */
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}", false},
		{"{\"matchExpressions\":[{\"key\":\"rack\",\"operator\":\"Lt\",\"values\":[\"1\"]}]}", false},
		/* Requirements of a term are ANDed... */
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"a\"]},"
		 "{\"key\":\"cores\",\"operator\":\"Gt\",\"values\":[\"32\"]}]}",
		 false},
		/* ...terms are ORed. */
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"b\"]}]},"
		 "{\"matchExpressions\":[{\"key\":\"cores\",\"operator\":\"Gt\",\"values\":[\"8\"]}]}",
		 true},
		/* matchFields on metadata.name. */
		{"{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"n-7\"]}]}", true},
		{"{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"n-8\"]}]}", false},
		{"{\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"NotIn\",\"values\":[\"n-7\"]}]}", false},
		/* An unknown field fails its term, even with NotIn. */
		{"{\"matchFields\":[{\"key\":\"spec.podCIDR\",\"operator\":\"NotIn\",\"values\":[\"x\"]}]}", false},
		/* Expressions and fields together are ANDed. */
		{"{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"a\"]}],"
		 "\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"n-8\"]}]}",
		 false},
		/* An empty term matches nothing. */
		{"{}", false},
		{"{}, {\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"Exists\"}]}", true},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		char spec[1024];
		snprintf(spec, sizeof(spec),
			 "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
			 "{\"nodeSelectorTerms\":[%s]}}}",
			 table[i].terms);
		struct kpod *p = pod_spec("1", "1Gi", spec);
		bool got = sched_affinity_matches(p, n);
		if (got != table[i].fits)
			fail_msg("row %zu: %s, want %s: %s", i, got ? "matches" : "does not match",
				 table[i].fits ? "match" : "no match", table[i].terms);
		unref_pod(p);
	}
	unref_node(n);
}

static void selector_and_affinity_both_apply(void **state)
{
	(void)state;
	struct knode *n = node_full("n", "4", "16Gi", "110", "\"zone\":\"a\",\"disk\":\"ssd\"", "", "True");
	struct kpod *p = pod_spec("1", "1Gi",
				  "\"nodeSelector\":{\"disk\":\"hdd\"},"
				  "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
				  "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\","
				  "\"values\":[\"a\"]}]}]}}}");
	assert_false(sched_affinity_matches(p, n));
	unref_pod(p);
	unref_node(n);
}

/* ---- score ------------------------------------------------------------------------------ */

static void score_worked_example(void **state)
{
	(void)state;
	/* The example of sched_score.h. */
	struct knode *n = node("n", "4", "16Gi");
	struct kpod *p = pod("1", "2Gi");
	struct sched_weights w = sched_weights_default();
	struct sched_node sn = snode(n);
	sn.requested = (struct kresources){1000, 4 * GiB};
	sn.npods = 3;
	sn.usage = (struct kresources){600, 2 * GiB};
	sn.usage_age_ms = 10000;
	assert_true(fabs(sched_score(p, &sn, &w) - 34.75) < 1e-9);
	/* Stale (older than 60 s) or missing usage: requests only. */
	sn.usage_age_ms = 60001;
	assert_true(fabs(sched_score(p, &sn, &w) - 43.75) < 1e-9);
	sn.usage_age_ms = -1;
	assert_true(fabs(sched_score(p, &sn, &w) - 43.75) < 1e-9);
	/* At exactly the max age usage still counts. */
	sn.usage_age_ms = 60000;
	assert_true(fabs(sched_score(p, &sn, &w) - 34.75) < 1e-9);
	unref_pod(p);
	unref_node(n);
}

static void score_weights(void **state)
{
	(void)state;
	struct knode *n = node("n", "4", "16Gi");
	struct kpod *p = pod("2", "4Gi"); /* cpu 0.5, memory 0.25 after placing */
	struct sched_node sn = snode(n);
	struct sched_weights cpu_only = {1, 0, 0, 60000}, mem_only = {0, 1, 0, 60000}, skewed = {3, 1, 0, 60000};
	assert_true(fabs(sched_score(p, &sn, &cpu_only) - 50.0) < 1e-9);
	assert_true(fabs(sched_score(p, &sn, &mem_only) - 25.0) < 1e-9);
	assert_true(fabs(sched_score(p, &sn, &skewed) - 43.75) < 1e-9);
	/* Live usage only, above allocatable, is clamped to 1. */
	struct sched_weights live = {1, 1, 1, 60000};
	sn.usage = (struct kresources){8000, 32 * GiB};
	sn.usage_age_ms = 0;
	assert_true(fabs(sched_score(p, &sn, &live) - 100.0) < 1e-9);
	unref_pod(p);
	unref_node(n);
}

static void weights_are_checked(void **state)
{
	(void)state;
	struct kerr e = {0};
	struct sched_weights w = sched_weights_default();
	assert_int_equal(sched_weights_check(&w, &e), 0);
	w.live = 1.5;
	assert_int_equal(sched_weights_check(&w, &e), KERR_INVAL);
	assert_non_null(strstr(e.message, "live"));
	kerr_clear(&e);
	w = (struct sched_weights){0, 0, 0.3, 60000};
	assert_int_equal(sched_weights_check(&w, &e), KERR_INVAL);
	kerr_clear(&e);
	w = (struct sched_weights){-1, 1, 0.3, 60000};
	assert_int_equal(sched_weights_check(&w, &e), KERR_INVAL);
	kerr_clear(&e);
	w = (struct sched_weights){NAN, 1, 0.3, 60000};
	assert_int_equal(sched_weights_check(&w, &e), KERR_INVAL);
}

/* ---- choice ----------------------------------------------------------------------------- */

static void packs_the_fullest_node_that_fits(void **state)
{
	(void)state;
	struct knode *a = node("a", "4", "16Gi"), *b = node("b", "4", "16Gi"), *c = node("c", "4", "16Gi");
	struct kpod *p = pod("1", "1Gi");
	struct sched_weights w = sched_weights_default();
	struct sched_node ns[3] = {snode(a), snode(b), snode(c)};
	ns[0].requested = (struct kresources){1000, 1 * GiB};
	ns[1].requested = (struct kresources){2000, 2 * GiB}; /* fullest */
	ns[2].requested = (struct kresources){3500, 1 * GiB}; /* fuller still, but the pod does not fit */
	double score = -1;
	struct sched_failures f;
	assert_int_equal(sched_choose(p, ns, 3, &w, &score, &f), 1);
	/* cpu (2+1)/4 = 0.75, memory 3/16 = 0.1875 */
	assert_true(fabs(score - 100 * (0.75 + 0.1875) / 2) < 1e-9);
	assert_int_equal(f.count[SCHED_INSUFFICIENT_CPU], 1);
	unref_pod(p);
	unref_node(a);
	unref_node(b);
	unref_node(c);
}

static void ties_go_to_the_first_name(void **state)
{
	(void)state;
	struct knode *a = node("node-b", "4", "16Gi"), *b = node("node-a", "4", "16Gi"), *c = node("node-c", "4", "16Gi");
	struct kpod *p = pod("1", "1Gi");
	struct sched_weights w = sched_weights_default();
	struct sched_node ns[3] = {snode(a), snode(b), snode(c)};
	double score;
	assert_int_equal(sched_choose(p, ns, 3, &w, &score, NULL), 1); /* node-a */
	/* Whatever the order of the array. */
	struct sched_node rev[3] = {snode(c), snode(a), snode(b)};
	assert_int_equal(sched_choose(p, rev, 3, &w, &score, NULL), 2);
	unref_pod(p);
	unref_node(a);
	unref_node(b);
	unref_node(c);
}

static void live_usage_changes_the_choice_only_when_fresh(void **state)
{
	(void)state;
	/* Equal requests; node b is busy in reality. With fresh usage b wins
	 * (most allocated), with stale usage the tie goes to a. */
	struct knode *a = node("a", "4", "16Gi"), *b = node("b", "4", "16Gi");
	struct kpod *p = pod("1", "1Gi");
	struct sched_weights w = sched_weights_default();
	struct sched_node ns[2] = {snode(a), snode(b)};
	ns[0].usage = (struct kresources){100, GiB / 2};
	ns[1].usage = (struct kresources){3000, 8 * GiB};
	ns[0].usage_age_ms = ns[1].usage_age_ms = 5000;
	double score;
	assert_int_equal(sched_choose(p, ns, 2, &w, &score, NULL), 1);
	ns[0].usage_age_ms = ns[1].usage_age_ms = 120000;
	assert_int_equal(sched_choose(p, ns, 2, &w, &score, NULL), 0);
	assert_true(fabs(score - 100 * (0.25 + 1.0 / 16) / 2) < 1e-9);
	/* Missing on one node only: that node is scored by requests alone. */
	ns[0].usage_age_ms = -1;
	ns[1].usage_age_ms = 5000;
	assert_int_equal(sched_choose(p, ns, 2, &w, &score, NULL), 1);
	unref_pod(p);
	unref_node(a);
	unref_node(b);
}

/* ---- the failure message ------------------------------------------------------------------ */

static void failure_message_like_kube_scheduler(void **state)
{
	(void)state;
	struct knode *n[4];
	n[0] = node("a", "1", "16Gi");
	n[1] = node("b", "1", "16Gi");
	n[2] = node("c", "1", "16Gi");
	n[3] = node_full("d", "8", "16Gi", "110", "",
			 "\"taints\":[{\"key\":\"dedicated\",\"value\":\"ml\",\"effect\":\"NoSchedule\"}]", "True");
	struct kpod *p = pod("2", "1Gi");
	struct sched_weights w = sched_weights_default();
	struct sched_node ns[4] = {snode(n[0]), snode(n[1]), snode(n[2]), snode(n[3])};
	struct sched_failures f;
	assert_int_equal(sched_choose(p, ns, 4, &w, NULL, &f), -1);
	char msg[512];
	sched_failure_message(&f, msg, sizeof(msg));
	assert_string_equal(msg, "0/4 nodes are available: 3 Insufficient cpu, 1 node(s) had untolerated taint "
				 "{dedicated: ml}.");
	unref_pod(p);
	for (int i = 0; i < 4; i++)
		unref_node(n[i]);
}

static void failure_message_orders_and_groups(void **state)
{
	(void)state;
	struct sched_failures f = {0};
	struct ktaint gpu = {"gpu", "a100", KEFFECT_NO_SCHEDULE}, spot = {"spot", "", KEFFECT_NO_EXECUTE};
	sched_failures_add(&f, 1u << SCHED_TAINT, &gpu);
	sched_failures_add(&f, 1u << SCHED_TAINT, &spot);
	sched_failures_add(&f, 1u << SCHED_TAINT, &gpu);
	sched_failures_add(&f, (1u << SCHED_INSUFFICIENT_CPU) | (1u << SCHED_INSUFFICIENT_MEMORY), NULL);
	sched_failures_add(&f, 1u << SCHED_INSUFFICIENT_MEMORY, NULL);
	sched_failures_add(&f, 1u << SCHED_UNSCHEDULABLE, NULL);
	sched_failures_add(&f, 1u << SCHED_NOT_READY, NULL);
	sched_failures_add(&f, 1u << SCHED_AFFINITY, NULL);
	sched_failures_add(&f, 1u << SCHED_TOO_MANY_PODS, NULL);
	char msg[1024];
	sched_failure_message(&f, msg, sizeof(msg));
	/* By count, most first; equal counts alphabetically ("I" < "T" < "n"). */
	assert_string_equal(msg, "0/9 nodes are available: 2 Insufficient memory, 2 node(s) had untolerated taint "
				 "{gpu: a100}, 1 Insufficient cpu, 1 Too many pods, 1 node(s) didn't match Pod's node "
				 "affinity/selector, 1 node(s) had untolerated taint {spot: }, 1 node(s) were not ready, "
				 "1 node(s) were unschedulable.");
	/* A short buffer is cut, never overrun. */
	char small[16];
	sched_failure_message(&f, small, sizeof(small));
	assert_string_equal(small, "0/9 nodes are a");
	/* No nodes at all. */
	struct sched_failures none = {0};
	sched_failure_message(&none, msg, sizeof(msg));
	assert_string_equal(msg, "0/0 nodes are available: no nodes in the cluster.");
}

static void many_distinct_taints_are_counted_together(void **state)
{
	(void)state;
	struct sched_failures f = {0};
	char keys[SCHED_MAX_TAINT_REASONS + 2][8];
	for (int i = 0; i < SCHED_MAX_TAINT_REASONS + 2; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		struct ktaint t = {keys[i], "v", KEFFECT_NO_SCHEDULE};
		sched_failures_add(&f, 1u << SCHED_TAINT, &t);
	}
	assert_int_equal(f.ntaints, SCHED_MAX_TAINT_REASONS);
	assert_int_equal(f.other_taints, 2);
	char msg[2048];
	sched_failure_message(&f, msg, sizeof(msg));
	assert_non_null(strstr(msg, "0/10 nodes are available: 2 node(s) had untolerated taints, 1 node(s) had "
				    "untolerated taint {k0: v}, "));
}

static void failure_kinds_ignore_counts(void **state)
{
	(void)state;
	struct sched_failures none = {0}, a = {0}, b = {0}, c = {0};
	assert_int_equal(sched_failure_kinds(&none), 0);
	sched_failures_add(&a, 1u << SCHED_INSUFFICIENT_CPU, NULL);
	sched_failures_add(&a, 1u << SCHED_NOT_READY, NULL);
	for (int i = 0; i < 5; i++)
		sched_failures_add(&b, 1u << SCHED_INSUFFICIENT_CPU, NULL);
	sched_failures_add(&b, 1u << SCHED_NOT_READY, NULL);
	sched_failures_add(&c, 1u << SCHED_INSUFFICIENT_CPU, NULL);
	/* Other counts, same reasons: one kind; a reason gone: another. */
	assert_int_equal(sched_failure_kinds(&a), sched_failure_kinds(&b));
	assert_int_equal(sched_failure_kinds(&a), (1u << SCHED_INSUFFICIENT_CPU) | (1u << SCHED_NOT_READY));
	assert_int_not_equal(sched_failure_kinds(&a), sched_failure_kinds(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fits_until_allocatable_is_used),
		cmocka_unit_test(zero_requests_fit_a_full_node),
		cmocka_unit_test(readiness_and_cordon),
		cmocka_unit_test(toleration_table),
		cmocka_unit_test(every_blocking_taint_must_be_tolerated),
		cmocka_unit_test(node_selector_matches_labels),
		cmocka_unit_test(affinity_operators),
		cmocka_unit_test(selector_and_affinity_both_apply),
		cmocka_unit_test(score_worked_example),
		cmocka_unit_test(score_weights),
		cmocka_unit_test(weights_are_checked),
		cmocka_unit_test(packs_the_fullest_node_that_fits),
		cmocka_unit_test(ties_go_to_the_first_name),
		cmocka_unit_test(live_usage_changes_the_choice_only_when_fresh),
		cmocka_unit_test(failure_message_like_kube_scheduler),
		cmocka_unit_test(failure_message_orders_and_groups),
		cmocka_unit_test(many_distinct_taints_are_counted_together),
		cmocka_unit_test(failure_kinds_ignore_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
