/**
 * Binary-to-text encodings (PROTOCOL.md §1): lowercase hex and canonical
 * base64url without padding. Decoders are strict so every value has exactly
 * one text form; they throw KezError('invalid_encoding').
 */
import { base64urlnopad } from '@scure/base';
import { fail } from './errors';

const HEX = '0123456789abcdef';

export function hexEncode(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += HEX[b >> 4]! + HEX[b & 15]!;
  return s;
}

/** Decodes lowercase hex; `len` (bytes) is enforced when given. */
export function hexDecode(s: string, what = 'hex', len?: number): Uint8Array {
  if (typeof s !== 'string' || !/^(?:[0-9a-f]{2})*$/.test(s)) {
    fail('invalid_encoding', `${what}: not lowercase hex`);
  }
  if (len !== undefined && s.length !== len * 2) {
    fail('invalid_encoding', `${what}: expected ${len * 2} hex characters`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function b64uEncode(bytes: Uint8Array): string {
  return base64urlnopad.encode(bytes);
}

/**
 * Decodes canonical base64url without padding: padding, other alphabets and
 * non-zero trailing bits are rejected. `len` (bytes) is enforced when given.
 */
export function b64uDecode(s: string, what = 'base64url', len?: number): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) {
    fail('invalid_encoding', `${what}: not base64url without padding`);
  }
  let out: Uint8Array;
  try {
    out = base64urlnopad.decode(s);
  } catch {
    fail('invalid_encoding', `${what}: not canonical base64url without padding`);
  }
  if (len !== undefined && out.length !== len) fail('invalid_encoding', `${what}: expected ${len} bytes`);
  return out;
}

const te = new TextEncoder();
const tdStrict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array {
  return te.encode(s);
}

/** Strict UTF-8 decoding (invalid sequences are `invalid_json`: they only occur in JSON input). */
export function fromUtf8(b: Uint8Array): string {
  try {
    return tdStrict.decode(b);
  } catch {
    fail('invalid_json', 'not valid UTF-8');
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Constant-time comparison for equal-length secrets; length mismatch returns false. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function isAllZero(a: Uint8Array): boolean {
  let d = 0;
  for (const x of a) d |= x;
  return d === 0;
}

/** Random bytes from the platform CSPRNG. */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  crypto.getRandomValues(out);
  return out;
}
