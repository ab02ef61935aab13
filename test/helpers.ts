// Drives real `pigeon` daemons and commands the way a user would: separate processes, real sockets.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:http";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

/**
 * PIGEON_TEST_SLOW=n gives every wait, node start and CLI call n times its time, on a machine too
 * busy for the defaults (a fresh node took 10-15 s to start at load average 18-20 on 2 cores).
 */
export const SLOW = Math.max(1, Number(process.env.PIGEON_TEST_SLOW ?? 1) || 1);

export const ROOT = resolve(import.meta.dirname, "..");
export const CLI = join(ROOT, "packages/app/dist/cli.js");

export interface Daemon {
  name: string;
  dataDir: string;
  proc: ChildProcess;
  output: () => string;
  syncPort: number;
  /** Runs a command in the daemon's network namespace, if any. */
  ns?: string;
  stop(): Promise<void>;
}

const cleanups: (() => Promise<void> | void)[] = [];

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export async function cleanupAll(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) {
    try {
      await fn();
    } catch {
      /* best effort */
    }
  }
}

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `pigeon-${prefix}-`));
  onCleanup(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function wrap(ns: string | undefined, args: string[]): [string, string[]] {
  return ns ? ["ip", ["netns", "exec", ns, process.execPath, ...args]] : [process.execPath, args];
}

export interface StartOptions {
  dataDir?: string;
  args?: string[];
  ns?: string;
  readyMs?: number;
  /** Extra environment (e.g. HOME, XDG_DATA_HOME) and the current directory of the node. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** false: no --data flag, so the node picks its data directory itself (dataDir must say which). */
  dataFlag?: boolean;
  /** `ulimit -n` of the node (a laptop's default is 1024). */
  maxOpenFiles?: number;
}

export async function startDaemon(name: string, opts: StartOptions = {}): Promise<Daemon> {
  const dataDir = opts.dataDir ?? tempDir(name);
  const args = [CLI, "start", ...(opts.dataFlag === false ? [] : ["--data", dataDir]), "--name", name, "--listen", "127.0.0.1", "--port", "0", "--control-port", "0", ...(opts.args ?? [])];
  let [cmd, argv] = wrap(opts.ns, args);
  // the shell execs the command, so the pid stays the node's
  if (opts.maxOpenFiles) [cmd, argv] = ["/bin/sh", ["-c", `ulimit -n ${opts.maxOpenFiles} && exec "$0" "$@"`, cmd, ...argv]];
  const proc = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], cwd: opts.cwd, env: { ...process.env, PIGEON_HOME: "", ...opts.env } });
  let out = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const d: Daemon = {
    name,
    dataDir,
    proc,
    ns: opts.ns,
    output: () => out,
    syncPort: 0,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    },
  };
  onCleanup(() => d.stop());
  await waitFor(() => /\bready\b/.test(out) || proc.exitCode !== null, `${name} to start`, opts.readyMs ?? 20_000 * SLOW);
  if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}:\n${out}`);
  const info = JSON.parse(readFileSync(join(dataDir, "node.json"), "utf8")) as { sync: { port: number } };
  d.syncPort = info.sync.port;
  return d;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function pigeon(d: Pick<Daemon, "dataDir" | "ns">, ...args: string[]): Promise<Result> {
  const [cmd, argv] = wrap(d.ns, [CLI, ...args, "--data", d.dataDir]);
  return new Promise((res) => {
    execFile(cmd, argv, { timeout: 20_000 * SLOW, env: { ...process.env, PIGEON_HOME: "" } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

/**
 * Runs `pigeon ARGS` exactly as given (no --data added), with extra environment, a current directory
 * and, optionally, text on stdin (stdin is a pipe, never a terminal).
 */
export function run(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; input?: string } = {}): Promise<Result> {
  return new Promise((res) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 20_000 * SLOW, cwd: opts.cwd, env: { ...process.env, PIGEON_HOME: "", ...opts.env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
      res({ code, stdout, stderr });
    });
    child.stdin!.end(opts.input ?? "");
  });
}

export async function pigeonJson<T>(d: Pick<Daemon, "dataDir" | "ns">, ...args: string[]): Promise<T> {
  const r = await pigeon(d, ...args, "--json");
  if (r.code !== 0) throw new Error(`pigeon ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export async function waitFor<T>(fn: () => T | Promise<T>, what: string, ms = 15_000): Promise<NonNullable<T>> {
  ms *= SLOW;
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function builtCliExists(): boolean {
  return existsSync(CLI);
}

/** A port that was free a moment ago (for daemons that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

/** Calls the daemon's control API directly (faster than spawning the CLI in tight loops). */
export async function api<T>(d: Pick<Daemon, "dataDir">, method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const info = JSON.parse(readFileSync(join(d.dataDir, "node.json"), "utf8")) as { control: { port: number; token: string } };
  const res = await fetch(`http://127.0.0.1:${info.control.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${info.control.token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const value = (await res.json()) as T & { message?: string };
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${value.message ?? ""}`);
  return value;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * One HTTP request to 127.0.0.1:port with exactly the headers given (Host included), as a page under
 * DNS rebinding, another origin or another user of the laptop would send it.
 */
export function http(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers, setHost: false, timeout: 5000 }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
