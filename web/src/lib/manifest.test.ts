import { describe, expect, test } from 'vitest';
import { buildManifest, entriesForMe, manifestHash, parseManifest, verifyManifest } from './manifest';
import { buildEntry } from './files';
import { identityFromSeed } from './keys';
import { emptyState, type ChainState } from './sigchain';
import { fromUtf8, utf8 } from './encoding';
import { jcsBytes, obj, parseCanonical, type JsonObject } from './jcs';
import { signObject } from './sign';
import { expectCode, seedOf } from './test/util';

const owner = identityFromSeed(seedOf(41));
const bob = identityFromSeed(seedOf(42));
const carol = identityFromSeed(seedOf(43));
const pt = utf8('data');
const e1 = buildEntry({ plaintext: pt, name: 'for-bob.txt', ownerSeed: owner.seed, recipients: [bob.pk] }).entry;
const e2 = buildEntry({ plaintext: pt, name: 'for-carol.txt', ownerSeed: owner.seed, recipients: [carol.pk] }).entry;
const e3 = buildEntry({ plaintext: pt, name: 'for-both.txt', ownerSeed: owner.seed, recipients: [carol.pk, bob.pk] }).entry;
const m = buildManifest({ seed: owner.seed, seq: 3, ctime: 1_760_000_000_000, entries: [e1, e2, e3] });

function stateFor(hash: string, seq: number, key = owner.key): ChainState {
  return { ...emptyState(key), seqno: 1, tail: 'aa'.repeat(32), sharedFiles: obj({ manifest: hash, manifest_seq: seq, size: 1 }) };
}

describe('manifest', () => {
  test('verifies against the sigchain pointer and lists only my entries', () => {
    const v = verifyManifest(m.bytes, stateFor(m.hash, 3));
    expect(v.entries).toHaveLength(3);
    expect(entriesForMe(v, bob.seed).map((o) => o.meta.name)).toEqual(['for-bob.txt', 'for-both.txt']);
    expect(entriesForMe(v, carol.seed).map((o) => o.meta.name)).toEqual(['for-carol.txt', 'for-both.txt']);
    expect(entriesForMe(v, owner.seed)).toEqual([]);
  });
  test('hash, seq, owner and presence of set_shared_files are enforced', () => {
    expectCode(() => verifyManifest(m.bytes, stateFor('00'.repeat(32), 3)), 'invalid_manifest');
    expectCode(() => verifyManifest(m.bytes, stateFor(m.hash, 4)), 'invalid_manifest');
    expectCode(() => verifyManifest(m.bytes, stateFor(m.hash, 3, bob.key)), 'invalid_manifest');
    expectCode(() => verifyManifest(m.bytes, emptyState(owner.key)), 'manifest_not_found');
  });
  test('signature, canonical form and shape', () => {
    const o = parseCanonical(m.bytes) as JsonObject;
    const tampered = jcsBytes({ ...o, ctime: 1 });
    expectCode(() => verifyManifest(tampered, stateFor(manifestHash(tampered), 3)), 'bad_signature');
    const spaced = utf8(fromUtf8(m.bytes) + ' ');
    expectCode(() => parseManifest(spaced), 'not_canonical');
    const extra = jcsBytes(signObject(owner.seed, 'manifest', obj({ ...o, extra: 1 })));
    expectCode(() => parseManifest(extra), 'invalid_request');
    const wt = jcsBytes(signObject(owner.seed, 'manifest', obj({ ...o, type: 'kez.msg' })));
    expectCode(() => parseManifest(wt), 'wrong_type');
    expectCode(() => parseManifest(new Uint8Array(256 * 1024 + 1)), 'too_large');
  });
});
