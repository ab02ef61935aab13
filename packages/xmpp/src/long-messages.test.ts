import { describe, expect, it } from "vitest";
import { MAX_BODY_CHARS } from "@pigeon/model";
import { MAX_MESSAGE_CHARS, splitBody } from "./long-messages.js";

describe("splitting long messages", () => {
  it("keeps a short body whole", () => {
    expect(splitBody("hello")).toEqual(["hello"]);
    expect(splitBody("x".repeat(MAX_BODY_CHARS))).toEqual(["x".repeat(MAX_BODY_CHARS)]);
  });

  it("cuts at a line break or a space, each part within the limit, and the parts join to the body", () => {
    const words = Array.from({ length: 2000 }, (_, i) => `word${i}`).join(" ");
    const parts = splitBody(words)!;
    expect(parts.length).toBe(Math.ceil(words.length / MAX_BODY_CHARS));
    expect(parts.join("")).toBe(words);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(MAX_BODY_CHARS);
    for (const p of parts.slice(0, -1)) expect(p.endsWith(" ")).toBe(true);
    const lines = Array.from({ length: 900 }, (_, i) => `line ${i} of the story`).join("\n");
    for (const p of splitBody(lines)!.slice(0, -1)) expect(p.endsWith("\n")).toBe(true);
  });

  it("never splits a surrogate pair", () => {
    const body = "🐦".repeat(MAX_BODY_CHARS); // 16,000 UTF-16 units, no spaces
    const parts = splitBody(body)!;
    expect(parts.join("")).toBe(body);
    for (const p of parts) expect(p).toMatch(/^(🐦)+$/u);
  });

  it("refuses what is over the limit", () => {
    expect(splitBody("x".repeat(MAX_MESSAGE_CHARS))!.length).toBe(4);
    expect(splitBody("x".repeat(MAX_MESSAGE_CHARS + 1))).toBeUndefined();
    expect(splitBody("a".repeat(200 * 1024))).toBeUndefined();
  });
});
