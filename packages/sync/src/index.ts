// The public API of @pigeon/sync. Everything else in src/ is internal: the mailbox's parts, the
// local state and document store behind it, statement caches, the send queue.

// A Pigeon node as a library: open it with storage (and a network, finders), use it, shut it down.
export {
  PigeonNode, type FoundPeer, type LinkSource, type NodeLimits, type PeerFinder, type PigeonNodeOptions,
} from "./node.js";

// Storage given to a node: the durable data-directory layout, or its parts (a database and a
// documents adapter, e.g. openDatabase(":memory:") with MemoryStorage for tests and simulators).
export { fileStorage, memoryStorage, type NodeStorage } from "./storage.js";
export {
  closeDatabase, DamagedStoreError, EnvelopeStore, storeCheck, type OpenOptions, type StoreCheck, NOBODY, opaque, openDatabase, storable, type HeldEnvelope, type Storable, type StoreStats, type StoredEnvelope,
} from "./envelope-store.js";
export type { DocumentStorage } from "./document-store.js";
export { DurableFileStorage } from "./durable-storage.js";
export { MemoryStorage } from "./memory-storage.js";

// The mailbox: send and receive messages, receipts, drafts, contacts, the buddy list, and the views of them.
export {
  Mailbox, MailboxError,
  type BuddiesChange, type BuddyView, type Candidate, type NearbyView, type PersonView, type CarrierLimits, type DraftView, type Incoming, type MailboxEvents, type MailboxOptions, type MessageQuery, type MessageState,
  type FolderPage, type FolderPages, type MessageView, type ReceiptEvent, type ReceiveResult, type RequestView,
} from "./mailbox/index.js";
// The school: its directory on this laptop, what it says of people (vouching), enrolling; writing entries on a school server.
export { School, type SchoolMember, type SchoolView, type VouchView } from "./mailbox/index.js";
export type { ChannelMemberView, ChannelView } from "./mailbox/index.js";
export type { Forgetting, ForgottenArrival } from "./mailbox/index.js";
export type { Contact } from "./local-state.js";

// A person's devices: pairing a new one (this side, the device waiting), listing and revoking them.
export { pairDevice, type Paired, type PairOptions } from "./pairing.js";
export { PAIRING_WINDOW_MS, type DeviceView } from "./mailbox/devices.js";

// Reconciling sealed stores over PeerLinks, and links in memory that keep the same rules.
export { LIVE_BURST, LIVE_PER_SECOND, SyncEngine, type PairingHooks, type PeerView, type ReconcileStats, type SyncOptions, type SyncStore } from "./sync-engine.js";
export { memoryLinkPair, type MemoryPeerLink } from "./memory-link.js";

// One logger for the node.
export { createLog, silentLog, type Log, type LogLevel, type LogOptions } from "./log.js";

// Writing a small file so that a crash leaves the old or the new contents, never a mix.
export { writeFileAtomic } from "./atomic-file.js";

// One process at a time has a data directory's mailbox open: the node, or the pigeon command
// reading with the node stopped.
export { MAILBOX_LOCK_FILE, tryLockMailbox, type MailboxLock } from "./mailbox-lock.js";

// A relay point between villages: its routing table fed by links and route announcements (docs/routing.md).
export { MULE_HOME, RelayPoint, carrierLabel, type RelayPointOptions } from "./relay-point.js";
export { loadContacts, saveContacts, type LearntCarrier } from "./relay-contacts.js";
