export * from "./durable-storage.js";
export * from "./envelope-store.js";
export * from "./local-state.js";
export * from "./document-store.js";
export * from "./mailbox.js";
export * from "./sync-engine.js";
export * from "./memory-link.js";
export * from "./atomic-file.js";
