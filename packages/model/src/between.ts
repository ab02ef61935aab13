// Envelope version 3, kind 7: "sealed for another village" (docs/protocol.md section 3, docs/routing.md
// "Between villages"). The sealed envelope a laptop would hand a classmate, unchanged, behind the
// name of the relay point of the recipient's village in cleartext, so that relay points and mules
// can route it by their routing tables. That name is all a carrier learns beyond what the sealed
// envelope shows (a size, an hour, a lifetime, slots and locks): not who wrote it, nor to whom.
//
//   Between = u8 3 | u8 7 | string destination relay point (a home) | rest: the version-3 sealed envelope
//
// The destination relay point takes the sealed envelope out and carries it in its village like any
// other; its id there is the sealed envelope's own, so the recipient's receipts name it as usual.
import { sha256 } from "./crypto.js";
import { DecodeError, Reader, Writer, concat } from "./bytes.js";
import { EnvelopeError, EnvelopeKind } from "./envelope.js";
import { validHome } from "./identity.js";
import { SEALED_VERSION, decodeSealed, type SealedEnvelope } from "./sealed.js";

/** The kind byte of an envelope sealed for another village (5 sealed and 6 receipt are sealed.ts's). */
export const BETWEEN_VILLAGES_KIND = EnvelopeKind.Between;

export interface BetweenVillages {
  /** The destination relay point's name: the recipient's home. */
  dest: string;
  sealed: SealedEnvelope;
  id: Uint8Array;
  bytes: Uint8Array;
}

export function isBetweenVillages(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === SEALED_VERSION && bytes[1] === BETWEEN_VILLAGES_KIND;
}

/** Wraps a sealed envelope for the relay point `dest`. */
export function forVillage(dest: string, sealed: SealedEnvelope): BetweenVillages {
  if (!validHome(dest)) throw new EnvelopeError(`"${dest}" is not a relay point's name`);
  const bytes = concat([new Writer().u8(SEALED_VERSION).u8(BETWEEN_VILLAGES_KIND).string(dest).finish(), sealed.bytes]);
  return { dest, sealed, id: sha256(bytes), bytes };
}

/** Parses one (the sealed envelope inside is checked as decodeSealed checks it). Throws EnvelopeError. */
export function decodeBetweenVillages(bytes: Uint8Array): BetweenVillages {
  let dest: string;
  let rest: Uint8Array;
  try {
    const r = new Reader(bytes, true);
    if (r.u8() !== SEALED_VERSION || r.u8() !== BETWEEN_VILLAGES_KIND) throw new EnvelopeError("not an envelope for another village");
    dest = r.string(64);
    rest = r.raw(r.remaining);
  } catch (e) {
    if (e instanceof DecodeError) throw new EnvelopeError(`malformed envelope for another village: ${e.message}`);
    throw e;
  }
  if (!validHome(dest)) throw new EnvelopeError(`an envelope for another village names no relay point ("${dest.slice(0, 64)}")`);
  const sealed = decodeSealed(rest);
  const copy = Uint8Array.from(bytes);
  return { dest, sealed, id: sha256(copy), bytes: copy };
}
