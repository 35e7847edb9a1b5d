import { describe, expect, test } from 'vitest';
import { displayHandle, isReservedLocal, isValidDomain, isValidLocal, mentionHandle, parseCanonicalHandle, parseHandleInput, RESERVED_LOCALS } from './handle';
import { expectCode } from './test/util';

describe('handles', () => {
  test('user input normalisation (§3 examples)', () => {
    for (const s of ['alice', '@alice', 'Alice@KEZ.lat', '  alice@kez.lat\n', '@ALICE']) {
      expect(parseHandleInput(s, 'kez.lat').full).toBe('alice@kez.lat');
    }
    expect(parseHandleInput('bob@other.example', 'kez.lat').full).toBe('bob@other.example');
  });
  test('non-ASCII input is rejected (no confusables)', () => {
    expectCode(() => parseHandleInput('аlice', 'kez.lat'), 'invalid_handle'); // Cyrillic а
    expectCode(() => parseHandleInput('alice@kez.lаt', 'kez.lat'), 'invalid_handle');
  });
  test('local part rules', () => {
    for (const ok of ['a', '0', 'a-b', 'a_b', 'a--b', 'a__b', 'x'.repeat(32)]) expect(isValidLocal(ok), ok).toBe(true);
    for (const bad of ['', '-a', 'a-', '_a', 'a_', 'x'.repeat(33), 'A', 'a.b', 'a b']) expect(isValidLocal(bad), bad).toBe(false);
  });
  test('domain rules', () => {
    expect(isValidDomain('kez.lat')).toBe(true);
    expect(isValidDomain('a.b.c')).toBe(true);
    expect(isValidDomain('localhost')).toBe(false);
    expect(isValidDomain('kez.lat.')).toBe(false);
    expect(isValidDomain('-a.lat')).toBe(false);
    expect(isValidDomain('KEZ.lat')).toBe(false);
    expect(isValidDomain('a'.repeat(64) + '.lat')).toBe(false);
    expect(isValidDomain(('a'.repeat(63) + '.').repeat(4) + 'lat')).toBe(false); // 259 chars
  });
  test('canonical parsing does not normalise', () => {
    expect(parseCanonicalHandle('alice@kez.lat')).toEqual({ local: 'alice', domain: 'kez.lat', full: 'alice@kez.lat' });
    for (const bad of ['Alice@kez.lat', '@alice@kez.lat', 'alice', ' alice@kez.lat', 'a@b@kez.lat', 'alice@kez']) {
      expectCode(() => parseCanonicalHandle(bad), 'invalid_handle');
    }
  });
  test('reserved names', () => {
    expect(RESERVED_LOCALS.size).toBe(25);
    expect(isReservedLocal('admin')).toBe(true);
    expect(isReservedLocal('no-reply')).toBe(true);
    expect(isReservedLocal('alice')).toBe(false);
  });
  test('display', () => {
    expect(displayHandle('alice@kez.lat', 'kez.lat')).toBe('alice');
    expect(displayHandle('alice@other.org', 'kez.lat')).toBe('alice@other.org');
    expect(mentionHandle('alice@kez.lat', 'kez.lat')).toBe('@alice');
  });
});
