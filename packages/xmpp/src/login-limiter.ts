// Password guessing, slowed down. Failed logins (every SASL mechanism, TCP and WebSocket alike) are
// counted per source address and for the account (the node has one). The first few are free; after
// that each failure starts a wait that doubles, up to a cap, during which every login attempt from
// that source — or, once the account's own count is over the limit, from anywhere — is refused
// unchecked (`temporary-auth-failure`). The session holds the answer to a failed attempt for as long
// as that wait, so a client that waits for its answer is never refused; one that does not (parallel
// connections, an impatient script) is. Nothing the client says changes the wait.
//
// The wait is never longer than the cap after the last *checked* failure, and refused attempts do not
// extend it: once an attacker stops, the owner's right password works again within the cap. While an
// attacker keeps guessing, everyone waits (at most one checked guess per cap per source, and per
// account). A success clears its source's count; the account's count is forgotten after a quiet while.
//
// Failures are logged as counts: the first of a quiet stretch at once, then one summary a minute.
import { isIPv4, isIPv6 } from "node:net";
import { silentLog, type Log } from "@pigeon/sync";

export interface LoginLimits {
  /** Failures allowed before the waits begin (per source, and for the account). */
  freeFailures: number;
  /** The wait after the last free failure; each further failure doubles it. */
  firstDelayMs: number;
  /** The longest wait. */
  maxDelayMs: number;
  /** A count with no failure for this long starts again from zero. */
  forgetAfterMs: number;
  /** Sources remembered at most (the oldest are forgotten first). */
  maxSources: number;
  /** How often the failures are summed up in the log. */
  summaryEveryMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = {
  freeFailures: 5,
  firstDelayMs: 1000,
  maxDelayMs: 30_000,
  forgetAfterMs: 15 * 60_000,
  maxSources: 10_000,
  summaryEveryMs: 60_000,
};

interface Tally {
  failures: number;
  lastFailure: number;
  /** No attempt is checked before this time. */
  until: number;
}

/**
 * What counts as one source: an IPv4 address, or an IPv6 /64 (one host can hold a whole /64, so
 * counting single IPv6 addresses would let it try from millions of them).
 */
export function sourceKey(address: string | undefined): string {
  if (!address) return "unknown";
  const a = address.toLowerCase().split("%")[0]!;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  if (isIPv4(a) || !isIPv6(a)) return a;
  const [head, tail] = a.includes("::") ? a.split("::") : [a, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const width = (g: string[]) => g.reduce((n, x) => n + (x.includes(".") ? 2 : 1), 0);
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - width(h) - width(t))).fill("0"), ...t];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(":")}::/64`;
}

export class LoginLimiter {
  readonly limits: LoginLimits;
  private readonly log: Log;
  private readonly now: () => number;
  private readonly sources = new Map<string, Tally>();
  private account: Tally = { failures: 0, lastFailure: 0, until: 0 };
  /** Counts since the last log line; undefined while all is quiet. */
  private period: { failed: number; refused: number; bySource: Map<string, number> } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: { limits?: Partial<LoginLimits>; log?: Log; now?: () => number } = {}) {
    this.limits = { ...DEFAULT_LOGIN_LIMITS, ...opts.limits };
    this.log = opts.log ?? silentLog;
    this.now = opts.now ?? Date.now;
  }

  /** The wait that follows the `failures`-th failure in a row. */
  delayAfter(failures: number): number {
    const { freeFailures, firstDelayMs, maxDelayMs } = this.limits;
    if (failures < freeFailures) return 0;
    return Math.min(firstDelayMs * 2 ** Math.min(failures - freeFailures, 30), maxDelayMs);
  }

  /**
   * Before checking a password from `source`: 0 if it may be checked now, otherwise how many ms the
   * logins from there must still wait (the attempt is then refused unchecked, and counted for the log).
   */
  admit(source: string): number {
    const now = this.now();
    const wait = Math.max(this.current(this.sources.get(source), now).until, this.current(this.account, now).until) - now;
    if (wait <= 0) return 0;
    this.note("refused", source);
    return wait;
  }

  /** A wrong password (or user name) from `source`: returns how long its answer is to be held, in ms. */
  failed(source: string): number {
    const now = this.now();
    const s = this.count(this.current(this.sources.get(source), now), now);
    this.sources.delete(source); // re-inserted last: the map stays ordered oldest first
    this.sources.set(source, s);
    this.account = this.count(this.current(this.account, now), now);
    this.prune(now);
    this.note("failed", source);
    return Math.max(s.until, this.account.until) - now;
  }

  /** A login from `source` succeeded: its count starts again (the account's fades with time). */
  succeeded(source: string): void {
    this.sources.delete(source);
  }

  /** Sources currently counted (for tests). */
  get trackedSources(): number {
    return this.sources.size;
  }

  close(): void {
    this.flush();
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private current(t: Tally | undefined, now: number): Tally {
    if (!t || now - t.lastFailure > this.limits.forgetAfterMs) return { failures: 0, lastFailure: 0, until: 0 };
    return t;
  }

  private count(t: Tally, now: number): Tally {
    const failures = t.failures + 1;
    return { failures, lastFailure: now, until: Math.max(t.until, now + this.delayAfter(failures)) };
  }

  private prune(now: number): void {
    for (const [key, t] of this.sources) {
      if (this.sources.size <= this.limits.maxSources && now - t.lastFailure <= this.limits.forgetAfterMs) break;
      this.sources.delete(key);
    }
  }

  // ---- the log: counts, not lines per attempt ----

  private note(kind: "failed" | "refused", source: string): void {
    if (!this.period) {
      this.period = { failed: 0, refused: 0, bySource: new Map() };
      this.log.warn(
        `xmpp: ${kind === "failed" ? "failed login" : "login refused (too many failures)"} from ${source}; ` +
          `more are counted and summed up every ${Math.round(this.limits.summaryEveryMs / 1000)} s`,
      );
      this.timer = setInterval(() => this.flush(), this.limits.summaryEveryMs);
      this.timer.unref();
      return;
    }
    this.period[kind]++;
    if (kind === "failed") this.period.bySource.set(source, (this.period.bySource.get(source) ?? 0) + 1);
  }

  private flush(): void {
    const p = this.period;
    if (!p) return;
    if (p.failed === 0 && p.refused === 0) {
      // a quiet stretch: the next failure is logged at once again
      clearInterval(this.timer);
      this.timer = undefined;
      this.period = undefined;
      return;
    }
    const top = [...p.bySource].sort((a, b) => b[1] - a[1]);
    const from = top.slice(0, 5).map(([s, n]) => `${s} ×${n}`).join(", ") + (top.length > 5 ? `, ${top.length - 5} more sources` : "");
    const now = this.now();
    const wait = Math.max(0, this.account.until - now);
    this.log.warn(
      `xmpp: since the last report, ${p.failed} more failed login${p.failed === 1 ? "" : "s"}${p.failed ? ` (${from})` : ""} and ` +
        `${p.refused} refused while logins wait${wait > 0 ? `; the account waits ${Math.ceil(wait / 1000)} s more` : ""}`,
    );
    this.period = { failed: 0, refused: 0, bySource: new Map() };
  }
}
