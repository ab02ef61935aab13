// The embedding example in packages/sync/README.md is examples/two-laptops.mjs, word for word, and
// it runs: two embedded nodes deliver a message and see it delivered.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

describe("examples", () => {
  it("the README's embedding example is examples/two-laptops.mjs and delivers a message", async () => {
    const example = readFileSync(`${root}/examples/two-laptops.mjs`, "utf8");
    const readme = readFileSync(`${root}/packages/sync/README.md`, "utf8");
    expect(readme).toContain("```js\n" + example + "```");
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["examples/two-laptops.mjs"], { cwd: root, timeout: 30_000 }, (e, stdout, stderr) =>
        e ? reject(new Error(`${e.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      ),
    );
    expect(out).toContain('baraka@local got "hello from amara" from amara@local');
    expect(out).toContain("amara's outbox says: delivered");
  });
});
