// What the network learns about a child: two real `pigeon start` daemons, each in a namespace of its
// own, joined by one veth (the "Wi-Fi"), find each other by mDNS and exchange a message while tcpdump
// records everything on that wire. Nothing in the capture may name either child: no name, no home,
// no long-term public key in any form (raw, hex, base32, base64), no fingerprint. Needs root, ip
// netns and tcpdump (.ci/run installs it); bounded to about half a minute.
// A third laptop (juma, a carrier linked to zawadi only) takes copies of what the two write to each
// other: what it stores may name neither child either (envelope version 3: sealed routing).
//
//   pgtb-<pid>-cap-zawadi   lo (the pigeon command's control traffic stays here, not captured)
//                           pgcapz 198.18.7.1/24, 224.0.0.0/4 routed on it   <- tcpdump listens here
//   pgtb-<pid>-cap-baraka   pgcapb 198.18.7.2/24, 224.0.0.0/4 routed on it
import { execFileSync } from "node:child_process";
import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HANDSHAKE_VERSION, parseIdentityFile, type Identity } from "@pigeon/model";
import { cleanupAll, onCleanup, pigeon, pigeonJson, startDaemon, tempDir, waitFor, type Daemon } from "../helpers.js";
import { findLeaks, identityNeedles, parsePcap, startCapture, tcpdumpMissing, websocketMessages } from "./capture.js";
import { skipReason } from "./config.js";
import { PREFIX } from "./testbed.js";

const why = skipReason("privacy-capture") ?? tcpdumpMissing();
if (why) console.log(`privacy capture test skipped: ${why}`);

afterAll(cleanupAll, 30_000);

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 });
}

/** Two namespaces joined by a veth pair; mDNS routed on the veth, nothing in the root namespace. */
function makeWire(): { nsA: string; nsB: string; ifA: string; addrA: string; addrB: string } {
  const nsA = `${PREFIX}-${process.pid}-cap-zawadi`;
  const nsB = `${PREFIX}-${process.pid}-cap-baraka`;
  const [ifA, ifB, addrA, addrB] = ["pgcapz", "pgcapb", "198.18.7.1", "198.18.7.2"];
  for (const ns of [nsA, nsB]) {
    ip("netns", "add", ns);
    onCleanup(() => {
      for (const pid of execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split(/\s+/).filter(Boolean))
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          /* gone */
        }
      ip("netns", "del", ns);
    });
    ip("-n", ns, "link", "set", "lo", "up");
  }
  ip("-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB);
  for (const [ns, iface, addr] of [[nsA, ifA, addrA], [nsB, ifB, addrB]] as const) {
    ip("-n", ns, "addr", "add", `${addr}/24`, "dev", iface);
    ip("-n", ns, "link", "set", iface, "up", "multicast", "on");
    ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", iface);
  }
  return { nsA, nsB, ifA, addrA, addrB };
}

function identityOf(d: Daemon): Identity {
  return parseIdentityFile(JSON.parse(readFileSync(join(d.dataDir, "identity.json"), "utf8")));
}

describe.skipIf(!!why)("what the network learns about a child (packet capture)", () => {
  it("two nodes find each other by mDNS and exchange a message; the wire holds no name, home or key", async () => {
    const { nsA, nsB, ifA, addrA, addrB } = makeWire();
    const capture = await startCapture(nsA, ifA, join(tempDir("capture"), "wire.pcap"));
    let stopped = false;
    onCleanup(async () => void (stopped || (await capture.stop())));
    const start = (name: string, home: string, ns: string, addr: string) =>
      startDaemon(name, { ns, args: ["--home", home, "--listen", addr, "--port", "7480", "--mdns-interface", addr, "--no-xmpp"] });
    const zawadi = await start("zawadi", "kisumu-primary", nsA, addrA);
    const baraka = await start("baraka", "nyeri-academy", nsB, addrB);

    // found by mDNS alone (no --peer), linked, and a message each way, delivered
    await waitFor(async () => (await pigeonJson<{ address: string }[]>(zawadi, "peers")).some((p) => p.address === "baraka@nyeri-academy"), "zawadi to see baraka", 20_000);
    expect((await pigeon(zawadi, "buddies", "add", "baraka@nyeri-academy")).code).toBe(0); // meeting alone makes no buddy
    const sent = await pigeonJson<{ id: string }>(baraka, "send", "zawadi@kisumu-primary", "habari zawadi, this is baraka");
    await waitFor(async () => (await pigeonJson<{ id: string; body: string }[]>(zawadi, "inbox")).some((m) => m.id === sent.id), "zawadi's inbox");
    expect((await pigeon(zawadi, "send", "baraka@nyeri-academy", "karibu baraka")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<{ body: string }[]>(baraka, "inbox")).some((m) => m.body === "karibu baraka"), "baraka's inbox");
    await waitFor(async () => (await pigeonJson<{ id: string; state: string }[]>(baraka, "outbox")).find((m) => m.id === sent.id)?.state === "delivered", "delivered");

    // baraka walks away; zawadi writes again; a carrier beside zawadi (its link to her stays off the
    // captured wire; it never meets baraka) takes a copy to spray, which it cannot read
    await baraka.stop();
    expect((await pigeon(zawadi, "send", "baraka@nyeri-academy", "are you still there?")).code).toBe(0);
    const juma = await startDaemon("juma", { ns: nsA, args: ["--home", "kisumu-primary", "--no-mdns", "--no-xmpp", "--peer", `${addrA}:7480`] });
    await waitFor(async () => (await pigeonJson<{ carrying: { envelopes: number } }>(juma, "status")).carrying.envelopes >= 1, "juma to carry a copy").catch((e: Error) => {
      if (process.env.PIGEON_SHOW_LOGS) console.log(juma.output(), zawadi.output());
      throw e;
    });
    expect(await pigeonJson<unknown[]>(juma, "inbox")).toEqual([]);
    await juma.stop();

    const pcap = await capture.stop();
    stopped = true;
    const parsed = parsePcap(pcap);

    // The capture saw the traffic: mDNS announcements and a sync link carrying the handshake.
    const mdns = parsed.udp.filter((u) => u.from === 5353 || u.to === 5353);
    expect(mdns.length).toBeGreaterThan(0);
    expect(mdns.some((u) => u.payload.includes("_pigeon"))).toBe(true);
    const links = [...parsed.tcp.entries()].filter(([k]) => k.includes(":7480>") || k.endsWith(":7480"));
    expect(links.length).toBeGreaterThanOrEqual(2); // both directions of at least one link
    const linkBytes = links.reduce((n, [, b]) => n + b.length, 0);
    expect(linkBytes).toBeGreaterThan(2_000); // handshake, reconciliation and envelopes went over it
    // The WebSocket messages, unmasked (a dialer masks what it sends): the handshake is there,
    // Hello 66 bytes, Reply 404, Confirm 372, then encrypted frames.
    const messages = links.flatMap(([, b]) => websocketMessages(b) ?? []);
    const handshake = messages.filter((m) => m[0] === HANDSHAKE_VERSION && m.length <= 404).map((m) => `${m[1]}:${m.length}`);
    for (const expected of ["1:66", "2:404", "3:372"]) expect(handshake).toContain(expected);
    expect(messages.length).toBeGreaterThan(6);

    // Nothing that names either child, anywhere: raw capture, each TCP stream put back together, each UDP payload.
    const needles = [...identityNeedles(identityOf(zawadi)), ...identityNeedles(identityOf(baraka))];
    const haystacks = [
      { where: "the raw capture", bytes: pcap },
      ...[...parsed.tcp].map(([k, bytes]) => ({ where: `TCP ${k}`, bytes })),
      ...[...parsed.tcp].flatMap(([k, bytes]) =>
        (websocketMessages(bytes) ?? []).map((m, i) => ({ where: `WebSocket message ${i} of ${k}`, bytes: m })),
      ),
      ...parsed.udp.map((u, i) => ({ where: `UDP datagram ${i} (${u.from}>${u.to})`, bytes: u.payload })),
    ];
    expect(findLeaks(haystacks, needles)).toEqual([]);

    // What juma carries: sealed envelopes and receipts only (no signed envelope kept beside them), and
    // no name, home or key of either child in any of their bytes.
    const db = new Database(join(juma.dataDir, "pigeon.db"), { readonly: true });
    const rows = db.prepare(`SELECT kind, carried, inner, bytes FROM envelopes WHERE carried = 1`).all() as { kind: number; inner: Buffer | null; bytes: Buffer }[];
    db.close();
    expect(rows.filter((r) => r.kind === 5).length).toBeGreaterThanOrEqual(1);
    for (const r of rows) {
      expect(r.inner).toBeNull();
      expect([3, 5]).toContain(r.kind); // receipts, sealed envelopes
      expect(r.bytes[0]).toBe(3); // envelope version 3
    }
    expect(findLeaks(rows.map((r, i) => ({ where: `envelope ${i} juma carries`, bytes: Buffer.from(r.bytes) })), needles)).toEqual([]);

    // (the search itself finds what version 2 would have put on the wire: mDNS's addr= and a clear Hello)
    const z = identityOf(zawadi);
    const v2 = Buffer.concat([Buffer.from("addr=zawadi@kisumu-primary"), Buffer.from([2, 1]), z.signing.publicKey, Buffer.from(Buffer.from(z.signing.publicKey).toString("hex"))]);
    expect(findLeaks([{ where: "a version-2 wire", bytes: v2 }], identityNeedles(z)).length).toBeGreaterThanOrEqual(4);
  }, 90_000);
});
