// Private XML storage (XEP-0049), kept in xmpp.db: Converse keeps its bookmarks here.
import { forAccount, type Account, type Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { NS } from "./ns.js";
import { el, isElement, type XmlElement } from "./xml.js";

/** The largest stored element, as JSON: enough for bookmarks, not a place to park files. */
const MAX_PRIVATE_CHARS = 64 * 1024;

export function registerPrivateStorage(iq: Iqs, a: Account): void {
  const inner = (q: XmlElement): XmlElement => {
    const e = q.children.find(isElement);
    if (!e) throw new StanzaError("bad-request");
    return e;
  };
  const key = (e: XmlElement) => `private:${e.name}:${e.attrs.xmlns}`;
  iq.get(NS.private, "query", forAccount((q) => {
    const e = inner(q);
    const stored = a.store.meta(key(e));
    return el("query", { xmlns: NS.private }, stored ? (JSON.parse(stored) as XmlElement) : el(e.name, { xmlns: e.attrs.xmlns }));
  }));
  iq.set(NS.private, "query", forAccount((q) => {
    const e = inner(q);
    const xml = JSON.stringify(e);
    if (xml.length > MAX_PRIVATE_CHARS) throw new StanzaError("not-acceptable");
    a.store.setMeta(key(e), xml);
    return undefined;
  }));
}
