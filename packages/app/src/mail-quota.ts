// The daily e-mail quota on the laptop: the school's rule (from its directory) and the laptop's own
// messages of the day, counted as the gateway counts them (model/mail-quota.ts).
import { mailsCountedToday } from "@pigeon/model";
import type { Mailbox, MessageView } from "@pigeon/sync";

const DAY_MS = 86_400_000;

/** The person's messages in one direction that reached this laptop since `since` (newest pages first, stopping there). */
async function since(mailbox: Mailbox, direction: "in" | "out", from: number): Promise<MessageView[]> {
  const out: MessageView[] = [];
  for (let before: number | undefined; ; ) {
    const page = await mailbox.messages({ direction, last: true, limit: 200, ...(before !== undefined ? { beforeSeq: before } : {}) });
    out.push(...page.filter((m) => (m.arrivedAt ?? m.claimedSentAt) >= from));
    const oldest = page[0];
    if (page.length < 200 || !oldest || (oldest.arrivedAt ?? oldest.claimedSentAt) < from || oldest.arrivalSeq === undefined) return out;
    before = oldest.arrivalSeq;
  }
}

/** How many e-mails the gateway counts for this person today, from what this laptop holds. */
export async function mailsSentToday(mailbox: Mailbox, now: number): Promise<number> {
  const from = now - 2 * DAY_MS; // a little more than a day: the count itself keeps to the UTC day
  const [written, answers] = await Promise.all([since(mailbox, "out", from), since(mailbox, "in", from)]);
  return mailsCountedToday(written, answers, now);
}
