// Channel membership: the statement's travel form (sealed, signed, checked) and the fold's merge
// rules, property-tested over random histories written by several admins apart and merged in any order.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "./bytes.js";
import {
  ChannelError, channelMemberLists, channelSecretFrom, channelStatement, chooseChannelKey, encodeOp, foldChannel, memberListKey, isAdmin, isMember, newChannelOps, opId,
  readChannelStatement, type ChannelOp, type ChannelState, type HeldOp,
} from "./channel.js";
import { randomBytes } from "./crypto.js";
import { decodeEnvelope, signEnvelope, EnvelopeKind } from "./envelope.js";
import { generateIdentity, type Identity } from "./identity.js";

const AT = Date.UTC(2026, 10, 27, 9);
const teacher = generateIdentity("mwalimu", "kisumu-primary");
const people = ["amara", "baraka", "esi", "juma", "wanjiru", "otieno"].map((n) => generateIdentity(n, "kisumu-primary"));
const card = (p: Identity) => ({ key: p.person, sealKey: p.sealing.publicKey, name: p.name, home: p.home });

/** Ops held as a laptop holds them, without the envelope (the fold never sees one). */
function held(op: ChannelOp, depth: number): HeldOp {
  return { ...op, id: toHex(opId(encodeOp(op))), depth };
}

/** A replica of the channel on one laptop: writes ops on top of what it has seen. */
/** What each op's author had seen when writing it (for the property's own check of the rules). */
const sawWhenWritten = new Map<string, Set<string>>();

class Replica {
  ops = new Map<string, HeldOp>();
  constructor(readonly who: Identity, start: HeldOp[]) {
    for (const o of start) this.ops.set(o.id, o);
  }
  state(): ChannelState {
    return foldChannel(this.ops.values())!;
  }
  write(action: ChannelOp["action"]): HeldOp {
    const st = this.state();
    const parents = st.heads.map((h) => Uint8Array.from(Buffer.from(h, "hex")));
    const depth = 1 + Math.max(...st.heads.map((h) => this.ops.get(h)!.depth));
    const o = held({ channel: st.channel, author: this.who.person, at: AT, parents, action }, depth);
    sawWhenWritten.set(o.id, new Set(this.ops.keys()));
    this.ops.set(o.id, o);
    return o;
  }
  merge(other: Replica): void {
    for (const o of other.ops.values()) this.ops.set(o.id, o);
  }
}

function started(): HeldOp[] {
  const { ops } = newChannelOps(teacher, "5B science", AT);
  return ops.map((o, i) => held(o, i));
}

describe("a channel's membership statements", () => {
  it("travel sealed: a carrier sees no name or title; a newcomer opens the secret from its box and reads the op", () => {
    const { secret, ops } = newChannelOps(teacher, "5B science", AT);
    const create = channelStatement(teacher, ops[0]!, secret, 0, [teacher.sealing.publicKey], AT);
    const back = decodeEnvelope(create.bytes);
    expect(Buffer.from(back.bytes).includes(Buffer.from("5B science"))).toBe(false);
    expect(Buffer.from(back.bytes).includes(Buffer.from("mwalimu"))).toBe(false);
    const amara = people[0]!;
    const add: ChannelOp = { channel: ops[0]!.channel, author: teacher.person, at: AT, parents: [opId(encodeOp(ops[0]!))], action: { type: "add", members: [card(amara)] } };
    const env = channelStatement(teacher, add, secret, 1, [amara.sealing.publicKey], AT);
    const s = channelSecretFrom(decodeEnvelope(env.bytes), [amara.sealing.secretKey]);
    expect(s).toEqual(secret);
    expect(channelSecretFrom(env, [people[1]!.sealing.secretKey])).toBeNull();
    const op = readChannelStatement(decodeEnvelope(env.bytes), s!);
    expect(op.action).toEqual({ type: "add", members: [card(amara)] });
    expect(readChannelStatement(back, secret).action.type).toBe("create");
  });

  it("refuses a change re-signed by someone else, a damaged one, and a create that does not match the channel id", () => {
    const { secret, ops } = newChannelOps(teacher, "5B science", AT);
    const create = channelStatement(teacher, ops[0]!, secret, 0, [], AT);
    // a member who knows the secret wraps the teacher's op in an envelope of their own
    const juma = people[3]!;
    const stolen = signEnvelope(juma, { kind: EnvelopeKind.Statement, conversation: ops[0]!.channel, segment: 0, recipients: [], created: AT, lifetime: 3600, keyId: new Uint8Array(8) }, create.payload);
    expect(() => readChannelStatement(stolen, secret)).toThrow(/claims another author/);
    const damaged = Uint8Array.from(create.bytes);
    damaged[damaged.length - 70] ^= 1;
    expect(() => readChannelStatement(decodeEnvelope(damaged), secret)).toThrow(ChannelError);
    expect(() => readChannelStatement(create, randomBytes(32))).toThrow(/does not open/);
    // a create under juma's name for the teacher's channel id
    const fake: ChannelOp = { ...ops[0]!, author: juma.person, action: { ...(ops[0]!.action as { type: "create"; owner: Uint8Array; seed: Uint8Array; title: string }), owner: juma.person } };
    expect(() => readChannelStatement(channelStatement(juma, fake, secret, 0, [], AT), secret)).toThrow(/does not match its owner/);
  });
});

describe("the membership fold", () => {
  it("the owner adds, names an admin, who adds and removes students; admins cannot name admins or close", () => {
    const t = new Replica(teacher, started());
    const [amara, baraka, esi] = people;
    t.write({ type: "add", members: [card(amara!), card(baraka!), card(esi!)] });
    t.write({ type: "admin", member: amara!.person, admin: true });
    const a = new Replica(amara!, [...t.ops.values()]);
    a.write({ type: "remove", members: [esi!.person] });
    const bad1 = a.write({ type: "admin", member: baraka!.person, admin: true });
    const bad2 = a.write({ type: "close" });
    const st = a.state();
    expect(st.title).toBe("5B science");
    expect(st.members.map((m) => m.name).sort()).toEqual(["amara", "baraka", "mwalimu"]);
    expect(isAdmin(st, amara!.person)).toBe(true);
    expect(isAdmin(st, baraka!.person)).toBe(false);
    expect(st.closed).toBe(false);
    expect(st.epoch).toBe(1);
    expect(st.refused).toEqual(expect.arrayContaining([
      { id: bad1.id, reason: "only the owner names admins" }, { id: bad2.id, reason: "only the owner closes a channel" },
    ]));
  });

  it("a student's op is refused, and so is an admin's made while the owner was demoting them", () => {
    const t = new Replica(teacher, started());
    const [amara, baraka, esi, juma] = people;
    t.write({ type: "add", members: [card(amara!), card(baraka!), card(esi!)] });
    const b = new Replica(baraka!, [...t.ops.values()]);
    const forged = b.write({ type: "remove", members: [amara!.person] });
    t.write({ type: "admin", member: amara!.person, admin: true });
    const a = new Replica(amara!, [...t.ops.values()]);
    const before = a.write({ type: "add", members: [card(juma!)] });
    t.merge(a); // the teacher saw amara's add
    t.write({ type: "admin", member: amara!.person, admin: false });
    const concurrent = a.write({ type: "remove", members: [esi!.person] }); // amara had not heard yet
    t.merge(a);
    t.merge(b);
    const st = t.state();
    expect(st.refused).toEqual(expect.arrayContaining([
      { id: forged.id, reason: "not an admin of the channel when it was made" },
      { id: concurrent.id, reason: "made while the owner was taking away the author's admin rights" },
    ]));
    expect(st.refused.some((r) => r.id === before.id)).toBe(false);
    expect(isMember(st, juma!.person)).toBe(true);
    expect(isMember(st, esi!.person)).toBe(true);
    expect(isAdmin(st, amara!.person)).toBe(false);
  });

  it("a removal and an add made apart: the removal wins; an add after seeing the removal brings them back", () => {
    const t = new Replica(teacher, started());
    const [amara, baraka] = people;
    t.write({ type: "add", members: [card(amara!), card(baraka!)] });
    t.write({ type: "admin", member: amara!.person, admin: true });
    const a = new Replica(amara!, [...t.ops.values()]);
    t.write({ type: "remove", members: [baraka!.person] });
    a.write({ type: "add", members: [card(baraka!)] });
    t.merge(a);
    expect(isMember(t.state(), baraka!.person)).toBe(false);
    t.write({ type: "add", members: [card(baraka!)] });
    expect(isMember(t.state(), baraka!.person)).toBe(true);
  });

  it("ops whose parents have not arrived wait, and count once they do", () => {
    const t = new Replica(teacher, started());
    const [amara, baraka] = people;
    const o1 = t.write({ type: "add", members: [card(amara!)] });
    const o2 = t.write({ type: "add", members: [card(baraka!)] });
    const st = foldChannel([...t.ops.values()].filter((o) => o.id !== o1.id))!;
    expect(st.waiting).toEqual([o2.id]);
    expect(isMember(st, baraka!.person)).toBe(false);
    expect(isMember(foldChannel(t.ops.values())!, baraka!.person)).toBe(true);
  });

  it("a removal means a new key: the old member list's key is no longer chosen", () => {
    const t = new Replica(teacher, started());
    const [amara, baraka] = people;
    t.write({ type: "add", members: [card(amara!), card(baraka!)] });
    const before = t.state().members.map((m) => m.key);
    const k1 = { keyId: randomBytes(8), members: before };
    expect(chooseChannelKey(t.state(), [k1])).toBe(k1);
    t.write({ type: "remove", members: [baraka!.person] });
    expect(chooseChannelKey(t.state(), [k1])).toBeNull();
    const k2 = { keyId: randomBytes(8), members: [teacher.person, amara!.person] };
    expect(chooseChannelKey(t.state(), [k1, k2])).toBe(k2);
  });

  it("the member lists a channel ever had: not a removed member with someone added after the removal", () => {
    const t = new Replica(teacher, started());
    const [amara, baraka, esi] = people;
    t.write({ type: "add", members: [card(amara!), card(baraka!)] });
    t.write({ type: "remove", members: [baraka!.person] });
    t.write({ type: "add", members: [card(esi!)] });
    const lists = channelMemberLists(t.ops.values())!;
    const list = (...ps: Identity[]) => memberListKey(ps.map((p) => p.person));
    expect(lists.has(list(teacher, amara!, baraka!))).toBe(true); // before the removal
    expect(lists.has(list(teacher, amara!))).toBe(true);
    expect(lists.has(list(teacher, amara!, esi!))).toBe(true); // now
    // what baraka would seal a key of his own to, after his removal: never the channel's list
    expect(lists.has(list(teacher, amara!, baraka!, esi!))).toBe(false);
    expect(lists.has(list(baraka!, esi!))).toBe(false);
    // ops written apart by two admins, too many ways to check in the work allowed: nothing is refused (undefined)
    t.write({ type: "admin", member: amara!.person, admin: true });
    const a = new Replica(amara!, [...t.ops.values()]);
    t.write({ type: "add", members: [card(people[3]!)] });
    a.write({ type: "add", members: [card(people[4]!)] });
    t.merge(a);
    expect(channelMemberLists(t.ops.values())).toBeDefined();
    expect(channelMemberLists(t.ops.values(), {}, 10)).toBeUndefined();
    // past 64 people the fold leaves the latest added out: no list is refused then either
    const big = new Replica(teacher, started());
    big.write({ type: "add", members: Array.from({ length: 64 }, (_, i) => card(generateIdentity(`child${i}`, "kisumu-primary"))) });
    expect(channelMemberLists(big.ops.values())).toBeUndefined();
  });

  it("property: for ops written one after the other, the member lists are exactly the folds of each prefix", { timeout: 180_000 }, () => {
    const step = fc.record({
      who: fc.nat(2),
      kind: fc.constantFrom("add", "add", "remove", "admin", "demote", "close"),
      targets: fc.array(fc.nat(people.length - 1), { minLength: 1, maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 0, maxLength: 25 }), (steps) => {
        // one chain: every op written on top of all the others (the teacher, or an admin, in turn)
        const r = new Replica(teacher, started());
        for (const s of steps) {
          const ts = s.targets.map((i) => people[i]!);
          const action: ChannelOp["action"] =
            s.kind === "add" ? { type: "add", members: ts.map(card) }
            : s.kind === "remove" ? { type: "remove", members: ts.map((p) => p.person) }
            : s.kind === "admin" || s.kind === "demote" ? { type: "admin", member: ts[0]!.person, admin: s.kind === "admin" }
            : { type: "close" };
          const who = s.who === 0 ? teacher : people[s.who - 1]!;
          const o = new Replica(who, [...r.ops.values()]).write(action);
          r.ops.set(o.id, o);
        }
        const chain = [...r.ops.values()].sort((a, b) => a.depth - b.depth);
        const prefixes = new Set(chain.map((_, i) => memberListKey(foldChannel(chain.slice(0, i + 1))!.members.map((m) => m.key))));
        expect(channelMemberLists(chain)).toEqual(prefixes);
      }),
      { numRuns: 150 },
    );
  });

  it("the school's no-student-groups rule: a student's channel has no members", () => {
    const s = new Replica(people[0]!, []);
    const { ops } = newChannelOps(people[0]!, "football", AT);
    for (const [i, o] of ops.entries()) s.ops.set(held(o, i).id, held(o, i));
    expect(foldChannel(s.ops.values())!.members).toHaveLength(2 - 1);
    const st = foldChannel(s.ops.values(), { mayOwn: () => false })!;
    expect(st.members).toEqual([]);
    expect(st.refused[0]!.reason).toMatch(/does not allow/);
  });

  it("property: replicas that write apart and merge in any order agree, and agree with the fold of the union", { timeout: 180_000 }, () => {
    let givenUp = 0;
    const actors = [teacher, ...people.slice(0, 3)];
    const step = fc.record({
      who: fc.nat(actors.length - 1),
      kind: fc.constantFrom("add", "add", "remove", "remove", "admin", "demote", "close", "sync", "sync"),
      target: fc.nat(people.length - 1),
      peer: fc.nat(actors.length - 1),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(1000), { minLength: 5, maxLength: 5 }), (steps, shuffle) => {
        // the teacher adds everyone and names two admins before the class scatters
        const t0 = new Replica(teacher, started());
        t0.write({ type: "add", members: people.map(card) });
        t0.write({ type: "admin", member: people[0]!.person, admin: true });
        t0.write({ type: "admin", member: people[1]!.person, admin: true });
        const start = [...t0.ops.values()];
        const reps = actors.map((a) => new Replica(a, start));
        // every member list a replica folded on the way: an honest key may be sealed to any of them
        const seen = new Set<string>([memberListKey(reps[0]!.state().members.map((m) => m.key))]);
        for (const s of steps) {
          const r = reps[s.who]!;
          const target = people[s.target]!;
          if (s.kind === "sync") {
            r.merge(reps[s.peer]!);
            seen.add(memberListKey(r.state().members.map((m) => m.key)));
            continue;
          }
          const action: ChannelOp["action"] =
            s.kind === "add" ? { type: "add", members: [card(target)] }
            : s.kind === "remove" ? { type: "remove", members: [target.person] }
            : s.kind === "admin" || s.kind === "demote" ? { type: "admin", member: target.person, admin: s.kind === "admin" }
            : { type: "close" };
          r.write(action);
          seen.add(memberListKey(r.state().members.map((m) => m.key)));
        }
        const union = new Map<string, HeldOp>();
        for (const r of reps) for (const o of r.ops.values()) union.set(o.id, o);
        const all = [...union.values()];
        // no honest key is refused: every list a replica had is one the union's ops could have given
        const lists = channelMemberLists(all);
        if (lists) for (const l of seen) expect(lists.has(l)).toBe(true);
        else givenUp++;
        const reference = summary(foldChannel(all)!);
        // the same set in another order
        const shuffled = all.map((o, i) => ({ o, k: (shuffle[i % 5]! * 7919 + i * 104729) % 1000003 })).sort((a, b) => a.k - b.k).map((x) => x.o);
        expect(summary(foldChannel(shuffled)!)).toEqual(reference);
        // every replica, once it merged everyone (in its own order), agrees
        for (const r of reps) {
          for (const other of [...reps].reverse()) r.merge(other);
          expect(summary(r.state())).toEqual(reference);
        }
        // invariants: the owner is always in and an admin; admins are members; at most 64
        const st = foldChannel(all)!;
        expect(isAdmin(st, teacher.person)).toBe(true);
        expect(st.members.length).toBeLessThanOrEqual(64);
        expect(st.waiting).toEqual([]);
        // the removal wins: whoever the owner removed is out unless a counted add saw that removal
        const refused = new Set(st.refused.map((r) => r.id));
        for (const p of people) {
          const removals = all.filter((o) => o.author === teacher.person && o.action.type === "remove" && o.action.members.some((m) => toHex(m) === toHex(p.person)));
          const adds = all.filter((o) => !refused.has(o.id) && o.action.type === "add" && o.action.members.some((m) => toHex(m.key) === toHex(p.person)));
          const unanswered = removals.some((r) => !adds.some((a) => sawWhenWritten.get(a.id)!.has(r.id)));
          if (unanswered) expect(isMember(st, p.person)).toBe(false);
          if (adds.length === 0) expect(isMember(st, p.person)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
    // histories of 30 steps by four writers apart are far busier than a class's: nearly all are still checked
    expect(givenUp).toBeLessThan(15);
  });
});

function summary(st: ChannelState) {
  return {
    members: st.members.map((m) => `${m.name}${m.admin ? "*" : ""}${m.owner ? "!" : ""}`),
    closed: st.closed, epoch: st.epoch, heads: st.heads, refused: [...st.refused].sort((a, b) => (a.id < b.id ? -1 : 1)),
  };
}
