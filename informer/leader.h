/*
 * leader: leader election on a coordination.k8s.io/v1 Lease, as client-go's
 * tools/leaderelection does it, so that of several replicas one acts at a time.
 *
 * Contract
 * - Each replica creates a leader with a unique identity and starts it. Its
 *   thread GETs the Lease (creating it with a POST if it does not exist) and
 *   takes it over with a PUT when nobody holds it, when it is ours, or when
 *   the holder has not renewed it for leaseDurationSeconds. Every PUT carries
 *   metadata.resourceVersion, so of two replicas racing for it one gets 409
 *   Conflict and loses. The holder renews every retry_period.
 * - Expiry is judged by the LOCAL monotonic clock: a replica notes when it
 *   last saw the record (holder, times, duration, transitions) change and
 *   considers the lease expired leaseDurationSeconds after that moment. The
 *   renewTime written by the holder is never compared with the local clock,
 *   so clock skew between nodes does not matter (only clock rates do).
 * - Leading is a term: on_started_leading begins it; it ends when a renewal
 *   has not succeeded for renew_deadline (counted from the start of the last
 *   successful request), when another holder is seen, or on leader_stop().
 *   Then leader_is_leader() is false and on_stopped_leading is called; the
 *   caller must stop acting before that callback returns. Afterwards the
 *   leader stays a candidate and may start a new term (callbacks again).
 * - leader_is_leader() is safe from any thread and also turns false by itself
 *   once renew_deadline has passed since the last successful renewal, even
 *   while the thread is still blocked in a request. Check it before each
 *   action that must not be done twice; the callbacks alone can come late
 *   when the apiserver hangs: give the kube_client a timeout_ms no larger
 *   than renew_deadline_ms so a request cannot block the thread for long.
 * - Callbacks run on the leader's thread, one at a time, in order
 *   (on_new_leader before on_started_leading for our own term); they must
 *   not call leader_stop() or leader_free() (that would join their own
 *   thread).
 * - leader_stop(le, true) ends the term (on_stopped_leading first), then, if
 *   the Lease last seen and a fresh GET still name us, releases it the way
 *   client-go's ReleaseOnCancel does: holderIdentity "", leaseDurationSeconds 1. The next candidate then
 *   takes over at its next attempt instead of waiting for the lease to expire.
 * - PUTs send back the Lease as last read with only the spec's election
 *   fields replaced, so labels, annotations and other spec fields survive.
 * - Failed requests are logged with what to do (a 403 names the RBAC verbs
 *   needed); a repeated identical failure is logged at DEBUG, not again at
 *   WARN. The leader never gives up: it retries every retry_period.
 * - Lifecycle: new -> start -> ... -> stop -> free, from one owning thread.
 *
 * The functions after the leader API are the pure parts of the protocol (time
 * format, the acquire decision, the Lease JSON); they do no I/O and are used
 * by the leader's thread and the unit tests.
 */
#ifndef NIMBUS_LEADER_H
#define NIMBUS_LEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "informer.h"
#include "kerr.h"
#include "kube_client.h"

/* Bytes for an identity with its NUL. Our identity must fit; a longer holder
 * written by another client is truncated when read. */
#define LEADER_IDENTITY_MAX 256

#define LEADER_DEFAULT_LEASE_DURATION_MS 15000
#define LEADER_DEFAULT_RENEW_DEADLINE_MS 10000
#define LEADER_DEFAULT_RETRY_PERIOD_MS 2000

struct leader;

struct leader_options {
	const char *namespace;      /* of the Lease; required (a DNS label); copied */
	const char *name;           /* of the Lease; required (a DNS subdomain); copied */
	const char *identity;       /* this replica, unique among them (POD_NAME); copied;
				     * NULL or "" = "<hostname>_<pid>" */
	/* How long a holder's lease lasts without renewal; 0 = 15000. The Lease
	 * stores whole seconds, so it is rounded down to a multiple of 1000 (at
	 * least 1000). */
	long lease_duration_ms;
	/* How long the leader keeps leading while renewals fail; 0 = 10000. Must
	 * be below the lease duration, so the term ends before others may take
	 * over. */
	long renew_deadline_ms;
	/* Wait between attempts, for the leader and for candidates; 0 = 2000.
	 * Candidates add up to 20% jitter so that they do not retry in step;
	 * renew_deadline_ms must exceed 1.2 times this. */
	long retry_period_ms;
	void (*on_started_leading)(void *arg);                  /* may be NULL */
	void (*on_stopped_leading)(void *arg);                  /* may be NULL */
	/* A different non-empty holder was observed (ours included); identity
	 * lives during the call only. May be NULL. */
	void (*on_new_leader)(void *arg, const char *identity);
	void *arg;                  /* for the three callbacks */
	informer_log_fn log;        /* may be NULL; its kind argument is "Lease" */
	void *log_arg;
};

/*
 * Create a leader for the Lease opts->namespace/opts->name through client c,
 * which must outlive it. Validates the options (KERR_INVAL with the reason)
 * and makes no request yet. The caller owns *out and frees it with
 * leader_free().
 */
int leader_new(struct leader **out, struct kube_client *c, const struct leader_options *opts,
	       struct kerr *e);
/* This replica's identity, owned by the leader. */
const char *leader_identity(const struct leader *le);
/* Start the election thread. Once only. */
int leader_start(struct leader *le, struct kerr *e);
/* True while this replica leads and its last successful renewal is less
 * than renew_deadline old. Any thread. */
bool leader_is_leader(struct leader *le);
/*
 * End the election and join the thread: on_stopped_leading runs first if we
 * were leading; then, with release, the Lease is released if it still names
 * us. Blocks for up to one request in flight plus, with release by a replica
 * that held the lease, two more
 * (each bounded by the client's timeout). Idempotent; not from a callback.
 * Returns 0, or the error of a failed release (logged as well; the lease
 * then simply expires after its duration).
 */
int leader_stop(struct leader *le, bool release);
/* Stop (without release) if needed and free. NULL is fine. */
void leader_free(struct leader *le);

/* ---- the pure parts of the protocol -------------------------------------- */

/* The election fields of a Lease's spec. */
struct leader_record {
	char holder[LEADER_IDENTITY_MAX]; /* holderIdentity; "" = nobody */
	int32_t lease_duration_s;         /* leaseDurationSeconds; 0 when absent */
	int64_t acquire_time_us;          /* acquireTime, unix microseconds; 0 when absent */
	int64_t renew_time_us;            /* renewTime, unix microseconds; 0 when absent */
	int32_t transitions;              /* leaseTransitions; 0 when absent */
};

bool leader_record_equal(const struct leader_record *a, const struct leader_record *b);

enum leader_verdict {
	LEADER_WAIT,    /* another holder's lease is still valid */
	LEADER_ACQUIRE, /* nobody holds it, or the holder let it expire: take it over */
	LEADER_RENEW,   /* it names us: renew it */
};

/*
 * Decide from a record r, first seen unchanged at observed_ms, what the
 * replica identity may do at now_ms (both on the local monotonic clock).
 * The holder's lease is valid while observed_ms + lease_duration_s * 1000 >
 * now_ms; r's timestamps are deliberately ignored (clock skew). A lease
 * without a duration counts as expired. *valid_ms (may be NULL) gets the
 * time left for LEADER_WAIT, else 0.
 */
enum leader_verdict leader_decide(const struct leader_record *r, const char *identity,
				  int64_t observed_ms, int64_t now_ms, int64_t *valid_ms);

/*
 * The record to write after a verdict: ours with renewTime now_us. For
 * LEADER_RENEW, acquireTime and leaseTransitions are kept; for
 * LEADER_ACQUIRE, acquireTime is now and leaseTransitions one more than
 * prev's. prev NULL means the Lease does not exist yet (transitions 0).
 */
void leader_next_record(const struct leader_record *prev, enum leader_verdict v,
			const char *identity, int32_t lease_duration_s, int64_t now_us,
			struct leader_record *out);
/* The record that releases a lease (as client-go's ReleaseOnCancel): holder
 * "", duration 1 s, both times now_us, prev's transitions kept. */
void leader_release_record(const struct leader_record *prev, int64_t now_us,
			   struct leader_record *out);

/*
 * Read the record from a Lease document (a GET, POST or PUT response, NUL-
 * terminated). Absent and null fields read as in struct leader_record.
 * KERR_PARSE, with the field named, for malformed JSON, a wrong type, a bad
 * time, or a "kind" other than Lease.
 */
int leader_record_parse(const char *json, struct leader_record *out, struct kerr *e);

/* The body of the POST that creates namespace/name holding r. *out is a NUL-
 * terminated string the caller frees with free(). KERR_INVAL when a string
 * is not valid UTF-8, KERR_NOMEM. */
int leader_create_body(const char *namespace, const char *name, const struct leader_record *r,
		       char **out, struct kerr *e);
/*
 * The body of the PUT that sets r on the Lease prev (NUL-terminated JSON as
 * last read): prev unchanged, metadata.resourceVersion included, except that
 * spec's holderIdentity, leaseDurationSeconds, acquireTime, renewTime and
 * leaseTransitions come from r (times omitted when 0). KERR_PARSE when prev is
 * not a Lease with a metadata.resourceVersion (without it the PUT would not
 * be conditional). *out as for leader_create_body().
 */
int leader_update_body(const char *prev, const struct leader_record *r, char **out,
		       struct kerr *e);

#endif
