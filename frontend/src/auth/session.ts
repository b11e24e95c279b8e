// The signed-in session: the token the API issued, kept in sessionStorage
// (gone when the tab closes, never in a URL or a cookie), and who it is for.
import type { Role, Token } from '../api/types';

export interface Session {
  token: string;
  role: Role;
  tenantId: string; // "" for the administrator
  expiresAt: number; // unix ms
  user: string; // what the login form said: "admin" or the tenant
}

const KEY = 'nimbus.session';
type Listener = (s: Session | null, reason?: string) => void;
const listeners = new Set<Listener>();

export function sessionFromToken(t: Token, user: string, now = Date.now()): Session {
  const at = Date.parse(t.expires_at);
  return {
    token: t.token,
    role: t.role,
    tenantId: t.tenant_id,
    expiresAt: Number.isFinite(at) ? at : now + t.expires_in * 1000,
    user,
  };
}

export function loadSession(now = Date.now()): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (typeof s.token !== 'string' || typeof s.expiresAt !== 'number') return null;
    return s.expiresAt > now ? s : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(s));
  listeners.forEach((l) => l(s));
}

/** Forget the session; reason (shown on the login page) says why. */
export function clearSession(reason?: string): void {
  // Everything the dashboard kept for this login goes with it.
  for (const k of Object.keys(sessionStorage)) if (k.startsWith('nimbus.')) sessionStorage.removeItem(k);
  listeners.forEach((l) => l(null, reason));
}

export function onSessionChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export const EXPIRED_MESSAGE = 'Your session expired. Sign in again to continue.';
