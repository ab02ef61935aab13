// A child's second device edits the buddy list while a real XMPP client (slixmpp) is connected to the
// first device's node: when the edit arrives over a link between the devices, the client gets a roster
// push with the new item and version. Both devices run in-process (the first with its XMPP server on a
// real port); the second is certified by the first, as pairing does.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { certifyDevice, contactCard, encodeCard, generateIdentity, identityFromGrant, newDeviceIdentity, type Identity } from "@pigeon/model";
import { fileStorage, Mailbox, memoryLinkPair, SyncEngine } from "@pigeon/sync";
import { ensureCredentials, XmppServer } from "@pigeon/xmpp";
import { cleanupAll, onCleanup } from "../helpers.js";
import { announceSkip, missing, slix } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp");
if (why) announceSkip("slixmpp and a buddy-list edit from another device", why);

function device(identity: Identity): { m: Mailbox; s: SyncEngine; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), `pigeon-device-${identity.name}-`));
  const m = new Mailbox({ identity, storage: fileStorage(dir) });
  const s = new SyncEngine(m);
  onCleanup(async () => {
    s.close();
    await m.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { m, s, dir };
}

describe.skipIf(!!why)("a buddy-list edit made on another device", () => {
  it("reaches slixmpp on the first device as a roster push, once the devices meet", async () => {
    const amara = generateIdentity("amara");
    const phone = device(amara);
    await phone.m.recover();
    const server = new XmppServer({ mailbox: phone.m, dataDir: phone.dir, port: 0, tls: false, peers: phone.s });
    onCleanup(() => server.close());
    const { port } = await server.listen();
    const { password } = ensureCredentials(phone.dir);

    // amara's tablet, certified by the phone (which holds the person key)
    const fresh = newDeviceIdentity();
    const tablet = device(identityFromGrant(fresh, {
      name: amara.name, home: amara.home, person: amara.person, certificate: certifyDevice(amara, fresh.signing.publicKey),
      sealing: amara.sealing, previousSealing: [], card: encodeCard(amara),
    }));
    await tablet.m.recover();
    // on the tablet, apart from the phone, the child adds a classmate met there and names her
    tablet.m.rememberContact(contactCard(generateIdentity("chiku")), "met");
    await tablet.m.addBuddy("chiku");
    await tablet.m.renameBuddy("chiku", "chi");
    await tablet.m.addToGroup("chi", "football");

    const run = await slix({ jid: "amara@local", password, port, scenario: "roster_push", who: "chiku@local", name: "chi", groups: ["football"] }, (e) => {
      if (e.event !== "ready") return;
      // the devices meet: the tablet's edits reach the phone, and the client on the phone is told
      const peer = (id: Identity) => ({ ...contactCard(id), device: id.signing.publicKey });
      const [atTablet, atPhone] = memoryLinkPair(peer(tablet.m.identity), peer(amara));
      phone.s.attach(atPhone);
      tablet.s.attach(atTablet);
    });
    expect(run.result.ok, JSON.stringify(run.result) + run.stderr.slice(-2000)).toBe(true);
    expect([run.result.roster_name, run.result.roster_groups]).toEqual(["chi", ["football"]]);
    expect((await phone.m.buddies()).map((b) => [b.address, b.petname, b.groups])).toEqual([["chiku@local", "chi", ["football"]]]);
  });
});
