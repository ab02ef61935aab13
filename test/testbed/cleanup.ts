// Removes what testbed runs left behind: network namespaces (and the daemons inside them), any
// interface with the testbed's prefix in the root namespace, and temp data directories.
//
//   npx esbuild test/testbed/cleanup.ts --bundle --platform=node --format=esm --log-level=error \
//     | node --input-type=module - [--all]
//
// Without --all it only removes what belongs to runs whose process is gone (a crashed or killed
// run); --all also removes running testbeds'. Every Testbed.create() does the former by itself.
import { cleanupLeftovers, PREFIX } from "./testbed.js";

const args = process.argv.slice(2);
if (args.includes("-h") || args.includes("--help")) {
  console.log(`usage: cleanup [--all]   remove ${PREFIX}-* namespaces, ${PREFIX}* interfaces and testbed temp dirs of dead runs (--all: of live runs too)`);
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error("cleanup: needs root (ip netns)");
  process.exit(1);
}
const r = cleanupLeftovers({ all: args.includes("--all") });
for (const ns of r.namespaces) console.log(`removed namespace ${ns}`);
for (const l of r.links) console.log(`removed interface ${l}`);
for (const d of r.dirs) console.log(`removed directory ${d}`);
for (const ns of r.skipped) console.log(`kept ${ns} (its run is still going; --all removes it)`);
if (!r.namespaces.length && !r.links.length && !r.dirs.length) console.log("nothing to clean up");
