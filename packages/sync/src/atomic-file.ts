// Small files that must never be half-written (identity, node.json, XMPP credentials): write a
// temporary file, fsync it, rename it over the old one, then fsync the directory so the rename itself
// survives a power cut (without it, the directory entry may still name the old file, or no file, after
// a crash; DurableFileStorage does the same for documents).
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** Makes a directory's entries (a rename, a new file) durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

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
  fsyncDir(dirname(path));
}
