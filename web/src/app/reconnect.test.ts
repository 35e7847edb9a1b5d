import { expect, it } from 'vitest';
import { backoffDelay } from './reconnect';

it('backs off from 1 s, doubling, to at most 30 s, with bounded jitter', () => {
  expect([0, 1, 2, 3, 4, 5, 6, 20].map((n) => backoffDelay(n, () => 0))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  expect(backoffDelay(0, () => 1)).toBe(800);
  expect(backoffDelay(10, () => 0.5)).toBe(27000);
});
