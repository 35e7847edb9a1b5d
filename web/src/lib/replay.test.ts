import { expect, test } from 'vitest';
import { MAX_WINDOW_MS, PROTOCOL_WINDOW_MS, pruneSeen, replayWindowMs } from './replay';
import { identityFromSeed } from './keys';
import { open, seal, textBody } from './envelope';
import { KezError } from './errors';

const DAY = 24 * 60 * 60 * 1000;

test('a server cannot lower W: a reported 1 minute still gives the protocol window', () => {
  expect(replayWindowMs(undefined, 60_000)).toBe(PROTOCOL_WINDOW_MS);
  expect(replayWindowMs(undefined, undefined)).toBe(PROTOCOL_WINDOW_MS);
  expect(replayWindowMs(undefined, 0)).toBe(PROTOCOL_WINDOW_MS);
});

test('W only grows: once raised it stays raised, and is capped', () => {
  const raised = replayWindowMs(undefined, 60 * DAY);
  expect(raised).toBe(60 * DAY);
  expect(replayWindowMs(raised, 1 * DAY)).toBe(60 * DAY);
  expect(replayWindowMs(raised, undefined)).toBe(60 * DAY);
  expect(replayWindowMs(undefined, Number.MAX_SAFE_INTEGER)).toBe(MAX_WINDOW_MS);
  expect(replayWindowMs(undefined, 1.5)).toBe(PROTOCOL_WINDOW_MS);
});

test('a hostile /v1/config with a tiny W does not let an old envelope be redelivered as new', () => {
  const alice = identityFromSeed(new Uint8Array(32).fill(1));
  const bob = identityFromSeed(new Uint8Array(32).fill(2));
  const sent = Date.UTC(2026, 0, 1);
  const outer = seal({ senderSeed: alice.seed, recipientPk: bob.pk, kind: 'text', body: textBody('hi'), ts: sent }).outer;
  const seen = new Map<string, number>();
  // Received honestly on day 0 …
  const w0 = replayWindowMs(undefined, PROTOCOL_WINDOW_MS);
  const o = open(outer, { mySeed: bob.seed, now: sent, retentionMs: w0, seen: (f, i) => seen.has(`${f}/${i}`) });
  seen.set(`${o.from}/${o.id}`, o.ts);
  // … then one session against a server reporting W = 1 minute prunes the seen-set on day 1 …
  const hostile = replayWindowMs(w0, 60_000);
  pruneSeen(seen, sent + DAY, hostile);
  expect(seen.size).toBe(1);
  // … and a redelivery on day 2 (server honest again) is still a replay.
  const later = replayWindowMs(hostile, PROTOCOL_WINDOW_MS);
  let code = '';
  try {
    open(outer, { mySeed: bob.seed, now: sent + 2 * DAY, retentionMs: later, seen: (f, i) => seen.has(`${f}/${i}`) });
  } catch (e) {
    code = e instanceof KezError ? e.code : String(e);
  }
  expect(code).toBe('replayed');
});

test('pruning drops only what the window already rejects as stale', () => {
  const now = 1_000 * DAY;
  const seen = new Map([
    ['old', now - PROTOCOL_WINDOW_MS - 11 * 60_000],
    ['edge', now - PROTOCOL_WINDOW_MS - 9 * 60_000],
    ['new', now],
  ]);
  pruneSeen(seen, now, PROTOCOL_WINDOW_MS);
  expect([...seen.keys()]).toEqual(['edge', 'new']);
});
