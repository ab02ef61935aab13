import { describe, expect, it } from "vitest";
import {
  formatIncomingMail, formatMailRequest, formatMailStatus, isMailAddress, parseIncomingMail, parseMailAddress, parseMailRequest,
  parseMailStatus, parseModerationCommand, formatUnreadNotice, parseUnreadNotice,
} from "./gateway-mail.js";
import { openGatewayRules, parseGatewayRules, signGatewayRules } from "./gateway-rules.js";
import { generateSchool } from "./school.js";

export const exampleRules = {
  version: 1, school: "kisumu-primary", domain: "kisumu-primary.example", serial: 1,
  teachers: { anyAddress: true, perDay: 50 },
  students: { classes: ["P7"], moderated: true, perDay: 5 },
  allow: { "class:P7": ["penpals@partner.example", "@twin-school.example"] },
  inboundPerSenderPerDay: 20, maxMailBytes: 1_000_000, attachments: "hold", keepHours: 24,
};

describe("gateway mail lines", () => {
  it("tells outside addresses from Pigeon ones", () => {
    expect(isMailAddress("someone@example.org")).toBe(true);
    expect(isMailAddress("amina@kisumu-primary")).toBe(false);
    expect(parseMailAddress("A.B@Example.ORG")).toBe("A.B@example.org");
    for (const bad of ["a@b@example.org", "a b@example.org", "a@example.org\r\nBcc: x@evil.example", "\"q\"@example.org", "a@1.2.3.4", "a@-x.org", "@example.org", "a@.org"])
      expect(parseMailAddress(bad), bad).toBeUndefined();
  });

  it("a request round-trips, and a subject cannot carry a second header line", () => {
    const body = formatMailRequest({ to: "someone@example.org", subject: "Hi\r\nBcc: victim@example.net", text: "Hello\n\nthere" });
    expect(body.split("\n").slice(0, 3)).toEqual(["To: someone@example.org", "Subject: Hi Bcc: victim@example.net", ""]);
    const p = parseMailRequest(body);
    expect(p).toEqual({ ok: true, request: { to: "someone@example.org", subject: "Hi Bcc: victim@example.net", text: "Hello\n\nthere" } });
    expect(parseMailRequest("hello gateway").ok).toBe(false);
    expect(parseMailRequest("To: a@example.org\nTo: b@example.org\n\nx").ok).toBe(false);
    expect(parseMailRequest("To: a@example.org\nBcc: b@example.org\n\nx").ok).toBe(false);
    expect(parseMailRequest("To: a@example.org\nRe: not-an-id\n\nx").ok).toBe(false);
    expect(parseMailRequest("To: a@example.org\n\n   ").ok).toBe(false);
  });

  it("statuses, incoming mail and teachers' commands round-trip", () => {
    const s = { state: "bounced" as const, for: "00112233445566778899aabb", note: "bounced: no such address" };
    expect(parseMailStatus(formatMailStatus(s))).toEqual(s);
    expect(parseMailStatus("Mail-Status: exploded\nFor: 00112233445566778899aabb\n\nx")).toBeUndefined();
    const u = { envelope: "ab".repeat(32), note: "it could not read it" };
    expect(parseUnreadNotice(formatUnreadNotice(u))).toEqual(u);
    // anything else is an ordinary message: no other line, an envelope id of hex only
    expect(parseUnreadNotice(`Mail-Unread: ${"ab".repeat(32)}\nTo: x@example.org\n\nx`)).toBeUndefined();
    expect(parseUnreadNotice(`Mail-Unread: ${"zz".repeat(32)}\n\nx`)).toBeUndefined();
    expect(parseUnreadNotice("Mail-Unread: ab\n\nx")).toBeUndefined();
    const m = { from: "Ann <ann@example.org>", subject: "Re: Hi", mail: 7, text: "Fine" };
    expect(parseIncomingMail(formatIncomingMail(m))).toEqual(m);
    expect(parseModerationCommand("approve 12")).toEqual({ verb: "approve", n: 12 });
    expect(parseModerationCommand(" Refuse #3 not to strangers ")).toEqual({ verb: "refuse", n: 3, why: "not to strangers" });
    expect(parseModerationCommand("list")).toEqual({ verb: "list" });
    expect(parseModerationCommand("approve twelve")).toBeUndefined();
    expect(parseModerationCommand("approve 12 and 13")).toBeUndefined();
  });
});

describe("gateway rules", () => {
  const school = generateSchool("kisumu-primary");

  it("the school signs them; the gateway takes only its school's signature over the exact text", () => {
    const text = JSON.stringify(exampleRules, null, 2);
    const file = signGatewayRules(school, text);
    expect(openGatewayRules(file, school.signing.publicKey, "kisumu-primary").students.classes).toEqual(["P7"]);
    const other = generateSchool("kisumu-primary");
    expect(() => openGatewayRules(file, other.signing.publicKey, "kisumu-primary")).toThrow(/signature/);
    expect(() => openGatewayRules({ ...file, rules: text.replace('"perDay": 5', '"perDay": 500') }, school.signing.publicKey, "kisumu-primary")).toThrow(/signature/);
    expect(() => openGatewayRules(file, school.signing.publicKey, "other-school")).toThrow(/kisumu-primary/);
    expect(() => signGatewayRules(generateSchool("other-school"), text)).toThrow(/other-school/);
  });

  it("refuses rules it does not understand rather than half-applying them", () => {
    expect(() => parseGatewayRules({ ...exampleRules, attachments: "all" })).toThrow(/attachments/);
    expect(() => parseGatewayRules({ ...exampleRules, allow: { "group:x": [] } })).toThrow(/allow key/);
    expect(() => parseGatewayRules({ ...exampleRules, allow: { "*": ["not an address"] } })).toThrow(/neither/);
    expect(() => parseGatewayRules({ ...exampleRules, teachers: { anyAddress: "yes", perDay: 1 } })).toThrow(/teachers/);
    expect(() => parseGatewayRules(null)).toThrow(/object/);
  });
});
