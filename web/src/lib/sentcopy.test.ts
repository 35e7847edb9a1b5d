import { describe, expect, test } from 'vitest';
import { open, parseSent, textBody } from './envelope';
import { identityFromSeed } from './keys';
import { fileMessage, sealWithCopy } from './sentcopy';
import { seedOf } from './test/util';

const me = identityFromSeed(seedOf(31));
const peer = identityFromSeed(seedOf(32));
const now = 1_760_000_000_000;
const W = 86_400_000;
const openAs = (seed: Uint8Array, outer: Uint8Array) => open(outer, { mySeed: seed, now, retentionMs: W });

describe('sealWithCopy', () => {
  test('a message to a peer comes with a copy to the own key carrying the original id, kind and body', () => {
    const { message, copy } = sealWithCopy({ senderSeed: me.seed, peerPk: peer.pk, kind: 'text', body: textBody('hello'), ts: now });
    const m = openAs(peer.seed, message.outer);
    expect([m.kind, m.body.text]).toEqual(['text', 'hello']);
    const c = openAs(me.seed, copy!.outer);
    expect(c.kind).toBe('sent');
    expect(c.id).not.toBe(m.id); // a message of its own
    expect((copy!.inner.enc as string) !== (message.inner.enc as string)).toBe(true); // fresh e
    expect(parseSent(c.body)).toEqual({ peer: peer.key, peerHex: peer.hex, id: m.id, kind: 'text', body: { text: 'hello' } });
  });
  test('a note to self is sent once, without a copy', () => {
    const { message, copy } = sealWithCopy({ senderSeed: me.seed, peerPk: me.pk, kind: 'text', body: textBody('note'), ts: now });
    expect(copy).toBeNull();
    expect(openAs(me.seed, message.outer).kind).toBe('text');
  });
});

describe('fileMessage', () => {
  const stored = new Set<string>();
  const has = (conv: string, dir: string, id: string) => stored.has(`${conv}/${dir}/${id}`);
  test('a copy files as outgoing in the conversation with the peer; the sending device skips it', () => {
    const { message, copy } = sealWithCopy({ senderSeed: me.seed, peerPk: peer.pk, kind: 'text', body: textBody('from device 1'), ts: now });
    const f = fileMessage(openAs(me.seed, copy!.outer), me.key, has)!;
    expect(f).toMatchObject({ conv: peer.hex, dir: 'out', id: message.id, kind: 'text', body: { text: 'from device 1' }, ts: now });
    stored.add(`${peer.hex}/out/${message.id}`); // what the sending device stored when it sent
    expect(fileMessage(openAs(me.seed, copy!.outer), me.key, has)).toBeNull();
  });
  test('a message from a peer is incoming; a note to self is outgoing in the own conversation', () => {
    const { message } = sealWithCopy({ senderSeed: peer.seed, peerPk: me.pk, kind: 'text', body: textBody('hi'), ts: now });
    expect(fileMessage(openAs(me.seed, message.outer), me.key, has)).toMatchObject({ conv: peer.hex, dir: 'in', id: message.id, authorHex: peer.hex });
    const note = sealWithCopy({ senderSeed: me.seed, peerPk: me.pk, kind: 'text', body: textBody('note'), ts: now }).message;
    expect(fileMessage(openAs(me.seed, note.outer), me.key, has)).toMatchObject({ conv: me.hex, dir: 'out', id: note.id });
    stored.add(`${me.hex}/out/${note.id}`);
    expect(fileMessage(openAs(me.seed, note.outer), me.key, has)).toBeNull();
  });
});
