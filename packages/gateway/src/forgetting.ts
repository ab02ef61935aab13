// The gateway keeps nothing longer than needed: the parts (segments) of its Pigeon conversations
// that hold mail are forgotten on the gateway once that mail is done, the sender has its state, and
// the sender's laptop writes elsewhere (sync: mailbox/forgetting.ts). The sender's laptops keep
// the whole conversation; the gateway keeps only what its decisions log and gateway.db say (who, to
// whom, when, what was decided), never the text.
//
// A segment is done when every message in it is:
// - written by the gateway (a status, an incoming mail, a notice): acknowledged by the person's
//   laptop (its "delivered" receipt came back);
// - written by the person: a mail that left, was refused or bounced (queued or held is not done), or
//   anything else the gateway already answered (a command, a request it could not read).
// Each mail's text gets a part of its own, so that it is forgotten `keepMs` after THAT mail is done,
// even while the conversation goes on: as soon as the highest segment holds anything but the
// gateway's short state lines (a mail asked for, a mail that came in, a notice), the gateway moves the
// conversation on to an empty one (`moveOn`), where the laptop writes its next message. A segment of
// state lines only is moved on once it is done. A segment is forgotten `keepMs` after it is done and
// the person's laptop has shown it knows the next one. (A message the laptop wrote before it heard of
// the move-on still lands in the old segment, which then waits for that message too.)
import type { PigeonNode } from "@pigeon/sync";
import type { SegmentKind } from "@pigeon/model";
import { parseMailStatus, segmentKind } from "@pigeon/model";
import type Database from "better-sqlite3";

const SCHEMA = `
-- segments found done (and known past by the other member), since when: forgotten keepMs later
CREATE TABLE IF NOT EXISTS done_segments (
  conversation TEXT NOT NULL,
  segment INTEGER NOT NULL,
  since INTEGER NOT NULL,
  PRIMARY KEY (conversation, segment)
) WITHOUT ROWID;
`;

const FINISHED = new Set(["sent", "refused", "bounced"]);

export class GatewayForgetting {
  constructor(
    private readonly node: PigeonNode,
    private readonly db: Database.Database,
    private readonly decision: (decision: string, who: string, detail: string) => void,
    private readonly warn: (msg: string) => void,
  ) {
    db.exec(SCHEMA);
  }

  /** Whether a message the gateway shows is done with (see the top of this file). */
  private done(m: { id: string; direction: "in" | "out"; state?: string }): boolean {
    if (m.direction === "out") return m.state === "delivered" || m.state === "read";
    const state = this.db.prepare(`SELECT state FROM outgoing WHERE pigeon_id = ?`).pluck().get(m.id) as string | undefined;
    if (state !== undefined) return FINISHED.has(state);
    return this.db.prepare(`SELECT 1 FROM seen WHERE pigeon_id = ?`).get(m.id) !== undefined;
  }

  /** One round: moves conversations on, and forgets what is done since `keepMs`. Answers how many segments were forgotten. */
  async round(now: number, keepMs: number): Promise<number> {
    let forgotten = 0;
    for (const id of this.node.mailbox.state.conversations()) {
      const conv = Buffer.from(id).toString("hex");
      try {
        forgotten += await this.conversation(conv, now, keepMs);
      } catch (e) {
        // one conversation that cannot move on or be forgotten now (no key yet, a full disk) holds up no other
        this.warn(`gateway: could not forget in conversation ${conv.slice(0, 12)}: ${(e as Error).message}`);
      }
    }
    return forgotten;
  }

  private async conversation(conv: string, now: number, keepMs: number): Promise<number> {
    const f = this.node.mailbox.forgetting;
    let forgotten = 0;
    const byKind = new Map<SegmentKind, number[]>();
    for (const s of f.known(conv)) {
      const kind = segmentKind(s);
      if (kind === "profile") continue; // a person's own picture: not mail
      byKind.set(kind, [...(byKind.get(kind) ?? []), s]);
    }
    for (const [kind, segments] of byKind) {
      const highest = segments[segments.length - 1]!;
      for (const segment of segments) {
        const messages = await f.messagesIn(conv, segment);
        if (messages.length === 0 && segment === highest) continue; // a fresh part, nothing in it yet
        if (!messages.every((m) => this.done(m))) {
          this.db.prepare(`DELETE FROM done_segments WHERE conversation = ? AND segment = ?`).run(conv, segment);
          // a mail's text is in it: the conversation goes on elsewhere, so nothing written later holds this part up
          if (segment === highest && messages.some((m) => !parseMailStatus(m.body))) await f.moveOn(conv, kind);
          continue;
        }
        // the person's laptop must write elsewhere before this part can go
        if (segment === highest) {
          await f.moveOn(conv, kind);
          continue;
        }
        if (!f.knownPast(conv, segment)) continue;
        this.db.prepare(`INSERT OR IGNORE INTO done_segments (conversation, segment, since) VALUES (?, ?, ?)`).run(conv, segment, now);
        const since = this.db.prepare(`SELECT since FROM done_segments WHERE conversation = ? AND segment = ?`).pluck().get(conv, segment) as number;
        if (now - since < keepMs) continue;
        const who = [...new Set(messages.map((m) => (m.direction === "in" ? m.from : m.to.join(", "))))];
        await f.forget(conv, segment);
        this.db.prepare(`DELETE FROM done_segments WHERE conversation = ? AND segment = ?`).run(conv, segment);
        this.decision("forgotten", who.join(", "), `the gateway's copy of ${messages.length} message(s) (mail and its states) in their conversation, done since ${new Date(since).toISOString()}`);
        forgotten++;
      }
    }
    return forgotten;
  }
}
