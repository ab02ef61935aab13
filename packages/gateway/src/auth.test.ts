// Each verdict of the incoming-mail check, with real mail (built and DKIM-signed by nodemailer, not by
// the library that checks it), real DNS (a DNS server on loopback publishing the test domains' keys,
// SPF and DMARC records) and the mailauth library doing SPF, DKIM and DMARC.
import { generateKeyPairSync } from "node:crypto";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkSender, dnsResolver, type DnsResolver } from "./auth.js";
import { dnsServer } from "./dns-server.testing.js";

const partnerKey = generateKeyPairSync("rsa", { modulusLength: 2048 });
const plainKey = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pub = (k: typeof partnerKey) => k.publicKey.export({ type: "spki", format: "der" }).toString("base64");
const pem = (k: typeof partnerKey) => k.privateKey.export({ type: "pkcs8", format: "pem" }).toString();

// partner.example: its mail server 198.18.7.1 sends for it, it signs, and its DMARC policy is reject.
// plain.example: a DKIM key only (no SPF, no DMARC). nothing.example publishes nothing.
let dns: Awaited<ReturnType<typeof dnsServer>>;
beforeAll(async () => {
  dns = await dnsServer([
    ["partner.example", "v=spf1 ip4:198.18.7.1 -all"],
    ["_dmarc.partner.example", "v=DMARC1; p=reject"],
    ["s1._domainkey.partner.example", `v=DKIM1; k=rsa; p=${pub(partnerKey)}`],
    ["s1._domainkey.plain.example", `v=DKIM1; k=rsa; p=${pub(plainKey)}`],
  ]);
});
afterAll(() => dns?.close());

async function mail(from: string, text: string, dkim?: { domainName: string; privateKey: string }): Promise<Buffer> {
  const t = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "windows", ...(dkim ? { dkim: { ...dkim, keySelector: "s1" } } : {}) });
  const info = await t.sendMail({ from, to: "amina@kisumu-primary.example", subject: "Hello", text });
  return info.message as Buffer;
}

const check = (raw: Buffer, mailFrom: string, ip: string, resolver: DnsResolver = dns.resolver) =>
  checkSender({ raw, mailFrom, ip, helo: "mx.partner.example", mta: "mail.kisumu-primary.example", resolver });

describe("is an incoming mail from who it says (SPF, DKIM, DMARC)", () => {
  it("pass: signed by its domain and sent from its domain's mail server (DMARC pass)", async () => {
    const raw = await mail("penpal@partner.example", "Hi Amina", { domainName: "partner.example", privateKey: pem(partnerKey) });
    const c = await check(raw, "penpal@partner.example", "198.18.7.1");
    expect(c).toMatchObject({ verdict: "pass", domain: "partner.example" });
    expect(c.summary).toBe("SPF pass, DKIM pass (partner.example), DMARC pass (policy reject)");
  });

  it("pass: a signature alone proves it when the domain's mail went through another server (forwarded)", async () => {
    const raw = await mail("penpal@partner.example", "Hi Amina", { domainName: "partner.example", privateKey: pem(partnerKey) });
    const c = await check(raw, "penpal@partner.example", "127.0.0.1");
    expect(c.verdict).toBe("pass");
    expect(c.summary).toMatch(/^SPF fail, DKIM pass \(partner\.example\), DMARC pass/);
  });

  it("fail: a forged From: (unsigned, from a machine the domain does not send from) is forged by DMARC", async () => {
    const raw = await mail("penpal@partner.example", "Click here");
    const c = await check(raw, "penpal@partner.example", "127.0.0.1");
    expect(c).toMatchObject({ verdict: "fail", domain: "partner.example" });
    expect(c.summary).toBe("SPF fail, DKIM none, DMARC fail (policy reject)");
  });

  it("fail: a signed mail changed on the way (the body no longer matches the signature)", async () => {
    const raw = (await mail("penpal@partner.example", "Meet at the gate at 9", { domainName: "partner.example", privateKey: pem(partnerKey) })).toString("utf8");
    const c = await check(Buffer.from(raw.replace("at 9", "at 6")), "penpal@partner.example", "127.0.0.1");
    expect(c.verdict).toBe("fail");
    expect(c.summary).toBe("SPF fail, DKIM neutral (body hash did not verify), DMARC fail (policy reject)");
  });

  it("fail: signed by another domain than the From: one, where the From: domain says reject", async () => {
    const raw = await mail("penpal@partner.example", "Hi", { domainName: "plain.example", privateKey: pem(plainKey) });
    const c = await check(raw, "someone@plain.example", "127.0.0.1");
    expect(c.verdict).toBe("fail");
    expect(c.summary).toMatch(/DKIM pass \(plain\.example\), DMARC fail/);
  });

  it("pass without DMARC: its own domain's signature; unproven: a domain that publishes nothing", async () => {
    const signed = await mail("teacher@plain.example", "Hi", { domainName: "plain.example", privateKey: pem(plainKey) });
    expect(await check(signed, "teacher@plain.example", "127.0.0.1")).toMatchObject({ verdict: "pass", summary: "SPF none, DKIM pass (plain.example), DMARC none" });
    const bare = await mail("someone@nothing.example", "Hi");
    expect(await check(bare, "someone@nothing.example", "127.0.0.1")).toMatchObject({ verdict: "unproven", domain: "nothing.example", summary: "SPF none, DKIM none, DMARC none" });
  });

  it("temperror: DNS does not answer (a port where no DNS server listens)", async () => {
    const raw = await mail("penpal@partner.example", "Hi Amina", { domainName: "partner.example", privateKey: pem(partnerKey) });
    const c = await check(raw, "penpal@partner.example", "198.18.7.1", dnsResolver(["127.0.0.1:9"], 300));
    expect(c.verdict).toBe("temperror");
  }, 20_000);
});
