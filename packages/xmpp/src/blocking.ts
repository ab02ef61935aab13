// Blocking command (XEP-0191), served from the buddy list's blocked set (the person's devices share
// it): the block list, blocking and unblocking by JID, and a push to every client that asked for the
// list whenever it changes, here, from the `pigeon` command or on another device of the person. A
// blocked person's messages are shown nowhere and get no receipt; messages to them are refused with
// <blocked/>; they get no presence (roster.ts, chat.ts). A JID means everyone this laptop knows by
// that address (two people may share a name): blocking blocks them all.
import { fingerprint, formatAddress, fromHex } from "@pigeon/model";
import { forAccount, type Account, type Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { NS } from "./ns.js";
import { itemJid, stanzaErrorOf } from "./roster.js";
import { children, el } from "./xml.js";

/** Fingerprints of everyone this laptop knows by `jid` (contacts and buddies). */
function peopleCalled(a: Account, jid: string): string[] {
  const keys = new Set<string>();
  for (const c of a.mailbox.contacts()) if (formatAddress(c).toLowerCase() === jid) keys.add(fingerprint(c.signPublicKey));
  for (const i of a.roster.list()) if (i.jid === jid) keys.add(fingerprint(fromHex(i.key)));
  return [...keys];
}

export function registerBlocking(iq: Iqs, a: Account): void {
  iq.get(NS.blocking, "blocklist", forAccount((_e, { session }) => {
    session.blocklistRequested = true;
    return el("blocklist", { xmlns: NS.blocking }, a.roster.blocked().map((jid) => el("item", { jid })));
  }));
  iq.set(NS.blocking, "block", forAccount(async (e) => {
    const jids = children(e, "item").map((i) => itemJid(i, a.bareJid));
    if (jids.length === 0) throw new StanzaError("bad-request", "block whom? (one <item jid='...'/> or more)");
    const who = jids.map((jid) => {
      const people = peopleCalled(a, jid);
      if (people.length === 0) throw new StanzaError("item-not-found", `Pigeon knows nobody called ${jid} on this laptop`);
      return people;
    });
    await a.roster.holding(async () => {
      for (const fp of who.flat()) await a.mailbox.blockBuddy(fp).catch((err: unknown) => Promise.reject(stanzaErrorOf(err)));
    });
    return undefined;
  }));
  iq.set(NS.blocking, "unblock", forAccount(async (e) => {
    const jids = children(e, "item").map((i) => itemJid(i, a.bareJid));
    const blocked = await a.mailbox.blocked();
    // no items: unblock everyone
    const lift = blocked.filter((p) => jids.length === 0 || (p.name && p.home && jids.includes(formatAddress({ name: p.name, home: p.home }).toLowerCase())));
    await a.roster.holding(async () => {
      for (const p of lift) await a.mailbox.unblockBuddy(p.fingerprint).catch((err: unknown) => Promise.reject(stanzaErrorOf(err)));
    });
    return undefined;
  }));
}
