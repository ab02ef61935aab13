// Compact binary encoding helpers: unsigned LEB128 varints and length-prefixed fields,
// in the style of lib0/y-protocols. Every Pigeon wire format is built from these.

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

export class Writer {
  private chunks: Uint8Array[] = [];
  private buf = new Uint8Array(256);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.buf = new Uint8Array(Math.max(256, n * 2));
    this.pos = 0;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  /** Unsigned varint for any safe integer (arithmetic, not bit ops, so values above 2^32 work). */
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  /** Fixed-size bytes (the reader must know the size). */
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** Length-prefixed bytes. */
  bytes(bytes: Uint8Array): this {
    return this.varint(bytes.length).raw(bytes);
  }

  string(s: string): this {
    return this.bytes(textEncoder.encode(s));
  }

  finish(): Uint8Array {
    const parts = [...this.chunks, this.buf.subarray(0, this.pos)];
    return concat(parts);
  }
}

export class Reader {
  pos = 0;
  /**
   * `canonical`: refuse a varint longer than its value needs, so that one value has one encoding
   * (sync frames; envelopes and cards are signed as they are, and old stores may hold any form).
   */
  constructor(readonly buf: Uint8Array, readonly canonical = false) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(): number {
    if (this.pos >= this.buf.length) throw new DecodeError("truncated: expected a byte");
    return this.buf[this.pos++]!;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) throw new DecodeError("varint too large");
        if (b === 0 && i > 0 && this.canonical) throw new DecodeError("varint not in its shortest form");
        return result;
      }
      mul *= 0x80;
    }
    throw new DecodeError("varint too long");
  }

  raw(n: number): Uint8Array {
    if (n > this.remaining) throw new DecodeError(`truncated: expected ${n} bytes, ${this.remaining} left`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  bytes(max: number): Uint8Array {
    const n = this.varint();
    if (n > max) throw new DecodeError(`field of ${n} bytes exceeds limit ${max}`);
    return this.raw(n);
  }

  string(max: number): string {
    try {
      return textDecoder.decode(this.bytes(max));
    } catch (e) {
      if (e instanceof DecodeError) throw e;
      throw new DecodeError("invalid UTF-8");
    }
  }

  end(): void {
    if (this.remaining !== 0) throw new DecodeError(`${this.remaining} unexpected trailing bytes`);
  }
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

export function fromHex(s: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/i.test(s)) throw new DecodeError("invalid hex");
  return new Uint8Array(Buffer.from(s, "hex"));
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

export function fromBase64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}
