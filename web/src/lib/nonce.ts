/**
 * NATS nonce rule (PROTOCOL.md §2.2) and the nkey authenticator.
 *
 * The identity key signs a server nonce only if it matches
 * ^[A-Za-z0-9_-]{12,24}$: a hostile broker must not get a signature over a
 * KEZ signing input (which contains NUL bytes) or any other chosen bytes.
 */
import { fail } from './errors';
import { b64uEncode, utf8 } from './encoding';
import { nkeyPublic, publicKeyOf } from './keys';
import { signBytes } from './sign';

const NONCE = /^[A-Za-z0-9_-]{12,24}$/;

export function isSignableNonce(nonce: unknown): nonce is string {
  return typeof nonce === 'string' && NONCE.test(nonce);
}

/** Signs the raw ASCII nonce after the check; throws bad_nonce otherwise. */
export function signNonce(seed: Uint8Array, nonce: unknown): string {
  if (!isSignableNonce(nonce)) {
    fail('bad_nonce', nonce ? 'the server sent a nonce this client will not sign' : 'the server sent no nonce; refusing to connect');
  }
  return b64uEncode(signBytes(seed, utf8(nonce)));
}

/** The shape nats-core expects from an Authenticator (NKeyAuth). */
export interface NkeyAuth {
  nkey: string;
  sig: string;
}

/**
 * A nats-core Authenticator: `(nonce?) => { nkey: "U…", sig: base64url }`.
 * Throws (so the connection fails) when the nonce is missing or unsafe.
 */
export function kezAuthenticator(seed: Uint8Array): (nonce?: string) => NkeyAuth {
  const nkey = nkeyPublic(publicKeyOf(seed));
  return (nonce?: string) => ({ nkey, sig: signNonce(seed, nonce) });
}
