/*
 * log: the exact line format, JSON escaping (checked by parsing each line
 * back with yajl), redaction, levels, and whole lines under concurrency.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "log.h"

/* Lines go to a pipe; each test reads back what it logged. */
static int pipefd[2];

static int setup(void **state)
{
	(void)state;
	if (pipe(pipefd) != 0 || fcntl(pipefd[0], F_SETFL, O_NONBLOCK) != 0)
		return -1;
	log_set_fd(pipefd[1]);
	log_set_level(LOG_LEVEL_DEBUG);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_fd(2);
	log_set_level(LOG_LEVEL_INFO);
	close(pipefd[0]);
	close(pipefd[1]);
	return 0;
}

/* Everything logged since the last call, NUL-terminated (static buffer). */
static const char *drain(void)
{
	static char buf[65536];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(buf) - 1 && (r = read(pipefd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return buf;
}

/* Parse one line as JSON (fails the test if it is not an object). */
static yajl_val parse(const char *line)
{
	char err[256];
	yajl_val v = yajl_tree_parse(line, err, sizeof(err));
	if (!v || !YAJL_IS_OBJECT(v))
		fail_msg("not a JSON object (%s): %s", err, line);
	return v;
}

static const char *field(yajl_val obj, const char *key)
{
	const char *path[] = {key, NULL};
	yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
	if (!v)
		return NULL;
	return YAJL_IS_NULL(v) ? "(null)" : YAJL_GET_STRING(v);
}

static void line_format_is_exact(void **state)
{
	(void)state;
	log_info("tenant", "namespace created", "tenant", "a", "ns", "nimbus-a", NULL);
	const char *out = drain();
	/* {"ts":"2026-11-25T14:00:00.123Z", is 33 bytes. */
	assert_true(strlen(out) > 33);
	assert_memory_equal(out, "{\"ts\":\"", 7);
	const char *ts = out + 7;
	for (int i = 0; i < 24; i++) {
		char c = ts[i];
		if (i == 4 || i == 7)
			assert_int_equal(c, '-');
		else if (i == 10)
			assert_int_equal(c, 'T');
		else if (i == 13 || i == 16)
			assert_int_equal(c, ':');
		else if (i == 19)
			assert_int_equal(c, '.');
		else if (i == 23)
			assert_int_equal(c, 'Z');
		else
			assert_true(c >= '0' && c <= '9');
	}
	assert_string_equal(out + 31,
			    "\",\"level\":\"info\",\"logger\":\"tenant\",\"msg\":\"namespace created\","
			    "\"tenant\":\"a\",\"ns\":\"nimbus-a\"}\n");
}

static void levels_filter_lines(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_WARN);
	assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
	assert_false(log_enabled(LOG_LEVEL_INFO));
	assert_true(log_enabled(LOG_LEVEL_ERROR));
	log_debug("x", "d", NULL);
	log_info("x", "i", NULL);
	log_printf(LOG_LEVEL_INFO, "x", "formatted %d", 1);
	assert_string_equal(drain(), "");
	log_warn("x", "w", NULL);
	log_error("x", "e", NULL);
	log_fields(LOG_LEVEL_ERROR, "x", "f", NULL);
	const char *out = drain();
	assert_non_null(strstr(out, "\"level\":\"warn\",\"logger\":\"x\",\"msg\":\"w\"}\n"));
	assert_non_null(strstr(out, "\"level\":\"error\",\"logger\":\"x\",\"msg\":\"e\"}\n"));
	assert_non_null(strstr(out, "\"level\":\"error\",\"logger\":\"x\",\"msg\":\"f\"}\n"));
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("x", "d", NULL);
	assert_non_null(strstr(drain(), "\"level\":\"debug\""));
}

static void level_names_parse(void **state)
{
	(void)state;
	enum log_level l;
	struct kerr e = {0};
	assert_int_equal(log_level_parse("warn", &l, &e), 0);
	assert_int_equal(l, LOG_LEVEL_WARN);
	assert_int_equal(log_level_parse("debug", &l, &e), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_parse("WARN", &l, &e), KERR_INVAL);
	assert_string_equal(e.message, "log level 'WARN' is not one of debug, info, warn, error");
	assert_string_equal(log_level_name(LOG_LEVEL_ERROR), "error");
	assert_string_equal(log_level_name((enum log_level)42), "unknown");
}

static void json_escaping(void **state)
{
	(void)state;
	log_info("a\"b", "quote \" backslash \\ newline \n tab \t cr \r ctl \x01 del \x7f", NULL);
	const char *out = drain();
	assert_non_null(strstr(out, "\"logger\":\"a\\\"b\""));
	assert_non_null(strstr(out, "\"msg\":\"quote \\\" backslash \\\\ newline \\n tab \\t cr \\r "
				    "ctl \\u0001 del \\u007f\""));
	yajl_val v = parse(out);
	assert_string_equal(field(v, "msg"), "quote \" backslash \\ newline \n tab \t cr \r ctl \x01 del \x7f");
	yajl_tree_free(v);
}

static void invalid_utf8_is_replaced(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
		{"a\xff" "b", "a\xef\xbf\xbd" "b"},
		/* a lead byte cut off at the end of the string */
		{"end\xc3", "end\xef\xbf\xbd"},
		/* overlong '/' : two invalid bytes, two replacements */
		{"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
		/* a UTF-16 surrogate: ED A0 80 is three replacements */
		{"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		/* past U+10FFFF */
		{"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
		/* a valid prefix of a 3-byte sequence then ASCII: one replacement */
		{"\xe2\x82x", "\xef\xbf\xbdx"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_info("utf8", "m", "v", cases[i].in, NULL);
		yajl_val v = parse(drain());
		assert_string_equal(field(v, "v"), cases[i].want);
		yajl_tree_free(v);
	}
}

static void secrets_are_redacted(void **state)
{
	(void)state;
	log_info("db", "connecting", "host", "db.local", "password", "hunter2", "DB_PASSWORD", "p", "jwtSecret", "s",
		 "token", "t", "apiKey", "k", "object", "ns/name", NULL);
	const char *out = drain();
	assert_null(strstr(out, "hunter2"));
	yajl_val v = parse(out);
	assert_string_equal(field(v, "host"), "db.local");
	assert_string_equal(field(v, "password"), "[redacted]");
	assert_string_equal(field(v, "DB_PASSWORD"), "[redacted]");
	assert_string_equal(field(v, "jwtSecret"), "[redacted]");
	assert_string_equal(field(v, "token"), "[redacted]");
	assert_string_equal(field(v, "apiKey"), "[redacted]");
	assert_string_equal(field(v, "object"), "ns/name");
	yajl_tree_free(v);
}

static void null_value_ends_fields(void **state)
{
	(void)state;
	const char *maybe = NULL;
	log_info("x", "m", "a", "1", "b", maybe, NULL);
	const char *out = drain();
	assert_non_null(strstr(out, "\"a\":\"1\",\"b\":null}\n"));
	yajl_val v = parse(out);
	yajl_tree_free(v);
}

static void long_values_are_cut(void **state)
{
	(void)state;
	size_t n = LOG_MAX_VALUE + 100;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	log_info("x", "m", "body", big, NULL);
	yajl_val v = parse(drain());
	const char *got = field(v, "body");
	assert_int_equal(strlen(got), LOG_MAX_VALUE + 3);
	assert_string_equal(got + LOG_MAX_VALUE, "...");
	yajl_tree_free(v);

	/* A cut never splits a UTF-8 sequence: 3-byte euro signs. */
	for (size_t i = 0; i + 3 <= n; i += 3)
		memcpy(big + i, "\xe2\x82\xac", 3);
	big[n - n % 3] = '\0';
	log_info("x", "m", "body", big, NULL);
	v = parse(drain());
	got = field(v, "body");
	assert_null(strstr(got, "\xef\xbf\xbd"));
	assert_string_equal(got + strlen(got) - 3, "...");
	yajl_tree_free(v);
	free(big);
}

static void printf_variant(void **state)
{
	(void)state;
	log_printf(LOG_LEVEL_WARN, "sched", "bound %d of %d pods to %s", 3, 4, "node-1");
	const char *out = drain();
	assert_non_null(strstr(out, "\"level\":\"warn\",\"logger\":\"sched\",\"msg\":\"bound 3 of 4 pods to node-1\"}\n"));

	/* Longer than the stack buffer: formatted on the heap, whole. */
	char big[3000];
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_printf(LOG_LEVEL_INFO, "x", "<%s>", big);
	yajl_val v = parse(drain());
	assert_int_equal(strlen(field(v, "msg")), sizeof(big) + 1);
	yajl_tree_free(v);
}

#define THREADS 4
#define LINES 500

static void *log_worker(void *arg)
{
	char id[16], pad[200];
	snprintf(id, sizeof(id), "%d", (int)(intptr_t)arg);
	memset(pad, 'a' + (int)(intptr_t)arg, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < LINES; i++)
		log_info("worker", "tick", "thread", id, "pad", pad, NULL);
	return NULL;
}

static void concurrent_lines_never_interleave(void **state)
{
	(void)state;
	char path[] = "/tmp/test_log_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	log_set_fd(fd);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, log_worker, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	log_set_fd(pipefd[1]);

	FILE *f = fdopen(fd, "r");
	assert_non_null(f);
	rewind(f);
	char line[1024];
	int count[THREADS] = {0}, total = 0;
	while (fgets(line, sizeof(line), f)) {
		yajl_val v = parse(line);
		int id = atoi(field(v, "thread"));
		assert_true(id >= 0 && id < THREADS);
		const char *pad = field(v, "pad");
		assert_int_equal(strlen(pad), 199);
		assert_int_equal(strspn(pad, (char[]){(char)('a' + id), 0}), 199);
		count[id]++;
		total++;
		yajl_tree_free(v);
	}
	fclose(f);
	assert_int_equal(total, THREADS * LINES);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(count[i], LINES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(line_format_is_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(levels_filter_lines, setup, teardown),
		cmocka_unit_test(level_names_parse),
		cmocka_unit_test_setup_teardown(json_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_utf8_is_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(secrets_are_redacted, setup, teardown),
		cmocka_unit_test_setup_teardown(null_value_ends_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(long_values_are_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(printf_variant, setup, teardown),
		cmocka_unit_test_setup_teardown(concurrent_lines_never_interleave, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
