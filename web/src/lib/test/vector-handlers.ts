/**
 * Handlers for the shared vector files in kv-schemas/testdata/ (format: that
 * folder's README.md). Each handler checks every case and reports all
 * mismatches at once, naming the file, array and case.
 */
import { expect } from 'vitest';
import { blake3 } from '@noble/hashes/blake3.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { KezError } from '../errors';
import { b64uEncode, bytesEqual, concatBytes, fromUtf8, hexDecode, hexEncode, utf8 } from '../encoding';
import { canonicalizeText, isObject, jcs, jcsBytes, parseCanonical, parseProfile, type JsonObject, type JsonValue } from '../jcs';
import {
  identityFromSeed,
  isValidPublicKey,
  MnemonicError,
  mnemonicToSeed,
  nkeyPublic,
  nkeySeed,
  parseKeyString,
  publicKeyOf,
  seedToMnemonic,
  x25519PublicFromEd,
} from '../keys';
import { signingInput, signObject, verifyObject, verifyStrict, type Purpose } from '../sign';
import { displayHandle, isReservedLocal, parseCanonicalHandle, parseHandleInput } from '../handle';
import { verifyRegistration } from '../register';
import { applyLink, buildLink, emptyState, irohDeviceEndpointBody, parseLinkBytes, type ChainState } from '../sigchain';
import { endpointPublic, endpointSeed, endpointSeedInfo, isIrohRole, parseDeviceId } from '../iroh-endpoint';
import { open, seal, type MessageKind } from '../envelope';
import {
  checkCommit,
  openBlob,
  commitment,
  decryptBlob,
  decryptMeta,
  encryptBlob,
  encryptMeta,
  metaKey,
  paddedLength,
  parseEntry,
  payloadKey,
  unpadFile,
  unwrapFileKey,
  wrapFileKey,
} from '../files';
import { entriesForMe, verifyManifest } from '../manifest';
import { fingerprint, fingerprintBytes, safetyNumber } from '../safety';
import { isSignableNonce, signNonce } from '../nonce';
import {
  applyGroupLink,
  genesis as groupGenesis,
  GroupLog,
  parseGroupLinkBytes,
  parseGroupMessage,
  receiveGroupMessage,
  stateHash as groupStateHash,
  stateJson as groupStateJson,
  type GroupLink,
  type GroupState,
} from '../groups';

type Case = JsonObject;

/**
 * Cases where the Rust vectors disagree with PROTOCOL.md and this code
 * deliberately follows PROTOCOL.md (the text is normative). Each is reported
 * on every run; if a listed case starts to pass or disappears, the suite
 * fails so the entry is removed. Key: "<file> <array>/<case name>".
 */
export const KNOWN_DIVERGENCES: Record<string, string> = {
};

/** Collects mismatches; `done()` fails the test listing all of them. */
class Report {
  readonly problems: string[] = [];
  readonly diverged = new Set<string>();
  readonly seen = new Set<string>();
  count = 0;
  constructor(readonly file: string) {}
  check(where: string, f: () => void): void {
    this.count++;
    const key = `${this.file} ${where.replace(/ \(.*\)$/, '')}`;
    this.seen.add(key);
    try {
      f();
    } catch (e) {
      const msg = `${this.file} ${where}: ${e instanceof Error ? e.message : String(e)}`;
      if (key in KNOWN_DIVERGENCES) {
        this.diverged.add(key);
        console.warn(`known divergence (follows PROTOCOL.md): ${msg}\n  why: ${KNOWN_DIVERGENCES[key]}`);
      } else {
        this.problems.push(msg);
      }
    }
  }
  done(): void {
    expect(this.count, `${this.file}: no cases checked`).toBeGreaterThan(0);
    const stale = Object.keys(KNOWN_DIVERGENCES).filter((k) => k.startsWith(this.file + ' ') && !this.diverged.has(k));
    for (const k of stale) this.problems.push(`${k}: listed in KNOWN_DIVERGENCES but ${this.seen.has(k) ? 'now agrees' : 'no longer exists'}; remove the entry`);
    expect(this.problems, this.problems.join('\n')).toEqual([]);
  }
}

function arr(v: JsonValue, key: string): Case[] {
  if (!isObject(v) || !Array.isArray(v[key])) throw new Error(`missing array "${key}"`);
  return v[key] as Case[];
}
const str = (c: Case, k: string): string => {
  const v = c[k];
  if (typeof v !== 'string') throw new Error(`case field "${k}" is not a string`);
  return v;
};
const num = (c: Case, k: string): number => {
  const v = c[k];
  if (typeof v !== 'number') throw new Error(`case field "${k}" is not a number`);
  return v;
};
const hex = (c: Case, k: string) => hexDecode(str(c, k), k);
/** `bytes`-style fields: a string whose UTF-8 is the bytes, or `<name>_hex`. */
const bytesOf = (c: Case, k: string): Uint8Array => (typeof c[`${k}_hex`] === 'string' ? hex(c, `${k}_hex`) : utf8(str(c, k)));

/** Compares as canonical JSON (key order carries no meaning in the vector files). */
function eq(actual: unknown, expected: unknown, what: string): void {
  const a = actual === undefined ? 'undefined' : jcs(actual);
  const b = expected === undefined ? 'undefined' : jcs(expected);
  if (a !== b) throw new Error(`${what}: got ${a}, expected ${b}`);
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof KezError) return e.code;
    return `non-KezError ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`;
  }
  return 'ok';
}

function expectCode(f: () => unknown, expected: string, what = 'error'): void {
  eq(code(f), expected, what);
}

/** Plaintext generator {"len": N, "byte_i": "i % 251"}. */
function generate(g: JsonValue): Uint8Array {
  if (!isObject(g) || typeof g.len !== 'number' || g.byte_i !== 'i % 251') throw new Error(`unknown generator ${JSON.stringify(g)}`);
  const out = new Uint8Array(g.len);
  for (let i = 0; i < out.length; i++) out[i] = i % 251;
  return out;
}

// ---------------------------------------------------------------- files

function keysJson(v: JsonValue): void {
  const r = new Report('keys.json');
  for (const c of arr(v, 'identities')) {
    r.check(`identities/${c.name}`, () => {
      const seed = hex(c, 'seed');
      eq(seedToMnemonic(seed), str(c, 'mnemonic'), 'mnemonic');
      eq(hexEncode(mnemonicToSeed(str(c, 'mnemonic'))), str(c, 'seed'), 'mnemonic → seed');
      const pk = publicKeyOf(seed);
      eq(hexEncode(pk), str(c, 'public'), 'public');
      eq(identityFromSeed(seed).key, str(c, 'key'), 'key');
      eq(nkeyPublic(pk), str(c, 'nkey_public'), 'nkey_public');
      eq(nkeySeed(seed), str(c, 'nkey_seed'), 'nkey_seed');
      eq(hexEncode(x25519PublicFromEd(pk)), str(c, 'x25519_public'), 'x25519_public');
    });
  }
  for (const c of arr(v, 'mnemonic_inputs')) {
    r.check(`mnemonic_inputs/${c.name}`, () => eq(hexEncode(mnemonicToSeed(str(c, 'input'))), str(c, 'seed'), 'seed'));
  }
  for (const c of arr(v, 'invalid_mnemonics')) {
    r.check(`invalid_mnemonics/${c.name}`, () => {
      let got: unknown = 'ok';
      try {
        mnemonicToSeed(str(c, 'input'));
      } catch (e) {
        got = e instanceof MnemonicError ? e.problem : String(e);
      }
      eq(got, c.error, 'error');
    });
  }
  r.done();
}

function noncesJson(v: JsonValue): void {
  const r = new Report('nonces.json');
  const seed = hex(v as Case, 'seed');
  for (const c of arr(v, 'cases')) {
    r.check(`cases/${c.name}`, () => {
      const nonce = str(c, 'nonce');
      eq(isSignableNonce(nonce), c.sign, 'sign');
      if (c.sign === true) eq(signNonce(seed, nonce), str(c, 'signature'), 'signature');
      else expectCode(() => signNonce(seed, nonce), 'bad_nonce', 'refusal');
    });
  }
  r.done();
}

function ed25519Json(v: JsonValue): void {
  const r = new Report('ed25519.json');
  for (const c of arr(v, 'keys')) {
    r.check(`keys/${c.name} (${String(c.reason)})`, () => eq(isValidPublicKey(hex(c, 'public_hex')), c.valid, 'valid'));
  }
  for (const c of arr(v, 'signatures')) {
    r.check(`signatures/${c.name} (${String(c.reason)})`, () =>
      eq(verifyStrict(hex(c, 'signature_hex'), hex(c, 'message_hex'), hex(c, 'public_hex')), c.valid, 'valid'),
    );
  }
  r.done();
}

function signaturesJson(v: JsonValue): void {
  const r = new Report('signatures.json');
  for (const c of arr(v, 'valid')) {
    r.check(`valid/${c.name}`, () => {
      const purpose = str(c, 'purpose') as Purpose;
      const seed = hex(c, 'seed');
      eq(identityFromSeed(seed).key, str(c, 'key'), 'key');
      const unsigned = c.unsigned as JsonObject;
      eq(hexEncode(signingInput(purpose, unsigned)), str(c, 'signing_input_hex'), 'signing input');
      const signed = signObject(seed, purpose, unsigned);
      eq(signed.sig, str(c, 'sig'), 'sig');
      eq(jcs(signed), str(c, 'signed'), 'signed');
      verifyObject(purpose, parseCanonical(utf8(str(c, 'signed'))) as JsonObject, parseKeyString(str(c, 'key')));
    });
  }
  for (const c of arr(v, 'invalid')) {
    r.check(`invalid/${c.name}`, () =>
      expectCode(() => {
        const o = parseProfile(str(c, 'signed'));
        if (!isObject(o)) throw new KezError('invalid_request', 'not an object');
        verifyObject(str(c, 'purpose') as Purpose, o, parseKeyString(str(c, 'key')));
      }, str(c, 'error')),
    );
  }
  r.done();
}

function jcsJson(v: JsonValue): void {
  const r = new Report('jcs.json');
  for (const c of arr(v, 'canonicalize')) {
    r.check(`canonicalize/${c.name}`, () => eq(canonicalizeText(str(c, 'input')), str(c, 'output'), 'output'));
  }
  for (const c of arr(v, 'canonicalize_invalid')) {
    r.check(`canonicalize_invalid/${c.name}`, () => expectCode(() => canonicalizeText(str(c, 'input')), str(c, 'error')));
  }
  for (const c of arr(v, 'profile')) {
    r.check(`profile/${c.name}`, () => {
      const b = bytesOf(c, 'input');
      expectCode(() => parseProfile(b), str(c, 'parse_profile'), 'parse_profile');
      expectCode(() => parseCanonical(b), str(c, 'parse_canonical'), 'parse_canonical');
    });
  }
  r.done();
}

function handlesJson(v: JsonValue): void {
  const r = new Report('handles.json');
  const home = str(v as Case, 'home_domain');
  for (const c of arr(v, 'valid')) r.check(`valid/${c.name}`, () => eq(parseHandleInput(str(c, 'input'), home).full, str(c, 'handle'), 'handle'));
  for (const c of arr(v, 'invalid')) r.check(`invalid/${c.name}`, () => expectCode(() => parseHandleInput(str(c, 'input'), home), str(c, 'error')));
  for (const c of arr(v, 'canonical_invalid')) r.check(`canonical_invalid/${c.name}`, () => expectCode(() => parseCanonicalHandle(str(c, 'input')), str(c, 'error')));
  for (const c of arr(v, 'reserved')) {
    r.check(`reserved/${c.name}`, () => {
      const h = parseHandleInput(str(c, 'input'), home);
      eq(h.full, str(c, 'handle'), 'handle');
      eq(isReservedLocal(h.local), c.reserved, 'reserved');
    });
  }
  for (const c of arr(v, 'display')) r.check(`display/${c.name}`, () => eq(displayHandle(str(c, 'handle'), home), str(c, 'display'), 'display'));
  r.done();
}

function registerJson(v: JsonValue): void {
  const r = new Report('register.json');
  const domain = str(v as Case, 'domain');
  for (const c of arr(v, 'valid')) {
    r.check(`valid/${c.name}`, () => {
      const got = verifyRegistration(utf8(str(c, 'bytes')), domain, num(c, 'now'));
      const e = c.expect as Case;
      eq({ aud: domain, handle: got.handle, key: got.key, ts: got.ts, nonce: got.nonce }, { aud: e.aud, handle: e.handle, key: e.key, ts: e.ts, nonce: e.nonce }, 'expect');
      eq(identityFromSeed(hex(c, 'seed')).key, got.key, 'seed → key');
    });
  }
  for (const c of arr(v, 'invalid')) {
    r.check(`invalid/${c.name}`, () =>
      expectCode(() => verifyRegistration(bytesOf(c, 'bytes'), typeof c.domain === 'string' ? c.domain : domain, num(c, 'now')), str(c, 'error')),
    );
  }
  r.done();
}

/** Our derived state in the vector file's JSON shape. */
function stateJson(s: ChainState): JsonValue {
  return {
    key: s.key,
    seqno: s.seqno,
    tail: s.tail,
    endpoints: s.endpoints.map((e) => ({ link_id: e.linkId, ...e.body })),
    shared_files: s.sharedFiles,
    claims: s.claims.map((c) => ({ link_id: c.linkId, ...c.body })),
  };
}

function sigchainJson(v: JsonValue): void {
  const r = new Report('sigchain.json');
  for (const c of arr(v, 'chains')) {
    r.check(`chains/${c.name}`, () => {
      let s = emptyState(str(c, 'key'));
      for (const [i, l] of (c.links as Case[]).entries()) {
        const link = parseLinkBytes(utf8(str(l, 'bytes')));
        eq(link.seqno, l.seqno, `link ${i} seqno`);
        eq(link.linkId, l.link_id, `link ${i} link_id`);
        s = applyLink(s, link);
      }
      eq(JSON.parse(jcs(stateJson(s))), JSON.parse(jcs(c.state)), 'state');
    });
  }
  for (const c of arr(v, 'invalid_chains')) {
    r.check(`invalid_chains/${c.name}`, () => {
      let s = emptyState(str(c, 'key'));
      const links = c.links as string[];
      const failsAt = num(c, 'fails_at');
      for (let i = 0; i < failsAt; i++) s = applyLink(s, parseLinkBytes(utf8(links[i]!)));
      expectCode(() => applyLink(s, parseLinkBytes(utf8(links[failsAt]!))), str(c, 'error'));
    });
  }
  r.done();
}

function envelopesJson(v: JsonValue): void {
  const r = new Report('envelopes.json');
  for (const c of arr(v, 'valid')) {
    r.check(`valid/${c.name}`, () => {
      const sender = identityFromSeed(hex(c, 'sender_seed'));
      const recipient = identityFromSeed(hex(c, 'recipient_seed'));
      const sealed = seal({
        senderSeed: sender.seed,
        recipientPk: recipient.pk,
        kind: str(c, 'kind') as MessageKind,
        body: c.body as JsonObject,
        ts: num(c, 'ts'),
        id: hex(c, 'id_hex'),
        ephemeral: hex(c, 'eph_secret'),
      });
      eq(fromUtf8(sealed.plaintext), str(c, 'inner'), 'inner');
      eq(fromUtf8(sealed.outer), str(c, 'outer'), 'outer');
      const o = open(utf8(str(c, 'outer')), { mySeed: recipient.seed, now: num(c, 'now'), retentionMs: num(c, 'window_ms') });
      const e = c.expect as Case;
      eq({ from: o.from, id: o.id, ts: o.ts, kind: o.kind, body: JSON.parse(jcs(o.body)) }, { from: e.from, id: e.id, ts: e.ts, kind: e.kind, body: JSON.parse(jcs(e.body)) }, 'expect');
    });
  }
  for (const c of arr(v, 'invalid')) {
    r.check(`invalid/${c.name}`, () =>
      expectCode(() => open(bytesOf(c, 'outer'), { mySeed: hex(c, 'recipient_seed'), now: num(c, 'now'), retentionMs: num(c, 'window_ms') }), str(c, 'error')),
    );
  }
  r.done();
}

function filesJson(v: JsonValue): void {
  const r = new Report('files.json');
  const blobs = new Map<string, Uint8Array>();
  for (const c of arr(v, 'stream')) {
    r.check(`stream/${c.name}`, () => {
      const kf = hex(c, 'file_key');
      const n16 = hex(c, 'n16');
      const pt = generate(c.plaintext!);
      eq(hexEncode(blake3(pt)), str(c, 'plaintext_blake3'), 'plaintext_blake3');
      eq(hexEncode(payloadKey(kf, n16)), str(c, 'payload_key'), 'payload_key');
      eq(hexEncode(commitment(kf, n16)), str(c, 'commit'), 'commit');
      const blob = encryptBlob(pt, kf, n16);
      blobs.set(str(c, 'name'), blob);
      eq(blob.length, c.blob_len, 'blob_len');
      eq(hexEncode(blake3(blob)), str(c, 'blob_blake3'), 'blob_blake3');
      eq(hexEncode(blob.subarray(0, 64)), str(c, 'blob_head_hex'), 'blob_head_hex');
      eq(hexEncode(blob.subarray(Math.max(0, blob.length - 64))), str(c, 'blob_tail_hex'), 'blob_tail_hex');
      checkCommit(kf, blob, str(c, 'commit'));
      if (!bytesEqual(decryptBlob(blob, kf), pt)) throw new Error('decrypt does not give the plaintext back');
    });
  }
  for (const c of arr(v, 'stream_invalid')) {
    r.check(`stream_invalid/${c.name} (${String(c.reason)})`, () => {
      const parts = (c.blob as Case[]).map((p) => {
        if (typeof p.hex === 'string') return hexDecode(p.hex);
        const src = blobs.get(str(p, 'source'));
        if (!src) throw new Error(`unknown source ${String(p.source)}`);
        return src.subarray(num(p, 'start'), num(p, 'end'));
      });
      const blob = concatBytes(...parts);
      const kf = hex(c, 'file_key');
      const got = code(() => openBlob(blob, kf, str(c, 'commit')));
      const expected = str(c, 'error');
      if (!(got === expected || (expected === 'decrypt_failed' && got === 'bad_commit' && c.reason === 'commit'))) eq(got, expected, 'error');
    });
  }
  for (const c of arr(v, 'wraps')) {
    r.check(`wraps/${c.name}`, () => {
      const recipient = parseKeyString(str(c, 'recipient'));
      const owner = parseKeyString(str(c, 'owner'));
      const w = wrapFileKey({ kf: hex(c, 'file_key'), recipientPk: recipient, ownerPk: owner, blobHash: hex(c, 'blob_hash'), ephemeral: hex(c, 'eph_secret') });
      eq(w, { enc: str(c, 'enc'), ct: str(c, 'ct') }, 'wrap');
      eq(b64uEncode(x25519.getPublicKey(hex(c, 'eph_secret'))), str(c, 'enc'), 'enc');
      eq(hexEncode(unwrapFileKey({ enc: str(c, 'enc'), ct: str(c, 'ct') }, hex(c, 'recipient_seed'), owner, hex(c, 'blob_hash'))), str(c, 'file_key'), 'unwrap');
    });
  }
  for (const c of arr(v, 'wraps_invalid')) {
    r.check(`wraps_invalid/${c.name} (${String(c.reason)})`, () => {
      const got = code(() => unwrapFileKey(c.wrap!, hex(c, 'reader_seed'), parseKeyString(str(c, 'owner')), hex(c, 'blob_hash')));
      if (got === 'ok') throw new Error('the wrap opened');
    });
  }
  for (const c of arr(v, 'meta')) {
    r.check(`meta/${c.name}`, () => {
      const kf = hex(c, 'file_key');
      const bh = hex(c, 'blob_hash');
      const m = c.meta as Case;
      eq(hexEncode(metaKey(kf)), str(c, 'meta_key'), 'meta_key');
      eq(jcs(m), str(c, 'plaintext'), 'plaintext');
      eq(encryptMeta(kf, bh, { name: str(m, 'name'), size: num(m, 'size'), hash: str(m, 'hash') }), str(c, 'sealed'), 'sealed');
      eq(decryptMeta(kf, bh, str(c, 'sealed')), { name: m.name, size: m.size, hash: m.hash }, 'open');
    });
  }
  for (const c of arr(v, 'meta_invalid')) {
    r.check(`meta_invalid/${c.name}`, () => expectCode(() => decryptMeta(hex(c, 'file_key'), hex(c, 'blob_hash'), str(c, 'sealed')), str(c, 'error')));
  }
  for (const c of arr(v, 'entries_invalid')) {
    r.check(`entries_invalid/${c.name}`, () => expectCode(() => parseEntry(c.entry!), str(c, 'error')));
  }
  for (const c of arr(v, 'padding')) {
    r.check(`padding/${c.name}`, () => eq(paddedLength(num(c, 'size')), num(c, 'padded'), 'padded'));
  }
  for (const c of arr(v, 'unpad')) {
    r.check(`unpad/${c.name}`, () => {
      const size = num(c, 'size');
      const plain = concatBytes(new Uint8Array(size).fill(0x61), hexDecode(str(c, 'tail_hex')));
      if (typeof c.error === 'string') expectCode(() => unpadFile(plain, size), c.error);
      else eq(unpadFile(plain, size).length, size, 'file length');
    });
  }
  r.done();
}

function manifestsJson(v: JsonValue): void {
  const r = new Report('manifests.json');
  const m = (v as Case).manifest as Case;
  const chainFor = (owner: string, pointer: JsonValue): ChainState => ({
    ...emptyState(owner),
    seqno: 1,
    tail: '00'.repeat(32),
    sharedFiles: pointer as JsonObject,
  });
  r.check('manifest', () => {
    const bytes = utf8(str(m, 'bytes'));
    eq(hexEncode(blake3(bytes)), str(m, 'hash'), 'hash');
    eq(identityFromSeed(hex(m, 'owner_seed')).key, str(m, 'owner'), 'owner');
    const man = verifyManifest(bytes, chainFor(str(m, 'owner'), m.pointer!));
    eq(man.seq, m.seq, 'seq');
    eq(man.ctime, m.ctime, 'ctime');
    for (const reader of m.readers as Case[]) {
      const opened = entriesForMe(man, hex(reader, 'seed'));
      eq(
        opened.map((o) => ({ id: o.entry.id, file_key: hexEncode(o.kf), meta: o.meta })),
        (reader.opens as Case[]).map((o) => ({ id: o.id, file_key: o.file_key, meta: o.meta })),
        `reader ${String(reader.name)}`,
      );
    }
    // Rebuild the manifest bytes from the inputs.
    const files = m.files as Case[];
    const ownerSeed = hex(m, 'owner_seed');
    const owner = identityFromSeed(ownerSeed);
    const entries = files.map((f) => {
      const kf = hex(f, 'file_key');
      const n16 = hex(f, 'n16');
      const pt = generate(f.plaintext!);
      const blob = encryptBlob(pt, kf, n16);
      const blobHash = blake3(blob);
      const recips = (f.recipients as string[]).map((k) => parseKeyString(k));
      const ephs = (f.wrap_eph_secrets as string[]).map((h) => hexDecode(h));
      return {
        id: b64uEncode(hex(f, 'id_hex')),
        blob: hexEncode(blobHash),
        ct_size: blob.length,
        commit: hexEncode(commitment(kf, n16)),
        meta: encryptMeta(kf, blobHash, { name: str(f, 'name'), size: pt.length, hash: hexEncode(blake3(pt)) }),
        wraps: recips.map((rk, i) => wrapFileKey({ kf, recipientPk: rk, ownerPk: owner.pk, blobHash, ephemeral: ephs[i] })),
      };
    });
    const rebuilt = jcsBytes(
      signObject(ownerSeed, 'manifest', { type: 'kez.manifest', v: 1, owner: owner.key, seq: num(m, 'seq'), ctime: num(m, 'ctime'), entries: entries as unknown as JsonValue[] }),
    );
    eq(fromUtf8(rebuilt), str(m, 'bytes'), 'rebuilt bytes');
  });
  for (const c of arr(v, 'invalid')) {
    r.check(`invalid/${c.name}`, () => expectCode(() => verifyManifest(bytesOf(c, 'bytes'), chainFor(str(c, 'owner'), c.pointer!)), str(c, 'error')));
  }
  r.done();
}

function safetyJson(v: JsonValue): void {
  const r = new Report('safety.json');
  for (const c of arr(v, 'fingerprints')) {
    r.check(`fingerprints/${c.name}`, () => {
      const pk = parseKeyString(str(c, 'key'));
      eq(hexEncode(fingerprintBytes(pk)), str(c, 'f_hex'), 'f_hex');
      eq(fingerprint(pk), str(c, 'fingerprint'), 'fingerprint');
    });
  }
  for (const c of arr(v, 'safety_numbers')) {
    r.check(`safety_numbers/${c.name}`, () => {
      const a = parseKeyString(str(c, 'a'));
      const b = parseKeyString(str(c, 'b'));
      eq(safetyNumber(a, b), str(c, 'safety_number'), 'a,b');
      eq(safetyNumber(b, a), str(c, 'safety_number'), 'b,a');
    });
  }
  r.done();
}

/** One handler per vector file name. */
function irohEndpointsJson(v: JsonValue): void {
  const r = new Report('iroh_endpoints.json');
  for (const c of arr(v, 'endpoints')) {
    r.check(`endpoints/${c.name}`, () => {
      const seed = hex(c, 'seed');
      const device = str(c, 'device');
      const role = str(c, 'role');
      if (!isIrohRole(role)) throw new Error(`unknown role ${role}`);
      eq(identityFromSeed(seed).key, c.key, 'key');
      eq(hexEncode(endpointSeedInfo(device, role)), c.info_hex, 'info');
      eq(hexEncode(endpointSeed(seed, device, role)), c.endpoint_seed, 'endpoint_seed');
      const pub = hexEncode(endpointPublic(seed, device, role));
      eq(pub, c.endpoint_public, 'endpoint_public');
      // The body this client would publish, and a link carrying it verifies.
      const body = irohDeviceEndpointBody(pub, device, role);
      eq(body, c.body, 'body');
      const link = buildLink({ seed, prev: null, ctime: 1_800_000_000_000, op: 'add_endpoint', body });
      eq(applyLink(emptyState(identityFromSeed(seed).key), parseLinkBytes(link.bytes)).endpoints.length, 1, 'endpoints');
    });
  }
  for (const c of arr(v, 'invalid_devices')) {
    r.check(`invalid_devices/${c.name}`, () => {
      expectCode(() => parseDeviceId(c.device), str(c, 'error'));
      expectCode(() => endpointSeed(new Uint8Array(32), c.device as string, 'serve'), str(c, 'error'), 'derivation');
    });
  }
  r.done();
}

function groupsJson(v: JsonValue): void {
  const r = new Report('groups.json');
  const parseAll = (links: string[]): GroupLink[] => links.map((b) => parseGroupLinkBytes(utf8(b)));
  const logOf = (links: GroupLink[]): GroupLog | null => {
    if (!links.length) return null;
    const log = new GroupLog(links[0]!);
    for (const l of links.slice(1)) log.insert(l);
    return log;
  };
  for (const c of arr(v, 'logs')) {
    r.check(`logs/${c.name}`, () => {
      let s: GroupState | null = null;
      for (const [i, l] of (c.links as Case[]).entries()) {
        const link = parseGroupLinkBytes(utf8(str(l, 'bytes')));
        eq(link.linkId, l.link_id, `link ${i} link_id`);
        s = s === null ? groupGenesis(link) : applyGroupLink(s, link);
        eq(groupStateHash(s), l.state_hash, `link ${i} state_hash`);
      }
      eq(groupStateJson(s!), c.state, 'state');
      eq(groupStateHash(s!), c.state_hash, 'state_hash');
      eq(groupStateJson(logOf(parseAll((c.links as Case[]).map((l) => str(l, 'bytes'))))!.current()), c.state, 'state as a tree');
    });
  }
  for (const c of arr(v, 'invalid_logs')) {
    r.check(`invalid_logs/${c.name}`, () => {
      const links = c.links as string[];
      const failsAt = num(c, 'fails_at');
      let s: GroupState | null = null;
      for (let i = 0; i < failsAt; i++) {
        const l = parseGroupLinkBytes(utf8(links[i]!));
        s = s === null ? groupGenesis(l) : applyGroupLink(s, l);
      }
      expectCode(() => {
        const l = parseGroupLinkBytes(utf8(links[failsAt]!));
        return s === null ? groupGenesis(l) : applyGroupLink(s, l);
      }, str(c, 'error'));
    });
  }
  for (const c of arr(v, 'forks')) {
    r.check(`forks/${c.name}`, () => {
      const links = parseAll(c.links as string[]);
      for (const order of c.orders as number[][]) {
        const log = logOf(order.map((i) => links[i]!))!;
        eq(log.canonical().links.map((l) => l.linkId), c.canonical, `canonical, order ${order}`);
        eq(groupStateJson(log.current()), c.state, `state, order ${order}`);
        eq(groupStateHash(log.current()), c.state_hash, `state_hash, order ${order}`);
        eq(log.lost().map((l) => l.linkId).sort(), c.lost, `lost, order ${order}`);
      }
    });
  }
  for (const c of arr(v, 'messages')) {
    r.check(`messages/${c.name}`, () => {
      const m = parseGroupMessage(c.body!);
      eq(m.links.map((l) => l.obj), (c.body as Case).links, 'links');
    });
  }
  for (const c of arr(v, 'invalid_messages')) {
    r.check(`invalid_messages/${c.name}`, () => expectCode(() => parseGroupMessage(c.body!), str(c, 'error')));
  }
  for (const c of arr(v, 'verdicts')) {
    r.check(`verdicts/${c.name}`, () => {
      const run = () => {
        const log = logOf(parseAll(c.known as string[]));
        return receiveGroupMessage(log, parseGroupMessage(c.body!), str(c, 'from'), str(c, 'reader'));
      };
      if (typeof c.error === 'string') {
        expectCode(run, c.error);
      } else {
        const out = run();
        eq(out.verdict, c.verdict, 'verdict');
        eq(groupStateHash(out.log.current()), c.state_hash, 'state_hash');
      }
    });
  }
  r.done();
}

export const handlers: Record<string, (v: JsonValue) => void> = {
  'keys.json': keysJson,
  'nonces.json': noncesJson,
  'ed25519.json': ed25519Json,
  'signatures.json': signaturesJson,
  'jcs.json': jcsJson,
  'handles.json': handlesJson,
  'register.json': registerJson,
  'sigchain.json': sigchainJson,
  'envelopes.json': envelopesJson,
  'files.json': filesJson,
  'manifests.json': manifestsJson,
  'safety.json': safetyJson,
  'iroh_endpoints.json': irohEndpointsJson,
  'groups.json': groupsJson,
};
