// One Pigeon node for the contact benchmark, in its own process: a Mailbox on a pre-filled data dir,
// a SyncEngine ("sketch" or "list"), and a WsNetwork on 127.0.0.1. Talks to run.mjs over IPC.
//   argv[2] = JSON { dir, mode, role: "listen" | "dial", expected, maxFrameBytes, quietMs, name }
import { generateIdentity } from "../../packages/model/dist/index.js";
import { fileStorage, Mailbox, SyncEngine } from "../../packages/sync/dist/index.js";
import { WsNetwork } from "../../packages/peers/dist/index.js";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { dieWithParent, now, rssSampler, send, trackSockets, waitFor } from "./lib.mjs";

dieWithParent();
const cfg = JSON.parse(process.argv[2]);
const rss = rssSampler();
const sockets = trackSockets();
const t0 = now();

const mailbox = new Mailbox({
  identity: generateIdentity(cfg.name),
  storage: fileStorage(cfg.dir),
  carrier: { quotaBytes: 1e12, perSourceBytes: 1e12, perAuthorBytes: 1e12 },
});
const engine = new SyncEngine(mailbox, { reconcile: cfg.mode, hopLimit: 1000, copies: Infinity }); // no spray limit: everything is offerable
const initial = mailbox.envelopes.stats().envelopes;
const tOpened = now();
// A daemon builds its sketches once, on first use; build them here so the contact does not pay it.
if (cfg.mode === "sketch") mailbox.envelopes.sketches();
const tIndexed = now();

let count = initial;
let countCompleteAt; // set when the last missing envelope is stored (d = 0: already complete at link up)
mailbox.on("envelope", () => {
  count++;
  if (count >= cfg.expected && countCompleteAt === undefined) countCompleteAt = now();
});

const net = new WsNetwork({ identity: mailbox.identity, host: "127.0.0.1", port: 0, maxFrameBytes: cfg.maxFrameBytes });
const stats = {
  linkUpAt: 0,
  handshakeBytes: { written: 0, read: 0 },
  framesSent: 0,
  framesReceived: 0,
  frameBytesSent: 0,
  frameBytesReceived: 0,
  byType: {},
  lastActivity: 0,
  closeReason: undefined,
};
/** For each frame sent: how many frames had been received when it was sent (causal chain length). */
const sendLog = [];
const TYPES = { 1: "have", 2: "want", 3: "envelope", 4: "sketch", 5: "done", 6: "want16", 7: "slice sketch", 8: "slice done", 11: "probe", 13: "crowd", 14: "have16" };

function counted(link) {
  const type = (f) => TYPES[f[0]] ?? `t${f[0]}`;
  const tally = (f, dir) => {
    const t = (stats.byType[type(f)] ??= { sent: 0, received: 0, sentBytes: 0, receivedBytes: 0 });
    t[dir]++;
    t[dir + "Bytes"] += f.length;
  };
  return {
    peer: link.peer,
    description: link.description,
    get closed() {
      return link.closed;
    },
    send(f) {
      sendLog.push(stats.framesReceived);
      stats.framesSent++;
      stats.frameBytesSent += f.length;
      stats.lastActivity = now();
      tally(f, "sent");
      link.send(f);
    },
    onFrame(h) {
      link.onFrame((f) => {
        stats.framesReceived++;
        stats.frameBytesReceived += f.length;
        stats.lastActivity = now();
        tally(f, "received");
        h(f);
      });
    },
    onClose(h) {
      link.onClose(h);
    },
    close(r) {
      link.close(r);
    },
    // flow control passes through untouched
    bufferedBytes: () => link.bufferedBytes(),
    pause: () => link.pause(),
    resume: () => link.resume(),
  };
}

// how long the node went without turning its event loop (pings are answered on it)
const lag = monitorEventLoopDelay({ resolution: 20 });
net.on("link", (link) => {
  stats.linkUpAt = now();
  lag.enable();
  stats.handshakeBytes = sockets.bytes();
  rss.reset();
  link.onClose((r) => (stats.closeReason = r));
  engine.attach(counted(link));
});

const rssStartup = process.memoryUsage.rss();
const base = {
  initial,
  openMs: tOpened - t0,
  indexMs: tIndexed - tOpened,
  rssStartup,
  hwmStartup: rss.hwm(),
};
if (cfg.role === "listen") {
  const addr = await net.listen();
  send({ type: "ready", port: addr.port, ...base });
} else {
  send({ type: "ready", ...base });
  const { port } = await waitFor("go");
  net.dial("127.0.0.1", port).catch((e) => send({ type: "error", message: `dial: ${e.message}` }));
}

// progress for the parent (and its time bound)
const progress = setInterval(() => {
  const recon = engine.peers()[0]?.reconcile;
  const quiet = stats.lastActivity > 0 && now() - stats.lastActivity >= cfg.quietMs;
  const reconciled = cfg.mode === "list" || recon?.done === true;
  send({
    type: "progress",
    count,
    expected: cfg.expected,
    frames: stats.framesSent + stats.framesReceived,
    settled: count >= cfg.expected && quiet && reconciled,
    closeReason: stats.closeReason,
  });
}, 250);

await waitFor("report");
clearInterval(progress);
const tcp = sockets.bytes();
const peer = engine.peers()[0];
const final = mailbox.envelopes.stats();
send({
  type: "report",
  ...base,
  ...stats,
  tcpAfterLink: { written: tcp.written - stats.handshakeBytes.written, read: tcp.read - stats.handshakeBytes.read },
  sendLog,
  count,
  finalEnvelopes: final.envelopes,
  countCompleteAt: countCompleteAt ?? (count >= cfg.expected ? stats.linkUpAt : undefined),
  reconcile: peer?.reconcile,
  rssPeakSampled: rss.sampledPeak(),
  memoryAtPeak: rss.atPeak(),
  lagMaxMs: Math.round(lag.max / 1e6),
  rssHwm: rss.hwm(),
});
rss.stop();
engine.close();
await net.close();
await mailbox.close();
// a large report takes a while through the IPC pipe: exit only once it is out
await new Promise((r) => (process.send ? process.send({ type: "bye" }, r) : r()));
process.exit(0);
