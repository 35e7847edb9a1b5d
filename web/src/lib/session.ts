/**
 * Staying unlocked across reloads. At unlock the seed is encrypted with
 * AES-256-GCM under a fresh WebCrypto key created non-extractable; the key
 * object and the ciphertext are stored in IndexedDB. Script can use the key
 * but never read its bytes, so storage never holds the seed or a key to it in
 * plain. The public key and expiry are bound as AAD (a record moved to another
 * vault or given a later expiry does not open). Lock and logout delete it.
 */
import { fail } from './errors';
import { concatBytes, randomBytes, utf8 } from './encoding';
import type { KV } from './storage';

export const SESSION_KEY = 'session';

/** Choices offered for "stay unlocked" (0 = lock when the page closes). */
export const SESSION_CHOICES: readonly { ms: number; label: string }[] = [
  { ms: 0, label: 'Until I close or reload the page' },
  { ms: 15 * 60_000, label: '15 minutes' },
  { ms: 60 * 60_000, label: '1 hour' },
  { ms: 8 * 60 * 60_000, label: '8 hours' },
  { ms: 24 * 60 * 60_000, label: '1 day' },
  { ms: 7 * 24 * 60 * 60_000, label: '7 days' },
];
export const DEFAULT_SESSION_MS = 8 * 60 * 60_000;
const MAX_SESSION_MS = 7 * 24 * 60 * 60_000;

export interface SessionRecord {
  v: 1;
  key: CryptoKey;
  iv: Uint8Array;
  ct: Uint8Array;
  /** ed25519:<hex> of the vault this belongs to. */
  pub: string;
  expiresAt: number;
}

function aad(pub: string, expiresAt: number): Uint8Array {
  return concatBytes(utf8('kez-web/session-v1'), Uint8Array.of(0), utf8(pub), Uint8Array.of(0), utf8(String(expiresAt)));
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) fail('insecure_context', 'WebCrypto is unavailable in this page');
  return s;
}

/** Stores the seed for `ttlMs`; with 0 any stored session is removed instead. Returns the expiry (or null). */
export async function startSession(store: KV, seed: Uint8Array, pub: string, ttlMs: number, now = Date.now()): Promise<number | null> {
  if (!(ttlMs > 0)) {
    await store.del(SESSION_KEY);
    return null;
  }
  const expiresAt = now + Math.min(ttlMs, MAX_SESSION_MS);
  const key = await subtle().generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  const iv = randomBytes(12);
  const ct = new Uint8Array(
    await subtle().encrypt({ name: 'AES-GCM', iv: iv as BufferSource, additionalData: aad(pub, expiresAt) as BufferSource }, key, seed as BufferSource),
  );
  const rec: SessionRecord = { v: 1, key, iv, ct, pub, expiresAt };
  await store.set(SESSION_KEY, rec);
  return expiresAt;
}

/** The seed of a live session for `pub`, or null (an expired, foreign or damaged record is deleted). */
export async function resumeSession(store: KV, pub: string, now = Date.now()): Promise<{ seed: Uint8Array; expiresAt: number } | null> {
  const rec = await store.get<SessionRecord>(SESSION_KEY).catch(() => undefined);
  if (!rec) return null;
  const drop = async () => {
    await store.del(SESSION_KEY);
    return null;
  };
  if (rec.v !== 1 || rec.pub !== pub || !(rec.expiresAt > now) || rec.expiresAt - now > MAX_SESSION_MS || !(rec.key instanceof CryptoKey)) return drop();
  try {
    const seed = new Uint8Array(
      await subtle().decrypt({ name: 'AES-GCM', iv: rec.iv as BufferSource, additionalData: aad(pub, rec.expiresAt) as BufferSource }, rec.key, rec.ct as BufferSource),
    );
    if (seed.length !== 32) return drop();
    return { seed, expiresAt: rec.expiresAt };
  } catch {
    return drop();
  }
}

export async function endSession(store: KV): Promise<void> {
  await store.del(SESSION_KEY);
}
