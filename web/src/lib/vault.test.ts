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
