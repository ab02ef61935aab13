// The public API of @pigeon/model. Everything else in src/ is internal: the raw box/secretbox and
// nonce functions, the byte Reader/Writer, the document policy's pieces, the handshake's internals.

// Bytes: comparing and converting, and the error every decoder throws.
export { DecodeError, compareBytes, equalBytes, fromHex, toHex, utf8 } from "./bytes.js";

// Hashing, randomness and the shapes of key pairs (the sealing and link encryption themselves stay
// inside envelope.ts and handshake.ts).
export { generateSealingKeyPair, hmacSha256, randomBytes, sha256, type SealingKeyPair, type SigningKeyPair } from "./crypto.js";

// Identities: name@home addresses, key pairs, contact cards, fingerprints, the identity file.
export {
  AddressError, DEFAULT_HOME, certifyDevice, contactCard, decodeCard, deviceSealing, encodeCard, fingerprint, formatAddress,
  generateIdentity, holdsPersonKey, keyId, newActorId, parseAddress, parseIdentityFile, serializeIdentity, validHome, validName,
  verifyDeviceCertificate,
  type Address, type ContactCard, type Identity, type IdentityFile,
} from "./identity.js";

// The school: its key, the signed directory of who is enrolled (entries, sealed for travel, folded
// into one answer in any order), vouching for a name@home, enrolment tokens.
export {
  DIRECTORY_KEY_BYTES, DirectoryError, DirectoryState, MAX_CLASS_CHARS, MAX_FEDERATION_VILLAGES, MAX_MAIL_RULES_BYTES, MAX_REASON_CHARS,
  MAX_SCHOOL_WORD_BYTES, checkSchoolWord, decodeEnrolment, decodeEntry,
  encodeEnrolment, encodeEntry, foldDirectory, generateSchool, openEntry, openSignedEntry, parseSchoolFile, schoolLinkSecret, sealEntry, serializeSchool,
  validClass, vouch,
  type DirectoryEntry, type EnrolEntry, type Enrolment, type Lookup, type RevokeDeviceEntry, type RevokePersonEntry,
  type FederationEntry, type MailRulesEntry, type PolicyEntry, type Role, type SchoolFile, type SchoolKey, type Vouch,
} from "./school.js";
// The directory's travel form: one statement envelope per entry, signed by the school key.
export {
  DIRECTORY_LIFETIME_SECONDS, STATEMENT_DIRECTORY, directoryStatement, directoryTopic, isDirectoryStatement, readDirectoryStatement,
} from "./school-statement.js";

// A person's devices: the keyring statement (devices, revocations, the rotated sealing key) and pairing.
export {
  KEYRING_LIFETIME_SECONDS, KeyringError, PairingError, checkPairingRequest, decodePairingGrant, deviceId, encodePairingGrant,
  identityFromGrant, isKeyring, keyringTopic, makeKeyring, newDeviceIdentity, newPairingCode, normalPairingCode, pairingLinkSecret, pairingRequest,
  readKeyring, sealingFromKeyring, type Keyring, type KeyringDevice, type PairingGrant,
} from "./keyring.js";

// Class channels: membership ops (owner- and admin-signed statements), their fold, epoch keys.
export {
  CHANNEL_LIFETIME_SECONDS, ChannelError, MAX_CHANNEL_MEMBERS, MAX_CHANNEL_OPS, MAX_TITLE_CHARS, STATEMENT_CHANNEL, channelIdOf,
  channelMemberLists, channelSecretFrom, channelStatement, chooseChannelKey, memberListKey, decodeOp, encodeOp, foldChannel, isAdmin, isChannelStatement, isMember,
  SEGMENTS_PER_EPOCH, channelSegmentBase, inEpochSegments, newChannelOps, opId, readChannelStatement, sameMembers,
  type ChannelAction, type ChannelMember, type ChannelMemberCard, type ChannelOp, type ChannelState, type EpochKey, type FoldOptions,
  type HeldOp, type RefusedOp,
} from "./channel.js";

// The authenticated, encrypted pipe between sync and peers.
export type { PeerLink } from "./link.js";

// Sealed envelopes: sign, seal, decode, verify, open; conversation keys; delivery acks.
export {
  CREATED_GRAIN_MS, DEFAULT_LIFETIME_SECONDS, EnvelopeError, paddedLength, EnvelopeKind, MAX_ACK_IDS, conversationKeyId, decodeEnvelope, decodeInner, encodeInner, envelopeId,
  isAddressedTo, newConversationKey, openChange, sealChange, sealKey, signEnvelope, signerOf, verifyEnvelope,
  type Envelope, type EnvelopeHeader,
} from "./envelope.js";

// Envelope version 3: the routing wrapper carriers see (recipient tags, locks), and receipts.
export {
  MAX_SLOTS, SEALED_VERSION, TAG_BYTES, decodeReceipt, decodeSealed, envelopeForm, lockOf, makeReceipt, openSealed, recipientLocks, recognises, sealEnvelope, tagFor, unseal,
  type Receipt, type ReceiptEntry, type SealedEnvelope, type SealedSlot, type Unsealed,
} from "./sealed.js";

// Conversation segment documents: ids, genesis, appending messages, receipt keys.
export {
  ATTACHMENTS_SEGMENT, CORRECTIONS_SEGMENT, isCorrectionsSegment, MAX_FILE_BYTES, MAX_PICTURE_BYTES, PROFILE_SEGMENT, SEGMENT_BASE, segmentKind, type SegmentKind, MAX_BODY_CHARS, SEGMENT_MESSAGE_LIMIT, addReceipt, appendMessage, appendMessages, checkChange, conversationId, emptySegment, newMessageId, receiptKey, receiptOf, putReceipt, allReceipts, checkReceiptTargets, hasChanges, segmentDocumentId,
  type ConversationDoc, type MessageRecord, type NewMessage, type ReceiptState,
} from "./conversation.js";

// The roaming buddy list shared by one person's devices: its merge rule, edits, reading view and admission check.
export {
  MAX_GROUPS, MAX_GROUP_CHARS, addBuddy, addToGroup, blockBuddy, blockedKeys, buddies, buddy, buddyListConversation, checkBuddyListChange,
  checkPersonalChange, emptyBuddyList, removeBuddy, removeFromGroup, renameBuddy, unblockBuddy,
  type Buddy, type BuddyCard, type BuddyEdit, type BuddyListDoc, type BuddyListVerdict, type HowKnown,
} from "./buddy-list.js";

// Drafts shared by one person's devices (the second document of the person's own conversation):
// merge rule, edits, reading view and admission check.
export {
  DRAFTS_SEGMENT, checkDraftsChange, checkPersonalDraftsChange, deleteDraft, draft, drafts, emptyDrafts, saveDraft, validDraftId,
  type Draft, type DraftEdit, type DraftRecord, type DraftsDoc, type DraftsVerdict,
} from "./drafts.js";

// The checks a member runs on an envelope before Automerge sees its change.
export { admitEnvelope, type Admission, type AdmissionContext } from "./admission.js";

// Hybrid logical clock.
export { HLC_ZERO, formatHlc, hlcReceive, hlcTick, parseHlc, type Hlc } from "./hlc.js";

// The link handshake (for transports): start one, its errors, its limits, its version (which mDNS
// announces).
export {
  HANDSHAKE_MESSAGE_MAX_BYTES, HANDSHAKE_VERSION, HandshakeError, OPEN_TRUST, SESSION_FRAME_OVERHEAD, startHandshake,
  type Handshake, type HandshakeOptions, type HandshakeRandomness, type LinkTrust, type HandshakeRole, type HandshakeStep, type LinkPeer, type Session,
} from "./handshake.js";

// Sync frames inside a link.
export { CHAT_STATES, crowdHash, CROWD_SALT_BYTES, EPOCH_BYTES, FrameType, probeCheck, PROBE_CHECK_BYTES, type NotMineEntry, MAX_CROWD, MAX_IDS_PER_FRAME, SHORT_KEY_BYTES, MAX_PROBES_PER_FRAME, decodeFrame, encodeFrame, type ChatState, type ProbeEntry, type SyncFrame } from "./wire.js";

// Reconciliation: IBLT sketches and slices of the id space.
export { IBLT_KEY_BYTES, Iblt, SKETCH_LEVELS, SPLIT_LEVEL } from "./iblt.js";
export {
  MAX_RANGE_DEPTH, WHOLE_RANGE, WHOLE_WEIGHT, inRange, rangeBounds, rangeChildren, rangeWeight, type IdRange,
} from "./id-range.js";

// What travels inside ordinary messages between a laptop and its school's e-mail gateway (docs/gateway.md).
export {
  MAX_MAIL_ADDRESS_CHARS, MAX_SUBJECT_CHARS, formatIncomingMail, formatMailRequest, formatMailStatus, isMailAddress, oneLine,
  parseIncomingMail, parseMailAddress, parseMailRequest, parseMailStatus, parseModerationCommand, formatUnreadNotice, parseUnreadNotice,
  type IncomingMail, type MailRequest, type MailState, type MailStatus, type ModerationCommand, type UnreadNotice,
} from "./gateway-mail.js";
// The school's signed rules for its e-mail gateway.
export {
  RulesError, addressAllowed, mayMail, openGatewayRules, parseGatewayRules, signGatewayRules, type GatewayRules, type MailWriter, type SignedRulesFile,
} from "./gateway-rules.js";
export {
  DRAWING_PREFIX,
  decodeDrawing,
  drawingSvg,
  encodeDrawing,
  looksLikeDrawing,
  type Stroke,
} from "./drawing.js";
// Between villages: relay points, the federation, route announcements, the routing table (docs/routing.md).
export {
  MAX_ANNOUNCEMENT_LIFETIME_S, MAX_ROUTE_ENTRIES, MAX_ROUTE_HOPS, ROUTE_INFINITY, RouteError, RoutingTable, STATEMENT_ROUTES, UNKNOWN_WAIT_MS,
  announcementStatement, checkRelayCertificate, decodeRelayCertificate, encodeRelayCertificate, isAnnouncement, issueRelayCertificate,
  openFederation, readAnnouncement, relayKeyId, relayKeyPair, routesTopic, signFederation, villagesAnnounced, safeCarrierLabel, MAX_CARRIER_LABEL_BYTES, type VillageWay, type TableSnapshot,
  type Announcement, type Carrier, type Federation, type HearResult, type RelayCertificate, type Route, type RouteEntry,
} from "./routes.js";
export { decodeRelayGrant, encodeRelayGrant } from "./routes.js";
export { BETWEEN_VILLAGES_KIND, decodeBetweenVillages, forVillage, isBetweenVillages, type BetweenVillages } from "./between.js";
export { mailsCountedToday, withinQuota } from "./mail-quota.js";
