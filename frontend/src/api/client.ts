// fetch against the API on the same origin, with the session's token in the
// Authorization header. A 401 on an authenticated call ends the session
// (the token expired or was refused) and sends the user back to login.
import { clearSession, EXPIRED_MESSAGE, loadSession } from '../auth/session';
import type { Problem, Token } from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly field?: string;
  constructor(status: number, message: string, field?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.field = field;
  }
}

async function toError(res: Response): Promise<ApiError> {
  let detail = `${res.status} ${res.statusText}`;
  let field: string | undefined;
  try {
    const body = (await res.json()) as Partial<Problem>;
    if (body && typeof body.detail === 'string') detail = body.detail;
    if (body && typeof body.field === 'string') field = body.field;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, detail, field);
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const s = loadSession();
  if (!s) {
    clearSession(EXPIRED_MESSAGE);
    throw new ApiError(401, EXPIRED_MESSAGE);
  }
  const headers: Record<string, string> = { Authorization: `Bearer ${s.token}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'The Nimbus API cannot be reached. Is nimbus-operator running?');
  }
  if (res.status === 401) {
    clearSession(EXPIRED_MESSAGE);
    throw await toError(res);
  }
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** POST /api/v1/auth/token: the admin's user and password, or a tenant API key. */
export async function login(cred: { username: string; password: string } | { api_key: string }): Promise<Token> {
  let res: Response;
  try {
    res = await fetch('/api/v1/auth/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(cred),
    });
  } catch {
    throw new ApiError(0, 'The Nimbus API cannot be reached. Is nimbus-operator running?');
  }
  if (!res.ok) {
    const err = await toError(res);
    if (res.status === 401) throw new ApiError(401, 'Those credentials were not accepted.');
    throw err;
  }
  return (await res.json()) as Token;
}

/** Every page of a list route. */
export async function listAll<T>(path: string, signal?: AbortSignal): Promise<T[]> {
  const out: T[] = [];
  let cont: string | null = null;
  for (let i = 0; i < 100; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const url: string = `${path}${sep}limit=1000${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`;
    const page: { items: T[]; continue: string | null } = await api('GET', url, undefined, signal);
    out.push(...page.items);
    cont = page.continue;
    if (!cont) break;
  }
  return out;
}
