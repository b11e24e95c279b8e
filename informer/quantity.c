#include "quantity.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Longer inputs are not quantities anyone writes; the bound keeps the exact
 * decimal arithmetic below in fixed-size buffers. */
#define QUANTITY_MAX_LEN 64
/* Beyond this decimal exponent every nonzero value overflows or rounds to
 * one unit, so larger exponents are clamped rather than rejected. */
#define QUANTITY_MAX_EXP 1000

#define QUANTITY_FORMS "a number with an optional suffix: n, u, m, k, M, G, T, P, E, " \
	"Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3 (e.g. \"500m\", \"1.5Gi\")"

/* A quantity decomposed exactly: |value| = digits * 10^exp10 * 2^exp2. */
struct qnum {
	int negative;
	/* Decimal digits, least significant first; room for the input plus the
	 * 19 digits that a 2^60 multiplier adds. */
	unsigned char digit[QUANTITY_MAX_LEN + 20];
	size_t ndigits;
	int exp10;
	int exp2;
};

static int quantity_invalid(const char *s, size_t len, struct kerr *e)
{
	int shown = len > QUANTITY_MAX_LEN ? QUANTITY_MAX_LEN : (int)len;
	return kerr_set(e, KERR_PARSE, "invalid quantity \"%.*s%s\": expected %s",
	                shown, s, len > QUANTITY_MAX_LEN ? "..." : "", QUANTITY_FORMS);
}

static int quantity_suffix(const char *s, size_t len, struct qnum *q)
{
	static const struct {
		const char *name;
		int exp10, exp2;
	} suffixes[] = {
		{"", 0, 0},    {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},
		{"k", 3, 0},   {"M", 6, 0},   {"G", 9, 0},   {"T", 12, 0},
		{"P", 15, 0},  {"E", 18, 0},  {"Ki", 0, 10}, {"Mi", 0, 20},
		{"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60},
	};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strlen(suffixes[i].name) == len && memcmp(suffixes[i].name, s, len) == 0) {
			q->exp10 += suffixes[i].exp10;
			q->exp2 = suffixes[i].exp2;
			return 0;
		}
	}
	/* Exponent form: [eE][+-]digits; "E" alone was matched as exa above. */
	if (len < 2 || (s[0] != 'e' && s[0] != 'E'))
		return -1;
	size_t i = 1;
	int neg = 0;
	if (s[i] == '+' || s[i] == '-')
		neg = s[i++] == '-';
	if (i == len)
		return -1;
	int exp = 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (exp < QUANTITY_MAX_EXP)
			exp = exp * 10 + (s[i] - '0');
	}
	if (exp > QUANTITY_MAX_EXP)
		exp = QUANTITY_MAX_EXP;
	q->exp10 += neg ? -exp : exp;
	return 0;
}

static int quantity_decompose(const char *s, size_t len, struct qnum *q)
{
	memset(q, 0, sizeof(*q));
	size_t i = 0;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		q->negative = s[i++] == '-';
	unsigned char msd_first[QUANTITY_MAX_LEN];
	size_t n = 0, nfrac = 0, seen = 0;
	int in_frac = 0;
	for (; i < len; i++) {
		if (s[i] == '.' && !in_frac) {
			in_frac = 1;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			break;
		seen++;
		if (in_frac)
			nfrac++;
		/* Leading zeros carry no value; skipping them keeps n exact. */
		if (n == 0 && s[i] == '0')
			continue;
		msd_first[n++] = (unsigned char)(s[i] - '0');
	}
	if (seen == 0)
		return -1;
	/* Zeros skipped after the point still shift the fraction: count all
	 * fraction digits, kept or not. */
	q->exp10 = -(int)nfrac;
	for (size_t k = 0; k < n; k++)
		q->digit[k] = msd_first[n - 1 - k];
	q->ndigits = n;
	return quantity_suffix(s + i, len - i, q);
}

static void quantity_mul2(struct qnum *q)
{
	unsigned carry = 0;
	for (size_t k = 0; k < q->ndigits; k++) {
		unsigned d = q->digit[k] * 2u + carry;
		q->digit[k] = (unsigned char)(d % 10);
		carry = d / 10;
	}
	if (carry)
		q->digit[q->ndigits++] = (unsigned char)carry;
}

/* |q| * 10^scale as a magnitude, rounded up; -1 when above INT64_MAX. */
static int quantity_scale(struct qnum *q, int scale, int64_t *out)
{
	for (int k = 0; k < q->exp2; k++)
		quantity_mul2(q);
	if (q->ndigits == 0) {
		*out = 0;
		return 0;
	}
	long x = (long)q->exp10 + scale;
	size_t n = q->ndigits, drop = x < 0 ? (size_t)-x : 0;
	int round_up = 0;
	for (size_t k = 0; k < drop && k < n; k++)
		round_up |= q->digit[k] != 0;
	const uint64_t max = INT64_MAX;
	uint64_t v = 0;
	for (size_t k = n; k > drop; k--) {
		unsigned d = q->digit[k - 1];
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	for (long k = 0; k < x; k++) {
		if (v > max / 10)
			return -1;
		v *= 10;
	}
	if (round_up) {
		if (v == max)
			return -1;
		v++;
	}
	*out = (int64_t)v;
	return 0;
}

static int quantity_parse(const char *s, size_t len, int scale, int64_t *out, struct kerr *e)
{
	struct qnum q;
	if (!s || !out || len == 0 || len > QUANTITY_MAX_LEN || quantity_decompose(s, len, &q) < 0)
		return quantity_invalid(s ? s : "", s ? len : 0, e);
	int64_t v;
	if (quantity_scale(&q, scale, &v) < 0)
		return kerr_set(e, KERR_PARSE,
		                "quantity \"%.*s\" is out of range: at most %" PRId64 " %s are representable",
		                (int)len, s, INT64_MAX, scale ? "milli-units" : "units");
	*out = q.negative ? -v : v;
	return 0;
}

int quantity_parse_milli(const char *s, size_t len, int64_t *out, struct kerr *e)
{
	return quantity_parse(s, len, 3, out, e);
}

int quantity_parse_value(const char *s, size_t len, int64_t *out, struct kerr *e)
{
	return quantity_parse(s, len, 0, out, e);
}

static int quantity_emit(char *buf, size_t cap, const char *sign, uint64_t mag, const char *suffix)
{
	if (!buf)
		return KERR_INVAL;
	int n = snprintf(buf, cap, "%s%" PRIu64 "%s", sign, mag, suffix);
	if (n < 0 || (size_t)n >= cap) {
		if (cap > 0)
			buf[0] = '\0';
		return KERR_INVAL;
	}
	return n;
}

/* Magnitude without overflow for INT64_MIN. */
static uint64_t quantity_abs(int64_t v)
{
	return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

int quantity_format_cpu_milli(int64_t milli, char *buf, size_t cap)
{
	const char *sign = milli < 0 ? "-" : "";
	uint64_t mag = quantity_abs(milli);
	if (mag % 1000 == 0)
		return quantity_emit(buf, cap, sign, mag / 1000, "");
	return quantity_emit(buf, cap, sign, mag, "m");
}

int quantity_format_bytes(int64_t bytes, char *buf, size_t cap)
{
	static const char *const suffix[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
	const char *sign = bytes < 0 ? "-" : "";
	uint64_t mag = quantity_abs(bytes);
	size_t k = 0;
	while (mag != 0 && mag % 1024 == 0 && k + 1 < sizeof(suffix) / sizeof(suffix[0])) {
		mag /= 1024;
		k++;
	}
	return quantity_emit(buf, cap, sign, mag, suffix[k]);
}
