// Drafts: a private document of this user's, never sealed and so never sent by accident.
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import { formatAddress, MAX_BODY_CHARS, newMessageId, parseAddress, sha256, utf8 } from "@pigeon/model";
import type { MailboxCore } from "./core.js";
import { MailboxError, type DraftView } from "./types.js";

interface DraftsDoc {
  drafts: Record<string, { to: A.ImmutableString; body: A.ImmutableString; updatedAt: number }>;
}

export class Drafts {
  constructor(private readonly core: MailboxCore) {}

  private async handle(): Promise<DocHandle<DraftsDoc>> {
    const id = sha256(utf8("pigeon-drafts-v1"), this.core.me).subarray(0, 16);
    const { handle } = await this.core.documents.open<DraftsDoc>(
      id,
      () => A.change(A.init<DraftsDoc>({ actor: "00".repeat(16) }), { time: 0 }, (d) => { d.drafts = {}; }),
      this.core.actor,
    );
    return handle;
  }

  async save(to: string, body: string, id?: string): Promise<DraftView> {
    let addr: string;
    try {
      addr = formatAddress(parseAddress(to));
    } catch (e) {
      throw new MailboxError("bad-input", (e as Error).message);
    }
    if (body.length > MAX_BODY_CHARS) throw new MailboxError("bad-input", `the draft is over ${MAX_BODY_CHARS} characters`);
    return this.core.serial(async () => {
      const h = await this.handle();
      const draftId = id ?? newMessageId().slice(0, 8);
      if (id && !h.doc().drafts[id]) throw new MailboxError("not-found", `no draft ${id}`);
      const updatedAt = this.core.now();
      h.update((d) => A.change(d, (x) => {
        x.drafts[draftId] = { to: new A.ImmutableString(addr), body: new A.ImmutableString(body), updatedAt };
      }));
      await this.core.documents.flush(h as DocHandle<unknown>);
      return { id: draftId, to: addr, body, updatedAt };
    });
  }

  list(): Promise<DraftView[]> {
    return this.core.serial(async () => {
      const h = await this.handle();
      return Object.entries(h.doc().drafts)
        .map(([id, d]) => ({ id, to: d.to.toString(), body: d.body.toString(), updatedAt: d.updatedAt }))
        .sort((a, b) => a.updatedAt - b.updatedAt);
    });
  }

  delete(id: string): Promise<void> {
    return this.core.serial(async () => {
      const h = await this.handle();
      if (!h.doc().drafts[id]) throw new MailboxError("not-found", `no draft ${id}`);
      h.update((d) => A.change(d, (x) => { delete x.drafts[id]; }));
      await this.core.documents.flush(h as DocHandle<unknown>);
    });
  }
}
