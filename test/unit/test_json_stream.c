#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_stream.h"

/* Every callback appends one line to a log, so that a whole parse can be
 * compared as a string. */
struct log {
	char text[65536];
	size_t len;
	int fail_at_scalar; /* > 0: the n-th scalar callback fails */
	int scalars;
	const char *skip;   /* containers under this key are skipped */
};

static void log_add(struct log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends, failing the test rather than overflowing the log. */
static void log_add(struct log *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->text + l->len, sizeof(l->text) - l->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(l->text) - l->len);
	l->len += (size_t)n;
}

static void log_path(struct log *l, const struct json_path *p)
{
	log_add(l, "[");
	for (size_t i = 0; i < p->depth; i++) {
		const struct json_seg *s = &p->seg[i];
		if (s->key) {
			assert_int_equal(strlen(s->key), s->keylen);
			log_add(l, "%s%s", i ? "," : "", s->key);
		} else {
			log_add(l, "%s%zu", i ? "," : "", s->index);
		}
	}
	log_add(l, "]");
}

static const char type_char[] = {'z', 'b', 'n', 's', 'o', 'a'};

static int on_scalar(void *ud, const struct json_path *p, enum json_type t, const char *s, size_t len,
                     struct kerr *e)
{
	struct log *l = ud;
	if (l->fail_at_scalar && ++l->scalars == l->fail_at_scalar)
		return kerr_set(e, KERR_INVAL, "test callback refuses scalar %d", l->scalars);
	log_add(l, "%c", type_char[t]);
	log_path(l, p);
	log_add(l, "=%.*s\n", (int)len, s);
	return 0;
}

static int on_start(void *ud, const struct json_path *p, enum json_type t, struct kerr *e)
{
	(void)e;
	struct log *l = ud;
	log_add(l, "+%c", type_char[t]);
	log_path(l, p);
	log_add(l, "\n");
	return l->skip && p->depth && json_seg_is(&p->seg[p->depth - 1], l->skip) ? JSON_STREAM_SKIP : 0;
}

static int on_end(void *ud, const struct json_path *p, enum json_type t, struct kerr *e)
{
	(void)e;
	struct log *l = ud;
	log_add(l, "-%c", type_char[t]);
	log_path(l, p);
	log_add(l, "\n");
	return 0;
}

static const struct json_stream_cbs cbs = {on_scalar, on_start, on_end};

/* Parse doc in chunks of `chunk` bytes (0: whole); returns the final code. */
static int parse_skipping(const char *doc, size_t len, size_t chunk, size_t max_string, const char *skip,
                          struct log *l, struct kerr *e)
{
	memset(l, 0, sizeof(*l));
	l->skip = skip;
	struct json_stream *js = json_stream_new(&cbs, l, max_string, e);
	assert_non_null(js);
	int rc = 0;
	for (size_t off = 0; off < len && rc == 0;) {
		size_t n = chunk && chunk < len - off ? chunk : len - off;
		rc = json_stream_feed(js, doc + off, n, e);
		off += n;
	}
	if (rc == 0)
		rc = json_stream_finish(js, e);
	json_stream_free(js);
	return rc;
}

static int parse(const char *doc, size_t len, size_t chunk, size_t max_string, struct log *l, struct kerr *e)
{
	return parse_skipping(doc, len, chunk, max_string, NULL, l, e);
}

static void reports_paths(void **state)
{
	(void)state;
	const char *doc = "{\"a\":[{\"b\":1},[true,null]],\"c\":{\"d\":\"x\\\"y\\u00e9\"},\"e\":-1.50e3,\"f\":[]}";
	const char *want =
		"+o[]\n"
		"+a[a]\n"
		"+o[a,0]\n"
		"n[a,0,b]=1\n"
		"-o[a,0]\n"
		"+a[a,1]\n"
		"b[a,1,0]=true\n"
		"z[a,1,1]=null\n"
		"-a[a,1]\n"
		"-a[a]\n"
		"+o[c]\n"
		"s[c,d]=x\"y\xc3\xa9\n"
		"-o[c]\n"
		"n[e]=-1.50e3\n"
		"+a[f]\n"
		"-a[f]\n"
		"-o[]\n";
	struct log l;
	struct kerr e = {0};
	assert_int_equal(parse(doc, strlen(doc), 0, 0, &l, &e), 0);
	assert_string_equal(l.text, want);
	/* The same events whatever the chunking. */
	for (size_t chunk = 1; chunk < strlen(doc); chunk++) {
		struct log c;
		assert_int_equal(parse(doc, strlen(doc), chunk, 0, &c, &e), 0);
		assert_string_equal(c.text, want);
	}
}

/* A skipped container reports its start and end and nothing between, at
 * any nesting and chunking; parsing goes on after it as before. */
static void skips_containers(void **state)
{
	(void)state;
	const char *doc = "{\"x\":{\"a\":1,\"x\":[2,{\"x\":3}],\"b\":\"q\\\"\"},\"y\":[{\"x\":[]},7],\"x\":5}";
	const char *want =
		"+o[]\n"
		"+o[x]\n"
		"-o[x]\n"
		"+a[y]\n"
		"+o[y,0]\n"
		"+a[y,0,x]\n"
		"-a[y,0,x]\n"
		"-o[y,0]\n"
		"n[y,1]=7\n"
		"-a[y]\n"
		"n[x]=5\n"
		"-o[]\n";
	struct log l;
	struct kerr e = {0};
	for (size_t chunk = 0; chunk < strlen(doc); chunk++) {
		assert_int_equal(parse_skipping(doc, strlen(doc), chunk, 0, "x", &l, &e), 0);
		assert_string_equal(l.text, want);
	}
	/* Malformed JSON inside a skipped container is still an error. */
	const char *bad = "{\"x\":{\"a\":tru}}";
	assert_int_equal(parse_skipping(bad, strlen(bad), 0, 0, "x", &l, &e), KERR_PARSE);
}

static void handles_multiple_values(void **state)
{
	(void)state;
	const char *doc = " {\"k\":1}\n[2]\r\n\t3 \"s\"\n";
	struct log l;
	struct kerr e = {0};
	assert_int_equal(parse(doc, strlen(doc), 1, 0, &l, &e), 0);
	assert_string_equal(l.text, "+o[]\nn[k]=1\n-o[]\n+a[]\nn[0]=2\n-a[]\nn[]=3\ns[]=s\n");
	/* Only whitespace is an empty stream, not an error. */
	assert_int_equal(parse(" \n ", 3, 1, 0, &l, &e), 0);
	assert_int_equal(l.len, 0);
	assert_int_equal(parse("", 0, 1, 0, &l, &e), 0);
}

static void keys_survive_buffer_growth(void **state)
{
	(void)state;
	/* 20 nested objects with 100-byte keys: the key buffer is reallocated
	 * while outer keys are still in the path. */
	char doc[4096], key[101];
	size_t n = 0;
	for (int depth = 0; depth < 20; depth++) {
		memset(key, 'a' + depth, 100);
		key[100] = '\0';
		n += (size_t)snprintf(doc + n, sizeof(doc) - n, "{\"%s\":", key);
	}
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "7");
	for (int depth = 0; depth < 20; depth++)
		doc[n++] = '}';
	struct log l;
	struct kerr e = {0};
	assert_int_equal(parse(doc, n, 7, 0, &l, &e), 0);
	const char *num = strstr(l.text, "\nn[");
	assert_non_null(num);
	for (int depth = 0; depth < 20; depth++) {
		memset(key, 'a' + depth, 100);
		assert_non_null(strstr(num, key));
	}
	assert_non_null(strstr(num, "]=7\n"));
}

static void limits_depth(void **state)
{
	(void)state;
	char doc[256];
	struct log l;
	struct kerr e = {0};
	memset(doc, '[', JSON_STREAM_MAX_DEPTH);
	memset(doc + JSON_STREAM_MAX_DEPTH, ']', JSON_STREAM_MAX_DEPTH);
	assert_int_equal(parse(doc, 2 * JSON_STREAM_MAX_DEPTH, 0, 0, &l, &e), 0);

	memset(doc, '[', JSON_STREAM_MAX_DEPTH + 1);
	memset(doc + JSON_STREAM_MAX_DEPTH + 1, ']', JSON_STREAM_MAX_DEPTH + 1);
	assert_int_equal(parse(doc, 2 * JSON_STREAM_MAX_DEPTH + 2, 0, 0, &l, &e), KERR_TOO_LARGE);
	assert_int_equal(e.code, KERR_TOO_LARGE);
	assert_non_null(strstr(e.message, "deeper than 32"));
	assert_non_null(strstr(e.message, "byte 33"));
}

static void limits_string_size(void **state)
{
	(void)state;
	struct log l;
	struct kerr e = {0};
	/* 16 bytes is the limit: exactly 16 passes, escapes count as written. */
	const char *ok = "[\"0123456789abcdef\",\"\\\"23456789abcde\"]";
	assert_int_equal(parse(ok, strlen(ok), 1, 16, &l, &e), 0);
	assert_non_null(strstr(l.text, "s[1]=\"23456789abcde\n"));

	const char *big = "[\"ok\",\"0123456789abcdefg\"]";
	for (size_t chunk = 0; chunk < strlen(big); chunk++) {
		kerr_clear(&e);
		assert_int_equal(parse(big, strlen(big), chunk, 16, &l, &e), KERR_TOO_LARGE);
		/* The value before the oversized one was delivered, whatever the chunks. */
		assert_non_null(strstr(l.text, "s[0]=ok\n"));
		assert_non_null(strstr(e.message, "byte 23"));
		assert_non_null(strstr(e.message, "16-byte limit"));
	}
	/* Keys are strings too. */
	const char *bigkey = "{\"0123456789abcdefg\":1}";
	kerr_clear(&e);
	assert_int_equal(parse(bigkey, strlen(bigkey), 0, 16, &l, &e), KERR_TOO_LARGE);
	/* A default-sized parser takes a 1 MiB string and refuses one byte more. */
	size_t n = JSON_STREAM_DEFAULT_MAX_STRING + 3;
	char *doc = malloc(n + 1);
	assert_non_null(doc);
	memset(doc, 'x', n);
	doc[0] = '"';
	doc[n - 2] = '"';
	doc[n - 1] = ' ';
	kerr_clear(&e);
	struct json_stream *js = json_stream_new(NULL, NULL, 0, &e);
	assert_non_null(js);
	assert_int_equal(json_stream_feed(js, doc, n, &e), 0);
	assert_int_equal(json_stream_finish(js, &e), 0);
	json_stream_free(js);
	doc[n - 2] = 'x';
	doc[n - 1] = '"';
	js = json_stream_new(NULL, NULL, 0, &e);
	assert_int_equal(json_stream_feed(js, doc, n, &e), KERR_TOO_LARGE);
	json_stream_free(js);
	free(doc);
}

static void reports_malformed_json(void **state)
{
	(void)state;
	struct log l;
	struct kerr e = {0};
	const char *bad = "{\"a\":1,\n\"b\":}";
	assert_int_equal(parse(bad, strlen(bad), 0, 0, &l, &e), KERR_PARSE);
	assert_non_null(strstr(e.message, "malformed JSON at byte 12"));
	assert_non_null(strstr(e.message, "unallowed token"));
	assert_null(strchr(e.message, '\n'));
	/* Split at every byte: the same code and offset. */
	for (size_t chunk = 1; chunk < strlen(bad); chunk++) {
		kerr_clear(&e);
		assert_int_equal(parse(bad, strlen(bad), chunk, 0, &l, &e), KERR_PARSE);
		assert_non_null(strstr(e.message, "at byte 12"));
	}
	/* Truncated input is an error at finish. */
	kerr_clear(&e);
	assert_int_equal(parse("{\"a\":[1,", 8, 0, 0, &l, &e), KERR_PARSE);
	assert_non_null(strstr(e.message, "premature EOF"));
	/* A failed stream stays failed. */
	kerr_clear(&e);
	struct json_stream *js = json_stream_new(&cbs, &l, 0, &e);
	assert_int_equal(json_stream_feed(js, "]", 1, &e), KERR_PARSE);
	struct kerr again = {0};
	assert_int_equal(json_stream_feed(js, "{}", 2, &again), KERR_PARSE);
	assert_string_equal(again.message, e.message);
	assert_int_equal(json_stream_finish(js, NULL), KERR_PARSE);
	json_stream_free(js);
}

static void callback_can_stop_the_parse(void **state)
{
	(void)state;
	struct log l;
	memset(&l, 0, sizeof(l));
	l.fail_at_scalar = 2;
	struct kerr e = {0};
	struct json_stream *js = json_stream_new(&cbs, &l, 0, &e);
	assert_int_equal(json_stream_feed(js, "[1,2,3]", 7, &e), KERR_INVAL);
	assert_string_equal(e.message, "test callback refuses scalar 2");
	assert_null(strstr(l.text, "=3"));
	json_stream_free(js);
}

static void segment_compare(void **state)
{
	(void)state;
	struct json_seg k = {"spec", 4, 0}, i = {NULL, 0, 3};
	assert_true(json_seg_is(&k, "spec"));
	assert_false(json_seg_is(&k, "spe"));
	assert_false(json_seg_is(&k, "specs"));
	assert_false(json_seg_is(&i, "spec"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reports_paths),
		cmocka_unit_test(skips_containers),
		cmocka_unit_test(handles_multiple_values),
		cmocka_unit_test(keys_survive_buffer_growth),
		cmocka_unit_test(limits_depth),
		cmocka_unit_test(limits_string_size),
		cmocka_unit_test(reports_malformed_json),
		cmocka_unit_test(callback_can_stop_the_parse),
		cmocka_unit_test(segment_compare),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
