// SASL for the XMPP server: SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802 / RFC 7677) without channel
// binding. The server keeps only SCRAM's salted keys for verification. (No PLAIN: README.md says why.)
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

export type ScramHash = "sha1" | "sha256";
export const SCRAM_MECHANISMS: Record<string, ScramHash> = { "SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1" };

export interface ScramCredential {
  salt: string; // base64
  iterations: number;
  storedKey: string; // base64
  serverKey: string; // base64
}

const H = (hash: ScramHash, data: Buffer) => createHash(hash).update(data).digest();
const HMAC = (hash: ScramHash, key: Buffer, data: string | Buffer) => createHmac(hash, key).update(data).digest();
const KEY_LEN: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

export function deriveScram(hash: ScramHash, password: string, salt = randomBytes(16), iterations = 4096): ScramCredential {
  const salted = pbkdf2Sync(Buffer.from(password.normalize("NFKC"), "utf8"), salt, iterations, KEY_LEN[hash], hash);
  const clientKey = HMAC(hash, salted, "Client Key");
  return {
    salt: salt.toString("base64"),
    iterations,
    storedKey: H(hash, clientKey).toString("base64"),
    serverKey: HMAC(hash, salted, "Server Key").toString("base64"),
  };
}

export class SaslFailure extends Error {
  constructor(readonly condition: "not-authorized" | "malformed-request" | "invalid-mechanism" | "encryption-required" | "invalid-authzid" | "aborted", message: string) {
    super(message);
    this.name = "SaslFailure";
  }
}

/** Looks up the credential of a user name (the local part of the JID); undefined if unknown. */
export type CredentialLookup = (username: string, hash: ScramHash) => ScramCredential | undefined;

function parseAttributes(s: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of s.split(",")) {
    const eq = part.indexOf("=");
    if (eq !== 1) throw new SaslFailure("malformed-request", `bad SCRAM attribute "${part.slice(0, 20)}"`);
    m.set(part[0]!, part.slice(2));
  }
  return m;
}

function decodeSaslName(s: string): string {
  if (/=(?!2C|3D)/.test(s)) throw new SaslFailure("malformed-request", "bad escaping in the user name");
  return s.replace(/=2C/g, ",").replace(/=3D/g, "=");
}

/** One SCRAM exchange on the server side: `start(clientFirst)` -> server-first, `finish(clientFinal)` -> server-final. */
export class ScramServer {
  private clientFirstBare = "";
  private serverFirst = "";
  private gs2Header = "";
  private nonce = "";
  private credential: ScramCredential | undefined;
  username = "";
  /** The identity the client asks to act as, if any ("" = the user itself); the caller checks it. */
  authzid = "";

  constructor(readonly hash: ScramHash, private readonly lookup: CredentialLookup) {}

  start(clientFirst: string): string {
    // gs2-header: "n,," or "y,," (we offer no -PLUS, so "y" is fine); "p=" asks for channel binding we never offered
    const m = /^([ny]|p=[^,]*),(a=[^,]*)?,(.*)$/s.exec(clientFirst);
    if (!m) throw new SaslFailure("malformed-request", "bad SCRAM client-first message");
    if (m[1]!.startsWith("p=")) throw new SaslFailure("malformed-request", "channel binding was not offered");
    this.gs2Header = `${m[1]},${m[2] ?? ""},`;
    this.clientFirstBare = m[3]!;
    const attrs = parseAttributes(this.clientFirstBare);
    if (attrs.has("m")) throw new SaslFailure("malformed-request", "SCRAM extensions are not supported");
    const user = attrs.get("n");
    const cnonce = attrs.get("r");
    if (!user || !cnonce) throw new SaslFailure("malformed-request", "SCRAM client-first lacks n= or r=");
    this.username = decodeSaslName(user);
    this.authzid = m[2] ? decodeSaslName(m[2].slice(2)) : "";
    this.credential = this.lookup(this.username, this.hash);
    // an unknown user gets a plausible challenge and fails at the end, like a wrong password
    const salt = this.credential?.salt ?? createHash("sha256").update(`pigeon-fake-salt:${this.username}`).digest().subarray(0, 16).toString("base64");
    const iterations = this.credential?.iterations ?? 4096;
    this.nonce = cnonce + randomBytes(18).toString("base64");
    this.serverFirst = `r=${this.nonce},s=${salt},i=${iterations}`;
    return this.serverFirst;
  }

  finish(clientFinal: string): string {
    const pIndex = clientFinal.lastIndexOf(",p=");
    if (pIndex < 0) throw new SaslFailure("malformed-request", "SCRAM client-final lacks p=");
    const withoutProof = clientFinal.slice(0, pIndex);
    const attrs = parseAttributes(clientFinal);
    if (attrs.get("c") !== Buffer.from(this.gs2Header, "utf8").toString("base64"))
      throw new SaslFailure("malformed-request", "SCRAM channel binding data does not match");
    if (attrs.get("r") !== this.nonce) throw new SaslFailure("not-authorized", "SCRAM nonce does not match");
    const proof = Buffer.from(attrs.get("p") ?? "", "base64");
    const cred = this.credential;
    if (!cred || proof.length !== KEY_LEN[this.hash]) throw new SaslFailure("not-authorized", "wrong user name or password");
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const storedKey = Buffer.from(cred.storedKey, "base64");
    const clientSignature = HMAC(this.hash, storedKey, authMessage);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    if (!timingSafeEqual(H(this.hash, clientKey), storedKey)) throw new SaslFailure("not-authorized", "wrong user name or password");
    const serverSignature = HMAC(this.hash, Buffer.from(cred.serverKey, "base64"), authMessage);
    return `v=${serverSignature.toString("base64")}`;
  }
}

// ---- a client side, for tests and the benchmark ----

export class ScramClient {
  private cnonce = randomBytes(18).toString("base64");
  private clientFirstBare: string;
  private serverSignature: Buffer = Buffer.alloc(0);

  constructor(readonly hash: ScramHash, private readonly username: string, private readonly password: string) {
    this.clientFirstBare = `n=${username.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${this.cnonce}`;
  }

  first(): string {
    return `n,,${this.clientFirstBare}`;
  }

  final(serverFirst: string): string {
    const a = parseAttributes(serverFirst);
    const nonce = a.get("r")!;
    if (!nonce.startsWith(this.cnonce)) throw new Error("server nonce does not extend ours");
    const salt = Buffer.from(a.get("s")!, "base64");
    const iterations = Number(a.get("i"));
    const salted = pbkdf2Sync(Buffer.from(this.password.normalize("NFKC"), "utf8"), salt, iterations, KEY_LEN[this.hash], this.hash);
    const clientKey = HMAC(this.hash, salted, "Client Key");
    const storedKey = H(this.hash, clientKey);
    const withoutProof = `c=${Buffer.from("n,,").toString("base64")},r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const sig = HMAC(this.hash, storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ sig[i]!;
    this.serverSignature = HMAC(this.hash, HMAC(this.hash, salted, "Server Key"), authMessage);
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  verify(serverFinal: string): boolean {
    return serverFinal === `v=${this.serverSignature.toString("base64")}`;
  }
}
