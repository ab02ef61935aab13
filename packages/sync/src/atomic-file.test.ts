// writeFileAtomic must make the rename durable: after renameSync it opens the file's directory and
// fsyncs it. The file system calls are recorded (the real ones still run, on a real temporary
// directory), so the order is checked, not assumed: a version without the directory fsync fails here.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";

const calls: { fn: string; args: unknown[]; result?: unknown }[] = [];

vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  const record = <F extends (...a: never[]) => unknown>(fn: string, f: F): F =>
    ((...args: Parameters<F>) => {
      const result = f(...args);
      calls.push({ fn, args, result });
      return result;
    }) as F;
  return {
    ...real,
    default: real,
    openSync: record("openSync", real.openSync),
    fsyncSync: record("fsyncSync", real.fsyncSync),
    closeSync: record("closeSync", real.closeSync),
    renameSync: record("renameSync", real.renameSync),
    writeFileSync: record("writeFileSync", real.writeFileSync),
  };
});

const { writeFileAtomic } = await import("./atomic-file.js");

const dir = mkdtempSync(join(tmpdir(), "pigeon-atomic-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("writeFileAtomic", () => {
  it("writes, fsyncs the file, renames it into place, then fsyncs the directory", () => {
    const path = join(dir, "identity.json");
    calls.length = 0;
    writeFileAtomic(path, '{"v":1}\n');
    expect(readFileSync(path, "utf8")).toBe('{"v":1}\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["identity.json"]); // no temporary file left

    const rename = calls.findIndex((c) => c.fn === "renameSync" && c.args[1] === path);
    expect(rename).toBeGreaterThan(-1);
    const tmp = calls[rename]!.args[0] as string;
    // the temporary file's data was fsynced before the rename
    const tmpOpen = calls.findIndex((c) => c.fn === "openSync" && c.args[0] === tmp);
    expect(tmpOpen).toBeGreaterThan(-1);
    expect(tmpOpen).toBeLessThan(rename);
    expect(calls.slice(tmpOpen, rename).some((c) => c.fn === "fsyncSync" && c.args[0] === calls[tmpOpen]!.result)).toBe(true);
    // and the directory was opened and fsynced after the rename, and its descriptor closed
    const after = calls.slice(rename + 1);
    const dirOpen = after.find((c) => c.fn === "openSync" && c.args[0] === dir);
    expect(dirOpen, "the directory is opened after the rename").toBeDefined();
    expect(after.some((c) => c.fn === "fsyncSync" && c.args[0] === dirOpen!.result)).toBe(true);
    expect(after.some((c) => c.fn === "closeSync" && c.args[0] === dirOpen!.result)).toBe(true);
  });

  it("replaces an existing file whole", () => {
    const path = join(dir, "node.json");
    writeFileAtomic(path, "old\n");
    writeFileAtomic(path, "new\n");
    expect(readFileSync(path, "utf8")).toBe("new\n");
  });
});
