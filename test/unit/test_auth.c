/* auth: JWT issue and verification (every refusal), secret hashing and
 * constant-time verification, API keys, the login rate limit and the
 * scoping rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>

#include "auth.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OTHER_SECRET "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define NOW 1800000000LL

/* A token signed with alg under key, with the given claims (NULL string:
 * left out; negative number: left out). */
static char *make_token(jwt_alg_t alg, const char *key, const char *iss, const char *aud, const char *sub,
			const char *role, const char *tenant, long long iat, long long exp)
{
	jwt_t *j = NULL;
	assert_int_equal(jwt_new(&j), 0);
	if (iss)
		assert_int_equal(jwt_add_grant(j, "iss", iss), 0);
	if (aud)
		assert_int_equal(jwt_add_grant(j, "aud", aud), 0);
	if (sub)
		assert_int_equal(jwt_add_grant(j, "sub", sub), 0);
	if (role)
		assert_int_equal(jwt_add_grant(j, "role", role), 0);
	if (tenant)
		assert_int_equal(jwt_add_grant(j, "tenant_id", tenant), 0);
	if (iat >= 0)
		assert_int_equal(jwt_add_grant_int(j, "iat", (long)iat), 0);
	if (exp >= 0)
		assert_int_equal(jwt_add_grant_int(j, "exp", (long)exp), 0);
	assert_int_equal(jwt_set_alg(j, alg, key ? (const unsigned char *)key : NULL, key ? (int)strlen(key) : 0), 0);
	char *s = jwt_encode_str(j);
	assert_non_null(s);
	jwt_free(j);
	return s;
}

static char *good(jwt_alg_t alg, const char *key)
{
	return make_token(alg, key, AUTH_ISSUER, AUTH_AUDIENCE, "tenant:a/key:1", "tenant", "tenant-a", NOW - 10,
			  NOW + 600);
}

/* Verify and expect a refusal whose message contains want. */
static void refused(const char *token, const char *want)
{
	struct auth_claims c;
	struct kerr e = {0};
	assert_int_equal(auth_token_verify(SECRET, token, NOW, &c, &e), KERR_UNAUTHORIZED);
	if (!strstr(e.message, want))
		fail_msg("message \"%s\" lacks \"%s\"", e.message, want);
	assert_int_equal(c.tenant_id[0], 0);
}

static void test_secret_checked(void **state)
{
	(void)state;
	struct kerr e = {0};
	assert_int_equal(auth_check_secret(NULL, &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "openssl rand -hex 32"));
	kerr_clear(&e);
	assert_int_equal(auth_check_secret("short", &e), KERR_CONFIG);
	assert_non_null(strstr(e.message, "at least 32"));
	assert_int_equal(auth_check_secret("0123456789012345678901234567890", NULL), KERR_CONFIG);
	assert_int_equal(auth_check_secret("01234567890123456789012345678901", NULL), 0);
}

static void test_issue_and_verify(void **state)
{
	(void)state;
	struct auth_claims in = {.role = AUTH_ROLE_TENANT}, out;
	snprintf(in.sub, sizeof(in.sub), "tenant:tenant-a/key:1");
	snprintf(in.tenant_id, sizeof(in.tenant_id), "tenant-a");
	char *tok = NULL;
	struct kerr e = {0};
	assert_int_equal(auth_token_issue(SECRET, &in, NOW, &tok, &e), 0);
	assert_int_equal(in.exp - in.iat, AUTH_TOKEN_TTL_S);
	assert_int_equal(auth_token_verify(SECRET, tok, NOW + 1, &out, &e), 0);
	assert_int_equal(out.role, AUTH_ROLE_TENANT);
	assert_string_equal(out.tenant_id, "tenant-a");
	assert_string_equal(out.sub, "tenant:tenant-a/key:1");
	assert_int_equal(out.exp, NOW + AUTH_TOKEN_TTL_S);
	/* Expired at exactly exp. */
	kerr_clear(&e);
	assert_int_equal(auth_token_verify(SECRET, tok, NOW + AUTH_TOKEN_TTL_S, &out, &e), KERR_UNAUTHORIZED);
	free(tok);

	struct auth_claims admin = {.role = AUTH_ROLE_ADMIN};
	snprintf(admin.sub, sizeof(admin.sub), "admin");
	assert_int_equal(auth_token_issue(SECRET, &admin, NOW, &tok, NULL), 0);
	assert_int_equal(auth_token_verify(SECRET, tok, NOW, &out, NULL), 0);
	assert_int_equal(out.role, AUTH_ROLE_ADMIN);
	assert_string_equal(out.tenant_id, "");
	free(tok);
	assert_int_equal(auth_token_issue("short", &admin, NOW, &tok, NULL), KERR_CONFIG);
	assert_null(tok);
}

static void test_expired(void **state)
{
	(void)state;
	char *t = make_token(JWT_ALG_HS256, SECRET, AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", "tenant-a", NOW - 1000,
			     NOW - 100);
	refused(t, "expired");
	free(t);
	t = make_token(JWT_ALG_HS256, SECRET, AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", "tenant-a", NOW + 3600,
		       NOW + 4000);
	refused(t, "future");
	free(t);
}

static void test_alg_none(void **state)
{
	(void)state;
	/* Debian's libjwt 1.10.2 already refuses alg "none" when given a key;
	 * auth also checks the algorithm itself, as upstream 1.10 does not. */
	char *t = good(JWT_ALG_NONE, NULL);
	refused(t, "");
	free(t);
	/* A hand-made unsigned token with a valid-looking header. */
	char *signed_tok = good(JWT_ALG_HS256, SECRET);
	char forged[2048];
	const char *payload = strchr(signed_tok, '.');
	const char *sig = strrchr(signed_tok, '.');
	/* {"alg":"none","typ":"JWT"} */
	snprintf(forged, sizeof(forged), "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%.*s.", (int)(sig - payload), payload);
	refused(forged, "");
	free(signed_tok);
}

static void test_other_algs_and_keys(void **state)
{
	(void)state;
	char *t = good(JWT_ALG_HS512, SECRET);
	refused(t, "only HS256");
	free(t);
	t = good(JWT_ALG_HS384, SECRET);
	refused(t, "only HS256");
	free(t);
	t = good(JWT_ALG_HS256, OTHER_SECRET);
	refused(t, "signature");
	free(t);
}

static void test_tampered(void **state)
{
	(void)state;
	char *t = good(JWT_ALG_HS256, SECRET);
	/* Swap the payload for one saying role admin, keeping the signature. */
	char *admin = make_token(JWT_ALG_HS256, OTHER_SECRET, AUTH_ISSUER, AUTH_AUDIENCE, "x", "admin", "", NOW - 10,
				 NOW + 600);
	char forged[4096];
	const char *p1 = strchr(t, '.'), *s1 = strrchr(t, '.');
	const char *p2 = strchr(admin, '.'), *s2 = strrchr(admin, '.');
	snprintf(forged, sizeof(forged), "%.*s%.*s%s", (int)(p1 - t), t, (int)(s2 - p2), p2, s1);
	refused(forged, "signature");
	/* Flip one character of the signature. */
	char *last = t + strlen(t) - 2;
	*last = *last == 'A' ? 'B' : 'A';
	refused(t, "signature");
	(void)s1;
	(void)p2;
	free(t);
	free(admin);
	refused("not-a-jwt", "malformed");
	refused("", "no token");
}

static void test_claims(void **state)
{
	(void)state;
	struct {
		const char *iss, *aud, *sub, *role, *tenant;
		long long iat, exp;
		const char *want;
	} cases[] = {
		{NULL, AUTH_AUDIENCE, "s", "tenant", "tenant-a", NOW, NOW + 60, "iss claim is missing"},
		{"someone", AUTH_AUDIENCE, "s", "tenant", "tenant-a", NOW, NOW + 60, "issued by someone else"},
		{AUTH_ISSUER, NULL, "s", "tenant", "tenant-a", NOW, NOW + 60, "aud claim is missing"},
		{AUTH_ISSUER, "other-api", "s", "tenant", "tenant-a", NOW, NOW + 60, "another audience"},
		{AUTH_ISSUER, AUTH_AUDIENCE, NULL, "tenant", "tenant-a", NOW, NOW + 60, "sub claim is missing"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "", "tenant", "tenant-a", NOW, NOW + 60, "sub claim is empty"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", NULL, "tenant-a", NOW, NOW + 60, "role claim is missing"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "root", "tenant-a", NOW, NOW + 60, "neither"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", NULL, NOW, NOW + 60, "tenant_id claim is missing"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", "", NOW, NOW + 60, "not a tenant name"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", "Bad_Name", NOW, NOW + 60, "not a tenant name"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "admin", "tenant-a", NOW, NOW + 60, "empty tenant_id"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", "tenant-a", -1, NOW + 60, "iat claim is missing"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", "tenant-a", NOW, -1, "exp claim is missing"},
		{AUTH_ISSUER, AUTH_AUDIENCE, "s", "tenant", "tenant-a", NOW + 30, NOW + 10, "expires before"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = make_token(JWT_ALG_HS256, SECRET, cases[i].iss, cases[i].aud, cases[i].sub, cases[i].role,
				     cases[i].tenant, cases[i].iat, cases[i].exp);
		refused(t, cases[i].want);
		free(t);
	}
	/* A claim of the wrong type. */
	jwt_t *j = NULL;
	assert_int_equal(jwt_new(&j), 0);
	assert_int_equal(jwt_add_grants_json(j, "{\"iss\":\"nimbus\",\"aud\":[\"nimbus-api\"],\"sub\":\"s\","
						"\"role\":\"admin\",\"tenant_id\":\"\",\"iat\":1,\"exp\":\"soon\"}"),
			 0);
	assert_int_equal(jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET)), 0);
	char *t = jwt_encode_str(j);
	jwt_free(j);
	refused(t, "aud claim is missing or not a string");
	free(t);
}

static void test_bearer(void **state)
{
	(void)state;
	const char *tok;
	assert_int_equal(auth_bearer("Bearer abc", &tok, NULL), 0);
	assert_string_equal(tok, "abc");
	assert_int_equal(auth_bearer("bearer   abc", &tok, NULL), 0);
	assert_string_equal(tok, "abc");
	assert_int_equal(auth_bearer(NULL, &tok, NULL), KERR_UNAUTHORIZED);
	assert_int_equal(auth_bearer("Basic YWRtaW46eA==", &tok, NULL), KERR_UNAUTHORIZED);
	assert_int_equal(auth_bearer("Bearer ", &tok, NULL), KERR_UNAUTHORIZED);
}

static void test_tickets(void **state)
{
	(void)state;
	struct kerr e = {0};
	struct auth_claims tenant = {.role = AUTH_ROLE_TENANT, .tenant_id = "tenant-a", .exp = NOW + 900}, out;
	char t[AUTH_TICKET_MAX], forged[AUTH_TICKET_MAX];
	int64_t exp = 0;
	assert_int_equal(auth_ticket_issue(SECRET, &tenant, NOW, t, sizeof(t), &exp, &e), 0);
	assert_int_equal(exp, NOW + AUTH_TICKET_TTL_S);
	/* lws reads at most 127 bytes of "nimbus, ticket.<t>" with a tenant id of 56. */
	assert_true(strlen("nimbus, ticket.") + strlen(t) - strlen("tenant-a") + 56 <= 127);
	assert_int_equal(auth_ticket_verify(SECRET, t, NOW + 1, &out, &e), 0);
	assert_int_equal(out.role, AUTH_ROLE_TENANT);
	assert_string_equal(out.tenant_id, "tenant-a");
	assert_int_equal(out.exp, exp);
	/* Expired, another key, another tenant or role under the same MAC, garbage. */
	assert_int_equal(auth_ticket_verify(SECRET, t, exp, &out, &e), KERR_UNAUTHORIZED);
	assert_non_null(strstr(e.message, "expired"));
	assert_int_equal(auth_ticket_verify(OTHER_SECRET, t, NOW, &out, &e), KERR_UNAUTHORIZED);
	snprintf(forged, sizeof(forged), "%s", t);
	memcpy(strstr(forged, "tenant-a"), "tenant-b", 8);
	assert_int_equal(auth_ticket_verify(SECRET, forged, NOW, &out, &e), KERR_UNAUTHORIZED);
	snprintf(forged, sizeof(forged), "%s", t);
	strstr(forged, ".t.")[1] = 'a';
	assert_int_equal(auth_ticket_verify(SECRET, forged, NOW, &out, &e), KERR_UNAUTHORIZED);
	assert_int_equal(auth_ticket_verify(SECRET, "", NOW, &out, &e), KERR_UNAUTHORIZED);
	assert_int_equal(auth_ticket_verify(SECRET, "1.a..AAAAAAAAAAAAAAAAAAAAAA", NOW, &out, &e), KERR_UNAUTHORIZED);
	/* Never past the token's own expiry; an admin ticket names no tenant. */
	struct auth_claims admin = {.role = AUTH_ROLE_ADMIN, .exp = NOW + 5};
	assert_int_equal(auth_ticket_issue(SECRET, &admin, NOW, t, sizeof(t), &exp, &e), 0);
	assert_int_equal(exp, NOW + 5);
	assert_int_equal(auth_ticket_verify(SECRET, t, NOW, &out, &e), 0);
	assert_int_equal(out.role, AUTH_ROLE_ADMIN);
	assert_string_equal(out.tenant_id, "");

	/* Single use, until expiry; a full table refuses rather than forgets. */
	struct auth_ticket_seen *seen = NULL;
	assert_int_equal(auth_ticket_seen_new(&seen, 2, &e), 0);
	assert_int_equal(auth_ticket_seen_claim(seen, "1.a..MAC1", NOW + 30, NOW, &e), 0);
	assert_int_equal(auth_ticket_seen_claim(seen, "1.a..MAC1", NOW + 30, NOW + 1, &e), KERR_UNAUTHORIZED);
	assert_int_equal(auth_ticket_seen_claim(seen, "1.a..MAC2", NOW + 30, NOW, &e), 0);
	assert_int_equal(auth_ticket_seen_claim(seen, "1.a..MAC3", NOW + 30, NOW, &e), KERR_TOO_MANY_REQUESTS);
	assert_int_equal(auth_ticket_seen_claim(seen, "1.a..MAC3", NOW + 60, NOW + 30, &e), 0);
	auth_ticket_seen_free(seen);
}

static void test_hash(void **state)
{
	(void)state;
	char h1[AUTH_HASH_MAX], h2[AUTH_HASH_MAX];
	assert_int_equal(auth_hash_secret("correct horse", 1000, h1, sizeof(h1), NULL), 0);
	assert_int_equal(auth_hash_secret("correct horse", 1000, h2, sizeof(h2), NULL), 0);
	assert_true(strncmp(h1, "pbkdf2-sha256$1000$", 19) == 0);
	/* A fresh salt each time, so equal secrets do not show. */
	assert_string_not_equal(h1, h2);
	assert_int_equal(auth_verify_secret("correct horse", h1), 1);
	assert_int_equal(auth_verify_secret("correct horse", h2), 1);
	assert_int_equal(auth_verify_secret("correct horsE", h1), 0);
	assert_int_equal(auth_verify_secret("", h1), 0);
	assert_int_equal(auth_verify_secret("correct horse", "plain"), KERR_PARSE);
	assert_int_equal(auth_verify_secret("x", "pbkdf2-sha256$0$AAAAAAAAAAAAAAAAAAAAAA$AAAA"), KERR_PARSE);
	assert_int_equal(auth_verify_secret("x", "pbkdf2-sha256$10$!!$AAAA"), KERR_PARSE);
	/* A digest of the wrong length is malformed, not a mismatch. */
	char bad[AUTH_HASH_MAX];
	snprintf(bad, sizeof(bad), "%.*s", (int)(strrchr(h1, '$') - h1 + 5), h1);
	assert_int_equal(auth_verify_secret("correct horse", bad), KERR_PARSE);
	assert_int_equal(auth_hash_secret("x", 0, h1, sizeof(h1), NULL), KERR_INVAL);
	assert_int_equal(auth_hash_secret("x", 1, h1, 10, NULL), KERR_TOO_LARGE);
}

static void test_keys(void **state)
{
	(void)state;
	char key[AUTH_KEY_MAX], id[AUTH_KEY_ID_LEN + 1], id2[AUTH_KEY_ID_LEN + 1];
	const char *secret;
	assert_int_equal(auth_key_generate(key, sizeof(key), id, sizeof(id), NULL), 0);
	assert_true(strncmp(key, "nmbk_", 5) == 0);
	assert_int_equal(strlen(id), AUTH_KEY_ID_LEN);
	assert_int_equal(auth_key_parse(key, id2, sizeof(id2), &secret, NULL), 0);
	assert_string_equal(id, id2);
	assert_int_equal(strlen(secret), 43);
	char hash[AUTH_HASH_MAX];
	assert_int_equal(auth_hash_secret(secret, AUTH_KEY_ITERATIONS, hash, sizeof(hash), NULL), 0);
	assert_int_equal(auth_verify_secret(secret, hash), 1);
	const char *bad[] = {"", "nmbk_", "nmbk_0123456789abcdeg_" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			     "nmbk_0123456789ABCDEF_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			     "nmbk_0123456789abcdef-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			     "nmbk_0123456789abcdef_short", "nmbk_0123456789abcdef_AAAA+AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			     "xxxx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kerr e = {0};
		assert_int_equal(auth_key_parse(bad[i], id2, sizeof(id2), &secret, &e), KERR_UNAUTHORIZED);
	}
	char r1[64], r2[64];
	assert_int_equal(auth_random_b64(r1, sizeof(r1), 24, NULL), 0);
	assert_int_equal(auth_random_b64(r2, sizeof(r2), 24, NULL), 0);
	assert_int_equal(strlen(r1), 32);
	assert_string_not_equal(r1, r2);
	assert_int_equal(auth_random_b64(r1, 8, 24, NULL), KERR_TOO_LARGE);
}

static void test_decide(void **state)
{
	(void)state;
	struct auth_claims admin = {.role = AUTH_ROLE_ADMIN}, a = {.role = AUTH_ROLE_TENANT};
	snprintf(a.tenant_id, sizeof(a.tenant_id), "tenant-a");
	assert_int_equal(auth_decide(&admin, "tenant-b", false), AUTH_ALLOW);
	assert_int_equal(auth_decide(&admin, "tenant-b", true), AUTH_ALLOW);
	assert_int_equal(auth_decide(&admin, NULL, true), AUTH_ALLOW);
	assert_int_equal(auth_decide(&a, "tenant-a", false), AUTH_ALLOW);
	/* Its own object, an admin action: 403. */
	assert_int_equal(auth_decide(&a, "tenant-a", true), AUTH_FORBIDDEN);
	/* Another tenant's object: 404, admin action or not. */
	assert_int_equal(auth_decide(&a, "tenant-b", false), AUTH_NOT_FOUND);
	assert_int_equal(auth_decide(&a, "tenant-b", true), AUTH_NOT_FOUND);
	assert_int_equal(auth_decide(&a, "tenant-ab", false), AUTH_NOT_FOUND);
	assert_int_equal(auth_decide(&a, "", false), AUTH_NOT_FOUND);
	/* No object: a collection-level admin action is 403 for tenants. */
	assert_int_equal(auth_decide(&a, NULL, true), AUTH_FORBIDDEN);
	assert_int_equal(auth_decide(&a, NULL, false), AUTH_NOT_FOUND);
	/* A tenant token with an empty tenant never matches. */
	struct auth_claims empty = {.role = AUTH_ROLE_TENANT};
	assert_int_equal(auth_decide(&empty, "", false), AUTH_NOT_FOUND);
}

static void test_limiter(void **state)
{
	(void)state;
	struct auth_limiter *l = NULL;
	assert_int_equal(auth_limiter_new(&l, 10, 60000, 2, NULL), 0);
	int64_t retry = 0, t = 1000000;
	for (int i = 0; i < 10; i++)
		assert_true(auth_limiter_take(l, "10.0.0.1", t, &retry));
	assert_false(auth_limiter_take(l, "10.0.0.1", t, &retry));
	assert_int_equal(retry, 6); /* one attempt per 6 s */
	/* Another address has its own bucket. */
	assert_true(auth_limiter_take(l, "10.0.0.2", t, &retry));
	/* Refilled at 10 per minute. */
	assert_false(auth_limiter_take(l, "10.0.0.1", t + 5000, &retry));
	assert_int_equal(retry, 1);
	assert_true(auth_limiter_take(l, "10.0.0.1", t + 6000, &retry));
	assert_false(auth_limiter_take(l, "10.0.0.1", t + 6000, &retry));
	/* The table holds two addresses: a third evicts the quietest
	 * (10.0.0.2), which then starts afresh. */
	assert_true(auth_limiter_take(l, "10.0.0.3", t + 7000, &retry));
	for (int i = 0; i < 10; i++)
		assert_true(auth_limiter_take(l, "10.0.0.2", t + 8000, &retry));
	auth_limiter_free(l);
	assert_int_equal(auth_limiter_new(&l, 0, 1, 1, NULL), KERR_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_checked),
		cmocka_unit_test(test_issue_and_verify),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_other_algs_and_keys),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_tickets),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_limiter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
