// Forgetting a conversation segment on one node: its text leaves that node's files (read byte for
// byte), the other member keeps the whole conversation, copies offered again are acknowledged and not
// opened, and the conversation goes on in a fresh segment.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EnvelopeKind, equalBytes, fromHex, generateIdentity, toHex } from "@pigeon/model";
import { boot, introduce, meet, type Laptop } from "../devices.test-helper.js";
import { fileStorage } from "../index.js";
import { until } from "../until.test-helper.js";
import type { ForgottenArrival } from "./forgetting.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Every file under `dir` that contains `text` (as UTF-8 bytes). */
export function filesHolding(dir: string, text: string): string[] {
  const needle = Buffer.from(text, "utf8");
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      try {
        if (statSync(p).isDirectory()) walk(p);
        else if (readFileSync(p).includes(needle)) out.push(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e; // a temporary file renamed meanwhile (atomic writes)
      }
    }
  };
  walk(dir);
  return out;
}

const hers0 = (ms: { body: string }[]) => ms.map((m) => m.body);

describe("forgetting a conversation segment on one node", () => {
  it("drops its text from that node's files, keeps it on the other laptop, and goes on in a fresh segment", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-forget-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const teacher = await boot(generateIdentity("wanjiru"), cleanup);
    const gw: Laptop = await boot(generateIdentity("mail"), cleanup, fileStorage(dir));
    await introduce(teacher, [gw]);
    await gw.m.addBuddy("wanjiru@local");
    let apart = meet(teacher, gw);
    const SECRET = "Grandma's porridge recipe 4471";
    const sent = await teacher.node.send("mail@local", SECRET);
    await until(async () => (await gw.m.message(sent.id))?.body === SECRET, "the message at the gateway");
    const answer = await gw.m.reply(sent.id, "Noted 9182");
    await until(async () => (await teacher.m.message(answer.id)) !== undefined, "the answer at the teacher");
    await until(async () => (await gw.m.message(answer.id))?.state === "delivered", "the answer delivered");
    await new Promise((r) => setTimeout(r, 100)); // the queued work (acknowledgements) runs
    // the text is in the gateway's files before (so the check below can fail)
    await until(() => filesHolding(dir, SECRET).length > 0, "the text in the gateway's document files");
    const where = gw.m.forgetting.whereIs(sent.id)!;
    expect(where.segment).toBe(0);
    expect(gw.m.forgetting.whereIs(answer.id)).toEqual(where);
    apart();
    // away from the gateway, the teacher writes again: into segment 0, the highest she knows
    const second = await teacher.node.send("mail@local", "Second note 5530");

    // the gateway starts segment 1 (a change holding nothing) and forgets segment 0 before she has
    // heard of it (as when her note is carried late)
    expect(gw.m.forgetting.knownPast(where.conversation, 0)).toBe(false);
    expect(await gw.m.forgetting.moveOn(where.conversation)).toBe(1);
    const dropped = await gw.m.forgetting.forget(where.conversation, where.segment);
    expect(dropped).toBeGreaterThanOrEqual(2); // the teacher's change and the gateway's answer, at least
    expect(filesHolding(dir, SECRET)).toEqual([]);
    expect(filesHolding(dir, "Noted 9182")).toEqual([]);
    expect(await gw.m.message(sent.id)).toBeUndefined();
    expect((await gw.m.messages({ limit: 100 })).map((m) => m.body)).toEqual([]);
    // the teacher still has all of it
    expect((await teacher.m.message(sent.id))?.body).toBe(SECRET);
    expect((await teacher.m.message(answer.id))?.body).toBe("Noted 9182");

    // a carrier hands the teacher's envelope over again: refused as delivered (its acknowledgement
    // was written when it first came), not opened, not kept
    const copy = teacher.m.envelopes.bytesOf(teacher.m.state.sentEnvelope(sent.id)!)!;
    const replay = await gw.m.receive(copy, 2, "a carrier");
    expect(replay).toMatchObject({ stored: false, refused: expect.stringMatching(/already delivered/) });
    await new Promise((r) => setTimeout(r, 100)); // the queued work (acknowledgements) runs
    expect(gw.m.envelopes.has(teacher.m.state.sentEnvelope(sent.id)!)).toBe(false);
    expect(filesHolding(dir, SECRET)).toEqual([]);
    expect(await gw.m.message(sent.id)).toBeUndefined();

    // they meet: her note in the forgotten segment 0 is acknowledged and announced, never read
    const late: ForgottenArrival[] = [];
    gw.m.on("forgotten-arrival", (a) => late.push(a));
    apart = meet(teacher, gw);
    await until(() => late.length > 0, "the late change announced");
    expect(late[0]).toMatchObject({ conversation: where.conversation, segment: 0 });
    expect(late[0]!.from).toMatch(/^wanjiru@local/);
    await until(() => teacher.m.envelopes.ackers(teacher.m.state.sentEnvelope(second.id)!).length > 0, "the late change acknowledged");
    expect(filesHolding(dir, "Second note 5530")).toEqual([]);
    // she reads the gateway's answer now: her "read" receipt is a change of segment 0 too, acknowledged
    // but not announced (it holds no message: nothing to write again)
    expect(await teacher.m.markRead([answer.id])).toBe(1);
    const conv0 = fromHex(where.conversation);
    await until(() => teacher.m.envelopes.conversationEnvelopes(conv0).every((id) => {
      const meta = teacher.m.envelopes.meta(id);
      return !meta || meta.kind !== EnvelopeKind.Change || !equalBytes(meta.author, teacher.m.me) || teacher.m.envelopes.ackers(id).length > 0;
    }), "her receipt acknowledged by the gateway");
    expect(late).toHaveLength(1);

    // she applied the empty change: her laptop knows segment 1 (and says so by acknowledging it)
    await until(() => gw.m.forgetting.knownPast(where.conversation, 0), "segment 1 known to the teacher");
    expect(hers0(await teacher.m.messages({ limit: 100 }))).toEqual([SECRET, "Noted 9182", "Second note 5530"]); // it showed nothing
    const notice = await gw.m.send("wanjiru@local", "Please write it again");
    expect(gw.m.forgetting.whereIs(notice.id)?.segment).toBe(1);
    await until(async () => (await teacher.m.message(notice.id)) !== undefined, "the notice at the teacher");
    const third = await teacher.node.send("mail@local", "Third note 6641");
    await until(async () => (await gw.m.message(third.id))?.body === "Third note 6641", "her next message read at the gateway");
    expect(gw.m.forgetting.whereIs(third.id)?.segment).toBe(1);
    // the teacher's laptop still shows the whole conversation, in order
    const hers = (await teacher.m.messages({ limit: 100 })).map((m) => m.body);
    expect(hers).toEqual([SECRET, "Noted 9182", "Second note 5530", "Please write it again", "Third note 6641"]);
    expect(toHex(gw.m.me)).toBe(toHex(gw.id.person));
  });
});
