// Every question the XMPP front door asks about the user's messages, in one place, answered with the
// Mailbox's paged, per-conversation queries (only the segments concerned are loaded). Requests
// (messages from people who are not buddies) never reach XMPP clients: the child decides about them
// with `pigeon requests` first.
import { conversationId, toHex } from "@pigeon/model";
import type { Mailbox, MessageView } from "@pigeon/sync";
import { queryArchive, type ArchivePage, type ArchiveQuery } from "./archive.js";

const PAGE = 500;

/** The message `id` that `from` (a lower-case bare JID) sent to the user, if it arrived. */
export async function findReceived(mailbox: Mailbox, id: string, from: string): Promise<MessageView | undefined> {
  const v = await mailbox.message(id);
  return v && v.direction === "in" && !v.request && v.from.toLowerCase() === from ? v : undefined;
}

/** The ids of the unread messages received in `upto`'s conversation up to and including it (by the conversation's clock). */
export async function receivedUpTo(mailbox: Mailbox, upto: MessageView): Promise<string[]> {
  const out: string[] = [];
  let afterSeq: number | undefined;
  for (;;) {
    const page = await mailbox.messages({ conversation: upto.conversation, direction: "in", unread: true, afterSeq, limit: PAGE });
    for (const v of page) if (v.hlc <= upto.hlc && !v.request) out.push(v.id);
    if (page.length < PAGE) return out;
    afterSeq = page[page.length - 1]!.arrivalSeq;
  }
}

/** Received messages with these ids, by id (a missing one is not in the map). */
export async function receivedByIds(mailbox: Mailbox, ids: readonly string[]): Promise<Map<string, MessageView>> {
  const out = new Map<string, MessageView>();
  for (const id of new Set(ids)) {
    const v = await mailbox.message(id);
    if (v && v.direction === "in" && !v.request) out.set(id, v);
  }
  return out;
}

/** Received messages whose arrival number is above `arrivalSeq`, in arrival order, and the highest arrival number seen. */
export async function receivedAfter(mailbox: Mailbox, arrivalSeq: number): Promise<{ messages: MessageView[]; highest: number }> {
  const messages: MessageView[] = [];
  let highest = arrivalSeq;
  for (;;) {
    const page = await mailbox.messages({ direction: "in", afterSeq: highest, limit: PAGE });
    messages.push(...page.filter((v) => !v.request));
    if (page.length) highest = page[page.length - 1]!.arrivalSeq ?? highest;
    if (page.length < PAGE) return { messages, highest };
  }
}

/**
 * One page of the archive (sent and received messages in arrival order); throws ArchiveError. A query
 * `with` a contact (what clients ask when they open a chat) loads only that conversation; MAM's other
 * filters (start/end, before/after an id, the count) are applied by queryArchive over what is loaded.
 */
export async function archivePage(mailbox: Mailbox, query: ArchiveQuery, own: string): Promise<ArchivePage> {
  let conversation: string | undefined;
  if (query.with && query.with !== own) {
    let contact;
    try {
      contact = mailbox.resolve(query.with);
    } catch {
      return queryArchive([], query, own); // nobody by that address: an empty archive with them
    }
    conversation = toHex(conversationId([mailbox.me, contact.signPublicKey]));
  }
  const all: MessageView[] = [];
  for (let afterSeq = 0; ; ) {
    const page = await mailbox.messages({ conversation, afterSeq, limit: PAGE });
    all.push(...page.filter((v) => !v.request));
    if (page.length < PAGE) break;
    afterSeq = page[page.length - 1]!.arrivalSeq ?? afterSeq;
  }
  return queryArchive(all, query, own);
}
