/**
 * Pure helpers for showing and searching messages: lengths, safe links,
 * day separators, the new-messages divider, read-more and local search.
 * No state, no DOM: unit-tested in messages.test.ts.
 */
import { MAX_TEXT_CHARS } from '../lib/envelope';

/** Length as the protocol counts it (§ text body: Unicode code points, not UTF-16 units). */
export function textLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Why a text cannot be sent as one message, or null. Never truncates: the user decides what to cut. */
export function lengthProblem(s: string, max = MAX_TEXT_CHARS): string | null {
  const n = textLength(s);
  return n > max ? `This message is ${n.toLocaleString('en')} characters long; the limit is ${max.toLocaleString('en')}. Shorten it or split it into several messages.` : null;
}

export type Part = { kind: 'text'; text: string } | { kind: 'link'; text: string; href: string };

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"»”’]+$/;

/** Splits text into plain runs and http(s) links; anything else (javascript:, data:, …) stays text. */
export function linkify(text: string): Part[] {
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let raw = m[0];
    // A sentence's closing punctuation is not part of the address (a balanced ")" is kept).
    const trail = raw.match(TRAILING)?.[0] ?? '';
    if (trail) {
      let keep = raw.slice(0, raw.length - trail.length);
      if (trail.startsWith(')') && keep.split('(').length > keep.split(')').length) keep += ')';
      raw = keep;
    }
    const href = safeHref(raw);
    if (!href) continue;
    const at = m.index ?? 0;
    if (at > last) parts.push({ kind: 'text', text: text.slice(last, at) });
    parts.push({ kind: 'link', text: raw, href });
    last = at + raw.length;
  }
  if (last < text.length) parts.push({ kind: 'text', text: text.slice(last) });
  return parts;
}

/** The normalised URL when it is http or https with a host, else null. */
export function safeHref(raw: string): string | null {
  try {
    const u = new URL(raw);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) return null;
    return u.href;
  } catch {
    return null;
  }
}

/** Messages longer than this are shown folded with "Read more". */
export const FOLD_CHARS = 1200;
export const FOLD_LINES = 24;

/** The folded preview of a long text, or null when it is short enough to show whole. */
export function foldedPreview(text: string): string | null {
  const lines = text.split('\n');
  if (text.length <= FOLD_CHARS && lines.length <= FOLD_LINES) return null;
  let cut = lines.slice(0, FOLD_LINES).join('\n');
  if (cut.length > FOLD_CHARS) cut = cut.slice(0, FOLD_CHARS);
  // Do not split a surrogate pair or a word.
  const space = cut.lastIndexOf(' ');
  if (space > FOLD_CHARS * 0.8) cut = cut.slice(0, space);
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return cut + '…';
}

export function dayKey(ts: number): string {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** "Today", "Yesterday", or the date in the user's locale. */
export function dayLabel(ts: number, now = Date.now()): string {
  if (dayKey(ts) === dayKey(now)) return 'Today';
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (dayKey(ts) === dayKey(y.getTime())) return 'Yesterday';
  const d = new Date(ts);
  return d.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
}

interface Stamped {
  id: string;
  dir: string;
  ts: number;
}

export type TimelineItem<M> = { kind: 'day'; key: string; label: string } | { kind: 'new'; key: string; count: number } | { kind: 'msg'; key: string; m: M };

/**
 * The chat as shown: a day separator before the first message of each day and
 * the "new messages" divider before the first of the `unread` last incoming ones.
 */
export function timeline<M extends Stamped>(messages: readonly M[], unread: number, now = Date.now()): TimelineItem<M>[] {
  let firstNew = -1;
  if (unread > 0) {
    let seen = 0;
    for (let i = messages.length - 1; i >= 0; i--) {
      if (messages[i]!.dir !== 'in') continue;
      firstNew = i;
      if (++seen === unread) break;
    }
  }
  const out: TimelineItem<M>[] = [];
  let day = '';
  messages.forEach((m, i) => {
    const k = dayKey(m.ts);
    if (k !== day) {
      day = k;
      out.push({ kind: 'day', key: `day:${k}`, label: dayLabel(m.ts, now) });
    }
    if (i === firstNew) out.push({ kind: 'new', key: 'new', count: unread });
    out.push({ kind: 'msg', key: `${m.dir}:${m.id}`, m });
  });
  return out;
}

/** Lower-case, accents removed: what search compares. */
export function fold(s: string): string {
  return s.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
}

export interface SearchHit<M> {
  conv: string;
  m: M;
}

/** Every message containing all words of the query (any order, case and accents ignored), newest first. */
export function searchMessages<M extends Stamped & { text: string }>(
  convs: Iterable<{ hex: string; messages: readonly M[] }>,
  query: string,
  limit = 50,
): SearchHit<M>[] {
  const words = fold(query).split(/\s+/).filter(Boolean);
  if (!words.length) return [];
  const hits: SearchHit<M>[] = [];
  for (const c of convs) {
    for (const m of c.messages) {
      const t = fold(m.text);
      if (words.every((w) => t.includes(w))) hits.push({ conv: c.hex, m });
    }
  }
  return hits.sort((a, b) => b.m.ts - a.m.ts).slice(0, limit);
}

/** The title of the tab: unread count first, so it shows in a narrow tab. */
export function tabTitle(page: string, unread: number): string {
  const base = page ? `${page} · kez-chat` : 'kez-chat';
  return unread > 0 ? `(${unread > 99 ? '99+' : unread}) ${base}` : base;
}
