import { describe, expect, it } from 'vitest';
import { dayLabel, foldedPreview, lengthProblem, linkify, safeHref, searchMessages, tabTitle, textLength, timeline } from './messages';
import { MAX_TEXT_CHARS } from '../lib/envelope';

describe('lengths', () => {
  it('counts code points like the protocol, not UTF-16 units', () => {
    expect(textLength('a😀b')).toBe(3);
    expect('a😀b'.length).toBe(4);
  });
  it('refuses over-long text with the numbers, and accepts the limit exactly', () => {
    expect(lengthProblem('x'.repeat(MAX_TEXT_CHARS))).toBeNull();
    const p = lengthProblem('x'.repeat(20_000));
    expect(p).toContain('20,000');
    expect(p).toContain('16,384');
    expect(lengthProblem('😀'.repeat(MAX_TEXT_CHARS))).toBeNull();
  });
});

describe('linkify', () => {
  it('links http and https only', () => {
    expect(linkify('see https://example.org/a?b=1 now')).toEqual([
      { kind: 'text', text: 'see ' },
      { kind: 'link', text: 'https://example.org/a?b=1', href: 'https://example.org/a?b=1' },
      { kind: 'text', text: ' now' },
    ]);
    for (const bad of ['javascript:alert(1)', 'data:text/html,<b>x</b>', 'vbscript:x', 'file:///etc/passwd', 'JAVASCRIPT://example.org/%0aalert(1)']) {
      expect(linkify(bad).every((p) => p.kind === 'text'), bad).toBe(true);
    }
    expect(safeHref('http://')).toBeNull();
    expect(safeHref('https://example.org')).toBe('https://example.org/');
  });
  it('leaves closing punctuation out of the link, keeps balanced parentheses', () => {
    const p = linkify('read (https://en.wikipedia.org/wiki/Foo_(bar)).');
    expect(p.find((x) => x.kind === 'link')!.text).toBe('https://en.wikipedia.org/wiki/Foo_(bar)');
    expect(linkify('go to http://a.example.')[1]).toEqual({ kind: 'link', text: 'http://a.example', href: 'http://a.example/' });
  });
  it('keeps all text: the parts join back to the input', () => {
    const t = 'a https://x.example/1, b http://y.example/2! c';
    expect(linkify(t).map((p) => p.text).join('')).toBe(t);
  });
});

describe('folding', () => {
  it('folds long texts only, never cutting a surrogate pair', () => {
    expect(foldedPreview('short')).toBeNull();
    const long = '😀'.repeat(5000);
    const f = foldedPreview(long)!;
    expect(f.endsWith('…')).toBe(true);
    expect(f.length).toBeLessThan(long.length);
    expect(/[\uD800-\uDBFF]…$/.test(f)).toBe(false);
    expect(foldedPreview('line\n'.repeat(40))).not.toBeNull();
  });
});

describe('timeline', () => {
  const day = 24 * 3600_000;
  const now = new Date(2026, 5, 10, 12).getTime();
  const msgs = [
    { id: '1', dir: 'in', ts: now - 2 * day },
    { id: '2', dir: 'out', ts: now - day },
    { id: '3', dir: 'in', ts: now - 60_000 },
    { id: '4', dir: 'out', ts: now - 50_000 },
    { id: '5', dir: 'in', ts: now - 40_000 },
  ];
  it('puts a separator before each day and the divider before the unread incoming ones', () => {
    const t = timeline(msgs, 2, now);
    expect(t.map((i) => (i.kind === 'msg' ? i.m.id : i.kind === 'day' ? i.label : 'NEW'))).toEqual([
      dayLabel(now - 2 * day, now),
      '1',
      'Yesterday',
      '2',
      'Today',
      'NEW',
      '3',
      '4',
      '5',
    ]);
    expect(timeline(msgs, 0, now).some((i) => i.kind === 'new')).toBe(false);
  });
});

describe('search', () => {
  it('finds messages with all words, ignoring case and accents, newest first', () => {
    const convs = [
      { hex: 'a', messages: [{ id: '1', dir: 'in', ts: 1, text: 'Meet at the Café tomorrow' }, { id: '2', dir: 'out', ts: 3, text: 'cafe? sure' }] },
      { hex: 'b', messages: [{ id: '3', dir: 'in', ts: 2, text: 'nothing here' }] },
    ];
    expect(searchMessages(convs, 'CAFE').map((h) => h.m.id)).toEqual(['2', '1']);
    expect(searchMessages(convs, 'tomorrow café').map((h) => h.conv)).toEqual(['a']);
    expect(searchMessages(convs, '   ')).toEqual([]);
    expect(searchMessages(convs, 'absent')).toEqual([]);
  });
});

it('tab title carries the unread count', () => {
  expect(tabTitle('Chats', 0)).toBe('Chats · kez-chat');
  expect(tabTitle('Chats', 3)).toBe('(3) Chats · kez-chat');
  expect(tabTitle('', 120)).toBe('(99+) kez-chat');
});
