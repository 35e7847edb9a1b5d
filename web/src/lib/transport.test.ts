/**
 * The browser transport against a real nats-server (no mocked broker): nkey
 * auth over WebSocket, the durable consumer created through the filtered
 * CONSUMER.CREATE subject, offline delivery, ack-after-store.
 *
 * The users get exactly the PROTOCOL §9.1 permissions, so any JetStream API
 * call nats.js makes beyond them (STREAM.INFO, $JS.API.INFO, …) is denied
 * and fails this test.
 *
 * Needs nats-server >= 2.10: $NATS_SERVER_BIN, or <repo>/.venv/bin/nats-server
 * as installed by scripts/ensure-nats-server (./kez test does that).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { wsconnect, type NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connectTransport, newMsgId, type Transport } from './transport';
import { kezAuthenticator } from './nonce';
import { identityFromSeed, nkeyPublic, type Identity } from './keys';
import { open, seal, textBody } from './envelope';
import { seedOf } from './test/util';

const here = dirname(fileURLToPath(import.meta.url));
const candidates = [process.env.NATS_SERVER_BIN, resolve(here, '../../../.venv/bin/nats-server')].filter(Boolean) as string[];
const bin = candidates.find((p) => existsSync(p));

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

function userBlock(id: Identity): string {
  const h = id.hex;
  const pub = ['kez.inbox.*', `$JS.API.CONSUMER.CREATE.KEZ_INBOX.${h}.kez.inbox.${h}`, `$JS.API.CONSUMER.INFO.KEZ_INBOX.${h}`, `$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.${h}`, `$JS.ACK.KEZ_INBOX.${h}.>`];
  const sub = [`kez.inbox.${h}`, `_INBOX.${h}.>`];
  return `{ nkey: "${nkeyPublic(id.pk)}", permissions: { publish: { allow: ${JSON.stringify(pub)} }, subscribe: { allow: ${JSON.stringify(sub)} } } }`;
}

const admin = identityFromSeed(seedOf(91));
const alice = identityFromSeed(seedOf(92));
const bob = identityFromSeed(seedOf(93));
const now = () => Date.now();
const W = 24 * 3600 * 1000;

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!bin)('transport against a real nats-server', () => {
  let server: ChildProcess;
  let dir: string;
  let wsUrl: string;
  let adminNc: NatsConnection;
  const serverErrors: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kez-web-nats-'));
    const [port, wsPort] = [await freePort(), await freePort()];
    wsUrl = `ws://127.0.0.1:${wsPort}`;
    writeFileSync(
      join(dir, 'nats.conf'),
      `listen: "127.0.0.1:${port}"
jetstream { store_dir: "${join(dir, 'js')}" }
websocket { listen: "127.0.0.1:${wsPort}", no_tls: true }
authorization { users: [
  { nkey: "${nkeyPublic(admin.pk)}" },
  ${userBlock(alice)},
  ${userBlock(bob)}
] }
`,
    );
    server = spawn(bin!, ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        adminNc = await wsconnect({ servers: wsUrl, authenticator: kezAuthenticator(admin.seed) });
        break;
      } catch (e) {
        if (Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const jsm = await jetstreamManager(adminNc);
    await jsm.streams.add({
      name: 'KEZ_INBOX',
      subjects: ['kez.inbox.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      deny_delete: true,
      deny_purge: true,
      allow_rollup_hdrs: false,
      max_age: W * 1e6,
    });
  }, 30_000);

  afterAll(async () => {
    await adminNc?.close().catch(() => undefined);
    server?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function connect(id: Identity, got: Uint8Array[], opts: { failFirst?: boolean } = {}): Promise<Transport> {
    let failed = false;
    return connectTransport({
      wsUrl,
      seed: id.seed,
      stream: 'KEZ_INBOX',
      redeliverDelayMs: 200,
      onServerError: (m) => serverErrors.push(m),
      onMessage: async (m) => {
        if (opts.failFirst && !failed) {
          failed = true;
          throw new Error('storage failed');
        }
        got.push(m.data);
      },
    });
  }

  test('live delivery both ways, offline delivery, ack after store, only permitted API calls', async () => {
    const toBob: Uint8Array[] = [];
    const toAlice: Uint8Array[] = [];
    const a = await connect(alice, toAlice);
    let b = await connect(bob, toBob);

    const s1 = seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('hello bob'), ts: now() });
    await a.publish(bob.hex, s1.outer, newMsgId());
    await waitFor(() => toBob.length === 1);
    expect(open(toBob[0]!, { mySeed: bob.seed, now: now(), retentionMs: W }).body.text).toBe('hello bob');

    const s2 = seal({ senderSeed: bob.seed, recipientPk: alice.pk, kind: 'text', body: textBody('hi alice'), ts: now() });
    await b.publish(alice.hex, s2.outer, newMsgId());
    await waitFor(() => toAlice.length === 1);
    expect(open(toAlice[0]!, { mySeed: alice.seed, now: now(), retentionMs: W }).from).toBe(bob.key);

    // bob goes offline; messages wait in the stream
    await b.close();
    const id = newMsgId();
    const s3 = seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('while you were away'), ts: now() });
    await a.publish(bob.hex, s3.outer, id);
    await a.publish(bob.hex, s3.outer, id); // a retry with the same Nats-Msg-Id is deduplicated by the stream
    const s4 = seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('second'), ts: now() });
    await a.publish(bob.hex, s4.outer, newMsgId());

    // back online; the first handler call fails (not stored) so that message must come again
    const later: Uint8Array[] = [];
    b = await connect(bob, later, { failFirst: true });
    await waitFor(() => later.length === 2);
    const texts = later.map((d) => open(d, { mySeed: bob.seed, now: now(), retentionMs: W }).body.text).sort();
    expect(texts).toEqual(['second', 'while you were away']);
    await new Promise((r) => setTimeout(r, 500));
    expect(later).toHaveLength(2); // acked: nothing more arrives

    await a.close();
    await b.close();
    expect(serverErrors).toEqual([]);
  }, 60_000);
});
