#!/usr/bin/env node
// What one read receipt costs a laptop of a class channel (npm run bench:receipts): a full segment
// (1,000 messages) that every other member of a channel of 40 has read, then more read receipts
// applied one by one, as they come in a classroom where each child reads as the messages arrive.
// Side by side in one run: the receipts in the segment's one map (how messages written before
// handshake version 6 keep them) and in each message's own map (version 6 on, conversation.ts).
// In-process, Automerge and the model only: no disk, no network.
import * as A from "@automerge/automerge";
import { appendMessages, addReceipt, emptySegment, formatHlc, generateIdentity, keyId, newActorId, randomBytes, receiptKey, toHex } from "@pigeon/model";

const args = process.argv.slice(2);
if (args.includes("-h") || args.includes("--help")) {
  console.log(`Usage: npm run bench:receipts [-- --members N --messages N --samples N]

One segment of --messages messages (default 1000, a full segment) by a teacher, read by every other
member of a channel of --members (default 40); then --samples (default 30) more read receipts, each
applied alone to the teacher's copy, timed. Prints the median and 90th percentile per receipt for the
segment's one receipts map (messages from before version 6) and for a map per message.`);
  process.exit(0);
}
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} must be a whole number of at least 1`);
    process.exit(2);
  }
  return v;
};
const MEMBERS = opt("members", 40);
const MESSAGES = opt("messages", 1000);
const SAMPLES = opt("samples", 30);
if (SAMPLES > MESSAGES) {
  console.error("--samples may be at most --messages (each sample reads another message)");
  process.exit(2);
}

const teacher = generateIdentity("mwalimu");
const readers = Array.from({ length: MEMBERS - 1 }, (_, i) => keyId(generateIdentity(`child${i}`).signing.publicKey));
const late = keyId(generateIdentity("late").signing.publicKey); // a child whose receipts are timed
const now = Date.now();
const messages = Array.from({ length: MESSAGES }, (_, i) => ({
  id: toHex(randomBytes(12)), authorKeyId: keyId(teacher.signing.publicKey), hlc: formatHlc({ wall: now, counter: i }), sentAt: now, body: `message ${i}`,
}));

/** The segment as each layout holds it once every reader has read every message. */
function segment(perMessage) {
  let doc = A.clone(emptySegment(), { actor: newActorId(teacher.signing.publicKey) });
  if (perMessage) doc = appendMessages(doc, messages).doc;
  else
    doc = A.change(doc, (d) => {
      // as a node before version 6 wrote them: no map in the message
      for (const m of messages) d.messages.push({ id: new A.ImmutableString(m.id), author: new A.ImmutableString(m.authorKeyId), hlc: new A.ImmutableString(m.hlc), sentAt: m.sentAt, body: new A.ImmutableString(m.body) });
    });
  doc = A.change(doc, (d) => {
    for (let i = 0; i < MESSAGES; i++)
      for (const r of readers) {
        if (perMessage) d.messages[i].receipts[`${r}/read`] = now;
        else d.receipts[receiptKey(messages[i].id, r, "read")] = now;
      }
  });
  return doc;
}

function measure(perMessage) {
  let doc = segment(perMessage);
  let child = A.clone(doc, { actor: newActorId(generateIdentity("late-device").signing.publicKey) });
  const times = [];
  for (let k = 0; k < SAMPLES; k++) {
    const made = addReceipt(child, messages[MESSAGES - 1 - k].id, late, "read", now);
    child = made.doc;
    const t = performance.now();
    [doc] = A.applyChanges(doc, [made.change]);
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  const keys = perMessage ? doc.messages.reduce((n, m) => Math.max(n, Object.keys(m.receipts ?? {}).length), 0) : Object.keys(doc.receipts).length;
  return { median: times[Math.floor(SAMPLES / 2)], p90: times[Math.min(SAMPLES - 1, Math.floor(SAMPLES * 0.9))], keys };
}

console.log(`Read receipts in a class channel: ${MEMBERS} members, a segment of ${MESSAGES} messages each read by ${MEMBERS - 1}, ${SAMPLES} more receipts applied one by one (${new Date().toISOString()})\n`);
const flat = measure(false);
const own = measure(true);
console.log("| where receipts are kept | keys in the map a receipt goes into | per receipt applied, median | p90 | vs one map |");
console.log("|---|---|---|---|---|");
console.log(`| the segment's one map (before version 6) | ${flat.keys} | ${flat.median.toFixed(2)} ms | ${flat.p90.toFixed(2)} ms | 1.00x |`);
console.log(`| each message's own map | ${own.keys} | ${own.median.toFixed(2)} ms | ${own.p90.toFixed(2)} ms | ${(own.median / flat.median).toFixed(3)}x |`);
