// The PeerLink contract as a vitest suite: `runPeerLinkContract(name, makePair)` registers one test per
// rule written in packages/model/src/link.ts, against a fresh pair of connected links per test.
// Run against every implementation (test/contracts/peer-link.contract.test.ts): the memory link of
// @pigeon/sync and the WebSocket link of @pigeon/peers. An optional method a link lacks
// (bufferedBytes, pause/resume) or a frame limit it does not declare makes the tests that need it
// show as skipped, with the reason in their title, never pass silently.
import { describe, expect, it } from "vitest";
import type { ContactCard, PeerLink } from "@pigeon/model";

export interface LinkPair {
  /** Two ends of one connection: a's peer is b's identity and the other way round. */
  a: PeerLink;
  b: PeerLink;
  /** The identities the two ends were created with: `a.peer` must be `cards.b`, `b.peer` must be `cards.a`. */
  cards: { a: ContactCard; b: ContactCard };
  /** The largest frame the link carries, if it has a limit (frames above it close the link). */
  maxFrameBytes?: number;
  /** Releases everything the pair holds (sockets, servers). Called after every test, pass or fail. */
  teardown(): Promise<void>;
}

export interface PeerLinkContractOptions {
  /**
   * Whether the implementation has bufferedBytes / pause+resume. The suite checks this against a
   * fresh pair (so a wrong declaration fails), and registers the tests that need a method as skipped
   * when it is absent.
   */
  bufferedBytes: boolean;
  pauseResume: boolean;
  /** Whether pairs declare `maxFrameBytes` (the over-the-limit test is skipped otherwise). */
  frameLimit: boolean;
}

/** Without a declared limit, "large" means this. */
const LARGE_FRAME = 1024 * 1024;
/** How long "nothing happens" is watched for. */
const QUIET_MS = 150;

export function runPeerLinkContract(
  name: string,
  makePair: () => Promise<LinkPair>,
  options: PeerLinkContractOptions,
): void {
  /** Runs `body` on a fresh pair and always tears it down. */
  const withPair = (body: (p: LinkPair) => Promise<void>) => async () => {
    const p = await makePair();
    try {
      await body(p);
    } finally {
      await p.teardown();
    }
  };
  type Register = (title: string, fn: () => Promise<void>, timeout?: number) => void;
  const needs = (present: boolean, what: string): Register =>
    present
      ? (title, fn, timeout) => it(title, fn, timeout)
      : (title, fn, timeout) => it.skip(`${title} [skipped: ${name} has no ${what}]`, fn, timeout);
  const withBuffered = needs(options.bufferedBytes, "bufferedBytes()");
  const withPause = needs(options.pauseResume, "pause()/resume()");
  const withBoth = needs(options.bufferedBytes && options.pauseResume, "bufferedBytes() and pause()/resume()");
  const withLimit = needs(options.frameLimit, "frame limit");

  describe(`PeerLink contract: ${name}`, () => {
    it(
      "declares the optional methods it has (so the skips below are true)",
      withPair(async ({ a, b, maxFrameBytes }) => {
        for (const l of [a, b]) {
          expect(typeof l.bufferedBytes === "function").toBe(options.bufferedBytes);
          expect(typeof l.pause === "function").toBe(options.pauseResume);
          expect(typeof l.resume === "function").toBe(options.pauseResume);
        }
        expect(maxFrameBytes !== undefined).toBe(options.frameLimit);
        if (maxFrameBytes !== undefined) expect(Number.isSafeInteger(maxFrameBytes) && maxFrameBytes > 0).toBe(true);
      }),
    );

    describe("identity", () => {
      it(
        "peer is the other side's identity; the link starts open",
        withPair(async ({ a, b, cards }) => {
          expectCard(a.peer, cards.b);
          expectCard(b.peer, cards.a);
          expect(a.closed).toBe(false);
          expect(b.closed).toBe(false);
          expect(typeof a.description).toBe("string");
          expect(a.description.length).toBeGreaterThan(0);
          expect(b.description.length).toBeGreaterThan(0);
        }),
      );
    });

    describe("frames", () => {
      it(
        "arrive whole, in order and byte-equal, both ways at once, from 0 bytes up",
        withPair(async ({ a, b }) => {
          const sizes = [0, 1, 2, 0, 3, 15, 16, 17, 255, 256, 1000, 4096, 65_535, 65_536, 65_537, 100_000, 1, 0];
          const toB = sizes.map((n, i) => frameOf(n, i));
          const toA = [...sizes].reverse().map((n, i) => frameOf(n, 1000 + i));
          // and many small frames interleaved with them
          for (let i = 0; i < 300; i++) {
            toB.push(frameOf(4 + (i % 7), 2000 + i));
            toA.push(frameOf(4 + (i % 5), 3000 + i));
          }
          const atA = collect(a);
          const atB = collect(b);
          for (let i = 0; i < Math.max(toA.length, toB.length); i++) {
            if (toB[i]) a.send(toB[i]!);
            if (toA[i]) b.send(toA[i]!);
          }
          await waitFor(() => atB.length >= toB.length && atA.length >= toA.length, "every frame");
          await quiet();
          expectFrames(atB, toB);
          expectFrames(atA, toA);
        }),
      );

      it(
        "a frame of the largest size arrives intact (the link's limit, or 1 MiB without one)",
        withPair(async ({ a, b, maxFrameBytes }) => {
          const n = maxFrameBytes ?? LARGE_FRAME;
          const sent = [frameOf(n, 1), frameOf(0, 2), frameOf(n, 3), frameOf(n - 1, 4)];
          const got = collect(b);
          for (const f of sent) a.send(f);
          await waitFor(() => got.length >= sent.length, "the large frames", 20_000);
          expectFrames(got, sent);
          expect(a.closed || b.closed).toBe(false);
        }),
        30_000,
      );

      withLimit(
        "a frame over the limit is neither cut nor split: the link closes, both sides",
        withPair(async ({ a, b, maxFrameBytes }) => {
          const max = maxFrameBytes!;
          const got = collect(b);
          const closedA = closeOf(a);
          const closedB = closeOf(b);
          a.send(frameOf(8, 1));
          a.send(frameOf(max + 1, 2));
          a.send(frameOf(8, 3));
          await closedA;
          await closedB;
          // at most the frame before it, never a piece of the big one nor the frame after it
          expect(got.length).toBeLessThanOrEqual(1);
          if (got.length === 1) expectFrames(got, [frameOf(8, 1)]);
        }),
        30_000,
      );

      it(
        "send() never calls a frame handler before it returns",
        withPair(async ({ a, b }) => {
          const got = collect(b);
          const echoed = collect(a);
          b.onFrame((f) => b.send(f));
          a.send(frameOf(5, 1));
          expect(got.length).toBe(0);
          expect(echoed.length).toBe(0);
          await waitFor(() => echoed.length === 1, "the echo");
          expectFrames(got, [frameOf(5, 1)]);
        }),
      );

      it(
        "the sender may reuse its buffer once send() returns",
        withPair(async ({ a, b }) => {
          const got = collect(b);
          const buf = frameOf(64, 7);
          const original = Uint8Array.from(buf);
          a.send(buf);
          buf.fill(0xee);
          a.send(buf.subarray(0, 10));
          buf.fill(0x11);
          await waitFor(() => got.length === 2, "two frames");
          expectFrames(got, [original, new Uint8Array(10).fill(0xee)]);
        }),
      );

      it(
        "frames sent before the receiver sets onFrame are held and delivered, in order, once it does",
        withPair(async ({ a, b }) => {
          const early = [frameOf(10, 1), frameOf(0, 2), frameOf(70_000, 3), frameOf(3, 4)];
          for (const f of early) a.send(f);
          await quiet(); // long enough for every one of them to have arrived
          const got = collect(b);
          const late = [frameOf(12, 5), frameOf(1, 6)];
          for (const f of late) a.send(f);
          await waitFor(() => got.length >= early.length + late.length, "held and later frames");
          await quiet();
          expectFrames(got, [...early, ...late]);
        }),
      );

      it(
        "every frame handler sees every later frame, in registration order",
        withPair(async ({ a, b }) => {
          const calls: string[] = [];
          b.onFrame((f) => calls.push(`first ${f[0]}`));
          b.onFrame((f) => calls.push(`second ${f[0]}`));
          a.send(Uint8Array.of(1));
          a.send(Uint8Array.of(2));
          await waitFor(() => calls.length === 4, "both handlers, both frames");
          expect(calls).toEqual(["first 1", "second 1", "first 2", "second 2"]);
          b.onFrame((f) => calls.push(`third ${f[0]}`));
          a.send(Uint8Array.of(3));
          await waitFor(() => calls.length === 7, "three handlers");
          expect(calls.slice(4)).toEqual(["first 3", "second 3", "third 3"]);
        }),
      );

      it(
        "a frame handler that throws closes the link (and nothing escapes as an uncaught error)",
        withPair(async ({ a, b }) => {
          const seen: number[] = [];
          b.onFrame((f) => {
            seen.push(f[0]!);
            if (f[0] === 2) throw new Error("cannot digest this");
          });
          const closedB = closeOf(b);
          const closedA = closeOf(a);
          a.send(Uint8Array.of(1));
          a.send(Uint8Array.of(2));
          a.send(Uint8Array.of(3));
          expect(await closedB).toMatch(/^frame handler failed: cannot digest this/);
          await closedA;
          await quiet();
          expect(seen).toEqual([1, 2]);
        }),
      );
    });

    describe("close", () => {
      it(
        "close(reason): each side's onClose fires exactly once; the closer's gets the reason, the other's includes it",
        withPair(async ({ a, b }) => {
          const atA: string[] = [];
          const atB: string[] = [];
          a.onClose((r) => atA.push(r));
          b.onClose((r) => atB.push(r));
          a.close("contract: bye now");
          expect(a.closed).toBe(true);
          await waitFor(() => atA.length > 0 && atB.length > 0, "both close handlers");
          expect(b.closed).toBe(true);
          a.close("again");
          b.close("and again");
          await quiet();
          expect(atA).toEqual(["contract: bye now"]);
          expect(atB.length).toBe(1);
          expect(atB[0]).toContain("contract: bye now");
          expect(a.closed && b.closed).toBe(true);
        }),
      );

      it(
        "close() without a reason gives a non-empty one; every registered close handler is called",
        withPair(async ({ a, b }) => {
          const atA: string[] = [];
          const atB: string[] = [];
          a.onClose((r) => atA.push(`1:${r}`));
          a.onClose((r) => atA.push(`2:${r}`));
          b.onClose((r) => atB.push(r));
          b.close();
          await waitFor(() => atA.length === 2 && atB.length === 1, "close handlers");
          expect(atB[0]!.length).toBeGreaterThan(0);
          expect(atA[0]!.startsWith("1:") && atA[1]!.startsWith("2:")).toBe(true);
          expect(atA[0]!.length).toBeGreaterThan(2);
          await quiet();
          expect(atA.length).toBe(2);
          expect(atB.length).toBe(1);
        }),
      );

      it(
        "both sides closing at once: each side's handlers fire exactly once",
        withPair(async ({ a, b }) => {
          const atA: string[] = [];
          const atB: string[] = [];
          a.onClose((r) => atA.push(r));
          b.onClose((r) => atB.push(r));
          a.close("from a");
          b.close("from b");
          await waitFor(() => atA.length > 0 && atB.length > 0, "both close handlers");
          await quiet();
          expect(atA).toEqual(["from a"]);
          expect(atB.length).toBe(1);
          expect(atB[0]).toMatch(/from (a|b)/);
        }),
      );

      it(
        "after close, send does nothing and does not throw (both sides); a frame handler set then is never called",
        withPair(async ({ a, b }) => {
          const atA = collect(a);
          const atB = collect(b);
          a.send(Uint8Array.of(1));
          await waitFor(() => atB.length === 1, "a frame before the close");
          const closedB = closeOf(b);
          a.close("done");
          await closedB;
          expect(() => a.send(Uint8Array.of(2))).not.toThrow();
          expect(() => b.send(Uint8Array.of(3))).not.toThrow();
          const late: Uint8Array[] = [];
          expect(() => a.onFrame((f) => late.push(f))).not.toThrow();
          expect(() => b.onFrame((f) => late.push(f))).not.toThrow();
          await quiet();
          expect(atB.length).toBe(1);
          expect(atA.length).toBe(0);
          expect(late.length).toBe(0);
        }),
      );

      it(
        "what arrives before a close is a prefix of what was sent",
        withPair(async ({ a, b }) => {
          const got = collect(b);
          const sent = Array.from({ length: 400 }, (_, i) => frameOf(1 + (i % 300), i));
          const closedB = closeOf(b);
          for (let i = 0; i < sent.length; i++) {
            a.send(sent[i]!);
            if (i === 200) await new Promise<void>((r) => setImmediate(r)); // let some go first
          }
          a.close("enough");
          await closedB;
          await quiet();
          expectFrames(got, sent.slice(0, got.length));
        }),
      );

      it(
        "onClose registered after the close is called once, asynchronously, with the reason the link closed with",
        withPair(async ({ a, b }) => {
          const first: string[] = [];
          b.onClose((r) => first.push(r));
          a.close("contract: late listeners");
          await waitFor(() => first.length === 1, "b to close");
          const lateA: string[] = [];
          const lateB: string[] = [];
          a.onClose((r) => lateA.push(r));
          b.onClose((r) => lateB.push(r));
          expect(lateA).toEqual([]); // not inside onClose itself
          expect(lateB).toEqual([]);
          await waitFor(() => lateA.length === 1 && lateB.length === 1, "the late close handlers");
          await quiet();
          expect(lateA).toEqual(["contract: late listeners"]);
          expect(lateB).toEqual(first);
        }),
      );
    });

    describe("flow control", () => {
      withBuffered(
        "bufferedBytes() is 0 on an idle link and returns to 0 once the peer has taken everything",
        withPair(async ({ a, b, maxFrameBytes }) => {
          expect(a.bufferedBytes!()).toBe(0);
          expect(b.bufferedBytes!()).toBe(0);
          const size = Math.min(maxFrameBytes ?? LARGE_FRAME, 256 * 1024);
          const got = collect(b);
          for (let i = 0; i < 16; i++) a.send(frameOf(size, i));
          await waitFor(() => got.length === 16, "the frames", 20_000);
          await waitFor(() => a.bufferedBytes!() === 0, "bufferedBytes to return to 0");
          expect(got.every((f, i) => f.length === size && f[0] === frameOf(size, i)[0])).toBe(true);
        }),
        30_000,
      );

      withBoth(
        "bufferedBytes() grows while the peer is paused, stays while it stays paused, and returns to 0 after it resumes",
        withPair(async ({ a, b, maxFrameBytes }) => {
          const size = Math.min(maxFrameBytes ?? LARGE_FRAME, 256 * 1024);
          const got = collect(b);
          b.pause!();
          // Fill whatever lies between (for a socket: both kernels' buffers) until bytes stay queued here.
          let sent = 0;
          while (true) {
            a.send(frameOf(size, sent++));
            await sleep(20); // time for a socket with room to take it all
            if (a.bufferedBytes!() > 0) break;
            if (sent * size > 128 * 1024 * 1024) throw new Error("bufferedBytes() stayed 0 after 128 MiB to a paused peer");
          }
          const before = a.bufferedBytes!();
          for (let i = 0; i < 4; i++) a.send(frameOf(size, sent++));
          expect(a.bufferedBytes!()).toBeGreaterThanOrEqual(before + 4 * size);
          await sleep(QUIET_MS);
          expect(a.bufferedBytes!()).toBeGreaterThanOrEqual(before + 4 * size); // nothing drains while paused
          expect(got.length).toBe(0);
          b.resume!();
          await waitFor(() => got.length === sent, `all ${sent} frames after resume`, 30_000);
          await waitFor(() => a.bufferedBytes!() === 0, "bufferedBytes to return to 0");
          expect(got.every((f, i) => f.length === size && equalPrefix(f, frameOf(size, i), 64))).toBe(true);
        }),
        60_000,
      );

      withPause(
        "while paused no frame handler is called; after resume every frame arrives, in order, none lost",
        withPair(async ({ a, b }) => {
          const got = collect(b);
          b.pause!();
          const sent = Array.from({ length: 200 }, (_, i) => frameOf(i % 50, i));
          for (const f of sent) a.send(f);
          await quiet();
          expect(got.length).toBe(0);
          b.resume!();
          await waitFor(() => got.length >= sent.length, "frames after resume");
          await quiet();
          expectFrames(got, sent);
        }),
      );

      withPause(
        "pause() inside a frame handler takes effect at once, even for frames that arrived together",
        withPair(async ({ a, b }) => {
          const got: Uint8Array[] = [];
          b.onFrame((f) => {
            got.push(f);
            if (got.length === 10) b.pause!();
          });
          const sent = Array.from({ length: 300 }, (_, i) => frameOf(8, i));
          for (const f of sent) a.send(f); // one burst: on a socket, many frames per read
          await waitFor(() => got.length >= 10, "the first ten frames");
          await quiet();
          expect(got.length).toBe(10);
          b.resume!();
          await waitFor(() => got.length >= sent.length, "the rest after resume");
          await quiet();
          expectFrames(got, sent);
        }),
      );

      withPause(
        "frames held before onFrame wait for resume too",
        withPair(async ({ a, b }) => {
          const sent = [frameOf(5, 1), frameOf(6, 2), frameOf(7, 3)];
          for (const f of sent) a.send(f);
          await quiet(); // they are at b, held: nobody listens yet
          b.pause!();
          const got = collect(b);
          await quiet();
          expect(got.length).toBe(0);
          b.resume!();
          await waitFor(() => got.length >= sent.length, "held frames after resume");
          expectFrames(got, sent);
        }),
      );

      withPause(
        "only reading stops: a paused side still sends and its peer still receives",
        withPair(async ({ a, b }) => {
          const atA = collect(a);
          b.pause!();
          b.send(frameOf(9, 1));
          b.send(frameOf(9, 2));
          await waitFor(() => atA.length === 2, "frames from the paused side");
          expectFrames(atA, [frameOf(9, 1), frameOf(9, 2)]);
          b.resume!();
        }),
      );

      withPause(
        "pauses are not counted; resume when not paused does nothing; both are harmless on a closed link",
        withPair(async ({ a, b }) => {
          const got = collect(b);
          b.resume!(); // not paused: nothing changes
          a.send(frameOf(3, 1));
          await waitFor(() => got.length === 1, "a frame");
          b.pause!();
          b.pause!();
          a.send(frameOf(3, 2));
          await quiet();
          expect(got.length).toBe(1);
          b.resume!(); // one resume undoes both pauses
          await waitFor(() => got.length === 2, "the frame after one resume");
          expectFrames(got, [frameOf(3, 1), frameOf(3, 2)]);
          const closedB = closeOf(b);
          a.close("done");
          await closedB;
          for (const l of [a, b]) {
            expect(() => l.pause!()).not.toThrow();
            expect(() => l.resume!()).not.toThrow();
          }
        }),
      );
    });
  });
}

// ---- helpers ----

/** A frame of `n` bytes whose content depends on `seed` and `n` (its first 4 bytes are the seed, if they fit). */
export function frameOf(n: number, seed: number): Uint8Array {
  const f = new Uint8Array(n);
  const head = new Uint8Array(8);
  new DataView(head.buffer).setUint32(0, seed);
  new DataView(head.buffer).setUint32(4, Math.imul(seed, 2654435761) >>> 0);
  f.set(head.subarray(0, Math.min(8, n)));
  let x = (Math.imul(seed, 2654435761) + n) >>> 0 || 1; // xorshift32: fast, and the same frame every time
  for (let i = 8; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    f[i] = x & 0xff;
  }
  return f;
}

function collect(link: PeerLink): Uint8Array[] {
  const got: Uint8Array[] = [];
  link.onFrame((f) => got.push(f));
  return got;
}

/** Resolves with the close reason; rejects if the link has not closed within `timeoutMs`. */
function closeOf(link: PeerLink, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`link did not close within ${timeoutMs} ms`)), timeoutMs);
    link.onClose((r) => {
      clearTimeout(timer);
      resolve(r);
    });
  });
}

function expectCard(actual: ContactCard, expected: ContactCard): void {
  expect(actual.name).toBe(expected.name);
  expect(actual.home).toBe(expected.home);
  expect(Buffer.from(actual.signPublicKey).toString("hex")).toBe(Buffer.from(expected.signPublicKey).toString("hex"));
  expect(Buffer.from(actual.sealPublicKey).toString("hex")).toBe(Buffer.from(expected.sealPublicKey).toString("hex"));
}

/** Same number of frames, each of the same length and bytes, in the same order. */
function expectFrames(got: Uint8Array[], sent: Uint8Array[]): void {
  expect(got.length).toBe(sent.length);
  for (let i = 0; i < sent.length; i++) {
    const g = got[i]!;
    const s = sent[i]!;
    expect(g).toBeInstanceOf(Uint8Array);
    if (g.length !== s.length || !Buffer.from(g.buffer, g.byteOffset, g.byteLength).equals(s))
      throw new Error(`frame ${i}: got ${g.length} bytes ${hexHead(g)}, sent ${s.length} bytes ${hexHead(s)}`);
  }
}

function equalPrefix(a: Uint8Array, b: Uint8Array, n: number): boolean {
  return Buffer.from(a.subarray(0, n)).equals(Buffer.from(b.subarray(0, n)));
}

function hexHead(f: Uint8Array): string {
  return Buffer.from(f.subarray(0, 12)).toString("hex") + (f.length > 12 ? "…" : "");
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function quiet(): Promise<void> {
  return sleep(QUIET_MS);
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}
