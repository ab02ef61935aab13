// One process at a time has a data directory's mailbox open: the running node, or a `pigeon` command
// reading it while the node is stopped. Two processes saving and compacting the same documents could
// delete each other's chunks. The lock is SQLite's exclusive lock on
// `mailbox.lock` in the data directory, a POSIX advisory lock: the system drops it when the holder
// exits, even by kill -9, so a crash never leaves a stale lock behind.
import { join } from "node:path";
import Database from "better-sqlite3";

export const MAILBOX_LOCK_FILE = "mailbox.lock";

export interface MailboxLock {
  release(): void;
}

/** Takes the data directory's mailbox lock, or returns undefined if another holder has it now. */
export function tryLockMailbox(dataDir: string): MailboxLock | undefined {
  const db = new Database(join(dataDir, MAILBOX_LOCK_FILE), { timeout: 0 });
  try {
    db.exec("BEGIN EXCLUSIVE");
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === "SQLITE_BUSY") return undefined;
    throw e;
  }
  return {
    release: () => {
      if (db.open) db.close();
    },
  };
}
