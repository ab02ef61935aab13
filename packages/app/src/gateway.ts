// The e-mail gateway in the pigeon command (docs/gateway.md): `pigeon start --gateway FILE` runs the
// gateway on the node of this data directory (which must be enrolled in its school), `pigeon gateway
// ...` reads and decides its moderation queue on the server, and on laptops what a mail to an
// outside address looks like (the notice, the outbox's e-mail states).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fromHex, openGatewayRules, parseMailStatus, type MailStatus } from "@pigeon/model";
import { isIP } from "node:net";
// only a gateway's node loads it: nodemailer, smtp-server and mailparser are ~15 MB resident that
// every other laptop would carry for nothing (issue 20, idle memory)
import type { Gateway, GatewayStore } from "@pigeon/gateway";
import type { Log, MessageView, PigeonNode } from "@pigeon/sync";

/** What a user is told before a message to an outside address leaves their laptop. */
export function gatewayNotice(gateway: string, to: string): string {
  return (
    `This message goes to ${to} on the Internet through your school's e-mail gateway ${gateway}.\n` +
    `The gateway reads its text (it must, to turn it into e-mail), checks it against the school's rules\n` +
    `(a teacher may have to approve it first) and keeps it only until it has left. Its state comes back to\n` +
    `your outbox ("left the school by e-mail", "bounced").`
  );
}

/** The newest e-mail state the gateway sent back for each of the user's messages (by message id). */
export function mailStatuses(received: MessageView[]): Map<string, MailStatus> {
  const byId = new Map<string, MailStatus>();
  const sorted = [...received].sort((a, b) => (a.arrivalSeq ?? 0) - (b.arrivalSeq ?? 0));
  for (const m of sorted) {
    const s = parseMailStatus(m.body);
    if (s) byId.set(s.for, s);
  }
  return byId;
}

/** The gateway's configuration file (JSON); paths are relative to the file. */
export interface GatewayConfig {
  /** The signed rules file (pigeon school sign-rules on the school server). */
  rules: string;
  /** The gateway's mail host name (EHLO, banner), e.g. mail.kisumu-primary.example. */
  hostname: string;
  smtpIn: { listen: string; port: number; key: string; cert: string };
  smtpOut: { host: string; port: number; servername?: string; ca?: string; requireTLS?: boolean; user?: string; passwordFile?: string };
  dkim: { selector: string; key: string };
  /** DNS servers asked for incoming mail's SPF, DKIM and DMARC records ("198.18.0.5", "[::1]:53"); default: the system's. */
  dns?: string[];
  /**
   * Keep the text of finished mail (in gateway.db and the gateway's Pigeon conversations) at most this
   * many seconds: shorter than the rules' keepHours, never longer (the school's rule stays the limit).
   */
  keepSeconds?: number;
}

export class GatewayConfigError extends Error {}

function readConfig(file: string): GatewayConfig {
  let c: Partial<GatewayConfig>;
  try {
    c = JSON.parse(readFileSync(file, "utf8")) as Partial<GatewayConfig>;
  } catch (e) {
    throw new GatewayConfigError(`gateway config ${file}: ${(e as Error).message}`);
  }
  const bad = (why: string): never => {
    throw new GatewayConfigError(`gateway config ${file}: ${why} (docs/gateway.md shows one)`);
  };
  if (!c || typeof c !== "object") bad("not a JSON object");
  if (typeof c.rules !== "string") bad('"rules" must name the signed rules file');
  if (typeof c.hostname !== "string" || !/^[a-z0-9.-]{1,253}$/i.test(c.hostname)) bad('"hostname" must be the gateway\'s mail host name');
  const i = c.smtpIn;
  if (!i || typeof i.listen !== "string" || !Number.isInteger(i.port) || typeof i.key !== "string" || typeof i.cert !== "string")
    bad('"smtpIn" needs listen, port, key and cert');
  const o = c.smtpOut;
  if (!o || typeof o.host !== "string" || !Number.isInteger(o.port)) bad('"smtpOut" needs host and port (the smarthost)');
  if (!c.dkim || typeof c.dkim.selector !== "string" || typeof c.dkim.key !== "string") bad('"dkim" needs selector and key');
  if (c.dns !== undefined && (!Array.isArray(c.dns) || !c.dns.every((d) => typeof d === "string" && isIP(d.replace(/^\[(.*)\](:\d+)?$/, "$1").replace(/^([\d.]+):\d+$/, "$1")) !== 0)))
    bad('"dns" must list DNS server addresses');
  if (c.keepSeconds !== undefined && !(typeof c.keepSeconds === "number" && c.keepSeconds >= 0 && Number.isFinite(c.keepSeconds)))
    bad('"keepSeconds" must be a number of seconds');
  return c as GatewayConfig;
}

export interface RunningGateway {
  gateway: Gateway;
  smtpPort: number;
  domain: string;
  stop(): Promise<void>;
}

/** Starts the gateway on a running node: checks the rules' signature against the node's school first. */
export async function startGateway(node: PigeonNode, dataDir: string, configFile: string, log: Log): Promise<RunningGateway> {
  const file = resolve(configFile);
  const c = readConfig(file);
  const at = (p: string) => resolve(dirname(file), p);
  const read = (p: string, what: string) => {
    try {
      return readFileSync(at(p), "utf8");
    } catch (e) {
      throw new GatewayConfigError(`gateway config: cannot read the ${what} ${at(p)}: ${(e as Error).message}`);
    }
  };
  const school = node.mailbox.school.view();
  if (!school || school.server)
    throw new GatewayConfigError("the gateway runs on a node enrolled in its school (its own data directory: pigeon enrol TOKEN), not on the school server's node itself");
  let rulesFile: unknown;
  try {
    rulesFile = JSON.parse(read(c.rules, "rules file"));
  } catch (e) {
    if (e instanceof GatewayConfigError) throw e;
    throw new GatewayConfigError(`gateway rules ${at(c.rules)}: ${(e as Error).message}`);
  }
  const rules = openGatewayRules(rulesFile, fromHex(school.schoolKey), school.home);
  const { Gateway, GatewayStore, SmtpIn, SmtpOut, dnsResolver } = await import("@pigeon/gateway");
  const store = new GatewayStore(join(dataDir, "gateway.db"));
  const out = new SmtpOut({
    host: c.smtpOut.host, port: c.smtpOut.port, name: c.hostname, loopHeaderValue: rules.domain,
    ...(c.smtpOut.servername ? { servername: c.smtpOut.servername } : {}),
    ...(c.smtpOut.ca ? { ca: read(c.smtpOut.ca, "smarthost CA") } : {}),
    ...(c.smtpOut.requireTLS === false ? { requireTLS: false } : {}),
    ...(c.smtpOut.user && c.smtpOut.passwordFile ? { auth: { user: c.smtpOut.user, pass: read(c.smtpOut.passwordFile, "smarthost password").trim() } } : {}),
    dkim: { domainName: rules.domain, keySelector: c.dkim.selector, privateKey: read(c.dkim.key, "DKIM key") },
  });
  const gateway = new Gateway({
    node, rules, transport: out, store, log, tickMs: Number(process.env.PIGEON_GATEWAY_TICK_MS) || undefined,
    resolver: dnsResolver(c.dns), hostname: c.hostname, ...(c.keepSeconds !== undefined ? { keepMs: c.keepSeconds * 1000 } : {}),
  });
  await gateway.start();
  const door = new SmtpIn(gateway, { host: c.smtpIn.listen, port: c.smtpIn.port, name: c.hostname, key: read(c.smtpIn.key, "TLS key"), cert: read(c.smtpIn.cert, "TLS certificate") });
  let smtpPort: number;
  try {
    smtpPort = await door.listen();
  } catch (e) {
    await gateway.stop();
    out.close();
    store.close();
    throw new GatewayConfigError(`the gateway cannot take mail on ${c.smtpIn.listen}:${c.smtpIn.port}: ${(e as Error).message}`);
  }
  log.info(`e-mail gateway for ${rules.domain} (rules ${rules.serial}): SMTP in on ${c.smtpIn.listen}:${smtpPort}, out through ${c.smtpOut.host}:${c.smtpOut.port}`);
  return {
    gateway, smtpPort, domain: rules.domain,
    stop: async () => {
      await door.close();
      await gateway.stop();
      out.close();
      store.close();
    },
  };
}

/** The gateway's records, for `pigeon gateway ...` on the server (the running gateway applies decisions). */
export async function openGatewayStore(dataDir: string): Promise<GatewayStore | undefined> {
  const f = join(dataDir, "gateway.db");
  return existsSync(f) ? new (await import("@pigeon/gateway")).GatewayStore(f) : undefined;
}
