// Carrying envelopes for others: the carrier limits checked before one is stored (per source, per
// author when the author shows, the total quota with eviction), and receipts that drop delivered copies.
import { EnvelopeKind, equalBytes, lockOf, type ReceiptEntry } from "@pigeon/model";
import { NOBODY, type Storable } from "../envelope-store.js";
import type { MailboxCore } from "./core.js";

export class Carrier {
  constructor(private readonly core: MailboxCore) {}

  /**
   * A per-source budget and, where the author shows (statements), a per-author one (so one laptop or
   * identity flooding junk cannot crowd out others), then the total quota, freed by evicting expired
   * envelopes, then those of strangers and of the people who became known to this laptop most
   * recently (never anyone known longer than the laptop handing this one over, or its author when it
   * shows: a swarm of new identities cannot push out a classmate's message), then the most widely
   * handed on, then the oldest (EnvelopeStore.evictionCandidates). A sealed envelope hides its author:
   * only the laptop that handed it over counts for it. Returns the envelopes to evict, or the reason to refuse.
   */
  makeRoom(env: Storable, source: Uint8Array | undefined, from: string | undefined): Uint8Array[] | string {
    const { envelopes, limits: l } = this.core;
    const size = env.bytes.length;
    if (source && envelopes.carriedBytesFromSource(source) + size > l.perSourceBytes)
      return `${from ?? "that laptop"} is over its carrying budget (${Math.round(l.perSourceBytes / 1024)} KiB of envelopes carried for it)`;
    const authorKnown = !equalBytes(env.author, NOBODY);
    if (authorKnown && envelopes.carriedBytesByAuthor(env.author) + size > l.perAuthorBytes)
      return `its author is over their carrying budget (${Math.round(l.perAuthorBytes / 1024)} KiB)`;
    const over = envelopes.carriedBytes() + size - l.quotaBytes;
    if (over <= 0) return [];
    const evict = envelopes.evictionCandidates(over, this.core.now(), envelopes.knownSince(env.author, source));
    return evict.length ? evict : `carrier storage is full (${Math.round(l.quotaBytes / 1048576)} MB) with envelopes of people this laptop has known longer`;
  }

  /**
   * A receipt's ack keys open the locks they fit (sha256(ack key) is one of the sealed envelope's
   * locks); a copy whose locks are all open is dropped and its id remembered (never taken again). An
   * ack key that fits none of a held envelope's locks changes nothing. Keys for envelopes not held
   * here are remembered, so a copy that arrives later is refused as delivered. Returns the envelopes
   * held here (not carried: this user's own, or addressed to them) one of whose locks opened.
   */
  applyReceipt(entries: ReceiptEntry[]): Uint8Array[] {
    const { core } = this;
    let dropped = 0;
    let wrong = 0;
    const ours: Uint8Array[] = [];
    core.envelopes.batch(() => {
      for (const { id, ackKey } of entries) {
        const lock = lockOf(ackKey);
        const meta = core.envelopes.meta(id);
        if (meta && !meta.locks) continue; // not a sealed envelope
        if (meta && !meta.locks!.some((l) => equalBytes(l, lock))) {
          wrong++;
          continue;
        }
        // recorded for ours too: once all its locks are open, our own envelope is no longer sprayed
        core.envelopes.recordAcks(lock, [id]);
        if (meta && !meta.carried) ours.push(id);
        if (meta?.carried && meta.kind === EnvelopeKind.Sealed && core.envelopes.ackedByAllRecipients(id, meta.locks!)) {
          core.envelopes.dropDelivered(id, core.now());
          dropped++;
        }
      }
    });
    if (wrong) core.log.warn(`ignored ${wrong} receipt entr${wrong === 1 ? "y" : "ies"} whose ack key opens none of the envelope's locks (forged receipt)`);
    if (dropped) {
      core.log.info(`delivery confirmed: dropped ${dropped} carried envelope(s)`);
      core.events.emit("changed");
    }
    return ours;
  }
}
