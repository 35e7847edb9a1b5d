/**
 * The replay window W of PROTOCOL.md §6 step 6 and the pruning of the
 * seen-set it allows.
 *
 * A message older than W is rejected as stale, so a (from, id) pair may be
 * forgotten once its `ts` is older than W (plus slack). That is only safe
 * while W never shrinks: if a server could lower W for one session, the
 * seen-set would be pruned early and old envelopes redelivered later would
 * pass as new. So W is the protocol's value, raised (never lowered) by the
 * largest value a server ever reported, up to a ceiling that bounds storage.
 */

/** W of PROTOCOL.md §6: 30 days. */
export const PROTOCOL_WINDOW_MS = 30 * 24 * 60 * 60 * 1000;
/** The most a server can raise W to (bounds how long seen entries are kept). */
export const MAX_WINDOW_MS = 365 * 24 * 60 * 60 * 1000;
/** Seen entries are kept this much longer than W (clock skew between devices). */
export const SEEN_SLACK_MS = 10 * 60 * 1000;

/**
 * The window to use now: `pinned` is the largest W used before (persisted),
 * `reported` what /v1/config says now. Never below the protocol's value or
 * `pinned`.
 */
export function replayWindowMs(pinned: number | undefined, reported: number | undefined): number {
  const clean = (v: number | undefined) => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? Math.min(v, MAX_WINDOW_MS) : 0);
  return Math.max(PROTOCOL_WINDOW_MS, clean(pinned), clean(reported));
}

/** Drops seen entries whose message is older than the window: those are rejected as stale anyway. */
export function pruneSeen(seen: Map<string, number>, now: number, windowMs: number): void {
  const cutoff = now - windowMs - SEEN_SLACK_MS;
  for (const [k, ts] of seen) if (ts < cutoff) seen.delete(k);
}
