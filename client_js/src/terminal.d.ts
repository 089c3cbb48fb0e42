// Types for attachTerminal(): a `terminal` plugin terminal shown in an xterm.js Terminal.

import type { CallStream, Params, Unsubscribe } from './index.js';

/** What attachTerminal needs of a client: RpcClient, SidecarClient, Supervisor or `window.bridge`. */
export interface TerminalClient {
  call(method: string, params?: Params, options?: any): Promise<any>;
  stream(method: string, params?: Params, options?: { window?: number }): CallStream<any>;
  /** Optional: `terminal.exited` tells onExit at once (else the ended stream does). */
  on?(event: string, handler: (params: any, event: string) => void): Unsubscribe;
}

/** What attachTerminal needs of an xterm.js `Terminal` (`@xterm/xterm` or `@xterm/headless`). */
export interface XtermLike {
  readonly rows: number;
  readonly cols: number;
  write(data: string | Uint8Array, callback?: () => void): void;
  onData(listener: (data: string) => void): { dispose(): void };
  onBinary?(listener: (data: string) => void): { dispose(): void };
  onResize(listener: (size: { cols: number; rows: number }) => void): { dispose(): void };
}

/** How the terminal ended (`terminal.exited`'s params). */
export interface TerminalExit {
  id: string;
  exit_code: number | null;
  signal: string | number | null;
}

export interface AttachTerminalOptions {
  /** The id `terminal.create` returned. */
  id: string;
  /** Output chunks the host may send ahead of xterm's parsing. Default 16. */
  window?: number;
  /** Milliseconds keystrokes are gathered into one `terminal.write`. Default 5. */
  batchMs?: number;
  /** After the restore item, resize the host's terminal to `term`'s size when they differ. Default true. */
  syncSize?: boolean;
  /** Called once when the terminal exits. */
  onExit?: (exit: TerminalExit) => void;
  /** A `terminal.write` or `terminal.resize` failed (not for a terminal that is gone). */
  onError?: (error: unknown) => void;
  /** With "drop" overflow: bytes of output the host dropped. */
  onDropped?: (bytes: number) => void;
}

export interface TerminalAttachment {
  /** Resolves when the output stream ends (the terminal exited, or dispose()); rejects with what ended it otherwise. */
  readonly closed: Promise<void>;
  /** Cancel the stream and remove every listener. Calling it again is harmless. */
  dispose(): void;
}

/**
 * Show terminal `options.id` in `term` and type into it: keystrokes batched into `terminal.write`,
 * the `terminal.attach` stream written to `term` (its restore item first), each chunk's credit
 * granted in xterm's write callback, `term.onResize` sent as `terminal.resize`.
 */
export function attachTerminal(client: TerminalClient, term: XtermLike, options: AttachTerminalOptions): TerminalAttachment;
