/**
 * Chat envelope (PROTOCOL.md §6): ephemeral-static X25519 → HKDF-SHA256 →
 * ChaCha20-Poly1305 with a single-use key, the sender's signed inner object
 * inside, padded to a multiple of 256 bytes.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { fail, KezError } from './errors';
import { b64uDecode, b64uEncode, bytesEqual, concatBytes, randomBytes, utf8 } from './encoding';
import { x25519Shared } from './kem';
import { Fields, jcsBytes, obj, parseCanonical, type JsonObject } from './jcs';
import { identityFromSeed, keyString, parseKeyHex, parseKeyString, x25519PublicFromEd, x25519SecretFromSeed } from './keys';
import { parseEntry } from './files';
import { signObject, verifyObject } from './sign';

export const MAX_OUTER_BYTES = 64 * 1024;
export const PAD_BLOCK = 256;
export const FUTURE_SKEW_MS = 5 * 60 * 1000;
export const MAX_TEXT_CHARS = 16384;
const INFO_PREFIX = utf8('kez-v1/msg');
const AAD = concatBytes(utf8('kez-v1/msg'), Uint8Array.of(0, 1));
const ZERO_NONCE = new Uint8Array(12);
const INNER_KEYS = ['type', 'v', 'from', 'to', 'enc', 'id', 'ts', 'kind', 'body', 'sig'] as const;

/** What a user sends to a peer. */
export type ContentKind = 'text' | 'file_share';
/** Every inner `kind`: content, or a copy of sent content to the sender's own devices (§6.1). */
export type MessageKind = ContentKind | 'sent';

/** A `sent` body, parsed (PROTOCOL.md §6.1). */
export interface SentCopy {
  /** Who the original went to (`ed25519:<hex>`). */
  peer: string;
  peerHex: string;
  /** The original message's id. */
  id: string;
  kind: ContentKind;
  body: JsonObject;
}

/** HKDF-SHA256(ss, salt = E || X_R, info = "kez-v1/msg" 0x00 pk_R). */
export function messageKey(ss: Uint8Array, E: Uint8Array, xR: Uint8Array, pkR: Uint8Array): Uint8Array {
  return hkdf(sha256, ss, concatBytes(E, xR), concatBytes(INFO_PREFIX, Uint8Array.of(0), pkR), 32);
}

export function pad(plain: Uint8Array): Uint8Array {
  const n = Math.ceil(plain.length / PAD_BLOCK) * PAD_BLOCK;
  const out = new Uint8Array(n);
  out.set(plain);
  return out;
}

export function unpad(padded: Uint8Array): Uint8Array {
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0) end--;
  return padded.subarray(0, end);
}

export interface SealParams {
  senderSeed: Uint8Array;
  recipientPk: Uint8Array;
  kind: MessageKind;
  body: JsonObject;
  ts: number;
  /** 16 bytes; random when absent (vectors inject it). */
  id?: Uint8Array;
  /** The ephemeral X25519 secret e; random when absent (vectors inject it). */
  ephemeral?: Uint8Array;
}

export interface Sealed {
  /** JCS outer bytes, as published. */
  outer: Uint8Array;
  inner: JsonObject;
  /** JCS(inner with sig), before padding. */
  plaintext: Uint8Array;
  id: string;
}

export function seal(p: SealParams): Sealed {
  const sender = identityFromSeed(p.senderSeed);
  const e = p.ephemeral ?? randomBytes(32);
  const E = x25519.getPublicKey(e);
  const xR = x25519PublicFromEd(p.recipientPk);
  const ss = x25519Shared(e, xR, 'invalid_key');
  const key = messageKey(ss, E, xR, p.recipientPk);
  const enc = b64uEncode(E);
  const id = b64uEncode(p.id ?? randomBytes(16));
  const unsigned = obj({
    type: 'kez.msg',
    v: 1,
    from: sender.key,
    to: keyString(p.recipientPk),
    enc,
    id,
    ts: p.ts,
    kind: p.kind,
    body: p.body,
  });
  checkBody(p.kind, p.body);
  if (p.kind === 'sent' && !bytesEqual(sender.pk, p.recipientPk)) fail('invalid_request', 'a sent copy is sealed to the own key only');
  const inner = signObject(p.senderSeed, 'msg', unsigned);
  const plaintext = jcsBytes(inner);
  const ct = chacha20poly1305(key, ZERO_NONCE, AAD).encrypt(pad(plaintext));
  const outer = jcsBytes(obj({ v: 1, enc, ct: b64uEncode(ct) }));
  if (outer.length > MAX_OUTER_BYTES) fail('too_large', 'the message is too large to send');
  return { outer, inner, plaintext, id };
}

export function textBody(text: string): JsonObject {
  return obj({ text });
}

/** The `sent` body for a message that was sent to `peer` (§6.1). */
export function sentBody(peer: string, original: { id: string; kind: ContentKind; body: JsonObject }): JsonObject {
  return obj({ peer, id: original.id, kind: original.kind, body: original.body });
}

/** Parses a `sent` body (exact keys; peer per §2.1 → invalid_key; never a nested `sent`). */
export function parseSent(body: JsonObject): SentCopy {
  const f = Fields.exact(body, 'sent body', ['peer', 'id', 'kind', 'body']);
  const peer = f.str('peer');
  parseKeyString(peer, 'peer');
  const id = f.str('id');
  b64uDecode(id, 'id', 16);
  const kind = f.str('kind');
  if (kind === 'sent') fail('invalid_request', 'a sent copy cannot contain another sent copy');
  const inner = f.object('body');
  checkBody(kind, inner);
  return { peer, peerHex: peer.slice('ed25519:'.length), id, kind: kind as ContentKind, body: inner };
}

function checkBody(kind: string, body: JsonObject): void {
  if (kind === 'sent') {
    parseSent(body);
  } else if (kind === 'text') {
    const f = Fields.exact(body, 'text body', ['text']);
    const n = [...f.str('text')].length;
    if (n < 1 || n > MAX_TEXT_CHARS) fail('invalid_request', `text must be 1–${MAX_TEXT_CHARS} characters`);
  } else if (kind === 'file_share') {
    const f = Fields.exact(body, 'file_share body', ['entry', 'node_id']);
    parseKeyHex(f.str('node_id'), 'node_id');
    parseEntry(f.object('entry'));
  } else {
    fail('invalid_request', `unknown message kind "${kind}"`);
  }
}

export interface OpenParams {
  mySeed: Uint8Array;
  now: number;
  /** W: the inbox retention in ms. */
  retentionMs: number;
  /** Returns true when (from, id) was seen before; the caller records new ones. */
  seen?: (from: string, id: string) => boolean;
}

export interface Opened {
  from: string;
  fromPk: Uint8Array;
  id: string;
  ts: number;
  kind: MessageKind;
  body: JsonObject;
  inner: JsonObject;
}

/**
 * Opens an envelope, failing closed with one code per step (§6 receiver
 * steps 1–7): too_large/invalid_json/not_canonical/invalid_request/wrong_type/
 * invalid_encoding (1), decrypt_failed (2), not_canonical/invalid_request (3),
 * wrong_recipient/enc_mismatch (4), bad_signature — also for a `from` that
 * fails §2.1 — and wrong_type (5), stale_timestamp (6), then the id and body
 * rules (invalid_encoding/invalid_request; a `sent` body with a bad peer is
 * invalid_key), a `sent` copy from any key but the own (invalid_request, step
 * 8), replayed (7). Step 9 (contact lookup) is the caller's.
 */
export function open(outerBytes: Uint8Array, p: OpenParams): Opened {
  // 1. outer
  if (outerBytes.length > MAX_OUTER_BYTES) fail('too_large', 'envelope is larger than 64 KiB');
  const outer = Fields.exact(parseCanonical(outerBytes), 'envelope', ['v', 'enc', 'ct']);
  if (outer.int('v') !== 1) fail('wrong_type', 'envelope version is not 1');
  const encStr = outer.str('enc');
  const E = b64uDecode(encStr, 'enc', 32);
  const ct = b64uDecode(outer.str('ct'), 'ct');
  // 2. decrypt
  const me = identityFromSeed(p.mySeed);
  const xR = x25519PublicFromEd(me.pk);
  const ss = x25519Shared(x25519SecretFromSeed(p.mySeed), E, 'decrypt_failed');
  const key = messageKey(ss, E, xR, me.pk);
  let padded: Uint8Array;
  try {
    padded = chacha20poly1305(key, ZERO_NONCE, AAD).decrypt(ct);
  } catch {
    fail('decrypt_failed', 'the message does not decrypt with this key');
  }
  // 3. inner: canonical, exact keys
  const innerV = parseCanonical(unpad(padded));
  const f = Fields.exact(innerV, 'message', INNER_KEYS);
  const from = f.str('from');
  const to = f.str('to');
  const enc = f.str('enc');
  const id = f.str('id');
  const ts = f.int('ts');
  const kind = f.str('kind');
  const body = f.object('body');
  f.str('sig');
  // 4. binding
  if (to !== me.key) fail('wrong_recipient', 'the message is addressed to another key');
  if (enc !== encStr) fail('enc_mismatch', 'inner enc differs from the envelope');
  // 5. sender key (§2.1) and signature (type/v are checked with the signature)
  let fromPk: Uint8Array;
  try {
    fromPk = parseKeyString(from, 'from');
  } catch (e) {
    throw new KezError('bad_signature', e instanceof KezError ? e.message : 'bad sender key');
  }
  if (f.str('type') !== 'kez.msg' || f.int('v') !== 1) fail('wrong_type', 'not a kez.msg v1 object');
  verifyObject('msg', f.map, fromPk);
  // 6. freshness
  if (ts > p.now + FUTURE_SKEW_MS) fail('stale_timestamp', 'the message is dated in the future');
  if (ts < p.now - p.retentionMs) fail('stale_timestamp', 'the message is older than the inbox retention');
  b64uDecode(id, 'id', 16);
  checkBody(kind, body);
  // 8 (sent copies): only the reader itself may tell the reader what it sent.
  if (kind === 'sent' && from !== me.key) fail('invalid_request', 'a sent copy must come from the own key');
  // 7. replay
  if (p.seen?.(from, id)) fail('replayed', 'this message was received before');
  return { from, fromPk, id, ts, kind: kind as MessageKind, body, inner: f.map };
}
