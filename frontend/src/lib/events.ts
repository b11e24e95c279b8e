// Words for the live events the API streams.
import type { LiveEvent } from '../api/types';

const str = (v: unknown) => (typeof v === 'string' ? v : '');
const num = (v: unknown) => (typeof v === 'number' ? v : null);

/** One line for an event: "workload web: Running, 2/2 ready". */
export function describeEvent(e: LiveEvent): string {
  const o = e.object ?? {};
  const who = e.name ?? '';
  switch (e.type) {
    case 'tenant':
      if (e.action === 'deleted') return `tenant ${e.tenant}: namespace deleted`;
      return `tenant ${e.tenant}: namespace ${str(o.namespace) || e.namespace} ${str(o.phase) || e.action}`;
    case 'workload': {
      if (e.action === 'deleted') return `workload ${who} deleted`;
      const want = num(o.replicas);
      const ready = num(o.readyReplicas);
      const phase = str(o.phase) || 'Pending';
      const verb = e.action === 'added' ? 'created' : phase;
      return `workload ${who}: ${verb}${want != null ? `, ${ready ?? 0}/${want} ready` : ''}`;
    }
    case 'pod':
      if (e.action === 'deleted') return `pod ${who} deleted`;
      return `pod ${who}: ${str(o.phase) || 'Pending'}${o.ready === true ? ', ready' : ''}${str(o.node) ? ` on ${str(o.node)}` : ''}`;
    case 'placement':
      return `pod ${who} placed on ${str(o.node)} by ${str(o.scheduler) || 'the scheduler'}`;
    default:
      return e.type;
  }
}

/** The events of one workload: itself, and the pods of its Deployment
 * nimbus-<name> (named nimbus-<name>-<replicaset hash>-<suffix>). */
export function eventsOfWorkload(events: LiveEvent[], namespace: string, name: string): LiveEvent[] {
  const prefix = `nimbus-${name}-`;
  return events.filter(
    (e) =>
      e.namespace === namespace &&
      ((e.type === 'workload' && e.name === name) ||
        ((e.type === 'pod' || e.type === 'placement') && (e.name ?? '').startsWith(prefix) &&
          /^[a-z0-9]+-[a-z0-9]+$/.test((e.name ?? '').slice(prefix.length)))),
  );
}
