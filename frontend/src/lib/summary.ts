// Aggregates the pages show: what each tenant's workloads request against
// its quota, and the cluster's capacity, requests and live use.
import type { SchedulerNode, Tenant, Workload } from '../api/types';
import { cpuMilli, parseQuantity } from './format';

export interface Requested {
  cpuMilli: number;
  memoryBytes: number;
  pods: number;
  workloads: number;
  readyWorkloads: number;
  podsReady: number;
  podsNotReady: number;
}

const empty = (): Requested => ({
  cpuMilli: 0,
  memoryBytes: 0,
  pods: 0,
  workloads: 0,
  readyWorkloads: 0,
  podsReady: 0,
  podsNotReady: 0,
});

/** Per tenant: replicas × per-pod requests of its workloads (what counts
 * against the quota once the pods exist), and pod readiness. */
export function requestedByTenant(workloads: Workload[]): Record<string, Requested> {
  const out: Record<string, Requested> = {};
  for (const w of workloads) {
    const r = (out[w.tenant] ??= empty());
    const replicas = w.deleting ? 0 : w.replicas;
    r.cpuMilli += replicas * (cpuMilli(w.cpu) ?? 0);
    r.memoryBytes += replicas * (parseQuantity(w.memory) ?? 0);
    r.pods += replicas;
    r.workloads += 1;
    if (w.status.ready) r.readyWorkloads += 1;
    r.podsReady += w.status.readyReplicas;
    r.podsNotReady += Math.max(0, Math.max(w.status.replicas, replicas) - w.status.readyReplicas);
  }
  return out;
}

export function totalRequested(by: Record<string, Requested>): Requested {
  const t = empty();
  for (const r of Object.values(by)) {
    t.cpuMilli += r.cpuMilli;
    t.memoryBytes += r.memoryBytes;
    t.pods += r.pods;
    t.workloads += r.workloads;
    t.readyWorkloads += r.readyWorkloads;
    t.podsReady += r.podsReady;
    t.podsNotReady += r.podsNotReady;
  }
  return t;
}

export interface Quota {
  cpuMilli: number | null;
  memoryBytes: number | null;
  pods: number;
}

export function tenantQuota(t: Tenant): Quota {
  return { cpuMilli: cpuMilli(t.cpu_quota), memoryBytes: parseQuantity(t.memory_quota), pods: t.pods_quota };
}

/** used / of as a fraction, null when `of` is unknown or zero. */
export function fraction(used: number, of: number | null | undefined): number | null {
  return of ? used / of : null;
}

export interface Cluster {
  nodes: number;
  readyNodes: number;
  cpu: { capacity: number; requested: number; used: number | null };
  memory: { capacity: number; requested: number; used: number | null };
  pods: number;
}

/** Sum of the scheduler's node view; used is null when no node has live usage. */
export function clusterTotals(nodes: SchedulerNode[]): Cluster {
  const c: Cluster = {
    nodes: nodes.length,
    readyNodes: 0,
    cpu: { capacity: 0, requested: 0, used: null },
    memory: { capacity: 0, requested: 0, used: null },
    pods: 0,
  };
  for (const n of nodes) {
    if (n.ready && !n.unschedulable) c.readyNodes++;
    c.cpu.capacity += n.allocatable.cpu_milli ?? 0;
    c.memory.capacity += n.allocatable.memory_bytes ?? 0;
    c.cpu.requested += n.requested.cpu_milli;
    c.memory.requested += n.requested.memory_bytes;
    c.pods += n.pods;
    if (n.usage) {
      c.cpu.used = (c.cpu.used ?? 0) + n.usage.cpu_milli;
      c.memory.used = (c.memory.used ?? 0) + n.usage.memory_bytes;
    }
  }
  return c;
}

/** A 0..1 fraction as a heat colour (light green → amber → red), with a
 * text colour that keeps contrast on it. */
export function heat(f: number | null | undefined): { background: string; color: string } {
  if (f == null || !Number.isFinite(f)) return { background: '#eef0f4', color: '#3d4457' };
  const x = Math.max(0, Math.min(1, f));
  // hue 140 (green) → 0 (red); lightness darkens as it fills.
  const hue = 140 - 140 * x;
  const light = 92 - 50 * x;
  return { background: `hsl(${hue.toFixed(0)} 70% ${light.toFixed(0)}%)`, color: light < 52 ? '#ffffff' : '#14181f' };
}
