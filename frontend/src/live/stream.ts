// The API's live event stream (websocket GET /api/v1/events) with
// reconnection: after a drop it reconnects with capped, jittered backoff and
// asks for what it missed (?since=<last seq>&stream=<stream id>); the server
// replays it from its buffer, or sends {"type":"reset"} when it cannot, and
// then every list must be reloaded.
//
// Browsers cannot put an Authorization header on a websocket, and a token
// must never travel in a URL (they end up in logs), so each connection first
// trades the token for a single-use, 30-second ticket
// (POST /api/v1/events/ticket) and offers it as the subprotocol
// "ticket.<ticket>" next to "nimbus".
import type { LiveEvent } from '../api/types';

export type StreamStatus = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface StreamState {
  status: StreamStatus;
  /** The stream dropped at least once since it was first live. */
  dropped: boolean;
  /** When the current outage started (ms), null when live. */
  downSince: number | null;
  /** Attempts since the last successful connection. */
  attempts: number;
}

/** The subprotocols that carry a ticket: the server answers "nimbus". */
export function subprotocols(ticket: string): string[] {
  return ['nimbus', `ticket.${ticket}`];
}

export interface StreamOptions {
  /** A fresh ticket for one connection; rejects when the API cannot be reached. */
  ticket: () => Promise<string>;
  /** Called for every event (not hello) and for reset messages. */
  onEvent: (e: LiveEvent) => void;
  /** Called when the server cannot replay what was missed (reload everything). */
  onReset: () => void;
  /** The token was refused or has expired: the session is over. */
  onAuthLost: () => void;
  tokenExpired: () => boolean;
  url?: (query: string) => string;
  WebSocketImpl?: typeof WebSocket;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  random?: () => number;
}

/** Backoff after the n-th failed attempt (n >= 1): 0.5 s doubling to 15 s, ±20 %. */
export function backoffMs(n: number, random = Math.random): number {
  const base = Math.min(15000, 500 * 2 ** Math.max(0, n - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

export function defaultUrl(query: string): string {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}/api/v1/events${query ? `?${query}` : ''}`;
}

export class LiveStream {
  private ws: WebSocket | null = null;
  private timer: unknown = null;
  private stopped = false;
  private streamId = '';
  private lastSeq = -1;
  private everLive = false;
  private state: StreamState = { status: 'connecting', dropped: false, downSince: null, attempts: 0 };
  private readonly listeners = new Set<(s: StreamState) => void>();
  private readonly o: Required<Omit<StreamOptions, 'url' | 'WebSocketImpl'>> &
    Pick<StreamOptions, 'url' | 'WebSocketImpl'>;

  constructor(o: StreamOptions) {
    this.o = {
      now: () => Date.now(),
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
      random: Math.random,
      ...o,
    };
  }

  getState(): StreamState {
    return this.state;
  }

  subscribe(l: (s: StreamState) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private set(p: Partial<StreamState>) {
    this.state = { ...this.state, ...p };
    this.listeners.forEach((l) => l(this.state));
  }

  start(): void {
    this.stopped = false;
    void this.open();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.o.clearTimer(this.timer);
    this.timer = null;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, 'bye');
    }
    this.ws = null;
    this.set({ status: 'closed' });
  }

  private async open() {
    if (this.o.tokenExpired()) {
      this.o.onAuthLost();
      return;
    }
    let ticket: string;
    try {
      ticket = await this.o.ticket();
    } catch {
      if (this.stopped) return;
      if (this.o.tokenExpired()) this.o.onAuthLost();
      else this.retry();
      return;
    }
    if (this.stopped) return;
    const q = new URLSearchParams();
    if (this.lastSeq >= 0 && this.streamId) {
      q.set('since', String(this.lastSeq));
      q.set('stream', this.streamId);
    }
    const Impl = this.o.WebSocketImpl ?? WebSocket;
    const url = (this.o.url ?? defaultUrl)(q.toString());
    let ws: WebSocket;
    try {
      ws = new Impl(url, subprotocols(ticket));
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (m) => this.message(m.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      // A refused token closes the handshake: tell it apart from a drop.
      if (this.o.tokenExpired()) {
        this.o.onAuthLost();
        return;
      }
      this.retry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private retry() {
    const attempts = this.state.attempts + 1;
    this.set({
      status: this.everLive ? 'reconnecting' : 'connecting',
      dropped: this.everLive || this.state.dropped,
      downSince: this.state.downSince ?? this.o.now(),
      attempts,
    });
    this.timer = this.o.setTimer(() => {
      this.timer = null;
      if (!this.stopped) void this.open();
    }, backoffMs(attempts, this.o.random));
  }

  private message(data: unknown) {
    let e: LiveEvent;
    try {
      e = JSON.parse(String(data)) as LiveEvent;
    } catch {
      return;
    }
    if (e.type === 'hello') {
      const resumed = this.everLive;
      const sameStream = this.streamId === e.stream;
      this.streamId = e.stream;
      this.everLive = true;
      this.set({ status: 'live', downSince: null, attempts: 0 });
      // Another process (a restart, another replica): what was cached may
      // be stale, and no replay is coming.
      if (resumed && !sameStream) {
        this.lastSeq = e.seq;
        this.o.onReset();
      } else if (!resumed) {
        this.lastSeq = e.seq;
      }
      return;
    }
    if (e.type === 'reset') {
      if (typeof e.seq === 'number') this.lastSeq = e.seq;
      this.o.onReset();
      return;
    }
    if (typeof e.seq === 'number') {
      if (e.seq <= this.lastSeq && e.stream === this.streamId) return; // never twice
      this.lastSeq = e.seq;
    }
    this.o.onEvent(e);
  }
}
