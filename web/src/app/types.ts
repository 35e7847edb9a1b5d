/** The app's data shapes (what is kept, encrypted, in IndexedDB and shown by the routes). */
import type { UserRecord } from '../lib/api';
import type { KezError } from '../lib/errors';
import type { ChainPin, WalkResult } from '../lib/sigchain';

export type Phase = 'loading' | 'welcome' | 'locked' | 'needs_handle' | 'ready';

export interface Contact {
  hex: string;
  key: string;
  handle: string;
  addedAt: number;
  /** Last sigchain tail verified for this key (rollback/fork detection). */
  pin: ChainPin | null;
  checkedAt: number | null;
  /** The user compared the safety number out of band. */
  verified: boolean;
  /** Set when the handle now resolves to another key: shown as a loud warning. */
  keyChange: { newHex: string; seenAt: number } | null;
  /** This record was replaced after a key change (kept so old messages keep a name). */
  replacedBy: string | null;
}

export interface SharedFileInfo {
  name: string;
  size: number;
  entryId: string;
}

export interface ChatMessage {
  id: string;
  dir: 'in' | 'out';
  /** `notice`: a line the app adds to the thread itself (e.g. "the key changed"), never sent. */
  kind: 'text' | 'file_share' | 'notice';
  text: string;
  file?: SharedFileInfo | null;
  ts: number;
  at: number;
  /**
   * `queued`: waiting in the outbox for the connection (sent again, with the same envelope and id, once connected);
   * `sent`: the relay acked it (stored for the recipient).
   */
  status: 'sending' | 'queued' | 'sent' | 'failed' | 'received';
  /** Sent by or to a key this contact had before a key change that the user accepted. */
  oldKey?: boolean;
  error?: string;
  /** Envelope bytes (b64url) kept until the relay stored them, for retry. */
  outer?: string;
  /** The sealed `sent` copy for the own inbox (§6.1), kept until stored; sent after `outer`. */
  copy?: string;
  /** Wave-1 records only (JetStream Nats-Msg-Id); ignored. */
  msgId?: string;
}

/** This browser profile as a device (§6.1): chosen once, kept beside the vault. */
export interface LocalDevice {
  id: string;
  name: string;
}

export interface BlockedSender {
  hex: string;
  at: number;
}

export const DEVICE_KEY = 'device';

export interface Conversation {
  hex: string;
  messages: ChatMessage[];
  unread: number;
  lastAt: number;
}

export interface Notice {
  at: number;
  code: string;
  message: string;
}

export interface IdentityView {
  handle: string;
  user: UserRecord;
  hex: string;
  walk: WalkResult;
  /** Rollback/fork against our pin, if any. */
  pinError: KezError | null;
  contact: Contact | null;
  /** The handle is pinned to a different key than the server now returns. */
  keyChanged: Contact | null;
}

