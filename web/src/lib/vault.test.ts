import { describe, expect, test } from 'vitest';
import { changePassphrase, loadVaultRecord, saveVault, setVaultHandle, unlockVault, PBKDF2_ITERATIONS } from './vault';
import { memoryStore } from './storage';
import { identityFromSeed } from './keys';
import { LocalBox } from './localbox';
import { expectCode, expectCodeAsync, seedOf } from './test/util';

const me = identityFromSeed(seedOf(71));
const FAST = 1000;

describe('vault', () => {
  test('save and unlock; wrong passphrase is a clear error; ciphertext hides the seed', async () => {
    const store = memoryStore();
    const rec = await saveVault(store, me.seed, 'correct horse battery', 'alice@kez.lat', FAST);
    expect(rec.key).toBe(me.key);
    expect(Buffer.from(rec.ct).includes(Buffer.from(me.seed))).toBe(false);
    const { seed, record } = await unlockVault(store, 'correct horse battery');
    expect(seed).toEqual(me.seed);
    expect(record.handle).toBe('alice@kez.lat');
    const e = await expectCodeAsync(() => unlockVault(store, 'wrong horse battery'), 'wrong_passphrase');
    expect(e.message).toMatch(/wrong passphrase/);
  });
  test('default iteration count is 600 000 and works through WebCrypto', async () => {
    const store = memoryStore();
    const rec = await saveVault(store, me.seed, 'long enough pass', '');
    expect(rec.iter).toBe(PBKDF2_ITERATIONS);
    expect((await unlockVault(store, 'long enough pass')).seed).toEqual(me.seed);
  });
  test('no vault, short passphrase, tampered record', async () => {
    const store = memoryStore();
    await expectCodeAsync(() => unlockVault(store, 'whatever123'), 'no_vault');
    await expectCodeAsync(() => saveVault(store, me.seed, 'short', '', FAST), 'invalid_request');
    const rec = await saveVault(store, me.seed, 'passphrase1', '', FAST);
    await store.set('vault', { ...rec, key: identityFromSeed(seedOf(72)).key });
    await expectCodeAsync(() => unlockVault(store, 'passphrase1'), 'wrong_passphrase');
  });
  test('a planted record with an absurd iteration count is refused before deriving', async () => {
    const store = memoryStore();
    const rec = await saveVault(store, me.seed, 'passphrase1', '', FAST);
    for (const iter of [2 ** 32, 2_000_001, 0, 1.5]) {
      await store.set('vault', { ...rec, iter });
      await expectCodeAsync(() => unlockVault(store, 'passphrase1'), 'no_vault');
    }
    await store.set('vault', rec);
    expect((await unlockVault(store, 'passphrase1')).seed).toEqual(me.seed);
  });
  test('change passphrase and set handle', async () => {
    const store = memoryStore();
    await saveVault(store, me.seed, 'old passphrase', '', FAST);
    await expectCodeAsync(() => changePassphrase(store, 'not the old one', 'new passphrase'), 'wrong_passphrase');
    await changePassphrase(store, 'old passphrase', 'new passphrase');
    await expectCodeAsync(() => unlockVault(store, 'old passphrase'), 'wrong_passphrase');
    expect((await unlockVault(store, 'new passphrase')).seed).toEqual(me.seed);
    await setVaultHandle(store, 'alice@kez.lat');
    expect((await loadVaultRecord(store))?.handle).toBe('alice@kez.lat');
  });
});

describe('local box (history at rest)', () => {
  test('wipe overwrites the key in memory and the box stops working', async () => {
    const store = memoryStore();
    const box = new LocalBox(me.seed, store);
    await box.put('k', 1);
    const key = (box as unknown as { key: Uint8Array }).key;
    box.wipe();
    expect(key.every((b) => b === 0)).toBe(true);
    await expect(box.get('k')).rejects.toThrow(/locked/);
    await expect(box.put('k', 2)).rejects.toThrow(/locked/);
    expect(await new LocalBox(me.seed, store).get('k')).toBe(1);
  });
  test('round trip; other seed or other name cannot open', async () => {
    const store = memoryStore();
    const box = new LocalBox(me.seed, store);
    await box.put('history:x', { msgs: [1, 2, 3] });
    expect(await box.get('history:x')).toEqual({ msgs: [1, 2, 3] });
    expect(await box.get('missing')).toBeUndefined();
    const raw = await store.get<{ n: Uint8Array; c: Uint8Array }>('box:history:x');
    expect(Buffer.from(raw!.c).toString()).not.toContain('msgs');
    const other = new LocalBox(seedOf(73), store);
    await expectCodeAsync(() => other.get('history:x'), 'decrypt_failed');
    expectCode(() => box.open('history:y', raw!), 'decrypt_failed');
  });
});
