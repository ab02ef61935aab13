#!/usr/bin/env node
// Node benchmark (issue 20, "fast where it counts"): how many messages one node accepts per second,
// and how many arrive per second end to end between two nodes on loopback, with the durability
// promise unchanged. Side by side in one run with the floor of the same work done in-process (an
// Automerge change, a seal, one SQLite commit with fsync per message; and the same with one commit
// per 100 messages, what group commit could reach). Prints one markdown table. See --help.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const CLI = join(ROOT, "packages", "app", "dist", "cli.js");
const HELP = `Usage: npm run bench:node -- [options]      (or: node bench/node/run.mjs [options])

Two pigeon nodes, each its own process as \`pigeon start\` runs it (same heap limit), linked over
127.0.0.1 with --peer. The benchmark posts --messages messages to node A's control API, --concurrency
at a time, to a buddy on node B, and measures:
  accepted/s   messages A's control API answered (each answer means: stored, sealed, survives kill -9)
  delivered/s  messages in B's inbox, from the first send to the last arrival
  receipts/s   messages A's outbox shows as delivered (B's receipt came back)
and, in this process, the floor of the same work without a node: per message an Automerge change on
one document, a sealed envelope, and one SQLite transaction with synchronous=FULL (fsync per message),
then the same with one transaction per 100 messages. It also prints each node's CPU time per message
(user + system from /proc: steadier than the rates on a shared machine, so compare builds with it) and
how many pieces of work each group commit carried.

Options:
  --messages N      messages to send (default 1000)
  --concurrency N   sends in flight at once (default 20)
  --timeout S       give up waiting for delivery after S seconds (default 300)
  --carried N       then, flash wear of a carrier: A sends N more messages to a classmate who is
                    away, a third node C linked to A only carries them, and the run reports what C
                    wrote to disk per envelope it took (default 200; 0 skips it)
  --keep            keep the temporary data directories (printed)
  -h, --help        this text

Exits 0 when every message was accepted and delivered, 1 otherwise; removes its temporary
directories and stops both nodes in either case.`;

const { values: opt } = parseArgs({
  options: {
    messages: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "20" },
    timeout: { type: "string", default: "300" },
    carried: { type: "string", default: "200" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const positive = (v, name) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a whole number of at least 1, got "${v}"\n\n${HELP}`);
    process.exit(2);
  }
  return n;
};
const N = positive(opt.messages, "messages");
const C = positive(opt.concurrency, "concurrency");
const TIMEOUT_MS = positive(opt.timeout, "timeout") * 1000;
const CARRIED = opt.carried === "0" ? 0 : positive(opt.carried, "carried");
if (!existsSync(CLI)) {
  console.error(`${CLI} is missing: build first (npm run build)`);
  process.exit(2);
}

// e.g. BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles both nodes (written when they stop)
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean);
const tmp = mkdtempSync(join(tmpdir(), "pigeon-bench-node-"));
const nodes = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function cleanup() {
  for (const n of nodes) {
    if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill("SIGTERM");
    await Promise.race([n.exited, sleep(5000)]);
    if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill("SIGKILL");
  }
  if (opt.keep) console.error(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => void cleanup().then(() => process.exit(130)));

/** Starts `pigeon start` for a fresh data directory and resolves once it says ready. */
async function start(name, extra = []) {
  const dataDir = join(tmp, name);
  const proc = spawn(
    process.execPath,
    ["--max-old-space-size=192", ...NODE_FLAGS, CLI, "start", "--data", dataDir, "--name", name, "--listen", "127.0.0.1", "--port", "0", "--control-port", "0", "--no-mdns", "--no-xmpp", ...extra],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PIGEON_HOME: "" } },
  );
  let out = "";
  proc.stdout.on("data", (c) => (out += c));
  proc.stderr.on("data", (c) => (out += c));
  const node = { name, dataDir, proc, exited: new Promise((r) => proc.once("exit", r)), output: () => out };
  nodes.push(node);
  const end = Date.now() + 30_000;
  while (!/\bready\b/.test(out)) {
    if (proc.exitCode !== null || Date.now() > end) throw new Error(`${name} did not start:\n${out}`);
    await sleep(50);
  }
  const info = JSON.parse(readFileSync(join(dataDir, "node.json"), "utf8"));
  node.sync = info.sync;
  node.control = info.control;
  return node;
}

async function api(node, method, path, body) {
  const res = await fetch(`http://127.0.0.1:${node.control.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${node.control.token}`, "content-type": "application/json", host: `127.0.0.1:${node.control.port}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Bytes the process has caused to be written to storage so far (Linux /proc/<pid>/io write_bytes). */
/** CPU time a process has used (user + system, ms), from /proc/<pid>/stat: steadier than rates on a shared machine. */
function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

function writeBytes(pid) {
  try {
    const m = /^write_bytes:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function rssMiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** The same work as one send, without the node: Automerge change, seal, SQLite commit (fsync). */
async function floor(n, perCommit) {
  const A = await import("@automerge/automerge");
  const Database = (await import("better-sqlite3")).default;
  const model = await import(join(ROOT, "packages", "model", "dist", "index.js"));
  const me = model.generateIdentity("floor");
  const you = model.generateIdentity("you");
  const key = model.newConversationKey();
  const conversation = model.conversationId([me.person, you.person]);
  const db = new Database(join(tmp, `floor-${perCommit}.sqlite`));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec("CREATE TABLE envelopes (id BLOB PRIMARY KEY, bytes BLOB NOT NULL) WITHOUT ROWID");
  const insert = db.prepare("INSERT INTO envelopes (id, bytes) VALUES (?, ?)");
  let doc = A.from({ messages: [] });
  const t0 = performance.now();
  let batch = [];
  const commit = db.transaction((rows) => {
    for (const r of rows) insert.run(r.id, r.bytes);
  });
  for (let i = 0; i < n; i++) {
    doc = A.change(doc, (d) => {
      d.messages.push({ id: `m${i}`, author: "floor", hlc: String(i), sentAt: i, body: `message ${i} of the benchmark` });
    });
    const change = A.getLastLocalChange(doc);
    const env = model.sealChange(me, { conversation, segment: 0, recipients: [you.person], created: Date.now() }, key, change);
    batch.push({ id: env.id, bytes: env.bytes });
    if (batch.length >= perCommit) {
      commit(batch);
      batch = [];
    }
  }
  if (batch.length) commit(batch);
  const seconds = (performance.now() - t0) / 1000;
  db.close();
  return n / seconds;
}

/**
 * Flash wear of a carrier: A sends CARRIED messages to dalia, who is away (A has her card); chidi's
 * node, linked to A only, takes the copies A hands it. What chidi's process wrote to disk per envelope
 * it carries (messages, the conversation key, anything else A handed over), two ways: linked while A
 * writes (each envelope comes alone, as it is written), and meeting A after A wrote them (they come
 * in one exchange; chidi's start is in that figure, so a start with nothing new is subtracted).
 */
async function carrierWear(a) {
  const d = await start("dalia");
  const { card } = await api(d, "GET", "/api/card");
  d.proc.kill("SIGTERM");
  await d.exited;
  const { address } = await api(a, "POST", "/api/contacts", { card });
  const send = async (from) => {
    for (let i = 0; i < CARRIED; i++) await api(a, "POST", "/api/send", { to: address, body: `carried message ${from + i} of the benchmark` });
  };
  const startC = async () => {
    const c = await start("chidi", ["--peer", `127.0.0.1:${a.sync.port}`]);
    const linked = Date.now() + 30_000;
    while ((await api(c, "GET", "/api/status")).peers < 1) {
      if (Date.now() > linked) throw new Error("the carrier did not link to A");
      await sleep(100);
    }
    return c;
  };
  /** Waits until chidi's carried count reaches `want` and stays for 3 s; its carrying then. */
  const settle = async (c, want) => {
    let last = -1;
    let still = 0;
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const status = await api(c, "GET", "/api/status");
      const now = { ...status.carrying, transactions: status.commits.transactions };
      still = now.envelopes === last && now.envelopes >= want ? still + 1 : 0;
      if (still >= 6 || Date.now() > deadline) return now;
      last = now.envelopes;
      await sleep(500);
    }
  };
  const stopC = async (c) => {
    c.proc.kill("SIGTERM");
    await c.exited;
    nodes.splice(nodes.indexOf(c), 1);
  };
  const rows = [];
  // 1. linked while A writes
  let c = await startC();
  let before = await settle(c, 0);
  let w0 = writeBytes(c.proc.pid);
  await send(0);
  let now = await settle(c, before.envelopes + CARRIED);
  rows.push(["linked while A writes (each alone)", now.envelopes - before.envelopes, now.bytes - before.bytes, writeBytes(c.proc.pid) - w0, now.transactions - before.transactions]);
  await stopC(c);
  // 2. a start that finds nothing new: what a start writes
  c = await startC();
  const held = await settle(c, now.envelopes);
  const startWrites = writeBytes(c.proc.pid);
  const startCommits = held.transactions;
  await stopC(c);
  // 3. A writes while chidi is away; they meet
  await send(CARRIED);
  c = await startC();
  now = await settle(c, held.envelopes + CARRIED);
  rows.push(["meeting A after A wrote them (one exchange)", now.envelopes - held.envelopes, now.bytes - held.bytes, writeBytes(c.proc.pid) - startWrites, now.transactions - startCommits]);
  console.log(`\n### Flash wear of a carrier: ${CARRIED} messages from A to a classmate away, carried by C (C's start wrote ${(startWrites / 1024).toFixed(1)} KiB, not counted)\n`);
  console.log("| how C took them | envelopes carried | SQLite commits | envelope bytes | written to disk by C | per envelope carried | written / envelope bytes |");
  console.log("|---|---|---|---|---|---|---|");
  for (const [how, took, bytes, written, commits] of rows) {
    console.log(`| ${how} | ${took} | ${commits} | ${(bytes / 1024).toFixed(1)} KiB | ${(written / 1024).toFixed(1)} KiB | ${took ? (written / took / 1024).toFixed(1) : "-"} KiB | ${bytes ? (written / bytes).toFixed(1) : "-"}x |`);
    if (took < CARRIED) {
      ok = false;
      console.log(`\nC took ${took} envelopes (${how}), fewer than the ${CARRIED} messages sent, within the timeout.`);
    }
  }
}

const rows = [];
let ok = true;
try {
  const a = await start("amara");
  const b = await start("baraka", ["--peer", `127.0.0.1:${a.sync.port}`]);
  const end0 = Date.now() + 30_000;
  while ((await api(a, "GET", "/api/status")).peers < 1) {
    if (Date.now() > end0) throw new Error("the two nodes did not link");
    await sleep(100);
  }
  // baraka makes amara a buddy, so her messages land in his inbox (not under requests)
  await api(b, "POST", "/api/buddies/add", { who: "amara@local" });

  const written0 = [writeBytes(a.proc.pid), writeBytes(b.proc.pid)];
  const cpu0 = [cpuMs(a.proc.pid), cpuMs(b.proc.pid)];
  const commits0 = await Promise.all([a, b].map(async (n) => (await api(n, "GET", "/api/status")).commits));
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const i = next++;
      await api(a, "POST", "/api/send", { to: "baraka@local", body: `message ${i} of the benchmark` });
    }
  };
  await Promise.all(Array.from({ length: Math.min(C, N) }, worker));
  const accepted = (performance.now() - t0) / 1000;
  console.error(`accepted ${N} in ${accepted.toFixed(1)} s`);

  let delivered, receipts;
  const deadline = Date.now() + TIMEOUT_MS;
  while (delivered === undefined || receipts === undefined) {
    if (Date.now() > deadline) {
      ok = false;
      break;
    }
    if (delivered === undefined) {
      const inbox = await api(b, "GET", "/api/inbox");
      if (inbox.length >= N) delivered = (performance.now() - t0) / 1000;
    }
    if (delivered !== undefined && receipts === undefined) {
      const outbox = await api(a, "GET", "/api/outbox");
      if (outbox.filter((m) => m.state === "delivered" || m.state === "read").length >= N) receipts = (performance.now() - t0) / 1000;
    }
    await sleep(500);
  }
  // flash wear: what each node wrote to disk for the run (A: sending, B: receiving), per message
  const written1 = [writeBytes(a.proc.pid), writeBytes(b.proc.pid)];
  const cpu1 = [cpuMs(a.proc.pid), cpuMs(b.proc.pid)];
  const cpuPer = cpu1.map((c, i) => (c === undefined || cpu0[i] === undefined ? "?" : `${((c - cpu0[i]) / N).toFixed(2)} ms`));
  const perMessage = written1.map((w, i) => (w === undefined || written0[i] === undefined ? undefined : (w - written0[i]) / N));
  // how much each commit (one fsync) carried: the pieces of work it answered (a piece is a batch of sends, or what one frame brought)
  const commits1 = await Promise.all([a, b].map(async (n) => (await api(n, "GET", "/api/status")).commits));
  const grouped = commits1.map((c, i) => `${c.transactions - commits0[i].transactions} commits, ${((c.work - commits0[i].work) / Math.max(1, c.transactions - commits0[i].transactions)).toFixed(1)} pieces of work each`);
  const floor1 = await floor(N, 1);
  const floor100 = await floor(N, 100);
  const rate = (s) => (s === undefined ? "not within the timeout" : `${(N / s).toFixed(0)} msg/s`);
  const ratio = (s, f) => (s === undefined ? "-" : `${(N / s / f).toFixed(2)}x`);
  rows.push(["accepted by node A (control API)", rate(accepted), ratio(accepted, floor1), ratio(accepted, floor100)]);
  rows.push(["delivered into B's inbox (end to end)", rate(delivered), ratio(delivered, floor1), ratio(delivered, floor100)]);
  rows.push(["receipts back in A's outbox", rate(receipts), ratio(receipts, floor1), ratio(receipts, floor100)]);
  rows.push(["floor: change + seal + commit per message", `${floor1.toFixed(0)} msg/s`, "1.00x", ratio(N / floor1, floor100)]);
  rows.push(["floor: change + seal, commit per 100", `${floor100.toFixed(0)} msg/s`, ratio(N / floor100, floor1), "1.00x"]);
  console.log(`\n### Node benchmark: ${N} messages, ${C} in flight (peak RSS: A ${rssMiB(a.proc.pid) ?? "?"} MiB, B ${rssMiB(b.proc.pid) ?? "?"} MiB)\n`);
  console.log("| what | rate | vs floor (fsync each) | vs floor (commit per 100) |");
  console.log("|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
  const kib = (x) => (x === undefined ? "?" : `${(x / 1024).toFixed(1)} KiB`);
  console.log(`\nWritten to disk per message (/proc/<pid>/io write_bytes, includes WAL, documents, log): A (sender) ${kib(perMessage[0])}, B (recipient) ${kib(perMessage[1])}.`);
  console.log(`\nCPU per message (user + system, from the first send until the receipts were back): A (sender) ${cpuPer[0]}, B (recipient) ${cpuPer[1]}.`);
  console.log(`\nGroup commit: A ${grouped[0]}; B ${grouped[1]}.`);
  console.log(`\nGoal (issue 20): >= 1000 msg/s accepted and delivered end to end: ${delivered !== undefined && N / accepted >= 1000 && N / delivered >= 1000 ? "met" : "NOT met"}.`);
  if (CARRIED > 0) await carrierWear(a);
} catch (e) {
  ok = false;
  console.error(`benchmark failed: ${e.message}`);
  for (const n of nodes) console.error(`--- ${n.name}\n${n.output().slice(-2000)}`);
} finally {
  await cleanup();
}
process.exit(ok ? 0 : 1);
