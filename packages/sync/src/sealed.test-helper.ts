// Tests hand envelopes to a mailbox as a link would: changes and keys travel sealed (envelope version 3).
import { sealEnvelope, type ContactCard, type Envelope, type Identity } from "@pigeon/model";

/** What travels for `env` (signed by `author`): sealed to each recipient given and to the author's own devices. */
export function sealedBytes(author: Identity, env: Envelope, ...recipients: (Identity | ContactCard)[]): Uint8Array {
  return sealEnvelope(author.sealing, env, recipients.map((r) => ("sealing" in r ? r.sealing.publicKey : r.sealPublicKey))).bytes;
}
