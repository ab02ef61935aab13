// Receipts (XEP-0184) and chat markers (XEP-0333), never invented: Pigeon's signed "delivered"
// receipt from the other laptop becomes <received/>, its "read" receipt <displayed/>, and a client's
// <displayed/> becomes the user's own signed read receipt. Both kinds wait in the offline queue like
// messages, and name the id the sender's client gave its message.
import type { ReceiptEvent } from "@pigeon/sync";
import type { Account } from "./account.js";
import { findReceived, receivedUpTo } from "./messages.js";
import { NS } from "./ns.js";
import type { PendingItem } from "./store.js";
import { el, type XmlElement } from "./xml.js";

export function receiptStanza(a: Account, item: PendingItem, to: string): XmlElement {
  const id = a.store.ids(item.pigeonId)?.clientId ?? item.pigeonId;
  return el(
    "message",
    { from: item.reader, to, type: "chat", id: a.nextId(item.kind) },
    item.kind === "received" ? el("received", { xmlns: NS.receipts, id }) : el("displayed", { xmlns: NS.markers, id }),
    el("store", { xmlns: NS.hints }),
  );
}

/** A receipt for one of the user's messages came back (the Mailbox `receipt` event). */
export function pigeonReceipt(a: Account, r: ReceiptEvent): void {
  const reader = r.reader.toLowerCase();
  if (a.isClosed() || reader === a.bareJid) return;
  const kind = r.state === "delivered" ? "received" : "displayed";
  const seq = a.store.addPending(kind, r.messageId, reader, r.at);
  if (seq === undefined) return;
  const item: PendingItem = { seq, kind, pigeonId: r.messageId, reader, at: r.at };
  for (const s of a.resources.available()) s.sendStanza(receiptStanza(a, item, s.jid), seq);
}

/** A client's "displayed up to here" (XEP-0333) becomes Pigeon's signed read receipt for those messages. */
export async function markDisplayed(a: Account, from: string, id: string): Promise<void> {
  try {
    const upto = await findReceived(a.mailbox, id, from);
    if (!upto) return;
    await a.mailbox.markRead(await receivedUpTo(a.mailbox, upto));
  } catch (e) {
    a.log.warn(`xmpp: could not mark ${id} read: ${(e as Error).message}`);
  }
}
