#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "autoscale_math.h"

/* Pods of 200m CPU / 256 MiB each, ready with a sample unless told. */
#define REQ_CPU 200
#define REQ_MEM (256LL << 20)
#define S 1000 /* ms */

static struct autoscale_pod pod(int64_t cpu_milli)
{
	return (struct autoscale_pod){
		.ready = true,
		.has_metrics = true,
		.usage = {cpu_milli, REQ_MEM / 2},
		.requests = {REQ_CPU, REQ_MEM},
	};
}

static struct autoscale_pod pod_missing(void)
{
	struct autoscale_pod p = pod(0);
	p.has_metrics = false;
	return p;
}

static struct autoscale_pod pod_unready(int64_t cpu_milli)
{
	struct autoscale_pod p = pod(cpu_milli);
	p.ready = false;
	return p;
}

/* n identical pods using cpu each. */
static void fill(struct autoscale_pod *ps, size_t n, int64_t cpu)
{
	for (size_t i = 0; i < n; i++)
		ps[i] = pod(cpu);
}

static struct autoscale_input input(const struct autoscale_pod *ps, size_t n, int64_t current)
{
	return (struct autoscale_input){
		.current = current,
		.min_replicas = 1,
		.max_replicas = 10,
		.target = {70, 0},
		.pods = ps,
		.npods = n,
		.replica_cpu_milli = REQ_CPU,
		.replica_memory = REQ_MEM,
	};
}

static struct autoscale_behavior no_limits(void)
{
	struct autoscale_behavior b = autoscale_behavior_default();
	b.down_window_ms = 0;
	b.up_percent = 1000;
	b.up_pods = 1000;
	return b;
}

/* One decision with a fresh history whose seed does not hold anything
 * (no scale-down window). */
static struct autoscale_decision decide_once(const struct autoscale_input *in)
{
	struct autoscale_behavior b = no_limits();
	struct autoscale_history h = AUTOSCALE_HISTORY_INIT;
	struct autoscale_decision d;
	struct kerr e = {0};
	assert_int_equal(autoscale_decide(in, &b, &h, 1000 * S, &d, &e), 0);
	autoscale_history_free(&h);
	return d;
}

/* ---- one metric ---------------------------------------------------------------- */

static void utilization_and_ceil(void **state)
{
	(void)state;
	static const struct {
		int64_t current, npods, usage, want, util;
	} cases[] = {
		{1, 1, 190, 2, 95},  /* 95 % / 70 % = 1.357 -> ceil(1.357) = 2 */
		{1, 1, 140, 1, 70},  /* exactly on target: hold */
		{3, 3, 200, 5, 100}, /* 100/70 × 3 = 4.29 -> 5 */
		{4, 4, 20, 1, 10},   /* 10/70 × 4 = 0.57 -> 1 */
		{5, 5, 70, 3, 35},   /* 35/70 × 5 = 2.5 -> 3 */
		{2, 2, 280, 4, 140}, /* exactly double: 4, not 5 (no float rounding) */
		{10, 10, 154, 10, 77}, /* +10 %: on the tolerance edge: hold */
		{10, 10, 156, 12, 78}, /* 78/70 × 10 = 11.14 -> 12 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct autoscale_pod ps[16];
		fill(ps, (size_t)cases[i].npods, cases[i].usage);
		struct autoscale_metric m;
		autoscale_metric_replicas(ps, (size_t)cases[i].npods, AUTOSCALE_CPU, 70, 0.1, cases[i].current, &m);
		assert_true(m.valid);
		int64_t want = cases[i].want, util = cases[i].util;
		if (m.replicas != want || m.utilization != util)
			fail_msg("case %zu: replicas %lld (want %lld), utilization %lld (want %lld)", i,
				 (long long)m.replicas, (long long)want, (long long)m.utilization, (long long)util);
	}
	/* 77/70 × 10 is 11 exactly; float64 makes it 11.000000000000002 and 12. */
	struct autoscale_pod ps[10];
	fill(ps, 10, 154);
	struct autoscale_metric m;
	autoscale_metric_replicas(ps, 10, AUTOSCALE_CPU, 70, 0.05, 10, &m);
	assert_int_equal(m.replicas, 11);
}

static void tolerance_band(void **state)
{
	(void)state;
	/* Target 50 %: within ±10 % of the ratio (45..55 %) nothing moves. */
	static const struct {
		int64_t usage;  /* per pod, of 200m */
		int64_t want;   /* of 4 current */
	} cases[] = {
		{90, 4},  /* 45 %: ratio 0.90, on the edge: hold */
		{88, 4},  /* 44 %: ratio 0.88 -> ceil(3.52) = 4 anyway */
		{80, 4},  /* 40 %: 0.8 × 4 = 3.2 -> 4 */
		{70, 3},  /* 35 %: 0.7 × 4 = 2.8 -> 3 */
		{110, 4}, /* 55 %: ratio 1.10: hold */
		{112, 5}, /* 56 %: ratio 1.12 -> ceil(4.48) = 5 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct autoscale_pod ps[4];
		fill(ps, 4, cases[i].usage);
		struct autoscale_metric m;
		autoscale_metric_replicas(ps, 4, AUTOSCALE_CPU, 50, 0.1, 4, &m);
		if (m.replicas != cases[i].want)
			fail_msg("case %zu (usage %lld): %lld replicas, want %lld", i, (long long)cases[i].usage,
				 (long long)m.replicas, (long long)cases[i].want);
	}
}

static void missing_metrics_damp_both_ways(void **state)
{
	(void)state;
	/* Scale-up: 2 hot pods, 1 without a sample (counted as idle).
	 * 190/200 = 95 % → ratio 1.357; with the idle pod: 380/600 = 63 % →
	 * ratio 0.9: within tolerance and the direction flips: hold at 3. */
	struct autoscale_pod up[3] = {pod(190), pod(190), pod_missing()};
	struct autoscale_metric m;
	autoscale_metric_replicas(up, 3, AUTOSCALE_CPU, 70, 0.1, 3, &m);
	assert_int_equal(m.replicas, 3);
	assert_int_equal(m.utilization, 95);
	assert_true(m.held);
	assert_int_equal(m.missing, 1);
	/* The decision says why it holds. */
	struct autoscale_input in = input(up, 3, 3);
	struct autoscale_decision d = decide_once(&in);
	assert_int_equal(d.desired, 3);
	assert_string_equal(d.reason, "cpu utilization 95% above target 70% on ready pods; holding 3 replicas until new "
				      "pods report (1 without a sample, 0 not ready)");
	/* Target 50 %, 2 pods at 100 %: alone they say ceil(2 × 2) = 4; with
	 * the idle one 400/600 = 66 % → ratio 1.32 × 3 pods = 3.96 → 4. */
	struct autoscale_pod up2[3] = {pod(200), pod(200), pod_missing()};
	autoscale_metric_replicas(up2, 3, AUTOSCALE_CPU, 50, 0.1, 3, &m);
	assert_int_equal(m.replicas, 4);
	/* Three pods without a sample outweigh one hot pod. */
	struct autoscale_pod up3[4] = {pod(200), pod_missing(), pod_missing(), pod_missing()};
	autoscale_metric_replicas(up3, 4, AUTOSCALE_CPU, 50, 0.1, 4, &m);
	/* 100 %/50 % alone says ceil(2 × 1) = 2 < 4 current; with missing pods
	 * idle: 200/800 = 25 % → ratio 0.5: direction flips: hold. */
	assert_int_equal(m.replicas, 4);

	/* Scale-down: 3 idle pods and 1 without a sample (counted at 100 %):
	 * 10 % → ratio 0.14; with it (20+20+20+200)/800 = 32 % → 0.46 × 4 =
	 * 1.83 → 2, not the 1 the reporting pods alone suggest. */
	struct autoscale_pod down[4] = {pod(20), pod(20), pod(20), pod_missing()};
	autoscale_metric_replicas(down, 4, AUTOSCALE_CPU, 70, 0.1, 4, &m);
	assert_int_equal(m.utilization, 10);
	assert_int_equal(m.replicas, 2);
	assert_false(m.held);
}

static void unready_pods_count_idle_on_scale_up_only(void **state)
{
	(void)state;
	/* 2 ready at 100 %, 2 unready (at any usage): ratio 1.43 → with the
	 * unready at 0: 400/800 = 50 % → 0.71: flips direction: hold at 4. */
	struct autoscale_pod ps[4] = {pod(200), pod(200), pod_unready(200), pod_unready(200)};
	struct autoscale_metric m;
	autoscale_metric_replicas(ps, 4, AUTOSCALE_CPU, 70, 0.1, 4, &m);
	assert_int_equal(m.utilization, 100);
	assert_int_equal(m.replicas, 4);
	/* Scale-down ignores unready pods: 2 ready at 10 % → ceil(0.14 × 2) = 1. */
	struct autoscale_pod cold[4] = {pod(20), pod(20), pod_unready(200), pod_unready(200)};
	autoscale_metric_replicas(cold, 4, AUTOSCALE_CPU, 70, 0.1, 4, &m);
	assert_int_equal(m.replicas, 1);
	/* Memory ignores readiness: unready pods with samples count as ready. */
	struct autoscale_pod mem[2] = {pod_unready(0), pod_unready(0)};
	mem[0].usage[AUTOSCALE_MEMORY] = mem[1].usage[AUTOSCALE_MEMORY] = REQ_MEM;
	autoscale_metric_replicas(mem, 2, AUTOSCALE_MEMORY, 50, 0.1, 2, &m);
	assert_true(m.valid);
	assert_int_equal(m.utilization, 100);
	assert_int_equal(m.replicas, 4);
	/* Pending pods are unready for every metric; ignored pods count for nothing. */
	struct autoscale_pod mix[3] = {pod(190), pod(0), pod(0)};
	mix[1].pending = true;
	mix[1].has_metrics = false;
	mix[2].ignored = true;
	autoscale_metric_replicas(mix, 3, AUTOSCALE_CPU, 70, 0.1, 1, &m);
	/* 95 % on 1 pod; the pending one at 0: 190/400 = 47 % → flips: hold. */
	assert_int_equal(m.replicas, 1);
}

static void invalid_metrics(void **state)
{
	(void)state;
	struct autoscale_metric m;
	autoscale_metric_replicas(NULL, 0, AUTOSCALE_CPU, 70, 0.1, 2, &m);
	assert_false(m.valid);
	assert_int_equal(m.utilization, -1);
	struct autoscale_pod ps[2] = {pod_missing(), pod_unready(100)};
	autoscale_metric_replicas(ps, 2, AUTOSCALE_CPU, 70, 0.1, 2, &m);
	assert_false(m.valid);
	assert_non_null(strstr(m.message, "no ready pod with a cpu sample yet (1 unready or pending, 1 without a sample)"));
	struct autoscale_pod noreq = pod(100);
	noreq.requests[AUTOSCALE_CPU] = 0;
	autoscale_metric_replicas(&noreq, 1, AUTOSCALE_CPU, 70, 0.1, 1, &m);
	assert_false(m.valid);
	assert_non_null(strstr(m.message, "no cpu request"));
}

/* ---- decisions ------------------------------------------------------------------ */

static void reasons_and_directions(void **state)
{
	(void)state;
	struct autoscale_pod ps[2];
	fill(ps, 2, 190);
	struct autoscale_input in = input(ps, 2, 2);
	struct autoscale_decision d = decide_once(&in);
	assert_int_equal(d.desired, 3);
	assert_int_equal(d.recommendation, 3);
	assert_int_equal(d.direction, AUTOSCALE_UP);
	assert_string_equal(autoscale_direction_name(d.direction), "up");
	assert_string_equal(d.reason, "cpu utilization 95% above target 70%");
	assert_int_equal(d.utilization[AUTOSCALE_CPU], 95);
	assert_int_equal(d.utilization[AUTOSCALE_MEMORY], -1);

	fill(ps, 2, 144);
	d = decide_once(&in);
	assert_int_equal(d.desired, 2);
	assert_int_equal(d.direction, AUTOSCALE_NONE);
	assert_string_equal(d.reason, "within tolerance: cpu utilization 72% (target 70%)");

	fill(ps, 2, 20);
	d = decide_once(&in);
	assert_int_equal(d.desired, 1);
	assert_int_equal(d.direction, AUTOSCALE_DOWN);
	assert_string_equal(d.reason, "cpu utilization 10% below target 70%");
	/* At one replica the same usage cannot go lower: no change, and not
	 * "within tolerance" either. */
	in = input(ps, 1, 1);
	d = decide_once(&in);
	assert_int_equal(d.desired, 1);
	assert_int_equal(d.direction, AUTOSCALE_NONE);
	assert_string_equal(d.reason, "cpu utilization 10% below target 70%");
}

static void highest_metric_wins_and_partial_metrics_block_scale_down(void **state)
{
	(void)state;
	struct autoscale_pod ps[2];
	fill(ps, 2, 20); /* cpu 10 %: 1 replica */
	ps[0].usage[AUTOSCALE_MEMORY] = ps[1].usage[AUTOSCALE_MEMORY] = REQ_MEM; /* memory 100 % */
	struct autoscale_input in = input(ps, 2, 2);
	in.target[AUTOSCALE_MEMORY] = 50;
	struct autoscale_decision d = decide_once(&in);
	assert_int_equal(d.desired, 4);
	assert_string_equal(d.reason, "memory utilization 100% above target 50%");
	assert_int_equal(d.utilization[AUTOSCALE_CPU], 10);
	assert_int_equal(d.utilization[AUTOSCALE_MEMORY], 100);

	/* cpu cannot be read (no ready pod: both unready), memory says down:
	 * no scale-down on partial information. */
	ps[0] = pod_unready(0);
	ps[1] = pod_unready(0);
	in.target[AUTOSCALE_MEMORY] = 100; /* memory at 50 %: 1 replica */
	d = decide_once(&in);
	assert_int_equal(d.desired, 2);
	assert_false(d.metrics_ok);
	assert_non_null(strstr(d.reason, "not scaling down on partial metrics: cpu: no ready pod"));
	/* ... but a scale-up on the readable one goes ahead. */
	ps[0].usage[AUTOSCALE_MEMORY] = ps[1].usage[AUTOSCALE_MEMORY] = REQ_MEM * 2;
	d = decide_once(&in);
	assert_int_equal(d.desired, 4);
	/* Nothing readable at all. */
	in.target[AUTOSCALE_MEMORY] = 0;
	d = decide_once(&in);
	assert_int_equal(d.desired, 2);
	assert_non_null(strstr(d.reason, "no usable metrics: cpu: "));
}

static void clamping_and_special_cases(void **state)
{
	(void)state;
	static const struct {
		int64_t current, min, max, usage, want;
		const char *reason;
	} cases[] = {
		{4, 1, 5, 200, 5, "limited to maxReplicas 5; cpu utilization 100% above target 70%"},
		{3, 2, 5, 10, 2, "limited to minReplicas 2; cpu utilization 5% below target 70%"},
		{7, 1, 5, 10, 5, "current replicas 7 above maxReplicas 5"},
		{1, 3, 5, 200, 3, "current replicas 1 below minReplicas 3"},
		{0, 1, 5, 200, 0, "autoscaling is off while spec.replicas is 0; scale to 1 or more to turn it on"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct autoscale_pod ps[8];
		size_t n = cases[i].current ? (size_t)cases[i].current : 1;
		fill(ps, n, cases[i].usage);
		struct autoscale_input in = input(ps, n, cases[i].current);
		in.min_replicas = cases[i].min;
		in.max_replicas = cases[i].max;
		struct autoscale_decision d = decide_once(&in);
		if (d.desired != cases[i].want || strcmp(d.reason, cases[i].reason) != 0)
			fail_msg("case %zu: %lld \"%s\", want %lld \"%s\"", i, (long long)d.desired, d.reason,
				 (long long)cases[i].want, cases[i].reason);
	}
}

static void scale_up_rate_limit(void **state)
{
	(void)state;
	/* Default policies: max(+100 %, +4 pods) per 15 s. */
	struct autoscale_behavior b = autoscale_behavior_default();
	b.down_window_ms = 0;
	struct autoscale_history h = AUTOSCALE_HISTORY_INIT;
	struct kerr e = {0};
	struct autoscale_pod ps[40];
	struct autoscale_decision d;

	/* 1 pod at 10× target wants 10: +4 pods (5) beats +100 % (2). */
	fill(ps, 1, 1400);
	struct autoscale_input in = input(ps, 1, 1);
	in.max_replicas = 40;
	int64_t t = 100 * S;
	assert_int_equal(autoscale_decide(&in, &b, &h, t, &d, &e), 0);
	assert_int_equal(d.recommendation, 10);
	assert_int_equal(d.desired, 5);
	assert_string_equal(d.reason, "scale-up rate limit allows 5 replicas now; cpu utilization 700% above target 70%");
	assert_int_equal(autoscale_history_scaled(&h, t, 1, 5, &e), 0);

	/* 5 s later, still inside the period that started at 1: the limit
	 * stays 5, so no change. */
	fill(ps, 5, 1400);
	in = input(ps, 5, 5);
	in.max_replicas = 40;
	assert_int_equal(autoscale_decide(&in, &b, &h, t + 5 * S, &d, &e), 0);
	assert_int_equal(d.desired, 5);
	assert_int_equal(d.direction, AUTOSCALE_NONE);

	/* 15 s after the rescale the period starts at 5: +100 % = 10 beats +4. */
	assert_int_equal(autoscale_decide(&in, &b, &h, t + 15 * S + 1, &d, &e), 0);
	assert_int_equal(d.desired, 10);
	assert_int_equal(autoscale_history_scaled(&h, t + 15 * S + 1, 5, 10, &e), 0);
	autoscale_history_free(&h);
}

static void scale_down_rate_limit(void **state)
{
	(void)state;
	struct autoscale_behavior b = autoscale_behavior_default();
	b.down_window_ms = 0;
	b.down_percent = 50; /* the default 100 % never limits; halve per 15 s */
	struct autoscale_history h = AUTOSCALE_HISTORY_INIT;
	struct kerr e = {0};
	struct autoscale_pod ps[8];
	struct autoscale_decision d;
	fill(ps, 8, 10);
	struct autoscale_input in = input(ps, 8, 8);
	int64_t t = 100 * S;
	assert_int_equal(autoscale_decide(&in, &b, &h, t, &d, &e), 0);
	assert_int_equal(d.recommendation, 1);
	assert_int_equal(d.desired, 4);
	assert_string_equal(d.reason, "scale-down rate limit allows 4 replicas now; cpu utilization 5% below target 70%");
	assert_int_equal(autoscale_history_scaled(&h, t, 8, 4, &e), 0);
	in = input(ps, 4, 4);
	assert_int_equal(autoscale_decide(&in, &b, &h, t + 10 * S, &d, &e), 0);
	assert_int_equal(d.desired, 4);
	assert_int_equal(autoscale_decide(&in, &b, &h, t + 16 * S, &d, &e), 0);
	assert_int_equal(d.desired, 2);

	/* The default (100 % per 15 s) lets it go straight to the recommendation. */
	struct autoscale_history h2 = AUTOSCALE_HISTORY_INIT;
	struct autoscale_behavior def = autoscale_behavior_default();
	def.down_window_ms = 0;
	in = input(ps, 8, 8);
	assert_int_equal(autoscale_decide(&in, &def, &h2, t, &d, &e), 0);
	assert_int_equal(d.desired, 1);
	autoscale_history_free(&h);
	autoscale_history_free(&h2);
}

/* Usage per pod that makes the metric recommend want replicas out of cur
 * (target 70 %, 200m requests): want/cur × 70 % of 200m. */
static int64_t usage_for(int64_t want, int64_t cur)
{
	return want * 140 / cur;
}

static void stabilization_window_sequence(void **state)
{
	(void)state;
	/* 60 s window, 10 s samples; replicas follow the decisions. */
	struct autoscale_behavior b = autoscale_behavior_default();
	b.down_window_ms = 60 * S;
	struct autoscale_history h = AUTOSCALE_HISTORY_INIT;
	struct kerr e = {0};
	static const struct {
		int64_t at_s, rec, want;
	} steps[] = {
		{0, 3, 3},   /* first sight: seeded with 3, rec 3 */
		{10, 6, 6},  /* up at once (no scale-up window) */
		{20, 2, 6},  /* down held by the 6 at 10 s */
		{30, 3, 6},
		{60, 2, 6},
		{69, 2, 6},  /* the 6 at 10 s is 59 s old: still in the window */
		{71, 2, 3},  /* 61 s old: out; the highest left is the 3 at 30 s */
		{91, 2, 2},  /* the 3 at 30 s left too */
		{100, 5, 5}, /* up at once again */
	};
	int64_t cur = 3;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct autoscale_pod ps[16];
		fill(ps, (size_t)cur, usage_for(steps[i].rec, cur));
		struct autoscale_input in = input(ps, (size_t)cur, cur);
		struct autoscale_decision d;
		int64_t now = 1000 * S + steps[i].at_s * S;
		assert_int_equal(autoscale_decide(&in, &b, &h, now, &d, &e), 0);
		if (d.recommendation != steps[i].rec || d.desired != steps[i].want)
			fail_msg("step %zu (t=%llds): recommendation %lld, desired %lld; want %lld, %lld (%s)", i,
				 (long long)steps[i].at_s, (long long)d.recommendation, (long long)d.desired,
				 (long long)steps[i].rec, (long long)steps[i].want, d.reason);
		if (i == 2)
			assert_string_equal(d.reason,
					    "stabilization window holds 6 replicas; cpu utilization 23% below target 70%");
		if (d.desired != cur)
			assert_int_equal(autoscale_history_scaled(&h, now, cur, d.desired, &e), 0);
		cur = d.desired;
	}
	/* The history keeps only what the windows and periods can still use. */
	assert_true(h.nrecs <= 7);
	autoscale_history_free(&h);
}

static void first_sight_holds_current_replicas(void **state)
{
	(void)state;
	/* A restarted operator sees 5 replicas idle: the default 300 s window
	 * starts at 5, so nothing drops until it has passed. */
	struct autoscale_history h = AUTOSCALE_HISTORY_INIT;
	struct kerr e = {0};
	struct autoscale_pod ps[5];
	fill(ps, 5, 10);
	struct autoscale_input in = input(ps, 5, 5);
	struct autoscale_decision d;
	assert_int_equal(autoscale_decide(&in, NULL, &h, 0, &d, &e), 0);
	assert_int_equal(d.desired, 5);
	assert_int_equal(d.recommendation, 1);
	assert_string_equal(d.reason, "stabilization window holds 5 replicas; cpu utilization 5% below target 70%");
	assert_int_equal(autoscale_decide(&in, NULL, &h, 299 * S, &d, &e), 0);
	assert_int_equal(d.desired, 5);
	assert_int_equal(autoscale_decide(&in, NULL, &h, 300 * S + 1, &d, &e), 0);
	assert_int_equal(d.desired, 1);
	autoscale_history_free(&h);
}

static void scale_up_window(void **state)
{
	(void)state;
	struct autoscale_behavior b = no_limits();
	b.up_window_ms = 30 * S;
	struct autoscale_history h = AUTOSCALE_HISTORY_INIT;
	struct kerr e = {0};
	struct autoscale_pod ps[2];
	struct autoscale_decision d;
	fill(ps, 2, 140); /* at target: rec 2 */
	struct autoscale_input in = input(ps, 2, 2);
	assert_int_equal(autoscale_decide(&in, &b, &h, 10 * S, &d, &e), 0);
	fill(ps, 2, 280); /* double: rec 4, held by the 2 from 10 s ago */
	assert_int_equal(autoscale_decide(&in, &b, &h, 20 * S, &d, &e), 0);
	assert_int_equal(d.desired, 2);
	assert_string_equal(d.reason, "scale-up stabilization window holds 2 replicas; cpu utilization 140% above target 70%");
	assert_int_equal(autoscale_decide(&in, &b, &h, 41 * S, &d, &e), 0);
	assert_int_equal(d.desired, 4);
	autoscale_history_free(&h);
}

static struct autoscale_quota quota(const char *name, int64_t hard_cpu, int64_t used_cpu, int64_t hard_pods,
				    int64_t used_pods)
{
	struct kquota_values none = {-1, -1, -1, -1, -1};
	struct autoscale_quota q = {name, none, none};
	q.hard.requests_cpu_milli = hard_cpu;
	q.used.requests_cpu_milli = used_cpu;
	q.hard.pods = hard_pods;
	q.used.pods = used_pods;
	return q;
}

static void quota_caps_scale_up(void **state)
{
	(void)state;
	struct autoscale_pod ps[2];
	fill(ps, 2, 200); /* 100 % → wants 3 */
	struct autoscale_input in = input(ps, 2, 2);
	in.own = (struct kquota_values){.requests_cpu_milli = 400, .pods = 2};
	static const struct {
		int64_t hard_cpu, used_cpu, hard_pods, used_pods, want;
		bool limited;
		const char *msg;
	} cases[] = {
		/* 1 CPU, only ours used: 5 fit, no cap. */
		{1000, 400, -1, -1, 3, false, ""},
		/* 500m: 2 fit (2 × 200m = 400m): held at 2. */
		{500, 400, -1, -1, 2, true,
		 "quota nimbus-quota allows 2 replicas (requests.cpu hard 500m, 0 used by other pods, 200m per replica)"},
		/* 1 CPU with 500m used by other pods: (1000 - 500) / 200 = 2. */
		{1000, 900, -1, -1, 2, true,
		 "quota nimbus-quota allows 2 replicas (requests.cpu hard 1, 500m used by other pods, 200m per replica)"},
		/* Pods: 3 hard, 1 other pod: 2 fit. */
		{-1, -1, 3, 3, 2, true,
		 "quota nimbus-quota allows 2 replicas (pods hard 3, 1 used by other pods, 1 per replica)"},
		/* used unknown (status not yet counted): counts as nothing used. */
		{600, -1, -1, -1, 3, false, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct autoscale_quota q = quota("nimbus-quota", cases[i].hard_cpu, cases[i].used_cpu, cases[i].hard_pods,
						 cases[i].used_pods);
		in.quotas = &q;
		in.nquotas = 1;
		struct autoscale_decision d = decide_once(&in);
		if (d.desired != cases[i].want || d.quota_limited != cases[i].limited ||
		    strcmp(d.quota_message, cases[i].msg) != 0)
			fail_msg("case %zu: desired %lld limited %d \"%s\"", i, (long long)d.desired, d.quota_limited,
				 d.quota_message);
		if (d.quota_limited)
			assert_true(strncmp(d.reason, "capped by tenant quota: quota nimbus-quota allows 2 replicas", 60) == 0);
	}
	/* Memory, and the tightest of two quotas wins. */
	struct autoscale_quota qs[2] = {quota("a", 10000, 400, -1, -1), quota("b", -1, -1, -1, -1)};
	qs[1].hard.requests_memory = 3 * REQ_MEM + 1;
	qs[1].used.requests_memory = 2 * REQ_MEM;
	in.own.requests_memory = 2 * REQ_MEM;
	fill(ps, 2, 400); /* 200 % → 6 */
	in.quotas = qs;
	in.nquotas = 2;
	struct autoscale_decision d = decide_once(&in);
	assert_int_equal(d.desired, 3);
	assert_true(d.quota_limited);
	assert_string_equal(d.quota_message, "quota b allows 3 replicas (requests.memory hard 805306369, 0 used by other "
					     "pods, 256Mi per replica)");
	assert_string_equal(d.reason, "capped by tenant quota: quota b allows 3 replicas (requests.memory hard 805306369, "
				      "0 used by other pods, 256Mi per replica); cpu utilization 200% above target 70%");
	/* The cap never forces a scale-down: over quota already, hold. */
	qs[1].hard.requests_memory = REQ_MEM;
	d = decide_once(&in);
	assert_int_equal(d.desired, 2);
	assert_true(d.quota_limited);
	/* ... and does not touch a scale-down. */
	fill(ps, 2, 10);
	d = decide_once(&in);
	assert_int_equal(d.desired, 1);
	assert_false(d.quota_limited);
	/* Below minReplicas, the quota wins over the minimum. */
	struct autoscale_quota small = quota("q", 400, 200, -1, -1);
	in = input(ps, 1, 1);
	in.own.requests_cpu_milli = 200;
	in.min_replicas = 3;
	in.quotas = &small;
	in.nquotas = 1;
	d = decide_once(&in);
	assert_int_equal(d.desired, 2);
	assert_true(d.quota_limited);
}

static void history_stays_bounded(void **state)
{
	(void)state;
	struct autoscale_behavior b = autoscale_behavior_default(); /* 300 s window */
	struct autoscale_history h = AUTOSCALE_HISTORY_INIT;
	struct kerr e = {0};
	struct autoscale_pod ps[3];
	fill(ps, 3, 140);
	struct autoscale_input in = input(ps, 3, 3);
	struct autoscale_decision d;
	for (int64_t t = 0; t < 3600; t += 5)
		assert_int_equal(autoscale_decide(&in, &b, &h, t * S, &d, &e), 0);
	/* 300 s / 5 s = 60 recommendations in the window. */
	assert_true(h.nrecs <= 61);
	assert_true(h.caprecs <= 128);
	autoscale_history_free(&h);
	autoscale_history_free(&h);
	autoscale_history_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(utilization_and_ceil),
		cmocka_unit_test(tolerance_band),
		cmocka_unit_test(missing_metrics_damp_both_ways),
		cmocka_unit_test(unready_pods_count_idle_on_scale_up_only),
		cmocka_unit_test(invalid_metrics),
		cmocka_unit_test(reasons_and_directions),
		cmocka_unit_test(highest_metric_wins_and_partial_metrics_block_scale_down),
		cmocka_unit_test(clamping_and_special_cases),
		cmocka_unit_test(scale_up_rate_limit),
		cmocka_unit_test(scale_down_rate_limit),
		cmocka_unit_test(stabilization_window_sequence),
		cmocka_unit_test(first_sight_holds_current_replicas),
		cmocka_unit_test(scale_up_window),
		cmocka_unit_test(quota_caps_scale_up),
		cmocka_unit_test(history_stays_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
