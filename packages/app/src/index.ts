// The public API of @pigeon/app: what `pigeon start` does, for a program that wants to run the same
// node. The control API server, output formatting and the CLI itself are internal.

// Start the node of one data directory (PigeonNode, WebSocket network, mDNS / static peers, the
// control API, the XMPP front door) and stop it.
export { DEFAULT_CONTROL_PORT, DEFAULT_SYNC_PORT, startNode, type NodeOptions, type RunningNode } from "./daemon.js";

// The data directory: where it is, the identity in it, and node.json of the running node.
export {
  ConfigError, createIdentity, ensureDataDir, hasIdentity, loadIdentity, readNodeInfo, resolveDataDir, type NodeInfo,
} from "./data-dir.js";

// A school server's key file (school.json): load it, or make it on the first start with a home.
export { ensureSchoolKey, loadSchoolKey, schoolPath } from "./school.js";
