#!/usr/bin/env node
// First-load budget: the gzip size of everything dist/index.html loads before the app runs (its scripts,
// module preloads and stylesheets) must stay within BUDGET_KB. Lazily imported chunks (the NATS transport)
// are not first load. Run after `vite build` (npm run build does).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const BUDGET_KB = 150;
const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../dist');
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const urls = [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*\shref)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
let total = gzipSync(html).length;
for (const u of new Set(urls)) {
  const n = gzipSync(readFileSync(join(dist, u))).length;
  total += n;
  console.log(`${(n / 1024).toFixed(1).padStart(7)} KB gzip  ${u}`);
}
const kb = total / 1024;
console.log(`${kb.toFixed(1).padStart(7)} KB gzip  first load (budget ${BUDGET_KB} KB)`);
if (!urls.some((u) => u.endsWith('.js'))) throw new Error('no script found in dist/index.html');
if (kb > BUDGET_KB) {
  console.error(`first load is ${kb.toFixed(1)} KB gzip, over the ${BUDGET_KB} KB budget`);
  process.exit(1);
}
