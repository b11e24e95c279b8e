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

/** WCAG relative luminance of an HSL colour (h in degrees, s and l in 0..1). */
export function hslLuminance(h: number, s: number, l: number): number {
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  const lin = (c: number) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(f(0)) + 0.7152 * lin(f(8)) + 0.0722 * lin(f(4));
}

/** A 0..1 fraction as a heat colour (light green → amber → red), with the
 * text colour (black or white) that contrasts more with it: at least
 * 4.5:1 whatever the colour. */
export function heat(f: number | null | undefined): { background: string; color: string } {
  if (f == null || !Number.isFinite(f)) return { background: '#eef0f4', color: '#3d4457' };
  const x = Math.max(0, Math.min(1, f));
  const hue = Math.round(140 - 140 * x);
  const light = Math.round(92 - 50 * x);
  const lum = hslLuminance(hue, 0.7, light / 100);
  // Black or white, whichever contrasts more: the worse of the two best
  // cases (luminance 0.18) is still 4.58:1.
  const dark = (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05);
  return { background: `hsl(${hue} 70% ${light}%)`, color: dark ? '#000000' : '#ffffff' };
}
