#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An allocation failure inside uthash leaves the item out of its table
 * (hh.tbl == NULL) instead of exiting the process. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "log.h"

#define DB_NS_PER_MS INT64_C(1000000)
#define DB_DEFAULT_CONNECT_TIMEOUT_S 5
#define DB_DEFAULT_BACKOFF_INITIAL_MS 250
#define DB_DEFAULT_BACKOFF_MAX_MS 30000
/* Key of the session advisory lock that serializes migrations: "nimbus" in
 * ASCII, so that it is recognisable in pg_locks. */
#define DB_MIGRATION_LOCK "121399085790579"
/* PostgreSQL's NAMEDATALEN - 1: the longest channel name. */
#define DB_MAX_CHANNEL 63

/* A registered prepared statement, prepared again on every connection. */
struct db_stmt {
	UT_hash_handle hh; /* in db.stmts, keyed by name */
	int nparams;
	char *sql;
	char name[];
};

struct db {
	PGconn *conn;              /* NULL while disconnected */
	/* Copies of the options, the strings in one allocation (strings). */
	char *strings;
	const char *keys[16];      /* PQconnectdbParams keywords, NULL-terminated */
	const char *vals[16];
	const char *host, *port, *dbname, *user;
	int64_t backoff_initial_ns, backoff_max_ns;
	int64_t backoff_ns;        /* delay after the next failed attempt */
	int64_t next_attempt_ns;   /* CLOCK_MONOTONIC; no attempt before it */
	char last_error[256];      /* why the last attempt failed, one line */
	uint64_t generation;       /* connections made so far */
	/* Set while migrating: the advisory lock lives in the session, so a
	 * silent reconnect would carry on without it. A lost connection is
	 * then an error instead. */
	bool pinned;
	/* Non-empty once the server sent a FATAL while the connection was idle
	 * (its message, set by the notice receiver; cleared with each new
	 * connection): the connection is done for. */
	char fatal[200];
	struct db_stmt *stmts;
	char **channels;
	size_t nchannels;
};

static int64_t db_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Copy libpq's multi-line message into out as one line, trimmed. */
static void db_flatten(char *out, size_t size, const char *msg)
{
	size_t n = 0;
	bool space = false;

	for (const char *p = msg ? msg : ""; *p && n + 1 < size; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t' || *p == ' ') {
			space = n > 0;
			continue;
		}
		if (space && n + 2 < size)
			out[n++] = ' ';
		space = false;
		out[n++] = *p;
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, size, "no message from libpq");
}

/* Server notices, and the FATAL a terminated backend sends while the
 * connection is idle, would go to stderr unformatted; log them instead. */
static void db_notice(void *arg, const PGresult *r)
{
	struct db *d = arg;
	char msg[160];
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);

	db_flatten(msg, sizeof(msg), PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
	/* A FATAL outside a statement is the backend's last word, sent before
	 * it closes the socket: the connection is done for, even while the end
	 * of the stream has not arrived yet. db_ensure logs the loss. */
	if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		snprintf(d->fatal, sizeof(d->fatal), "%s: %s", sev, msg);
	else if (sev && (strcmp(sev, "NOTICE") == 0 || strcmp(sev, "DEBUG") == 0 || strcmp(sev, "INFO") == 0 ||
			 strcmp(sev, "LOG") == 0))
		log_debug("db", "server notice", "severity", sev, "message", msg, NULL);
	else
		log_warn("db", "server notice", "severity", sev ? sev : "", "message", msg, NULL);
}

/* "ERROR: primary (detail) hint: ..." from the fields of r, without the
 * LINE/caret lines of the full message; libpq's own message when r has no
 * fields (a network error). */
static void db_describe_error(char *out, size_t size, const PGresult *r, const PGconn *c)
{
	const char *sev = r ? PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
	const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char raw[512];

	if (!primary) {
		const char *m = r ? PQresultErrorMessage(r) : NULL;
		db_flatten(out, size, m && *m ? m : PQerrorMessage(c));
		return;
	}
	const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	snprintf(raw, sizeof(raw), "%s: %s%s%s%s%s%s", sev ? sev : "ERROR", primary, detail ? " (" : "",
		 detail ? detail : "", detail ? ")" : "", hint ? " hint: " : "", hint ? hint : "");
	db_flatten(out, size, raw);
}

static void db_drop(struct db *d)
{
	PQfinish(d->conn);
	d->conn = NULL;
}

/* Record a failed statement in e; drops the connection if it broke. */
static int db_fail(struct db *d, const PGresult *r, const char *what, struct kerr *e)
{
	char msg[400];
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	int code = KERR_DB;

	db_describe_error(msg, sizeof(msg), r, d->conn);
	if (PQstatus(d->conn) != CONNECTION_OK) {
		db_drop(d);
		return kerr_set(e, KERR_DB,
				"connection to the database at %s:%s broke during %s, which may or may not have "
				"taken effect: %s",
				d->host, d->port, what, msg);
	}
	if (!r)
		return kerr_set(e, KERR_NOMEM, "out of memory running %s", what);
	if (state && strcmp(state, "23505") == 0)
		code = KERR_ALREADY_EXISTS;
	else if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0))
		code = KERR_CONFLICT;
	if (e && e->code == 0 && state)
		snprintf(e->reason, sizeof(e->reason), "%s", state);
	return kerr_set(e, code, "%s failed: %s", what, msg);
}

/* Check r; on success hand it to *res (or clear it), else record why. */
static int db_result(struct db *d, PGresult *r, PGresult **res, const char *what, struct kerr *e)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		if (res)
			*res = r;
		else
			PQclear(r);
		return 0;
	}
	int rc = db_fail(d, r, what, e);
	PQclear(r);
	return rc;
}

/* Whether the open connection still works, without blocking: a closed
 * socket or a FATAL message waiting on it shows as readable. Reading also
 * queues any notifications that arrived. */
static bool db_alive(struct db *d)
{
	if (PQstatus(d->conn) != CONNECTION_OK || d->fatal[0])
		return false;
	/* The FATAL message and the end of the stream can arrive apart; a few
	 * rounds see both without looping on a chatty connection. */
	for (int i = 0; i < 4 && !d->fatal[0]; i++) {
		struct pollfd p = {.fd = PQsocket(d->conn), .events = POLLIN};
		if (poll(&p, 1, 0) <= 0)
			break;
		if (!PQconsumeInput(d->conn) || PQstatus(d->conn) != CONNECTION_OK)
			return false;
		/* PQconsumeInput only reads; PQisBusy parses what was read, which
		 * hands a FATAL to db_notice. */
		(void)PQisBusy(d->conn);
	}
	return !d->fatal[0];
}

/* The statements and LISTENs a fresh connection needs. */
static int db_setup(struct db *d, PGconn *c, char *why, size_t whysize)
{
	struct db_stmt *s, *tmp;

	PQsetNoticeReceiver(c, db_notice, d);
	HASH_ITER(hh, d->stmts, s, tmp) {
		PGresult *r = PQprepare(c, s->name, s->sql, 0, NULL);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok) {
			char msg[200];
			db_describe_error(msg, sizeof(msg), r, c);
			snprintf(why, whysize, "preparing statement '%s' again failed: %s", s->name, msg);
		}
		PQclear(r);
		if (!ok)
			return -1;
	}
	for (size_t i = 0; i < d->nchannels; i++) {
		char *id = PQescapeIdentifier(c, d->channels[i], strlen(d->channels[i]));
		char sql[DB_MAX_CHANNEL * 2 + 16];
		if (!id) {
			db_flatten(why, whysize, PQerrorMessage(c));
			return -1;
		}
		snprintf(sql, sizeof(sql), "LISTEN %s", id);
		PQfreemem(id);
		PGresult *r = PQexec(c, sql);
		bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok) {
			char msg[200];
			db_describe_error(msg, sizeof(msg), r, c);
			snprintf(why, whysize, "LISTEN %s again failed: %s", d->channels[i], msg);
		}
		PQclear(r);
		if (!ok)
			return -1;
	}
	return 0;
}

static int db_unreachable(struct db *d, int64_t now, struct kerr *e)
{
	return kerr_set(e, KERR_DB,
			"database at %s:%s (database %s, user %s) is unreachable: %s; next attempt in %lld ms",
			d->host, d->port, d->dbname, d->user, d->last_error,
			(long long)((d->next_attempt_ns - now + DB_NS_PER_MS - 1) / DB_NS_PER_MS));
}

/* Connect now unless the backoff says not yet. */
static int db_connect(struct db *d, struct kerr *e)
{
	int64_t now = db_now();

	if (now < d->next_attempt_ns)
		return db_unreachable(d, now, e);
	PGconn *c = PQconnectdbParams(d->keys, d->vals, 0);
	if (!c)
		return kerr_set(e, KERR_NOMEM, "out of memory connecting to the database");
	d->fatal[0] = '\0';
	if (PQstatus(c) != CONNECTION_OK)
		db_flatten(d->last_error, sizeof(d->last_error), PQerrorMessage(c));
	else if (db_setup(d, c, d->last_error, sizeof(d->last_error)) == 0) {
		d->conn = c;
		d->generation++;
		d->backoff_ns = d->backoff_initial_ns;
		d->next_attempt_ns = 0;
		if (d->generation > 1)
			log_info("db", "reconnected to the database", "host", d->host, "port", d->port, NULL);
		return 0;
	}
	PQfinish(c);
	now = db_now();
	d->next_attempt_ns = now + d->backoff_ns;
	d->backoff_ns = d->backoff_ns * 2 > d->backoff_max_ns ? d->backoff_max_ns : d->backoff_ns * 2;
	return db_unreachable(d, now, e);
}

/* A working connection before a statement: the current one if it still
 * works, else a new one (see the contract for transactions and pinning). */
static int db_ensure(struct db *d, struct kerr *e)
{
	if (d->conn) {
		PGTransactionStatusType ts = PQtransactionStatus(d->conn);
		if (db_alive(d))
			return 0;
		char msg[256];
		db_flatten(msg, sizeof(msg), d->fatal[0] ? d->fatal : PQerrorMessage(d->conn));
		db_drop(d);
		log_warn("db", "connection to the database lost", "host", d->host, "port", d->port, "error", msg,
			 NULL);
		if (d->pinned)
			return kerr_set(e, KERR_DB, "connection to the database at %s:%s lost during migrations: %s",
					d->host, d->port, msg);
		if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
			return kerr_set(e, KERR_DB,
					"connection to the database at %s:%s lost inside a transaction, which the "
					"server rolled back: %s; retry the whole transaction",
					d->host, d->port, msg);
	}
	return db_connect(d, e);
}

void db_options_from_config(struct db_options *o, const struct config *cfg)
{
	*o = (struct db_options){
		.host = cfg->db_host,
		.port = cfg->db_port,
		.dbname = cfg->db_name,
		.user = cfg->db_user,
		.password = cfg->db_password,
		.sslmode = cfg->db_sslmode,
	};
}

/* Copy the options into d: one allocation holds every string, and keys/vals
 * point into it. TCP keepalives make a vanished server host show up as a
 * broken connection within about a minute instead of the kernel's hours. */
static int db_copy_options(struct db *d, const struct db_options *o, struct kerr *e)
{
	char timeout[16];
	const char *src[][2] = {
		{"host", o->host},
		{"port", o->port},
		{"dbname", o->dbname},
		{"user", o->user},
		{"password", o->password},
		{"sslmode", o->sslmode ? o->sslmode : "disable"},
		{"application_name", o->application_name ? o->application_name : "nimbus-operator"},
		{"options", o->pg_options},
		{"connect_timeout", timeout},
		{"keepalives", "1"},
		{"keepalives_idle", "30"},
		{"keepalives_interval", "10"},
		{"keepalives_count", "3"},
	};
	size_t nsrc = sizeof(src) / sizeof(src[0]), total = 0, k = 0;

	if (!o->host || !o->port || !o->dbname || !o->user)
		return kerr_set(e, KERR_INVAL, "database options need host, port, dbname and user");
	snprintf(timeout, sizeof(timeout), "%d", o->connect_timeout_s > 0 ? o->connect_timeout_s
									   : DB_DEFAULT_CONNECT_TIMEOUT_S);
	for (size_t i = 0; i < nsrc; i++)
		total += src[i][1] ? strlen(src[i][1]) + 1 : 0;
	d->strings = malloc(total);
	if (!d->strings)
		return kerr_set(e, KERR_NOMEM, "out of memory copying database options");
	char *p = d->strings;
	for (size_t i = 0; i < nsrc; i++) {
		if (!src[i][1])
			continue;
		size_t n = strlen(src[i][1]) + 1;
		memcpy(p, src[i][1], n);
		d->keys[k] = src[i][0];
		d->vals[k++] = p;
		p += n;
	}
	d->keys[k] = NULL;
	d->vals[k] = NULL;
	d->host = d->vals[0];
	d->port = d->vals[1];
	d->dbname = d->vals[2];
	d->user = d->vals[3];
	return 0;
}

int db_open(const struct db_options *o, struct db **out, struct kerr *e)
{
	struct db *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return kerr_set(e, KERR_NOMEM, "out of memory opening the database");
	rc = db_copy_options(d, o, e);
	if (rc)
		goto err;
	d->backoff_initial_ns = (o->backoff_initial_ms > 0 ? o->backoff_initial_ms : DB_DEFAULT_BACKOFF_INITIAL_MS) *
				DB_NS_PER_MS;
	d->backoff_max_ns = (o->backoff_max_ms > 0 ? o->backoff_max_ms : DB_DEFAULT_BACKOFF_MAX_MS) * DB_NS_PER_MS;
	if (d->backoff_max_ns < d->backoff_initial_ns)
		d->backoff_max_ns = d->backoff_initial_ns;
	d->backoff_ns = d->backoff_initial_ns;
	rc = db_connect(d, e);
	if (rc == KERR_DB && o->defer_connect) {
		log_warn("db", "database unreachable; connecting when it is back", "error", e ? e->message : "", NULL);
		kerr_clear(e);
		rc = 0;
	}
	if (rc)
		goto err;
	*out = d;
	return 0;
err:
	db_close(d);
	return rc;
}

void db_close(struct db *d)
{
	struct db_stmt *s, *tmp;

	if (!d)
		return;
	PQfinish(d->conn);
	HASH_ITER(hh, d->stmts, s, tmp) {
		HASH_DEL(d->stmts, s);
		free(s->sql);
		free(s);
	}
	for (size_t i = 0; i < d->nchannels; i++)
		free(d->channels[i]);
	free(d->channels);
	free(d->strings);
	free(d);
}

uint64_t db_generation(const struct db *d)
{
	return d->generation;
}

/* "SQL 'INSERT INTO tenants (id, ...' ": the statement, cut, for messages. */
static void db_describe_sql(char *out, size_t size, const char *sql)
{
	char flat[64];
	db_flatten(flat, sizeof(flat), sql);
	snprintf(out, size, "SQL '%s%s'", flat, strlen(sql) >= sizeof(flat) - 1 ? "..." : "");
}

int db_exec_params_literal(struct db *d, const char *sql, int nparams, const char *const *values, PGresult **res,
			   struct kerr *e)
{
	char what[96];

	if (res)
		*res = NULL;
	if (nparams < 0 || (nparams > 0 && !values))
		return kerr_set(e, KERR_INVAL, "db_exec_params: %d parameters but no values", nparams);
	int rc = db_ensure(d, e);
	if (rc)
		return rc;
	db_describe_sql(what, sizeof(what), sql);
	PGresult *r = PQexecParams(d->conn, sql, nparams, NULL, values, NULL, NULL, 0);
	return db_result(d, r, res, what, e);
}

int db_ping(struct db *d, struct kerr *e)
{
	return db_exec_params(d, "SELECT 1", 0, NULL, NULL, e);
}

int db_prepare_literal(struct db *d, const char *name, const char *sql, int nparams, struct kerr *e)
{
	struct db_stmt *s;
	char what[160];

	if (!name || !*name || nparams < 0)
		return kerr_set(e, KERR_INVAL, "db_prepare: a statement needs a name and nparams >= 0");
	HASH_FIND_STR(d->stmts, name, s);
	if (s)
		return kerr_set(e, KERR_ALREADY_EXISTS, "statement '%s' is already prepared", name);
	int rc = db_ensure(d, e);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "preparing statement '%s'", name);
	rc = db_result(d, PQprepare(d->conn, name, sql, 0, NULL), NULL, what, e);
	if (rc)
		return rc;

	size_t len = strlen(name);
	s = calloc(1, sizeof(*s) + len + 1);
	if (s) {
		memcpy(s->name, name, len + 1);
		s->nparams = nparams;
		s->sql = strdup(sql);
	}
	if (s && s->sql)
		HASH_ADD_KEYPTR(hh, d->stmts, s->name, len, s);
	if (!s || !s->sql || !s->hh.tbl) {
		if (s)
			free(s->sql);
		free(s);
		/* The server has the statement but this handle could not record it:
		 * drop the connection so both agree again on the next use. */
		db_drop(d);
		return kerr_set(e, KERR_NOMEM, "out of memory registering statement '%s'", name);
	}
	return 0;
}

int db_exec_prepared(struct db *d, const char *name, int nparams, const char *const *values, PGresult **res,
		     struct kerr *e)
{
	struct db_stmt *s;
	char what[160];

	if (res)
		*res = NULL;
	HASH_FIND_STR(d->stmts, name ? name : "", s);
	if (!s)
		return kerr_set(e, KERR_NOT_FOUND, "statement '%s' was never prepared (db_prepare)", name ? name : "");
	if (nparams != s->nparams || (nparams > 0 && !values))
		return kerr_set(e, KERR_INVAL, "statement '%s' takes %d parameters, got %d", name, s->nparams, nparams);
	int rc = db_ensure(d, e);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "statement '%s'", name);
	PGresult *r = PQexecPrepared(d->conn, name, nparams, values, NULL, NULL, 0);
	return db_result(d, r, res, what, e);
}

/* Run one migration's statements and record it, in one transaction. */
static int db_apply(struct db *d, const struct db_migration *m, struct kerr *e)
{
	char version[16], what[96];
	const char *params[2] = {version, m->name};
	struct kerr err = {0};

	snprintf(version, sizeof(version), "%d", m->version);
	db_describe_sql(what, sizeof(what), m->sql);
	int rc = db_exec_params(d, "BEGIN", 0, NULL, NULL, &err);
	if (rc == 0) {
		/* Migration SQL is compiled in and holds several statements, which
		 * only the simple query protocol (PQexec) runs in one call. */
		rc = db_result(d, PQexec(d->conn, m->sql), NULL, what, &err);
	}
	if (rc == 0)
		rc = db_exec_params(d, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params,
				    NULL, &err);
	if (rc == 0)
		rc = db_exec_params(d, "COMMIT", 0, NULL, NULL, &err);
	if (rc == 0) {
		log_info("db", "migration applied", "version", version, "name", m->name, NULL);
		return 0;
	}
	if (d->conn) {
		PGresult *r = PQexec(d->conn, "ROLLBACK");
		PQclear(r);
	}
	if (e && e->code == 0)
		snprintf(e->reason, sizeof(e->reason), "%s", err.reason);
	return kerr_set(e, rc, "migration %d (%s) failed and was rolled back: %s", m->version, m->name, err.message);
}

/* Apply what is missing, with the advisory lock held. */
static int db_migrate_locked(struct db *d, const struct db_migration *list, size_t n, int *applied, struct kerr *e)
{
	PGresult *r;
	int rc = db_exec_params(d,
				"CREATE TABLE IF NOT EXISTS schema_migrations ("
				"version integer PRIMARY KEY, name text NOT NULL, "
				"applied_at timestamptz NOT NULL DEFAULT now())",
				0, NULL, NULL, e);
	if (rc == 0)
		rc = db_exec_params(d, "SELECT version, name FROM schema_migrations", 0, NULL, &r, e);
	if (rc)
		return rc;
	int rows = PQntuples(r);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct db_migration *m = &list[i];
		const char *recorded = NULL;
		for (int k = 0; k < rows && !recorded; k++) {
			if (atoi(PQgetvalue(r, k, 0)) == m->version)
				recorded = PQgetvalue(r, k, 1);
		}
		if (recorded && strcmp(recorded, m->name) != 0)
			rc = kerr_set(e, KERR_DB,
				      "schema_migrations records version %d as '%s' but this binary has it as '%s'; "
				      "migration files must never be renumbered",
				      m->version, recorded, m->name);
		else if (!recorded && (rc = db_apply(d, m, e)) == 0)
			++*applied;
	}
	PQclear(r);
	return rc;
}

int db_migrate(struct db *d, const struct db_migration *list, size_t n, int *applied, struct kerr *e)
{
	const char *key[1] = {DB_MIGRATION_LOCK};
	int count = 0;

	if (applied)
		*applied = 0;
	for (size_t i = 0; i < n; i++) {
		if (list[i].version <= 0 || (i > 0 && list[i].version <= list[i - 1].version) || !list[i].name ||
		    !list[i].sql)
			return kerr_set(e, KERR_INVAL,
					"migration list: entry %zu (version %d) needs a version above the one before "
					"it, a name and SQL",
					i, list[i].version);
	}
	int rc = db_exec_params(d, "SELECT pg_advisory_lock($1)", 1, key, NULL, e);
	if (rc)
		return rc;
	d->pinned = true;
	rc = db_migrate_locked(d, list, n, &count, e);
	d->pinned = false;
	if (d->conn && db_alive(d)) {
		struct kerr ignored = {0};
		if (db_exec_params(d, "SELECT pg_advisory_unlock($1)", 1, key, NULL, &ignored) != 0)
			log_warn("db", "releasing the migration lock failed; it goes with the connection",
				 "error", ignored.message, NULL);
	}
	if (applied)
		*applied = count;
	return rc;
}

int db_listen(struct db *d, const char *channel, struct kerr *e)
{
	size_t len = channel ? strlen(channel) : 0;

	if (len == 0 || len > DB_MAX_CHANNEL)
		return kerr_set(e, KERR_INVAL, "LISTEN: a channel name has 1 to %d bytes", DB_MAX_CHANNEL);
	for (size_t i = 0; i < d->nchannels; i++) {
		if (strcmp(d->channels[i], channel) == 0)
			return 0;
	}
	char **grown = realloc(d->channels, (d->nchannels + 1) * sizeof(char *));
	if (!grown)
		return kerr_set(e, KERR_NOMEM, "out of memory adding channel %s", channel);
	d->channels = grown;
	if (!(d->channels[d->nchannels] = strdup(channel)))
		return kerr_set(e, KERR_NOMEM, "out of memory adding channel %s", channel);
	d->nchannels++;

	/* Registered first, so that a reconnect inside db_ensure LISTENs too;
	 * removed again if this LISTEN fails on a live connection. Without
	 * one, the connection that comes back LISTENs (db_setup). */
	int rc = db_ensure(d, e);
	if (rc == KERR_DB && !d->conn) {
		kerr_clear(e);
		return 0;
	}
	if (rc == 0) {
		char *id = PQescapeIdentifier(d->conn, channel, len);
		char sql[DB_MAX_CHANNEL * 2 + 16], what[96];
		if (!id) {
			rc = kerr_set(e, KERR_NOMEM, "cannot quote channel name %s", channel);
		} else {
			snprintf(sql, sizeof(sql), "LISTEN %s", id);
			PQfreemem(id);
			snprintf(what, sizeof(what), "LISTEN %s", channel);
			rc = db_result(d, PQexec(d->conn, sql), NULL, what, e);
		}
	}
	if (rc) {
		free(d->channels[--d->nchannels]);
		if (d->conn) {
			/* The server may listen already (after a reconnect); keep both sides
			 * in step by starting over on the next use. */
			db_drop(d);
		}
	}
	return rc;
}

static void db_sleep_ns(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int db_lost_listening(struct db *d, struct kerr *e)
{
	char msg[256];

	db_flatten(msg, sizeof(msg), d->fatal[0] ? d->fatal : PQerrorMessage(d->conn));
	db_drop(d);
	log_warn("db", "connection to the database lost", "host", d->host, "port", d->port, "error", msg, NULL);
	return kerr_set(e, KERR_DB,
			"connection to the database at %s:%s lost while listening; notifications sent "
			"meanwhile are missed: %s",
			d->host, d->port, msg);
}

int db_wait_notify(struct db *d, int timeout_ms, PGnotify **out, struct kerr *e)
{
	int64_t deadline = db_now() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * DB_NS_PER_MS;

	*out = NULL;
	if (d->conn && (*out = PQnotifies(d->conn)) != NULL)
		return 0;
	if (!d->conn) {
		/* Waiting out the backoff here, within the timeout, keeps a listener
		 * loop from spinning while the database is down. */
		int64_t wait = d->next_attempt_ns - db_now(), left = deadline - db_now();
		if (wait > 0)
			db_sleep_ns(wait < left ? wait : (left > 0 ? left : 0));
	}
	int rc = db_ensure(d, e);
	if (rc)
		return rc;
	for (;;) {
		/* PQnotifies parses what PQconsumeInput read, FATALs included. */
		if ((*out = PQnotifies(d->conn)) != NULL)
			return 0;
		if (d->fatal[0])
			return db_lost_listening(d, e);
		int64_t left = deadline - db_now();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = PQsocket(d->conn), .events = POLLIN};
		int n = poll(&p, 1, (int)((left + DB_NS_PER_MS - 1) / DB_NS_PER_MS));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kerr_set(e, KERR_IO, "waiting on the database connection: %s", strerror(errno));
		if (n == 0)
			return 0;
		if (!PQconsumeInput(d->conn) || PQstatus(d->conn) != CONNECTION_OK)
			return db_lost_listening(d, e);
	}
}
