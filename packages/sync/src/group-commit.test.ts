// Group commit (issue 20): sends made at the same time share one SQLite commit, and each is answered
// only once its message is committed (seen from a second connection, as after kill -9 or power loss).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, generateIdentity } from "@pigeon/model";
import { fileStorage, Mailbox, memoryLinkPair, SyncEngine } from "./index.js";
import { until } from "./until.test-helper.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

function node(name: string) {
  const dir = mkdtempSync(join(tmpdir(), `pigeon-group-${name}-`));
  const m = new Mailbox({ identity: generateIdentity(name), storage: fileStorage(dir) });
  const s = new SyncEngine(m, {});
  cleanup.push(async () => {
    s.close();
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { m, s, dir };
}

describe("group commit", () => {
  it("answers 40 sends made at once with fewer commits, each only after its message is on disk", async () => {
    const a = node("amara");
    const b = node("baraka");
    const [la, lb] = memoryLinkPair(contactCard(a.m.identity), contactCard(b.m.identity));
    a.s.attach(la);
    b.s.attach(lb);
    await until(() => a.m.contacts().length === 1 && b.m.contacts().length === 1, "amara and baraka to meet", 5000);
    await b.m.addBuddy("amara@local");
    await a.m.send("baraka@local", "first"); // the conversation's key, then one message

    // another reader of the same file sees only what is committed, as a restart after kill -9 would
    const reader = new Database(join(a.dir, "pigeon.db"), { readonly: true });
    cleanup.push(async () => void reader.close());
    const onDisk = reader.prepare(`SELECT count(*) FROM envelopes WHERE carried = 0 AND author = ? AND kind = 1`).pluck();
    const committed = () => onDisk.get(a.m.identity.person) as number;
    const before = committed();
    const commitsBefore = a.m.status().commits.transactions;

    const seen: number[] = [];
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        a.m.send("baraka@local", `message ${i}`).then(() => {
          seen.push(committed() - before);
        }),
      ),
    );
    // every answer came after its own message (and all answered before it) was committed
    seen.forEach((n, i) => expect(n).toBeGreaterThanOrEqual(i + 1));
    expect(committed() - before).toBe(40);
    const commits = a.m.status().commits.transactions - commitsBefore;
    expect(commits).toBeGreaterThan(0);
    expect(commits).toBeLessThan(20);
    // and they all arrive, in order
    const inbox = await until(async () => {
      const i = await b.m.inbox();
      return i.length === 41 ? i : undefined;
    }, "baraka to have them all", 20_000);
    expect(inbox.map((m) => m.body).sort()).toEqual(["first", ...Array.from({ length: 40 }, (_, i) => `message ${i}`)].sort());
  });
});
