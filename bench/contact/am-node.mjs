// Baseline (b): plain automerge-repo 2.5.6 syncing the same conversations as documents, one Repo
// per process, over its stock WebSocket adapters on 127.0.0.1 (no storage: documents are imported
// into memory, which is all automerge-repo syncs anyway).
//   argv[2] = JSON { docsFile, side: "a" | "b", role: "listen" | "dial", expected, quietMs }
import { readFileSync } from "node:fs";
import { Repo } from "@automerge/automerge-repo";
import { WebSocketServer } from "ws";
import { dieWithParent, now, rssSampler, send, trackSockets, waitFor } from "./lib.mjs";

// Not a project dependency: as a root devDependency its lock entries broke `npm ci` (npm 11 records
// cbor-extract's optional platform packages without versions). Installed on demand for this baseline.
let BrowserWebSocketClientAdapter, NodeWSServerAdapter;
try {
  ({ BrowserWebSocketClientAdapter, NodeWSServerAdapter } = await import("@automerge/automerge-repo-network-websocket"));
} catch {
  console.error(
    "bench:contact baseline (b) needs automerge-repo's WebSocket adapter; install it (not saved) with:\n" +
      "  npm install --no-save @automerge/automerge-repo-network-websocket@2.5.6",
  );
  process.exit(3);
}

dieWithParent();
const cfg = JSON.parse(process.argv[2]);
const rss = rssSampler();
const sockets = trackSockets();
const t0 = now();

const repo = new Repo({ network: [], sharePolicy: async () => true });
const docs = JSON.parse(readFileSync(cfg.docsFile, "utf8"));
const perDoc = new Map();
let count = 0;
let countCompleteAt;
const recount = (id, doc) => {
  const n = doc?.messages?.length ?? 0;
  count += n - (perDoc.get(id) ?? 0);
  perDoc.set(id, n);
  if (count >= cfg.expected && countCompleteAt === undefined) countCompleteAt = now();
};
for (const d of docs) {
  const bin = Buffer.from(d[cfg.side], "base64");
  const handle = repo.import(new Uint8Array(bin), { docId: d.id });
  if (!handle.isReady()) handle.doneLoading?.();
  recount(d.id, handle.doc());
  handle.on("change", ({ doc }) => recount(d.id, doc));
}
const initial = count;
countCompleteAt = undefined;
const tLoaded = now();

const stats = {
  linkUpAt: 0,
  handshakeBytes: { written: 0, read: 0 },
  framesSent: 0,
  framesReceived: 0,
  lastActivity: 0,
  closeReason: undefined,
};
const sendLog = [];
function instrument(adapter) {
  const emit = adapter.emit.bind(adapter);
  adapter.emit = (event, ...args) => {
    if (event === "message") {
      stats.framesReceived++;
      stats.lastActivity = now();
    }
    return emit(event, ...args);
  };
  const sendMsg = adapter.send.bind(adapter);
  adapter.send = (msg) => {
    sendLog.push(stats.framesReceived);
    stats.framesSent++;
    stats.lastActivity = now();
    return sendMsg(msg);
  };
  return adapter;
}
repo.networkSubsystem.on("peer", () => {
  stats.linkUpAt = now();
  stats.handshakeBytes = sockets.bytes();
  rss.reset();
});
repo.networkSubsystem.on("peer-disconnected", () => (stats.closeReason ??= "peer disconnected"));

const base = { initial, openMs: tLoaded - t0, indexMs: 0, rssStartup: process.memoryUsage.rss(), hwmStartup: rss.hwm() };
let wss;
if (cfg.role === "listen") {
  wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  repo.networkSubsystem.addNetworkAdapter(instrument(new NodeWSServerAdapter(wss)));
  send({ type: "ready", port: wss.address().port, ...base });
} else {
  send({ type: "ready", ...base });
  const { port } = await waitFor("go");
  repo.networkSubsystem.addNetworkAdapter(instrument(new BrowserWebSocketClientAdapter(`ws://127.0.0.1:${port}`)));
}

const progress = setInterval(() => {
  const quiet = stats.lastActivity > 0 && now() - stats.lastActivity >= cfg.quietMs;
  send({
    type: "progress",
    count,
    expected: cfg.expected,
    frames: stats.framesSent + stats.framesReceived,
    settled: count >= cfg.expected && quiet,
    closeReason: stats.closeReason,
  });
}, 250);

await waitFor("report");
clearInterval(progress);
const tcp = sockets.bytes();
send({
  type: "report",
  ...base,
  ...stats,
  tcpAfterLink: { written: tcp.written - stats.handshakeBytes.written, read: tcp.read - stats.handshakeBytes.read },
  frameBytesSent: undefined,
  sendLog,
  count,
  finalEnvelopes: count,
  countCompleteAt: countCompleteAt ?? (count >= cfg.expected ? stats.linkUpAt : undefined),
  rssPeakSampled: rss.sampledPeak(),
  rssHwm: rss.hwm(),
});
process.exit(0);
