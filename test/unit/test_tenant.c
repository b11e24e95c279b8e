/*
 * The tenant module's pure parts: name and quota validation, the five
 * desired objects as JSON text, drift detection against decoded cache
 * objects, and the CLI's argument parsing and table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonb.h"
#include "kinds.h"
#include "tenant.h"
#include "tenant_cli.h"

static const struct tenant demo = {
	.id = "tenant-a",
	.name = "tenant-a",
	.cpu = "500m",
	.memory = "512Mi",
	.pods = 20,
	.status = TENANT_ACTIVE,
	.created_at = "2026-11-25T14:00:00Z",
	.updated_at = "",
};

/* ---- names ------------------------------------------------------------------ */

static void accepts_dns_labels(void **state)
{
	(void)state;
	char longest[TENANT_NAME_MAX + 1];
	memset(longest, 'a', TENANT_NAME_MAX);
	longest[TENANT_NAME_MAX] = '\0';
	const char *ok[] = {"tenant-a", "a", "0", "9lives", "a-b-c", "kube", "systems", "nimbus2", longest};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct kerr e = {0};
		if (tenant_validate_name(ok[i], &e) != 0)
			fail_msg("\"%s\" refused: %s", ok[i], e.message);
	}
}

static void expect_invalid(const char *name, const char *fragment)
{
	struct kerr e = {0};
	assert_int_equal(tenant_validate_name(name, &e), KERR_INVAL);
	if (!strstr(e.message, fragment))
		fail_msg("message for \"%s\" lacks \"%s\": %s", name ? name : "(null)", fragment, e.message);
}

static void refuses_bad_names_with_a_reason(void **state)
{
	(void)state;
	char too_long[TENANT_NAME_MAX + 2];
	memset(too_long, 'a', TENANT_NAME_MAX + 1);
	too_long[TENANT_NAME_MAX + 1] = '\0';
	expect_invalid(NULL, "empty");
	expect_invalid("", "empty");
	expect_invalid(too_long, "57 characters long");
	expect_invalid("Tenant", "contains 'T'");
	expect_invalid("tenant_a", "contains '_'");
	expect_invalid("tenant.a", "contains '.'");
	expect_invalid("a b", "contains ' '");
	expect_invalid("-a", "starts or ends with '-'");
	expect_invalid("a-", "starts or ends with '-'");
	expect_invalid("-", "starts or ends with '-'");
	/* Every message says what is accepted. */
	expect_invalid("Tenant", "lowercase letters, digits and '-'");
}

static void refuses_reserved_names(void **state)
{
	(void)state;
	expect_invalid("system", "reserved");
	expect_invalid("admin", "reserved");
	expect_invalid("default", "reserved");
	expect_invalid("nimbus", "reserved");
	expect_invalid("kube-system", "belong to Kubernetes");
	expect_invalid("kube-x", "belong to Kubernetes");
}

/* ---- quotas ------------------------------------------------------------------- */

static void parses_quotas(void **state)
{
	(void)state;
	struct tenant_quota q;
	struct kerr e = {0};
	assert_int_equal(tenant_parse_quota("500m", "512Mi", 7, &q, &e), 0);
	assert_int_equal(q.cpu_milli, 500);
	assert_int_equal(q.memory, INT64_C(512) << 20);
	assert_int_equal(q.pods, 7);
	assert_int_equal(tenant_parse_quota("1.5", "1G", 0, &q, &e), 0);
	assert_int_equal(q.cpu_milli, 1500);
	assert_int_equal(q.memory, 1000000000);
	assert_int_equal(q.pods, 0);
}

static void fills_in_the_defaults(void **state)
{
	(void)state;
	struct tenant_quota q;
	assert_int_equal(tenant_parse_quota(NULL, NULL, -1, &q, NULL), 0);
	assert_int_equal(q.cpu_milli, 2000);
	assert_int_equal(q.memory, INT64_C(4) << 30);
	assert_int_equal(q.pods, 20);
}

static void expect_bad_quota(const char *cpu, const char *memory, int64_t pods, const char *fragment)
{
	struct tenant_quota q;
	struct kerr e = {0};
	assert_int_equal(tenant_parse_quota(cpu, memory, pods, &q, &e), KERR_INVAL);
	if (!strstr(e.message, fragment))
		fail_msg("message lacks \"%s\": %s", fragment, e.message);
}

static void refuses_bad_quotas_with_a_reason(void **state)
{
	(void)state;
	expect_bad_quota("lots", "1Gi", 1, "cpu quota \"lots\" is not a Kubernetes quantity");
	expect_bad_quota("500 m", "1Gi", 1, "cpu quota \"500 m\" is not a Kubernetes quantity");
	expect_bad_quota("", "1Gi", 1, "cpu quota \"\" is not a Kubernetes quantity");
	expect_bad_quota("0", "1Gi", 1, "must be more than zero");
	expect_bad_quota("-1", "1Gi", 1, "must be more than zero");
	expect_bad_quota("1", "4GB", 1, "memory quota \"4GB\" is not a Kubernetes quantity");
	expect_bad_quota("1", "0Mi", 1, "memory quota \"0Mi\" must be more than zero");
	expect_bad_quota("1", "1Gi", INT64_C(1) << 31, "too large");
	/* The form accepted is named. */
	expect_bad_quota("lots", "1Gi", 1, "\"500m\"");
}

/* ---- desired objects ------------------------------------------------------------ */

static void expect_json(void (*build)(const struct tenant *, struct jsonb *), const struct tenant *t,
			const char *want)
{
	struct jsonb *b = jsonb_new();
	assert_non_null(b);
	build(t, b);
	const char *doc;
	size_t len;
	struct kerr e = {0};
	assert_int_equal(jsonb_result(b, &doc, &len, &e), 0);
	if (strlen(want) != len || memcmp(doc, want, len) != 0)
		fail_msg("got  %.*s\nwant %s", (int)len, doc, want);
	jsonb_free(b);
}

#define LABELS "\"labels\":{\"app.kubernetes.io/managed-by\":\"nimbus\",\"nimbus.io/tenant\":\"tenant-a\"}"
#define META(name) "\"metadata\":{\"name\":\"" name "\",\"namespace\":\"nimbus-tenant-a\"," LABELS "}"

static void builds_the_namespace(void **state)
{
	(void)state;
	expect_json(tenant_build_namespace, &demo,
		    "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"nimbus-tenant-a\","
		    "\"labels\":{\"app.kubernetes.io/managed-by\":\"nimbus\",\"nimbus.io/tenant\":\"tenant-a\","
		    "\"pod-security.kubernetes.io/enforce\":\"baseline\"}}}");
}

static void builds_the_quota_with_the_values_as_given(void **state)
{
	(void)state;
	expect_json(tenant_build_quota, &demo,
		    "{\"apiVersion\":\"v1\",\"kind\":\"ResourceQuota\"," META("nimbus-quota") ","
		    "\"spec\":{\"hard\":{\"requests.cpu\":\"500m\",\"requests.memory\":\"512Mi\","
		    "\"limits.cpu\":\"500m\",\"limits.memory\":\"512Mi\",\"pods\":\"20\"}}}");
	struct tenant t = demo;
	t.cpu = "1.5";
	t.memory = "1G";
	t.pods = 0;
	expect_json(tenant_build_quota, &t,
		    "{\"apiVersion\":\"v1\",\"kind\":\"ResourceQuota\"," META("nimbus-quota") ","
		    "\"spec\":{\"hard\":{\"requests.cpu\":\"1.5\",\"requests.memory\":\"1G\","
		    "\"limits.cpu\":\"1.5\",\"limits.memory\":\"1G\",\"pods\":\"0\"}}}");
}

static const struct tenant_quota *limitrange_quota;

static void build_limitrange(const struct tenant *t, struct jsonb *b)
{
	tenant_build_limitrange(t, limitrange_quota, b);
}

static void builds_the_limitrange_with_defaults(void **state)
{
	(void)state;
	struct tenant_quota q = {2000, INT64_C(4) << 30, 20};
	limitrange_quota = &q;
	expect_json(build_limitrange, &demo,
		    "{\"apiVersion\":\"v1\",\"kind\":\"LimitRange\"," META("nimbus-defaults") ","
		    "\"spec\":{\"limits\":[{\"type\":\"Container\",\"default\":{\"cpu\":\"500m\",\"memory\":\"512Mi\"},"
		    "\"defaultRequest\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}]}}");
}

static void caps_the_limitrange_by_the_quota(void **state)
{
	(void)state;
	/* A quota below the defaults: limits first, then requests too. */
	struct tenant_quota q = {300, INT64_C(256) << 20, 20};
	limitrange_quota = &q;
	expect_json(build_limitrange, &demo,
		    "{\"apiVersion\":\"v1\",\"kind\":\"LimitRange\"," META("nimbus-defaults") ","
		    "\"spec\":{\"limits\":[{\"type\":\"Container\",\"default\":{\"cpu\":\"300m\",\"memory\":\"256Mi\"},"
		    "\"defaultRequest\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}]}}");
	struct tenant_quota tiny = {50, 100000000, 1};
	limitrange_quota = &tiny;
	expect_json(build_limitrange, &demo,
		    "{\"apiVersion\":\"v1\",\"kind\":\"LimitRange\"," META("nimbus-defaults") ","
		    "\"spec\":{\"limits\":[{\"type\":\"Container\",\"default\":{\"cpu\":\"50m\",\"memory\":\"100000000\"},"
		    "\"defaultRequest\":{\"cpu\":\"50m\",\"memory\":\"100000000\"}}]}}");
}

static void builds_the_networkpolicy(void **state)
{
	(void)state;
	expect_json(tenant_build_networkpolicy, &demo,
		    "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\"," META("nimbus-default-deny") ","
		    "\"spec\":{\"podSelector\":{},\"policyTypes\":[\"Ingress\"],"
		    "\"ingress\":[{\"from\":[{\"podSelector\":{}}]}]}}");
}

static void builds_the_rolebinding(void **state)
{
	(void)state;
	expect_json(tenant_build_rolebinding, &demo,
		    "{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"RoleBinding\"," META("nimbus-tenant") ","
		    "\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"edit\"},"
		    "\"subjects\":[{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"Group\","
		    "\"name\":\"nimbus:tenant:tenant-a\"}]}");
}

static void names_the_namespace(void **state)
{
	(void)state;
	char buf[TENANT_NS_MAX];
	assert_int_equal(tenant_namespace_name("tenant-a", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "nimbus-tenant-a");
	char small[8];
	assert_int_equal(tenant_namespace_name("tenant-a", small, sizeof(small)), KERR_TOO_LARGE);
}

/* ---- drift --------------------------------------------------------------------- */

static struct kobj *decode(const struct kind *k, const char *json)
{
	struct kobj *o = NULL;
	struct kerr e = {0};
	if (kind_decode_json(k, json, strlen(json), &o, &e) != 0)
		fail_msg("decode: %s", e.message);
	return o;
}

static bool ns_drifted(const char *labels, const char *extra, const char **what)
{
	char json[1024];
	snprintf(json, sizeof(json),
		 "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"nimbus-tenant-a\",\"labels\":{%s}%s},"
		 "\"status\":{\"phase\":\"Active\"}}",
		 labels, extra);
	struct kobj *o = decode(&kind_namespace, json);
	bool d = tenant_namespace_drifted(&demo, (const struct knamespace *)o, what);
	kobj_unref(o);
	return d;
}

#define NS_LABELS                                                                                   \
	"\"app.kubernetes.io/managed-by\":\"nimbus\",\"nimbus.io/tenant\":\"tenant-a\","            \
	"\"pod-security.kubernetes.io/enforce\":\"baseline\""

static void sees_namespace_drift(void **state)
{
	(void)state;
	const char *what = NULL;
	assert_false(ns_drifted(NS_LABELS, "", &what));
	/* Other labels are someone else's business. */
	assert_false(ns_drifted(NS_LABELS ",\"team\":\"x\"", "", &what));
	assert_true(ns_drifted("\"app.kubernetes.io/managed-by\":\"nimbus\","
			       "\"pod-security.kubernetes.io/enforce\":\"baseline\"", "", &what));
	assert_string_equal(what, "label nimbus.io/tenant");
	assert_true(ns_drifted("\"app.kubernetes.io/managed-by\":\"nimbus\",\"nimbus.io/tenant\":\"other\","
			       "\"pod-security.kubernetes.io/enforce\":\"baseline\"", "", &what));
	assert_string_equal(what, "label nimbus.io/tenant");
	assert_true(ns_drifted("\"app.kubernetes.io/managed-by\":\"nimbus\",\"nimbus.io/tenant\":\"tenant-a\","
			       "\"pod-security.kubernetes.io/enforce\":\"privileged\"", "", &what));
	assert_string_equal(what, "label pod-security.kubernetes.io/enforce");
	assert_true(ns_drifted("\"nimbus.io/tenant\":\"tenant-a\"", "", &what));
	assert_string_equal(what, "label app.kubernetes.io/managed-by");
	assert_true(ns_drifted(NS_LABELS, ",\"deletionTimestamp\":\"2026-11-25T14:00:00Z\"", &what));
	assert_string_equal(what, "terminating");
}

static bool quota_drifted(const char *hard, const char *labels, const char **what)
{
	char json[1024];
	snprintf(json, sizeof(json),
		 "{\"kind\":\"ResourceQuota\",\"metadata\":{\"name\":\"nimbus-quota\",\"namespace\":\"nimbus-tenant-a\","
		 "\"labels\":{%s}},\"spec\":{\"hard\":{%s}}}",
		 labels, hard);
	struct kobj *o = decode(&kind_resourcequota, json);
	struct tenant_quota q;
	assert_int_equal(tenant_parse_quota(demo.cpu, demo.memory, demo.pods, &q, NULL), 0);
	bool d = tenant_quota_drifted(&demo, &q, (const struct kresourcequota *)o, what);
	kobj_unref(o);
	return d;
}

#define TL "\"nimbus.io/tenant\":\"tenant-a\""

static void sees_quota_drift(void **state)
{
	(void)state;
	const char *what = NULL;
	assert_false(quota_drifted("\"requests.cpu\":\"500m\",\"requests.memory\":\"512Mi\",\"limits.cpu\":\"500m\","
				   "\"limits.memory\":\"512Mi\",\"pods\":\"20\"", TL, &what));
	/* Compared as numbers, as the apiserver may canonicalise them. */
	assert_false(quota_drifted("\"requests.cpu\":\"0.5\",\"requests.memory\":\"536870912\",\"limits.cpu\":\"500m\","
				   "\"limits.memory\":\"0.5Gi\",\"pods\":\"20\"", TL, &what));
	assert_true(quota_drifted("\"requests.cpu\":\"1\",\"requests.memory\":\"512Mi\",\"limits.cpu\":\"500m\","
				  "\"limits.memory\":\"512Mi\",\"pods\":\"20\"", TL, &what));
	assert_string_equal(what, "requests.cpu");
	assert_true(quota_drifted("\"requests.cpu\":\"500m\",\"requests.memory\":\"512Mi\","
				  "\"limits.memory\":\"512Mi\",\"pods\":\"20\"", TL, &what));
	assert_string_equal(what, "limits.cpu");
	assert_true(quota_drifted("\"requests.cpu\":\"500m\",\"requests.memory\":\"1Gi\",\"limits.cpu\":\"500m\","
				  "\"limits.memory\":\"512Mi\",\"pods\":\"20\"", TL, &what));
	assert_string_equal(what, "requests.memory");
	assert_true(quota_drifted("\"requests.cpu\":\"500m\",\"requests.memory\":\"512Mi\",\"limits.cpu\":\"500m\","
				  "\"limits.memory\":\"512Mi\",\"pods\":\"21\"", TL, &what));
	assert_string_equal(what, "pods");
	assert_true(quota_drifted("\"requests.cpu\":\"500m\",\"requests.memory\":\"512Mi\",\"limits.cpu\":\"500m\","
				  "\"limits.memory\":\"512Mi\",\"pods\":\"20\"", "", &what));
	assert_string_equal(what, "label nimbus.io/tenant");
}

/* ---- CLI ----------------------------------------------------------------------- */

static int parse(struct tenant_cli_args *a, struct kerr *e, int argc, ...)
{
	char *argv[16];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	return tenant_cli_parse(argc, argv, a, e);
}

static void parses_cli_commands(void **state)
{
	(void)state;
	struct tenant_cli_args a;
	struct kerr e = {0};
	assert_int_equal(parse(&a, &e, 2, "create", "tenant-a"), 0);
	assert_int_equal(a.cmd, TENANT_CLI_CREATE);
	assert_string_equal(a.name, "tenant-a");
	assert_null(a.cpu);
	assert_null(a.memory);
	assert_int_equal(a.pods, -1);
	assert_int_equal(parse(&a, &e, 8, "create", "--cpu", "500m", "tenant-a", "--memory=512Mi", "--pods", "5", "-v"),
			 KERR_INVAL);
	assert_string_equal(e.message, "unknown option \"-v\" for tenant create");
	assert_int_equal(parse(&a, &e, 7, "create", "--cpu", "500m", "tenant-a", "--memory=512Mi", "--pods", "5"), 0);
	assert_string_equal(a.name, "tenant-a");
	assert_string_equal(a.cpu, "500m");
	assert_string_equal(a.memory, "512Mi");
	assert_int_equal(a.pods, 5);
	assert_int_equal(parse(&a, &e, 1, "list"), 0);
	assert_int_equal(a.cmd, TENANT_CLI_LIST);
	assert_int_equal(parse(&a, &e, 2, "delete", "tenant-a"), 0);
	assert_int_equal(a.cmd, TENANT_CLI_DELETE);
	assert_string_equal(a.name, "tenant-a");
	assert_int_equal(parse(&a, &e, 3, "create", "x", "--help"), 0);
	assert_int_equal(a.cmd, TENANT_CLI_HELP);
	assert_int_equal(parse(&a, &e, 0), KERR_INVAL);
}

static void expect_cli_error(const char *fragment, int argc, char *a0, char *a1, char *a2, char *a3)
{
	char *argv[] = {a0, a1, a2, a3};
	struct tenant_cli_args a;
	struct kerr e = {0};
	assert_int_equal(tenant_cli_parse(argc, argv, &a, &e), KERR_INVAL);
	if (!strstr(e.message, fragment))
		fail_msg("message lacks \"%s\": %s", fragment, e.message);
}

static void refuses_bad_cli_arguments(void **state)
{
	(void)state;
	expect_cli_error("unknown command \"remove\"", 2, "remove", "x", NULL, NULL);
	expect_cli_error("tenant create needs a NAME", 1, "create", NULL, NULL, NULL);
	expect_cli_error("tenant delete needs a NAME", 1, "delete", NULL, NULL, NULL);
	expect_cli_error("unexpected argument \"b\" for tenant create", 3, "create", "a", "b", NULL);
	expect_cli_error("unexpected argument \"x\" for tenant list", 2, "list", "x", NULL, NULL);
	expect_cli_error("--cpu needs a value", 3, "create", "a", "--cpu", NULL);
	expect_cli_error("--cpu needs a value, got an empty one", 3, "create", "a", "--cpu=", NULL);
	expect_cli_error("--pods \"many\" is not a number", 4, "create", "a", "--pods", "many");
	expect_cli_error("--pods \"-1\" is not a number", 3, "create", "a", "--pods=-1", NULL);
	expect_cli_error("--pods \"99999999999\" is not a number", 3, "create", "a", "--pods=99999999999", NULL);
	/* Flags of create are not flags of delete. */
	expect_cli_error("unknown option \"--cpu\" for tenant delete", 4, "delete", "a", "--cpu", "1");
}

static void prints_a_table(void **state)
{
	(void)state;
	struct tenant b = {"b-long-name", "b-long-name", "2", "4Gi", 20, TENANT_DELETING, "2026-11-25T15:00:00Z", ""};
	struct tenant *ts[] = {(struct tenant *)&demo, &b};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	tenant_cli_print_table(f, ts, 2);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf, "NAME         CPU   MEMORY  PODS  STATUS    CREATED\n"
				 "tenant-a     500m  512Mi   20    active    2026-11-25T14:00:00Z\n"
				 "b-long-name  2     4Gi     20    deleting  2026-11-25T15:00:00Z\n");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_dns_labels),
		cmocka_unit_test(refuses_bad_names_with_a_reason),
		cmocka_unit_test(refuses_reserved_names),
		cmocka_unit_test(parses_quotas),
		cmocka_unit_test(fills_in_the_defaults),
		cmocka_unit_test(refuses_bad_quotas_with_a_reason),
		cmocka_unit_test(builds_the_namespace),
		cmocka_unit_test(builds_the_quota_with_the_values_as_given),
		cmocka_unit_test(builds_the_limitrange_with_defaults),
		cmocka_unit_test(caps_the_limitrange_by_the_quota),
		cmocka_unit_test(builds_the_networkpolicy),
		cmocka_unit_test(builds_the_rolebinding),
		cmocka_unit_test(names_the_namespace),
		cmocka_unit_test(sees_namespace_drift),
		cmocka_unit_test(sees_quota_drift),
		cmocka_unit_test(parses_cli_commands),
		cmocka_unit_test(refuses_bad_cli_arguments),
		cmocka_unit_test(prints_a_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
