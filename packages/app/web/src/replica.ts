// The page's live replica of the child's own drafts (and of which messages the child opened): one automerge-repo document kept in the browser's
// IndexedDB (drafts survive a closed lid, a stopped node, a reload), shared at once between the open
// tabs over a BroadcastChannel, and synced with the node over /app/sync when it is there. The node
// alone saves a draft into the drafts the child's devices share (sealed and signed there) and sends
// messages: the page only writes words here. Bundled by web/build.mjs (replica-bundle.js).
import { initializeWasm, Repo, type AutomergeUrl, type DocHandle } from "@automerge/automerge-repo/slim";
import { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb";
import { BroadcastChannelNetworkAdapter } from "@automerge/automerge-repo-network-broadcastchannel";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

/** As packages/app/src/web-replica.ts: `saved` is the node's version of the words, 0 while it has not taken them. */
export interface ReplicaDraft {
  to: string;
  body: string;
  at: number;
  saved: number;
  deleted?: boolean;
}
/** `read`: messages the child opened (id → when), for the node to mark read; it removes them once done. */
export type ReplicaDoc = { drafts: Record<string, ReplicaDraft>; read?: Record<string, number> };
export type Replica = DocHandle<ReplicaDoc>;

/** The replica and a way to wait until its latest change is in IndexedDB (before the page says "kept on this laptop"). */
export interface OpenReplica { handle: Replica; keep: () => Promise<void> }

/** Opens the replica `url` (the node names it in the session); resolves once it is loaded from IndexedDB or from the node. */
export async function openReplica(url: string, csrf: string): Promise<OpenReplica> {
  await initializeWasm(new Request(new URL("./automerge.wasm", import.meta.url)));
  const repo = new Repo({
    storage: new IndexedDBStorageAdapter("pigeon-replica"),
    network: [
      new BroadcastChannelNetworkAdapter({ channelName: "pigeon-replica" }),
      // tries again every second while the node is away
      new WebSocketClientAdapter(`ws://${location.host}/app/sync?csrf=${csrf}`, 1000),
    ],
  });
  const handle = await repo.find<ReplicaDoc>(url as AutomergeUrl);
  // the repo saves a change a moment later (debounced); a tab closed in that moment would lose it
  return { handle, keep: () => repo.flush([handle.documentId]) };
}
