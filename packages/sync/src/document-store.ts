// Participants' documents: conversation segments and private documents (drafts), held in an
// automerge-repo Repo with crash-safe file storage and no network adapters — documents never sync
// through automerge-repo; only sealed envelopes leave the laptop. Only documents this user takes part
// in are ever loaded here.
import * as A from "@automerge/automerge";
import { DocHandle, interpretAsDocumentId, Repo, type DocumentId } from "@automerge/automerge-repo";
import { DurableFileStorage } from "./durable-storage.js";

export class DocumentStore {
  readonly repo: Repo;
  private readonly handles = new Map<string, DocHandle<unknown>>();

  constructor(dir: string) {
    this.repo = new Repo({ storage: new DurableFileStorage(dir), network: [], sharePolicy: async () => false });
  }

  static documentId(binary: Uint8Array): DocumentId {
    return interpretAsDocumentId(binary as Parameters<typeof interpretAsDocumentId>[0]);
  }

  /**
   * Loads a document, or creates it from `initial` when storage has none. `actor` is set on the loaded
   * copy so local changes carry an actor id bound to this user's signing key.
   */
  async open<T>(binaryId: Uint8Array, initial: () => A.Doc<T>, actor: string): Promise<{ handle: DocHandle<T>; created: boolean }> {
    const id = DocumentStore.documentId(binaryId);
    const cached = this.handles.get(id) as DocHandle<T> | undefined;
    if (cached) return { handle: cached, created: false };
    let handle: DocHandle<T>;
    let created = false;
    try {
      handle = await this.repo.find<T>(id, { allowableStates: ["ready"] });
    } catch {
      // With no network adapters an absent document is reported unavailable at once.
      handle = this.repo.import<T>(A.save(initial()), { docId: id });
      created = true;
    }
    if (A.getActorId(handle.doc()) !== actor) handle.update((d) => A.clone(d, { actor }));
    this.handles.set(id, handle as DocHandle<unknown>);
    return { handle, created };
  }

  async flush(handle: DocHandle<unknown>): Promise<void> {
    await this.repo.flush([handle.documentId]);
  }

  async close(): Promise<void> {
    await this.repo.flush();
    await this.repo.shutdown();
  }
}
