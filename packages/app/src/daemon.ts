// `pigeon start`: wires model, sync and peers into one running node.
//   Mailbox + SyncEngine (sync)  <-  PeerLinks  <-  WsNetwork, StaticPeers, MdnsDiscovery (peers)
//   control API (loopback HTTP) for the `pigeon` command.
import { randomBytes } from "node:crypto";
import { unlinkSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { fingerprint, formatAddress, toHex, type Identity } from "@pigeon/model";
import { MdnsDiscovery, StaticPeers, WsNetwork } from "@pigeon/peers";
import { Mailbox, SyncEngine, type Log } from "@pigeon/sync";
import { DEFAULT_XMPP_PORT, ensureCredentials, WEBSOCKET_PATH, XmppServer } from "@pigeon/xmpp";
import { createControlServer } from "./control.js";
import { nodeInfoPath, writeFileAtomic, type NodeInfo } from "./data-dir.js";

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
  copies?: number;
  /** Storage for envelopes carried for others, in bytes. */
  carryQuotaBytes?: number;
  log?: Log;
  /** XMPP front door (packages/xmpp): off with false; TCP on xmppListen:xmppPort (default 127.0.0.1:5222). */
  xmpp?: boolean;
  xmppListen?: string;
  xmppPort?: number;
}

export interface RunningNode {
  info: NodeInfo;
  mailbox: Mailbox;
  stop(): Promise<void>;
  stopped: Promise<void>;
}

export function consoleLog(): Log {
  const stamp = () => new Date().toISOString().slice(11, 19);
  return {
    info: (m) => console.log(`${stamp()} ${m}`),
    warn: (m) => console.log(`${stamp()} warning: ${m}`),
  };
}

export async function startNode(opts: NodeOptions): Promise<RunningNode> {
  const log = opts.log ?? consoleLog();
  const mailbox = new Mailbox({
    identity: opts.identity,
    dataDir: opts.dataDir,
    log,
    carrier: opts.carryQuotaBytes !== undefined ? { quotaBytes: opts.carryQuotaBytes } : undefined,
  });
  await mailbox.recover();
  const sync = new SyncEngine(mailbox, { hopLimit: opts.hopLimit, copies: opts.copies, log });

  const network = new WsNetwork({
    identity: opts.identity,
    host: opts.listen ?? "0.0.0.0",
    port: opts.port ?? DEFAULT_SYNC_PORT,
    fallbackToEphemeral: opts.port === undefined,
  });
  network.on("link", (link) => sync.attach(link));
  network.on("rejected", (r) => log.warn(`refused a connection from ${r.remote}: ${r.reason}`));
  let listening;
  try {
    listening = await network.listen();
  } catch (e) {
    await mailbox.close();
    throw e;
  }

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

  const control = createControlServer({
    mailbox,
    sync,
    token,
    info: () => ({ syncPort: info.sync.port, controlPort: info.control.port, dataDir: opts.dataDir, pid: process.pid, xmpp: info.xmpp }),
    stop: () => void stop(),
  });
  const controlPort = await new Promise<number>((resolve, reject) => {
    const tryPort = (port: number, fallback: boolean) => {
      control.once("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EADDRINUSE" && fallback) tryPort(0, false);
        else reject(new Error(`cannot listen for the pigeon command on 127.0.0.1:${port}: ${e.message}`));
      });
      control.listen(port, "127.0.0.1", () => resolve((control.address() as AddressInfo).port));
    };
    tryPort(opts.controlPort ?? DEFAULT_CONTROL_PORT, opts.controlPort === undefined);
  }).catch(async (e: unknown) => {
    await network.close();
    await mailbox.close();
    throw e;
  });
  info.control.port = controlPort;

  // XMPP: TCP clients on their own port; WebSocket clients on the loopback HTTP server at /xmpp-websocket
  let xmpp: XmppServer | undefined;
  if (opts.xmpp !== false) {
    try {
      ensureCredentials(opts.dataDir);
      xmpp = new XmppServer({
        mailbox, dataDir: opts.dataDir, log, host: opts.xmppListen ?? "127.0.0.1", port: opts.xmppPort ?? DEFAULT_XMPP_PORT,
        fallbackToEphemeral: opts.xmppPort === undefined,
        peers: sync,
      });
      const x = await xmpp.listen();
      const server = xmpp;
      control.on("upgrade", (req, socket, head) => {
        if (!server.handleUpgrade(req, socket, head)) socket.destroy();
      });
      info.xmpp = { host: x.host, port: x.port, websocket: `ws://127.0.0.1:${controlPort}${WEBSOCKET_PATH}` };
    } catch (e) {
      await xmpp?.close();
      control.close();
      await network.close();
      await mailbox.close();
      throw e;
    }
  }
  writeFileAtomic(nodeInfoPath(opts.dataDir), JSON.stringify(info, null, 2) + "\n");

  const statics = opts.peers?.length ? new StaticPeers({ network, peers: opts.peers }) : undefined;
  statics?.on("dial-failed", (f) => log.info(`cannot reach ${f.target} (${f.reason}); retrying in ${Math.round(f.retryInMs / 1000)} s`));
  statics?.start();

  // mDNS on each interface asked for (a laptop may sit in two classrooms' networks), or the default one.
  // A peer heard again and again is dialled once at a time, with a growing pause after failures, so
  // twenty laptops in one room do not drown each other in dials.
  const discoveries: MdnsDiscovery[] = [];
  const dialing = new Set<string>();
  const nextDial = new Map<string, { at: number; pause: number }>();
  const onPeer = (p: { signPublicKey: Uint8Array; host: string; port: number }) => {
    // one side dials, so two laptops that find each other do not race (lower key dials)
    if (Buffer.compare(Buffer.from(opts.identity.signing.publicKey), Buffer.from(p.signPublicKey)) > 0) return;
    if (network.links().some((l) => Buffer.from(l.peer.signPublicKey).equals(Buffer.from(p.signPublicKey)))) return;
    const key = toHex(p.signPublicKey);
    const wait = nextDial.get(key);
    if (dialing.has(key) || (wait && Date.now() < wait.at)) return;
    dialing.add(key);
    network.dial(p.host, p.port).then(
      () => nextDial.delete(key),
      (e: Error) => {
        const pause = Math.min(60_000, (wait?.pause ?? 2_500) * 2);
        nextDial.set(key, { at: Date.now() + pause, pause });
        log.info(`could not reach ${p.host}:${p.port} found by mDNS: ${e.message}; next try in ${Math.round(pause / 1000)} s`);
      },
    ).finally(() => dialing.delete(key));
  };
  if (opts.mdns !== false) {
    for (const iface of opts.mdnsInterfaces?.length ? opts.mdnsInterfaces : [undefined]) {
      const d = new MdnsDiscovery({ identity: opts.identity, port: listening.port, interface: iface });
      d.on("peer", onPeer);
      d.on("error", (e) => log.warn(`mDNS${iface ? ` on ${iface}` : ""}: ${e.message}`));
      try {
        d.start();
        discoveries.push(d);
      } catch (e) {
        log.warn(`mDNS discovery${iface ? ` on ${iface}` : ""} is off: ${(e as Error).message}`);
      }
    }
  }

  // Once the disk has room again, open what had to wait (see Mailbox.retryAfterStorageTrouble).
  const retryTimer = setInterval(() => void mailbox.retryAfterStorageTrouble(), 10_000).unref();
  // Carried envelopes past their lifetime are dropped (a minute is fine: offers already skip them).
  const expiryTimer = setInterval(() => void mailbox.dropExpired().catch(() => {}), 60_000).unref();

  log.info(`pigeon node for ${info.address} (fingerprint ${fingerprint(opts.identity.signing.publicKey)})`);
  log.info(`data directory ${opts.dataDir}`);
  log.info(`sync on ${listening.host}:${listening.port}, control on 127.0.0.1:${controlPort}${discoveries.length ? ", mDNS discovery on" : ""}`);
  if (info.xmpp) log.info(`XMPP for ${info.address} on ${info.xmpp.host}:${info.xmpp.port} and ${info.xmpp.websocket} (password: pigeon xmpp-password)`);

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info("stopping");
      clearInterval(retryTimer);
      clearInterval(expiryTimer);
      await Promise.all(discoveries.map((d) => d.stop()));
      statics?.stop();
      await xmpp?.close();
      sync.close();
      await network.close();
      const closed = new Promise<void>((r) => control.close(() => r()));
      control.closeAllConnections();
      await closed;
      await mailbox.close();
      try {
        unlinkSync(nodeInfoPath(opts.dataDir));
      } catch {
        /* already gone */
      }
      resolveStopped();
    })();
    return stopping;
  };
  return { info, mailbox, stop, stopped };
}
