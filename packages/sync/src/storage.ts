// Where a node keeps what it must not lose, injected from outside (as automerge-repo's Repo takes a
// StorageAdapter): nothing in the library picks file paths on its own.
//   - the sealed store and local state: one SQLite database (better-sqlite3), the source of truth;
//   - the participant's documents: any automerge-repo storage adapter (a cache that is rebuilt from
//     the sealed store when lost).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type Database from "better-sqlite3";
import type { DocumentStorage } from "./document-store.js";
import { DurableFileStorage } from "./durable-storage.js";
import { openDatabase, type OpenOptions } from "./envelope-store.js";
import { MemoryStorage } from "./memory-storage.js";

export interface NodeStorage {
  /** The sealed store and the local state (contacts, keys, what was opened). */
  database: Database.Database;
  /** The participant's documents. */
  documents: DocumentStorage;
}

/**
 * The durable layout in one data directory: `pigeon.db` (SQLite, WAL, synchronous=FULL) and
 * `documents/` (DurableFileStorage: tmp + fsync + rename + directory fsync).
 */
export function fileStorage(dataDir: string, opts: OpenOptions = {}): NodeStorage {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return { database: openDatabase(join(dataDir, "pigeon.db"), opts), documents: new DurableFileStorage(join(dataDir, "documents")) };
}

/** Everything in memory (tests, simulators): nothing survives the process. */
export function memoryStorage(): NodeStorage {
  return { database: openDatabase(":memory:"), documents: new MemoryStorage() };
}
