// The school the way users meet it: a school server, laptops enrolled with the tokens it prints
// (copied from its output), each showing who the school vouches for; an impostor who calls itself an
// enrolled child (with its own fake school behind it) is never shown as that child; a revocation
// reaches a laptop that never met the school through a carrier laptop; the "only the directory"
// policy; a child's laptop in a school shows who it is to its schoolmates only, unless its owner says
// otherwise (--meet anyone). Real processes on loopback.
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll, freePort, pigeon, pigeonJson, run, startDaemon, tempDir, waitFor, type Daemon } from "./helpers.js";

afterAll(cleanupAll);

const HOME = "kisumu-primary";
const quiet = ["--no-mdns", "--no-xmpp"];

interface Vouch { status: string; school: string; name?: string; class?: string; role?: string; reason?: string; known?: string }
interface Contact { address: string; fingerprint: string; how: string; vouch?: Vouch }
interface Msg { id: string; from: string; to: string[]; body: string; request?: boolean; fromVouch?: Vouch }
interface Request { from: string; fingerprint: string; vouch?: Vouch; messages: Msg[] }
interface SchoolView { home: string; maxSerial: number; entries: number; onlyDirectory: boolean; dropped: number; me?: Vouch }

/** On the school server: enrols the laptop's person from its card and returns the token it printed. */
async function enrol(school: Daemon, laptop: Daemon, ...options: string[]): Promise<string> {
  const card = (await pigeon(laptop, "card")).stdout.trim();
  const r = await pigeon(school, "school", "enrol", card, ...options);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain("pigeon enrol pigeon-school1:");
  return r.stdout.match(/pigeon-school1:\S+/)![0];
}

const log = (d: Daemon) => readFileSync(join(d.dataDir, "node.log"), "utf8");

describe("the school", () => {
  it("enrols two laptops that show each other as vouched; an impostor is shown as not the school's amara and cannot read her mail", async () => {
    const ps = await freePort();
    const pa = await freePort();
    const school = await startDaemon("school", { args: [...quiet, "--school", HOME, "--port", String(ps)] });
    expect(school.output()).toContain(`created the school key of ${HOME}`);
    // amara's laptop was set up for the school; baraka's started as baraka@local and takes the school's name
    const amara = await startDaemon("amara", { args: [...quiet, "--home", HOME, "--port", String(pa), "--peer", `127.0.0.1:${ps}`] });
    let baraka = await startDaemon("baraka", { args: [...quiet, "--peer", `127.0.0.1:${ps}`] });
    const ea = await pigeon(amara, "enrol", await enrol(school, amara, "--class", "5B"));
    expect(ea.stdout).toContain(`You belong to ${HOME} now: vouched by ${HOME}: 5B, student.`);
    const eb = await pigeon(baraka, "enrol", await enrol(school, baraka, "--class", "5B", "--role", "teacher"));
    expect(eb.code, eb.stderr).toBe(0);
    expect(eb.stdout).toContain(`Your address is baraka@${HOME} (was baraka@local)`);
    // a second laptop claiming the name amara is refused by the school server
    const dup = await pigeon(school, "school", "enrol", (await pigeon(baraka, "card")).stdout.trim(), "--class", "5B", "--name", "amara");
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/amara@kisumu-primary is already enrolled with another key .*--replace/);
    // a stranger's laptop nearby dials amara: she shows it nothing (she belongs to a school, it does not)
    const nosy = await startDaemon("nosy", { args: [...quiet, "--peer", `127.0.0.1:${pa}`] });
    await waitFor(() => /did not show who it is/.test(log(nosy)), "the stranger's dial to be turned away");
    expect(await pigeonJson<Contact[]>(nosy, "contacts")).toEqual([]);
    expect(JSON.stringify(await pigeonJson<unknown>(nosy, "peers"))).not.toContain("amara");
    expect((await pigeonJson<Contact[]>(amara, "contacts")).map((c) => c.address)).not.toContain("nosy@local");
    await nosy.stop();
    expect((await pigeon(amara, "status")).stdout).toContain("shows who you are to: your schoolmates' laptops only");
    expect((await pigeon(nosy, "status")).stdout).toContain("shows who you are to: any laptop nearby");

    // baraka restarts to take its new name to the laptops it meets, and now meets amara too; as a
    // teacher he chooses to meet laptops from outside the school as well
    await baraka.stop();
    baraka = await startDaemon("baraka", { dataDir: baraka.dataDir, args: [...quiet, "--meet", "anyone", "--peer", `127.0.0.1:${ps}`, "--peer", `127.0.0.1:${pa}`] });
    expect((await pigeon(baraka, "whoami")).stdout).toContain(`baraka@${HOME}\nfingerprint`);
    expect((await pigeon(baraka, "whoami")).stdout).toContain(`vouched by ${HOME}: 5B, teacher`);
    expect((await pigeon(baraka, "status")).stdout).toContain("shows who you are to: any laptop nearby (started with --meet anyone)");

    const vouched = (d: Daemon, address: string) =>
      waitFor(async () => (await pigeonJson<Contact[]>(d, "contacts")).find((c) => c.address === address && c.vouch?.status === "vouched"), `${address} vouched on ${d.name}`);
    expect((await vouched(baraka, `amara@${HOME}`)).vouch).toEqual({ status: "vouched", school: HOME, name: "amara", class: "5B", role: "student" });
    expect((await vouched(amara, `baraka@${HOME}`)).vouch).toMatchObject({ role: "teacher" });
    expect((await pigeon(amara, "contacts")).stdout).toMatch(new RegExp(`baraka@${HOME} .*\\n    vouched by ${HOME}: 5B, teacher`));
    expect((await pigeon(baraka, "school", "list")).stdout).toMatch(/kisumu-primary \(2\)\n  amara@kisumu-primary  5B  student  .*\n  baraka@kisumu-primary  5B  teacher/);

    // the impostor: its own "school" of the same home, which enrols it as amara
    const impostor = await startDaemon("amara", { args: [...quiet, "--meet", "anyone", "--home", HOME, "--school", HOME, "--peer", `127.0.0.1:${baraka.syncPort}`] });
    const fake = await pigeon(impostor, "enrol", await enrol(impostor, impostor, "--class", "5B"));
    expect(fake.code, fake.stderr).toBe(0);
    await waitFor(async () => (await pigeonJson<Contact[]>(impostor, "contacts")).some((c) => c.address === `baraka@${HOME}`), "the impostor to meet baraka");
    expect((await pigeon(impostor, "send", `baraka@${HOME}`, "it is me amara, tell me your password")).code).toBe(0);
    const [req] = await waitFor(async () => {
      const r = await pigeonJson<Request[]>(baraka, "requests");
      return r.length ? r : undefined;
    }, "the impostor's message under baraka's requests");
    expect(req!.from).toMatch(new RegExp(`^amara@${HOME}#[a-z2-7]{4}$`));
    expect(req!.vouch).toMatchObject({ status: "impostor", reason: `the school's amara@${HOME} has another key` });
    const shown = (await pigeon(baraka, "requests")).stdout;
    expect(shown).toContain(`WARNING: not vouched: the school's amara@${HOME} has another key`);
    expect((await pigeon(baraka, "contacts")).stdout).toContain(`${req!.from}  ${req!.fingerprint}`);
    expect((await pigeonJson<Msg[]>(baraka, "inbox")).some((m) => m.body.includes("password"))).toBe(false);
    // the fake school's entry reaches baraka but is only carried, unread: the directory has not changed
    await waitFor(async () => (await pigeonJson<{ carrying: { envelopes: number } }>(baraka, "status")).carrying.envelopes >= 1, "the fake entry to be carried");
    expect((await pigeonJson<SchoolView>(baraka, "school")).maxSerial).toBe(2);
    expect((await pigeonJson<Contact[]>(baraka, "contacts")).find((c) => c.fingerprint === req!.fingerprint)!.vouch!.status).toBe("impostor");

    // the plain name is the school's amara: the message goes to her, and the impostor reads nothing
    const sent = await pigeonJson<Msg>(baraka, "send", `amara@${HOME}`, "the homework is on page 12");
    expect(sent.to).toEqual([`amara@${HOME}`]);
    await waitFor(async () => (await pigeonJson<Msg[]>(amara, "inbox")).find((m) => m.body === "the homework is on page 12"), "amara to get it");
    const got = (await pigeonJson<Msg[]>(amara, "inbox")).find((m) => m.body === "the homework is on page 12")!;
    expect(got.from).toBe(`baraka@${HOME}`);
    expect(got.fromVouch).toMatchObject({ status: "vouched", role: "teacher" });
    expect((await pigeon(amara, "inbox")).stdout).toContain(`from baraka@${HOME} (vouched by ${HOME}: 5B, teacher)`);
    for (const view of ["inbox", "requests"] as const)
      expect(JSON.stringify(await pigeonJson<unknown>(impostor, view))).not.toContain("page 12");
  }, 180_000);

  it("a revocation reaches a laptop that never met the school through a carrier, and the laptop then refuses what the revoked one signs", async () => {
    const ps = await freePort();
    const pl = await freePort();
    const school = await startDaemon("school", { args: [...quiet, "--school", HOME, "--port", String(ps)] });
    // lina's laptop is enrolled with a token carried by hand: it never meets the school server
    const lina = await startDaemon("lina", { args: [...quiet, "--home", HOME, "--port", String(pl)] });
    expect((await pigeon(lina, "enrol", await enrol(school, lina, "--class", "6A"))).code).toBe(0);
    const juma = await startDaemon("juma", { args: [...quiet, "--home", HOME, "--peer", `127.0.0.1:${pl}`] });
    expect((await pigeon(juma, "enrol", await enrol(school, juma, "--class", "6A"))).code).toBe(0);
    await waitFor(async () => (await pigeonJson<Contact[]>(juma, "contacts")).some((c) => c.address === `lina@${HOME}`), "juma to meet lina");
    // lina's laptop never saw juma's directory entry (no school link): she makes her classmate a buddy
    await waitFor(async () => (await pigeon(lina, "buddies", "add", `juma@${HOME}`)).code === 0, "lina to add juma, met nearby");
    await pigeonJson<Msg>(juma, "send", `lina@${HOME}`, "before");
    await waitFor(async () => (await pigeonJson<Msg[]>(lina, "inbox")).some((m) => m.body === "before"), "lina to get juma's message");

    // juma's laptop is stolen: the school revokes it by its key
    const { signPublicKey } = await pigeonJson<{ signPublicKey: string }>(juma, "whoami");
    const revoked = await pigeon(school, "school", "revoke-device", signPublicKey);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/Revoked the laptop .* \(directory entry 3\)/);

    // a classmate's laptop (enrolled with a token by hand too) visits the school server, then later lina
    let carrier = await startDaemon("kito", { args: [...quiet, "--home", HOME] });
    expect((await pigeon(carrier, "enrol", await enrol(school, carrier, "--class", "6B"))).code).toBe(0);
    await carrier.stop();
    carrier = await startDaemon("kito", { dataDir: carrier.dataDir, args: [...quiet, "--peer", `127.0.0.1:${ps}`] });
    await waitFor(async () => (await pigeonJson<SchoolView>(carrier, "school")).entries >= 4, "the carrier to take the directory");
    await carrier.stop();
    carrier = await startDaemon("kito", { dataDir: carrier.dataDir, args: [...quiet, "--peer", `127.0.0.1:${pl}`] });
    await waitFor(async () => (await pigeonJson<SchoolView>(lina, "school")).maxSerial >= 3, "the revocation to reach lina");
    await waitFor(() => /the school revoked a laptop of juma@kisumu-primary/.test(log(lina)), "lina's log to say so");

    // the stolen laptop writes again: lina refuses it
    await pigeonJson<Msg>(juma, "send", `lina@${HOME}`, "after: send me your password");
    await waitFor(() => /signed by a revoked device \(revoked by the school\)/.test(log(lina)), "lina to refuse the revoked laptop's message");
    expect((await pigeonJson<Msg[]>(lina, "inbox")).map((m) => m.body)).toEqual(["before"]);
    expect(await pigeonJson<Request[]>(lina, "requests")).toEqual([]);

    // lina's laptop shows itself to schoolmates only, yet the tablet she pairs with it gets in (the
    // code is its proof), and belongs to the school too
    const shown = await pigeon(lina, "devices", "add");
    expect(shown.code, shown.stderr).toBe(0);
    const code = /pigeon pair ([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})/.exec(shown.stdout)![1]!;
    const tabletDir = tempDir("lina-tablet");
    const paired = await pigeon({ dataDir: tabletDir }, "pair", code, "--no-mdns", "--peer", `127.0.0.1:${pl}`);
    expect(paired.stderr + paired.stdout).toContain(`now a device of lina@${HOME}`);
    expect((await pigeonJson<SchoolView>({ dataDir: tabletDir }, "school")).me).toMatchObject({ status: "vouched", name: "lina", class: "6A" });
  }, 180_000);

  it("'only the directory': a stranger's message is dropped (not even a request) and counted; a vouched classmate's arrives", async () => {
    const ps = await freePort();
    const pp = await freePort();
    const school = await startDaemon("school", { args: [...quiet, "--school", HOME, "--port", String(ps)] });
    // pat's laptop meets anyone nearby (its owner's choice); the school's policy still keeps strangers out
    const pat = await startDaemon("pat", { args: [...quiet, "--meet", "anyone", "--home", HOME, "--port", String(pp), "--peer", `127.0.0.1:${ps}`] });
    expect((await pigeon(pat, "enrol", await enrol(school, pat, "--class", "4A"))).code).toBe(0);
    const policy = await pigeon(school, "school", "policy", "only-directory");
    expect(policy.code, policy.stderr).toBe(0);
    await waitFor(async () => (await pigeonJson<SchoolView>(pat, "school")).onlyDirectory, "the policy to reach pat");

    const stranger = await startDaemon("stranger", { args: [...quiet, "--peer", `127.0.0.1:${pp}`] });
    const classmate = await startDaemon("zuri", { args: [...quiet, "--home", HOME, "--peer", `127.0.0.1:${pp}`] });
    expect((await pigeon(classmate, "enrol", await enrol(school, classmate, "--class", "4A"))).code).toBe(0);
    await waitFor(async () => (await pigeon(pat, "school", "list")).stdout.includes(`zuri@${HOME}`), "zuri's entry to reach pat");
    for (const d of [stranger, classmate]) {
      await waitFor(async () => (await pigeonJson<Contact[]>(d, "contacts")).some((c) => c.address === `pat@${HOME}`), `${d.name} to meet pat`);
      await pigeonJson<Msg>(d, "send", `pat@${HOME}`, `hello from ${d.name}`);
    }
    await waitFor(async () => (await pigeonJson<Msg[]>(pat, "inbox")).some((m) => m.body === "hello from zuri"), "the classmate's message");
    await waitFor(async () => (await pigeonJson<SchoolView>(pat, "school")).dropped >= 1, "the stranger's message (its key inside) to be dropped");
    expect(await pigeonJson<Request[]>(pat, "requests")).toEqual([]);
    expect((await pigeonJson<Msg[]>(pat, "inbox")).map((m) => m.body)).toEqual(["hello from zuri"]);
    expect((await pigeon(pat, "status")).stdout).toMatch(/school kisumu-primary: \d+ directory entries, policy only the directory; messages dropped by the policy: 1/);
    // with the node stopped, status still says so (the count is kept on disk)
    await pat.stop();
    expect((await pigeon(pat, "status")).stdout).toContain("messages dropped by the policy: 1");
    // the school server's key file is the owner's only; stopped, it still answers; another home is refused
    await school.stop();
    expect(statSync(join(school.dataDir, "school.json")).mode & 0o777).toBe(0o600);
    expect((await pigeon(school, "school", "list", "--class", "4A")).stdout).toMatch(/kisumu-primary, class 4A \(2\)\n  pat@kisumu-primary  4A  student/);
    const other = await run(["start", "--data", school.dataDir, "--school", "nyeri-secondary", ...quiet, "--port", "0", "--control-port", "0"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("this data directory is the school server of kisumu-primary, not nyeri-secondary");
  }, 180_000);
});
