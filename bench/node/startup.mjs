#!/usr/bin/env node
// Startup with many stored envelopes (issue 20: "start with 1,000,000 envelopes < 1 s"): makes a
// node's data directory with `pigeon start`, stops it, stores --envelopes real sealed envelopes in it
// as carried ones (each sealed by a real identity to another, as a carrier would hold them), then
// times `pigeon start` until it says ready, and, in this process, the parts: SQLite's quick_check
// and the first build of the reconciliation sketches (what the first peer met asks for); then once
// more after that node's clean stop, when the start leaves the full check to the background.
// Usage: node bench/node/startup.mjs [--envelopes N] [--keep]
// STARTUP_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" profiles the node's starts.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import { generateIdentity, randomBytes, sealChange, sealEnvelope, newConversationKey, EnvelopeKind } from "@pigeon/model";
import { EnvelopeStore, opaque, openDatabase } from "@pigeon/sync";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "packages", "app", "dist", "cli.js");
const { values: opt } = parseArgs({ options: { envelopes: { type: "string", default: "50000" }, keep: { type: "boolean", default: false } } });
const N = Number(opt.envelopes);
if (!Number.isInteger(N) || N < 1) throw new Error(`--envelopes must be a whole number, got ${opt.envelopes}`);

const dir = mkdtempSync(join(tmpdir(), "pigeon-startup-"));
/** `pigeon start` until ready; returns the milliseconds it took and its VmRSS then. */
async function start() {
  const t0 = performance.now();
  const proc = spawn(process.execPath, ["--max-old-space-size=192", ...(process.env.STARTUP_NODE_FLAGS?.split(" ").filter(Boolean) ?? []), CLI, "start", "--data", dir, "--name", "carrier", "--listen", "127.0.0.1", "--port", "0", "--control-port", "0", "--no-mdns", "--no-xmpp"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (c) => (out += c));
  proc.stderr.on("data", (c) => (out += c));
  const end = Date.now() + 600_000;
  while (!/\bready\b/.test(out)) {
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`the node did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const ms = performance.now() - t0;
  const { readFileSync } = await import("node:fs");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))[1]) / 1024;
  proc.kill("SIGTERM");
  await new Promise((r) => proc.once("exit", r));
  return { ms, rss };
}

try {
  const empty = await start();
  // real sealed envelopes, as a carrier holds them: opaque rows
  const amara = generateIdentity("amara");
  const baraka = generateIdentity("baraka");
  const key = newConversationKey();
  const conv = randomBytes(16);
  const db = openDatabase(join(dir, "pigeon.db"));
  const store = new EnvelopeStore(db);
  const now = Date.now();
  const t0 = performance.now();
  for (let done = 0; done < N; ) {
    store.batch(() => {
      for (let i = 0; i < 1000 && done < N; i++, done++) {
        const inner = sealChange(amara, { conversation: conv, segment: 0, recipients: [baraka.person], created: now - (N - done) * 10 }, key, randomBytes(120));
        const sealed = sealEnvelope(amara.sealing, inner, [baraka.sealing.publicKey]);
        store.put(opaque({ ...sealed, kind: EnvelopeKind.Sealed }), 1, now, true, undefined, [], 1);
      }
    });
  }
  const made = performance.now() - t0;
  db.close();
  const { statSync } = await import("node:fs");
  const fileBytes = statSync(join(dir, "pigeon.db")).size;
  // the parts, each on a fresh connection (a cold start's page cache aside)
  const check = new Database(join(dir, "pigeon.db"), { readonly: true });
  let t = performance.now();
  check.pragma("quick_check");
  const quick = performance.now() - t;
  check.close();
  const db2 = openDatabase(join(dir, "pigeon.db"));
  t = performance.now();
  new EnvelopeStore(db2).sketches();
  const sketch = performance.now() - t;
  db2.close();
  const full = await start();
  // that start checked the whole store (nothing had closed it cleanly); it stopped cleanly
  const clean = await start();
  console.log(`### Startup with ${N} carried envelopes (made and stored in ${(made / 1000).toFixed(1)} s)\n`);
  console.log(`| what | time |`);
  console.log(`|---|---|`);
  console.log(`| \`pigeon start\` until ready, empty store | ${empty.ms.toFixed(0)} ms (VmRSS ${empty.rss.toFixed(0)} MiB) |`);
  console.log(`| \`pigeon start\` until ready, ${N} envelopes | ${full.ms.toFixed(0)} ms (VmRSS ${full.rss.toFixed(0)} MiB) |`);
  console.log(`| \`pigeon start\` until ready, ${N} envelopes, after a clean stop (quick_check in the background) | ${clean.ms.toFixed(0)} ms (VmRSS ${clean.rss.toFixed(0)} MiB) |`);
  console.log(`| SQLite quick_check alone | ${quick.toFixed(0)} ms |`);
  console.log(`| first build of the reconciliation sketches (first peer met) | ${sketch.toFixed(0)} ms |`);
  console.log(`| the store file (pigeon.db, after a clean close) | ${(fileBytes / 1048576).toFixed(0)} MiB, ${Math.round(fileBytes / N)} bytes per envelope |`);
} finally {
  if (opt.keep) console.log(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
