// The buddy list in the browser's replica (docs/web-app.md, "The replica in the browser"): the node
// writes the people the child keeps (their names, the name the child gave them, how they are known)
// into the replica's `buddies` column, keyed by their signing key, so every tab shows them and a
// reload with the node away still lists them. The page never edits the list itself: it asks, by
// writing `rename` on an entry (the name it wants), and the node makes the change in the buddy list
// document its devices share (signed here alone), then writes what it holds and clears the ask.
import type { DocHandle } from "@automerge/automerge-repo";
import { MailboxError, type BuddyView, type Mailbox } from "@pigeon/sync";

/** One buddy as the replica holds it (what the friends screen shows). */
export interface ReplicaBuddy {
  address: string;
  fingerprint: string;
  name: string;
  /** The child's own name for them ("" when none). */
  petname: string;
  how: string;
  blocked: boolean;
  /** Written by the page: the name the child wants to give them; the node applies it and removes it. */
  rename?: string;
}
export type BuddiesColumn = { buddies?: Record<string, ReplicaBuddy> };

const same = (x: ReplicaBuddy, b: BuddyView) =>
  x.address === b.address && x.fingerprint === b.fingerprint && x.name === b.name && x.petname === (b.petname ?? "") && x.how === b.how && x.blocked === b.blocked;

/** Applies the page's asks, then makes the column what the node's buddy list holds. */
export async function reconcileBuddies<D extends BuddiesColumn>(h: DocHandle<D>, mailbox: Mailbox, log: { warn(msg: string): void }): Promise<void> {
  const raw: unknown = h.doc().buddies;
  const column = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  for (const [key, entry] of Object.entries(column)) {
    const ask = typeof entry === "object" && entry !== null ? (entry as { rename?: unknown; address?: unknown }).rename : undefined;
    if (ask === undefined) continue;
    const address = (entry as { address?: unknown }).address;
    if (typeof ask === "string" && ask.length <= 64 && typeof address === "string") {
      try {
        await mailbox.renameBuddy(address, ask);
      } catch (e) {
        if (!(e instanceof MailboxError)) throw e;
        // not a name the node takes (or no longer a buddy): the ask goes, the name the node has stays
        log.warn(`the web app's new name for ${address} was not taken: ${e.message}`);
      }
    }
    h.change((d) => {
      const x = d.buddies?.[key];
      if (x && x.rename === ask) delete x.rename;
    });
  }
  const now = new Map((await mailbox.buddies()).map((b) => [b.signPublicKey, b]));
  h.change((d) => {
    if (typeof d.buddies !== "object" || d.buddies === null || Array.isArray(d.buddies)) d.buddies = {};
    const col = d.buddies!;
    for (const key of Object.keys(col)) {
      // a rename asked meanwhile stays for the next pass
      if (!now.has(key) && col[key]?.rename === undefined) delete col[key];
    }
    for (const [key, b] of now) {
      const x = col[key];
      if (x && typeof x === "object" && same(x, b)) continue;
      const v: ReplicaBuddy = { address: b.address, fingerprint: b.fingerprint, name: b.name, petname: b.petname ?? "", how: b.how, blocked: b.blocked };
      if (!x || typeof x !== "object") col[key] = v;
      else for (const k of Object.keys(v) as (keyof ReplicaBuddy)[]) if (x[k] !== v[k]) (x as unknown as Record<string, unknown>)[k] = v[k];
    }
  });
}
