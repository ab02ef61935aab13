// Long messages from XMPP clients (issue 21). A Pigeon message holds at most MAX_BODY_CHARS (8,000)
// characters: every laptop's admission rule checks it, so raising it would make older laptops refuse
// the message. What children write is far shorter (a chat line, a paragraph; a pasted story or a page
// of homework at most), so a longer message is split into parts of at most 8,000 characters, cut at a
// line break or a space where there is one, and sent as consecutive messages: up to MAX_PARTS parts,
// 32,000 characters (about ten typed pages). Anything longer is refused with a message error that
// says the limit. A part seals to at most ~32 KB (8,000 characters of 4 UTF-8 bytes), so the longest
// message costs a carrier at most ~128 KB, 2.5 % of one author's share of a carrier (routing.md:
// 5 MB of the 50 MB quota).
import { MAX_BODY_CHARS } from "@pigeon/model";

export const MAX_PARTS = 4;
export const MAX_MESSAGE_CHARS = MAX_PARTS * MAX_BODY_CHARS;

/**
 * The parts a body is sent as (one part if it fits), or undefined if it is over MAX_MESSAGE_CHARS or
 * would need more than MAX_PARTS parts. Joining the parts gives the body back exactly.
 */
export function splitBody(body: string, max = MAX_BODY_CHARS, maxParts = MAX_PARTS): string[] | undefined {
  if (body.length > max * maxParts) return undefined;
  const parts: string[] = [];
  let rest = body;
  while (rest.length > max) {
    let cut = max;
    // never between the two halves of a surrogate pair
    if (/[\ud800-\udbff]/.test(rest[cut - 1]!)) cut--;
    // the last line break in the second half of the part, else the last space there
    const window = rest.slice(0, cut);
    const nl = window.lastIndexOf("\n");
    const sp = Math.max(window.lastIndexOf(" "), window.lastIndexOf("\t"));
    if (nl >= max / 2) cut = nl + 1;
    else if (sp >= max / 2) cut = sp + 1;
    parts.push(rest.slice(0, cut));
    rest = rest.slice(cut);
    if (parts.length >= maxParts) return undefined;
  }
  parts.push(rest);
  return parts;
}
