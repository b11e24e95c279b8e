#include "kintern.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct kintern_node {
	uint32_t hash;
	uint32_t refs; /* under kintern_mu */
	uint32_t len;
	char s[];
};

/* Open addressing with linear probing and backward-shift deletion: a slot
 * is one pointer, and no tombstones pile up as strings come and go. The
 * table doubles at half full and never shrinks (it is small: one slot per
 * distinct string at most twice over). */
static pthread_mutex_t kintern_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kintern_node **kintern_slots;
static size_t kintern_cap, kintern_len; /* cap is 0 or a power of two */

static uint32_t kintern_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static int kintern_grow(void)
{
	size_t cap = kintern_cap ? kintern_cap * 2 : 256;
	struct kintern_node **slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < kintern_cap; i++) {
		struct kintern_node *n = kintern_slots[i];
		if (!n)
			continue;
		size_t j = n->hash & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = n;
	}
	free(kintern_slots);
	kintern_slots = slots;
	kintern_cap = cap;
	return 0;
}

const char *kintern_get(const char *s, size_t len)
{
	if (len == 0 || len > UINT32_MAX)
		return NULL;
	uint32_t h = kintern_hash(s, len);
	struct kintern_node *n = NULL;
	pthread_mutex_lock(&kintern_mu);
	if ((kintern_len + 1) * 2 > kintern_cap && kintern_grow() < 0)
		goto out;
	size_t mask = kintern_cap - 1, i = h & mask;
	for (; kintern_slots[i]; i = (i + 1) & mask) {
		struct kintern_node *c = kintern_slots[i];
		if (c->hash == h && c->len == len && memcmp(c->s, s, len) == 0) {
			c->refs++;
			n = c;
			goto out;
		}
	}
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		goto out;
	n->hash = h;
	n->refs = 1;
	n->len = (uint32_t)len;
	memcpy(n->s, s, len);
	n->s[len] = '\0';
	kintern_slots[i] = n;
	kintern_len++;
out:
	pthread_mutex_unlock(&kintern_mu);
	return n ? n->s : NULL;
}

/* Empty slot i, moving back the entries after it that probed past it. */
static void kintern_remove_at(size_t i)
{
	size_t mask = kintern_cap - 1;
	for (size_t j = (i + 1) & mask; kintern_slots[j]; j = (j + 1) & mask) {
		size_t home = kintern_slots[j]->hash & mask;
		/* The entry at j may move to i unless its home lies cyclically in (i, j]. */
		int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			kintern_slots[i] = kintern_slots[j];
			i = j;
		}
	}
	kintern_slots[i] = NULL;
	kintern_len--;
}

void kintern_put(const char *s)
{
	if (!s || !s[0])
		return;
	struct kintern_node *n = (struct kintern_node *)(void *)(s - offsetof(struct kintern_node, s));
	pthread_mutex_lock(&kintern_mu);
	if (--n->refs == 0) {
		size_t mask = kintern_cap - 1, i = n->hash & mask;
		while (kintern_slots[i] != n)
			i = (i + 1) & mask;
		kintern_remove_at(i);
		free(n);
	}
	pthread_mutex_unlock(&kintern_mu);
}

int kintern_holds(const char *s)
{
	if (!s || !s[0])
		return 0;
	size_t len = strlen(s);
	uint32_t h = kintern_hash(s, len);
	int found = 0;
	pthread_mutex_lock(&kintern_mu);
	for (size_t i = kintern_cap ? h & (kintern_cap - 1) : 0; kintern_cap && kintern_slots[i] && !found;
	     i = (i + 1) & (kintern_cap - 1))
		found = kintern_slots[i]->s == s;
	pthread_mutex_unlock(&kintern_mu);
	return found;
}

size_t kintern_count(void)
{
	pthread_mutex_lock(&kintern_mu);
	size_t n = kintern_len;
	pthread_mutex_unlock(&kintern_mu);
	return n;
}
