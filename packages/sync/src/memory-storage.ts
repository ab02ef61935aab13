// An automerge-repo StorageAdapter held in memory: for tests and simulators that want a Repo without
// a data directory. It keeps the same contract as DurableFileStorage (test/contracts/
// storage-adapter.contract.test.ts): keys are non-empty arrays of strings, a prefix matches whole
// parts, and what it stores and returns are copies, so a caller that reuses its buffers cannot
// change what is stored. Nothing survives the process.
import type { Chunk, StorageAdapterInterface, StorageKey } from "@automerge/automerge-repo";

export class MemoryStorage implements StorageAdapterInterface {
  /** By the key's JSON (unambiguous for any strings), in the order keys were first saved. */
  private readonly chunks = new Map<string, { key: string[]; data: Uint8Array }>();

  async load(key: StorageKey): Promise<Uint8Array | undefined> {
    const c = this.chunks.get(id(key));
    return c && Uint8Array.from(c.data);
  }

  async save(key: StorageKey, data: Uint8Array): Promise<void> {
    this.chunks.set(id(key), { key: [...key], data: Uint8Array.from(data) });
  }

  async remove(key: StorageKey): Promise<void> {
    this.chunks.delete(id(key));
  }

  async loadRange(prefix: StorageKey): Promise<Chunk[]> {
    const out: Chunk[] = [];
    for (const c of this.chunks.values()) if (startsWith(c.key, prefix)) out.push({ key: [...c.key], data: Uint8Array.from(c.data) });
    return out;
  }

  async removeRange(prefix: StorageKey): Promise<void> {
    for (const [k, c] of this.chunks) if (startsWith(c.key, prefix)) this.chunks.delete(k);
  }

}

function id(key: StorageKey): string {
  if (key.length === 0) throw new Error("empty storage key");
  return JSON.stringify(key);
}

function startsWith(key: readonly string[], prefix: StorageKey): boolean {
  return prefix.length <= key.length && prefix.every((p, i) => key[i] === p);
}
