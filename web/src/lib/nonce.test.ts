import { describe, expect, test } from 'vitest';
import { isSignableNonce, kezAuthenticator, signNonce } from './nonce';
import { identityFromSeed, nkeyPublic } from './keys';
import { b64uDecode, fromUtf8, utf8 } from './encoding';
import { verifyStrict, signingInput } from './sign';
import { obj } from './jcs';
import { expectCode, seedOf } from './test/util';

const me = identityFromSeed(seedOf(51));

describe('NATS nonce rule', () => {
  test('accepts 12–24 chars of [A-Za-z0-9_-] (nats-server sends 15)', () => {
    for (const n of ['abcdefghijkl', 'AbC-_1234567890', 'x'.repeat(24)]) expect(isSignableNonce(n)).toBe(true);
  });
  test('refuses empty, short, long, other characters, and a KEZ signing input', () => {
    const kez = fromUtf8(signingInput('sigchain.link', obj({ type: 'kez.sigchain.link' })));
    for (const n of [undefined, '', 'short', 'x'.repeat(25), 'abcdefghijk=', 'abcdefghijk+', 'abc def ghijk', kez, 'abcdefghijkl\n']) {
      expect(isSignableNonce(n)).toBe(false);
      expectCode(() => signNonce(me.seed, n), 'bad_nonce');
    }
  });
  test('authenticator sends U… nkey and a base64url signature over the raw nonce', () => {
    const auth = kezAuthenticator(me.seed);
    const nonce = 'Xy1_abcDEF12345';
    const r = auth(nonce);
    expect(r.nkey).toBe(nkeyPublic(me.pk));
    expect(r.sig).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect(verifyStrict(b64uDecode(r.sig, 'sig', 64), utf8(nonce), me.pk)).toBe(true);
    expectCode(() => auth(undefined), 'bad_nonce');
    expectCode(() => auth(''), 'bad_nonce');
  });
});
