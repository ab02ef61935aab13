// Keeps links up to a fixed list of "host:port" addresses (for networks where mDNS does not work):
// dials each one, re-dials with exponential backoff when dialling fails or the link closes.
import { EventEmitter } from "node:events";
import type { PeerLink } from "@pigeon/model";
import { formatHostPort, parseHostPort, type HostPort } from "./address.js";

export const DEFAULT_MIN_BACKOFF_MS = 1_000;
export const DEFAULT_MAX_BACKOFF_MS = 30_000;
/** A link that stayed up this long resets the backoff. */
const STABLE_LINK_MS = 10_000;

/** Anything that can dial: WsNetwork, or a stub in tests. */
export interface Dialer {
  dial(host: string, port: number): Promise<PeerLink>;
}

export interface StaticPeersOptions {
  network: Dialer;
  /** "host:port" strings; a bad entry throws PeerAddressError from the constructor. */
  peers: readonly string[];
  /** First retry delay. Default 1 s. */
  minBackoffMs?: number;
  /** Retry delay cap. Default 30 s. */
  maxBackoffMs?: number;
}

export interface StaticPeersEvents {
  link: [link: PeerLink, target: string];
  "dial-failed": [failure: { target: string; reason: string; retryInMs: number }];
  "link-closed": [info: { target: string; reason: string; retryInMs: number }];
}

interface Target extends HostPort {
  text: string;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  dialing: boolean;
  link: PeerLink | undefined;
}

export class StaticPeers extends EventEmitter<StaticPeersEvents> {
  private readonly network: Dialer;
  private readonly targets: Target[];
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private running = false;

  constructor(options: StaticPeersOptions) {
    super();
    this.network = options.network;
    this.minBackoffMs = options.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS;
    this.maxBackoffMs = Math.max(options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS, this.minBackoffMs);
    const seen = new Set<string>();
    this.targets = [];
    for (const entry of options.peers) {
      const hp = parseHostPort(entry);
      const text = formatHostPort(hp.host, hp.port);
      if (seen.has(text)) continue;
      seen.add(text);
      this.targets.push({ ...hp, text, backoffMs: this.minBackoffMs, timer: undefined, dialing: false, link: undefined });
    }
  }

  /** Starts dialling every target now. */
  start(): this {
    if (this.running) return this;
    this.running = true;
    for (const t of this.targets) void this.dialTarget(t);
    return this;
  }

  /** Stops dialling. Links already up stay up (close them through the network). */
  stop(): void {
    this.running = false;
    for (const t of this.targets) {
      clearTimeout(t.timer);
      t.timer = undefined;
    }
  }

  /** The targets, normalised as "host:port". */
  get peers(): string[] {
    return this.targets.map((t) => t.text);
  }

  /** Targets that currently have a live link. */
  connected(): string[] {
    return this.targets.filter((t) => t.link && !t.link.closed).map((t) => t.text);
  }

  private async dialTarget(t: Target): Promise<void> {
    t.timer = undefined;
    if (!this.running || t.dialing || (t.link && !t.link.closed)) return;
    t.dialing = true;
    let link: PeerLink;
    try {
      link = await this.network.dial(t.host, t.port);
    } catch (e) {
      if (!this.running) return;
      const retryInMs = this.nextDelay(t);
      this.emit("dial-failed", { target: t.text, reason: (e as Error).message, retryInMs });
      return;
    } finally {
      t.dialing = false;
    }
    if (!this.running) return;
    t.link = link;
    const since = Date.now();
    this.emit("link", link, t.text);
    link.onClose((reason) => {
      if (t.link === link) t.link = undefined;
      if (!this.running) return;
      // A link that stayed up a while proves the target is fine: start over from the shortest delay.
      // One that closes at once (duplicate, rejected) keeps growing the delay so we never spin.
      if (Date.now() - since >= Math.min(STABLE_LINK_MS, this.maxBackoffMs)) t.backoffMs = this.minBackoffMs;
      const retryInMs = this.nextDelay(t);
      this.emit("link-closed", { target: t.text, reason, retryInMs });
    });
  }

  /** Schedules the next dial and doubles the delay after it. Returns the delay used. */
  private nextDelay(t: Target): number {
    const delay = t.backoffMs;
    t.backoffMs = Math.min(t.backoffMs * 2, this.maxBackoffMs);
    clearTimeout(t.timer);
    t.timer = setTimeout(() => void this.dialTarget(t), delay);
    t.timer.unref();
    return delay;
  }
}
