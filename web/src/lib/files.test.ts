import { describe, expect, test } from 'vitest';
import { blake3 } from '@noble/hashes/blake3.js';
import { buildEntry, checkCommit, openBlob, CHUNK, decryptBlob, decryptMeta, encryptBlob, openEntry, parseEntry, unwrapFileKey, wrapFileKey, entryToJson } from './files';
import { hexDecode, b64uEncode } from './encoding';
import { identityFromSeed } from './keys';
import { obj } from './jcs';
import { expectCode, seedOf } from './test/util';

const owner = identityFromSeed(seedOf(31));
const bob = identityFromSeed(seedOf(32));
const carol = identityFromSeed(seedOf(33));
const kf = new Uint8Array(32).fill(7);
const n16 = new Uint8Array(16).fill(8);

describe('STREAM', () => {
  test('sizes and round trips around chunk boundaries', () => {
    for (const n of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK]) {
      const p = Uint8Array.from({ length: n }, (_, i) => i & 0xff);
      const blob = encryptBlob(p, kf, n16);
      const chunks = Math.max(1, Math.ceil(n / CHUNK));
      expect(blob.length).toBe(16 + n + 16 * chunks);
      expect(decryptBlob(blob, kf)).toEqual(p);
    }
  });
  test('truncation and tampering fail', () => {
    const p = new Uint8Array(CHUNK + 10);
    const blob = encryptBlob(p, kf, n16);
    expectCode(() => decryptBlob(blob.subarray(0, 16 + CHUNK + 16), kf), 'decrypt_failed'); // first chunk has last_flag 0
    const t = blob.slice();
    t[40]! ^= 1;
    expectCode(() => decryptBlob(t, kf), 'decrypt_failed');
    expectCode(() => decryptBlob(blob, new Uint8Array(32)), 'decrypt_failed');
  });
});

describe('wrap', () => {
  const blobHash = new Uint8Array(32).fill(3);
  test('only the recipient unwraps; binding to owner and blob', () => {
    const w = wrapFileKey({ kf, recipientPk: bob.pk, ownerPk: owner.pk, blobHash });
    expect(unwrapFileKey(obj({ ...w }), bob.seed, owner.pk, blobHash)).toEqual(kf);
    expectCode(() => unwrapFileKey(obj({ ...w }), carol.seed, owner.pk, blobHash), 'decrypt_failed');
    expectCode(() => unwrapFileKey(obj({ ...w }), bob.seed, carol.pk, blobHash), 'decrypt_failed');
    expectCode(() => unwrapFileKey(obj({ ...w }), bob.seed, owner.pk, new Uint8Array(32)), 'decrypt_failed');
  });
  test('ct must be exactly 48 bytes', () => {
    const w = wrapFileKey({ kf, recipientPk: bob.pk, ownerPk: owner.pk, blobHash });
    expectCode(() => unwrapFileKey(obj({ enc: w.enc, ct: b64uEncode(new Uint8Array(47)) }), bob.seed, owner.pk, blobHash), 'invalid_encoding');
  });
});

describe('entries and metadata', () => {
  const plaintext = new TextEncoder().encode('report contents');
  const built = buildEntry({ plaintext, name: 'report.pdf', ownerSeed: owner.seed, recipients: [carol.pk, bob.pk], kf, n16 });
  test('entry shape parses; bob opens it; metadata round trips', () => {
    const e = parseEntry(entryToJson(built.entry));
    const o = openEntry(e, bob.seed, owner.pk)!;
    expect(o.meta).toEqual({ name: 'report.pdf', size: plaintext.length, hash: Buffer.from(blake3(plaintext)).toString('hex') });
    expect(e.blob).toBe(Buffer.from(blake3(built.blob)).toString('hex'));
    checkCommit(o.kf, built.blob, e.commit);
    expect(decryptBlob(built.blob, o.kf)).toEqual(plaintext);
  });
  test('an entry not wrapped for the reader is not shown', () => {
    const other = buildEntry({ plaintext, name: 'x', ownerSeed: owner.seed, recipients: [carol.pk] });
    expect(openEntry(other.entry, bob.seed, owner.pk)).toBeNull();
  });
  test('commit mismatch and bad meta are detected', () => {
    expectCode(() => checkCommit(new Uint8Array(32), built.blob, built.entry.commit), 'bad_commit');
    expectCode(() => decryptMeta(kf, new Uint8Array(32), built.entry.meta), 'decrypt_failed');
    expect(decryptMeta(kf, hexDecode(built.entry.blob), built.entry.meta).name).toBe('report.pdf');
  });
  test('names: 1–255 bytes, no slash or NUL', () => {
    for (const name of ['', 'a/b', 'a\0b', 'x'.repeat(256)]) {
      expectCode(() => buildEntry({ plaintext, name, ownerSeed: owner.seed, recipients: [bob.pk] }), 'invalid_manifest');
    }
  });
  test('entry rules: 1–64 wraps (invalid_manifest), sizes (invalid_encoding), shape (invalid_request)', () => {
    const j = entryToJson(built.entry);
    expectCode(() => parseEntry({ ...j, wraps: [] }), 'invalid_manifest');
    expectCode(() => parseEntry({ ...j, wraps: Array(65).fill((j.wraps as unknown[])[0]) }), 'invalid_manifest');
    expectCode(() => parseEntry({ ...j, id: 'AAAA' }), 'invalid_encoding');
    expectCode(() => parseEntry({ ...j, blob: j.blob!.toString().toUpperCase() }), 'invalid_encoding');
    expectCode(() => parseEntry({ ...j, extra: 1 }), 'invalid_request');
    expectCode(() => parseEntry({ ...j, ct_size: '1' }), 'invalid_request');
  });
  test('opening a blob: truncated header, then commitment, then chunks', () => {
    expectCode(() => openBlob(built.blob.subarray(0, 10), kf, built.entry.commit), 'decrypt_failed');
    expectCode(() => openBlob(built.blob, new Uint8Array(32), built.entry.commit), 'bad_commit');
    expect(openBlob(built.blob, kf, built.entry.commit)).toEqual(plaintext);
  });
});
