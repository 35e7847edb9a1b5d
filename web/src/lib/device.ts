/**
 * Devices and the user-request subjects (PROTOCOL.md §6.1, §9.3–§9.5). No NATS
 * code here, so the main bundle can use it without loading the transport.
 */
import { hexEncode, randomBytes } from './encoding';
import { fail } from './errors';

export const DEVICE_ID_RE = /^[0-9a-f]{16}$/;
export const MAX_DEVICE_NAME_CHARS = 64;
export const MAX_DEVICES = 16;

/** A device as the inbox service lists it (§9.3). */
export interface Device {
  id: string;
  name: string;
  created_at: number;
  last_active: number | null;
}

/** 8 random bytes as 16 lowercase hex characters, chosen once per browser profile. */
export function newDeviceId(): string {
  return hexEncode(randomBytes(8));
}

export function checkDeviceId(id: string): string {
  if (!DEVICE_ID_RE.test(id)) fail('invalid_request', 'a device id is 16 lowercase hex characters');
  return id;
}

/** 1–64 characters, no control characters, not only spaces (the service's rule). */
export function checkDeviceName(name: string): string {
  const n = [...name].length;
  // eslint-disable-next-line no-control-regex
  if (n === 0 || n > MAX_DEVICE_NAME_CHARS || /[\u0000-\u001f\u007f-\u009f]/.test(name) || !name.trim()) {
    fail('invalid_request', `a device name is 1 to ${MAX_DEVICE_NAME_CHARS} characters without control characters`);
  }
  return name;
}

interface UaData {
  brands?: { brand: string }[];
  platform?: string;
}

/**
 * A readable default name such as "Chromium on Linux" from the user agent
 * (client hints where the browser has them). Only a label for the device list.
 */
export function defaultDeviceName(ua: string, uaData?: UaData | null): string {
  let browser = 'Browser';
  const brands = (uaData?.brands ?? []).map((b) => b.brand).filter((b) => !/not.?a.?brand/i.test(b));
  const named = brands.find((b) => b !== 'Chromium' && b !== 'HeadlessChrome');
  if (named) browser = named.replace(/^Google /, '');
  else if (brands.length) browser = 'Chromium';
  else if (/Edg\//.test(ua)) browser = 'Edge';
  else if (/OPR\//.test(ua)) browser = 'Opera';
  else if (/Firefox\//.test(ua)) browser = 'Firefox';
  else if (/Chromium\//.test(ua)) browser = 'Chromium';
  else if (/HeadlessChrome\//.test(ua)) browser = 'Chromium';
  else if (/Chrome\//.test(ua)) browser = 'Chrome';
  else if (/Safari\//.test(ua)) browser = 'Safari';
  let os = uaData?.platform || '';
  if (!os || os === 'Unknown') {
    if (/Android/.test(ua)) os = 'Android';
    else if (/iPhone|iPad|iPod/.test(ua)) os = 'iOS';
    else if (/Windows/.test(ua)) os = 'Windows';
    else if (/Mac OS X|Macintosh/.test(ua)) os = 'macOS';
    else if (/CrOS/.test(ua)) os = 'ChromeOS';
    else if (/Linux/.test(ua)) os = 'Linux';
  }
  const name = os ? `${browser} on ${os}` : browser;
  // Never more than the service accepts, never a control character.
  // eslint-disable-next-line no-control-regex
  const clean = [...name.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')].slice(0, MAX_DEVICE_NAME_CHARS).join('').trim();
  return clean || 'Browser';
}

export const deviceConnectionName = (id: string) => `kez-device:${checkDeviceId(id)}`;
export const deviceConsumer = (hex: string, id: string) => `${hex}_${checkDeviceId(id)}`;
export const replyPrefix = (hex: string) => `_INBOX.${hex}`;
export const consumerNextSubject = (stream: string, consumer: string) => `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`;
export const consumerAckPrefix = (stream: string, consumer: string) => `$JS.ACK.${stream}.${consumer}.`;
export const sendSubject = (me: string, recipient: string) => `kez.u.${me}.send.${recipient}`;
export type DeviceOp = 'enroll' | 'list' | 'rename' | 'remove';
export const devicesSubject = (me: string, op: DeviceOp) => `kez.u.${me}.devices.${op}`;
export const blockSubject = (me: string) => `kez.u.${me}.block`;
export const unblockSubject = (me: string) => `kez.u.${me}.unblock`;
