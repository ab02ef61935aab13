// XMPP ping (XEP-0199) to the server or the user's account. profanity turns its keepalive off unless
// disco lists urn:xmpp:ping.
import type { Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { NS } from "./ns.js";

export function registerPing(iq: Iqs): void {
  iq.get(NS.ping, "ping", (_e, { to }) => {
    if (to.kind === "other") throw new StanzaError("service-unavailable");
    return undefined;
  });
}
