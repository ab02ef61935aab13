// Carrying envelopes for others: the carrier limits checked before one is stored (per source, per
// author, the total quota with eviction), and acknowledgements that drop confirmed copies.
import { equalBytes, type Envelope } from "@pigeon/model";
import type { MailboxCore } from "./core.js";

export class Carrier {
  constructor(private readonly core: MailboxCore) {}

  /**
   * A per-source and a per-author budget (so one laptop or identity flooding junk cannot crowd out
   * others), then the total quota, freed by evicting expired envelopes, then those of strangers and of
   * the people who became known to this laptop most recently (never anyone known longer than the
   * author or the laptop handing this one over: a swarm of new identities cannot push out a
   * classmate's message), then the most widely handed on, then the oldest
   * (EnvelopeStore.evictionCandidates). Returns the envelopes to evict, or the reason to refuse.
   */
  makeRoom(env: Envelope, source: Uint8Array | undefined, from: string | undefined): Uint8Array[] | string {
    const { envelopes, limits: l } = this.core;
    const size = env.bytes.length;
    if (source && envelopes.carriedBytesFromSource(source) + size > l.perSourceBytes)
      return `${from ?? "that laptop"} is over its carrying budget (${Math.round(l.perSourceBytes / 1024)} KiB of envelopes carried for it)`;
    if (envelopes.carriedBytesByAuthor(env.author) + size > l.perAuthorBytes)
      return `its author is over their carrying budget (${Math.round(l.perAuthorBytes / 1024)} KiB)`;
    const over = envelopes.carriedBytes() + size - l.quotaBytes;
    if (over <= 0) return [];
    const evict = envelopes.evictionCandidates(over, this.core.now(), envelopes.knownSince(env.author, source));
    return evict.length ? evict : `carrier storage is full (${Math.round(l.quotaBytes / 1048576)} MB) with envelopes of people this laptop has known longer`;
  }

  /** A valid ack drops every carried copy it confirms (all recipients acknowledged). Forged acks change nothing. */
  applyAck(ack: Envelope, ids: Uint8Array[]): void {
    const { core } = this;
    core.envelopes.recordAcks(ack.author, ids);
    let dropped = 0;
    let forged = 0;
    for (const id of ids) {
      const meta = core.envelopes.meta(id);
      if (!meta || !core.envelopes.isCarried(id)) continue;
      // only a recipient of the envelope (per its own signed header) can confirm it
      if (!meta.recipients.some((r) => equalBytes(r, ack.author))) {
        forged++;
        continue;
      }
      if (core.envelopes.ackedByAllRecipients(id, meta.recipients)) {
        core.envelopes.dropDelivered(id, core.now());
        dropped++;
      }
    }
    if (forged)
      core.log.warn(`ignored an acknowledgement from ${core.addressOf(ack.author)} for ${forged} envelope(s) it is not a recipient of (forged acknowledgement)`);
    if (dropped) {
      core.log.info(`delivery confirmed by ${core.addressOf(ack.author)}: dropped ${dropped} carried envelope(s)`);
      core.events.emit("changed");
    }
  }

  /**
   * Records that `recipient` holds these carried envelopes (learned over an authenticated link) and
   * drops every copy whose recipients all hold it. Returns how many were dropped.
   */
  confirmDelivered(recipient: Uint8Array, ids: Uint8Array[]): number {
    const { core } = this;
    core.envelopes.recordAcks(recipient, ids);
    let dropped = 0;
    for (const id of ids) {
      const meta = core.envelopes.meta(id);
      if (!meta || !core.envelopes.isCarried(id)) continue;
      if (!meta.recipients.some((r) => equalBytes(r, recipient))) continue;
      if (core.envelopes.ackedByAllRecipients(id, meta.recipients)) {
        core.envelopes.dropDelivered(id, core.now());
        dropped++;
      }
    }
    if (dropped) core.events.emit("changed");
    return dropped;
  }
}
