// Blocking command (XEP-0191): the list is always empty for now, and changing it is refused, so a
// client does not believe someone is blocked while their messages still arrive.
import { forAccount, type Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { NS } from "./ns.js";
import { el } from "./xml.js";

export function registerBlocking(iq: Iqs): void {
  iq.get(NS.blocking, "blocklist", forAccount(() => el("blocklist", { xmlns: NS.blocking })));
  const refuse = forAccount(() => {
    throw new StanzaError("not-allowed", "blocking is not available yet");
  });
  iq.set(NS.blocking, "block", refuse);
  iq.set(NS.blocking, "unblock", refuse);
}
