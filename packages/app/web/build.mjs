// Builds the browser's replica (web/src/replica.ts) into one file, and puts Automerge's WebAssembly
// beside it. The rest of the app needs no bundler (tsc's ES modules are served as they are), but
// automerge-repo and its adapters are dozens of npm modules, some CommonJS, that a browser cannot
// load one by one: esbuild makes them one ES module (`dist/web/replica-bundle.js`), loaded by the
// page after its first screen. Run by `npm run build` (after tsc -b) and by the web tests.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "../dist/web");

export async function buildReplica() {
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(here, "src/replica.ts")],
    outfile: join(out, "replica-bundle.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    logLevel: "warning",
  });
  // the slim Automerge is given its WebAssembly by the page (fetched from the node, never from elsewhere)
  const require = createRequire(join(here, "../package.json"));
  copyFileSync(require.resolve("@automerge/automerge/automerge.wasm"), join(out, "automerge.wasm"));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildReplica();
