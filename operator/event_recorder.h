/*
 * event_recorder: Kubernetes Events sent by a thread of their own, so that
 * recording one never holds up a reconcile.
 *
 * Contract
 * - event_recorder_record() queues the event and returns at once; it takes
 *   a reference to the object (released once the event is sent or
 *   dropped) and copies reason and message. One thread sends the queue in
 *   order, one request at a time: an event is for people, and a burst of
 *   them must not take the apiserver's capacity from the writes that
 *   matter (client-go's recorder is asynchronous for the same reason).
 * - Best effort, as Events are: a failed send is logged and dropped, and
 *   when `capacity` events are waiting a new one is dropped and counted
 *   (nimbus_events_dropped_total, and a warning on the first of each run of
 *   drops).
 * - event_recorder_free() sends what is queued for at most `drain_ms` more,
 *   drops the rest, and joins the thread. Thread-safe: record from any
 *   thread.
 */
#ifndef NIMBUS_EVENT_RECORDER_H
#define NIMBUS_EVENT_RECORDER_H

#include <stddef.h>

#include "kerr.h"
#include "kobj.h"
#include "kube_client.h"
#include "kube_write.h"
#include "metrics.h"

struct event_recorder_options {
	struct kube_client *client;       /* borrowed; must outlive the recorder */
	size_t capacity;                  /* events waiting at most; 0 = 1024 */
	long drain_ms;                    /* at free; 0 = 2000 */
	struct metrics_registry *metrics; /* may be NULL */
};

struct event_recorder;

int event_recorder_new(struct event_recorder **out, const struct event_recorder_options *o, struct kerr *e);
/* Queue an Event about o (reason CamelCase, e.g. "DeploymentCreated"). */
void event_recorder_record(struct event_recorder *r, struct kobj *o, enum kube_event_type type, const char *reason,
			   const char *message);
/* Events queued and not yet sent. */
size_t event_recorder_pending(struct event_recorder *r);
void event_recorder_free(struct event_recorder *r);

#endif
