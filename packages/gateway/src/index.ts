// @pigeon/gateway: a school's regulated e-mail gateway (docs/gateway.md). The logic (Gateway) uses a
// PigeonNode as a library; real mail goes through narrow adapters (MailTransport out, InboundPolicy
// asked by an SMTP door), implemented with nodemailer and smtp-server in smtp.ts.
export { Gateway, type GatewayOptions } from "./gateway.js";
export { GatewayStore, type IncomingRow, type InState, type LogRow, type OutgoingRow, type OutState } from "./store.js";
export type { Envelope, InboundPolicy, MailTransport, OutgoingMail, Refusal, SendOutcome } from "./transport.js";
export { SmtpIn, SmtpOut, type SmtpInOptions, type SmtpOutOptions } from "./smtp.js";
export { checkSender, dnsResolver, type DnsResolver, type SenderCheck, type SenderCheckInput } from "./auth.js";
