// Connects the event stream for the signed-in session and turns events into
// refreshed queries (debounced, so a burst of pod events is one refetch)
// and into a short in-memory log the pages show.
import { createContext, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import type { ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { EventTicket, LiveEvent } from '../api/types';
import { clearSession, EXPIRED_MESSAGE, loadSession } from '../auth/session';
import { LiveStream, type StreamState } from './stream';

const LOG_MAX = 300;

/** The recent events, newest first; a tiny external store. */
export class EventLog {
  private items: LiveEvent[] = [];
  private readonly ls = new Set<() => void>();
  push(e: LiveEvent) {
    this.items = [e, ...this.items].slice(0, LOG_MAX);
    this.ls.forEach((l) => l());
  }
  get = () => this.items;
  subscribe = (l: () => void) => {
    this.ls.add(l);
    return () => {
      this.ls.delete(l);
    };
  };
}

/** Which queries an event makes stale. */
export function queriesFor(e: LiveEvent): string[] {
  switch (e.type) {
    case 'tenant':
      return ['tenants', 'workloads'];
    case 'workload':
      return ['workloads'];
    case 'pod':
    case 'placement':
      return ['scheduler', 'workloads'];
    default:
      return [];
  }
}

interface LiveCtx {
  state: StreamState;
  log: EventLog;
}

const Ctx = createContext<LiveCtx | null>(null);

export function LiveProvider({ children, streamFactory }: { children: ReactNode; streamFactory?: (o: ConstructorParameters<typeof LiveStream>[0]) => LiveStream }) {
  const qc = useQueryClient();
  const log = useMemo(() => new EventLog(), []);
  const [state, setState] = useState<StreamState>({ status: 'connecting', dropped: false, downSince: null, attempts: 0 });
  const pending = useRef(new Set<string>());
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  useEffect(() => {
    const flush = () => {
      timer.current = null;
      const keys = [...pending.current];
      pending.current.clear();
      keys.forEach((k) => qc.invalidateQueries({ queryKey: [k] }));
    };
    const mark = (keys: string[]) => {
      keys.forEach((k) => pending.current.add(k));
      if (!timer.current) timer.current = setTimeout(flush, 250);
    };
    const opts = {
      ticket: async () => (await api<EventTicket>('POST', '/api/v1/events/ticket')).ticket,
      tokenExpired: () => !loadSession(),
      onAuthLost: () => clearSession(EXPIRED_MESSAGE),
      onEvent: (e: LiveEvent) => {
        log.push(e);
        mark(queriesFor(e));
      },
      onReset: () => mark(['tenants', 'workloads', 'scheduler', 'usage']),
    };
    const s = streamFactory ? streamFactory(opts) : new LiveStream(opts);
    const unsub = s.subscribe((st) => {
      // Back after a drop: refetch what the replay cannot cover (usage, live node figures).
      setState((prev) => {
        if (prev.status !== 'live' && st.status === 'live' && st.dropped) mark(['scheduler', 'usage']);
        return st;
      });
    });
    s.start();
    return () => {
      unsub();
      s.stop();
      if (timer.current) clearTimeout(timer.current);
    };
  }, [qc, log, streamFactory]);

  return <Ctx.Provider value={{ state, log }}>{children}</Ctx.Provider>;
}

export function useLive(): LiveCtx {
  const c = useContext(Ctx);
  if (!c) throw new Error('useLive outside LiveProvider');
  return c;
}

export function useEventLog(): LiveEvent[] {
  const { log } = useLive();
  return useSyncExternalStore(log.subscribe, log.get, log.get);
}
