// Participants' documents: conversation segments and the person's own (buddy list, drafts), held in an
// automerge-repo Repo with crash-safe file storage and no network adapters — documents never sync
// through automerge-repo; only sealed envelopes leave the laptop. Only documents this user takes part
// in are ever loaded here.
import { createHash } from "node:crypto";
import * as A from "@automerge/automerge";
import { DocHandle, interpretAsDocumentId, Repo, type DocumentId, type StorageAdapterInterface, type StorageKey } from "@automerge/automerge-repo";

/** Any automerge-repo storage adapter; one that can set a damaged chunk aside says so with `quarantine`. */
export type DocumentStorage = StorageAdapterInterface & {
  /** Moves an unreadable chunk aside (never deleting it) and says where; without it the chunk is removed. */
  quarantine?(key: StorageKey): { from: string; to: string } | Promise<{ from: string; to: string }>;
  /** Waits for saves under way (on close). */
  drain?(): Promise<void>;
  /** Set on close: late throttled saves after the final flush are dropped. */
  closed?: boolean;
  /** Holds saves back until the returned function is called; called with false, the held saves are dropped (group commit). */
  hold?(): (kept?: boolean) => void;
};

/** Takes a document back, in memory, to what it held at `heads` (same handle, same actor). */
export function takeBack(handle: DocHandle<unknown>, heads: A.Heads): void {
  handle.update((d) => A.clone(A.view(d as A.Doc<unknown>, heads), { actor: A.getActorId(d as A.Doc<unknown>) }));
}

/**
 * Makes one change on the document in place, then stores it (`store`: sealed and fsynced); if storing
 * throws, the document goes back to what it held and the error is passed on, so a change that was
 * not stored never lingers in a document. (Making it on a clone instead copied the whole segment for
 * each message: ~20x the time of the change itself for a segment of 500 messages.)
 */
export function changeThenStore<T, R>(
  handle: DocHandle<T>,
  make: (d: A.Doc<T>) => A.Doc<T>,
  store: (change: Uint8Array) => R,
): { change: Uint8Array; stored: R } | undefined {
  const before = A.getHeads(handle.doc());
  let change: Uint8Array | undefined;
  handle.update((d) => {
    const next = make(d);
    change = next === d ? undefined : A.getLastLocalChange(next);
    return next;
  });
  if (!change) return undefined;
  try {
    return { change, stored: store(change) };
  } catch (e) {
    takeBack(handle as DocHandle<unknown>, before);
    throw e;
  }
}

const CHUNK_MAGIC = [0x85, 0x6f, 0x4a, 0x83];

/**
 * Checks a stored chunk the way Automerge's loader does before it reads one: each Automerge chunk in it
 * (magic, 4-byte checksum, type, LEB128 length, contents) whole, and its checksum (the first 4 bytes of
 * the SHA-256 of type, length and contents) right. A torn write, a truncated file or overwritten bytes
 * fail it. Loading the whole document to check it cost as much as loading it again (a 1,000-message
 * segment: ~0.3 s and its memory, issue 20), for every segment a view opens.
 */
export function checkChunks(bytes: Uint8Array): void {
  let at = 0;
  if (bytes.length === 0) throw new Error("empty chunk");
  while (at < bytes.length) {
    if (at + 10 > bytes.length || CHUNK_MAGIC.some((m, i) => bytes[at + i] !== m)) throw new Error(`not an Automerge chunk at byte ${at}`);
    let p = at + 9;
    let length = 0;
    for (let shift = 0; ; shift += 7) {
      if (p >= bytes.length || shift > 35) throw new Error(`bad chunk length at byte ${at}`);
      const b = bytes[p++]!;
      length += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) break;
    }
    const end = p + length;
    if (end > bytes.length) throw new Error(`chunk at byte ${at} is cut short (${bytes.length - p} of ${length} bytes)`);
    const sum = createHash("sha256").update(bytes.subarray(at + 8, end)).digest();
    for (let i = 0; i < 4; i++) if (sum[i] !== bytes[at + 4 + i]) throw new Error(`chunk at byte ${at} fails its checksum`);
    at = end;
  }
}

/**
 * An Automerge change's hash: the SHA-256 of its chunk after magic and checksum, for an uncompressed
 * change (type 1, what a local change is); decoding the whole change (A.decodeChange) only for any
 * other form. Catching up a 1,000-message segment decoded every change just for its hash.
 */
export function changeHash(change: Uint8Array): string {
  if (change.length > 10 && change[8] === 1 && CHUNK_MAGIC.every((m, i) => change[i] === m)) {
    const sum = createHash("sha256").update(change.subarray(8)).digest();
    // the chunk's own checksum is the hash's first 4 bytes: a mismatch means it is not one whole chunk
    if (sum[0] === change[4] && sum[1] === change[5] && sum[2] === change[6] && sum[3] === change[7]) return sum.toString("hex");
  }
  return A.decodeChange(change).hash;
}

/**
 * What the node keeps of one of its own changes (actor, sequence number, hash), read from the change's
 * header (after type and length: dependencies, actor, seq) with the hash as `changeHash` makes it;
 * decoding every op of it (A.decodeChange) for these three was 4 % of a node's time sending.
 */
export function changeMeta(change: Uint8Array): { actor: string; seq: number; hash: string } {
  if (change.length > 10 && change[8] === 1 && CHUNK_MAGIC.every((m, i) => change[i] === m)) {
    let p = 9;
    const uleb = (): number => {
      let v = 0;
      for (let shift = 0; ; shift += 7) {
        if (p >= change.length || shift > 35) throw new RangeError("cut short");
        const b = change[p++]!;
        v += (b & 0x7f) * 2 ** shift;
        if (!(b & 0x80)) return v;
      }
    };
    try {
      uleb(); // the chunk's length
      const deps = uleb(); // (not `p += 32 * uleb()`: that reads p before uleb moves it)
      p += 32 * deps;
      const n = uleb();
      const actor = Buffer.from(change.buffer, change.byteOffset + p, n).toString("hex");
      p += n;
      const seq = uleb();
      if (p <= change.length) return { actor, seq, hash: changeHash(change) };
    } catch {
      // not the form expected: decoded below
    }
  }
  const { actor, seq, hash } = A.decodeChange(change);
  return { actor, seq, hash };
}

export interface DocumentLog {
  warn(msg: string): void;
}

export class DocumentStore {
  readonly repo: Repo;
  private readonly handles = new Map<string, DocHandle<unknown>>();
  /** Documents removed for good: a save automerge-repo had already scheduled must not write them again. */
  private readonly removed = new Set<string>();
  /** Documents unloaded (evict): nothing may write or remove their chunks until they are opened again. */
  private readonly unloaded = new Set<string>();
  /** Documents that may be unloaded when not in use (conversation segments), least recently opened first. */
  private readonly evictable = new Set<string>();

  constructor(readonly storage: DocumentStorage, private readonly log: DocumentLog = { warn() {} }) {
    // a document removed or unloaded is written by no late save of automerge-repo's; an empty chunk is
    // never a document (it is what an unloaded handle's document saves as)
    const still = (key: StorageKey) => !this.removed.has(key[0]!) && !this.unloaded.has(key[0]!);
    const guarded: StorageAdapterInterface = {
      load: (key) => storage.load(key),
      save: (key, data) => (still(key) && data.length > 0 ? storage.save(key, data) : Promise.resolve()),
      remove: (key) => (this.unloaded.has(key[0]!) ? Promise.resolve() : storage.remove(key)),
      loadRange: (prefix) => storage.loadRange(prefix),
      removeRange: (prefix) => (this.unloaded.has(prefix[0]!) ? Promise.resolve() : storage.removeRange(prefix)),
    };
    this.repo = new Repo({ storage: guarded, network: [], sharePolicy: async () => false });
    // automerge-repo also saves each document by itself, 100 ms after a change, and nothing hears that
    // save fail: on a full disk it was an unhandled rejection, which stops a process that embeds the
    // node and has no handler of its own. Its failures are dropped here; the saves that count are this
    // store's own (flush, evict, close), which pass failures on to the mailbox. A failed save moves no
    // stored heads, so the next one writes what it could not.
    const subsystem = this.repo.storageSubsystem!;
    const saveDoc = subsystem.saveDoc.bind(subsystem);
    this.save = (id) => saveDoc(id, this.repo.handles[id]!.doc());
    subsystem.saveDoc = (id, doc) => saveDoc(id, doc).catch(() => {});
  }

  /** Writes what a loaded document holds and storage lacks; a failure is thrown to the caller. */
  private readonly save: (id: DocumentId) => Promise<void>;

  static documentId(binary: Uint8Array): DocumentId {
    return interpretAsDocumentId(binary as Parameters<typeof interpretAsDocumentId>[0]);
  }

  /**
   * Checks every stored chunk of a document before automerge-repo loads it. A chunk that does not
   * parse (torn by a crash, truncated, overwritten) is moved to `documents-damaged/`, never deleted,
   * and reported; the caller rebuilds what it held from the sealed store.
   */
  private async quarantineDamaged(id: DocumentId): Promise<{ chunks: number; damaged: string[] }> {
    const chunks = await this.storage.loadRange([id]);
    const damaged: string[] = [];
    for (const c of chunks) {
      try {
        if (c.data) checkChunks(c.data);
        continue;
      } catch (e) {
        const what = `${c.key.join("/")}`;
        let done: string;
        if (this.storage.quarantine) {
          const moved = await this.storage.quarantine(c.key);
          done = `${moved.from} is damaged (${(e as Error).message}); moved it to ${moved.to}`;
        } else {
          await this.storage.remove(c.key);
          done = `document chunk ${what} is damaged (${(e as Error).message}); removed it`;
        }
        damaged.push(what);
        this.log.warn(`${done} and rebuilding the document from the sealed store`);
      }
    }
    return { chunks: chunks.length - damaged.length, damaged };
  }

  /**
   * Loads a document, or creates it from `initial` when storage has none. `actor` is set on the loaded
   * copy so local changes carry an actor id bound to this user's signing key.
   */
  async open<T>(
    binaryId: Uint8Array,
    initial: () => A.Doc<T>,
    actor: string,
    evictable = false,
  ): Promise<{ handle: DocHandle<T>; created: boolean; damaged: string[] }> {
    const id = DocumentStore.documentId(binaryId);
    this.removed.delete(id);
    this.unloaded.delete(id);
    if (evictable) {
      // most recently opened last
      this.evictable.delete(id);
      this.evictable.add(id);
    }
    const cached = this.handles.get(id) as DocHandle<T> | undefined;
    if (cached) return { handle: cached, created: false, damaged: [] };
    const { chunks, damaged } = await this.quarantineDamaged(id);
    let handle: DocHandle<T>;
    let created = false;
    if (chunks > 0) {
      // findClassic, not find: automerge-repo 2.5.6's find races each load against one promise that
      // never settles, which then holds every document it ever loaded (with its load's patches, the whole
      // document again): ~2 MiB kept per 1,000-message segment opened, unloaded or not (bench:history)
      handle = await this.repo.findClassic<T>(id, { allowableStates: ["ready"] });
      if (!handle.isReady()) throw new Error(`document ${id} did not load from its ${chunks} stored chunk(s)`);
    } else {
      handle = this.repo.import<T>(A.save(initial()), { docId: id });
      created = true;
    }
    if (A.getActorId(handle.doc()) !== actor) handle.update((d) => A.clone(d, { actor }));
    this.handles.set(id, handle as DocHandle<unknown>);
    // opened inside a group commit: a failed commit takes it back to what storage held
    if (this.marked && !this.marked.has(id)) this.marked.set(id, A.getHeads(handle.doc() as A.Doc<unknown>));
    return { handle, created, damaged };
  }

  /** Each open document's heads when the group commit in progress began (or when it was opened in it). */
  private marked: Map<string, A.Heads> | undefined;

  /** A group commit begins: what every document holds now is what a failed commit goes back to. */
  mark(): void {
    this.marked = new Map();
    for (const [id, h] of this.handles) this.marked.set(id, A.getHeads(h.doc() as A.Doc<unknown>));
  }

  /** The group committed: its changes stay. */
  unmark(): void {
    this.marked = undefined;
  }

  /**
   * The group's commit failed: every document goes back, in memory, to what it held when the group
   * began, so what is shown is what the sealed store kept (the saves held meanwhile were dropped).
   * Returns how many documents changed. The same handles stay, so whoever holds one sees it.
   */
  rollback(): number {
    const marked = this.marked;
    this.marked = undefined;
    if (!marked) return 0;
    let n = 0;
    for (const [id, heads] of marked) {
      const h = this.handles.get(id);
      if (!h) continue;
      const doc = h.doc() as A.Doc<unknown>;
      const now = A.getHeads(doc);
      if (now.length === heads.length && now.every((x) => heads.includes(x))) continue;
      // same actor: the changes taken back were never stored nor sent, so their numbers are free again
      takeBack(h, heads);
      n++;
    }
    return n;
  }

  async flush(handle: DocHandle<unknown>): Promise<void> {
    await this.save(handle.documentId);
  }

  /** How many evictable documents are loaded. */
  get loadedEvictable(): number {
    return this.evictable.size;
  }

  /**
   * Unloads the least recently opened evictable documents past `keep`, each once its saves are written
   * (a document whose save fails stays loaded). A loaded 1,000-message segment holds 5-13 MiB of
   * Automerge memory: a node that showed every segment of a long history would otherwise keep them all.
   * Only between groups of work: never while a group commit is open (its saves are held back), and
   * the caller makes sure no one holds a handle of them (the mailbox runs it as a piece of work).
   */
  async evict(keep: number): Promise<number> {
    if (this.marked) return 0;
    let n = 0;
    for (const id of [...this.evictable]) {
      if (this.evictable.size <= keep) break;
      this.evictable.delete(id);
      const handle = this.handles.get(id);
      if (!handle) continue;
      try {
        await this.save(id as DocumentId);
      } catch {
        this.evictable.add(id); // not written: keep it loaded, tried again later
        continue;
      }
      this.handles.delete(id);
      // automerge-repo 2.5.6 unloads a handle by setting its document to an empty one, which its own
      // save listener then writes over the stored document (chunks replaced by an empty snapshot: the
      // messages gone). Written already (the flush above): no listener may save it again.
      handle.removeAllListeners("heads-changed");
      this.unloaded.add(id);
      await this.repo.removeFromCache(id as DocumentId);
      n++;
    }
    return n;
  }

  /**
   * Drops a document for good: its handle, and every chunk of it in storage (a node forgetting a
   * conversation segment). Pending saves are written first, so none lands after the removal.
   */
  async remove(binaryId: Uint8Array): Promise<void> {
    const id = DocumentStore.documentId(binaryId);
    this.removed.add(id);
    this.unloaded.delete(id); // removed for good: its chunks go now
    this.evictable.delete(id);
    if (this.handles.has(id)) {
      this.handles.delete(id);
      this.repo.delete(id);
    }
    await this.storage.removeRange([id]);
  }

  async close(): Promise<void> {
    try {
      await Promise.all(Object.keys(this.repo.handles).map((id) => this.save(id as DocumentId)));
    } finally {
      // automerge-repo 2.5.6's shutdown throws if any handle is not ready; nothing is lost by ignoring it
      await this.repo.shutdown().catch(() => {});
      this.storage.closed = true;
      await this.storage.drain?.();
    }
  }
}
