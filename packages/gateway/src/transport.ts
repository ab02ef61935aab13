// The narrow interfaces between the gateway's logic and real mail (as automerge-repo keeps its core
// behind storage and network adapters): one to send a mail out, one that an SMTP door asks at each
// step of an incoming mail. smtp.ts implements both with nodemailer and smtp-server.

/** A mail leaving the school. Every string here was checked by the gateway (addresses, one-line subject). */
export interface OutgoingMail {
  from: { name: string; address: string };
  to: string;
  subject: string;
  text: string;
  /** "<random@domain>" */
  messageId: string;
  inReplyTo?: string;
  references?: string[];
  /** The envelope sender (MAIL FROM) that bounces come back to: bounce+TOKEN@domain. */
  envelopeFrom: string;
  /** Made by the gateway itself (a drawing as an image), never taken from a file or a URL. */
  attachments?: { filename: string; contentType: string; content: string }[];
}

export type SendOutcome =
  | { ok: true; response: string }
  /** permanent: the next hop refused it for good (5xx); otherwise try again later. */
  | { ok: false; permanent: boolean; reason: string };

export interface MailTransport {
  send(mail: OutgoingMail): Promise<SendOutcome>;
  close?(): void | Promise<void>;
}

/** An SMTP answer refusing a step: 4xx (try later) or 5xx (never). */
export interface Refusal {
  code: number;
  message: string;
}

/** What the SMTP door knows of a mail besides its bytes. */
export interface Envelope {
  /** MAIL FROM ("" for a bounce). */
  mailFrom: string;
  rcptTo: string[];
  /** The address that handed the mail over, and the name it gave in EHLO (for SPF). */
  remoteAddress: string;
  helo: string;
}

/** What the SMTP door asks the gateway; each answer undefined = accepted. */
export interface InboundPolicy {
  /** Largest mail taken (SMTP SIZE), bytes. */
  maxBytes(): number;
  mailFrom(address: string): Refusal | undefined;
  rcptTo(address: string, mailFrom: string): Refusal | undefined;
  /** The whole mail, at most maxBytes (a larger one never reaches here). */
  data(raw: Buffer, envelope: Envelope): Promise<Refusal | undefined>;
}
