#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "kerr.h"
#include "reflector_sm.h"

static struct reflector_action step(struct reflector_sm *sm, enum reflector_input_type t, const char *rv, const char *cont)
{
	struct reflector_input in = {.type = t, .resource_version = rv, .continue_token = cont};
	struct reflector_action a;
	assert_int_equal(reflector_sm_step(sm, &in, &a), 0);
	return a;
}

static struct reflector_action commit(struct reflector_sm *sm)
{
	struct reflector_action a;
	assert_int_equal(reflector_sm_step(sm, NULL, &a), 0);
	return a;
}

/* Drive a fresh machine through a one-page list into an open watch at rv. */
static void to_watching(struct reflector_sm *sm, const char *rv)
{
	struct reflector_action a = step(sm, REFLECTOR_IN_START, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_LIST);
	a = step(sm, REFLECTOR_IN_LIST_PAGE, rv, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_COMMIT);
	a = commit(sm);
	assert_int_equal(a.type, REFLECTOR_DO_WATCH);
	assert_string_equal(a.resource_version, rv);
	a = step(sm, REFLECTOR_IN_WATCH_OPENED, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_NOTHING);
	assert_int_equal(sm->state, REFLECTOR_WATCHING);
}

static void paged_list_then_watch_from_last_page_rv(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 1);
	struct reflector_action a = step(&sm, REFLECTOR_IN_START, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_LIST);
	assert_null(a.continue_token);
	a = step(&sm, REFLECTOR_IN_LIST_PAGE, "100", "tok1");
	assert_int_equal(a.type, REFLECTOR_DO_LIST);
	assert_string_equal(a.continue_token, "tok1");
	a = step(&sm, REFLECTOR_IN_LIST_PAGE, "100", "");
	assert_int_equal(a.type, REFLECTOR_DO_COMMIT);
	a = commit(&sm);
	assert_int_equal(a.type, REFLECTOR_DO_WATCH);
	assert_string_equal(a.resource_version, "100");
	assert_int_equal(sm.relists, 1);
	reflector_sm_free(&sm);
}

static void events_and_bookmarks_advance_rv(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 1);
	to_watching(&sm, "5");
	step(&sm, REFLECTOR_IN_EVENT, "6", NULL);
	step(&sm, REFLECTOR_IN_BOOKMARK, "9", NULL);
	struct reflector_action a = step(&sm, REFLECTOR_IN_WATCH_ENDED, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_WATCH);
	assert_string_equal(a.resource_version, "9");
	assert_int_equal(sm.relists, 1);
	reflector_sm_free(&sm);
}

static void gone_relists_from_scratch(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 1);
	to_watching(&sm, "5");
	struct reflector_action a = step(&sm, REFLECTOR_IN_GONE, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_LIST);
	assert_null(a.continue_token);
	assert_int_equal(sm.relists, 2);
	/* an expired continue token mid-list also restarts the list */
	a = step(&sm, REFLECTOR_IN_LIST_PAGE, "20", "tok");
	assert_string_equal(a.continue_token, "tok");
	a = step(&sm, REFLECTOR_IN_GONE, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_LIST);
	assert_null(a.continue_token);
	assert_int_equal(sm.relists, 3);
	reflector_sm_free(&sm);
}

static void watch_failure_backs_off_then_resumes_from_rv(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 42);
	to_watching(&sm, "7");
	step(&sm, REFLECTOR_IN_EVENT, "8", NULL);
	struct reflector_action a = step(&sm, REFLECTOR_IN_WATCH_FAILED, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_SLEEP);
	assert_in_range(a.sleep_ms, 600, 1000);
	a = step(&sm, REFLECTOR_IN_BACKOFF_DONE, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_WATCH);
	assert_string_equal(a.resource_version, "8");
	assert_int_equal(sm.relists, 1);
	reflector_sm_free(&sm);
}

static void backoff_doubles_to_cap_and_resets_on_progress(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 7);
	to_watching(&sm, "1");
	uint32_t steps[12];
	for (int i = 0; i < 12; i++) {
		struct reflector_action a = step(&sm, REFLECTOR_IN_WATCH_FAILED, NULL, NULL);
		assert_int_equal(a.type, REFLECTOR_DO_SLEEP);
		assert_true(a.sleep_ms <= 30000);
		steps[i] = sm.backoff_ms;
		a = step(&sm, REFLECTOR_IN_BACKOFF_DONE, NULL, NULL);
		assert_int_equal(a.type, REFLECTOR_DO_WATCH);
	}
	assert_int_equal(steps[0], 800);
	assert_int_equal(steps[1], 1600);
	assert_int_equal(steps[2], 3200);
	assert_int_equal(steps[11], 30000);
	step(&sm, REFLECTOR_IN_EVENT, "2", NULL);
	struct reflector_action a = step(&sm, REFLECTOR_IN_WATCH_FAILED, NULL, NULL);
	assert_int_equal(sm.backoff_ms, 800);
	assert_in_range(a.sleep_ms, 600, 1000);
	reflector_sm_free(&sm);
}

static void jitter_spreads_sleeps(void **state)
{
	(void)state;
	uint32_t first[4];
	for (int s = 0; s < 4; s++) {
		struct reflector_sm sm;
		reflector_sm_init(&sm, (uint64_t)(s + 1) * 7919);
		to_watching(&sm, "1");
		first[s] = step(&sm, REFLECTOR_IN_WATCH_FAILED, NULL, NULL).sleep_ms;
		reflector_sm_free(&sm);
	}
	assert_false(first[0] == first[1] && first[1] == first[2] && first[2] == first[3]);
}

static void list_failure_restarts_list_from_first_page(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 3);
	step(&sm, REFLECTOR_IN_START, NULL, NULL);
	step(&sm, REFLECTOR_IN_LIST_PAGE, "10", "tok");
	struct reflector_action a = step(&sm, REFLECTOR_IN_LIST_FAILED, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_SLEEP);
	a = step(&sm, REFLECTOR_IN_BACKOFF_DONE, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_LIST);
	assert_null(a.continue_token);
	reflector_sm_free(&sm);
}

static void watch_failure_before_any_rv_relists(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 3);
	step(&sm, REFLECTOR_IN_START, NULL, NULL);
	/* a list whose last page carried no rv cannot be watched from */
	assert_int_equal(step(&sm, REFLECTOR_IN_LIST_PAGE, NULL, NULL).type, REFLECTOR_DO_COMMIT);
	assert_int_equal(commit(&sm).type, REFLECTOR_DO_WATCH);
	step(&sm, REFLECTOR_IN_WATCH_FAILED, NULL, NULL);
	assert_int_equal(step(&sm, REFLECTOR_IN_BACKOFF_DONE, NULL, NULL).type, REFLECTOR_DO_LIST);
	reflector_sm_free(&sm);
}

static void inputs_out_of_place_are_rejected(void **state)
{
	(void)state;
	struct reflector_sm sm;
	reflector_sm_init(&sm, 3);
	struct reflector_action a;
	struct reflector_input ev = {.type = REFLECTOR_IN_EVENT, .resource_version = "1"};
	step(&sm, REFLECTOR_IN_START, NULL, NULL);
	assert_int_equal(reflector_sm_step(&sm, &ev, &a), KERR_INVAL);
	assert_int_equal(reflector_sm_step(&sm, NULL, &a), KERR_INVAL);
	struct reflector_input done = {.type = REFLECTOR_IN_BACKOFF_DONE};
	assert_int_equal(reflector_sm_step(&sm, &done, &a), KERR_INVAL);
	a = step(&sm, REFLECTOR_IN_STOP, NULL, NULL);
	assert_int_equal(a.type, REFLECTOR_DO_STOP);
	struct reflector_input start = {.type = REFLECTOR_IN_START};
	assert_int_equal(reflector_sm_step(&sm, &start, &a), KERR_INVAL);
	assert_string_equal(reflector_state_name(sm.state), "stopped");
	reflector_sm_free(&sm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(paged_list_then_watch_from_last_page_rv),
		cmocka_unit_test(events_and_bookmarks_advance_rv),
		cmocka_unit_test(gone_relists_from_scratch),
		cmocka_unit_test(watch_failure_backs_off_then_resumes_from_rv),
		cmocka_unit_test(backoff_doubles_to_cap_and_resets_on_progress),
		cmocka_unit_test(jitter_spreads_sleeps),
		cmocka_unit_test(list_failure_restarts_list_from_first_page),
		cmocka_unit_test(watch_failure_before_any_rv_relists),
		cmocka_unit_test(inputs_out_of_place_are_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
