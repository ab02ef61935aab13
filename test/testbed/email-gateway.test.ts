// The school's e-mail gateway with a real MTA (issue 19). Three networks: the school's (S: the school
// server, the gateway, and a walking child who carries messages), a classroom (C: a teacher and a
// pupil, who reach the gateway only through the walking child), and "the Internet" (I: the gateway's
// second card, and Debian's Postfix in its own namespace as the mail server of example.org, with
// mailboxes the test reads and a DNS server that publishes the school's DKIM key and example.org's
// DKIM key, SPF and DMARC; and a spammer's machine).
//
// Shown: a teacher's mail arrives in the Postfix mailbox with a valid DKIM signature (opendkim-testmsg
// looks the key up over DNS); a reply sent with swaks comes back to her Pigeon inbox and her answer
// threads; the school's e-mail rules reach the pupil's laptop with the directory, so her laptop itself
// refuses an address not allowed; a pupil's mail waits for approval (given with `pigeon gateway approve` on the gateway); a
// spammer's mail is held and never reaches the pupil; a pen pal's DKIM-signed mail through Postfix
// reaches her while the same address forged by the spammer is held (SPF, DKIM, DMARC checked by the
// gateway over the testbed's DNS); a bounce (DSN from Postfix) shows in the outbox.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { filesHolding } from "../../packages/gateway/src/helpers.testing.js";
import { PigeonError, sleep, Testbed, waitUntil } from "./testbed.js";
import { skipReason } from "./config.js";

const HOME = "kisumu-primary";
const DOMAIN = "kisumu-primary.example";
const TOOLS = ["postfix", "swaks", "opendkim-testmsg", "openssl"];
const missing = TOOLS.filter((t) => {
  try {
    execFileSync("sh", ["-c", `command -v ${t} || test -x /usr/sbin/${t}`], { stdio: "ignore" });
    return false;
  } catch {
    return true;
  }
});
const why = skipReason("email-gateway") ?? (missing.length ? `missing ${missing.join(", ")} (apt-get install postfix swaks opendkim-tools)` : undefined);
if (why && missing.length) console.log(`testbed scenario email-gateway skipped: ${why}`);

interface Msg { id: string; body: string; from: string; mail?: { state: string; note: string } }

function sh(cmd: string, args: string[], input?: string, timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      res({ code: err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0, stdout, stderr });
    });
    if (input !== undefined) p.stdin!.end(input);
  });
}

describe.skipIf(!!why)("testbed: the school's e-mail gateway, with Postfix as the Internet", () => {
  let tb: Testbed;
  let dir: string;
  let inetNs: string;
  let mx: string; // Postfix's address
  let gwAddr: string; // the gateway's address on the Internet side
  let dns: ChildProcess | undefined;
  let shuttling = true;
  let shuttle: Promise<void> = Promise.resolve();
  const postfix = (...args: string[]) => sh("ip", ["netns", "exec", inetNs, "postfix", "-c", join(dir, "postfix"), ...args]);
  const mails = (box: string): string[] => {
    try {
      return readdirSync(join(dir, "mail", box, "new")).map((f) => readFileSync(join(dir, "mail", box, "new", f), "utf8"));
    } catch {
      return [];
    }
  };

  beforeAll(async () => {
    tb = await Testbed.create({ label: "email-gateway", lifetimeMs: 540_000 }); // its setup alone takes ~4 min on a loaded machine
    for (const b of ["S", "C", "I"]) await tb.addBridge(b);
    await tb.addHost("school", ["S"], { args: ["--school", HOME, "--no-xmpp"] });
    await tb.addHost("mail", ["S", "I"], { args: ["--home", HOME, "--no-xmpp"] });
    for (const n of ["walker", "wanjiru", "amina"]) await tb.addHost(n, ["S"], { args: ["--home", HOME, "--no-xmpp"] });
    await tb.addHost("inet", ["I"]); // no Pigeon here: Postfix and DNS
    await tb.addHost("spammer", ["I"]); // a machine on the Internet that is not example.org's mail server
    inetNs = tb.host("inet").ns;
    mx = tb.address("inet");
    gwAddr = tb.address("mail", "I");
    // "the Internet"'s files: Postfix's own users (postfix, nobody) must reach them, so not under the run directory (0700)
    dir = mkdtempSync(join(tmpdir(), "pigeon-tb-internet-"));
    chmodSync(dir, 0o755);
    for (const h of ["school", "mail", "walker", "wanjiru", "amina"]) await tb.start(h);

    // enrolment: the gateway is a person of the school (mail@kisumu-primary), the rest as usual
    const people: [string, string, string][] = [["mail", "office", "teacher"], ["wanjiru", "P7", "teacher"], ["amina", "P7", "student"], ["walker", "P5", "student"]];
    for (const [h, cls, role] of people) {
      const { card } = await tb.pigeon<{ card: string }>(h, "card");
      const { token } = await tb.pigeon<{ token: string }>("school", "school", "enrol", card, "--class", cls, "--role", role);
      await tb.pigeon(h, "enrol", token);
    }
    await waitUntil(async () => {
      const n = await Promise.all(["mail", "walker", "wanjiru", "amina"].map((h) => tb.pigeon<{ entries: number }>(h, "school")));
      return n.every((s) => s.entries >= people.length);
    }, "everyone to hold the directory", 90_000, 1_000);

    // keys and certificates; the rules, signed on the school server
    mkdirSync(join(dir, "postfix"), { recursive: true });
    mkdirSync(join(dir, "mail"), { recursive: true });
    execFileSync("chmod", ["777", join(dir, "mail")]);
    const gwDir = join(tb.runDir, "gateway-config");
    mkdirSync(gwDir, { recursive: true });
    const cert = (d: string, cn: string) =>
      execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(d, "key.pem"), "-out", join(d, "cert.pem"), "-days", "2", "-subj", `/CN=${cn}`, "-addext", `subjectAltName=DNS:${cn}`], { stdio: "ignore" });
    cert(join(dir, "postfix"), "mx.example.org");
    cert(gwDir, `mail.${DOMAIN}`);
    execFileSync("openssl", ["genrsa", "-out", join(gwDir, "dkim.pem"), "2048"], { stdio: "ignore" });
    const publicKey = (pem: string) => execFileSync("openssl", ["rsa", "-in", pem, "-pubout"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    const dkimPublic = publicKey(join(gwDir, "dkim.pem"));
    // example.org's own key: its mail is signed with it (opendkim-testmsg, as its mail server would)
    execFileSync("openssl", ["genrsa", "-out", join(dir, "example-org-dkim.pem"), "2048"], { stdio: "ignore" });
    writeFileSync(join(gwDir, "rules.json"), JSON.stringify({
      version: 1, school: HOME, domain: DOMAIN, serial: 1,
      teachers: { anyAddress: true, perDay: 20 },
      students: { classes: ["P7"], moderated: true, perDay: 5 },
      allow: { "class:P7": ["penpal@example.org"] },
      inboundPerSenderPerDay: 50, maxMailBytes: 1_000_000, attachments: "hold", keepHours: 24,
    }, null, 2));
    // signed on the running school server: the file for the gateway, and a directory entry that travels to every laptop
    const signedRules = await tb.pigeon<{ entry?: number }>("school", "school", "sign-rules", join(gwDir, "rules.json"), "--out", join(gwDir, "rules.signed.json"));
    expect(signedRules.entry).toBe(people.length + 1);
    writeFileSync(join(gwDir, "gateway.json"), JSON.stringify({
      rules: "rules.signed.json", hostname: `mail.${DOMAIN}`,
      smtpIn: { listen: gwAddr, port: 25, key: "key.pem", cert: "cert.pem" },
      smtpOut: { host: mx, port: 25, servername: "mx.example.org", ca: join(dir, "postfix", "cert.pem") },
      dkim: { selector: "pigeon", key: "dkim.pem" },
      dns: [mx], // SPF, DKIM and DMARC of incoming mail: the testbed's DNS, nothing else
      keepSeconds: 5, // the text of finished mail is forgotten within the test (the rules say 24 hours)
    }, null, 2));

    // "the Internet": DNS with the school's DKIM key, Postfix for example.org that relays the school's domain to the gateway
    mkdirSync(`/etc/netns/${inetNs}`, { recursive: true });
    writeFileSync(`/etc/netns/${inetNs}/resolv.conf`, `nameserver ${mx}\n`);
    dns = spawn("ip", ["netns", "exec", inetNs, process.execPath, join(import.meta.dirname, "dns-txt.mjs"), mx, "53",
      `pigeon._domainkey.${DOMAIN}`, `v=DKIM1; k=rsa; p=${dkimPublic}`,
      "example.org", `v=spf1 ip4:${mx} -all`, // only its mail server (Postfix) sends for example.org
      "_dmarc.example.org", "v=DMARC1; p=reject",
      "pp._domainkey.example.org", `v=DKIM1; k=rsa; p=${publicKey(join(dir, "example-org-dkim.pem"))}`,
    ], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((r) => dns!.stdout!.once("data", () => r()));
    const pf = join(dir, "postfix");
    // a second SMTP server standing for a remote MX that refuses broken@example.org after Postfix took it:
    // Postfix then bounces with a DSN (Status: 5.1.1) to the mail's bounce address at the gateway
    writeFileSync(join(pf, "master.cf"), readFileSync("/etc/postfix/master.cf", "utf8").split("\n").map((l) => {
      const f = l.split(/\s+/);
      return /^[a-z]/.test(l) && f[4] === "y" ? l.replace(/^(\S+\s+\S+\s+\S+\s+\S+\s+)y/, "$1n") : l; // no chroot
    }).join("\n") + `\n127.0.0.1:2526 inet n - n - - smtpd -o myhostname=far-mx.example.net -o smtpd_recipient_restrictions=check_recipient_access,texthash:${pf}/refuse,permit_mynetworks,reject\n`);
    writeFileSync(join(pf, "refuse"), "broken@example.org 550 5.1.1 <broken@example.org>: no such user here\n");
    for (const d of ["queue", "data"]) mkdirSync(join(dir, d), { recursive: true });
    execFileSync("chown", ["postfix", join(dir, "data")]);
    writeFileSync(join(pf, "vmailbox"), ["parent", "penpal", "broken"].map((u) => `${u}@example.org ${u}/`).join("\n") + "\n");
    writeFileSync(join(pf, "transport"), `${DOMAIN} smtp:[${gwAddr}]:25\nbroken@example.org smtp:[127.0.0.1]:2526\n`);
    writeFileSync(join(pf, "main.cf"), [
      "compatibility_level = 3.6", `queue_directory = ${dir}/queue`, `data_directory = ${dir}/data`, "mail_owner = postfix",
      "myhostname = mx.example.org", "mydomain = example.org", "mydestination = localhost", `inet_interfaces = ${mx}`, "inet_protocols = ipv4",
      "mynetworks = 127.0.0.0/8", `relay_domains = ${DOMAIN}`, `transport_maps = texthash:${pf}/transport`,
      `smtpd_tls_cert_file = ${pf}/cert.pem`, `smtpd_tls_key_file = ${pf}/key.pem`, "smtpd_tls_security_level = may", "smtp_tls_security_level = may",
      "virtual_mailbox_domains = example.org", `virtual_mailbox_base = ${dir}/mail`, `virtual_mailbox_maps = texthash:${pf}/vmailbox`,
      "virtual_uid_maps = static:65534", "virtual_gid_maps = static:65534", `maillog_file = ${dir}/maillog`, `maillog_file_prefixes = ${dir}`,
      "smtp_dns_support_level = disabled", "smtpd_peername_lookup = no", "alias_maps =", "alias_database =", "biff = no",
      "bounce_queue_lifetime = 0", "maximal_queue_lifetime = 1h", "queue_run_delay = 2s", "minimal_backoff_time = 2s", "maximal_backoff_time = 4s",
    ].join("\n") + "\n");
    const started = await postfix("start");
    if (started.code !== 0) throw new Error(`postfix did not start (exit ${started.code}): ${started.stderr} ${(await postfix("check")).stderr}`);

    // the gateway starts with its configuration; the teacher and the pupil go to their classroom
    process.env.PIGEON_GATEWAY_TICK_MS = "500";
    await tb.stop("mail");
    tb.host("mail").extraArgs.push("--gateway", join(gwDir, "gateway.json"));
    await tb.start("mail");
    await tb.move("wanjiru", "C");
    await tb.move("amina", "C");
    // the walking child goes back and forth between the classroom and the school's network
    shuttle = (async () => {
      while (shuttling) {
        await tb.move("walker", "C").catch(() => {});
        await sleep(8_000);
        if (!shuttling) break;
        await tb.move("walker", "S").catch(() => {});
        await sleep(8_000);
      }
    })();
  }, 240_000);

  afterAll(async () => {
    shuttling = false;
    await shuttle;
    if (inetNs) await postfix("stop");
    dns?.kill();
    if (inetNs) rmSync(`/etc/netns/${inetNs}`, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
    await tb?.teardown();
  }, 60_000);

  const outbox = (h: string) => tb.pigeon<Msg[]>(h, "outbox");
  const inbox = (h: string) => tb.pigeon<Msg[]>(h, "inbox");
  const mailState = async (h: string, id: string, state: string) =>
    waitUntil(async () => (await outbox(h)).find((m) => m.id === id && m.mail?.state === state), `${h}'s mail ${id} to be ${state}`, 150_000, 2_000);

  it("a teacher's mail leaves DKIM-signed, a swaks reply comes back to her inbox, and her answer threads", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    // without --yes nothing is sent, and she is told the gateway reads it
    const refused = await tb.pigeon("wanjiru", "send", "parent@example.org", "hello").catch((e: PigeonError) => e);
    expect(refused).toBeInstanceOf(PigeonError);
    expect((refused as PigeonError).code).toBe(2);
    expect((refused as PigeonError).stderr).toMatch(/gateway mail@kisumu-primary\.\nThe gateway reads its text/);

    const m = await tb.pigeon<Msg>("wanjiru", "send", "parent@example.org", "Sports day is on Tuesday — karibu!", "--subject", "Sports day", "--yes");
    const raw = await waitUntil(() => mails("parent").find((x) => x.includes("Sports day")), "the mail in parent@example.org's mailbox", 150_000, 1_000);
    expect(raw).toMatch(/^From: wanjiru <wanjiru@kisumu-primary\.example>$/m);
    expect(raw).toMatch(/^DKIM-Signature: [\s\S]*?d=kisumu-primary\.example;[\s\S]*?s=pigeon;/m);
    expect(raw).toContain("Tuesday =E2=80=94 karibu!");
    const verified = await sh("ip", ["netns", "exec", inetNs, "opendkim-testmsg"], raw);
    expect(verified, verified.stderr).toMatchObject({ code: 0 });
    const tampered = await sh("ip", ["netns", "exec", inetNs, "opendkim-testmsg"], raw.replace("Tuesday", "Monday"));
    expect(tampered.code).not.toBe(0);
    expect((await mailState("wanjiru", m.id, "sent")).mail!.note).toMatch(/left the school by e-mail/);

    // the parent answers with swaks, through Postfix, which relays the school's domain to the gateway
    const mid = /^Message-ID: (<[^>]+>)$/im.exec(raw)![1]!;
    const swaks = await sh("ip", ["netns", "exec", inetNs, "swaks", "--server", mx, "--tls", "--from", "parent@example.org", "--to", `wanjiru@${DOMAIN}`,
      "--header", "Subject: Re: Sports day", "--header", `In-Reply-To: ${mid}`, "--header", `References: ${mid}`, "--header", "Message-Id: <reply-1@example.org>",
      "--body", "We will be there."]);
    expect(swaks.code, swaks.stdout).toBe(0);
    const replyId = "<reply-1@example.org>";
    const answer = await waitUntil(async () => (await inbox("wanjiru")).find((x) => x.body.includes("We will be there.")), "the reply in her inbox", 150_000, 2_000);
    expect(answer.body).toMatch(/^From: parent@example\.org\nSubject: Re: Sports day\nMail: \d+\n\n\(answers your mail [0-9a-f]+\)/);
    // she answers it from her laptop: by e-mail, threaded
    await tb.pigeon("wanjiru", "reply", answer.id.slice(0, 8), "See you then!", "--yes");
    const second = await waitUntil(() => mails("parent").find((x) => x.includes("See you then!")), "her answer in the mailbox", 150_000, 1_000);
    expect(second).toContain(`In-Reply-To: ${replyId}\n`);
    expect(second).toMatch(new RegExp(`^References: ${mid.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\n ${replyId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
    expect(second).toMatch(/^Subject: Re: Sports day$/m);

    // keep nothing longer than needed (gateway.json keepSeconds 5): once her mail left and her laptop
    // followed the gateway to the conversation's next part, no file of the gateway's data directory
    // holds its text (documents, pigeon.db, gateway.db and their logs, read byte for byte), nor the
    // parent's answer; her laptop still shows them, and the mail is still in Postfix's mailbox
    const gwData = tb.host("mail").dataDir;
    await waitUntil(() => filesHolding(gwData, "Sports day is on Tuesday").length === 0 && filesHolding(gwData, "We will be there.").length === 0,
      "the mails' text gone from the gateway's files", 150_000, 2_000);
    expect((await outbox("wanjiru")).find((x) => x.id === m.id)!.body).toContain("Sports day is on Tuesday — karibu!");
    expect((await inbox("wanjiru")).find((x) => x.id === answer.id)!.body).toContain("We will be there.");
    expect(mails("parent").find((x) => x.includes("Sports day") && x.includes("Tuesday =E2=80=94 karibu!"))).toBeDefined();
    const log = await tb.pigeon<{ decision: string; detail: string }[]>("mail", "gateway", "log");
    expect(log.some((l) => l.decision === "forgotten")).toBe(true);
    expect(log.some((l) => l.detail.includes("Sports day is on Tuesday"))).toBe(false);
  }, 400_000);

  it("a pupil's laptop refuses an address the rules do not allow; her mail waits for a teacher's approval; a spammer's mail to her is held", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    // the school's e-mail rules reached her laptop with the directory (through the walking child): with no
    // way to the gateway, her laptop itself tells her an address is not allowed, and sends nothing
    await waitUntil(async () => (await tb.pigeon<{ entries: number }>("amina", "school")).entries >= 5, "the rules on her laptop", 150_000, 2_000);
    const notAllowed = await tb.pigeon("amina", "send", "stranger@example.org", "hi", "--yes").catch((e: PigeonError) => e);
    expect(notAllowed).toBeInstanceOf(PigeonError);
    expect((notAllowed as PigeonError).stderr).toContain("Not sent: stranger@example.org is not on your school's list of addresses you may write to (your school's e-mail rules 1).");
    expect(JSON.stringify(await tb.pigeon("amina", "outbox"))).not.toContain("stranger@example.org");
    const m = await tb.pigeon<Msg>("amina", "send", "penpal@example.org", "Hello from Kisumu", "--subject", "Pen pals", "--yes");
    await mailState("amina", m.id, "held");
    const queue = await tb.pigeon<{ outgoing: { n: number; sender: string; to_addr: string }[] }>("mail", "gateway");
    const held = queue.outgoing.find((o) => o.sender === `amina@${HOME}`)!;
    expect(held.to_addr).toBe("penpal@example.org");
    expect(mails("penpal")).toHaveLength(0);
    // her teacher hears of it on her laptop; the gateway's operator approves it on the server
    await waitUntil(async () => (await inbox("wanjiru")).find((x) => x.body.includes(`Mail ${held.n} from amina@${HOME}`)), "the teacher's notice", 150_000, 2_000);
    expect(await tb.pigeon<{ answer: string }>("mail", "gateway", "approve", String(held.n))).toMatchObject({ answer: expect.stringMatching(/approved/) });
    await waitUntil(() => mails("penpal").find((x) => x.includes("Hello from Kisumu")), "the approved mail at the pen pal's", 60_000, 1_000);
    await mailState("amina", m.id, "sent");

    // a spammer writes to her: held for a teacher, never delivered
    const spam = await sh("ip", ["netns", "exec", inetNs, "swaks", "--server", mx, "--tls", "--from", "winner@prizes.example", "--to", `amina@${DOMAIN}`,
      "--header", "Subject: You won!", "--body", "Click here to claim"]);
    expect(spam.code, spam.stdout).toBe(0);
    await waitUntil(async () => (await tb.pigeon<{ incoming: { from_addr: string }[] }>("mail", "gateway")).incoming.find((i) => i.from_addr === "winner@prizes.example"), "the spam held", 60_000, 1_000);
    await waitUntil(async () => (await inbox("wanjiru")).find((x) => x.body.includes("winner@prizes.example")), "the teacher told of the held mail", 150_000, 2_000);
    expect(JSON.stringify(await inbox("amina"))).not.toContain("Click here");
    expect(JSON.stringify(await tb.pigeon("amina", "requests"))).not.toContain("Click here");
    // every decision is in the gateway's log
    const log = await tb.pigeon<{ decision: string }[]>("mail", "gateway", "log");
    expect(log.map((l) => l.decision)).toEqual(expect.arrayContaining(["held", "approved", "sent", "held-in"]));
  }, 400_000);

  it("a pen pal's DKIM-signed mail through Postfix reaches the pupil; the same address forged by a spammer is held", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    // the pen pal's mail program hands a signed mail to example.org's mail server (Postfix), which passes it to the gateway
    const unsigned = [`From: Pen Pal <penpal@example.org>`, `To: amina@${DOMAIN}`, "Subject: Hello Amina", `Date: ${new Date().toUTCString()}`,
      "Message-ID: <penpal-1@example.org>", "", "Greetings from the pen pal, signed.", ""].join("\n");
    const signed = await sh("opendkim-testmsg", ["-d", "example.org", "-k", join(dir, "example-org-dkim.pem"), "-s", "pp"], unsigned);
    expect(signed, signed.stderr).toMatchObject({ code: 0 });
    expect(signed.stdout).toMatch(/^DKIM-Signature: .*d=example\.org/m);
    const sent = await sh("ip", ["netns", "exec", inetNs, "swaks", "--server", mx, "--tls", "--from", "penpal@example.org", "--to", `amina@${DOMAIN}`, "--data", "-"], signed.stdout);
    expect(sent.code, sent.stdout).toBe(0);
    const got = await waitUntil(async () => (await inbox("amina")).find((x) => x.body.includes("signed.")), "the pen pal's mail in her inbox", 150_000, 2_000);
    expect(got.body).toMatch(/^From: Pen Pal <penpal@example\.org>\nSubject: Hello Amina\nMail: \d+\n\nGreetings from the pen pal, signed\./);
    const log = () => tb.pigeon<{ decision: string; who: string; detail: string }[]>("mail", "gateway", "log");
    expect((await log()).find((l) => l.decision === "delivered-in" && l.who === "penpal@example.org")!.detail)
      .toMatch(/\(SPF pass, DKIM pass \(example\.org\), DMARC pass \(policy reject\)\)$/);

    // the spammer writes as the pen pal, straight to the gateway: SPF fails, nothing signed, DMARC says reject: held
    const forged = await sh("ip", ["netns", "exec", tb.host("spammer").ns, "swaks", "--server", gwAddr, "--tls", "--from", "penpal@example.org",
      "--to", `amina@${DOMAIN}`, "--header", "From: Pen Pal <penpal@example.org>", "--header", "Subject: Secret", "--body", "Do not tell your teacher, meet me"]);
    expect(forged.code, forged.stdout).toBe(0);
    const held = await waitUntil(async () => (await log()).find((l) => l.decision === "held-in" && l.who === "penpal@example.org"), "the forged mail held", 60_000, 1_000);
    expect(held.detail).toMatch(/it could not be proven to come from penpal@example\.org \(SPF fail, DKIM none, DMARC fail \(policy reject\)\)/);
    await waitUntil(async () => (await inbox("wanjiru")).find((x) => x.body.includes("Do not tell your teacher")), "her teacher told of the held mail", 150_000, 2_000);
    expect(JSON.stringify(await inbox("amina"))).not.toContain("Do not tell");
  }, 400_000);

  it("a bounce from Postfix (DSN) shows in the teacher's outbox", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    const m = await tb.pigeon<Msg>("wanjiru", "send", "broken@example.org", "Are you there?", "--subject", "Hello", "--yes");
    const b = await mailState("wanjiru", m.id, "bounced");
    expect(b.mail!.note).toMatch(/^bounced: no such address/);
    // it was Postfix's DSN that said so: Postfix took the mail, the far side refused it, the DSN came to the gateway
    const maillog = readFileSync(join(dir, "maillog"), "utf8");
    expect(maillog).toMatch(/to=<broken@example\.org>.*status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1/);
    expect(maillog).toMatch(/sender non-delivery notification/);
    expect(mails("broken")).toHaveLength(0);
  }, 400_000);
});
