#include "timefmt.h"

#include <stdio.h>

#include "kerr.h"

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in unix
 * microseconds: the range a four-digit year can show. */
#define TIMEFMT_MIN_US (-62167219200LL * 1000000)
#define TIMEFMT_MAX_US (253402300799LL * 1000000 + 999999)

int64_t timefmt_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return a % b < 0 ? q - 1 : q;
}

int64_t timefmt_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void timefmt_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

int timefmt_days_in_month(int64_t y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

/* n decimal digits at s + at, within len; -1 when any is missing. */
static int timefmt_digits(const char *s, size_t len, size_t at, size_t n)
{
	int v = 0;
	if (at + n > len)
		return -1;
	for (size_t i = at; i < at + n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int timefmt_parse(const char *s, size_t len, int64_t *unix_us)
{
	if (!s || len < 20)
		return KERR_PARSE;
	int y = timefmt_digits(s, len, 0, 4), mo = timefmt_digits(s, len, 5, 2), d = timefmt_digits(s, len, 8, 2);
	int h = timefmt_digits(s, len, 11, 2), mi = timefmt_digits(s, len, 14, 2), sec = timefmt_digits(s, len, 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 ||
	    s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' ||
	    d > timefmt_days_in_month(y, mo))
		return KERR_PARSE;
	size_t i = 19;
	int64_t frac_us = 0;
	if (s[i] == '.') {
		size_t start = ++i;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			if (i - start < 6)
				frac_us = frac_us * 10 + (s[i] - '0');
		if (i == start)
			return KERR_PARSE;
		for (size_t n = i - start; n < 6; n++)
			frac_us *= 10;
	}
	int64_t offset_s = 0;
	if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
		offset_s = 0;
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		int oh = timefmt_digits(s, len, i + 1, 2), om = timefmt_digits(s, len, i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return KERR_PARSE;
		offset_s = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
	} else {
		return KERR_PARSE;
	}
	int64_t t = timefmt_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
	*unix_us = t * 1000000 + frac_us;
	return 0;
}

int timefmt_format(int64_t unix_us, int digits, char *buf, size_t cap)
{
	if (!buf || cap == 0)
		return KERR_INVAL;
	buf[0] = '\0';
	if (unix_us < TIMEFMT_MIN_US || unix_us > TIMEFMT_MAX_US || (digits != 0 && digits != 3 && digits != 6))
		return KERR_INVAL;
	int64_t secs = timefmt_floor_div(unix_us, 1000000), us = unix_us - secs * 1000000;
	int64_t days = timefmt_floor_div(secs, 86400), sod = secs - days * 86400, y;
	int m, d;
	timefmt_civil_from_days(days, &y, &m, &d);
	char frac[8] = "";
	if (digits == 3)
		snprintf(frac, sizeof(frac), ".%03d", (int)(us / 1000));
	else if (digits == 6)
		snprintf(frac, sizeof(frac), ".%06d", (int)us);
	int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", (int)y, m, d, (int)(sod / 3600),
			 (int)(sod / 60 % 60), (int)(sod % 60), frac);
	if (n < 0 || (size_t)n >= cap) {
		buf[0] = '\0';
		return KERR_INVAL;
	}
	return n;
}

struct timespec timefmt_deadline(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}
