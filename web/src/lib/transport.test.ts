/**
 * The browser transport against a real nats-server (no mocked broker) laid out
 * as PROTOCOL.md §9.1 (USERS / INBOX / APP accounts, service imports) with the
 * §9.5 user permissions: nkey auth over WebSocket with the device connection
 * name, enroll, raw MSG.NEXT pulls with their status messages, ack after store,
 * sends through the relay subject, device management, and a removed device
 * that stops.
 *
 * Any subject the client used beyond its permissions would be denied by the
 * server and reported through onServerError, which every test checks is empty.
 *
 * Needs nats-server >= 2.10: $NATS_SERVER_BIN, or <repo>/.venv/bin/nats-server
 * as installed by scripts/ensure-nats-server (./kez test does that).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectTransport, type Transport, type TransportOptions } from './transport';
import { identityFromSeed, type Identity } from './keys';
import { open, seal, textBody } from './envelope';
import { KezError } from './errors';
import { utf8 } from './encoding';
import { expectCodeAsync, seedOf } from './test/util';
import { InboxStandIn, natsServerBin, startLayout, type Layout } from './test/natslayout';

const svc = identityFromSeed(seedOf(90));
const alice = identityFromSeed(seedOf(92));
const bob = identityFromSeed(seedOf(93));
const now = () => Date.now();
const W = 24 * 3600 * 1000;
const DEV = { a1: 'a1a1a1a1a1a1a1a1', a2: 'a2a2a2a2a2a2a2a2', a3: 'a3a3a3a3a3a3a3a3', b1: 'b1b1b1b1b1b1b1b1', b2: 'b2b2b2b2b2b2b2b2' };

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const text = (id: Identity, d: Uint8Array) => open(d, { mySeed: id.seed, now: now(), retentionMs: W }).body.text as string;
const msg = (from: Identity, to: Identity, t: string) => seal({ senderSeed: from.seed, recipientPk: to.pk, kind: 'text', body: textBody(t), ts: now() }).outer;

describe.skipIf(!natsServerBin)('transport against a real nats-server with the §9 layout', () => {
  let layout: Layout;
  let inbox: InboxStandIn;
  const serverErrors: string[] = [];
  const open_: Transport[] = [];
  let bobSender: Transport | null = null;
  /** Bob's second device, kept open for sending (and for bob's device requests). */
  const sender = async () => (bobSender ??= await connect(bob, DEV.b2, []));

  beforeAll(async () => {
    layout = await startLayout(svc, [
      { id: alice, devices: [DEV.a1, DEV.a2, DEV.a3] },
      { id: bob, devices: [DEV.b1, DEV.b2] },
    ]);
    inbox = await InboxStandIn.start(layout.wsUrl, svc);
  }, 30_000);

  afterAll(async () => {
    for (const t of open_) await t.close().catch(() => undefined);
    await inbox?.stop();
    await layout?.stop();
  });

  async function connect(id: Identity, deviceId: string, got: Uint8Array[], over: Partial<TransportOptions> & { failFirst?: boolean } = {}): Promise<Transport> {
    let failed = false;
    const t = await connectTransport({
      wsUrl: layout.wsUrl,
      seed: id.seed,
      stream: 'KEZ_INBOX',
      deviceId,
      deviceName: `test ${deviceId}`,
      redeliverDelayMs: 200,
      onServerError: (m) => serverErrors.push(m),
      onMessage: async (m) => {
        if (over.failFirst && !failed) {
          failed = true;
          throw new Error('storage failed');
        }
        got.push(m.data);
      },
      ...over,
    });
    open_.push(t);
    return t;
  }

  test('enroll, live delivery both ways, offline delivery, ack after store, only permitted subjects', async () => {
    const toBob: Uint8Array[] = [];
    const toAlice: Uint8Array[] = [];
    const a = await connect(alice, DEV.a1, toAlice);
    let b = await connect(bob, DEV.b1, toBob);
    expect(a.device).toMatchObject({ id: DEV.a1, name: `test ${DEV.a1}`, last_active: null });
    expect(a.consumer).toBe(`${alice.hex}_${DEV.a1}`);

    await a.send(bob.hex, msg(alice, bob, 'hello bob'));
    await waitFor(() => toBob.length === 1);
    expect(text(bob, toBob[0]!)).toBe('hello bob');
    await b.send(alice.hex, msg(bob, alice, 'hi alice'));
    await waitFor(() => toAlice.length === 1);
    expect(text(alice, toAlice[0]!)).toBe('hi alice');

    // bob goes offline; messages wait in the stream
    await b.close();
    await a.send(bob.hex, msg(alice, bob, 'while you were away'));
    await a.send(bob.hex, msg(alice, bob, 'second'));
    // back online (enroll again is idempotent); the first handler call fails (not stored) so that message comes again
    const later: Uint8Array[] = [];
    b = await connect(bob, DEV.b1, later, { failFirst: true });
    await waitFor(() => later.length === 2);
    expect(later.map((d) => text(bob, d)).sort()).toEqual(['second', 'while you were away']);
    await new Promise((r) => setTimeout(r, 500));
    expect(later).toHaveLength(2); // acked: nothing more arrives
    await a.close();
    await b.close();
    expect(serverErrors).toEqual([]);
  }, 60_000);

  test('every device of a user gets every message; a device enrolled later reads what is still held', async () => {
    const d2: Uint8Array[] = [];
    const d3: Uint8Array[] = [];
    const b = await sender();
    const a2 = await connect(alice, DEV.a2, d2);
    for (let i = 0; i < 6; i++) await b.send(alice.hex, msg(bob, alice, `m${i}`));
    await waitFor(() => d2.length >= 6);
    // a third device, enrolled after the fact, gets everything held (including the first test's message)
    const a3 = await connect(alice, DEV.a3, d3);
    await waitFor(() => d3.length >= 7);
    const texts2 = d2.map((d) => text(alice, d));
    const texts3 = d3.map((d) => text(alice, d));
    for (let i = 0; i < 6; i++) {
      expect(texts2).toContain(`m${i}`);
      expect(texts3).toContain(`m${i}`);
    }
    expect(texts3).toContain('hi alice');
    // in order, per device
    expect(texts2.filter((t) => /^m\d$/.test(t))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    await a2.close();
    await a3.close();
    expect(serverErrors).toEqual([]);
  }, 60_000);

  test('status messages: expiring pulls (408) and heartbeats (100) keep the loop going; a deleted consumer (409) is enrolled again', async () => {
    const got: Uint8Array[] = [];
    const events: string[] = [];
    const a = await connect(alice, DEV.a1, got, { pull: { batch: 2, expiresMs: 1000, heartbeatMs: 300 }, onPullEvent: (e) => events.push(e.t === 'end' || e.t === 'consumer_gone' ? `${e.t} ${e.why}` : e.t) });
    const b = await sender();
    await new Promise((r) => setTimeout(r, 3500)); // several 408s go by
    for (let i = 0; i < 5; i++) await b.send(alice.hex, msg(bob, alice, `s${i}`));
    await waitFor(() => got.filter((d) => /^s\d$/.test(text(alice, d))).length === 5);
    // the consumer disappears under a waiting pull (not a removal): 409 → enroll → pulling again
    await inbox.nc.flush();
    const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(inbox.nc, { apiPrefix: '$JS.INBOX.API' });
    await jsm.consumers.delete('KEZ_INBOX', a.consumer);
    await new Promise((r) => setTimeout(r, 1500));
    const before = got.length;
    await b.send(alice.hex, msg(bob, alice, 'after the consumer came back'));
    // deliver-all: the re-created consumer delivers what is held again; the new one must be among it
    await waitFor(() => got.slice(before).some((d) => text(alice, d) === 'after the consumer came back'));
    expect(events).toContain('heartbeat');
    expect(events.filter((e) => e.startsWith('end 408')).length).toBeGreaterThanOrEqual(2);
    expect(events.some((e) => /^consumer_gone 409 consumer deleted/i.test(e))).toBe(true);
    await a.close();
    expect(serverErrors).toEqual([]);
  }, 60_000);

  test('removing a device stops its delivery; it cannot enroll again; the other device keeps receiving', async () => {
    const kept: Uint8Array[] = [];
    const gone: Uint8Array[] = [];
    let stoppedWith: KezError | null = null;
    const a1 = await connect(alice, DEV.a1, kept);
    const a2 = await connect(alice, DEV.a2, gone, { onStopped: (e) => (stoppedWith = e) });
    const b = await sender();
    await b.send(alice.hex, msg(bob, alice, 'before removal'));
    const has = (l: Uint8Array[], t: string) => l.some((d) => text(alice, d) === t);
    await waitFor(() => has(gone, 'before removal') && has(kept, 'before removal'));
    const names = (await a1.listDevices()).map((d) => d.id);
    expect(names).toEqual(expect.arrayContaining([DEV.a1, DEV.a2, DEV.a3]));
    expect((await a1.renameDevice(DEV.a2, 'old laptop')).name).toBe('old laptop');
    await expectCodeAsync(() => a1.renameDevice('ffffffffffffffff', 'x'), 'device_not_found');
    await expectCodeAsync(() => a1.renameDevice(DEV.a2, 'bad\nname'), 'invalid_request');

    await a1.removeDevice(DEV.a2);
    await waitFor(() => stoppedWith !== null);
    expect(stoppedWith!.code).toBe('device_removed');
    const goneCount = gone.length;
    const keptCount = kept.length;
    await b.send(alice.hex, msg(bob, alice, 'after removal'));
    await waitFor(() => kept.length > keptCount && has(kept, 'after removal'));
    await new Promise((r) => setTimeout(r, 500));
    expect(gone).toHaveLength(goneCount);
    await expectCodeAsync(() => a2.send(bob.hex, msg(alice, bob, 'x')), 'device_removed');
    await expectCodeAsync(() => connect(alice, DEV.a2, []), 'device_removed');
    expect((await a1.listDevices()).map((d) => d.id)).not.toContain(DEV.a2);
    await a1.close();
    expect(serverErrors).toEqual([]);
  }, 60_000);

  test('service errors arrive as the stable codes; block drops held mail and later mail', async () => {
    const a = await connect(alice, DEV.a1, []);
    await expectCodeAsync(() => a.send(bob.hex, utf8('{"v":2}')), 'invalid_request');
    const got: Uint8Array[] = [];
    const b = await connect(bob, DEV.b1, got);
    await b.close();
    await a.send(bob.hex, msg(alice, bob, 'held 1'));
    await a.send(bob.hex, msg(alice, bob, 'held 2'));
    const b2 = await sender();
    expect(await b2.block(alice.key)).toBeGreaterThanOrEqual(2); // all of alice's held mail to bob, acked or not
    await a.send(bob.hex, msg(alice, bob, 'while blocked')); // the same {} as anyone gets
    const b1 = await connect(bob, DEV.b1, got);
    await new Promise((r) => setTimeout(r, 1000));
    expect(got.map((d) => text(bob, d))).not.toContain('while blocked');
    await b2.unblock(alice.key);
    await a.send(bob.hex, msg(alice, bob, 'after unblock'));
    // Normally at once; on a loaded machine a pull whose heartbeats went missing is restarted by
    // the watchdog after three heartbeats (15 s), and the message must still arrive then.
    await waitFor(() => got.some((d) => text(bob, d) === 'after unblock'), 30_000);
    await b1.close();
    await a.close();
    expect(serverErrors).toEqual([]);
  }, 60_000);
});
