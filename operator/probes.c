#include "probes.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "kinds.h"

enum { MAX_INFORMERS = 16 };

struct probes {
	struct httpd *health, *metrics_srv;
	struct metrics_registry *metrics;
	struct informer *informers[MAX_INFORMERS];
	size_t ninformers;
	probes_ready_fn ready;
	void *ready_arg;
	struct metrics_family *objects, *synced, *relists, *watches, *events, *errors;
	pthread_mutex_t mu;                          /* guards last[] across concurrent scrapes */
	struct informer_stats last[MAX_INFORMERS];   /* counters already added, per informer */
};

static int text(struct httpd_response *resp, int status, const char *body)
{
	httpd_response_status(resp, status);
	httpd_response_content_type(resp, "text/plain; charset=utf-8");
	return httpd_response_body(resp, body, strlen(body));
}

static int health_router(void *user, const struct httpd_request *req, struct httpd_response *resp)
{
	struct probes *p = user;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
		return HTTPD_PASS;
	if (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/livez") == 0)
		return text(resp, 200, "ok\n");
	if (strcmp(req->path, "/readyz") == 0) {
		char why[256] = "";
		if (p->ready && !p->ready(p->ready_arg, why, sizeof(why))) {
			char body[300];
			snprintf(body, sizeof(body), "not ready: %s\n", why);
			return text(resp, 503, body);
		}
		return text(resp, 200, "ok\n");
	}
	return HTTPD_PASS;
}

/* Counters in the registry only go up, so each scrape adds what the
 * informer counted since the previous one. */
static void refresh_informers(struct probes *p)
{
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->ninformers; i++) {
		struct informer_stats s;
		informer_stats(p->informers[i], &s);
		const char *kind = informer_kind(p->informers[i])->name;
		struct informer_stats *l = &p->last[i];
		metrics_gauge_set(p->objects, (double)s.objects, METRICS_LABELS(kind));
		metrics_gauge_set(p->synced, s.synced ? 1 : 0, METRICS_LABELS(kind));
		metrics_counter_add(p->relists, (double)(s.relists - l->relists), METRICS_LABELS(kind));
		metrics_counter_add(p->watches, (double)(s.watches - l->watches), METRICS_LABELS(kind));
		metrics_counter_add(p->events, (double)(s.events - l->events), METRICS_LABELS(kind));
		metrics_counter_add(p->errors, (double)(s.errors - l->errors), METRICS_LABELS(kind));
		*l = s;
	}
	pthread_mutex_unlock(&p->mu);
}

static int metrics_router(void *user, const struct httpd_request *req, struct httpd_response *resp)
{
	struct probes *p = user;
	if (strcmp(req->path, "/metrics") != 0 || strcmp(req->method, "GET") != 0)
		return HTTPD_PASS;
	refresh_informers(p);
	char *out = NULL;
	size_t len = 0;
	struct kerr e = {0};
	int rc = metrics_render(p->metrics, &out, &len, &e);
	if (rc < 0)
		return rc;
	httpd_response_content_type(resp, METRICS_CONTENT_TYPE);
	httpd_response_body_take(resp, out, len);
	return 0;
}

static int register_families(struct probes *p, struct kerr *e)
{
	static const char *const kind[] = {"kind"};
	struct metrics_registry *r = p->metrics;
	int rc;
	if ((rc = metrics_gauge_new(r, "nimbus_informer_objects", "Objects in an informer's cache.", kind, 1,
				    &p->objects, e)) < 0 ||
	    (rc = metrics_gauge_new(r, "nimbus_informer_synced", "1 once an informer's first LIST is in its cache.", kind,
				    1, &p->synced, e)) < 0 ||
	    (rc = metrics_counter_new(r, "nimbus_informer_relists_total",
				      "LISTs from scratch (the initial sync, and after 410 Gone).", kind, 1, &p->relists, e)) < 0 ||
	    (rc = metrics_counter_new(r, "nimbus_informer_watches_total", "Watch requests opened.", kind, 1, &p->watches,
				      e)) < 0 ||
	    (rc = metrics_counter_new(r, "nimbus_informer_events_total", "Watch events applied to a cache.", kind, 1,
				      &p->events, e)) < 0 ||
	    (rc = metrics_counter_new(r, "nimbus_informer_errors_total", "Failed LIST or WATCH attempts.", kind, 1,
				      &p->errors, e)) < 0)
		return rc;
	return 0;
}

static int serve(struct httpd **out, const struct config_addr *a, httpd_router_fn router, struct probes *p,
		 struct kerr *e)
{
	if (a->port == 0)
		return 0;
	char addr[300];
	snprintf(addr, sizeof(addr), strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host, (unsigned)a->port);
	struct httpd_opts o = {.addr = addr, .router = router, .router_user = p};
	int rc = httpd_new(out, &o, e);
	return rc < 0 ? rc : httpd_start(*out, e);
}

int probes_start(struct probes **out, const struct probes_options *o, struct kerr *e)
{
	*out = NULL;
	if (o->ninformers > MAX_INFORMERS)
		return kerr_set(e, KERR_INVAL, "probes: at most %d informers", MAX_INFORMERS);
	struct probes *p = calloc(1, sizeof(*p));
	if (!p)
		return kerr_set(e, KERR_NOMEM, "probes: out of memory");
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return kerr_set(e, KERR_NOMEM, "probes: cannot create a mutex");
	}
	p->metrics = o->metrics;
	p->ready = o->ready;
	p->ready_arg = o->ready_arg;
	p->ninformers = o->ninformers;
	memcpy(p->informers, o->informers, o->ninformers * sizeof(*o->informers));
	int rc = register_families(p, e);
	if (rc == 0)
		rc = serve(&p->health, &o->health_addr, health_router, p, e);
	if (rc == 0)
		rc = serve(&p->metrics_srv, &o->metrics_addr, metrics_router, p, e);
	if (rc < 0) {
		probes_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void probes_free(struct probes *p)
{
	if (!p)
		return;
	httpd_free(p->health);
	httpd_free(p->metrics_srv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
