import { Fragment, useState } from 'react';
import type { FormEvent } from 'react';
import { useSearchParams } from 'react-router-dom';
import { ApiError } from '../api/client';
import { useCreateWorkload, useDeleteWorkload, useScaleWorkload, useTenants, useWorkloads } from '../api/hooks';
import type { Workload, WorkloadCreate } from '../api/types';
import { useSession } from '../auth/context';
import { EventList } from '../components/ActivityFeed';
import { Badge, Card, ConditionBadges, ConfirmDialog, Empty, ErrorNote, Field, Loading, PageHeader, described } from '../components/ui';
import { useEventLog } from '../live/LiveProvider';
import { eventsOfWorkload } from '../lib/events';
import { formatAgo, quantityProblem } from '../lib/format';

export function WorkloadsPage() {
  const session = useSession();
  const admin = session.role === 'admin';
  const [params, setParams] = useSearchParams();
  const filter = admin ? (params.get('tenant') ?? '') : session.tenantId;
  const tenants = useTenants();
  const workloads = useWorkloads();
  const [toDelete, setToDelete] = useState<Workload | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const del = useDeleteWorkload();

  const shown = (workloads.data ?? []).filter((w) => !filter || w.tenant === filter);
  const tenantIds = (tenants.data ?? []).filter((t) => t.status === 'active').map((t) => t.id);

  return (
    <>
      <PageHeader title="Workloads">
        {admin && (
          <div className="inline-field">
            <label htmlFor="wl-filter">Tenant</label>
            <select
              id="wl-filter"
              value={filter}
              onChange={(e) => setParams(e.target.value ? { tenant: e.target.value } : {}, { replace: true })}
            >
              <option value="">All tenants</option>
              {(tenants.data ?? []).map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name}
                </option>
              ))}
            </select>
          </div>
        )}
      </PageHeader>

      <CreateWorkload tenants={admin ? tenantIds : [session.tenantId]} defaultTenant={filter || tenantIds[0] || ''} />

      <Card title="ComputeRequests">
        <ErrorNote error={workloads.error} what="Workloads could not be loaded" />
        {workloads.isLoading && <Loading what="workloads" />}
        {workloads.data && shown.length === 0 && <Empty>No workloads{filter ? ` for ${filter}` : ''} yet.</Empty>}
        {shown.length > 0 && (
          <div className="table-wrap">
            <table className="table" data-testid="workloads-table">
              <caption className="sr-only">Workloads with their status and replicas</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  {admin && <th scope="col">Tenant</th>}
                  <th scope="col">Per pod</th>
                  <th scope="col">Ready</th>
                  <th scope="col">Phase</th>
                  <th scope="col">Conditions</th>
                  <th scope="col">Scale</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {shown.map((w) => {
                  const key = `${w.namespace}/${w.name}`;
                  const expanded = open === key;
                  return (
                    <Fragment key={key}>
                      <tr data-workload={w.name} data-tenant={w.tenant} data-ready={w.status.ready ? 'true' : 'false'}>
                        <th scope="row">
                          <button
                            type="button"
                            className="link-btn"
                            aria-expanded={expanded}
                            aria-controls={`wl-details-${w.uid}`}
                            onClick={() => setOpen(expanded ? null : key)}
                          >
                            <span aria-hidden="true" className="chev">
                              {expanded ? '▾' : '▸'}
                            </span>{' '}
                            {w.name}
                          </button>
                          <div className="muted small mono">{w.image}</div>
                        </th>
                        {admin && <td>{w.tenant}</td>}
                        <td className="nowrap">
                          {w.cpu} · {w.memory}
                        </td>
                        <td className="nowrap" data-testid="ready-count">
                          {w.status.readyReplicas}/{w.replicas}
                        </td>
                        <td>
                          <Badge>{w.deleting ? 'Terminating' : w.status.phase}</Badge>
                        </td>
                        <td>
                          <ConditionBadges conditions={w.status.conditions} />
                        </td>
                        <td>
                          <ScaleControl w={w} />
                        </td>
                        <td className="actions">
                          <button
                            type="button"
                            className="btn small danger-outline"
                            disabled={w.deleting}
                            onClick={() => {
                              del.reset();
                              setToDelete(w);
                            }}
                            aria-label={`Delete workload ${w.name}`}
                          >
                            Delete
                          </button>
                        </td>
                      </tr>
                      {expanded && (
                        <tr className="details-row" id={`wl-details-${w.uid}`}>
                          <td colSpan={admin ? 8 : 7}>
                            <WorkloadDetails w={w} />
                          </td>
                        </tr>
                      )}
                    </Fragment>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Card>

      {toDelete && (
        <ConfirmDialog
          title={`Delete workload ${toDelete.name}?`}
          confirmLabel="Delete workload"
          busy={del.isPending}
          error={del.error}
          onCancel={() => setToDelete(null)}
          onConfirm={() =>
            del.mutate({ tenant: toDelete.tenant, name: toDelete.name }, { onSuccess: () => setToDelete(null) })
          }
        >
          <p>
            The ComputeRequest <code>{toDelete.name}</code> of tenant <strong>{toDelete.tenant}</strong>, its Deployment and its{' '}
            {toDelete.status.replicas} pod(s) are deleted.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

function ScaleControl({ w }: { w: Workload }) {
  const scale = useScaleWorkload();
  const [value, setValue] = useState<string | null>(null);
  const current = value ?? String(w.replicas);
  const id = `scale-${w.uid}`;
  const n = Number(current);
  const valid = /^\d+$/.test(current) && n <= 1000;
  return (
    <form
      className="scale"
      onSubmit={(e) => {
        e.preventDefault();
        if (!valid) return;
        scale.mutate({ tenant: w.tenant, name: w.name, replicas: n }, { onSuccess: () => setValue(null) });
      }}
    >
      <label htmlFor={id} className="sr-only">
        Replicas of {w.name}
      </label>
      <input
        id={id}
        type="number"
        min={0}
        max={1000}
        value={current}
        onChange={(e) => setValue(e.target.value)}
        aria-invalid={!valid || undefined}
        disabled={w.deleting}
      />
      <button type="submit" className="btn small" disabled={!valid || n === w.replicas || scale.isPending || w.deleting}>
        {scale.isPending ? '…' : 'Scale'}
      </button>
      {scale.error && (
        <span className="field-error" role="alert">
          {(scale.error as Error).message}
        </span>
      )}
    </form>
  );
}

function WorkloadDetails({ w }: { w: Workload }) {
  const events = eventsOfWorkload(useEventLog(), w.namespace, w.name);
  const as = w.status.autoscaling;
  return (
    <div className="details">
      <div>
        <h3>Conditions</h3>
        {w.status.conditions.length === 0 ? (
          <p className="muted">The operator has not reported on it yet.</p>
        ) : (
          <table className="table compact">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Status</th>
                <th scope="col">Reason</th>
                <th scope="col">Message</th>
                <th scope="col">Since</th>
              </tr>
            </thead>
            <tbody>
              {w.status.conditions.map((c) => (
                <tr key={c.type}>
                  <td>{c.type}</td>
                  <td>{c.status}</td>
                  <td>{c.reason}</td>
                  <td>{c.message}</td>
                  <td className="nowrap">{formatAgo(c.lastTransitionTime)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <dl className="kv">
          <dt>Namespace</dt>
          <dd>{w.namespace}</dd>
          <dt>Created</dt>
          <dd>{formatAgo(w.created_at)}</dd>
          <dt>Replicas</dt>
          <dd>
            {w.status.readyReplicas} ready of {w.status.replicas} (want {w.replicas})
          </dd>
          {w.autoscaling && (
            <>
              <dt>Autoscaling</dt>
              <dd>
                {w.autoscaling.minReplicas ?? 1}–{w.autoscaling.maxReplicas ?? 5} replicas, CPU target{' '}
                {w.autoscaling.targetCPUUtilizationPercentage ?? 70}%
                {as && (
                  <>
                    {' '}
                    · now {as.currentCPUUtilizationPercentage ?? '–'}% CPU, desired {as.desiredReplicas ?? '–'}
                    {as.reason ? ` (${as.reason})` : ''}
                  </>
                )}
              </dd>
            </>
          )}
        </dl>
      </div>
      <div>
        <h3>Events</h3>
        <EventList events={events.slice(0, 20)} empty="No events since this page opened." />
      </div>
    </div>
  );
}

function CreateWorkload({ tenants, defaultTenant }: { tenants: string[]; defaultTenant: string }) {
  const create = useCreateWorkload();
  const [tenant, setTenant] = useState('');
  const [name, setName] = useState('');
  const [image, setImage] = useState('nginx');
  const [cpu, setCpu] = useState('200m');
  const [memory, setMemory] = useState('256Mi');
  const [replicas, setReplicas] = useState('1');
  const [autoscale, setAutoscale] = useState(false);
  const [minR, setMinR] = useState('1');
  const [maxR, setMaxR] = useState('5');
  const [target, setTarget] = useState('70');
  const [touched, setTouched] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const t = tenant || defaultTenant;

  const int = (s: string, lo: number, hi: number) => (/^\d+$/.test(s) && +s >= lo && +s <= hi ? null : `A whole number from ${lo} to ${hi}.`);
  const errs = {
    tenant: t ? null : 'Choose a tenant.',
    name: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) && name.length <= 56 ? null : 'Lower-case letters, digits, "-" and ".", at most 56.',
    image: image.trim() ? null : 'Enter an image.',
    cpu: quantityProblem(cpu, 'cpu'),
    memory: quantityProblem(memory, 'memory'),
    replicas: int(replicas, 0, 1000),
    minR: autoscale ? int(minR, 1, 1000) : null,
    maxR: autoscale ? int(maxR, 1, 1000) ?? (+maxR < +minR ? 'At least the minimum.' : null) : null,
    target: autoscale ? int(target, 1, 100) : null,
  };
  const apiErr = create.error instanceof ApiError ? create.error : null;
  const show = (f: keyof typeof errs, apiField?: string) =>
    (touched ? errs[f] : null) ?? (apiField && apiErr?.field === apiField ? apiErr.message : null);

  function submit(e: FormEvent) {
    e.preventDefault();
    setTouched(true);
    setDone(null);
    if (Object.values(errs).some(Boolean)) return;
    const body: WorkloadCreate = { name, image: image.trim(), cpu, memory, replicas: Number(replicas) };
    if (autoscale)
      body.autoscaling = { minReplicas: +minR, maxReplicas: +maxR, targetCPUUtilizationPercentage: +target };
    create.mutate(
      { tenant: t, body },
      {
        onSuccess: (w) => {
          setDone(`Workload ${w.name} created in ${w.namespace}.`);
          setName('');
          setTouched(false);
        },
      },
    );
  }

  return (
    <Card title="Create a workload">
      <form className="form-row" onSubmit={submit} noValidate aria-label="Create a workload">
        {tenants.length > 1 || !tenants.includes(t) ? (
          <Field label="Tenant" id="wl-tenant" error={show('tenant')}>
            <select {...described('wl-tenant', show('tenant'))} value={t} onChange={(e) => setTenant(e.target.value)}>
              {!t && <option value="">Choose…</option>}
              {tenants.map((x) => (
                <option key={x} value={x}>
                  {x}
                </option>
              ))}
            </select>
          </Field>
        ) : null}
        <Field label="Name" id="wl-name" error={show('name', 'name')}>
          <input {...described('wl-name', show('name', 'name'))} value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
        </Field>
        <Field label="Image" id="wl-image" error={show('image', 'image')}>
          <input {...described('wl-image', show('image', 'image'))} value={image} onChange={(e) => setImage(e.target.value)} />
        </Field>
        <Field label="CPU per pod" id="wl-cpu" error={show('cpu', 'cpu')}>
          <input {...described('wl-cpu', show('cpu', 'cpu'))} value={cpu} onChange={(e) => setCpu(e.target.value)} className="short" />
        </Field>
        <Field label="Memory per pod" id="wl-memory" error={show('memory', 'memory')}>
          <input {...described('wl-memory', show('memory', 'memory'))} value={memory} onChange={(e) => setMemory(e.target.value)} className="short" />
        </Field>
        <Field label="Replicas" id="wl-replicas" error={show('replicas', 'replicas')}>
          <input
            {...described('wl-replicas', show('replicas', 'replicas'))}
            type="number"
            min={0}
            max={1000}
            value={replicas}
            onChange={(e) => setReplicas(e.target.value)}
            className="short"
          />
        </Field>
        <div className="field checkbox">
          <input id="wl-autoscale" type="checkbox" checked={autoscale} onChange={(e) => setAutoscale(e.target.checked)} />
          <label htmlFor="wl-autoscale">Autoscale</label>
        </div>
        {autoscale && (
          <>
            <Field label="Min replicas" id="wl-min" error={show('minR', 'autoscaling.minReplicas')}>
              <input {...described('wl-min', show('minR'))} type="number" min={1} value={minR} onChange={(e) => setMinR(e.target.value)} className="short" />
            </Field>
            <Field label="Max replicas" id="wl-max" error={show('maxR', 'autoscaling.maxReplicas')}>
              <input {...described('wl-max', show('maxR'))} type="number" min={1} value={maxR} onChange={(e) => setMaxR(e.target.value)} className="short" />
            </Field>
            <Field label="CPU target %" id="wl-target" error={show('target', 'autoscaling.targetCPUUtilizationPercentage')}>
              <input {...described('wl-target', show('target'))} type="number" min={1} max={100} value={target} onChange={(e) => setTarget(e.target.value)} className="short" />
            </Field>
          </>
        )}
        <div className="form-submit">
          <button type="submit" className="btn primary" disabled={create.isPending || tenants.length === 0}>
            {create.isPending ? 'Creating…' : 'Create workload'}
          </button>
        </div>
      </form>
      {apiErr && !apiErr.field && <ErrorNote error={apiErr} />}
      {done && (
        <p className="notice ok" role="status">
          {done}
        </p>
      )}
    </Card>
  );
}
