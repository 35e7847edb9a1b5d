/**
 * Keys (PROTOCOL.md §2): one 32-byte Ed25519 seed is the user.
 *
 * - seed ↔ 24-word BIP-39 mnemonic (the seed IS the 256-bit entropy);
 * - Ed25519 public key, `ed25519:<hex>` strings, strict key validation (§2.1);
 * - NATS nkeys `U…`/`SU…` (prefix byte, payload, CRC-16/XMODEM LE, base32 no pad);
 * - X25519 public key = to_montgomery(A), secret = clamp(SHA-512(seed)[0..32]).
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { base32nopad } from '@scure/base';
import { entropyToMnemonic, mnemonicToEntropy } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { fail, KezError } from './errors';
import { bytesEqual, concatBytes, hexDecode, hexEncode, randomBytes } from './encoding';

export const SEED_LEN = 32;
export const KEY_PREFIX = 'ed25519:';

// ---------------------------------------------------------------- mnemonic

export type MnemonicProblem =
  | { kind: 'word_count'; count: number }
  | { kind: 'unknown_word'; position: number; word: string }
  | { kind: 'checksum' };

/** A mnemonic that does not decode; `problem` says exactly why (positions are 1-based). */
export class MnemonicError extends KezError {
  constructor(readonly problem: MnemonicProblem) {
    super('invalid_mnemonic', describeMnemonicProblem(problem));
  }
}

function describeMnemonicProblem(p: MnemonicProblem): string {
  switch (p.kind) {
    case 'word_count':
      return `expected 24 words, got ${p.count}`;
    case 'unknown_word':
      return `word ${p.position} ("${p.word}") is not in the BIP-39 English word list`;
    case 'checksum':
      return 'the words do not match their checksum: one of them is wrong or out of order';
  }
}

const WORD_INDEX = new Map(wordlist.map((w, i) => [w, i] as const));

/** The English BIP-39 list (for input suggestions). */
export const WORDLIST: readonly string[] = wordlist;

/**
 * Normalises user input: ASCII-lowercase, split on ASCII whitespace (U+0009,
 * U+000A, U+000C, U+000D, U+0020; not U+000B or any non-ASCII space). Non-ASCII
 * letters are not folded (no Unicode case mapping), so such a word is simply unknown.
 */
export function splitMnemonic(input: string): string[] {
  return input
    .replace(/[A-Z]/g, (c) => c.toLowerCase())
    .split(/[ \t\n\r\f]+/)
    .filter((w) => w.length > 0);
}

export function seedToMnemonic(seed: Uint8Array): string {
  if (seed.length !== SEED_LEN) fail('invalid_key', 'a seed is 32 bytes');
  return entropyToMnemonic(seed, wordlist);
}

/** Mnemonic → seed (BIP-39 entropy). Throws MnemonicError. */
export function mnemonicToSeed(input: string): Uint8Array {
  const words = splitMnemonic(input);
  if (words.length !== 24) throw new MnemonicError({ kind: 'word_count', count: words.length });
  words.forEach((w, i) => {
    if (!WORD_INDEX.has(w)) throw new MnemonicError({ kind: 'unknown_word', position: i + 1, word: w });
  });
  try {
    return mnemonicToEntropy(words.join(' '), wordlist);
  } catch {
    throw new MnemonicError({ kind: 'checksum' });
  }
}

// ---------------------------------------------------------------- Ed25519

export function generateSeed(): Uint8Array {
  return randomBytes(SEED_LEN);
}

export function publicKeyOf(seed: Uint8Array): Uint8Array {
  if (seed.length !== SEED_LEN) fail('invalid_key', 'a seed is 32 bytes');
  return ed25519.getPublicKey(seed);
}

const Point = ed25519.Point;

/**
 * §2.1: the 32 bytes are the canonical encoding of a curve point
 * (decompress-then-recompress gives the same bytes) that is not of small order.
 */
export function isValidPublicKey(pk: Uint8Array): boolean {
  if (!(pk instanceof Uint8Array) || pk.length !== 32) return false;
  let p;
  try {
    p = Point.fromBytes(pk, true); // permissive decode, then the canonical round trip below
  } catch {
    return false;
  }
  return bytesEqual(p.toBytes(), pk) && !p.isSmallOrder();
}

export function assertValidPublicKey(pk: Uint8Array, what = 'key'): void {
  if (!isValidPublicKey(pk)) fail('invalid_key', `${what}: not a canonical Ed25519 point of large order`);
}

/** `ed25519:<hex>` for 32 public-key bytes. */
export function keyString(pk: Uint8Array): string {
  return KEY_PREFIX + hexEncode(pk);
}

/** Parses `ed25519:<64 lowercase hex>` and applies §2.1. Errors are `invalid_key`. */
export function parseKeyString(s: unknown, what = 'key'): Uint8Array {
  if (typeof s !== 'string' || !s.startsWith(KEY_PREFIX) || !/^[0-9a-f]{64}$/.test(s.slice(KEY_PREFIX.length))) {
    fail('invalid_key', `${what}: expected "ed25519:" followed by 64 lowercase hex characters`);
  }
  const pk = hexDecode(s.slice(KEY_PREFIX.length), what, 32);
  assertValidPublicKey(pk, what);
  return pk;
}

/** Parses a bare 64-hex key (as in URLs and subjects) and applies §2.1. */
export function parseKeyHex(s: string, what = 'key'): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(s)) fail('invalid_key', `${what}: expected 64 lowercase hex characters`);
  return parseKeyString(KEY_PREFIX + s, what);
}

// ---------------------------------------------------------------- X25519

/** X = to_montgomery(A) (u = (1+y)/(1−y)). */
export function x25519PublicFromEd(pk: Uint8Array): Uint8Array {
  return ed25519.utils.toMontgomery(pk);
}

/** clamp(SHA-512(seed)[0..32]); never compare these bytes across languages. */
export function x25519SecretFromSeed(seed: Uint8Array): Uint8Array {
  return ed25519.utils.toMontgomerySecret(seed);
}

// ---------------------------------------------------------------- nkeys

const NKEY_PREFIX_USER = 20 << 3; // 'U' = 0xA0
const NKEY_PREFIX_SEED = 18 << 3; // 'S' = 0x90

/** CRC-16/XMODEM (poly 0x1021, init 0), as NATS nkeys use it. */
export function crc16xmodem(data: Uint8Array): number {
  let crc = 0;
  for (const b of data) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function withCrc(payload: Uint8Array): Uint8Array {
  const crc = crc16xmodem(payload);
  return concatBytes(payload, Uint8Array.of(crc & 0xff, crc >> 8));
}

/** `U…` (56 characters) for 32 public-key bytes. */
export function nkeyPublic(pk: Uint8Array): string {
  if (pk.length !== 32) fail('invalid_key', 'a public key is 32 bytes');
  return base32nopad.encode(withCrc(concatBytes(Uint8Array.of(NKEY_PREFIX_USER), pk)));
}

/** `SU…` (58 characters) for a 32-byte seed. */
export function nkeySeed(seed: Uint8Array): string {
  if (seed.length !== SEED_LEN) fail('invalid_key', 'a seed is 32 bytes');
  const b0 = NKEY_PREFIX_SEED | (NKEY_PREFIX_USER >> 5);
  const b1 = (NKEY_PREFIX_USER & 31) << 3;
  return base32nopad.encode(withCrc(concatBytes(Uint8Array.of(b0, b1), seed)));
}

function decodeNkeyRaw(s: string, what: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = base32nopad.decode(s);
  } catch {
    fail('invalid_encoding', `${what}: not base32`);
  }
  if (raw.length < 3) fail('invalid_encoding', `${what}: too short`);
  const body = raw.subarray(0, raw.length - 2);
  const crc = raw[raw.length - 2]! | (raw[raw.length - 1]! << 8);
  if (crc16xmodem(body) !== crc) fail('invalid_encoding', `${what}: checksum mismatch`);
  return body;
}

/** Decodes a `U…` user nkey to its 32 public-key bytes. */
export function parseNkeyPublic(s: string): Uint8Array {
  const body = decodeNkeyRaw(s, 'nkey');
  if (body.length !== 33 || body[0] !== NKEY_PREFIX_USER) fail('invalid_encoding', 'nkey: not a user public key');
  return body.slice(1);
}

/** Decodes an `SU…` user seed to its 32 seed bytes. */
export function parseNkeySeed(s: string): Uint8Array {
  const body = decodeNkeyRaw(s, 'nkey seed');
  const b0 = NKEY_PREFIX_SEED | (NKEY_PREFIX_USER >> 5);
  const b1 = (NKEY_PREFIX_USER & 31) << 3;
  if (body.length !== 34 || body[0] !== b0 || body[1] !== b1) fail('invalid_encoding', 'nkey seed: not a user seed');
  return body.slice(2);
}

/** The identity derived from a seed, computed once. */
export interface Identity {
  seed: Uint8Array;
  pk: Uint8Array;
  hex: string;
  key: string; // ed25519:<hex>
}

export function identityFromSeed(seed: Uint8Array): Identity {
  const pk = publicKeyOf(seed);
  const hex = hexEncode(pk);
  return { seed, pk, hex, key: KEY_PREFIX + hex };
}
