#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "kerr.h"

static void codes_are_negative_and_named(void **state)
{
	(void)state;
	assert_int_equal(KERR_NOMEM, -1);
	assert_true((int)KERR_DB < (int)KERR_NOMEM);
	assert_string_equal(kerr_name(KERR_NOT_FOUND), "NOT_FOUND");
	assert_string_equal(kerr_strerror(KERR_GONE), "resource version too old (410)");
	assert_string_equal(kerr_strerror(0), "success");
	assert_string_equal(kerr_strerror(-1000), "unknown error");
	assert_string_equal(kerr_name(5), "UNKNOWN");
}

static void first_message_wins(void **state)
{
	(void)state;
	struct kerr e = {0};
	assert_int_equal(kerr_set(&e, KERR_CONNECT, "dial %s", "127.0.0.1:1"), KERR_CONNECT);
	assert_int_equal(kerr_set(&e, KERR_IO, "later"), KERR_IO);
	assert_int_equal(e.code, KERR_CONNECT);
	assert_string_equal(e.message, "dial 127.0.0.1:1");
	kerr_clear(&e);
	assert_int_equal(e.code, 0);
	assert_int_equal(kerr_set(NULL, KERR_IO, "ignored"), KERR_IO);
}

static void http_status_mapping(void **state)
{
	(void)state;
	assert_int_equal(kerr_from_http(200, NULL), 0);
	assert_int_equal(kerr_from_http(201, NULL), 0);
	assert_int_equal(kerr_from_http(404, "NotFound"), KERR_NOT_FOUND);
	assert_int_equal(kerr_from_http(409, "AlreadyExists"), KERR_ALREADY_EXISTS);
	assert_int_equal(kerr_from_http(409, "Conflict"), KERR_CONFLICT);
	assert_int_equal(kerr_from_http(410, "Expired"), KERR_GONE);
	assert_int_equal(kerr_from_http(422, "Invalid"), KERR_INVALID);
	assert_int_equal(kerr_from_http(503, NULL), KERR_SERVER);
	assert_int_equal(kerr_from_http(418, NULL), KERR_HTTP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(codes_are_negative_and_named),
		cmocka_unit_test(first_message_wins),
		cmocka_unit_test(http_status_mapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
