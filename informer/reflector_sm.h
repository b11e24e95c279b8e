/*
 * reflector_sm: the list+watch protocol of a reflector as a pure state machine.
 *
 * The reflector (reflector.c) does the I/O; this module decides what to do
 * next. Every network outcome is an input; reflector_sm_step() returns the one
 * action to perform and moves to the next state. Recovery is a transition,
 * not a special case:
 *
 *   LIST ──page(continue)──▶ LIST ──last page──▶ WATCH(rv of the list)
 *     ▲                                              │ event/bookmark: rv advances
 *     │ 410 Gone / too old rv                        │ stream ended: WATCH(rv) again at once
 *     └──────────────────────────────────────────────┤ failure: BACKOFF ▶ WATCH(rv)
 *                      failure while listing: BACKOFF ▶ LIST (from the start)
 *
 * Backoff is capped exponential with jitter: 800 ms doubling to 30 s, as
 * client-go's reflector uses, so that a restarting apiserver is not hammered
 * by every informer at once yet a short blip costs under a second. It resets
 * once a watch has delivered anything, which proves the server healthy.
 *
 * The state owns copies of the resourceVersion and continue token; strings in
 * an action point into the state and stay valid until the next step.
 * Not thread-safe: one reflector thread drives one state machine.
 */
#ifndef NIMBUS_REFLECTOR_SM_H
#define NIMBUS_REFLECTOR_SM_H

#include <stdint.h>

enum reflector_state {
	REFLECTOR_LIST,     /* next: LIST a page (continue token or from the start) */
	REFLECTOR_WATCH,    /* next: WATCH from resource_version */
	REFLECTOR_WATCHING, /* a watch stream is open */
	REFLECTOR_BACKOFF,  /* waiting before retrying; after_backoff says what */
	REFLECTOR_STOPPED,
};

enum reflector_input_type {
	REFLECTOR_IN_START,          /* begin (or resume after STOPPED is not allowed) */
	REFLECTOR_IN_LIST_PAGE,      /* a LIST page arrived: rv, continue_token ("" = last page) */
	REFLECTOR_IN_LIST_FAILED,    /* LIST failed (connection, 5xx, 403 ...) */
	REFLECTOR_IN_WATCH_OPENED,   /* WATCH got its 200 and the stream is open */
	REFLECTOR_IN_EVENT,          /* ADDED/MODIFIED/DELETED with the object's rv */
	REFLECTOR_IN_BOOKMARK,       /* BOOKMARK with its rv */
	REFLECTOR_IN_WATCH_ENDED,    /* stream closed cleanly (server timeout) */
	REFLECTOR_IN_WATCH_FAILED,   /* stream or connection broke, or non-410 error */
	REFLECTOR_IN_GONE,           /* 410 Gone / Expired: rv too old, or continue token expired */
	REFLECTOR_IN_BACKOFF_DONE,   /* the requested sleep elapsed */
	REFLECTOR_IN_STOP,
};

struct reflector_input {
	enum reflector_input_type type;
	const char *resource_version; /* LIST_PAGE, EVENT, BOOKMARK */
	const char *continue_token;   /* LIST_PAGE; NULL or "" on the last page */
};

enum reflector_action_type {
	REFLECTOR_DO_NOTHING,    /* keep reading the open stream */
	REFLECTOR_DO_LIST,       /* LIST with continue_token (NULL = first page); first page starts a relist */
	REFLECTOR_DO_COMMIT,     /* the last page is in: swap the relist buffer into the store, then step again with no input */
	REFLECTOR_DO_WATCH,      /* WATCH from resource_version */
	REFLECTOR_DO_SLEEP,      /* sleep sleep_ms, then feed BACKOFF_DONE */
	REFLECTOR_DO_STOP,
};

struct reflector_action {
	enum reflector_action_type type;
	const char *resource_version; /* DO_WATCH */
	const char *continue_token;   /* DO_LIST; NULL for the first page */
	uint32_t sleep_ms;            /* DO_SLEEP */
};

struct reflector_sm {
	enum reflector_state state;
	enum reflector_state after_backoff; /* LIST or WATCH */
	char *resource_version;  /* last rv seen (list, event or bookmark); owned */
	char *continue_token;    /* next LIST page's token; owned; NULL when none */
	int list_done_pending;   /* the last page arrived; COMMIT owed before WATCH */
	uint32_t backoff_ms;     /* current backoff step; 0 = none yet */
	uint32_t backoff_min_ms; /* default 800 */
	uint32_t backoff_max_ms; /* default 30000 */
	uint64_t rng;            /* jitter state (xorshift), seeded by the caller */
	uint64_t relists;        /* LISTs started from the first page, for metrics */
	uint64_t restarts;       /* watches (re)opened, for metrics */
};

/* Initialise with default backoff; seed feeds the jitter (0 picks a fixed seed). */
void reflector_sm_init(struct reflector_sm *sm, uint64_t seed);
/* Free the owned strings. */
void reflector_sm_free(struct reflector_sm *sm);
/* Advance by one input (NULL after DO_COMMIT); returns 0 and fills *out, or
 * KERR_NOMEM / KERR_INVAL (an input that makes no sense in this state). */
int reflector_sm_step(struct reflector_sm *sm, const struct reflector_input *in, struct reflector_action *out);
const char *reflector_state_name(enum reflector_state s);

#endif
