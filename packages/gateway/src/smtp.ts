// Real mail: out through a smarthost with nodemailer (STARTTLS required, DKIM-signed with the school's
// domain key, UTF-8 text as quoted-printable, DSN asked for), in through smtp-server (STARTTLS offered,
// SIZE enforced, each step asked of the gateway's InboundPolicy). Chosen because both are the
// long-kept Node mail libraries (nodemailer's author keeps smtp-server and mailparser too), with no
// native parts.
import { isIP } from "node:net";
import nodemailer, { type Transporter } from "nodemailer";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import type { InboundPolicy, MailTransport, OutgoingMail, SendOutcome } from "./transport.js";

export interface SmtpOutOptions {
  /** The smarthost (the school's provider's relay), e.g. smtp.provider.example:587. */
  host: string;
  port: number;
  /** The name the gateway gives in EHLO (its mail host name). */
  name: string;
  /** Refuse to send unless the smarthost takes STARTTLS (default true). */
  requireTLS?: boolean;
  /** The name in the smarthost's certificate, when `host` is an address (default: host). */
  servername?: string;
  /** Extra CA certificates to trust for the smarthost (PEM), e.g. a provider's own CA. */
  ca?: string;
  /** SMTP AUTH at the smarthost, when it asks for it. */
  auth?: { user: string; pass: string };
  /** DKIM: the school's domain, the selector published in DNS, the private key (PEM). */
  dkim: { domainName: string; keySelector: string; privateKey: string };
  /** The header every mail leaving this gateway carries (a mail that comes back with it is a loop). */
  loopHeaderValue: string;
  timeoutMs?: number;
}

export class SmtpOut implements MailTransport {
  private readonly transporter: Transporter;

  constructor(private readonly o: SmtpOutOptions) {
    const t = o.timeoutMs ?? 30_000;
    this.transporter = nodemailer.createTransport({
      host: o.host, port: o.port, secure: false, requireTLS: o.requireTLS ?? true, name: o.name,
      tls: { ...(o.ca ? { ca: o.ca } : {}), minVersion: "TLSv1.2", ...(isIP(o.servername ?? o.host) ? {} : { servername: o.servername ?? o.host }) },
      ...(o.auth ? { auth: o.auth } : {}),
      dkim: o.dkim, connectionTimeout: t, greetingTimeout: t, socketTimeout: t, disableFileAccess: true, disableUrlAccess: true,
    });
  }

  async send(mail: OutgoingMail): Promise<SendOutcome> {
    try {
      const info = await this.transporter.sendMail({
        from: { name: mail.from.name, address: mail.from.address },
        to: mail.to, subject: mail.subject, text: mail.text, textEncoding: "quoted-printable",
        messageId: mail.messageId,
        ...(mail.inReplyTo ? { inReplyTo: mail.inReplyTo, references: mail.references ?? [mail.inReplyTo] } : {}),
        envelope: { from: mail.envelopeFrom, to: [mail.to] },
        headers: { "X-Pigeon-Gateway": this.o.loopHeaderValue },
        ...(mail.attachments?.length ? { attachments: mail.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, content: a.content })) } : {}),
        dsn: { id: mail.messageId, return: "headers", notify: ["failure", "delay"], recipient: mail.to },
        disableFileAccess: true, disableUrlAccess: true,
      });
      if ((info.accepted?.length ?? 0) > 0) return { ok: true, response: String(info.response ?? "") };
      return { ok: false, permanent: true, reason: String(info.response ?? "refused") };
    } catch (e) {
      const err = e as Error & { responseCode?: number; response?: string };
      const code = err.responseCode ?? 0;
      return { ok: false, permanent: code >= 500 && code < 600, reason: err.response ?? err.message };
    }
  }

  close(): void {
    this.transporter.close();
  }
}

export interface SmtpInOptions {
  host: string;
  port: number;
  /** The gateway's mail host name (banner). */
  name: string;
  /** TLS key and certificate (PEM) for STARTTLS. */
  key: string;
  cert: string;
  maxClients?: number;
}

/** An SMTP door that asks the policy at each step. Every refusal is an SMTP answer; nothing from outside can throw past it. */
export class SmtpIn {
  private readonly server: SMTPServer;

  constructor(private readonly policy: InboundPolicy, private readonly o: SmtpInOptions) {
    const refusal = (r: { code: number; message: string }) => Object.assign(new Error(r.message), { responseCode: r.code });
    const opts: SMTPServerOptions = {
      secure: false, key: o.key, cert: o.cert, name: o.name, banner: "Pigeon school gateway", logger: false,
      disabledCommands: ["AUTH"], authOptional: true, size: policy.maxBytes(), maxClients: o.maxClients ?? 20,
      socketTimeout: 60_000, closeTimeout: 5_000,
      onMailFrom: (address, _session, cb) => {
        const r = safe(() => policy.mailFrom(address.address));
        cb(r ? refusal(r) : undefined);
      },
      onRcptTo: (address, session, cb) => {
        if (session.envelope.rcptTo.length >= 20) return cb(refusal({ code: 452, message: "4.5.3 too many recipients" }));
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
        const r = safe(() => policy.rcptTo(address.address, from));
        cb(r ? refusal(r) : undefined);
      },
      onData: (stream, session, cb) => {
        const max = policy.maxBytes();
        const chunks: Buffer[] = [];
        let size = 0;
        stream.on("data", (c: Buffer) => {
          size += c.length;
          if (size <= max) chunks.push(c); // past the limit: drained, not kept
        });
        stream.on("error", () => cb(refusal({ code: 451, message: "4.3.0 error while receiving" })));
        stream.on("end", () => {
          if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded || size > max)
            return cb(refusal({ code: 552, message: `5.3.4 mail larger than ${max} bytes` }));
          const env = {
            mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            rcptTo: session.envelope.rcptTo.map((r) => r.address),
            remoteAddress: session.remoteAddress,
            helo: session.hostNameAppearsAs ?? "",
          };
          policy.data(Buffer.concat(chunks), env).then(
            (r) => cb(r ? refusal(r) : undefined),
            () => cb(refusal({ code: 451, message: "4.3.0 local error; try again later" })),
          );
        });
      },
    };
    this.server = new SMTPServer(opts);
    this.server.on("error", () => {}); // a client's broken connection is its problem, not the gateway's
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.server.once("error", reject);
      this.server.listen(this.o.port, this.o.host, () => {
        const a = this.server.server.address();
        resolve(typeof a === "object" && a ? a.port : this.o.port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function safe<T>(fn: () => T): T | { code: number; message: string } {
  try {
    return fn();
  } catch {
    return { code: 451, message: "4.3.0 local error; try again later" };
  }
}
