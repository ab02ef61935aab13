// Taking envelopes from peers. Everything is checked before it is stored: envelopes for this user
// are opened at once (within a per-author budget for those that cannot be opened yet); others are
// carried within the carrier limits; acknowledgements drop the copies they confirm.
import { ackedIds, isChannelStatement, decodeEnvelope, equalBytes, EnvelopeError, EnvelopeKind, isAddressedTo, signerOf, toHex, verifyEnvelope, type Envelope } from "@pigeon/model";
import type { Carrier } from "./carrier.js";
import type { Channels } from "./channels.js";
import type { Devices } from "./devices.js";
import type { MailboxCore } from "./core.js";
import type { Opening } from "./opening.js";
import type { Receipts } from "./receipts.js";
import type { School } from "./school.js";
import type { Incoming, ReceiveResult } from "./types.js";

interface Admitted {
  env: Envelope;
  party: boolean;
  evicted: number;
  ackIds: Uint8Array[];
  /** For the user, from someone they blocked: carried, never opened. */
  blocked?: boolean;
}

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
  private refused(from: string | undefined, env: Envelope | undefined, reason: string): ReceiveResult {
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
      id = `envelope ${toHex(decodeEnvelope(it.bytes).id).slice(0, 12)}`;
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
    let env: Envelope;
    try {
      env = decodeEnvelope(it.bytes);
    } catch (e) {
      return this.refused(from, undefined, e instanceof EnvelopeError ? e.reason : String(e));
    }
    if (core.envelopes.has(env.id)) return { stored: false };
    if (core.envelopes.wasDelivered(env.id)) return this.refused(from, env, "replayed: already delivered, its copy was dropped");
    // statements of this user, of its contacts (keyrings) and of its school (the directory) are ours to
    // keep and apply; others' are carried, and so is what someone the user blocked writes to them
    // (within the carrier limits)
    const blocked = env.kind !== EnvelopeKind.Statement && core.isBlocked(env.author);
    const party =
      (isAddressedTo(env, core.me) && !blocked) ||
      (env.kind === EnvelopeKind.Statement && (core.state.contact(env.author) !== undefined || this.school.follows(env) || this.channels.follows(env)));
    if (!party && env.bytes.length > l.maxCarriedEnvelopeBytes)
      return this.refused(from, env, `oversize: ${env.bytes.length} bytes, carriers take at most ${l.maxCarriedEnvelopeBytes}`);
    if (party && env.bytes.length > l.maxOwnEnvelopeBytes)
      return this.refused(from, env, `oversize: ${env.bytes.length} bytes, at most ${l.maxOwnEnvelopeBytes} are taken`);
    if (!verifyEnvelope(env)) return this.refused(from, env, env.device ? "forged signature or device certificate" : "forged signature");
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
    let ackIds: Uint8Array[] = [];
    if (env.kind === EnvelopeKind.Ack) {
      try {
        ackIds = ackedIds(env);
      } catch (e) {
        return this.refused(from, env, (e as EnvelopeError).reason);
      }
    }
    let evict: Uint8Array[] = [];
    if (!party) {
      if (core.envelopes.ackedByAllRecipients(env.id, env.recipients)) {
        core.envelopes.dropDelivered(env.id, now);
        return { stored: false, refused: "already delivered" };
      }
      const room = this.carrier.makeRoom(env, source, from);
      if (typeof room === "string") {
        core.envelopes.forget(env.id, "refused", now); // do not fetch it again at every contact
        return this.refused(from, env, room);
      }
      evict = room;
    } else if (env.kind !== EnvelopeKind.Ack && env.kind !== EnvelopeKind.Statement && !equalBytes(env.author, core.me)) {
      // for us, but it may never open (no key, a conversation that never comes): a budget per author
      // (not forgotten: once what waits opens or expires, it is fetched again)
      const waiting = core.envelopes.unopenedBytesByAuthor(env.author);
      if (waiting + env.bytes.length > l.unopenedPerAuthorBytes) {
        return this.refused(from, env, `its author already has ${Math.round(waiting / 1024)} KiB waiting here that cannot be opened yet`);
      }
    }
    if (!core.envelopes.put(env, it.hops, now, !party, source, evict, party ? undefined : Math.max(1, it.copies ?? 1))) return { stored: false };
    // the ack's names are known before it is announced: routing needs them
    if (ackIds.length) core.envelopes.recordAckNames(env.id, ackIds);
    stored.push({ env, party, evicted: evict.length, ackIds, blocked: blocked && isAddressedTo(env, core.me) && env.kind !== EnvelopeKind.Ack });
    return { stored: true };
  }

  private async afterStore({ env, party, evicted, ackIds, blocked }: Admitted): Promise<void> {
    const { core } = this;
    if (evicted) core.log.info(`carrier quota: evicted ${evicted} carried envelope(s) to make room`);
    core.events.emit("envelope", env);
    if (blocked) this.opening.refuseBlocked(env);
    if (ackIds.length) this.carrier.applyAck(env, ackIds);
    if (party && env.kind === EnvelopeKind.Statement) {
      if (isChannelStatement(env)) {
        if (this.channels.follows(env)) await this.channels.apply(env);
        return;
      }
      if (this.school.follows(env)) this.school.apply(env);
      else this.devices.apply(env);
      return;
    }
    if (party && env.kind !== EnvelopeKind.Ack) {
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
