import { describe, expect, it } from 'vitest';
import { backoffMs, LiveStream } from '../src/live/stream';
import type { LiveEvent } from '../src/api/types';

class FakeWS {
  static all: FakeWS[] = [];
  url: string;
  protocols: string[] | undefined;
  onmessage: ((m: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  constructor(url: string, protocols?: string[]) {
    this.url = url;
    this.protocols = protocols;
    FakeWS.all.push(this);
  }
  send(o: object) {
    this.onmessage?.({ data: JSON.stringify(o) });
  }
  drop() {
    this.onclose?.();
  }
  close() {
    this.closed = true;
  }
}

/** Let the ticket promise settle. */
const settle = () => new Promise((r) => setTimeout(r, 0));

function setup(expired = () => false, ticket: () => Promise<string> = async () => 'tk1') {
  FakeWS.all = [];
  const timers: (() => void)[] = [];
  const got: LiveEvent[] = [];
  let resets = 0;
  let authLost = 0;
  const s = new LiveStream({
    ticket,
    tokenExpired: expired,
    onEvent: (e) => got.push(e),
    onReset: () => resets++,
    onAuthLost: () => authLost++,
    url: (q) => `ws://x/api/v1/events?${q}`,
    WebSocketImpl: FakeWS as unknown as typeof WebSocket,
    setTimer: (fn) => timers.push(fn),
    clearTimer: () => {},
    random: () => 0.5,
  });
  return { s, timers, got, resets: () => resets, authLost: () => authLost };
}

describe('LiveStream', () => {
  it('connects with a fresh ticket as a subprotocol, never a token in the URL', async () => {
    let n = 0;
    const { s, got } = setup(undefined, async () => `tk${++n}`);
    s.start();
    expect(s.getState().status).toBe('connecting');
    await settle();
    const ws = FakeWS.all[0];
    expect(ws.url).toBe('ws://x/api/v1/events?');
    expect(ws.protocols).toEqual(['nimbus', 'ticket.tk1']);
    ws.send({ type: 'hello', stream: 'A', seq: 4 });
    expect(s.getState().status).toBe('live');
    ws.send({ type: 'workload', stream: 'A', seq: 5, name: 'web' });
    ws.send({ type: 'workload', stream: 'A', seq: 5, name: 'web' });
    ws.send({ type: 'pod', stream: 'A', seq: 6, name: 'p' });
    expect(got.map((e) => e.seq)).toEqual([5, 6]);
  });

  it('after a drop, reconnects with a new ticket, since and stream, and says it dropped', async () => {
    let n = 0;
    const { s, timers } = setup(undefined, async () => `tk${++n}`);
    s.start();
    await settle();
    FakeWS.all[0].send({ type: 'hello', stream: 'A', seq: 4 });
    FakeWS.all[0].send({ type: 'pod', stream: 'A', seq: 9 });
    FakeWS.all[0].drop();
    expect(s.getState()).toMatchObject({ status: 'reconnecting', dropped: true, attempts: 1 });
    timers.shift()!();
    await settle();
    expect(FakeWS.all[1].url).toContain('since=9');
    expect(FakeWS.all[1].url).toContain('stream=A');
    expect(FakeWS.all[1].protocols).toEqual(['nimbus', 'ticket.tk2']);
    FakeWS.all[1].drop(); // still down
    expect(s.getState().attempts).toBe(2);
    timers.shift()!();
    await settle();
    FakeWS.all[2].send({ type: 'hello', stream: 'A', seq: 12 });
    expect(s.getState()).toMatchObject({ status: 'live', attempts: 0, downSince: null });
  });

  it('retries with backoff while no ticket can be had', async () => {
    let up = false;
    const { s, timers } = setup(undefined, async () => {
      if (!up) throw new Error('unreachable');
      return 'tk';
    });
    s.start();
    await settle();
    expect(FakeWS.all).toHaveLength(0);
    expect(s.getState()).toMatchObject({ status: 'connecting', attempts: 1 });
    up = true;
    timers.shift()!();
    await settle();
    expect(FakeWS.all).toHaveLength(1);
  });

  it('reloads everything on reset or on another stream', async () => {
    const { s, timers, resets } = setup();
    s.start();
    await settle();
    FakeWS.all[0].send({ type: 'hello', stream: 'A', seq: 1 });
    FakeWS.all[0].send({ type: 'reset', stream: 'A', seq: 1 });
    expect(resets()).toBe(1);
    FakeWS.all[0].drop();
    timers.shift()!();
    await settle();
    FakeWS.all[1].send({ type: 'hello', stream: 'B', seq: 3 }); // the operator restarted
    expect(resets()).toBe(2);
  });

  it('ends the session instead of retrying when the token expired', async () => {
    let expired = false;
    const { s, timers, authLost } = setup(() => expired);
    s.start();
    await settle();
    FakeWS.all[0].send({ type: 'hello', stream: 'A', seq: 1 });
    expired = true;
    FakeWS.all[0].drop();
    expect(authLost()).toBe(1);
    expect(timers).toHaveLength(0);
  });

  it('stops cleanly', async () => {
    const { s } = setup();
    s.start();
    await settle();
    s.stop();
    expect(FakeWS.all[0].closed).toBe(true);
    expect(s.getState().status).toBe('closed');
  });

  it('backs off from 0.5 s to 15 s', () => {
    expect(backoffMs(1, () => 0.5)).toBe(500);
    expect(backoffMs(3, () => 0.5)).toBe(2000);
    expect(backoffMs(20, () => 0.5)).toBe(15000);
    expect(backoffMs(1, () => 0)).toBe(400);
    expect(backoffMs(1, () => 1)).toBe(600);
  });
});
