import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import { addBuddy, blockBuddy, buddies, buddyListConversation, emptyBuddyList } from "./buddy-list.js";
import { addReceipt, checkReceiptTargets, receiptKey, receiptOf } from "./conversation.js";
import { certifyDevice } from "./identity.js";
import { decodePairingGrant, encodePairingGrant, identityFromGrant, newDeviceIdentity } from "./keyring.js";
import {
  admitEnvelope,
  appendMessage,
  conversationId,
  decodeEnvelope,
  emptySegment,
  formatHlc,
  generateIdentity,
  keyId,
  newActorId,
  newConversationKey,
  randomBytes,
  sealChange,
  sealKey,
  toHex,
  type AdmissionContext,
  type ConversationDoc,
  type Identity,
} from "./index.js";

const amara = generateIdentity("amara");
const baraka = generateIdentity("baraka");
const mallory = generateIdentity("mallory");
const members = [amara.signing.publicKey, baraka.signing.publicKey];
const conv = conversationId(members);
const key = newConversationKey();
const now = Date.UTC(2026, 10, 25);

function ctx(me: Identity, opened = new Set<string>(), known = new Set<string>()): AdmissionContext {
  return {
    me,
    members,
    keys: new Map([[toHex(decodeEnvelope(keyEnvelope.bytes).keyId), key]]),
    alreadyOpened: (id) => opened.has(toHex(id)),
    changeKnown: (h) => known.has(h),
  };
}

const keyEnvelope = sealKey(amara, { conversation: conv, recipients: [{ signPublicKey: baraka.signing.publicKey, sealPublicKey: baraka.sealing.publicKey }], created: now }, key);

function message(author: Identity, body: string, doc = emptySegment(newActorId(author.signing.publicKey))) {
  return appendMessage(doc, { id: toHex(randomBytes(12)), authorKeyId: keyId(author.signing.publicKey), hlc: formatHlc({ wall: now, counter: 0 }), sentAt: now, body });
}

function seal(author: Identity, change: Uint8Array, recipients = [baraka.signing.publicKey]) {
  return sealChange(author, { conversation: conv, segment: 0, recipients, created: now }, key, change);
}

describe("sealed envelopes", () => {
  it("round-trips a key and a message to the recipient", () => {
    const k = admitEnvelope(keyEnvelope.bytes, { ...ctx(baraka), members: undefined });
    expect(k.status).toBe("key");
    if (k.status === "key") expect(toHex(k.key)).toBe(toHex(key));
    const { change } = message(amara, "hello baraka");
    const env = seal(amara, change);
    const got = admitEnvelope(env.bytes, ctx(baraka));
    expect(got.status).toBe("change");
    if (got.status !== "change") return;
    const [doc] = A.applyChanges(emptySegment(), [got.change]);
    expect(doc.messages[0]!.body.toString()).toBe("hello baraka");
    // the carrier sees only ciphertext
    expect(Buffer.from(env.bytes).includes(Buffer.from("hello baraka"))).toBe(false);
  });

  it("the author's own other devices can open the key too; strangers cannot", () => {
    expect(admitEnvelope(keyEnvelope.bytes, { ...ctx(amara), members: undefined }).status).toBe("key");
    const r = admitEnvelope(keyEnvelope.bytes, { ...ctx(mallory), members: undefined });
    expect(r).toMatchObject({ status: "rejected", reason: "key envelope does not open for us" });
  });

  it("rejects a forged signature", () => {
    const env = seal(amara, message(amara, "hi").change);
    const bytes = Uint8Array.from(env.bytes);
    bytes[bytes.length - 1]! ^= 1;
    expect(admitEnvelope(bytes, ctx(baraka))).toMatchObject({ status: "rejected", reason: "forged signature" });
  });

  it("rejects a header rewritten by a carrier (signature covers it)", () => {
    const env = seal(amara, message(amara, "hi").change);
    const bytes = Uint8Array.from(env.bytes);
    bytes[2]! ^= 1; // conversation id
    expect(admitEnvelope(bytes, ctx(baraka))).toMatchObject({ status: "rejected", reason: "forged signature" });
  });

  it("rejects tampered ciphertext re-signed by a non-member", () => {
    const env = seal(mallory, message(mallory, "junk").change);
    expect(admitEnvelope(env.bytes, ctx(baraka))).toMatchObject({ status: "rejected", reason: "signer is not a member of the conversation" });
  });

  it("rejects a change whose actor is not the signer's", () => {
    // baraka signs a change made under amara's actor id (the seq-poisoning attack)
    const { change } = message(amara, "i am amara");
    const env = seal(baraka, change, [amara.signing.publicKey]);
    const r = admitEnvelope(env.bytes, ctx(amara));
    expect(r.status).toBe("rejected");
    if (r.status === "rejected") expect(r.reason).toMatch(/actor .* does not belong to the signer/);
  });

  it("rejects a change that deletes another author's message", () => {
    const first = message(amara, "keep me");
    const [bdoc] = A.applyChanges(emptySegment(newActorId(baraka.signing.publicKey)), [first.change]);
    const next = A.change(bdoc, (d: ConversationDoc) => {
      d.messages.splice(0, 1);
    });
    const env = seal(baraka, A.getLastLocalChange(next)!, [amara.signing.publicKey]);
    expect(admitEnvelope(env.bytes, ctx(amara))).toMatchObject({ status: "rejected", reason: "change deletes data" });
  });

  it("rejects a change that rewrites a message or claims another author", () => {
    const first = message(amara, "original");
    const [bdoc] = A.applyChanges(emptySegment(newActorId(baraka.signing.publicKey)), [first.change]);
    const rewrite = A.change(bdoc, (d: ConversationDoc) => {
      d.messages[0]!.body = new A.ImmutableString("rewritten");
    });
    const r1 = admitEnvelope(seal(baraka, A.getLastLocalChange(rewrite)!, [amara.signing.publicKey]).bytes, ctx(amara));
    expect(r1).toMatchObject({ status: "rejected", reason: "change overwrites another member's data" });
    const spoof = appendMessage(emptySegment(newActorId(baraka.signing.publicKey)), {
      id: toHex(randomBytes(12)), authorKeyId: keyId(amara.signing.publicKey), hlc: "x", sentAt: now, body: "from amara (not)",
    });
    const r2 = admitEnvelope(seal(baraka, spoof.change, [amara.signing.publicKey]).bytes, ctx(amara));
    expect(r2).toMatchObject({ status: "rejected", reason: "message claims another author" });
  });

  it("accepts a receipt only from its reader", () => {
    const m = message(amara, "hi");
    const id = m.doc.messages[0]!.id.toString();
    const [bdoc] = A.applyChanges(emptySegment(newActorId(baraka.signing.publicKey)), [m.change]);
    const ok = addReceipt(bdoc, id, keyId(baraka.signing.publicKey), "delivered", now)!;
    expect(admitEnvelope(seal(baraka, ok.change, [amara.signing.publicKey]).bytes, ctx(amara)).status).toBe("change");
    const forged = addReceipt(A.clone(bdoc, { actor: newActorId(baraka.signing.publicKey) }), id, keyId(mallory.signing.publicKey), "read", now)!;
    expect(admitEnvelope(seal(baraka, forged.change, [amara.signing.publicKey]).bytes, ctx(amara))).toMatchObject({
      status: "rejected", reason: "receipt claims to be from another member",
    });
  });

  it("a receipt goes into its message's own map; anywhere else it is refused before it is applied", () => {
    const m = message(amara, "hi");
    const id = m.doc.messages[0]!.id.toString();
    const [bdoc] = A.applyChanges(emptySegment(newActorId(baraka.signing.publicKey)), [m.change]);
    const bKey = keyId(baraka.signing.publicKey);
    const ok = addReceipt(bdoc, id, bKey, "read", now)!;
    expect(ok.doc.messages[0]!.receipts).toEqual({ [`${bKey}/read`]: now });
    expect(ok.doc.receipts).toEqual({});
    const admitted = admitEnvelope(seal(baraka, ok.change, [amara.signing.publicKey]).bytes, ctx(amara));
    expect(admitted.status).toBe("change");
    if (admitted.status !== "change") return;
    expect(admitted.receiptTargets).toEqual([A.getObjectId(m.doc.messages[0]!.receipts!)]);
    expect(checkReceiptTargets(m.doc, admitted.receiptTargets)).toBeUndefined();
    // the same key set on the message itself, not in its receipts: admitted by the change alone, refused against the document
    const astray = A.change(A.clone(bdoc, { actor: newActorId(baraka.signing.publicKey) }), (d) => {
      (d.messages[0] as unknown as Record<string, number>)[`${bKey}/read`] = now;
    });
    const a2 = admitEnvelope(seal(baraka, A.getLastLocalChange(astray)!, [amara.signing.publicKey]).bytes, ctx(amara));
    expect(a2.status).toBe("change");
    if (a2.status === "change") expect(checkReceiptTargets(m.doc, a2.receiptTargets)).toBe("a receipt is set outside a message's receipts");
    // an object the document does not have
    expect(checkReceiptTargets(m.doc, [`999@${newActorId(baraka.signing.publicKey)}`])).toBe("a receipt names an object that is not in the document");
    // and a new message cannot come with receipts already in it
    const prefilled = A.change(emptySegment(newActorId(amara.signing.publicKey)), (d) => {
      d.messages.push({
        id: new A.ImmutableString(toHex(randomBytes(12))), author: new A.ImmutableString(keyId(amara.signing.publicKey)),
        hlc: new A.ImmutableString("x"), sentAt: now, body: new A.ImmutableString("read already"), receipts: { [`${bKey}/read`]: now },
      });
    });
    expect(admitEnvelope(seal(amara, A.getLastLocalChange(prefilled)!).bytes, ctx(baraka))).toMatchObject({ status: "rejected", reason: "a new message's receipts start empty" });
  });

  it("a receipt applied leaves the segment's other messages and older receipts as they were (no copy of the whole segment)", () => {
    let doc = emptySegment(newActorId(amara.signing.publicKey));
    for (let i = 0; i < 3; i++) doc = message(amara, `m${i}`, doc).doc;
    const [bdoc] = A.applyChanges(emptySegment(newActorId(baraka.signing.publicKey)), A.getAllChanges(doc));
    const r = addReceipt(bdoc, doc.messages[1]!.id.toString(), keyId(baraka.signing.publicKey), "read", now)!;
    const [after] = A.applyChanges(doc, [r.change]);
    // Automerge copies the objects on the changed path only: a map of the whole segment's receipts
    // would be copied at every receipt (~40 ms at a class channel's 39,000)
    expect(after.receipts).toBe(doc.receipts);
    expect(after.messages[0]).toBe(doc.messages[0]);
    expect(after.messages[2]).toBe(doc.messages[2]);
    expect(after.messages[1]!.receipts).toEqual({ [`${keyId(baraka.signing.publicKey)}/read`]: now });
  });

  it("messages without a receipts map (written before they had one) keep their receipts in the segment's map", () => {
    const old = A.change(emptySegment(newActorId(amara.signing.publicKey)), (d) => {
      d.messages.push({
        id: new A.ImmutableString(toHex(randomBytes(12))), author: new A.ImmutableString(keyId(amara.signing.publicKey)),
        hlc: new A.ImmutableString("x"), sentAt: now, body: new A.ImmutableString("from an older node"),
      });
    });
    expect(admitEnvelope(seal(amara, A.getLastLocalChange(old)!).bytes, ctx(baraka)).status).toBe("change");
    const id = old.messages[0]!.id.toString();
    const [bdoc] = A.applyChanges(emptySegment(newActorId(baraka.signing.publicKey)), A.getAllChanges(old));
    const bKey = keyId(baraka.signing.publicKey);
    const r = addReceipt(bdoc, id, bKey, "delivered", now)!;
    expect(r.doc.receipts).toEqual({ [`${id}/${bKey}/delivered`]: now });
    expect(receiptOf(r.doc, 0, bKey, "delivered")).toBe(now);
    expect(receiptOf(r.doc, 0, bKey, "read")).toBeUndefined();
    const admitted = admitEnvelope(seal(baraka, r.change, [amara.signing.publicKey]).bytes, ctx(amara));
    expect(admitted).toMatchObject({ status: "change", receiptTargets: [], flatReceipts: [id] });
    if (admitted.status === "change") expect(checkReceiptTargets(old, admitted.receiptTargets, admitted.flatReceipts)).toBeUndefined();
  });

  it("a receipt in the segment's map is refused for a message the document lacks, or one with its own map", () => {
    const m = message(amara, "hi");
    const id = m.doc.messages[0]!.id.toString();
    const bKey = keyId(baraka.signing.publicKey);
    const [bdoc] = A.applyChanges(emptySegment(newActorId(baraka.signing.publicKey)), [m.change]);
    const flat = (messageId: string) => {
      const d = A.change(A.clone(bdoc, { actor: newActorId(baraka.signing.publicKey) }), (x) => {
        x.receipts[receiptKey(messageId, bKey, "read")] = now;
      });
      const a = admitEnvelope(seal(baraka, A.getLastLocalChange(d)!, [amara.signing.publicKey]).bytes, ctx(amara));
      expect(a.status).toBe("change"); // the change alone cannot tell
      return a.status === "change" ? checkReceiptTargets(m.doc, a.receiptTargets, a.flatReceipts) : "not admitted";
    };
    // a message that has its own map: no view would ever read it there
    expect(flat(id)).toBe("a receipt for a message with its own receipts map is set outside it");
    // a message no one wrote: junk a member could pile up without bound
    expect(flat(toHex(randomBytes(12)))).toBe("a receipt names a message that is not in the document");
  });

  it("rejects a replayed envelope and a replayed change", () => {
    const m = message(amara, "once");
    const env = seal(amara, m.change);
    const opened = new Set([toHex(env.id)]);
    expect(admitEnvelope(env.bytes, ctx(baraka, opened))).toMatchObject({ status: "rejected", reason: "replayed envelope (already opened)" });
    const again = seal(amara, m.change); // same change, fresh envelope
    const known = new Set([A.decodeChange(m.change).hash]);
    expect(admitEnvelope(again.bytes, ctx(baraka, new Set(), known))).toMatchObject({ status: "rejected", reason: "replayed change (already in the document)" });
  });

  it("parks a change whose key has not arrived", () => {
    const env = seal(amara, message(amara, "early").change);
    expect(admitEnvelope(env.bytes, { ...ctx(baraka), members: undefined }).status).toBe("pending");
  });

  it("rejects every truncation and random bytes without throwing", () => {
    const env = seal(amara, message(amara, "cut me").change);
    for (let n = 0; n < env.bytes.length; n += 7) {
      const r = admitEnvelope(env.bytes.subarray(0, n), ctx(baraka));
      expect(r.status).toBe("rejected");
    }
    for (let i = 0; i < 300; i++) {
      const junk = randomBytes(1 + (i * 13) % 600);
      if (i % 3 === 0) junk[0] = 1; // valid version byte to get deeper into the parser
      if (i % 6 === 0) junk[1] = 1;
      expect(admitEnvelope(junk, ctx(baraka)).status).toBe("rejected");
    }
  });
});

describe("the person's own buddy list", () => {
  // amara's second device, paired as devices.ts pairs it
  const fresh = newDeviceIdentity();
  const code = "ABCD-EFGH-JKLM";
  const grant = encodePairingGrant(
    code,
    { name: amara.name, home: amara.home, person: amara.person, certificate: certifyDevice(amara, fresh.signing.publicKey), sealing: amara.sealing, previousSealing: [], card: "c" },
    fresh.signing.publicKey,
  );
  const tablet = identityFromGrant(fresh, decodePairingGrant(grant, code, fresh.signing.publicKey));
  const conv = buddyListConversation(amara.person);
  const listKey = newConversationKey();
  const keyEnv = sealKey(tablet, { conversation: conv, recipients: [], created: now }, listKey);
  const card = { signKey: toHex(baraka.person), name: "baraka", home: "local", sealKey: toHex(baraka.sealing.publicKey), how: "met" as const };
  const listCtx = (me: Identity): AdmissionContext => ({
    me, members: [amara.person], keys: new Map([[toHex(keyEnv.keyId), listKey]]), alreadyOpened: () => false, changeKnown: () => false,
  });

  it("lives in the conversation of the person alone: a key with no recipients opens on every device of the person, nowhere else", () => {
    expect(keyEnv.recipients).toEqual([]);
    expect(toHex(keyEnv.author)).toBe(toHex(amara.person));
    for (const device of [amara, tablet]) {
      const k = admitEnvelope(keyEnv.bytes, { ...listCtx(device), members: undefined });
      expect(k).toMatchObject({ status: "key" });
      if (k.status === "key") expect(k.members.map(toHex)).toEqual([toHex(amara.person)]);
    }
    expect(admitEnvelope(keyEnv.bytes, { ...listCtx(baraka), members: undefined })).toMatchObject({ status: "rejected" });
    // nobody else can make a key for it: the members a key names must hash to its conversation
    const forged = sealKey(mallory, { conversation: conv, recipients: [], created: now }, listKey);
    expect(admitEnvelope(forged.bytes, { ...listCtx(amara), members: undefined })).toMatchObject({
      status: "rejected", reason: "key envelope's members do not match its conversation id",
    });
  });

  it("takes buddy-list edits signed by any device of the person, judged by the buddy-list rule, not the conversation rule", () => {
    const added = addBuddy(emptyBuddyList(newActorId(tablet.signing.publicKey)), card, now)!;
    const env = sealChange(tablet, { conversation: conv, segment: 0, recipients: [], created: now }, listKey, added.change);
    const got = admitEnvelope(env.bytes, listCtx(amara));
    expect(got.status).toBe("change");
    if (got.status === "change") expect(buddies(A.applyChanges(emptyBuddyList(), [got.change])[0]).map((b) => b.name)).toEqual(["baraka"]);
    // a block (which deletes when lifted, so the conversation rule would refuse it) is fine here
    const blocked = blockBuddy(added.doc, toHex(mallory.person), now)!;
    const env2 = sealChange(tablet, { conversation: conv, segment: 0, recipients: [], created: now }, listKey, blocked.change);
    expect(admitEnvelope(env2.bytes, listCtx(amara)).status).toBe("change");
  });

  it("refuses a message put in the buddy list, and an edit whose actor is another device's", () => {
    const msg = message(amara, "not a buddy-list edit", emptySegment(newActorId(amara.signing.publicKey)));
    const env = sealChange(amara, { conversation: conv, segment: 0, recipients: [], created: now }, listKey, msg.change);
    expect(admitEnvelope(env.bytes, listCtx(tablet))).toMatchObject({ status: "rejected", reason: expect.stringMatching(/not a buddy-list column/) });
    // an edit made under the first device's actor, signed by the tablet
    const other = addBuddy(emptyBuddyList(newActorId(amara.signing.publicKey)), card, now)!;
    const env2 = sealChange(tablet, { conversation: conv, segment: 0, recipients: [], created: now }, listKey, other.change);
    expect(admitEnvelope(env2.bytes, listCtx(amara))).toMatchObject({ status: "rejected", reason: expect.stringMatching(/is not the signer's/) });
  });

  it("a classmate's buddy-list edit in a conversation with the child is refused by the conversation rule", () => {
    const edit = addBuddy(emptyBuddyList(newActorId(amara.signing.publicKey)), card, now)!;
    const env = seal(amara, edit.change);
    expect(admitEnvelope(env.bytes, ctx(baraka))).toMatchObject({ status: "rejected" });
  });
});
