// Message carbons (XEP-0280): each resource turns them on for itself; a message one resource sends
// (or `pigeon send` writes) is copied to the user's other resources that asked, wrapped in <sent/>.
import { forAccount, type Account, type Iqs } from "./account.js";
import { NS } from "./ns.js";
import type { Session } from "./session.js";
import { el, type XmlElement } from "./xml.js";

export function registerCarbons(iq: Iqs): void {
  for (const name of ["enable", "disable"]) {
    iq.set(NS.carbons, name, forAccount((e, { session }) => {
      session.carbons = e.name === "enable";
      return undefined;
    }));
  }
}

/** `inner` forwarded to `to` as a carbon (the server speaks for the user's account). */
export function carbon(a: Account, kind: "sent" | "received", to: Session, inner: XmlElement): XmlElement {
  inner.attrs.xmlns = NS.client;
  return el(
    "message",
    { from: a.bareJid, to: to.jid, type: inner.attrs.type ?? "chat", id: a.nextId("carbon") },
    el(kind, { xmlns: NS.carbons }, el("forwarded", { xmlns: NS.forward }, inner)),
  );
}
