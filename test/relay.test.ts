// Issue 4: a classmate who is never in range, reached through laptops that carry what they cannot
// read, forge or delete; copies dropped only once delivery is confirmed; hostile carriers refused.
import * as A from "@automerge/automerge";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  conversationId, emptySegment, encodeFrame, envelopeForm, EnvelopeKind, generateIdentity, makeReceipt, newActorId, randomBytes,
  sealChange, sealEnvelope, segmentDocumentId, sha256, signEnvelope, type ConversationDoc, type Envelope, type PeerLink,
} from "@pigeon/model";
import { Writer } from "../packages/model/src/bytes.js";
import { WsNetwork } from "@pigeon/peers";
import { fileStorage, Mailbox, SyncEngine } from "@pigeon/sync";
import { cleanupAll, freePort, onCleanup, pigeon, pigeonJson, startDaemon, tempDir, waitFor, type Daemon } from "./helpers.js";

interface Msg { id: string; from: string; body: string; state?: string; sentVia?: string; deliveredVia?: string }
interface Status { carrying: { envelopes: number; bytes: number; people: number; acks: number } }

afterAll(cleanupAll);

async function exchangeCards(x: Daemon, y: Daemon) {
  const cx = (await pigeon(x, "card")).stdout.trim();
  const cy = (await pigeon(y, "card")).stdout.trim();
  expect((await pigeon(x, "contacts", "add", cy)).code).toBe(0);
  expect((await pigeon(y, "contacts", "add", cx)).code).toBe(0);
}

const carrying = async (d: Daemon) => (await pigeonJson<Status>(d, "status")).carrying;

describe("relay a few hops", () => {
  it("A - B - C: A and C never meet; C gets it through B; its acknowledgement comes back as the delivered receipt; B keeps no copy", async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const dirB = tempDir("baraka");
    const a = await startDaemon("amara", { args: ["--no-mdns", "--port", String(pa)] });
    const c = await startDaemon("chiku", { args: ["--no-mdns", "--port", String(pc)] });
    await exchangeCards(a, c); // given by hand, never met
    expect((await pigeonJson<unknown[]>(a, "peers")).length).toBe(0);
    await pigeonJson<Msg>(a, "send", "chiku@local", "hello from the other classroom");

    // B walks past A
    let b = await startDaemon("baraka", { dataDir: dirB, args: ["--no-mdns", "--port", String(pb), "--peer", `127.0.0.1:${pa}`] });
    await waitFor(async () => (await carrying(b)).envelopes === 1, "B to carry A's message (its key inside)");
    expect((await carrying(b)).people).toBe(0); // sealed: B cannot tell whom they are for
    expect((await pigeon(b, "status")).stdout).toMatch(/carrying for others: 1 sealed message .* whom they are for is not known here/);
    expect(await pigeonJson<Msg[]>(b, "inbox")).toEqual([]); // it cannot read them
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox"))[0]?.state === "sent", "A to see 'sent'");
    expect((await pigeon(a, "outbox")).stdout).toContain("carried by baraka@local");
    await b.stop();

    // ... then past C
    b = await startDaemon("baraka", { dataDir: dirB, args: ["--no-mdns", "--port", String(pb), "--peer", `127.0.0.1:${pc}`] });
    await waitFor(async () => (await pigeonJson<Msg[]>(c, "inbox")).length === 1, "C's inbox");
    expect((await pigeonJson<Msg[]>(c, "inbox"))[0]).toMatchObject({ from: "amara@local", body: "hello from the other classroom" });
    await waitFor(async () => {
      const k = await carrying(b);
      // A's copies dropped; on board only C's acknowledgement, which is also A's delivered receipt
      return k.envelopes === 0 && k.acks >= 1;
    }, "B to drop the delivered copies");
    await b.stop();

    // ... and past A again
    b = await startDaemon("baraka", { dataDir: dirB, args: ["--no-mdns", "--port", String(pb), "--peer", `127.0.0.1:${pa}`] });
    const out = await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox")).find((m) => m.state === "delivered"), "A to see delivered");
    expect(out.deliveredVia).toBe("carriers");
    await waitFor(async () => (await carrying(b)).envelopes === 0, "B to hold no copy");
    expect((await carrying(b)).bytes).toBe(0);
  }, 180_000); // five daemon starts and their links: past the default minute on a loaded 2-core machine
});

describe("a hostile carrier", () => {
  it("is refused with a reason for every trick, and honest traffic still gets through", async () => {
    const [pa, pb, pc] = [await freePort(), await freePort(), await freePort()];
    const a = await startDaemon("amara", { args: ["--no-mdns", "--port", String(pa)] });
    const c = await startDaemon("chiku", { args: ["--no-mdns", "--port", String(pc)] });
    await exchangeCards(a, c);
    await pigeonJson<Msg>(a, "send", "chiku@local", "for chiku, through baraka");
    const b = await startDaemon("baraka", { args: ["--no-mdns", "--port", String(pb), "--peer", `127.0.0.1:${pa}`, "--carry-quota", "1"] });
    await waitFor(async () => (await carrying(b)).envelopes === 1, "B to carry A's message (its key inside)");
    await waitFor(async () => (await pigeonJson<unknown[]>(b, "nearby")).length === 1, "B to meet A");
    expect((await pigeon(b, "buddies", "add", "amara@local")).code).toBe(0); // baraka chooses amara

    // Mallory: a real node of her own, plus raw frames
    const mallory = generateIdentity("mallory");
    const mdir = mkdtempSync(join(tmpdir(), "pigeon-mallory-"));
    const mbox = new Mailbox({ identity: mallory, storage: fileStorage(mdir) });
    const engine = new SyncEngine(mbox);
    const net = new WsNetwork({ identity: mallory, host: "127.0.0.1", port: 0, pingIntervalMs: 0 });
    net.on("link", (l) => engine.attach(l));
    onCleanup(async () => {
      engine.close();
      await net.close();
      await mbox.close();
    });
    const link: PeerLink = await net.dial("127.0.0.1", pb);
    const inject = (env: Envelope | Uint8Array, hops = 0) =>
      link.send(encodeFrame({ type: "envelope", hops, copies: 1, envelope: env instanceof Uint8Array ? env : env.bytes }));
    // Mallory takes B's carried envelopes like any carrier would: sealed, she reads nothing of them
    await waitFor(async () => mbox.envelopes.stats().envelopes >= 1, "Mallory to receive carried envelopes");
    const held = mbox.envelopes.ids().map((e) => mbox.envelopes.bytesOf(e.id)!);
    expect(held.every((x) => envelopeForm(x) === "sealed" && !mbox.envelopes.get(sha256(x)))).toBe(true);
    const honest = held[0]!;
    await waitFor(async () => (await pigeonJson<unknown[]>(b, "contacts")).length >= 2, "B to know mallory");
    const toB = mbox.resolve("baraka@local");
    const sealedToB = (env: { bytes: Uint8Array; created: number; lifetime: number }) => sealEnvelope(mallory.sealing, env, [toB.sealPublicKey]).bytes;

    // 1. forged: a message to B that claims someone else wrote it, signed by mallory (sealed properly to B)
    const mine = sealChange(mallory, { conversation: randomBytes(16), segment: 0, recipients: [toB.signPublicKey], created: Date.now() }, randomBytes(32), randomBytes(40));
    const forged = Uint8Array.from(mine.bytes);
    forged.set(randomBytes(32), 2 + 16 + 1); // author field: not the signer
    inject(sealedToB({ bytes: forged, created: mine.created, lifetime: mine.lifetime }));
    // 2. tampered: a sealed envelope to B changed in transit
    const tampered = sealedToB(mine);
    tampered[tampered.length - 5]! ^= 0xff;
    inject(tampered);
    // 3. forged receipt: an ack key that opens none of the locks of amara's envelope
    inject(makeReceipt({ created: Date.now() }, [{ id: sha256(honest), ackKey: randomBytes(32) }]).bytes);
    // 4. oversize envelope for someone else
    const stranger = generateIdentity("stranger");
    inject(sealEnvelope(mallory.sealing, signEnvelope(mallory, {
      kind: EnvelopeKind.Change, conversation: randomBytes(16), segment: 0, recipients: [stranger.signing.publicKey],
      created: Date.now(), lifetime: 3600, keyId: randomBytes(8),
    }, randomBytes(100_000)), [stranger.sealing.publicKey]).bytes);
    // 5. deleting and rewriting changes in a conversation mallory is really a member of
    await mbox.send("baraka@local", "hi baraka, it's mallory");
    expect((await pigeon(b, "send", "mallory@local", "hello mallory")).code).toBe(0);
    await waitFor(async () => (await mbox.inbox()).length === 1, "mallory to get B's reply");
    const conv = conversationId([mallory.signing.publicKey, mbox.resolve("baraka@local").signPublicKey]);
    const key = mbox.state.keys(conv)[0]!.key;
    const { handle } = await mbox.documents.open<ConversationDoc>(segmentDocumentId(conv, 0), () => emptySegment(), newActorId(mallory.signing.publicKey));
    const recipients = [mbox.resolve("baraka@local").signPublicKey];
    const idx = handle.doc().messages.findIndex((m) => m.body.toString() === "hello mallory");
    expect(idx).toBeGreaterThanOrEqual(0);
    const del = A.change(A.clone(handle.doc(), { actor: newActorId(mallory.signing.publicKey) }), (d) => { d.messages.splice(idx, 1); });
    inject(sealedToB(sealChange(mallory, { conversation: conv, segment: 0, recipients, created: Date.now() }, key, A.getLastLocalChange(del)!)));
    const rewrite = A.change(A.clone(handle.doc(), { actor: newActorId(mallory.signing.publicKey) }), (d) => {
      d.messages[idx]!.body = new A.ImmutableString("baraka says mallory is great");
    });
    inject(sealedToB(sealChange(mallory, { conversation: conv, segment: 0, recipients, created: Date.now() }, key, A.getLastLocalChange(rewrite)!)));
    // 6. a flood of 10,000 junk envelopes: well-formed sealed envelopes for no one (a carrier cannot
    // tell them from real ones: it only finds that no tag is its own)
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    for (let i = 0; i < 10_000; i++) {
      const tags = [randomBytes(16), randomBytes(16)].sort(Buffer.compare);
      const w = new Writer().u8(3).u8(EnvelopeKind.Sealed).varint(hour).varint(3600).raw(randomBytes(32)).varint(2);
      for (const t of tags) w.raw(t).raw(randomBytes(48));
      inject(w.varint(1).raw(randomBytes(32)).bytes(randomBytes(400)).finish());
    }
    // 7. replay of an envelope whose delivery is confirmed comes after C has it (below)

    // honest traffic still flows during and after the flood
    await pigeonJson<Msg>(a, "send", "baraka@local", "still there?");
    await waitFor(async () => (await pigeonJson<Msg[]>(b, "inbox")).some((m) => m.body === "still there?"), "A's message to B after the flood", 60_000);
    expect(b.proc.exitCode).toBe(null);
    const log = b.output();
    expect(log).toMatch(/refused envelope .* from mallory@local: forged signature/);
    expect(log).toMatch(/refused envelope .* from mallory@local: sealed to this person but it does not open/);
    expect(log).toMatch(/ignored 1 receipt entry whose ack key opens none of the envelope's locks \(forged receipt\)/);
    expect(log).toMatch(/refused envelope .* from mallory@local: oversize: \d+ bytes/);
    expect(log).toMatch(/rejected envelope .* from mallory@local: change deletes data/);
    expect(log).toMatch(/rejected envelope .* from mallory@local: change overwrites another member's data/);
    expect(log).toMatch(/from mallory@local: mallory@local is over its carrying budget/);
    expect(log.split("\n").length).toBeLessThan(400); // the flood did not flood the log
    // B's own messages are intact, and the forged receipt dropped nothing
    expect((await pigeonJson<Msg[]>(b, "outbox")).map((m) => m.body)).toEqual(["hello mallory"]);
    expect((await pigeonJson<Msg[]>(b, "inbox")).map((m) => m.body).sort()).toEqual(["hi baraka, it's mallory", "still there?"]);
    const k = await carrying(b);
    expect(k.bytes).toBeLessThanOrEqual(1024 * 1024);

    // C comes by: the honest carried message is delivered, and the copies dropped
    const c2 = c;
    await c2.stop();
    const cAgain = await startDaemon("chiku", { dataDir: c2.dataDir, args: ["--no-mdns", "--port", String(pc), "--peer", `127.0.0.1:${pb}`] });
    await waitFor(async () => (await pigeonJson<Msg[]>(cAgain, "inbox")).some((m) => m.body === "for chiku, through baraka"), "C's inbox", 60_000);
    const dropped = () => [...b.output().matchAll(/delivery confirmed: dropped (\d+) carried/g)].reduce((n, m) => n + Number(m[1]), 0);
    await waitFor(() => dropped() >= 1, "B to drop the copy of A's message").catch((e: Error) => {
      if (process.env.PIGEON_SHOW_LOGS) console.log(b.output());
      throw e;
    });
    // replaying the delivered envelope is refused
    inject(honest);
    await waitFor(() => /from mallory@local: replayed: already delivered/.test(b.output()), "the replay to be refused");
    expect(b.proc.exitCode).toBe(null);
    if (process.env.PIGEON_SHOW_LOGS) console.log(b.output());
  }, 180_000);
});
