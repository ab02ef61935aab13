// The storage contract every automerge-repo StorageAdapter in Pigeon keeps (DurableFileStorage,
// MemoryStorage), as a vitest suite.
//
// Part 1 is automerge-repo's own acceptance suite, ported from
//   @automerge/automerge-repo 2.5.6, src/helpers/tests/storage-adapter-tests.ts
//   (exported as "@automerge/automerge-repo/helpers/tests/storage-adapter-tests.js";
//    upstream: github.com/automerge/automerge-repo, packages/automerge-repo/src/helpers/tests/)
// test for test, same keys, payloads and expectations, with ONE deviation: where loadRange returns
// more than one chunk, the comparison ignores their order. Upstream compares with toStrictEqual in
// the order the chunks were saved ("sync-state/xxxxx", "snapshot/yyyyy", "sync-state/zzzzz"), which
// StorageAdapterInterface does not promise (its doc says nothing of order), automerge-repo does not
// use (StorageSubsystem.loadDocData asks for snapshots and incrementals in two separate loadRange
// calls), and a store that lists a directory cannot give without keeping a log of saves: the
// maintainers said as much when the test was changed ("we should not insist on ordering",
// automerge/automerge-repo#387). The unported upstream suite runs unchanged against MemoryStorage in
// storage-adapter.contract.test.ts, and a guard there fails if the shipped suite changes, so this
// port is re-checked whenever automerge-repo is upgraded.
//
// Part 2 adds what Pigeon relies on beyond upstream: prefixes match whole key parts, any string is a
// key part, stored values are copies, an empty value is a value, removing what is not there is fine,
// and (for a durable store) what was saved is there after reopening.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Chunk, StorageAdapterInterface, StorageKey } from "@automerge/automerge-repo";

export interface StorageSetup {
  adapter: StorageAdapterInterface;
  /** A fresh adapter over the same storage, as after a restart (durable stores only). */
  reopen?: () => StorageAdapterInterface | Promise<StorageAdapterInterface>;
  teardown?: () => void | Promise<void>;
}

// ---- Part 1: automerge-repo 2.5.6's acceptance tests (payloads as upstream) ----

const PAYLOAD_A = () => new Uint8Array([0, 1, 127, 99, 154, 235]);
const PAYLOAD_B = () => new Uint8Array([1, 76, 160, 53, 57, 10, 230]);
const PAYLOAD_C = () => new Uint8Array([2, 111, 74, 131, 236, 96, 142, 193]);

const LARGE_PAYLOAD = new Uint8Array(100000).map(() => Math.random() * 256);

export function runStorageAdapterContract(name: string, setup: () => Promise<StorageSetup>, options: { durable: boolean }): void {
  describe(`storage adapter contract: ${name}`, () => {
    let ctx: StorageSetup;
    let adapter: StorageAdapterInterface;
    beforeEach(async () => {
      ctx = await setup();
      adapter = ctx.adapter;
    });
    afterEach(async () => {
      await ctx.teardown?.();
    });

    describe("automerge-repo 2.5.6 acceptance tests (ported; loadRange order ignored)", () => {
      describe("load", () => {
        it("should return undefined if there is no data", async () => {
          const actual = await adapter.load(["AAAAA", "sync-state", "xxxxx"]);
          expect(actual).toBeUndefined();
        });
      });

      describe("save and load", () => {
        it("should return data that was saved", async () => {
          await adapter.save(["storage-adapter-id"], PAYLOAD_A());
          const actual = await adapter.load(["storage-adapter-id"]);
          expect(actual).toStrictEqual(PAYLOAD_A());
        });

        it("should work with composite keys", async () => {
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], PAYLOAD_A());
          const actual = await adapter.load(["AAAAA", "sync-state", "xxxxx"]);
          expect(actual).toStrictEqual(PAYLOAD_A());
        });

        it("should work with a large payload", async () => {
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], LARGE_PAYLOAD);
          const actual = await adapter.load(["AAAAA", "sync-state", "xxxxx"]);
          expect(actual).toStrictEqual(LARGE_PAYLOAD);
        });
      });

      describe("loadRange", () => {
        it("should return an empty array if there is no data", async () => {
          expect(await adapter.loadRange(["AAAAA"])).toStrictEqual([]);
        });
      });

      describe("save and loadRange", () => {
        it("should return all the data that matches the key", async () => {
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], PAYLOAD_A());
          await adapter.save(["AAAAA", "snapshot", "yyyyy"], PAYLOAD_B());
          await adapter.save(["AAAAA", "sync-state", "zzzzz"], PAYLOAD_C());

          expect(byKey(await adapter.loadRange(["AAAAA"]))).toStrictEqual(
            byKey([
              { key: ["AAAAA", "sync-state", "xxxxx"], data: PAYLOAD_A() },
              { key: ["AAAAA", "snapshot", "yyyyy"], data: PAYLOAD_B() },
              { key: ["AAAAA", "sync-state", "zzzzz"], data: PAYLOAD_C() },
            ]),
          );

          expect(byKey(await adapter.loadRange(["AAAAA", "sync-state"]))).toStrictEqual(
            byKey([
              { key: ["AAAAA", "sync-state", "xxxxx"], data: PAYLOAD_A() },
              { key: ["AAAAA", "sync-state", "zzzzz"], data: PAYLOAD_C() },
            ]),
          );
        });

        it("should only load values that match they key", async () => {
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], PAYLOAD_A());
          await adapter.save(["BBBBB", "sync-state", "zzzzz"], PAYLOAD_C());

          const actual = await adapter.loadRange(["AAAAA"]);
          expect(actual).toStrictEqual([{ key: ["AAAAA", "sync-state", "xxxxx"], data: PAYLOAD_A() }]);
        });
      });

      describe("save and remove", () => {
        it("after removing, should be empty", async () => {
          await adapter.save(["AAAAA", "snapshot", "xxxxx"], PAYLOAD_A());
          await adapter.remove(["AAAAA", "snapshot", "xxxxx"]);

          expect(await adapter.loadRange(["AAAAA"])).toStrictEqual([]);
          expect(await adapter.load(["AAAAA", "snapshot", "xxxxx"])).toBeUndefined();
        });
      });

      describe("save and save", () => {
        it("should overwrite data saved with the same key", async () => {
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], PAYLOAD_A());
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], PAYLOAD_B());

          expect(await adapter.loadRange(["AAAAA", "sync-state"])).toStrictEqual([
            { key: ["AAAAA", "sync-state", "xxxxx"], data: PAYLOAD_B() },
          ]);
        });
      });

      describe("removeRange", () => {
        it("should remove a range of records", async () => {
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], PAYLOAD_A());
          await adapter.save(["AAAAA", "snapshot", "yyyyy"], PAYLOAD_B());
          await adapter.save(["AAAAA", "sync-state", "zzzzz"], PAYLOAD_C());

          await adapter.removeRange(["AAAAA", "sync-state"]);

          expect(await adapter.loadRange(["AAAAA"])).toStrictEqual([{ key: ["AAAAA", "snapshot", "yyyyy"], data: PAYLOAD_B() }]);
        });

        it("should not remove records that don't match", async () => {
          await adapter.save(["AAAAA", "sync-state", "xxxxx"], PAYLOAD_A());
          await adapter.save(["BBBBB", "sync-state", "zzzzz"], PAYLOAD_B());

          await adapter.removeRange(["AAAAA"]);

          const actual = await adapter.loadRange(["BBBBB"]);
          expect(actual).toStrictEqual([{ key: ["BBBBB", "sync-state", "zzzzz"], data: PAYLOAD_B() }]);
        });
      });
    });

    // ---- Part 2: Pigeon's additions ----

    describe("Pigeon additions", () => {
      it("a prefix matches whole key parts, never part of one", async () => {
        await adapter.save(["AAAAA", "x"], PAYLOAD_A());
        await adapter.save(["AAAAAB", "y"], PAYLOAD_B());
        await adapter.save(["AAAA", "z"], PAYLOAD_C());
        await adapter.save(["AAAAA.B", "w"], PAYLOAD_C());
        expect(await adapter.loadRange(["AAAAA"])).toStrictEqual([{ key: ["AAAAA", "x"], data: PAYLOAD_A() }]);
        await adapter.removeRange(["AAAA"]);
        expect(await adapter.loadRange(["AAAAA"])).toStrictEqual([{ key: ["AAAAA", "x"], data: PAYLOAD_A() }]);
        expect(await adapter.load(["AAAAAB", "y"])).toStrictEqual(PAYLOAD_B());
        expect(await adapter.load(["AAAAA.B", "w"])).toStrictEqual(PAYLOAD_C());
        expect(await adapter.load(["AAAA", "z"])).toBeUndefined();
      });

      it("a key starts with itself: loadRange and removeRange of a whole key include it, and what lies under it", async () => {
        await adapter.save(["doc"], PAYLOAD_A());
        await adapter.save(["doc", "snapshot"], PAYLOAD_B());
        await adapter.save(["doc", "snapshot", "h1"], PAYLOAD_C());
        expect(byKey(await adapter.loadRange(["doc", "snapshot"]))).toStrictEqual(
          byKey([
            { key: ["doc", "snapshot"], data: PAYLOAD_B() },
            { key: ["doc", "snapshot", "h1"], data: PAYLOAD_C() },
          ]),
        );
        expect(byKey(await adapter.loadRange(["doc"]))).toHaveLength(3);
        await adapter.removeRange(["doc", "snapshot"]);
        expect(await adapter.loadRange(["doc"])).toStrictEqual([{ key: ["doc"], data: PAYLOAD_A() }]);
      });

      it("any string is a key part, and comes back exactly", async () => {
        const parts = ["a.b", "a/b", "a\\b", "..", ".", "%", "%41", "A", "with space", "é", "ÿ", "Ā", "\u00100" /* escaped alike by a naive %hh scheme */, "日本語", "🐦", "x.chunk", "a:b*?<>|\"'", "tab\there"];
        for (const [i, p] of parts.entries()) await adapter.save(["keys", p, p], Uint8Array.of(i));
        const got = byKey(await adapter.loadRange(["keys"]));
        expect(got).toStrictEqual(byKey(parts.map((p, i) => ({ key: ["keys", p, p], data: Uint8Array.of(i) }))));
        for (const [i, p] of parts.entries()) {
          expect(await adapter.load(["keys", p, p])).toStrictEqual(Uint8Array.of(i));
          expect(await adapter.loadRange(["keys", p])).toStrictEqual([{ key: ["keys", p, p], data: Uint8Array.of(i) }]);
        }
      });

      it("stores and returns copies: changing a buffer after save, or a loaded one, changes nothing stored", async () => {
        const buf = PAYLOAD_A();
        await adapter.save(["copy"], buf);
        buf.fill(9);
        const loaded = await adapter.load(["copy"]);
        expect(loaded).toStrictEqual(PAYLOAD_A());
        loaded!.fill(7);
        const [chunk] = await adapter.loadRange(["copy"]);
        expect(chunk!.data).toStrictEqual(PAYLOAD_A());
        chunk!.data!.fill(5);
        expect(await adapter.load(["copy"])).toStrictEqual(PAYLOAD_A());
      });

      it("an empty value is a value, not a missing one", async () => {
        await adapter.save(["empty"], new Uint8Array(0));
        expect(await adapter.load(["empty"])).toStrictEqual(new Uint8Array(0));
        expect(await adapter.loadRange(["empty"])).toStrictEqual([{ key: ["empty"], data: new Uint8Array(0) }]);
      });

      it("removing what is not there resolves and changes nothing", async () => {
        await adapter.save(["AAAAA", "snapshot", "x"], PAYLOAD_A());
        await expect(adapter.remove(["AAAAA", "snapshot", "nope"])).resolves.toBeUndefined();
        await expect(adapter.remove(["nothing", "here"])).resolves.toBeUndefined();
        await expect(adapter.removeRange(["nothing"])).resolves.toBeUndefined();
        await expect(adapter.removeRange(["AAAAA", "incremental"])).resolves.toBeUndefined();
        expect(await adapter.loadRange(["AAAAA"])).toStrictEqual([{ key: ["AAAAA", "snapshot", "x"], data: PAYLOAD_A() }]);
      });

      (options.durable ? it : it.skip)(
        `what was saved (and not removed) is there after reopening${options.durable ? "" : ` [skipped: ${name} is not durable]`}`,
        async () => {
          expect(ctx.reopen).toBeTypeOf("function");
          await adapter.save(["AAAAA", "snapshot", "x"], PAYLOAD_A());
          await adapter.save(["AAAAA", "incremental", "y"], PAYLOAD_B());
          await adapter.save(["AAAAA", "incremental", "z"], PAYLOAD_C());
          await adapter.save(["AAAAA", "incremental", "z"], PAYLOAD_A());
          await adapter.save(["BBBBB"], LARGE_PAYLOAD);
          await adapter.remove(["AAAAA", "incremental", "y"]);
          const again = await ctx.reopen!();
          expect(byKey(await again.loadRange(["AAAAA"]))).toStrictEqual(
            byKey([
              { key: ["AAAAA", "snapshot", "x"], data: PAYLOAD_A() },
              { key: ["AAAAA", "incremental", "z"], data: PAYLOAD_A() },
            ]),
          );
          expect(await again.load(["BBBBB"])).toStrictEqual(LARGE_PAYLOAD);
        },
      );
    });
  });
}

/** Chunks in key order, so two lists compare equal whatever order an adapter listed them in. */
function byKey(chunks: Chunk[]): Chunk[] {
  const k = (key: StorageKey) => JSON.stringify(key);
  return [...chunks].sort((x, y) => (k(x.key) < k(y.key) ? -1 : k(x.key) > k(y.key) ? 1 : 0));
}
