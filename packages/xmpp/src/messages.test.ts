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
      expect(withBaraka.count).toBe(2);
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
});
