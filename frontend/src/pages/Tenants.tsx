import { useState } from 'react';
import type { FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { ApiError } from '../api/client';
import { useCreateTenant, useDeleteTenant, useTenants, useUsageHistory, useWorkloads } from '../api/hooks';
import type { Tenant, TenantCreated } from '../api/types';
import { useSession } from '../auth/context';
import { Badge, Card, ConfirmDialog, Dialog, Empty, ErrorNote, Field, Loading, Meter, PageHeader, described } from '../components/ui';
import { formatAgo, formatBytes, formatCpu, quantityProblem, tenantNameProblem } from '../lib/format';
import { requestedByTenant, tenantQuota } from '../lib/summary';
import { lastRate } from '../lib/usage';

export function TenantsPage() {
  const session = useSession();
  const admin = session.role === 'admin';
  const tenants = useTenants();
  const workloads = useWorkloads();
  const [toDelete, setToDelete] = useState<Tenant | null>(null);
  const [created, setCreated] = useState<TenantCreated | null>(null);
  const del = useDeleteTenant();
  const by = requestedByTenant(workloads.data ?? []);
  const { history } = useUsageHistory();

  return (
    <>
      <PageHeader title={admin ? 'Tenants' : 'Tenant'} />
      {admin && <CreateTenant onCreated={setCreated} />}
      <Card title={admin ? 'All tenants' : 'Your tenant'}>
        <ErrorNote error={tenants.error} what="Tenants could not be loaded" />
        {tenants.isLoading && <Loading what="tenants" />}
        {tenants.data && tenants.data.length === 0 && <Empty>No tenants yet. Create one above.</Empty>}
        {tenants.data && tenants.data.length > 0 && (
          <div className="table-wrap">
            <table className="table" data-testid="tenants-table">
              <caption className="sr-only">Tenants, their status and quota use</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Status</th>
                  <th scope="col" className="col-meter">CPU</th>
                  <th scope="col" className="col-meter">Memory</th>
                  <th scope="col" className="col-meter">Pods</th>
                  <th scope="col">Created</th>
                  {admin && (
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  )}
                </tr>
              </thead>
              <tbody>
                {tenants.data.map((t) => {
                  const q = tenantQuota(t);
                  const r = by[t.id];
                  const used = lastRate(history[t.id]);
                  return (
                    <tr key={t.id} data-tenant={t.id}>
                      <th scope="row">
                        <Link to={`/workloads?tenant=${encodeURIComponent(t.id)}`}>{t.name}</Link>
                        <div className="muted small">{t.namespace}</div>
                      </th>
                      <td>
                        <Badge>{t.status === 'deleting' ? 'deleting' : t.namespace_phase}</Badge>
                      </td>
                      <td className="col-meter">
                        <Meter
                          label={`CPU of ${t.name}`}
                          value={r?.cpuMilli ?? 0}
                          max={q.cpuMilli}
                          text={`${formatCpu(r?.cpuMilli ?? 0)} / ${formatCpu(q.cpuMilli)}`}
                        />
                        {used && <div className="muted small">using {formatCpu(used.cpuMilli)}</div>}
                      </td>
                      <td className="col-meter">
                        <Meter
                          label={`Memory of ${t.name}`}
                          value={r?.memoryBytes ?? 0}
                          max={q.memoryBytes}
                          text={`${formatBytes(r?.memoryBytes ?? 0)} / ${formatBytes(q.memoryBytes)}`}
                        />
                        {used && <div className="muted small">using {formatBytes(used.memoryBytes)}</div>}
                      </td>
                      <td className="col-meter">
                        <Meter label={`Pods of ${t.name}`} value={r?.pods ?? 0} max={q.pods} text={`${r?.pods ?? 0} / ${q.pods}`} />
                      </td>
                      <td>
                        <time dateTime={t.created_at} title={t.created_at}>
                          {formatAgo(t.created_at)}
                        </time>
                      </td>
                      {admin && (
                        <td className="actions">
                          <button
                            type="button"
                            className="btn small danger-outline"
                            onClick={() => {
                              del.reset();
                              setToDelete(t);
                            }}
                            disabled={t.status === 'deleting'}
                            aria-label={`Delete tenant ${t.name}`}
                          >
                            Delete
                          </button>
                        </td>
                      )}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        <p className="muted small">
          The bars are what the tenant's workloads request (replicas × per-pod requests) against its quota; "using" is what
          billing measured over its last period.
        </p>
      </Card>

      {toDelete && (
        <ConfirmDialog
          title={`Delete tenant ${toDelete.name}?`}
          confirmLabel="Delete tenant"
          busy={del.isPending}
          error={del.error}
          onCancel={() => setToDelete(null)}
          onConfirm={() => del.mutate(toDelete.id, { onSuccess: () => setToDelete(null) })}
        >
          <p>
            This deletes namespace <code>{toDelete.namespace}</code> with every workload and pod in it, and revokes the tenant's API
            keys. Its billing records and invoices are kept.
          </p>
        </ConfirmDialog>
      )}

      {created && (
        <Dialog
          title={`Tenant ${created.name} created`}
          onClose={() => setCreated(null)}
          actions={
            <button type="button" className="btn primary" onClick={() => setCreated(null)}>
              Done
            </button>
          }
        >
          <p>
            This is the tenant's API key. It is shown <strong>only now</strong>: give it to the tenant, who signs in with it.
          </p>
          <KeyBox value={created.api_key} />
        </Dialog>
      )}
    </>
  );
}

function KeyBox({ value }: { value: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="keybox">
      <label htmlFor="new-api-key" className="sr-only">
        API key
      </label>
      <input id="new-api-key" readOnly value={value} onFocus={(e) => e.currentTarget.select()} data-testid="new-api-key" data-autofocus />
      <button
        type="button"
        className="btn"
        onClick={async () => {
          try {
            await navigator.clipboard.writeText(value);
            setCopied(true);
          } catch {
            setCopied(false);
          }
        }}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

function CreateTenant({ onCreated }: { onCreated: (t: TenantCreated) => void }) {
  const create = useCreateTenant();
  const [name, setName] = useState('');
  const [cpu, setCpu] = useState('2');
  const [memory, setMemory] = useState('4Gi');
  const [pods, setPods] = useState('20');
  const [touched, setTouched] = useState(false);

  const errs = {
    name: tenantNameProblem(name),
    cpu: quantityProblem(cpu, 'cpu'),
    memory: quantityProblem(memory, 'memory'),
    pods: /^\d+$/.test(pods) ? null : 'A whole number.',
  };
  const apiErr = create.error instanceof ApiError ? create.error : null;
  const fieldErr = (f: string) => (apiErr?.field === f ? apiErr.message : null);
  const show = (f: keyof typeof errs, apiField: string) => (touched ? errs[f] : null) ?? fieldErr(apiField);

  function submit(e: FormEvent) {
    e.preventDefault();
    setTouched(true);
    if (Object.values(errs).some(Boolean)) return;
    create.mutate(
      { name, cpu_quota: cpu, memory_quota: memory, pods_quota: Number(pods) },
      {
        onSuccess: (t) => {
          setName('');
          setTouched(false);
          onCreated(t);
        },
      },
    );
  }

  return (
    <Card title="Create a tenant">
      <form className="form-row" onSubmit={submit} noValidate aria-label="Create a tenant">
        <Field label="Name" id="tenant-name" error={show('name', 'name')} hint="DNS label, e.g. team-a">
          <input {...described('tenant-name', show('name', 'name'), 'DNS label, e.g. team-a')} value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
        </Field>
        <Field label="CPU quota" id="tenant-cpu" error={show('cpu', 'cpu_quota')}>
          <input {...described('tenant-cpu', show('cpu', 'cpu_quota'))} value={cpu} onChange={(e) => setCpu(e.target.value)} />
        </Field>
        <Field label="Memory quota" id="tenant-memory" error={show('memory', 'memory_quota')}>
          <input {...described('tenant-memory', show('memory', 'memory_quota'))} value={memory} onChange={(e) => setMemory(e.target.value)} />
        </Field>
        <Field label="Pods quota" id="tenant-pods" error={show('pods', 'pods_quota')}>
          <input {...described('tenant-pods', show('pods', 'pods_quota'))} inputMode="numeric" value={pods} onChange={(e) => setPods(e.target.value)} />
        </Field>
        <div className="form-submit">
          <button type="submit" className="btn primary" disabled={create.isPending}>
            {create.isPending ? 'Creating…' : 'Create tenant'}
          </button>
        </div>
      </form>
      {apiErr && !apiErr.field && <ErrorNote error={apiErr} />}
    </Card>
  );
}
