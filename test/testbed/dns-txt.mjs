// A tiny DNS server for the e-mail tests: answers the TXT records it is given (DKIM keys, SPF and
// DMARC policies, as the domains publish them), NXDOMAIN for every other name. The testbed runs it in
// "the Internet"'s network namespace (port 53), so opendkim-testmsg there and the gateway look keys up
// over real DNS (UDP); the gateway's own tests run it on loopback on a free port.
//   node dns-txt.mjs ADDRESS PORT NAME TEXT [NAME TEXT ...]     prints "dns ready PORT"
import { createSocket } from "node:dgram";

const [host, port, ...pairs] = process.argv.slice(2);
const records = new Map();
for (let i = 0; i + 1 < pairs.length; i += 2) {
  const name = pairs[i].toLowerCase().replace(/\.$/, "");
  records.set(name, [...(records.get(name) ?? []), pairs[i + 1]]);
}
const sock = createSocket("udp4");

function readName(buf, off) {
  const labels = [];
  for (;;) {
    const len = buf[off];
    if (len === undefined || len > 63) throw new Error("bad name");
    off++;
    if (len === 0) break;
    labels.push(buf.subarray(off, off + len).toString("latin1"));
    off += len;
  }
  return { name: labels.join(".").toLowerCase(), off };
}

/** One TXT record's data: the text in strings of at most 255 bytes. */
function txt(text) {
  const bytes = Buffer.from(text, "latin1");
  const strings = [];
  for (let i = 0; i < bytes.length; i += 255) strings.push(bytes.subarray(i, i + 255));
  const rdata = Buffer.concat(strings.flatMap((s) => [Buffer.from([s.length]), s]));
  return Buffer.concat([Buffer.from([0xc0, 0x0c]), Buffer.from([0, 16, 0, 1, 0, 0, 0, 60]), Buffer.from([rdata.length >> 8, rdata.length & 255]), rdata]);
}

sock.on("message", (q, from) => {
  try {
    if (q.length < 12) return;
    const { name: qname, off } = readName(q, 12);
    const qtype = q.readUInt16BE(off);
    const question = q.subarray(12, off + 4);
    const known = records.get(qname);
    const answers = known && (qtype === 16 || qtype === 255) ? known.map(txt) : [];
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (q.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // QR AA RD, NXDOMAIN when the name is not ours
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    sock.send(Buffer.concat([header, question, ...answers]), from.port, from.address);
  } catch {
    /* a malformed query gets no answer */
  }
});
sock.bind(Number(port), host, () => console.log(`dns ready ${sock.address().port}`));
