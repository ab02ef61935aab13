// A per-member budget in a class channel: how many changes one author may have a laptop take in one
// key epoch of a channel. Every member's laptop keeps and passes on the channel's envelopes, so
// without it one child posting thousands of messages would fill every classmate's disk and every
// contact's time; with it the excess is refused where it arrives (with the reason in the log), and
// the others' messages still travel. The budget counts changes applied to the channel's documents,
// which happens in the author's own order (a change waits for the ones it builds on): so every laptop
// takes the same first ones, and what the others write on top of them opens everywhere. Carriers
// outside the channel cannot see the author of a sealed envelope: for them the per-source carrier
// budget holds (carrier.ts).
import { channelSegmentBase, EnvelopeKind, equalBytes, SEGMENTS_PER_EPOCH, toHex, type Envelope } from "@pigeon/model";
import { prepared } from "../statements.js";
import type { Channels } from "./channels.js";
import type { MailboxCore } from "./core.js";

/** Why this change of a channel is over its author's budget here, or undefined if it is within it. */
export function channelBudgetRefusal(core: MailboxCore, channels: Channels, env: Envelope): string | undefined {
  if (env.kind !== EnvelopeKind.Change || equalBytes(env.author, core.me)) return undefined;
  if (!channels.isChannel(env.conversation)) return undefined;
  const l = core.limits;
  // the owner and admins write to the whole class (lessons, homework): a larger budget, still bounded
  const st = channels.state(env.conversation);
  const admin = st?.members.some((m) => m.admin && equalBytes(m.key, env.author)) ?? false;
  const most = admin ? l.channelAdminPerEpoch : l.channelMemberPerEpoch;
  const base = channelSegmentBase(env.keyId);
  const taken = prepared(
    core.envelopes.db,
    `SELECT count(*) FROM envelopes e JOIN opened o ON o.envelope = e.id
       WHERE e.author = ? AND e.carried = 0 AND e.conversation = ? AND e.kind = ${EnvelopeKind.Change}
         AND e.segment >= ? AND e.segment < ? AND o.status = 'applied'`,
  )
    .pluck()
    .get(env.author, env.conversation, base, base + SEGMENTS_PER_EPOCH) as number;
  if (taken < most) return undefined;
  const where = `channel ${st?.title ?? toHex(env.conversation).slice(0, 12)}`;
  return `over the channel budget: ${core.addressOf(env.author)} already has ${taken} changes in ${where} (at most ${most} per member${admin ? " for an admin" : ""} and key)`;
}

/**
 * Once an author's budget in an epoch is used up, every other change of theirs held for it would be
 * refused when opened: those waiting here (for earlier ones, refused or not yet come) go now, so
 * what is kept of them stays within the budget. Returns their ids.
 */
export function overBudgetWaiting(core: MailboxCore, env: Envelope): Uint8Array[] {
  const base = channelSegmentBase(env.keyId);
  const ids = prepared(
    core.envelopes.db,
    `SELECT e.id FROM envelopes e LEFT JOIN opened o ON o.envelope = e.id
       WHERE e.author = ? AND e.carried = 0 AND e.conversation = ? AND e.kind = ${EnvelopeKind.Change}
         AND e.segment >= ? AND e.segment < ? AND (o.status IS NULL OR o.status = 'pending')`,
  )
    .pluck()
    .all(env.author, env.conversation, base, base + SEGMENTS_PER_EPOCH) as Buffer[];
  return ids.map((b) => new Uint8Array(b)).filter((id) => !equalBytes(id, env.id));
}
