// Pigeon's messages to the user's clients. Everything that reaches this laptop is queued in xmpp.db
// until a client takes it (offline delivery, XEP-0160): shown at once to the available clients, sent
// to the others at their initial presence or stream resumption with the author's send time
// (XEP-0203), and dropped from the queue when acked (XEP-0198) or written.
import type { MessageView } from "@pigeon/sync";
import type { Account } from "./account.js";
import { carbon } from "./carbons.js";
import { hidden, receivedAfter, receivedByIds } from "./messages.js";
import { receiptStanza } from "./receipts.js";
import type { Session } from "./session.js";
import { incomingStanza, outgoingStanza } from "./stanzas.js";

const WATERMARK = "arrival-watermark";
/** A message that reached this laptop this long after it was written is shown with its original time. */
const LATE_MS = 60_000;

/** Messages that arrived while the XMPP server was not running are queued for the clients at start. */
export async function catchUp(a: Account): Promise<void> {
  const mark = Number(a.store.meta(WATERMARK) ?? 0);
  const { messages, highest } = await receivedAfter(a.mailbox, mark);
  for (const v of messages) a.store.addPending("message", v.id, "", v.arrivedAt ?? a.now());
  if (highest > mark) a.store.setMeta(WATERMARK, String(highest));
}

/** A message was written or arrived (the Mailbox `message` event). */
export function pigeonMessage(a: Account, v: MessageView): void {
  // requests wait for the child's decision (pigeon requests); channel messages are no one-to-one chat
  if (a.isClosed() || hidden(v)) return;
  if (v.direction === "out") {
    // written by `pigeon send` (not by a client of ours)? show it to the clients as a sent carbon;
    // a client's own message has its ids remembered once Mailbox.send resolves (after its group
    // commit, later than this event), hence the wait for every client send under way
    setImmediate(() => void Promise.allSettled([...a.clientSends]).then(() => {
      if (a.isClosed() || a.store.ids(v.id)) return;
      for (const o of a.resources.available()) if (o.carbons) o.sendStanza(carbon(a, "sent", o, outgoingStanza(a, v, a.bareJid)));
    }));
    return;
  }
  const seq = a.store.db.transaction(() => {
    const added = a.store.addPending("message", v.id, "", v.arrivedAt ?? a.now());
    if (v.arrivalSeq !== undefined && v.arrivalSeq > Number(a.store.meta(WATERMARK) ?? 0)) a.store.setMeta(WATERMARK, String(v.arrivalSeq));
    return added;
  })();
  if (seq === undefined) return;
  const late = v.arrivedAt !== undefined && v.arrivedAt - v.claimedSentAt > LATE_MS;
  for (const s of a.resources.available()) s.sendStanza(incomingStanza(a, v, s.jid, late), seq);
}

/** Everything `s` has not taken yet, with delay stamps. */
export async function flushPending(a: Account, s: Session): Promise<void> {
  const items = a.store.pending().filter((p) => !s.inFlight.has(p.seq));
  if (items.length === 0) return;
  const views = await receivedByIds(a.mailbox, items.filter((p) => p.kind === "message").map((p) => p.pigeonId));
  for (const p of items) {
    if (s.isEnded || !s.available) return;
    if (p.kind === "message") {
      const v = views.get(p.pigeonId);
      if (!v) {
        a.store.donePending(p.seq);
        continue;
      }
      s.sendStanza(incomingStanza(a, v, s.jid, true), p.seq);
    } else {
      s.sendStanza(receiptStanza(a, p, s.jid), p.seq);
    }
  }
}
