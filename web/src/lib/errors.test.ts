import { expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WIRE_CODES } from './errors';

test('the wire-code table equals PROTOCOL.md §10', () => {
  const md = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../../PROTOCOL.md'), 'utf8');
  const section = md.slice(md.indexOf('## 10. Errors'), md.indexOf('## 11.'));
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \| (\d+) \| (\d+) \|/gm)].map((m) => [m[1], [Number(m[2]), Number(m[3])]]);
  expect(rows.length).toBeGreaterThan(20);
  expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(WIRE_CODES).map(([k, v]) => [k, [...v]])));
});
