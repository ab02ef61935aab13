// The school's daily e-mail quota, counted on a laptop from its own conversation with the gateway, so
// that a child over it is told at once, offline ("over today's quota"), instead of after a trip to the
// gateway. The gateway still counts and decides: this is the same count made from what the laptop
// holds (its mails of the day, and the gateway's answers that say which were never counted).
import type { GatewayRules, MailWriter } from "./gateway-rules.js";
import { parseMailRequest, parseMailStatus } from "./gateway-mail.js";

/** The day (UTC, as the gateway counts) of a time in ms. */
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * How many of `written` (the person's messages to the gateway) the gateway counts for the day of
 * `now`: mail requests written that day, except those its answers (`answers`, its messages back)
 * refused before counting them (not allowed, over the quota). A mail a teacher refused after it
 * waited was counted, as the gateway does. "That day" is by the author's clock: close to midnight
 * the laptop and the gateway may disagree, and the gateway's word holds.
 */
export function mailsCountedToday(
  written: readonly { id: string; body: string; claimedSentAt: number }[],
  answers: readonly { body: string }[],
  now: number,
): number {
  const uncounted = new Set<string>();
  for (const a of answers) {
    const s = parseMailStatus(a.body);
    if (s?.state === "refused" && !s.note.startsWith("not sent: a teacher")) uncounted.add(s.for);
  }
  const today = day(now);
  return written.filter((m) => day(m.claimedSentAt) === today && !uncounted.has(m.id) && parseMailRequest(m.body).ok).length;
}

/** Whether one more mail today stays within the school's quota for this person, and why not. */
export function withinQuota(rules: GatewayRules, who: Pick<MailWriter, "role">, sentToday: number): { ok: true } | { ok: false; reason: string } {
  const limit = who.role === "teacher" ? rules.teachers.perDay : rules.students.perDay;
  if (sentToday < limit) return { ok: true };
  return { ok: false, reason: `over today's quota: you already sent ${sentToday} e-mail${sentToday === 1 ? "" : "s"} today, and your school allows ${limit} a day` };
}
