// The school in the data directory and on the control API. A school server keeps the school key in
// school.json (owner-only, made on the first `pigeon start --school HOME`); enrolled laptops keep their
// enrolment in the mailbox's database (sync/mailbox/school.ts). The routes here answer the same with
// the node running (control API) and stopped (the command opens the mailbox itself, offline.ts).
import { existsSync, readFileSync, statSync, chmodSync } from "node:fs";
import { join } from "node:path";
import {
  decodeCard, fingerprint, fromHex, generateSchool, parseSchoolFile, serializeSchool, toHex, validHome, type Role, type SchoolKey,
} from "@pigeon/model";
import { MailboxError, type Mailbox } from "@pigeon/sync";
import { ConfigError, identityPath, loadIdentity, writeFileAtomic } from "./data-dir.js";
import { HttpError } from "./control.js";
import { parseFederate } from "./relay.js";
import type { Routes, SchoolEndpoint } from "./control-api.js";

export function schoolPath(dir: string): string {
  return join(dir, "school.json");
}

/** The school key of a school server's data directory, if it is one. */
export function loadSchoolKey(dir: string): SchoolKey | undefined {
  const path = schoolPath(dir);
  if (!existsSync(path)) return undefined;
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600); // the school's secret is for the owner only
  try {
    return parseSchoolFile(JSON.parse(readFileSync(path, "utf8")));
  } catch (e) {
    throw new ConfigError(`${path} is not a valid Pigeon school key (${(e as Error).message}); it was left untouched`);
  }
}

/**
 * `pigeon start --school HOME`: the school key, made on the first start (school.json, mode 0600);
 * a later start with another home is refused, since a school's key and home never change.
 */
export function ensureSchoolKey(dir: string, home: string): { school: SchoolKey; created: boolean } {
  if (!validHome(home)) throw new ConfigError(`--school "${home}" is not a valid school home: letters, digits and '-', e.g. kisumu-primary`);
  const existing = loadSchoolKey(dir);
  if (existing) {
    if (existing.home !== home)
      throw new ConfigError(
        `this data directory is the school server of ${existing.home}, not ${home}: a school's home never changes ` +
          `(its laptops' addresses end in @${existing.home}); to run a server for ${home}, use another data directory`,
      );
    return { school: existing, created: false };
  }
  const school = generateSchool(home);
  writeFileAtomic(schoolPath(dir), JSON.stringify(serializeSchool(school), null, 2) + "\n");
  return { school, created: true };
}

/** Writes the enrolled name@home into identity.json; the keys in the file stay as they are. */
function saveAddress(dir: string, name: string, home: string): void {
  const raw = JSON.parse(readFileSync(identityPath(dir), "utf8")) as Record<string, unknown>;
  loadIdentity(dir); // refuses a damaged file before it is rewritten
  writeFileAtomic(identityPath(dir), JSON.stringify({ ...raw, name, home }, null, 2) + "\n");
}

function str(body: Record<string, unknown>, key: string, optional: true): string | undefined;
function str(body: Record<string, unknown>, key: string): string;
function str(body: Record<string, unknown>, key: string, optional?: true): string | undefined {
  const v = body[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== "string") throw new HttpError(400, "bad-input", `"${key}" must be a string`);
  return v;
}

function schoolOf(mailbox: Mailbox) {
  const view = mailbox.school.view();
  if (!view) throw new MailboxError("not-found", "this laptop belongs to no school yet (a teacher enrols it at the school server, then: pigeon enrol TOKEN)");
  return view;
}

/** The school's endpoints; `running` says the node runs (a new name reaches XMPP clients after a restart). */
export function schoolRoutes(mailbox: Mailbox, o: { dataDir: string; running: boolean }): Routes<SchoolEndpoint> {
  return {
    "GET /api/school": () => schoolOf(mailbox),
    "POST /api/school/list": (b) => {
      const cls = str(b, "class", true);
      return { school: schoolOf(mailbox), members: mailbox.school.members(cls) };
    },
    "POST /api/school/enrol": async (b) => {
      let card;
      try {
        card = decodeCard(str(b, "card"));
      } catch (e) {
        throw new HttpError(400, "bad-input", (e as Error).message);
      }
      const role = (str(b, "role", true) ?? "student") as Role;
      const r = await mailbox.school.enrolPerson(card, {
        name: str(b, "name", true), class: str(b, "class"), role, replace: b.replace === true,
        ...(typeof b.until === "number" ? { until: b.until } : {}),
      });
      return {
        address: `${r.entry.name}@${r.entry.home}`, name: r.entry.name, class: r.entry.class, role: r.entry.role, serial: r.entry.serial,
        fingerprint: fingerprint(r.entry.personKey), token: r.token, again: r.again, ...(r.replaced ? { replaced: r.replaced } : {}),
      };
    },
    "POST /api/school/revoke-device": async (b) => {
      const text = str(b, "device").trim().toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(text))
        throw new HttpError(400, "bad-input", `"${text}" is not a device key: 64 hexadecimal characters (pigeon whoami --json on that laptop: signPublicKey)`);
      const e = await mailbox.school.revokeDevice(fromHex(text), str(b, "name", true));
      return { serial: e.serial, device: toHex(e.deviceKey), person: fingerprint(e.personKey) };
    },
    "POST /api/school/revoke-person": async (b) => {
      const e = await mailbox.school.revokePerson(str(b, "name"), str(b, "reason", true) ?? "");
      return { serial: e.serial, fingerprint: fingerprint(e.personKey), reason: e.reason };
    },
    "POST /api/school/relay-point": async (b) => {
      const text = str(b, "relayKey").trim();
      const key = new Uint8Array(Buffer.from(text, "base64"));
      if (key.length !== 32 || Buffer.from(key).toString("base64") !== text)
        throw new HttpError(400, "bad-input", `"${text}" is not a relay point's key (the base64 key its first start printed)`);
      const federate = b.federate ?? [];
      if (!Array.isArray(federate) || federate.some((f) => typeof f !== "string")) throw new HttpError(400, "bad-input", `"federate" is a list of HOME=KEY`);
      const add = new Map<string, Uint8Array>();
      for (const f of federate as string[]) {
        try {
          const [h, k] = parseFederate(f);
          add.set(h, k);
        } catch (e) {
          throw new HttpError(400, "bad-input", (e as Error).message);
        }
      }
      const r = await mailbox.school.grantRelayPoint(key, add);
      const view = schoolOf(mailbox);
      return { home: view.home, grant: r.grant, villages: r.villages, schoolKey: Buffer.from(fromHex(view.schoolKey)).toString("base64") };
    },
    "POST /api/school/mail-rules": async (b) => {
      const e = await mailbox.school.publishMailRules(str(b, "text"));
      return { serial: e.serial, rulesSerial: (JSON.parse(e.text) as { serial: number }).serial };
    },
    "POST /api/school/policy": async (b) => {
      const flag = (k: string) => {
        if (b[k] !== undefined && typeof b[k] !== "boolean") throw new HttpError(400, "bad-input", `"${k}" must be true or false`);
        return b[k] as boolean | undefined;
      };
      const [only, noGroups] = [flag("onlyDirectory"), flag("noStudentGroups")];
      if (only === undefined && noGroups === undefined) throw new HttpError(400, "bad-input", `give "onlyDirectory" or "noStudentGroups"`);
      const e = await mailbox.school.setPolicy(only, noGroups);
      return { serial: e.serial, onlyDirectory: e.onlyDirectory, noStudentGroups: e.noStudentGroups ?? false };
    },
    "POST /api/enrol": async (b) => {
      if (b.move !== undefined && typeof b.move !== "boolean") throw new HttpError(400, "bad-input", `"move" is true or false`);
      const r = await mailbox.school.enrol(str(b, "token"), { move: b.move === true });
      const renamed = r.was !== r.address;
      if (renamed) saveAddress(o.dataDir, r.entry.name, r.entry.home);
      return {
        address: r.address, was: r.was, renamed, school: r.entry.home, class: r.entry.class, role: r.entry.role, vouch: r.vouch,
        ...(renamed && o.running ? { restartForXmpp: true } : {}),
        ...(r.moved ? { moved: r.moved } : {}),
      };
    },
  };
}
