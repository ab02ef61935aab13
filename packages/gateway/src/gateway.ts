// The gateway's logic: a Pigeon person of its own (mail@HOME) that turns messages it receives into
// e-mail and e-mail into messages, under the school's signed rules. It uses the node as a library and
// real mail through a MailTransport (out) and an InboundPolicy that an SMTP door asks (in).
//
// Trust: every byte of an incoming mail is hostile. Nothing from outside reaches a pupil unless its
// sender is on the pupil's allow list (else a teacher releases it); nothing a pupil writes leaves
// unless the rules let them write to that address (and, when moderated, a teacher approved it). The
// gateway never writes e-mail by itself (no auto-replies, no bounces of bounces): a mail loop has
// nothing to feed on.
import {
  MAX_BODY_CHARS, MAX_FILE_BYTES, addressAllowed, decodeDrawing, mayMail, drawingSvg, formatIncomingMail, formatMailStatus, formatUnreadNotice, oneLine, parseMailAddress, parseMailRequest, parseModerationCommand, randomBytes, toHex,
  type GatewayRules, type MailState, type ModerationCommand,
} from "@pigeon/model";
import { silentLog, type ForgottenArrival, type Log, type MessageView, type PigeonNode, type SchoolMember } from "@pigeon/sync";
import { simpleParser, type ParsedMail } from "mailparser";
import { checkSender, dnsResolver, type DnsResolver, type SenderCheck } from "./auth.js";
import { GatewayForgetting } from "./forgetting.js";
import type { GatewayStore, IncomingRow, OutgoingRow, Picture } from "./store.js";
import type { Envelope, InboundPolicy, MailTransport, Refusal } from "./transport.js";

export interface GatewayOptions {
  node: PigeonNode;
  rules: GatewayRules;
  transport: MailTransport;
  store: GatewayStore;
  log?: Log;
  now?: () => number;
  /** How often queued mail is tried and the server's moderation decisions are read (default 5 s). */
  tickMs?: number;
  /** Queued mail that could not leave for this long bounces back to its sender (default 3 days). */
  giveUpMs?: number;
  /** How incoming mail's SPF, DKIM and DMARC records are looked up (default: the system's DNS). */
  resolver?: DnsResolver;
  /** The gateway's mail host name, named in its checks (default: the rules' domain). */
  hostname?: string;
  /**
   * How long the text of finished mail is kept, in gateway.db and in the gateway's Pigeon
   * conversations: the rules' keepHours, or this when shorter (gateway.json keepSeconds; tests).
   */
  keepMs?: number;
}

/** At most this many "mail held" notices to teachers a day, one per outside sender. */
const HELD_NOTICES_PER_DAY = 50;
/** More Received: lines than this is a loop. */
const MAX_RECEIVED = 30;
const LOOP_HEADER = "x-pigeon-gateway";
/** Longest the gateway's queue waits for the mailbox to take one answer. */
const ANSWER_MS = 10_000;

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export class Gateway implements InboundPolicy {
  private readonly node: PigeonNode;
  private rules: GatewayRules;
  private readonly transport: MailTransport;
  readonly store: GatewayStore;
  private readonly log: Log;
  private readonly now: () => number;
  private readonly giveUpMs: number;
  private readonly tickMs: number;
  private readonly resolver: DnsResolver;
  private readonly hostname: string | undefined;
  private readonly keepMs: number | undefined;
  private readonly forgetting: GatewayForgetting;
  private forgotAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<number> | undefined;
  private work: Promise<unknown> = Promise.resolve();
  private readonly onMessage = (m: MessageView) => {
    if (m.direction === "in") this.serial(() => this.handle(m));
  };
  /**
   * A message arrived in a part of a conversation the gateway had already forgotten (written before
   * the sender's laptop heard of the fresh part, and carried late): it was not read here, and cannot
   * be (the part's document is gone). The notice names its envelope; the sender's laptop, which keeps
   * everything it wrote, writes it again into the fresh part by itself (sync: mailbox/write-again.ts).
   */
  private readonly onForgottenArrival = (a: ForgottenArrival) => {
    void this.serial(async () => {
      this.decision("unread", a.from, "a message came after the gateway had forgotten that part of the conversation: the sender's laptop is asked to write it again");
      try {
        await this.node.mailbox.send(a.from, formatUnreadNotice({
          envelope: a.envelope,
          note: "A message of yours reached the school's e-mail gateway after it had erased this part of your conversation, so it could not read it. Your laptop writes it again by itself.",
        }));
      } catch (e) {
        this.log.warn(`gateway: could not tell ${a.from}: ${(e as Error).message}`);
      }
    });
  };

  constructor(o: GatewayOptions) {
    this.node = o.node;
    this.rules = o.rules;
    this.transport = o.transport;
    this.store = o.store;
    this.log = o.log ?? silentLog;
    this.now = o.now ?? Date.now;
    this.giveUpMs = o.giveUpMs ?? 3 * 86_400_000;
    this.tickMs = o.tickMs ?? 5_000;
    this.resolver = o.resolver ?? dnsResolver();
    this.hostname = o.hostname;
    this.keepMs = o.keepMs;
    this.forgetting = new GatewayForgetting(this.node, this.store.db, (d, who, detail) => this.decision(d, who, detail), (msg) => this.log.warn(msg));
  }

  /** How long the text of finished mail is kept here: the rules' keepHours, or less. */
  private get keep(): number {
    return Math.min(this.keepMs ?? Infinity, this.rules.keepHours * 3_600_000);
  }

  get home(): string {
    return this.node.identity.home;
  }

  get domain(): string {
    return this.rules.domain;
  }

  /** Newer rules (a higher serial) replace the ones in force; older ones are refused. */
  useRules(rules: GatewayRules): void {
    if (rules.serial <= this.rules.serial) throw new Error(`rules serial ${rules.serial} is not newer than ${this.rules.serial}`);
    this.rules = rules;
    this.decision("rules", "school", `rules ${rules.serial} in force`);
  }

  /** Handles what arrived while the gateway was stopped, then each new message; tries queued mail on a timer. */
  async start(): Promise<void> {
    this.takeDirectoryRules();
    this.node.on("message", this.onMessage);
    this.node.mailbox.on("forgotten-arrival", this.onForgottenArrival);
    for (let after = 0; ; ) {
      const page = await this.node.mailbox.messages({ direction: "in", afterSeq: after, limit: 200 });
      for (const m of page) await this.serial(() => this.handle(m));
      if (page.length < 200) break;
      after = page[page.length - 1]!.arrivalSeq ?? after + page.length;
    }
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    this.node.off("message", this.onMessage);
    this.node.mailbox.off("forgotten-arrival", this.onForgottenArrival);
    if (this.timer) clearInterval(this.timer);
    // what is under way finishes, within bounds (a mail half-sent is sent again at the next start)
    const settled = Promise.all([this.work.catch(() => {}), this.flushing?.catch(() => {})]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise<void>((r) => (timer = setTimeout(r, 3_000)))]);
    clearTimeout(timer);
  }

  /** One thing at a time: messages, mail and decisions change the same records. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.work.then(fn, fn);
    this.work = p.catch((e) => this.log.warn(`gateway: ${(e as Error).message}`));
    return p;
  }

  /** Newer rules the school published in its directory (they travel like its entries) take over, without a restart. */
  private takeDirectoryRules(): void {
    let rules: GatewayRules | undefined;
    try {
      rules = this.node.mailbox.school.mailRules();
    } catch (e) {
      this.log.warn(`gateway: the school's e-mail rules in the directory: ${(e as Error).message}`);
    }
    if (rules && rules.serial > this.rules.serial && rules.school === this.home) this.useRules(rules);
  }

  private async tick(): Promise<void> {
    try {
      this.takeDirectoryRules();
      this.store.forget(this.now() - this.keep);
      await this.serial(() => this.applyServerDecisions());
      await this.flush();
      // the gateway's copies of finished mail in its Pigeon conversations, `keep` after they are done:
      // looked at a few times within `keep` (every 10 s at most), not at every tick
      const every = Math.min(10_000, Math.max(this.tickMs, this.keep / 3));
      if (this.now() - this.forgotAt >= every) {
        this.forgotAt = this.now();
        await this.serial(() => this.forgetting.round(this.now(), this.keep));
      }
    } catch (e) {
      this.log.warn(`gateway: ${(e as Error).message}`);
    }
  }

  private decision(decision: string, who: string, detail: string): void {
    this.store.log(this.now(), decision, who, detail);
    this.log.info(`gateway ${decision}: ${who}: ${detail}`);
  }

  // ---- From Pigeon ----

  /** A message that reached the gateway: a mail to send, a teacher's decision, or something to explain. */
  async handle(m: MessageView): Promise<void> {
    if (m.direction !== "in" || m.blocked || !this.store.firstSight(m.id)) return;
    const v = m.fromVouch;
    if (!v || v.status !== "vouched") {
      this.decision("refused", m.from, "not vouched for by the school");
      await this.answer(m.id, "This is the school's e-mail gateway: it takes mail only from people the school enrolled.");
      return;
    }
    const who = { name: v.name, address: `${v.name}@${v.school}`, role: v.role, class: v.class };
    const command = parseModerationCommand(m.body);
    if (command) {
      if (who.role !== "teacher") {
        this.decision("refused", who.address, `moderation command by a pupil: ${oneLine(m.body, 60)}`);
        await this.answer(m.id, "Only teachers approve or release mail.");
        return;
      }
      await this.answer(m.id, this.moderate(command, who.address));
      return;
    }
    const parsed = parseMailRequest(m.body);
    if (!parsed.ok) {
      await this.answer(m.id, `This is the school's e-mail gateway. ${parsed.reason}.\n\nWrite:\nTo: someone@example.org\nSubject: ...\n\nyour text`);
      return;
    }
    const r = parsed.request;
    const refuse = async (why: string) => {
      this.decision("refused", who.address, `to ${r.to}: ${why}`);
      await this.status(m.id, "refused", `not sent: ${why}`);
    };
    const may = mayMail(this.rules, { name: who.name, role: who.role, class: who.class }, r.to);
    if (!may.ok) return refuse(may.reason);
    const limit = who.role === "teacher" ? this.rules.teachers.perDay : this.rules.students.perDay;
    if (this.store.count(day(this.now()), `out:${who.address}`) >= limit) return refuse(`you already sent ${limit} e-mails today (the school's limit)`);
    this.store.bump(day(this.now()), `out:${who.address}`);
    let inReplyTo: string | null = null;
    let refs: string | null = null;
    let subject = r.subject;
    if (r.re) {
      const orig = this.store.incomingByPigeonId(r.re);
      if (orig && orig.to_person === who.address && orig.message_id) {
        inReplyTo = orig.message_id;
        refs = [...(orig.refs ? orig.refs.split(" ") : []), orig.message_id].slice(-20).join(" ");
        if (!subject) subject = /^re:/i.test(orig.subject) ? orig.subject : `Re: ${orig.subject}`;
      }
    }
    const moderated = who.role === "student" && this.rules.students.moderated;
    const row = this.store.addOutgoing({
      pigeon_id: m.id, sender: who.address, sender_name: who.name, to_addr: r.to, subject, body: r.text, in_reply_to: inReplyTo, refs,
      state: moderated ? "held" : "queued", note: "", message_id: `<${toHex(randomBytes(16))}@${this.domain}>`,
      bounce_token: toHex(randomBytes(10)), created: this.now(),
    });
    if (moderated) {
      this.decision("held", who.address, `mail ${row.n} to ${r.to} waits for a teacher`);
      await this.status(m.id, "held", `waits for a teacher's approval before it leaves the school (mail ${row.n})`);
      await this.tellTeachers(who.class,
        `Mail ${row.n} from ${who.address} (class ${who.class}) to ${r.to} waits for your approval.\nSubject: ${subject}\n\n` +
        `${decodeDrawing(r.text.trim()) ? "(a drawing: it leaves as an image, drawing.svg)" : r.text}\n\n` +
        `Answer "approve ${row.n}" or "refuse ${row.n} why".`);
    } else {
      this.decision("queued", who.address, `mail ${row.n} to ${r.to}`);
      void this.flush();
      await this.status(m.id, "queued", `the gateway read it and it leaves by e-mail when the school's Internet link is up (mail ${row.n})`);
    }
  }

  private allowed(address: string, name: string, cls: string): boolean {
    return addressAllowed(this.rules, address, name, cls);
  }

  /**
   * Answers in the conversation of a message. Bounded: the gateway's one-at-a-time queue never waits
   * more than ANSWER_MS for the mailbox (the answer itself still completes, or fails, on its own).
   */
  private async answer(pigeonId: string, body: string, to?: string): Promise<void> {
    const started = Date.now();
    const done = this.replyOrSend(pigeonId, body.slice(0, MAX_BODY_CHARS), to).then(
      () => {
        if (Date.now() - started > ANSWER_MS) this.log.warn(`gateway: the answer to ${pigeonId} took ${Date.now() - started} ms`);
      },
      (e: Error) => this.log.warn(`gateway: could not answer ${pigeonId}: ${e.message}`),
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(() => {
      this.log.warn(`gateway: the mailbox has not taken the answer to ${pigeonId} after ${ANSWER_MS} ms; going on`);
      r();
    }, ANSWER_MS)));
    await Promise.race([done, late]);
    clearTimeout(timer);
  }

  /**
   * An answer in the message's conversation; once the gateway forgot the part holding the message (a
   * bounce days after the mail left), written to its sender, which is the same conversation.
   */
  private async replyOrSend(pigeonId: string, body: string, to: string | undefined): Promise<unknown> {
    if (to !== undefined && !(await this.node.mailbox.message(pigeonId))) return this.node.mailbox.send(to, body);
    return this.node.mailbox.reply(pigeonId, body);
  }

  private status(pigeonId: string, state: MailState, note: string, to?: string): Promise<void> {
    return this.answer(pigeonId, formatMailStatus({ state, for: pigeonId, note }), to);
  }

  /** The class's teachers (all teachers when it has none). */
  private teachers(cls: string): SchoolMember[] {
    const me = toHex(this.node.mailbox.me); // the gateway is enrolled as staff: it never moderates
    const all = this.node.mailbox.school.members().filter((p) => p.role === "teacher" && p.personKey !== me);
    const ofClass = all.filter((p) => p.class === cls);
    return ofClass.length ? ofClass : all;
  }

  private async tellTeachers(cls: string, text: string): Promise<void> {
    for (const t of this.teachers(cls)) {
      try {
        await this.node.mailbox.send(t.address, text.slice(0, MAX_BODY_CHARS));
      } catch (e) {
        this.log.warn(`gateway: could not tell ${t.address}: ${(e as Error).message}`);
      }
    }
  }

  // ---- Moderation ----

  /** Mail waiting for a teacher: outgoing to approve, incoming held. */
  pending(): { outgoing: OutgoingRow[]; incoming: IncomingRow[] } {
    return { outgoing: this.store.outgoingIn("held"), incoming: this.store.incomingIn("held") };
  }

  /** A teacher decides only on the mail of the classes the directory says she teaches (any class that has no teacher). */
  private moderates(teacher: string, pupil: string): boolean {
    const cls = this.member(pupil)?.class;
    return cls !== undefined && this.teachers(cls).some((t) => t.address === teacher);
  }

  private member(address: string): SchoolMember | undefined {
    return this.node.mailbox.school.members().find((p) => p.address === address);
  }

  private moderate(c: ModerationCommand, by: string): string {
    if (c.verb === "approve" || c.verb === "refuse" || c.verb === "release" || c.verb === "discard") {
      const pupil = c.verb === "approve" || c.verb === "refuse" ? this.store.outgoing(c.n)?.sender : this.store.incoming(c.n)?.to_person;
      if (pupil !== undefined && !this.moderates(by, pupil)) {
        const cls = this.member(pupil)?.class ?? "?";
        this.decision("refused", by, `${c.verb} ${c.n}: not a teacher of class ${cls}`);
        return `Mail ${c.n} is for class ${cls}: only its teachers decide on it.`;
      }
    }
    if (c.verb === "list") {
      const p = this.pending();
      p.outgoing = p.outgoing.filter((o) => this.moderates(by, o.sender));
      p.incoming = p.incoming.filter((i) => this.moderates(by, i.to_person));
      const lines = [
        ...p.outgoing.map((o) => `mail ${o.n}: ${o.sender} to ${o.to_addr}: ${o.subject ?? ""} (approve ${o.n} / refuse ${o.n} why)`),
        ...p.incoming.map((i) => `held ${i.n}: from ${i.from_addr} to ${i.to_person}: ${i.subject} (release ${i.n} / discard ${i.n} why)`),
      ];
      return lines.length ? lines.join("\n") : "Nothing waits for a teacher.";
    }
    switch (c.verb) {
      case "approve":
        return this.approve(c.n, by);
      case "release":
        return this.release(c.n, by);
      case "refuse":
        return this.refuse(c.n, by, c.why);
      case "discard":
        return this.discard(c.n, by, c.why);
    }
  }

  /** A teacher lets a pupil's mail leave. */
  approve(n: number, by: string): string {
    const o = this.store.outgoing(n);
    if (!o || o.state !== "held") return `No mail ${n} waits for approval.`;
    this.store.setOutgoing(n, "queued", `approved by ${by}`, this.now());
    this.decision("approved", by, `mail ${n} from ${o.sender} to ${o.to_addr}`);
    void this.status(o.pigeon_id, "queued", `approved by ${by}; it leaves by e-mail when the school's Internet link is up`, o.sender);
    void this.flush();
    return `Mail ${n} approved: it leaves when the link is up.`;
  }

  refuse(n: number, by: string, why: string): string {
    const o = this.store.outgoing(n);
    if (!o || o.state !== "held") return `No mail ${n} waits for approval.`;
    this.store.setOutgoing(n, "refused", `refused by ${by}: ${why}`, this.now());
    this.decision("refused", by, `mail ${n} from ${o.sender} to ${o.to_addr}: ${why}`);
    void this.status(o.pigeon_id, "refused", `not sent: a teacher (${by}) refused it${why ? `: ${why}` : ""}`, o.sender);
    return `Mail ${n} refused.`;
  }

  /** A teacher lets held incoming mail reach its pupil. */
  release(n: number, by: string): string {
    const i = this.store.incoming(n);
    if (!i || i.state !== "held" || i.body === null) return `No held mail ${n}.`;
    this.decision("released", by, `held mail ${n} from ${i.from_addr} to ${i.to_person}`);
    void this.deliver(i, this.store.pictures(n)).then((id) => this.store.setIncoming(n, "released", id, `released by ${by}`));
    return `Held mail ${n} released to ${i.to_person}.`;
  }

  discard(n: number, by: string, why: string): string {
    const i = this.store.incoming(n);
    if (!i || i.state !== "held") return `No held mail ${n}.`;
    this.store.setIncoming(n, "discarded", null, `discarded by ${by}: ${why}`);
    this.decision("discarded", by, `held mail ${n} from ${i.from_addr} to ${i.to_person}: ${why}`);
    return `Held mail ${n} discarded.`;
  }

  /** Decisions made on the school server with `pigeon gateway approve|refuse|release|discard` (written to gateway.db). */
  private async applyServerDecisions(): Promise<void> {
    const db = this.store.db;
    const rows = db.prepare(`SELECT seq, verb, n, why FROM decisions WHERE done = 0 ORDER BY seq`).all() as { seq: number; verb: string; n: number; why: string }[];
    for (const r of rows) {
      const by = "the school server";
      const answer = r.verb === "approve" ? this.approve(r.n, by) : r.verb === "refuse" ? this.refuse(r.n, by, r.why) : r.verb === "release" ? this.release(r.n, by) : this.discard(r.n, by, r.why);
      db.prepare(`UPDATE decisions SET done = 1, answer = ? WHERE seq = ?`).run(answer, r.seq);
    }
  }

  // ---- Out by SMTP ----

  /** Sends what is queued and due; one flush at a time. Answers how many left. */
  flush(): Promise<number> {
    this.flushing ??= this.flushNow().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushNow(): Promise<number> {
    let sent = 0;
    for (const o of this.store.due(this.now())) {
      if (o.body === null) continue;
      const outcome = await this.transport.send({
        from: { name: o.sender_name, address: `${o.sender_name}@${this.domain}` },
        to: o.to_addr, subject: o.subject ?? "", messageId: o.message_id, ...mailContent(o.body, o.sender_name),
        ...(o.in_reply_to ? { inReplyTo: o.in_reply_to, references: (o.refs ?? o.in_reply_to).split(" ") } : {}),
        envelopeFrom: `bounce+${o.bounce_token}@${this.domain}`,
      }).catch((e: Error) => ({ ok: false as const, permanent: false, reason: e.message }));
      await this.serial(async () => {
        if (outcome.ok) {
          sent++;
          const note = `left the school by e-mail to ${o.to_addr}`;
          this.store.setOutgoing(o.n, "sent", note, this.now());
          this.decision("sent", o.sender, `mail ${o.n} to ${o.to_addr} (${oneLine(outcome.response, 100)})`);
          await this.status(o.pigeon_id, "sent", note, o.sender);
        } else if (outcome.permanent || this.now() - o.created > this.giveUpMs) {
          const note = `bounced: ${/\b5\.1\.1\b/.test(outcome.reason) ? "no such address" : "refused"} (${oneLine(outcome.reason, 200)})`;
          this.store.setOutgoing(o.n, "bounced", note, this.now());
          this.decision("bounced", o.sender, `mail ${o.n} to ${o.to_addr}: ${note}`);
          await this.status(o.pigeon_id, "bounced", note, o.sender);
        } else {
          this.store.retryLater(o.n, `waiting for the link: ${oneLine(outcome.reason, 200)}`, this.now() + Math.min(3_600_000, 5_000 * 2 ** Math.min(o.tries, 10)));
        }
      });
    }
    return sent;
  }

  // ---- In by SMTP (the door asks) ----

  maxBytes(): number {
    return this.rules.maxMailBytes;
  }

  /** The local part of an address of ours, or undefined. */
  private ours(address: string): string | undefined {
    const a = parseMailAddress(address);
    if (!a) return undefined;
    const at = a.lastIndexOf("@");
    return a.slice(at + 1) === this.domain ? a.slice(0, at).toLowerCase() : undefined;
  }

  private person(local: string): SchoolMember | undefined {
    try {
      return this.node.mailbox.school.members().find((p) => p.name.toLowerCase() === local);
    } catch {
      return undefined;
    }
  }

  mailFrom(address: string): Refusal | undefined {
    if (address === "") return undefined; // a bounce (DSN): taken only for our bounce addresses, below
    const a = parseMailAddress(address);
    if (!a) return { code: 553, message: "5.1.7 sender address not taken here" };
    // counted here, at each attempt, in one synchronous step: parallel connections cannot slip past the limit
    if (this.store.bump(day(this.now()), `in:${a.toLowerCase()}`) > this.rules.inboundPerSenderPerDay) {
      this.decision("refused-in", a, "over the daily limit for one sender");
      return { code: 450, message: "4.7.1 too much mail from this sender today" };
    }
    return undefined;
  }

  rcptTo(address: string, mailFrom: string): Refusal | undefined {
    const local = this.ours(address);
    if (local === undefined) return { code: 550, message: "5.7.1 relaying denied" };
    if (local.startsWith("bounce+")) {
      // only bounces (null sender) go to bounce addresses: nothing else, so nothing can loop through them
      return mailFrom === "" ? undefined : { code: 550, message: "5.1.1 no such user" };
    }
    if (mailFrom === "") return { code: 550, message: "5.7.1 bounces are taken only at bounce addresses" };
    const p = this.person(local);
    if (!p) return { code: 550, message: "5.1.1 no such user here" };
    return undefined;
  }

  async data(raw: Buffer, envelope: Envelope): Promise<Refusal | undefined> {
    // DNS is asked before the one-at-a-time queue, so a slow DNS server holds up only this mail
    const check = envelope.mailFrom === "" ? undefined : await checkSender({
      raw, mailFrom: envelope.mailFrom, ip: envelope.remoteAddress, helo: envelope.helo, mta: this.hostname ?? this.domain, resolver: this.resolver,
    });
    return this.serial(() => this.takeMail(raw, envelope, check));
  }

  private async takeMail(raw: Buffer, envelope: Envelope, check: SenderCheck | undefined): Promise<Refusal | undefined> {
    const head = headerText(raw);
    const received = (head.match(/^received:/gim) ?? []).length;
    if (received > MAX_RECEIVED || new RegExp(`^${LOOP_HEADER}:\\s*${escapeRe(this.domain)}\\s*$`, "im").test(head)) {
      this.decision("dropped-in", envelope.mailFrom || "<>", `mail loop (${received} Received lines)`);
      return { code: 554, message: "5.4.6 mail loop detected" };
    }
    if (envelope.mailFrom === "" || !check) return this.takeBounce(raw, envelope.rcptTo);
    const sender = parseMailAddress(envelope.mailFrom)!.toLowerCase();
    let mail: ParsedMail;
    try {
      mail = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true, maxHtmlLengthToParse: 1_000_000 });
    } catch (e) {
      this.decision("refused-in", sender, `unreadable mail: ${(e as Error).message}`);
      return { code: 550, message: "5.6.0 this mail could not be read" };
    }
    const fromHeader = parseMailAddress(mail.from?.value?.[0]?.address ?? "")?.toLowerCase();
    const display = oneLine(mail.from?.value?.[0]?.name ?? "", 80);
    const from = fromHeader ?? sender;
    const fromShown = display ? `${display} <${from}>` : from;
    const subject = oneLine(mail.subject ?? "", 200);
    const autoSubmitted = /^auto-submitted:\s*(?!no\b)/im.test(head);
    const all = mail.attachments ?? [];
    // pictures small enough for a Pigeon file travel as files after the text; everything else is removed
    const pictures: Picture[] = [];
    const removed: string[] = [];
    for (const a of all) {
      const type = pictureType(a.content);
      if (type && a.content.length <= MAX_FILE_BYTES) pictures.push({ name: oneLine(a.filename ?? `picture-${pictures.length + 1}`, 80), type, bytes: new Uint8Array(a.content) });
      else removed.push(`${oneLine(a.filename ?? "unnamed", 80)} (${oneLine(a.contentType, 60)}, ${sizeText(a.size)})`);
    }
    const attachments = all.map((a) => `${oneLine(a.filename ?? "unnamed", 80)} (${oneLine(a.contentType, 60)}, ${sizeText(a.size)})`);
    if (attachments.length && this.rules.attachments === "refuse" && envelope.rcptTo.some((r) => this.person(this.ours(r) ?? "")?.role === "student")) {
      this.decision("refused-in", sender, `mail with attachments to a pupil (${oneLine(attachments.join("; "), 200)})`);
      return { code: 550, message: "5.7.1 mail with attachments is not taken for pupils at this school" };
    }
    let text = (mail.text ?? (typeof mail.html === "string" ? "(this mail had only HTML, not shown)" : "")).replace(/\r\n/g, "\n");
    // said first, so a child sees at once that something was taken out
    if (pictures.length)
      text = `[${pictures.length === 1 ? "A picture" : `${pictures.length} pictures`} from this mail follow${pictures.length === 1 ? "s" : ""}: ${oneLine(pictures.map((p) => p.name).join("; "), 300)}.]\n\n${text}`;
    if (removed.length)
      text = `[The school's e-mail gateway removed ${removed.length === 1 ? "an attachment" : `${removed.length} attachments`} from this mail: ${oneLine(removed.join("; "), 500)}. Only text, and pictures up to ${Math.floor(MAX_FILE_BYTES / 1024)} KiB, travel into Pigeon.]\n\n${text}`;
    const room = MAX_BODY_CHARS - 600;
    if (text.length > room) text = `${text.slice(0, room)}\n[... cut: the mail was longer than a Pigeon message]`;
    const messageId = oneLine(mail.messageId ?? "", 250) || null;
    const refs = (Array.isArray(mail.references) ? mail.references : mail.references ? [mail.references] : []).map((r) => oneLine(r, 250)).slice(-20);
    const inReplyTo = oneLine(mail.inReplyTo ?? "", 250);
    const answered = inReplyTo ? this.store.outgoingByMessageId(inReplyTo) : undefined;
    // SPF, DKIM and DMARC: proven to come from the From: address's domain, or not
    const proven = check.verdict === "pass" && check.domain === from.slice(from.lastIndexOf("@") + 1);
    const unproven = `it could not be proven to come from ${from} (${check.summary})`;
    if (!proven) text = `[Careful: this mail may not be from ${from}: ${check.verdict === "fail" ? "the checks of its domain say it is forged" : "nothing proves who sent it"} (${check.summary}).]\n\n${text}`;
    for (const rcpt of envelope.rcptTo) {
      const p = this.person(this.ours(rcpt) ?? "");
      if (!p) continue;
      const reason =
        autoSubmitted ? "an automatic mail (Auto-Submitted)" :
        p.role === "student" && !(this.allowed(from, p.name, p.class) && this.allowed(sender, p.name, p.class)) ? `${from} is not on ${p.name}'s list` :
        p.role === "student" && !proven ? unproven :
        p.role === "student" && attachments.length && this.rules.attachments === "hold" ? "it has attachments" : undefined;
      const row = this.store.addIncoming({
        to_person: p.address, from_addr: from, from_display: fromShown, subject, body: reason ? text : null, message_id: messageId,
        refs: refs.join(" ") || null, state: reason ? "held" : "delivered", pigeon_id: null,
        re_pigeon: answered && answered.sender === p.address ? answered.pigeon_id : null, note: reason ?? "", created: this.now(),
      });
      if (reason) {
        if (pictures.length) this.store.keepPictures(row.n, pictures);
        this.decision("held-in", from, `mail ${row.n} to ${p.address}: ${reason}; ${check.summary}`);
        const today = day(this.now());
        if (this.store.count(today, `notice:${from}`) === 0 && this.store.count(today, "notices") < HELD_NOTICES_PER_DAY) {
          this.store.bump(today, `notice:${from}`);
          this.store.bump(today, "notices");
          await this.tellTeachers(p.class, `Held mail ${row.n} from ${fromShown} to ${p.address} (${reason}).\nSubject: ${subject}\n\n` +
            `${text.slice(0, 2000)}\n\nAnswer "release ${row.n}" to give it to ${p.name}, or "discard ${row.n} why".`);
        }
        continue;
      }
      const id = await this.deliver({ ...row, body: text }, pictures);
      if (!id) return { code: 451, message: "4.3.0 could not pass it on now; try again later" };
      this.store.setIncoming(row.n, "delivered", id, "");
      this.decision("delivered-in", from, `mail ${row.n} to ${p.address} (${check.summary})`);
    }
    return undefined;
  }

  /** Gives a mail to its Pigeon person, its pictures as files after the text; answers the Pigeon message id. */
  private async deliver(i: IncomingRow, pictures: readonly Picture[] = []): Promise<string | null> {
    const re = i.re_pigeon ? `(answers your mail ${i.re_pigeon})\n` : "";
    try {
      const m = await this.node.mailbox.send(i.to_person, formatIncomingMail({ from: i.from_display, subject: i.subject, mail: i.n, text: `${re}${i.body ?? ""}` }));
      for (const p of pictures) await this.node.mailbox.sendFile(i.to_person, p.name, p.type, p.bytes);
      return m.id;
    } catch (e) {
      this.log.warn(`gateway: could not pass mail ${i.n} to ${i.to_person}: ${(e as Error).message}`);
      return null;
    }
  }

  /** A delivery status notification to one of our bounce addresses: the mail it names bounced. */
  private async takeBounce(raw: Buffer, rcptTo: string[]): Promise<Refusal | undefined> {
    const today = day(this.now());
    if (this.store.bump(today, "bounces") > 10_000) return { code: 450, message: "4.7.1 too many bounces today" };
    const text = raw.subarray(0, 256 * 1024).toString("latin1").replace(/\r?\n[ \t]+/g, " "); // header lines unfolded
    for (const rcpt of rcptTo) {
      const token = /^bounce\+([0-9a-f]{20})$/.exec(this.ours(rcpt) ?? "")?.[1];
      const o = token ? this.store.outgoingByToken(token) : undefined;
      if (!o || o.state !== "sent") {
        this.decision("dropped-in", "<>", `a bounce for no mail of ours waiting for one (${oneLine(rcpt, 80)})`);
        continue;
      }
      const status = /^Status:\s*([245])\.(\d{1,3})\.(\d{1,3})/im.exec(text);
      const diag = oneLine(/^Diagnostic-Code:\s*([^\r\n]*)/im.exec(text)?.[1] ?? "", 200);
      if (status?.[1] === "5") {
        const note = `bounced: ${status[2] === "1" && status[3] === "1" ? "no such address" : "refused by the receiving side"}${diag ? ` (${diag})` : ""}`;
        this.store.setOutgoing(o.n, "bounced", note, this.now());
        this.decision("bounced", o.sender, `mail ${o.n} to ${o.to_addr}: ${note}`);
        await this.status(o.pigeon_id, "bounced", note, o.sender);
      } else {
        this.decision("delayed", o.sender, `mail ${o.n} to ${o.to_addr}: a delivery report ${status ? status.slice(1).join(".") : "without status"}`);
      }
    }
    return undefined;
  }
}

/**
 * A mail's text, or, when the Pigeon message is a drawing (stroke data), a line saying so and the
 * drawing as an SVG image drawn by the model from numbers and a fixed palette only: nothing in it
 * can be script or a link.
 */
function mailContent(body: string, sender: string): { text: string; attachments?: { filename: string; contentType: string; content: string }[] } {
  const strokes = decodeDrawing(body.trim());
  if (!strokes) return { text: body };
  return {
    text: `${sender} made a drawing for you in Pigeon, the school's messenger. It is attached as an image (drawing.svg).`,
    attachments: [{ filename: "drawing.svg", contentType: "image/svg+xml", content: drawingSvg(strokes) }],
  };
}

function headerText(raw: Buffer): string {
  const s = raw.subarray(0, 256 * 1024).toString("latin1");
  const end = s.search(/\r?\n\r?\n/);
  return end < 0 ? s : s.slice(0, end);
}

function sizeText(bytes: number): string {
  return bytes >= 1_000_000 ? `${(bytes / 1_000_000).toFixed(1)} MB` : bytes >= 1_000 ? `${Math.round(bytes / 1_000)} KB` : `${bytes} bytes`;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export { LOOP_HEADER };

/**
 * The picture type of an attachment by its first bytes (not by what the mail claims): PNG, JPEG, GIF or
 * WebP, the types Pigeon's apps show inline; anything else is not a picture here.
 */
export function pictureType(b: Uint8Array): string | undefined {
  const at = (i: number, ...bytes: number[]) => bytes.every((x, j) => b[i + j] === x);
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "image/png";
  if (at(0, 0xff, 0xd8, 0xff)) return "image/jpeg";
  if (at(0, 0x47, 0x49, 0x46, 0x38)) return "image/gif";
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return "image/webp";
  return undefined;
}
