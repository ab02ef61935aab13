import { describe, expect, it } from "vitest";
import { concat, equalBytes, toHex, utf8 } from "./bytes.js";
import { randomBytes, sign } from "./crypto.js";
import {
  HandshakeError,
  HANDSHAKE_VERSION,
  HELLO_MAX_BYTES,
  PROOF_BYTES,
  decodeHello,
  decodeProof,
  encodeHello,
  encodeProof,
  frameNonce,
  handshakeTranscript,
  proofMessage,
  startHandshake,
  type Handshake,
  type Session,
} from "./handshake.js";
import { generateIdentity, type Identity } from "./identity.js";

const alice = generateIdentity("alice", "kisumu-primary");
const bob = generateIdentity("bob", "kisumu-primary");
const mallory = generateIdentity("mallory", "elsewhere");

function pair(d: Identity = alice, l: Identity = bob): { dialer: Session; listener: Session } {
  const hd = startHandshake(d, "dialer");
  const hl = startHandshake(l, "listener");
  const { proof: pd } = hd.receiveHello(hl.hello);
  const { proof: pl } = hl.receiveHello(hd.hello);
  return { dialer: hd.receiveProof(pl), listener: hl.receiveProof(pd) };
}

function expectHandshakeError(f: () => unknown, reason?: RegExp): HandshakeError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HandshakeError);
    if (reason) expect((e as HandshakeError).reason).toMatch(reason);
    return e as HandshakeError;
  }
  throw new Error("expected a HandshakeError");
}

describe("handshake", () => {
  it("authenticates both sides and agrees on a transcript", () => {
    const { dialer, listener } = pair();
    expect(dialer.peer.name).toBe("bob");
    expect(dialer.peer.home).toBe("kisumu-primary");
    expect(equalBytes(dialer.peer.signPublicKey, bob.signing.publicKey)).toBe(true);
    expect(equalBytes(dialer.peer.sealPublicKey, bob.sealing.publicKey)).toBe(true);
    expect(equalBytes(listener.peer.signPublicKey, alice.signing.publicKey)).toBe(true);
    expect(toHex(dialer.transcript)).toBe(toHex(listener.transcript));
    expect(dialer.role).toBe("dialer");
    expect(listener.role).toBe("listener");
  });

  it("carries frames both ways, in order", () => {
    const { dialer, listener } = pair();
    for (let i = 0; i < 5; i++) {
      const m = utf8(`d->l ${i}`);
      expect(listener.open(dialer.seal(m))).toEqual(m);
      const n = utf8(`l->d ${i}`);
      expect(dialer.open(listener.seal(n))).toEqual(n);
    }
    const empty = new Uint8Array(0);
    expect(listener.open(dialer.seal(empty))).toEqual(empty);
  });

  it("uses different keys per direction and per connection", () => {
    const { dialer, listener } = pair();
    const m = utf8("same plaintext");
    // Counter 0 in both directions: the ciphertexts must differ because the keys differ.
    expect(toHex(dialer.seal(m))).not.toBe(toHex(listener.seal(m)));
    const other = pair();
    expect(toHex(other.dialer.seal(m))).not.toBe(toHex(pair().dialer.seal(m)));
  });

  it("is reproducible byte by byte with fixed randomness", () => {
    const rd = { ephemeralSecretKey: new Uint8Array(32).fill(1), challenge: new Uint8Array(32).fill(2) };
    const rl = { ephemeralSecretKey: new Uint8Array(32).fill(3), challenge: new Uint8Array(32).fill(4) };
    const run = () => {
      const hd = startHandshake(alice, "dialer", rd);
      const hl = startHandshake(bob, "listener", rl);
      const a = hd.receiveHello(hl.hello);
      const b = hl.receiveHello(hd.hello);
      return { hd, hl, a, b, sd: hd.receiveProof(b.proof), sl: hl.receiveProof(a.proof) };
    };
    const x = run();
    const y = run();
    expect(toHex(x.hd.hello)).toBe(toHex(y.hd.hello));
    expect(toHex(x.a.proof)).toBe(toHex(y.a.proof)); // Ed25519 is deterministic
    expect(toHex(x.sd.seal(utf8("hi")))).toBe(toHex(y.sd.seal(utf8("hi"))));
    // Layout: version, type, four 32-byte fields, then the strings.
    const h = x.hd.hello;
    expect(h[0]).toBe(HANDSHAKE_VERSION);
    expect(h[1]).toBe(1);
    expect(h.subarray(2, 34)).toEqual(alice.signing.publicKey);
    expect(h.subarray(34, 66)).toEqual(alice.sealing.publicKey);
    expect(h.subarray(98, 130)).toEqual(new Uint8Array(32).fill(2));
    expect(h[130]).toBe(5);
    expect(new TextDecoder().decode(h.subarray(131, 136))).toBe("alice");
    expect(h.length).toBeLessThanOrEqual(HELLO_MAX_BYTES);
    expect(x.a.proof.length).toBe(PROOF_BYTES);
    expect(x.a.proof.subarray(0, 2)).toEqual(Uint8Array.of(HANDSHAKE_VERSION, 2));
    expect(toHex(x.sd.transcript)).toBe(toHex(handshakeTranscript(x.hd.hello, x.hl.hello)));
  });

  it("encodes the frame nonce as a little-endian counter", () => {
    expect(toHex(frameNonce(0))).toBe("00".repeat(24));
    expect(toHex(frameNonce(1))).toBe("01" + "00".repeat(23));
    expect(toHex(frameNonce(0x1234567))).toBe("6745230100" + "00".repeat(19));
  });

  it("rejects a peer that signs with a key other than the one in its HELLO", () => {
    // Mallory claims Alice's keys in her HELLO but can only sign with her own seed.
    const fakeAlice: Identity = { ...alice, signing: { publicKey: alice.signing.publicKey, seed: mallory.signing.seed } };
    const hd = startHandshake(fakeAlice, "dialer");
    const hl = startHandshake(bob, "listener");
    const { proof } = hd.receiveHello(hl.hello);
    hl.receiveHello(hd.hello);
    expectHandshakeError(() => hl.receiveProof(proof), /bad signature/);
  });

  it("rejects a reflected proof", () => {
    const hd = startHandshake(alice, "dialer");
    const hl = startHandshake(bob, "listener");
    const { proof: dialerProof } = hd.receiveHello(hl.hello);
    hl.receiveHello(hd.hello);
    // Echoing the dialer's own proof back at it.
    expectHandshakeError(() => hd.receiveProof(dialerProof), /bad signature/);
  });

  it("rejects a proof made with the wrong role byte (the reflection guard)", () => {
    const hd = startHandshake(alice, "dialer");
    const hl = startHandshake(bob, "listener");
    hd.receiveHello(hl.hello);
    hl.receiveHello(hd.hello);
    const t = handshakeTranscript(hd.hello, hl.hello);
    // Bob's own key, the right transcript, but signed as if Bob were the dialer.
    const wrongRole = encodeProof(sign(bob.signing.seed, proofMessage("dialer", t)));
    expectHandshakeError(() => hd.receiveProof(wrongRole), /bad signature/);
    // The same signature with the right role byte is accepted (sanity check of the test itself).
    const hd2 = startHandshake(alice, "dialer");
    const hl2 = startHandshake(bob, "listener");
    hd2.receiveHello(hl2.hello);
    const { proof } = hl2.receiveHello(hd2.hello);
    expect(hd2.receiveProof(proof).peer.name).toBe("bob");
  });

  it("rejects a proof from another connection (replayed handshake)", () => {
    const hd1 = startHandshake(alice, "dialer");
    const hl1 = startHandshake(bob, "listener");
    hd1.receiveHello(hl1.hello);
    const { proof: oldProof } = hl1.receiveHello(hd1.hello);
    // An attacker replays Bob's old HELLO and PROOF to a fresh dial by Alice.
    const hd2 = startHandshake(alice, "dialer");
    hd2.receiveHello(hl1.hello);
    expectHandshakeError(() => hd2.receiveProof(oldProof), /bad signature/);
  });

  it("rejects talking to ourselves", () => {
    const hd = startHandshake(alice, "dialer");
    const hl = startHandshake(alice, "listener");
    expectHandshakeError(() => hd.receiveHello(hl.hello), /talking to ourselves/);
  });

  it("rejects messages out of order", () => {
    const hd = startHandshake(alice, "dialer");
    const hl = startHandshake(bob, "listener");
    const { proof } = hl.receiveHello(hd.hello);
    expectHandshakeError(() => hd.receiveProof(proof), /PROOF before HELLO/);
    const hd2 = startHandshake(alice, "dialer");
    expectHandshakeError(() => hd2.receiveHello(proof), /wrong message type/);
    const hd3 = startHandshake(alice, "dialer");
    hd3.receiveHello(hl.hello);
    expectHandshakeError(() => hd3.receiveHello(hl.hello), /second HELLO/);
  });

  it("rejects a wrong version", () => {
    const hl = startHandshake(bob, "listener");
    const bad = hl.hello.slice();
    bad[0] = 1; // a node from before slice sketches
    expectHandshakeError(() => startHandshake(alice, "dialer").receiveHello(bad), /wrong version/);
  });

  it("rejects invalid addresses and trailing bytes in HELLO", () => {
    const base = decodeHello(startHandshake(bob, "listener").hello);
    expectHandshakeError(() => decodeHello(encodeHello({ ...base, name: "Bob" })), /canonical/);
    expectHandshakeError(() => decodeHello(encodeHello({ ...base, name: "no spaces" })), /bad address/);
    expectHandshakeError(() => decodeHello(encodeHello({ ...base, home: "x".repeat(65) })), /exceeds limit/);
    const good = encodeHello(base);
    expectHandshakeError(() => decodeHello(concat([good, Uint8Array.of(0)])), /trailing/);
    expectHandshakeError(() => decodeProof(concat([encodeProof(new Uint8Array(64)), Uint8Array.of(0)])), /trailing/);
  });

  it("gives HandshakeError for every truncation of HELLO and PROOF", () => {
    const hd = startHandshake(alice, "dialer");
    const hl = startHandshake(bob, "listener");
    const { proof } = hl.receiveHello(hd.hello);
    for (let n = 0; n < hl.hello.length; n++) {
      expectHandshakeError(() => startHandshake(alice, "dialer").receiveHello(hl.hello.subarray(0, n)));
    }
    for (let n = 0; n < proof.length; n++) {
      const h = startHandshake(alice, "dialer");
      h.receiveHello(hl.hello);
      expectHandshakeError(() => h.receiveProof(proof.subarray(0, n)), /truncated/);
    }
  });

  it("gives HandshakeError (never another exception) for random bytes", () => {
    const hl = startHandshake(bob, "listener");
    const sessions = Array.from({ length: 20 }, () => pair().listener);
    for (let i = 0; i < 1000; i++) {
      const junk = randomBytes(i % 300);
      if (i % 3 === 0 && junk.length >= 2) {
        junk[0] = HANDSHAKE_VERSION; // get past the version byte sometimes
        junk[1] = 1 + (i % 2);
      }
      expectHandshakeError(() => startHandshake(alice, "dialer").receiveHello(junk));
      const h: Handshake = startHandshake(alice, "dialer");
      h.receiveHello(hl.hello);
      expectHandshakeError(() => h.receiveProof(junk));
      // Each session dies at its first bad frame; the first 20 frames exercise a live session.
      expectHandshakeError(() => sessions[i % sessions.length]!.open(junk));
    }
  });

  it("rejects tampered session frames and kills the session", () => {
    const { dialer, listener } = pair();
    const f = dialer.seal(utf8("hello"));
    for (let i = 0; i < f.length; i++) {
      const t = f.slice();
      t[i]! ^= 0x01;
      const fresh = pair();
      const g = fresh.dialer.seal(utf8("hello"));
      const tg = g.slice();
      tg[i]! ^= 0x80;
      expectHandshakeError(() => fresh.listener.open(tg), /did not open/);
      // once a frame failed, even a good one is refused
      expectHandshakeError(() => fresh.listener.open(g), /session closed/);
    }
    expect(listener.open(f)).toEqual(utf8("hello"));
  });

  it("rejects reordered, replayed and dropped frames", () => {
    {
      const { dialer, listener } = pair();
      const f0 = dialer.seal(utf8("zero"));
      const f1 = dialer.seal(utf8("one"));
      expectHandshakeError(() => listener.open(f1), /did not open/); // reordered
      expectHandshakeError(() => listener.open(f0));
    }
    {
      const { dialer, listener } = pair();
      const f0 = dialer.seal(utf8("zero"));
      expect(listener.open(f0)).toEqual(utf8("zero"));
      expectHandshakeError(() => listener.open(f0), /did not open/); // replayed
    }
    {
      const { dialer, listener } = pair();
      dialer.seal(utf8("lost"));
      expectHandshakeError(() => listener.open(dialer.seal(utf8("after the lost one"))), /did not open/); // dropped
    }
    {
      // a frame from the other direction (reflected back) does not open either
      const { dialer, listener } = pair();
      const f = dialer.seal(utf8("mine"));
      expectHandshakeError(() => dialer.open(f), /did not open/);
      expect(listener.open(f)).toEqual(utf8("mine"));
    }
    {
      // a frame from another session does not open
      const a = pair();
      const b = pair();
      expectHandshakeError(() => b.listener.open(a.dialer.seal(utf8("x"))), /did not open/);
    }
  });
});
