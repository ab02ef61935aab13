// What `pigeon requests` prints when a stranger wrote more than the listing shows.
import { describe, expect, it } from "vitest";
import type { MessageView, RequestView } from "@pigeon/sync";
import { formatRequests } from "./format.js";

const message = (i: number): MessageView => ({
  id: `${i.toString(16).padStart(4, "0")}aabbccdd`, conversation: "00", direction: "in", from: "amara@local#abcd", to: ["zawadi@local"],
  body: `message ${i}`, hlc: String(i), claimedSentAt: i, request: true,
});

describe("formatRequests", () => {
  it("says how many older messages of a sender are not shown", () => {
    const r: RequestView = { from: "amara@local#abcd", fingerprint: "abcd-efgh-ijkl-mnop", messages: [20, 21, 22].map(message), total: 23 };
    const text = formatRequests([r]);
    expect(text).toContain("(20 older not shown)");
    expect(text).toContain("message 22");
    expect(formatRequests([{ ...r, total: 3 }])).not.toContain("older not shown");
  });
});
