// The children's web app: four folders like a phone's (Inbox, Outbox, Drafts, Waiting to be sent),
// writing words or a drawing, and friends. No framework: a few screens of plain DOM built by h(),
// so the whole app is a few tens of kilobytes on a slow laptop. Everything the node sends is shown as
// text (textContent) or drawn from checked numbers (drawing.ts), never parsed as markup.
import { Api, ApiError } from "./api.js";
import { decodeDrawing, drawingElement, encodeDrawing, looksLikeDrawing, MAX_CHARS, type Stroke } from "./drawing.js";
import { drawTools } from "./draw-pad.js";
import { chooseLang, direction, LANGUAGES, NATIVE, translator, type Key, type Lang } from "./i18n.js";
import { asShortCode, qrElement, scan, shortCode, type Scan } from "./friend-qr.js";
import { channelScreen, channelsScreen, groupState, loadChannel, setMe, type Channel, type Ui } from "./channels.js";
import { dropDraft, keptHere, markShown, newDraftId, replicaDrafts, savedByNode, startReplica, writeDraft, type Draft } from "./replica-drafts.js";
import type { Replica } from "./replica.js";
import { renameBuddy, replicaBuddies } from "./replica-buddies.js";

// What the node answers (the control API's views, packages/sync; only what the page uses).
interface Message {
  id: string;
  direction: "in" | "out";
  from: string;
  to: string[];
  body: string;
  claimedSentAt: number;
  arrivedAt?: number;
  state?: "waiting" | "sent" | "delivered" | "read";
  handedAt?: number;
  sentVia?: "direct" | "carrier";
  sentTo?: string;
  deliveredAt?: number;
  readAt?: number;
  /** Incoming: the laptops its copy went through, its writer's included (2 = through one carrier). */
  hops?: number;
  /** Written in a channel: its name, and (one's own) how many of its members have it and read it. */
  channel?: string;
  counts?: { members: number; delivered: number; read: number };
}
interface Buddy { address: string; fingerprint: string; signPublicKey: string; name: string; petname?: string; how: string; blocked: boolean; asked?: boolean }
interface Nearby { address: string; fingerprint: string; signPublicKey: string; name?: string; lastMet: number; buddy: boolean; connected?: boolean }
interface Contact { address: string; fingerprint: string; vouch?: { status: string } }
interface Request { from: string; fingerprint: string; messages: Message[] }

const api = new Api();
let lang: Lang = "en";
let t = translator(lang);
const data = {
  me: "",
  // each folder's newest `shown` messages, and how many there are
  inbox: [] as Message[],
  outbox: [] as Message[],
  waiting: [] as Message[],
  total: { inbox: 0, outbox: 0, waiting: 0 },
  unread: 0,
  drafts: [] as Draft[],
  buddies: [] as Buddy[],
  nearby: [] as Nearby[],
  contacts: [] as Contact[],
  requests: [] as Request[],
  card: "",
  fingerprint: "",
  channels: [] as Channel[],
  /** What the school says of this laptop's user (their class and role), on a school's laptop. */
  school: undefined as { class?: string; role?: string } | undefined,
};
let shown = 50; // messages per folder before "show older" (a slow laptop draws 50 quickly)
let flash = "";
let keepFlash = false; // the next screen change keeps the message (e.g. "Sent!" shown on the Outbox)
let online = false;
/** The drafts' live replica (replica-drafts.ts), once it has started; until then drafts go through the node's API. */
let replica: Replica | undefined;

type Child = Node | string | false | undefined | null;
type Attrs = Record<string, string | boolean | number | ((e: Event) => void) | undefined>;

/** An element: attributes (on* are listeners; false/undefined leave it out) and children (strings are text). */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== false && c !== undefined && c !== null) el.append(c);
  return el;
}

const present = (list: Child[]) => list.filter((c): c is Node | string => c !== false && c !== undefined && c !== null);
const $ = (id: string) => document.getElementById(id)!;
const name = (address: string) => address.split("@")[0]!;
const friendName = (address: string) => {
  const b = data.buddies.find((x) => x.address === address);
  return b?.petname ?? b?.name ?? name(address);
};
// one formatter per language: making one is slow, and a folder shows a hundred dates
let dates: { lang: Lang; format: Intl.DateTimeFormat } | undefined;
const when = (ms: number) => {
  if (dates?.lang !== lang) dates = { lang, format: new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }) };
  return dates.format.format(ms);
};

function seen(lastMet: number): string {
  const now = new Date();
  const d = new Date(lastMet);
  if (d.toDateString() === now.toDateString()) return t(d.getHours() < 12 ? "seenThisMorning" : "seenToday");
  const days = Math.max(1, Math.round((now.setHours(0, 0, 0, 0) - d.setHours(0, 0, 0, 0)) / 86_400_000));
  return t("seenWhen", { when: new Intl.RelativeTimeFormat(lang, { numeric: "auto" }).format(-days, "day") });
}

// --- the frame: header, folders, live status -------------------------------------------------

const SCREENS = ["inbox", "outbox", "drafts", "waiting", "channels", "friends", "write"] as const;
type Screen = (typeof SCREENS)[number];
// symbols the system fonts of a plain Debian have (DejaVu): colour emoji fonts are often missing
const ICONS: Record<Screen, string> = { inbox: "✉", outbox: "➤", drafts: "✎", waiting: "◷", channels: "#", friends: "☺", write: "✏" };

function route(): { screen: Screen | "message" | "draft" | "with" | "channel"; arg?: string } {
  const [s, arg] = location.hash.slice(1).split("/");
  if ((s === "message" || s === "draft" || s === "with" || s === "channel") && arg) return { screen: s, arg: decodeURIComponent(arg) };
  if (s === "write" && arg) return { screen: "write", arg: decodeURIComponent(arg) };
  return { screen: SCREENS.includes(s as Screen) ? (s as Screen) : "inbox" };
}

function frame(): void {
  document.documentElement.lang = lang;
  document.documentElement.dir = direction(lang);
  document.title = t("appName");
  const choice = localStorage.getItem("pigeon-lang") ?? "";
  document.body.replaceChildren(
    h("a", { class: "skip", href: "#main" }, "↓ " + t("yourMessage")),
    h("header", {},
      h("h1", {}, t("appName")),
      h("p", { id: "me" }, data.me ? t("you", { who: data.me }) : ""),
      h("label", { class: "lang" }, t("language") + " ",
        h("select", { id: "lang", onchange: (e) => setLang((e.target as HTMLSelectElement).value) },
          h("option", { value: "", selected: choice === "" }, t("sameAsComputer")),
          ...(Object.keys(LANGUAGES) as Lang[]).map((l) => h("option", { value: l, lang: l, selected: choice === l }, NATIVE[l])))),
      h("p", { id: "live", role: "status", class: online ? "up" : "down" }, online ? "● " + t("live") : "○ " + t("offline"))),
    h("nav", { "aria-label": t("nav") }, h("ul", { id: "folders" })),
    h("p", { id: "flash", role: "status", "aria-live": "polite" }, flash),
    h("main", { id: "main", tabindex: "-1" }),
  );
}

function folders(): void {
  const current = route().screen;
  const unread = data.unread;
  const counts: Partial<Record<Screen, [number, Key]>> = {
    inbox: [unread, "unread"],
    drafts: [data.drafts.length, "count"],
    waiting: [data.total.waiting, "count"],
  };
  $("folders").replaceChildren(
    ...SCREENS.map((s) => {
      const c = counts[s];
      const label = t(s as Key);
      const here = current === s || (s === "write" && current === "draft") || (s === "channels" && current === "channel");
      return h("li", {},
        h("a", { href: `#${s}`, id: `to-${s}`, class: here ? "here" : undefined, "aria-current": here ? "page" : undefined },
          h("span", { "aria-hidden": "true", class: "icon" }, ICONS[s]), " ", label,
          c && c[0] > 0 ? h("span", { class: "badge" }, h("span", { "aria-hidden": "true" }, String(c[0])), h("span", { class: "sr" }, `(${t(c[1], { n: c[0] })})`)) : null));
    }),
  );
}

function setLang(choice: string): void {
  if (choice) localStorage.setItem("pigeon-lang", choice);
  else localStorage.removeItem("pigeon-lang");
  lang = chooseLang(choice || null, navigator.languages);
  t = translator(lang);
  compose = undefined; // rebuilt in the new language, from what is kept
  flash = ""; // said in the old language
  frame();
  render();
  (document.getElementById("lang") as HTMLSelectElement | null)?.focus();
}

function say(text: string): void {
  flash = text;
  const el = document.getElementById("flash");
  if (el) el.textContent = text;
}

// --- messages ----------------------------------------------------------------------------------

function ticks(m: Message): HTMLElement {
  // written in a channel: how far it got in the whole group ("Delivered to 31 of 40, read by 23")
  if (m.counts) return groupState(ui, m);
  const s = m.state ?? "sent";
  const key: Key = s === "waiting" ? "stateWaiting" : s === "sent" ? "stateSent" : s === "delivered" ? "stateDelivered" : "stateRead";
  const icon = s === "waiting" ? "◷" : s === "sent" ? "✓" : "✓✓";
  return h("span", { class: `ticks ${s}`, "data-state": s }, h("span", { "aria-hidden": "true", class: "tick-icon" }, icon), " ", t(key));
}

/** A message's words, or its drawing (checked and drawn by drawing.ts). */
function content(m: Message, small: boolean): Node {
  if (!looksLikeDrawing(m.body)) return h("p", { class: "body" }, small && m.body.length > 140 ? m.body.slice(0, 140) + "…" : m.body);
  const strokes = decodeDrawing(m.body);
  const who = m.direction === "in" ? friendName(m.from) : friendName(m.to[0] ?? "");
  if (!strokes) return h("p", { class: "body broken" }, t("brokenDrawing"));
  const svg = drawingElement(strokes, t(m.direction === "in" ? "drawingFrom" : "drawingTo", { who }));
  if (small) svg.classList.add("small");
  return svg;
}

function messageList(list: Message[], total: number, empty: Key): Node {
  if (list.length === 0) return h("p", { class: "empty" }, t(empty));
  const newest = [...list].sort((a, b) => (b.arrivedAt ?? b.claimedSentAt) - (a.arrivedAt ?? a.claimedSentAt));
  const items = newest.slice(0, shown).map((m) => {
    const isNew = m.direction === "in" && m.readAt === undefined;
    const who = m.channel !== undefined
      ? m.direction === "in" ? `${t("from", { who: friendName(m.from) })} · # ${m.channel}` : t("to", { who: `# ${m.channel}` })
      : m.direction === "in" ? t("from", { who: friendName(m.from) }) : t("to", { who: m.to.map(friendName).join(", ") });
    return h("li", { class: isNew ? "msg new" : "msg" },
      // its name is what it shows ("From amara new 10:02"): a screen reader says what the child sees
      h("a", { href: `#message/${m.id}`, class: "open", id: `m-${m.id}` },
        h("span", { class: "who" }, who),
        isNew ? h("span", { class: "new-label" }, t("newMessage")) : null,
        h("time", {}, when(m.arrivedAt ?? m.claimedSentAt))),
      content(m, true),
      m.direction === "out" ? ticks(m) : null);
  });
  return h("div", {},
    h("ul", { class: "messages" }, ...items),
    total > shown ? h("button", { type: "button", class: "more", id: "older", onclick: () => ((shown += 50), void load().catch(fail)) }, t("showOlder")) : null);
}

function messageScreen(id: string): Child[] {
  const m = [...data.inbox, ...data.outbox].find((x) => x.id === id) ?? opened.get(id);
  if (!m) {
    // older than the folders' first page: ask for it alone
    void api.post<{ message: Message }>("show", { id }).then((r) => (opened.set(id, r.message), render()), fail);
    return [h("p", {}, "…")];
  }
  if (m.direction === "in" && m.readAt === undefined) {
    // for tests: the page says when the opening is kept in this browser
    if (replica) void markShown(replica, id).then(() => (document.body.dataset.shownKept = id), () => {});
    else void api.post("show", { id }).catch(() => {});
  }
  const out = m.direction === "out";
  const travel: Child[] = out
    ? [
        h("li", {}, t("writtenAt", { time: when(m.claimedSentAt) })),
        m.handedAt !== undefined ? h("li", {}, t("leftAt", { time: when(m.handedAt) }), ", ", t(m.sentVia === "carrier" ? "viaCarrier" : "viaDirect", { who: m.sentVia === "carrier" ? name(m.sentTo ?? "?") : friendName(m.to[0] ?? "") })) : null,
        m.deliveredAt !== undefined ? h("li", {}, t("arrivedAt", { time: when(m.deliveredAt) })) : null,
        m.readAt !== undefined ? h("li", {}, t("readAt", { time: when(m.readAt) })) : null,
      ]
    : [];
  return [
    h("h2", {}, out ? t("messageTo", { who: m.to.map(friendName).join(", ") }) : t("messageFrom", { who: friendName(m.from) })),
    h("article", { class: "message" },
      h("time", {}, when(m.arrivedAt ?? m.claimedSentAt)),
      content(m, false),
      out ? ticks(m) : null),
    out ? h("details", {}, h("summary", {}, t("details")), h("ul", {}, ...travel)) : null,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => history.back() }, "← ", t("back")),
      !out ? h("a", { class: "button", href: `#write/${encodeURIComponent(m.from)}` }, "↩ ", t("reply")) : null),
  ];
}

// --- the talk with one friend ------------------------------------------------------------------

let talk: { with: string; messages: Message[] } | undefined;

async function loadTalk(who: string): Promise<void> {
  talk = { with: who, messages: await api.get<Message[]>(`conversation?with=${encodeURIComponent(who)}`) };
  if (route().arg === who) render();
}

/** Both sides of the talk, oldest first, like a phone's: theirs on one side, the child's on the other. */
function talkScreen(who: string): Child[] {
  const name = friendName(who);
  const list = talk?.with === who ? talk.messages : undefined;
  return [
    h("h2", {}, t("talk", { who: name })),
    !list
      ? h("p", {}, "…")
      : list.length === 0
        ? h("p", { class: "empty" }, t("talkEmpty", { who: name }))
        : h("ol", { class: "talk" },
            ...list.map((m) =>
              h("li", { class: m.direction === "in" ? "theirs" : "mine" },
                h("a", { href: `#message/${m.id}`, class: "open", id: `t-${m.id}` },
                  h("span", { class: "who" }, m.direction === "in" ? t("from", { who: name }) : t("to", { who: name })),
                  h("time", {}, when(m.arrivedAt ?? m.claimedSentAt))),
                content(m, true),
                m.direction === "out" ? ticks(m) : null))),
    h("div", { class: "actions" }, h("a", { class: "button", href: `#write/${encodeURIComponent(who)}`, id: "talk-write" }, "✏ ", t("write"))),
  ];
}

// --- drafts ------------------------------------------------------------------------------------

function draftsScreen(): Node[] {
  if (data.drafts.length === 0) return [h("h2", {}, t("drafts")), h("p", { class: "empty" }, t("draftsEmpty"))];
  return [
    h("h2", {}, t("drafts")),
    h("ul", { class: "messages" },
      ...[...data.drafts].sort((a, b) => b.updatedAt - a.updatedAt).map((d) =>
        h("li", { class: "msg draft" },
          h("span", { class: "who" }, t("to", { who: friendName(d.to) })), h("time", {}, when(d.updatedAt)),
          content({ id: d.id, direction: "out", from: data.me, to: [d.to], body: d.body, claimedSentAt: d.updatedAt }, true),
          h("div", { class: "actions" },
            h("a", { class: "button", href: `#draft/${d.id}` }, "✎ ", t("keepWriting")),
            h("button", { type: "button", class: "danger", onclick: () => (replica ? dropDraft(replica, d.id) : void api.post("drafts/delete", { id: d.id }).then(load, fail)) }, "✖ ", t("delete")))))),
  ];
}

// --- writing -----------------------------------------------------------------------------------

interface Compose {
  key: string; // which screen it belongs to ("write", "write/amara@local", "draft/ID")
  draftId?: string;
  to: string;
  kind: "text" | "drawing";
  text: string;
  strokes: Stroke[];
  colour: number;
  size: number;
  timer?: ReturnType<typeof setTimeout>;
  saving?: Promise<void>;
  /** The body the node has for the draft, as far as this tab knows. */
  saved: string;
  /** The body this tab has seen written to the browser's IndexedDB (the replica). */
  kept?: string;
}
let compose: Compose | undefined;
const KEPT = "pigeon-compose";

function body(c: Compose): string {
  return c.kind === "drawing" ? encodeDrawing(c.strokes) : c.text;
}

function keep(c: Compose): void {
  // on this laptop at once (the node may be busy, the lid may close): drafts are never lost
  localStorage.setItem(KEPT, JSON.stringify({ key: c.key, draftId: c.draftId, to: c.to, kind: c.kind, text: c.text, strokes: c.strokes }));
}

function changed(c: Compose): void {
  keep(c);
  clearTimeout(c.timer);
  c.timer = setTimeout(() => void saveDraft(c), replica ? 150 : 400);
  sizeMeter(c);
}

async function saveDraft(c: Compose): Promise<void> {
  clearTimeout(c.timer);
  c.timer = undefined;
  const b = body(c);
  if (!c.to || (c.kind === "text" ? !b.trim() : c.strokes.length === 0) || b === c.saved) return;
  if (replica) {
    // kept in IndexedDB and shown in the other tabs at once; the node saves it when it hears of it
    c.draftId ??= newDraftId();
    writeDraft(replica, c.draftId, c.to, b);
    c.saved = b;
    keep(c);
    // "kept on this laptop" only once it is in IndexedDB: a tab closed right after must not lose it
    await keptHere().then(() => {
      if (c.saved === b) c.kept = b;
    }, () => {});
    draftStatus(c);
    return;
  }
  const run = (async () => {
    await c.saving;
    try {
      const d = await api.post<Draft>("drafts", { to: c.to, body: b, ...(c.draftId ? { id: c.draftId } : {}) });
      c.draftId = d.id;
      c.saved = d.body;
      keep(c);
      status(t("draftSaved"));
    } catch {
      status(t("draftKept"));
    }
  })();
  c.saving = run;
  await run;
}

function status(text: string): void {
  const el = document.getElementById("draft-status");
  if (el) el.textContent = text;
}

function newCompose(key: string, to: string, draft?: Draft): Compose {
  const kept = JSON.parse(localStorage.getItem(KEPT) ?? "null") as Partial<Compose> | null;
  if (draft) {
    const strokes = decodeDrawing(draft.body);
    return { key, draftId: draft.id, to: draft.to, kind: strokes ? "drawing" : "text", text: strokes ? "" : draft.body, strokes: strokes ?? [], colour: 0, size: 1, saved: draft.body };
  }
  if (kept && kept.key === key && !to) {
    return { key, draftId: kept.draftId, to: kept.to ?? "", kind: kept.kind === "drawing" ? "drawing" : "text", text: kept.text ?? "", strokes: kept.strokes ?? [], colour: 0, size: 1, saved: "" };
  }
  return { key, to, kind: "text", text: "", strokes: [], colour: 0, size: 1, saved: "" };
}

function sizeMeter(c: Compose): void {
  const el = document.getElementById("size");
  if (!el) return;
  if (c.kind !== "drawing") return void el.replaceChildren();
  const used = encodeDrawing(c.strokes).length;
  const over = used > MAX_CHARS;
  el.className = over ? "too-big" : "";
  el.setAttribute("role", over ? "alert" : "status");
  el.textContent = over ? t("tooBig") : t("spaceUsed", { n: Math.round((used / MAX_CHARS) * 100) });
}

function writeScreen(key: string, to: string, draft?: Draft): Node[] {
  if (!compose || compose.key !== key) compose = newCompose(key, to, draft);
  const c = compose;
  const friends = data.buddies.filter((b) => !b.blocked);
  const options = friends.map((b) => h("option", { value: b.address, selected: b.address === c.to }, b.petname ?? b.name));
  if (c.to && !friends.some((b) => b.address === c.to)) options.push(h("option", { value: c.to, selected: true }, name(c.to)));
  const editor =
    c.kind === "text"
      ? h("textarea", { id: "text", rows: 6, maxlength: MAX_CHARS, "aria-describedby": "draft-status", oninput: (e) => ((c.text = (e.target as HTMLTextAreaElement).value), changed(c)) })
      : drawTools(h, t, c, () => changed(c));
  if (editor instanceof HTMLTextAreaElement) editor.value = c.text;
  const kindButton = (kind: "text" | "drawing", icon: string, label: Key) =>
    h("button", { type: "button", id: `kind-${kind}`, "aria-pressed": String(c.kind === kind), onclick: () => ((c.kind = kind), keep(c), redraw(), document.getElementById(`kind-${kind}`)?.focus()) }, icon, " ", t(label));
  const node = h("form", { class: "write", onsubmit: (e) => (e.preventDefault(), void send(c)) },
    h("label", { for: "to" }, t("whoFor")),
    h("select", { id: "to", required: true, onchange: (e) => ((c.to = (e.target as HTMLSelectElement).value), changed(c)) },
      h("option", { value: "", selected: !c.to }, t("chooseFriend")), ...options),
    h("div", { role: "group", "aria-label": `${t("words")} / ${t("drawing")}`, class: "kinds" }, kindButton("text", "Aa", "words"), kindButton("drawing", "✎", "drawing")),
    c.kind === "text" ? h("label", { for: "text" }, t("yourMessage")) : null,
    editor,
    h("p", { id: "size", "aria-live": "polite" }),
    h("p", { id: "draft-status", role: "status" }),
    h("button", { type: "submit", id: "send", class: "primary" }, "➤ ", t("send")));
  queueMicrotask(() => sizeMeter(c));
  return [h("h2", {}, t("write")), node];
}

async function send(c: Compose): Promise<void> {
  const b = body(c);
  if (!c.to) return say(t("needFriend")), void document.getElementById("to")?.focus();
  if (c.kind === "text" ? !b.trim() : c.strokes.length === 0) return say(t("needText"));
  if (b.length > MAX_CHARS) return say(t("tooBig"));
  try {
    let sent: Message;
    clearTimeout(c.timer);
    await c.saving;
    if (c.draftId && replica) {
      // the node seals and signs the message; the draft then goes from every tab
      sent = await api.post<Message>("send", { to: c.to, body: b });
      dropDraft(replica, c.draftId);
    } else if (c.draftId) {
      if (b !== c.saved) await api.post("drafts", { to: c.to, body: b, id: c.draftId });
      sent = await api.post<Message>("drafts/send", { id: c.draftId });
    } else sent = await api.post<Message>("send", { to: c.to, body: b });
    localStorage.removeItem(KEPT);
    compose = undefined;
    // written with nobody around: say it will leave by itself (with the friend connected, it is leaving now)
    const near = data.nearby.some((n) => n.address === c.to && n.connected);
    say(sent.state === "waiting" && !near ? `${t("sentOk")} ${t("sentWaiting", { who: friendName(c.to) })}` : t("sentOk"));
    keepFlash = true;
    location.hash = "#outbox";
    await load();
  } catch (e) {
    fail(e);
  }
}

// --- friends -----------------------------------------------------------------------------------

function friendsScreen(): Child[] {
  const nearbyBy = new Map(data.nearby.map((n) => [n.signPublicKey, n]));
  const vouched = new Set(data.contacts.filter((c) => c.vouch?.status === "vouched").map((c) => c.fingerprint));
  const friends = data.buddies.filter((b) => !b.blocked);
  const strangers = data.nearby.filter((n) => !n.buddy);
  return [
    h("h2", {}, t("friends")),
    friends.length === 0
      ? h("p", { class: "empty" }, t("noFriends"))
      : h("ul", { class: "friends" },
          ...friends.map((b) => {
            const n = nearbyBy.get(b.signPublicKey);
            return h("li", { class: "friend" },
              h("span", { class: "friend-name" }, b.petname ?? b.name), " ",
              h("span", { class: "address" }, b.address),
              h("span", { class: n?.connected ? "seen now" : "seen" }, n?.connected ? "● " + t("nearbyNow") : n ? seen(n.lastMet) : t("neverSeen")),
              n?.connected ? null : awayPart(b.address, n?.lastMet),
              vouched.has(b.fingerprint) || b.how === "school" ? h("span", { class: "vouched" }, "★ ", t("schoolVouched")) : null,
              h("a", { class: "button", id: `talk-${b.fingerprint}`, href: `#with/${encodeURIComponent(b.address)}`, "aria-label": `${t("messages")}: ${b.petname ?? b.name}` }, "✉ ", t("messages")),
              h("a", { class: "button", id: `write-${b.fingerprint}`, href: `#write/${encodeURIComponent(b.address)}`, "aria-label": `${t("write")}: ${b.petname ?? b.name}` }, "✏ ", t("write")),
              renameForm(b));
          })),
    data.requests.length
      ? h("section", { "aria-labelledby": "requests-h" },
          h("h3", { id: "requests-h" }, t("requests")),
          h("ul", {}, ...data.requests.map((r) => h("li", {}, r.from, " ",
            h("button", { type: "button", onclick: () => void api.post("requests/accept", { who: r.from }).then(load, fail) }, "✔ ", t("accept"))))))
      : null,
    strangers.length
      ? h("section", { "aria-labelledby": "nearby-h" },
          h("h3", { id: "nearby-h" }, t("nearbyLaptops")),
          h("ul", {}, ...strangers.map((n) => h("li", {}, h("span", { class: "friend-name" }, n.name ?? n.address), " ",
            h("span", { class: n.connected ? "seen now" : "seen" }, n.connected ? "● " + t("nearbyNow") : seen(n.lastMet)), " ",
            h("button", { type: "button", id: `befriend-${n.fingerprint}`, "aria-label": `${t("makeFriend")}: ${n.name ?? n.address}`, onclick: () => void api.post("buddies/add", { who: n.address }).then(load, fail) }, "+ ", t("makeFriend"))))))
      : null,
    h("section", { "aria-labelledby": "code-h" },
      h("h3", { id: "code-h" }, t("myCode")),
      h("p", {}, t("myCodeHelp")),
      h("output", { id: "my-code", class: "code" }, data.card),
      h("button", { type: "button", onclick: (e) => void navigator.clipboard?.writeText(data.card).then(() => ((e.target as HTMLElement).textContent = t("copied"))) }, "⧉ ", t("copy"))),
    qrPart(),
    h("form", { "aria-labelledby": "add-h", onsubmit: (e) => (e.preventDefault(), void addFriend()) },
      h("h3", { id: "add-h" }, t("friendCode")),
      h("label", { for: "friend-code" }, t("friendCodeHelp")),
      h("textarea", { id: "friend-code", rows: 3, autocomplete: "off", spellcheck: "false", value: typedCode, oninput: (e) => (typedCode = (e.target as HTMLTextAreaElement).value) }),
      h("button", { type: "submit" }, "+ ", t("addFriend")),
      ...cameraPart()),
  ];
}

/** Words typed into a friend's name field, kept when the screen is drawn again (by fingerprint). */
const typedNames = new Map<string, string>();

/** The name the child gives a friend: in the replica (every tab at once, the node when it can), or straight to the node. */
function renameForm(b: Buddy): HTMLFormElement {
  const id = `rename-${b.fingerprint}`;
  const save = async () => {
    const name = (typedNames.get(b.fingerprint) ?? b.petname ?? "").trim().toLowerCase();
    typedNames.delete(b.fingerprint);
    const done = t("renamed", { who: b.name, name: name || b.name });
    if (replica) return renameBuddy(replica, b.signPublicKey, name), say(done);
    try {
      await api.post("buddies/rename", { who: b.address, name });
      say(done);
      await load();
    } catch (e) {
      fail(e);
    }
  };
  return h("form", { class: "rename", onsubmit: (e) => (e.preventDefault(), void save()) },
    h("label", { for: id }, t("renameLabel", { who: b.name })),
    h("input", { id, maxlength: 32, autocomplete: "off", spellcheck: "false", value: typedNames.get(b.fingerprint) ?? b.petname ?? "", oninput: (e) => typedNames.set(b.fingerprint, (e.target as HTMLInputElement).value) }),
    h("button", { type: "submit", id: `rename-save-${b.fingerprint}` }, t("renameSave")));
}

// --- my code as a QR code, a friend's read with the camera (friend-qr.ts) -----------------------

let qrFor: { card: string; lang: Lang; svg: SVGSVGElement } | undefined;

function qrPart(): Child {
  if (!data.card) return null;
  if (qrFor?.card !== data.card || qrFor.lang !== lang) qrFor = { card: data.card, lang, svg: qrElement(data.card, t("qrAlt")) };
  return h("section", { "aria-labelledby": "qr-h", class: "qr-part" },
    h("h3", { id: "qr-h" }, t("qrTitle")),
    h("p", {}, t("qrHelp")),
    qrFor.svg,
    data.fingerprint ? h("p", { id: "short-code" }, t("shortCode", { code: shortCode(data.fingerprint) })) : null,
    h("p", {}, t("shortHelp")));
}

/** The camera while it reads a friend's code; one element kept across screens drawn again (it holds the stream). */
let camera: Scan | undefined;
const video = h("video", { id: "camera", playsinline: true });

function cameraPart(): Child[] {
  video.setAttribute("aria-label", t("cameraView"));
  video.hidden = !camera;
  return [
    h("button", { type: "button", id: "scan", onclick: () => void toggleCamera() }, camera ? "■ " + t("scanStop") : "◉ " + t("scan")),
    camera ? h("p", { id: "scanning" }, t("scanning")) : null,
    video,
  ];
}

function stopCamera(): void {
  camera?.stop();
  camera = undefined;
}

async function toggleCamera(): Promise<void> {
  if (camera) return stopCamera(), render();
  if (!navigator.mediaDevices?.getUserMedia) return say(t("noCamera"));
  try {
    let read = false;
    const running = await scan(video, (text) => {
      read = true; // possibly before scan() returns: the first frame may hold the code
      camera = undefined;
      typedCode = text;
      render();
      void addFriend();
    });
    if (!read) camera = running;
    render();
  } catch {
    camera = undefined;
    say(t("noCamera"));
    render();
  }
}

/**
 * How far a friend who is not nearby now is: their newest message (since their laptop was last met)
 * came through carriers, so their laptop is that many laptops away (docs/web-app.md, "Laptops away").
 */
function awayPart(address: string, lastMet = 0): Child {
  const m = data.inbox.find((x) => x.from === address && (x.arrivedAt ?? 0) > lastMet);
  return m?.hops !== undefined && m.hops >= 2 ? h("span", { class: "away" }, "⇢ ", t("away", { n: m.hops })) : null;
}

/** A friend's code being typed: kept when the screen is drawn again. */
let typedCode = "";

async function addFriend(): Promise<void> {
  try {
    // a short code: the laptop met nearby whose person's fingerprint starts with it
    const short = asShortCode(typedCode);
    if (short) {
      const n = data.nearby.find((x) => x.fingerprint.toLowerCase().startsWith(short));
      if (!n) return say(t("shortUnknown", { code: short }));
      await api.post("buddies/add", { who: n.address });
      typedCode = "";
      say(t("added", { who: name(n.address) }));
      return void (await load());
    }
    const r = await api.post<{ address: string }>("contacts", { card: typedCode.trim() });
    typedCode = "";
    say(t("added", { who: name(r.address) }));
    await load();
  } catch (e) {
    fail(e);
  }
}

function fail(e: unknown): void {
  say(t("failed", { why: e instanceof ApiError ? e.message : String((e as Error)?.message ?? e) }));
}

// --- putting it together -----------------------------------------------------------------------

/**
 * A button or link under a finger that is still down is not drawn again: the browser gives the click
 * only to an element that had both the press and the release, so a live update drawn in between
 * would swallow the child's click (nothing happens, and nothing says why). The redraw waits for the release.
 */
const press = { down: false, waiting: false, since: 0 };
/** A press longer than this (a line being drawn, a release the page never heard of) no longer holds the page back. */
const PRESS_HOLDS_MS = 10_000;

function pressed(down: boolean): void {
  if (press.down === down) return;
  press.down = down;
  press.since = performance.now();
  // after the click that this release makes: setTimeout runs once the browser has dispatched it
  if (!down && press.waiting) setTimeout(() => press.down || render(), 0);
}

/** Draws the screen again from the data; the element with the focus keeps it (a change must not move a keyboard user). */
function render(): void {
  const held = press.down && performance.now() - press.since < PRESS_HOLDS_MS;
  press.waiting = held;
  if (held) return;
  const focused = document.activeElement?.id;
  draw();
  if (focused && document.activeElement?.id !== focused) document.getElementById(focused)?.focus({ preventScroll: true });
}

function draw(): void {
  folders();
  const r = route();
  const main = $("main");
  // the writing screen is built once: a refresh must not take the pen from the child's hand
  if (r.screen === "write" || r.screen === "draft") {
    const key = r.arg ? `${r.screen}/${r.arg}` : r.screen;
    if (compose && compose.key === key && main.dataset.screen === key) return syncDraft(compose);
    const draft = r.screen === "draft" ? data.drafts.find((d) => d.id === r.arg) : undefined;
    if (r.screen === "draft" && !draft && !(compose?.key === key)) return void main.replaceChildren(h("p", {}, t("draftsEmpty")));
    main.dataset.screen = key;
    main.replaceChildren(...writeScreen(key, r.screen === "write" ? (r.arg ?? "") : "", draft));
    return;
  }
  main.dataset.screen = r.screen;
  switch (r.screen) {
    case "inbox": return void main.replaceChildren(h("h2", {}, t("inbox")), messageList(data.inbox, data.total.inbox, "inboxEmpty"));
    case "outbox": return void main.replaceChildren(h("h2", {}, t("outbox")), messageList(data.outbox, data.total.outbox, "outboxEmpty"));
    case "waiting": return void main.replaceChildren(h("h2", {}, t("waiting")), messageList(data.waiting, data.total.waiting, "waitingEmpty"));
    case "drafts": return void main.replaceChildren(...draftsScreen());
    case "friends": return void main.replaceChildren(...present(friendsScreen()));
    case "message": return void main.replaceChildren(...present(messageScreen(r.arg!)));
    case "with": return void main.replaceChildren(...present(talkScreen(r.arg!)));
    case "channels": return void main.replaceChildren(...present(channelsScreen(ui)));
    case "channel": return void main.replaceChildren(...present(channelScreen(ui, r.arg!)));
  }
}

/** Builds the writing screen again (after the child changed what it shows). */
function redraw(): void {
  $("main").dataset.screen = "";
  render();
}

/** Another tab (or device) changed the draft open here: take its text, unless this tab has edits not saved yet. */
function syncDraft(c: Compose): void {
  if (!c.draftId || c.timer || c.kind !== "text") return;
  const d = data.drafts.find((x) => x.id === c.draftId);
  if (!d || d.body === c.saved) return;
  c.text = d.body;
  c.saved = d.body;
  keep(c);
  const area = document.getElementById("text") as HTMLTextAreaElement | null;
  if (area) area.value = d.body;
}

/** Whether the node has the words being written, or only this browser (once they are in IndexedDB). */
function draftStatus(c: Compose): void {
  if (!replica || !c.draftId) return;
  if (savedByNode(replica.doc(), c.draftId, c.saved)) status(t("draftSaved"));
  else if (c.kept === c.saved) status(t("draftKept"));
}

/** The replica changed (this tab, another tab, the node): drafts shown again, and whether the node has the words being written. */
function onReplica(): void {
  if (!replica) return;
  data.drafts = replicaDrafts(replica.doc());
  data.buddies = replicaBuddies(replica) ?? data.buddies;
  const c = compose;
  if (c?.draftId && !c.timer && c.saved) draftStatus(c);
  render();
}

/** Everything the page shows, as GET /app/api/state (and the session) answer it. */
interface Folder {
  newest: Message[];
  total: number;
}
interface State {
  whoami: { address: string; fingerprint: string; school?: { me?: { class?: string; role?: string } } }; inbox: Folder & { unread: number }; outbox: Folder; waiting: Folder; drafts: Draft[]; buddies: { buddies: Buddy[] };
  nearby: Nearby[]; contacts: Contact[]; requests: Request[]; card: { card: string }; channels: Channel[];
}

/** Messages opened that are older than the folders' first page. */
const opened = new Map<string, Message>();

function show(s: State): void {
  opened.clear(); // their state may have changed: asked again when shown
  Object.assign(data, {
    inbox: s.inbox.newest, outbox: s.outbox.newest, waiting: s.waiting.newest, unread: s.inbox.unread,
    total: { inbox: s.inbox.total, outbox: s.outbox.total, waiting: s.waiting.total }, drafts: replica ? replicaDrafts(replica.doc()) : s.drafts, nearby: s.nearby, contacts: s.contacts, requests: s.requests, buddies: replicaBuddies(replica) ?? s.buddies.buddies, card: s.card.card,
    channels: s.channels ?? [], school: s.whoami.school?.me, fingerprint: s.whoami.fingerprint });
  setMe(s.whoami.address);
  if (data.me !== s.whoami.address) {
    data.me = s.whoami.address;
    $("me").textContent = t("you", { who: s.whoami.address });
  }
  render();
}

let loading: Promise<void> | undefined;
let again = false;

/** Asks the node for everything shown (a change while asking asks once more). */
async function load(): Promise<void> {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    do {
      again = false;
      show(await api.get<State>(`state?shown=${shown}`));
      const r = route();
      if (r.screen === "with") await loadTalk(r.arg!);
      if (r.screen === "channel") await loadChannel(ui, r.arg!);
    } while (again);
  })().finally(() => (loading = undefined));
  return loading;
}

/** What the channel screens (channels.ts) use of this page. */
const ui: Ui = {
  h, api, say, fail, load, render,
  go: (hash, text) => {
    say(text);
    keepFlash = true;
    location.hash = hash;
  },
  t: (key, vars) => t(key, vars),
  when: (ms) => when(ms),
  who: (address) => (address === data.me ? t("fromYou") : friendName(address)),
  content: (m) => content({ ...m, to: m.to ?? [] }, false),
  channels: () => data.channels,
  friends: () => data.buddies.filter((b) => !b.blocked).map((b) => ({ address: b.address, name: b.petname ?? b.name })),
  teacher: () => data.school?.role === "teacher",
};

async function main(): Promise<void> {
  performance.mark("pigeon-main"); // for the time-to-interactive benchmark: every module has arrived and run
  lang = chooseLang(localStorage.getItem("pigeon-lang"), navigator.languages);
  t = translator(lang);
  // the session first, then one layout of the whole page (the page says "Pigeon…" meanwhile)
  const first = await api.start<State>();
  frame();
  if (!first) {
    $("main").replaceChildren(h("p", { class: "need-key", role: "alert" }, t("needKey")));
    return;
  }
  window.addEventListener("pointerdown", () => pressed(true), true);
  for (const end of ["pointerup", "pointercancel"]) window.addEventListener(end, () => pressed(false), true);
  // the window losing the focus (not an element of it: their blur reaches a capturing window too)
  window.addEventListener("blur", (e) => e.target === window && pressed(false));
  // a release the page did not see (outside the window): the next move without a button says so
  window.addEventListener("pointermove", (e) => e.buttons === 0 && pressed(false), true);
  window.addEventListener("hashchange", () => {
    if (!keepFlash) say("");
    keepFlash = false;
    shown = 50;
    render();
    $("main").focus({ preventScroll: true });
    const r = route();
    if (r.screen === "with" && talk?.with !== r.arg) void loadTalk(r.arg!).catch(fail);
    if (r.screen === "channel") void loadChannel(ui, r.arg!).catch(fail);
    if (r.screen !== "friends") stopCamera();
  });
  // listening first: a change while the folders load asks again
  api.live(() => void load().catch(() => {}), (up) => {
    online = up;
    const el = $("live");
    el.className = up ? "up" : "down";
    el.textContent = up ? "● " + t("live") : "○ " + t("offline");
  });
  show(first);
  // the replica after the first screen: its WebAssembly must not hold the child up
  void startReplica(api.replica, api.token).then((r) => {
    if (!r) return;
    replica = r;
    r.on("change", onReplica);
    onReplica();
    document.body.dataset.replicaAt = String(Math.round(performance.now())); // for the benchmark
    document.body.dataset.replica = "ready";
  }, () => {});
  document.body.dataset.ready = String(Math.round(performance.now())); // for tests and the time-to-interactive benchmark
}

void main();
