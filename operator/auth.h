/*
 * auth: who is calling the REST API and what they may do.
 *
 * Contract
 * - Tokens are JWTs signed with HS256 (libjwt 1.10) under JWT_SECRET, which
 *   must be at least AUTH_SECRET_MIN bytes (auth_check_secret; there is no
 *   built-in default). A token carries iss "nimbus", aud "nimbus-api", sub,
 *   iat, exp (AUTH_TOKEN_TTL_S after iat) and the custom claims role
 *   ("admin" or "tenant") and tenant_id (the tenant's id; "" for admin).
 *   auth_token_verify() accepts a token only when its header says HS256
 *   (libjwt 1.10 has no jwt_valid_* API and would accept alg "none" or
 *   another HMAC size, so the algorithm is checked here, after the
 *   signature), the signature verifies under the secret (libjwt 1.10
 *   compares it with jwt_strcmp, in constant time), every claim above
 *   is present with the right type and value, iat is not in the future and
 *   exp is. Every refusal is KERR_UNAUTHORIZED with a message saying which
 *   check failed (for the log and the 401 body; it never echoes the token).
 * - Credentials that buy a token (POST /auth/token):
 *   - the administrator: user AUTH_ADMIN_USER and a password. Its hash is
 *     the row id 'admin' of table api_credentials (migration 0003).
 *     auth_bootstrap_admin() sets it from NIMBUS_ADMIN_PASSWORD when given,
 *     otherwise generates a random one the first time (the caller logs it
 *     once) and never again;
 *   - a tenant API key "nmbk_<id>_<secret>": <id> (16 hex digits) names the
 *     row, <secret> is 32 random bytes in base64url. Created with the
 *     tenant, rotated (a new key, the others revoked, in one transaction)
 *     and revoked on request; a key of a tenant that is gone or being
 *     deleted is refused.
 * - Hashes: "pbkdf2-sha256$<iterations>$<salt b64url>$<hash b64url>", a
 *   16-byte random salt and a 32-byte PBKDF2-HMAC-SHA256 (OpenSSL).
 *   Passwords, which people choose, take AUTH_PASSWORD_ITERATIONS; API keys
 *   carry 256 random bits, so stretching adds nothing against guessing and
 *   they take AUTH_KEY_ITERATIONS (one keyed HMAC). Comparison is constant
 *   time (CRYPTO_memcmp). A wrong user, a wrong password and an unknown key
 *   cost the same PBKDF2 work, so timing does not tell which it was.
 * - Event-stream tickets: a browser cannot put an Authorization header on a
 *   websocket, and a token must never travel in a URL, so a caller holding a
 *   token trades it (POST /api/v1/events/ticket) for a ticket that the
 *   websocket offers as its subprotocol "ticket.<ticket>". A ticket is
 *   "<exp>.<a|t>.<tenant_id>.<mac>": exp at most AUTH_TICKET_TTL_S ahead
 *   (never past the token's own exp), the role, the tenant ("" for admin) and
 *   the first 16 bytes of HMAC-SHA256 under JWT_SECRET over a label and the
 *   rest, in base64url. It is stateless, so any replica accepts it; it opens
 *   the event stream and nothing else; struct auth_ticket_seen makes it
 *   single-use on each replica. It fits lws's 127-byte subprotocol list.
 * - auth_decide() is the one scoping rule of every route (see there).
 * - The rate limiter is a fixed table of token buckets per remote address.
 * - Errors: 0 or a negative KERR_* with a message in struct kerr. Functions
 *   taking a struct db use it on the calling thread (db.h) and send SQL
 *   only with parameters.
 */
#ifndef NIMBUS_AUTH_H
#define NIMBUS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "kerr.h"

#define AUTH_SECRET_MIN 32
#define AUTH_ISSUER "nimbus"
#define AUTH_AUDIENCE "nimbus-api"
/* 15 minutes: short enough that a revoked key or a deleted tenant stops
 * working soon, since tokens themselves are not revocable. */
#define AUTH_TOKEN_TTL_S (15 * 60)
/* A token longer than this is refused before decoding. */
#define AUTH_TOKEN_MAX 4096
#define AUTH_ADMIN_USER "admin"
/* The shortest NIMBUS_ADMIN_PASSWORD accepted. */
#define AUTH_PASSWORD_MIN 12
/* OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600000; 210000 (about
 * 75 ms on one core here) keeps a login from holding the API's service
 * thread long, and the login rate limit bounds guessing far more. */
#define AUTH_PASSWORD_ITERATIONS 210000
#define AUTH_KEY_ITERATIONS 1
/* Room for a stored hash and for an API key, NUL included. */
#define AUTH_HASH_MAX 128
#define AUTH_KEY_MAX 80
#define AUTH_KEY_ID_LEN 16
#define AUTH_TENANT_MAX 64

enum auth_role { AUTH_ROLE_ADMIN, AUTH_ROLE_TENANT };

/* What a verified token says. */
struct auth_claims {
	enum auth_role role;
	char sub[128];
	char tenant_id[AUTH_TENANT_MAX]; /* "" for admin */
	int64_t iat, exp;               /* unix seconds */
};

/* 0 if secret can sign tokens, else KERR_CONFIG with a message saying how
 * to make one (openssl rand -hex 32). secret may be NULL. */
int auth_check_secret(const char *secret, struct kerr *e);

/* Sign a token for c (role, sub, tenant_id; iat and exp are set from now
 * and AUTH_TOKEN_TTL_S, and written back to c). *out is malloc'd, the
 * caller frees it. */
int auth_token_issue(const char *secret, struct auth_claims *c, int64_t now, char **out, struct kerr *e);
/* Verify token (see the contract) at time now; *out gets its claims. */
int auth_token_verify(const char *secret, const char *token, int64_t now, struct auth_claims *out,
		      struct kerr *e);
/* The token of an "Authorization: Bearer <token>" header (scheme
 * case-insensitive) into *tok, pointing into header. KERR_UNAUTHORIZED when
 * the header is NULL, another scheme, or empty. */
int auth_bearer(const char *header, const char **tok, struct kerr *e);

/* ---- event-stream tickets -------------------------------------------------- */

/* 30 s: long enough to open a websocket right after asking, short enough
 * that one seen by anybody else is useless soon. */
#define AUTH_TICKET_TTL_S 30
/* Room for a ticket, NUL included. */
#define AUTH_TICKET_MAX 112

/* A ticket for who (a verified token's claims) at now into out (cap >=
 * AUTH_TICKET_MAX); *exp (may be NULL) gets its expiry in unix seconds. */
int auth_ticket_issue(const char *secret, const struct auth_claims *who, int64_t now, char *out, size_t cap,
		      int64_t *exp, struct kerr *e);
/* Verify a ticket at now: *out gets role, tenant_id, exp and sub "ticket";
 * KERR_UNAUTHORIZED with a reason otherwise (never echoing the ticket). */
int auth_ticket_verify(const char *secret, const char *ticket, int64_t now, struct auth_claims *out,
		       struct kerr *e);

/* The tickets a replica has accepted, until they expire (a fixed table of
 * `capacity`). Thread-safe. The caller owns *out (auth_ticket_seen_free). */
struct auth_ticket_seen;
int auth_ticket_seen_new(struct auth_ticket_seen **out, size_t capacity, struct kerr *e);
void auth_ticket_seen_free(struct auth_ticket_seen *s);
/* Record the use of a verified ticket expiring at exp: 0 the first time,
 * KERR_UNAUTHORIZED if it was used before, KERR_TOO_MANY_REQUESTS when the
 * table holds `capacity` tickets that have not expired yet. */
int auth_ticket_seen_claim(struct auth_ticket_seen *s, const char *ticket, int64_t exp, int64_t now,
			   struct kerr *e);

/* ---- secrets -------------------------------------------------------------- */

/* nbytes random bytes (at most 64) in base64url without padding into out. */
int auth_random_b64(char *out, size_t cap, size_t nbytes, struct kerr *e);
/* Hash secret with a fresh salt into out (AUTH_HASH_MAX bytes). */
int auth_hash_secret(const char *secret, int iterations, char *out, size_t cap, struct kerr *e);
/* 1 if secret matches stored, 0 if not, KERR_PARSE if stored is not a hash
 * of this format. Constant time in the secret's bytes. */
int auth_verify_secret(const char *secret, const char *stored);
/* A new API key into key (AUTH_KEY_MAX) and its id into id (AUTH_KEY_ID_LEN + 1). */
int auth_key_generate(char *key, size_t keycap, char *id, size_t idcap, struct kerr *e);
/* Split an API key into its id (copied into id) and its secret (pointer
 * into key). KERR_UNAUTHORIZED if it is not of the form nmbk_<id>_<secret>. */
int auth_key_parse(const char *key, char *id, size_t idcap, const char **secret, struct kerr *e);

/* ---- scoping -------------------------------------------------------------- */

enum auth_decision {
	AUTH_ALLOW,
	AUTH_FORBIDDEN, /* 403: a valid token, an action it may not take */
	AUTH_NOT_FOUND, /* 404: another tenant's object, whose existence must not leak */
};

/*
 * May c act on an object of tenant object_tenant? The administrator may do
 * anything. A tenant token may touch only objects of its own tenant:
 * another tenant's object (or one of no tenant: object_tenant NULL or "")
 * is AUTH_NOT_FOUND, exactly as a missing one, so that a tenant cannot
 * probe for names; for its own objects, an admin_only action (deleting its
 * tenant, say) is AUTH_FORBIDDEN. For actions on no object (creating a
 * tenant, the cluster-wide scheduler view), pass object_tenant NULL and
 * admin_only true: a tenant then gets AUTH_FORBIDDEN.
 */
enum auth_decision auth_decide(const struct auth_claims *c, const char *object_tenant, bool admin_only);

/* ---- login rate limit ------------------------------------------------------ */

struct auth_limiter;

/* A limiter allowing `limit` attempts per `window_ms` per address (a token
 * bucket refilled continuously), tracking at most max_addrs addresses:
 * when full, the address that has been quiet the longest is forgotten.
 * Thread-safe. The caller owns *out (auth_limiter_free). */
int auth_limiter_new(struct auth_limiter **out, int limit, int64_t window_ms, size_t max_addrs, struct kerr *e);
void auth_limiter_free(struct auth_limiter *l);
/* Take one attempt for addr at now_ms: true if allowed, else false with
 * *retry_after_s (may be NULL) the seconds until the next one is. */
bool auth_limiter_take(struct auth_limiter *l, const char *addr, int64_t now_ms, int64_t *retry_after_s);

/* ---- credentials in the database ----------------------------------------- */

/*
 * Make sure the administrator can log in. With env_password (NIMBUS_ADMIN_
 * PASSWORD, at least AUTH_PASSWORD_MIN bytes; KERR_CONFIG otherwise) its
 * hash is stored unless the stored one already matches. Without, and no
 * row yet, a random password is generated into generated (cap >= 48) and
 * its hash stored, and *was_generated set: the caller shows it once. A
 * replica that loses the race to insert finds the row and generates
 * nothing.
 */
int auth_bootstrap_admin(struct db *db, const char *env_password, char *generated, size_t cap,
			 bool *was_generated, struct kerr *e);
/* Check a user and password; on success *out has role admin and sub =
 * user (iat and exp unset). KERR_UNAUTHORIZED otherwise. */
int auth_login_password(struct db *db, const char *user, const char *password, struct auth_claims *out,
			struct kerr *e);
/* Check an API key; on success *out has role tenant, its tenant_id and
 * sub "tenant:<id>/key:<key id>". KERR_UNAUTHORIZED otherwise. */
int auth_login_key(struct db *db, const char *key, struct auth_claims *out, struct kerr *e);
/* A new key for tenant into key (AUTH_KEY_MAX) and its id (AUTH_KEY_ID_LEN
 * + 1); with revoke_others, the tenant's other keys are revoked in the same
 * statement's transaction. Does not check that the tenant exists (the
 * foreign key does: KERR_NOT_FOUND). */
int auth_key_create(struct db *db, const char *tenant, bool revoke_others, char *key, size_t keycap, char *id,
		    size_t idcap, struct kerr *e);
/* Revoke every active key of tenant; *n (may be NULL) gets how many. */
int auth_key_revoke_all(struct db *db, const char *tenant, int *n, struct kerr *e);

#endif
