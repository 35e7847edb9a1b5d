/**
 * Group verification (PROTOCOL.md §6.2) beyond the shared vectors (checked in
 * vectors.test.ts): the fork rule converges for every arrival order, not only the two the
 * vectors list, and a change signed by a non-admin never enters the state.
 */
import { describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { utf8 } from './encoding';
import { GroupLog, parseGroupLinkBytes, parseGroupMessage, receiveGroupMessage, stateHash, type GroupLink } from './groups';
import { parseJson, type JsonObject } from './jcs';
import { expectCode } from './test/util';

const DIR = process.env.KEZ_VECTORS_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../kv-schemas/testdata');
const vectors = parseJson(readFileSync(resolve(DIR, 'groups.json'), 'utf8')) as JsonObject;
const cases = (k: string) => vectors[k] as JsonObject[];
const links = (c: JsonObject): GroupLink[] => (c.links as string[]).map((b) => parseGroupLinkBytes(utf8(b)));

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

describe('groups', () => {
  test.each(cases('forks').map((c) => [c.name as string, c] as const))('fork %s converges in every arrival order', (_, c) => {
    const [root, ...rest] = links(c);
    for (const order of permutations(rest)) {
      const log = new GroupLog(root!);
      for (const l of order) log.insert(l);
      expect(stateHash(log.current())).toBe(c.state_hash);
    }
  });

  test('a change signed by a non-admin never enters the state, and is no lost change', () => {
    const c = cases('invalid_logs').find((x) => x.name === 'add_by_non_admin')!;
    const [root, forged] = links(c);
    const log = new GroupLog(root!);
    const before = stateHash(log.current());
    expect(log.insert(forged!)).toBe(true);
    expect(stateHash(log.current())).toBe(before);
    expect(log.lost()).toEqual([]);
  });

  test('a second create for a known group is a fork, and a message naming an unknown state is flagged', () => {
    const v = cases('verdicts');
    const fork = v.find((x) => x.name === 'second_create_for_known_group')!;
    const known = (fork.known as string[]).map((b) => parseGroupLinkBytes(utf8(b)));
    const log = new GroupLog(known[0]!);
    for (const l of known.slice(1)) log.insert(l);
    expectCode(() => receiveGroupMessage(log, parseGroupMessage(fork.body!), fork.from as string, fork.reader as string), 'group_fork');
    const unknown = v.find((x) => x.name === 'unknown_state')!;
    const log2 = new GroupLog(parseGroupLinkBytes(utf8((unknown.known as string[])[0]!)));
    const out = receiveGroupMessage(log2, parseGroupMessage(unknown.body!), unknown.from as string, unknown.reader as string);
    expect(out.verdict).toBe('unknown_group_state');
  });
});
