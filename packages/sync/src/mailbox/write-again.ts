// A laptop writes again, by itself, what the school's e-mail gateway could not read. The gateway
// forgets each part (segment) of its conversations once the mail in it is done; a message this laptop
// wrote into a part before it heard the gateway had moved on, carried late, reaches the gateway after
// that part was forgotten, and is acknowledged unread. The gateway then says which sealed envelope
// it did not read (a `Mail-Unread:` notice, model/gateway-mail.ts); this laptop, which keeps every
// message it wrote, writes the text of that envelope's messages again into the conversation's
// current part, so nothing is lost and the child does not have to notice.
//
// The notice is hostile input like any message: it only ever makes this laptop write again its own
// text, to the one person it was written to (the notice must come from that same conversation), once
// per envelope, and only messages not already shown read. (Delivered is no guard: the gateway's laptop
// acknowledges the late envelope, which clears carriers' copies, though it could not read it.)
import { parseUnreadNotice, fromHex } from "@pigeon/model";
import type { MailboxCore } from "./core.js";
import type { MessageView } from "./types.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS written_again (envelope BLOB PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
`;

export class WriteAgain {
  constructor(
    private readonly core: MailboxCore,
    private readonly message: (id: string) => Promise<MessageView | undefined>,
    private readonly reply: (id: string, body: string) => Promise<MessageView>,
  ) {
    core.state.db.exec(SCHEMA);
  }

  /** A message arrived: when it is the gateway's notice of an envelope it did not read, its messages are written again. */
  async arrived(notice: MessageView): Promise<MessageView[]> {
    if (notice.direction !== "in" || notice.blocked) return [];
    const unread = parseUnreadNotice(notice.body);
    if (!unread) return [];
    const envelope = fromHex(unread.envelope);
    const db = this.core.state.db;
    const ids = db.prepare(`SELECT message_id FROM sent_messages WHERE envelope = ?`).pluck().all(envelope) as string[];
    // once per envelope, whatever a notice repeats
    if (ids.length === 0 || db.prepare(`INSERT OR IGNORE INTO written_again (envelope, at) VALUES (?, ?)`).run(envelope, this.core.now()).changes === 0) return [];
    const again: MessageView[] = [];
    for (const id of ids) {
      const own = await this.message(id);
      // its own text, in the conversation the notice came in, not a file, not already read over there
      if (!own || own.direction !== "out" || own.conversation !== notice.conversation || own.file) continue;
      if (own.state === "read") continue;
      again.push(await this.reply(notice.id, own.body));
      this.core.log.info(`wrote message ${id.slice(0, 8)} again as ${again[again.length - 1]!.id.slice(0, 8)}: the gateway had forgotten its part of the conversation before it arrived`);
    }
    return again;
  }
}
