// What the features of the front door share: the one user's account, its connected clients, Pigeon's
// Mailbox and xmpp.db. The server builds one Account; each feature file takes it as a parameter.
import type { ChatState } from "@pigeon/model";
import type { Log, Mailbox, MessageView } from "@pigeon/sync";
import { StanzaError, type IqHandler, type IqRegistry } from "./iq.js";
import type { Jid } from "./jid.js";
import type { Resources } from "./resources.js";
import type { Roster } from "./roster.js";
import type { Session } from "./session.js";
import type { XmppStore } from "./store.js";

export interface Account {
  readonly domain: string;
  readonly user: string;
  /** user@domain, the Pigeon address. */
  readonly bareJid: string;
  readonly mailbox: Mailbox;
  readonly store: XmppStore;
  readonly log: Log;
  /** The user's bound clients. */
  readonly resources: Resources;
  /** The roster and block list as the clients were last told them (the buddy list). */
  readonly roster: Roster;
  /** Live chat states to a buddy's laptops connected now (chat-states.ts). */
  readonly chatStates: { fromClient(to: string, state: ChatState): void };
  /** Files and drawings as URLs on the node (files.ts); undefined without the node's HTTP server. */
  readonly files: { urlOf(v: MessageView): string | undefined; uploaded(body: string): { token: string; name: string; type: string; bytes: Uint8Array } | undefined; sent(token: string, id: string): void; readonly available: boolean };
  /**
   * Messages a client sent that the Mailbox has not yet answered, with their ids still to be
   * remembered: the Mailbox tells of a message it wrote before it answers (group commit), and until
   * then it cannot be told from one `pigeon send` wrote.
   */
  readonly clientSends: Set<Promise<unknown>>;
  /** True once the server is closing: Pigeon's events are no longer shown to clients. */
  isClosed(): boolean;
  now(): number;
  /** A fresh id for a stanza the server writes itself. */
  nextId(prefix: string): string;
}

/** Whom an IQ is for: the server, the user's account (no `to`, or the bare JID), or someone else. */
export type Addressee = { kind: "domain" } | { kind: "account" } | { kind: "other"; jid: Jid };

/** The context every IQ handler gets. */
export interface IqRequest {
  readonly session: Session;
  readonly to: Addressee;
}

export type Iqs = IqRegistry<IqRequest>;

/** A handler for what only the user's own account answers (roster, MAM, …); anything else has no such service. */
export function forAccount(handler: IqHandler<IqRequest>): IqHandler<IqRequest> {
  return (element, req) => {
    if (req.to.kind !== "account") throw new StanzaError("service-unavailable");
    return handler(element, req);
  };
}
