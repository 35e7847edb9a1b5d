import { expect, test } from 'vitest';
import { checkDeviceId, checkDeviceName, consumerNextSubject, defaultDeviceName, deviceConnectionName, deviceConsumer, devicesSubject, DEVICE_ID_RE, newDeviceId, sendSubject } from './device';
import { expectCode } from './test/util';

test('device ids: 16 lowercase hex, random', () => {
  const a = newDeviceId();
  expect(a).toMatch(DEVICE_ID_RE);
  expect(newDeviceId()).not.toBe(a);
  for (const bad of ['', '0123456789abcde', '0123456789ABCDEF', '0123456789abcdeg', '0123456789abcdef0', 'a.b*']) expectCode(() => checkDeviceId(bad), 'invalid_request');
  expect(deviceConnectionName('0123456789abcdef')).toBe('kez-device:0123456789abcdef');
  expectCode(() => deviceConnectionName('x.>'), 'invalid_request');
});

test('subjects (PROTOCOL.md §9.1, §9.3)', () => {
  const h = 'ab'.repeat(32);
  expect(deviceConsumer(h, '0123456789abcdef')).toBe(`${h}_0123456789abcdef`);
  expect(consumerNextSubject('KEZ_INBOX', `${h}_0123456789abcdef`)).toBe(`$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.${h}_0123456789abcdef`);
  expect(sendSubject(h, 'cd'.repeat(32))).toBe(`kez.u.${h}.send.${'cd'.repeat(32)}`);
  expect(devicesSubject(h, 'enroll')).toBe(`kez.u.${h}.devices.enroll`);
});

test('device names: 1–64 characters, no control characters, not blank', () => {
  checkDeviceName('Chromium on Linux');
  checkDeviceName('é'.repeat(64));
  for (const bad of ['', '   ', 'é'.repeat(65), 'a\nb', 'tab\there', 'del\u007f']) expectCode(() => checkDeviceName(bad), 'invalid_request');
});

test('default names from the user agent', () => {
  const linuxChrome = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
  expect(defaultDeviceName(linuxChrome, { brands: [{ brand: 'Chromium' }, { brand: 'Not_A Brand' }], platform: 'Linux' })).toBe('Chromium on Linux');
  expect(defaultDeviceName(linuxChrome, { brands: [{ brand: 'Google Chrome' }, { brand: 'Chromium' }, { brand: 'Not A(Brand' }], platform: 'Windows' })).toBe('Chrome on Windows');
  expect(defaultDeviceName(linuxChrome)).toBe('Chrome on Linux');
  expect(defaultDeviceName('Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0')).toBe('Firefox on Linux');
  expect(defaultDeviceName('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15')).toBe('Safari on macOS');
  expect(defaultDeviceName('Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1')).toBe('Safari on iOS');
  expect(defaultDeviceName('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0')).toBe('Edge on Windows');
  expect(defaultDeviceName('')).toBe('Browser');
  expect(defaultDeviceName('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36')).toBe('Chromium on Linux');
  expect(defaultDeviceName('', { brands: [{ brand: 'HeadlessChrome' }, { brand: 'Chromium' }], platform: 'Linux' })).toBe('Chromium on Linux');
  const long = defaultDeviceName('', { brands: [{ brand: 'x'.repeat(100) }], platform: 'Linux\n' });
  expect([...long].length).toBeLessThanOrEqual(64);
  checkDeviceName(long);
});
