// The sealed store's integrity check at start (issue 20): a full quick_check reads every page, so a
// start after a clean close skips it and runs it in the background; damage it finds is reported and
// the next start refuses. A crash, a write by anything else, or a week without a full check means a
// full check at start.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { closeDatabase, DamagedStoreError, FULL_CHECK_EVERY_MS, openDatabase, storeCheck } from "./database.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A store with enough rows to span many pages. */
function makeStore(): string {
  const dir = mkdtempSync(join(tmpdir(), "pigeon-check-"));
  dirs.push(dir);
  const path = join(dir, "pigeon.db");
  const db = openDatabase(path);
  db.exec("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)");
  const put = db.prepare("INSERT INTO filler (body) VALUES (?)");
  db.transaction(() => {
    for (let i = 0; i < 400; i++) put.run(Buffer.alloc(500, i & 0xff));
  })();
  expect(storeCheck(db).atOpen).toBe("full");
  closeDatabase(db);
  return path;
}

/** Damage as a failing flash chip does: bytes in the middle of the file change, its size and times do not. */
function rot(path: string): void {
  const { size } = statSync(path);
  const fd = openSync(path, "r+");
  // a page of the filler table's tree, well past the schema page
  writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, Math.floor(size / 4096 / 2) * 4096);
  closeSync(fd);
  // the mark names the file as it is now: what the file system would show after a flip it never saw
  const mark = readFileSync(`${path}-clean`, "utf8").split("\n");
  const st = statSync(path, { bigint: true });
  mark[1] = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  writeFileSync(`${path}-clean`, mark.join("\n"));
}

describe("the store's integrity check at start", () => {
  it("skips the full check after a clean close, runs it in the background, and keeps the mark", async () => {
    const path = makeStore();
    expect(existsSync(`${path}-clean`)).toBe(true);
    const before = Date.now();
    const db = openDatabase(path, { checkLaterMs: 0 });
    expect(existsSync(`${path}-clean`)).toBe(false); // a crash from here on means a full check next time
    expect(storeCheck(db).atOpen).toBe("skipped");
    await expect(storeCheck(db).later).resolves.toBe("ok");
    expect(storeCheck(db).checkedAt).toBeGreaterThanOrEqual(before);
    expect(db.prepare("SELECT count(*) FROM filler").pluck().get()).toBe(400);
    closeDatabase(db);
    const again = openDatabase(path, { checkLaterMs: 60_000 });
    expect(storeCheck(again).atOpen).toBe("skipped");
    closeDatabase(again);
    await expect(storeCheck(again).later).resolves.toBe("not run");
  });

  it("checks in full after a crash (no clean close)", () => {
    const path = makeStore();
    const db = openDatabase(path, { checkLaterMs: 60_000 });
    db.prepare("INSERT INTO filler (body) VALUES (?)").run(Buffer.from("last words"));
    db.close(); // not closeDatabase: as if the process died here
    const next = openDatabase(path);
    expect(storeCheck(next).atOpen).toBe("full");
    closeDatabase(next);
  });

  it("checks in full when anything else wrote to the file after the clean close", () => {
    const path = makeStore();
    const other = new Database(path);
    other.prepare("DELETE FROM filler WHERE id = 1").run();
    other.close();
    const db = openDatabase(path);
    expect(storeCheck(db).atOpen).toBe("full");
    closeDatabase(db);
  });

  it("checks in full when the last full check is a week old, even after clean closes", () => {
    const path = makeStore();
    const mark = readFileSync(`${path}-clean`, "utf8").split("\n");
    mark[2] = String(Date.now() - FULL_CHECK_EVERY_MS - 1);
    writeFileSync(`${path}-clean`, mark.join("\n"));
    const db = openDatabase(path);
    expect(storeCheck(db).atOpen).toBe("full");
    closeDatabase(db);
  });

  it("a store damaged under a clean mark: the background check says so, and the next start refuses", async () => {
    const path = makeStore();
    rot(path);
    const told: Error[] = [];
    const db = openDatabase(path, { checkLaterMs: 0, onDamaged: (e) => told.push(e) });
    expect(storeCheck(db).atOpen).toBe("skipped");
    const found = await storeCheck(db).later;
    expect(found).not.toBe("ok");
    expect(told).toHaveLength(1);
    expect(told[0]).toBeInstanceOf(DamagedStoreError);
    expect(told[0]!.message).toMatch(/pigeon\.db is damaged \(sqlite quick_check after a start that skipped it: [^]+\)/);
    closeDatabase(db);
    expect(existsSync(`${path}-clean`)).toBe(false);
    expect(() => openDatabase(path)).toThrow(DamagedStoreError);
  });
});

describe("the background check that cannot run", () => {
  it("is not taken for damage (the file went away): no report, and the store closes as it was", async () => {
    const path = makeStore();
    const told: Error[] = [];
    const db = openDatabase(path, { checkLaterMs: 0, onDamaged: (e) => told.push(e) });
    rmSync(path); // the open connection keeps the file; the check's own connection finds none
    await expect(storeCheck(db).later).resolves.toMatch(/^could not run: /);
    expect(told).toEqual([]);
    closeDatabase(db);
  });
});

describe("a mark that is not a file", () => {
  it("counts as no mark: the start checks in full instead of refusing", () => {
    const path = makeStore();
    rmSync(`${path}-clean`);
    mkdirSync(`${path}-clean`);
    const db = openDatabase(path);
    expect(storeCheck(db).atOpen).toBe("full");
    expect(db.prepare("SELECT count(*) FROM filler").pluck().get()).toBe(400);
    closeDatabase(db); // the directory is in the way of the new mark: no mark, and no error
    const again = openDatabase(path);
    expect(storeCheck(again).atOpen).toBe("full");
    closeDatabase(again);
  });
});
