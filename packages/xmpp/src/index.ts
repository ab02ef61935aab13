// The public API of @pigeon/xmpp. Everything else in src/ is internal: the XML stream parser and
// builders, SASL/SCRAM, sessions, IQ handlers, the server's own store.

// The XMPP front door of one node: c2s over TCP (STARTTLS) and over WebSocket upgrades.
export { DEFAULT_XMPP_PORT, WEBSOCKET_PATH, XmppServer, type XmppServerOptions } from "./server.js";
export type { LoginLimits } from "./login-limiter.js";
export type { PeerEvent, PeerEvents } from "./presence.js";

// The user's XMPP password in the data directory (read at each login).
export { ensureCredentials, setPassword, type XmppCredentials } from "./credentials.js";
export type { ScramCredential, ScramHash } from "./scram.js";

// The client side of a SCRAM login, for programs that act as XMPP clients (end-to-end tests, bench).
export { ScramClient } from "./scram.js";
