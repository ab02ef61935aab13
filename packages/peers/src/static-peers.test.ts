import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { equalBytes, generateIdentity, type PeerLink } from "@pigeon/model";
import { PeerAddressError, parseHostPort } from "./address.js";
import { StaticPeers, type Dialer } from "./static-peers.js";
import { WsNetwork } from "./ws-network.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe("parseHostPort", () => {
  it("accepts IPv4, host names and bracketed IPv6", () => {
    expect(parseHostPort("192.168.1.20:7480")).toEqual({ host: "192.168.1.20", port: 7480 });
    expect(parseHostPort(" laptop-3.local:1 ")).toEqual({ host: "laptop-3.local", port: 1 });
    expect(parseHostPort("[fe80::1]:65535")).toEqual({ host: "fe80::1", port: 65535 });
  });

  it("explains what is wrong with bad input", () => {
    const cases: [string, RegExp][] = [
      ["192.168.1.20", /no port/],
      ["192.168.1.20:", /port must be a number from 1 to 65535/],
      ["192.168.1.20:0", /port must be a number from 1 to 65535/],
      ["192.168.1.20:65536", /port must be a number from 1 to 65535/],
      ["192.168.1.20:74x0", /port must be a number/],
      [":7480", /no host/],
      ["fe80::1:7480", /IPv6 addresses in brackets/],
      ["[fe80::1]7480", /expected host:port/],
      ["[not-ipv6]:7480", /not an IPv6 address/],
      ["bad_host!:7480", /not an IPv4 address or host name/],
    ];
    for (const [text, msg] of cases) {
      expect(() => parseHostPort(text), text).toThrow(PeerAddressError);
      expect(() => parseHostPort(text), text).toThrow(msg);
    }
    expect(() => new StaticPeers({ network: { dial: () => Promise.reject(new Error("x")) }, peers: ["ok:1", "nope"] })).toThrow(
      /"nope": no port/,
    );
  });
});

describe("StaticPeers", () => {
  it("backs off exponentially up to the cap while dialling fails", async () => {
    const calls: number[] = [];
    const dialer: Dialer = {
      dial: () => {
        calls.push(Date.now());
        return Promise.reject(new Error("ECONNREFUSED"));
      },
    };
    const sp = new StaticPeers({ network: dialer, peers: ["10.0.0.1:7480"], minBackoffMs: 20, maxBackoffMs: 80 });
    cleanups.push(() => sp.stop());
    const delays: number[] = [];
    sp.on("dial-failed", (f) => {
      expect(f.target).toBe("10.0.0.1:7480");
      expect(f.reason).toBe("ECONNREFUSED");
      delays.push(f.retryInMs);
    });
    sp.start();
    while (delays.length < 6) await once(sp, "dial-failed");
    sp.stop();
    expect(delays.slice(0, 6)).toEqual([20, 40, 80, 80, 80, 80]);
    const n = calls.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(calls.length).toBe(n); // stop() really stops
  });

  it("reconnects after the server restarts on the same port", async () => {
    const ben = generateIdentity("ben");
    const a = new WsNetwork({ identity: generateIdentity("ana"), host: "127.0.0.1", port: 0 });
    cleanups.push(() => a.close());
    const b1 = new WsNetwork({ identity: ben, host: "127.0.0.1", port: 0 });
    cleanups.push(() => b1.close());
    const { port } = await b1.listen();

    const sp = new StaticPeers({ network: a, peers: [`127.0.0.1:${port}`], minBackoffMs: 50, maxBackoffMs: 400 });
    cleanups.push(() => sp.stop());
    const failures: string[] = [];
    sp.on("dial-failed", (f) => failures.push(f.reason));
    const first = once(sp, "link");
    sp.start();
    const [link1] = (await first) as [PeerLink, string];
    expect(equalBytes(link1.peer.signPublicKey, ben.signing.publicKey)).toBe(true);
    expect(sp.connected()).toEqual([`127.0.0.1:${port}`]);

    const closed = new Promise<string>((r) => link1.onClose(r));
    await b1.close();
    await closed;
    // Let at least one re-dial fail while nobody listens.
    while (failures.length === 0) await once(sp, "dial-failed");
    expect(failures[0]).toMatch(/ECONNREFUSED/);

    const b2 = new WsNetwork({ identity: ben, host: "127.0.0.1", port });
    cleanups.push(() => b2.close());
    const second = once(sp, "link");
    expect((await b2.listen()).port).toBe(port);
    const [link2] = (await second) as [PeerLink, string];
    expect(link2).not.toBe(link1);
    expect(link2.closed).toBe(false);
    expect(equalBytes(link2.peer.signPublicKey, ben.signing.publicKey)).toBe(true);
    expect(a.links()).toEqual([link2]);
  });
});
