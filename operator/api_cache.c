/* api_cache: see api_cache.h. A small array searched linearly: the API
 * caches a handful of routes per scope, and a scan of a few hundred short
 * keys costs less than the copy of one body. */
#include "api_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char key[API_CACHE_KEY_MAX]; /* "" when the slot is free */
	char *body;
	size_t len;
	int64_t stored_ms;
	int64_t refresh_ms;  /* when a caller was sent to recompute it; 0: none */
};

struct api_cache {
	pthread_mutex_t lock;
	int64_t ttl_ms;
	size_t n;              /* slots */
	uint64_t generation;   /* under lock */
	struct entry *slots;   /* under lock */
};

int api_cache_new(struct api_cache **out, size_t max_entries, int64_t ttl_ms, struct kerr *e)
{
	*out = NULL;
	if (max_entries == 0 || ttl_ms < 0)
		return kerr_set(e, KERR_INVAL, "api_cache_new: need at least one entry and a TTL >= 0");
	struct api_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return kerr_set(e, KERR_NOMEM, "api_cache: out of memory");
	c->slots = calloc(max_entries, sizeof(*c->slots));
	if (!c->slots || pthread_mutex_init(&c->lock, NULL)) {
		free(c->slots);
		free(c);
		return kerr_set(e, KERR_NOMEM, "api_cache: out of memory");
	}
	c->n = max_entries;
	c->ttl_ms = ttl_ms;
	*out = c;
	return 0;
}

static void slot_clear(struct entry *s)
{
	free(s->body);
	s->body = NULL;
	s->key[0] = '\0';
}

void api_cache_free(struct api_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		slot_clear(&c->slots[i]);
	free(c->slots);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

uint64_t api_cache_generation(struct api_cache *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t g = c->generation;
	pthread_mutex_unlock(&c->lock);
	return g;
}

void api_cache_invalidate(struct api_cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->generation++;
	for (size_t i = 0; i < c->n; i++)
		slot_clear(&c->slots[i]);
	pthread_mutex_unlock(&c->lock);
}

static struct entry *find(struct api_cache *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->slots[i].key[0] && strcmp(c->slots[i].key, key) == 0)
			return &c->slots[i];
	}
	return NULL;
}

int api_cache_get(struct api_cache *c, const char *key, int64_t now_ms, bool claim, char **body, size_t *len)
{
	int rc = 0;
	*body = NULL;
	*len = 0;
	pthread_mutex_lock(&c->lock);
	struct entry *s = find(c, key);
	if (s && now_ms - s->stored_ms >= c->ttl_ms &&
	    !(s->refresh_ms && now_ms - s->refresh_ms < c->ttl_ms)) {
		/* Expired, and nobody is recomputing it: this caller will. */
		if (claim)
			s->refresh_ms = now_ms;
		s = NULL;
	}
	if (s) {
		*body = malloc(s->len ? s->len : 1);
		if (*body) {
			memcpy(*body, s->body, s->len);
			*len = s->len;
			rc = 1;
		} else {
			rc = KERR_NOMEM;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int api_cache_put(struct api_cache *c, const char *key, uint64_t gen, int64_t now_ms, const void *body,
		  size_t len)
{
	if (strlen(key) >= API_CACHE_KEY_MAX)
		return 0;
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return KERR_NOMEM;
	memcpy(copy, body, len);
	pthread_mutex_lock(&c->lock);
	if (gen != c->generation) {
		pthread_mutex_unlock(&c->lock);
		free(copy);
		return 0;
	}
	struct entry *s = find(c, key);
	if (!s) {
		s = &c->slots[0];
		for (size_t i = 0; i < c->n && s->key[0]; i++) {
			if (!c->slots[i].key[0] || c->slots[i].stored_ms < s->stored_ms)
				s = &c->slots[i];
		}
		slot_clear(s);
		memcpy(s->key, key, strlen(key) + 1);
	}
	free(s->body);
	s->body = copy;
	s->len = len;
	s->stored_ms = now_ms;
	s->refresh_ms = 0;
	pthread_mutex_unlock(&c->lock);
	return 1;
}
