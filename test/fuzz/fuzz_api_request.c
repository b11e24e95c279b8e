/*
 * fuzz_api_request: what the REST API decodes from a request before any
 * handler logic (api.h): JSON bodies through api_body_parse (and
 * api_object_parse for a nested object), the path through
 * api_route_match, and the ?continue= token through api_page.
 *
 * Input: byte 0 picks what the rest is.
 *   0..3 (mod 6): a body for the field table of POST /auth/token,
 *     POST /tenants, POST /tenants/{id}/workloads (its autoscaling object
 *     too) or the scale subresource: these tables mirror api.c's handlers,
 *     which keep theirs static. Passed with a NUL after it, as httpd does.
 *   4: a path for api_route_match.
 *   5: a continue token for api_page over a fixed list of keys, with a
 *     page size from byte 1.
 * Checks: a body either parses (every required field present, strings
 * without NUL, "field" empty) or fails with KERR_PARSE and a message, and
 * api_body_free cleans up either way (LeakSanitizer); a route match has its
 * parameters non-empty and short enough; a page lies within the keys, the
 * continue token it returns leads to the next page.
 */
#include <string.h>

#include "api.h"
#include "fuzz.h"

static const struct api_field token_fields[] = {
	{"username", API_FIELD_STRING, false}, {"password", API_FIELD_STRING, false},
	{"api_key", API_FIELD_STRING, false},  {"tenant_id", API_FIELD_STRING, false},
	{"tenant_name", API_FIELD_STRING, false},
};
static const struct api_field tenant_fields[] = {
	{"name", API_FIELD_STRING, true},
	{"cpu_quota", API_FIELD_STRING, false},
	{"memory_quota", API_FIELD_STRING, false},
	{"pods_quota", API_FIELD_INT, false},
};
static const struct api_field workload_fields[] = {
	{"name", API_FIELD_STRING, true},   {"image", API_FIELD_STRING, true},
	{"cpu", API_FIELD_STRING, true},    {"memory", API_FIELD_STRING, true},
	{"replicas", API_FIELD_INT, false}, {"autoscaling", API_FIELD_OBJECT, false},
};
static const struct api_field autoscaling_fields[] = {
	{"minReplicas", API_FIELD_INT, false},
	{"maxReplicas", API_FIELD_INT, false},
	{"targetCPUUtilizationPercentage", API_FIELD_INT, false},
	{"targetMemoryUtilizationPercentage", API_FIELD_INT, false},
};
static const struct api_field scale_fields[] = {{"replicas", API_FIELD_INT, true}};

static const struct {
	const struct api_field *fields;
	size_t n;
} tables[] = {
	{token_fields, 5}, {tenant_fields, 4}, {workload_fields, 6}, {scale_fields, 1},
};

static void check_parsed(int rc, const struct kerr *e, const struct api_field *fields, size_t n,
                         const struct api_body *b, const char *field, size_t cap)
{
	if (!memchr(field, '\0', cap))
		fuzz_fail("api body parse left the field name unterminated");
	if (rc != 0) {
		if ((rc != KERR_PARSE && rc != KERR_NOMEM) || e->code != rc || !e->message[0])
			fuzz_fail("api body parse failed with %d, kerr %d \"%s\"", rc, e->code, e->message);
		return;
	}
	if (field[0])
		fuzz_fail("api body parsed but names field \"%s\"", field);
	for (size_t i = 0; i < n; i++) {
		const struct api_value *v = &b->v[i];
		if (fields[i].required && !v->present)
			fuzz_fail("api body parsed without its required field %s", fields[i].name);
		if (fields[i].type == API_FIELD_STRING && v->present != (v->str != NULL))
			fuzz_fail("api body field %s: present %d, string %p", fields[i].name, v->present, (void *)v->str);
		if (v->str)
			(void)strlen(v->str);
		if (fields[i].type == API_FIELD_OBJECT && v->present != (v->obj != NULL))
			fuzz_fail("api body field %s: present %d, object %p", fields[i].name, v->present, v->obj);
	}
	for (size_t i = n; i < sizeof(b->v) / sizeof(b->v[0]); i++)
		if (b->v[i].present)
			fuzz_fail("api body: value %zu is present beyond the %zu fields", i, n);
}

static void body(unsigned which, const char *text, size_t len)
{
	const struct api_field *fields = tables[which].fields;
	size_t n = tables[which].n;
	struct api_body b;
	char field[128];
	struct kerr e = {0};
	int rc = api_body_parse(text, len, fields, n, &b, field, sizeof(field), &e);
	check_parsed(rc, &e, fields, n, &b, field, sizeof(field));
	if (rc == 0 && fields == workload_fields && b.v[5].present) {
		struct api_body as = {0};
		struct kerr ae = {0};
		int arc = api_object_parse(b.v[5].obj, "autoscaling", autoscaling_fields, 4, &as, field, sizeof(field),
		                           &ae);
		check_parsed(arc, &ae, autoscaling_fields, 4, &as, field, sizeof(field));
		if (arc != 0 && strncmp(field, "autoscaling", 11) != 0)
			fuzz_fail("autoscaling parse failed naming field \"%s\"", field);
		api_body_free(&as);
	}
	api_body_free(&b);
}

static void route(const char *path)
{
	struct api_match m;
	if (!api_route_match(path, &m))
		return;
	if ((unsigned)m.route >= API_R_COUNT || !m.pattern || m.nparams > 2)
		fuzz_fail("api_route_match(\"%s\"): route %d, %zu params", path, (int)m.route, m.nparams);
	for (size_t i = 0; i < m.nparams; i++) {
		size_t pl = strnlen(m.params[i], API_PARAM_MAX);
		if (pl == 0 || pl >= API_PARAM_MAX || strchr(m.params[i], '/'))
			fuzz_fail("api_route_match(\"%s\"): parameter %zu is \"%.*s\"", path, i, (int)pl, m.params[i]);
	}
}

static void page(const char *cont, size_t limit)
{
	static const char *const keys[] = {
		"a", "acme/web", "acme/web-2", "b/\x7f", "tenant-b/batch", "tenant-b/batch-0", "z", "\xc3\xa9t\xc3\xa9",
	};
	const size_t n = sizeof(keys) / sizeof(keys[0]);
	size_t start = 99, end = 99;
	char next[API_CONTINUE_MAX];
	int rc = api_page(keys, n, limit, cont, &start, &end, next, sizeof(next));
	if (rc != 0) {
		if (rc != KERR_PARSE)
			fuzz_fail("api_page(\"%s\") returned %d", cont, rc);
		return;
	}
	if (start > end || end > n || end - start > limit || !memchr(next, '\0', sizeof(next)))
		fuzz_fail("api_page(\"%s\", limit %zu): page [%zu, %zu) of %zu", cont, limit, start, end, n);
	if (next[0]) {
		size_t s2, e2;
		char next2[API_CONTINUE_MAX];
		if (end == n || api_page(keys, n, limit, next, &s2, &e2, next2, sizeof(next2)) != 0 || s2 != end)
			fuzz_fail("api_page(\"%s\"): its continue token \"%s\" does not lead to item %zu", cont, next, end);
	} else if (end != n && end != start) {
		fuzz_fail("api_page(\"%s\", limit %zu): page ends at %zu of %zu without a continue token", cont, limit,
		          end, n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] % 6;
	/* A body as httpd hands it over: len bytes and a NUL after them. */
	size_t len = size - 1;
	char *text = malloc(len + 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, len);
	text[len] = '\0';
	if (mode < 4)
		body(mode, text, len);
	else if (mode == 4)
		route(text);
	else if (len > 0)
		page(text + 1, (unsigned char)text[0] % 10);
	free(text);
	return 0;
}
