// One logger for the whole node: levels, a debug switch, and optional copies to a file, so the CLI's
// "see the node's log" points at something real. Repeated lines are counted, not repeated, so a
// flood of refused connections or junk envelopes cannot fill the disk with the log itself.
import { appendFileSync } from "node:fs";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Log {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const PREFIX: Record<LogLevel, string> = { debug: "debug: ", info: "", warn: "warning: ", error: "error: " };

export interface LogOptions {
  /** Lowest level written (default "info"; "debug" with $PIGEON_DEBUG set). */
  level?: LogLevel;
  /** Where lines go besides the file (default: standard output). */
  write?: (line: string) => void;
  /** Also append every line to this file (e.g. `<data dir>/node.log`). */
  file?: string;
  now?: () => number;
  /**
   * The same line at most this many times per minute; past that, lines are counted and one summary
   * ("… (N more like this in the last minute)") is written when the minute is over. Default 5.
   */
  perMinute?: number;
}

/** A Log that writes "HH:MM:SS level: message" lines, rate-limited per distinct message shape. */
export function createLog(opts: LogOptions = {}): Log {
  const min = RANK[opts.level ?? (process.env.PIGEON_DEBUG ? "debug" : "info")];
  const write = opts.write ?? ((l: string) => process.stdout.write(l + "\n"));
  const now = opts.now ?? Date.now;
  const perMinute = opts.perMinute ?? 5;
  const seen = new Map<string, { window: number; count: number; dropped: number }>();
  let fileBroken = false;
  const out = (line: string) => {
    write(line);
    if (opts.file && !fileBroken) {
      try {
        appendFileSync(opts.file, line + "\n", { mode: 0o600 });
      } catch {
        fileBroken = true; // a full disk must not stop the node; the console still has it
      }
    }
  };
  const emit = (level: LogLevel, msg: string) => {
    if (RANK[level] < min) return;
    const t = now();
    const stamp = new Date(t).toISOString().slice(11, 19);
    // lines that differ only in numbers, addresses or ids count as the same line
    const shape = `${level}|${msg.replace(/[0-9a-f]{8,}|\d+(\.\d+)*/gi, "#")}`;
    const minute = Math.floor(t / 60_000);
    let s = seen.get(shape);
    if (s && s.window !== minute) {
      if (s.dropped) out(`${stamp} ${PREFIX[level]}(${s.dropped} more like "${msg.slice(0, 80)}" in the last minute)`);
      s = undefined;
    }
    if (!s) {
      if (seen.size > 10_000) seen.clear();
      s = { window: minute, count: 0, dropped: 0 };
      seen.set(shape, s);
    }
    if (++s.count > perMinute) {
      s.dropped++;
      return;
    }
    out(`${stamp} ${PREFIX[level]}${msg}`);
  };
  return {
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
  };
}
