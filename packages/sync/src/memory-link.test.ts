// What the memory link does beyond the PeerLink contract (test/contracts/peer-link.contract.test.ts
// checks the contract itself): exact flow-control accounting, and the abrupt close the trace
// simulator relies on.
import { describe, expect, it } from "vitest";
import { contactCard, generateIdentity } from "@pigeon/model";
import { memoryLinkPair } from "./memory-link.js";

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

function pair() {
  return memoryLinkPair(contactCard(generateIdentity("amara")), contactCard(generateIdentity("baraka")));
}

describe("memoryLinkPair", () => {
  it("bufferedBytes() counts exactly what the paused peer has not read, per direction", async () => {
    const [a, b] = pair();
    const atB: Uint8Array[] = [];
    b.onFrame((f) => atB.push(f));
    b.pause();
    a.send(new Uint8Array(100));
    a.send(new Uint8Array(0));
    a.send(new Uint8Array(23));
    await tick();
    expect(a.bufferedBytes()).toBe(123);
    expect(b.bufferedBytes()).toBe(0);
    expect(atB.length).toBe(0);
    b.send(new Uint8Array(7)); // the other direction is not paused
    expect(b.bufferedBytes()).toBe(7); // not read yet: delivery is asynchronous
    await tick();
    expect(b.bufferedBytes()).toBe(0);
    b.resume();
    await tick();
    expect(a.bufferedBytes()).toBe(0);
    expect(atB.map((f) => f.length)).toEqual([100, 0, 23]);
    expect(a.bytesSent).toBe(123);
    expect(a.framesSent).toBe(3);
    expect(b.bytesSent).toBe(7);
  });

  it("frames read before anyone listens are held by the receiver, no longer buffered at the sender", async () => {
    const [a, b] = pair();
    a.send(new Uint8Array(50));
    expect(a.bufferedBytes()).toBe(50);
    await tick();
    expect(a.bufferedBytes()).toBe(0);
    const got: number[] = [];
    b.onFrame((f) => got.push(f.length));
    await tick();
    expect(got).toEqual([50]);
  });

  it("close is abrupt: frames still on the wire are dropped, both sides close at once", async () => {
    const [a, b] = pair();
    const got: Uint8Array[] = [];
    b.onFrame((f) => got.push(f));
    const reasons: string[] = [];
    b.onClose((r) => reasons.push(r));
    a.send(new Uint8Array(10));
    a.send(new Uint8Array(10));
    a.close("walked away");
    expect(b.closed).toBe(true);
    expect(reasons).toEqual(["walked away"]);
    await tick();
    expect(got.length).toBe(0);
    expect(a.bufferedBytes()).toBe(0);
  });
});
