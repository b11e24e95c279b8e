import { useEffect, useState } from 'react';
import { NavLink, Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { useQueryClient } from '@tanstack/react-query';
import { clearSession, EXPIRED_MESSAGE, loadSession, onSessionChange, type Session } from './auth/session';
import { LiveProvider, useLive } from './live/LiveProvider';
import { LiveBanner, LiveDot } from './components/LiveBanner';
import { LoginPage } from './pages/Login';
import { OverviewPage } from './pages/Overview';
import { TenantsPage } from './pages/Tenants';
import { WorkloadsPage } from './pages/Workloads';
import { SchedulerPage } from './pages/Scheduler';
import { BillingPage } from './pages/Billing';
import { SessionContext } from './auth/context';

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [message, setMessage] = useState<string | null>(null);
  const qc = useQueryClient();

  useEffect(
    () =>
      onSessionChange((s, reason) => {
        setSession(s);
        if (!s) {
          qc.clear(); // nothing of one login is shown to the next
          setMessage(reason ?? null);
        } else {
          setMessage(null);
        }
      }),
    [qc],
  );

  // The token expires on its own: go back to login at that moment.
  useEffect(() => {
    if (!session) return;
    const ms = session.expiresAt - Date.now();
    const t = setTimeout(() => clearSession(EXPIRED_MESSAGE), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    return () => clearTimeout(t);
  }, [session]);

  if (!session) return <LoginPage message={message} />;
  return (
    <SessionContext.Provider value={session}>
      <LiveProvider key={session.token}>
        <Shell session={session} />
      </LiveProvider>
    </SessionContext.Provider>
  );
}

function Shell({ session }: { session: Session }) {
  const { state } = useLive();
  const location = useLocation();
  const admin = session.role === 'admin';
  const [navOpen, setNavOpen] = useState(false);
  useEffect(() => setNavOpen(false), [location.pathname]);

  const links = [
    { to: '/', label: 'Overview', end: true },
    { to: '/tenants', label: admin ? 'Tenants' : 'Tenant' },
    { to: '/workloads', label: 'Workloads' },
    ...(admin ? [{ to: '/scheduler', label: 'Scheduler' }] : []),
    { to: '/billing', label: 'Billing' },
  ];

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button
          type="button"
          className="nav-toggle"
          aria-expanded={navOpen}
          aria-controls="nav"
          onClick={() => setNavOpen((o) => !o)}
        >
          <span aria-hidden="true">☰</span>
          <span className="sr-only">Menu</span>
        </button>
        <span className="brand">Nimbus</span>
        <LiveDot state={state} />
        <SessionClock expiresAt={session.expiresAt} />
        <span className="who" data-testid="who">
          {admin ? 'Administrator' : (
            <>
              Tenant <strong>{session.tenantId}</strong>
            </>
          )}
        </span>
        <button type="button" className="btn small" onClick={() => clearSession()}>
          Sign out
        </button>
      </header>
      <nav id="nav" className={`sidenav ${navOpen ? 'open' : ''}`} aria-label="Main">
        <ul>
          {links.map((l) => (
            <li key={l.to}>
              <NavLink to={l.to} end={l.end}>
                {l.label}
              </NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        <LiveBanner state={state} />
        <Routes>
          <Route path="/" element={<OverviewPage />} />
          <Route path="/tenants" element={<TenantsPage />} />
          <Route path="/workloads" element={<WorkloadsPage />} />
          <Route path="/scheduler" element={admin ? <SchedulerPage /> : <Navigate to="/" replace />} />
          <Route path="/billing" element={<BillingPage />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </main>
    </div>
  );
}

/** The token cannot be renewed: say when the session ends, in its last two minutes. */
function SessionClock({ expiresAt }: { expiresAt: number }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const left = Math.max(0, Math.round((expiresAt - now) / 1000));
  if (left > 120) return null;
  return (
    <span className="session-clock" role="timer" aria-live="off" data-testid="session-clock">
      Session ends in {Math.floor(left / 60)}:{String(left % 60).padStart(2, '0')}
    </span>
  );
}
