// The browser's live replica of the child's own drafts (docs/web-app.md, "The replica in the browser").
// The page keeps an automerge-repo copy of one document in IndexedDB and shares it between its tabs
// over a BroadcastChannel; this file is the node's end of it: a second, separate automerge-repo Repo
// that holds ONLY that replica document, on its own storage folder, reached over /app/sync behind the
// web app's session, CSRF token and Origin checks. Conversation documents, keys and the sealed store
// live in the mailbox's own Repo, which has no network at all: nothing here can reach them.
//
// The replica is not the drafts document the child's devices share (packages/model/src/drafts.ts):
// that one takes only changes the node made and signed. The node copies between the two (reconcile):
// a draft the browser wrote is saved by the node (sealed and signed by the node alone), and a draft
// saved, sent or deleted elsewhere (another device, the command line) is written into the replica.
import { createHmac } from "node:crypto";
import { join } from "node:path";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import * as A from "@automerge/automerge";
import { interpretAsDocumentId, Repo, type DocHandle, type DocumentId, type PeerId } from "@automerge/automerge-repo";
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket";
import { DurableFileStorage, MailboxError, type DraftView, type Mailbox } from "@pigeon/sync";
import { formatAddress, MAX_BODY_CHARS, parseAddress, validDraftId } from "@pigeon/model";
import { reconcileBuddies, type BuddiesColumn } from "./web-replica-buddies.js";

export const SYNC_PATH = "/app/sync";

/** One draft as the page writes it. `saved` is the node's updatedAt of the version it holds, 0 while the page has words the node has not taken. */
export interface ReplicaDraft {
  to: string;
  body: string;
  at: number;
  saved: number;
  deleted?: boolean;
}
export type ReplicaDoc = BuddiesColumn & {
  drafts: Record<string, ReplicaDraft>;
  /** Messages the child opened (id → when), for the node to mark read (and send the receipt); removed once done. */
  read?: Record<string, number>;
};

/** What the page may send: sync messages for the replica document, nothing else (no other document, no ephemeral messages). */
function allowed(m: unknown, doc: DocumentId): boolean {
  if (typeof m !== "object" || m === null) return false;
  const x = m as Record<string, unknown>;
  return (x.type === "sync" || x.type === "request") && x.documentId === doc && x.data instanceof Uint8Array;
}

function canonical(to: string): string | undefined {
  try {
    return formatAddress(parseAddress(to));
  } catch {
    return undefined;
  }
}

export class WebReplica {
  readonly repo: Repo;
  readonly documentId: DocumentId;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  private handle: DocHandle<ReplicaDoc> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  // the page's changes are taken at once; the mailbox changes with every message, so its changes are
  // gathered for a while, and only while a page is connected (one connecting gets a pass first)
  private readonly onReplica = () => this.soon(50);
  private readonly onMailbox = () => this.wss.clients.size > 0 && this.soon(300);
  private readonly storage: DurableFileStorage;

  /**
   * `show` marks a message read as the app's POST show does (its rules: only a buddy's message gets a
   * receipt); the replica only says which message the child opened, even with the node stopped.
   */
  constructor(
    private readonly mailbox: Mailbox,
    dataDir: string,
    key: string,
    private readonly log: { warn(msg: string): void },
    private readonly show: (id: string) => Promise<unknown>,
  ) {
    // one document per data directory, named from the web key: a new key gives the page a new replica
    this.documentId = interpretAsDocumentId(
      createHmac("sha256", key).update("pigeon web replica").digest().subarray(0, 16) as unknown as Parameters<typeof interpretAsDocumentId>[0],
    );
    const network = new WebSocketServerAdapter(this.wss as unknown as ConstructorParameters<typeof WebSocketServerAdapter>[0]);
    // every byte from the page is checked before the Repo sees it: a message about any other document is dropped
    const emit = network.emit.bind(network) as (event: string, ...args: unknown[]) => boolean;
    (network as unknown as { emit: typeof emit }).emit = (event, ...args) =>
      event === "message" && !allowed(args[0], this.documentId) ? false : emit(event, ...args);
    const only = async (_peer: PeerId, doc?: DocumentId) => doc === this.documentId;
    this.repo = new Repo({
      storage: (this.storage = new DurableFileStorage(join(dataDir, "web-replica"))),
      network: [network],
      peerId: `pigeon-node-${process.pid}` as PeerId,
      shareConfig: { announce: only, access: only },
      enableRemoteHeadsGossiping: false,
    });
  }

  async start(): Promise<void> {
    const stored = (await this.storage.loadRange([this.documentId])).length > 0;
    this.handle = stored
      ? // findClassic, as document-store.ts: find keeps every document it ever loaded (here one, but the same way)
        await this.repo.findClassic<ReplicaDoc>(this.documentId, { allowableStates: ["ready"] })
      : this.repo.import<ReplicaDoc>(A.save(A.from<ReplicaDoc>({ drafts: {} })), { docId: this.documentId });
    this.handle.on("change", this.onReplica);
    this.wss.on("connection", this.onReplica);
    this.mailbox.on("changed", this.onMailbox);
    await this.reconcile();
  }

  /** The address the page opens the document by. */
  get url(): string {
    return `automerge:${this.documentId}`;
  }

  /** A few changes in a row make one pass. */
  private soon(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile().catch((e: unknown) => this.log.warn(`the web app's replica: ${(e as Error).message}`));
    }, ms);
  }

  /** One pass at a time; a change during a pass asks for one more. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.closed);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    const h = this.handle;
    if (!h || this.closed) return;
    const nodeDrafts = new Map<string, DraftView>((await this.mailbox.drafts()).map((d) => [d.id, d]));
    const raw: unknown = h.doc().drafts;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      // not a column of drafts (a page got it wrong): made one again; the node's drafts come back below
      this.log.warn("the web app's replica had no drafts column; made a new one");
      h.change((d) => void (d.drafts = {}));
      return this.pass();
    }
    const column = raw as Record<string, unknown>;
    for (const [id, raw] of Object.entries(column)) {
      if (!validDraftId(id) || typeof raw !== "object" || raw === null) continue; // the page's mistake: left alone
      const r = raw as Partial<Record<keyof ReplicaDraft, unknown>>;
      const n = nodeDrafts.get(id);
      nodeDrafts.delete(id);
      if (r.deleted === true) {
        if (n) {
          try {
            await this.mailbox.deleteDraft(id);
          } catch (e) {
            if (!(e instanceof MailboxError)) throw e; // gone already
          }
        }
        h.change((d) => void delete d.drafts[id]);
        continue;
      }
      if (typeof r.to !== "string" || typeof r.body !== "string" || typeof r.saved !== "number") continue;
      const [to, body, seen] = [r.to, r.body, r.saved];
      if (seen === 0) {
        // words the page wrote: the node saves them (sealed and signed here), then says which version it holds
        let v: DraftView | undefined = n && n.to === canonical(to) && n.body === body ? n : undefined;
        if (!v) {
          if (!canonical(to) || body.length > MAX_BODY_CHARS) continue; // not a draft the node can keep; stays in the browser
          try {
            v = await this.mailbox.saveDraft(to, body, id, true);
          } catch (e) {
            if (!(e instanceof MailboxError)) throw e;
            this.log.warn(`the web app's draft ${id} was not saved: ${e.message}`);
            continue;
          }
        }
        const at = v.updatedAt;
        h.change((d) => {
          const x = d.drafts[id];
          if (x && !x.deleted && x.saved === 0 && x.to === to && x.body === body) x.saved = at;
        });
      } else if (!n) {
        // sent or deleted on the node (another tab, another device, the command line)
        h.change((d) => {
          const x = d.drafts[id];
          if (x && x.saved === seen) delete d.drafts[id];
        });
      } else if (n.updatedAt > seen) {
        h.change((d) => {
          const x = d.drafts[id];
          if (!x || x.saved !== seen) return; // the page wrote meanwhile: its words win, next pass
          if (x.to !== n.to) x.to = n.to;
          if (x.body !== n.body) x.body = n.body;
          x.at = n.updatedAt;
          x.saved = n.updatedAt;
        });
      }
    }
    // drafts the page has not seen yet (saved elsewhere)
    for (const n of nodeDrafts.values()) {
      h.change((d) => {
        if (!(n.id in d.drafts)) d.drafts[n.id] = { to: n.to, body: n.body, at: n.updatedAt, saved: n.updatedAt };
      });
    }
    // messages the child opened: marked read here (the receipt is signed here), then forgotten
    const read: unknown = h.doc().read;
    if (typeof read === "object" && read !== null && !Array.isArray(read)) {
      for (const id of Object.keys(read)) {
        if (/^[0-9a-f]{24}$/.test(id)) {
          try {
            await this.show(id);
          } catch (e) {
            const code = (e as { code?: unknown }).code;
            if (code !== "not-found" && code !== "bad-input") {
              this.log.warn(`message ${id} opened in the web app could not be marked read yet: ${(e as Error).message}`);
              continue; // tried again on the next pass
            }
          }
        }
        h.change((d) => void (d.read && delete d.read[id]));
      }
    }
    // the buddy list: the page's renames applied (signed here), then what the node holds written back
    await reconcileBuddies(h, this.mailbox, this.log);
  }

  /** Takes the replica's WebSocket once the web app has checked the page (origin, session, token). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("error", () => {});
      this.wss.emit("connection", ws, req);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.mailbox.off("changed", this.onMailbox);
    this.handle?.off("change", this.onReplica);
    await this.running?.catch(() => {});
    for (const ws of this.wss.clients) ws.terminate();
    await this.repo.shutdown();
    this.wss.close();
  }
}
