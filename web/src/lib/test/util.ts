import { expect } from 'vitest';
import { KezError, type ErrorCode } from '../errors';

/** Asserts that `f` throws a KezError with `code` (and nothing else). */
export function expectCode(f: () => unknown, code: ErrorCode): KezError {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected KezError(${code})`).toBeInstanceOf(KezError);
  expect((thrown as KezError).code).toBe(code);
  return thrown as KezError;
}

export async function expectCodeAsync(f: () => Promise<unknown>, code: ErrorCode): Promise<KezError> {
  let thrown: unknown;
  try {
    await f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected KezError(${code})`).toBeInstanceOf(KezError);
  expect((thrown as KezError).code).toBe(code);
  return thrown as KezError;
}

/** Deterministic seeds for tests. */
export function seedOf(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}
