// The buddy list as the page reads it from its replica (web-replica-buddies.ts is the node's end):
// every tab shows the same friends and the names the child gave them, even with the node away. A new
// name is an ask written into the replica: the other tabs show it at once, and the node makes the
// change (signed there) when it hears of it, now or after it comes back.
import type { Replica } from "./replica.js";

export interface ReplicaBuddy { address: string; fingerprint: string; name: string; petname: string; how: string; blocked: boolean; rename?: string }
export interface Buddy { address: string; fingerprint: string; signPublicKey: string; name: string; petname?: string; how: string; blocked: boolean; asked?: boolean }

/** The friends the replica holds, with a name asked for shown at once; undefined before the node first wrote them. */
export function replicaBuddies(r: Replica | undefined): Buddy[] | undefined {
  const col = (r?.doc() as { buddies?: Record<string, ReplicaBuddy> } | undefined)?.buddies;
  if (!col || typeof col !== "object") return undefined;
  const out: Buddy[] = [];
  for (const [key, b] of Object.entries(col)) {
    if (!b || typeof b.address !== "string" || typeof b.name !== "string") continue;
    const pet = typeof b.rename === "string" ? b.rename.trim().toLowerCase() : b.petname;
    out.push({ address: b.address, fingerprint: String(b.fingerprint), signPublicKey: key, name: b.name, petname: pet || undefined, how: String(b.how), blocked: b.blocked === true, asked: typeof b.rename === "string" });
  }
  // by the name the child sees: the list reads the same in every tab
  return out.sort((a, b) => (a.petname ?? a.name).localeCompare(b.petname ?? b.name));
}

/** Asks for a new name for a friend ("" takes the child's name away): every tab shows it, the node applies it. */
export function renameBuddy(r: Replica, signPublicKey: string, name: string): void {
  r.change((d) => {
    const x = (d as { buddies?: Record<string, ReplicaBuddy> }).buddies?.[signPublicKey];
    if (x) x.rename = name;
  });
}
