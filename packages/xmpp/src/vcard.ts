// vCards (XEP-0054): the user's own is kept in xmpp.db as the client set it (Converse shows and edits
// it); a contact's is made from their Pigeon name, since Pigeon carries no vCards between laptops.
import type { Account, Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { bareJid } from "./jid.js";
import { NS } from "./ns.js";
import { isContact } from "./roster.js";
import { el, type XmlElement } from "./xml.js";

/** The largest vCard kept, as JSON: room for a small photo. */
const MAX_VCARD_CHARS = 200 * 1024;

function nameCard(name: string): XmlElement {
  return el("vCard", { xmlns: NS.vcard }, el("FN", {}, name), el("NICKNAME", {}, name));
}

export function registerVcard(iq: Iqs, a: Account): void {
  iq.get(NS.vcard, "vCard", (_e, { to }) => {
    if (to.kind === "account") {
      const stored = a.store.meta("vcard");
      return stored ? (JSON.parse(stored) as XmlElement) : nameCard(a.user);
    }
    if (to.kind === "other" && isContact(a, bareJid(to.jid))) return nameCard(to.jid.local);
    throw new StanzaError("service-unavailable");
  });
  iq.set(NS.vcard, "vCard", (e, { to }) => {
    if (to.kind !== "account") throw new StanzaError("forbidden");
    const xml = JSON.stringify(e);
    if (xml.length > MAX_VCARD_CHARS) throw new StanzaError("not-acceptable");
    a.store.setMeta("vcard", xml);
    return undefined;
  });
}
