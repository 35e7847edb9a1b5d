/**
 * How long this browser stays unlocked: the user's choice, the stored session
 * (lib/session: the seed under a non-extractable key) and the timer that locks
 * the app when it runs out.
 */
import { DEFAULT_SESSION_MS, endSession, resumeSession, startSession } from '../lib/session';
import type { KV } from '../lib/storage';

/** The user's choice of how long to stay unlocked (not secret). */
const TTL_KEY = 'session-ttl';

export class SessionClock {
  /** When the stored session ends (the app locks itself then); null: locks when the page closes. */
  expires = $state<number | null>(null);
  /** How long an unlock keeps this browser unlocked (ms; 0 = until the page closes). */
  ttl = $state(DEFAULT_SESSION_MS);
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly store: KV,
    private readonly onExpire: () => void,
  ) {}

  async load(): Promise<void> {
    this.ttl = (await this.store.get<number>(TTL_KEY).catch(() => undefined)) ?? DEFAULT_SESSION_MS;
  }

  /** Unlocked with the passphrase (or created, or restored): keep the seed for the chosen time. */
  async start(seed: Uint8Array, pub: string): Promise<void> {
    this.arm(await startSession(this.store, seed, pub, this.ttl));
  }

  /** The seed of a live session for this vault, or null. */
  async resume(pub: string): Promise<Uint8Array | null> {
    const s = await resumeSession(this.store, pub).catch(() => null);
    if (s) this.arm(s.expiresAt);
    return s?.seed ?? null;
  }

  /** Remembers the choice; restarts the running session with it when one is given. */
  async setTtl(ms: number, running: { seed: Uint8Array; pub: string } | null): Promise<void> {
    this.ttl = ms;
    await this.store.set(TTL_KEY, ms);
    if (running) await this.start(running.seed, running.pub);
  }

  async end(): Promise<void> {
    this.arm(null);
    await endSession(this.store).catch(() => undefined);
  }

  /** Locks when the session ran out while the tab was asleep (timers are throttled in background tabs). */
  check(): void {
    if (this.expires !== null && Date.now() >= this.expires) this.fire();
  }

  private arm(expiresAt: number | null): void {
    this.expires = expiresAt;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (expiresAt === null) return;
    const left = expiresAt - Date.now();
    if (left <= 0) this.fire();
    else this.timer = setTimeout(() => this.arm(expiresAt), Math.min(left, 60_000)); // re-armed in steps
  }

  private fire(): void {
    this.arm(null);
    this.onExpire();
  }
}
