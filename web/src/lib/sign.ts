/**
 * Domain-separated signatures over KEZ objects (PROTOCOL.md §2.2) and the one
 * Ed25519 verification rule used everywhere (§2.1).
 *
 *   signing_input(purpose, obj) = "kez-sig-v1" 0x00 purpose 0x00 JCS(obj without "sig")
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { fail } from './errors';
import { b64uDecode, b64uEncode, bytesEqual, concatBytes, utf8 } from './encoding';
import { isValidPublicKey } from './keys';
import { jcsBytes, obj, omit, type JsonObject, type JsonValue } from './jcs';

export const PURPOSES = ['register', 'sigchain.link', 'manifest', 'msg', 'group.link'] as const;
export type Purpose = (typeof PURPOSES)[number];

const Point = ed25519.Point;
const L = Point.Fn.ORDER;

export function signingInput(purpose: Purpose, o: JsonObject): Uint8Array {
  if (!PURPOSES.includes(purpose)) fail('wrong_type', `unknown signing purpose ${purpose}`);
  return concatBytes(utf8('kez-sig-v1'), Uint8Array.of(0), utf8(purpose), Uint8Array.of(0), jcsBytes(omit(o, 'sig')));
}

export function signBytes(seed: Uint8Array, msg: Uint8Array): Uint8Array {
  return ed25519.sign(msg, seed);
}

/**
 * Strict Ed25519 verification, equal to ed25519-dalek `verify_strict` plus
 * the §2.1 key check: A canonical and not small order, R canonical and not
 * small order, S < L, and the cofactorless equation R == [S]B − [k]A compared
 * as bytes. (noble's own `verify` uses the cofactored equation, which accepts
 * more signatures when A or R carry a torsion component, so it is not used.)
 */
export function verifyStrict(sig: Uint8Array, msg: Uint8Array, pk: Uint8Array): boolean {
  if (!(sig instanceof Uint8Array) || sig.length !== 64) return false;
  if (!isValidPublicKey(pk)) return false;
  const rBytes = sig.subarray(0, 32);
  let R, A;
  try {
    R = Point.fromBytes(rBytes, false);
    A = Point.fromBytes(pk, false);
  } catch {
    return false;
  }
  if (!bytesEqual(R.toBytes(), rBytes) || R.isSmallOrder()) return false;
  const s = bytesToNumberLE(sig.subarray(32, 64));
  if (s >= L) return false;
  const k = bytesToNumberLE(sha512(concatBytes(rBytes, pk, msg))) % L;
  const expected = Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k));
  return bytesEqual(expected.toBytes(), rBytes);
}

/** The `type` a signed object must carry for a purpose. */
export function typeFor(purpose: Purpose): string {
  return 'kez.' + purpose;
}

/** Returns a copy of `o` (without any old `sig`) with `sig` added. */
export function signObject(seed: Uint8Array, purpose: Purpose, o: JsonObject): JsonObject {
  const unsigned = omit(o, 'sig');
  const sig = signBytes(seed, signingInput(purpose, unsigned));
  const out = obj(unsigned as Record<string, JsonValue>);
  out.sig = b64uEncode(sig);
  return out;
}

/**
 * Checks `o.type == "kez." + purpose` (wrong_type) and the signature in
 * `o.sig` under `pk` (invalid_encoding for a malformed sig, bad_signature).
 * The purpose comes from the caller's code path, never from the message.
 */
export function verifyObject(purpose: Purpose, o: JsonObject, pk: Uint8Array): void {
  if (o.type !== typeFor(purpose)) fail('wrong_type', `expected type "${typeFor(purpose)}"`);
  if (o.v !== 1) fail('wrong_type', 'unsupported version (expected v 1)');
  if (typeof o.sig !== 'string') fail('invalid_request', 'missing signature');
  const sig = b64uDecode(o.sig, 'sig', 64);
  if (!verifyStrict(sig, signingInput(purpose, o), pk)) fail('bad_signature', `${purpose} signature does not verify`);
}
