import { describe, expect, test } from 'vitest';
import { hexEncode } from './encoding';
import { endpointPublic, endpointSeed, parseDeviceId } from './iroh-endpoint';
import { publicKeyOf } from './keys';
import { expectCode, seedOf } from './test/util';

describe('per-device iroh endpoint keys (§7.5)', () => {
  const seed = seedOf(1);
  test('four distinct keys per pair of devices, none of them the identity key, stable', () => {
    const ids = ['0123456789abcdef', 'fedcba9876543210'].flatMap((d) => (['serve', 'fetch'] as const).map((r) => hexEncode(endpointPublic(seed, d, r))));
    expect(new Set([...ids, hexEncode(publicKeyOf(seed))]).size).toBe(5);
    expect(hexEncode(endpointPublic(seed, '0123456789abcdef', 'serve'))).toBe(ids[0]);
    // the shared vector for alice's first device (kv-schemas/testdata/iroh_endpoints.json)
    expect(hexEncode(endpointSeed(seed, '0123456789abcdef', 'serve'))).toBe('9c9390bfdf5f8d7adf08767c99be8bfee40d896b8e00e6ca1a87bdc4182e69b5');
  });
  test('bad device ids and roles are refused', () => {
    for (const d of ['', '0123456789ABCDEF', '0123456789abcde', '0123456789abcdef0', 7]) expectCode(() => parseDeviceId(d), 'invalid_request');
    expectCode(() => endpointSeed(seed, '0123456789abcdef', 'relay' as 'serve'), 'invalid_request');
    expectCode(() => endpointSeed(new Uint8Array(31), '0123456789abcdef', 'serve'), 'invalid_key');
  });
});
