/**
 * Application state and actions (no protocol logic: that lives in lib/).
 *
 * One instance, `app`, holds the session (config, unlocked identity), the
 * contacts with their TOFU pins, the conversations and the NATS connection.
 * Everything personal is kept in IndexedDB encrypted at rest: the seed under
 * the passphrase (lib/vault), the rest under a key derived from the seed
 * (lib/localbox).
 */
import { api } from './api';
import { MAX_NOTICES } from './constants';
import { ApiError, type GatewayConfig } from '../lib/api';
import { KezError } from '../lib/errors';
import { b64uDecode, b64uEncode } from '../lib/encoding';
import { open, textBody } from '../lib/envelope';
import { fileMessage, sealWithCopy } from '../lib/sentcopy';
import { checkDeviceId, defaultDeviceName, newDeviceId, type Device } from '../lib/device';
import { parseHandleInput } from '../lib/handle';
import { identityFromSeed, mnemonicToSeed, parseKeyHex, type Identity } from '../lib/keys';
import { LocalBox } from '../lib/localbox';
import { pruneSeen, replayWindowMs } from '../lib/replay';
import { buildRegistration } from '../lib/register';
import {
  buildLink,
  natsEndpointBody,
  pinOf,
  verifyExtending,
  type ChainPin,
  type ChainState,
  type Link,
  type WalkResult,
} from '../lib/sigchain';
import { idbStore, type KV } from '../lib/storage';
import { lengthProblem } from './messages';
import { ContactBook } from './contacts.svelte';
import { mergeThread, toChatMessage } from './threads';
import type { Transport, TransportStatus } from '../lib/transport';
import { loadVaultRecord, saveVault, setVaultHandle, unlockVault, type VaultRecord } from '../lib/vault';
import { entriesForMe, verifyManifest } from '../lib/manifest';
import type { OpenedEntry } from '../lib/files';

import { SessionClock } from './session.svelte';
import { Notifier } from './notify.svelte';
import { ChatConnection, type ConnectionHooks } from './connection.svelte';
import {
  DEVICE_KEY,
  type BlockedSender,
  type ChatMessage,
  type Contact,
  type Conversation,
  type IdentityView,
  type LocalDevice,
  type Notice,
  type Phase,
} from './types';

export * from './types';

/** Where the last good /v1/config is kept (public data) so a reload during an outage still starts. */
const CONFIG_KEY = 'config';
/** Send failures that mean "not reachable now": the message waits in the outbox instead of failing. */
const TRANSIENT = new Set(['unavailable', 'timeout', 'network']);

class AppState {
  phase = $state<Phase>('loading');
  config = $state.raw<GatewayConfig | null>(null);
  configError = $state<string | null>(null);
  vault = $state.raw<VaultRecord | null>(null);
  me = $state.raw<Identity | null>(null);
  handle = $state('');
  convs = $state<Record<string, Conversation>>({});
  notices = $state<Notice[]>([]);
  activeConv = $state<string | null>(null);
  /** Handle typed at restore that is not registered yet (prefills the "choose a handle" page). */
  pendingHandle = $state('');
  /** This browser's device id and name. */
  device = $state.raw<LocalDevice | null>(null);
  /** Senders this user blocked (kept locally; the server has no list to read back). */
  blocked = $state<Record<string, BlockedSender>>({});
  readonly notifier = new Notifier();

  private store: KV = idbStore();
  readonly session = new SessionClock(this.store, () => void this.lock());
  readonly conn = new ChatConnection({
    open: (cb) => this.openTransport(cb),
    active: () => this.phase === 'ready',
    onConnected: () => {
      // Healthy again: errors about being unreachable are stale now.
      this.clearNotices('sent_copy');
      void this.ensureEndpointsOnce();
      void this.flushPending();
    },
  });

  get connection(): TransportStatus | 'off' {
    return this.conn.status;
  }
  get connectionDetail(): string {
    return this.conn.detail;
  }
  get deviceRemoved(): boolean {
    return this.conn.deviceRemoved;
  }
  private box: LocalBox | null = null;
  private seen = new Map<string, number>();
  /** The largest replay window W used so far (kept in the local box): a server can raise W, never lower it. */
  private pinnedWindowMs: number | undefined;

  get retentionMs(): number {
    return replayWindowMs(this.pinnedWindowMs, this.config?.inbox_max_age_ms);
  }

  get totalUnread(): number {
    let n = 0;
    for (const c of Object.values(this.convs)) n += c.unread;
    return n;
  }

  readonly book = new ContactBook({
    me: () => this.me,
    config: () => this.requireConfig(),
    domain: () => this.config?.domain ?? null,
    box: () => this.box,
    notice: (code, e) => this.addNotice(code, e),
  });
  get contacts(): Record<string, Contact> {
    return this.book.all;
  }
  set contacts(v: Record<string, Contact>) {
    this.book.all = v;
  }
  get ownPin(): ChainPin | null {
    return this.book.ownPin;
  }
  set ownPin(v: ChainPin | null) {
    this.book.ownPin = v;
  }
  /** Display name for a key: the contact's handle, or null for an unknown sender. */
  nameFor(hex: string): string | null {
    return this.book.nameFor(hex);
  }
  lookup(input: string): Promise<IdentityView> {
    return this.book.lookup(input);
  }
  walkKey(hex: string): Promise<{ walk: WalkResult; pinError: KezError | null }> {
    return this.book.walkKey(hex);
  }
  addContact(view: IdentityView): Promise<Contact> {
    return this.book.add(view);
  }
  setVerified(hex: string, verified: boolean): Promise<void> {
    return this.book.setVerified(hex, verified);
  }
  removeContact(hex: string): Promise<void> {
    return this.book.remove(hex);
  }

  // ------------------------------------------------------------ startup

  async init(): Promise<void> {
    this.phase = 'loading';
    await this.loadConfig();
    await this.session.load();
    try {
      this.vault = await loadVaultRecord(this.store);
    } catch {
      this.vault = null;
    }
    if (this.vault?.handle) {
      // A live session from an earlier page load: unlocked without the passphrase until it expires.
      const seed = await this.session.resume(this.vault.key);
      if (seed) {
        this.me = identityFromSeed(seed);
        this.handle = this.vault.handle;
        try {
          await this.enterApp();
          return;
        } catch {
          // The local data does not open with this seed: forget the session, ask for the passphrase.
          await this.session.end();
          this.wipeKeys();
        }
      }
    }
    this.phase = this.vault ? 'locked' : 'welcome';
  }

  /** /v1/config, else the copy from the last time it loaded (an outage must not stop the app from starting). */
  private async loadConfig(): Promise<boolean> {
    try {
      this.config = await api.config();
      this.configError = null;
      void this.store.set(CONFIG_KEY, $state.snapshot(this.config)).catch(() => undefined);
      return true;
    } catch (e) {
      this.configError = e instanceof KezError ? e.message : String(e);
      this.config ??= (await this.store.get<GatewayConfig>(CONFIG_KEY).catch(() => undefined)) ?? null;
      return false;
    }
  }

  /** Remembers how long to stay unlocked; applies to the next unlock, and to this one when it is running now. */
  async setSessionTtl(ms: number): Promise<void> {
    await this.session.setTtl(ms, this.me ? { seed: this.me.seed, pub: this.me.key } : null);
  }

  requireConfig(): GatewayConfig {
    if (!this.config) throw new KezError('unavailable', `the server configuration could not be loaded${this.configError ? ` (${this.configError})` : ''}`);
    return this.config;
  }

  requireMe(): Identity {
    if (!this.me) throw new KezError('no_vault', 'not unlocked');
    return this.me;
  }

  // ------------------------------------------------------------ account

  /** Stores the seed under the passphrase before anything is sent, so a failure later never loses the key. */
  async saveNewSeed(seed: Uint8Array, passphrase: string): Promise<void> {
    this.vault = await saveVault(this.store, seed, passphrase, '');
    this.me = identityFromSeed(seed);
    await this.session.start(seed, this.me.key);
  }

  /** POST /v1/register, then publish the endpoints and remember the handle. */
  async registerHandle(handle: string): Promise<void> {
    const cfg = this.requireConfig();
    const me = this.requireMe();
    const reg = buildRegistration({ seed: me.seed, aud: cfg.domain, handle, ts: Date.now() });
    await api.register(reg.bytes);
    await this.ensureEndpoints();
    await setVaultHandle(this.store, handle);
    this.vault = await loadVaultRecord(this.store);
    this.handle = handle;
    await this.enterApp();
  }

  /**
   * Verifies our own chain and appends the chat endpoint (nats with this server's url) if missing.
   * No iroh endpoint: a browser does not speak Iroh, and §7.5 endpoints belong to the devices that do.
   */
  async ensureEndpoints(): Promise<ChainState> {
    const cfg = this.requireConfig();
    const me = this.requireMe();
    for (let attempt = 0; ; attempt++) {
      const { links } = await api.sigchain(me.hex);
      // The own chain must extend what this browser verified before (rollback/fork is a hard failure).
      let state = verifyExtending(me.key, links, this.ownPin);
      const have = (pred: (b: Record<string, unknown>) => boolean) => state.endpoints.some((e) => pred(e.body));
      const wanted = [];
      if (!have((b) => b.kind === 'nats' && b.url === cfg.nats_url)) wanted.push(natsEndpointBody(me.hex, cfg.nats_url));
      try {
        for (const body of wanted) {
          const link: Link = buildLink({ seed: me.seed, prev: pinOf(state), ctime: Date.now(), op: 'add_endpoint', body });
          await api.appendLink(me.hex, link.bytes);
          state = { ...state, seqno: link.seqno, tail: link.linkId, endpoints: [...state.endpoints, { linkId: link.linkId, body }] };
        }
        this.ownPin = pinOf(state);
        void this.box?.put('ownpin', this.ownPin);
        return state;
      } catch (e) {
        // Another device appended at the same time: re-read the chain once and try again.
        if (attempt === 0 && e instanceof ApiError && (e.code === 'seqno_conflict' || e.code === 'prev_mismatch')) continue;
        throw e;
      }
    }
  }

  async unlock(passphrase: string): Promise<void> {
    const { seed, record } = await unlockVault(this.store, passphrase);
    this.vault = record;
    this.me = identityFromSeed(seed);
    await this.session.start(this.me.seed, this.me.key);
    if (!record.handle) {
      // Creation stopped before the handle was registered; the key may have been registered anyway.
      const found = await this.findHandleByKey(this.me.hex);
      if (found) {
        await setVaultHandle(this.store, found);
        this.handle = found;
      } else {
        this.phase = 'needs_handle';
        return;
      }
    } else {
      this.handle = record.handle;
    }
    await this.enterApp();
  }

  /** GET /v1/keys/ed25519/:hex if the gateway offers it; null when unknown or unsupported. */
  async findHandleByKey(hex: string): Promise<string | null> {
    try {
      return (await api.lookupKey(hex)).handle;
    } catch (e) {
      if (e instanceof ApiError && (e.code === 'key_not_found' || e.code === 'not_found' || e.code === 'handle_not_found')) return null;
      throw e;
    }
  }

  /**
   * Login from the 24 words on a new browser. The handle is found by key when
   * the gateway offers that route, else the user's input is checked: its
   * primary key must be the key of these words.
   */
  async restore(words: string, handleInput: string, passphrase: string): Promise<'ready' | 'needs_handle'> {
    const cfg = this.requireConfig();
    const seed = mnemonicToSeed(words);
    const id = identityFromSeed(seed);
    let handle = await this.findHandleByKey(id.hex);
    this.pendingHandle = '';
    if (!handle && handleInput.trim()) {
      const h = parseHandleInput(handleInput, cfg.domain).full;
      try {
        const user = await api.lookupHandle(h);
        if (user.primary !== id.key) throw new KezError('invalid_key', `${h} belongs to a different key than these words`);
        handle = user.handle;
      } catch (e) {
        // Not registered: these words are a key without an account yet; offer to register this handle.
        if (!(e instanceof ApiError && e.code === 'handle_not_found')) throw e;
        this.pendingHandle = h.slice(0, h.indexOf('@'));
      }
    }
    await saveVault(this.store, seed, passphrase, handle ?? '');
    this.vault = await loadVaultRecord(this.store);
    this.me = id;
    await this.session.start(seed, id.key);
    if (!handle) {
      this.phase = 'needs_handle';
      return 'needs_handle';
    }
    this.handle = handle;
    await this.enterApp();
    return 'ready';
  }

  private async enterApp(): Promise<void> {
    const me = this.requireMe();
    this.box = new LocalBox(me.seed, this.store);
    await this.loadLocal();
    this.phase = 'ready';
    this.endpointsDone = false;
    void this.connect();
    void this.book.recheck();
  }

  /** Our chain's endpoints are checked once per unlock, when the server is reachable; a failure is tried again at the next connect. */
  private endpointsDone = false;
  private async ensureEndpointsOnce(): Promise<void> {
    if (this.endpointsDone) return;
    try {
      await this.ensureEndpoints();
      this.endpointsDone = true;
      this.clearNotices('endpoints');
    } catch (e) {
      this.addNotice('endpoints', e);
    }
  }

  /** Log out: close the connection and clear everything this app stored in the browser. */
  async logout(): Promise<void> {
    // This browser stops being a device of the account: its consumer goes, and a later sign-in here picks a new id.
    const t = this.conn.transport;
    if (t && this.device && !this.deviceRemoved) await t.removeDevice(this.device.id).catch(() => undefined);
    await this.conn.reset(true);
    await this.session.end();
    await this.store.clear();
    this.wipeKeys();
    this.device = null;
    this.blocked = {};
    this.me = null;
    this.vault = null;
    this.handle = '';
    this.box = null;
    this.contacts = {};
    this.convs = {};
    this.notices = [];
    this.seen.clear();
    this.pinnedWindowMs = undefined;
    this.ownPin = null;
    this.phase = 'welcome';
  }

  /** Locks without deleting anything (the passphrase is needed again). */
  async lock(): Promise<void> {
    if (this.phase !== 'ready') return;
    this.phase = 'locked';
    await this.session.end();
    await this.conn.reset();
    this.wipeKeys();
    this.box = null;
    this.contacts = {};
    this.convs = {};
    this.blocked = {};
    this.notices = [];
    this.seen.clear();
  }

  /** Overwrites the seed and the local-store key in memory (the objects may outlive this state). */
  private wipeKeys(): void {
    this.me?.seed.fill(0);
    this.box?.wipe();
    this.me = null;
    this.box = null;
  }

  // ------------------------------------------------------------ local data

  private async loadLocal(): Promise<void> {
    const box = this.box!;
    this.contacts = (await box.get<Record<string, Contact>>('contacts')) ?? {};
    const list = (await box.get<string[]>('convlist')) ?? [];
    const convs: Record<string, Conversation> = {};
    for (const hex of list) {
      const c = await box.get<Conversation>(`conv:${hex}`);
      if (c) {
        // Anything still "sending" when the page closed did not get an ack: back to the outbox (same envelope, same id).
        for (const m of c.messages) if (m.status === 'sending') m.status = 'queued';
        convs[hex] = c;
      }
    }
    this.convs = convs;
    this.notices = (await box.get<Notice[]>('notices')) ?? [];
    this.seen = new Map(Object.entries((await box.get<Record<string, number>>('seen')) ?? {}));
    this.pinnedWindowMs = (await box.get<number>('window')) ?? undefined;
    this.ownPin = (await box.get<ChainPin>('ownpin')) ?? null;
    this.blocked = (await box.get<Record<string, BlockedSender>>('blocked')) ?? {};
  }

  /** The device id of this browser profile: read, or chosen once and stored beside the vault. */
  private async localDevice(): Promise<LocalDevice> {
    const stored = await this.store.get<LocalDevice>(DEVICE_KEY);
    if (stored && typeof stored.id === 'string' && /^[0-9a-f]{16}$/.test(stored.id)) return (this.device = stored);
    const nav = globalThis.navigator as (Navigator & { userAgentData?: { brands?: { brand: string }[]; platform?: string } }) | undefined;
    const d: LocalDevice = { id: newDeviceId(), name: defaultDeviceName(nav?.userAgent ?? '', nav?.userAgentData) };
    checkDeviceId(d.id);
    await this.store.set(DEVICE_KEY, d);
    return (this.device = d);
  }

  private async saveConv(hex: string): Promise<void> {
    const c = this.convs[hex];
    if (!c || !this.box) return;
    await this.box.put(`conv:${hex}`, $state.snapshot(c));
    await this.box.put('convlist', Object.keys(this.convs));
  }

  private async saveSeen(): Promise<void> {
    const w = this.retentionMs;
    if (w !== this.pinnedWindowMs) {
      this.pinnedWindowMs = w;
      await this.box?.put('window', w);
    }
    pruneSeen(this.seen, Date.now(), w);
    await this.box?.put('seen', Object.fromEntries(this.seen));
  }

  private addNotice(code: string, e: unknown): void {
    const message = e instanceof KezError ? `${e.code}: ${e.message}` : String(e);
    this.notices = [{ at: Date.now(), code, message }, ...this.notices].slice(0, MAX_NOTICES);
    void this.box?.put('notices', $state.snapshot(this.notices));
  }

  /** Dismisses all notices, or those of one kind (e.g. once the condition behind them is over). */
  clearNotices(code?: string): void {
    const left = code ? this.notices.filter((n) => n.code !== code) : [];
    if (left.length === this.notices.length) return;
    this.notices = left;
    void this.box?.put('notices', $state.snapshot(this.notices));
  }

  private conv(hex: string): Conversation {
    if (!this.convs[hex]) this.convs[hex] = { hex, messages: [], unread: 0, lastAt: 0 };
    return this.convs[hex]!; // the reactive proxy, not the object literal
  }

  markRead(hex: string): void {
    const c = this.convs[hex];
    if (c && c.unread) {
      c.unread = 0;
      void this.saveConv(hex);
    }
  }

  // ------------------------------------------------------------ identities and contacts

  /** After a loud warning the user accepts the new key: the old record is kept but retired. */
  async acceptKeyChange(view: IdentityView): Promise<Contact> {
    const old = view.keyChanged;
    if (old) {
      old.replacedBy = view.hex;
      old.keyChange = null;
    }
    const c = await this.addContact({ ...view, keyChanged: null });
    if (old) await this.mergeThread(old.hex, view.hex, old.handle);
    return c;
  }

  /** One thread per person: the old key's messages move to the new key's chat, after a notice line where the key changed. */
  private async mergeThread(oldHex: string, newHex: string, handle: string): Promise<void> {
    const from = this.convs[oldHex];
    mergeThread(from, this.conv(newHex), handle);
    if (from) {
      delete this.convs[oldHex];
      await this.box?.del(`conv:${oldHex}`);
    }
    await this.saveConv(newHex);
  }

  /**
   * A message request accepted: the server's handle for this key is looked up and its chain verified in the browser;
   * only when that handle's key is this very key does it become a contact (TOFU), so a sender cannot claim another's name.
   */
  async acceptRequest(hex: string): Promise<Contact> {
    const handle = await this.findHandleByKey(hex);
    if (!handle) throw new KezError('handle_not_found', 'this key has no handle on the server, so it cannot be added as a contact; you can still reply or block it');
    const view = await this.lookup(handle);
    if (view.hex !== hex) throw new KezError('invalid_key', `${handle} now belongs to another key than the one that wrote to you`);
    if (view.pinError) throw view.pinError;
    return this.addContact(view);
  }

  /** A contact's shared files that are wrapped for me (manifest checked against the chain). */
  async sharedFiles(hex: string): Promise<{ entries: OpenedEntry[]; total: number } | null> {
    const me = this.requireMe();
    const { walk, pinError } = await this.walkKey(hex);
    if (walk.error) throw walk.error;
    // A rolled-back or forked chain could point at an older manifest: refuse, as for messages.
    if (pinError) throw pinError;
    if (!walk.state.sharedFiles) return null;
    const bytes = await api.manifestByOwner(hex);
    if (!bytes) return null;
    const m = verifyManifest(bytes, walk.state);
    return { entries: entriesForMe(m, me.seed), total: m.entries.length };
  }

  // ------------------------------------------------------------ chat

  connect(): Promise<void> {
    return this.conn.connect();
  }

  reconnectNow(): void {
    this.conn.reconnectNow();
  }

  private async openTransport(cb: Parameters<ConnectionHooks['open']>[0]): Promise<Transport> {
    const me = this.requireMe();
    // An outage at page load left us with a cached config (or none): try the real one first.
    if (this.configError && !(await this.loadConfig()) && !this.config) throw new KezError('unavailable', 'the server cannot be reached');
    const cfg = this.requireConfig();
    if (location.protocol === 'https:' && cfg.nats_ws_url.startsWith('ws:')) {
      throw new KezError('insecure_context', 'the chat server address is not secure (ws://) but this page is https');
    }
    const device = await this.localDevice();
    const { connectTransport } = await import('../lib/transport');
    return connectTransport({
      wsUrl: cfg.nats_ws_url,
      seed: me.seed,
      stream: cfg.inbox_stream,
      deviceId: device.id,
      deviceName: device.name,
      onMessage: (m) => this.receive(m.data),
      onStatus: cb.onStatus,
      onStopped: cb.onStopped,
      // A permissions violation means this client used a subject it may not: a bug, so an error (the e2e run fails on it).
      onServerError: (m) => (/permissions? violation/i.test(m) ? console.error : console.warn)(`chat server: ${m}`),
    });
  }

  /**
   * The outbox: messages queued while offline, and sent copies not stored yet, go to the relay again, oldest first.
   * Each keeps the envelope sealed at first (same id), so a resend after a lost ack is dropped by the receiver as seen.
   */
  private flushing = false;
  private async flushPending(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      const due = Object.entries(this.convs)
        .flatMap(([hex, c]) => c.messages.filter((m) => m.dir === 'out' && (m.status === 'queued' || (m.status === 'sent' && m.copy))).map((m) => ({ hex, id: m.id, ts: m.ts })))
        .sort((a, b) => a.ts - b.ts);
      for (const d of due) {
        if (this.connection !== 'connected') break;
        await this.deliver(d.hex, d.id);
      }
    } finally {
      this.flushing = false;
    }
  }

  /** How many messages wait in the outbox. */
  get outboxSize(): number {
    let n = 0;
    for (const c of Object.values(this.convs)) for (const m of c.messages) if (m.status === 'queued') n++;
    return n;
  }

  /** Opens one inbox message and stores the result; resolves only after storing (then the transport acks). */
  private async receive(data: Uint8Array): Promise<void> {
    const me = this.me;
    if (!me) throw new Error('locked');
    let opened;
    try {
      opened = open(data, {
        mySeed: me.seed,
        now: Date.now(),
        retentionMs: this.retentionMs,
        seen: (from, id) => this.seen.has(`${from}/${id}`),
      });
    } catch (e) {
      if (e instanceof KezError && e.code === 'replayed') return; // already stored: ack quietly
      this.addNotice('rejected', e);
      await this.box?.put('notices', $state.snapshot(this.notices));
      return;
    }
    const fromHex = opened.from.slice('ed25519:'.length);
    // Blocked after this was stored (or held on a device that was offline): acked and dropped.
    if (this.blocked[fromHex]) return;
    const f = fileMessage(opened, me.key, (conv, dir, id) => !!this.convs[this.threadOf(conv)]?.messages.some((m) => m.dir === dir && m.id === id));
    this.seen.set(`${opened.from}/${opened.id}`, opened.ts);
    if (f) {
      const thread = this.threadOf(f.conv);
      const c = this.conv(thread);
      const m = toChatMessage(f, me.seed);
      if (thread !== f.conv) m.oldKey = true;
      c.messages.push(m);
      c.messages.sort((a, b) => a.ts - b.ts);
      c.lastAt = Math.max(c.lastAt, f.ts);
      const looking = this.activeConv === thread && document.visibilityState === 'visible';
      if (f.dir === 'in' && !looking) c.unread++;
      await this.saveConv(thread);
      if (f.dir === 'in') {
        const name = this.nameFor(thread);
        this.notifier.incoming(
          name ?? 'Message request',
          name ? m.text : 'Someone who is not in your contacts wrote to you.',
          `kez-${thread}`,
          looking && document.hasFocus(),
          () => (location.hash = `#/chat/${thread}`),
        );
      }
    }
    await this.saveSeen();
  }

  /** The conversation a key's messages go to: a key replaced after an accepted key change shares its successor's thread. */
  threadOf(hex: string): string {
    let h = hex;
    for (let i = 0; i < 8 && this.contacts[h]?.replacedBy; i++) h = this.contacts[h]!.replacedBy!;
    return h;
  }

  async sendText(hex: string, text: string): Promise<void> {
    const me = this.requireMe();
    const tooLong = lengthProblem(text);
    if (tooLong) throw new KezError('invalid_request', tooLong);
    const pk = parseKeyHex(hex);
    const { message, copy } = sealWithCopy({ senderSeed: me.seed, peerPk: pk, kind: 'text', body: textBody(text), ts: Date.now() });
    const msg: ChatMessage = {
      id: message.id,
      dir: 'out',
      kind: 'text',
      text,
      ts: message.inner.ts as number,
      at: Date.now(),
      status: 'sending',
      outer: b64uEncode(message.outer),
      copy: copy ? b64uEncode(copy.outer) : undefined,
    };
    const c = this.conv(hex);
    if (this.connection !== 'connected') msg.status = 'queued';
    c.messages.push(msg);
    c.lastAt = msg.ts;
    // Our own copy comes back through the inbox as well; it is skipped by its id, never replayed into the chat.
    await this.saveConv(hex);
    if (msg.status === 'sending') await this.deliver(hex, msg.id);
  }

  async retry(hex: string, id: string): Promise<void> {
    await this.deliver(hex, id);
  }

  /** Hands the message to the relay, then (once it is stored) its sent copy to the own inbox (§6.1). */
  private async deliver(hex: string, id: string): Promise<void> {
    const me = this.me;
    const m = this.convs[hex]?.messages.find((x) => x.id === id && x.dir === 'out');
    if (!m || !me || (!m.outer && !m.copy)) return;
    if (m.outer) {
      m.status = 'sending';
      m.error = undefined;
      try {
        await this.conn.require().send(hex, b64uDecode(m.outer));
        m.status = 'sent';
        m.outer = undefined;
        m.msgId = undefined;
      } catch (e) {
        // Unreachable now: wait in the outbox for the connection. Refused (full inbox, bad request…): the user decides.
        const transient = e instanceof KezError ? TRANSIENT.has(e.code) : true;
        m.status = transient ? 'queued' : 'failed';
        m.error = transient ? undefined : e instanceof KezError ? e.message : String(e);
        await this.saveConv(hex);
        if (transient && this.connection === 'connected') this.conn.retryLater('sending did not get an answer');
        return;
      }
      await this.saveConv(hex);
    }
    const t = this.conn.transport;
    if (m.copy && t) {
      try {
        await t.send(me.hex, b64uDecode(m.copy));
        m.copy = undefined;
        await this.saveConv(hex);
      } catch (e) {
        // The peer has the message; the other devices get the copy at the next connect.
        this.addNotice('sent_copy', e);
      }
    }
  }

  // ------------------------------------------------------------ devices and blocking

  private requireTransport(): Transport {
    return this.conn.require();
  }

  async listDevices(): Promise<Device[]> {
    return this.requireTransport().listDevices();
  }

  async renameDevice(id: string, name: string): Promise<Device> {
    const d = await this.requireTransport().renameDevice(id, name.trim());
    if (this.device && id === this.device.id) {
      this.device = { id, name: d.name };
      await this.store.set(DEVICE_KEY, this.device);
    }
    return d;
  }

  /** Removes a device; removing this one stops its delivery for good. */
  async removeDevice(id: string): Promise<void> {
    await this.requireTransport().removeDevice(id);
    if (this.device && id === this.device.id) this.conn.markRemoved();
  }

  /** Refuses a sender at the server (held mail is dropped on every device) and drops what still arrives here. */
  async block(hex: string): Promise<number> {
    parseKeyHex(hex);
    const purged = await this.requireTransport().block(`ed25519:${hex}`);
    this.blocked[hex] = { hex, at: Date.now() };
    await this.box?.put('blocked', $state.snapshot(this.blocked));
    return purged;
  }

  async unblock(hex: string): Promise<void> {
    await this.requireTransport().unblock(`ed25519:${hex}`);
    delete this.blocked[hex];
    await this.box?.put('blocked', $state.snapshot(this.blocked));
  }
}

export const app = new AppState();
