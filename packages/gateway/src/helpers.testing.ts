// For this package's tests only (not built): the waiting and the temporary folders every gateway test needs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
