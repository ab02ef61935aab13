// The user's bound resources (RFC 6120 §7): one session per resource, and the newest login to a
// resource wins (§7.7.2.2).
import { randomBytes } from "node:crypto";
import { bareJid, type Jid } from "./jid.js";
import type { Session } from "./session.js";

export class Resources {
  private readonly bound = new Map<string, Session>();

  constructor(private readonly bare: string) {}

  /** Binds `s` to the resource it asked for (or a generated one); returns the resource. */
  bind(s: Session, wanted: string): string {
    let resource = wanted || `pigeon-${randomBytes(4).toString("hex")}`;
    const old = this.bound.get(resource);
    if (old && old !== s) {
      // the new session wins; the old one is told why
      this.bound.delete(resource);
      old.kick("conflict", "the same resource logged in again");
    }
    if (this.bound.has(resource)) resource = `${resource}-${randomBytes(3).toString("hex")}`;
    this.bound.set(resource, s);
    return resource;
  }

  /** Forgets `s` if it still holds its resource; true if it did. */
  unbind(s: Session): boolean {
    if (!s.resource || this.bound.get(s.resource) !== s) return false;
    this.bound.delete(s.resource);
    return true;
  }

  all(): Session[] {
    return [...this.bound.values()];
  }

  /** The clients that sent initial presence (RFC 6121 §4.2) and take messages. */
  available(): Session[] {
    return this.all().filter((s) => s.available && !s.isEnded);
  }

  /** The session bound to `to`, if `to` is one of the user's own full JIDs. */
  own(to: Jid | undefined): Session | undefined {
    if (!to || !to.resource || bareJid(to) !== this.bare) return undefined;
    return this.bound.get(to.resource);
  }

  /** A detached or live session with stream management id `id`, to resume. */
  resumable(id: string): Session | undefined {
    for (const s of this.bound.values()) if (s.id === id && !s.isEnded) return s;
    return undefined;
  }
}
