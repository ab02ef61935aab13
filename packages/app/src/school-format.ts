// How the pigeon command shows what the school says of people, and the school's own answers.
import type { SchoolMember, SchoolView, VouchView } from "@pigeon/sync";
import type { Enrolled, SchoolApi } from "./control-api.js";

const KNOWN: Record<string, string> = {
  met: "met nearby, trust on first use",
  card: "added from a contact card, trust on first use",
  accepted: "accepted by you, trust on first use",
  introduced: "known only from what they say of themselves",
};

/** "vouched by kisumu-primary: 5B, student", "not vouched: the school's amara@kisumu-primary has another key", ... */
export function vouchText(v: VouchView): string {
  switch (v.status) {
    case "vouched":
      return `vouched by ${v.school}: ${v.class}, ${v.role}`;
    case "impostor":
      return `not vouched: ${v.reason}`;
    case "revoked":
      return v.reason;
    default:
      return v.known && KNOWN[v.known] ? `not vouched by the school (${v.reason}): ${KNOWN[v.known]}` : `not vouched: ${v.reason}`;
  }
}

/** " (vouched by ...)" after a name, or nothing on a laptop of no school. */
export function vouchNote(v: VouchView | undefined): string {
  return v ? ` (${vouchText(v)})` : "";
}

export function formatSchool(s: SchoolView): string {
  return [
    s.server ? `School server of ${s.home}` : `School: ${s.home}`,
    `  school key fingerprint ${s.fingerprint}`,
    ...(s.me ? [`  you: ${vouchText(s.me)}`] : []),
    `  directory: ${s.members} ${s.members === 1 ? "person" : "people"} vouched for, ${s.entries} entr${s.entries === 1 ? "y" : "ies"} held (newest ${s.maxSerial})`,
    `  policy: ${s.onlyDirectory ? "only the directory (messages from anyone else are dropped)" : "open (messages from people the school does not vouch for go to requests)"}`,
    ...(s.dropped ? [`  dropped by the policy: ${s.dropped}`] : []),
  ].join("\n");
}

export function formatMembers(r: SchoolApi["POST /api/school/list"], cls?: string): string {
  const list: SchoolMember[] = r.members;
  if (list.length === 0) return `${r.school.home}: nobody${cls ? ` in class ${cls}` : ""} in the directory yet`;
  return [
    `${r.school.home}${cls ? `, class ${cls}` : ""} (${list.length})`,
    ...list.map((m) => `  ${m.address}  ${m.class}  ${m.role}  ${m.fingerprint}`),
  ].join("\n");
}

export function formatEnrolled(e: Enrolled): string {
  return [
    e.again
      ? `${e.address} is already enrolled (${e.class}, ${e.role}; directory entry ${e.serial}); its token again:`
      : `Enrolled ${e.address} (${e.class}, ${e.role}; directory entry ${e.serial}, fingerprint ${e.fingerprint})` +
        (e.replaced ? `;\nthe key that held the name before (fingerprint ${e.replaced}) is revoked` : "") + ".",
    `On ${e.name}'s laptop only (the token holds the school's directory key), run:`,
    `  pigeon enrol ${e.token}`,
  ].join("\n");
}

export function formatEnrol(r: SchoolApi["POST /api/enrol"]): string {
  return [
    ...(r.moved ? [`You left ${r.moved}; your buddies, conversations and keys stay with you.`] : []),
    `You belong to ${r.school} now: ${vouchText(r.vouch)}.`,
    ...(r.renamed ? [`Your address is ${r.address} (was ${r.was}); your keys and fingerprint stay the same.`] : []),
    ...(r.restartForXmpp ? ["XMPP clients see the new address after the node restarts (pigeon stop, then pigeon start)."] : []),
  ].join("\n");
}
