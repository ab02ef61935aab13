// Every question the XMPP front door asks about the user's messages, in one place, answered with the
// Mailbox's paged, per-conversation queries (only the segments concerned are loaded). Requests
// (messages from people who are not buddies) never reach XMPP clients: the child decides about them
// with `pigeon requests` first.
import { conversationId, toHex } from "@pigeon/model";
import type { Mailbox, MessageView } from "@pigeon/sync";
import { ArchiveError, queryArchive, type ArchivePage, type ArchiveQuery } from "./archive.js";

const PAGE = 500;

/** The message `id` that `from` (a lower-case bare JID) sent to the user, if it arrived. */
export async function findReceived(mailbox: Mailbox, id: string, from: string): Promise<MessageView | undefined> {
  const v = await mailbox.message(id);
  return v && v.direction === "in" && !hidden(v) && v.from.toLowerCase() === from ? v : undefined;
}

/** The ids of the unread messages received in `upto`'s conversation up to and including it (by the conversation's clock). */
export async function receivedUpTo(mailbox: Mailbox, upto: MessageView): Promise<string[]> {
  const out: string[] = [];
  let afterSeq: number | undefined;
  for (;;) {
    const page = await mailbox.messages({ conversation: upto.conversation, direction: "in", unread: true, afterSeq, limit: PAGE });
    for (const v of page) if (v.hlc <= upto.hlc && !hidden(v)) out.push(v.id);
    if (page.length < PAGE) return out;
    afterSeq = page[page.length - 1]!.arrivalSeq;
  }
}

/** Received messages with these ids, by id (a missing one is not in the map). */
export async function receivedByIds(mailbox: Mailbox, ids: readonly string[]): Promise<Map<string, MessageView>> {
  const out = new Map<string, MessageView>();
  for (const id of new Set(ids)) {
    const v = await mailbox.message(id);
    if (v && v.direction === "in" && !hidden(v)) out.set(id, v);
  }
  return out;
}

/** Received messages whose arrival number is above `arrivalSeq`, in arrival order, and the highest arrival number seen. */
export async function receivedAfter(mailbox: Mailbox, arrivalSeq: number): Promise<{ messages: MessageView[]; highest: number }> {
  const messages: MessageView[] = [];
  let highest = arrivalSeq;
  for (;;) {
    const page = await mailbox.messages({ direction: "in", afterSeq: highest, limit: PAGE });
    messages.push(...page.filter((v) => !hidden(v)));
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
  return conversationArchive(mailbox, query, own, conversation, hidden);
}

/**
 * One page of one conversation's archive (all of them with `conversation` undefined), without the
 * messages `hide` says; also a class channel's archive for its room (muc.ts), where `own` is the room.
 */
export async function conversationArchive(
  mailbox: Mailbox, query: ArchiveQuery, own: string, conversation: string | undefined, hide: (v: MessageView) => boolean,
): Promise<ArchivePage> {
  if (query.start === undefined && query.end === undefined) return pagedArchive(mailbox, query, conversation, hide);
  const all: MessageView[] = [];
  for (let afterSeq = 0; ; ) {
    const page = await mailbox.messages({ conversation, afterSeq, limit: PAGE });
    all.push(...page.filter((v) => !hide(v)));
    if (page.length < PAGE) break;
    afterSeq = page[page.length - 1]!.arrivalSeq ?? afterSeq;
  }
  return queryArchive(all, query, own);
}

/**
 * A page without time filters (what clients ask: the last page when a chat opens, then before/after
 * an id): only the page's messages are loaded, through the Mailbox's arrival-ordered index, so it
 * costs the same with 50 messages stored or 50,000 (issue 21: loading the whole archive for the last
 * 50 of 2,140 took 0.3-0.6 s). The total (`<count/>`) and the first item's index are left out: RSM
 * makes them optional, and counting would mean loading everything again.
 */
async function pagedArchive(mailbox: Mailbox, q: ArchiveQuery, conversation: string | undefined, hide: (v: MessageView) => boolean): Promise<ArchivePage> {
  const seqOf = async (id: string): Promise<number> => {
    const v = await mailbox.message(id);
    if (!v || hide(v) || v.arrivalSeq === undefined || (conversation !== undefined && v.conversation !== conversation))
      throw new ArchiveError("item-not-found", `no message ${id} in the archive`);
    return v.arrivalSeq;
  };
  const afterSeq = q.after ? await seqOf(q.after) : undefined;
  const shown = (page: MessageView[]) => page.filter((v) => !hide(v));
  let items: MessageView[] = [];
  let complete: boolean;
  if (q.before !== undefined) {
    // the newest first, backwards from `before` (or from the end), never past `after`; one more than
    // wanted tells whether anything older is left
    let beforeSeq = q.before ? await seqOf(q.before) : undefined;
    for (;;) {
      const want = q.max - items.length;
      const page = await mailbox.messages({ conversation, afterSeq, beforeSeq, last: true, limit: want + 1 });
      const older = page.length > want;
      const taken = older ? page.slice(1) : page;
      items = [...shown(taken), ...items];
      complete = !older;
      if (!older || items.length >= q.max) break;
      beforeSeq = taken[0]!.arrivalSeq; // some were requests (never shown): further back
    }
  } else {
    let seq = afterSeq;
    for (;;) {
      const want = q.max - items.length;
      const page = await mailbox.messages({ conversation, afterSeq: seq, limit: want + 1 });
      const more = page.length > want;
      const taken = more ? page.slice(0, want) : page;
      items.push(...shown(taken));
      complete = !more;
      if (!more || items.length >= q.max) break;
      seq = taken[taken.length - 1]!.arrivalSeq;
    }
  }
  return { items, complete, first: items[0]?.id, last: items[items.length - 1]?.id };
}

/**
 * Not shown as one-to-one chat: requests (waiting for the child's decision) and messages of class
 * channels, which are not chats with their author (group chat, XEP-0045, is not served yet).
 */
export function hidden(v: MessageView): boolean {
  return v.request === true || v.channel !== undefined;
}
