// The mailbox's public shapes: what the views show, what a receive answers, the carrier limits.
import type { Envelope, HowKnown, Identity } from "@pigeon/model";
import type { Contact } from "../local-state.js";
import type { VouchView } from "./school.js";
import type { ForgottenArrival } from "./forgetting.js";

export class MailboxError extends Error {
  constructor(
    readonly code: "unknown-address" | "ambiguous-address" | "bad-input" | "not-found" | "storage" | "blocked",
    message: string,
    readonly candidates?: Candidate[],
  ) {
    super(message);
    this.name = "MailboxError";
  }
}

/** One of several people an ambiguous name could mean: enough for a user to choose. */
export interface Candidate {
  address: string;
  fingerprint: string;
  lastSeen: number;
  petname?: string;
}

export type MessageState = "waiting" | "sent" | "delivered" | "read";

export interface MessageView {
  id: string;
  conversation: string;
  direction: "in" | "out";
  from: string;
  to: string[];
  body: string;
  hlc: string;
  /** The author's clock's claim, not a fact. */
  claimedSentAt: number;
  /**
   * A correction (XEP-0308): the id of the author's own earlier message whose text this replaces. Set
   * only when that message is known here and has the same author; otherwise it is a plain message.
   */
  replaces?: string;
  /** In whole-folder listings (inbox, outbox): the message shows its latest correction's text, written then. */
  correctedAt?: number;
  /** A file inside the message (its text is the file's name): `Mailbox.file(id)` has the bytes. */
  file?: { type: string; size: number };
  /** When, and as which number, it first reached (or was written on) this laptop: MAM order. */
  arrivedAt?: number;
  arrivalSeq?: number;
  /**
   * Incoming: how many laptops the copy that brought it went through, its writer's included (1 =
   * straight from the writer's laptop, 2 = through one carrier). Unknown for messages from before it was kept.
   */
  hops?: number;
  /**
   * Outgoing to someone of another village: that village, the first relay point on the way and when
   * it is expected there, by what this laptop's relay point last announced (docs/routing.md); and what
   * takes it there from the relay point ("the tuesday bus"), when the relay point names it.
   */
  village?: { dest: string; via?: string; carrier?: string; expectedAt?: number };
  /** Outgoing only. */
  state?: MessageState;
  handedAt?: number;
  /** Whether the first device that took it was the recipient's ("direct") or a carrier's. */
  sentVia?: "direct" | "carrier";
  /** Address of the first device that took it. */
  sentTo?: string;
  deliveredAt?: number;
  /** How the recipient's delivered receipt came back: straight from them, or through carriers. */
  deliveredVia?: "direct" | "carriers";
  /** Outgoing: when the recipient read it. Incoming: when this user marked it read (absent = unread). */
  readAt?: number;
  /** Incoming from someone who is not a buddy: shown under requests, not in the inbox. */
  request?: true;
  /** On a school's laptop: what the school says of the sender (incoming) or of each recipient (outgoing). */
  fromVouch?: VouchView;
  toVouch?: VouchView[];
  /** Incoming from someone the user blocked: shown nowhere (neither inbox nor requests). */
  blocked?: true;
  /** Written in a channel: its name. */
  channel?: string;
  /** Outgoing in a channel: of its other members now, how many have it and how many read it ("delivered to 31 of 40, read by 23"). */
  counts?: { members: number; delivered: number; read: number };
  /** Outgoing in a channel: who of its other members read it (their addresses). */
  readBy?: string[];
}

/** Someone, as the user names them. */
export interface PersonView {
  /** How they are shown and typed (`name@home`, or `name@home#FPRT` when not unique or only their claim). */
  address: string;
  fingerprint: string;
  /** Hex of their person key. */
  signPublicKey: string;
  /** What they call themselves, and their home (their XMPP address is name@home), when known here. */
  name?: string;
  home?: string;
}

/** One buddy on the user's buddy list (shared by all the user's devices). */
export interface BuddyView extends PersonView {
  name: string;
  home: string;
  /** The user's own name for them. */
  petname?: string;
  groups: string[];
  /** On the list but blocked: treated as not a buddy until unblocked. */
  blocked: boolean;
  /** How the user knows their keys are theirs: met nearby, a card, the school, an accepted request. */
  how: HowKnown;
  addedAt: number;
}

/** A laptop met nearby: offered to the user, who chooses whether to make them a buddy. */
export interface NearbyView extends PersonView {
  lastMet: number;
  buddy: boolean;
}

/** The buddy list after a change (the 'buddies' event). */
export interface BuddiesChange {
  buddies: BuddyView[];
  /** Everyone blocked, on the list or not. */
  blocked: PersonView[];
  /** "here": this device changed it; "device": a change from another of the user's devices arrived. */
  from: "here" | "device";
}

/** Messages from one person who is not a buddy, waiting for the user to accept, ignore or report them. */
export interface RequestView {
  from: string;
  fingerprint: string;
  /** On a school's laptop: what the school says of them (an impostor is flagged here). */
  vouch?: VouchView;
  /** Their newest messages (at most as many as asked for), oldest first. */
  messages: MessageView[];
  /** How many messages they sent. */
  total: number;
}

/** A folder as a first screen shows it: its newest messages (newest first) and how many it holds. */
export interface FolderPage {
  newest: MessageView[];
  total: number;
}

export interface FolderPages {
  inbox: FolderPage & { unread: number };
  outbox: FolderPage;
  waiting: FolderPage;
  requests: RequestView[];
}

export interface DraftView {
  id: string;
  to: string;
  body: string;
  updatedAt: number;
}

/** A page of messages, in arrival order on this laptop (the order XMPP archives use). */
export interface MessageQuery {
  /** Hex conversation id. */
  conversation?: string;
  direction?: "in" | "out";
  /** Only messages that arrived after / before this arrival number. */
  afterSeq?: number;
  beforeSeq?: number;
  /** At most this many (default 100); with `beforeSeq` (or `last`) the newest ones are taken. */
  limit?: number;
  last?: boolean;
  unread?: boolean;
}

/** An envelope as it came off a link. */
export interface Incoming {
  bytes: Uint8Array;
  /** Hops it has travelled, this one included. */
  hops: number;
  /** Who handed it over (for messages) and their key (for the per-source budget). */
  from?: string;
  source?: Uint8Array;
  /** Spray-and-wait tokens handed over with it. */
  copies?: number;
}

export interface ReceiveResult {
  stored: boolean;
  /** Set when the envelope was refused at the door (not stored). */
  refused?: string;
  /** The refusal was this laptop's problem (disk full): ask for it again later. */
  retry?: boolean;
}

export interface ReceiptEvent {
  conversation: string;
  messageId: string;
  reader: string;
  state: "delivered" | "read";
  at: number;
}

export type MailboxEvents = {
  /** A new envelope entered the sealed store (ours or carried): tell the peers. */
  envelope: [{ id: Uint8Array }];
  /** Something a user would see changed (new message, new state). */
  changed: [];
  /** A message appeared for the first time (received, or written here). */
  message: [MessageView];
  /** Someone's picture (their avatar) arrived or changed: `Mailbox.pictureOf(from)` has it. */
  picture: [{ from: string }];
  /** A receipt appeared for the first time. */
  receipt: [ReceiptEvent];
  /** A laptop was met for the first time (a contact, not a buddy: the user chooses buddies). */
  contact: [Contact];
  /** The buddy list changed, here or on another of the user's devices (XMPP roster and block list pushes). */
  buddies: [BuddiesChange];
  /** This device's identity changed (a paired device's sealing key rotated, a keyring applied): save it. */
  identity: [Identity];
  /** A device was revoked (here, or its person's keyring or the school said so): close its links. */
  "device-revoked": [Uint8Array];
  /** A change never opened here arrived in a conversation segment this node forgot (forgetting.ts): not read. */
  "forgotten-arrival": [ForgottenArrival];
};

export interface CarrierLimits {
  /** Storage for envelopes carried for others. Default 50 MB. */
  quotaBytes: number;
  /** Most that one handing laptop may have us carry. Default a tenth of the quota. */
  perSourceBytes: number;
  /** Most carried for one author identity. Default a tenth of the quota. */
  perAuthorBytes: number;
  /** Larger carried envelopes are refused. Default 64 KiB. */
  maxCarriedEnvelopeBytes: number;
  /**
   * Envelopes addressed to this user that cannot be opened yet (no key, unknown conversation) are
   * kept at most this many bytes per author, so a stranger cannot fill the disk with envelopes that
   * sit "pending" for ever. Default 1 MiB.
   */
  unopenedPerAuthorBytes: number;
  /** Largest envelope addressed to this user that is taken. Default 512 KiB. */
  maxOwnEnvelopeBytes: number;
  /**
   * Most changes (messages, read receipts) taken from one member of a class channel per key epoch
   * (channel-budget.ts). Default 2,000; for the owner and admins, who write to the whole class, 20,000.
   */
  channelMemberPerEpoch: number;
  channelAdminPerEpoch: number;
}

export function carrierLimits(quotaBytes = 50 * 1024 * 1024, over: Partial<CarrierLimits> = {}): CarrierLimits {
  return {
    quotaBytes,
    perSourceBytes: Math.max(64 * 1024, Math.floor(quotaBytes / 10)),
    perAuthorBytes: Math.max(64 * 1024, Math.floor(quotaBytes / 10)),
    maxCarriedEnvelopeBytes: 64 * 1024,
    unopenedPerAuthorBytes: 1024 * 1024,
    maxOwnEnvelopeBytes: 512 * 1024,
    channelMemberPerEpoch: 2000,
    channelAdminPerEpoch: 20_000,
    ...over,
  };
}
