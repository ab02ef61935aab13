// Imported first by the pigeon command, before anything loads Automerge: Automerge's WebAssembly runs
// on V8's baseline compiler (Liftoff) only. Otherwise V8 recompiles its hot functions with TurboFan on
// worker threads, and the C allocator keeps the memory those compilations used: a node under attack
// went from about 130 MB to 155-175 MB resident after a few messages (test/exhaustion.test.ts, with
// or without the buddy list). Pigeon's documents are small, and Liftoff code is fast enough for them.
import { setFlagsFromString } from "node:v8";

setFlagsFromString("--liftoff-only");
