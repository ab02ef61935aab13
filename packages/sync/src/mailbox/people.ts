// The people this laptop knows: laptops met nearby, cards, people known from their own claim in a
// message, and the buddies the person's other devices added; the user's own names for them
// (petnames, kept in the buddy list); and turning what a user typed into exactly one person — by
// address, petname or fingerprint — or a clear list of candidates to choose from.
import { equalBytes, fingerprint, formatAddress, parseAddress, toHex, type ContactCard } from "@pigeon/model";
import type { Contact } from "../local-state.js";
import type { MailboxCore } from "./core.js";
import { MailboxError, type Candidate } from "./types.js";

/** "ABCD-EFGH-JKLM-NPQR" (dashes optional, any case), as `pigeon whoami` shows it. */
const FINGERPRINT_RE = /^[a-z2-7]{4}-?[a-z2-7]{4}-?[a-z2-7]{4}-?[a-z2-7]{4}$/i;

function normalFingerprint(text: string): string {
  return text.replace(/-/g, "").toUpperCase();
}

export class People {
  constructor(private readonly core: MailboxCore) {}

  /**
   * Remembers a contact. Laptops met nearby are remembered by themselves (offered as "nearby"; the
   * child chooses who is a buddy), at most `metPerHour` new ones an hour (a swarm of throwaway
   * identities cannot fill the list); past that, they are met (links work, envelopes are carried) but
   * not remembered, and the refusals are counted in the log. A buddy met with a changed card (a new
   * name or sealing key) is refreshed on the buddy list, so the person's other devices learn it.
   */
  remember(card: ContactCard, how: string): void {
    const { core } = this;
    if (equalBytes(card.signPublicKey, core.me)) return;
    const known = core.state.contact(card.signPublicKey);
    if (!known && how === "met" && core.state.metSince(core.now() - 3_600_000) >= core.metPerHour) {
      core.log.warn(`not adding a laptop met nearby (${fingerprint(card.signPublicKey)}): already ${core.metPerHour} new ones in the last hour`);
      return;
    }
    core.state.rememberContact(card, how, core.now());
    if (!known) core.events.emit("contact", core.state.contact(card.signPublicKey)!);
    const b = core.buddyIndex.byKey.get(toHex(card.signPublicKey));
    if (b && (b.name !== card.name || b.home !== card.home || b.sealKey !== toHex(card.sealPublicKey)))
      this.onCardChanged?.(card);
  }

  /** Set by the mailbox: a buddy's card changed (refresh it on the list, in the queue). */
  onCardChanged: ((card: ContactCard) => void) | undefined;

  /** Everyone this laptop knows, each with the petname the buddy list gives them. */
  list(): Contact[] {
    const { buddyIndex } = this.core;
    return this.core.state.contacts().map((c) => {
      const { petname: _old, ...rest } = c; // petnames live in the buddy list (the column is only read by the migration)
      const petname = buddyIndex.byKey.get(toHex(c.signPublicKey))?.petname;
      return petname ? { ...rest, petname } : rest;
    });
  }

  /**
   * Finds exactly one person for what the user typed: a fingerprint, `name@home#FPRT` (an address
   * narrowed by the start of a fingerprint), a petname, or `name@home`.
   */
  resolve(text: string): Contact {
    const typed = String(text ?? "").trim();
    const all = this.list();
    if (FINGERPRINT_RE.test(typed)) {
      const fp = normalFingerprint(typed);
      if (fp === normalFingerprint(fingerprint(this.core.me))) throw this.yourself();
      const c = all.find((x) => normalFingerprint(fingerprint(x.signPublicKey)) === fp);
      if (!c) throw new MailboxError("unknown-address", `nobody with fingerprint ${typed} is known on this laptop`);
      return c;
    }
    const hash = typed.indexOf("#");
    const addressText = hash < 0 ? typed : typed.slice(0, hash);
    const fpPrefix = hash < 0 ? "" : normalFingerprint(typed.slice(hash + 1));
    if (hash >= 0 && !/^[A-Z2-7]{1,16}$/.test(fpPrefix))
      throw new MailboxError("bad-input", `"${typed}": after '#' comes the start of a fingerprint (letters A-Z and digits 2-7)`);
    if (hash < 0 && !typed.includes("@")) {
      const named = all.filter((c) => c.petname === typed.toLowerCase());
      if (named.length === 1) return named[0]!;
    }
    let wanted;
    try {
      wanted = parseAddress(addressText);
    } catch (e) {
      throw new MailboxError("bad-input", (e as Error).message);
    }
    if (wanted.name === this.core.identity.name && wanted.home === this.core.identity.home && !fpPrefix) throw this.yourself();
    const matches = all.filter(
      (c) => c.name === wanted.name && c.home === wanted.home && normalFingerprint(fingerprint(c.signPublicKey)).startsWith(fpPrefix),
    );
    if (matches.length === 0) {
      // someone the school enrolled under that name: known from the directory, never met
      const card = this.core.directoryCard(wanted);
      if (card && normalFingerprint(fingerprint(card.signPublicKey)).startsWith(fpPrefix)) {
        this.core.state.rememberContact(card, "school", this.core.now());
        return this.core.state.contact(card.signPublicKey)!;
      }
      const known = all.map((c) => formatAddress(c));
      throw new MailboxError(
        "unknown-address",
        `unknown address ${formatAddress(wanted)}${fpPrefix ? `#${fpPrefix}` : ""}: not among the people this laptop knows` +
          (known.length ? ` (known: ${known.join(", ")})` : " (nobody yet: laptops nearby are met on the local network, or add a contact card)"),
      );
    }
    // on a school's laptop, the plain name@home of an enrolled person means the school's person, never
    // someone else who calls themselves so (reaching them takes their fingerprint, #FPRT)
    // likewise another village's person whose school's word their card carried (school.ts, otherVillage)
    const says = fpPrefix ? [] : matches.map((c) => this.core.schoolVouch(c.signPublicKey));
    if (says.some((v) => v?.school === wanted.home)) {
      const vouched = matches.filter((_, i) => says[i]?.status === "vouched");
      if (vouched.length === 1) return vouched[0]!;
      const impostor = says.findIndex((v) => v?.status === "impostor");
      if (matches.length === 1 && impostor === 0)
        throw new MailboxError(
          "bad-input",
          `${this.core.addressOf(matches[0]!.signPublicKey)} is not ${wanted.home === this.core.identity.home ? "the school" : wanted.home}'s ${formatAddress(wanted)} (${(says[0] as { reason: string }).reason}); ` +
            `to write to them anyway, use ${this.core.addressOf(matches[0]!.signPublicKey)}`,
        );
    }
    if (matches.length > 1) {
      const candidates: Candidate[] = matches.map((c) => ({
        address: formatAddress(c), fingerprint: fingerprint(c.signPublicKey), lastSeen: c.lastSeen, ...(c.petname ? { petname: c.petname } : {}),
      }));
      throw new MailboxError(
        "ambiguous-address",
        `${matches.length} people here are called ${formatAddress(wanted)}; choose one by adding the start of its fingerprint:\n` +
          candidates.map((c) => `  ${c.address}#${c.fingerprint.slice(0, 4)}  (fingerprint ${c.fingerprint}, last seen ${new Date(c.lastSeen).toISOString().slice(0, 16).replace("T", " ")})`).join("\n"),
        candidates,
      );
    }
    return matches[0]!;
  }

  /** Forgets a contact on this laptop (conversations and messages stay; meeting them again brings them back). */
  forget(key: Uint8Array): void {
    this.core.state.removeContact(key);
  }

  yourself(): MailboxError {
    return new MailboxError("bad-input", `${this.core.address} is your own address: messages go to other people`);
  }
}
