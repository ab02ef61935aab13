#!/usr/bin/env node
// Where a node's CPU time went: groups the samples of a .cpuprofile (written by
// BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench:node) by what took them (self
// time, busy time only), then the Pigeon functions by inclusive time. Usage: node bench/node/profile.mjs FILE...
import { readFileSync } from "node:fs";

function where(frame) {
  const { url, functionName: fn } = frame;
  if (fn === "(program)") return "(program)";
  if (fn === "(garbage collector)") return "garbage collection";
  if (/automerge/.test(url) || /wasm/.test(url)) return "Automerge (wasm and automerge-repo)";
  if (/better-sqlite3/.test(url)) return "SQLite";
  if (/node:internal\/crypto|node:crypto|noble|tweetnacl/.test(url)) return "crypto";
  if (/node:internal\/fs|node:fs/.test(url) || ["fsync", "open", "close", "writev", "write", "rename", "openFileHandle"].includes(fn)) return "file system";
  if (/node:internal\/modules|cjs-module-lexer/.test(url)) return "module loading";
  if (/packages\/(sync|model|app|peers|xmpp|gateway)\//.test(url)) return "Pigeon's own code";
  if (/node_modules/.test(url)) return "other libraries";
  if (url.startsWith("node:")) return "node internals";
  return "native, other";
}

for (const file of process.argv.slice(2)) {
  const p = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  let busy = 0, all = 0;
  const groups = new Map();
  const inclusive = new Map();
  for (const [id, t] of self) {
    all += t;
    const frame = byId.get(id).callFrame;
    if (frame.functionName === "(idle)") continue;
    busy += t;
    const g = where(frame);
    groups.set(g, (groups.get(g) ?? 0) + t);
    const seen = new Set();
    for (let x = id; x !== undefined; x = parent.get(x)) {
      const f = byId.get(x).callFrame;
      if (!/packages\//.test(f.url)) continue;
      const k = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}`;
      if (!seen.has(k)) (seen.add(k), inclusive.set(k, (inclusive.get(k) ?? 0) + t));
    }
  }
  const pc = (t) => `${((100 * t) / busy).toFixed(0)} %`;
  console.log(`${file}: busy ${(busy / 1e6).toFixed(1)} s of ${(all / 1e6).toFixed(1)} s`);
  for (const [g, t] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`  ${pc(t).padStart(5)}  ${g}`);
  console.log("  Pigeon functions, inclusive:");
  for (const [k, t] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pc(t).padStart(5)}  ${k}`);
}
