#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinds.h"
#include "kobj.h"
#include "watch_parser.h"

#ifndef FIXTURES
#error "FIXTURES must name the fixture directory"
#endif

static char *fixture(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", FIXTURES, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	/* Fixtures end in a newline; an event is one line of its own. */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return buf;
}

/* Every event as one line of text, so parses can be compared whole. */
struct rec {
	char text[8192];
	size_t len;
	size_t events;
	int fail_at; /* > 0: the callback fails on that event */
};

static void rec_add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rec_add(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(r->text + r->len, sizeof(r->text) - r->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(r->text) - r->len);
	r->len += (size_t)n;
}

static int on_event(void *ud, struct watch_event *ev, struct kerr *e)
{
	struct rec *r = ud;
	r->events++;
	rec_add(r, "%s", watch_event_type_name(ev->type));
	if (ev->obj) {
		const struct kpod *p = (const struct kpod *)ev->obj;
		assert_ptr_equal(ev->obj->kind, &kind_pod);
		assert_string_equal(ev->resource_version, ev->obj->resource_version);
		rec_add(r, " %s rv=%s cpu=%lld tol=%zu labels=%zu", ev->obj->key, ev->obj->resource_version,
		        (long long)p->requests.cpu_milli, p->ntolerations, ev->obj->nlabels);
		kobj_unref(ev->obj);
	} else if (ev->status) {
		rec_add(r, " %ld %s \"%s\"", ev->status->code, ev->status->reason, ev->status->message);
	} else {
		rec_add(r, " rv=%s", ev->resource_version);
	}
	rec_add(r, "\n");
	if (r->fail_at && (int)r->events == r->fail_at)
		return kerr_set(e, KERR_CLOSED, "test callback stops at event %zu", r->events);
	return 0;
}

/* Feed body in the given cut points (sorted offsets), then finish. */
static int run(const struct kind *k, enum watch_parser_mode mode, const char *body, size_t len,
               const size_t *cuts, size_t ncuts, size_t max_string, struct rec *r, struct kerr *e,
               struct watch_list_meta *meta)
{
	memset(r, 0, sizeof(*r));
	struct watch_parser *wp = watch_parser_new(k, mode, on_event, r, max_string, e);
	assert_non_null(wp);
	int rc = 0;
	size_t at = 0;
	for (size_t i = 0; i <= ncuts && rc == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		rc = watch_parser_feed(wp, body + at, to - at, e);
		at = to;
	}
	if (rc == 0)
		rc = watch_parser_finish(wp, e);
	assert_int_equal(watch_parser_count(wp), r->events);
	const struct watch_list_meta *m = watch_parser_list_meta(wp);
	if (meta) {
		if (m) {
			*meta = *m;
			/* The strings die with the parser: keep copies for the test. */
			static char rv[64], cont[256];
			snprintf(rv, sizeof(rv), "%s", m->resource_version);
			snprintf(cont, sizeof(cont), "%s", m->continue_token);
			meta->resource_version = rv;
			meta->continue_token = cont;
		} else {
			memset(meta, 0, sizeof(*meta));
		}
	}
	watch_parser_free(wp);
	return rc;
}

static char *watch_stream(size_t *len)
{
	char *pod = fixture("pod.json"), *complex = fixture("pod_complex.json"), *status = fixture("status_410.json");
	size_t cap = strlen(pod) + strlen(complex) + strlen(status) + 2048;
	char *s = malloc(cap);
	assert_non_null(s);
	int n = snprintf(s, cap,
	                 "{\"type\":\"ADDED\",\"object\":%s}\n"
	                 /* "type" after "object". */
	                 "{\"object\":%s,\"type\":\"MODIFIED\"}\n"
	                 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":"
	                 "{\"resourceVersion\":\"184500\",\"creationTimestamp\":null,\"annotations\":"
	                 "{\"k8s.io/initial-events-end\":\"true\"}}}}\n"
	                 /* Unknown top-level fields; no newline before the next event. */
	                 "{\"type\":\"DELETED\",\"extra\":{\"a\":[1,{\"b\":null}]},\"object\":{\"kind\":\"Pod\","
	                 "\"metadata\":{\"name\":\"gone\",\"namespace\":\"ns\",\"resourceVersion\":\"184501\"}}}"
	                 "{\"object\":%s,\"type\":\"ERROR\"}\r\n",
	                 pod, complex, status);
	free(pod);
	free(complex);
	free(status);
	*len = (size_t)n;
	return s;
}

static const char *const want_events =
	"ADDED tenant-acme/web-7d4b9c8f6d-x2x9z rv=184467 cpu=250 tol=2 labels=3\n"
	"MODIFIED tenant-zeta/trainer-0 rv=99 cpu=2010 tol=2 labels=3\n"
	"BOOKMARK rv=184500\n"
	"DELETED ns/gone rv=184501 cpu=0 tol=0 labels=0\n"
	"ERROR 410 Expired \"too old resource version: 184000 (184467)\"\n";

static void watch_stream_whole(void **state)
{
	(void)state;
	size_t len;
	char *body = watch_stream(&len);
	struct rec r;
	struct kerr e = {0};
	assert_int_equal(run(&kind_pod, WATCH_PARSER_WATCH, body, len, NULL, 0, 0, &r, &e, NULL), 0);
	assert_string_equal(r.text, want_events);
	free(body);
}

static void watch_stream_split_everywhere(void **state)
{
	(void)state;
	size_t len;
	char *body = watch_stream(&len);
	struct rec r;
	struct kerr e = {0};
	for (size_t cut = 0; cut <= len; cut++) {
		if (run(&kind_pod, WATCH_PARSER_WATCH, body, len, &cut, 1, 0, &r, &e, NULL) != 0 ||
		    strcmp(r.text, want_events) != 0)
			fail_msg("split at byte %zu: %s\n%s", cut, e.message, r.text);
	}
	/* One byte at a time. */
	size_t *cuts = malloc(len * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	assert_int_equal(run(&kind_pod, WATCH_PARSER_WATCH, body, len, cuts, len, 0, &r, &e, NULL), 0);
	assert_string_equal(r.text, want_events);
	free(cuts);
	free(body);
}

static void watch_events_are_delivered_as_they_complete(void **state)
{
	(void)state;
	const char *ev = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\"}}}\n";
	struct rec r = {0};
	struct kerr e = {0};
	struct watch_parser *wp = watch_parser_new(&kind_pod, WATCH_PARSER_WATCH, on_event, &r, 0, &e);
	assert_non_null(wp);
	assert_int_equal(watch_parser_feed(wp, ev, strlen(ev) - 2, &e), 0);
	assert_int_equal(r.events, 0);
	assert_int_equal(watch_parser_feed(wp, ev + strlen(ev) - 2, 1, &e), 0);
	assert_int_equal(r.events, 1);
	/* The stream goes on: a second event, then a clean end. */
	assert_int_equal(watch_parser_feed(wp, ev, strlen(ev), &e), 0);
	assert_int_equal(r.events, 2);
	assert_int_equal(watch_parser_finish(wp, &e), 0);
	assert_null(watch_parser_list_meta(wp));
	watch_parser_free(wp);

	/* An empty body (a watch that timed out idle) is fine. */
	assert_int_equal(run(&kind_pod, WATCH_PARSER_WATCH, "\n", 1, NULL, 0, 0, &r, &e, NULL), 0);
	assert_int_equal(r.events, 0);
}

static void expect_watch_error(const char *body, int code, const char *needle, size_t events)
{
	struct rec r;
	struct kerr e = {0};
	int rc = run(&kind_pod, WATCH_PARSER_WATCH, body, strlen(body), NULL, 0, 64, &r, &e, NULL);
	if (rc != code || e.code != code || !strstr(e.message, needle) || r.events != events)
		fail_msg("%s\n -> rc %d, %zu events, \"%s\"; want %d with \"%s\" after %zu events", body, rc,
		         r.events, e.message, code, needle, events);
}

static void watch_rejects_bad_events(void **state)
{
	(void)state;
	const char *good = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\"}}}\n";
	char body[512];
	snprintf(body, sizeof(body), "%s{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"b\"}}", good);
	expect_watch_error(body, KERR_PARSE, "premature EOF", 1);
	snprintf(body, sizeof(body), "%s{\"type\":\"ADDED\",,}", good);
	expect_watch_error(body, KERR_PARSE, "malformed JSON at byte", 1);
	expect_watch_error("[1]", KERR_PARSE, "watch event 1 of pods near byte 1 is not a JSON object", 0);
	expect_watch_error("5 ", KERR_PARSE, "is not a JSON object", 0);
	expect_watch_error("{\"type\":\"ADDED\"}", KERR_PARSE, "has no \"object\"", 0);
	expect_watch_error("{\"object\":{\"metadata\":{\"name\":\"a\"}}}", KERR_PARSE, "has no \"type\"", 0);
	expect_watch_error("{\"type\":\"CREATED\",\"object\":{}}", KERR_PARSE, "has type \"CREATED\"; expected ADDED", 0);
	expect_watch_error("{\"type\":1,\"object\":{}}", KERR_PARSE, "has type a non-string", 0);
	expect_watch_error("{\"type\":\"ADDED\",\"object\":[]}", KERR_PARSE, "\"object\" is not a JSON object", 0);
	snprintf(body, sizeof(body), "%s{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"namespace\":\"n\"}}}", good);
	expect_watch_error(body, KERR_PARSE, "watch event 2 of pods at byte", 1);
	expect_watch_error(body, KERR_PARSE, "Pod object has no metadata.name", 1);
	expect_watch_error("{\"type\":\"ADDED\",\"object\":{\"kind\":\"Node\",\"metadata\":{\"name\":\"a\"}}}",
	                   KERR_PARSE, "expected a Pod object, got kind \"Node\"", 0);
	expect_watch_error("{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}", KERR_PARSE,
	                   "BOOKMARK 1 of pods has no metadata.resourceVersion", 0);
	/* Oversized string (limit 64 here): no event, a size error. */
	snprintf(body, sizeof(body), "%s{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"%070d\"}}}", good, 7);
	expect_watch_error(body, KERR_TOO_LARGE, "64-byte limit", 1);
	/* Fields of ERROR and BOOKMARK objects that a Pod would reject do not matter. */
	struct rec r;
	struct kerr e = {0};
	const char *odd = "{\"object\":{\"kind\":\"Status\",\"code\":500,\"metadata\":{\"creationTimestamp\":\"bad\"},"
	                  "\"spec\":{\"priority\":\"x\"}},\"type\":\"ERROR\"}";
	assert_int_equal(run(&kind_pod, WATCH_PARSER_WATCH, odd, strlen(odd), NULL, 0, 0, &r, &e, NULL), 0);
	assert_string_equal(r.text, "ERROR 500  \"\"\n");
}

static void callback_stops_the_parse(void **state)
{
	(void)state;
	size_t len;
	char *body = watch_stream(&len);
	struct rec r;
	memset(&r, 0, sizeof(r));
	r.fail_at = 2;
	struct kerr e = {0};
	struct watch_parser *wp = watch_parser_new(&kind_pod, WATCH_PARSER_WATCH, on_event, &r, 0, &e);
	assert_int_equal(watch_parser_feed(wp, body, len, &e), KERR_CLOSED);
	assert_string_equal(e.message, "test callback stops at event 2");
	assert_int_equal(r.events, 2);
	/* The parser stays failed. */
	assert_int_equal(watch_parser_feed(wp, "{}", 2, NULL), KERR_CLOSED);
	assert_int_equal(watch_parser_finish(wp, NULL), KERR_CLOSED);
	watch_parser_free(wp);
	free(body);
	assert_null(watch_parser_new(NULL, WATCH_PARSER_WATCH, on_event, NULL, 0, NULL));
	assert_int_equal(watch_parser_feed(NULL, "x", 1, NULL), KERR_INVAL);
}

static char *pod_list(size_t *len, int meta_last)
{
	char *pod = fixture("pod.json"), *complex = fixture("pod_complex.json");
	size_t cap = strlen(pod) + strlen(complex) + 1024;
	char *s = malloc(cap);
	assert_non_null(s);
	const char *meta = "\"metadata\":{\"resourceVersion\":\"184470\",\"continue\":"
	                   "\"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTg0NDcwLCJzdGFydCI6InRlbmFudC1hY21lL3dlYiJ9\","
	                   "\"remainingItemCount\":5}";
	int n = meta_last ? snprintf(s, cap, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"items\":[%s,%s],%s}\n", pod, complex, meta)
	                  : snprintf(s, cap, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",%s,\"items\":[%s,\n%s]}\n", meta, pod, complex);
	free(pod);
	free(complex);
	*len = (size_t)n;
	return s;
}

static const char *const want_items =
	"LIST_ITEM tenant-acme/web-7d4b9c8f6d-x2x9z rv=184467 cpu=250 tol=2 labels=3\n"
	"LIST_ITEM tenant-zeta/trainer-0 rv=99 cpu=2010 tol=2 labels=3\n";

static void list_with_continue(void **state)
{
	(void)state;
	for (int meta_last = 0; meta_last < 2; meta_last++) {
		size_t len;
		char *body = pod_list(&len, meta_last);
		for (size_t cut = 0; cut <= len; cut++) {
			struct rec r;
			struct kerr e = {0};
			struct watch_list_meta m;
			if (run(&kind_pod, WATCH_PARSER_LIST, body, len, &cut, 1, 0, &r, &e, &m) != 0)
				fail_msg("split at %zu: %s", cut, e.message);
			assert_string_equal(r.text, want_items);
			assert_string_equal(m.resource_version, "184470");
			assert_string_equal(m.continue_token,
			                    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTg0NDcwLCJzdGFydCI6InRlbmFudC1hY21lL3dlYiJ9");
			assert_int_equal(m.remaining, 5);
		}
		free(body);
	}
}

static void list_items_stream_out(void **state)
{
	(void)state;
	size_t len;
	char *body = pod_list(&len, 0);
	/* The first item is delivered as soon as its closing brace arrives. */
	const char *second = strstr(body, ",\n{");
	assert_non_null(second);
	size_t first_end = (size_t)(second - body);
	struct rec r = {0};
	struct kerr e = {0};
	struct watch_parser *wp = watch_parser_new(&kind_pod, WATCH_PARSER_LIST, on_event, &r, 0, &e);
	assert_int_equal(watch_parser_feed(wp, body, first_end - 1, &e), 0);
	assert_int_equal(r.events, 0);
	assert_int_equal(watch_parser_feed(wp, body + first_end - 1, 1, &e), 0);
	assert_int_equal(r.events, 1);
	assert_null(watch_parser_list_meta(wp));
	assert_int_equal(watch_parser_feed(wp, body + first_end, len - first_end, &e), 0);
	assert_int_equal(watch_parser_finish(wp, &e), 0);
	assert_int_equal(r.events, 2);
	watch_parser_free(wp);
	free(body);

	/* The last page: no continue token, no remaining count. */
	const char *last = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"9\"},\"items\":[]}";
	struct watch_list_meta m;
	assert_int_equal(run(&kind_pod, WATCH_PARSER_LIST, last, strlen(last), NULL, 0, 0, &r, &e, &m), 0);
	assert_int_equal(r.events, 0);
	assert_string_equal(m.resource_version, "9");
	assert_string_equal(m.continue_token, "");
	assert_int_equal(m.remaining, -1);
}

static void expect_list_error(const char *body, const char *needle, size_t events)
{
	struct rec r;
	struct kerr e = {0};
	struct watch_list_meta m;
	int rc = run(&kind_pod, WATCH_PARSER_LIST, body, strlen(body), NULL, 0, 0, &r, &e, &m);
	if (rc != KERR_PARSE || !strstr(e.message, needle) || r.events != events || m.resource_version)
		fail_msg("%s\n -> rc %d, %zu items, \"%s\"; want KERR_PARSE with \"%s\"", body, rc, r.events,
		         e.message, needle);
}

static void list_rejects_bad_bodies(void **state)
{
	(void)state;
	expect_list_error("", "LIST response of pods is empty", 0);
	expect_list_error("[]", "is not a JSON object", 0);
	expect_list_error("{\"kind\":\"NodeList\",\"items\":[]}", "expected a PodList response, got kind \"NodeList\"", 0);
	expect_list_error("{\"kind\":\"Status\",\"code\":410}", "got kind \"Status\"", 0);
	expect_list_error("{\"items\":{}}", "\"items\" is not an array", 0);
	expect_list_error("{\"items\":[7]}", "item 0 is not a JSON object", 0);
	expect_list_error("{\"items\":[{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{}}]}",
	                  "LIST item 2 of pods at byte", 1);
	expect_list_error("{\"items\":[]} {}", "has data after its object", 0);
	expect_list_error("{\"items\":[{\"metadata\":{\"name\":\"a\"}}", "premature EOF", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(watch_stream_whole),
		cmocka_unit_test(watch_stream_split_everywhere),
		cmocka_unit_test(watch_events_are_delivered_as_they_complete),
		cmocka_unit_test(watch_rejects_bad_events),
		cmocka_unit_test(callback_stops_the_parse),
		cmocka_unit_test(list_with_continue),
		cmocka_unit_test(list_items_stream_out),
		cmocka_unit_test(list_rejects_bad_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
