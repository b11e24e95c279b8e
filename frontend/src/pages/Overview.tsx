import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { Link } from 'react-router-dom';
import { useInvoice, useScheduler, useTenants, useUsageHistory, useWorkloads } from '../api/hooks';
import { useSession } from '../auth/context';
import { legendText } from '../components/chart';
import { Card, ErrorNote, Meter, PageHeader, Stat } from '../components/ui';
import { ActivityFeed } from '../components/ActivityFeed';
import { formatBytes, formatCpu, formatMoney, formatPercent, monthPeriod, trim } from '../lib/format';
import { lastRate } from '../lib/usage';
import { clusterTotals, requestedByTenant, tenantQuota, totalRequested, type Cluster } from '../lib/summary';

export const CHART = { capacity: '#c9d3e6', requested: '#2456d6', used: '#d9480f' };

/** Capacity vs requested vs used, as a percentage of capacity, for CPU and memory. */
export function capacityRows(c: Cluster) {
  const pct = (v: number | null, of: number) => (v == null || !of ? null : Math.round((v / of) * 1000) / 10);
  return [
    {
      resource: 'CPU',
      Requested: pct(c.cpu.requested, c.cpu.capacity),
      Used: pct(c.cpu.used, c.cpu.capacity),
      text: { capacity: formatCpu(c.cpu.capacity), requested: formatCpu(c.cpu.requested), used: formatCpu(c.cpu.used) },
    },
    {
      resource: 'Memory',
      Requested: pct(c.memory.requested, c.memory.capacity),
      Used: pct(c.memory.used, c.memory.capacity),
      text: {
        capacity: formatBytes(c.memory.capacity),
        requested: formatBytes(c.memory.requested),
        used: formatBytes(c.memory.used),
      },
    },
  ];
}

export function OverviewPage() {
  const session = useSession();
  const admin = session.role === 'admin';
  const tenants = useTenants();
  const workloads = useWorkloads();
  const sched = useScheduler(admin);

  const by = requestedByTenant(workloads.data ?? []);
  const total = totalRequested(by);
  const activeTenants = (tenants.data ?? []).filter((t) => t.status === 'active').length;

  return (
    <>
      <PageHeader title="Overview" />
      <ErrorNote error={tenants.error ?? workloads.error ?? sched.error} />
      <div className="stats" data-testid="overview-stats">
        {admin && (
          <Stat
            label="Tenants"
            value={tenants.data ? tenants.data.length : '…'}
            sub={tenants.data ? `${activeTenants} active` : undefined}
          />
        )}
        <Stat
          label="Workloads"
          value={workloads.data ? total.workloads : '…'}
          sub={workloads.data ? `${total.readyWorkloads} ready` : undefined}
        />
        <Stat label="Pods running" value={workloads.data ? total.podsReady : '…'} sub="ready replicas" />
        <Stat
          label="Pods pending"
          value={admin ? (sched.data ? sched.data.pending : '…') : workloads.data ? total.podsNotReady : '…'}
          sub={admin ? 'waiting for nimbus-scheduler' : 'not ready yet'}
        />
        {admin && (
          <Stat
            label="Nodes"
            value={sched.data ? sched.data.nodes.length : '…'}
            sub={sched.data ? `${clusterTotals(sched.data.nodes).readyNodes} schedulable` : undefined}
          />
        )}
      </div>

      <div className="grid-2">
        {admin ? <ClusterCapacity data={sched.data ? clusterTotals(sched.data.nodes) : null} /> : <OwnQuota />}
        <Card title="Recent activity" actions={<span className="muted small">live</span>}>
          <ActivityFeed limit={12} />
        </Card>
      </div>

      {admin && tenants.data && tenants.data.length > 0 && (
        <Card title="Tenants by requested CPU">
          <div className="table-wrap">
          <table className="table compact">
            <caption className="sr-only">Tenants with their workloads' requests against quota</caption>
            <thead>
              <tr>
                <th scope="col">Tenant</th>
                <th scope="col">Workloads</th>
                <th scope="col">Pods</th>
                <th scope="col">CPU requested / quota</th>
                <th scope="col">Memory requested / quota</th>
              </tr>
            </thead>
            <tbody>
              {[...tenants.data]
                .sort((a, b) => (by[b.id]?.cpuMilli ?? 0) - (by[a.id]?.cpuMilli ?? 0))
                .slice(0, 8)
                .map((t) => {
                  const r = by[t.id];
                  const q = tenantQuota(t);
                  return (
                    <tr key={t.id}>
                      <td>
                        <Link to={`/workloads?tenant=${encodeURIComponent(t.id)}`}>{t.name}</Link>
                      </td>
                      <td>{r?.workloads ?? 0}</td>
                      <td>
                        {r?.podsReady ?? 0} / {r?.pods ?? 0}
                      </td>
                      <td>
                        {formatCpu(r?.cpuMilli ?? 0)} / {formatCpu(q.cpuMilli)}{' '}
                        <span className="muted">({formatPercent(q.cpuMilli ? (r?.cpuMilli ?? 0) / q.cpuMilli : null)})</span>
                      </td>
                      <td>
                        {formatBytes(r?.memoryBytes ?? 0)} / {formatBytes(q.memoryBytes)}
                      </td>
                    </tr>
                  );
                })}
            </tbody>
          </table>
          </div>
        </Card>
      )}
    </>
  );
}

function ClusterCapacity({ data }: { data: Cluster | null }) {
  if (!data) return <Card title="Cluster capacity">Loading…</Card>;
  const rows = capacityRows(data);
  return (
    <Card title="Cluster capacity">
      <p className="muted small">Requested and live use, as a share of what the nodes can allocate.</p>
      <div className="chart" role="img" aria-label={rows.map((r) => `${r.resource}: capacity ${r.text.capacity}, requested ${r.text.requested}, used ${r.text.used}`).join('; ')}>
        <ResponsiveContainer width="100%" height={180}>
          <BarChart data={rows} layout="vertical" margin={{ left: 8, right: 24, top: 4, bottom: 4 }} barGap={2}>
            <CartesianGrid horizontal={false} stroke="#e3e7ef" />
            <XAxis type="number" domain={[0, 100]} unit="%" tick={{ fontSize: 12, fill: '#3d4457' }} />
            <YAxis type="category" dataKey="resource" width={64} tick={{ fontSize: 13, fill: '#14181f' }} />
            <Tooltip formatter={(v) => `${v}%`} />
            <Legend wrapperStyle={{ fontSize: 13 }} formatter={legendText} />
            <Bar dataKey="Requested" fill={CHART.requested} isAnimationActive={false} />
            <Bar dataKey="Used" fill={CHART.used} isAnimationActive={false} />
          </BarChart>
        </ResponsiveContainer>
      </div>
      <dl className="figures" data-testid="capacity-figures">
        {rows.map((r) => (
          <div key={r.resource}>
            <dt>{r.resource}</dt>
            <dd>
              capacity {r.text.capacity} · requested {r.text.requested} · used {r.text.used}
            </dd>
          </div>
        ))}
      </dl>
    </Card>
  );
}

function OwnQuota() {
  const session = useSession();
  const tenants = useTenants();
  const workloads = useWorkloads();
  const { history } = useUsageHistory();
  const month = monthPeriod(0);
  const invoice = useInvoice(session.tenantId, month.from, month.to);
  const t = tenants.data?.find((x) => x.id === session.tenantId);
  if (!t) return <Card title="Quota">{tenants.isLoading ? 'Loading…' : 'No tenant data.'}</Card>;
  const q = tenantQuota(t);
  const r = requestedByTenant(workloads.data ?? [])[t.id];
  const rate = lastRate(history[t.id]);
  return (
    <Card title={`Quota of ${t.name}`}>
      <h3 className="sub">Requested by its workloads</h3>
      <Meter label="CPU" value={r?.cpuMilli ?? 0} max={q.cpuMilli} text={`${formatCpu(r?.cpuMilli ?? 0)} of ${formatCpu(q.cpuMilli)}`} />
      <Meter
        label="Memory"
        value={r?.memoryBytes ?? 0}
        max={q.memoryBytes}
        text={`${formatBytes(r?.memoryBytes ?? 0)} of ${formatBytes(q.memoryBytes)}`}
      />
      <Meter label="Pods" value={r?.pods ?? 0} max={q.pods} text={`${r?.pods ?? 0} of ${q.pods}`} />
      <h3 className="sub">Used (measured by billing{rate ? `, last ${Math.round(rate.seconds)} s` : ''})</h3>
      {rate ? (
        <>
          <Meter label="CPU used" value={rate.cpuMilli} max={q.cpuMilli} text={`${formatCpu(rate.cpuMilli)} of ${formatCpu(q.cpuMilli)}`} />
          <Meter
            label="Memory used"
            value={rate.memoryBytes}
            max={q.memoryBytes}
            text={`${formatBytes(rate.memoryBytes)} of ${formatBytes(q.memoryBytes)}`}
          />
        </>
      ) : (
        <p className="muted small">Appears after two billing samples.</p>
      )}
      {invoice.data && (
        <p className="small" data-testid="month-to-date">
          {month.label} so far: <strong>{formatMoney(invoice.data.total, invoice.data.currency)}</strong> (
          {trim(Number(invoice.data.lines.find((l) => l.item === 'cpu')?.quantity ?? 0), 4)} core-hours)
        </p>
      )}
    </Card>
  );
}
