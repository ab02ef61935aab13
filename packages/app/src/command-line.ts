// The pigeon command's words: its help text, its options, and how a command line is read and
// checked. Every mistake is a UsageError in our own words (exit 2), found before anything is done.
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { parseArgs } from "node:util";
import { DEFAULT_HOME, validName } from "@pigeon/model";

export class UsageError extends Error {}

export const HELP = `pigeon - a messenger that carries notes between laptops, even when they are apart

Usage: pigeon COMMAND [options]

Commands:
  start                     run this laptop's node (keep it running; Ctrl-C stops it)
  whoami                    your address and fingerprint
  send ADDRESS TEXT...      send a message, e.g. pigeon send amara@local "hello"
  send --draft ID           send a saved draft
  send someone@example.org TEXT... [--subject S] --yes [--via GATEWAY]
                            an e-mail to an outside address, through your school's e-mail
                            gateway (default mail@YOURSCHOOL). The gateway reads the text (it
                            must, to make it an e-mail) and applies the school's rules (a
                            teacher may have to approve it first); without --yes this only
                            says so and sends nothing. Its e-mail state shows in pigeon outbox
                            ADDRESS is name@home, your name for a contact, a fingerprint, or
                            name@home#FPRT (when two people share a name, add the start of
                            the fingerprint, as pigeon contacts and pigeon inbox show it)
  reply ID TEXT...          answer a received message (works for anyone who wrote to you); an
                            e-mail the gateway brought is answered by e-mail (needs --yes)
  inbox                     messages you received; "new" marks those not read yet
  outbox                    messages you sent, with their state
                            (waiting, sent, delivered, read), and for e-mails the state the
                            gateway sent back (waiting for a teacher, left the school, bounced)
  waiting                   sent messages no other laptop has taken yet
                            inbox, outbox and waiting show the newest 100: --last N for the
                            newest N, --all for every one
  drafts                    saved drafts (never sent until you say so)
  draft ADDRESS TEXT...     save a draft
  draft --delete ID         delete a draft
  read                      show your new messages, and mark them read
  read ID... / show ID...   show these messages and mark them read; ID is what is in
                            [brackets] in pigeon inbox (its first 4 or more characters)
  read --all                mark every received message read, without showing them
                            (whenever a message is marked read, its sender sees "read")
  peers                     laptops connected right now
  channels                  the class channels you are in (or were), with their members
  channel create NAME       start a channel you own, e.g. pigeon channel create "5B science"
  channel add NAME WHO...   add people (channel add NAME --class 5B: everyone of that class)
  channel remove NAME WHO.. take people out: they get nothing written after (a new key)
  channel admin NAME WHO    let someone add and remove people (unadmin NAME WHO: no longer)
  channel close NAME        close a channel you own: no one writes to it any more
  send NAME MESSAGE         also writes to a channel (by its name), sealed once for everyone
  buddies                   your buddies (the same on all your devices), with their groups,
                            how you know them, and who is blocked. Meeting a laptop does not
                            make a buddy: you choose (writing to someone, adding their card or
                            accepting their request also makes them one)
  buddies add WHO           make someone a buddy: a laptop met nearby, a card, a request
  buddies rename WHO NAME   your own name for a buddy ("" to clear it); pigeon send NAME works
  buddies group WHO GROUP   put a buddy in a group (ungroup WHO GROUP takes them out)
  buddies remove WHO        take someone off your buddies (your messages with them stay)
  buddies block WHO         block anyone, buddy or not: nothing from them is shown, they get
                            no receipt (unblock WHO lifts it; what came meanwhile stays hidden)
  nearby                    laptops met nearby, the most recent first, and who is a buddy
  contacts                  everyone this laptop knows: met nearby, cards, requests
  card                      your contact card, to give to someone you have not met
  contacts add CARD         add someone from their contact card (they become a buddy)
  contacts rename WHO NAME  the same as buddies rename
  contacts remove WHO       take them off your buddies and forget them on this laptop
                            (your messages with them stay)
                            WHO is an address, your name for them, or a fingerprint
  requests                  messages from people who are not your buddies: they never go to
                            your inbox and get no receipt until you
  requests accept WHO         make them a buddy (their messages move to your inbox)
  requests ignore WHO         hide them
  requests report WHO [WHY]   hide them and keep them for your school (requests reports)
  devices                   your devices (laptops that share your mailbox, buddies and outbox)
  devices add               show a pairing code for a new device (the node must be running, on
                            your first device: it holds your person key)
  devices revoke ID [WHY]   revoke a lost device: it gets nothing new, and what it signs is
                            refused by everyone who learns of it (the news travels by itself)
  pair CODE                 make this laptop another device of someone: type the code their
                            first device shows (same network, or --peer HOST:PORT of that node);
                            only in an empty data directory
  status                    what this node stores, and carries for others
  stop                      stop the running node
  xmpp-password [NEW]       show (or set) the password XMPP clients log in with;
                            your XMPP address is your Pigeon address. A new one needs
                            10+ characters mixing letters with digits or symbols (or 16+),
                            not a common password and not your name
  rename NEWNAME            change your name (with the node stopped); your keys and
                            fingerprint stay the same, laptops you meet learn the new name
  enrol TOKEN               join your school with the token its school server printed for
                            this laptop (you take the enrolled name@school; keys stay the same)
  enrol --move TOKEN        a child who moved to another village's school: leave the old
                            school's directory and join the new one; keys, buddies and
                            conversations stay, and old friends still reach you
  school                    your school: its directory, its policy, what it says of you
  school list [--class C]   everyone the school vouches for (name, class, role, fingerprint)
  routes                    on a relay point: every other village it can reach, the way
                            (which relay point, which carrier) and the expected delay

On the school server (started with pigeon start --school HOME):
  school enrol CARD --class C [--name NAME] [--role student|teacher] [--replace] [--until DATE]
                            enrol the person of a contact card (pigeon card on their laptop)
                            and print the token for that laptop; a name taken by another key
                            needs --replace (a lost first laptop: the old key is revoked);
                            --until 2027-07-31: the last day the school vouches for them
  school revoke-device KEY [--name NAME]
                            revoke a lost or stolen laptop by its key (64 hex characters,
                            pigeon whoami --json there: signPublicKey); NAME: whose it is,
                            unless it is the person's first laptop
  school revoke-person NAME [--reason WHY]
                            the school no longer vouches for NAME; their messages are refused
  school policy only-directory|open|no-student-groups|student-groups
                            only-directory: the school's laptops drop messages from anyone the
                            directory does not vouch for; open: strangers' go to requests;
                            no-student-groups: only teachers start channels
  school relay-point KEY [--federate HOME=KEY]...
                            certify a relay point on a box of its own (KEY: what its first
                            start printed) and print its grant; the villages it exchanges mail
                            with are remembered, and the school's laptops are told
  school sign-rules RULES.json [--out FILE]
                            sign the e-mail gateway's rules with the school key; writes
                            RULES.signed.json unless --out says where; with the school server
                            running they also travel to laptops and the gateway (no restart)

On the e-mail gateway (its own data directory, enrolled in the school, started with
pigeon start --gateway CONFIG.json; docs/gateway.md):
  gateway                   mail waiting for a teacher: outgoing to approve, incoming held
  gateway approve N | refuse N WHY | release N | discard N WHY
                            decide one (teachers can also write these words to the gateway
                            from their own laptops); the running gateway applies it
  gateway log               every decision the gateway made (for the school)

Sending (send, send --draft, reply), peers and stop need the node running; every other command also
works while it is stopped, reading (and for buddies, writing) the data directory itself; the node
takes changes made meanwhile to your other devices when it runs again.

Options for every command:
  --data DIR                data directory: your identity (private keys) and messages
                            (default: $PIGEON_HOME, else $XDG_DATA_HOME/pigeon, else
                            ~/.local/share/pigeon; the same from every folder)
  --json                    print JSON for scripts
  -h, --help                this help

Options for pair: --peer, --no-mdns, --mdns-interface, --listen and --port, as for start.

Options for start:
  --name NAME               your name, the first time (asked if not given; without a
                            terminal to ask in, --name is needed); later: pigeon rename
  --home HOME               your school or relay point (default: ${DEFAULT_HOME})
  --school HOME             run as the school server of HOME: makes the school key on the
                            first start (school.json in the data directory; keep it safe)
  --listen ADDR             this laptop's address for other laptops (default 0.0.0.0: all)
  --port N                  port for other laptops (default 7480, or a free one if taken)
  --control-port N          loopback port for the pigeon command (default 7481, or a free one)
  --peer HOST:PORT          also connect to this node (repeatable; for networks without multicast)
  --no-mdns                 do not discover or announce on the local network
  --mdns-interface ADDR     IPv4 address of an interface for mDNS (repeatable)
  --meet anyone|school      whom this laptop shows who it is to on the network: its
                            schoolmates only (the default in a school), or anyone nearby (the
                            default for a laptop in no school); a new device being paired
                            with the code shown is always let in
  --hop-limit N             hops a carried message may travel (default 6)
  --copies N                copy tokens for your messages: each laptop that takes one gets half
                            of what the giver holds (binary spray-and-wait; default 64)
  --carry-quota MB          space for messages carried for others (default 50)
  --xmpp-port N             port for XMPP clients (default 5222, or a free one if taken)
  --xmpp-listen ADDR        address for XMPP clients (default 127.0.0.1; others must use STARTTLS)
  --no-xmpp                 no XMPP front door
  --relay-point HOME        run as the relay point of HOME: keeps mail for and from the village,
                            routes between villages. On the school server of HOME (with
                            --school HOME), or on a box of its own: its first start prints its
                            key for the school server (pigeon school relay-point KEY)
  --relay-grant GRANT       a relay point's box: the grant the school server printed for it
                            (remembered; a new grant replaces it)
  --federate HOME=KEY       exchange mail with the village HOME, whose school key is KEY (the
                            line its relay point prints when it starts; repeatable, remembered)
  --announce-gap S          a relay point signs a new route announcement at most every S seconds
                            (default 60)
  --announce-lifetime S     how long its route announcements count (default 86400: a day)
  --mule LABEL              this node travels between villages (a bus, a teacher's motorbike):
                            it carries mail between relay points, which name it "the LABEL"
  --gateway CONFIG.json     run as the school's e-mail gateway (SMTP in and out, the school's
                            signed rules); this data directory must be enrolled in the school
  --allow-origin URL        let web pages from this origin (e.g. http://127.0.0.1:8080) use the
                            control port and XMPP WebSocket (repeatable); pages from anywhere
                            else are refused, and so is any Host but 127.0.0.1/localhost:PORT

Exit status: 0 ok, 1 the node refused or failed, 2 bad usage (an unknown option, a bad
address or value, no message with that ID), 3 no node running (or no identity yet in the
data directory).
`;

export const options = {
  data: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  name: { type: "string" },
  home: { type: "string" },
  listen: { type: "string" },
  port: { type: "string" },
  "control-port": { type: "string" },
  peer: { type: "string", multiple: true },
  "no-mdns": { type: "boolean" },
  "mdns-interface": { type: "string", multiple: true },
  "hop-limit": { type: "string" },
  meet: { type: "string" },
  copies: { type: "string" },
  "carry-quota": { type: "string" },
  "xmpp-port": { type: "string" },
  "xmpp-listen": { type: "string" },
  "no-xmpp": { type: "boolean" },
  "allow-origin": { type: "string", multiple: true },
  draft: { type: "string" },
  delete: { type: "string" },
  all: { type: "boolean" },
  school: { type: "string" },
  class: { type: "string" },
  role: { type: "string" },
  replace: { type: "boolean" },
  move: { type: "boolean" },
  until: { type: "string" },
  reason: { type: "string" },
  gateway: { type: "string" },
  "relay-point": { type: "string" },
  "relay-grant": { type: "string" },
  federate: { type: "string", multiple: true },
  "announce-gap": { type: "string" },
  "announce-lifetime": { type: "string" },
  mule: { type: "string" },
  via: { type: "string" },
  subject: { type: "string" },
  yes: { type: "boolean" },
  out: { type: "string" },
  last: { type: "string" },
} as const;

export type OptionName = keyof typeof options;
export type Values = { [K in OptionName]?: (typeof options)[K] extends { type: "boolean" } ? boolean : (typeof options)[K] extends { multiple: true } ? string[] : string };

export const COMMANDS = [
  "start", "whoami", "send", "reply", "requests", "inbox", "outbox", "waiting", "drafts", "draft", "read", "show", "peers", "buddies", "nearby",
  "contacts", "card", "status", "stop", "rename", "xmpp-password", "devices", "pair", "enrol", "school",
  "gateway", "channel", "channels", "routes",
];

/** Options every command takes; the others belong to one command each. */
const COMMON: readonly OptionName[] = ["data", "json", "help"];
const COMMAND_OPTIONS: Record<string, readonly OptionName[]> = {
  start: ["name", "home", "listen", "port", "control-port", "peer", "no-mdns", "mdns-interface", "meet", "hop-limit", "copies", "carry-quota", "xmpp-port", "xmpp-listen", "no-xmpp", "allow-origin", "school", "gateway", "relay-point", "relay-grant", "federate", "announce-gap", "announce-lifetime", "mule"],
  school: ["name", "class", "role", "replace", "reason", "until", "out", "federate"],
  enrol: ["move"],
  send: ["draft", "via", "subject", "yes"],
  reply: ["yes"],
  draft: ["delete"],
  read: ["all"],
  inbox: ["last", "all"],
  outbox: ["last", "all"],
  waiting: ["last", "all"],
  channel: ["class"],
  pair: ["peer", "no-mdns", "mdns-interface", "listen", "port"],
};

/**
 * Reads the command line. Every mistake is a UsageError in our own words (exit 2), found before
 * anything is done: unknown options, missing values, options another command takes.
 */
export function parseCommandLine(argv: string[]): { v: Values; positionals: string[] } {
  const { tokens, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  const known = options as Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;
  const v: Record<string, string | boolean | string[]> = {};
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    const spec = Object.hasOwn(known, t.name) ? known[t.name] : undefined;
    const raw = argv[t.index] ?? t.rawName;
    if (!spec) {
      const dash = raw.startsWith("-") && !raw.startsWith("--") ? ` (to give a word that starts with "-", put -- before it, e.g. pigeon send amara@local -- "${raw}")` : "";
      throw new UsageError(`unknown option ${raw}${dash}; pigeon --help lists the options`);
    }
    if (spec.type === "boolean") {
      if (t.value !== undefined) throw new UsageError(`${t.rawName} takes no value (found "${t.value}")`);
      v[t.name] = true;
      continue;
    }
    if (t.value === undefined || t.value === "" || (!t.inlineValue && t.value.startsWith("-")))
      throw new UsageError(`${t.rawName} needs a value${t.value ? ` (found the option ${t.value})` : ""}; pigeon --help says what it takes`);
    if (spec.multiple) v[t.name] = [...((v[t.name] as string[] | undefined) ?? []), t.value];
    else v[t.name] = t.value; // given twice: the last one counts, as usual
  }
  return { v: v as Values, positionals };
}

/** Options that do not belong to this command are mistakes, not silently ignored. */
export function checkOptionsFor(command: string, v: Values): void {
  const allowed = new Set<OptionName>([...COMMON, ...(COMMAND_OPTIONS[command] ?? [])]);
  for (const name of Object.keys(v) as OptionName[]) {
    if (allowed.has(name)) continue;
    const owner = Object.entries(COMMAND_OPTIONS).find(([, list]) => list.includes(name))?.[0];
    throw new UsageError(`--${name} is ${owner ? `an option of pigeon ${owner}` : "not an option"}, not of pigeon ${command}`);
  }
}

export function int(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = /^[0-9]{1,9}$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

export const NAME_RULE = "1-32 small letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. amara";

export function checkName(text: string, what: string): string {
  const name = text.trim().toLowerCase();
  if (!validName(name)) throw new UsageError(`${what} "${text}" is not a name Pigeon can use: ${NAME_RULE}`);
  return name;
}

/** An address this laptop has (or every address): checked before anything is written. */
export function listenAddress(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const mine = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  if (isIP(value) === 0) throw new UsageError(`--${flag} must be an IP address of this laptop, e.g. 0.0.0.0 (every network) or 127.0.0.1, not "${value}"`);
  if (value !== "0.0.0.0" && value !== "::" && !mine.includes(value))
    throw new UsageError(`--${flag} ${value} is not an address of this laptop (it has ${mine.join(", ")})`);
  return value;
}

