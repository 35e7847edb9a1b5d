import { describe, expect, test } from 'vitest';
import { b64uDecode, b64uEncode, bytesEqual, concatBytes, fromUtf8, hexDecode, hexEncode, isAllZero } from './encoding';
import { expectCode } from './test/util';

describe('hex', () => {
  test('round trip, lowercase only', () => {
    const b = Uint8Array.of(0, 1, 0xab, 0xff);
    expect(hexEncode(b)).toBe('0001abff');
    expect(hexDecode('0001abff')).toEqual(b);
    expectCode(() => hexDecode('AB'), 'invalid_encoding');
    expectCode(() => hexDecode('abc'), 'invalid_encoding');
    expectCode(() => hexDecode('zz'), 'invalid_encoding');
    expectCode(() => hexDecode('abcd', 'x', 1), 'invalid_encoding');
  });
});

describe('base64url without padding', () => {
  test('encodes the url alphabet without padding', () => {
    expect(b64uEncode(Uint8Array.of(0xfb, 0xff))).toBe('-_8');
    expect(b64uDecode('-_8')).toEqual(Uint8Array.of(0xfb, 0xff));
    expect(b64uDecode('')).toEqual(new Uint8Array(0));
  });
  test('rejects padding, other alphabets, non-zero trailing bits, bad lengths', () => {
    expectCode(() => b64uDecode('-_8='), 'invalid_encoding');
    expectCode(() => b64uDecode('+/8'), 'invalid_encoding');
    expectCode(() => b64uDecode('-_9'), 'invalid_encoding');
    expectCode(() => b64uDecode('AB'), 'invalid_encoding');
    expectCode(() => b64uDecode('A'), 'invalid_encoding');
    expectCode(() => b64uDecode('AA AA'), 'invalid_encoding');
    expectCode(() => b64uDecode('AAAA', 'x', 2), 'invalid_encoding');
  });
  test('round trips every length 0..40', () => {
    for (let n = 0; n <= 40; n++) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      expect(b64uDecode(b64uEncode(b), 'x', n)).toEqual(b);
    }
  });
});

test('utf8 strict', () => {
  expect(fromUtf8(Uint8Array.of(0xe2, 0x82, 0xac))).toBe('€');
  expectCode(() => fromUtf8(Uint8Array.of(0xc3)), 'invalid_json');
  expectCode(() => fromUtf8(Uint8Array.of(0xed, 0xa0, 0x80)), 'invalid_json'); // encoded surrogate
});

test('byte helpers', () => {
  expect(concatBytes(Uint8Array.of(1), Uint8Array.of(2, 3))).toEqual(Uint8Array.of(1, 2, 3));
  expect(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2))).toBe(true);
  expect(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3))).toBe(false);
  expect(bytesEqual(Uint8Array.of(1), Uint8Array.of(1, 2))).toBe(false);
  expect(isAllZero(new Uint8Array(4))).toBe(true);
  expect(isAllZero(Uint8Array.of(0, 1))).toBe(false);
});
