// XMPP benchmark: messages per second and p50/p99 latency between two clients, through a Pigeon node
// and through Prosody on the same machine, in one run; plus each server's RSS and CPU time per message.
//   npm run bench:xmpp [-- --messages N --window W]
// Two minimal raw-socket clients (SCRAM-SHA-1 over plain TCP on loopback) run in this process: the
// sender keeps at most W messages in flight (sent, not yet received), each body carries its send time.
// Rows:
//   prosody            alice -> bob on one Prosody (Debian prosody, started here on loopback)
//   pigeon, 1 node     two resources of one user on one node (XMPP routing only, no Pigeon documents)
//   pigeon, 2 nodes    amara on node A -> baraka on node B: Pigeon documents, sealed envelopes, fsync,
//                      sync over the loopback link, the receiving node's signed receipt (the real path)
// Loopback only, bounded in count and time; every process started here is stopped at the end.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ScramClient } from "../../packages/xmpp/dist/index.js";
// The bench is an XMPP client: it reads the stream with the package's own parser and XML helpers,
// which are not part of @pigeon/xmpp's public API, straight from the built modules.
import { XmlStreamParser } from "../../packages/xmpp/dist/parser.js";
import { child, childText } from "../../packages/xmpp/dist/xml.js";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = join(ROOT, "packages/app/dist/cli.js");
const USAGE = `Usage: npm run bench:xmpp [-- OPTIONS]

Messages per second and p50/p99 latency between two XMPP clients, through Prosody and through Pigeon
(one node; two nodes syncing over loopback), with each server's RSS and CPU time (user + system,
from the first timed message to the last one received) per message: steadier than the rates on a
shared machine, so compare builds with it. Starts everything it needs on loopback, stops it all and removes its temporary directory when done (or on Ctrl-C).

Options:
  --messages N        messages for the Prosody and one-node rows (default 3000)
  --sync-messages N   messages for the two-node row (default 100; each is fsync'd on both laptops)
  --window W          messages in flight at most (default 20)
  -h, --help          this text`;
let values;
try {
  ({ values } = parseArgs({ options: { messages: { type: "string", default: "3000" }, "sync-messages": { type: "string", default: "100" }, window: { type: "string", default: "20" }, help: { type: "boolean", short: "h" } } }));
} catch (e) {
  console.error(`bench:xmpp: ${e.message}\n\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
for (const k of ["messages", "sync-messages", "window"]) {
  if (!/^[1-9]\d*$/.test(values[k])) {
    console.error(`bench:xmpp: --${k} must be a positive whole number, not "${values[k]}"\n\n${USAGE}`);
    process.exit(2);
  }
}
const N_XMPP = Number(values.messages);
// the two-node row goes through Pigeon's fsync'd document store on both laptops: a few per second
const N_SYNC = Number(values["sync-messages"]);
let N = N_XMPP;
const W = Number(values.window);
const DEADLINE_MS = 180_000;
const cleanups = [];
const tmp = mkdtempSync(join(tmpdir(), "pigeon-bench-xmpp-"));
cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
/** Stops a process started here and waits for it (SIGKILL after 5 s), so nothing writes into tmp after it is removed. */
function stopLater(proc) {
  cleanups.push(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  });
}
async function cleanUp() {
  for (const c of cleanups.splice(0).reverse()) { try { await c(); } catch { /* best effort */ } }
}
process.once("SIGINT", () => void cleanUp().then(() => process.exit(130)));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
/** CPU time (user + system) a process has used, in ms (/proc/<pid>/stat; clock ticks of 10 ms on Linux). */
const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
};
const rssMb = (pid) => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024);
async function until(fn, what, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await fn()) return; await sleep(50); }
  throw new Error(`timed out waiting for ${what}`);
}

/** A minimal XMPP client: log in with SCRAM-SHA-1, bind, send presence; then send and receive bodies. */
async function client({ port, user, domain, password, resource }) {
  const sock = connect(port, "127.0.0.1");
  sock.setNoDelay(true);
  await new Promise((r, j) => { sock.once("connect", r); sock.once("error", j); });
  const waiters = [];
  const onBody = { fn: () => {} };
  let parser;
  const fresh = () => {
    parser = new XmlStreamParser({
      streamStart: () => {},
      streamEnd: () => {},
      error: (e) => { throw new Error(`${user}: ${e.condition} ${e.message}`); },
      stanza: (s) => {
        if (s.name === "message") {
          const body = childText(s, "body");
          if (body !== undefined) return onBody.fn(body);
        }
        const i = waiters.findIndex((w) => w.match(s));
        if (i >= 0) waiters.splice(i, 1)[0].resolve(s);
      },
    }, { maxStanzaChars: 1 << 20 });
  };
  fresh();
  sock.on("data", (d) => parser.write(d));
  const next = (match) => new Promise((resolve) => waiters.push({ match, resolve }));
  const open = () => sock.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`);
  open();
  await next((s) => s.name === "features");
  const scram = new ScramClient("sha1", user, password);
  sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${Buffer.from(scram.first()).toString("base64")}</auth>`);
  const ch = await next((s) => s.name === "challenge" || s.name === "failure");
  if (ch.name === "failure") throw new Error(`${user}: login refused`);
  sock.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(scram.final(Buffer.from(ch.children.join(""), "base64").toString())).toString("base64")}</response>`);
  const ok = await next((s) => s.name === "success" || s.name === "failure");
  if (ok.name !== "success") throw new Error(`${user}: login refused`);
  fresh();
  open();
  await next((s) => s.name === "features");
  sock.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  const bound = await next((s) => s.name === "iq" && s.attrs.id === "b");
  const jid = childText(child(bound, "bind"), "jid");
  sock.write(`<presence/>`);
  await sleep(300);
  return {
    jid,
    send: (to, body) => sock.write(`<message type='chat' to='${to}'><body>${body}</body></message>`),
    onBody,
    close: () => { sock.write("</stream:stream>"); sock.destroy(); },
  };
}

async function measure(label, sender, receiver, to, serverPids, n = N_XMPP) {
  N = n;
  const sentAt = new Map();
  const lat = [];
  let received = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  receiver.onBody.fn = (body) => {
    const m = /^bench (\d+) /.exec(body);
    if (!m || !sentAt.has(m[1])) return;
    lat.push(performance.now() - sentAt.get(m[1]));
    sentAt.delete(m[1]);
    if (++received === N) done();
  };
  // warm up: one message through, so first-contact work (conversation keys, documents) is not timed
  sentAt.set("w", performance.now());
  receiver.onBody.fn = ((orig) => (body) => { if (body.startsWith("bench w ")) { sentAt.delete("w"); warm(); } else orig(body); })(receiver.onBody.fn);
  let warm;
  const warmed = new Promise((r) => (warm = r));
  sender.send(to, "bench w warm-up");
  await Promise.race([warmed, sleep(30_000).then(() => { throw new Error(`${label}: warm-up message never arrived`); })]);
  const t0 = performance.now();
  const cpu0 = serverPids.map(cpuMs);
  let sent = 0;
  const deadline = Date.now() + DEADLINE_MS;
  while (sent < N) {
    if (Date.now() > deadline) throw new Error(`${label}: over ${DEADLINE_MS / 1000} s`);
    if (sent - received >= W) { await sleep(1); continue; }
    const id = String(sent++);
    sentAt.set(id, performance.now());
    sender.send(to, `bench ${id} hello, this is a message of a typical length for a chat between two children`);
    if (sent % 10 === 0) await new Promise((r) => setImmediate(r));
  }
  await Promise.race([finished, sleep(DEADLINE_MS).then(() => { throw new Error(`${label}: only ${received}/${N} arrived`); })]);
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  const cpu = serverPids.map((pid, i) => (cpuMs(pid) - cpu0[i]) / N);
  return { label, n: N, rate: N / secs, p50: q(0.5), p99: q(0.99), rss: serverPids.map(rssMb), cpu };
}

async function prosodyRun() {
  const dir = join(tmp, "prosody");
  mkdirSync(join(dir, "data"), { recursive: true });
  const port = await freePort();
  const cfg = join(dir, "prosody.cfg.lua");
  writeFileSync(cfg, `pidfile = "${dir}/prosody.pid"
data_path = "${dir}/data"
log = { warn = "${dir}/prosody.log" }
daemonize = false
interfaces = { "127.0.0.1" }
c2s_ports = { ${port} }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = false
authentication = "internal_hashed"
modules_enabled = { "roster", "saslauth", "disco", "ping", "offline" }
modules_disabled = { "s2s" }
VirtualHost "local"
`);
  if (process.getuid() === 0) { execFileSync("chmod", ["755", tmp, dir]); execFileSync("chown", ["-R", "prosody:prosody", dir]); }
  const env = { ...process.env, HOME: dir };
  for (const u of ["alice", "bob"]) execFileSync("prosodyctl", ["--config", cfg, "register", u, "local", `${u}-password`], { env, stdio: "ignore" });
  const [cmd, argv] = process.getuid() === 0
    ? ["setpriv", ["--reuid=prosody", "--regid=prosody", "--init-groups", "prosody", "--config", cfg]]
    : ["prosody", ["--config", cfg]];
  const proc = spawn(cmd, argv, { stdio: "ignore", env });
  stopLater(proc);
  await until(() => new Promise((r) => { const s = connect(port, "127.0.0.1"); s.on("connect", () => { s.destroy(); r(true); }); s.on("error", () => r(false)); }), "prosody");
  const alice = await client({ port, user: "alice", domain: "local", password: "alice-password", resource: "bench" });
  const bob = await client({ port, user: "bob", domain: "local", password: "bob-password", resource: "bench" });
  const r = await measure("prosody 0.12 (alice -> bob)", alice, bob, "bob@local", [proc.pid]);
  alice.close(); bob.close();
  return r;
}

// e.g. BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles each node (written when it stops)
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean);

async function startNode(name, extra = []) {
  const data = join(tmp, name);
  const proc = spawn(process.execPath, [...NODE_FLAGS, CLI, "start", "--data", data, "--name", name, "--listen", "127.0.0.1", "--port", "0", "--control-port", "0", "--xmpp-port", "0", "--no-mdns", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  stopLater(proc);
  await until(() => /\bready\b/.test(out), `${name} to start`);
  const info = JSON.parse(readFileSync(join(data, "node.json"), "utf8"));
  const password = JSON.parse(readFileSync(join(data, "xmpp-credentials.json"), "utf8")).password;
  return { proc, info, password, data };
}

async function pigeonOneNode() {
  const a = await startNode("solo");
  const r1 = await client({ port: a.info.xmpp.port, user: "solo", domain: "local", password: a.password, resource: "one" });
  const r2 = await client({ port: a.info.xmpp.port, user: "solo", domain: "local", password: a.password, resource: "two" });
  const r = await measure("pigeon, 1 node (resource -> resource)", r1, r2, r2.jid, [a.proc.pid]);
  r1.close(); r2.close();
  return r;
}

async function pigeonTwoNodes() {
  const a = await startNode("amara");
  const b = await startNode("baraka", ["--peer", `127.0.0.1:${a.info.sync.port}`]);
  const pigeon = (data, ...args) => execFileSync(process.execPath, [CLI, ...args, "--data", data], { encoding: "utf8" });
  for (const x of [a, b]) await until(() => JSON.parse(pigeon(x.data, "nearby", "--json")).length === 1, "the nodes to meet");
  // meeting makes no buddy: the children add each other (messages from others wait as requests)
  pigeon(a.data, "buddies", "add", "baraka@local");
  pigeon(b.data, "buddies", "add", "amara@local");
  const amara = await client({ port: a.info.xmpp.port, user: "amara", domain: "local", password: a.password, resource: "bench" });
  const baraka = await client({ port: b.info.xmpp.port, user: "baraka", domain: "local", password: b.password, resource: "bench" });
  const r = await measure("pigeon, 2 nodes (amara@A -> baraka@B, via sync)", amara, baraka, "baraka@local", [a.proc.pid, b.proc.pid], N_SYNC);
  amara.close(); baraka.close();
  return r;
}

const rows = [];
try {
  console.log(`XMPP benchmark: ${N_XMPP} messages (${N_SYNC} for the two-node row), at most ${W} in flight, loopback, ${new Date().toISOString()}`);
  console.log(`temporary directory (removed at the end): ${tmp}`);
  rows.push(await prosodyRun());
  rows.push(await pigeonOneNode());
  rows.push(await pigeonTwoNodes());
} catch (e) {
  console.error(`bench:xmpp: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
const pad = (s, n) => String(s).padEnd(n);
console.log("");
console.log(`| ${pad("server", 50)} | messages | msgs/s | p50 ms | p99 ms | server RSS MB | server CPU ms/msg |`);
console.log(`|${"-".repeat(52)}|----------|--------|--------|--------|---------------|-------------------|`);
for (const r of rows) console.log(`| ${pad(r.label, 50)} | ${pad(r.n, 8)} | ${pad(r.rate.toFixed(0), 6)} | ${pad(r.p50.toFixed(1), 6)} | ${pad(r.p99.toFixed(1), 6)} | ${pad(r.rss.join(" + "), 13)} | ${pad(r.cpu.map((c) => c.toFixed(2)).join(" + "), 17)} |`);
// the clients' sockets and timers are done with: leave now
process.exit(process.exitCode ?? 0);
