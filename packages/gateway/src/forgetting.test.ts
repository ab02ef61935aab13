// The gateway keeps nothing longer than needed (issue 19), with real parts: real Pigeon nodes (the
// gateway on its own data directory on disk), real SMTP on loopback both ways. What the gateway
// keeps is read from its files byte for byte: after the delay, no file of its data directory holds
// the text of a mail that left or came in, while the teacher's laptop still shows it all.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { contactCard, formatMailRequest, segmentKind, generateIdentity, generateSchool, parseGatewayRules, parseIncomingMail, parseMailStatus } from "@pigeon/model";
import { fileStorage, memoryLinkPair, memoryStorage, PigeonNode, type MessageView } from "@pigeon/sync";
import { dnsServer } from "./dns-server.testing.js";
import { filesHolding, tempDirs, until as untilWithin } from "./helpers.testing.js";
import { Gateway } from "./gateway.js";
import { SmtpIn, SmtpOut } from "./smtp.js";
import { GatewayStore } from "./store.js";

const HOME = "kisumu-primary";
const DOMAIN = "kisumu-primary.example";
const KEEP_MS = 1_500;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const tmp = tempDirs(cleanup, "pigeon-gateway-forget-");
/** Forgetting waits for the keep delay and a round of the gateway's: 20 s by default. */
const until = <T>(fn: Parameters<typeof untilWithin<T>>[0], what: string, ms = 60_000) => untilWithin(fn, what, ms);

function selfSigned(name: string): { key: string; cert: string } {
  const d = tmp();
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(d, "k.pem"), "-out", join(d, "c.pem"), "-days", "2", "-subj", `/CN=${name}`, "-addext", `subjectAltName=DNS:${name},IP:127.0.0.1`], { stdio: "ignore" });
  return { key: readFileSync(join(d, "k.pem"), "utf8"), cert: readFileSync(join(d, "c.pem"), "utf8") };
}

async function setup() {
  const school = generateSchool(HOME);
  const open = async (name: string, storage = memoryStorage(), sch?: typeof school) => {
    const n = await PigeonNode.open({ identity: generateIdentity(name, sch ? HOME : undefined), storage, ...(sch ? { school: sch } : {}) });
    cleanup.push(() => n.shutdown());
    return n;
  };
  const server = await open("school", memoryStorage(), school);
  const enrol = async (name: string, cls: string, storage = memoryStorage()) => {
    const n = await open(name, storage);
    const { token } = await server.mailbox.school.enrolPerson(contactCard(n.mailbox.identity), { class: cls, role: "teacher" });
    await n.mailbox.school.enrol(token);
    return n;
  };
  const gwDir = tmp();
  const gw = await enrol("mail", "office", fileStorage(gwDir));
  const teacher = await enrol("wanjiru", "P7");
  const links = new Map<PigeonNode, () => void>();
  const link = (a: PigeonNode, b: PigeonNode) => {
    const [la, lb] = memoryLinkPair(contactCard(a.mailbox.identity), contactCard(b.mailbox.identity));
    a.sync.attach(la);
    b.sync.attach(lb);
    cleanup.push(() => la.close("test over"));
    return () => la.close("walked apart");
  };
  link(server, gw);
  const viaServer = link(server, teacher); // the school server carries too: away means away from both
  links.set(teacher, link(gw, teacher));
  await until(() => [gw, teacher].every((n) => n.mailbox.school.members().length === 2), "the directory to reach everyone");

  // "the Internet": a smarthost taking mail for example.org
  const tlsNet = selfSigned("smtp.example.org");
  const got: { to: string[]; raw: string }[] = [];
  const net = new SMTPServer({
    secure: false, key: tlsNet.key, cert: tlsNet.cert, authOptional: true, disabledCommands: ["AUTH"], logger: false,
    // a far side that is not reachable for now: mail to it stays queued at the gateway
    onRcptTo: (a, _s, cb) => cb(a.address === "later@example.org" ? Object.assign(new Error("4.4.1 try again later"), { responseCode: 451 }) : undefined),
    onData: (stream, s, cb) => {
      const c: Buffer[] = [];
      stream.on("data", (b: Buffer) => c.push(b));
      stream.on("end", () => (got.push({ to: s.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(c).toString("utf8") }), cb()));
    },
  });
  const netPort = await new Promise<number>((r) => net.listen(0, "127.0.0.1", () => r((net.server.address() as { port: number }).port)));
  cleanup.push(() => new Promise<void>((r) => net.close(() => r())));
  const dns = await dnsServer([]);
  cleanup.push(() => dns.close());
  const dkim = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const out = new SmtpOut({
    host: "127.0.0.1", servername: "smtp.example.org", port: netPort, name: `mail.${DOMAIN}`, ca: tlsNet.cert, loopHeaderValue: DOMAIN,
    dkim: { domainName: DOMAIN, keySelector: "pigeon", privateKey: dkim.privateKey.export({ type: "pkcs8", format: "pem" }).toString() },
  });
  cleanup.push(() => out.close());
  // gateway.db where the app keeps it: in the gateway's data directory
  const store = new GatewayStore(join(gwDir, "gateway.db"));
  cleanup.push(() => store.close());
  const rules = parseGatewayRules({
    version: 1, school: HOME, domain: DOMAIN, serial: 1, teachers: { anyAddress: true, perDay: 50 }, students: { classes: [], moderated: true, perDay: 3 },
    allow: {}, inboundPerSenderPerDay: 20, maxMailBytes: 200_000, attachments: "note", keepHours: 24,
  });
  const gateway = new Gateway({ node: gw, rules, transport: out, store, tickMs: 100, resolver: dns.resolver, keepMs: KEEP_MS });
  await gateway.start();
  cleanup.push(() => gateway.stop());
  const tlsIn = selfSigned(`mail.${DOMAIN}`);
  const door = new SmtpIn(gateway, { host: "127.0.0.1", port: 0, name: `mail.${DOMAIN}`, ...tlsIn });
  const doorPort = await door.listen();
  cleanup.push(() => door.close());
  const outside = nodemailer.createTransport({ host: "127.0.0.1", port: doorPort, secure: false, requireTLS: true, tls: { ca: tlsIn.cert, servername: `mail.${DOMAIN}` } });
  cleanup.push(() => outside.close());
  return { gw, gwDir, teacher, store, got, outside, walkApart: () => (links.get(teacher)!(), viaServer()), meetAgain: () => links.set(teacher, link(gw, teacher)) };
}

const inbox = (n: PigeonNode) => n.mailbox.messages({ direction: "in", limit: 500 });
async function statusOf(n: PigeonNode, m: MessageView, state: string) {
  return until(async () => (await inbox(n)).map((x) => parseMailStatus(x.body)).find((s) => s?.for === m.id && s.state === state), `${state} for ${m.id}`);
}

// each wait spans gateway rounds (every 10 s at most) and sync turns: on a loaded 2-core machine, 20 s was not enough
describe("the gateway keeps nothing longer than needed", { timeout: 240_000 }, () => {
  it("forgets the text of mail out and in after the delay, on disk, while the teacher's laptop keeps it all; replays do not bring it back", async () => {
    const t = await setup();
    const OUT = "Sports day moves to Thursday 7731";
    const m = await t.teacher.send(`mail@${HOME}`, formatMailRequest({ to: "parent@example.org", subject: "Sports day", text: OUT }));
    await statusOf(t.teacher, m, "sent");
    const mail = t.got.find((g) => g.raw.includes(OUT))!;
    expect(mail.to).toEqual(["parent@example.org"]);
    // the gateway had the text (so the checks below can fail): in its conversation's document files
    expect(filesHolding(t.gwDir, OUT).some((f) => f.startsWith("documents"))).toBe(true);

    // after the delay, no file of the gateway's data directory holds it: documents, pigeon.db, gateway.db, their logs
    await until(() => filesHolding(t.gwDir, OUT).length === 0, "the mail's text gone from the gateway's files");
    expect(await t.gw.mailbox.message(m.id)).toBeUndefined();
    // the teacher's laptop still shows it, and its state
    expect((await t.teacher.mailbox.message(m.id))?.body).toContain(OUT);
    expect((await inbox(t.teacher)).some((x) => parseMailStatus(x.body)?.for === m.id && parseMailStatus(x.body)?.state === "sent")).toBe(true);

    // the parent answers the mail: it still threads into her conversation (gateway.db kept its Message-ID, not its text)
    const IN = "We will bring oranges 5128";
    const messageId = /^Message-ID: (<[^>]+>)$/m.exec(mail.raw)![1]!;
    await t.outside.sendMail({ from: "Parent <parent@example.org>", to: `wanjiru@${DOMAIN}`, subject: "Re: Sports day", text: IN, inReplyTo: messageId, references: [messageId] });
    const answer = await until(async () => (await inbox(t.teacher)).find((x) => parseIncomingMail(x.body)?.text.includes(IN)), "the answer at the teacher");
    expect(parseIncomingMail(answer.body)!.text).toContain(`answers your mail ${m.id}`);
    await until(() => filesHolding(t.gwDir, IN).length === 0, "the incoming mail's text gone from the gateway's files");
    expect((await t.teacher.mailbox.message(answer.id))?.body).toContain(IN);

    // a carrier (here the teacher's laptop's own copy) hands the first mail's envelope over again:
    // refused as already delivered, nothing opened, the text does not come back
    const sealed = t.teacher.mailbox.envelopes.bytesOf(t.teacher.mailbox.state.sentEnvelope(m.id)!)!;
    expect(await t.gw.mailbox.receive(sealed, 3, "a carrier")).toMatchObject({ stored: false, refused: expect.stringMatching(/already delivered/) });
    await new Promise((r) => setTimeout(r, 300));
    expect(filesHolding(t.gwDir, OUT)).toEqual([]);
    expect(await t.gw.mailbox.message(m.id)).toBeUndefined();

    // she answers the parent's mail: it leaves, threaded, from the fresh part of the conversation
    const REPLY = "Thank you, see you there 3390";
    const again = await t.teacher.send(`mail@${HOME}`, formatMailRequest({ to: "parent@example.org", subject: "", re: answer.id, text: REPLY }));
    await statusOf(t.teacher, again, "sent");
    const second = t.got.find((g) => g.raw.includes(REPLY))!;
    expect(second.raw).toMatch(/^In-Reply-To: <[^>]+>$/m);
    expect(second.raw).toMatch(/^Subject: Re: Sports day$/m);
    await until(() => filesHolding(t.gwDir, REPLY).length === 0, "the answer's text gone from the gateway's files");

    // the school's log keeps who, to whom, when and what was decided, never the text
    const log = t.store.logSince(0);
    expect(log.map((l) => l.decision)).toEqual(expect.arrayContaining(["queued", "sent", "delivered-in", "forgotten"]));
    expect(log.find((l) => l.decision === "sent")!.detail).toContain("parent@example.org");
    for (const text of [OUT, IN, REPLY]) expect(log.some((l) => l.detail.includes(text))).toBe(false);
    // the teacher's laptop shows the whole conversation with the gateway
    const hers = (await t.teacher.mailbox.messages({ limit: 500 })).map((x) => x.body).join("\n");
    for (const text of [OUT, IN, REPLY]) expect(hers).toContain(text);
  }, 90_000);

  it("forgets each mail's text once THAT mail is done, while an earlier mail of the same conversation still waits to leave", async () => {
    const t = await setup();
    const WAITS = "This one waits for the link 2207";
    const first = await t.teacher.send(`mail@${HOME}`, formatMailRequest({ to: "later@example.org", subject: "Later", text: WAITS }));
    await statusOf(t.teacher, first, "queued");
    const conv = first.conversation;
    const messageParts = () => t.teacher.mailbox.forgetting.known(conv).filter((s) => segmentKind(s) === "messages");
    const firstPart = t.teacher.mailbox.forgetting.whereIs(first.id)!.segment;
    // the gateway moved the conversation on as soon as her mail was in it: her laptop knows a fresh part
    await until(() => messageParts().some((s) => s > firstPart), "her laptop moved on to a fresh part");
    const OUT = "Sent while the other waits 6618";
    const second = await t.teacher.send(`mail@${HOME}`, formatMailRequest({ to: "parent@example.org", subject: "Now", text: OUT }));
    expect(t.teacher.mailbox.forgetting.whereIs(second.id)!.segment).toBeGreaterThan(firstPart);
    await statusOf(t.teacher, second, "sent");
    expect(t.got.find((g) => g.raw.includes(OUT))!.to).toEqual(["parent@example.org"]);
    // the text of the mail that left is forgotten, though the first mail still waits in the same conversation
    await until(() => filesHolding(t.gwDir, OUT).length === 0, "the sent mail's text gone from the gateway's files");
    expect(await t.gw.mailbox.message(second.id)).toBeUndefined();
    // the waiting mail is still there to be sent (its text is needed), and has not left
    expect(t.store.outgoingIn("queued").map((o) => o.pigeon_id)).toEqual([first.id]);
    expect(filesHolding(t.gwDir, WAITS).length).toBeGreaterThan(0);
    expect(t.got.some((g) => g.raw.includes(WAITS))).toBe(false);
    // her laptop shows both, and the second one's state
    expect((await t.teacher.mailbox.message(first.id))?.body).toContain(WAITS);
    expect((await t.teacher.mailbox.message(second.id))?.body).toContain(OUT);
  }, 60_000);

  it("a message carried late into a part the gateway already forgot is written again by her laptop, and leaves", async () => {
    const t = await setup();
    const FIRST = "Sports day moves to Thursday 7731";
    const m = await t.teacher.send(`mail@${HOME}`, formatMailRequest({ to: "parent@example.org", subject: "Sports day", text: FIRST }));
    await statusOf(t.teacher, m, "sent");
    await until(() => filesHolding(t.gwDir, FIRST).length === 0, "the first mail's text gone from the gateway's files");

    // away from the gateway, she writes again: into the highest part her laptop knows
    t.walkApart();
    const LATE = "Written on the bus 4093";
    const late = await t.teacher.send(`mail@${HOME}`, formatMailRequest({ to: "parent@example.org", subject: "Bus", text: LATE }));
    const conv = late.conversation;
    const part = t.teacher.mailbox.forgetting.whereIs(late.id)!.segment;
    // meanwhile the gateway moves on and forgets that part (as when her laptop's acknowledgement of the
    // next part reached it by another carrier before this envelope did)
    const f = t.gw.mailbox.forgetting;
    if (Math.max(...f.known(conv).filter((s) => segmentKind(s) === "messages")) <= part) await f.moveOn(conv);
    await f.forget(conv, part);
    expect(f.known(conv)).not.toContain(part);

    // a carrier brings her late envelope: acknowledged, not read (there is no document to read it into)
    const sealed = t.teacher.mailbox.envelopes.bytesOf(t.teacher.mailbox.state.sentEnvelope(late.id)!)!;
    await t.gw.mailbox.receive(sealed, 3, "a carrier");
    await until(() => t.store.logSince(0).some((l) => l.decision === "unread"), "the late message noted unread");
    expect(t.got.some((g) => g.raw.includes(LATE))).toBe(false);
    expect(filesHolding(t.gwDir, LATE)).toEqual([]);

    // she meets the gateway again: her laptop hears it was not read and writes it again, by itself, in the fresh part; it leaves
    t.meetAgain();
    const sent = await until(() => t.got.find((g) => g.raw.includes(LATE)), "the late mail in the parent's mailbox", 90_000);
    expect(sent.to).toEqual(["parent@example.org"]);
    expect(sent.raw).toMatch(/^Subject: Bus$/m);
    const mine = (await t.teacher.mailbox.messages({ direction: "out", limit: 500 })).filter((x) => x.body.includes(LATE));
    expect(mine.map((x) => x.id)[0]).toBe(late.id);
    expect(mine).toHaveLength(2); // the one carried late, and the one her laptop wrote again
    expect(t.teacher.mailbox.forgetting.whereIs(mine[1]!.id)!.segment).toBeGreaterThan(part);
    await statusOf(t.teacher, mine[1]!, "sent");
    // once only: a second copy of the notice or of her envelope does not make it leave twice
    await new Promise((r) => setTimeout(r, 1_000));
    expect(t.got.filter((g) => g.raw.includes(LATE))).toHaveLength(1);
  }, 60_000);
});
