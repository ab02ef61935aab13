// DurableFileStorage's contract is checked in test/contracts/storage-adapter.contract.test.ts; this
// pins its file names, so stores written by earlier versions stay readable.
import { describe, expect, it } from "vitest";
import { DurableFileStorage } from "./durable-storage.js";

describe("DurableFileStorage file names", () => {
  const s = new DurableFileStorage("/data/docs");
  it("keys whose code units are all below 0x100 keep the names they always had", () => {
    expect(s.pathOf(["3mDXqPXBdnvGjkrv4pEW8aW9bUeU", "incremental", "a1b2c3"])).toBe(
      "/data/docs/3mDXqPXBdnvGjkrv4pEW8aW9bUeU/incremental/a1b2c3.chunk",
    );
    expect(s.pathOf(["storage-adapter-id"])).toBe("/data/docs/storage-adapter-id.chunk");
    expect(s.pathOf(["a.b", "%", "x y", "é/ÿ"])).toBe("/data/docs/a%2eb/%25/x%20y/%e9%2f%ff.chunk");
  });

  it("code units from 0x100 up are escaped as %uhhhh, distinct from any %hh name", () => {
    expect(s.pathOf(["Ā"])).toBe("/data/docs/%u0100.chunk");
    expect(s.pathOf(["\u00100"])).toBe("/data/docs/%100.chunk");
    expect(s.pathOf(["🐦"])).toBe("/data/docs/%ud83d%udc26.chunk");
  });
});
