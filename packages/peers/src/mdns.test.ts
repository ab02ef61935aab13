// mDNS must never touch the machine's real network: the live test runs the fixture inside a private
// network namespace that has only a loopback interface, and deletes the namespace afterwards.
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HANDSHAKE_VERSION, toHex } from "@pigeon/model";
import { announcementTag, MdnsDiscovery, SERVICE_NAME, type DiscoveredPeer } from "./mdns.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const fixture = fileURLToPath(new URL("../test-fixtures/mdns-pair.mjs", import.meta.url));
const CHILD_TIMEOUT_MS = 20_000;

function whyNotTestable(): string | undefined {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (process.getuid?.() !== 0) return "not running as root, so no private network namespace can be made";
  const ip = spawnSync("ip", ["-V"], { stdio: "ignore" });
  if (ip.error || ip.status !== 0) return "the `ip` command (iproute2) is not installed";
  return undefined;
}

const skipReason = whyNotTestable();
const namespaces = new Set<string>();

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe", timeout: 10_000 });
}

/** Creates a namespace with only `lo`; `route` adds the multicast route on it. */
function makeNamespace(route: boolean): string {
  const name = `pgn-mdns-${randomBytes(4).toString("hex")}`;
  ip("netns", "add", name);
  namespaces.add(name);
  if (route) {
    ip("-n", name, "link", "set", "lo", "up", "multicast", "on");
    ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "lo");
  }
  return name;
}

function deleteNamespace(name: string): void {
  spawnSync("ip", ["netns", "del", name], { stdio: "ignore", timeout: 10_000 });
  namespaces.delete(name);
}

/** Runs the fixture inside the namespace, killed after CHILD_TIMEOUT_MS. Resolves with its JSON line. */
function runFixture(ns: string, mode: string): Promise<{ code: number; result: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", ns, process.execPath, fixture, mode],
      { cwd: root, timeout: CHILD_TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const line = stdout.trim().split("\n").filter(Boolean).at(-1);
        if (!line) {
          reject(new Error(`fixture printed nothing (${err?.message ?? "no error"}); stderr: ${stderr}`));
          return;
        }
        try {
          const code = err ? ((err as { code?: unknown }).code as number) ?? -1 : 0;
          resolve({ code, result: JSON.parse(line) as Record<string, unknown> });
        } catch (e) {
          reject(new Error(`fixture output is not JSON: ${line}; stderr: ${stderr}`));
        }
      },
    );
  });
}

describe("MdnsDiscovery records", () => {
  it("advertises PTR, SRV, TXT and A for _pigeon._tcp.local under an opaque identifier and the version", () => {
    const d = new MdnsDiscovery({ port: 7480, interface: "10.1.2.3" });
    const id = toHex(d.currentId);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(d.instanceName).toBe(`${id}._pigeon._tcp.local`);
    expect(d.records()).toEqual([
      { name: SERVICE_NAME, type: "PTR", ttl: 120, data: `${id}._pigeon._tcp.local` },
      {
        name: `${id}._pigeon._tcp.local`,
        type: "SRV",
        ttl: 120,
        data: { port: 7480, target: `pigeon-${id}.local`, priority: 0, weight: 0 },
      },
      { name: `${id}._pigeon._tcp.local`, type: "TXT", ttl: 120, data: [`v=${HANDSHAKE_VERSION}`, `t=${d.tag()}`] },
      { name: `pigeon-${id}.local`, type: "A", ttl: 120, data: "10.1.2.3" },
    ]);
  });

  it("tags its announcement so that schoolmates recognise it and no one else can tell anything", () => {
    const school = new Uint8Array(randomBytes(32));
    const trust = (secrets: Uint8Array[]) => ({ secrets: () => secrets, showToStrangers: () => secrets.length === 0 });
    const hear = (listener: MdnsDiscovery, speaker: MdnsDiscovery) => {
      const heard: DiscoveredPeer[] = [];
      listener.on("peer", (p) => heard.push(p));
      (listener as unknown as { onResponse(r: unknown[], i: unknown): void }).onResponse(speaker.records(), { address: "10.1.2.4" });
      return heard;
    };
    const zawadi = new MdnsDiscovery({ port: 7480, interface: "10.1.2.3", trust: trust([school]) });
    const baraka = new MdnsDiscovery({ port: 7481, interface: "10.1.2.4", trust: trust([school]) });
    const stranger = new MdnsDiscovery({ port: 7482, interface: "10.1.2.5" });
    expect(zawadi.tag()).toBe(announcementTag(school, zawadi.currentId));
    expect(stranger.tag()).toMatch(/^[0-9a-f]{16}$/);
    expect(hear(zawadi, baraka).map((p) => p.shared)).toEqual([true]);
    expect(hear(zawadi, stranger).map((p) => p.shared)).toEqual([false]);
    expect(hear(stranger, zawadi).map((p) => p.shared)).toEqual([false]);
    // the tag changes with the identifier, for a schoolmate's and a stranger's announcement alike
    const [t1, s1] = [zawadi.tag(), stranger.tag()];
    zawadi.rotate();
    stranger.rotate();
    expect([zawadi.tag() !== t1, stranger.tag() !== s1]).toEqual([true, true]);
    // a laptop that joins a school (the node hands over its trust) tags with the school's secret from then on
    stranger.useTrust(trust([school]));
    expect(hear(zawadi, stranger).map((p) => p.shared)).toEqual([true]);
  });

  it("changes the identifier when it rotates and at every start; two discoveries never share one", () => {
    const d = new MdnsDiscovery({ port: 7480, interface: "10.1.2.3" });
    const seen = new Set<string>([toHex(d.currentId)]);
    for (let i = 0; i < 5; i++) {
      d.rotate();
      seen.add(toHex(d.currentId));
      expect(d.records()[0]!.data).toBe(`${toHex(d.currentId)}._pigeon._tcp.local`);
    }
    seen.add(toHex(new MdnsDiscovery({ port: 7480 }).currentId));
    expect(seen.size).toBe(7);
  });

  it("validates its options", () => {
    expect(() => new MdnsDiscovery({ port: 0 })).toThrow(/port/);
    expect(() => new MdnsDiscovery({ port: 7480, interface: "eth0" })).toThrow(/IPv4 address/);
    expect(() => new MdnsDiscovery({ port: 7480, rotateMs: -1 })).toThrow(/rotateMs/);
  });

  it("writes each problem to its log once, not as a process warning", async () => {
    // binding to an address this machine does not have fails before anything is sent
    const lines: string[] = [];
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on("warning", onWarning);
    const d = new MdnsDiscovery({
      port: 7480, bind: "203.0.113.77", mdnsPort: 45353, queryIntervalMs: 50,
      log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) },
    });
    try {
      d.start();
      const end = Date.now() + 3000;
      while (lines.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await d.stop();
      process.off("warning", onWarning);
    }
    // the same bind failure surfaces as four problems; each is written once, not every query interval
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(4);
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.join("\n")).toMatch(/mDNS socket error: .*EADDRNOTAVAIL/);
    expect(warnings).toEqual([]);
  });
});

describe("MdnsDiscovery on a real (namespaced) network", () => {
  if (skipReason) {
    console.warn(`mDNS was NOT tested: ${skipReason}.`);
    it.skip(`two discoveries find each other (skipped: ${skipReason})`, () => {});
    return;
  }

  beforeAll(() => {
    // The fixture runs as plain Node against the built package.
    execFileSync("npx", ["tsc", "-b", "packages/peers"], { cwd: root, stdio: "pipe", timeout: 120_000 });
  }, 150_000);

  afterAll(() => {
    for (const ns of [...namespaces]) deleteNamespace(ns);
  });

  it("two discoveries find each other and form one link", async (ctx) => {
    let ns: string;
    try {
      ns = makeNamespace(true);
    } catch (e) {
      console.warn(`mDNS was NOT tested: could not create a network namespace: ${(e as Error).message}`);
      ctx.skip();
      return;
    }
    try {
      const { code, result } = await runFixture(ns, "pair");
      expect(result.error).toBeUndefined();
      expect(code).toBe(0);
      const found = result.found as Record<string, { host: string; port: number; expectedPort: number; id: string; ourId: string }>;
      const ids = result.ids as Record<string, string>;
      expect(found.ana!.host).toBe("127.0.0.1");
      expect(found.ana!.port).toBe(found.ana!.expectedPort);
      expect(found.ben!.port).toBe(found.ben!.expectedPort);
      // each heard the other's identifier, and knew its own
      expect(found.ana!.id).toBe(ids.ben);
      expect(found.ana!.ourId).toBe(ids.ana);
      expect(found.ben!.id).toBe(ids.ana);
      // only the lower identifier dialled
      expect(result.dialled).toEqual([ids.ana! < ids.ben! ? "ana" : "ben"]);
      const links = result.links as Record<string, { peer: string; key: string; id: string }>;
      const keys = result.keys as Record<string, string>;
      expect(links.ana!.peer).toBe("ben@ns-test");
      expect(links.ana!.key).toBe(keys.ben);
      expect(links.ben!.peer).toBe("ana@ns-test");
      expect(links.ben!.key).toBe(keys.ana);
      expect(links.ana!.id).toBe(links.ben!.id);
      expect(result.received).toBe("hello ben, found you by mDNS");
      expect(result.strangers).toBeUndefined(); // never heard itself as a peer
      // after ana's identifier changes, ben hears the new one (and nothing that names ana)
      expect(result.rotated).toMatchObject({ heardByBen: true });
      expect((result.rotated as { newId: string }).newId).not.toBe(ids.ana);
    } finally {
      deleteNamespace(ns);
    }
  });

  it("reports a missing multicast route as an 'error' event instead of crashing", async (ctx) => {
    let ns: string;
    try {
      ns = makeNamespace(false); // loopback down: nowhere to send multicast
    } catch (e) {
      ctx.skip();
      return;
    }
    try {
      const { code, result } = await runFixture(ns, "no-route");
      expect(code).toBe(0);
      expect(result.error).toMatch(/mDNS could not send .*ENETUNREACH.*no multicast route/);
    } finally {
      deleteNamespace(ns);
    }
  });
});
