// Reading with the node stopped: the `pigeon` command opens the data directory's mailbox itself, the
// way the node does (daemon.ts: fileStorage(dataDir), then PigeonNode.open constructs the Mailbox
// and recovers it), answers, and closes it. Never while a node runs: then the node owns
// the store and every command goes through its control API. The mailbox lock (sync/mailbox-lock.ts),
// which a running node holds for its whole life, makes sure of that even while a node is starting.
import { fileStorage, Mailbox, tryLockMailbox, type Log, type MailboxLock } from "@pigeon/sync";
import { loadIdentity, runningNode } from "./data-dir.js";
import { loadSchoolKey } from "./school.js";

/** A node runs (or has just started) for this data directory: ask it instead. */
export class NodeIsRunning extends Error {}

/** Another `pigeon` command has the mailbox open right now, for longer than we waited. */
export class MailboxBusy extends Error {}

const warnings: Log = {
  debug: () => {},
  info: () => {},
  warn: (m) => console.error(`pigeon: warning: ${m}`),
  error: (m) => console.error(`pigeon: error: ${m}`),
};

async function lockWhileNoNode(dataDir: string, waitMs: number): Promise<MailboxLock> {
  const end = Date.now() + waitMs;
  for (;;) {
    if (runningNode(dataDir)) throw new NodeIsRunning(`a pigeon node is running for ${dataDir}`);
    const lock = tryLockMailbox(dataDir);
    if (lock) return lock;
    // held by a node that is starting (its node.json comes once it listens) or by another command
    if (Date.now() > end)
      throw new MailboxBusy(`the mailbox in ${dataDir} is busy (another pigeon command, or a node that is starting); try again in a moment`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Runs fn with the data directory's mailbox opened in this process, then closes it. Throws
 * NodeIsRunning if a node runs for the directory (go through its control API instead). The data
 * directory must hold an identity.
 */
export async function withOfflineMailbox<T>(dataDir: string, fn: (mailbox: Mailbox) => Promise<T>, waitMs = 10_000): Promise<T> {
  const identity = loadIdentity(dataDir);
  const lock = await lockWhileNoNode(dataDir, waitMs);
  try {
    // as the node opens it (PigeonNode.open): recover() opens what a crash left unopened, so the views are whole
    // a school server's directory is written offline too (pigeon school enrol with the node stopped)
    const school = loadSchoolKey(dataDir);
    const mailbox = new Mailbox({ identity, storage: fileStorage(dataDir), log: warnings, ...(school ? { school } : {}) });
    try {
      await mailbox.recover();
      return await fn(mailbox);
    } finally {
      await mailbox.close();
    }
  } finally {
    lock.release();
  }
}
