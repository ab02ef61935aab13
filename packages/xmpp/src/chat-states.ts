// Chat states (XEP-0085) between two laptops that are connected right now: a client's <composing/>,
// <paused/>, <active/>, <inactive/> or <gone/> to a buddy goes as a live ChatState frame over the open
// links to that buddy's laptops (the SyncEngine; never stored or carried, rate-limited there), and a
// buddy's frame is shown to the user's clients as a message with only that state. Anyone who is not
// a buddy (or is blocked) is neither told nor shown; a frame counts only from the laptop of the very
// person the buddy list names (a stranger who calls itself by a buddy's name is not them).
import { CHAT_STATES, equalBytes, formatAddress, type Address, type ChatState } from "@pigeon/model";
import type { Account } from "./account.js";
import { NS } from "./ns.js";
import { isContact } from "./roster.js";
import { el, type XmlElement } from "./xml.js";

/** The links to other laptops, as chat states need them (Pigeon's SyncEngine). */
export interface LiveLinks {
  on(event: "chat-state", listener: (link: { peer: Address & { signPublicKey: Uint8Array } }, state: ChatState) => void): unknown;
  off(event: "chat-state", listener: (link: { peer: Address & { signPublicKey: Uint8Array } }, state: ChatState) => void): unknown;
  sendChatState(person: Uint8Array, state: ChatState): number;
}

/** The chat state a client's message carries, if any. */
export function chatStateOf(m: XmlElement): ChatState | undefined {
  for (const c of m.children) if (typeof c !== "string" && c.attrs.xmlns === NS.chatstates && (CHAT_STATES as readonly string[]).includes(c.name)) return c.name as ChatState;
  return undefined;
}

export class ChatStates {
  private readonly onFrame = (link: { peer: Address & { signPublicKey: Uint8Array } }, state: ChatState) => this.shown(link.peer, state);

  constructor(private readonly a: Account, private readonly live: LiveLinks | undefined) {}

  start(): void {
    this.live?.on("chat-state", this.onFrame);
  }

  stop(): void {
    this.live?.off("chat-state", this.onFrame);
  }

  /** A client of the user says `state` to `to` (a bare JID). */
  fromClient(to: string, state: ChatState): void {
    if (!this.live || !isContact(this.a, to)) return;
    const person = this.person(to);
    if (person) this.live.sendChatState(person, state);
  }

  private person(jid: string): Uint8Array | undefined {
    try {
      return this.a.mailbox.resolve(jid).signPublicKey;
    } catch {
      return undefined; // nobody, or two people by that name: nobody to tell
    }
  }

  private shown(peer: Address & { signPublicKey: Uint8Array }, state: ChatState): void {
    if (this.a.isClosed()) return;
    const from = formatAddress(peer).toLowerCase();
    if (!isContact(this.a, from)) return;
    const person = this.person(from);
    if (!person || !equalBytes(person, peer.signPublicKey)) return;
    for (const s of this.a.resources.available())
      s.sendStanza(el("message", { from, to: s.jid, type: "chat", id: this.a.nextId("cs") }, el(state, { xmlns: NS.chatstates }), el("no-store", { xmlns: NS.hints })));
  }
}
