// What a relay point's routing table heard (the live route announcements it took, with the carrier
// that brought each, when, and the trip measured), kept in its data directory so that after a power
// cut it routes mail downhill at once instead of waiting for the next bus (docs/routing.md, "What a
// relay point keeps"). Written atomically; on load every entry is checked again as hostile by the
// table (signature, certificate against the federation, expiry against the clock now): a bad entry
// is left out and said so, a damaged file is set aside (renamed, kept for whoever looks into it).
import { existsSync, readFileSync, renameSync } from "node:fs";
import type { RoutingTable, TableSnapshot } from "@pigeon/model";
import { writeFileAtomic } from "./atomic-file.js";

export const ROUTES_FILE_VERSION = 1;
/** More entries than this is not a federation's table: the rest are left out. */
const MAX_ENTRIES = 16_384;

export function saveRoutes(path: string, table: RoutingTable, now: number): void {
  const s = table.snapshot(now);
  const heard = s.heard.map((h) => ({ announcement: Buffer.from(h.bytes).toString("base64"), carrier: h.carrier, receivedAt: h.receivedAt, transit: h.transit }));
  writeFileAtomic(path, JSON.stringify({ version: ROUTES_FILE_VERSION, heard, lost: s.lost, announced: s.announced }) + "\n");
}

/** Reads the file into `table`; returns what was left out and why (nothing when there is no file yet). */
export function loadRoutes(path: string, table: RoutingTable, now: number): { restored: number; problems: string[] } {
  if (!existsSync(path)) return { restored: 0, problems: [] };
  const setAside = (why: string) => {
    const aside = `${path}.damaged-${now}`;
    try {
      renameSync(path, aside);
      return { restored: 0, problems: [`${path} ${why}; set aside as ${aside}, the routes are learnt again`] };
    } catch (e) {
      return { restored: 0, problems: [`${path} ${why}, and could not be set aside (${(e as Error).message}); the routes are learnt again`] };
    }
  };
  let f: unknown;
  try {
    f = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    return setAside(`is not JSON (${(e as Error).message})`);
  }
  const file = f as { version?: unknown; heard?: unknown; lost?: unknown; announced?: unknown };
  if (file?.version !== ROUTES_FILE_VERSION || !Array.isArray(file.heard) || !Array.isArray(file.lost) || !Array.isArray(file.announced))
    return setAside("has an unknown format or version");
  const pairs = (a: unknown[]) => a.slice(0, MAX_ENTRIES).filter((p): p is [never, never] => Array.isArray(p) && p.length === 2);
  const snapshot: TableSnapshot = {
    heard: file.heard.slice(0, MAX_ENTRIES).map((raw) => {
      const h = raw as { announcement?: unknown; carrier?: unknown; receivedAt?: unknown; transit?: unknown };
      const text = typeof h?.announcement === "string" ? h.announcement : "";
      const bytes = new Uint8Array(Buffer.from(text, "base64"));
      // a damaged base64 text decodes to other bytes silently: refuse what does not read back the same
      return { bytes: Buffer.from(bytes).toString("base64") === text && bytes.length > 0 ? bytes : (undefined as never), carrier: h?.carrier as never, receivedAt: h?.receivedAt as never, transit: h?.transit as never };
    }),
    lost: pairs(file.lost),
    announced: pairs(file.announced),
  };
  const { restored, problems } = table.restore(snapshot, now);
  return { restored, problems: problems.map((p) => `${path}: ${p}`) };
}
