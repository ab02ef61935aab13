// For this package's tests and the testbed only (not built): the waiting and the temporary folders every gateway
// test needs, and reading a data directory byte for byte for a text it must no longer hold.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as A from "@automerge/automerge";

/** Wait until a condition holds, or fail saying what did not happen. */
export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A maker of temporary folders named `prefix…`, each removed by the test's cleanup. */
export const tempDirs = (cleanup: (() => unknown)[], prefix: string) => (): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

/**
 * Every file under `dir` holding `text`: as UTF-8 bytes, or inside an Automerge chunk (its columns are
 * compressed, so each chunk the document store wrote is also loaded and its content searched).
 */
export function filesHolding(dir: string, text: string): string[] {
  const needle = Buffer.from(text, "utf8");
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      let bytes: Buffer;
      try {
        if (statSync(p).isDirectory()) {
          walk(p);
          continue;
        }
        bytes = readFileSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // a temporary file renamed meanwhile (atomic writes)
        throw e;
      }
      let held = bytes.includes(needle);
      if (!held && name.endsWith(".chunk")) {
        try {
          held = JSON.stringify(A.toJS(A.loadIncremental(A.init(), new Uint8Array(bytes)))).includes(text);
        } catch {
          // not an Automerge chunk
        }
      }
      if (held) out.push(p.slice(dir.length + 1));
    }
  };
  walk(dir);
  return out;
}
