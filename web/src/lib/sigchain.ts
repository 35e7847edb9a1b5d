/**
 * Sigchains (PROTOCOL.md §5): build links, compute link ids, verify a whole
 * chain link by link, derive state, and detect rollback or forks against the
 * (seqno, link_id) a client verified before.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { fail, KezError } from './errors';
import { hexDecode, hexEncode } from './encoding';
import { Fields, jcsBytes, obj, parseCanonical, type JsonObject, type JsonValue } from './jcs';
import { DEVICE_ID, isIrohRole, type IrohRole } from './iroh-endpoint';
import { identityFromSeed, isValidPublicKey, parseKeyString } from './keys';
import { signingInput, signObject, verifyObject } from './sign';

export const MAX_LINK_BYTES = 8192;
export const MAX_CHAIN_LINKS = 10_000;
export const TIME_WINDOW_MS = 300_000;

export const KNOWN_OPS = ['add_endpoint', 'remove_endpoint', 'set_shared_files', 'add_claim'] as const;
export type KnownOp = (typeof KNOWN_OPS)[number];

const LINK_KEYS = ['type', 'v', 'chain', 'signer', 'seqno', 'prev', 'ctime', 'op', 'ignore_if_unsupported', 'body', 'sig'] as const;
const HEX64 = /^[0-9a-f]{64}$/;
const SERVICE = /^[a-z0-9_.-]{1,32}$/;

export interface Link {
  obj: JsonObject;
  /** JCS bytes of the whole link (== the wire bytes for a valid link). */
  bytes: Uint8Array;
  linkId: string;
  seqno: number;
  prev: string | null;
  ctime: number;
  op: string;
  body: JsonObject;
  ignoreIfUnsupported: boolean;
}

export interface Endpoint {
  linkId: string;
  body: JsonObject;
}

export interface ChainState {
  key: string;
  seqno: number; // 0 for an empty chain
  tail: string | null;
  endpoints: Endpoint[];
  sharedFiles: JsonObject | null;
  claims: Endpoint[];
}

export interface ChainPin {
  seqno: number;
  linkId: string;
}

export function emptyState(key: string): ChainState {
  return { key, seqno: 0, tail: null, endpoints: [], sharedFiles: null, claims: [] };
}

export function linkIdOf(link: JsonObject): string {
  return hexEncode(sha256(signingInput('sigchain.link', link)));
}

export interface BuildLinkParams {
  seed: Uint8Array;
  /** Tail of the chain being extended, or null for link 1. */
  prev: ChainPin | null;
  ctime: number;
  op: string;
  body: JsonObject;
  ignoreIfUnsupported?: boolean;
}

export function buildLink(p: BuildLinkParams): Link {
  const id = identityFromSeed(p.seed);
  const unsigned = obj({
    type: 'kez.sigchain.link',
    v: 1,
    chain: id.key,
    signer: id.key,
    seqno: p.prev ? p.prev.seqno + 1 : 1,
    prev: p.prev ? p.prev.linkId : null,
    ctime: p.ctime,
    op: p.op,
    ignore_if_unsupported: p.ignoreIfUnsupported ?? false,
    body: p.body,
  });
  return parseLinkObject(signObject(p.seed, 'sigchain.link', unsigned));
}

/** add_endpoint bodies (§5). */
export function natsEndpointBody(hex: string, url: string): JsonObject {
  return obj({ kind: 'nats', subject: `kez.inbox.${hex}`, url });
}
/** A wave-1 iroh endpoint (no device: a serving endpoint). */
export function irohEndpointBody(hex: string): JsonObject {
  return obj({ kind: 'iroh', node_id: hex });
}
/** A per-device iroh endpoint (§7.5): `nodeHex` is the endpoint id of `device`'s `role` endpoint. */
export function irohDeviceEndpointBody(nodeHex: string, device: string, role: IrohRole): JsonObject {
  return obj({ kind: 'iroh', node_id: nodeHex, device, role });
}

/** Parses wire bytes of one link: size, canonical form, shape, signature. */
export function parseLinkBytes(bytes: Uint8Array): Link {
  if (bytes.length > MAX_LINK_BYTES) fail('too_large', 'a link is at most 8 KiB');
  return parseLinkObject(parseCanonical(bytes), bytes);
}

/**
 * Checks one link on its own, in the order the Rust contract crate uses:
 * shape (invalid_request), chain and signer keys (invalid_key), signer ==
 * chain, seqno/prev form, the op body's static rules (invalid_link; body
 * shape errors are invalid_request), then type/v (wrong_type) and the
 * signature (bad_signature). For a link that arrived embedded in a larger
 * JSON document, its bytes are its JCS form, re-checked against the profile.
 */
export function parseLinkObject(o: JsonValue, wireBytes?: Uint8Array): Link {
  const bytes = wireBytes ?? jcsBytes(o);
  if (!wireBytes) {
    if (bytes.length > MAX_LINK_BYTES) fail('too_large', 'a link is at most 8 KiB');
    parseCanonical(bytes); // profile check (keys, integers) of the embedded object
  }
  const f = Fields.exact(o, 'link', LINK_KEYS);
  const chain = f.str('chain');
  const pk = parseKeyString(chain, 'chain');
  const signer = f.str('signer');
  parseKeyString(signer, 'signer');
  if (signer !== chain) fail('invalid_link', 'signer must equal chain');
  const seqno = f.int('seqno');
  if (seqno < 1) fail('invalid_link', 'seqno starts at 1');
  const prevV = f.get('prev');
  if (prevV !== null && (typeof prevV !== 'string' || !HEX64.test(prevV))) {
    fail('invalid_link', 'prev must be null or a 64-hex link id');
  }
  if ((seqno === 1) !== (prevV === null)) fail('invalid_link', 'prev is null exactly for seqno 1');
  const ctime = f.int('ctime');
  const ignore = f.bool('ignore_if_unsupported');
  const body = f.object('body');
  const op = f.str('op');
  checkOpBody(op, body, ignore, chain.slice('ed25519:'.length));
  if (f.str('type') !== 'kez.sigchain.link' || f.int('v') !== 1) fail('wrong_type', 'not a kez.sigchain.link v1 object');
  verifyObject('sigchain.link', f.map, pk);
  return { obj: f.map, bytes, linkId: linkIdOf(f.map), seqno, prev: prevV, ctime, op, body, ignoreIfUnsupported: ignore };
}

function charCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** The op body rules that need no chain state (§5 table). */
function checkOpBody(op: string, b: JsonObject, ignore: boolean, hex: string): void {
  const bad = (msg: string): never => fail('invalid_link', `${op}: ${msg}`);
  switch (op) {
    case 'add_endpoint': {
      const kind = b.kind;
      if (kind === 'nats') {
        const f = Fields.exact(b, 'nats endpoint', ['kind', 'subject', 'url']);
        if (f.str('subject') !== `kez.inbox.${hex}`) bad('subject must be kez.inbox.<chain hex>');
        const n = charCount(f.str('url'));
        if (n < 1 || n > 512) bad('url must be 1–512 characters');
      } else if (kind === 'iroh') {
        const f = Fields.exact(b, 'iroh endpoint', ['kind', 'node_id'], ['device', 'role']);
        // Any key that passes §2.1, not only the chain key (per-device endpoints, §7.5).
        const node = f.str('node_id');
        if (!HEX64.test(node) || !isValidPublicKey(hexDecode(node, 'node_id', 32))) bad('node_id must be a valid key');
        // device and role come together (a device endpoint) or not at all (wave 1).
        const device = f.optStr('device');
        const role = f.optStr('role');
        if ((device === undefined) !== (role === undefined)) fail('invalid_request', 'iroh endpoint: device and role go together');
        if (device !== undefined && !DEVICE_ID.test(device)) bad('device must be 16 lowercase hex characters');
        if (role !== undefined && !isIrohRole(role)) bad('role must be serve or fetch');
      } else {
        bad('unknown endpoint kind');
      }
      return;
    }
    case 'remove_endpoint': {
      const f = Fields.exact(b, 'remove_endpoint', ['target']);
      if (!HEX64.test(f.str('target'))) bad('target must be a 64-hex link id');
      return;
    }
    case 'set_shared_files': {
      const f = Fields.exact(b, 'set_shared_files', ['manifest', 'manifest_seq', 'size']);
      if (!HEX64.test(f.str('manifest'))) bad('manifest must be a 64-hex BLAKE3 hash');
      f.int('manifest_seq');
      f.int('size');
      return;
    }
    case 'add_claim': {
      const f = Fields.exact(b, 'add_claim', ['service', 'account'], ['proof']);
      if (!SERVICE.test(f.str('service'))) bad('service must match [a-z0-9_.-]{1,32}');
      const n = charCount(f.str('account'));
      if (n < 1 || n > 256) bad('account must be 1–256 characters');
      const proof = f.optStr('proof');
      if (proof !== undefined && (proof.length === 0 || charCount(proof) > 512)) bad('proof must be 1–512 characters');
      return;
    }
    default:
      if (!ignore) bad('unknown op');
  }
}

/**
 * Extends `state` by `link` (the link itself already checked): chain, order
 * (seqno_conflict), prev (prev_mismatch), length, and the state-dependent op
 * rules (live remove target, increasing manifest_seq). Returns the new state.
 */
export function applyLink(state: ChainState, link: Link): ChainState {
  if (link.obj.chain !== state.key) fail('invalid_link', 'link belongs to a different chain');
  if (link.seqno !== state.seqno + 1) fail('seqno_conflict', `expected seqno ${state.seqno + 1}, got ${link.seqno}`);
  if (link.prev !== state.tail) fail('prev_mismatch', `link ${link.seqno}: prev is not the previous link id`);
  if (link.seqno > MAX_CHAIN_LINKS) fail('chain_too_long', 'a chain has at most 10 000 links');
  const next: ChainState = { ...state, seqno: link.seqno, tail: link.linkId, endpoints: [...state.endpoints], claims: [...state.claims] };
  const b = link.body;
  switch (link.op) {
    case 'add_endpoint':
      next.endpoints.push({ linkId: link.linkId, body: b });
      break;
    case 'remove_endpoint': {
      const i = next.endpoints.findIndex((e) => e.linkId === b.target);
      if (i < 0) fail('invalid_link', `link ${link.seqno}: remove_endpoint targets no live endpoint`);
      next.endpoints.splice(i, 1);
      break;
    }
    case 'set_shared_files': {
      const last = state.sharedFiles?.manifest_seq;
      if (typeof last === 'number' && (b.manifest_seq as number) <= last) {
        fail('invalid_link', `link ${link.seqno}: manifest_seq must increase`);
      }
      next.sharedFiles = b;
      break;
    }
    case 'add_claim':
      next.claims.push({ linkId: link.linkId, body: b });
      break;
    default:
      break; // unsupported op with ignore_if_unsupported: skipped
  }
  return next;
}

export interface WalkedLink {
  seqno: number;
  link: Link | null;
  raw: JsonValue | Uint8Array;
  /** null when this link verified; else why it did not. */
  error: KezError | null;
  /** true when the link was skipped for an unsupported op with ignore_if_unsupported. */
  ignored: boolean;
}

export interface WalkResult {
  links: WalkedLink[];
  /** State after the last link that verified. */
  state: ChainState;
  /** First failure; links after it are reported unverified. */
  error: KezError | null;
}

/**
 * Walks a chain for display: every link up to the first failure is verified;
 * the failing link carries its error and later links are marked as not checked.
 */
export function walkChain(key: string, links: readonly (JsonValue | Uint8Array)[]): WalkResult {
  parseKeyString(key, 'chain key');
  let state = emptyState(key);
  const out: WalkedLink[] = [];
  let error: KezError | null = null;
  if (links.length > MAX_CHAIN_LINKS) error = new KezError('chain_too_long', 'a chain has at most 10 000 links');
  for (const [i, raw] of links.entries()) {
    if (error) {
      out.push({ seqno: i + 1, link: null, raw, error: new KezError('invalid_link', 'not checked: an earlier link failed'), ignored: false });
      continue;
    }
    try {
      const link = raw instanceof Uint8Array ? parseLinkBytes(raw) : parseLinkObject(raw);
      state = applyLink(state, link);
      const ignored = !(KNOWN_OPS as readonly string[]).includes(link.op);
      out.push({ seqno: link.seqno, link, raw, error: null, ignored });
    } catch (e) {
      error = e instanceof KezError ? e : new KezError('invalid_link', String(e));
      out.push({ seqno: i + 1, link: null, raw, error, ignored: false });
    }
  }
  return { links: out, state, error };
}

/** Verifies a whole chain and returns its derived state; throws the first failure. */
export function verifyChain(key: string, links: readonly (JsonValue | Uint8Array)[]): ChainState {
  const r = walkChain(key, links);
  if (r.error) throw r.error;
  return r.state;
}

/** The pin a client stores after verifying a chain (null for an empty chain). */
export function pinOf(state: ChainState): ChainPin | null {
  return state.tail ? { seqno: state.seqno, linkId: state.tail } : null;
}

/**
 * Refuses a chain that does not extend what we verified before:
 * shorter → chain_rollback; different link at the pinned seqno → chain_fork.
 */
export function checkExtends(pin: ChainPin | null, links: readonly Link[]): void {
  if (!pin) return;
  if (links.length < pin.seqno) {
    fail('chain_rollback', `the server now shows ${links.length} links, but link ${pin.seqno} was verified before`);
  }
  if (links[pin.seqno - 1]!.linkId !== pin.linkId) {
    fail('chain_fork', `link ${pin.seqno} differs from the one verified before`);
  }
}

/**
 * Verifies a whole chain and that it extends `pin` (§5): the one call for every
 * path that builds on a chain (own endpoints, shared files), so a rollback or
 * fork fails hard everywhere. Throws the first failure.
 */
export function verifyExtending(key: string, links: readonly (JsonValue | Uint8Array)[], pin: ChainPin | null): ChainState {
  const r = walkChain(key, links);
  if (r.error) throw r.error;
  checkExtends(pin, r.links.map((l) => l.link!));
  return r.state;
}

/**
 * Server-side append check (§5 "Append"): the link verifies, extends the
 * stored chain, and |now − ctime| ≤ 5 minutes.
 */
export function checkAppend(state: ChainState, bytes: Uint8Array, now: number): { state: ChainState; link: Link } {
  const link = parseLinkBytes(bytes);
  const next = applyLink(state, link);
  if (Math.abs(now - link.ctime) > TIME_WINDOW_MS) fail('stale_timestamp', 'ctime is outside ±5 minutes');
  return { state: next, link };
}

/** Live endpoints of one kind. */
export function endpointsOfKind(state: ChainState, kind: string): Endpoint[] {
  return state.endpoints.filter((e) => e.body.kind === kind);
}

/** A live iroh endpoint of a chain. */
export interface IrohEndpoint {
  linkId: string;
  nodeId: string;
  /** Absent for a wave-1 endpoint. */
  device?: string;
  role?: IrohRole;
}

/** Every live iroh endpoint (all of them are admitted by providers, §7.5), in the order added. */
export function irohEndpoints(state: ChainState): IrohEndpoint[] {
  return endpointsOfKind(state, 'iroh').map((e) => {
    const out: IrohEndpoint = { linkId: e.linkId, nodeId: e.body.node_id as string };
    if (typeof e.body.device === 'string' && isIrohRole(e.body.role)) {
      out.device = e.body.device;
      out.role = e.body.role;
    }
    return out;
  });
}

/** The live iroh endpoints of one device (what removing the device withdraws). */
export function deviceIrohEndpoints(state: ChainState, device: string): IrohEndpoint[] {
  return irohEndpoints(state).filter((e) => e.device === device);
}
