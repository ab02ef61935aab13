// The page's only way to the node: JSON calls under /app/api/ with the session cookie and the CSRF
// token, and one WebSocket that says "something changed" (the page then asks again).

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class Api {
  private csrf = "";
  /** The address of the browser's replica of the drafts (the node names it in the session). */
  replica = "";

  /** Trades the key in the address (#key=..., printed by pigeon start) for a session, and gets the first state; undefined if there is no session. */
  async start<T>(): Promise<T | undefined> {
    // boot.js asked already, while this module was arriving; once only (a later start asks again)
    const early = (globalThis as { pigeonSession?: Promise<Response> }).pigeonSession;
    delete (globalThis as { pigeonSession?: Promise<Response> }).pigeonSession;
    const res = await (early ?? this.login());
    if (!res.ok) return undefined;
    const session = (await res.json()) as { csrf: string; replica?: string; state: T };
    this.csrf = session.csrf;
    this.replica = session.replica ?? "";
    return session.state;
  }

  private async login(): Promise<Response> {
    const key = /(?:^#|&)key=([0-9a-f]{64})/.exec(location.hash)?.[1];
    if (key) {
      // the key leaves the address bar and the history at once
      history.replaceState(null, "", location.pathname + location.search);
      await fetch("/app/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key }) });
    }
    return fetch("/app/api/session");
  }

  private async call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    const res = await fetch(`/app/api/${path}`, {
      method,
      headers: { "x-pigeon-csrf": this.csrf, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const value = (await res.json().catch(() => ({}))) as T & { message?: string };
    if (!res.ok) throw new ApiError(res.status, value.message ?? res.statusText);
    return value;
  }

  /** The token, for the replica's WebSocket (replica.ts). */
  get token(): string {
    return this.csrf;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  post<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>("POST", path, body);
  }

  /** Calls onChange whenever the node says something changed, and onStatus when the link comes or goes. */
  live(onChange: () => void, onStatus: (up: boolean) => void): void {
    let again = false;
    const open = () => {
      const ws = new WebSocket(`ws://${location.host}/app/live?csrf=${this.csrf}`);
      ws.onopen = () => {
        onStatus(true);
        if (again) onChange(); // whatever happened while the link was down
        again = true;
      };
      ws.onmessage = () => onChange();
      ws.onclose = () => {
        onStatus(false);
        setTimeout(open, 1000);
      };
    };
    open();
  }
}
