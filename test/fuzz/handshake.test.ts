// The link handshake (docs/protocol.md §1) driven through its public API, as handshake.test.ts does,
// by a peer that sends anything: only HandshakeError ever comes out, and no session is ever opened
// with a key whose owner did not sign this very connection's transcript.
import { describe, expect, it } from "vitest";
import {
  encodeProof, generateIdentity, HandshakeError, startHandshake, type Handshake, type HandshakeRole, type Identity, type Session,
} from "../../packages/model/src/index.js";
import { decodeHello, encodeHello, handshakeTranscript, proofMessage } from "../../packages/model/src/handshake.js";
import { sign } from "../../packages/model/src/crypto.js";
import { attempt, check, expectOnly, fc, mutate, mutated, mutationsArb, note, sameBytes, TEST_TIMEOUT } from "./fuzz.js";

const alice = generateIdentity("alice", "kisumu-primary");
const bob = generateIdentity("bob", "kisumu-primary");
const mallory = generateIdentity("mallory", "elsewhere");
const roleArb = fc.constantFrom<HandshakeRole>("dialer", "listener");
const other = (r: HandshakeRole): HandshakeRole => (r === "dialer" ? "listener" : "dialer");

/** Feeds a HELLO; returns the proof, or undefined after a HandshakeError (anything else fails). */
function feedHello(h: Handshake, bytes: Uint8Array): Uint8Array | undefined {
  note(bytes);
  const out = attempt("receiveHello", () => h.receiveHello(bytes));
  if (out.ok) return out.value.proof;
  expectOnly(out.error, HandshakeError);
  return undefined;
}

function feedProof(h: Handshake, bytes: Uint8Array): Session | undefined {
  note(bytes);
  const out = attempt("receiveProof", () => h.receiveProof(bytes));
  if (out.ok) return out.value;
  expectOnly(out.error, HandshakeError);
  return undefined;
}

/** Bob's HELLO and PROOF from a genuine handshake with Alice, for Bob's `role`. */
function genuine(role: HandshakeRole) {
  const b = startHandshake(bob, role);
  const a = startHandshake(alice, other(role));
  const { proof } = b.receiveHello(a.hello);
  return { a, b, hello: b.hello, proof };
}

/** A HELLO with any fields (names of any length and bytes), as a hostile peer would encode it. */
const anyHello = fc
  .record({
    version: fc.constantFrom(2, 2, 2, 2, 2, 1, 3),
    type: fc.constantFrom(1, 1, 1, 1, 1, 2),
    keys: fc.uint8Array({ minLength: 128, maxLength: 128 }),
    name: fc.oneof(
      { arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,31}$/), weight: 3 },
      fc.constantFrom("bob", "mallory", "Bob", "", "a".repeat(32), "a".repeat(33), "a@b"),
      fc.string({ maxLength: 70 }),
    ),
    home: fc.oneof(
      { arbitrary: fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/), weight: 3 },
      fc.constantFrom("local", "kisumu-primary", "x".repeat(63), "x".repeat(64), "x".repeat(65), "-x", "x-"),
      fc.string({ maxLength: 70 }),
    ),
  })
  .map(({ version, type, keys, name, home }) => {
    const body = encodeHello({
      signPublicKey: keys.subarray(0, 32), sealPublicKey: keys.subarray(32, 64), ephemeralPublic: keys.subarray(64, 96), challenge: keys.subarray(96),
      name, home,
    });
    body[0] = version;
    body[1] = type;
    return body;
  });

describe("fuzz: the link handshake", () => {
  it("any HELLO gives HandshakeError or a claimed card with a canonical address, in both roles", () => {
    check(
      fc.property(roleArb, fc.oneof(anyHello, fc.uint8Array({ maxLength: 300 })), (role, bytes) => {
        const h = startHandshake(alice, role);
        const out = attempt("receiveHello", () => h.receiveHello(note(bytes)));
        if (!out.ok) return expectOnly(out.error, HandshakeError);
        const { claimed, proof } = out.value;
        const parsed = decodeHello(bytes);
        expect(claimed.name).toBe(parsed.name);
        expect(claimed.home).toBe(parsed.home);
        expect(claimed.name).toMatch(/^[a-z0-9][a-z0-9._-]{0,31}$/);
        expect(proof.length).toBe(66);
      }),
      1 / 3,
    );
  }, TEST_TIMEOUT);

  it("a mutated HELLO never leads to a session, even with the real peer's proof", () => {
    check(
      fc.property(roleArb, mutationsArb, (role, ms) => {
        const { a, hello, proof } = genuine(role);
        const bytes = mutate(hello, ms);
        if (feedHello(a, bytes) === undefined) return;
        const session = feedProof(a, proof);
        expect(session !== undefined).toBe(sameBytes(bytes, hello));
      }),
      1 / 6,
    );
  }, TEST_TIMEOUT);

  it("a mutated PROOF never opens a session; the unchanged one does", () => {
    check(
      fc.property(roleArb, mutationsArb, (role, ms) => {
        const { a, hello, proof } = genuine(role);
        expect(feedHello(a, hello)).toBeDefined();
        const bytes = mutate(proof, ms);
        const session = feedProof(a, bytes);
        expect(session !== undefined).toBe(sameBytes(bytes, proof));
        if (session) expect(sameBytes(session.peer.signPublicKey, bob.signing.publicKey)).toBe(true);
      }),
      1 / 6,
    );
  }, TEST_TIMEOUT);

  it("Mallory, who holds only her own key, never gets a session under any other key", () => {
    // what Mallory has seen: Bob's HELLOs and PROOFs from other connections, Alice's HELLO on this one
    const old = [genuine("dialer"), genuine("listener")];
    const helloChoice = fc.record({
      base: fc.constantFrom("bob-replayed", "bob-keys-mallory-ephemeral", "mallory", "alice-reflected", "junk"),
      mutations: fc.oneof(fc.constant([]), mutationsArb),
      junk: fc.uint8Array({ maxLength: 300 }),
    });
    const proofChoice = fc.record({
      base: fc.constantFrom("mallory-signs-as-peer", "mallory-signs-as-alice", "bob-replayed", "alice-reflected", "zero", "junk"),
      mutations: fc.oneof(fc.constant([]), mutationsArb),
      junk: fc.uint8Array({ maxLength: 80 }),
    });
    check(
      fc.property(roleArb, helloChoice, proofChoice, fc.nat(1), (role, hc, pc, which) => {
        const a = startHandshake(alice, role);
        const replay = old[which]!;
        const forged = (id: Identity, signKey: Uint8Array) => {
          const h = startHandshake(id, other(role));
          return encodeHello({ ...decodeHello(h.hello), signPublicKey: signKey });
        };
        const base = {
          "bob-replayed": replay.hello,
          "bob-keys-mallory-ephemeral": forged(mallory, bob.signing.publicKey),
          mallory: startHandshake(mallory, other(role)).hello,
          "alice-reflected": a.hello,
          junk: hc.junk,
        }[hc.base];
        const hello = mutate(base, hc.mutations);
        const alicesProof = feedHello(a, hello);
        if (alicesProof === undefined) return;
        const t = role === "dialer" ? handshakeTranscript(a.hello, hello) : handshakeTranscript(hello, a.hello);
        const proofBase = {
          "mallory-signs-as-peer": encodeProof(sign(mallory.signing.seed, proofMessage(other(role), t))),
          "mallory-signs-as-alice": encodeProof(sign(mallory.signing.seed, proofMessage(role, t))),
          "bob-replayed": replay.proof,
          "alice-reflected": alicesProof,
          zero: encodeProof(new Uint8Array(64)),
          junk: pc.junk,
        }[pc.base];
        const session = feedProof(a, mutate(proofBase, pc.mutations));
        if (!session) return;
        // the only key Mallory can prove is her own, and only with the peer's role byte
        expect(sameBytes(session.peer.signPublicKey, mallory.signing.publicKey)).toBe(true);
        expect(pc.base).toBe("mallory-signs-as-peer");
      }),
      1 / 6,
    );
  }, TEST_TIMEOUT);

  it("any order of any messages: HandshakeError only, at most one session, none after a failure", () => {
    const step = fc.record({
      call: fc.constantFrom("hello", "proof"),
      what: fc.constantFrom("genuine", "mutated", "junk"),
      mutations: mutationsArb,
      junk: fc.uint8Array({ maxLength: 200 }),
    });
    check(
      fc.property(roleArb, fc.array(step, { minLength: 1, maxLength: 5 }), (role, steps) => {
        const b = startHandshake(bob, other(role));
        const a = startHandshake(alice, role);
        const bobsProof = b.receiveHello(a.hello).proof;
        let failed = false;
        let sessions = 0;
        for (const s of steps) {
          const genuineBytes = s.call === "hello" ? b.hello : bobsProof;
          const bytes = s.what === "genuine" ? genuineBytes : s.what === "mutated" ? mutate(genuineBytes, s.mutations) : s.junk;
          note(bytes);
          const out = attempt(s.call, () => (s.call === "hello" ? a.receiveHello(bytes) : a.receiveProof(bytes)));
          if (!out.ok) {
            expectOnly(out.error, HandshakeError);
            failed = true;
            continue;
          }
          expect(failed).toBe(false);
          if (s.call === "proof") {
            sessions++;
            expect(sameBytes((out.value as Session).peer.signPublicKey, bob.signing.publicKey)).toBe(true);
          }
        }
        expect(sessions).toBeLessThanOrEqual(1);
      }),
      1 / 6,
    );
  }, TEST_TIMEOUT);

  it("session frames: a changed frame never opens (and kills the session); only HandshakeError comes out", () => {
    check(
      fc.property(roleArb, fc.uint8Array({ maxLength: 200 }), mutationsArb, (role, plain, ms) => {
        const b = startHandshake(bob, other(role));
        const a = startHandshake(alice, role);
        const pb = b.receiveHello(a.hello).proof;
        const sb = b.receiveProof(a.receiveHello(b.hello).proof);
        const sa = a.receiveProof(pb);
        const frame = sb.seal(plain);
        const bytes = note(mutate(frame, ms));
        const out = attempt("open", () => sa.open(bytes));
        if (sameBytes(bytes, frame)) {
          expect(out.ok && sameBytes(out.value, plain)).toBe(true);
          return;
        }
        if (out.ok) throw new Error("a changed frame opened");
        expectOnly(out.error, HandshakeError);
        const after = attempt("open", () => sa.open(frame));
        expect(after.ok).toBe(false);
        if (!after.ok) expectOnly(after.error, HandshakeError);
      }),
      1 / 6,
    );
  }, TEST_TIMEOUT);
});
