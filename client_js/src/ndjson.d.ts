// Types for the NDJSON framing module (internal; used by the Node transport).

/** Turns a stream of byte chunks into complete lines, without their "\n" or "\r\n". */
export declare class LineSplitter {
  /** Feed a chunk; returns the lines it completed. Blank lines are dropped. */
  push(chunk: Uint8Array | string): string[];
  /** The stream ended: returns the last line if it lacked its "\n". */
  end(): string[];
}

/** One message as an NDJSON line, "\n" included. */
export declare function encodeLine(message: unknown): string;
