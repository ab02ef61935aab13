// Drafts: the person's own Automerge document (model/drafts.ts has its merge rule and admission
// check), shared only by the person's devices, like the buddy list (buddies.ts). It is the second
// document of the person's own conversation (conversationId([me]), segment DRAFTS_SEGMENT), so it
// travels as sealed envelopes with no recipients: only the person's devices open them, carriers can
// neither read nor forge them, and a classmate handed every envelope opens none. A draft becomes a
// message only when the child sends it (`send --draft ID`), and sending it deletes it on every
// device. After a crash it is caught up from the sealed store. Drafts kept by an older store in its
// private, never-sealed document are carried over once (migrate).
import * as A from "@automerge/automerge";
import type { DocHandle } from "@automerge/automerge-repo";
import type { DecodedChange } from "@automerge/automerge";
import {
  hasChanges,
  buddyListConversation, deleteDraft, draft, drafts, DRAFTS_SEGMENT, emptyDrafts, equalBytes, formatAddress, MAX_BODY_CHARS, newMessageId,
  parseAddress, saveDraft, sealChange, sha256, utf8, validDraftId, type DraftEdit, type DraftsDoc, type Envelope,
} from "@pigeon/model";
import { personalKey } from "./buddies.js";
import type { MailboxCore } from "./core.js";
import { MailboxError, type DraftView } from "./types.js";

/** Set in the settings table once the drafts of an older store's private document were carried over. */
const MIGRATED = "drafts-migrated";

/** The private, never-sealed document older stores kept their drafts in. */
interface OldDraftsDoc {
  drafts: Record<string, { to: A.ImmutableString; body: A.ImmutableString; updatedAt: number }>;
}

export class Drafts {
  /** The person's own conversation; drafts are its segment DRAFTS_SEGMENT. */
  readonly conversation: Uint8Array;
  private handle: DocHandle<DraftsDoc> | undefined;

  constructor(private readonly core: MailboxCore) {
    this.conversation = buddyListConversation(core.me);
  }

  isHere(conv: Uint8Array, segment: number): boolean {
    return segment === DRAFTS_SEGMENT && equalBytes(conv, this.conversation);
  }

  /** The document, caught up from the sealed store the first time (inside core.serial). */
  private async load(): Promise<DocHandle<DraftsDoc>> {
    if (this.handle) return this.handle;
    const { core } = this;
    const id = sha256(utf8("pigeon-drafts-v2"), this.conversation).subarray(0, 16);
    const { handle } = await core.documents.open<DraftsDoc>(id, () => emptyDrafts(), core.actor);
    await core.catchUp(this.conversation, DRAFTS_SEGMENT, handle);
    this.handle = handle;
    return handle;
  }

  /** Saves a draft; with `create`, a draft of that id is made if there is none (the web app's replica names its own drafts). */
  async save(to: string, body: string, id?: string, create = false): Promise<DraftView> {
    let addr: string;
    try {
      addr = formatAddress(parseAddress(to));
    } catch (e) {
      throw new MailboxError("bad-input", (e as Error).message);
    }
    if (body.length > MAX_BODY_CHARS) throw new MailboxError("bad-input", `the draft is over ${MAX_BODY_CHARS} characters`);
    return this.core.serial(async () => {
      const h = await this.load();
      if (id !== undefined && !draft(h.doc(), id) && !(create && validDraftId(id))) throw new MailboxError("not-found", `no draft ${id}`);
      const e = saveDraft(A.clone(h.doc(), { actor: this.core.actor }), { id: id ?? newMessageId().slice(0, 8), to: addr, body }, this.core.now());
      await this.edit(h, e);
      return e.draft;
    });
  }

  list(): Promise<DraftView[]> {
    return this.core.serial(async () => drafts((await this.load()).doc()));
  }

  delete(id: string): Promise<void> {
    return this.core.serial(async () => {
      const h = await this.load();
      const e = draft(h.doc(), id) && deleteDraft(A.clone(h.doc(), { actor: this.core.actor }), id, this.core.now());
      if (!e) throw new MailboxError("not-found", `no draft ${id}`);
      await this.edit(h, e);
    });
  }

  /**
   * Makes one edit: sealed for the person alone (no recipients) and stored (fsynced) before the
   * document takes it, as a buddy-list edit is.
   */
  private async edit(handle: DocHandle<DraftsDoc>, e: DraftEdit): Promise<void> {
    const { core } = this;
    const at = core.now();
    const key = personalKey(core, at);
    const env = sealChange(core.identity, { conversation: this.conversation, segment: DRAFTS_SEGMENT, recipients: [], created: at, lifetime: core.lifetime }, key, e.change);
    core.storeOwn(env); // from here the edit is made: what fails below is redone from the sealed store
    handle.update((d) => A.applyChanges(d, [e.change])[0]);
    const decoded = A.decodeChange(e.change);
    try {
      core.state.batch(() => {
        core.state.recordChange(this.conversation, DRAFTS_SEGMENT, decoded);
        core.state.markOpened(env.id, this.conversation, "applied", core.now(), undefined, decoded.hash);
      });
    } catch (err) {
      core.log.warn(`a drafts change is stored but its bookkeeping could not be written (${core.storageFailed(err)}); it is redone on recovery`);
    }
    await core.flushQuietly(handle as DocHandle<unknown>);
    // as for a buddy-list edit: what the user sees changed (another open window of the web app shows it)
    core.events.emit("changed");
  }

  /** A change another device of the person made, admitted by the drafts rule: applied, unless it waits for earlier changes (false). */
  async receive(env: Envelope, change: Uint8Array, decoded: DecodedChange): Promise<boolean> {
    const { core } = this;
    const handle = await this.load();
    if (!hasChanges(handle.doc(), decoded.deps)) return false;
    if (!hasChanges(handle.doc(), [decoded.hash])) handle.update((d) => A.applyChanges(d, [change])[0]);
    core.state.batch(() => {
      core.state.recordChange(this.conversation, DRAFTS_SEGMENT, decoded);
      core.state.markOpened(env.id, this.conversation, "applied", core.now(), undefined, decoded.hash);
    });
    await core.flushQuietly(handle as DocHandle<unknown>);
    core.events.emit("changed");
    return true;
  }

  /**
   * A store from before shared drafts: the drafts of its private document are saved into the shared
   * one, once (with their times), so nothing a child had disappears. The old document is left as it is.
   */
  async migrate(): Promise<void> {
    const { core } = this;
    if (core.state.setting(MIGRATED)) return;
    const oldId = sha256(utf8("pigeon-drafts-v1"), core.me).subarray(0, 16);
    const { handle: old, created } = await core.documents.open<OldDraftsDoc>(
      oldId,
      () => A.change(A.init<OldDraftsDoc>({ actor: "00".repeat(16) }), { time: 0 }, (d) => { d.drafts = {}; }),
      core.actor,
    );
    let n = 0;
    if (!created) {
      const h = await this.load();
      for (const [id, d] of Object.entries(old.doc().drafts ?? {})) {
        if (draft(h.doc(), id)) continue; // already carried over
        try {
          await this.edit(h, saveDraft(A.clone(h.doc(), { actor: core.actor }), { id, to: d.to.toString(), body: d.body.toString() }, d.updatedAt));
          n++;
        } catch (e) {
          if (!(e instanceof RangeError)) throw e;
          core.log.warn(`draft ${id} of the older store could not be carried over (${e.message}); it stays in the old document`);
        }
      }
    }
    core.state.setSetting(MIGRATED, String(core.now()));
    if (n) core.log.info(`carried ${n} draft(s) of this laptop over to the drafts your devices share`);
  }
}
