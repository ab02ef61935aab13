// A relay point in the data directory and on the control API (docs/routing.md, "Between villages").
// For now the relay point is its village's school server: the school key certifies the node's own key
// as the relay point of the school's home, and signs the list of villages it exchanges mail with
// (relay.json, owner-only: the federation list, signed, so a changed file is refused rather than
// trusted; and the relay point's own key). The relay key is not the node's identity key: what it signs
// is routing, never a person's keyring or messages, and laptops carry it like anyone's statement.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  RouteError, decodeRelayGrant, issueRelayCertificate, openFederation, signFederation, validHome,
  relayKeyPair, type Federation, type RelayCertificate, type SchoolKey, type SigningKeyPair,
} from "@pigeon/model";
import type { RelayPoint } from "@pigeon/sync";
import { ConfigError, writeFileAtomic } from "./data-dir.js";
import type { Routes, RoutesView } from "./control-api.js";

/** A relay point's store for carried mail unless --carry-quota says otherwise (a laptop's is 50 MB). */
export const RELAY_CARRY_QUOTA_MB = 1024;

export interface RelaySetup {
  home: string;
  /** Where learnt carriers' rhythm survives a restart. */
  contactsFile?: string;
  /** Where the table's announcements survive a restart (relay-routes.ts in sync). */
  routesFile?: string;
  announceGapMs?: number;
  announceLifetimeSeconds?: number;
  signing: SigningKeyPair;
  certificate: RelayCertificate;
  federation: Federation;
}

const fromBase64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
export const toBase64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

export function relayPath(dir: string): string {
  return join(dir, "relay.json");
}

export function relayContactsPath(dir: string): string {
  return join(dir, "relay-contacts.json");
}

export function relayRoutesPath(dir: string): string {
  return join(dir, "relay-routes.json");
}

/** Reads one `--federate HOME=KEY` (KEY: the school key in base64, as a relay point prints it). */
export function parseFederate(text: string): [string, Uint8Array] {
  const eq = text.indexOf("=");
  const home = text.slice(0, eq).trim().toLowerCase();
  const key = eq > 0 ? fromBase64(text.slice(eq + 1).trim()) : new Uint8Array();
  if (eq <= 0 || !validHome(home) || key.length !== 32 || toBase64(key) !== text.slice(eq + 1).trim())
    throw new ConfigError(`--federate "${text}" is not HOME=KEY with the school key its relay point printed (e.g. siaya-primary=3q2+7w...=)`);
  return [home, key];
}

/**
 * `pigeon start --relay-point HOME`: this node's certificate and the federation, the villages given
 * with --federate added to those of earlier starts (relay.json).
 */
export function ensureRelay(dir: string, home: string, school: SchoolKey | undefined, federate: readonly string[], grant?: string): RelaySetup {
  if (!school) return ensureRelayBox(dir, home, federate, grant);
  if (grant !== undefined) throw new ConfigError(`--relay-grant is for a relay point on a box of its own: this is the school server of ${school.home}, which certifies itself`);
  if (school.home !== home) throw new ConfigError(`--relay-point ${home}: this is the school server of ${school.home}, so it can only be the relay point of ${school.home}`);
  let partners = new Map<string, Uint8Array>();
  let signing = relayKeyPair();
  const path = relayPath(dir);
  if (existsSync(path)) {
    try {
      const f = JSON.parse(readFileSync(path, "utf8")) as { version?: number; federation?: string; relaySeed?: string };
      if (f.version !== 1 || typeof f.federation !== "string" || typeof f.relaySeed !== "string") throw new RouteError("unknown format or version");
      const seed = fromBase64(f.relaySeed);
      if (seed.length !== 32 || toBase64(seed) !== f.relaySeed) throw new RouteError("damaged relay key");
      signing = relayKeyPair(seed);
      partners = new Map(openFederation(fromBase64(f.federation), school.signing.publicKey));
    } catch (e) {
      throw new ConfigError(`${path} is not a valid relay point file (${(e as Error).message}); it was left untouched`);
    }
  }
  for (const text of federate) {
    const [h, key] = parseFederate(text);
    if (h === home) throw new ConfigError(`--federate ${h}: that is this relay point's own village`);
    partners.set(h, key);
  }
  partners.delete(home);
  const signed = signFederation(school, partners);
  writeFileAtomic(path, JSON.stringify({ version: 1, federation: toBase64(signed), relaySeed: toBase64(signing.seed) }, null, 2) + "\n");
  return { home, routesFile: relayRoutesPath(dir), signing, certificate: issueRelayCertificate(school, signing.publicKey), federation: openFederation(signed, school.signing.publicKey) };
}

/**
 * A relay point on a box of its own (not the school server): its relay key, kept in relay.json, and
 * the grant its school server printed for that key (its certificate and the federation, both signed by
 * the school key). Without a grant yet it stops with what to ask the school server for.
 */
function ensureRelayBox(dir: string, home: string, federate: readonly string[], grant: string | undefined): RelaySetup {
  if (federate.length)
    throw new ConfigError(`--federate: a relay point on a box of its own takes its villages from its school's grant (on the school server: pigeon school relay-point KEY --federate ${federate[0]})`);
  const path = relayPath(dir);
  let signing = relayKeyPair();
  let kept: string | undefined;
  if (existsSync(path)) {
    try {
      const f = JSON.parse(readFileSync(path, "utf8")) as { version?: number; federation?: string; relaySeed?: string; grant?: string };
      if (f.version !== 1 || typeof f.relaySeed !== "string" || (f.grant !== undefined && typeof f.grant !== "string")) throw new RouteError("unknown format or version");
      if (f.federation !== undefined) throw new RouteError("it is a school server's (its federation is signed by the school key, which this data directory no longer has: school.json)");
      const seed = fromBase64(f.relaySeed);
      if (seed.length !== 32 || toBase64(seed) !== f.relaySeed) throw new RouteError("damaged relay key");
      signing = relayKeyPair(seed);
      kept = f.grant;
    } catch (e) {
      throw new ConfigError(`${path} is not a valid relay point file (${(e as Error).message}); it was left untouched`);
    }
  }
  const chosen = grant ?? kept;
  let opened: ReturnType<typeof decodeRelayGrant> | undefined;
  if (chosen !== undefined) {
    try {
      opened = decodeRelayGrant(chosen, home, signing.publicKey);
    } catch (e) {
      if (grant !== undefined) throw new ConfigError(`--relay-grant: ${(e as Error).message}`);
      throw new ConfigError(`${path}: the grant kept there no longer holds (${(e as Error).message}); ask the school server for a new one`);
    }
  }
  writeFileAtomic(path, JSON.stringify({ version: 1, relaySeed: toBase64(signing.seed), ...(chosen !== undefined ? { grant: chosen.trim() } : {}) }, null, 2) + "\n");
  if (!opened)
    throw new ConfigError(
      `the relay point of ${home} needs its school's word first. On the school server of ${home} run:\n` +
        `  pigeon school relay-point ${toBase64(signing.publicKey)} --federate OTHER-VILLAGE=KEY ...\n` +
        `then start this node again with the --relay-grant it prints (this key stays the same; it is in ${path})`,
    );
  return { home, routesFile: relayRoutesPath(dir), signing, certificate: opened.certificate, federation: opened.federation };
}

/** `GET /api/routes`: the relay point's routing table as people read it. */
export function relayRoutes(relay: RelayPoint | undefined, federation: Federation | undefined): Routes<"GET /api/routes"> {
  return {
    "GET /api/routes": (): RoutesView => {
      if (!relay) return { relayPoint: null, federation: [], routes: [], refused: [] };
      return {
        relayPoint: relay.table.self,
        federation: [...(federation?.keys() ?? [])].sort(),
        routes: relay.routes().map((r) => ({
          village: r.dest, via: r.viaRelay, carrier: r.carrier.label, expectedSeconds: Math.round(r.cost / 1000),
          nextContact: r.nextContact ?? null, hops: r.hops,
        })),
        refused: relay.table.refusals.slice(-10),
      };
    },
  };
}

function duration(s: number): string {
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 129_600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

/** What `pigeon routes` prints. */
export function formatRoutes(v: RoutesView): string {
  if (!v.relayPoint) return "This node is not a relay point (a school server starts as one with --relay-point HOME).";
  const lines = [`Relay point ${v.relayPoint}; villages of the federation: ${v.federation.join(", ")}`];
  const reached = new Set(v.routes.map((r) => r.village));
  for (const r of v.routes)
    lines.push(
      `  ${r.village}: expected in ${duration(r.expectedSeconds)}, via ${r.via === r.village ? "a direct carrier" : r.via} with ${r.carrier}` +
        (r.nextContact !== null ? ` (next expected ${new Date(r.nextContact).toISOString().slice(0, 16).replace("T", " ")} UTC)` : ""),
    );
  for (const h of v.federation) if (h !== v.relayPoint && !reached.has(h)) lines.push(`  ${h}: no way known yet (no route heard, or it expired)`);
  if (v.refused.length) lines.push("Refused route announcements (latest last):", ...v.refused.map((r) => `  ${r}`));
  return lines.join("\n");
}
