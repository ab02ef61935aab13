// The control API between the daemon (control.ts) and the `pigeon` command (cli.ts): every endpoint
// with what it answers, in one place that both sides import, so neither needs a cast.
import type { BuddyView, DeviceView, DraftView, MessageView, NearbyView, PeerView, PersonView, RequestView } from "@pigeon/sync";

export interface ContactInfo {
  address: string;
  fingerprint: string;
  firstSeen: number;
  lastSeen: number;
  /** met (nearby), card, accepted (a request), introduced (only their own claim). Being a buddy is the buddy list's. */
  how: string;
  /** The user's own name for them. */
  petname?: string;
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
}

/** The buddy list (the same on every device of the user) and everyone blocked, on it or not. */
export interface BuddyList {
  buddies: BuddyView[];
  blocked: PersonView[];
}

/** A laptop met nearby; `connected` only from a running node. */
export type NearbyInfo = NearbyView & { connected?: boolean };

export interface Report {
  from: string;
  fingerprint: string;
  at: number;
  note: string | null;
}

/** Every endpoint ("METHOD /path") and what it answers. Bodies are JSON objects, checked by the server. */
export interface ControlApi {
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
}

export type Endpoint = keyof ControlApi;

export type Route<E extends Endpoint> = (body: Record<string, unknown>) => ControlApi[E] | Promise<ControlApi[E]>;

export type Routes<E extends Endpoint> = { [K in E]: Route<K> };
