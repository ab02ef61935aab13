// Readable output for the `pigeon` command.
import type { ChannelView, DeviceView, DraftView, MessageState, MessageView, PeerView, RequestView, VouchView } from "@pigeon/sync";
import type { BuddyList, NearbyInfo, Status, Whoami } from "./control-api.js";
import { vouchNote, vouchText } from "./school-format.js";

/** The recipients of an outgoing message, each with what the school says of them (on a school's laptop). */
function recipients(m: MessageView): string {
  if (m.channel !== undefined) return `channel ${m.channel}`;
  return m.to.map((t, i) => t + vouchNote(m.toVouch?.[i])).join(", ");
}

function when(ms: number | undefined): string {
  if (ms === undefined) return "";
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Mail for another village: where it goes, the way, and when, as this laptop's relay point last said. */
function villageLine(v: NonNullable<MessageView["village"]>): string {
  if (v.expectedAt === undefined) return `on its way to ${v.dest} (no way known there yet)`;
  const with_ = v.carrier ? ` with ${v.carrier}` : "";
  const way = v.via === v.dest ? (v.carrier ? `directly${with_}` : "via a direct carrier") : `via ${v.via}${with_}`;
  return `on its way to ${v.dest}, ${way}, expected ${when(v.expectedAt)}`;
}

function stateLine(m: MessageView): string {
  // a channel: per member, summed up ("delivered to 31 of 40, read by 23")
  const c = m.counts;
  if (c) {
    if (m.state === "waiting") return "waiting to be sent (no laptop has taken it yet)";
    return `delivered to ${c.delivered} of ${c.members}, read by ${c.read}`;
  }
  switch (m.state) {
    case "read":
      return `read ${when(m.readAt)}`;
    case "delivered":
      return `delivered ${when(m.deliveredAt)} (${m.deliveredVia === "carriers" ? "receipt came back through other laptops" : "direct"})`;
    case "sent":
      if (m.village) return `sent ${when(m.handedAt)} to ${m.sentTo}; ${villageLine(m.village)}; not yet delivered`;
      return `sent ${when(m.handedAt)} (${m.sentVia === "direct" ? "straight to them" : `carried by ${m.sentTo}`}; not yet delivered)`;
    case "waiting":
      if (m.village) return `waiting for this village's relay point; ${villageLine(m.village)}`;
      return "waiting to be sent (no laptop has taken it yet)";
    default:
      return "";
  }
}

/** The e-mail state the gateway sent back, by message id (pigeon outbox). */
type MailStates = Map<string, { state: string; note: string }>;

export function formatMessages(list: MessageView[], title: string, mail?: MailStates): string {
  if (list.length === 0) return `${title}: empty`;
  const lines = [`${title} (${list.length})`];
  for (const m of list) {
    if (m.direction === "in") {
      const where = m.channel !== undefined ? ` in channel ${m.channel}` : "";
      lines.push(`  ${m.readAt === undefined ? "new " : ""}from ${m.from}${vouchNote(m.fromVouch)}${where}  ${when(m.claimedSentAt)}  [${m.id.slice(0, 8)}]`);
    } else {
      lines.push(`  to ${recipients(m)}  ${when(m.claimedSentAt)}  ${stateLine(m)}  [${m.id.slice(0, 8)}]`);
      const e = mail?.get(m.id);
      if (e) lines.push(`    e-mail: ${e.note.split("\n")[0]}`);
    }
    for (const l of m.body.split("\n")) lines.push(`    ${l}`);
  }
  return lines.join("\n");
}

/** The inbox: how many are new (not read yet), each new one marked, and how to read them. */
export function formatInbox(list: MessageView[]): string {
  const fresh = list.filter((m) => m.readAt === undefined).length;
  if (list.length === 0) return "Inbox: empty";
  const text = formatMessages(list, "Inbox").replace(/^Inbox \(\d+\)/, `Inbox (${list.length}${fresh ? `, ${fresh} new` : ""})`);
  return fresh ? `${text}\n(read the new ones with: pigeon read, or one with: pigeon read ID)` : text;
}

/** One message in full, as `pigeon show` / `pigeon read ID` print it. */
export function formatShown(m: MessageView): string {
  const head = m.direction === "in"
    ? `From ${m.from}${vouchNote(m.fromVouch)}  ${when(m.claimedSentAt)}  [${m.id.slice(0, 8)}]${m.readAt !== undefined ? `  read ${when(m.readAt)}` : ""}` +
      (m.request ? "  (a request: not one of your buddies yet)" : "")
    : `To ${recipients(m)}  ${when(m.claimedSentAt)}  ${stateLine(m)}  [${m.id.slice(0, 8)}]`;
  return [head, ...m.body.split("\n").map((l) => `  ${l}`)].join("\n");
}

const STATE_HEADINGS: [MessageState, string][] = [
  ["waiting", "Waiting to be sent"],
  ["sent", "Sent, not yet delivered"],
  ["delivered", "Delivered"],
  ["read", "Read"],
];

/** Sent messages under one heading per state, so a heading always agrees with what is under it. */
export function formatByState(list: MessageView[], indent = "", mail?: MailStates): string[] {
  const lines: string[] = [];
  for (const [state, heading] of STATE_HEADINGS) {
    const group = list.filter((m) => m.state === state);
    if (group.length === 0) continue;
    lines.push(`${indent}${heading} (${group.length})`);
    for (const l of formatMessages(group, "", mail).split("\n").slice(1)) lines.push(`${indent}${l}`);
  }
  return lines;
}

export function formatOutbox(list: MessageView[], mail?: MailStates): string {
  if (list.length === 0) return "Outbox: empty";
  return [`Outbox (${list.length})`, ...formatByState(list, "  ", mail)].join("\n");
}

/** What `pigeon send` prints: the message under the heading of the state it is in now. */
export function formatSent(m: MessageView): string {
  return formatByState([m]).join("\n");
}

/** `pigeon channels`: each channel with its owner, members and whether this person is still in it. */
export function formatChannels(list: ChannelView[]): string {
  if (list.length === 0) return "Channels: none";
  const lines = [`Channels (${list.length})`];
  for (const c of list) {
    const state = c.closed ? ", closed" : !c.member ? ", you were removed" : c.admin ? ", you are an admin" : "";
    lines.push(`  ${c.title}  owner ${c.owner}, ${c.members.length} members${state}`);
    lines.push(`    ${c.members.map((m) => m.address + (m.owner ? " (owner)" : m.admin ? " (admin)" : "")).join(", ")}`);
  }
  return lines.join("\n");
}

export function formatChannel(c: ChannelView): string {
  return formatChannels([c]).split("\n").slice(1).join("\n").trimStart();
}

export function formatDrafts(list: DraftView[]): string {
  if (list.length === 0) return "Drafts: empty";
  return [`Drafts (${list.length})`, ...list.map((d) => `  ${d.id}  to ${d.to}  ${when(d.updatedAt)}\n    ${d.body}`)].join("\n");
}

export function formatPeers(list: PeerView[]): string {
  if (list.length === 0) return "No laptops connected right now";
  return [`Connected (${list.length})`, ...list.map((p) => `  ${p.address}  ${p.link}  since ${when(p.since)}`)].join("\n");
}

export function formatContacts(list: { address: string; fingerprint: string; lastSeen: number; petname?: string; vouch?: VouchView }[]): string {
  if (list.length === 0) return "No contacts yet: laptops nearby are remembered when they are met, and cards you add";
  return [
    `Contacts (${list.length}): everyone this laptop knows (your buddies are in pigeon buddies)`,
    ...list.map(
      (c) => `  ${c.address}${c.petname ? ` "${c.petname}"` : ""}  ${c.fingerprint}  last seen ${when(c.lastSeen)}${c.vouch ? `\n    ${vouchText(c.vouch)}` : ""}`,
    ),
  ].join("\n");
}

const HOW: Record<string, string> = { met: "met nearby", card: "from a card", school: "from the school", request: "accepted request" };

/** `pigeon buddies`: the list the child chose (the same on all their devices), then who is blocked. */
export function formatBuddies(l: BuddyList): string {
  const lines: string[] = [];
  if (l.buddies.length === 0) {
    lines.push("No buddies yet: add someone met nearby (pigeon nearby, then pigeon buddies add WHO), add a card (pigeon contacts add CARD),");
    lines.push("write to someone, or accept a request");
  } else {
    lines.push(`Buddies (${l.buddies.length})`);
    for (const b of l.buddies) {
      const groups = b.groups.length ? `  [${b.groups.join(", ")}]` : "";
      lines.push(`  ${b.address}${b.petname ? ` "${b.petname}"` : ""}${groups}  ${HOW[b.how] ?? b.how}  ${b.fingerprint}${b.blocked ? "  BLOCKED" : ""}`);
    }
  }
  const others = l.blocked.filter((p) => !l.buddies.some((b) => b.signPublicKey === p.signPublicKey));
  if (others.length) {
    lines.push(`Blocked, not on your list (${others.length})`);
    for (const p of others) lines.push(`  ${p.address}  ${p.fingerprint}`);
  }
  return lines.join("\n");
}

/** `pigeon nearby`: laptops met nearby, the most recent first; the child chooses whom to add. */
export function formatNearby(list: NearbyInfo[]): string {
  if (list.length === 0) return "No laptops met nearby yet";
  return [
    `Met nearby (${list.length}), the most recent first`,
    ...list.map(
      (n) =>
        `  ${n.address}  ${n.fingerprint}  ${n.connected ? "connected now" : `last met ${when(n.lastMet)}`}  ` +
        (n.buddy ? "a buddy" : `(make a buddy: pigeon buddies add ${n.address})`),
    ),
  ].join("\n");
}

export function formatDevices(list: DeviceView[]): string {
  const live = list.filter((d) => !d.revoked);
  const lines = [`Devices (${live.length})`];
  for (const d of list) {
    const notes = [d.thisDevice ? "this one" : "", d.holdsPersonKey ? "holds your person key: pairs and revokes" : "", d.revoked ? `REVOKED ${when(d.revoked.at)}: ${d.revoked.reason}` : ""].filter(Boolean);
    lines.push(`  ${d.id}${notes.length ? `  (${notes.join("; ")})` : ""}`);
  }
  if (live.length === 1) lines.push("Add another with pigeon devices add (on this device) and pigeon pair CODE (on the new one)");
  return lines.join("\n");
}

export function formatWhoami(w: Pick<Whoami, "address" | "fingerprint" | "syncPort" | "school">): string {
  const school = w.school
    ? w.school.server
      ? `\nschool server of ${w.school.home} (school key fingerprint ${w.school.fingerprint})`
      : w.school.me
        ? `\n${vouchText(w.school.me)}`
        : ""
    : "";
  return `${w.address}\nfingerprint ${w.fingerprint}${school}${w.syncPort ? `\nlistening for laptops on port ${w.syncPort}` : ""}`;
}

export function formatStatus(s: Status): string {
  const c = s.carrying;
  const quota = c.quotaBytes === undefined ? "" : ` of ${Math.round(c.quotaBytes / 1048576)} MB`;
  return [
    `${s.address}${s.running === false ? " (your pigeon node is not running)" : ""}`,
    `  carrying for others: ${c.envelopes} sealed message${c.envelopes === 1 ? "" : "s"} (${(c.bytes / 1024).toFixed(1)} KiB${quota}; sealed: whom they are for is not known here), and ${c.acks} delivery note${c.acks === 1 ? "" : "s"} that clear such copies`,
    ...(s.storageProblem ? [`  STORAGE PROBLEM: ${s.storageProblem}; new messages cannot be stored until there is room`] : []),
    `  kept on this laptop: ${s.envelopes} sealed item${s.envelopes === 1 ? "" : "s"} (messages, receipts, keys), ${(s.bytes / 1024).toFixed(1)} KiB`,
    ...(s.storeCheck && s.storeCheck.atStart !== "none"
      ? [`  store last checked in full: ${s.storeCheck.lastFullCheck ?? "not yet"}${s.storeCheck.atStart === "skipped" && s.running !== false ? " (this start skipped it after a clean stop; it runs again in the background)" : ""}`]
      : []),
    `  connected laptops: ${s.running === false ? "none, while the node is stopped" : (s.peers ?? 0)}`,
    s.shownTo === "schoolmates"
      ? `  shows who you are to: your schoolmates' laptops only (pigeon start --meet anyone to meet everyone nearby)`
      : `  shows who you are to: any laptop nearby${s.school ? " (started with --meet anyone)" : ""}`,
    `  refused from other laptops: ${s.rejected} (node.log in the data directory says why)`,
    ...(s.school
      ? [`  school ${s.school.home}: ${s.school.entries} directory entr${s.school.entries === 1 ? "y" : "ies"}, policy ${s.school.onlyDirectory ? "only the directory" : "open"}; messages dropped by the policy: ${s.school.dropped}`]
      : []),
    ...(s.unproven && s.unproven.refusedPerSource + s.unproven.closedForRoom + s.unproven.upgradeTimeouts > 0
      ? [`  connections cut before they proved who they are: ${s.unproven.refusedPerSource + s.unproven.closedForRoom + s.unproven.upgradeTimeouts} (too many at once from one address, or too slow)`]
      : []),
  ].join("\n");
}

export function formatRequests(list: RequestView[]): string {
  if (list.length === 0) return "No requests: messages from people who are not your buddies would wait here";
  return [
    `Requests (${list.length}): people who are not your buddies. Accept, ignore or report each:`,
    ...list.flatMap((r) => [
      `  from ${r.from} (fingerprint ${r.fingerprint}, not verified)`,
      ...(r.vouch ? [`    ${r.vouch.status === "impostor" ? "WARNING: " : ""}${vouchText(r.vouch)}`] : []),
      ...(r.total > r.messages.length ? [`    (${r.total - r.messages.length} older not shown)`] : []),
      ...r.messages.map((m) => `    [${m.id.slice(0, 8)}] ${m.body}`),
      `    pigeon requests accept ${r.from}   |   pigeon requests ignore ${r.from}   |   pigeon requests report ${r.from}`,
    ]),
  ].join("\n");
}
