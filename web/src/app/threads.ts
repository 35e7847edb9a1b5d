/**
 * One thread per person across a key change: the old key's messages move into
 * the new key's conversation, marked as from the previous key, with a notice
 * line where the user accepted the new key. And what one filed message shows.
 */
import { KezError } from '../lib/errors';
import { openEntry, parseEntry } from '../lib/files';
import { parseKeyHex } from '../lib/keys';
import type { Filing } from '../lib/sentcopy';
import type { ChatMessage, Conversation, SharedFileInfo } from './types';

export function mergeThread(from: Conversation | undefined, to: Conversation, handle: string, now = Date.now()): void {
  const moved = (from?.messages ?? []).map((m) => ({ ...m, oldKey: true }));
  const notice: ChatMessage = {
    id: `keychange-${now}`,
    dir: 'in',
    kind: 'notice',
    text: `${handle} has a new key. You accepted it; messages above were with the previous key.`,
    ts: now,
    at: now,
    status: 'received',
  };
  const kept = to.messages.filter((m) => !moved.some((x) => x.dir === m.dir && x.id === m.id));
  to.messages = [...moved, ...kept, notice].sort((a, b) => a.ts - b.ts);
  to.unread += from?.unread ?? 0;
  to.lastAt = Math.max(to.lastAt, from?.lastAt ?? 0, now);
}

/** What a filed message (§6.1) shows in a chat: its text, or a line about the shared file it offers. */
export function toChatMessage(f: Filing, mySeed: Uint8Array): ChatMessage {
  let text = '';
  let file: SharedFileInfo | null = null;
  const you = f.dir === 'out' ? 'You shared' : 'shared';
  if (f.kind === 'text') {
    text = f.body.text as string;
  } else {
    try {
      // The entry is wrapped for its recipients; an outgoing copy opens only where the sender wrapped it for itself too.
      const o = openEntry(parseEntry(f.body.entry!), mySeed, parseKeyHex(f.authorHex));
      file = o ? { name: o.meta.name, size: o.meta.size, entryId: o.entry.id } : null;
      text = o ? `${you} a file: ${o.meta.name}` : f.dir === 'out' ? 'You shared a file' : 'shared a file that is not wrapped for this key';
    } catch (e) {
      text = `${you} a file that could not be opened (${e instanceof KezError ? e.code : 'error'})`;
    }
  }
  return { id: f.id, dir: f.dir, kind: f.kind, text, file, ts: f.ts, at: Date.now(), status: f.dir === 'out' ? 'sent' : 'received' };
}
