// `pigeon start`: a thin shell around the library's PigeonNode (packages/sync/src/node.ts), which owns
// recovery, timers, the dial rule and the guarded shutdown. This file picks the parts (file storage in
// the data directory, WebSocket network, mDNS and static peers) and adds node.json, the control API
// for the `pigeon` command and the XMPP front door.
import { randomBytes } from "node:crypto";
import { unlinkSync } from "node:fs";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { formatAddress, serializeIdentity, toHex, type Identity, type SchoolKey } from "@pigeon/model";
import { MdnsDiscovery, StaticPeers, WsNetwork } from "@pigeon/peers";
import { createLog, fileStorage, PigeonNode, RelayPoint, type Log, type Mailbox, type PeerFinder } from "@pigeon/sync";
import { DEFAULT_XMPP_PORT, ensureCredentials, WEBSOCKET_PATH, XmppServer } from "@pigeon/xmpp";
import { createControlServer } from "./control.js";
import { HttpGuard } from "./http-guard.js";
import { identityPath, nodeInfoPath, writeFileAtomic, type NodeInfo } from "./data-dir.js";
import { reportStaticPeers } from "./peer-reports.js";
import { schoolRoutes } from "./school.js";
import { startGateway, type RunningGateway } from "./gateway.js";
import { relayRoutes, type RelaySetup } from "./relay.js";

export const DEFAULT_SYNC_PORT = 7480;
export const DEFAULT_CONTROL_PORT = 7481;

export interface NodeOptions {
  dataDir: string;
  identity: Identity;
  listen?: string;
  port?: number;
  controlPort?: number;
  peers?: string[];
  mdns?: boolean;
  /** IPv4 addresses of the interfaces to discover on (default: the system's default interface). */
  mdnsInterfaces?: string[];
  hopLimit?: number;
  /** Show who this laptop is to laptops that share no secret with it (default: only when in no school). */
  meetStrangers?: boolean;
  copies?: number;
  /** Storage for envelopes carried for others, in bytes. */
  carryQuotaBytes?: number;
  log?: Log;
  /** XMPP front door (packages/xmpp): off with false; TCP on xmppListen:xmppPort (default 127.0.0.1:5222). */
  xmpp?: boolean;
  xmppListen?: string;
  xmppPort?: number;
  /**
   * Web origins (e.g. "http://127.0.0.1:8080") whose pages may use the control port's HTTP API and
   * XMPP WebSocket, besides the node's own origin (http-guard.ts). Default: none.
   */
  allowOrigins?: string[];
  /** A school server's key (school.json): the node also writes the school's directory. */
  school?: SchoolKey;
  /** The children's web app on the control port (web-app.ts); default on. */
  webApp?: boolean;
  /** The e-mail gateway's configuration file: this node is the school's gateway (docs/gateway.md). */
  gateway?: string;
  /** This node is its village's relay point (relay.ts): its certificate and federation. */
  relay?: RelaySetup;
}

export interface RunningNode {
  info: NodeInfo;
  /** The web app's address with its key (to print for the user only: the key opens the app). */
  appUrl?: string;
  node: PigeonNode;
  /** The e-mail gateway, when this node is one. */
  gateway?: RunningGateway;
  mailbox: Mailbox;
  /** The node's log (console and node.log, rate-limited). */
  log: Log;
  stop(): Promise<void>;
  stopped: Promise<void>;
  /** Set when the store was found damaged while running (the node then stopped itself). */
  readonly damaged?: Error;
}

/**
 * Starts the node of one data directory: the library's PigeonNode with the durable file storage, a
 * WebSocket network and mDNS / static peers; around it the shell adds `node.json`, the control API
 * for the `pigeon` command and the XMPP front door.
 */
export async function startNode(opts: NodeOptions): Promise<RunningNode> {
  // $PIGEON_LOG_WINDOW_MS shortens the log's minute (tests that check its counts)
  const log = opts.log ?? createLog({ file: join(opts.dataDir, "node.log"), windowMs: Number(process.env.PIGEON_LOG_WINDOW_MS) || undefined });
  const guard = new HttpGuard({ allowedOrigins: opts.allowOrigins }); // first: a bad origin throws before anything opens
  // refused handshakes and connections over the handshake limits are written to the log (rate-limited)
  const network = new WsNetwork({
    identity: opts.identity,
    host: opts.listen ?? "0.0.0.0",
    port: opts.port ?? DEFAULT_SYNC_PORT,
    fallbackToEphemeral: opts.port === undefined,
    // a testbed that compresses hours into seconds notices a mule gone within its slot, not 40 s later
    ...(Number(process.env.PIGEON_PING_INTERVAL_MS) > 0 ? { pingIntervalMs: Number(process.env.PIGEON_PING_INTERVAL_MS) } : {}),
    log,
  });
  const listening = await network.listen();

  const finders: PeerFinder[] = [];
  if (opts.peers?.length) {
    const statics = new StaticPeers({ network, peers: opts.peers });
    reportStaticPeers(statics, log);
    finders.push(statics);
  }
  // mDNS on each interface asked for (a laptop may sit in two classrooms' networks), or the default one
  if (opts.mdns !== false) {
    for (const iface of opts.mdnsInterfaces?.length ? opts.mdnsInterfaces : [undefined]) {
      const where = iface ? ` (on ${iface})` : "";
      const d = new MdnsDiscovery({
        port: listening.port, interface: iface,
        log: { info: (m) => log.info(m + where), warn: (m) => log.warn(m + where) },
      });
      finders.push(d);
    }
  }

  // the store's full check, when a clean close let the start skip it, runs a little later: damage it
  // finds stops the node, as damage found at start refuses it (nothing more is written to a bad store)
  let damaged: Error | undefined;
  let stopForDamage = () => {};
  const onDamaged = (e: Error) => {
    damaged = e;
    log.warn(e.message);
    stopForDamage();
  };
  const onConverting = (from: number, to: number, envelopes: number) =>
    log.info(`converting the store from format ${from} to ${to}, once (${envelopes} envelopes${envelopes > 100_000 ? ": about 3 s per 100,000" : ""})`);
  let node: PigeonNode;
  try {
    node = await PigeonNode.open({
      identity: opts.identity,
      // $PIGEON_STORE_CHECK_LATER_MS: when the background check starts (tests that cannot wait 30 s)
      storage: fileStorage(opts.dataDir, { onDamaged, onConverting, ...(process.env.PIGEON_STORE_CHECK_LATER_MS ? { checkLaterMs: Number(process.env.PIGEON_STORE_CHECK_LATER_MS) } : {}) }),
      network,
      finders,
      log,
      limits: { hopLimit: opts.hopLimit, copies: opts.copies, carrier: opts.carryQuotaBytes !== undefined ? { quotaBytes: opts.carryQuotaBytes } : undefined },
      ...(opts.school ? { school: opts.school } : {}),
      ...(opts.meetStrangers !== undefined ? { meetStrangers: opts.meetStrangers } : {}),
    });
  } catch (e) {
    await network.close();
    throw e;
  }
  const { mailbox, sync } = node;
  // $PIGEON_ANNOUNCE_GAP_MS shortens the minute between route announcements (tests that cannot wait for it)
  const relay = opts.relay ? new RelayPoint(node, { ...opts.relay, log, announceGapMs: Number(process.env.PIGEON_ANNOUNCE_GAP_MS) || undefined }) : undefined;
  // the school's laptops learn which villages it exchanges mail with, and their schools' keys, from a
  // directory entry: they check another village's person's card against that school's word with it
  if (opts.relay && opts.school) {
    try {
      const published = await mailbox.school.publishFederation(opts.relay.federation);
      if (published) log.info(`told the school's laptops the villages it exchanges mail with: ${[...published.villages.keys()].join(", ") || "none"}`);
    } catch (e) {
      log.warn(`could not tell the school's laptops the villages it exchanges mail with: ${(e as Error).message}`);
    }
  }
  // a paired device's sealing key rotated, or a keyring was applied: identity.json follows (owner-only)
  mailbox.on("identity", (id) => {
    try {
      writeFileAtomic(identityPath(opts.dataDir), JSON.stringify(serializeIdentity(id), null, 2) + "\n");
    } catch (e) {
      log.warn(`could not save the identity after a key change: ${(e as Error).message}`);
    }
  });

  const token = toHex(new Uint8Array(randomBytes(24)));
  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  const info: NodeInfo = {
    pid: process.pid,
    address: formatAddress(opts.identity),
    control: { host: "127.0.0.1", port: 0, token },
    sync: { host: listening.host, port: listening.port },
    startedAt: Date.now(),
  };

  const { server: control, web } = createControlServer({
    mailbox,
    sync,
    token,
    guard,
    xmppHttp: (req, res) => xmpp?.handleHttp(req, res) ?? Promise.resolve(false),
    info: () => ({ syncPort: info.sync.port, controlPort: info.control.port, dataDir: opts.dataDir, pid: process.pid, xmpp: info.xmpp }),
    stop: () => void stop(),
    unproven: () => network.stats(),
    extraRoutes: { ...schoolRoutes(mailbox, { dataDir: opts.dataDir, running: true }), ...relayRoutes(relay, opts.relay?.federation) },
    ...(opts.webApp !== false ? { webApp: { dataDir: opts.dataDir } } : {}),
  });
  // one upgrade handler for the port: the web app's live updates and XMPP over WebSocket, both behind the guard
  let xmppUpgrade: ((req: IncomingMessage, socket: Duplex, head: Buffer) => boolean) | undefined;
  control.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (guard.refuseUpgrade(req, socket)) return;
    if (web?.handleUpgrade(req, socket, head)) return;
    if (!xmppUpgrade?.(req, socket, head)) socket.destroy();
  });
  let xmpp: XmppServer | undefined;
  let gateway: RunningGateway | undefined;
  try {
    if (opts.gateway) {
      gateway = await startGateway(node, opts.dataDir, opts.gateway, log);
      info.gateway = { domain: gateway.domain, smtpPort: gateway.smtpPort };
    }
    info.control.port = await listenControl(control, opts.controlPort);
    // XMPP: TCP clients on their own port; WebSocket clients on the loopback HTTP server at /xmpp-websocket
    if (opts.xmpp !== false) {
      ensureCredentials(opts.dataDir);
      xmpp = new XmppServer({
        mailbox, dataDir: opts.dataDir, log, host: opts.xmppListen ?? "127.0.0.1", port: opts.xmppPort ?? DEFAULT_XMPP_PORT,
        fallbackToEphemeral: opts.xmppPort === undefined,
        peers: sync,
        live: sync,
        httpBase: `http://127.0.0.1:${info.control.port}`,
      });
      const x = await xmpp.listen();
      const server = xmpp;
      xmppUpgrade = (req, socket, head) => server.handleUpgrade(req, socket, head);
      info.xmpp = { host: x.host, port: x.port, websocket: `ws://127.0.0.1:${info.control.port}${WEBSOCKET_PATH}` };
    }
  } catch (e) {
    await gateway?.stop().catch(() => {});
    await xmpp?.close().catch(() => {});
    await web?.close().catch(() => {});
    control.close();
    await node.shutdown().catch(() => {});
    throw e;
  }
  if (web) info.app = { url: `http://127.0.0.1:${info.control.port}/app/` };
  writeFileAtomic(nodeInfoPath(opts.dataDir), JSON.stringify(info, null, 2) + "\n");

  log.info(`data directory ${opts.dataDir} (log in node.log there)`);
  log.info(`sync on ${listening.host}:${listening.port}, control on 127.0.0.1:${info.control.port}${opts.mdns !== false ? ", mDNS discovery on" : ""}`);
  if (guard.allowedOrigins.length) log.info(`web pages from ${guard.allowedOrigins.join(", ")} may use the control port`);
  if (web) log.info(`the web app on http://127.0.0.1:${info.control.port}/app/ (pigeon start prints it with its key)`);
  if (info.xmpp) log.info(`XMPP for ${info.address} on ${info.xmpp.host}:${info.xmpp.port} and ${info.xmpp.websocket} (password: pigeon xmpp-password)`);

  // each step guarded: one that fails is logged and the rest still run (the store is always closed)
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info("stopping");
      const step = async (what: string, fn: () => unknown) => {
        try {
          await fn();
        } catch (e) {
          log.warn(`while stopping, ${what} failed: ${(e as Error).message}`);
        }
      };
      await step("stopping the e-mail gateway", () => gateway?.stop());
      await step("closing the XMPP front door", () => xmpp?.close());
      await step("closing the web app", () => web?.close());
      await step("closing the control API", () => {
        const closed = new Promise<void>((r) => control.close(() => r()));
        control.closeAllConnections();
        return closed;
      });
      await step("closing the relay point", () => relay?.close());
      await step("shutting the node down", () => node.shutdown());
      await step("removing node.json", () => {
        try {
          unlinkSync(nodeInfoPath(opts.dataDir));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        }
      });
      resolveStopped();
    })();
    return stopping;
  };
  stopForDamage = () => void stop();
  if (damaged) stopForDamage();
  return {
    info, ...(web ? { appUrl: web.url(info.control.port) } : {}), node, mailbox, log, stop, stopped, ...(gateway ? { gateway } : {}),
    get damaged() {
      return damaged;
    },
  };
}

/** Listens on the control port (127.0.0.1 only); the default port falls back to a free one. */
function listenControl(control: Server, wanted: number | undefined): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const tryPort = (port: number, fallback: boolean) => {
      control.once("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EADDRINUSE" && fallback) tryPort(0, false);
        else reject(new Error(`cannot listen for the pigeon command on 127.0.0.1:${port}: ${e.message}`));
      });
      control.listen(port, "127.0.0.1", () => resolve((control.address() as AddressInfo).port));
    };
    tryPort(wanted ?? DEFAULT_CONTROL_PORT, wanted === undefined);
  });
}
