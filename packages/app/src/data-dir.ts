// The data directory: identity (owner-only), the SQLite store, documents, and node.json, which tells
// the `pigeon` command where the running daemon listens.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { generateIdentity, parseAddress, parseIdentityFile, serializeIdentity, type Identity } from "@pigeon/model";
import { writeFileAtomic } from "@pigeon/sync";

export { writeFileAtomic };

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Where the data directory came from, to tell the user which one was used. */
export type DataDirSource = "--data" | "PIGEON_HOME" | "default";

export interface DataDirChoice {
  dir: string;
  from: DataDirSource;
}

/**
 * The per-user data directory, the same from every current directory: $XDG_DATA_HOME/pigeon, else
 * ~/.local/share/pigeon (XDG Base Directory; a relative or empty XDG_DATA_HOME is ignored, as the
 * specification says).
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, "pigeon");
  return join(env.HOME || homedir(), ".local", "share", "pigeon");
}

/** --data DIR, else $PIGEON_HOME (an empty one counts as unset), else the per-user default. */
export function chooseDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): DataDirChoice {
  if (flag !== undefined) return { dir: resolve(flag), from: "--data" };
  if (env.PIGEON_HOME) return { dir: resolve(env.PIGEON_HOME), from: "PIGEON_HOME" };
  return { dir: defaultDataDir(env), from: "default" };
}

export function resolveDataDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return chooseDataDir(flag, env).dir;
}

/** "/home/amara/.local/share/pigeon (the default; choose another with ...)", for messages. */
export function describeDataDir(c: DataDirChoice): string {
  const why = c.from === "--data" ? "given with --data" : c.from === "PIGEON_HOME" ? "from $PIGEON_HOME" : "the default; choose another with --data DIR or PIGEON_HOME";
  return `${c.dir} (${why})`;
}

export function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

export function identityPath(dir: string): string {
  return join(dir, "identity.json");
}

export function hasIdentity(dir: string): boolean {
  return existsSync(identityPath(dir));
}

export function loadIdentity(dir: string): Identity {
  const path = identityPath(dir);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600); // keys are for the owner only
  try {
    return parseIdentityFile(JSON.parse(text));
  } catch (e) {
    throw new ConfigError(`${path} is not a valid Pigeon identity (${(e as Error).message}); it was left untouched`);
  }
}

export function createIdentity(dir: string, name: string, home: string): Identity {
  ensureDataDir(dir);
  const path = identityPath(dir);
  if (existsSync(path)) throw new ConfigError(`${path} already exists; refusing to replace an identity`);
  let id: Identity;
  try {
    id = generateIdentity(name, home);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  writeFileAtomic(path, JSON.stringify(serializeIdentity(id), null, 2) + "\n");
  return id;
}

/** A new name in identity.json; the keys (and so the fingerprint) never change. */
export function renameIdentity(dir: string, name: string): Identity {
  const id = loadIdentity(dir);
  let renamed: Identity;
  try {
    const { name: n } = parseAddress(`${name}@${id.home}`);
    renamed = { ...id, name: n };
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  writeFileAtomic(identityPath(dir), JSON.stringify(serializeIdentity(renamed), null, 2) + "\n");
  return renamed;
}

export interface NodeInfo {
  pid: number;
  address: string;
  control: { host: string; port: number; token: string };
  sync: { host: string; port: number };
  /** The XMPP front door, when on: TCP host/port and the WebSocket URL. */
  xmpp?: { host: string; port: number; websocket: string };
  /** The children's web app (its key is in web-key, not here). */
  app?: { url: string };
  /** The e-mail gateway, when this node is one: its mail domain and SMTP port. */
  gateway?: { domain: string; smtpPort: number };
  startedAt: number;
}

export function nodeInfoPath(dir: string): string {
  return join(dir, "node.json");
}

export function readNodeInfo(dir: string): NodeInfo | undefined {
  try {
    return JSON.parse(readFileSync(nodeInfoPath(dir), "utf8")) as NodeInfo;
  } catch {
    return undefined;
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The node running for this data directory, if its node.json names a live process. */
export function runningNode(dir: string): NodeInfo | undefined {
  const info = readNodeInfo(dir);
  return info && processAlive(info.pid) ? info : undefined;
}
