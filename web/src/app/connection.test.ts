import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChatConnection } from './connection.svelte';
import { KezError } from '../lib/errors';
import type { Transport, TransportStatus } from '../lib/transport';

type Cb = { onStatus: (s: TransportStatus, d?: string) => void; onStopped: (e: KezError) => void };

function fakeTransport(): Transport & { closed: boolean } {
  return {
    closed: false,
    device: { id: '0123456789abcdef', name: 'test', created_at: 0, last_active: null },
    consumer: 'c',
    send: async () => undefined,
    listDevices: async () => [],
    renameDevice: async () => ({ id: '', name: '', created_at: 0, last_active: null }),
    removeDevice: async () => undefined,
    block: async () => 0,
    unblock: async () => undefined,
    async close() {
      this.closed = true;
    },
  };
}

describe('ChatConnection', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('an unreachable server at start: "Reconnecting…" in plain words, then retried by itself with backoff', async () => {
    const results: (() => Promise<Transport>)[] = [
      async () => {
        throw new KezError('unavailable', 'could not connect to the chat server: ');
      },
      async () => {
        throw new KezError('unavailable', 'could not connect to the chat server: ');
      },
      async () => fakeTransport(),
    ];
    let opened = 0;
    let connected = 0;
    const c = new ChatConnection({ open: () => results[opened++]!(), active: () => true, onConnected: () => connected++ });
    await c.connect();
    expect(c.status).toBe('reconnecting');
    expect(c.detail).toMatch(/^The chat server cannot be reached\. Trying again by itself/);
    expect(opened).toBe(1);
    await vi.advanceTimersByTimeAsync(1000); // first retry after about a second
    expect(opened).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(opened).toBe(2); // backed off: the second retry waits longer
    await vi.advanceTimersByTimeAsync(1000);
    expect(opened).toBe(3);
    expect(c.status).toBe('connected');
    expect(c.detail).toBe('');
    expect(connected).toBe(1);
  });

  it('a drop is "Reconnecting…"; coming back runs onConnected again (the outbox goes out)', async () => {
    let cb: Cb | null = null;
    let connected = 0;
    const c = new ChatConnection({
      open: async (x) => ((cb = x), fakeTransport()),
      active: () => true,
      onConnected: () => connected++,
    });
    await c.connect();
    cb!.onStatus('disconnected');
    expect(c.status).toBe('reconnecting');
    expect(c.detail).toContain('outbox');
    cb!.onStatus('connected');
    expect([c.status, c.detail, connected]).toEqual(['connected', '', 2]);
  });

  it('a removed device stops for good; a locked app ignores a late status', async () => {
    let cb: Cb | null = null;
    let active = true;
    const t = fakeTransport();
    const c = new ChatConnection({ open: async (x) => ((cb = x), t), active: () => active, onConnected: () => undefined });
    await c.connect();
    await c.reset();
    active = false;
    cb!.onStatus('closed', 'late');
    cb!.onStopped(new KezError('device_removed', 'removed at logout'));
    expect(c.status).toBe('off');
    expect(c.deviceRemoved).toBe(false);
    expect(t.closed).toBe(true);

    active = true;
    const d = new ChatConnection({
      open: async () => {
        throw new KezError('device_removed', 'gone');
      },
      active: () => true,
      onConnected: () => undefined,
    });
    await d.connect();
    expect(d.deviceRemoved).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(d.status).toBe('closed');
    expect(() => d.require()).toThrow(/removed/);
  });
});
