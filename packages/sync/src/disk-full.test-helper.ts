// For this package's tests only (not built): document storage in memory whose saves fail as on a full disk.
import { MemoryStorage } from "./memory-storage.js";

/** A MemoryStorage whose saves throw ENOSPC while `full` is set. */
export function fillableStorage(): { storage: MemoryStorage; full: (yes: boolean) => void } {
  const storage = new MemoryStorage();
  let full = false;
  const save = storage.save.bind(storage);
  storage.save = async (key, data) => {
    if (full) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
    return save(key, data);
  };
  return { storage, full: (yes) => void (full = yes) };
}
