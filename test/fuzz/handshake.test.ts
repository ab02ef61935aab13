// The link handshake, version 3 (docs/protocol.md §1), driven through its public API by a peer that
// sends anything: only HandshakeError ever comes out, no session is ever opened with a key whose owner
// did not seal and sign this very connection's messages, and a changed session frame never opens.
import { describe, expect, it } from "vitest";
import { generateIdentity, HandshakeError, startHandshake, type Handshake, type Session } from "../../packages/model/src/index.js";
import { attempt, check, expectOnly, fc, mutate, mutationsArb, note, sameBytes, TEST_TIMEOUT } from "./fuzz.js";

const alice = generateIdentity("alice", "kisumu-primary");
const bob = generateIdentity("bob", "kisumu-primary");
const mallory = generateIdentity("mallory", "elsewhere");

/** Feeds one message; the step, or undefined after a HandshakeError (anything else fails the property). */
function feed(h: Handshake, bytes: Uint8Array): { reply?: Uint8Array; session?: Session } | undefined {
  note(bytes);
  const out = attempt("receive", () => h.receive(bytes));
  if (out.ok) return out.value;
  expectOnly(out.error, HandshakeError);
  return undefined;
}

/** A genuine handshake between a dialer and a listener, message by message. */
function genuine(dialerId = alice, listenerId = bob) {
  const dialer = startHandshake(dialerId, "dialer");
  const listener = startHandshake(listenerId, "listener");
  const hello = dialer.opening!;
  const reply = listener.receive(hello).reply!;
  const step = dialer.receive(reply);
  const confirm = step.reply!;
  const listenerSession = listener.receive(confirm).session!;
  return { dialer, listener, hello, reply, confirm, dialerSession: step.session!, listenerSession };
}

describe("fuzz: the link handshake (version 3)", () => {
  it("a listener given any first message answers a Reply or refuses with HandshakeError, and opens no session", () => {
    const base = genuine().hello;
    check(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }), mutationsArb.map((ms) => mutate(base, ms))), (bytes) => {
        const listener = startHandshake(bob, "listener");
        const step = feed(listener, bytes);
        if (step) expect(step.session).toBeUndefined();
      }),
    );
  }, TEST_TIMEOUT);

  it("a dialer given a changed or made-up Reply never opens a session, and says nothing about itself", () => {
    const made = (() => {
      const d = startHandshake(alice, "dialer");
      return { d, reply: startHandshake(bob, "listener").receive(d.opening!).reply! };
    })();
    check(
      fc.property(fc.oneof(fc.constant("mutated" as const), fc.constant("junk" as const)), mutationsArb, fc.uint8Array({ maxLength: 400 }), (kind, ms, junk) => {
        const dialer = startHandshake(alice, "dialer");
        const listener = startHandshake(bob, "listener");
        const reply = listener.receive(dialer.opening!).reply!;
        const bytes = kind === "mutated" ? mutate(reply, ms) : junk;
        const step = feed(dialer, bytes);
        if (sameBytes(bytes, reply)) return; // unchanged: the genuine case
        // a Reply made for another connection's Hello, or changed, never proves bob here
        expect(step?.session).toBeUndefined();
        expect(step?.reply).toBeUndefined();
      }),
      1 / 4,
    );
    // a genuine Reply from another connection (replayed) is refused too
    const dialer = startHandshake(alice, "dialer");
    expect(feed(dialer, made.reply)?.session).toBeUndefined();
  }, TEST_TIMEOUT);

  it("a listener given a changed, made-up or replayed Confirm never opens a session", () => {
    const other = genuine();
    check(
      fc.property(fc.constantFrom("mutated", "junk", "replayed", "mallory"), mutationsArb, fc.uint8Array({ maxLength: 400 }), (kind, ms, junk) => {
        const dialer = startHandshake(alice, "dialer");
        const listener = startHandshake(bob, "listener");
        const reply = listener.receive(dialer.opening!).reply!;
        const confirm = dialer.receive(reply).reply!;
        let bytes: Uint8Array;
        if (kind === "mutated") bytes = mutate(confirm, ms);
        else if (kind === "junk") bytes = junk;
        else if (kind === "replayed") bytes = other.confirm;
        else {
          // mallory runs her own handshake with bob and sends her Confirm on this connection
          const m = startHandshake(mallory, "dialer");
          const r = startHandshake(bob, "listener").receive(m.opening!).reply!;
          bytes = m.receive(r).reply ?? junk;
        }
        const step = feed(listener, bytes);
        if (sameBytes(bytes, confirm)) {
          expect(step?.session && sameBytes(step.session.peer.signPublicKey, alice.signing.publicKey)).toBe(true);
          return;
        }
        expect(step?.session).toBeUndefined();
      }),
      1 / 4,
    );
  }, TEST_TIMEOUT);

  it("any order of any messages: HandshakeError only, at most one session, and none after a failure", () => {
    const g = genuine();
    const step = fc.record({
      what: fc.constantFrom("hello", "reply", "confirm", "junk"),
      mutate: fc.boolean(),
      mutations: mutationsArb,
      junk: fc.uint8Array({ maxLength: 400 }),
    });
    check(
      fc.property(fc.constantFrom("dialer" as const, "listener" as const), fc.array(step, { minLength: 1, maxLength: 5 }), (role, steps) => {
        const h = startHandshake(role === "dialer" ? alice : bob, role);
        let failed = false;
        let sessions = 0;
        for (const s of steps) {
          const base = s.what === "hello" ? g.hello : s.what === "reply" ? g.reply : s.what === "confirm" ? g.confirm : s.junk;
          const bytes = s.mutate ? mutate(base, s.mutations) : base;
          const out = feed(h, bytes);
          if (!out) {
            failed = true;
            continue;
          }
          expect(failed).toBe(false);
          if (out.session) sessions++;
        }
        // messages from another connection never complete this one
        expect(sessions).toBe(0);
      }),
      1 / 4,
    );
  }, TEST_TIMEOUT);

  it("session frames: a changed frame never opens; only HandshakeError comes out", () => {
    check(
      fc.property(fc.uint8Array({ maxLength: 200 }), mutationsArb, (plain, ms) => {
        const g = genuine();
        const frame = g.listenerSession.seal(plain);
        const bytes = note(mutate(frame, ms));
        const out = attempt("open", () => g.dialerSession.open(bytes));
        if (sameBytes(bytes, frame)) {
          expect(out.ok && sameBytes(out.value, plain)).toBe(true);
          return;
        }
        if (out.ok) throw new Error("a changed frame opened");
        expectOnly(out.error, HandshakeError);
      }),
      1 / 6,
    );
  }, TEST_TIMEOUT);
});
