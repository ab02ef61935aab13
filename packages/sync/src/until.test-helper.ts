// For this package's tests only (not built): wait until a condition holds, or fail saying what did not happen.
export async function until<T>(fn: () => Promise<T | undefined> | T | undefined, what: string, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
