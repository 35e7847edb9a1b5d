/**
 * The seed at rest: encrypted under a passphrase (PBKDF2-SHA256, 600 000
 * iterations, via WebCrypto) with ChaCha20-Poly1305, stored in a KV store.
 * Nothing else about the user is secret; the public key and handle are kept
 * beside it in clear so the unlock screen can say whose vault it is.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { fail, KezError } from './errors';
import { bytesEqual, concatBytes, randomBytes, utf8 } from './encoding';
import { identityFromSeed } from './keys';
import type { KV } from './storage';

export const VAULT_KEY = 'vault';
export const PBKDF2_ITERATIONS = 600_000;
export const MIN_PASSPHRASE = 8;
/** A stored record asking for more iterations is refused, so a planted vault cannot hang unlock (~3× the default). */
export const MAX_PBKDF2_ITERATIONS = 2_000_000;

export interface VaultRecord {
  v: 1;
  kdf: 'pbkdf2-sha256';
  iter: number;
  salt: Uint8Array;
  nonce: Uint8Array;
  ct: Uint8Array;
  key: string; // ed25519:<hex>
  handle: string; // canonical handle, '' before registration finished
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) {
    fail('insecure_context', 'this page is not a secure context (use https, or http://localhost or 127.0.0.1): WebCrypto is unavailable');
  }
  return s;
}

async function deriveKey(passphrase: string, salt: Uint8Array, iter: number): Promise<Uint8Array> {
  const s = subtle();
  const base = await s.importKey('raw', utf8(passphrase.normalize('NFC')) as BufferSource, 'PBKDF2', false, ['deriveBits']);
  const bits = await s.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: salt as BufferSource, iterations: iter }, base, 256);
  return new Uint8Array(bits);
}

function aad(key: string): Uint8Array {
  return concatBytes(utf8('kez-web/vault-v1'), Uint8Array.of(0), utf8(key));
}

export function checkPassphrase(p: string): void {
  if ([...p].length < MIN_PASSPHRASE) fail('invalid_request', `the passphrase needs at least ${MIN_PASSPHRASE} characters`);
}

export async function sealVault(seed: Uint8Array, passphrase: string, handle: string, iter = PBKDF2_ITERATIONS): Promise<VaultRecord> {
  checkPassphrase(passphrase);
  const { key } = identityFromSeed(seed);
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const k = await deriveKey(passphrase, salt, iter);
  const ct = chacha20poly1305(k, nonce, aad(key)).encrypt(seed);
  return { v: 1, kdf: 'pbkdf2-sha256', iter, salt, nonce, ct, key, handle };
}

export async function openVaultRecord(rec: VaultRecord, passphrase: string): Promise<Uint8Array> {
  if (rec.v !== 1 || rec.kdf !== 'pbkdf2-sha256') fail('no_vault', 'the stored vault has an unknown format');
  if (!Number.isSafeInteger(rec.iter) || rec.iter < 1 || rec.iter > MAX_PBKDF2_ITERATIONS) {
    fail('no_vault', 'the stored vault asks for an unreasonable iteration count');
  }
  const k = await deriveKey(passphrase, rec.salt, rec.iter);
  let seed: Uint8Array;
  try {
    seed = chacha20poly1305(k, rec.nonce, aad(rec.key)).decrypt(rec.ct);
  } catch {
    fail('wrong_passphrase', 'wrong passphrase');
  }
  if (seed.length !== 32 || identityFromSeed(seed).key !== rec.key) fail('no_vault', 'the stored vault is damaged');
  return seed;
}

export async function saveVault(store: KV, seed: Uint8Array, passphrase: string, handle: string, iter?: number): Promise<VaultRecord> {
  const rec = await sealVault(seed, passphrase, handle, iter);
  await store.set(VAULT_KEY, rec);
  return rec;
}

export async function loadVaultRecord(store: KV): Promise<VaultRecord | null> {
  return (await store.get<VaultRecord>(VAULT_KEY)) ?? null;
}

export async function unlockVault(store: KV, passphrase: string): Promise<{ seed: Uint8Array; record: VaultRecord }> {
  const record = await loadVaultRecord(store);
  if (!record) throw new KezError('no_vault', 'no account is stored in this browser');
  return { seed: await openVaultRecord(record, passphrase), record };
}

/** Re-encrypts under a new passphrase after checking the old one. */
export async function changePassphrase(store: KV, oldPass: string, newPass: string, iter?: number): Promise<void> {
  const { seed, record } = await unlockVault(store, oldPass);
  await saveVault(store, seed, newPass, record.handle, iter ?? record.iter);
}

export async function setVaultHandle(store: KV, handle: string): Promise<void> {
  const rec = await loadVaultRecord(store);
  if (!rec) fail('no_vault', 'no account is stored in this browser');
  await store.set(VAULT_KEY, { ...rec, handle });
}

/** True when `seed` is the one in the vault (for "verify your words"). */
export function sameSeed(a: Uint8Array, b: Uint8Array): boolean {
  return bytesEqual(a, b);
}
