/**
 * Typed errors for all protocol code (PROTOCOL.md §10 plus client-side codes).
 *
 * Every parser and verifier in lib/ throws a KezError, never a bare Error or a
 * library exception, so callers can switch on `code` and show `message`.
 */

/** Wire codes (PROTOCOL.md §10) with their numbers and HTTP statuses. */
export const WIRE_CODES = {
  invalid_json: [1001, 400],
  invalid_request: [1002, 400],
  not_canonical: [1003, 422],
  too_large: [1004, 413],
  invalid_handle: [1010, 422],
  invalid_key: [1011, 422],
  invalid_encoding: [1012, 422],
  bad_signature: [2001, 422],
  wrong_type: [2002, 422],
  wrong_audience: [2003, 422],
  stale_timestamp: [2004, 422],
  replayed: [2005, 409],
  decrypt_failed: [2101, 422],
  wrong_recipient: [2102, 422],
  enc_mismatch: [2103, 422],
  handle_reserved: [3001, 422],
  handle_taken: [3002, 409],
  key_registered: [3003, 409],
  handle_not_found: [3004, 404],
  key_not_found: [3005, 404],
  chain_not_found: [4001, 404],
  seqno_conflict: [4002, 409],
  prev_mismatch: [4003, 409],
  invalid_link: [4004, 422],
  chain_too_long: [4005, 413],
  manifest_not_found: [5001, 404],
  invalid_manifest: [5002, 422],
  inbox_full: [6001, 429],
  store_full: [6002, 507],
  device_limit: [6003, 409],
  device_not_found: [6004, 404],
  device_removed: [6005, 410],
  not_group_admin: [7001, 403],
  invalid_group_change: [7002, 422],
  group_full: [7003, 413],
  unknown_group_state: [7004, 409],
  not_group_member: [7005, 403],
  group_fork: [7006, 409],
  not_found: [9404, 404],
  method_not_allowed: [9405, 405],
  rate_limited: [9429, 429],
  internal: [9500, 500],
  unavailable: [9503, 503],
  timeout: [9504, 504],
} as const satisfies Record<string, readonly [number, number]>;

export type WireCode = keyof typeof WIRE_CODES;

/** Codes that only exist inside the client. */
export type ClientCode =
  | 'invalid_mnemonic' // wrong word count, unknown word, bad checksum (see MnemonicError)
  | 'chain_rollback' // a chain shorter than the (seqno, link_id) we verified before
  | 'chain_fork' // a chain whose link at our cached seqno differs
  | 'bad_nonce' // NATS server nonce outside ^[A-Za-z0-9_-]{12,24}$
  | 'wrong_passphrase' // vault did not open
  | 'no_vault' // nothing stored in this browser
  | 'insecure_context' // WebCrypto missing (plain http on a non-loopback host)
  | 'insecure_broker' // a NATS URL without TLS for a host that is not loopback (§11)
  | 'bad_commit' // file key commitment mismatch (§7.3)
  | 'network'; // fetch failed before any HTTP answer

export type ErrorCode = WireCode | ClientCode;

export class KezError extends Error {
  override readonly name = 'KezError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function isWireCode(s: string): s is WireCode {
  return Object.prototype.hasOwnProperty.call(WIRE_CODES, s);
}

/** The §10 code string of a number (the `Nats-Service-Error-Code` header), or null. */
export function wireCodeOfNumber(n: number): WireCode | null {
  for (const [k, v] of Object.entries(WIRE_CODES)) if (v[0] === n) return k as WireCode;
  return null;
}

/**
 * Turns a NATS service error (PROTOCOL.md §9.1: header `Nats-Service-Error-Code`
 * = the §10 number, `Nats-Service-Error` = "<code>: <message>") into a KezError.
 * The number is authoritative; an unknown number or a code string that is not
 * in §10 becomes `internal`, so callers only ever switch on known codes.
 */
export function serviceError(codeHeader: string, textHeader: string): KezError {
  const n = /^\d+$/.test(codeHeader.trim()) ? Number(codeHeader.trim()) : NaN;
  const byNumber = Number.isFinite(n) ? wireCodeOfNumber(n) : null;
  const sep = textHeader.indexOf(': ');
  const named = sep > 0 ? textHeader.slice(0, sep) : '';
  const message = sep > 0 && named === byNumber ? textHeader.slice(sep + 2) : textHeader;
  if (byNumber) return new KezError(byNumber, message || byNumber);
  return new KezError('internal', `the server answered with an unknown error ${codeHeader || '(no code)'}: ${textHeader}`);
}

/** Shorthand used throughout lib/. */
export function fail(code: ErrorCode, message: string): never {
  throw new KezError(code, message);
}
