export * from "./address.js";
export * from "./ws-network.js";
export * from "./static-peers.js";
export * from "./mdns.js";
