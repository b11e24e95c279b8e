import { useMemo, useState } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { useInvoice, useTenants, useUsage, useUsageOverTime } from '../api/hooks';
import type { Invoice } from '../api/types';
import { useSession } from '../auth/context';
import { Badge, Card, Empty, ErrorNote, Loading, PageHeader } from '../components/ui';
import {
  byteSecondsToGibHours,
  cpuMilliSecondsToCoreHours,
  csvRows,
  decimal,
  formatAgo,
  formatClock,
  formatMoney,
  mibSecondsToGibHours,
  monthPeriod,
  trim,
  axisNumber,
} from '../lib/format';
import { legendText } from '../components/chart';
import { historyRows, historyTenants, RANGES, type RangeId } from '../lib/usage';

const PALETTE = ['#2456d6', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#0b7285', '#5c940d', '#e67700'];
const SERIES_MAX = PALETTE.length;

/** The invoice as CSV: a header block, the line items, the total. */
export function invoiceCsv(inv: Invoice): string {
  return csvRows([
    ['tenant', inv.tenant_id],
    ['period_start', inv.period_start],
    ['period_end', inv.period_end],
    ['currency', inv.currency],
    ['status', inv.issued ? `issued ${inv.issued_at ?? ''}`.trim() : 'open'],
    [],
    ['item', 'quantity', 'unit', 'unit_price', 'amount'],
    ...inv.lines.map((l) => [l.item, l.quantity, l.unit, l.unit_price, l.amount]),
    ['total', '', '', '', inv.total],
  ]);
}

export function invoiceFilename(inv: Invoice): string {
  return `nimbus-invoice-${inv.tenant_id}-${inv.period_start.slice(0, 10)}.csv`;
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function BillingPage() {
  const session = useSession();
  const admin = session.role === 'admin';
  const usage = useUsage();
  const [range, setRange] = useState<RangeId>('1h');
  const over = useUsageOverTime(range);
  const tenants = useTenants();
  const [metric, setMetric] = useState<'cpuCoreHours' | 'memGibHours'>('cpuCoreHours');

  // The chart keeps to the tenants that used the most in the window; the table lists all.
  const ranked = useMemo(() => historyTenants(over.data), [over.data]);
  const series = useMemo(() => ranked.slice(0, SERIES_MAX).sort(), [ranked]);
  const rows = useMemo(() => historyRows(over.data, metric, series), [over.data, metric, series]);
  const rangeLabel = (RANGES.find((r) => r.id === range) ?? RANGES[0]).label.toLowerCase();
  const tenantIds = useMemo(() => {
    const s = new Set<string>((tenants.data ?? []).map((t) => t.id));
    (usage.data ?? []).forEach((u) => s.add(u.tenant_id));
    if (!admin) return [session.tenantId];
    return [...s].sort();
  }, [tenants.data, usage.data, admin, session.tenantId]);

  return (
    <>
      <PageHeader title="Billing" />
      <Card
        title="Usage over time"
        actions={
          <div className="inline-fields">
            <div className="inline-field">
              <label htmlFor="usage-range">Window</label>
              <select id="usage-range" value={range} onChange={(e) => setRange(e.target.value as RangeId)}>
                {RANGES.map((r) => (
                  <option key={r.id} value={r.id}>
                    {r.label}
                  </option>
                ))}
              </select>
            </div>
            <div className="inline-field">
              <label htmlFor="usage-metric">Show</label>
              <select id="usage-metric" value={metric} onChange={(e) => setMetric(e.target.value as typeof metric)}>
                <option value="cpuCoreHours">CPU (core-hours)</option>
                <option value="memGibHours">Memory (GiB-hours)</option>
              </select>
            </div>
          </div>
        }
      >
        <ErrorNote error={over.error} what="Usage over time could not be loaded" />
        <ErrorNote error={usage.error} what="Usage could not be loaded" />
        {(usage.isLoading || over.isLoading) && <Loading what="usage" />}
        {usage.data && usage.data.length === 0 && (
          <Empty>No usage billed yet. It appears after the billing sampler's next period once a workload runs.</Empty>
        )}
        {usage.data && usage.data.length > 0 && (
          <>
            {over.data && series.length === 0 && <Empty>No usage billed in the {rangeLabel}.</Empty>}
            {series.length > 0 && (
              <>
                <p className="muted small">
                  Usage billed per tenant in the {rangeLabel}, added up from its start
                  {ranked.length > SERIES_MAX ? ` (the ${SERIES_MAX} largest)` : ''}; it grows as each billing period is
                  recorded.
                </p>
                <div
                  className="chart"
                  role="img"
                  aria-label={`${metric === 'cpuCoreHours' ? 'CPU core-hours' : 'Memory GiB-hours'} per tenant in the ${rangeLabel}`}
                  data-testid="usage-chart"
                >
                  <ResponsiveContainer width="100%" height={260}>
                    <LineChart data={rows} margin={{ left: 8, right: 24, top: 8 }}>
                      <CartesianGrid stroke="#e3e7ef" />
                      <XAxis
                        dataKey="t"
                        type="number"
                        scale="time"
                        domain={['dataMin', 'dataMax']}
                        tickFormatter={(t) => (range === '7d' ? new Date(t).toISOString().slice(5, 16).replace('T', ' ') : formatClock(t))}
                        tick={{ fontSize: 12, fill: '#3d4457' }}
                      />
                      <YAxis tick={{ fontSize: 12, fill: '#3d4457' }} width={72} tickFormatter={(v) => axisNumber(Number(v))} />
                      <Tooltip labelFormatter={(t) => `${formatClock(Number(t))} UTC`} formatter={(v) => trim(Number(v), 6)} />
                      <Legend wrapperStyle={{ fontSize: 13 }} formatter={legendText} />
                      {series.map((t, i) => (
                        <Line key={t} type="linear" dataKey={t} stroke={PALETTE[i % PALETTE.length]} strokeWidth={2} dot={false} isAnimationActive={false} />
                      ))}
                    </LineChart>
                  </ResponsiveContainer>
                </div>
              </>
            )}
            <div className="table-wrap">
              <table className="table compact" data-testid="usage-table">
                <caption className="sr-only">Usage billed per tenant</caption>
                <thead>
                  <tr>
                    <th scope="col">Tenant</th>
                    <th scope="col">CPU</th>
                    <th scope="col">Memory</th>
                    <th scope="col">Billed since</th>
                    <th scope="col">Last sample</th>
                  </tr>
                </thead>
                <tbody>
                  {usage.data.map((u) => (
                    <tr key={u.tenant_id}>
                      <th scope="row">{u.tenant_id}</th>
                      <td>{trim(cpuMilliSecondsToCoreHours(decimal(u.CPUMilliSeconds)), 6)} core-h</td>
                      <td>{trim(mibSecondsToGibHours(decimal(u.MemoryMBSeconds)), 6)} GiB-h</td>
                      <td>{formatAgo(u.since)}</td>
                      <td>{formatAgo(u.until)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </Card>
      <InvoiceCard tenantIds={tenantIds} />
    </>
  );
}

function InvoiceCard({ tenantIds }: { tenantIds: string[] }) {
  const [tenant, setTenant] = useState('');
  const [back, setBack] = useState(0);
  const t = tenant || tenantIds[0] || '';
  const periods = useMemo(() => Array.from({ length: 12 }, (_, i) => monthPeriod(i)), []);
  const p = periods[back];
  const inv = useInvoice(t || null, p.from, p.to);
  const d = inv.data;

  return (
    <Card
      title="Invoices"
      actions={
        <div className="inline-fields">
          {tenantIds.length > 1 && (
            <div className="inline-field">
              <label htmlFor="inv-tenant">Tenant</label>
              <select id="inv-tenant" value={t} onChange={(e) => setTenant(e.target.value)}>
                {tenantIds.map((x) => (
                  <option key={x} value={x}>
                    {x}
                  </option>
                ))}
              </select>
            </div>
          )}
          <div className="inline-field">
            <label htmlFor="inv-period">Period</label>
            <select id="inv-period" value={back} onChange={(e) => setBack(Number(e.target.value))}>
              {periods.map((x, i) => (
                <option key={x.from} value={i}>
                  {x.label}
                  {i === 0 ? ' (current)' : ''}
                </option>
              ))}
            </select>
          </div>
        </div>
      }
    >
      {!t && <Empty>No tenants to invoice.</Empty>}
      <ErrorNote error={inv.error} what="The invoice could not be loaded" />
      {t && inv.isLoading && <Loading what="the invoice" />}
      {d && (
        <div className="invoice" data-testid="invoice">
          <div className="invoice-head">
            <div>
              <div className="invoice-title">
                {d.tenant_id} · {p.label}
              </div>
              <div className="muted small">
                {d.period_start.slice(0, 10)} to {d.period_end.slice(0, 10)} (UTC, end exclusive)
              </div>
            </div>
            <Badge tone={d.issued ? 'ok' : 'warn'}>{d.issued ? 'issued' : 'open'}</Badge>
          </div>
          <div className="table-wrap">
            <table className="table">
              <caption className="sr-only">Invoice line items</caption>
              <thead>
                <tr>
                  <th scope="col">Item</th>
                  <th scope="col" className="num">
                    Quantity
                  </th>
                  <th scope="col">Unit</th>
                  <th scope="col" className="num">
                    Unit price
                  </th>
                  <th scope="col" className="num">
                    Amount
                  </th>
                </tr>
              </thead>
              <tbody>
                {d.lines.map((l) => (
                  <tr key={l.item}>
                    <th scope="row">{l.item === 'cpu' ? 'CPU' : l.item === 'memory' ? 'Memory' : l.item}</th>
                    <td className="num mono">{l.quantity}</td>
                    <td>{l.unit}</td>
                    <td className="num">{formatMoney(l.unit_price, d.currency)}</td>
                    <td className="num">{formatMoney(l.amount, d.currency)}</td>
                  </tr>
                ))}
              </tbody>
              <tfoot>
                <tr>
                  <th scope="row" colSpan={4}>
                    Total
                  </th>
                  <td className="num total" data-testid="invoice-total">
                    {formatMoney(d.total, d.currency)}
                  </td>
                </tr>
              </tfoot>
            </table>
          </div>
          <p className="muted small">
            CPU {trim(cpuMilliSecondsToCoreHours(decimal(d.cpu_milli_seconds)), 6)} core-hours · memory{' '}
            {trim(byteSecondsToGibHours(decimal(d.memory_byte_seconds)), 6)} GiB-hours
            {d.issued ? ` · issued ${d.issued_at ?? ''}` : ' · the period is open: figures grow until it closes'}
          </p>
          <button type="button" className="btn" onClick={() => download(invoiceFilename(d), invoiceCsv(d))}>
            Download CSV
          </button>
        </div>
      )}
    </Card>
  );
}
