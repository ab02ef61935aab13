// What the node says about the laptops given with --peer, in words a teacher reads in the log: once
// when one cannot be reached (StaticPeers keeps retrying, backing off up to 30 s, without a line each
// time), and once when it is reached again, with how long it was away.
import { formatAddress, type PeerLink } from "@pigeon/model";
import type { StaticPeers } from "@pigeon/peers";
import type { Log } from "@pigeon/sync";

/** The reason a dial failed, in plain words where we know them. */
export function plainReason(reason: string): string {
  if (/ECONNREFUSED/.test(reason)) return "nothing answers there (is Pigeon running on that laptop?)";
  if (/EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|timed out/i.test(reason)) return "that laptop is not on this network right now";
  if (/ENOTFOUND|EAI_AGAIN/.test(reason)) return "this laptop does not know that name";
  return reason;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  return `${Math.round(m / 60)} h`;
}

export function reportStaticPeers(statics: StaticPeers, log: Log, now: () => number = Date.now): void {
  const away = new Map<string, number>(); // target -> since when it could not be reached
  statics.on("dial-failed", (f) => {
    if (away.has(f.target)) return; // said once already
    away.set(f.target, now());
    log.info(`cannot reach ${f.target}: ${plainReason(f.reason)}. Pigeon keeps trying and will say when it is reached`);
  });
  statics.on("link", (link: PeerLink, target: string) => {
    const since = away.get(target);
    if (since === undefined) return; // reached at the first try: the "connected to" line says it
    away.delete(target);
    log.info(`reached ${target} (${formatAddress(link.peer)}) again, after ${duration(now() - since)} of trying`);
  });
}
