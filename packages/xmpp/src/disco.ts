// Service discovery (XEP-0030): what the server, the user's account and a contact can do. Clients
// decide their features from this (Converse looks for carbons on the domain and MAM on the bare JID;
// profanity turns autoping off unless urn:xmpp:ping is listed, and files replies by their `from`).
import { createHash } from "node:crypto";
import type { Account, Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { bareJid } from "./jid.js";
import { NS } from "./ns.js";
import { isContact } from "./roster.js";
import { uploadForm } from "./files.js";
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

/** With `upload`, the server is its own HTTP upload service (XEP-0363 §2: identity store/file and the limit). */
export function serverInfo(node?: string, upload = false): XmlElement {
  if (!upload) return info(node, [["server", "im", "Pigeon"]], SERVER_FEATURES);
  const q = info(node, [["server", "im", "Pigeon"], ["store", "file", "HTTP upload"]], [...SERVER_FEATURES, NS.upload]);
  q.children.push(uploadForm());
  return q;
}

export function accountInfo(node?: string): XmlElement {
  return info(node, [["account", "registered", ""]], ACCOUNT_FEATURES);
}

/**
 * What a buddy can do, as far as this node answers for them: Pigeon's signed receipts become
 * XEP-0184 <received/> and XEP-0333 <displayed/>, so a client may ask for both (Gajim asks for
 * receipts only from contacts whose capabilities say so); corrections (XEP-0308) travel as Pigeon
 * corrections (Gajim and Converse offer "correct" only to contacts that list it), and chat states
 * go live to a buddy's laptop while connected (Gajim sends them only to contacts that list them).
 */
const CONTACT_FEATURES = [NS.discoInfo, NS.receipts, NS.markers, NS.correct, NS.chatstates];
const CONTACT_IDENTITY: [string, string, string] = ["account", "registered", ""];
export const CAPS_NODE = "https://pigeon.local/caps";

export function contactInfo(node?: string): XmlElement {
  return info(node, [CONTACT_IDENTITY], CONTACT_FEATURES);
}

/** XEP-0115 capabilities for a buddy's presence: the verification string of contactInfo. */
export function contactCaps(): XmlElement {
  const [category, type, name] = CONTACT_IDENTITY;
  const s = `${category}/${type}//${name}<` + [...CONTACT_FEATURES].sort().map((f) => `${f}<`).join("");
  return el("c", { xmlns: NS.caps, hash: "sha-1", node: CAPS_NODE, ver: createHash("sha1").update(s, "utf8").digest("base64") });
}

export function emptyItems(node?: string): XmlElement {
  return el("query", { xmlns: NS.discoItems, node });
}

/** `serviceItems`: the domain's disco#items (the class channels' MUC service). */
export function registerDisco(iq: Iqs, a: Account, serviceItems: () => XmlElement[] = () => []): void {
  iq.get(NS.discoInfo, "query", (q, { to }) => {
    if (to.kind === "domain") return serverInfo(q.attrs.node, a.files.available);
    if (to.kind === "account") return accountInfo(q.attrs.node);
    if (isContact(a, bareJid(to.jid))) return contactInfo(q.attrs.node);
    throw new StanzaError("service-unavailable");
  });
  iq.get(NS.discoItems, "query", (q, { to }) => {
    if (to.kind === "other") throw new StanzaError("service-unavailable");
    const items = emptyItems(q.attrs.node);
    if (to.kind === "domain" && q.attrs.node === undefined) items.children.push(...serviceItems());
    return items;
  });
}
