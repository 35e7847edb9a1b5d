import { describe, expect, test } from 'vitest';
import { canonicalizeText, Fields, jcs, obj, omit, parseCanonical, parseJson, parseProfile } from './jcs';
import { utf8 } from './encoding';
import { expectCode } from './test/util';

const b = (s: string) => utf8(s);

describe('profile parser', () => {
  test('rejects duplicate keys anywhere (JSON.parse would keep the last)', () => {
    expect(JSON.parse('{"a":1,"a":2}')).toEqual({ a: 2 });
    expectCode(() => parseProfile(b('{"a":1,"a":2}')), 'invalid_json');
    expectCode(() => parseProfile(b('{"b":{"x":[1,{"y":2,"y":3}]}}')), 'invalid_json');
    expectCode(() => parseJson('{"a":1,"a":1}'), 'invalid_json');
  });
  test('rejects floats, negatives, exponents and big integers', () => {
    for (const s of ['{"a":1.5}', '{"a":1.0}', '{"a":-1}', '{"a":-0}', '{"a":1e2}', '{"a":9007199254740992}', '{"a":99999999999999999999}']) {
      expectCode(() => parseProfile(b(s)), 'invalid_json');
    }
    expect(parseProfile(b('{"a":9007199254740991}'))).toEqual(obj({ a: 9007199254740991 }));
    expect(parseProfile(b('{"a":0}'))).toEqual(obj({ a: 0 }));
  });
  test('rejects keys outside [a-z0-9_]{1,32}', () => {
    for (const k of ['A', '', 'a-b', 'a'.repeat(33), 'é']) expectCode(() => parseProfile(b(JSON.stringify({ [k]: 1 }))), 'invalid_json');
    expect(parseProfile(b(`{"${'a'.repeat(32)}":1}`))).toBeTruthy();
  });
  test('rejects lone surrogates, control characters, bad escapes, bad UTF-8, garbage', () => {
    for (const s of ['"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"a\nb"', '"\\x"', '{', '[1,]', '{"a":1,}', 'tru', '1 2', '"\\u12"', '']) {
      expectCode(() => parseProfile(b(s)), 'invalid_json');
    }
    expectCode(() => parseProfile(Uint8Array.of(0x22, 0xff, 0x22)), 'invalid_json');
    expect(parseProfile(b('"\\ud83d\\ude00"'))).toBe('😀');
  });
  test('deep nesting is an error, not a crash', () => {
    expectCode(() => parseProfile(b('['.repeat(100_000))), 'invalid_json');
  });
  test('null-prototype objects make __proto__ an ordinary key', () => {
    const v = parseProfile(b('{"__proto__":{"x":1}}')) as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(jcs(v)).toBe('{"__proto__":{"x":1}}');
  });
});

describe('canonical check', () => {
  test('accepts JCS bytes, rejects anything else as not_canonical', () => {
    expect(parseCanonical(b('{"a":1,"b":"x"}'))).toEqual(obj({ a: 1, b: 'x' }));
    expectCode(() => parseCanonical(b('{"b":"x","a":1}')), 'not_canonical');
    expectCode(() => parseCanonical(b('{"a": 1}')), 'not_canonical');
    expectCode(() => parseCanonical(b(' {"a":1}')), 'not_canonical');
    expectCode(() => parseCanonical(b('{"a":"\\u0061"}')), 'not_canonical');
    expectCode(() => parseCanonical(b('{"a":"\\/"}')), 'not_canonical');
  });
});

describe('general JCS', () => {
  test('sorts keys by UTF-16 code units and formats numbers per ES', () => {
    expect(canonicalizeText('{"\\ud83d\\ude00":1,"\\uff61":2,"a":1e21,"b":-0}')).toBe('{"a":1e+21,"b":0,"😀":1,"｡":2}');
    expect(canonicalizeText('[1.0, 1e-7, 0.1, 123456789012345680000]')).toBe('[1,1e-7,0.1,123456789012345680000]');
    expect(canonicalizeText('"\\u0001\\u001f\\"\\\\\\/\\u2028"')).toBe('"\\u0001\\u001f\\"\\\\/\u2028"');
  });
  test('omit and obj copy without prototype', () => {
    const o = obj({ a: 1, sig: 'x' });
    expect(Object.getPrototypeOf(omit(o, 'sig'))).toBeNull();
    expect(jcs(omit(o, 'sig'))).toBe('{"a":1}');
  });
});

describe('Fields', () => {
  test('exact key sets and typed getters', () => {
    const f = Fields.exact(obj({ a: 1, b: 'x', c: true, d: obj({}), e: [] }), 't', ['a', 'b', 'c', 'd'], ['e']);
    expect(f.int('a')).toBe(1);
    expect(f.str('b')).toBe('x');
    expect(f.bool('c')).toBe(true);
    expect(f.object('d')).toEqual(obj({}));
    expect(f.array('e')).toEqual([]);
    expectCode(() => f.str('a'), 'invalid_request');
    expectCode(() => Fields.exact(obj({ a: 1 }), 't', ['a', 'b']), 'invalid_request');
    expectCode(() => Fields.exact(obj({ a: 1, z: 2 }), 't', ['a']), 'invalid_request');
    expectCode(() => Fields.exact([], 't', []), 'invalid_request');
  });
});
