import { describe, expect, it } from "vitest";
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import { deriveScram, SaslFailure, ScramClient, ScramServer } from "./scram.js";
import { makeCredentials, newPassword } from "./credentials.js";

describe("SCRAM", () => {
  it("matches the RFC 5802 / RFC 7677 test vectors", () => {
    // RFC 5802 §5: user/pencil, salt QSXCR+Q6sek8bf92, 4096 iterations
    const salt = Buffer.from("QSXCR+Q6sek8bf92", "base64");
    const c1 = deriveScram("sha1", "pencil", salt, 4096);
    const server = new ScramServer("sha1", () => c1);
    // replay the RFC's exchange with its nonces
    (server as unknown as { nonce: string }).nonce = "";
    const first = server.start("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    expect(first).toMatch(/^r=fyko\+d2lbbFgONRv9qkxdawL.+,s=QSXCR\+Q6sek8bf92,i=4096$/);
    // force the RFC's server nonce to check the proof and signature
    const rfcFirst = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    Object.assign(server as object, { nonce: "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", serverFirst: rfcFirst });
    const final = server.finish("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    expect(final).toBe("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    // RFC 7677 §3: SCRAM-SHA-256
    const c256 = deriveScram("sha256", "pencil", Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"), 4096);
    const s256 = new ScramServer("sha256", () => c256);
    s256.start("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    Object.assign(s256 as object, {
      nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
      serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    });
    expect(s256.finish("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")).toBe(
      "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    );
  });

  for (const hash of ["sha1", "sha256"] as const) {
    it(`logs in with our client and refuses a wrong password (${hash})`, () => {
      const cred = deriveScram(hash, "correct horse");
      const ok = new ScramClient(hash, "amara", "correct horse");
      const server = new ScramServer(hash, (u) => (u === "amara" ? cred : undefined));
      const sf = server.start(ok.first());
      expect(ok.verify(server.finish(ok.final(sf)))).toBe(true);

      const bad = new ScramClient(hash, "amara", "wrong");
      const s2 = new ScramServer(hash, (u) => (u === "amara" ? cred : undefined));
      expect(() => s2.finish(bad.final(s2.start(bad.first())))).toThrow(SaslFailure);

      const nobody = new ScramClient(hash, "nobody", "correct horse");
      const s3 = new ScramServer(hash, (u) => (u === "amara" ? cred : undefined));
      expect(() => s3.finish(nobody.final(s3.start(nobody.first())))).toThrow(/wrong user name or password/);
    });
  }

  it("refuses channel binding it never offered and malformed messages", () => {
    const s = new ScramServer("sha1", () => undefined);
    expect(() => s.start("p=tls-unique,,n=a,r=x")).toThrow(SaslFailure);
    expect(() => new ScramServer("sha1", () => undefined).start("garbage")).toThrow(SaslFailure);
    expect(() => new ScramServer("sha1", () => undefined).start("n,,n=a")).toThrow(/lacks/);
  });

  it("stores only salted keys that verify the password", () => {
    const c = makeCredentials("abcd-efgh-ijkm");
    for (const hash of ["sha1", "sha256"] as const) {
      const login = (pw: string) => {
        const client = new ScramClient(hash, "amara", pw);
        const server = new ScramServer(hash, () => c.scram[hash]);
        return client.verify(server.finish(client.final(server.start(client.first()))));
      };
      expect(login("abcd-efgh-ijkm")).toBe(true);
      expect(() => login("abcd-efgh-ijkn")).toThrow(SaslFailure);
    }
    expect(c.scram.sha1.iterations).toBeGreaterThanOrEqual(4096);
    expect(newPassword()).toMatch(/^[a-z2-9]{4}(-[a-z2-9]{4}){3}$/);
    // sanity: our derivation equals the textbook one
    const salted = pbkdf2Sync("pw", Buffer.from(c.scram.sha1.salt, "base64"), 4096, 20, "sha1");
    const stored = createHash("sha1").update(createHmac("sha1", salted).update("Client Key").digest()).digest("base64");
    expect(deriveScram("sha1", "pw", Buffer.from(c.scram.sha1.salt, "base64")).storedKey).toBe(stored);
  });
});
