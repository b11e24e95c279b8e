/*
 * db_health: whether the operator's database answers, for /readyz.
 *
 * Contract
 * - One thread of its own pings PostgreSQL (SELECT 1) every
 *   DB_HEALTH_PERIOD_MS on a connection of its own (application_name
 *   nimbus-operator-health, connect timeout 2 s), so that a probe never
 *   waits on the network: db_health_ok() only reads the last result.
 * - Until the first ping has answered, the database counts as unreachable.
 * - db_health_ok() may be called from any thread; start and free from one.
 */
#ifndef NIMBUS_DB_HEALTH_H
#define NIMBUS_DB_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "kerr.h"

/* 2 s: a readiness probe (10 s period by default in the chart) sees a
 * change within one of its periods. */
#define DB_HEALTH_PERIOD_MS 2000

struct db_health;

/* Start pinging the database of o (copied; its strings need not outlive
 * the call). *out is the caller's, freed with db_health_free(). Fails only
 * for bad options or resources; an unreachable database is a result. */
int db_health_start(struct db_health **out, const struct db_options *o, struct kerr *e);
/* Whether the last ping answered; when not, why (cap bytes) names the
 * database and the error. */
bool db_health_ok(struct db_health *h, char *why, size_t cap);
/* Stop the thread (within a ping's time) and free. NULL-safe. */
void db_health_free(struct db_health *h);

#endif
