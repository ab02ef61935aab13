// The school's daily e-mail quota, told by the child's own laptop (issue 19): the rules travel to it
// with the school's directory, and it counts the e-mails of the day from its own messages, so the
// child hears "over today's quota" at once, with no way to the gateway. Real processes on loopback:
// a school server, the gateway's Pigeon person (not running as a gateway: nothing reaches it), a pupil.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, pigeon, startDaemon, tempDir, waitFor, type Daemon } from "./helpers.js";

afterAll(cleanupAll);

const HOME = "kisumu-primary";
const quiet = ["--no-mdns", "--no-xmpp"];

async function enrol(school: Daemon, laptop: Daemon, ...options: string[]): Promise<void> {
  const card = (await pigeon(laptop, "card")).stdout.trim();
  const r = await pigeon(school, "school", "enrol", card, ...options);
  expect(r.code, r.stderr).toBe(0);
  const e = await pigeon(laptop, "enrol", r.stdout.match(/pigeon-school1:\S+/)![0]);
  expect(e.code, e.stderr).toBe(0);
}

describe("the daily e-mail quota on a laptop", () => {
  it("a pupil's laptop refuses the mail past the quota by itself, saying so", async () => {
    const school = await startDaemon("school", { args: [...quiet, "--school", HOME] });
    const peer = ["--peer", `127.0.0.1:${school.syncPort}`];
    const mail = await startDaemon("mail", { args: [...quiet, "--home", HOME, ...peer] });
    const amina = await startDaemon("amina", { args: [...quiet, "--home", HOME, ...peer] });
    await enrol(school, mail, "--class", "office", "--role", "teacher");
    await enrol(school, amina, "--class", "P7");
    // the gateway's machine is off from here: nothing amina writes can reach it
    await mail.stop();
    const dir = tempDir("rules");
    writeFileSync(join(dir, "rules.json"), JSON.stringify({
      version: 1, school: HOME, domain: "kisumu-primary.example", serial: 1,
      teachers: { anyAddress: true, perDay: 20 }, students: { classes: ["P7"], moderated: true, perDay: 2 },
      allow: { "class:P7": ["penpal@example.org"] }, inboundPerSenderPerDay: 20, maxMailBytes: 1_000_000, attachments: "hold", keepHours: 24,
    }));
    const signed = await pigeon(school, "school", "sign-rules", join(dir, "rules.json"), "--out", join(dir, "rules.signed.json"));
    expect(signed.code, signed.stderr).toBe(0);
    // the rules reach her laptop with the directory: an address not on her list is refused there
    await waitFor(async () => (await pigeon(amina, "send", "stranger@example.org", "hi", "--yes")).stderr.includes("(your school's e-mail rules 1)"), "the rules on her laptop");
    for (const text of ["Hello from Kisumu", "We planted beans"]) {
      const r = await pigeon(amina, "send", "penpal@example.org", text, "--subject", "News", "--yes");
      expect(r.code, r.stderr).toBe(0);
    }
    const third = await pigeon(amina, "send", "penpal@example.org", "And a third one", "--subject", "News", "--yes");
    expect(third.code).not.toBe(0);
    expect(third.stderr).toContain("Not sent: over today's quota: you already sent 2 e-mails today, and your school allows 2 a day (your school's e-mail rules 1).");
    const outbox = (await pigeon(amina, "outbox")).stdout;
    expect(outbox).toContain("We planted beans");
    expect(outbox).not.toContain("And a third one");
  }, 300_000);
});
