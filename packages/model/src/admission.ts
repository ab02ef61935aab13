// What a participant does with an envelope addressed to it: every check, in order, before anything
// reaches Automerge. Pure: the caller supplies what it already knows.
import { equalBytes, toHex } from "./bytes.js";
import { buddyListConversation, checkPersonalChange } from "./buddy-list.js";
import { checkChange, conversationId, segmentKind } from "./conversation.js";
import { inEpochSegments } from "./channel.js";
import { checkPersonalDraftsChange, DRAFTS_SEGMENT } from "./drafts.js";
import { decodeEnvelope, Envelope, EnvelopeError, EnvelopeKind, openChange, openKeyEnvelope, signerOf, verifyEnvelope } from "./envelope.js";
import type { Identity } from "./identity.js";
import type { DecodedChange } from "@automerge/automerge";

export interface AdmissionContext {
  me: Identity;
  /** Members of the conversation, once known from a key envelope. */
  members?: Uint8Array[];
  /** Conversation keys by hex key id. */
  keys: ReadonlyMap<string, Uint8Array>;
  /** True if this exact envelope was already opened. */
  alreadyOpened(id: Uint8Array): boolean;
  /** True if the Automerge change with this hash is already in the document. */
  changeKnown(hash: string): boolean;
  /** Why a device key may no longer sign (revoked by its person or the school), or undefined. */
  revoked?(device: Uint8Array): string | undefined;
  /**
   * Set when the conversation is a channel (channel.ts): its members are not fixed by its id but by
   * the membership ops; each key is sealed to one member list (an epoch), and a change must be
   * addressed to exactly the members of the key it is sealed with.
   */
  channel?: {
    /** Whether the channel is known here yet (its membership ops opened); if not, its envelopes wait. */
    known: boolean;
    /** Was this person ever in the channel (a key envelope may name only such people)? */
    everMember(person: Uint8Array): boolean;
    /**
     * Did the channel ever have exactly these members, as some laptop could have folded them (its
     * ops closed under parents)? A key is sealed to the list its maker folded (channelMemberLists).
     */
    wasMemberList?(people: Uint8Array[]): boolean;
    /** The members a key (by hex key id) was sealed to: its key envelope's author and recipients. */
    keyMembers(keyIdHex: string): Uint8Array[] | undefined;
  };
}

export type Admission =
  /** `receiptTargets`: checked against the document before the change is applied (conversation.ts, checkReceiptTargets). */
  | { status: "change"; envelope: Envelope; change: Uint8Array; decoded: DecodedChange; receiptTargets: string[]; flatReceipts: string[] }
  | { status: "key"; envelope: Envelope; key: Uint8Array; members: Uint8Array[]; authorSealPublicKey: Uint8Array; authorClaims?: { name: string; home: string } }
  | { status: "pending"; envelope: Envelope; reason: string }
  | { status: "rejected"; envelope?: Envelope; reason: string };

function sameSet(a: Uint8Array[], b: Uint8Array[]): boolean {
  return a.length === b.length && a.every((x) => b.some((y) => equalBytes(x, y)));
}

export function admitEnvelope(input: Uint8Array | Envelope, ctx: AdmissionContext): Admission {
  let env: Envelope;
  try {
    env = input instanceof Uint8Array ? decodeEnvelope(input) : input;
  } catch (e) {
    if (e instanceof EnvelopeError) return { status: "rejected", reason: e.reason };
    throw e;
  }
  if (!verifyEnvelope(env))
    return { status: "rejected", envelope: env, reason: env.device ? "forged signature or device certificate" : "forged signature" };
  // the device that signed (on a person's first device, the person key itself: the school may revoke that laptop)
  const why = ctx.revoked?.(signerOf(env));
  if (why) return { status: "rejected", envelope: env, reason: `signed by a revoked device (${why})` };
  if (env.kind === EnvelopeKind.Statement) return { status: "rejected", envelope: env, reason: "statements are not opened as conversation envelopes" };
  if (ctx.alreadyOpened(env.id)) return { status: "rejected", envelope: env, reason: "replayed envelope (already opened)" };
  if (env.kind === EnvelopeKind.Ack) return { status: "rejected", envelope: env, reason: "acknowledgements are not opened" };
  const claimed = [env.author, ...env.recipients];
  const channel = ctx.channel;
  if (channel && !channel.known) return { status: "pending", envelope: env, reason: "channel membership not received yet" };
  if (env.kind === EnvelopeKind.Key && channel) {
    const stranger = claimed.find((k) => !channel.everMember(k));
    // the add that names them may not have arrived yet (ops travel separately): wait for it
    if (stranger) return { status: "pending", envelope: env, reason: "channel key sealed to someone not (yet) known to be in the channel" };
    // e.g. a removed member's key for themselves and those added after their removal; an honest key
    // whose ops have not all arrived here waits for them, so this waits too (and expires)
    if (channel.wasMemberList && !channel.wasMemberList(claimed))
      return { status: "pending", envelope: env, reason: "channel key sealed to people who were never the channel's members together (as far as the ops held here say)" };
    const opened = openKeyEnvelope(env, ctx.me);
    if (!opened) return { status: "rejected", envelope: env, reason: "key envelope does not open for us" };
    return { status: "key", envelope: env, key: opened.key, members: claimed, authorSealPublicKey: opened.authorSealPublicKey, authorClaims: opened.authorClaims };
  }
  if (channel) {
    // the members of the epoch the change is sealed in: a message written before a removal (that
    // crossed it in transit) is still read by the members it was written for
    const epoch = channel.keyMembers(toHex(env.keyId));
    if (!epoch) return { status: "pending", envelope: env, reason: "channel key not received yet" };
    if (!inEpochSegments(env.segment, env.keyId)) return { status: "rejected", envelope: env, reason: "change sealed with one epoch's key for another epoch's document" };
    ctx = { ...ctx, members: epoch };
  }
  if (env.kind === EnvelopeKind.Key) {
    if (!equalBytes(conversationId(claimed), env.conversation)) {
      // a key addressed to us in a conversation not known here may be a channel's whose membership has
      // not arrived yet: it waits (within the per-author budget for what cannot be opened, and its
      // lifetime); in a known conversation, or the person's own, it is a forgery
      const maybeChannel = !ctx.members && !equalBytes(env.conversation, buddyListConversation(ctx.me.person)) && env.recipients.some((r) => equalBytes(r, ctx.me.person));
      if (maybeChannel) return { status: "pending", envelope: env, reason: "key envelope's members do not match its conversation id (a channel not known here yet?)" };
      return { status: "rejected", envelope: env, reason: "key envelope's members do not match its conversation id" };
    }
    const opened = openKeyEnvelope(env, ctx.me);
    if (!opened) return { status: "rejected", envelope: env, reason: "key envelope does not open for us" };
    return { status: "key", envelope: env, key: opened.key, members: claimed, authorSealPublicKey: opened.authorSealPublicKey, authorClaims: opened.authorClaims };
  }
  if (!ctx.members) return { status: "pending", envelope: env, reason: "conversation key not received yet" };
  if (!ctx.members.some((m) => equalBytes(m, env.author)))
    return { status: "rejected", envelope: env, reason: "signer is not a member of the conversation" };
  if (!sameSet(claimed, ctx.members))
    return { status: "rejected", envelope: env, reason: "recipients do not match the conversation's members" };
  const key = ctx.keys.get(toHex(env.keyId));
  if (!key) return { status: "pending", envelope: env, reason: "conversation key not received yet" };
  const change = openChange(env, key);
  if (!change) return { status: "rejected", envelope: env, reason: "ciphertext does not open (tampered or wrong key)" };
  // the person's own conversation holds two documents, each with its own rule: the buddy list
  // (segment 0, buddy-list.ts) and drafts (segment DRAFTS_SEGMENT, drafts.ts); every other
  // conversation has the conversation rule (append messages, add one's own receipts)
  const personal = equalBytes(env.conversation, buddyListConversation(ctx.me.person));
  if (personal && env.segment !== 0 && env.segment !== DRAFTS_SEGMENT)
    return { status: "rejected", envelope: env, reason: `the person's own conversation holds the buddy list (segment 0) and drafts (segment ${DRAFTS_SEGMENT}) only` };
  const verdict = !personal ? checkChange(change, env.author, signerOf(env), segmentKind(env.segment))
    : env.segment === DRAFTS_SEGMENT ? checkPersonalDraftsChange(change, ctx.me.person, env.author, signerOf(env))
    : checkPersonalChange(change, ctx.me.person, env.author, signerOf(env));
  if (!verdict.ok) return { status: "rejected", envelope: env, reason: verdict.reason };
  if (ctx.changeKnown(verdict.change.hash))
    return { status: "rejected", envelope: env, reason: "replayed change (already in the document)" };
  // only a conversation's change sets receipts (the buddy list and drafts have none)
  const sets = verdict as { receiptTargets?: string[]; flatReceipts?: string[] };
  return { status: "change", envelope: env, change, decoded: verdict.change, receiptTargets: sets.receiptTargets ?? [], flatReceipts: sets.flatReceipts ?? [] };
}
