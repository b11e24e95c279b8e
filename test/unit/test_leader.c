/* The pure parts of leader election: the acquire decision, the
 * records written, and the Lease JSON read and written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "kerr.h"
#include "leader.h"

/* 2023-11-14T22:13:20.123456Z */
#define T0 1700000000123456LL

/* ---- the decision ------------------------------------------------------------ */

static struct leader_record record(const char *holder, int32_t duration_s)
{
	struct leader_record r;
	memset(&r, 0, sizeof(r));
	strcpy(r.holder, holder);
	r.lease_duration_s = duration_s;
	r.acquire_time_us = T0;
	r.renew_time_us = T0;
	r.transitions = 3;
	return r;
}

static void decide_nobody_holds_it_acquire(void **state)
{
	(void)state;
	struct leader_record r = record("", 15);
	int64_t valid = -1;
	assert_int_equal(leader_decide(&r, "me", 1000, 1000, &valid), LEADER_ACQUIRE);
	assert_int_equal(valid, 0);
}

static void decide_ours_renew_even_when_expired(void **state)
{
	(void)state;
	struct leader_record r = record("me", 15);
	assert_int_equal(leader_decide(&r, "me", 0, 1000000, NULL), LEADER_RENEW);
	/* A prefix of our identity is someone else. */
	r = record("m", 15);
	assert_int_equal(leader_decide(&r, "me", 0, 1000, NULL), LEADER_WAIT);
}

static void decide_other_holder_valid_until_local_observation_plus_duration(void **state)
{
	(void)state;
	struct leader_record r = record("other", 15);
	int64_t valid = 0;
	assert_int_equal(leader_decide(&r, "me", 5000, 5000, &valid), LEADER_WAIT);
	assert_int_equal(valid, 15000);
	assert_int_equal(leader_decide(&r, "me", 5000, 19999, &valid), LEADER_WAIT);
	assert_int_equal(valid, 1);
	/* Valid strictly before observed + duration, as client-go's After(). */
	assert_int_equal(leader_decide(&r, "me", 5000, 20000, &valid), LEADER_ACQUIRE);
	assert_int_equal(valid, 0);
	assert_int_equal(leader_decide(&r, "me", 5000, 90000, NULL), LEADER_ACQUIRE);
}

static void decide_ignores_the_holders_clock(void **state)
{
	(void)state;
	/* renewTime in the far future (a holder whose clock runs ahead): still
	 * expires by our observation. */
	struct leader_record r = record("other", 10);
	r.renew_time_us = 4102444800000000LL; /* 2100-01-01 */
	assert_int_equal(leader_decide(&r, "me", 1000, 11000, NULL), LEADER_ACQUIRE);
	/* renewTime long past (a holder whose clock lags): valid, we just saw it change. */
	r.renew_time_us = 1000000;
	assert_int_equal(leader_decide(&r, "me", 1000, 1001, NULL), LEADER_WAIT);
}

static void decide_without_duration_counts_as_expired(void **state)
{
	(void)state;
	struct leader_record r = record("other", 0);
	assert_int_equal(leader_decide(&r, "me", 1000, 1000, NULL), LEADER_ACQUIRE);
	r.lease_duration_s = -5;
	assert_int_equal(leader_decide(&r, "me", 1000, 1000, NULL), LEADER_ACQUIRE);
}

static void next_record_keeps_or_counts_transitions(void **state)
{
	(void)state;
	struct leader_record prev = record("me", 15), out;
	leader_next_record(&prev, LEADER_RENEW, "me", 10, T0 + 5, &out);
	assert_string_equal(out.holder, "me");
	assert_int_equal(out.lease_duration_s, 10);
	assert_int_equal(out.acquire_time_us, T0);
	assert_int_equal(out.renew_time_us, T0 + 5);
	assert_int_equal(out.transitions, 3);

	prev = record("other", 15);
	leader_next_record(&prev, LEADER_ACQUIRE, "me", 10, T0 + 5, &out);
	assert_string_equal(out.holder, "me");
	assert_int_equal(out.acquire_time_us, T0 + 5);
	assert_int_equal(out.renew_time_us, T0 + 5);
	assert_int_equal(out.transitions, 4);

	/* Renewing a record without acquireTime gives it one. */
	prev = record("me", 15);
	prev.acquire_time_us = 0;
	leader_next_record(&prev, LEADER_RENEW, "me", 10, T0 + 5, &out);
	assert_int_equal(out.acquire_time_us, T0 + 5);

	leader_next_record(NULL, LEADER_ACQUIRE, "me", 10, T0, &out);
	assert_int_equal(out.transitions, 0);
	assert_int_equal(out.acquire_time_us, T0);
}

static void release_record_empties_holder_for_one_second(void **state)
{
	(void)state;
	struct leader_record prev = record("me", 15), out;
	leader_release_record(&prev, T0 + 9, &out);
	assert_string_equal(out.holder, "");
	assert_int_equal(out.lease_duration_s, 1);
	assert_int_equal(out.acquire_time_us, T0 + 9);
	assert_int_equal(out.renew_time_us, T0 + 9);
	assert_int_equal(out.transitions, 3);
	/* A candidate may take a released lease at once. */
	assert_int_equal(leader_decide(&out, "next", 100, 100, NULL), LEADER_ACQUIRE);
}

static void record_equal_compares_every_field(void **state)
{
	(void)state;
	struct leader_record a = record("x", 15), b = a;
	assert_true(leader_record_equal(&a, &b));
	b.renew_time_us++;
	assert_false(leader_record_equal(&a, &b));
	b = a;
	b.transitions++;
	assert_false(leader_record_equal(&a, &b));
	b = a;
	b.lease_duration_s++;
	assert_false(leader_record_equal(&a, &b));
	b = a;
	b.acquire_time_us++;
	assert_false(leader_record_equal(&a, &b));
	b = a;
	strcpy(b.holder, "y");
	assert_false(leader_record_equal(&a, &b));
}

/* ---- Lease JSON ---------------------------------------------------------- */

/* A Lease as the apiserver returns it (kube-controller-manager's, trimmed). */
static const char lease_json[] =
	"{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
	"\"metadata\":{\"name\":\"nimbus\",\"namespace\":\"kube-system\",\"uid\":\"0c4d\","
	"\"resourceVersion\":\"4711\",\"creationTimestamp\":\"2023-11-14T22:00:00Z\","
	"\"labels\":{\"team\":\"infra\"},\"annotations\":{\"note\":\"keep \\\"me\\\"\"},"
	"\"managedFields\":[{\"manager\":\"nimbus\",\"operation\":\"Update\",\"fieldsV1\":{\"f:spec\":{}}}]},"
	"\"spec\":{\"holderIdentity\":\"pod-a_1\",\"leaseDurationSeconds\":15,"
	"\"acquireTime\":\"2023-11-14T22:00:00.000000Z\",\"renewTime\":\"2023-11-14T22:13:20.123456Z\","
	"\"leaseTransitions\":7,\"preferredHolder\":\"pod-b_2\",\"ratio\":1.50}}";

static void parse_reads_the_record(void **state)
{
	(void)state;
	struct leader_record r;
	struct kerr e = {0};
	assert_int_equal(leader_record_parse(lease_json, &r, &e), 0);
	assert_string_equal(r.holder, "pod-a_1");
	assert_int_equal(r.lease_duration_s, 15);
	assert_int_equal(r.acquire_time_us, 1699999200000000LL);
	assert_int_equal(r.renew_time_us, T0);
	assert_int_equal(r.transitions, 7);
}

static void parse_absent_and_null_fields_are_zero(void **state)
{
	(void)state;
	struct leader_record r;
	struct kerr e = {0};
	assert_int_equal(leader_record_parse("{\"metadata\":{\"name\":\"x\"}}", &r, &e), 0);
	assert_string_equal(r.holder, "");
	assert_int_equal(r.lease_duration_s, 0);
	assert_int_equal(r.renew_time_us, 0);
	assert_int_equal(leader_record_parse("{\"kind\":\"Lease\",\"spec\":{\"holderIdentity\":null,"
					     "\"renewTime\":null,\"leaseTransitions\":null}}", &r, &e), 0);
	assert_string_equal(r.holder, "");
	assert_int_equal(leader_record_parse("{\"spec\":null}", &r, &e), 0);
}

static void parse_truncates_a_long_holder(void **state)
{
	(void)state;
	char json[1024];
	char holder[400];
	memset(holder, 'h', sizeof(holder) - 1);
	holder[sizeof(holder) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"spec\":{\"holderIdentity\":\"%s\"}}", holder);
	struct leader_record r;
	struct kerr e = {0};
	assert_int_equal(leader_record_parse(json, &r, &e), 0);
	assert_int_equal(strlen(r.holder), LEADER_IDENTITY_MAX - 1);
}

static void assert_parse_fails(const char *json, const char *message_part)
{
	struct leader_record r;
	struct kerr e = {0};
	assert_int_equal(leader_record_parse(json, &r, &e), KERR_PARSE);
	assert_int_equal(e.code, KERR_PARSE);
	if (!strstr(e.message, message_part))
		fail_msg("message \"%s\" lacks \"%s\"", e.message, message_part);
	assert_string_equal(r.holder, "");
}

static void parse_rejects_wrong_types_and_kinds(void **state)
{
	(void)state;
	assert_parse_fails("{\"spec\":{\"holderIdentity\":\"a\",\"renewTime\":\"yesterday\"}}", "spec.renewTime");
	assert_parse_fails("{\"spec\":{\"holderIdentity\":5}}", "spec.holderIdentity");
	assert_parse_fails("{\"spec\":{\"leaseDurationSeconds\":\"15\"}}", "spec.leaseDurationSeconds");
	assert_parse_fails("{\"spec\":{\"leaseDurationSeconds\":1.5}}", "spec.leaseDurationSeconds");
	assert_parse_fails("{\"spec\":{\"leaseTransitions\":4294967296}}", "spec.leaseTransitions");
	assert_parse_fails("{\"spec\":[]}", "spec");
	assert_parse_fails("{\"kind\":\"Status\",\"code\":404}", "kind Status");
	assert_parse_fails("[1]", "object");
	assert_parse_fails("{\"spec\":", "malformed");
	assert_parse_fails(NULL, "no body");
}

/* Parse a generated body, for structural checks. */
static yajl_val tree(const char *json)
{
	char err[128];
	yajl_val v = yajl_tree_parse(json, err, sizeof(err));
	if (!v)
		fail_msg("generated invalid JSON (%s): %s", err, json);
	return v;
}

static const char *str_at(yajl_val v, const char *a, const char *b, const char *c)
{
	const char *path[] = {a, b, c, NULL};
	yajl_val f = yajl_tree_get(v, path, yajl_t_string);
	return f ? f->u.string : NULL;
}

static void create_body_names_the_lease_and_holds_the_record(void **state)
{
	(void)state;
	struct leader_record r, back;
	leader_next_record(NULL, LEADER_ACQUIRE, "pod \"a\"", 15, T0, &r);
	char *body = NULL;
	struct kerr e = {0};
	assert_int_equal(leader_create_body("kube-system", "nimbus", &r, &body, &e), 0);
	yajl_val v = tree(body);
	assert_string_equal(str_at(v, "apiVersion", NULL, NULL), "coordination.k8s.io/v1");
	assert_string_equal(str_at(v, "kind", NULL, NULL), "Lease");
	assert_string_equal(str_at(v, "metadata", "name", NULL), "nimbus");
	assert_string_equal(str_at(v, "metadata", "namespace", NULL), "kube-system");
	assert_null(str_at(v, "metadata", "resourceVersion", NULL));
	assert_string_equal(str_at(v, "spec", "renewTime", NULL), "2023-11-14T22:13:20.123456Z");
	yajl_tree_free(v);
	assert_int_equal(leader_record_parse(body, &back, &e), 0);
	assert_true(leader_record_equal(&r, &back));
	free(body);
}

static void create_body_refuses_invalid_utf8(void **state)
{
	(void)state;
	struct leader_record r;
	leader_next_record(NULL, LEADER_ACQUIRE, "bad\xff", 15, T0, &r);
	char *body = (char *)"untouched";
	struct kerr e = {0};
	assert_int_equal(leader_create_body("ns", "x", &r, &body, &e), KERR_INVAL);
	assert_null(body);
	assert_non_null(strstr(e.message, "UTF-8"));
}

static void update_body_replaces_only_the_record(void **state)
{
	(void)state;
	struct leader_record prev, r, back;
	struct kerr e = {0};
	assert_int_equal(leader_record_parse(lease_json, &prev, &e), 0);
	leader_next_record(&prev, LEADER_ACQUIRE, "pod-b_2", 10, T0 + 1000000, &r);
	char *body = NULL;
	assert_int_equal(leader_update_body(lease_json, &r, &body, &e), 0);

	assert_int_equal(leader_record_parse(body, &back, &e), 0);
	assert_true(leader_record_equal(&r, &back));
	assert_int_equal(back.transitions, 8);

	yajl_val v = tree(body);
	/* The precondition and everything not ours, exactly as read. */
	assert_string_equal(str_at(v, "metadata", "resourceVersion", NULL), "4711");
	assert_string_equal(str_at(v, "metadata", "uid", NULL), "0c4d");
	assert_string_equal(str_at(v, "metadata", "labels", "team"), "infra");
	assert_string_equal(str_at(v, "metadata", "annotations", "note"), "keep \"me\"");
	assert_string_equal(str_at(v, "spec", "preferredHolder", NULL), "pod-b_2");
	assert_string_equal(str_at(v, "spec", "renewTime", NULL), "2023-11-14T22:13:21.123456Z");
	const char *mf[] = {"metadata", "managedFields", NULL};
	yajl_val arr = yajl_tree_get(v, mf, yajl_t_array);
	assert_non_null(arr);
	assert_int_equal(arr->u.array.len, 1);
	yajl_tree_free(v);
	/* The raw number text survives. */
	assert_non_null(strstr(body, "\"ratio\":1.50"));
	/* Each field once: ours replaced, not appended. */
	assert_null(strstr(strstr(body, "holderIdentity") + 1, "holderIdentity"));
	assert_null(strstr(strstr(body, "leaseTransitions") + 1, "leaseTransitions"));
	free(body);
}

static void update_body_release_writes_an_empty_holder(void **state)
{
	(void)state;
	struct leader_record prev, r, back;
	struct kerr e = {0};
	assert_int_equal(leader_record_parse(lease_json, &prev, &e), 0);
	leader_release_record(&prev, T0, &r);
	char *body = NULL;
	assert_int_equal(leader_update_body(lease_json, &r, &body, &e), 0);
	assert_non_null(strstr(body, "\"holderIdentity\":\"\""));
	assert_non_null(strstr(body, "\"leaseDurationSeconds\":1"));
	assert_int_equal(leader_record_parse(body, &back, &e), 0);
	assert_true(leader_record_equal(&r, &back));
	free(body);
}

static void update_body_adds_a_missing_spec(void **state)
{
	(void)state;
	struct leader_record r, back;
	leader_next_record(NULL, LEADER_ACQUIRE, "me", 15, T0, &r);
	char *body = NULL;
	struct kerr e = {0};
	assert_int_equal(leader_update_body("{\"kind\":\"Lease\",\"metadata\":{\"resourceVersion\":\"9\"}}", &r, &body,
					    &e), 0);
	assert_int_equal(leader_record_parse(body, &back, &e), 0);
	assert_true(leader_record_equal(&r, &back));
	free(body);
}

static void update_body_requires_a_resource_version(void **state)
{
	(void)state;
	struct leader_record r;
	leader_next_record(NULL, LEADER_ACQUIRE, "me", 15, T0, &r);
	static const char *const bad[] = {
		"{\"kind\":\"Lease\",\"metadata\":{\"name\":\"x\"}}",
		"{\"metadata\":{\"resourceVersion\":\"\"}}",
		"{\"metadata\":{\"resourceVersion\":12}}",
		"{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"1\"}}",
		"not json",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *body = NULL;
		struct kerr e = {0};
		assert_int_equal(leader_update_body(bad[i], &r, &body, &e), KERR_PARSE);
		assert_null(body);
		assert_true(e.message[0] != '\0');
	}
}

/* ---- options and lifecycle, against a server that refuses connections ---- */

static struct kube_client *unreachable_client(void)
{
	struct kube_config cfg = {.server = (char *)"https://127.0.0.1:1"};
	struct kube_client_options o = {.timeout_ms = 1000, .connect_timeout_ms = 500};
	struct kube_client *c = NULL;
	struct kerr e = {0};
	assert_int_equal(kube_client_new(&c, &cfg, &o, &e), 0);
	return c;
}

static void assert_new_fails(struct kube_client *c, const struct leader_options *o, const char *message_part)
{
	struct leader *le = (struct leader *)1;
	struct kerr e = {0};
	assert_int_equal(leader_new(&le, c, o, &e), KERR_INVAL);
	assert_null(le);
	if (!strstr(e.message, message_part))
		fail_msg("message \"%s\" lacks \"%s\"", e.message, message_part);
}

static void new_validates_the_options(void **state)
{
	(void)state;
	struct kube_client *c = unreachable_client();
	struct leader_options o = {.namespace = "ns", .name = "lease"};
	o.namespace = "Bad_NS";
	assert_new_fails(c, &o, "namespace");
	o.namespace = "a.b";
	assert_new_fails(c, &o, "namespace");
	o.namespace = "ns";
	o.name = "x/y";
	assert_new_fails(c, &o, "lease name");
	o.name = "-x";
	assert_new_fails(c, &o, "lease name");
	o.name = "lease.v1";
	o.lease_duration_ms = 999;
	assert_new_fails(c, &o, "at least 1000 ms");
	o.lease_duration_ms = 4500; /* 4 s in the Lease */
	o.renew_deadline_ms = 4000;
	assert_new_fails(c, &o, "below the lease duration");
	o.renew_deadline_ms = 3000;
	o.retry_period_ms = 2500;
	assert_new_fails(c, &o, "1.2 x the retry period");
	o.retry_period_ms = 500;
	o.identity = "bad\xff";
	assert_new_fails(c, &o, "UTF-8");
	char longid[LEADER_IDENTITY_MAX + 1];
	memset(longid, 'i', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	o.identity = longid;
	assert_new_fails(c, &o, "longer than");
	o.identity = "pod-a";
	struct leader *le = NULL;
	struct kerr e = {0};
	assert_int_equal(leader_new(&le, c, &o, &e), 0);
	assert_string_equal(leader_identity(le), "pod-a");
	leader_free(le);
	kube_client_free(c);
}

static void new_defaults_identity_to_host_and_pid(void **state)
{
	(void)state;
	struct kube_client *c = unreachable_client();
	struct leader_options o = {.namespace = "ns", .name = "lease"};
	struct leader *le = NULL;
	struct kerr e = {0};
	assert_int_equal(leader_new(&le, c, &o, &e), 0);
	char suffix[32];
	snprintf(suffix, sizeof(suffix), "_%ld", (long)getpid());
	const char *id = leader_identity(le);
	assert_true(strlen(id) > strlen(suffix));
	assert_string_equal(id + strlen(id) - strlen(suffix), suffix);
	leader_free(le);
	kube_client_free(c);
}

struct log_capture {
	int warn;
	int debug;
	char first_warn[1024];
};

static void capture_log(void *arg, enum informer_log_level level, const char *kind, const char *msg)
{
	struct log_capture *lc = arg;
	assert_string_equal(kind, "Lease");
	if (level == INFORMER_LOG_WARN && lc->warn++ == 0)
		snprintf(lc->first_warn, sizeof(lc->first_warn), "%s", msg);
	if (level == INFORMER_LOG_DEBUG)
		lc->debug++;
}

static void never_called(void *arg)
{
	(void)arg;
	fail_msg("a leader callback ran without an apiserver");
}

static void unreachable_apiserver_never_leads_and_stops_promptly(void **state)
{
	(void)state;
	struct kube_client *c = unreachable_client();
	struct log_capture lc = {0};
	struct leader_options o = {.namespace = "ns", .name = "lease", .identity = "me",
				   .lease_duration_ms = 2000, .renew_deadline_ms = 1500, .retry_period_ms = 100,
				   .on_started_leading = never_called, .on_stopped_leading = never_called,
				   .log = capture_log, .log_arg = &lc};
	struct leader *le = NULL;
	struct kerr e = {0};
	assert_int_equal(leader_new(&le, c, &o, &e), 0);
	assert_int_equal(leader_start(le, &e), 0);
	assert_int_equal(leader_start(le, &e), KERR_INVAL);
	struct timespec ts = {0, 600 * 1000 * 1000};
	nanosleep(&ts, NULL);
	assert_false(leader_is_leader(le));
	/* Never held, so nothing to release and no request to wait for. */
	assert_int_equal(leader_stop(le, true), 0);
	assert_int_equal(leader_stop(le, true), 0);
	/* The same failure is a WARN once, then DEBUG. On a loaded machine a
	 * timeout can come between two refusals, and a different failure warns
	 * again, so only require that repeats were demoted. */
	assert_true(lc.warn >= 1);
	assert_true(lc.debug >= 1);
	if (!strstr(lc.first_warn, "lease ns/lease: reading failed") || !strstr(lc.first_warn, "cannot connect"))
		fail_msg("unexpected first warning: %s", lc.first_warn);
	leader_free(le);
	kube_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(decide_nobody_holds_it_acquire),
		cmocka_unit_test(decide_ours_renew_even_when_expired),
		cmocka_unit_test(decide_other_holder_valid_until_local_observation_plus_duration),
		cmocka_unit_test(decide_ignores_the_holders_clock),
		cmocka_unit_test(decide_without_duration_counts_as_expired),
		cmocka_unit_test(next_record_keeps_or_counts_transitions),
		cmocka_unit_test(release_record_empties_holder_for_one_second),
		cmocka_unit_test(record_equal_compares_every_field),
		cmocka_unit_test(parse_reads_the_record),
		cmocka_unit_test(parse_absent_and_null_fields_are_zero),
		cmocka_unit_test(parse_truncates_a_long_holder),
		cmocka_unit_test(parse_rejects_wrong_types_and_kinds),
		cmocka_unit_test(create_body_names_the_lease_and_holds_the_record),
		cmocka_unit_test(create_body_refuses_invalid_utf8),
		cmocka_unit_test(update_body_replaces_only_the_record),
		cmocka_unit_test(update_body_release_writes_an_empty_holder),
		cmocka_unit_test(update_body_adds_a_missing_spec),
		cmocka_unit_test(update_body_requires_a_resource_version),
		cmocka_unit_test(new_validates_the_options),
		cmocka_unit_test(new_defaults_identity_to_host_and_pid),
		cmocka_unit_test(unreachable_apiserver_never_leads_and_stops_promptly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
