import { describe, expect, test } from 'vitest';
import { ed25519, ED25519_TORSION_SUBGROUP, x25519 } from '@noble/curves/ed25519.js';
import { fromSeed, fromPublic } from '@nats-io/nkeys';
import {
  crc16xmodem,
  generateSeed,
  identityFromSeed,
  isValidPublicKey,
  keyString,
  MnemonicError,
  mnemonicToSeed,
  nkeyPublic,
  nkeySeed,
  parseKeyHex,
  parseKeyString,
  parseNkeyPublic,
  parseNkeySeed,
  publicKeyOf,
  seedToMnemonic,
  x25519PublicFromEd,
  x25519SecretFromSeed,
} from './keys';
import { hexDecode, hexEncode, utf8 } from './encoding';
import { expectCode, seedOf } from './test/util';

const ZERO_WORDS = 'abandon '.repeat(23) + 'art';

describe('mnemonic (seed = BIP-39 entropy)', () => {
  test('BIP-39 reference vectors for 256-bit entropy', () => {
    expect(seedToMnemonic(new Uint8Array(32))).toBe(ZERO_WORDS);
    expect(seedToMnemonic(new Uint8Array(32).fill(0xff))).toBe('zoo '.repeat(23) + 'vote');
    expect(seedToMnemonic(new Uint8Array(32).fill(0x7f))).toBe(
      'legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title',
    );
  });
  test('round trip of random seeds; input normalised (case, whitespace)', () => {
    for (let i = 0; i < 20; i++) {
      const s = generateSeed();
      const m = seedToMnemonic(s);
      expect(m.split(' ')).toHaveLength(24);
      expect(mnemonicToSeed(m)).toEqual(s);
      expect(mnemonicToSeed(`  ${m.toUpperCase().replace(/ /g, ' \n\t ')}  `)).toEqual(s);
    }
  });
  test('wrong word count', () => {
    const e = expectCode(() => mnemonicToSeed('abandon '.repeat(12)), 'invalid_mnemonic') as MnemonicError;
    expect(e.problem).toEqual({ kind: 'word_count', count: 12 });
    expect(e.message).toContain('24');
  });
  test('unknown word names its position', () => {
    const words = ZERO_WORDS.split(' ');
    words[6] = 'abandonn';
    const e = expectCode(() => mnemonicToSeed(words.join(' ')), 'invalid_mnemonic') as MnemonicError;
    expect(e.problem).toEqual({ kind: 'unknown_word', position: 7, word: 'abandonn' });
  });
  test('non-ASCII case folding is not applied (Kelvin sign K)', () => {
    const words = ZERO_WORDS.split(' ');
    words[0] = '\u212Aey'; // would lowercase to "key" with full Unicode folding
    const e = expectCode(() => mnemonicToSeed(words.join(' ')), 'invalid_mnemonic') as MnemonicError;
    expect(e.problem.kind).toBe('unknown_word');
  });
  test('bad checksum', () => {
    const e = expectCode(() => mnemonicToSeed('abandon '.repeat(24)), 'invalid_mnemonic') as MnemonicError;
    expect(e.problem).toEqual({ kind: 'checksum' });
  });
  test('is not PBKDF2 mnemonicToSeed: the seed is 32 bytes of entropy', () => {
    expect(mnemonicToSeed(ZERO_WORDS)).toEqual(new Uint8Array(32));
  });
});

describe('Ed25519 keys', () => {
  test('RFC 8032 TEST 1 public key', () => {
    const seed = hexDecode('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    expect(hexEncode(publicKeyOf(seed))).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  });
  test('key strings', () => {
    const id = identityFromSeed(seedOf(1));
    expect(id.key).toBe('ed25519:' + id.hex);
    expect(parseKeyString(id.key)).toEqual(id.pk);
    expect(parseKeyHex(id.hex)).toEqual(id.pk);
    expectCode(() => parseKeyString('ED25519:' + id.hex), 'invalid_key');
    expectCode(() => parseKeyString('ed25519:' + id.hex.toUpperCase()), 'invalid_key');
    expectCode(() => parseKeyString('ed25519:' + id.hex.slice(2)), 'invalid_key');
    expectCode(() => parseKeyString(42), 'invalid_key');
  });
  test('§2.1 rejects every small-order point', () => {
    for (const h of ED25519_TORSION_SUBGROUP) {
      const pk = hexDecode(h);
      expect(isValidPublicKey(pk), h).toBe(false);
      expectCode(() => parseKeyString(keyString(pk)), 'invalid_key');
    }
  });
  test('§2.1 rejects non-canonical encodings (y >= p) and x=0 with the sign bit', () => {
    // y + p for small y that lies on the curve: decodes under ZIP-215 but does not re-encode the same
    let found = 0;
    for (let y = 0; y < 19; y++) {
      const enc = new Uint8Array(32);
      let v = (1n << 255n) - 19n + BigInt(y);
      for (let i = 0; i < 32; i++) {
        enc[i] = Number(v & 0xffn);
        v >>= 8n;
      }
      let decodable = true;
      try {
        ed25519.Point.fromBytes(enc, true);
      } catch {
        decodable = false;
      }
      if (decodable) found++;
      expect(isValidPublicKey(enc)).toBe(false);
    }
    expect(found).toBeGreaterThan(0);
    const identityWithSign = new Uint8Array(32);
    identityWithSign[0] = 1;
    identityWithSign[31] = 0x80;
    expect(isValidPublicKey(identityWithSign)).toBe(false);
  });
  test('mixed-order keys are canonical and not small order, so accepted by the key rule', () => {
    const pk = publicKeyOf(seedOf(2));
    const mixed = ed25519.Point.fromBytes(pk).add(ed25519.Point.fromBytes(hexDecode(ED25519_TORSION_SUBGROUP[1]!))).toBytes();
    expect(isValidPublicKey(mixed)).toBe(true);
  });
  test('random valid keys pass; wrong lengths fail', () => {
    for (let i = 0; i < 10; i++) expect(isValidPublicKey(publicKeyOf(generateSeed()))).toBe(true);
    expect(isValidPublicKey(new Uint8Array(31))).toBe(false);
  });
});

describe('X25519 from Ed25519', () => {
  test('RFC 8032 test 1 and 2 public keys map as computed independently', () => {
    expect(hexEncode(x25519PublicFromEd(hexDecode('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')))).toBe(
      'd85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e',
    );
    expect(hexEncode(x25519PublicFromEd(hexDecode('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c')))).toBe(
      '25c704c594b88afc00a76b69d1ed2b984d7e22550f3ed0802d04fbcd07d38d47',
    );
  });
  test('secret and public agree; ECDH agrees both ways', () => {
    const a = seedOf(3);
    const b = seedOf(4);
    expect(x25519.getPublicKey(x25519SecretFromSeed(a))).toEqual(x25519PublicFromEd(publicKeyOf(a)));
    const ab = x25519.getSharedSecret(x25519SecretFromSeed(a), x25519PublicFromEd(publicKeyOf(b)));
    const ba = x25519.getSharedSecret(x25519SecretFromSeed(b), x25519PublicFromEd(publicKeyOf(a)));
    expect(ab).toEqual(ba);
  });
});

describe('nkeys', () => {
  test('CRC-16/XMODEM check value', () => {
    expect(crc16xmodem(utf8('123456789'))).toBe(0x31c3);
  });
  test('U… and SU… equal @nats-io/nkeys for random seeds', () => {
    for (let i = 0; i < 10; i++) {
      const seed = generateSeed();
      const su = nkeySeed(seed);
      expect(su).toMatch(/^SU[A-Z2-7]{56}$/);
      const kp = fromSeed(utf8(su));
      const u = nkeyPublic(publicKeyOf(seed));
      expect(u).toMatch(/^U[A-Z2-7]{55}$/);
      expect(kp.getPublicKey()).toBe(u);
      expect(fromPublic(u).getPublicKey()).toBe(u);
      expect(parseNkeyPublic(u)).toEqual(publicKeyOf(seed));
      expect(parseNkeySeed(su)).toEqual(seed);
    }
  });
  test('decoding rejects checksum errors and wrong prefixes', () => {
    const u = nkeyPublic(publicKeyOf(seedOf(5)));
    const flipped = u.slice(0, 10) + (u[10] === 'A' ? 'B' : 'A') + u.slice(11);
    expectCode(() => parseNkeyPublic(flipped), 'invalid_encoding');
    expectCode(() => parseNkeyPublic(nkeySeed(seedOf(5))), 'invalid_encoding');
    expectCode(() => parseNkeySeed(u), 'invalid_encoding');
  });
});
