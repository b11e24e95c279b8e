/*
 * kerr: the one error convention of the informer library (and of Nimbus).
 *
 * Every function that can fail returns 0 on success or a negative KERR_*
 * code from the list below, and, where the caller passes a struct kerr,
 * fills it with a message for people: what went wrong and what to do.
 * The first failure's message wins (kerr_set does not overwrite a set
 * error), so the root cause is what reaches the log.
 *
 * Errors from the apiserver carry its Status (HTTP code, reason, message)
 * so callers can tell NotFound, AlreadyExists, Conflict, Gone, Forbidden
 * and Invalid apart with kerr_from_http().
 */
#ifndef NIMBUS_KERR_H
#define NIMBUS_KERR_H

#include <stddef.h>

/* X(NAME, description): code values are -1, -2, ... in list order. */
#define KERR_MAP(X)                                                        \
	X(NOMEM, "out of memory")                                          \
	X(INVAL, "invalid argument")                                       \
	X(PARSE, "malformed input")                                        \
	X(TOO_LARGE, "input too large")                                    \
	X(IO, "I/O error")                                                 \
	X(CONFIG, "invalid configuration")                                 \
	X(CONNECT, "cannot connect to server")                             \
	X(TLS, "TLS handshake or certificate failure")                     \
	X(TIMEOUT, "timed out")                                            \
	X(UNAUTHORIZED, "unauthorized (401)")                              \
	X(FORBIDDEN, "forbidden (403)")                                    \
	X(NOT_FOUND, "not found (404)")                                    \
	X(CONFLICT, "conflict (409)")                                      \
	X(ALREADY_EXISTS, "already exists (409)")                          \
	X(GONE, "resource version too old (410)")                          \
	X(INVALID, "invalid object (422)")                                 \
	X(TOO_MANY_REQUESTS, "too many requests (429)")                    \
	X(SERVER, "server error (5xx)")                                    \
	X(HTTP, "unexpected HTTP status")                                  \
	X(CLOSED, "closed or shut down")                                   \
	X(DB, "database error")

enum kerr_code {
	KERR_OK = 0,
#define KERR_ENUM_(name, desc) KERR_##name##_,
	KERR_MAP(KERR_ENUM_)
#undef KERR_ENUM_
	KERR_COUNT_
};

/* Public negative codes: KERR_NOMEM == -1, ... */
#define KERR_NEG_(name, desc) enum { KERR_##name = -(int)KERR_##name##_ };
KERR_MAP(KERR_NEG_)
#undef KERR_NEG_

struct kerr {
	int code;        /* 0 or a negative KERR_* code */
	long http_status;/* HTTP status from the server, 0 if none */
	char reason[64]; /* apiserver Status.reason, e.g. "NotFound"; may be empty */
	char message[512];
};

/* Description of a code ("not found (404)"); never NULL. */
const char *kerr_strerror(int code);
/* Symbolic name of a code ("NOT_FOUND"); never NULL. */
const char *kerr_name(int code);

/* Record an error in e (may be NULL) unless one is set already; returns code
 * so that `return kerr_set(e, KERR_PARSE, "...")` propagates it. */
int kerr_set(struct kerr *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Forget a recorded error. */
void kerr_clear(struct kerr *e);
/* Map an HTTP status (and apiserver Status.reason, may be NULL) to a code. */
int kerr_from_http(long status, const char *reason);

#endif
