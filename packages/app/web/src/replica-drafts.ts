// The drafts as the page reads and writes them in its replica (replica.ts, loaded after the first
// screen: the app shows at once, and works through the node's API if the replica cannot start).
import type { Replica, ReplicaDoc } from "./replica.js";

export interface Draft { id: string; to: string; body: string; updatedAt: number }

let keepHere: (() => Promise<void>) | undefined;

/** Loads the bundle and opens the replica; undefined when this browser cannot (no IndexedDB, no WebAssembly). */
export async function startReplica(url: string, csrf: string): Promise<Replica | undefined> {
  if (!url || typeof indexedDB === "undefined" || typeof WebAssembly === "undefined") return undefined;
  const bundle = "./replica-bundle.js"; // built by web/build.mjs
  const { openReplica } = (await import(bundle)) as typeof import("./replica.js");
  const { handle, keep } = await openReplica(url, csrf);
  keepHere = keep;
  return handle;
}

/** Resolves once the replica's changes so far are in this browser's IndexedDB (they survive the tab closing). */
export async function keptHere(): Promise<void> {
  await keepHere?.();
}

/** The drafts shown: every one not deleted (the node's and those written here). */
export function replicaDrafts(doc: ReplicaDoc | undefined): Draft[] {
  const out: Draft[] = [];
  for (const [id, d] of Object.entries(doc?.drafts ?? {})) {
    if (d && !d.deleted && typeof d.to === "string" && typeof d.body === "string") out.push({ id, to: d.to, body: d.body, updatedAt: typeof d.at === "number" ? d.at : 0 });
  }
  return out;
}

/** Whether the node holds these words of the draft (saved, sealed and signed there). */
export function savedByNode(doc: ReplicaDoc | undefined, id: string, body: string): boolean {
  const d = doc?.drafts?.[id];
  return !!d && !d.deleted && d.saved > 0 && d.body === body;
}

/** A new draft's id: 8 hex digits, as the node makes them. */
export function newDraftId(): string {
  return [...crypto.getRandomValues(new Uint8Array(4))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Writes the whole draft here (IndexedDB, the other tabs, then the node, which saves it). */
export function writeDraft(r: Replica, id: string, to: string, body: string): void {
  r.change((d) => {
    d.drafts ??= {};
    const x = d.drafts[id];
    if (x && !x.deleted) {
      if (x.to !== to) x.to = to;
      if (x.body !== body) x.body = body;
      x.at = Date.now();
      x.saved = 0;
    } else d.drafts[id] = { to, body, at: Date.now(), saved: 0 };
  });
}

/**
 * The child opened a message: the node marks it read (and sends the receipt) when it hears of it, even
 * after being stopped. Written to IndexedDB at once, not at the repo's next save: a tab closed right
 * after opening it (the node stopped) lost it. Resolves once it is kept there.
 */
export async function markShown(r: Replica, id: string): Promise<void> {
  if (r.doc()?.read?.[id] !== undefined) return;
  r.change((d) => {
    d.read ??= {};
    d.read[id] = Date.now();
  });
  await keptHere();
}

/** Marks a draft deleted (sent, or thrown away): the node deletes its own and then the entry. */
export function dropDraft(r: Replica, id: string): void {
  r.change((d) => {
    const x = d.drafts?.[id];
    if (x) x.deleted = true;
  });
}
