/**
 * Groups (PROTOCOL.md §6.2), verification side only: parse and verify group links,
 * apply them to a state, hash states, pick the canonical log with the fork rule, parse
 * group message bodies and decide whether a message is the group's. Building and sending
 * group messages is not in the web client yet.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { fail, KezError, type ErrorCode } from './errors';
import { b64uDecode, concatBytes, hexEncode, utf8 } from './encoding';
import { Fields, jcsBytes, parseCanonical, type JsonObject, type JsonValue } from './jcs';
import { parseKeyString } from './keys';
import { signingInput, verifyObject } from './sign';

export const MAX_MEMBERS = 100;
export const MAX_GROUP_LINK_BYTES = 16 * 1024;
export const MAX_GROUP_LINKS = 1000;
export const MAX_NAME_CHARS = 64;
const MAX_TEXT_CHARS = 16 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;
// Unicode general category Cc, as Rust's char::is_control.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LINK_KEYS = ['type', 'v', 'group', 'seqno', 'prev', 'signer', 'ctime', 'op', 'body', 'sig'] as const;

export type Role = 'admin' | 'member';
export interface Member {
  key: string;
  role: Role;
}

export type GroupOp =
  | { op: 'create'; name: string; members: Member[] }
  | { op: 'add' | 'remove' | 'promote'; key: string }
  | { op: 'leave' }
  | { op: 'rename'; name: string };

export interface GroupLink {
  group: string;
  seqno: number;
  prev: string | null;
  signer: string;
  ctime: number;
  op: GroupOp;
  linkId: string;
  obj: JsonObject;
}

export interface GroupState {
  group: string;
  seqno: number;
  head: string;
  name: string;
  members: Member[];
}

const change = (msg: string): never => fail('invalid_group_change', msg);

function chars(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export function checkName(name: string): void {
  const n = chars(name);
  if (n < 1 || n > MAX_NAME_CHARS || CONTROL.test(name)) {
    change(`a group name is 1 to ${MAX_NAME_CHARS} characters without control characters`);
  }
}

function parseMembers(v: JsonValue[]): Member[] {
  const out: Member[] = [];
  for (const m of v) {
    const f = Fields.exact(m, 'member', ['key', 'role']);
    const key = f.str('key');
    parseKeyString(key, 'member key');
    const role = f.str('role');
    if (role !== 'admin' && role !== 'member') change(`unknown role ${JSON.stringify(role)}`);
    const last = out[out.length - 1];
    if (last && last.key >= key) change('create: members must be distinct and sorted by key');
    out.push({ key, role: role as Role });
  }
  return out;
}

function parseOp(op: string, body: JsonObject): GroupOp {
  const keyBody = (what: string): string => {
    const key = Fields.exact(body, what, ['key']).str('key');
    parseKeyString(key, `${what} key`);
    return key;
  };
  switch (op) {
    case 'create': {
      const f = Fields.exact(body, 'create body', ['name', 'members']);
      const name = f.str('name');
      checkName(name);
      const members = parseMembers(f.array('members'));
      if (members.length === 0) change('create: a group starts with at least its creator');
      if (members.length > MAX_MEMBERS) fail('group_full', `a group has at most ${MAX_MEMBERS} members`);
      return { op, name, members };
    }
    case 'add':
    case 'remove':
    case 'promote':
      return { op, key: keyBody(`${op} body`) };
    case 'leave':
      Fields.exact(body, 'leave body', []);
      return { op };
    case 'rename': {
      const name = Fields.exact(body, 'rename body', ['name']).str('name');
      checkName(name);
      return { op, name };
    }
    default:
      return change(`unknown group op ${JSON.stringify(op)}`);
  }
}

/** Parses wire bytes of one link: size, canonical form, shape, op body, signature. */
export function parseGroupLinkBytes(bytes: Uint8Array): GroupLink {
  if (bytes.length > MAX_GROUP_LINK_BYTES) fail('too_large', 'a group link is at most 16 KiB');
  return parseGroupLinkObject(parseCanonical(bytes));
}

/** A link embedded in a message: its bytes are its JCS form, re-checked against the profile. */
export function parseGroupLinkValue(v: JsonValue): GroupLink {
  return parseGroupLinkBytes(jcsBytes(v));
}

function parseGroupLinkObject(o: JsonValue): GroupLink {
  const f = Fields.exact(o, 'group link', LINK_KEYS);
  const group = f.str('group');
  b64uDecode(group, 'group id', 32);
  const signer = f.str('signer');
  const pk = parseKeyString(signer, 'signer');
  const seqno = f.int('seqno');
  if (seqno < 1) change('seqno starts at 1');
  const prevV = f.get('prev');
  if (prevV !== null && (typeof prevV !== 'string' || !HEX64.test(prevV))) change('prev must be null or a 64-hex state hash');
  const prev = prevV as string | null;
  const ctime = f.int('ctime');
  const op = parseOp(f.str('op'), f.object('body'));
  const first = seqno === 1;
  if (first !== (prev === null) || first !== (op.op === 'create')) {
    change('link 1 is the create link with prev null, and only it');
  }
  verifyObject('group.link', f.map, pk);
  const linkId = hexEncode(sha256(signingInput('group.link', f.map)));
  return { group, seqno, prev, signer, ctime, op, linkId, obj: f.map };
}

export function genesis(link: GroupLink): GroupState {
  if (link.op.op !== 'create') return change('a group log starts with a create link');
  const { name, members } = link.op;
  if (!members.some((m) => m.key === link.signer && m.role === 'admin')) change('create: the creator must be listed as an admin');
  return { group: link.group, seqno: 1, head: link.linkId, name, members: members.map((m) => ({ ...m })) };
}

export function stateJson(s: GroupState): JsonObject {
  return {
    group: s.group,
    seqno: s.seqno,
    head: s.head,
    name: s.name,
    members: s.members.map((m) => ({ key: m.key, role: m.role })),
  };
}

/** hex(SHA-256("kez-v1/group-state" || 0x00 || JCS(state))). */
export function stateHash(s: GroupState): string {
  return hexEncode(sha256(concatBytes(utf8('kez-v1/group-state'), Uint8Array.of(0), jcsBytes(stateJson(s)))));
}

export function roleOf(s: GroupState, key: string): Role | undefined {
  return s.members.find((m) => m.key === key)?.role;
}

/** Checks that `link` extends `s` (PROTOCOL.md §6.2) and returns the next state. */
export function applyGroupLink(s: GroupState, link: GroupLink): GroupState {
  if (link.group !== s.group) change('link belongs to another group');
  if (link.seqno !== s.seqno + 1) fail('seqno_conflict', `expected seqno ${s.seqno + 1}, got ${link.seqno}`);
  if (link.prev !== stateHash(s)) fail('prev_mismatch', 'prev is not the hash of this state');
  const signerRole = roleOf(s, link.signer);
  const needAdmin = (): void => {
    if (signerRole !== 'admin') fail('not_group_admin', 'only an admin may make this change');
  };
  const next: GroupState = { ...s, members: s.members.map((m) => ({ ...m })) };
  const op = link.op;
  switch (op.op) {
    case 'create':
      return change('create only starts a log');
    case 'add': {
      needAdmin();
      if (roleOf(s, op.key)) change('already a member');
      if (s.members.length >= MAX_MEMBERS) fail('group_full', `a group has at most ${MAX_MEMBERS} members`);
      next.members.push({ key: op.key, role: 'member' });
      next.members.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      break;
    }
    case 'remove':
      needAdmin();
      if (op.key === link.signer) change('an admin leaves with leave, not remove');
      if (!roleOf(s, op.key)) change('not a member');
      next.members = next.members.filter((m) => m.key !== op.key);
      break;
    case 'promote': {
      needAdmin();
      const m = next.members.find((x) => x.key === op.key);
      if (!m) change('not a member');
      else if (m.role !== 'member') change('already an admin');
      else m.role = 'admin';
      break;
    }
    case 'leave': {
      if (!signerRole) fail('not_group_member', 'only a member can leave');
      next.members = next.members.filter((m) => m.key !== link.signer);
      const adminsLeft = next.members.some((m) => m.role === 'admin');
      if (signerRole === 'admin' && !adminsLeft && next.members.length > 0) {
        change('the last admin cannot leave while others stay; promote someone first');
      }
      break;
    }
    case 'rename':
      needAdmin();
      if (op.name === s.name) change('the group already has this name');
      next.name = op.name;
      break;
  }
  next.seqno = link.seqno;
  next.head = link.linkId;
  return next;
}

function tryApply(s: GroupState, l: GroupLink): GroupState | null {
  try {
    return applyGroupLink(s, l);
  } catch (e) {
    if (e instanceof KezError) return null;
    throw e;
  }
}

/** Every link a member holds for one group: a tree rooted at the create link. */
export class GroupLog {
  readonly links: GroupLink[];

  constructor(create: GroupLink) {
    genesis(create);
    this.links = [create];
  }

  get group(): string {
    return this.links[0]!.group;
  }

  /** Adds a link; false when held already. A second create is `group_fork`. */
  insert(link: GroupLink): boolean {
    if (link.group !== this.group) change('link belongs to another group');
    if (this.links.some((l) => l.linkId === link.linkId)) return false;
    if (link.op.op === 'create') fail('group_fork', 'a different create link for a known group');
    if (this.links.length >= MAX_GROUP_LINKS) fail('too_large', `a group log holds at most ${MAX_GROUP_LINKS} links`);
    this.links.push(link);
    return true;
  }

  /** Every reachable state by hash, with the indices of the links that apply to it. */
  private tree(): Map<string, { state: GroupState; children: number[] }> {
    const byPrev = new Map<string, number[]>();
    this.links.forEach((l, i) => {
      if (i > 0 && l.prev !== null) byPrev.set(l.prev, [...(byPrev.get(l.prev) ?? []), i]);
    });
    const out = new Map<string, { state: GroupState; children: number[] }>();
    const todo = [genesis(this.links[0]!)];
    while (todo.length) {
      const state = todo.pop()!;
      const hash = stateHash(state);
      const children: number[] = [];
      for (const i of byPrev.get(hash) ?? []) {
        const next = tryApply(state, this.links[i]!);
        if (next) {
          children.push(i);
          todo.push(next);
        }
      }
      out.set(hash, { state, children });
    }
    return out;
  }

  /** The fork rule: drop candidates whose signer a sibling removes (unless all), then the smallest link id. */
  private winner(candidates: number[]): number | undefined {
    const removedBySibling = (i: number): boolean =>
      candidates.some((j) => {
        const op = this.links[j]!.op;
        return j !== i && op.op === 'remove' && op.key === this.links[i]!.signer;
      });
    const kept = candidates.filter((i) => !removedBySibling(i));
    const pool = kept.length ? kept : candidates;
    return pool.reduce<number | undefined>((best, i) => (best === undefined || this.links[i]!.linkId < this.links[best]!.linkId ? i : best), undefined);
  }

  /** The canonical log and the states after each of its links. */
  canonical(): { links: GroupLink[]; states: GroupState[] } {
    const tree = this.tree();
    const links = [this.links[0]!];
    const states = [genesis(this.links[0]!)];
    for (;;) {
      const node = tree.get(stateHash(states[states.length - 1]!));
      const i = node ? this.winner(node.children) : undefined;
      if (i === undefined) break;
      links.push(this.links[i]!);
      states.push(applyGroupLink(states[states.length - 1]!, this.links[i]!));
    }
    return { links, states };
  }

  current(): GroupState {
    const { states } = this.canonical();
    return states[states.length - 1]!;
  }

  knowsState(hash: string): boolean {
    return this.tree().has(hash);
  }

  /** Links off the canonical log that apply to a state on it: changes their authors re-apply. */
  lost(): GroupLink[] {
    const { links, states } = this.canonical();
    const onPath = new Set(links.map((l) => l.linkId));
    const byHash = new Map(states.map((s) => [stateHash(s), s] as const));
    return this.links.filter((l) => {
      if (onPath.has(l.linkId) || l.prev === null) return false;
      const s = byHash.get(l.prev);
      return s !== undefined && tryApply(s, l) !== null;
    });
  }
}

export interface GroupMessage {
  group: string;
  state: string;
  links: GroupLink[];
  text?: string;
}

/** Parses a `group` message body (exact keys; every carried link parsed and verified). */
export function parseGroupMessage(body: JsonValue): GroupMessage {
  const f = Fields.exact(body, 'group body', ['group', 'state', 'links'], ['text']);
  const group = f.str('group');
  b64uDecode(group, 'group id', 32);
  const state = f.str('state');
  if (!HEX64.test(state)) fail('invalid_request', 'group body: state must be a 64-hex state hash');
  const raw = f.array('links');
  if (raw.length > MAX_GROUP_LINKS) fail('too_large', `a group message carries at most ${MAX_GROUP_LINKS} links`);
  const links = raw.map((v) => {
    const l = parseGroupLinkValue(v);
    if (l.group !== group) change('a carried link belongs to another group');
    return l;
  });
  const text = f.optStr('text');
  if (text !== undefined) {
    const n = chars(text);
    if (n < 1 || n > MAX_TEXT_CHARS) fail('invalid_request', `text must be 1 to ${MAX_TEXT_CHARS} characters`);
  }
  return text === undefined ? { group, state, links } : { group, state, links, text };
}

export type Verdict = 'ok' | Extract<ErrorCode, 'unknown_group_state' | 'not_group_member'>;

/**
 * Receiver steps 2–4 of §6.2: merges the carried links into `log` (null: the group is new
 * to the reader), and says whether `from`'s message, read by `me`, is the group's.
 */
export function receiveGroupMessage(log: GroupLog | null, msg: GroupMessage, from: string, me: string): { log: GroupLog; verdict: Verdict } {
  let l = log;
  if (!l) {
    const first = msg.links[0];
    if (!first || first.op.op !== 'create') fail('unknown_group_state', 'a group this reader does not know, without its log');
    l = new GroupLog(first);
  }
  if (l.group !== msg.group) change('message names another group than the log');
  for (const link of msg.links) {
    if (link.op.op === 'create' && link.linkId === l.links[0]!.linkId) continue;
    l.insert(link);
  }
  const cur = l.current();
  let verdict: Verdict = 'ok';
  if (!l.knowsState(msg.state)) verdict = 'unknown_group_state';
  else if (!roleOf(cur, from) || !roleOf(cur, me)) verdict = 'not_group_member';
  return { log: l, verdict };
}
