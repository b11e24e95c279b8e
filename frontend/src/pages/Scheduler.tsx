import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { useScheduler } from '../api/hooks';
import type { SchedulerNode } from '../api/types';
import { legendText } from '../components/chart';
import { Card, Empty, ErrorNote, Loading, PageHeader, Stat } from '../components/ui';
import { formatAgo, formatBytes, formatCpu, formatPercent } from '../lib/format';
import { heat } from '../lib/summary';
import { CHART } from './Overview';

export function nodeFractions(n: SchedulerNode) {
  const cpuAlloc = n.allocatable.cpu_milli;
  const memAlloc = n.allocatable.memory_bytes;
  return {
    cpuRequested: n.requested_fraction.cpu,
    memRequested: n.requested_fraction.memory,
    cpuLive: n.usage ? (n.usage.cpu_fraction ?? (cpuAlloc ? n.usage.cpu_milli / cpuAlloc : null)) : null,
    memLive: n.usage && memAlloc ? n.usage.memory_bytes / memAlloc : null,
    pods: n.allocatable.pods ? n.pods / n.allocatable.pods : null,
  };
}

export function SchedulerPage() {
  const sched = useScheduler();
  const d = sched.data;
  return (
    <>
      <PageHeader title="Scheduler" />
      <ErrorNote error={sched.error} what="The scheduler view could not be loaded" />
      {!d && sched.isLoading && <Loading what="the scheduler view" />}
      {d && (
        <>
          <div className="stats">
            <Stat label="Scheduler" value={<span className="mono">{d.scheduler}</span>} />
            <Stat label="Pending pods" value={d.pending} sub="queued or unschedulable" />
            <Stat label="Nodes" value={d.nodes.length} sub={`${d.nodes.filter((n) => n.ready && !n.unschedulable).length} schedulable`} />
            <Stat label="Recent placements" value={d.recent_placements.length} />
          </div>
          <Card title="Node utilization">
            <p className="muted small">
              Requested is what the pods on a node request; live is what metrics.k8s.io last measured. Darker is fuller.
            </p>
            <HeatMap nodes={d.nodes} />
          </Card>
          <Card title="CPU by node">
            <NodeChart nodes={d.nodes} />
          </Card>
          <Card title="Recent placements">
            {d.recent_placements.length === 0 ? (
              <Empty>No pods placed since the operator started.</Empty>
            ) : (
              <div className="table-wrap">
                <table className="table compact" data-testid="placements-table">
                  <caption className="sr-only">Recent pod placements, newest first</caption>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Pod</th>
                      <th scope="col">Tenant</th>
                      <th scope="col">Node</th>
                      <th scope="col">Reason</th>
                    </tr>
                  </thead>
                  <tbody>
                    {d.recent_placements.slice(0, 50).map((p) => (
                      <tr key={`${p.pod}-${p.time}`}>
                        <td className="nowrap">
                          <time dateTime={p.time} title={p.time}>
                            {formatAgo(p.time)}
                          </time>
                        </td>
                        <td className="mono">{p.pod}</td>
                        <td>{p.tenant}</td>
                        <td>{p.node}</td>
                        <td>{placementReason(p.score, p.scheduler)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
        </>
      )}
    </>
  );
}

export function placementReason(score: number | null, scheduler: string): string {
  if (scheduler && scheduler !== 'nimbus-scheduler') return `bound by ${scheduler}`;
  if (score == null) return 'fits; highest bin-packing score (score not recorded by this replica)';
  return `fits; highest bin-packing score ${score} of the feasible nodes`;
}

function HeatMap({ nodes }: { nodes: SchedulerNode[] }) {
  if (!nodes.length) return <Empty>No nodes.</Empty>;
  const cols: { key: keyof ReturnType<typeof nodeFractions>; label: string; text: (n: SchedulerNode) => string }[] = [
    { key: 'cpuRequested', label: 'CPU requested', text: (n) => `${formatCpu(n.requested.cpu_milli)} of ${formatCpu(n.allocatable.cpu_milli)}` },
    { key: 'cpuLive', label: 'CPU live', text: (n) => (n.usage ? formatCpu(n.usage.cpu_milli) : 'no sample') },
    {
      key: 'memRequested',
      label: 'Memory requested',
      text: (n) => `${formatBytes(n.requested.memory_bytes)} of ${formatBytes(n.allocatable.memory_bytes)}`,
    },
    { key: 'memLive', label: 'Memory live', text: (n) => (n.usage ? formatBytes(n.usage.memory_bytes) : 'no sample') },
    { key: 'pods', label: 'Pods', text: (n) => `${n.pods} of ${n.allocatable.pods ?? '–'}` },
  ];
  return (
    <div className="table-wrap">
      <table className="heatmap" data-testid="node-heatmap">
        <caption className="sr-only">Node utilization: each cell is a share of the node's allocatable</caption>
        <thead>
          <tr>
            <th scope="col">Node</th>
            {cols.map((c) => (
              <th scope="col" key={c.key}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {nodes.map((n) => {
            const f = nodeFractions(n);
            return (
              <tr key={n.name}>
                <th scope="row">
                  {n.name}
                  {(!n.ready || n.unschedulable) && <div className="small bad-text">{!n.ready ? 'not ready' : 'cordoned'}</div>}
                </th>
                {cols.map((c) => (
                  <td key={c.key} style={heat(f[c.key])} title={c.text(n)}>
                    <span className="heat-pct">{formatPercent(f[c.key], f[c.key] != null && f[c.key]! < 0.1 ? 1 : 0)}</span>
                    <span className="heat-text">{c.text(n)}</span>
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function NodeChart({ nodes }: { nodes: SchedulerNode[] }) {
  const rows = nodes.map((n) => ({
    node: n.name,
    Allocatable: (n.allocatable.cpu_milli ?? 0) / 1000,
    Requested: n.requested.cpu_milli / 1000,
    Live: n.usage ? n.usage.cpu_milli / 1000 : 0,
  }));
  return (
    <div className="chart" role="img" aria-label={rows.map((r) => `${r.node}: requested ${r.Requested} of ${r.Allocatable} cores, live ${r.Live}`).join('; ')}>
      <ResponsiveContainer width="100%" height={Math.max(160, 48 * rows.length + 60)}>
        <BarChart data={rows} layout="vertical" margin={{ left: 8, right: 24 }}>
          <CartesianGrid horizontal={false} stroke="#e3e7ef" />
          <XAxis type="number" unit=" cores" tick={{ fontSize: 12, fill: '#3d4457' }} />
          <YAxis type="category" dataKey="node" width={110} tick={{ fontSize: 12, fill: '#14181f' }} />
          <Tooltip />
          <Legend wrapperStyle={{ fontSize: 13 }} formatter={legendText} />
          <Bar dataKey="Allocatable" fill={CHART.capacity} isAnimationActive={false} />
          <Bar dataKey="Requested" fill={CHART.requested} isAnimationActive={false} />
          <Bar dataKey="Live" fill={CHART.used} isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
