// Message stanzas from the user's clients. To a contact, a message with a body becomes
// Mailbox.send (and a sent carbon for the user's other clients); between the user's own clients it
// is routed directly, never through Pigeon. Chat states go live to a buddy's laptop connected now
// (chat-states.ts); the client's own receipts stay here (the node writes its own signed receipts); a
// <displayed/> marker becomes a read receipt.
import { MailboxError, type MessageView } from "@pigeon/sync";
import { MAX_MESSAGE_CHARS, MAX_PARTS, splitBody } from "./long-messages.js";
import type { Account } from "./account.js";
import { carbon } from "./carbons.js";
import { chatStateOf } from "./chat-states.js";
import { bareJid, parseJid } from "./jid.js";
import { NS } from "./ns.js";
import { markDisplayed } from "./receipts.js";
import type { Session } from "./session.js";
import { messageError, outgoingStanza } from "./stanzas.js";
import { child, childText, el, type XmlElement } from "./xml.js";

export function clientMessage(a: Account, s: Session, m: XmlElement): void {
  const type = m.attrs.type ?? "normal";
  if (type === "error") return;
  const to = m.attrs.to ? parseJid(m.attrs.to) : undefined;
  if (!to) return; // a message to one's own account with no recipient: nothing to deliver
  const bare = bareJid(to);
  if (bare === a.bareJid) {
    const targets = to.resource ? [a.resources.own(to)].filter((x): x is Session => !!x) : a.resources.available().filter((o) => o !== s);
    if (targets.length === 0 && to.resource) return messageError(s, m, "service-unavailable", "cancel");
    for (const t of targets) t.sendStanza(structuredClone(m));
    return;
  }
  if (type === "groupchat") return messageError(s, m, "service-unavailable", "cancel", `group chat is in the class channels: the rooms of channels.${a.domain}`);
  // typing states go live to the buddy's laptop if it is connected now, and nowhere else
  const state = chatStateOf(m);
  if (state) a.chatStates.fromClient(bare, state);
  const displayed = child(m, "displayed", NS.markers);
  if (displayed?.attrs.id) void markDisplayed(a, bare, displayed.attrs.id);
  const body = childText(m, "body");
  if (body === undefined || body.trim() === "") return;
  const originId = child(m, "origin-id", NS.sid)?.attrs.id;
  const clientId = m.attrs.id;
  const isPrivate = !!child(m, "private", NS.carbons);
  const replace = child(m, "replace", NS.correct)?.attrs.id;
  // the URL of a file the client just uploaded here (XEP-0363): the file itself goes
  const upload = a.files.uploaded(body);
  const parts = splitBody(body);
  if (!parts)
    return messageError(s, m, "not-acceptable", "modify",
      `the message is ${body.length} characters; the longest message is ${MAX_MESSAGE_CHARS} characters (sent as up to ${MAX_PARTS} parts)`);
  const sending = (upload
    ? a.mailbox.sendFile(bare, upload.name, upload.type, upload.bytes).then((v) => (a.files.sent(upload.token, v.id), [v]))
    : replace !== undefined && parts && parts.length === 1 ? correction(a, bare, replace, body) : sendParts(a, bare, parts))
    .then((views) => {
      // the client knows its message by its own id: the first part carries it (receipts, carbons, MAM)
      views.forEach((view, i) => {
        if (i === 0) a.store.rememberIds({ pigeonId: view.id, clientId, originId, resource: s.resource });
        if (isPrivate) return;
        for (const o of a.resources.available()) {
          if (o === s || !o.carbons) continue;
          o.sendStanza(carbon(a, "sent", o, i === 0 ? outgoingStanza(a, view, s.jid, clientId, originId) : outgoingStanza(a, view, s.jid)));
        }
      });
    })
    .catch((e: unknown) => {
      if (e instanceof MailboxError) {
        // XEP-0191 §3.5: a message to someone the user blocked is refused, saying so
        if (e.code === "blocked") return messageError(s, m, "not-acceptable", "cancel", e.message, el("blocked", { xmlns: NS.blockingErrors }));
        const condition = e.code === "unknown-address" ? "item-not-found" : e.code === "storage" ? "resource-constraint" : "not-acceptable";
        return messageError(s, m, condition, e.code === "storage" ? "wait" : "cancel", e.message);
      }
      a.log.warn(`xmpp: could not send a message from ${s.jid}: ${(e as Error).message}`);
      messageError(s, m, "internal-server-error", "wait");
    })
    .finally(() => a.clientSends.delete(sending));
  a.clientSends.add(sending);
}

/**
 * A correction (XEP-0308) of the user's own message to this contact, known by the id its client gave
 * it (or its Pigeon id, as in carbons and the archive). One the Mailbox cannot find, or of a message
 * to someone else, goes as a plain message, as clients without corrections would show it anyway.
 */
async function correction(a: Account, to: string, replaceId: string, body: string): Promise<MessageView[]> {
  const original = await a.mailbox.message(a.store.pigeonIdOf(replaceId) ?? replaceId);
  const toJid = original?.to.length === 1 ? parseJid(original.to[0]!) : undefined;
  if (!original || original.direction !== "out" || !toJid || bareJid(toJid) !== to)
    return sendParts(a, to, [body]);
  return [await a.mailbox.correct(original.id, body)];
}

/**
 * The parts of one long message, handed to the Mailbox at once and in order, as consecutive messages
 * from one client are (so a message the client sends next cannot come between two parts).
 */
function sendParts(a: Account, to: string, parts: string[]): Promise<MessageView[]> {
  return Promise.all(parts.map((p) => a.mailbox.send(to, p)));
}
