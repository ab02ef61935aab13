#!/usr/bin/env node
// A mailbox with a long history (issue 20: "100 conversations of 10,000 messages ... under 200 MB;
// inbox and conversation views paged"): makes --conversations conversations of --messages messages
// each with the real Mailbox (sent 100 at once, as a send makes them: since sends queued together
// share a change, up to 64 messages per change and envelope), closes it, then in a fresh process opens it again and measures resident memory (VmRSS) and
// time at each step a user takes: open, the newest page of one conversation, every page of it back to
// its first message, the newest page of every conversation in turn, the web app's first screen (each folder's newest 50
// and its counts: Mailbox.folders()), and a folder as `pigeon outbox` lists it: its newest 100, and whole with --all
// (Mailbox.outbox()). Each step in a
// process of its own too, so one does not pay for another; VmHWM is the most the process held at any moment.
// The rest of the goal's node: --channel N makes a class channel of N members (the teacher and N-1
// children, each child a mailbox of its own linked to the teacher's) with --channel-messages posts,
// every one read by every child, before the conversations; --carried N stores N sealed envelopes
// carried for others. Steps then open the channel's newest page, and build the reconciliation
// sketches a peer's first contact asks for.
// Usage: node bench/node/history.mjs [--conversations N] [--messages M] [--page P] [--channel N] [--carried N] [--keep DIR]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { contactCard, generateIdentity, toHex, conversationId } from "@pigeon/model";
import { EnvelopeStore, fileStorage, Mailbox, memoryLinkPair, memoryStorage, openDatabase, SyncEngine } from "@pigeon/sync";
import { carriedRow, opaqueSealed } from "../lib/sealed.mjs";

const ALL_STEPS = ["open", "newest", "all-pages", "each", "channel", "sketches", "first-screen", "folder", "folder-all"];
const HELP = `node bench/node/history.mjs [options]
  --conversations N   conversations, each with a different contact (default 10)
  --messages M        messages sent in each (default 1000; segments hold 1,000)
  --page P            messages per page when paging a conversation (default 50)
  --channel N         a class channel of N members, the teacher included (default 0: none; at most 63)
  --channel-messages K  posts to it, each read by every child (default 1000: a full segment)
  --carried N         sealed envelopes carried for others, stored in the node's store (default 0)
  --keep DIR          make the history in DIR (or reuse it if it is there) and keep it
  --steps A,B,...     only these steps (default all: ${ALL_STEPS.join(",")})
Prints a table: step, time, VmRSS after it, the growth over the open mailbox, and the peak (VmHWM).`;

const options = {
  conversations: { type: "string", default: "10" },
  messages: { type: "string", default: "1000" },
  page: { type: "string", default: "50" },
  channel: { type: "string", default: "0" },
  "channel-messages": { type: "string", default: "1000" },
  carried: { type: "string", default: "0" },
  keep: { type: "string" },
  step: { type: "string" },
  steps: { type: "string" },
  help: { type: "boolean", default: false },
};
let opt;
try {
  opt = parseArgs({ options }).values;
} catch (e) {
  console.error(`${e.message}\n\n${HELP}`);
  process.exit(2);
}
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const whole = (name, least = 1) => {
  const n = Number(opt[name]);
  if (!Number.isInteger(n) || n < least) {
    console.error(`--${name} must be a whole number of at least ${least}, got ${opt[name]}\n\n${HELP}`);
    process.exit(2);
  }
  return n;
};
const C = whole("conversations");
const M = whole("messages");
const PAGE = whole("page");
const MEMBERS = whole("channel", 0);
const POSTS = MEMBERS ? whole("channel-messages") : 0;
const CARRIED = whole("carried", 0);
if (MEMBERS === 1 || MEMBERS > 63) {
  console.error(`--channel takes 2 to 63 members (the teacher and the children), got ${MEMBERS}\n\n${HELP}`);
  process.exit(2);
}
const STEPS = opt.steps === undefined ? ALL_STEPS : opt.steps.split(",");
if (STEPS.some((x) => !ALL_STEPS.includes(x))) {
  console.error(`--steps takes some of ${ALL_STEPS.join(",")}, got ${opt.steps}\n\n${HELP}`);
  process.exit(2);
}

/** VmRSS in MiB, after a full garbage collection (the steps run with --expose-gc): what stays, not what waits to be collected. */
const rss = () => {
  globalThis.gc?.();
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
};
/** VmHWM in MiB: the most resident memory the process had at any moment. */
const peak = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;

/** The mailbox of the history, opened as a node opens it. */
async function open(dir) {
  const meta = JSON.parse(readFileSync(join(dir, "bench.json"), "utf8"));
  const identity = reviveIdentity(meta.identity);
  return { mailbox: new Mailbox({ identity, storage: fileStorage(dir) }), meta };
}

// identities as JSON: every Uint8Array as {hex}
const freeze = (v) => JSON.stringify(v, (_, x) => (x instanceof Uint8Array ? { hex: toHex(x) } : x));
function reviveIdentity(json) {
  return JSON.parse(json, (_, x) => (x && typeof x === "object" && typeof x.hex === "string" && Object.keys(x).length === 1 ? Uint8Array.from(Buffer.from(x.hex, "hex")) : x));
}

/** One measured step, in this process (a child of the main one). */
async function step(dir, which) {
  const t0 = performance.now();
  const { mailbox, meta } = await open(dir);
  await mailbox.buddies(); // opened, Automerge loaded with the buddy list: what a node holds at "ready"
  const opened = { ms: performance.now() - t0, rss: rss() };
  const out = { opened };
  const conv = meta.conversations[0];
  const t = performance.now();
  if (which === "newest") {
    const page = await mailbox.messages({ conversation: conv, last: true, limit: PAGE });
    out.count = page.length;
  } else if (which === "all-pages") {
    let before;
    let n = 0;
    for (;;) {
      const page = await mailbox.messages({ conversation: conv, limit: PAGE, ...(before === undefined ? { last: true } : { beforeSeq: before }) });
      n += page.length;
      if (page.length < PAGE) break;
      before = page[0].arrivalSeq;
    }
    out.count = n;
  } else if (which === "each") {
    let n = 0;
    for (const c of meta.conversations) n += (await mailbox.messages({ conversation: c, last: true, limit: PAGE })).length;
    out.count = n;
  } else if (which === "channel") {
    if (!meta.channel) throw new Error("this history has no channel (--channel N)");
    const page = await mailbox.messages({ conversation: meta.channel, last: true, limit: PAGE });
    out.count = page.length;
    const read = page.at(-1)?.counts?.read;
    if (read !== MEMBERS - 1) throw new Error(`the channel's newest message says read by ${read}, not ${MEMBERS - 1}`);
  } else if (which === "sketches") {
    // what a peer's first contact makes the node build: the reconciliation sketches of every envelope held
    out.count = mailbox.envelopes.sketches().size;
  } else if (which === "first-screen") {
    const f = await mailbox.folders(PAGE);
    out.count = f.outbox.newest.length + f.inbox.newest.length + f.waiting.newest.length;
    if (f.outbox.total !== SENT) throw new Error(`the outbox counts ${f.outbox.total} messages, not ${SENT}`);
  } else if (which === "folder") {
    out.count = (await mailbox.outbox({ last: 101 })).length; // what \`pigeon outbox\` asks for: its newest 100, and one more
    if (out.count !== Math.min(101, SENT)) throw new Error(`the outbox listed ${out.count} messages, not ${Math.min(101, SENT)}`);
  } else if (which === "folder-all") {
    out.count = (await mailbox.outbox()).length;
    if (out.count !== SENT) throw new Error(`the outbox lists ${out.count} messages, not ${SENT}`);
  }
  out.ms = performance.now() - t;
  out.peak = peak();
  out.rss = rss();
  const m = process.memoryUsage();
  out.heap = m.heapUsed / 2 ** 20;
  out.external = m.external / 2 ** 20;
  await mailbox.close();
  console.log(JSON.stringify(out));
}

/** Every message the teacher wrote: the conversations' and the channel's (the outbox lists both). */
const SENT = C * M + POSTS;

async function until(fn, what, ms = 600_000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A class channel on the teacher's mailbox: N-1 children, each a mailbox in memory linked to the
 * teacher's, every post delivered to each and read by each (their receipts in the teacher's copy).
 */
async function makeChannel(me, mailbox) {
  const t0 = performance.now();
  const teacher = new SyncEngine(mailbox);
  const kids = Array.from({ length: MEMBERS - 1 }, (_, i) => {
    const identity = generateIdentity(`child${i + 1}`);
    const m = new Mailbox({ identity, storage: memoryStorage() });
    const s = new SyncEngine(m);
    const [la, lb] = memoryLinkPair(contactCard(me), contactCard(identity));
    teacher.attach(la);
    s.attach(lb);
    return { identity, m, s };
  });
  try {
    await until(() => kids.every((k) => k.m.contacts().length === 1) && mailbox.contacts().length >= kids.length, "the class to meet the teacher");
    const channel = await mailbox.createChannel("5B science");
    await mailbox.addToChannel("5B science", { addresses: kids.map((k) => `${k.identity.name}@${k.identity.home}`) });
    let last;
    for (let i = 0; i < POSTS; i++) {
      last = await mailbox.sendToChannel("5B science", `Lesson ${i + 1}: bring a leaf tomorrow, and a pencil: we draw it in class.`);
      if ((i + 1) % 200 === 0) process.stderr.write(`  channel: posted ${i + 1}/${POSTS}\n`);
    }
    const counts = async () => (await mailbox.message(last.id))?.counts;
    await until(async () => (await counts())?.delivered === kids.length, "every post delivered to every child");
    for (const k of kids) await k.m.markRead();
    await until(async () => (await counts())?.read === kids.length, "every child's receipts back");
    process.stderr.write(`  channel: ${MEMBERS} members, ${POSTS} posts read by all, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
    return channel.id;
  } finally {
    teacher.close();
    for (const k of kids) {
      k.s.close();
      await k.m.close().catch(() => {});
    }
  }
}

/** Stores `n` sealed envelopes carried for others in the history's store, in bulk (no fsync: scratch). */
function storeCarried(dir, n) {
  const t0 = performance.now();
  const db = openDatabase(join(dir, "pigeon.db"));
  db.pragma("synchronous = OFF");
  const store = new EnvelopeStore(db);
  const now = Date.now();
  for (let done = 0; done < n; ) {
    const batch = [];
    for (; batch.length < 10_000 && done < n; done++) batch.push(carriedRow(opaqueSealed(now - (n - done) * 50, 30 * 86_400, 100 + (done % 101)).bytes));
    store.putMany(batch, 1, now, true);
    if (done % 100_000 === 0 || done === n) process.stderr.write(`  carried: stored ${done}/${n}\n`);
  }
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  return (performance.now() - t0) / 1000;
}

async function make(dir) {
  const me = generateIdentity("teacher");
  const mailbox = new Mailbox({ identity: me, storage: fileStorage(dir) });
  const channel = MEMBERS ? await makeChannel(me, mailbox) : undefined;
  const people = Array.from({ length: C }, (_, i) => generateIdentity(`pupil${i}`));
  for (const p of people) await mailbox.addContact(contactCard(p));
  const t0 = performance.now();
  let sent = 0;
  for (const [i, p] of people.entries()) {
    const to = `${p.name}@${p.home}`;
    for (let done = 0; done < M; ) {
      const batch = Math.min(100, M - done);
      await Promise.all(Array.from({ length: batch }, (_, k) => mailbox.send(to, `message ${done + k} of ${M} to ${p.name}: see you at school tomorrow`)));
      done += batch;
      sent += batch;
      if (sent % 2000 === 0 || sent === C * M)
        process.stderr.write(`  made ${sent}/${C * M} messages (${i + 1}/${C} conversations), ${Math.round(sent / ((performance.now() - t0) / 1000))} msg/s\n`);
    }
  }
  await mailbox.close();
  const conversations = people.map((p) => toHex(conversationId([me.person, p.person])));
  const madeIn = (performance.now() - t0) / 1000;
  const carriedIn = CARRIED ? storeCarried(dir, CARRIED) : 0;
  writeFileSync(join(dir, "bench.json"), JSON.stringify({ name: me.name, identity: freeze(me), conversations, channel, C, M, MEMBERS, POSTS, CARRIED }));
  return { madeIn, carriedIn };
}

if (opt.step) {
  await step(opt.keep, opt.step);
  process.exit(0);
}

const dir = opt.keep ?? mkdtempSync(join(tmpdir(), "pigeon-history-"));
try {
  let made;
  if (!existsSync(join(dir, "bench.json"))) {
    console.error(`making ${C} conversations of ${M} messages${MEMBERS ? `, a channel of ${MEMBERS} with ${POSTS} posts` : ""}${CARRIED ? `, ${CARRIED} carried envelopes` : ""} in ${dir} ...`);
    made = await make(dir);
  }
  const meta = JSON.parse(readFileSync(join(dir, "bench.json"), "utf8"));
  const has = (x) => `${x.C} x ${x.M}, channel ${x.MEMBERS ?? 0}/${x.POSTS ?? 0}, carried ${x.CARRIED ?? 0}`;
  if (has(meta) !== has({ C, M, MEMBERS, POSTS, CARRIED })) throw new Error(`${dir} holds ${has(meta)}, not ${has({ C, M, MEMBERS, POSTS, CARRIED })}`);
  const what = {
    open: "open the mailbox (what a node holds at ready)",
    newest: `the newest page of one conversation (${PAGE} messages)`,
    "all-pages": `every page of that conversation, newest to oldest (${M} messages)`,
    each: `the newest page of each conversation in turn (${C} conversations)`,
    channel: `the channel's newest page (${MEMBERS} members, ${POSTS} posts, each read by all)`,
    sketches: `the sketches a peer's first contact builds (every envelope held: ${CARRIED} carried and the history's own)`,
    "first-screen": `the web app's first screen: each folder's newest ${PAGE} and its counts`,
    folder: `a folder as \`pigeon outbox\` lists it (its newest 100)`,
    "folder-all": `a whole folder, as \`pigeon outbox --all\` lists it (${SENT} messages)`,
  };
  // each row as its step ends: a long history's whole-folder step takes minutes
  const also = [MEMBERS ? `a channel of ${MEMBERS} with ${POSTS} posts read by all` : "", CARRIED ? `${CARRIED} carried envelopes${made ? ` (stored in ${made.carriedIn.toFixed(0)} s)` : ""}` : ""].filter(Boolean);
  console.log(`\n${C} conversations x ${M} messages${made ? ` (made in ${made.madeIn.toFixed(0)} s, ${Math.round((C * M) / made.madeIn)} msg/s)` : ""}${also.length ? `, ${also.join(", ")}` : ""}; each step in a fresh process:\n`);
  console.log("| step | time | VmRSS after | over the open mailbox | peak (VmHWM) |");
  console.log("|---|---|---|---|---|");
  for (const which of STEPS) {
    if (which === "channel" && !MEMBERS) continue;
    const r = spawnSync(
      process.execPath,
      ["--expose-gc", import.meta.filename, "--keep", dir, "--step", which, "--conversations", String(C), "--messages", String(M), "--page", String(PAGE), "--channel", String(MEMBERS), "--channel-messages", String(POSTS || 1), "--carried", String(CARRIED)],
      { encoding: "utf8", maxBuffer: 1 << 26 },
    );
    if (r.status !== 0) throw new Error(`step ${which} failed:\n${r.stderr}`);
    const row = JSON.parse(r.stdout.trim().split("\n").pop());
    const ms = which === "open" ? row.opened.ms : row.ms;
    const after = which === "open" ? row.opened.rss : row.rss;
    console.log(
      `| ${what[which]} | ${ms.toFixed(0)} ms | ${after.toFixed(0)} MiB | ${which === "open" ? "" : `+${(after - row.opened.rss).toFixed(0)} MiB`} | ${which === "open" ? "" : `${row.peak.toFixed(0)} MiB`} |`,
    );
  }
} finally {
  if (!opt.keep) rmSync(dir, { recursive: true, force: true });
}
