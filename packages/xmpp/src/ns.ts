// XML namespaces used by the server.
export const NS = {
  client: "jabber:client",
  stream: "http://etherx.jabber.org/streams",
  streams: "urn:ietf:params:xml:ns:xmpp-streams",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
  framing: "urn:ietf:params:xml:ns:xmpp-framing",
  tls: "urn:ietf:params:xml:ns:xmpp-tls",
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  sm: "urn:xmpp:sm:3",
  rosterver: "urn:xmpp:features:rosterver",
  roster: "jabber:iq:roster",
  discoInfo: "http://jabber.org/protocol/disco#info",
  discoItems: "http://jabber.org/protocol/disco#items",
  ping: "urn:xmpp:ping",
  version: "jabber:iq:version",
  private: "jabber:iq:private",
  vcard: "vcard-temp",
  vcardUpdate: "vcard-temp:x:update",
  blocking: "urn:xmpp:blocking",
  blockingErrors: "urn:xmpp:blocking:errors",
  carbons: "urn:xmpp:carbons:2",
  forward: "urn:xmpp:forward:0",
  delay: "urn:xmpp:delay",
  receipts: "urn:xmpp:receipts",
  caps: "http://jabber.org/protocol/caps",
  markers: "urn:xmpp:chat-markers:0",
  sid: "urn:xmpp:sid:0",
  mam: "urn:xmpp:mam:2",
  rsm: "http://jabber.org/protocol/rsm",
  data: "jabber:x:data",
  chatstates: "http://jabber.org/protocol/chatstates",
  hints: "urn:xmpp:hints",
  csi: "urn:xmpp:csi:0",
  correct: "urn:xmpp:message-correct:0",
  upload: "urn:xmpp:http:upload:0",
  oob: "jabber:x:oob",
  muc: "http://jabber.org/protocol/muc",
  mucUser: "http://jabber.org/protocol/muc#user",
  mucAdmin: "http://jabber.org/protocol/muc#admin",
  mucOwner: "http://jabber.org/protocol/muc#owner",
} as const;

/** XEP-0082 date-time in UTC, e.g. 2026-01-02T03:04:05.678Z. */
export function xmppStamp(ms: number): string {
  return new Date(ms).toISOString();
}

export function parseStamp(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : undefined;
}
