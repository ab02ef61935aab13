// The server in-process with a real Mailbox and SyncEngine, driven by raw sockets: the stream, SASL,
// binding, the IQs every client sends at login, routing between the user's own clients, contacts'
// presence following the laptops that connect, and RFC 7395 framing.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certifyDevice, contactCard, decodeFrame, encodeCard, encodeFrame, generateIdentity, identityFromGrant, newDeviceIdentity } from "@pigeon/model";
import { fileStorage, Mailbox, memoryLinkPair, SyncEngine } from "@pigeon/sync";
import { ensureCredentials } from "./credentials.js";
import { XmlStreamParser } from "./parser.js";
import { ScramClient } from "./scram.js";
import { NOT_NEARBY } from "./presence.js";
import { XmppServer } from "./server.js";
import { child, childText, toXml, type XmlElement } from "./xml.js";

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local' version='1.0'>`;

class RawClient {
  private parser!: XmlStreamParser;
  private queue: XmlElement[] = [];
  private waiters: { match: (s: XmlElement) => boolean; resolve: (s: XmlElement) => void }[] = [];
  header: Record<string, string> | undefined;
  raw = "";
  constructor(readonly sock: Socket) {
    this.fresh();
    sock.on("data", (d) => {
      this.raw += d.toString();
      this.parser.write(d);
    });
  }
  fresh() {
    this.parser = new XmlStreamParser(
      {
        streamStart: (h) => (this.header = h.attrs),
        streamEnd: () => {},
        error: (e) => this.queue.push({ name: "parse-error", attrs: { condition: e.condition }, children: [] }),
        stanza: (s) => {
          const i = this.waiters.findIndex((w) => w.match(s));
          if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(s);
          else this.queue.push(s);
        },
      },
      { maxStanzaChars: 1 << 20 },
    );
  }
  next(match: (s: XmlElement) => boolean, ms = 5000): Promise<XmlElement> {
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      this.waiters.push(w);
      setTimeout(() => reject(new Error(`nothing matched in ${ms} ms; got: ${this.raw.slice(-800)}`)), ms).unref();
    });
  }
  send(x: string) {
    this.sock.write(x);
  }
  async iq(body: string, attrs = ""): Promise<XmlElement> {
    const id = `q${Math.random().toString(36).slice(2)}`;
    this.send(`<iq id='${id}' ${attrs}>${body}</iq>`);
    return this.next((s) => s.name === "iq" && s.attrs.id === id);
  }
}

async function login(port: number, password: string, resource = "test", mech: "sha1" | "sha256" = "sha256"): Promise<RawClient> {
  const sock = connect(port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const c = new RawClient(sock);
  c.send(HEADER);
  await c.next((s) => s.name === "features");
  const scram = new ScramClient(mech, "amara", password);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-${mech === "sha1" ? "1" : "256"}'>${Buffer.from(scram.first()).toString("base64")}</auth>`);
  const ch = await c.next((s) => s.name === "challenge");
  c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(scram.final(Buffer.from(childText({ name: "x", attrs: {}, children: [ch] }, "challenge") ?? "", "base64").toString())).toString("base64")}</response>`);
  const ok = await c.next((s) => s.name === "success" || s.name === "failure");
  expect(ok.name).toBe("success");
  expect(scram.verify(Buffer.from(childText({ name: "x", attrs: {}, children: [ok] }, "success") ?? "", "base64").toString())).toBe(true);
  c.fresh();
  c.send(HEADER);
  const f = await c.next((s) => s.name === "features");
  expect(f.children.map((x) => (x as XmlElement).name)).toEqual(["bind", "session", "sm", "ver"]);
  const bound = await c.iq(`<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind>`, "type='set'");
  expect(childText(child(bound, "bind")!, "jid")).toBe(`amara@local/${resource}`);
  return c;
}

describe("XmppServer in-process", () => {
  let dir: string;
  let mailbox: Mailbox;
  let sync: SyncEngine;
  const baraka = generateIdentity("baraka");
  let server: XmppServer;
  let port: number;
  let password: string;
  let http: Server;
  let wsUrl: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-xmpp-unit-"));
    mailbox = new Mailbox({ identity: generateIdentity("amara"), storage: fileStorage(dir) });
    await mailbox.addContact(contactCard(baraka)); // a card: baraka is on amara's buddy list
    sync = new SyncEngine(mailbox);
    password = ensureCredentials(dir).password;
    server = new XmppServer({ mailbox, dataDir: dir, port: 0, tls: false, loginTimeoutMs: 3000, peers: sync, live: sync });
    port = (await server.listen()).port;
    http = createServer((_q, r) => r.end());
    http.on("upgrade", (req, sock, head) => {
      if (!server.handleUpgrade(req, sock, head)) sock.destroy();
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
    wsUrl = `ws://127.0.0.1:${(http.address() as { port: number }).port}/xmpp-websocket`;
  });

  afterAll(async () => {
    await server.close();
    sync.close();
    http.close();
    await mailbox.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("opens the stream with from, id, version and the SCRAM mechanisms only", async () => {
    const sock = connect(port, "127.0.0.1");
    const c = new RawClient(sock);
    c.send(HEADER);
    const f = await c.next((s) => s.name === "features");
    expect(c.header).toMatchObject({ from: "local", version: "1.0", "xml:lang": "en" });
    expect(c.header!.id).toMatch(/^[0-9a-f]{24}$/);
    expect(child(f, "mechanisms")!.children.map((m) => childText({ name: "x", attrs: {}, children: [m] }, "mechanism"))).toEqual(["SCRAM-SHA-256", "SCRAM-SHA-1"]);
    // a stanza before logging in ends the stream
    c.send("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>");
    await new Promise((r) => sock.once("close", r));
    expect(c.raw).toContain('<not-authorized xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>');
  });

  it("refuses a wrong password and the wrong host", async () => {
    const sock = connect(port, "127.0.0.1");
    const c = new RawClient(sock);
    c.send(HEADER);
    await c.next((s) => s.name === "features");
    // PLAIN is not offered, and not taken when asked for
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0amara\0${password}`).toString("base64")}</auth>`);
    expect(child(await c.next((s) => s.name === "failure"), "invalid-mechanism")).toBeDefined();
    const scram = new ScramClient("sha256", "amara", "wrong-password");
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${Buffer.from(scram.first()).toString("base64")}</auth>`);
    const ch = await c.next((s) => s.name === "challenge");
    c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(scram.final(Buffer.from(childText({ name: "x", attrs: {}, children: [ch] }, "challenge") ?? "", "base64").toString())).toString("base64")}</response>`);
    const fail = await c.next((s) => s.name === "failure");
    expect(child(fail, "not-authorized")).toBeDefined();
    sock.destroy();
    const other = new RawClient(connect(port, "127.0.0.1"));
    other.send(HEADER.replace("to='local'", "to='elsewhere'"));
    await new Promise((r) => other.sock.once("close", r));
    expect(other.raw).toContain("<host-unknown");
  });

  it("answers every IQ, with a from, and routes between the user's own clients with carbons", async () => {
    const c = await login(port, password, "laptop", "sha1");
    const session = await c.iq("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>", "type='set'");
    expect(session.attrs.type).toBe("result");
    const ping = await c.iq("<ping xmlns='urn:xmpp:ping'/>", "type='get' to='local'");
    expect(ping.attrs).toMatchObject({ type: "result", from: "local" });
    const unknown = await c.iq("<query xmlns='urn:example:nothing'/>", "type='get' to='local'");
    expect(unknown.attrs).toMatchObject({ type: "error", from: "local" });
    expect(toXml(unknown)).toContain("service-unavailable");
    // someone known only from their own claim in a message (a request) is not on the roster
    mailbox.rememberContact(contactCard(generateIdentity("stranger")), "introduced");
    const roster = await c.iq("<query xmlns='jabber:iq:roster'/>", "type='get'");
    const items = child(roster, "query")!.children as XmlElement[];
    expect(items.map((i) => [i.attrs.jid, i.attrs.subscription])).toEqual([["baraka@local", "both"]]);
    const ver = child(roster, "query")!.attrs.ver!;
    const again = await c.iq(`<query xmlns='jabber:iq:roster' ver='${ver}'/>`, "type='get'");
    expect(again.children).toEqual([]); // unchanged: an empty result
    // someone this laptop does not know cannot be added (Pigeon needs their keys)
    const set = await c.iq("<query xmlns='jabber:iq:roster'><item jid='x@local'/></query>", "type='set'");
    expect(toXml(set)).toContain("item-not-found");
    const info = await c.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='amara@local'");
    expect(toXml(info)).toContain('var="urn:xmpp:mam:2"');
    const priv = await c.iq("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='r@x'/></storage></query>", "type='set'");
    expect(priv.attrs.type).toBe("result");
    const back = await c.iq("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>", "type='get'");
    expect(toXml(back)).toContain('jid="r@x"');
    const vcard = await c.iq("<vCard xmlns='vcard-temp'/>", "type='get' to='baraka@local'");
    expect(toXml(vcard)).toMatch(/<FN[^>]*>baraka<\/FN>/);
    const mamForm = await c.iq("<query xmlns='urn:xmpp:mam:2'/>", "type='get'");
    expect(toXml(mamForm)).toContain('var="with"');
    const noChild = await c.iq("", "type='get'");
    expect(toXml(noChild)).toContain("bad-request");

    // a second client of the same user, with carbons
    const d = await login(port, password, "phone");
    expect((await d.iq("<enable xmlns='urn:xmpp:carbons:2'/>", "type='set'")).attrs.type).toBe("result");
    c.send("<presence/>");
    d.send("<presence/>");
    await d.next((s) => s.name === "presence" && s.attrs.from === "amara@local/laptop");
    c.send("<message to='amara@local/phone' type='chat' id='m1'><body>note to self</body></message>");
    const got = await d.next((s) => s.name === "message" && s.attrs.id === "m1");
    expect(got.attrs.from).toBe("amara@local/laptop");
    // a message to someone this laptop never met is refused clearly
    c.send("<message to='nobody@local' type='chat' id='m2'><body>hi</body></message>");
    const err = await c.next((s) => s.name === "message" && s.attrs.type === "error");
    expect(toXml(err)).toContain("item-not-found");
    // a message to a contact goes into Pigeon, and the other client gets a sent carbon
    c.send("<message to='baraka@local' type='chat' id='m3'><body>hello baraka</body><origin-id xmlns='urn:xmpp:sid:0' id='o3'/></message>");
    const carbon = await d.next((s) => s.name === "message" && !!child(s, "sent", "urn:xmpp:carbons:2"));
    expect(toXml(carbon)).toContain("hello baraka");
    expect((await mailbox.outbox()).map((m) => m.body)).toEqual(["hello baraka"]);
    // the same resource logging in again replaces the old session
    const c2 = await login(port, password, "laptop");
    await new Promise((r) => c.sock.once("close", r));
    expect(c.raw).toContain("<conflict");
    c2.sock.destroy();
    d.sock.destroy();
  });

  it("answers each IQ by whom it is for, once, and never answers results or errors", async () => {
    const c = await login(port, password, "desk");
    const cond = (r: XmlElement) => (child(r, "error")?.children[0] as XmlElement | undefined)?.name;
    // results and errors for the server: nothing comes back (a ping afterwards is the next thing seen)
    c.send("<iq type='result' id='r1' to='local'/><iq type='error' id='r2'><ping xmlns='urn:xmpp:ping'/></iq>");
    const ping = await c.iq("<ping xmlns='urn:xmpp:ping'/>", "type='get'");
    expect(ping.attrs).toMatchObject({ type: "result", from: "amara@local" });
    expect(c.raw).not.toContain("id=\"r1\"");
    expect(c.raw).not.toContain("id=\"r2\"");
    expect(cond(await c.iq("<ping xmlns='urn:xmpp:ping'/>", "type='get' to='baraka@local'"))).toBe("service-unavailable");
    expect(cond(await c.iq("<ping xmlns='urn:xmpp:ping'/>", "type='get' to='@@'"))).toBe("jid-malformed");
    // a resource of the user's that is not connected
    const away = await c.iq("<ping xmlns='urn:xmpp:ping'/>", "type='get' to='amara@local/elsewhere'");
    expect([away.attrs.from, cond(away)]).toEqual(["amara@local/elsewhere", "service-unavailable"]);
    const version = await c.iq("<query xmlns='jabber:iq:version'/>", "type='get' to='local'");
    expect(childText(child(version, "query")!, "name")).toBe("Pigeon");
    expect(cond(await c.iq("<query xmlns='jabber:iq:version'/>", "type='get'"))).toBe("service-unavailable");
    // the account's own services are not offered on behalf of others
    expect(cond(await c.iq("<query xmlns='jabber:iq:roster'/>", "type='get' to='local'"))).toBe("service-unavailable");
    expect(cond(await c.iq("<vCard xmlns='vcard-temp'><FN>x</FN></vCard>", "type='set' to='baraka@local'"))).toBe("forbidden");
    expect(toXml(await c.iq("<vCard xmlns='vcard-temp'/>", "type='get'"))).toMatch(/<FN[^>]*>amara<\/FN>/);
    expect(cond(await c.iq("<block xmlns='urn:xmpp:blocking'/>", "type='set'"))).toBe("bad-request");
    expect(child(await c.iq("<blocklist xmlns='urn:xmpp:blocking'/>", "type='get'"), "blocklist")).toBeDefined();
    // the archive refuses a filter it does not have, with the archive's own condition
    const mam = await c.iq(
      "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field><field var='subject'><value>x</value></field></x></query>",
      "type='set'",
    );
    expect(cond(mam)).toBe("feature-not-implemented");
    const info = await c.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='baraka@local'");
    expect(toXml(info)).toContain('var="http://jabber.org/protocol/disco#info"');
    expect(cond(await c.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='nobody@local'"))).toBe("service-unavailable");
    // one reply each: no id came back twice
    await c.iq("<ping xmlns='urn:xmpp:ping'/>", "type='get'");
    const replies = [...c.raw.matchAll(/<iq [^>]*\bid="(q[^"]+)"/g)].map((m) => m[1]);
    expect(replies.length).toBeGreaterThan(15);
    expect(new Set(replies).size).toBe(replies.length);
    c.sock.destroy();
  });

  it("shows a contact available while their laptop is connected, as the sync engine's events say", async () => {
    const c = await login(port, password, "presence");
    // from a full JID (clients keep presence per resource), with capabilities that offer receipts
    const fromBaraka = (s: XmlElement) => s.name === "presence" && s.attrs.from === "baraka@local/pigeon";
    const away = (s: XmlElement) => childText(s, "show") === "xa" && childText(s, "status") === NOT_NEARBY;
    c.send("<presence/>");
    const first = await c.next(fromBaraka);
    expect(away(first)).toBe(true);
    const caps = child(first, "c", "http://jabber.org/protocol/caps")!;
    expect(caps.attrs.ver).toBe(createHash("sha1").update("account/registered//<http://jabber.org/protocol/chatstates<http://jabber.org/protocol/disco#info<urn:xmpp:chat-markers:0<urn:xmpp:message-correct:0<urn:xmpp:receipts<").digest("base64"));
    // the capabilities node answers with those features
    c.send(`<iq type='get' id='caps' to='baraka@local/pigeon'><query xmlns='http://jabber.org/protocol/disco#info' node='${caps.attrs.node}#${caps.attrs.ver}'/></iq>`);
    const info = await c.next((s) => s.name === "iq" && s.attrs.id === "caps");
    expect(info.attrs.type).toBe("result");
    expect(JSON.stringify(info)).toContain("urn:xmpp:receipts");
    // events, not polling: each change arrives well within a second
    const [link] = memoryLinkPair(contactCard(mailbox.identity), contactCard(baraka));
    sync.attach(link);
    const up = await c.next(fromBaraka, 1000);
    expect([child(up, "show"), up.attrs.type]).toEqual([undefined, undefined]);
    // a second link with the same address going away leaves the contact connected
    const [second] = memoryLinkPair(contactCard(mailbox.identity), contactCard(baraka));
    sync.attach(second);
    second.close("replaced");
    c.send("<presence type='probe' to='baraka@local'/>");
    expect(child(await c.next(fromBaraka, 1000), "show")).toBeUndefined();
    link.close("walked away");
    expect(away(await c.next(fromBaraka, 1000))).toBe(true);
    c.sock.destroy();
  });

  it("edits the roster (RFC 6121 §2.3, §2.5): add, name, groups, remove; every change pushed to each client that asked, with its version", async () => {
    const chiku = generateIdentity("chiku");
    mailbox.rememberContact(contactCard(chiku), "met"); // met nearby: known, not a buddy
    const c = await login(port, password, "editor");
    const d = await login(port, password, "watcher");
    const items = (r: XmlElement) => (child(r, "query")?.children ?? []) as XmlElement[];
    const roster0 = await c.iq("<query xmlns='jabber:iq:roster'/>", "type='get'");
    expect(items(roster0).map((i) => i.attrs.jid)).not.toContain("chiku@local");
    await d.iq("<query xmlns='jabber:iq:roster'/>", "type='get'"); // d asked: it gets the pushes
    const pushTo = (x: RawClient, jid: string, pred: (i: XmlElement) => boolean = () => true) =>
      x.next((st) => st.name === "iq" && st.attrs.type === "set" && items(st).some((i) => i.attrs.jid === jid && pred(i)));
    // add with a name and two groups: one push to each client (the one that asked too), then the result
    const pushedC = pushTo(c, "chiku@local");
    const pushedD = pushTo(d, "chiku@local");
    const added = await c.iq("<query xmlns='jabber:iq:roster'><item jid='chiku@local' name='Chi'><group>Football</group><group>My class</group></item></query>", "type='set'");
    expect(added.attrs.type).toBe("result");
    for (const p of [await pushedC, await pushedD]) {
      const [item] = items(p);
      expect(item!.attrs).toMatchObject({ jid: "chiku@local", name: "chi", subscription: "both" });
      expect(item!.children.map((g) => childText({ name: "x", attrs: {}, children: [g] }, "group"))).toEqual(["Football", "My class"]);
      expect(child(p, "query")!.attrs.ver).toBe(child(await c.iq("<query xmlns='jabber:iq:roster'/>", "type='get'"), "query")!.attrs.ver);
    }
    expect((await mailbox.buddies()).find((b) => b.name === "chiku")).toMatchObject({ petname: "chi", groups: ["Football", "My class"] });
    // the roster set is the whole item: no name clears the petname, the groups are replaced
    const renamed = pushTo(d, "chiku@local", (i) => i.attrs.name === "chiku");
    await c.iq("<query xmlns='jabber:iq:roster'><item jid='chiku@local'><group>Football</group></item></query>", "type='set'");
    expect(items(await renamed)[0]!.children).toHaveLength(1);
    expect((await mailbox.buddies()).find((b) => b.name === "chiku")).toMatchObject({ groups: ["Football"] });
    expect((await mailbox.buddies()).find((b) => b.name === "chiku")!.petname).toBeUndefined();
    // §2.3.3 and §2.5.3: what is refused, and why
    const cond = (r: XmlElement) => (child(r, "error")?.children[0] as XmlElement | undefined)?.name;
    expect(cond(await c.iq("<query xmlns='jabber:iq:roster'><item jid='chiku@local'/><item jid='baraka@local'/></query>", "type='set'"))).toBe("bad-request");
    expect(cond(await c.iq("<query xmlns='jabber:iq:roster'><item jid='chiku@local'><group>a</group><group>a</group></item></query>", "type='set'"))).toBe("bad-request");
    expect(cond(await c.iq("<query xmlns='jabber:iq:roster'><item jid='chiku@local'><group></group></item></query>", "type='set'"))).toBe("not-acceptable");
    expect(cond(await c.iq(`<query xmlns='jabber:iq:roster'><item jid='chiku@local'><group>${"g".repeat(40)}</group></item></query>`, "type='set'"))).toBe("not-acceptable");
    expect(cond(await c.iq("<query xmlns='jabber:iq:roster'><item jid='chiku@local' name='two words'/></query>", "type='set'"))).toBe("not-acceptable");
    expect(cond(await c.iq("<query xmlns='jabber:iq:roster'><item jid='amara@local'/></query>", "type='set'"))).toBe("not-allowed");
    expect(cond(await c.iq("<query xmlns='jabber:iq:roster'><item jid='nobody@local' subscription='remove'/></query>", "type='set'"))).toBe("item-not-found");
    // remove: a push with subscription='remove'; the person stays known (nearby), not a buddy
    const removed = pushTo(d, "chiku@local", (i) => i.attrs.subscription === "remove");
    expect((await c.iq("<query xmlns='jabber:iq:roster'><item jid='chiku@local' subscription='remove'/></query>", "type='set'")).attrs.type).toBe("result");
    await removed;
    expect((await mailbox.buddies()).map((b) => b.name)).toEqual(["baraka"]);
    // a change made with the pigeon command (the Mailbox) is pushed too
    const fromCli = pushTo(d, "baraka@local", (i) => i.attrs.name === "bara");
    await mailbox.renameBuddy("baraka", "bara");
    await fromCli;
    await mailbox.renameBuddy("bara", "");
    c.sock.destroy();
    d.sock.destroy();
  });

  it("blocks (XEP-0191) from the buddy list's blocked set: list, block, push, messages refused, unblock", async () => {
    const c = await login(port, password, "blocker");
    const d = await login(port, password, "other");
    const list = async (x: RawClient) =>
      ((child(await x.iq("<blocklist xmlns='urn:xmpp:blocking'/>", "type='get'"), "blocklist")?.children ?? []) as XmlElement[]).map((i) => i.attrs.jid);
    expect(await list(c)).toEqual([]);
    expect(await list(d)).toEqual([]); // d asked: it gets the pushes
    d.send("<presence/>");
    await d.next((st) => st.name === "presence" && st.attrs.from === "baraka@local/pigeon");
    const pushed = d.next((st) => st.name === "iq" && st.attrs.type === "set" && !!child(st, "block", "urn:xmpp:blocking"));
    const gone = d.next((st) => st.name === "presence" && st.attrs.from === "baraka@local/pigeon" && st.attrs.type === "unavailable");
    expect((await c.iq("<block xmlns='urn:xmpp:blocking'><item jid='baraka@local'/></block>", "type='set'")).attrs.type).toBe("result");
    expect((child(await pushed, "block")!.children as XmlElement[]).map((i) => i.attrs.jid)).toEqual(["baraka@local"]);
    await gone; // a blocked contact is shown unavailable
    expect(await list(c)).toEqual(["baraka@local"]);
    expect((await mailbox.blocked()).map((p) => p.address)).toEqual(["baraka@local"]);
    // a message to them is refused, saying why (§3.5)
    c.send("<message to='baraka@local' type='chat' id='b1'><body>hi</body></message>");
    const refused = await c.next((st) => st.name === "message" && st.attrs.type === "error" && st.attrs.id === "b1");
    expect(toXml(refused)).toContain("not-acceptable");
    expect(toXml(refused)).toContain('<blocked xmlns="urn:xmpp:blocking:errors"/>');
    const cond = (r: XmlElement) => (child(r, "error")?.children[0] as XmlElement | undefined)?.name;
    expect(cond(await c.iq("<block xmlns='urn:xmpp:blocking'><item jid='nobody@local'/></block>", "type='set'"))).toBe("item-not-found");
    // unblocking everyone (no items): pushed, and their presence is back
    const unpushed = d.next((st) => st.name === "iq" && st.attrs.type === "set" && !!child(st, "unblock", "urn:xmpp:blocking"));
    const back = d.next((st) => st.name === "presence" && st.attrs.from === "baraka@local/pigeon" && st.attrs.type === undefined);
    expect((await c.iq("<unblock xmlns='urn:xmpp:blocking'/>", "type='set'")).attrs.type).toBe("result");
    expect((child(await unpushed, "unblock")!.children as XmlElement[]).map((i) => i.attrs.jid)).toEqual(["baraka@local"]);
    await back;
    expect(await list(c)).toEqual([]);
    c.sock.destroy();
    d.sock.destroy();
  });

  it("does not show a class channel's messages as a chat with their author (they are in its room, muc.ts)", async () => {
    const tdir = mkdtempSync(join(tmpdir(), "pigeon-xmpp-teacher-"));
    const teacher = new Mailbox({ identity: generateIdentity("mwalimu"), storage: fileStorage(tdir) });
    const tsync = new SyncEngine(teacher);
    const [lt, la] = memoryLinkPair(contactCard(teacher.identity), contactCard(mailbox.identity));
    tsync.attach(lt);
    sync.attach(la);
    try {
      for (let i = 0; i < 500 && !teacher.contacts().some((c) => c.name === "amara"); i++) await new Promise((r) => setTimeout(r, 10));
      await mailbox.addBuddy("mwalimu");
      await teacher.createChannel("club");
      await teacher.addToChannel("club", { addresses: ["amara"] });
      await teacher.sendToChannel("club", "channel hello");
      for (let i = 0; i < 500 && !(await mailbox.messages({})).some((m) => m.body === "channel hello"); i++) await new Promise((r) => setTimeout(r, 10));
      await teacher.send("amara", "direct hello");
      for (let i = 0; i < 500 && !(await mailbox.messages({})).some((m) => m.body === "direct hello"); i++) await new Promise((r) => setTimeout(r, 10));
      const c = await login(port, password, "channels");
      c.send("<presence/>");
      const first = await c.next((st) => st.name === "message" && childText(st, "body") !== undefined);
      expect(childText(first, "body")).toBe("direct hello");
      c.sock.destroy();
    } finally {
      lt.close("done");
      tsync.close();
      await teacher.close();
      rmSync(tdir, { recursive: true, force: true });
    }
  });

  it("pushes a buddy-list change that arrives from another device of the person", async () => {
    // amara's tablet, certified by her first device (the node here), linked to it
    const fresh = newDeviceIdentity();
    const tabletId = identityFromGrant(fresh, {
      name: "amara", home: "local", person: mailbox.me, certificate: certifyDevice(mailbox.identity, fresh.signing.publicKey),
      sealing: mailbox.identity.sealing, previousSealing: [], card: encodeCard(mailbox.identity),
    });
    const tabletDir = mkdtempSync(join(tmpdir(), "pigeon-xmpp-tablet-"));
    const tablet = new Mailbox({ identity: tabletId, storage: fileStorage(tabletDir) });
    const tabletSync = new SyncEngine(tablet);
    const c = await login(port, password, "desk2");
    const items = (r: XmlElement) => (child(r, "query")?.children ?? []) as XmlElement[];
    await c.iq("<query xmlns='jabber:iq:roster'/>", "type='get'");
    const peer = (id: typeof tabletId) => ({ ...contactCard(id), device: id.signing.publicKey });
    const [there, here] = memoryLinkPair(peer(tabletId), peer(mailbox.identity)); // [held by the tablet, held here]
    sync.attach(here);
    tabletSync.attach(there);
    // on the tablet the child adds a classmate met there, with a name
    tablet.rememberContact(contactCard(generateIdentity("dede")), "met");
    await tablet.addBuddy("dede");
    await tablet.renameBuddy("dede", "dd");
    const push = await c.next((st) => st.name === "iq" && st.attrs.type === "set" && items(st).some((i) => i.attrs.jid === "dede@local" && i.attrs.name === "dd"), 10_000);
    expect(child(push, "query")!.attrs.ver).toBe(child(await c.iq("<query xmlns='jabber:iq:roster'/>", "type='get'"), "query")!.attrs.ver);
    expect((await mailbox.buddies()).find((b) => b.name === "dede")).toMatchObject({ petname: "dd" });
    here.close("done");
    tabletSync.close();
    await tablet.close();
    rmSync(tabletDir, { recursive: true, force: true });
    c.sock.destroy();
  });

  it("speaks RFC 7395 over WebSocket the way Converse's Strophe expects", async () => {
    const ws = new WebSocket(wsUrl, "xmpp");
    const frames: string[] = [];
    await new Promise((r) => ws.once("open", r));
    expect(ws.protocol).toBe("xmpp");
    ws.on("message", (d) => frames.push(d.toString()));
    const wait = async (pred: (f: string) => boolean) => {
      for (let i = 0; i < 100; i++) {
        const f = frames.find(pred);
        if (f) return f;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no frame; got ${frames.join("\n")}`);
    };
    ws.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="local" version="1.0"/>`);
    const open = await wait((f) => f.startsWith("<open "));
    expect(open).toMatch(/^<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" from="local" id="[0-9a-f]+" version="1.0" xml:lang="en"\/>$/);
    const features = await wait((f) => f.includes("features"));
    expect(features.startsWith('<stream:features xmlns:stream="http://etherx.jabber.org/streams"')).toBe(true);
    // two elements in one message are not allowed
    ws.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-1">${Buffer.from(new ScramClient("sha1", "amara", password).first()).toString("base64")}</auth><r/>`);
    await new Promise((r) => ws.once("close", r));
    expect(frames[frames.length - 1]).toBe('<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />');
    expect(frames.join("")).toContain("not-well-formed");
  });

  it("passes typing states live to and from the buddy's laptop only (XEP-0085), never from someone else", async () => {
    const c = await login(port, password, "typing");
    c.send("<presence/>");
    await c.next((s) => s.name === "presence" && s.attrs.from === "baraka@local/pigeon");
    const [link, barakaSide] = memoryLinkPair(contactCard(mailbox.identity), contactCard(baraka));
    const heard: string[] = [];
    barakaSide.onFrame((bytes) => {
      const f = decodeFrame(bytes);
      if (f.type === "chat-state") heard.push(f.state);
    });
    sync.attach(link);
    // the client types to baraka: the frame goes over the link; to a stranger: nothing
    c.send("<message to='baraka@local' type='chat' id='t1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
    c.send("<message to='zola@local' type='chat' id='t2'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>");
    await new Promise((r) => setTimeout(r, 200));
    expect(heard).toEqual(["composing"]);
    // baraka's laptop says paused: the client is told, from the resource baraka's presence comes from
    barakaSide.send(encodeFrame({ type: "chat-state", state: "paused" }));
    const shown = await c.next((s) => s.name === "message" && s.attrs.from === "baraka@local/pigeon", 1000);
    expect(child(shown, "paused", "http://jabber.org/protocol/chatstates")).toBeDefined();
    expect(child(shown, "body")).toBeUndefined();
    // a laptop met nearby that is not a buddy: its states are not shown
    const zola = generateIdentity("zola");
    const [zolaLink, zolaSide] = memoryLinkPair(contactCard(mailbox.identity), contactCard(zola));
    sync.attach(zolaLink);
    zolaSide.send(encodeFrame({ type: "chat-state", state: "gone" }));
    await new Promise((r) => setTimeout(r, 300));
    expect(c.raw).not.toContain("<gone ");
    zolaLink.close("done");
    // (last in this file: it leaves two people called baraka@local)
    // a laptop that only calls itself baraka (another key) is not baraka: its states are not shown
    const impostor = generateIdentity("baraka");
    const [fakeLink, fakeSide] = memoryLinkPair(contactCard(mailbox.identity), contactCard(impostor));
    sync.attach(fakeLink);
    fakeSide.send(encodeFrame({ type: "chat-state", state: "composing" }));
    await new Promise((r) => setTimeout(r, 300));
    expect(c.raw).not.toMatch(/<composing xmlns="http:\/\/jabber.org\/protocol\/chatstates"\/>/);
    fakeLink.close("done");
    link.close("done");
    c.sock.destroy();
  });
});
