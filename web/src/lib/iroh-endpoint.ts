/**
 * Per-device Iroh endpoint keys (PROTOCOL.md §7.5). A device that speaks Iroh
 * (the CLI) has two endpoints, one to serve and one to fetch, whose keys come
 * from the identity seed and the device id:
 *
 *   endpoint_seed(role) = HKDF-SHA256(ikm = seed, salt = "",
 *                         info = "kez-v1/iroh-endpoint" || 0x00 || device id || 0x00 || role, 32)
 *   endpoint id         = Ed25519 public key of endpoint_seed(role)
 *
 * The browser does not run Iroh; it needs these to check vectors and to show
 * (or remove) the endpoints another device published on the sigchain.
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { fail } from './errors';
import { concatBytes, utf8 } from './encoding';
import { publicKeyOf, SEED_LEN } from './keys';

export const IROH_ROLES = ['serve', 'fetch'] as const;
export type IrohRole = (typeof IROH_ROLES)[number];

/** A device id (§6.1): 8 random bytes as 16 lowercase hex characters. */
export const DEVICE_ID = /^[0-9a-f]{16}$/;

const INFO_PREFIX = utf8('kez-v1/iroh-endpoint');

export function isIrohRole(s: unknown): s is IrohRole {
  return typeof s === 'string' && (IROH_ROLES as readonly string[]).includes(s);
}

/** Checks a device id; anything else is `invalid_request` (as the Rust DeviceId parser). */
export function parseDeviceId(s: unknown): string {
  if (typeof s !== 'string' || !DEVICE_ID.test(s)) fail('invalid_request', 'a device id is 16 lowercase hex characters');
  return s;
}

/** The HKDF info of §7.5 for one device and role. */
export function endpointSeedInfo(device: string, role: IrohRole): Uint8Array {
  return concatBytes(INFO_PREFIX, Uint8Array.of(0), utf8(parseDeviceId(device)), Uint8Array.of(0), utf8(role));
}

/** The 32-byte secret of a device's endpoint for `role` (a seed for Ed25519). */
export function endpointSeed(seed: Uint8Array, device: string, role: IrohRole): Uint8Array {
  if (seed.length !== SEED_LEN) fail('invalid_key', 'a seed is 32 bytes');
  if (!isIrohRole(role)) fail('invalid_request', 'an endpoint role is serve or fetch');
  return hkdf(sha256, seed, new Uint8Array(0), endpointSeedInfo(device, role), 32);
}

/** The endpoint id (Ed25519 public key bytes) of a device's endpoint for `role`. */
export function endpointPublic(seed: Uint8Array, device: string, role: IrohRole): Uint8Array {
  return publicKeyOf(endpointSeed(seed, device, role));
}
