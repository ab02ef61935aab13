#!/usr/bin/env node
// Channel benchmark (issue 15): a teacher and a class of --members children, each laptop a mailbox
// with a real sync engine, every child linked to the teacher's laptop (a classroom around one hub)
// on memory links that count the bytes they carry. The teacher posts --messages messages to the
// channel, one at a time, each until every member's "delivered" receipt is back; then the same text
// as one-to-one messages to each child (what a teacher does without channels). Prints one markdown
// table: time from post to delivered-to-all, bytes on all links per message per member, envelopes.
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { fileStorage, Mailbox, SyncEngine, memoryLinkPair } from "@pigeon/sync";
import { contactCard, generateIdentity } from "@pigeon/model";

const HELP = `Usage: npm run bench:channels -- [--members N] [--messages N]     (or: node bench/channels/run.mjs)

  --members N    children in the class (default 40; at most 63)
  --messages N   messages posted to the channel, and sent one-to-one to each child (default 20)`;
const { values: opt } = parseArgs({ options: { members: { type: "string", default: "40" }, messages: { type: "string", default: "20" }, help: { type: "boolean", short: "h" } } });
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const MEMBERS = Number(opt.members);
const MESSAGES = Number(opt.messages);
if (!(MEMBERS >= 1 && MEMBERS <= 63 && MESSAGES >= 1)) {
  console.error(HELP);
  process.exit(2);
}

const base = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "pigeon-bench-channels-"));
const laptops = [];
function laptop(name) {
  const identity = generateIdentity(name);
  const m = new Mailbox({ identity, storage: fileStorage(join(base, name)) });
  const s = new SyncEngine(m);
  const l = { name, identity, m, s };
  laptops.push(l);
  return l;
}
const links = [];
function link(a, b) {
  const [la, lb] = memoryLinkPair(contactCard(a.identity), contactCard(b.identity));
  a.s.attach(la);
  b.s.attach(lb);
  links.push(la, lb);
}
const bytesOnLinks = () => links.reduce((n, l) => n + l.bytesSent, 0);
const framesOnLinks = () => links.reduce((n, l) => n + l.framesSent, 0);
async function until(fn, what, ms = 120_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

try {
  const teacher = laptop("mwalimu");
  const kids = Array.from({ length: MEMBERS }, (_, i) => laptop(`child${i + 1}`));
  for (const k of kids) link(teacher, k);
  await until(() => teacher.m.contacts().length === MEMBERS && kids.every((k) => k.m.contacts().length === 1), "everyone to meet the teacher");
  // one-to-one: a child's receipt goes back only to a buddy (else the message is a request)
  for (const k of kids) await k.m.addBuddy("mwalimu");
  await teacher.m.createChannel("5B science");
  await teacher.m.addToChannel("5B science", { addresses: kids.map((k) => k.name) });
  await until(() => kids.every((k) => k.m.channels().length === 1), "everyone to learn of the channel");
  await new Promise((r) => setTimeout(r, 500)); // settle what joining moved

  const body = "Bring a leaf tomorrow, and a pencil: we draw it in class.";
  const run = async (label, post, delivered) => {
    const bytes0 = bytesOnLinks();
    const frames0 = framesOnLinks();
    const env0 = laptops.reduce((n, l) => n + l.m.envelopes.ids().length, 0);
    const times = [];
    for (let i = 0; i < MESSAGES; i++) {
      const t0 = performance.now();
      const ids = await post(`${body} (${i + 1})`);
      await until(() => delivered(ids), `${label} message ${i + 1} delivered to all`);
      times.push(performance.now() - t0);
    }
    await new Promise((r) => setTimeout(r, 300)); // acknowledgements that trail the last receipt
    const bytes = bytesOnLinks() - bytes0;
    const frames = framesOnLinks() - frames0;
    const envelopes = laptops.reduce((n, l) => n + l.m.envelopes.ids().length, 0) - env0;
    times.sort((a, b) => a - b);
    return {
      label, median: times[Math.floor(times.length / 2)], max: times[times.length - 1],
      perMessagePerMember: bytes / MESSAGES / MEMBERS, frames: frames / MESSAGES, envelopes: envelopes / MESSAGES,
    };
  };
  const channel = await run(
    "channel (one envelope for all)",
    async (text) => [(await teacher.m.sendToChannel("5B science", text)).id],
    async ([id]) => (await teacher.m.message(id))?.counts?.delivered === MEMBERS,
  );
  const direct = await run(
    `${MEMBERS} one-to-one messages`,
    async (text) => Promise.all(kids.map(async (k) => (await teacher.m.send(k.name, text)).id)),
    async (ids) => (await Promise.all(ids.map((id) => teacher.m.message(id)))).every((m) => m?.state === "delivered"),
  );
  const mem = process.memoryUsage();
  console.log(`\n${MEMBERS} members, ${MESSAGES} messages each way, ${laptops.length} mailboxes in one process (rss ${(mem.rss / 2 ** 20).toFixed(0)} MiB)\n`);
  console.log("| how the teacher writes | post → delivered to all (median / max) | bytes on links per message per member | frames per message | envelopes stored per message (all laptops) |");
  console.log("|---|---|---|---|---|");
  for (const r of [channel, direct])
    console.log(`| ${r.label} | ${r.median.toFixed(0)} ms / ${r.max.toFixed(0)} ms | ${r.perMessagePerMember.toFixed(0)} | ${r.frames.toFixed(0)} | ${r.envelopes.toFixed(0)} |`);
  console.log(`\nchannel / one-to-one bytes: ${(channel.perMessagePerMember / direct.perMessagePerMember).toFixed(2)}x`);
} finally {
  for (const l of laptops) {
    l.s.close();
    await l.m.close().catch(() => {});
  }
  rmSync(base, { recursive: true, force: true });
}
