#!/usr/bin/python3
# N slixmpp clients (Debian python3-slixmpp) of one account, all connecting at once in one process:
# a class logging in at 8 o'clock. Parameters as JSON in argv[1] (jid, password, host, port, count,
# timeout); prints one JSON result: how many logged in, how long the slowest took, and why the
# others did not (stream error conditions, failed auth, timeouts).
import asyncio
import json
import sys
import time

import slixmpp

P = json.loads(sys.argv[1])
loop = asyncio.get_event_loop()
started = time.time()
ok, times, errors, clients = [], [], [], []


def make(i):
    c = slixmpp.ClientXMPP(f"{P['jid']}/{P.get('prefix', 'class')}{i}", P["password"])
    c.enable_plaintext = False
    done = loop.create_future()

    def on_start(_):
        if not done.done():
            times.append(time.time() - started)
            ok.append(i)
            done.set_result(True)

    def on_error(e):
        errors.append(str(e["condition"]))
        if not done.done():
            done.set_result(False)

    def on_auth(_):
        errors.append("failed_auth")
        if not done.done():
            done.set_result(False)

    c.add_event_handler("session_start", on_start)
    c.add_event_handler("stream_error", on_error)
    c.add_event_handler("failed_auth", on_auth)
    c.connect((P["host"], P["port"]), disable_starttls=True)
    clients.append(c)
    return done


async def main():
    futures = [make(i) for i in range(P["count"])]
    try:
        await asyncio.wait_for(asyncio.gather(*futures), P.get("timeout", 60))
    except asyncio.TimeoutError:
        errors.append("timeout")
    result = {"ok": len(ok), "count": P["count"], "slowest_s": round(max(times), 3) if times else None,
              "errors": sorted(set(errors)), "error_count": len([e for e in errors if e != "timeout"])}
    print(json.dumps({"result": result}), flush=True)
    for c in clients:
        c.disconnect(wait=0)
    await asyncio.sleep(0.5)


loop.run_until_complete(main())
