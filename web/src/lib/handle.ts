/**
 * Handles (PROTOCOL.md §3): `local@domain`, fully qualified on the wire.
 */
import { fail } from './errors';

const LOCAL = /^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export const RESERVED_LOCALS: ReadonlySet<string> = new Set([
  'admin', 'administrator', 'root', 'support', 'help', 'postmaster', 'abuse', 'hostmaster',
  'webmaster', 'security', 'kez', 'system', 'sys', 'nats', 'api', 'www', 'mail', 'noreply',
  'no-reply', 'null', 'undefined', 'everyone', 'operator', 'staff', 'official',
]);

export interface Handle {
  local: string;
  domain: string;
  /** `local@domain` */
  full: string;
}

export function isValidLocal(local: string): boolean {
  return LOCAL.test(local);
}

export function isValidDomain(domain: string): boolean {
  if (domain.length === 0 || domain.length > 253) return false;
  const labels = domain.split('.');
  return labels.length >= 2 && labels.every((l) => LABEL.test(l));
}

export function isReservedLocal(local: string): boolean {
  return RESERVED_LOCALS.has(local);
}

/**
 * Parses a handle that must already be canonical (wire and storage form):
 * lowercase, fully qualified, no leading `@`, no surrounding space.
 * Throws invalid_handle. Reserved names parse (they can be looked up);
 * registration checks `isReservedLocal` separately.
 */
export function parseCanonicalHandle(s: unknown): Handle {
  if (typeof s !== 'string') fail('invalid_handle', 'a handle is a string');
  const at = s.indexOf('@');
  if (at < 0 || s.indexOf('@', at + 1) >= 0) fail('invalid_handle', `"${s}" is not of the form local@domain`);
  const local = s.slice(0, at);
  const domain = s.slice(at + 1);
  if (!isValidLocal(local)) {
    fail('invalid_handle', 'the name must be 1–32 of a–z, 0–9, "_" or "-", starting and ending with a letter or digit');
  }
  if (!isValidDomain(domain)) fail('invalid_handle', `"${domain}" is not a valid lowercase domain name`);
  return { local, domain, full: `${local}@${domain}` };
}

/**
 * Parses user input: trims ASCII whitespace, strips one leading `@`,
 * lowercases ASCII; a missing domain takes `homeDomain`. Non-ASCII is rejected.
 */
export function parseHandleInput(input: string, homeDomain: string): Handle {
  // ASCII whitespace as Rust's is_ascii_whitespace: U+0009, U+000A, U+000C, U+000D, U+0020 (not U+000B)
  let s = input.replace(/^[ \t\n\r\f]+|[ \t\n\r\f]+$/g, '');
  if (/[^\x00-\x7f]/.test(s)) fail('invalid_handle', 'handles use ASCII letters, digits, "_" and "-" only');
  if (s.startsWith('@')) s = s.slice(1);
  s = s.toLowerCase(); // ASCII only at this point
  if (!s.includes('@')) s = `${s}@${homeDomain}`;
  return parseCanonicalHandle(s);
}

/** Bare `local` for the home domain, else the full handle. */
export function displayHandle(h: Handle | string, homeDomain: string): string {
  const handle = typeof h === 'string' ? parseCanonicalHandle(h) : h;
  return handle.domain === homeDomain ? handle.local : handle.full;
}

/** `@local` (home) or `@local@domain`, for mentions in text. */
export function mentionHandle(h: Handle | string, homeDomain: string): string {
  return '@' + displayHandle(h, homeDomain);
}
