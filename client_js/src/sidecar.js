// What every sidecar transport shares, whatever runs the process: the host's stdout as NDJSON
// messages, its stderr tail, the close error, the `$/ready` handshake and the client that shows
// them. node.js (child_process, which Electron's main process uses too) and tauri.js (the shell
// plugin) only plug a process in, as vscode-jsonrpc's node/ plugs streams into common/.

import { RpcClient } from './client.js';
import { ConnectionClosedError, reportToConsole } from './errors.js';
import { LineSplitter, encodeLine } from './ndjson.js';

/** Stderr lines kept for `stderrTail` and the close error. */
const STDERR_TAIL_LINES = 20;

/**
 * `env` over `base`, with BRIDGE_FRAMING=ndjson unless `env` sets it: the transports speak NDJSON
 * only, and forcing it makes the host send `$/ready` at once ("auto" waits for our first bytes).
 */
export function hostEnv(base, env) {
  const merged = { ...base, ...env };
  if (env?.BRIDGE_FRAMING === undefined) merged.BRIDGE_FRAMING = 'ndjson';
  return merged;
}

/** One of the host's output pipes: byte chunks or ready-split lines in, lines out to `onLine`. */
class Pipe {
  #splitter = new LineSplitter();
  #onLine;

  constructor(onLine) {
    this.#onLine = onLine;
  }

  push(chunk) {
    for (const line of this.#splitter.push(chunk)) this.#onLine(line);
  }

  line(text) {
    this.#onLine(text);
  }

  /** The pipe ended: the last line, if it lacked its "\n". */
  end() {
    for (const line of this.#splitter.end()) this.#onLine(line);
  }
}

/**
 * The Transport for RpcClient over a host process's stdio. A subclass plugs in the process: it
 * feeds `stdout` and `stderr`, calls `exit()` once the process is gone, and implements
 * `write(data)` and `shutdown(options)`; `start()` and `writable` when it needs them.
 */
export class SidecarTransport {
  /** The `$/ready` params, once the handshake saw them. */
  readyInfo = undefined;
  /** A ConnectionClosedError the handshake rejects with as it is: the process never started. */
  spawnError = null;
  /** The exit code (null if ended by a signal); undefined while the process runs. */
  exitCode = undefined;
  /** Resolves once `exit()` ran. */
  exited;
  stdout = new Pipe((line) => this.#receiveLine(line));
  stderr = new Pipe((line) => this.#stderrLine(line));
  #noun;
  #onStderr;
  #onError;
  #messageListeners = new Set();
  #closeListeners = new Set();
  #stderrTail = [];
  #closeRequested = false;
  #closing = null;
  #closed = false;
  #markExited;

  /** `noun` names the process in messages: "host" or "sidecar". */
  constructor(noun, { onStderr, onError }) {
    this.#noun = noun;
    this.#onStderr = onStderr;
    this.#onError = onError ?? reportToConsole('bridge client');
    this.exited = new Promise((resolve) => {
      this.#markExited = resolve;
    });
  }

  /** True once the process is gone. */
  get closed() {
    return this.#closed;
  }

  /** True once close() was called. */
  get closeRequested() {
    return this.#closeRequested;
  }

  /** Whether the process can take input; a subclass adds its own condition. */
  get writable() {
    return true;
  }

  /** Start the process, if making the transport did not. Rejects if it cannot. */
  start() {
    return Promise.resolve();
  }

  send(message) {
    if (this.#closed || this.#closeRequested || !this.writable) {
      throw new ConnectionClosedError(`cannot send: the bridge ${this.#noun} connection is closed`);
    }
    this.write(encodeLine(message));
  }

  onMessage(listener) {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  onClose(listener) {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** Stop the process (how is the subclass's `shutdown()`); every call gets the same promise. */
  close(options) {
    this.#closeRequested = true;
    this.#closing ??= this.shutdown(options);
    return this.#closing;
  }

  /** The tail as a list, oldest first. */
  stderrLines() {
    return [...this.#stderrTail];
  }

  /** The tail as the end of an error message. */
  stderrTail() {
    return this.#stderrTail.length ? `; its stderr ended with:\n${this.#stderrTail.join('\n')}` : '';
  }

  /** An error that belongs to no call. */
  report(error) {
    this.#onError(error);
  }

  /** True if the process is gone within `ms`. */
  exitedWithin(ms) {
    let timer;
    return Promise.race([
      this.exited.then(() => true),
      new Promise((resolve) => {
        timer = setTimeout(resolve, ms, false);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /**
   * The process is gone: deliver what the pipes still hold, then close with an error saying how
   * it ended (`reason`, an Error, when it did not simply exit). Only the first call counts.
   */
  exit(code, signal, reason) {
    if (this.#closed) return;
    this.stdout.end();
    this.stderr.end();
    this.#closed = true;
    this.exitCode = code;
    const error = this.#closeError(code, signal, reason);
    error.exitCode = code;
    error.signal = signal;
    this.#markExited();
    for (const listener of this.#closeListeners) listener(error);
  }

  #closeError(code, signal, reason) {
    if (reason) {
      return reason instanceof ConnectionClosedError
        ? reason
        : new ConnectionClosedError(`bridge ${this.#noun} closed: ${reason.message}`, { cause: reason });
    }
    // Node names the signal ("SIGKILL"); the Tauri plugin gives its number.
    const how = signal != null ? `was killed by ${typeof signal === 'number' ? `signal ${signal}` : signal}` : `exited with code ${code}`;
    const expected = this.#closeRequested ? '' : ` unexpectedly${this.stderrTail()}`;
    return new ConnectionClosedError(`bridge ${this.#noun} ${how}${expected}`);
  }

  #receiveLine(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      // Usually a stray print() in a handler: the host owns stdout for the protocol.
      const error = new Error(`ignored a line on the ${this.#noun}'s stdout that is not JSON: ${truncate(line)}`);
      error.line = line;
      this.#onError(error);
      return;
    }
    for (const listener of this.#messageListeners) listener(message);
  }

  #stderrLine(line) {
    this.#stderrTail.push(line);
    if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
    this.#onStderr?.(line);
  }
}

const transports = new WeakMap();

/** The transport a SidecarClientBase was made with, for its subclasses' getters. */
export function transportOf(client) {
  return transports.get(client);
}

/** An RpcClient bound to a host process; each transport's client adds its process handle. */
export class SidecarClientBase extends RpcClient {
  constructor(transport, options) {
    super(transport, options);
    transports.set(this, transport);
  }

  /** The `$/ready` params: `{ version, pid, framing, capabilities, ... }`. */
  get ready() {
    return transportOf(this).readyInfo;
  }

  /** The last lines the host wrote to stderr (at most 20), oldest first. */
  get stderrTail() {
    return transportOf(this).stderrLines();
  }
}

/**
 * Make a `Client` over `transport`, start the process and resolve with the client once the host
 * sends `$/ready`. Rejects if the process cannot start, exits, or stays silent for `readyTimeout`
 * ms; `name` ("bridge host (python3)") says which in the message.
 */
export function connect(transport, Client, { name, readyTimeout, timeout, trace, onError, retry }) {
  const client = new Client(transport, { timeout, trace, onError, retry });
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = () => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      offReady();
      offClose();
      return true;
    };
    const fail = (error) => {
      if (!settle()) return;
      // Settle only once the process is gone, so a failed start never leaks a process.
      transport.close({ timeout: 0 }).then(
        () => reject(error),
        () => reject(error),
      );
    };
    const offReady = client.on('$/ready', (params) => {
      if (!settle()) return;
      transport.readyInfo = params ?? {};
      resolve(client);
    });
    const offClose = client.onClose((error) => {
      fail(transport.spawnError ?? new ConnectionClosedError(`${name} stopped before it was ready: ${error.message}`, { cause: error }));
    });
    const timer = setTimeout(() => {
      fail(new ConnectionClosedError(`${name} sent no $/ready within ${readyTimeout} ms${transport.stderrTail()}`));
    }, readyTimeout);
    transport.start().catch(fail);
  });
}

function truncate(text, max = 200) {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
