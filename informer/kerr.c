#include "kerr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const kerr_descs[KERR_COUNT_] = {
	[KERR_OK] = "success",
#define KERR_DESC_(name, desc) [KERR_##name##_] = desc,
	KERR_MAP(KERR_DESC_)
#undef KERR_DESC_
};

static const char *const kerr_names[KERR_COUNT_] = {
	[KERR_OK] = "OK",
#define KERR_NAME_(name, desc) [KERR_##name##_] = #name,
	KERR_MAP(KERR_NAME_)
#undef KERR_NAME_
};

const char *kerr_strerror(int code)
{
	if (code > 0 || -code >= KERR_COUNT_)
		return "unknown error";
	return kerr_descs[-code];
}

const char *kerr_name(int code)
{
	if (code > 0 || -code >= KERR_COUNT_)
		return "UNKNOWN";
	return kerr_names[-code];
}

int kerr_set(struct kerr *e, int code, const char *fmt, ...)
{
	if (!e || e->code != 0)
		return code;
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return code;
}

void kerr_clear(struct kerr *e)
{
	if (e)
		memset(e, 0, sizeof(*e));
}

int kerr_from_http(long status, const char *reason)
{
	switch (status) {
	case 401: return KERR_UNAUTHORIZED;
	case 403: return KERR_FORBIDDEN;
	case 404: return KERR_NOT_FOUND;
	case 409:
		return reason && strcmp(reason, "AlreadyExists") == 0 ? KERR_ALREADY_EXISTS : KERR_CONFLICT;
	case 410: return KERR_GONE;
	case 413: return KERR_TOO_LARGE;
	case 422: return KERR_INVALID;
	case 429: return KERR_TOO_MANY_REQUESTS;
	case 504: return KERR_TIMEOUT;
	default:
		if (status >= 500)
			return KERR_SERVER;
		if (status >= 200 && status < 300)
			return KERR_OK;
		return KERR_HTTP;
	}
}
