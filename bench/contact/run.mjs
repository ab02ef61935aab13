#!/usr/bin/env node
// Contact benchmark (issue 6): two nodes, each in its own process, meet over a real WebSocket link on
// 127.0.0.1 and reconcile stores of n envelopes that differ by d. Compares Pigeon's IBLT sketches
// with (a) a plain id-list exchange and (b) plain automerge-repo syncing the same conversations as
// documents. Prints one markdown table per run and a goals check. See --help.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { generateIdentity, toHex } from "../../packages/model/dist/index.js";
import { carriedRow, opaqueSealed } from "../lib/sealed.mjs";
import { EnvelopeStore, openDatabase } from "../../packages/sync/dist/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const HELP = `Usage: npm run bench:contact -- [options]      (or: node bench/contact/run.mjs [options])

Two nodes, each its own process, meet over WebSocket on 127.0.0.1 (Pigeon: WsNetwork with handshake
and encryption; automerge-repo: its stock websocket adapters). Node A stores pool[0..n), node B
stores pool[0..n-d/2) + pool[n..n+d/2): each lacks d/2 of the other's envelopes. A run ends when both
hold the union and the link has been quiet for --quiet-ms, or at the time bound.

Options:
  --sizes LIST        store sizes n, comma-separated             (default 10000,1000000)
  --diffs LIST        differences d; a d larger than n is skipped (default 0,10,1000,100000)
  --modes LIST        sketch (Pigeon), list (baseline a: id listing), automerge (baseline b)
                                                                 (default sketch,list,automerge)
  --timeout S         time bound per Pigeon/list contact, seconds (default 300)
  --automerge-timeout S  time bound per automerge-repo contact    (default 120)
  --automerge-max-docs N  skip automerge-repo above N documents (10 messages per document); its
                      measured limit is a few thousand loaded documents (default 5000)
  --max-frame-bytes N WsNetwork maxFrameBytes on both nodes       (default 1048576, the product default)
  --quiet-ms MS       link silence that ends a contact once both stores hold the union (default 1000)
  --tmp DIR           where the envelope pool and stores go (a fresh folder, removed at exit)
  --out FILE          also write the markdown report to FILE
  -h, --help          this text

The envelope pool (well-formed sealed envelopes, version 3, with random keys, tags, locks and a
100-200 B random box, so every node only carries them) is generated once per run; each store is a copy of a pre-filled SQLite base file.
Bytes are counted on the TCP sockets after the handshake (WebSocket headers, secretbox and all), and
as sync frames; peak RSS is the kernel's high-water mark of each node process. Pigeon's nodes run
with the JS heap limit \`pigeon start\` uses (--max-old-space-size=192); automerge-repo's with node's
defaults. Environment: BENCH_NODE_ARGS="..." adds node flags to every node process (e.g. --cpu-prof).`;

const { values: opt } = parseArgs({
  options: {
    sizes: { type: "string", default: "10000,1000000" },
    diffs: { type: "string", default: "0,10,1000,100000" },
    modes: { type: "string", default: "sketch,list,automerge" },
    timeout: { type: "string", default: "300" },
    "automerge-timeout": { type: "string", default: "120" },
    "automerge-max-docs": { type: "string", default: "5000" },
    "max-frame-bytes": { type: "string", default: String(1024 * 1024) },
    "quiet-ms": { type: "string", default: "1000" },
    tmp: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
const ints = (s, name) =>
  list(s).map((x) => {
    const v = Number(x.replace(/_/g, ""));
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name}: not a whole number: ${x}`);
    return v;
  });
const SIZES = ints(opt.sizes, "sizes");
const DIFFS = ints(opt.diffs, "diffs");
const MODES = list(opt.modes);
for (const m of MODES) if (!["sketch", "list", "automerge"].includes(m)) throw new Error(`--modes: unknown mode ${m}`);
const TIMEOUT = Number(opt.timeout) * 1000;
const AM_TIMEOUT = Number(opt["automerge-timeout"]) * 1000;
const AM_MAX_DOCS = Number(opt["automerge-max-docs"]);
const MAX_FRAME = Number(opt["max-frame-bytes"]);
const QUIET = Number(opt["quiet-ms"]);
const MSGS_PER_DOC = 10;

/** The built code under test: if someone rebuilds it during a run, the rows after that say so. */
const CODE = ["model/dist/wire.js", "model/dist/iblt.js", "sync/dist/envelope-store.js", "sync/dist/sync-engine.js", "sync/dist/mailbox/receiving.js", "peers/dist/ws-network.js"]
  .map((f) => join(HERE, "../../packages", f));
const codeStamp = () => CODE.map((f) => statSync(f).mtimeMs).join(",");
const CODE_AT_START = codeStamp();

const log = (s) => process.stderr.write(`[bench:contact ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

// ---- cleanup: every child killed, every temp file removed, whatever happens ----
const root = mkdtempSync(join(opt.tmp ?? tmpdir(), "pigeon-bench-contact-"));
const children = new Set();
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(root, { recursive: true, force: true });
}
process.on("exit", cleanup);
let signalled;
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"])
  process.on(sig, () => {
    signalled = sig;
    log(`${sig}: stopping`);
    cleanup();
    process.exit(130);
  });
process.on("uncaughtException", (e) => {
  console.error(e);
  cleanup();
  process.exit(1);
});

// ---- the envelope pool ----
const cases = [];
for (const n of SIZES) for (const d of DIFFS) if (d <= n) cases.push({ n, d, h: Math.floor(d / 2) });
if (cases.length === 0) throw new Error("nothing to run: every d is larger than every n");
const POOL = Math.max(...cases.map((c) => c.n + c.h));

const poolFile = join(root, "pool.bin");
/** offsets into pool.bin, envelope sizes, payload sizes (for the automerge bodies). */
const offsets = new Float64Array(POOL + 1);
const envSize = new Uint32Array(POOL);
const payloadSize = new Uint16Array(POOL);
let poolBuf;

async function generatePool() {
  const t = Date.now();
  const authors = [0, 1, 2, 3].map((i) => generateIdentity(`author${i}`));
  const fd = openSync(poolFile, "w");
  let off = 0;
  let conversation = randomBytes(16);
  const created = Date.now();
  for (let i = 0; i < POOL; i++) {
    if (i % MSGS_PER_DOC === 0) conversation = randomBytes(16);
    const r = randomBytes(32 + 8 + 1);
    const plen = 100 + (r[40] % 101);
    // what a carrier holds: a sealed envelope (version 3) it cannot open; carriers check only its form,
    // so the pool is made of well-formed ones with random keys, tags and box (sealing a million for
    // real would cost two X25519 each and change nothing the benchmark measures)
    const env = opaqueSealed(created, 30 * 86400, plen);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(env.bytes.length);
    writeSync(fd, len);
    writeSync(fd, env.bytes);
    offsets[i] = off + 4;
    off += 4 + env.bytes.length;
    envSize[i] = env.bytes.length;
    payloadSize[i] = plen;
    if ((i + 1) % 5_000 === 0) await new Promise((r) => setImmediate(r)); // let a signal stop us
    if ((i + 1) % 50_000 === 0) log(`pool: signed ${i + 1} / ${POOL} envelopes (${((Date.now() - t) / 1000).toFixed(0)} s)`);
  }
  offsets[POOL] = off + 4;
  closeSync(fd);
  poolBuf = readFileSync(poolFile);
  log(`pool: ${POOL} envelopes, ${(off / 1e6).toFixed(1)} MB, in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}
const envelopeAt = (i) => {
  const bytes = new Uint8Array(poolBuf.buffer, poolBuf.byteOffset + offsets[i], envSize[i]);
  return carriedRow(bytes);
};

/** Opens a store for bulk work (no fsync per batch: these files are scratch). */
function openBulk(path) {
  const db = openDatabase(path);
  db.pragma("synchronous = OFF");
  return { db, store: new EnvelopeStore(db) };
}

function putRange(store, from, to, what) {
  const t = Date.now();
  for (let i = from; i < to; i += 10_000) {
    const batch = [];
    for (let j = i; j < Math.min(to, i + 10_000); j++) batch.push(envelopeAt(j));
    store.putMany(batch, 0, Date.now(), true);
    if (signalled) throw new Error(`stopped by ${signalled}`);
    if (to - from >= 200_000 && ((i - from) / 10_000) % 10 === 9) log(`${what}: stored ${i + 10_000 - from} / ${to - from}`);
  }
  return Date.now() - t;
}

const bases = new Map();
function baseStore(n) {
  if (bases.has(n)) return bases.get(n);
  const dir = join(root, `base-${n}`);
  mkdirSync(dir);
  const path = join(dir, "pigeon.db");
  const { db, store } = openBulk(path);
  const ms = putRange(store, 0, n, `base store ${n}`);
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  log(`base store of ${n}: ${(ms / 1000).toFixed(1)} s`);
  bases.set(n, path);
  return path;
}

/** B's store for (n, d): the base without pool[n-h..n), plus pool[n..n+h). */
function storeB(c) {
  const path = join(root, `b-${c.n}-${c.d}.db`);
  copyFileSync(baseStore(c.n), path);
  const { db, store } = openBulk(path);
  // envelope_parties is keyed (party, envelope): without this scratch index each delete scans it all
  db.exec("CREATE INDEX bench_parties_by_envelope ON envelope_parties(envelope)");
  const delEnv = db.prepare("DELETE FROM envelopes WHERE id = ?");
  const delParty = db.prepare("DELETE FROM envelope_parties WHERE envelope = ?");
  db.transaction(() => {
    for (let i = c.n - c.h; i < c.n; i++) {
      const id = envelopeAt(i).id;
      delEnv.run(id);
      delParty.run(id);
    }
  })();
  db.exec("DROP INDEX bench_parties_by_envelope");
  putRange(store, c.n, c.n + c.h, `store B ${c.n}/${c.d}`);
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  return path;
}

function dataDir(name, dbFile) {
  const dir = join(root, "run", name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(dbFile, join(dir, "pigeon.db"));
  return dir;
}

// ---- automerge-repo documents for (n, d) ----
let A; // @automerge/automerge, loaded only when needed
async function automergeDocs(c) {
  A ??= await import("@automerge/automerge");
  const ndocs = Math.max(1, Math.round(c.n / MSGS_PER_DOC));
  const { parseAutomergeUrl, generateAutomergeUrl } = await import("@automerge/automerge-repo");
  const t = Date.now();
  const msg = (i, author) => ({
    id: toHex(randomBytes(8)),
    author,
    sentAt: 1_700_000_000_000 + i,
    body: new A.ImmutableString(randomBytes(Math.ceil((payloadSize[i] * 3) / 4)).toString("base64").slice(0, payloadSize[i])),
  });
  const shared = Array.from({ length: ndocs }, () => []);
  for (let i = 0; i < c.n - c.h; i++) shared[i % ndocs].push(i);
  const extraA = Array.from({ length: ndocs }, () => []);
  const extraB = Array.from({ length: ndocs }, () => []);
  for (let j = 0; j < c.h; j++) {
    extraA[j % ndocs].push(c.n - c.h + j);
    extraB[(j + Math.floor(ndocs / 2)) % ndocs].push(c.n + j);
  }
  const out = [];
  for (let k = 0; k < ndocs; k++) {
    let doc = A.from({ messages: [] }, { actor: "00".repeat(16) });
    for (const i of shared[k]) doc = A.change(doc, (x) => void x.messages.push(msg(i, `author${i % 4}`)));
    let da = A.clone(doc, { actor: "aa".repeat(16) });
    for (const i of extraA[k]) da = A.change(da, (x) => void x.messages.push(msg(i, `author${i % 4}`)));
    let db = A.clone(doc, { actor: "bb".repeat(16) });
    for (const i of extraB[k]) db = A.change(db, (x) => void x.messages.push(msg(i, `author${i % 4}`)));
    out.push({ id: parseAutomergeUrl(generateAutomergeUrl()).documentId, a: Buffer.from(A.save(da)).toString("base64"), b: Buffer.from(A.save(db)).toString("base64") });
  }
  const file = join(root, `am-${c.n}-${c.d}.json`);
  writeFileSync(file, JSON.stringify(out));
  log(`automerge: ${ndocs} documents for n=${c.n} d=${c.d} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return { file, ndocs };
}

// ---- one contact ----
// The nodes run with the JS heap limit `pigeon start` uses (package.json "start", the bin's #! line):
// without it V8 lets the heap grow to ~170 MB of mostly garbage during a 100,000-envelope contact.
// BENCH_NODE_ARGS adds flags (e.g. --cpu-prof); "--max-old-space-size=4096" there undoes the limit.
// automerge-repo runs with node's defaults (it is not ours to configure).
const OTHER_NODE_ARGS = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(" ") : [];
const PIGEON_NODE_ARGS = ["--max-old-space-size=192", ...OTHER_NODE_ARGS];
function spawnNode(script, cfg) {
  const child = fork(join(HERE, script), [JSON.stringify(cfg)], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: script === "node.mjs" ? PIGEON_NODE_ARGS : OTHER_NODE_ARGS });
  children.add(child);
  const state = { child, ready: undefined, progress: undefined, report: undefined, error: undefined, exited: false };
  child.on("message", (m) => {
    if (m.type === "ready") state.ready = m;
    else if (m.type === "progress") state.progress = m;
    else if (m.type === "report") state.report = m;
    else if (m.type === "error") state.error = m.message;
  });
  child.on("exit", (code, sig) => {
    state.exited = true;
    children.delete(child);
    if (!state.report && !state.error) state.error = `exited (${sig ?? code}) before reporting`;
  });
  return state;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, ms, step = 50) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(step);
  }
  return true;
}

async function contact(script, cfgA, cfgB, timeoutMs, label) {
  const a = spawnNode(script, { ...cfgA, role: "listen" });
  const b = spawnNode(script, { ...cfgB, role: "dial" });
  const nodes = [a, b];
  try {
    if (!(await until(() => (a.ready && b.ready) || a.error || b.error, 600_000))) throw new Error("nodes did not start in 600 s");
    if (a.error || b.error) throw new Error(a.error ?? b.error);
    b.child.send({ type: "go", port: a.ready.port });
    const started = Date.now();
    let lastLog = started;
    const finished = await until(() => {
      if (Date.now() - lastLog > 15_000) {
        lastLog = Date.now();
        log(`${label}: ${((Date.now() - started) / 1000).toFixed(0)} s, A ${a.progress?.count ?? "?"} / B ${b.progress?.count ?? "?"} of ${cfgA.expected}`);
      }
      return (a.progress?.settled && b.progress?.settled) || a.error || b.error || a.progress?.closeReason || b.progress?.closeReason;
    }, timeoutMs);
    for (const x of nodes) if (!x.exited) x.child.send({ type: "report" });
    await until(() => nodes.every((x) => x.report || x.exited), 60_000);
    const rebuilt = codeStamp() !== CODE_AT_START;
    if (rebuilt) log(`warning: packages/*/dist was rebuilt during this run; ${label} may not be comparable with earlier rows`);
    const result = {
      rebuilt,
      finished: !!finished && !a.error && !b.error && !a.report?.closeReason && !b.report?.closeReason,
      timedOut: !finished,
      elapsedMs: Date.now() - started,
      a: a.report,
      b: b.report,
      lastProgress: [a.progress, b.progress],
      // every node's own account: a link closed on one side often makes the other exit or stall
      error:
        [
          ["A", a.error],
          ["B", b.error],
          ["A's link", a.report?.closeReason],
          ["B's link", b.report?.closeReason],
        ]
          .filter(([, e]) => e)
          .map(([who, e]) => `${who}: ${e}`)
          .join("; ") || undefined,
    };
    return result;
  } finally {
    await until(() => nodes.every((x) => x.exited), 10_000);
    for (const x of nodes) if (!x.exited) x.child.kill("SIGKILL");
    await until(() => nodes.every((x) => x.exited), 5_000);
  }
}

/** Longest causal chain of frames (A's i-th send follows the frames it had received then). */
function turns(logA, logB) {
  const memo = [new Int32Array(logA.length), new Int32Array(logB.length)];
  const logs = [logA, logB];
  const depth = (side, i) => {
    const stack = [[side, i]];
    while (stack.length) {
      const [s, k] = stack[stack.length - 1];
      if (memo[s][k]) {
        stack.pop();
        continue;
      }
      const r = logs[s][k];
      if (r === 0) {
        memo[s][k] = 1;
        stack.pop();
        continue;
      }
      const o = 1 - s;
      const j = Math.min(r, logs[o].length) - 1;
      if (j < 0 || memo[o][j]) {
        memo[s][k] = 1 + (j < 0 ? 0 : memo[o][j]);
        stack.pop();
      } else stack.push([o, j]);
    }
    return memo[side][i];
  };
  let max = 0;
  for (let s = 0; s < 2; s++) for (let i = 0; i < logs[s].length; i++) max = Math.max(max, depth(s, i));
  return max;
}

/** A contact that could not even start (a node crashed): a row that says so. */
const failed = (e) => ({ rebuilt: codeStamp() !== CODE_AT_START, finished: false, timedOut: false, elapsedMs: 0, lastProgress: [], error: e.message });

/** After each contact: the table so far, on stderr (and in --out), so a long run is never all lost. */
function partial() {
  log(`results so far:\n${table()}`);
  if (opt.out) writeFileSync(opt.out, `(partial)\n\n${table()}\n`);
}

// ---- formatting ----
const fmtBytes = (b) => (b === undefined ? "–" : b < 10_000 ? `${b} B` : b < 10e6 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 1048576).toFixed(1)} MiB`);
const fmtMB = (b) => (b === undefined ? "–" : `${(b / 1048576).toFixed(0)}`);
const fmtS = (ms) => (ms === undefined ? "–" : ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`);
const fmtN = (n) => n.toLocaleString("en-US");

const rows = [];
const details = [];

async function runCase(c) {
  const moved = (() => {
    let s = 0;
    for (let i = c.n - c.h; i < c.n + c.h; i++) s += envSize[i];
    return s;
  })();
  const expected = c.n + c.h;
  const base = { n: c.n, d: 2 * c.h, moved };
  let bPath;
  for (const mode of MODES) {
    const label = `n=${fmtN(c.n)} d=${fmtN(2 * c.h)} ${mode}`;
    if (mode === "automerge") {
      const ndocs = Math.max(1, Math.round(c.n / MSGS_PER_DOC));
      if (ndocs > AM_MAX_DOCS) {
        rows.push({ ...base, mode, skipped: `not run: ${fmtN(ndocs)} documents; automerge-notes §2.1 measured 48 s to load 4,000 and 79 s to import 5,000 (limit --automerge-max-docs ${AM_MAX_DOCS})` });
        continue;
      }
      const { file } = await automergeDocs(c);
      log(`${label}: contact`);
      const r = await contact("am-node.mjs", { docsFile: file, side: "a", expected, quietMs: Math.max(QUIET, 1500) }, { docsFile: file, side: "b", expected, quietMs: Math.max(QUIET, 1500) }, AM_TIMEOUT, label).catch(failed);
      rows.push({ ...base, mode, ndocs, r });
      partial();
      rmSync(file, { force: true });
      continue;
    }
    bPath ??= storeB(c);
    const dirA = dataDir("a", baseStore(c.n));
    const dirB = dataDir("b", bPath);
    log(`${label}: contact`);
    const common = { mode, expected, maxFrameBytes: MAX_FRAME, quietMs: QUIET };
    const r = await contact("node.mjs", { ...common, dir: dirA, name: "nodea" }, { ...common, dir: dirB, name: "nodeb" }, TIMEOUT, label).catch(failed);
    rows.push({ ...base, mode, r });
    partial();
    rmSync(join(root, "run"), { recursive: true, force: true });
  }
  if (bPath) rmSync(bPath, { force: true });
}

function summarize(row) {
  const { r } = row;
  if (!r) return row;
  const a = r.a ?? {};
  const b = r.b ?? {};
  const wire = a.tcpAfterLink && b.tcpAfterLink ? a.tcpAfterLink.written + b.tcpAfterLink.written : undefined;
  const frames = a.frameBytesSent !== undefined && b.frameBytesSent !== undefined ? a.frameBytesSent + b.frameBytesSent : undefined;
  const hs = a.handshakeBytes && b.handshakeBytes ? a.handshakeBytes.written + b.handshakeBytes.written : undefined;
  const t = a.sendLog && b.sendLog ? turns(a.sendLog, b.sendLog) : undefined;
  const linkUp = Math.min(a.linkUpAt || Infinity, b.linkUpAt || Infinity);
  const end = Math.max(a.countCompleteAt ?? 0, b.countCompleteAt ?? 0, a.lastActivity ?? 0, b.lastActivity ?? 0);
  const wall = r.finished && Number.isFinite(linkUp) ? end - linkUp : undefined;
  const rt = row.mode === "sketch" ? Math.max(a.reconcile?.roundTrips ?? 0, b.reconcile?.roundTrips ?? 0) : undefined;
  return { ...row, wire, frames, hs, turns: t, rt, wall, framesN: (a.framesSent ?? 0) + (b.framesSent ?? 0) };
}

function table() {
  const head = [
    "| store n | d | method | bytes on wire | sync frames | envelope bytes to move | wire / envelope bytes | round trips | wall time | peak RSS A / B, MB (sampled from link up) | RSS after startup A / B (MB) |",
    "|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|",
  ];
  const out = [...head];
  for (const row of rows.map(summarize)) {
    const name = { sketch: "Pigeon (IBLT sketch)", list: "(a) id list", automerge: "(b) automerge-repo" }[row.mode];
    const moved = row.moved ? fmtBytes(row.moved) : "0 B";
    if (row.skipped) {
      out.push(`| ${fmtN(row.n)} | ${fmtN(row.d)} | ${name} | ${row.skipped} | | ${moved} | | | | | |`);
      continue;
    }
    const { r } = row;
    const ratio = row.wire !== undefined && row.moved > 0 ? `${(row.wire / row.moved).toFixed(2)}×` : "–";
    const rtText =
      row.turns === undefined
        ? "–"
        : row.mode === "sketch"
          ? `${row.rt} (${row.turns} turns)`
          : `${row.turns / 2} (${row.turns} turns)`;
    let wall = fmtS(row.wall);
    if (!r.finished) {
      const p = r.lastProgress;
      const got = [0, 1].map((i) => (p[i] ? fmtN(p[i].count - row.n) : "?"));
      wall = r.timedOut
        ? `did not finish in ${fmtS(r.elapsedMs)}: A had ${got[0]}, B ${got[1]} of ${fmtN(row.d / 2)} missing`
        : `failed after ${fmtS(r.elapsedMs)}: ${r.error}`;
    }
    const rssPeak = `${fmtMB(r.a?.rssHwm)} / ${fmtMB(r.b?.rssHwm)} (contact ${fmtMB(r.a?.rssPeakSampled)} / ${fmtMB(r.b?.rssPeakSampled)})`;
    const rssStart = `${fmtMB(r.a?.rssStartup)} / ${fmtMB(r.b?.rssStartup)}`;
    const docs = (row.ndocs ? ` (${fmtN(row.ndocs)} docs)` : "") + (r.rebuilt ? " ⚠ code rebuilt during the run" : "");
    out.push(`| ${fmtN(row.n)} | ${fmtN(row.d)} | ${name}${docs} | ${fmtBytes(row.wire)} | ${row.frames === undefined ? "–" : fmtBytes(row.frames)} | ${moved} | ${ratio} | ${rtText} | ${wall} | ${rssPeak} | ${rssStart} |`);
  }
  return out.join("\n");
}

function goals() {
  const out = ["", "Goals (Pigeon rows; bytes = TCP payload after the handshake, both directions):", ""];
  for (const row of rows.map(summarize)) {
    if (row.mode !== "sketch") continue;
    const tag = `n=${fmtN(row.n)} d=${fmtN(row.d)}`;
    if (!row.r.finished) {
      out.push(`- ${tag}: not met (the contact did not finish: ${row.r.timedOut ? "time bound" : row.r.error})`);
      continue;
    }
    if (row.d === 0) {
      const ok = row.rt === 1 && row.wire < 1024;
      out.push(`- ${tag}: 1 round trip and < 1 KB: ${ok ? "met" : "not met"} (${row.rt} round trip(s), ${row.wire} B on the wire, ${row.frames} B of sync frames)`);
    }
    if (row.d === 10) {
      const limit = 1.3 * row.moved + 2048;
      out.push(`- ${tag}: bytes ≤ 1.3 × envelopes + 2 KB = ${Math.floor(limit)} B: ${row.wire <= limit ? "met" : "not met"} (${row.wire} B on the wire, ${row.frames} B of sync frames, envelopes ${row.moved} B)`);
    }
    if (row.n >= 1_000_000) {
      const peak = Math.max(row.r.a.rssHwm, row.r.b.rssHwm);
      out.push(`- ${tag}: peak RSS < 300 MB: ${peak < 300 * 1048576 ? "met" : "not met"} (A ${fmtMB(row.r.a.rssHwm)} MB, B ${fmtMB(row.r.b.rssHwm)} MB)`);
    }
  }
  return out.join("\n");
}

function detailLines() {
  const out = ["", "Details per contact:", ""];
  for (const row of rows.map(summarize)) {
    if (!row.r) continue;
    const { a, b } = row.r;
    if (!a || !b) {
      out.push(`- n=${fmtN(row.n)} d=${fmtN(row.d)} ${row.mode}: no report (${row.r.error})`);
      continue;
    }
    const types = {};
    for (const x of [a, b]) for (const [k, v] of Object.entries(x.byType ?? {})) types[k] = (types[k] ?? 0) + v.sentBytes;
    const frameInfo = Object.entries(types).map(([k, v]) => `${k} ${fmtBytes(v)}`).join(", ");
    const overhead = row.wire !== undefined && row.frames !== undefined ? `; transport overhead ${fmtBytes(row.wire - row.frames)} over ${row.framesN} frames` : `; ${row.framesN} messages`;
    out.push(
      `- n=${fmtN(row.n)} d=${fmtN(row.d)} ${row.mode}: startup A ${fmtS(a.openMs + a.indexMs)} (sketch index ${fmtS(a.indexMs)}), B ${fmtS(b.openMs + b.indexMs)}; ` +
        `handshake ${fmtBytes(row.hs)}${overhead}${frameInfo ? `; frames: ${frameInfo}` : ""}` +
        (a.reconcile || b.reconcile
          ? `; sketches ${Math.max(a.reconcile?.sketches ?? 0, b.reconcile?.sketches ?? 0)}` +
            `${a.reconcile?.slices || b.reconcile?.slices ? `, slices ${Math.max(a.reconcile?.slices ?? 0, b.reconcile?.slices ?? 0)}` : ""}` +
            `${a.reconcile?.fallback || b.reconcile?.fallback ? ", fell back to listing" : ""}`
          : "") +
        (a.lagMaxMs !== undefined ? `; longest event-loop stall A ${a.lagMaxMs} ms, B ${b.lagMaxMs} ms` : "") +
        (a.memoryAtPeak
          ? `; at the sampled RSS peak, JS heap used / total, buffers, MB: A ${memParts(a.memoryAtPeak)}, B ${memParts(b.memoryAtPeak)}`
          : "") +
        `; stores end at ${fmtN(a.finalEnvelopes)} / ${fmtN(b.finalEnvelopes)}`,
    );
  }
  return out.join("\n");
}

const memParts = (m) => `${(m.heapUsed / 1048576).toFixed(0)} / ${(m.heapTotal / 1048576).toFixed(0)}, ${(m.arrayBuffers / 1048576).toFixed(0)}`;

// ---- main ----
const t0 = Date.now();
const cmd = `node bench/contact/run.mjs ${process.argv.slice(2).join(" ")}`.trim();
log(`cases: ${cases.map((c) => `n=${c.n} d=${2 * c.h}`).join(", ")}; modes ${MODES.join(",")}; temp ${root}`);
await generatePool();
for (const [i, c] of cases.entries()) {
  await runCase(c);
  if (cases[i + 1]?.n !== c.n) {
    const p = bases.get(c.n);
    if (p) rmSync(dirname(p), { recursive: true, force: true });
    bases.delete(c.n);
  }
}
const report = [
  `Command: \`${cmd}\` (Node ${process.version}, ${new Date().toISOString().slice(0, 10)}, total ${fmtS(Date.now() - t0)} including the pool)`,
  "",
  table(),
  goals(),
  detailLines(),
  "",
].join("\n");
console.log(report);
if (opt.out) writeFileSync(opt.out, report);
cleanup();
