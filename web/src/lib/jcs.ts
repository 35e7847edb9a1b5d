/**
 * RFC 8785 canonical JSON and the KEZ JSON profile (PROTOCOL.md §1.1).
 *
 * `JSON.parse` silently keeps the last of two duplicate keys, so this module
 * has its own small parser that rejects duplicates (and, under the profile,
 * floats, negatives, exponents, integers above 2^53 − 1 and keys outside
 * `[a-z0-9_]{1,32}`). A signed object is accepted only if re-serialising it
 * gives back exactly the received bytes.
 *
 * Objects produced here have a null prototype, so a key such as `__proto__`
 * (which the profile's key alphabet allows) is an ordinary own property.
 */
import canonicalize from 'canonicalize';
import { fail, KezError } from './errors';
import { fromUtf8, utf8, bytesEqual } from './encoding';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 − 1
const MAX_DEPTH = 128;
const PROFILE_KEY = /^[a-z0-9_]{1,32}$/;

/** RFC 8785 serialisation of a JSON value. */
export function jcs(value: unknown): string {
  try {
    return canonicalize(value) ?? fail('invalid_json', 'value cannot be serialised');
  } catch (e) {
    if (e instanceof KezError) throw e;
    fail('invalid_json', `value cannot be canonicalised: ${(e as Error).message}`);
  }
}

export function jcsBytes(value: unknown): Uint8Array {
  return utf8(jcs(value));
}

/** A fresh null-prototype object (safe for any key). */
export function obj(entries: Record<string, JsonValue> = {}): JsonObject {
  const o = Object.create(null) as JsonObject;
  for (const k of Object.keys(entries)) o[k] = entries[k]!;
  return o;
}

/** A copy of `o` without the keys listed. */
export function omit(o: JsonObject, ...keys: string[]): JsonObject {
  const out = Object.create(null) as JsonObject;
  for (const k of Object.keys(o)) if (!keys.includes(k)) out[k] = o[k]!;
  return out;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses general JSON (any numbers), rejecting duplicate keys and lone surrogates. */
export function parseJson(input: string | Uint8Array): JsonValue {
  return new Parser(typeof input === 'string' ? input : fromUtf8(input), false).parseDocument();
}

/** Parses bytes under the KEZ profile without requiring canonical form. */
export function parseProfile(input: string | Uint8Array): JsonValue {
  return new Parser(typeof input === 'string' ? input : fromUtf8(input), true).parseDocument();
}

/** Parses bytes under the KEZ profile and requires them to be the JCS form. */
export function parseCanonical(bytes: Uint8Array): JsonValue {
  const v = parseProfile(bytes);
  if (!bytesEqual(jcsBytes(v), bytes)) fail('not_canonical', 'object is not in RFC 8785 canonical form');
  return v;
}

/** Canonicalises general JSON text (any numbers, duplicates rejected). */
export function canonicalizeText(text: string): string {
  return jcs(parseJson(text));
}

class Parser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly profile: boolean,
  ) {}

  parseDocument(): JsonValue {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.i !== this.s.length) this.err('trailing characters after the JSON value');
    return v;
  }

  private err(msg: string): never {
    fail('invalid_json', `invalid JSON at offset ${this.i}: ${msg}`);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  private value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.err('nesting too deep');
    const c = this.s[this.i];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.err(c === undefined ? 'unexpected end of input' : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  private literal<T>(word: string, v: T): T {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return v;
    }
    return this.err('invalid literal');
  }

  private object(depth: number): JsonObject {
    this.i++; // {
    const out = Object.create(null) as JsonObject;
    const seen = new Set<string>();
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.err('expected a string key');
      const key = this.string();
      if (this.profile && !PROFILE_KEY.test(key)) this.err(`object key ${JSON.stringify(key)} is not [a-z0-9_]{1,32}`);
      if (seen.has(key)) this.err(`duplicate key ${JSON.stringify(key)}`);
      seen.add(key);
      this.ws();
      if (this.s[this.i] !== ':') this.err('expected ":"');
      this.i++;
      this.ws();
      out[key] = this.value(depth + 1);
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === '}') {
        this.i++;
        return out;
      }
      this.err('expected "," or "}"');
    }
  }

  private array(depth: number): JsonValue[] {
    this.i++; // [
    const out: JsonValue[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i];
      if (c === ',') {
        this.i++;
        continue;
      }
      if (c === ']') {
        this.i++;
        return out;
      }
      this.err('expected "," or "]"');
    }
  }

  private number(): number {
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (!m) return this.err('invalid number');
    const text = m[0];
    if (this.profile) {
      if (text.startsWith('-')) this.err('negative numbers are not allowed');
      if (m[1] !== undefined || m[2] !== undefined) this.err('floating-point numbers are not allowed');
      if (BigInt(text) > BigInt(MAX_SAFE_INTEGER)) this.err('integer above 2^53-1');
    }
    const n = Number(text);
    if (!Number.isFinite(n)) this.err('number out of range');
    this.i += text.length;
    return n;
  }

  private string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = '';
    let start = this.i;
    for (;;) {
      if (this.i >= s.length) this.err('unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.err('control character in string');
      if (c === 0x5c) {
        out += s.slice(start, this.i);
        this.i++;
        out += this.escape();
        start = this.i;
        continue;
      }
      this.i++;
    }
  }

  private hex4(): number {
    const h = this.s.slice(this.i, this.i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.err('invalid \\u escape');
    this.i += 4;
    return parseInt(h, 16);
  }

  private escape(): string {
    const e = this.s[this.i++];
    switch (e) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const u = this.hex4();
        if (u >= 0xdc00 && u <= 0xdfff) this.err('lone surrogate in \\u escape');
        if (u >= 0xd800 && u <= 0xdbff) {
          if (this.s[this.i] !== '\\' || this.s[this.i + 1] !== 'u') this.err('lone surrogate in \\u escape');
          this.i += 2;
          const lo = this.hex4();
          if (lo < 0xdc00 || lo > 0xdfff) this.err('lone surrogate in \\u escape');
          return String.fromCharCode(u, lo);
        }
        return String.fromCharCode(u);
      }
      default:
        return this.err('invalid escape');
    }
  }
}

/**
 * Typed access to the fields of a parsed object with an exact key set; any
 * missing, extra or wrongly typed field is `invalid_request` naming the field.
 */
export class Fields {
  private constructor(
    private readonly what: string,
    readonly map: JsonObject,
  ) {}

  static exact(value: JsonValue | undefined, what: string, required: readonly string[], optional: readonly string[] = []): Fields {
    if (!isObject(value)) fail('invalid_request', `${what} must be a JSON object`);
    for (const k of required) if (!(k in value)) fail('invalid_request', `${what}: missing field "${k}"`);
    for (const k of Object.keys(value)) {
      if (!required.includes(k) && !optional.includes(k)) fail('invalid_request', `${what}: unexpected field "${k}"`);
    }
    return new Fields(what, value);
  }

  has(k: string): boolean {
    return k in this.map;
  }
  get(k: string): JsonValue | undefined {
    return this.map[k];
  }
  str(k: string): string {
    const v = this.map[k];
    if (typeof v !== 'string') this.wrong(k, 'a string');
    return v;
  }
  optStr(k: string): string | undefined {
    return k in this.map ? this.str(k) : undefined;
  }
  int(k: string): number {
    const v = this.map[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.wrong(k, 'a non-negative integer');
    return v;
  }
  bool(k: string): boolean {
    const v = this.map[k];
    if (typeof v !== 'boolean') this.wrong(k, 'a boolean');
    return v;
  }
  object(k: string): JsonObject {
    const v = this.map[k];
    if (!isObject(v)) this.wrong(k, 'an object');
    return v;
  }
  array(k: string): JsonValue[] {
    const v = this.map[k];
    if (!Array.isArray(v)) this.wrong(k, 'an array');
    return v;
  }
  private wrong(k: string, expected: string): never {
    fail('invalid_request', `${this.what}: field "${k}" must be ${expected}`);
  }
}
