/**
 * One thread per person across a key change: the old key's messages move into
 * the new key's conversation, marked as from the previous key, with a notice
 * line where the user accepted the new key.
 */
import type { ChatMessage, Conversation } from './types';

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
