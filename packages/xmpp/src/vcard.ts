// vCards (XEP-0054): the user's own is kept in xmpp.db as the client set it (Converse shows and edits
// it); its PHOTO (XEP-0153) becomes the user's Pigeon picture (at most MAX_PICTURE_BYTES), which
// travels to their buddies. A buddy's vCard is made from their Pigeon name and the picture they
// shared, if any.
import { MAX_PICTURE_BYTES } from "@pigeon/model";
import { MailboxError } from "@pigeon/sync";
import type { Account, Iqs } from "./account.js";
import { StanzaError } from "./iq.js";
import { bareJid } from "./jid.js";
import { NS } from "./ns.js";
import { isContact } from "./roster.js";
import { child, childText, el, type XmlElement } from "./xml.js";

/** The largest vCard kept, as JSON: room for a small photo. */
const MAX_VCARD_CHARS = 200 * 1024;

function nameCard(name: string, photo?: { type: string; bytes: Uint8Array }): XmlElement {
  return el(
    "vCard", { xmlns: NS.vcard }, el("FN", {}, name), el("NICKNAME", {}, name),
    photo ? el("PHOTO", {}, el("TYPE", {}, photo.type), el("BINVAL", {}, Buffer.from(photo.bytes).toString("base64"))) : undefined,
  );
}

/** The PHOTO a client put in the user's vCard, decoded (undefined: none). */
function photoOf(card: XmlElement): { type: string; bytes: Uint8Array } | undefined {
  const photo = child(card, "PHOTO", NS.vcard) ?? child(card, "PHOTO");
  if (!photo) return undefined;
  const b64 = (childText(photo, "BINVAL") ?? "").replace(/\s+/g, "");
  if (!b64) return undefined;
  return { type: (childText(photo, "TYPE") ?? "image/png").trim().toLowerCase(), bytes: new Uint8Array(Buffer.from(b64, "base64")) };
}

export function registerVcard(iq: Iqs, a: Account): void {
  iq.get(NS.vcard, "vCard", (_e, { to }) => {
    if (to.kind === "account") {
      const stored = a.store.meta("vcard");
      return stored ? (JSON.parse(stored) as XmlElement) : nameCard(a.user);
    }
    if (to.kind === "other" && isContact(a, bareJid(to.jid)))
      return a.mailbox.pictureOf(bareJid(to.jid)).then(
        (photo) => nameCard(to.jid.local, photo),
        () => nameCard(to.jid.local),
      );
    throw new StanzaError("service-unavailable");
  });
  iq.set(NS.vcard, "vCard", async (e, { to }) => {
    if (to.kind !== "account") throw new StanzaError("forbidden");
    const xml = JSON.stringify(e);
    if (xml.length > MAX_VCARD_CHARS) throw new StanzaError("not-acceptable");
    const photo = photoOf(e);
    if (photo && photo.bytes.length > MAX_PICTURE_BYTES)
      throw new StanzaError("not-acceptable", `the picture is ${photo.bytes.length} bytes; a picture travels to your buddies only up to ${MAX_PICTURE_BYTES} bytes`);
    if (photo) {
      try {
        await a.mailbox.setPicture(photo.type, photo.bytes);
      } catch (err) {
        if (err instanceof MailboxError) throw new StanzaError("not-acceptable", err.message);
        throw err;
      }
    }
    a.store.setMeta("vcard", xml);
    return undefined;
  });
}
