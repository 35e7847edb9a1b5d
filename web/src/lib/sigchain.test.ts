import { describe, expect, test } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  applyLink,
  buildLink,
  checkAppend,
  checkExtends,
  deviceIrohEndpoints,
  emptyState,
  irohDeviceEndpointBody,
  irohEndpointBody,
  irohEndpoints,
  natsEndpointBody,
  parseLinkBytes,
  pinOf,
  verifyChain,
  verifyExtending,
  walkChain,
  type Link,
} from './sigchain';
import { fromUtf8, hexEncode, utf8 } from './encoding';
import { jcsBytes, obj, parseCanonical, type JsonObject } from './jcs';
import { identityFromSeed } from './keys';
import { signingInput, signObject } from './sign';
import { expectCode, seedOf } from './test/util';
import { endpointPublic } from './iroh-endpoint';

const me = identityFromSeed(seedOf(11));
const t0 = 1_760_000_000_000;

function chain(ops: Array<[string, JsonObject, boolean?]>, seed = me.seed): Link[] {
  const out: Link[] = [];
  for (const [i, [op, body, ignore]] of ops.entries()) {
    const prev = out.length ? { seqno: out.length, linkId: out[out.length - 1]!.linkId } : null;
    out.push(buildLink({ seed, prev, ctime: t0 + i, op, body, ignoreIfUnsupported: ignore }));
  }
  return out;
}

const nats = natsEndpointBody(me.hex, 'nats://127.0.0.1:4222');
const iroh = irohEndpointBody(me.hex);

describe('links', () => {
  test('link 1 shape, JCS bytes and link_id = SHA-256(signing input)', () => {
    const [l] = chain([['add_endpoint', nats]]);
    expect(l!.seqno).toBe(1);
    expect(l!.prev).toBeNull();
    expect(fromUtf8(l!.bytes)).toContain('"prev":null');
    expect(l!.linkId).toBe(hexEncode(sha256(signingInput('sigchain.link', l!.obj))));
    expect(parseLinkBytes(l!.bytes).linkId).toBe(l!.linkId);
  });
  test('a link over 8 KiB, non-canonical bytes or tampering is refused', () => {
    const [l] = chain([['add_claim', obj({ service: 'web', account: 'x' })]]);
    expectCode(() => parseLinkBytes(new Uint8Array(8193)), 'too_large');
    expectCode(() => parseLinkBytes(utf8(fromUtf8(l!.bytes) + ' ')), 'not_canonical');
    const o = parseCanonical(l!.bytes) as JsonObject;
    expectCode(() => parseLinkBytes(jcsBytes({ ...o, ctime: 1 })), 'bad_signature');
    expectCode(() => parseLinkBytes(jcsBytes(signObject(me.seed, 'sigchain.link', obj({ ...o, signer: identityFromSeed(seedOf(12)).key })))), 'invalid_link');
    expectCode(() => parseLinkBytes(jcsBytes(signObject(me.seed, 'sigchain.link', obj({ ...o, extra: 1 })))), 'invalid_request');
    expectCode(() => parseLinkBytes(jcsBytes(signObject(me.seed, 'sigchain.link', obj({ ...o, type: 'kez.msg' })))), 'wrong_type');
  });
});

describe('chain verification and derived state', () => {
  test('endpoints, removal, shared files, claims, unknown op skipped', () => {
    const links = chain([
      ['add_endpoint', nats],
      ['add_endpoint', iroh],
      ['add_claim', obj({ service: 'github', account: 'alice', proof: 'https://gist.github.com/x' })],
      ['set_shared_files', obj({ manifest: 'ab'.repeat(32), manifest_seq: 1, size: 100 })],
      ['future_op', obj({ anything: 1 }), true],
      ['set_shared_files', obj({ manifest: 'cd'.repeat(32), manifest_seq: 2, size: 120 })],
    ]);
    const rm = buildLink({ seed: me.seed, prev: { seqno: 6, linkId: links[5]!.linkId }, ctime: t0 + 9, op: 'remove_endpoint', body: obj({ target: links[1]!.linkId }) });
    const all = [...links, rm];
    const s = verifyChain(me.key, all.map((l) => l.obj));
    expect(s.seqno).toBe(7);
    expect(s.tail).toBe(rm.linkId);
    expect(s.endpoints.map((e) => e.body.kind)).toEqual(['nats']);
    expect(s.endpoints[0]!.linkId).toBe(links[0]!.linkId);
    expect(s.sharedFiles?.manifest).toBe('cd'.repeat(32));
    expect(s.claims).toHaveLength(1);
    // also from raw bytes
    expect(verifyChain(me.key, all.map((l) => l.bytes)).tail).toBe(rm.linkId);
  });
  test('op body rules', () => {
    const bad: Array<[string, JsonObject, boolean?]> = [
      ['add_endpoint', natsEndpointBody('00'.repeat(32), 'nats://x')],
      ['add_endpoint', irohEndpointBody('00'.repeat(32))],
      ['add_endpoint', obj({ kind: 'smtp' })],
      ['remove_endpoint', obj({ target: 'ab'.repeat(32) })],
      ['add_claim', obj({ service: 'Bad!', account: 'x' })],
      ['add_claim', obj({ service: 'web', account: '' })],
      ['add_claim', obj({ service: 'web', account: 'x'.repeat(257) })],
      ['future_op', obj({})],
    ];
    for (const b of bad) expectCode(() => verifyChain(me.key, chain([b]).map((l) => l.obj)), 'invalid_link');
    // body shape (missing/extra/wrong-typed field) is invalid_request, as for any object
    expectCode(() => chain([['add_endpoint', obj({ kind: 'nats', subject: `kez.inbox.${me.hex}`, url: 'x', extra: 1 })]]), 'invalid_request');
    expectCode(() => chain([['set_shared_files', obj({ manifest: 'ab'.repeat(32), manifest_seq: 'x', size: 1 })]]), 'invalid_request');
    // link 1 must have prev null and only link 1 may
    expectCode(() => buildLink({ seed: me.seed, prev: { seqno: 0, linkId: 'ab'.repeat(32) }, ctime: t0, op: 'add_endpoint', body: nats }), 'invalid_link');
    // manifest_seq must increase
    const two = chain([
      ['set_shared_files', obj({ manifest: 'ab'.repeat(32), manifest_seq: 5, size: 1 })],
      ['set_shared_files', obj({ manifest: 'cd'.repeat(32), manifest_seq: 5, size: 1 })],
    ]);
    expectCode(() => verifyChain(me.key, two.map((l) => l.obj)), 'invalid_link');
    // removing twice: second target is no longer live
    const ep = chain([['add_endpoint', nats]]);
    const rm1 = buildLink({ seed: me.seed, prev: pinOf(verifyChain(me.key, ep.map((l) => l.obj))), ctime: t0, op: 'remove_endpoint', body: obj({ target: ep[0]!.linkId }) });
    const rm2 = buildLink({ seed: me.seed, prev: { seqno: 2, linkId: rm1.linkId }, ctime: t0, op: 'remove_endpoint', body: obj({ target: ep[0]!.linkId }) });
    expectCode(() => verifyChain(me.key, [ep[0]!.obj, rm1.obj, rm2.obj]), 'invalid_link');
  });
  test('iroh device endpoints (§5, §7.5): device and role together, a valid node key', () => {
    const other = identityFromSeed(seedOf(12)).hex;
    const dev = '0123456789abcdef';
    const ok = chain([
      ['add_endpoint', iroh],
      ['add_endpoint', obj({ kind: 'iroh', node_id: other, device: dev, role: 'serve' })],
      ['add_endpoint', obj({ kind: 'iroh', node_id: me.hex, device: dev, role: 'fetch' })],
      ['add_endpoint', obj({ kind: 'iroh', node_id: other })], // wave-1 form: any valid key (§5)
    ]);
    expect(verifyChain(me.key, ok.map((l) => l.obj)).endpoints).toHaveLength(4);
    // Half of the pair is a shape error, as in Rust (kv-schemas/testdata/sigchain.json).
    expectCode(() => chain([['add_endpoint', obj({ kind: 'iroh', node_id: other, device: dev })]]), 'invalid_request');
    expectCode(() => chain([['add_endpoint', obj({ kind: 'iroh', node_id: other, role: 'serve' })]]), 'invalid_request');
    const bad: JsonObject[] = [
      obj({ kind: 'iroh', node_id: other, device: 'ABCDEF0123456789', role: 'serve' }),
      obj({ kind: 'iroh', node_id: other, device: dev, role: 'relay' }),
      obj({ kind: 'iroh', node_id: '00'.repeat(32), device: dev, role: 'serve' }), // small order
      obj({ kind: 'iroh', node_id: 'AB'.repeat(32), device: dev, role: 'serve' }),
    ];
    for (const b of bad) expectCode(() => verifyChain(me.key, chain([['add_endpoint', b]]).map((l) => l.obj)), 'invalid_link');
  });
  test('order, prev and chain identity', () => {
    const links = chain([['add_endpoint', nats], ['add_endpoint', iroh]]);
    expectCode(() => verifyChain(me.key, [links[1]!.obj]), 'seqno_conflict');
    expectCode(() => verifyChain(me.key, [links[0]!.obj, links[0]!.obj]), 'seqno_conflict');
    const wrongPrev = buildLink({ seed: me.seed, prev: { seqno: 1, linkId: 'ee'.repeat(32) }, ctime: t0, op: 'add_endpoint', body: iroh });
    expectCode(() => verifyChain(me.key, [links[0]!.obj, wrongPrev.obj]), 'prev_mismatch');
    const other = identityFromSeed(seedOf(13));
    expectCode(() => verifyChain(other.key, [links[0]!.obj]), 'invalid_link');
  });
  test('walk reports per-link status and stops trusting after a failure', () => {
    const links = chain([['add_endpoint', nats], ['add_endpoint', iroh], ['add_claim', obj({ service: 'web', account: 'a' })]]);
    const tampered = { ...links[1]!.obj, ctime: 5 };
    const w = walkChain(me.key, [links[0]!.obj, tampered, links[2]!.obj]);
    expect(w.links.map((l) => l.error?.code ?? 'ok')).toEqual(['ok', 'bad_signature', 'invalid_link']);
    expect(w.state.seqno).toBe(1);
    expect(w.error?.code).toBe('bad_signature');
  });
  test('embedded links must satisfy the profile', () => {
    const [l] = chain([['add_endpoint', nats]]);
    expectCode(() => verifyChain(me.key, [{ ...l!.obj, Extra: 1 }]), 'invalid_json');
  });
});

describe('per-device iroh endpoints (§7.5)', () => {
  const dev = '0123456789abcdef';
  const serve = hexEncode(endpointPublic(me.seed, dev, 'serve'));
  const fetch = hexEncode(endpointPublic(me.seed, dev, 'fetch'));
  test('device endpoints sit next to wave-1 ones and are listed per device', () => {
    const other = identityFromSeed(seedOf(12)).hex;
    const links = chain([
      ['add_endpoint', iroh],
      ['add_endpoint', irohDeviceEndpointBody(serve, dev, 'serve')],
      ['add_endpoint', irohDeviceEndpointBody(fetch, dev, 'fetch')],
      ['add_endpoint', irohEndpointBody(other)], // any valid key, not only the chain key
    ]);
    const s = verifyChain(me.key, links.map((l) => l.obj));
    expect(irohEndpoints(s).map((e) => [e.nodeId, e.device, e.role])).toEqual([
      [me.hex, undefined, undefined],
      [serve, dev, 'serve'],
      [fetch, dev, 'fetch'],
      [other, undefined, undefined],
    ]);
    expect(deviceIrohEndpoints(s, dev).map((e) => e.linkId)).toEqual([links[1]!.linkId, links[2]!.linkId]);
  });
  test('body rules: both or neither of device and role, valid values, valid key', () => {
    const body = (extra: Record<string, unknown>) => obj({ kind: 'iroh', node_id: serve, device: dev, role: 'serve', ...extra } as JsonObject);
    const without = (k: string) => {
      const b = { ...body({}) };
      delete b[k];
      return obj(b);
    };
    expectCode(() => chain([['add_endpoint', without('role')]]), 'invalid_request');
    expectCode(() => chain([['add_endpoint', without('device')]]), 'invalid_request');
    expectCode(() => chain([['add_endpoint', body({ device: 7 })]]), 'invalid_request');
    expectCode(() => chain([['add_endpoint', body({ name: 'laptop' })]]), 'invalid_request');
    expectCode(() => chain([['add_endpoint', body({ role: 'relay' })]]), 'invalid_link');
    expectCode(() => chain([['add_endpoint', body({ device: dev.toUpperCase() })]]), 'invalid_link');
    expectCode(() => chain([['add_endpoint', body({ node_id: '01' + '00'.repeat(31) })]]), 'invalid_link');
    expectCode(() => chain([['add_endpoint', body({ node_id: serve.toUpperCase() })]]), 'invalid_link');
  });
});

describe('rollback and fork detection', () => {
  const links = chain([['add_endpoint', nats], ['add_endpoint', iroh], ['add_claim', obj({ service: 'web', account: 'a' })]]);
  const pin = { seqno: 2, linkId: links[1]!.linkId };
  test('extension is fine', () => {
    checkExtends(pin, links);
    checkExtends(pin, links.slice(0, 2));
    checkExtends(null, []);
  });
  test('shorter chain is a rollback', () => {
    expectCode(() => checkExtends(pin, links.slice(0, 1)), 'chain_rollback');
  });
  test('different link at the pinned seqno is a fork', () => {
    const forked = chain([['add_endpoint', nats], ['add_claim', obj({ service: 'web', account: 'b' })]]);
    expectCode(() => checkExtends(pin, forked), 'chain_fork');
  });
  test('verifyExtending (own endpoints, shared files) fails hard on a rollback or fork', () => {
    const bytes = (ls: Link[]) => ls.map((l) => l.bytes);
    expect(verifyExtending(me.key, bytes(links), pin).seqno).toBe(3);
    expect(verifyExtending(me.key, bytes(links), null).seqno).toBe(3);
    expectCode(() => verifyExtending(me.key, bytes(links.slice(0, 1)), pin), 'chain_rollback');
    const forked = chain([['add_endpoint', nats], ['add_claim', obj({ service: 'web', account: 'b' })]]);
    expectCode(() => verifyExtending(me.key, bytes(forked), pin), 'chain_fork');
  });
});

describe('server append', () => {
  test('extends the tail within the time window', () => {
    const [l1, l2] = chain([['add_endpoint', nats], ['add_endpoint', iroh]]);
    const s1 = checkAppend(emptyState(me.key), l1!.bytes, t0).state;
    expect(checkAppend(s1, l2!.bytes, t0).state.seqno).toBe(2);
    expectCode(() => checkAppend(s1, l1!.bytes, t0), 'seqno_conflict');
    expectCode(() => checkAppend(s1, l2!.bytes, t0 + 400_000), 'stale_timestamp');
    expect(applyLink(emptyState(me.key), l1!).seqno).toBe(1);
  });
});
