// The first connection, the way each client connects by default (issue 21): slixmpp as
// packages/xmpp/README.md shows (`connect(('127.0.0.1', port))`: STARTTLS when offered, the system's
// trust store) and profanity's plain `/connect` (TLS mandatory, the certificate checked, no `tls`
// option). Both need the one documented step (docs/security.md): the node's certificate trusted on the
// laptop. Without it both stop, which the first test shows, so the step is what makes the difference.
// The same runs against Prosody with its certificate trusted the same way (reference).
import { afterAll, describe, expect, it } from "vitest";
import { cleanupAll } from "../helpers.js";
import { announceSkip, missing, profanity, slix, startProsody, startXmppNode, trustStoreWith, waitFor } from "./xmpp-helpers.js";

afterAll(cleanupAll);

const why = missing("slixmpp") ?? missing("profanity");
if (why) announceSkip("first connection with each client's defaults", why);

describe.skipIf(!!why)("first connection with each client's defaults", () => {
  it("Pigeon: without the step both clients stop at the untrusted certificate; after it both log in over TLS", async () => {
    const a = await startXmppNode("amara");
    // before: slixmpp gives up on the certificate, profanity never logs in
    const before = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "login", tls: "system", overall: 15 });
    expect(before.result.ok).toBe(false);
    expect(before.stderr).toMatch(/certificate/i);

    const trusted = trustStoreWith(a.certPath);
    const after = await slix({ jid: a.jid, password: a.password, port: a.xmppPort, scenario: "login", tls: "system" }, undefined, 60_000, trusted);
    expect(after.result.ok, after.stderr.slice(-2000)).toBe(true);
    expect(after.result.tls).toBe(true);
    expect(after.result.mech).toBe("SCRAM-SHA-256");

    const prof = profanity("first", trusted);
    await prof.login(a.jid, a.password, a.xmppPort, "default");
    expect(prof.screen()).toContain("[TLS]");

    const untrusted = profanity("untrusted");
    await waitFor(() => untrusted.screen().includes("Type '/help'"), "profanity to start");
    untrusted.type(`/connect ${a.jid} server 127.0.0.1 port ${a.xmppPort}`);
    await waitFor(() => untrusted.screen().includes("password"), "the password prompt");
    untrusted.type(a.password);
    await waitFor(() => untrusted.screen().includes("/tls allow"), `profanity to stop at the certificate:\n${untrusted.screen()}`);
    await new Promise((r) => setTimeout(r, 1500));
    expect(untrusted.screen()).not.toMatch(/logged in successfully/);
  });

  it("Prosody (reference): after trusting its certificate the same way, both log in over TLS", async () => {
    const p = await startProsody({ alice: "alice-password" });
    const trusted = trustStoreWith(p.certPath);
    const r = await slix({ jid: "alice@local", password: "alice-password", port: p.port, scenario: "login", tls: "system" }, undefined, 60_000, trusted);
    expect(r.result.ok, r.stderr.slice(-2000)).toBe(true);
    expect(r.result.tls).toBe(true);
    const prof = profanity("prosody-first", trusted);
    await prof.login("alice@local", "alice-password", p.port, "default");
    expect(prof.screen()).toContain("[TLS]");
  });
});
