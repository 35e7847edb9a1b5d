/**
 * NATS over WebSocket for the browser (PROTOCOL.md §9): nkey authentication
 * with the nonce rule, the user's durable pull consumer on their inbox, and
 * JetStream publishes to other inboxes.
 *
 * Only the JetStream API calls the user's permissions allow are made
 * (§9.1): CONSUMER.CREATE with name and filter (the filtered create subject),
 * CONSUMER.INFO and CONSUMER.MSG.NEXT for the own consumer, acks, and
 * publishes to kez.inbox.*. The manager is created with checkAPI: false so no
 * $JS.API.INFO is sent, and no STREAM.* call is ever made.
 *
 * This module is loaded with a dynamic import so nats-core stays out of the
 * main bundle.
 */
import { nanos, wsconnect, type NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import { b64uEncode, randomBytes } from './encoding';
import { KezError } from './errors';
import { identityFromSeed } from './keys';
import { kezAuthenticator } from './nonce';

export interface InboxMessage {
  data: Uint8Array;
  /** Stream sequence, for logs. */
  seq: number;
}

export type TransportStatus = 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed';

export interface TransportOptions {
  wsUrl: string;
  seed: Uint8Array;
  stream: string;
  /** Called for every inbox message; the message is acked only after this resolves. */
  onMessage: (m: InboxMessage) => Promise<void>;
  onStatus?: (s: TransportStatus, detail?: string) => void;
  /** Errors the server reports on the connection (e.g. a permissions violation). */
  onServerError?: (message: string) => void;
  /** Delay before a message whose handler failed is redelivered (default 5 s). */
  redeliverDelayMs?: number;
}

export interface Transport {
  /** JetStream-publishes an envelope to the recipient's inbox; msgId makes retries idempotent. */
  publish(recipientHex: string, outer: Uint8Array, msgId: string): Promise<void>;
  close(): Promise<void>;
}

export function newMsgId(): string {
  return b64uEncode(randomBytes(16));
}

export function inboxSubject(hex: string): string {
  return `kez.inbox.${hex}`;
}

/** Redelivery delay of unacked messages; the same as the CLI (cli/core broker.rs ACK_WAIT). */
export const ACK_WAIT_MS = 10_000;

/**
 * The inbox consumer, field for field what the CLI creates, so either client
 * may create it first and the other's create (same config) succeeds.
 */
export function consumerConfig(hex: string) {
  return {
    name: hex,
    durable_name: hex,
    filter_subject: inboxSubject(hex),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ACK_WAIT_MS),
    description: 'kez-chat inbox',
  };
}

function describe(e: unknown): string {
  if (e instanceof KezError) return e.message;
  const m = e instanceof Error ? e.message : String(e);
  if (/authorization violation/i.test(m)) return 'the server refused this key (is the account registered?)';
  return m;
}

export async function connectTransport(o: TransportOptions): Promise<Transport> {
  const { hex } = identityFromSeed(o.seed);
  o.onStatus?.('connecting');
  let nc: NatsConnection;
  try {
    nc = await wsconnect({
      servers: o.wsUrl,
      authenticator: kezAuthenticator(o.seed),
      inboxPrefix: `_INBOX.${hex}`,
      name: 'kez-web',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 2000,
    });
  } catch (e) {
    o.onStatus?.('disconnected', describe(e));
    throw new KezError('unavailable', `could not connect to the chat server: ${describe(e)}`);
  }
  o.onStatus?.('connected');
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') o.onStatus?.('disconnected');
      else if (s.type === 'reconnecting') o.onStatus?.('reconnecting');
      else if (s.type === 'reconnect') o.onStatus?.('connected');
      else if (s.type === 'error') o.onServerError?.(describe(s.error));
    }
  })();
  void nc.closed().then((err) => o.onStatus?.('closed', err ? describe(err) : undefined));

  const jsm = await jetstreamManager(nc, { checkAPI: false });
  try {
    await jsm.consumers.add(o.stream, consumerConfig(hex));
  } catch (e) {
    // An existing consumer with the same config is fine (create is idempotent); anything else is fatal.
    const m = describe(e);
    if (!/already exists/i.test(m)) {
      await nc.close();
      throw new KezError('unavailable', `could not open the inbox: ${m}`);
    }
  }
  const js = jetstream(nc);
  const consumer = await js.consumers.get(o.stream, hex);
  let messages: ConsumerMessages | null = await consumer.consume({ max_messages: 64 });
  const loop = (async () => {
    for await (const m of messages!) {
      try {
        await o.onMessage({ data: m.data, seq: m.seq });
        m.ack();
      } catch {
        // not stored: let the broker redeliver later
        m.nak(o.redeliverDelayMs ?? 5000);
      }
    }
  })();

  return {
    async publish(recipientHex, outer, msgId) {
      try {
        await js.publish(inboxSubject(recipientHex), outer, { msgID: msgId, timeout: 10_000 });
      } catch (e) {
        throw new KezError('unavailable', `the message was not accepted by the server: ${describe(e)}`);
      }
    },
    async close() {
      messages?.stop();
      messages = null;
      await loop.catch(() => undefined);
      await nc.close().catch(() => undefined);
    },
  };
}
