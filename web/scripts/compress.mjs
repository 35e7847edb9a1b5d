#!/usr/bin/env node
// Precompresses the build: next to each text file in dist/ a .br (brotli, best) and a .gz (gzip -9) copy, which the
// gateway serves by Accept-Encoding (gateway/src/web.rs). A copy that would not be smaller is not written.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../dist');
const TEXT = /\.(html|js|mjs|css|svg|json|webmanifest|txt|map)$/;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (TEXT.test(name)) yield p;
  }
}

let raw = 0;
let br = 0;
let gz = 0;
for (const f of files(dist)) {
  const data = readFileSync(f);
  const b = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } });
  const g = gzipSync(data, { level: 9 });
  raw += data.length;
  if (b.length < data.length) {
    writeFileSync(f + '.br', b);
    br += b.length;
  }
  if (g.length < data.length) {
    writeFileSync(f + '.gz', g);
    gz += g.length;
  }
}
const kb = (n) => (n / 1024).toFixed(1);
console.log(`precompressed: ${kb(raw)} KB → brotli ${kb(br)} KB, gzip ${kb(gz)} KB`);
