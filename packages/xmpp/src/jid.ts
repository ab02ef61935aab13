// JIDs (RFC 7622), as far as this server needs them: a Pigeon address name@home is a bare JID.
export interface Jid {
  local: string;
  domain: string;
  resource: string;
}

export function parseJid(s: string): Jid | undefined {
  if (!s || s.length > 3071) return undefined;
  const slash = s.indexOf("/");
  const bare = slash < 0 ? s : s.slice(0, slash);
  const resource = slash < 0 ? "" : s.slice(slash + 1);
  const at = bare.indexOf("@");
  const local = at < 0 ? "" : bare.slice(0, at);
  const domain = (at < 0 ? bare : bare.slice(at + 1)).toLowerCase();
  if (!domain || (at >= 0 && !local) || /[\s"&'/:<>@]/.test(local) || /[\s@/]/.test(domain)) return undefined;
  if (slash >= 0 && !resource) return undefined;
  return { local: local.toLowerCase(), domain, resource };
}

export function bareJid(j: Jid): string {
  return j.local ? `${j.local}@${j.domain}` : j.domain;
}

export function fullJid(j: Jid): string {
  return j.resource ? `${bareJid(j)}/${j.resource}` : bareJid(j);
}

/**
 * The resource a buddy's presence comes from. Clients keep presence per resource: Gajim shows a
 * buddy whose presence comes from the bare JID as offline. Messages still come from the bare JID.
 */
export const CONTACT_RESOURCE = "pigeon";

export function contactJid(bare: string): string {
  return `${bare}/${CONTACT_RESOURCE}`;
}
