/**
 * Local encryption at rest for history and contacts: a key derived from the
 * seed (HKDF-SHA256, info "kez-web/local-store-v1"), XChaCha20-Poly1305 with
 * random 24-byte nonces, JSON payloads. The record name is bound as AAD so
 * values cannot be swapped between keys.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, fromUtf8, randomBytes, utf8 } from './encoding';
import { fail } from './errors';
import type { KV } from './storage';

export interface Boxed {
  n: Uint8Array;
  c: Uint8Array;
}

export class LocalBox {
  private readonly key: Uint8Array;
  constructor(
    seed: Uint8Array,
    private readonly store: KV,
    private readonly prefix = 'box:',
  ) {
    this.key = hkdf(sha256, seed, new Uint8Array(0), utf8('kez-web/local-store-v1'), 32);
  }

  /** Overwrites the key (lock, logout); the box refuses to work afterwards. */
  wipe(): void {
    this.key.fill(0);
    this.wiped = true;
  }

  private wiped = false;

  private live(): Uint8Array {
    if (this.wiped) throw new Error('the local store is locked');
    return this.key;
  }

  private aad(name: string): Uint8Array {
    return concatBytes(utf8('kez-web/box'), Uint8Array.of(0), utf8(name));
  }

  seal(name: string, value: unknown): Boxed {
    const n = randomBytes(24);
    return { n, c: xchacha20poly1305(this.live(), n, this.aad(name)).encrypt(utf8(JSON.stringify(value))) };
  }

  open<T>(name: string, b: Boxed): T {
    const key = this.live();
    try {
      return JSON.parse(fromUtf8(xchacha20poly1305(key, b.n, this.aad(name)).decrypt(b.c))) as T;
    } catch {
      fail('decrypt_failed', `local record ${name} does not decrypt`);
    }
  }

  async put(name: string, value: unknown): Promise<void> {
    await this.store.set(this.prefix + name, this.seal(name, value));
  }

  async del(name: string): Promise<void> {
    await this.store.del(this.prefix + name);
  }

  async get<T>(name: string): Promise<T | undefined> {
    const b = await this.store.get<Boxed>(this.prefix + name);
    return b ? this.open<T>(name, b) : undefined;
  }
}
