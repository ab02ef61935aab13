// The node's self-signed certificate for STARTTLS, made once into the data directory
// (xmpp-tls-key.pem 0600, xmpp-tls-cert.pem). Node has no API to issue an X.509 certificate, so this
// runs Debian's `openssl` (always present where Node's own TLS is) rather than adding a JavaScript
// ASN.1/X.509 stack (node-forge and friends) to the node for a one-off job. Without openssl the server
// simply does not offer STARTTLS and says so in the log.
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { X509Certificate } from "node:crypto";

export interface NodeCertificate {
  keyPath: string;
  certPath: string;
  context: SecureContext;
}

export function ensureCertificate(dataDir: string, domain: string): NodeCertificate {
  const keyPath = join(dataDir, "xmpp-tls-key.pem");
  const certPath = join(dataDir, "xmpp-tls-cert.pem");
  if (!existsSync(keyPath) || !existsSync(certPath) || !fitForTrust(certPath, domain)) {
    const tmpKey = `${keyPath}.tmp${process.pid}`;
    const tmpCert = `${certPath}.tmp${process.pid}`;
    try {
      execFileSync(
        "openssl",
        [
          "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", tmpKey, "-out", tmpCert, "-days", "3650", "-subj", `/CN=${domain}`,
          "-addext", `subjectAltName=DNS:${domain},DNS:localhost,IP:127.0.0.1,IP:::1`,
          // not a CA: trusted on a laptop (docs/security.md), it can vouch for this node and nothing else
          "-addext", "basicConstraints=critical,CA:FALSE",
          "-addext", "keyUsage=critical,digitalSignature",
          "-addext", "extendedKeyUsage=serverAuth",
        ],
        { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 },
      );
      chmodSync(tmpKey, 0o600);
      renameSync(tmpKey, keyPath);
      renameSync(tmpCert, certPath);
    } finally {
      rmSync(tmpKey, { force: true });
      rmSync(tmpCert, { force: true });
    }
  }
  const context = createSecureContext({ key: readFileSync(keyPath), cert: readFileSync(certPath), minVersion: "TLSv1.2" });
  return { keyPath, certPath, context };
}

/**
 * A certificate made before it could be trusted (older nodes made it a CA: trusting that would let
 * the node's key vouch for any name) or for another domain is made again.
 */
function fitForTrust(certPath: string, domain: string): boolean {
  try {
    const c = new X509Certificate(readFileSync(certPath));
    return !c.ca && c.checkHost(domain) !== undefined && c.checkIP("127.0.0.1") !== undefined;
  } catch {
    return false;
  }
}
