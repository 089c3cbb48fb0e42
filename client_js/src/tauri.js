// The Tauri transport: run the bridge host as a sidecar through @tauri-apps/plugin-shell and
// talk NDJSON over its stdio, from the webview. The plugin's Command class is passed in, so
// this package depends on nothing.
//
// What the shell plugin gives (v2): Command.sidecar(program, args, options) with `env` added
// to the inherited environment; stdout/stderr 'data' events carrying one line each (its "\n"
// included) as a string, or raw chunks with `encoding: 'raw'`; 'close' with { code, signal }
// after the output is drained; 'error' with a message; child.write(data) and child.kill().
// It has no way to close the child's stdin, so close() kills the host (see close()).

import { RpcClient } from './client.js';
import { ConnectionClosedError } from './errors.js';
import { LineSplitter, encodeLine } from './ndjson.js';

export * from './index.js';

const STDERR_TAIL_LINES = 20;
const CLOSE_WAIT_MS = 5000;
/** A Rust target triple at the end of a file name, as `bridge bundle` and Tauri's externalBin use them. */
const TRIPLE_SUFFIX = /-(?:x86_64|aarch64|i686|armv7|riscv64gc|powerpc64le|s390x)-(?:unknown-linux-(?:gnu|musl)(?:eabihf)?|apple-darwin|pc-windows-(?:msvc|gnu))(?:\.exe)?$/;

/**
 * The name to give `Command.sidecar()`: the `bundle.externalBin` entry, which Tauri resolves to
 * the binary it copied beside the app's executable (the entry's last part, its target triple
 * removed). Accepts that entry as is (`binaries/bridge-host`), or the file `bridge bundle`
 * wrote (`src-tauri/binaries/bridge-host-x86_64-unknown-linux-gnu`, `...-pc-windows-msvc.exe`).
 */
export function sidecarName(program) {
  const name = String(program);
  const posix = name.replaceAll('\\', '/');
  const inTauri = posix.lastIndexOf('src-tauri/');
  if (inTauri === -1 && !TRIPLE_SUFFIX.test(posix)) return name; // the externalBin entry itself
  const entry = inTauri === -1 ? posix.replace(/^\.\//, '') : posix.slice(inTauri + 'src-tauri/'.length);
  return entry.replace(TRIPLE_SUFFIX, '');
}

/** An RpcClient bound to a sidecar spawned through the Tauri shell plugin. */
export class TauriSidecarClient extends RpcClient {
  #transport;

  constructor(transport, options) {
    super(transport, options);
    this.#transport = transport;
  }

  /** The `$/ready` params. */
  get ready() {
    return this.#transport.readyInfo;
  }

  /** The plugin's Child (`pid`, `write()`, `kill()`), once spawned. */
  get child() {
    return this.#transport.child;
  }
}

/**
 * Spawn the sidecar `program` (as named in tauri.conf.json > bundle > externalBin, or the
 * file `bridge bundle` built: see sidecarName) and
 * resolve with a connected client once it sends `$/ready`. Rejects if the plugin refuses to
 * spawn it, if it exits, or if it stays silent for `readyTimeout` ms (it is then killed).
 */
export function createTauriSidecar({
  Command,
  program = 'binaries/bridge-host',
  args = [],
  env,
  cwd,
  encoding,
  readyTimeout = 10_000,
  onStderr = defaultOnStderr,
  timeout,
  trace,
  onError,
} = {}) {
  if (typeof Command?.sidecar !== 'function') {
    return Promise.reject(new TypeError("createTauriSidecar: pass the Command class of '@tauri-apps/plugin-shell' as Command"));
  }
  if (typeof program !== 'string' || program === '') {
    return Promise.reject(new TypeError('createTauriSidecar: program must be a non-empty string'));
  }
  // The transport speaks NDJSON only; forcing it also makes the host send $/ready at once.
  // The plugin adds `env` to the inherited environment.
  const options = { env: { ...env } };
  if (options.env.BRIDGE_FRAMING === undefined) options.env.BRIDGE_FRAMING = 'ndjson';
  if (cwd !== undefined) options.cwd = cwd;
  if (encoding !== undefined) options.encoding = encoding;

  program = sidecarName(program);
  let command;
  try {
    command = Command.sidecar(program, args, options);
  } catch (error) {
    return Promise.reject(error);
  }
  const reportError = onError ?? defaultOnError;
  const transport = new ShellTransport(command, { onStderr, onError: reportError });
  const client = new TauriSidecarClient(transport, { timeout, trace, onError });

  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error) => {
      if (settled) return;
      settled = true;
      cleanup();
      // Settle only once the process is gone, so a failed start never leaks a sidecar.
      transport.close().then(
        () => reject(error),
        () => reject(error),
      );
    };
    const offReady = client.on('$/ready', (params) => {
      if (settled) return;
      settled = true;
      cleanup();
      transport.readyInfo = params ?? {};
      resolve(client);
    });
    const offClose = client.onClose((error) => {
      fail(transport.spawnError ?? new ConnectionClosedError(`bridge sidecar (${program}) stopped before it was ready: ${error.message}`, { cause: error }));
    });
    const timer = setTimeout(() => {
      fail(new ConnectionClosedError(`bridge sidecar (${program}) sent no $/ready within ${readyTimeout} ms${transport.stderrTail()}`));
    }, readyTimeout);
    function cleanup() {
      clearTimeout(timer);
      offReady();
      offClose();
    }
    transport.start().catch((error) => fail(error));
  });
}

/** The Transport for RpcClient over a plugin-shell Command's events and its Child. */
class ShellTransport {
  readyInfo = undefined;
  child = null;
  /** The exit code from the 'close' event (null if ended by a signal); undefined until then. */
  exitCode = undefined;
  /** Set when the plugin refused to spawn the sidecar. */
  spawnError = null;
  #command;
  #onStderr;
  #onError;
  #messageListeners = new Set();
  #closeListeners = new Set();
  #stdoutBytes = new LineSplitter();
  #stderrBytes = new LineSplitter();
  #stderrTail = [];
  /** Messages encoded while the child is not spawned yet or a write is in flight. */
  #outbox = '';
  #writing = false;
  #spawning = null;
  #closeRequested = false;
  #closed = false;
  #exited;
  #markExited;

  constructor(command, { onStderr, onError }) {
    this.#command = command;
    this.#onStderr = onStderr;
    this.#onError = onError;
    this.#exited = new Promise((resolve) => {
      this.#markExited = resolve;
    });
    // Listeners go on before spawn(): the plugin may deliver output before spawn() resolves.
    command.stdout.on('data', (payload) => this.#lines(payload, this.#stdoutBytes).forEach((line) => this.#receiveLine(line)));
    command.stderr.on('data', (payload) => this.#lines(payload, this.#stderrBytes).forEach((line) => this.#stderrLine(line)));
    command.on('close', (payload) => this.#handleClose(payload));
    // Not fatal by itself (a line that is not UTF-8, a failed wait); 'close' says when it ends.
    command.on('error', (message) => this.#onError(new Error(`bridge sidecar: ${message}`)));
  }

  start() {
    this.#spawning ??= Promise.resolve()
      .then(() => this.#command.spawn())
      .then(
        (child) => {
          this.child = child;
          if (this.#closeRequested) return this.#kill();
          this.#flush();
        },
        (error) => {
          // The plugin rejects with a string: not allowed by the capabilities, not found, ...
          const cause = error instanceof Error ? error : new Error(String(error));
          this.spawnError = new ConnectionClosedError(`could not spawn the bridge sidecar: ${cause.message}`, { cause });
          this.#handleClose({ code: null, signal: null }, this.spawnError);
          throw this.spawnError;
        },
      );
    return this.#spawning;
  }

  send(message) {
    if (this.#closed || this.#closeRequested) {
      throw new ConnectionClosedError('cannot send: the bridge sidecar connection is closed');
    }
    this.#outbox += encodeLine(message);
    this.#flush();
  }

  onMessage(listener) {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  onClose(listener) {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /**
   * Kill the sidecar and resolve with its exit code (null when it ended by a signal, as a
   * kill does on Unix) once the plugin reports it closed. The plugin cannot end the child's
   * stdin, so the host gets no chance to finish in-flight calls or run shutdown hooks.
   */
  async close() {
    this.#closeRequested = true;
    if (!this.#closed && this.child) await this.#kill();
    if (!this.#closed && !this.#spawning) this.#handleClose({ code: null, signal: null });
    await this.#waitForExit();
    return this.exitCode ?? null;
  }

  stderrTail() {
    return this.#stderrTail.length ? `; its stderr ended with:\n${this.#stderrTail.join('\n')}` : '';
  }

  async #kill() {
    try {
      await this.child.kill();
    } catch (error) {
      this.#onError(new Error(`bridge sidecar: kill failed: ${error?.message ?? error}`));
    }
  }

  /** Wait for 'close'; if it never comes, give up after CLOSE_WAIT_MS and close anyway. */
  async #waitForExit() {
    let timer;
    const gaveUp = new Promise((resolve) => {
      timer = setTimeout(resolve, CLOSE_WAIT_MS, false);
    });
    const exited = await Promise.race([this.#exited.then(() => true), gaveUp]);
    clearTimeout(timer);
    if (!exited) this.#handleClose({ code: null, signal: null }, new Error(`no close event within ${CLOSE_WAIT_MS} ms of kill()`));
  }

  /** One write at a time, in order; whatever queues meanwhile goes out in the next one. */
  #flush() {
    if (this.#writing || !this.child || this.#closed || this.#outbox === '') return;
    const data = this.#outbox;
    this.#outbox = '';
    this.#writing = true;
    Promise.resolve()
      .then(() => this.child.write(data))
      .catch((error) => this.#onError(new Error(`bridge sidecar: write failed: ${error?.message ?? error}`)))
      .finally(() => {
        this.#writing = false;
        this.#flush();
      });
  }

  /**
   * Lines from a 'data' payload. With the default encoding the plugin sends one line per
   * event, "\n" (or "\r\n") included; raw chunks (Uint8Array, or a number array once
   * serialised) go through the byte splitter.
   */
  #lines(payload, bytes) {
    if (typeof payload === 'string') return payload.split('\n').filter((line) => line.trim() !== '').map(trimCR);
    return bytes.push(payload instanceof Uint8Array ? payload : Uint8Array.from(payload));
  }

  #receiveLine(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      const error = new Error(`ignored a line on the sidecar's stdout that is not JSON: ${truncate(line)}`);
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

  #handleClose(payload, reason) {
    if (this.#closed) return;
    for (const line of this.#stdoutBytes.end()) this.#receiveLine(line);
    for (const line of this.#stderrBytes.end()) this.#stderrLine(line);
    this.#closed = true;
    const code = payload?.code ?? null;
    const signal = payload?.signal ?? null;
    this.exitCode = code;
    let error;
    if (reason) {
      error = reason instanceof ConnectionClosedError ? reason : new ConnectionClosedError(`bridge sidecar closed: ${reason.message}`, { cause: reason });
    } else {
      const how = signal !== null ? `was killed by signal ${signal}` : `exited with code ${code}`;
      const expected = this.#closeRequested ? '' : ` unexpectedly${this.stderrTail()}`;
      error = new ConnectionClosedError(`bridge sidecar ${how}${expected}`);
    }
    error.exitCode = code;
    error.signal = signal;
    this.#markExited();
    for (const listener of this.#closeListeners) listener(error);
  }
}

function trimCR(line) {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

function truncate(text, max = 200) {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function defaultOnStderr(line) {
  console.log(`[bridge] ${line}`);
}

function defaultOnError(error) {
  console.error('[bridge client]', error);
}
