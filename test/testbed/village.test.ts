// Scenario 4: a village school. One school server and ten laptops in two classrooms (X and Y); two of
// the laptops are one child's (amara's laptop and her tablet, paired with the code the laptop shows).
// A teacher provisions every laptop with the school's enrolment token (copied by hand), so the school
// server never needs to meet classroom Y. The school server is on only at the start (it meets
// classroom X) and for one minute later, to revoke a stolen laptop; the directory and the revocation
// reach classroom Y only through a walking child. At the end every laptop holds the whole directory and
// the revocation, refuses the stolen laptop, and amara's two devices share what was written to her.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Testbed, waitUntil, inPool } from "./testbed.js";
import { skipReason, type Msg } from "./config.js";

const why = skipReason("village");
const HOME = "kisumu-primary";
const at = (name: string) => `${name}@${HOME}`;

interface SchoolView { home: string; maxSerial: number; entries: number }
interface Contact { address: string; vouch?: { status: string } }

const CLASS_X = ["amara", "baraka", "chiku", "dalia", "walker"];
const CLASS_Y = ["esi", "femi", "gari", "hawa"];
const LAPTOPS = [...CLASS_X, ...CLASS_Y]; // and amara's tablet: ten

describe.skipIf(!!why)("testbed 4: a village school whose server is mostly off", () => {
  let tb: Testbed;
  beforeAll(async () => {
    tb = await Testbed.create({ label: "village", lifetimeMs: 300_000 });
    await tb.addBridge("X");
    await tb.addBridge("Y");
    await tb.addHost("school", ["X"], { args: ["--school", HOME, "--no-xmpp"] });
    for (const n of CLASS_X) await tb.addHost(n, ["X"], { args: ["--home", HOME, "--no-xmpp"] });
    for (const n of CLASS_Y) await tb.addHost(n, ["Y"], { args: ["--home", HOME, "--no-xmpp"] });
    await tb.addHost("tablet", ["X"], { args: ["--no-xmpp"] }); // paired before it starts: it becomes amara's
    await inPool(["school", ...LAPTOPS], 4, (h) => tb.start(h));
  }, 120_000);
  afterAll(() => tb?.teardown(), 30_000);

  it("the directory and one revocation reach every laptop, though the school server is off most of the time", async ({ onTestFailed }) => {
    onTestFailed(() => void (tb.keepArtifacts = true));
    // how many directory entries a laptop holds (its own token brings one: its own enrolment)
    const serial = async (h: string) => (await tb.pigeon<SchoolView>(h, "school")).entries;

    // provisioning by hand: each laptop's card goes to the school server, its token comes back
    await inPool(LAPTOPS, 3, async (h) => {
      const { card } = await tb.pigeon<{ card: string }>(h, "card");
      const { token } = await tb.pigeon<{ token: string }>("school", "school", "enrol", card, "--class", CLASS_X.includes(h) ? "5X" : "5Y");
      await tb.pigeon(h, "enrol", token);
    });
    const enrolled = LAPTOPS.length;

    // amara's tablet: the laptop shows a code, the tablet (an empty data directory) takes it
    const { code } = await tb.pigeon<{ code: string }>("amara", "devices", "add");
    await tb.pigeon("tablet", "pair", code, "--no-mdns", "--peer", `${tb.address("amara")}:7480`);
    await tb.start("tablet");
    expect((await tb.pigeon<{ address: string }>("tablet", "whoami")).address).toBe(at("amara"));

    // classroom X meets the school server: the directory is theirs; then the server goes off
    await waitUntil(async () => (await Promise.all([...CLASS_X, "tablet"].map(serial))).every((s) => s >= enrolled), "classroom X to hold the directory", 60_000, 1_000);
    await tb.stop("school");
    tb.log("the school server is off");
    // nobody in classroom Y has it yet: they never met the server (each holds only its own entry)
    for (const h of CLASS_Y) expect(await serial(h)).toBe(1);

    // the walking child brings it to classroom Y
    await tb.move("walker", "Y");
    await waitUntil(async () => (await Promise.all(CLASS_Y.map(serial))).every((s) => s >= enrolled), "classroom Y to hold the directory through the walker", 90_000, 1_000);
    // and in Y they see each other as vouched by the school
    await waitUntil(async () => {
      const c = await tb.pigeon<Contact[]>("esi", "contacts");
      return c.find((x) => x.address === at("femi"))?.vouch?.status === "vouched";
    }, "esi to see femi vouched", 60_000, 1_000);

    // esi writes to amara, known only from the directory: the walker carries it; both of amara's devices get it
    // (the walker may take it from esi or from a classmate in Y who took it meanwhile: whoever offers first)
    const carried = async () => (await tb.pigeon<{ carrying: { envelopes: number } }>("walker", "status")).carrying.envelopes;
    await tb.move("walker", "X");
    const before = await carried();
    const sent = await tb.pigeon<Msg>("esi", "send", at("amara"), "the goats are back");
    await tb.move("walker", "Y");
    await waitUntil(async () => (await carried()) > before, "the walker to take esi's message", 60_000, 1_000);
    await tb.move("walker", "X");
    for (const d of ["amara", "tablet"])
      await waitUntil(async () => (await tb.pigeon<Msg[]>(d, "inbox")).some((m) => m.id === sent.id || (m.body === "the goats are back" && m.from === at("esi"))) || (await tb.pigeon<{ from: string; messages: Msg[] }[]>(d, "requests")).some((r) => r.messages.some((m) => m.id === sent.id)), `${d} to get esi's message`, 90_000, 1_000);

    // dalia's laptop is stolen: the school server comes on for a moment and revokes it
    const { signPublicKey: stolen } = await tb.pigeon<{ signPublicKey: string }>("dalia", "whoami");
    await tb.start("school");
    await tb.pigeon("school", "school", "revoke-device", stolen);
    await waitUntil(async () => (await Promise.all(["amara", "baraka", "walker"].map(serial))).every((s) => s > enrolled), "classroom X to learn of the revocation", 60_000, 1_000);
    await tb.stop("school");
    tb.log("the school server is off again");
    await tb.move("walker", "Y");
    await waitUntil(async () => (await Promise.all([...LAPTOPS, "tablet"].map(serial))).every((s) => s > enrolled), "every laptop to hold the revocation", 90_000, 1_000);

    // the stolen laptop writes to someone in Y through the walker: refused there
    await tb.move("walker", "X");
    await tb.pigeon<Msg>("dalia", "send", at("gari"), "give me your password");
    await new Promise((r) => setTimeout(r, 5_000));
    await tb.move("walker", "Y");
    await new Promise((r) => setTimeout(r, 10_000));
    expect(JSON.stringify(await tb.pigeon<Msg[]>("gari", "inbox"))).not.toContain("password");
    expect(JSON.stringify(await tb.pigeon<unknown>("gari", "requests"))).not.toContain("password");
  }, 280_000);
});
