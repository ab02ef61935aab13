export * from "./daemon.js";
export * from "./data-dir.js";
export * from "./control.js";
