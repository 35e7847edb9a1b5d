/**
 * Retries the first connection with backoff. Once connected, nats.js keeps
 * reconnecting by itself; this covers the case it does not: the server was
 * down when the app unlocked (or the connection was closed for good).
 */

/** Delay before attempt `n` (0-based): 1 s doubling to 30 s, with up to 20 % jitter so clients do not retry in step. */
export function backoffDelay(n: number, random = Math.random): number {
  const base = Math.min(1000 * 2 ** Math.max(0, n), 30_000);
  return Math.round(base * (1 - 0.2 * random()));
}

export class Reconnector {
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** When the next try is due (ms since epoch), for "retrying in N s". */
  nextAt: number | null = null;

  constructor(private readonly run: () => Promise<void>) {}

  /** Schedules the next try (a pending one is kept). */
  schedule(): void {
    if (this.timer) return;
    const d = backoffDelay(this.attempt++);
    this.nextAt = Date.now() + d;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.nextAt = null;
      void this.run();
    }, d);
  }

  /** Connected: the next outage starts from the shortest delay again. */
  succeeded(): void {
    this.stop();
    this.attempt = 0;
  }

  /** Tries now (the user pressed "Reconnect now", or the browser came back online). */
  now(): void {
    this.stop();
    void this.run();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextAt = null;
  }
}
