import { expect, it } from 'vitest';
import { mergeThread } from './threads';
import type { ChatMessage, Conversation } from './types';

const msg = (id: string, ts: number, dir: 'in' | 'out' = 'in'): ChatMessage => ({ id, dir, kind: 'text', text: id, ts, at: ts, status: dir === 'in' ? 'received' : 'sent' });

it('a key change keeps one thread: old messages marked, a notice where it changed, unread carried over', () => {
  const old: Conversation = { hex: 'old', messages: [msg('a', 1), msg('b', 3, 'out')], unread: 1, lastAt: 3 };
  const cur: Conversation = { hex: 'new', messages: [msg('c', 2)], unread: 2, lastAt: 2 };
  mergeThread(old, cur, 'carol@kez.test', 10);
  expect(cur.messages.map((m) => [m.id, m.kind, !!m.oldKey])).toEqual([
    ['a', 'text', true],
    ['c', 'text', false],
    ['b', 'text', true],
    ['keychange-10', 'notice', false],
  ]);
  expect(cur.messages.at(-1)!.text).toContain('carol@kez.test has a new key');
  expect([cur.unread, cur.lastAt]).toEqual([3, 10]);
  // nothing to move: just the notice
  const lone: Conversation = { hex: 'n', messages: [], unread: 0, lastAt: 0 };
  mergeThread(undefined, lone, 'dave', 5);
  expect(lone.messages.map((m) => m.kind)).toEqual(['notice']);
});
