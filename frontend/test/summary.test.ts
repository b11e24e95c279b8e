import { describe, expect, it } from 'vitest';
import type { SchedulerNode, UsageItem, Workload } from '../src/api/types';
import { clusterTotals, fraction, heat, hslLuminance, requestedByTenant, totalRequested } from '../src/lib/summary';
import { historyRows, historyTenants, lastRate, mergeUsage, rangeQuery } from '../src/lib/usage';
import { describeEvent, eventsOfWorkload } from '../src/lib/events';
import { invoiceCsv, invoiceFilename } from '../src/pages/Billing';
import { capacityRows } from '../src/pages/Overview';
import { nodeFractions, placementReason } from '../src/pages/Scheduler';

export function workload(p: Partial<Workload> & { tenant: string; name: string }): Workload {
  return {
    namespace: `nimbus-${p.tenant}`,
    uid: `${p.tenant}-${p.name}`,
    created_at: '2026-11-25T10:00:00Z',
    deleting: false,
    image: 'nginx',
    cpu: '200m',
    memory: '256Mi',
    replicas: 2,
    autoscaling: null,
    ...p,
    status: { phase: 'Running', ready: true, replicas: 2, readyReplicas: 2, observedGeneration: 1, conditions: [], autoscaling: null, ...p.status },
  } as Workload;
}

describe('requests against quota', () => {
  it('sums replicas × per-pod requests per tenant', () => {
    const by = requestedByTenant([
      workload({ tenant: 'a', name: 'web' }),
      workload({ tenant: 'a', name: 'db', cpu: '1', memory: '1Gi', replicas: 1, status: { ready: false, replicas: 1, readyReplicas: 0 } as Workload['status'] }),
      workload({ tenant: 'b', name: 'x', deleting: true }),
    ]);
    expect(by.a.cpuMilli).toBe(1400);
    expect(by.a.memoryBytes).toBe(512 * 2 ** 20 + 2 ** 30);
    expect(by.a.pods).toBe(3);
    expect(by.a.workloads).toBe(2);
    expect(by.a.readyWorkloads).toBe(1);
    expect(by.a.podsReady).toBe(2);
    expect(by.a.podsNotReady).toBe(1);
    expect(by.b.cpuMilli).toBe(0); // a deleting workload no longer counts
    expect(totalRequested(by).workloads).toBe(3);
    expect(fraction(1, 4)).toBe(0.25);
    expect(fraction(1, 0)).toBeNull();
  });
});

const node = (name: string, req: number, use: number | null): SchedulerNode => ({
  name,
  ready: true,
  unschedulable: false,
  pods: 2,
  allocatable: { cpu_milli: 4000, memory_bytes: 16 * 2 ** 30, pods: 110 },
  requested: { cpu_milli: req, memory_bytes: 2 ** 30 },
  requested_fraction: { cpu: req / 4000, memory: 1 / 16 },
  usage: use == null ? null : { cpu_milli: use, memory_bytes: 2 ** 29, age_ms: 1000, cpu_fraction: use / 4000 },
});

describe('cluster', () => {
  it('adds up the nodes', () => {
    const c = clusterTotals([node('a', 1000, 500), node('b', 2000, null)]);
    expect(c.cpu).toEqual({ capacity: 8000, requested: 3000, used: 500 });
    expect(c.memory.capacity).toBe(32 * 2 ** 30);
    expect(c.readyNodes).toBe(2);
    const rows = capacityRows(c);
    expect(rows[0]).toMatchObject({ resource: 'CPU', Requested: 37.5, Used: 6.3 });
    expect(rows[0].text.capacity).toBe('8 cores');
  });
  it('has no used figure without live usage', () => {
    expect(clusterTotals([node('a', 1000, null)]).cpu.used).toBeNull();
  });
  it('gives each node its fractions', () => {
    expect(nodeFractions(node('a', 1000, 2000))).toMatchObject({ cpuRequested: 0.25, cpuLive: 0.5, memLive: 1 / 32 });
    expect(nodeFractions(node('a', 1000, null)).cpuLive).toBeNull();
  });
  it('colours the heat map with readable text', () => {
    expect(heat(null).background).toBe('#eef0f4');
    expect(heat(0).color).toBe('#000000');
    expect(heat(1).color).toBe('#ffffff');
    expect(heat(2)).toEqual(heat(1));
    // every step keeps 4.5:1 between the text and the cell
    const ratio = (a: number, b: number) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    for (let i = 0; i <= 100; i++) {
      const h = heat(i / 100);
      const [hue, , l] = h.background.match(/[\d.]+/g)!.map(Number);
      const bg = hslLuminance(hue, 0.7, l / 100);
      expect(ratio(bg, h.color === '#ffffff' ? 1 : 0)).toBeGreaterThanOrEqual(4.5);
    }
    expect(hslLuminance(0, 0, 1)).toBeCloseTo(1);
    expect(hslLuminance(0, 0, 0)).toBeCloseTo(0);
  });
  it('says why a pod went where it did', () => {
    expect(placementReason(42, 'nimbus-scheduler')).toMatch(/score 42/);
    expect(placementReason(null, 'nimbus-scheduler')).toMatch(/not recorded/);
    expect(placementReason(null, 'default-scheduler')).toBe('bound by default-scheduler');
  });
});

describe('usage history', () => {
  const item = (until: string, cpu: string): UsageItem => ({
    tenant_id: 'a',
    CPUMilliSeconds: cpu,
    MemoryMBSeconds: '3686400.000000',
    since: '2026-11-25T10:00:00.000Z',
    until,
  });
  it('keeps one point per billing sample, from zero at since', () => {
    let h = mergeUsage({}, [item('2026-11-25T10:00:30.000Z', '3600000.000000')]);
    h = mergeUsage(h, [item('2026-11-25T10:00:30.000Z', '3600000.000000')]);
    h = mergeUsage(h, [item('2026-11-25T10:01:00.000Z', '7200000.000000')]);
    expect(h.a.map((p) => p.cpuCoreHours)).toEqual([0, 1, 2]);
    expect(h.a[1].memGibHours).toBe(1);
  });
  it('gives the rate of the last interval', () => {
    const h = mergeUsage({}, [item('2026-11-25T10:00:30.000Z', '3600000.000000')]);
    const h2 = mergeUsage(h, [item('2026-11-25T10:01:00.000Z', '3630000.000000')]);
    // 30 000 CPU milli-seconds in 30 s: 1000m; memory unchanged: 0 bytes.
    const r = lastRate(h2.a)!;
    expect(r.cpuMilli).toBeCloseTo(1000, 6);
    expect(r.memoryBytes).toBe(0);
    expect(r.seconds).toBeCloseTo(30, 9);
    expect(lastRate([])).toBeNull();
    expect(lastRate(undefined)).toBeNull();
  });
});

describe('usage over time', () => {
  const T0 = Date.parse('2026-11-25T10:00:00Z');
  const hist = {
    from: '2026-11-25T10:00:00.000Z',
    to: '2026-11-25T10:03:00.000Z',
    step_seconds: 60,
    items: [
      {
        tenant_id: 'a',
        points: [
          { time: '2026-11-25T10:00:00.000Z', CPUMilliSeconds: '3600000.000000', MemoryMBSeconds: '3686400.000000' },
          { time: '2026-11-25T10:02:00.000Z', CPUMilliSeconds: '7200000.000000', MemoryMBSeconds: '0.000000' },
        ],
      },
      { tenant_id: 'b', points: [{ time: '2026-11-25T10:01:00.000Z', CPUMilliSeconds: '36000000.000000', MemoryMBSeconds: '0' }] },
    ],
  };
  it('adds buckets up from the window start, empty ones adding nothing, until now', () => {
    expect(historyRows(hist, 'cpuCoreHours', ['a', 'b'], T0 + 150_000)).toEqual([
      { t: T0, a: 0, b: 0 },
      { t: T0 + 60_000, a: 1, b: 0 },
      { t: T0 + 120_000, a: 1, b: 10 },
      { t: T0 + 150_000, a: 3, b: 10 },
    ]);
    expect(historyRows(hist, 'memGibHours', ['a'], T0 + 600_000).map((r) => r.a)).toEqual([0, 1, 1, 1]);
    expect(historyRows(undefined, 'cpuCoreHours', ['a'])).toEqual([]);
  });
  it('ranks tenants by use and asks for whole buckets', () => {
    expect(historyTenants(hist)).toEqual(['b', 'a']);
    const q = new URLSearchParams(rangeQuery('1h', Date.parse('2026-11-25T10:30:20Z')));
    expect(q.get('from')).toBe('2026-11-25T09:31:00.000Z');
    expect(q.get('to')).toBe('2026-11-25T10:31:00.000Z');
    expect(q.get('step')).toBe('60');
  });
});

describe('events', () => {
  const ev = (p: object) => ({ stream: 's', seq: 1, tenant: 'a', namespace: 'nimbus-a', ...p }) as never;
  it('describes each kind', () => {
    expect(describeEvent(ev({ type: 'workload', action: 'updated', name: 'web', object: { phase: 'Running', replicas: 2, readyReplicas: 1 } }))).toBe(
      'workload web: Running, 1/2 ready',
    );
    expect(describeEvent(ev({ type: 'workload', action: 'deleted', name: 'web' }))).toBe('workload web deleted');
    expect(describeEvent(ev({ type: 'placement', action: 'bound', name: 'p', object: { node: 'n1', scheduler: 'nimbus-scheduler' } }))).toBe(
      'pod p placed on n1 by nimbus-scheduler',
    );
    expect(describeEvent(ev({ type: 'pod', action: 'updated', name: 'p', object: { phase: 'Running', ready: true, node: 'n1' } }))).toBe(
      'pod p: Running, ready on n1',
    );
    expect(describeEvent(ev({ type: 'tenant', action: 'added', object: { namespace: 'nimbus-a', phase: 'Active' } }))).toBe(
      'tenant a: namespace nimbus-a Active',
    );
  });
  it("picks a workload's own events and its pods'", () => {
    const all = [
      ev({ type: 'workload', name: 'web' }),
      ev({ type: 'pod', name: 'nimbus-web-5bdd448cc8-x7dhc' }),
      ev({ type: 'pod', name: 'nimbus-web-api-5bdd448cc8-x7dhc' }), // workload web-api's pod
      ev({ type: 'workload', name: 'web', namespace: 'nimbus-b' }),
    ];
    expect(eventsOfWorkload(all, 'nimbus-a', 'web')).toHaveLength(2);
  });
});

describe('invoice CSV', () => {
  it('has the period, the lines and the total', () => {
    const inv = {
      tenant_id: 'acme',
      period_start: '2026-11-01T00:00:00.000Z',
      period_end: '2026-12-01T00:00:00.000Z',
      currency: 'USD',
      cpu_milli_seconds: '3600000.000000',
      memory_byte_seconds: '0',
      lines: [
        { item: 'cpu', unit: 'core-hour', quantity: '1.000000', unit_price: '0.05', amount: '0.05', amount_minor: 5 },
        { item: 'memory', unit: 'GiB-hour', quantity: '0.000000', unit_price: '0.01', amount: '0.00', amount_minor: 0 },
      ],
      total: '0.05',
      total_minor: 5,
      issued: false,
      issued_at: null,
    };
    const csv = invoiceCsv(inv);
    expect(csv.split('\r\n')).toEqual([
      'tenant,acme',
      'period_start,2026-11-01T00:00:00.000Z',
      'period_end,2026-12-01T00:00:00.000Z',
      'currency,USD',
      'status,open',
      '',
      'item,quantity,unit,unit_price,amount',
      'cpu,1.000000,core-hour,0.05,0.05',
      'memory,0.000000,GiB-hour,0.01,0.00',
      'total,,,,0.05',
      '',
    ]);
    expect(invoiceFilename(inv)).toBe('nimbus-invoice-acme-2026-11-01.csv');
  });
});
