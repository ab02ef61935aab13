// How the school's directory travels: each entry as one statement envelope (kind 4) signed by the
// school key, like a person's keyring. Carriers see an envelope by the school's key under the
// directory's topic, its serial (the segment) and its size; the entry itself is sealed with the
// directory key (school.ts, sealEntry), so only the school's own laptops read names.
//
//   conversation = directoryTopic(school key) = sha256("pigeon-directory-v1" ‖ school key)[:16]
//   segment = the entry's serial | author = the school key | no recipients | lifetime a year
//   payload = u8 type=2 (STATEMENT_DIRECTORY) | sealed entry (school.ts)
import { concat, equalBytes, utf8 } from "./bytes.js";
import { generateSealingKeyPair, sha256 } from "./crypto.js";
import { EnvelopeKind, signEnvelope, verifyEnvelope, type Envelope } from "./envelope.js";
import type { Identity } from "./identity.js";
import { DirectoryError, openEntry, sealEntry, type DirectoryEntry, type SchoolKey } from "./school.js";

/** The statement type byte of a directory entry (a keyring is 1, keyring.ts). */
export const STATEMENT_DIRECTORY = 2;
/** Directory entries live long: a laptop that was away a whole term still learns of a revocation. */
export const DIRECTORY_LIFETIME_SECONDS = 365 * 24 * 3600;
const NO_KEY = new Uint8Array(8);

/** The 16-byte topic every directory entry of one school travels under. */
export function directoryTopic(schoolPublicKey: Uint8Array): Uint8Array {
  return sha256(utf8("pigeon-directory-v1"), schoolPublicKey).subarray(0, 16);
}

/** The school key as an envelope signer (a "person" whose only device is the school key itself). */
function schoolSigner(school: SchoolKey): Identity {
  return { name: "school", home: school.home, person: school.signing.publicKey, signing: school.signing, sealing: generateSealingKeyPair() };
}

/** One directory entry as the statement envelope the school server publishes. */
export function directoryStatement(school: SchoolKey, entry: DirectoryEntry, created: number): Envelope {
  return signEnvelope(
    schoolSigner(school),
    {
      kind: EnvelopeKind.Statement,
      conversation: directoryTopic(school.signing.publicKey),
      segment: entry.serial,
      recipients: [],
      created,
      lifetime: DIRECTORY_LIFETIME_SECONDS,
      keyId: NO_KEY,
    },
    concat([Uint8Array.of(STATEMENT_DIRECTORY), sealEntry(school, entry)]),
  );
}

/** True for a statement that claims to be a directory entry of `schoolPublicKey` (cheap: no signature check). */
export function isDirectoryStatement(env: Envelope, schoolPublicKey: Uint8Array): boolean {
  return (
    env.kind === EnvelopeKind.Statement && equalBytes(env.author, schoolPublicKey) && equalBytes(env.conversation, directoryTopic(schoolPublicKey))
  );
}

/**
 * Checks and opens a directory statement of this laptop's school. Throws DirectoryError with a reason
 * a log can show: not the school's signature, another school's, damaged, or an entry that does not
 * match its envelope.
 */
export function readDirectoryStatement(env: Envelope, schoolPublicKey: Uint8Array, directoryKey: Uint8Array): DirectoryEntry {
  if (env.kind !== EnvelopeKind.Statement) throw new DirectoryError("not a statement");
  if (!equalBytes(env.author, schoolPublicKey)) throw new DirectoryError("not signed by the school (another author)");
  if (env.device || !verifyEnvelope(env)) throw new DirectoryError("not signed by the school (forged signature)");
  if (!equalBytes(env.conversation, directoryTopic(schoolPublicKey))) throw new DirectoryError("a school statement under another topic");
  if (env.recipients.length !== 0) throw new DirectoryError("a directory entry names no recipients");
  if (env.payload[0] !== STATEMENT_DIRECTORY) throw new DirectoryError(`not a directory entry (statement type ${env.payload[0] ?? "missing"})`);
  const entry = openEntry(env.payload.subarray(1), schoolPublicKey, directoryKey);
  if (entry.serial !== env.segment) throw new DirectoryError(`entry ${entry.serial} travels as entry ${env.segment}`);
  return entry;
}
