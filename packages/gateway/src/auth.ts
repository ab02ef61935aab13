// Is an incoming mail really from the address in its From: line? Checked with SPF (may the machine
// that handed it over send for the envelope sender's domain?), DKIM (is it signed by a domain's key?)
// and DMARC (does the From: domain's own policy say one of them, aligned with it, must pass?), with the
// mailauth library (4.13.3: the last release line that runs on Node 20; it keeps the same API and tests
// as the later ones, which need Node 22). A mail that is not proven never reaches a pupil unheld.
//
// DNS is asked through a resolver the gateway is given (gateway.json "dns" names servers), so tests ask
// their own DNS server in their own network, and nothing else is asked.
import { Resolver } from "node:dns/promises";
import type { AuthenticateResult } from "mailauth";

/** How a mail's sender was proven, or why it was not. */
export interface SenderCheck {
  /**
   * pass: the From: domain is proven (DMARC pass, or without a DMARC record a DKIM signature or an SPF
   * pass of that same domain); fail: a check says it is forged; unproven: nothing proves it either way
   * (no signature, no SPF record); temperror: DNS could not answer now.
   */
  verdict: "pass" | "fail" | "unproven" | "temperror";
  /** The From: domain checked. */
  domain: string;
  /** One line for the log and for teachers, e.g. "SPF fail, DKIM none, DMARC fail (policy reject)". */
  summary: string;
}

export type DnsResolver = (name: string, rrtype: string) => Promise<string[][] | string[]>;

/** A resolver that asks these DNS servers ("198.18.0.5", "[::1]:5353"); none: the system's. */
export function dnsResolver(servers?: string[], timeoutMs = 5_000): DnsResolver {
  const r = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers?.length) r.setServers(servers);
  return (name, rrtype) => r.resolve(name, rrtype) as Promise<string[][] | string[]>;
}

export interface SenderCheckInput {
  /** The mail as received (at most the gateway's size limit). */
  raw: Buffer;
  /** MAIL FROM ("" for a bounce). */
  mailFrom: string;
  /** The address that handed it over, and the name it gave in EHLO. */
  ip: string;
  helo: string;
  /** The gateway's mail host name (in the Authentication-Results it writes). */
  mta: string;
  resolver: DnsResolver;
}

const ALIGN = (a: string, b: string) => a === b || a.endsWith(`.${b}`) || b.endsWith(`.${a}`);

export async function checkSender(i: SenderCheckInput): Promise<SenderCheck> {
  let r: AuthenticateResult;
  try {
    // loaded when the first mail comes in: mailauth and its parts take a second or two to load, which every
    // pigeon command (they all load the gateway package) would otherwise pay
    const { authenticate } = await import("mailauth");
    r = await authenticate(i.raw, {
      sender: i.mailFrom, ip: i.ip.replace(/^::ffff:/, ""), helo: i.helo || "unknown", mta: i.mta,
      resolver: i.resolver, disableArc: true, disableBimi: true,
    });
  } catch (e) {
    return { verdict: "temperror", domain: "", summary: `could not be checked (${(e as Error).message.slice(0, 100)})` };
  }
  const domain = (r.dkim.headerFrom?.[0] ?? "").toLowerCase().replace(/^.*@/, "");
  const spf = r.spf ? r.spf.status.result : "none";
  const spfDomain = r.spf ? (r.spf.domain ?? "").toLowerCase() : "";
  const dkim = r.dkim.results.map((d) => ({ result: d.status.result, domain: (d.signingDomain ?? "").toLowerCase(), comment: d.status.comment ?? "" }));
  const dkimPass = dkim.filter((d) => d.result === "pass");
  const dkimShown = dkimPass.length ? `pass (${dkimPass.map((d) => d.domain).join(", ")})`
    : dkim.length ? dkim.map((d) => `${d.result}${d.comment && d.result !== "none" ? ` (${d.comment.slice(0, 60)})` : ""}`).join(", ") : "none";
  const dmarc = r.dmarc ? r.dmarc.status.result : "none";
  const policy = r.dmarc && r.dmarc.policy ? ` (policy ${r.dmarc.policy})` : "";
  const summary = `SPF ${spf}, DKIM ${dkimShown}, DMARC ${dmarc}${dmarc !== "none" ? policy : ""}`;
  if (!domain) return { verdict: "fail", domain, summary: `no From: address; ${summary}` };
  const temp = [spf, dmarc, ...dkim.map((d) => d.result)].some((x) => x === "temperror" || x === "temperr");
  if (dmarc === "pass") return { verdict: "pass", domain, summary };
  if (dmarc === "fail") return { verdict: "fail", domain, summary };
  if (temp) return { verdict: "temperror", domain, summary };
  // no DMARC record: the From: domain is proven only by its own signature or its own SPF pass
  if (dkimPass.some((d) => ALIGN(d.domain, domain)) || (spf === "pass" && ALIGN(spfDomain, domain))) return { verdict: "pass", domain, summary };
  if (spf === "fail" || dkim.some((d) => d.result !== "pass" && d.result !== "none" && ALIGN(d.domain, domain))) return { verdict: "fail", domain, summary };
  return { verdict: "unproven", domain, summary };
}
