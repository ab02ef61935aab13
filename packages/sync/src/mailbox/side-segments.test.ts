// Side segments of a conversation. Corrections (XEP-0308 in the XMPP front door): a message that replaces one of its author's own
// earlier messages. The reader sees the new text in the old one's place; a correction naming someone
// else's message stays a plain message; a node that does not know corrections still shows every
// message (the corrections live in a side document that only it refuses).
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ATTACHMENTS_SEGMENT, checkChange, contactCard, CORRECTIONS_SEGMENT, MAX_FILE_BYTES, MAX_PICTURE_BYTES, decodeEnvelope, generateIdentity, openChange, type Envelope } from "@pigeon/model";
import { randomBytes } from "node:crypto";
import { fileStorage, Mailbox, type MessageView } from "../index.js";
import { carrierLimits } from "./index.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function mailbox(name: string, identity = generateIdentity(name)) {
  const d = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), `pigeon-correct-${name}-`));
  dirs.push(d);
  const m = new Mailbox({ identity, storage: fileStorage(d) });
  // what travels to others: the sealed bytes (envelope version 3), beside the signed envelope inside
  const out: (Envelope & { sealed: Uint8Array })[] = [];
  m.on("envelope", ({ id }) => {
    const e = m.envelopes.get(id);
    if (e?.recipients.length) out.push(Object.assign(e, { sealed: m.envelopes.bytesOf(id)! }));
  });
  return { m, identity, out };
}

async function pair() {
  const amara = mailbox("amara");
  const zawadi = mailbox("zawadi");
  await amara.m.addContact(contactCard(zawadi.identity));
  await zawadi.m.addContact(contactCard(amara.identity));
  return { amara, zawadi };
}

async function carry(from: { out: (Envelope & { sealed: Uint8Array })[] }, to: { m: Mailbox }, keep: (e: Envelope) => boolean = () => true) {
  for (const e of from.out.splice(0)) if (keep(e)) await to.m.receive(e.sealed, 1);
}

describe("corrections", () => {
  it("the reader sees the corrected text in place of the typo, and the correction names it", async () => {
    const { amara, zawadi } = await pair();
    const typo = await amara.m.send("zawadi", "see you at 5");
    await amara.m.send("zawadi", "bring the ball");
    const events: MessageView[] = [];
    zawadi.m.on("message", (v: MessageView) => events.push(v));
    const fix = await amara.m.correct(typo.id, "see you at 6");
    expect(fix.replaces).toBe(typo.id);
    await carry(amara, zawadi);
    const inbox = await zawadi.m.inbox();
    expect(inbox.map((v) => v.body)).toEqual(["see you at 6", "bring the ball"]);
    expect(inbox[0]!.id).toBe(typo.id);
    expect(inbox[0]!.correctedAt).toBe(fix.claimedSentAt);
    // the live event for the correction says what it replaces (the XMPP front door shows <replace/>)
    expect(events.find((v) => v.body === "see you at 6")?.replaces).toBe(typo.id);
    expect(zawadi.m.state.rejections()).toEqual([]);
    // the writer's own outbox shows the corrected text too
    expect((await amara.m.outbox()).map((v) => v.body)).toEqual(["see you at 6", "bring the ball"]);
    // a correction of the correction corrects the message
    const again = await amara.m.correct(fix.id, "see you at 7");
    expect(again.replaces).toBe(typo.id);
    await carry(amara, zawadi);
    expect((await zawadi.m.inbox()).map((v) => v.body)).toEqual(["see you at 7", "bring the ball"]);
    await Promise.all([amara.m.close(), zawadi.m.close()]);
  });

  it("only the author corrects: someone else's message cannot be corrected, and a correction naming it is a plain message", async () => {
    const { amara, zawadi } = await pair();
    const mine = await amara.m.send("zawadi", "my drawing is a cat");
    await carry(amara, zawadi);
    await expect(zawadi.m.correct(mine.id, "my drawing is a dog")).rejects.toThrow(/only your own/);
    // a modified laptop writes it anyway: a correction in zawadi's name that names amara's message
    const sending = (zawadi.m as unknown as { sending: { sendTo(to: { signPublicKey: Uint8Array }, bodies: string[], kind: "corrections", extra: { replaces: string }): Promise<MessageView[]> } }).sending;
    await sending.sendTo({ signPublicKey: amara.identity.person }, ["my drawing is a dog"], "corrections", { replaces: mine.id });
    await carry(zawadi, amara);
    const views = await amara.m.messages({});
    expect(views.map((v) => v.body)).toEqual(["my drawing is a cat", "my drawing is a dog"]);
    expect(views.every((v) => v.replaces === undefined)).toBe(true);
    expect((await amara.m.outbox()).map((v) => v.body)).toEqual(["my drawing is a cat"]);
    expect((await amara.m.inbox()).map((v) => v.body)).toEqual(["my drawing is a dog"]);
    await Promise.all([amara.m.close(), zawadi.m.close()]);
  });

  it("a node that refuses corrections still shows every message, with the first text", async () => {
    const { amara, zawadi } = await pair();
    const typo = await amara.m.send("zawadi", "see you at 5");
    await amara.m.correct(typo.id, "see you at 6");
    await amara.m.send("zawadi", "bring the ball");
    // the rule of a node from before corrections: no `replaces` field anywhere
    const key = (amara.m as unknown as { state: { keyMap(c: Uint8Array): Map<string, Uint8Array> } }).state;
    const corrections = amara.out.filter((e) => e.segment >= CORRECTIONS_SEGMENT);
    expect(corrections.length).toBe(1);
    const env = decodeEnvelope(corrections[0]!.bytes);
    const change = openChange(env, [...key.keyMap(env.conversation).values()][0]!)!;
    expect(checkChange(change, env.author, env.author, "messages")).toMatchObject({ ok: false, reason: 'unexpected message field "replaces"' });
    expect(checkChange(change, env.author, env.author, "corrections").ok).toBe(true);
    // such a node takes everything but the corrections: the conversation goes on
    await carry(amara, zawadi, (e) => e.segment < CORRECTIONS_SEGMENT);
    expect((await zawadi.m.inbox()).map((v) => v.body)).toEqual(["see you at 5", "bring the ball"]);
    expect(zawadi.m.state.rejections()).toEqual([]);
    await Promise.all([amara.m.close(), zawadi.m.close()]);
  });
});

describe("files and pictures", () => {
  it("a file travels inside a message (the same bytes arrive); one over the limit is refused, saying it", async () => {
    const { amara, zawadi } = await pair();
    const bytes = new Uint8Array(40_000).map((_, i) => (i * 7) & 255);
    const sent = await amara.m.sendFile("zawadi", "cat.png", "image/png", bytes);
    expect(sent.file).toEqual({ type: "image/png", size: 40_000 });
    await expect(amara.m.sendFile("zawadi", "big.jpg", "image/jpeg", new Uint8Array(MAX_FILE_BYTES + 1))).rejects.toThrow(/largest file is 48128 bytes/);
    // the largest file, incompressible, with the longest name: its envelope is still one carriers take
    const largest = await amara.m.sendFile("zawadi", "x".repeat(200), "image/jpeg", randomBytes(MAX_FILE_BYTES));
    const env = amara.out.filter((e) => e.segment >= ATTACHMENTS_SEGMENT).at(-1)!;
    console.log(`a ${MAX_FILE_BYTES}-byte file seals to an envelope of ${env.sealed.length} bytes`);
    expect(env.sealed.length).toBeLessThanOrEqual(carrierLimits().maxCarriedEnvelopeBytes);
    for (const e of amara.out) expect(e.sealed.length).toBeLessThanOrEqual(carrierLimits().maxCarriedEnvelopeBytes);
    await carry(amara, zawadi);
    const inbox = await zawadi.m.inbox();
    expect(inbox.map((v) => [v.body, v.file])).toEqual([["cat.png", { type: "image/png", size: 40_000 }], ["x".repeat(200), { type: "image/jpeg", size: MAX_FILE_BYTES }]]);
    expect((await zawadi.m.file(largest.id))?.bytes.length).toBe(MAX_FILE_BYTES);
    const got = await zawadi.m.file(inbox[0]!.id);
    expect(got?.name).toBe("cat.png");
    expect(Buffer.from(got!.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(zawadi.m.state.rejections()).toEqual([]);
    await Promise.all([amara.m.close(), zawadi.m.close()]);
  });

  it("a picture set by the user reaches each buddy, is not listed as a message, and the latest one counts", async () => {
    const { amara, zawadi } = await pair();
    await amara.m.send("zawadi", "hi");
    const first = new Uint8Array(3000).fill(1);
    expect(await amara.m.setPicture("image/png", first)).toBe(1);
    await expect(amara.m.setPicture("image/png", new Uint8Array(MAX_PICTURE_BYTES + 1))).rejects.toThrow(/largest is 16384 bytes/);
    await carry(amara, zawadi);
    expect((await zawadi.m.pictureOf("amara"))?.bytes).toEqual(first);
    expect((await zawadi.m.inbox()).map((v) => v.body)).toEqual(["hi"]);
    const second = new Uint8Array(2000).fill(2);
    await amara.m.setPicture("image/jpeg", second);
    await carry(amara, zawadi);
    expect(await zawadi.m.pictureOf("amara")).toEqual({ type: "image/jpeg", bytes: second });
    // zawadi shared none
    expect(await amara.m.pictureOf("zawadi")).toBeUndefined();
    expect(zawadi.m.state.rejections()).toEqual([]);
    await Promise.all([amara.m.close(), zawadi.m.close()]);
  });
});
