import { KezError } from '../lib/errors';
import { MnemonicError } from '../lib/keys';

/** Words for any error, for display. Never throws. */
export function errorText(e: unknown): string {
  if (e instanceof MnemonicError) return sentence(e.message) + '.';
  if (e instanceof KezError) {
    const m = sentence(e.message);
    return HINTS[e.code] ? `${m}. ${HINTS[e.code]}` : m.endsWith('.') ? m : m + '.';
  }
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Capitalises a message that starts with an ordinary word (not a handle, key or code). */
function sentence(m: string): string {
  return /^[a-z]+(\s|,|$)/.test(m) ? m.charAt(0).toUpperCase() + m.slice(1) : m;
}

const HINTS: Partial<Record<string, string>> = {
  handle_taken: 'Pick another name.',
  key_registered: 'This key already owns a handle; restore it instead.',
  handle_reserved: 'Pick another.',
  rate_limited: 'Wait a moment and try again.',
  unavailable: 'The server is not reachable right now; try again shortly.',
  timeout: 'The server took too long; try again.',
  network: 'Check your connection.',
  insecure_context: 'Open the app over https or on localhost.',
  stale_timestamp: 'Check that this device’s clock is correct.',
  inbox_full: 'You already have as many messages waiting in this person’s inbox as the server keeps for one sender; try again after some expire.',
  store_full: 'The server’s message store is full; try again later.',
  device_limit: 'Remove a device in Settings on one of your other devices first.',
  device_removed: 'To use this browser again, log out and sign in with your 24 words.',
};

export function formatTime(ms: number): string {
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function formatDateTime(ms: number): string {
  return new Date(ms).toLocaleString();
}

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function shortHex(hex: string): string {
  return `${hex.slice(0, 8)}…${hex.slice(-8)}`;
}
