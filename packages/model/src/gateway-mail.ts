// What travels between a laptop and a school's e-mail gateway inside ordinary Pigeon messages
// (docs/gateway.md). The gateway is a Pigeon person of its own (e.g. mail@kisumu-primary); a message to
// it is sealed like any other, and its body starts with a few header lines, then a blank line, then
// the text. Nothing in the sealed envelope changes: only the gateway reads these lines (it must: it
// turns them into e-mail). Pure: parsing and formatting only.
//
//   laptop -> gateway   "To: someone@example.org\nSubject: Hello\n[Re: <message id>]\n\ntext"
//   gateway -> laptop   "Mail-Status: sent|held|queued|refused|bounced\nFor: <message id>\n\nwhy, for people"
//                       "From: Name <someone@example.org>\nSubject: ...\nMail: <n>\n\ntext"   (a mail that came in)
//   teacher -> gateway  "approve 12" / "refuse 12 why" / "release 7" (held incoming) / "list"

/** The most characters of an outside address (RFC 5321 allows 254). */
export const MAX_MAIL_ADDRESS_CHARS = 254;
export const MAX_SUBJECT_CHARS = 200;

// One addr-spec, deliberately narrow: no quoted local parts, no comments, no IP literals, no spaces or
// control characters anywhere (so nothing in it can become a second header line).
const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** An outside e-mail address (lower-cased domain), or undefined when it is not one this gateway takes. */
export function parseMailAddress(text: string): string | undefined {
  if (typeof text !== "string") return undefined;
  const s = text.trim();
  if (s.length === 0 || s.length > MAX_MAIL_ADDRESS_CHARS) return undefined;
  const at = s.lastIndexOf("@");
  if (at <= 0 || at !== s.indexOf("@")) return undefined;
  const local = s.slice(0, at);
  const domain = s.slice(at + 1).toLowerCase();
  if (local.length > 64 || !LOCAL.test(local)) return undefined;
  const labels = domain.split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^[0-9]+$/.test(labels[labels.length - 1]!)) return undefined;
  return `${local}@${domain}`;
}

/**
 * Whether what a user typed as a recipient is an outside e-mail address rather than a Pigeon address.
 * Pigeon homes have no dot (kisumu-primary); e-mail domains have at least one.
 */
export function isMailAddress(text: string): boolean {
  return parseMailAddress(text) !== undefined;
}

/** Control characters (CR, LF, NUL, ...), line separators and bidi overrides become one space. */
export function oneLine(s: string, max: number): string {
  return [...String(s).replace(/[\p{C}\p{Zl}\p{Zp}]+/gu, " ").trim()].slice(0, max).join("");
}

export interface MailRequest {
  to: string;
  subject: string;
  /** The Pigeon id of a mail that came in, when this answers it (threading). */
  re?: string;
  text: string;
}

const MESSAGE_ID_RE = /^[0-9a-f]{8,64}$/;

export function formatMailRequest(r: MailRequest): string {
  const to = parseMailAddress(r.to);
  if (!to) throw new Error(`"${r.to}" is not an e-mail address the gateway can send to`);
  const lines = [`To: ${to}`, `Subject: ${oneLine(r.subject, MAX_SUBJECT_CHARS)}`];
  if (r.re !== undefined) {
    if (!MESSAGE_ID_RE.test(r.re)) throw new Error(`"${r.re}" is not a message id`);
    lines.push(`Re: ${r.re}`);
  }
  return `${lines.join("\n")}\n\n${r.text}`;
}

/** Splits "Key: value" lines up to the first blank line; undefined when the body does not start that way. */
function headerBlock(body: string): { headers: Map<string, string>; text: string } | undefined {
  const end = body.indexOf("\n\n");
  const head = end < 0 ? body : body.slice(0, end);
  const text = end < 0 ? "" : body.slice(end + 2);
  const headers = new Map<string, string>();
  for (const line of head.split("\n")) {
    const m = /^([A-Za-z-]{1,20}):[ \t]*(.*)$/.exec(line.replace(/\r$/, ""));
    if (!m) return undefined;
    const key = m[1]!.toLowerCase();
    if (headers.has(key)) return undefined; // two To: lines: refused rather than guessed
    headers.set(key, m[2]!);
  }
  return { headers, text };
}

/** A laptop's request to send an e-mail, or the reason it is not one. */
export function parseMailRequest(body: string): { ok: true; request: MailRequest } | { ok: false; reason: string } {
  const block = headerBlock(String(body));
  if (!block || !block.headers.has("to")) return { ok: false, reason: "a message to the gateway starts with a line 'To: someone@example.org'" };
  for (const k of block.headers.keys())
    if (k !== "to" && k !== "subject" && k !== "re") return { ok: false, reason: `unknown line '${k}:' (only To, Subject and Re)` };
  const to = parseMailAddress(block.headers.get("to")!);
  if (!to) return { ok: false, reason: `"${oneLine(block.headers.get("to")!, 80)}" is not an e-mail address` };
  const re = block.headers.get("re")?.trim();
  if (re !== undefined && !MESSAGE_ID_RE.test(re)) return { ok: false, reason: "the Re: line must be the id of a mail you received" };
  const subject = oneLine(block.headers.get("subject") ?? "", MAX_SUBJECT_CHARS);
  if (block.text.trim() === "") return { ok: false, reason: "the mail has no text" };
  return { ok: true, request: { to, subject, ...(re ? { re } : {}), text: block.text } };
}

export type MailState = "queued" | "held" | "sent" | "refused" | "bounced";
const STATES: readonly MailState[] = ["queued", "held", "sent", "refused", "bounced"];

export interface MailStatus {
  state: MailState;
  /** The Pigeon id of the message this is about. */
  for: string;
  /** For people: "left the school by e-mail", "bounced: no such address". */
  note: string;
}

export function formatMailStatus(s: MailStatus): string {
  return `Mail-Status: ${s.state}\nFor: ${s.for}\n\n${s.note}`;
}

export function parseMailStatus(body: string): MailStatus | undefined {
  const block = headerBlock(String(body));
  const state = block?.headers.get("mail-status")?.trim() as MailState | undefined;
  const id = block?.headers.get("for")?.trim();
  if (!block || !state || !STATES.includes(state) || !id || !MESSAGE_ID_RE.test(id)) return undefined;
  return { state, for: id, note: block.text };
}

/**
 * The gateway's word that a message of the laptop's reached it only after it had forgotten that part
 * of the conversation, so it was not read: it names the sealed envelope (the gateway never opened it,
 * so it knows no message id). The laptop writes the messages of that envelope again by itself.
 */
export interface UnreadNotice {
  /** Hex id of the envelope that was not read. */
  envelope: string;
  note: string;
}

export function formatUnreadNotice(n: UnreadNotice): string {
  return `Mail-Unread: ${n.envelope}\n\n${n.note}`;
}

export function parseUnreadNotice(body: string): UnreadNotice | undefined {
  const block = headerBlock(String(body));
  const envelope = block?.headers.get("mail-unread")?.trim();
  if (!block || block.headers.size !== 1 || !envelope || !/^[0-9a-f]{32,128}$/.test(envelope)) return undefined;
  return { envelope, note: block.text };
}

export interface IncomingMail {
  /** "Name <a@b.org>" as the gateway shows it (one line). */
  from: string;
  subject: string;
  /** The gateway's number for this mail (moderation, logs). */
  mail: number;
  text: string;
}

export function formatIncomingMail(m: IncomingMail): string {
  return `From: ${oneLine(m.from, 300)}\nSubject: ${oneLine(m.subject, MAX_SUBJECT_CHARS)}\nMail: ${m.mail}\n\n${m.text}`;
}

export function parseIncomingMail(body: string): IncomingMail | undefined {
  const block = headerBlock(String(body));
  const mail = Number(block?.headers.get("mail"));
  if (!block || !block.headers.has("from") || !Number.isSafeInteger(mail) || mail < 1) return undefined;
  return { from: block.headers.get("from")!, subject: block.headers.get("subject") ?? "", mail, text: block.text };
}

/** What a teacher can write to the gateway. */
export type ModerationCommand =
  | { verb: "approve" | "release"; n: number }
  | { verb: "refuse" | "discard"; n: number; why: string }
  | { verb: "list" };

export function parseModerationCommand(body: string): ModerationCommand | undefined {
  const s = String(body).trim();
  if (/^list$/i.test(s)) return { verb: "list" };
  const m = /^(approve|release|refuse|discard)\s+#?([0-9]{1,9})(?:\s+([\s\S]*))?$/i.exec(s);
  if (!m) return undefined;
  const verb = m[1]!.toLowerCase() as "approve" | "release" | "refuse" | "discard";
  const n = Number(m[2]);
  if (verb === "approve" || verb === "release") return m[3]?.trim() ? undefined : { verb, n };
  return { verb, n, why: oneLine(m[3] ?? "", 200) };
}
