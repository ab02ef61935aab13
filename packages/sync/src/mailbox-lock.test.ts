import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tryLockMailbox } from "./mailbox-lock.js";

const dir = mkdtempSync(join(tmpdir(), "pigeon-lock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the mailbox lock", () => {
  it("has one holder at a time, and is free again once released", () => {
    const first = tryLockMailbox(dir);
    expect(first).toBeDefined();
    expect(tryLockMailbox(dir)).toBeUndefined();
    first!.release();
    const second = tryLockMailbox(dir);
    expect(second).toBeDefined();
    second!.release();
  });

  it("is dropped by the system when its holder is killed with SIGKILL (no stale lock)", async () => {
    // another process takes the lock and holds it until killed
    const sqlite = createRequire(import.meta.url).resolve("better-sqlite3");
    const holder = spawn(process.execPath, ["-e", `
      const db = new (require(${JSON.stringify(sqlite)}))(${JSON.stringify(join(dir, "mailbox.lock"))}, { timeout: 0 });
      db.exec("BEGIN EXCLUSIVE"); console.log("held"); setInterval(() => {}, 1000);`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((r) => holder.stdout.once("data", () => r()));
    expect(tryLockMailbox(dir)).toBeUndefined();
    const exited = new Promise((r) => holder.once("exit", r));
    holder.kill("SIGKILL");
    await exited;
    const lock = tryLockMailbox(dir);
    expect(lock).toBeDefined();
    lock!.release();
  });
});
