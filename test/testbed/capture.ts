// Packet capture for the privacy test: tcpdump inside a namespace, a small pcap reader that puts TCP
// streams back together (a key split over two segments is still found), and the forms in which an
// identity could show up in bytes.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fingerprint, keyId, type Identity } from "@pigeon/model";
import { base32 } from "../../packages/model/src/identity.js";

/** Why tcpdump cannot be used here, or undefined. */
export function tcpdumpMissing(): string | undefined {
  const r = spawnSync("tcpdump", ["--version"], { stdio: "ignore" });
  return r.error || r.status !== 0 ? "tcpdump is not installed (apt-get install tcpdump; .ci/run does)" : undefined;
}

export interface Capture {
  /** Stops tcpdump (SIGINT, so it flushes) and returns the pcap file's bytes. */
  stop(): Promise<Buffer>;
}

/** Starts `tcpdump -i iface -w file` inside `ns`; resolves once it is listening. */
export async function startCapture(ns: string, iface: string, file: string, timeoutMs = 10_000): Promise<Capture> {
  // -Z root: do not drop to the tcpdump user, which could not write into our private temp directory
  const proc = spawn("ip", ["netns", "exec", ns, "tcpdump", "-i", iface, "-n", "-s", "0", "-U", "-Z", "root", "-w", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  proc.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const end = Date.now() + timeoutMs;
  while (!/listening on/.test(err)) {
    if (proc.exitCode !== null) throw new Error(`tcpdump exited: ${err}`);
    if (Date.now() > end) {
      proc.kill("SIGKILL");
      throw new Error(`tcpdump did not start within ${timeoutMs} ms: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
      return readFileSync(file);
    },
  };
}

export interface ParsedCapture {
  packets: number;
  /** Each TCP direction's payload, in sequence order, retransmissions once. Key: "src:port>dst:port". */
  tcp: Map<string, Buffer>;
  /** Every UDP payload with its ports. */
  udp: { from: number; to: number; payload: Buffer }[];
}

/** Reads a classic pcap (Ethernet link type) and reassembles TCP streams. IPv4 and plain IPv6. */
export function parsePcap(file: Buffer): ParsedCapture {
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && file.readUInt32BE(0) !== 0xa1b2c3d4 && file.readUInt32BE(0) !== 0xa1b23c4d) throw new Error("not a pcap file");
  const u32 = (o: number) => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const linkType = u32(20);
  if (linkType !== 1) throw new Error(`pcap link type ${linkType} is not Ethernet`);
  const segments = new Map<string, { seq: number; data: Buffer }[]>();
  const udp: ParsedCapture["udp"] = [];
  let packets = 0;
  for (let o = 24; o + 16 <= file.length; ) {
    const len = u32(o + 8);
    const frame = file.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    packets++;
    if (frame.length < 14) continue;
    const etherType = frame.readUInt16BE(12);
    let proto: number;
    let l4: Buffer;
    let src: string;
    let dst: string;
    if (etherType === 0x0800) {
      const ihl = (frame[14]! & 0x0f) * 4;
      const total = frame.readUInt16BE(16);
      proto = frame[23]!;
      src = [...frame.subarray(26, 30)].join(".");
      dst = [...frame.subarray(30, 34)].join(".");
      l4 = frame.subarray(14 + ihl, 14 + total);
    } else if (etherType === 0x86dd) {
      proto = frame[20]!;
      src = frame.subarray(22, 38).toString("hex");
      dst = frame.subarray(38, 54).toString("hex");
      l4 = frame.subarray(54, 54 + frame.readUInt16BE(18));
    } else continue;
    if (proto === 6 && l4.length >= 20) {
      const sport = l4.readUInt16BE(0);
      const dport = l4.readUInt16BE(2);
      const seq = l4.readUInt32BE(4);
      const data = l4.subarray((l4[12]! >> 4) * 4);
      if (data.length === 0) continue;
      const key = `${src}:${sport}>${dst}:${dport}`;
      let list = segments.get(key);
      if (!list) segments.set(key, (list = []));
      list.push({ seq, data: Buffer.from(data) });
    } else if (proto === 17 && l4.length >= 8) {
      udp.push({ from: l4.readUInt16BE(0), to: l4.readUInt16BE(2), payload: Buffer.from(l4.subarray(8)) });
    }
  }
  const tcp = new Map<string, Buffer>();
  for (const [key, list] of segments) {
    // sequence numbers relative to the first one seen (no stream here comes near 2^32 bytes)
    const base = list[0]!.seq;
    const rel = list.map((s) => ({ at: (s.seq - base + 2 ** 32) % 2 ** 32, data: s.data })).sort((a, b) => a.at - b.at);
    const parts: Buffer[] = [];
    let end = 0;
    for (const s of rel) {
      if (s.at + s.data.length <= end) continue; // a retransmission of what we have
      parts.push(s.data.subarray(Math.max(0, end - s.at)));
      end = s.at + s.data.length;
    }
    tcp.set(key, Buffer.concat(parts));
  }
  return { packets, tcp, udp };
}

export interface Needle {
  what: string;
  bytes: Buffer;
  /** Compare ASCII letters without case (hex, base32, names), or exactly (raw bytes, base64). */
  caseless: boolean;
}


/**
 * Every form in which this identity could show up: name and home (UTF-8 and UTF-16), and each
 * long-term public key raw, in hex, in base32, and in base64 / base64url at each of the three
 * alignments it can have inside a longer base64 text; plus the fingerprint and key id derived from it.
 */
export function identityNeedles(id: Identity): Needle[] {
  const out: Needle[] = [];
  const text = (what: string, s: string, caseless: boolean) => out.push({ what, bytes: Buffer.from(s, "utf8"), caseless });
  text(`name "${id.name}"`, id.name, true);
  text(`home "${id.home}"`, id.home, true);
  out.push({ what: `name "${id.name}" in UTF-16`, bytes: Buffer.from(id.name, "utf16le"), caseless: false });
  out.push({ what: `home "${id.home}" in UTF-16`, bytes: Buffer.from(id.home, "utf16le"), caseless: false });
  for (const [label, key] of [["signing key", id.signing.publicKey], ["sealing key", id.sealing.publicKey]] as const) {
    const buf = Buffer.from(key);
    out.push({ what: `${label} (raw)`, bytes: buf, caseless: false });
    text(`${label} (hex)`, buf.toString("hex"), true);
    text(`${label} (base32)`, base32(key), true);
    for (let shift = 0; shift < 3; shift++) {
      // the key after `shift` other bytes: the base64 characters that depend on the key alone
      const padded = Buffer.concat([Buffer.alloc(shift), buf]);
      for (const enc of ["base64", "base64url"] as const) {
        const s = padded.toString(enc);
        text(`${label} (${enc}, offset ${shift})`, s.slice(4, 40), false);
      }
    }
  }
  const fp = fingerprint(id.signing.publicKey);
  text(`fingerprint ${fp}`, fp, true);
  text(`fingerprint ${fp} without dashes`, fp.replace(/-/g, ""), true);
  text(`key id ${keyId(id.signing.publicKey)}`, keyId(id.signing.publicKey), true);
  return out;
}

function lowerAscii(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let i = 0; i < out.length; i++) if (out[i]! >= 0x41 && out[i]! <= 0x5a) out[i]! += 0x20;
  return out;
}

/** Which needles occur in any of the haystacks ("what in where"). */
export function findLeaks(haystacks: { where: string; bytes: Buffer }[], needles: Needle[]): string[] {
  const found: string[] = [];
  for (const h of haystacks) {
    const lower = lowerAscii(h.bytes);
    for (const n of needles) {
      const hit = n.caseless ? lower.indexOf(lowerAscii(n.bytes)) : h.bytes.indexOf(n.bytes);
      if (hit >= 0) found.push(`${n.what} in ${h.where} at byte ${hit}`);
    }
  }
  return found;
}

/**
 * The messages of one direction of a WebSocket connection (after its HTTP upgrade), unmasked: a
 * client masks what it sends with a random key, so a name it sent would not show in the raw bytes.
 * Returns undefined for a stream that is not WebSocket. A last frame cut off by the capture's end is
 * left out.
 */
export function websocketMessages(stream: Buffer): Buffer[] | undefined {
  const head = stream.subarray(0, 16).toString("latin1");
  if (!head.startsWith("GET ") && !head.startsWith("HTTP/1.1 101")) return undefined;
  const bodyAt = stream.indexOf("\r\n\r\n");
  if (bodyAt < 0) return [];
  const out: Buffer[] = [];
  let o = bodyAt + 4;
  while (o + 2 <= stream.length) {
    const b1 = stream[o + 1]!;
    let len = b1 & 0x7f;
    let p = o + 2;
    if (len === 126) {
      if (p + 2 > stream.length) break;
      len = stream.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (p + 8 > stream.length) break;
      len = Number(stream.readBigUInt64BE(p));
      p += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    const mask = masked ? stream.subarray(p, p + 4) : undefined;
    if (masked) p += 4;
    if (p + len > stream.length) break;
    const payload = Buffer.from(stream.subarray(p, p + len));
    if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
    out.push(payload);
    o = p + len;
  }
  return out;
}
