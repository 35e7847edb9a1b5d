/**
 * The ephemeral-static X25519 step shared by the chat envelope (§6) and the
 * file-key wrap (§7.2): fail closed on low-order input or an all-zero secret.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { fail } from './errors';
import { isAllZero } from './encoding';

export function x25519Shared(secret: Uint8Array, pub: Uint8Array, code: 'decrypt_failed' | 'invalid_key'): Uint8Array {
  let ss: Uint8Array;
  try {
    ss = x25519.getSharedSecret(secret, pub);
  } catch {
    fail(code, 'X25519 produced no contributory shared secret');
  }
  if (isAllZero(ss)) fail(code, 'X25519 shared secret is all zero');
  return ss;
}
