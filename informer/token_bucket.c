#include "token_bucket.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct token_bucket {
	pthread_mutex_t mu;
	double qps;     /* tokens added per second; <= 0 = unlimited */
	double burst;   /* most tokens saved */
	double tokens;  /* may be negative: reservations not yet paid back */
	int64_t last_ns;/* time tokens was last brought up to date; < 0 before the first call */
};

int token_bucket_new(struct token_bucket **out, double qps, int burst, struct kerr *e)
{
	*out = NULL;
	if (!isfinite(qps))
		return kerr_set(e, KERR_INVAL, "token bucket: qps %g is not a finite number", qps);
	struct token_bucket *b = calloc(1, sizeof(*b));
	if (!b)
		return kerr_set(e, KERR_NOMEM, "token bucket: out of memory");
	if (pthread_mutex_init(&b->mu, NULL) != 0) {
		free(b);
		return kerr_set(e, KERR_NOMEM, "token bucket: cannot create mutex");
	}
	b->qps = qps;
	b->burst = burst < 1 ? 1 : burst;
	b->tokens = b->burst;
	b->last_ns = -1;
	*out = b;
	return 0;
}

void token_bucket_free(struct token_bucket *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->mu);
	free(b);
}

int64_t token_bucket_reserve(struct token_bucket *b, int64_t now_ns)
{
	if (b->qps <= 0)
		return 0;
	pthread_mutex_lock(&b->mu);
	if (b->last_ns >= 0 && now_ns > b->last_ns) {
		b->tokens += (double)(now_ns - b->last_ns) * b->qps / 1e9;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
	}
	if (b->last_ns < 0 || now_ns > b->last_ns)
		b->last_ns = now_ns;
	b->tokens -= 1;
	double debt = -b->tokens;
	pthread_mutex_unlock(&b->mu);
	if (debt <= 0)
		return 0;
	/* Round up so that a caller never acts before its token exists. */
	return (int64_t)ceil(debt * 1e9 / b->qps);
}

int64_t token_bucket_wait(struct token_bucket *b)
{
	struct timespec now;
	/* CLOCK_MONOTONIC exists on every Linux; if it ever failed, letting the
	 * request through beats blocking it forever. */
	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return 0;
	int64_t wait = token_bucket_reserve(b, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
	if (wait <= 0)
		return 0;
	struct timespec ts = { .tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return wait;
}
