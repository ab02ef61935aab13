// Avatars (XEP-0054/XEP-0153 vCard PHOTO, issue 21): slixmpp on amara's node stores a vCard with a
// picture; after amara writes to baraka, slixmpp on baraka's node asks for amara's vCard and gets
// the same picture, byte for byte (it travelled as amara's Pigeon picture). A picture over the
// 16 KiB limit is refused, saying so; baraka's client, online meanwhile, gets amara's presence again
// with the picture's hash (XEP-0153). PEP avatars (XEP-0084) are not served and not advertised.
// The same vCard round trip against Prosody (reference: there both users are on one server).
import { createHash, randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll } from "../helpers.js";
import { announceSkip, befriend, missing, slix, startProsody, startXmppNode } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("avatars", why);

// a real PNG header and random bytes: what matters is that the same bytes arrive
const picture = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), randomBytes(6000)]).toString("base64");

describe.skipIf(!!why)("avatars (vCard PHOTO)", () => {
  it("Pigeon: a buddy's vCard carries the picture their client stored; over 16 KiB is refused", async () => {
    const a = await startXmppNode("amara");
    const b = await startXmppNode("baraka", ["--peer", `127.0.0.1:${a.syncPort}`]);
    await befriend(a, b);
    const big = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "vcard_set", type: "image/png", photo: randomBytes(20_000).toString("base64") });
    expect(big.result.answer).toMatch(/^not-acceptable: the picture is 20000 bytes; .* 16384 bytes/);
    // baraka's client is online and learns of the picture from amara's presence (XEP-0153)
    const watching = slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "photo_hash", who: a.jid, timeout: 30 });
    await new Promise((r) => setTimeout(r, 1500));
    const set = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "vcard_set", type: "image/png", photo: picture, to: b.jid, body: "look at my picture" });
    expect(set.result.answer).toBe("result");
    const got = await slix({ jid: b.jid, password: b.password, port: b.xmppPort, scenario: "vcard_get", who: a.jid, timeout: 20 });
    expect(got.result.type).toBe("image/png");
    expect(got.result.photo).toBe(picture);
    const hashes = (await watching).result.hashes as string[];
    expect(hashes.at(-1)).toBe(createHash("sha1").update(Buffer.from(picture, "base64")).digest("hex"));
    // and the other way round nothing was shared: a name only
    const none = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "vcard_get", who: b.jid, timeout: 0 });
    expect([none.result.fn, none.result.photo]).toEqual(["baraka", null]);
  }, 120_000);

  it("Prosody (reference): the vCard with its PHOTO comes back the same", async () => {
    const p = await startProsody({ alice: "alice-password", bob: "bob-password" });
    const set = await slix({ jid: "alice@local", password: "alice-password", port: p.port, scenario: "vcard_set", type: "image/png", photo: picture });
    expect(set.result.answer).toBe("result");
    const got = await slix({ jid: "bob@local", password: "bob-password", port: p.port, scenario: "vcard_get", who: "alice@local", timeout: 5 });
    expect(got.result.photo).toBe(picture);
  });
});
