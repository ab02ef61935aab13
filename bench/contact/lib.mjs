// Shared helpers for the contact benchmark's child processes: byte counting on the TCP sockets,
// peak-RSS tracking, and the IPC conventions with run.mjs.
import diagnostics from "node:diagnostics_channel";
import { readFileSync } from "node:fs";

/** Every TCP socket this process opens or accepts (there is exactly one per benchmark child). */
export function trackSockets() {
  const sockets = new Set();
  const add = ({ socket }) => sockets.add(socket);
  diagnostics.subscribe("net.client.socket", add);
  diagnostics.subscribe("net.server.socket", add);
  return {
    /** TCP payload bytes written / read by this process so far (WebSocket headers, masks and all). */
    bytes() {
      let written = 0;
      let read = 0;
      for (const s of sockets) {
        written += s.bytesWritten ?? 0;
        read += s.bytesRead ?? 0;
      }
      return { written, read };
    },
  };
}

/** Samples RSS every 50 ms (the kernel's high-water mark, process.resourceUsage().maxRSS, is exact). */
export function rssSampler() {
  let sampledPeak = process.memoryUsage.rss();
  let atPeak = process.memoryUsage();
  const timer = setInterval(() => {
    const r = process.memoryUsage.rss();
    if (r > sampledPeak) {
      sampledPeak = r;
      atPeak = process.memoryUsage(); // where it went: JS heap, buffers, or native (SQLite, ws)
    }
  }, 50);
  timer.unref();
  return {
    reset() {
      sampledPeak = process.memoryUsage.rss();
      atPeak = process.memoryUsage();
    },
    atPeak: () => atPeak,
    sampledPeak: () => Math.max(sampledPeak, process.memoryUsage.rss()),
    /**
     * Kernel high-water mark of this process's memory (bytes): VmHWM, which starts afresh at exec.
     * (getrusage's maxRSS does not: a forked child inherits the parent's, here the pool's ~470 MB.)
     */
    hwm: () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
        if (m) return Number(m[1]) * 1024;
      } catch {
        // not Linux
      }
      return process.resourceUsage().maxRSS * 1024;
    },
    stop: () => clearInterval(timer),
  };
}

export const now = () => performance.timeOrigin + performance.now();

export function send(msg) {
  if (process.send) process.send(msg);
}

/** Resolves with the first IPC message of the given type. */
export function waitFor(type) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (m && m.type === type) {
        process.off("message", on);
        resolve(m);
      }
    };
    process.on("message", on);
  });
}

/** Dies with the parent: a benchmark child must never outlive run.mjs. */
export function dieWithParent() {
  process.on("disconnect", () => process.exit(3));
}
