// Small files that must never be half-written (identity, node.json, XMPP credentials): write a
// temporary file, fsync it, rename it over the old one.
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from "node:fs";

export function writeFileAtomic(path: string, data: string, mode = 0o600): void {
  const tmp = `${path}.tmp${process.pid}`;
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
