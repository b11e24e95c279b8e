#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "kube_client.h"

static void status_not_found(void **state)
{
	(void)state;
	struct kerr e = { 0 };
	const char *body = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
			   "\"message\":\"pods \\\"nope\\\" not found\",\"reason\":\"NotFound\","
			   "\"details\":{\"name\":\"nope\",\"kind\":\"pods\"},\"code\":404}";
	assert_int_equal(kube_client_status_error(404, body, "GET /api/v1/namespaces/a/pods/nope", &e),
			 KERR_NOT_FOUND);
	assert_int_equal(e.code, KERR_NOT_FOUND);
	assert_int_equal(e.http_status, 404);
	assert_string_equal(e.reason, "NotFound");
	assert_string_equal(e.message, "GET /api/v1/namespaces/a/pods/nope: pods \"nope\" not found (NotFound, HTTP 404)");
}

static void status_conflicts_and_gone(void **state)
{
	(void)state;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_status_error(409, "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"message\":\"x exists\",\"code\":409}", "POST /p", &e),
			 KERR_ALREADY_EXISTS);
	assert_string_equal(e.reason, "AlreadyExists");
	kerr_clear(&e);
	assert_int_equal(kube_client_status_error(409, "{\"kind\":\"Status\",\"reason\":\"Conflict\",\"message\":\"the object has been modified\"}", "PUT /p", &e),
			 KERR_CONFLICT);
	assert_non_null(strstr(e.message, "the object has been modified"));
	kerr_clear(&e);
	assert_int_equal(kube_client_status_error(410, "{\"kind\":\"Status\",\"reason\":\"Expired\",\"message\":\"too old resource version: 1 (5)\",\"code\":410}", "GET /w", &e),
			 KERR_GONE);
	assert_int_equal(e.http_status, 410);
	assert_string_equal(e.reason, "Expired");
}

static void status_hints(void **state)
{
	(void)state;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_status_error(403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":\"pods is forbidden: User \\\"x\\\" cannot list\"}", "GET /api/v1/pods", &e),
			 KERR_FORBIDDEN);
	assert_non_null(strstr(e.message, "RBAC"));
	kerr_clear(&e);
	/* NamespaceLifecycle refuses with 403 Forbidden too: not an RBAC matter. */
	assert_int_equal(kube_client_status_error(403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":"
			 "\"events \\\"x.1\\\" is forbidden: unable to create new content in namespace t because it is being terminated\"}",
			 "POST /api/v1/namespaces/t/events", &e),
			 KERR_FORBIDDEN);
	assert_null(strstr(e.message, "RBAC"));
	assert_non_null(strstr(e.message, "namespace is being deleted"));
	kerr_clear(&e);
	assert_int_equal(kube_client_status_error(403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":"
			 "\"pods \\\"p\\\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2\"}",
			 "POST /api/v1/namespaces/t/pods", &e),
			 KERR_FORBIDDEN);
	assert_null(strstr(e.message, "RBAC"));
	assert_non_null(strstr(e.message, "ResourceQuota"));
	kerr_clear(&e);
	/* A refusal this code does not know gets no guess. */
	assert_int_equal(kube_client_status_error(403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":\"maximum cpu usage per Container is 1\"}",
			 "POST /p", &e),
			 KERR_FORBIDDEN);
	assert_string_equal(e.message, "POST /p: maximum cpu usage per Container is 1 (Forbidden, HTTP 403)");
	kerr_clear(&e);
	assert_int_equal(kube_client_status_error(401, "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"message\":\"Unauthorized\"}", "GET /", &e),
			 KERR_UNAUTHORIZED);
	assert_non_null(strstr(e.message, "token or client certificate"));
}

static void non_status_bodies(void **state)
{
	(void)state;
	struct kerr e = { 0 };
	assert_int_equal(kube_client_status_error(500, "internal\nkaboom", "GET /x", &e), KERR_SERVER);
	assert_string_equal(e.message, "GET /x: internal kaboom (HTTP 500)");
	assert_string_equal(e.reason, "");
	kerr_clear(&e);
	assert_int_equal(kube_client_status_error(502, "{not json", "GET /x", &e), KERR_SERVER);
	assert_non_null(strstr(e.message, "{not json"));
	kerr_clear(&e);
	assert_int_equal(kube_client_status_error(418, NULL, "GET /x", &e), KERR_HTTP);
	assert_string_equal(e.message, "GET /x: unexpected HTTP status (HTTP 418)");
	kerr_clear(&e);
	/* A JSON object that is not a Status is shown as text too. */
	assert_int_equal(kube_client_status_error(404, "{\"a\":1}", "GET /x", &e), KERR_NOT_FOUND);
	assert_non_null(strstr(e.message, "{\"a\":1}"));
	kerr_clear(&e);
	/* The code comes from the Status when the transport gave none. */
	assert_int_equal(kube_client_status_error(0, "{\"kind\":\"Status\",\"code\":422,\"reason\":\"Invalid\",\"message\":\"bad\"}", "POST /x", &e),
			 KERR_INVALID);
	assert_int_equal(e.http_status, 422);
}

static void first_error_wins(void **state)
{
	(void)state;
	struct kerr e = { 0 };
	kerr_set(&e, KERR_PARSE, "earlier");
	assert_int_equal(kube_client_status_error(404, "{\"kind\":\"Status\",\"reason\":\"NotFound\"}", "GET /x", &e),
			 KERR_NOT_FOUND);
	assert_int_equal(e.code, KERR_PARSE);
	assert_string_equal(e.message, "earlier");
	assert_int_equal(e.http_status, 0);
	assert_int_equal(kube_client_status_error(404, NULL, "GET /x", NULL), KERR_NOT_FOUND);
}

static void expect_template(const char *path, const char *want)
{
	char buf[256];
	kube_client_path_template(path, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void path_templates(void **state)
{
	(void)state;
	expect_template("/api/v1/namespaces/a/pods/b/status?x=1", "/api/v1/namespaces/{namespace}/pods/{name}/status");
	expect_template("/api/v1/namespaces/a/pods?watch=1&resourceVersion=5", "/api/v1/namespaces/{namespace}/pods");
	expect_template("/api/v1/pods?limit=500", "/api/v1/pods");
	expect_template("/api/v1/nodes/n1", "/api/v1/nodes/{name}");
	expect_template("/api/v1/namespaces/a", "/api/v1/namespaces/{name}");
	expect_template("/api/v1/namespaces/a/finalize", "/api/v1/namespaces/{name}/finalize");
	expect_template("/api/v1/namespaces", "/api/v1/namespaces");
	expect_template("/apis/apps/v1/namespaces/t/deployments/web/scale", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale");
	expect_template("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/nimbus",
			"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}");
	expect_template("/api/v1/namespaces/a/pods/b/proxy/some/deep/path", "/api/v1/namespaces/{namespace}/pods/{name}/proxy");
	expect_template("/version", "/version");
	expect_template("/readyz?verbose", "/readyz");
	expect_template("", "/");

	char small[12];
	kube_client_path_template("/api/v1/namespaces/a/pods", small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, "/api/v1/nam", 11);
}

static void client_arguments(void **state)
{
	(void)state;
	struct kube_client *c = NULL;
	struct kerr e = { 0 };
	struct kube_config none = { 0 };
	assert_int_equal(kube_client_new(&c, &none, NULL, &e), KERR_CONFIG);
	assert_null(c);

	kerr_clear(&e);
	struct kube_config missing = { .server = "https://127.0.0.1:1", .token_file = "/nonexistent/token",
				       .origin = "kubeconfig /k (context \"c\")" };
	assert_int_equal(kube_client_new(&c, &missing, NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "/nonexistent/token"));
	assert_non_null(strstr(e.message, "kubeconfig /k"));

	kerr_clear(&e);
	struct kube_config ok = { .server = "https://127.0.0.1:1/" };
	assert_int_equal(kube_client_new(&c, &ok, NULL, &e), 0);
	assert_string_equal(kube_client_server(c), "https://127.0.0.1:1");
	struct kube_response r;
	assert_int_equal(kube_client_request(c, "GET", "api/v1/pods", NULL, NULL, 0, &r, &e), KERR_INVAL);
	assert_non_null(strstr(e.message, "must start with '/'"));
	assert_int_equal(r.status, 0);
	kerr_clear(&e);
	assert_int_equal(kube_client_request(c, "TRACE", "/", NULL, NULL, 0, &r, &e), KERR_INVAL);
	assert_null(r.body);
	kerr_clear(&e);
	assert_int_equal(kube_client_stream(c, "/api/v1/pods", NULL, NULL, NULL, NULL, &e), KERR_INVAL);
	kube_client_free(c);
	kube_response_free(NULL);
	kube_client_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_not_found),
		cmocka_unit_test(status_conflicts_and_gone),
		cmocka_unit_test(status_hints),
		cmocka_unit_test(non_status_bodies),
		cmocka_unit_test(first_error_wins),
		cmocka_unit_test(path_templates),
		cmocka_unit_test(client_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
