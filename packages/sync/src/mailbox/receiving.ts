// Taking envelopes from peers. Everything is checked before it is stored: envelopes for this user
// are opened at once (within a per-author budget for those that cannot be opened yet); others are
// carried within the carrier limits; acknowledgements drop the copies they confirm.
import {
  decodeBetweenVillages, decodeEnvelope, decodeInner, decodeReceipt, decodeSealed, envelopeForm, equalBytes, EnvelopeError, EnvelopeKind, isAddressedTo, isChannelStatement, openSealed, signerOf, toHex,
  verifyEnvelope, sha256, type Envelope, type Receipt, type BetweenVillages, type ReceiptEntry, type SealedEnvelope,
} from "@pigeon/model";
import { opaque, storable, type HeldEnvelope } from "../envelope-store.js";
import type { Carrier } from "./carrier.js";
import type { Channels } from "./channels.js";
import { channelBudgetRefusal } from "./channel-budget.js";
import type { Devices } from "./devices.js";
import type { MailboxCore } from "./core.js";
import type { Opening } from "./opening.js";
import type { Receipts } from "./receipts.js";
import type { School } from "./school.js";
import type { Incoming, ReceiveResult } from "./types.js";

interface Admitted {
  /** The signed envelope (a statement, or the one inside a sealed envelope of ours); none for what is only carried. */
  env?: HeldEnvelope;
  /** What was stored (what travels). */
  id: Uint8Array;
  party: boolean;
  evicted: number;
  /** A receipt's entries: the locks they open. */
  receipt?: ReceiptEntry[];
  /** Transfers the receipt took to get here (1: straight from the laptop that wrote it). */
  hops?: number;
  /** For the user, from someone they blocked: carried, never opened. */
  blocked?: boolean;
}

/** Copy tokens mail for this village starts with here once a relay point took it out of kind 7 (an author's). */
const ARRIVED_COPIES = 64;

export class Receiving {
  private readonly refusals = new Map<string, number>();

  constructor(
    private readonly core: MailboxCore,
    private readonly carrier: Carrier,
    private readonly opening: Opening,
    private readonly receipts: Receipts,
    private readonly devices: Devices,
    private readonly school: School,
    private readonly channels: Channels,
  ) {}

  /**
   * Takes a batch of envelopes (a burst from one link) with one store transaction, so a contact that
   * moves thousands of envelopes pays one fsync per batch, not per envelope. Nothing is announced,
   * acknowledged or opened before the batch is committed; if the batch cannot be written (disk full),
   * each envelope is tried on its own, so one that fits still gets in.
   */
  receiveMany(items: Incoming[]): Promise<ReceiveResult[]> {
    const { core } = this;
    return core.serial(async () => {
      // what admit() stored counts only once its transaction committed (a full disk fails the commit)
      const stored: Admitted[] = [];
      const attempt = (batch: Incoming[]): ReceiveResult[] => {
        const admitted: Admitted[] = [];
        const results = core.envelopes.batch(() => batch.map((it) => this.admit(it, admitted)));
        stored.push(...admitted);
        return results;
      };
      let results: ReceiveResult[];
      try {
        results = attempt(items);
      } catch (e) {
        results =
          items.length === 1
            ? [this.storeFailed(items[0]!, e)]
            : items.map((it) => {
                try {
                  return attempt([it])[0]!;
                } catch (e2) {
                  return this.storeFailed(it, e2);
                }
              });
      }
      if (stored.length) core.storageWorks();
      for (const a of stored) await this.afterStore(a);
      // batches queue up behind each other: let pings and other links in between
      if (items.length > 16) await new Promise<void>((r) => setImmediate(r));
      return results;
    });
  }

  /** Says why an envelope was refused, without letting a flood of junk flood the log too. */
  private refused(from: string | undefined, env: { id: Uint8Array } | undefined, reason: string): ReceiveResult {
    const key = `${from ?? "?"}|${reason}`;
    const n = (this.refusals.get(key) ?? 0) + 1;
    if (this.refusals.size > 10_000) this.refusals.clear();
    this.refusals.set(key, n);
    if (n <= 3 || Number.isInteger(Math.log10(n)))
      this.core.log.warn(
        `refused ${env ? `envelope ${toHex(env.id).slice(0, 12)}` : "an envelope"}${from ? ` from ${from}` : ""}: ${reason}` +
          (n > 3 ? ` (${n} such refusals so far)` : ""),
      );
    return { stored: false, refused: reason };
  }

  private storeFailed(it: Incoming, e: unknown): ReceiveResult {
    const reason = this.core.storageFailed(e);
    let id = "an envelope";
    try {
      id = `envelope ${toHex(sha256(it.bytes)).slice(0, 12)}`;
    } catch {
      // it was refused before it could fail to store
    }
    this.core.log.warn(`could not store ${id}${it.from ? ` from ${it.from}` : ""}: ${reason}; it will be fetched again`);
    return { stored: false, refused: reason, retry: true };
  }

  /** Checks one envelope and stores it (inside the caller's transaction); side effects come in afterStore. */
  private admit(it: Incoming, stored: Admitted[]): ReceiveResult {
    const { core } = this;
    const { from, source } = it;
    const l = core.limits;
    const form = envelopeForm(it.bytes);
    if (form === "receipt") return this.admitReceipt(it, stored);
    if (form === "between") return this.admitBetween(it, stored);
    let env: HeldEnvelope;
    if (form === "sealed") {
      let sealed: SealedEnvelope;
      try {
        sealed = decodeSealed(it.bytes);
      } catch (e) {
        return this.refused(from, undefined, e instanceof EnvelopeError ? e.reason : String(e));
      }
      if (core.envelopes.has(sealed.id)) return { stored: false };
      if (core.envelopes.wasDelivered(sealed.id)) return this.refused(from, sealed, "replayed: already delivered, its copy was dropped");
      // one X25519 per sealing key of the person: a tag that matches says it is ours
      const opened = openSealed(sealed, core.sealingKeys());
      if (opened === "not-ours") return this.carry(it, sealed, stored);
      if (opened === "broken") {
        core.envelopes.forget(sealed.id, "refused", core.now());
        return this.refused(from, sealed, "sealed to this person but it does not open (changed in transit, or made up)");
      }
      let inner: Envelope;
      let key: Envelope | undefined;
      try {
        ({ envelope: inner, key } = decodeInner(opened.inner));
      } catch (e) {
        return this.refused(from, sealed, `sealed envelope holds no valid signed envelope: ${e instanceof EnvelopeError ? e.reason : String(e)}`);
      }
      // a channel's membership change names no recipients (who is sealed it is the channel's
      // business, and an admin seals the ops before an add once more to the newcomers): the slot
      // that opened is its address
      const membership = inner.kind === EnvelopeKind.Statement && isChannelStatement(inner);
      if (inner.kind !== EnvelopeKind.Change && inner.kind !== EnvelopeKind.Key && !membership)
        return this.refused(from, sealed, `a sealed envelope holds a change, a key or a membership change, not kind ${inner.kind}`);
      if (inner.created !== sealed.created || inner.lifetime !== sealed.lifetime)
        return this.refused(from, sealed, "its sealed header does not match the signed envelope inside");
      if (!membership && !isAddressedTo(inner, core.me)) return this.refused(from, sealed, "sealed to this person but not addressed to them");
      env = { ...inner, ...(key ? { key } : {}), id: sealed.id, sealed: sealed.bytes };
    } else {
      try {
        env = decodeEnvelope(it.bytes);
      } catch (e) {
        return this.refused(from, undefined, e instanceof EnvelopeError ? e.reason : String(e));
      }
      // what carriers see of a message is its sealed envelope only: a signed header in clear would
      // tell them who writes to whom
      if (env.kind !== EnvelopeKind.Statement)
        return this.refused(from, env, "only statements travel unsealed (changes and keys travel in envelope version 3)");
      // in clear it would show carriers who runs which channel
      if (isChannelStatement(env)) return this.refused(from, env, "a membership change travels sealed (envelope version 3)");
      if (core.envelopes.has(env.id)) return { stored: false };
      if (core.envelopes.wasDelivered(env.id)) return this.refused(from, env, "replayed: already delivered, its copy was dropped");
    }
    const size = env.sealed?.length ?? env.bytes.length;
    // statements of this user, of its contacts (keyrings) and of its school (the directory) are ours to
    // keep and apply; others' are carried, and so is what someone the user blocked writes to them
    // (within the carrier limits)
    const blocked = env.kind !== EnvelopeKind.Statement && core.isBlocked(env.author);
    const party =
      (isAddressedTo(env, core.me) && !blocked) ||
      (env.kind === EnvelopeKind.Statement && (env.sealed !== undefined || core.state.contact(env.author) !== undefined || this.school.follows(env) || this.channels.follows(env)));
    if (!party && size > l.maxCarriedEnvelopeBytes)
      return this.refused(from, env, `oversize: ${size} bytes, carriers take at most ${l.maxCarriedEnvelopeBytes}`);
    if (party && size > l.maxOwnEnvelopeBytes)
      return this.refused(from, env, `oversize: ${size} bytes, at most ${l.maxOwnEnvelopeBytes} are taken`);
    if (!verifyEnvelope(env) || (env.key && !verifyEnvelope(env.key)))
      return this.refused(from, env, env.device ? "forged signature or device certificate" : "forged signature");
    // a revoked device's envelopes are neither opened nor carried by anyone who knows of the revocation
    // (a first device signs with the person key itself: the school may revoke that laptop too)
    const why = this.devices.revoked(signerOf(env));
    if (why) {
      core.envelopes.forget(env.id, "refused", core.now());
      return this.refused(from, env, `signed by a revoked device (${why})`);
    }
    // the school's word: a revoked person, or its "only the directory" policy (dropped, and counted)
    const school = this.school.refusal(env, party && env.recipients.some((r) => equalBytes(r, core.me)));
    if (school) {
      core.envelopes.forget(env.id, school.drop ? "dropped by the school's policy" : "refused", core.now());
      if (school.drop) this.school.countDropped();
      return this.refused(from, env, school.reason);
    }
    const now = core.now();
    const row = storable(env);
    let evict: Uint8Array[] = [];
    if (!party) {
      if (core.envelopes.ackedByAllRecipients(env.id, env.recipients)) {
        core.envelopes.dropDelivered(env.id, now);
        return { stored: false, refused: "already delivered" };
      }
      const room = this.carrier.makeRoom(row, source, from);
      if (typeof room === "string") {
        core.envelopes.forget(env.id, "refused", now); // do not fetch it again at every contact
        return this.refused(from, env, room);
      }
      evict = room;
    } else if (env.kind !== EnvelopeKind.Statement && !equalBytes(env.author, core.me)) {
      // for us, but it may never open (no key, a conversation that never comes): a budget per author
      // (not forgotten: once what waits opens or expires, it is fetched again)
      const waiting = core.envelopes.unopenedBytesByAuthor(env.author);
      if (waiting + size > l.unopenedPerAuthorBytes) {
        return this.refused(from, env, `its author already has ${Math.round(waiting / 1024)} KiB waiting here that cannot be opened yet`);
      }
      const flood = channelBudgetRefusal(core, this.channels, env);
      if (flood) {
        core.envelopes.forget(env.id, "refused", now); // not fetched again at every contact
        return this.refused(from, env, flood);
      }
    }
    if (!core.envelopes.put(row, it.hops, now, !party, source, evict, party ? undefined : Math.max(1, it.copies ?? 1))) return { stored: false };
    stored.push({ env, id: env.id, party, evicted: evict.length, blocked: blocked && isAddressedTo(env, core.me) });
    return { stored: true };
  }

  /**
   * A sealed envelope that is not ours: carried as an opaque blob within the carrier limits (per
   * source and the quota: its author is hidden, so there is no per-author budget), until the ack keys
   * of all its recipients open its locks.
   */
  /**
   * Mail for another village (kind 7, docs/routing.md "Between villages"): the destination relay point
   * takes the sealed envelope out and carries it in its village like any other; a relay point refuses
   * one naming a village outside its federation (it could never hand it on); everyone else carries it
   * like a sealed envelope, within the same carrier limits.
   */
  private admitBetween(it: Incoming, stored: Admitted[]): ReceiveResult {
    const { core } = this;
    let b: BetweenVillages;
    try {
      b = decodeBetweenVillages(it.bytes);
    } catch (e) {
      return this.refused(it.from, undefined, e instanceof EnvelopeError ? e.reason : String(e));
    }
    if (core.envelopes.has(b.id)) return { stored: false };
    if (core.envelopes.wasDelivered(b.id)) return this.refused(it.from, b, "replayed: already delivered, its copy was dropped");
    const v = core.village;
    // a relay point takes its village's mail out; so does a laptop of that village a bus handed it to
    // (sync-engine.ts gives kind 7 to anyone of its village): the laptop would otherwise only carry it
    if (b.dest === (v?.home ?? core.identity.home)) {
      core.log.info(`took mail for this village out of envelope ${toHex(b.id).slice(0, 12)}${it.from ? ` from ${it.from}` : ""}`);
      // it starts afresh in its village, as if its author had handed it to this relay point: the hops
      // and copy tokens spent between villages do not limit how it reaches the recipient here
      const r = this.admit({ ...it, bytes: b.sealed.bytes, hops: 1, copies: ARRIVED_COPIES }, stored);
      // the kind-7 id is known from now on: a carrier coming back with it is not asked for it again
      if (!r.retry) core.envelopes.forget(b.id, "taken out of kind 7 at its village", core.now());
      return r;
    }
    if (v && !v.federation.has(b.dest)) {
      core.envelopes.forget(b.id, "refused", core.now());
      return this.refused(it.from, b, `it is for "${b.dest}", which is not a village of this relay point's federation`);
    }
    return this.carry(it, b.sealed, stored, b);
  }

  private carry(it: Incoming, sealed: SealedEnvelope, stored: Admitted[], wrapper?: BetweenVillages): ReceiveResult {
    const { core } = this;
    const { from, source } = it;
    const now = core.now();
    if (wrapper && wrapper.bytes.length > core.limits.maxCarriedEnvelopeBytes)
      return this.refused(from, wrapper, `oversize: ${wrapper.bytes.length} bytes, carriers take at most ${core.limits.maxCarriedEnvelopeBytes}`);
    if (sealed.bytes.length > core.limits.maxCarriedEnvelopeBytes)
      return this.refused(from, sealed, `oversize: ${sealed.bytes.length} bytes, carriers take at most ${core.limits.maxCarriedEnvelopeBytes}`);
    if (sealed.locks.length === 0) {
      // a person's own document (its own devices only): no receipt could ever clear a copy of it
      core.envelopes.forget(sealed.id, "refused", now);
      return this.refused(from, sealed, "a sealed envelope without locks is for its author's own devices only");
    }
    if (core.envelopes.ackedByAllRecipients(sealed.id, sealed.locks)) {
      core.envelopes.dropDelivered(sealed.id, now);
      return { stored: false, refused: "already delivered" };
    }
    const row = wrapper
      ? opaque({ id: wrapper.id, bytes: wrapper.bytes, created: sealed.created, lifetime: sealed.lifetime, kind: EnvelopeKind.Between })
      : opaque({ ...sealed, kind: EnvelopeKind.Sealed });
    const room = this.carrier.makeRoom(row, source, from);
    if (typeof room === "string") {
      core.envelopes.forget(row.id, "refused", now);
      return this.refused(from, wrapper ?? sealed, room);
    }
    if (!core.envelopes.put(row, it.hops, now, true, source, room, Math.max(1, it.copies ?? 1))) return { stored: false };
    stored.push({ id: row.id, party: false, evicted: room.length });
    return { stored: true };
  }

  /** A receipt: carried like any envelope (it follows the copies), and its ack keys open the locks they fit. */
  private admitReceipt(it: Incoming, stored: Admitted[]): ReceiveResult {
    const { core } = this;
    const { from, source } = it;
    let receipt: Receipt;
    try {
      receipt = decodeReceipt(it.bytes);
    } catch (e) {
      return this.refused(from, undefined, e instanceof EnvelopeError ? e.reason : String(e));
    }
    if (core.envelopes.has(receipt.id)) return { stored: false };
    if (receipt.bytes.length > core.limits.maxCarriedEnvelopeBytes)
      return this.refused(from, receipt, `oversize: ${receipt.bytes.length} bytes, carriers take at most ${core.limits.maxCarriedEnvelopeBytes}`);
    const row = opaque({ ...receipt, kind: EnvelopeKind.Ack });
    const room = this.carrier.makeRoom(row, source, from);
    if (typeof room === "string") {
      core.envelopes.forget(receipt.id, "refused", core.now());
      return this.refused(from, receipt, room);
    }
    if (!core.envelopes.put(row, it.hops, core.now(), true, source, room)) return { stored: false };
    // the receipt's names are known before it is announced: routing needs them
    core.envelopes.recordAckNames(receipt.id, receipt.entries.map((e) => e.id));
    stored.push({ id: receipt.id, party: false, evicted: room.length, receipt: receipt.entries, hops: it.hops });
    return { stored: true };
  }

  private async afterStore({ env, id, party, evicted, receipt, hops, blocked }: Admitted): Promise<void> {
    const { core } = this;
    if (evicted) core.log.info(`carrier quota: evicted ${evicted} carried envelope(s) to make room`);
    core.events.emit("envelope", { id });
    // an acknowledgement of our own message is its delivered receipt
    if (receipt) this.receipts.acknowledged(this.carrier.applyReceipt(receipt), hops ?? 1);
    if (!env) return;
    if (blocked) this.opening.refuseBlocked(env);
    if (party && env.kind === EnvelopeKind.Statement) {
      if (isChannelStatement(env)) {
        // its receipt opens our lock at every carrier of the copy
        if (env.sealed && !equalBytes(env.author, core.me)) this.receipts.queueAck(env);
        if (this.channels.follows(env)) await this.channels.apply(env);
        // its messages that came before it were held as if from a stranger: they are the channel's
        if (core.isChannel(env.conversation)) this.receipts.release({ conversation: env.conversation });
        return;
      }
      if (this.school.follows(env)) this.school.apply(env);
      else this.devices.apply(env);
      return;
    }
    if (party) {
      if (!equalBytes(env.author, core.me)) this.receipts.queueAck(env);
      try {
        await this.opening.open(env);
      } catch (e) {
        const reason = core.storageFailed(e);
        core.log.warn(`stored envelope ${toHex(env.id).slice(0, 12)} but could not open it: ${reason}; it will be opened when the disk has room`);
      }
    }
  }
}
