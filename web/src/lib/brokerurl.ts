/**
 * PROTOCOL.md §11: a client logs in to NATS by signing the server's nonce, and
 * a broker it was lured to could relay that signature to the real one. TLS to
 * the broker's name is what ties the signature to the right server, so a
 * client connects without TLS only to a loopback address.
 */
import { fail } from './errors';

function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '[::1]' || h === '::1') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Refuses (insecure_broker) a WebSocket URL that is not `wss://` unless it points at loopback. */
export function checkBrokerUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    fail('insecure_broker', `the chat server address ${JSON.stringify(url)} is not a URL`);
  }
  if (u.protocol === 'wss:') return;
  if (u.protocol === 'ws:' && isLoopback(u.hostname)) return;
  fail(
    'insecure_broker',
    `the chat server address ${url} is not encrypted: only wss:// is used for a server that is not on this machine (ws:// is for 127.0.0.1 and localhost)`,
  );
}
