// Sealed envelopes as a carrier holds them, made fast for benchmarks that need a store of a million.
import { randomBytes } from "node:crypto";
import { decodeSealed, EnvelopeKind } from "../../packages/model/dist/index.js";
import { Writer } from "../../packages/model/dist/bytes.js";
import { opaque } from "../../packages/sync/dist/index.js";

/**
 * A well-formed sealed envelope (version 3) for two made-up recipients and its author's slot, with
 * random keys, tags and box of `boxBytes`. A carrier checks only an envelope's form, so it holds these
 * as it holds real ones; sealing a million for real costs two X25519 each and changes nothing a
 * carrier's store measures.
 */
export function opaqueSealed(createdMs, lifetime, boxBytes) {
  const hour = Math.floor(createdMs / 3_600_000) * 3_600_000;
  const tags = [randomBytes(16), randomBytes(16), randomBytes(16)].sort(Buffer.compare);
  const locks = [randomBytes(32), randomBytes(32)].sort(Buffer.compare);
  const w = new Writer().u8(3).u8(EnvelopeKind.Sealed).varint(hour).varint(lifetime).raw(randomBytes(32)).varint(tags.length);
  for (const t of tags) w.raw(t).raw(randomBytes(48));
  w.varint(locks.length);
  for (const l of locks) w.raw(l);
  return { bytes: w.bytes(randomBytes(24 + 16 + 32 + boxBytes)).finish() };
}

/** The store's row for such an envelope's bytes: carried, not opened. */
export function carriedRow(bytes) {
  const s = decodeSealed(bytes);
  return opaque({ id: s.id, bytes: s.bytes, created: s.created, lifetime: s.lifetime, kind: EnvelopeKind.Sealed });
}
