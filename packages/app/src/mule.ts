// `pigeon start --mule "Tuesday bus"`: a node that travels between villages (docs/routing.md, "Mules").
// It is nobody's laptop: its identity is LABEL@mule (the label made into a name), which is how relay
// points recognise it and call it "the tuesday bus" in their routes. It meets anyone (it visits
// several villages' relay points, which share no school secret with it) and keeps a larger store than
// a laptop, because mail between villages waits on it for hours.
import { MULE_HOME } from "@pigeon/sync";
import { validName } from "@pigeon/model";
import { UsageError } from "./command-line.js";

/** A mule's store for carried mail unless --carry-quota says otherwise (a laptop's is 50 MB). */
export const MULE_CARRY_QUOTA_MB = 512;

/** The name a mule's identity gets from its label: "Tuesday bus" -> tuesday-bus. */
export function muleName(label: string): string {
  const name = label.trim().toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[-._]+|[-._]+$/g, "").slice(0, 32).replace(/[-._]+$/, "");
  if (!validName(name)) throw new UsageError(`--mule "${label}" needs a label with letters or digits, e.g. --mule "Tuesday bus"`);
  return name;
}

export { MULE_HOME };
