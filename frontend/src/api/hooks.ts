// TanStack Query hooks over the API. Lists are refreshed by the live event
// stream (LiveProvider invalidates them); the figures no event announces
// (live node usage, billing) are polled.
import { useEffect, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { loadHistory, mergeUsage, rangeQuery, saveHistory, type RangeId, type UsageHistory } from '../lib/usage';
import { api, listAll } from './client';
import type {
  Invoice,
  SchedulerView,
  Tenant,
  TenantCreate,
  TenantCreated,
  UsageHistoryResponse,
  UsageItem,
  Workload,
  WorkloadCreate,
} from './types';

const enc = encodeURIComponent;

export function useTenants() {
  return useQuery({
    queryKey: ['tenants'],
    queryFn: ({ signal }) => listAll<Tenant>('/api/v1/tenants', signal),
  });
}

export function useWorkloads() {
  return useQuery({
    queryKey: ['workloads'],
    queryFn: ({ signal }) => listAll<Workload>('/api/v1/workloads', signal),
  });
}

export function useScheduler(enabled = true) {
  return useQuery({
    queryKey: ['scheduler'],
    queryFn: ({ signal }) => api<SchedulerView>('GET', '/api/v1/scheduler', undefined, signal),
    enabled,
    refetchInterval: 10_000, // live usage is sampled every 10 s by the scheduler
  });
}

export function useUsage() {
  return useQuery({
    queryKey: ['usage'],
    queryFn: ({ signal }) => api<{ items: UsageItem[] }>('GET', '/api/v1/billing/usage', undefined, signal),
    refetchInterval: 5_000,
    select: (d) => d.items,
  });
}

/** useUsage plus the points seen so far in this browser session (kept in
 * sessionStorage, so every page shares them). */
export function useUsageHistory() {
  const usage = useUsage();
  const [history, setHistory] = useState<UsageHistory>(() => loadHistory());
  useEffect(() => {
    if (!usage.data) return;
    setHistory(() => {
      const next = mergeUsage(loadHistory(), usage.data);
      saveHistory(next);
      return next;
    });
  }, [usage.data]);
  return { usage, history };
}

/** Usage per tenant over a window ending now, from the database; refreshed
 * every billing period or so, and with the other usage queries when the
 * event stream comes back. */
export function useUsageOverTime(range: RangeId) {
  return useQuery({
    queryKey: ['usage', 'history', range],
    queryFn: ({ signal }) =>
      api<UsageHistoryResponse>('GET', `/api/v1/billing/usage/history?${rangeQuery(range)}`, undefined, signal),
    refetchInterval: 10_000,
    placeholderData: (prev) => prev,
  });
}

export function useInvoice(tenant: string | null, from: string, to: string) {
  return useQuery({
    queryKey: ['invoice', tenant, from, to],
    queryFn: ({ signal }) =>
      api<Invoice>('GET', `/api/v1/billing/invoice/${enc(tenant!)}?from=${enc(from)}&to=${enc(to)}`, undefined, signal),
    enabled: !!tenant,
    refetchInterval: 15_000,
  });
}

export function useCreateTenant() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (t: TenantCreate) => api<TenantCreated>('POST', '/api/v1/tenants', t),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['tenants'] }),
  });
}

export function useDeleteTenant() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api<unknown>('DELETE', `/api/v1/tenants/${enc(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['tenants'] }),
  });
}

export function useCreateWorkload() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ tenant, body }: { tenant: string; body: WorkloadCreate }) =>
      api<Workload>('POST', `/api/v1/tenants/${enc(tenant)}/workloads`, body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['workloads'] }),
  });
}

export function useScaleWorkload() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ tenant, name, replicas }: { tenant: string; name: string; replicas: number }) =>
      api<unknown>('PATCH', `/api/v1/tenants/${enc(tenant)}/workloads/${enc(name)}`, { replicas }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['workloads'] }),
  });
}

export function useDeleteWorkload() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ tenant, name }: { tenant: string; name: string }) =>
      api<unknown>('DELETE', `/api/v1/tenants/${enc(tenant)}/workloads/${enc(name)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['workloads'] }),
  });
}
