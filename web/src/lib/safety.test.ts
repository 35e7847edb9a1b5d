import { expect, test } from 'vitest';
import { fingerprint, fingerprintDigits, safetyNumber, safetyNumberDigits } from './safety';
import { hexDecode } from './encoding';

const A = hexDecode('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
const B = hexDecode('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c');

test('the RFC 8032 test 1 and 2 keys give the independently computed number', () => {
  expect(safetyNumber(A, B)).toBe('48816 62298 58517 51718 87039 65081 69549 34571 82025 17408 77738 40941');
});
test('symmetric, 60 digits, fingerprint is one half', () => {
  expect(safetyNumberDigits(A, B)).toBe(safetyNumberDigits(B, A));
  expect(safetyNumberDigits(A, B)).toMatch(/^\d{60}$/);
  const fa = fingerprintDigits(A);
  const fb = fingerprintDigits(B);
  expect([fa, fb].sort().join('')).toBe(safetyNumberDigits(A, B));
  expect(fingerprint(A).split(' ')).toHaveLength(6);
});
