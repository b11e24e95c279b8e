/*
 * token_bucket: a thread-safe rate limiter (qps tokens per second, up to
 * burst saved), the client-side limit that keeps an operator from flooding
 * the apiserver, as client-go's flowcontrol does.
 *
 * Contract
 * - The bucket starts full: the first `burst` calls pass at once, then calls
 *   are spaced 1/qps apart.
 * - Callers never fail for lack of tokens; they wait. token_bucket_reserve()
 *   takes a token now (the count may go negative, a debt) and says how long
 *   to wait before acting, so concurrent waiters are served in the order
 *   they reserved and a sleeping caller holds no lock.
 * - qps <= 0 means unlimited: every reservation waits 0.
 * - All functions are safe from any thread once token_bucket_new() returned.
 */
#ifndef NIMBUS_TOKEN_BUCKET_H
#define NIMBUS_TOKEN_BUCKET_H

#include <stdint.h>

#include "kerr.h"

struct token_bucket;

/* Create a bucket. burst < 1 is taken as 1. The caller owns *out and frees
 * it with token_bucket_free() once no thread uses it.
 * Returns 0, KERR_NOMEM or KERR_INVAL (qps not finite). */
int token_bucket_new(struct token_bucket **out, double qps, int burst, struct kerr *e);
void token_bucket_free(struct token_bucket *b);

/* Take one token at time now_ns (any monotonic clock, in nanoseconds) and
 * return how many nanoseconds the caller must wait before acting (0: act
 * now). Time that goes backwards adds no tokens. */
int64_t token_bucket_reserve(struct token_bucket *b, int64_t now_ns);

/* Reserve on CLOCK_MONOTONIC and sleep the wait out. Returns the nanoseconds
 * slept (0 if none). */
int64_t token_bucket_wait(struct token_bucket *b);

#endif
