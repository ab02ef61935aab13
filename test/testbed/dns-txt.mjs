// A tiny DNS server for the e-mail gateway testbed: answers one TXT record (the school's DKIM key,
// as the school publishes it), NXDOMAIN for everything else. Runs inside "the Internet"'s network
// namespace, so opendkim-testmsg there looks the key up over real DNS (UDP).
//   node dns-txt.mjs ADDRESS NAME TEXT
import { createSocket } from "node:dgram";

const [host, name, text] = process.argv.slice(2);
const wanted = name.toLowerCase().replace(/\.$/, "");
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

sock.on("message", (q, from) => {
  try {
    if (q.length < 12) return;
    const { name: qname, off } = readName(q, 12);
    const qtype = q.readUInt16BE(off);
    const question = q.subarray(12, off + 4);
    const hit = qname === wanted && (qtype === 16 || qtype === 255);
    const strings = [];
    const bytes = Buffer.from(text, "latin1");
    for (let i = 0; i < bytes.length; i += 255) strings.push(bytes.subarray(i, i + 255));
    const rdata = Buffer.concat(strings.flatMap((s) => [Buffer.from([s.length]), s]));
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (q.readUInt16BE(2) & 0x0100) | (hit || qname === wanted ? 0 : 3), 2); // QR AA RD, NXDOMAIN when the name is not ours
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(hit ? 1 : 0, 6);
    const answer = hit
      ? Buffer.concat([Buffer.from([0xc0, 0x0c]), Buffer.from([0, 16, 0, 1, 0, 0, 0, 60]), Buffer.from([rdata.length >> 8, rdata.length & 255]), rdata])
      : Buffer.alloc(0);
    sock.send(Buffer.concat([header, question, answer]), from.port, from.address);
  } catch {
    /* a malformed query gets no answer */
  }
});
sock.bind(53, host, () => console.log("dns ready"));
