// The folders a child opens (inbox, outbox, waiting, requests) are counted and paged from the
// message index: the first screen loads only the segments of the messages it shows, a whole folder
// is read a segment at a time, and what the index keeps (corrections, read) survives a restart and
// is rebuilt for a store indexed before it kept them.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { contactCard, generateIdentity, type Identity } from "@pigeon/model";
import { fileStorage, Mailbox } from "../index.js";
import { openDatabase } from "../database.js";
import { EnvelopeStore } from "../envelope-store.js";
import { LocalState } from "../local-state.js";
import { SEGMENTS_LOADED } from "./core.js";
import { SEGMENTS_PER_STEP } from "./views.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(name: string): string {
  const d = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), `pigeon-folders-${name}-`));
  dirs.push(d);
  return d;
}

const zawadi = generateIdentity("zawadi");

/** A classmate's mailbox that writes to zawadi; what it writes comes back as the envelopes for her. */
function classmate(who: Identity) {
  const m = new Mailbox({ identity: who, storage: fileStorage(tempDir(who.name)) });
  m.rememberContact(contactCard(zawadi), "card");
  const out: Uint8Array[] = [];
  m.on("envelope", ({ id }) => {
    if (m.envelopes.get(id)?.recipients.length) out.push(m.envelopes.bytesOf(id)!);
  });
  return { m, take: () => out.splice(0) };
}

describe("folders from the message index", () => {
  it("shows each folder's newest page and its counts loading only what it shows, and whole folders a segment at a time", async () => {
    const dir = tempDir("zawadi");
    const pupils = Array.from({ length: SEGMENTS_LOADED + 14 }, (_, i) => generateIdentity(`pupil${i}`));
    const stranger = generateIdentity("stranger");
    let z = new Mailbox({ identity: zawadi, storage: fileStorage(dir) });
    for (const p of pupils) await z.addContact(contactCard(p));
    // each pupil writes three messages, one after another
    const last = pupils.at(-1)!;
    let lastSender!: ReturnType<typeof classmate>;
    for (const p of pupils) {
      const c = classmate(p);
      for (let i = 0; i < 3; i++) await c.m.send("zawadi", `${p.name} ${i}`);
      for (const e of c.take()) await z.receive(e, 1);
      if (p === last) lastSender = c;
      else await c.m.close();
    }
    // the last pupil corrects a message; a stranger writes twice (a request, not the inbox)
    const wrong = await lastSender.m.send("zawadi", "see you at 9");
    await lastSender.m.correct(wrong.id, "see you at 10");
    const s = classmate(stranger);
    await s.m.send("zawadi", "hello, who are you?");
    await s.m.send("zawadi", "please answer");
    for (const e of [...lastSender.take(), ...s.take()]) await z.receive(e, 1);
    await lastSender.m.close();
    await s.m.close();
    // zawadi reads two messages, and writes one back
    const firstTwo = (await z.inbox()).slice(0, 2);
    expect(await z.markRead(firstTwo.map((v) => v.id))).toBe(2);
    await z.send(pupils[0]!.name, "thanks");
    await z.close();

    // a new start: the first screen
    z = new Mailbox({ identity: zawadi, storage: fileStorage(dir) });
    expect(z.documents.loadedEvictable).toBe(0);
    const f = await z.folders(4);
    const inboxTotal = pupils.length * 3 + 1; // the correction is shown as the message it corrects
    expect(f.inbox.total).toBe(inboxTotal);
    expect(f.inbox.unread).toBe(inboxTotal - 2);
    expect(f.inbox.newest.map((v) => v.body)).toEqual(["see you at 10", `${last.name} 2`, `${last.name} 1`, `${last.name} 0`]);
    expect(f.inbox.newest[0]!.correctedAt).toBeDefined();
    expect(f.outbox).toMatchObject({ total: 1, newest: [{ body: "thanks" }] });
    expect(f.waiting).toMatchObject({ total: 1, newest: [{ body: "thanks", state: "waiting" }] });
    expect(f.requests.map((r) => ({ total: r.total, bodies: r.messages.map((v) => v.body) }))).toEqual([{ total: 2, bodies: ["hello, who are you?", "please answer"] }]);
    // only the segments of what is shown: the last pupil's messages and correction, zawadi's
    // message, the stranger's two (not one segment per pupil)
    expect(z.documents.loadedEvictable).toBeLessThanOrEqual(5);
    // a request's messages are capped at the page, with the count
    expect((await z.requests(1))[0]).toMatchObject({ total: 2, messages: [{ body: "please answer" }] });

    // a whole folder: every message, read a few segments at a time, unloaded as it goes
    let most = 0;
    const watch = setInterval(() => (most = Math.max(most, z.documents.loadedEvictable)), 1);
    const inbox = await z.inbox();
    clearInterval(watch);
    expect(most).toBeGreaterThan(0);
    // those kept loaded, one step's segments, and the corrections segment a message of the step needed
    expect(most).toBeLessThanOrEqual(SEGMENTS_LOADED + SEGMENTS_PER_STEP + 1);
    expect(inbox).toHaveLength(inboxTotal);
    expect(inbox.filter((v) => v.readAt === undefined)).toHaveLength(inboxTotal - 2);
    expect(inbox.find((v) => v.id === wrong.id)?.body).toBe("see you at 10");
    const unread = await z.inbox({ unread: true });
    expect(unread.map((v) => v.id)).toEqual(inbox.filter((v) => v.readAt === undefined).map((v) => v.id));
    // by the start of an id, as pigeon show takes it; a correction is found as its message
    expect((await z.messagesStartingWith(wrong.id.slice(0, 6))).map((v) => v.body)).toEqual(["see you at 10"]);
    // reading everything is kept in the index: nothing unread, after a restart too
    expect(await z.markRead()).toBe(inboxTotal - 2 + 1); // the correction gets its read receipt too
    expect((await z.folders(1)).inbox.unread).toBe(0);
    await z.close();
    z = new Mailbox({ identity: zawadi, storage: fileStorage(dir) });
    expect((await z.folders(1)).inbox).toMatchObject({ total: inboxTotal, unread: 0 });
    await z.close();

    // a store indexed before the index kept corrections and reading: indexed again from its documents
    const db = new Database(join(dir, "pigeon.db"));
    db.exec(`DROP TABLE folder_counts; DROP TABLE message_index;
      DROP TRIGGER not_waiting_handed; DROP TRIGGER not_waiting_sent_handed; DROP TRIGGER not_waiting_acknowledged; DROP TRIGGER not_waiting_receipt;
      CREATE TABLE message_index (id TEXT PRIMARY KEY, conversation BLOB NOT NULL, segment INTEGER NOT NULL, outgoing INTEGER NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID;`);
    db.close();
    const said: string[] = [];
    const log = { debug() {}, info: (line: string) => said.push(line), warn: (line: string) => said.push(line), error: (line: string) => said.push(line) };
    z = new Mailbox({ identity: zawadi, storage: fileStorage(dir), log });
    await z.recover(); // as a node does when it starts: it says it indexes, once
    expect(said.filter((l) => /^index/.test(l))).toEqual([
      expect.stringMatching(/^indexing the messages of \d+ conversation segment\(s\) again, once/),
      expect.stringMatching(/^indexed the messages of \d+ conversation segment\(s\) in [\d.]+ s$/),
    ]);
    const again = await z.folders(2);
    expect(again.inbox).toMatchObject({ total: inboxTotal, unread: 0 });
    expect(again.inbox.newest.map((v) => v.body)).toEqual(["see you at 10", `${last.name} 2`]);
    expect(again.requests[0]?.total).toBe(2);
    await z.close();
    // the next start finds the index whole: nothing to say
    said.length = 0;
    z = new Mailbox({ identity: zawadi, storage: fileStorage(dir), log });
    await z.recover();
    expect(said.filter((l) => /^index/.test(l))).toEqual([]);
    await z.close();
  }, 120_000);
});

describe("waiting, kept in the index", () => {
  it("ends when the envelope is handed on (either order), acknowledged, or a receipt comes in a conversation of two", () => {
    const db = openDatabase(":memory:");
    const envelopes = new EnvelopeStore(db);
    const state = new LocalState(db);
    const two = new Uint8Array(32).fill(1);
    const channel = new Uint8Array(32).fill(2);
    state.rememberConversation(two, [new Uint8Array(32).fill(7), new Uint8Array(32).fill(8)]);
    state.setMembers(channel, [7, 8, 9].map((b) => new Uint8Array(32).fill(b)));
    const env = (b: number) => new Uint8Array(16).fill(b);
    const peer = new Uint8Array(32).fill(9);
    let seq = 0;
    const index = (id: string, conversation = two, outgoing = true, replaces?: string) =>
      state.indexMessage({ id, conversation, segment: 0, outgoing, seq: ++seq, ...(replaces ? { replaces } : {}) });
    const waiting = () => state.waitingMessages().map((m) => m.id).sort();
    for (const id of ["handed", "handed-first", "acked", "read", "channel-read", "kept"]) index(id, id.startsWith("channel") ? channel : two);
    index("incoming", two, false);
    index("correction", two, true, "kept");
    expect(waiting()).toEqual(["acked", "channel-read", "handed", "handed-first", "kept", "read"]);
    // handed on after it was sent in its envelope
    state.recordSent("handed", env(1));
    envelopes.markHanded(env(1), peer, 1);
    // an envelope handed on before this laptop knew its message was in it (opened from another device)
    envelopes.markHanded(env(2), peer, 1);
    state.recordSent("handed-first", env(2));
    state.recordArrival("d:acked", 1, 1);
    state.recordArrival("r:read/abcd/read", 1, 1);
    // in a channel one member's receipt is not everyone's: its view decides
    state.recordArrival("r:channel-read/abcd/read", 1, 1);
    expect(waiting()).toEqual(["channel-read", "kept"]);
    expect(state.waitingCount()).toBe(2);
    // indexed after it was acknowledged (a store indexed again): not waiting from the start
    state.recordArrival("d:late", 1, 1);
    index("late");
    expect(state.waitingCount()).toBe(2);
  });
});

describe("folder counts, kept in the index", () => {
  it("count what is indexed, read, corrected (the correction first, too) and forgotten", () => {
    const db = openDatabase(":memory:");
    new EnvelopeStore(db);
    const state = new LocalState(db);
    const conv = new Uint8Array(32).fill(1);
    let seq = 0;
    const index = (id: string, outgoing: boolean, replaces?: string) =>
      state.indexMessage({ id, conversation: conv, segment: 0, outgoing, seq: ++seq, ...(replaces ? { replaces } : {}) });
    const counts = () => Object.fromEntries(state.folderCounts().map((c) => [c.outgoing ? "out" : "in", { messages: c.messages, corrections: c.corrections, unread: c.unread }]));
    index("a", false);
    index("b", false);
    index("a-fixed", false, "a");
    index("mine", true);
    // a correction of someone else's message, or of one in the other direction, is no correction
    index("not-a-fix", true, "b");
    expect(counts()).toEqual({ in: { messages: 3, corrections: 1, unread: 2 }, out: { messages: 2, corrections: 0, unread: 0 } });
    state.markIndexedRead("a");
    // a correction that arrives before the message it corrects
    index("c-fixed", false, "c");
    expect(counts().in).toEqual({ messages: 4, corrections: 1, unread: 2 });
    index("c", false);
    expect(counts().in).toEqual({ messages: 5, corrections: 2, unread: 2 });
    expect(state.folderMessages({ conversation: conv, outgoing: false, corrections: false }).map((m) => m.id)).toEqual(["c", "b", "a"]);
    // a forgotten segment's rows go, and their counts
    db.prepare(`DELETE FROM message_index WHERE id IN ('b', 'c-fixed')`).run();
    expect(counts().in).toEqual({ messages: 3, corrections: 1, unread: 1 });
    // a store counted from its index when the counts are first kept
    db.exec(`DROP TABLE folder_counts`);
    const again = new LocalState(db);
    expect(Object.fromEntries(again.folderCounts().map((c) => [c.outgoing ? "out" : "in", c.messages]))).toEqual({ in: 3, out: 2 });
  });
});
