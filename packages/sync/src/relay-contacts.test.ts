// The carriers' rhythm a relay point keeps across a restart: what it saved comes back, and a damaged
// or hand-edited file or entry is left out with the reason, never trusted into the routing table.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadContacts, saveContacts } from "./relay-contacts.js";

const dir = () => mkdtempSync(join(tmpdir(), "pigeon-contacts-"));
const bus = "ab".repeat(32);
const radio = "cd".repeat(32);
const now = Date.UTC(2026, 10, 27, 12);

describe("a relay point's learnt carriers", () => {
  it("come back as saved", () => {
    const path = join(dir(), "relay-contacts.json");
    expect(loadContacts(path, now)).toEqual({ carriers: [], problems: [] });
    const carriers = [{ id: bus, label: "the tuesday bus", starts: [now - 8 * 3600_000, now - 4 * 3600_000, now] }];
    saveContacts(path, carriers);
    expect(loadContacts(path, now)).toEqual({ carriers, problems: [] });
  });

  it("leave out what is damaged, and say why", () => {
    const path = join(dir(), "relay-contacts.json");
    writeFileSync(path, "{ not json");
    expect(loadContacts(path, now).carriers).toEqual([]);
    expect(loadContacts(path, now).problems[0]).toContain("is not JSON");
    writeFileSync(path, JSON.stringify({ version: 9, carriers: [] }));
    expect(loadContacts(path, now).problems[0]).toContain("unknown format or version");
    const good = { id: radio, label: "siaya@siaya-primary", starts: [now - 1000, now] };
    writeFileSync(path, JSON.stringify({ version: 1, carriers: [
      { id: "zz", label: "x", starts: [now] },
      { id: bus, label: "the bus", starts: [now, now - 1] },
      { id: bus, label: "the bus", starts: [now + 10 * 24 * 3600_000] },
      { id: bus, label: "a\nforged line", starts: [now] },
      { id: bus, label: "the bus", starts: Array.from({ length: 17 }, (_, i) => now - 17 + i) },
      good,
      { ...good },
    ] }));
    const { carriers, problems } = loadContacts(path, now);
    expect(carriers).toEqual([good]);
    expect(problems.map((p) => p.replace(/^.*\(/, ""))).toEqual([
      "not a carrier's key)", "contact times not rising)", "contacts in the future)", "a bad name)", "no contacts, or too many)", "listed twice)",
    ]);
    expect(readFileSync(path, "utf8")).toContain("forged line"); // left untouched: only the relay point's next save rewrites it
  });
});
