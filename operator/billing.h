/*
 * billing: the usage sampler, and the database side of billing (usage
 * rows, per-pod state, invoices, current usage per tenant).
 *
 * Contract
 * - The sampler is one thread (billing_start), run on the leader only.
 *   Every period (config billing_period_ms, default 30 s) it GETs
 *   /apis/metrics.k8s.io/v1beta1/pods (all namespaces; metrics.k8s.io
 *   cannot be watched), parses it as a stream (billing_math.h) and
 *   integrates each pod's usage since its previous sample with the
 *   trapezoid rule (the first and last intervals as billing_math.h says).
 * - Attribution: a pod is billed to the tenant named by the
 *   nimbus.io/tenant label of its namespace, from the namespace cache;
 *   pods of namespaces without that label are ignored. The pod's own
 *   label is not trusted: tenants can edit their pods' labels (they hold
 *   the edit role in their namespace), not their namespace's.
 * - Rows: one per pod and interval, keyed (tenant_id, pod_uid,
 *   window_start), with cpu_milli_seconds and memory_byte_seconds (exact
 *   numerics) and window_end; written with ON CONFLICT DO NOTHING, so a
 *   repeated write changes nothing. A row belongs to the invoice period
 *   that contains its window_end ([start, end)), so each row is billed
 *   exactly once.
 * - Crash safety: each pod's last sample (time and rate) is kept in
 *   memory and in table billing_pod_state, and every row is committed in
 *   ONE transaction with the state it advances to. So at every instant the
 *   database holds rows up to each pod's last_sample and nothing beyond
 *   it. After a restart the sampler loads that state before it integrates
 *   anything, and a pod's first new interval starts at its last committed
 *   window end: a crash loses no usage and counts none twice. (While the
 *   state cannot be loaded, the database being down at start, nothing is
 *   integrated; the first sample after it is loaded spans the gap.)
 *   The database enforces it too: a row is written only if it starts at or
 *   after its pod's committed last_sample, and only such a row moves the
 *   state (forwards); so no row overlaps another even if a second replica
 *   wrote by mistake (leader election is what prevents that) or a replayed
 *   batch arrives after later ones.
 * - Database outage: computed rows wait in memory, in order, bounded by
 *   buffer_rows (default BILLING_DEFAULT_BUFFER_ROWS); a WARN line when
 *   the buffer passes half full; when full, the oldest row is dropped with
 *   an ERROR line and nimbus_billing_buffer_dropped_rows_total: that
 *   usage is lost (the state still advances, so nothing is counted
 *   twice). The buffer is flushed, oldest first, as soon as the database
 *   answers. A row whose commit was cut off is written again; the conflict
 *   rule makes that harmless.
 * - The sampler opens its own database connection (struct db is
 *   single-threaded), applies the schema migrations when it first
 *   connects, and the db module reconnects it after an outage.
 * - Metrics (when a registry is given): nimbus_billing_samples_total
 *   {result="ok"|"error"|"waiting_for_database"},
 *   nimbus_billing_sample_duration_seconds,
 *   nimbus_billing_sample_phase_duration_seconds{phase="fetch"|"attribute"|
 *   "write"}, nimbus_billing_rows_written_total, nimbus_billing_buffer_rows,
 *   nimbus_billing_buffer_dropped_rows_total. Each completed pass also logs
 *   one info line "billing pass" with pods, rows, rows_written,
 *   rows_buffered, fetch_ms, attribute_ms, write_ms, duration_ms and cpu_ms
 *   (the sampler thread's CPU time), which hack/bench/billing reads.
 * - Writes are set-based: a batch goes to the server as one JSON parameter
 *   per run of distinct pods (json_to_recordset), so a pass over 10,000
 *   pods is two transactions of one statement each, not 20,000 round trips.
 * - The database functions (billing_write_rows, billing_usage,
 *   billing_invoice) use the caller's handle on the caller's thread; SQL
 *   reaches the server only through parameters. Errors are 0 or a negative
 *   KERR_* with a message for people.
 */
#ifndef NIMBUS_BILLING_H
#define NIMBUS_BILLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing_math.h"
#include "config.h"
#include "db.h"
#include "informer.h"
#include "kerr.h"
#include "kube_client.h"
#include "metrics.h"

#define BILLING_TENANT_LABEL "nimbus.io/tenant"
/* A label value is at most 63 bytes. */
#define BILLING_TENANT_MAX 64
#define BILLING_DEFAULT_PERIOD_MS (30 * 1000)
/* About 20 MB of rows: at the default period, 1000 pods for 50 minutes. */
#define BILLING_DEFAULT_BUFFER_ROWS 100000
/* A period counts as closed, and its invoice is issued and frozen, only
 * this long after it ended, so that rows computed late (a pod found gone
 * at the next sample, a flush after a short outage) still reach it. */
#define BILLING_INVOICE_SETTLE_MS (15 * 60 * 1000)

struct billing_options {
	struct kube_client *client;        /* borrowed; outlives the billing */
	struct informer *pods;             /* kind_pod, all namespaces; borrowed. billing_new adds a
					    * delete handler, so call it before informer_start */
	struct informer *namespaces;       /* kind_namespace; borrowed */
	const struct db_options *db;       /* borrowed with its strings, which must outlive the billing
					    * (the sampler reconnects with them) */
	struct metrics_registry *metrics;  /* may be NULL */
	int64_t period_ms;                 /* 0: BILLING_DEFAULT_PERIOD_MS */
	size_t buffer_rows;                /* 0: BILLING_DEFAULT_BUFFER_ROWS */
};

struct billing;

/* Create the sampler (not started) and register its metrics and its pod
 * delete handler. The caller owns *out: billing_free(). */
int billing_new(struct billing **out, const struct billing_options *o, struct kerr *e);
/* Start the sampler thread; the informers must have synced. */
int billing_start(struct billing *b, struct kerr *e);
/* Stop the thread (idempotent): the sample in flight is cancelled, and
 * buffered rows get one flush attempt; rows still unwritten are lost from
 * memory only (the database state lags behind them, see the contract). */
void billing_stop(struct billing *b);
/* Stop if needed and free. The pod informer must be stopped first (its
 * handler points here). NULL-safe. */
void billing_free(struct billing *b);

/* ---- the database ------------------------------------------------------------ */

/* One usage row and the pod state it advances to. */
struct billing_row {
	const char *tenant;
	const char *pod_uid;
	const char *namespace;
	const char *pod_name;
	int64_t start_ms;          /* window_start */
	int64_t end_ms;            /* window_end; == start_ms: no usage, only the state change */
	struct billing_integral usage;
	int64_t end_cpu_nano;      /* the pod's rate at end_ms: its state after this row */
	int64_t end_mem_bytes;
	bool closed;               /* the pod ended at end_ms: its state is marked closed */
};

/*
 * Write n rows in order, with their state changes, in one transaction:
 * all or nothing. Idempotent: a row is written only if it starts at or
 * after its pod's committed last sample (so a row already present, or one
 * that would overlap, is left out), and the state moves only forwards, with
 * a row that continues it. *inserted (may be NULL) gets the number of rows
 * written.
 */
int billing_write_rows(struct db *db, const struct billing_row *rows, size_t n, size_t *inserted, struct kerr *e);

/* One tenant's usage over all its rows (seed names: CPUMilliSeconds,
 * MemoryMBSeconds, MB meaning MiB). */
struct billing_tenant_usage {
	char tenant[BILLING_TENANT_MAX];
	struct billing_dec cpu_milli_seconds;
	struct billing_dec memory_mb_seconds;  /* byte-seconds / 2^20, rounded half up to 6 decimals */
	int64_t since_ms;                      /* start of its first row */
	int64_t until_ms;                      /* end of its last row */
};

/* Every tenant with usage, ordered by tenant: *out is a malloc'd array of
 * *n (NULL when 0) for the caller to free(). */
int billing_usage(struct db *db, struct billing_tenant_usage **out, size_t *n, struct kerr *e);

/* Usage of one tenant in one time bucket of a history. */
struct billing_usage_point {
	char tenant[BILLING_TENANT_MAX];
	int64_t bucket;                        /* covers [from + bucket*step, from + (bucket+1)*step) */
	struct billing_dec cpu_milli_seconds;  /* rows whose window_end is in the bucket, as invoices count */
	struct billing_dec memory_mb_seconds;  /* byte-seconds / 2^20, rounded half up to 6 decimals */
};

/* Usage between from_ms (inclusive) and to_ms (exclusive) in buckets of
 * step_s seconds, of one tenant (NULL: every tenant), ordered by tenant then
 * bucket; buckets without rows are left out. *out is a malloc'd array of *n
 * (NULL when 0) for the caller to free(). KERR_INVAL for an empty range or a
 * step < 1 s. */
int billing_usage_history(struct db *db, const char *tenant, int64_t from_ms, int64_t to_ms, int64_t step_s,
			  struct billing_usage_point **out, size_t *n, struct kerr *e);

struct billing_invoice {
	char tenant[BILLING_TENANT_MAX];
	int64_t period_start_ms;               /* inclusive */
	int64_t period_end_ms;                 /* exclusive */
	struct billing_dec cpu_milli_seconds;  /* the rows whose window_end is in the period */
	struct billing_dec memory_byte_seconds;
	struct billing_charges charges;        /* currency, line items, total */
	bool issued;                           /* closed period: stored, and immutable from then on */
	int64_t issued_at_ms;                  /* when it was first issued; 0 if not issued */
};

/*
 * The invoice of tenant for [period_start_ms, period_end_ms), or for the
 * current UTC calendar month when both are 0. For a period that ended at
 * least BILLING_INVOICE_SETTLE_MS ago the first call stores the invoice
 * (table invoices) and every later call returns the stored one, whatever
 * rows or prices came since; for any other period it is computed afresh
 * (issued false) with prices p. KERR_INVAL for an empty period or a bad
 * tenant; KERR_DB.
 */
int billing_invoice(struct db *db, const char *tenant, int64_t period_start_ms, int64_t period_end_ms,
		    const struct billing_prices *p, struct billing_invoice *out, struct kerr *e);

/* The prices and currency of cfg (--price-cpu-core-hour and friends). */
void billing_prices_from_config(struct billing_prices *p, const struct config *cfg);

#endif
