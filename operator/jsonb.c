#include "jsonb.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

struct jsonb {
	yajl_gen g;
	yajl_gen_status err; /* first failure; yajl_gen_status_ok while none */
};

struct jsonb *jsonb_new(void)
{
	struct jsonb *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->g = yajl_gen_alloc(NULL);
	if (!b->g) {
		free(b);
		return NULL;
	}
	yajl_gen_config(b->g, yajl_gen_validate_utf8, 1);
	return b;
}

void jsonb_free(struct jsonb *b)
{
	if (!b)
		return;
	yajl_gen_free(b->g);
	free(b);
}

void jsonb_reset(struct jsonb *b)
{
	yajl_gen_reset(b->g, NULL);
	yajl_gen_clear(b->g);
	b->err = yajl_gen_status_ok;
}

static void check(struct jsonb *b, yajl_gen_status st)
{
	if (st != yajl_gen_status_ok && b->err == yajl_gen_status_ok)
		b->err = st;
}

#define GEN(b, call)                                   \
	do {                                           \
		if ((b)->err == yajl_gen_status_ok)    \
			check((b), (call));            \
	} while (0)

void jsonb_obj(struct jsonb *b) { GEN(b, yajl_gen_map_open(b->g)); }
void jsonb_obj_end(struct jsonb *b) { GEN(b, yajl_gen_map_close(b->g)); }
void jsonb_arr(struct jsonb *b) { GEN(b, yajl_gen_array_open(b->g)); }
void jsonb_arr_end(struct jsonb *b) { GEN(b, yajl_gen_array_close(b->g)); }
void jsonb_strn(struct jsonb *b, const char *s, size_t len) { GEN(b, yajl_gen_string(b->g, (const unsigned char *)s, len)); }
void jsonb_str(struct jsonb *b, const char *s) { jsonb_strn(b, s ? s : "", s ? strlen(s) : 0); }
void jsonb_key(struct jsonb *b, const char *key) { jsonb_str(b, key); }
void jsonb_int(struct jsonb *b, int64_t v) { GEN(b, yajl_gen_integer(b->g, (long long)v)); }
void jsonb_double(struct jsonb *b, double v) { GEN(b, yajl_gen_double(b->g, v)); }
void jsonb_bool(struct jsonb *b, int v) { GEN(b, yajl_gen_bool(b->g, v)); }
void jsonb_null(struct jsonb *b) { GEN(b, yajl_gen_null(b->g)); }

void jsonb_kstr(struct jsonb *b, const char *key, const char *s)
{
	jsonb_key(b, key);
	jsonb_str(b, s);
}

void jsonb_kint(struct jsonb *b, const char *key, int64_t v)
{
	jsonb_key(b, key);
	jsonb_int(b, v);
}

void jsonb_kbool(struct jsonb *b, const char *key, int v)
{
	jsonb_key(b, key);
	jsonb_bool(b, v);
}

int jsonb_result(struct jsonb *b, const char **out, size_t *len, struct kerr *e)
{
	if (b->err != yajl_gen_status_ok) {
		const char *why = b->err == yajl_gen_invalid_string ? "a string is not valid UTF-8"
				: b->err == yajl_gen_keys_must_be_strings ? "a value where a key is due"
				: b->err == yajl_gen_generation_complete ? "a value after the document ended"
				: "out of memory or unbalanced nesting";
		return kerr_set(e, KERR_INVAL, "building JSON: %s", why);
	}
	const unsigned char *buf;
	size_t n;
	if (yajl_gen_get_buf(b->g, &buf, &n) != yajl_gen_status_ok)
		return kerr_set(e, KERR_NOMEM, "building JSON: out of memory");
	*out = (const char *)buf;
	*len = n;
	return 0;
}
