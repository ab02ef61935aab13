// The archive IQs (XEP-0313): the query form, preferences (always archive: Pigeon keeps every
// message anyway), and queries, answered with one <message><result/></message> per archived message
// and then the <fin/> result. What is found and in which order is archive.ts's business.
import { forAccount, type Account, type Iqs } from "./account.js";
import { finElement, formElement, parseArchiveQuery } from "./archive.js";
import { archivePage } from "./messages.js";
import { NS, xmppStamp } from "./ns.js";
import { incomingStanza, outgoingStanza } from "./stanzas.js";
import { el, type XmlElement } from "./xml.js";
import type { MessageView } from "@pigeon/sync";
import type { Session } from "./session.js";

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
      archiveResults(a, s, a.bareJid, query.queryid, page.items, (v) => {
        const ids = v.direction === "out" ? a.store.ids(v.id) : undefined;
        return v.direction === "out" ? outgoingStanza(a, v, a.bareJid, ids?.clientId, ids?.originId) : incomingStanza(a, v, a.bareJid, false);
      });
      return finElement(page, query.queryid);
    })();
  }));
}

/** Sends one XEP-0313 result message per archived message, from the archive `from` (the account, or a room). */
export function archiveResults(a: Account, s: Session, from: string, queryid: string | undefined, items: MessageView[], stanza: (v: MessageView) => XmlElement): void {
  for (const v of items) {
    const inner = stanza(v);
    inner.attrs.xmlns = NS.client;
    s.sendStanza(
      el(
        "message",
        { from, to: s.jid, id: a.nextId("mam") },
        el(
          "result",
          { xmlns: NS.mam, queryid, id: v.id },
          el("forwarded", { xmlns: NS.forward }, el("delay", { xmlns: NS.delay, stamp: xmppStamp(v.claimedSentAt) }), inner),
        ),
      ),
    );
  }
}
