// What a relay point learnt of its carriers' rhythm (when each mule, each other relay point's link,
// came by: the last 16 contact starts, and the name to show for it), kept in its data directory so a
// power cut does not make it learn every bus's timetable again (docs/routing.md, "Mules").
// The file is the relay point's own (owner-only), but it is checked entry by entry on load: a damaged
// or hand-edited entry is left out (and said so), never trusted into the table.
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "./atomic-file.js";

export const CONTACTS_FILE_VERSION = 1;
/** As many starts as the table keeps for a carrier (routes.ts, CONTACTS_KEPT). */
const STARTS_KEPT = 16;
const MAX_CARRIERS = 4096;
const MAX_LABEL = 80;
/** A start this far past the relay point's clock is not one it saw: left out. */
const FUTURE_SLACK_MS = 24 * 3600_000;

export interface LearntCarrier {
  id: string;
  label: string;
  starts: number[];
}

export interface LoadedContacts {
  carriers: LearntCarrier[];
  /** Why entries (or the whole file) were left out. */
  problems: string[];
}

export function loadContacts(path: string, now: number): LoadedContacts {
  if (!existsSync(path)) return { carriers: [], problems: [] };
  let f: unknown;
  try {
    f = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    return { carriers: [], problems: [`${path} is not JSON (${(e as Error).message}); carriers' rhythm is learnt again`] };
  }
  const file = f as { version?: unknown; carriers?: unknown };
  if (file?.version !== CONTACTS_FILE_VERSION || !Array.isArray(file.carriers))
    return { carriers: [], problems: [`${path} has an unknown format or version; carriers' rhythm is learnt again`] };
  const carriers: LearntCarrier[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of file.carriers.slice(0, MAX_CARRIERS).entries()) {
    const c = raw as { id?: unknown; label?: unknown; starts?: unknown };
    const why =
      typeof c?.id !== "string" || !/^[0-9a-f]{64}$/.test(c.id) ? "not a carrier's key"
      : seen.has(c.id) ? "listed twice"
      : typeof c.label !== "string" || c.label.length === 0 || c.label.length > MAX_LABEL || /[\u0000-\u001f]/.test(c.label) ? "a bad name"
      : !Array.isArray(c.starts) || c.starts.length === 0 || c.starts.length > STARTS_KEPT ? "no contacts, or too many"
      : !c.starts.every((t, j, a) => Number.isSafeInteger(t) && t > 0 && (j === 0 || t > (a[j - 1] as number))) ? "contact times not rising"
      : (c.starts[c.starts.length - 1] as number) > now + FUTURE_SLACK_MS ? "contacts in the future"
      : undefined;
    if (why) {
      problems.push(`${path}: carrier ${i} left out (${why})`);
      continue;
    }
    seen.add(c.id as string);
    carriers.push({ id: c.id as string, label: c.label as string, starts: c.starts as number[] });
  }
  return { carriers, problems };
}

export function saveContacts(path: string, carriers: readonly LearntCarrier[]): void {
  writeFileAtomic(path, JSON.stringify({ version: CONTACTS_FILE_VERSION, carriers }) + "\n");
}
