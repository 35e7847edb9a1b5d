import { describe, expect, test } from 'vitest';
import { Api, ApiError, errorFromResponse, type FetchLike } from './api';
import { KezError } from './errors';
import { identityFromSeed } from './keys';
import { utf8 } from './encoding';
import { expectCodeAsync, seedOf } from './test/util';

const me = identityFromSeed(seedOf(61));

function fake(routes: Record<string, [number, string]>, calls: Array<{ url: string; init?: RequestInit }> = []): FetchLike {
  return async (url, init) => {
    calls.push({ url, init });
    const r = routes[`${init?.method ?? 'GET'} ${url}`];
    if (!r) return new Response(JSON.stringify({ error: { code: 'not_found', message: 'no route' } }), { status: 404 });
    return new Response(r[1], { status: r[0] });
  };
}

describe('api client', () => {
  test('config and lookups parse typed records', async () => {
    const api = new Api(
      '',
      fake({
        'GET /v1/config': [200, JSON.stringify({ domain: 'kez.lat', nats_url: 'nats://n:4222', nats_ws_url: 'ws://n:8443', inbox_stream: 'KEZ_INBOX', version: '0.1.0' })],
        'GET /v1/u/alice%40kez.lat': [200, JSON.stringify({ handle: 'alice@kez.lat', primary: me.key, sigchain_url: '/v1/sigchains/ed25519/' + me.hex, endpoints: [] })],
      }),
    );
    expect((await api.config()).domain).toBe('kez.lat');
    const u = await api.lookupHandle('alice@kez.lat');
    expect(u.pk).toEqual(me.pk);
  });
  test('error bodies become ApiError with the wire code and message', async () => {
    const api = new Api('', fake({ 'GET /v1/u/bob%40kez.lat': [404, '{"error":{"code":"handle_not_found","message":"no such handle"}}'] }));
    const e = (await expectCodeAsync(() => api.lookupHandle('bob@kez.lat'), 'handle_not_found')) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(404);
    expect(e.message).toBe('no such handle');
  });
  test('non-JSON or unknown error bodies fall back to the HTTP status', () => {
    expect(errorFromResponse(503, utf8('<html>')).code).toBe('unavailable');
    expect(errorFromResponse(500, utf8('{"error":{"code":"weird","message":"x"}}')).code).toBe('internal');
    expect(errorFromResponse(429, utf8('{"error":{"code":"rate_limited","message":"slow down"}}')).message).toBe('slow down');
  });
  test('network failures are KezError(network)', async () => {
    const api = new Api('', async () => {
      throw new TypeError('Failed to fetch');
    });
    const e = await expectCodeAsync(() => api.config(), 'network');
    expect(e).toBeInstanceOf(KezError);
  });
  test('a server that never answers is KezError(timeout), not a wait without end', async () => {
    // the fake honours the abort signal like fetch does, and otherwise never settles
    const api = new Api(
      '',
      (_i, init) =>
        new Promise((_res, rej) => init?.signal?.addEventListener('abort', () => rej(init.signal!.reason))),
      50,
    );
    await expectCodeAsync(() => api.config(), 'timeout');
  });
  test('malformed success answers are reported, not thrown raw', async () => {
    const api = new Api('', fake({ 'GET /v1/config': [200, '{"domain":1}'], 'GET /v1/healthz': [200, '{"a":1,"a":2}'] }));
    await expectCodeAsync(() => api.config(), 'internal');
    await expectCodeAsync(() => api.healthz(), 'internal');
  });
  test('a primary key that fails §2.1 is refused', async () => {
    const api = new Api('', fake({ 'GET /v1/u/x%40kez.lat': [200, JSON.stringify({ handle: 'x@kez.lat', primary: 'ed25519:' + '00'.repeat(32), sigchain_url: '', endpoints: [] })] }));
    await expectCodeAsync(() => api.lookupHandle('x@kez.lat'), 'invalid_key');
  });
  test('register posts raw bytes and reports created vs idempotent; unknown chain is empty', async () => {
    const calls: Array<{ url: string; init?: RequestInit }> = [];
    const api = new Api(
      'http://gw',
      fake(
        {
          'POST http://gw/v1/register': [201, '{"handle":"a@kez.lat","key":"k","created":true}'],
          [`GET http://gw/v1/sigchains/ed25519/${me.hex}`]: [404, '{"error":{"code":"chain_not_found","message":"none"}}'],
          [`POST http://gw/v1/sigchains/ed25519/${me.hex}/events`]: [201, `{"seqno":1,"link_id":"${'ab'.repeat(32)}"}`],
        },
        calls,
      ),
    );
    expect(await api.register(utf8('{"x":1}'))).toBe(true);
    expect(calls[0]!.init?.method).toBe('POST');
    expect((await api.sigchain(me.hex)).links).toEqual([]);
    expect((await api.appendLink(me.hex, utf8('{}'))).seqno).toBe(1);
  });
  test('a long sigchain is read page by page (since = links so far) until a page has no "more"', async () => {
    const base = `GET /v1/sigchains/ed25519/${me.hex}`;
    const page = (from: number, n: number, more: boolean) =>
      JSON.stringify({ key: me.key, links: Array.from({ length: n }, (_, i) => ({ seqno: from + i })), ...(more ? { more: true } : {}) });
    const calls: Array<{ url: string; init?: RequestInit }> = [];
    const api = new Api('', fake({ [base]: [200, page(1, 2, true)], [`${base}?since=2`]: [200, page(3, 2, true)], [`${base}?since=4`]: [200, page(5, 1, false)] }, calls));
    expect((await api.sigchain(me.hex)).links).toEqual([1, 2, 3, 4, 5].map((seqno) => ({ seqno })));
    expect(calls.map((c) => c.url)).toEqual([base, `${base}?since=2`, `${base}?since=4`].map((u) => u.slice(4)));
    // A server that never ends (an empty page with "more") is refused.
    const stuck = new Api('', fake({ [base]: [200, page(1, 1, true)], [`${base}?since=1`]: [200, page(2, 0, true)] }));
    await expectCodeAsync(() => stuck.sigchain(me.hex), 'internal');
  });
  test('by-owner manifest returns exact bytes or null', async () => {
    const api = new Api(
      '',
      fake({
        [`GET /v1/manifests/by-owner/ed25519/${me.hex}`]: [200, '{"a":1}'],
      }),
    );
    expect(new TextDecoder().decode((await api.manifestByOwner(me.hex))!)).toBe('{"a":1}');
    const none = new Api('', fake({ [`GET /v1/manifests/by-owner/ed25519/${me.hex}`]: [404, '{"error":{"code":"manifest_not_found","message":"none"}}'] }));
    expect(await none.manifestByOwner(me.hex)).toBeNull();
  });
});

describe('lookup by key', () => {
  test('parses the registry record {handle, key, registered_at}', async () => {
    const api = new Api('', fake({ [`GET /v1/keys/ed25519/${me.hex}`]: [200, JSON.stringify({ handle: 'alice@kez.lat', key: me.key, registered_at: 5 })] }));
    const r = await api.lookupKey(me.hex);
    expect(r).toMatchObject({ handle: 'alice@kez.lat', key: me.key, registered_at: 5 });
  });
  test('a record for another key is refused', async () => {
    const other = identityFromSeed(seedOf(62));
    const api = new Api('', fake({ [`GET /v1/keys/ed25519/${me.hex}`]: [200, JSON.stringify({ handle: 'alice@kez.lat', key: other.key, registered_at: 5 })] }));
    await expectCodeAsync(() => api.lookupKey(me.hex), 'internal');
  });
});
