import { describe, expect, it } from "vitest";
import { concat, equalBytes, toBase64, toHex, utf8 } from "./bytes.js";
import { generateSealingKeyPair, randomBytes, secretboxOpenWithNonce, sign, x25519 } from "./crypto.js";
import {
  CONFIRM_BYTES,
  HELLO_BYTES,
  HandshakeError,
  HANDSHAKE_MESSAGE_MAX_BYTES,
  HANDSHAKE_VERSION,
  IDENTITY_BLOCK_BYTES,
  REPLY_BYTES,
  decodeIdentityBlock,
  decodeReply,
  encodeConfirm,
  encodeHello,
  encodeIdentityBlock,
  encodeReply,
  finalTranscript,
  dialerTranscript,
  frameNonce,
  handshakeKeys,
  helloProof,
  listenerTranscript,
  proofMessage,
  sealIdentity,
  startHandshake,
  type Handshake,
  type LinkTrust,
  type Session,
} from "./handshake.js";
import { pairingLinkSecret } from "./keyring.js";
import { generateSchool, schoolLinkSecret } from "./school.js";
import { contactCard, fingerprint, generateIdentity, type Identity } from "./identity.js";

const alice = generateIdentity("alice", "kisumu-primary");
const bob = generateIdentity("bob", "kisumu-primary");
const mallory = generateIdentity("mallory", "elsewhere");

interface Run {
  hd: Handshake;
  hl: Handshake;
  hello: Uint8Array;
  reply: Uint8Array;
  confirm: Uint8Array;
  dialer: Session;
  listener: Session;
}

function run(d: Identity = alice, l: Identity = bob, rd = {}, rl = {}): Run {
  const hd = startHandshake(d, "dialer", rd);
  const hl = startHandshake(l, "listener", rl);
  const hello = hd.opening!;
  const { reply, session: early } = hl.receive(hello);
  expect(early).toBeUndefined(); // the listener has proven nothing about the dialer yet
  const stepD = hd.receive(reply!);
  const stepL = hl.receive(stepD.reply!);
  expect(stepL.reply).toBeUndefined();
  return { hd, hl, hello, reply: reply!, confirm: stepD.reply!, dialer: stepD.session!, listener: stepL.session! };
}

function pair(d: Identity = alice, l: Identity = bob): { dialer: Session; listener: Session } {
  const r = run(d, l);
  return { dialer: r.dialer, listener: r.listener };
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

/** A listener that has answered `hello` and waits for the Confirm. */
function listenerAfterHello(hello: Uint8Array, l: Identity = bob): Handshake {
  const hl = startHandshake(l, "listener");
  hl.receive(hello);
  return hl;
}

/** Every way an identity can show up in bytes: raw, hex, base64 (and base64url), base32 fingerprint. */
function identityForms(id: Identity): Uint8Array[] {
  const forms: Uint8Array[] = [];
  for (const key of [id.signing.publicKey, id.sealing.publicKey]) {
    forms.push(key, utf8(toHex(key)), utf8(toBase64(key)), utf8(Buffer.from(key).toString("base64url")));
  }
  forms.push(utf8(id.name), utf8(id.home), utf8(fingerprint(id.signing.publicKey).replace(/-/g, "")));
  return forms;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;
}

describe("handshake", () => {
  it("authenticates both sides and agrees on a transcript", () => {
    const { dialer, listener } = pair();
    expect(dialer.peer.name).toBe("bob");
    expect(dialer.peer.home).toBe("kisumu-primary");
    expect(equalBytes(dialer.peer.signPublicKey, bob.signing.publicKey)).toBe(true);
    expect(equalBytes(dialer.peer.sealPublicKey, bob.sealing.publicKey)).toBe(true);
    expect(listener.peer.name).toBe("alice");
    expect(equalBytes(listener.peer.signPublicKey, alice.signing.publicKey)).toBe(true);
    expect(equalBytes(listener.peer.sealPublicKey, alice.sealing.publicKey)).toBe(true);
    expect(toHex(dialer.transcript)).toBe(toHex(listener.transcript));
    expect(dialer.role).toBe("dialer");
    expect(listener.role).toBe("listener");
  });

  it("only the dialer speaks first, and the listener's Hello is undefined", () => {
    expect(startHandshake(bob, "listener").opening).toBeUndefined();
    const hello = startHandshake(alice, "dialer").opening!;
    expect(hello.length).toBe(HELLO_BYTES);
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
    expect(toHex(pair().dialer.seal(m))).not.toBe(toHex(pair().dialer.seal(m)));
  });

  it("is reproducible byte by byte with fixed randomness, with the documented layout and key schedule", () => {
    const rd = { ephemeralSecretKey: new Uint8Array(32).fill(1) };
    const rl = { ephemeralSecretKey: new Uint8Array(32).fill(3) };
    const x = run(alice, bob, rd, rl);
    const y = run(alice, bob, rd, rl);
    for (const k of ["hello", "reply", "confirm"] as const) expect(toHex(x[k])).toBe(toHex(y[k]));
    expect(toHex(x.dialer.seal(utf8("hi")))).toBe(toHex(y.dialer.seal(utf8("hi"))));

    // Layout: fixed sizes, version and type, ephemeral keys in clear, the rest sealed.
    const eD = generateSealingKeyPair(rd.ephemeralSecretKey).publicKey;
    const eL = generateSealingKeyPair(rl.ephemeralSecretKey).publicKey;
    expect([x.hello.length, x.reply.length, x.confirm.length]).toEqual([66, 404, 372]);
    expect(HANDSHAKE_MESSAGE_MAX_BYTES).toBe(404);
    expect(x.hello.subarray(0, 34)).toEqual(concat([Uint8Array.of(HANDSHAKE_VERSION, 1), eD]));
    expect(x.reply.subarray(0, 34)).toEqual(concat([Uint8Array.of(HANDSHAKE_VERSION, 2), eL]));
    expect(x.confirm.subarray(0, 2)).toEqual(Uint8Array.of(HANDSHAKE_VERSION, 3));

    // The key schedule, recomputed from its documented pieces, opens and checks both sealed identities.
    const keys = handshakeKeys(x.hello, x.reply.subarray(0, 34), x25519(eD, rl.ephemeralSecretKey)!);
    const bobBlock = encodeIdentityBlock(contactCard(bob));
    const aliceBlock = encodeIdentityBlock(contactCard(alice));
    const tL = listenerTranscript(keys.h0, bobBlock);
    const sigL = sign(bob.signing.seed, proofMessage("listener", tL));
    expect(x.reply.subarray(34)).toEqual(sealIdentity(keys.listenerKey, bobBlock, sigL));
    const tD = dialerTranscript(tL, sigL, aliceBlock);
    const sigD = sign(alice.signing.seed, proofMessage("dialer", tD));
    expect(x.confirm.subarray(2)).toEqual(sealIdentity(keys.dialerKey, aliceBlock, sigD));
    expect(toHex(x.dialer.transcript)).toBe(toHex(finalTranscript(tD, sigD)));
  });

  it("a passive observer sees no name, no home and no long-term key, and sizes that do not depend on them", () => {
    // (names of 5 bytes or more: a shorter one turns up in 600 random bytes by chance now and then)
    const zawadi = generateIdentity("zawadi", "kisumu-primary");
    const baraka = generateIdentity("baraka", "kisumu-primary");
    const shortId = generateIdentity("amani", "nyeri");
    const longId = generateIdentity("a".repeat(32), "h".repeat(63));
    const sizes = new Set<string>();
    for (const [d, l] of [[zawadi, baraka], [shortId, longId], [longId, shortId]] as const) {
      const r = run(d, l);
      const wire = concat([r.hello, r.reply, r.confirm]);
      for (const form of [...identityForms(d), ...identityForms(l)]) expect(contains(wire, form)).toBe(false);
      sizes.add([r.hello.length, r.reply.length, r.confirm.length].join(","));
      // and the frames after it carry no clear identity either
      const frame = r.dialer.seal(utf8(l.name));
      expect(contains(frame, utf8(l.name))).toBe(false);
    }
    expect([...sizes]).toEqual([`${HELLO_BYTES},${REPLY_BYTES},${CONFIRM_BYTES}`]);
    // (the test itself can fail: the identity block does hold the name in clear before sealing)
    expect(contains(encodeIdentityBlock(contactCard(zawadi)), utf8("zawadi"))).toBe(true);
  });

  it("the dialer reveals nothing about itself to a listener whose proof does not check", () => {
    // Mallory listens, claiming Bob's keys, but can only sign with her own seed.
    const fakeBob: Identity = { ...bob, signing: { publicKey: bob.signing.publicKey, seed: mallory.signing.seed } };
    const hd = startHandshake(alice, "dialer");
    const { reply } = startHandshake(fakeBob, "listener").receive(hd.opening!);
    let step: unknown;
    expectHandshakeError(() => (step = hd.receive(reply!)), /bad signature/);
    expect(step).toBeUndefined(); // no Confirm: Alice's identity never left
    expectHandshakeError(() => hd.receive(reply!), /already failed/);
  });

  it("a dialer proves itself only to the listener it checked: the Confirm opens for no one else", () => {
    const r = run();
    // A second listener that answered the same Hello (say, someone racing Bob) cannot open Alice's Confirm.
    const other = listenerAfterHello(r.hello, mallory);
    expectHandshakeError(() => other.receive(r.confirm), /dialer's identity did not open/);
  });

  it("rejects a dialer that signs with a key other than the one in its identity", () => {
    const fakeAlice: Identity = { ...alice, signing: { publicKey: alice.signing.publicKey, seed: mallory.signing.seed } };
    const hd = startHandshake(fakeAlice, "dialer");
    const hl = startHandshake(bob, "listener");
    const { reply } = hl.receive(hd.opening!);
    const { reply: confirm } = hd.receive(reply!);
    expectHandshakeError(() => hl.receive(confirm!), /bad signature/);
  });

  it("rejects a listener proof made with the wrong role byte (the reflection guard)", () => {
    // Bob's own key and the right transcript, but signed as if Bob were the dialer.
    const forgeReply = (role: "dialer" | "listener", hello: Uint8Array) => {
      const e = generateSealingKeyPair();
      const head = Uint8Array.of(HANDSHAKE_VERSION, 2, ...e.publicKey);
      const dEphemeral = hello.subarray(2, 34);
      const keys = handshakeKeys(hello, head, x25519(dEphemeral, e.secretKey)!);
      const block = encodeIdentityBlock(contactCard(bob));
      const sig = sign(bob.signing.seed, proofMessage(role, listenerTranscript(keys.h0, block)));
      return encodeReply(e.publicKey, sealIdentity(keys.listenerKey, block, sig));
    };
    const hd = startHandshake(alice, "dialer");
    expectHandshakeError(() => hd.receive(forgeReply("dialer", hd.opening!)), /bad signature/);
    // The same forgery with the right role byte is accepted (the test itself can fail).
    const hd2 = startHandshake(alice, "dialer");
    expect(hd2.receive(forgeReply("listener", hd2.opening!)).session!.peer.name).toBe("bob");
  });

  it("rejects a Reply from another connection (replayed handshake)", () => {
    const old = run();
    // An attacker replays Bob's old Reply to a fresh dial by Alice: it was sealed for another Hello.
    const hd2 = startHandshake(alice, "dialer");
    expectHandshakeError(() => hd2.receive(old.reply), /listener did not show who it is/);
    // and an old Confirm to a fresh listener
    const hl2 = listenerAfterHello(startHandshake(alice, "dialer").opening!);
    expectHandshakeError(() => hl2.receive(old.confirm), /dialer's identity did not open/);
  });

  it("rejects an ephemeral key that is a low-order point", () => {
    const zeroHello = encodeHello(new Uint8Array(32));
    expectHandshakeError(() => startHandshake(bob, "listener").receive(zeroHello), /low-order/);
    const hd = startHandshake(alice, "dialer");
    const fake = encodeReply(Uint8Array.of(1, ...new Uint8Array(31)), new Uint8Array(decodeReply(run().reply).sealedIdentity));
    expectHandshakeError(() => hd.receive(fake), /low-order/);
  });

  it("rejects talking to ourselves, on both sides", () => {
    const hd = startHandshake(alice, "dialer");
    const hl = startHandshake(alice, "listener");
    const { reply } = hl.receive(hd.opening!);
    expectHandshakeError(() => hd.receive(reply!), /talking to ourselves/);
    // A listener sent a validly sealed and signed Confirm carrying its own identity (a dialer that
    // holds the same identity and skips its own check).
    const rd = { ephemeralSecretKey: randomBytes(32) };
    const hello = startHandshake(alice, "dialer", rd).opening!;
    const hl2 = startHandshake(bob, "listener");
    const { reply: r2 } = hl2.receive(hello);
    const keys = handshakeKeys(hello, r2!.subarray(0, 34), x25519(r2!.subarray(2, 34), rd.ephemeralSecretKey)!);
    const opened = secretboxOpenWithNonce(keys.listenerKey, new Uint8Array(24), r2!.subarray(34))!;
    const tL = listenerTranscript(keys.h0, opened.subarray(0, IDENTITY_BLOCK_BYTES));
    const bobBlock = encodeIdentityBlock(contactCard(bob));
    const tD = dialerTranscript(tL, opened.subarray(IDENTITY_BLOCK_BYTES), bobBlock);
    const forged = encodeConfirm(sealIdentity(keys.dialerKey, bobBlock, sign(bob.signing.seed, proofMessage("dialer", tD))));
    expectHandshakeError(() => hl2.receive(forged), /talking to ourselves/);
  });

  it("rejects messages out of order", () => {
    const r = run();
    expectHandshakeError(() => startHandshake(bob, "listener").receive(r.reply), /wrong message type 2 \(expected Hello=1\)/);
    expectHandshakeError(() => startHandshake(bob, "listener").receive(r.confirm), /wrong message type 3/);
    expectHandshakeError(() => startHandshake(alice, "dialer").receive(r.hello), /wrong message type 1 \(expected Reply=2\)/);
    expectHandshakeError(() => listenerAfterHello(r.hello).receive(r.hello), /wrong message type 1 \(expected Confirm=3\)/);
    expectHandshakeError(() => r.hd.receive(r.reply), /after the handshake finished/);
    expectHandshakeError(() => r.hl.receive(r.confirm), /after the handshake finished/);
  });

  it("rejects another version with 'wrong version' (a version-2 node's clear Hello included)", () => {
    for (const v of [2, 3, 4, 5]) {
      const bad = startHandshake(alice, "dialer").opening!.slice();
      bad[0] = v;
      expectHandshakeError(() => startHandshake(bob, "listener").receive(bad), new RegExp(`wrong version ${v} \\(expected ${HANDSHAKE_VERSION}\\)`));
    }
    // What a version-2 listener sends first: its clear Hello (u8 2, u8 1, keys, challenge, name, home).
    const v2Hello = concat([Uint8Array.of(2, 1), bob.signing.publicKey, bob.sealing.publicKey, randomBytes(64), Uint8Array.of(3), utf8("bob"), Uint8Array.of(5), utf8("local")]);
    expectHandshakeError(() => startHandshake(alice, "dialer").receive(v2Hello), new RegExp(`wrong version 2 \\(expected ${HANDSHAKE_VERSION}\\)`));
  });

  it("rejects invalid identities and trailing bytes", () => {
    const card = contactCard(bob);
    expectHandshakeError(() => decodeIdentityBlock(encodeIdentityBlock({ ...card, name: "Bob" })), /canonical/);
    expectHandshakeError(() => decodeIdentityBlock(encodeIdentityBlock({ ...card, name: "no spaces" })), /bad address/);
    const padded = encodeIdentityBlock(card);
    padded[IDENTITY_BLOCK_BYTES - 1] = 1;
    expectHandshakeError(() => decodeIdentityBlock(padded), /padding is not zero/);
    const longHome = encodeIdentityBlock(card);
    longHome[32 + 32 + 1 + 3] = 65; // home length past its limit
    expectHandshakeError(() => decodeIdentityBlock(longHome), /exceeds limit/);
    expectHandshakeError(() => decodeIdentityBlock(padded.subarray(1)), /malformed/);
    const r = run();
    expectHandshakeError(() => startHandshake(bob, "listener").receive(concat([r.hello, Uint8Array.of(0)])), /trailing/);
    expectHandshakeError(() => startHandshake(alice, "dialer").receive(concat([r.reply, Uint8Array.of(0)])), /trailing/);
    expectHandshakeError(() => listenerAfterHello(r.hello).receive(concat([r.confirm, Uint8Array.of(0)])), /trailing/);
  });

  it("rejects a validly sealed identity whose address is bad (checked before the signature)", () => {
    const hd = startHandshake(alice, "dialer");
    const hello = hd.opening!;
    const e = generateSealingKeyPair();
    const head = Uint8Array.of(HANDSHAKE_VERSION, 2, ...e.publicKey);
    const keys = handshakeKeys(hello, head, x25519(hello.subarray(2, 34), e.secretKey)!);
    const block = encodeIdentityBlock({ ...contactCard(bob), name: "BOB" });
    const sig = sign(bob.signing.seed, proofMessage("listener", listenerTranscript(keys.h0, block)));
    expectHandshakeError(() => hd.receive(encodeReply(e.publicKey, sealIdentity(keys.listenerKey, block, sig))), /canonical/);
  });

  it("gives HandshakeError for every truncation of every message", () => {
    const r = run();
    for (let n = 0; n < r.hello.length; n++)
      expectHandshakeError(() => startHandshake(bob, "listener").receive(r.hello.subarray(0, n)), /truncated/);
    for (let n = 0; n < r.reply.length; n++)
      expectHandshakeError(() => startHandshake(alice, "dialer").receive(r.reply.subarray(0, n)), /truncated/);
    const fresh = run();
    for (let n = 0; n < fresh.confirm.length; n++) {
      // each listener answers the same Hello again; a truncated Confirm fails before any key is used
      expectHandshakeError(() => listenerAfterHello(fresh.hello).receive(fresh.confirm.subarray(0, n)), /truncated/);
    }
  });

  it("gives HandshakeError for every single-bit change of Reply and Confirm", () => {
    const rd = { ephemeralSecretKey: randomBytes(32) };
    const rl = { ephemeralSecretKey: randomBytes(32) };
    const r = run(alice, bob, rd, rl);
    for (let i = 0; i < r.reply.length; i++) {
      const t = r.reply.slice();
      t[i]! ^= 1 << (i % 8);
      expectHandshakeError(() => startHandshake(alice, "dialer", rd).receive(t));
    }
    for (let i = 0; i < r.confirm.length; i++) {
      const t = r.confirm.slice();
      t[i]! ^= 1 << (i % 8);
      const hl = startHandshake(bob, "listener", rl);
      hl.receive(r.hello);
      expectHandshakeError(() => hl.receive(t));
    }
    // (the same fixed randomness with the unchanged messages succeeds)
    const hd = startHandshake(alice, "dialer", rd);
    expect(hd.receive(r.reply).session!.peer.name).toBe("bob");
  });

  it("gives HandshakeError (never another exception) for random bytes in every state", () => {
    const sessions = Array.from({ length: 20 }, () => pair().listener);
    const hello = startHandshake(alice, "dialer").opening!;
    for (let i = 0; i < 500; i++) {
      // sometimes exactly a message's length with a good header, to get past the decoder to the crypto
      const lengths = [i % 400, HELLO_BYTES, REPLY_BYTES, CONFIRM_BYTES];
      const junk = randomBytes(lengths[i % 4]!);
      if (i % 2 === 0 && junk.length >= 2) {
        junk[0] = HANDSHAKE_VERSION;
        junk[1] = 1 + (i % 3);
      }
      expectHandshakeError(() => startHandshake(bob, "listener").receive(junk));
      expectHandshakeError(() => startHandshake(alice, "dialer").receive(junk));
      expectHandshakeError(() => listenerAfterHello(hello).receive(junk));
      // Each session dies at its first bad frame; the first 20 frames exercise a live session.
      expectHandshakeError(() => sessions[i % sessions.length]!.open(junk));
    }
  });

  it("encodes the frame nonce as a little-endian counter", () => {
    expect(toHex(frameNonce(0))).toBe("00".repeat(24));
    expect(toHex(frameNonce(1))).toBe("01" + "00".repeat(23));
    expect(toHex(frameNonce(0x1234567))).toBe("6745230100" + "00".repeat(19));
  });

  it("rejects tampered session frames and kills the session", () => {
    const { dialer, listener } = pair();
    const f = dialer.seal(utf8("hello"));
    for (let i = 0; i < f.length; i++) {
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

describe("who learns who a laptop is (link secrets)", () => {
  const kisumu = schoolLinkSecret(generateSchool("kisumu-primary").directoryKey);
  const nyeri = schoolLinkSecret(generateSchool("nyeri-primary").directoryKey);
  const inSchool = (secret: Uint8Array, extra: Uint8Array[] = []): LinkTrust => ({ secrets: () => [secret, ...extra], showToStrangers: () => false });
  const open = (secrets: Uint8Array[] = []): LinkTrust => ({ secrets: () => secrets, showToStrangers: () => true });
  const zawadi = generateIdentity("zawadi", "kisumu-primary");
  const baraka = generateIdentity("baraka", "kisumu-primary");
  const stranger = generateIdentity("stranger", "nowhere");

  /** Runs a handshake as far as it goes; returns the messages and who got a session or an error. */
  function attempt(d: Identity, dt: LinkTrust, l: Identity, lt: LinkTrust) {
    const hd = startHandshake(d, "dialer", { trust: dt });
    const hl = startHandshake(l, "listener", { trust: lt });
    const hello = hd.opening!;
    const reply = hl.receive(hello).reply!;
    let dialer: Session | undefined, listener: Session | undefined, dialerError: string | undefined, listenerError: string | undefined;
    let confirm: Uint8Array | undefined;
    try {
      const step = hd.receive(reply);
      dialer = step.session;
      confirm = step.reply;
    } catch (e) {
      dialerError = (e as HandshakeError).reason;
    }
    if (confirm) {
      try {
        listener = hl.receive(confirm).session;
      } catch (e) {
        listenerError = (e as HandshakeError).reason;
      }
    }
    return { hello, reply, confirm, dialer, listener, dialerError, listenerError };
  }

  it("schoolmates show themselves to each other, and the link says it was made under the school's secret", () => {
    const r = attempt(zawadi, inSchool(kisumu), baraka, inSchool(kisumu));
    expect(r.dialer!.peer.name).toBe("baraka");
    expect(r.listener!.peer.name).toBe("zawadi");
    expect([r.dialer!.shared, r.listener!.shared]).toEqual([true, true]);
    expect([r.hello.length, r.reply.length, r.confirm!.length]).toEqual([HELLO_BYTES, REPLY_BYTES, CONFIRM_BYTES]);
    // the proof is the documented HMAC, in the first slot
    expect(r.hello.subarray(34, 50)).toEqual(helloProof(kisumu, r.hello.subarray(2, 34)));
  });

  it("a child in a school shows a stranger nothing: a Reply of the usual size that opens under no key", () => {
    const r = attempt(stranger, open(), zawadi, inSchool(kisumu));
    expect(r.dialer).toBeUndefined();
    expect(r.dialerError).toMatch(/did not show who it is/);
    expect(r.reply.length).toBe(REPLY_BYTES);
    for (const form of identityForms(zawadi)) expect(contains(r.reply, form)).toBe(false);
    // and the listener refuses whatever comes next
    const hl = startHandshake(zawadi, "listener", { trust: inSchool(kisumu) });
    hl.receive(startHandshake(stranger, "dialer").opening!);
    expectHandshakeError(() => hl.receive(new Uint8Array(CONFIRM_BYTES)), /proved no school or pairing code/);
  });

  it("a stranger who replays a schoolmate's Hello cannot open the Reply it gets (it lacks the ephemeral secret)", () => {
    const honest = startHandshake(baraka, "dialer", { trust: inSchool(kisumu) });
    const hl = startHandshake(zawadi, "listener", { trust: inSchool(kisumu) });
    const reply = hl.receive(honest.opening!).reply!;
    // the stranger has the Hello and the Reply, but no key opens the sealed identity without the
    // ephemeral secret: try the obvious ones
    const head = reply.subarray(0, 34);
    for (const dh of [new Uint8Array(32), randomBytes(32)])
      for (const psk of [kisumu, new Uint8Array(32)])
        expect(secretboxOpenWithNonce(handshakeKeys(honest.opening!, head, dh, psk).listenerKey, new Uint8Array(24), reply.subarray(34))).toBeNull();
    for (const form of identityForms(zawadi)) expect(contains(reply, form)).toBe(false);
  });

  it("a child in a school dialing an open stranger learns who it is but does not show itself", () => {
    const r = attempt(zawadi, inSchool(kisumu), stranger, open());
    expect(r.dialerError).toMatch(/shares no school or pairing code with us/);
    expect(r.confirm).toBeUndefined();
    expect(r.listener).toBeUndefined();
  });

  it("two children of different schools do not link, and neither learns who the other is", () => {
    const amani = generateIdentity("amani", "nyeri-primary");
    for (const [d, dt, l, lt] of [[zawadi, inSchool(kisumu), amani, inSchool(nyeri)], [amani, inSchool(nyeri), zawadi, inSchool(kisumu)]] as const) {
      const r = attempt(d, dt, l, lt);
      expect(r.dialerError).toMatch(/did not show who it is/);
      expect(r.confirm).toBeUndefined();
      for (const form of identityForms(l)) expect(contains(r.reply, form)).toBe(false);
    }
  });

  it("a pairing code opens the way between a child's device in a school and the new device, in either direction", () => {
    const code = "abcd-efgh-ijkl";
    const tablet = generateIdentity("zawadi", "kisumu-primary");
    const pairing = pairingLinkSecret(code);
    expect(pairingLinkSecret("ABCD EFGH IJKL")).toEqual(pairing);
    // the new device dials the first one, and the other way round
    const a = attempt(tablet, open([pairing]), zawadi, inSchool(kisumu, [pairing]));
    expect([a.dialer?.shared, a.listener?.shared]).toEqual([true, true]);
    const b = attempt(zawadi, inSchool(kisumu, [pairing]), tablet, open([pairing]));
    expect([b.dialer?.shared, b.listener?.shared]).toEqual([true, true]);
    // a wrong code is a stranger
    const c = attempt(tablet, open([pairingLinkSecret("zzzz-zzzz-zzzz")]), zawadi, inSchool(kisumu, [pairing]));
    expect(c.dialerError).toMatch(/did not show who it is/);
  });

  it("laptops in no school still meet anyone nearby (their choice), and say the link is not under a shared secret", () => {
    const r = attempt(stranger, open(), generateIdentity("kito", "home"), open());
    expect([r.dialer!.shared, r.listener!.shared]).toEqual([false, false]);
  });
});
