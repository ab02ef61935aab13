// Message archive (XEP-0313, urn:xmpp:mam:2, with XEP-0059 result set paging) over the mailbox.
// The archive order is the order messages reached this laptop (Pigeon's arrival number), not the time
// their author claims: a message written two days ago that syncs in today comes *after* what the
// client has already seen, so a client catching up with after=<last id> still finds it. The archive
// id of a message is its Pigeon message id (the same on every laptop), which is also the XEP-0359
// stanza-id the server puts on the live copy. Filters: with (bare JID), start/end (arrival time).
import type { MessageView } from "@pigeon/sync";
import { StanzaError } from "./iq.js";
import { NS, parseStamp } from "./ns.js";
import { child, children, el, text, type XmlElement } from "./xml.js";

export interface ArchiveQuery {
  queryid?: string;
  with?: string;
  start?: number;
  end?: number;
  max: number;
  after?: string;
  /** "" asks for the last page. */
  before?: string;
}

export const MAM_MAX_PAGE = 250;
export const MAM_DEFAULT_PAGE = 50;

/** A query the archive cannot answer; the IQ registry sends it back as a stanza error. */
export class ArchiveError extends StanzaError {
  declare readonly condition: "bad-request" | "item-not-found" | "feature-not-implemented";

  constructor(condition: "bad-request" | "item-not-found" | "feature-not-implemented", message: string) {
    super(condition, message);
  }
}

export function parseArchiveQuery(q: XmlElement): ArchiveQuery {
  const out: ArchiveQuery = { max: MAM_DEFAULT_PAGE, queryid: q.attrs.queryid };
  const form = child(q, "x", NS.data);
  if (form) {
    for (const f of children(form, "field")) {
      const v = text(child(f, "value")).trim();
      switch (f.attrs.var) {
        case "FORM_TYPE":
          if (v && v !== NS.mam) throw new ArchiveError("bad-request", `unknown form ${v}`);
          break;
        case "with":
          if (v) out.with = v.toLowerCase().split("/")[0];
          break;
        case "start":
        case "end": {
          if (!v) break;
          const t = parseStamp(v);
          if (t === undefined) throw new ArchiveError("bad-request", `bad ${f.attrs.var} time "${v}"`);
          out[f.attrs.var] = t;
          break;
        }
        default:
          if (f.attrs.var && f.attrs.type !== "hidden") throw new ArchiveError("feature-not-implemented", `filter ${f.attrs.var} is not supported`);
      }
    }
  }
  const set = child(q, "set", NS.rsm);
  if (set) {
    const max = child(set, "max");
    if (max) {
      const n = Number(text(max).trim());
      if (!Number.isInteger(n) || n < 0) throw new ArchiveError("bad-request", "bad <max/>");
      out.max = Math.min(n, MAM_MAX_PAGE);
    }
    const after = child(set, "after");
    if (after) out.after = text(after).trim();
    const before = child(set, "before");
    if (before) out.before = text(before).trim();
  }
  return out;
}

export function archiveOrder(messages: MessageView[]): MessageView[] {
  return [...messages].sort((a, b) => {
    const x = a.arrivalSeq ?? Number.MAX_SAFE_INTEGER;
    const y = b.arrivalSeq ?? Number.MAX_SAFE_INTEGER;
    return x !== y ? x - y : a.hlc < b.hlc ? -1 : a.hlc > b.hlc ? 1 : 0;
  });
}

export interface ArchivePage {
  items: MessageView[];
  complete: boolean;
  first?: string;
  last?: string;
  firstIndex?: number;
  /** The total matching the filters, when it is known without loading them all. */
  count?: number;
}

export function queryArchive(all: MessageView[], q: ArchiveQuery, own: string): ArchivePage {
  const other = (m: MessageView) => (m.direction === "in" ? m.from : (m.to[0] ?? "")).toLowerCase();
  const time = (m: MessageView) => m.arrivedAt ?? m.claimedSentAt;
  let list = archiveOrder(all).filter(
    (m) => (!q.with || q.with === own || other(m) === q.with) && (q.start === undefined || time(m) >= q.start) && (q.end === undefined || time(m) <= q.end),
  );
  const count = list.length;
  let offset = 0;
  if (q.after) {
    const i = list.findIndex((m) => m.id === q.after);
    if (i < 0) throw new ArchiveError("item-not-found", `no message ${q.after} in the archive`);
    offset = i + 1;
    list = list.slice(i + 1);
  }
  let complete: boolean;
  let items: MessageView[];
  if (q.before !== undefined) {
    let end = list.length;
    if (q.before) {
      end = list.findIndex((m) => m.id === q.before);
      if (end < 0) throw new ArchiveError("item-not-found", `no message ${q.before} in the archive`);
    }
    const start = Math.max(0, end - q.max);
    items = list.slice(start, end);
    offset += start;
    complete = start === 0; // paging backwards: nothing older is left
  } else {
    items = list.slice(0, q.max);
    complete = items.length === list.length;
  }
  return {
    items,
    complete,
    count,
    first: items[0]?.id,
    last: items[items.length - 1]?.id,
    firstIndex: items.length ? offset : undefined,
  };
}

export function finElement(page: ArchivePage, queryid?: string): XmlElement {
  return el(
    "fin",
    { xmlns: NS.mam, complete: page.complete ? "true" : undefined, queryid },
    el(
      "set",
      { xmlns: NS.rsm },
      page.first !== undefined ? el("first", { index: page.firstIndex }, page.first) : undefined,
      page.last !== undefined ? el("last", {}, page.last) : undefined,
      page.count !== undefined ? el("count", {}, String(page.count)) : undefined,
    ),
  );
}

export function formElement(): XmlElement {
  return el(
    "query",
    { xmlns: NS.mam },
    el(
      "x",
      { xmlns: NS.data, type: "form" },
      el("field", { var: "FORM_TYPE", type: "hidden" }, el("value", {}, NS.mam)),
      el("field", { var: "with", type: "jid-single" }),
      el("field", { var: "start", type: "text-single" }),
      el("field", { var: "end", type: "text-single" }),
    ),
  );
}
