// The check a stored document chunk passes before it is loaded (a damaged one is set aside instead).
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import { changeHash, changeMeta, checkChunks, DocumentStore } from "./document-store.js";
import { DurableFileStorage } from "./durable-storage.js";
import { fillableStorage } from "./disk-full.test-helper.js";

function segment(messages: number): A.Doc<{ messages: { body: string }[] }> {
  let d = A.from<{ messages: { body: string }[] }>({ messages: [] });
  for (let i = 0; i < messages; i++) d = A.change(d, (x) => void x.messages.push({ body: `message ${i} `.repeat(1 + (i % 40)) }));
  return d;
}

describe("checkChunks", () => {
  it("passes what Automerge writes: a snapshot, incremental saves, several changes in one chunk", () => {
    const d = segment(60);
    expect(() => checkChunks(A.save(d))).not.toThrow();
    let e = A.load<{ messages: { body: string }[] }>(A.save(d));
    const heads = A.getHeads(e);
    e = A.change(e, (x) => void x.messages.push({ body: "x".repeat(2000) })); // large enough to be compressed
    expect(() => checkChunks(A.saveSince(e, heads))).not.toThrow();
    const changes = A.getAllChanges(e);
    const joined = Buffer.concat(changes.slice(-5));
    expect(() => checkChunks(joined)).not.toThrow();
  });

  it("fails a torn write, a truncated file, garbage and a flipped bit anywhere in the contents", () => {
    const bytes = A.save(segment(30));
    expect(() => checkChunks(bytes.subarray(0, bytes.length - 1))).toThrow(/cut short/);
    expect(() => checkChunks(bytes.subarray(0, 20))).toThrow(/cut short/);
    expect(() => checkChunks(new TextEncoder().encode("garbage"))).toThrow(/not an Automerge chunk/);
    expect(() => checkChunks(new Uint8Array(0))).toThrow(/empty/);
    for (const at of [9, 40, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const flipped = Uint8Array.from(bytes);
      flipped[at]! ^= 0x10;
      expect(() => checkChunks(flipped), `bit flipped at ${at}`).toThrow();
    }
    // a good chunk followed by a torn one (an incremental save cut by a crash)
    expect(() => checkChunks(Buffer.concat([bytes, bytes.subarray(0, 100)]))).toThrow(/at byte \d+ is cut short/);
    // and what passes this check loads
    expect(A.load(bytes)).toBeDefined();
  });
});

describe("changeHash", () => {
  it("is Automerge's hash of the change, small or large, without decoding it", () => {
    let d = segment(3);
    for (const size of [1, 300, 5000]) {
      d = A.change(d, (x) => void x.messages.push({ body: "y".repeat(size) }));
      const change = A.getLastLocalChange(d)!;
      expect(changeHash(change)).toBe(A.decodeChange(change).hash);
      expect(A.hasHeads(d, [changeHash(change)])).toBe(true);
    }
    // not one whole uncompressed change (a damaged one): Automerge's own decoding decides
    const good = A.getLastLocalChange(d)!;
    const change = Uint8Array.from(good);
    change[20]! ^= 1;
    expect(changeHash(change)).toBe(A.decodeChange(change).hash);
    expect(changeHash(change)).not.toBe(changeHash(good));
  });
});

describe("changeMeta", () => {
  it("reads actor, sequence number and hash from the header as Automerge decodes them: no dependency, one, several", () => {
    const meta = (c: Uint8Array) => {
      const { actor, seq, hash } = A.decodeChange(c);
      return { actor, seq, hash };
    };
    let a = A.change(A.init<{ n: Record<string, number> }>({ actor: "aa".repeat(16) }), (x) => void (x.n = {}));
    expect(changeMeta(A.getLastLocalChange(a)!)).toEqual(meta(A.getLastLocalChange(a)!));
    for (let i = 0; i < 130; i++) a = A.change(a, (x) => void (x.n[`k${i}`] = i)); // a sequence number past one LEB128 byte
    expect(changeMeta(A.getLastLocalChange(a)!)).toEqual({ ...meta(A.getLastLocalChange(a)!), seq: 131 });
    // two actors' heads: the next change depends on both
    let b = A.change(A.clone(a, { actor: "0b".repeat(20) }), (x) => void (x.n.b = 1));
    a = A.change(a, (x) => void (x.n.a = 1));
    a = A.merge(a, b);
    a = A.change(a, (x) => void (x.n.both = 1));
    const merged = A.getLastLocalChange(a)!;
    expect(A.decodeChange(merged).deps.length).toBe(2);
    expect(changeMeta(merged)).toEqual(meta(merged));
    b = A.change(b, (x) => void (x.n.c = 2));
    expect(changeMeta(A.getLastLocalChange(b)!)).toEqual(meta(A.getLastLocalChange(b)!));
    // cut short, or not an uncompressed change: Automerge's own decoding decides (and may refuse)
    const cut = merged.subarray(0, 40);
    expect(() => changeMeta(cut)).toThrow();
  });
});

describe("a document unloaded", () => {
  it("is not kept by anything: opening segment after segment does not grow memory", async () => {
    // a collector the test can run (vitest's workers start without --expose-gc)
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const heap = async () => {
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 10));
        gc();
      }
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-unload-"));
    try {
      const full = segment(300);
      const ids = Array.from({ length: 40 }, (_, i) => Uint8Array.from([i + 1, ...new Uint8Array(15)]));
      let store = new DocumentStore(new DurableFileStorage(dir));
      for (const id of ids) await store.open(id, () => A.clone(full), "0011", true);
      await store.close();
      // opened again from disk, one after another, keeping 2 loaded (a child scrolling 40 chats)
      store = new DocumentStore(new DurableFileStorage(dir));
      let before = 0;
      for (const [i, id] of ids.entries()) {
        const { handle } = await store.open<{ messages: { body: string }[] }>(id, () => segment(0), "0011", true);
        expect(handle.doc().messages).toHaveLength(300);
        await store.evict(2);
        if (i === 9) before = await heap();
      }
      // automerge-repo 2.5.6's find kept every document it loaded, with its load's patches: ~0.5 MiB
      // each here, ~15 MiB for these 30
      expect(await heap() - before).toBeLessThan(4);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("a document whose save fails (disk full)", () => {
  it("raises nothing no one hears; the store's own save says so, and writes the change once there is room", async () => {
    const unheard: unknown[] = [];
    const hear = (e: unknown) => unheard.push(e);
    process.on("unhandledRejection", hear);
    try {
      const { storage, full } = fillableStorage();
      const id = Uint8Array.from([7, ...new Uint8Array(15)]);
      const store = new DocumentStore(storage);
      const { handle } = await store.open<{ messages: { body: string }[] }>(id, () => segment(0), "0011");
      await store.flush(handle);
      full(true);
      handle.change((d) => void d.messages.push({ body: "while the disk is full" }));
      // automerge-repo's own save runs 100 ms after the change, and fails
      await new Promise((r) => setTimeout(r, 300));
      expect(unheard).toEqual([]);
      await expect(store.flush(handle)).rejects.toThrow(/no space left/);
      full(false);
      await store.flush(handle);
      await store.close();
      const again = new DocumentStore(storage);
      const reopened = await again.open<{ messages: { body: string }[] }>(id, () => segment(0), "0011");
      expect(reopened.handle.doc().messages.map((m) => m.body)).toEqual(["while the disk is full"]);
      await again.close();
    } finally {
      process.off("unhandledRejection", hear);
    }
  });
});
