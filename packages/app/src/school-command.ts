// `pigeon enrol TOKEN` and `pigeon school ...`: the words of the school's commands, checked before
// anything is asked, then asked of the running node or of the data directory itself (cli.ts ask).
import type { ControlApi, Endpoint } from "./control-api.js";
import { UsageError, type Values } from "./command-line.js";
import { formatEnrol, formatEnrolled, formatMembers, formatSchool } from "./school-format.js";

type Ask = <E extends Endpoint>(endpoint: E, body?: Record<string, unknown>) => Promise<ControlApi[E]>;
type Out = (value: unknown, readable: string) => void;

const USAGE =
  "school takes: list [--class C], enrol CARD --class C [--name NAME] [--role student|teacher] [--replace], " +
  "revoke-device KEY [--name NAME], revoke-person NAME [--reason WHY], policy only-directory|open|no-student-groups|student-groups (pigeon --help)";

export async function schoolCommand(command: "enrol" | "school", rest: string[], v: Values, ask: Ask, out: Out): Promise<number> {
  if (command === "enrol") {
    if (rest.length !== 1 || !rest[0]!.trim())
      throw new UsageError("enrol needs the token the school server printed for this laptop, e.g. pigeon enrol pigeon-school1:...");
    const r = await ask("POST /api/enrol", { token: rest[0], ...(v.move ? { move: true } : {}) });
    out(r, formatEnrol(r));
    return 0;
  }
  const [action, ...args] = rest;
  const only = (allowed: (keyof Values)[]) => {
    for (const k of ["name", "class", "role", "replace", "reason", "federate"] as const)
      if (v[k] !== undefined && !allowed.includes(k)) throw new UsageError(`--${k} is not an option of pigeon school ${action ?? ""}`.trimEnd());
  };
  switch (action) {
    case undefined: {
      only([]);
      const s = await ask("GET /api/school");
      out(s, formatSchool(s));
      return 0;
    }
    case "list": {
      only(["class"]);
      if (args.length) throw new UsageError("school list takes no arguments (a class: --class 5B)");
      const r = await ask("POST /api/school/list", v.class === undefined ? {} : { class: v.class });
      out(r, formatMembers(r, v.class));
      return 0;
    }
    case "enrol": {
      only(["name", "class", "role", "replace", "until"]);
      if (args.length !== 1) throw new UsageError("school enrol needs one contact card (pigeon card on the laptop to enrol), e.g. pigeon school enrol pigeon1:... --class 5B");
      if (v.class === undefined) throw new UsageError("school enrol needs the person's class, e.g. --class 5B");
      if (v.role !== undefined && v.role !== "student" && v.role !== "teacher") throw new UsageError(`--role is student or teacher, not "${v.role}"`);
      let until: number | undefined;
      if (v.until !== undefined) {
        // the end of that day, UTC: "enrolled until 2027-07-31" includes the 31st
        const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v.until);
        until = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59, 999) : NaN;
        if (!m || Number.isNaN(until) || new Date(until).toISOString().slice(0, 10) !== v.until)
          throw new UsageError(`--until is a date like 2027-07-31 (the last day of the enrolment), not "${v.until}"`);
      }
      const r = await ask("POST /api/school/enrol", {
        card: args[0], class: v.class, role: v.role ?? "student", ...(v.name !== undefined ? { name: v.name } : {}), replace: v.replace === true,
        ...(until !== undefined ? { until } : {}),
      });
      out(r, formatEnrolled(r));
      return 0;
    }
    case "relay-point": {
      only(["federate"]);
      if (args.length !== 1) throw new UsageError("school relay-point needs the key the relay point printed on its first start, e.g. pigeon school relay-point 3q2+7w...= --federate siaya-primary=KEY");
      const r = await ask("POST /api/school/relay-point", { relayKey: args[0], federate: v.federate ?? [] });
      out(r, [
        `Certified the relay point of ${r.home}, exchanging mail with ${r.villages.join(", ") || "no other village yet"}.`,
        `On the relay point, start it with (once; it remembers it):`,
        `  pigeon start --relay-point ${r.home} --relay-grant ${r.grant}`,
        `Other villages' relay points add: --federate ${r.home}=${r.schoolKey}`,
      ].join("\n"));
      return 0;
    }
    case "revoke-device": {
      only(["name"]);
      if (args.length !== 1 || !/^[0-9a-f]{64}$/i.test(args[0]!))
        throw new UsageError("school revoke-device needs the laptop's key: 64 hexadecimal characters (pigeon whoami --json on that laptop: signPublicKey)");
      const r = await ask("POST /api/school/revoke-device", { device: args[0], ...(v.name !== undefined ? { name: v.name } : {}) });
      out(r, `Revoked the laptop ${r.device.slice(0, 16)}… of ${r.person} (directory entry ${r.serial}): the school's laptops refuse what it signs once the entry reaches them`);
      return 0;
    }
    case "revoke-person": {
      only(["reason"]);
      if (args.length !== 1) throw new UsageError("school revoke-person needs the enrolled name, e.g. pigeon school revoke-person amara --reason \"left the school\"");
      const r = await ask("POST /api/school/revoke-person", { name: args[0], ...(v.reason !== undefined ? { reason: v.reason } : {}) });
      out(r, `The school no longer vouches for ${args[0]} (fingerprint ${r.fingerprint}; directory entry ${r.serial}): their messages are refused`);
      return 0;
    }
    case "policy": {
      only([]);
      const rule = args[0];
      if (args.length !== 1 || !["only-directory", "open", "no-student-groups", "student-groups"].includes(rule!))
        throw new UsageError("school policy takes only-directory, open, no-student-groups or student-groups");
      if (rule === "no-student-groups" || rule === "student-groups") {
        const g = await ask("POST /api/school/policy", { noStudentGroups: rule === "no-student-groups" });
        out(g, g.noStudentGroups
          ? `Policy set (directory entry ${g.serial}): students may not start channels of their own (teachers still may)`
          : `Policy set (directory entry ${g.serial}): students may start small groups of their own`);
        return 0;
      }
      const r = await ask("POST /api/school/policy", { onlyDirectory: rule === "only-directory" });
      out(r, r.onlyDirectory
        ? `Policy set (directory entry ${r.serial}): the school's laptops drop messages from anyone the directory does not vouch for`
        : `Policy set (directory entry ${r.serial}): messages from people the school does not vouch for go to requests`);
      return 0;
    }
    default:
      throw new UsageError(USAGE);
  }
}
