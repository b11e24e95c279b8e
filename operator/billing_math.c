#include "billing_math.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_stream.h"
#include "quantity.h"
#include "timefmt.h"

/* ---- 128-bit unsigned arithmetic ------------------------------------------ */

/* C11 without extensions has no 128-bit integer, so products that leave 64
 * bits (memory bytes x milliseconds, usage x price x 10^digits) are done
 * on two halves. Only what billing needs: add, multiply by 64 bits,
 * divide, compare. */
struct u128 {
	uint64_t hi;
	uint64_t lo;
};

static struct u128 u128_of(uint64_t v) { return (struct u128){0, v}; }

static int u128_cmp(struct u128 a, struct u128 b)
{
	if (a.hi != b.hi)
		return a.hi < b.hi ? -1 : 1;
	if (a.lo != b.lo)
		return a.lo < b.lo ? -1 : 1;
	return 0;
}

/* a += b; false on overflow (a unchanged). */
static bool u128_add(struct u128 *a, struct u128 b)
{
	uint64_t lo = a->lo + b.lo, carry = lo < a->lo;
	uint64_t hi = a->hi + b.hi;
	if (hi < a->hi)
		return false;
	if (hi + carry < hi)
		return false;
	a->hi = hi + carry;
	a->lo = lo;
	return true;
}

static struct u128 u128_sub(struct u128 a, struct u128 b)
{
	return (struct u128){a.hi - b.hi - (a.lo < b.lo), a.lo - b.lo};
}

/* The full 128-bit product of two 64-bit numbers, from 32-bit halves. */
static struct u128 u128_mul64(uint64_t a, uint64_t b)
{
	uint64_t a0 = a & 0xffffffffu, a1 = a >> 32, b0 = b & 0xffffffffu, b1 = b >> 32;
	uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
	uint64_t mid = (p00 >> 32) + (p01 & 0xffffffffu) + (p10 & 0xffffffffu);
	return (struct u128){p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32), (mid << 32) | (p00 & 0xffffffffu)};
}

/* *a *= m; false on overflow (a unchanged). */
static bool u128_mul(struct u128 *a, uint64_t m)
{
	struct u128 lo = u128_mul64(a->lo, m), hi = u128_mul64(a->hi, m);
	if (hi.hi != 0)
		return false;
	struct u128 r = lo;
	if (!u128_add(&r, (struct u128){hi.lo, 0}))
		return false;
	*a = r;
	return true;
}

static bool u128_bit(struct u128 a, int i) { return i >= 64 ? (a.hi >> (i - 64)) & 1 : (a.lo >> i) & 1; }

/* q = n / d, r = n % d by binary long division; d != 0 and d < 2^127
 * (every divisor here is below 2^90), so the shifted remainder never
 * overflows. */
static void u128_divmod(struct u128 n, struct u128 d, struct u128 *q, struct u128 *r)
{
	struct u128 quot = {0, 0}, rem = {0, 0};
	for (int i = 127; i >= 0; i--) {
		rem.hi = (rem.hi << 1) | (rem.lo >> 63);
		rem.lo = (rem.lo << 1) | (uint64_t)u128_bit(n, i);
		if (u128_cmp(rem, d) >= 0) {
			rem = u128_sub(rem, d);
			if (i >= 64)
				quot.hi |= (uint64_t)1 << (i - 64);
			else
				quot.lo |= (uint64_t)1 << i;
		}
	}
	*q = quot;
	if (r)
		*r = rem;
}

/* n / d rounded half up (n, d >= 0). */
static struct u128 u128_div_round(struct u128 n, struct u128 d)
{
	struct u128 q, r;
	u128_divmod(n, d, &q, &r);
	/* 2r >= d, written without doubling r: r >= d - r. */
	if (u128_cmp(r, u128_sub(d, r)) >= 0)
		u128_add(&q, u128_of(1));
	return q;
}

/* n / d for d < 2^32, with the remainder; 32 bits at a time. */
static uint32_t u128_divmod_small(struct u128 *n, uint32_t d)
{
	uint32_t limbs[4] = {(uint32_t)(n->hi >> 32), (uint32_t)n->hi, (uint32_t)(n->lo >> 32), (uint32_t)n->lo};
	uint64_t rem = 0;
	for (int i = 0; i < 4; i++) {
		uint64_t cur = (rem << 32) | limbs[i];
		limbs[i] = (uint32_t)(cur / d);
		rem = cur % d;
	}
	n->hi = ((uint64_t)limbs[0] << 32) | limbs[1];
	n->lo = ((uint64_t)limbs[2] << 32) | limbs[3];
	return (uint32_t)rem;
}

static struct u128 dec_u(struct billing_dec v) { return (struct u128){v.hi, v.lo}; }
static struct billing_dec u_dec(struct u128 v) { return (struct billing_dec){v.hi, v.lo}; }

#define POW10_SCALE 1000000u /* 10^BILLING_DEC_SCALE */

/* ---- billing_dec --------------------------------------------------------- */

struct billing_dec billing_dec_from_int(int64_t whole)
{
	return u_dec(u128_mul64(whole < 0 ? 0 : (uint64_t)whole, POW10_SCALE));
}

int billing_dec_add(struct billing_dec *acc, struct billing_dec v)
{
	struct u128 a = dec_u(*acc);
	if (!u128_add(&a, dec_u(v)))
		return KERR_TOO_LARGE;
	*acc = u_dec(a);
	return 0;
}

int billing_dec_cmp(struct billing_dec a, struct billing_dec b) { return u128_cmp(dec_u(a), dec_u(b)); }

int billing_dec_format(struct billing_dec v, char *buf, size_t cap)
{
	char digits[48];
	size_t n = 0;
	struct u128 x = dec_u(v);

	/* Digits from the least significant; at least SCALE + 1 of them so
	 * that "0.000001" gets its leading zero. */
	do {
		digits[n++] = (char)('0' + u128_divmod_small(&x, 10));
	} while ((x.hi || x.lo) || n < BILLING_DEC_SCALE + 1);
	if (n + 2 > cap) {
		if (cap > 0)
			buf[0] = '\0';
		return KERR_INVAL;
	}
	size_t o = 0;
	for (size_t i = n; i-- > 0;) {
		buf[o++] = digits[i];
		if (i == BILLING_DEC_SCALE)
			buf[o++] = '.';
	}
	buf[o] = '\0';
	return (int)o;
}

int billing_dec_parse(const char *s, struct billing_dec *out, struct kerr *e)
{
	struct u128 v = {0, 0};
	size_t i = 0, frac = 0, whole = 0;
	bool point = false;

	for (; s[i]; i++) {
		if (s[i] == '.' && !point) {
			point = true;
			continue;
		}
		if (s[i] < '0' || s[i] > '9' || (point && ++frac > BILLING_DEC_SCALE))
			goto bad;
		whole += !point;
		if (!u128_mul(&v, 10) || !u128_add(&v, u128_of((uint64_t)(s[i] - '0'))))
			return kerr_set(e, KERR_TOO_LARGE, "decimal '%.60s' is too large", s);
	}
	if (whole + frac == 0)
		goto bad;
	for (; frac < BILLING_DEC_SCALE; frac++) {
		if (!u128_mul(&v, 10))
			return kerr_set(e, KERR_TOO_LARGE, "decimal '%.60s' is too large", s);
	}
	*out = u_dec(v);
	return 0;
bad:
	return kerr_set(e, KERR_PARSE,
			"'%.60s' is not a plain non-negative decimal with at most %d decimals (e.g. 12.5)", s,
			BILLING_DEC_SCALE);
}

/* ---- integration ----------------------------------------------------------- */

int billing_trapezoid(const struct billing_point *a, const struct billing_point *b, struct billing_integral *out,
		      struct kerr *e)
{
	if (b->t_ms < a->t_ms || a->cpu_nano < 0 || b->cpu_nano < 0 || a->mem_bytes < 0 || b->mem_bytes < 0)
		return kerr_set(e, KERR_INVAL,
				"cannot integrate from t=%lld (cpu %lld, mem %lld) to t=%lld (cpu %lld, mem %lld): "
				"time goes backwards or a value is negative",
				(long long)a->t_ms, (long long)a->cpu_nano, (long long)a->mem_bytes, (long long)b->t_ms,
				(long long)b->cpu_nano, (long long)b->mem_bytes);
	uint64_t dt = (uint64_t)(b->t_ms - a->t_ms);
	/* (ca + cb) / 2 nano-cores x dt ms = (ca + cb) dt / 2e9 milli-core-
	 * seconds, i.e. (ca + cb) dt / 2000 in units of 10^-6 of one. */
	struct u128 cpu = u128_mul64((uint64_t)a->cpu_nano + (uint64_t)b->cpu_nano, dt);
	/* (ma + mb) / 2 bytes x dt ms = (ma + mb) dt / 2000 byte-seconds,
	 * i.e. (ma + mb) dt x 500 in units of 10^-6: exact. */
	struct u128 mem = u128_mul64((uint64_t)a->mem_bytes + (uint64_t)b->mem_bytes, dt);
	if (!u128_mul(&mem, 500))
		return kerr_set(e, KERR_TOO_LARGE, "memory usage over %llu ms is too large to count",
				(unsigned long long)dt);
	out->cpu_milli_seconds = u_dec(u128_div_round(cpu, u128_of(2000)));
	out->memory_byte_seconds = u_dec(mem);
	return 0;
}

int64_t billing_first_start(int64_t start_ms, int64_t window_ms, int64_t epoch_ms, int64_t t_ms)
{
	int64_t from = start_ms > 0 ? start_ms : t_ms - (window_ms > 0 ? window_ms : 0);
	if (epoch_ms > 0 && from < epoch_ms)
		from = epoch_ms;
	return from > t_ms ? t_ms : from;
}

int64_t billing_end_time(int64_t last_ms, int64_t now_ms, int64_t deleted_ms, int64_t observed_ms)
{
	int64_t known = deleted_ms > 0 ? deleted_ms : 0;
	if (observed_ms > 0 && (known == 0 || observed_ms < known))
		known = observed_ms;
	if (now_ms < last_ms)
		now_ms = last_ms;
	if (known > 0 && known <= last_ms)
		return last_ms;
	if (known > 0 && known <= now_ms)
		return known;
	return last_ms + (now_ms - last_ms) / 2;
}

/* ---- pricing --------------------------------------------------------------- */

int billing_currency_digits(const char *code)
{
	/* ISO 4217 currencies whose minor unit is not the cent. */
	static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
	static const char three[] = "BHD IQD JOD KWD LYD OMR TND";

	if (!code || strlen(code) != 3)
		return KERR_INVAL;
	for (int i = 0; i < 3; i++) {
		if (code[i] < 'A' || code[i] > 'Z')
			return KERR_INVAL;
	}
	if (strstr(zero, code))
		return 0;
	if (strstr(three, code))
		return 3;
	return 2;
}

int billing_format_price(int64_t micro, char *buf, size_t cap)
{
	if (micro < 0) {
		if (cap > 0)
			buf[0] = '\0';
		return KERR_INVAL;
	}
	char frac[8];
	snprintf(frac, sizeof(frac), "%06lld", (long long)(micro % 1000000));
	size_t n = 6;
	while (n > 2 && frac[n - 1] == '0')
		n--;
	int len = snprintf(buf, cap, "%lld.%.*s", (long long)(micro / 1000000), (int)n, frac);
	if (len < 0 || (size_t)len >= cap) {
		if (cap > 0)
			buf[0] = '\0';
		return KERR_INVAL;
	}
	return len;
}

static const int64_t pow10_table[] = {1, 10, 100, 1000};

int billing_format_minor(int64_t minor, int digits, char *buf, size_t cap)
{
	int len;
	if (minor < 0 || digits < 0 || digits > 3) {
		if (cap > 0)
			buf[0] = '\0';
		return KERR_INVAL;
	}
	if (digits == 0)
		len = snprintf(buf, cap, "%lld", (long long)minor);
	else
		len = snprintf(buf, cap, "%lld.%0*lld", (long long)(minor / pow10_table[digits]), digits,
			       (long long)(minor % pow10_table[digits]));
	if (len < 0 || (size_t)len >= cap) {
		if (cap > 0)
			buf[0] = '\0';
		return KERR_INVAL;
	}
	return len;
}

/* Milli-core-seconds in a core-hour, byte-seconds in a GiB-hour. */
#define CPU_UNIT 3600000ull
#define MEM_UNIT (3600ull << 30)

/* One line: usage (10^-6 units) priced per `unit` of usage. */
static int billing_line_compute(struct billing_dec usage, uint64_t unit, int64_t price_micro, int digits,
				struct billing_line *l, struct kerr *e)
{
	/* The quantity for people: usage / unit, to 6 decimals. */
	struct billing_dec q = u_dec(u128_div_round(dec_u(usage), u128_of(unit)));
	if (billing_dec_format(q, l->quantity, sizeof(l->quantity)) < 0)
		return kerr_set(e, KERR_TOO_LARGE, "%s quantity does not fit", l->item);
	/* amount (minor units) = usage x 10^-6 / unit x price x 10^-6 x 10^digits. */
	struct u128 n = dec_u(usage);
	if (!u128_mul(&n, (uint64_t)price_micro) || !u128_mul(&n, (uint64_t)pow10_table[digits]))
		return kerr_set(e, KERR_TOO_LARGE, "the %s amount is too large to compute", l->item);
	struct u128 d = u128_mul64(unit, 1000000000000ull);
	struct u128 amount = u128_div_round(n, d);
	if (amount.hi != 0 || amount.lo > (uint64_t)INT64_MAX)
		return kerr_set(e, KERR_TOO_LARGE, "the %s amount exceeds the largest amount representable", l->item);
	l->unit_price_micro = price_micro;
	l->amount_minor = (int64_t)amount.lo;
	if (billing_format_price(price_micro, l->unit_price, sizeof(l->unit_price)) < 0 ||
	    billing_format_minor(l->amount_minor, digits, l->amount, sizeof(l->amount)) < 0)
		return kerr_set(e, KERR_TOO_LARGE, "the %s amount does not fit its text", l->item);
	return 0;
}

int billing_charge(struct billing_dec cpu_milli_seconds, struct billing_dec memory_byte_seconds,
		   const struct billing_prices *p, struct billing_charges *out, struct kerr *e)
{
	int digits = billing_currency_digits(p->currency);
	int rc;

	memset(out, 0, sizeof(*out));
	if (digits < 0)
		return kerr_set(e, KERR_INVAL, "currency '%.8s' is not an ISO 4217 code such as USD", p->currency);
	if (p->cpu_core_hour_micro < 0 || p->memory_gib_hour_micro < 0)
		return kerr_set(e, KERR_INVAL, "prices must not be negative");
	memcpy(out->currency, p->currency, 4);
	out->minor_digits = digits;
	out->lines[BILLING_ITEM_CPU].item = "cpu";
	out->lines[BILLING_ITEM_CPU].unit = "core-hour";
	out->lines[BILLING_ITEM_MEMORY].item = "memory";
	out->lines[BILLING_ITEM_MEMORY].unit = "GiB-hour";
	if ((rc = billing_line_compute(cpu_milli_seconds, CPU_UNIT, p->cpu_core_hour_micro, digits,
				       &out->lines[BILLING_ITEM_CPU], e)) < 0 ||
	    (rc = billing_line_compute(memory_byte_seconds, MEM_UNIT, p->memory_gib_hour_micro, digits,
				       &out->lines[BILLING_ITEM_MEMORY], e)) < 0)
		return rc;
	int64_t a = out->lines[BILLING_ITEM_CPU].amount_minor, b = out->lines[BILLING_ITEM_MEMORY].amount_minor;
	if (a > INT64_MAX - b)
		return kerr_set(e, KERR_TOO_LARGE, "the invoice total exceeds the largest amount representable");
	out->total_minor = a + b;
	if (billing_format_minor(out->total_minor, digits, out->total, sizeof(out->total)) < 0)
		return kerr_set(e, KERR_TOO_LARGE, "the invoice total does not fit its text");
	return 0;
}

/* ---- time ------------------------------------------------------------------ */

int billing_parse_time(const char *s, size_t len, int64_t *ms, struct kerr *e)
{
	int64_t us;
	if (timefmt_parse(s, len, &us) < 0)
		return kerr_set(e, KERR_PARSE, "'%.*s' is not an RFC 3339 time such as 2026-11-25T15:14:32Z",
				(int)(len > 64 ? 64 : len), s);
	*ms = timefmt_floor_div(us, 1000);
	return 0;
}

int billing_format_time(int64_t ms, char *buf, size_t cap)
{
	int len = ms > INT64_MAX / 1000 || ms < INT64_MIN / 1000 ? KERR_INVAL : timefmt_format(ms * 1000, 3, buf, cap);
	if (len < 0 && cap > 0)
		buf[0] = '\0';
	return len;

}

int billing_parse_duration(const char *s, size_t len, int64_t *ms, struct kerr *e)
{
	static const struct {
		const char *unit;
		int64_t ns;
	} units[] = {{"ns", 1},
		     {"us", 1000},
		     {"\xc2\xb5s", 1000}, /* µs, MICRO SIGN */
		     {"\xce\xbcs", 1000}, /* μs, GREEK SMALL LETTER MU */
		     {"ms", 1000000},
		     {"s", 1000000000},
		     {"m", 60000000000},
		     {"h", 3600000000000}};
	const int64_t max_ns = INT64_MAX / 4;
	int64_t total = 0;
	size_t i = 0;

	if (len == 1 && s[0] == '0') {
		*ms = 0;
		return 0;
	}
	if (len == 0)
		goto bad;
	while (i < len) {
		int64_t whole = 0, frac = 0, scale = 1;
		size_t nd = 0;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
			if (whole > (max_ns - 9) / 10)
				goto bad;
			whole = whole * 10 + (s[i] - '0');
		}
		if (i < len && s[i] == '.') {
			for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
				/* Digits beyond a nanosecond's worth change nothing. */
				if (scale < 1000000000) {
					frac = frac * 10 + (s[i] - '0');
					scale *= 10;
				}
			}
		}
		if (nd == 0)
			goto bad;
		size_t u = 0, nunits = sizeof(units) / sizeof(units[0]), ulen = 0;
		/* Longest match first: "ms" before "m", "ns" before nothing. */
		size_t best = nunits;
		for (u = 0; u < nunits; u++) {
			size_t l = strlen(units[u].unit);
			if (l <= len - i && memcmp(s + i, units[u].unit, l) == 0 && l > ulen) {
				best = u;
				ulen = l;
			}
		}
		if (best == nunits)
			goto bad;
		i += ulen;
		if (whole > max_ns / units[best].ns)
			goto bad;
		/* frac x unit can leave 64 bits (9 digits of hours). */
		struct u128 f = u128_mul64((uint64_t)frac, (uint64_t)units[best].ns);
		u128_divmod_small(&f, (uint32_t)scale);
		total += whole * units[best].ns + (int64_t)f.lo;
		if (total > max_ns)
			goto bad;
	}
	*ms = (total + 500000) / 1000000;
	return 0;
bad:
	return kerr_set(e, KERR_PARSE, "'%.*s' is not a duration such as 10.005s or 1m0.5s",
			(int)(len > 64 ? 64 : len), s);
}

void billing_month_bounds(int64_t t_ms, int64_t *start_ms, int64_t *end_ms)
{
	int64_t y;
	int m, d;
	timefmt_civil_from_days(timefmt_floor_div(t_ms, 86400 * 1000), &y, &m, &d);
	*start_ms = timefmt_days_from_civil(y, m, 1) * 86400 * 1000;
	*end_ms = (m == 12 ? timefmt_days_from_civil(y + 1, 1, 1) : timefmt_days_from_civil(y, m + 1, 1)) * 86400 * 1000;
}

/* ---- metrics.k8s.io PodMetricsList ------------------------------------------ */

int billing_parse_cpu_nano(const char *s, size_t len, int64_t *nano, struct kerr *e)
{
	/* metrics-server writes nano-cores ("250123456n"); keep them whole
	 * rather than round every sample to a milli-core. */
	if (len >= 2 && (s[len - 1] == 'n' || s[len - 1] == 'u')) {
		int64_t v = 0, mult = s[len - 1] == 'n' ? 1 : 1000;
		size_t i = 0;
		for (; i < len - 1 && s[i] >= '0' && s[i] <= '9'; i++) {
			if (v > (INT64_MAX - 9) / 10)
				break;
			v = v * 10 + (s[i] - '0');
		}
		if (i == len - 1 && v <= INT64_MAX / mult) {
			*nano = v * mult;
			return 0;
		}
	}
	int64_t milli;
	int rc = quantity_parse_milli(s, len, &milli, e);
	if (rc < 0)
		return rc;
	if (milli < 0 || milli > INT64_MAX / 1000000)
		return kerr_set(e, KERR_PARSE, "cpu '%.*s' is negative or too large", (int)(len > 64 ? 64 : len), s);
	*nano = milli * 1000000;
	return 0;
}

/* Longest namespace and name (a DNS subdomain) accepted. */
#define PM_NAME_MAX 253

struct billing_podmetrics {
	struct json_stream *js;
	/* The item being read. */
	bool in_item, item_bad;
	char ns[PM_NAME_MAX + 1], name[PM_NAME_MAX + 1];
	int64_t t_ms, window_ms, cpu_nano, mem_bytes;
	/* Results. */
	struct billing_pod_sample *samples;
	size_t n, cap, skipped;
	char reason[sizeof(((struct kerr *)0)->message)];
};

/* Mark the current item bad, keeping the first reason. */
static void pm_skip(struct billing_podmetrics *p, const struct kerr *why)
{
	if (!p->item_bad && p->reason[0] == '\0')
		snprintf(p->reason, sizeof(p->reason), "%s", why->message);
	p->item_bad = true;
}

static bool pm_is(const struct json_path *p, size_t depth, const char *const *keys)
{
	if (p->depth != depth || !json_seg_is(&p->seg[0], "items") || p->seg[1].key)
		return false;
	for (size_t i = 2; i < depth; i++) {
		if (keys[i - 2] ? !json_seg_is(&p->seg[i], keys[i - 2]) : p->seg[i].key != NULL)
			return false;
	}
	return true;
}

static int pm_scalar(void *ud, const struct json_path *path, enum json_type type, const char *text, size_t len,
		     struct kerr *e)
{
	(void)e;
	struct billing_podmetrics *p = ud;
	static const char *const k_name[] = {"metadata", "name"}, *const k_ns[] = {"metadata", "namespace"},
				 *const k_ts[] = {"timestamp"}, *const k_win[] = {"window"},
				 *const k_cpu[] = {"containers", NULL, "usage", "cpu"},
				 *const k_mem[] = {"containers", NULL, "usage", "memory"};
	struct kerr why = {0};

	if (!p->in_item || p->item_bad || type == JSON_NULL)
		return 0;
	if (pm_is(path, 4, k_name) || pm_is(path, 4, k_ns)) {
		char *dst = json_seg_is(&path->seg[3], "name") ? p->name : p->ns;
		if (type != JSON_STRING || len == 0 || len > PM_NAME_MAX || memchr(text, '/', len) || memchr(text, 0, len)) {
			kerr_set(&why, KERR_PARSE, "item %zu: metadata.%s is not a name", path->seg[1].index,
				 path->seg[3].key);
			pm_skip(p, &why);
			return 0;
		}
		memcpy(dst, text, len);
		dst[len] = '\0';
	} else if (pm_is(path, 3, k_ts) || pm_is(path, 3, k_win)) {
		bool ts = json_seg_is(&path->seg[2], "timestamp");
		struct kerr perr = {0};
		int rc = type != JSON_STRING ? kerr_set(&perr, KERR_PARSE, "not a string")
			 : ts		     ? billing_parse_time(text, len, &p->t_ms, &perr)
					     : billing_parse_duration(text, len, &p->window_ms, &perr);
		if (rc < 0) {
			kerr_set(&why, KERR_PARSE, "item %zu: bad %s: %.400s", path->seg[1].index, ts ? "timestamp" : "window",
				 perr.message);
			pm_skip(p, &why);
		}
	} else if (pm_is(path, 6, k_cpu) || pm_is(path, 6, k_mem)) {
		bool cpu = json_seg_is(&path->seg[5], "cpu");
		int64_t v = 0, *sum = cpu ? &p->cpu_nano : &p->mem_bytes;
		struct kerr perr = {0};
		int rc = type != JSON_STRING ? kerr_set(&perr, KERR_PARSE, "not a string")
			 : cpu		     ? billing_parse_cpu_nano(text, len, &v, &perr)
					     : quantity_parse_value(text, len, &v, &perr);
		if (rc == 0 && (v < 0 || v > INT64_MAX - *sum))
			rc = kerr_set(&perr, KERR_PARSE, "negative, or the sum overflows");
		if (rc < 0) {
			kerr_set(&why, KERR_PARSE, "item %zu: bad %s usage: %.400s", path->seg[1].index, cpu ? "cpu" : "memory",
				 perr.message);
			pm_skip(p, &why);
			return 0;
		}
		*sum += v;
	}
	return 0;
}

static int pm_start(void *ud, const struct json_path *path, enum json_type type, struct kerr *e)
{
	(void)e;
	struct billing_podmetrics *p = ud;
	if (type == JSON_OBJECT && path->depth == 2 && json_seg_is(&path->seg[0], "items") && !path->seg[1].key) {
		p->in_item = true;
		p->item_bad = false;
		p->ns[0] = p->name[0] = '\0';
		p->t_ms = p->window_ms = p->cpu_nano = p->mem_bytes = 0;
	}
	return 0;
}

static int pm_end(void *ud, const struct json_path *path, enum json_type type, struct kerr *e)
{
	struct billing_podmetrics *p = ud;
	if (type != JSON_OBJECT || path->depth != 2 || !p->in_item)
		return 0;
	p->in_item = false;
	if (!p->item_bad && (!p->ns[0] || !p->name[0] || p->t_ms == 0)) {
		struct kerr why = {0};
		kerr_set(&why, KERR_PARSE, "item %zu lacks metadata.name, metadata.namespace or timestamp",
			 path->seg[1].index);
		pm_skip(p, &why);
	}
	if (p->item_bad) {
		p->skipped++;
		return 0;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct billing_pod_sample *s = realloc(p->samples, cap * sizeof(*s));
		if (!s)
			return kerr_set(e, KERR_NOMEM, "out of memory reading pod metrics");
		p->samples = s;
		p->cap = cap;
	}
	size_t nl = strlen(p->ns), ml = strlen(p->name);
	char *key = malloc(nl + ml + 2);
	if (!key)
		return kerr_set(e, KERR_NOMEM, "out of memory reading pod metrics");
	memcpy(key, p->ns, nl);
	key[nl] = '/';
	memcpy(key + nl + 1, p->name, ml + 1);
	p->samples[p->n++] = (struct billing_pod_sample){key, nl, p->t_ms, p->window_ms, p->cpu_nano, p->mem_bytes};
	return 0;
}

int billing_podmetrics_new(struct billing_podmetrics **out, struct kerr *e)
{
	struct billing_podmetrics *p = calloc(1, sizeof(*p));
	if (!p)
		return kerr_set(e, KERR_NOMEM, "out of memory creating the pod metrics parser");
	struct json_stream_cbs cbs = {pm_scalar, pm_start, pm_end};
	/* No string of a PodMetrics object is long: names are at most 253. */
	p->js = json_stream_new(&cbs, p, 4096, e);
	if (!p->js) {
		free(p);
		return e ? e->code : KERR_NOMEM;
	}
	*out = p;
	return 0;
}

void billing_podmetrics_free(struct billing_podmetrics *p)
{
	if (!p)
		return;
	json_stream_free(p->js);
	billing_samples_free(p->samples, p->n);
	free(p);
}

int billing_podmetrics_feed(struct billing_podmetrics *p, const char *data, size_t len, struct kerr *e)
{
	return json_stream_feed(p->js, data, len, e);
}

int billing_podmetrics_finish(struct billing_podmetrics *p, struct billing_pod_sample **samples, size_t *n,
			      size_t *skipped, char *skip_reason, size_t cap, struct kerr *e)
{
	int rc = json_stream_finish(p->js, e);
	if (rc < 0)
		return rc;
	*samples = p->samples;
	*n = p->n;
	*skipped = p->skipped;
	if (skip_reason && cap > 0)
		snprintf(skip_reason, cap, "%s", p->reason);
	p->samples = NULL;
	p->n = p->cap = p->skipped = 0;
	p->reason[0] = '\0';
	return 0;
}

void billing_samples_free(struct billing_pod_sample *samples, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(samples[i].key);
	free(samples);
}
