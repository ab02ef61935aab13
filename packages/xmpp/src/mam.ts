// The archive IQs (XEP-0313): the query form, preferences (always archive: Pigeon keeps every
// message anyway), and queries, answered with one <message><result/></message> per archived message
// and then the <fin/> result. What is found and in which order is archive.ts's business.
import { forAccount, type Account, type Iqs } from "./account.js";
import { finElement, formElement, parseArchiveQuery } from "./archive.js";
import { archivePage } from "./messages.js";
import { NS, xmppStamp } from "./ns.js";
import { incomingStanza, outgoingStanza } from "./stanzas.js";
import { el, type XmlElement } from "./xml.js";

function prefs(): XmlElement {
  return el("prefs", { xmlns: NS.mam, default: "always" }, el("always"), el("never"));
}

export function registerMam(iq: Iqs, a: Account): void {
  iq.get(NS.mam, "query", forAccount(() => formElement()));
  iq.get(NS.mam, "prefs", forAccount(prefs));
  iq.set(NS.mam, "prefs", forAccount(prefs));
  iq.set(NS.mam, "query", forAccount((q, { session: s }) => {
    // a bad query is refused at once (ArchiveError is a StanzaError); the search itself is asynchronous
    const query = parseArchiveQuery(q);
    return (async () => {
      const page = await archivePage(a.mailbox, query, a.bareJid);
      for (const v of page.items) {
        const ids = v.direction === "out" ? a.store.ids(v.id) : undefined;
        const inner = v.direction === "out" ? outgoingStanza(a, v, a.bareJid, ids?.clientId, ids?.originId) : incomingStanza(a, v, a.bareJid, false);
        inner.attrs.xmlns = NS.client;
        s.sendStanza(
          el(
            "message",
            { from: a.bareJid, to: s.jid, id: a.nextId("mam") },
            el(
              "result",
              { xmlns: NS.mam, queryid: query.queryid, id: v.id },
              el("forwarded", { xmlns: NS.forward }, el("delay", { xmlns: NS.delay, stamp: xmppStamp(v.claimedSentAt) }), inner),
            ),
          ),
        );
      }
      return finElement(page, query.queryid);
    })();
  }));
}
