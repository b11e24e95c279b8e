/* api: route parsing, the operation table against the OpenAPI document
 * (both ways), problem+json, request bodies, paging, and the event ring's
 * resume rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "api.h"
#include "api_events.h"

static void test_routes(void **state)
{
	(void)state;
	struct api_match m;
	assert_int_equal(api_route_match("/auth/token", &m), 1);
	assert_int_equal(m.route, API_R_TOKEN);
	assert_int_equal(api_route_match("/api/v1/tenants", &m), 1);
	assert_int_equal(m.route, API_R_TENANTS);
	assert_int_equal(api_route_match("/tenants/tenant-a", &m), 1);
	assert_int_equal(m.route, API_R_TENANT);
	assert_string_equal(m.params[0], "tenant-a");
	assert_string_equal(m.pattern, "/tenants/{id}");
	assert_int_equal(api_route_match("/api/v1/tenants/a/workloads/web", &m), 1);
	assert_int_equal(m.route, API_R_TENANT_WORKLOAD);
	assert_int_equal(m.nparams, 2);
	assert_string_equal(m.params[0], "a");
	assert_string_equal(m.params[1], "web");
	assert_int_equal(api_route_match("/api/v1/tenants/a/keys", &m), 1);
	assert_int_equal(m.route, API_R_KEYS);
	assert_int_equal(api_route_match("/billing/invoice/tenant-a", &m), 1);
	assert_int_equal(m.route, API_R_INVOICE);
	assert_string_equal(m.params[0], "tenant-a");
	assert_int_equal(api_route_match("/api/v1/events", &m), 1);
	assert_int_equal(m.route, API_R_EVENTS);
	/* No match: empty segments, trailing slashes, extra or unknown segments. */
	const char *no[] = {"/", "/api/v1", "/api/v1/tenants/", "/tenants//workloads", "/api/v1/tenants/a/workloads/",
			    "/api/v1/tenants/a/workloads/b/c", "/api/v2/tenants", "/tenantsx", "/index.html",
			    "/api/v1/tenants/a/other", "/billing/invoice", "api/v1/tenants"};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		if (api_route_match(no[i], &m))
			fail_msg("%s matched %s", no[i], m.pattern);
	}
	/* A parameter too long for the buffer does not match. */
	char longp[600] = "/tenants/";
	memset(longp + 9, 'a', 400);
	assert_int_equal(api_route_match(longp, &m), 0);
}

/* Every operation is in the document, every document operation is served. */
static void test_openapi_matches_routes(void **state)
{
	(void)state;
	size_t len;
	const char *doc = api_openapi_json(&len);
	assert_int_equal(strlen(doc), len);
	char err[256];
	yajl_val root = yajl_tree_parse(doc, err, sizeof(err));
	if (!root)
		fail_msg("openapi.json does not parse: %s", err);
	const char *vp[] = {"openapi", NULL};
	yajl_val v = yajl_tree_get(root, vp, yajl_t_string);
	const char *version = v ? YAJL_GET_STRING(v) : NULL;
	assert_non_null(version);
	assert_true(strncmp(version, "3.", 2) == 0);
	const char *pp[] = {"paths", NULL};
	yajl_val paths = yajl_tree_get(root, pp, yajl_t_object);
	assert_non_null(paths);
	size_t nops = 0;
	for (const struct api_op_info *op; (op = api_op_at(nops)); nops++) {
		char method[16];
		size_t k = 0;
		for (; op->method[k] && k < sizeof(method) - 1; k++)
			method[k] = (char)(op->method[k] - 'A' + 'a');
		method[k] = '\0';
		const char *mp[] = {op->pattern, method, NULL};
		yajl_val o = yajl_tree_get(paths, mp, yajl_t_object);
		if (!o)
			fail_msg("%s %s is served but not in openapi.json", op->method, op->pattern);
		/* Public operations say so (security: []), the others need a bearer. */
		const char *sp[] = {"security", NULL};
		yajl_val sec = yajl_tree_get(o, sp, yajl_t_array);
		assert_non_null(sec);
		assert_int_equal(sec->u.array.len == 0, op->public);
		struct api_match m;
		assert_int_equal(api_route_match(op->pattern, &m), 1);
		assert_string_equal(m.pattern, op->pattern);
	}
	assert_true(nops > 20);
	for (size_t i = 0; i < paths->u.object.len; i++) {
		yajl_val ops = paths->u.object.values[i];
		for (size_t j = 0; j < ops->u.object.len; j++) {
			const char *method = ops->u.object.keys[j];
			size_t k = 0;
			const struct api_op_info *op;
			for (; (op = api_op_at(k)); k++) {
				if (strcmp(op->pattern, paths->u.object.keys[i]) == 0 && strcasecmp(op->method, method) == 0)
					break;
			}
			if (!op)
				fail_msg("openapi.json has %s %s, which is not served", method, paths->u.object.keys[i]);
		}
	}
	yajl_tree_free(root);
}

static void test_problem(void **state)
{
	(void)state;
	char *out;
	size_t len;
	assert_int_equal(api_problem_json(400, "field \"x\" must be a string", "x", &out, &len), 0);
	assert_string_equal(out, "{\"type\":\"about:blank\",\"title\":\"Bad Request\",\"status\":400,"
				 "\"detail\":\"field \\\"x\\\" must be a string\",\"field\":\"x\"}");
	assert_int_equal(strlen(out), len);
	free(out);
	assert_int_equal(api_problem_json(404, "tenant b does not exist", NULL, &out, &len), 0);
	assert_string_equal(out, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
				 "\"detail\":\"tenant b does not exist\"}");
	free(out);
	assert_int_equal(api_problem_json(429, "", "", &out, &len), 0);
	assert_non_null(strstr(out, "\"title\":\"Too Many Requests\""));
	assert_null(strstr(out, "field"));
	free(out);
	assert_string_equal(api_status_phrase(401), "Unauthorized");
	assert_string_equal(api_status_phrase(403), "Forbidden");
	assert_string_equal(api_status_phrase(599), "Error");
}

static const struct api_field fields[] = {
	{"name", API_FIELD_STRING, true},
	{"replicas", API_FIELD_INT, false},
	{"autoscaling", API_FIELD_OBJECT, false},
};

/* Parse body; expect failure naming field (or success with field NULL). */
static void body_case(const char *body, const char *want_field, const char *want_msg)
{
	struct api_body b;
	char field[64];
	struct kerr e = {0};
	int rc = api_body_parse(body, strlen(body), fields, 3, &b, field, sizeof(field), &e);
	if (!want_field) {
		if (rc != 0)
			fail_msg("%s: %s", body, e.message);
	} else {
		assert_int_equal(rc, KERR_PARSE);
		assert_string_equal(field, want_field);
		if (!strstr(e.message, want_msg))
			fail_msg("%s: message \"%s\" lacks \"%s\"", body, e.message, want_msg);
	}
	api_body_free(&b);
}

static void test_bodies(void **state)
{
	(void)state;
	body_case("{\"name\":\"web\"}", NULL, NULL);
	body_case("{\"name\":\"web\",\"replicas\":3,\"autoscaling\":{}}", NULL, NULL);
	body_case("{\"name\":\"web\",\"replicas\":null}", NULL, NULL);
	body_case("", "", "needs a JSON object");
	body_case("{\"name\":", "", "not valid JSON");
	body_case("[1,2]", "", "must be a JSON object");
	body_case("\"web\"", "", "must be a JSON object");
	body_case("{\"name\":3}", "name", "must be a string");
	body_case("{\"name\":\"w\",\"replicas\":\"3\"}", "replicas", "must be an integer");
	body_case("{\"name\":\"w\",\"replicas\":1.5}", "replicas", "must be an integer");
	body_case("{\"name\":\"w\",\"autoscaling\":[]}", "autoscaling", "must be an object");
	body_case("{\"name\":\"w\",\"color\":\"blue\"}", "color", "unknown field");
	body_case("{\"replicas\":1}", "name", "is required");
	body_case("{\"name\":\"a\",\"name\":\"b\"}", "name", "given twice");
	body_case("{\"name\":\"\xff\"}", "", "not valid JSON");
	char deep[200] = "{\"name\":\"w\",\"autoscaling\":";
	for (int i = 0; i < 20; i++)
		strcat(deep, "{\"a\":");
	strcat(deep, "1");
	for (int i = 0; i < 21; i++)
		strcat(deep, "}");
	body_case(deep, "", "deeper");
	/* An embedded NUL is refused, not truncated. */
	struct api_body b;
	char field[64];
	assert_int_equal(api_body_parse("{\"name\":\"w\"}\0x", 14, fields, 3, &b, field, sizeof(field), NULL), KERR_PARSE);
	api_body_free(&b);

	/* A nested object is checked the same way, named with its prefix. */
	static const struct api_field inner[] = {{"minReplicas", API_FIELD_INT, false}};
	assert_int_equal(api_body_parse("{\"name\":\"w\",\"autoscaling\":{\"min\":1}}", 36, fields, 3, &b, field,
					sizeof(field), NULL),
			 0);
	struct api_body in = {0};
	struct kerr e = {0};
	assert_int_equal(api_object_parse(b.v[2].obj, "autoscaling", inner, 1, &in, field, sizeof(field), &e), KERR_PARSE);
	assert_string_equal(field, "autoscaling.min");
	api_body_free(&in);
	api_body_free(&b);
}

static void test_paging(void **state)
{
	(void)state;
	const char *keys[] = {"a", "b", "c", "d", "e"};
	size_t s, e;
	char next[API_CONTINUE_MAX], cont[API_CONTINUE_MAX];
	assert_int_equal(api_page(keys, 5, 2, NULL, &s, &e, next, sizeof(next)), 0);
	assert_int_equal(s, 0);
	assert_int_equal(e, 2);
	assert_string_equal(next, "62"); /* after "b" */
	strcpy(cont, next);
	assert_int_equal(api_page(keys, 5, 2, cont, &s, &e, next, sizeof(next)), 0);
	assert_int_equal(s, 2);
	assert_int_equal(e, 4);
	strcpy(cont, next);
	assert_int_equal(api_page(keys, 5, 2, cont, &s, &e, next, sizeof(next)), 0);
	assert_int_equal(s, 4);
	assert_int_equal(e, 5);
	assert_string_equal(next, "");
	/* An exact fit ends without a token. */
	assert_int_equal(api_page(keys, 5, 5, "", &s, &e, next, sizeof(next)), 0);
	assert_int_equal(e, 5);
	assert_string_equal(next, "");
	/* A key deleted between pages: the next page starts after it anyway. */
	const char *fewer[] = {"a", "c", "d"};
	assert_int_equal(api_page(fewer, 3, 2, "62", &s, &e, next, sizeof(next)), 0);
	assert_int_equal(s, 1);
	/* Past the end: empty. */
	assert_int_equal(api_page(keys, 5, 2, "7a", &s, &e, next, sizeof(next)), 0);
	assert_int_equal(s, 5);
	assert_int_equal(e, 5);
	assert_int_equal(api_page(keys, 0, 2, NULL, &s, &e, next, sizeof(next)), 0);
	assert_int_equal(e, 0);
	assert_int_equal(api_page(keys, 5, 2, "6", &s, &e, next, sizeof(next)), KERR_PARSE);
	assert_int_equal(api_page(keys, 5, 2, "zz", &s, &e, next, sizeof(next)), KERR_PARSE);
	assert_int_equal(api_page(keys, 5, 2, "00", &s, &e, next, sizeof(next)), KERR_PARSE);
}

static void test_resume(void **state)
{
	(void)state;
	int64_t from;
	/* No since: live events only. */
	assert_false(api_events_resume(-1, true, 1, 10, &from));
	assert_int_equal(from, 11);
	/* Caught up or a few behind: the rest, no reset. */
	assert_false(api_events_resume(10, true, 1, 10, &from));
	assert_int_equal(from, 11);
	assert_false(api_events_resume(7, true, 1, 10, &from));
	assert_int_equal(from, 8);
	/* Exactly the oldest buffered one missed is still complete. */
	assert_false(api_events_resume(4, true, 5, 10, &from));
	assert_int_equal(from, 5);
	/* Older than the ring: reset, then everything buffered. */
	assert_true(api_events_resume(3, true, 5, 10, &from));
	assert_int_equal(from, 5);
	/* Another stream, or a seq this stream never reached (a restart). */
	assert_true(api_events_resume(7, false, 1, 10, &from));
	assert_int_equal(from, 1);
	assert_true(api_events_resume(50, true, 1, 10, &from));
	assert_int_equal(from, 1);
	/* Nothing published yet. */
	assert_false(api_events_resume(0, true, 1, 0, &from));
	assert_int_equal(from, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_openapi_matches_routes),
		cmocka_unit_test(test_problem),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_paging),
		cmocka_unit_test(test_resume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
