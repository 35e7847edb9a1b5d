/**
 * The connection to the chat server as the user sees it: one status in plain
 * words, a retry with backoff when the first connection fails (nats.js
 * reconnects by itself after that), and "this device was removed" for good.
 * What to connect with (keys, config) is the app state's business: `open`.
 */
import { KezError } from '../lib/errors';
import type { Transport, TransportStatus } from '../lib/transport';
import { Reconnector } from './reconnect';

export interface ConnectionHooks {
  /** Opens a transport that reports to these callbacks; throws a KezError when it cannot. */
  open(cb: { onStatus: (s: TransportStatus, detail?: string) => void; onStopped: (e: KezError) => void }): Promise<Transport>;
  /** False once locked or logged out: nothing connects then. */
  active(): boolean;
  /** Connected (first time or again): the outbox goes out, stale errors go away. */
  onConnected(): void;
}

const OUTBOX_NOTE = 'messages you write wait in the outbox';

export class ChatConnection {
  status = $state<TransportStatus | 'off'>('off');
  detail = $state('');
  /** Set when the server says this device was removed: delivery stopped for good. */
  deviceRemoved = $state(false);
  transport: Transport | null = null;

  private token = 0;
  private readonly reconnector = new Reconnector(() => this.connect());

  constructor(private readonly hooks: ConnectionHooks) {}

  async connect(): Promise<void> {
    if (!this.hooks.active() || this.deviceRemoved) return;
    this.reconnector.stop();
    await this.close();
    const token = this.token;
    try {
      const t = await this.hooks.open({
        // A transport we already replaced or closed (lock, reconnect) has nothing to say.
        onStatus: (s, detail) => {
          if (token === this.token && !this.deviceRemoved && this.hooks.active()) this.set(s, detail);
        },
        // Only the current transport's: a closed one (e.g. the device removed at logout) must not mark the next session.
        onStopped: () => {
          if (token === this.token) this.markRemoved();
        },
      });
      if (token !== this.token || !this.hooks.active()) {
        await t.close().catch(() => undefined);
        return;
      }
      this.transport = t;
      this.set('connected');
    } catch (e) {
      if (token !== this.token) return;
      const k = e instanceof KezError ? e : null;
      if (k?.code === 'device_removed') return this.markRemoved();
      if (k?.code === 'device_limit' || k?.code === 'insecure_context') {
        this.status = 'closed';
        this.detail =
          k.code === 'device_limit' ? 'This account already has the most devices it may have. Remove one in Settings on another device, then reconnect.' : k.message;
        return;
      }
      // nats.js says "could not connect to the chat server:" with nothing after it when the server is down.
      this.retryLater(k?.message && !/:\s*$/.test(k.message) ? k.message : 'the chat server cannot be reached');
    }
  }

  /** Not connected now: say so in plain words and try again with backoff. */
  retryLater(why: string): void {
    if (!this.hooks.active() || this.deviceRemoved) return;
    this.reconnector.schedule();
    this.status = 'reconnecting';
    this.detail = `${why.charAt(0).toUpperCase()}${why.slice(1)}. Trying again by itself; ${OUTBOX_NOTE}.`;
  }

  /** "Reconnect now" and the browser's online event: no waiting for the backoff. */
  reconnectNow(): void {
    if (this.hooks.active() && !this.deviceRemoved) this.reconnector.now();
  }

  private set(s: TransportStatus, detail?: string): void {
    // nats.js keeps retrying after a drop: for the user that is one state, "Reconnecting…".
    this.status = s === 'disconnected' ? 'reconnecting' : s;
    this.detail =
      s === 'connected' ? '' : (detail ?? (s === 'disconnected' || s === 'reconnecting' ? `The connection to the chat server dropped. Reconnecting by itself; ${OUTBOX_NOTE}.` : ''));
    if (s === 'connected') {
      this.reconnector.succeeded();
      this.hooks.onConnected();
    } else if (s === 'closed') {
      this.transport = null;
      this.retryLater(detail || 'the connection to the chat server closed');
    }
  }

  markRemoved(): void {
    this.deviceRemoved = true;
    this.transport = null;
    this.reconnector.stop();
    this.status = 'closed';
    this.detail = 'This device was removed from your account and no longer receives messages.';
  }

  require(): Transport {
    if (this.deviceRemoved) throw new KezError('device_removed', 'this device was removed from your account');
    if (!this.transport) throw new KezError('unavailable', 'not connected to the chat server');
    return this.transport;
  }

  /** Closes the transport (its late status reports are ignored). */
  async close(): Promise<void> {
    this.token++;
    const t = this.transport;
    this.transport = null;
    await t?.close().catch(() => undefined);
  }

  /** Lock and logout: nothing connected, nothing retried, nothing shown. */
  async reset(forgetRemoved = false): Promise<void> {
    this.reconnector.stop();
    await this.close();
    this.status = 'off';
    this.detail = '';
    if (forgetRemoved) this.deviceRemoved = false;
  }
}
