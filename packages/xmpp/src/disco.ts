// Service discovery (XEP-0030): what the server, the user's account and a contact can do. Clients
// decide their features from this (Converse looks for carbons on the domain and MAM on the bare JID;
// profanity turns autoping off unless urn:xmpp:ping is listed, and files replies by their `from`).
import type { Account, Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { bareJid } from "./jid.js";
import { NS } from "./ns.js";
import { isContact } from "./roster.js";
import { el, type XmlElement } from "./xml.js";

export const SERVER_FEATURES = [
  NS.discoInfo, NS.discoItems, NS.ping, NS.carbons, NS.version, "msgoffline", NS.vcard, NS.private, NS.blocking, NS.roster,
];
export const ACCOUNT_FEATURES = [NS.discoInfo, NS.discoItems, NS.mam, NS.sid];

function info(node: string | undefined, identities: [string, string, string][], features: string[]): XmlElement {
  return el(
    "query",
    { xmlns: NS.discoInfo, node },
    identities.map(([category, type, name]) => el("identity", { category, type, name })),
    features.map((v) => el("feature", { var: v })),
  );
}

export function serverInfo(node?: string): XmlElement {
  return info(node, [["server", "im", "Pigeon"]], SERVER_FEATURES);
}

export function accountInfo(node?: string): XmlElement {
  return info(node, [["account", "registered", ""]], ACCOUNT_FEATURES);
}

export function contactInfo(node?: string): XmlElement {
  return info(node, [["account", "registered", ""]], [NS.discoInfo]);
}

export function emptyItems(node?: string): XmlElement {
  return el("query", { xmlns: NS.discoItems, node });
}

export function registerDisco(iq: Iqs, a: Account): void {
  iq.get(NS.discoInfo, "query", (q, { to }) => {
    if (to.kind === "domain") return serverInfo(q.attrs.node);
    if (to.kind === "account") return accountInfo(q.attrs.node);
    if (isContact(a, bareJid(to.jid))) return contactInfo(q.attrs.node);
    throw new StanzaError("service-unavailable");
  });
  iq.get(NS.discoItems, "query", (q, { to }) => {
    if (to.kind === "other") throw new StanzaError("service-unavailable");
    return emptyItems(q.attrs.node);
  });
}
