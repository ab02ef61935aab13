// A network testbed for Pigeon: hosts are Linux network namespaces, Wi-Fi neighbourhoods are Linux
// bridges, and every host runs a real `pigeon` daemon. Needs root and iproute2 (`ip netns`, veth,
// bridge). Nothing touches the root namespace's interfaces:
//
//   switch namespace  pgtb-<pid>-<run>-sw   holds one Linux bridge per neighbourhood (mcast snooping off)
//   host namespace    pgtb-<pid>-<run>-<h>  lo (multicast) + one veth per bridge the host sits on;
//                                           the veth's peer end is a port of that bridge in the switch ns
//
// Addresses come from 198.18.0.0/15: host number H on bridge number B is 198.18.B.H/24. A host with a
// single veth (one Wi-Fi card) also gets an on-link route for all of 198.18.0.0/15, so it keeps
// working when the testbed carries it to another bridge (`move`): a visiting laptop keeps its address.
// 224.0.0.0/4 is routed on the host's first veth; the daemon runs mDNS on every veth's address.
//
// Link changes are made on the switch side of the veth (the host sees carrier loss, as when a laptop
// walks out of Wi-Fi range); the host's own configuration never changes under the daemon.
//
// MdnsDiscovery handles one interface (one multicast socket, one A record). A host on several bridges
// therefore does mDNS on its first bridge only, and gets `--peer` to every host on its other bridges
// (the fallback; see README.md).
//
// Everything is torn down by `teardown()`, by a watchdog when the testbed outlives `lifetimeMs`, and
// synchronously on process exit, SIGINT and SIGTERM. Each new testbed first removes what crashed
// runs left behind (namespaces whose owner process is gone); `cleanup.ts` does the same by hand.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** Every namespace, interface and temp directory the testbed makes starts with this. */
export const PREFIX = "pgtb";
export const SYNC_PORT = 7480;
const TMP_PREFIX = "pigeon-tb-";

export function repoRoot(): string {
  return import.meta.dirname ? resolve(import.meta.dirname, "../..") : process.cwd();
}
/** The built `pigeon` command the daemons run: packages/app/dist/cli.js, or $PIGEON_TESTBED_CLI. */
export function cliPath(): string {
  return process.env.PIGEON_TESTBED_CLI || join(repoRoot(), "packages/app/dist/cli.js");
}

/** Why the testbed cannot run here, or undefined if it can. */
export function unavailableReason(): string | undefined {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root (network namespaces need root)";
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
  } catch {
    return "no `ip netns` (install iproute2)";
  }
  if (!existsSync(cliPath())) return `${cliPath()} is missing (run \`npx tsc -b\` first)`;
  probed ??= probe();
  return probed || undefined;
}

let probed: string | undefined;

/** Root is not always enough (containers without CAP_SYS_ADMIN/NET_ADMIN): try the real thing once. */
function probe(): string {
  const ns = `${PREFIX}-${process.pid}-probe`;
  try {
    execFileSync("ip", ["netns", "add", ns], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    return `cannot create a network namespace (${String((e as { stderr?: unknown }).stderr ?? e).trim()})`;
  }
  try {
    execFileSync("ip", ["-n", ns, "link", "add", "pgtbprobebr", "type", "bridge"], { stdio: ["ignore", "ignore", "pipe"] });
    execFileSync("ip", ["-n", ns, "link", "add", "pgtbprobe0", "type", "veth", "peer", "name", "pgtbprobe1"], { stdio: ["ignore", "ignore", "pipe"] });
    return "";
  } catch (e) {
    return `cannot create a bridge or veth in a namespace (${String((e as { stderr?: unknown }).stderr ?? e).trim()})`;
  } finally {
    ipSync("netns", "del", ns);
  }
}

// ---------------------------------------------------------------------------------------------
// small helpers

function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((res, rej) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${cmd} ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
      else res(stdout);
    });
  });
}

function ip(...args: string[]): Promise<string> {
  return run("ip", args);
}

function ipSync(...args: string[]): string {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 });
  } catch {
    return "";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` every `everyMs` until it returns something truthy; throws after `ms`. */
export async function waitUntil<T>(fn: () => T | Promise<T>, what: string, ms: number, everyMs = 1_000): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
    await sleep(everyMs);
  }
}

/** Runs fn over items with at most n in flight. */
export async function inPool<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Seeded PRNG (mulberry32), so a chaos run can be replayed with the same seed. */
export function rng(seed: number): { next(): number; int(n: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]) => xs[int(xs.length)]!, chance: (p: number) => next() < p };
}

// ---------------------------------------------------------------------------------------------
// leftovers from crashed runs

export interface CleanupReport {
  namespaces: string[];
  links: string[];
  dirs: string[];
  skipped: string[];
}

function ownerPid(name: string): number | undefined {
  const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name) ?? new RegExp(`^${TMP_PREFIX}(\\d+)-`).exec(name);
  return m ? Number(m[1]) : undefined;
}

function killNamespace(ns: string): void {
  for (const pid of ipSync("netns", "pids", ns).split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  ipSync("netns", "del", ns);
}

/**
 * Removes namespaces, root-namespace links and temp directories with the testbed's prefix. By default
 * only those whose owner process is gone (a crashed run); `all` removes live runs' too.
 */
export function cleanupLeftovers(opts: { all?: boolean } = {}): CleanupReport {
  const report: CleanupReport = { namespaces: [], links: [], dirs: [], skipped: [] };
  const stale = (name: string) => {
    const pid = ownerPid(name);
    return opts.all || pid === undefined || (pid !== process.pid && !alive(pid));
  };
  const namespaces = ipSync("netns", "list")
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n.startsWith(`${PREFIX}-`));
  for (const ns of namespaces) {
    if (!stale(ns)) {
      report.skipped.push(ns);
      continue;
    }
    killNamespace(ns);
    report.namespaces.push(ns);
  }
  // The testbed never puts an interface in the root namespace, but a run killed half-way through
  // creating a veth could in principle leave one: remove any by prefix.
  for (const line of ipSync("-o", "link", "show").split("\n")) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name?.startsWith(PREFIX)) {
      ipSync("link", "del", name);
      report.links.push(name);
    }
  }
  for (const d of readdirSync(tmpdir())) {
    if (!d.startsWith(TMP_PREFIX)) continue;
    if (!stale(d)) continue;
    rmSync(join(tmpdir(), d), { recursive: true, force: true });
    report.dirs.push(d);
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// the testbed

export interface Bridge {
  name: string;
  index: number;
  /** Bridge device inside the switch namespace. */
  dev: string;
}

export interface Veth {
  /** The bridge this veth was made for (its address is on that bridge's /24). */
  home: string;
  /** The bridge its switch-side end is enslaved to now. */
  attachedTo: string;
  hostIf: string;
  switchIf: string;
  addr: string;
  up: boolean;
}

export interface Host {
  name: string;
  index: number;
  ns: string;
  dataDir: string;
  logFile: string;
  veths: Veth[];
  proc: ChildProcess | undefined;
  exited: Promise<void> | undefined;
  starts: number;
  extraArgs: string[];
}

export class PigeonError extends Error {
  constructor(readonly host: string, readonly args: string[], readonly code: number, readonly stderr: string) {
    super(`pigeon ${args.join(" ")} on ${host} failed (exit ${code}): ${stderr.trim()}`);
  }
}

export type ScheduledChange =
  | { at: number; host: string; action: "down" | "up"; bridge?: string }
  | { at: number; host: string; action: "move"; bridge: string }
  | { at: number; host: string; action: "restart" | "kill9" }
  | { at: number; action: "run"; label: string; run: () => unknown };

export interface TestbedOptions {
  /** Shown in names of artifacts. */
  label: string;
  /** The watchdog tears the testbed down after this long, whatever happens. */
  lifetimeMs: number;
  /** Print the event log to the console as it happens (also PIGEON_TESTBED_VERBOSE=1). */
  verbose?: boolean;
}

const live = new Set<Testbed>();
let handlersInstalled = false;

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", () => {
    for (const tb of live) tb.teardownSync();
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      for (const tb of live) tb.teardownSync();
      process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[sig]);
    });
  }
}

export class Testbed {
  readonly runId: string;
  readonly nsPrefix: string;
  readonly switchNs: string;
  readonly runDir: string;
  readonly bridges = new Map<string, Bridge>();
  readonly hosts = new Map<string, Host>();
  /** Keep logs under test-artifacts/ at teardown (set it when a test fails). */
  keepArtifacts = false;
  private readonly opts: TestbedOptions;
  private readonly t0 = Date.now();
  private readonly watchdog: NodeJS.Timeout;
  private closed = false;
  private tearing: Promise<void> | undefined;
  private readonly eventsFile: string;

  /** Creates the switch namespace (after removing leftovers of crashed runs). */
  static async create(opts: TestbedOptions): Promise<Testbed> {
    const why = unavailableReason();
    if (why) throw new Error(`testbed unavailable: ${why}`);
    const removed = cleanupLeftovers();
    if (removed.namespaces.length) console.log(`testbed: removed ${removed.namespaces.length} namespaces left by crashed runs`);
    const tb = new Testbed(opts);
    try {
      await ip("netns", "add", tb.switchNs);
      await ip("-n", tb.switchNs, "link", "set", "lo", "up");
    } catch (e) {
      await tb.teardown();
      throw e;
    }
    return tb;
  }

  private constructor(opts: TestbedOptions) {
    this.opts = opts;
    this.runId = Math.random().toString(36).slice(2, 5).padEnd(3, "0");
    this.nsPrefix = `${PREFIX}-${process.pid}-${this.runId}`;
    this.switchNs = `${this.nsPrefix}-sw`;
    this.runDir = mkdtempSync(join(tmpdir(), `${TMP_PREFIX}${process.pid}-`));
    this.eventsFile = join(this.runDir, "events.log");
    installProcessHandlers();
    live.add(this);
    this.watchdog = setTimeout(() => {
      this.log(`watchdog: the testbed outlived ${opts.lifetimeMs} ms; tearing it down`);
      this.keepArtifacts = true;
      void this.teardown();
    }, opts.lifetimeMs);
    this.watchdog.unref();
    this.log(`testbed ${opts.label}: namespaces ${this.nsPrefix}-*, files in ${this.runDir}`);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Milliseconds since the testbed was created. */
  elapsed(): number {
    return Date.now() - this.t0;
  }

  log(msg: string): void {
    const line = `${(this.elapsed() / 1000).toFixed(1).padStart(6)}s ${msg}`;
    try {
      appendFileSync(this.eventsFile, line + "\n");
    } catch {
      /* run dir gone */
    }
    if (this.opts.verbose || process.env.PIGEON_TESTBED_VERBOSE === "1") console.log(`[${this.opts.label}] ${line}`);
  }

  private check(): void {
    if (this.closed) throw new Error("the testbed has been torn down");
  }

  // ---- topology ----

  async addBridge(name: string): Promise<Bridge> {
    this.check();
    if (this.bridges.has(name)) throw new Error(`bridge ${name} exists`);
    const index = this.bridges.size;
    if (index > 9) throw new Error("at most 10 bridges (interface names must stay within 15 characters)");
    const b: Bridge = { name, index, dev: `${PREFIX}${this.runId}br${index}` };
    await ip("-n", this.switchNs, "link", "add", b.dev, "type", "bridge", "stp_state", "0", "mcast_snooping", "0");
    await ip("-n", this.switchNs, "link", "set", b.dev, "up");
    this.bridges.set(name, b);
    this.log(`bridge ${name} (${b.dev})`);
    return b;
  }

  private bridge(name: string): Bridge {
    const b = this.bridges.get(name);
    if (!b) throw new Error(`no bridge ${name}`);
    return b;
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  /**
   * A host (namespace) with one veth per bridge, all up. `name` is also the pigeon user's name.
   * `down`: bridges on which its link starts down (out of range).
   */
  async addHost(name: string, bridges: string[], opts: { down?: string[]; args?: string[] } = {}): Promise<Host> {
    this.check();
    if (this.hosts.has(name)) throw new Error(`host ${name} exists`);
    if (!/^[a-z0-9][a-z0-9._-]{0,31}$/.test(name)) throw new Error(`bad host name ${name}`);
    if (bridges.length === 0) throw new Error("a host needs at least one bridge");
    const index = this.hosts.size + 1;
    if (index > 250) throw new Error("at most 250 hosts");
    const ns = `${this.nsPrefix}-${name}`;
    const dataDir = join(this.runDir, name);
    const h: Host = { name, index, ns, dataDir, logFile: join(this.runDir, `${name}.log`), veths: [], proc: undefined, exited: undefined, starts: 0, extraArgs: opts.args ?? [] };
    this.hosts.set(name, h);
    await ip("netns", "add", ns);
    await ip("-n", ns, "link", "set", "lo", "up", "multicast", "on");
    for (const bn of bridges) {
      const b = this.bridge(bn);
      const v: Veth = {
        home: bn,
        attachedTo: bn,
        hostIf: `${PREFIX}${this.runId}b${b.index}`,
        switchIf: `${PREFIX}${this.runId}h${index}b${b.index}`,
        addr: `198.18.${b.index}.${index}`,
        up: !opts.down?.includes(bn),
      };
      if (v.switchIf.length > 15) throw new Error(`interface name ${v.switchIf} too long`);
      await ip("link", "add", v.hostIf, "netns", ns, "type", "veth", "peer", "name", v.switchIf, "netns", this.switchNs);
      await ip("-n", ns, "addr", "add", `${v.addr}/24`, "dev", v.hostIf);
      await ip("-n", ns, "link", "set", v.hostIf, "multicast", "on", "up");
      await ip("-n", this.switchNs, "link", "set", v.switchIf, "master", b.dev);
      await ip("-n", this.switchNs, "link", "set", v.switchIf, v.up ? "up" : "down");
      h.veths.push(v);
    }
    const first = h.veths[0]!;
    await ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", first.hostIf);
    if (h.veths.length === 1) await ip("-n", ns, "route", "add", "198.18.0.0/15", "dev", first.hostIf, "scope", "link");
    this.log(`host ${name} in ${ns} on ${h.veths.map((v) => `${v.home} ${v.addr}${v.up ? "" : " (down)"}`).join(", ")}`);
    return h;
  }

  /** The host's address on a bridge (default: its first). */
  address(host: string, bridge?: string): string {
    const h = this.host(host);
    const v = bridge ? h.veths.find((x) => x.home === bridge) : h.veths[0];
    if (!v) throw new Error(`${host} has no veth for ${bridge}`);
    return v.addr;
  }

  private veth(h: Host, bridge?: string): Veth[] {
    if (!bridge) return h.veths;
    const v = h.veths.find((x) => x.attachedTo === bridge) ?? h.veths.find((x) => x.home === bridge);
    if (!v) throw new Error(`${h.name} is not on bridge ${bridge}`);
    return [v];
  }

  /** Takes the host out of range of a bridge (all its bridges if none is named): carrier loss. */
  async linkDown(host: string, bridge?: string): Promise<void> {
    this.check();
    const h = this.host(host);
    for (const v of this.veth(h, bridge)) {
      await ip("-n", this.switchNs, "link", "set", v.switchIf, "down");
      v.up = false;
      this.log(`link ${host} -/- ${v.attachedTo}`);
    }
  }

  async linkUp(host: string, bridge?: string): Promise<void> {
    this.check();
    const h = this.host(host);
    for (const v of this.veth(h, bridge)) {
      await ip("-n", this.switchNs, "link", "set", v.switchIf, "up");
      v.up = true;
      this.log(`link ${host} --- ${v.attachedTo}`);
    }
  }

  /**
   * Carries a one-veth host to another bridge (the child walks to another classroom): its switch
   * port is enslaved to the other bridge. Its address stays; the link's up/down state stays too.
   */
  async move(host: string, to: string): Promise<void> {
    this.check();
    const h = this.host(host);
    const b = this.bridge(to);
    if (h.veths.length !== 1) throw new Error(`move: ${host} sits on ${h.veths.length} bridges; only one-veth hosts walk (use linkUp/linkDown)`);
    const v = h.veths[0]!;
    if (v.attachedTo === to) return;
    await ip("-n", this.switchNs, "link", "set", v.switchIf, "nomaster");
    await ip("-n", this.switchNs, "link", "set", v.switchIf, "master", b.dev);
    if (v.up) await ip("-n", this.switchNs, "link", "set", v.switchIf, "up");
    this.log(`move ${host}: ${v.attachedTo} -> ${to}${v.up ? "" : " (link down)"}`);
    v.attachedTo = to;
  }

  /** Which bridges the host is reachable on now. */
  whereIs(host: string): string[] {
    return this.host(host).veths.filter((v) => v.up).map((v) => v.attachedTo);
  }

  // ---- daemons ----

  running(host: string): boolean {
    const p = this.host(host).proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  async start(host: string, readyMs = 30_000): Promise<void> {
    this.check();
    const h = this.host(host);
    if (this.running(host)) throw new Error(`${host}'s daemon is already running`);
    // mDNS on every classroom network the laptop sits in
    const mdns = h.veths.flatMap((v) => ["--mdns-interface", v.addr]);
    const args = [
      cliPath(), "start", "--data", h.dataDir, "--name", h.name, "--listen", "0.0.0.0", "--port", String(SYNC_PORT),
      "--control-port", "0", ...mdns, ...h.extraArgs,
    ];
    h.starts++;
    appendFileSync(h.logFile, `---- start #${h.starts} at ${(this.elapsed() / 1000).toFixed(1)}s: ${args.slice(1).join(" ")}\n`);
    const proc = spawn("ip", ["netns", "exec", h.ns, process.execPath, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PIGEON_HOME: "" },
    });
    h.proc = proc;
    let out = "";
    const onData = (c: Buffer) => {
      const s = c.toString();
      if (out.length < 10_000) out += s;
      try {
        appendFileSync(h.logFile, s);
      } catch {
        /* run dir gone */
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    h.exited = new Promise<void>((r) => proc.once("exit", (code, sig) => {
      this.log(`daemon ${host} (pid ${proc.pid}) exited ${sig ?? code}`);
      r();
    }));
    const end = Date.now() + readyMs;
    while (!/^ready$/m.test(out)) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${host}'s daemon exited during start (${proc.exitCode ?? proc.signalCode}):\n${out}`);
      if (Date.now() > end) throw new Error(`${host}'s daemon did not start within ${readyMs} ms:\n${out}`);
      if (this.closed) throw new Error("the testbed has been torn down");
      await sleep(50);
    }
    this.log(`daemon ${host} started (pid ${proc.pid}, mDNS on ${h.veths.map((v) => v.addr).join(", ")})`);
  }

  async startAll(concurrency = 4): Promise<void> {
    await inPool([...this.hosts.keys()], concurrency, (h) => this.start(h));
  }

  /** Stops a daemon: SIGTERM (escalating to SIGKILL after graceMs), or SIGKILL at once. */
  async stop(host: string, signal: "SIGTERM" | "SIGKILL" = "SIGTERM", graceMs = 10_000): Promise<void> {
    const h = this.host(host);
    const p = h.proc;
    if (!p || !this.running(host)) return;
    this.log(`${signal === "SIGKILL" ? "kill -9" : "stop"} ${host}`);
    p.kill(signal);
    const done = await Promise.race([h.exited!.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.log(`${host} did not stop within ${graceMs} ms: kill -9`);
      p.kill("SIGKILL");
      await h.exited;
    }
  }

  async restart(host: string, signal: "SIGTERM" | "SIGKILL" = "SIGTERM", downMs = 0): Promise<void> {
    await this.stop(host, signal);
    if (downMs) await sleep(downMs);
    await this.start(host);
  }

  // ---- the pigeon command ----

  /** Runs `pigeon ARGS --data DIR --json` inside the host's namespace and parses what it prints. */
  async pigeon<T = unknown>(host: string, ...args: string[]): Promise<T> {
    this.check();
    const h = this.host(host);
    const argv = ["netns", "exec", h.ns, process.execPath, cliPath(), ...args, "--data", h.dataDir, "--json"];
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      execFile("ip", argv, { timeout: 30_000, env: { ...process.env, PIGEON_HOME: "" } }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
        res({ code, stdout, stderr: stderr || (err && !stderr ? err.message : "") });
      });
    });
    if (r.code !== 0) throw new PigeonError(host, args, r.code, r.stderr);
    return JSON.parse(r.stdout) as T;
  }

  // ---- schedules ----

  /** Applies link changes at their times (ms after the call), in order; resolves after the last. */
  async schedule(changes: ScheduledChange[]): Promise<void> {
    const start = Date.now();
    for (const c of [...changes].sort((a, b) => a.at - b.at)) {
      const wait = start + c.at - Date.now();
      if (wait > 0) await sleep(wait);
      this.check();
      switch (c.action) {
        case "down":
          await this.linkDown(c.host, c.bridge);
          break;
        case "up":
          await this.linkUp(c.host, c.bridge);
          break;
        case "move":
          await this.move(c.host, c.bridge);
          break;
        case "restart":
          await this.restart(c.host, "SIGTERM");
          break;
        case "kill9":
          await this.restart(c.host, "SIGKILL");
          break;
        case "run":
          this.log(`schedule: ${c.label}`);
          await c.run();
          break;
      }
    }
  }

  // ---- teardown ----

  /** Stops every daemon and deletes every namespace; safe to call more than once. */
  teardown(): Promise<void> {
    this.tearing ??= (async () => {
      this.closed = true;
      clearTimeout(this.watchdog);
      await Promise.all([...this.hosts.keys()].map((h) => this.stop(h, "SIGTERM", 5_000).catch(() => {})));
      this.log("teardown");
      this.removeEverything();
    })();
    return this.tearing;
  }

  /** For exit and signal handlers: kills and deletes everything synchronously. */
  teardownSync(): void {
    if (!live.has(this)) return;
    this.closed = true;
    clearTimeout(this.watchdog);
    for (const h of this.hosts.values()) {
      try {
        if (h.proc && h.proc.exitCode === null && h.proc.signalCode === null) h.proc.kill("SIGKILL");
      } catch {
        /* gone */
      }
    }
    this.removeEverything(true);
  }

  private removeEverything(fast = false): void {
    const all = [...[...this.hosts.values()].map((h) => h.ns), this.switchNs];
    if (fast) {
      // vitest gives a worker 500 ms between SIGTERM and SIGKILL: one `ip` for every namespace
      try {
        execFileSync("ip", ["-force", "-batch", "-"], { input: all.map((ns) => `netns del ${ns}\n`).join(""), stdio: ["pipe", "ignore", "ignore"], timeout: 5_000 });
      } catch {
        /* some were not there */
      }
    } else for (const ns of all) killNamespace(ns);
    if (this.keepArtifacts) {
      const dest = join(repoRoot(), "test-artifacts", `testbed-${this.opts.label}-${this.nsPrefix}`);
      try {
        mkdirSync(dest, { recursive: true });
        for (const f of readdirSync(this.runDir)) if (f.endsWith(".log")) cpSync(join(this.runDir, f), join(dest, f));
        console.log(`testbed ${this.opts.label}: logs kept in ${dest}`);
      } catch (e) {
        console.log(`testbed ${this.opts.label}: could not keep logs: ${(e as Error).message}`);
      }
    }
    rmSync(this.runDir, { recursive: true, force: true });
    live.delete(this);
  }
}
