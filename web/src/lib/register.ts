/**
 * Registration request (PROTOCOL.md §4): build on the client; the verifier
 * mirrors the server's checks in the same order (used by vectors and tests).
 */
import { fail } from './errors';
import { b64uDecode, b64uEncode, randomBytes } from './encoding';
import { Fields, jcsBytes, obj, parseCanonical, type JsonObject } from './jcs';
import { identityFromSeed, parseKeyString } from './keys';
import { isReservedLocal, parseCanonicalHandle } from './handle';
import { signObject, verifyObject } from './sign';

export const MAX_REGISTER_BYTES = 4096;
export const TIME_WINDOW_MS = 300_000;
const KEYS = ['type', 'v', 'aud', 'handle', 'key', 'ts', 'nonce', 'sig'] as const;

export interface RegisterParams {
  seed: Uint8Array;
  aud: string;
  handle: string; // canonical local@domain
  ts: number;
  nonce?: Uint8Array; // 16 bytes; random when absent
}

export interface Signed {
  obj: JsonObject;
  bytes: Uint8Array;
}

export function buildRegistration(p: RegisterParams): Signed {
  const h = parseCanonicalHandle(p.handle);
  const nonce = p.nonce ?? randomBytes(16);
  if (nonce.length !== 16) fail('invalid_encoding', 'registration nonce is 16 bytes');
  const unsigned = obj({
    type: 'kez.register',
    v: 1,
    aud: p.aud,
    handle: h.full,
    key: identityFromSeed(p.seed).key,
    ts: p.ts,
    nonce: b64uEncode(nonce),
  });
  const signed = signObject(p.seed, 'register', unsigned);
  return { obj: signed, bytes: jcsBytes(signed) };
}

export interface VerifiedRegistration {
  handle: string;
  key: string;
  pk: Uint8Array;
  ts: number;
  nonce: string;
}

/**
 * Checks a registration as the server does (§4), minus the replay store:
 * size, canonical bytes, exact shape, type/v, aud, handle domain == aud,
 * handle canonical and not reserved, key (§2.1), signature, |now − ts|.
 */
export function verifyRegistration(bytes: Uint8Array, domain: string, now: number): VerifiedRegistration {
  if (bytes.length > MAX_REGISTER_BYTES) fail('too_large', 'registration is larger than 4 KiB');
  const v = parseCanonical(bytes);
  const f = Fields.exact(v, 'registration', KEYS);
  const type = f.str('type');
  const ver = f.int('v');
  const aud = f.str('aud');
  const handleStr = f.str('handle');
  const keyStr = f.str('key');
  const ts = f.int('ts');
  const nonce = f.str('nonce');
  f.str('sig');
  if (type !== 'kez.register' || ver !== 1) fail('wrong_type', 'not a kez.register v1 object');
  if (aud !== domain) fail('wrong_audience', `aud "${aud}" is not this server`);
  const handle = parseCanonicalHandle(handleStr);
  if (handle.domain !== aud) fail('wrong_audience', 'the handle is not in the audience domain');
  if (isReservedLocal(handle.local)) fail('handle_reserved', `"${handle.local}" is reserved`);
  const pk = parseKeyString(keyStr);
  b64uDecode(nonce, 'nonce', 16);
  verifyObject('register', f.map, pk);
  if (Math.abs(now - ts) > TIME_WINDOW_MS) fail('stale_timestamp', 'registration timestamp is outside ±5 minutes');
  return { handle: handle.full, key: keyStr, pk, ts, nonce };
}
