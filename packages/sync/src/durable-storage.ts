// automerge-repo StorageAdapter that survives power loss: every save is written to a temporary file,
// fsynced, renamed over the old one and the directory fsynced. A crash leaves either the old or the
// new chunk, never a torn one. (The stock NodeFS adapter writes in place and caches without bound.)
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { basename, dirname, join, relative } from "node:path";
import type { Chunk, StorageAdapterInterface, StorageKey } from "@automerge/automerge-repo";

// Key parts as file names: filesystem-safe and reversible; keeps the common [A-Za-z0-9_-] readable.
// Any other UTF-16 code unit is escaped, "%hh" below 0x100 and "%uhhhh" above ('u' is no hex digit, so
// the two never mix up). Names written before "%u" existed (every part whose code units are below
// 0x100, which is every key automerge-repo makes) are unchanged.
function encodePart(part: string): string {
  return part.replace(/[^A-Za-z0-9_-]/g, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? "%" + code.toString(16).padStart(2, "0") : "%u" + code.toString(16).padStart(4, "0");
  });
}

function decodePart(name: string): string {
  return name.replace(/%u([0-9a-f]{4})|%([0-9a-f]{2})/g, (_, u: string | undefined, h: string | undefined) =>
    String.fromCharCode(parseInt((u ?? h)!, 16)),
  );
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class DurableFileStorage implements StorageAdapterInterface {
  private tmpCounter = 0;
  /** Folders known to exist (removeRange forgets them). */
  private readonly made = new Set<string>();
  /** Set once the store is flushed and closed: automerge-repo's late throttled saves are redundant then. */
  closed = false;
  constructor(readonly root: string) {}

  pathOf(key: StorageKey): string {
    return this.path(key);
  }

  private path(key: StorageKey): string {
    if (key.length === 0) throw new Error("empty storage key");
    return join(this.root, ...key.map(encodePart)) + ".chunk";
  }

  async load(key: StorageKey): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
  }

  private readonly inFlight = new Set<Promise<void>>();

  /** Resolves once every save already started has finished. */
  async drain(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * While held, saves wait (group commit: no document is written before the sealed store commits).
   * Released with `kept = false` (the group's commit failed), the saves held are dropped unwritten:
   * they hold changes the mailbox takes back from the documents in memory (DocumentStore.rollback).
   */
  private gate: Promise<boolean> | undefined;

  /** Holds saves back until the returned function is called (with false: drops them). */
  hold(): (kept?: boolean) => void {
    let release!: (kept: boolean) => void;
    const gate = new Promise<boolean>((r) => (release = r));
    this.gate = gate;
    return (kept = true) => {
      if (this.gate === gate) this.gate = undefined;
      release(kept);
    };
  }

  save(key: StorageKey, data: Uint8Array): Promise<void> {
    if (this.closed) return Promise.resolve();
    const gate = this.gate;
    const p = (gate ? gate.then((kept) => (kept ? this.write(key, data) : this.drop(key))) : this.write(key, data)).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    return p;
  }

  /**
   * Documents whose last save was dropped: automerge-repo removes the chunks a snapshot replaces right
   * after saving it, and those must stay when the snapshot was never written.
   */
  private readonly dropped = new Set<string>();

  private drop(key: StorageKey): void {
    this.dropped.add(key[0]!);
  }

  private async write(key: StorageKey, data: Uint8Array): Promise<void> {
    this.dropped.delete(key[0]!);
    const file = this.path(key);
    const dir = file.slice(0, file.lastIndexOf("/"));
    // one mkdir per folder, not one per save (it was 3 % of a node's time sending)
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    const tmp = `${file}.tmp${process.pid}.${this.tmpCounter++}`;
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      await fh.close();
      await unlink(tmp).catch(() => {});
      throw e;
    }
    await fh.close();
    await rename(tmp, file);
    fsyncDir(dir);
  }

  async remove(key: StorageKey): Promise<void> {
    if (this.dropped.has(key[0]!)) return;
    await unlink(this.path(key)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
  }

  async loadRange(prefix: StorageKey): Promise<Chunk[]> {
    const out: Chunk[] = [];
    const walk = async (dir: string, key: string[]): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
        throw e;
      }
      for (const ent of entries) {
        if (ent.isDirectory()) await walk(join(dir, ent.name), [...key, decodePart(ent.name)]);
        else if (ent.name.endsWith(".chunk"))
          out.push({ key: [...key, decodePart(ent.name.slice(0, -6))], data: new Uint8Array(await readFile(join(dir, ent.name))) });
      }
    };
    // the prefix may name a file itself, a directory, or both
    const single = await this.load(prefix);
    if (single) out.push({ key: [...prefix], data: single });
    await walk(join(this.root, ...prefix.map(encodePart)), [...prefix]);
    return out;
  }

  async removeRange(prefix: StorageKey): Promise<void> {
    this.dropped.delete(prefix[0]!);
    this.made.clear();
    await this.remove(prefix);
    await rm(join(this.root, ...prefix.map(encodePart)), { recursive: true, force: true });
  }

  /**
   * Moves a chunk that does not parse (torn by a crash, truncated, overwritten) aside into a
   * `<root>-damaged` folder beside the store, never deleting it. Says from where to where, for the log.
   */
  quarantine(key: StorageKey): { from: string; to: string } {
    const file = this.path(key);
    const dest = join(dirname(this.root), `${basename(this.root)}-damaged`, relative(this.root, file));
    mkdirSync(dirname(dest), { recursive: true, mode: 0o700 });
    renameSync(file, dest);
    return { from: relative(dirname(this.root), file), to: relative(dirname(this.root), dest) };
  }
}
