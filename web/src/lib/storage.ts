/**
 * A tiny async key-value interface: IndexedDB (idb-keyval) in the browser,
 * memory in unit tests. Values are structured-cloneable (Uint8Array survives).
 */
import { createStore, get, set, del, clear, keys, type UseStore } from 'idb-keyval';

export interface KV {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  keys(): Promise<string[]>;
  clear(): Promise<void>;
}

export function idbStore(db = 'kez-chat', store = 'kv'): KV {
  let s: UseStore | null = null;
  const use = () => (s ??= createStore(db, store));
  return {
    get: (k) => get(k, use()),
    set: (k, v) => set(k, v, use()),
    del: (k) => del(k, use()),
    keys: async () => (await keys(use())).map(String),
    clear: () => clear(use()),
  };
}

export function memoryStore(): KV {
  const m = new Map<string, unknown>();
  return {
    get: async <T>(k: string) => structuredClone(m.get(k)) as T | undefined,
    set: async (k, v) => void m.set(k, structuredClone(v)),
    del: async (k) => void m.delete(k),
    keys: async () => [...m.keys()],
    clear: async () => m.clear(),
  };
}
