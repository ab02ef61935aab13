// Pigeon messages as XMPP message stanzas, the same wherever they are shown (live, offline delivery,
// carbons, MAM), and message errors.
import type { MessageView } from "@pigeon/sync";
import type { Account } from "./account.js";
import { NS, xmppStamp } from "./ns.js";
import type { Session } from "./session.js";
import { el, type XmlElement } from "./xml.js";

/**
 * A message the user wrote. The Pigeon id is the XEP-0359 stanza-id; `clientId`/`originId` are the
 * ones the writing client gave it, so that client recognises its own message.
 */
export function outgoingStanza(a: Account, v: MessageView, from: string, clientId?: string, originId?: string): XmlElement {
  // a correction names the original the way the user's clients know it: by the id its client gave it
  const replaces = v.replaces !== undefined ? (a.store.ids(v.replaces)?.clientId ?? v.replaces) : undefined;
  const url = a.files.urlOf(v);
  return el(
    "message",
    { from, to: v.to[0], type: "chat", id: clientId ?? v.id },
    el("body", {}, url ?? v.body),
    url ? el("x", { xmlns: NS.oob }, el("url", {}, url)) : undefined,
    el("stanza-id", { xmlns: NS.sid, id: v.id, by: a.bareJid }),
    originId ? el("origin-id", { xmlns: NS.sid, id: originId }) : undefined,
    replaces !== undefined ? el("replace", { xmlns: NS.correct, id: replaces }) : undefined,
  );
}

/** A message someone wrote to the user; `delay` stamps it with the author's send time (XEP-0203). */
export function incomingStanza(a: Account, v: MessageView, to: string, delay: boolean): XmlElement {
  // a file or a drawing: its URL on this node, which clients show as the picture (XEP-0066)
  const url = a.files.urlOf(v);
  return el(
    "message",
    { from: v.from, to, type: "chat", id: v.id },
    el("body", {}, url ?? v.body),
    url ? el("x", { xmlns: NS.oob }, el("url", {}, url)) : undefined,
    el("markable", { xmlns: NS.markers }),
    el("stanza-id", { xmlns: NS.sid, id: v.id, by: a.bareJid }),
    el("origin-id", { xmlns: NS.sid, id: v.id }),
    // the author's correction of their own message (checked by the Mailbox), which clients show in its place
    v.replaces !== undefined ? el("replace", { xmlns: NS.correct, id: v.replaces }) : undefined,
    delay ? el("delay", { xmlns: NS.delay, from: a.domain, stamp: xmppStamp(v.claimedSentAt) }, "Offline Storage") : undefined,
  );
}

/** Tells the client that sent `m` that it could not be delivered (`extra`: an application condition). */
export function messageError(s: Session, m: XmlElement, condition: string, type: string, text?: string, extra?: XmlElement): void {
  s.sendStanza(
    el(
      "message",
      { type: "error", id: m.attrs.id, from: m.attrs.to, to: s.jid },
      el("error", { type }, el(condition, { xmlns: NS.stanzas }), text ? el("text", { xmlns: NS.stanzas, "xml:lang": "en" }, text) : undefined, extra),
    ),
  );
}
