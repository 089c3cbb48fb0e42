// NDJSON framing: one JSON message per line, each line ended by "\n".
// Splits on the 0x0A byte before decoding, so a multi-byte UTF-8 character split across
// chunks is never decoded in halves (0x0A never occurs inside a multi-byte sequence).

const NEWLINE = 0x0a;
const encoder = new TextEncoder();

/** Turns a stream of byte chunks into complete lines (without their "\n" or "\r\n"). */
export class LineSplitter {
  /** Bytes of the unfinished line, kept as a list so a long line is copied once. */
  #pieces = [];
  #decoder = new TextDecoder('utf-8');

  /** Feed a chunk (Uint8Array/Buffer or string); returns the lines it completed. */
  push(chunk) {
    const bytes = typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
    const lines = [];
    const last = bytes.lastIndexOf(NEWLINE);
    if (last !== -1) {
      // Every line the chunk completes, decoded in one go and split after.
      this.#pieces.push(bytes.subarray(0, last));
      const pieces = this.#pieces;
      this.#pieces = [];
      const text = this.#decoder.decode(pieces.length === 1 ? pieces[0] : concat(pieces));
      let start = 0;
      let newline;
      while ((newline = text.indexOf('\n', start)) !== -1) {
        addLine(lines, text.slice(start, newline));
        start = newline + 1;
      }
      addLine(lines, start === 0 ? text : text.slice(start));
    }
    // Copied (Buffer#slice would not copy): the caller may reuse its buffer after push() returns.
    if (last + 1 < bytes.length) this.#pieces.push(Uint8Array.prototype.slice.call(bytes, last + 1));
    return lines;
  }

  /** The stream ended: returns the last line if it lacked its "\n". */
  end() {
    const lines = [];
    if (this.#pieces.length > 0) {
      const pieces = this.#pieces;
      this.#pieces = [];
      addLine(lines, this.#decoder.decode(pieces.length === 1 ? pieces[0] : concat(pieces)));
    }
    return lines;
  }
}

function addLine(lines, line) {
  if (line.endsWith('\r')) line = line.slice(0, -1);
  // Blank lines carry no message; hosts may send them as keep-alives.
  if (line.length > 0 && (line.charCodeAt(0) > 32 || line.trim() !== '')) lines.push(line);
}

/** One message as an NDJSON line. JSON.stringify escapes newlines inside strings. */
export function encodeLine(message) {
  return JSON.stringify(message) + '\n';
}

function concat(pieces) {
  let length = 0;
  for (const piece of pieces) length += piece.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}
