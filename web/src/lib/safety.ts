/**
 * Safety numbers and fingerprints (PROTOCOL.md §8).
 *
 *   H_0 = SHA-512("kez-safety-number-v1" 0x00 pk); H_i = SHA-512(H_{i−1} pk), i = 1…5199
 *   F = H_5199[0..30]; digits = six 5-digit groups (BE 40-bit chunk mod 100000)
 */
import { sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from './encoding';
import { fail } from './errors';

const LABEL = concatBytes(utf8('kez-safety-number-v1'), Uint8Array.of(0));
export const ITERATIONS = 5200;

export function fingerprintBytes(pk: Uint8Array): Uint8Array {
  if (pk.length !== 32) fail('invalid_key', 'a public key is 32 bytes');
  let h = sha512(concatBytes(LABEL, pk));
  const buf = new Uint8Array(64 + 32);
  buf.set(pk, 64);
  for (let i = 1; i < ITERATIONS; i++) {
    buf.set(h, 0);
    h = sha512(buf);
  }
  return h.slice(0, 30);
}

/** 30 digits for one key (no spaces). */
export function fingerprintDigits(pk: Uint8Array): string {
  const f = fingerprintBytes(pk);
  let out = '';
  for (let c = 0; c < 6; c++) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + f[c * 5 + j]!;
    out += String(n % 100000).padStart(5, '0');
  }
  return out;
}

/** 60 digits: the smaller of the two 30-digit strings first. */
export function safetyNumberDigits(a: Uint8Array, b: Uint8Array): string {
  const da = fingerprintDigits(a);
  const db = fingerprintDigits(b);
  return da < db ? da + db : db + da;
}

/** Groups of five separated by spaces. */
export function groupDigits(d: string): string {
  return d.replace(/(\d{5})(?=\d)/g, '$1 ');
}

export function fingerprint(pk: Uint8Array): string {
  return groupDigits(fingerprintDigits(pk));
}

export function safetyNumber(a: Uint8Array, b: Uint8Array): string {
  return groupDigits(safetyNumberDigits(a, b));
}
