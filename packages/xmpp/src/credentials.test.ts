import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ensureCredentials, newPassword, passwordProblem, readCredentials, setPassword, WeakPasswordError } from "./credentials.js";

describe("choosing an XMPP password", () => {
  it("refuses passwords that are easy to guess, saying why", () => {
    const cases: [string, RegExp][] = [
      ["abc", /3 characters, fewer than 10/],
      ["kite-rvr9", /9 characters/],
      ["password123", /most common/],
      ["Password123!", /most common/],
      ["P@ssw0rd2024", /most common/],
      ["minecraft2024", /most common/],
      ["iloveyou!!!", /most common/],
      ["1q2w3e4r5t", /most common/],
      ["Amara2024!!", /your name/],
      ["4m4r4-is-cool", /your name/],
      ["aaaaaaaaaaaa", /repeats/],
      ["abab-abab-abab", /repeats/],
      ["xyzxyzxyzxyz", /repeats/],
      ["abcdefghijklmnopq", /run of neighbouring/],
      ["zyxwvutsrqponmlkj", /run of neighbouring/],
      ["qwertyuiopasdfgh", /run of neighbouring/],
      ["8316405927", /only digits/],
      ["kitemangorv", /only lowercase letters/],
      ["KITEMANGORV", /only capital letters/],
    ];
    for (const [pw, why] of cases) expect(passwordProblem(pw, "amara"), pw).toMatch(why);
  });

  it("takes passwords that are not", () => {
    for (const pw of ["kite-river-mango-47", "Kitemangorv7", "correct horse battery staple", "zqmvtrplkwhfgdsb", "Ndege wa 3 mwitu", "blue-whale-river-9", "lovely-kite-river-3"]) {
      expect(passwordProblem(pw, "amara"), pw).toBeUndefined();
    }
    // the generated ones always pass, and are not checked anyway
    for (let i = 0; i < 200; i++) expect(passwordProblem(newPassword(), "amara")).toBeUndefined();
  });

  it("setPassword refuses a weak one and keeps the old password; takes a good one", () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-creds-"));
    try {
      const before = ensureCredentials(dir).password;
      expect(() => setPassword(dir, "password1234", { name: "amara" })).toThrow(WeakPasswordError);
      expect(() => setPassword(dir, "password1234")).toThrow(/at least 10 characters .* common password/);
      expect(readCredentials(dir)!.password).toBe(before);
      setPassword(dir, "kite-river-mango-47", { name: "amara" });
      expect(readCredentials(dir)!.password).toBe("kite-river-mango-47");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
