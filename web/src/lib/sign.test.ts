import { describe, expect, test } from 'vitest';
import { ed25519, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { signBytes, signingInput, signObject, verifyObject, verifyStrict } from './sign';
import { b64uDecode, b64uEncode, concatBytes, fromUtf8, hexDecode, utf8 } from './encoding';
import { obj } from './jcs';
import { identityFromSeed } from './keys';
import { expectCode, seedOf } from './test/util';

const Point = ed25519.Point;
const L = Point.Fn.ORDER;
const alice = identityFromSeed(seedOf(7));

describe('signing input', () => {
  test('exact bytes: prefix, NUL, purpose, NUL, JCS without sig', () => {
    const o = obj({ type: 'kez.msg', b: 2, a: 1, sig: 'zzz' });
    const s = signingInput('msg', o);
    expect(fromUtf8(s)).toBe('kez-sig-v1\0msg\0{"a":1,"b":2,"type":"kez.msg"}');
    expect(s[10]).toBe(0); // §2.2: byte 10 of every KEZ input is NUL
  });
  test('purposes are a closed list', () => {
    expectCode(() => signingInput('nats' as never, obj({})), 'wrong_type');
  });
});

describe('sign/verify objects', () => {
  const o = obj({ type: 'kez.register', v: 1, x: 'hello' });
  test('round trip', () => {
    const s = signObject(alice.seed, 'register', o);
    verifyObject('register', s, alice.pk);
    expect(b64uDecode(s.sig as string)).toHaveLength(64);
  });
  test('tampering any field fails', () => {
    const s = signObject(alice.seed, 'register', o);
    expectCode(() => verifyObject('register', { ...s, x: 'hellO' }, alice.pk), 'bad_signature');
    expectCode(() => verifyObject('register', s, identityFromSeed(seedOf(8)).pk), 'bad_signature');
    const sig = b64uDecode(s.sig as string);
    sig[0]! ^= 1;
    expectCode(() => verifyObject('register', { ...s, sig: b64uEncode(sig) }, alice.pk), 'bad_signature');
  });
  test('purpose comes from the code path: same object under another purpose fails', () => {
    const s = signObject(alice.seed, 'register', o);
    expectCode(() => verifyObject('manifest', s, alice.pk), 'wrong_type');
    const relabeled = { ...s, type: 'kez.manifest' };
    expectCode(() => verifyObject('manifest', relabeled, alice.pk), 'bad_signature');
  });
  test('malformed sig is invalid_encoding', () => {
    const s = signObject(alice.seed, 'register', o);
    expectCode(() => verifyObject('register', { ...s, sig: (s.sig as string) + '=' }, alice.pk), 'invalid_encoding');
    expectCode(() => verifyObject('register', { ...s, sig: 'AAAA' }, alice.pk), 'invalid_encoding');
  });
});

describe('strict verification (= dalek verify_strict)', () => {
  const msg = utf8('message');
  const { scalar: a } = ed25519.utils.getExtendedPublicKey(alice.seed);

  function forge(pkBytes: Uint8Array, rBytes: Uint8Array, r: bigint, m: Uint8Array): Uint8Array {
    const k = bytesToNumberLE(sha512(concatBytes(rBytes, pkBytes, m))) % L;
    return concatBytes(rBytes, numberToBytesLE((r + k * a) % L, 32));
  }

  test('agrees with noble on honest signatures', () => {
    for (let i = 0; i < 5; i++) {
      const m = utf8(`m${i}`);
      const sig = signBytes(alice.seed, m);
      expect(verifyStrict(sig, m, alice.pk)).toBe(true);
      expect(ed25519.verify(sig, m, alice.pk, { zip215: false })).toBe(true);
      expect(verifyStrict(sig, utf8(`x${i}`), alice.pk)).toBe(false);
    }
  });
  test('S + L (scalar malleability) is rejected', () => {
    const sig = signBytes(alice.seed, msg);
    const s = bytesToNumberLE(sig.subarray(32)) + L;
    const bad = concatBytes(sig.subarray(0, 32), numberToBytesLE(s, 32));
    expect(verifyStrict(bad, msg, alice.pk)).toBe(false);
  });
  test('small-order R is rejected even though the equation holds (noble alone accepts it)', () => {
    const R = hexDecode(ED25519_TORSION_SUBGROUP[0]!); // identity
    const sig = forge(alice.pk, R, 0n, msg);
    expect(ed25519.verify(sig, msg, alice.pk, { zip215: false })).toBe(true);
    expect(verifyStrict(sig, msg, alice.pk)).toBe(false);
  });
  test('small-order public keys are rejected', () => {
    for (const h of ED25519_TORSION_SUBGROUP) {
      expect(verifyStrict(new Uint8Array(64), msg, hexDecode(h))).toBe(false);
    }
  });
  test('mixed-order key: cofactorless equation decides (noble is cofactored)', () => {
    const T = Point.fromBytes(hexDecode(ED25519_TORSION_SUBGROUP[1]!)); // order 8
    const Aprime = Point.BASE.multiply(a).add(T).toBytes();
    let sawReject = false;
    let sawAccept = false;
    for (let i = 0; i < 64 && !(sawReject && sawAccept); i++) {
      const m = utf8(`mixed ${i}`);
      const r = 12345n + BigInt(i);
      const R = Point.BASE.multiply(r).toBytes();
      const sig = forge(Aprime, R, r, m);
      const k = bytesToNumberLE(sha512(concatBytes(R, Aprime, m))) % L;
      expect(ed25519.verify(sig, m, Aprime, { zip215: false })).toBe(true);
      const strict = verifyStrict(sig, m, Aprime);
      expect(strict).toBe(k % 8n === 0n);
      if (strict) sawAccept = true;
      else sawReject = true;
    }
    expect(sawReject).toBe(true);
  });
  test('non-canonical R is rejected', () => {
    const sig = signBytes(alice.seed, msg);
    const bad = sig.slice();
    bad[31]! |= 0x80; // flips the x sign: different point, fails
    expect(verifyStrict(bad, msg, alice.pk)).toBe(false);
    expect(verifyStrict(sig.subarray(0, 63), msg, alice.pk)).toBe(false);
  });
});
