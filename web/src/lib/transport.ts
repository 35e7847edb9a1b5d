/**
 * NATS over WebSocket for the browser (PROTOCOL.md §9): nkey authentication
 * with the nonce rule, requests to the inbox service (send, devices, block)
 * and pulling this device's consumer.
 *
 * A user may publish only `kez.u.<own hex>.>`, the MSG.NEXT subject of this
 * device's consumer and its acks, and subscribe only `_INBOX.<own hex>.>`
 * (§9.5): so every reply subject is under that prefix, no JetStream API beyond
 * MSG.NEXT is ever called (the consumer is created by the service at enroll),
 * and the connection carries the device name the auth callout reads.
 *
 * This module is loaded with a dynamic import so nats-core stays out of the
 * main bundle.
 */
import { createInbox, nanos, wsconnect, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { checkBrokerUrl } from './brokerurl';
import { KezError, serviceError } from './errors';
import { identityFromSeed } from './keys';
import { kezAuthenticator } from './nonce';
import {
  blockSubject,
  checkDeviceName,
  consumerAckPrefix,
  consumerNextSubject,
  deviceConnectionName,
  deviceConsumer,
  devicesSubject,
  replyPrefix,
  sendSubject,
  unblockSubject,
  type Device,
} from './device';
import { classifyPull, type PullEvent } from './pull';

export interface InboxMessage {
  data: Uint8Array;
  /** The subject it was stored on (for logs). */
  subject: string;
}

export type TransportStatus = 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed';

export interface PullTuning {
  /** Messages asked for per pull request. */
  batch: number;
  /** How long one pull request waits on the server. */
  expiresMs: number;
  /** Idle heartbeat the server sends while a pull request waits; silence for 3× this restarts the pull. */
  heartbeatMs: number;
}

export const DEFAULT_PULL: PullTuning = { batch: 100, expiresMs: 30_000, heartbeatMs: 5_000 };

export interface TransportOptions {
  wsUrl: string;
  seed: Uint8Array;
  stream: string;
  deviceId: string;
  /** Used only when the device is enrolled for the first time. */
  deviceName: string;
  /** Called for every inbox message; the message is acked only after this resolves. */
  onMessage: (m: InboxMessage) => Promise<void>;
  onStatus?: (s: TransportStatus, detail?: string) => void;
  /** Errors the server reports on the connection (e.g. a permissions violation). */
  onServerError?: (message: string) => void;
  /** Delivery stopped for good (this device was removed); the connection is closed. */
  onStopped?: (e: KezError) => void;
  /** Delay before a message whose handler failed is redelivered (default 5 s). */
  redeliverDelayMs?: number;
  pull?: Partial<PullTuning>;
  /** Sees every classified pull message (diagnostics and tests). */
  onPullEvent?: (e: PullEvent) => void;
  /** Timeout of requests to the inbox service (default 10 s). */
  requestTimeoutMs?: number;
}

export interface Transport {
  /** This device as the service stored it at enroll. */
  readonly device: Device;
  readonly consumer: string;
  /** Hands an outer envelope to the relay; resolves once it is stored for the recipient. */
  send(recipientHex: string, outer: Uint8Array): Promise<void>;
  listDevices(): Promise<Device[]>;
  renameDevice(id: string, name: string): Promise<Device>;
  /** Removes a device (its consumer is deleted at once; the id can never enroll again). */
  removeDevice(id: string): Promise<void>;
  /** Refuses a sender from now on and drops what it has in the inbox; resolves with how many messages were dropped. */
  block(senderKey: string): Promise<number>;
  unblock(senderKey: string): Promise<void>;
  close(): Promise<void>;
}

function describe(e: unknown): string {
  if (e instanceof KezError) return e.message;
  const m = e instanceof Error ? e.message : String(e);
  if (/authorization violation/i.test(m)) return 'the server refused this key (is the account registered?)';
  return m;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = new TextEncoder();
const dec = new TextDecoder();

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A `<device>` of a reply (§9.3); keys we do not know are ignored (§9.2). */
export function parseDevice(v: unknown): Device {
  if (
    !isObj(v) ||
    typeof v.id !== 'string' ||
    typeof v.name !== 'string' ||
    typeof v.created_at !== 'number' ||
    !(v.last_active === null || v.last_active === undefined || typeof v.last_active === 'number')
  ) {
    throw new KezError('internal', 'the server sent a malformed device');
  }
  return { id: v.id, name: v.name, created_at: v.created_at, last_active: (v.last_active as number | null | undefined) ?? null };
}

/** Maps what nats.js throws for a request to the stable codes. */
function requestFailure(e: unknown, what: string): KezError {
  if (e instanceof KezError) return e;
  const err = e as Error & { isNoResponders?: () => boolean; cause?: unknown };
  if (err?.isNoResponders?.() || (err?.cause as Error | undefined)?.name === 'NoRespondersError' || err?.name === 'NoRespondersError') {
    return new KezError('unavailable', `${what}: the inbox service is not answering`);
  }
  if (err?.name === 'TimeoutError' || (err?.cause as Error | undefined)?.name === 'TimeoutError') {
    return new KezError('timeout', `${what}: the server did not answer in time`);
  }
  return new KezError('unavailable', `${what}: ${describe(e)}`);
}

export async function connectTransport(o: TransportOptions): Promise<Transport> {
  const { hex } = identityFromSeed(o.seed);
  const tuning: PullTuning = { ...DEFAULT_PULL, ...o.pull };
  const timeout = o.requestTimeoutMs ?? 10_000;
  const consumerName = deviceConsumer(hex, o.deviceId);
  const ackPrefix = consumerAckPrefix(o.stream, consumerName);
  const nextSubject = consumerNextSubject(o.stream, consumerName);
  const inboxPrefix = replyPrefix(hex);
  checkBrokerUrl(o.wsUrl);
  o.onStatus?.('connecting');
  let nc: NatsConnection;
  try {
    nc = await wsconnect({
      servers: o.wsUrl,
      authenticator: kezAuthenticator(o.seed),
      inboxPrefix,
      name: deviceConnectionName(o.deviceId),
      // Servers the broker gossips were never checked by checkBrokerUrl.
      ignoreClusterUpdates: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 2000,
    });
  } catch (e) {
    o.onStatus?.('disconnected', describe(e));
    throw new KezError('unavailable', `could not connect to the chat server: ${describe(e)}`);
  }

  let closing = false;
  let stopped = false;
  let current: Subscription | null = null;
  function abortPull(): void {
    current?.unsubscribe();
  }

  /** One request to the inbox service: JSON (or raw bytes) in, the reply object or a typed error out. */
  async function call(subject: string, body: Uint8Array | Record<string, unknown>, what: string): Promise<Record<string, unknown>> {
    let m: Msg;
    try {
      m = await nc.request(subject, body instanceof Uint8Array ? body : enc.encode(JSON.stringify(body)), { timeout });
    } catch (e) {
      throw requestFailure(e, what);
    }
    const code = m.headers?.get('Nats-Service-Error-Code') ?? '';
    if (code) throw serviceError(code, m.headers?.get('Nats-Service-Error') ?? '');
    if (m.headers && m.headers.code >= 400 && m.data.length === 0) throw new KezError('unavailable', `${what}: ${m.headers.code} ${m.headers.description}`);
    let v: unknown;
    try {
      v = JSON.parse(dec.decode(m.data));
    } catch {
      throw new KezError('internal', `${what}: the server sent a reply that is not JSON`);
    }
    if (!isObj(v)) throw new KezError('internal', `${what}: the server sent a reply that is not an object`);
    return v;
  }

  async function enroll(): Promise<Device> {
    const r = await call(devicesSubject(hex, 'enroll'), { device: o.deviceId, name: checkDeviceName(o.deviceName) }, 'enrolling this device');
    if (r.consumer !== consumerName) throw new KezError('internal', `the server named another consumer (${String(r.consumer)})`);
    return parseDevice(r.device);
  }

  let device: Device;
  try {
    device = await enroll();
  } catch (e) {
    await nc.close().catch(() => undefined);
    const k = e instanceof KezError ? e : new KezError('unavailable', describe(e));
    o.onStatus?.('closed', k.message);
    throw k;
  }
  o.onStatus?.('connected');

  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') o.onStatus?.('disconnected');
      else if (s.type === 'reconnecting') o.onStatus?.('reconnecting');
      else if (s.type === 'reconnect') {
        o.onStatus?.('connected');
        // A pull request does not survive a new connection reliably: ask again.
        abortPull();
      } else if (s.type === 'error') o.onServerError?.(describe(s.error));
    }
  })();
  void nc.closed().then((err) => {
    if (!stopped) o.onStatus?.('closed', err ? describe(err) : undefined);
  });

  async function stop(e: KezError): Promise<void> {
    if (stopped) return;
    stopped = true;
    closing = true;
    current?.unsubscribe();
    o.onStatus?.('closed', e.message);
    await nc.close().catch(() => undefined);
    o.onStopped?.(e);
  }

  /** Pull, hand over, ack: one pull request at a time (§9.4). */
  async function pullLoop(): Promise<void> {
    let backoff = 0;
    const wait = async () => {
      backoff = Math.min(backoff ? backoff * 2 : 1000, 30_000);
      await sleep(backoff);
    };
    while (!closing) {
      if (nc.isClosed()) return;
      const sub = nc.subscribe(createInbox(inboxPrefix));
      current = sub;
      let lastSeen = Date.now();
      let busy = false;
      const watchdog = setInterval(() => {
        // Silence longer than three heartbeats: the request (or the connection) is gone.
        if (!busy && Date.now() - lastSeen > 3 * tuning.heartbeatMs) sub.unsubscribe();
      }, tuning.heartbeatMs);
      let next: 'again' | 'wait' | 'enroll' = 'again';
      try {
        nc.publish(nextSubject, enc.encode(JSON.stringify({ batch: tuning.batch, expires: nanos(tuning.expiresMs), idle_heartbeat: nanos(tuning.heartbeatMs) })), {
          reply: sub.getSubject(),
        });
        let got = 0;
        for await (const m of sub) {
          lastSeen = Date.now();
          const ev = classifyPull({ code: m.headers?.code ?? 0, description: m.headers?.description ?? '', reply: m.reply ?? '', dataLength: m.data.length }, ackPrefix);
          o.onPullEvent?.(ev);
          if (ev.t === 'heartbeat' || ev.t === 'stray') continue;
          if (ev.t === 'end') break;
          if (ev.t === 'consumer_gone') {
            next = 'enroll';
            break;
          }
          if (ev.t === 'retry_later') {
            o.onServerError?.(`pulling the inbox: ${ev.why}`);
            next = 'wait';
            break;
          }
          busy = true;
          try {
            await o.onMessage({ data: m.data, subject: m.subject });
            m.respond(enc.encode('+ACK'));
          } catch {
            // not stored: let the server deliver it again later
            m.respond(enc.encode(`-NAK ${JSON.stringify({ delay: nanos(o.redeliverDelayMs ?? 5000) })}`));
          } finally {
            busy = false;
            lastSeen = Date.now();
          }
          backoff = 0;
          if (++got >= tuning.batch) break;
        }
      } catch (e) {
        if (closing || nc.isClosed()) return;
        o.onServerError?.(`pulling the inbox: ${describe(e)}`);
        next = 'wait';
      } finally {
        clearInterval(watchdog);
        sub.unsubscribe();
        if (current === sub) current = null;
      }
      if (closing) return;
      if (next === 'wait') await wait();
      else if (next === 'enroll') {
        try {
          device = await enroll();
          backoff = 0;
        } catch (e) {
          if (e instanceof KezError && e.code === 'device_removed') {
            await stop(e);
            return;
          }
          o.onServerError?.(`enrolling this device again: ${describe(e)}`);
          await wait();
        }
      }
    }
  }
  const loop = pullLoop();

  return {
    get device() {
      return device;
    },
    consumer: consumerName,
    async send(recipientHex, outer) {
      if (stopped) throw new KezError('device_removed', 'this device was removed from the account');
      await call(sendSubject(hex, recipientHex), outer, 'sending');
    },
    async listDevices() {
      const r = await call(devicesSubject(hex, 'list'), {}, 'listing devices');
      if (!Array.isArray(r.devices)) throw new KezError('internal', 'the server sent a malformed device list');
      return r.devices.map(parseDevice);
    },
    async renameDevice(id, name) {
      const r = await call(devicesSubject(hex, 'rename'), { device: id, name: checkDeviceName(name) }, 'renaming the device');
      const d = parseDevice(r.device);
      if (id === device.id) device = d;
      return d;
    },
    async removeDevice(id) {
      await call(devicesSubject(hex, 'remove'), { device: id }, 'removing the device');
      if (id === device.id) await stop(new KezError('device_removed', 'this device was removed from the account'));
    },
    async block(senderKey) {
      const r = await call(blockSubject(hex), { sender: senderKey }, 'blocking');
      return typeof r.purged === 'number' ? r.purged : 0;
    },
    async unblock(senderKey) {
      await call(unblockSubject(hex), { sender: senderKey }, 'unblocking');
    },
    async close() {
      closing = true;
      current?.unsubscribe();
      await nc.close().catch(() => undefined);
      await loop.catch(() => undefined);
    },
  };
}
