// What a new user meets in the first hour with the `pigeon` command: the real command, real daemons,
// asserting what the user sees (output, exit codes, files).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tryLockMailbox } from "@pigeon/sync";
import { api, cleanupAll, CLI, freePort, onCleanup, pigeon, pigeonJson, ROOT, run, startDaemon, tempDir, waitFor, type Daemon, type Result } from "./helpers.js";

afterAll(cleanupAll);

const quiet = ["--no-mdns", "--no-xmpp"];

describe("the data directory", () => {
  it("is the per-user one by default, so every folder reaches the same node", async () => {
    const home = tempDir("home");
    const [here, there] = [tempDir("cwd-a"), tempDir("cwd-b")];
    const env = { HOME: home, XDG_DATA_HOME: undefined, PIGEON_HOME: "" }; // an empty PIGEON_HOME counts as unset
    const dataDir = join(home, ".local", "share", "pigeon");
    const a = await startDaemon("amara", { dataFlag: false, dataDir, env, cwd: here, args: quiet });
    expect(existsSync(join(dataDir, "identity.json"))).toBe(true);
    expect(a.output()).toContain(dataDir);

    const peers = await run(["peers"], { env, cwd: there });
    expect(peers.stderr).toBe("");
    expect(peers.code).toBe(0);
    const who = await run(["whoami", "--json"], { env, cwd: there });
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ address: "amara@local", pid: a.proc.pid });
    // nothing was written into the folders the commands ran in
    expect(readdirSync(here)).toEqual([]);
    expect(readdirSync(there)).toEqual([]);

    await a.stop();
    const send = await run(["send", "baraka@local", "hello"], { env, cwd: there });
    expect(send.code).toBe(3);
    expect(send.stderr).toContain(`no pigeon node is running for the data directory ${dataDir} (the default`);
  });

  it("is $XDG_DATA_HOME/pigeon when XDG_DATA_HOME is set, and says which one it looked in", async () => {
    const xdg = tempDir("xdg");
    const env = { HOME: tempDir("home"), XDG_DATA_HOME: xdg };
    const a = await startDaemon("baraka", { dataFlag: false, dataDir: join(xdg, "pigeon"), env, cwd: tempDir("cwd"), args: quiet });
    const who = await run(["whoami", "--json"], { env, cwd: tempDir("cwd") });
    expect(JSON.parse(who.stdout)).toMatchObject({ address: "baraka@local", pid: a.proc.pid });
    await a.stop();
    await waitFor(() => !existsSync(join(xdg, "pigeon", "node.json")), "node.json to go");
    const send = await run(["send", "amara@local", "hello"], { env });
    expect(send.code).toBe(3);
    expect(send.stderr).toContain(join(xdg, "pigeon"));
    // --data and PIGEON_HOME still choose another one, and the message says so
    const other = tempDir("other");
    const viaFlag = await run(["send", "amara@local", "hello", "--data", other], { env });
    expect(viaFlag.stderr).toContain(`${other} (given with --data)`);
    const viaEnv = await run(["send", "amara@local", "hello"], { env: { ...env, PIGEON_HOME: other } });
    expect(viaEnv.stderr).toContain(`${other} (from $PIGEON_HOME)`);
  });
});

/** The shell lines of README.md's "Try it with two laptops on one machine", comments dropped. */
function walkThrough(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const from = readme.indexOf("## Try it with two laptops on one machine");
  const section = readme.slice(from, readme.indexOf("\n## ", from));
  const code = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).join("\n");
  return code.replace(/\\\n\s*/g, "").split("\n").map((l) => l.replace(/\s+#.*$/, "").trim()).filter(Boolean);
}

describe("the README walk-through", () => {
  it("works as written, each command from a different folder", async () => {
    const lines = walkThrough();
    expect(lines[0]).toBe("npm ci && npm run build"); // done by the test run
    const alias = lines[1]!;
    expect(alias).toMatch(/^alias pigeon="node .*\$PWD\/packages\/app\/dist\/cli\.js"$/);
    const commands = lines.slice(2);
    expect(commands.every((l) => l.startsWith("pigeon "))).toBe(true);
    // Only what a test on a shared machine needs: no mDNS on the real network, no fixed control or
    // XMPP ports, and amara's sync port (7480 in the README) one that is free now.
    const port = await freePort();
    const env = { HOME: tempDir("home"), XDG_DATA_HOME: undefined, PIGEON_HOME: undefined };
    const script = (line: string) =>
      `shopt -s expand_aliases\ncd ${JSON.stringify(ROOT)}\n${alias}\ncd ${JSON.stringify(tempDir("folder"))}\n${line}`;
    const starts = commands.filter((l) => l.startsWith("pigeon start"));
    expect(starts.length).toBe(2);
    for (const [i, line] of starts.entries()) {
      const extra = ` --no-mdns --no-xmpp --listen 127.0.0.1 --control-port 0${i === 0 ? ` --port ${port}` : ""}`;
      // its own process group, so stopping it stops bash and the node it runs
      const proc: ChildProcess = spawn("bash", ["-c", script(line.replace("127.0.0.1:7480", `127.0.0.1:${port}`) + extra)], {
        stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env }, detached: true,
      });
      let out = "";
      proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
      proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
      onCleanup(async () => {
        if (proc.exitCode !== null) return;
        const exited = new Promise((r) => proc.once("exit", r));
        process.kill(-proc.pid!, "SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      });
      await waitFor(() => /\bready\b/.test(out) || proc.exitCode !== null, `${line} to start`, 30_000);
      expect(proc.exitCode, out).toBe(null);
    }
    const sh = (line: string) =>
      new Promise<Result>((res) => {
        const p = spawn("bash", ["-c", script(line)], { env: { ...process.env, ...env } });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
        p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        p.on("exit", (code) => res({ code: code ?? 1, stdout, stderr }));
      });
    await waitFor(async () => (await sh("pigeon peers --json")).stdout.includes("baraka@local"), "the two nodes to meet");
    const [nearby, add, send, inbox, outbox] = commands.filter((l) => !l.startsWith("pigeon start"));
    expect(nearby).toBe("pigeon nearby");
    await waitFor(async () => (await sh(nearby!)).stdout.includes("pigeon buddies add baraka@local"), "amara to see baraka nearby");
    const added = await sh(add!);
    expect(added.code, added.stderr).toBe(0);
    expect((await sh(nearby!)).stdout).toMatch(/baraka@local .* a buddy/);
    const sent = await sh(send!);
    expect(sent.code, sent.stderr).toBe(0);
    await waitFor(async () => (await sh(inbox!)).stdout.includes("hello amara"), "amara to see it");
    await waitFor(async () => (await sh(outbox!)).stdout.includes("delivered"), "baraka to see delivered");
  });
});

describe(".gitignore", () => {
  const ignored = (path: string) => {
    try {
      execFileSync("git", ["check-ignore", "-q", "--no-index", path], { cwd: ROOT });
      return true;
    } catch {
      return false;
    }
  };

  it("covers every data directory the README has people make, and a data directory's files anywhere", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const dirs = [...readme.matchAll(/--data\s+([^\s`"]+)/g)].map((m) => m[1]!).filter((d) => d !== "DIR");
    expect(dirs.length).toBeGreaterThan(0);
    for (const d of dirs) {
      if (/^(~|\$HOME|\/)/.test(d)) continue; // outside the repository
      expect(ignored(join(d, "identity.json")), `${d} from the README`).toBe(true);
    }
    // what earlier READMEs made in the repository folder
    for (const d of ["pigeon-data", "baraka-data", "./baraka-data"]) expect(ignored(`${d}/identity.json`), d).toBe(true);
    // a data directory by any other name: its keys, its store, its node file
    for (const f of ["identity.json", "xmpp-credentials.json", "node.json", "web-key", "pigeon.db", "pigeon.db-wal", "xmpp.db", "mailbox.lock", "node.log"])
      expect(ignored(`my-laptop/${f}`), f).toBe(true);
    expect(ignored("packages/model/src/identity.ts")).toBe(false);
  });
});

describe("bad flags", () => {
  it("are rejected before anything is written", async () => {
    const parent = tempDir("flags");
    const cases: [string[], RegExp][] = [
      [["--port", "abc"], /--port must be a whole number from 0 to 65535, not "abc"/],
      [["--port", "1e3"], /--port must be a whole number/],
      [["--copies", "0"], /--copies must be a whole number from 1 to 256/],
      [["--peer", "nohost"], /--peer "nohost": no port/],
      [["--listen", "203.0.113.77"], /--listen 203\.0\.113\.77 is not an address of this laptop/],
      [["--mdns-interface", "eth0"], /--mdns-interface must be the IPv4 address/],
      [["--home", "Not A Home"], /--home "Not A Home" is not a valid home/],
      [["--name", "Amara Bee"], /--name "Amara Bee" is not a name Pigeon can use/],
      [["--data"], /--data needs a value/],
      [["--no-mdns=yes"], /--no-mdns takes no value/],
      [["--colour"], /^pigeon: unknown option --colour; pigeon --help lists the options\n$/],
      [["extra"], /start takes no arguments/],
    ];
    for (const [i, [flags, message]] of cases.entries()) {
      const dir = join(parent, `d${i}`);
      const r = await run(["start", "--data", dir, ...(flags.includes("--name") ? [] : ["--name", "amara"]), ...flags]);
      expect(r.stderr, flags.join(" ")).toMatch(message);
      expect(r.code, flags.join(" ")).toBe(2);
      expect(existsSync(dir), `${flags.join(" ")} left ${dir} behind`).toBe(false);
    }
    expect(readdirSync(parent)).toEqual([]);
  });

  it("get our own words, and an option of another command is a mistake too", async () => {
    const dir = tempDir("words");
    const unknown = await run(["inbox", "--frobnicate", "--data", dir]);
    expect(unknown).toMatchObject({ code: 2, stderr: "pigeon: unknown option --frobnicate; pigeon --help lists the options\n" });
    const dash = await run(["send", "amara@local", "-hi", "--data", dir]);
    expect(dash.code).toBe(2);
    expect(dash.stderr).toContain('put -- before it, e.g. pigeon send amara@local -- "-hi"');
    const elsewhere = await run(["inbox", "--port", "7480", "--data", dir]);
    expect(elsewhere).toMatchObject({ code: 2, stderr: "pigeon: --port is an option of pigeon start, not of pigeon inbox\n" });
  });

  it("bad addresses are bad usage (exit 2); a good one nobody knows is the node's answer (exit 1)", async () => {
    const a = await startDaemon("amara", { args: quiet });
    for (const args of [["send", "not@an@address", "hi"], ["send", "Amara Bee", "hi"], ["draft", "@", "hi"]]) {
      const r = await pigeon(a, ...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/is not a valid address/);
    }
    const fp = await pigeon(a, "send", "nobody@local#ab!", "hi");
    expect(fp.code).toBe(2);
    expect(fp.stderr).toMatch(/after '#' comes the start of a fingerprint/);
    // other bad input the node finds: still bad usage
    const own = await pigeon(a, "send", "amara@local", "hi");
    expect(own.code).toBe(2);
    expect(own.stderr).toMatch(/your own address/);
    const empty = await pigeon(a, "send", "amara@local", " ");
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/the message is empty/);
    // a good address (in any form send takes) that nobody here has is the node's answer
    for (const who of ["nobody@local", "nobody@local#abcd", "abcd-efgh-ijkl-mnop"]) {
      const unknown = await pigeon(a, "send", who, "hi");
      expect(unknown.code, who).toBe(1);
      expect(unknown.stderr).toMatch(/unknown address nobody@local|nobody with fingerprint/);
    }
  });
});

describe("the name", () => {
  it("is never the login name: without --name and without a terminal to ask in, start refuses", async () => {
    const dir = join(tempDir("noname"), "data");
    const r = await run(["start", "--data", dir, ...quiet]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Pigeon needs your name the first time it starts. Give it with --name, e.g.:");
    expect(r.stderr).toContain(`pigeon start --data ${dir} --name amara`);
    expect(existsSync(dir)).toBe(false);
  });

  it("is asked for when there is a terminal", async () => {
    const dir = join(tempDir("asked"), "data");
    const cmd = [process.execPath, CLI, "start", "--data", dir, ...quiet, "--listen", "127.0.0.1", "--port", "0", "--control-port", "0"].join(" ");
    // `script` gives the command a terminal
    const proc = spawn("script", ["-qfec", cmd, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (c: Buffer) => (out += c.toString()));
    onCleanup(() => void proc.kill("SIGTERM"));
    await waitFor(() => out.includes("What is your name?"), "the question");
    proc.stdin.write("Zawadi Bee\n");
    await waitFor(() => out.includes("Please use"), "the answer to be refused");
    proc.stdin.write("zawadi\n");
    await waitFor(() => /\bready\b/.test(out), "the node to start");
    expect(out).toContain("created identity zawadi@local");
    expect((await run(["stop", "--data", dir])).code).toBe(0);
    await waitFor(() => proc.exitCode !== null, "the node to stop");
  });

  it("can be changed later with pigeon rename; the keys stay", async () => {
    const dir = tempDir("rename");
    const a = await startDaemon("amara", { dataDir: dir, args: quiet });
    const before = JSON.parse(readFileSync(join(dir, "identity.json"), "utf8")) as Record<string, string>;
    const fp = (await run(["whoami", "--json", "--data", dir])).stdout;
    const busy = await pigeon(a, "rename", "amani");
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/the node is running .* stop it first/);
    const bad = await pigeon(a, "rename", "Amani K");
    expect(bad.code).toBe(2);
    await a.stop();
    const r = await pigeon(a, "rename", "amani");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("You are now amani@local (was amara@local)");
    const after = JSON.parse(readFileSync(join(dir, "identity.json"), "utf8")) as Record<string, string>;
    expect(after).toEqual({ ...before, name: "amani" });
    // started again (startDaemon passes --name amara: a note, not a second rename)
    const b = await startDaemon("amara", { dataDir: dir, args: quiet });
    expect(b.output()).toContain("this data directory belongs to amani@local");
    const who = JSON.parse((await run(["whoami", "--json", "--data", dir])).stdout) as { address: string; fingerprint: string };
    expect(who.address).toBe("amani@local");
    expect(who.fingerprint).toBe((JSON.parse(fp) as { fingerprint: string }).fingerprint);
    const help = await run(["--help"]);
    expect(help.stdout).toMatch(/\n {2}rename NEWNAME +change your name/);
  });
});

interface Msg { id: string; from: string; to: string[]; body: string; state?: string; direction: string }

/** Two nodes on loopback that have met (b dials a), whose children made each other buddies. */
async function pair(a: string, b: string): Promise<[Daemon, Daemon]> {
  const da = await startDaemon(a, { args: quiet });
  const db = await startDaemon(b, { args: [...quiet, "--peer", `127.0.0.1:${da.syncPort}`] });
  await waitFor(async () => (await pigeonJson<unknown[]>(da, "contacts")).length === 1, `${a} to meet ${b}`);
  await waitFor(async () => (await pigeonJson<unknown[]>(db, "contacts")).length === 1, `${b} to meet ${a}`);
  expect((await pigeon(da, "buddies", "add", `${b}@local`)).code).toBe(0);
  expect((await pigeon(db, "buddies", "add", `${a}@local`)).code).toBe(0);
  return [da, db];
}

describe("reading with the node stopped", () => {
  it("inbox, outbox, waiting, drafts, contacts, whoami, status, card and peers answer; send says it needs the node", async () => {
    const [a, b] = await pair("amara", "baraka");
    expect((await pigeon(b, "send", "amara@local", "hello amara")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Msg[]>(b, "outbox"))[0]?.state === "delivered", "delivered");
    expect((await pigeon(a, "draft", "baraka@local", "see you at school")).code).toBe(0);
    const reads = ["inbox", "outbox", "waiting", "drafts", "contacts", "buddies", "card"];
    const online = new Map<string, unknown>();
    for (const r of reads) online.set(r, await pigeonJson(a, r));
    const who = await pigeonJson<{ address: string; fingerprint: string; signPublicKey: string }>(a, "whoami");
    await a.stop();
    await b.stop();
    expect(existsSync(join(a.dataDir, "node.json"))).toBe(false);

    // the same answers, from the data directory itself
    for (const r of reads) expect(await pigeonJson(a, r), r).toEqual(online.get(r));
    expect(await pigeonJson(a, "whoami")).toEqual({ address: who.address, fingerprint: who.fingerprint, signPublicKey: who.signPublicKey });
    const inbox = await pigeon(a, "inbox");
    expect(inbox).toMatchObject({ code: 0, stderr: "" });
    expect(inbox.stdout).toContain("from baraka@local");
    expect(inbox.stdout).toContain("hello amara");
    expect((await pigeon(a, "drafts")).stdout).toContain("see you at school");
    const status = await pigeon(a, "status");
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("amara@local (your pigeon node is not running)");
    expect(status.stdout).not.toContain("NaN");
    const peers = await pigeon(a, "peers");
    expect(peers.code).toBe(0);
    expect(peers.stdout).toContain("No laptops connected: your pigeon node is not running");
    expect(await pigeonJson(a, "peers")).toEqual([]);

    const send = await pigeon(a, "send", "baraka@local", "are you there?");
    expect(send.code).toBe(3);
    expect(send.stderr).toContain(`Sending needs your pigeon node running, and no pigeon node is running for the data directory ${a.dataDir}`);
    expect(send.stderr).toContain(`start one with: pigeon start --data ${a.dataDir}`);

    // marking read with the node stopped: the read receipt leaves when the node next meets baraka
    const read = await pigeon(a, "read");
    expect(read.stdout).toMatch(/^New messages \(1\)\n {2}from baraka@local .*\n {4}hello amara\n\(now marked read\)\n$/);
    const a2 = await startDaemon("amara", { dataDir: a.dataDir, args: quiet });
    const b2 = await startDaemon("baraka", { dataDir: b.dataDir, args: [...quiet, "--peer", `127.0.0.1:${a2.syncPort}`] });
    await waitFor(async () => (await pigeonJson<Msg[]>(b2, "outbox"))[0]?.state === "read", "baraka to see read");
    expect((await pigeonJson<Msg[]>(a2, "inbox")).map((m) => m.body)).toEqual(["hello amara"]);

    // a long folder shows its newest: --last N, or --all
    for (const body of ["second", "third"]) expect((await pigeon(b2, "send", "amara@local", body)).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Msg[]>(a2, "inbox")).length === 3, "the two more messages");
    const two = await pigeon(a2, "inbox", "--last", "2");
    expect(two.stdout).toMatch(/^Inbox \(2, 2 new\)/);
    expect(two.stdout).toContain("third");
    expect(two.stdout).not.toContain("hello amara");
    expect(two.stdout).toContain("(older messages not shown: pigeon inbox --last N for more, or --all)");
    expect((await pigeonJson<Msg[]>(a2, "inbox", "--last", "2")).map((m) => m.body)).toEqual(["second", "third"]);
    expect((await pigeon(a2, "inbox", "--all")).stdout).not.toContain("older messages not shown");
    expect((await pigeonJson<Msg[]>(a2, "inbox", "--all")).map((m) => m.body)).toEqual(["hello amara", "second", "third"]);
    expect((await pigeonJson<Msg[]>(b2, "outbox", "--last", "1")).map((m) => m.body)).toEqual(["third"]);
    const bad = await pigeon(a2, "inbox", "--last", "0");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`--last must be a whole number from 1 to 100000, not "0"`);
    expect((await pigeon(a2, "inbox", "--last", "2", "--all")).stderr).toContain("give --last N or --all, not both");
    // the control API takes the same as ?last=N, and refuses anything else
    expect((await api<Msg[]>(a2, "GET", "/api/inbox?last=1")).map((m) => m.body)).toEqual(["third"]);
    await expect(api(a2, "GET", "/api/inbox?last=abc")).rejects.toThrow(`GET /api/inbox?last=abc: 400 "last" must be a whole number from 1 to 100000, got "abc"`);
    // and the same with the node stopped, from the data directory
    await a2.stop();
    expect((await pigeonJson<Msg[]>(a2, "inbox", "--last", "2")).map((m) => m.body)).toEqual(["second", "third"]);
  }, 240_000); // some 25 commands, each a process start: 80-90 s alone on a busy 2-core machine

  it("never opens the store beside a node: a command waits while the mailbox is held, then answers", async () => {
    const a = await startDaemon("chiku", { args: quiet });
    // with the node running, the answer comes from the node (only the node knows its pid)
    expect((await pigeonJson<{ pid: number }>(a, "whoami")).pid).toBe(a.proc.pid);
    await a.stop();
    // a holder of the mailbox lock without node.json: a node starting, or another command
    const lock = tryLockMailbox(a.dataDir)!;
    expect(lock).toBeDefined();
    const started = Date.now();
    const answer = pigeon(a, "whoami");
    await new Promise((r) => setTimeout(r, 1500));
    lock.release();
    const r = await answer;
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(r.stdout).toContain("chiku@local");
    // and a node cannot start while a command holds it open
    const held = tryLockMailbox(a.dataDir)!;
    const starting = startDaemon("chiku", { dataDir: a.dataDir, args: quiet });
    await new Promise((r) => setTimeout(r, 1000));
    expect(existsSync(join(a.dataDir, "node.json"))).toBe(false);
    held.release();
    await starting;
    expect(existsSync(join(a.dataDir, "node.json"))).toBe(true);
  });

  it("with no identity in the data directory, says where it looked and how to start", async () => {
    const dir = join(tempDir("empty"), "data");
    const r = await run(["inbox", "--data", dir]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`there is no Pigeon identity in the data directory ${dir} (given with --data); start your node once first: pigeon start --data ${dir} --name NAME`);
    expect(existsSync(dir)).toBe(false);
  });
});

/** Every state heading, and the state each message under it says it is in. */
function headings(text: string): { heading: string; states: string[] }[] {
  const out: { heading: string; states: string[] }[] = [];
  for (const line of text.split("\n")) {
    const h = /^\s*(Waiting to be sent|Sent, not yet delivered|Delivered|Read|Sent) \(\d+\)$/.exec(line);
    if (h) out.push({ heading: h[1]!, states: [] });
    const m = /^\s*to \S+ .*?\s{2}(waiting to be sent|sent|delivered|read) /.exec(line);
    if (m) out.at(-1)?.states.push(m[1]!);
  }
  return out;
}

describe("the outbox", () => {
  it("puts each message under the heading of the state it is in", async () => {
    const [a, b] = await pair("dalia", "ebo");
    await b.stop();
    const sent = await pigeon(a, "send", "ebo@local", "are you there?");
    expect(sent.code, sent.stderr).toBe(0);
    expect(headings(sent.stdout)).toEqual([{ heading: "Waiting to be sent", states: ["waiting to be sent"] }]);
    expect(sent.stdout).not.toMatch(/^Sent \(/m);
    const outbox = await pigeon(a, "outbox");
    expect(outbox.stdout).toMatch(/^Outbox \(1\)\n {2}Waiting to be sent \(1\)\n {4}to ebo@local /);
    expect(headings(outbox.stdout)).toEqual([{ heading: "Waiting to be sent", states: ["waiting to be sent"] }]);

    // ebo comes back: the first is delivered; one more is written while they are connected
    const b2 = await startDaemon("ebo", { dataDir: b.dataDir, args: [...quiet, "--peer", `127.0.0.1:${a.syncPort}`] });
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox"))[0]?.state === "delivered", "delivered");
    expect((await pigeon(b2, "read")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Msg[]>(a, "outbox"))[0]?.state === "read", "read");
    await b2.stop();
    expect((await pigeon(a, "send", "ebo@local", "see you tomorrow")).code).toBe(0);
    const both = await pigeon(a, "outbox");
    expect(both.stdout).toMatch(/^Outbox \(2\)\n/);
    expect(headings(both.stdout)).toEqual([
      { heading: "Waiting to be sent", states: ["waiting to be sent"] },
      { heading: "Read", states: ["read"] },
    ]);
  }, 120_000);
});

describe("words for a child and a teacher", () => {
  it("a --peer that is down is said once, and again when it is reached; no clock jargon", async () => {
    const port = await freePort(); // nobody listens there yet
    const a = await startDaemon("fumo", { args: [...quiet, "--peer", `127.0.0.1:${port}`] });
    const downLines = () => a.output().split("\n").filter((l) => l.includes(`cannot reach 127.0.0.1:${port}`));
    await waitFor(() => downLines().length > 0, "the first failed dial");
    // StaticPeers retries after 1, 2, 4, 8 s: four more failures in the next 8 s, none of them printed
    await new Promise((r) => setTimeout(r, 8000));
    expect(downLines()).toHaveLength(1);
    expect(downLines()[0]).toMatch(/cannot reach 127\.0\.0\.1:\d+: nothing answers there \(is Pigeon running on that laptop\?\)\. Pigeon keeps trying and will say when it is reached$/);
    expect(a.output()).not.toMatch(/ECONNREFUSED|retrying in/);

    const b = await startDaemon("gali", { args: [...quiet, "--port", String(port)] });
    await waitFor(() => a.output().includes(`reached 127.0.0.1:${port} (gali@local) again, after`), "the node to say it is back", 40_000);
    expect(downLines()).toHaveLength(1);

    await waitFor(async () => (await pigeonJson<unknown[]>(b, "contacts")).length === 1, "gali to meet fumo");
    await waitFor(async () => (await pigeonJson<unknown[]>(a, "nearby")).length === 1, "fumo to meet gali");
    expect((await pigeon(a, "buddies", "add", "gali@local")).code).toBe(0); // fumo chooses gali
    expect((await pigeon(b, "send", "fumo@local", "hello fumo")).code).toBe(0);
    const inbox = await waitFor(async () => {
      const r = await pigeon(a, "inbox");
      return r.stdout.includes("hello fumo") ? r.stdout : undefined;
    }, "fumo's inbox");
    expect(inbox).toMatch(/ {2}new from gali@local {2}\d{4}-\d\d-\d\d \d\d:\d\d {2}\[[0-9a-f]{8}\]/);
    expect(inbox).not.toContain("clock");
    const status = (await pigeon(a, "status")).stdout;
    expect(status).not.toMatch(/envelope|acknowledgement/);
    expect(status).toContain("kept on this laptop:");
  }, 120_000);
});

describe("new messages", () => {
  it("are marked new in the inbox; read ID / show ID show one and mark it read; read shows the new ones; read --all", async () => {
    const [h, i] = await pair("hawa", "issa");
    for (const t of ["first note", "second note"]) expect((await pigeon(i, "send", "hawa@local", t)).code).toBe(0);
    const [first, second] = await waitFor(async () => {
      const list = await pigeonJson<(Msg & { readAt?: number })[]>(h, "inbox");
      return list.length === 2 ? list : undefined;
    }, "hawa's inbox");
    expect([first!.readAt, second!.readAt]).toEqual([undefined, undefined]);
    const inbox = (await pigeon(h, "inbox")).stdout;
    expect(inbox).toMatch(/^Inbox \(2, 2 new\)\n/);
    expect(inbox.match(/^ {2}new from issa@local /gm)).toHaveLength(2);
    expect(inbox).toContain("(read the new ones with: pigeon read, or one with: pigeon read ID)");

    // show ID with the 8 characters the inbox shows: the message in full, now read
    const shown = await pigeon(h, "show", first!.id.slice(0, 8));
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^From issa@local {2}\\S+ \\S+ {2}\\[${first!.id.slice(0, 8)}\\] {2}read \\S+ \\S+\\n {2}first note\\n$`));
    const after = (await pigeon(h, "inbox")).stdout;
    expect(after).toMatch(/^Inbox \(2, 1 new\)\n {2}from issa@local .*\n {4}first note\n {2}new from issa@local .*\n {4}second note\n/);
    await waitFor(async () => (await pigeonJson<Msg[]>(i, "outbox")).map((m) => m.state).join() === "read,delivered", "issa to see the first one read");

    // read ID: the same
    const read = await pigeon(h, "read", `[${second!.id.slice(0, 8)}]`);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toContain("second note");
    expect((await pigeon(h, "inbox")).stdout).toMatch(/^Inbox \(2\)\n/);

    // ids that are not there: bad usage, said plainly
    const unknown = await pigeon(h, "read", "0000dead");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("pigeon: there is no message 0000dead on this laptop (the ids are in [brackets] in pigeon inbox and pigeon outbox)\n");
    const notAnId = await pigeon(h, "show", "hello");
    expect(notAnId.code).toBe(2);
    expect(notAnId.stderr).toMatch(/"hello" is not a message id/);
    expect((await pigeon(h, "show")).code).toBe(2);

    // read with no id: the new ones, shown and marked read
    expect((await pigeon(i, "send", "hawa@local", "third note")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<unknown[]>(h, "inbox")).length === 3, "the third");
    const fresh = await pigeon(h, "read");
    expect(fresh.stdout).toMatch(/^New messages \(1\)\n {2}from issa@local .*\n {4}third note\n\(now marked read\)\n$/);
    expect((await pigeon(h, "read")).stdout).toBe("No new messages\n");

    // read --all: marks without showing
    expect((await pigeon(i, "send", "hawa@local", "fourth note")).code).toBe(0);
    await waitFor(async () => (await pigeonJson<unknown[]>(h, "inbox")).length === 4, "the fourth");
    const all = await pigeon(h, "read", "--all");
    expect(all.stdout).toBe("Marked 1 message read\n");
    expect((await pigeonJson<{ readAt?: number }[]>(h, "inbox")).every((m) => m.readAt !== undefined)).toBe(true);
    expect((await run(["--help"])).stdout).toMatch(/\n {2}read ID\.\.\. \/ show ID\.\.\. +show these messages and mark them read/);
  }, 120_000);
});
