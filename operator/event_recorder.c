#include "event_recorder.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define LOGGER "events"

struct pending_event {
	struct pending_event *next;
	struct kobj *obj; /* a reference */
	enum kube_event_type type;
	char *reason, *message;
};

struct event_recorder {
	struct kube_client *client;
	size_t capacity;
	long drain_ms;
	struct metrics_family *dropped; /* may be NULL */

	pthread_t thread;
	pthread_mutex_t mu;       /* guards everything below */
	pthread_cond_t cond;      /* signalled on record and stop */
	struct pending_event *head, *tail;
	size_t n;
	bool dropping;            /* the last record was dropped: warn once per run of drops */
	bool stopping;
	struct timespec deadline; /* CLOCK_MONOTONIC; while stopping, send until then */
};

static void pending_free(struct pending_event *p)
{
	kobj_unref(p->obj);
	free(p->reason);
	free(p->message);
	free(p);
}

static bool past(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void *sender(void *arg)
{
	struct event_recorder *r = arg;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->head && !r->stopping)
			pthread_cond_wait(&r->cond, &r->mu);
		if (!r->head || (r->stopping && past(&r->deadline)))
			break;
		struct pending_event *p = r->head;
		r->head = p->next;
		if (!r->head)
			r->tail = NULL;
		r->n--;
		pthread_mutex_unlock(&r->mu);

		struct kerr e = {0};
		if (kube_event(r->client, p->obj, p->type, p->reason, p->message, &e) < 0)
			log_warn(LOGGER, "cannot record an event", "object", p->obj->key, "reason", p->reason, "error",
				 e.message, NULL);
		pending_free(p);
		pthread_mutex_lock(&r->mu);
	}
	size_t left = r->n;
	while (r->head) {
		struct pending_event *p = r->head;
		r->head = p->next;
		pending_free(p);
	}
	r->tail = NULL;
	r->n = 0;
	pthread_mutex_unlock(&r->mu);
	if (left) {
		char n[24];
		snprintf(n, sizeof(n), "%zu", left);
		log_warn(LOGGER, "events not sent before shutdown", "dropped", n, NULL);
	}
	return NULL;
}

int event_recorder_new(struct event_recorder **out, const struct event_recorder_options *o, struct kerr *e)
{
	*out = NULL;
	struct event_recorder *r = calloc(1, sizeof(*r));
	if (!r)
		return kerr_set(e, KERR_NOMEM, "event recorder: out of memory");
	r->client = o->client;
	r->capacity = o->capacity ? o->capacity : 1024;
	r->drain_ms = o->drain_ms > 0 ? o->drain_ms : 2000;
	int rc = 0;
	if (o->metrics)
		rc = metrics_counter_new(o->metrics, "nimbus_events_dropped_total",
					 "Kubernetes Events dropped because too many were waiting to be sent.", NULL, 0,
					 &r->dropped, e);
	if (rc < 0) {
		free(r);
		return rc;
	}
	if (pthread_mutex_init(&r->mu, NULL) != 0) {
		free(r);
		return kerr_set(e, KERR_NOMEM, "event recorder: cannot create a mutex");
	}
	if (pthread_cond_init(&r->cond, NULL) != 0) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		return kerr_set(e, KERR_NOMEM, "event recorder: cannot create a condition variable");
	}
	if (pthread_create(&r->thread, NULL, sender, r) != 0) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return kerr_set(e, KERR_NOMEM, "event recorder: cannot start its thread");
	}
	*out = r;
	return 0;
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

void event_recorder_record(struct event_recorder *r, struct kobj *o, enum kube_event_type type, const char *reason,
			   const char *message)
{
	struct pending_event *p = calloc(1, sizeof(*p));
	if (p) {
		p->reason = dup_or_empty(reason);
		p->message = dup_or_empty(message);
		p->type = type;
	}
	if (!p || !p->reason || !p->message) {
		if (p) {
			free(p->reason);
			free(p->message);
			free(p);
		}
		log_warn(LOGGER, "cannot record an event: out of memory", "object", o->key, "reason", reason, NULL);
		return;
	}
	p->obj = kobj_ref(o);
	pthread_mutex_lock(&r->mu);
	bool drop = r->stopping || r->n >= r->capacity;
	bool warn = drop && !r->dropping;
	r->dropping = drop;
	if (!drop) {
		if (r->tail)
			r->tail->next = p;
		else
			r->head = p;
		r->tail = p;
		r->n++;
		pthread_cond_signal(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
	if (!drop)
		return;
	if (r->dropped)
		metrics_counter_inc(r->dropped, NULL, 0);
	if (warn)
		log_warn(LOGGER, "too many events waiting to be sent; dropping new ones until the queue drains", "object",
			 o->key, "reason", reason, NULL);
	pending_free(p);
}

size_t event_recorder_pending(struct event_recorder *r)
{
	pthread_mutex_lock(&r->mu);
	size_t n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

void event_recorder_free(struct event_recorder *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	clock_gettime(CLOCK_MONOTONIC, &r->deadline);
	r->deadline.tv_sec += r->drain_ms / 1000;
	r->deadline.tv_nsec += (r->drain_ms % 1000) * 1000000;
	if (r->deadline.tv_nsec >= 1000000000) {
		r->deadline.tv_sec++;
		r->deadline.tv_nsec -= 1000000000;
	}
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
