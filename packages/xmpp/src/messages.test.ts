// The archive a client opens for one chat holds that conversation only, loaded alone.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { contactCard, generateIdentity } from "@pigeon/model";
import { fileStorage, Mailbox } from "@pigeon/sync";
import { archivePage } from "./messages.js";

const dir = mkdtempSync(join(tmpdir(), "pigeon-xmpp-messages-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("archive pages", () => {
  it("a query with one contact has only that conversation; an unknown address has an empty archive", async () => {
    const m = new Mailbox({ identity: generateIdentity("zawadi"), storage: fileStorage(dir) });
    try {
      m.rememberContact(contactCard(generateIdentity("baraka")), "card");
      m.rememberContact(contactCard(generateIdentity("chiku")), "card");
      await m.send("baraka", "to baraka 1");
      await m.send("chiku", "to chiku");
      await m.send("baraka", "to baraka 2");
      const own = "zawadi@local";
      const withBaraka = await archivePage(m, { with: "baraka@local", max: 50 }, own);
      expect(withBaraka.items.map((v) => v.body)).toEqual(["to baraka 1", "to baraka 2"]);
      expect(withBaraka.count).toBeUndefined(); // no time filter: paged through the index, not counted
      const all = await archivePage(m, { max: 50 }, own);
      expect(all.items.map((v) => v.body)).toEqual(["to baraka 1", "to chiku", "to baraka 2"]);
      const nobody = await archivePage(m, { with: "nobody@local", max: 50 }, own);
      expect(nobody.items).toEqual([]);
      const last = await archivePage(m, { with: "baraka@local", max: 1, before: "" }, own);
      expect(last.items.map((v) => v.body)).toEqual(["to baraka 2"]);
    } finally {
      await m.close();
    }
  });

  it("a page through the index is the page the whole archive gives, for every way of paging", async () => {
    const m = new Mailbox({ identity: generateIdentity("zawadi"), storage: fileStorage(join(dir, "paging")) });
    try {
      m.rememberContact(contactCard(generateIdentity("baraka")), "card");
      m.rememberContact(contactCard(generateIdentity("chiku")), "card");
      for (let i = 0; i < 23; i++) await m.send(i % 3 ? "baraka" : "chiku", `message ${i}`);
      const own = "zawadi@local";
      const ids = (await archivePage(m, { max: 250, start: 0 }, own)).items.map((v) => v.id);
      const checked: string[] = [];
      for (const w of [undefined, "baraka@local", "chiku@local", own])
        for (const max of [0, 1, 4, 7, 50])
          for (const after of [undefined, ids[0], ids[5], ids[22]])
            for (const before of [undefined, "", ids[1], ids[12], ids[22]]) {
              const q = { with: w, max, after, before };
              // start: 0 keeps every message but takes the path that loads the whole archive
              let whole, paged;
              try {
                whole = await archivePage(m, { ...q, start: 0 }, own);
              } catch (e) {
                // the whole archive cannot find `before` once cut at `after` (it comes earlier), or an id
                // outside the conversation asked for: through the index the first is an empty page
                const p = await archivePage(m, q, own).catch((e2: Error) => e2);
                if (p instanceof Error) expect(p.message).toBe((e as Error).message);
                else expect([p.items, ids.indexOf(before!) <= ids.indexOf(after!)], JSON.stringify(q)).toEqual([[], true]);
                continue;
              }
              paged = await archivePage(m, q, own);
              expect([paged.items.map((v) => v.id), paged.complete, paged.first, paged.last], JSON.stringify(q)).toEqual([
                whole.items.map((v) => v.id), whole.complete, whole.first, whole.last,
              ]);
              checked.push(JSON.stringify(q));
            }
      expect(checked.length).toBeGreaterThan(200);
    } finally {
      await m.close();
    }
  });
});
