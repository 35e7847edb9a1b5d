import { describe, expect, test } from 'vitest';
import { x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { messageKey, open, pad, parseSent, seal, textBody, unpad, type OpenParams } from './envelope';
import { x25519Shared } from './kem';
import { b64uDecode, b64uEncode, concatBytes, fromUtf8, utf8 } from './encoding';
import { jcsBytes, obj, parseCanonical, type JsonObject } from './jcs';
import { identityFromSeed, x25519PublicFromEd } from './keys';
import { signObject } from './sign';
import { expectCode, seedOf } from './test/util';

const alice = identityFromSeed(seedOf(21));
const bob = identityFromSeed(seedOf(22));
const carol = identityFromSeed(seedOf(23));
const now = 1_760_000_000_000;
const DAY = 86_400_000;
const params = (over: Partial<OpenParams> = {}): OpenParams => ({ mySeed: bob.seed, now, retentionMs: 7 * DAY, ...over });
const AAD = concatBytes(utf8('kez-v1/msg'), Uint8Array.of(0, 1));

/** Encrypts an arbitrary inner plaintext for bob the way seal does (for malformed-inner tests). */
function rawEnvelope(plain: Uint8Array, e = new Uint8Array(32).fill(5), padIt = true): { outer: Uint8Array; enc: string } {
  const E = x25519.getPublicKey(e);
  const xR = x25519PublicFromEd(bob.pk);
  const key = messageKey(x25519Shared(e, xR, 'invalid_key'), E, xR, bob.pk);
  const ct = chacha20poly1305(key, new Uint8Array(12), AAD).encrypt(padIt ? pad(plain) : plain);
  return { outer: jcsBytes(obj({ v: 1, enc: b64uEncode(E), ct: b64uEncode(ct) })), enc: b64uEncode(E) };
}

function innerFor(enc: string, over: Record<string, unknown> = {}, seed = alice.seed): Uint8Array {
  const o = obj({ type: 'kez.msg', v: 1, from: alice.key, to: bob.key, enc, id: b64uEncode(new Uint8Array(16)), ts: now, kind: 'text', body: textBody('hi'), ...over } as JsonObject);
  return jcsBytes(signObject(seed, 'msg', o));
}

describe('seal/open', () => {
  test('round trip; outer is JCS {ct,enc,v}; padded to 256', () => {
    const s = seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('hello Bob'), ts: now });
    expect(fromUtf8(s.outer)).toMatch(/^\{"ct":"[A-Za-z0-9_-]+","enc":"[A-Za-z0-9_-]{43}","v":1\}$/);
    const ct = b64uDecode((parseCanonical(s.outer) as JsonObject).ct as string);
    expect((ct.length - 16) % 256).toBe(0);
    const o = open(s.outer, params());
    expect(o.from).toBe(alice.key);
    expect(o.body.text).toBe('hello Bob');
    expect(o.kind).toBe('text');
    expect(o.id).toBe(s.id);
  });
  test('deterministic with injected randomness', () => {
    const p = { senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text' as const, body: textBody('x'), ts: now, id: new Uint8Array(16), ephemeral: new Uint8Array(32).fill(9) };
    expect(seal(p).outer).toEqual(seal(p).outer);
  });
  test('padding: exact multiples get no extra block, JCS never ends in NUL', () => {
    expect(pad(new Uint8Array(256))).toHaveLength(256);
    expect(pad(new Uint8Array(257))).toHaveLength(512);
    expect(pad(new Uint8Array(1))).toHaveLength(256);
    expect(unpad(Uint8Array.of(1, 2, 0, 0))).toEqual(Uint8Array.of(1, 2));
  });
  test('text length bounds', () => {
    expectCode(() => seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody(''), ts: now }), 'invalid_request');
    expectCode(() => seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('x'.repeat(16385)), ts: now }), 'invalid_request');
    seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('é'.repeat(16384)), ts: now });
    // 16384 four-byte characters are within the text bound but not within the 64 KiB envelope bound
    expectCode(() => seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('😀'.repeat(16384)), ts: now }), 'too_large');
  });
});

describe('receiver steps fail closed with distinct codes', () => {
  const good = () => seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('hi'), ts: now });
  test('1. outer: canonical, exact keys, v, enc length', () => {
    const s = good();
    const o = parseCanonical(s.outer) as JsonObject;
    expectCode(() => open(utf8(fromUtf8(s.outer) + '\n'), params()), 'not_canonical');
    expectCode(() => open(utf8('{"ct":"AA","enc":"AA","enc":"AA","v":1}'), params()), 'invalid_json');
    expectCode(() => open(jcsBytes({ ...o, x: 1 }), params()), 'invalid_request');
    expectCode(() => open(jcsBytes({ ...o, v: 2 }), params()), 'wrong_type');
    expectCode(() => open(jcsBytes({ ...o, enc: 'AAAA' }), params()), 'invalid_encoding');
    expectCode(() => open(new Uint8Array(65537), params()), 'too_large');
  });
  test('2. decrypt: wrong key, tampered ct, all-zero/low-order enc', () => {
    const s = good();
    expectCode(() => open(s.outer, params({ mySeed: carol.seed })), 'decrypt_failed');
    const o = parseCanonical(s.outer) as JsonObject;
    const ct = b64uDecode(o.ct as string);
    ct[5]! ^= 1;
    expectCode(() => open(jcsBytes({ ...o, ct: b64uEncode(ct) }), params()), 'decrypt_failed');
    expectCode(() => open(jcsBytes({ ...o, enc: b64uEncode(new Uint8Array(32)) }), params()), 'decrypt_failed');
  });
  test('3. inner must be canonical with exact keys', () => {
    const { outer } = rawEnvelope(utf8('{"a": 1}'));
    expectCode(() => open(outer, params()), 'not_canonical');
    const r = rawEnvelope(new Uint8Array(0));
    const extra = rawEnvelope(innerFor(r.enc, { extra: 1 }));
    expectCode(() => open(extra.outer, params()), 'invalid_request');
    const wt = rawEnvelope(innerFor(r.enc, { type: 'kez.register' }));
    expectCode(() => open(wt.outer, params()), 'wrong_type');
  });
  test('4. wrong recipient (surreptitious forwarding) and enc mismatch', () => {
    const r = rawEnvelope(new Uint8Array(0));
    const fwd = rawEnvelope(innerFor(r.enc, { to: carol.key }));
    expectCode(() => open(fwd.outer, params()), 'wrong_recipient');
    const mism = rawEnvelope(innerFor(b64uEncode(new Uint8Array(32).fill(1))));
    expectCode(() => open(mism.outer, params()), 'enc_mismatch');
  });
  test('5. bad signature or bad sender key', () => {
    const r = rawEnvelope(new Uint8Array(0));
    const forged = rawEnvelope(innerFor(r.enc, {}, carol.seed));
    expectCode(() => open(forged.outer, params()), 'bad_signature');
    const badKey = rawEnvelope(innerFor(r.enc, { from: 'ed25519:' + '00'.repeat(32) }));
    expectCode(() => open(badKey.outer, params()), 'bad_signature');
  });
  test('6. timestamps: 5 minutes ahead, W behind', () => {
    const s = good();
    expectCode(() => open(s.outer, params({ now: now - 300_001 })), 'stale_timestamp');
    open(s.outer, params({ now: now - 300_000 }));
    expectCode(() => open(s.outer, params({ now: now + 7 * DAY + 1 })), 'stale_timestamp');
    open(s.outer, params({ now: now + 7 * DAY }));
  });
  test('7. replay', () => {
    const s = good();
    const seen = new Set<string>();
    const check = (f: string, id: string) => {
      const k = `${f}/${id}`;
      const was = seen.has(k);
      seen.add(k);
      return was;
    };
    open(s.outer, params({ seen: check }));
    expectCode(() => open(s.outer, params({ seen: check })), 'replayed');
  });
});

describe('sent copies (§6.1)', () => {
  const hi = textBody('hi');
  const sentTo = (peer: string, over: Record<string, unknown> = {}) =>
    obj({ peer, id: b64uEncode(new Uint8Array(16).fill(7)), kind: 'text', body: hi, ...over } as JsonObject);
  /** A sent body sealed by `from` to bob (seal() refuses those shapes, so build them raw). */
  function sealedToBob(body: JsonObject, from = bob): Uint8Array {
    const e = new Uint8Array(32).fill(6);
    const { enc } = rawEnvelope(new Uint8Array(0), e);
    const inner = obj({ type: 'kez.msg', v: 1, from: from.key, to: bob.key, enc, id: b64uEncode(new Uint8Array(16).fill(8)), ts: now, kind: 'sent', body } as JsonObject);
    return rawEnvelope(jcsBytes(signObject(from.seed, 'msg', inner)), e).outer;
  }
  test('own key to own key: opens with the original inside', () => {
    const s = seal({ senderSeed: bob.seed, recipientPk: bob.pk, kind: 'sent', body: sentTo(carol.key), ts: now });
    const o = open(s.outer, params());
    expect(o.kind).toBe('sent');
    expect(parseSent(o.body)).toEqual({ peer: carol.key, peerHex: carol.hex, id: b64uEncode(new Uint8Array(16).fill(7)), kind: 'text', body: { text: 'hi' } });
  });
  test('from another key: invalid_request, also when it verifies', () => {
    expectCode(() => open(sealedToBob(sentTo(carol.key), alice), params()), 'invalid_request');
    // seal refuses to make one
    expectCode(() => seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'sent', body: sentTo(carol.key), ts: now }), 'invalid_request');
  });
  test('nested, bad peer, extra key, bad id, bad inner body', () => {
    expectCode(() => open(sealedToBob(sentTo(carol.key, { kind: 'sent', body: sentTo(carol.key) })), params()), 'invalid_request');
    expectCode(() => open(sealedToBob(sentTo('ed25519:00')), params()), 'invalid_key');
    expectCode(() => open(sealedToBob(sentTo('ed25519:' + '00'.repeat(32))), params()), 'invalid_key');
    expectCode(() => open(sealedToBob(sentTo(carol.key, { ts: 1 })), params()), 'invalid_request');
    expectCode(() => open(sealedToBob(sentTo(carol.key, { id: 'AAAA' })), params()), 'invalid_encoding');
    expectCode(() => open(sealedToBob(sentTo(carol.key, { body: textBody('') })), params()), 'invalid_request');
    open(sealedToBob(sentTo(carol.key)), params()); // the same builder with a good body opens
  });
});
