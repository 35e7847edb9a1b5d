/**
 * Shared vectors: every `*.json` in kv-schemas/testdata/ (written by the Rust
 * side, format in that folder's README.md) must have a handler here, and the
 * TypeScript code must produce and accept exactly the same bytes.
 *
 * A new vector file without a handler fails the suite, so nothing is silently
 * ignored. Handlers are keyed by file name.
 */
import { describe, expect, test } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseJson, type JsonValue } from './jcs';
import { handlers } from './test/vector-handlers';

// KEZ_VECTORS_DIR overrides the folder (e.g. to check freshly generated vectors before they land).
const DIR = process.env.KEZ_VECTORS_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../kv-schemas/testdata');
const files = existsSync(DIR) ? readdirSync(DIR).filter((f) => f.endsWith('.json')).sort() : [];

function load(name: string): JsonValue {
  // Vector files themselves are read with the duplicate-rejecting parser.
  return parseJson(readFileSync(join(DIR, name), 'utf8'));
}

// Not a failure: the Rust side writes the files. A handler whose file is missing is reported here.
const waiting = Object.keys(handlers).filter((n) => !files.includes(n));
if (waiting.length) console.warn(`vector files not present yet (handlers waiting): ${waiting.join(', ')}`);

describe('shared vectors (kv-schemas/testdata)', () => {
  test('every vector file has a handler', () => {
    const missing = files.filter((f) => !(f in handlers));
    expect(missing, `vector files without a TypeScript handler: ${missing.join(', ')}`).toEqual([]);
  });

  for (const f of files) {
    const h = handlers[f];
    if (h) test(f, () => h(load(f)));
  }
});
