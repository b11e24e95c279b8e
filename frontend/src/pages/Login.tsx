import { useState } from 'react';
import type { FormEvent } from 'react';
import { login } from '../api/client';
import { saveSession, sessionFromToken } from '../auth/session';
import { Field, described } from '../components/ui';

type Mode = 'admin' | 'tenant';

export function LoginPage({ message }: { message: string | null }) {
  const [mode, setMode] = useState<Mode>('admin');
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [apiKey, setApiKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    if (mode === 'admin' && !password) return setError('Enter the administrator password.');
    if (mode === 'tenant' && !apiKey.trim()) return setError('Enter the tenant API key.');
    setBusy(true);
    try {
      const t = await login(mode === 'admin' ? { username, password } : { api_key: apiKey.trim() });
      setPassword('');
      setApiKey('');
      saveSession(sessionFromToken(t, mode === 'admin' ? username : t.tenant_id));
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login" id="main">
      <form className="login-card" onSubmit={submit} noValidate aria-labelledby="login-title">
        <div className="login-brand" aria-hidden="true">
          Nimbus
        </div>
        <h1 id="login-title">Sign in</h1>
        {message && (
          <p className="notice warn" role="alert" data-testid="login-message">
            {message}
          </p>
        )}
        <fieldset className="segmented">
          <legend className="sr-only">Sign in as</legend>
          <label className={mode === 'admin' ? 'on' : ''}>
            <input type="radio" name="mode" value="admin" checked={mode === 'admin'} onChange={() => setMode('admin')} />
            Administrator
          </label>
          <label className={mode === 'tenant' ? 'on' : ''}>
            <input type="radio" name="mode" value="tenant" checked={mode === 'tenant'} onChange={() => setMode('tenant')} />
            Tenant API key
          </label>
        </fieldset>
        {mode === 'admin' ? (
          <>
            <Field label="User" id="login-user">
              <input {...described('login-user')} autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} />
            </Field>
            <Field label="Password" id="login-password">
              <input
                {...described('login-password')}
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                autoFocus
              />
            </Field>
          </>
        ) : (
          <Field label="API key" id="login-key" hint="nmbk_… as shown once when the tenant was created">
            <input
              {...described('login-key', null, 'nmbk_… as shown once when the tenant was created')}
              type="password"
              autoComplete="off"
              spellCheck={false}
              value={apiKey}
              onChange={(e) => setApiKey(e.target.value)}
              autoFocus
            />
          </Field>
        )}
        {error && (
          <p className="error-note" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="btn primary wide" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
