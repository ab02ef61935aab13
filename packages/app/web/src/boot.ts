// The first thing the page runs (a classic script at the top of index.html, before the styles, so it
// waits for nothing; it imports nothing): it asks the node for the first screen at once, so the answer
// travels while the app's own modules are still arriving and compiling (on a slow laptop that is most
// of the wait). main.js takes the answer from here.
// The key in the address (#key=..., printed by pigeon start) is traded for the session first, and
// leaves the address bar and the history at once.
performance.mark("pigeon-boot"); // for the time-to-interactive benchmark
(globalThis as { pigeonSession?: Promise<Response> }).pigeonSession = (async () => {
  const key = /(?:^#|&)key=([0-9a-f]{64})/.exec(location.hash)?.[1];
  if (key) {
    history.replaceState(null, "", location.pathname + location.search);
    // the preload's answer (asked without the session: refused) is taken and dropped, or a later
    // fetch of the same address in this page would get that refusal instead of asking the node
    void fetch("/app/api/session").catch(() => undefined);
    await fetch("/app/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key }) });
    // not the address index.html preloaded: that answer was asked without the session
    return fetch("/app/api/session?login");
  }
  // the answer index.html's preload is already fetching (asked before any script ran)
  return fetch("/app/api/session");
})();
