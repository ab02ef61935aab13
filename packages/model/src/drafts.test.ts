// The drafts document's merge rule and admission check, as a child's devices meet it: saves made apart
// on two devices, a delete against a save, and what one device may send the others.
import * as A from "@automerge/automerge";
import { describe, expect, it } from "vitest";
import {
  admitEnvelope, appendMessage, buddyListConversation, checkDraftsChange, deleteDraft, draft, drafts, DRAFTS_SEGMENT, emptyDrafts, emptySegment,
  generateIdentity, keyId, MAX_BODY_CHARS, newActorId, newConversationKey, saveDraft, sealChange, sealKey, toHex, type AdmissionContext, type DraftEdit,
  type DraftsDoc, type Identity,
} from "./index.js";

const T0 = Date.UTC(2026, 2, 2, 8, 0);
const MIN = 60_000;

/** One of the child's devices: its own key and actor, the changes it made. */
class Device {
  readonly key = generateIdentity("me").signing.publicKey;
  readonly actor = newActorId(this.key);
  doc: A.Doc<DraftsDoc>;
  readonly sent: Uint8Array[] = [];
  constructor(from: A.Doc<DraftsDoc> = emptyDrafts()) {
    this.doc = A.load<DraftsDoc>(A.save(from), { actor: this.actor });
  }
  do(e: DraftEdit | null): void {
    if (!e) throw new Error("expected a change");
    this.doc = e.doc;
    this.sent.push(e.change);
  }
  /** Takes the other device's changes the way sync does: each through the admission check first. */
  meet(other: Device): void {
    for (const c of other.sent) {
      const v = checkDraftsChange(c, keyId(other.key));
      if (!v.ok) throw new Error(v.reason);
    }
    this.doc = A.applyChanges(this.doc, other.sent)[0];
  }
}

describe("drafts on two devices of one child", () => {
  it("a draft saved on one device shows on the other, whole", () => {
    const laptop = new Device();
    const tablet = new Device();
    laptop.do(saveDraft(laptop.doc, { id: "0a1b2c3d", to: "baraka@local", body: "see you at football" }, T0));
    tablet.meet(laptop);
    expect(drafts(tablet.doc)).toEqual([{ id: "0a1b2c3d", to: "baraka@local", body: "see you at football", updatedAt: T0 }]);
  });

  it("the same draft saved apart: the later save wins on both, even when Automerge's own pick is the other", () => {
    const laptop = new Device();
    laptop.do(saveDraft(laptop.doc, { id: "0a1b2c3d", to: "baraka@local", body: "hi" }, T0));
    const tablet = new Device(laptop.doc);
    laptop.do(saveDraft(laptop.doc, { id: "0a1b2c3d", to: "baraka@local", body: "hi from the laptop" }, T0 + 5 * MIN));
    tablet.do(saveDraft(tablet.doc, { id: "0a1b2c3d", to: "chiku@local", body: "hi from the tablet" }, T0 + 2 * MIN));
    laptop.meet(tablet);
    tablet.meet(laptop);
    for (const d of [laptop, tablet]) expect(draft(d.doc, "0a1b2c3d")).toMatchObject({ to: "baraka@local", body: "hi from the laptop", updatedAt: T0 + 5 * MIN });
    // the same times: Automerge's order decides, the same on both
    const a = new Device(laptop.doc);
    const b = new Device(laptop.doc);
    a.do(saveDraft(a.doc, { id: "0a1b2c3d", to: "baraka@local", body: "a" }, T0 + 9 * MIN));
    b.do(saveDraft(b.doc, { id: "0a1b2c3d", to: "baraka@local", body: "b" }, T0 + 9 * MIN));
    a.meet(b);
    b.meet(a);
    expect(draft(a.doc, "0a1b2c3d")).toEqual(draft(b.doc, "0a1b2c3d"));
    expect(draft(a.doc, "0a1b2c3d")!.body).toBe(a.actor > b.actor ? "a" : "b");
  });

  it("a save made after seeing another wins even when that laptop's clock is behind", () => {
    const laptop = new Device();
    laptop.do(saveDraft(laptop.doc, { id: "0a1b2c3d", to: "baraka@local", body: "first" }, T0 + 60 * MIN));
    const tablet = new Device(laptop.doc);
    tablet.do(saveDraft(tablet.doc, { id: "0a1b2c3d", to: "baraka@local", body: "second" }, T0)); // clock an hour behind
    laptop.meet(tablet);
    expect(draft(laptop.doc, "0a1b2c3d")).toMatchObject({ body: "second", updatedAt: T0 + 60 * MIN + 1 });
  });

  it("a delete on one device against a save made apart on the other: the save stays (nothing typed is lost)", () => {
    const laptop = new Device();
    laptop.do(saveDraft(laptop.doc, { id: "0a1b2c3d", to: "baraka@local", body: "hi" }, T0));
    const tablet = new Device(laptop.doc);
    laptop.do(deleteDraft(laptop.doc, "0a1b2c3d", T0 + 10 * MIN)); // sent, or thrown away, even later
    tablet.do(saveDraft(tablet.doc, { id: "0a1b2c3d", to: "baraka@local", body: "hi, and bring the ball" }, T0 + 5 * MIN));
    laptop.meet(tablet);
    tablet.meet(laptop);
    for (const d of [laptop, tablet]) expect(drafts(d.doc).map((x) => x.body)).toEqual(["hi, and bring the ball"]);
    // a delete made after seeing the save removes it everywhere
    const again = new Device(tablet.doc);
    again.do(deleteDraft(again.doc, "0a1b2c3d", T0 + 20 * MIN));
    laptop.meet(again);
    expect(drafts(laptop.doc)).toEqual([]);
    expect(deleteDraft(laptop.doc, "0a1b2c3d", T0)).toBeNull();
  });

  it("refuses what is not a draft: a bad id, address or length, half a draft, a field edited alone, a message", () => {
    const d = new Device();
    expect(() => saveDraft(d.doc, { id: "../x", to: "baraka@local", body: "" }, T0)).toThrow(RangeError);
    expect(() => saveDraft(d.doc, { id: "0a1b2c3d", to: "Baraka Ka", body: "" }, T0)).toThrow(RangeError);
    expect(() => saveDraft(d.doc, { id: "0a1b2c3d", to: "baraka@local", body: "x".repeat(MAX_BODY_CHARS + 1) }, T0)).toThrow(RangeError);
    const bad = (fn: (x: DraftsDoc) => void) => checkDraftsChange(A.getLastLocalChange(A.change(A.clone(d.doc), fn))!);
    const str = (s: string) => new A.ImmutableString(s);
    expect(bad((x) => { x.drafts["0a1b2c3d"] = { to: str("baraka@local"), body: str("x".repeat(MAX_BODY_CHARS + 1)), updatedAt: T0 }; }))
      .toMatchObject({ ok: false, reason: expect.stringMatching(/over 8000/) });
    expect(bad((x) => { x.drafts["NOPE"] = { to: str("baraka@local"), body: str(""), updatedAt: T0 }; })).toMatchObject({ ok: false, reason: expect.stringMatching(/draft id/) });
    expect(bad((x) => { x.drafts["0a1b2c3d"] = { to: str("not an address"), body: str(""), updatedAt: T0 }; })).toMatchObject({ ok: false });
    expect(bad((x) => { x.drafts["0a1b2c3d"] = { to: str("baraka@local"), body: str("") } as never; })).toMatchObject({ ok: false, reason: expect.stringMatching(/incomplete/) });
    expect(bad((x) => { x.drafts["0a1b2c3d"] = { to: str("baraka@local"), body: str(""), updatedAt: T0, sendNow: true } as never; })).toMatchObject({ ok: false });
    expect(bad((x) => { (x as unknown as Record<string, unknown>)["outbox"] = str("x"); })).toMatchObject({ ok: false, reason: expect.stringMatching(/root/) });
    d.do(saveDraft(d.doc, { id: "0a1b2c3d", to: "baraka@local", body: "hi" }, T0));
    expect(bad((x) => { x.drafts["0a1b2c3d"]!.body = str("edited in place"); })).toMatchObject({ ok: false, reason: expect.stringMatching(/not a draft it writes/) });
    expect(bad((x) => { x.drafts["0a1b2c3d"] = { to: str("baraka@local"), body: "text" as never, updatedAt: T0 }; })).toMatchObject({ ok: false });
    const msg = appendMessage(emptySegment(d.actor), { id: "m1", authorKeyId: keyId(d.key), hlc: "x", sentAt: T0, body: "a message" });
    expect(checkDraftsChange(msg.change)).toMatchObject({ ok: false });
  });
});

describe("drafts in the person's own conversation", () => {
  const amara = generateIdentity("amara");
  const baraka = generateIdentity("baraka");
  const conv = buddyListConversation(amara.person);
  const key = newConversationKey();
  const keyEnv = sealKey(amara, { conversation: conv, recipients: [], created: T0 }, key);
  const ctx = (me: Identity): AdmissionContext => ({
    me, members: [amara.person], keys: new Map([[toHex(keyEnv.keyId), key]]), alreadyOpened: () => false, changeKnown: () => false,
  });
  const saved = saveDraft(emptyDrafts(newActorId(amara.signing.publicKey)), { id: "0a1b2c3d", to: "baraka@local", body: "secret plan" }, T0);

  it("a draft edit in segment 1 is admitted by the drafts rule; a buddy-list segment is not a place for it, nor a segment 2", () => {
    const env = sealChange(amara, { conversation: conv, segment: DRAFTS_SEGMENT, recipients: [], created: T0 }, key, saved.change);
    expect(env.recipients).toEqual([]);
    expect(admitEnvelope(env.bytes, ctx(amara)).status).toBe("change");
    const wrong = sealChange(amara, { conversation: conv, segment: 0, recipients: [], created: T0 }, key, saved.change);
    expect(admitEnvelope(wrong.bytes, ctx(amara))).toMatchObject({ status: "rejected", reason: expect.stringMatching(/buddy-list column/) });
    const two = sealChange(amara, { conversation: conv, segment: 2, recipients: [], created: T0 }, key, saved.change);
    expect(admitEnvelope(two.bytes, ctx(amara))).toMatchObject({ status: "rejected", reason: expect.stringMatching(/drafts \(segment 1\) only/) });
  });

  it("never opens for a classmate: the key is sealed to the person alone", () => {
    expect(admitEnvelope(keyEnv.bytes, { ...ctx(baraka), members: undefined })).toMatchObject({ status: "rejected", reason: "key envelope does not open for us" });
  });
});
