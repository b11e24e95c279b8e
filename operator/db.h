/*
 * db: the operator's PostgreSQL connection (libpq): reconnect with backoff,
 * migrations at start, parameterized and prepared statements,
 * LISTEN/NOTIFY.
 *
 * Contract
 * - Threads: one struct db is one connection and is used by one thread at
 *   a time (libpq connections must not be shared). The operator opens one
 *   per thread that talks to the database (each worker that writes, the
 *   listener thread); there is no pool, because a handful of long-lived
 *   threads each holding one connection needs none.
 * - SQL text is always a string literal: db_exec_params() and db_prepare()
 *   are macros that do not compile with anything else, so user input can
 *   only reach the server as $1..$n parameters (text, NULL for SQL NULL).
 *   One statement per call.
 * - Reconnect: before each use the connection is checked without blocking;
 *   one the server has closed (restart, pg_terminate_backend, idle
 *   timeout) is replaced before the statement is sent, and the new one gets
 *   the registered prepared statements and LISTENs again. A failed attempt
 *   puts off the next by a capped exponential backoff (options below);
 *   until then calls fail at once with KERR_DB "database at HOST:PORT is
 *   unreachable: ...; next attempt in N ms". A statement whose connection
 *   breaks while it runs fails with KERR_DB: it may or may not have taken
 *   effect, so callers retry only idempotent work. A connection lost inside
 *   a transaction fails the next call with KERR_DB (the server rolled the
 *   transaction back); the call after that starts afresh.
 * - Errors: 0 or a negative KERR_*; with a struct kerr, a message for
 *   people (never the password) and, for errors from the server, the
 *   SQLSTATE in e->reason. KERR_ALREADY_EXISTS for unique_violation
 *   (23505); KERR_CONFLICT for serialization failure or deadlock (40001,
 *   40P01), which are worth retrying; KERR_DB for everything else from the
 *   database or the network.
 * - Server notices (and the FATAL a dying backend sends) go to the log
 *   (logger "db"), not to stderr.
 */
#ifndef NIMBUS_DB_H
#define NIMBUS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"
#include "kerr.h"

/* Connection settings; db_open copies the strings. */
struct db_options {
	const char *host;             /* required */
	const char *port;             /* required, e.g. "5432" */
	const char *dbname;           /* required */
	const char *user;             /* required */
	const char *password;         /* NULL: none */
	const char *sslmode;          /* NULL: "disable" */
	const char *application_name; /* NULL: "nimbus-operator" (shown in pg_stat_activity) */
	const char *pg_options;       /* libpq "options", e.g. "-c search_path=s"; NULL: none */
	int connect_timeout_s;        /* 0: 5 s, so an unreachable host fails a start promptly */
	/* Reconnect backoff: the delay after the first failed attempt, doubled
	 * after each further failure up to the cap, reset on success. 0: 250 ms
	 * and 30 s; a database restart takes seconds, and 30 s bounds how late
	 * a recovered database is noticed. */
	int64_t backoff_initial_ms;
	int64_t backoff_max_ms;
	/* false: db_open fails when the database cannot be reached now. true:
	 * db_open returns a disconnected handle instead, and the first call
	 * that needs the connection tries again (backoff applies): for the
	 * operator's long-lived connections, which must not fail a start
	 * while the database is briefly away. */
	bool defer_connect;
};

/* Fill o from the DB_* settings of cfg (the strings stay cfg's, which must
 * outlive the db_open call only); the other fields get their defaults. */
void db_options_from_config(struct db_options *o, const struct config *cfg);

struct db;

/* Connect. On success *out is the caller's, closed with db_close(). If the
 * database cannot be reached, KERR_DB with where and why, and no handle:
 * a caller that wants to wait for the database at start retries, or sets
 * o->defer_connect to get a handle that connects when it can. */
int db_open(const struct db_options *o, struct db **out, struct kerr *e);
/* Close the connection and free the handle. NULL-safe. */
void db_close(struct db *d);

/* How many connections this handle has made; it changes on every
 * reconnect. A LISTENer compares it after each wait: a change means
 * notifications may have been missed and its state must be read afresh. */
uint64_t db_generation(const struct db *d);

/*
 * Run one statement with nparams text parameters (values[i] for $i+1,
 * NULL for SQL NULL). With res non-NULL, *res is the result on success,
 * for the caller to PQclear(); NULL on failure. With res NULL the result
 * is dropped. sql must be a string literal (see the contract).
 */
#define db_exec_params(d, sql, nparams, values, res, e) \
	db_exec_params_literal((d), "" sql "", (nparams), (values), (res), (e))
/* Call through db_exec_params(), which checks that sql is a literal. */
int db_exec_params_literal(struct db *d, const char *sql, int nparams, const char *const *values, PGresult **res,
			   struct kerr *e);

/*
 * Prepare sql (a string literal with nparams parameters) as statement name
 * now, and again on every reconnect. KERR_ALREADY_EXISTS if name is taken;
 * a statement the server rejects is not registered.
 */
#define db_prepare(d, name, sql, nparams, e) db_prepare_literal((d), (name), "" sql "", (nparams), (e))
/* Call through db_prepare(), which checks that sql is a literal. */
int db_prepare_literal(struct db *d, const char *name, const char *sql, int nparams, struct kerr *e);
/* Run prepared statement name; parameters and res as db_exec_params.
 * KERR_NOT_FOUND if name was never prepared, KERR_INVAL if nparams differs
 * from what it was prepared with. */
int db_exec_prepared(struct db *d, const char *name, int nparams, const char *const *values, PGresult **res,
		     struct kerr *e);

/* Check that the database answers (SELECT 1), reconnecting if needed: for
 * readiness probes. */
int db_ping(struct db *d, struct kerr *e);

/* One schema migration: version > 0, increasing along a list; name for
 * people; sql may hold several statements and runs in one transaction. */
struct db_migration {
	int version;
	const char *name;
	const char *sql;
};

/* The migrations compiled into the binary from operator/migrations/
 * (NNNN_name.sql, listed in operator/CMakeLists.txt), in version order.
 * Static storage; *count gets their number. */
const struct db_migration *db_migrations(size_t *count);

/*
 * Apply the migrations of list (n of them, versions strictly increasing)
 * that table schema_migrations does not record, in order, each in its own
 * transaction together with its schema_migrations row. A session advisory
 * lock is held throughout, so replicas starting together apply each
 * migration once; the others wait and find nothing to do. A version
 * recorded under another name is an error (a renumbered file). Versions
 * the database has beyond the list (a newer binary ran) are left alone.
 * *applied (may be NULL) gets the number applied. The first failing
 * migration is rolled back and named in the message; the ones before it
 * stay applied.
 */
int db_migrate(struct db *d, const struct db_migration *list, size_t n, int *applied, struct kerr *e);

/* LISTEN on channel (any name up to 63 bytes; quoted here), now and after
 * every reconnect. When the database cannot be reached now, the channel
 * stays registered and 0 is returned: the next connection LISTENs, and
 * db_generation() tells the caller when that happened. */
int db_listen(struct db *d, const char *channel, struct kerr *e);

/*
 * Wait up to timeout_ms for a notification on a LISTENed channel. *out is
 * then one notification, for the caller to PQfreemem() (relname is the
 * channel, extra the payload, be_pid the sender), or NULL when the time
 * ran out. A lost connection is reported as KERR_DB, and the next call
 * reconnects; while the database is unreachable each call waits for the
 * next attempt (at most timeout_ms) rather than failing at once, so a
 * listener loop does not spin. Check db_generation() after each call.
 */
int db_wait_notify(struct db *d, int timeout_ms, PGnotify **out, struct kerr *e);

#endif
