import { expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KezError, serviceError, WIRE_CODES } from './errors';

test('the wire-code table equals PROTOCOL.md §10', () => {
  const md = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../../PROTOCOL.md'), 'utf8');
  const section = md.slice(md.indexOf('## 10. Errors'), md.indexOf('## 11.'));
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \| (\d+) \| (\d+) \|/gm)].map((m) => [m[1], [Number(m[2]), Number(m[3])]]);
  expect(rows.length).toBeGreaterThan(20);
  expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(WIRE_CODES).map(([k, v]) => [k, [...v]])));
});

test('service errors map to the stable codes by number', () => {
  const e = serviceError('6001', 'inbox_full: you already hold 1000 messages in this inbox');
  expect(e).toBeInstanceOf(KezError);
  expect([e.code, e.message]).toEqual(['inbox_full', 'you already hold 1000 messages in this inbox']);
  for (const [code, [n]] of Object.entries(WIRE_CODES)) expect(serviceError(String(n), `${code}: x`).code).toBe(code);
  // the number wins over a text that names another code; the text is then kept whole
  expect([serviceError('6005', 'device_limit: y').code, serviceError('6005', 'device_limit: y').message]).toEqual(['device_removed', 'device_limit: y']);
  // unknown or missing numbers never pass through as codes the UI does not know
  expect(serviceError('7777', 'new_thing: z').code).toBe('internal');
  expect(serviceError('', 'no code').code).toBe('internal');
  expect(serviceError('12x', 'rate_limited: slow down').code).toBe('internal');
});
