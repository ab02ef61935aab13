// The control API between the daemon (control.ts) and the `pigeon` command (cli.ts): every endpoint
// with what it answers, in one place that both sides import, so neither needs a cast.
import type { BuddyView, ChannelView, DeviceView, DraftView, MessageView, NearbyView, PeerView, PersonView, RequestView, SchoolMember, SchoolView, VouchView } from "@pigeon/sync";

export interface ContactInfo {
  address: string;
  fingerprint: string;
  firstSeen: number;
  lastSeen: number;
  /** met (nearby), card, accepted (a request), introduced (only their own claim). Being a buddy is the buddy list's. */
  how: string;
  /** The user's own name for them. */
  petname?: string;
  /** On a school's laptop: what the school says of them (vouched, not vouched, impostor, revoked). */
  vouch?: VouchView;
}

export interface Whoami {
  address: string;
  fingerprint: string;
  signPublicKey: string;
  /** Only from a running node. */
  syncPort?: number;
  controlPort?: number;
  dataDir?: string;
  pid?: number;
  xmpp?: { host: string; port: number; websocket: string };
  /** The school this laptop belongs to (or serves), and what it says of this user. */
  school?: { home: string; fingerprint: string; server: boolean; me?: VouchView };
}

export interface Status {
  address: string;
  envelopes: number;
  bytes: number;
  rejected: number;
  storageProblem: string | null;
  carrying: { envelopes: number; bytes: number; people: number; acks: number; quotaBytes?: number };
  /** Laptops connected now (a running node only). */
  peers?: number;
  /** Connections that never proved who they are, since the node started (a running node only). */
  unproven?: { handshaking: number; refusedPerSource: number; closedForRoom: number; upgradeTimeouts: number };
  /** false when the pigeon command read a stopped node's data directory itself. */
  running?: boolean;
  /** On a school's laptop: its directory, its policy, and the messages the policy dropped. */
  school?: { home: string; onlyDirectory: boolean; dropped: number; entries: number };
  /** Who learns who this laptop is when it meets them (the handshake): anyone nearby, or its schoolmates only. */
  shownTo: "anyone" | "schoolmates";
  /** How the sealed store was checked at start ("skipped" after a clean stop, then checked in the background), and when it was last found whole. */
  storeCheck?: { atStart: "full" | "skipped" | "none"; lastFullCheck: string | null };
}

/** The buddy list (the same on every device of the user) and everyone blocked, on it or not. */
export interface BuddyList {
  buddies: BuddyView[];
  blocked: PersonView[];
}

/** A laptop met nearby; `connected` only from a running node. */
export type NearbyInfo = NearbyView & { connected?: boolean };

/** What the school server answers when it enrols someone: the token goes to that person's laptop only. */
export interface Enrolled {
  address: string;
  name: string;
  class: string;
  role: string;
  serial: number;
  fingerprint: string;
  token: string;
  /** The same enrolment printed again (no new entry). */
  again: boolean;
  /** The fingerprint of the key that held the name before (--replace revoked it). */
  replaced?: string;
}

/** The school's endpoints (school.ts): the same with the node running or stopped. */
export interface SchoolApi {
  "GET /api/school": SchoolView;
  "POST /api/school/list": { school: SchoolView; members: SchoolMember[] };
  "POST /api/school/enrol": Enrolled;
  "POST /api/school/revoke-device": { serial: number; device: string; person: string };
  "POST /api/school/revoke-person": { serial: number; fingerprint: string; reason: string };
  "POST /api/school/policy": { serial: number; onlyDirectory: boolean; noStudentGroups: boolean };
  "POST /api/school/mail-rules": { serial: number; rulesSerial: number };
  /** A relay point on a box of its own: its grant, the villages of the federation, the school key (base64) for other villages. */
  "POST /api/school/relay-point": { home: string; grant: string; villages: string[]; schoolKey: string };
  "POST /api/enrol": {
    address: string; was: string; renamed: boolean; school: string; class: string; role: string; vouch: VouchView;
    /** The node runs: XMPP clients see the new address after it restarts. */
    restartForXmpp?: true;
    /** The school this laptop left (pigeon enrol --move: a child who moved villages). */
    moved?: string;
  };
}

export type SchoolEndpoint = keyof SchoolApi;

/** One village a relay point can reach (routes.ts in model: the routing table). */
export interface RouteView {
  village: string;
  /** The relay point the carrier brings mail to first. */
  via: string;
  /** Who carries it there: a mule, or the other relay point on a direct link (its address). */
  carrier: string;
  /** Expected delay from now, in seconds. */
  expectedSeconds: number;
  /** When the carrier is expected next (ms), once its rhythm is known. */
  nextContact: number | null;
  /** Relay points after the first one. */
  hops: number;
}

export interface RoutesView {
  /** This node's village if it is a relay point; null otherwise. */
  relayPoint: string | null;
  /** Villages of the federation (this one included). */
  federation: string[];
  routes: RouteView[];
  /** The last route announcements it refused, and why. */
  refused: string[];
}

/** A relay point's endpoint (relay.ts). */
export interface RoutesApi {
  "GET /api/routes": RoutesView;
}

export interface Report {
  from: string;
  fingerprint: string;
  at: number;
  note: string | null;
}

/** Every endpoint ("METHOD /path") and what it answers. Bodies are JSON objects, checked by the server. */
export interface ControlApi extends SchoolApi, RoutesApi {
  "GET /api/whoami": Whoami;
  "GET /api/inbox": MessageView[];
  "GET /api/outbox": MessageView[];
  "GET /api/waiting": MessageView[];
  "GET /api/drafts": DraftView[];
  "GET /api/contacts": ContactInfo[];
  "GET /api/status": Status;
  "GET /api/card": { card: string };
  "GET /api/peers": PeerView[];
  "GET /api/requests": RequestView[];
  "GET /api/reports": Report[];
  "GET /api/buddies": BuddyList;
  "GET /api/nearby": NearbyInfo[];
  "POST /api/buddies/add": BuddyView;
  "POST /api/buddies/remove": PersonView;
  "POST /api/buddies/rename": BuddyView;
  "POST /api/buddies/block": PersonView;
  "POST /api/buddies/unblock": PersonView;
  "POST /api/buddies/group": BuddyView;
  "POST /api/buddies/ungroup": BuddyView;
  "POST /api/contacts": { address: string; fingerprint: string };
  "POST /api/contacts/rename": ContactInfo;
  "POST /api/contacts/remove": ContactInfo;
  "POST /api/requests/accept": ContactInfo;
  "POST /api/requests/ignore": ContactInfo;
  "POST /api/requests/report": ContactInfo;
  "POST /api/drafts": DraftView;
  "POST /api/drafts/delete": { deleted: string };
  "POST /api/drafts/send": MessageView;
  "POST /api/show": { message: MessageView; marked: boolean };
  "POST /api/read-new": { messages: MessageView[] };
  "POST /api/read": { marked: number };
  "POST /api/send": MessageView;
  "POST /api/reply": MessageView;
  "POST /api/stop": { stopping: boolean };
  "GET /api/devices": DeviceView[];
  /** Opens a pairing window on the device holding the person key (a running node only). */
  "POST /api/devices/pair": { code: string; expiresAt: number };
  "POST /api/devices/revoke": DeviceView;
  /** Class channels (docs/channels.md): listed beside people; created, changed and written to by name. */
  "GET /api/channels": ChannelView[];
  "POST /api/channels/create": ChannelView;
  "POST /api/channels/add": ChannelView;
  "POST /api/channels/remove": ChannelView;
  "POST /api/channels/admin": ChannelView;
  "POST /api/channels/close": ChannelView;
  "POST /api/channels/send": MessageView;
}

export type Endpoint = keyof ControlApi;

export type Route<E extends Endpoint> = (body: Record<string, unknown>) => ControlApi[E] | Promise<ControlApi[E]>;

export type Routes<E extends Endpoint> = { [K in E]: Route<K> };
