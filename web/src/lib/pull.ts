/**
 * What one message arriving on a pull request's reply subject means
 * (PROTOCOL.md §9.4). Pure, so every status is unit-tested; the loop in
 * transport.ts acts on the answer.
 */

export type PullEvent =
  /** A stored message: hand it over, then ack it. */
  | { t: 'message' }
  /** 100 idle heartbeat: the pull request is alive. */
  | { t: 'heartbeat' }
  /** 404 no messages / 408 request expired: this pull request is over; pull again. */
  | { t: 'end'; why: string }
  /** The consumer is gone (409 consumer deleted, 503 nobody serves it): enroll again, which may say device_removed. */
  | { t: 'consumer_gone'; why: string }
  /** Anything else the server says about the request (other 409s, 400…): wait, then pull again. */
  | { t: 'retry_later'; why: string }
  /** Not for this consumer (no ack subject of ours): ignore it. */
  | { t: 'stray' };

export interface PullMsg {
  /** Status code of a status message (header line "NATS/1.0 <code> <description>"), 0 when none. */
  code: number;
  description: string;
  reply: string;
  dataLength: number;
}

export function classifyPull(m: PullMsg, ackPrefix: string): PullEvent {
  const why = `${m.code} ${m.description}`.trim();
  if (m.code > 0 && m.dataLength === 0) {
    switch (m.code) {
      case 100:
        return { t: 'heartbeat' };
      case 404:
      case 408:
        return { t: 'end', why };
      case 409:
        return /consumer (is )?deleted|consumer not found/i.test(m.description) ? { t: 'consumer_gone', why } : { t: 'retry_later', why };
      case 503:
        return { t: 'consumer_gone', why };
      default:
        return { t: 'retry_later', why };
    }
  }
  // Stored messages carry their ack subject as reply; only those can be acked, so only those are handed over.
  return m.reply.startsWith(ackPrefix) ? { t: 'message' } : { t: 'stray' };
}
