// "host:port" strings, as people type them into a config file.
import { isIP } from "node:net";

export interface HostPort {
  host: string;
  port: number;
}

export class PeerAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PeerAddressError";
  }
}

const HOSTNAME_RE = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** Parses "192.168.1.20:7480", "laptop-3.local:7480" or "[fe80::1]:7480". Throws PeerAddressError. */
export function parseHostPort(text: string): HostPort {
  const s = String(text).trim();
  const example = "expected host:port, e.g. 192.168.1.20:7480 or [fe80::1]:7480";
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") throw new PeerAddressError(`"${text}": ${example}`);
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (isIP(host) !== 6) throw new PeerAddressError(`"${text}": "${host}" is not an IPv6 address`);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) throw new PeerAddressError(`"${text}": no port; ${example}`);
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(":")) throw new PeerAddressError(`"${text}": put IPv6 addresses in brackets, e.g. [fe80::1]:7480`);
    if (!host) throw new PeerAddressError(`"${text}": no host; ${example}`);
    if (isIP(host) !== 4 && !HOSTNAME_RE.test(host))
      throw new PeerAddressError(`"${text}": "${host}" is not an IPv4 address or host name`);
  }
  return { host, port: parsePort(portText, text) };
}

export function parsePort(portText: string, context: string = portText): number {
  if (!/^[0-9]{1,5}$/.test(portText)) throw new PeerAddressError(`"${context}": the port must be a number from 1 to 65535`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new PeerAddressError(`"${context}": the port must be a number from 1 to 65535`);
  return port;
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** "::ffff:127.0.0.1" -> "127.0.0.1". */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return "unknown";
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
