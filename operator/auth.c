#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "tenant.h"

#define HASH_PREFIX "pbkdf2-sha256$"
#define SALT_BYTES 16
#define DIGEST_BYTES 32
#define KEY_PREFIX "nmbk_"
#define KEY_SECRET_BYTES 32
/* iat may be this far ahead of our clock (another replica's clock). */
#define CLOCK_SKEW_S 60

/* ---- base64url ------------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encode n bytes without padding; cap must hold 4*ceil(n/3)+1. */
static int b64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
	size_t need = (n * 4 + 2) / 3 + 1, o = 0;
	if (cap < need)
		return KERR_TOO_LARGE;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = b64url[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	return 0;
}

static int b64_val(int c)
{
	const char *p = c ? strchr(b64url, c) : NULL;
	return p ? (int)(p - b64url) : -1;
}

/* Decode len characters into out (cap bytes); the decoded length, or -1. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64_val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (int)o;
}

/* ---- secrets ---------------------------------------------------------------- */

int auth_check_secret(const char *secret, struct kerr *e)
{
	static const char how[] = "generate one with `openssl rand -hex 32` and pass it in the environment as "
				  "JWT_SECRET (or disable the API with --api-bind-address=0)";
	if (!secret || !*secret)
		return kerr_set(e, KERR_CONFIG, "JWT_SECRET is not set; the API signs its tokens with it: %s", how);
	size_t n = strlen(secret);
	if (n < AUTH_SECRET_MIN)
		return kerr_set(e, KERR_CONFIG, "JWT_SECRET is %zu bytes; at least %d are needed for HS256: %s", n,
				AUTH_SECRET_MIN, how);
	return 0;
}

int auth_random_b64(char *out, size_t cap, size_t nbytes, struct kerr *e)
{
	unsigned char raw[64];
	if (nbytes > sizeof(raw))
		return kerr_set(e, KERR_INVAL, "auth_random_b64: at most %zu bytes", sizeof(raw));
	if (RAND_bytes(raw, (int)nbytes) != 1)
		return kerr_set(e, KERR_IO, "the system random generator failed");
	int rc = b64_encode(raw, nbytes, out, cap);
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc < 0 ? kerr_set(e, rc, "auth_random_b64: buffer too small") : 0;
}

static int pbkdf2(const char *secret, const unsigned char *salt, size_t nsalt, int iterations,
		  unsigned char out[DIGEST_BYTES])
{
	return PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), salt, (int)nsalt, iterations, EVP_sha256(),
				 DIGEST_BYTES, out) == 1
		       ? 0
		       : KERR_NOMEM;
}

int auth_hash_secret(const char *secret, int iterations, char *out, size_t cap, struct kerr *e)
{
	unsigned char salt[SALT_BYTES], digest[DIGEST_BYTES];
	char salt64[32], digest64[48];
	if (iterations < 1)
		return kerr_set(e, KERR_INVAL, "auth_hash_secret: iterations must be positive");
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return kerr_set(e, KERR_IO, "the system random generator failed");
	if (pbkdf2(secret, salt, sizeof(salt), iterations, digest) < 0)
		return kerr_set(e, KERR_NOMEM, "PBKDF2 failed");
	b64_encode(salt, sizeof(salt), salt64, sizeof(salt64));
	b64_encode(digest, sizeof(digest), digest64, sizeof(digest64));
	OPENSSL_cleanse(digest, sizeof(digest));
	int n = snprintf(out, cap, HASH_PREFIX "%d$%s$%s", iterations, salt64, digest64);
	if (n < 0 || (size_t)n >= cap)
		return kerr_set(e, KERR_TOO_LARGE, "auth_hash_secret: buffer too small");
	return 0;
}

int auth_verify_secret(const char *secret, const char *stored)
{
	unsigned char salt[SALT_BYTES + 8], want[DIGEST_BYTES + 8], got[DIGEST_BYTES];
	if (strncmp(stored, HASH_PREFIX, strlen(HASH_PREFIX)) != 0)
		return KERR_PARSE;
	const char *p = stored + strlen(HASH_PREFIX);
	char *end;
	errno = 0;
	long it = strtol(p, &end, 10);
	if (errno || end == p || *end != '$' || it < 1 || it > 10000000)
		return KERR_PARSE;
	const char *s = end + 1, *d = strchr(s, '$');
	if (!d)
		return KERR_PARSE;
	int ns = b64_decode(s, (size_t)(d - s), salt, sizeof(salt));
	int nd = b64_decode(d + 1, strlen(d + 1), want, sizeof(want));
	if (ns < 8 || nd != DIGEST_BYTES)
		return KERR_PARSE;
	if (pbkdf2(secret, salt, (size_t)ns, (int)it, got) < 0)
		return KERR_NOMEM;
	int ok = CRYPTO_memcmp(got, want, DIGEST_BYTES) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

int auth_key_generate(char *key, size_t keycap, char *id, size_t idcap, struct kerr *e)
{
	unsigned char raw[AUTH_KEY_ID_LEN / 2];
	char secret[48];
	if (idcap < AUTH_KEY_ID_LEN + 1)
		return kerr_set(e, KERR_INVAL, "auth_key_generate: id buffer too small");
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return kerr_set(e, KERR_IO, "the system random generator failed");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	int rc = auth_random_b64(secret, sizeof(secret), KEY_SECRET_BYTES, e);
	if (rc < 0)
		return rc;
	int n = snprintf(key, keycap, KEY_PREFIX "%s_%s", id, secret);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (n < 0 || (size_t)n >= keycap)
		return kerr_set(e, KERR_TOO_LARGE, "auth_key_generate: key buffer too small");
	return 0;
}

int auth_key_parse(const char *key, char *id, size_t idcap, const char **secret, struct kerr *e)
{
	static const char bad[] = "the API key is malformed; it looks like nmbk_<16 hex digits>_<43 characters>";
	size_t np = strlen(KEY_PREFIX);
	if (!key || strncmp(key, KEY_PREFIX, np) != 0 || idcap < AUTH_KEY_ID_LEN + 1)
		return kerr_set(e, KERR_UNAUTHORIZED, "%s", bad);
	const char *p = key + np;
	for (size_t i = 0; i < AUTH_KEY_ID_LEN; i++) {
		if (!isxdigit((unsigned char)p[i]) || isupper((unsigned char)p[i]))
			return kerr_set(e, KERR_UNAUTHORIZED, "%s", bad);
	}
	if (p[AUTH_KEY_ID_LEN] != '_')
		return kerr_set(e, KERR_UNAUTHORIZED, "%s", bad);
	const char *s = p + AUTH_KEY_ID_LEN + 1;
	size_t ns = strlen(s);
	if (ns < 16 || ns > 64)
		return kerr_set(e, KERR_UNAUTHORIZED, "%s", bad);
	for (size_t i = 0; i < ns; i++) {
		if (b64_val((unsigned char)s[i]) < 0)
			return kerr_set(e, KERR_UNAUTHORIZED, "%s", bad);
	}
	memcpy(id, p, AUTH_KEY_ID_LEN);
	id[AUTH_KEY_ID_LEN] = '\0';
	*secret = s;
	return 0;
}

/* ---- tokens ----------------------------------------------------------------- */

static const char *role_name(enum auth_role r) { return r == AUTH_ROLE_ADMIN ? "admin" : "tenant"; }

int auth_token_issue(const char *secret, struct auth_claims *c, int64_t now, char **out, struct kerr *e)
{
	*out = NULL;
	int rc = auth_check_secret(secret, e);
	if (rc < 0)
		return rc;
	c->iat = now;
	c->exp = now + AUTH_TOKEN_TTL_S;
	jwt_t *j = NULL;
	if (jwt_new(&j) != 0)
		return kerr_set(e, KERR_NOMEM, "cannot create a token: out of memory");
	if (jwt_add_grant(j, "iss", AUTH_ISSUER) || jwt_add_grant(j, "aud", AUTH_AUDIENCE) ||
	    jwt_add_grant(j, "sub", c->sub) || jwt_add_grant(j, "role", role_name(c->role)) ||
	    jwt_add_grant(j, "tenant_id", c->tenant_id) || jwt_add_grant_int(j, "iat", (long)c->iat) ||
	    jwt_add_grant_int(j, "exp", (long)c->exp) ||
	    jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret))) {
		jwt_free(j);
		return kerr_set(e, KERR_NOMEM, "cannot build a token: out of memory");
	}
	char *s = jwt_encode_str(j);
	jwt_free(j);
	if (!s)
		return kerr_set(e, KERR_NOMEM, "cannot sign a token: out of memory");
	*out = s;
	return 0;
}

/* A string claim, or NULL with e set when absent or not a string. */
static const char *claim_str(jwt_t *j, const char *name, struct kerr *e)
{
	const char *v = jwt_get_grant(j, name);
	if (!v)
		kerr_set(e, KERR_UNAUTHORIZED, "the token's %s claim is missing or not a string", name);
	return v;
}

static int claim_int(jwt_t *j, const char *name, int64_t *out, struct kerr *e)
{
	errno = 0;
	long v = jwt_get_grant_int(j, name);
	if (errno != 0 || v <= 0)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token's %s claim is missing or not a positive integer", name);
	*out = v;
	return 0;
}

static int copy_claim(char *dst, size_t cap, const char *v, const char *name, struct kerr *e)
{
	size_t n = strlen(v);
	if (n >= cap)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token's %s claim is too long", name);
	memcpy(dst, v, n + 1);
	return 0;
}

static int check_claims(jwt_t *j, int64_t now, struct auth_claims *c, struct kerr *e)
{
	const char *iss = claim_str(j, "iss", e), *aud, *sub, *role, *tenant;
	if (!iss)
		return KERR_UNAUTHORIZED;
	if (strcmp(iss, AUTH_ISSUER) != 0)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token was issued by someone else (iss is not \"" AUTH_ISSUER "\")");
	if (!(aud = claim_str(j, "aud", e)))
		return KERR_UNAUTHORIZED;
	if (strcmp(aud, AUTH_AUDIENCE) != 0)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token is for another audience (aud is not \"" AUTH_AUDIENCE "\")");
	if (claim_int(j, "iat", &c->iat, e) < 0 || claim_int(j, "exp", &c->exp, e) < 0)
		return KERR_UNAUTHORIZED;
	if (c->exp <= now)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token expired %lld s ago; get a new one from POST /auth/token",
				(long long)(now - c->exp));
	if (c->iat > now + CLOCK_SKEW_S)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token is issued in the future (iat); check the clocks");
	if (c->iat >= c->exp)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token expires before it was issued");
	if (!(sub = claim_str(j, "sub", e)) || !(role = claim_str(j, "role", e)) ||
	    !(tenant = claim_str(j, "tenant_id", e)))
		return KERR_UNAUTHORIZED;
	if (!*sub)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token's sub claim is empty");
	if (copy_claim(c->sub, sizeof(c->sub), sub, "sub", e) < 0 ||
	    copy_claim(c->tenant_id, sizeof(c->tenant_id), tenant, "tenant_id", e) < 0)
		return KERR_UNAUTHORIZED;
	if (strcmp(role, "admin") == 0) {
		if (*tenant)
			return kerr_set(e, KERR_UNAUTHORIZED, "an admin token must have an empty tenant_id");
		c->role = AUTH_ROLE_ADMIN;
	} else if (strcmp(role, "tenant") == 0) {
		if (tenant_validate_name(tenant, NULL) < 0)
			return kerr_set(e, KERR_UNAUTHORIZED, "the token's tenant_id is not a tenant name");
		c->role = AUTH_ROLE_TENANT;
	} else {
		return kerr_set(e, KERR_UNAUTHORIZED, "the token's role claim is neither \"admin\" nor \"tenant\"");
	}
	return 0;
}

int auth_token_verify(const char *secret, const char *token, int64_t now, struct auth_claims *out,
		      struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	if (!secret || strlen(secret) < AUTH_SECRET_MIN)
		return kerr_set(e, KERR_CONFIG, "no JWT secret to verify tokens with");
	if (!token || !*token)
		return kerr_set(e, KERR_UNAUTHORIZED, "no token");
	if (strlen(token) > AUTH_TOKEN_MAX)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token is longer than %d bytes", AUTH_TOKEN_MAX);
	jwt_t *j = NULL;
	if (jwt_decode(&j, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 || !j)
		return kerr_set(e, KERR_UNAUTHORIZED, "the token is malformed or its signature does not verify");
	/* jwt_decode passes alg "none" without checking anything, and any
	 * HMAC size with our key: only HS256 is ours. */
	int rc = 0;
	if (jwt_get_alg(j) != JWT_ALG_HS256)
		rc = kerr_set(e, KERR_UNAUTHORIZED, "the token is signed with %s; only HS256 is accepted",
			      jwt_alg_str(jwt_get_alg(j)) ? jwt_alg_str(jwt_get_alg(j)) : "an unknown algorithm");
	else
		rc = check_claims(j, now, out, e);
	jwt_free(j);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int auth_bearer(const char *header, const char **tok, struct kerr *e)
{
	*tok = NULL;
	if (!header || !*header)
		return kerr_set(e, KERR_UNAUTHORIZED, "no Authorization header; send Authorization: Bearer <token> "
						      "with a token from POST /auth/token");
	if (strncasecmp(header, "Bearer ", 7) != 0)
		return kerr_set(e, KERR_UNAUTHORIZED, "the Authorization header is not a Bearer token");
	const char *t = header + 7;
	while (*t == ' ')
		t++;
	if (!*t)
		return kerr_set(e, KERR_UNAUTHORIZED, "the Authorization header has an empty Bearer token");
	*tok = t;
	return 0;
}

/* ---- event-stream tickets ------------------------------------------------------ */

#define TICKET_MAC_BYTES 16
/* Keeps a ticket's MAC apart from anything else signed with JWT_SECRET. */
#define TICKET_LABEL "nimbus-event-ticket\n"

/* The MAC of body ("<exp>.<r>.<tenant>") in base64url into out (23 bytes). */
static int ticket_mac(const char *secret, const char *body, char *out, size_t cap)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char msg[AUTH_TICKET_MAX + sizeof(TICKET_LABEL)];
	int n = snprintf(msg, sizeof(msg), "%s%s", TICKET_LABEL, body);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return KERR_TOO_LARGE;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, (size_t)n, md, &mdlen) ||
	    mdlen < TICKET_MAC_BYTES)
		return KERR_NOMEM;
	return b64_encode(md, TICKET_MAC_BYTES, out, cap);
}

int auth_ticket_issue(const char *secret, const struct auth_claims *who, int64_t now, char *out, size_t cap,
		      int64_t *exp, struct kerr *e)
{
	int64_t until = now + AUTH_TICKET_TTL_S;
	if (who->exp && who->exp < until)
		until = who->exp;
	char body[AUTH_TICKET_MAX], mac[32];
	int n = snprintf(body, sizeof(body), "%lld.%c.%s", (long long)until, who->role == AUTH_ROLE_ADMIN ? 'a' : 't',
			 who->role == AUTH_ROLE_ADMIN ? "" : who->tenant_id);
	int rc;
	if (n < 0 || (size_t)n >= sizeof(body) || (rc = ticket_mac(secret, body, mac, sizeof(mac))) < 0)
		return kerr_set(e, KERR_TOO_LARGE, "the tenant id is too long for an event-stream ticket");
	n = snprintf(out, cap, "%s.%s", body, mac);
	if (n < 0 || (size_t)n >= cap)
		return kerr_set(e, KERR_TOO_LARGE, "auth_ticket_issue: buffer of %zu bytes is too small", cap);
	if (exp)
		*exp = until;
	return 0;
}

int auth_ticket_verify(const char *secret, const char *ticket, int64_t now, struct auth_claims *out,
		       struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	size_t len = ticket ? strlen(ticket) : 0;
	const char *dot = len < AUTH_TICKET_MAX ? strrchr(ticket, '.') : NULL;
	if (!dot)
		return kerr_set(e, KERR_UNAUTHORIZED, "the event-stream ticket is malformed; get one from "
						      "POST /api/v1/events/ticket");
	char body[AUTH_TICKET_MAX], want[32];
	size_t blen = (size_t)(dot - ticket);
	memcpy(body, ticket, blen);
	body[blen] = '\0';
	if (ticket_mac(secret, body, want, sizeof(want)) < 0 || strlen(dot + 1) != strlen(want) ||
	    CRYPTO_memcmp(dot + 1, want, strlen(want)) != 0)
		return kerr_set(e, KERR_UNAUTHORIZED, "the event-stream ticket's signature does not verify");
	/* Signed by us, so well-formed: "<exp>.<r>.<tenant>". */
	char *end;
	errno = 0;
	long long exp = strtoll(body, &end, 10);
	if (errno || end[0] != '.' || (end[1] != 'a' && end[1] != 't') || end[2] != '.')
		return kerr_set(e, KERR_UNAUTHORIZED, "the event-stream ticket is malformed");
	if (exp <= now)
		return kerr_set(e, KERR_UNAUTHORIZED, "the event-stream ticket has expired (they last %d s); "
						      "get a new one from POST /api/v1/events/ticket",
				AUTH_TICKET_TTL_S);
	out->role = end[1] == 'a' ? AUTH_ROLE_ADMIN : AUTH_ROLE_TENANT;
	if (snprintf(out->tenant_id, sizeof(out->tenant_id), "%s", end + 3) >= (int)sizeof(out->tenant_id) ||
	    (out->role == AUTH_ROLE_TENANT) != (out->tenant_id[0] != '\0'))
		return kerr_set(e, KERR_UNAUTHORIZED, "the event-stream ticket is malformed");
	snprintf(out->sub, sizeof(out->sub), "ticket");
	out->exp = exp;
	return 0;
}

struct ticket_slot {
	char mac[32];
	int64_t exp;
};

struct auth_ticket_seen {
	pthread_mutex_t mu;
	size_t n;
	struct ticket_slot slot[]; /* exp 0 (or past): free */
};

int auth_ticket_seen_new(struct auth_ticket_seen **out, size_t capacity, struct kerr *e)
{
	*out = NULL;
	if (!capacity)
		return kerr_set(e, KERR_INVAL, "auth_ticket_seen_new: capacity must be positive");
	struct auth_ticket_seen *s = calloc(1, sizeof(*s) + capacity * sizeof(s->slot[0]));
	if (!s)
		return kerr_set(e, KERR_NOMEM, "out of memory for the ticket table");
	pthread_mutex_init(&s->mu, NULL);
	s->n = capacity;
	*out = s;
	return 0;
}

void auth_ticket_seen_free(struct auth_ticket_seen *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int auth_ticket_seen_claim(struct auth_ticket_seen *s, const char *ticket, int64_t exp, int64_t now,
			   struct kerr *e)
{
	/* The MAC names a ticket: the rest of it is what the MAC covers. */
	const char *dot = strrchr(ticket, '.');
	const char *mac = dot ? dot + 1 : ticket;
	char key[sizeof(s->slot[0].mac)] = {0};
	if (strlen(mac) >= sizeof(key))
		return kerr_set(e, KERR_UNAUTHORIZED, "the event-stream ticket is malformed");
	memcpy(key, mac, strlen(mac));
	struct ticket_slot *free_slot = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n; i++) {
		struct ticket_slot *t = &s->slot[i];
		if (t->exp <= now) {
			if (!free_slot)
				free_slot = t;
		} else if (CRYPTO_memcmp(t->mac, key, sizeof(key)) == 0) {
			rc = kerr_set(e, KERR_UNAUTHORIZED, "the event-stream ticket was used already; "
							    "get a new one for each connection");
			break;
		}
	}
	if (!rc && !free_slot)
		rc = kerr_set(e, KERR_TOO_MANY_REQUESTS, "more than %zu event-stream tickets used in %d s; "
							 "try again shortly", s->n, AUTH_TICKET_TTL_S);
	if (!rc) {
		memcpy(free_slot->mac, key, sizeof(key));
		free_slot->exp = exp;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* ---- scoping ------------------------------------------------------------------ */

enum auth_decision auth_decide(const struct auth_claims *c, const char *object_tenant, bool admin_only)
{
	if (c->role == AUTH_ROLE_ADMIN)
		return AUTH_ALLOW;
	if (object_tenant == NULL)
		return admin_only ? AUTH_FORBIDDEN : AUTH_NOT_FOUND;
	if (!*object_tenant || !*c->tenant_id || strcmp(object_tenant, c->tenant_id) != 0)
		return AUTH_NOT_FOUND;
	return admin_only ? AUTH_FORBIDDEN : AUTH_ALLOW;
}

/* ---- rate limit --------------------------------------------------------------- */

/* Token buckets in integers: an attempt costs window_ms units, a bucket
 * holds limit * window_ms and gains limit units per ms, so the arithmetic
 * is exact. */
struct limiter_entry {
	char addr[64];    /* "" = free */
	int64_t units;
	int64_t last_ms;
};

struct auth_limiter {
	pthread_mutex_t mu;
	int64_t limit, window_ms;
	size_t n;
	struct limiter_entry *entries;
};

int auth_limiter_new(struct auth_limiter **out, int limit, int64_t window_ms, size_t max_addrs, struct kerr *e)
{
	*out = NULL;
	if (limit < 1 || window_ms < 1 || max_addrs < 1)
		return kerr_set(e, KERR_INVAL, "auth_limiter_new: limit, window and size must be positive");
	struct auth_limiter *l = calloc(1, sizeof(*l));
	if (!l || !(l->entries = calloc(max_addrs, sizeof(*l->entries)))) {
		free(l);
		return kerr_set(e, KERR_NOMEM, "out of memory for the login rate limiter");
	}
	if (pthread_mutex_init(&l->mu, NULL) != 0) {
		free(l->entries);
		free(l);
		return kerr_set(e, KERR_NOMEM, "cannot create the login rate limiter's mutex");
	}
	l->limit = limit;
	l->window_ms = window_ms;
	l->n = max_addrs;
	*out = l;
	return 0;
}

void auth_limiter_free(struct auth_limiter *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l->entries);
	free(l);
}

bool auth_limiter_take(struct auth_limiter *l, const char *addr, int64_t now_ms, int64_t *retry_after_s)
{
	char key[64];
	snprintf(key, sizeof(key), "%s", addr && *addr ? addr : "?");
	pthread_mutex_lock(&l->mu);
	struct limiter_entry *hit = NULL, *victim = &l->entries[0];
	for (size_t i = 0; i < l->n && !hit; i++) {
		struct limiter_entry *x = &l->entries[i];
		if (x->addr[0] && strcmp(x->addr, key) == 0)
			hit = x;
		else if (!x->addr[0] ? victim->addr[0] != 0 : (victim->addr[0] && x->last_ms < victim->last_ms))
			victim = x;
	}
	if (!hit) {
		hit = victim;
		memcpy(hit->addr, key, sizeof(key));
		hit->units = l->limit * l->window_ms;
		hit->last_ms = now_ms;
	}
	if (now_ms > hit->last_ms) {
		int64_t gained = (now_ms - hit->last_ms) * l->limit, cap = l->limit * l->window_ms;
		hit->units = gained >= cap - hit->units ? cap : hit->units + gained;
		hit->last_ms = now_ms;
	}
	bool ok = hit->units >= l->window_ms;
	if (ok) {
		hit->units -= l->window_ms;
	} else if (retry_after_s) {
		int64_t ms = (l->window_ms - hit->units + l->limit - 1) / l->limit;
		*retry_after_s = (ms + 999) / 1000;
		if (*retry_after_s < 1)
			*retry_after_s = 1;
	}
	pthread_mutex_unlock(&l->mu);
	return ok;
}

/* ---- credentials in the database ------------------------------------------------ */

/* Verifying against this when there is nothing to verify against costs the
 * same as a real check, so a response time does not reveal whether a user
 * or key exists. Its password is unknown (random bytes, discarded). */
static const char dummy_password_hash[] =
	"pbkdf2-sha256$210000$3q2-7wAAAAAAAAAAAAAAAA$yaQxO6yYvlsAjo3ATyrTrZP3ypaY-jGB5Lm9uj6HGHw";
static const char dummy_key_hash[] = "pbkdf2-sha256$1$3q2-7wAAAAAAAAAAAAAAAA$yaQxO6yYvlsAjo3ATyrTrZP3ypaY-jGB5Lm9uj6HGHw";

int auth_bootstrap_admin(struct db *db, const char *env_password, char *generated, size_t cap,
			 bool *was_generated, struct kerr *e)
{
	*was_generated = false;
	if (env_password && strlen(env_password) < AUTH_PASSWORD_MIN)
		return kerr_set(e, KERR_CONFIG, "NIMBUS_ADMIN_PASSWORD is shorter than %d characters; choose a longer one, "
						"e.g. `openssl rand -base64 24`",
				AUTH_PASSWORD_MIN);
	PGresult *r = NULL;
	int rc = db_exec_params(db, "SELECT secret_hash FROM api_credentials WHERE id = 'admin'", 0, NULL, &r, e);
	if (rc < 0)
		return rc;
	int have = PQntuples(r) > 0;
	int matches = have && env_password && auth_verify_secret(env_password, PQgetvalue(r, 0, 0)) == 1;
	PQclear(r);
	if (matches || (have && !env_password))
		return 0;

	char hash[AUTH_HASH_MAX];
	const char *password = env_password;
	if (!password) {
		if (cap < 48)
			return kerr_set(e, KERR_INVAL, "auth_bootstrap_admin: generated buffer too small");
		if ((rc = auth_random_b64(generated, cap, 24, e)) < 0)
			return rc;
		password = generated;
	}
	if ((rc = auth_hash_secret(password, AUTH_PASSWORD_ITERATIONS, hash, sizeof(hash), e)) < 0)
		return rc;
	const char *params[1] = {hash};
	if (env_password)
		return db_exec_params(db,
				      "INSERT INTO api_credentials (id, kind, secret_hash) VALUES ('admin', 'admin', $1) "
				      "ON CONFLICT (id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, revoked_at = NULL",
				      1, params, NULL, e);
	rc = db_exec_params(db,
			    "INSERT INTO api_credentials (id, kind, secret_hash) VALUES ('admin', 'admin', $1) "
			    "ON CONFLICT (id) DO NOTHING RETURNING id",
			    1, params, &r, e);
	if (rc < 0)
		return rc;
	*was_generated = PQntuples(r) == 1;
	PQclear(r);
	if (!*was_generated)
		OPENSSL_cleanse(generated, cap);
	return 0;
}

int auth_login_password(struct db *db, const char *user, const char *password, struct auth_claims *out,
			struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	PGresult *r = NULL;
	int rc = db_exec_params(db, "SELECT secret_hash FROM api_credentials WHERE id = 'admin' AND revoked_at IS NULL",
				0, NULL, &r, e);
	if (rc < 0)
		return rc;
	const char *stored = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : dummy_password_hash;
	int ok = auth_verify_secret(password, stored) == 1 && PQntuples(r) > 0;
	PQclear(r);
	if (!ok || strcmp(user, AUTH_ADMIN_USER) != 0)
		return kerr_set(e, KERR_UNAUTHORIZED, "wrong user name or password");
	out->role = AUTH_ROLE_ADMIN;
	snprintf(out->sub, sizeof(out->sub), "%s", AUTH_ADMIN_USER);
	return 0;
}

int auth_login_key(struct db *db, const char *key, struct auth_claims *out, struct kerr *e)
{
	memset(out, 0, sizeof(*out));
	char id[AUTH_KEY_ID_LEN + 1];
	const char *secret;
	int rc = auth_key_parse(key, id, sizeof(id), &secret, e);
	if (rc < 0) {
		auth_verify_secret("", dummy_key_hash);
		return rc;
	}
	PGresult *r = NULL;
	const char *params[1] = {id};
	rc = db_exec_params(db,
			    "SELECT c.secret_hash, c.tenant_id, c.revoked_at IS NOT NULL, coalesce(t.status, 'gone') "
			    "FROM api_credentials c LEFT JOIN tenants t ON t.id = c.tenant_id "
			    "WHERE c.id = $1 AND c.kind = 'tenant_key'",
			    1, params, &r, e);
	if (rc < 0)
		return rc;
	int found = PQntuples(r) > 0;
	int ok = auth_verify_secret(secret, found ? PQgetvalue(r, 0, 0) : dummy_key_hash) == 1 && found;
	if (!ok)
		rc = kerr_set(e, KERR_UNAUTHORIZED, "unknown API key");
	else if (strcmp(PQgetvalue(r, 0, 2), "t") == 0)
		rc = kerr_set(e, KERR_UNAUTHORIZED, "this API key was revoked; ask the administrator for a new one");
	else if (strcmp(PQgetvalue(r, 0, 3), "active") != 0)
		rc = kerr_set(e, KERR_UNAUTHORIZED, "the tenant of this API key is being deleted");
	else if (snprintf(out->tenant_id, sizeof(out->tenant_id), "%s", PQgetvalue(r, 0, 1)) >= (int)sizeof(out->tenant_id))
		rc = kerr_set(e, KERR_UNAUTHORIZED, "the tenant id of this API key is too long");
	if (rc == 0) {
		out->role = AUTH_ROLE_TENANT;
		snprintf(out->sub, sizeof(out->sub), "tenant:%s/key:%s", out->tenant_id, id);
	}
	PQclear(r);
	return rc;
}

int auth_key_create(struct db *db, const char *tenant, bool revoke_others, char *key, size_t keycap, char *id,
		    size_t idcap, struct kerr *e)
{
	char hash[AUTH_HASH_MAX];
	const char *secret;
	int rc = auth_key_generate(key, keycap, id, idcap, e);
	if (rc == 0)
		rc = auth_key_parse(key, id, idcap, &secret, e);
	if (rc == 0)
		rc = auth_hash_secret(secret, AUTH_KEY_ITERATIONS, hash, sizeof(hash), e);
	if (rc < 0)
		return rc;
	const char *params[4] = {tenant, id, hash, revoke_others ? "true" : "false"};
	struct kerr le = {0};
	/* One statement, so the new key and the revocation of the old ones
	 * commit together. */
	rc = db_exec_params(db,
			    "WITH revoked AS (UPDATE api_credentials SET revoked_at = now() "
			    "WHERE $4::boolean AND tenant_id = $1 AND kind = 'tenant_key' AND revoked_at IS NULL) "
			    "INSERT INTO api_credentials (id, kind, tenant_id, secret_hash) VALUES ($2, 'tenant_key', $1, $3)",
			    4, params, NULL, &le);
	if (rc < 0) {
		OPENSSL_cleanse(key, keycap);
		if (strcmp(le.reason, "23503") == 0)
			return kerr_set(e, KERR_NOT_FOUND, "tenant %s does not exist", tenant);
		return kerr_set(e, rc, "%s", le.message);
	}
	return 0;
}

int auth_key_revoke_all(struct db *db, const char *tenant, int *n, struct kerr *e)
{
	PGresult *r = NULL;
	const char *params[1] = {tenant};
	int rc = db_exec_params(db,
				"UPDATE api_credentials SET revoked_at = now() "
				"WHERE tenant_id = $1 AND kind = 'tenant_key' AND revoked_at IS NULL",
				1, params, &r, e);
	if (rc < 0)
		return rc;
	if (n)
		*n = atoi(PQcmdTuples(r));
	PQclear(r);
	return 0;
}
