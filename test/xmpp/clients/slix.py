#!/usr/bin/python3
# A slixmpp (Debian python3-slixmpp) client driven by the tests: one scenario per run, parameters as
# JSON in argv[1] (or on stdin when argv[1] is "-"), one JSON object per line on stdout ("event" lines while it runs, a final "result").
# The same script runs against a Pigeon node and against Prosody, so a failure can be told apart as
# the server's or the script's.
import asyncio
import json
import ssl
import sys
import time

import slixmpp

# "-": the parameters come on stdin (a long body does not fit in one argument)
P = json.loads(sys.stdin.read() if sys.argv[1] == "-" else sys.argv[1])
out_lock = None


def emit(**kw):
    print(json.dumps(kw), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        kwargs = {}
        if P.get("mech"):
            kwargs["sasl_mech"] = P["mech"]
        super().__init__(P["jid"], P["password"], **kwargs)
        for plugin in ["xep_0030", "xep_0199", "xep_0184", "xep_0333", "xep_0359", "xep_0313", "xep_0203", "xep_0280", "xep_0191", "xep_0308", "xep_0085"]:
            self.register_plugin(plugin)
        if P.get("sm"):
            self.register_plugin("xep_0198")
        # against Pigeon the receipts come from Pigeon itself; against Prosody the reading client sends them
        self["xep_0184"].auto_ack = bool(P.get("auto_ack"))
        if P.get("tls") == "starttls":
            ctx = ssl.create_default_context(cafile=P["cafile"])
            self.ssl_context = ctx
        self.result = {}
        self.messages = []
        self.receipts = []
        self.markers = []
        self.states = []
        self.failed_auth = False
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", lambda _: self.finish({"ok": False, "error": "no usable SASL mechanism"}))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("chatstate", self.on_chatstate)
        self.add_event_handler("receipt_received", lambda m: self.receipts.append(m["receipt"]))
        self.add_event_handler("marker_displayed", lambda m: self.markers.append(m["displayed"]["id"]))
        self.add_event_handler("stream_error", lambda e: emit(event="stream_error", condition=e["condition"], text=e["text"]))
        self.done = asyncio.get_event_loop().create_future()

    def on_failed_auth(self, _):
        self.failed_auth = True
        self.finish({"ok": False, "error": "auth failed"})

    def on_message(self, m):
        if m["type"] == "error" or not m["body"]:
            return
        entry = {
            "from": str(m["from"].bare),
            "body": m["body"],
            "id": m["id"],
            "stanza_id": m["stanza_id"]["id"] if m.xml.find("{urn:xmpp:sid:0}stanza-id") is not None else None,
            "delay": str(m["delay"]["stamp"]) if m.xml.find("{urn:xmpp:delay}delay") is not None else None,
            "markable": m.xml.find("{urn:xmpp:chat-markers:0}markable") is not None,
            "oob": m.xml.findtext("{jabber:x:oob}x/{jabber:x:oob}url"),
            "replace": m.xml.find("{urn:xmpp:message-correct:0}replace").get("id")
            if m.xml.find("{urn:xmpp:message-correct:0}replace") is not None else None,
        }
        self.messages.append(entry)
        emit(event="message", **entry)

    def on_chatstate(self, m):
        entry = {"from": str(m["from"].bare), "state": m["chat_state"], "body": m["body"] or None}
        self.states.append(entry)
        emit(event="chatstate", **entry)

    def finish(self, result):
        if not self.done.done():
            self.done.set_result(result)

    async def wait_for(self, cond, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return True
            await asyncio.sleep(0.05)
        return cond()

    async def start(self, _):
        try:
            if getattr(self, "started", False):
                return
            self.started = True
            emit(event="session_start", jid=str(self.boundjid))
            res = await getattr(self, "s_" + P["scenario"])()
            self.finish(res)
        except Exception as e:  # report, do not hang
            self.finish({"ok": False, "error": f"{type(e).__name__}: {e}"})

    # ---- scenarios ----

    async def s_login(self):
        roster = await self.get_roster()
        ver = roster["roster"]["ver"]
        items = sorted(str(j) for j in self.client_roster.keys() if str(j) != self.boundjid.bare)
        info = await self["xep_0030"].get_info(jid=self.boundjid.domain)
        account = await self["xep_0030"].get_info(jid=self.boundjid.bare)
        await self["xep_0199"].ping(jid=self.boundjid.domain, timeout=5)
        # a second roster fetch with the version: an empty result (or the same roster)
        again = await self.get_roster()
        unknown = self.make_iq_get(queryxmlns="urn:example:nothing", ito=self.boundjid.domain)
        try:
            await unknown.send(timeout=5)
            unknown_answer = "result"
        except slixmpp.exceptions.IqError as e:
            unknown_answer = e.iq["error"]["condition"]
        return {
            "ok": True,
            "jid": str(self.boundjid),
            "mech": self["feature_mechanisms"].mech.name if self["feature_mechanisms"].mech else None,
            "tls": self.transport is not None and self.transport.get_extra_info("ssl_object") is not None,
            "roster": items,
            "ver": ver,
            "ver_again": again["roster"]["ver"],
            "features": sorted(info["disco_info"]["features"]),
            "account_features": sorted(account["disco_info"]["features"]),
            "unknown_iq": unknown_answer,
        }

    async def s_advertised(self):
        # every feature the server and the account advertise, used the way a client uses it: a feature
        # this script does not know how to use is reported as "unchecked" (the test wants none)
        from xml.etree import ElementTree as ET
        for plugin in ["xep_0092", "xep_0054"]:
            self.register_plugin(plugin)
        self.send_presence()
        info = await self["xep_0030"].get_info(jid=self.boundjid.domain)
        account = await self["xep_0030"].get_info(jid=self.boundjid.bare)

        def raw(payload, to=None):
            iq = self.Iq()
            iq["type"] = "get"
            if to:
                iq["to"] = to
            iq.append(ET.fromstring(payload))
            return iq.send(timeout=10)

        domain, bare = self.boundjid.domain, self.boundjid.bare
        uses = {
            "http://jabber.org/protocol/disco#info": lambda to: self["xep_0030"].get_info(jid=to),
            "http://jabber.org/protocol/disco#items": lambda to: self["xep_0030"].get_items(jid=to),
            "urn:xmpp:ping": lambda to: self["xep_0199"].send_ping(jid=to, timeout=10),
            "urn:xmpp:carbons:2": lambda to: self["xep_0280"].enable(timeout=10),
            "jabber:iq:version": lambda to: self["xep_0092"].get_version(jid=to),
            "vcard-temp": lambda to: self["xep_0054"].get_vcard(jid=bare, cached=False, timeout=10),
            "jabber:iq:private": lambda to: raw("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"),
            "urn:xmpp:blocking": lambda to: self["xep_0191"].get_blocked(timeout=10),
            "jabber:iq:roster": lambda to: self.get_roster(timeout=10),
            "urn:xmpp:http:upload:0": lambda to: raw("<request xmlns='urn:xmpp:http:upload:0' filename='check.txt' size='4' content-type='text/plain'/>", to),
            "urn:xmpp:mam:2": lambda to: self["xep_0313"].retrieve(jid=bare, rsm={"max": 1}, timeout=10),
            # no request of their own: offline storage and stanza ids are shown by the delivery tests
            "msgoffline": None,
            "urn:xmpp:sid:0": None,
        }
        served = {}
        for where, feats in ((domain, info["disco_info"]["features"]), (bare, account["disco_info"]["features"])):
            for f in sorted(feats):
                use = uses.get(f, "unchecked")
                if use == "unchecked":
                    served[f] = "unchecked"
                    continue
                if use is None:
                    served[f] = "no request"
                    continue
                try:
                    await use(where)
                    served[f] = "result"
                except slixmpp.exceptions.IqError as e:
                    served[f] = e.iq["error"]["condition"]
                except Exception as e:
                    served[f] = f"{type(e).__name__}: {e}"
        return {"ok": True, "served": served, "identities": [list(i) for i in info["disco_info"]["identities"]]}

    async def s_send(self):
        errors = []
        self.add_event_handler("message_error", lambda m: errors.append(
            {"id": m["id"], "condition": m["error"]["condition"], "text": m["error"]["text"]}))
        self.send_presence()
        await self.get_roster()
        ids = []
        for body in P["bodies"]:
            m = self.make_message(mto=P["to"], mbody=body, mtype="chat")
            m["request_receipt"] = True
            m["markable"] = True
            ids.append(m["id"])
            m.send()
            await asyncio.sleep(0.01)
        # XEP-0308: {"index": i, "body": "..."} corrects the i-th message sent above (or "id": any id)
        for c in P.get("corrections", []):
            await asyncio.sleep(P.get("correction_delay", 0.3))
            m = self.make_message(mto=P["to"], mbody=c["body"], mtype="chat")
            m["replace"]["id"] = c["id"] if "id" in c else ids[c["index"]]
            m["request_receipt"] = True
            ids.append(m["id"])
            m.send()
        want = P.get("wait", "none")
        if want in ("received", "displayed"):
            await self.wait_for(lambda: set(ids) <= set(self.receipts), P.get("timeout", 30))
        if want == "displayed":
            await self.wait_for(lambda: set(ids[-1:]) <= set(self.markers), P.get("timeout", 30))
        if P.get("errors"):
            await self.wait_for(lambda: len(errors) >= P["errors"], P.get("timeout", 30))
        return {"ok": True, "ids": ids, "receipts": self.receipts, "markers": self.markers, "errors": errors}

    async def s_receive(self):
        self.send_presence()
        await self.get_roster()
        await self.wait_for(lambda: len(self.messages) >= P["count"], P.get("timeout", 30))
        if P.get("displayed") and self.messages:
            last = self.messages[-1]
            self["xep_0333"].send_marker(last["from"], last["id"], "displayed")
            await asyncio.sleep(0.5)
        if P.get("download"):
            # fetch each picture the way a client shows it: a GET of the OOB URL
            import base64, urllib.request
            for m in self.messages:
                if m.get("oob"):
                    with urllib.request.urlopen(m["oob"], timeout=10) as r:
                        m["content_type"] = r.headers.get("content-type")
                        m["data"] = base64.b64encode(r.read()).decode()
        return {"ok": len(self.messages) >= P["count"], "messages": self.messages}

    async def s_typing(self):
        # XEP-0085 as a client sends it: typing, a pause, typing again, then the message with <active/>
        self.send_presence()
        await self.get_roster()
        await asyncio.sleep(P.get("delay", 0))
        for state in P.get("states", ["composing", "paused", "composing"]):
            m = self.make_message(mto=P["to"], mtype="chat")
            m["chat_state"] = state
            m.send()
            await asyncio.sleep(P.get("gap", 0.4))
        if P.get("body"):
            m = self.make_message(mto=P["to"], mbody=P["body"], mtype="chat")
            m["chat_state"] = "active"
            m.send()
        await asyncio.sleep(P.get("linger", 0.5))
        return {"ok": True}

    async def s_watch(self):
        # waits for chat states (and messages) from others
        self.send_presence()
        await self.get_roster()
        await self.wait_for(lambda: len(self.states) >= P.get("states", 0) and len(self.messages) >= P.get("count", 0), P.get("timeout", 20))
        await asyncio.sleep(P.get("linger", 0))
        return {"ok": True, "states": self.states, "messages": self.messages}

    async def s_upload(self):
        # XEP-0363 as a client does it: find the service in disco (identity store/file, the feature, the
        # advertised max-file-size), refuse a bigger file before uploading, ask for a slot, PUT, then send
        # the URL with XEP-0066. (slixmpp 1.8's own upload_file stops at "Passing coroutines is forbidden"
        # on Python 3.11, in its disco helper: the same steps are written out here.)
        import base64, urllib.request
        self.register_plugin("xep_0066")
        self.send_presence()
        await self.get_roster()
        data = base64.b64decode(P["data"])
        # the server itself (Pigeon), else one of its disco items (Prosody's upload component)
        def is_upload(di):
            return any(i[0] == "store" and i[1] == "file" for i in di["identities"]) and "urn:xmpp:http:upload:0" in di["features"]
        service = self.boundjid.domain
        info = await self["xep_0030"].get_info(jid=service, timeout=10)
        if not is_upload(info["disco_info"]):
            items = await self["xep_0030"].get_items(jid=self.boundjid.domain, timeout=10)
            for item in items["disco_items"]["items"]:
                info = await self["xep_0030"].get_info(jid=item[0], timeout=10)
                if is_upload(info["disco_info"]):
                    service = item[0]
                    break
            else:
                return {"ok": True, "error": "UploadServiceNotFound"}
        limit = None
        for form in info.xml.iter("{jabber:x:data}x"):
            fields = {f.get("var"): f.findtext("{jabber:x:data}value") for f in form.iter("{jabber:x:data}field")}
            if fields.get("FORM_TYPE") == "urn:xmpp:http:upload:0" and fields.get("max-file-size"):
                limit = int(fields["max-file-size"])
        if P.get("respect_limit", True) and limit is not None and len(data) > limit:
            return {"ok": True, "error": f"FileTooBig: {len(data)} > {limit}", "limit": limit}
        iq = self.make_iq_get(ito=service)
        req = slixmpp.xmlstream.ET.SubElement(iq.xml, "{urn:xmpp:http:upload:0}request",
                                              {"filename": P["filename"], "size": str(len(data)), "content-type": P.get("type", "application/octet-stream")})
        try:
            res = await iq.send(timeout=10)
        except slixmpp.exceptions.IqError as e:
            return {"ok": True, "error": "slot refused: " + e.iq["error"]["condition"] + ": " + (e.iq["error"]["text"] or ""), "limit": limit}
        slot = res.xml.find("{urn:xmpp:http:upload:0}slot")
        put_el = slot.find("{urn:xmpp:http:upload:0}put")
        put = put_el.get("url")
        # the headers the slot asks for (XEP-0363 allows Authorization, Cookie and Expires; Prosody signs
        # its slots with Authorization), as clients copy them
        headers = {h.get("name"): (h.text or "") for h in put_el.iter("{urn:xmpp:http:upload:0}header")
                   if h.get("name", "").lower() in ("authorization", "cookie", "expires")}
        get = slot.find("{urn:xmpp:http:upload:0}get").get("url")

        def do_put():
            r = urllib.request.Request(put, data=data, method="PUT", headers={**headers, "Content-Type": P.get("type", "application/octet-stream")})
            with urllib.request.urlopen(r, timeout=10) as resp:
                return resp.status
        status = await asyncio.get_event_loop().run_in_executor(None, do_put)
        m = self.make_message(mto=P["to"], mbody=get, mtype="chat")
        m["oob"]["url"] = get
        m["request_receipt"] = True
        m.send()
        await self.wait_for(lambda: m["id"] in self.receipts, P.get("timeout", 20))
        return {"ok": True, "url": get, "put_status": status, "limit": limit, "service": str(service), "received": m["id"] in self.receipts}

    async def s_vcard_set(self):
        # XEP-0054/0153: the user's own vCard with a PHOTO, as Converse and Gajim store an avatar
        from slixmpp.xmlstream import ET
        iq = self.make_iq_set()
        card = ET.SubElement(iq.xml, "{vcard-temp}vCard")
        ET.SubElement(card, "{vcard-temp}FN").text = P.get("fn", "me")
        photo = ET.SubElement(card, "{vcard-temp}PHOTO")
        ET.SubElement(photo, "{vcard-temp}TYPE").text = P["type"]
        ET.SubElement(photo, "{vcard-temp}BINVAL").text = P["photo"]
        try:
            await iq.send(timeout=20)
            answer = "result"
        except slixmpp.exceptions.IqError as e:
            answer = e.iq["error"]["condition"] + ": " + (e.iq["error"]["text"] or "")
        if P.get("to") and answer == "result":
            self.send_message(mto=P["to"], mbody=P.get("body", "hello"), mtype="chat")
            await asyncio.sleep(1)
        return {"ok": True, "answer": answer}

    async def s_photo_hash(self):
        # XEP-0153: waits for a presence from `who` whose vcard-temp:x:update carries a photo hash
        hashes = []

        def on_presence(p):
            x = p.xml.find("{vcard-temp:x:update}x")
            if str(p["from"].bare) == P["who"] and x is not None:
                hashes.append(x.findtext("{vcard-temp:x:update}photo") or "")
                emit(event="photo", hash=hashes[-1])
        self.add_event_handler("presence", on_presence)
        self.send_presence()
        await self.get_roster()
        await self.wait_for(lambda: any(hashes), P.get("timeout", 20))
        return {"ok": True, "hashes": hashes}

    async def s_vcard_get(self):
        # asks for someone's vCard until it has a PHOTO (or the time is up)
        end = time.time() + P.get("timeout", 20)
        while True:
            iq = self.make_iq_get(ito=P["who"])
            iq.xml.append(slixmpp.xmlstream.ET.Element("{vcard-temp}vCard"))
            res = await iq.send(timeout=10)
            card = res.xml.find("{vcard-temp}vCard")
            photo = card.find("{vcard-temp}PHOTO") if card is not None else None
            if photo is not None or time.time() > end:
                break
            await asyncio.sleep(0.5)
        return {"ok": True,
                "fn": card.findtext("{vcard-temp}FN") if card is not None else None,
                "type": photo.findtext("{vcard-temp}TYPE") if photo is not None else None,
                "photo": "".join((photo.findtext("{vcard-temp}BINVAL") or "").split()) if photo is not None else None}

    async def s_muc_shows(self):
        # how fresh each occupant's presence is (<show/> of their occupant presence): on joining, and
        # live, until each [nick, show] of "wait_shows" was seen ("" = available)
        self.register_plugin("xep_0045")
        self.send_presence()
        await self.get_roster()
        room = P["room"]
        shows = []
        waiting = [tuple(w) for w in P.get("wait_shows", [])]
        seen_all = asyncio.get_event_loop().create_future()

        def on_presence(pres):
            if pres["from"].bare != room or pres["type"] == "unavailable":
                return
            entry = [pres["from"].resource, pres["show"] or "", pres["status"] or ""]
            shows.append(entry)
            emit(event="show", nick=entry[0], show=entry[1], status=entry[2])
            if (entry[0], entry[1]) in waiting:
                waiting.remove((entry[0], entry[1]))
            if not waiting and not seen_all.done():
                seen_all.set_result(True)

        self.add_event_handler("groupchat_presence", on_presence)
        await self["xep_0045"].join_muc_wait(room, P["nick"], maxstanzas=0, timeout=20)
        emit(event="joined")
        if waiting:
            try:
                await asyncio.wait_for(seen_all, P.get("timeout", 30))
            except asyncio.TimeoutError:
                return {"ok": False, "error": "not every show was seen", "missing": waiting, "shows": shows}
        return {"ok": True, "shows": shows}

    async def s_muc(self):
        # a class channel as a multi-user chat room (XEP-0045), as a client uses one: find the room by
        # its name in the service's disco#items (the service: the domain's item with the muc feature),
        # join with history, post, see the others' posts, kick (owner) or be kicked, the room's archive
        from slixmpp.exceptions import IqError, PresenceError
        self.register_plugin("xep_0045")
        MUCU = "{http://jabber.org/protocol/muc#user}"
        self.send_presence()
        await self.get_roster()
        room = P.get("room")
        service = None
        end = time.time() + P.get("find_timeout", 20)
        while room is None:
            items = await self["xep_0030"].get_items(jid=self.boundjid.domain, timeout=10)
            for item in items["disco_items"]["items"]:
                info = await self["xep_0030"].get_info(jid=item[0], timeout=10)
                if "http://jabber.org/protocol/muc" in info["disco_info"]["features"]:
                    service = item[0]
            if service:
                rooms = await self["xep_0030"].get_items(jid=service, timeout=10)
                for r in rooms["disco_items"]["items"]:
                    if r[2] == P["title"]:
                        room = str(r[0])
            if room is None:
                if time.time() > end:
                    return {"ok": False, "error": "room not found", "service": service}
                await asyncio.sleep(0.5)
        emit(event="found", room=room, service=service)
        live, left, kicked_me = [], [], []

        def codes(pres):
            return sorted(s.get("code") for s in pres.xml.findall(MUCU + "x/" + MUCU + "status"))

        def on_groupchat(m):
            if m["body"] and m.xml.find("{urn:xmpp:delay}delay") is None:
                entry = {"nick": m["from"].resource, "body": m["body"], "id": m["id"],
                         "stanza_id": m.xml.find("{urn:xmpp:sid:0}stanza-id").get("id") if m.xml.find("{urn:xmpp:sid:0}stanza-id") is not None else None}
                live.append(entry)
                emit(event="groupchat", **entry)

        def on_presence(pres):
            if pres["from"].bare != room or pres["type"] != "unavailable":
                return
            entry = {"nick": pres["from"].resource, "codes": codes(pres)}
            (kicked_me if "110" in entry["codes"] else left).append(entry)
            emit(event="left", **entry)

        self.add_event_handler("groupchat_message", on_groupchat)
        self.add_event_handler("groupchat_presence", on_presence)
        try:
            pres, subject, occupants, history = await self["xep_0045"].join_muc_wait(
                room, P["nick"], maxstanzas=P.get("maxstanzas"), timeout=20)
        except PresenceError as e:
            return {"ok": True, "room": room, "join_error": e.presence["error"]["condition"]}
        joined = {"nick": pres["from"].resource, "codes": codes(pres),
                  "occupants": sorted([[o["from"].resource, o["muc"]["affiliation"], o["muc"]["role"], str(o["muc"]["jid"].bare)] for o in occupants]),
                  "history": [[m["from"].resource, m["body"]] for m in history if m["body"]],
                  "subject": subject["subject"]}
        emit(event="joined", **joined)
        result = {"ok": True, "room": room, "service": service, **joined}
        if "201" in joined["codes"]:
            # Prosody: a new room, locked until its owner configures it (the members-only room a channel is)
            form = await self["xep_0045"].get_room_config(room)
            values = {"muc#roomconfig_roomname": P["title"], "muc#roomconfig_membersonly": True, "muc#roomconfig_persistentroom": True,
                      "muc#roomconfig_publicroom": True, "muc#roomconfig_whois": "anyone", "muc#roomconfig_enablearchiving": True}
            submit = self["xep_0004"].make_form(ftype="submit")
            for var, field in form.get_fields().items():
                if var == "FORM_TYPE":
                    submit.add_field(var="FORM_TYPE", ftype="hidden", value=field["value"])
                elif var in values:
                    v = values[var]
                    submit.add_field(var=var, value=("1" if v else "0") if isinstance(v, bool) else v)
            await self["xep_0045"].set_room_config(room, submit)
            for jid in P.get("members", []):
                await self["xep_0045"].set_affiliation(room, "member", jid=jid)
            self["xep_0045"].set_subject(room, P["title"])
        if P.get("ready_after"):
            await self.wait_for(lambda: False, P["ready_after"])
        emit(event="ready")
        t0 = time.time()
        phases = {}
        result["phases"] = phases
        ids = []
        for body in P.get("post", []):
            m = self.make_message(mto=room, mbody=body, mtype="groupchat")
            ids.append(m["id"])
            m.send()
            await asyncio.sleep(0.1)
        # the room reflects each post to its author (XEP-0045 §7.4), by the id the client gave it
        await self.wait_for(lambda: set(ids) <= {x["id"] for x in live if x["nick"] == joined["nick"]}, P.get("timeout", 30))
        result["reflected"] = [x["body"] for x in live if x["id"] in ids]
        phases["reflected"] = round(time.time() - t0, 2)
        emit(event="posted")
        # what was said before the join (history) or since
        seen = lambda: {h[1] for h in joined["history"]} | {x["body"] for x in live}
        expect = P.get("expect", [])
        await self.wait_for(lambda: set(expect) <= seen(), P.get("timeout", 30))
        phases["expected"] = round(time.time() - t0, 2)
        for body in P.get("post_after_expect", []):
            self.make_message(mto=room, mbody=body, mtype="groupchat").send()
        if P.get("kick_delay"):
            await asyncio.sleep(P["kick_delay"])
        if P.get("try_kick"):
            try:
                await self["xep_0045"].set_role(room, P["try_kick"], "none", timeout=10)
                result["try_kick"] = "result"
            except IqError as e:
                result["try_kick"] = e.iq["error"]["condition"]
        if P.get("kick"):
            await self["xep_0045"].set_role(room, P["kick"], "none", timeout=20)
            await self.wait_for(lambda: any(x["nick"] == P["kick"] for x in left), 10)
            for body in P.get("post_after_kick", []):
                self.make_message(mto=room, mbody=body, mtype="groupchat").send()
        phases["kicked"] = round(time.time() - t0, 2)
        if P.get("wait_kicked"):
            await self.wait_for(lambda: kicked_me, P.get("timeout", 30))
            phases["was_kicked"] = round(time.time() - t0, 2)
            # what the room says to someone no longer in the channel
            try:
                await self["xep_0045"].join_muc_wait(room, P["nick"], maxstanzas=0, timeout=10)
                result["rejoin"] = "joined"
            except PresenceError as e:
                result["rejoin"] = e.presence["error"]["condition"]
            except asyncio.TimeoutError:
                result["rejoin"] = "timeout"
        if P.get("mam"):
            iq = await self["xep_0313"].retrieve(jid=room, rsm={"max": P.get("mam_page", 50)}, timeout=20)
            result["mam"] = [[r["mam_result"]["forwarded"]["stanza"]["from"].resource, r["mam_result"]["forwarded"]["stanza"]["body"]] for r in iq["mam"]["results"]]
            result["mam_complete"] = iq["mam_fin"].xml.get("complete") in ("true", "1")
            phases["mam"] = round(time.time() - t0, 2)
        await asyncio.sleep(P.get("linger", 0))
        result.update(live=[[x["nick"], x["body"]] for x in live], seen=sorted(seen()), left=left, kicked=kicked_me)
        return result

    async def s_mam(self):
        page = P.get("page", 50)
        # forwards from the start, page by page, with <after/>
        forward, after, pages = [], None, 0
        while True:
            rsm = {"max": page}
            if after:
                rsm["after"] = after
            iq = await self["xep_0313"].retrieve(rsm=rsm, timeout=20)
            results = iq["mam"]["results"]
            pages += 1
            forward += [r["mam_result"]["forwarded"]["stanza"]["body"] for r in results]
            fin = iq["mam_fin"]
            complete = fin.xml.get("complete") in ("true", "1")
            if complete or not results or pages > 100:
                last_id = fin["rsm"]["last"] or after
                break
            after = fin["rsm"]["last"]
        # the last page, backwards
        backward = []
        async for r in self["xep_0313"].iterate(rsm={"max": page}, reverse=True, total=page):
            backward.insert(0, r["mam_result"]["forwarded"]["stanza"]["body"])
        return {"ok": True, "forward": forward, "pages": pages, "complete": complete, "last_id": last_id, "last_page": backward}

    async def s_mam_last(self):
        # the last page, as a client opening its history asks for it (<before/> empty, max 50), timed
        times, bodies = [], []
        for _ in range(P.get("repeat", 5)):
            t = time.time()
            page = []
            # reverse=True sends an empty <before/>: the newest page first
            async for r in self["xep_0313"].iterate(rsm={"max": P.get("page", 50)}, reverse=True, total=P.get("page", 50)):
                page.insert(0, r["mam_result"]["forwarded"]["stanza"]["body"])
            times.append(round(time.time() - t, 4))
            bodies = page
        return {"ok": True, "times": times, "bodies": bodies}

    async def s_mam_after(self):
        iq = await self["xep_0313"].retrieve(rsm={"max": 50, "after": P["after"]}, timeout=20)
        return {"ok": True, "bodies": [r["mam_result"]["forwarded"]["stanza"]["body"] for r in iq["mam"]["results"]],
                "stamps": [str(r["mam_result"]["forwarded"]["delay"]["stamp"]) for r in iq["mam"]["results"]]}

    async def s_roster(self):
        # RFC 6121 roster editing and XEP-0191 blocking as a client does them; pushes are recorded as
        # they come, and the test edits the buddy list with the pigeon command while this runs
        pushes, blocks, errors = [], [], []

        def on_roster(iq):
            if iq["type"] != "set":
                return
            for jid, item in iq["roster"]["items"].items():
                p = {"jid": str(jid), "name": item["name"], "groups": sorted(item["groups"]), "subscription": item["subscription"],
                     "ver": iq["roster"]["ver"]}
                pushes.append(p)
                emit(event="push", **p)

        def on_error(m):
            errors.append({"to": str(m["from"].bare), "condition": m["error"]["condition"],
                           "blocked": m.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None})

        self.add_event_handler("roster_update", on_roster)
        self.add_event_handler("blocked", lambda iq: blocks.append(["block", sorted(str(j) for j in iq["block"]["items"])]))
        self.add_event_handler("unblocked", lambda iq: blocks.append(["unblock", sorted(str(j) for j in iq["unblock"]["items"])]))
        self.add_event_handler("message_error", on_error)
        self.send_presence()
        await self.get_roster()
        before = sorted(str(j) for j in self.client_roster.keys() if str(j) != self.boundjid.bare)
        await self["xep_0191"].get_blocked(timeout=10)  # asked for: its pushes come to this client
        who = P["who"]
        # add someone met nearby, with a name and a group
        await self.update_roster(who, name=P["name"], groups=P["groups"], timeout=10)
        await self.wait_for(lambda: any(p["jid"] == who for p in pushes), 10)
        added = {"name": self.client_roster[who]["name"], "groups": sorted(self.client_roster[who]["groups"]),
                 "subscription": self.client_roster[who]["subscription"]}
        emit(event="added")
        # the test renames them with the pigeon command now: the push must come
        renamed = await self.wait_for(lambda: any(p["jid"] == who and p["name"] == P["cli_name"] for p in pushes), 30)
        try:
            await self.update_roster(who, name="two words", timeout=10)
            bad_name = "result"
        except slixmpp.exceptions.IqError as e:
            bad_name = e.iq["error"]["condition"]
        try:
            await self.update_roster("nobody@" + self.boundjid.domain, name="x", timeout=10)
            unknown = "result"
        except slixmpp.exceptions.IqError as e:
            unknown = e.iq["error"]["condition"]
        await self.del_roster_item(who)
        removed = await self.wait_for(lambda: any(p["jid"] == who and p["subscription"] == "remove" for p in pushes), 10)
        full = self.Iq()
        full["type"] = "get"
        full.enable("roster")  # no version: the whole roster
        again = await full.send(timeout=10)
        after = sorted(str(j) for j in again["roster"]["items"].keys())
        # blocking
        block = P["block"]
        await self["xep_0191"].block(block, timeout=10)
        blocked_list = sorted(str(j) for j in (await self["xep_0191"].get_blocked(timeout=10))["blocklist"]["items"])
        self.make_message(mto=block, mbody="are you there?", mtype="chat").send()
        await self.wait_for(lambda: len(errors) > 0, 10)
        await self["xep_0191"].unblock(block, timeout=10)
        await self.wait_for(lambda: any(b[0] == "unblock" for b in blocks), 10)
        unblocked_list = sorted(str(j) for j in (await self["xep_0191"].get_blocked(timeout=10))["blocklist"]["items"])
        return {"ok": True, "before": before, "added": added, "renamed": renamed, "bad_name": bad_name, "unknown": unknown,
                "removed": removed, "after": after, "blocked_list": blocked_list, "errors": errors, "blocks": blocks,
                "unblocked_list": unblocked_list, "pushes": pushes}

    async def s_roster_push(self):
        # waits for a roster push naming P["who"] with P["name"]: the test makes that change elsewhere
        # (on another device of the person) once this client has its roster ("ready")
        pushes = []

        def on_roster(iq):
            if iq["type"] != "set":
                return
            for jid, item in iq["roster"]["items"].items():
                pushes.append({"jid": str(jid), "name": item["name"], "groups": sorted(item["groups"]), "ver": iq["roster"]["ver"]})

        self.add_event_handler("roster_update", on_roster)
        self.send_presence()
        await self.get_roster()
        emit(event="ready")
        want_groups = sorted(P["groups"]) if "groups" in P else None
        got = await self.wait_for(lambda: any(p["jid"] == P["who"] and p["name"] == P["name"] and (want_groups is None or p["groups"] == want_groups)
                                              for p in pushes), P.get("timeout", 30))
        item = self.client_roster[P["who"]]
        return {"ok": got, "pushes": pushes, "roster_name": item["name"], "roster_groups": sorted(item["groups"]),
                "ver": self.client_roster.version}

    async def s_resume(self):
        # stream management: take some messages, cut the socket without closing the stream, come back
        # and resume; what the server sent meanwhile (or had not seen acked) must arrive, once.
        self.send_presence()
        await self.get_roster()
        await self.wait_for(lambda: len(self.messages) >= P["before_cut"], P.get("timeout", 30))
        emit(event="cutting", sm_id=self["xep_0198"].sm_id, handled=self["xep_0198"].handled)
        resumed = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_resumed", lambda _: resumed.done() or resumed.set_result(True))
        self.transport.abort()  # a cut socket: no </stream:stream>
        await asyncio.sleep(0.3)
        emit(event="cut")
        # the test sends more messages now (it waits for the "cut" line)
        await asyncio.sleep(P.get("away", 2))
        self.connect((P["host"], P["port"]), disable_starttls=P.get("tls") != "starttls")
        try:
            await asyncio.wait_for(resumed, 15)
            ok = True
        except asyncio.TimeoutError:
            ok = False
        await self.wait_for(lambda: len(self.messages) >= P["count"], P.get("timeout", 30))
        bodies = [m["body"] for m in self.messages]
        return {"ok": ok and len(bodies) >= P["count"], "resumed": ok, "bodies": bodies}


async def main():
    c = Client()
    # tls "system": exactly as packages/xmpp/README.md shows (STARTTLS when offered, the system's trust store)
    c.connect((P["host"], P["port"]), disable_starttls=P.get("tls") not in ("starttls", "system"))
    try:
        result = await asyncio.wait_for(c.done, P.get("overall", 60))
    except asyncio.TimeoutError:
        result = {"ok": False, "error": "timed out", "messages": c.messages, "receipts": c.receipts}
    emit(result=result)
    c.disconnect(wait=1)
    await asyncio.sleep(0.2)


asyncio.get_event_loop().run_until_complete(main())
