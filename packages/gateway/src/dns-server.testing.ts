// For the gateway's tests: a real DNS server on loopback (test/testbed/dns-txt.mjs, the one the
// Postfix testbed runs) publishing the test's own domains' TXT records, and a resolver that asks only it.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { dnsResolver, type DnsResolver } from "./auth.js";

export async function dnsServer(records: [name: string, text: string][]): Promise<{ resolver: DnsResolver; close: () => void }> {
  const script = join(import.meta.dirname, "../../../test/testbed/dns-txt.mjs");
  const p = spawn(process.execPath, [script, "127.0.0.1", "0", ...records.flat()], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    p.once("error", reject);
    p.stdout!.once("data", (d: Buffer) => resolve(Number(/dns ready (\d+)/.exec(d.toString())![1])));
  });
  return { resolver: dnsResolver([`127.0.0.1:${port}`], 2_000), close: () => p.kill() };
}
