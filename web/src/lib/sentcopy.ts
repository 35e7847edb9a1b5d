/**
 * Sent copies (PROTOCOL.md §6.1): what a device seals when it sends, and where
 * an opened message belongs in the local history.
 *
 * Every device of a user holds the same seed, so what one device sends reaches
 * the others only as a `sent` copy sealed to the own key. The sending device
 * pulls that copy too and recognises the original id it already stored.
 */
import { parseSent, seal, sentBody, type ContentKind, type Opened, type Sealed } from './envelope';
import { bytesEqual } from './encoding';
import { identityFromSeed, keyString } from './keys';
import type { JsonObject } from './jcs';

export interface OutgoingPair {
  /** The message for the peer. */
  message: Sealed;
  /** The copy for the own inbox; null for a note to self (sent once, as a plain message). */
  copy: Sealed | null;
}

/** Seals `kind`/`body` for `peerPk` and, unless the peer is the sender, the `sent` copy for the sender's other devices. */
export function sealWithCopy(p: { senderSeed: Uint8Array; peerPk: Uint8Array; kind: ContentKind; body: JsonObject; ts: number }): OutgoingPair {
  const me = identityFromSeed(p.senderSeed);
  const message = seal({ senderSeed: p.senderSeed, recipientPk: p.peerPk, kind: p.kind, body: p.body, ts: p.ts });
  if (bytesEqual(me.pk, p.peerPk)) return { message, copy: null };
  // A fresh e and a fresh id: the copy is a message of its own, which carries the original id inside.
  const copy = seal({ senderSeed: p.senderSeed, recipientPk: me.pk, kind: 'sent', body: sentBody(keyString(p.peerPk), { id: message.id, kind: p.kind, body: p.body }), ts: p.ts });
  return { message, copy };
}

/** Where an opened message goes in the local history. */
export interface Filing {
  /** Conversation: the other party's key hex (the own hex for notes to self). */
  conv: string;
  dir: 'in' | 'out';
  /** The id the message is stored under: the original id for a sent copy. */
  id: string;
  kind: ContentKind;
  body: JsonObject;
  ts: number;
  /** The key whose files `body` refers to (a file_share's owner): the author. */
  authorHex: string;
}

/**
 * Files an opened message (open() already enforced that a `sent` copy comes
 * from the own key). Returns null when the message is already stored under
 * its id in its conversation, so a device skips its own copies and any
 * message it has seen before.
 */
export function fileMessage(o: Opened, meKey: string, has: (conv: string, dir: 'in' | 'out', id: string) => boolean): Filing | null {
  const fromHex = o.from.slice('ed25519:'.length);
  let f: Filing;
  if (o.kind === 'sent') {
    const s = parseSent(o.body);
    f = { conv: s.peerHex, dir: 'out', id: s.id, kind: s.kind, body: s.body, ts: o.ts, authorHex: fromHex };
  } else if (o.from === meKey) {
    // A note to self written on this or another device is something the user wrote.
    f = { conv: fromHex, dir: 'out', id: o.id, kind: o.kind, body: o.body, ts: o.ts, authorHex: fromHex };
  } else {
    f = { conv: fromHex, dir: 'in', id: o.id, kind: o.kind, body: o.body, ts: o.ts, authorHex: fromHex };
  }
  return has(f.conv, f.dir, f.id) ? null : f;
}
