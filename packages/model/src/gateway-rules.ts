// The school's rules for its e-mail gateway (docs/gateway.md, "The rules file"): who may send, to
// whom, how much, and what is held for a teacher. The school writes them as JSON; the school server
// signs them with the school key (`pigeon school sign-rules`), and the gateway takes only rules signed
// by the key of the school it is enrolled in. Pure: validation, signing and checking.
import { fromBase64, toBase64, utf8 } from "./bytes.js";
import { sign, verify } from "./crypto.js";
import { validHome, validName } from "./identity.js";
import { parseMailAddress } from "./gateway-mail.js";
import { validClass, type SchoolKey } from "./school.js";

export interface GatewayRules {
  version: 1;
  /** The school's home: rules of another school are refused. */
  school: string;
  /** The mail domain: person `amina@kisumu-primary` is `amina@<domain>` outside. */
  domain: string;
  /** The school's own counter: a gateway never goes back to older rules. */
  serial: number;
  teachers: {
    /** Teachers may send to any address (true), or only to their allow list (false). */
    anyAddress: boolean;
    perDay: number;
  };
  students: {
    /** Classes whose pupils may send at all (to allowed addresses only); others may not. */
    classes: string[];
    /** A pupil's mail waits for a teacher's approval before it leaves. */
    moderated: boolean;
    perDay: number;
  };
  /**
   * Outside addresses allowed, per "class:NAME", "person:NAME" or "*" (everyone): exact addresses or
   * "@domain" for a whole domain. A pupil may write only to these, and mail from anyone else to a pupil
   * is held for a teacher.
   */
  allow: Record<string, string[]>;
  /** Mail from one outside sender taken per day (past it: refused at the SMTP door). */
  inboundPerSenderPerDay: number;
  /** Largest mail taken from outside (SMTP SIZE), bytes. */
  maxMailBytes: number;
  /**
   * Attachments never travel into Pigeon (messages are text): "note" removes them and says so, "hold"
   * holds a pupil's mail that has any for a teacher, "refuse" refuses at the SMTP door a mail with any
   * to a pupil (the sender is told). Mail to teachers is always "note".
   */
  attachments: "note" | "hold" | "refuse";
  /** Plain text of sent or refused mail is erased after this many hours (state and log stay). */
  keepHours: number;
}

export class RulesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RulesError";
  }
}

const posInt = (n: unknown, max: number) => Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= max;

/** Checks untrusted JSON and returns the rules, or throws a RulesError that says what is wrong. */
export function parseGatewayRules(json: unknown): GatewayRules {
  const r = json as Partial<GatewayRules> | null;
  const bad = (why: string): never => {
    throw new RulesError(`gateway rules: ${why}`);
  };
  if (!r || typeof r !== "object" || Array.isArray(r)) bad("not a JSON object");
  if (r!.version !== 1) bad("version must be 1");
  if (typeof r!.school !== "string" || !validHome(r!.school)) bad("school must be the school's home, e.g. kisumu-primary");
  if (typeof r!.domain !== "string" || !parseMailAddress(`x@${r!.domain}`)) bad("domain must be a mail domain, e.g. kisumu-primary.example");
  if (!posInt(r!.serial, Number.MAX_SAFE_INTEGER) || r!.serial! < 1) bad("serial must be a positive integer");
  const t = r!.teachers;
  if (!t || typeof t.anyAddress !== "boolean" || !posInt(t.perDay, 10_000)) bad("teachers needs anyAddress (true/false) and perDay (0..10000)");
  const s = r!.students;
  if (!s || !Array.isArray(s.classes) || !s.classes.every((c) => typeof c === "string" && validClass(c)) || typeof s.moderated !== "boolean" || !posInt(s.perDay, 1000))
    bad("students needs classes (a list of class names), moderated (true/false) and perDay (0..1000)");
  const allow = r!.allow;
  if (!allow || typeof allow !== "object" || Array.isArray(allow)) bad("allow must be an object");
  for (const [k, list] of Object.entries(allow!)) {
    const ok = k === "*" || (k.startsWith("class:") && validClass(k.slice(6))) || (k.startsWith("person:") && validName(k.slice(7)));
    if (!ok) bad(`allow key ${JSON.stringify(k)} is not "*", "class:NAME" or "person:NAME"`);
    if (!Array.isArray(list) || list.length > 1000) bad(`allow ${k} must be a list (at most 1000)`);
    for (const a of list) if (typeof a !== "string" || !(a.startsWith("@") ? parseMailAddress(`x${a}`) : parseMailAddress(a)))
      bad(`allow ${k}: ${JSON.stringify(a)} is neither an address nor @domain`);
  }
  if (!posInt(r!.inboundPerSenderPerDay, 100_000)) bad("inboundPerSenderPerDay must be 0..100000");
  if (!posInt(r!.maxMailBytes, 100 * 1024 * 1024) || r!.maxMailBytes! < 1024) bad("maxMailBytes must be 1024..104857600");
  if (r!.attachments !== "note" && r!.attachments !== "hold" && r!.attachments !== "refuse") bad('attachments must be "note", "hold" or "refuse"');
  if (!posInt(r!.keepHours, 24 * 365)) bad("keepHours must be 0..8760");
  return {
    version: 1, school: r!.school!, domain: r!.domain!.toLowerCase(), serial: r!.serial!,
    teachers: { anyAddress: t!.anyAddress, perDay: t!.perDay },
    students: { classes: [...s!.classes], moderated: s!.moderated, perDay: s!.perDay },
    allow: Object.fromEntries(Object.entries(allow!).map(([k, l]) => [k, l.map((a) => a.toLowerCase())])),
    inboundPerSenderPerDay: r!.inboundPerSenderPerDay!, maxMailBytes: r!.maxMailBytes!, attachments: r!.attachments!, keepHours: r!.keepHours!,
  };
}

/** Who is writing: as the school's directory says. */
export interface MailWriter {
  name: string;
  role: "student" | "teacher";
  class: string;
}

/** Whether an address is on the lists for this person (everyone's, her class's, her own): exact or @domain. */
export function addressAllowed(rules: GatewayRules, address: string, name: string, cls: string): boolean {
  const a = address.toLowerCase();
  const domain = a.slice(a.indexOf("@"));
  const lists = [rules.allow["*"], rules.allow[`class:${cls}`], rules.allow[`person:${name}`]];
  return lists.some((l) => l?.some((x) => x === a || x === domain));
}

/**
 * Whether the rules let this person write to this address, and why not: the same answer on a laptop
 * (before anything leaves, offline) and on the gateway (which decides). Quotas are the gateway's alone.
 */
export function mayMail(rules: GatewayRules, who: MailWriter, address: string): { ok: true } | { ok: false; reason: string } {
  if (who.role === "student" && !rules.students.classes.includes(who.class)) return { ok: false, reason: `pupils of class ${who.class} may not send e-mail` };
  if ((who.role === "student" || !rules.teachers.anyAddress) && !addressAllowed(rules, address, who.name, who.class))
    return { ok: false, reason: `${address} is not on your school's list of addresses you may write to` };
  return { ok: true };
}

/** The signed rules file: the rules' exact JSON text, and the school's signature over it. */
export interface SignedRulesFile {
  version: 1;
  rules: string;
  signature: string; // base64
}

const RULES_TAG = utf8("pigeon-gateway-rules-v1\0");

const signed = (text: string) => {
  const t = utf8(text);
  const b = new Uint8Array(RULES_TAG.length + t.length);
  b.set(RULES_TAG);
  b.set(t, RULES_TAG.length);
  return b;
};

/** The school server signs rules (checked first: the school never signs rules a gateway would refuse). */
export function signGatewayRules(school: SchoolKey, rulesJson: string): SignedRulesFile {
  const rules = parseGatewayRules(JSON.parse(rulesJson));
  if (rules.school !== school.home) throw new RulesError(`gateway rules: these rules are for ${rules.school}, this is the school ${school.home}`);
  return { version: 1, rules: rulesJson, signature: toBase64(sign(school.signing.seed, signed(rulesJson))) };
}

/** The gateway checks a signed rules file against its school's key (from the directory it was enrolled with). */
export function openGatewayRules(file: unknown, schoolKey: Uint8Array, home: string): GatewayRules {
  const f = file as Partial<SignedRulesFile> | null;
  if (!f || typeof f !== "object" || f.version !== 1 || typeof f.rules !== "string" || typeof f.signature !== "string")
    throw new RulesError("gateway rules: not a signed rules file (pigeon school sign-rules makes one)");
  const sig = fromBase64(f.signature);
  if (sig.length !== 64 || !verify(schoolKey, signed(f.rules), sig)) throw new RulesError("gateway rules: the school's signature does not match");
  let json: unknown;
  try {
    json = JSON.parse(f.rules);
  } catch {
    throw new RulesError("gateway rules: the signed text is not JSON");
  }
  const rules = parseGatewayRules(json);
  if (rules.school !== home) throw new RulesError(`gateway rules: signed for ${rules.school}, this gateway is of ${home}`);
  return rules;
}
