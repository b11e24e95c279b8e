#include "reflector_sm.h"

#include <stdlib.h>
#include <string.h>

#include "kerr.h"

enum {
	BACKOFF_MIN_MS = 800,
	BACKOFF_MAX_MS = 30000,
};

void reflector_sm_init(struct reflector_sm *sm, uint64_t seed)
{
	memset(sm, 0, sizeof(*sm));
	sm->state = REFLECTOR_LIST;
	sm->after_backoff = REFLECTOR_LIST;
	sm->backoff_min_ms = BACKOFF_MIN_MS;
	sm->backoff_max_ms = BACKOFF_MAX_MS;
	sm->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

void reflector_sm_free(struct reflector_sm *sm)
{
	free(sm->resource_version);
	free(sm->continue_token);
	sm->resource_version = NULL;
	sm->continue_token = NULL;
}

const char *reflector_state_name(enum reflector_state s)
{
	switch (s) {
	case REFLECTOR_LIST: return "list";
	case REFLECTOR_WATCH: return "watch";
	case REFLECTOR_WATCHING: return "watching";
	case REFLECTOR_BACKOFF: return "backoff";
	case REFLECTOR_STOPPED: return "stopped";
	}
	return "unknown";
}

/* Replace *dst with a copy of src (NULL or "" clears it). */
static int set_str(char **dst, const char *src)
{
	char *copy = NULL;
	if (src && *src) {
		copy = strdup(src);
		if (!copy)
			return KERR_NOMEM;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Next sleep: the step doubles up to the cap; the sleep is the step ±25 % so
 * that informers failing together do not retry together. */
static uint32_t next_backoff(struct reflector_sm *sm)
{
	if (sm->backoff_ms == 0)
		sm->backoff_ms = sm->backoff_min_ms;
	else if (sm->backoff_ms < sm->backoff_max_ms / 2)
		sm->backoff_ms *= 2;
	else
		sm->backoff_ms = sm->backoff_max_ms;
	uint32_t quarter = sm->backoff_ms / 4;
	uint32_t jitter = quarter ? (uint32_t)(xorshift(&sm->rng) % (2ull * quarter + 1)) : 0;
	uint64_t ms = (uint64_t)sm->backoff_ms - quarter + jitter;
	return ms > sm->backoff_max_ms ? sm->backoff_max_ms : (uint32_t)ms;
}

static void act_list(struct reflector_sm *sm, struct reflector_action *out)
{
	sm->state = REFLECTOR_LIST;
	if (!sm->continue_token)
		sm->relists++;
	out->type = REFLECTOR_DO_LIST;
	out->continue_token = sm->continue_token;
}

static void act_relist(struct reflector_sm *sm, struct reflector_action *out)
{
	free(sm->continue_token);
	sm->continue_token = NULL;
	sm->list_done_pending = 0;
	act_list(sm, out);
}

static void act_watch(struct reflector_sm *sm, struct reflector_action *out)
{
	sm->state = REFLECTOR_WATCH;
	sm->restarts++;
	out->type = REFLECTOR_DO_WATCH;
	out->resource_version = sm->resource_version ? sm->resource_version : "";
}

static void act_backoff(struct reflector_sm *sm, enum reflector_state then, struct reflector_action *out)
{
	sm->state = REFLECTOR_BACKOFF;
	sm->after_backoff = then;
	if (then == REFLECTOR_LIST) {
		free(sm->continue_token);
		sm->continue_token = NULL;
		sm->list_done_pending = 0;
	}
	out->type = REFLECTOR_DO_SLEEP;
	out->sleep_ms = next_backoff(sm);
}

int reflector_sm_step(struct reflector_sm *sm, const struct reflector_input *in, struct reflector_action *out)
{
	memset(out, 0, sizeof(*out));
	if (!in) {
		/* The driver committed the relist; the watch resumes from the list's rv. */
		if (sm->state != REFLECTOR_LIST || !sm->list_done_pending)
			return KERR_INVAL;
		sm->list_done_pending = 0;
		act_watch(sm, out);
		return 0;
	}
	if (in->type == REFLECTOR_IN_STOP) {
		sm->state = REFLECTOR_STOPPED;
		out->type = REFLECTOR_DO_STOP;
		return 0;
	}
	if (sm->state == REFLECTOR_STOPPED)
		return KERR_INVAL;

	switch (in->type) {
	case REFLECTOR_IN_START:
		act_relist(sm, out);
		return 0;

	case REFLECTOR_IN_LIST_PAGE:
		if (sm->state != REFLECTOR_LIST || sm->list_done_pending)
			return KERR_INVAL;
		sm->backoff_ms = 0;
		if (set_str(&sm->continue_token, in->continue_token) < 0)
			return KERR_NOMEM;
		if (sm->continue_token) {
			act_list(sm, out);
			return 0;
		}
		/* Only the last page's rv is a consistent snapshot to watch from. */
		if (set_str(&sm->resource_version, in->resource_version) < 0)
			return KERR_NOMEM;
		sm->list_done_pending = 1;
		out->type = REFLECTOR_DO_COMMIT;
		return 0;

	case REFLECTOR_IN_LIST_FAILED:
		if (sm->state != REFLECTOR_LIST)
			return KERR_INVAL;
		act_backoff(sm, REFLECTOR_LIST, out);
		return 0;

	case REFLECTOR_IN_WATCH_OPENED:
		if (sm->state != REFLECTOR_WATCH)
			return KERR_INVAL;
		sm->state = REFLECTOR_WATCHING;
		out->type = REFLECTOR_DO_NOTHING;
		return 0;

	case REFLECTOR_IN_EVENT:
	case REFLECTOR_IN_BOOKMARK:
		if (sm->state != REFLECTOR_WATCH && sm->state != REFLECTOR_WATCHING)
			return KERR_INVAL;
		sm->state = REFLECTOR_WATCHING;
		sm->backoff_ms = 0;
		if (in->resource_version && *in->resource_version &&
		    set_str(&sm->resource_version, in->resource_version) < 0)
			return KERR_NOMEM;
		out->type = REFLECTOR_DO_NOTHING;
		return 0;

	case REFLECTOR_IN_WATCH_ENDED:
		if (sm->state != REFLECTOR_WATCH && sm->state != REFLECTOR_WATCHING)
			return KERR_INVAL;
		act_watch(sm, out);
		return 0;

	case REFLECTOR_IN_WATCH_FAILED:
		if (sm->state != REFLECTOR_WATCH && sm->state != REFLECTOR_WATCHING)
			return KERR_INVAL;
		act_backoff(sm, REFLECTOR_WATCH, out);
		return 0;

	case REFLECTOR_IN_GONE:
		if (sm->state != REFLECTOR_LIST && sm->state != REFLECTOR_WATCH && sm->state != REFLECTOR_WATCHING)
			return KERR_INVAL;
		act_relist(sm, out);
		return 0;

	case REFLECTOR_IN_BACKOFF_DONE:
		if (sm->state != REFLECTOR_BACKOFF)
			return KERR_INVAL;
		if (sm->after_backoff == REFLECTOR_WATCH && sm->resource_version)
			act_watch(sm, out);
		else
			act_relist(sm, out);
		return 0;

	case REFLECTOR_IN_STOP:
		break;
	}
	return KERR_INVAL;
}
