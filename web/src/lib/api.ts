/**
 * Typed client for the gateway's /v1 HTTP API (PROTOCOL.md §9/§10).
 * Error bodies `{"error":{"code","message"}}` become ApiError; a request that
 * never got an answer becomes KezError('network').
 */
import { KezError, isWireCode, type ErrorCode } from './errors';
import { fromUtf8 } from './encoding';
import { Fields, isObject, parseJson, type JsonValue } from './jcs';
import { parseKeyString, parseKeyHex } from './keys';
import { parseCanonicalHandle } from './handle';
import { MAX_CHAIN_LINKS } from './sigchain';

export class ApiError extends KezError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

export interface GatewayConfig {
  domain: string;
  nats_url: string;
  nats_ws_url: string;
  inbox_stream: string;
  version: string;
  /** Inbox retention W in ms, if the gateway reports it. */
  inbox_max_age_ms?: number;
  /** Protocol version number, if the gateway reports it. */
  protocol?: number;
}

export interface UserRecord {
  handle: string;
  primary: string;
  pk: Uint8Array;
  sigchain_url: string;
  endpoints: JsonValue;
}

export interface KeyRecord {
  handle: string;
  key: string;
  pk: Uint8Array;
  registered_at: number | null;
}

export interface SigchainResponse {
  key: string;
  links: JsonValue[];
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

function statusCode(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'invalid_request';
    case 404:
      return 'not_found';
    case 409:
      return 'replayed';
    case 413:
      return 'too_large';
    case 429:
      return 'rate_limited';
    case 503:
      return 'unavailable';
    case 504:
      return 'timeout';
    default:
      return 'internal';
  }
}

/** Turns an HTTP error answer into an ApiError (never throws anything else). */
export function errorFromResponse(status: number, body: Uint8Array): ApiError {
  try {
    const v = parseJson(body);
    if (isObject(v) && isObject(v.error)) {
      const { code, message } = v.error;
      if (typeof code === 'string' && isWireCode(code)) {
        return new ApiError(status, code, typeof message === 'string' && message ? message : code);
      }
    }
  } catch {
    // not a JSON error body: fall through
  }
  return new ApiError(status, statusCode(status), `the server answered ${status}`);
}

export class Api {
  constructor(
    readonly base: string = '',
    private readonly fetchImpl: FetchLike = (i, init) => fetch(i, init),
    /** A request the server does not answer in this time fails with `timeout` (no wait without end). */
    private readonly timeoutMs = 20_000,
  ) {}

  private async raw(path: string, init?: RequestInit): Promise<{ status: number; body: Uint8Array }> {
    let res: Response;
    try {
      res = await this.fetchImpl(this.base + path, { ...init, signal: init?.signal ?? AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      if ((e as Error)?.name === 'TimeoutError') throw new KezError('timeout', 'the server did not answer in time');
      throw new KezError('network', 'the server could not be reached');
    }
    let body: Uint8Array;
    try {
      body = new Uint8Array(await res.arrayBuffer());
    } catch {
      throw new KezError('network', 'the connection broke while reading the answer');
    }
    if (!res.ok) throw errorFromResponse(res.status, body);
    return { status: res.status, body };
  }

  private async json(path: string, init?: RequestInit): Promise<{ status: number; value: JsonValue }> {
    const { status, body } = await this.raw(path, init);
    try {
      return { status, value: parseJson(fromUtf8(body)) };
    } catch (e) {
      throw new ApiError(status, 'internal', `the server sent an unreadable answer (${(e as Error).message})`);
    }
  }

  private post(path: string, bytes: Uint8Array) {
    return this.json(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bytes as BodyInit,
    });
  }

  async config(): Promise<GatewayConfig> {
    const { value } = await this.json('/v1/config');
    return shape(() => {
      if (!isObject(value)) throw new KezError('invalid_request', 'expected an object');
      const f = Fields.exact(value, 'config', ['domain', 'nats_url', 'nats_ws_url', 'inbox_stream', 'version'], Object.keys(value));
      const cfg: GatewayConfig = {
        domain: f.str('domain'),
        nats_url: f.str('nats_url'),
        nats_ws_url: f.str('nats_ws_url'),
        inbox_stream: f.str('inbox_stream'),
        version: f.str('version'),
      };
      if (f.has('inbox_max_age_ms')) cfg.inbox_max_age_ms = f.int('inbox_max_age_ms');
      if (f.has('protocol')) cfg.protocol = f.int('protocol');
      return cfg;
    }, 'config');
  }

  async healthz(): Promise<JsonValue> {
    return (await this.json('/v1/healthz')).value;
  }

  /** GET /v1/u/:handle; the handle must be canonical. */
  async lookupHandle(handle: string): Promise<UserRecord> {
    parseCanonicalHandle(handle);
    const { value } = await this.json(`/v1/u/${encodeURIComponent(handle)}`);
    return shape(() => userRecord(value), 'user record');
  }

  /** GET /v1/keys/ed25519/:hex → the registry record `{"handle","key","registered_at"}` (§9 lookup_key). */
  async lookupKey(hex: string): Promise<KeyRecord> {
    parseKeyHex(hex);
    const { value } = await this.json(`/v1/keys/ed25519/${hex}`);
    return shape(() => {
      if (!isObject(value)) throw new KezError('invalid_request', 'expected an object');
      const f = Fields.exact(value, 'key record', ['handle', 'key'], Object.keys(value));
      const key = f.str('key');
      const pk = parseKeyString(key, 'key');
      if (key !== `ed25519:${hex}`) throw new KezError('invalid_request', 'the server answered for another key');
      return { handle: parseCanonicalHandle(f.str('handle')).full, key, pk, registered_at: f.has('registered_at') ? f.int('registered_at') : null };
    }, 'key record');
  }

  /** POST /v1/register; returns true when newly created (201), false when idempotent (200). */
  async register(bytes: Uint8Array): Promise<boolean> {
    const { status } = await this.post('/v1/register', bytes);
    return status === 201;
  }

  /**
   * GET /v1/sigchains/ed25519/:hex[?since=n], page by page until a page has no
   * `more` (§9.6); an unknown chain is an empty list. Every page must make
   * progress and the whole stays within 10 000 links.
   */
  async sigchain(hex: string): Promise<SigchainResponse> {
    parseKeyHex(hex);
    const key = `ed25519:${hex}`;
    const links: JsonValue[] = [];
    for (;;) {
      const since = links.length;
      let value: JsonValue;
      try {
        value = (await this.json(`/v1/sigchains/ed25519/${hex}${since ? `?since=${since}` : ''}`)).value;
      } catch (e) {
        if (since === 0 && e instanceof ApiError && e.code === 'chain_not_found') return { key, links: [] };
        throw e;
      }
      const page = shape(() => {
        if (!isObject(value)) throw new KezError('invalid_request', 'expected an object');
        const f = Fields.exact(value, 'sigchain', ['key', 'links'], Object.keys(value));
        if (f.str('key') !== key) throw new KezError('invalid_request', 'the server answered for another key');
        const more = value.more === true;
        const got = f.array('links');
        if (more && got.length === 0) throw new KezError('invalid_request', 'an empty page that is not the last');
        return { links: got, more };
      }, 'sigchain');
      links.push(...page.links);
      if (links.length > MAX_CHAIN_LINKS) throw new ApiError(200, 'internal', 'the server sent more links than a chain may hold');
      if (!page.more) return { key, links };
    }
  }

  /** POST /v1/sigchains/ed25519/:hex/events with one link's bytes. */
  async appendLink(hex: string, bytes: Uint8Array): Promise<{ seqno: number; link_id: string }> {
    const { value } = await this.post(`/v1/sigchains/ed25519/${hex}/events`, bytes);
    return shape(() => {
      if (!isObject(value)) throw new KezError('invalid_request', 'expected an object');
      const f = Fields.exact(value, 'append result', ['seqno', 'link_id'], Object.keys(value));
      return { seqno: f.int('seqno'), link_id: f.str('link_id') };
    }, 'append result');
  }

  /** GET /v1/manifests/:hash → exact manifest bytes. */
  async manifest(hash: string): Promise<Uint8Array> {
    return (await this.raw(`/v1/manifests/${hash}`)).body;
  }

  /** GET /v1/manifests/by-owner/ed25519/:hex → exact bytes, or null when none. */
  async manifestByOwner(hex: string): Promise<Uint8Array | null> {
    try {
      return (await this.raw(`/v1/manifests/by-owner/ed25519/${hex}`)).body;
    } catch (e) {
      if (e instanceof ApiError && (e.code === 'manifest_not_found' || e.code === 'chain_not_found')) return null;
      throw e;
    }
  }
}

function userRecord(value: JsonValue): UserRecord {
  if (!isObject(value)) throw new KezError('invalid_request', 'expected an object');
  const f = Fields.exact(value, 'user', ['handle', 'primary'], Object.keys(value));
  const handle = parseCanonicalHandle(f.str('handle')).full;
  const primary = f.str('primary');
  const pk = parseKeyString(primary, 'primary');
  const sigchain_url = typeof value.sigchain_url === 'string' ? value.sigchain_url : '';
  return { handle, primary, pk, sigchain_url, endpoints: value.endpoints ?? null };
}

function shape<T>(f: () => T, what: string): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof KezError && (e.code === 'invalid_key' || e.code === 'invalid_handle')) throw e;
    throw new ApiError(200, 'internal', `the server sent a malformed ${what}: ${(e as Error).message}`);
  }
}
