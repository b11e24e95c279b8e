/*
 * fuzz_quantity: Kubernetes quantities ("500m", "1.5Gi", "1e3").
 *
 * Input: the quantity text (not NUL-terminated: the parser takes a length).
 * Checks, besides the sanitizers' (signed overflow, reads past the input):
 * - milli and whole-unit parses agree: a value that parses in milli-units
 *   parses in units too, as the milli value divided by 1000 rounded away
 *   from zero (the rounding the contract states);
 * - a failure is KERR_PARSE with a message;
 * - formatting a parsed milli value as CPU, or a unit value as bytes, and
 *   parsing the text back gives the same number.
 */
#include <string.h>

#include "fuzz.h"
#include "quantity.h"

static int64_t div1000_away(int64_t milli)
{
	int64_t q = milli / 1000, r = milli % 1000;
	return r > 0 ? q + 1 : r < 0 ? q - 1 : q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	int64_t milli = 0, units = 0;
	struct kerr em = {0}, eu = {0};
	int rm = quantity_parse_milli(s, size, &milli, &em);
	int ru = quantity_parse_value(s, size, &units, &eu);
	if ((rm != 0 && (rm != KERR_PARSE || em.code != rm || !em.message[0])) ||
	    (ru != 0 && (ru != KERR_PARSE || eu.code != ru || !eu.message[0])))
		fuzz_fail("quantity \"%.*s\": results %d/%d, kerr %d/%d", (int)size, s, rm, ru, em.code, eu.code);
	if (rm == 0) {
		if (ru != 0)
			fuzz_fail("quantity \"%.*s\" parses in milli-units (%lld) but not in units", (int)size, s,
			          (long long)milli);
		if (units != div1000_away(milli))
			fuzz_fail("quantity \"%.*s\": %lld milli-units but %lld units", (int)size, s, (long long)milli,
			          (long long)units);
		char buf[QUANTITY_FMT_MAX];
		int n = quantity_format_cpu_milli(milli, buf, sizeof(buf));
		int64_t back = 0;
		if (n <= 0 || (size_t)n != strlen(buf) || quantity_parse_milli(buf, (size_t)n, &back, NULL) != 0 ||
		    back != milli)
			fuzz_fail("cpu %lld milli formats as \"%s\" (%d), which parses back as %lld", (long long)milli,
			          buf, n, (long long)back);
	}
	if (ru == 0) {
		char buf[QUANTITY_FMT_MAX];
		int n = quantity_format_bytes(units, buf, sizeof(buf));
		int64_t back = 0;
		if (n <= 0 || (size_t)n != strlen(buf) || quantity_parse_value(buf, (size_t)n, &back, NULL) != 0 ||
		    back != units)
			fuzz_fail("%lld bytes format as \"%s\" (%d), which parses back as %lld", (long long)units, buf, n,
			          (long long)back);
		/* Too small a buffer is KERR_INVAL with an empty string. */
		char small[2] = "x";
		if (n >= 2 && (quantity_format_bytes(units, small, sizeof(small)) != KERR_INVAL || small[0] != '\0'))
			fuzz_fail("formatting %lld bytes into 2 bytes did not fail cleanly", (long long)units);
	}
	return 0;
}
