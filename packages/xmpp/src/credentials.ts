// The XMPP password of this node's user, in `xmpp-credentials.json` in the data directory (mode 0600,
// like identity.json): the password itself (so `pigeon xmpp-password` can show it to the child or
// teacher who sets up a client) and the SCRAM-SHA-1/SHA-256 salted keys the server verifies against.
// The server re-reads the file at each login, so a new password takes effect without a restart.
// A password the user chooses (`setPassword`) must not be easy to guess (`passwordProblem`); the
// generated one (`newPassword`, 16 random characters) is used as it is.
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

/** A password the user chose is refused if it is easy to guess (see `passwordProblem`). */
export class WeakPasswordError extends Error {
  constructor(readonly problem: string) {
    super(
      `that password is too easy to guess: ${problem}. An XMPP password needs at least ${MIN_PASSWORD_LENGTH} characters ` +
        `that mix letters with digits or symbols (or at least ${LONG_PASSWORD_LENGTH} characters), and must not be a ` +
        `common password or contain your name; a few words and a number work well, e.g. kite-river-mango-47`,
    );
    this.name = "WeakPasswordError";
  }
}

/** Sets a password the user chose; throws WeakPasswordError if it is easy to guess. */
export function setPassword(dataDir: string, password: string, opts: { name?: string } = {}): XmppCredentials {
  const problem = passwordProblem(password, opts.name);
  if (problem) throw new WeakPasswordError(problem);
  const creds = makeCredentials(password);
  writeCredentials(dataDir, creds);
  return creds;
}

// ---- what "easy to guess" means ----
// Guessing is slowed to one try per 30 s (login-limiter.ts), so what remains to stop are the guesses
// an attacker tries first: short passwords, one kind of character, common passwords and their
// variants (Password123!, p@ssw0rd, minecraft2024), runs and repeats, and the child's own name.

export const MIN_PASSWORD_LENGTH = 10;
/** From this length one kind of character is enough (16 lowercase letters: 26^16 tries). */
export const LONG_PASSWORD_LENGTH = 16;

/** The most common passwords and the words under them (lowercase, letters only after undoing 0->o, 4->a...). */
const COMMON_WORDS = new Set(
  (
    "password passwd passw0rd pass qwerty qwertyuiop qwertz azerty asdfgh asdfghjkl zxcvbnm qazwsx qwe abc abcdef " +
    "iloveyou iloveu loveyou love lovely loveme mylove princess prince angel baby mybaby babygirl flower butterfly " +
    "football soccer baseball basketball hockey welcome sunshine superman batman spiderman ironman hulk monkey dragon " +
    "letmein trustno starwars pokemon pikachu minecraft fortnite roblox freefire mario sonic hellokitty barbie frozen " +
    "elsa unicorn shadow master michael jennifer jordan hunter ranger buster tigger charlie harley thomas robert daniel " +
    "andrew jessica ashley nicole chelsea arsenal liverpool manchester barcelona madrid messi ronaldo cristiano neymar " +
    "chocolate cookie banana cheese pepper summer winter purple orange yellow blue black school teacher student secret " +
    "computer internet google facebook instagram tiktok youtube whatsapp whatever nothing login admin administrator guest " +
    "user test hello helloworld changeme default pigeon xmpp jabber africa kenya nairobi jesus god blessed family mother " +
    "father mama papa friend friends samsung iphone apple ninja matrix killer hacker freedom access mustang ferrari " +
    "cocacola zaq abcabc aaaaaa"
  ).split(" "),
);
const COMMON_WHOLE = new Set(
  "1234567890 0123456789 0987654321 1234512345 1122334455 1q2w3e4r5t 1q2w3e4r5t6y 1qaz2wsx3edc 123qweasdzxc qwerty123456 qwe123qwe123 a1b2c3d4e5 abc123abc123".split(" "),
);
const RUNS = ["abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiopasdfghjklzxcvbnm", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "1q2w3e4r5t6y7u8i9o0p"];
const LEET: Record<string, string> = { "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", $: "s", "!": "i", "+": "t" };

/** Why `password` is easy to guess, or undefined if it is fine. `name` is the user's (it must not be in it). */
export function passwordProblem(password: string, name?: string): string | undefined {
  const chars = [...password];
  if (chars.length < MIN_PASSWORD_LENGTH) return `it has ${chars.length} character${chars.length === 1 ? "" : "s"}, fewer than ${MIN_PASSWORD_LENGTH}`;
  if (password.length > 256) return "it is longer than 256 characters";
  const lower = password.toLowerCase();
  const letters = (s: string) => s.replace(/[^a-z]/g, "");
  const unleet = (s: string) => [...s].map((c) => LEET[c] ?? c).join("");
  const trimmed = lower.replace(/^[^a-z]+|[^a-z]+$/g, ""); // Password123! -> password
  const candidates = [letters(lower), letters(unleet(lower)), letters(unleet(trimmed))];
  if (COMMON_WHOLE.has(lower) || candidates.some((c) => COMMON_WORDS.has(c))) return "it is one of the most common passwords, or one with a few digits or symbols added";
  const n = name?.toLowerCase() ?? "";
  if (n.length >= 4 && (lower.includes(n) || (letters(n).length >= 4 && letters(unleet(lower)).includes(letters(n))))) return "it contains your name";
  if (new Set(chars).size < 5 || /^(.{1,5})\1+$/s.test(lower)) return "it repeats a few characters";
  if (RUNS.some((r) => r.includes(lower) || [...r].reverse().join("").includes(lower))) return "it is a run of neighbouring keys or letters";
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/].filter((re) => re.test(password)).length;
  if (classes === 1 && chars.length < LONG_PASSWORD_LENGTH) {
    const kind = /^[0-9]+$/.test(password) ? "only digits" : /^[a-z]+$/.test(password) ? "only lowercase letters" : /^[A-Z]+$/.test(password) ? "only capital letters" : "only one kind of character";
    return `it is ${kind}`;
  }
  return undefined;
}
