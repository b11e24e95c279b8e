#include "db_health.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct db_health {
	struct db *db;      /* the pinging thread's alone */
	pthread_t thread;
	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t wake;
	bool stopping;
	bool ok;
	char why[sizeof(((struct kerr *)0)->message)];
};

static void *health_main(void *arg)
{
	struct db_health *h = arg;
	bool was_ok = false;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		pthread_mutex_unlock(&h->mu);
		struct kerr e = {0};
		bool ok = db_ping(h->db, &e) == 0;
		if (ok != was_ok) {
			if (ok)
				log_info("db_health", "database reachable", NULL);
			else
				log_warn("db_health", "database unreachable: not ready until it answers", "error",
					 e.message, NULL);
		}
		was_ok = ok;
		pthread_mutex_lock(&h->mu);
		h->ok = ok;
		snprintf(h->why, sizeof(h->why), "%s", ok ? "" : e.message);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += DB_HEALTH_PERIOD_MS / 1000;
		until.tv_nsec += (long)(DB_HEALTH_PERIOD_MS % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!h->stopping && pthread_cond_timedwait(&h->wake, &h->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int db_health_start(struct db_health **out, const struct db_options *o, struct kerr *e)
{
	*out = NULL;
	struct db_health *h = calloc(1, sizeof(*h));
	if (!h)
		return kerr_set(e, KERR_NOMEM, "db_health: out of memory");
	snprintf(h->why, sizeof(h->why), "the database has not answered yet");
	struct db_options dbo = *o;
	dbo.application_name = "nimbus-operator-health";
	dbo.connect_timeout_s = 2;
	dbo.defer_connect = true;
	/* The ping runs every period anyway: retrying sooner than that buys
	 * nothing, and later would leave /readyz stale. */
	dbo.backoff_initial_ms = DB_HEALTH_PERIOD_MS / 2;
	dbo.backoff_max_ms = DB_HEALTH_PERIOD_MS / 2;
	int rc = db_open(&dbo, &h->db, e);
	if (rc < 0) {
		free(h);
		return rc;
	}
	if (pthread_mutex_init(&h->mu, NULL) != 0) {
		db_close(h->db);
		free(h);
		return kerr_set(e, KERR_NOMEM, "db_health: cannot create a mutex");
	}
	if (pthread_cond_init(&h->wake, NULL) != 0) {
		pthread_mutex_destroy(&h->mu);
		db_close(h->db);
		free(h);
		return kerr_set(e, KERR_NOMEM, "db_health: cannot create a condition variable");
	}
	if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
		pthread_cond_destroy(&h->wake);
		pthread_mutex_destroy(&h->mu);
		db_close(h->db);
		free(h);
		return kerr_set(e, KERR_NOMEM, "db_health: cannot start its thread");
	}
	*out = h;
	return 0;
}

bool db_health_ok(struct db_health *h, char *why, size_t cap)
{
	pthread_mutex_lock(&h->mu);
	bool ok = h->ok;
	if (!ok && cap)
		snprintf(why, cap, "%s", h->why);
	pthread_mutex_unlock(&h->mu);
	return ok;
}

void db_health_free(struct db_health *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->mu);
	db_close(h->db);
	free(h);
}
