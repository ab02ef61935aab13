import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Unit tests run against the TypeScript sources; end-to-end tests spawn the built CLI.
    alias: {
      "@pigeon/model": src("model"),
      "@pigeon/sync": src("sync"),
      "@pigeon/peers": src("peers"),
      "@pigeon/xmpp": src("xmpp"),
      "@pigeon/gateway": src("gateway"),
    },
  },
  test: {
    include: ["packages/*/src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
