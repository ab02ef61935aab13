// Class channels and groups in the app (docs/web-app.md, "Channels"): the list beside the folders,
// one channel's messages with their authors, writing to it, and for its owner and admins who is in it.
// A message of one's own says how far it got in the whole group ("Delivered to 31 of 40, read by 23")
// and, on request, who read it: the node counts both from the members' receipts. The node decides
// who may do what (a student's group where the school forbids them is refused there, with a reason
// the page shows); the page only leaves out buttons that would be refused anyway.
import type { Api } from "./api.js";
import type { Key } from "./i18n.js";
import { drawTools, type Pad } from "./draw-pad.js";
import { encodeDrawing, MAX_CHARS } from "./drawing.js";

export interface ChannelMember { address: string; admin: boolean; owner: boolean }
export interface Channel {
  id: string;
  title: string;
  owner: string;
  closed: boolean;
  members: ChannelMember[];
  member: boolean;
  admin: boolean;
}
/** A message of a channel, as the node sends it (only what these screens use). */
export interface ChannelMessage {
  id: string;
  direction: "in" | "out";
  from: string;
  to: string[];
  body: string;
  claimedSentAt: number;
  arrivedAt?: number;
  state?: "waiting" | "sent" | "delivered" | "read";
  counts?: { members: number; delivered: number; read: number };
  readBy?: string[];
  /** Incoming: when this child read it (absent = not yet). */
  readAt?: number;
}

type Child = Node | string | false | undefined | null;
type Attrs = Record<string, string | boolean | number | ((e: Event) => void) | undefined>;

/** What the screens need of the rest of the app (main.ts). */
export interface Ui {
  h: <K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]) => HTMLElementTagNameMap[K];
  t: (key: Key, vars?: Record<string, string | number>) => string;
  api: Api;
  when: (ms: number) => string;
  say: (text: string) => void;
  /** Goes to another screen, still saying `text` there. */
  go: (hash: string, text: string) => void;
  fail: (e: unknown) => void;
  load: () => Promise<void>;
  render: () => void;
  /** How the child names someone (their own name for a friend). */
  who: (address: string) => string;
  /** Words or a drawing, as the folders show them. */
  content: (m: ChannelMessage) => Node;
  channels: () => Channel[];
  friends: () => { address: string; name: string }[];
  /** The school's name for the class of this laptop's user, when the school says they teach. */
  teacher: () => boolean;
}

/** The channel whose messages are shown (asked again on every change). */
let open: { id: string; messages: ChannelMessage[] } | undefined;
/** Words being written, kept when the screen is drawn again (one channel at a time). */
const typed = { channel: "", text: "", title: "", klass: "", addClass: "" };
/** Words or a drawing in the channel's composer; the drawing's tools are built once per channel (a refresh must not take the pen). */
const writing: { kind: "text" | "drawing"; pad: Pad; tools?: HTMLDivElement } = { kind: "text", pad: { strokes: [], colour: 0, size: 1 } };
/** The owner asked to close this channel and has not yet said yes or no. */
let closing = "";

export async function loadChannel(ui: Ui, id: string): Promise<void> {
  const messages = await ui.api.get<ChannelMessage[]>(`channel?id=${encodeURIComponent(id)}`);
  open = { id, messages };
  if (location.hash !== `#channel/${id}`) return;
  ui.render();
  // shown on the screen is read: the writer's "read by" counts from these receipts
  for (const m of messages) if (m.direction === "in" && m.readAt === undefined) void ui.api.post("show", { id: m.id }).catch(() => {});
}

/** How far one's own message got in the whole group, in words beside a symbol. */
export function groupState(ui: Ui, m: Pick<ChannelMessage, "state" | "counts">): HTMLElement {
  const { h, t } = ui;
  const c = m.counts;
  const waiting = m.state === "waiting";
  const delivered = c ? c.delivered : 0;
  const state = waiting ? "waiting" : delivered === 0 ? "sent" : c && c.read > 0 ? "read" : "delivered";
  const words = waiting
    ? t("groupWaiting")
    : delivered === 0
      ? t("groupSent")
      : t("groupDelivered", { n: delivered, of: c!.members }) + (c!.read > 0 ? t("comma") + t("groupRead", { n: c!.read }) : "");
  const icon = waiting ? "◷" : delivered === 0 ? "✓" : "✓✓";
  return h("span", { class: `ticks ${state}`, "data-state": state }, h("span", { "aria-hidden": "true", class: "tick-icon" }, icon), " ", words);
}

export function channelsScreen(ui: Ui): Child[] {
  const { h, t } = ui;
  const list = ui.channels();
  return [
    h("h2", {}, t("channelsTitle")),
    list.length === 0
      ? h("p", { class: "empty" }, t("channelsEmpty"))
      : h("ul", { class: "channels" },
          ...list.map((c) =>
            h("li", { class: "channel" },
              h("a", { href: `#channel/${c.id}`, id: `channel-${c.id.slice(0, 12)}`, class: "channel-name" }, "# ", c.title), " ",
              h("span", { class: "about" }, about(ui, c))))),
    h("form", { class: "new-channel", "aria-labelledby": "new-channel-h", onsubmit: (e) => (e.preventDefault(), void create(ui)) },
      h("h3", { id: "new-channel-h" }, t("newChannel")),
      h("label", { for: "channel-title" }, t("channelName")),
      h("input", { id: "channel-title", required: true, maxlength: 64, autocomplete: "off", value: typed.title, oninput: (e) => (typed.title = (e.target as HTMLInputElement).value) }),
      ui.teacher() ? h("label", { for: "channel-class" }, t("classToAdd")) : null,
      ui.teacher() ? h("input", { id: "channel-class", maxlength: 16, autocomplete: "off", value: typed.klass, oninput: (e) => (typed.klass = (e.target as HTMLInputElement).value) }) : null,
      h("button", { type: "submit", id: "channel-start" }, "+ ", t("startIt"))),
  ];
}

function about(ui: Ui, c: Channel): string {
  const { t } = ui;
  const parts = [t("channelOwner", { who: ui.who(c.owner) }), t("channelMembers", { n: c.members.length })];
  if (c.closed) parts.push(t("channelClosed"));
  if (!c.member) parts.push(t("channelRemoved"));
  return parts.join(t("comma"));
}

async function create(ui: Ui): Promise<void> {
  const title = typed.title.trim();
  if (!title) return;
  try {
    const c = await ui.api.post<Channel>("channels/create", { title });
    typed.title = "";
    // a teacher's class: everyone the school's directory has in it, in the same step
    if (typed.klass.trim()) await ui.api.post("channels/add", { channel: c.id, class: typed.klass.trim() });
    typed.klass = "";
    ui.go(`#channel/${c.id}`, ui.t("started", { what: title }));
    await ui.load();
  } catch (e) {
    ui.fail(e);
  }
}

export function channelScreen(ui: Ui, id: string): Child[] {
  const { h, t } = ui;
  const c = ui.channels().find((x) => x.id === id);
  if (!c) return [h("p", {}, "…")];
  const messages = open?.id === id ? open.messages : undefined;
  if (typed.channel !== id) {
    Object.assign(typed, { channel: id, text: "", addClass: "" });
    Object.assign(writing, { kind: "text", pad: { strokes: [], colour: 0, size: 1 }, tools: undefined });
    closing = "";
  }
  const area = h("textarea", { id: "channel-text", rows: 3, maxlength: 8000, oninput: (e) => (typed.text = (e.target as HTMLTextAreaElement).value) });
  area.value = typed.text;
  const mayWrite = c.member && !c.closed;
  const friendsOut = ui.friends().filter((f) => !c.members.some((m) => m.address === f.address));
  return [
    h("h2", {}, "# ", c.title),
    h("p", { class: "about" }, about(ui, c)),
    !messages
      ? h("p", {}, "…")
      : messages.length === 0
        ? h("p", { class: "empty" }, t("channelEmpty", { what: c.title }))
        : h("ol", { class: "talk channel-talk" },
            ...messages.map((m) => {
              const mine = m.direction === "out";
              return h("li", { class: mine ? "mine" : "theirs", id: `c-${m.id}` },
                h("span", { class: "who" }, mine ? t("fromYou") : ui.who(m.from)), " ",
                h("time", {}, ui.when(m.arrivedAt ?? m.claimedSentAt)),
                ui.content(m),
                mine ? groupState(ui, m) : null,
                mine && m.counts
                  ? h("details", { class: "who-read" },
                      h("summary", {}, t("whoRead")),
                      (m.readBy ?? []).length
                        ? h("ul", {}, ...(m.readBy ?? []).map((a) => h("li", {}, ui.who(a))))
                        : h("p", {}, t("nobodyRead")))
                  : null);
            })),
    mayWrite ? composer(ui, c, area) : null,
    h("section", { "aria-labelledby": "members-h", class: "members" },
      h("h3", { id: "members-h" }, t("members"), " (", String(c.members.length), ")"),
      h("ul", {},
        // the owner first, then everyone by name: a class of 40 is read like a register
        ...[...c.members].sort((a, b) => Number(b.owner) - Number(a.owner) || ui.who(a.address).localeCompare(ui.who(b.address))).map((m) =>
          h("li", { class: "member" },
            h("span", { class: "friend-name" }, ui.who(m.address)), " ",
            m.owner ? h("span", { class: "role" }, "★ ", t("owner")) : m.admin ? h("span", { class: "role" }, t("admin")) : null, " ",
            c.admin && !c.closed && !m.owner && c.member && !(m.admin && !ownerIsMe(c))
              ? h("button", { type: "button", class: "danger", onclick: () => void change(ui, c, "remove", { who: [m.address] }, t("removed", { who: ui.who(m.address), what: c.title })) },
                  "✖ ", t("removeWho", { who: ui.who(m.address) }))
              : null, " ",
            // only the owner names admins (the node refuses anyone else)
            ownerIsMe(c) && !c.closed && !m.owner
              ? h("button", { type: "button", class: "admin-toggle", "aria-pressed": String(m.admin),
                  onclick: () => void admin(ui, c, m.address, !m.admin) },
                  t(m.admin ? "unadminWho" : "adminWho", { who: ui.who(m.address) }))
              : null)))),
    c.admin && !c.closed && friendsOut.length
      ? h("form", { class: "add-member", onsubmit: (e) => {
            e.preventDefault();
            const who = (document.getElementById("channel-add") as HTMLSelectElement).value;
            if (who) void change(ui, c, "add", { who: [who] }, t("addedTo", { what: c.title }));
          } },
          h("label", { for: "channel-add" }, t("addPerson")),
          h("select", { id: "channel-add" }, ...friendsOut.map((f) => h("option", { value: f.address }, f.name))),
          h("button", { type: "submit", id: "channel-add-button" }, "+ ", t("add")))
      : null,
    c.admin && !c.closed && ui.teacher()
      ? h("form", { class: "add-class", onsubmit: (e) => (e.preventDefault(), typed.addClass.trim() && void change(ui, c, "add", { class: typed.addClass.trim() }, t("addedTo", { what: c.title }))) },
          h("label", { for: "channel-add-class" }, t("className")),
          h("input", { id: "channel-add-class", maxlength: 16, autocomplete: "off", value: typed.addClass, oninput: (e) => (typed.addClass = (e.target as HTMLInputElement).value) }),
          h("button", { type: "submit", id: "channel-add-class-button" }, "+ ", t("addClass")))
      : null,
    ownerIsMe(c) && !c.closed ? closePart(ui, c) : null,
  ];
}

/** Words or a drawing to the whole channel: the node seals it once for all its members. */
function composer(ui: Ui, c: Channel, area: HTMLTextAreaElement): HTMLFormElement {
  const { h, t } = ui;
  const kindButton = (kind: "text" | "drawing", icon: string, label: Key) =>
    h("button", { type: "button", id: `channel-kind-${kind}`, "aria-pressed": String(writing.kind === kind),
      onclick: () => ((writing.kind = kind), ui.render(), document.getElementById(`channel-kind-${kind}`)?.focus()) }, icon, " ", t(label));
  writing.tools ??= drawTools(h, t, writing.pad, () => meter(ui));
  const size = h("p", { id: "channel-size", "aria-live": "polite" });
  queueMicrotask(() => meter(ui));
  return h("form", { class: "write channel-write", onsubmit: (e) => (e.preventDefault(), void post(ui, c)) },
    h("div", { role: "group", "aria-label": `${t("words")} / ${t("drawing")}`, class: "kinds" }, kindButton("text", "Aa", "words"), kindButton("drawing", "✎", "drawing")),
    writing.kind === "text" ? h("label", { for: "channel-text" }, t("writeTo", { what: c.title })) : null,
    writing.kind === "text" ? area : writing.tools,
    writing.kind === "drawing" ? size : null,
    h("button", { type: "submit", id: "channel-send", class: "primary" }, "➤ ", t("send")));
}

/** How much of a message the drawing takes, said as the child draws (as in the letter's composer). */
function meter(ui: Ui): void {
  const el = document.getElementById("channel-size");
  if (!el) return;
  const used = encodeDrawing(writing.pad.strokes).length;
  const over = used > MAX_CHARS;
  el.className = over ? "too-big" : "";
  el.setAttribute("role", over ? "alert" : "status");
  el.textContent = over ? ui.t("tooBig") : ui.t("spaceUsed", { n: Math.round((used / MAX_CHARS) * 100) });
}

/** Closing is for good: the owner says it twice, and "no" is where the focus lands. */
function closePart(ui: Ui, c: Channel): HTMLElement {
  const { h, t } = ui;
  if (closing !== c.id)
    return h("section", { class: "close-channel", "aria-labelledby": "close-h" },
      h("h3", { id: "close-h" }, t("closeTitle")),
      h("p", {}, t("closeHelp")),
      h("button", { type: "button", id: "channel-close", class: "danger",
        onclick: () => ((closing = c.id), ui.render(), document.getElementById("channel-close-no")?.focus()) }, "🔒 ", t("closeWhat", { what: c.title })));
  return h("section", { class: "close-channel", role: "alertdialog", "aria-labelledby": "close-h", "aria-describedby": "close-q" },
    h("h3", { id: "close-h" }, t("closeTitle")),
    h("p", { id: "close-q" }, t("closeSure", { what: c.title })),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "channel-close-yes", class: "danger", onclick: () => void close(ui, c) }, "🔒 ", t("closeYes")),
      h("button", { type: "button", id: "channel-close-no", onclick: () => ((closing = ""), ui.render(), document.getElementById("channel-close")?.focus()) }, t("closeNo"))));
}

async function close(ui: Ui, c: Channel): Promise<void> {
  try {
    await ui.api.post("channels/close", { channel: c.id });
    closing = "";
    ui.say(ui.t("closedIt", { what: c.title }));
    await ui.load();
  } catch (e) {
    ui.fail(e);
  }
}

async function admin(ui: Ui, c: Channel, who: string, yes: boolean): Promise<void> {
  try {
    await ui.api.post("channels/admin", { channel: c.id, who, admin: yes });
    ui.say(ui.t(yes ? "madeAdmin" : "unmadeAdmin", { who: ui.who(who), what: c.title }));
    await ui.load();
  } catch (e) {
    ui.fail(e);
  }
}

let me = "";
/** This laptop's person (set by main.ts from whoami): only the owner removes an admin. */
export function setMe(address: string): void {
  me = address;
}
function ownerIsMe(c: Channel): boolean {
  return c.owner === me;
}

async function change(ui: Ui, c: Channel, what: "add" | "remove", body: Record<string, unknown>, done: string): Promise<void> {
  try {
    await ui.api.post(`channels/${what}`, { channel: c.id, ...body });
    if (what === "add") typed.addClass = "";
    ui.say(done);
    await ui.load();
  } catch (e) {
    ui.fail(e);
  }
}

async function post(ui: Ui, c: Channel): Promise<void> {
  const drawing = writing.kind === "drawing";
  const text = drawing ? encodeDrawing(writing.pad.strokes) : typed.text;
  if (drawing ? writing.pad.strokes.length === 0 : !text.trim()) return ui.say(ui.t("needText"));
  if (text.length > MAX_CHARS) return ui.say(ui.t("tooBig"));
  try {
    await ui.api.post("channels/send", { channel: c.id, body: text });
    if (drawing) {
      // a fresh page to draw on: the tools are built again with it
      writing.pad = { strokes: [], colour: writing.pad.colour, size: writing.pad.size };
      writing.tools = undefined;
    } else typed.text = "";
    const area = document.getElementById("channel-text") as HTMLTextAreaElement | null;
    if (area) area.value = "";
    ui.say(ui.t("sentOk"));
    // the folders too (the outbox holds it now): not only when the node's live link says so
    await ui.load();
  } catch (e) {
    ui.fail(e);
  }
}
