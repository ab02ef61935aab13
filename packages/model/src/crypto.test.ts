// The key-derivation pieces the handshake builds from sha256 (HMAC, HKDF) and raw X25519: the RFCs'
// test vectors, and agreement with node:crypto's own HMAC and HKDF (used here only as a reference).
import { createHmac, hkdfSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fromHex, toHex, utf8 } from "./bytes.js";
import { generateSealingKeyPair, hkdfExpand, hkdfExtract, hmacSha256, randomBytes, x25519 } from "./crypto.js";

describe("hmacSha256", () => {
  it("matches RFC 4231 test cases 1, 2 and 6 (a key longer than the block)", () => {
    expect(toHex(hmacSha256(new Uint8Array(20).fill(0x0b), utf8("Hi There")))).toBe(
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    );
    expect(toHex(hmacSha256(utf8("Jefe"), utf8("what do ya want for nothing?")))).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    expect(toHex(hmacSha256(new Uint8Array(131).fill(0xaa), utf8("Test Using Larger Than Block-Size Key - Hash Key First")))).toBe(
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    );
  });

  it("agrees with node:crypto for random keys and messages, and message parts are concatenated", () => {
    for (let i = 0; i < 200; i++) {
      const key = randomBytes(i % 150);
      const a = randomBytes(i % 37);
      const b = randomBytes((i * 7) % 101);
      const expected = createHmac("sha256", key).update(a).update(b).digest("hex");
      expect(toHex(hmacSha256(key, a, b))).toBe(expected);
    }
  });
});

describe("HKDF-SHA256", () => {
  it("matches RFC 5869 test case 1", () => {
    const prk = hkdfExtract(fromHex("000102030405060708090a0b0c"), new Uint8Array(22).fill(0x0b));
    expect(toHex(prk)).toBe("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    expect(toHex(hkdfExpand(prk, fromHex("f0f1f2f3f4f5f6f7f8f9"), 42))).toBe(
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );
  });

  it("agrees with node:crypto's hkdfSync for other lengths", () => {
    for (const length of [0, 1, 31, 32, 33, 64, 100, 255 * 32]) {
      const salt = randomBytes(32);
      const ikm = randomBytes(32);
      const info = randomBytes(length % 50);
      const expected = Buffer.from(hkdfSync("sha256", ikm, salt, info, length)).toString("hex");
      expect(toHex(hkdfExpand(hkdfExtract(salt, ikm), info, length))).toBe(expected);
    }
    expect(() => hkdfExpand(new Uint8Array(32), new Uint8Array(0), 255 * 32 + 1)).toThrow(RangeError);
  });
});

describe("x25519", () => {
  it("gives both sides the same secret, and null for low-order points", () => {
    const a = generateSealingKeyPair();
    const b = generateSealingKeyPair();
    const ab = x25519(b.publicKey, a.secretKey);
    expect(ab).not.toBeNull();
    expect(toHex(ab!)).toBe(toHex(x25519(a.publicKey, b.secretKey)!));
    expect(x25519(new Uint8Array(32), a.secretKey)).toBeNull(); // the zero point
    expect(x25519(Uint8Array.of(1, ...new Uint8Array(31)), a.secretKey)).toBeNull(); // the point of order 1
    expect(x25519(new Uint8Array(31), a.secretKey)).toBeNull(); // wrong length
  });
});
