import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from '../src/App';
import { LiveBanner } from '../src/components/LiveBanner';
import { saveSession } from '../src/auth/session';
import type { Tenant } from '../src/api/types';

class QuietWS {
  static last: QuietWS | null = null;
  url: string;
  protocols: string[] | undefined;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(url: string, protocols?: string[]) {
    this.url = url;
    this.protocols = protocols;
    QuietWS.last = this;
  }
  close() {}
}

const tenant = (id: string): Tenant => ({
  id,
  name: id,
  cpu_quota: '2',
  memory_quota: '4Gi',
  pods_quota: 20,
  status: 'active',
  namespace: `nimbus-${id}`,
  namespace_phase: 'Active',
  created_at: '2026-11-25T10:00:00Z',
  updated_at: null,
});

type Handler = (url: string, init: RequestInit) => { status: number; body?: unknown };
let routes: Record<string, Handler>;
let calls: { method: string; url: string; body?: unknown; auth?: string }[];

function json(status: number, body?: unknown) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': status >= 400 ? 'application/problem+json' : 'application/json' },
  });
}

beforeEach(() => {
  calls = [];
  routes = {
    'GET /api/v1/tenants': () => ({ status: 200, body: { items: [tenant('acme'), tenant('globex')], continue: null } }),
    'GET /api/v1/workloads': () => ({ status: 200, body: { items: [], continue: null } }),
    'GET /api/v1/scheduler': () => ({ status: 200, body: { scheduler: 'nimbus-scheduler', pending: 0, nodes: [], recent_placements: [] } }),
    'GET /api/v1/billing/usage': () => ({ status: 200, body: { items: [] } }),
    'POST /api/v1/events/ticket': () => ({ status: 200, body: { ticket: 'tkt-1', expires_in: 30, expires_at: '2026-11-25T10:00:30Z' } }),
  };
  vi.stubGlobal('WebSocket', QuietWS);
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const url = String(input);
      const path = url.replace(/\?.*$/, '');
      const method = init.method ?? 'GET';
      const headers = (init.headers ?? {}) as Record<string, string>;
      calls.push({ method, url, body: init.body ? JSON.parse(String(init.body)) : undefined, auth: headers.Authorization });
      const h = routes[`${method} ${path}`];
      if (!h) return json(404, { type: 'about:blank', title: 'Not Found', status: 404, detail: `no route ${path}` });
      const r = h(url, init);
      return json(r.status, r.body);
    }),
  );
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

function signIn(role: 'admin' | 'tenant', tenantId = '', ttl = 600_000) {
  saveSession({ token: `tok-${role}`, role, tenantId, expiresAt: Date.now() + ttl, user: role === 'admin' ? 'admin' : tenantId });
}

function renderApp(path = '/') {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={qc}>
      <MemoryRouter initialEntries={[path]}>
        <App />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('login', () => {
  it('signs the administrator in and keeps the token out of the URL', async () => {
    routes['POST /api/v1/auth/token'] = () => ({
      status: 200,
      body: { token: 'abc.def.ghi', token_type: 'Bearer', expires_in: 900, expires_at: new Date(Date.now() + 900_000).toISOString(), role: 'admin', tenant_id: '' },
    });
    renderApp();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText('Password'), 'secret-password');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('heading', { name: 'Overview' })).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ username: 'admin', password: 'secret-password' });
    await waitFor(() => expect(calls.some((c) => c.url.startsWith('/api/v1/tenants'))).toBe(true));
    const get = calls.find((c) => c.url.startsWith('/api/v1/tenants'))!;
    expect(get.auth).toBe('Bearer abc.def.ghi');
    expect(get.url).not.toContain('abc.def.ghi');
    expect(window.location.href).not.toContain('abc.def.ghi');
    expect(JSON.parse(sessionStorage.getItem('nimbus.session')!).token).toBe('abc.def.ghi');
  });

  it('signs a tenant in with an API key', async () => {
    routes['POST /api/v1/auth/token'] = () => ({
      status: 200,
      body: { token: 't', token_type: 'Bearer', expires_in: 900, expires_at: new Date(Date.now() + 900_000).toISOString(), role: 'tenant', tenant_id: 'acme' },
    });
    renderApp();
    const user = userEvent.setup();
    await user.click(screen.getByLabelText('Tenant API key'));
    await user.type(screen.getByLabelText('API key'), 'nmbk_0123456789abcdef_secret');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByTestId('who')).toHaveTextContent('Tenant acme');
    expect(calls[0].body).toEqual({ api_key: 'nmbk_0123456789abcdef_secret' });
  });

  it('says when credentials are refused', async () => {
    routes['POST /api/v1/auth/token'] = () => ({ status: 401, body: { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'x' } });
    renderApp();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText('Password'), 'wrong');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Those credentials were not accepted.');
  });

  it('returns to login with a message when the API refuses the token', async () => {
    signIn('admin');
    routes['GET /api/v1/tenants'] = () => ({ status: 401, body: { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'token expired' } });
    renderApp('/tenants');
    expect(await screen.findByTestId('login-message')).toHaveTextContent('Your session expired');
    expect(sessionStorage.getItem('nimbus.session')).toBeNull();
  });

  it('returns to login when the token runs out, without any request', async () => {
    signIn('admin', '', 1500);
    renderApp();
    expect(await screen.findByRole('heading', { name: 'Overview' })).toBeInTheDocument();
    expect(screen.getByTestId('session-clock')).toHaveTextContent(/Session ends in 0:0[12]/);
    expect(await screen.findByTestId('login-message', {}, { timeout: 3000 })).toHaveTextContent('Your session expired');
  });

  it('signs out', async () => {
    signIn('admin');
    renderApp();
    await userEvent.setup().click(await screen.findByRole('button', { name: 'Sign out' }));
    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeInTheDocument();
    expect(screen.queryByTestId('login-message')).toBeNull();
    expect(sessionStorage.getItem('nimbus.session')).toBeNull();
  });
});

describe('tenants page', () => {
  it('creates a tenant with its quota and shows the key once', async () => {
    signIn('admin');
    routes['POST /api/v1/tenants'] = () => ({ status: 201, body: { ...tenant('initech'), api_key: 'nmbk_1_s', api_key_id: '1' } });
    renderApp('/tenants');
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText('Name'), 'initech');
    await user.clear(screen.getByLabelText('CPU quota'));
    await user.type(screen.getByLabelText('CPU quota'), '500m');
    await user.click(screen.getByRole('button', { name: 'Create tenant' }));
    const dialog = await screen.findByRole('dialog');
    expect(within(dialog).getByTestId('new-api-key')).toHaveValue('nmbk_1_s');
    expect(calls.find((c) => c.method === 'POST' && c.url === '/api/v1/tenants')?.body).toEqual({ name: 'initech', cpu_quota: '500m', memory_quota: '4Gi', pods_quota: 20 });
  });

  it('checks the name before sending', async () => {
    signIn('admin');
    renderApp('/tenants');
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText('Name'), 'Bad_Name');
    await user.click(screen.getByRole('button', { name: 'Create tenant' }));
    expect(screen.getByLabelText('Name')).toHaveAttribute('aria-invalid', 'true');
    expect(calls.some((c) => c.method === 'POST' && c.url === '/api/v1/tenants')).toBe(false);
  });

  it('deletes only after confirmation, and Escape cancels', async () => {
    signIn('admin');
    routes['DELETE /api/v1/tenants/globex'] = () => ({ status: 202, body: { id: 'globex', status: 'deleting' } });
    renderApp('/tenants');
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Delete tenant globex' }));
    expect(screen.getByRole('dialog', { name: 'Delete tenant globex?' })).toBeInTheDocument();
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);
    await user.click(screen.getByRole('button', { name: 'Delete tenant globex' }));
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Delete tenant' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE' && c.url === '/api/v1/tenants/globex')).toBe(true));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
  });
});

describe('a tenant login', () => {
  it('has no tenant admin, no scheduler and no tenant filter', async () => {
    signIn('tenant', 'acme');
    routes['GET /api/v1/tenants'] = () => ({ status: 200, body: { items: [tenant('acme')], continue: null } });
    renderApp('/tenants');
    expect(await screen.findByRole('heading', { name: 'Tenant' })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Create tenant' })).toBeNull();
    expect(screen.queryByRole('button', { name: /Delete tenant/ })).toBeNull();
    expect(screen.queryByRole('link', { name: 'Scheduler' })).toBeNull();
    await userEvent.setup().click(screen.getByRole('link', { name: 'Workloads' }));
    expect(await screen.findByRole('heading', { name: 'Workloads' })).toBeInTheDocument();
    expect(screen.queryByLabelText('Tenant')).toBeNull();
    expect(calls.some((c) => c.url.startsWith('/api/v1/scheduler'))).toBe(false);
  });

  it('is sent away from the scheduler page', async () => {
    signIn('tenant', 'acme');
    renderApp('/scheduler');
    expect(await screen.findByRole('heading', { name: 'Overview' })).toBeInTheDocument();
  });
});

describe('live banner', () => {
  it('warns while the stream is down and says when it is back', () => {
    vi.useFakeTimers();
    const base = { dropped: true, downSince: null, attempts: 0 };
    const { rerender } = render(<LiveBanner state={{ ...base, status: 'live', dropped: false }} />);
    expect(screen.getByTestId('live-banner')).not.toBeVisible();
    rerender(<LiveBanner state={{ ...base, status: 'reconnecting', attempts: 2, downSince: 1 }} />);
    expect(screen.getByTestId('live-banner')).toHaveTextContent('Live updates interrupted');
    expect(screen.getByTestId('live-banner')).toHaveTextContent('attempt 2');
    rerender(<LiveBanner state={{ ...base, status: 'live' }} />);
    expect(screen.getByTestId('live-banner')).toHaveTextContent('Live updates reconnected');
    act(() => vi.advanceTimersByTime(6000));
    expect(screen.getByTestId('live-banner')).not.toBeVisible();
  });

  it('shows events from the stream and refetches the lists', async () => {
    signIn('admin');
    renderApp('/');
    expect(await screen.findByRole('heading', { name: 'Overview' })).toBeInTheDocument();
    await waitFor(() => expect(QuietWS.last).not.toBeNull());
    const ws = QuietWS.last!;
    expect(ws.url).toMatch(/\/api\/v1\/events$/);
    expect(ws.protocols).toEqual(['nimbus', 'ticket.tkt-1']);
    expect(calls.find((c) => c.url === '/api/v1/events/ticket')?.auth).toBe('Bearer tok-admin');
    const before = calls.filter((c) => c.url.startsWith('/api/v1/workloads')).length;
    act(() => {
      ws.onmessage?.({ data: JSON.stringify({ type: 'hello', stream: 'S', seq: 0 }) });
      ws.onmessage?.({
        data: JSON.stringify({ type: 'workload', action: 'added', stream: 'S', seq: 1, tenant: 'acme', namespace: 'nimbus-acme', name: 'web', time: '2026-11-25T10:00:00Z', object: { phase: '', replicas: 1, readyReplicas: 0 } }),
      });
    });
    expect(await screen.findByText('workload web: created, 0/1 ready')).toBeInTheDocument();
    await waitFor(() => expect(calls.filter((c) => c.url.startsWith('/api/v1/workloads')).length).toBeGreaterThan(before));
    expect(screen.getByTestId('live-status')).toHaveTextContent('Live');
  });
});
