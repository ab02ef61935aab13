// The destination village of a kind-7 envelope (mail for another village), read once from its
// cleartext header and remembered: the sync engine and the relay point ask it for every envelope they
// consider handing on. A bounded cache (cleared past 10,000), since ids never change meaning.
import { decodeBetweenVillages, isBetweenVillages, toHex } from "@pigeon/model";

export class VillageDestinations {
  private readonly dests = new Map<string, string>();

  constructor(private readonly bytesOf: (id: Uint8Array) => Uint8Array | undefined) {}

  /** The village a stored kind-7 envelope is for; undefined for any other envelope, or a damaged one. */
  of(id: Uint8Array): string | undefined {
    const hex = toHex(id);
    const known = this.dests.get(hex);
    if (known !== undefined) return known;
    const bytes = this.bytesOf(id);
    if (!bytes || !isBetweenVillages(bytes)) return undefined;
    let dest: string;
    try {
      dest = decodeBetweenVillages(bytes).dest;
    } catch {
      return undefined;
    }
    if (this.dests.size > 10_000) this.dests.clear();
    this.dests.set(hex, dest);
    return dest;
  }
}
