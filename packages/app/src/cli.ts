#!/usr/bin/env -S node --max-old-space-size=192
// The `pigeon` command. `pigeon start` runs the node; every other command asks the running node
// over loopback (see control.ts), or, with no node running, opens the data directory's mailbox
// itself (offline.ts), and prints what it says, readably or as JSON with --json.
import "./wasm-tiering.js"; // first: before Automerge's WebAssembly is compiled
import { createInterface } from "node:readline/promises";
import { isIP } from "node:net";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  DEFAULT_HOME, deviceId, formatMailRequest, isMailAddress, parseIncomingMail, signGatewayRules, fingerprint, formatAddress, newDeviceIdentity, normalPairingCode, pairingLinkSecret, PairingError, parseAddress, serializeIdentity, validHome,
  validName,
} from "@pigeon/model";
import { MdnsDiscovery, parseHostPort, StaticPeers, WsNetwork } from "@pigeon/peers";
import {
  chooseDataDir, ConfigError, createIdentity, describeDataDir, ensureDataDir, hasIdentity, identityPath, loadIdentity, renameIdentity,
  runningNode, writeFileAtomic, type DataDirChoice,
} from "./data-dir.js";
import { HttpError, mailboxRoutes, offlineRoute } from "./control.js";
import type { ControlApi, Endpoint, Status } from "./control-api.js";
import { NodeIsRunning, withOfflineMailbox } from "./offline.js";
import { MailboxError, pairDevice, tryLockMailbox, type MailboxLock, type MessageView, type PeerFinder } from "@pigeon/sync";
import { startNode } from "./daemon.js";
import {
  checkName, checkOptionsFor, COMMANDS, HELP, int, listenAddress, NAME_RULE, parseCommandLine, UsageError, type Values,
} from "./command-line.js";
import { parseOrigin } from "./http-guard.js";
import { ensureSchoolKey, loadSchoolKey, schoolRoutes } from "./school.js";
import { gatewayNotice, mailStatuses, openGatewayStore } from "./gateway.js";
import { schoolCommand } from "./school-command.js";
import { RELAY_CARRY_QUOTA_MB, ensureRelay, formatRoutes, parseFederate, relayContactsPath, toBase64 } from "./relay.js";
import { MULE_CARRY_QUOTA_MB, MULE_HOME, muleName } from "./mule.js";
import { ensureCredentials, setPassword } from "@pigeon/xmpp";
import {
  formatBuddies, formatChannel, formatChannels, formatContacts, formatDevices, formatDrafts, formatInbox, formatMessages, formatNearby, formatOutbox, formatPeers, formatRequests,
  formatSent, formatShown, formatStatus, formatWhoami,
} from "./format.js";

class NotRunning extends Error {}
/** The node (or the mailbox) said no; `code` is its reason, e.g. "not-found". */
class Refused extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}
/** Nothing to read or ask: no identity in the data directory yet. */
class NoIdentity extends Error {}

async function askName(): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    for (;;) {
      const answer = (await rl.question("What is your name? (letters and digits, e.g. amara) ")).trim().toLowerCase();
      if (validName(answer)) return answer;
      console.log(`  Please use ${NAME_RULE}.`);
    }
  } finally {
    rl.close();
  }
}

async function start(v: Values): Promise<number> {
  const where = chooseDataDir(v.data);
  const dataDir = where.dir;
  // Everything the user typed is checked first: a mistake must not leave an identity or a folder behind.
  const allowOrigins = (v["allow-origin"] ?? []).map((u) => {
    try {
      return parseOrigin(u);
    } catch (e) {
      throw new UsageError(`--allow-origin ${(e as Error).message}`);
    }
  });
  const mule = v.mule === undefined ? undefined : muleName(v.mule);
  if (mule !== undefined && (v.school !== undefined || v["relay-point"] !== undefined || v.home !== undefined))
    throw new UsageError("--mule is a node that travels between villages: it is no school server, relay point or village's laptop (no --school, --relay-point or --home)");
  // a mule's name is its label (relay points show it), whatever --name says
  const name = mule ?? (v.name === undefined ? undefined : checkName(v.name, "--name"));
  const schoolHome = v.school === undefined ? undefined : v.school.trim().toLowerCase();
  if (schoolHome !== undefined && !validHome(schoolHome))
    throw new UsageError(`--school "${v.school}" is not a valid school home: letters, digits and '-', e.g. kisumu-primary`);
  // a school server's own identity defaults to school@HOME, a relay point's box's to relay@HOME
  const relayHomeGiven = v["relay-point"]?.trim().toLowerCase();
  const home = mule !== undefined ? MULE_HOME : v.home === undefined ? (schoolHome ?? relayHomeGiven) : v.home.trim().toLowerCase();
  if (home !== undefined && !validHome(home)) throw new UsageError(`--home "${v.home}" is not a valid home: letters, digits and '-', e.g. kisumu-primary`);
  const port = int(v.port, "port", 0, 65535);
  const controlPort = int(v["control-port"], "control-port", 0, 65535);
  const hopLimit = int(v["hop-limit"], "hop-limit", 0, 64);
  if (v.meet !== undefined && v.meet !== "anyone" && v.meet !== "school")
    throw new UsageError(`--meet "${v.meet}" is not anyone or school`);
  const relayHome = v["relay-point"]?.trim().toLowerCase();
  if (relayHome !== undefined && !validHome(relayHome)) throw new UsageError(`--relay-point "${v["relay-point"]}" is not a village's home, e.g. kisumu-primary`);
  if (v.federate?.length && relayHome === undefined) throw new UsageError("--federate is for a relay point: give --relay-point HOME too");
  if (v["relay-grant"] !== undefined && relayHome === undefined) throw new UsageError("--relay-grant is for a relay point: give --relay-point HOME too");
  for (const f of v.federate ?? []) {
    try {
      parseFederate(f);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  // a relay point links with other villages' relay points and mules, which share no school secret with it
  const meetStrangers = v.meet === undefined ? (relayHome !== undefined || mule !== undefined ? true : undefined) : v.meet === "anyone";
  const copies = int(v.copies, "copies", 1, 256);
  // a relay point keeps its village's mail and other villages' far longer than a laptop: a larger store
  const carryQuotaMb =
    int(v["carry-quota"], "carry-quota", 1, 1_000_000) ?? (relayHome !== undefined ? RELAY_CARRY_QUOTA_MB : mule !== undefined ? MULE_CARRY_QUOTA_MB : undefined);
  const announceGap = int(v["announce-gap"], "announce-gap", 1, 86_400);
  const announceLifetime = int(v["announce-lifetime"], "announce-lifetime", 10, 7 * 86_400);
  if ((announceGap !== undefined || announceLifetime !== undefined) && relayHome === undefined)
    throw new UsageError("--announce-gap and --announce-lifetime are for a relay point: give --relay-point HOME too");
  const xmppPort = int(v["xmpp-port"], "xmpp-port", 0, 65535);
  const listen = listenAddress(v.listen, "listen");
  const xmppListen = listenAddress(v["xmpp-listen"], "xmpp-listen");
  for (const p of v.peer ?? []) {
    try {
      parseHostPort(p);
    } catch (e) {
      throw new UsageError(`--peer ${(e as Error).message}`);
    }
  }
  for (const a of v["mdns-interface"] ?? [])
    if (isIP(a) !== 4) throw new UsageError(`--mdns-interface must be the IPv4 address of one of this laptop's networks, not "${a}"`);

  const running = runningNode(dataDir);
  if (running) {
    console.error(`pigeon: a node is already running for ${dataDir} (pid ${running.pid})`);
    return 1;
  }
  // Without an identity the name is needed first (asked before anything is written).
  let firstName = name ?? (schoolHome !== undefined ? "school" : relayHomeGiven !== undefined ? "relay" : undefined);
  if (!hasIdentity(dataDir) && firstName === undefined) {
    // Never the login name: school laptops share one login, and everyone would get the same address.
    if (!process.stdin.isTTY)
      throw new UsageError(
        `Pigeon needs your name the first time it starts. Give it with --name, e.g.: ${startCommand(where)} --name amara\n` +
          `  (${NAME_RULE}; the computer's login name is not used, because children often share one)`,
      );
    firstName = await askName();
  }
  ensureDataDir(dataDir);
  // a school server: the school key, made on the first start (a later start with another home is refused)
  let school = loadSchoolKey(dataDir);
  if (schoolHome !== undefined) {
    const made = ensureSchoolKey(dataDir, schoolHome);
    school = made.school;
    if (made.created) console.log(`created the school key of ${schoolHome} in ${dataDir} (school.json: keep a copy somewhere safe)`);
  }
  // The node holds the mailbox lock for its whole life, so no \`pigeon\` command opens the store beside it.
  const lock = await lockForNode(where);
  if (!lock) return 1;
  let identity;
  if (hasIdentity(dataDir)) {
    identity = loadIdentity(dataDir);
    if ((name && name !== identity.name) || (home && home !== identity.home))
      console.log(`note: this data directory belongs to ${identity.name}@${identity.home}; --name and --home are only for the first start (to change the name: pigeon rename NEWNAME)`);
  } else {
    identity = createIdentity(dataDir, firstName!, home ?? DEFAULT_HOME);
    console.log(`created identity ${identity.name}@${identity.home} in ${dataDir}`);
  }
  const relay =
    relayHome !== undefined
      ? {
          ...ensureRelay(dataDir, relayHome, school, v.federate ?? [], v["relay-grant"]),
          contactsFile: relayContactsPath(dataDir),
          ...(announceGap !== undefined ? { announceGapMs: announceGap * 1000 } : {}),
          ...(announceLifetime !== undefined ? { announceLifetimeSeconds: announceLifetime } : {}),
        }
      : undefined;
  const node = await startNode({
    ...(relay ? { relay } : {}),
    dataDir,
    identity,
    listen,
    port,
    controlPort,
    peers: v.peer,
    mdns: !v["no-mdns"],
    mdnsInterfaces: v["mdns-interface"],
    hopLimit,
    ...(meetStrangers !== undefined ? { meetStrangers } : {}),
    copies,
    carryQuotaBytes: carryQuotaMb === undefined ? undefined : carryQuotaMb * 1024 * 1024,
    xmpp: !v["no-xmpp"],
    xmppPort,
    xmppListen,
    allowOrigins,
    ...(school ? { school } : {}),
    ...(v.gateway ? { gateway: v.gateway } : {}),
  });
  if (mule !== undefined)
    console.log(`a mule: ${identity.name}@${identity.home} carries mail between villages' relay points, which call it "the ${identity.name.replace(/[-_.]+/g, " ")}"`);
  if (node.gateway) console.log(`e-mail gateway for ${node.gateway.domain}: SMTP on port ${node.gateway.smtpPort}`);
  if (school) console.log(`school server of ${school.home} (school key fingerprint ${fingerprint(school.signing.publicKey)})`);
  if (relay && !school)
    console.log(
      `relay point of ${relay.home} (certified by its school server), exchanging mail with ${[...relay.federation.keys()].filter((h) => h !== relay.home).join(", ") || "no other village yet"}; ` +
        `other villages' relay points add: --federate ${relay.home}=${toBase64(relay.certificate.schoolKey)}`,
    );
  if (relay && school)
    console.log(
      `relay point of ${relay.home}, exchanging mail with ${[...relay.federation.keys()].filter((h) => h !== relay.home).join(", ") || "no other village yet"}; ` +
        `other villages' relay points add: --federate ${relay.home}=${toBase64(school.signing.publicKey)}`,
    );
  // A background write that fails (e.g. automerge-repo's own save when the disk is full) must not
  // take the node down: log it and keep serving what is already stored.
  process.on("unhandledRejection", (e) => node.log.warn(`background task failed: ${(e as Error)?.message ?? String(e)}`));
  const onSignal = () => void node.stop();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  if (node.appUrl) console.log(`Pigeon for you in this laptop's browser: ${node.appUrl}`);
  console.log("ready");
  await node.stopped;
  lock.release();
  if (node.damaged) {
    console.error(`pigeon: ${node.damaged.message}`);
    return 1;
  }
  return 0;
}

/** The mailbox lock for a starting node; waits while a `pigeon` command reads the mailbox. */
async function lockForNode(where: DataDirChoice): Promise<MailboxLock | undefined> {
  const end = Date.now() + 30_000;
  for (;;) {
    const lock = tryLockMailbox(where.dir);
    if (lock) return lock;
    const other = runningNode(where.dir);
    if (other) {
      console.error(`pigeon: a node is already running for ${where.dir} (pid ${other.pid})`);
      return undefined;
    }
    if (Date.now() > end) {
      console.error(`pigeon: the mailbox in ${where.dir} is in use (by another pigeon command, or a node that is starting); try again in a moment`);
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `pigeon pair CODE`: in an empty data directory, become another device of the person whose first
 * device shows the code. Listens and discovers like a node, asks every laptop it links to, saves the
 * identity the grant gives (this device's own key, the person's certificate for it) and stops.
 */
async function pair(where: DataDirChoice, code: string, v: Values): Promise<number> {
  try {
    normalPairingCode(code);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (hasIdentity(where.dir))
    throw new Refused(`${describeDataDir(where)} already holds an identity (${loadIdentity(where.dir).name}); pair into an empty data directory, e.g. pigeon pair ${code} --data ./tablet`);
  if (runningNode(where.dir)) throw new Refused(`a node is running for ${where.dir}; stop it first`);
  for (const p of v.peer ?? []) {
    try {
      parseHostPort(p);
    } catch (e) {
      throw new UsageError(`--peer ${(e as Error).message}`);
    }
  }
  const port = int(v.port, "port", 0, 65535);
  const device = newDeviceIdentity();
  // the device with the code lets this one in even if it shows itself to its schoolmates only
  const linkSecret = pairingLinkSecret(code);
  const network = new WsNetwork({
    identity: device, host: listenAddress(v.listen, "listen") ?? "0.0.0.0", port: port ?? 0,
    trust: { secrets: () => [linkSecret], showToStrangers: () => true },
  });
  const listening = await network.listen();
  const finders: PeerFinder[] = [];
  if (v.peer?.length) finders.push(new StaticPeers({ network, peers: v.peer }));
  if (!v["no-mdns"]) for (const iface of v["mdns-interface"]?.length ? v["mdns-interface"] : [undefined]) finders.push(new MdnsDiscovery({ port: listening.port, interface: iface }));
  console.error(`Looking for the device that shows ${code} ...`);
  try {
    const { identity, enrolment } = await pairDevice({ device, code, network, finders });
    ensureDataDir(where.dir);
    writeFileAtomic(identityPath(where.dir), JSON.stringify(serializeIdentity(identity), null, 2) + "\n");
    // the person's school enrolment comes with the grant: this device belongs to the school too
    if (enrolment) await withOfflineMailbox(where.dir, (m) => m.school.enrol(enrolment));
    const id = deviceId(identity.signing.publicKey);
    if (v.json) console.log(JSON.stringify({ address: formatAddress(identity), fingerprint: fingerprint(identity.person), device: id }, null, 2));
    else console.log(`This laptop is now a device of ${formatAddress(identity)} (fingerprint ${fingerprint(identity.person)}), device ${id}.\nStart it with: pigeon start${where.from === "--data" ? ` --data ${where.dir}` : ""}`);
    return 0;
  } catch (e) {
    if (e instanceof PairingError) throw new Refused(e.reason);
    throw e;
  } finally {
    await network.close();
  }
}

/**
 * An e-mail to an outside address: a message to the school's gateway whose first lines say where it
 * goes. Nothing leaves without --yes, after the user was told that the gateway reads it.
 */
async function sendMail(
  where: DataDirChoice, o: { to: string; text: string; subject: string; re?: string; via: string | undefined; yes: boolean },
  out: (value: unknown, readable: string) => void,
): Promise<number> {
  if (!hasIdentity(where.dir)) throw new NoIdentity(noIdentityMessage(where));
  const gateway = o.via ?? `mail@${loadIdentity(where.dir).home}`;
  checkAddress(gateway, "send");
  const notice = gatewayNotice(gateway, o.to);
  if (!o.yes) {
    console.error(`${notice}\nNothing was sent. To send it, say so: add --yes.`);
    return 2;
  }
  let body: string;
  try {
    body = formatMailRequest({ to: o.to, subject: o.subject, text: o.text, ...(o.re ? { re: o.re } : {}) });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const m = await (o.re
    ? call(where, "POST /api/reply", { id: o.re, body }, "Sending an e-mail")
    : call(where, "POST /api/send", { to: gateway, body }, "Sending an e-mail")).catch(usageIfBadInput);
  out({ ...m, mailTo: o.to, gateway }, `${notice}\n${formatSent(m)}`);
  return 0;
}

/** `pigeon gateway ...` on the gateway's data directory: its queue, its log, a teacher's decision. */
async function gatewayCommand(dataDir: string, rest: string[], out: (value: unknown, readable: string) => void): Promise<number> {
  const [action, n, ...why] = rest;
  const store = await openGatewayStore(dataDir);
  if (!store) throw new Refused(`${dataDir} holds no e-mail gateway (started with pigeon start --gateway CONFIG.json)`);
  try {
    if (action === undefined) {
      const p = { outgoing: store.outgoingIn("held"), incoming: store.incomingIn("held") };
      const lines = [
        ...p.outgoing.map((o) => `  mail ${o.n}: ${o.sender} to ${o.to_addr}  "${o.subject ?? ""}"  (approve ${o.n} / refuse ${o.n} WHY)\n    ${(o.body ?? "").split("\n").join("\n    ")}`),
        ...p.incoming.map((i) => `  held ${i.n}: from ${i.from_display} to ${i.to_person}  "${i.subject}"  ${i.note}  (release ${i.n} / discard ${i.n} WHY)`),
      ];
      out(p, lines.length ? `Waiting for a teacher (${lines.length})\n${lines.join("\n")}` : "Nothing waits for a teacher");
      return 0;
    }
    if (action === "log") {
      if (n !== undefined) throw new UsageError("gateway log takes nothing more");
      const log = store.logSince(0, 100_000);
      out(log, log.length ? log.map((l) => `  ${new Date(l.at).toISOString().slice(0, 19).replace("T", " ")}  ${l.decision}  ${l.who}  ${l.detail}`).join("\n") : "No decisions yet");
      return 0;
    }
    const verb = action as "approve" | "refuse" | "release" | "discard";
    if (!["approve", "refuse", "release", "discard"].includes(verb) || !n || !/^[0-9]{1,9}$/.test(n) || ((verb === "approve" || verb === "release") && why.length))
      throw new UsageError("gateway takes: (nothing) to list, log, approve N, refuse N WHY, release N, discard N WHY");
    const seq = store.requestDecision(verb, Number(n), why.join(" "), Date.now());
    const running = runningNode(dataDir);
    if (!running) {
      out({ queued: seq }, `The gateway is not running: "${verb} ${n}" is applied when it starts`);
      return 0;
    }
    const end = Date.now() + 15_000;
    for (;;) {
      const answer = store.decisionAnswer(seq);
      if (answer !== undefined) {
        out({ answer }, answer);
        return /^No /.test(answer) ? 1 : 0;
      }
      if (Date.now() > end) throw new Refused(`the gateway has not applied "${verb} ${n}" yet; it will at its next round`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    store.close();
  }
}

/** `pigeon school sign-rules RULES.json [--out FILE]`: the school key signs the gateway's rules. */
async function signRules(
  where: DataDirChoice, args: string[], v: Values, out: (value: unknown, readable: string) => void,
  publish: (text: string) => Promise<{ serial: number }>,
): Promise<number> {
  if (args.length !== 1) throw new UsageError("school sign-rules needs the rules file, e.g. pigeon school sign-rules gateway-rules.json");
  const school = loadSchoolKey(where.dir);
  if (!school) throw new Refused(`${describeDataDir(where)} holds no school key: sign the rules on the school server`);
  let text: string;
  try {
    text = readFileSync(args[0]!, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${args[0]}: ${(e as Error).message}`);
  }
  let signed;
  try {
    signed = signGatewayRules(school, text);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const target = v.out ?? args[0]!.replace(/(\.json)?$/, ".signed.json");
  writeFileAtomic(target, JSON.stringify(signed, null, 2) + "\n");
  const rules = JSON.parse(text) as { domain: string; serial: number };
  // with the school server running, the rules also go into the directory: they travel to every laptop
  // (which then tells a child before sending that an address is not allowed) and to the gateway (no restart)
  let entry: number | undefined;
  let why = "";
  if (runningNode(where.dir)) {
    try {
      entry = (await publish(text)).serial;
    } catch (e) {
      why = (e as Error).message;
    }
  } else why = "the school server is not running";
  out({ file: target, domain: rules.domain, serial: rules.serial, ...(entry !== undefined ? { entry } : {}) },
    `Signed the gateway rules ${rules.serial} for ${rules.domain} with the school key of ${school.home}: ${target}\n` +
    (entry !== undefined
      ? `They travel to the school's laptops and the gateway as directory entry ${entry}; the gateway takes them when they reach it.`
      : `Not sent to laptops (${why}): start the school server and sign again, or copy the file to the gateway and restart it.`));
  return 0;
}

/** `pigeon rename NEWNAME`: the same keys and fingerprint, a new name in identity.json. */
function rename(where: DataDirChoice, text: string): { address: string; was: string; fingerprint: string } {
  const name = checkName(text, "the new name");
  if (!hasIdentity(where.dir)) throw new NoIdentity(noIdentityMessage(where));
  const running = runningNode(where.dir);
  if (running)
    throw new Refused(`the node is running (pid ${running.pid}) and keeps the name it started with; stop it first (pigeon stop${where.from === "--data" ? ` --data ${where.dir}` : ""}), rename, then start it again`);
  const before = loadIdentity(where.dir);
  const after = renameIdentity(where.dir, name);
  return { address: formatAddress(after), was: formatAddress(before), fingerprint: fingerprint(after.person) };
}

/**
 * An address that cannot be one is bad usage (exit 2); an unknown but valid one is the node's answer.
 * What send accepts for "who" (as the mailbox's People.resolve does): name@home, a petname, a
 * fingerprint, or name@home#FPRT (narrowed by the start of a fingerprint). Drafts take name@home.
 */
function checkAddress(text: string, forms: "send" | "draft"): void {
  const typed = text.trim();
  if (forms === "send" && /^[a-z2-7]{4}-?[a-z2-7]{4}-?[a-z2-7]{4}-?[a-z2-7]{4}$/i.test(typed)) return;
  const hash = forms === "send" ? typed.indexOf("#") : -1;
  if (hash >= 0 && !/^[A-Z2-7]{1,16}$/i.test(typed.slice(hash + 1).replace(/-/g, "")))
    throw new UsageError(`"${text}": after '#' comes the start of a fingerprint (letters A-Z and digits 2-7)`);
  try {
    parseAddress(hash < 0 ? typed : typed.slice(0, hash));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The mailbox's "bad-input" (an empty or too long message, your own address, ...) is bad usage too. */
function usageIfBadInput(e: unknown): never {
  if (e instanceof Refused && e.code === "bad-input") throw new UsageError(e.message);
  throw e;
}

function noIdentityMessage(where: DataDirChoice): string {
  return `there is no Pigeon identity in the data directory ${describeDataDir(where)}; start your node once first: ${startCommand(where)} --name NAME`;
}

/**
 * Asks the running node; with none running, answers from the mailbox opened in this process
 * (offline.ts), with the same answer the node gives. Never opens the store while a node runs.
 */
async function ask<E extends Endpoint>(where: DataDirChoice, endpoint: E, body?: Record<string, unknown>): Promise<{ value: ControlApi[E]; offline: boolean }> {
  if (!runningNode(where.dir)) {
    if (!hasIdentity(where.dir)) throw new NoIdentity(noIdentityMessage(where));
    try {
      const value = await withOfflineMailbox(where.dir, async (mailbox) => {
        const route = offlineRoute({ ...mailboxRoutes(mailbox), ...schoolRoutes(mailbox, { dataDir: where.dir, running: false }) }, endpoint);
        if (!route) throw new Error(`${endpoint} has no answer without the node`);
        try {
          return (await route(body ?? {})) as ControlApi[E];
        } catch (e) {
          if (e instanceof HttpError || e instanceof MailboxError) throw new Refused(e.message, e.code);
          throw e;
        }
      });
      return { value, offline: true };
    } catch (e) {
      if (!(e instanceof NodeIsRunning)) throw e; // it started meanwhile: ask it
    }
  }
  return { value: await call(where, endpoint, body), offline: false };
}

/** How to start the node for this data directory, as the user would type it. */
function startCommand(where: DataDirChoice): string {
  return `pigeon start${where.from === "--data" ? ` --data ${where.dir}` : ""}`;
}

/** Calls the running node's control API; `needs` says what needs the node, when none runs. */
async function call<E extends Endpoint>(where: DataDirChoice, endpoint: E, body?: unknown, needs?: string): Promise<ControlApi[E]> {
  const [method, path] = endpoint.split(" ") as ["GET" | "POST", string];
  const dataDir = where.dir;
  const info = runningNode(dataDir);
  if (!info)
    throw new NotRunning(
      `${needs ? `${needs} needs your pigeon node running, and ` : ""}no pigeon node is running for the data directory ${describeDataDir(where)}; ` +
        `start one with: ${startCommand(where)}${needs ? ` (reading your messages works without it)` : ""}`,
    );
  let res: Response;
  // a GET's options go in its query (?last=100), as the control API reads them
  const query = method === "GET" && body !== undefined ? `?${new URLSearchParams(body as Record<string, string>)}` : "";
  try {
    res = await fetch(`http://127.0.0.1:${info.control.port}${path}${query}`, {
      method,
      headers: { authorization: `Bearer ${info.control.token}`, "content-type": "application/json" },
      body: body === undefined || method === "GET" ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new NotRunning(`the pigeon node for ${dataDir} (pid ${info.pid}) is not answering on 127.0.0.1:${info.control.port}`);
  }
  const value = (await res.json()) as unknown;
  if (!res.ok) {
    const err = value as { error?: string; message?: string };
    throw new Refused(err.message ?? `error ${res.status}`, err.error);
  }
  return value as ControlApi[E]; // the node answers with the shape control-api.ts gives this endpoint
}

/** Messages a folder listing shows unless told (--last N, --all). */
const FOLDER_SHOWN = 100;

const BUDDIES_USAGE =
  "buddies takes: add WHO, remove WHO, rename WHO NAME, block WHO, unblock WHO, group WHO GROUP, ungroup WHO GROUP " +
  '(or nothing, to list them); WHO is an address, your name for them or a fingerprint, e.g. pigeon buddies rename baraka@local bara';

const CHANNEL_USAGE =
  'channel takes: create NAME, add NAME WHO... (or add NAME --class 5B), remove NAME WHO..., admin NAME WHO, unadmin NAME WHO, close NAME; ' +
  'e.g. pigeon channel create "5B science"';

/** `pigeon channel ...`: start a channel, change who is in it, close it (through the node, or the data directory itself). */
async function channel(where: DataDirChoice, rest: string[], v: Values, out: (value: unknown, readable: string) => void): Promise<number> {
  const [action, name, ...who] = rest;
  if (!action || !name) throw new UsageError(CHANNEL_USAGE);
  if (v.class !== undefined && action !== "add") throw new UsageError("--class is for pigeon channel add NAME --class CLASS");
  switch (action) {
    case "create": {
      if (who.length) throw new UsageError(`channel create takes one name; put it in quotes if it has spaces, e.g. pigeon channel create "${[name, ...who].join(" ")}"`);
      const c = (await ask(where, "POST /api/channels/create", { title: name }).catch(usageIfBadInput)).value;
      out(c, `Started the channel ${c.title}; add people with: pigeon channel add "${c.title}" NAME... (or --class CLASS)`);
      return 0;
    }
    case "add": {
      if (who.length === 0 && v.class === undefined) throw new UsageError(CHANNEL_USAGE);
      const c = (await ask(where, "POST /api/channels/add", { channel: name, who, ...(v.class !== undefined ? { class: v.class } : {}) }).catch(usageIfBadInput)).value;
      out(c, formatChannel(c));
      return 0;
    }
    case "remove": {
      if (who.length === 0) throw new UsageError(CHANNEL_USAGE);
      const c = (await ask(where, "POST /api/channels/remove", { channel: name, who }).catch(usageIfBadInput)).value;
      out(c, `${formatChannel(c)}\n(what is written from now on is sealed with a new key the removed people never get)`);
      return 0;
    }
    case "admin":
    case "unadmin": {
      if (who.length !== 1) throw new UsageError(CHANNEL_USAGE);
      const c = (await ask(where, "POST /api/channels/admin", { channel: name, who: who[0], admin: action === "admin" }).catch(usageIfBadInput)).value;
      out(c, formatChannel(c));
      return 0;
    }
    case "close": {
      if (who.length) throw new UsageError(CHANNEL_USAGE);
      const c = (await ask(where, "POST /api/channels/close", { channel: name }).catch(usageIfBadInput)).value;
      out(c, `Closed the channel ${c.title}: no one writes to it any more; what was written stays`);
      return 0;
    }
    default:
      throw new UsageError(CHANNEL_USAGE);
  }
}

/** `pigeon buddies [...]`: the list, or one change to it (through the node, or the data directory itself). */
async function buddies(where: DataDirChoice, rest: string[], out: (value: unknown, readable: string) => void): Promise<number> {
  const [action, who, arg, ...extra] = rest;
  if (action === undefined) {
    const { value } = await ask(where, "GET /api/buddies");
    out(value, formatBuddies(value));
    return 0;
  }
  const needsArg = action === "rename" || action === "group" || action === "ungroup";
  const known = ["add", "remove", "rename", "block", "unblock", "group", "ungroup"].includes(action);
  if (!known || !who || extra.length || (needsArg ? arg === undefined : arg !== undefined)) throw new UsageError(BUDDIES_USAGE);
  const shown = (b: { address: string; petname?: string; groups: string[] }) =>
    `${b.address}${b.petname ? ` "${b.petname}"` : ""}${b.groups.length ? ` [${b.groups.join(", ")}]` : ""}`;
  switch (action) {
    case "add": {
      const b = (await ask(where, "POST /api/buddies/add", { who }).catch(usageIfBadInput)).value;
      out(b, `${shown(b)} is one of your buddies (fingerprint ${b.fingerprint}), on all your devices`);
      return 0;
    }
    case "rename": {
      const b = (await ask(where, "POST /api/buddies/rename", { who, name: arg }).catch(usageIfBadInput)).value;
      out(b, b.petname ? `You call ${b.address} "${b.petname}" now: pigeon send ${b.petname} "..." reaches them` : `${b.address} has no name of yours now`);
      return 0;
    }
    case "group":
    case "ungroup": {
      const b = (await ask(where, action === "group" ? "POST /api/buddies/group" : "POST /api/buddies/ungroup", { who, group: arg }).catch(usageIfBadInput)).value;
      out(b, shown(b));
      return 0;
    }
    case "remove": {
      const p = (await ask(where, "POST /api/buddies/remove", { who }).catch(usageIfBadInput)).value;
      out(p, `${p.address} is no longer one of your buddies; your messages with them stay, and what they write now waits under requests`);
      return 0;
    }
    default: {
      const block = action === "block";
      const p = (await ask(where, block ? "POST /api/buddies/block" : "POST /api/buddies/unblock", { who }).catch(usageIfBadInput)).value;
      out(p, block
        ? `Blocked ${p.address} (${p.fingerprint}): nothing from them is shown and they get no receipt, on all your devices`
        : `Unblocked ${p.address}`);
      return 0;
    }
  }
}

async function main(argv: string[]): Promise<number> {
  const { v, positionals } = parseCommandLine(argv);
  const [command, ...rest] = positionals;
  if (v.help || command === "help" || command === undefined) {
    process.stdout.write(HELP);
    return command === undefined && !v.help ? 2 : 0;
  }
  if (!COMMANDS.includes(command)) throw new UsageError(`unknown command "${command}" (pigeon --help lists the commands)`);
  checkOptionsFor(command, v);
  if (command === "start") {
    if (positionals.length > 1) throw new UsageError(`start takes no arguments (found "${rest.join(" ")}"); options start with --, e.g. --name amara`);
    return start(v);
  }
  const where = chooseDataDir(v.data);
  const dataDir = where.dir;
  const out = (value: unknown, readable: string) => console.log(v.json ? JSON.stringify(value, null, 2) : readable);
  const noArgs = () => {
    if (rest.length) throw new UsageError(`${command} takes no arguments`);
  };
  switch (command) {
    case "whoami": {
      noArgs();
      const { value: w } = await ask(where, "GET /api/whoami");
      out(w, formatWhoami(w));
      return 0;
    }
    case "send": {
      if (v.draft) {
        noArgs();
        const m = await call(where, "POST /api/drafts/send", { id: v.draft }, "Sending");
        out(m, formatSent(m));
        return 0;
      }
      const [to, ...words] = rest;
      if (!to || words.length === 0) throw new UsageError('send needs an address and a message, e.g. pigeon send amara@local "hello"');
      if (isMailAddress(to)) return sendMail(where, { to, text: words.join(" "), subject: v.subject ?? "", via: v.via, yes: v.yes === true }, out);
      if (v.subject !== undefined || v.via !== undefined || v.yes) throw new UsageError("--subject, --via and --yes are for e-mails to outside addresses (someone@example.org)");
      // a channel's name ("5B science"): written to the channel, sealed once for all its members. It is
      // looked for only when the words are no one's address, so sending to a person costs nothing more.
      const toChannel = async () => {
        if (!(await ask(where, "GET /api/channels")).value.some((c) => c.title === to)) return false;
        const m = await call(where, "POST /api/channels/send", { channel: to, body: words.join(" ") }, "Sending").catch(usageIfBadInput);
        out(m, formatSent(m));
        return true;
      };
      try {
        checkAddress(to, "send");
      } catch (e) {
        if (await toChannel()) return 0;
        throw e;
      }
      const m = await call(where, "POST /api/send", { to, body: words.join(" ") }, "Sending").catch(async (e: unknown) => {
        if (e instanceof Refused && (e.code === "unknown-address" || e.code === "not-found") && (await toChannel())) return undefined;
        return usageIfBadInput(e);
      });
      if (m) out(m, formatSent(m));
      return 0;
    }
    case "inbox":
    case "outbox":
    case "waiting": {
      noArgs();
      // the newest LAST (100 unless told): a folder of 100,000 messages is not printed whole by default
      if (v.all && v.last !== undefined) throw new UsageError("give --last N or --all, not both");
      const last = v.all ? undefined : (int(v.last, "last", 1, 100_000) ?? FOLDER_SHOWN);
      const asked = last === undefined ? undefined : { last: String(last + 1) }; // one more: are there older ones?
      const got = (await ask(where, command === "inbox" ? "GET /api/inbox" : command === "outbox" ? "GET /api/outbox" : "GET /api/waiting", asked)).value;
      const more = last !== undefined && got.length > last;
      const list = more ? got.slice(got.length - last) : got;
      const older = more ? `\n(older messages not shown: pigeon ${command} --last N for more, or --all)` : "";
      if (command === "outbox") {
        // e-mails: the state the gateway sent back (in the conversation with it) beside each
        const mail = mailStatuses((await ask(where, "GET /api/inbox")).value);
        const shown = list.map((m) => (mail.has(m.id) ? { ...m, mail: { state: mail.get(m.id)!.state, note: mail.get(m.id)!.note } } : m));
        out(shown, formatOutbox(list, mail) + older);
        return 0;
      }
      out(list, (command === "inbox" ? formatInbox(list) : formatMessages(list, "Waiting to be sent")) + older);
      return 0;
    }
    case "drafts": {
      noArgs();
      const { value: list } = await ask(where, "GET /api/drafts");
      out(list, formatDrafts(list));
      return 0;
    }
    case "draft": {
      if (v.delete) {
        noArgs();
        const { value: r } = await ask(where, "POST /api/drafts/delete", { id: v.delete });
        out(r, `Deleted draft ${v.delete}`);
        return 0;
      }
      const [to, ...words] = rest;
      if (!to || words.length === 0) throw new UsageError('draft needs an address and a message, e.g. pigeon draft amara@local "hello"');
      checkAddress(to, "draft");
      const { value: d } = await ask(where, "POST /api/drafts", { to, body: words.join(" ") }).catch(usageIfBadInput);
      out(d, `Saved draft ${d.id} to ${d.to} (send it with: pigeon send --draft ${d.id})`);
      return 0;
    }
    case "read":
    case "show": {
      if (command === "read" && v.all) {
        if (rest.length) throw new UsageError("read --all takes no message ids: it marks every received message read");
        const r = (await ask(where, "POST /api/read", {})).value;
        out(r, `Marked ${r.marked} message${r.marked === 1 ? "" : "s"} read`);
        return 0;
      }
      if (rest.length === 0) {
        if (command === "show") throw new UsageError("show needs a message id: the letters and digits in [brackets] in pigeon inbox, e.g. pigeon show 1376a88c");
        const r = (await ask(where, "POST /api/read-new")).value;
        out(r, r.messages.length ? `${formatMessages(r.messages, "New messages")}\n(now marked read)` : "No new messages");
        return 0;
      }
      const shown: { message: MessageView; marked: boolean }[] = [];
      for (const id of rest) {
        try {
          shown.push((await ask(where, "POST /api/show", { id })).value);
        } catch (e) {
          // a mistyped or unknown id is the user's to fix: bad usage, with the reason
          if (e instanceof Refused && (e.code === "not-found" || e.code === "bad-input" || e.code === "ambiguous")) throw new UsageError(e.message);
          throw e;
        }
      }
      out(shown, shown.map((s) => formatShown(s.message)).join("\n\n"));
      return 0;
    }
    case "requests": {
      const [action, who, ...note] = rest;
      if (action === undefined) {
        const { value: r } = await ask(where, "GET /api/requests");
        out(r, formatRequests(r));
        return 0;
      }
      if (action === "reports") {
        if (who !== undefined) throw new UsageError("requests reports takes nothing more");
        const { value: r } = await ask(where, "GET /api/reports");
        out(r, r.length ? r.map((x) => `  ${x.from}  ${x.fingerprint}  reported ${new Date(x.at).toISOString().slice(0, 16).replace("T", " ")}${x.note ? `: ${x.note}` : ""}`).join("\n") : "Nothing reported");
        return 0;
      }
      if (!["accept", "ignore", "report"].includes(action) || !who || (action !== "report" && note.length))
        throw new UsageError('requests takes: accept WHO, ignore WHO, report WHO [WHY], or reports (WHO as shown by pigeon requests)');
      const endpoint = action === "accept" ? "POST /api/requests/accept" : action === "ignore" ? "POST /api/requests/ignore" : "POST /api/requests/report";
      const c = (await ask(where, endpoint, { who, ...(note.length ? { note: note.join(" ") } : {}) }).catch(usageIfBadInput)).value;
      out(c,
        action === "accept" ? `${c.address} is one of your buddies now: their messages are in your inbox`
        : action === "ignore" ? `Ignored ${c.address}: their messages stay hidden`
        : `Reported ${c.address} (${c.fingerprint}) for your school; their messages stay hidden`);
      return 0;
    }
    case "reply": {
      const [id, ...words] = rest;
      if (!id || words.length === 0) throw new UsageError('reply needs a message id and your answer, e.g. pigeon reply 1376a88c "see you"');
      // an e-mail the gateway brought is answered by e-mail (threaded), after the same notice as send
      const original = await ask(where, "POST /api/show", { id }).then((r) => r.value.message, () => undefined);
      const mail = original?.direction === "in" ? parseIncomingMail(original.body) : undefined;
      if (original && mail) {
        const to = /<([^<>\s]+)>$/.exec(mail.from)?.[1] ?? mail.from;
        if (!isMailAddress(to)) throw new UsageError(`that mail came from "${mail.from}", which is not an address the gateway can answer`);
        return sendMail(where, { to, text: words.join(" "), subject: "", re: original.id, via: original.from, yes: v.yes === true }, out);
      }
      if (v.yes) throw new UsageError("--yes is for answering an e-mail the gateway brought");
      const m = await call(where, "POST /api/reply", { id, body: words.join(" ") }, "Replying").catch(usageIfBadInput);
      out(m, formatSent(m));
      return 0;
    }
    case "peers": {
      noArgs();
      // with the node stopped, no laptop is connected: say so, and why
      if (!runningNode(dataDir)) {
        if (!hasIdentity(dataDir)) throw new NoIdentity(noIdentityMessage(where));
        out([], `No laptops connected: your pigeon node is not running (start it with: ${startCommand(where)})`);
        return 0;
      }
      const p = await call(where, "GET /api/peers");
      out(p, formatPeers(p));
      return 0;
    }
    case "devices": {
      if (rest[0] === "add") {
        if (rest.length !== 1) throw new UsageError("devices add takes no arguments");
        const w = await call(where, "POST /api/devices/pair", {}, "Pairing").catch(usageIfBadInput);
        const minutes = Math.round((w.expiresAt - Date.now()) / 60_000);
        out(w, `On the new device (on the same network), run:\n  pigeon pair ${w.code}\nThe code works for ${minutes} minutes, once.`);
        return 0;
      }
      if (rest[0] === "revoke") {
        if (rest.length < 2) throw new UsageError("devices revoke needs the device's id, as pigeon devices shows it, e.g. pigeon devices revoke 1a2b3c4d lost");
        const d = (await ask(where, "POST /api/devices/revoke", { device: rest[1], ...(rest.length > 2 ? { reason: rest.slice(2).join(" ") } : {}) }).catch(usageIfBadInput)).value;
        out(d, `Revoked device ${d.id}: it gets nothing new, and what it signs is refused by everyone who learns of it`);
        return 0;
      }
      if (rest.length) throw new UsageError(`devices takes add or revoke (found "${rest[0]}")`);
      const list = (await ask(where, "GET /api/devices")).value;
      out(list, formatDevices(list));
      return 0;
    }
    case "pair": {
      if (rest.length !== 1) throw new UsageError("pair needs the code the other device shows, e.g. pigeon pair abcd-efgh-ijkl");
      return pair(where, rest[0]!, v);
    }
    case "buddies":
      return buddies(where, rest, out);
    case "channels": {
      noArgs();
      const { value } = await ask(where, "GET /api/channels");
      out(value, formatChannels(value));
      return 0;
    }
    case "channel":
      return channel(where, rest, v, out);
    case "routes": {
      noArgs();
      const r = await call(where, "GET /api/routes");
      out(r, formatRoutes(r));
      return 0;
    }
    case "nearby": {
      noArgs();
      const { value: n } = await ask(where, "GET /api/nearby");
      out(n, formatNearby(n));
      return 0;
    }
    case "card": {
      noArgs();
      const c = (await ask(where, "GET /api/card")).value;
      out(c, c.card);
      return 0;
    }
    case "contacts": {
      if (rest[0] === "add") {
        if (rest.length !== 2) throw new UsageError("contacts add needs one contact card (from pigeon card on their laptop)");
        const c = (await ask(where, "POST /api/contacts", { card: rest[1] }).catch(usageIfBadInput)).value;
        out(c, `Added ${c.address} to your buddies (fingerprint ${c.fingerprint}: compare it with theirs)`);
        return 0;
      }
      if (rest[0] === "rename") {
        if (rest.length !== 3) throw new UsageError('contacts rename needs who and your name for them, e.g. pigeon contacts rename "amara@local#k3zq" amara-b');
        const c = (await ask(where, "POST /api/contacts/rename", { who: rest[1], name: rest[2] }).catch(usageIfBadInput)).value;
        out(c, c.petname ? `You call ${c.address} "${c.petname}" now: pigeon send ${c.petname} "..." reaches them` : `${c.address} has no name of yours now`);
        return 0;
      }
      if (rest[0] === "remove") {
        if (rest.length !== 2) throw new UsageError("contacts remove needs who: an address, your name for them, or a fingerprint");
        const c = (await ask(where, "POST /api/contacts/remove", { who: rest[1] }).catch(usageIfBadInput)).value;
        out(c, `Removed ${c.address} (${c.fingerprint}) from your buddies and contacts; your messages with them stay`);
        return 0;
      }
      if (rest.length) throw new UsageError(`contacts takes add, rename or remove (found "${rest[0]}")`);
      const { value: c } = await ask(where, "GET /api/contacts");
      out(c, formatContacts(c));
      return 0;
    }
    case "status": {
      noArgs();
      const { value, offline } = await ask(where, "GET /api/status");
      // the carrying quota is a setting of the running node: unknown while it is stopped
      const s: Status = offline ? { ...value, peers: 0, running: false, carrying: { ...value.carrying, quotaBytes: undefined } } : value;
      out(s, formatStatus(s));
      return 0;
    }
    case "stop": {
      noArgs();
      const r = await call(where, "POST /api/stop");
      out(r, "Stopping the node");
      return 0;
    }
    case "rename": {
      if (rest.length !== 1) throw new UsageError("rename needs the new name, e.g. pigeon rename amara");
      const r = rename(where, rest[0]!);
      out(r, `You are now ${r.address} (was ${r.was}). Your keys and fingerprint (${r.fingerprint}) stay the same;\nlaptops you meet learn the new name, and your messages stay yours.`);
      return 0;
    }
    case "gateway":
      return gatewayCommand(dataDir, rest, out);
    case "school":
      if (rest[0] === "sign-rules") return signRules(where, rest.slice(1), v, out, (text) => call(where, "POST /api/school/mail-rules", { text }));
    // falls through
    case "enrol":
      if (v.out !== undefined) throw new UsageError("--out is an option of pigeon school sign-rules");
      return schoolCommand(command, rest, v, (endpoint, body) => ask(where, endpoint, body).then((r) => r.value), out);
    case "xmpp-password": {
      // works with or without a running node: the server reads the file at every login
      if (rest.length > 1) throw new UsageError("xmpp-password takes at most one argument, the new password");
      if (!hasIdentity(dataDir)) throw new NoIdentity(noIdentityMessage(where));
      const id = loadIdentity(dataDir);
      let creds;
      try {
        creds = rest[0] === undefined ? ensureCredentials(dataDir) : setPassword(dataDir, rest[0], { name: id.name });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const node = runningNode(dataDir);
      const r = { jid: `${id.name}@${id.home}`, password: creds.password, changed: rest[0] !== undefined, xmpp: node?.xmpp };
      const server = node?.xmpp ? `\nServer:   ${node.xmpp.host} port ${node.xmpp.port} (STARTTLS offered), WebSocket ${node.xmpp.websocket}` : "";
      // the one setup step for TLS clients (packages/xmpp/README.md, "The first connection")
      const cert = join(dataDir, "xmpp-tls-cert.pem");
      const trust = existsSync(cert)
        ? `\nCertificate: ${cert}\n  trust it once on this laptop (as root): cp ${cert} /usr/local/share/ca-certificates/pigeon-xmpp.crt && update-ca-certificates`
        : "";
      out({ ...r, certificate: existsSync(cert) ? cert : undefined }, `${r.changed ? "New XMPP password set.\n" : ""}Address:  ${r.jid}\nPassword: ${r.password}${server}${trust}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}" (see pigeon --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = (e as Error).message;
    if (e instanceof UsageError) {
      console.error(`pigeon: ${msg}`);
      process.exitCode = 2;
    } else if (e instanceof NotRunning || e instanceof NoIdentity) {
      console.error(`pigeon: ${msg}`);
      process.exitCode = 3;
    } else if (e instanceof Refused || e instanceof ConfigError) {
      console.error(`pigeon: ${msg}`);
      process.exitCode = 1;
    } else {
      console.error(`pigeon: ${msg}`);
      process.exitCode = 1;
    }
  },
);
