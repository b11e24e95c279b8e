/*
 * billing_math: the arithmetic of billing, pure and exact.
 *
 * Contract
 * - No I/O, no clocks, no global state: every function depends on its
 *   arguments only and is safe from any thread. Nothing here allocates
 *   except the pod metrics parser, whose ownership is stated below.
 * - Units. Times are unix milliseconds (UTC). CPU is in nano-cores (what
 *   metrics-server reports), memory in bytes. Integrated usage is CPU in
 *   milli-core-seconds and memory in byte-seconds, each a struct
 *   billing_dec: a non-negative decimal with BILLING_DEC_SCALE (6)
 *   fractional digits held in 128 bits, so that a month of a large
 *   tenant's memory (about 10^30 in micro-byte-seconds) adds up without
 *   overflow, and never in floating point.
 * - Integration (trapezoid rule). Between two samples a and b of a pod,
 *   usage is (a + b) / 2 * (b.t - a.t). Memory byte-seconds come out
 *   exact; CPU milli-core-seconds are rounded half up to the 6th decimal
 *   (one nano-core-second), which bounds the rounding of one row by
 *   5e-7 milli-core-seconds, twelve orders of magnitude below a cent of
 *   any plausible price.
 *   - First interval of a pod: from its start time (status.startTime) to
 *     its first sample, at the first sample's rate throughout: nothing is
 *     known about the rate before it, and a metrics-server sample is
 *     itself an average over its window. Without a start time the
 *     interval begins at the sample's window start. Never before the
 *     billing epoch (when billing first ran against this database), so
 *     that turning billing on does not bill the past lifetime of pods.
 *   - Last interval of a pod that vanished between samples: from its last
 *     sample to when it ended, at its last rate. When it ended is the
 *     earlier of its deletionTimestamp and the moment the informer saw it
 *     deleted, both upper bounds of when its containers stopped; when
 *     neither is known (the pod went while nobody watched, or its
 *     deletionTimestamp is still ahead, i.e. it stopped early) it is the
 *     midpoint between the last sample and now, which halves the largest
 *     possible error. See billing_end_time().
 * - Pricing. Prices are per core-hour and per GiB-hour (2^30 bytes), in
 *   millionths of the currency unit (0.05 USD = 50000). An invoice line's
 *   amount is the exact product of the period's exact usage and the unit
 *   price, rounded half up (amounts are never negative) once, to the
 *   currency's minor unit (cents for USD). The total is the sum of the
 *   rounded lines, so an invoice always adds up. Usage rows are never
 *   priced one by one, so rounding cannot accumulate. Displayed
 *   quantities (core-hours, GiB-hours) are rounded half up to 6 decimals
 *   for people only; amounts never derive from them.
 * - Errors: 0 or a negative KERR_* (kerr.h); KERR_TOO_LARGE when a value
 *   leaves the 128-bit range, KERR_INVAL for impossible arguments,
 *   KERR_PARSE for malformed input, with a message where a kerr is given.
 */
#ifndef NIMBUS_BILLING_MATH_H
#define NIMBUS_BILLING_MATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kerr.h"

/* Fractional digits of a struct billing_dec. */
#define BILLING_DEC_SCALE 6
/* Room for any formatted billing_dec (39 digits, a point, NUL). */
#define BILLING_DEC_MAX 48
/* Room for a formatted time, "2026-11-25T15:14:32.123Z". */
#define BILLING_TIME_MAX 32
/* Room for a formatted amount or price ("-"? never: both are >= 0). */
#define BILLING_MONEY_MAX 32

/* A non-negative decimal: value = (hi * 2^64 + lo) / 10^BILLING_DEC_SCALE.
 * Zero-initialised it is 0. Read and write it with the functions below. */
struct billing_dec {
	uint64_t hi;
	uint64_t lo;
};

/* v = whole units (>= 0) exactly. */
struct billing_dec billing_dec_from_int(int64_t whole);
/* *acc += v; KERR_TOO_LARGE (acc unchanged) on overflow. */
int billing_dec_add(struct billing_dec *acc, struct billing_dec v);
/* -1, 0 or 1 as a < b, a == b, a > b. */
int billing_dec_cmp(struct billing_dec a, struct billing_dec b);
/* "12.500000": always BILLING_DEC_SCALE decimals, as PostgreSQL numeric
 * accepts it. Returns the length, or KERR_INVAL (buf[0] = '\0' if cap > 0)
 * when cap is too small; BILLING_DEC_MAX always suffices. */
int billing_dec_format(struct billing_dec v, char *buf, size_t cap);
/* Parse a plain non-negative decimal ("12", "12.5", "0.000001"), as
 * PostgreSQL prints numeric, with at most BILLING_DEC_SCALE decimals.
 * KERR_PARSE otherwise (a sign, an exponent, NaN, more decimals). */
int billing_dec_parse(const char *s, struct billing_dec *out, struct kerr *e);

/* ---- integration ------------------------------------------------------- */

/* One observation of a pod: its usage rate at time t_ms. */
struct billing_point {
	int64_t t_ms;
	int64_t cpu_nano;  /* nano-cores, >= 0 */
	int64_t mem_bytes; /* bytes, >= 0 */
};

/* The usage of one pod over one interval. */
struct billing_integral {
	struct billing_dec cpu_milli_seconds;
	struct billing_dec memory_byte_seconds;
};

/* Trapezoid between a and b (a->t_ms <= b->t_ms, values >= 0; else
 * KERR_INVAL). A zero-length interval is zero usage. */
int billing_trapezoid(const struct billing_point *a, const struct billing_point *b, struct billing_integral *out,
		      struct kerr *e);

/*
 * Where a pod's first interval begins, given its first sample at t_ms
 * with a usage window of window_ms (0: unknown): start_ms (0: unknown,
 * then t_ms - window_ms), but not before epoch_ms (0: none) and not after
 * t_ms. The interval [result, t_ms] is integrated at the sample's rate.
 */
int64_t billing_first_start(int64_t start_ms, int64_t window_ms, int64_t epoch_ms, int64_t t_ms);

/*
 * When a pod that vanished after its last sample at last_ms, noticed at
 * now_ms (> last_ms), ended: the earlier of deleted_ms (its
 * deletionTimestamp) and observed_ms (when the informer saw it deleted),
 * each 0 when unknown; a known value at or before last_ms means last_ms
 * (nothing more to bill); one after now_ms, or none, means the midpoint
 * of last_ms and now_ms. Always within [last_ms, now_ms].
 */
int64_t billing_end_time(int64_t last_ms, int64_t now_ms, int64_t deleted_ms, int64_t observed_ms);

/* ---- pricing ------------------------------------------------------------- */

struct billing_prices {
	int64_t cpu_core_hour_micro;   /* one core for one hour, in millionths of the currency unit */
	int64_t memory_gib_hour_micro; /* one GiB (2^30 bytes) for one hour, likewise */
	char currency[4];              /* ISO 4217 code, e.g. "USD" */
};

/* Digits of the minor unit of an ISO 4217 currency: 2 (USD cents) unless
 * the code is one of the few with 0 (JPY, KRW, ...) or 3 (BHD, KWD, ...).
 * KERR_INVAL unless code is three upper-case ASCII letters. */
int billing_currency_digits(const char *code);

/* A price in millionths as a decimal with at least 2 and at most 6
 * decimals: 50000 -> "0.05", 1234567 -> "1.234567". Length or KERR_INVAL. */
int billing_format_price(int64_t micro, char *buf, size_t cap);
/* An amount in minor units with the currency's digits: (1234, 2) ->
 * "12.34", (5, 0) -> "5". Length or KERR_INVAL. */
int billing_format_minor(int64_t minor, int digits, char *buf, size_t cap);

enum billing_item { BILLING_ITEM_CPU, BILLING_ITEM_MEMORY, BILLING_ITEM_COUNT };

struct billing_line {
	const char *item;        /* "cpu" or "memory" (static) */
	const char *unit;        /* "core-hour" or "GiB-hour" (static) */
	char quantity[BILLING_DEC_MAX];   /* core-hours / GiB-hours, 6 decimals, rounded half up, for people */
	int64_t unit_price_micro;
	char unit_price[BILLING_MONEY_MAX];
	int64_t amount_minor;    /* exact usage x unit price, rounded half up to the minor unit */
	char amount[BILLING_MONEY_MAX];
};

struct billing_charges {
	char currency[4];
	int minor_digits;
	struct billing_line lines[BILLING_ITEM_COUNT]; /* indexed by enum billing_item */
	int64_t total_minor;     /* sum of the lines' amount_minor */
	char total[BILLING_MONEY_MAX];
};

/* Price a period's usage. KERR_INVAL for a bad currency or negative price,
 * KERR_TOO_LARGE if an amount exceeds int64 minor units. */
int billing_charge(struct billing_dec cpu_milli_seconds, struct billing_dec memory_byte_seconds,
		   const struct billing_prices *p, struct billing_charges *out, struct kerr *e);

/* ---- time ---------------------------------------------------------------- */

/* RFC 3339 ("2026-11-25T15:14:32Z", "...32.5+01:00") to unix ms, the
 * fraction truncated to ms. KERR_PARSE otherwise. */
int billing_parse_time(const char *s, size_t len, int64_t *ms, struct kerr *e);
/* Unix ms to "2026-11-25T15:14:32.123Z" (UTC). Length or KERR_INVAL. */
int billing_format_time(int64_t ms, char *buf, size_t cap);
/* A Go duration as metrics-server writes a window ("10.005s", "1m0.5s",
 * "500ms"; units h, m, s, ms, us, µs, ns) to ms, rounded half up.
 * KERR_PARSE otherwise. */
int billing_parse_duration(const char *s, size_t len, int64_t *ms, struct kerr *e);
/* The UTC calendar month containing t_ms: [*start_ms, *end_ms). */
void billing_month_bounds(int64_t t_ms, int64_t *start_ms, int64_t *end_ms);

/* ---- metrics.k8s.io PodMetricsList ----------------------------------------- */

/* CPU quantity to nano-cores: "250000000n", "250000u", "250m", "1"; a
 * form finer than a milli-core other than a whole number of n or u is
 * rounded to milli-cores as quantity.h does. KERR_PARSE otherwise. */
int billing_parse_cpu_nano(const char *s, size_t len, int64_t *nano, struct kerr *e);

/* One pod of a PodMetricsList: the sum over its containers. */
struct billing_pod_sample {
	char *key;          /* "namespace/name", malloc'd, owned by the sample array */
	size_t ns_len;      /* key[0..ns_len) is the namespace */
	int64_t t_ms;       /* timestamp: the end of the usage window */
	int64_t window_ms;  /* window length; 0 when absent */
	int64_t cpu_nano;
	int64_t mem_bytes;
};

/*
 * An incremental parser of a PodMetricsList body (feed it the chunks of
 * kube_client_stream). An item that lacks its name, namespace or
 * timestamp or has an unparsable quantity or time is skipped and counted,
 * the first such problem kept as a message; malformed JSON fails the
 * parse. Owned by the caller: billing_podmetrics_free(). One thread.
 */
struct billing_podmetrics;

int billing_podmetrics_new(struct billing_podmetrics **out, struct kerr *e);
void billing_podmetrics_free(struct billing_podmetrics *p);
int billing_podmetrics_feed(struct billing_podmetrics *p, const char *data, size_t len, struct kerr *e);
/*
 * End of input. *samples gets the parsed pods (a malloc'd array of *n, NULL
 * when 0, released with billing_samples_free) and the parser forgets them;
 * *skipped the number of items skipped and skip_reason (cap bytes, may be
 * NULL) the first reason, "" when none.
 */
int billing_podmetrics_finish(struct billing_podmetrics *p, struct billing_pod_sample **samples, size_t *n,
			      size_t *skipped, char *skip_reason, size_t cap, struct kerr *e);
void billing_samples_free(struct billing_pod_sample *samples, size_t n);

#endif
