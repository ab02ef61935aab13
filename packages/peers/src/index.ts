// The public API of @pigeon/peers. Everything else in src/ is internal (address parsing, the
// connection state machine, mDNS record building).

// WebSocket links: listen, dial, run the handshake, hand out authenticated PeerLinks.
export {
  DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_SOURCE, DEFAULT_PORT, WsNetwork,
  type ListenAddress, type PeersLog, type Rejection, type WsLink, type WsNetworkEvents, type WsNetworkOptions, type WsNetworkStats,
} from "./ws-network.js";

// A fixed list of host:port peers, redialled with backoff (a bad entry throws PeerAddressError;
// parseHostPort checks one beforehand).
export { StaticPeers, type Dialer, type StaticPeersEvents, type StaticPeersOptions } from "./static-peers.js";
export { PeerAddressError, parseHostPort, type HostPort } from "./address.js";

// Finding other laptops on the local network (DNS-SD over mDNS).
export { MdnsDiscovery, announcementTag, type DiscoveredPeer, type MdnsDiscoveryEvents, type MdnsDiscoveryOptions } from "./mdns.js";
