/**
 * Files (PROTOCOL.md §7): STREAM content encryption (§7.1), per-recipient key
 * wrap (§7.2), manifest entries and encrypted metadata (§7.3).
 *
 * The browser never downloads blobs; it unwraps K_f for manifest entries
 * addressed to the user and decrypts their metadata. The STREAM functions are
 * here so the shared vectors can be checked byte for byte.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { blake3 } from '@noble/hashes/blake3.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { fail } from './errors';
import { b64uDecode, b64uEncode, bytesEqual, concatBytes, hexDecode, hexEncode, randomBytes, utf8 } from './encoding';
import { Fields, jcsBytes, obj, parseCanonical, type JsonObject, type JsonValue } from './jcs';
import { identityFromSeed, x25519PublicFromEd, x25519SecretFromSeed } from './keys';
import { x25519Shared } from './kem';

export const CHUNK = 65536;
const ZERO_NONCE = new Uint8Array(12);
const EMPTY = new Uint8Array(0);

function kdf(ikm: Uint8Array, salt: Uint8Array, info: string): Uint8Array {
  return hkdf(sha256, ikm, salt, utf8(info), 32);
}

// ---------------------------------------------------------------- §7.1 STREAM

export function payloadKey(kf: Uint8Array, n16: Uint8Array): Uint8Array {
  return kdf(kf, n16, 'kez-v1/file/payload');
}

export function commitment(kf: Uint8Array, n16: Uint8Array): Uint8Array {
  return kdf(kf, n16, 'kez-v1/file/commit');
}

function chunkNonce(i: number, last: boolean): Uint8Array {
  const n = new Uint8Array(12);
  let x = BigInt(i);
  for (let j = 10; j >= 0; j--) {
    n[j] = Number(x & 0xffn);
    x >>= 8n;
  }
  n[11] = last ? 1 : 0;
  return n;
}

export function encryptBlob(plaintext: Uint8Array, kf: Uint8Array, n16: Uint8Array = randomBytes(16)): Uint8Array {
  if (kf.length !== 32 || n16.length !== 16) fail('invalid_request', 'K_f is 32 bytes and n16 is 16 bytes');
  const kp = payloadKey(kf, n16);
  const parts: Uint8Array[] = [n16];
  const count = Math.max(1, Math.ceil(plaintext.length / CHUNK));
  for (let i = 0; i < count; i++) {
    const p = plaintext.subarray(i * CHUNK, Math.min(plaintext.length, (i + 1) * CHUNK));
    parts.push(chacha20poly1305(kp, chunkNonce(i, i === count - 1)).encrypt(p));
  }
  return concatBytes(...parts);
}

export function decryptBlob(blob: Uint8Array, kf: Uint8Array): Uint8Array {
  if (blob.length < 16 + 16) fail('decrypt_failed', 'blob is too short');
  const n16 = blob.subarray(0, 16);
  const kp = payloadKey(kf, n16);
  const body = blob.subarray(16);
  const full = CHUNK + 16;
  const count = Math.max(1, Math.ceil(body.length / full));
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const c = body.subarray(i * full, Math.min(body.length, (i + 1) * full));
    const last = i === count - 1;
    if (c.length < 16) fail('decrypt_failed', 'truncated chunk');
    let p: Uint8Array;
    try {
      p = chacha20poly1305(kp, chunkNonce(i, last)).decrypt(c);
    } catch {
      fail('decrypt_failed', `chunk ${i} does not decrypt`);
    }
    if (last && p.length === 0 && count > 1) fail('decrypt_failed', 'a non-empty file ends with an empty chunk');
    out.push(p);
  }
  return concatBytes(...out);
}

/** §7.1: every plaintext is padded with zeros to at least this many bytes. */
export const MIN_PADDED = 256;

/**
 * §7.1: the length a plaintext of `len` bytes is padded to before encryption:
 * 256 up to 256 bytes, above that Padmé (`len` rounded up to a multiple of
 * 2^(E − S), E = ⌊log2 len⌋, S = ⌊log2 E⌋ + 1). BigInt keeps sizes above 2^32 exact.
 */
export function paddedLength(len: number): number {
  if (len <= MIN_PADDED) return MIN_PADDED;
  const l = BigInt(len);
  const e = l.toString(2).length - 1;
  const s = e.toString(2).length;
  const mask = (1n << BigInt(e - s)) - 1n;
  return Number((l + mask) & ~mask);
}

/**
 * §7.1 receiver: the file is the first `size` decrypted bytes; the rest must be
 * zeros and the whole exactly `paddedLength(size)` long (or exactly `size`: blobs
 * made before padding).
 */
export function unpadFile(plain: Uint8Array, size: number): Uint8Array {
  if (plain.length !== size && plain.length !== paddedLength(size)) {
    fail('decrypt_failed', 'the decrypted length does not match the file size');
  }
  if (plain.subarray(size).some((b) => b !== 0)) fail('decrypt_failed', 'the padding is not zeros');
  return plain.subarray(0, size);
}

export function blake3Hex(b: Uint8Array): string {
  return hexEncode(blake3(b));
}

// ---------------------------------------------------------------- §7.2 wrap

export interface Wrap {
  enc: string;
  ct: string;
}

function wrapKey(ss: Uint8Array, E: Uint8Array, xR: Uint8Array, pkR: Uint8Array, pkOwner: Uint8Array, blobHash: Uint8Array): Uint8Array {
  const info = concatBytes(utf8('kez-v1/file-key'), Uint8Array.of(0), pkR, pkOwner, blobHash);
  return hkdf(sha256, ss, concatBytes(E, xR), info, 32);
}
const WRAP_AAD = utf8('kez-v1/file-key');

export function wrapFileKey(p: {
  kf: Uint8Array;
  recipientPk: Uint8Array;
  ownerPk: Uint8Array;
  blobHash: Uint8Array;
  ephemeral?: Uint8Array;
}): Wrap {
  const e = p.ephemeral ?? randomBytes(32);
  const E = x25519.getPublicKey(e);
  const xR = x25519PublicFromEd(p.recipientPk);
  const ss = x25519Shared(e, xR, 'invalid_key');
  const key = wrapKey(ss, E, xR, p.recipientPk, p.ownerPk, p.blobHash);
  const wct = chacha20poly1305(key, ZERO_NONCE, WRAP_AAD).encrypt(p.kf);
  return { enc: b64uEncode(E), ct: b64uEncode(wct) };
}

/** Unwraps K_f with the reader's seed; decrypt_failed when the wrap is not for them. */
export function unwrapFileKey(wrap: JsonValue, mySeed: Uint8Array, ownerPk: Uint8Array, blobHash: Uint8Array): Uint8Array {
  const f = Fields.exact(wrap, 'wrap', ['enc', 'ct']);
  const E = b64uDecode(f.str('enc'), 'wrap enc', 32);
  const wct = b64uDecode(f.str('ct'), 'wrap ct', 48);
  const me = identityFromSeed(mySeed);
  const xR = x25519PublicFromEd(me.pk);
  const ss = x25519Shared(x25519SecretFromSeed(mySeed), E, 'decrypt_failed');
  const key = wrapKey(ss, E, xR, me.pk, ownerPk, blobHash);
  try {
    return chacha20poly1305(key, ZERO_NONCE, WRAP_AAD).decrypt(wct);
  } catch {
    fail('decrypt_failed', 'this wrap is not for this key');
  }
}

// ---------------------------------------------------------------- §7.3 entry + meta

export interface FileMeta {
  name: string;
  size: number;
  hash: string;
}

export function metaKey(kf: Uint8Array): Uint8Array {
  return kdf(kf, EMPTY, 'kez-v1/file/meta');
}

function metaAad(blobHash: Uint8Array): Uint8Array {
  return concatBytes(utf8('kez-v1/file/meta'), Uint8Array.of(0), blobHash);
}

/**
 * §7.3: a name safe in a folder on every platform: 1–255 bytes; no "/", "\\", ":"
 * or NUL; no trailing "." or space (so not "." or ".."); not a Windows device
 * name (CON, PRN, AUX, NUL, COM0–9, LPT0–9, any ASCII case, before the first ".").
 */
export function checkName(name: string): void {
  const n = utf8(name).length;
  const stem = name.split('.')[0]!.replace(/ +$/, '').toLowerCase();
  const device = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/.test(stem);
  if (n < 1 || n > 255 || /[/\\:\0]/.test(name) || /[. ]$/.test(name) || device) {
    fail('invalid_manifest', 'file name must be 1–255 bytes without "/", "\\", ":" or NUL, not end in "." or space, and not be a device name');
  }
}

export function encryptMeta(kf: Uint8Array, blobHash: Uint8Array, meta: FileMeta): string {
  checkName(meta.name);
  const pt = jcsBytes(obj({ name: meta.name, size: meta.size, hash: meta.hash }));
  return b64uEncode(chacha20poly1305(metaKey(kf), ZERO_NONCE, metaAad(blobHash)).encrypt(pt));
}

export function decryptMeta(kf: Uint8Array, blobHash: Uint8Array, meta: string): FileMeta {
  const ct = b64uDecode(meta, 'meta');
  let pt: Uint8Array;
  try {
    pt = chacha20poly1305(metaKey(kf), ZERO_NONCE, metaAad(blobHash)).decrypt(ct);
  } catch {
    fail('decrypt_failed', 'file metadata does not decrypt');
  }
  const f = Fields.exact(parseCanonical(pt), 'file metadata', ['name', 'size', 'hash']);
  const name = f.str('name');
  checkName(name);
  const hash = f.str('hash');
  hexDecode(hash, 'plaintext hash', 32);
  return { name, size: f.int('size'), hash };
}

export interface Entry {
  id: string;
  blob: string;
  ct_size: number;
  commit: string;
  meta: string;
  wraps: Wrap[];
}

const ENTRY_KEYS = ['id', 'blob', 'ct_size', 'commit', 'meta', 'wraps'] as const;

/**
 * Checks an entry (§7.3, §7.4 bounds). Codes as everywhere else in the
 * protocol: missing/extra/mistyped fields are invalid_request, malformed
 * hex/base64url (or a wrong length) invalid_encoding, and only the manifest
 * bounds (1–64 wraps) invalid_manifest.
 */
/** §7.3: `meta` is at most 2 048 characters (base64url, so ASCII: characters = bytes). */
export const MAX_META_CHARS = 2048;

export function parseEntry(v: JsonValue): Entry {
  const f = Fields.exact(v, 'entry', ENTRY_KEYS);
  const id = f.str('id');
  b64uDecode(id, 'entry id', 16);
  const blob = f.str('blob');
  hexDecode(blob, 'blob', 32);
  const commit = f.str('commit');
  hexDecode(commit, 'commit', 32);
  const meta = f.str('meta');
  b64uDecode(meta, 'meta');
  if (meta.length > MAX_META_CHARS) fail('invalid_manifest', `entry meta is larger than ${MAX_META_CHARS} characters`);
  const wraps = f.array('wraps');
  if (wraps.length < 1 || wraps.length > 64) fail('invalid_manifest', 'an entry has 1–64 wraps');
  const ws = wraps.map((w) => {
    const wf = Fields.exact(w, 'wrap', ['enc', 'ct']);
    b64uDecode(wf.str('enc'), 'wrap enc', 32);
    b64uDecode(wf.str('ct'), 'wrap ct', 48);
    return { enc: wf.str('enc'), ct: wf.str('ct') };
  });
  return { id, blob, ct_size: f.int('ct_size'), commit, meta, wraps: ws };
}

export interface OpenedEntry {
  entry: Entry;
  kf: Uint8Array;
  meta: FileMeta;
}

/**
 * Tries every wrap of `entry` for the reader; null when none opens (entry not
 * for them). Decrypts the metadata. The commitment needs n16 from the blob, so
 * it is checked by `checkCommit` after download (the browser never downloads).
 */
export function openEntry(entry: Entry, mySeed: Uint8Array, ownerPk: Uint8Array): OpenedEntry | null {
  const blobHash = hexDecode(entry.blob, 'blob', 32);
  for (const w of entry.wraps) {
    let kf: Uint8Array;
    try {
      kf = unwrapFileKey(w as unknown as JsonObject, mySeed, ownerPk, blobHash);
    } catch {
      continue;
    }
    return { entry, kf, meta: decryptMeta(kf, blobHash, entry.meta) };
  }
  return null;
}

/**
 * Opens a downloaded blob in the order the Rust Decryptor uses: a blob
 * without its 16-byte header is decrypt_failed (truncated), then the key
 * commitment (bad_commit), then every chunk (decrypt_failed).
 */
export function openBlob(blob: Uint8Array, kf: Uint8Array, commitHex: string): Uint8Array {
  if (blob.length < 16) fail('decrypt_failed', 'blob is truncated');
  checkCommit(kf, blob, commitHex);
  return decryptBlob(blob, kf);
}

export function checkCommit(kf: Uint8Array, blob: Uint8Array, commitHex: string): void {
  if (!bytesEqual(commitment(kf, blob.subarray(0, 16)), hexDecode(commitHex, 'commit', 32))) {
    fail('bad_commit', 'the file key does not match the entry commitment');
  }
}

/** Builds an entry for a plaintext (used by tests and vectors). */
export function buildEntry(p: {
  plaintext: Uint8Array;
  name: string;
  ownerSeed: Uint8Array;
  recipients: Uint8Array[];
  kf?: Uint8Array;
  n16?: Uint8Array;
  id?: Uint8Array;
  ephemerals?: Uint8Array[];
}): { entry: Entry; blob: Uint8Array; kf: Uint8Array } {
  const kf = p.kf ?? randomBytes(32);
  const n16 = p.n16 ?? randomBytes(16);
  const blob = encryptBlob(p.plaintext, kf, n16);
  const blobHash = blake3(blob);
  const owner = identityFromSeed(p.ownerSeed);
  const wraps = p.recipients.map((r, i) =>
    wrapFileKey({ kf, recipientPk: r, ownerPk: owner.pk, blobHash, ephemeral: p.ephemerals?.[i] }),
  );
  const entry: Entry = {
    id: b64uEncode(p.id ?? randomBytes(16)),
    blob: hexEncode(blobHash),
    ct_size: blob.length,
    commit: hexEncode(commitment(kf, n16)),
    meta: encryptMeta(kf, blobHash, { name: p.name, size: p.plaintext.length, hash: blake3Hex(p.plaintext) }),
    wraps,
  };
  return { entry, blob, kf };
}

export function entryToJson(e: Entry): JsonObject {
  return obj({
    id: e.id,
    blob: e.blob,
    ct_size: e.ct_size,
    commit: e.commit,
    meta: e.meta,
    wraps: e.wraps.map((w) => obj({ enc: w.enc, ct: w.ct })),
  });
}
