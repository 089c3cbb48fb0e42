// The Node transport: spawn a bridge host as a child process and talk NDJSON over its stdio.

import { spawn } from 'node:child_process';
import { traceFromEnv } from './client.js';
import { ConnectionClosedError } from './errors.js';
import { SidecarClientBase, SidecarTransport, connect, hostEnv, transportOf } from './sidecar.js';
import { Supervisor } from './supervisor.js';

export * from './index.js';

const SIGTERM_GRACE_MS = 2000;

/** An RpcClient bound to a spawned host process. */
export class SidecarClient extends SidecarClientBase {
  /** The ChildProcess, for callers who need its pid or exit state. */
  get process() {
    return transportOf(this).child;
  }

  /** Stop the host at once with `signal` (default SIGKILL); pending calls reject as the process closes. */
  kill(signal = 'SIGKILL') {
    return this.process.kill(signal);
  }
}

/**
 * A Supervisor for hosts spawned with these spawnSidecar() options; it starts the first one
 * right away. Calls made before the host is ready wait in its queue; `await supervisor.whenReady()`
 * to wait for it. `restart`, `health`, `maxQueued`, `timeout` and `retry` go to the Supervisor.
 */
export function superviseSidecar({ restart, health, maxQueued, timeout, retry, ...spawnOptions } = {}) {
  if (typeof spawnOptions.command !== 'string' || spawnOptions.command === '') {
    throw new TypeError('superviseSidecar: command must be a non-empty string');
  }
  const supervisor = new Supervisor({
    start: () => spawnSidecar(spawnOptions),
    restart,
    health,
    maxQueued,
    timeout,
    retry,
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
  onError,
  ...clientOptions // timeout, trace, retry: the client's own options
} = {}) {
  if (typeof command !== 'string' || command === '') {
    return Promise.reject(new TypeError('spawnSidecar: command must be a non-empty string'));
  }
  if (clientOptions.trace === undefined) {
    // BRIDGE_TRACE=1 (or verbose): every message and each reply's time, on stderr.
    try {
      clientOptions.trace = traceFromEnv(process.env.BRIDGE_TRACE, (line) => process.stderr.write(`${line}\n`));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  let child;
  try {
    child = spawn(command, args, { cwd, env: hostEnv(process.env, env), stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
  } catch (error) {
    return Promise.reject(error);
  }
  const transport = new ProcessTransport(child, { onStderr, onError, closeTimeout });
  return connect(transport, SidecarClient, { ...clientOptions, onError, name: `bridge host (${command})`, readyTimeout });
}

/** The child's stdin and stdout carry the messages; stderr goes to onStderr line by line. */
class ProcessTransport extends SidecarTransport {
  /** Lines sent in this tick, written together on the next one; null when empty. */
  #outbox = null;
  #closeTimeout;
  /** The child's 'error' (it could not be spawned, or a signal could not be sent). */
  #error = null;

  constructor(child, { onStderr, onError, closeTimeout }) {
    super('host', { onStderr, onError });
    this.child = child;
    this.#closeTimeout = closeTimeout;

    let stdoutEnded;
    const stdoutDone = new Promise((resolve) => {
      stdoutEnded = resolve;
    });
    child.stdout.on('data', (chunk) => this.stdout.push(chunk));
    child.stdout.on('end', () => {
      this.stdout.end();
      stdoutEnded();
    });
    child.stderr.on('data', (chunk) => this.stderr.push(chunk));
    child.stderr.on('end', () => this.stderr.end());
    // EPIPE and friends when the host dies first; 'close' below reports the real story.
    child.stdin.on('error', () => {});

    // 'close' comes after 'exit' once stdout is drained, so every response is delivered first.
    child.on('close', (code, signal) => this.#exit(code, signal));
    // A child of the host may hold its stderr open long after the host died ('close' waits
    // for every pipe). The protocol's stdout is the host's alone: once the host has exited
    // and stdout has ended, every response is in, and the host is gone.
    child.on('exit', (code, signal) => stdoutDone.then(() => this.#exit(code, signal)));
    child.on('error', (error) => {
      this.#error ??= error;
      // A process that never started emits no 'exit'.
      if (child.pid === undefined) this.#exit(null, null);
    });
  }

  #exit(code, signal) {
    const error = this.#error;
    this.exit(code, signal, error && new ConnectionClosedError(`could not run the bridge host: ${error.message}`, { cause: error }));
  }

  get writable() {
    return this.child.stdin.writable;
  }

  write(line) {
    // Messages sent in one tick (a burst of calls, credits) go out in one write.
    if (this.#outbox === null) {
      this.#outbox = [];
      process.nextTick(this.#flush);
    }
    this.#outbox.push(line);
  }

  #flush = () => {
    const lines = this.#outbox;
    this.#outbox = null;
    if (lines?.length && this.child.stdin.writable) this.child.stdin.write(lines.length === 1 ? lines[0] : lines.join(''));
  };

  /**
   * End stdin (the host finishes in-flight work and exits), wait up to `timeout` ms,
   * then SIGTERM, then SIGKILL. Resolves with the exit code (null if ended by a signal).
   */
  async shutdown({ timeout = this.#closeTimeout } = {}) {
    const child = this.child;
    if (!this.closed) {
      this.#flush();
      child.stdin.end();
      if (!(await this.exitedWithin(timeout))) {
        child.kill('SIGTERM');
        if (!(await this.exitedWithin(SIGTERM_GRACE_MS))) {
          child.kill('SIGKILL');
          await this.exited;
        }
      }
    }
    return child.exitCode;
  }
}

function defaultOnStderr(line) {
  process.stderr.write(`[bridge] ${line}\n`);
}
