/**
 * Shared-files manifest (PROTOCOL.md §7.4), verified against the owner's
 * sigchain pointer (the latest set_shared_files).
 */
import { blake3 } from '@noble/hashes/blake3.js';
import { fail } from './errors';
import { hexEncode } from './encoding';
import { Fields, jcsBytes, obj, parseCanonical } from './jcs';
import { identityFromSeed, parseKeyString } from './keys';
import { signObject, verifyObject } from './sign';
import type { ChainState } from './sigchain';
import { entryToJson, openEntry, parseEntry, type Entry, type OpenedEntry } from './files';

export const MAX_MANIFEST_BYTES = 256 * 1024;
export const MAX_ENTRIES = 1024;
const KEYS = ['type', 'v', 'owner', 'seq', 'ctime', 'entries', 'sig'] as const;

export interface Manifest {
  owner: string;
  ownerPk: Uint8Array;
  seq: number;
  ctime: number;
  entries: Entry[];
  hash: string;
  bytes: Uint8Array;
}

export function manifestHash(bytes: Uint8Array): string {
  return hexEncode(blake3(bytes));
}

export function buildManifest(p: { seed: Uint8Array; seq: number; ctime: number; entries: Entry[] }): { bytes: Uint8Array; hash: string } {
  const unsigned = obj({
    type: 'kez.manifest',
    v: 1,
    owner: identityFromSeed(p.seed).key,
    seq: p.seq,
    ctime: p.ctime,
    entries: p.entries.map(entryToJson),
  });
  const bytes = jcsBytes(signObject(p.seed, 'manifest', unsigned));
  return { bytes, hash: manifestHash(bytes) };
}

/**
 * Parses and checks a manifest on its own, in the Rust contract's order:
 * size (too_large), canonical bytes, shape (invalid_request), owner key
 * (invalid_key), entry count and entries (invalid_manifest for bounds), then
 * type/v (wrong_type) and the signature (bad_signature).
 */
export function parseManifest(bytes: Uint8Array): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) fail('too_large', 'a manifest is at most 256 KiB');
  const v = parseCanonical(bytes);
  const f = Fields.exact(v, 'manifest', KEYS);
  const owner = f.str('owner');
  const ownerPk = parseKeyString(owner, 'owner');
  const rawEntries = f.array('entries');
  if (rawEntries.length > MAX_ENTRIES) fail('invalid_manifest', 'a manifest has at most 1 024 entries');
  const entries = rawEntries.map(parseEntry);
  const ids = new Set(entries.map((e) => e.id));
  if (ids.size !== entries.length) fail('invalid_manifest', 'entry ids must be unique');
  const seq = f.int('seq');
  const ctime = f.int('ctime');
  verifyObject('manifest', f.map, ownerPk); // type/v (wrong_type), then the signature
  return { owner, ownerPk, seq, ctime, entries, hash: manifestHash(bytes), bytes };
}

/**
 * Accepts a manifest only if its BLAKE3 equals the `manifest` of the owner's
 * latest set_shared_files, its owner is the chain key, its seq equals
 * manifest_seq, and its signature verifies.
 */
export function verifyManifest(bytes: Uint8Array, chain: ChainState): Manifest {
  const sf = chain.sharedFiles;
  if (!sf) fail('manifest_not_found', 'this user shares no files');
  if (manifestHash(bytes) !== sf.manifest) fail('invalid_manifest', 'the manifest hash does not match the sigchain');
  const m = parseManifest(bytes);
  if (m.owner !== chain.key) fail('invalid_manifest', 'the manifest owner is not the chain key');
  if (m.seq !== sf.manifest_seq) fail('invalid_manifest', 'the manifest seq does not match the sigchain');
  return m;
}

/** The entries wrapped for the reader (others are not shown). */
export function entriesForMe(m: Manifest, mySeed: Uint8Array): OpenedEntry[] {
  const out: OpenedEntry[] = [];
  for (const e of m.entries) {
    const o = openEntry(e, mySeed, m.ownerPk);
    if (o) out.push(o);
  }
  return out;
}

