// The Node transport: spawn a bridge host as a child process and talk NDJSON over its stdio.

import { spawn } from 'node:child_process';
import { RpcClient } from './client.js';
import { ConnectionClosedError } from './errors.js';
import { LineSplitter, encodeLine } from './ndjson.js';
import { Supervisor } from './supervisor.js';

export * from './index.js';
export { HEALTH_DEFAULTS, QueueFullError, RESTART_DEFAULTS, SidecarCrashedError, Supervisor, restartDelay } from './supervisor.js';

const STDERR_TAIL_LINES = 20;
const SIGTERM_GRACE_MS = 2000;

/** An RpcClient bound to a spawned host process. */
export class SidecarClient extends RpcClient {
  #transport;

  constructor(transport, options) {
    super(transport, options);
    this.#transport = transport;
  }

  /** The `$/ready` params: `{ version, pid, framing, capabilities }`. */
  get ready() {
    return this.#transport.readyInfo;
  }

  /** The ChildProcess, for callers who need its pid or exit state. */
  get process() {
    return this.#transport.child;
  }

  /** The last lines the host wrote to stderr (at most 20), oldest first. */
  get stderrTail() {
    return this.#transport.stderrLines();
  }

  /** Stop the host at once with `signal` (default SIGKILL); pending calls reject as the process closes. */
  kill(signal = 'SIGKILL') {
    return this.process.kill(signal);
  }
}

/**
 * A Supervisor for hosts spawned with these spawnSidecar() options; it starts the first one
 * right away. Calls made before the host is ready wait in its queue; `await supervisor.whenReady()`
 * to wait for it. `restart`, `health`, `maxQueued` and `timeout` go to the Supervisor.
 */
export function superviseSidecar({ restart, health, maxQueued, timeout, ...spawnOptions } = {}) {
  if (typeof spawnOptions.command !== 'string' || spawnOptions.command === '') {
    throw new TypeError('superviseSidecar: command must be a non-empty string');
  }
  const supervisor = new Supervisor({
    start: () => spawnSidecar(spawnOptions),
    restart,
    health,
    maxQueued,
    timeout,
    onError: spawnOptions.onError,
  });
  // On the next microtask, so onState() listeners added right after this call see 'starting'.
  // A failed first start is reported through onState, whenReady() and the calls themselves.
  queueMicrotask(() => supervisor.start().catch(() => {}));
  return supervisor;
}

/**
 * Spawn a bridge host and resolve with a connected client once it sends `$/ready`.
 * Rejects if the process cannot start, exits, or stays silent for `readyTimeout` ms.
 */
export function spawnSidecar({
  command,
  args = [],
  env,
  cwd,
  readyTimeout = 10_000,
  // Longer than the host's own shutdown (BRIDGE_SHUTDOWN_GRACE, 5 s, then 1 s to cancel
  // calls), so normally the host answers every call and exits 0 by itself.
  closeTimeout = 10_000,
  onStderr = defaultOnStderr,
  timeout,
  trace,
  onError,
} = {}) {
  if (typeof command !== 'string' || command === '') {
    return Promise.reject(new TypeError('spawnSidecar: command must be a non-empty string'));
  }
  // The transport speaks NDJSON only. Forcing it also makes the host send $/ready at once;
  // in "auto" mode it would wait for our first bytes to pick a framing.
  const childEnv = { ...process.env, ...env };
  if (env?.BRIDGE_FRAMING === undefined) childEnv.BRIDGE_FRAMING = 'ndjson';

  let child;
  try {
    child = spawn(command, args, { cwd, env: childEnv, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
  } catch (error) {
    return Promise.reject(error);
  }
  const transport = new ProcessTransport(child, { onStderr, onError: onError ?? defaultOnError, closeTimeout });
  const client = new SidecarClient(transport, { timeout, trace, onError });

  return new Promise((resolve, reject) => {
    const fail = (error) => {
      cleanup();
      // Settle only once the process is gone, so a failed start never leaks a process.
      transport.close({ timeout: 0 }).then(
        () => reject(error),
        () => reject(error),
      );
    };
    const offReady = client.on('$/ready', (params) => {
      cleanup();
      transport.readyInfo = params ?? {};
      resolve(client);
    });
    const offClose = client.onClose((error) => {
      cleanup();
      reject(new ConnectionClosedError(`bridge host (${command}) stopped before it was ready: ${error.message}`, { cause: error }));
    });
    const timer = setTimeout(() => {
      fail(new ConnectionClosedError(`bridge host (${command}) sent no $/ready within ${readyTimeout} ms${transport.stderrTail()}`));
    }, readyTimeout);
    function cleanup() {
      clearTimeout(timer);
      offReady();
      offClose();
    }
  });
}

/** The Transport for RpcClient over a child's stdin/stdout; stderr goes to onStderr line by line. */
class ProcessTransport {
  readyInfo = undefined;
  #messageListeners = new Set();
  #closeListeners = new Set();
  #stderrTail = [];
  #closeRequested = false;
  #closePromise = null;
  #spawnError = null;
  #closed = false;
  /** Lines sent in this tick, written together on the next one; null when empty. */
  #outbox = null;
  #exited;
  #closeTimeout;
  #onError;

  constructor(child, { onStderr, onError, closeTimeout }) {
    this.child = child;
    this.#onError = onError;
    this.#closeTimeout = closeTimeout;

    const stdout = new LineSplitter();
    child.stdout.on('data', (chunk) => stdout.push(chunk).forEach((line) => this.#receiveLine(line)));
    let stdoutEnded;
    const stdoutDone = new Promise((resolve) => { stdoutEnded = resolve; });
    child.stdout.on('end', () => {
      stdout.end().forEach((line) => this.#receiveLine(line));
      stdoutEnded();
    });

    const stderr = new LineSplitter();
    const onStderrLine = (line) => {
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      onStderr?.(line);
    };
    child.stderr.on('data', (chunk) => stderr.push(chunk).forEach(onStderrLine));
    child.stderr.on('end', () => stderr.end().forEach(onStderrLine));

    // EPIPE and friends when the host dies first; 'close' below reports the real story.
    child.stdin.on('error', () => {});

    this.#exited = new Promise((resolve) => {
      // 'close' comes after 'exit' once stdout is drained, so every response is delivered first.
      child.on('close', (code, signal) => {
        this.#handleClose(code, signal);
        resolve();
      });
      // A child of the host may hold its stderr open long after the host died ('close' waits
      // for every pipe). The protocol's stdout is the host's alone: once the host has exited
      // and stdout has ended, every response is in, and the host is gone.
      child.on('exit', (code, signal) => {
        stdoutDone.then(() => {
          this.#handleClose(code, signal);
          resolve();
        });
      });
      child.on('error', (error) => {
        this.#spawnError ??= error;
        // A process that never started emits no 'exit'; make sure waiters are released.
        if (child.pid === undefined) {
          this.#handleClose(null, null);
          resolve();
        }
      });
    });
  }

  send(message) {
    if (this.#closed || this.#closeRequested || !this.child.stdin.writable) {
      throw new ConnectionClosedError('cannot send: the bridge host connection is closed');
    }
    // Messages sent in one tick (a burst of calls, credits) go out in one write.
    if (this.#outbox === null) {
      this.#outbox = [];
      process.nextTick(this.#flush);
    }
    this.#outbox.push(encodeLine(message));
  }

  #flush = () => {
    const lines = this.#outbox;
    this.#outbox = null;
    if (lines?.length && this.child.stdin.writable) this.child.stdin.write(lines.length === 1 ? lines[0] : lines.join(''));
  };

  onMessage(listener) {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  onClose(listener) {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /**
   * End stdin (the host finishes in-flight work and exits), wait up to `timeout` ms,
   * then SIGTERM, then SIGKILL. Resolves with the exit code (null if ended by a signal).
   */
  close({ timeout = this.#closeTimeout } = {}) {
    this.#closeRequested = true;
    this.#closePromise ??= this.#shutdown(timeout);
    return this.#closePromise;
  }

  stderrLines() {
    return [...this.#stderrTail];
  }

  stderrTail() {
    return this.#stderrTail.length ? `; its stderr ended with:\n${this.#stderrTail.join('\n')}` : '';
  }

  async #shutdown(timeout) {
    const child = this.child;
    if (!this.#closed) {
      this.#flush();
      child.stdin.end();
      if (!(await this.#waitForExit(timeout))) {
        child.kill('SIGTERM');
        if (!(await this.#waitForExit(SIGTERM_GRACE_MS))) {
          child.kill('SIGKILL');
          await this.#exited;
        }
      }
    }
    return child.exitCode;
  }

  /** True if the process closed within `ms`. */
  #waitForExit(ms) {
    let timer;
    return Promise.race([
      this.#exited.then(() => true),
      new Promise((resolve) => {
        timer = setTimeout(resolve, ms, false);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  #receiveLine(line) {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      // Usually a stray print() in a handler: the host owns stdout for the protocol.
      const error = new Error(`ignored a line on the host's stdout that is not JSON: ${truncate(line)}`);
      error.line = line;
      this.#onError(error);
      return;
    }
    for (const listener of this.#messageListeners) listener(message);
  }

  #handleClose(code, signal) {
    if (this.#closed) return;
    this.#closed = true;
    let error;
    if (this.#spawnError) {
      error = new ConnectionClosedError(`could not run the bridge host: ${this.#spawnError.message}`, { cause: this.#spawnError });
    } else {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const expected = this.#closeRequested ? '' : ' unexpectedly';
      error = new ConnectionClosedError(`bridge host ${how}${expected}${this.#closeRequested ? '' : this.stderrTail()}`);
    }
    error.exitCode = code;
    error.signal = signal;
    for (const listener of this.#closeListeners) listener(error);
  }
}

function truncate(text, max = 200) {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function defaultOnStderr(line) {
  process.stderr.write(`[bridge] ${line}\n`);
}

function defaultOnError(error) {
  console.error('[bridge client]', error);
}
