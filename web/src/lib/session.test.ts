import { describe, expect, it } from 'vitest';
import { endSession, resumeSession, SESSION_KEY, startSession, type SessionRecord } from './session';
import { memoryStore } from './storage';
import { randomBytes } from './encoding';

const PUB = 'ed25519:' + 'ab'.repeat(32);

describe('session', () => {
  it('round-trips the seed until expiry, never storing it in plain', async () => {
    const store = memoryStore();
    const seed = randomBytes(32);
    const now = 1_000_000;
    const exp = await startSession(store, seed, PUB, 60_000, now);
    expect(exp).toBe(now + 60_000);
    const rec = (await store.get<SessionRecord>(SESSION_KEY))!;
    expect(rec.key.extractable).toBe(false);
    expect(rec.key.algorithm.name).toBe('AES-GCM');
    // the stored bytes do not contain the seed
    const hay = Buffer.from(rec.ct).toString('hex') + Buffer.from(rec.iv).toString('hex');
    expect(hay.includes(Buffer.from(seed).toString('hex'))).toBe(false);
    await expect(crypto.subtle.exportKey('raw', rec.key)).rejects.toThrow();
    const back = await resumeSession(store, PUB, now + 59_999);
    expect(back && Buffer.from(back.seed).equals(Buffer.from(seed))).toBe(true);
  });

  it('is gone after expiry, for another key, after tampering, and after end', async () => {
    const store = memoryStore();
    const seed = randomBytes(32);
    await startSession(store, seed, PUB, 60_000, 0);
    expect(await resumeSession(store, PUB, 60_000)).toBeNull();
    expect(await store.get(SESSION_KEY)).toBeUndefined();

    await startSession(store, seed, PUB, 60_000, 0);
    expect(await resumeSession(store, 'ed25519:' + 'cd'.repeat(32), 1)).toBeNull();

    await startSession(store, seed, PUB, 60_000, 0);
    const rec = (await store.get<SessionRecord>(SESSION_KEY))!;
    await store.set(SESSION_KEY, { ...rec, expiresAt: rec.expiresAt + 3_600_000 }); // extended by hand: AAD no longer matches
    expect(await resumeSession(store, PUB, 1)).toBeNull();

    await startSession(store, seed, PUB, 60_000, 0);
    await endSession(store);
    expect(await resumeSession(store, PUB, 1)).toBeNull();
  });

  it('ttl 0 stores nothing', async () => {
    const store = memoryStore();
    expect(await startSession(store, randomBytes(32), PUB, 0)).toBeNull();
    expect(await store.keys()).toEqual([]);
  });
});
