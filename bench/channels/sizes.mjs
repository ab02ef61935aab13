#!/usr/bin/env node
// Envelope sizes of a class channel (node bench/channels/sizes.mjs, after npx tsc -b): the longest
// message (MAX_BODY_CHARS of text that does not compress) and the epoch key envelope, sealed once
// for a channel of 40 and of 64 people (the most a channel holds), against the 64 KiB carriers take.
import * as A from "@automerge/automerge";
import { generateIdentity, contactCard, sealChange, sealKey, sealEnvelope, newConversationKey, emptySegment, appendMessage, newActorId, keyId, formatHlc, MAX_BODY_CHARS, randomBytes, toHex } from "@pigeon/model";
const author = generateIdentity("mwalimu");
for (const n of [40, 64]) {
  const others = Array.from({ length: n - 1 }, (_, i) => generateIdentity(`child${i}`));
  const key = newConversationKey();
  const conv = randomBytes(16);
  const now = Date.now();
  const doc = A.clone(emptySegment(), { actor: newActorId(author.signing.publicKey) });
  // the longest message, of text that does not compress
  const body = Array.from({ length: MAX_BODY_CHARS }, () => String.fromCharCode(0x4e00 + Math.floor(Math.random() * 20000))).join("");
  const { change } = appendMessage(doc, { id: toHex(randomBytes(12)), authorKeyId: keyId(author.signing.publicKey), hlc: formatHlc({ wall: now, counter: 0 }), sentAt: now, body });
  const ch = sealChange(author, { conversation: conv, segment: 2 ** 42, recipients: others.map((o) => o.signing.publicKey), created: now }, key, change);
  const s1 = sealEnvelope(author.sealing, ch, others.map((o) => o.sealing.publicKey));
  const k = sealKey(author, { conversation: conv, recipients: others.map((o) => contactCard(o)), created: now }, key);
  const s2 = sealEnvelope(author.sealing, k, others.map((o) => o.sealing.publicKey));
  console.log(`${n} members (${n - 1} recipients, ${n} slots): longest message (${MAX_BODY_CHARS} chars, ${Buffer.byteLength(body)} bytes UTF-8) sealed ${s1.bytes.length} bytes (inner ${ch.bytes.length}); epoch key envelope sealed ${s2.bytes.length} bytes (inner ${k.bytes.length})`);
}
