// One logger for the whole node: levels, a debug switch, and optional copies to a file, so the CLI's
// "see the node's log" points at something real. A flood of refused connections, junk envelopes or
// broken XMPP streams cannot fill the disk with the log itself: repeated lines are counted, not
// repeated; lines that start alike (the same first three words: "refused a connection …", "xmpp:
// closing the …") have a budget per minute, so text a peer chose cannot make every line new, and all
// lines together have one too; what is over a budget is counted and the counts are written when the
// minute is over. Each line has a bounded length, and the file is moved aside to `<file>.1` when it
// grows past its size limit.
import { appendFileSync, renameSync, statSync } from "node:fs";

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

export const DEFAULT_LOG_PER_MINUTE = 5;
export const DEFAULT_LOG_GROUP_PER_MINUTE = 30;
export const DEFAULT_LOG_TOTAL_PER_MINUTE = 120;
export const DEFAULT_LOG_MAX_LINE_CHARS = 1000;
export const DEFAULT_LOG_MAX_FILE_BYTES = 10 * 1024 * 1024;

export interface LogOptions {
  /** Lowest level written (default "info"; "debug" with $PIGEON_DEBUG set). */
  level?: LogLevel;
  /** Where lines go besides the file (default: standard output). */
  write?: (line: string) => void;
  /** Also append every line to this file (e.g. `<data dir>/node.log`). */
  file?: string;
  now?: () => number;
  /**
   * The same line (lines that differ only in numbers, addresses or ids are the same) at most this
   * many times per minute; past that, lines are counted and one summary ("(N more like "…" in the
   * last minute)") is written when the minute is over. Default 5.
   */
  perMinute?: number;
  /**
   * Lines that start with the same three words (numbers and ids aside) at most this many per minute
   * (default 30), so lines that all differ further on (a peer's own text in each) cannot flood the
   * log, nor crowd out other kinds of lines; what is over is counted and summed up likewise.
   */
  groupPerMinute?: number;
  /** All lines together at most this many per minute (default 120); what is over is counted likewise. */
  totalPerMinute?: number;
  /** The "minute" the limits count in, in ms (default 60 000; tests make it shorter). */
  windowMs?: number;
  /** Longer messages are cut to this many characters (default 1000). */
  maxLineChars?: number;
  /** When the file would grow past this many bytes it is renamed to `<file>.1` and started anew (default 10 MiB). */
  maxFileBytes?: number;
}

interface Counted {
  level: LogLevel;
  sample: string;
  count: number;
  dropped: number;
}

/** A Log that writes "HH:MM:SS level: message" lines, rate-limited per distinct message shape and in total. */
export function createLog(opts: LogOptions = {}): Log {
  const min = RANK[opts.level ?? (process.env.PIGEON_DEBUG ? "debug" : "info")];
  const write = opts.write ?? ((l: string) => process.stdout.write(l + "\n"));
  const now = opts.now ?? Date.now;
  const perMinute = opts.perMinute ?? DEFAULT_LOG_PER_MINUTE;
  const groupPerMinute = opts.groupPerMinute ?? DEFAULT_LOG_GROUP_PER_MINUTE;
  const totalPerMinute = opts.totalPerMinute ?? DEFAULT_LOG_TOTAL_PER_MINUTE;
  const windowMs = opts.windowMs ?? 60_000;
  const maxLineChars = opts.maxLineChars ?? DEFAULT_LOG_MAX_LINE_CHARS;
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_LOG_MAX_FILE_BYTES;
  const period = windowMs === 60_000 ? "the last minute" : `the last ${windowMs / 1000} s`;

  // the counts of the current window; a shape or group is only remembered once one of its lines was
  // written, so there are never more of them than `totalPerMinute`
  let window = Math.floor(now() / windowMs);
  const seen = new Map<string, Counted>();
  const groups = new Map<string, Counted>();
  let written = 0;
  let overBudget = 0;
  let summaryTimer: NodeJS.Timeout | undefined;

  let fileBroken = false;
  let fileBytes: number | undefined;
  const toFile = (line: string) => {
    if (!opts.file || fileBroken) return;
    try {
      if (fileBytes === undefined) {
        try {
          fileBytes = statSync(opts.file).size;
        } catch {
          fileBytes = 0;
        }
      }
      const bytes = Buffer.byteLength(line) + 1;
      if (fileBytes > 0 && fileBytes + bytes > maxFileBytes) {
        renameSync(opts.file, `${opts.file}.1`);
        fileBytes = 0;
      }
      appendFileSync(opts.file, line + "\n", { mode: 0o600 });
      fileBytes += bytes;
    } catch {
      fileBroken = true; // a full disk must not stop the node; the console still has it
    }
  };
  const out = (t: number, level: LogLevel, msg: string) => {
    const line = `${new Date(t).toISOString().slice(11, 19)} ${PREFIX[level]}${msg}`;
    write(line);
    toFile(line);
  };

  /** Writes the counts of a window that is over and starts counting anew. */
  const summarise = (t: number) => {
    clearTimeout(summaryTimer);
    summaryTimer = undefined;
    for (const s of seen.values())
      if (s.dropped) out(t, s.level, `(${s.dropped} more like "${s.sample.slice(0, 80)}" in ${period})`);
    for (const g of groups.values())
      if (g.dropped) out(t, g.level, `(${g.dropped} more lines starting "${g.sample}" in ${period} not written: at most ${groupPerMinute} a minute)`);
    if (overBudget)
      out(t, "warn", `(${overBudget} more lines in ${period} not written: the log takes at most ${totalPerMinute} lines a minute)`);
    seen.clear();
    groups.clear();
    written = 0;
    overBudget = 0;
  };
  const roll = (t: number) => {
    const w = Math.floor(t / windowMs);
    if (w === window) return;
    summarise(t);
    window = w;
  };
  /** Counts are written when the window is over, even if nothing else is logged by then. */
  const summaryDue = () => {
    if (summaryTimer) return;
    summaryTimer = setTimeout(() => {
      summaryTimer = undefined;
      roll(Math.max(now(), (window + 1) * windowMs));
    }, Math.max(0, (window + 1) * windowMs - now()) + 50);
    summaryTimer.unref();
  };

  const emit = (level: LogLevel, message: string) => {
    if (RANK[level] < min) return;
    const t = now();
    roll(t);
    const msg = tidy(message, maxLineChars);
    // lines that differ only in numbers, addresses or ids count as the same line
    const normal = msg.slice(0, 200).replace(/[0-9a-f]{8,}|\d+(\.\d+)*/gi, "#");
    const shape = `${level}|${normal}`;
    const start = normal.split(/\s+/, 3).join(" ").slice(0, 40);
    let s = seen.get(shape);
    let g = groups.get(start);
    const over = s && s.count >= perMinute ? s : g && g.count >= groupPerMinute ? g : undefined;
    if (over || written >= totalPerMinute) {
      if (over) over.dropped++;
      else overBudget++;
      summaryDue();
      return;
    }
    if (!s) seen.set(shape, (s = { level, sample: msg, count: 0, dropped: 0 }));
    if (!g) groups.set(start, (g = { level, sample: start, count: 0, dropped: 0 }));
    s.count++;
    g.count++;
    written++;
    out(t, level, msg);
  };
  return {
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
  };
}

/**
 * At most `max` characters, and text from the network (a peer's close reason, an XMPP client's
 * attribute) cannot forge log lines or send escape sequences to the terminal: newlines (stack
 * traces) become an indented continuation, other control characters \xNN or \uNNNN.
 */
function tidy(msg: string, max: number): string {
  let s = msg.length > max ? `${msg.slice(0, max)}… (${msg.length - max} more characters)` : msg;
  s = s.replace(/\r?\n/g, "\n    ");
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code > 0xff ? `\\u${code.toString(16).padStart(4, "0")}` : `\\x${code.toString(16).padStart(2, "0")}`;
  });
}
