// Group commit (issue 20): sends that queue up behind each other in the mailbox share one SQLite
// transaction (one fsync) and one save of each document they changed, instead of one fsync per write
// and one document save per message. Each caller is answered only after the commit that holds its
// message, so an answered message still survives kill -9 and power loss. Until then nothing of the
// group leaves the laptop (its "envelope" events wait for the commit) and no document is written to
// disk (a document never holds a message the sealed store does not).
import { performance } from "node:perf_hooks";
import type Database from "better-sqlite3";
import type { DocHandle } from "@automerge/automerge-repo";

/** A group is committed once it holds this many messages, even if more are waiting... */
export const GROUP_MAX_JOBS = 128;
/** ...or once it has been open this long (real time): a busy laptop still answers within it. */
export const GROUP_MAX_MS = 250;

export interface GroupHooks {
  /** Saves a document (failures are remembered by the caller, not thrown). */
  flush(handle: DocHandle<unknown>): Promise<void>;
  /** Holds document saves back until the returned function is called; with false they are dropped (see DurableFileStorage.hold). */
  hold?(): (kept?: boolean) => void;
  /** A group begins: what the documents in memory hold now is what a failed commit goes back to. */
  began(): void;
  /** The group committed. */
  committed(): void;
  /**
   * The commit failed and was rolled back: the documents in memory go back to what they held when the
   * group began, what memory keeps about the rows is dropped; says what callers hear.
   */
  rolledBack(e: unknown, jobs: number): unknown;
}

interface Open {
  answers: { done: () => void; fail: (e: unknown) => void }[];
  dirty: Set<DocHandle<unknown>>;
  after: (() => void)[];
  started: number;
  release?: (kept?: boolean) => void;
}

export class GroupCommit {
  private open: Open | undefined;
  /** Grouped jobs queued that have not started yet: while there are some, the group stays open. */
  waiting = 0;
  /** Groups committed, and callers they answered (`pigeon status`, benchmarks: callers per fsync). */
  commits = 0;
  answered = 0;

  constructor(private readonly db: Database.Database, private readonly hooks: GroupHooks) {}

  get active(): boolean {
    return this.open !== undefined;
  }

  /** Opens the group's transaction unless one is open. */
  begin(): void {
    if (this.open) return;
    this.db.exec("BEGIN IMMEDIATE");
    this.hooks.began();
    this.open = { answers: [], dirty: new Set(), after: [], started: performance.now(), release: this.hooks.hold?.() };
  }

  /** Inside a group, a document save waits for the commit (returns true); outside, the caller saves now. */
  deferFlush(handle: DocHandle<unknown>): boolean {
    if (!this.open) return false;
    this.open.dirty.add(handle);
    return true;
  }

  /** Runs `fn` once the group is committed (now, when no group is open); dropped if the commit fails. */
  afterCommit(fn: () => void): void {
    if (this.open) this.open.after.push(fn);
    else fn();
  }

  /** The caller is answered (or told it failed) when the group is committed. */
  answerAfterCommit(done: () => void, fail: (e: unknown) => void): void {
    if (this.open) this.open.answers.push({ done, fail });
    else done();
  }

  /** Whether the group should be committed now: nobody else is waiting to join it, or it is full or old. */
  get due(): boolean {
    const g = this.open;
    // SQLite rolls a transaction back by itself on some errors (a full disk): then commit (and fail) at once
    return !!g && (!this.db.inTransaction || this.waiting === 0 || g.answers.length >= GROUP_MAX_JOBS || performance.now() - g.started >= GROUP_MAX_MS);
  }

  /** Commits the open group (one fsync), saves the documents it changed, then answers its callers. */
  async commit(): Promise<void> {
    const g = this.open;
    if (!g) return;
    this.open = undefined;
    try {
      this.db.exec("COMMIT");
    } catch (e) {
      // a full disk fails the commit: nothing of the group was stored, and every caller hears so
      if (this.db.inTransaction) {
        try {
          this.db.exec("ROLLBACK");
        } catch {
          // already rolled back by SQLite
        }
      }
      g.release?.(false); // the documents' saves held hold the changes taken back
      const told = this.hooks.rolledBack(e, g.answers.length);
      for (const a of g.answers) a.fail(told);
      return;
    }
    this.hooks.committed();
    g.release?.();
    this.commits++;
    this.answered += g.answers.length;
    for (const fn of g.after) fn();
    for (const h of g.dirty) await this.hooks.flush(h);
    for (const a of g.answers) a.done();
  }
}
