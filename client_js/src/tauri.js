// The Tauri transport: run the bridge host as a sidecar through @tauri-apps/plugin-shell and
// talk NDJSON over its stdio, from the webview. The plugin's Command class is passed in, so
// this package depends on nothing.
//
// What the shell plugin gives (v2): Command.sidecar(program, args, options) with `env` added
// to the inherited environment; stdout/stderr 'data' events carrying one line each (its "\n"
// included) as a string, or raw chunks with `encoding: 'raw'`; 'close' with { code, signal }
// after the output is drained; 'error' with a message; child.write(data) and child.kill().
// It has no way to close the child's stdin, so close() sends the host `$/exit`, which ends its
// input as EOF would, and kills it only if it has not exited within `closeTimeout` (see shutdown()).

import { ConnectionClosedError } from './errors.js';
import { SidecarClientBase, SidecarTransport, connect, hostEnv, transportOf } from './sidecar.js';

export * from './index.js';

const CLOSE_WAIT_MS = 5000;
/** Longer than the host's own shutdown (BRIDGE_SHUTDOWN_GRACE, 5 s, then 1 s to cancel calls). */
const CLOSE_TIMEOUT_MS = 10_000;
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
export class TauriSidecarClient extends SidecarClientBase {
  /** The plugin's Child (`pid`, `write()`, `kill()`), once spawned. */
  get child() {
    return transportOf(this).child;
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
  closeTimeout = CLOSE_TIMEOUT_MS,
  onStderr = defaultOnStderr,
  onError,
  ...clientOptions // timeout, trace, retry: the client's own options
} = {}) {
  if (typeof Command?.sidecar !== 'function') {
    return Promise.reject(new TypeError("createTauriSidecar: pass the Command class of '@tauri-apps/plugin-shell' as Command"));
  }
  if (typeof program !== 'string' || program === '') {
    return Promise.reject(new TypeError('createTauriSidecar: program must be a non-empty string'));
  }
  // The plugin adds `env` to the inherited environment.
  const options = { env: hostEnv({}, env) };
  if (cwd !== undefined) options.cwd = cwd;
  if (encoding !== undefined) options.encoding = encoding;

  program = sidecarName(program);
  let command;
  try {
    command = Command.sidecar(program, args, options);
  } catch (error) {
    return Promise.reject(error);
  }
  const transport = new ShellTransport(command, { onStderr, onError, closeTimeout });
  return connect(transport, TauriSidecarClient, { ...clientOptions, onError, name: `bridge sidecar (${program})`, readyTimeout });
}

/** The Transport over a plugin-shell Command's events and its Child. */
class ShellTransport extends SidecarTransport {
  child = null;
  #command;
  /** Messages encoded while the child is not spawned yet or a write is in flight. */
  #outbox = '';
  #writing = false;
  #spawning = null;
  #closeTimeout;

  constructor(command, { onStderr, onError, closeTimeout }) {
    super('sidecar', { onStderr, onError });
    this.#command = command;
    this.#closeTimeout = closeTimeout;
    // Listeners go on before spawn(): the plugin may deliver output before spawn() resolves.
    command.stdout.on('data', (payload) => feed(this.stdout, payload));
    command.stderr.on('data', (payload) => feed(this.stderr, payload));
    command.on('close', (payload) => this.exit(payload?.code ?? null, payload?.signal ?? null));
    // Not fatal by itself (a line that is not UTF-8, a failed wait); 'close' says when it ends.
    command.on('error', (message) => this.report(new Error(`bridge sidecar: ${message}`)));
  }

  start() {
    this.#spawning ??= Promise.resolve()
      .then(() => this.#command.spawn())
      .then(
        (child) => {
          this.child = child;
          if (this.closeRequested) return this.#kill();
          this.#flush();
        },
        (error) => {
          // The plugin rejects with a string: not allowed by the capabilities, not found, ...
          const cause = error instanceof Error ? error : new Error(String(error));
          this.spawnError = new ConnectionClosedError(`could not spawn the bridge sidecar: ${cause.message}`, { cause });
          this.exit(null, null, this.spawnError);
          throw this.spawnError;
        },
      );
    return this.#spawning;
  }

  write(line) {
    this.#outbox += line;
    this.#flush();
  }

  /**
   * Send the host `$/exit` (its capability in `$/ready`): it reads nothing more, finishes the
   * calls in flight, runs its shutdown hooks and exits. Kill it if it has not exited within
   * `timeout` ms (at once with 0, or if it never got ready). Resolves with the exit code, null
   * when it ended by a signal. A kill leaves no chance to finish, and a onefile bundle's
   * bootloader killed so cannot delete the folder it unpacked itself into.
   */
  async shutdown({ timeout = this.#closeTimeout } = {}) {
    const exit = this.readyInfo?.capabilities?.exit;
    if (!this.closed && this.child && timeout > 0 && typeof exit === 'string') {
      this.write(`${JSON.stringify({ jsonrpc: '2.0', method: exit })}\n`);
      if (await this.exitedWithin(timeout)) return this.exitCode ?? null;
    }
    if (!this.closed && this.child) await this.#kill();
    if (!this.closed && !this.#spawning) this.exit(null, null);
    // If 'close' never comes, give up after CLOSE_WAIT_MS and close anyway.
    if (!(await this.exitedWithin(CLOSE_WAIT_MS))) {
      this.exit(null, null, new Error(`no close event within ${CLOSE_WAIT_MS} ms of kill()`));
    }
    return this.exitCode ?? null;
  }

  async #kill() {
    try {
      await this.child.kill();
    } catch (error) {
      this.report(new Error(`bridge sidecar: kill failed: ${error?.message ?? error}`));
    }
  }

  /** One write at a time, in order; whatever queues meanwhile goes out in the next one. */
  #flush() {
    if (this.#writing || !this.child || this.closed || this.#outbox === '') return;
    const data = this.#outbox;
    this.#outbox = '';
    this.#writing = true;
    Promise.resolve()
      .then(() => this.child.write(data))
      .catch((error) => this.report(new Error(`bridge sidecar: write failed: ${error?.message ?? error}`)))
      .finally(() => {
        this.#writing = false;
        this.#flush();
      });
  }
}

/**
 * A 'data' payload into `pipe`. With the default encoding the plugin sends one line per event,
 * "\n" (or "\r\n") included; raw chunks (Uint8Array, or a number array once serialised) go
 * through the pipe's byte splitter.
 */
function feed(pipe, payload) {
  if (typeof payload !== 'string') return pipe.push(payload instanceof Uint8Array ? payload : Uint8Array.from(payload));
  for (const line of payload.split('\n')) {
    if (line.trim() !== '') pipe.line(line.endsWith('\r') ? line.slice(0, -1) : line);
  }
}

function defaultOnStderr(line) {
  console.log(`[bridge] ${line}`);
}
