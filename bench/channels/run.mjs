#!/usr/bin/env node
// Channel benchmark (issue 15): a teacher and a class of --members children, each laptop a mailbox
// with a real sync engine, every child linked to the teacher's laptop (a classroom around one hub)
// on memory links that count the bytes they carry. The teacher posts --messages messages to the
// channel, one at a time, each until every member's "delivered" receipt is back; then the same text
// as one-to-one messages to each child (what a teacher does without channels). Prints one markdown
// table: time from post to delivered-to-all, bytes on all links per message per member, envelopes.
// --burst N: then N more messages posted at once, the whole class writing (the teacher and every
// child in turn), and checks that every member converges to the same history. --channels K: the same
// class in K channels, then one child's laptop is opened again from its files alone, to measure what
// one laptop holding K channels of the class takes in memory (run with node --expose-gc).
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { fileStorage, Mailbox, SyncEngine, memoryLinkPair } from "@pigeon/sync";
import { contactCard, generateIdentity, parseIdentityFile, serializeIdentity } from "@pigeon/model";

const HELP = `Usage: npm run bench:channels -- [--members N] [--messages N]     (or: node bench/channels/run.mjs)

  --members N    children in the class (default 40; at most 63)
  --messages N   messages posted to the channel, and sent one-to-one to each child (default 20)
  --burst N      then N messages written by the whole class at once; every member must converge (default 0)
  --channels K   the class in K channels (the burst is spread over them); then one child's laptop is
                 opened again to measure its memory (default 1)`;
if (process.argv[2] === "--open-laptop") {
  // (run by this script itself) a laptop's mailbox opened from its files: how much memory it takes
  const [dir, idFile] = process.argv.slice(3);
  const gc = globalThis.gc ?? (() => {});
  gc();
  const before = process.memoryUsage();
  const identity = parseIdentityFile(JSON.parse(readFileSync(idFile, "utf8")));
  const m = new Mailbox({ identity, storage: fileStorage(dir) });
  const held = (await m.messages({ limit: 10_000 })).filter((x) => x.channel).length;
  const listed = m.channels().length;
  gc();
  const after = process.memoryUsage();
  const mib = (n) => (n / 2 ** 20).toFixed(1);
  console.log(`one child's laptop opened from its files in a process of its own: ${listed} channel(s), ${held} channel messages: rss ${mib(after.rss)} MiB (+${mib(after.rss - before.rss)} MiB over the process before opening), heap +${mib(after.heapUsed - before.heapUsed)} MiB, external and WebAssembly +${mib(after.external + after.arrayBuffers - before.external - before.arrayBuffers)} MiB`);
  await m.close();
  process.exit(0);
}
const { values: opt } = parseArgs({
  options: {
    members: { type: "string", default: "40" }, messages: { type: "string", default: "20" }, burst: { type: "string", default: "0" },
    channels: { type: "string", default: "1" }, help: { type: "boolean", short: "h" },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const MEMBERS = Number(opt.members);
const MESSAGES = Number(opt.messages);
const BURST = Number(opt.burst);
const CHANNELS = Number(opt.channels);
if (!(MEMBERS >= 1 && MEMBERS <= 63 && MESSAGES >= 1 && BURST >= 0 && CHANNELS >= 1)) {
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
async function until(fn, what, ms = 120_000, every = 5) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

try {
  const teacher = laptop("mwalimu");
  const kids = Array.from({ length: MEMBERS }, (_, i) => laptop(`child${i + 1}`));
  for (const k of kids) link(teacher, k);
  await until(() => teacher.m.contacts().length === MEMBERS && kids.every((k) => k.m.contacts().length === 1), "everyone to meet the teacher");
  // one-to-one: a child's receipt goes back only to a buddy (else the message is a request)
  for (const k of kids) await k.m.addBuddy("mwalimu");
  const titles = Array.from({ length: CHANNELS }, (_, i) => (i === 0 ? "5B science" : `5B club ${i}`));
  for (const t of titles) {
    await teacher.m.createChannel(t);
    await teacher.m.addToChannel(t, { addresses: kids.map((k) => k.name) });
  }
  await until(() => kids.every((k) => k.m.channels().length === CHANNELS), "everyone to learn of the channels");
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
    async (text) => [(await teacher.m.sendToChannel(titles[0], text)).id],
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

  if (BURST > 0) {
    // the whole class writes at once (no waiting for receipts); then every member must hold the same history
    const writers = [teacher, ...kids];
    const bytes0 = bytesOnLinks();
    const t0 = performance.now();
    for (let i = 0; i < BURST; i++) await writers[i % writers.length].m.sendToChannel(titles[i % CHANNELS], `burst ${i + 1} from ${writers[i % writers.length].name}`);
    const posted = performance.now() - t0;
    // every message the laptop holds (a page is 100 by default: the burst is more)
    const historyOf = async (l) => (await l.m.messages({ limit: 10_000 })).filter((m) => m.channel && m.body.startsWith("burst ")).map((m) => `${m.channel}|${m.body}`).sort();
    let converged = 0;
    let told = performance.now();
    await until(async () => {
      const counts = await Promise.all(writers.map(async (l) => (await historyOf(l)).length));
      converged = counts.filter((n) => n === BURST).length;
      if (performance.now() - told > 5000) {
        // progress on a long run: how far the slowest laptop is
        told = performance.now();
        process.stderr.write(`  ${((told - t0) / 1000).toFixed(0)} s: ${converged} of ${writers.length} laptops hold all ${BURST}; the fewest held ${Math.min(...counts)}\n`);
      }
      return converged === writers.length;
    }, "every member to converge", 30 * 60_000, 250); // reading 41 histories is work of its own: not too often
    const took = performance.now() - t0;
    const reference = await historyOf(teacher);
    const same = (await Promise.all(writers.map(historyOf))).every((h) => h.length === reference.length && h.every((x, i) => x === reference[i]));
    const once = new Set(reference).size === BURST;
    await new Promise((r) => setTimeout(r, 1000));
    const burstBytes = bytesOnLinks() - bytes0;
    console.log(`\nburst: ${BURST} messages by ${writers.length} writers over ${CHANNELS} channel(s), posted in ${(posted / 1000).toFixed(1)} s; every member holds all of them ${(took / 1000).toFixed(1)} s after the first: ${same && once ? "the same history on every laptop, each message once" : "HISTORIES DIFFER"}; ${(burstBytes / BURST / MEMBERS).toFixed(0)} bytes on links per message per member`);
    if (!same || !once) process.exitCode = 1;
  }

  // one laptop's memory: a child's laptop opened again from its files alone, in a process of its own
  // (this one held 41 mailboxes: what it frees and keeps says nothing about one laptop)
  for (const l of laptops) {
    l.s.close();
    await l.m.close().catch(() => {});
  }
  laptops.length = 0;
  const child = kids[0];
  writeFileSync(join(base, "child.json"), JSON.stringify(serializeIdentity(child.identity)));
  const out = execFileSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), "--open-laptop", join(base, child.name), join(base, "child.json")], { encoding: "utf8" });
  console.log(`\n${out.trim()}`);
} finally {
  for (const l of laptops) {
    l.s.close();
    await l.m.close().catch(() => {});
  }
  rmSync(base, { recursive: true, force: true });
}
