// Service discovery (XEP-0030): what the server, the user's account and a contact can do. Clients
// decide their features from this (Converse looks for carbons on the domain and MAM on the bare JID;
// profanity turns autoping off unless urn:xmpp:ping is listed, and files replies by their `from`).
import { NS } from "./ns.js";
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
