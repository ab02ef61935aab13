// Every question the XMPP front door asks about the user's messages, in one place. Today each one
// reads the whole inbox (and outbox) from the Mailbox; when the Mailbox gains paged, per-conversation
// queries, only this file changes.
import type { Mailbox, MessageView } from "@pigeon/sync";
import { queryArchive, type ArchivePage, type ArchiveQuery } from "./archive.js";

/** The message `id` that `from` (a lower-case bare JID) sent to the user, if it arrived. */
export async function findReceived(mailbox: Mailbox, id: string, from: string): Promise<MessageView | undefined> {
  return (await mailbox.inbox()).find((v) => v.id === id && v.from.toLowerCase() === from);
}

/** The ids of the messages received in `upto`'s conversation up to and including it. */
export async function receivedUpTo(mailbox: Mailbox, upto: MessageView): Promise<string[]> {
  return (await mailbox.inbox()).filter((v) => v.conversation === upto.conversation && v.hlc <= upto.hlc).map((v) => v.id);
}

/** Received messages with these ids, by id (a missing one is not in the map). */
export async function receivedByIds(mailbox: Mailbox, ids: readonly string[]): Promise<Map<string, MessageView>> {
  const wanted = new Set(ids);
  return new Map((await mailbox.inbox()).filter((v) => wanted.has(v.id)).map((v) => [v.id, v]));
}

/** Received messages whose arrival number is above `arrivalSeq`, in the Mailbox's order, and the highest arrival number seen. */
export async function receivedAfter(mailbox: Mailbox, arrivalSeq: number): Promise<{ messages: MessageView[]; highest: number }> {
  let highest = arrivalSeq;
  const messages: MessageView[] = [];
  for (const v of await mailbox.inbox()) {
    const seq = v.arrivalSeq ?? 0;
    if (seq > arrivalSeq) messages.push(v);
    if (seq > highest) highest = seq;
  }
  return { messages, highest };
}

/** One page of the archive (sent and received messages in arrival order); throws ArchiveError. */
export async function archivePage(mailbox: Mailbox, query: ArchiveQuery, own: string): Promise<ArchivePage> {
  const all = [...(await mailbox.inbox()), ...(await mailbox.outbox())];
  return queryArchive(all, query, own);
}
