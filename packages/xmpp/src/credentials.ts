// The XMPP password of this node's user, in `xmpp-credentials.json` in the data directory (mode 0600,
// like identity.json): the password itself (so `pigeon xmpp-password` can show it to the child or
// teacher who sets up a client) and the SCRAM-SHA-1/SHA-256 salted keys the server verifies against.
// The server re-reads the file at each login, so a new password takes effect without a restart.
import { chmodSync, existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { writeFileAtomic } from "@pigeon/sync";
import { deriveScram, type ScramCredential, type ScramHash } from "./scram.js";

export interface XmppCredentials {
  version: 1;
  password: string;
  scram: Record<ScramHash, ScramCredential>;
  updatedAt: number;
}

export const CREDENTIALS_FILE = "xmpp-credentials.json";

export function credentialsPath(dataDir: string): string {
  return join(dataDir, CREDENTIALS_FILE);
}

/** A password that is easy to read aloud and type: four groups of four lowercase letters and digits. */
export function newPassword(): string {
  const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"; // no l, o, 0, 1
  const bytes = randomBytes(16);
  let s = "";
  for (let i = 0; i < 16; i++) s += alphabet[bytes[i]! % alphabet.length];
  return s.match(/.{4}/g)!.join("-");
}

export function makeCredentials(password: string): XmppCredentials {
  if (password.length < 8) throw new Error("the XMPP password must be at least 8 characters");
  if (password.length > 256) throw new Error("the XMPP password must be at most 256 characters");
  return { version: 1, password, scram: { sha1: deriveScram("sha1", password), sha256: deriveScram("sha256", password) }, updatedAt: Date.now() };
}

export function readCredentials(dataDir: string): XmppCredentials | undefined {
  const path = credentialsPath(dataDir);
  if (!existsSync(path)) return undefined;
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  const v = JSON.parse(readFileSync(path, "utf8")) as XmppCredentials;
  if (v.version !== 1 || typeof v.password !== "string" || !v.scram?.sha1 || !v.scram?.sha256) throw new Error(`${path} is not a valid credentials file`);
  return v;
}

export function writeCredentials(dataDir: string, creds: XmppCredentials): void {
  writeFileAtomic(credentialsPath(dataDir), JSON.stringify(creds, null, 2) + "\n");
}

/** Returns the stored credentials, creating a random password the first time. */
export function ensureCredentials(dataDir: string): XmppCredentials {
  const existing = readCredentials(dataDir);
  if (existing) return existing;
  const creds = makeCredentials(newPassword());
  writeCredentials(dataDir, creds);
  return creds;
}

export function setPassword(dataDir: string, password: string): XmppCredentials {
  const creds = makeCredentials(password);
  writeCredentials(dataDir, creds);
  return creds;
}
