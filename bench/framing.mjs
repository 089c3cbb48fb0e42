// Framing for the benchmark driver: bytes to message frames and back, NDJSON and LSP.
// Readers hand out (buffer, start, end) so small messages are decoded without copying.

/** Frames longer than this may skip JSON.parse in timed loops (see peekLarge). */
export const LARGE = 64 * 1024;

/** Splits an NDJSON byte stream into lines; calls onFrame(buf, start, end) per message. */
export class NdjsonReader {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.parts = [];
  }

  push(chunk) {
    let start = 0;
    let nl = chunk.indexOf(10);
    if (nl < 0) {
      this.parts.push(chunk);
      return;
    }
    if (this.parts.length) {
      this.parts.push(chunk.subarray(0, nl));
      const whole = Buffer.concat(this.parts);
      this.parts = [];
      this.emit(whole, 0, whole.length);
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    while (nl >= 0) {
      this.emit(chunk, start, nl);
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) this.parts.push(chunk.subarray(start));
  }

  emit(buf, start, end) {
    if (end > start && buf[end - 1] === 13) end--; // tolerate CRLF
    if (end > start) this.onFrame(buf, start, end);
  }
}

const HEADER_END = Buffer.from('\r\n\r\n');

/** Splits an LSP (Content-Length) byte stream; body chunks are joined once per message. */
export class LspReader {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.head = null; // partial header bytes
    this.need = -1; // body bytes wanted, or -1 while reading headers
    this.parts = [];
    this.got = 0;
  }

  push(chunk) {
    if (this.need >= 0) {
      this.parts.push(chunk);
      this.got += chunk.length;
      if (this.got < this.need) return;
      const whole = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.got);
      this.parts = [];
      const need = this.need;
      this.need = -1;
      this.onFrame(whole, 0, need);
      if (whole.length > need) this.push(whole.subarray(need));
      return;
    }
    let buf = chunk;
    if (this.head) {
      buf = Buffer.concat([this.head, chunk]);
      this.head = null;
    }
    let pos = 0;
    for (;;) {
      const end = buf.indexOf(HEADER_END, pos);
      if (end < 0) {
        if (pos < buf.length) this.head = buf.subarray(pos);
        return;
      }
      const length = contentLength(buf.toString('latin1', pos, end));
      const bodyStart = end + 4;
      if (buf.length - bodyStart >= length) {
        this.onFrame(buf, bodyStart, bodyStart + length);
        pos = bodyStart + length;
        continue;
      }
      this.need = length;
      this.parts = [buf.subarray(bodyStart)];
      this.got = buf.length - bodyStart;
      return;
    }
  }
}

function contentLength(header) {
  for (const line of header.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'content-length') {
      const n = parseInt(line.slice(colon + 1), 10);
      if (Number.isFinite(n) && n >= 0) return n;
    }
  }
  throw new Error(`LSP header without Content-Length: ${JSON.stringify(header)}`);
}

export const FRAMERS = {
  ndjson: (body) => body + '\n',
  lsp: (body) => `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
};

/**
 * Reads id (and notes an error) from a large reply without parsing it: the id sits within
 * the first or last few hundred bytes in every server measured, and the 1 MiB payload
 * contains no quotes. Warm-up calls parse in full and compare the value.
 */
export function peekLarge(buf, start, end) {
  const span = 512;
  const head = buf.toString('latin1', start, Math.min(end, start + span));
  const tail = buf.toString('latin1', Math.max(start, end - span), end);
  if (head.includes('"error"') || tail.includes('"error"')) return JSON.parse(buf.toString('utf8', start, end));
  const m = /"id"\s*:\s*(-?\d+)/.exec(head) || /"id"\s*:\s*(-?\d+)/.exec(tail);
  return { id: m ? Number(m[1]) : undefined, $size: end - start };
}

