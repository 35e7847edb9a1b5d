/**
 * The contacts: trust on first use (a handle pinned to its key and sigchain
 * tail), the checks at every unlock (key change, rollback, fork) and what a
 * lookup shows. Kept encrypted in the local box (record `contacts`).
 */
import { api } from './api';
import { ApiError, type GatewayConfig } from '../lib/api';
import { KezError } from '../lib/errors';
import { displayHandle, parseHandleInput } from '../lib/handle';
import { parseKeyHex, type Identity } from '../lib/keys';
import type { LocalBox } from '../lib/localbox';
import { checkExtends, pinOf, walkChain, type ChainPin, type WalkResult } from '../lib/sigchain';
import type { Contact, IdentityView } from './types';

export interface ContactHost {
  me(): Identity | null;
  config(): GatewayConfig;
  domain(): string | null;
  box(): LocalBox | null;
  notice(code: string, e: unknown): void;
}

export class ContactBook {
  all = $state<Record<string, Contact>>({});
  /** Our own chain's last verified tail. */
  ownPin = $state.raw<ChainPin | null>(null);

  constructor(private readonly host: ContactHost) {}

  async save(): Promise<void> {
    await this.host.box()?.put('contacts', $state.snapshot(this.all));
  }

  /** Display name for a key: the contact's handle, or null for an unknown sender. */
  nameFor(hex: string): string | null {
    const c = this.all[hex];
    if (!c) return null;
    const name = this.host.domain() ? displayHandle(c.handle, this.host.domain()!) : c.handle;
    return c.replacedBy ? `${name} (old key)` : name;
  }

  byHandle(handle: string): Contact | null {
    return Object.values(this.all).find((c) => c.handle === handle && !c.replacedBy) ?? null;
  }

  /**
   * TOFU follow-up at every unlock: each pinned handle is looked up again; a
   * different key sets the loud key-change warning, and each chain must still
   * extend the pinned tail (rollback/fork become notices).
   */
  async recheck(): Promise<void> {
    for (const c of Object.values(this.all)) {
      if (c.replacedBy) continue;
      try {
        const user = await api.lookupHandle(c.handle);
        const hex = user.primary.slice('ed25519:'.length);
        if (hex !== c.hex && c.keyChange?.newHex !== hex) {
          c.keyChange = { newHex: hex, seenAt: Date.now() };
          await this.save();
        }
        const { walk, pinError } = await this.walkKey(c.hex);
        if (walk.error) this.host.notice('chain', new KezError(walk.error.code, `${c.handle}: ${walk.error.message}`));
        if (pinError) this.host.notice('chain', new KezError(pinError.code, `${c.handle}: ${pinError.message}`));
      } catch (e) {
        if (e instanceof ApiError && e.code === 'handle_not_found') {
          this.host.notice('contact', new KezError('handle_not_found', `${c.handle} is no longer registered`));
        }
        // network trouble: try again at the next unlock
      }
    }
  }

  /** Looks up a handle, walks its sigchain in the browser and compares with what we pinned. */
  async lookup(input: string): Promise<IdentityView> {
    const cfg = this.host.config();
    const handle = parseHandleInput(input, cfg.domain).full;
    const user = await api.lookupHandle(handle);
    if (user.handle !== handle) throw new KezError('invalid_request', 'the server answered for another handle');
    const hex = user.primary.slice('ed25519:'.length);
    const known = this.byHandle(handle);
    const keyChanged = known && known.hex !== hex ? known : null;
    if (keyChanged && (!keyChanged.keyChange || keyChanged.keyChange.newHex !== hex)) {
      keyChanged.keyChange = { newHex: hex, seenAt: Date.now() };
      await this.save();
    }
    const { walk, pinError } = await this.walkKey(hex);
    return { handle, user, hex, walk, pinError, contact: this.all[hex] ?? null, keyChanged };
  }

  /** Fetches and verifies the chain of a key; refreshes our pin when it extends the old one. */
  async walkKey(hex: string): Promise<{ walk: WalkResult; pinError: KezError | null }> {
    parseKeyHex(hex);
    const { links } = await api.sigchain(hex);
    const walk = walkChain(`ed25519:${hex}`, links);
    const me = this.host.me();
    const contact = this.all[hex];
    const pin = me && hex === me.hex ? this.ownPin : (contact?.pin ?? null);
    let pinError: KezError | null = null;
    if (!walk.error) {
      try {
        checkExtends(pin, walk.links.map((l) => l.link!));
        const newPin = pinOf(walk.state);
        if (me && hex === me.hex) {
          this.ownPin = newPin;
          void this.host.box()?.put('ownpin', newPin);
        } else if (contact) {
          contact.pin = newPin;
          contact.checkedAt = Date.now();
          await this.save();
        }
      } catch (e) {
        pinError = e instanceof KezError ? e : new KezError('chain_fork', String(e));
      }
    }
    return { walk, pinError };
  }

  /** Trust on first use: pin the key (and chain tail) for this handle. */
  async add(view: IdentityView): Promise<Contact> {
    if (view.walk.error) throw view.walk.error;
    if (view.keyChanged) throw new KezError('invalid_key', 'the key for this handle changed; review the warning first');
    const existing = this.all[view.hex];
    const c: Contact = existing ?? {
      hex: view.hex,
      key: view.user.primary,
      handle: view.handle,
      addedAt: Date.now(),
      pin: pinOf(view.walk.state),
      checkedAt: Date.now(),
      verified: false,
      keyChange: null,
      replacedBy: null,
    };
    c.handle = view.handle;
    this.all[view.hex] = c;
    await this.save();
    return this.all[view.hex]!;
  }

  async setVerified(hex: string, verified: boolean): Promise<void> {
    const c = this.all[hex];
    if (!c) return;
    c.verified = verified;
    await this.save();
  }

  async remove(hex: string): Promise<void> {
    delete this.all[hex];
    await this.save();
  }
}
