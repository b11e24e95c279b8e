/*
 * fuzz_auth: the REST API's Authorization path (auth.h): the header through
 * auth_bearer and auth_token_verify, then auth_decide; and API keys through
 * auth_key_parse.
 *
 * Input: byte 0 picks the mode, the rest (up to a NUL) is the text.
 *   mode % 3 == 0: the text is an Authorization header, verified as is;
 *     and, separately, an API key for auth_key_parse.
 *   mode % 3 == 1 or 2: the text is a JSON object of claims; the harness
 *     signs it (libjwt) with the server's secret, HS256 for mode 1, and
 *     for mode 2 with HS384, HS512 or alg "none" (picked by mode / 3 % 3),
 *     and sends "Bearer <token>". Signed tokens get past the signature
 *     check, so the claim checks are what is fuzzed.
 * Checks: a refusal is KERR_UNAUTHORIZED with a message and zeroed claims;
 * an accepted token is HS256 with iss/aud right, exp > now, iat <= now + 60,
 * iat < exp, a non-empty sub, an admin with tenant_id "" or a tenant with a
 * tenant_id; auth_decide lets a tenant see its own tenant only. A token
 * signed with another algorithm is never accepted.
 */
#include <string.h>

#include <jwt.h>

#include "auth.h"
#include "fuzz.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789"
#define NOW INT64_C(1700000000)

static int verify(const char *header, struct auth_claims *who)
{
	const char *tok = NULL;
	struct kerr e = {0};
	int rc = auth_bearer(header, &tok, &e);
	if (rc == 0) {
		if (!tok || !*tok || tok < header || tok > header + strlen(header))
			fuzz_fail("auth_bearer accepted \"%s\" with a token outside it", header);
		rc = auth_token_verify(SECRET, tok, NOW, who, &e);
	} else {
		memset(who, 0, sizeof(*who));
	}
	static const struct auth_claims zero;
	if (rc != 0 && (rc != KERR_UNAUTHORIZED || e.code != rc || !e.message[0] || memcmp(who, &zero, sizeof(*who))))
		fuzz_fail("refusal %d (kerr %d \"%s\") is not a clean KERR_UNAUTHORIZED", rc, e.code, e.message);
	if (rc == 0) {
		if (!memchr(who->sub, '\0', sizeof(who->sub)) || !memchr(who->tenant_id, '\0', sizeof(who->tenant_id)))
			fuzz_fail("accepted claims with an unterminated sub or tenant_id");
		if (!who->sub[0] || who->exp <= NOW || who->iat > NOW + 60 || who->iat >= who->exp)
			fuzz_fail("accepted a token with sub \"%s\", iat %lld, exp %lld at %lld", who->sub,
			          (long long)who->iat, (long long)who->exp, (long long)NOW);
		if ((who->role == AUTH_ROLE_ADMIN) != (who->tenant_id[0] == '\0') ||
		    (who->role != AUTH_ROLE_ADMIN && who->role != AUTH_ROLE_TENANT))
			fuzz_fail("accepted role %d with tenant_id \"%s\"", (int)who->role, who->tenant_id);
		if (who->role == AUTH_ROLE_TENANT &&
		    (auth_decide(who, who->tenant_id, false) != AUTH_ALLOW ||
		     (strcmp(who->tenant_id, "other-tenant") != 0 &&
		      auth_decide(who, "other-tenant", false) != AUTH_NOT_FOUND) ||
		     auth_decide(who, NULL, true) != AUTH_FORBIDDEN || auth_decide(who, "", false) != AUTH_NOT_FOUND))
			fuzz_fail("auth_decide lets tenant \"%s\" out of its tenant", who->tenant_id);
		if (who->role == AUTH_ROLE_ADMIN && auth_decide(who, "any", true) != AUTH_ALLOW)
			fuzz_fail("auth_decide refuses the administrator");
	}
	return rc;
}

static void api_key(const char *text)
{
	char id[AUTH_KEY_ID_LEN + 1];
	const char *secret = NULL;
	struct kerr e = {0};
	int rc = auth_key_parse(text, id, sizeof(id), &secret, &e);
	if (rc == 0) {
		if (strlen(id) != AUTH_KEY_ID_LEN || strncmp(text, "nmbk_", 5) != 0 || memcmp(text + 5, id, AUTH_KEY_ID_LEN) ||
		    !secret || secret != text + 5 + AUTH_KEY_ID_LEN + 1)
			fuzz_fail("auth_key_parse accepted \"%s\" as id \"%s\"", text, id);
	} else if (rc != KERR_UNAUTHORIZED || e.code != rc || !e.message[0]) {
		fuzz_fail("auth_key_parse refused \"%s\" with %d", text, rc);
	}
}

static void signed_claims(const char *claims, jwt_alg_t alg)
{
	jwt_t *j = NULL;
	if (jwt_new(&j) != 0)
		fuzz_fail("jwt_new failed");
	char *tok = NULL;
	if (jwt_add_grants_json(j, claims) == 0 &&
	    jwt_set_alg(j, alg, alg == JWT_ALG_NONE ? NULL : (const unsigned char *)SECRET,
	                alg == JWT_ALG_NONE ? 0 : (int)strlen(SECRET)) == 0)
		tok = jwt_encode_str(j);
	jwt_free(j);
	if (!tok)
		return; /* claims libjwt does not take: not our code */
	size_t n = strlen(tok);
	char *header = malloc(n + 8);
	if (!header)
		fuzz_fail("out of memory");
	memcpy(header, "Bearer ", 7);
	memcpy(header + 7, tok, n + 1);
	struct auth_claims who;
	int rc = verify(header, &who);
	if (rc == 0 && alg != JWT_ALG_HS256)
		fuzz_fail("a token signed with %s was accepted", jwt_alg_str(alg));
	free(header);
	free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* Headers and claims are C strings: stop at the first NUL. */
	size_t n = strnlen((const char *)data + 1, size - 1);
	char *text = malloc(n + 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, n);
	text[n] = '\0';
	struct auth_claims who;
	static const jwt_alg_t other[] = {JWT_ALG_HS384, JWT_ALG_HS512, JWT_ALG_NONE};
	switch (data[0] % 3) {
	case 0:
		verify(text, &who);
		api_key(text);
		break;
	case 1:
		signed_claims(text, JWT_ALG_HS256);
		break;
	default:
		signed_claims(text, other[data[0] / 3 % 3]);
		break;
	}
	free(text);
	return 0;
}
