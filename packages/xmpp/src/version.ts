// Software version (XEP-0092) of the server.
import type { Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { NS } from "./ns.js";
import { el } from "./xml.js";

export function registerVersion(iq: Iqs): void {
  iq.get(NS.version, "query", (_e, { to }) => {
    if (to.kind !== "domain") throw new StanzaError("service-unavailable");
    return el("query", { xmlns: NS.version }, el("name", {}, "Pigeon"), el("version", {}, "0.1.0"));
  });
}
