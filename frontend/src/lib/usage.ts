// Usage over time, built from GET /billing/usage: each answer gives, per
// tenant, the cumulative CPU and memory billed up to `until` (the end of the
// last committed billing window). Every distinct `until` is a point of the
// tenant's cumulative curve; `since` (where billing started) is its zero.
// Points are kept for the browser session, so the curve fills in while the
// dashboard is open.
import type { UsageItem } from '../api/types';
import { cpuMilliSecondsToCoreHours, decimal, mibSecondsToGibHours } from './format';

export interface UsagePoint {
  t: number; // unix ms
  cpuCoreHours: number;
  memGibHours: number;
}

export type UsageHistory = Record<string, UsagePoint[]>;

const MAX_POINTS = 720;

/** history plus the points of items (no duplicates, sorted by time). */
export function mergeUsage(history: UsageHistory, items: UsageItem[]): UsageHistory {
  const out: UsageHistory = { ...history };
  for (const it of items) {
    const pts = [...(out[it.tenant_id] ?? [])];
    const add = (p: UsagePoint) => {
      if (!Number.isFinite(p.t)) return;
      const i = pts.findIndex((q) => q.t === p.t);
      if (i >= 0) pts[i] = p;
      else pts.push(p);
    };
    if (it.since) add({ t: Date.parse(it.since), cpuCoreHours: 0, memGibHours: 0 });
    if (it.until)
      add({
        t: Date.parse(it.until),
        cpuCoreHours: cpuMilliSecondsToCoreHours(decimal(it.CPUMilliSeconds)),
        memGibHours: mibSecondsToGibHours(decimal(it.MemoryMBSeconds)),
      });
    pts.sort((a, b) => a.t - b.t);
    out[it.tenant_id] = pts.slice(-MAX_POINTS);
  }
  return out;
}

/** Rows for a chart with one series per tenant: {t, [tenant]: value}. A
 * tenant has a value only at its own points; the chart joins them
 * (connectNulls), which for a cumulative figure is the linear estimate
 * between two samples. */
export function chartRows(
  history: UsageHistory,
  metric: 'cpuCoreHours' | 'memGibHours',
  tenants: string[],
): Record<string, number>[] {
  const rows = new Map<number, Record<string, number>>();
  for (const ten of tenants) {
    for (const p of history[ten] ?? []) {
      let row = rows.get(p.t);
      if (!row) rows.set(p.t, (row = { t: p.t }));
      row[ten] = p[metric];
    }
  }
  return [...rows.values()].sort((a, b) => a.t - b.t);
}

const KEY = 'nimbus.usage-history';

export function loadHistory(): UsageHistory {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) ?? '{}') as UsageHistory;
  } catch {
    return {};
  }
}

export function saveHistory(h: UsageHistory): void {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(h));
  } catch {
    /* full: the chart just starts over */
  }
}

/** The average rate between a tenant's last two points: CPU in millicores
 * and memory in bytes over that interval; null with fewer than two. */
export function lastRate(points: UsagePoint[] | undefined): { cpuMilli: number; memoryBytes: number; seconds: number } | null {
  if (!points || points.length < 2) return null;
  const a = points[points.length - 2];
  const b = points[points.length - 1];
  const hours = (b.t - a.t) / 3_600_000;
  if (hours <= 0) return null;
  return {
    cpuMilli: ((b.cpuCoreHours - a.cpuCoreHours) / hours) * 1000,
    memoryBytes: ((b.memGibHours - a.memGibHours) / hours) * 2 ** 30,
    seconds: hours * 3600,
  };
}
