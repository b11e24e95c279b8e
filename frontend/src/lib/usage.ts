// Usage over time. The Billing chart draws GET /api/v1/billing/usage/history
// (the usage rows in PostgreSQL, bucketed by the API), so it shows the past
// as soon as it opens. The live rates of the Overview and Tenants pages come
// from GET /billing/usage: each answer gives, per tenant, the cumulative CPU
// and memory billed up to `until` (the end of the last committed billing
// window); two answers give the rate between them. Those points are kept for
// the browser session.
import type { UsageHistoryPoint, UsageHistoryResponse, UsageItem } from '../api/types';
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

/** The windows the Billing chart offers, each with its bucket width. */
export const RANGES = [
  { id: '1h', label: 'Last hour', seconds: 3600, step: 60 },
  { id: '6h', label: 'Last 6 hours', seconds: 6 * 3600, step: 300 },
  { id: '24h', label: 'Last 24 hours', seconds: 24 * 3600, step: 900 },
  { id: '7d', label: 'Last 7 days', seconds: 7 * 24 * 3600, step: 3600 },
] as const;
export type RangeId = (typeof RANGES)[number]['id'];

/** The query of a range ending now: from and to on bucket boundaries, so that
 * the buckets stay put from one refresh to the next. */
export function rangeQuery(id: RangeId, now = Date.now()): string {
  const r = RANGES.find((x) => x.id === id) ?? RANGES[0];
  const step = r.step * 1000;
  const to = Math.ceil((now + 1) / step) * step;
  const from = to - Math.ceil(r.seconds / r.step) * step;
  const iso = (t: number) => new Date(t).toISOString();
  return `from=${encodeURIComponent(iso(from))}&to=${encodeURIComponent(iso(to))}&step=${r.step}`;
}

/** The tenants of a history, the most used first. */
export function historyTenants(h: UsageHistoryResponse | undefined): string[] {
  const total = (pts: UsageHistoryPoint[]) => pts.reduce((s, p) => s + decimal(p.CPUMilliSeconds) + decimal(p.MemoryMBSeconds) / 1e6, 0);
  return [...(h?.items ?? [])].sort((a, b) => total(b.points) - total(a.points)).map((x) => x.tenant_id);
}

/** Chart rows {t, [tenant]: cumulative use since the window's start}: a zero
 * at from, then one row at the end of every bucket up to now (the last one
 * at now), buckets without usage adding nothing. */
export function historyRows(
  h: UsageHistoryResponse | undefined,
  metric: 'cpuCoreHours' | 'memGibHours',
  tenants: string[],
  now = Date.now(),
): Record<string, number>[] {
  if (!h) return [];
  const from = Date.parse(h.from);
  const step = h.step_seconds * 1000;
  const last = Math.min(Date.parse(h.to), now);
  if (!Number.isFinite(from) || !(step > 0) || last <= from) return [];
  const n = Math.ceil((last - from) / step);
  const perBucket = new Map<string, number[]>();
  for (const it of h.items) {
    if (!tenants.includes(it.tenant_id)) continue;
    const v = new Array<number>(n).fill(0);
    for (const p of it.points) {
      const i = Math.floor((Date.parse(p.time) - from) / step);
      if (i < 0 || i >= n) continue;
      v[i] +=
        metric === 'cpuCoreHours'
          ? cpuMilliSecondsToCoreHours(decimal(p.CPUMilliSeconds))
          : mibSecondsToGibHours(decimal(p.MemoryMBSeconds));
    }
    perBucket.set(it.tenant_id, v);
  }
  const rows: Record<string, number>[] = [{ t: from }];
  const sum = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const row: Record<string, number> = { t: Math.min(from + (i + 1) * step, last) };
    for (const ten of tenants) {
      const acc = (sum.get(ten) ?? 0) + (perBucket.get(ten)?.[i] ?? 0);
      sum.set(ten, acc);
      row[ten] = acc;
    }
    rows.push(row);
  }
  for (const ten of tenants) rows[0][ten] = 0;
  return rows;
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
