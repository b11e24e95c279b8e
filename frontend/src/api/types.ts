// The shapes of operator/openapi.json (GET /openapi.json), as the dashboard uses them.

export type Role = 'admin' | 'tenant';

export interface Token {
  token: string;
  token_type: 'Bearer';
  expires_in: number;
  expires_at: string;
  role: Role;
  tenant_id: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  field?: string;
}

export interface Tenant {
  id: string;
  name: string;
  cpu_quota: string;
  memory_quota: string;
  pods_quota: number;
  status: 'active' | 'deleting';
  namespace: string;
  namespace_phase: 'Absent' | 'Active' | 'Terminating';
  created_at: string;
  updated_at: string | null;
}

export interface TenantCreate {
  name: string;
  cpu_quota?: string;
  memory_quota?: string;
  pods_quota?: number;
}

export interface TenantCreated extends Tenant {
  api_key: string;
  api_key_id: string;
}

export interface List<T> {
  items: T[];
  continue: string | null;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface AutoscalingSpec {
  minReplicas: number | null;
  maxReplicas: number | null;
  targetCPUUtilizationPercentage: number | null;
  targetMemoryUtilizationPercentage: number | null;
}

export interface AutoscalingStatus {
  currentReplicas: number | null;
  desiredReplicas: number | null;
  currentCPUUtilizationPercentage: number | null;
  currentMemoryUtilizationPercentage: number | null;
  lastScaleTime: string | null;
  reason: string;
}

export interface Workload {
  tenant: string;
  namespace: string;
  name: string;
  uid: string;
  created_at: string;
  deleting: boolean;
  image: string;
  cpu: string;
  memory: string;
  replicas: number;
  autoscaling: AutoscalingSpec | null;
  status: {
    phase: string;
    ready: boolean;
    replicas: number;
    readyReplicas: number;
    observedGeneration: number;
    conditions: Condition[];
    autoscaling: AutoscalingStatus | null;
  };
}

export interface WorkloadCreate {
  name: string;
  image: string;
  cpu: string;
  memory: string;
  replicas?: number;
  autoscaling?: Partial<Record<keyof AutoscalingSpec, number>>;
}

export interface UsageItem {
  tenant_id: string;
  CPUMilliSeconds: string;
  MemoryMBSeconds: string;
  since: string | null;
  until: string | null;
}

export interface UsageHistoryPoint {
  time: string; // start of the bucket
  CPUMilliSeconds: string;
  MemoryMBSeconds: string;
}

/** GET /api/v1/billing/usage/history: buckets without usage are left out. */
export interface UsageHistoryResponse {
  from: string;
  to: string;
  step_seconds: number;
  items: { tenant_id: string; points: UsageHistoryPoint[] }[];
}

export interface EventTicket {
  ticket: string;
  expires_in: number;
  expires_at: string;
}

export interface InvoiceLine {
  item: string;
  unit: string;
  quantity: string;
  unit_price: string;
  amount: string;
  amount_minor: number;
}

export interface Invoice {
  tenant_id: string;
  period_start: string;
  period_end: string;
  currency: string;
  cpu_milli_seconds: string;
  memory_byte_seconds: string;
  lines: InvoiceLine[];
  total: string;
  total_minor: number;
  issued: boolean;
  issued_at: string | null;
}

export interface SchedulerNode {
  name: string;
  ready: boolean;
  unschedulable: boolean;
  pods: number;
  allocatable: { cpu_milli: number | null; memory_bytes: number | null; pods: number | null };
  requested: { cpu_milli: number; memory_bytes: number };
  requested_fraction: { cpu: number | null; memory: number | null };
  usage: { cpu_milli: number; memory_bytes: number; age_ms: number; cpu_fraction: number | null } | null;
}

export interface Placement {
  pod: string;
  node: string;
  tenant: string;
  scheduler: string;
  time: string;
  score: number | null;
}

export interface SchedulerView {
  scheduler: string;
  pending: number;
  nodes: SchedulerNode[];
  recent_placements: Placement[];
}

/** One message of the websocket GET /api/v1/events. */
export interface LiveEvent {
  type: 'hello' | 'reset' | 'tenant' | 'workload' | 'pod' | 'placement';
  stream: string;
  seq: number;
  time?: string;
  action?: string; // added, updated, deleted; bound for placements
  tenant?: string;
  namespace?: string;
  name?: string;
  object?: Record<string, unknown>;
}
