import { describe, expect, test } from 'vitest';
import { buildRegistration, verifyRegistration } from './register';
import { fromUtf8, utf8 } from './encoding';
import { jcsBytes, obj, parseCanonical, type JsonObject } from './jcs';
import { identityFromSeed } from './keys';
import { signObject } from './sign';
import { expectCode, seedOf } from './test/util';

const seed = seedOf(9);
const now = 1_760_000_000_000;
const nonce = new Uint8Array(16).fill(1);
const base = () => buildRegistration({ seed, aud: 'kez.lat', handle: 'alice@kez.lat', ts: now, nonce });

function resign(o: JsonObject, changes: Record<string, unknown>): Uint8Array {
  return jcsBytes(signObject(seed, 'register', obj({ ...o, ...changes } as JsonObject)));
}

describe('registration', () => {
  test('builds the exact §4 shape in JCS order and verifies', () => {
    const r = base();
    const text = fromUtf8(r.bytes);
    expect(text).toMatch(/^\{"aud":"kez.lat","handle":"alice@kez.lat","key":"ed25519:[0-9a-f]{64}","nonce":"AQEBAQEBAQEBAQEBAQEBAQ","sig":"[A-Za-z0-9_-]{86}","ts":\d+,"type":"kez.register","v":1\}$/);
    const v = verifyRegistration(r.bytes, 'kez.lat', now + 1000);
    expect(v.handle).toBe('alice@kez.lat');
    expect(v.key).toBe(identityFromSeed(seed).key);
  });
  test('each server check has its own code', () => {
    const r = base();
    const o = parseCanonical(r.bytes) as JsonObject;
    expectCode(() => verifyRegistration(new Uint8Array(5000), 'kez.lat', now), 'too_large');
    expectCode(() => verifyRegistration(utf8(' ' + fromUtf8(r.bytes)), 'kez.lat', now), 'not_canonical');
    expectCode(() => verifyRegistration(resign(o, { extra: 1 }), 'kez.lat', now), 'invalid_request');
    expectCode(() => verifyRegistration(resign(o, { v: 2 }), 'kez.lat', now), 'wrong_type');
    expectCode(() => verifyRegistration(r.bytes, 'other.lat', now), 'wrong_audience');
    expectCode(() => verifyRegistration(resign(o, { handle: 'alice@other.lat' }), 'kez.lat', now), 'wrong_audience');
    expectCode(() => verifyRegistration(resign(o, { handle: 'Alice@kez.lat' }), 'kez.lat', now), 'invalid_handle');
    expectCode(() => verifyRegistration(resign(o, { handle: 'admin@kez.lat' }), 'kez.lat', now), 'handle_reserved');
    expectCode(() => verifyRegistration(resign(o, { key: 'ed25519:' + '00'.repeat(32) }), 'kez.lat', now), 'invalid_key');
    expectCode(() => verifyRegistration(resign(o, { key: identityFromSeed(seedOf(10)).key }), 'kez.lat', now), 'bad_signature');
    expectCode(() => verifyRegistration(resign(o, { nonce: 'AQ' }), 'kez.lat', now), 'invalid_encoding');
    expectCode(() => verifyRegistration(r.bytes, 'kez.lat', now + 300_001), 'stale_timestamp');
    expectCode(() => verifyRegistration(r.bytes, 'kez.lat', now - 300_001), 'stale_timestamp');
    expect(verifyRegistration(r.bytes, 'kez.lat', now + 300_000).handle).toBe('alice@kez.lat');
  });
  test('builder refuses non-canonical handles', () => {
    expectCode(() => buildRegistration({ seed, aud: 'kez.lat', handle: 'Alice@kez.lat', ts: now }), 'invalid_handle');
  });
});
