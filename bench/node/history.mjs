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
// Usage: node bench/node/history.mjs [--conversations N] [--messages M] [--page P] [--keep DIR]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { contactCard, generateIdentity, toHex, conversationId } from "@pigeon/model";
import { fileStorage, Mailbox } from "@pigeon/sync";

const ALL_STEPS = ["open", "newest", "all-pages", "each", "first-screen", "folder", "folder-all"];
const HELP = `node bench/node/history.mjs [options]
  --conversations N   conversations, each with a different contact (default 10)
  --messages M        messages sent in each (default 1000; segments hold 1,000)
  --page P            messages per page when paging a conversation (default 50)
  --keep DIR          make the history in DIR (or reuse it if it is there) and keep it
  --steps A,B,...     only these steps (default all: ${ALL_STEPS.join(",")})
Prints a table: step, time, VmRSS after it, the growth over the open mailbox, and the peak (VmHWM).`;

const { values: opt } = parseArgs({
  options: {
    conversations: { type: "string", default: "10" },
    messages: { type: "string", default: "1000" },
    page: { type: "string", default: "50" },
    keep: { type: "string" },
    step: { type: "string" },
    steps: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
const whole = (name) => {
  const n = Number(opt[name]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a whole number above 0, got ${opt[name]}\n\n${HELP}`);
    process.exit(2);
  }
  return n;
};
const C = whole("conversations");
const M = whole("messages");
const PAGE = whole("page");
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
  } else if (which === "first-screen") {
    const f = await mailbox.folders(PAGE);
    out.count = f.outbox.newest.length + f.inbox.newest.length + f.waiting.newest.length;
    if (f.outbox.total !== C * M) throw new Error(`the outbox counts ${f.outbox.total} messages, not ${C * M}`);
  } else if (which === "folder") {
    out.count = (await mailbox.outbox({ last: 101 })).length; // what \`pigeon outbox\` asks for: its newest 100, and one more
    if (out.count !== Math.min(101, C * M)) throw new Error(`the outbox listed ${out.count} messages, not ${Math.min(101, C * M)}`);
  } else if (which === "folder-all") {
    out.count = (await mailbox.outbox()).length;
    if (out.count !== C * M) throw new Error(`the outbox lists ${out.count} messages, not ${C * M}`);
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

async function make(dir) {
  const me = generateIdentity("teacher");
  const mailbox = new Mailbox({ identity: me, storage: fileStorage(dir) });
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
  writeFileSync(join(dir, "bench.json"), JSON.stringify({ name: me.name, identity: freeze(me), conversations, C, M }));
  return (performance.now() - t0) / 1000;
}

if (opt.step) {
  await step(opt.keep, opt.step);
  process.exit(0);
}

const dir = opt.keep ?? mkdtempSync(join(tmpdir(), "pigeon-history-"));
try {
  let madeIn;
  if (!existsSync(join(dir, "bench.json"))) {
    console.error(`making ${C} conversations of ${M} messages in ${dir} ...`);
    madeIn = await make(dir);
  }
  const meta = JSON.parse(readFileSync(join(dir, "bench.json"), "utf8"));
  if (meta.C !== C || meta.M !== M) throw new Error(`${dir} holds ${meta.C} x ${meta.M}, not ${C} x ${M}`);
  const what = {
    open: "open the mailbox (what a node holds at ready)",
    newest: `the newest page of one conversation (${PAGE} messages)`,
    "all-pages": `every page of that conversation, newest to oldest (${M} messages)`,
    each: `the newest page of each conversation in turn (${C} conversations)`,
    "first-screen": `the web app's first screen: each folder's newest ${PAGE} and its counts`,
    folder: `a folder as \`pigeon outbox\` lists it (its newest 100)`,
    "folder-all": `a whole folder, as \`pigeon outbox --all\` lists it (${C * M} messages)`,
  };
  // each row as its step ends: a long history's whole-folder step takes minutes
  console.log(`\n${C} conversations x ${M} messages${madeIn ? ` (made in ${madeIn.toFixed(0)} s, ${Math.round((C * M) / madeIn)} msg/s)` : ""}; each step in a fresh process:\n`);
  console.log("| step | time | VmRSS after | over the open mailbox | peak (VmHWM) |");
  console.log("|---|---|---|---|---|");
  for (const which of STEPS) {
    const r = spawnSync(process.execPath, ["--expose-gc", import.meta.filename, "--keep", dir, "--step", which, "--conversations", String(C), "--messages", String(M), "--page", String(PAGE)], { encoding: "utf8", maxBuffer: 1 << 26 });
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
