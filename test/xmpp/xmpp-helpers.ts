// Helpers for the XMPP tests: Pigeon daemons with their XMPP front door, real clients (slixmpp,
// Converse.js in Chromium, profanity in tmux) and a Prosody on loopback to run the same scripts against.
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { onCleanup, pigeon, pigeonJson, startDaemon, tempDir, waitFor, type Daemon } from "../helpers.js";

export const PYTHON = "/usr/bin/python3";
export const SLIX = join(import.meta.dirname, "clients/slix.py");

export interface XmppNode extends Daemon {
  jid: string;
  password: string;
  xmppPort: number;
  websocket: string;
  certPath: string;
  /** The loopback HTTP server (control API, web app, XMPP WebSocket, uploads and files). */
  controlPort: number;
}

export async function startXmppNode(name: string, args: string[] = [], dataDir?: string, env?: Record<string, string>): Promise<XmppNode> {
  const d = await startDaemon(name, { args: ["--no-mdns", "--xmpp-port", "0", ...args], dataDir, env });
  const info = JSON.parse(readFileSync(join(d.dataDir, "node.json"), "utf8")) as { xmpp: { port: number; websocket: string }; control: { port: number } };
  const pw = await pigeonJson<{ jid: string; password: string }>(d, "xmpp-password");
  return Object.assign(d, { jid: pw.jid, password: pw.password, xmppPort: info.xmpp.port, websocket: info.xmpp.websocket, certPath: join(d.dataDir, "xmpp-tls-cert.pem"), controlPort: info.control.port });
}

/**
 * Two laptops that met nearby, whose children then made each other buddies with `pigeon buddies add`
 * (meeting alone makes no buddy: messages would wait under requests, unseen by XMPP clients).
 */
export async function befriend(a: Daemon, b: Daemon): Promise<void> {
  await waitFor(async () => (await pigeonJson<unknown[]>(a, "nearby")).length >= 1, `${a.name} to meet ${b.name}`);
  await waitFor(async () => (await pigeonJson<unknown[]>(b, "nearby")).length >= 1, `${b.name} to meet ${a.name}`);
  for (const [x, y] of [[a, b], [b, a]] as const) {
    const r = await pigeon(x, "buddies", "add", `${y.name}@local`);
    if (r.code !== 0) throw new Error(`pigeon buddies add ${y.name}@local failed on ${x.name}: ${r.stderr}`);
  }
}

/** Why a tool cannot be used here, or undefined. Skips are announced loudly by the callers. */
export function missing(what: "slixmpp" | "prosody" | "chromium" | "profanity"): string | undefined {
  switch (what) {
    case "slixmpp":
      return spawnSync(PYTHON, ["-c", "import slixmpp"]).status === 0 ? undefined : "python3-slixmpp is not installed (apt-get install python3-slixmpp)";
    case "prosody":
      return existsSync("/usr/bin/prosody") && existsSync("/usr/bin/prosodyctl") ? undefined : "prosody is not installed (apt-get install prosody)";
    case "chromium":
      if (!existsSync("/usr/bin/chromium")) return "chromium is not installed (apt-get install chromium)";
      try {
        execFileSync(process.execPath, ["-e", "require.resolve('playwright-core'); require.resolve('converse.js/dist/converse.min.js')"], { cwd: join(import.meta.dirname, "../../packages/xmpp"), stdio: "ignore" });
      } catch {
        return "playwright-core or converse.js is missing from node_modules (npm ci)";
      }
      return undefined;
    case "profanity":
      return existsSync("/usr/bin/profanity") && existsSync("/usr/bin/tmux") ? undefined : "profanity or tmux is not installed (apt-get install profanity tmux)";
  }
}

export function announceSkip(test: string, why: string): void {
  console.log(`\n*** SKIPPED: ${test}: ${why} ***\n`);
}

export interface SlixRun {
  result: { ok: boolean; error?: string; [k: string]: unknown };
  events: Record<string, unknown>[];
  stderr: string;
}

export interface SlixParams {
  jid: string;
  password: string;
  host?: string;
  port: number;
  scenario: string;
  [k: string]: unknown;
}

/** Runs one slixmpp scenario; `onEvent` sees each event line as it comes (to drive the other side). */
export function slix(params: SlixParams, onEvent?: (e: Record<string, unknown>) => void, timeoutMs = 90_000, env?: Record<string, string>): Promise<SlixRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [SLIX, "-"], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
    p.stdin.end(JSON.stringify({ host: "127.0.0.1", ...params }));
    let out = "";
    let err = "";
    const events: Record<string, unknown>[] = [];
    let result: SlixRun["result"] | undefined;
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      let nl;
      while ((nl = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (!line.startsWith("{")) continue;
        const v = JSON.parse(line) as Record<string, unknown>;
        if (v.result) result = v.result as SlixRun["result"];
        else {
          events.push(v);
          onEvent?.(v);
        }
      }
    });
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("error", reject);
    p.on("close", () => {
      clearTimeout(timer);
      if (!result) return reject(new Error(`slixmpp ${params.scenario} gave no result:\n${err.slice(-3000)}`));
      resolve({ result, events, stderr: err });
    });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Prosody {
  domain: string;
  port: number;
  httpPort: number;
  websocket: string;
  certPath: string;
  users: Record<string, string>;
  proc: ChildProcess;
  log: () => string;
}

/**
 * A throwaway Prosody on loopback (not the system service), with the given users. With `uploadLimit`,
 * also its XEP-0363 service (mod_http_file_share, Prosody 0.12) as the component `upload.<domain>`,
 * files up to that many bytes, served at http://127.0.0.1:<httpPort>/file_share/ (`http_host`: the
 * test has no name for the component; requests for that Host then go to it, so no WebSocket then).
 * With `muc`, a multi-user chat service (mod_muc with mod_muc_mam) as the component `conference.<domain>`.
 */
export async function startProsody(users: Record<string, string>, domain = "local", uploadLimit?: number, opts: { muc?: boolean } = {}): Promise<Prosody> {
  const dir = tempDir("prosody");
  const port = await freePort();
  const httpPort = await freePort();
  for (const d of ["data", "certs"]) mkdirSync(join(dir, d), { recursive: true });
  const certPath = join(dir, "certs", `${domain}.crt`);
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(dir, "certs", `${domain}.key`),
    "-out", certPath, "-days", "30", "-subj", `/CN=${domain}`, "-addext", `subjectAltName=DNS:${domain},IP:127.0.0.1`,
  ], { stdio: "ignore" });
  const cfg = join(dir, "prosody.cfg.lua");
  writeFileSync(
    cfg,
    `-- written by the Pigeon XMPP tests
pidfile = "${dir}/prosody.pid"
data_path = "${dir}/data"
certificates = "${dir}/certs"
log = { debug = "${dir}/prosody.log" }
daemonize = false
interfaces = { "127.0.0.1" }
c2s_ports = { ${port} }
s2s_ports = { }
http_ports = { ${httpPort} }
http_interfaces = { "127.0.0.1" }
https_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
consider_websocket_secure = true
cross_domain_websocket = true
modules_enabled = { "roster", "saslauth", "tls", "disco", "carbons", "pep", "private", "vcard_legacy", "version", "uptime", "time", "ping", "blocklist", "mam", "smacks", "offline", "websocket" }
modules_disabled = { "s2s" }
archive_expires_after = "never"
smacks_hibernation_time = 60
VirtualHost "${domain}"
${uploadLimit === undefined ? "" : `Component "upload.${domain}" "http_file_share"
  http_host = "127.0.0.1"
  http_file_share_size_limit = ${uploadLimit}
`}${opts.muc ? `Component "conference.${domain}" "muc"
  modules_enabled = { "muc_mam" }
  muc_room_default_history_length = 20
` : ""}`,
  );
  const env = { ...process.env, HOME: dir };
  // prosodyctl and prosody drop from root to the prosody user: give it the directory
  if (process.getuid?.() === 0) {
    execFileSync("chmod", ["755", dir]);
    execFileSync("chown", ["-R", "prosody:prosody", dir]);
  }
  for (const [u, pw] of Object.entries(users)) execFileSync("prosodyctl", ["--config", cfg, "register", u, domain, pw], { env, stdio: "ignore" });
  // as root, run it as the prosody user itself (setpriv execs, so the pid is Prosody's own)
  const [cmd, argv] = process.getuid?.() === 0
    ? ["setpriv", ["--reuid=prosody", "--regid=prosody", "--init-groups", "prosody", "--config", cfg]]
    : ["prosody", ["--config", cfg]];
  const proc = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], env });
  let out = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  onCleanup(async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM");
    await Promise.race([new Promise((r) => proc.once("exit", r)), new Promise((r) => setTimeout(r, 3000))]);
    if (proc.exitCode === null) proc.kill("SIGKILL");
  });
  await waitFor(
    () =>
      new Promise<boolean>((res) => {
        execFile("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${port}`], (e) => res(!e));
      }),
    "prosody to listen",
    15_000,
  );
  return { domain, port, httpPort, websocket: `ws://127.0.0.1:${httpPort}/xmpp-websocket`, certPath, users, proc, log: () => out + (existsSync(join(dir, "prosody.log")) ? readFileSync(join(dir, "prosody.log"), "utf8") : "") };
}

/**
 * The system's trust store after the one documented step (docs/security.md: the node's certificate
 * copied to /usr/local/share/ca-certificates and `update-ca-certificates`): Debian's bundle with the
 * certificate appended, as that command writes it. Given to clients as SSL_CERT_FILE (OpenSSL's
 * default-path override), so the test never changes the machine's own store.
 */
export function trustStoreWith(certPath: string): { SSL_CERT_FILE: string } {
  const file = join(tempDir("truststore"), "ca-certificates.crt");
  const system = existsSync("/etc/ssl/certs/ca-certificates.crt") ? readFileSync("/etc/ssl/certs/ca-certificates.crt", "utf8") : "";
  writeFileSync(file, system + readFileSync(certPath, "utf8"));
  return { SSL_CERT_FILE: file };
}

/** A profanity in its own tmux server (socket name unique to this test run) and its own HOME. */
export function profanity(name: string, env: Record<string, string> = {}) {
  const home = tempDir(`profanity-${name}`);
  const sock = `pigeon-test-${process.pid}-${name}`;
  const tmux = (...args: string[]) => execFileSync("tmux", ["-L", sock, ...args], { encoding: "utf8", env: { ...process.env, HOME: home } });
  const vars = Object.entries({ HOME: home, ...env }).map(([k, v]) => `${k}=${v}`).join(" ");
  tmux("new-session", "-d", "-s", "p", "-x", "180", "-y", "45", `${vars} exec profanity`);
  onCleanup(() => {
    try {
      tmux("kill-server");
    } catch {
      /* already gone */
    }
  });
  const screen = () => tmux("capture-pane", "-p", "-t", "p");
  return {
    screen,
    type: (text: string) => {
      tmux("send-keys", "-t", "p", "-l", text);
      tmux("send-keys", "-t", "p", "Enter");
    },
    /** tls "default": profanity's plain `/connect` (no tls option: TLS is mandatory, the certificate checked). */
    async login(jid: string, password: string, port: number, tls: "disable" | "trust" | "default") {
      await waitFor(() => screen().includes("Type '/help'"), "profanity to start");
      this.type(`/connect ${jid} server 127.0.0.1 port ${port}${tls === "default" ? "" : ` tls ${tls}`}`);
      await waitFor(() => screen().includes("password"), "the password prompt");
      this.type(password);
      await waitFor(() => / logged in successfully/.test(screen()), `profanity to log in:\n${screen()}`, 20_000);
    },
  };
}

export { waitFor };
