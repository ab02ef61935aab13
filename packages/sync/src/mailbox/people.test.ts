// Names a child can rely on: two people with one name never block that name, anyone can be
// addressed by fingerprint, contacts get the user's own names and can be removed, and replying
// to a message works without knowing the sender's name.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, fingerprint, generateIdentity, type Identity } from "@pigeon/model";
import { fileStorage, Mailbox, MailboxError } from "../index.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function mailbox(identity: Identity): Mailbox {
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-people-"));
  const m = new Mailbox({ identity, storage: fileStorage(dir) });
  cleanup.push(async () => {
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return m;
}

async function failure(p: Promise<unknown> | (() => unknown)): Promise<MailboxError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    if (e instanceof MailboxError) return e;
    throw e;
  }
  throw new Error("expected a MailboxError");
}

describe("people and names", () => {
  it("lists both people called amara with fingerprints, and sends to the one chosen", async () => {
    const me = mailbox(generateIdentity("zawadi"));
    const amara1 = generateIdentity("amara");
    const amara2 = generateIdentity("amara");
    me.rememberContact(contactCard(amara1), "met");
    me.rememberContact(contactCard(amara2), "card");
    const e = await failure(me.send("amara@local", "hi"));
    expect(e.code).toBe("ambiguous-address");
    expect(e.message).toContain(fingerprint(amara1.signing.publicKey));
    expect(e.message).toContain(fingerprint(amara2.signing.publicKey));
    expect(e.candidates?.map((c) => c.fingerprint).sort()).toEqual([fingerprint(amara1.signing.publicKey), fingerprint(amara2.signing.publicKey)].sort());
    // by fingerprint, or by the address narrowed with the start of one
    const fp2 = fingerprint(amara2.signing.publicKey);
    const sent = await me.send(fp2, "hello second amara");
    expect(sent.conversation).not.toBe("");
    const narrowed = me.resolve(`amara@local#${fingerprint(amara1.signing.publicKey).slice(0, 4)}`);
    if (fp2.slice(0, 4) !== fingerprint(amara1.signing.publicKey).slice(0, 4))
      expect(fingerprint(narrowed.signPublicKey)).toBe(fingerprint(amara1.signing.publicKey));
    // a petname makes the choice stick; removing the other one makes the name plain again
    me.renameContact(fp2, "amara-b");
    expect(fingerprint(me.resolve("amara-b").signPublicKey)).toBe(fp2);
    me.removeContact(fingerprint(amara1.signing.publicKey));
    expect(fingerprint(me.resolve("amara@local").signPublicKey)).toBe(fp2);
    expect(me.contacts().map((c) => c.petname)).toEqual(["amara-b"]);
  });

  it("says what is true when sending to yourself or to someone unknown", async () => {
    const me = mailbox(generateIdentity("zawadi"));
    expect((await failure(me.send("zawadi@local", "hi"))).message).toMatch(/your own address/);
    expect((await failure(me.send(fingerprint(me.me), "hi"))).message).toMatch(/your own address/);
    expect((await failure(me.send("nobody@local", "hi"))).message).toMatch(/not among the people this laptop knows/);
    expect((await failure(me.send("amara@local#0000", "hi"))).code).toBe("bad-input"); // 0 is not base32
    expect((await failure(() => me.renameContact("nobody@local", "x"))).code).toBe("unknown-address");
  });
});
