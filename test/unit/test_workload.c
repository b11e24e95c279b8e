#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "jsonb.h"
#include "kinds.h"
#include "workload.h"

static struct kobj *decode(const struct kind *k, const char *json)
{
	struct kobj *o = NULL;
	struct kerr e = {0};
	int rc = kind_decode_json(k, json, strlen(json), &o, &e);
	if (rc != 0)
		fail_msg("decode: %s", e.message);
	return o;
}

static const struct kcomputerequest *cr_with(const char *ns, const char *spec, const char *status, struct kobj **o)
{
	char json[2048];
	snprintf(json, sizeof(json),
		 "{\"kind\":\"ComputeRequest\",\"metadata\":{\"name\":\"web\",\"namespace\":\"%s\",\"uid\":\"u-1\","
		 "\"generation\":2},\"spec\":%s,\"status\":%s}",
		 ns, spec, status ? status : "{}");
	*o = decode(&kind_computerequest, json);
	return (const struct kcomputerequest *)*o;
}

#define SPEC "{\"tenantId\":\"acme\",\"image\":\"nginx\",\"cpu\":\"200m\",\"memory\":\"256Mi\",\"replicas\":3}"

static const struct knamespace *tenant_ns(const char *label, struct kobj **o)
{
	char json[512];
	snprintf(json, sizeof(json),
		 "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"nimbus-acme\",\"labels\":{\"nimbus.io/tenant\":\"%s\"}},"
		 "\"status\":{\"phase\":\"Active\"}}",
		 label);
	*o = decode(&kind_namespace, json);
	return (const struct knamespace *)*o;
}

static void accepts_a_request_that_fits(void **state)
{
	(void)state;
	struct kobj *c, *n, *q;
	const struct kcomputerequest *cr = cr_with("nimbus-acme", SPEC, NULL, &c);
	const struct knamespace *ns = tenant_ns("acme", &n);
	q = decode(&kind_resourcequota, "{\"kind\":\"ResourceQuota\",\"metadata\":{\"name\":\"nimbus-quota\",\"namespace\":"
					"\"nimbus-acme\"},\"spec\":{\"hard\":{\"requests.cpu\":\"1\",\"pods\":\"5\"}}}");
	const struct kresourcequota *qs[] = {(const struct kresourcequota *)q};
	struct workload_problem p;
	workload_check(cr, ns, qs, 1, &p);
	assert_string_equal(p.reason, "");
	kobj_unref(c);
	kobj_unref(n);
	kobj_unref(q);
}

static void refuses_with_what_to_fix(void **state)
{
	(void)state;
	struct kobj *c, *n, *q;
	struct workload_problem p;
	const struct kcomputerequest *cr = cr_with("default", SPEC, NULL, &c);
	workload_check(cr, NULL, NULL, 0, &p);
	assert_string_equal(p.reason, "WrongNamespace");
	assert_non_null(strstr(p.message, "must live in namespace nimbus-acme, not default"));
	kobj_unref(c);

	cr = cr_with("nimbus-acme", SPEC, NULL, &c);
	workload_check(cr, NULL, NULL, 0, &p);
	assert_string_equal(p.reason, "TenantNotFound");
	const struct knamespace *ns = tenant_ns("someone-else", &n);
	workload_check(cr, ns, NULL, 0, &p);
	assert_string_equal(p.reason, "TenantNotFound");
	kobj_unref(n);

	ns = tenant_ns("acme", &n);
	q = decode(&kind_resourcequota, "{\"kind\":\"ResourceQuota\",\"metadata\":{\"name\":\"nimbus-quota\",\"namespace\":"
					"\"nimbus-acme\"},\"spec\":{\"hard\":{\"requests.memory\":\"512Mi\"}}}");
	const struct kresourcequota *qs[] = {(const struct kresourcequota *)q};
	workload_check(cr, ns, qs, 1, &p);
	assert_string_equal(p.reason, "QuotaExceeded");
	assert_non_null(strstr(p.message, "need 768Mi"));
	assert_non_null(strstr(p.message, "allows 512Mi"));
	kobj_unref(c);
	kobj_unref(n);
	kobj_unref(q);

	cr = cr_with("nimbus-acme", "{\"tenantId\":\"acme\",\"image\":\"nginx\",\"cpu\":\"lots\",\"memory\":\"1Gi\"}", NULL, &c);
	workload_check(cr, NULL, NULL, 0, &p);
	assert_string_equal(p.reason, "InvalidSpec");
	assert_non_null(strstr(p.message, "spec.cpu"));
	kobj_unref(c);
}

static void builds_the_deployment(void **state)
{
	(void)state;
	struct kobj *c;
	const struct kcomputerequest *cr = cr_with(
		"nimbus-acme",
		"{\"tenantId\":\"acme\",\"image\":\"nginx\",\"cpu\":\"200m\",\"memory\":\"256Mi\",\"podAnnotations\":{\"a\":\"b\"}}",
		NULL, &c);
	struct jsonb *b = jsonb_new();
	workload_build_deployment(cr, b);
	const char *doc;
	size_t len;
	struct kerr e = {0};
	assert_int_equal(jsonb_result(b, &doc, &len, &e), 0);
	/* Decoding our own document back checks it is what the reconciler compares against. */
	struct kobj *d = NULL;
	assert_int_equal(kind_decode_json(&kind_deployment, doc, len, &d, &e), 0);
	const struct kdeployment *dep = (const struct kdeployment *)d;
	assert_string_equal(d->name, "nimbus-web");
	assert_string_equal(d->ns, "nimbus-acme");
	assert_int_equal(dep->replicas, 1);
	assert_string_equal(dep->scheduler_name, "nimbus-scheduler");
	assert_int_equal(dep->cpu_request.value, 200);
	assert_int_equal(dep->memory_limit.value, 256 * 1024 * 1024);
	assert_string_equal(kobj_controller(d)->uid, "u-1");
	const char *what = NULL;
	assert_false(workload_deployment_drifted(cr, dep, &what));
	kobj_unref(d);
	jsonb_free(b);
	kobj_unref(c);
}

static void detects_drift(void **state)
{
	(void)state;
	struct kobj *c;
	const struct kcomputerequest *cr = cr_with("nimbus-acme", SPEC, NULL, &c);
	struct kobj *d = decode(&kind_deployment,
		"{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"nimbus-web\",\"namespace\":\"nimbus-acme\","
		"\"ownerReferences\":[{\"apiVersion\":\"nimbus.io/v1\",\"kind\":\"ComputeRequest\",\"name\":\"web\",\"uid\":\"u-1\","
		"\"controller\":true}]},\"spec\":{\"replicas\":3,\"template\":{\"metadata\":{\"labels\":{\"nimbus.io/computerequest\":"
		"\"web\",\"nimbus.io/tenant\":\"acme\"}},\"spec\":{\"schedulerName\":\"nimbus-scheduler\",\"containers\":[{\"name\":"
		"\"workload\",\"image\":\"busybox\",\"resources\":{\"requests\":{\"cpu\":\"200m\",\"memory\":\"256Mi\"},\"limits\":"
		"{\"cpu\":\"200m\",\"memory\":\"256Mi\"}}}]}}}}");
	const char *what = NULL;
	assert_true(workload_deployment_drifted(cr, (const struct kdeployment *)d, &what));
	assert_string_equal(what, "image");
	kobj_unref(d);
	kobj_unref(c);
}

static void status_follows_the_deployment_and_keeps_transition_times(void **state)
{
	(void)state;
	struct kobj *c;
	const struct kcomputerequest *cr = cr_with(
		"nimbus-acme", SPEC,
		"{\"conditions\":[{\"type\":\"Degraded\",\"status\":\"False\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"}]}", &c);
	struct kobj *d = decode(&kind_deployment,
		"{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"nimbus-web\",\"namespace\":\"nimbus-acme\",\"generation\":4},"
		"\"spec\":{\"replicas\":3},\"status\":{\"observedGeneration\":4,\"replicas\":3,\"updatedReplicas\":3,"
		"\"readyReplicas\":3}}");
	struct workload_problem none = {0};
	struct workload_status st;
	workload_compute_status(cr, (const struct kdeployment *)d, &none, "2026-11-25T00:00:00Z", &st);
	assert_string_equal(st.phase, "Running");
	assert_int_equal(st.ready_replicas, 3);
	assert_int_equal(st.observed_generation, 2);
	assert_string_equal(st.conditions[0].type, "Ready");
	assert_int_equal(st.conditions[0].status, KCOND_TRUE);
	assert_string_equal(st.conditions[0].last_transition, "2026-11-25T00:00:00Z");
	assert_string_equal(st.conditions[2].type, "Degraded");
	assert_string_equal(st.conditions[2].last_transition, "2026-01-01T00:00:00Z");
	assert_false(workload_status_current(cr, &st));
	kobj_unref(d);
	kobj_unref(c);

	/* A status equal to what it would write is left alone. */
	cr = cr_with("nimbus-acme", SPEC,
		     "{\"observedGeneration\":2,\"replicas\":0,\"readyReplicas\":0,\"phase\":\"Pending\",\"conditions\":["
		     "{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"DeploymentPending\",\"message\":\"0 of 3 replicas ready\"},"
		     "{\"type\":\"Progressing\",\"status\":\"True\",\"reason\":\"DeploymentPending\",\"message\":\"creating the Deployment\"},"
		     "{\"type\":\"Degraded\",\"status\":\"False\",\"reason\":\"AsExpected\",\"message\":\"\"}]}",
		     &c);
	workload_compute_status(cr, NULL, &none, "2026-11-25T00:00:00Z", &st);
	assert_string_equal(st.phase, "Pending");
	assert_true(workload_status_current(cr, &st));
	kobj_unref(c);
}

static void waits_for_the_deployment_controller_only_just_after_creation(void **state)
{
	(void)state;
	/* 2026-11-25T12:00:00Z */
	const int64_t created = 1795608000;
	struct kobj *fresh = decode(&kind_deployment,
		"{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"nimbus-web\",\"namespace\":\"nimbus-acme\","
		"\"generation\":1,\"creationTimestamp\":\"2026-11-25T12:00:00Z\"},\"spec\":{\"replicas\":3}}");
	struct kobj *seen = decode(&kind_deployment,
		"{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"nimbus-web\",\"namespace\":\"nimbus-acme\","
		"\"generation\":1,\"creationTimestamp\":\"2026-11-25T12:00:00Z\"},\"spec\":{\"replicas\":3},"
		"\"status\":{\"observedGeneration\":1}}");
	const struct kdeployment *f = (const struct kdeployment *)fresh, *s = (const struct kdeployment *)seen;
	assert_true(workload_deployment_unobserved(f, created));
	assert_true(workload_deployment_unobserved(f, created + WORKLOAD_UNOBSERVED_WINDOW_S));
	/* Its controller is late or down: the status is written after all. */
	assert_false(workload_deployment_unobserved(f, created + WORKLOAD_UNOBSERVED_WINDOW_S + 1));
	/* Our clock far behind the apiserver's: no waiting on a guess. */
	assert_false(workload_deployment_unobserved(f, created - WORKLOAD_UNOBSERVED_WINDOW_S - 1));
	assert_false(workload_deployment_unobserved(s, created));
	kobj_unref(fresh);
	kobj_unref(seen);
}

static void a_problem_degrades(void **state)
{
	(void)state;
	struct kobj *c;
	const struct kcomputerequest *cr = cr_with("nimbus-acme", SPEC, NULL, &c);
	struct workload_problem p = {"QuotaExceeded", "too big"};
	struct workload_status st;
	workload_compute_status(cr, NULL, &p, "2026-11-25T00:00:00Z", &st);
	assert_string_equal(st.phase, "Degraded");
	assert_int_equal(st.conditions[2].status, KCOND_TRUE);
	assert_string_equal(st.conditions[2].reason, "QuotaExceeded");
	assert_string_equal(st.conditions[2].message, "too big");
	struct jsonb *b = jsonb_new();
	workload_build_status(&st, b);
	const char *doc;
	size_t len;
	assert_int_equal(jsonb_result(b, &doc, &len, NULL), 0);
	assert_non_null(strstr(doc, "\"selector\":\"nimbus.io/computerequest=web\""));
	assert_non_null(strstr(doc, "\"phase\":\"Degraded\""));
	jsonb_free(b);
	kobj_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_a_request_that_fits),
		cmocka_unit_test(refuses_with_what_to_fix),
		cmocka_unit_test(builds_the_deployment),
		cmocka_unit_test(detects_drift),
		cmocka_unit_test(status_follows_the_deployment_and_keeps_transition_times),
		cmocka_unit_test(waits_for_the_deployment_controller_only_just_after_creation),
		cmocka_unit_test(a_problem_degrades),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
